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

Must not import exposition, scheduler, agent, cli or plugins.
"""

from __future__ import annotations

import json
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
from normagent.errors import StateError
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

    # ---------------------------------------------------------------------------------------
    # opening and closing

    @classmethod
    def open(cls, path: Path, *, clock: Clock | None = None, metrics: Iterable[MetricSpec] = ()) -> Ledger:
        """Open (creating and migrating if needed) the ledger at ``path``.

        Raises:
            StateError: the directory cannot be created, the file is not a normagent ledger, is
                damaged, or was written by a newer normagent.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"{path}: cannot open the ledger: {exc}") from exc
        ledger = cls(conn, path, clock or SystemClock())
        try:
            ledger._prepare()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StateError(f"{path}: not a usable normagent ledger ({exc}); move it aside to start afresh") from exc
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
        conn.execute("PRAGMA foreign_keys=ON")
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise StateError(f"{self.path}: the ledger is damaged (PRAGMA quick_check failed)")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path}: ledger schema {version} was written by a newer normagent (this one knows {SCHEMA_VERSION})"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._migrate(target)
        row = conn.execute("SELECT value FROM meta WHERE key = 'host_id'").fetchone()
        self.host_id = row[0]
        self._load_mirror()

    def _migrate(self, target: int) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            if target == 1:
                conn.execute("INSERT INTO meta (key, value) VALUES ('host_id', ?)", (uuid.uuid4().hex,))
                conn.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?)", (self._clock.now().isoformat(),))
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

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
            sqlite3.Error: the database failed; nothing of the batch is stored.
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
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
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
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
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
        """Store how a collector's run ended (health, not observations: no checkpoint involved)."""
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
            self._conn.execute(
                "INSERT OR REPLACE INTO collector_runs "
                "(collector, started_at, duration, ok, reason, last_success, runs, failures) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (state.collector, started, state.duration, int(state.up), state.reason, state.last_success, state.runs, state.failures),
            )
            self._mirror.runs[outcome.collector] = state
            self._snapshot = None

    def prune(self, before: datetime) -> int:
        """Forget hourly counter buckets, rollups and events older than ``before``; counters stay."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                removed = conn.execute("DELETE FROM counter_hours WHERE hour < ?", (int(before.timestamp() // 3600),)).rowcount
                removed += conn.execute("DELETE FROM rollups WHERE day < ?", (before.date().isoformat(),)).rowcount
                removed += conn.execute("DELETE FROM events WHERE at < ?", (before.timestamp(),)).rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return removed

    def forget_gauges(self, collector: str) -> None:
        """Drop a collector's gauges (it was disabled or removed: its last values are no longer true)."""
        with self._lock:
            self._conn.execute("DELETE FROM gauges WHERE collector = ?", (collector,))
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
