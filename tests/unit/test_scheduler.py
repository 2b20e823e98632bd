"""The scheduler: isolation from exceptions and hangs, no self-overlap, deadlines respected.

These run real threads on the real clock with short intervals; the assertions are about order and
counts with wide margins, not about speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from normagent import Batch, Checkpoint, CollectorSpec, Count, MetricSpec, NoData, RunContext
from normagent.clock import SystemClock
from normagent.ledger import Ledger
from normagent.scheduler import Job, Scheduler, execute
from normagent.testing import make_context

RUNS = MetricSpec("normagent_test_runs_total", "counter", "Runs.", ("collector",))


class Harness:
    """A scheduler over a real ledger, run on its own thread for a while."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = SystemClock()
        self.ledger = Ledger.open(tmp_path / "ledger.db", clock=self.clock, metrics=[RUNS])
        self.release = threading.Event()  # lets hanging collectors finish at teardown
        self.stop = threading.Event()
        self.scheduler: Scheduler | None = None

    def context(self, job: Job, deadline: float) -> RunContext:
        return make_context(job.spec, clock=self.clock, state=self.ledger.checkpoints(job.name), timeout=deadline - self.clock.monotonic())  # type: ignore[arg-type]

    def run_for(self, seconds: float, *jobs: Job) -> None:
        self.scheduler = Scheduler(jobs, ledger=self.ledger, context_for=self.context, clock=self.clock)
        thread = threading.Thread(target=self.scheduler.run, args=(self.stop,))
        thread.start()
        time.sleep(seconds)
        self.stop.set()
        self.scheduler.wake()
        thread.join(5)
        assert not thread.is_alive()

    def runs(self, name: str) -> float:
        return self.ledger.counter_value(RUNS.name, {"collector": name})

    def state(self, name: str) -> Any:
        return self.ledger.snapshot().runs[name]

    def close(self) -> None:
        self.release.set()
        if self.scheduler:
            self.scheduler.wait_idle(5)
        self.ledger.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def job(name: str, collect: Any, interval: float = 0.05, timeout: float = 5.0) -> Job:
    spec = CollectorSpec(name=name, help="t", collect=collect, metrics=(RUNS,))
    return Job(spec, interval, timeout, None)


def counting(name: str) -> Any:
    def collect(ctx: RunContext) -> Iterator[Batch]:
        yield Batch([Count(RUNS.name, {"collector": name})])

    return collect


def test_an_exception_in_one_collector_does_not_stop_the_others(harness: Harness) -> None:
    def boom(ctx: RunContext) -> Iterator[Batch]:
        raise RuntimeError("source exploded")
        yield  # pragma: no cover

    harness.run_for(0.8, job("t.boom", boom), job("t.ok", counting("t.ok")))

    assert harness.runs("t.ok") >= 5
    boom_state = harness.state("t.boom")
    assert (boom_state.up, boom_state.reason) == (False, "RuntimeError")
    assert boom_state.runs >= 5  # it keeps being retried on its schedule
    assert harness.state("t.ok").up


def test_a_hang_does_not_delay_the_others_and_times_out_once_without_overlap(harness: Harness) -> None:
    starts: list[float] = []

    def hang(ctx: RunContext) -> Iterator[Batch]:
        starts.append(time.monotonic())
        harness.release.wait(30)
        yield Batch([Count(RUNS.name, {"collector": "t.hang"})])

    harness.run_for(1.0, job("t.hang", hang, interval=0.05, timeout=0.2), job("t.ok", counting("t.ok")))

    assert harness.runs("t.ok") >= 8
    assert len(starts) == 1  # never started again while the first run hangs
    state = harness.state("t.hang")
    assert (state.up, state.reason, state.failures) == (False, "timeout", 1)
    assert 0.2 <= state.duration < 0.6


def test_a_timed_out_run_that_is_still_stuck_is_named_and_not_waited_for_at_shutdown(harness: Harness) -> None:
    """Issue 9 item 16: shutdown waited all of its grace for a run stuck for good, and did not name it."""
    def stuck(ctx: RunContext) -> Iterator[Batch]:
        harness.release.wait(60)  # e.g. open() of a FIFO that has no writer
        yield Batch([Count(RUNS.name, {"collector": "t.stuck"})])

    harness.run_for(0.8, job("t.stuck", stuck, timeout=0.1), job("t.ok", counting("t.ok")))
    assert harness.state("t.stuck").reason == "timeout"
    scheduler = harness.scheduler
    assert scheduler is not None

    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(scheduler.wait_idle(60)))
    waiter.start()
    waiter.join(10)
    assert not waiter.is_alive(), "wait_idle waited for a run that had timed out"
    assert results == [True]
    assert (scheduler.running(), scheduler.abandoned()) == ([], ["t.stuck"])
    harness.release.set()
    assert wait_until(lambda: scheduler.abandoned() == [])
    assert harness.runs("t.stuck") == 0  # what it yields after its timeout is not committed


def wait_until(predicate: Any, timeout: float = 10) -> bool:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_what_a_run_yields_after_its_deadline_is_not_committed(tmp_path: Path) -> None:
    clock = SystemClock()
    with Ledger.open(tmp_path / "l.db", clock=clock, metrics=[RUNS]) as ledger:

        def slow(ctx: RunContext) -> Iterator[Batch]:
            yield Batch([Count(RUNS.name, {"collector": "t.slow"})], [Checkpoint("pos", 1)])
            time.sleep(0.3)
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

    harness.run_for(0.3, job("t.absent", absent))

    assert harness.state("t.absent").up is True


def test_a_yield_that_is_not_a_batch_fails_the_run(harness: Harness) -> None:
    def wrong(ctx: RunContext) -> Iterator[Any]:
        yield Count(RUNS.name, {"collector": "t.wrong"})

    harness.run_for(0.3, job("t.wrong", wrong))

    assert (harness.state("t.wrong").up, harness.state("t.wrong").reason) == (False, "TypeError")
    assert harness.runs("t.wrong") == 0


def test_replacing_jobs_starts_new_ones_and_stops_removed_ones(harness: Harness) -> None:
    scheduler = Scheduler([job("t.a", counting("t.a"))], ledger=harness.ledger, context_for=harness.context, clock=harness.clock)
    harness.scheduler = scheduler
    thread = threading.Thread(target=scheduler.run, args=(harness.stop,))
    thread.start()
    time.sleep(0.3)
    scheduler.replace_jobs([job("t.b", counting("t.b"))])
    scheduler.wait_idle(2)
    a_at_swap = harness.runs("t.a")
    time.sleep(0.4)
    harness.stop.set()
    scheduler.wake()
    thread.join(5)

    assert harness.runs("t.a") == a_at_swap
    assert harness.runs("t.b") >= 3


def test_intervals_are_respected_with_jitter(harness: Harness) -> None:
    harness.run_for(1.05, job("t.slowpace", counting("t.slowpace"), interval=0.25))
    # first run within 0.25 s, then every 0.25 s ± 5 %: 4 or 5 runs in 1.05 s
    assert 3 <= harness.runs("t.slowpace") <= 5


def test_a_run_is_recorded_with_its_duration(harness: Harness) -> None:
    def nap(ctx: RunContext) -> Iterator[Batch]:
        time.sleep(0.05)
        yield Batch()

    harness.run_for(1.3, job("t.nap", nap, interval=timedelta(hours=1).total_seconds()))  # first run within 1 s

    state = harness.state("t.nap")
    assert state.runs == 1 and 0.05 <= state.duration < 0.5 and state.last_success is not None
