"""The ledger: one transaction per batch, state that survives restarts, refusal of bad input."""

from __future__ import annotations

import sqlite3
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from normagent.errors import StateError
from normagent.ledger import SCHEMA_VERSION, Ledger, MemoryCheckpoints
from normagent.model import Batch, Checkpoint, Count, Event, Gauge, MetricSpec, Period, Rollup, RunOutcome
from normagent.testing import FakeClock

FAILURES = MetricSpec("normagent_test_failures_total", "counter", "Test failures.", ("reason",))
FREE = MetricSpec("normagent_test_free_bytes", "gauge", "Free bytes.", ("mountpoint",))
T0 = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)


@pytest.fixture
def declared(ledger: Ledger) -> Ledger:
    ledger.declare([FAILURES, FREE])
    return ledger


def test_commit_stores_observations_and_checkpoint_together(declared: Ledger) -> None:
    declared.commit("c", Batch([Count(FAILURES.name, {"reason": "bad_password"}, 3)], [Checkpoint("file:a", {"offset": 120})]))

    assert declared.counter_value(FAILURES.name, {"reason": "bad_password"}) == 3
    assert declared.checkpoints("c").get("file:a") == {"offset": 120}


@pytest.mark.parametrize(
    "bad",
    [
        Count("normagent_undeclared_total"),
        Count(FAILURES.name, {"wrong": "x"}),
        Gauge(FAILURES.name, 1, {"reason": "x"}),
        Event("e", T0, "k", {"not_json": object()}),  # type: ignore[dict-item]
    ],
    ids=["undeclared", "wrong-labels", "wrong-kind", "unserialisable-event"],
)
def test_a_bad_observation_stores_nothing_of_its_batch(declared: Ledger, bad: object) -> None:
    """The checkpoint must not advance past counts that were not stored (and vice versa)."""
    batch = Batch([Count(FAILURES.name, {"reason": "r"}, 5), bad], [Checkpoint("file:a", {"offset": 999})])  # type: ignore[list-item]

    with pytest.raises((ValueError, TypeError)):
        declared.commit("c", batch)

    assert declared.counter_value(FAILURES.name, {"reason": "r"}) == 0
    assert declared.checkpoints("c").get("file:a") is None


def test_counters_and_checkpoints_survive_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as first:
        first.commit("c", Batch([Count(FAILURES.name, {"reason": "r"}, 2)], [Checkpoint("k", [1, 2])]))
        host_id = first.host_id

    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as second:
        second.commit("c", Batch([Count(FAILURES.name, {"reason": "r"}, 1)]))
        assert second.counter_value(FAILURES.name, {"reason": "r"}) == 3
        assert second.checkpoints("c").get("k") == [1, 2]
        assert second.host_id == host_id
        assert second.snapshot().values(FAILURES.name) == {(("reason", "r"),): 3.0}


def test_gauges_of_a_batch_replace_that_collectors_series_of_the_metric(declared: Ledger) -> None:
    declared.commit("sys", Batch([Gauge(FREE.name, 1, {"mountpoint": "/"}), Gauge(FREE.name, 2, {"mountpoint": "/srv"})]))
    declared.commit("other", Batch([Gauge(FREE.name, 9, {"mountpoint": "/data"})]))

    declared.commit("sys", Batch([Gauge(FREE.name, 5, {"mountpoint": "/"})]))

    assert dict(declared.snapshot().values(FREE.name)) == {
        (("mountpoint", "/"),): 5.0,
        (("mountpoint", "/data"),): 9.0,
    }


def test_a_batch_without_a_metric_keeps_its_gauges(declared: Ledger) -> None:
    declared.commit("sys", Batch([Gauge(FREE.name, 1, {"mountpoint": "/"})]))
    declared.commit("sys", Batch([Count(FAILURES.name, {"reason": "r"})]))

    assert declared.snapshot().values(FREE.name) == {(("mountpoint", "/"),): 1.0}


def test_forget_gauges_drops_a_collectors_gauges(declared: Ledger) -> None:
    declared.commit("sys", Batch([Gauge(FREE.name, 1, {"mountpoint": "/"})]))
    declared.forget_gauges("sys")
    assert FREE.name not in declared.snapshot().series


def test_checkpoint_none_deletes_and_scan_is_by_prefix(declared: Ledger) -> None:
    declared.commit("c", Batch(checkpoints=[Checkpoint("m:1", 1), Checkpoint("m:2", 2), Checkpoint("f:1", "x")]))
    declared.commit("c", Batch(checkpoints=[Checkpoint("m:1", None)]))
    declared.commit("other", Batch(checkpoints=[Checkpoint("m:9", 9)]))

    assert list(declared.checkpoints("c").scan("m:")) == [("m:2", 2)]
    assert list(declared.checkpoints("c").scan()) == [("f:1", "x"), ("m:2", 2)]


def test_events_are_idempotent_per_collector_kind_and_key(declared: Ledger) -> None:
    event = Event("system.boot", T0, "boot-1", {"planned": False})
    declared.commit("sys", Batch([event]))
    declared.commit("sys", Batch([Event("system.boot", T0 + timedelta(hours=1), "boot-1", {"planned": True})]))

    period = Period(T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert declared.events("system.boot", period) == [event]


def test_rollups_add_up_and_widen_their_interval(declared: Ledger) -> None:
    day = date(2026, 11, 23)
    declared.commit("a", Batch([Rollup("failed_by_account", day, "p1", 2, T0, T0 + timedelta(minutes=5))]))
    declared.commit("a", Batch([Rollup("failed_by_account", day, "p1", 3, T0 - timedelta(minutes=1), T0 + timedelta(minutes=2))]))

    [row] = declared.rollups("failed_by_account", Period(T0.replace(hour=0), T0.replace(hour=0) + timedelta(days=1)))
    assert (row.value, row.first_seen, row.last_seen) == (5, T0 - timedelta(minutes=1), T0 + timedelta(minutes=5))


def test_increase_sums_hourly_buckets_inside_the_period(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    with Ledger.open(tmp_path / "l.db", clock=clock, metrics=[FAILURES]) as ledger:
        ledger.commit("c", Batch([Count(FAILURES.name, {"reason": "a"}, 1)]))
        clock.advance(3600)
        ledger.commit("c", Batch([Count(FAILURES.name, {"reason": "a"}, 2), Count(FAILURES.name, {"reason": "b"}, 4)]))
        clock.advance(3600)
        ledger.commit("c", Batch([Count(FAILURES.name, {"reason": "a"}, 8)]))

        second_hour = Period(T0 + timedelta(hours=1), T0 + timedelta(hours=2))
        assert ledger.increase(FAILURES.name, second_hour, by=("reason",)) == {("a",): 2, ("b",): 4}
        assert ledger.increase(FAILURES.name, Period(T0, T0 + timedelta(hours=3))) == {(): 15}


def test_prune_forgets_old_history_but_not_counters(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    with Ledger.open(tmp_path / "l.db", clock=clock, metrics=[FAILURES]) as ledger:
        ledger.commit("c", Batch([Count(FAILURES.name, {"reason": "a"}), Event("k", T0, "1"), Rollup("r", T0.date(), "x")]))
        clock.advance(30 * 86400)

        removed = ledger.prune(clock.now() - timedelta(days=10))

        assert removed == 3
        assert ledger.counter_value(FAILURES.name, {"reason": "a"}) == 1
        assert ledger.increase(FAILURES.name, Period(T0 - timedelta(days=1), clock.now())) == {}


def test_record_run_tracks_health_and_last_success(declared: Ledger) -> None:
    declared.record_run(RunOutcome("c", T0, 0.5, True))
    declared.record_run(RunOutcome("c", T0 + timedelta(minutes=1), 2.0, False, reason="timeout"))

    run = declared.snapshot().runs["c"]
    assert (run.up, run.duration, run.last_success, run.runs, run.failures) == (False, 2.0, T0.timestamp() + 0.5, 2, 1)


def test_snapshot_is_reused_until_something_changes(declared: Ledger) -> None:
    first = declared.snapshot()
    assert declared.snapshot() is first
    declared.commit("c", Batch([Count(FAILURES.name, {"reason": "r"})]))
    assert declared.snapshot() is not first
    assert FAILURES.name not in first.series  # an old snapshot never changes under a reader


def test_concurrent_commits_lose_nothing(declared: Ledger) -> None:
    def work(n: int) -> None:
        for i in range(200):
            declared.commit(f"c{n}", Batch([Count(FAILURES.name, {"reason": "r"})], [Checkpoint("pos", i)]))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert declared.counter_value(FAILURES.name, {"reason": "r"}) == 800
    assert [declared.checkpoints(f"c{n}").get("pos") for n in range(4)] == [199] * 4


def test_a_file_that_is_not_a_ledger_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="not a usable normagent ledger"):
        Ledger.open(path)


def test_a_ledger_from_a_newer_normagent_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StateError, match="newer normagent"):
        Ledger.open(path)


def test_an_uncreatable_state_directory_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match="cannot open the ledger"):
        Ledger.open(blocker / "sub" / "ledger.db")


def test_declaring_a_metric_twice_differently_is_refused(ledger: Ledger) -> None:
    ledger.declare([FAILURES])
    with pytest.raises(ValueError, match="declared twice"):
        ledger.declare([MetricSpec(FAILURES.name, "counter", "x", ("other",))])


def test_memory_checkpoints_apply_and_scan() -> None:
    state = MemoryCheckpoints({"a:1": 1})
    state.apply([Checkpoint("a:2", 2), Checkpoint("a:1", None), Checkpoint("b", 3)])
    assert list(state.scan("a:")) == [("a:2", 2)]
    assert state.get("b") == 3
