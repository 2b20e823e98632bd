"""The dependency rule of DESIGN.md, checked on the source: who may import whom."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
CORE = ROOT / "normagent"
PLUGINS = ROOT / "plugins"
LEAVES = {"normagent.errors", "normagent.digests", "normagent.standin", "normagent.model", "normagent.clock", "normagent.smallfile", "normagent.hostnames", "normagent.randomness", "normagent.records", "normagent.timeparse"}
RECORDS = {"normagent.records", "normagent.records.dataclass"}
"""What a leaf may import of normagent: its ``dataclass`` (normagent/records.py, which imports nothing of it)."""


def module_name(path: Path) -> str:
    if path.is_relative_to(PLUGINS):
        parts = ("normagent", "plugins", *path.relative_to(PLUGINS).with_suffix("").parts)
    else:
        parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


def runtime_imports(path: Path) -> set[str]:
    """Modules imported at run time (imports under ``if TYPE_CHECKING:`` do not count)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def own_imports(path: Path) -> set[str]:
    return {name for name in runtime_imports(path) if name == "normagent" or name.startswith("normagent.")}


CORE_FILES = sorted(CORE.rglob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_the_plugins_package(path: Path) -> None:
    assert not [m for m in own_imports(path) if m.startswith("normagent.plugins")]


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_leaf_modules_import_nothing_of_normagent(leaf: str) -> None:
    path = ROOT / (leaf.replace(".", "/") + ".py")
    assert own_imports(path) <= (set() if leaf == "normagent.records" else RECORDS)


def _allowed(imported: str, allowed: set[str]) -> bool:
    return any(imported == a or imported.startswith(a + ".") for a in allowed)


@pytest.mark.parametrize(
    "path",
    [
        CORE / "hookspecs.py", CORE / "config.py", CORE / "privacy.py", CORE / "log.py", CORE / "maintenance.py",
        *sorted((CORE / "sources").glob("*.py")),
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_sources_config_privacy_log_maintenance_import_only_leaves(path: Path) -> None:
    allowed = {*LEAVES, "normagent.sources"} if path.parent.name == "sources" else set(LEAVES)
    bad = [m for m in own_imports(path) if m != "normagent" and not _allowed(m, allowed)]
    # "from normagent.errors import X" also shows up as normagent.errors.X: allowed by prefix.
    assert bad == []


def test_only_the_ledger_opens_the_database() -> None:
    openers = [p.name for p in CORE_FILES if "sqlite3.connect" in p.read_text()]
    assert openers == ["ledger.py"]


@pytest.mark.parametrize("path", sorted(PLUGINS.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_public_api(path: Path) -> None:
    import normagent

    public = {"normagent", *(f"normagent.{name}" for name in normagent.__all__)}
    own_package = ".".join(module_name(path).split(".")[:3])  # normagent.plugins.<plugin>
    bad = [m for m in own_imports(path) if m not in public and not _allowed(m, {own_package})]
    assert bad == [], "plugins import only `normagent` (the public API) and their own package"


def test_every_package_is_installed() -> None:
    """pyproject lists packages by hand (plugins/ maps to normagent.plugins): none may be forgotten."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {module_name(init) for base in (CORE, PLUGINS) for init in base.rglob("__init__.py")}
    assert found - listed == set()
