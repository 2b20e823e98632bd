"""access.logins over files hands on each batch's counts and rollup rows merged across the
batch's blocks (``collect_login_files``, ``BatchTally``): the same counts and rows as one set of
observations per block, each batch carrying those of exactly the blocks whose checkpoints it
carries, so that a run dying between two batches counts every line once when the next run
resumes."""

from __future__ import annotations

import functools
from collections.abc import Generator
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from normagent import Batch, CollectorSpec, Count, FileSource, ParseContext, Period, Rollup, RunContext, TextBlock
from normagent.ledger import Ledger
from normagent.plugins.access.collectors import LOGINS, LoginSettings, _login_files, collect_login_files
from normagent.plugins.access.parse import parse_auth_lines, parse_auth_lines_into
from normagent.plugins.access.tally import FAILED_BY_ACCOUNT, FAILED_BY_NETWORK, LOCKOUT_BY_ACCOUNT, SUCCESS_BY_NETWORK, BatchTally
from normagent.testing import EPOCH, FakeClock, make_context, run_collector_once, test_pseudonymiser

from .test_access_collectors import _generator

BLOCK = 8 * 1024  # a few dozen blocks per batch, a dozen batches for the file
COMMIT = 64 * 1024
EVERYTHING = Period(datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(2200, 1, 1, tzinfo=timezone.utc))
ROLLUPS = (FAILED_BY_ACCOUNT, FAILED_BY_NETWORK, SUCCESS_BY_NETWORK, LOCKOUT_BY_ACCOUNT)


def settings() -> LoginSettings:
    files = FileSource(paths=("/var/log/auth.log",), start_at="beginning", timezone="Europe/Oslo", block_bytes=BLOCK)
    return LoginSettings(prefer="files", files=files)


def batched() -> CollectorSpec:
    """The collector's file side as the daemon runs it, with small batches."""
    return replace(LOGINS, collect=functools.partial(collect_login_files, commit_bytes=COMMIT))


def per_block() -> CollectorSpec:
    """The reference: the same driver and batches, each block's rows as observations of their own."""
    files = _login_files(parse_auth_lines, COMMIT)
    return replace(LOGINS, collect=files.collect)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6,000-line generated auth.log (710 KiB: about 90 blocks in 10 batches)."""
    root = tmp_path_factory.mktemp("batch") / "root"
    log = root / "var" / "log" / "auth.log"
    log.parent.mkdir(parents=True)
    _generator().write(log, 6_000, 11, datetime(2026, 11, 23, 6, 59, tzinfo=timezone.utc))
    return root


Series = tuple[str, tuple[tuple[str, str], ...]]
RowKey = tuple[str, date, str]


def merged(batch: Batch) -> tuple[dict[Series, float], dict[RowKey, tuple[float, datetime, datetime]]]:
    """A batch's counts and rollup rows, each added up per series and per (name, day, key)."""
    counts: dict[Series, float] = {}
    rows: dict[RowKey, tuple[float, datetime, datetime]] = {}
    for obs in batch.observations:
        if isinstance(obs, Count):
            counts[(obs.metric, obs.labels)] = counts.get((obs.metric, obs.labels), 0.0) + obs.value
        elif isinstance(obs, Rollup):
            key = (obs.name, obs.day, obs.key)
            first, last = obs.first_seen, obs.last_seen
            assert first is not None and last is not None
            have = rows.get(key)
            rows[key] = (obs.value, first, last) if have is None else (have[0] + obs.value, min(first, have[1]), max(last, have[2]))
    return counts, rows


def test_each_batch_carries_the_rows_of_its_own_blocks_merged(root: Path) -> None:
    """Batch by batch, the same checkpoints, counts and rollup rows as the per-block reference;
    the rows come once per (name, day, key) of the batch."""
    ours = run_collector_once(batched(), settings=settings(), root=root)
    reference = run_collector_once(per_block(), settings=settings(), root=root)

    assert len(ours) == len(reference) >= 10
    for mine, theirs in zip(ours, reference, strict=True):
        assert mine.checkpoints == theirs.checkpoints
        assert merged(mine) == merged(theirs)
        keys = [(o.name, o.day, o.key) for o in mine.observations if isinstance(o, Rollup)]
        assert len(keys) == len(set(keys))
    rows = sum(1 for b in ours for o in b.observations if isinstance(o, Rollup))
    per_block_rows = sum(1 for b in reference for o in b.observations if isinstance(o, Rollup))
    assert rows < per_block_rows  # merged across blocks, not only within them


def stored(ledger: Ledger) -> tuple[dict[Series, float], dict[str, list[Rollup]]]:
    snapshot = ledger.snapshot()
    counters = {
        (metric, labels): value
        for metric in {m.name for m in LOGINS.metrics if m.kind == "counter"}
        for labels, value in snapshot.values(metric).items()
        if value
    }
    return counters, {name: ledger.rollups(name, EVERYTHING) for name in ROLLUPS}


def collect(spec: CollectorSpec, ledger: Ledger, clock: FakeClock, root: Path) -> Generator[Batch, None, None]:
    ledger.declare(spec.metrics)
    ctx: RunContext = make_context(spec, settings=settings(), root=root, clock=clock, state=ledger.checkpoints(spec.name))
    batches = spec.collect(ctx)
    assert isinstance(batches, Generator)  # closed to play the run's death
    return batches


@pytest.mark.parametrize("survived", [0, 1, 2, 5, 9])
def test_a_run_that_dies_between_batches_counts_every_line_once(root: Path, tmp_path: Path, survived: int) -> None:
    """The run stops after ``survived`` batches are committed (the next one is never committed, as
    when the process dies); the next run resumes at their checkpoints. The ledger then holds what
    one uninterrupted run stores: a batch that left without its rows, or with the rows of a block
    of the next batch, would show here as rows or counts missing or doubled."""
    clock = FakeClock(datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc))
    with Ledger.open(tmp_path / "whole.db", clock=clock) as whole:
        run_collector_once(batched(), whole, settings=settings(), root=root, clock=clock)
        want = stored(whole)
    with Ledger.open(tmp_path / "cut.db", clock=clock) as cut:
        batches = collect(batched(), cut, clock, root)
        for _ in range(survived):
            cut.commit(LOGINS.name, next(batches))
        next(batches)  # read and put together, never committed
        batches.close()  # the run dies here
        run_collector_once(batched(), cut, settings=settings(), root=root, clock=clock)
        got = stored(cut)
    assert got == want
    assert sum(r.value for r in want[1][FAILED_BY_NETWORK]) > 0


def test_one_row_per_key_whichever_block_and_way_its_lines_came() -> None:
    """Alice fails from two addresses of one /24 in two blocks, once on sshd's fast path (its rows
    in bytes) and once the general way (no host: its rows in text): the batch makes one row of
    each, with both lines and both times, as one block holding both lines does."""
    lines = [
        "Nov 23 07:40:01 clinic-srv1 sshd[3001]: Failed password for alice from 203.0.113.9 port 50000 ssh2",
        "Nov 23 07:41:02 sshd[3002]: Failed password for alice from 203.0.113.10 port 50001 ssh2",
    ]
    ctx = ParseContext(now=EPOCH, tz=timezone.utc, pseudonymise=test_pseudonymiser())
    blocks = [TextBlock(f"{line}\n".encode(), "test", EPOCH, 1) for line in lines]
    batch = BatchTally(ctx.pseudonymise)
    for one in blocks:
        assert parse_auth_lines_into(batch, one, ctx).parsed == 1
    together = parse_auth_lines(TextBlock("".join(f"{line}\n" for line in lines).encode(), "test", EPOCH, 2), ctx)

    got = batch.take()

    rows = [o for o in got if isinstance(o, Rollup)]
    assert sorted(o.name for o in rows) == [FAILED_BY_ACCOUNT, FAILED_BY_NETWORK]
    assert all(o.value == 2 and o.first_seen != o.last_seen for o in rows)
    assert sorted(map(repr, got)) == sorted(map(repr, together.observations))
    assert batch.take() == []  # taken: the next batch starts empty
