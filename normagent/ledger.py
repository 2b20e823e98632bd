"""Ledger: the only module that opens normagent's SQLite database, and the only writer of agent state.

What it keeps: each collector's checkpoints, counter and gauge series (counters also in hourly
buckets, so a report can ask for the increase over any month), per-day rollups, notable events and
the health of every collector's last run.

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
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from normagent.clock import Clock, SystemClock
from normagent.errors import DiskFull, StateError, StateLost
from normagent.model import (
    Batch,
    Checkpoint,
    Count,
    Event,
    Gauge,
    JSONValue,
    MetricSpec,
    Period,
    Rollup,
    RunOutcome,
)

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]  # (metric, sorted label pairs)

# SQLite's WAL grows until a checkpoint copies it into the database; with SQLite's defaults (a
# checkpoint at 1000 pages, no size limit) it reaches 4 MiB and keeps that size. On a small state
# filesystem the WAL alone fills it, and a full filesystem cannot take the checkpoint that would
# empty the WAL: every commit fails from then on, even after a restart. So a checkpoint runs after
# every commit that leaves WAL_CHECKPOINT_PAGES pages or more in the WAL (a big commit triggers one
# at once), and when the WAL starts over its file is cut back to WAL_SIZE_LIMIT bytes. The cost:
# a checkpoint (one more fsync) every few dozen commits; see bench/README.md.
WAL_CHECKPOINT_PAGES = 64
WAL_SIZE_LIMIT = 256 * 1024

MARKER_SUFFIX = ".id"  # ledger.db → ledger.id: written beside the ledger, proof that one existed
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

SCHEMA_VERSION = 1
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

    def values(self, metric: str) -> Mapping[Labels, float]:
        return self.series.get(metric, MappingProxyType({}))


@dataclass
class _Mirror:
    """The in-memory copy of counters and gauges, updated only after a successful commit."""

    counters: dict[SeriesKey, float] = field(default_factory=dict)
    gauges: dict[SeriesKey, tuple[float, str]] = field(default_factory=dict)  # value, collector
    runs: dict[str, RunState] = field(default_factory=dict)


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
        self._snapshot: Snapshot | None = None
        self.host_id = ""
        self.created_at = ""
        self.created = False  # this open created the ledger
        self._identity = (0, 0)  # (st_dev, st_ino) of the file opened at ``path``
        self._lost: str | None = None

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

        Raises:
            StateLost: the ledger is missing or empty where one existed, or is not the one
                created here (its marker names another), and ``new_state`` is not given.
            DiskFull: the state filesystem has no room to open or create the ledger.
            StateError: the directory cannot be created, the file is not a normagent ledger, is
                damaged, or was written by a newer normagent; ``new_state`` over an intact ledger.
        """
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
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('host_id', 'created_at')").fetchall())
        self.host_id = meta["host_id"]
        self.created_at = meta.get("created_at", "")
        self._load_mirror()

    def _migrate(self, target: int) -> None:
        with self._transaction() as conn:
            for statement in MIGRATIONS[target - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            if target == 1:
                conn.execute("INSERT INTO meta (key, value) VALUES ('host_id', ?)", (uuid.uuid4().hex,))
                conn.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?)", (self._clock.now().isoformat(),))
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
            "SELECT collector, duration, ok, reason, last_success, runs, failures FROM collector_runs"
        ):
            name, duration, ok, reason, last_success, runs, failures = row
            mirror.runs[name] = RunState(name, bool(ok), duration, last_success, reason, runs, failures)
        self._mirror = mirror
        self._snapshot = None

    def close(self) -> None:
        with self._lock:
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
        """
        if self._lost is None:
            self._lost = _why_lost(self.path, self._identity)
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
        why = self.lost()
        if why is not None:
            raise StateLost(f"{why}; nothing more is stored in the ledger this agent has open: {FRESH_START_HINT}")
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
                conn.executemany(
                    "INSERT INTO rollups (name, day, key, value, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (name, day, key) DO UPDATE SET value = value + excluded.value, "
                    "first_seen = min(coalesce(first_seen, excluded.first_seen), coalesce(excluded.first_seen, first_seen)), "
                    "last_seen = max(coalesce(last_seen, excluded.last_seen), coalesce(excluded.last_seen, last_seen))",
                    [
                        (name, day.isoformat(), row_key, value, _ts(first), _ts(last))
                        for (name, day, row_key), (value, first, last) in rollups.items()
                    ],
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO events (collector, kind, key, at, attrs) VALUES (?, ?, ?, ?, ?)",
                    [
                        (collector, ev.kind, ev.key, ev.at.timestamp(), json.dumps(dict(ev.attrs), sort_keys=True))
                        for ev in events
                    ],
                )
                for cp in batch.checkpoints:
                    if cp.value is None:
                        conn.execute("DELETE FROM checkpoints WHERE collector = ? AND key = ?", (collector, cp.key))
                    else:
                        conn.execute(
                            "INSERT OR REPLACE INTO checkpoints (collector, key, value, updated_at) VALUES (?, ?, ?, ?)",
                            (collector, cp.key, json.dumps(cp.value, separators=(",", ":")), now),
                        )
            # Only now, with the transaction durable, does the world see the new values.
            mirror = self._mirror
            for key, value in counts.items():
                mirror.counters[key] = mirror.counters.get(key, 0.0) + value
            for metric, series in gauges.items():
                for key in [k for k, (_, owner) in mirror.gauges.items() if k[0] == metric and owner == collector]:
                    del mirror.gauges[key]
                for labels, value in series.items():
                    mirror.gauges[(metric, labels)] = (value, collector)
            if counts or gauges:
                self._snapshot = None

    def record_run(self, outcome: RunOutcome) -> None:
        """Store how a collector's run ended (health, not observations: no checkpoint involved).

        The health is exported from memory even when it cannot be stored (a full disk is exactly
        when ``normagent_collector_up`` must say 0); only its copy on disk then lags behind.

        Raises:
            DiskFull, StateError: the health could not be stored (it is exported all the same).
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
            if self.lost() is not None:
                return  # nowhere to store it; the loss itself is reported by commits and the agent
            with self._transaction(f"cannot store the health of {outcome.collector}") as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO collector_runs "
                    "(collector, started_at, duration, ok, reason, last_success, runs, failures) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (state.collector, started, state.duration, int(state.up), state.reason, state.last_success, state.runs, state.failures),
                )

    def prune(self, before: datetime) -> int:
        """Forget hourly counter buckets, rollups and events older than ``before``; counters stay.

        Raises:
            DiskFull, StateLost, StateError: nothing was pruned.
        """
        with self._lock, self._transaction("cannot prune the ledger") as conn:
            removed: int = conn.execute("DELETE FROM counter_hours WHERE hour < ?", (int(before.timestamp() // 3600),)).rowcount
            removed += conn.execute("DELETE FROM rollups WHERE day < ?", (before.date().isoformat(),)).rowcount
            removed += conn.execute("DELETE FROM events WHERE at < ?", (before.timestamp(),)).rowcount
        return removed

    def forget_gauges(self, collector: str) -> None:
        """Drop a collector's gauges (it was disabled or removed: its last values are no longer true).

        Raises:
            DiskFull, StateLost, StateError: the gauges stay.
        """
        with self._lock:
            with self._transaction(f"cannot forget the gauges of {collector}") as conn:
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
            snap = Snapshot(
                series=MappingProxyType({m: MappingProxyType(v) for m, v in series.items()}),
                runs=MappingProxyType(dict(self._mirror.runs)),
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
        with self._lock:
            if prefix:
                # Every key with the prefix sorts in [prefix, prefix + U+10FFFF).
                rows = self._conn.execute(
                    "SELECT key, value FROM checkpoints WHERE collector = ? AND key >= ? AND key < ? ORDER BY key",
                    (collector, prefix, prefix + "\U0010ffff"),
                ).fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT key, value FROM checkpoints WHERE collector = ? ORDER BY key", (collector,)
                ).fetchall()
        for key, value in rows:
            yield key, json.loads(value)

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


def _leftovers(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]


def _has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # cannot tell: opening it will say what is wrong


def _read_marker(marker: Path) -> dict[str, Any] | None:
    """The marker's fields; a marker that cannot be read or parsed still says a ledger existed."""
    try:
        text = marker.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return {"host_id": None, "created_at": None, "error": str(exc)}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"host_id": None, "created_at": None, "error": "not a marker"}


def _evidence_of_a_ledger(path: Path, witnesses: Iterable[Path]) -> list[str]:
    """What shows that a ledger existed at ``path`` (which is missing or empty now)."""
    found = []
    marker = _read_marker(_marker_path(path))
    if marker is not None:
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


def _why_lost(path: Path, identity: tuple[int, int]) -> str | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"{path} was deleted (or its directory was) while the agent had it open"
    except OSError:
        return None  # cannot tell (a permission changed under us): the next write will say more
    if (st.st_dev, st.st_ino) != identity:
        return f"{path} was replaced by another file while the agent had it open"
    if st.st_size == 0:
        return f"{path} was emptied while the agent had it open"
    return None


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
