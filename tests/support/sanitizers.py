"""Run a compiled module of normagent under AddressSanitizer and UndefinedBehaviorSanitizer.

The compiled scanners read untrusted bytes (logs, spool files): a read past a buffer, a use after
free or signed overflow there would be a crash or worse in a long-running agent. Each module's
test builds its source again with the sanitizers, into a directory of its own, and runs a Python
child that imports that build (the directory first on ``sys.path``, under the module's own
dotted name) with libasan preloaded into the interpreter — the interpreter itself is not
instrumented, so ``PYTHONMALLOC=malloc`` puts Python's objects on the sanitizer's allocator too.
Any report fails the test, with the report's end in the message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.support.tools import REPO, require_tool

FLAGS = ("-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer",
         "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC")


def build_sanitized(source: Path, module: str, into: Path) -> Path:
    """Compile ``source`` with the sanitizers as the package module ``module`` (dotted) under
    ``into``; returns the directory to put first on ``sys.path``."""
    gcc = require_tool("gcc", "gcc")
    *package, name = module.split(".")
    target = into.joinpath(*package) / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    target.parent.mkdir(parents=True, exist_ok=True)
    build = subprocess.run([gcc, *FLAGS, f"-I{sysconfig.get_paths()['include']}", "-o", str(target), str(source)],
                           capture_output=True, text=True, check=False, timeout=300)
    assert build.returncode == 0, f"{source} does not compile with the sanitizers:\n{build.stderr[-4000:]}"
    return into


def run_sanitized(code: str, *args: str, first_on_path: Path, timeout: float = 900) -> str:
    """Run ``code`` (with ``args`` as ``sys.argv[1:]``) in a child with libasan preloaded, where a
    compiled module found under ``first_on_path`` (see ``build_sanitized``) is imported instead of
    the tree's; returns its stdout. Fails on any sanitizer report or a non-zero exit."""
    gcc = require_tool("gcc", "gcc")
    libasan = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True, text=True, check=True).stdout.strip()
    env = {**os.environ, "LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
           "UBSAN_OPTIONS": "print_stacktrace=1", "PYTHONMALLOC": "malloc", "SANITIZED_BUILD": str(first_on_path)}
    child = subprocess.run([sys.executable, "-c", PRELUDE + code, *args], capture_output=True, text=True, env=env,
                           cwd=REPO, timeout=timeout, check=False)
    report = child.stderr[-4000:]
    assert "ERROR: AddressSanitizer" not in child.stderr and "runtime error" not in child.stderr, report
    assert child.returncode == 0, f"exit {child.returncode}:\n{child.stdout[-2000:]}\n{report}"
    return child.stdout


# A finder ahead of all others that answers only for compiled modules in the sanitized build;
# everything else (the packages themselves, their Python modules) comes from the tree.
PRELUDE = """
import importlib.abc, importlib.machinery, os, sys
class _SanitizedFirst(importlib.abc.MetaPathFinder):
    build = os.environ["SANITIZED_BUILD"]
    def find_spec(self, name, path, target=None):
        *package, leaf = name.split(".")
        directory = os.path.join(self.build, *package)
        spec = importlib.machinery.PathFinder.find_spec(name, [directory]) if os.path.isdir(directory) else None
        return spec if spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader) else None
sys.meta_path.insert(0, _SanitizedFirst())
"""
