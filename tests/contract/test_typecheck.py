"""normagent and its builtin plugins pass ``mypy --strict`` together, as installed (scripts/typecheck).

The plugins live in plugins/ and install as ``normagent.plugins``; mypy run from the repository
root checked normagent/ only, so the plugins' type errors (parsers narrower than ``Parser``,
checkpoints that were not JSON, imports that did not resolve) went unseen. scripts/typecheck lays
the tree out as installed and checks both; this test runs it, so a type error anywhere fails the
suite. With mypy's cache warm (``.cache/typecheck/.mypy_cache``) it takes about half a second, cold
about 5 s (a shared 2-core machine).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[2]


def modules() -> set[str]:
    """Every module of the installed package: normagent/ as it is, plugins/ as normagent.plugins
    (a compiled module counts by its .pyi)."""
    found = set()
    for base, prefix in ((ROOT / "normagent", ("normagent",)), (ROOT / "plugins", ("normagent", "plugins"))):
        for path in [*base.rglob("*.py"), *base.rglob("*.pyi")]:
            parts = (*prefix, *path.relative_to(base).with_suffix("").parts)
            found.add(".".join(p for p in parts if p != "__init__"))
    return found


def test_normagent_and_the_builtin_plugins_are_clean_under_mypy_strict() -> None:
    done = subprocess.run([str(ROOT / "scripts" / "typecheck")], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"scripts/typecheck failed:\n{done.stdout}{done.stderr}"
    checked = re.search(r"no issues found in (\d+) source files", done.stdout)
    assert checked is not None, done.stdout
    # mypy also counts the data directories (report/templates) as namespace packages: at least
    # every module, and so never normagent/ alone.
    assert int(checked.group(1)) >= len(modules()), "scripts/typecheck did not check every module of normagent and plugins/"
