"""The README's metric table and configuration reference are generated from the code that defines
them, so they cannot drift: this test fails when they differ, and ``--update-golden`` rewrites them."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from normagent.agent import sections
from normagent.config import (
    INTERVAL_RANGE,
    TIMEOUT_RANGE,
    AgentSettings,
    ForwarderCommon,
    PluginsSettings,
    RuleSettings,
    format_duration,
    range_text,
)
from normagent.exposition import HEALTH_METRICS, HTTP_METRICS
from normagent.forward import DEVIATION_METRICS
from normagent.loader import build_plugins
from normagent.logs import LOG_METRICS
from normagent.model import MetricSpec
from normagent.syslog_stats import SYSLOG_METRICS

LOG_METRIC_NAMES = frozenset(m.name for m in LOG_METRICS)

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"


def all_metrics() -> list[tuple[MetricSpec, str]]:
    plugins = build_plugins(entry_points_enabled=False)
    owners: dict[str, list[str]] = {}
    for spec in plugins.collectors().values():
        for metric in spec.metrics:
            owners.setdefault(metric.name, []).append(spec.name)
    metrics = {m.name: m for m in plugins.metrics().values()}
    for metric in (*HEALTH_METRICS, *HTTP_METRICS, *DEVIATION_METRICS, *SYSLOG_METRICS):
        metrics[metric.name] = metric
        agent = metric in (*HEALTH_METRICS, *HTTP_METRICS, *DEVIATION_METRICS)
        owners.setdefault(metric.name, ["agent"] if agent else ["core.syslog"])
    rows = []
    for name in sorted(metrics):
        collectors = owners[name]
        who = collectors[0] if len(collectors) == 1 else "every log collector" if name in LOG_METRIC_NAMES else ", ".join(collectors)
        rows.append((metrics[name], who))
    return rows


def metric_table() -> str:
    lines = ["| metric | type | labels | factsheet section | from | meaning |", "|---|---|---|---|---|---|"]
    for metric, who in all_metrics():
        labels = ", ".join(f"`{label}`" for label in metric.labels) or "—"
        lines.append(f"| `{metric.name}` | {metric.kind} | {labels} | {metric.section} | {who} | {_cell(metric.help)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _type_name(typ: Any) -> str:
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is typing.Literal:
        return " \\| ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in args)
    if origin in (typing.Union, __import__("types").UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is tuple:
        return f"array of {_type_name(args[0])}"
    if origin is dict:
        return f"table of {_type_name(args[1])}"
    if dataclasses.is_dataclass(typ):
        return "table"
    return {bool: "boolean", int: "integer", float: "number", str: "string", Path: "path", timedelta: "duration",
            time: "time of day", datetime: "date-time"}.get(typ, getattr(typ, "__name__", str(typ)))


def _type_cell(typ: Any, metadata: Any) -> str:
    """The type, and the range a numeric setting must be in (``integer, 1 … 100000``)."""
    bounds = range_text(metadata)
    if bounds is None:
        return _type_name(typ)
    return f"{_type_name(typ)}, {'each ' if typing.get_origin(typ) in (tuple, dict) else ''}{bounds[0]} … {bounds[1]}"


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _default_text(value: Any) -> str:
    if value is dataclasses.MISSING or value is None:
        return "—"
    if value in ((), {}, ""):
        return {(): "`[]`", "": '`""`'}.get(value, "`{}`") if not isinstance(value, dict) else "`{}`"
    if isinstance(value, timedelta):
        return f'`"{format_duration(value)}"`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, time):
        return f'`"{value.strftime("%H:%M")}"`'
    if dataclasses.is_dataclass(value):
        return "see below"
    if isinstance(value, tuple):
        return "`[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in value) + "]`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def _attribute_docs(cls: type) -> dict[str, str]:
    """Field descriptions from a Google-style ``Attributes:`` section of the class docstring."""
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^Attributes:\n((?:[ \t]+.*\n?|\n)+)", doc, re.M)
    if not match:
        return {}
    result: dict[str, str] = {}
    current = ""
    for line in match.group(1).splitlines():
        entry = re.match(r"^ {4}(\w+)(?: \([^)]*\))?: (.*)$", line)
        if entry:
            current = entry.group(1)
            result[current] = entry.group(2)
        elif current and line.strip():
            result[current] += " " + line.strip()
    return result


def settings_table(cls: type, extra_rows: list[str] = (), defaults: Any = None) -> str:  # type: ignore[assignment]
    """The table of ``cls``'s keys. ``defaults`` is the instance whose values are the defaults (a
    nested table's defaults are those of its parent's default value, as config.py merges them)."""
    hints = typing.get_type_hints(cls)
    docs = _attribute_docs(cls)
    lines = ["| key | type | default | meaning |", "|---|---|---|---|", *extra_rows]
    nested = []
    for f in dataclasses.fields(cls):
        key = f.metadata.get("toml", f.name)
        meaning = f.metadata.get("help") or docs.get(f.name) or docs.get(key, "")
        default = getattr(defaults, f.name) if defaults is not None else _field_default(f)
        lines.append(f"| `{key}` | {_type_cell(hints[f.name], f.metadata)} | {_default_text(default)} | {_cell(meaning)} |")
        inner = hints[f.name]
        inner = typing.get_args(inner)[0] if typing.get_origin(inner) is tuple else typing.get_args(inner)[1] if typing.get_origin(inner) is dict else inner
        if dataclasses.is_dataclass(inner):
            nested.append((key, inner, default if isinstance(default, inner) else None))
    text = "\n".join(lines) + "\n"
    for key, inner, instance in nested:
        text += f"\n`{key}` entries:\n\n" + settings_table(inner, defaults=instance)
    return text


def config_reference() -> str:
    plugins = build_plugins(entry_points_enabled=False)
    parts = [
        "### `[agent]`\n\n" + settings_table(AgentSettings),
        "### `[plugins]`\n\n" + settings_table(PluginsSettings),
    ]
    for name, section in sections().items():
        note = " (optional: the receiver runs only when this table exists)" if section.optional else ""
        parts.append(f"### `[{name}]`{note}\n\n" + settings_table(section.settings))
    parts.append(
        '### `[rules."<name>"]`\n\nRetune or disable a default deviation rule by name (`normagent rules list` shows '
        "them), or add a rule of the site's own under another name with `watch`, `comparison` and `threshold`; "
        "`watch`, `comparison`, `labels`, `group_by`, `preceded_by` and `min_preceding` are for such rules only.\n\n"
        + settings_table(RuleSettings)
    )
    parts.append(
        "### `[forwarders.<name>]`\n\nWhere deviation candidates go; any number, each with a name of its own "
        "(a metric label) and a `kind`. The keys every forwarder has:\n\n" + settings_table(ForwarderCommon)
    )
    for kind, spec in sorted(plugins.forwarders().items()):
        assert spec.settings is not None
        parts.append(f'#### `kind = "{kind}"`\n\n{spec.help}\n\n' + settings_table(spec.settings))
    for name, spec in sorted(plugins.collectors().items()):
        common = [
            f"| `enabled` | boolean | `{str(spec.enabled_by_default).lower()}` | Run this collector |",
            f'| `interval` | {_type_cell(timedelta, INTERVAL_RANGE)} | `"{format_duration(spec.interval)}"` | Time between runs |',
            f'| `timeout` | {_type_cell(timedelta, TIMEOUT_RANGE)} | `"{format_duration(spec.timeout)}"` '
            "| A run taking longer is abandoned and counted as failed |",
        ]
        if spec.settings is None:
            table = "\n".join(["| key | type | default | meaning |", "|---|---|---|---|", *common]) + "\n"
        else:
            table = settings_table(spec.settings, common)
        parts.append(f'### `[collectors."{name}"]`\n\n{spec.help}\n\n{table}')
    return "\n".join(parts)


def test_a_nested_table_shows_the_defaults_the_plugin_gives_it() -> None:
    """``[collectors."access.logins".journal]``: the identifiers row shows the login programs, as the
    ``journal`` row above it says, not JournalSettings' own empty default."""
    from normagent.plugins.access.collectors import LOGIN_IDENTIFIERS, LoginSettings

    journal_rows = settings_table(LoginSettings).split("`journal` entries:")[1]
    row = next(line for line in journal_rows.splitlines() if line.startswith("| `identifiers` |"))
    default_cell = row.split(" | ")[2]
    assert default_cell == "`[" + ", ".join(f'"{name}"' for name in LOGIN_IDENTIFIERS) + "]`"


def counting_rules() -> str:
    return (ROOT / "docs" / "access-counting-rules.md").read_text().split("\n", 1)[1].lstrip("\n")


def rule_catalogue() -> str:
    """docs/deviations.md's table of every default rule, as the agent completes it."""
    from normagent.rules import complete, format_span, value_format

    lines = [
        "| rule | fires when | severity | touches | owner | 72 h | title (bokmål / English) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rule in sorted(build_plugins(entry_points_enabled=False).rules().items()):
        done = complete(rule, timedelta(minutes=15))
        assert done.text_nb is not None and done.text_en is not None
        kind, _, target = rule.watch.partition(":")
        matchers = ",".join(f'{k}="{v}"' for k, v in sorted(rule.labels.items()))
        what = {
            "rollup": f"rollup `{target}` over {format_span(rule.window, 'en') if rule.window else ''}",
            "event": f"events `{target}` over {format_span(rule.window, 'en') if rule.window else ''}",
            "absent": f"no series of `{target}{{{matchers}}}`" if matchers else f"no series of `{target}`",
        }.get(kind) or (
            f"increase of `{rule.watch}{{{matchers}}}` over {format_span(rule.window, 'en')}" if rule.window and matchers
            else f"increase of `{rule.watch}` over {format_span(rule.window, 'en')}" if rule.window
            else f"`{rule.watch}{{{matchers}}}`" if matchers else f"`{rule.watch}`"
        )
        when = f"{what} {rule.comparison} {value_format(rule)(rule.threshold, 'en')}"
        if rule.preceded_by:
            when += f", after ≥ {rule.min_preceding:g} in `{rule.preceded_by.partition(':')[2]}`"
        if rule.group_by:
            when += f", per {', '.join(rule.group_by)}"
        if rule.for_:
            when += f", for {format_span(rule.for_, 'en')}"
        lines.append(
            f"| `{name}` | {_cell(when)} | {rule.severity.label} | {', '.join(done.cia)} | {done.owner} | "
            f"{'yes' if rule.personal_data else ''} | {_cell(done.text_nb.title)} / {_cell(done.text_en.title)} |"
        )
    return "\n".join(lines) + "\n"


def test_the_rule_catalogue_is_generated_from_the_rules(golden: Any) -> None:
    start, end = "<!-- rules:start (generated by tests/contract/test_docs.py) -->", "<!-- rules:end -->"
    golden.section(ROOT / "docs" / "deviations.md", start, end, rule_catalogue())


@pytest.mark.parametrize(
    ("marker", "render"), [("metrics", metric_table), ("config", config_reference), ("counting", counting_rules)]
)
def test_readme_section_is_generated_from_the_code(marker: str, render: Any, golden: Any) -> None:
    start, end = f"<!-- {marker}:start (generated by tests/contract/test_docs.py) -->", f"<!-- {marker}:end -->"
    golden.section(README, start, end, render())
