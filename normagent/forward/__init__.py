"""Delivery from the outbox: one worker thread per configured forwarder.

Every change of a candidate (it fired, it was resolved) is written to the outbox in the ledger in
the same transaction as the change itself, one row per enabled forwarder. A worker here takes its
forwarder's rows that are due, oldest first and never two of one fingerprint at once (a receiver
gets a fingerprint's changes in order), hands each to the forwarder, and only then records the
outcome:

- delivered: marked so in the ledger *after* the receiver took it. A crash between the two sends
  the change again after the restart: at least once, and the idempotency key
  (``<fingerprint>-<state>-<sequence>``, the same for every attempt) lets the receiver keep it
  exactly once. A note the ledger cannot store (its filesystem full) is stored first on the next
  pass, and the change is not sent again meanwhile.
- failed: tried again after an exponential back-off with jitter (``retry_min`` doubled per failure
  in a row, at most ``retry_max``; each wait is drawn between half and all of that, so many agents
  do not retry in step). The whole forwarder pauses for that time: a receiver that is down is not
  hammered with every row in turn.
- older than ``dead_letter_after`` and still not delivered: a dead letter. It stays in the outbox,
  is counted (``normagent_outbox_dead_letters_total``), logged and shown by ``normagent
  deviations list``; it is never dropped silently. The next change of its fingerprint may go.

A broken forwarder is a metric (``normagent_forward_attempts_total{result}``,
``normagent_outbox_pending``, ``normagent_outbox_oldest_seconds``) and a log line
(``forward_failed``, ``forward_recovered``), never a stopped agent or a lost change.

Forwarders that need reminding (Alertmanager forgets an alert at the ``endsAt`` it was given) get
the firing candidates re-posted every ``refresh`` interval, by the same worker, so a re-post can
never overtake the resolution of the same candidate.

Imports model, ledger, clock and config (for types); never agent or cli.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from normagent.model import Count, Delivery, DeliveryFailed, ForwarderSpec, MetricSpec, Sender
from normagent.randomness import SystemUniform, Uniform
from normagent.records import dataclass

if TYPE_CHECKING:
    from normagent.clock import Clock
    from normagent.config import ForwarderConfig
    from normagent.ledger import AttemptResult, Ledger

log = structlog.get_logger(__name__)

RESULTS = ("ok", "http_error", "timeout", "unreachable", "tls_error", "rejected", "error")
"""``normagent_forward_attempts_total{result}``: delivered, or why not (see ``DeliveryFailed``)."""
STATES = ("pending", "firing", "resolved")
SEVERITIES = ("info", "warning", "critical")
BATCH = 100  # rows taken per pass; their outcomes are stored in one transaction
SWEEP_EVERY = 60.0  # seconds between looks for dead letters while nothing else happens

DEVIATIONS = MetricSpec(
    "normagent_deviations",
    "gauge",
    "Deviation candidates in the ledger by state (pending: condition holds, not yet for long enough; firing; "
    "resolved) and severity.",
    ("state", "severity"),
    preset=tuple((state, severity) for state in STATES for severity in SEVERITIES),
    section="Avvik",
)
ATTEMPTS = MetricSpec(
    "normagent_forward_attempts_total",
    "counter",
    "Attempts to deliver a candidate change (or an Alertmanager re-post) by forwarder and result: ok, http_error "
    "(the receiver answered with an error status), timeout, unreachable, tls_error, rejected, error.",
    ("forwarder", "result"),
    section="Avvik",
)
PENDING = MetricSpec(
    "normagent_outbox_pending", "gauge", "Candidate changes waiting in the outbox for the forwarder.", ("forwarder",), section="Avvik"
)
OLDEST = MetricSpec(
    "normagent_outbox_oldest_seconds",
    "gauge",
    "Age of the oldest change waiting in the outbox for the forwarder (0 when none waits).",
    ("forwarder",),
    section="Avvik",
)
DEAD_LETTERS = MetricSpec(
    "normagent_outbox_dead_letters_total",
    "counter",
    "Changes given up on after dead_letter_after without delivery: kept in the outbox and shown by "
    "`normagent deviations list`.",
    ("forwarder",),
    section="Avvik",
)
DEVIATION_METRICS = (DEVIATIONS, ATTEMPTS, PENDING, OLDEST, DEAD_LETTERS)


def metrics_for(forwarders: Sequence[str]) -> tuple[MetricSpec, ...]:
    """The deviation metrics with a zero series per configured forwarder, so rate() works at once."""
    from dataclasses import replace

    return (
        DEVIATIONS,
        replace(ATTEMPTS, preset=tuple((name, result) for name in forwarders for result in RESULTS)),
        replace(PENDING, preset=tuple((name,) for name in forwarders)),
        replace(OLDEST, preset=tuple((name,) for name in forwarders)),
        replace(DEAD_LETTERS, preset=tuple((name,) for name in forwarders)),
    )


@dataclass(frozen=True)
class Route:
    """A configured forwarder with the spec of its kind: what a worker delivers with."""

    config: ForwarderConfig
    spec: ForwarderSpec

    @property
    def name(self) -> str:
        return self.config.name

    def open(self) -> Sender:
        if self.spec.open is not None:
            return self.spec.open(self.config.settings)
        return _OneShot(self.spec, self.config.settings)


class _OneShot:
    """A ``Sender`` over a spec that only has ``send(delivery, settings)``."""

    def __init__(self, spec: ForwarderSpec, settings: Any) -> None:
        self._spec = spec
        self._settings = settings

    def send(self, delivery: Delivery) -> None:
        self._spec.send(delivery, self._settings)

    def close(self) -> None:
        pass


def backoff(failures: int, low: float, high: float, rng: Uniform) -> float:
    """Seconds to wait after ``failures`` failures in a row: ``low`` doubled per failure, at most
    ``high``, then drawn between half and all of it ("equal jitter")."""
    delay: float = min(high, low * 2.0 ** min(failures - 1, 62))
    return delay / 2 + rng.uniform(0, delay / 2)


class Worker:
    """Delivers one forwarder's outbox. ``run_once`` is one pass (tests call it with a fake clock);
    ``run`` loops on its own thread until stopped.

    Up to ``parallel`` deliveries are in flight at once (each on a sender of its own, kept open
    between passes): a receiver's round trip, not the agent, then sets the pace. A pass never holds
    two changes of one fingerprint, so that cannot reorder them; after the first failure no new
    delivery starts, and those in flight finish with their own timeout.
    """

    def __init__(self, route: Route, ledger: Ledger, clock: Clock, *, rng: Uniform | None = None) -> None:
        self.route = route
        self._ledger = ledger
        self._clock = clock
        self._rng = rng or SystemUniform()
        self._wake = threading.Event()
        self._idle: list[Sender] = []  # open senders not in use
        self._lock = threading.Lock()
        self._pool: Any = None  # a ThreadPoolExecutor once more than one delivery is in flight
        self.parallel = route.config.common.parallel or route.spec.parallel
        self.failures = 0  # in a row
        # Deliveries the receiver took whose note the ledger could not store (its filesystem full):
        # noted before anything else is done, never sent again by this worker.
        self._unnoted: list[AttemptResult] = []
        self._unnoted_counts: list[Count] = []
        self._paused_until = 0.0  # monotonic
        self._next_sweep = 0.0
        refresh = route.spec.refresh(route.config.settings) if route.spec.refresh is not None else None
        self._refresh_every = refresh.total_seconds() if refresh else None
        # The first re-post falls due one interval after start: what was delivered before a restart
        # was given an endsAt of 4 intervals.
        self._next_refresh = clock.monotonic() + (self._refresh_every or 0.0)

    @property
    def name(self) -> str:
        return self.route.name

    @property
    def refreshes(self) -> bool:
        """Whether this forwarder re-posts firing candidates (Alertmanager)."""
        return self._refresh_every is not None

    def wake(self) -> None:
        """New rows are in the outbox: look now (a paused forwarder stays paused)."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                wait = self.run_once(stop)
            except Exception as exc:  # the ledger failed (disk full …): try again later, never die
                log.error("forward_loop_failed", forwarder=self.name, error=f"{type(exc).__name__}: {exc}", exc_info=True)
                wait = 5.0
            self._wake.wait(timeout=max(0.0, min(wait, SWEEP_EVERY)))
            self._wake.clear()
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            idle, self._idle = self._idle, []
        for sender in idle:
            _close(sender)

    def run_once(self, stop: threading.Event | None = None) -> float:
        """Sweep dead letters, deliver what is due, re-post firing candidates when it is time.

        Returns:
            Seconds until something may need doing (0: more rows are due now).
        """
        wait = self._pass(stop)
        if wait > 0.0:
            self._release_pool()
        return wait

    def _release_pool(self) -> None:
        """End the parallel deliveries' threads while nothing is due: an idle thread holds some
        50 KB of the agent's memory (issue 15), and starting ``parallel`` of them again when the
        next rows are due costs well under a millisecond. Kept while a backlog is worked through."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False)  # nothing is in flight: its threads end at once

    def _pass(self, stop: threading.Event | None) -> float:
        mono = self._clock.monotonic()
        if self._unnoted or self._unnoted_counts:
            self._ledger.record_attempts(self.name, self._unnoted, self._unnoted_counts)  # raises while the ledger still cannot
            self._unnoted, self._unnoted_counts = [], []
        if mono >= self._next_sweep:
            self._sweep()
            self._next_sweep = mono + SWEEP_EVERY
        if mono < self._paused_until:
            return self._paused_until - mono
        rows = self._ledger.due_deliveries(self.name, BATCH)
        if rows:
            self._deliver(rows, stop)
            if self._paused_until > self._clock.monotonic():
                return self._paused_until - self._clock.monotonic()
            if len(rows) == BATCH:
                return 0.0
        if self._refresh_every is not None and mono >= self._next_refresh:
            self._refresh()
            self._next_refresh = self._clock.monotonic() + self._refresh_every
        return self._next_wait()

    # -------------------------------------------------------------------------------------------

    def _deliver(self, rows: Sequence[Any], stop: threading.Event | None) -> None:
        from normagent.ledger import AttemptResult

        deliveries = [(row.id, Delivery(row.document, row.key, self.name, attempt=row.attempts + 1, text=row.text)) for row in rows]
        outcomes = self._send_all(deliveries, stop)
        results: list[AttemptResult] = []
        counts: Counter[str] = Counter()
        failed = False
        for (row_id, delivery), failure in outcomes:
            if failure is None:
                results.append(AttemptResult(row_id, True))
                counts["ok"] += 1
                continue
            result, message = failure
            delay = self._failed(result, message, delivery) if not failed else self._paused_until - self._clock.monotonic()
            failed = True
            results.append(AttemptResult(row_id, False, result, message, self._clock.now().timestamp() + max(0.0, delay)))
            counts[result] += 1
        if not failed and results and self.failures:
            log.info("forward_recovered", forwarder=self.name, failures=self.failures)
            self.failures = 0
        try:
            self._ledger.record_attempts(self.name, results, self._counts(counts))
        except Exception:
            # Delivered, but not noted: sending these again would give the receiver each twice
            # (a file reader two lines). They are noted first on the next pass.
            self._unnoted = [r for r in results if r.delivered]
            self._unnoted_counts = self._counts(counts)
            raise

    def _send_all(
        self, deliveries: Sequence[tuple[int, Delivery]], stop: threading.Event | None
    ) -> list[tuple[tuple[int, Delivery], tuple[str, str] | None]]:
        """Send in order, ``parallel`` at a time; none starts after a failure. Returns what was tried."""
        done: list[tuple[tuple[int, Delivery], tuple[str, str] | None]] = []
        if self.parallel <= 1:
            for item in deliveries:
                if stop is not None and stop.is_set():
                    break
                failure = self._send(item[1])
                done.append((item, failure))
                if failure is not None:
                    break
            return done
        from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix=f"forward:{self.name}")
        flying: dict[Future[tuple[str, str] | None], tuple[int, Delivery]] = {}
        pending = list(deliveries)
        failed = False
        while pending or flying:
            while pending and not failed and len(flying) < self.parallel and not (stop is not None and stop.is_set()):
                item = pending.pop(0)
                flying[self._pool.submit(self._send, item[1])] = item
            if not flying:
                break
            finished, _ = wait(flying, return_when=FIRST_COMPLETED)
            for future in finished:
                failure = future.result()
                done.append((flying.pop(future), failure))
                failed = failed or failure is not None
            if failed or (stop is not None and stop.is_set()):
                pending = []
        # Failures last, so the pause is taken from the first one and the others share it.
        done.sort(key=lambda pair: pair[1] is not None)
        return done

    def _refresh(self) -> None:
        """Re-post every firing candidate this forwarder has been given (Alertmanager's endsAt)."""
        counts: Counter[str] = Counter()
        for key, document in self._ledger.firing_documents(self.name):
            delivery = Delivery(document, key, self.name, refresh=True)
            failure = self._send(delivery)
            if failure is not None:
                counts[failure[0]] += 1
                self._failed(failure[0], failure[1], delivery)
                break
            counts["ok"] += 1
        if counts:
            self._ledger.record_attempts(self.name, [], self._counts(counts))

    def _send(self, delivery: Delivery) -> tuple[str, str] | None:
        """Deliver on an idle sender (opening one if none is); None on success, else (result,
        message). Never raises. A sender that failed is closed, not reused."""
        with self._lock:
            sender = self._idle.pop() if self._idle else None
        try:
            if sender is None:
                sender = self.route.open()
            sender.send(delivery)
        except DeliveryFailed as exc:
            _close(sender)
            return exc.result if exc.result in RESULTS else "error", str(exc)
        except Exception as exc:
            _close(sender)
            return "error", f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._idle.append(sender)
        return None

    def _failed(self, result: str, message: str, delivery: Delivery) -> float:
        self.failures += 1
        common = self.route.config.common
        delay = backoff(self.failures, common.retry_min.total_seconds(), common.retry_max.total_seconds(), self._rng)
        self._paused_until = self._clock.monotonic() + delay
        log.warning(
            "forward_failed",
            forwarder=self.name,
            kind=self.route.spec.kind,
            result=result,
            error=message[:300],
            key=delivery.key,
            attempt=delivery.attempt,
            refresh=delivery.refresh,
            failures_in_a_row=self.failures,
            retry_in_s=round(delay, 3),
        )
        return delay

    def _sweep(self) -> None:
        age = self.route.config.common.dead_letter_after.total_seconds()
        dead = self._ledger.dead_letter(self.name, self._clock.now().timestamp() - age, DEAD_LETTERS.name)
        if dead:
            log.error("outbox_dead_letters", forwarder=self.name, changes=dead, older_than_s=age,
                      hint="shown by `normagent deviations list`")

    def _counts(self, counts: Mapping[str, int]) -> list[Count]:
        return [Count(ATTEMPTS.name, {"forwarder": self.name, "result": result}, n) for result, n in counts.items() if n]

    def _next_wait(self) -> float:
        mono = self._clock.monotonic()
        waits = [self._next_sweep - mono]
        due = self._ledger.next_attempt(self.name)
        if due is not None:
            waits.append(due - self._clock.now().timestamp())
        if self._refresh_every is not None:
            waits.append(self._next_refresh - mono)
        return max(0.0, min(waits))


def _close(sender: Sender | None) -> None:
    if sender is None:
        return
    try:
        sender.close()
    except Exception:
        pass


class Forwarding:
    """The workers of every enabled forwarder. Built anew on reload.

    Each worker gets its own thread (a receiver that hangs delays only its own forwarder), but
    only once it has something to do: changes in its outbox, or firing candidates to re-post. An
    idle agent, with nothing to deliver, runs no forwarder thread at all.
    """

    def __init__(self, routes: Sequence[Route], ledger: Ledger, clock: Clock) -> None:
        self.workers = [Worker(route, ledger, clock) for route in routes if route.config.enabled]
        self._ledger = ledger
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._started = False

    @property
    def names(self) -> list[str]:
        return [w.name for w in self.workers]

    def running(self) -> list[str]:
        """Forwarders whose thread runs (those that have had something to do)."""
        with self._lock:
            return sorted(self._threads)

    def wake(self) -> None:
        """Something changed in the outbox: start the workers that have work, wake the others."""
        with self._lock:
            started = self._started and not self._stop.is_set()
        if not started:
            return
        stats = self._ledger.outbox_stats()
        for worker in self.workers:
            if worker.name in stats:
                self._ensure(worker)
            worker.wake()

    def start(self) -> None:
        """Start the workers that have work left from before (pending changes, firing alerts)."""
        with self._lock:
            self._started = True
        stats = self._ledger.outbox_stats()
        for worker in self.workers:
            if worker.name in stats or (worker.refreshes and self._ledger.firing_documents(worker.name)):
                self._ensure(worker)

    def _ensure(self, worker: Worker) -> None:
        with self._lock:
            if worker.name in self._threads or self._stop.is_set():
                return
            thread = threading.Thread(target=worker.run, args=(self._stop,), name=f"forward:{worker.name}", daemon=True)
            self._threads[worker.name] = thread
        thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the workers; a send in progress ends with its own timeout (its row stays pending)."""
        self._stop.set()
        for worker in self.workers:
            worker.wake()
        with self._lock:
            threads, self._threads = list(self._threads.values()), {}
        for thread in threads:
            thread.join(timeout)


def routes_for(forwarders: Mapping[str, ForwarderConfig], specs: Mapping[str, ForwarderSpec]) -> list[Route]:
    return [Route(cfg, specs[cfg.kind]) for cfg in forwarders.values() if cfg.kind in specs]

