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
from structlog.testing import capture_logs

from normagent import Batch, Checkpoint, CollectorSpec, Count, MetricSpec, NoData, RunContext
from normagent.clock import SystemClock
from normagent.ledger import Ledger
from normagent.scheduler import Job, Scheduler, execute
from normagent.testing import make_context
from tests.support.disks import limit_pages

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


LINES = MetricSpec("normagent_test_lines_total", "counter", "Lines read.", ("line",))


def wait_until(condition: Any, what: str, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.01)


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
    scheduler = Scheduler([job("t.reader", reader)], ledger=harness.ledger, context_for=harness.context, clock=harness.clock)
    harness.scheduler = scheduler
    loop = threading.Thread(target=scheduler.run, args=(harness.stop,))
    with capture_logs() as logs:
        loop.start()
        try:
            wait_until(lambda: "t.reader" in harness.ledger.snapshot().runs and harness.state("t.reader").failures >= 4, "4 failed runs")
            down = harness.state("t.reader")
            limit_pages(harness.ledger, extra=100_000)  # room again
            wait_until(lambda: harness.ledger.checkpoints("t.reader").get("pos") == 60 and harness.state("t.reader").up, "recovery")
        finally:
            harness.stop.set()
            scheduler.wake()
            loop.join(5)
            scheduler.wait_idle(5)

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
