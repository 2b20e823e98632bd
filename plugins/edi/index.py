"""The EDI collector's index of what it has read: kept in the ledger and read by key; in memory only
what is small.

Where the index lives, and why there
------------------------------------
In the collector's own checkpoints, the ledger's key-value table ``checkpoints`` (primary key
``(collector, key)``), not in Python objects and not in tables of its own:

- exactly once comes for free: the entries of a batch are committed in the same transaction as
  the counts they led to, like every other checkpoint (``Batch``);
- a file or a message id is looked up by key (one indexed read, a few microseconds), and a
  directory's files are read by prefix, in key order, a page at a time (``CheckpointReader.keys``
  and ``scan``): nothing needs the whole index in memory. The agent's memory no longer grows with
  the folders (100,000 messages and their receipts once held ~165 MiB of Python objects);
- no schema migration: the ledger's tables stay as they are. The file and id entries keep the
  keys and values they had, and a ledger written before gets the small families below added once
  (``derive``, marked by ``v``). A table of its own (path, size, time, outcome columns) would
  save some bytes per file but would put EDI knowledge into the core's schema, which knows kinds of
  sources, never a particular one.

=====================  =====================================================================
key                    value
=====================  =====================================================================
``g``                  token of the last committed batch (see "consistency" below)
``v``                  3 once the families below marked "derived" exist in this layout
``n``                  how many files the index holds (derived)
``f:<path>``           ``[size, mtime_ns, outcome]`` of a file already read (a fresh ledger's first
                       index writes those of the files read ``ok`` at its end, in key order:
                       ``collectors.EdiCollector._write_deferred``)
``fx:<quoted path>``   the same for a path that is not valid UTF-8 (see ``file_key``)
``m:<id>``             a ``correlate.Record`` for a MsgHead/AppRec id (or a placeholder)
``e:<id>``             a ``correlate.Record`` for an ebXML MessageId
``wt:<time>:<key>``    the record of ``<key>`` (``m:``/``e:``) while it waits for its receipt: the pending
                       set (derived). ``<time>`` is the record's ``at`` in milliseconds, 15 digits
                       (``pending_key``), so the family is in the order messages were sent.
                       Layout 2 kept it as ``w:<key>`` (``upgrade``)
``u:<m: or e: key>``   ``[receipt kind, arrived]`` of a receipt whose message was never read (derived)
``x:<file key>``       the outcome of a watched file (``WATCHED``) (derived)
``d:<dir>``/``dx:``    ``[mtime_ns, inode, rescan, [subdirectories]]``: ``DirState`` (derived)
``q:<token>``          traffic timestamps of a committed batch, not yet fed to the stop logic
``s:in``/``s:out``     ``stops.DirectionState``
``svc``                ``stops.ServiceState``
``p``                  when records were last pruned
``gs``                 the (msg_type, receipt) series of the waiting gauges last exported
=====================  =====================================================================

What is kept in memory (``Index``) is a mirror of the derived families, the queue and the stop
and service states: a few records per message still waiting, eight bytes per unmatched receipt,
a few per directory. A restart reads them in milliseconds; it never reads the file or id entries.

Why the pending set is keyed by time: a first index writes about 0.2 pending records and deletes
0.18 per file; under ``w:<message id>`` each landed on a random B-tree leaf of the ledger, as
the file and id entries do, and each such leaf is read, copied into the WAL and into the
database again at every commit (bench/README.md, "the pending set by time"). By the time a
message was sent, the writes of a batch go to the end of the family, and its receipt, which
comes minutes later, deletes it from there.

Consistency: ``Index`` is loaded from the ledger and then changed only by ``Index.apply(stage)``
*after* the batch carrying ``stage`` was yielded and the generator resumed — the scheduler
resumes a collector only after committing what it yielded; if the commit fails or the run is
abandoned at its deadline, the generator is closed at the ``yield`` and ``apply`` never runs.
Within a batch, ``Stage`` answers from what the batch changed first, then from the ledger. Every
batch writes a fresh token under ``g``; a cycle that finds another committed token than the one
it expects (a restart, another ledger) loads the mirror again.

Imports only the standard library (with normagent's ``dataclass``) and this package.
"""

from __future__ import annotations

import bisect
import math
import os
import urllib.parse
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import field
from typing import Any

from normagent import Checkpoint, JSONValue, dataclass, key_path_of, path_key
from normagent.plugins.edi.correlate import APPLICATION, TRANSPORT, Record
from normagent.plugins.edi.stops import DirectionState, ServiceState
from normagent.plugins.edi.values import immutable

TOKEN = "g"
VERSION = "v"
FORMAT = 3
COUNT = "n"
FILE = "f:"
FILE_ESCAPED = "fx:"
MSG = "m:"
ENV = "e:"
WAITING = "w:"  # layout 2's pending set, read once by ``upgrade``
PENDING = "wt:"
UNMATCHED = "u:"
WATCH = "x:"
DIR = "d:"
DIR_ESCAPED = "dx:"
QUEUE = "q:"
STOP = "s:"
SERVICE = "svc"
PRUNED = "p"
GAUGE_SERIES = "gs"
DIRECTIONS = ("in", "out")


def file_key(path: str) -> str:
    """The checkpoint key of a file: ``f:<path>``, or ``fx:<percent-encoded bytes>`` for a path
    that is not valid UTF-8.

    Names come from ``os.listdir`` as ``str`` with undecodable bytes as lone surrogates (PEP 383);
    a Latin-1 ``æøå`` written by an SMB client is one. SQLite stores text as UTF-8 and refuses
    surrogates, so such a key would fail every commit of the collector. Percent-encoding the bytes
    is lossless (``%`` itself is encoded) and keeps the key readable; valid names keep the plain
    form, so ledgers written before this stay valid.
    """
    return path_key(path, FILE, FILE_ESCAPED)


def key_path(key: str) -> str:
    """The inverse of ``file_key``: the path as ``os.listdir`` spells it."""
    return key_path_of(key, FILE, FILE_ESCAPED)


def dir_key(path: str) -> str:
    """The checkpoint key of a directory's ``DirState`` (escaped as ``file_key`` escapes)."""
    return path_key(path, DIR, DIR_ESCAPED)


def dir_key_path(key: str) -> str:
    return key_path_of(key, DIR, DIR_ESCAPED)


def child_prefixes(directory: str) -> tuple[str, ...]:
    """The key prefixes under which the files of ``directory`` are indexed (and those of its
    subdirectories, whose keys have a further ``/``)."""
    quoted = FILE_ESCAPED + urllib.parse.quote(os.fsencode(directory + os.sep), safe="/")
    try:
        directory.encode("utf-8")
    except UnicodeEncodeError:
        return (quoted,)
    return (FILE + directory + os.sep, quoted)


def pending_key(key: str, record: Record) -> str:
    """The checkpoint key of ``key``'s record in the pending set: ``wt:<at in ms, 15 digits>:<key>``.

    Made from the record alone, so the key of a committed pending record is known without reading
    the ledger (its deletion when the receipt comes). Times before 1970 count as 0; 15 digits last
    until the year 33658."""
    return f"{PENDING}{max(0, round(record.at * 1000)):015d}:{key}"


def pending_record_key(checkpoint_key: str) -> str:
    """The ``m:``/``e:`` key of a ``pending_key``."""
    return checkpoint_key[len(PENDING) + 16 :]


def split_path(path: str) -> tuple[str, str]:
    """``os.path.split(path)``, without its Python frames for the usual path: a directory that
    does not end in ``/`` and a name (asked twice per file of a first index: ``Stage.checkpoints``,
    ``Index.apply``). Anything else (no ``/``, the root, doubled slashes) goes the long way."""
    head, _, tail = path.rpartition("/")
    if head and head[-1] != "/":
        return head, tail
    return os.path.split(path)


def printable(name: str) -> str:
    """A file name for log lines: undecodable bytes as ``\\xNN``, never a lone surrogate."""
    if name.isascii():  # the usual name: no surrogate in it, and no copy made (asked per file read)
        return name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# Outcomes of files that are looked at again every cycle (a stat by name, no listing): one that
# could not be opened is read again; one a writer may still complete (it looked truncated or empty
# after ``write_grace`` — a stalled writer, a share whose clock lags — or was too slow to read) is
# read again when its size or time changes. Appending to a file does not change its directory, so
# without this such a file would never be seen again.
WATCHED = frozenset({"unreadable", "truncated", "empty", "timeout", "not_regular"})


@immutable
class FileEntry:
    """A file as checkpointed: ``[size, mtime_ns, outcome]``."""

    size: int
    mtime_ns: int
    outcome: str

    def to_json(self) -> list[JSONValue]:
        return [self.size, self.mtime_ns, self.outcome]

    @classmethod
    def from_json(cls, value: object) -> FileEntry | None:
        if isinstance(value, list) and len(value) == 3:
            return cls(int(value[0]), int(value[1]), str(value[2]))
        return None

    def unchanged(self, size: int, mtime_ns: int) -> bool:
        """Whether a file of this size and time is the one read (a file that could not be opened never is)."""
        return self.outcome != "unreadable" and self.size == size and self.mtime_ns == mtime_ns


@dataclass(frozen=True, slots=True)
class DirState:
    """A directory as the index knows it: every change up to its modification time ``mtime_ns``
    (-1: none is known to be) is in the index; its inode; whether it must be listed again next
    cycle regardless (``rescan``); its subdirectories (full paths)."""

    mtime_ns: int
    ino: int = 0
    rescan: bool = False
    subdirs: tuple[str, ...] = ()

    def to_json(self) -> list[JSONValue]:
        return [self.mtime_ns, self.ino, int(self.rescan), [os.path.basename(d) for d in self.subdirs]]

    @classmethod
    def from_json(cls, directory: str, value: object) -> DirState | None:
        if not isinstance(value, list) or len(value) != 4 or not isinstance(value[3], list):
            return None
        return cls(int(value[0]), int(value[1]), bool(value[2]), tuple(os.path.join(directory, str(n)) for n in value[3]))


def handled_at(record: Record) -> float:
    """When a record was last handled: its file read, or its receipt come (``history_retention``)."""
    return max(record.at, record.receipt_at)


def unmatched(record: Record | None) -> tuple[str, float] | None:
    """(receipt kind, when it came) of a receipt for one of our messages never read (the
    ``normagent_edi_unmatched_receipts`` gauge counts those that came within the forget window)."""
    if record is None or record.seen or record.direction != "out" or not record.receipt:
        return None
    return record.receipt_kind, record.receipt_at


class AbsentKeys:
    """Which record keys the ledger surely does not hold, during the first index of a fresh ledger:
    a Bloom filter of every key written since (1 MiB, three bits a key; about 0.3 % of absent keys
    look present at 400,000 keys, and are then looked up as without it).

    Why: in a first index nearly every message id is new, and each look-up of one in the ledger
    (a B-tree search through SQLite's page cache and the kernel) cost more than reading the file's
    header. A key the filter has not seen cannot be in the ledger (it was fresh when loaded, and
    every committed record passes ``add``), so it is answered without the ledger.
    """

    BITS = 1 << 23
    MASK = BITS - 1

    def __init__(self) -> None:
        self._bits = bytearray(self.BITS // 8)

    def _spots(self, key: str) -> tuple[int, int, int]:
        h = hash(key) & 0xFFFF_FFFF_FFFF_FFFF  # the process's own string hash: the filter never leaves it
        mask = self.MASK
        return h & mask, (h >> 23) & mask, ((h >> 41) ^ (h << 5)) & mask

    def add(self, key: str) -> None:
        bits = self._bits
        for spot in self._spots(key):
            bits[spot >> 3] |= 1 << (spot & 7)

    def may_hold(self, key: str) -> bool:
        """Whether ``key`` may have been added: ``_spots`` spelt out (asked once per file read in
        a first index; each bit looked at only while the ones before it were set)."""
        h = hash(key) & 0xFFFF_FFFF_FFFF_FFFF
        mask, bits = self.MASK, self._bits
        spot = h & mask
        if not bits[spot >> 3] & (1 << (spot & 7)):
            return False
        spot = (h >> 23) & mask
        if not bits[spot >> 3] & (1 << (spot & 7)):
            return False
        spot = ((h >> 41) ^ (h << 5)) & mask
        return bool(bits[spot >> 3] & (1 << (spot & 7)))


class Index:
    """The in-memory mirror of the collector's small checkpoint families, and lookups of the rest
    in the ledger (see the module docstring)."""

    def __init__(self, store: Any = None) -> None:
        self.store = store  # the run's CheckpointReader (``bind``)
        self.token: str | None = None
        self.version = 0
        self.file_count = 0
        self.pending: dict[str, Record] = {}  # w:
        self.unmatched: dict[str, array[float]] = {TRANSPORT: array("d"), APPLICATION: array("d")}  # u:, sorted
        self.watch: dict[str, dict[str, str]] = {}  # x: directory → name → outcome
        self.dirs: dict[str, DirState] = {}  # d:
        # q: keys only: a first index queues a timestamp per file (300,000 of them); they are read
        # from the ledger when the stop logic takes them (``queued``).
        self.queue: set[str] = set()
        self.stops: dict[str, DirectionState] = {d: DirectionState() for d in DIRECTIONS}
        self.service = ServiceState()
        self.last_prune: float | None = None
        self.gauge_series: set[tuple[str, str]] = set()  # checkpointed: zeroed, never left stale
        # Record keys the ledger surely lacks, while the index reads a fresh ledger's first cycle (``load``).
        self.absent: AbsentKeys | None = None
        # While ``absent`` is set: the earliest time a record committed since the load was handled
        # (every record the ledger holds, then), so the first cycle's prune need not go through them.
        self.oldest_handled = math.inf

    @classmethod
    def load(cls, store: Any) -> Index:
        """The mirror as committed: a scan of each small family, never of the files or ids."""
        index = cls(store)
        get, scan = store.get, store.scan
        token = get(TOKEN)
        index.token = token if isinstance(token, str) else None
        version = get(VERSION)
        index.version = version if isinstance(version, int) else 0
        count = get(COUNT)
        index.file_count = count if isinstance(count, int) else 0
        for key, value in scan(PENDING):
            record = Record.from_json(value)
            if record is not None:
                index.pending[pending_record_key(key)] = record
        for _, value in scan(UNMATCHED):
            if isinstance(value, list) and len(value) == 2 and value[0] in index.unmatched:
                index.unmatched[str(value[0])].append(float(value[1]))
        for times in index.unmatched.values():
            times[:] = array("d", sorted(times))
        for key, value in scan(WATCH):
            if isinstance(value, str):
                directory, name = os.path.split(key_path(key[len(WATCH) :]))
                index.watch.setdefault(directory, {})[name] = value
        for key, value in (*scan(DIR), *scan(DIR_ESCAPED)):
            directory = dir_key_path(key)
            state = DirState.from_json(directory, value)
            if state is not None:
                index.dirs[directory] = state
        index.queue.update(store.keys(QUEUE))
        for direction in DIRECTIONS:
            index.stops[direction] = DirectionState.from_json(get(STOP + direction))
        index.service = ServiceState.from_json(get(SERVICE))
        pruned = get(PRUNED)
        index.last_prune = float(pruned) if isinstance(pruned, (int, float)) else None
        series = get(GAUGE_SERIES)
        if isinstance(series, list):
            index.gauge_series = {(str(t), str(r)) for t, r in series}
        if index.file_count == 0 and all(next(iter(store.keys(prefix)), None) is None for prefix in (MSG, ENV)):
            index.absent = AbsentKeys()  # nothing read yet: a first index, whose ids are nearly all new
        return index

    def bind(self, store: Any) -> None:
        """Read through this run's CheckpointReader."""
        self.store = store

    # ---- lookups in the ledger

    def record(self, key: str) -> Record | None:
        pending = self.pending.get(key)
        if pending is not None:
            return pending
        if self.absent is not None and not self.absent.may_hold(key):
            return None
        return Record.from_json(self.store.get(key))

    def file_entry(self, path: str) -> FileEntry | None:
        return FileEntry.from_json(self.store.get(file_key(path)))

    def file_known(self, path: str) -> bool:
        """Whether the file at ``path`` — the path of a record read before — is in the index.

        While a fresh ledger's first index runs (``absent``), every record was made by reading its
        path this cycle and nothing has gone yet, so it is, also where the entry is still deferred
        to the end of the cycle (``collectors``: the entries of the files read ``ok``)."""
        return self.absent is not None or self.store.get(file_key(path)) is not None

    def watched(self, directory: str, name: str) -> str:
        """The outcome of the file ``name`` in ``directory`` in the watch (``WATCHED``), or ``""``."""
        return self.watch.get(directory, {}).get(name, "")

    def known_names(self, directory: str) -> set[str]:
        """The names of the files indexed in ``directory`` (not in its subdirectories), read by prefix."""
        names = set()
        for prefix in child_prefixes(directory):
            start = len(prefix)
            escaped = prefix.startswith(FILE_ESCAPED)
            for key in self.store.keys(prefix):
                if "/" in key[start:]:
                    continue  # a file of a subdirectory
                names.add(os.path.basename(key_path(key)) if escaped else key[start:])
        return names

    def known_entries(self, directory: str) -> dict[str, FileEntry]:
        """The files indexed in ``directory`` with their entries (``full_rescan``)."""
        entries = {}
        for prefix in child_prefixes(directory):
            for key, value in self.store.scan(prefix):
                if "/" in key[len(prefix) :]:
                    continue
                entry = FileEntry.from_json(value)
                if entry is not None:
                    entries[os.path.basename(key_path(key))] = entry
        return entries

    def children(self, directory: str) -> Iterator[str]:
        """The paths of the files indexed in ``directory`` (not in its subdirectories)."""
        for name in self.known_names(directory):
            yield os.path.join(directory, name)

    def surely_none_before(self, limit: float) -> bool:
        """Whether no record the ledger holds was last handled before ``limit``, known without
        reading it: only while it holds nothing but what this index committed since a fresh load
        (``absent``). A first index of 100,000 messages would otherwise end by reading all 300,000
        ids for the daily prune (``handled_before``)."""
        return self.absent is not None and self.oldest_handled >= limit

    def handled_before(self, limit: float) -> Iterator[str]:
        """The ids whose record was last handled (read, or its receipt came) before ``limit``, in key
        order, a page at a time (the daily prune). Only the two times are read of each record: after
        a first index the prune goes through every id (300,000 at 100,000 messages), and building a
        ``Record`` for each was most of its cost."""
        for prefix in (ENV, MSG):
            for key, value in self.store.scan(prefix):
                # Record.from_json's layout: ``at`` at 3, ``receipt_at`` at 9.
                if isinstance(value, list) and len(value) == 13 and max(float(value[3]), float(value[9])) < limit:
                    yield key

    def queued(self) -> Iterator[tuple[str, JSONValue]]:
        """The committed traffic queue (``q:``), one entry at a time, in key order.

        By key, not a page of the family at once: after a first index the queue holds a
        timestamp per file (300,000 at 100,000 messages), and a page of its entries decoded at
        once was the peak of the index's memory (about 10 MiB over the rest)."""
        get = self.store.get
        for key in sorted(self.queue):
            yield key, get(key)

    def unmatched_since(self, cutoff: float) -> dict[str, int]:
        """Committed unmatched receipts per kind that came at or after ``cutoff``."""
        return {kind: len(times) - bisect.bisect_left(times, cutoff) for kind, times in self.unmatched.items()}

    # ---- applying a committed batch

    def apply(self, stage: Stage) -> None:
        """Make a committed ``stage`` part of the mirror. Call only after its batch was committed."""
        self.file_count += stage.file_delta()
        for path, entry in stage.files.items():
            directory, name = split_path(path)
            outcome = entry.outcome if entry is not None and entry.outcome in WATCHED else ""
            if outcome:
                self.watch.setdefault(directory, {})[name] = outcome
            elif name in self.watch.get(directory, ()):
                del self.watch[directory][name]
                if not self.watch[directory]:
                    del self.watch[directory]
        absent = self.absent
        for key, record in stage.records.items():
            if absent is not None:
                absent.add(key)
                if record is not None:
                    self.oldest_handled = min(self.oldest_handled, handled_at(record))
            if record is not None and stage.waits(key, record):  # waits is False for None: this narrows record
                self.pending[key] = record
            else:
                self.pending.pop(key, None)
            before, after = unmatched(stage.read.get(key)), unmatched(record)
            if before != after:
                if before is not None:
                    times = self.unmatched[before[0]]
                    at = bisect.bisect_left(times, before[1])
                    if at < len(times) and times[at] == before[1]:
                        del times[at]
                if after is not None:
                    bisect.insort(self.unmatched[after[0]], after[1])
        for key in stage.forgotten:
            self.pending.pop(key, None)
        for directory, state in stage.dirs.items():
            if state is None:
                self.dirs.pop(directory, None)
            else:
                self.dirs[directory] = state
        for key, items in stage.queue.items():
            if items is None:
                self.queue.discard(key)
            else:
                self.queue.add(key)
        self.stops.update(stage.stops)
        if stage.service is not None:
            self.service = stage.service
        if stage.last_prune is not None:
            self.last_prune = stage.last_prune
        if stage.gauge_series is not None:
            self.gauge_series = stage.gauge_series
        if stage.version is not None:
            self.version = stage.version
        self.token = stage.token


@dataclass
class Stage:
    """Changes of one batch, visible to the batch's own later files before they are committed.

    ``read`` keeps the committed value of every record the batch looked up or changed: the derived
    families (``w:``, ``u:``) follow from the change from it to the staged one.
    """

    index: Index
    token: str = ""
    files: dict[str, FileEntry | None] = field(default_factory=dict)
    indexed: dict[str, bool] = field(default_factory=dict)  # path → was it in the index before this batch
    records: dict[str, Record | None] = field(default_factory=dict)
    read: dict[str, Record | None] = field(default_factory=dict)
    forgotten: set[str] = field(default_factory=set)  # waiting ids that leave the pending set (too old)
    dirs: dict[str, DirState | None] = field(default_factory=dict)
    queue: dict[str, list[JSONValue] | None] = field(default_factory=dict)  # q: [[direction, mtime], ...]
    stops: dict[str, DirectionState] = field(default_factory=dict)
    service: ServiceState | None = None
    last_prune: float | None = None
    gauge_series: set[tuple[str, str]] | None = None
    version: int | None = None

    # ---- what the batch sees

    def record(self, key: str) -> Record | None:
        if key in self.records:
            return self.records[key]
        if key in self.read:
            return self.read[key]
        record = self.index.record(key)
        self.read[key] = record
        return record

    def file_known(self, path: str) -> bool:
        if path in self.files:
            return self.files[path] is not None
        return self.index.file_known(path)

    # ---- what the batch changes

    def put_records(self, records: Iterable[tuple[str, Record | None]]) -> None:
        for key, record in records:
            if key not in self.records and key not in self.read:
                self.read[key] = self.index.record(key)
            self.records[key] = record

    def put_file(self, path: str, entry: FileEntry | None, *, indexed: bool) -> None:
        """Stage a file's entry (None: it is gone); ``indexed``: whether the ledger has it now."""
        self.indexed.setdefault(path, indexed)
        self.files[path] = entry

    def waits(self, key: str, record: Record | None) -> bool:
        """Whether ``key`` is in the pending set once this batch is committed."""
        return record is not None and record.waiting and key not in self.forgotten

    def file_delta(self) -> int:
        delta = 0
        for path, entry in self.files.items():
            before = self.indexed.get(path, False)
            delta += (entry is not None) - before
        return delta

    def checkpoints(self) -> list[Checkpoint]:
        index = self.index
        out = [Checkpoint(TOKEN, self.token)]
        # Every directory that holds indexed files has a DirState, so that a directory left out
        # of the configuration is found (and its files forgotten) from the DirStates alone.
        for path, entry in self.files.items():
            key = file_key(path)
            out.append(Checkpoint(key, entry.to_json() if entry is not None else None))
            directory, name = split_path(path)
            watched = entry.outcome if entry is not None and entry.outcome in WATCHED else ""
            if watched != index.watch.get(directory, {}).get(name, ""):
                out.append(Checkpoint(WATCH + key, watched or None))
            if entry is not None and directory not in index.dirs and directory not in self.dirs:
                self.dirs[directory] = DirState(-1)
        delta = self.file_delta()
        if delta:
            out.append(Checkpoint(COUNT, index.file_count + delta))
        for key, record in self.records.items():
            value = record.to_json() if record is not None else None
            out.append(Checkpoint(key, value))
            committed = index.pending.get(key)
            if self.waits(key, record):
                assert record is not None
                if committed != record:
                    if committed is not None and pending_key(key, committed) != pending_key(key, record):
                        out.append(Checkpoint(pending_key(key, committed), None))
                    out.append(Checkpoint(pending_key(key, record), value))  # the same value: made once
            elif committed is not None:
                out.append(Checkpoint(pending_key(key, committed), None))
            if key not in self.read:
                self.read[key] = index.record(key)
            before, after = unmatched(self.read[key]), unmatched(record)
            if before != after:
                out.append(Checkpoint(UNMATCHED + key, list(after) if after is not None else None))
        for key in self.forgotten - self.records.keys():
            if key in index.pending:
                out.append(Checkpoint(pending_key(key, index.pending[key]), None))
        for directory, state in self.dirs.items():
            out.append(Checkpoint(dir_key(directory), state.to_json() if state is not None else None))
        out += [Checkpoint(k, v) for k, v in self.queue.items()]
        for direction, stop in self.stops.items():
            out.append(Checkpoint(STOP + direction, stop.to_json()))
        if self.service is not None:
            out.append(Checkpoint(SERVICE, self.service.to_json()))
        if self.last_prune is not None:
            out.append(Checkpoint(PRUNED, self.last_prune))
        if self.gauge_series is not None:
            out.append(Checkpoint(GAUGE_SERIES, [list(s) for s in sorted(self.gauge_series)]))
        if self.version is not None:
            out.append(Checkpoint(VERSION, self.version))
        return out

    def waiting(self) -> Iterator[tuple[str, Record]]:
        """The pending set as it will be after this stage: committed waiting ids plus staged ones."""
        for key, record in self.index.pending.items():
            if key not in self.records:
                yield key, record
        for key, staged in self.records.items():
            if staged is not None and staged.waiting:
                yield key, staged

    def unmatched_counts(self, now: float, window: float) -> dict[str, int]:
        """The unmatched receipts per kind within ``window`` of ``now`` once this stage is committed."""
        cutoff = now - window
        counts = self.index.unmatched_since(cutoff)
        for key, record in self.records.items():
            before = unmatched(self.read[key] if key in self.read else self.index.record(key))
            after = unmatched(record)
            if before == after:
                continue
            if before is not None and before[1] >= cutoff:
                counts[before[0]] -= 1
            if after is not None and after[1] >= cutoff:
                counts[after[0]] += 1
        return counts


def derive(store: Any) -> list[Checkpoint]:
    """The derived families of a ledger written before they existed (``v`` absent), from one pass
    over its file entries and records, a page at a time (once, in the first cycle after an upgrade)."""
    out = []
    files = 0
    directories: set[str] = set()
    for prefix in (FILE, FILE_ESCAPED):
        for key, value in store.scan(prefix):
            entry = FileEntry.from_json(value)
            if entry is None:
                continue
            files += 1
            directories.add(os.path.dirname(key_path(key)))
            if entry.outcome in WATCHED:
                out.append(Checkpoint(WATCH + key, entry.outcome))
    for prefix in (ENV, MSG):
        for key, value in store.scan(prefix):
            record = Record.from_json(value)
            if record is None:
                continue
            if record.waiting:
                out.append(Checkpoint(pending_key(key, record), value))
            receipt = unmatched(record)
            if receipt is not None:
                out.append(Checkpoint(UNMATCHED + key, list(receipt)))
    # What the directories held when they were last listed is not known: each is listed once more.
    out += [Checkpoint(dir_key(directory), DirState(-1).to_json()) for directory in sorted(directories)]
    out += [Checkpoint(COUNT, files), Checkpoint(VERSION, FORMAT)]
    return out


def upgrade(store: Any) -> list[Checkpoint]:
    """A layout-2 ledger's pending set (``w:<key>``) moved under its time-ordered keys
    (``wt:``), in one batch with the new ``v``; everything else keeps its keys."""
    out = []
    for key, value in store.scan(WAITING):
        out.append(Checkpoint(key, None))
        record = Record.from_json(value)
        if record is not None:
            out.append(Checkpoint(pending_key(key[len(WAITING) :], record), value))
    out.append(Checkpoint(VERSION, FORMAT))
    return out
