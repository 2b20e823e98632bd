"""The deviation side put together: rules as configured, the engine, the timer, the forwarders.

``rules.py`` is pure and ``forward/`` only delivers; this module joins them to the configuration,
the plugins and the ledger, for the agent and the ``rules``/``deviations`` commands alike:

- ``configured_rules``: the plugins' default rules with ``[rules."<name>"]`` over them, plus the
  site's own, completed (texts, owner, CIA, hold) — and which of them are active: a rule whose
  metric only disabled collectors declare is inactive (it would only ever see silence);
- ``check_rule``: the check ``config.load_config`` runs on every ``[rules."<name>"]`` table;
- ``Deviations``: the engine installed in the ledger (evaluated inside each commit), a timer
  thread for what time alone changes, and the forwarding workers; built anew on reload.

Imports rules, forward, ledger, config, loader and model; nothing imports it but agent and cli.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from normagent import rules
from normagent.errors import StateError
from normagent.forward import Forwarding, routes_for
from normagent.model import HEALTH_GAUGES, RuleSpec
from normagent.records import dataclass

if TYPE_CHECKING:
    from normagent.clock import Clock
    from normagent.config import Config, RuleSettings
    from normagent.ledger import Ledger
    from normagent.loader import Plugins

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DeviationSettings:
    """``[deviations]``: how rules are evaluated and what every candidate says about this server.

    Attributes:
        evaluate_every: How often every rule is evaluated for what time alone changes (a rule whose metric a commit changes is evaluated in that commit too).
        hold: How long a firing candidate's condition must stay clear before it is resolved; if it returns sooner it is the same candidate (a rule's own hold wins).
        location: Where this server is, in words the deviation handler knows (e.g. "Legekontoret Nord, serverrommet"); put in every candidate. No personal data.
        max_candidates_per_rule: Candidates one rule may have open at once (one per network, account …); more are gathered into one whose labels say "other".
    """

    evaluate_every: timedelta = field(default=timedelta(seconds=30), metadata={"min": timedelta(seconds=1), "max": timedelta(hours=1)})
    hold: timedelta = field(default=timedelta(minutes=15), metadata={"min": timedelta(0), "max": timedelta(days=7)})
    location: str = ""
    max_candidates_per_rule: int = field(default=20, metadata={"min": 1, "max": 1000})


def validate_deviations(settings: DeviationSettings) -> list[tuple[str, str]]:
    if len(settings.location) > 200:
        return [("location", "is longer than 200 characters")]
    if "@" in settings.location:
        return [("location", "looks like an e-mail address; write where the server is, not who runs it (no personal data)")]
    return []


def rule_metrics(plugins: Plugins) -> dict[str, tuple[str, ...]]:
    """Every metric a rule may watch → its labels: what collectors declare, and the agent's health gauges."""
    found = {name: spec.labels for name, spec in plugins.metrics().items()}
    found.update({name: ("collector",) for name in HEALTH_GAUGES})
    return found


def metric_kinds(plugins: Plugins) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every metric a rule may watch → (kind, labels), for ``rules.prometheus_rules``."""
    kinds: dict[str, tuple[str, tuple[str, ...]]] = {name: (spec.kind, spec.labels) for name, spec in plugins.metrics().items()}
    kinds.update({name: ("gauge", ("collector",)) for name in HEALTH_GAUGES})
    return kinds


def check_rule(name: str, settings: RuleSettings, plugins: Plugins) -> list[tuple[str, str]]:
    """What is wrong with ``[rules."<name>"]`` beyond its types (``config.RuleCheck``)."""
    base = plugins.rules().get(name)
    try:
        rule = rules.configured_rule(name, settings.written(), base)
    except (KeyError, TypeError, ValueError) as exc:
        return [("", f"cannot be built: {exc}")]
    return rules.rule_problems(rule, rule_metrics(plugins))


@dataclass(frozen=True)
class ConfiguredRule:
    """A rule as the agent runs it, and why it does not run if it does not."""

    rule: RuleSpec  # completed
    origin: str  # the plugin, or "site"
    inactive: str = ""  # "disabled in the configuration", "only disabled collectors declare normagent_x"

    @property
    def active(self) -> bool:
        return not self.inactive


def configured_rules(config: Config, plugins: Plugins) -> list[ConfiguredRule]:
    """Every rule, default and site, with the configuration over it, sorted by name."""
    settings: DeviationSettings = config.sections.get("deviations") or DeviationSettings()
    defaults = plugins.rules()
    names = sorted({*defaults, *config.rules})
    enabled_collectors = {name for name, cc in config.collectors.items() if cc.enabled}
    declared_by: dict[str, set[str]] = {}
    for spec in plugins.collectors().values():
        for declared in spec.metrics:
            declared_by.setdefault(declared.name, set()).add(spec.name)
    out: list[ConfiguredRule] = []
    for name in names:
        table = config.rules.get(name)
        base = defaults.get(name)
        rule = rules.configured_rule(name, table.written(), base) if table is not None else base
        assert rule is not None
        rule = rules.complete(rule, settings.hold)
        origin = base.plugin if base is not None else "site"
        inactive = ""
        if table is not None and not table.enabled:
            inactive = "disabled in the configuration"
        else:
            kind, _, target = rule.watch.partition(":")
            metric = target if kind == "absent" else rule.watch if kind not in ("rollup", "event") else ""
            owners = declared_by.get(metric)
            if owners and not owners & enabled_collectors and config.collectors:
                inactive = f"only disabled collectors declare {metric} ({', '.join(sorted(owners))})"
        out.append(ConfiguredRule(rule, origin, inactive))
    return out


def build_engine(config: Config, plugins: Plugins, host_id: str, version: str) -> rules.Engine:
    settings: DeviationSettings = config.sections.get("deviations") or DeviationSettings()
    active = [c.rule for c in configured_rules(config, plugins) if c.active]
    return rules.Engine(
        active,
        rules.EngineSettings(
            host_id=host_id,
            location=settings.location,
            hold=settings.hold,
            max_candidates=settings.max_candidates_per_rule,
            version=version,
        ),
    )


class Deviations:
    """The engine in the ledger, the evaluation timer and the forwarders, for one configuration.

    The timer runs on the agent's main loop (``tick``), not on a thread of its own: an evaluation
    takes milliseconds (bench/bench_rules.py), and the idle agent stays small.
    """

    def __init__(
        self, config: Config, plugins: Plugins, ledger: Ledger, clock: Clock, version: str, collectors: Sequence[str] | None = None
    ) -> None:
        self.engine = build_engine(config, plugins, ledger.host_id, version)
        self._collectors = collectors
        settings: DeviationSettings = config.sections.get("deviations") or DeviationSettings()
        self.every = settings.evaluate_every.total_seconds()
        self._ledger = ledger
        self._clock = clock
        self.forwarding = Forwarding(routes_for(config.forwarders, plugins.forwarders()), ledger, clock)
        self._next = clock.monotonic()
        self._failing = False

    @property
    def forwarders(self) -> list[str]:
        return self.forwarding.names

    def start(self) -> None:
        """Install the engine in the ledger, then start the forwarders that have work left."""
        self._ledger.use_rules(self.engine, self.forwarding.names, on_change=self.forwarding.wake, collectors=self._collectors,
                               watches=self.engine.watches)
        self.forwarding.start()

    def tick(self) -> float:
        """Evaluate every rule when it is time; seconds until the next time. Never raises: a
        failing evaluation is logged once a spell and tried again at the next."""
        now = self._clock.monotonic()
        if now >= self._next:
            try:
                self._ledger.evaluate_rules()
                if self._failing:
                    log.info("rules_evaluation_recovered")
                self._failing = False
            except Exception as exc:
                if not self._failing:
                    # The state's own trouble (a full disk, a lost ledger) is said plainly; anything
                    # else is a defect, and its traceback is what helps.
                    log.error("rules_evaluation_failed", error=f"{type(exc).__name__}: {exc}", exc_info=not isinstance(exc, StateError))
                self._failing = True
            self._next = now + self.every
        return max(0.0, self._next - self._clock.monotonic())

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the forwarders (what they have not delivered stays in the outbox)."""
        self.forwarding.stop(timeout)


def forwarder_problems(config: Config, plugins: Plugins) -> Mapping[str, Sequence[tuple[str, str]]]:
    """``check-config``'s reachability probes: for each enabled forwarder, (key, message) pairs."""
    kinds = plugins.forwarders()
    found: dict[str, list[tuple[str, str]]] = {}
    for name, fc in config.forwarders.items():
        spec = kinds.get(fc.kind)
        if spec is None or spec.probe is None or not fc.enabled:
            continue
        try:
            problems = list(spec.probe(fc.settings))
        except Exception as exc:
            problems = [("", f"could not be probed: {type(exc).__name__}: {exc}")]
        if problems:
            found[name] = problems
    return found
