"""The CI skip rule itself (tests/support/tools.py): under CI a missing tool fails the run, and
only a host property may skip. Checked by running pytest on a small suite, with and without CI."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.tools import REPO

SUITE = '''
import pytest
from tests.support.tools import require_tool, skip_for_host

def test_missing_tool():
    require_tool("normagent-no-such-tool", "normagent-no-such-package")

def test_plain_skip():
    pytest.skip("not today")

@pytest.mark.skipif(True, reason="a skip mark")
def test_skip_mark():
    pass

def test_host_property():
    skip_for_host("no IPv6 loopback")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False

def test_passes():
    require_tool("sh", "dash")
'''


def outcomes(tmp_path: Path, ci: str | None) -> dict[str, str]:
    """Run SUITE in a fresh pytest with CI set to ``ci`` (unset for None); test name -> outcome."""
    (tmp_path / "conftest.py").write_text("from tests.support.tools import pytest_runtest_makereport  # noqa: F401\n")
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **({"CI": ci} if ci is not None else {})}
    junit = tmp_path / f"junit-{ci}.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, check=False, timeout=120,
    )
    result = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        # A skip mark is judged in setup, so its failure shows as an error: both are "failed".
        result[case.attrib["name"]] = {"failure": "failed", "error": "failed"}.get(kinds[0], kinds[0]) if kinds else "passed"
    return result


@pytest.mark.parametrize("ci", ["true", "1", "yes", "TRUE"])
def test_under_ci_only_a_host_property_may_skip(tmp_path: Path, ci: str) -> None:
    assert outcomes(tmp_path, ci) == {
        "test_missing_tool": "failed",
        "test_plain_skip": "failed",
        "test_skip_mark": "failed",
        "test_host_property": "skipped",
        "test_expected_failure": "skipped",  # junit's word for xfail
        "test_passes": "passed",
    }


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_elsewhere_a_missing_tool_skips(tmp_path: Path, ci: str | None) -> None:
    assert outcomes(tmp_path, ci) == {
        "test_missing_tool": "skipped",
        "test_plain_skip": "skipped",
        "test_skip_mark": "skipped",
        "test_host_property": "skipped",
        "test_expected_failure": "skipped",
        "test_passes": "passed",
    }
