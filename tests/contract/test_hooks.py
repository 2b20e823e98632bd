"""Contract tests: the plugin guide matches the hookspecs, every hook is tested, and the builtin
plugins honour the contract (names, metric conventions, rules that watch something real)."""

from __future__ import annotations

import ast
import inspect
import re
from datetime import timedelta
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
    """Each default rule is well named, watches a declared metric (or the agent's health gauges, a
    rollup or an event kind) with labels it has, and has complete texts in both languages."""
    from normagent.deviations import rule_metrics
    from normagent.model import OWNER_ROLES
    from normagent.rules import complete, rule_problems

    metrics = rule_metrics(builtins)
    assert builtins.rules()
    for name, rule in builtins.rules().items():
        assert NAME.match(name) and name.split(".")[0] == rule.plugin, name
        assert rule_problems(rule, metrics) == [], name
        done = complete(rule, timedelta(minutes=15))
        assert done.cia and done.owner in OWNER_ROLES, name
        for text in (done.text_nb, done.text_en):
            assert text is not None and text.title and text.what and text.consequence and text.measures, name


def test_the_first_plugins_write_their_own_texts(builtins: Plugins) -> None:
    """system, access and edi say in their own words (both languages) what each rule means; a newer
    plugin may lean on its section's defaults until it does."""
    for rule in builtins.rules().values():
        if rule.plugin in ("system", "access", "edi"):
            assert rule.text_nb is not None and rule.text_en is not None and rule.cia and rule.owner, rule.name


def test_every_indicator_has_a_default_rule(builtins: Plugins) -> None:
    """Every factsheet indicator of system, access and edi is watched by a default rule, directly or
    through the rollup it feeds (counters of the agent's own plumbing excepted)."""
    watched = {rule.watch for rule in builtins.rules().values()}
    plumbing = ("normagent_log_", "normagent_boot_records_invalid", "normagent_edi_indexed", "normagent_edi_timestamps",
                "normagent_cpu", "normagent_load", "normagent_memory_total", "normagent_swap", "normagent_filesystem_size",
                "normagent_filesystem_free", "normagent_filesystem_avail_bytes", "normagent_memory_available_bytes",
                "normagent_boot_time", "normagent_boots_total", "normagent_downtime", "normagent_edi_messages_total",
                "normagent_edi_unacknowledged_messages", "normagent_edi_oldest", "normagent_edi_unacknowledged_total",
                "normagent_edi_receipt_errors", "normagent_edi_receipts_for_unknown", "normagent_edi_unmatched",
                "normagent_edi_stop_seconds", "normagent_cpus")
    by_rollup = {"normagent_failed_logins_total", "normagent_account_lockouts_total", "normagent_password_resets_total"}
    first = {m.name for name, spec in builtins.collectors().items() if spec.plugin in ("system", "access", "edi") for m in spec.metrics}
    missing = [
        m for m in builtins.metrics()
        if m in first and m not in watched and not m.startswith(plumbing) and m not in by_rollup
    ]
    assert missing == []


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
