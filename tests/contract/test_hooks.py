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


def test_every_plugin_writes_its_own_texts(builtins: Plugins) -> None:
    """Each default rule says in its own words, in bokmål and English, what happened, its possible
    consequence and the immediate measures, and names the CIA property it touches and its owner
    (a section's defaults are for site rules only)."""
    lacking = [
        rule.name
        for rule in builtins.rules().values()
        if not (rule.text_nb and rule.text_en and rule.cia and rule.owner)
        or not all((t.title, t.what, t.consequence, t.measures) for t in (rule.text_nb, rule.text_en))
    ]
    assert lacking == []


def test_a_possible_personal_data_breach_says_so_in_both_languages(builtins: Plugins) -> None:
    """The 72-hour deadline is only useful if the reader knows why it is there."""
    for rule in builtins.rules().values():
        if rule.personal_data:
            assert rule.text_nb is not None and "Datatilsynet" in rule.text_nb.consequence + rule.text_nb.measures, rule.name
            assert rule.text_en is not None and "Datatilsynet" in rule.text_en.consequence + rule.text_en.measures, rule.name


# Series no default rule needs to watch, and why. The agent's own metrics (section "Agent": lines
# read, bytes, checkpoint lag, unreadable files) are plumbing by declaration; a collector that fails
# is watched by system.collector_down.
PLUMBING: dict[str, str] = {
    "normagent_boot_records_invalid_total": "wtmp records the agent could not read: the quality of its input",
    "normagent_boot_time_seconds": "a timestamp; restarts are watched as unexpected shutdowns and unplanned downtime",
    "normagent_cpu_seconds_total": "CPU time, for graphs: no level of it is a deviation on every host",
    "normagent_cpus": "an inventory figure",
    "normagent_load_average_tasks": "load depends on the CPUs and the work; memory and disk, which run out, are watched",
    "normagent_memory_total_bytes": "capacity, in bytes",
    "normagent_swap_total_bytes": "capacity, in bytes",
    "normagent_swap_free_bytes": "bytes; memory pressure is watched as normagent_memory_available_ratio",
    "normagent_filesystem_size_bytes": "capacity, in bytes",
    "normagent_filesystem_free_bytes": "bytes including root's reserve; what users can write is watched as a ratio",
    "normagent_edi_receipts_for_unknown_messages_total": "receipts for messages the index never saw (sent before the agent began): a matching gap",
    "normagent_edi_unmatched_receipts": "receipts still waiting for their message in the index: a matching gap",
    "normagent_edi_timestamps_total": "how message times were read (header, file): the quality of the input",
    "normagent_edi_indexed_files": "the size of the agent's message index",
    "normagent_service_probe_duration_seconds": "a duration, for graphs; a probe that times out makes the service down",
    "normagent_service_observed_seconds_total": "the time a service was watched: the denominator of its availability",
    "normagent_sla_target_ratio": "the configured target, echoed for dashboards",
    "normagent_service_info": "an info series (kind, network tag)",
    "normagent_watched_files": "how many files the agent watches, by how: its coverage, not a change",
    "normagent_av_signature_info": "an info series (the signature version)",
    "normagent_snmp_poll_duration_seconds": "a duration, for graphs; a poll that times out makes the device down",
    "normagent_snmp_oid_value": "a site's extra OIDs: their unit and limits are the site's (a rule of its own)",
    "normagent_network_interface_bytes_total": "a byte counter, for graphs",
}

# Indicators a default rule watches through another series or rollup that carries the same
# evidence: the metric → what the rule watches.
WATCHED_THROUGH: dict[str, str] = {
    "normagent_boots_total": "normagent_unexpected_shutdowns_total",
    "normagent_memory_available_bytes": "normagent_memory_available_ratio",
    "normagent_filesystem_avail_bytes": "normagent_filesystem_avail_ratio",
    "normagent_account_lockouts_total": "rollup:access.lockout_by_account",
    "normagent_password_resets_total": "rollup:access.reset_outside_hours",
    "normagent_edi_messages_total": "normagent_edi_stop_current_seconds",
    "normagent_edi_stop_seconds_total": "normagent_edi_stop_current_seconds",
    "normagent_edi_unacknowledged_messages": "normagent_edi_unacknowledged_alarm_messages",
    "normagent_edi_unacknowledged_total": "normagent_edi_unacknowledged_alarm_messages",
    "normagent_edi_oldest_unacknowledged_age_seconds": "normagent_edi_unacknowledged_alarm_messages",
    "normagent_edi_receipt_errors_total": "normagent_edi_receipts_total",
    "normagent_sla_availability_ratio": "normagent_sla_error_budget_ratio",
    "normagent_package_changes_total": "rollup:changes.packages_unplanned",
    "normagent_av_signature_updates_total": "normagent_av_signature_age_seconds",
    "normagent_snmp_poll_failures_total": "normagent_snmp_up",
    "normagent_network_device_uptime_seconds": "normagent_network_device_restarts_total",
    "normagent_updates_pending": "normagent_updates_oldest_pending_seconds",
}


def test_every_indicator_has_a_default_rule(builtins: Plugins) -> None:
    """Every indicator any plugin declares is watched by a default rule, directly or through a
    series that carries the same evidence; what is not an indicator is listed above with a reason."""
    watched = {rule.watch for rule in builtins.rules().values()}
    indicators = {name for name, metric in builtins.metrics().items() if metric.section != "Agent"}
    missing = sorted(m for m in indicators if m not in watched and m not in PLUMBING and m not in WATCHED_THROUGH)
    assert missing == []
    assert {m: w for m, w in WATCHED_THROUGH.items() if w not in watched} == {}, "a rule these lean on is gone"
    stale = sorted(m for m in (*PLUMBING, *WATCHED_THROUGH) if m not in indicators or m in watched)
    assert stale == [], "listed as unwatched, but no plugin declares it, or a rule watches it now"


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
