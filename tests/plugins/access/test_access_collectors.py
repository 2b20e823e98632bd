"""access.logins over files through the real log driver and a real ledger: the generator's ground
truth, resumption without double counting, rotation, and the declared metrics."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from normagent import Count
from normagent.ledger import Ledger
from normagent.plugins.access.collectors import COLLECTORS, LOGINS, WINDOWS, LoginSettings, parse_logins
from normagent.plugins.access.tally import FAILED_LOGINS, LOCKOUTS, PASSWORD_RESETS, REASONS
from normagent.testing import observations, run_collector_once

ROOT = Path(__file__).parents[3]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_authlog", ROOT / "bench" / "gen_authlog.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_authlog"] = module
    spec.loader.exec_module(module)
    return module


def file_settings() -> LoginSettings:
    from normagent import FileSource

    return LoginSettings(prefer="files", files=FileSource(paths=("/var/log/auth.log",), start_at="beginning", timezone="Europe/Oslo"))


@pytest.fixture
def generated(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    """A 20,000-line auth.log ending a minute before the fake clock's now, and its truth."""
    log = tmp_path / "root" / "var" / "log" / "auth.log"
    log.parent.mkdir(parents=True)
    truth = _generator().write(log, 20_000, 7, datetime(2026, 11, 23, 6, 59, tzinfo=timezone.utc))
    return tmp_path / "root", truth


def expected(truth: dict[str, object]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    exp = truth["expected"]
    for source, reasons in exp["normagent_failed_logins_total"].items():  # type: ignore[index]
        for reason, n in reasons.items():
            out[(FAILED_LOGINS, (("reason", reason), ("source", source)))] = n
    for source, n in exp["normagent_account_lockouts_total"].items():  # type: ignore[index]
        out[(LOCKOUTS, (("source", source),))] = n
    for source, kinds in exp["normagent_password_resets_total"].items():  # type: ignore[index]
        for kind, n in kinds.items():
            out[(PASSWORD_RESETS, (("kind", kind), ("source", source)))] = n
    return out


def test_the_generated_log_counts_its_ground_truth(generated: tuple[Path, dict[str, object]], ledger: Ledger) -> None:
    """Through the driver, the parser and the ledger: every reason equals the generator's truth."""
    root, truth = generated

    run_collector_once(LOGINS, ledger, settings=file_settings(), root=root)

    snapshot = ledger.snapshot()
    got = {
        (metric, labels): value
        for metric in (FAILED_LOGINS, LOCKOUTS, PASSWORD_RESETS)
        for labels, value in snapshot.values(metric).items()
        if value
    }
    assert got == expected(truth)
    lines = sum(ledger.counter_value("normagent_log_lines_total", {"source": "access.logins", "result": r}) for r in ("parsed", "ignored", "unparsed"))
    assert lines == truth["lines"]
    assert ledger.counter_value("normagent_log_lines_total", {"source": "access.logins", "result": "unparsed"}) == 0


def test_a_second_run_counts_only_new_lines(generated: tuple[Path, dict[str, object]]) -> None:
    root, _ = generated
    log = root / "var" / "log" / "auth.log"
    from normagent.testing import MemoryCheckpoints

    state = MemoryCheckpoints()
    run_collector_once(LOGINS, settings=file_settings(), root=root, state=state)
    with log.open("a") as fh:
        fh.write("Nov 23 07:59:00 clinic-srv1 sshd[9]: Failed password for root from 203.0.113.9 port 5 ssh2\n")

    again = observations(run_collector_once(LOGINS, settings=file_settings(), root=root, state=state))

    assert sum(o.value for o in again if isinstance(o, Count) and o.metric == FAILED_LOGINS) == 1


def test_metrics_are_declared_with_closed_presets() -> None:
    specs = {m.name: m for spec in COLLECTORS for m in spec.metrics}

    failed = specs[FAILED_LOGINS]
    assert failed.labels == ("source", "reason") and failed.section == "Driftsstatus"
    assert {reason for _, reason in failed.preset} <= set(REASONS)
    assert ("sshd", "unknown_user") in failed.preset and ("windows", "locked_out") in failed.preset
    assert specs[LOCKOUTS].labels == ("source",) and specs[PASSWORD_RESETS].labels == ("source", "kind")
    assert specs["normagent_eventlog_errors_total"].preset == (("journal", "other"), ("system", "other"), ("application", "other"))


def test_preset_series_exist_at_zero_in_the_ledger(ledger: Ledger) -> None:
    ledger.declare(LOGINS.metrics)

    assert ledger.counter_value(FAILED_LOGINS, {"source": "sshd", "reason": "bad_key"}) == 0


def test_every_label_value_the_fixtures_produce_is_in_the_closed_sets() -> None:
    """No label value outside the declared sets (and never a name or an address)."""
    from tests.plugins.access.cases import LINUX
    from normagent.testing import parse_text

    result = parse_text(parse_logins, LINUX.read_text())
    specs = {m.name: m for spec in COLLECTORS for m in spec.metrics}
    for obs in result.observations:
        if isinstance(obs, Count):
            assert tuple(dict(obs.labels)[name] for name in specs[obs.metric].labels) in specs[obs.metric].preset, obs


def test_windows_is_off_until_configured() -> None:
    assert WINDOWS.enabled_by_default is False
    assert LOGINS.enabled_by_default is True


def test_the_logins_parser_takes_both_kinds_of_block() -> None:
    from normagent import JournalEntry, ParseContext, RecordBlock, TextBlock
    from normagent.testing import EPOCH, test_pseudonymiser

    ctx = ParseContext(now=EPOCH, tz=timezone.utc, pseudonymise=test_pseudonymiser())
    line = b"Nov 23 07:25:53 h sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2\n"
    entry = JournalEntry({"SYSLOG_IDENTIFIER": "sshd", "MESSAGE": line.decode().split(": ", 1)[1].strip()}, EPOCH, "c")

    text = parse_logins(TextBlock(line, "t", EPOCH, 1), ctx)
    record = parse_logins(RecordBlock((entry,), "t"), ctx)

    assert text.parsed == record.parsed == 1


def test_json_truth_is_what_the_generator_promises(generated: tuple[Path, dict[str, object]]) -> None:
    root, truth = generated

    on_disk = json.loads((root / "var" / "log" / "auth.truth.json").read_text())

    assert on_disk == truth and truth["lines"] == 20_000
    assert 0.04 < truth["failure_lines"] / truth["lines"] < 0.12  # type: ignore[operator]
    assert sum(1 for _ in (root / "var" / "log" / "auth.log").open()) == 20_000
