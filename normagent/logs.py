"""Log collectors: a checkpointed reader plus a pure parser, made into a ``CollectorSpec``.

A log plugin writes only a parser (``Parser``: block in, ``ParseResult`` out) and calls one of
``file_log_collector``, ``journal_log_collector``, ``evtx_log_collector`` or
``syslog_log_collector`` (the syslog receiver's spool). This module does the rest, the same way
for every source:

- each block the reader hands out goes through the parser, and the parser's observations, the
  line counts and the block's checkpoint leave in **one** ``Batch`` (one ledger transaction;
  file blocks are gathered up to ``COMMIT_BYTES`` per batch, as each commit costs an fsync):
  after a crash a block is either wholly counted and passed, or not counted and read again;
- it counts every line once by outcome, ``normagent_log_lines_total{source,result}`` with
  ``result`` in parsed|ignored|unparsed, plus bytes read, lines that are not valid UTF-8 and the
  checkpoint lag in bytes (``LOG_METRICS``; ``source`` is the collector's name);
- a parser that raises fails the run without moving the checkpoint, so the block is tried again
  next run; at the third consecutive failure at the same position its lines are parsed one at a
  time, lines that still fail count as ``unparsed`` and ``log_block_failed`` is logged with the
  position (never the content), so a poison line cannot wedge a source;
- it stops reading at 80 % of the run's timeout (the next run resumes where the last committed
  block ended), so a long catch-up is not a failed run; and at the next block once the agent is
  shutting down (``RunContext.stopping()``), committing what it read, so SIGTERM during a catch-up
  does not wait for the whole ``shutdown_grace``.

``line_parser`` and ``record_parser`` make a block parser from a function of one line or one
record, for parsers that do not need to work on a whole block. ``parse_inputs`` runs a parser over
whole files or stdin, statelessly, for ``normagent parse``.

Imports model, errors and sources only.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import stat
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import field, replace
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from normagent.errors import InputError, NoData, RunFailed
from normagent.model import (
    Batch,
    Checkpoint,
    CollectorSpec,
    Count,
    Gauge,
    JSONValue,
    LiveCarry,
    LogBlock,
    LogRecord,
    MetricSpec,
    Observation,
    ParseContext,
    ParseProblem,
    ParseResult,
    Parser,
    ProbeFn,
    RecordBlock,
    RunContext,
    TextBlock,
    carry_json,
)
from normagent.records import dataclass
from normagent.sources.files import (
    BLOCK_BYTES,
    FILE_ERROR_REASONS,
    FileSource,
    FileTail,
    NotRegularFile,
    codec_errors,
    codec_from_magic,
    error_reason,
    glob_paths,
    invalid_utf8_lines,
    open_codec_stream,
    path_key,
    read_fd,
    read_some,
    read_stream,
    regular_files,
)
from normagent.smallfile import kind_of
from normagent.sources.journald import JournalSettings, decode_journal_json, read_journal
from normagent.sources.spool import SPOOL_KEY, SpoolBusy, SpoolReader

log = structlog.get_logger(__name__)

LINES = "normagent_log_lines_total"
BYTES = "normagent_log_bytes_read_total"
LAG = "normagent_log_checkpoint_lag_bytes"
INVALID_UTF8 = "normagent_log_invalid_utf8_lines_total"
BLOCK_FAILURES = "normagent_log_block_failures_total"
FILES_UNREADABLE = "normagent_log_files_unreadable_total"
FILE_ERRORS = "normagent_log_file_errors_total"
RESULTS = ("parsed", "ignored", "unparsed")

LOG_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        LINES,
        "counter",
        "Log lines (or records) read, by what the parser made of them: parsed (counted in an "
        "indicator), ignored (of no interest), unparsed (a candidate no pattern understood).",
        labels=("source", "result"),
        section="Agent",
    ),
    MetricSpec(BYTES, "counter", "Bytes read from log files.", labels=("source",), section="Agent"),
    MetricSpec(
        LAG,
        "gauge",
        "Bytes written to the source's log files and not yet read (file size minus offset).",
        labels=("source",),
        section="Agent",
    ),
    MetricSpec(
        INVALID_UTF8,
        "counter",
        "Log lines that are not valid UTF-8 (they are decoded with replacement characters).",
        labels=("source",),
        section="Agent",
    ),
    MetricSpec(
        BLOCK_FAILURES,
        "counter",
        "Times a parser raised on a block of log lines (the run failed; the block is read again).",
        labels=("source",),
        section="Agent",
    ),
    MetricSpec(
        FILE_ERRORS,
        "counter",
        "Times a configured log path (or the directory a glob names) could not be read, by reason: "
        "not_a_regular_file (a FIFO, device, socket or directory), permission_denied, unreadable (other I/O "
        "errors). The run fails; the others are read.",
        labels=("source", "reason"),
        section="Agent",
    ),
)

# EVTX collectors only: a file of the wrong kind is counted, not a failed run (the other files
# are read, and the file is not opened again until it changes).
FILES_UNREADABLE_SPEC = MetricSpec(
    FILES_UNREADABLE,
    "counter",
    "Log files that cannot be read at all (an .evtx that is not an EVTX file, one the parser "
    "rejects, or one it crashed on: the first crash in a chunk; a second there skips that chunk), "
    "counted once per version of the file (its size and modification time).",
    labels=("source",),
    section="Agent",
)

MAX_FAILURES = 3  # consecutive parser failures at one position before its lines are parsed one by one
# File blocks gathered into one batch (one transaction, one fsync). A commit also costs CPU:
# writing the batch and a parser's carry as JSON (a firewall backlog's source-network rows are
# ~300 kB of it); at 16 MiB the netfilter backlog of bench_firewall spent ~8 ms a commit, a tenth
# of its CPU time. A batch is committed early once it holds COMMIT_OBSERVATIONS observations, so
# a parser that gives one per line keeps the batch's memory bounded.
COMMIT_BYTES = 64 * 2**20
COMMIT_OBSERVATIONS = 50_000
SOFT_DEADLINE = 0.8  # share of the run's timeout after which no new block is started
FAILED_KEY = "failed:"  # checkpoint key prefix counting a block's consecutive failures
CARRY_KEY = "carry:"  # checkpoint key prefix of what a parser left unfinished in a source
JOURNAL_KEY = "journal"
EVTX_KEY = "evtx:"
EVTX_ESCAPED_KEY = "evtxx:"  # a path that is not valid UTF-8, percent-encoded (see ``evtx_key``)
# An .evtx cut inside its header this recently is taken for a copy under way; older, for a file
# that will stay so (counted as unreadable).
INCOMPLETE_GRACE = timedelta(minutes=10)
RECORDS_PER_BLOCK = 1000


# --------------------------------------------------------------------------------------------
# Collectors


def file_log_collector(
    name: str,
    *,
    help: str,
    parser: Parser,
    settings: type,
    files: Callable[[Any], FileSource] | None = None,
    metrics: Iterable[MetricSpec] = (),
    interval: timedelta = timedelta(seconds=60),
    timeout: timedelta = timedelta(seconds=30),
    probe: ProbeFn | None = None,
    enabled_by_default: bool = True,
    max_failures: int = MAX_FAILURES,
    commit_bytes: int = COMMIT_BYTES,
) -> CollectorSpec:
    """A collector that tails log files and counts what ``parser`` makes of each block of lines.

    Example::

        @dataclass(frozen=True, slots=True)
        class AuthSettings:
            files: FileSource = FileSource(paths=("/var/log/auth.log", "/var/log/secure"))

        AUTH = file_log_collector("access.auth", help="Failed logins from auth.log",
                                  parser=parse_auth, settings=AuthSettings, metrics=AUTH_METRICS)

    Args:
        name: ``"<plugin>.<thing>"``; also the ``source`` label of ``LOG_METRICS``.
        help: One line for ``normagent plugins``.
        parser: Pure function ``(TextBlock, ParseContext) -> ParseResult``.
        settings: The collector's settings dataclass (every field with a default).
        files: Gets the ``FileSource`` out of a settings instance. Default: the settings instance
            itself if it is a ``FileSource``, else its ``files`` field.
        metrics: The metrics the parser's observations use; ``LOG_METRICS`` are added.
        interval: Default time between runs.
        timeout: Default time a run may take.
        probe: Optional start-up check; a returned reason disables the collector.
        enabled_by_default: False for collectors that need site configuration to mean anything.
        max_failures: Consecutive parser failures at one position before its lines are parsed
            one at a time (the failing ones counted as unparsed).
        commit_bytes: Blocks are gathered into one batch (one transaction) up to this many bytes.

    Raises:
        TypeError: ``files`` (or the default) does not give a ``FileSource`` from the default
            settings.
    """
    pick = files or _default_files
    source = pick(settings())
    if not isinstance(source, FileSource):
        raise TypeError(f"{name}: files(settings) must return a FileSource, got {type(source).__name__}")
    declared = _declared(metrics)

    def collect(ctx: RunContext) -> Iterator[Batch]:
        return _collect_files(ctx, parser, pick(ctx.settings), declared, max_failures, commit_bytes)

    return CollectorSpec(
        name=name,
        help=help,
        collect=collect,
        interval=interval,
        timeout=timeout,
        settings=settings,
        metrics=declared,
        parser=parser,
        probe=probe,
        enabled_by_default=enabled_by_default,
    )


def journal_log_collector(
    name: str,
    *,
    help: str,
    parser: Parser,
    settings: type,
    journal: Callable[[Any], JournalSettings] | None = None,
    fields: Iterable[str] | None = None,
    metrics: Iterable[MetricSpec] = (),
    interval: timedelta = timedelta(seconds=60),
    timeout: timedelta = timedelta(seconds=30),
    probe: ProbeFn | None = None,
    enabled_by_default: bool = True,
    max_failures: int = MAX_FAILURES,
) -> CollectorSpec:
    """A collector that reads journald entries (libsystemd, else ``journalctl -o json``) after its saved cursor.

    Blocks are ``RecordBlock``s of ``JournalEntry``; the cursor is committed with each block's
    counts. Raises ``NoData`` (a quiet, successful run) where the host has no journal.

    Args:
        journal: Gets the ``JournalSettings`` out of a settings instance. Default: the settings
            instance itself if it is one, else its ``journal`` field.
        fields: The entry fields the parser looks at (``JournalEntry.fields``; ``"__CURSOR"``
            if it reads every entry's ``cursor``; ``"A|B"`` for B read only where A is missing or
            empty, as ``get("A") or get("B")`` reads), or None for all of them. Declaring them lets
            the libsystemd reader read just these, the first value of a repeated field each,
            and the cursor of each block's last entry only: several times faster on entries of
            20-odd fields. A parser that needs a repeated field's every value, or fields it
            cannot name in advance, leaves this None.

    The other arguments are as for ``file_log_collector``.
    """
    pick = journal or _default_journal
    chosen = pick(settings())
    if not isinstance(chosen, JournalSettings):
        raise TypeError(f"{name}: journal(settings) must return a JournalSettings, got {type(chosen).__name__}")
    declared = _declared(metrics)
    wanted = None if fields is None else tuple(fields)

    def collect(ctx: RunContext) -> Iterator[Batch]:
        return _collect_records(ctx, parser, _journal_steps(ctx, pick(ctx.settings), wanted), declared, max_failures)

    return CollectorSpec(
        name=name,
        help=help,
        collect=collect,
        interval=interval,
        timeout=timeout,
        settings=settings,
        metrics=declared,
        parser=parser,
        probe=probe,
        enabled_by_default=enabled_by_default,
    )


def evtx_log_collector(
    name: str,
    *,
    help: str,
    parser: Parser,
    settings: type,
    evtx: Callable[[Any], Any] | None = None,
    metrics: Iterable[MetricSpec] = (),
    interval: timedelta = timedelta(minutes=5),
    timeout: timedelta = timedelta(minutes=2),
    probe: ProbeFn | None = None,
    enabled_by_default: bool = True,
    max_failures: int = MAX_FAILURES,
) -> CollectorSpec:
    """A collector that reads Windows event log files (EVTX) after the last record read.

    Each file matched by the settings' paths is checkpointed by record number with an anchor
    (``evtx:<path>``; see ``normagent.sources.evtx``) and opened again only when its size or
    modification time changed. Records the file announces but that are too damaged to read are
    counted as ``unparsed``. A file that is not an EVTX file at all is counted in
    ``normagent_log_files_unreadable_total`` and logged (``evtx_file_unreadable``) once per
    version, and the run goes on; one cut inside its header (empty, or a copy still being
    written) is waited for while it is younger than ``INCOMPLETE_GRACE``, and counted so after.
    A file that crashes the parser is counted so too, and a chunk it crashes in twice is
    skipped (``evtx_chunk_skipped``; see ``_evtx_steps``).

    Args:
        evtx: Gets the EVTX settings out of a settings instance: an ``EvtxSettings``
            (``normagent.sources.evtx``) or any object with ``paths`` and optionally
            ``channels``, ``event_ids``, ``block_records``. Default: the settings instance's
            ``evtx`` field if it has one, else the instance itself.

    The other arguments are as for ``file_log_collector``.
    """
    pick = evtx or _default_evtx
    if not isinstance(getattr(pick(settings()), "paths", None), tuple):
        raise TypeError(f"{name}: evtx(settings) must return settings with a paths tuple (see EvtxSettings)")
    declared = _declared((*metrics, FILES_UNREADABLE_SPEC))

    def collect(ctx: RunContext) -> Iterator[Batch]:
        return _collect_records(ctx, parser, _evtx_steps(ctx, pick(ctx.settings)), declared, max_failures)

    return CollectorSpec(
        name=name,
        help=help,
        collect=collect,
        interval=interval,
        timeout=timeout,
        settings=settings,
        metrics=declared,
        parser=parser,
        probe=probe,
        enabled_by_default=enabled_by_default,
    )


def syslog_log_collector(
    name: str,
    *,
    help: str,
    parser: Parser,
    settings: type | None = None,
    metrics: Iterable[MetricSpec] = (),
    interval: timedelta = timedelta(seconds=15),
    timeout: timedelta = timedelta(seconds=60),
    probe: ProbeFn | None = None,
    enabled_by_default: bool = True,
    max_failures: int = MAX_FAILURES,
    commit_bytes: int = COMMIT_BYTES,
) -> CollectorSpec:
    """A collector that reads what the syslog receiver spooled (``[syslog]``), exactly once.

    Blocks are spool lines, ``<received, RFC 3339 UTC> <sender address> <message>``
    (``normagent.sources.syslog.parse_spool_line`` takes one apart). Each block's counts and the
    spool position they lead to are committed together; rotated spool files read to their end are
    deleted once that is committed (``normagent.sources.spool``). Raises ``NoData`` (a quiet,
    successful run) when no receiver is configured.

    The arguments are as for ``file_log_collector``; there is no file setting, the spool is the
    agent's.
    """
    declared = _declared(metrics)

    def collect(ctx: RunContext) -> Iterator[Batch]:
        return _collect_spool(ctx, parser, declared, max_failures, commit_bytes)

    return CollectorSpec(
        name=name,
        help=help,
        collect=collect,
        interval=interval,
        timeout=timeout,
        settings=settings,
        metrics=declared,
        parser=parser,
        probe=probe,
        enabled_by_default=enabled_by_default,
        reads_syslog_spool=True,
    )


def _default_files(settings: Any) -> Any:
    return settings if isinstance(settings, FileSource) else getattr(settings, "files", None)


def _default_journal(settings: Any) -> Any:
    return settings if isinstance(settings, JournalSettings) else getattr(settings, "journal", None)


def _default_evtx(settings: Any) -> Any:
    return getattr(settings, "evtx", settings)


def _declared(metrics: Iterable[MetricSpec]) -> tuple[MetricSpec, ...]:
    own = tuple(metrics)
    names = {m.name for m in own}
    return own + tuple(m for m in LOG_METRICS if m.name not in names)


# --------------------------------------------------------------------------------------------
# The driver


@dataclass
class _Pending:
    """One batch being put together: a block's observations and every checkpoint up to it.

    A parser's carry may be a ``LiveCarry`` here: its JSON value is made once, when the batch is
    (before the next block is parsed, so it is the value after exactly this batch's blocks).
    """

    source: str
    observations: list[Observation] = field(default_factory=list)
    checkpoints: dict[str, JSONValue | LiveCarry] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0
    invalid_utf8: int = 0
    failures: int = 0
    file_errors: dict[str, int] | None = None  # reason → count; None: not a file source
    lag: int | None = None
    has_block: bool = False
    block_bytes: int = 0  # bytes of the blocks in this batch
    files_unreadable: int | None = None  # None: the collector does not declare FILES_UNREADABLE

    def add(self, result: ParseResult) -> None:
        self.observations.extend(result.observations)
        for outcome, n in zip(RESULTS, (result.parsed, result.ignored, result.unparsed), strict=True):
            if n:
                self.lines[outcome] = self.lines.get(outcome, 0) + n
        self.has_block = True

    def full(self, commit_bytes: int) -> bool:
        """Whether to commit before the next block: ``commit_bytes`` of blocks, or
        ``COMMIT_OBSERVATIONS`` observations gathered."""
        return self.block_bytes >= commit_bytes or len(self.observations) >= COMMIT_OBSERVATIONS

    def empty(self) -> bool:
        return not (self.has_block or self.checkpoints or self.bytes_read or self.failures or self.files_unreadable)

    def batch(self, *, zeros: bool = False) -> Batch:
        """The batch; ``zeros`` adds every line-count series at 0 so it exists from the first run."""
        src = self.source
        obs = list(self.observations)
        for outcome in RESULTS:
            n = self.lines.get(outcome, 0)
            if n or zeros:
                obs.append(Count(LINES, {"source": src, "result": outcome}, n))
        for metric, n in ((BYTES, self.bytes_read), (INVALID_UTF8, self.invalid_utf8), (BLOCK_FAILURES, self.failures)):
            if n or zeros:
                obs.append(Count(metric, {"source": src}, n))
        if self.files_unreadable is not None and (self.files_unreadable or zeros):
            obs.append(Count(FILES_UNREADABLE, {"source": src}, self.files_unreadable))
        if self.file_errors is not None:
            for reason in FILE_ERROR_REASONS:
                n = self.file_errors.get(reason, 0)
                if n or zeros:
                    obs.append(Count(FILE_ERRORS, {"source": src, "reason": reason}, n))
        if self.lag is not None:
            obs.append(Gauge(LAG, self.lag, {"source": src}))
        return Batch(observations=obs, checkpoints=[Checkpoint(k, carry_json(v)) for k, v in self.checkpoints.items()])


class ParserFailed(Exception):
    """A parser raised on a block; the run fails and the block is read again next run."""


class _Parsing:
    """Runs the parser on blocks for one collector run, with failure counting across runs and
    each source's carry (``ParseContext.carry``) threaded from block to block."""

    def __init__(self, ctx: RunContext, parser: Parser, pctx: ParseContext, declared: Sequence[MetricSpec], max_failures: int) -> None:
        self.ctx = ctx
        self.parser = parser
        self.pctx = pctx
        self.metrics = {m.name: m for m in declared}
        self.max_failures = max_failures
        self.failed: dict[str, JSONValue] = dict(ctx.state.scan(FAILED_KEY))
        self.carries: dict[str, JSONValue | LiveCarry] = dict(ctx.state.scan(CARRY_KEY))
        self.origins: dict[str, str] = {}  # carry key -> the origin of its source's last block

    def parse(self, block: LogBlock, key: str, position: str, pending: _Pending) -> Batch | None:
        """Parse ``block`` into ``pending``; on a failure return the batch recording it (then raise)."""
        fail_key = FAILED_KEY + key
        carry_key = CARRY_KEY + key
        before = self.failed.get(fail_key)
        carried = self.carries.get(carry_key)
        pctx = replace(self.pctx, carry=carried) if carried is not None or self.pctx.carry is not None else self.pctx
        try:
            result = checked_parse(self.parser, block, pctx, self.metrics)
        except Exception as exc:
            count = 1
            if isinstance(before, dict) and before.get("position") == position:
                previous = before.get("count")
                count = (previous if isinstance(previous, int) else 0) + 1
            if count < self.max_failures:
                self.ctx.log.error(
                    "log_block_failed",
                    origin=block.origin,
                    position=position,
                    attempt=count,
                    error=f"{type(exc).__name__}: {exc}",
                    retry="next run",
                )
                record = _Pending(pending.source, failures=1)
                record.checkpoints[fail_key] = {"position": position, "count": count}
                return record.batch()
            result, bad = parse_one_by_one(self.parser, block, pctx, self.metrics)
            self.ctx.log.error(
                "log_block_failed",
                origin=block.origin,
                position=position,
                attempt=count,
                error=f"{type(exc).__name__}: {exc}",
                failed_lines=bad,
                retry="no: parsed line by line, failing lines counted as unparsed",
            )
            pending.failures += 1
        if before is not None:
            pending.checkpoints[fail_key] = None
            self.failed.pop(fail_key, None)
        self._keep_carry(carry_key, carried, result.carry, pending)
        self.origins[carry_key] = block.origin
        _log_problems(self.ctx, block.origin, position, result)
        pending.add(result)
        return None

    def settle(self, pending: _Pending) -> None:
        """At the end of a run that read everything written so far (not one paused by its
        deadline), give every source with a carry an empty block: a record the log leaves
        unfinished can be settled by ``now`` (a dpkg run that went quiet half-way).

        A parser that raises here is logged and retried next run; its carry stays as it was.
        """
        empty = ParseResult()
        for carry_key, carried in sorted(self.carries.items()):
            if carried is None:
                continue
            origin = self.origins.get(carry_key) or _origin_of(carry_key[len(CARRY_KEY) :])
            block = TextBlock(b"", origin, None, 0)
            try:
                result = checked_parse(self.parser, block, replace(self.pctx, carry=carried), self.metrics)
            except Exception as exc:
                self.ctx.log.error("log_carry_failed", origin=origin, error=f"{type(exc).__name__}: {exc}", retry="next run")
                continue
            if result.observations == empty.observations and result.carry == carried:
                continue
            self._keep_carry(carry_key, carried, result.carry, pending)
            pending.observations.extend(result.observations)
            pending.has_block = True

    def forget(self, key: str, pending: _Pending) -> None:
        """The source's checkpoint is gone (the file was forgotten): so is what it left unfinished."""
        carry_key = CARRY_KEY + key
        if self.carries.get(carry_key) is not None:
            self._keep_carry(carry_key, self.carries[carry_key], None, pending)

    def _keep_carry(self, carry_key: str, before: JSONValue | LiveCarry, after: JSONValue | LiveCarry, pending: _Pending) -> None:
        if after == before:
            return
        self.carries[carry_key] = after
        pending.checkpoints[carry_key] = after


def _origin_of(key: str) -> str:
    """The path a checkpoint key names (``file:/var/log/dpkg.log`` → ``/var/log/dpkg.log``)."""
    return key.split(":", 1)[1] if ":" in key else key


MAX_PROBLEMS_LOGGED = 5  # per block: a damaged file must not flood the log


def _log_problems(ctx: RunContext, origin: str, position: str, result: ParseResult) -> None:
    """Name the malformed lines a parser found by position (never by content), a few per block."""
    for problem in result.problems[:MAX_PROBLEMS_LOGGED]:
        ctx.log.warning("log_line_malformed", origin=origin, position=f"{position}+{problem.offset}", reason=problem.reason)
    if len(result.problems) > MAX_PROBLEMS_LOGGED:
        ctx.log.warning("log_lines_malformed", origin=origin, position=position, more=len(result.problems) - MAX_PROBLEMS_LOGGED)


def _paused(ctx: RunContext, soft_deadline: float) -> str:
    """Why to stop reading after this block ("deadline", "shutdown"), or "" to go on. Either way
    the blocks read so far leave in the batch that follows, so nothing is lost or read twice."""
    if ctx.clock.monotonic() >= soft_deadline:
        return "deadline"
    return "shutdown" if ctx.stopping() else ""


def _soft_deadline(ctx: RunContext) -> float:
    start = ctx.clock.monotonic()
    if ctx.deadline == float("inf"):
        return ctx.deadline
    return start + SOFT_DEADLINE * max(ctx.deadline - start, 0.0)


def _collect_files(
    ctx: RunContext,
    parser: Parser,
    source: FileSource,
    declared: Sequence[MetricSpec],
    max_failures: int,
    commit_bytes: int,
) -> Iterator[Batch]:
    tail = FileTail(source, ctx.state, root=ctx.root, logger=ctx.log)
    parsing = _Parsing(ctx, parser, parse_context(ctx, source.timezone), declared, max_failures)
    stop = _soft_deadline(ctx)
    pending = _Pending(ctx.collector)
    paused = ""
    reads = tail.reads()
    try:
        for read in reads:
            if read.block is not None and pending.full(commit_bytes):
                # Several blocks per transaction: a commit is an fsync. The batch held back
                # last carries the run's final lag and zero series.
                yield pending.batch()
                pending = _Pending(ctx.collector)
            if read.block is not None:
                pending.block_bytes += len(read.block.data)
                failed = parsing.parse(read.block, read.key, read.position, pending)
                if failed is not None:
                    if not pending.empty():
                        yield pending.batch()
                    yield failed
                    raise ParserFailed(f"the parser failed on {read.block.origin} at {read.position}")
                if not read.ascii:  # an ASCII block, known from its line count, is valid UTF-8
                    pending.invalid_utf8 += invalid_utf8_lines(read.block.data)
            elif read.checkpoint is None:
                parsing.forget(read.key, pending)
            pending.checkpoints[read.key] = read.checkpoint
            pending.bytes_read += read.bytes_read
            pending.lag = tail.lag()
            paused = _paused(ctx, stop)
            if paused:
                ctx.log.info("log_read_paused", reason=paused, lag_bytes=tail.lag())
                break
    finally:
        reads.close()
    if not paused:
        parsing.settle(pending)
    pending.lag = tail.lag()
    pending.file_errors = dict(Counter(error_reason(exc) for exc in tail.errors))
    yield pending.batch(zeros=True)
    if tail.errors:
        # Each was logged as it happened (log_file_unreadable: path, reason, error) and counted in
        # FILE_ERRORS; the run fails, without a second error and a traceback of an expected one.
        raise RunFailed.of(tail.errors, error_reason(tail.errors[0]))
    if not tail.tracked:
        raise NoData(f"no file matches {', '.join(source.paths) or '(no paths configured)'}")


def _collect_spool(
    ctx: RunContext, parser: Parser, declared: Sequence[MetricSpec], max_failures: int, commit_bytes: int
) -> Iterator[Batch]:
    """The driver for the syslog spool: as for files (a run that read all there was settles every
    carry with an empty block), plus the lock that keeps a commit from crossing the receiver's
    discard of a file, and the removal of files read to their end."""
    share = ctx.syslog_spool
    if share is None:
        raise NoData("no syslog receiver is configured ([syslog] in the configuration)")
    reader = SpoolReader(share.directory, ctx.state.get(SPOOL_KEY))
    parsing = _Parsing(ctx, parser, parse_context(ctx), declared, max_failures)
    stop = _soft_deadline(ctx)
    pending = _Pending(ctx.collector)
    identities: set[Any] = set()
    finished: list[Path] = []
    paused = ""
    reads = reader.reads()

    def flush(batch: Batch) -> Iterator[Batch]:
        """Commit ``batch`` under the lock; False from ``holding``: a file of it was discarded."""
        with share.holding(identities) as clear:
            if not clear:
                ctx.log.warning("syslog_spool_overtaken", reason="the receiver discarded a file this batch read", retry="next run")
                raise _Overtaken
            yield batch
        share.release(finished)

    try:
        try:
            for read in reads:
                if read.block is not None and pending.full(commit_bytes):
                    yield from flush(pending.batch())
                    pending, finished, identities = _Pending(ctx.collector), [], set()
                if read.block is not None:
                    pending.block_bytes += len(read.block.data)
                    failed = parsing.parse(read.block, SPOOL_KEY, read.position, pending)
                    if failed is not None:
                        if not pending.empty():
                            yield from flush(pending.batch())
                        yield failed
                        raise ParserFailed(f"the parser failed on {read.block.origin} at {read.position}")
                    if not read.ascii:  # an ASCII block, known from its line count, is valid UTF-8
                        pending.invalid_utf8 += invalid_utf8_lines(read.block.data)
                    identities.add(read.identity)
                if reader.stale:
                    finished.extend(reader.stale)
                    reader.stale = []
                finished.extend(read.finished)
                pending.checkpoints[SPOOL_KEY] = read.checkpoint
                pending.bytes_read += read.bytes_read
                pending.lag = reader.lag()
                paused = _paused(ctx, stop)
                if paused:
                    ctx.log.info("log_read_paused", reason=paused, lag_bytes=reader.lag())
                    break
        finally:
            reads.close()
        if not paused:
            parsing.settle(pending)
        finished.extend(reader.stale)
        pending.lag = reader.lag()
        yield from flush(pending.batch(zeros=True))
    except _Overtaken:
        return
    except SpoolBusy as exc:
        ctx.log.info("syslog_spool_busy", error=str(exc), retry="next run")


class _Overtaken(Exception):
    """A batch held lines of a spool file the receiver discarded meanwhile: it is not committed."""


@dataclass(frozen=True, slots=True)
class _Step:
    """One block of records from a record reader, and the checkpoint it leads to."""

    block: RecordBlock
    key: str
    value: JSONValue
    unreadable: int = 0  # damaged records the reader could not deliver: counted as unparsed
    file_unreadable: bool = False  # the whole file cannot be read: FILES_UNREADABLE


def _collect_records(
    ctx: RunContext, parser: Parser, steps: Iterable[_Step], declared: Sequence[MetricSpec], max_failures: int
) -> Iterator[Batch]:
    """The driver for record sources (journald, EVTX)."""
    parsing = _Parsing(ctx, parser, parse_context(ctx, ""), declared, max_failures)
    stop = _soft_deadline(ctx)
    files_metric = any(m.name == FILES_UNREADABLE for m in declared)

    def fresh() -> _Pending:
        return _Pending(ctx.collector, files_unreadable=0 if files_metric else None)

    pending = fresh()
    paused = ""
    last: dict[str, JSONValue] = {}
    iterator = iter(steps)
    try:
        while True:
            try:
                step = next(iterator)
            except StopIteration:
                break
            except Exception:
                # The reader failed (journalctl, an unreadable file): keep what was read so far.
                if not pending.empty():
                    yield pending.batch()
                raise
            if pending.has_block:
                yield pending.batch()
                pending = fresh()
            key = step.key
            if key not in last:
                last[key] = ctx.state.get(key)
            if step.block.records:
                # A record block starts right after the checkpoint before it.
                failed = parsing.parse(step.block, key, f"{key}@{_compact(last[key])}", pending)
                if failed is not None:
                    if not pending.empty():
                        yield pending.batch()
                    yield failed
                    raise ParserFailed(f"the parser failed on {step.block.origin} after {key}")
            if step.unreadable:
                pending.lines["unparsed"] = pending.lines.get("unparsed", 0) + step.unreadable
                pending.has_block = True
            if step.file_unreadable and pending.files_unreadable is not None:
                pending.files_unreadable += 1
                pending.has_block = True
            pending.checkpoints[key] = last[key] = step.value
            # Parsed: let the block go before the next one is read. Held on, two blocks' records
            # (an EVTX block is 1,000 decoded events) would be alive at once, and the allocator
            # would keep the arenas of that peak for good, pinned by what the commit between
            # them leaves (bench/README.md, "The EVTX collector's blocks").
            del step
            paused = _paused(ctx, stop)
            if paused:
                ctx.log.info("log_read_paused", reason=paused)
                break
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    if not paused:
        parsing.settle(pending)
    yield pending.batch(zeros=True)


def _compact(value: JSONValue) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _journal_steps(ctx: RunContext, chosen: JournalSettings, fields: tuple[str, ...] | None) -> Iterator[_Step]:
    cursor = ctx.state.get(JOURNAL_KEY)
    blocks = read_journal(
        ctx.run_command,
        cursor=cursor if isinstance(cursor, str) else None,
        settings=chosen,
        origin=chosen.directory or "journal",
        fields=fields,
    )
    for block, position in blocks:
        yield _Step(block, JOURNAL_KEY, position)
        del block  # not held while the next one is read (see _collect_records)


def _evtx_steps(ctx: RunContext, chosen: Any) -> Iterator[_Step]:
    """EVTX files by record number: each matched file resumes after the last record read from it.

    ``chosen`` is shaped like ``normagent.sources.evtx.EvtxSettings``: ``paths`` (globs), and
    optionally ``channels``, ``event_ids`` and ``block_records``. A file whose size and
    modification time are what they were when it was last read to its end (or found unreadable)
    is not opened again. A file that is not EVTX is counted and logged once per version and keeps
    its position; one that cannot be opened (permissions, I/O) does not keep the others from
    being read, and the run fails at the end.

    A crash of the parser in a chunk is kept in the position. The first one is taken for bad luck
    (the OOM killer): the file counts as unreadable until it changes. A second one in
    the same chunk (after a restart too: the position is committed) skips that chunk
    (``evtx_chunk_skipped``) and reads on after it in a second pass of this run; its numbers are
    counted as unparsed once. Without that, a live log that changes every few seconds would
    crash on the same chunk forever and never be read past it. At most two passes per file and
    run: a crash in the second is a first crash in another chunk (or the skip did not help).
    """
    from normagent.sources.evtx_state import EvtxFileError, EvtxPosition
    from normagent.sources.evtx_process import EvtxCrash, read_evtx_in_child

    unlistable: list[OSError] = []
    not_regular: list[NotRegularFile] = []
    expanded = _expand(ctx.root, chosen.paths, unlistable, not_regular)
    for exc in unlistable:  # a configured directory it may not list: the run fails, after the files
        ctx.log.error("log_directory_unlistable", reason=error_reason(exc), error=str(exc))
    for exc in not_regular:  # a FIFO named Security.evtx, say: never opened; the run fails, after the files
        ctx.log.error("log_file_unreadable", path=exc.path, reason=error_reason(exc), error=str(exc))
    failures: list[Exception] = []
    for logical, real in expanded:
        key = evtx_key(logical)
        saved = ctx.state.get(key)
        saved = saved if isinstance(saved, dict) else {}
        reader = None
        position = EvtxPosition()
        try:
            st = os.stat(real)
            if saved.get("size") == st.st_size and saved.get("mtime_ns") == st.st_mtime_ns:
                continue
            try:
                position = EvtxPosition.from_json(saved.get("position"))
            except ValueError:
                ctx.log.warning("checkpoint_unusable", key=key)
                position = EvtxPosition()
            for again in (False, True):
                # In a child process: a parser crash on a hostile file ends that child, not the
                # agent, and the memory a pass fragments is handed back when it exits.
                reader = read_evtx_in_child(
                    real,
                    position=position,
                    channels=tuple(getattr(chosen, "channels", ())),
                    event_ids=tuple(getattr(chosen, "event_ids", ())),
                    block_records=int(getattr(chosen, "block_records", RECORDS_PER_BLOCK)),
                    deadline=_real_deadline(ctx),
                )
                counted = 0
                skipped: EvtxCrash | None = None
                try:
                    with reader:  # stopped early (deadline, shutdown): the child is killed and reaped
                        for block, _ in reader:
                            unreadable, counted = reader.stats.unreadable - counted, reader.stats.unreadable
                            yield _Step(block, key, {"position": reader.position.to_json()}, unreadable)
                            del block  # not held while the next one is decoded (see _collect_records)
                except EvtxCrash as exc:
                    if again or exc.chunk is None or not reader.position.after_crash(exc.chunk).skips(exc.chunk):
                        raise
                    skipped = exc
                if skipped is None or skipped.chunk is None:
                    _log_evtx_pass(ctx, logical, reader.stats)
                    if reader.stats.truncated:
                        _log_cut_chunk(ctx, logical, st)
                    done: dict[str, JSONValue] = {
                        "position": reader.position.to_json(),
                        "size": st.st_size,
                        "mtime_ns": st.st_mtime_ns,
                    }
                    yield _Step(RecordBlock(records=(), origin=logical), key, done)
                    break
                chunk = skipped.chunk
                position = reader.position.after_crash(chunk)
                ctx.log.error(
                    "evtx_chunk_skipped", path=logical, offset=chunk.offset, first=chunk.first, last=chunk.last,
                    crashes=position.crashes, error=str(skipped),
                )
                # Committed before the next pass: should it fail, the chunk is still skipped next time.
                yield _Step(RecordBlock(records=(), origin=logical), key, {"position": position.to_json()})
        except EvtxFileError as exc:
            # What the file holds is no EVTX (or the start of one still being copied), or the
            # parser crashed in it: wait for its next version, keeping the position (and the
            # chunk it crashed in, to skip if it crashes there again) for the day it is readable.
            kept = reader.position if reader is not None else position
            if isinstance(exc, EvtxCrash) and exc.chunk is not None:
                kept = kept.after_crash(exc.chunk)
            state: dict[str, JSONValue] = {"position": kept.to_json(), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
            age = ctx.clock.now() - datetime.fromtimestamp(st.st_mtime_ns / 1e9, timezone.utc)
            if exc.incomplete and age < INCOMPLETE_GRACE:
                # Nothing saved: looked at again next run, and counted if it is still so by then.
                ctx.log.info("evtx_file_incomplete", path=logical, error=str(exc), retry="next run")
            else:
                ctx.log.error("evtx_file_unreadable", path=logical, error=str(exc), retry="when it changes")
                yield _Step(RecordBlock(records=(), origin=logical), key, {**state, "unreadable": str(exc)}, file_unreadable=True)
        except Exception as exc:  # noqa: BLE001 - reported below, after the other files
            ctx.log.error("evtx_file_unreadable", path=logical, error=f"{type(exc).__name__}: {exc}")
            failures.append(exc)
    if failures:
        raise failures[0]
    problems: list[OSError] = [*unlistable, *not_regular]
    if problems:
        raise RunFailed.of(problems, error_reason(problems[0]))


def _real_deadline(ctx: RunContext) -> float | None:
    """The run's deadline on ``time.monotonic()`` (``ctx.clock`` may be a test's), for a child process to
    be killed at; None when the run has none."""
    if ctx.deadline == float("inf"):
        return None
    return time.monotonic() + max(ctx.deadline - ctx.clock.monotonic(), 0.0)


def _log_cut_chunk(ctx: RunContext, path: str, st: os.stat_result) -> None:
    """The file ends inside a chunk: its records wait for the rest of it (a copy still being
    written). Said once per version of the file (an unchanged file is not read again): as news
    while the file is young, as a warning once it is older than ``INCOMPLETE_GRACE`` (cut short
    and left so: those records are not counted until the file changes)."""
    age = ctx.clock.now() - datetime.fromtimestamp(st.st_mtime_ns / 1e9, timezone.utc)
    say = ctx.log.info if age < INCOMPLETE_GRACE else ctx.log.warning
    say("evtx_chunk_incomplete", path=path, size=st.st_size, retry="when it changes")


def _log_evtx_pass(ctx: RunContext, path: str, stats: Any) -> None:
    """One line for what a pass over a file found wrong with it; nothing when all was well."""
    if stats.lost or stats.replaced:
        ctx.log.warning("evtx_records_missed", path=path, overwritten=stats.lost, replaced=stats.replaced)
    if stats.changed:
        # Copied over in place, or a circular log that wrapped, while it was read: read on next run.
        ctx.log.info("evtx_file_changed_while_read", path=path, retry="next run")
    if stats.relocated:
        # The file held the log read before, but not where the position said: nothing counted twice.
        ctx.log.warning("evtx_position_relocated", path=path)
    if stats.unreadable:
        ctx.log.warning(
            "evtx_records_unreadable",
            path=path,
            unreadable=stats.unreadable,
            offset=stats.damage_offset,
            damaged_numbers=stats.implausible,
            parse_errors=stats.errors,
            damaged_chunks=stats.chunks_damaged,
            skipped_chunks=stats.chunks_skipped,
        )


def evtx_key(logical: str) -> str:
    """The checkpoint key of an event log file: ``evtx:<path>``, or ``evtxx:<percent-encoded
    bytes>`` for a path that is not valid UTF-8 (see ``path_key``: SQLite refuses the lone
    surrogates a glob gives for its undecodable bytes, and with them every commit)."""
    return path_key(logical, EVTX_KEY, EVTX_ESCAPED_KEY)


def _expand(
    root: Path, patterns: Iterable[str], errors: list[OSError] | None = None, not_regular: list[NotRegularFile] | None = None
) -> list[tuple[str, str]]:
    """(logical path, path under root) of every existing file the patterns name, sorted, once each;
    why a directory a pattern names cannot be listed goes to ``errors`` (see ``glob_paths``), and
    a FIFO, socket or device a pattern matched to ``not_regular`` (see ``regular_files``)."""
    found: dict[str, str] = {}
    for pattern in patterns:
        rooted = os.path.join(str(root), pattern.lstrip("/"))
        for real in sorted(regular_files(glob_paths(rooted, errors), not_regular)):
            logical = "/" + os.path.relpath(real, str(root)) if pattern.startswith("/") else os.path.relpath(real, str(root))
            found.setdefault(logical, real)
    return sorted(found.items())


# --------------------------------------------------------------------------------------------
# Parsing, checked


def parse_context(ctx: RunContext, zone: str = "", *, examples: int = 0) -> ParseContext:
    """The ``ParseContext`` for a run: now, the zone of stamps without offset, pseudonyms, settings,
    the maintenance calendar."""
    return ParseContext(
        now=ctx.clock.now(),
        tz=ZoneInfo(zone) if zone else host_zone(ctx.root),
        pseudonymise=ctx.pseudonymise,
        settings=ctx.settings,
        examples=examples,
        maintenance=ctx.maintenance,
    )


def host_zone(root: Path = Path("/")) -> tzinfo:
    """The host's local time zone: ``$TZ``, else ``<root>/etc/localtime``, else UTC."""
    if str(root) == "/":
        name = os.environ.get("TZ", "").lstrip(":")
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                pass
    localtime = root / "etc" / "localtime"
    try:
        target = os.readlink(localtime)
        if "zoneinfo/" in target:
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    try:
        with open(localtime, "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return timezone.utc


def _lines_of(block: LogBlock) -> int:
    return block.line_count if isinstance(block, TextBlock) else len(block.records)


def checked_parse(
    parser: Parser, block: LogBlock, pctx: ParseContext, metrics: Mapping[str, MetricSpec] | None = None
) -> ParseResult:
    """Run ``parser`` on ``block`` and check what it returns.

    The outcomes are made to add up to the block's lines (a shortfall counts as unparsed, an
    excess is logged and cut), so ``normagent_log_lines_total`` always equals the lines read.

    Raises:
        Exception: whatever the parser raised.
        TypeError: the parser returned something other than a ``ParseResult``.
        ValueError: ``metrics`` given, and an observation names a metric the collector does not
            declare, or wrong labels (the ledger would refuse the whole batch, wedging the source).
    """
    result = parser(block, pctx)
    if not isinstance(result, ParseResult):
        raise TypeError(f"the parser returned {type(result).__name__}, expected ParseResult")
    for obs in result.observations:
        if metrics is not None and isinstance(obs, (Count, Gauge)):
            spec = metrics.get(obs.metric)
            if spec is None:
                raise ValueError(f"the parser emitted {obs.metric}, which the collector does not declare")
            if sorted(spec.labels) != [name for name, _ in obs.labels]:
                raise ValueError(f"the parser emitted {obs.metric} with labels {[n for n, _ in obs.labels]}, declared {list(spec.labels)}")
    lines = _lines_of(block)
    got = result.parsed + result.ignored + result.unparsed
    if got != lines:
        log.warning("parser_line_count_mismatch", origin=block.origin, lines=lines, outcomes=got)
        if got < lines:
            result.unparsed += lines - got
        else:
            excess = got - lines
            for name in ("ignored", "unparsed", "parsed"):
                cut = min(excess, getattr(result, name))
                setattr(result, name, getattr(result, name) - cut)
                excess -= cut
    return result


def parse_one_by_one(
    parser: Parser, block: LogBlock, pctx: ParseContext, metrics: Mapping[str, MetricSpec] | None = None
) -> tuple[ParseResult, int]:
    """Parse a block one line (or record) at a time; a line the parser fails on is unparsed.

    Returns:
        The merged result and how many lines failed.
    """
    total = ParseResult(carry=pctx.carry)
    bad = 0
    for offset, one in _singles(block):
        try:
            result = checked_parse(parser, one, replace(pctx, carry=total.carry), metrics)
        except Exception:
            bad += 1
            total.unparsed += 1
            continue
        total.merge(result, pctx.examples)
        total.problems.extend(ParseProblem(offset + p.offset, p.reason) for p in result.problems)
    return total, bad


def _singles(block: LogBlock) -> Iterator[tuple[int, LogBlock]]:
    """Each line (or record) of a block on its own, with its byte offset in the block."""
    if isinstance(block, RecordBlock):
        for n, record in enumerate(block.records):
            yield n, RecordBlock(records=(record,), origin=block.origin)
        return
    data = block.data
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield start, TextBlock(data[start:end], block.origin, block.mtime, 1)
        start = end


# --------------------------------------------------------------------------------------------
# Helpers for simple parsers


LineResult = Sequence[Observation] | None
LineFn = Callable[[str, ParseContext], LineResult]
RecordFn = Callable[[LogRecord, ParseContext], LineResult]
Prefilter = bytes | Sequence[bytes] | re.Pattern[bytes] | None


def line_parser(parse_line: LineFn, *, prefilter: Prefilter = None) -> Parser:
    """A block parser made of a function of one line.

    Lines the prefilter does not match are ``ignored`` without any Python running for them; the
    prefilter is searched over the whole block in C. Each candidate line is decoded (UTF-8 with
    replacement, line end stripped) and given to ``parse_line``, which returns:

    - a non-empty sequence of observations: the line is ``parsed``;
    - an empty sequence: understood, of no interest (``ignored``);
    - ``None``: a candidate no pattern understood (``unparsed``; kept as an example for
      ``normagent parse``).

    Counts with the same metric and labels are summed per block.

    Args:
        parse_line: The per-line function, pure.
        prefilter: A substring, several substrings (any of them), or a compiled bytes pattern a
            candidate line contains. ``None``: every line is a candidate.
    """
    pattern = _prefilter_pattern(prefilter)

    def parse(block: LogBlock, ctx: ParseContext) -> ParseResult:
        if not isinstance(block, TextBlock):
            return ParseResult(ignored=len(block.records))
        result = ParseResult()
        candidates = 0
        lines = _candidate_lines(block.data, pattern)
        for raw in lines:
            candidates += 1
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            _tally(result, parse_line(line, ctx), line, ctx.examples)
        result.ignored += block.line_count - candidates
        result.observations = merge_counts(result.observations)
        return result

    parse.__doc__ = parse_line.__doc__
    parse.__name__ = getattr(parse_line, "__name__", "line_parser")
    return parse


def record_parser(parse_record: RecordFn, *, accept: Callable[[LogRecord], bool] | None = None) -> Parser:
    """A block parser made of a function of one journald entry or Windows event.

    ``accept`` picks candidate records (others are ``ignored``); ``parse_record`` returns
    observations, an empty sequence or ``None`` as for ``line_parser``.
    """

    def parse(block: LogBlock, ctx: ParseContext) -> ParseResult:
        if not isinstance(block, RecordBlock):
            return ParseResult(ignored=block.line_count)
        result = ParseResult()
        for record in block.records:
            if accept is not None and not accept(record):
                result.ignored += 1
                continue
            _tally(result, parse_record(record, ctx), _describe(record), ctx.examples)
        result.observations = merge_counts(result.observations)
        return result

    parse.__doc__ = parse_record.__doc__
    parse.__name__ = getattr(parse_record, "__name__", "record_parser")
    return parse


def _tally(result: ParseResult, outcome: LineResult, text: str, examples: int) -> None:
    if outcome is None:
        result.unparsed += 1
        if len(result.examples) < examples:
            result.examples.append(text)
    elif outcome:
        result.parsed += 1
        result.observations.extend(outcome)
    else:
        result.ignored += 1


def _describe(record: LogRecord) -> str:
    message = getattr(record, "message", None)
    if isinstance(message, str):
        return message
    return f"{getattr(record, 'channel', '')} {getattr(record, 'event_id', '')}".strip()


def _prefilter_pattern(prefilter: Prefilter) -> re.Pattern[bytes] | None:
    if prefilter is None or isinstance(prefilter, re.Pattern):
        return prefilter
    needles = [prefilter] if isinstance(prefilter, bytes) else list(prefilter)
    if not needles or not all(isinstance(n, bytes) and n for n in needles):
        raise TypeError("prefilter must be non-empty bytes, a sequence of them, or a compiled bytes pattern")
    return re.compile(b"|".join(re.escape(n) for n in needles))


def _candidate_lines(data: bytes, pattern: re.Pattern[bytes] | None) -> Iterator[bytes]:
    if pattern is None:
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        yield from lines
        return
    pos = 0
    search = pattern.search
    while True:
        match = search(data, pos)
        if match is None:
            return
        start = data.rfind(b"\n", 0, match.start()) + 1
        end = data.find(b"\n", match.start())
        if end < 0:
            end = len(data)
        yield data[start:end]
        pos = end + 1


def merge_counts(observations: Iterable[Observation]) -> list[Observation]:
    """Sum ``Count``s with the same metric and labels; other observations keep their order."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    others: list[Observation] = []
    for obs in observations:
        if isinstance(obs, Count):
            key = (obs.metric, obs.labels)
            merged[key] = merged.get(key, 0.0) + obs.value
        else:
            others.append(obs)
    return [Count(metric, labels, value) for (metric, labels), value in merged.items()] + others


# --------------------------------------------------------------------------------------------
# normagent parse


InputKind = Literal["text", "journal", "evtx"]
_EVTX_MAGIC = b"ElfFile\x00"
_JOURNAL_SNIFF = re.compile(rb'^\s*\x1e?\{\s*"__CURSOR"')
HEAD_BYTES = 65536  # read to tell an input's kind: enough for a journal entry with a long message


@dataclass(frozen=True, slots=True)
class ParsedInput:
    """What a parser made of one input of ``normagent parse``.

    Attributes:
        path: The input as given (``"-"`` for stdin).
        kind: ``"text"``, ``"journal"`` (``journalctl -o json`` output) or ``"evtx"``.
        result: Outcomes summed over the whole input (``parsed + ignored + unparsed == lines``),
            with up to ``ParseContext.examples`` unparsed lines (they may hold personal data:
            shown to the person who asked, never logged or stored).
        lines: Lines (or records) read.
        failed_lines: Lines the parser raised on (counted as unparsed).
        damage: What the input showed of damage the reader skipped (an EVTX file's damaged
            chunks, records it announces that could not be read); empty when there was none.
        problems: (line number, reason) of the malformed lines the parser named
            (``ParseResult.problems``), first line 1.
    """

    path: str
    kind: InputKind
    result: ParseResult
    lines: int
    failed_lines: int = 0
    damage: str = ""
    problems: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ParseJob:
    """One parser's part in ``parse_each``: the parser, its context, the metrics it declares.

    Attributes:
        parser: The collector's parser.
        ctx: Now, zone, pseudonymiser, settings and how many unparsed examples to keep.
        metrics: The collector's declared metrics; if given, observations are checked against
            them as the daemon does.
    """

    parser: Parser
    ctx: ParseContext
    metrics: tuple[MetricSpec, ...] = ()


def parse_inputs(
    inputs: Sequence[str | Path],
    parser: Parser,
    ctx: ParseContext,
    *,
    kind: InputKind | None = None,
    stdin: IO[bytes] | None = None,
    metrics: Iterable[MetricSpec] = (),
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[ParsedInput]:
    """Run ``parser`` over whole inputs, statelessly, one ``ParsedInput`` per input.

    ``parse_each`` with one job; see there.
    """
    job = ParseJob(parser, ctx, tuple(metrics))
    for (parsed,) in parse_each(inputs, (job,), kind=kind, stdin=stdin, block_bytes=block_bytes):
        yield parsed


def parse_each(
    inputs: Sequence[str | Path],
    jobs: Sequence[ParseJob],
    *,
    kind: InputKind | None = None,
    stdin: IO[bytes] | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[list[ParsedInput]]:
    """Run every job's parser over whole inputs, statelessly: per input, one ``ParsedInput`` per job.

    Each input is opened and read **once**, and every block goes to every parser in turn (the
    way the daemon hands a block to one collector's parser), so N parsers cost one read, not N,
    and a pipe (``<(zcat auth.log.2.gz)``) or stdin works without being kept aside.

    Inputs are plain, gzip, bzip2 or xz text files, ``journalctl -o json`` output (recognised by
    its first line, compressed or not), ``.evtx`` files, or ``"-"`` for stdin. Nothing is
    checkpointed or stored. A block a parser raises on is parsed line by line for that parser;
    lines that still fail count as unparsed (``failed_lines``) and ``log_block_failed`` is logged.

    Args:
        inputs: Paths, or ``"-"``.
        jobs: The parsers, each with its context and metrics.
        kind: Force the kind of every input; default: recognise each one.
        stdin: Where ``"-"`` reads from (default ``sys.stdin.buffer``).
        block_bytes: Size of the blocks handed to the parsers.

    A compressed input that ends early or is damaged is parsed up to there; the damage is named
    in its ``damage`` (as the EVTX reader's is).

    Raises:
        InputError: An input does not exist or cannot be opened (raised before anything is
            parsed), or the file fails to read (an I/O error) part way.
    """
    for item in inputs:
        check_input(str(item))
        if str(item) == "-" and stdin is None and sys.stdin is None:  # started with fd 0 closed (``<&-``)
            raise InputError("-: standard input is closed; give a file, or what to read on stdin")
    for item in inputs:
        text = str(item)
        damage: list[str] = []
        runs = [_JobRun(job) for job in jobs]
        lines = 0
        origin = text
        found: InputKind = kind or "text"
        with contextlib.ExitStack() as closing:
            try:
                found, blocks = _input_blocks(text, kind, stdin, block_bytes, damage, closing)
                for block in blocks:
                    origin = block.origin
                    for run in runs:
                        run.feed(block, lines)
                    lines += _lines_of(block)
            except InputError:
                raise
            except Exception as exc:
                if not _damaged_data(exc):
                    if isinstance(exc, OSError):  # the file itself: an I/O error, a device that refuses reading
                        raise InputError(f"{text}: cannot be read after line {lines:,}: {exc.strerror or exc}") from exc
                    raise
                # A compressed input cut short (a copy still being written) or damaged: what came
                # before is parsed and shown, the damage is named, as EVTX damage is.
                damage.append(f"the compressed data ends or is damaged after line {lines:,} ({exc}); the rest was not read")
        yield [run.finish(text, found, origin, lines, "; ".join(damage)) for run in runs]


def check_input(text: str) -> None:
    """Refuse an input path that cannot be read, before anything is parsed (``InputError``)."""
    if text == "-":
        return
    try:
        st = os.stat(text)
    except FileNotFoundError:
        raise InputError(f"{text}: no such file") from None
    except OSError as exc:  # a link loop, a name too long, a file where a directory should be …
        raise InputError(f"{text}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{text}: is a directory, not a log file")
    if not os.access(text, os.R_OK):
        raise InputError(f"{text}: permission denied")


def _damaged_data(exc: BaseException) -> bool:
    """Whether ``exc`` is a decompressor's complaint about its data (``codec_errors``, and gzip's
    and bz2's ``OSError``s without an errno), not an I/O error of the file."""
    return exc.errno is None if isinstance(exc, OSError) else isinstance(exc, codec_errors())


class _JobRun:
    """One job's tally over one input: the results of its blocks, summed, its carry threaded."""

    def __init__(self, job: ParseJob) -> None:
        self.job = job
        self.declared = {m.name: m for m in job.metrics} or None
        self.total = ParseResult(carry=job.ctx.carry)
        self.failed = 0
        self.problems: list[tuple[int, str]] = []

    def feed(self, block: LogBlock, before: int) -> None:
        """Parse one block; ``before`` is the number of lines of the input before it."""
        parser, ctx = self.job.parser, self.job.ctx
        block_ctx = replace(ctx, carry=self.total.carry) if self.total.carry is not None or ctx.carry is not None else ctx
        try:
            result = checked_parse(parser, block, block_ctx, self.declared)
        except Exception as exc:
            result, bad = parse_one_by_one(parser, block, block_ctx, self.declared)
            self.failed += bad
            log.error("log_block_failed", origin=block.origin, error=f"{type(exc).__name__}: {exc}", failed_lines=bad)
        if result.problems:
            self.problems += _numbered(block, before, result.problems)
        self.total.merge(result, ctx.examples)

    def finish(self, path: str, kind: InputKind, origin: str, lines: int, damage: str) -> ParsedInput:
        """The input is complete: what it left unfinished is settled now, as it stands."""
        parser, ctx, total = self.job.parser, self.job.ctx, self.total
        if total.carry is not None:
            ending = TextBlock(b"", origin, None, 0)
            try:
                total.merge(checked_parse(parser, ending, replace(ctx, carry=total.carry, final=True), self.declared), ctx.examples)
            except Exception as exc:
                log.error("log_carry_failed", origin=origin, error=f"{type(exc).__name__}: {exc}")
        total.observations = merge_counts(total.observations)
        return ParsedInput(
            path=path,
            kind=kind,
            result=total,
            lines=lines,
            failed_lines=self.failed,
            damage=damage,
            problems=tuple(self.problems),
        )


def _numbered(block: LogBlock, before: int, problems: Sequence[ParseProblem]) -> list[tuple[int, str]]:
    """(1-based line or record number in the whole input, reason) of a block's problems."""
    if not problems:
        return []
    if isinstance(block, RecordBlock):
        return [(before + p.offset + 1, p.reason) for p in problems]
    return [(before + block.data.count(b"\n", 0, p.offset) + 1, p.reason) for p in problems]


def _input_blocks(
    text: str,
    kind: InputKind | None,
    stdin: IO[bytes] | None,
    block_bytes: int,
    damage: list[str],
    closing: contextlib.ExitStack,
) -> tuple[InputKind, Iterator[LogBlock]]:
    """The kind of one input and its blocks, from one open of it (``closing`` closes it).

    A regular file is read with ``pread`` as the daemon's tail reads it (or through its
    decompressor); a pipe, a device or stdin is read forward once, what was read to tell its
    kind given again before the rest.
    """
    if text == "-":
        stream: IO[bytes] = stdin if stdin is not None else sys.stdin.buffer
        mtime = None
        regular = False
    else:
        if kind == "evtx" or (kind is None and text.lower().endswith(".evtx")):
            _check_evtx_path(text)
            return "evtx", _evtx_blocks(text, damage)
        try:
            stream = closing.enter_context(open(text, "rb"))  # noqa: SIM115 - closed by ``closing``
            st = os.fstat(stream.fileno())
        except OSError as exc:
            raise InputError(f"{text}: {exc.strerror or exc}") from exc
        regular = stat.S_ISREG(st.st_mode)
        mtime = datetime.fromtimestamp(st.st_mtime, timezone.utc) if regular else None
    head = _read_head(stream, HEAD_BYTES)
    if text != "-" and (kind == "evtx" or (kind is None and head.startswith(_EVTX_MAGIC))):
        if not regular:
            raise InputError(f"{text}: EVTX cannot be read from a pipe; give the file's path")
        return "evtx", _evtx_blocks(text, damage)
    codec = codec_from_magic(head)
    if regular and not codec:
        found = kind or _sniff(head)
        blocks = _watching_shrink(read_fd(stream.fileno(), text, mtime=mtime, block_bytes=block_bytes), stream.fileno(), st.st_size, damage)
        return found, _text_or_journal(blocks, text, found)
    if regular:
        stream.seek(0)
    else:
        stream = io.BufferedReader(_Replayed(head, stream))
    if codec:
        stream = closing.enter_context(open_codec_stream(stream, codec))
        head = _read_head(stream, HEAD_BYTES)
        stream = io.BufferedReader(_Replayed(head, stream))
    found = kind or _sniff(head)
    if found == "evtx":  # only stdin gets here: a path was sent to the EVTX reader above
        raise InputError("-: EVTX cannot be read from stdin; give the file's path")
    origin = "<stdin>" if text == "-" else text
    return found, _text_or_journal(read_stream(stream, origin, mtime=mtime, block_bytes=block_bytes), origin, found)


def _watching_shrink(blocks: Iterator[TextBlock], fd: int, size: int, damage: list[str]) -> Iterator[TextBlock]:
    """``blocks`` of a regular file of ``size`` bytes when it was opened, and, once they end,
    whether it had shrunk under the reader: cut short while it was read (logrotate's
    ``copytruncate``, a copy started again), the read ended where the cut came, and the counts
    looked like the whole file's. That goes in ``damage``."""
    yield from blocks
    now = os.fstat(fd).st_size
    if now < size:
        damage.append(
            f"the file shrank from {size:,} to {now:,} bytes while it was read (truncated, or rotated with "
            "copytruncate): what it held beyond that was not read"
        )


def _check_evtx_path(path: str) -> None:
    """An EVTX file is read in place (its chunks by offset, in a child process): a FIFO named
    ``Security.evtx`` held ``normagent parse`` at its open for good, waiting for a writer, and a
    socket or a device is no file either. Refused, saying what it is (``InputError``)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: is {kind_of(mode)}, not a regular file; EVTX is read in place: give the file's path")


def _read_head(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at the end of the stream (a pipe gives what it has)."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        part = stream.read(size - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


class _Replayed(io.RawIOBase):
    """``head`` again, then the rest of ``stream``: a pipe sniffed without losing what was sniffed."""

    def __init__(self, head: bytes, stream: IO[bytes]) -> None:
        super().__init__()
        self._head = memoryview(head)
        # A piece at a time: a decompressor's read(n) that meets damage raises, and what it had
        # decompressed in that call (up to a block, 1 MiB of lines, before) is gone with it.
        self._read = read_some(stream)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _text_or_journal(blocks: Iterator[TextBlock], origin: str, kind: InputKind) -> Iterator[LogBlock]:
    if kind == "text":
        yield from blocks
        return
    # journalctl -o json: one entry per line, and blocks end at line ends, so no entry is split.
    for block in blocks:
        decoded = decode_journal_json(block.data)
        if decoded.garbage:
            log.warning("journal_json_garbage", origin=origin, lines=decoded.garbage)
        entries = decoded.entries
        for start in range(0, len(entries), RECORDS_PER_BLOCK):
            yield RecordBlock(records=tuple(entries[start : start + RECORDS_PER_BLOCK]), origin=origin)


def _sniff(head: bytes) -> InputKind:
    """What an input is, by its first bytes: an EVTX file, ``journalctl -o json`` output, or text.

    journalctl does not promise its field order (systemd 252 may print ``_HOSTNAME`` before
    ``__CURSOR``), so a first line that does not start with the cursor is read as JSON.
    """
    if head.startswith(_EVTX_MAGIC):
        return "evtx"
    if _JOURNAL_SNIFF.match(head):
        return "journal"
    first = head.lstrip(b"\x1e \t\r\n").split(b"\n", 1)[0]
    if not first.startswith(b"{"):
        return "text"
    try:
        entry = json.loads(first)
    except (ValueError, RecursionError):
        return "text"
    return "journal" if isinstance(entry, dict) and "__CURSOR" in entry and "__REALTIME_TIMESTAMP" in entry else "text"


def _evtx_blocks(path: str, damage: list[str]) -> Iterator[LogBlock]:
    """The records of an .evtx input; a file that is no EVTX is an ``InputError`` (exit 66), as a
    missing one is. Damage inside a readable file is described in ``damage`` once it is read.

    A chunk that crashes the parser is skipped at once (a one-shot command keeps no state to wait
    for a second crash, and stopping there would hide every record after it): logged
    (``evtx_chunk_skipped``) and named in ``damage``, and a new pass reads on after it, its
    numbers counted as unreadable. A crash before any chunk, or again in a chunk already skipped
    (no progress), is an ``InputError``.
    """
    from normagent.sources.evtx_state import EvtxFileError, EvtxPosition, EvtxStats
    from normagent.sources.evtx_process import EvtxCrash, read_evtx_in_child

    position = EvtxPosition()
    total = EvtxStats()
    crashes: list[str] = []
    skipped: set[tuple[int, int]] = set()
    while True:
        # In a child process, as the agent reads it: a file that crashes the parser is damage in
        # that file, not a crash of the command.
        reader = read_evtx_in_child(path, block_records=RECORDS_PER_BLOCK, position=position)
        try:
            with reader:
                for block, _ in reader:
                    yield block
            crash = None
        except EvtxCrash as exc:
            chunk = exc.chunk
            if chunk is None or (chunk.offset, chunk.first) in skipped:
                raise InputError(str(exc)) from exc
            crash = exc
        except EvtxFileError as exc:
            raise InputError(str(exc)) from exc
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror or exc}") from exc
        stats = reader.stats
        total.unreadable += stats.unreadable
        if stats.damage_offset:
            total.damaged_at(stats.damage_offset)
        total.implausible += stats.implausible
        total.chunks_damaged = max(total.chunks_damaged, stats.chunks_damaged)
        total.truncated = total.truncated or stats.truncated
        if crash is None:
            break
        assert crash.chunk is not None
        chunk = crash.chunk
        skipped.add((chunk.offset, chunk.first))
        said = str(crash).removeprefix(f"{path}: ")
        log.warning("evtx_chunk_skipped", path=path, offset=chunk.offset, first=chunk.first, last=chunk.last, error=str(crash))
        crashes.append(f"{said}; that chunk skipped")
        position = reader.position.skipping(chunk)
    damage.extend(crashes)
    where = f" (the first in the chunk at offset {total.damage_offset:,})" if total.damage_offset else ""
    for n, one, many, at in (
        (total.chunks_damaged, "damaged chunk header", "damaged chunk headers", ""),
        (total.unreadable, "record announced but unreadable", "records announced but unreadable", where),
        (total.implausible, "record with a damaged number", "records with a damaged number", ""),
    ):
        if n:
            damage.append(f"{n:,} {one if n == 1 else many}{at}")
    if total.truncated:  # the agent waits for the rest of such a chunk; a one-shot command says so
        damage.append("the file ends inside a chunk (cut short, or a copy still being written): that chunk's records were not read")


__all__ = [
    "LOG_METRICS",
    "FileSource",
    "ParseJob",
    "ParsedInput",
    "ParserFailed",
    "checked_parse",
    "evtx_log_collector",
    "file_log_collector",
    "host_zone",
    "journal_log_collector",
    "line_parser",
    "merge_counts",
    "parse_context",
    "parse_each",
    "parse_inputs",
    "record_parser",
    "syslog_log_collector",
]
