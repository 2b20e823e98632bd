"""Plugin loading (``normagent.plugins`` is the package of builtin plugins, so this module is
``loader``) and the typed façade the rest of the core uses instead of ``pm.hook.*``.

Builtins, extra modules named in the config and third-party entry points (group ``normagent``) all
load through one door, ``build_plugins()``. The builtins are listed as module *names*, imported with
importlib, so the core never imports ``normagent.plugins`` statically.

pluggy does not isolate plugins: one raising implementation ends a hook call for everyone. So each
module is registered inside its own ``try`` and each implementation is called on its own
(``call_each``); a broken plugin is recorded as a ``PluginProblem`` (shown by ``normagent plugins``,
logged, exported as ``normagent_plugin_up 0``) and the rest of the agent runs.

Imports hookspecs, model, errors and config (to check settings types) only.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.machinery
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import field, replace
from types import ModuleType
from typing import Any, TypeVar

import pluggy
import structlog

from normagent import hookspecs
from normagent.config import unsupported_settings
from normagent.model import CollectorSpec, ForwarderSpec, MetricSpec, ReportSection, RuleSpec
from normagent.records import dataclass

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP = "normagent"
BUILTIN_PLUGINS: tuple[str, ...] = (
    "normagent.forward.webhook",
    "normagent.forward.alertmanager",
    "normagent.forward.smtp",
    "normagent.forward.file",
    "normagent.plugins.system",
    "normagent.plugins.access",
    "normagent.plugins.edi",
    "normagent.plugins.availability",
    "normagent.plugins.firewall",
    "normagent.plugins.malware",
    "normagent.plugins.network",
    "normagent.plugins.updates",
    "normagent.plugins.changes",
)
RESERVED_SETTING_NAMES = frozenset({"enabled", "interval", "timeout"})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PluginProblem:
    """Something wrong with one plugin: it failed to import, a hook raised, or it offered bad data."""

    plugin: str
    message: str

    def __str__(self) -> str:
        return f"plugin {self.plugin}: {self.message}"


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What ``normagent plugins`` shows for one plugin."""

    name: str
    origin: str  # "builtin", "config", or the distribution that provides the entry point
    version: str
    module: str
    loaded: bool


def short_name(module_name: str) -> str:
    """``normagent.plugins.access`` → ``access``; the builtin forwarders ``normagent.forward.smtp`` → ``forward.smtp``."""
    for prefix in ("normagent.plugins.", "normagent."):
        if module_name.startswith(prefix):
            return module_name[len(prefix) :]
    return module_name


def _normagent_version() -> str:
    from normagent import __version__

    return __version__


@dataclass
class Plugins:
    """The loaded plugins and everything they offer, validated and de-duplicated.

    Offerings are gathered once, on first use, and kept: a reload builds a new ``Plugins``.
    """

    pm: pluggy.PluginManager
    infos: list[PluginInfo] = field(default_factory=list)
    problems: list[PluginProblem] = field(default_factory=list)
    _collectors: dict[str, CollectorSpec] | None = None
    _rules: dict[str, RuleSpec] | None = None
    _sections: dict[str, ReportSection] | None = None
    _forwarders: dict[str, ForwarderSpec] | None = None
    _metrics: dict[str, MetricSpec] | None = None

    # -----------------------------------------------------------------------------------------

    def collectors(self) -> dict[str, CollectorSpec]:
        """Every collector offered, by name; bad or duplicate offers become problems."""
        if self._collectors is None:
            found: dict[str, CollectorSpec] = {}
            metrics: dict[str, MetricSpec] = {}
            for plugin, spec in self._offers("register_collectors", CollectorSpec):
                problem = _collector_problem(spec, found, metrics)
                if problem:
                    self.problems.append(PluginProblem(plugin, problem))
                    continue
                found[spec.name] = replace(spec, plugin=plugin)
                for metric in spec.metrics:
                    metrics.setdefault(metric.name, metric)
            self._collectors = found
            self._metrics = metrics
        return self._collectors

    def metrics(self) -> dict[str, MetricSpec]:
        """Every metric family the collectors declare, by name."""
        self.collectors()
        assert self._metrics is not None
        return self._metrics

    def rules(self) -> dict[str, RuleSpec]:
        if self._rules is None:
            self._rules = self._unique("register_rules", RuleSpec, lambda r: r.name, "rule")
        return self._rules

    def report_sections(self) -> dict[str, ReportSection]:
        if self._sections is None:
            self._sections = self._unique("register_report_sections", ReportSection, lambda s: s.id, "report section")
        return self._sections

    def forwarders(self) -> dict[str, ForwarderSpec]:
        if self._forwarders is None:
            self._forwarders = self._unique("register_forwarders", ForwarderSpec, lambda f: f.kind, "forwarder kind")
        return self._forwarders

    def failed(self) -> set[str]:
        """Names of plugins with at least one problem."""
        return {p.plugin for p in self.problems}

    # -----------------------------------------------------------------------------------------

    def _unique(self, hook: str, kind: type[T], key: Callable[[T], str], what: str) -> dict[str, T]:
        found: dict[str, T] = {}
        owners: dict[str, str] = {}
        for plugin, item in self._offers(hook, kind):
            name = key(item)
            if name in found:
                self.problems.append(PluginProblem(plugin, f"{what} {name!r} is already offered by plugin {owners[name]}"))
                continue
            found[name] = replace(item, plugin=plugin)  # type: ignore[type-var]
            owners[name] = plugin
        return found

    def _offers(self, hook: str, kind: type[T]) -> Iterator[tuple[str, T]]:
        for plugin, result in call_each(getattr(self.pm.hook, hook), self.problems):
            try:
                items = list(result)
            except Exception as exc:
                self.problems.append(PluginProblem(plugin, f"{hook}() returned something unusable: {exc}"))
                log.error("plugin_hook_failed", plugin=plugin, hook=hook, error=str(exc))
                continue
            for item in items:
                if isinstance(item, kind):
                    yield plugin, item
                else:
                    self.problems.append(
                        PluginProblem(plugin, f"{hook}() returned a {type(item).__name__}, expected {kind.__name__}")
                    )


def call_each(hook: pluggy.HookCaller, problems: list[PluginProblem]) -> Iterator[tuple[str, Any]]:
    """Call every implementation of a no-argument hook on its own, in registration order.

    Registration order is builtins, then config extras, then entry points, so on a duplicate name
    the builtin keeps it. A raising implementation becomes a problem attributed to its plugin; the
    others still run.
    """
    for impl in hook.get_hookimpls():
        try:
            result = impl.function()
        except Exception as exc:
            problems.append(PluginProblem(impl.plugin_name, f"{hook.name}() raised {type(exc).__name__}: {exc}"))
            log.error("plugin_hook_failed", plugin=impl.plugin_name, hook=hook.name, exc_info=True)
            continue
        if result is not None:
            yield impl.plugin_name, result


def _collector_problem(spec: CollectorSpec, found: dict[str, CollectorSpec], metrics: dict[str, MetricSpec]) -> str:
    if spec.name in found:
        return f"collector {spec.name!r} is already offered by plugin {found[spec.name].plugin}"
    if not callable(spec.collect):
        return f"collector {spec.name!r} has no callable collect"
    if spec.interval.total_seconds() <= 0 or spec.timeout.total_seconds() <= 0:
        return f"collector {spec.name!r} needs a positive interval and timeout"
    if spec.settings is not None:
        if not dataclasses.is_dataclass(spec.settings):
            return f"collector {spec.name!r}: settings must be a dataclass type"
        clash = RESERVED_SETTING_NAMES.intersection(f.name for f in dataclasses.fields(spec.settings))
        if clash:
            return f"collector {spec.name!r}: settings may not define {sorted(clash)} (reserved for every collector)"
        try:
            spec.settings()
        except TypeError as exc:
            return f"collector {spec.name!r}: every settings field needs a default ({exc})"
        reason = unsupported_settings(spec.settings)
        if reason:
            return f"collector {spec.name!r}: {reason}"
    for metric in spec.metrics:
        known = metrics.get(metric.name)
        if known is not None and (known.kind, known.labels) != (metric.kind, metric.labels):
            return (
                f"collector {spec.name!r} declares metric {metric.name} as {metric.kind}{list(metric.labels)}, "
                f"but another collector declared it as {known.kind}{list(known.labels)}"
            )
    return ""


def build_plugins(
    *,
    builtins: Sequence[str] = BUILTIN_PLUGINS,
    extra: Sequence[str] = (),
    entry_points_enabled: bool = True,
    disabled: Iterable[str] = (),
    objects: Sequence[tuple[str, object]] = (),
) -> Plugins:
    """Load plugins and return the façade over them.

    Args:
        builtins: Module names of the builtin plugins (tests pass fewer).
        extra: Module names from the config's ``[plugins] extra``.
        entry_points_enabled: Load third-party plugins from the entry-point group ``normagent``.
        disabled: Plugin names (``system``, an entry point's name, a module name) not to load.
        objects: Already-imported plugin objects with their names, for tests.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm)
    blocked = set(disabled)
    for name in blocked:
        pm.set_blocked(name)

    def register(name: str, origin: str, ver: str, load: Callable[[], object], module: str) -> None:
        if name in blocked:
            plugins.infos.append(PluginInfo(name, origin, ver, module, loaded=False))
            return
        try:
            obj = load()
            pm.register(obj, name=name)
        except Exception as exc:
            plugins.problems.append(PluginProblem(name, f"failed to load: {type(exc).__name__}: {exc}"))
            plugins.infos.append(PluginInfo(name, origin, ver, module, loaded=False))
            log.error("plugin_load_failed", plugin=name, module=module, error=f"{type(exc).__name__}: {exc}")
            return
        plugins.infos.append(PluginInfo(name, origin, ver, module, loaded=True))

    for module in builtins:
        register(short_name(module), "builtin", _normagent_version(), _importer(module), module)
    for module in extra:
        register(module, "config", "", _importer(module), module)
    if entry_points_enabled and declared_anywhere(ENTRY_POINT_GROUP):
        from importlib.metadata import entry_points, version

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "unknown"
            try:
                ver = version(dist) if ep.dist else ""
            except Exception:
                ver = ""
            register(ep.name, dist, ver, ep.load, ep.value)
    for name, obj in objects:
        register(name, "test", "", _given(obj), type(obj).__name__)
    plugins.problems.extend(_unknown_hooks(pm))
    return plugins


def declared_anywhere(group: str, path: Sequence[str] | None = None) -> bool:
    """Whether a distribution on ``path`` (default ``sys.path``) may declare an entry point in ``group``.

    Read from the distributions' ``entry_points.txt`` files, so that ``importlib.metadata`` (with
    the zipfile, csv and e-mail modules it imports, some 2 MB resident) is loaded only on hosts
    where a third-party plugin is installed. Conservative: whatever it cannot look into (a zip or
    egg on the path, a finder of distributions other than the standard one, an unreadable file)
    counts as a yes, and importlib.metadata decides.
    """
    if any(hasattr(finder, "find_distributions") and finder is not importlib.machinery.PathFinder for finder in sys.meta_path):
        return True
    header = re.compile(rb"^[ \t]*\[[ \t]*" + re.escape(group.encode()) + rb"[ \t]*\][ \t]*\r?$", re.M)
    for entry in sys.path if path is None else path:
        directory = entry or "."
        try:
            with os.scandir(directory) as found:
                names = [item.name for item in found]
        except NotADirectoryError:
            return True  # a zip archive on the path
        except OSError:
            continue  # missing: importlib.metadata finds nothing there either
        for name in names:
            if name.endswith(".egg"):
                return True
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(directory, name, "entry_points.txt"), "rb") as f:
                    if header.search(f.read()):
                        return True
            except (FileNotFoundError, NotADirectoryError):
                continue  # no entry points (an .egg-info may be a file: it declares none)
            except OSError:
                return True
    return False


def _unknown_hooks(pm: pluggy.PluginManager) -> list[PluginProblem]:
    """A misspelled hook would otherwise never be called and never be noticed (pluggy's check_pending
    stops at the first one; this names them all)."""
    problems = []
    for name in sorted(vars(pm.hook)):
        caller = getattr(pm.hook, name)
        if isinstance(caller, pluggy.HookCaller) and caller.spec is None:
            for impl in caller.get_hookimpls():
                if not impl.optionalhook:
                    problems.append(PluginProblem(impl.plugin_name, f"implements {name}(), which is not a normagent hook"))
    return problems


def _given(obj: object) -> Callable[[], object]:
    return lambda: obj


def _importer(module: str) -> Callable[[], ModuleType]:
    return lambda: importlib.import_module(module)
