"""A month of the demo clinic through the real collectors, on a simulated clock, into a real ledger.

The loop advances the clock an hour at a time. At each step the clinic writes what happened
by then (``Clinic.write_until``), and every collector that is due runs once through
``scheduler.execute`` (the function the scheduler's threads and ``collect --once`` run: each batch
committed with its checkpoint in one transaction, the rules that watch it evaluated in that
transaction), its outcome stored by ``Ledger.record_run`` — so the ledger's hourly run history, its
counters per hour and its candidates are those of a month of a real agent. Every hour the whole
rule set is evaluated as the agent's timer does (``for`` durations, holds), and the clinic's IT
lead follows some candidates up a few hours after they fired (``Ledger.ack``, as ``normagent
deviations ack``). Collectors run one after the other in name order, not on the scheduler's
threads: the month then comes out the same every time.

What the demo puts in place of the host: ``DemoHost`` (fixed CPU, memory and disk figures; the
EPJ server's process is gone during the clinic's outages) and ``demo_commands`` (journalctl for
the demo's own journal file; every other host command — apt's index lists — answers "not
available", so nothing of the real host enters the demo).

Imports the core (scheduler, ledger, deviations, exposition, agent for ``job_for``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from normagent.model import CommandResult, RunContext
from normagent.records import dataclass
from normagent.testing import FakeClock  # the demo's clock moves only when the replay says

if TYPE_CHECKING:
    from normagent.config import Config
    from normagent.demo.clinic import Clinic
    from normagent.exposition import ExpositionView
    from normagent.ledger import Ledger
    from normagent.loader import Plugins
    from normagent.privacy import Pseudonymiser
    from normagent.scheduler import Job

STEP = timedelta(hours=1)
HOUR = timedelta(hours=1)
FOLLOW_UP_AFTER = timedelta(hours=3)
# What the clinic's IT lead writes when following a candidate up (``normagent deviations ack``), a few
# hours after it fired; the EDI candidates are left open, so the report shows both kinds. No names.
FOLLOW_UP = {
    "access.account_locked": "Kontoen låst opp etter telefon til IKT-leder; brukeren valgte nytt passord.",
    "access.failed_from_network": "SSH stengt mot internett i brannmuren; fjerntilgang bare gjennom VPN.",
    "access.failed_logins_burst": "Samme hendelse som passordsprøytingen fra ett nett; SSH stengt mot internett.",
    "access.reset_outside_hours": "Kontrollert: planlagt passordbytte gjort av driftsleverandøren.",
    "malware.detection": "Filen satt i karantene; vedlegget blokkert i e-postfilteret; maskinen skannet uten funn.",
    "updates.security_update_failed": "Oppdateringen kjørt på nytt for hånd neste morgen; vellykket.",
    "firewall.port_burst": "Skanning stoppet av brannmuren; ingen åpne porter mot internett.",
    "availability.service_down": "EPJ-tjenesten startet på nytt; årsak meldt til EPJ-leverandøren.",
    "availability.unplanned_downtime": "Samme brudd som over; EPJ-leverandøren retter feilen i neste versjon.",
}


class DemoHost:
    """The clinic server's host facts: steady figures, and the EPJ process absent in an outage."""

    def __init__(self, clinic: Clinic, clock: FakeClock) -> None:
        self._clinic = clinic
        self._clock = clock
        self._boot = (clinic.start - timedelta(days=40)).timestamp()

    def boot_time(self) -> float:
        return self._boot

    def cpu_seconds(self) -> Mapping[str, float]:
        up = self._clock.now().timestamp() - self._boot
        return {"user": up * 0.21, "system": up * 0.07, "idle": up * 3.6, "iowait": up * 0.02}

    def cpu_count(self) -> int:
        return 4

    def load_average(self) -> tuple[float, float, float]:
        return (0.42, 0.37, 0.31)

    def memory(self) -> Mapping[str, float]:
        return {"total": 16 * 2**30, "available": 9.5 * 2**30, "swap_total": 2 * 2**30, "swap_used": 0.1 * 2**30}

    def disk_usage(self, path: str) -> Mapping[str, float]:
        return {"total": 500 * 2**30, "used": 212 * 2**30, "free": 288 * 2**30}

    def process_running(self, name: str) -> bool:
        from normagent.demo.clinic import EPJ_PROCESS

        now = self._clock.now()
        if name != EPJ_PROCESS:
            return False
        return not any(o.start <= now < o.end for o in self._clinic.outages)


def demo_commands(argv: Sequence[str], *, timeout: float = 10.0) -> CommandResult:
    """journalctl runs (over the demo's journal file: the collector's settings name it); anything
    else is not available in the demo."""
    if argv and Path(argv[0]).name == "journalctl":
        from normagent.sources.command import run_command

        return run_command(argv, timeout=timeout)
    return CommandResult(argv=tuple(argv), returncode=None, error="not available in the demo")


@dataclass
class ReplayStats:
    hours: int = 0
    runs: int = 0
    failed: int = 0
    evaluations: int = 0
    followed_up: int = 0


class Progress:
    """A tqdm bar over the month's days on a terminal; a plain line per simulated week otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._bar: Any = None
        self._last = -1
        self._total = 0

    def start(self, total: int) -> None:
        if self._stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc="demo: the month", unit="day", file=self._stream, leave=False)
        self._total = total

    def day(self, done: int, at: datetime) -> None:
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            return
        if done != self._last and (done % 7 == 0 or done == self._total) and done:
            self._last = done
            print(f"demo: day {done} of {self._total} replayed ({at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC)",
                  file=self._stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def replay(
    config: Config,
    plugins: Plugins,
    clinic: Clinic,
    ledger: Ledger,
    clock: FakeClock,
    pseudonymise: Pseudonymiser,
    progress: Progress,
) -> ReplayStats:
    """Run the month (see the module docstring). The clock ends at the month's end."""
    from normagent import __version__
    from normagent.agent import job_for
    from normagent.deviations import build_engine
    from normagent.maintenance import Calendar
    from normagent.scheduler import execute
    from normagent.sources.snmp_lazy import LazySnmpClient

    jobs = sorted((job for spec in plugins.collectors().values() if (job := job_for(spec, config)) is not None), key=lambda j: j.name)
    exposition_view(config, plugins, ledger, __version__)  # declares every metric
    engine = build_engine(config, plugins, ledger.host_id, __version__)
    ledger.use_rules(engine, (), collectors=[j.name for j in jobs], watches=engine.watches)
    host = DemoHost(clinic, clock)
    calendar = Calendar(config.sections["maintenance"])
    snmp = LazySnmpClient()
    stats = ReplayStats()
    due = {job.name: clock.now() for job in jobs}
    days = (clinic.end - clinic.start) // timedelta(days=1)
    progress.start(days)
    next_evaluation = clock.now() + HOUR
    followed: set[int] = set()

    def context(job: Job) -> RunContext:
        return RunContext(
            collector=job.name, settings=job.settings, clock=clock, host=host, root=Path("/"), run_command=demo_commands,
            snmp=snmp, state=ledger.checkpoints(job.name), pseudonymise=pseudonymise,
            log=structlog.get_logger("normagent.collector").bind(collector=job.name),
            deadline=clock.monotonic() + job.timeout, maintenance=calendar,
        )

    while True:
        now = clock.now()
        clinic.write_until(now)
        for job in jobs:
            if now < due[job.name]:
                continue
            if job.name == "access.journal_errors":
                clinic.flush_journal(now)
            outcome = execute(job, context(job), ledger, clock, now, clock.monotonic())
            ledger.record_run(outcome)
            stats.runs += 1
            stats.failed += not outcome.ok
            due[job.name] = now + timedelta(seconds=job.interval)
        if now >= next_evaluation:
            ledger.evaluate_rules()
            stats.evaluations += 1
            for candidate in ledger.candidates(("firing", "resolved")):
                note = FOLLOW_UP.get(candidate.rule)
                if note and candidate.id not in followed and candidate.fired_at and now - candidate.fired_at >= FOLLOW_UP_AFTER:
                    ledger.ack(candidate.id, note)
                    followed.add(candidate.id)
                    stats.followed_up += 1
            next_evaluation += HOUR
            stats.hours += 1
            progress.day(min(days, (now - clinic.start) // timedelta(days=1)), now)
        if now >= clinic.end:
            break
        clock.advance(STEP.total_seconds())
    progress.day(days, clock.now())
    return stats


def exposition_view(config: Config, plugins: Plugins, ledger: Ledger, version: str) -> ExpositionView:
    """What ``/metrics`` shows, as the agent builds it (every collector's metrics, the health gauges)."""
    from normagent.agent import job_for
    from normagent.exposition import HEALTH_METRICS, ExpositionView

    specs = plugins.collectors()
    metrics = {m.name: m for spec in specs.values() for m in spec.metrics}
    ledger.declare(metrics.values())
    ledger.declare(HEALTH_METRICS)
    collectors = sorted(name for name, spec in specs.items() if job_for(spec, config) is not None)
    plugin_up = {i.name: True for i in plugins.infos if i.loaded}
    return ExpositionView(metrics=metrics, collectors=collectors, plugins=plugin_up, version=version)
