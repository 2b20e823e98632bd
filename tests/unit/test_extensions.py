"""normagent's compiled modules (pyproject.toml's ``ext-modules``): each is optional for a
development install — built by pip where a compiler and Python's headers are, the pure-Python
reader runs where not — and always in the Debian package (scripts/build-deb checks its wheel).

These tests hold the declaration to the tree: every declared module has its source, is built
here (a failure under CI, whose scripts install the compiler first), and is what the package
imports; each module's own tests hold it to its pure-Python reference.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.support.tools import REPO, require_extension

MODULES: list[dict[str, object]] = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"].get("ext-modules", [])


def module_file(name: str) -> Path:
    """Where the editable install puts a module: next to its package's sources (normagent.plugins
    is plugins/)."""
    parts = name.split(".")
    if parts[:2] == ["normagent", "plugins"]:
        return REPO.joinpath("plugins", *parts[2:])
    return REPO.joinpath(*parts)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: str(m["name"]))
def test_a_declared_module_is_built_from_its_own_source(module: dict[str, object]) -> None:
    name = str(module["name"])
    sources = [REPO / str(source) for source in module["sources"]]  # type: ignore[attr-defined]
    assert all(source.is_file() for source in sources), sources
    assert sources[0].parent == module_file(name).parent, "the module must live beside its source"
    assert module.get("optional") is True, "a development install without a compiler must still work"
    built = require_extension(name)
    assert Path(str(built.__file__)).parent == sources[0].parent
    assert Path(str(built.__file__)).stat().st_mtime >= max(source.stat().st_mtime for source in sources), \
        f"{built.__file__} is older than its source: run pip install -e . (scripts/test does)"


def test_compiled_files_are_never_committed() -> None:
    assert "*.so" in (REPO / ".gitignore").read_text().split()
