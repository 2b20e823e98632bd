"""The firewall collectors over real files, into a real ledger, and ``normagent parse`` over every
fixture format."""

from __future__ import annotations

import io
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from normagent import Batch, Checkpoint, Count, Event
from normagent.ledger import Ledger
from normagent.loader import build_plugins
from normagent.logs import FileSource
from normagent.maintenance import Calendar, MaintenanceSettings, OneOffWindow, PlannedChange
from normagent.parsecmd import run_parse
from normagent.plugins.firewall.collectors import LINUX, WINDOWS_EVENTS, Device, LinuxSettings, WindowsEventSettings, planned_batch
from normagent.plugins.firewall.parse import RULE_CHANGE_EVENT, RULE_CHANGES
from normagent.plugins.firewall.rules import RULE_CHANGE
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
        assert ledger.counter_total("normagent_firewall_rule_changes_total") == 0
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
        assert ledger.counter_value("normagent_firewall_rule_changes_total", {"device": "local", "planned": "false"}) == 5
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


# --------------------------------------------------------------------------------------------
# Planned or not: the maintenance calendar


def test_a_rule_change_inside_a_maintenance_window_or_planned_change_is_planned(tmp_path: Path) -> None:
    """audit.log's five changes against a calendar with a window around one and a planned change
    around another: two planned, three not, in the counter and in each event."""
    root = tmp_path / "root"
    (root / "var" / "log" / "audit").mkdir(parents=True)
    shutil.copy(LOGS / "audit" / "audit.log", root / "var" / "log" / "audit" / "audit.log")
    calendar = Calendar(
        MaintenanceSettings(
            time_zone="UTC",
            windows=(OneOffWindow(start=datetime(2020, 2, 5, 12, tzinfo=timezone.utc), end=datetime(2020, 2, 5, 13, tzinfo=timezone.utc), what="Brannmur", role="driftsleverandør"),),
            changes=(PlannedChange(what="Nye brannmurregler", effect="ingen", start=datetime(2020, 11, 19, 18, tzinfo=timezone.utc), end=datetime(2020, 11, 19, 19, tzinfo=timezone.utc), role="nettleverandør"),),
        )
    )
    settings = LinuxSettings(source="files", files=FileSource(paths=("/var/log/audit/audit.log",), start_at="beginning", timezone="UTC"))
    clock = FakeClock(datetime(2026, 11, 23, tzinfo=timezone.utc))
    with Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
        batches = run_collector_once(LINUX, ledger, settings=settings, root=root, clock=clock, maintenance=calendar)

        assert ledger.counter_value(RULE_CHANGES, {"device": "local", "planned": "true"}) == 2
        assert ledger.counter_value(RULE_CHANGES, {"device": "local", "planned": "false"}) == 3
    events = {e.at.astimezone(timezone.utc).date().isoformat(): e.attrs["planned"] for b in batches for e in b.observations if isinstance(e, Event)}
    assert events == {"2017-05-16": False, "2020-02-05": True, "2020-11-19": True, "2020-05-28": False, "2020-03-11": False}


def test_without_a_calendar_every_change_is_unplanned(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "var" / "log" / "audit").mkdir(parents=True)
    shutil.copy(LOGS / "audit" / "audit.log", root / "var" / "log" / "audit" / "audit.log")
    settings = LinuxSettings(source="files", files=FileSource(paths=("/var/log/audit/audit.log",), start_at="beginning"))
    with Ledger.open(tmp_path / "l.db", clock=FakeClock()) as ledger:
        run_collector_once(LINUX, ledger, settings=settings, root=root)

        assert ledger.counter_value(RULE_CHANGES, {"device": "local", "planned": "false"}) == 5
        assert ledger.counter_value(RULE_CHANGES, {"device": "local", "planned": "true"}) == 0


def test_planned_is_decided_per_change_and_device_across_the_blocks_of_a_batch() -> None:
    """Two blocks' counts of two devices, one change of each device inside the window: the
    counts split exactly, nothing else in the batch changes."""
    at = datetime(2026, 11, 23, 7, 30, tzinfo=timezone.utc)
    calendar = Calendar(MaintenanceSettings(time_zone="UTC", windows=(OneOffWindow(start=at.replace(minute=0), end=at.replace(hour=8, minute=0)),)))
    def change(device: str, when: datetime) -> Event:
        return Event(RULE_CHANGE_EVENT, when, f"{device}:{when.isoformat()}", {"device": device, "source": "auditd"})
    other = Count("normagent_firewall_blocked_total", {"device": "edge", "direction": "in", "proto": "tcp"}, 7)
    batch = Batch(
        observations=[
            Count(RULE_CHANGES, {"device": "edge", "planned": "false"}, 2), other, change("edge", at), change("edge", at.replace(hour=9)),
            Count(RULE_CHANGES, {"device": "edge", "planned": "false"}, 1), change("edge", at.replace(hour=10)),
            Count(RULE_CHANGES, {"device": "core", "planned": "false"}, 1), change("core", at.replace(minute=59)),
        ],
        checkpoints=[Checkpoint("spool", 1)],
    )

    judged = planned_batch(batch, calendar)

    counts = {(dict(o.labels)["device"], dict(o.labels)["planned"]): o.value for o in judged.observations if isinstance(o, Count) and o.metric == RULE_CHANGES}
    assert counts == {("edge", "true"): 1, ("edge", "false"): 2, ("core", "true"): 1}
    assert [e.attrs["planned"] for e in judged.observations if isinstance(e, Event)] == [True, False, False, True]
    assert other in judged.observations and judged.checkpoints == batch.checkpoints


def test_the_default_rule_watches_only_unplanned_changes() -> None:
    """firewall.rule_change_unplanned: the rule-change counter, planned="false", per device;
    the label is declared, with both of its values preset for this host."""
    assert (RULE_CHANGE.watch, dict(RULE_CHANGE.labels), RULE_CHANGE.group_by) == (RULE_CHANGES, {"planned": "false"}, ("device",))
    spec = {m.name: m for m in LINUX.metrics}[RULE_CHANGES]
    assert spec.labels == ("device", "planned") and set(spec.preset) == {("local", "false"), ("local", "true")}
