"""The firewall's default rules fire from what its collectors read: kern.log and audit.log lines
and an appliance's syslog spool, committed to a real ledger whose engine runs the plugin's rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from normagent.ledger import Ledger
from normagent.logs import FileSource
from normagent.plugins.firewall.collectors import APPLIANCES, LINUX, ApplianceSettings, Device, LinuxSettings
from normagent.plugins.firewall.rules import RULES
from normagent.sources.spool import SPOOL_KEY, SpoolShare
from normagent.sources.syslog import SPOOL_NAME, spool_line
from normagent.testing import FakeClock, run_collector_once
from tests.support.deviation_rules import fired, firing, install, what

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
FILES = LinuxSettings(source="files", files=FileSource(paths=("/var/log/kern.log", "/var/log/audit/audit.log"), start_at="beginning",
                                                         timezone="UTC"))


def kernel_line(at: datetime, inside: str, outside: str, dport: int, src: str = "10.1.2.3") -> str:
    stamp = at.strftime("%b %d %H:%M:%S")
    return (f"{stamp} clinic-srv1 kernel: [UFW BLOCK] IN={inside} OUT={outside} SRC={src} DST=198.51.100.7 LEN=60 TOS=0x00 "
            f"PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=40000 DPT={dport} WINDOW=64240 RES=0x00 SYN URGP=0\n")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "var" / "log" / "audit").mkdir(parents=True)
    return tmp_path / "root"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def read_linux(ledger: Ledger, root: Path, clock: FakeClock, kern: str = "", audit: str = "") -> None:
    with (root / "var/log/kern.log").open("a") as f:
        f.write(kern)
    with (root / "var/log/audit/audit.log").open("a") as f:
        f.write(audit)
    run_collector_once(LINUX, ledger, settings=FILES, root=root, clock=clock)


def test_many_blocked_connections_out_of_the_network(ledger: Ledger, root: Path, clock: FakeClock) -> None:
    """99 blocked connections out are below the threshold, the 100th fires; blocks coming in do not count."""
    install(ledger, RULES)
    start = NOW - timedelta(minutes=30)
    read_linux(ledger, root, clock, "".join(kernel_line(start + timedelta(seconds=i), "", "eth0", 4444) for i in range(99))
               + "".join(kernel_line(start, "eth0", "", 22) for _ in range(300)))
    assert "firewall.outbound_blocked" not in firing(ledger)

    read_linux(ledger, root, clock, kernel_line(start + timedelta(minutes=5), "", "eth0", 4444))

    assert firing(ledger)["firewall.outbound_blocked"] == [{"device": "local"}]
    [doc] = fired(ledger, "firewall.outbound_blocked")
    assert what(doc) == (
        "Brannmuren (local) blokkerte 100 forsøk på å koble seg ut fra nettet siste 1 time (grense 100).",
        "The firewall (local) blocked 100 attempts to connect out of the network in the last 1 hour (threshold 100).",
    )
    assert doc["cia"] == ["konfidensialitet", "integritet"] and doc["owner"] == "IKT-leder" and doc["personal_data"] is False
    assert "10.1.2.3" not in str(doc) and "198.51.100.7" not in str(doc)


def test_a_burst_on_one_port(ledger: Ledger, root: Path, clock: FakeClock) -> None:
    """1,000 blocked attempts on tcp/3389 from many addresses fire for that port; 999 on tcp/22 do not."""
    install(ledger, RULES)
    start = NOW - timedelta(minutes=20)
    lines = [kernel_line(start + timedelta(seconds=i % 600), "eth0", "", 3389, src=f"203.0.113.{i % 250}") for i in range(1000)]
    lines += [kernel_line(start, "eth0", "", 22) for _ in range(999)]
    read_linux(ledger, root, clock, "".join(lines))

    assert firing(ledger)["firewall.port_burst"] == [{"key": "tcp/3389"}]
    [doc] = fired(ledger, "firewall.port_burst")
    assert what(doc)[0].startswith("Brannmuren blokkerte 1\u00a0000 forsøk mot port tcp/3389 i løpet av døgnet")
    assert "203.0.113." not in str(doc)


def test_a_rule_change_fires_and_resolves_when_the_window_has_passed(ledger: Ledger, root: Path, clock: FakeClock) -> None:
    install(ledger, RULES)
    at = NOW - timedelta(minutes=10)
    audit = f"type=NETFILTER_CFG msg=audit({at.timestamp():.3f}:501): table=filter family=2 entries=83 op=replace\n"

    read_linux(ledger, root, clock, audit=audit)

    assert firing(ledger)["firewall.rule_change_unplanned"] == [{"device": "local"}]
    [doc] = fired(ledger, "firewall.rule_change_unplanned")
    assert what(doc)[1] == "The rule set or configuration of the firewall (local) was changed outside a plan 1 time(s) in the last 1 hour."
    assert doc["cia"] == ["integritet"] and doc["severity"] == "warning"
    clock.advance(2 * 3600)
    ledger.evaluate_rules()
    clock.advance(15 * 60)
    ledger.evaluate_rules()
    assert "firewall.rule_change_unplanned" not in firing(ledger)


def test_an_appliance_that_stops_sending(tmp_path: Path, ledger: Ledger, clock: FakeClock) -> None:
    """A device heard from once and then silent: pending once no message lies in the (hour-bucket)
    window, firing after `for`, resolved when it speaks again and the hold has passed."""
    install(ledger, RULES)
    spool = tmp_path / "spool"
    spool.mkdir()
    share = SpoolShare(spool, lambda: [ledger.checkpoints(APPLIANCES.name).get(SPOOL_KEY)])
    settings = ApplianceSettings(devices={"edge": Device(senders=("192.0.2.1",))})

    def hear(message: bytes) -> None:
        with (spool / SPOOL_NAME).open("ab") as f:
            f.write(spool_line(clock.now(), "192.0.2.1", message))
        run_collector_once(APPLIANCES, ledger, settings=settings, syslog_spool=share, clock=clock)

    hear(b"<134>Nov 23 07:00:00 fw01 filterlog[1]: 5,,,0,em0,match,block,in,4,0x0,,64,1,0,none,6,tcp,60,198.51.100.9,10.0.0.1,1234,22,0")
    clock.advance(3600 + 59 * 60)  # 08:59: the 07:00 hour bucket is still inside the window
    ledger.evaluate_rules()
    assert ledger.candidates() == []
    clock.advance(60)
    ledger.evaluate_rules()
    assert [c.state for c in ledger.candidates()] == ["pending"]
    clock.advance(15 * 60)
    ledger.evaluate_rules()

    assert firing(ledger) == {"firewall.device_silent": [{"device": "edge"}]}
    [doc] = fired(ledger, "firewall.device_silent")
    assert what(doc) == ("Brannmuren (edge) har ikke sendt en eneste loggmelding på over 1 time.",
                         "The firewall (edge) has not sent a single log message for over 1 hour.")
    hear(b"<134>Nov 23 09:15:00 fw01 sshd[2]: anything at all")
    clock.advance(15 * 60)
    ledger.evaluate_rules()
    assert [c.state for c in ledger.candidates()] == ["resolved"]
