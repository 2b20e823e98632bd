"""updates.windows over the real System.evtx fixture (tests/fixtures/evtx, MIT): its
WindowsUpdateClient records are 116 x 19 (installed), 5 x 20 (failed), 119 x 43 and 137 x 44."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from normagent import Rollup
from normagent.ledger import Ledger
from normagent.model import WindowsEvent
from normagent.plugins.updates.collectors import WINDOWS
from normagent.plugins.updates.settings import WindowsUpdateSettings
from normagent.plugins.updates.vocab import APPLIED, FAILED
from normagent.plugins.updates.windows import parse_windows_update
from normagent.testing import observations, run_collector_once
from normagent.model import ParseContext
from normagent.testing import test_pseudonymiser

EVTX = Path(__file__).parents[2] / "fixtures" / "evtx" / "system.evtx"
LINES = "normagent_log_lines_total"


def test_installed_and_failed_updates_by_kind(tmp_path: Path, ledger: Ledger) -> None:
    shutil.copy(EVTX, tmp_path / "System.evtx")
    settings = WindowsUpdateSettings(paths=("/System.evtx",))
    batches = run_collector_once(WINDOWS, ledger, settings=settings, root=tmp_path)
    got = {(dict(k)["kind"], dict(k)["result"]): v for k, v in ledger.snapshot().values(APPLIED).items() if v}
    # 19 x 116: 21 security (Defender definitions, cumulative updates, the removal tool,
    # Flash), 95 others (Store apps); 20 x 5: 4 x the 2017-07 cumulative update, 1 x the removal tool
    assert got == {("security", "success"): 21, ("other", "success"): 95, ("security", "failure"): 5}
    assert ledger.counter_value(LINES, {"source": "updates.windows", "result": "parsed"}) == 121
    # 43 and 44 are read and not counted; so are the two Kernel-Boot records that share id 20
    assert ledger.counter_value(LINES, {"source": "updates.windows", "result": "ignored"}) == 119 + 137 + 2
    failed = sorted({o.key for o in observations(batches) if isinstance(o, Rollup) and o.name == FAILED})
    assert failed[0].startswith("2017-07 Cumulative Update for Windows 10 Version 1703") and len(failed) == 2
    run_collector_once(WINDOWS, ledger, settings=settings, root=tmp_path)
    assert ledger.counter_value(LINES, {"source": "updates.windows", "result": "parsed"}) == 121


def event(event_id: int, title: str, provider: str = "Microsoft-Windows-WindowsUpdateClient") -> WindowsEvent:
    return WindowsEvent(7, datetime(2026, 11, 20, tzinfo=timezone.utc), "System", provider, event_id, 4, 0, "host", {"updateTitle": title})


def test_a_record_without_a_title_is_unparsed_and_unknown_ids_too() -> None:
    ctx = ParseContext(now=datetime(2026, 11, 23, tzinfo=timezone.utc), tz=timezone.utc, pseudonymise=test_pseudonymiser())
    assert parse_windows_update(event(19, ""), ctx) is None
    assert parse_windows_update(event(31, "x"), ctx) is None
    assert parse_windows_update(event(43, "x"), ctx) == []
    assert parse_windows_update(event(19, "2026-11 Security Update for Windows Server (KB5000001)"), ctx)
