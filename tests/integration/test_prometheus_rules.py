"""config/prometheus/ as promtool sees it. The default rules as Prometheus alerting rules:
`normagent rules export --format prometheus` writes normagent-rules.yml; the recording rules
(normagent-recording.yml) are written by hand. Every rules file passes `promtool check rules
--lint-fatal` and has unit tests (`<name>.test.yml`) that pass, and the example scrape config
(prometheus.yml) is a valid Prometheus configuration."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import pytest

from normagent.cli import main
from tests.support.tools import REPO, require_tool

pytestmark = pytest.mark.integration

PROMETHEUS_DIR = REPO / "config" / "prometheus"
RULES = PROMETHEUS_DIR / "normagent-rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "normagent-rules.test.yml"
EXAMPLE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted(p for p in PROMETHEUS_DIR.glob("*.yml") if not p.name.endswith(".test.yml") and p != EXAMPLE_CONFIG)


def exported(tmp_path: Path) -> str:
    config = tmp_path / "normagent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path}"\n\n[plugins]\nentry_points = false\n')
    out = io.StringIO()
    from normagent.cli import dispatch, build_parser

    assert dispatch(build_parser().parse_args(["rules", "export", "--format", "prometheus", "--config", str(config)]), out) == 0
    return out.getvalue()


def test_the_shipped_rule_file_is_what_export_writes(tmp_path: Path, golden: Any) -> None:
    text = exported(tmp_path)
    if golden.update:
        RULES.write_text(text)
    assert RULES.read_text() == text, f"{RULES} is out of date: pytest --update-golden"


def test_promtool_checks_the_exported_rules_with_lint_fatal(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    path = tmp_path / "rules.yml"
    text = exported(tmp_path)
    path.write_text(text)
    done = subprocess.run([promtool, "check", "rules", "--lint-fatal", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    alerts = sum(1 for line in text.splitlines() if line.lstrip().startswith("- alert:"))
    assert alerts >= 16 and f"SUCCESS: {alerts} rules found" in done.stdout  # every rule written is one promtool read


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    promtool = require_tool("promtool", "prometheus")
    done = subprocess.run([promtool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_config_prometheus_holds_the_recording_rules_and_the_example() -> None:
    assert [p.name for p in RULE_FILES] == ["normagent-recording.yml", "normagent-rules.yml"]
    assert EXAMPLE_CONFIG.exists()


@pytest.mark.parametrize("rules", RULE_FILES, ids=lambda p: p.name)
def test_every_rules_file_passes_promtool_lint_fatal(rules: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    done = subprocess.run([promtool, "check", "rules", "--lint-fatal", str(rules)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize("rules", RULE_FILES, ids=lambda p: p.name)
def test_every_rules_file_has_unit_tests_that_pass(rules: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    tests = rules.with_name(rules.name.replace(".yml", ".test.yml"))
    assert tests.exists(), f"{rules.name} has no unit tests ({tests.name})"
    assert f"  - {rules.name}" in tests.read_text()  # they test this file
    done = subprocess.run([promtool, "test", "rules", tests.name], cwd=tests.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def example_config(into: Path) -> Path:
    """The example scrape config with its /etc/prometheus/normagent/ paths moved under ``into``, beside
    copies of the rule files it names."""
    for rules in RULE_FILES:
        (into / rules.name).write_text(rules.read_text())
    config = into / "prometheus.yml"
    config.write_text(EXAMPLE_CONFIG.read_text().replace("/etc/prometheus/normagent/", f"{into}/normagent/"))
    return config


def test_the_example_scrape_config_is_valid_for_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    config = example_config(tmp_path)
    (tmp_path / "normagent" / "targets").mkdir(parents=True)
    (tmp_path / "normagent" / "targets" / "clinic.yml").write_text('- targets: ["srv1.clinic.example:9824"]\n  labels: {site: "clinic"}\n')
    (tmp_path / "normagent" / "ca.crt").write_text("")
    (tmp_path / "normagent" / "password").write_text("secret\n")
    done = subprocess.run([promtool, "check", "config", "--lint-fatal", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 2 rule files found" in done.stdout and "WARNING" not in done.stdout + done.stderr


def test_export_says_which_rules_it_leaves_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "normagent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path}"\n\n[plugins]\nentry_points = false\n')
    assert main(["rules", "export", "--format", "prometheus", "--config", str(config)]) == 0
    assert "access.success_after_failures" in capsys.readouterr().err
