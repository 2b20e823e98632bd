"""Configuration: TOML in, every problem at once out, or a frozen ``Config``.

Parse once with ``tomllib``, walk the whole tree collecting ``Problem``s (never stopping at the
first), then build frozen dataclasses. Each problem names the file, the line where the key is
written, the dotted key path and what was expected::

    normagent.toml:14: collectors."system.host".intervall: unknown key; did you mean "interval"?

Collector and section settings are dataclasses declared by their owners (a collector's
``CollectorSpec.settings``, ``WebSettings``, ``SyslogSettings``), so valid names and keys come from
the code that uses them, never from a list kept here. Supported field types: bool, int, float,
str, ``pathlib.Path``, ``timedelta`` (``"30s"``, ``"5m"``, ``"1h30m"``, ``"2d"``), ``datetime.time``
(``"08:00"``), ``datetime``, ``Literal[...]``, ``tuple[X, ...]``, ``dict[str, X]``, nested dataclasses
and ``X | None``. Field metadata ``must_exist="file"|"dir"`` makes a path be checked.

Every int, float and duration field declares its range beside its default, as field metadata
``min`` and ``max`` (inclusive, of the field's type; for ``tuple[X, ...]`` and ``dict[str, X]``
each item is checked)::

    block_entries: int = field(default=1000, metadata={"min": 1, "max": 100_000})

A value outside it is a problem at its key and line, so a limit ``check-config`` accepts is one the
agent can run with. The README tables show the ranges. A nested table (``[collectors."x".journal]``)
is written over the *default value of that field*, not over its class's defaults: keys left out
keep what the plugin chose.

Imports only normagent.errors (and, for types, normagent.model and normagent.loader).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from normagent.errors import ConfigError, Problem, printable
from normagent.records import dataclass
from normagent.smallfile import read_small_text

if TYPE_CHECKING:
    from normagent.loader import Plugins

DEFAULT_CONFIG_PATH = Path("/etc/normagent/normagent.toml")
CONFIG_ENV = "NORMAGENT_CONFIG"
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # a site with hundreds of probes and devices writes some 100 kB
NUL_PROBLEM = "a NUL character (\\u0000) cannot be in a path, name or text here"
DURATION = re.compile(
    r"^(?:(?P<y>\d+)y)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$",
    re.ASCII,  # Prometheus' digits: "١٢s" is no duration, though int() reads it
)
DURATION_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}

# The common keys of every [collectors."<name>"] table (their defaults come from the CollectorSpec).
INTERVAL_RANGE: Mapping[str, timedelta] = {"min": timedelta(milliseconds=100), "max": timedelta(days=7)}
TIMEOUT_RANGE: Mapping[str, timedelta] = {"min": timedelta(milliseconds=100), "max": timedelta(days=1)}

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["auto", "json", "console"]
SeverityName = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """``[agent]``: where state lives and how the agent logs."""

    state_dir: Path | None = field(
        default=None,
        metadata={"help": "State directory (ledger, pseudonym key). Default: /var/lib/normagent as root, else ./.normagent"},
    )
    log_level: LogLevel = field(default="info", metadata={"help": "Least severe log level written"})
    log_format: LogFormat = field(
        default="auto", metadata={"help": "json (one object per line), console (for people), auto: console on a terminal"}
    )
    retention: timedelta = field(
        default=timedelta(days=400),
        metadata={
            "help": "How long hourly counts, rollups and events are kept for reports (at least two months: a "
            "monthly report reads back to the first day of the month before)",
            "min": timedelta(days=62),
            "max": timedelta(days=3650),
        },
    )
    shutdown_grace: timedelta = field(
        default=timedelta(seconds=10),
        metadata={
            "help": "How long SIGTERM waits for running collectors (keep it below systemd's TimeoutStopSec, 30s)",
            "min": timedelta(0),
            "max": timedelta(minutes=10),
        },
    )


@dataclass(frozen=True, slots=True)
class PluginsSettings:
    """``[plugins]``: which plugins load."""

    disable: tuple[str, ...] = field(default=(), metadata={"help": "Plugins not to load (also $NORMAGENT_DISABLE_PLUGINS, comma-separated)"})
    extra: tuple[str, ...] = field(default=(), metadata={"help": "Extra plugin modules to import by name"})
    entry_points: bool = field(default=True, metadata={"help": "Load third-party plugins (entry-point group normagent)"})


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """One collector's effective configuration: the common keys plus its own settings."""

    name: str
    enabled: bool
    interval: timedelta
    timeout: timedelta
    settings: Any


ComparisonName = Literal[">", ">=", "<", "<=", "==", "!="]
CIAName = Literal["konfidensialitet", "integritet", "tilgjengelighet"]
OwnerName = Literal[
    "IKT-leder", "prosesseier", "nærmeste leder", "toppledelsen", "informasjonssikkerhetsansvarlig", "fagansvarlig for personvern"
]
SITE_RULE_KEYS = ("watch", "comparison", "labels", "group_by", "preceded_by", "min_preceding")
"""Keys that say what a rule *is*: only a site rule sets them (a default rule is retuned, not redefined)."""


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """``[rules."<name>"]``: retune or disable a default deviation rule, or add a site rule.

    A table named after a default rule (``normagent rules list``) changes what it writes; one with
    another name and a ``watch`` key is a rule of the site's own, which needs ``watch``,
    ``comparison`` and ``threshold``.

    Attributes:
        enabled: Evaluate this rule.
        threshold: The boundary the value is compared with.
        window: Counters, rollups and events: the period the increase is counted over.
        for_: How long the condition must hold before the candidate fires.
        severity: The candidate's severity.
        hold: How long a firing candidate's condition must stay clear before it is resolved.
        owner: Suggested owner role (the internal-control guide's table).
        cia: The security properties touched.
        personal_data: The candidate may be a personal-data breach (72-hour deadline).
        title: Title in bokmål (a template like summary).
        summary: What happened, in bokmål: a template with {value}, {threshold}, {window}, {for} and the group_by labels.
        consequence: The possible consequence, in bokmål.
        measures: Suggested immediate measures, in bokmål.
        title_en: Title in English.
        summary_en: What happened, in English.
        consequence_en: The possible consequence, in English.
        measures_en: Suggested immediate measures, in English.
        section: The factsheet-12 section.
        watch: Site rules: a metric, "rollup:<name>", "event:<kind>" or "absent:<metric>".
        comparison: Site rules: how the value is compared with the threshold.
        labels: Site rules: label matchers (exact values) selecting the series.
        group_by: Site rules: labels that split the rule into one candidate each.
        preceded_by: Site rules over a rollup: "rollup:<name>" that must have crossed min_preceding for the same key first.
        min_preceding: Site rules: see preceded_by.
    """

    enabled: bool = True
    threshold: float | None = field(default=None, metadata={"min": -1e15, "max": 1e15})
    window: timedelta | None = field(default=None, metadata={"min": timedelta(minutes=1), "max": timedelta(days=400)})
    for_: timedelta | None = field(default=None, metadata={"toml": "for", "min": timedelta(0), "max": timedelta(days=30)})
    severity: SeverityName | None = None
    hold: timedelta | None = field(default=None, metadata={"min": timedelta(0), "max": timedelta(days=7)})
    owner: OwnerName | None = None
    cia: tuple[CIAName, ...] | None = None
    personal_data: bool | None = None
    title: str | None = None
    summary: str | None = None
    consequence: str | None = None
    measures: str | None = None
    title_en: str | None = None
    summary_en: str | None = None
    consequence_en: str | None = None
    measures_en: str | None = None
    section: str | None = None
    watch: str | None = None
    comparison: ComparisonName | None = None
    labels: dict[str, str] | None = None
    group_by: tuple[str, ...] | None = None
    preceded_by: str | None = None
    min_preceding: float | None = field(default=None, metadata={"min": 0, "max": 1e15})

    def written(self) -> dict[str, Any]:
        """The keys the table sets (under their field names), for ``rules.configured_rule``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True, slots=True)
class ForwarderCommon:
    """The keys every ``[forwarders.<name>]`` table has, besides those of its kind.

    Attributes:
        kind: The kind of destination: webhook, alertmanager, email, file (`normagent plugins` lists them).
        enabled: Deliver to this forwarder (changes are queued for it only while it is enabled).
        retry_min: Wait before the first retry of a failed delivery; doubled after each further failure (with jitter).
        retry_max: The longest wait between two attempts.
        dead_letter_after: A change not delivered after this long becomes a dead letter: kept, counted and shown, no longer tried.
        parallel: Deliveries in flight at once (changes of one candidate are always sent one after the other); default: the kind's (4 for webhook and alertmanager, 1 for email and file).
    """

    kind: str = ""
    enabled: bool = True
    retry_min: timedelta = field(default=timedelta(seconds=1), metadata={"min": timedelta(milliseconds=10), "max": timedelta(hours=1)})
    retry_max: timedelta = field(default=timedelta(minutes=5), metadata={"min": timedelta(seconds=1), "max": timedelta(days=1)})
    dead_letter_after: timedelta = field(default=timedelta(days=7), metadata={"min": timedelta(minutes=1), "max": timedelta(days=400)})
    parallel: int | None = field(default=None, metadata={"min": 1, "max": 32})


@dataclass(frozen=True, slots=True)
class ForwarderConfig:
    """One configured forwarder: its name, the common keys and its kind's settings."""

    name: str
    common: ForwarderCommon
    settings: Any

    @property
    def kind(self) -> str:
        return self.common.kind

    @property
    def enabled(self) -> bool:
        return self.common.enabled


@dataclass(frozen=True)
class Config:
    """A validated configuration. ``path`` is None when running on built-in defaults."""

    path: Path | None
    agent: AgentSettings
    plugins: PluginsSettings
    collectors: Mapping[str, CollectorConfig]
    rules: Mapping[str, RuleSettings]
    sections: Mapping[str, Any]  # "web" → WebSettings, "syslog" → SyslogSettings, …
    forwarders: Mapping[str, ForwarderConfig] = field(default_factory=dict)

    def state_dir(self) -> Path:
        """The state directory: configured, else systemd's $STATE_DIRECTORY (``StateDirectory=``),
        else /var/lib/normagent as root, else ./.normagent."""
        if self.agent.state_dir is not None:
            return self.agent.state_dir
        given = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        if given:
            return Path(given)
        return Path("/var/lib/normagent") if os.geteuid() == 0 else Path.cwd() / ".normagent"


@dataclass(frozen=True, slots=True)
class Section:
    """A top-level table owned by some part of the agent: its settings type and file checks."""

    settings: type
    check: Callable[[Any], Sequence[tuple[str, str]]] | None = None  # → (key, message) pairs
    optional: bool = False  # absent table → None instead of defaults


def _close_matches(word: str, possibilities: list[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """difflib's "did you mean" for a wrong key or value; difflib is imported only then, as the
    running agent never needs it."""
    import difflib

    return difflib.get_close_matches(word, possibilities, n=n, cutoff=cutoff)


def find_config_path(explicit: Path | None) -> Path | None:
    """The file to read: ``--config``, else ``$NORMAGENT_CONFIG``, else /etc/normagent/normagent.toml
    if it exists, else None (built-in defaults)."""
    if explicit is not None:
        return explicit
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def parse_duration(text: str) -> timedelta | None:
    """``"1h30m"`` → 90 minutes; None if ``text`` is not a Prometheus-style duration.

    Raises:
        OverflowError: A duration longer than ``timedelta`` can hold (or with more digits than
            Python converts): a problem to report, not a crash.
    """
    match = DURATION.match(text.strip())
    if not match or not text.strip():
        return None
    try:
        seconds = sum(int(v) * DURATION_UNITS[k] for k, v in match.groupdict().items() if v)
    except ValueError:  # more digits than sys.get_int_max_str_digits() allows
        raise OverflowError(f"duration {text!r} is too long") from None
    return timedelta(seconds=seconds)


def format_key(path: KeyPath) -> str:
    """A key path as TOML writes it: ``collectors."access.logins".journal.identifiers``, ``folders[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else _quoted(part)
            out += f".{text}" if out else text
    return out


def range_text(metadata: Mapping[str, Any]) -> tuple[str, str] | None:
    """The ``min`` and ``max`` a field declares, as TOML writes them (``"1s"``, ``4096``); None if none."""
    if "min" not in metadata and "max" not in metadata:
        return None
    return _bound(metadata.get("min")), _bound(metadata.get("max"))


def _bound(value: Any) -> str:
    if value is None:
        return "…"
    if isinstance(value, timedelta):
        return f'"{format_duration(value)}"'
    return f"{value:g}" if isinstance(value, float) else str(value)


def out_of_range(value: Any, metadata: Mapping[str, Any]) -> str | None:
    """Why ``value`` is outside the range ``metadata`` declares (``min``/``max``), or None if inside.

    NaN is outside every range (it compares false with everything, so it would pass any check
    written as ``value < low``).
    """
    low, high = metadata.get("min"), metadata.get("max")
    if low is None and high is None:
        return None
    inside = (low is None or low <= value) and (high is None or value <= high)
    if inside:
        return None
    if low is not None and high is not None:
        return f"must be between {_bound(low)} and {_bound(high)}"
    return f"must be at least {_bound(low)}" if low is not None else f"must be at most {_bound(high)}"


def format_duration(value: timedelta) -> str:
    """The shortest duration text that parses back to ``value``."""
    ms = round(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts)


# ------------------------------------------------------------------------------------------------
# loading


RuleCheck = Callable[[str, RuleSettings, "Plugins"], Sequence[tuple[str, str]]]
"""``check(name, settings, plugins) -> [(key, message)]``: what is wrong with one rule as configured."""


def load_config(
    path: Path | None,
    *,
    plugins_for: Callable[[PluginsSettings], Plugins],
    sections: Mapping[str, Section] = {},
    rule_check: RuleCheck | None = None,
) -> tuple[Config, Plugins]:
    """Read and validate a configuration file (or the built-in defaults when ``path`` is None).

    Args:
        path: The TOML file, or None for built-in defaults.
        plugins_for: Builds the plugins once ``[plugins]`` is known; their collectors and rules
            define which ``[collectors.*]`` and ``[rules.*]`` tables are valid.
        sections: Other top-level tables (``web``, ``syslog``) and the dataclass each must match.
        rule_check: Checks each rule as configured beyond its types (the metric it watches
            exists, its labels do, its texts use known fields): ``normagent.rules`` knows how.

    Returns:
        The configuration and the plugins it was validated against.

    Raises:
        ConfigError: with every problem found.
    """
    text = ""
    if path is not None:
        try:
            text = read_small_text(path, MAX_CONFIG_BYTES)
        except FileNotFoundError:
            raise ConfigError([Problem(path, "", "file not found")]) from None
        except IsADirectoryError:
            raise ConfigError([Problem(path, "", "is a directory, expected a TOML file")]) from None
        except OSError as exc:
            raise ConfigError([Problem(path, "", f"cannot read: {exc.strerror or exc}")]) from None
        except UnicodeDecodeError as exc:
            where = exc.object[: exc.start].count(b"\n") + 1
            raise ConfigError([Problem(path, "", f"not UTF-8: byte 0x{exc.object[exc.start]:02x} cannot be decoded ({exc.reason})", where)]) from None
        # A UTF-8 byte order mark (Windows Notepad writes one) is no TOML: tomllib said "Invalid
        # statement" at line 1, where nothing visible is wrong. It is read as the encoding's mark.
        text = text.removeprefix("\ufeff")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError([Problem(path, "", f"TOML syntax error: {message}", int(line.group(1)) if line else None)]) from None
    except RecursionError:  # tomllib descends once per nested array or inline table
        raise ConfigError([Problem(path, "", "TOML syntax error: arrays or inline tables nested too deep")]) from None
    except ValueError as exc:  # tomllib lets int() raise Python's limit on a decimal integer's digits
        limit = sys.get_int_max_str_digits()
        digits = re.search(rf"\d(?:_?\d){{{limit},}}", text) if limit else None
        if digits is None:
            raise ConfigError([Problem(path, "", f"TOML value error: {exc}")]) from None
        where = text.count("\n", 0, digits.start()) + 1
        raise ConfigError([Problem(path, "", f"TOML value error: an integer of more than {limit:,} digits", where)]) from None
    walker = _Walker(path, _line_index(text), base=path.parent if path else Path.cwd())
    walker.rule_check = rule_check
    config, plugins = walker.config(data, plugins_for, sections)
    if walker.problems:
        # In the order they are written, so the list reads top to bottom with the file.
        raise ConfigError(sorted(walker.problems, key=lambda p: p.line if p.line is not None else 1 << 30))
    return config, plugins


class _Invalid:
    """Marks a value that failed validation (the problem is already recorded)."""


INVALID = _Invalid()
KeyPath = tuple[str | int, ...]


class _Walker:
    """Walks parsed TOML against dataclass types, collecting problems."""

    def __init__(self, file: Path | None, lines: dict[KeyPath, int], base: Path) -> None:
        self.file = file
        self.lines = lines
        self.base = base
        self.problems: list[Problem] = []
        self.rule_check: RuleCheck | None = None

    def problem(self, path: KeyPath, message: str) -> None:
        self.problems.append(Problem(self.file, format_key(path), message, self.line_of(path)))

    def line_of(self, path: KeyPath) -> int | None:
        """The line writing ``path``; else the first line of a key under it; else its nearest parent's."""
        if path in self.lines:
            return self.lines[path]
        below = [line for key, line in self.lines.items() if key[: len(path)] == path]
        if below:
            return min(below)
        for end in range(len(path) - 1, 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    # -------------------------------------------------------------------------------------------

    def config(
        self, data: dict[str, Any], plugins_for: Callable[[PluginsSettings], Plugins], sections: Mapping[str, Section]
    ) -> tuple[Config, Plugins]:
        known = ["agent", "plugins", "collectors", "rules", "forwarders", *sections]
        for key in data:
            if key not in known:
                self.unknown((key,), key, known)
        agent = self.dataclass_value(data.get("agent", {}), AgentSettings, ("agent",))
        plugin_settings = self.dataclass_value(data.get("plugins", {}), PluginsSettings, ("plugins",))
        if isinstance(plugin_settings, _Invalid):
            plugin_settings = PluginsSettings()
        plugins = plugins_for(plugin_settings)
        collectors = self.collectors(data.get("collectors", {}), plugins)
        rules = self.rules(data.get("rules", {}), plugins)
        forwarders = self.forwarders(data.get("forwarders", {}), plugins)
        section_values: dict[str, Any] = {}
        for name, section in sections.items():
            if name not in data and section.optional:
                section_values[name] = None
                continue
            value = self.dataclass_value(data.get(name, {}), section.settings, (name,))
            if not isinstance(value, _Invalid) and section.check is not None:
                for key, message in section.check(value):
                    self.problem((name, *[k for k in key.split(".") if k]), message)
            section_values[name] = value
        config = Config(
            path=self.file,
            agent=agent if isinstance(agent, AgentSettings) else AgentSettings(),
            plugins=plugin_settings,
            collectors=collectors,
            rules=rules,
            sections=section_values,
            forwarders=forwarders,
        )
        return config, plugins

    def collectors(self, table: Any, plugins: Plugins) -> dict[str, CollectorConfig]:
        specs = plugins.collectors()
        if not isinstance(table, dict):
            self.problem(("collectors",), f"expected a table, got {_describe(table)}")
            table = {}
        for name, value in table.items():
            if name in specs:
                continue
            dotted = [f"{name}.{sub}" for sub in value if f"{name}.{sub}" in specs] if isinstance(value, dict) else []
            if dotted:
                self.problem(
                    ("collectors", name),
                    f'collector names contain a dot: write [collectors."{dotted[0]}"] with the quotes',
                )
            else:
                hint = ""
                failed = sorted(plugins.failed())
                if failed:
                    hint = f" (plugins that failed to load: {', '.join(failed)})"
                self.unknown(("collectors", name), name, list(specs), what="collector", extra=hint)
        result: dict[str, CollectorConfig] = {}
        for name, spec in specs.items():
            path: KeyPath = ("collectors", name)
            raw = table.get(name, {})
            if not isinstance(raw, dict):
                self.problem(path, f"expected a table, got {_describe(raw)}")
                raw = {}
            common = {k: raw[k] for k in ("enabled", "interval", "timeout") if k in raw}
            own = {k: v for k, v in raw.items() if k not in common}
            enabled = self.value(common.get("enabled", spec.enabled_by_default), bool, (*path, "enabled"))
            interval = self.value(common.get("interval", spec.interval), timedelta, (*path, "interval"))
            timeout = self.value(common.get("timeout", spec.timeout), timedelta, (*path, "timeout"))
            ranges_ok = [
                self.in_range(common[key], val, limits, (*path, key))
                for key, val, limits in (("interval", interval, INTERVAL_RANGE), ("timeout", timeout, TIMEOUT_RANGE))
                if key in common and isinstance(val, timedelta)
            ]
            if spec.settings is not None:
                settings = self.dataclass_value(own, spec.settings, path)
            else:
                for key in own:
                    self.unknown((*path, key), key, ["enabled", "interval", "timeout"])
                settings = None
            if not all(ranges_ok) or any(isinstance(v, _Invalid) for v in (enabled, interval, timeout, settings)):
                continue
            result[name] = CollectorConfig(name, bool(enabled), interval, timeout, settings)
        return result

    def rules(self, table: Any, plugins: Plugins) -> dict[str, RuleSettings]:
        known = plugins.rules()
        if not isinstance(table, dict):
            self.problem(("rules",), f"expected a table, got {_describe(table)}")
            return {}
        result: dict[str, RuleSettings] = {}
        for name, raw in table.items():
            path: KeyPath = ("rules", name)
            site = name not in known
            if site and not (isinstance(raw, dict) and "watch" in raw):
                close = _close_matches(name, list(known), n=1, cutoff=0.6)
                extra = "" if close else "; a rule of the site's own needs watch, comparison and threshold"
                self.unknown(path, name, list(known), what="rule", extra=extra)
                continue
            value = self.dataclass_value(raw, RuleSettings, path)
            if not isinstance(value, RuleSettings):
                continue
            if site:
                if not re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+", name):
                    self.problem(path, 'a rule name is "<group>.<thing>" (letters, digits, _ and -), e.g. "site.backup_failed"')
                    continue
                missing = [key for key in ("comparison", "threshold") if getattr(value, key) is None]
                for key in missing:
                    self.problem(path, f"a rule of the site's own needs {key}")
                if missing:
                    continue
            else:
                redefined = [key for key in SITE_RULE_KEYS if getattr(value, key) is not None]
                for key in redefined:
                    self.problem(
                        (*path, key),
                        f"{key} says what the default rule {name} is and cannot be changed; "
                        "write a rule of your own under another name (and disable this one)",
                    )
                if redefined:
                    continue
            if self.rule_check is not None and value.enabled:
                bad = False
                for key, message in self.rule_check(name, value, plugins):
                    self.problem((*path, *_key_parts(key)), message)
                    bad = True
                if bad:
                    continue
            result[name] = value
        return result

    def forwarders(self, table: Any, plugins: Plugins) -> dict[str, ForwarderConfig]:
        """``[forwarders.<name>]``: the common keys, then the kind's own keys and checks."""
        kinds = plugins.forwarders()
        if not isinstance(table, dict):
            self.problem(("forwarders",), f"expected a table, got {_describe(table)}")
            return {}
        result: dict[str, ForwarderConfig] = {}
        common_keys = [f.name for f in dataclasses.fields(ForwarderCommon)]
        for name, raw in table.items():
            path: KeyPath = ("forwarders", name)
            if not isinstance(raw, dict):
                self.problem(path, f"expected a table, got {_describe(raw)}")
                continue
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", name):
                self.problem(path, "a forwarder's name is 1 to 40 lower-case letters, digits, _ and - (it is a metric label)")
                continue
            kind = raw.get("kind")
            if kind is None:
                self.problem(path, f"kind is required: one of {', '.join(sorted(kinds)) or 'none (no forwarder plugin loaded)'}")
                continue
            if not isinstance(kind, str) or kind not in kinds:
                if isinstance(kind, str):
                    self.unknown((*path, "kind"), kind, list(kinds), what="forwarder kind")
                else:
                    self.problem((*path, "kind"), f"expected a string, got {_show(kind)}")
                continue
            spec = kinds[kind]
            common = self.dataclass_value({k: v for k, v in raw.items() if k in common_keys}, ForwarderCommon, path)
            own = {k: v for k, v in raw.items() if k not in common_keys}
            if spec.settings is not None:
                settings = self.dataclass_value(own, spec.settings, path)
            else:
                for key in own:
                    self.unknown((*path, key), key, common_keys)
                settings = None
            if isinstance(common, _Invalid) or isinstance(settings, _Invalid):
                continue
            if common.retry_min > common.retry_max:
                self.problem((*path, "retry_min"), f"is longer than retry_max ({format_duration(common.retry_max)})")
                continue
            bad = False
            if spec.check is not None:
                try:
                    found = list(spec.check(settings))
                except Exception as exc:  # a plugin's check must not stop check-config
                    found = [("", f"the {kind} plugin could not check these settings: {type(exc).__name__}: {exc}")]
                for key, message in found:
                    self.problem((*path, *_key_parts(key)), message)
                    bad = True
            if not bad:
                result[name] = ForwarderConfig(name, common, settings)
        return result

    # -------------------------------------------------------------------------------------------

    def unknown(self, path: KeyPath, key: str, choices: Sequence[str], what: str = "key", extra: str = "") -> None:
        close = _close_matches(key, list(choices), n=1, cutoff=0.6)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        if not close and choices and len(choices) <= 12:
            hint = "; expected one of: " + ", ".join(sorted(str(c) for c in choices))
        self.problem(path, f"unknown {what}{hint}{extra}")

    def dataclass_value(self, raw: Any, cls: type, path: KeyPath, base: Any = None) -> Any:
        """Build ``cls`` from a table: the keys written, over ``base`` (the value this table
        replaces: a plugin's default instance) or, without one, over the class's own defaults."""
        if not isinstance(raw, dict):
            self.problem(path, f"expected a table, got {_describe(raw)}")
            return INVALID
        hints = typing.get_type_hints(cls)
        fields = {f.metadata.get("toml", f.name): f for f in dataclasses.fields(cls) if f.init}
        for key in raw:
            if key not in fields:
                self.unknown((*path, key), key, list(fields))
        values: dict[str, Any] = {}
        bad = False
        for toml_name, f in fields.items():
            if toml_name not in raw:
                continue
            default = getattr(base, f.name) if base is not None else _field_default(f)
            value = self.value(raw[toml_name], hints[f.name], (*path, toml_name), default)
            if isinstance(value, _Invalid) or not self.in_range(raw[toml_name], value, f.metadata, (*path, toml_name)):
                bad = True
                continue
            must_exist = f.metadata.get("must_exist")
            if must_exist and isinstance(value, Path):
                self.check_exists(value, must_exist, (*path, toml_name))
            values[f.name] = value
        if bad:
            return INVALID
        try:
            return dataclasses.replace(base, **values) if base is not None else cls(**values)
        except (TypeError, ValueError) as exc:  # a dataclass's own __post_init__ checks
            self.problem(path, str(exc))
            return INVALID

    def in_range(self, raw: Any, value: Any, metadata: Mapping[str, Any], path: KeyPath) -> bool:
        """Check ``value`` (each item of an array, each entry of a table) against the field's
        ``min``/``max``; record a problem per value outside, naming the value as written."""
        if "min" not in metadata and "max" not in metadata:
            return True
        if isinstance(value, tuple) and isinstance(raw, (list, tuple)):
            pairs: list[tuple[KeyPath, Any, Any]] = [((*path, i), r, v) for i, (r, v) in enumerate(zip(raw, value))]
        elif isinstance(value, dict) and isinstance(raw, dict):
            pairs = [((*path, str(k)), raw[k], value[str(k)]) for k in raw]
        else:
            pairs = [(path, raw, value)]
        ok = True
        for where, written, converted in pairs:
            if converted is None:
                continue
            reason = out_of_range(converted, metadata)
            if reason:
                self.problem(where, f"{reason}, got {_show(written)}")
                ok = False
        return ok

    def check_exists(self, value: Path, kind: str, path: KeyPath) -> None:
        if kind == "file" and not value.is_file():
            self.problem(path, f"file {value} does not exist" if not value.exists() else f"{value} is not a file")
        elif kind == "dir" and not value.is_dir():
            self.problem(path, f"directory {value} does not exist" if not value.exists() else f"{value} is not a directory")

    def value(self, raw: Any, typ: Any, path: KeyPath, default: Any = None) -> Any:  # noqa: C901 - one branch per supported type
        """Convert ``raw`` to ``typ``; ``default`` is the value it replaces (a nested table is
        written over it)."""
        origin = typing.get_origin(typ)
        args = typing.get_args(typ)
        if origin in (types.UnionType, typing.Union):
            options = [a for a in args if a is not type(None)]
            if len(options) == 1:
                return self.value(raw, options[0], path, default)
            raise TypeError(f"unsupported settings type {typ} at {format_key(path)}")
        if origin is Literal:
            if raw in args and type(raw) is type(args[0]):
                return raw
            choices = ", ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in args)
            close = _close_matches(str(raw), [str(a) for a in args], n=1) if isinstance(raw, str) else []
            hint = f'; did you mean "{close[0]}"?' if close else ""
            self.problem(path, f"expected one of {choices}, got {_show(raw)}{hint}")
            return INVALID
        if origin is tuple:
            if isinstance(raw, tuple):
                raw = list(raw)
            if not isinstance(raw, list):
                self.problem(path, f"expected an array, got {_describe(raw)}")
                return INVALID
            item_type = args[0]
            items = [self.value(item, item_type, (*path, i)) for i, item in enumerate(raw)]
            return INVALID if any(isinstance(i, _Invalid) for i in items) else tuple(items)
        if origin is dict or origin is Mapping:
            if not isinstance(raw, dict):
                self.problem(path, f"expected a table, got {_describe(raw)}")
                return INVALID
            entries = {str(k): self.value(v, args[1], (*path, str(k))) for k, v in raw.items()}
            return INVALID if any(isinstance(v, _Invalid) for v in entries.values()) else entries
        if isinstance(typ, type) and dataclasses.is_dataclass(typ):
            if dataclasses.is_dataclass(raw):
                return raw
            return self.dataclass_value(raw, typ, path, default if isinstance(default, typ) else None)
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            self.problem(path, f"expected true or false, got {_show(raw)}")
            return INVALID
        if typ is int:
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
            self.problem(path, f"expected an integer, got {_show(raw)}")
            return INVALID
        if typ is float:
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                return float(raw)
            self.problem(path, f"expected a number, got {_show(raw)}")
            return INVALID
        if typ in (str, Path) and isinstance(raw, str) and "\x00" in raw:
            # The operating system ends a path or name at a NUL: accepted here, it failed only
            # later, in the running agent (a traceback at start, a collector failing every run).
            self.problem(path, f"{NUL_PROBLEM}, got {_show(raw)}")
            return INVALID
        if typ is str:
            if isinstance(raw, str):
                return raw
            self.problem(path, f"expected a string, got {_show(raw)}")
            return INVALID
        if typ is Path:
            if isinstance(raw, Path):
                return raw
            if isinstance(raw, str) and raw.strip():
                candidate = Path(raw).expanduser()
                return candidate if candidate.is_absolute() else self.base / candidate
            self.problem(path, f"expected a path, got {_show(raw)}")
            return INVALID
        if typ is timedelta:
            if isinstance(raw, timedelta):
                return raw
            try:
                parsed = parse_duration(raw) if isinstance(raw, str) else None
            except OverflowError:
                self.problem(path, f"{_show(raw)} is too long")
                return INVALID
            if parsed is None:
                self.problem(path, f'expected a duration like "30s", "5m" or "1h30m", got {_show(raw)}')
                return INVALID
            return parsed
        if typ is time:
            if isinstance(raw, time):
                return raw
            if isinstance(raw, str):
                try:
                    return time.fromisoformat(raw.strip())
                except ValueError:
                    pass
            self.problem(path, f'expected a time of day like "08:00", got {_show(raw)}')
            return INVALID
        if typ is datetime:
            if isinstance(raw, datetime):
                return raw
            if isinstance(raw, str):
                try:
                    return datetime.fromisoformat(raw.strip())
                except ValueError:
                    pass
            self.problem(path, f'expected a date and time like "2026-12-01T22:00:00+01:00", got {_show(raw)}')
            return INVALID
        raise TypeError(f"unsupported settings type {typ!r} at {format_key(path)}")


def _key_parts(key: str) -> tuple[str | int, ...]:
    """``"group_by[1]"`` → ``("group_by", 1)``; ``"labels.user"`` → ``("labels", "user")``."""
    parts: list[str | int] = []
    for part in (p for p in key.split(".") if p):
        match = re.fullmatch(r"(.*?)((?:\[\d+\])+)", part)
        if match:
            parts.append(match.group(1))
            parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
        else:
            parts.append(part)
    return tuple(parts)


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _describe(raw: Any) -> str:
    names = {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
    return names.get(type(raw), type(raw).__name__)


def _quoted(text: str) -> str:
    """``text`` as a TOML basic string: quotes and backslashes escaped, and controls (``printable``)."""
    return '"' + printable(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _show(raw: Any) -> str:
    if isinstance(raw, str):
        return _quoted(raw)
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (dict, list)):
        return _describe(raw)
    return str(raw)


# ------------------------------------------------------------------------------------------------
# where each key is written


_KEY_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_KEY = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")
_PART = re.compile(_KEY_PART)


def _split_key(text: str) -> tuple[str, ...]:
    parts = []
    for match in _PART.finditer(text):
        part = match.group(0)
        if part[0] == '"':
            try:  # escapes as tomllib reads them: a key written "a\u0000b" is found by its name
                part = tomllib.loads(f"k = {part}")["k"]
            except tomllib.TOMLDecodeError:
                part = part[1:-1]
        elif part[0] == "'":
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


def locate(file: Path | None, path: KeyPath) -> int | None:
    """The line of ``file`` that sets ``path`` (else the nearest key written above or under it),
    for warnings about a configuration that is valid; None for the built-in defaults."""
    if file is None:
        return None
    try:
        text = read_small_text(file, MAX_CONFIG_BYTES)
    except (OSError, UnicodeDecodeError):
        return None
    return _Walker(file, _line_index(text), file.parent).line_of(path)


def _line_index(text: str) -> dict[KeyPath, int]:
    """Map dotted key paths to the line that writes them (tomllib keeps no positions).

    Good enough for messages: tables, arrays of tables and ``key =`` lines; keys inside inline
    tables and multi-line arrays map to the line of their enclosing key.
    """
    index: dict[KeyPath, int] = {}
    table: KeyPath = ()
    array_counts: dict[KeyPath, int] = {}
    multiline: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if multiline:
            if multiline in line:
                multiline = None
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            path = _split_key(line[2 : line.find("]]")])
            count = array_counts.get(path, 0)
            array_counts[path] = count + 1
            table = (*path, count)
            index.setdefault(path, number)
            index.setdefault(table, number)
            continue
        if line.startswith("["):
            table = _split_key(line[1 : line.find("]")])
            index.setdefault(table, number)
            continue
        match = _KEY.match(line)
        if match:
            index.setdefault((*table, *_split_key(match.group(1))), number)
            rest = line[match.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) == 1:
                    multiline = quote
    return index


def unsupported_settings(cls: type, _seen: frozenset[type] = frozenset()) -> str | None:
    """Why ``cls`` cannot be a settings type (an unsupported field type), or None if it can."""
    if cls in _seen:
        return f"{cls.__name__} refers to itself"
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:
        return f"cannot resolve the field types of {cls.__name__}: {exc}"
    for f in dataclasses.fields(cls):
        reason = _unsupported_type(hints[f.name], _seen | {cls}) or _bad_range(f, hints[f.name])
        if reason:
            return f"{cls.__name__}.{f.name}: {reason}"
    return None


def _bad_range(f: dataclasses.Field[Any], typ: Any) -> str | None:
    """Why a field's ``min``/``max`` cannot work (wrong type, default outside), or None."""
    if "min" not in f.metadata and "max" not in f.metadata:
        return None
    origin = typing.get_origin(typ)
    if origin in (types.UnionType, typing.Union):
        typ = next(a for a in typing.get_args(typ) if a is not type(None))
        origin = typing.get_origin(typ)
    many = origin in (tuple, dict, Mapping)
    if many:
        typ = typing.get_args(typ)[0 if origin is tuple else 1]
    accepts: dict[Any, tuple[tuple[type, ...], str]] = {
        int: ((int,), "an integer"),
        float: ((int, float), "a number"),
        timedelta: ((timedelta,), "a timedelta"),
    }
    if typ not in accepts:
        return f"a range (min/max) is only for int, float and duration fields, not {typ!r}"
    kinds, name = accepts[typ]
    for end in ("min", "max"):
        bound = f.metadata.get(end)
        if bound is not None and (not isinstance(bound, kinds) or isinstance(bound, bool)):
            return f"range {end} {_show(bound)} is not {name}"
    default = _field_default(f)
    if default is None:
        return None
    values = list(default.values()) if isinstance(default, Mapping) else list(default) if many else [default]
    for value in values:
        if out_of_range(value, f.metadata):
            low, high = range_text(f.metadata) or ("", "")
            shown = f'"{format_duration(value)}"' if isinstance(value, timedelta) else _show(value)
            return f"default {shown} is outside its range {low} … {high}"
    return None


def _unsupported_type(typ: Any, seen: frozenset[type]) -> str | None:
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in args if a is not type(None)]
        return _unsupported_type(options[0], seen) if len(options) == 1 else f"unions like {typ} are not supported"
    if origin is Literal:
        return None if len({type(a) for a in args}) == 1 else f"{typ} mixes value types"
    if origin is tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            return f"{typ}: use tuple[X, ...]"
        return _unsupported_type(args[0], seen)
    if origin in (dict, Mapping):
        return None if args and args[0] is str else f"{typ}: keys must be str"
    if dataclasses.is_dataclass(typ):
        return unsupported_settings(typ, seen)  # type: ignore[arg-type]
    if typ in (bool, int, float, str, Path, timedelta, time, datetime):
        return None
    return f"{typ!r} is not a supported settings type"
