"""Ledger: the only module that opens normagent's SQLite database, and the only writer of agent state.

What it keeps: each collector's checkpoints, counter and gauge series (counters also in hourly
buckets, so a report can ask for the increase over any month; gauges as the hour's last value
whenever it changes, so a report can ask what a gauge said at the end of any month), per-day
rollups, notable events, the health of every collector's last run and, per hour, how many runs
each collector made and how many failed (the report's data completeness). A run that ends as the
stored health says waits in memory for a few minutes (``Ledger.record_run``): health is not
observations, and a transaction per run was most of the idle agent's CPU.

The one promise: ``commit(collector, batch)`` stores a batch's observations *and* the checkpoints
they lead to in one transaction (WAL, ``synchronous=FULL``, so a committed batch survives power
loss). There is no other way to store either, so a crash at any moment leaves the counts and the
source positions consistent: nothing lost, nothing counted twice.

Scrapes never touch the database: after each commit the ledger updates an in-memory mirror, and
``snapshot()`` hands out an immutable copy of it.

Bad luck it survives with a clear word (a ``StateError``, never a silent new start or a raw SQLite
message): a full state filesystem (``DiskFull``: nothing of the failed commit is stored, the next
commit after space returns stores it all; the WAL is kept small, so that a small filesystem is not
filled by the WAL alone), and a ledger that is gone (``StateLost``): a marker file beside the
ledger (``ledger.id``) makes a missing or empty ledger where one existed an error instead of a new
ledger, and a ledger deleted while open is noticed before the next commit.

Must not import exposition, scheduler, agent, cli or plugins.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import field
from datetime import date, datetime, timezone
from operator import itemgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any

import structlog

from normagent.clock import Clock, SystemClock
from normagent.errors import DiskFull, StateError, StateLost
from normagent.randomness import random_id
from normagent.model import (
    Batch,
    Candidate,
    Checkpoint,
    Count,
    Event,
    Gauge,
    JSONValue,
    MetricSpec,
    HEALTH_GAUGES,
    Period,
    Rollup,
    RollupRows,
    RollupSum,
    RunOutcome,
    Severity,
    Transition,
)
from normagent.records import dataclass
from normagent.smallfile import kind_of, read_small

log = structlog.get_logger(__name__)

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]  # (metric, sorted label pairs)

# SQLite's WAL grows until a checkpoint copies it into the database; with SQLite's defaults (a
# checkpoint at 1000 pages, no size limit) it reaches 4 MiB and keeps that size. On a small state
# filesystem the WAL alone fills it, and a full filesystem cannot take the checkpoint that would
# empty the WAL: every commit fails from then on, even after a restart. So a checkpoint runs after
# every commit that leaves WAL_CHECKPOINT_PAGES pages or more in the WAL (a big commit triggers one
# at once), and when the WAL starts over its file is cut back to WAL_SIZE_LIMIT bytes. The cost:
# a checkpoint (one more fsync) every few dozen commits; see bench/README.md.
# A run's health that says what the stored row says (up or down, and why, in the same hour) waits
# in memory for at most this long, or for the next batch written, before it is stored: one
# transaction per collector run was the largest part of the idle agent's CPU (issue 15). A crash
# loses at most this much of the run history (runs that ended as the stored row says); every
# change of health, and each collector's first run of an hour (the report's completeness is
# counted by the hour), is stored at once.
HEALTH_WRITE_SECONDS = 300.0
UNCHANGED_CHECK_KEYS = 16  # checkpoints of an otherwise empty batch compared with the stored ones before writing
WAL_CHECKPOINT_PAGES = 64
WAL_SIZE_LIMIT = 256 * 1024

MARKER_SUFFIX = ".id"  # ledger.db → ledger.id: written beside the ledger, proof that one existed
MAX_MARKER_BYTES = 64 * 1024  # the marker is a few hundred bytes; anything larger is not one
MARKER_NOTE = (
    "normagent writes this file beside its ledger. While it exists, a missing or empty ledger is an "
    "error, not a fresh start (a new ledger would count every log again from its start position). To "
    "start afresh on purpose: normagent run --new-state, or remove the whole state directory."
)
FRESH_START_HINT = (
    "restore the ledger from a backup, or start afresh on purpose with `normagent run --new-state` "
    "(keeps the pseudonym key if it is still there) or by removing the whole state directory"
)

# SQLite result codes (primary, the low byte) that say the environment failed the ledger (space,
# I/O, permissions, damage, another process), not normagent's SQL: they become StateErrors with a
# message, where a traceback would help no one.
_ENVIRONMENT_CODES = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_PROTOCOL,
    }
)
# SQLite reports ENOSPC from write() as SQLITE_FULL, but from fsync(), ftruncate() or the growth of
# the -shm file as one of the SQLITE_IOERR_* codes: with less free space than this, those are a full
# disk too.
_NEARLY_FULL_BYTES = 1024 * 1024

SCHEMA_VERSION = 3
DEVIATIONS_SCHEMA = 2  # the first schema with deviation candidates and their acknowledgements
HISTORY_SCHEMA = 3  # the first schema with run and gauge history (the report's completeness, gauges at a time)
MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE checkpoints (
        collector TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated_at REAL NOT NULL,
        PRIMARY KEY (collector, key)
    ) WITHOUT ROWID;
    CREATE TABLE counters (
        metric TEXT NOT NULL, labels TEXT NOT NULL, value REAL NOT NULL, updated_at REAL NOT NULL,
        PRIMARY KEY (metric, labels)
    ) WITHOUT ROWID;
    CREATE TABLE counter_hours (
        metric TEXT NOT NULL, labels TEXT NOT NULL, hour INTEGER NOT NULL, value REAL NOT NULL,
        PRIMARY KEY (metric, hour, labels)
    ) WITHOUT ROWID;
    CREATE TABLE gauges (
        metric TEXT NOT NULL, labels TEXT NOT NULL, collector TEXT NOT NULL, value REAL NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (metric, labels)
    ) WITHOUT ROWID;
    CREATE INDEX gauges_by_collector ON gauges (collector, metric);
    CREATE TABLE rollups (
        name TEXT NOT NULL, day TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL,
        first_seen REAL, last_seen REAL,
        PRIMARY KEY (name, day, key)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        collector TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL,
        attrs TEXT NOT NULL,
        PRIMARY KEY (collector, kind, key)
    ) WITHOUT ROWID;
    CREATE INDEX events_by_time ON events (kind, at);
    CREATE TABLE collector_runs (
        collector TEXT PRIMARY KEY, started_at REAL NOT NULL, duration REAL NOT NULL, ok INTEGER NOT NULL,
        reason TEXT NOT NULL, last_success REAL, runs INTEGER NOT NULL, failures INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: deviation candidates, the sequence of each fingerprint's changes, the outbox, acks.
    """
    CREATE TABLE candidates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint TEXT NOT NULL, rule TEXT NOT NULL, labels TEXT NOT NULL, state TEXT NOT NULL,
        severity INTEGER NOT NULL, value REAL NOT NULL, threshold REAL NOT NULL,
        first_evidence REAL NOT NULL, fired_at REAL, clear_since REAL, resolved_at REAL, notify_by REAL,
        updated_at REAL NOT NULL, document TEXT
    );
    CREATE UNIQUE INDEX candidates_open ON candidates (fingerprint) WHERE state != 'resolved';
    CREATE INDEX candidates_by_state ON candidates (state, rule);
    CREATE TABLE fingerprints (fingerprint TEXT PRIMARY KEY, sequence INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        forwarder TEXT NOT NULL, candidate_id INTEGER NOT NULL, fingerprint TEXT NOT NULL,
        sequence INTEGER NOT NULL, state TEXT NOT NULL, key TEXT NOT NULL, document TEXT NOT NULL,
        created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL,
        last_error TEXT NOT NULL DEFAULT '', last_result TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'pending', done_at REAL
    );
    CREATE INDEX outbox_due ON outbox (forwarder, status, next_attempt);
    CREATE INDEX outbox_order ON outbox (forwarder, fingerprint, status, sequence);
    CREATE INDEX outbox_by_candidate ON outbox (candidate_id);
    CREATE TABLE acks (
        id INTEGER PRIMARY KEY AUTOINCREMENT, candidate_id INTEGER NOT NULL, at REAL NOT NULL, note TEXT NOT NULL
    );
    CREATE INDEX acks_by_candidate ON acks (candidate_id);
    """,
    # 3: history for the monthly report: each collector's runs per hour (did it run, did it
    # succeed: data completeness), and each gauge's value per hour in which it changed (NULL: the
    # series went away), so a report can ask what a gauge said at the end of a past month. The
    # gauges' current values are their first history rows.
    """
    CREATE TABLE run_hours (
        collector TEXT NOT NULL, hour INTEGER NOT NULL, runs INTEGER NOT NULL, failures INTEGER NOT NULL,
        PRIMARY KEY (collector, hour)
    ) WITHOUT ROWID;
    CREATE TABLE gauge_hours (
        metric TEXT NOT NULL, labels TEXT NOT NULL, hour INTEGER NOT NULL, value REAL,
        PRIMARY KEY (metric, labels, hour)
    ) WITHOUT ROWID;
    INSERT INTO gauge_hours (metric, labels, hour, value) SELECT metric, labels, CAST(updated_at / 3600 AS INTEGER), value FROM gauges;
    """,
)


@dataclass(frozen=True, slots=True)
class RunState:
    """The health of one collector as exported: the last run and the last success."""

    collector: str
    up: bool
    duration: float
    last_success: float | None  # unix seconds
    reason: str = ""
    runs: int = 0
    failures: int = 0


@dataclass(frozen=True)
class Snapshot:
    """An immutable view of the committed series and run states, for one scrape."""

    series: Mapping[str, Mapping[Labels, float]]
    runs: Mapping[str, RunState]
    deviations: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (state, severity) → candidates
    outbox: Mapping[str, OutboxStats] = field(default_factory=dict)  # forwarder → its pending changes

    def values(self, metric: str) -> Mapping[Labels, float]:
        return self.series.get(metric, MappingProxyType({}))


@dataclass
class _Mirror:
    """The in-memory copy of counters and gauges, updated only after a successful commit."""

    counters: dict[SeriesKey, float] = field(default_factory=dict)
    gauges: dict[SeriesKey, tuple[float, str]] = field(default_factory=dict)  # value, collector
    runs: dict[str, RunState] = field(default_factory=dict)
    # The hour (Unix hour) whose counter_hours row this process last wrote, per counter series:
    # a count of 0 in that same hour would change nothing (see ``Ledger.commit``).
    hours: dict[SeriesKey, int] = field(default_factory=dict)


@dataclass
class _UnwrittenHealth:
    """Runs recorded in memory and not yet in the ledger (see ``Ledger.record_run``)."""

    rows: dict[str, tuple[RunState, float]] = field(default_factory=dict)  # collector → (state, started)
    hours: dict[tuple[str, int], list[int]] = field(default_factory=dict)  # (collector, Unix hour) → [runs, failures]
    since: float | None = None  # monotonic time of the oldest run waiting
    # What the stored row of each collector says (up, reason, Unix hour of its start): a run that
    # says the same waits.
    stored: dict[str, tuple[bool, str, int]] = field(default_factory=dict)


# A checkpoint as stored: compact JSON, so an unchanged value can be told by its text.
_checked_json = json.JSONEncoder(separators=(",", ":")).encode
# The same text from the C encoder made once (``JSONEncoder.encode`` makes one per call and goes
# through two Python frames: half its cost for a first index's hundreds of thousands of small
# values; bench/README.md, w14-edi). It skips the circular-reference check, so a value that
# recurses too deep is encoded again the checked way, which says why (ValueError) as before.
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_fast_json = None if _c_encoder is None else _c_encoder(
    None, json.JSONEncoder().default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True,
)


def _compact_json(value: object) -> str:
    if _fast_json is None:
        return _checked_json(value)
    if isinstance(value, str):  # as JSONEncoder.encode: a plain string is no container
        return json.encoder.encode_basestring_ascii(value)
    try:
        return "".join(_fast_json(value, 0))
    except RecursionError:
        return _checked_json(value)


def _storable(text: str) -> str:
    """``text`` as SQLite can store it: a lone surrogate (a file name's undecodable byte, PEP 383)
    written as its escape, ``\\udcfe``. SQLite stores text as UTF-8 and refuses surrogates: one
    file named in Latin-1 under a watched pattern, as a rollup's or an event's key, failed every
    commit of its collector."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _labels_json(labels: Labels) -> str:
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _labels_from_json(text: str) -> Labels:
    return tuple(sorted(json.loads(text).items()))


def _ts(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _dt(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)


class MemoryCheckpoints:
    """Checkpoints kept in memory: for one-shot runs that must not write state, and for tests."""

    def __init__(self, initial: Mapping[str, JSONValue] | None = None) -> None:
        self.values: dict[str, JSONValue] = dict(initial or {})

    def get(self, key: str) -> JSONValue:
        return self.values.get(key)

    def scan(self, prefix: str = "") -> Iterable[tuple[str, JSONValue]]:
        return sorted((k, v) for k, v in self.values.items() if k.startswith(prefix))

    def keys(self, prefix: str = "") -> Iterable[str]:
        return sorted(k for k in self.values if k.startswith(prefix))

    def apply(self, checkpoints: Iterable[Checkpoint]) -> None:
        for cp in checkpoints:
            if cp.value is None:
                self.values.pop(cp.key, None)
            else:
                self.values[cp.key] = cp.value


class LedgerCheckpoints:
    """A collector's committed checkpoints, read through the ledger (``CheckpointReader``)."""

    def __init__(self, ledger: Ledger, collector: str) -> None:
        self._ledger = ledger
        self._collector = collector

    def get(self, key: str) -> JSONValue:
        return self._ledger._checkpoint(self._collector, key)

    def scan(self, prefix: str = "") -> Iterable[tuple[str, JSONValue]]:
        return self._ledger._scan_checkpoints(self._collector, prefix)

    def keys(self, prefix: str = "") -> Iterable[str]:
        return self._ledger._scan_checkpoint_keys(self._collector, prefix)


class Ledger:
    """normagent's state in one SQLite file. Thread-safe: one connection behind one lock.

    Use ``Ledger.open(path)``; close with ``close()`` (or as a context manager).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Clock) -> None:
        self._conn = conn
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()
        self._metrics: dict[str, MetricSpec] = {}
        self._mirror = _Mirror()
        self._unwritten = _UnwrittenHealth()
        self._snapshot: Snapshot | None = None
        self.host_id = ""
        self._new_host_id = ""  # the id a ledger created by this open gets (``open(host_id=)``)
        self.created_at = ""
        self.history_since = ""  # when run and gauge history began (schema 3), "" before
        self.schema_version = SCHEMA_VERSION
        self.readonly = False
        self.created = False  # this open created the ledger
        self._identity = (0, 0)  # (st_dev, st_ino) of the file opened at ``path``
        self._size_seen = 0  # the file's largest size seen: nothing makes it smaller (see ``lost``)
        self._lost: str | None = None
        self._deviations = _DeviationState()

    # ---------------------------------------------------------------------------------------
    # opening and closing

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        clock: Clock | None = None,
        metrics: Iterable[MetricSpec] = (),
        witnesses: Iterable[Path] = (),
        new_state: bool = False,
        host_id: str | None = None,
    ) -> Ledger:
        """Open (creating and migrating if needed) the ledger at ``path``.

        A ledger that existed at ``path`` and is missing or empty now is an error, not a new
        ledger: the marker written beside it (``ledger.id``), a ``-wal`` file left behind or one
        of ``witnesses`` prove that it existed.

        Args:
            witnesses: Files that are created together with the ledger (the pseudonym key): while
                one exists, the ledger must exist too.
            new_state: Start a new ledger on purpose where the old one is lost (``normagent run
                --new-state``). Refused where the ledger is intact, so that the option cannot be
                left in a unit file, where it would turn this protection off for good.
            host_id: The id a ledger created now gets (default: a random one). ``normagent demo``
                names its ledger after its seed, so that two demos write the same report; an
                existing ledger keeps its own.

        Raises:
            StateLost: the ledger is missing or empty where one existed, or is not the one
                created here (its marker names another), and ``new_state`` is not given.
            DiskFull: the state filesystem has no room to open or create the ledger.
            StateError: the directory cannot be created, the file is not a normagent ledger, is
                damaged, or was written by a newer normagent; ``new_state`` over an intact ledger.
        """
        _refuse_what_is_no_file(path)
        existed = _has_content(path)
        if not existed:
            evidence = _evidence_of_a_ledger(path, witnesses)
            if evidence and not new_state:
                state = "empty" if path.exists() else "missing"
                raise StateLost(
                    f"{path} is {state}, but a ledger existed here ({'; '.join(evidence)}). Its counts and read "
                    f"positions are gone, and a new ledger would count every log again from its start position: "
                    f"{FRESH_START_HINT}"
                )
            if new_state:
                _set_aside_leftovers(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise _state_error(exc, path, "cannot open the ledger", _START_AGAIN) from exc
        ledger = cls(conn, path, clock or SystemClock())
        ledger._new_host_id = host_id or random_id()
        try:
            ledger._identity = _identity(path)
            ledger._prepare()
            ledger._check_marker(new_state=new_state, existed=existed)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
                raise StateError(
                    f"{path}: not a usable normagent ledger ({exc}); move it aside and {FRESH_START_HINT}"
                ) from exc
            raise _state_error(exc, path, "cannot open the ledger", _START_AGAIN) from exc
        except OSError as exc:
            conn.close()
            raise _state_error(exc, path, "cannot open the ledger", _START_AGAIN) from exc
        except StateError:
            conn.close()
            raise
        ledger.declare(metrics)
        return ledger

    def _prepare(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed batch survives power loss; NORMAL may lose the last commits.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        conn.execute("PRAGMA foreign_keys=ON")
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise StateError(f"{self.path}: the ledger is damaged (PRAGMA quick_check failed)")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path}: ledger schema {version} was written by a newer normagent (this one knows {SCHEMA_VERSION})"
            )
        self.created = version == 0
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._migrate(target)
        self._read_meta()
        self._load_mirror()

    def _read_meta(self) -> None:
        meta = dict(self._conn.execute("SELECT key, value FROM meta WHERE key IN ('host_id', 'created_at', 'history_since')").fetchall())
        self.host_id = meta["host_id"]
        self.created_at = meta.get("created_at", "")
        self.history_since = meta.get("history_since", "")

    @classmethod
    def open_readonly(cls, path: Path) -> Ledger:
        """Open an existing ledger to read it (``normagent report``): nothing is created, migrated
        or written, so a report never changes the state of the agent that runs beside it. A ledger
        of an older schema is read as it is (``schema_version`` tells what it lacks).

        Raises:
            StateError: there is no ledger at ``path``, it cannot be opened, is not a normagent
                ledger or was written by a newer normagent.
        """
        return cls._open_existing(path, "ro")

    @classmethod
    def open_for_command(cls, path: Path, *, acks: bool = False) -> Ledger:
        """Open the daemon's ledger for ``normagent deviations`` and ``rules test``: as
        ``open_readonly``, nothing is created, migrated or written beside it (no new ledger where
        the file is empty, no marker in the name of the command's user, root, which the agent's
        own user could then not read, and it would not start). It must have this normagent's
        schema: the agent brings it up to date when it starts. With ``acks`` it is opened for
        writing too, for ``deviations ack`` to add to it (and nothing else).

        Raises:
            StateError: as ``open_readonly``; the ledger's schema is older than this normagent's.
        """
        ledger = cls._open_existing(path, "rw" if acks else "ro")
        try:
            if ledger.schema_version < SCHEMA_VERSION:
                raise StateError(
                    f"{path}: ledger schema {ledger.schema_version} is older than this normagent's ({SCHEMA_VERSION}): "
                    "start the agent once (it updates the ledger), then try again"
                )
            if acks:
                ledger._identity = _identity(path)  # a transaction checks that the file is still this one
                ledger._conn.execute("PRAGMA synchronous=FULL")  # an ack is kept as a batch is: through a power cut
                ledger._conn.execute("PRAGMA foreign_keys=ON")
            ledger._load_mirror()
        except sqlite3.DatabaseError as exc:
            ledger._conn.close()
            raise StateError(f"{path}: not a readable normagent ledger ({exc})") from exc
        except (StateError, OSError):
            ledger._conn.close()
            raise
        ledger.readonly = not acks
        return ledger

    @classmethod
    def _open_existing(cls, path: Path, mode: str) -> Ledger:
        from urllib.parse import quote

        _refuse_what_is_no_file(path)
        if not _has_content(path):
            evidence = _evidence_of_a_ledger(path, ())
            if evidence:
                state = "empty" if path.exists() else "missing"
                raise StateLost(f"{path} is {state}, but a ledger existed here ({'; '.join(evidence)}): {FRESH_START_HINT}")
            raise StateError(f"{path}: no ledger here (the agent has not run with this state directory); see --config")
        # The path percent-encoded: a "#" or "?" in it would end SQLite's file name there, and
        # SQLite would create an empty database where the name was cut (with the mode lost).
        uri = f"file:{quote(str(path))}?mode={mode}"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None, check_same_thread=False)
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{path}: not a readable normagent ledger ({exc})") from exc
        ledger = cls(conn, path, SystemClock())
        ledger.readonly = True
        ledger.schema_version = version
        try:
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"{path}: ledger schema {version} was written by a newer normagent (this one knows {SCHEMA_VERSION})"
                )
            if version < 1:
                raise StateError(f"{path}: not a normagent ledger (it has no schema)")
            ledger._read_meta()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StateError(f"{path}: not a readable normagent ledger ({exc})") from exc
        except StateError:
            conn.close()
            raise
        return ledger

    def _migrate(self, target: int) -> None:
        with self._transaction() as conn:
            for statement in MIGRATIONS[target - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            if target == 1:
                conn.execute("INSERT INTO meta (key, value) VALUES ('host_id', ?)", (self._new_host_id or random_id(),))
                conn.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?)", (self._clock.now().isoformat(),))
            if target == HISTORY_SCHEMA:
                # Since when run history exists: before it, a report cannot tell how complete the data is.
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('history_since', ?)", (self._clock.now().isoformat(),))
            conn.execute(f"PRAGMA user_version = {target}")

    def _check_marker(self, *, new_state: bool, existed: bool) -> None:
        """Write the marker beside a new ledger; refuse a ledger that is not the one created here."""
        marker = _read_marker(_marker_path(self.path))
        if marker is not None and marker.get("host_id") == self.host_id:
            if new_state and existed:
                raise StateError(
                    f"--new-state: {self.path} holds an intact ledger (created {self.created_at}); there is "
                    "nothing to start afresh from. Start without --new-state; to discard this ledger on "
                    "purpose, stop the agent and remove the whole state directory"
                )
            return
        if marker is not None and "error" in marker and not new_state:
            raise StateError(
                f"{_marker_path(self.path)}: the ledger's marker cannot be used ({marker['error']}), so it cannot "
                f"be told whether {self.path} is the ledger created here. If it is, remove the marker: the next "
                f"start writes it again"
            )
        if marker is not None and not new_state:
            raise StateLost(
                f"{self.path} is not the ledger that was created here: {_marker_path(self.path).name} names ledger "
                f"{marker.get('host_id')} (created {marker.get('created_at')}), this one is {self.host_id} "
                f"(created {self.created_at}); the original's counts and read positions are gone: {FRESH_START_HINT}"
            )
        if marker is None and new_state and existed:
            raise StateError(
                f"--new-state: {self.path} holds an intact ledger (created {self.created_at}); there is nothing "
                "to start afresh from. Start without --new-state"
            )
        self._write_marker()

    def _write_marker(self) -> None:
        body = {"host_id": self.host_id, "created_at": self.created_at, "ledger": self.path.name, "note": MARKER_NOTE}
        _write_atomically(_marker_path(self.path), (json.dumps(body, indent=2) + "\n").encode())

    def _load_mirror(self) -> None:
        mirror = _Mirror()
        for metric, labels, value in self._conn.execute("SELECT metric, labels, value FROM counters"):
            mirror.counters[(metric, _labels_from_json(labels))] = value
        for metric, labels, collector, value in self._conn.execute("SELECT metric, labels, collector, value FROM gauges"):
            mirror.gauges[(metric, _labels_from_json(labels))] = (value, collector)
        for row in self._conn.execute(
            "SELECT collector, duration, ok, reason, last_success, runs, failures, started_at FROM collector_runs"
        ):
            name, duration, ok, reason, last_success, runs, failures, started = row
            mirror.runs[name] = RunState(name, bool(ok), duration, last_success, reason, runs, failures)
            self._unwritten.stored[name] = (bool(ok), reason, int(started // 3600))
        self._mirror = mirror
        self._deviations.stats = _deviation_stats(self._conn)
        self._snapshot = None

    def shrink_memory(self) -> None:
        """Let SQLite free its page cache (``PRAGMA shrink_memory``), which the agent then gives
        back with the allocator's free pages, once a minute when no collector runs. A statement
        that needs the pages again reads them from the system's page cache: at idle a few pages a
        minute, against some 0.35 MB the cache held for good (issue 15). A connection that cannot
        shrink keeps its cache; nothing is lost, and the next minute tries again."""
        with self._lock:
            try:
                self._conn.execute("PRAGMA shrink_memory")
            except sqlite3.Error as exc:
                log.debug("ledger_shrink_failed", error=str(exc))

    def close(self) -> None:
        """Close the connection, after storing the health of runs that waited in memory."""
        with self._lock:
            if self._unwritten.since is not None and self.lost() is None and not self.readonly:
                try:
                    self._write_health()
                except StateError as exc:
                    log.warning("collector_health_not_stored", reason=exc.reason, error=str(exc),
                                runs=sum(runs for runs, _ in self._unwritten.hours.values()))
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------
    # a state directory that vanishes

    def lost(self) -> str | None:
        """Why the ledger this object has open is no longer at its path, or None while it is.

        SQLite goes on writing to a deleted file without a word; whatever is committed there is
        gone when the agent stops, and the next start would find no ledger. Checked before every
        write (one ``stat``) and by the agent every few seconds. Once lost, always lost: this
        object stores nothing more (``StateLost``), even if a file appears at the path again.

        A file cut short counts as lost too. The ledger's file never gets smaller on its own (no
        VACUUM, no auto-vacuum: freed pages stay in it), so a smaller size than seen before is a
        ``truncate`` or a broken copy under the agent. SQLite would read the missing pages as
        zeros and go on committing beside them; the damage showed only at the next start
        (``PRAGMA quick_check``), after more had been counted into a ledger that would not open.
        """
        if self._lost is None:
            self._lost, self._size_seen = _why_lost(self.path, self._identity, self._size_seen)
        return self._lost

    def rescue(self) -> Path:
        """Write the ledger this object still has open to disk again, after it was lost there.

        The copy is consistent (SQLite's online backup, in one read transaction) and holds every
        commit, since nothing is committed after the loss is noticed. It goes to the ledger's own
        path when that is free, with a new marker, so that a restart continues exactly where the
        counting stopped; never over a file someone put there since (then beside it, as
        ``<name>.rescued-<time>``).

        Returns:
            Where the copy is.

        Raises:
            DiskFull, StateError: it could not be written.
        """
        with self._lock:
            folder = self.path.parent
            tmp = folder / f".{self.path.name}.rescue-{os.getpid()}.tmp"
            try:
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                copy = sqlite3.connect(tmp, isolation_level=None)
                try:
                    self._conn.backup(copy)
                finally:
                    copy.close()
                fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                target = self.path
                if not target.exists():
                    # The -wal of the lost file must not be replayed into the copy (it is ours, or
                    # older still; the copy holds every commit).
                    _set_aside_leftovers(target)
                try:
                    os.link(tmp, target)  # never over a file that appeared at the path since
                except FileExistsError:
                    stamp = self._clock.now().strftime("%Y%m%dT%H%M%SZ")
                    target = folder / f"{self.path.name}.rescued-{stamp}"
                    os.link(tmp, target)
                os.unlink(tmp)
                if target == self.path:
                    self._write_marker()
                _fsync_dir(folder)
            except (OSError, sqlite3.Error) as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise _state_error(exc, self.path, "cannot rescue the ledger", _RESCUE_AGAIN) from exc
            return target

    # ---------------------------------------------------------------------------------------
    # transactions

    @contextlib.contextmanager
    def _transaction(self, doing: str = "cannot write the ledger") -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back on any error, SQLite's own turned into StateErrors.

        Raises:
            StateLost: the ledger was deleted or replaced under this object.
            DiskFull: the state filesystem is full; nothing of the transaction is stored.
            StateError: SQLite failed for another reason of the environment (I/O, locks, damage).
        """
        self._refuse_if_lost()
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # SQLite ends the transaction itself after some errors (SQLITE_FULL, SQLITE_IOERR,
                # RAISE(ROLLBACK)); a ROLLBACK then fails with "no transaction is active" and would
                # hide the error that matters.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF not in _ENVIRONMENT_CODES:
                raise  # normagent's own mistake: the traceback is what helps
            raise _state_error(exc, self.path, doing) from exc

    def _refuse_if_lost(self) -> None:
        """``StateLost`` once the ledger is no longer at its path (see ``lost``)."""
        why = self.lost()
        if why is not None:
            raise StateLost(f"{why}; nothing more is stored in the ledger this agent has open: {FRESH_START_HINT}")

    # ---------------------------------------------------------------------------------------
    # declarations

    def declare(self, metrics: Iterable[MetricSpec]) -> None:
        """Make metrics known, so ``commit`` can reject undeclared metrics and wrong label names."""
        with self._lock:
            for spec in metrics:
                known = self._metrics.get(spec.name)
                if known is not None and (known.kind, known.labels) != (spec.kind, spec.labels):
                    raise ValueError(f"metric {spec.name} is declared twice, differently")
                self._metrics[spec.name] = spec
            self._snapshot = None

    @property
    def metrics(self) -> Mapping[str, MetricSpec]:
        return MappingProxyType(self._metrics)

    def _check(self, metric: str, labels: Labels, kind: str) -> None:
        spec = self._metrics.get(metric)
        if spec is None:
            raise ValueError(f"metric {metric} is not declared by any collector")
        if spec.kind != kind:
            raise ValueError(f"metric {metric} is a {spec.kind}, but a {kind} observation was given")
        names = tuple(name for name, _ in labels)
        if sorted(spec.labels) != list(names):
            raise ValueError(f"metric {metric} has labels {list(spec.labels)}, got {list(names)}")

    # ---------------------------------------------------------------------------------------
    # the write path

    def commit(self, collector: str, batch: Batch) -> None:
        """Store a batch's observations and checkpoints in one transaction.

        Raises:
            ValueError: an observation names an undeclared metric or wrong labels, or an
                observation of an unknown type; nothing of the batch is stored.
            DiskFull: the state filesystem is full; nothing of the batch is stored.
            StateLost: the ledger was deleted or replaced under this object; nothing is stored.
            StateError: SQLite failed for another reason of the environment; nothing is stored.
        """
        counts: dict[SeriesKey, float] = {}
        gauges: dict[str, dict[Labels, float]] = {}
        rollups: dict[tuple[str, date, str], list[Any]] = {}
        # RollupRows per (name, day): as given while one, merged (a dict of our own, zeros left
        # out before adding, so that a key given is written even where its values add up to 0,
        # as its Rollups would be) once a second comes, e.g. a rollup's rows of every block.
        bulk: dict[tuple[str, date], Mapping[str, float]] = {}
        merged: dict[tuple[str, date], dict[str, float]] = {}
        events: list[Event] = []
        for obs in batch.observations:
            if isinstance(obs, Count):
                self._check(obs.metric, obs.labels, "counter")
                key = (obs.metric, obs.labels)
                counts[key] = counts.get(key, 0.0) + obs.value
            elif isinstance(obs, Gauge):
                self._check(obs.metric, obs.labels, "gauge")
                gauges.setdefault(obs.metric, {})[obs.labels] = obs.value
            elif isinstance(obs, Rollup):
                rkey = (obs.name, obs.day, obs.key)
                row = rollups.setdefault(rkey, [0.0, None, None])
                row[0] += obs.value
                row[1] = _min_time(row[1], obs.first_seen)
                row[2] = _max_time(row[2], obs.last_seen)
            elif isinstance(obs, RollupRows):
                if not isinstance(obs.values, Mapping):
                    raise ValueError(f"{collector}: RollupRows {obs.name} holds no mapping of keys to values")
                try:
                    sum(obs.values.values())  # numbers only, as a Rollup's value must be (in C: no pass in Python)
                except TypeError:
                    raise ValueError(f"{collector}: a value of RollupRows {obs.name} is no number") from None
                bkey = (obs.name, obs.day)
                had = bulk.get(bkey)
                if had is None:
                    bulk[bkey] = obs.values
                    continue
                into = merged.get(bkey)
                if into is None:
                    into = merged[bkey] = {k: v for k, v in had.items() if v}
                    bulk[bkey] = into
                for k, v in obs.values.items():
                    if v:
                        into[k] = into.get(k, 0) + v
            elif isinstance(obs, Event):
                events.append(obs)
            else:
                raise ValueError(f"{collector}: {type(obs).__name__} is not an observation")
        for cp in batch.checkpoints:
            if not isinstance(cp, Checkpoint):
                raise ValueError(f"{collector}: {type(cp).__name__} is not a Checkpoint")

        with self._lock:
            now = self._clock.now().timestamp()
            hour = int(now // 3600)
            # What would change nothing is left out, and a batch left with nothing costs no
            # transaction: every log collector ends each run with its zero series and its lag,
            # and on an idle host that is all there is (issue 15: idle CPU).
            # The rules judge what the batch speaks of, changed or not: a gauge that sits at 0 for
            # a rule's ``for`` fires it at the commit that shows it still there.
            touched = _touched(counts, gauges, rollups, events)
            touched.update(f"rollup:{name}" for name, _ in bulk)
            counts = {key: value for key, value in counts.items() if value or self._mirror.hours.get(key) != hour}
            # Per gauge metric, the history rows it adds; a metric whose series all sit where
            # this collector set them adds none and is not written again.
            history = {metric: _gauge_changes(self._mirror.gauges, collector, metric, series) for metric, series in gauges.items()}
            gauges = {metric: series for metric, series in gauges.items()
                      if history[metric] or any(self._mirror.gauges[(metric, labels)][1] != collector for labels in series)}
            final = {cp.key: cp.value for cp in batch.checkpoints}
            changes = counts or gauges or rollups or bulk or events
            if not (changes or self._rules_watch(touched)) and self._checkpoints_unchanged(collector, final):
                self._refuse_if_lost()  # as a write would: a lost ledger is said at the next batch
                return
            with self._transaction(f"cannot store a batch of {collector}") as conn:
                for (metric, labels), value in counts.items():
                    lj = _labels_json(labels)
                    conn.execute(
                        "INSERT INTO counters (metric, labels, value, updated_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (metric, labels) DO UPDATE SET value = value + excluded.value, "
                        "updated_at = excluded.updated_at",
                        (metric, lj, value, now),
                    )
                    conn.execute(
                        "INSERT INTO counter_hours (metric, labels, hour, value) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (metric, hour, labels) DO UPDATE SET value = value + excluded.value",
                        (metric, lj, hour, value),
                    )
                for metric, series in gauges.items():
                    conn.execute("DELETE FROM gauges WHERE collector = ? AND metric = ?", (collector, metric))
                    conn.executemany(
                        "INSERT OR REPLACE INTO gauges (metric, labels, collector, value, updated_at) VALUES (?, ?, ?, ?, ?)",
                        [(metric, _labels_json(labels), collector, value, now) for labels, value in series.items()],
                    )
                    if history[metric]:
                        conn.executemany(
                            "INSERT OR REPLACE INTO gauge_hours (metric, labels, hour, value) VALUES (?, ?, ?, ?)",
                            [(metric, _labels_json(labels), hour, value) for labels, value in history[metric]],
                        )
                conn.executemany(
                    "INSERT INTO rollups (name, day, key, value, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (name, day, key) DO UPDATE SET value = value + excluded.value, "
                    "first_seen = min(coalesce(first_seen, excluded.first_seen), coalesce(excluded.first_seen, first_seen)), "
                    "last_seen = max(coalesce(last_seen, excluded.last_seen), coalesce(excluded.last_seen, last_seen))",
                    [
                        (name, day.isoformat(), _storable(row_key), value, _ts(first), _ts(last))
                        for (name, day, row_key), (value, first, last) in rollups.items()
                    ],
                )
                # Many keys' rows at once, each added to its row as a Rollup of its own would be
                # (no first or last seen: those stay as they are); a key also given as a Rollup
                # above adds up in its row. One statement per name and day, no object per row.
                for (name, day), values in bulk.items():
                    day_text, every = day.isoformat(), (name, day) in merged
                    conn.executemany(
                        "INSERT INTO rollups (name, day, key, value) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (name, day, key) DO UPDATE SET value = value + excluded.value",
                        ((name, day_text, _storable(key), float(value)) for key, value in values.items() if value or every),
                    )
                conn.executemany(
                    "INSERT OR IGNORE INTO events (collector, kind, key, at, attrs) VALUES (?, ?, ?, ?, ?)",
                    [
                        (collector, ev.kind, _storable(ev.key), ev.at.timestamp(), json.dumps(dict(ev.attrs), sort_keys=True))
                        for ev in events
                    ],
                )
                # The last checkpoint of a key decides (as if they were written in order), so the
                # deletions and the writes can each go in one statement: a first index of 100,000
                # files writes several hundred thousand keys. They go in key order: a first index's
                # keys (random message ids and file names) land all over the B-tree, and in order
                # the look-ups share the interior pages SQLite's small page cache still holds
                # (about 5 % less CPU for the EDI index at 100,000 messages; see bench/README.md).
                # The rows are made as SQLite takes them, not listed first: a first index's batch of
                # 20,000 files would hold all its rows' JSON at once (about 7 MiB at the peak).
                ordered = sorted(final.items(), key=itemgetter(0))
                conn.executemany(
                    "DELETE FROM checkpoints WHERE collector = ? AND key = ?",
                    ((collector, key) for key, value in ordered if value is None),
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO checkpoints (collector, key, value, updated_at) VALUES (?, ?, ?, ?)",
                    ((collector, key, _compact_json(value), now) for key, value in ordered if value is not None),
                )
                # The rules that watch what this batch changed, in this same transaction (see rules.py).
                stats = self._evaluate_in(conn, touched, collector)
                health = self._unwritten.since is not None
                if health:
                    self._store_health(conn)  # runs' health kept in memory rides along (record_run)
            # Only now, with the transaction durable, does the world see the new values.
            if health:
                self._health_stored()
            mirror = self._mirror
            for key, value in counts.items():
                mirror.counters[key] = mirror.counters.get(key, 0.0) + value
                mirror.hours[key] = hour
            for metric, series in gauges.items():
                for key in [k for k, (_, owner) in mirror.gauges.items() if k[0] == metric and owner == collector]:
                    del mirror.gauges[key]
                for labels, value in series.items():
                    mirror.gauges[(metric, labels)] = (value, collector)
            if counts or gauges:
                self._snapshot = None
            self._changed(stats)

    def _rules_watch(self, touched: set[str]) -> bool:
        """Whether a rule would be evaluated in a commit that touched ``touched``."""
        deviations = self._deviations
        if deviations.evaluator is None or not touched:
            return False
        return deviations.watches is None or deviations.watches(touched)

    def _checkpoints_unchanged(self, collector: str, final: Mapping[str, JSONValue]) -> bool:
        """Whether writing ``final`` would leave every checkpoint as it is: each value equal to the
        stored one (as stored: the same JSON text), each deletion of a key that is not there.

        Asked only for a batch with nothing else to write, and answered False for more than a
        few keys without reading them (such a batch is a first index's: it changes them)."""
        if len(final) > UNCHANGED_CHECK_KEYS:
            return False
        for key, value in final.items():
            row = self._conn.execute("SELECT value FROM checkpoints WHERE collector = ? AND key = ?", (collector, key)).fetchone()
            if (row is None) != (value is None) or (row is not None and row[0] != _compact_json(value)):
                return False
        return True

    def record_run(self, outcome: RunOutcome) -> None:
        """Keep how a collector's run ended (health, not observations: no checkpoint involved).

        The health is exported from memory at once, and stored in the ledger when it changed (up
        or down, or another reason than the stored row's) or the run is the collector's first of
        an hour, with the next batch ``commit`` writes, or ``HEALTH_WRITE_SECONDS`` after the
        oldest run waiting, whichever comes first; ``close()`` stores what waits. A run that
        ends as the last did costs no transaction (one per run was the largest part of the idle
        agent's CPU); a crash loses at most those runs' count in the run history and their
        last-success time, never a change of health nor an hour in which the collector ran.

        The health is exported even when it cannot be stored (a full disk is exactly when
        ``normagent_collector_up`` must say 0); only its copy on disk then lags behind.

        Raises:
            DiskFull, StateError: the health could not be stored (it is exported all the same,
                and stored with a later write).
        """
        with self._lock:
            previous = self._mirror.runs.get(outcome.collector)
            started = outcome.started_at.timestamp()
            last_success = started + outcome.duration if outcome.ok else (previous.last_success if previous else None)
            state = RunState(
                collector=outcome.collector,
                up=outcome.ok,
                duration=outcome.duration,
                last_success=last_success,
                reason=outcome.reason,
                runs=(previous.runs if previous else 0) + 1,
                failures=(previous.failures if previous else 0) + (0 if outcome.ok else 1),
            )
            self._mirror.runs[outcome.collector] = state
            self._snapshot = None
            unwritten = self._unwritten
            unwritten.rows[state.collector] = (state, started)
            hour = int(started // 3600)
            tally = unwritten.hours.setdefault((state.collector, hour), [0, 0])
            tally[0] += 1
            tally[1] += 0 if outcome.ok else 1
            now = self._clock.monotonic()
            if unwritten.since is None:
                unwritten.since = now
            if self.lost() is not None:
                return  # nowhere to store it; the loss itself is reported by commits and the agent
            if unwritten.stored.get(state.collector) == (state.up, state.reason, hour) and now - unwritten.since < HEALTH_WRITE_SECONDS:
                return
            self._write_health()

    def _write_health(self) -> None:
        """Store every run's health that waits in memory, in a transaction of its own."""
        with self._transaction("cannot store the health of " + ", ".join(sorted(self._unwritten.rows))) as conn:
            self._store_health(conn)
        self._health_stored()

    def _store_health(self, conn: sqlite3.Connection) -> None:
        """Write the health waiting in memory in the caller's transaction; ``_health_stored``
        forgets it once that transaction is committed."""
        unwritten = self._unwritten
        conn.executemany(
            "INSERT OR REPLACE INTO collector_runs "
            "(collector, started_at, duration, ok, reason, last_success, runs, failures) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(s.collector, started, s.duration, int(s.up), s.reason, s.last_success, s.runs, s.failures)
             for s, started in unwritten.rows.values()],
        )
        conn.executemany(
            "INSERT INTO run_hours (collector, hour, runs, failures) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (collector, hour) DO UPDATE SET runs = runs + excluded.runs, failures = failures + excluded.failures",
            [(collector, hour, runs, failures) for (collector, hour), (runs, failures) in unwritten.hours.items()],
        )

    def _health_stored(self) -> None:
        unwritten = self._unwritten
        for state, started in unwritten.rows.values():
            unwritten.stored[state.collector] = (state.up, state.reason, int(started // 3600))
        unwritten.rows.clear()
        unwritten.hours.clear()
        unwritten.since = None

    def _unwritten_hours(self, start: int, end: int) -> Iterator[tuple[str, int, int, int]]:
        """Runs kept in memory in hours ``start`` ≤ hour < ``end``: (collector, hour, runs, failures)."""
        for (collector, hour), (runs, failures) in self._unwritten.hours.items():
            if start <= hour < end:
                yield collector, hour, runs, failures

    def prune(self, before: datetime) -> int:
        """Forget hourly counter buckets, rollups and events older than ``before``; counters stay.

        Raises:
            DiskFull, StateLost, StateError: nothing was pruned.
        """
        with self._lock, self._transaction("cannot prune the ledger") as conn:
            removed: int = conn.execute("DELETE FROM counter_hours WHERE hour < ?", (int(before.timestamp() // 3600),)).rowcount
            removed += conn.execute("DELETE FROM rollups WHERE day < ?", (before.date().isoformat(),)).rowcount
            removed += conn.execute("DELETE FROM events WHERE at < ?", (before.timestamp(),)).rowcount
            cut = int(before.timestamp() // 3600)
            removed += conn.execute("DELETE FROM run_hours WHERE hour < ?", (cut,)).rowcount
            # A gauge's last value before the cut is kept: it is still its value at the cut.
            removed += conn.execute(
                "DELETE FROM gauge_hours WHERE hour < ? AND hour < (SELECT max(h.hour) FROM gauge_hours h "
                "WHERE h.metric = gauge_hours.metric AND h.labels = gauge_hours.labels AND h.hour < ?)",
                (cut, cut),
            ).rowcount
        return removed

    def forget_gauges(self, collector: str) -> None:
        """Drop a collector's gauges (it was disabled or removed: its last values are no longer true).

        Raises:
            DiskFull, StateLost, StateError: the gauges stay.
        """
        with self._lock:
            with self._transaction(f"cannot forget the gauges of {collector}") as conn:
                hour = int(self._clock.now().timestamp() // 3600)
                conn.executemany(
                    "INSERT OR REPLACE INTO gauge_hours (metric, labels, hour, value) VALUES (?, ?, ?, NULL)",
                    [(m, _labels_json(labels), hour) for (m, labels), (_, owner) in self._mirror.gauges.items() if owner == collector],
                )
                conn.execute("DELETE FROM gauges WHERE collector = ?", (collector,))
            self._mirror.gauges = {k: v for k, v in self._mirror.gauges.items() if v[1] != collector}
            self._snapshot = None

    # ---------------------------------------------------------------------------------------
    # the read path

    def snapshot(self) -> Snapshot:
        """The committed series and run states; cheap when nothing changed since the last call."""
        snap = self._snapshot
        if snap is not None:
            return snap
        with self._lock:
            series: dict[str, dict[Labels, float]] = {}
            for (metric, labels), value in self._mirror.counters.items():
                series.setdefault(metric, {})[labels] = value
            for (metric, labels), (value, _) in self._mirror.gauges.items():
                series.setdefault(metric, {})[labels] = value
            stats = self._deviations.stats
            snap = Snapshot(
                series=MappingProxyType({m: MappingProxyType(v) for m, v in series.items()}),
                runs=MappingProxyType(dict(self._mirror.runs)),
                deviations=MappingProxyType(dict(stats.deviations)),
                outbox=MappingProxyType(dict(stats.outbox)),
            )
            self._snapshot = snap
            return snap

    def checkpoints(self, collector: str) -> LedgerCheckpoints:
        return LedgerCheckpoints(self, collector)

    def _checkpoint(self, collector: str, key: str) -> JSONValue:
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM checkpoints WHERE collector = ? AND key = ?", (collector, key)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def _scan_checkpoints(self, collector: str, prefix: str) -> Iterator[tuple[str, JSONValue]]:
        for key, value in self._checkpoint_pages(collector, prefix, "key, value"):
            yield key, json.loads(value)

    def _scan_checkpoint_keys(self, collector: str, prefix: str) -> Iterator[str]:
        for (key,) in self._checkpoint_pages(collector, prefix, "key"):
            yield key

    # Rows per read of a checkpoint scan: a collector with 300,000 checkpoints (the EDI index) is
    # read a page at a time, each under the lock for a moment, never all at once into memory.
    SCAN_PAGE = 2000

    def _checkpoint_pages(self, collector: str, prefix: str, columns: str) -> Iterator[Any]:
        """Rows of ``columns`` (the key first) for the keys starting with ``prefix``, in key order,
        read a page at a time (keyset pagination: each page starts after the last key seen)."""
        # A commit between two pages is seen from the next page on (a collector reads its own
        # checkpoints between its batches).
        after, inclusive = prefix, True
        end = _prefix_end(prefix)
        bound = "AND key < ? " if end is not None else ""
        while True:
            query = (f"SELECT {columns} FROM checkpoints WHERE collector = ? AND key {'>=' if inclusive else '>'} ? "
                     f"{bound}ORDER BY key LIMIT ?")
            args = (collector, after, end, self.SCAN_PAGE) if end is not None else (collector, after, self.SCAN_PAGE)
            with self._lock:
                rows = self._conn.execute(query, args).fetchall()
            yield from rows
            if len(rows) < self.SCAN_PAGE:
                return
            after, inclusive = rows[-1][0], False

    def counter_value(self, metric: str, labels: Mapping[str, str] | None = None) -> float:
        """The committed value of one counter series (0 if it was never incremented)."""
        key = (metric, tuple(sorted((labels or {}).items())))
        with self._lock:
            return self._mirror.counters.get(key, 0.0)

    def counter_total(self, metric: str) -> float:
        """The sum of a counter over all its series."""
        with self._lock:
            return sum(v for (m, _), v in self._mirror.counters.items() if m == metric)

    def increase(self, metric: str, period: Period, by: Sequence[str] = ()) -> dict[tuple[str, ...], float]:
        """How much a counter grew during ``period`` (hour resolution), summed by the labels in ``by``."""
        start = int(period.start.timestamp() // 3600)
        end = int(-(-period.end.timestamp() // 3600))
        result: dict[tuple[str, ...], float] = {}
        with self._lock:
            rows = self._conn.execute(
                "SELECT labels, sum(value) FROM counter_hours WHERE metric = ? AND hour >= ? AND hour < ? GROUP BY labels",
                (metric, start, end),
            ).fetchall()
        for labels_json, value in rows:
            labels = json.loads(labels_json)
            key = tuple(labels.get(name, "") for name in by)
            result[key] = result.get(key, 0.0) + value
        return result

    def rollups(self, name: str, period: Period) -> list[Rollup]:
        """The rollup rows of ``name`` for the days in ``period``."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT day, key, value, first_seen, last_seen FROM rollups WHERE name = ? AND day >= ? AND day < ? "
                "ORDER BY day, key",
                (name, period.start.date().isoformat(), _end_day(period)),
            ).fetchall()
        return [
            Rollup(name, date.fromisoformat(day), key, value, _dt(first), _dt(last)) for day, key, value, first, last in rows
        ]

    def events(self, kind: str, period: Period) -> list[Event]:
        """The events of ``kind`` that happened in ``period``, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, at, attrs FROM events WHERE kind = ? AND at >= ? AND at < ? ORDER BY at, key",
                (kind, period.start.timestamp(), period.end.timestamp()),
            ).fetchall()
        return [Event(kind, datetime.fromtimestamp(at, timezone.utc), key, json.loads(attrs)) for key, at, attrs in rows]

    # ---------------------------------------------------------------------------------------
    # the report's reads (normagent report; see normagent/report/data.py)

    def gauge(self, metric: str, at: datetime, by: Sequence[str] = ()) -> dict[tuple[str, ...], float]:
        """What a gauge said at ``at`` (hour resolution: the last value set in an hour before the
        one ``at`` falls in, or earlier), summed by the labels in ``by``; series that had gone
        away by then are left out.

        A ledger from before the gauge history (schema < 3) knows only the current values: they
        are given for an ``at`` after their last change, and nothing for an earlier one.
        """
        hour = int(at.timestamp() // 3600)
        with self._lock:
            if self.schema_version >= HISTORY_SCHEMA:
                rows = self._conn.execute(
                    "SELECT g.labels, g.value FROM gauge_hours g WHERE g.metric = ? AND g.hour = (SELECT max(h.hour) "
                    "FROM gauge_hours h WHERE h.metric = g.metric AND h.labels = g.labels AND h.hour < ?)",
                    (metric, hour),
                ).fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT labels, value FROM gauges WHERE metric = ? AND updated_at < ?", (metric, at.timestamp())
                ).fetchall()
        result: dict[tuple[str, ...], float] = {}
        for labels_json, value in rows:
            if value is None:
                continue
            labels = json.loads(labels_json)
            key = tuple(labels.get(name, "") for name in by)
            result[key] = result.get(key, 0.0) + float(value)
        return result

    def run_hours(self, period: Period) -> dict[str, dict[int, tuple[int, int]]]:
        """Each collector's runs in ``period`` by hour (Unix hour → (runs, failures)); empty for a
        ledger from before the run history (schema < 3: see ``history_since``)."""
        if self.schema_version < HISTORY_SCHEMA:
            return {}
        start, end = int(period.start.timestamp() // 3600), int(-(-period.end.timestamp() // 3600))
        with self._lock:
            rows = self._conn.execute(
                "SELECT collector, hour, runs, failures FROM run_hours WHERE hour >= ? AND hour < ?",
                (start, end),
            ).fetchall()
            rows.extend(self._unwritten_hours(start, end))
        out: dict[str, dict[int, tuple[int, int]]] = {}
        for collector, hour, runs, failures in sorted(rows):
            before = out.setdefault(collector, {}).get(int(hour), (0, 0))
            out[collector][int(hour)] = (before[0] + int(runs), before[1] + int(failures))
        return out

    def counter_metrics(self) -> list[str]:
        with self._lock:
            return [m for (m,) in self._conn.execute("SELECT DISTINCT metric FROM counters ORDER BY metric")]

    def counter_history(self, metric: str) -> list[tuple[Labels, float, list[tuple[int, float]]]]:
        """Each series of a counter: (labels, its total now, its hourly increases oldest first), for
        exporting the ledger's history to Prometheus (``normagent.report.openmetrics``)."""
        with self._lock:
            totals = self._conn.execute("SELECT labels, value FROM counters WHERE metric = ? ORDER BY labels", (metric,)).fetchall()
            hours: dict[str, list[tuple[int, float]]] = {}
            for labels, hour, value in self._conn.execute(
                "SELECT labels, hour, value FROM counter_hours WHERE metric = ? ORDER BY labels, hour", (metric,)
            ):
                hours.setdefault(labels, []).append((int(hour), float(value)))
        return [(_labels_from_json(labels), float(total), hours.get(labels, [])) for labels, total in totals]

    def gauge_history(self) -> dict[str, list[tuple[Labels, list[tuple[int, float | None]]]]]:
        """Every gauge's history (schema 3): metric → [(labels, [(hour, value or None)])]."""
        if self.schema_version < HISTORY_SCHEMA:
            return {}
        out: dict[str, dict[str, list[tuple[int, float | None]]]] = {}
        with self._lock:
            for metric, labels, hour, value in self._conn.execute(
                "SELECT metric, labels, hour, value FROM gauge_hours ORDER BY metric, labels, hour"
            ):
                out.setdefault(metric, {}).setdefault(labels, []).append((int(hour), value))
        return {m: [(_labels_from_json(lj), rows) for lj, rows in per.items()] for m, per in out.items()}

    def has_data(self, period: Period) -> bool:
        """Whether anything was counted or any collector ran in ``period``."""
        start, end = int(period.start.timestamp() // 3600), int(-(-period.end.timestamp() // 3600))
        with self._lock:
            if self._conn.execute("SELECT 1 FROM counter_hours WHERE hour >= ? AND hour < ? LIMIT 1", (start, end)).fetchone():
                return True
            if self.schema_version >= HISTORY_SCHEMA:
                if next(self._unwritten_hours(start, end), None) is not None:
                    return True
                return self._conn.execute("SELECT 1 FROM run_hours WHERE hour >= ? AND hour < ? LIMIT 1", (start, end)).fetchone() is not None
        return False

    def first_hour(self) -> int | None:
        """The first hour with anything counted or run in this ledger (its data starts there)."""
        with self._lock:
            row = self._conn.execute("SELECT min(hour) FROM counter_hours").fetchone()
            first = row[0] if row else None
            if self.schema_version >= HISTORY_SCHEMA:
                stored = self._conn.execute("SELECT min(hour) FROM run_hours").fetchone()[0]
                other = min([hour for _, hour in self._unwritten.hours] + ([] if stored is None else [stored]), default=None)
                first = other if first is None else (first if other is None else min(first, other))
        return None if first is None else int(first)

    def candidates_between(self, period: Period) -> list[CandidateRecord]:
        """Candidates that fired and were open at some time in ``period`` (fired before its end,
        not resolved before its start), oldest first, each with its last change document and its
        acknowledgements (time and note). Empty for a ledger from before deviations (schema 1)."""
        if self.schema_version < 2:
            return []
        start, end = period.start.timestamp(), period.end.timestamp()
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_CANDIDATE_COLUMNS}, document FROM candidates WHERE fired_at IS NOT NULL AND fired_at < ? "
                "AND (resolved_at IS NULL OR resolved_at >= ?) ORDER BY fired_at, id",
                (end, start),
            ).fetchall()
            ids = [int(r[0]) for r in rows]
            acks: dict[int, list[tuple[datetime, str]]] = {}
            if ids:
                for cid, at, note in self._conn.execute(
                    f"SELECT candidate_id, at, note FROM acks WHERE candidate_id IN ({','.join('?' * len(ids))}) ORDER BY id",
                    ids,
                ):
                    acks.setdefault(int(cid), []).append((_dt(at) or _EPOCH, note))
        return [
            CandidateRecord(_candidate(row[:-1]), json.loads(row[-1]) if row[-1] else None, [], acks.get(int(row[0]), []))
            for row in rows
        ]

    # ---------------------------------------------------------------------------------------
    # deviation candidates and the outbox (see normagent/rules.py for why here, in one transaction)

    def use_rules(
        self,
        evaluator: Evaluator | None,
        forwarders: Sequence[str] = (),
        on_change: Callable[[], None] | None = None,
        collectors: Iterable[str] | None = None,
        watches: Callable[[set[str]], bool] | None = None,
    ) -> None:
        """Set what evaluates the rules inside commits and timer evaluations, and which forwarders
        get an outbox row for each change from now on.

        Args:
            evaluator: ``evaluator(view, touched, now) -> transitions``; ``touched`` is None for a
                full evaluation. None: no rules are evaluated.
            forwarders: Names of the enabled forwarders.
            on_change: Called after a transaction that added outbox rows (wakes the forwarders).
            collectors: The collectors that run now: the only ones whose health the rules see (a
                collector disabled since its last, failed run is not "down"). None: every one.
            watches: Whether a rule reads any of the names a commit touched (metrics,
                ``rollup:<name>``, ``event:<kind>``): a batch that changes nothing and that no rule
                reads is not written at all. None: every name is taken for watched.
        """
        with self._lock:
            self._deviations.evaluator = evaluator
            self._deviations.watches = watches
            self._deviations.forwarders = tuple(forwarders)
            self._deviations.on_change = on_change
            self._deviations.collectors = frozenset(collectors) if collectors is not None else None

    def evaluate_rules(self, touched: Iterable[str] | None = None) -> int:
        """Evaluate the rules now (all, or those watching ``touched``) in a transaction of their own:
        what time alone changes (``for`` passed, a window slid, a hold ended, a gauge sat still).

        Returns:
            The number of transitions stored.

        Raises:
            Exception: whatever the evaluator raised; nothing of the evaluation is stored.
        """
        with self._lock:
            if self._deviations.evaluator is None:
                return 0
            with self._transaction("cannot store deviation candidates") as conn:
                count = self._apply(conn, self._run_evaluator(conn, None if touched is None else set(touched)))
                stats = _deviation_stats(conn) if count else None
            self._changed(stats)
            return count

    def read_view(self) -> RuleView:
        """The rules' view of what is committed, for reading only (``normagent rules test``)."""
        return RuleView(self._conn, self)

    def _run_evaluator(self, conn: sqlite3.Connection, touched: set[str] | None) -> list[Transition]:
        evaluator = self._deviations.evaluator
        if evaluator is None:
            return []
        return list(evaluator(_RuleView(conn, self), touched, self._clock.now()))

    def _evaluate_in(self, conn: sqlite3.Connection, touched: set[str], collector: str) -> _Stats | None:
        """Evaluate the rules watching ``touched`` inside the caller's transaction.

        A failure here (a bug in a rule, a broken plugin template) must never cost the batch its
        commit: the evaluation runs under a savepoint, and on any error only its own writes are
        undone and the failure is logged; the timer evaluation tries again.
        """
        if self._deviations.evaluator is None or not touched:
            return None
        conn.execute("SAVEPOINT rules")
        try:
            count = self._apply(conn, self._run_evaluator(conn, touched))
            conn.execute("RELEASE SAVEPOINT rules")
        except Exception as exc:
            if not conn.in_transaction:
                raise  # SQLite ended the whole transaction (disk full, I/O): the batch fails as it would anyway
            conn.execute("ROLLBACK TO SAVEPOINT rules")
            conn.execute("RELEASE SAVEPOINT rules")
            log.error("rules_evaluation_failed", collector=collector, error=f"{type(exc).__name__}: {exc}", exc_info=True)
            return None
        return _deviation_stats(conn) if count else None

    def _changed(self, stats: _Stats | None, counted: Sequence[Count] = ()) -> None:
        """After a COMMIT: publish new deviation and outbox figures and counters, wake the forwarders."""
        for c in counted:
            key = (c.metric, c.labels)
            self._mirror.counters[key] = self._mirror.counters.get(key, 0.0) + c.value
        if counted:
            self._snapshot = None
        if stats is None:
            return
        self._deviations.stats = stats
        self._snapshot = None
        callback = self._deviations.on_change
        if callback is not None:
            callback()

    def _apply(self, conn: sqlite3.Connection, transitions: Sequence[Transition]) -> int:
        """Store transitions: candidates inserted, updated or dropped; for each change a forwarder
        must see, the fingerprint's next sequence number and one outbox row per forwarder."""
        now = self._clock.now().timestamp()
        for t in transitions:
            cand = t.candidate
            if t.drop:
                if cand.id:
                    conn.execute("DELETE FROM candidates WHERE id = ? AND state = 'pending'", (cand.id,))
                continue
            row = (
                cand.fingerprint, cand.rule, _labels_json(cand.labels), cand.state, int(cand.severity), cand.value,
                cand.threshold, cand.first_evidence.timestamp(), _ts(cand.fired_at), _ts(cand.clear_since),
                _ts(cand.resolved_at), _ts(cand.notify_by), now,
            )
            if cand.id:
                conn.execute(
                    "UPDATE candidates SET fingerprint = ?, rule = ?, labels = ?, state = ?, severity = ?, value = ?, "
                    "threshold = ?, first_evidence = ?, fired_at = ?, clear_since = ?, resolved_at = ?, notify_by = ?, "
                    "updated_at = ? WHERE id = ?",
                    (*row, cand.id),
                )
                cid = cand.id
            else:
                cur = conn.execute(
                    "INSERT INTO candidates (fingerprint, rule, labels, state, severity, value, threshold, first_evidence, "
                    "fired_at, clear_since, resolved_at, notify_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                cid = int(cur.lastrowid or 0)
            if not t.forward:
                continue
            sequence = int(
                conn.execute(
                    "INSERT INTO fingerprints (fingerprint, sequence) VALUES (?, 1) "
                    "ON CONFLICT (fingerprint) DO UPDATE SET sequence = sequence + 1 RETURNING sequence",
                    (cand.fingerprint,),
                ).fetchone()[0]
            )
            key = f"{cand.fingerprint}-{cand.state}-{sequence}"
            document = {**(t.document or {}), "id": cid, "sequence": sequence, "idempotency_key": key}
            text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
            conn.execute("UPDATE candidates SET document = ? WHERE id = ?", (text, cid))
            conn.executemany(
                "INSERT INTO outbox (forwarder, candidate_id, fingerprint, sequence, state, key, document, created_at, "
                "next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(name, cid, cand.fingerprint, sequence, cand.state, key, text, now, now) for name in self._deviations.forwarders],
            )
        return len(transitions)

    # the outbox, as the forwarders use it

    def due_deliveries(self, forwarder: str, limit: int = 100) -> list[OutboxRow]:
        """Pending changes of ``forwarder`` that may be sent now, oldest first: due (their back-off
        is over), and each the lowest pending sequence of its fingerprint, so a receiver gets a
        fingerprint's changes in order."""
        now = self._clock.now().timestamp()
        with self._lock:
            rows = self._conn.execute(
                "SELECT o.id, o.key, o.document, o.attempts, o.created_at, o.fingerprint, o.sequence FROM outbox o "
                "WHERE o.forwarder = ? AND o.status = 'pending' AND o.next_attempt <= ? AND NOT EXISTS ("
                "  SELECT 1 FROM outbox p WHERE p.forwarder = o.forwarder AND p.fingerprint = o.fingerprint "
                "  AND p.status = 'pending' AND p.sequence < o.sequence) "
                "ORDER BY o.id LIMIT ?",
                (forwarder, now, limit),
            ).fetchall()
        return [OutboxRow(i, key, json.loads(doc), attempts, created, fp, seq, doc) for i, key, doc, attempts, created, fp, seq in rows]

    def next_attempt(self, forwarder: str) -> float | None:
        """When the earliest pending change of ``forwarder`` may be tried (Unix time), or None.

        Only the first pending change of each fingerprint counts: a later one waits for it
        (``due_deliveries``), however early its own time; taken as due, it had the worker look
        again at once, pass after pass, until the first one's back-off was over."""
        with self._lock:
            row = self._conn.execute(
                "SELECT min(o.next_attempt) FROM outbox o WHERE o.forwarder = ? AND o.status = 'pending' AND NOT EXISTS ("
                "  SELECT 1 FROM outbox p WHERE p.forwarder = o.forwarder AND p.fingerprint = o.fingerprint "
                "  AND p.status = 'pending' AND p.sequence < o.sequence)",
                (forwarder,),
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def record_attempts(self, forwarder: str, results: Sequence[AttemptResult], counts: Sequence[Count] = ()) -> None:
        """Store how deliveries went, with the counters that count them, in one transaction.

        A delivered change is marked delivered only here, after the receiver took it: a crash
        before this sends it again (at least once; the idempotency key makes it once for the
        receiver), never loses it.
        """
        now = self._clock.now().timestamp()
        with self._lock:
            with self._transaction("cannot record delivery attempts") as conn:
                conn.executemany(
                    "UPDATE outbox SET status = 'delivered', done_at = ?, attempts = attempts + 1, last_result = 'ok', "
                    "last_error = '' WHERE id = ? AND status = 'pending'",
                    [(now, r.id) for r in results if r.delivered],
                )
                conn.executemany(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ?, last_result = ? "
                    "WHERE id = ? AND status = 'pending'",
                    [(r.next_attempt, r.error[:500], r.result, r.id) for r in results if not r.delivered],
                )
                self._add_counts(conn, counts, now)
                stats = _deviation_stats(conn)
            self._changed(stats, counts)

    def dead_letter(self, forwarder: str, created_before: float, counter: str = "") -> int:
        """Give up on ``forwarder``'s pending changes created before ``created_before``: they stay in
        the outbox as dead letters (``deviations list`` shows them), counted in ``counter``."""
        now = self._clock.now().timestamp()
        with self._lock:
            with self._transaction("cannot move changes to the dead letters") as conn:
                n = conn.execute(
                    "UPDATE outbox SET status = 'dead', done_at = ? WHERE forwarder = ? AND status = 'pending' AND created_at < ?",
                    (now, forwarder, created_before),
                ).rowcount
                counted = [Count(counter, {"forwarder": forwarder}, n)] if n and counter else []
                self._add_counts(conn, counted, now)
                stats = _deviation_stats(conn) if n else None
            self._changed(stats, counted)
            return int(n)

    def firing_documents(self, forwarder: str) -> list[tuple[str, dict[str, Any]]]:
        """(key, document) of the last change of every firing candidate that ``forwarder`` has
        been given (nothing of it pending): what Alertmanager must be reminded of."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT o.key, o.document FROM candidates c JOIN outbox o ON o.candidate_id = c.id AND o.forwarder = ? "
                "WHERE c.state = 'firing' AND o.status = 'delivered' AND o.state = 'firing' AND NOT EXISTS ("
                "  SELECT 1 FROM outbox p WHERE p.forwarder = o.forwarder AND p.fingerprint = o.fingerprint "
                "  AND p.status = 'pending') "
                "AND o.sequence = (SELECT max(sequence) FROM outbox q WHERE q.forwarder = o.forwarder AND q.candidate_id = c.id) "
                "ORDER BY c.id",
                (forwarder,),
            ).fetchall()
        return [(key, json.loads(doc)) for key, doc in rows]

    def _add_counts(self, conn: sqlite3.Connection, counts: Sequence[Count], now: float) -> None:
        """Add to counters inside the caller's transaction; the mirror follows in ``_changed``."""
        hour = int(now // 3600)
        for c in counts:
            self._check(c.metric, c.labels, "counter")
            lj = _labels_json(c.labels)
            conn.execute(
                "INSERT INTO counters (metric, labels, value, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (metric, labels) DO UPDATE SET value = value + excluded.value, updated_at = excluded.updated_at",
                (c.metric, lj, c.value, now),
            )
            conn.execute(
                "INSERT INTO counter_hours (metric, labels, hour, value) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (metric, hour, labels) DO UPDATE SET value = value + excluded.value",
                (c.metric, lj, hour, c.value),
            )

    # reading candidates (normagent deviations …)

    def candidates(self, states: Sequence[str] = (), limit: int = 1000) -> list[Candidate]:
        """Candidates, newest first; only those in ``states`` if given."""
        where = f"WHERE state IN ({','.join('?' * len(states))})" if states else ""
        with self._lock:
            rows = self._conn.execute(f"SELECT {_CANDIDATE_COLUMNS} FROM candidates {where} ORDER BY id DESC LIMIT ?", (*states, limit)).fetchall()
        return [_candidate(row) for row in rows]

    def candidate(self, cid: int) -> CandidateRecord | None:
        """One candidate with its last change document, its deliveries and its acks."""
        with self._lock:
            row = self._conn.execute(f"SELECT {_CANDIDATE_COLUMNS}, document FROM candidates WHERE id = ?", (cid,)).fetchone()
            if row is None:
                return None
            deliveries = self._conn.execute(
                "SELECT forwarder, key, status, attempts, last_result, last_error, created_at, done_at FROM outbox "
                "WHERE candidate_id = ? ORDER BY sequence, forwarder", (cid,)
            ).fetchall()
            acks = self._conn.execute("SELECT at, note FROM acks WHERE candidate_id = ? ORDER BY id", (cid,)).fetchall()
        return CandidateRecord(
            candidate=_candidate(row[:-1]),
            document=json.loads(row[-1]) if row[-1] else None,
            deliveries=[DeliveryRecord(f, k, s, a, r, e, _dt(c) or _EPOCH, _dt(d)) for f, k, s, a, r, e, c, d in deliveries],
            acks=[(_dt(at) or _EPOCH, note) for at, note in acks],
        )

    def acks(self, ids: Sequence[int]) -> dict[int, int]:
        """How many acks each of ``ids`` has."""
        if not ids:
            return {}
        with self._lock:
            rows = self._conn.execute(
                f"SELECT candidate_id, count(*) FROM acks WHERE candidate_id IN ({','.join('?' * len(ids))}) GROUP BY candidate_id",
                tuple(ids),
            ).fetchall()
        return {int(cid): int(n) for cid, n in rows}

    def ack(self, cid: int, note: str) -> datetime:
        """Record that a person followed candidate ``cid`` up (``deviations ack``); nothing is deleted.

        Raises:
            KeyError: there is no such candidate.
        """
        at = self._clock.now()
        with self._lock:
            with self._transaction("cannot record the acknowledgement") as conn:
                if conn.execute("SELECT 1 FROM candidates WHERE id = ?", (cid,)).fetchone() is None:
                    raise KeyError(cid)
                conn.execute("INSERT INTO acks (candidate_id, at, note) VALUES (?, ?, ?)", (cid, at.timestamp(), note))
        return at

    def dead_letters(self, limit: int = 1000) -> list[DeliveryRecord]:
        """Changes given up on, newest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT forwarder, key, status, attempts, last_result, last_error, created_at, done_at, candidate_id FROM outbox "
                "WHERE status = 'dead' ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [DeliveryRecord(f, k, s, a, r, e, _dt(c) or _EPOCH, _dt(d), cid) for f, k, s, a, r, e, c, d, cid in rows]

    def outbox_stats(self) -> Mapping[str, OutboxStats]:
        return self._deviations.stats.outbox

    def prune_deviations(self, before: datetime) -> int:
        """Forget resolved candidates, and delivered or dead outbox rows, older than ``before``.
        Fingerprint sequences are kept: an idempotency key is never used twice."""
        cut = before.timestamp()
        with self._lock:
            with self._transaction("cannot prune deviation candidates") as conn:
                removed: int = conn.execute("DELETE FROM outbox WHERE status != 'pending' AND done_at < ?", (cut,)).rowcount
                old = "SELECT id FROM candidates WHERE state = 'resolved' AND resolved_at < ?"
                removed += conn.execute(
                    f"DELETE FROM acks WHERE candidate_id IN ({old}) AND candidate_id NOT IN (SELECT candidate_id FROM outbox)", (cut,)
                ).rowcount
                removed += conn.execute(
                    "DELETE FROM candidates WHERE state = 'resolved' AND resolved_at < ? AND id NOT IN (SELECT candidate_id FROM outbox)",
                    (cut,),
                ).rowcount
                stats = _deviation_stats(conn) if removed else None
            self._changed(stats)
            return removed


def _gauge_changes(
    current: Mapping[SeriesKey, tuple[float, str]], collector: str, metric: str, series: Mapping[Labels, float]
) -> list[tuple[Labels, float | None]]:
    """The gauge history rows a batch adds: series whose value changed or that are new, and (as
    None) the series of ``metric`` the collector set before and no longer sets. A value that did
    not change writes nothing: the history keeps a row per hour *in which it changed*."""
    out: list[tuple[Labels, float | None]] = []
    for labels, value in series.items():
        known = current.get((metric, labels))
        if known is None or known[0] != value:
            out.append((labels, value))
    for (name, labels), (_, owner) in current.items():
        if name == metric and owner == collector and labels not in series:
            out.append((labels, None))
    return out


def _prefix_end(prefix: str) -> str | None:
    """The first string after every string that starts with ``prefix`` (None: no such bound).

    Keys sort as their UTF-8 bytes, i.e. by code point, so keys starting with ``prefix`` are
    exactly those in [prefix, prefix with its last character incremented).
    """
    while prefix and prefix[-1] == "\U0010ffff":
        prefix = prefix[:-1]
    if not prefix:
        return None
    following = ord(prefix[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are never stored: skip to the next character
        following = 0xE000
    return prefix[:-1] + chr(following)


def _end_day(period: Period) -> str:
    end = period.end
    # A period ending exactly at midnight does not include that day.
    if (end.hour, end.minute, end.second, end.microsecond) == (0, 0, 0, 0):
        return end.date().isoformat()
    return date.fromordinal(end.date().toordinal() + 1).isoformat()


def _min_time(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _max_time(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


# -------------------------------------------------------------------------------------------
# files beside the ledger, and errors of the environment

_START_AGAIN = "nothing was changed, and the agent can start once there is room"
_RESCUE_AGAIN = "the agent tries again every few seconds; what it counted is lost if it stops first"


def _marker_path(path: Path) -> Path:
    return path.with_suffix(MARKER_SUFFIX)


def _refuse_what_is_no_file(path: Path) -> None:
    """A ``StateError`` naming it when the ledger, its ``-wal`` or its ``-shm`` is no regular file.

    SQLite opens whatever is there: a FIFO failed with "disk I/O error", a link to /dev/zero was
    taken for a ledger emptied under the agent, and a FIFO as the -wal let the agent run on with
    every commit failing. And the state directory must be one: a file there was "File exists".
    """
    try:
        folder = path.parent.stat()
    except (FileNotFoundError, NotADirectoryError):
        pass  # made when the ledger is created (or that says why it cannot be)
    except OSError as exc:  # a link loop, a name too long, no permission to look
        raise StateError(f"{path.parent}: the state directory cannot be used: {exc.strerror or exc}") from None
    else:
        if not stat.S_ISDIR(folder.st_mode):
            kind = "a file" if stat.S_ISREG(folder.st_mode) else kind_of(folder.st_mode)
            raise StateError(f"{path.parent}: is {kind}, not a directory; the state directory must be one")
    for candidate in (path, *_leftovers(path)):
        try:
            st = candidate.stat()
        except OSError:
            continue  # not there (or not to be looked at): opening it says what is wrong
        if not stat.S_ISREG(st.st_mode):
            raise StateError(f"{candidate}: is {kind_of(st.st_mode)}, not a regular file; move it aside")


def _leftovers(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]


def exists(path: Path) -> bool:
    """Whether a ledger is at ``path``, for the commands that read the daemon's (never create one).

    Raises:
        StateError: This user may not look there (the state directory is the agent's, mode 0700).
    """
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except PermissionError:
        raise StateError(f"{path}: permission denied: the state directory is the agent's; run this as its user or root") from None
    except OSError as exc:
        raise StateError(f"{path}: cannot look at the ledger: {exc.strerror or exc}") from None
    return True


def _has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # cannot tell: opening it will say what is wrong


def _read_marker(marker: Path) -> dict[str, Any] | None:
    """The marker's fields; a marker that cannot be read or parsed still says a ledger existed
    (``error`` then says what is wrong with it).

    Read without blocking and up to a limit: a FIFO there would hang every start (and every
    command that opens the ledger) before a word is logged, a device would never end.
    """
    try:
        data = read_small(marker, MAX_MARKER_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return {"host_id": None, "created_at": None, "error": exc.strerror or str(exc)}
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested past the parser's depth
        value = None
    return value if isinstance(value, dict) else {"host_id": None, "created_at": None, "error": "not a marker normagent wrote"}


def _evidence_of_a_ledger(path: Path, witnesses: Iterable[Path]) -> list[str]:
    """What shows that a ledger existed at ``path`` (which is missing or empty now)."""
    found = []
    marker = _read_marker(_marker_path(path))
    if marker is not None and "error" in marker:
        found.append(f"{_marker_path(path).name} exists ({marker['error']})")
    elif marker is not None:
        found.append(
            f"{_marker_path(path).name} records ledger {marker.get('host_id')} created {marker.get('created_at')}"
        )
    wal = _leftovers(path)[0]
    if _has_content(wal):
        found.append(f"{wal.name} is left without its database")
    found += [f"{w.name} exists, and it is created together with the ledger" for w in witnesses if w.exists()]
    return found


def _set_aside_leftovers(path: Path) -> None:
    """Before a new ledger starts where one was lost: a -wal file left there must not be replayed into it."""
    for leftover in _leftovers(path):
        if leftover.exists():
            leftover.replace(leftover.with_name(leftover.name + ".lost"))


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _why_lost(path: Path, identity: tuple[int, int], size_seen: int) -> tuple[str | None, int]:
    """Why the ledger at ``path`` is lost (``Ledger.lost``), or None; and its largest size seen."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"{path} was deleted (or its directory was) while the agent had it open", size_seen
    except OSError:
        return None, size_seen  # cannot tell (a permission changed under us): the next write will say more
    if (st.st_dev, st.st_ino) != identity:
        return f"{path} was replaced by another file while the agent had it open", size_seen
    if st.st_size == 0:
        return f"{path} was emptied while the agent had it open", size_seen
    if st.st_size < size_seen:
        return f"{path} was cut short ({st.st_size} bytes, after {size_seen}) while the agent had it open", size_seen
    return None, max(size_seen, st.st_size)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write a small file so that a crash leaves the old one or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _state_error(
    exc: BaseException,
    path: Path,
    doing: str,
    then: str = "nothing of it was stored, and it is all stored once there is room",
) -> StateError:
    """The StateError to raise for an OSError or a SQLite error of the environment: disk full said plainly.

    Args:
        doing: What failed, as in "cannot store a batch of access.logins".
        then: What a full disk means for it, after "free some space there;".
    """
    free = _free_bytes(path.parent)
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        full = code == sqlite3.SQLITE_FULL or (
            code == sqlite3.SQLITE_IOERR and free is not None and free < _NEARLY_FULL_BYTES
        )
        detail = f"{exc} ({getattr(exc, 'sqlite_errorname', 'SQLITE_ERROR')})"
    else:
        full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        detail = str(exc)
    if full:
        room = f"{free:,} bytes free" if free is not None else "no room"
        return DiskFull(f"{path}: {doing}: the state filesystem is full ({room}); free some space there; {then}")
    return StateError(f"{path}: {doing}: {detail}")


# ---------------------------------------------------------------------------------------------
# deviation candidates and the outbox: records and the rules' view of the ledger

Evaluator = Callable[["RuleView", "set[str] | None", datetime], Iterable[Transition]]
"""``evaluator(view, touched, now)``: the rules engine, as ``Ledger.use_rules`` takes it."""

_EPOCH = datetime.fromtimestamp(0, timezone.utc)
_CANDIDATE_COLUMNS = (
    "id, fingerprint, rule, labels, state, severity, value, threshold, first_evidence, fired_at, clear_since, "
    "resolved_at, notify_by, updated_at"
)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """One forwarder's undelivered changes: how many, and when the oldest was created (Unix time)."""

    pending: int = 0
    oldest: float | None = None


@dataclass(frozen=True)
class _Stats:
    deviations: Mapping[tuple[str, str], int] = field(default_factory=dict)
    outbox: Mapping[str, OutboxStats] = field(default_factory=dict)


@dataclass
class _DeviationState:
    evaluator: Evaluator | None = None
    watches: Callable[[set[str]], bool] | None = None
    forwarders: tuple[str, ...] = ()
    on_change: Callable[[], None] | None = None
    collectors: frozenset[str] | None = None
    stats: _Stats = field(default_factory=_Stats)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A change waiting in the outbox for one forwarder."""

    id: int
    key: str
    document: dict[str, Any]
    attempts: int
    created_at: float
    fingerprint: str
    sequence: int
    text: str = ""  # the document as stored: compact JSON, what the webhook and the file send as is


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """How one delivery attempt went: delivered, or when to try again and why not."""

    id: int
    delivered: bool
    result: str = "ok"
    error: str = ""
    next_attempt: float = 0.0


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One change for one forwarder, as ``deviations show`` and the dead-letter list tell it."""

    forwarder: str
    key: str
    status: str  # pending | delivered | dead
    attempts: int
    last_result: str
    last_error: str
    created_at: datetime
    done_at: datetime | None
    candidate_id: int = 0


@dataclass(frozen=True, slots=True)
class CandidateRecord:
    """A candidate with everything ``deviations show`` tells about it."""

    candidate: Candidate
    document: dict[str, Any] | None
    deliveries: list[DeliveryRecord]
    acks: list[tuple[datetime, str]]


def _candidate(row: Sequence[Any]) -> Candidate:
    cid, fp, rule, labels, state, severity, value, threshold, first, fired, clear, resolved, notify_by, updated = row
    return Candidate(
        id=int(cid), fingerprint=fp, rule=rule, labels=_labels_from_json(labels), state=state,
        severity=Severity(int(severity)), value=float(value), threshold=float(threshold),
        first_evidence=_dt(first) or _EPOCH, fired_at=_dt(fired), clear_since=_dt(clear), resolved_at=_dt(resolved),
        notify_by=_dt(notify_by), updated_at=_dt(updated),
    )


def _deviation_stats(conn: sqlite3.Connection) -> _Stats:
    deviations: dict[tuple[str, str], int] = {}
    for state, severity, n in conn.execute("SELECT state, severity, count(*) FROM candidates GROUP BY state, severity"):
        deviations[(state, Severity(int(severity)).label)] = int(n)
    outbox = {
        forwarder: OutboxStats(int(n), float(oldest))
        for forwarder, n, oldest in conn.execute(
            "SELECT forwarder, count(*), min(created_at) FROM outbox WHERE status = 'pending' GROUP BY forwarder"
        )
    }
    return _Stats(deviations, outbox)


def _touched(
    counts: Mapping[SeriesKey, float],
    gauges: Mapping[str, Any],
    rollups: Mapping[tuple[str, date, str], Any],
    events: Sequence[Event],
) -> set[str]:
    """What a batch changed, as rules name it: metrics, ``rollup:<name>``, ``event:<kind>``."""
    touched = {metric for metric, _ in counts}
    touched.update(gauges)
    touched.update(f"rollup:{name}" for name, _, _ in rollups)
    touched.update(f"event:{ev.kind}" for ev in events)
    return touched


class RuleView:
    """The ledger as the rules read it (``normagent.rules.RuleData``), through one connection.

    Inside ``commit`` that connection is in the middle of the batch's transaction, so the rules
    see the batch they are judging.
    """

    def __init__(self, conn: sqlite3.Connection, ledger: Ledger) -> None:
        self._conn = conn
        self._ledger = ledger

    def counter_increase(self, metric: str, since: float, until: float) -> dict[Labels, float]:
        result: dict[Labels, float] = {}
        for (labels,) in self._conn.execute("SELECT labels FROM counters WHERE metric = ?", (metric,)):
            result[_labels_from_json(labels)] = 0.0
        for labels, value in self._conn.execute(
            "SELECT labels, sum(value) FROM counter_hours WHERE metric = ? AND hour >= ? AND hour <= ? GROUP BY labels",
            (metric, int(since // 3600), int(until // 3600)),
        ):
            result[_labels_from_json(labels)] = float(value)
        return result

    def gauge_series(self, metric: str) -> dict[Labels, float]:
        if metric in HEALTH_GAUGES:
            active = self._ledger._deviations.collectors
            runs = [r for r in self._ledger._mirror.runs.values() if active is None or r.collector in active]
            if metric == HEALTH_GAUGES[0]:
                return {(("collector", r.collector),): 1.0 if r.up else 0.0 for r in runs}
            return {(("collector", r.collector),): r.last_success for r in runs if r.last_success is not None}
        return {
            _labels_from_json(labels): float(value)
            for labels, value in self._conn.execute("SELECT labels, value FROM gauges WHERE metric = ?", (metric,))
        }

    def rollup_sums(self, name: str, since: float, until: float) -> dict[str, RollupSum]:
        first_day = datetime.fromtimestamp(since, timezone.utc).date().isoformat()
        last_day = datetime.fromtimestamp(until, timezone.utc).date().isoformat()
        return {
            key: RollupSum(float(value), first, last)
            for key, value, first, last in self._conn.execute(
                "SELECT key, sum(value), min(first_seen), max(last_seen) FROM rollups WHERE name = ? AND day >= ? AND day <= ? "
                "AND (last_seen IS NULL OR last_seen >= ?) GROUP BY key",
                (name, first_day, last_day, since),
            )
        }

    def event_attrs(self, kind: str, since: float, until: float) -> list[dict[str, Any]]:
        return [
            json.loads(attrs)
            for (attrs,) in self._conn.execute("SELECT attrs FROM events WHERE kind = ? AND at >= ? AND at <= ?", (kind, since, until))
        ]

    def open_candidates(self, rules: Iterable[str] | None) -> dict[str, Candidate]:
        """Pending and firing candidates by fingerprint, of ``rules`` (None: of every rule)."""
        if rules is None:
            rows = self._conn.execute(f"SELECT {_CANDIDATE_COLUMNS} FROM candidates WHERE state != 'resolved'").fetchall()
        else:
            names = list(rules)
            if not names:
                return {}
            rows = self._conn.execute(
                f"SELECT {_CANDIDATE_COLUMNS} FROM candidates WHERE state != 'resolved' AND rule IN ({','.join('?' * len(names))})",
                names,
            ).fetchall()
        found = (_candidate(row) for row in rows)
        return {c.fingerprint: c for c in found}


_RuleView = RuleView
