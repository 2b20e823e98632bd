"""Contract tests: the plugin guide matches the hookspecs, every hook is tested, and the builtin
plugins honour the contract (names, metric conventions, rules that watch something real)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from normagent import ForwarderSpec, hookimpl, hookspecs
from normagent.loader import Plugins, build_plugins
from tests.support import sample_plugin

ROOT = Path(__file__).parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
START, END = "<!-- hooks:start (generated from normagent/hookspecs.py by tests/contract/test_hooks.py) -->", "<!-- hooks:end -->"
NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*$")
# "_up" and "_enabled" are 0/1 states (a target up, a protection enabled), as Prometheus names them.
BASE_UNITS = ("_seconds", "_bytes", "_ratio", "_total", "_info", "_messages", "_up", "_enabled")


def hook_names() -> list[str]:
    return sorted(name for name, fn in vars(hookspecs).items() if name.startswith("register_") and callable(fn))


def rendered_hooks() -> str:
    parts = []
    for name in hook_names():
        fn = getattr(hookspecs, name)
        signature = str(inspect.signature(fn)).replace("'", "")
        parts.append(f"### `{name}{signature}`\n\n{inspect.getdoc(fn)}\n")
    return "\n".join(parts)


def test_every_hook_is_documented_in_the_plugin_guide(golden: Any) -> None:
    golden.section(GUIDE, START, END, rendered_hooks())


def test_every_hook_has_a_test_of_its_own() -> None:
    tests = {
        node.name
        for path in (ROOT / "tests").rglob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef)
    }
    missing = [name for name in hook_names() if not any(t.startswith(f"test_hook_{name}") for t in tests)]
    assert missing == []


@pytest.fixture(scope="module")
def builtins() -> Plugins:
    return build_plugins(entry_points_enabled=False)


def test_hook_register_collectors(builtins: Plugins) -> None:
    """Builtin collectors are valid, well named, and declare metrics by the naming conventions."""
    collectors = builtins.collectors()
    assert builtins.problems == []
    assert collectors, "the builtin plugins offer no collectors"
    for name, spec in collectors.items():
        assert NAME.match(name) and name.split(".")[0] == spec.plugin, name
        assert spec.help and spec.help[0].isupper(), name
        for metric in spec.metrics:
            assert metric.name.startswith("normagent_"), metric.name
            assert metric.help.endswith("."), metric.name
            if metric.kind == "counter":
                assert metric.name.endswith("_total"), metric.name
            assert metric.section, f"{metric.name} names no factsheet section"


def test_hook_register_rules(builtins: Plugins) -> None:
    """Each default rule watches a declared metric, or a rollup or event kind, and is well named."""
    metrics = builtins.metrics()
    for name, rule in builtins.rules().items():
        assert NAME.match(name) and name.split(".")[0] == rule.plugin, name
        kind, _, target = rule.watch.partition(":")
        if kind in ("rollup", "event"):
            assert target, name
        else:
            assert rule.watch in metrics, f"rule {name} watches {rule.watch}, which no collector declares"
            for label in (*rule.labels, *rule.group_by):
                assert label in metrics[rule.watch].labels, f"rule {name}: {rule.watch} has no label {label}"
        fields = set(re.findall(r"\{(\w+)\}", rule.summary))
        assert fields <= {"value", "threshold", "key", *rule.group_by}, f"rule {name}: summary uses {fields}"


def test_hook_register_report_sections(builtins: Plugins) -> None:
    sections = builtins.report_sections()
    orders = [s.order for s in sections.values()]
    assert len(orders) == len(set(orders)), "two report sections share an order"
    for section_id, section in sections.items():
        assert NAME.match(section_id) and section.title and callable(section.build)


def test_hook_register_forwarders() -> None:
    """Forwarder kinds are unique across plugins; the first offer keeps its kind."""
    class Again:
        @hookimpl
        def register_forwarders(self) -> list[ForwarderSpec]:
            return [ForwarderSpec("sample", "Another with the same kind.", lambda delivery, settings: None)]

    loaded = build_plugins(builtins=(), entry_points_enabled=False, objects=[("sample", sample_plugin), ("again", Again())])
    assert list(loaded.forwarders()) == ["sample"]
    assert loaded.forwarders()["sample"].plugin == "sample"
    assert [str(p) for p in loaded.problems] == ["plugin again: forwarder kind 'sample' is already offered by plugin sample"]


# Values whose unit is not ours to know: the named extra OIDs of a device (a temperature, a load).
UNITLESS = frozenset({"normagent_snmp_oid_value"})


def test_builtin_metric_names_carry_a_unit_or_a_count_suffix(builtins: Plugins) -> None:
    odd = [m for m in builtins.metrics() if not m.endswith(BASE_UNITS) and not _is_plain_count(m) and m not in UNITLESS]
    assert odd == [], "metric names should end in a base unit (_seconds, _bytes, _ratio) or _total/_info"


# A state named by its adjective after the noun, as node exporters name them
# (apt_upgrades_pending, node_reboot_required): a count of things in that state, or 0/1.
STATE_SUFFIXES = ("_pending", "_required")


def _is_plain_count(name: str) -> bool:
    # gauges counting things (messages waiting, distinct sources) end in a plural noun
    if name.endswith(STATE_SUFFIXES):
        return True
    return name.endswith("s") and not name.endswith(("_seconds", "_bytes"))
