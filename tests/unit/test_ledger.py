"""The ledger: one transaction per batch, state that survives restarts, refusal of bad input."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from normagent.errors import DiskFull, StateError, StateLost
from normagent.ledger import HEALTH_WRITE_SECONDS, SCHEMA_VERSION, WAL_SIZE_LIMIT, Ledger, MemoryCheckpoints, _state_error
from normagent.model import Batch, Checkpoint, Count, Event, Gauge, MetricSpec, Period, Rollup, RollupRows, RunOutcome
from normagent.testing import FakeClock
from tests.support.tools import skip_for_host
from tests.support.disks import fill, limit_pages, power_cut, small_filesystem, strace_usable, sync_points, traced

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


def test_an_observation_that_is_no_number_is_refused_where_it_is_made(declared: Ledger) -> None:
    """A parser or a device's answer made a NaN (``float("nan")`` reads the text "nan"): SQLite
    stores NaN as NULL, and the ledger refused the whole batch with a raw IntegrityError (NOT NULL
    constraint failed), at every run; an infinite count held its counter at inf for good. Now the
    observation is refused where the plugin makes it, saying which metric and why."""
    nan, inf = float("nan"), float("inf")
    for make in (lambda: Count(FAILURES.name, {"reason": "r"}, nan), lambda: Count(FAILURES.name, {"reason": "r"}, inf),
                 lambda: Gauge(FREE.name, nan, {"mountpoint": "/"})):
        with pytest.raises(ValueError, match=r"(counter|gauge) normagent_test_\w+ must"):
            make()
    declared.commit("c", Batch([Gauge(FREE.name, inf, {"mountpoint": "/"})]))  # an infinite gauge is a value Prometheus shows


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


def test_a_new_ledger_takes_the_host_id_given_and_an_existing_one_keeps_its_own(tmp_path: Path, clock: FakeClock) -> None:
    """``normagent demo`` names its ledger after its seed, so two demos write the same report."""
    path = tmp_path / "ledger.db"
    with Ledger.open(path, clock=clock, host_id="demo0123") as first:
        assert first.host_id == "demo0123"
    with Ledger.open(path, clock=clock, host_id="other") as again:
        assert again.host_id == "demo0123"
    with Ledger.open(tmp_path / "random.db", clock=clock) as random_one:
        assert len(random_one.host_id) == 32 and random_one.host_id != "demo0123"


def test_gauges_and_health_survive_a_restart_and_show_in_the_first_snapshot(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path, clock=clock, metrics=[FAILURES, FREE]) as first:
        first.commit("sys", Batch([Gauge(FREE.name, 7, {"mountpoint": "/"}), Count(FAILURES.name, {"reason": "r"}, 2)]))
        first.record_run(RunOutcome("sys", T0, 0.5, False, reason="disk_full"))

    with Ledger.open(path, clock=clock, metrics=[FAILURES, FREE]) as second:
        snap = second.snapshot()  # before any commit of this process
        assert snap.values(FREE.name) == {(("mountpoint", "/"),): 7.0}
        assert snap.values(FAILURES.name) == {(("reason", "r"),): 2.0}
        assert (snap.runs["sys"].up, snap.runs["sys"].reason, snap.runs["sys"].failures) == (False, "disk_full", 1)
        second.commit("other", Batch([Gauge(FREE.name, 1, {"mountpoint": "/srv"})]))
        second.commit("sys", Batch([Gauge(FREE.name, 8, {"mountpoint": "/"})]))  # still owned by "sys"
        assert dict(second.snapshot().values(FREE.name)) == {(("mountpoint", "/"),): 8.0, (("mountpoint", "/srv"),): 1.0}


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


def test_a_scan_reads_page_by_page_and_keys_come_without_values(declared: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A collector with 300,000 checkpoints (the EDI folder index) scans a prefix without the
    ledger fetching every row at once; what a scan returns is what it returned before."""
    keys = [f"f:/srv/{i:04d}" for i in range(23)] + ["g", "f:\U0010ffffx"]
    declared.commit("c", Batch(checkpoints=[Checkpoint(k, [i]) for i, k in enumerate(keys)]))
    declared.commit("other", Batch(checkpoints=[Checkpoint("f:/srv/0001", 0)]))
    monkeypatch.setattr(Ledger, "SCAN_PAGE", 4)
    fetched: list[int] = []
    pages = declared._checkpoint_pages

    def counted(*args: Any) -> Any:
        for row in pages(*args):
            fetched.append(1)
            yield row

    state = declared.checkpoints("c")
    assert list(state.scan("f:/srv/")) == [(k, [i]) for i, k in enumerate(keys[:23])]
    assert list(state.keys("f:")) == sorted(keys[:23] + ["f:\U0010ffffx"])
    assert list(state.keys()) == sorted(keys)
    assert [k for k, _ in state.scan()] == sorted(keys)
    assert MemoryCheckpoints(dict(state.scan())).keys("f:/srv/002") == ["f:/srv/0020", "f:/srv/0021", "f:/srv/0022"]
    rows = iter(state.keys("f:/srv/"))
    assert [next(rows) for _ in range(5)] == keys[:5]  # a page at a time: the first rows before the last page
    monkeypatch.setattr(declared, "_checkpoint_pages", counted)
    assert next(iter(declared.checkpoints("c").scan("f:/srv/"))) == ("f:/srv/0000", [0])
    assert len(fetched) == 1


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


def test_rollups_of_one_batch_add_up_and_widen_their_interval(declared: Ledger) -> None:
    day = date(2026, 11, 23)
    declared.commit("a", Batch([
        Rollup("failed_by_account", day, "p1", 2, T0, T0 + timedelta(minutes=5)),
        Rollup("failed_by_account", day, "p1", 1, T0 - timedelta(minutes=1), T0 + timedelta(minutes=3)),
        Rollup("failed_by_account", day, "p1", 3, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)),
    ]))

    [row] = declared.rollups("failed_by_account", Period(T0.replace(hour=0), T0.replace(hour=0) + timedelta(days=1)))
    assert (row.value, row.first_seen, row.last_seen) == (6, T0 - timedelta(minutes=1), T0 + timedelta(minutes=5))


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


def test_prune_keeps_the_hour_at_its_boundary(tmp_path: Path) -> None:
    clock = FakeClock(T0)  # 07:00 sharp
    with Ledger.open(tmp_path / "l.db", clock=clock, metrics=[FAILURES]) as ledger:
        ledger.commit("c", Batch([Count(FAILURES.name, {"reason": "a"}, 1)]))
        clock.advance(3600)
        ledger.commit("c", Batch([Count(FAILURES.name, {"reason": "a"}, 2)]))

        assert ledger.prune(T0 + timedelta(hours=1)) == 1

        assert ledger.increase(FAILURES.name, Period(T0 - timedelta(days=1), T0 + timedelta(days=1))) == {(): 2}


def test_increase_counts_the_hour_a_period_ends_in(tmp_path: Path) -> None:
    clock = FakeClock(T0 + timedelta(minutes=10))
    with Ledger.open(tmp_path / "l.db", clock=clock, metrics=[FAILURES]) as ledger:
        ledger.commit("c", Batch([Count(FAILURES.name, {"reason": "a"}, 4)]))

        assert ledger.increase(FAILURES.name, Period(T0 - timedelta(hours=1), T0 + timedelta(minutes=30))) == {(): 4}


@pytest.mark.parametrize(
    ("end", "days"),
    [(datetime(2026, 11, 24, tzinfo=timezone.utc), ["2026-11-23"]), (datetime(2026, 11, 24, 0, 0, 1, tzinfo=timezone.utc), ["2026-11-23", "2026-11-24"])],
    ids=["ending-at-midnight", "one-second-later"],
)
def test_rollups_of_a_period_include_the_day_it_ends_in_unless_it_ends_at_midnight(
    declared: Ledger, end: datetime, days: list[str]
) -> None:
    for day in (date(2026, 11, 22), date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)):
        declared.commit("a", Batch([Rollup("r", day, "k")]))

    rows = declared.rollups("r", Period(datetime(2026, 11, 23, tzinfo=timezone.utc), end))

    assert [row.day.isoformat() for row in rows] == days


def test_labels_are_stored_in_one_stable_form(tmp_path: Path, clock: FakeClock) -> None:
    """The stored form is the key of a series' row: if it changed between versions, an upgraded
    agent would start a second row for every series with a non-ASCII label."""
    path = tmp_path / "ledger.db"
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as ledger:
        ledger.commit("c", Batch([Count(FAILURES.name, {"reason": "blåbær"})]))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT labels FROM counters").fetchall() == [('{"reason":"blåbær"}',)]


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
    assert state.get("a:1") == 1
    state.apply([Checkpoint("a:2", 2), Checkpoint("a:1", None), Checkpoint("b", 3)])
    assert list(state.scan("a:")) == [("a:2", 2)]
    assert state.get("b") == 3


# --------------------------------------------------------------------------------------------
# the one transaction, pinned: a failure inside it, a power cut after it


def stored(path: Path) -> tuple[float, float, object]:
    """(the counter, the sum of its hourly buckets, the checkpoint) as on disk, past the ledger's memory."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        counter = conn.execute("SELECT coalesce(sum(value), 0) FROM counters WHERE metric = ?", (FAILURES.name,)).fetchone()[0]
        hours = conn.execute("SELECT coalesce(sum(value), 0) FROM counter_hours WHERE metric = ?", (FAILURES.name,)).fetchone()[0]
        row = conn.execute("SELECT value FROM checkpoints WHERE collector = 'c' AND key = 'file:a'").fetchone()
    return counter, hours, None if row is None else json.loads(row[0])


def batch(count: float, offset: int) -> Batch:
    return Batch([Count(FAILURES.name, {"reason": "r"}, count)], [Checkpoint("file:a", offset)])


@pytest.mark.parametrize("how", ["ABORT", "FAIL", "ROLLBACK"])
def test_a_failure_inside_the_transaction_stores_nothing_of_the_batch(tmp_path: Path, clock: FakeClock, how: str) -> None:
    """The counts are written, then storing the checkpoint fails (a trigger, as SQLite itself would
    fail): neither may be on disk. ABORT and FAIL leave the transaction open for the ledger to roll
    back; ROLLBACK ends it inside SQLite, and the real error must still be the one raised."""
    path = tmp_path / "ledger.db"
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as ledger:
        ledger.commit("c", batch(1, 10))
        with contextlib.closing(sqlite3.connect(path)) as other:
            other.execute(f"CREATE TRIGGER fail BEFORE INSERT ON checkpoints BEGIN SELECT RAISE({how}, 'injected'); END")

        with pytest.raises(sqlite3.IntegrityError, match="injected"):
            ledger.commit("c", batch(5, 20))

        assert stored(path) == (1, 1, 10)
        assert ledger.counter_value(FAILURES.name, {"reason": "r"}) == 1
        with contextlib.closing(sqlite3.connect(path)) as other:
            other.execute("DROP TRIGGER fail")
        ledger.commit("c", batch(5, 20))  # no transaction was left open
        assert stored(path) == (6, 6, 20)
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as again:
        assert again.counter_value(FAILURES.name, {"reason": "r"}) == 6


def test_a_full_disk_is_said_plainly_and_stores_nothing_until_there_is_room(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as ledger:
        ledger.commit("c", batch(1, 10))
        limit_pages(ledger)
        big = Batch(
            [Count(FAILURES.name, {"reason": f"r{i}"}) for i in range(300)] + [Count(FAILURES.name, {"reason": "r"}, 5)],
            [Checkpoint("file:a", 20)],
        )

        with pytest.raises(DiskFull) as err:
            ledger.commit("c", big)

        assert "the state filesystem is full" in str(err.value) and "no transaction" not in str(err.value)
        assert err.value.reason == "disk_full"
        assert stored(path) == (1, 1, 10)
        limit_pages(ledger, extra=1000)  # room again
        ledger.commit("c", big)
        assert stored(path) == (306, 306, 20)


def test_the_wal_stays_small_however_many_commits(tmp_path: Path, clock: FakeClock) -> None:
    """SQLite's defaults let the WAL grow to 4 MiB and stay there, which alone fills a small state filesystem."""
    path = tmp_path / "ledger.db"
    wal = path.with_name("ledger.db-wal")
    largest = 0
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as ledger:
        for i in range(400):
            pad = {"offset": i, "pad": "x" * 300}
            ledger.commit("c", Batch([Count(FAILURES.name, {"reason": f"r{i % 50}"})], [Checkpoint(f"file:{i % 40}", pad)]))
            largest = max(largest, wal.stat().st_size)
    assert largest <= WAL_SIZE_LIMIT + 64 * 1024


POWER_CUT_CHILD = """
import os, sys
from pathlib import Path
from normagent.ledger import Ledger
from normagent.model import Batch, Checkpoint, Count, MetricSpec
spec = MetricSpec("normagent_test_failures_total", "counter", "Test failures.", ("reason",))
ledger = Ledger.open(Path(sys.argv[1]), metrics=[spec])
ledger.commit("c", Batch([Count(spec.name, {"reason": "r"}, 7)], [Checkpoint("file:a", 70)]))
print("committed", flush=True)
os._exit(0)  # the power goes now: no close, no checkpoint, nothing more is written
"""


def test_a_commit_that_returned_survives_a_power_cut_and_none_is_half_stored(tmp_path: Path) -> None:
    """A child commits one batch and the power goes as ``commit`` returns. Replayed from strace's
    record of its writes, the files keep only what fsync/fdatasync made durable: the batch must be
    there (synchronous=FULL; OFF or NORMAL lose it), and at no earlier sync point may its counts be
    stored without its checkpoint, or the other way round (one transaction)."""
    why = strace_usable()
    if why:
        skip_for_host(f"{why}: the power-cut model replays strace's record of the child's writes")
    path = tmp_path / "ledger.db"
    Ledger.open(path, metrics=[FAILURES]).close()  # created and closed: all of it durable
    files = [path, path.with_name("ledger.db-wal")]
    before = {f: f.read_bytes() if f.exists() else None for f in files}
    trace = tmp_path / "trace"

    done = traced([sys.executable, "-c", POWER_CUT_CHILD, str(path)], trace, timeout=120)

    assert done.returncode == 0 and "committed" in done.stdout, done.stderr[-2000:]
    states = []
    for upto in [*sync_points(trace), None]:
        after = power_cut(trace, before, upto)
        image = tmp_path / f"cut-{upto}"
        image.mkdir()
        for f, data in after.items():
            if data is not None:
                (image / f.name).write_bytes(data)
        states.append(stored(image / path.name))
    assert states[-1] == (7, 7, 70), "a commit that returned was lost by the power cut"
    assert set(states) <= {(0, 0, None), (7, 7, 70)}, f"half a batch was durable at some moment: {states}"


def test_a_ledger_lives_on_a_512_kib_filesystem_and_survives_it_filling_up(tmp_path: Path, clock: FakeClock) -> None:
    """With SQLite's default WAL the filesystem is full after a few dozen commits and stays so."""
    with small_filesystem(tmp_path / "small", "512k") as small:
        path = small / "ledger.db"
        with Ledger.open(path, clock=clock, metrics=[FAILURES]) as ledger:
            for i in range(1500):
                ledger.commit("c", batch(1, i))
            ballast = fill(small)
            stored_ok, failure = 0, None
            for i in range(1500, 3000):
                try:
                    ledger.commit("c", Batch([Count(FAILURES.name, {"reason": f"new{i}"})], [Checkpoint("file:a", i)]))
                except DiskFull as exc:
                    failure = exc
                    break
                stored_ok += 1
            assert failure is not None, "the ballast did not fill the filesystem"
            assert "the state filesystem is full" in str(failure) and "no transaction" not in str(failure)
            assert ledger.counter_total(FAILURES.name) == 1500 + stored_ok

            ballast.remove()
            ledger.commit("c", batch(1, 5000))
            assert stored(path) == (1501 + stored_ok, 1501 + stored_ok, 5000)
        with Ledger.open(path, clock=clock, metrics=[FAILURES]) as again:
            assert again.counter_total(FAILURES.name) == 1501 + stored_ok


def test_a_new_ledger_on_a_full_filesystem_says_disk_full_not_move_it_aside(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "small", "512k") as small:
        ballast = fill(small)

        with pytest.raises(DiskFull) as err:
            Ledger.open(small / "state" / "ledger.db")

        assert "the state filesystem is full" in str(err.value) and "move it aside" not in str(err.value)
        ballast.remove()
        with Ledger.open(small / "state" / "ledger.db") as ledger:  # what the failed start left is no obstacle
            assert ledger.created


def test_an_existing_ledger_on_a_full_filesystem_says_disk_full_though_sqlite_says_io_error(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Reopening needs room for the -shm file; SQLite reports its ENOSPC as SQLITE_IOERR_SHMSIZE."""
    with small_filesystem(tmp_path / "small", "512k") as small:
        path = small / "ledger.db"
        make_ledger(path, clock)
        ballast = fill(small)

        with pytest.raises(DiskFull, match="the state filesystem is full"):
            Ledger.open(path, clock=clock)

        ballast.remove()
        with Ledger.open(path, clock=clock, metrics=[FAILURES]) as ledger:
            assert ledger.counter_value(FAILURES.name, {"reason": "r"}) == 3


def sqlite_error(message: str, code: int) -> sqlite3.Error:
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    exc.sqlite_errorname = "SQLITE_" + message.upper().replace(" ", "_")  # type: ignore[attr-defined]
    return exc


def test_what_counts_as_a_full_disk(tmp_path: Path) -> None:
    """SQLITE_FULL and ENOSPC always; an I/O error only where the filesystem has (almost) no room."""
    path = tmp_path / "ledger.db"
    roomy = [
        _state_error(sqlite_error("database or disk is full", sqlite3.SQLITE_FULL), path, "cannot store"),
        _state_error(OSError(errno.ENOSPC, "No space left on device"), path, "cannot store"),
        _state_error(sqlite_error("disk I/O error", sqlite3.SQLITE_IOERR | (3 << 8)), path, "cannot store"),
        _state_error(OSError(errno.EACCES, "Permission denied"), path, "cannot store"),
    ]
    assert [type(e) for e in roomy] == [DiskFull, DiskFull, StateError, StateError]
    assert re.search(r"the state filesystem is full \([\d,]+ bytes free\)", str(roomy[0]))
    assert str(roomy[2]).endswith("cannot store: disk I/O error (SQLITE_DISK_I/O_ERROR)")
    assert str(roomy[3]).endswith("cannot store: [Errno 13] Permission denied")
    with small_filesystem(tmp_path / "small", "512k") as small:
        fill(small)
        full = _state_error(sqlite_error("disk I/O error", sqlite3.SQLITE_IOERR | (3 << 8)), small / "ledger.db", "cannot store")
        assert isinstance(full, DiskFull) and "(0 bytes free)" in str(full)


# --------------------------------------------------------------------------------------------
# state that is gone is never replaced silently


def make_ledger(path: Path, clock: FakeClock) -> str:
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as ledger:
        ledger.commit("c", batch(3, 30))
        return ledger.host_id


@pytest.mark.parametrize(
    "lose",
    [
        lambda p: p.unlink(),
        lambda p: p.write_bytes(b""),
        lambda p: (p.unlink(), p.with_suffix(".id").unlink(), (p.parent / "pseudonym.key").write_bytes(b"k")),
        lambda p: (p.unlink(), p.with_suffix(".id").unlink(), p.with_name("ledger.db-wal").write_bytes(b"w" * 100)),
    ],
    ids=["deleted", "emptied", "deleted-with-its-marker-but-the-key-is-there", "deleted-with-its-marker-but-its-wal-is-there"],
)
def test_a_ledger_missing_where_one_existed_is_refused_not_replaced(tmp_path: Path, clock: FakeClock, lose: Any) -> None:
    path = tmp_path / "state" / "ledger.db"
    make_ledger(path, clock)
    lose(path)
    size = path.stat().st_size if path.exists() else None

    with pytest.raises(StateLost) as err:
        Ledger.open(path, clock=clock, witnesses=[path.parent / "pseudonym.key"])

    assert "a ledger existed here" in str(err.value) and "--new-state" in str(err.value)
    assert (path.stat().st_size if path.exists() else None) == size  # no new ledger was made


def test_new_state_starts_afresh_where_the_ledger_was_lost_but_not_over_an_intact_one(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "state" / "ledger.db"
    old = make_ledger(path, clock)
    with pytest.raises(StateError, match="intact ledger"):
        Ledger.open(path, clock=clock, new_state=True)
    path.with_suffix(".id").unlink()  # a ledger of a normagent before markers
    with pytest.raises(StateError, match="intact ledger"):
        Ledger.open(path, clock=clock, new_state=True)
    assert not path.with_suffix(".id").exists()
    path.unlink()
    path.with_name("ledger.db-wal").write_bytes(b"w" * 100)  # must not be replayed into the new ledger

    with Ledger.open(path, clock=clock, metrics=[FAILURES], new_state=True) as fresh:
        assert fresh.created and fresh.host_id != old
        assert fresh.counter_value(FAILURES.name, {"reason": "r"}) == 0
    assert path.with_name("ledger.db-wal.lost").read_bytes() == b"w" * 100
    with Ledger.open(path, clock=clock) as again:  # the new ledger is the one its marker names now
        assert again.host_id == fresh.host_id


def test_a_ledger_that_is_not_the_one_created_here_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "state" / "ledger.db"
    make_ledger(path, clock)
    make_ledger(tmp_path / "other" / "ledger.db", clock)
    shutil.copyfile(tmp_path / "other" / "ledger.db", path)

    with pytest.raises(StateLost, match="not the ledger that was created here"):
        Ledger.open(path, clock=clock)


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda m: (m.unlink(), os.mkfifo(m, 0o600)), "is a FIFO (named pipe), not a regular file"),
        (lambda m: (m.unlink(), m.symlink_to("/dev/zero")), "is a character device, not a regular file"),
        (lambda m: m.write_bytes(b'{"host_id": "\xff\xfe"}'), "not a marker normagent wrote"),
        (lambda m: m.write_text("[" * 60_000), "not a marker normagent wrote"),
    ],
    ids=["fifo", "dev-zero", "not-utf8", "nested-past-the-parser"],
)
def test_a_marker_that_cannot_be_used_is_a_clear_refusal_without_blocking(
    tmp_path: Path, clock: FakeClock, damage: Any, said: str
) -> None:
    """A FIFO as ledger.id hung every start (and `deviations`, `collect --once`) in open() before
    a word was logged; non-UTF-8 or deeply nested bytes there ended the start in a traceback."""
    path = tmp_path / "state" / "ledger.db"
    make_ledger(path, clock)
    marker = path.with_suffix(".id")
    damage(marker)

    with pytest.raises(StateError) as err:
        Ledger.open(path, clock=clock)

    assert str(err.value).startswith(f"{marker}: the ledger's marker cannot be used ({said})")
    assert "remove the marker" in str(err.value)
    path.unlink()  # and where the ledger is gone too, the damaged marker is still evidence of it
    with pytest.raises(StateLost, match=re.escape(f"ledger.id exists ({said})")):
        Ledger.open(path, clock=clock)


@pytest.mark.parametrize(
    ("put", "name", "said"),
    [
        (lambda p: os.mkfifo(p), "ledger.db", "is a FIFO (named pipe), not a regular file"),
        (lambda p: p.symlink_to("/dev/zero"), "ledger.db", "is a character device, not a regular file"),
        (lambda p: os.mkfifo(p), "ledger.db-wal", "is a FIFO (named pipe), not a regular file"),
    ],
    ids=["fifo", "dev-zero", "fifo-as-wal"],
)
def test_a_ledger_or_wal_that_is_no_file_is_named_as_what_it_is(
    tmp_path: Path, clock: FakeClock, put: Any, name: str, said: str
) -> None:
    """Before: SQLite opened whatever was there: a FIFO was a "disk I/O error", a link to /dev/zero
    "was emptied while the agent had it open", and with a FIFO as the -wal the agent ran on,
    every commit failing."""
    path = tmp_path / "state" / "ledger.db"
    path.parent.mkdir()
    put(path.with_name(name))

    for opening in (lambda: Ledger.open(path, clock=clock), lambda: Ledger.open_readonly(path)):
        with pytest.raises(StateError) as err:
            opening()
        assert str(err.value) == f"{path.with_name(name)}: {said}; move it aside"


@pytest.mark.parametrize(
    ("put", "said"),
    [
        (lambda p: p.write_text("x"), "is a file, not a directory; the state directory must be one"),
        (lambda p: os.mkfifo(p), "is a FIFO (named pipe), not a directory; the state directory must be one"),
        (lambda p: p.symlink_to(p.name), "the state directory cannot be used: Too many levels of symbolic links"),
    ],
    ids=["file", "fifo", "link-loop"],
)
def test_a_state_directory_that_is_no_directory_is_named_as_what_it_is(tmp_path: Path, clock: FakeClock, put: Any, said: str) -> None:
    """Before: "cannot open the ledger: [Errno 17] File exists", whatever was there."""
    put(tmp_path / "state")
    with pytest.raises(StateError) as err:
        Ledger.open(tmp_path / "state" / "ledger.db", clock=clock)
    assert str(err.value) == f"{tmp_path / 'state'}: {said}"


def test_rollup_and_event_keys_holding_a_file_name_s_undecodable_bytes_are_stored(declared: Ledger) -> None:
    """Before: SQLite refused the lone surrogates (PEP 383) in such a key, and with them the whole
    batch, on every run: one file named in Latin-1 under a watched pattern blinded changes.files."""
    name = os.fsdecode(b"/etc/app.d/bl\xe5.conf")  # "blå" written in Latin-1
    day = T0.date()
    declared.commit("c", Batch(
        [Count(FAILURES.name, {"reason": "r"}, 1), Rollup("r", day, name), RollupRows("r", day, {name: 2.0}),
         Event("e", T0, name, {"subject": name})],
        [Checkpoint("k", 1)],
    ))

    assert [(r.key, r.value) for r in declared.rollups("r", Period(T0, T0 + timedelta(days=1)))] == [("/etc/app.d/bl\\udce5.conf", 3.0)]
    [event] = declared.events("e", Period(T0, T0 + timedelta(days=1)))
    assert (event.key, event.attrs) == ("/etc/app.d/bl\\udce5.conf", {"subject": name})
    assert declared.counter_value(FAILURES.name, {"reason": "r"}) == 1


def test_a_first_start_writes_the_marker_and_a_clean_directory_is_a_fresh_start(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "state" / "ledger.db"
    host_id = make_ledger(path, clock)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    marker = json.loads(path.with_suffix(".id").read_text())
    assert marker["host_id"] == host_id and "--new-state" in marker["note"]
    assert marker["created_at"] == clock.now().isoformat()
    shutil.rmtree(path.parent)  # removing the whole directory is a fresh start on purpose

    with Ledger.open(path, clock=clock) as fresh:
        assert fresh.created and fresh.host_id != host_id


def test_a_ledger_deleted_while_open_stores_nothing_more_and_is_rescued_whole(tmp_path: Path, clock: FakeClock) -> None:
    """SQLite would go on committing into the deleted file, lost at exit; the next start would begin anew."""
    path = tmp_path / "state" / "ledger.db"
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as ledger:
        ledger.commit("c", batch(3, 30))
        assert ledger.lost() is None
        shutil.rmtree(path.parent)

        assert "was deleted" in (ledger.lost() or "")
        with pytest.raises(StateLost):
            ledger.commit("c", batch(1, 31))
        ledger.record_run(RunOutcome("c", T0, 0.1, False, reason="state_lost"))  # health is still exported
        assert ledger.snapshot().runs["c"].reason == "state_lost"

        assert ledger.rescue() == path
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.with_suffix(".id").read_text())["host_id"] == ledger.host_id
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as back:
        assert (back.counter_value(FAILURES.name, {"reason": "r"}), back.checkpoints("c").get("file:a")) == (3, 30)
        assert back.host_id == ledger.host_id


@pytest.mark.parametrize(
    ("lose", "said"),
    [
        (lambda p: p.unlink(), "was deleted"),
        (lambda p: (p.unlink(), p.write_bytes(b"x")), "was replaced by another file"),
        (lambda p: os.truncate(p, 0), "was emptied"),
        (lambda p: os.truncate(p, 8192), r"was cut short \(8192 bytes, after \d+\)"),
    ],
    ids=["deleted", "replaced", "emptied", "cut-short"],
)
def test_a_ledger_lost_while_open_is_noticed_before_the_next_commit(tmp_path: Path, clock: FakeClock, lose: Any, said: str) -> None:
    path = tmp_path / "state" / "ledger.db"
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as ledger:
        ledger.commit("c", batch(3, 30))
        ledger._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself
        assert path.stat().st_size > 8192
        ledger.commit("c", batch(1, 31))  # its size is seen before a write
        lose(path)

        with pytest.raises(StateLost, match=said):
            ledger.commit("c", batch(1, 32))


def test_a_ledger_that_grows_is_not_taken_for_one_cut_short(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "state" / "ledger.db"
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as ledger:
        sizes = set()
        for n in range(1, 400):
            ledger.commit("c", Batch([Count(FAILURES.name, {"reason": f"r{n}"}, 1)], [Checkpoint(f"file:{n}", n)]))
            if n % 50 == 0:
                ledger._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                sizes.add(path.stat().st_size)
        assert len(sizes) > 1 and ledger.lost() is None


def test_a_rescue_never_overwrites_a_file_that_took_the_ledgers_place(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "state" / "ledger.db"
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as ledger:
        ledger.commit("c", batch(3, 30))
        path.unlink()
        path.write_bytes(b"someone else's file")

        where = ledger.rescue()

    assert "replaced" in (ledger.lost() or "")
    assert path.read_bytes() == b"someone else's file"
    assert re.fullmatch(r"ledger\.db\.rescued-\d{8}T\d{6}Z", where.name) and stored(where) == (3, 3, 30)


def test_a_rescue_sets_the_lost_ledgers_wal_aside(tmp_path: Path, clock: FakeClock) -> None:
    """Only ledger.db was deleted: its -wal is still there, and must not be replayed into the copy."""
    path = tmp_path / "state" / "ledger.db"
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as ledger:
        ledger.commit("c", batch(3, 30))
        path.unlink()

        assert ledger.rescue() == path

    assert path.with_name("ledger.db-wal.lost").exists()
    with Ledger.open(path, clock=clock, metrics=[FAILURES]) as back:
        assert back.counter_value(FAILURES.name, {"reason": "r"}) == 3


# ------------------------------------------------------------------------------------------------
# the report's history (schema 3): gauges at a time, runs per hour, read-only opening


def test_gauge_at_a_past_time_is_the_value_it_had_then(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    with Ledger.open(tmp_path / "l.db", clock=clock, metrics=[FREE]) as ledger:
        ledger.commit("fs", Batch([Gauge(FREE.name, 100, {"mountpoint": "/"}), Gauge(FREE.name, 7, {"mountpoint": "/srv"})]))
        clock.advance(3600)
        ledger.commit("fs", Batch([Gauge(FREE.name, 100, {"mountpoint": "/"}), Gauge(FREE.name, 9, {"mountpoint": "/srv"})]))
        clock.advance(3600)
        ledger.commit("fs", Batch([Gauge(FREE.name, 80, {"mountpoint": "/"})]))  # /srv went away
        clock.advance(3600)
        by = ("mountpoint",)
        assert ledger.gauge(FREE.name, T0, by) == {}
        assert ledger.gauge(FREE.name, T0 + timedelta(hours=1), by) == {("/",): 100, ("/srv",): 7}
        assert ledger.gauge(FREE.name, T0 + timedelta(hours=2), by) == {("/",): 100, ("/srv",): 9}
        assert ledger.gauge(FREE.name, T0 + timedelta(hours=3), by) == {("/",): 80}
        assert ledger.gauge(FREE.name, T0 + timedelta(hours=3)) == {(): 80}
        # A value that did not change writes no history row.
        rows = ledger._conn.execute("SELECT count(*) FROM gauge_hours WHERE labels LIKE '%\"/\"%'").fetchone()[0]
        assert rows == 2


def test_forgotten_gauges_end_their_history(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    with Ledger.open(tmp_path / "l.db", clock=clock, metrics=[FREE]) as ledger:
        ledger.commit("fs", Batch([Gauge(FREE.name, 5, {"mountpoint": "/"})]))
        clock.advance(7200)
        ledger.forget_gauges("fs")
        clock.advance(3600)
        assert ledger.gauge(FREE.name, T0 + timedelta(hours=2)) == {(): 5}
        assert ledger.gauge(FREE.name, clock.now()) == {}


def test_runs_are_kept_per_hour_with_their_failures(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    with Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
        for minute, ok in ((0, True), (20, False), (40, True), (70, False)):
            ledger.record_run(RunOutcome("c", T0 + timedelta(minutes=minute), 0.1, ok))
        hours = ledger.run_hours(Period(T0, T0 + timedelta(hours=2)))
        h = int(T0.timestamp() // 3600)
        assert hours == {"c": {h: (3, 1), h + 1: (1, 1)}}
        assert ledger.has_data(Period(T0, T0 + timedelta(hours=1)))
        assert not ledger.has_data(Period(T0 + timedelta(hours=5), T0 + timedelta(hours=6)))


def test_prune_keeps_the_last_gauge_value_before_the_cut(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    with Ledger.open(tmp_path / "l.db", clock=clock, metrics=[FREE]) as ledger:
        for value in (1, 2, 3):
            ledger.commit("fs", Batch([Gauge(FREE.name, value, {"mountpoint": "/"})]))
            ledger.record_run(RunOutcome("fs", clock.now(), 0.1, True))
            clock.advance(86400)
        ledger.prune(T0 + timedelta(days=2))
        assert ledger.gauge(FREE.name, T0 + timedelta(days=2)) == {(): 2}  # set before the cut, still true at it
        assert ledger.gauge(FREE.name, T0 + timedelta(hours=1)) == {}  # the value before it is forgotten
        assert ledger.gauge(FREE.name, clock.now()) == {(): 3}
        assert ledger.run_hours(Period(T0, T0 + timedelta(days=2))) == {}


def test_open_readonly_changes_nothing_and_refuses_what_is_no_ledger(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with pytest.raises(StateError, match="no ledger here"):
        Ledger.open_readonly(path)
    assert not path.exists()
    path.write_bytes(b"not a database at all, only words" * 100)
    with pytest.raises(StateError, match="not a readable normagent ledger"):
        Ledger.open_readonly(path)
    path.unlink()
    with Ledger.open(path, clock=FakeClock(T0), metrics=[FAILURES]) as ledger:
        ledger.commit("c", Batch([Count(FAILURES.name, {"reason": "x"}, 2)]))
    before = path.read_bytes()
    with Ledger.open_readonly(path) as reader:
        assert reader.readonly and reader.schema_version == SCHEMA_VERSION
        assert reader.increase(FAILURES.name, Period(T0, T0 + timedelta(hours=1))) == {(): 2}
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._conn.execute("DELETE FROM counters")
    assert path.read_bytes() == before


@pytest.mark.parametrize("name", ["st#ate", "st?ate", "st%41te", "st%23ate"])
def test_open_readonly_reads_a_ledger_whose_path_holds_uri_characters_and_creates_nothing(tmp_path: Path, name: str) -> None:
    """SQLite's URI cut "st#ate/ledger.db" at the "#" (the mode with it): the report found "no
    schema", and SQLite had created an empty file "st" beside the state directory."""
    path = tmp_path / name / "ledger.db"
    path.parent.mkdir()
    with Ledger.open(path, clock=FakeClock(T0), metrics=[FAILURES]) as ledger:
        ledger.commit("c", Batch([Count(FAILURES.name, {"reason": "x"}, 2)]))
    with Ledger.open_readonly(path) as reader:
        assert reader.increase(FAILURES.name, Period(T0, T0 + timedelta(hours=1))) == {(): 2}
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_a_schema_2_ledger_migrates_with_its_gauges_as_first_history(tmp_path: Path) -> None:
    """An agent upgraded over a ledger of schema 2: the gauges it had become their history's first rows."""
    path = tmp_path / "l.db"
    with Ledger.open(path, clock=FakeClock(T0), metrics=[FREE]) as ledger:
        ledger.commit("fs", Batch([Gauge(FREE.name, 42, {"mountpoint": "/"})]))
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE run_hours; DROP TABLE gauge_hours; DELETE FROM meta WHERE key = 'history_since'; PRAGMA user_version = 2;")
    conn.close()
    with Ledger.open_readonly(path) as old:
        assert old.schema_version == 2
        assert old.gauge(FREE.name, T0 + timedelta(minutes=1)) == {(): 42}  # the current value, after its last write
        assert old.gauge(FREE.name, T0 - timedelta(hours=1)) == {}  # before it: unknown
        assert old.run_hours(Period(T0, T0 + timedelta(hours=1))) == {}
    later = T0 + timedelta(days=1)
    with Ledger.open(path, clock=FakeClock(later), metrics=[FREE]) as ledger:
        assert ledger.history_since == later.isoformat()
        assert ledger.gauge(FREE.name, T0 + timedelta(hours=1)) == {(): 42}


# ------------------------------------------------------------------------------------------------
# a batch that changes nothing costs no transaction (issue 15: idle CPU)


def idle_batch(offset: int = 120, free: float = 5.0) -> Batch:
    """What a log collector's run ends with on an idle host: its zero series, its lag, its position."""
    return Batch(
        [Count(FAILURES.name, {"reason": "bad_password"}, 0), Gauge(FREE.name, free, {"mountpoint": "/"})],
        [Checkpoint("file:a", {"offset": offset})],
    )


@contextlib.contextmanager
def commits_seen(ledger: Ledger) -> Iterator[Callable[[], int]]:
    """How many times another connection saw the database change (SQLite's ``data_version``)."""
    reader = sqlite3.connect(f"file:{ledger.path}?mode=ro", uri=True)
    try:
        yield lambda: int(reader.execute("PRAGMA data_version").fetchone()[0])
    finally:
        reader.close()


def hour_rows(ledger: Ledger) -> list[tuple[int, float]]:
    [(_, _, rows)] = ledger.counter_history(FAILURES.name)
    return rows


def test_a_batch_that_changes_nothing_writes_nothing_but_each_hour_still_gets_its_zero_row(declared: Ledger, clock: FakeClock) -> None:
    """The zero series and an unchanged gauge and position leave the ledger's file as it is; the
    first zero of a new hour is still written (a counted zero is not the same as no data)."""
    declared.commit("c", idle_batch())
    before = hour_rows(declared)
    with commits_seen(declared) as version:
        seen = version()

        for _ in range(3):
            declared.commit("c", idle_batch())

        assert version() == seen
        assert hour_rows(declared) == before and [value for _, value in before] == [0.0]

        clock.advance(3600)
        declared.commit("c", idle_batch())

        assert version() == seen + 1
    assert [value for _, value in hour_rows(declared)] == [0.0, 0.0]


@pytest.mark.parametrize(
    "changed",
    [
        idle_batch(offset=121),
        idle_batch(free=6.0),
        Batch([Count(FAILURES.name, {"reason": "bad_password"}, 1)], [Checkpoint("file:a", {"offset": 120})]),
        Batch([Gauge(FREE.name, 5.0, {"mountpoint": "/var"})], [Checkpoint("file:a", {"offset": 120})]),  # "/" gone, "/var" new
        Batch([], [Checkpoint("file:a", None)]),
        Batch([], [Checkpoint("file:b", {"offset": 120})]),
        Batch([Count(FAILURES.name, {"reason": "new_reason"}, 0)]),
    ],
    ids=["position", "gauge", "count", "gauge-series-gone", "checkpoint-deleted", "new-checkpoint", "new-zero-series"],
)
def test_a_batch_that_changes_anything_is_stored_as_ever(declared: Ledger, changed: Batch) -> None:
    declared.commit("c", idle_batch())
    with commits_seen(declared) as version:
        seen = version()
        declared.commit("c", changed)
        assert version() == seen + 1
    expected = {cp.key: cp.value for cp in [*idle_batch().checkpoints, *changed.checkpoints]}
    assert {key: declared.checkpoints("c").get(key) for key in expected} == expected
    gauges = {(m, labels): value for (m, labels), (value, _) in declared._mirror.gauges.items()}
    want = {(g.metric, g.labels): g.value for g in changed.observations if isinstance(g, Gauge)}
    if want:
        assert gauges == want
    with Ledger.open(declared.path, metrics=[FAILURES, FREE]) as again:  # what is on disk, not the mirror
        assert again.counter_value(FAILURES.name, {"reason": "bad_password"}) == sum(
            c.value for c in changed.observations if isinstance(c, Count) and c.labels == (("reason", "bad_password"),)
        )
        assert {key: again.checkpoints("c").get(key) for key in expected} == expected


def test_a_batch_that_changes_nothing_still_says_the_ledger_was_lost(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "state" / "ledger.db"
    with Ledger.open(path, clock=clock, metrics=[FAILURES, FREE]) as ledger:
        ledger.commit("c", idle_batch())
        path.unlink()

        with pytest.raises(StateLost, match="was deleted"):
            ledger.commit("c", idle_batch())


@pytest.mark.parametrize("watched", [True, False])
def test_a_batch_that_changes_nothing_is_still_judged_by_the_rules_that_read_it(declared: Ledger, watched: bool) -> None:
    """A rule's ``for`` passes at the commit that shows its gauge still where it was: the rules
    that read what the batch speaks of are evaluated as ever; only a batch no rule reads is skipped."""
    judged: list[set[str] | None] = []

    def evaluator(view: Any, touched: set[str] | None, now: datetime) -> list[Any]:
        judged.append(touched)
        return []

    declared.use_rules(evaluator, watches=lambda touched: watched and FREE.name in touched)
    declared.commit("c", idle_batch())
    judged.clear()
    with commits_seen(declared) as version:
        seen = version()

        declared.commit("c", idle_batch())

        assert judged == ([{FAILURES.name, FREE.name}] if watched else [])
        assert version() == seen + watched  # judged in the batch's transaction, as before; else none


def stored_health(path: Path, collector: str) -> tuple[int, int, bool, int, int]:
    """What the file holds of a collector's health, as a crash would leave it: (runs, failures, up)
    of its row and the runs and failures of its run history."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        runs, failures, ok = conn.execute("SELECT runs, failures, ok FROM collector_runs WHERE collector = ?", (collector,)).fetchone()
        hour_runs, hour_failures = conn.execute(
            "SELECT sum(runs), sum(failures) FROM run_hours WHERE collector = ?", (collector,)
        ).fetchone()
    return runs, failures, bool(ok), hour_runs, hour_failures


def ran(ledger: Ledger, clock: FakeClock, ok: bool = True, reason: str = "") -> None:
    clock.advance(60)
    ledger.record_run(RunOutcome("c", clock.now(), 0.1, ok, reason=reason))


def test_a_run_that_ends_as_the_stored_one_waits_in_memory_and_every_change_of_health_is_stored_at_once(
    declared: Ledger, clock: FakeClock
) -> None:
    """Issue 15: a transaction per run was the idle agent's largest cost. A run whose health is
    what the file says waits (exported at once all the same); a change of health, up or down or
    another reason, is stored with its run; nothing waits longer than HEALTH_WRITE_SECONDS."""
    with commits_seen(declared) as version:
        seen = version()
        ran(declared, clock)  # the first: stored
        assert version() == seen + 1
        for _ in range(3):
            ran(declared, clock)
        assert version() == seen + 1
        assert declared.snapshot().runs["c"].runs == 4  # exported from memory
        assert stored_health(declared.path, "c") == (1, 0, True, 1, 0)

        ran(declared, clock, ok=False, reason="timeout")  # down: stored with what waited
        assert version() == seen + 2
        assert stored_health(declared.path, "c") == (5, 1, False, 5, 1)
        ran(declared, clock, ok=False, reason="timeout")
        assert version() == seen + 2
        ran(declared, clock, ok=False, reason="OSError")  # down for another reason: stored
        assert stored_health(declared.path, "c") == (7, 3, False, 7, 3)
        ran(declared, clock)  # up again: stored
        assert stored_health(declared.path, "c") == (8, 3, True, 8, 3)

        clock.advance(3600 - clock.now().timestamp() % 3600 - 30)
        seen = version()
        ran(declared, clock)  # the first of a new hour: stored (the report counts hours with runs)
        assert version() == seen + 1
        assert stored_health(declared.path, "c") == (9, 3, True, 9, 3)

        seen, waiting = version(), int(HEALTH_WRITE_SECONDS // 60)
        for _ in range(waiting):
            ran(declared, clock)
        assert version() == seen  # a minute apart: the last within HEALTH_WRITE_SECONDS of the first
        ran(declared, clock)
        assert version() == seen + 1
        assert stored_health(declared.path, "c") == (10 + waiting, 3, True, 10 + waiting, 3)


def test_health_that_waits_goes_with_the_next_batch_written_and_is_stored_at_close(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path, clock=clock, metrics=[FAILURES, FREE]) as ledger:
        for _ in range(3):
            ran(ledger, clock)
        assert stored_health(path, "c")[0] == 1
        with commits_seen(ledger) as version:
            seen = version()
            ledger.commit("other", Batch([Count(FAILURES.name, {"reason": "r"})]))
            assert version() == seen + 1  # one transaction for both
        assert stored_health(path, "c") == (3, 0, True, 3, 0)

        for _ in range(2):
            ran(ledger, clock)
        ledger.commit("other", Batch([Count(FAILURES.name, {"reason": "r"}, 0)]))  # changes nothing: no write
        assert stored_health(path, "c")[0] == 3
    assert stored_health(path, "c") == (5, 0, True, 5, 0)
    with Ledger.open(path, clock=clock, metrics=[FAILURES, FREE]) as again:
        assert again.snapshot().runs["c"].runs == 5
        ran(again, clock)  # as the stored row says: waits
        assert stored_health(path, "c")[0] == 5


def test_the_run_history_counts_runs_that_wait_in_memory(tmp_path: Path, clock: FakeClock) -> None:
    """The report's completeness read in the agent's own process (``normagent demo``, tests)."""
    clock.advance(T0.timestamp() - clock.now().timestamp() - 60)
    with Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
        ran(ledger, clock)  # stored
        for _ in range(70):
            ran(ledger, clock)  # waiting (each HEALTH_WRITE_SECONDS some are stored)
        h = int(T0.timestamp() // 3600)
        hours = ledger.run_hours(Period(T0 - timedelta(hours=1), T0 + timedelta(hours=3)))
        assert hours == {"c": {h: (60, 0), h + 1: (11, 0)}}
        assert ledger._unwritten.hours  # some of them are in memory only
        assert ledger.has_data(Period(T0 + timedelta(hours=1), T0 + timedelta(hours=2)))
        assert ledger.first_hour() == h


def test_shrinking_frees_the_page_cache_and_the_ledger_reads_on_as_before(ledger: Ledger) -> None:
    """``shrink_memory`` (the agent's idle give-back) lets SQLite free its cached pages; what the
    ledger holds reads the same afterwards, and writes go on."""
    import ctypes

    try:
        library = ctypes.CDLL("libsqlite3.so.0")  # the library the sqlite3 module runs on
        library.sqlite3_memory_used.restype = ctypes.c_int64
    except (OSError, AttributeError) as exc:
        skip_for_host(f"cannot ask libsqlite3 for its heap: {exc}")
    ledger.declare([FAILURES])
    for hour in range(200):
        ledger.commit("c", Batch([Count(FAILURES.name, {"reason": f"r{hour % 40}"}, 1 + hour)], [Checkpoint("c", {"at": hour})]))
    before = ledger.counter_value(FAILURES.name, {"reason": "r7"})
    cached = library.sqlite3_memory_used()

    ledger.shrink_memory()

    assert library.sqlite3_memory_used() < cached - 50_000  # pages freed, not just a few bytes
    assert ledger.counter_value(FAILURES.name, {"reason": "r7"}) == before
    ledger.commit("c", Batch([Count(FAILURES.name, {"reason": "r7"}, 1)]))
    assert ledger.counter_value(FAILURES.name, {"reason": "r7"}) == before + 1
