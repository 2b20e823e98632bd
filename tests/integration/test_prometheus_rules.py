"""The default rules as Prometheus alerting rules: `normagent rules export --format prometheus`
writes config/prometheus/normagent-rules.yml, promtool accepts it with --lint-fatal, and its unit
tests (config/prometheus/normagent-rules.test.yml) pass."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import pytest

from normagent.cli import main
from tests.support.tools import REPO, require_tool

pytestmark = pytest.mark.integration

RULES = REPO / "config" / "prometheus" / "normagent-rules.yml"
RULE_TESTS = REPO / "config" / "prometheus" / "normagent-rules.test.yml"


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


def test_export_says_which_rules_it_leaves_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "normagent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path}"\n\n[plugins]\nentry_points = false\n')
    assert main(["rules", "export", "--format", "prometheus", "--config", str(config)]) == 0
    assert "access.success_after_failures" in capsys.readouterr().err
