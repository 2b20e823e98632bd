"""The ``edi.messages`` collector: message folders → counts, receipt gauges, stops, events.

One cycle:

1. compare the committed token with the in-memory index (rebuild it from the ledger if they differ);
2. find new, changed and vanished files (``index.scan``: a stat per directory when nothing changed);
3. read each new file's header (``parse``), correlate it (``correlate``) and yield the counts,
   events, file index entries and records in batches of ``batch_size`` files — each batch one
   ledger transaction, so a crash re-reads at most the batch that was not committed;
4. in the last batch: feed the traffic of the cycle to the stop logic (``stops``), check the
   message server's service, count messages that passed their receipt timeout, and set the gauges
   from the pending set only.

What it exports (one line each, as ``curl -s localhost:9610/metrics | grep normagent_edi_`` shows)::

    normagent_edi_messages_total{direction="out",msg_type="EPIKRISE"} 1532
    normagent_edi_unacknowledged_messages{msg_type="EPIKRISE",receipt="application"} 2

The same facts by hand: ``grep -l '<Status V="2"' /srv/edi/inn/*.xml | wc -l`` counts rejected
receipts in one folder.

Imports only ``normagent`` (the public API), the standard library and this package.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
import threading
import weakref
from array import array
from collections.abc import Callable, Generator, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, BinaryIO

from normagent import (
    Batch,
    Checkpoint,
    CollectorSpec,
    Count,
    Event,
    Gauge,
    JSONValue,
    MaintenanceCalendar,
    MetricSpec,
    NoData,
    RunContext,
    dataclass,
    give_back_memory,
    random_id,
)
from normagent.plugins.edi import codes, correlate, stops
from normagent.plugins.edi.index import (
    DIRECTIONS,
    QUEUE,
    TOKEN,
    DirState,
    FileEntry,
    Index,
    Stage,
    FORMAT,
    derive,
    printable,
    upgrade,
)
from normagent.plugins.edi.scan import Candidate, DirectoryCache, ScanResult, Watcher, open_dir, scan
from normagent.plugins.edi.parse import CHUNK, Parsed, parse_file_bytes, parse_header
from normagent.plugins.edi.settings import WEEKDAYS, EdiSettings, zone

SECTION = "Meldingskommunikasjon (EDI)"
NAME = "edi.messages"

FILE_OUTCOMES = (
    "ok",
    "moved",
    "copy",
    "rewritten",
    "duplicate_id",
    "encrypted",
    "empty",
    "malformed",
    "truncated",
    "unsafe_xml",
    "unknown_format",
    "unknown_namespace",
    "unknown_version",
    "incomplete",
    "header_too_large",
    "too_deep",
    "timeout",
    "not_regular",
    "unreadable",
)
TIMESTAMP_KINDS = ("with_zone", "no_zone", "missing", "unparseable")
RECEIPTS = (correlate.TRANSPORT, correlate.APPLICATION)

M_FILES = "normagent_edi_files_total"
M_UNACK = "normagent_edi_unacknowledged_messages"
M_ALARM = "normagent_edi_unacknowledged_alarm_messages"
M_OLDEST = "normagent_edi_oldest_unacknowledged_age_seconds"
M_UNMATCHED = "normagent_edi_unmatched_receipts"
M_STOP_SECONDS = "normagent_edi_stop_seconds_total"
M_STOP_CURRENT = "normagent_edi_stop_current_seconds"
M_FOLDER_UP = "normagent_edi_folder_up"
M_SERVICE_UP = "normagent_edi_service_up"
M_INDEXED = "normagent_edi_indexed_files"

METRICS = (
    MetricSpec(
        correlate.M_MESSAGES, "counter",
        "EDI messages read, once per message id, by direction and message type (MsgInfo/Type; APPREC for receipts).",
        labels=("direction", "msg_type"), section=SECTION,
    ),
    MetricSpec(
        M_UNACK, "gauge",
        "Sent messages still without transport or application receipt after the timeout.",
        labels=("msg_type", "receipt"), section=SECTION,
    ),
    MetricSpec(
        M_ALARM, "gauge",
        "Sent messages still without receipt after the alarm limit (72 h by default, when the national handler gives up).",
        labels=("msg_type", "receipt"), section=SECTION,
    ),
    MetricSpec(
        M_OLDEST, "gauge",
        "Age of the oldest sent message still waiting for a receipt (0 when none waits).",
        labels=("msg_type", "receipt"), section=SECTION,
    ),
    MetricSpec(
        correlate.M_UNACK_TOTAL, "counter",
        "Sent messages whose receipt did not come within the timeout (late or never), counted once each.",
        labels=("msg_type", "receipt"), section=SECTION,
    ),
    MetricSpec(
        correlate.M_RECEIPTS, "counter",
        "Application receipts received, by the type of the message they answer and status (1 OK, 2 rejected, 3 OK "
        "with errors in a part); those for a message not read as sent are also in "
        "normagent_edi_receipts_for_unknown_messages_total.",
        labels=("msg_type", "status"), section=SECTION,
    ),
    MetricSpec(
        correlate.M_RECEIPTS_UNKNOWN, "counter",
        "Receipts received for a message not read as one we sent when the receipt was read: never sent from here, "
        "or sent before or outside what the configured folders show (application: AppRec; transport: ebXML).",
        labels=("receipt",), preset=tuple((r,) for r in RECEIPTS), section=SECTION,
    ),
    MetricSpec(
        correlate.M_RECEIPT_ERRORS, "counter",
        "Errors in received application receipts, by original message type, code list (8221 …) and error code.",
        labels=("msg_type", "code_list", "error_code"), section=SECTION,
    ),
    MetricSpec(
        correlate.M_TRANSPORT_ERRORS, "counter",
        "ebXML transport errors (MessageError) received, by ebMS error code.",
        labels=("error_code",), section=SECTION,
    ),
    MetricSpec(
        correlate.M_MISADDRESSED, "counter",
        "Mis-addressed messages: receipts with E20/E21, transport errors about the receiver, incoming messages to a HER id that is not ours.",
        labels=("direction", "msg_type"), section=SECTION,
    ),
    MetricSpec(
        M_UNMATCHED, "gauge",
        "Receipts received for messages that were never read from the configured folders (within the forget window).",
        labels=("receipt",), preset=tuple((r,) for r in RECEIPTS), section=SECTION,
    ),
    MetricSpec(
        M_STOP_SECONDS, "counter",
        "Seconds of stopped message traffic inside business hours, planned (maintenance window) or not.",
        labels=("direction", "planned"),
        preset=tuple((d, p) for d in DIRECTIONS for p in ("true", "false")), section=SECTION,
    ),
    MetricSpec(
        M_STOP_CURRENT, "gauge",
        "Seconds of the stop going on now (business hours), 0 while traffic flows.",
        labels=("direction",), preset=tuple((d,) for d in DIRECTIONS), section=SECTION,
    ),
    MetricSpec(
        M_FILES, "counter",
        "Files read from the EDI folders, by outcome (ok, moved, copy, encrypted, malformed, unsafe_xml …); "
        "a truncated file completed later is counted again as ok.",
        labels=("outcome",), preset=tuple((o,) for o in FILE_OUTCOMES), section=SECTION,
    ),
    MetricSpec(
        correlate.M_TIMESTAMPS, "counter",
        "Message dates (GenDate) read, by kind: with_zone, no_zone (read in the configured zone), missing, unparseable.",
        labels=("kind",), preset=tuple((k,) for k in TIMESTAMP_KINDS), section=SECTION,
    ),
    MetricSpec(
        M_FOLDER_UP, "gauge", "1 if a configured EDI folder exists and can be listed (with all its subfolders, if recursive).", labels=("folder",), section=SECTION,
    ),
    MetricSpec(
        M_SERVICE_UP, "gauge", "1 if the configured message server service (systemd unit or process) is running.",
        section=SECTION,
    ),
    MetricSpec(M_INDEXED, "gauge", "Files in the EDI folder index.", section=SECTION),
)


WEEKDAY_NUMBERS = {name: number for number, name in enumerate(WEEKDAYS, 1)}


@dataclass(frozen=True, slots=True)
class _Cycle:
    """Settings resolved once per cycle."""

    settings: EdiSettings
    correlation: correlate.Context
    rules: stops.StopRules
    now: float


def _calendar_spans(calendar: MaintenanceCalendar) -> Callable[[float, float], list[tuple[float, float]]]:
    """The shared maintenance calendar as spans of unix seconds, for ``stops.Maintenance``."""

    def spans(a: float, b: float) -> list[tuple[float, float]]:
        start, end = datetime.fromtimestamp(a, timezone.utc), datetime.fromtimestamp(b, timezone.utc)
        return [(w.start.timestamp(), w.end.timestamp()) for w in calendar.windows_between(start, end)]

    return spans


def _resolve(settings: EdiSettings, now: float, calendar: MaintenanceCalendar | None = None) -> _Cycle:
    hours = settings.business_hours
    business_zone = zone(hours.time_zone)
    once = []
    weekly = []
    for window in settings.maintenance:
        if window.start is not None and window.end is not None:
            start = window.start if window.start.tzinfo else window.start.replace(tzinfo=business_zone)
            end = window.end if window.end.tzinfo else window.end.replace(tzinfo=business_zone)
            once.append((start.timestamp(), end.timestamp()))
        elif window.from_ is not None and window.to is not None:
            weekly.append(stops.WeeklyWindow(WEEKDAY_NUMBERS[window.weekday], window.from_, window.to))
    rules = stops.StopRules(
        hours=stops.BusinessHours(business_zone, frozenset(hours.weekdays), hours.start, hours.end, hours.dates()),
        gap=settings.stop_gap.total_seconds(),
        # The collector's own windows and the agent's [maintenance] calendar both make a stop planned.
        maintenance=stops.Maintenance(
            business_zone, tuple(once), tuple(weekly), _calendar_spans(calendar) if calendar is not None else None
        ),
    )
    correlation = correlate.Context(
        own_her=frozenset(h.strip() for h in settings.own_her_ids if h.strip()),
        msg_types=codes.MsgTypes((*settings.msg_types, *settings.type_timeouts)),
        naive_zone=zone(settings.naive_time_zone),
        count_encrypted_envelopes=settings.count_encrypted_envelopes,
        timeouts=settings.timeouts,
    )
    return _Cycle(settings, correlation, rules, now)


class _Tally:
    """Observations of one batch, counts summed per series."""

    def __init__(self) -> None:
        # Per series (metric, sorted labels): its sum so far, in a one-item list.
        self.counts: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
        self.other: list[Any] = []
        self.summaries: dict[str, int] = {}
        # The sum of (metric, labels in the caller's order): each file counts two or three series,
        # a batch a few dozen distinct ones, so the labels are sorted once per series, and a count
        # adds to the series' list found by one look-up.
        self._sums: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}

    def log_summaries(self, ctx: RunContext) -> None:
        for event, count in sorted(self.summaries.items()):
            ctx.log.info(event, files=count)

    def count(self, metric: str, labels: dict[str, str], value: float = 1) -> None:
        given = (metric, tuple(labels.items()))
        total = self._sums.get(given)
        if total is None:
            total = self._sums[given] = self.counts.setdefault((metric, tuple(sorted(given[1]))), [0.0])
        total[0] += value

    def observations(self) -> list[Any]:
        return [Count(metric, labels, total[0]) for (metric, labels), total in self.counts.items()] + self.other


# Per-file facts that are normal in bulk (a site that reads only its inbox sees every receipt as one
# for an unknown message): each file gets a debug line, each batch one info line with the count.
SUMMARISED = {
    "edi_receipt_for_unknown_message": "edi_receipts_for_unknown_messages",
    "edi_file_encrypted": "edi_encrypted_files",
}


def _log(ctx: RunContext, logs: list[tuple[str, str, dict[str, object]]], tally: _Tally) -> None:
    for level, event, fields in logs:
        if event in SUMMARISED:
            tally.summaries[SUMMARISED[event]] = tally.summaries.get(SUMMARISED[event], 0) + 1
            level = "debug"
        getattr(ctx.log, level)(event, **fields)


class _OutOfTime(Exception):
    """Reading a file took longer than it may."""


def _chunks(fh: BinaryIO, out_of_time: Callable[[], bool]) -> Iterator[bytes]:
    while True:
        if out_of_time():
            raise _OutOfTime
        chunk = fh.read(CHUNK)
        if not chunk:
            return
        yield chunk


# O_NONBLOCK: a FIFO swapped in after the listing must not block the run (the fstat check below
# then refuses it); O_NOFOLLOW: a symbolic link swapped in is never followed (ELOOP).
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# Errors that mean "not the regular file that was listed": a link (ELOOP), a directory part that
# is no longer a directory (ENOTDIR), a directory (EISDIR), a socket (ENXIO). The directory is
# listed again next cycle, and what is there now is looked at afresh.
_SWAPPED = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENXIO})


def read_file(
    candidate: Candidate, max_header_bytes: int, out_of_time: Callable[[], bool] = lambda: False,
    dirs: DirectoryCache | None = None,
) -> tuple[Parsed | None, str]:
    """Read a file's header, unless it changed since it was listed.

    The file is opened below its configured folder without following any link (``index.open_dir``,
    ``O_NOFOLLOW``), without blocking (``O_NONBLOCK``), and read only if ``fstat`` says it is
    still the regular file that was listed: the agent runs as a privileged user and the folders
    are written by others.

    Args:
        out_of_time: Asked before each 64 KiB chunk; True abandons the file (``"timeout"``).
        dirs: Descriptors of the directories opened so far this cycle (one ``open_dir`` per
            directory instead of per file); a directory whose file looked swapped is dropped from it.

    Returns:
        ``(parsed, "")``, or ``(None, why)`` with why ``"changed"`` (still being written, or no
        longer a regular file: look again), ``"vanished"`` (moved or deleted since the listing)
        or ``"timeout"``.
    """
    try:
        if dirs is not None:
            try:
                fd = os.open(candidate.name, _FILE_FLAGS, dir_fd=dirs.get(candidate.base, candidate.directory))
            except OSError:
                dirs.drop(candidate.directory)  # perhaps no longer the directory listed: opened afresh
                raise
        else:
            directory = open_dir(candidate.base or candidate.directory, candidate.directory)
            try:
                fd = os.open(candidate.name, _FILE_FLAGS, dir_fd=directory)
            finally:
                os.close(directory)
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                return None, "changed"
            if (before.st_size, before.st_mtime_ns) != (candidate.size, candidate.mtime_ns):
                return None, "changed"
            if before.st_size <= CHUNK:
                # The usual message: one read of the whole file, and its header read from memory.
                if out_of_time():
                    raise _OutOfTime
                data = _read_small(fd, before.st_size)
                parsed = parse_file_bytes(data, name=candidate.name, max_header_bytes=max_header_bytes)
            else:
                with os.fdopen(fd, "rb", closefd=False) as fh:
                    parsed = parse_header(_chunks(fh, out_of_time), name=candidate.name,
                                          max_header_bytes=max_header_bytes)
            after = os.fstat(fd)
            if (after.st_size, after.st_mtime_ns) != (candidate.size, candidate.mtime_ns):
                return None, "changed"
        finally:
            os.close(fd)
    except _OutOfTime:
        return None, "timeout"
    except FileNotFoundError:
        return None, "vanished"
    except OSError as exc:
        if exc.errno in _SWAPPED:
            return None, "changed"
        return Parsed("unreadable", detail=exc.strerror or type(exc).__name__), ""
    return parsed, ""


def _read_small(fd: int, size: int) -> bytes:
    """A file of ``size`` <= ``CHUNK`` bytes as ``fstat`` gave it: what is there up to ``CHUNK``
    bytes, in as few reads as the kernel allows (a file that changed meanwhile is caught by the
    ``fstat`` after the read)."""
    data = os.read(fd, CHUNK)
    if len(data) >= size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < CHUNK:
        piece = os.read(fd, CHUNK - got)
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class _Budget:
    """How a run spends its time, so that one slow file or a long catch-up cannot stall the folder.

    A run that passes its deadline commits nothing more, and the next run starts over from the last
    committed batch. So: a batch is committed at least every ``slice`` seconds (not only every
    ``batch_size`` files: a batch that takes longer than the whole run would never be committed,
    and a large catch-up would make no progress at all); and one file may take at most ``per_file``
    seconds — beyond that it is counted as ``timeout`` and indexed, so it cannot hold back the
    files after it cycle after cycle. Without a deadline (inf) neither limit applies.
    """

    started: float
    deadline: float

    @property
    def slice(self) -> float:
        return (self.deadline - self.started) / 8

    @property
    def per_file(self) -> float:
        return (self.deadline - self.started) / 4

    @property
    def deferring(self) -> float:
        """How long a fresh ledger's first index may keep its files' entries for the end of the run
        (``EdiCollector._write_deferred``): half the run, so that writing them fits in it."""
        return (self.deadline - self.started) / 2


BIG_CYCLE = 10_000  # files read in one cycle after which the freed memory is handed back
DEFERRED_BATCH = 2_000  # deferred file entries per committed batch at the end of a first index


class EdiCollector:
    """The collector object behind ``edi.messages``: holds the index's small mirror and the
    inotify watches between cycles.

    Crash safety: the mirror is changed only after a batch's ``yield`` returns, i.e. after the
    ledger committed it (see ``index``). A run that fails or is abandoned leaves the mirror as the
    ledger has it, or marks it stale (token mismatch) so the next cycle loads it again; what the
    inotify events of such a run said is not trusted (every watched directory is listed again).
    """

    def __init__(self) -> None:
        self._index: Index | None = None
        self._lock = threading.Lock()
        self._watcher: Watcher | None = None
        self._inotify_tried = False
        self._listed: dict[str, float] = {}  # watched directory → monotonic time of its last listing
        self._refusal_logged: set[str] = set()
        self._dirs = DirectoryCache()  # this cycle's open directories (closed when the run ends)

    def collect(self, ctx: RunContext) -> Iterator[Batch]:
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("the previous run of edi.messages is still going")
        done = False
        try:
            yield from self._collect(ctx)
            done = True
        finally:
            self._dirs.close()
            if not done and self._watcher is not None:
                self._watcher.relist_all()
            self._lock.release()

    def _watcher_for(self, ctx: RunContext, settings: EdiSettings) -> Watcher | None:
        if not settings.inotify:
            if self._watcher is not None:
                self._watcher.close()
                self._watcher = None
            return None
        if self._watcher is None and not self._inotify_tried:
            from normagent.plugins.edi.watch import Inotify

            self._inotify_tried = True
            inotify, why = Inotify.open()
            if inotify is None:
                ctx.log.info("edi_inotify_unavailable", reason=why, fallback="listing")
                return None
            self._watcher = Watcher(inotify)
            # The descriptor is closed with the collector object (a reload makes a new one).
            weakref.finalize(self, Watcher.close, self._watcher)
        return self._watcher

    def _index_for(self, ctx: RunContext) -> Index:
        token = ctx.state.get(TOKEN)
        if self._index is None or self._index.token != token:
            started = ctx.clock.monotonic()
            self._index = Index.load(ctx.state)
            if self._watcher is not None:
                self._watcher.relist_all()  # events of a run whose batches are not in this ledger
            ctx.log.info("edi_index_loaded", files=self._index.file_count, waiting=len(self._index.pending),
                         duration_s=round(ctx.clock.monotonic() - started, 3))
        self._index.bind(ctx.state)
        return self._index

    def _collect(self, ctx: RunContext) -> Iterator[Batch]:
        settings: EdiSettings = ctx.settings
        if not settings.folders:
            raise NoData("no EDI folders configured")
        index = self._index_for(ctx)
        if index.version < FORMAT:
            # A ledger written before the derived families existed (or a new one): made once; one of
            # layout 2: its pending set moved under time-ordered keys.
            started = ctx.clock.monotonic()
            derived = derive(ctx.state) if index.version < 2 else upgrade(ctx.state)
            yield Batch([], [*derived, Checkpoint(TOKEN, random_id())])
            index = self._index = Index.load(ctx.state)
            ctx.log.info("edi_index_derived", entries=len(derived), duration_s=round(ctx.clock.monotonic() - started, 3))
        now = ctx.clock.now().timestamp()
        cycle = _resolve(settings, now, ctx.maintenance)
        watcher = self._watcher_for(ctx, settings)
        mono = ctx.clock.monotonic()
        interval = settings.listing_interval.total_seconds()
        listed_at = self._listed

        def listing_due(directory: str) -> bool:
            if watcher is None or directory not in watcher.dirs:
                return False
            return bool(mono - listed_at.setdefault(directory, mono) >= interval)

        found = scan(settings.folders, ctx.root, index, now=now, full=settings.full_rescan, watcher=watcher,
                     listing_due=listing_due)
        for directory, seen in found.dirs.items():
            if seen.listed:
                listed_at[directory] = mono
        for directory in [d for d in listed_at if d not in found.dirs]:
            del listed_at[directory]
        for label, problem in found.problems:
            ctx.log.warning("edi_folder_problem", folder=label, problem=problem)
        if found.overflowed:
            ctx.log.warning("edi_inotify_overflow", detail="events lost: the watched folders are listed again")
        if watcher is not None:
            for directory, why in watcher.refused.items():
                if directory not in self._refusal_logged:
                    self._refusal_logged.add(directory)
                    ctx.log.info("edi_inotify_not_used", directory=printable(directory), reason=why, fallback="listing")
        ctx.log.debug("edi_scanned", found=found.found, gone=len(found.gone), listed=found.listed, events=found.events)
        stage = Stage(index)
        tally = _Tally()
        for path in found.gone:
            stage.put_file(path, None, indexed=True)
        for directory in found.gone_dirs:
            for path in index.children(directory):
                stage.put_file(path, None, indexed=True)
            stage.dirs[directory] = None
        traffic: list[JSONValue] = []
        deferred: dict[str, set[str]] = {}  # directory → names of files to look at again
        in_batch = 0
        budget = _Budget(ctx.clock.monotonic(), ctx.deadline)
        batch_started = budget.started
        deferring = index.absent is not None  # the entries of the files read ok are written at the end
        # A fresh ledger's first index commits larger batches: their records (random message ids)
        # go into the ledger in one sorted pass each (``first_index_batch_size``).
        batch_size = settings.first_index_batch_size if index.absent is not None else settings.batch_size
        # One reading of the clock per file for the three checks below (``ctx.expired()`` is
        # ``monotonic() >= deadline``), read again after each yield; the limits computed once.
        clock, deadline, slice_s, deferring_s = ctx.clock, ctx.deadline, budget.slice, budget.deferring
        for candidate in found.candidates.ordered():
            mono = clock.monotonic()
            if in_batch >= batch_size or (in_batch and mono - batch_started >= slice_s):
                if traffic:
                    stage.queue[QUEUE + random_id()] = traffic
                yield self._batch(stage, tally)
                index.apply(stage)
                tally.log_summaries(ctx)
                stage, tally, traffic, in_batch = Stage(index), _Tally(), [], 0
                batch_started = mono = clock.monotonic()
            if deferring and mono - budget.started >= deferring_s:
                # Half the run is gone: the entries so far are written now, the later ones with
                # their batches. A run that ends before writing them costs its next one a second
                # reading of those files.
                written = yield from self._write_deferred(ctx, index, stage, tally, traffic, found)
                if written is None:
                    return
                stage, tally, traffic, in_batch, deferring = written, _Tally(), [], 0, False
                batch_started = mono = clock.monotonic()
            if mono >= deadline:
                return  # the run is over (``ctx.expired()``); the next cycle resumes: uncommitted files are still new
            in_batch += 1
            if not self._read_one(ctx, cycle, candidate, stage, tally, traffic, deferred, budget,
                                  found if deferring else None):
                return  # the run's deadline passed while reading: nothing more can be committed
        if deferring:
            written = yield from self._write_deferred(ctx, index, stage, tally, traffic, found)
            if written is None:
                return
            stage, tally, traffic = written, _Tally(), []
            del written
        self._stage_dirs(index, stage, found, deferred, watcher, now)
        yield from self._finish(ctx, cycle, index, stage, tally, traffic, found.folders_up)
        index.absent = None  # the first cycle's help only: later cycles read few files, the idle agent keeps less
        if found.found >= BIG_CYCLE:
            # The first index's names and times: the idle agent must not keep its peak. The mirror
            # is read again from the ledger after the give-back: its records were made among the
            # cycle's batches, spread over the allocator's arenas, and kept some from being handed
            # back (bench/README.md).
            del found, stage, tally, traffic, index
            self._index = None
            give_back_memory()
            self._index = Index.load(ctx.state)

    def _write_deferred(
        self, ctx: RunContext, index: Index, stage: Stage, tally: _Tally, traffic: list[JSONValue], found: ScanResult,
    ) -> Generator[Batch, None, Stage | None]:
        """The index entries of the files a fresh ledger's first index read ``ok``, written after
        them, in key order, ``DEFERRED_BATCH`` a batch (with the batch still open). Returns the
        stage for the cycle's last batch; None if the run ended first.

        Why: a file's entry is keyed by its path, and a folder's names (UUIDs, usually) come in
        no order: written with each batch, every entry landed on another B-tree leaf of the ledger,
        which was read, copied into the WAL and into the database again at each commit — at 100,000
        messages a third of the index's ledger writes. Written in key order into the empty family,
        the leaves are filled one after the other. Until then an entry is one bit in the candidates
        (``Candidates.defer``), and a run cut short loses nothing: its next cycle finds the files
        without entries, reads them again and sees from their records that they were counted
        (``correlate.Effect.counted_before``); it only writes their entries.
        """
        if traffic:
            stage.queue[QUEUE + random_id()] = traffic
        candidates = found.candidates
        for slots in candidates.deferred():
            for slot in slots:
                if len(stage.files) >= DEFERRED_BATCH:
                    yield self._batch(stage, tally)
                    index.apply(stage)
                    tally.log_summaries(ctx)
                    stage, tally = Stage(index), _Tally()
                    if ctx.expired():
                        return None
                stage.put_file(candidates.path(slot), FileEntry(candidates.size[slot], candidates.mtime[slot], "ok"),
                               indexed=False)
        yield self._batch(stage, tally)
        index.apply(stage)
        tally.log_summaries(ctx)
        return Stage(index)

    @staticmethod
    def _stage_dirs(
        index: Index, stage: Stage, found: ScanResult, deferred: dict[str, set[str]], watcher: Watcher | None,
        now: float,
    ) -> None:
        """What the index may claim for each directory once this cycle is committed (``DirState``).

        A listed directory: its time before the listing; the listing is repeated next cycle if the
        directory changed meanwhile or within ``RACY_SECONDS`` of now (a file created later in the
        same timestamp tick would not move its time). A directory known from inotify events alone:
        its time, once that time is older than ``RACY_SECONDS`` (every change up to it was queued
        before this cycle drained the events). A directory with files still being written keeps
        its former claim, so a restart lists it; with inotify their names are looked at next cycle.
        """
        from normagent.plugins.edi.scan import RACY_SECONDS

        for directory, seen in found.dirs.items():
            prev = index.dirs.get(directory)
            waiting = deferred.get(directory)
            watched = watcher.dirs.get(directory) if watcher is not None and seen.watched else None
            if waiting and watched is not None:
                watched.names |= waiting
            if seen.listed:
                state = DirState(seen.mtime_ns, seen.ino, seen.racy or (bool(waiting) and watched is None), seen.subdirs)
            else:
                claim = prev.mtime_ns if prev is not None else -1
                if seen.mtime_ns / 1e9 <= now - RACY_SECONDS:
                    claim = seen.mtime_ns
                rescan = bool(waiting) and watched is None
                state = DirState(claim, seen.ino, rescan, seen.subdirs)
            if waiting and watched is not None:
                state = DirState(prev.mtime_ns if prev is not None else -1, state.ino, False, state.subdirs)
            if state != prev and directory not in found.gone_dirs:
                stage.dirs[directory] = state

    @staticmethod
    def _batch(stage: Stage, tally: _Tally) -> Batch:
        stage.token = random_id()
        return Batch(tally.observations(), stage.checkpoints())

    def _read_one(
        self,
        ctx: RunContext,
        cycle: _Cycle,
        candidate: Candidate,
        stage: Stage,
        tally: _Tally,
        traffic: list[JSONValue],
        deferred: dict[str, set[str]],
        budget: _Budget,
        found: ScanResult | None = None,
    ) -> bool:
        """Read one candidate into ``stage``; False if the run's deadline passed meanwhile.

        ``found`` is given while a fresh ledger's first index defers its entries: the entry of a
        file read ``ok`` is then not staged but marked in its candidates and written at the end of
        the cycle (``_write_deferred``)."""
        settings = cycle.settings
        folder = candidate.folder
        name = printable(candidate.name)
        mtime = candidate.mtime_ns / 1e9
        previous = stage.index.watched(candidate.directory, candidate.name)
        if not candidate.regular:
            # Never opened: a link may point anywhere (/etc/shadow), a FIFO would block a reader.
            stage.put_file(candidate.path, FileEntry(candidate.size, candidate.mtime_ns, "not_regular"), indexed=candidate.indexed)
            if previous != "not_regular":
                tally.count(M_FILES, {"outcome": "not_regular"})
                ctx.log.warning("edi_file_not_regular", folder=folder.label, file=name,
                                detail="symbolic link, FIFO, device or socket: not read")
            return True
        clock = ctx.clock
        give_up = min(clock.monotonic() + budget.per_file, budget.deadline)
        parsed, why = read_file(candidate, settings.max_header_bytes, lambda: clock.monotonic() >= give_up, self._dirs)
        # A watched file read again keeps its count when the outcome did not change (a truncated
        # file that grew a little and stalled again is still one truncated file).
        if why == "timeout":
            if ctx.expired():
                return False  # the run ran out, not this file's own time: the next run reads it
            stage.put_file(candidate.path, FileEntry(candidate.size, candidate.mtime_ns, "timeout"), indexed=candidate.indexed)
            if previous != "timeout":
                tally.count(M_FILES, {"outcome": "timeout"})
                ctx.log.warning("edi_file_timed_out", folder=folder.label, file=name, limit_s=round(budget.per_file, 1))
            return True
        if parsed is None:
            if why == "changed":
                deferred.setdefault(candidate.directory, set()).add(candidate.name)
            return True
        if parsed.outcome in ("truncated", "empty") and cycle.now - mtime < settings.write_grace.total_seconds():
            deferred.setdefault(candidate.directory, set()).add(candidate.name)  # still being written: look again next cycle
            return True
        if parsed.outcome == "unreadable":
            stage.put_file(candidate.path, FileEntry(candidate.size, candidate.mtime_ns, "unreadable"), indexed=candidate.indexed)
            if previous != "unreadable":
                tally.count(M_FILES, {"outcome": "unreadable"})
                ctx.log.warning("edi_file_unreadable", folder=folder.label, file=name, error=parsed.detail)
            return True
        if previous and parsed.outcome == previous:
            stage.put_file(candidate.path, FileEntry(candidate.size, candidate.mtime_ns, previous), indexed=candidate.indexed)
            return True
        facts = correlate.FileFacts(
            path=candidate.path, name=name, folder=folder.label, direction=folder.direction,
            role=folder.role, mtime=mtime, indexed=candidate.indexed,
        )
        if parsed.outcome == "ok":
            effect = correlate.apply_file(facts, parsed, stage, cycle.correlation)
        else:
            effect = correlate.Effect(outcome=parsed.outcome)
            if parsed.outcome == "encrypted" and folder.direction != "unknown":
                effect.traffic = folder.direction
            if parsed.outcome == "encrypted":
                effect.log("debug", "edi_file_encrypted", folder=folder.label, file=name, detail=parsed.detail)
            else:
                effect.log("warning", "edi_file_not_read", folder=folder.label, file=name,
                           outcome=parsed.outcome, detail=parsed.detail, wrapper=parsed.wrapper)
        if effect.counted_before:
            stage.put_file(candidate.path, FileEntry(candidate.size, candidate.mtime_ns, "ok"), indexed=False)
            return True
        if (effect.outcome == "ok" and found is not None and candidate.slot >= 0
                and not candidate.indexed):
            found.candidates.defer(candidate.slot)  # its entry is written at the end of the cycle, in key order
        else:
            stage.put_file(candidate.path, FileEntry(candidate.size, candidate.mtime_ns, effect.outcome), indexed=candidate.indexed)
        stage.put_records(effect.records.items())
        tally.count(M_FILES, {"outcome": effect.outcome})
        for metric, labels, value in effect.counts:
            tally.count(metric, labels, value)
        for kind, at, key, attrs in effect.events:
            tally.other.append(Event(kind, datetime.fromtimestamp(at, timezone.utc), key, attrs))
        if effect.traffic in DIRECTIONS and effect.outcome in ("ok", "encrypted"):
            traffic.append([effect.traffic, mtime])
        _log(ctx, effect.logs, tally)
        return True

    def _finish(
        self,
        ctx: RunContext,
        cycle: _Cycle,
        index: Index,
        stage: Stage,
        tally: _Tally,
        traffic: list[JSONValue],
        folders_up: dict[str, bool],
    ) -> Iterator[Batch]:
        settings, now = cycle.settings, cycle.now
        # Traffic: this batch's, and that of earlier batches committed in the queue.
        times: dict[str, array[float]] = {d: array("d") for d in DIRECTIONS}
        for key, items in index.queued():
            stage.queue[key] = None
            _add_traffic(times, items)
        _add_traffic(times, traffic)

        service = self._service(ctx, settings, index.service, now)
        stage.service = service
        rules = dataclasses.replace(cycle.rules, down=service.spans(now))
        gauges: list[Gauge] = []
        oldest_last = now
        for direction in DIRECTIONS:
            update = stops.advance(index.stops[direction], sorted(times[direction]), now, rules)
            stage.stops[direction] = update.state
            if update.state.last is not None:
                oldest_last = min(oldest_last, update.state.last)
            for piece in update.accrued:
                tally.count(M_STOP_SECONDS, {"direction": direction, "planned": _bool(piece.planned)}, piece.seconds)
            for piece in update.closed:
                start = datetime.fromtimestamp(piece.start, timezone.utc)
                end = datetime.fromtimestamp(piece.end, timezone.utc)
                tally.other.append(
                    Event(
                        "edi.stop", start, f"{direction}:{start.isoformat()}",
                        {"direction": direction, "start": start.isoformat(), "end": end.isoformat(),
                         "planned": piece.planned, "seconds": round(piece.seconds, 3), "service_down": piece.service_down},
                    )
                )
                ctx.log.info("edi_stop_ended", direction=direction, start=start.isoformat(), end=end.isoformat(),
                             planned=piece.planned, seconds=round(piece.seconds))
            if update.late_traffic:
                ctx.log.debug("edi_traffic_older_than_known", direction=direction, files=update.late_traffic)
            gauges.append(Gauge(M_STOP_CURRENT, update.current, {"direction": direction}))
        stage.service = service.forget_before(oldest_last)

        # A receipt that may be lying in a folder we cannot see right now is not missing: while such
        # a folder is down, nothing becomes overdue and the waiting gauges keep their last values.
        # When it returns, its receipts are read first and judged by when they arrived.
        blind = sorted(
            f.label for f in settings.folders
            if (f.role == "receipts" or f.direction != "out") and not folders_up.get(f.label, True)
        )
        if blind:
            ctx.log.warning("edi_receipts_not_judged", folders=blind, waiting=sum(1 for _ in stage.waiting()))
        else:
            report = correlate.evaluate_pending(
                list(stage.waiting()), now, cycle.correlation, settings.forget_unacknowledged_after.total_seconds()
            )
            stage.forgotten = set(report.forgotten)
            stage.put_records(report.effect.records.items())
            for metric, labels, value in report.effect.counts:
                tally.count(metric, labels, value)
            for kind, at, key, attrs in report.effect.events:
                tally.other.append(Event(kind, datetime.fromtimestamp(at, timezone.utc), key, attrs))
            # Series once exported drop to 0 rather than vanish: the ledger keeps a series a batch
            # does not mention, so one left out would keep its last value.
            series = index.gauge_series | set(report.oldest) | set(report.unacknowledged)
            if series != index.gauge_series:
                stage.gauge_series = series
            for msg_type, receipt in sorted(series):
                labels = {"msg_type": msg_type, "receipt": receipt}
                gauges.append(Gauge(M_UNACK, report.unacknowledged.get((msg_type, receipt), 0), labels))
                gauges.append(Gauge(M_ALARM, report.alarm.get((msg_type, receipt), 0), labels))
                gauges.append(Gauge(M_OLDEST, round(report.oldest.get((msg_type, receipt), 0.0), 3), labels))

        window = settings.forget_unacknowledged_after.total_seconds()
        unmatched = stage.unmatched_counts(now, window)
        gauges += [Gauge(M_UNMATCHED, value, {"receipt": r}) for r, value in unmatched.items()]

        self._prune(ctx, settings, index, stage, now)
        for label, up in folders_up.items():
            gauges.append(Gauge(M_FOLDER_UP, 1 if up else 0, {"folder": label}))
        if settings.service.systemd_unit or settings.service.process:
            gauges.append(Gauge(M_SERVICE_UP, 0 if service.down_since is not None else 1))
        gauges.append(Gauge(M_INDEXED, index.file_count + stage.file_delta()))
        tally.other.extend(gauges)
        yield self._batch(stage, tally)
        index.apply(stage)
        tally.log_summaries(ctx)

    @staticmethod
    def _service(ctx: RunContext, settings: EdiSettings, state: stops.ServiceState, now: float) -> stops.ServiceState:
        check = settings.service
        up: bool | None = None
        if check.systemd_unit:
            result = ctx.run_command(["systemctl", "is-active", check.systemd_unit], timeout=5.0)
            status = result.stdout.decode("utf-8", "replace").strip()
            if result.returncode is None or not status:
                ctx.log.warning("edi_service_check_failed", unit=check.systemd_unit, error=result.error or "no output")
            else:
                up = status in ("active", "reloading")
        elif check.process:
            up = ctx.host.process_running(check.process)
        new = state.observe(up, now)
        if new.down_since is not None and state.down_since is None:
            ctx.log.warning("edi_service_down", unit=check.systemd_unit, process=check.process)
        elif new.down_since is None and state.down_since is not None:
            ctx.log.info("edi_service_up", unit=check.systemd_unit, process=check.process,
                         down_s=round(now - state.down_since))
        return new

    @staticmethod
    def _prune(ctx: RunContext, settings: EdiSettings, index: Index, stage: Stage, now: float) -> None:
        """Once a day, forget ids handled longer ago than ``history_retention``."""
        if index.last_prune is not None and now - index.last_prune < 86400:
            return
        limit = now - settings.history_retention.total_seconds()
        if index.surely_none_before(limit):  # a fresh ledger's first index: nothing to read
            stage.last_prune = now
            return
        forget = [key for key in index.handled_before(limit) if key not in stage.records]
        stage.put_records((key, None) for key in forget)
        stage.last_prune = now
        if forget:
            ctx.log.info("edi_ids_forgotten", ids=len(forget))


def _add_traffic(times: dict[str, array[float]], items: JSONValue) -> None:
    """Add the ``[direction, mtime]`` entries of a traffic list (this batch's, or one committed in
    the queue) to ``times``; an entry that is not one (a damaged checkpoint) is left out."""
    for item in items if isinstance(items, list) else ():
        if isinstance(item, list) and len(item) == 2 and item[0] in times and isinstance(item[1], (int, float)):
            times[str(item[0])].append(float(item[1]))


def _bool(value: bool) -> str:
    return "true" if value else "false"


def make_spec() -> CollectorSpec:
    """The ``edi.messages`` collector spec (a fresh collector object, hence a fresh index)."""
    collector = EdiCollector()
    return CollectorSpec(
        name=NAME,
        help="EDI message folders: messages without receipt, rejected receipts by error code, stops, mis-addressed messages",
        collect=collector.collect,
        interval=timedelta(minutes=1),
        timeout=timedelta(minutes=2),
        settings=EdiSettings,
        metrics=METRICS,
    )


