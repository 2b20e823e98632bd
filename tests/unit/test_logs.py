"""The log-collector driver: each block's counts and checkpoint in one batch, every line counted once.

Collectors run against a real ledger (SQLite), real files, the real journalctl over the committed
journal fixtures and the real evtx parser over the committed EVTX fixtures.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import re
import shutil
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from normagent.errors import InputError, NoData, RunFailed
from normagent.ledger import Ledger
from normagent.logs import (
    BLOCK_FAILURES,
    BYTES,
    FILE_ERRORS,
    INVALID_UTF8,
    LAG,
    LINES,
    LOG_METRICS,
    ParserFailed,
    evtx_log_collector,
    file_log_collector,
    journal_log_collector,
    line_parser,
    merge_counts,
    ParseJob,
    parse_each,
    parse_inputs,
    record_parser,
)
from normagent.model import (
    CollectorSpec,
    Count,
    Event,
    JournalEntry,
    JSONValue,
    LiveCarry,
    LogBlock,
    MetricSpec,
    ParseContext,
    ParseProblem,
    ParseResult,
    RecordBlock,
    TextBlock,
    WindowsEvent,
)
from normagent.sources.command import run_command
from normagent.sources.evtx import EvtxSettings
from normagent.sources.files import FILE_ERROR_REASONS, FileSource, NotRegularFile
from normagent.sources import sdjournal
from normagent.sources.journald import JournalSettings
from normagent.testing import EPOCH, FakeClock, make_context, parse_text, run_collector_once, test_pseudonymiser
from tests.support.tools import require_tool, skip_for_host

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FAILED = MetricSpec("test_failed_logins_total", "counter", "Failed logins seen.", labels=("via",), section="Driftsstatus")
SOURCE = "test.auth"


def lines(first: int, count: int, verdict: str = "Accepted") -> bytes:
    return b"".join(b"Nov 23 07:00:00 host sshd[1]: %s password for u%d\n" % (verdict.encode(), i) for i in range(first, first + count))


def auth_line(line: str, ctx: ParseContext) -> list[Count] | None:
    """Failed password → counted; anything else with "password" that is not Accepted → unparsed."""
    if "Failed password" in line:
        return [Count(FAILED.name, {"via": "ssh"})]
    if "Accepted password" in line:
        return []
    return None


PARSER = line_parser(auth_line, prefilter=b"password")


@dataclass(frozen=True, slots=True)
class AuthSettings:
    files: FileSource = FileSource(paths=("/var/log/auth.log",), start_at="beginning", block_bytes=256)


def collector(parser: Any = PARSER, settings: type = AuthSettings, **kw: Any) -> CollectorSpec:
    """The test collector; one batch per 256-byte block unless ``commit_bytes`` says otherwise."""
    kw.setdefault("commit_bytes", 1)
    return file_log_collector(SOURCE, help="Test auth log.", parser=parser, settings=settings, metrics=(FAILED,), **kw)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "var" / "log").mkdir(parents=True)
    return tmp_path


def write(root: Path, data: bytes, name: str = "auth.log", mode: str = "ab") -> Path:
    path = root / "var" / "log" / name
    with open(path, mode) as f:
        f.write(data)
    return path


def outcomes(ledger: Ledger, source: str = SOURCE) -> dict[str, float]:
    return {r: ledger.counter_value(LINES, {"source": source, "result": r}) for r in ("parsed", "ignored", "unparsed")}


# --------------------------------------------------------------------------------------------
# the spec


def test_log_metrics_are_added_to_the_declared_metrics() -> None:
    spec = collector()
    names = [m.name for m in spec.metrics]
    assert names[0] == FAILED.name
    assert set(names) == {FAILED.name, *(m.name for m in LOG_METRICS)}
    assert spec.parser is PARSER and spec.settings is AuthSettings


def test_settings_without_a_file_source_are_refused_when_the_plugin_loads() -> None:
    @dataclass(frozen=True, slots=True)
    class NoFiles:
        paths: tuple[str, ...] = ()

    with pytest.raises(TypeError, match="FileSource"):
        collector(settings=NoFiles)


def test_a_file_source_subclass_is_its_own_settings(root: Path, ledger: Ledger) -> None:
    @dataclass(frozen=True, slots=True)
    class Own(FileSource):
        paths: tuple[str, ...] = ("/var/log/auth.log",)
        start_at: Any = "beginning"

    write(root, lines(0, 2, "Failed"))
    run_collector_once(collector(settings=Own), ledger, root=root)
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 2


# --------------------------------------------------------------------------------------------
# counting


def test_every_line_has_one_outcome_and_the_counts_match(root: Path, ledger: Ledger) -> None:
    write(root, lines(0, 7, "Failed") + lines(7, 5) + b"Nov 23 07:00:00 host sshd[1]: password weirdness\n" + b"unrelated\n" * 4)
    run_collector_once(collector(), ledger, root=root)
    assert outcomes(ledger) == {"parsed": 7, "ignored": 5 + 4, "unparsed": 1}
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 7
    size = (root / "var/log/auth.log").stat().st_size
    assert ledger.counter_value(BYTES, {"source": SOURCE}) == size
    assert ledger.snapshot().values(LAG)[(("source", SOURCE),)] == 0


def test_series_exist_at_zero_after_the_first_run(root: Path, ledger: Ledger) -> None:
    write(root, b"")
    run_collector_once(collector(), ledger, root=root)
    series = ledger.snapshot().series
    assert {k: v for k, v in series[LINES].items()} == {
        (("result", r), ("source", SOURCE)): 0.0 for r in ("parsed", "ignored", "unparsed")
    }
    for metric in (BYTES, INVALID_UTF8, BLOCK_FAILURES, LAG):
        assert series[metric] == {(("source", SOURCE),): 0.0}


def test_lag_shows_what_is_left_behind_a_half_written_line(root: Path, ledger: Ledger) -> None:
    write(root, lines(0, 2) + b"Nov 23 07:00:00 host sshd[1]: Fail")
    run_collector_once(collector(), ledger, root=root)
    assert ledger.snapshot().values(LAG)[(("source", SOURCE),)] == len(b"Nov 23 07:00:00 host sshd[1]: Fail")
    assert sum(outcomes(ledger).values()) == 2


def test_invalid_utf8_lines_are_counted_and_parsed_with_replacement(root: Path, ledger: Ledger) -> None:
    write(root, b"Nov 23 07:00:00 h\xe9st sshd[1]: Failed password for \xff\n" + lines(0, 1, "Failed"))
    run_collector_once(collector(), ledger, root=root)
    assert ledger.counter_value(INVALID_UTF8, {"source": SOURCE}) == 1
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 2


def test_runs_resume_and_count_each_line_once(root: Path, ledger: Ledger) -> None:
    spec = collector()
    write(root, lines(0, 30, "Failed"))
    run_collector_once(spec, ledger, root=root)
    run_collector_once(spec, ledger, root=root)
    write(root, lines(30, 12, "Failed"))
    run_collector_once(spec, ledger, root=root)
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 42
    assert outcomes(ledger)["parsed"] == 42


def commit_some(spec: CollectorSpec, ledger: Ledger, root: Path, keep: int, **kw: Any) -> int:
    """Run a collector, commit only its first ``keep`` batches, then die (the generator is dropped)."""
    ledger.declare(spec.metrics)
    ctx = make_context(spec, root=root, state=ledger.checkpoints(spec.name), **kw)
    batches = spec.collect(ctx)
    done = 0
    for batch in batches:
        if done == keep:
            break
        ledger.commit(spec.name, batch)
        done += 1
    batches.close()  # type: ignore[attr-defined]
    return done


@pytest.mark.parametrize("keep", [0, 1, 2, 5])
def test_a_crash_between_batches_neither_loses_nor_repeats_a_line(root: Path, ledger: Ledger, keep: int) -> None:
    spec = collector()
    write(root, lines(0, 50, "Failed"))
    assert commit_some(spec, ledger, root, keep) == keep
    partial = ledger.counter_value(FAILED.name, {"via": "ssh"})
    assert partial == outcomes(ledger)["parsed"]  # counts and position always agree
    run_collector_once(spec, ledger, root=root)
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 50
    assert ledger.counter_value(BYTES, {"source": SOURCE}) == (root / "var/log/auth.log").stat().st_size


def test_blocks_are_gathered_into_batches_of_commit_bytes(root: Path, ledger: Ledger) -> None:
    write(root, lines(0, 100, "Failed"))  # 5,000 bytes: about 20 blocks of 256 bytes
    batches = run_collector_once(collector(commit_bytes=2000), ledger, root=root)
    assert len(batches) == 3  # 2,000 + 2,000 + the rest
    assert [c.key for c in batches[0].checkpoints] == ["pattern:/var/log/auth.log", "file:/var/log/auth.log"]
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 100


def test_a_batch_is_committed_early_once_it_holds_commit_observations(
    root: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parser that gives an observation per line must not gather a whole ``COMMIT_BYTES`` of
    them in memory: the batch is committed once it holds ``COMMIT_OBSERVATIONS``, blocks whole."""
    from normagent import logs

    def per_line(block: LogBlock, ctx: ParseContext) -> ParseResult:
        n = block.line_count
        return ParseResult(observations=[Count(FAILED.name, {"via": "ssh"}) for _ in range(n)], parsed=n)

    monkeypatch.setattr(logs, "COMMIT_OBSERVATIONS", 12)
    write(root, lines(0, 100, "Failed"))  # 100 lines in about 20 blocks of 256 bytes
    batches = run_collector_once(collector(parser=per_line, commit_bytes=10**9), ledger, root=root)
    failed = [sum(1 for o in b.observations if isinstance(o, Count) and o.metric == FAILED.name) for b in batches]
    assert sum(failed) == 100 and ledger.counter_value(FAILED.name, {"via": "ssh"}) == 100
    assert len(failed) >= 100 // (12 + 5) and all(12 <= n < 12 + 5 for n in failed[:-1]), failed  # a block: at most 5 lines


def test_a_batch_leaves_before_the_next_block_is_parsed(root: Path) -> None:
    """What a parser gathered since the last batch is exactly what the next batch's checkpoints
    cover: the driver yields a batch before it parses another block (access.logins adds up each
    batch's counts and rollup rows on this, docs/plugins.md)."""
    write(root, lines(0, 100, "Failed"))  # about 20 blocks of 256 bytes, batches of 2,000
    parsed: list[int] = []

    def recording(block: TextBlock, ctx: ParseContext) -> ParseResult:
        parsed.append(len(block.data))
        return PARSER(block, ctx)

    spec = collector(recording, commit_bytes=2000)
    read = 0
    for batch in spec.collect(make_context(spec, root=root)):
        read += sum(o.value for o in batch.observations if isinstance(o, Count) and o.metric == BYTES)
        assert sum(parsed) == read
    assert read == (root / "var/log/auth.log").stat().st_size and len(parsed) > 10


def test_a_rotation_is_followed_through_the_driver(root: Path, ledger: Ledger) -> None:
    spec = collector()
    path = write(root, lines(0, 3, "Failed"))
    run_collector_once(spec, ledger, root=root)
    write(root, lines(3, 2, "Failed"))
    path.rename(path.with_name("auth.log.1"))
    write(root, lines(5, 4, "Failed"))
    run_collector_once(spec, ledger, root=root)
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 9


def test_no_matching_file_is_no_data(root: Path, ledger: Ledger) -> None:
    with pytest.raises(NoData, match="/var/log/auth.log"):
        run_collector_once(collector(), ledger, root=root)
    write(root, lines(0, 2, "Failed"))  # appears later: read from its start
    run_collector_once(collector(), ledger, root=root)
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 2


def test_an_unreadable_path_fails_the_run_after_the_others_are_read(root: Path, ledger: Ledger) -> None:
    @dataclass(frozen=True, slots=True)
    class Two:
        files: FileSource = FileSource(paths=("/var/log/auth.log", "/var/log/secure"), start_at="beginning")

    write(root, lines(0, 2, "Failed"))
    (root / "var/log/secure").mkdir()
    with pytest.raises(RunFailed, match="secure") as err:
        run_collector_once(collector(settings=Two), ledger, root=root)
    assert err.value.reason == "not_a_regular_file" and isinstance(err.value.__cause__, OSError)
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 2


def test_a_fifo_at_a_log_path_fails_the_run_with_a_counted_reason_and_the_others_are_read(root: Path, ledger: Ledger) -> None:
    """Issue 9 item 16: the run neither blocks on the FIFO nor hides it; the next run says it again."""
    @dataclass(frozen=True, slots=True)
    class Two:
        files: FileSource = FileSource(paths=("/var/log/auth.log", "/var/log/secure"), start_at="beginning")

    os.mkfifo(root / "var/log/auth.log")
    write(root, lines(0, 2, "Failed"), name="secure")
    spec = collector(settings=Two)
    for run in (1, 2):
        with pytest.raises(RunFailed, match="auth.log is a FIFO") as err:
            run_collector_once(spec, ledger, root=root)
        assert err.value.reason == "not_a_regular_file" and isinstance(err.value.__cause__, NotRegularFile)
        errors = {r: ledger.counter_value(FILE_ERRORS, {"source": SOURCE, "reason": r}) for r in FILE_ERROR_REASONS}
        assert errors == {"not_a_regular_file": run, "permission_denied": 0, "unreadable": 0}
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 2


def test_a_glob_whose_directory_is_a_link_loop_fails_the_run_with_a_counted_reason(root: Path, ledger: Ledger) -> None:
    """glob lists nothing and says nothing for a directory it cannot list; the run said "no file
    matches", as if the directory were empty. Now it fails with why, after the other paths are read."""
    @dataclass(frozen=True, slots=True)
    class Two:
        files: FileSource = FileSource(paths=("/var/log/auth.log", "/var/log/app/*.log"), start_at="beginning")

    write(root, lines(0, 2, "Failed"))
    (root / "var/log/app").symlink_to("app")  # ELOOP: "Too many levels of symbolic links"
    for run in (1, 2):
        with capture_logs() as logs, pytest.raises(RunFailed, match="var/log/app") as err:
            run_collector_once(collector(settings=Two), ledger, root=root)
        assert err.value.reason == "unreadable" and isinstance(err.value.__cause__, OSError)
        assert [e["pattern"] for e in logs if e["event"] == "log_directory_unlistable"] == ["/var/log/app/*.log"]
        errors = {r: ledger.counter_value(FILE_ERRORS, {"source": SOURCE, "reason": r}) for r in FILE_ERROR_REASONS}
        assert errors == {"not_a_regular_file": 0, "permission_denied": 0, "unreadable": run}
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 2


@pytest.mark.parametrize(("make", "kind"), [
    (lambda p: os.mkfifo(p), "a FIFO"),
    (lambda p: socket.socket(socket.AF_UNIX).bind(str(p)), "a socket"),
], ids=["fifo", "socket"])
def test_a_glob_matching_a_fifo_fails_the_run_with_a_counted_reason_and_reads_the_rest(
    root: Path, ledger: Ledger, make: Callable[[Path], Any], kind: str
) -> None:
    """A log replaced by a pipe (a syslog daemon told to write to a FIFO) was passed over without a
    word when a glob matched it, and its lines were lost unseen; a configured path said why. Now
    the glob's match says so too, and the other matches are read."""
    @dataclass(frozen=True, slots=True)
    class Globbed:
        files: FileSource = FileSource(paths=("/var/log/app/*.log",), start_at="beginning")

    (root / "var/log/app").mkdir()
    (root / "var/log/app/old.log").mkdir()  # a directory the glob matches: no file, nothing said
    make(root / "var/log/app/auth.log")
    write(root, lines(0, 2, "Failed"), name="app/secure.log")
    for run in (1, 2):
        with capture_logs() as logs, pytest.raises(RunFailed, match=f"auth.log is {kind}") as err:
            run_collector_once(collector(settings=Globbed), ledger, root=root)
        assert err.value.reason == "not_a_regular_file" and isinstance(err.value.__cause__, NotRegularFile)
        said = [(e["path"], e["reason"]) for e in logs if e["event"] == "log_file_unreadable"]
        assert said == [("/var/log/app/auth.log", "not_a_regular_file")]
        errors = {r: ledger.counter_value(FILE_ERRORS, {"source": SOURCE, "reason": r}) for r in FILE_ERROR_REASONS}
        assert errors == {"not_a_regular_file": run, "permission_denied": 0, "unreadable": 0}
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 2


def test_a_glob_whose_directory_is_missing_is_still_no_data(root: Path, ledger: Ledger) -> None:
    @dataclass(frozen=True, slots=True)
    class Globbed:
        files: FileSource = FileSource(paths=("/var/log/app/*.log",), start_at="beginning")

    with pytest.raises(NoData, match="no file matches"):
        run_collector_once(collector(settings=Globbed), ledger, root=root)


# --------------------------------------------------------------------------------------------
# time budget


def slow_parser(clock: FakeClock, seconds: float) -> Any:
    def parse(block: LogBlock, ctx: ParseContext) -> ParseResult:
        clock.advance(seconds)  # each block "takes" this long
        return PARSER(block, ctx)

    return parse


def test_a_long_catch_up_stops_before_the_deadline_and_resumes(root: Path, ledger: Ledger) -> None:
    clock = FakeClock()
    spec = collector(parser=slow_parser(clock, 1.0), timeout=timedelta(seconds=10))
    write(root, lines(0, 200, "Failed"))  # ~40 blocks of 256 bytes
    with capture_logs() as logs:
        first = run_collector_once(spec, ledger, root=root, clock=clock)
    assert 0 < ledger.counter_value(FAILED.name, {"via": "ssh"}) < 200
    assert len(first) <= 9  # stopped at 80 % of 10 s, one block per second
    assert any(e["event"] == "log_read_paused" for e in logs)
    assert ledger.snapshot().values(LAG)[(("source", SOURCE),)] > 0
    for _ in range(10):
        run_collector_once(spec, ledger, root=root, clock=clock)
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 200


@pytest.mark.parametrize("commit_bytes", [1, 10**9], ids=["batch-per-block", "one-batch"])
def test_a_shutdown_during_a_catch_up_ends_the_run_at_the_next_block_keeping_what_was_read(
    root: Path, ledger: Ledger, commit_bytes: int
) -> None:
    """Issue 9 item 21: the reader only looked at its soft deadline, so SIGTERM waited the whole grace."""
    stop = threading.Event()
    blocks = 0

    def parse(block: LogBlock, ctx: ParseContext) -> ParseResult:
        nonlocal blocks
        blocks += 1
        if blocks == 3:
            stop.set()  # SIGTERM arrives while the third block is being parsed
        return PARSER(block, ctx)

    spec = collector(parser=parse, commit_bytes=commit_bytes, timeout=timedelta(hours=1))
    write(root, lines(0, 200, "Failed"))  # ~40 blocks of 256 bytes
    with capture_logs() as logs:
        run_collector_once(spec, ledger, root=root, stop_requested=stop.is_set)
    counted = ledger.counter_value(FAILED.name, {"via": "ssh"})
    assert blocks == 3 and 0 < counted < 200
    assert sum(outcomes(ledger).values()) == counted  # the three blocks, all committed
    assert [e["reason"] for e in logs if e["event"] == "log_read_paused"] == ["shutdown"]
    run_collector_once(spec, ledger, root=root)  # after the restart: the rest, once
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 200


# --------------------------------------------------------------------------------------------
# parser failures


def poisoned(marker: bytes = b"POISON") -> Any:
    """A parser that raises on any block holding ``marker`` (as a buggy regex might)."""

    def parse(block: LogBlock, ctx: ParseContext) -> ParseResult:
        assert isinstance(block, TextBlock)
        if marker in block.data:
            raise ValueError("cannot handle this line")
        return PARSER(block, ctx)

    return parse


def test_a_parser_failure_fails_the_run_without_moving_the_checkpoint(root: Path, ledger: Ledger) -> None:
    spec = collector(parser=poisoned())
    write(root, lines(0, 20, "Failed") + b"POISON Failed password\n" + lines(20, 5, "Failed"))
    with pytest.raises(ParserFailed):
        run_collector_once(spec, ledger, root=root)
    before = ledger.counter_value(FAILED.name, {"via": "ssh"})
    assert 0 < before < 20  # the blocks before the poisoned one are kept
    assert ledger.counter_value(BLOCK_FAILURES, {"source": SOURCE}) == 1
    with pytest.raises(ParserFailed):
        run_collector_once(spec, ledger, root=root)
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == before


def test_a_block_that_keeps_failing_is_parsed_line_by_line_on_the_third_try(root: Path, ledger: Ledger) -> None:
    spec = collector(parser=poisoned())
    write(root, lines(0, 20, "Failed") + b"POISON Failed password for carol\n" + lines(20, 5, "Failed"))
    for _ in range(2):
        with pytest.raises(ParserFailed):
            run_collector_once(spec, ledger, root=root)
    with capture_logs() as logs:
        run_collector_once(spec, ledger, root=root)
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 25
    assert outcomes(ledger) == {"parsed": 25, "ignored": 0, "unparsed": 1}
    assert ledger.counter_value(BLOCK_FAILURES, {"source": SOURCE}) == 3
    final = [e for e in logs if e["event"] == "log_block_failed"]
    assert len(final) == 1 and final[0]["failed_lines"] == 1 and final[0]["log_level"] == "error"
    assert "carol" not in json.dumps(final, default=str)  # the position is logged, never the line
    assert re.fullmatch(r"\d+:\d+@\d+", final[0]["position"])
    write(root, lines(25, 2, "Failed"))
    run_collector_once(spec, ledger, root=root)
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 27
    assert not [k for k, _ in ledger.checkpoints(SOURCE).scan("failed:")]


def test_a_failure_that_goes_away_resets_the_count(root: Path, ledger: Ledger) -> None:
    flaky = {"fail": True}

    def parse(block: LogBlock, ctx: ParseContext) -> ParseResult:
        if flaky["fail"]:
            raise RuntimeError("transient")
        return PARSER(block, ctx)

    spec = collector(parser=parse)
    write(root, lines(0, 3, "Failed"))
    with pytest.raises(ParserFailed):
        run_collector_once(spec, ledger, root=root)
    assert [k for k, _ in ledger.checkpoints(SOURCE).scan("failed:")] == ["failed:file:/var/log/auth.log"]
    flaky["fail"] = False
    run_collector_once(spec, ledger, root=root)
    assert ledger.counter_value(FAILED.name, {"via": "ssh"}) == 3
    assert not list(ledger.checkpoints(SOURCE).scan("failed:"))


def test_an_undeclared_metric_from_the_parser_is_a_parser_failure(root: Path, ledger: Ledger) -> None:
    def parse(block: LogBlock, ctx: ParseContext) -> ParseResult:
        return ParseResult(observations=[Count("test_nobody_declared_total")], parsed=block.line_count)  # type: ignore[union-attr]

    write(root, lines(0, 2, "Failed"))
    with pytest.raises(ParserFailed):
        run_collector_once(collector(parser=parse), ledger, root=root)


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        ((1, 0, 0), {"parsed": 1, "ignored": 0, "unparsed": 3}),  # 3 lines missing: unparsed
        ((4, 3, 1), {"parsed": 4, "ignored": 0, "unparsed": 0}),  # 4 too many: cut
        ((1, 1, 2), {"parsed": 1, "ignored": 1, "unparsed": 2}),  # right
    ],
)
def test_parser_outcomes_are_made_to_add_up_to_the_lines(
    root: Path, ledger: Ledger, reported: tuple[int, int, int], expected: dict[str, int]
) -> None:
    def parse(block: LogBlock, ctx: ParseContext) -> ParseResult:
        return ParseResult(parsed=reported[0], ignored=reported[1], unparsed=reported[2])

    write(root, lines(0, 4))
    run_collector_once(collector(parser=parse), ledger, root=root)
    assert outcomes(ledger) == expected


# --------------------------------------------------------------------------------------------
# helpers for simple parsers


CTX = ParseContext(now=EPOCH, tz=EPOCH.tzinfo, pseudonymise=test_pseudonymiser(), examples=2)


@pytest.mark.parametrize(
    "prefilter",
    [b"password", (b"Failed", b"weird", b"Accepted"), re.compile(rb"(?:Failed|Accepted) password|weird"), None],
    ids=["bytes", "several", "pattern", "none"],
)
def test_line_parser_counts_every_line_once(prefilter: Any) -> None:
    def parse(line: str, ctx: ParseContext) -> list[Count] | None:
        if "Failed password" in line:
            return [Count(FAILED.name, {"via": "ssh"})]
        if "Accepted password" in line or "weird" not in line:
            return []
        return None

    text = lines(0, 3, "Failed") + b"noise\r\n" + lines(3, 2) + b"weird password thing\n" + b"more noise\n"
    result = parse_text(line_parser(parse, prefilter=prefilter), text, examples=2)
    assert (result.parsed, result.ignored, result.unparsed) == (3, 4, 1)
    assert result.observations == [Count(FAILED.name, {"via": "ssh"}, 3)]  # merged per block
    assert result.examples == ["weird password thing"]


def test_line_parser_strips_crlf_and_decodes_with_replacement() -> None:
    seen: list[str] = []

    def parse(line: str, ctx: ParseContext) -> list[Count]:
        seen.append(line)
        return []

    parse_text(line_parser(parse), b"caf\xe9 au lait\r\nplain\n")
    assert seen == ["caf\ufffd au lait", "plain"]


def test_line_parser_ignores_record_blocks_and_record_parser_ignores_text() -> None:
    entry = JournalEntry({"MESSAGE": "x"}, EPOCH, "c1")
    text_parser = line_parser(lambda line, ctx: [])
    assert text_parser(RecordBlock((entry, entry), "journal"), CTX).ignored == 2
    rec = record_parser(lambda record, ctx: [])
    assert rec(TextBlock(b"a\nb\nc\n", "x"), CTX).ignored == 3


def test_record_parser_outcomes() -> None:
    entries = tuple(JournalEntry({"MESSAGE": m, "SYSLOG_IDENTIFIER": "sshd"}, EPOCH, f"c{i}") for i, m in enumerate(["fail", "ok", "??", "cron"]))

    def parse(record: Any, ctx: ParseContext) -> list[Count] | None:
        return {"fail": [Count(FAILED.name, {"via": "ssh"})], "ok": []}.get(record.message)

    parser = record_parser(parse, accept=lambda r: r.message != "cron")
    result = parser(RecordBlock(entries, "journal"), CTX)
    assert (result.parsed, result.ignored, result.unparsed, result.examples) == (1, 2, 1, ["??"])


def test_merge_counts_sums_same_series_and_keeps_other_observations() -> None:
    event = Event("x", EPOCH, "k")
    merged = merge_counts([Count("a_total", {"l": "1"}), event, Count("a_total", {"l": "1"}, 2), Count("a_total", {"l": "2"})])
    assert merged == [Count("a_total", {"l": "1"}, 3), Count("a_total", {"l": "2"}), event]


# --------------------------------------------------------------------------------------------
# normagent parse


def test_parse_inputs_reads_plain_compressed_and_stdin(tmp_path: Path) -> None:
    raw = lines(0, 3, "Failed") + lines(3, 2) + b"odd password line"  # last line unterminated
    (tmp_path / "a.log").write_bytes(raw)
    (tmp_path / "a.log.1.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "a.log.2.bz2").write_bytes(bz2.compress(raw))
    inputs = [tmp_path / "a.log", tmp_path / "a.log.1.gz", tmp_path / "a.log.2.bz2", "-"]
    got = list(parse_inputs(inputs, PARSER, CTX, stdin=io.BytesIO(raw), block_bytes=128))
    assert [g.path for g in got] == [*map(str, inputs[:3]), "-"]
    for item in got:
        assert (item.kind, item.lines, item.result.parsed, item.result.ignored, item.result.unparsed) == ("text", 6, 3, 2, 1)
        assert item.result.examples == ["odd password line"]
        assert item.result.observations == [Count(FAILED.name, {"via": "ssh"}, 3)]


def test_parse_each_gives_every_parser_every_block_of_one_read(tmp_path: Path) -> None:
    """Two parsers over one read: each gets what it would get alone, one's failure is its own."""
    raw = lines(0, 30, "Failed") + b"POISON password\n" + lines(30, 20)
    (tmp_path / "a.log").write_bytes(raw)
    alone = [next(parse_inputs([tmp_path / "a.log"], parser, CTX, block_bytes=256)) for parser in (PARSER, poisoned())]

    with capture_logs() as logs:
        [together] = parse_each([tmp_path / "a.log"], [ParseJob(PARSER, CTX), ParseJob(poisoned(), CTX)], block_bytes=256)

    assert together == alone
    assert [t.result.parsed for t in together] == [30, 30] and [t.failed_lines for t in together] == [0, 1]
    assert [e["event"] for e in logs] == ["log_block_failed"]


def test_parse_inputs_says_so_when_the_file_shrinks_while_it_is_read(tmp_path: Path) -> None:
    """``normagent parse auth.log`` while logrotate's copytruncate empties it: the read ended where
    the cut came, and the counts looked like the whole file's, exit 0, nothing said. Now the input's
    damage says the file shrank, and after how much."""
    path = tmp_path / "auth.log"
    path.write_bytes(lines(0, 2000, "Failed"))

    def truncating(block: LogBlock, ctx: ParseContext) -> ParseResult:
        os.truncate(path, 100)  # as copytruncate does, between two reads
        return PARSER(block, ctx)

    [item] = parse_inputs([path], truncating, CTX, block_bytes=4096)

    assert 0 < item.lines < 2000
    assert item.damage == (f"the file shrank from {len(lines(0, 2000, 'Failed')):,} to 100 bytes while it was read (truncated, "
                           "or rotated with copytruncate): what it held beyond that was not read")
    [whole] = parse_inputs([tmp_path / "auth.log"], PARSER, CTX, block_bytes=4096)
    assert whole.damage == ""


def test_parse_inputs_recognises_journalctl_json(tmp_path: Path) -> None:
    entries = [
        {"__CURSOR": f"s=1;i={i}", "__REALTIME_TIMESTAMP": str(1_700_000_000_000_000 + i), "MESSAGE": m}
        for i, m in enumerate(["fail", "ok", "fail"])
    ]
    path = tmp_path / "export.json.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(e) + "\n" for e in entries).encode()))

    def parse(record: Any, ctx: ParseContext) -> list[Count] | None:
        return [Count(FAILED.name, {"via": "ssh"})] if record.message == "fail" else []

    [item] = parse_inputs([path], record_parser(parse), CTX)
    assert (item.kind, item.lines, item.result.parsed, item.result.ignored) == ("journal", 3, 2, 1)


def test_an_evtx_path_that_is_a_fifo_is_refused_saying_so(tmp_path: Path) -> None:
    """``Security.evtx`` a FIFO: its reader opened it and waited for a writer for good (here one
    is held open, with bytes in it, so that without the check this fails rather than hangs)."""
    fifo = tmp_path / "Security.evtx"
    os.mkfifo(fifo)
    held = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    try:
        os.write(held, b"\0" * 8192)
        with pytest.raises(InputError) as err:
            list(parse_inputs([fifo], record_parser(lambda record, ctx: []), CTX))
    finally:
        os.close(held)
    assert str(err.value) == f"{fifo}: is a FIFO (named pipe), not a regular file; EVTX is read in place: give the file's path"


def test_parse_inputs_reads_evtx() -> None:
    from evtx import PyEvtxParser

    path = FIXTURES / "evtx" / "new-user-security.evtx"
    expected = sum(1 for _ in PyEvtxParser(str(path)).records_json())
    [item] = parse_inputs([path], record_parser(lambda record, ctx: []), CTX)
    assert (item.kind, item.lines, item.result.ignored) == ("evtx", expected, expected)


def test_parse_inputs_reports_an_evtx_file_that_crashes_the_parser_before_any_chunk_as_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """``normagent parse`` reads EVTX through the same child process: a crash no chunk is to blame
    for is exit 66 naming the file."""
    from normagent.sources import evtx_process
    from tests.support.evtx_workers import NO_CORE, python

    monkeypatch.setattr(evtx_process, "WORKER_COMMAND", python(NO_CORE + "import os, signal, sys; sys.stdin.read(); os.kill(os.getpid(), signal.SIGSEGV)"))
    path = FIXTURES / "evtx" / "security.evtx"
    with pytest.raises(InputError, match=f"{path}: the evtx parser crashed \\(killed by SIGSEGV\\)"):
        list(parse_inputs([path], record_parser(lambda record, ctx: []), CTX))


@pytest.mark.parametrize("offsets", [[2], [2, 3], [25]])
def test_parse_inputs_skips_a_chunk_that_crashes_the_parser_says_which_and_reads_on(
    monkeypatch: pytest.MonkeyPatch, offsets: list[int]
) -> None:
    """A one-shot command has no second run to wait for: the first crash in a chunk skips it, the
    damage names the chunk and the crash, and every other record is read once."""
    from normagent.sources import evtx_process
    from normagent.sources.evtx import CHUNK_BYTES, HEADER_BYTES, scan_chunks
    from tests.support.evtx_workers import chunk_crashing_worker

    path = FIXTURES / "evtx" / "security.evtx"
    chunks = {HEADER_BYTES + c.index * CHUNK_BYTES: c for c in scan_chunks(path)[0]}
    crashing = [HEADER_BYTES + i * CHUNK_BYTES for i in offsets]
    worker = chunk_crashing_worker(crashing[0])
    if len(crashing) > 1:  # crashes in either of two chunks
        worker = (*worker[:-1], worker[-1].replace(f"== {crashing[0]}", f"in {tuple(crashing)}"))
    monkeypatch.setattr(evtx_process, "WORKER_COMMAND", worker)
    seen: list[int] = []

    def keep(record: Any, ctx: ParseContext) -> list[Count]:
        seen.append(record.record_id)
        return []

    with capture_logs() as logs:
        [item] = parse_inputs([path], record_parser(keep), CTX)

    lost = [n for o in crashing for n in range(chunks[o].first, chunks[o].last + 1)]
    assert seen == [n for n in range(1, 2262) if n not in lost] and item.lines == len(seen)
    said = [
        f"the evtx parser crashed (killed by SIGSEGV) in chunk at offset {o:,} (records {chunks[o].first:,}..{chunks[o].last:,}); that chunk skipped"
        for o in crashing
    ]
    assert item.damage == "; ".join([*said, f"{len(lost)} records announced but unreadable (the first in the chunk at offset {min(crashing):,})"])
    skipped = [e for e in logs if e["event"] == "evtx_chunk_skipped"]
    assert [(e["path"], e["offset"], e["first"], e["last"]) for e in skipped] == [(str(path), o, chunks[o].first, chunks[o].last) for o in crashing]


def test_parse_inputs_names_a_missing_input_before_parsing_anything(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(lines(0, 1))
    with pytest.raises(InputError, match="nope.log: no such file"):
        list(parse_inputs([tmp_path / "a.log", tmp_path / "nope.log"], PARSER, CTX))


def test_parse_inputs_parses_a_failing_block_line_by_line(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(lines(0, 4, "Failed") + b"POISON password\n")
    with capture_logs() as logs:
        [item] = parse_inputs([tmp_path / "a.log"], poisoned(), CTX)
    assert (item.lines, item.failed_lines, item.result.parsed, item.result.unparsed) == (5, 1, 4, 1)
    assert [e["event"] for e in logs] == ["log_block_failed"]


# --------------------------------------------------------------------------------------------
# journald and EVTX, through their real readers


# --------------------------------------------------------------------------------------------
# records that span lines: the carry


RECORDS = MetricSpec("test_records_total", "counter", "Records seen, by how they ended.", labels=("end",), section="Driftsstatus")


def span_parser(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """``BEGIN <n>`` … ``END <n>`` records; an unfinished one waits in the carry. A record left
    open when ``now`` is an hour past its BEGIN stamp (``BEGIN <n> <unix time>``) is ended as
    "abandoned" by the end-of-run call (an empty block); ``final`` ends it as "cut". Anything
    else is malformed."""
    assert isinstance(block, TextBlock)
    result = ParseResult()
    carry = ctx.carry if isinstance(ctx.carry, dict) else None
    offset = 0
    for raw in block.data.splitlines(keepends=True):
        line = raw.decode().strip()
        if line.startswith("BEGIN "):
            if carry is not None:
                result.observations.append(Count(RECORDS.name, {"end": "cut"}))
            _, number, at = line.split()
            carry = {"n": number, "at": int(at)}
            result.ignored += 1
        elif line.startswith("END ") and carry is not None and line.split()[1] == carry["n"]:
            result.observations.append(Count(RECORDS.name, {"end": "end"}))
            carry = None
            result.parsed += 1
        else:
            result.unparsed += 1
            result.problems.append(ParseProblem(offset, "neither BEGIN nor the END of the open record"))
        offset += len(raw)
    if carry is not None and (ctx.final or (not block.data and ctx.now.timestamp() - carry["at"] >= 3600)):
        result.observations.append(Count(RECORDS.name, {"end": "cut" if ctx.final else "abandoned"}))
        carry = None
    result.carry = carry
    return result


def records(first: int, count: int, at: float) -> bytes:
    return b"".join(b"BEGIN %d %d\nEND %d\n" % (n, at, n) for n in range(first, first + count))


def record_collector(parser: Any = span_parser, **kw: Any) -> CollectorSpec:
    kw.setdefault("commit_bytes", 1)
    return file_log_collector(SOURCE, help="Test records.", parser=parser, settings=AuthSettings, metrics=(RECORDS,), **kw)


def ends(ledger: Ledger) -> dict[str, float]:
    return {labels[0][1]: v for labels, v in ledger.snapshot().values(RECORDS.name).items() if v}


def test_a_record_cut_by_a_block_boundary_is_read_whole(root: Path, ledger: Ledger) -> None:
    """256-byte blocks cut the records anywhere: each one still counts once, as ended."""
    write(root, records(0, 40, EPOCH.timestamp()))
    run_collector_once(record_collector(), ledger, root=root)
    assert ends(ledger) == {"end": 40}
    assert outcomes(ledger) == {"parsed": 40, "ignored": 40, "unparsed": 0}


def test_a_record_half_written_at_the_end_of_a_run_is_finished_by_the_next(root: Path, ledger: Ledger, clock: FakeClock) -> None:
    spec = record_collector()
    write(root, records(0, 2, EPOCH.timestamp()) + b"BEGIN 2 %d\n" % EPOCH.timestamp())
    run_collector_once(spec, ledger, root=root, clock=clock)
    assert ends(ledger) == {"end": 2}
    write(root, b"END 2\n")
    run_collector_once(spec, ledger, root=root, clock=clock)
    assert ends(ledger) == {"end": 3}
    assert ledger.checkpoints(SOURCE).get("carry:file:/var/log/auth.log") is None


@pytest.mark.parametrize("keep", [0, 1, 3, 7])
def test_a_crash_between_batches_keeps_carry_and_counts_together(root: Path, ledger: Ledger, keep: int) -> None:
    """The carry rides in the batch of the block that left it: a crash anywhere counts each record once."""
    spec = record_collector()
    write(root, records(0, 30, EPOCH.timestamp()))
    commit_some(spec, ledger, root, keep)
    run_collector_once(spec, ledger, root=root)
    assert ends(ledger) == {"end": 30}


def test_a_record_the_log_leaves_unfinished_is_settled_by_now_at_the_end_of_a_run(root: Path, ledger: Ledger, clock: FakeClock) -> None:
    """No new line comes, yet the parser is asked again at each run's end and may settle by ``now``."""
    spec = record_collector()
    write(root, b"BEGIN 1 %d\n" % EPOCH.timestamp())
    run_collector_once(spec, ledger, root=root, clock=clock)
    assert ends(ledger) == {}
    clock.advance(3600)
    run_collector_once(spec, ledger, root=root, clock=clock)
    assert ends(ledger) == {"abandoned": 1}
    run_collector_once(spec, ledger, root=root, clock=clock)
    assert ends(ledger) == {"abandoned": 1}


def test_a_run_paused_by_its_deadline_settles_nothing(root: Path, ledger: Ledger) -> None:
    """The end-of-run call means "all that was written has been read": a run that stopped early
    (its deadline) must not make it, or a record whose end is in the unread part is cut."""
    clock = FakeClock()

    def slow(block: LogBlock, ctx: ParseContext) -> ParseResult:
        if isinstance(block, TextBlock) and block.data:
            clock.advance(1.0)
        return span_parser(block, ctx)

    spec = record_collector(parser=slow, timeout=timedelta(seconds=3))
    write(root, b"BEGIN 1 %d\n" % (EPOCH.timestamp() - 7200) + b"x\n" * 600 + b"END 1\n")  # ~5 blocks
    run_collector_once(spec, ledger, root=root, clock=clock)
    assert ends(ledger) == {}  # paused with the record open: not "abandoned"
    for _ in range(10):
        run_collector_once(spec, ledger, root=root, clock=clock)
    assert ends(ledger) == {"end": 1}


def test_malformed_lines_are_logged_by_position_without_their_text(root: Path, ledger: Ledger) -> None:
    first = b"BEGIN 1 %d\n" % EPOCH.timestamp()
    write(root, first + b"secret-garbage\nEND 1\n")
    with capture_logs() as logs:
        run_collector_once(record_collector(), ledger, root=root)
    found = [e for e in logs if e["event"] == "log_line_malformed"]
    assert [(e["origin"].endswith("auth.log"), e["position"].split("@")[1]) for e in found] == [(True, f"0+{len(first)}")]
    assert ends(ledger) == {"end": 1}
    assert "secret" not in json.dumps(logs, default=str)


class LinesSeen(LiveCarry):
    """A carry kept as an object between blocks: the lines read so far. ``asked`` records each
    time the driver asks for its JSON (a list shared by the test)."""

    __slots__ = ("lines", "asked")

    def __init__(self, lines: int, asked: list[int]) -> None:
        self.lines = lines
        self.asked = asked

    def json(self) -> JSONValue:
        self.asked.append(self.lines)
        return {"lines": self.lines}


def live_carry_parser(asked: list[int], handed: list[str]) -> Any:
    """Counts lines into a ``LinesSeen``; records what each block was handed (``handed``):
    "object" (the carry of the block before, in memory), "json" (read back from the ledger) or
    "none"; never changes the carry it was given."""

    def parse(block: LogBlock, ctx: ParseContext) -> ParseResult:
        assert isinstance(block, TextBlock)
        carry = ctx.carry
        if isinstance(carry, LinesSeen):
            before, kind = carry.lines, "object"
        elif isinstance(carry, dict):
            before, kind = int(carry["lines"]), "json"
        else:
            before, kind = 0, "none"
        if block.data:
            handed.append(kind)
        return ParseResult(ignored=block.line_count, carry=LinesSeen(before + block.line_count, asked) if block.data else carry)

    return parse


@pytest.mark.parametrize("keep", [0, 1, 2, 3])
def test_a_live_carry_is_handed_on_as_it_is_and_committed_as_json_once_per_batch(root: Path, ledger: Ledger, keep: int) -> None:
    """Between the blocks of a run the parser gets the carry object the block before made; each
    batch commits its JSON, asked once when the batch is put together (so it is the value after
    exactly that batch's blocks), and a run that dies after any batch resumes from that JSON:
    every line counted in the carry once."""
    write(root, lines(0, 60))  # ~5,100 bytes: 20+ blocks of 256, batches of 3 blocks
    asked: list[int] = []
    handed: list[str] = []
    spec = collector(parser=live_carry_parser(asked, handed), commit_bytes=3 * 240)
    ledger.declare(spec.metrics)
    batches = spec.collect(make_context(spec, root=root, state=ledger.checkpoints(SOURCE)))
    committed = []
    for done, batch in enumerate(batches):
        if done == keep:
            break
        assert not any(isinstance(cp.value, LiveCarry) for cp in batch.checkpoints), "a batch holds JSON only"
        ledger.commit(SOURCE, batch)
        committed.append(ledger.checkpoints(SOURCE).get("carry:file:/var/log/auth.log"))
    batches.close()  # type: ignore[attr-defined]
    # asked once per batch put together (the last one built but never committed too), for the
    # value after exactly its blocks: what the ledger holds agrees with the lines it counted
    assert asked[:keep] == [c["lines"] for c in committed if isinstance(c, dict)] and len(asked) - keep in (0, 1)
    assert not committed or committed[-1] == {"lines": outcomes(ledger)["ignored"]}
    resumed_at = len(handed)

    run_collector_once(spec, ledger, root=root)

    assert ledger.checkpoints(SOURCE).get("carry:file:/var/log/auth.log") == {"lines": 60}
    assert outcomes(ledger)["ignored"] == 60
    assert handed[0] == "none" and set(handed[1:resumed_at]) <= {"object"}
    assert handed[resumed_at] == ("json" if keep else "none") and set(handed[resumed_at + 1 :]) == {"object"}


def test_parse_inputs_threads_the_carry_and_settles_what_the_input_leaves_open(tmp_path: Path) -> None:
    path = tmp_path / "records.log"
    path.write_bytes(records(0, 30, EPOCH.timestamp()) + b"garbage\n" + b"BEGIN 30 %d\n" % EPOCH.timestamp())
    ctx = ParseContext(now=EPOCH, tz=EPOCH.tzinfo, pseudonymise=test_pseudonymiser())
    (parsed,) = parse_inputs([path], span_parser, ctx, block_bytes=64)
    assert {c.labels[0][1]: c.value for c in parsed.result.observations if isinstance(c, Count)} == {"end": 30, "cut": 1}
    assert parsed.problems == ((61, "neither BEGIN nor the END of the open record"),)
    assert parsed.result.carry is None


@pytest.fixture(scope="module")
def journalctl() -> str:
    return require_tool("journalctl", "systemd")


MAIN_JOURNAL = FIXTURES / "journal" / "main.journal"


def exported_entries(path: Path) -> int:
    """Entries in a journal export file (the fixture's ground truth): one realtime stamp each."""
    return sum(1 for line in path.read_bytes().split(b"\n") if line.startswith(b"__REALTIME_TIMESTAMP="))


@dataclass(frozen=True, slots=True)
class JournalOnly:
    journal: JournalSettings = JournalSettings(files=(str(MAIN_JOURNAL),), start="beginning", block_entries=10)


def journal_reading(reader: str) -> type:
    """``JournalOnly`` whose journal is read by ``reader``."""

    @dataclass(frozen=True, slots=True)
    class Reading:
        journal: JournalSettings = JournalSettings(files=(str(MAIN_JOURNAL),), start="beginning", block_entries=10, reader=reader)  # type: ignore[arg-type]

    return Reading


def count_every_entry(block: LogBlock, ctx: ParseContext) -> ParseResult:
    assert isinstance(block, RecordBlock)
    return ParseResult(parsed=len(block.records), observations=[Count(FAILED.name, {"via": "journal"}, len(block.records))])


@pytest.mark.parametrize(
    ("first", "then"),
    [("journalctl", "journalctl"), ("libsystemd", "libsystemd"), ("journalctl", "libsystemd"), ("libsystemd", "journalctl")],
)
def test_journal_collector_counts_every_entry_once_and_resumes_by_cursor(journalctl: str, ledger: Ledger, first: str, then: str) -> None:
    """A crash after two committed blocks, then runs to the end: every entry counted once, whichever
    reader committed the cursor and whichever resumes from it."""
    if "libsystemd" in (first, then) and isinstance(sdjournal.load(), str):
        skip_for_host(f"libsystemd cannot be loaded here: {sdjournal.load()}")

    def spec(reader: str) -> CollectorSpec:
        return journal_log_collector("test.journal", help="j", parser=count_every_entry, settings=journal_reading(reader), metrics=(FAILED,))

    expected = exported_entries(FIXTURES / "journal" / "main.export")
    assert commit_some(spec(first), ledger, Path("/"), 2, run_command=run_command) == 2
    assert ledger.counter_value(FAILED.name, {"via": "journal"}) == 20  # two blocks of 10, one batch each
    run_collector_once(spec(then), ledger, run_command=run_command)
    run_collector_once(spec(then), ledger, run_command=run_command)
    assert ledger.counter_value(FAILED.name, {"via": "journal"}) == expected
    assert outcomes(ledger, "test.journal")["parsed"] == expected
    newest = run_command([journalctl, f"--file={MAIN_JOURNAL}", "--output=json", "--lines=1"]).stdout
    assert ledger.checkpoints("test.journal").get("journal") == json.loads(newest)["__CURSOR"]


def test_a_journal_block_is_let_go_before_the_next_one_is_read(
    journalctl: str, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for EVTX: when the reader is asked for the next block, nothing holds the one before."""
    import gc

    import normagent.logs

    read_journal = normagent.logs.read_journal
    held: list[int] = []
    blocks = 0

    def reading(*args: Any, **kwargs: Any) -> Iterator[tuple[RecordBlock, str]]:
        nonlocal blocks
        for block, position in read_journal(*args, **kwargs):
            yield block, position
            records = block.records  # asked for the next block: who else holds this one?
            del block
            blocks += 1
            if any(isinstance(r, RecordBlock) for r in gc.get_referrers(records)):
                held.append(blocks)

    monkeypatch.setattr(normagent.logs, "read_journal", reading)
    spec = journal_log_collector("test.journal", help="j", parser=count_every_entry, settings=journal_reading("journalctl"), metrics=(FAILED,))
    run_collector_once(spec, ledger, run_command=run_command)
    assert blocks > 3 and held == []


def test_journal_collector_without_journalctl_is_no_data(ledger: Ledger) -> None:
    spec = journal_log_collector("test.journal", help="j", parser=count_every_entry, settings=journal_reading("journalctl"), metrics=(FAILED,))
    with pytest.raises(NoData):
        run_collector_once(spec, ledger)  # the default recorded_command knows no command


@dataclass(frozen=True, slots=True)
class Windows:
    evtx: EvtxSettings = EvtxSettings(paths=("/logs/*.evtx",), block_records=50)


def count_events(block: LogBlock, ctx: ParseContext) -> ParseResult:
    assert isinstance(block, RecordBlock)
    assert all(isinstance(r, WindowsEvent) for r in block.records)
    return ParseResult(ignored=len(block.records))


def test_evtx_collector_reads_each_file_once(tmp_path: Path, ledger: Ledger) -> None:
    from evtx import PyEvtxParser

    (tmp_path / "logs").mkdir()
    for name in ("new-user-security.evtx", "Security_short_selected.evtx"):
        shutil.copy(FIXTURES / "evtx" / name, tmp_path / "logs" / name)
    expected = sum(sum(1 for _ in PyEvtxParser(str(p)).records_json()) for p in (tmp_path / "logs").iterdir())
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=Windows, metrics=(FAILED,))
    run_collector_once(spec, ledger, root=tmp_path)
    run_collector_once(spec, ledger, root=tmp_path)
    assert outcomes(ledger, "test.windows") == {"parsed": 0, "ignored": expected, "unparsed": 0}
    saved = dict(ledger.checkpoints("test.windows").scan("evtx:"))
    assert sorted(saved) == ["evtx:/logs/Security_short_selected.evtx", "evtx:/logs/new-user-security.evtx"]


def test_an_evtx_glob_matching_a_fifo_fails_the_run_saying_so_and_reads_the_others(tmp_path: Path, ledger: Ledger) -> None:
    """A FIFO named like an event log was passed over without a word; it is never opened (it would
    wait for a writer), and the run fails after the real logs are read."""
    from evtx import PyEvtxParser

    (tmp_path / "logs").mkdir()
    shutil.copy(FIXTURES / "evtx" / "new-user-security.evtx", tmp_path / "logs" / "Security.evtx")
    os.mkfifo(tmp_path / "logs" / "System.evtx")
    expected = sum(1 for _ in PyEvtxParser(str(FIXTURES / "evtx" / "new-user-security.evtx")).records_json())
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=Windows, metrics=(FAILED,))
    with capture_logs() as logs, pytest.raises(RunFailed, match="System.evtx is a FIFO") as err:
        run_collector_once(spec, ledger, root=tmp_path)
    assert err.value.reason == "not_a_regular_file"
    assert [e["reason"] for e in logs if e["event"] == "log_file_unreadable"] == ["not_a_regular_file"]
    assert outcomes(ledger, "test.windows") == {"parsed": 0, "ignored": expected, "unparsed": 0}


def test_an_evtx_file_whose_name_is_not_utf8_is_read_once_like_the_others(tmp_path: Path, ledger: Ledger) -> None:
    """Before: its position's key held the name's undecodable bytes as lone surrogates, which
    SQLite refuses: every commit failed, and no event log of the collector was counted again
    (a share where Windows servers copy their logs, one named in a legacy code page)."""
    from evtx import PyEvtxParser

    (tmp_path / "logs").mkdir()
    shutil.copy(FIXTURES / "evtx" / "new-user-security.evtx", tmp_path / "logs" / os.fsdecode(b"Sikkerhet-\xe6.evtx"))
    shutil.copy(FIXTURES / "evtx" / "Security_short_selected.evtx", tmp_path / "logs" / "Security.evtx")
    names = ("new-user-security.evtx", "Security_short_selected.evtx")
    expected = sum(sum(1 for _ in PyEvtxParser(str(FIXTURES / "evtx" / name)).records_json()) for name in names)
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=Windows, metrics=(FAILED,))
    run_collector_once(spec, ledger, root=tmp_path)
    run_collector_once(spec, ledger, root=tmp_path)
    assert outcomes(ledger, "test.windows") == {"parsed": 0, "ignored": expected, "unparsed": 0}
    saved = sorted(ledger.checkpoints("test.windows").keys("evtx"))
    assert saved == ["evtx:/logs/Security.evtx", "evtxx:/logs/Sikkerhet-%E6.evtx"]


@pytest.mark.parametrize(("age", "level"), [(timedelta(minutes=1), "info"), (timedelta(days=2), "warning")])
def test_an_evtx_file_cut_inside_a_chunk_is_said_once_per_version(tmp_path: Path, ledger: Ledger, age: timedelta, level: str) -> None:
    """That chunk's records wait for the rest of it; before, nothing said so, and a file cut short
    and left so lost them without a word. News while the file is young (a copy still being
    written), a warning once it is older than the grace; not again while it does not change."""
    from structlog.testing import capture_logs

    (tmp_path / "logs").mkdir()
    cut = tmp_path / "logs" / "cut.evtx"
    cut.write_bytes((FIXTURES / "evtx" / "Security_short_selected.evtx").read_bytes()[: 4096 + 32768])
    clock = FakeClock(EPOCH)
    stamp = (EPOCH - age).timestamp()
    os.utime(cut, (stamp, stamp))
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=Windows, metrics=(FAILED,))
    with capture_logs() as logs:
        run_collector_once(spec, ledger, root=tmp_path, clock=clock)
        run_collector_once(spec, ledger, root=tmp_path, clock=clock)
    said = [(e["log_level"], e["path"], e["size"]) for e in logs if e["event"] == "evtx_chunk_incomplete"]
    assert said == [(level, "/logs/cut.evtx", 4096 + 32768)]


def test_an_evtx_block_is_let_go_before_the_next_one_is_decoded(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the agent decodes the child's next line, nothing of the block parsed before is held any
    more: not the driver's step, not the reader's loop, not the JSON its events were made of.
    Held, two blocks' events would be alive at once, and the allocator would keep that peak's
    arenas for good (an idle agent that had read the EVTX fixtures kept 1 MB more; bench/README.md)."""
    import gc

    from normagent.sources.evtx_process import EvtxProcessReader

    (tmp_path / "logs").mkdir()
    shutil.copy(FIXTURES / "evtx" / "security.evtx", tmp_path / "logs" / "security.evtx")
    parsed: list[Sequence[WindowsEvent]] = []  # the last block's records (not the block itself)
    held: set[str] = set()
    decode = EvtxProcessReader._decode

    def decoding(self: EvtxProcessReader, line: bytes) -> dict[str, Any]:
        if parsed:
            records = parsed[-1]
            if any(isinstance(r, RecordBlock) for r in gc.get_referrers(records)):
                held.add("the block")
            # An event's data is the dict decoded from the child's JSON: [record id, time, …, data].
            if any(isinstance(r, list) for r in gc.get_referrers(records[0].data)):
                held.add("the decoded JSON")
        return decode(self, line)

    def parse(block: LogBlock, ctx: ParseContext) -> ParseResult:
        assert isinstance(block, RecordBlock)
        parsed[:] = [block.records]  # type: ignore[list-item]
        return count_events(block, ctx)

    monkeypatch.setattr(EvtxProcessReader, "_decode", decoding)
    spec = evtx_log_collector("test.windows", help="w", parser=parse, settings=Windows, metrics=(FAILED,))
    run_collector_once(spec, ledger, root=tmp_path)
    assert outcomes(ledger, "test.windows")["ignored"] > 500 and held == set()


def test_a_shutdown_ends_a_record_reader_at_the_next_block_keeping_what_was_read(tmp_path: Path, ledger: Ledger) -> None:
    """The same for record sources (EVTX, journald): a shutdown ends the run after the block it is in."""
    from evtx import PyEvtxParser

    (tmp_path / "logs").mkdir()
    shutil.copy(FIXTURES / "evtx" / "security.evtx", tmp_path / "logs" / "security.evtx")
    expected = sum(1 for _ in PyEvtxParser(str(tmp_path / "logs" / "security.evtx")).records_json())
    assert expected > 150  # several blocks of 50
    stop = threading.Event()

    def parse(block: LogBlock, ctx: ParseContext) -> ParseResult:
        stop.set()  # SIGTERM arrives during the first block
        return count_events(block, ctx)

    spec = evtx_log_collector("test.windows", help="w", parser=parse, settings=Windows, metrics=(FAILED,))
    run_collector_once(spec, ledger, root=tmp_path, stop_requested=stop.is_set)
    assert outcomes(ledger, "test.windows")["ignored"] == 50
    run_collector_once(spec, ledger, root=tmp_path)  # after the restart
    assert outcomes(ledger, "test.windows") == {"parsed": 0, "ignored": expected, "unparsed": 0}


def test_a_crash_of_the_evtx_parser_keeps_the_blocks_committed_before_and_the_next_version_resumes_after_them(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parser's child process dies (a segfault on a hostile file) after two blocks: the agent lives
    on, the two blocks stay committed, the file is counted unreadable once and left alone until it
    changes; then it is read on from the committed position, every record counted exactly once."""
    import psutil

    from normagent.sources import evtx_process
    from tests.support.evtx_workers import crashing_worker

    (tmp_path / "logs").mkdir()
    path = tmp_path / "logs" / "security.evtx"
    shutil.copy(FIXTURES / "evtx" / "security.evtx", path)
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=Windows, metrics=(FAILED,))
    real_worker = evtx_process.WORKER_COMMAND
    monkeypatch.setattr(evtx_process, "WORKER_COMMAND", crashing_worker(2))

    with capture_logs() as logs:
        run_collector_once(spec, ledger, root=tmp_path)
        run_collector_once(spec, ledger, root=tmp_path)  # the same version: not opened again

    assert outcomes(ledger, "test.windows") == {"parsed": 0, "ignored": 100, "unparsed": 0}
    assert ledger.counter_value("normagent_log_files_unreadable_total", {"source": "test.windows"}) == 1
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert error["event"] == "evtx_file_unreadable"
    assert error["error"].startswith(f"{path}: the evtx parser crashed (killed by SIGSEGV)")
    saved = ledger.checkpoints("test.windows").get("evtx:/logs/security.evtx")
    assert isinstance(saved, dict) and saved["position"]["record_id"] == 100  # type: ignore[index]
    assert psutil.Process().children() == []

    monkeypatch.setattr(evtx_process, "WORKER_COMMAND", real_worker)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # a new version
    run_collector_once(spec, ledger, root=tmp_path)
    assert outcomes(ledger, "test.windows") == {"parsed": 0, "ignored": 2261, "unparsed": 0}
    assert ledger.counter_value("normagent_log_files_unreadable_total", {"source": "test.windows"}) == 1


SECURITY_CHUNK_2 = 4096 + 2 * 65536  # security.evtx's third chunk: records 178..260


def touched(path: Path) -> None:
    """A new version of a live log (it changes every few seconds)."""
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))


@pytest.mark.parametrize(("restart", "signal_name"), [(False, "SIGSEGV"), (True, "SIGSEGV"), (False, None)])
def test_a_chunk_that_crashes_the_evtx_parser_twice_is_skipped_and_the_log_read_on_after_it(
    tmp_path: Path, ledger: Ledger, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, restart: bool, signal_name: str | None
) -> None:
    """A hostile chunk in a live Security.evtx: the first crash there counts the file unreadable
    until it changes (it may have been bad luck) and the committed position remembers the chunk,
    so a restart changes nothing; the second crash there skips it, logged, its 83 records counted
    unparsed once, and every record after it is read in the same run, and never again. A chunk
    that hangs the parser (signal_name None) is stopped and skipped the same way."""
    import psutil

    from normagent.sources import evtx_process
    from tests.support.evtx_workers import chunk_crashing_worker

    (tmp_path / "logs").mkdir()
    path = tmp_path / "logs" / "security.evtx"
    shutil.copy(FIXTURES / "evtx" / "security.evtx", path)
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=Windows, metrics=(FAILED,))
    monkeypatch.setattr(evtx_process, "WORKER_COMMAND", chunk_crashing_worker(SECURITY_CHUNK_2, signal_name))
    monkeypatch.setattr(evtx_process, "CHUNK_SILENCE_SECONDS", 0.3)
    key = "evtx:/logs/security.evtx"
    how = "crashed (killed by SIGSEGV)" if signal_name else "hung (nothing from it in 0.3 s)"

    with capture_logs() as logs:
        run_collector_once(spec, ledger, root=tmp_path)
    assert outcomes(ledger, "test.windows") == {"parsed": 0, "ignored": 150, "unparsed": 0}  # blocks of 50: 151..177 were pending
    assert ledger.counter_value("normagent_log_files_unreadable_total", {"source": "test.windows"}) == 1
    [error] = [e for e in logs if e["log_level"] == "error"]
    assert (error["event"], error["retry"]) == ("evtx_file_unreadable", "when it changes")
    assert error["error"].startswith(f"{path}: the evtx parser {how} in chunk at offset 135,168 (records 178..260)")
    saved = ledger.checkpoints("test.windows").get(key)
    assert isinstance(saved, dict) and saved["position"]["record_id"] == 150  # type: ignore[index]
    assert saved["position"]["crashed"] == {"offset": SECURITY_CHUNK_2, "first": 178, "last": 260, "crashes": 1}  # type: ignore[index]

    now = ledger
    if restart:
        now = Ledger.open(ledger.path, clock=clock)  # the agent restarted: what it knows is in the ledger
    try:
        touched(path)
        with capture_logs() as logs:
            run_collector_once(spec, now, root=tmp_path)
        assert outcomes(now, "test.windows") == {"parsed": 0, "ignored": 2261 - 83, "unparsed": 83}
        assert now.counter_value("normagent_log_files_unreadable_total", {"source": "test.windows"}) == 1
        [skipped] = [e for e in logs if e["log_level"] == "error"]
        assert skipped["event"] == "evtx_chunk_skipped"
        assert (skipped["path"], skipped["offset"], skipped["first"], skipped["last"], skipped["crashes"]) == ("/logs/security.evtx", SECURITY_CHUNK_2, 178, 260, 2)
        assert f"{how} in chunk at offset 135,168" in skipped["error"]
        saved = now.checkpoints("test.windows").get(key)
        assert isinstance(saved, dict) and "crashed" not in saved["position"] and "unreadable" not in saved  # type: ignore[operator]

        for _ in range(2):  # the log changes on: nothing is read or counted twice, no child crashes
            touched(path)
            run_collector_once(spec, now, root=tmp_path)
        assert outcomes(now, "test.windows") == {"parsed": 0, "ignored": 2261 - 83, "unparsed": 83}
        assert now.counter_value("normagent_log_files_unreadable_total", {"source": "test.windows"}) == 1
        assert psutil.Process().children() == []
    finally:
        if now is not ledger:
            now.close()


def test_a_crash_of_the_evtx_parser_that_does_not_come_again_loses_nothing(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad luck (the OOM killer's SIGKILL) once in a chunk: that chunk is read normally on the next
    version and its mark forgotten, every record counted once, none unparsed."""
    from normagent.sources import evtx_process
    from tests.support.evtx_workers import chunk_crashing_worker

    (tmp_path / "logs").mkdir()
    path = tmp_path / "logs" / "security.evtx"
    shutil.copy(FIXTURES / "evtx" / "security.evtx", path)
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=Windows, metrics=(FAILED,))
    monkeypatch.setattr(evtx_process, "WORKER_COMMAND", chunk_crashing_worker(SECURITY_CHUNK_2, "SIGKILL", once=tmp_path / "crashed"))

    run_collector_once(spec, ledger, root=tmp_path)
    assert outcomes(ledger, "test.windows") == {"parsed": 0, "ignored": 150, "unparsed": 0}
    touched(path)
    with capture_logs() as logs:
        run_collector_once(spec, ledger, root=tmp_path)

    assert outcomes(ledger, "test.windows") == {"parsed": 0, "ignored": 2261, "unparsed": 0}
    assert [e for e in logs if e["log_level"] in ("error", "warning")] == []
    saved = ledger.checkpoints("test.windows").get("evtx:/logs/security.evtx")
    assert isinstance(saved, dict) and "crashed" not in saved["position"]  # type: ignore[operator]


def test_evtx_crashes_in_two_chunks_in_turn_each_skip_their_chunk_and_never_take_turns(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks 2 and 3 both crash the parser: 2 is skipped at its second crash, the same run's second
    pass crashes in 3 (a first crash there), and 3 is skipped at the next version; chunk 2, whose
    records were counted, is not parsed again though the mark moved on to 3."""
    from normagent.sources import evtx_process
    from tests.support.evtx_workers import chunk_crashing_worker

    (tmp_path / "logs").mkdir()
    path = tmp_path / "logs" / "security.evtx"
    shutil.copy(FIXTURES / "evtx" / "security.evtx", path)
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=Windows, metrics=(FAILED,))
    chunk_3 = SECURITY_CHUNK_2 + 65536  # records 261..349
    worker = chunk_crashing_worker(SECURITY_CHUNK_2)
    worker = (*worker[:-1], worker[-1].replace(f"== {SECURITY_CHUNK_2}", f"in ({SECURITY_CHUNK_2}, {chunk_3})"))
    monkeypatch.setattr(evtx_process, "WORKER_COMMAND", worker)

    events = []
    for _ in range(5):
        with capture_logs() as logs:
            run_collector_once(spec, ledger, root=tmp_path)
        events.append([(e["event"], e.get("first")) for e in logs if e["log_level"] == "error"])
        touched(path)

    assert events == [
        [("evtx_file_unreadable", None)],
        [("evtx_chunk_skipped", 178), ("evtx_file_unreadable", None)],
        [("evtx_chunk_skipped", 261)],
        [],
        [],
    ]
    assert outcomes(ledger, "test.windows") == {"parsed": 0, "ignored": 2261 - 83 - 89, "unparsed": 83 + 89}
    assert ledger.counter_value("normagent_log_files_unreadable_total", {"source": "test.windows"}) == 2


def test_an_evtx_parser_that_hangs_is_killed_at_the_run_s_deadline(tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's deadline (a test clock's) holds for the child too: killed and reaped, the run fails."""
    import psutil

    from normagent.sources import evtx_process

    (tmp_path / "logs").mkdir()
    shutil.copy(FIXTURES / "evtx" / "new-user-security.evtx", tmp_path / "logs" / "a.evtx")
    monkeypatch.setattr(evtx_process, "WORKER_COMMAND", (sys.executable, "-c", "import signal; signal.pause()"))
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=Windows, metrics=(FAILED,))
    with pytest.raises(TimeoutError, match="a.evtx: the evtx parser was stopped at the run's deadline"):
        run_collector_once(spec, ledger, root=tmp_path, timeout=0.3)
    assert psutil.Process().children() == []
    assert ledger.checkpoints("test.windows").get("evtx:/logs/a.evtx") is None  # read again next run


def test_evtx_collector_counts_a_file_that_is_not_evtx_once_and_reads_the_others(tmp_path: Path, ledger: Ledger) -> None:
    """A junk .evtx on the share is counted and logged once per version; it does not fail every run."""
    (tmp_path / "logs").mkdir()
    shutil.copy(FIXTURES / "evtx" / "new-user-security.evtx", tmp_path / "logs" / "good.evtx")
    bad = tmp_path / "logs" / "bad.evtx"
    bad.write_bytes(b"not an event log at all" * 300)
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=Windows, metrics=(FAILED,))

    with capture_logs() as logs:
        run_collector_once(spec, ledger, root=tmp_path)
        run_collector_once(spec, ledger, root=tmp_path)

    assert outcomes(ledger, "test.windows")["ignored"] == 4
    assert ledger.counter_value("normagent_log_files_unreadable_total", {"source": "test.windows"}) == 1
    assert [(e["event"], e["path"]) for e in logs if e["log_level"] == "error"] == [("evtx_file_unreadable", "/logs/bad.evtx")]
    bad.write_bytes(b"still not an event log" * 300)  # another version of it
    run_collector_once(spec, ledger, root=tmp_path)
    assert ledger.counter_value("normagent_log_files_unreadable_total", {"source": "test.windows"}) == 2


def test_evtx_collector_reads_the_other_patterns_then_fails_for_a_directory_it_cannot_list(tmp_path: Path, ledger: Ledger) -> None:
    @dataclass(frozen=True, slots=True)
    class TwoFolders:
        evtx: EvtxSettings = EvtxSettings(paths=("/logs/*.evtx", "/share/*.evtx"), block_records=50)

    (tmp_path / "logs").mkdir()
    shutil.copy(FIXTURES / "evtx" / "new-user-security.evtx", tmp_path / "logs" / "good.evtx")
    (tmp_path / "share").symlink_to("share")  # a link loop: listing it fails (ELOOP)
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=TwoFolders, metrics=(FAILED,))
    with capture_logs() as logs, pytest.raises(RunFailed, match="share") as err:
        run_collector_once(spec, ledger, root=tmp_path)
    assert err.value.reason == "unreadable"
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["log_directory_unlistable"]
    assert outcomes(ledger, "test.windows")["ignored"] == 4  # the other folder's file, read and committed


def test_evtx_collector_waits_for_a_copy_cut_inside_its_header(tmp_path: Path, ledger: Ledger) -> None:
    """An empty file or a few bytes of a header, just written, is a copy under way: read once complete."""
    (tmp_path / "logs").mkdir()
    path = tmp_path / "logs" / "copy.evtx"
    whole = (FIXTURES / "evtx" / "new-user-security.evtx").read_bytes()
    clock = FakeClock()
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=Windows, metrics=(FAILED,))
    for part in (b"", whole[:100], whole):
        path.write_bytes(part)
        os.utime(path, (clock.now().timestamp(), clock.now().timestamp()))
        run_collector_once(spec, ledger, root=tmp_path, clock=clock)
        clock.advance(60)

    assert ledger.counter_value("normagent_log_files_unreadable_total", {"source": "test.windows"}) == 0
    assert outcomes(ledger, "test.windows")["ignored"] == 4


def test_evtx_collector_counts_a_file_that_stays_cut_inside_its_header(tmp_path: Path, ledger: Ledger) -> None:
    """An empty .evtx still empty after the grace is no copy under way: counted once, then left alone."""
    (tmp_path / "logs").mkdir()
    path = tmp_path / "logs" / "export.evtx"
    path.write_bytes(b"")
    clock = FakeClock()
    os.utime(path, (clock.now().timestamp(), clock.now().timestamp()))
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=Windows, metrics=(FAILED,))

    counted = []
    for _ in range(4):
        run_collector_once(spec, ledger, root=tmp_path, clock=clock)
        counted.append(ledger.counter_value("normagent_log_files_unreadable_total", {"source": "test.windows"}))
        clock.advance(300)

    assert counted == [0, 0, 1, 1]  # at 0 and 5 minutes waited for; at 10 (INCOMPLETE_GRACE) counted, once


def test_evtx_collector_counts_a_file_with_a_damaged_record_number_once_however_often_it_is_touched(tmp_path: Path, ledger: Ledger) -> None:
    """Record 101 numbered 16,777,317: read once, and a changed modification time is no new file."""
    from tests.unit.evtx_damage import with_record_number

    (tmp_path / "logs").mkdir()
    path = with_record_number(FIXTURES / "evtx" / "security.evtx", tmp_path / "logs" / "Security.evtx", 101, 101 ^ (1 << 24))
    spec = evtx_log_collector("test.windows", help="w", parser=count_events, settings=Windows, metrics=(FAILED,))

    for touch in range(3):
        run_collector_once(spec, ledger, root=tmp_path)
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9 * (touch + 1)))

    assert outcomes(ledger, "test.windows") == {"parsed": 0, "ignored": 2260, "unparsed": 1}
    saved = ledger.checkpoints("test.windows").get("evtx:/logs/Security.evtx")
    assert isinstance(saved, dict) and saved["position"]["record_id"] == 2261  # type: ignore[index]
