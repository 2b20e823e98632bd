"""The outside programs the tests run, and the one rule for a test that cannot run.

``scripts/servers`` (run by ``scripts/test``) installs every tool and server the suite needs: host
packages with apt, servers unpacked from their Debian packages under ``.cache/debs/root`` with a
wrapper each in ``.cache/debs/bin`` that carries its own environment (the unpacked libraries on
``LD_LIBRARY_PATH``), so a test may start one with any environment it likes.

The rule (tests/conftest.py enforces it): a test may skip only for a true property of the host —
no IPv6, not root, a kernel or container that refuses a feature — and says so through
:func:`skip_for_host`. Anything the project's scripts install is no such property: a missing tool
skips on a developer's machine with the command that installs it, and fails under CI, where
``scripts/servers`` has run and a missing tool means the set-up is broken.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from collections.abc import Iterator
from types import ModuleType
from typing import Any, NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
DEBS = REPO / ".cache" / "debs"
WRAPPERS = DEBS / "bin"
HOST_PROPERTY = "host property: "
"""How a skip that CI accepts begins (tests/conftest.py turns every other skip under CI into a failure)."""

INSTALL_HINT = "run scripts/servers (scripts/test does) to install it"


def in_ci() -> bool:
    """True under CI (``CI`` set to true, 1 or yes, as CI services and ``.ci/run`` set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def find_tool(name: str) -> str | None:
    """Where ``name`` is: the wrappers of scripts/servers first, then PATH, then the sbin
    directories a non-root PATH may lack."""
    wrapper = WRAPPERS / name
    if wrapper.is_file() and os.access(wrapper, os.X_OK):
        return str(wrapper)
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def require_tool(name: str, package: str) -> str:
    """The path of ``name``; if it is missing, skip saying which Debian package has it (a failure
    under CI, which must have it)."""
    path = find_tool(name)
    if path is not None:
        return path
    missing_tool(f"{name} not found (Debian package {package})")


def require_extension(module: str) -> ModuleType:
    """The compiled module ``module`` (one of pyproject.toml's ext-modules); if it was not built —
    no compiler or Python headers when pip installed normagent — skip saying so (a failure under
    CI, whose scripts/servers installs gcc and python3-dev before the install)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing_tool(f"compiled module {module} not built ({error}; it needs gcc, libc6-dev and "
                     "python3-dev when pip installs normagent)")


def missing_tool(what: str) -> NoReturn:
    """Skip (fail under CI) because something the project's scripts install is not there."""
    reason = f"{what}; {INSTALL_HINT}"
    if in_ci():
        pytest.fail(f"CI must provide it: {reason}", pytrace=False)
    pytest.skip(reason)


def skip_for_host(reason: str) -> NoReturn:
    """Skip because of what this host is (not what it lacks): accepted under CI too."""
    pytest.skip(HOST_PROPERTY + reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI, report a skip that is not a host property as a failure: CI installs every tool
    the suite uses, so a skip there hides a broken set-up or a test that silently proves nothing.
    (A hook: tests/conftest.py imports it.)"""
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = str(longrepr[2] if isinstance(longrepr, tuple) else longrepr).removeprefix("Skipped: ")
    if not reason.startswith(HOST_PROPERTY):
        report.outcome = "failed"
        report.longrepr = f"under CI a test may skip only for a host property ({HOST_PROPERTY!r}...); this one skipped: {reason}"


def builtins_except(*keep: str) -> str:
    """A TOML array naming every builtin collector plugin (a factsheet area under plugins/) but
    ``keep``: ``[plugins] disable = …`` in a test config, so only what the test is about collects
    (new plugins join the list by themselves). The builtin forwarders stay: they cost nothing
    until a ``[forwarders.*]`` table uses them."""
    from normagent.loader import BUILTIN_PLUGINS, short_name

    names = [short_name(module) for module in BUILTIN_PLUGINS if module.startswith("normagent.plugins.")]
    return "[" + ", ".join(f'"{name}"' for name in names if name not in keep) + "]"


EVERY_BUILTIN = builtins_except()
"""``[plugins] disable = {EVERY_BUILTIN}`` in a test config: only the test's own plugins collect."""
