"""The scheduler: isolation from exceptions and hangs, no self-overlap, deadlines respected.

Runs are real threads committing to a real ledger, but time is a FakeClock that only the test moves:
``Harness.step`` ticks the scheduler at each moment it asks for and waits (polling, with a
deadline) for the runs started to end, so every count below is exact and no assertion depends on
how fast this machine is.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from normagent import Batch, Checkpoint, CollectorSpec, Count, MetricSpec, NoData, RunContext
from normagent.clock import SystemClock
from normagent.ledger import Ledger
from normagent import scheduler as scheduler_module
from normagent.scheduler import JITTER, Job, Scheduler, execute
from normagent.testing import FakeClock, make_context
from tests.support.disks import limit_pages

RUNS = MetricSpec("normagent_test_runs_total", "counter", "Runs.", ("collector",))
SETTLE_DEADLINE = 30.0  # seconds of real time a run may take to end before the test fails


def wait_for(what: str, predicate: Callable[[], bool], deadline: float = SETTLE_DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.002)


class Harness:
    """A scheduler over a real ledger, driven tick by tick on a FakeClock."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.ledger = Ledger.open(tmp_path / "ledger.db", clock=self.clock, metrics=[RUNS])
        self.release = threading.Event()  # lets hanging collectors finish at teardown
        self.scheduler: Scheduler | None = None
        self.hung: set[str] = set()  # collectors whose runs block until released

    def context(self, job: Job, deadline: float) -> RunContext:
        return make_context(job.spec, clock=self.clock, state=self.ledger.checkpoints(job.name), timeout=deadline - self.clock.monotonic())  # type: ignore[arg-type]

    def start(self, *jobs: Job) -> Scheduler:
        self.scheduler = Scheduler(jobs, ledger=self.ledger, context_for=self.context, clock=self.clock, rng=random.Random(7))
        return self.scheduler

    def settle(self) -> None:
        """Wait until the thread of every run started has ended, but those of collectors known to hang."""
        assert self.scheduler is not None
        scheduler = self.scheduler
        wait_for("runs to end", lambda: set(scheduler.running()) | set(scheduler.abandoned()) <= self.hung)

    def step(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, ticking at every moment the scheduler asks to be woken."""
        assert self.scheduler is not None
        end = self.clock.monotonic() + seconds
        while True:
            wait = self.scheduler.tick()
            self.settle()
            if self.clock.monotonic() + wait > end:
                break
            self.clock.advance(wait)
        self.clock.advance(end - self.clock.monotonic())
        self.scheduler.tick()
        self.settle()

    def runs(self, name: str) -> float:
        return self.ledger.counter_value(RUNS.name, {"collector": name})

    def state(self, name: str) -> Any:
        return self.ledger.snapshot().runs[name]

    def close(self) -> None:
        self.release.set()
        if self.scheduler:
            assert self.scheduler.wait_idle(SETTLE_DEADLINE)
        self.ledger.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def job(name: str, collect: Any, interval: float = 0.05, timeout: float = 5.0) -> Job:
    spec = CollectorSpec(name=name, help="t", collect=collect, metrics=(RUNS,))
    return Job(spec, interval, timeout, None)


def counting(name: str, starts: list[float] | None = None, clock: FakeClock | None = None) -> Any:
    def collect(ctx: RunContext) -> Iterator[Batch]:
        if starts is not None and clock is not None:
            starts.append(clock.monotonic())
        yield Batch([Count(RUNS.name, {"collector": name})])

    return collect


def test_an_exception_in_one_collector_does_not_stop_the_others(harness: Harness) -> None:
    ok_starts: list[float] = []

    def boom(ctx: RunContext) -> Iterator[Batch]:
        raise RuntimeError("source exploded")
        yield  # pragma: no cover

    harness.start(job("t.boom", boom), job("t.ok", counting("t.ok", ok_starts, harness.clock)))
    harness.step(0.8)

    assert harness.runs("t.ok") == len(ok_starts) >= 12  # one run per 0.05 s slot after the first
    boom_state = harness.state("t.boom")
    assert (boom_state.up, boom_state.reason) == (False, "RuntimeError")
    assert boom_state.runs == boom_state.failures >= 12  # it keeps being retried on its schedule
    assert harness.state("t.ok").up


def test_a_hang_does_not_delay_the_others_and_times_out_once_without_overlap(harness: Harness) -> None:
    starts: list[float] = []

    def hang(ctx: RunContext) -> Iterator[Batch]:
        starts.append(harness.clock.monotonic())
        harness.release.wait(60)
        yield Batch([Count(RUNS.name, {"collector": "t.hang"})])

    harness.hung.add("t.hang")
    harness.start(job("t.hang", hang, interval=0.05, timeout=0.2), job("t.ok", counting("t.ok")))
    harness.step(1.0)

    assert harness.runs("t.ok") >= 18
    assert len(starts) == 1  # never started again while the first run hangs
    state = harness.state("t.hang")
    assert (state.up, state.reason, state.failures) == (False, "timeout", 1)
    assert 0.2 <= state.duration <= 0.2 + 0.01  # failed at its deadline (ticks are ≥ 10 ms apart), not when it ends
    assert harness.scheduler is not None
    assert (harness.scheduler.running(), harness.scheduler.abandoned()) == ([], ["t.hang"])  # named at shutdown

    harness.release.set()
    harness.hung.clear()
    harness.settle()
    assert harness.runs("t.hang") == 0  # what it yields after its deadline is not committed


def test_a_timed_out_run_that_is_still_stuck_is_named_and_not_waited_for_at_shutdown(harness: Harness) -> None:
    """Issue 9 item 16: shutdown waited all of its grace for a run stuck for good, and did not name it."""
    def stuck(ctx: RunContext) -> Iterator[Batch]:
        harness.release.wait(60)  # e.g. open() of a FIFO that has no writer
        yield Batch([Count(RUNS.name, {"collector": "t.stuck"})])

    harness.hung.add("t.stuck")
    scheduler = harness.start(job("t.stuck", stuck, timeout=0.1), job("t.ok", counting("t.ok")))
    harness.step(0.8)
    assert harness.state("t.stuck").reason == "timeout"

    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(scheduler.wait_idle(60)))
    waiter.start()
    waiter.join(10)
    assert not waiter.is_alive(), "wait_idle waited for a run that had timed out"
    assert results == [True]
    assert (scheduler.running(), scheduler.abandoned()) == ([], ["t.stuck"])
    harness.release.set()
    wait_for("the stuck run to end", lambda: scheduler.abandoned() == [])
    assert harness.runs("t.stuck") == 0  # what it yields after its timeout is not committed


def test_what_a_run_yields_after_its_deadline_is_not_committed(tmp_path: Path) -> None:
    clock = FakeClock()
    with Ledger.open(tmp_path / "l.db", clock=clock, metrics=[RUNS]) as ledger:

        def slow(ctx: RunContext) -> Iterator[Batch]:
            yield Batch([Count(RUNS.name, {"collector": "t.slow"})], [Checkpoint("pos", 1)])
            clock.advance(0.3)  # the source took 0.3 s for its next block
            yield Batch([Count(RUNS.name, {"collector": "t.slow"})], [Checkpoint("pos", 2)])

        j = job("t.slow", slow, timeout=0.1)
        ctx = make_context(j.spec, clock=clock, state=ledger.checkpoints(j.name), timeout=0.1)  # type: ignore[arg-type]
        outcome = execute(j, ctx, ledger, clock, clock.now(), clock.monotonic())

        assert (outcome.ok, outcome.reason, outcome.batches) == (False, "timeout", 1)
        assert ledger.counter_value(RUNS.name, {"collector": "t.slow"}) == 1
        assert ledger.checkpoints("t.slow").get("pos") == 1


def test_no_data_is_a_successful_run(harness: Harness) -> None:
    def absent(ctx: RunContext) -> Iterator[Batch]:
        raise NoData("no journald on this host")
        yield  # pragma: no cover

    harness.start(job("t.absent", absent))
    harness.step(0.3)

    assert harness.state("t.absent").up is True


def test_a_yield_that_is_not_a_batch_fails_the_run(harness: Harness) -> None:
    def wrong(ctx: RunContext) -> Iterator[Any]:
        yield Count(RUNS.name, {"collector": "t.wrong"})

    harness.start(job("t.wrong", wrong))
    harness.step(0.3)

    assert (harness.state("t.wrong").up, harness.state("t.wrong").reason) == (False, "TypeError")
    assert harness.runs("t.wrong") == 0


def test_replacing_jobs_starts_new_ones_and_stops_removed_ones(harness: Harness) -> None:
    scheduler = harness.start(job("t.a", counting("t.a")))
    harness.step(0.3)
    a_at_swap = harness.runs("t.a")
    assert a_at_swap >= 4

    scheduler.replace_jobs([job("t.b", counting("t.b"))])
    harness.step(0.4)

    assert harness.runs("t.a") == a_at_swap
    assert harness.runs("t.b") >= 6


def test_wait_idle_waits_for_the_run_of_a_job_a_reload_removed(harness: Harness) -> None:
    """Shutdown after a reload: the removed job's run still commits, so it must be waited for and
    named, or its batch lands after the ledger is closed."""
    entered, go = threading.Event(), threading.Event()

    def blocked(ctx: RunContext) -> Iterator[Batch]:
        entered.set()
        go.wait(60)
        yield Batch([Count(RUNS.name, {"collector": "t.old"})])

    scheduler = harness.start(job("t.old", blocked, interval=3600))
    harness.hung.add("t.old")
    harness.step(1.0)  # the first run starts within the first second
    assert entered.wait(SETTLE_DEADLINE)
    scheduler.replace_jobs([])

    assert scheduler.running() == ["t.old"]
    assert scheduler.wait_idle(0.05) is False  # still running: not idle, whatever the job list says

    go.set()
    assert scheduler.wait_idle(SETTLE_DEADLINE) is True
    assert harness.runs("t.old") == 1  # committed before wait_idle said idle
    assert scheduler.running() == []


def test_intervals_are_respected_with_jitter(harness: Harness) -> None:
    starts: list[float] = []
    t0 = harness.clock.monotonic()
    harness.start(job("t.slowpace", counting("t.slowpace", starts, harness.clock), interval=0.25))
    harness.step(2.0)

    assert 0 <= starts[0] - t0 <= 0.25  # the first run within the initial spread
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(gaps) >= 6
    assert all(0.25 * (1 - JITTER) - 1e-9 <= gap <= 0.25 * (1 + JITTER) + 1e-9 for gap in gaps), gaps
    assert len(set(round(g, 9) for g in gaps)) > 1  # jittered, not a fixed beat


def test_a_run_is_recorded_with_its_duration(harness: Harness) -> None:
    def nap(ctx: RunContext) -> Iterator[Batch]:
        harness.clock.advance(0.05)  # the work took 0.05 s
        yield Batch()

    harness.start(job("t.nap", nap, interval=timedelta(hours=1).total_seconds()))
    harness.step(1.0)  # first run within 1 s

    state = harness.state("t.nap")
    assert state.runs == 1 and state.duration == pytest.approx(0.05) and state.last_success is not None


def test_the_loop_runs_jobs_until_stopped(tmp_path: Path) -> None:
    """``run`` on the real clock: it starts due runs, and returns once told to stop."""
    clock = SystemClock()
    with Ledger.open(tmp_path / "ledger.db", clock=clock, metrics=[RUNS]) as ledger:
        scheduler = Scheduler(
            [job("t.loop", counting("t.loop"), interval=0.01)], ledger=ledger, clock=clock,
            context_for=lambda j, deadline: make_context(j.spec, clock=clock, state=ledger.checkpoints(j.name)),  # type: ignore[arg-type]
        )
        stop = threading.Event()
        thread = threading.Thread(target=scheduler.run, args=(stop,))
        thread.start()
        wait_for("three runs", lambda: ledger.counter_value(RUNS.name, {"collector": "t.loop"}) >= 3)
        stop.set()
        scheduler.wake()
        thread.join(SETTLE_DEADLINE)
        assert not thread.is_alive()
        assert scheduler.wait_idle(SETTLE_DEADLINE)


LINES = MetricSpec("normagent_test_lines_total", "counter", "Lines read.", ("line",))


def test_a_full_disk_marks_the_run_down_says_so_once_and_loses_nothing_when_room_returns(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every commit fails while the disk is full: ``collector_up`` 0 with reason disk_full, one
    error line (no traceback, none from the thread either), retries on schedule; once there is
    room, what was not stored is read again and counted exactly once."""
    harness.ledger.declare([LINES])
    lines = [f"line {i:03d} " + "x" * 400 for i in range(60)]  # long labels: every batch needs new pages

    def reader(ctx: RunContext) -> Iterator[Batch]:
        at = ctx.state.get("pos") or 0
        assert isinstance(at, int)
        for start in range(at, len(lines), 10):
            chunk = lines[start : start + 10]
            yield Batch([Count(LINES.name, {"line": line}) for line in chunk], [Checkpoint("pos", start + len(chunk))])

    thread_errors: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    limit_pages(harness.ledger)  # the disk is full from the start
    with capture_logs() as logs:
        harness.start(job("t.reader", reader))
        harness.step(1.3)  # the first run within a second, then one every 50 ms
        down = harness.state("t.reader")
        assert down.failures >= 4
        limit_pages(harness.ledger, extra=100_000)  # room again
        harness.step(0.2)

    assert (down.up, down.reason) == (False, "disk_full")
    assert harness.ledger.counter_total(LINES.name) == 60
    assert all(harness.ledger.counter_value(LINES.name, {"line": line}) == 1 for line in lines)
    failed = [e for e in logs if e["event"] == "collector_failed"]
    assert len(failed) == 1 and failed[0]["reason"] == "disk_full" and "exc_info" not in failed[0]
    assert "state filesystem is full" in failed[0]["error"]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["collector_failed"]
    assert not [e for e in logs if e["event"] == "collector_health_not_stored"]  # said by the run already
    assert any(e["event"] == "collector_recovered" for e in logs)
    assert thread_errors == []


def test_wait_idle_waits_until_the_run_has_stored_its_health(tmp_path: Path) -> None:
    """A run is recorded finished before its health is written: a shutdown that closed the ledger
    then lost that write (and its thread raised on the closed database)."""
    entered, go = threading.Event(), threading.Event()

    class SlowHealth(Ledger):
        def record_run(self, outcome: Any) -> None:
            entered.set()
            go.wait(60)
            super().record_run(outcome)

    clock = FakeClock()
    with SlowHealth.open(tmp_path / "ledger.db", clock=clock, metrics=[RUNS]) as ledger:
        scheduler = Scheduler(
            [job("t.one", counting("t.one"), interval=3600)], ledger=ledger, clock=clock,
            context_for=lambda j, deadline: make_context(j.spec, clock=clock, state=ledger.checkpoints(j.name)),  # type: ignore[arg-type]
        )
        clock.advance(1.0)
        scheduler.tick()
        assert entered.wait(SETTLE_DEADLINE)

        assert scheduler.wait_idle(0.05) is False  # its batch is in, its health is not yet

        go.set()
        assert scheduler.wait_idle(SETTLE_DEADLINE) is True
        assert ledger.snapshot().runs["t.one"].runs == 1


def test_an_idle_scheduler_sleeps_until_the_next_run_is_due_or_a_deadline(harness: Harness) -> None:
    """Between runs nothing needs doing, so the loop is not woken every second (idle CPU); a run
    that is still going is looked at again at its deadline."""
    def hang(ctx: RunContext) -> Iterator[Batch]:
        harness.release.wait(60)
        yield Batch([Count(RUNS.name, {"collector": "t.hang"})])

    harness.hung.add("t.hang")
    scheduler = harness.start(job("t.minute", counting("t.minute"), interval=60.0), job("t.hang", hang, interval=60.0, timeout=20.0))
    harness.clock.advance(1.0)  # past the first runs' spread: both start
    scheduler.tick()
    wait_for("the minute's run to end", lambda: scheduler.running() == ["t.hang"])

    assert 19.0 <= scheduler.tick() <= 20.0  # the hanging run's deadline, not a second from now

    harness.clock.advance(20.0)
    scheduler.tick()  # the deadline: the hanging run times out
    assert scheduler.abandoned() == ["t.hang"]
    assert 60.0 * (1 - JITTER) - 22.0 <= scheduler.tick() <= 60.0 * (1 + JITTER)  # then the next run


def test_runs_take_turns_on_kept_threads_and_a_hung_run_keeps_its_own(harness: Harness) -> None:
    """Issue 15: a thread started for every run was a tenth of the idle agent's CPU. Runs that do
    not overlap reuse a kept thread, named after the collector while it runs; a run that hangs
    keeps its thread to itself, and the others go on on other threads."""
    used: dict[str, list[threading.Thread]] = {"t.a": [], "t.b": [], "t.hang": []}
    order: list[tuple[str, threading.Thread]] = []
    names: set[str] = set()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("left_by_a_run", default="")
    seen: list[str] = []

    def noting(name: str) -> Any:
        def collect(ctx: RunContext) -> Iterator[Batch]:
            used[name].append(threading.current_thread())
            order.append((name, threading.current_thread()))
            names.add(threading.current_thread().name)
            seen.append(var.get())
            var.set(name)  # a run's context does not leak into the next run on the same thread
            if name == "t.hang":
                harness.release.wait(60)
            yield Batch([Count(RUNS.name, {"collector": name})])
        return collect

    harness.hung.add("t.hang")
    harness.start(job("t.a", noting("t.a")), job("t.b", noting("t.b"), interval=0.07),
                  job("t.hang", noting("t.hang"), timeout=0.1))
    harness.step(2.0)

    runs = len(used["t.a"]) + len(used["t.b"])
    threads = {id(t) for t in used["t.a"] + used["t.b"]}
    assert runs >= 50 and len(threads) <= 3, (runs, len(threads))  # not a thread per run
    [hung] = used["t.hang"]
    after = order[order.index(("t.hang", hung)) + 1 :]
    assert len(after) >= 40 and all(thread is not hung for _, thread in after)  # not handed a run while it hangs
    assert names == {"collector:t.a", "collector:t.b", "collector:t.hang"}
    assert set(seen) == {""}


def test_kept_threads_end_when_idle_for_long_and_when_the_loop_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SystemClock()
    used: list[threading.Thread] = []

    def collect(ctx: RunContext) -> Iterator[Batch]:
        used.append(threading.current_thread())
        yield Batch([Count(RUNS.name, {"collector": "t.loop"})])

    with Ledger.open(tmp_path / "ledger.db", clock=clock, metrics=[RUNS]) as ledger:
        scheduler = Scheduler(
            [job("t.loop", collect, interval=0.01)], ledger=ledger, clock=clock,
            context_for=lambda j, deadline: make_context(j.spec, clock=clock, state=ledger.checkpoints(j.name)),  # type: ignore[arg-type]
        )
        stop = threading.Event()
        loop = threading.Thread(target=scheduler.run, args=(stop,))
        loop.start()
        wait_for("three runs", lambda: len(used) >= 3)
        stop.set()
        scheduler.wake()
        loop.join(SETTLE_DEADLINE)
        assert scheduler.wait_idle(SETTLE_DEADLINE)
        wait_for("the kept threads to end", lambda: not any(t.is_alive() for t in used))

        monkeypatch.setattr(scheduler_module, "WORKER_IDLE_SECONDS", 0.05)
        harness = Harness(tmp_path / "second")
        try:
            used.clear()
            harness.start(job("t.once", collect, interval=3600))
            harness.step(1.0)
            assert len(used) == 1
            wait_for("an idle thread to end", lambda: not used[0].is_alive())
        finally:
            harness.close()
