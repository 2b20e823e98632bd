"""The firewall collectors over real files, into a real ledger, and ``normagent parse`` over every
fixture format."""

from __future__ import annotations

import io
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from normagent.ledger import Ledger
from normagent.loader import build_plugins
from normagent.logs import FileSource
from normagent.parsecmd import run_parse
from normagent.plugins.firewall.collectors import LINUX, WINDOWS_EVENTS, LinuxSettings, WindowsEventSettings, Device
from normagent.testing import FakeClock, run_collector_once

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LOGS = FIXTURES / "logs" / "firewall"


def blocked(ledger: Ledger) -> dict[tuple[str, ...], float]:
    return {tuple(v for _, v in labels): value for labels, value in ledger.snapshot().values("normagent_firewall_blocked_total").items() if value}


def test_wfp_drops_from_a_real_security_evtx(tmp_path: Path) -> None:
    """Security_short_selected.evtx holds two 5152 and one 5157 (inbound, TCP/3389 and ICMP);
    system.evtx's 2004 comes from Windows Setup, not the firewall, and is no rule change."""
    settings = WindowsEventSettings(paths=("evtx/Security_short_selected.evtx", "evtx/system.evtx"), devices={"web1": Device(senders=("temporal",))})
    with Ledger.open(tmp_path / "l.db", clock=FakeClock()) as ledger:
        run_collector_once(WINDOWS_EVENTS, ledger, settings=settings, root=FIXTURES)
        assert blocked(ledger) == {("web1", "in", "tcp"): 1, ("web1", "in", "icmp"): 2}
        assert ledger.counter_value("normagent_firewall_rule_changes_total", {"device": "web1"}) == 0
        run_collector_once(WINDOWS_EVENTS, ledger, settings=settings, root=FIXTURES)  # nothing new
        assert sum(blocked(ledger).values()) == 3


def test_kern_log_and_audit_log_from_files_counted_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "var" / "log" / "audit").mkdir(parents=True)
    shutil.copy(LOGS / "netfilter" / "kern.log", root / "var" / "log" / "kern.log")
    shutil.copy(LOGS / "audit" / "audit.log", root / "var" / "log" / "audit" / "audit.log")
    settings = LinuxSettings(source="files", files=FileSource(paths=("/var/log/kern.log", "/var/log/audit/audit.log"), start_at="beginning"))
    clock = FakeClock(datetime(2026, 11, 23, tzinfo=timezone.utc))
    with Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
        for _ in range(2):
            run_collector_once(LINUX, ledger, settings=settings, root=root, clock=clock)
        assert sum(blocked(ledger).values()) == 10
        assert ledger.counter_value("normagent_firewall_rule_changes_total", {"device": "local"}) == 5
        assert ledger.counter_value("normagent_log_lines_total", {"source": "firewall.linux", "result": "unparsed"}) == 0


def test_normagent_parse_understands_every_firewall_format() -> None:
    """What an operator runs before configuring a firewall: every fixture is recognised by the
    right collector, with nothing unparsed."""
    plugins = build_plugins(entry_points_enabled=False)
    paths = [str(p) for p in sorted(LOGS.glob("*/*.log"))] + [str(FIXTURES / "evtx" / "Security_short_selected.evtx")]
    out = io.StringIO()
    assert run_parse(paths, config=None, plugins=plugins, fmt="json", out=out, now=datetime(2026, 11, 23, tzinfo=timezone.utc)) == 0
    found = {Path(i["path"]).parent.name + "/" + Path(i["path"]).name: {c["collector"]: c for c in i["collectors"]} for i in json.loads(out.getvalue())["inputs"]}
    expect = {
        "asa/asa.log": ("firewall.appliances", 12),
        "fortigate/fortigate.log": ("firewall.appliances", 8),
        "pfsense/filterlog.log": ("firewall.appliances", 1),
        "netfilter/kern.log": ("firewall.linux", 10),
        "audit/audit.log": ("firewall.linux", 5),
        "windows/pfirewall.log": ("firewall.windows_log", 8),
        "evtx/Security_short_selected.evtx": ("firewall.windows_events", 3),
    }
    for name, (collector, parsed) in expect.items():
        result = found[name][collector]
        assert (result["parsed"], result["unparsed"], result["failed_lines"]) == (parsed, 0, 0), name
