"""The Grafana dashboard (config/grafana/normagent.json) is what config/grafana/build.py writes, is
valid against Grafana's own dashboard schema for the schemaVersion it declares, selects by host
everywhere, and has a panel for every metric normagent exports — so a plugin that adds a metric
fails here until the dashboard shows it. Its queries are run against a real Prometheus in
tests/integration/test_grafana_dashboard.py."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

from normagent.exposition import HEALTH_METRICS, HTTP_METRICS
from normagent.forward import DEVIATION_METRICS
from normagent.loader import build_plugins
from normagent.syslog_stats import SYSLOG_METRICS

ROOT = Path(__file__).parents[2]
DASHBOARD = ROOT / "config" / "grafana" / "normagent.json"
BUILD = ROOT / "config" / "grafana" / "build.py"
FIXTURES = ROOT / "tests" / "fixtures" / "grafana"
RECORDING_RULES = ROOT / "config" / "prometheus" / "normagent-recording.yml"

# A selector: a metric or recording-rule name and its braces.
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
PROMQL_WORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless"})


def load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_build", BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def expressions(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(board) for t in p["targets"]]


def selected_names(expr: str) -> set[str]:
    return {name for name, _ in SELECTOR.findall(expr)}


def test_the_shipped_dashboard_is_what_build_writes(golden: Any) -> None:
    text = load_build().render()
    if golden.update:
        DASHBOARD.write_text(text)
    assert DASHBOARD.read_text() == text, f"{DASHBOARD} is out of date: python {BUILD.relative_to(ROOT)} (or pytest --update-golden)"


def test_the_dashboard_is_valid_against_grafanas_schema_for_its_schema_version() -> None:
    board = dashboard()
    # The vendored types describe the schemaVersion in their defaults; the dashboard declares it.
    defaults = (FIXTURES / "dashboard.types.gen.mjs").read_text()
    declared = re.search(r"defaultDashboard = \{.*?schemaVersion: (\d+)", defaults, re.S)
    assert declared is not None
    assert board["schemaVersion"] == int(declared.group(1))
    schema = json.loads((FIXTURES / "dashboard.schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(board)]
    assert problems == []


def test_the_schema_refuses_what_grafana_would_not_read() -> None:
    """The check has teeth: a misspelled key, a wrong type and a missing schemaVersion fail it."""
    validator = jsonschema.Draft7Validator(json.loads((FIXTURES / "dashboard.schema.json").read_text()))
    for spoil in (
        lambda b: panels(b)[0].update(titel="Oppetid"),
        lambda b: panels(b)[0]["gridPos"].update(w="wide"),
        lambda b: b.pop("schemaVersion"),
        lambda b: b["templating"]["list"][1].update(refresh=7),
    ):
        board = dashboard()
        spoil(board)
        assert not validator.is_valid(board)


def test_one_row_per_factsheet_section_and_a_host_variable() -> None:
    board = dashboard()
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    for words in ("Driftsstatus", "pålogginger", "hendelseslogger", "EDI", "oppdateringer", "endringer", "nettverk", "Ondsinnet", "brannmur", "Avvik", "helse"):
        assert any(words in row for row in rows), (words, rows)
    host = next(v for v in board["templating"]["list"] if v["name"] == "host")
    assert host["type"] == "query" and host["multi"] and host["includeAll"]
    assert "instance" in host["query"]["query"]


def test_every_selector_is_by_host() -> None:
    for expr in expressions(dashboard()):
        for name, matchers in SELECTOR.findall(expr):
            assert 'instance=~"$host"' in matchers, (name, expr)
        # and no metric is selected without braces (it would show every host)
        bare = set(re.findall(r"\b(normagent_[a-z0-9_]+)\b(?!\{)", expr)) - set(re.findall(r":(normagent_[a-z0-9_]+):", expr))
        assert not bare, (bare, expr)


def exported_metrics() -> dict[str, str]:
    """Every metric name normagent exports, with who declares it."""
    plugins = build_plugins(entry_points_enabled=False)
    names = {m.name: f"collector {spec.name}" for spec in plugins.collectors().values() for m in spec.metrics}
    for metric in (*HEALTH_METRICS, *HTTP_METRICS, *DEVIATION_METRICS, *SYSLOG_METRICS):
        names.setdefault(metric.name, "the agent")
    return names


def test_every_exported_metric_has_a_panel() -> None:
    used = set().union(*(selected_names(e) for e in expressions(dashboard())))
    missing = {name: who for name, who in exported_metrics().items() if name not in used}
    assert missing == {}, f"metrics no panel shows (add them in {BUILD.relative_to(ROOT)}): {missing}"
    assert len(exported_metrics()) >= 90


def test_the_recording_rules_the_dashboard_reads_exist() -> None:
    recorded = set(re.findall(r"^\s*- record: (\S+)$", RECORDING_RULES.read_text(), re.M))
    used = {name for e in expressions(dashboard()) for name in selected_names(e) if ":" in name}
    assert used and used <= recorded, used - recorded


@pytest.mark.parametrize("kind", ["stat", "bargauge", "table"])
def test_point_in_time_panels_ask_for_instant_queries(kind: str) -> None:
    """A stat or table over a range query would show the last point of a graph; the counts of the
    range (``increase(...[$__range])``) are meant once, at the range's end."""
    for panel in panels(dashboard()):
        if panel["type"] == kind:
            assert all(t.get("instant") is True for t in panel["targets"]), panel["title"]
