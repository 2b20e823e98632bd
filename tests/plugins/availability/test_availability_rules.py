"""The availability plugin's default rules fire from what availability.probes finds: process
probes through the host seam on a fake clock (minutes of outage in a moment), a real HTTPS server
for the certificate, all committed to a real ledger whose engine runs the plugin's rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from normagent.ledger import Ledger
from normagent.maintenance import Calendar, MaintenanceSettings, OneOffWindow
from normagent.plugins.availability.collectors import DOWNTIME, OUTAGES, PROBES_COLLECTOR, AvailabilitySettings, Service
from normagent.plugins.availability.rules import RULES
from normagent.testing import FakeClock, FakeHost, run_collector_once
from tests.support.deviation_rules import fired, firing, install, what

START = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)  # a Tuesday, 10:00 in Oslo
# 12:00–13:00 Oslo (11:00–12:00 UTC): the EPJ upgrade, announced.
CALENDAR = Calendar(MaintenanceSettings(windows=(
    OneOffWindow(datetime(2026, 11, 24, 12, 0), datetime(2026, 11, 24, 13, 0), "EPJ 24.2", "EPJ-leverandør"),
)))


class Clinic:
    """Two probed services on a host whose processes come and go, probed once a minute."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock(START)
        self.host = FakeHost(processes={"epj", "msg"})
        self.ledger = Ledger.open(tmp_path / "ledger.db", clock=self.clock)
        self.settings = AvailabilitySettings(services=(Service("epj", "process", "epj", sla=0.999), Service("msg", "process", "msg")))
        install(self.ledger, RULES)

    def minutes(self, n: int, *, epj: bool = True) -> None:
        (self.host.processes.add if epj else self.host.processes.discard)("epj")
        for _ in range(n):
            run_collector_once(PROBES_COLLECTOR, self.ledger, settings=self.settings, clock=self.clock, host=self.host,
                               maintenance=CALENDAR)
            self.clock.advance(60)


@pytest.fixture
def clinic(tmp_path: Path) -> Iterator[Clinic]:
    c = Clinic(tmp_path)
    yield c
    c.ledger.close()


def test_a_long_unplanned_outage(clinic: Clinic) -> None:
    """EPJ down 45 minutes at 10:00 Oslo: down after 5 minutes, a day's unplanned downtime at 30,
    its SLA (0.1 % of November, 43.2 minutes) at risk below a quarter left, and breached."""
    clinic.minutes(1)
    clinic.minutes(6, epj=False)
    assert firing(clinic.ledger) == {"availability.service_down": [{"service": "epj"}]}
    clinic.minutes(40, epj=False)

    assert set(firing(clinic.ledger)) == {"availability.service_down", "availability.unplanned_downtime",
                                          "availability.sla_at_risk", "availability.sla_breached"}
    assert what(fired(clinic.ledger, "availability.service_down")[0]) == (
        "Tjenesten epj har ikke svart på prøvene sine i over 5 minutter.",
        "The service epj has not answered its probes for over 5 minutes.")
    assert what(fired(clinic.ledger, "availability.unplanned_downtime")[0])[0] == (
        "Tjenesten epj har vært nede utenfor planlagt vedlikehold i til sammen 30 minutter siste 1 døgn (grense 30 minutter).")
    at_risk = fired(clinic.ledger, "availability.sla_at_risk")[0]
    assert what(at_risk)[1] == ("The agreed service level (SLA) of epj is at risk this month: 23.6% of the unplanned downtime "
                                "the agreement allows is left (threshold 25%).")
    breached = fired(clinic.ledger, "availability.sla_breached")[0]
    assert breached["severity"] == "critical" and breached["cia"] == ["tilgjengelighet"] and breached["owner"] == "IKT-leder"


def test_a_service_that_drops_out_again_and_again(clinic: Clinic) -> None:
    """Three outages of two minutes (too short for service_down) fire service_unstable when the
    third has ended; two do not."""
    clinic.minutes(1)
    for outage in range(3):
        assert firing(clinic.ledger) == {}, f"after {outage} outage(s)"
        clinic.minutes(3, epj=False)
        clinic.minutes(2)

    assert firing(clinic.ledger) == {"availability.service_unstable": [{"service": "epj"}]}
    assert what(fired(clinic.ledger, "availability.service_unstable")[0]) == (
        "Tjenesten epj falt ut 3 ganger utenfor planlagt vedlikehold siste 1 døgn (grense 3).",
        "The service epj dropped out 3 times outside planned maintenance in the last 1 day (threshold 3).")


def test_announced_work_is_no_unplanned_downtime(clinic: Clinic) -> None:
    """The same 45 minutes inside the announced window: no unplanned-downtime, instability or SLA
    candidate. (service_down watches the probe itself, which cannot tell planned from not.)"""
    clinic.clock.advance(2 * 3600 + 5 * 60)  # 11:05 UTC, inside the window
    clinic.minutes(1)
    for _ in range(3):
        clinic.minutes(15, epj=False)
        clinic.minutes(1)

    outages = {dict(k)["planned"]: v for k, v in clinic.ledger.snapshot().values(OUTAGES).items() if dict(k)["service"] == "epj"}
    assert outages.get("false", 0) == 0 and outages["true"] == 3 and clinic.ledger.counter_value(DOWNTIME, {"service": "epj", "planned": "true"}) == 45 * 60
    assert set(firing(clinic.ledger)) == {"availability.service_down"}


def test_a_certificate_that_expires_in_ten_days(pki: Any, https_server: Any, ledger: Ledger) -> None:
    ca, cert, key = pki(10)
    url = https_server(cert, key)
    clock = FakeClock(datetime.now(timezone.utc))  # openssl made the certificate "now"
    install(ledger, RULES)

    run_collector_once(PROBES_COLLECTOR, ledger, settings=AvailabilitySettings(services=(Service("epj", "http", f"{url}/health", ca_file=ca),)),
                       clock=clock)

    assert firing(ledger) == {"availability.certificate_expiring": [{"service": "epj"}]}
    [doc] = fired(ledger, "availability.certificate_expiring")
    nb, en = what(doc)
    assert nb.startswith("TLS-sertifikatet til epj utløper om 9 døgn 23 timer") and nb.endswith("(grense 14 døgn).")
    assert en.startswith("The TLS certificate of epj expires in 9 days 23 hours") and "konfidensialitet" in doc["cia"]
    assert doc["value"] == pytest.approx(10 * 86400, abs=3600)
    assert timedelta(seconds=doc["threshold"]) == timedelta(days=14)
