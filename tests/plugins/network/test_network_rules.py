"""The network plugin's default rules fire from what network.snmp makes of a router's answers,
committed to a real ledger whose engine runs the plugin's rules.

The router is a stand-in that answers the OIDs the collector asks for (the collector, the
judgement of each poll and its checkpoint are the real ones): the rules need minutes and hours
of a router's life, which the real snmpd of test_network_snmpd.py cannot live through on a fake
clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from normagent.errors import SnmpTimeout
from normagent.ledger import Ledger
from normagent.model import SnmpVarBind
from normagent.plugins.network.collectors import IF_COLUMNS, IF_NAME, IF_NUMBER, IF_TABLE_LAST_CHANGE, SNMP, SYS_UPTIME, Device, SnmpSettings
from normagent.plugins.network.rules import RULES
from normagent.testing import FakeClock, run_collector_once
from tests.support.deviation_rules import fired, firing, install, what
from tests.support.snmp_standin import StandInDevice

INDEX = 3


class Router(StandInDevice):
    """One router with one interface (ge-0/0/1), as an SNMP client sees it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.answering = True
        self.oper = 1
        self.last_change = 0
        self.counters = {"in_octets": 0, "out_octets": 0, "in_errors": 0, "out_errors": 0, "in_discards": 0, "out_discards": 0}

    def set_oper(self, oper: int) -> None:
        self.oper, self.last_change = oper, self.uptime()

    def get(self, oids: Sequence[str]) -> list[SnmpVarBind]:
        if not self.answering:
            raise SnmpTimeout("no answer")
        columns = {f"{oid}.{INDEX}": name for name, oid in IF_COLUMNS.items()}
        values = {"oper": self.oper, "last_change": self.last_change, **self.counters}
        fixed = {SYS_UPTIME: self.uptime(), IF_NUMBER: 1, IF_TABLE_LAST_CHANGE: 0, f"{IF_NAME}.{INDEX}": "ge-0/0/1"}
        return [SnmpVarBind(oid, fixed[oid] if oid in fixed else values[columns[oid]]) for oid in oids]

    def walk(self, oid: str, *, max_rows: int = 10_000) -> list[SnmpVarBind]:
        if not self.answering:
            raise SnmpTimeout("no answer")
        return [SnmpVarBind(f"{IF_NAME}.{INDEX}", "ge-0/0/1")] if oid == IF_NAME else []


SETTINGS = SnmpSettings(devices=(Device(name="r1", target="192.0.2.1", interfaces=("ge-*",)),))


def poll(ledger: Ledger, router: Router, clock: FakeClock, minutes: int = 1) -> None:
    """Poll once a minute, ``minutes`` times (the collector's interval)."""
    for _ in range(minutes):
        run_collector_once(SNMP, ledger, settings=SETTINGS, snmp=router, clock=clock)
        clock.advance(60)


def test_a_device_that_stops_answering_an_interface_down_and_a_restart(ledger: Ledger, clock: FakeClock) -> None:
    install(ledger, RULES)
    router = Router(clock)
    poll(ledger, router, clock)
    router.answering = False
    router.set_oper(2)  # the line went down with it
    poll(ledger, router, clock, 6)
    assert set(firing(ledger)) == {"network.snmp_down"}, "the interface is not polled while the device does not answer"
    router.answering = True
    router.booted = clock.now() - timedelta(seconds=30)  # it had restarted
    router.last_change = 0
    poll(ledger, router, clock, 6)

    assert firing(ledger) == {
        "network.snmp_down": [{"device": "r1"}],  # answered again; held until the hold time has passed
        "network.interface_down": [{"device": "r1", "interface": "ge-0/0/1"}],
        "network.device_restart": [{"device": "r1"}],
    }
    [down] = fired(ledger, "network.interface_down")
    assert what(down) == ("Grensesnittet ge-0/0/1 på nettverksutstyret (r1) har vært nede i over 5 minutter.",
                          "The interface ge-0/0/1 of the network device (r1) has been down for over 5 minutes.")
    [restart] = fired(ledger, "network.device_restart")
    assert what(restart)[0] == "Nettverksutstyret (r1) startet på nytt 1 gang(er) siste 1 time."


def test_a_device_that_drops_out_again_and_again(ledger: Ledger, clock: FakeClock) -> None:
    """Outages of four minutes, each too short for network.snmp_down: the poll that brings the
    day's downtime to 30 minutes (in the eighth) fires network.device_downtime."""
    install(ledger, RULES)
    router = Router(clock)
    poll(ledger, router, clock)
    for outage in range(8):
        router.answering = False
        poll(ledger, router, clock, 4)
        router.answering = True
        poll(ledger, router, clock)
        if outage == 6:
            assert firing(ledger) == {}, "28 minutes: below the threshold"

    assert firing(ledger) == {"network.device_downtime": [{"device": "r1"}]}
    [doc] = fired(ledger, "network.device_downtime")
    assert what(doc) == ("Nettverksutstyret (r1) har ikke svart i til sammen 30 minutter siste 1 døgn (grense 30 minutter).",
                         "The network device (r1) did not answer for 30 minutes in all in the last 1 day (threshold 30 minutes).")


def test_an_interface_that_flaps(ledger: Ledger, clock: FakeClock) -> None:
    install(ledger, RULES)
    router = Router(clock)
    poll(ledger, router, clock)
    for _ in range(8):
        router.set_oper(2)
        poll(ledger, router, clock, 4)
        router.set_oper(1)
        poll(ledger, router, clock)

    assert firing(ledger) == {"network.interface_downtime": [{"device": "r1", "interface": "ge-0/0/1"}]}
    [doc] = fired(ledger, "network.interface_downtime")
    assert what(doc)[0] == ("Grensesnittet ge-0/0/1 på nettverksutstyret (r1) har vært nede i til sammen 30 minutter siste "
                            "1 døgn (grense 30 minutter).")


def test_errors_and_discards_on_an_interface(ledger: Ledger, clock: FakeClock) -> None:
    """The first poll is a baseline; 2 x 60 errors fire the errors rule, 2 x 6,000 discards the
    discards rule (an info)."""
    install(ledger, RULES)
    router = Router(clock)
    router.counters.update(in_errors=5_000, in_discards=1_000_000)  # what the counters held before: no increase
    poll(ledger, router, clock)
    for _ in range(2):
        router.counters["in_errors"] += 40
        router.counters["out_errors"] += 20
        router.counters["out_discards"] += 6_000
        poll(ledger, router, clock)

    assert firing(ledger) == {
        "network.interface_errors": [{"device": "r1", "interface": "ge-0/0/1"}],
        "network.interface_discards": [{"device": "r1", "interface": "ge-0/0/1"}],
    }
    [errors] = fired(ledger, "network.interface_errors")
    assert what(errors)[1] == "The interface ge-0/0/1 of the network device (r1) had 120 packets with errors in the last 1 hour (threshold 100)."
    [discards] = fired(ledger, "network.interface_discards")
    assert discards["severity"] == "info" and what(discards)[0].endswith("kastet 12\u00a0000 pakker siste 1 time (grense 10\u00a0000).")
