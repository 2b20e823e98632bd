"""The daemon's wiring: config + plugins + ledger + scheduler + exposition (+ syslog receiver).

Lifecycle: ``Agent.start()`` loads and validates everything before anything starts (a bad config
starts nothing), opens the ledger, starts the HTTP server, the syslog receiver when configured and
the scheduler, then tells systemd it is ready. ``serve()`` waits for signals: SIGHUP reloads (an
invalid new config keeps the old one running and logs why), SIGTERM/SIGINT stop (new runs stop,
running ones get ``shutdown_grace`` to finish; log readers end at their next block and commit what
they read (``RunContext.stopping()``); runs that timed out already are not waited for but named in
``collectors_still_running_at_exit``; everything committed is consistent anyway, since each batch is
one transaction). Signals that come while ``run`` is still importing are caught from its first line
(``cli.EarlySignals``). The systemd watchdog is fed only while the scheduler loop is alive
and the state is where it was.

State that vanishes is never replaced silently. At start, a missing or empty ledger where one
existed is an error (``StateLost``, exit 73) unless ``normagent run --new-state`` says to start
afresh. While running, a ledger deleted under the agent (the whole state directory removed, say) is
noticed within seconds: the agent logs ``state_lost``, stores nothing more, turns unhealthy
(``/healthz`` 503, no watchdog: systemd restarts it) and writes the ledger and the pseudonym key it
still holds back to the state directory, so the restart continues exactly where counting stopped.

Imports everything; nothing imports it except cli.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from normagent import __version__, memory, systemd
from normagent.clock import Clock, SystemClock
from normagent.config import Config, Section, find_config_path, load_config
from normagent.deviations import Deviations, DeviationSettings, check_rule, validate_deviations
from normagent.errors import ConfigError, NormagentError, StateError
from normagent.exposition import HEALTH_METRICS, ExpositionView, MetricsApp
from normagent.forward import ATTEMPTS, DEAD_LETTERS, metrics_for
from normagent.ledger import Ledger
from normagent.loader import Plugins, build_plugins
from normagent.log import configure_logging
from normagent.maintenance import Calendar, MaintenanceSettings, validate_maintenance
from normagent.model import CollectorSpec, RunContext
from normagent.records import dataclass
from normagent.report.settings import ReportSettings, validate_report
from normagent.privacy import KEY_FILE, Pseudonymiser, load_or_create_key
from normagent.scheduler import Job, Scheduler, advice_for
from normagent.sources.command import run_command
from normagent.sources.host import ProcHost
from normagent.sources.snmp_lazy import LazySnmpClient
from normagent.sources.spool import SPOOL_KEY, SpoolShare
from normagent.sources.syslog import SyslogReceiver, SyslogSettings, validate_syslog
from normagent.syslog_stats import syslog_collector
from normagent.web import WebSettings, parse_listen, start_server, validate_web

log = structlog.get_logger(__name__)

LEDGER_FILE = "ledger.db"
PRUNE_EVERY = timedelta(hours=6)
PRUNE_RETRY = timedelta(minutes=5)  # after a prune the ledger could not store (a full disk)


def sections() -> dict[str, Section]:
    """The top-level tables the agent owns besides agent/plugins/collectors/rules."""
    return {
        "web": Section(WebSettings, check=validate_web),
        "syslog": Section(SyslogSettings, check=validate_syslog, optional=True),
        "maintenance": Section(MaintenanceSettings, check=validate_maintenance),
        "deviations": Section(DeviationSettings, check=validate_deviations),
        "report": Section(ReportSettings, check=validate_report),
    }


def plugins_factory(settings: Any) -> Plugins:
    disabled = [*settings.disable, *filter(None, os.environ.get("NORMAGENT_DISABLE_PLUGINS", "").split(","))]
    return build_plugins(extra=settings.extra, entry_points_enabled=settings.entry_points, disabled=disabled)


def read_config(path: Path | None, factory: Callable[[Any], Plugins] = plugins_factory) -> tuple[Config, Plugins]:
    """Find and validate the configuration (``ConfigError`` lists every problem)."""
    return load_config(find_config_path(path), plugins_for=factory, sections=sections(), rule_check=check_rule)


@dataclass
class Setup:
    """One generation of configuration: swapped as a whole by a successful reload."""

    config: Config
    plugins: Plugins
    jobs: list[Job]
    view: ExpositionView
    disabled: Mapping[str, str] = field(default_factory=dict)  # collector → why (config or probe)


class Agent:
    """The running daemon. Create, ``start()``, then ``serve()`` until a stop signal."""

    def __init__(self, config_path: Path | None, *, clock: Clock | None = None, new_state: bool = False) -> None:
        self._config_path = config_path
        self._new_state = new_state
        self._clock = clock or SystemClock()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wake = threading.Event()  # set by signal handlers so serve() reacts at once
        self._setup: Setup | None = None
        self._ledger: Ledger | None = None
        self._scheduler: Scheduler | None = None
        self._scheduler_thread: threading.Thread | None = None
        self._server: Any = None
        self._syslog: SyslogReceiver | None = None
        self._spool: SpoolShare | None = None
        self._spool_readers: tuple[str, ...] = ()  # enabled collectors that read the spool
        self._host = ProcHost()
        self._snmp = LazySnmpClient()
        self._pseudonymise: Pseudonymiser | None = None
        self._calendar: Calendar | None = None
        self._state_lost = ""  # why the ledger is lost, once noticed; the agent is unhealthy from then on
        self._rescued: Path | None = None
        self._rescue_error = ""
        self._deviations: Deviations | None = None

    # -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Validate, open state and start serving. Raises a ``NormagentError`` before starting anything."""
        # What loading the plugins logs (a plugin that fails to import) comes before the config is
        # known: log it the default way (JSON off a terminal), then as the config says.
        configure_logging()
        config, plugins = read_config(self._config_path)
        configure_logging(config.agent.log_level, config.agent.log_format)
        state_dir = config.state_dir()
        # The pseudonym key is created with the ledger: a key without its ledger means a lost one.
        ledger = Ledger.open(
            state_dir / LEDGER_FILE, clock=self._clock, witnesses=[state_dir / KEY_FILE], new_state=self._new_state
        )
        self._ledger = ledger
        if self._new_state:
            log.warning("state_started_afresh", ledger=str(ledger.path), host_id=ledger.host_id,
                        note="--new-state: counting starts at 0, logs are read again from their start positions")
        try:
            try:
                os.chmod(state_dir, 0o700)
                self._pseudonymise = Pseudonymiser(load_or_create_key(state_dir))
            except OSError as exc:  # a read-only filesystem, a key that cannot be created or read …
                where = exc.filename or state_dir
                raise StateError(f"{where}: cannot prepare the state directory: {exc.strerror or exc}") from exc
            self._spool = SpoolShare(state_dir / "syslog", self._spool_positions)
            # Known before the receiver starts: it asks them how far they have read.
            self._spool_readers = spool_readers(config, plugins)
            syslog_settings = config.sections.get("syslog")
            if syslog_settings is not None:
                self._syslog = SyslogReceiver(syslog_settings, state_dir / "syslog", self._clock, read_offset=self._spool.read_offset)
                self._syslog.start()
            setup = self._prepare(config, plugins)
            self._setup = setup
            # The engine goes into the ledger before the first collector commits anything.
            self._deviations = Deviations(config, plugins, ledger, self._clock, __version__, [j.name for j in setup.jobs])
            self._deviations.start()
            self._server = start_server(config.sections["web"], MetricsApp(ledger.snapshot, self._view, self._http_stats), self.healthy)
            self._scheduler = Scheduler(setup.jobs, ledger=ledger, context_for=self._context, clock=self._clock)
            self._scheduler_thread = threading.Thread(target=self._scheduler.run, args=(self._stop,), name="scheduler", daemon=True)
            self._scheduler_thread.start()
        except BaseException:
            self.close()
            raise
        log.info(
            "agent_started",
            version=__version__,
            config=str(config.path) if config.path else "built-in defaults",
            state_dir=str(state_dir),
            listen=self._server.address,
            collectors=[job.name for job in setup.jobs],
            disabled=dict(setup.disabled),
            rules=len(self._deviations.engine.rules) if self._deviations else 0,
            forwarders=self._deviations.forwarders if self._deviations else [],
            plugin_problems=[str(p) for p in plugins.problems],
        )
        systemd.notify("READY=1", f"STATUS=collecting with {len(setup.jobs)} collectors")

    def serve(self) -> int:
        """Wait for stop or reload requests; feed the watchdog. Returns the exit code."""
        watchdog = systemd.watchdog_interval()
        next_prune = self._clock.monotonic()
        give_back = memory.GiveBackSchedule.starting(self._clock.monotonic())
        next_rules = 0.0
        while not self._stop.is_set():
            self._wake.wait(timeout=min(watchdog or 5.0, 5.0, next_rules))
            self._wake.clear()
            if self._stop.is_set():
                break
            if self._deviations is not None:
                next_rules = self._deviations.tick()  # what time alone changes: `for`, windows, holds
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            self._watch_state()
            if watchdog and self.healthy():
                systemd.notify("WATCHDOG=1")
            if self._scheduler and not self._scheduler.running():
                full = give_back.due(self._clock.monotonic())
                if full is not None:
                    if self._ledger is not None:
                        self._ledger.shrink_memory()
                    memory.give_back_memory(full=full)
            if self._clock.monotonic() >= next_prune and self._ledger and self._setup and not self._state_lost:
                next_prune = self._clock.monotonic() + PRUNE_EVERY.total_seconds()
                try:
                    cut = self._clock.now() - self._setup.config.agent.retention
                    removed = self._ledger.prune(cut) + self._ledger.prune_deviations(cut)
                except StateError as exc:
                    log.warning("ledger_prune_failed", reason=exc.reason, error=str(exc))
                    next_prune = self._clock.monotonic() + PRUNE_RETRY.total_seconds()
                else:
                    if removed:
                        log.info("ledger_pruned", rows=removed)
        self.close()
        return 0

    def request_stop(self, *_: object) -> None:
        self._stop.set()
        self._wake.set()
        if self._scheduler:
            self._scheduler.wake()

    def request_reload(self, *_: object) -> None:
        self._reload.set()
        self._wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    def healthy(self) -> bool:
        """Alive enough to be scraped and to feed the watchdog: the scheduler loop is running and
        the ledger is where it was."""
        thread = self._scheduler_thread
        return thread is not None and thread.is_alive() and not self._stop.is_set() and not self._state_lost

    def _watch_state(self) -> None:
        """Notice a ledger lost under the running agent; say so, and put it back on disk for the restart.

        SQLite would go on committing to the deleted file, and the next start would find nothing:
        a new ledger, a new pseudonym key, every log counted again. Instead the ledger stops storing
        (its commits raise ``StateLost``: collectors go down with that reason), the agent turns
        unhealthy, and the ledger and key it still holds are written back, retried until it works.
        """
        ledger = self._ledger
        if ledger is None or self._rescued is not None:
            return
        why = ledger.lost()
        if why is None:
            return
        if not self._state_lost:
            self._state_lost = why
            log.error("state_lost", why=why, effect="nothing more is counted until the agent restarts; "
                      "it is unhealthy from now on, and writes back the ledger it still has open")
        try:
            where = ledger.rescue()
            key_back = False
            if where == ledger.path and self._pseudonymise is not None:
                key = self._pseudonymise.key
                key_back = load_or_create_key(ledger.path.parent, key) == key
        except (StateError, OSError) as exc:
            if str(exc) != self._rescue_error:
                log.error("state_rescue_failed", error=str(exc), retrying=True)
            self._rescue_error = str(exc)
            return
        self._rescued = where
        log.warning("state_rescued", ledger=str(where), pseudonym_key_restored=key_back,
                  next="restart the agent (systemd does when the watchdog expires): it continues where "
                  "counting stopped" if where == ledger.path else
                  f"{ledger.path} is not the ledger the agent had open (another file, or one cut short): the copy is "
                  "beside it; check it (sqlite3 <copy> 'PRAGMA quick_check') and move it there to continue from it")

    def reload(self) -> None:
        """Re-read the configuration; on any problem keep the running one and log why."""
        assert self._setup is not None and self._scheduler is not None
        systemd.reloading()
        old = self._setup.config
        kept = str(old.path or "built-in defaults")
        try:
            config, plugins = read_config(self._config_path)
        except ConfigError as exc:
            log.error("config_reload_failed", problems=[str(p) for p in exc.problems], kept=kept)
            systemd.notify("READY=1")
            return
        if config.state_dir() != old.state_dir():
            log.error("config_reload_failed", problems=["agent.state_dir cannot change while running; restart instead"], kept=kept)
            systemd.notify("READY=1")
            return
        if config.sections["web"] != old.sections["web"] and not self._restart_server(config, old):
            systemd.notify("READY=1")
            return
        configure_logging(config.agent.log_level, config.agent.log_format)
        self._spool_readers = spool_readers(config, plugins)
        if config.sections.get("syslog") != old.sections.get("syslog"):
            self._restart_syslog(config)
        setup = self._prepare(config, plugins)
        for name, job in {job.name: job for job in self._setup.jobs}.items():
            now = next((j for j in setup.jobs if j.name == name), None)
            # A removed collector's gauges, or those of one whose settings changed (a mount or a
            # service no longer watched), are no longer true: they go, and the next run sets them anew.
            if now is None or now.settings != job.settings:
                try:
                    self._ledger_or_fail().forget_gauges(name)
                except StateError as exc:
                    log.warning("gauges_not_forgotten", collector=name, reason=exc.reason, error=str(exc))
        self._setup = setup
        self._restart_deviations(config, plugins, [j.name for j in setup.jobs])
        self._scheduler.replace_jobs(setup.jobs)
        log.info("config_reloaded", config=str(config.path or "built-in defaults"), collectors=[j.name for j in setup.jobs])
        systemd.notify("READY=1", f"STATUS=collecting with {len(setup.jobs)} collectors")

    def _restart_deviations(self, config: Config, plugins: Plugins, collectors: Sequence[str]) -> None:
        """New rules and forwarders: the old workers stop (what they did not deliver stays in the
        outbox for the new ones), and the new engine replaces the old in the ledger at once."""
        if self._deviations is not None:
            self._deviations.stop()
        self._deviations = Deviations(config, plugins, self._ledger_or_fail(), self._clock, __version__, collectors)
        self._deviations.start()

    def _restart_syslog(self, config: Config) -> None:
        """Apply changed [syslog] settings: the old receiver stops (its spool stays), a new one starts."""
        if self._syslog is not None:
            self._syslog.stop()
            self._syslog = None
        settings = config.sections.get("syslog")
        if settings is None:
            return
        assert self._spool is not None
        receiver = SyslogReceiver(settings, config.state_dir() / "syslog", self._clock, read_offset=self._spool.read_offset)
        try:
            receiver.start()
        except NormagentError as exc:
            log.error("syslog_receiver_failed", error=str(exc))
            return
        self._syslog = receiver

    def _restart_server(self, config: Config, old: Config) -> bool:
        """Serve with the new [web] settings; on failure serve the old ones again and say so.

        On the same address (the usual case: new users, TLS files or limits) the new server takes
        over the old one's listening socket, so the port is never free: no scrape is refused
        meanwhile and no other process can take it (which used to leave the agent unable to
        serve even the old settings, and end). On another address the old server stops first,
        since the new address may overlap it ("0.0.0.0:9824" after "127.0.0.1:9824").
        """
        web, old_web = config.sections["web"], old.sections["web"]
        app = MetricsApp(self._ledger_or_fail().snapshot, self._view, self._http_stats)
        listener = self._server.hand_over() if parse_listen(web.listen) == parse_listen(old_web.listen) else None
        if listener is None:
            self._server.stop()
        try:
            self._server = start_server(web, app, self.healthy, listener=listener)
            return True
        except NormagentError as exc:
            log.error("config_reload_failed", problems=[str(exc)], kept=str(old.path or "built-in defaults"))
            self._server = start_server(old_web, app, self.healthy, listener=listener)
            return False

    def close(self) -> None:
        """Stop everything in order; safe to call twice."""
        systemd.notify("STOPPING=1")
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.wake()
            grace = self._setup.config.agent.shutdown_grace.total_seconds() if self._setup else 10.0
            self._scheduler.wait_idle(grace)
            running, abandoned = self._scheduler.running(), self._scheduler.abandoned()
            if running or abandoned:
                # Their threads end with the process; what they read and did not commit is read
                # again after the restart (their checkpoints say where).
                log.warning("collectors_still_running_at_exit", collectors=running, timed_out=abandoned)
            self._scheduler = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._syslog is not None:
            self._syslog.stop()
            self._syslog = None
        if self._deviations is not None:
            self._deviations.stop()
            self._deviations = None
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
            log.info("agent_stopped")
        self._snmp.close()

    # -------------------------------------------------------------------------------------------

    def _ledger_or_fail(self) -> Ledger:
        if self._ledger is None:
            raise NormagentError("the ledger is closed")
        return self._ledger

    def _http_stats(self) -> dict[str, int] | None:
        server = self._server
        return None if server is None else dataclasses.asdict(server.stats())

    def _view(self) -> ExpositionView:
        assert self._setup is not None
        return self._setup.view

    def _spool_positions(self) -> list[Any]:
        """The committed spool positions of the collectors that read the spool (for SpoolShare)."""
        ledger = self._ledger
        if ledger is None:
            return []
        return [ledger.checkpoints(name).get(SPOOL_KEY) for name in self._spool_readers]

    def _prepare(self, config: Config, plugins: Plugins) -> Setup:
        # One calendar per configuration generation, shared by every collector's context.
        self._calendar = Calendar(config.sections["maintenance"])
        specs = dict(plugins.collectors())
        if self._syslog is not None:
            spec = syslog_collector(self._syslog)
            specs[spec.name] = spec
        jobs, disabled = [], {}
        for name, spec in specs.items():
            job = job_for(spec, config)
            if job is None:
                disabled[name] = "disabled in the configuration"
                continue
            reason = self._probe(job)
            if reason:
                disabled[name] = reason
                log.info("collector_disabled", collector=name, reason=reason)
                continue
            for advice in advice_for(spec, self._context(job, self._clock.monotonic() + job.timeout)):
                log.warning("collector_advice", collector=name, key=advice.key, advice=advice.message)
            jobs.append(job)
        # The spool keeps what these have not committed; set before the receiver starts or reloads.
        self._spool_readers = tuple(job.name for job in jobs if job.spec.reads_syslog_spool)
        metrics = {m.name: m for spec in specs.values() for m in spec.metrics}
        forwarders = [name for name, fc in config.forwarders.items() if fc.enabled]
        # The forwarders' counters are ledger counters, with a zero series per configured forwarder.
        metrics.update({m.name: m for m in metrics_for(forwarders) if m.name in (ATTEMPTS.name, DEAD_LETTERS.name)})
        ledger = self._ledger_or_fail()
        ledger.declare(metrics.values())
        ledger.declare(HEALTH_METRICS)
        failed = plugins.failed()
        # Plugins disabled on purpose are not exported; loaded and broken ones are.
        plugin_up = {i.name: i.name not in failed for i in plugins.infos if i.loaded or i.name in failed}
        view = ExpositionView(metrics=metrics, collectors=[j.name for j in jobs], plugins=plugin_up, version=__version__,
                              forwarders=forwarders)
        return Setup(config, plugins, jobs, view, disabled)

    def _probe(self, job: Job) -> str | None:
        if job.spec.probe is None:
            return None
        try:
            return job.spec.probe(self._context(job, self._clock.monotonic() + job.timeout))
        except Exception as exc:
            log.error("collector_probe_failed", collector=job.name, error=f"{type(exc).__name__}: {exc}")
            return f"probe failed: {type(exc).__name__}: {exc}"

    def _context(self, job: Job, deadline: float) -> RunContext:
        assert self._pseudonymise is not None
        return RunContext(
            collector=job.name,
            settings=job.settings,
            clock=self._clock,
            host=self._host,
            root=Path("/"),
            # A command in flight is killed at shutdown (its run fails, nothing of it committed).
            run_command=functools.partial(run_command, stop=self._stop.is_set),
            snmp=self._snmp,
            state=self._ledger_or_fail().checkpoints(job.name),
            pseudonymise=self._pseudonymise,
            log=structlog.get_logger("normagent.collector").bind(collector=job.name),
            deadline=deadline,
            stop_requested=self._stop.is_set,
            maintenance=self._calendar or Calendar(MaintenanceSettings()),
            syslog_spool=self._spool if self._syslog is not None and job.spec.reads_syslog_spool else None,
        )


def run_agent(config_path: Path | None, early_signals: Sequence[int] = (), *, new_state: bool = False) -> int:
    """``normagent run``: start, serve until stopped. Errors before start propagate to the CLI.

    Args:
        config_path: ``--config``, or None for the usual places.
        early_signals: Signals recorded before the agent's handlers existed (``cli.EarlySignals``):
            a SIGTERM or SIGINT among them stops the agent before it starts anything; a SIGHUP
            needs nothing, as the configuration is read after it anyway.
        new_state: ``--new-state``: start a new ledger where the old one is lost, on purpose.
    """
    memory.limit_malloc_arenas()  # before the first thread: glibc fixes the limit then
    agent = Agent(config_path, new_state=new_state)
    agent.install_signal_handlers()
    if any(signum in (signal.SIGTERM, signal.SIGINT) for signum in early_signals):
        return 0
    agent.start()
    memory.settle_after_start()
    return agent.serve()


def job_for(spec: CollectorSpec, config: Config) -> Job | None:
    """The collector as configured, or None when the configuration disables it.

    Collectors the configuration does not know (the agent's own, such as ``core.syslog``) run with
    their spec's defaults.
    """
    cc = config.collectors.get(spec.name)
    if cc is None:
        settings = spec.settings() if spec.settings else None
        return Job(spec, spec.interval.total_seconds(), spec.timeout.total_seconds(), settings)
    if not cc.enabled:
        return None
    return Job(spec, cc.interval.total_seconds(), cc.timeout.total_seconds(), cc.settings)


def spool_readers(config: Config, plugins: Plugins) -> tuple[str, ...]:
    """The collectors the configuration enables that read the syslog spool."""
    return tuple(
        name for name, spec in plugins.collectors().items() if spec.reads_syslog_spool and job_for(spec, config) is not None
    )


def enabled_specs(config: Config, plugins: Plugins) -> list[tuple[CollectorSpec, Any, float]]:
    """(spec, settings, timeout) of every collector the configuration enables, for ``collect --once``."""
    jobs = (job_for(spec, config) for spec in plugins.collectors().values())
    return [(job.spec, job.settings, job.timeout) for job in jobs if job is not None]
