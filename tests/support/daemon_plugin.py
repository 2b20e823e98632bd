"""Collectors for tests of the daemon's shutdown: a log collector whose catch-up is long, and one
that hangs for good. Both are off unless a test's config enables them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from normagent import (
    Batch,
    CollectorSpec,
    FileSource,
    LogBlock,
    ParseContext,
    ParseResult,
    RunContext,
    TextBlock,
    file_log_collector,
    hookimpl,
)


@dataclass(frozen=True, slots=True)
class SlowLogSettings:
    files: FileSource = FileSource(paths=(), start_at="beginning")
    seconds_per_block: float = 0.0  # the time parsing one block "takes": a long catch-up in a test


def parse_slowly(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """Every line is ignored, after ``seconds_per_block`` (work, not synchronisation)."""
    time.sleep(ctx.settings.seconds_per_block)
    return ParseResult(ignored=block.line_count if isinstance(block, TextBlock) else len(block.records))


SLOW_LOG = file_log_collector(
    "daemon.log",
    help="Reads a log file slowly.",
    parser=parse_slowly,
    settings=SlowLogSettings,
    enabled_by_default=False,
    commit_bytes=1,  # a batch per block: progress shows in /metrics as it happens
)


def hang(ctx: RunContext) -> Iterator[Batch]:
    """Never returns, as a read of a source that never answers."""
    threading.Event().wait()
    yield Batch()  # pragma: no cover


STUCK = CollectorSpec(
    name="daemon.stuck",
    help="Hangs for good.",
    collect=hang,
    interval=timedelta(seconds=30),
    timeout=timedelta(seconds=1),
    enabled_by_default=False,
)


@hookimpl
def register_collectors() -> list[CollectorSpec]:
    return [SLOW_LOG, STUCK]
