"""``normagent collect --once``: every enabled collector once, and what each saw — without writing state.

The quickest way for a newcomer to see the agent work, and for an operator to check a collector
after changing its settings. Nothing is committed: checkpoints start from the daemon's committed
ones when its ledger exists (so log collectors show what is new since the daemon last read), the
pseudonym key is a throwaway one unless the daemon's key exists, and the ledger is never created.

Each collector runs on its own thread with its timeout, as under the scheduler.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import field
from pathlib import Path
from typing import Any

import structlog

from normagent.clock import Clock
from normagent.errors import NoData, RunFailed, StateError, printable
from normagent.ledger import Ledger, MemoryCheckpoints
from normagent.model import Advice, Batch, CollectorSpec, Count, Event, Gauge, MaintenanceCalendar, NoMaintenance, Rollup, RollupRows, RunContext
from normagent.records import dataclass
from normagent.scheduler import advice_for
from normagent.privacy import KEY_FILE, Pseudonymiser, read_key

log = structlog.get_logger(__name__)


@dataclass
class CollectorReport:
    """What one collector did in a one-shot run."""

    name: str
    plugin: str
    status: str  # ok | no_data | failed | timeout | disabled
    duration: float = 0.0
    detail: str = ""
    counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    # Rollup rows the batches carry, per rollup name: one per batch, day and key, so a key seen in
    # two batches is two rows. Not distinct keys (``normagent parse`` counts those).
    rollup_rows: dict[str, int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    checkpoints: int = 0
    advice: list[Advice] = field(default_factory=list)  # settings valid but probably not meant here

    def add(self, batch: Batch) -> None:
        for obs in batch.observations:
            if isinstance(obs, Count):
                key = (obs.metric, obs.labels)
                self.counters[key] = self.counters.get(key, 0.0) + obs.value
            elif isinstance(obs, Gauge):
                self.gauges[(obs.metric, obs.labels)] = obs.value
            elif isinstance(obs, Rollup):
                self.rollup_rows[obs.name] = self.rollup_rows.get(obs.name, 0) + 1
            elif isinstance(obs, RollupRows):
                self.rollup_rows[obs.name] = self.rollup_rows.get(obs.name, 0) + sum(1 for value in obs.values.values() if value)
            elif isinstance(obs, Event):
                self.events.append(obs)
        self.checkpoints += len(batch.checkpoints)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "plugin": self.plugin,
            "status": self.status,
            "duration_seconds": round(self.duration, 6),
            "detail": self.detail,
            "counters": [{"metric": m, "labels": dict(lb), "value": v} for (m, lb), v in sorted(self.counters.items())],
            "gauges": [{"metric": m, "labels": dict(lb), "value": v} for (m, lb), v in sorted(self.gauges.items())],
            "rollup_rows": dict(sorted(self.rollup_rows.items())),
            "events": [{"kind": e.kind, "at": e.at.isoformat(), "key": e.key, "attrs": dict(e.attrs)} for e in self.events],
            "checkpoints": self.checkpoints,
            "advice": [{"key": a.key, "message": a.message} for a in self.advice],
        }


@dataclass(frozen=True)
class OneShotWorld:
    """The seams a one-shot run uses (the real ones in the CLI, fakes in tests)."""

    clock: Clock
    host: Any
    run_command: Any
    snmp: Any
    root: Path = Path("/")
    maintenance: MaintenanceCalendar = field(default_factory=NoMaintenance)


def collect_once(
    jobs: Sequence[tuple[CollectorSpec, Any, float]], world: OneShotWorld, state_dir: Path
) -> list[CollectorReport]:
    """Run each (spec, settings, timeout) once, in parallel; return reports in the jobs' order."""
    pseudonymise = Pseudonymiser(_existing_key(state_dir) or secrets.token_bytes(32))
    states = _committed_checkpoints(state_dir, [spec.name for spec, _, _ in jobs])
    reports = [CollectorReport(spec.name, spec.plugin, "ok") for spec, _, _ in jobs]
    threads = []
    for (spec, settings, timeout), report in zip(jobs, reports):
        ctx = _context(spec, settings, timeout, world, states.get(spec.name, MemoryCheckpoints()), pseudonymise)
        thread = threading.Thread(target=_run, args=(spec, ctx, report, world.clock), name=f"once:{spec.name}", daemon=True)
        thread.start()
        threads.append((thread, timeout, report))
    for thread, timeout, report in threads:
        thread.join(timeout + 0.5)
        if thread.is_alive():
            report.status, report.duration, report.detail = "timeout", timeout, f"still running after {timeout:g}s"
    return reports


def advise_once(jobs: Sequence[tuple[CollectorSpec, Any, float]], world: OneShotWorld) -> dict[str, list[Advice]]:
    """What each collector's ``advise`` says of its settings on this host (``check-config``).
    Reads no state and writes none."""
    pseudonymise = Pseudonymiser(secrets.token_bytes(32))  # advice carries no pseudonyms to keep
    return {
        spec.name: advice
        for spec, settings, timeout in jobs
        if (advice := advice_for(spec, _context(spec, settings, timeout, world, MemoryCheckpoints(), pseudonymise)))
    }


def _context(
    spec: CollectorSpec, settings: Any, timeout: float, world: OneShotWorld, state: Any, pseudonymise: Pseudonymiser
) -> RunContext:
    return RunContext(
        collector=spec.name,
        settings=settings,
        clock=world.clock,
        host=world.host,
        root=world.root,
        run_command=world.run_command,
        snmp=world.snmp,
        state=state,
        pseudonymise=pseudonymise,
        log=log.bind(collector=spec.name),
        deadline=world.clock.monotonic() + timeout,
        maintenance=world.maintenance,
    )


def _run(spec: CollectorSpec, ctx: RunContext, report: CollectorReport, clock: Clock) -> None:
    started = clock.monotonic()
    try:
        if spec.probe is not None:
            reason = spec.probe(ctx)
            if reason:
                report.status, report.detail = "disabled", reason
                return
        report.advice = advice_for(spec, ctx)
        for batch in spec.collect(ctx):
            if ctx.expired():
                report.status, report.detail = "timeout", "stopped at its deadline"
                break
            report.add(batch)
            if isinstance(ctx.state, MemoryCheckpoints):
                ctx.state.apply(batch.checkpoints)
    except NoData as why:
        report.status, report.detail = "no_data", str(why)
    except RunFailed as exc:  # the collector has said what and where already
        report.status, report.detail = "failed", str(exc)
    except Exception as exc:
        report.status, report.detail = "failed", f"{type(exc).__name__}: {exc}"
        log.error("collector_failed", collector=spec.name, exc_info=True)
    finally:
        report.duration = clock.monotonic() - started


def _existing_key(state_dir: Path) -> bytes | None:
    try:
        return read_key(state_dir / KEY_FILE)
    except (FileNotFoundError, PermissionError):
        return None


def _committed_checkpoints(state_dir: Path, names: Sequence[str]) -> dict[str, MemoryCheckpoints]:
    path = state_dir / "ledger.db"
    if not path.exists():
        return {}
    try:
        with Ledger.open(path) as ledger:
            return {name: MemoryCheckpoints(dict(ledger.checkpoints(name).scan())) for name in names}
    except (StateError, sqlite3.Error, PermissionError) as exc:
        log.warning("daemon_checkpoints_unreadable", path=str(path), error=str(exc))
        return {}


def render_text(reports: Sequence[CollectorReport], disabled: dict[str, str]) -> str:
    """People-readable lines: one head line per collector, its series indented below it.

    Every line is made printable: a collector's detail names paths, globs' matches and what a
    device or a file said, and a label value or an event key may come from a log; an escape
    sequence there would otherwise reach the terminal of whoever runs ``collect --once``."""
    width = max([len(r.name) for r in reports] + [len(n) for n in disabled] + [10])
    lines = []
    for report in reports:
        head = f"{report.name:<{width}}  {report.status:<8} {report.duration:8.3f}s"
        lines.append(f"{head}  {report.detail}".rstrip())
        lines.extend(f"    warning: {a.key + ': ' if a.key else ''}{a.message}" for a in report.advice)
        for (metric, labels), value in sorted({**report.counters, **report.gauges}.items()):
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            series = f"{metric}{{{label_text}}}" if labels else metric
            lines.append(f"    {series} {value:g}")
        for name, rows in sorted(report.rollup_rows.items()):
            lines.append(f"    rollup {name}: {rows} row{'s' if rows != 1 else ''} (one per batch, day and key; not distinct keys)")
        for event in report.events:
            lines.append(f"    event {event.kind} at {event.at.isoformat()} ({event.key})")
    for name, reason in sorted(disabled.items()):
        lines.append(f"{name:<{width}}  {'disabled':<8} {'':>9}  {reason}")
    return "\n".join(printable(line) for line in lines) + "\n"
