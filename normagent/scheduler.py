"""The scheduler: runs each collector on its own interval, with jitter and a timeout, in isolation.

Promises:
- a collector never overlaps itself: a run that is still going when the next is due makes that
  slot be skipped (and logged), never doubled;
- an exception or a hang in one collector does not delay the others: every run has a thread of
  its own while it runs (a kept one: see ``_Workers``), and the loop that starts runs never waits
  for one;
- a run that outlives its timeout is recorded as failed (``reason="timeout"``) at its deadline; its
  thread is left to finish (Python cannot kill a thread), and anything it yields after the deadline
  is not committed — its checkpoint says where the next run resumes;
- every yielded ``Batch`` is committed by the ledger in one transaction as soon as it is yielded;
- a run whose commit the ledger refuses for a reason of the environment (``StateError``: the disk is
  full, the state directory is gone) fails with that reason (``"disk_full"``, ``"state_lost"``),
  logged once when it starts and without a traceback; the collector is retried on its schedule and
  reads again what was not stored, so nothing is lost and nothing is counted twice.

Must not import exposition, agent, cli or plugins.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import field
from typing import Any

import structlog

from normagent.clock import Clock
from normagent.errors import DiskFull, NoData, RunFailed, StateError, StateLost
from normagent.ledger import Ledger
from normagent.model import Advice, Batch, CollectorSpec, RunContext, RunOutcome
from normagent.randomness import SystemUniform, Uniform
from normagent.records import dataclass

log = structlog.get_logger(__name__)

MAX_INITIAL_SPREAD = 1.0  # seconds: first runs are spread over at most this, so /metrics fills fast
JITTER = 0.05  # each interval varies by ±5 %, so hundreds of agents do not beat in step
# The loop sleeps until the next run falls due or a run's deadline passes; whatever changes that
# (a run ending, a reload, a stop) wakes it. It woke every second before: a third of the idle
# scheduler's CPU. The bound is only a safety net.
MAX_SLEEP = 60.0
# A worker thread with no run for this long ends: the pool is as large as the runs that overlapped
# lately (the first cycle starts every collector within a second), not more.
WORKER_IDLE_SECONDS = 300.0
# Reasons of runs that failed because the ledger could not store them (StateError and subclasses).
STATE_REASONS = frozenset({StateError.reason, DiskFull.reason, StateLost.reason})


@dataclass(frozen=True)
class Job:
    """A collector as configured: its spec, effective interval and timeout (seconds), settings."""

    spec: CollectorSpec
    interval: float
    timeout: float
    settings: Any

    @property
    def name(self) -> str:
        return self.spec.name


ContextFactory = Callable[[Job, float], RunContext]  # (job, deadline on the monotonic clock) → context


@dataclass(eq=False)  # compared and hashed by identity: a set of runs in flight holds each one
class _Run:
    """One run in flight. ``finished`` is set by whoever records the outcome first."""

    job: Job
    ctx: RunContext
    started_mono: float
    done: threading.Event = field(default_factory=threading.Event)  # its work is over, its health stored
    lock: threading.Lock = field(default_factory=threading.Lock)
    finished: bool = False
    outcome: RunOutcome | None = None
    timed_out: bool = False  # abandoned at its deadline: nothing it yields from then on is committed


@dataclass
class _Slot:
    job: Job
    next_due: float
    run: _Run | None = None
    skipped: int = 0
    was_up: bool | None = None
    was_reason: str = ""
    health_error: str = ""  # why the last run's health could not be stored, if it could not


class Scheduler:
    """Runs jobs until stopped. Thread-safe ``replace_jobs`` supports reloads."""

    def __init__(
        self,
        jobs: Iterable[Job],
        *,
        ledger: Ledger,
        context_for: ContextFactory,
        clock: Clock,
        rng: Uniform | None = None,
    ) -> None:
        self._ledger = ledger
        self._context_for = context_for
        self._clock = clock
        self._rng = rng or SystemUniform()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # Every run whose thread has not ended, also of jobs a reload removed and of runs past their
        # timeout: shutdown waits for and names these, not only the runs of today's job list.
        self._runs: set[_Run] = set()
        self._workers = _Workers()
        now = clock.monotonic()
        self._slots = {job.name: _Slot(job, now + self._initial_delay(job)) for job in jobs}

    # -------------------------------------------------------------------------------------------
    # the loop

    def run(self, stop: threading.Event) -> None:
        """Start runs as they fall due until ``stop`` is set. Returns without waiting for runs."""
        try:
            while not stop.is_set():
                wait = self.tick()
                self._wake.wait(timeout=wait)
                self._wake.clear()
        finally:
            self._workers.close()  # idle workers end now, busy ones when their run returns

    def wake(self) -> None:
        """Make ``run`` look at its jobs now (after ``replace_jobs`` or a stop request)."""
        self._wake.set()

    def tick(self) -> float:
        """Start due runs, time out late ones; return seconds until something needs doing."""
        now = self._clock.monotonic()
        next_event = now + MAX_SLEEP
        with self._lock:
            slots = list(self._slots.values())
        for slot in slots:
            run = slot.run
            if run is not None and not run.finished:
                deadline = run.started_mono + run.job.timeout
                if now >= deadline:
                    run.timed_out = True
                    self._finish(slot, run, self._timeout_outcome(run, now))
                else:
                    next_event = min(next_event, deadline)
            if now >= slot.next_due:
                if slot.run is None:
                    self._start(slot, now)
                else:
                    slot.skipped += 1
                    log.warning("collector_run_skipped", collector=slot.job.name, reason="previous run still going",
                                skipped=slot.skipped)
                slot.next_due = self._next_due(slot, now)
            next_event = min(next_event, slot.next_due)
        return max(0.01, next_event - self._clock.monotonic())

    def running(self) -> list[str]:
        """Names of collectors with a run whose thread has not ended and that has not timed out,
        also of a job a reload removed (sorted; a name twice if two of its runs are left)."""
        with self._lock:
            return sorted(run.job.name for run in self._runs if not run.timed_out)

    def abandoned(self) -> list[str]:
        """Names of collectors whose run timed out and whose thread is still going: stuck in a
        system call, a source that never answers. Nothing a timed-out run yields is committed."""
        with self._lock:
            return sorted(run.job.name for run in self._runs if run.timed_out)

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds (real time) for the thread of every run that has not
        timed out to end, whatever its job; True if none is left. When it returns True, everything
        those runs store (their batches and the health of their run) is in.

        Runs already timed out are not waited for: they can commit nothing more, and one stuck for
        good would hold a shutdown for all of ``timeout`` (``abandoned()`` names them).
        """
        end = time.monotonic() + timeout
        with self._lock:
            runs = [run for run in self._runs if not run.timed_out]
        for run in runs:
            run.done.wait(max(0.0, end - time.monotonic()))
        with self._lock:
            return not any(not run.timed_out for run in self._runs)

    def replace_jobs(self, jobs: Iterable[Job]) -> None:
        """Swap the job list (reload). Runs in flight finish; kept collectors keep their schedule."""
        now = self._clock.monotonic()
        with self._lock:
            old = self._slots
            new: dict[str, _Slot] = {}
            for job in jobs:
                slot = old.get(job.name)
                if slot is None:
                    new[job.name] = _Slot(job, now + self._initial_delay(job))
                else:
                    slot.job = job
                    slot.next_due = min(slot.next_due, now + job.interval)
                    new[job.name] = slot
            self._slots = new
        self.wake()

    # -------------------------------------------------------------------------------------------
    # one run

    def _start(self, slot: _Slot, now: float) -> None:
        job = slot.job
        ctx = self._context_for(job, now + job.timeout)
        run = _Run(job=job, ctx=ctx, started_mono=now)
        started_wall = self._clock.now()
        slot.run = run
        with self._lock:
            self._runs.add(run)
        try:
            self._workers.submit(f"collector:{job.name}", lambda: self._execute(slot, run, started_wall))
        except BaseException:  # no thread to be had (RuntimeError): no run to wait for either
            with self._lock:
                self._runs.discard(run)
            slot.run = None
            raise

    def _execute(self, slot: _Slot, run: _Run, started_wall: Any) -> None:
        try:
            outcome = execute(
                run.job, run.ctx, self._ledger, self._clock, started_wall, run.started_mono,
                still_wanted=lambda: not run.finished,
            )
            self._finish(slot, run, outcome)
        finally:
            # Only now may the next run start: a timed-out run that finally returns frees its slot here.
            with self._lock:
                if slot.run is run:
                    slot.run = None
                self._runs.discard(run)
            run.done.set()
            self._wake.set()

    def _finish(self, slot: _Slot, run: _Run, outcome: RunOutcome) -> None:
        with run.lock:
            if run.finished:
                return
            run.finished = True
            run.outcome = outcome
        try:
            self._ledger.record_run(outcome)
        except StateError as exc:
            # The health is exported from memory all the same; only its copy on disk lags behind.
            # Said once, unless the run itself failed for this very reason (then that was said).
            if exc.reason not in (outcome.reason, slot.health_error):
                log.warning("collector_health_not_stored", collector=outcome.collector, reason=exc.reason, error=str(exc))
            slot.health_error = exc.reason
        else:
            slot.health_error = ""
        _log_outcome(outcome, slot.was_up, slot.was_reason)
        slot.was_up, slot.was_reason = outcome.ok, outcome.reason

    def _timeout_outcome(self, run: _Run, now: float) -> RunOutcome:
        return RunOutcome(
            collector=run.job.name,
            started_at=self._clock.now(),
            duration=now - run.started_mono,
            ok=False,
            reason="timeout",
            note=f"still running after {run.job.timeout:g}s",
        )

    # -------------------------------------------------------------------------------------------
    # timing

    def _initial_delay(self, job: Job) -> float:
        return self._rng.uniform(0.0, min(MAX_INITIAL_SPREAD, job.interval))

    def _next_due(self, slot: _Slot, now: float) -> float:
        interval = slot.job.interval * (1.0 + self._rng.uniform(-JITTER, JITTER))
        due = slot.next_due + interval
        # Fell behind (a suspended host, a long GC): do not fire a burst of catch-up runs.
        return due if due > now else now + interval


class _Workers:
    """Threads for collector runs, kept between runs.

    A run is given an idle worker, or a new one when every worker is busy, so a run that hangs
    holds only its own thread and never delays another collector's, as with a thread per run.
    Starting a thread for each run was about a twentieth of the idle agent's CPU (issue 15: 0.18 ms
    a run, 0.07 ms now); on an idle host the runs of a minute mostly take turns on one or two kept
    threads. A worker runs each run in a fresh ``contextvars`` context (as a new thread would),
    under the name ``collector:<name>`` while it runs (py-spy, ``/proc/<pid>/task``), and ends
    after ``WORKER_IDLE_SECONDS`` without one or at ``close()``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[tuple[str, Callable[[], None]] | None]] = []
        self._closed = False

    def submit(self, name: str, work: Callable[[], None]) -> None:
        """Run ``work`` on a thread of its own: an idle worker's, or a new one."""
        with self._lock:
            if self._idle:
                self._idle.pop().put((name, work))  # the one idle last: the others may end
                return
        inbox: queue.SimpleQueue[tuple[str, Callable[[], None]] | None] = queue.SimpleQueue()
        inbox.put((name, work))
        threading.Thread(target=self._serve, args=(inbox,), name=name, daemon=True).start()

    def close(self) -> None:
        """End the idle workers; a busy one ends when its run returns. Later runs get new threads."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)

    def _serve(self, inbox: queue.SimpleQueue[tuple[str, Callable[[], None]] | None]) -> None:
        thread = threading.current_thread()
        while True:
            try:
                task = inbox.get(timeout=WORKER_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if inbox not in self._idle:
                        continue  # handed a run as it timed out: it is in the inbox
                    self._idle.remove(inbox)
                return
            if task is None:
                return
            thread.name, work = task
            contextvars.Context().run(work)  # an exception ends this worker, as it ended a run's thread
            del task, work
            thread.name = "collector-idle"
            with self._lock:
                if self._closed:
                    return
                self._idle.append(inbox)


def execute(
    job: Job,
    ctx: RunContext,
    ledger: Ledger,
    clock: Clock,
    started_wall: Any,
    started_mono: float,
    still_wanted: Callable[[], bool] = lambda: True,
) -> RunOutcome:
    """Run one collector to the end: commit each batch it yields, turn what happens into an outcome.

    Used by the scheduler (on a thread of its own) and by ``normagent collect --once``.
    """
    batches = 0
    try:
        generator = iter(job.spec.collect(ctx))
        try:
            for batch in generator:
                if not isinstance(batch, Batch):
                    raise TypeError(f"collect() yielded a {type(batch).__name__}, expected Batch")
                if ctx.expired() or not still_wanted():
                    break  # abandoned at its deadline: what it yields now is not committed
                ledger.commit(job.name, batch)
                batches += 1
        finally:
            close = getattr(generator, "close", None)
            if close is not None:
                close()
    except NoData as why:
        return RunOutcome(job.name, started_wall, clock.monotonic() - started_mono, True, note=str(why), batches=batches)
    except StateError as exc:
        # The ledger could not store a batch (disk full, state gone): its message says what and
        # where, a traceback would add nothing. Logged by the caller, once per failure spell.
        return RunOutcome(job.name, started_wall, clock.monotonic() - started_mono, False, reason=exc.reason,
                          note=str(exc), batches=batches)
    except RunFailed as exc:  # the collector has said what and where already
        return RunOutcome(job.name, started_wall, clock.monotonic() - started_mono, False, reason=exc.reason,
                          note=str(exc), batches=batches)
    except Exception as exc:
        ctx.log.error("collector_failed", reason=type(exc).__name__, error=str(exc), exc_info=True)
        return RunOutcome(job.name, started_wall, clock.monotonic() - started_mono, False, reason=type(exc).__name__,
                          note=str(exc), batches=batches)
    duration = clock.monotonic() - started_mono
    if ctx.expired():
        return RunOutcome(job.name, started_wall, duration, False, reason="timeout", batches=batches,
                          note=f"stopped at its {job.timeout:g}s deadline")
    return RunOutcome(job.name, started_wall, duration, True, batches=batches)


def advice_for(spec: CollectorSpec, ctx: RunContext) -> list[Advice]:
    """What ``spec.advise`` says of its settings on this host; a check that fails says so as
    advice (a warning must never stop the collector or the command asking)."""
    if spec.advise is None:
        return []
    try:
        return list(spec.advise(ctx))
    except Exception as exc:
        return [Advice("", f"could not check the settings: {type(exc).__name__}: {exc}")]


def _log_outcome(outcome: RunOutcome, was_up: bool | None, was_reason: str = "") -> None:
    fields = {"collector": outcome.collector, "duration_s": round(outcome.duration, 4), "batches": outcome.batches}
    if outcome.ok:
        if outcome.note:
            log.debug("collector_no_data", note=outcome.note, **fields)
        elif was_up is False:
            log.info("collector_recovered", **fields)
        else:
            log.debug("collector_finished", **fields)
    elif outcome.reason == "timeout":
        log.error("collector_timeout", note=outcome.note, **fields)
    elif outcome.reason in STATE_REASONS:
        # Every run fails alike until there is room again: said once, then quietly retried.
        if was_up is not False or was_reason != outcome.reason:
            log.error("collector_failed", reason=outcome.reason, error=outcome.note, retrying=True, **fields)
        else:
            log.debug("collector_still_failing", reason=outcome.reason, **fields)
    # other failures were logged with their traceback where they happened
