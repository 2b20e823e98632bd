"""normagent and its builtin plugins pass ``mypy --strict`` together, as installed (scripts/typecheck).

The plugins live in plugins/ and install as ``normagent.plugins``; mypy run from the repository
root checked normagent/ only, so the plugins' type errors (parsers narrower than ``Parser``,
checkpoints that were not JSON, imports that did not resolve) went unseen. scripts/typecheck lays
the tree out as installed and checks both; this test runs it, so a type error anywhere fails the
suite. With mypy's cache warm (``.cache/typecheck/.mypy_cache``) it takes about half a second, cold
about 5 s (a shared 2-core machine).

The ``Parser`` protocol's promise that mypy now holds the plugins' annotations to (a parser takes
either kind of block) is also checked by running every builtin parser on both kinds.
"""

from __future__ import annotations

import re
import subprocess
from datetime import timezone
from pathlib import Path

import pytest

from normagent import CollectorSpec, JournalEntry, LogBlock, ParseContext, RecordBlock, TextBlock
from normagent.loader import build_plugins
from normagent.logs import checked_parse
from normagent.testing import EPOCH, test_pseudonymiser

ROOT = Path(__file__).parents[2]
PARSERS = {name: spec for name, spec in build_plugins(entry_points_enabled=False).collectors().items() if spec.parser is not None}


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


ENTRY = JournalEntry({"MESSAGE": "Failed password for root from 203.0.113.9 port 5 ssh2", "PRIORITY": "3"}, EPOCH, "c1")
BLOCKS: tuple[LogBlock, ...] = (
    RecordBlock((ENTRY, ENTRY), "journal"),
    TextBlock(b"Nov 23 07:25:53 srv sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2\nx\n", "x.log", None, 2),
)


@pytest.mark.parametrize("name", sorted(PARSERS))
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: type(b).__name__)
def test_every_builtin_parser_takes_either_kind_of_block(name: str, block: LogBlock) -> None:
    """What the ``Parser`` protocol says, and mypy holds the annotations to: ``normagent parse``
    hands every collector's parser every kind of block, so none may fail on the kind it does not
    read; each line or record still gets one outcome."""
    spec: CollectorSpec = PARSERS[name]
    assert spec.parser is not None
    ctx = ParseContext(now=EPOCH, tz=timezone.utc, pseudonymise=test_pseudonymiser(), settings=spec.settings() if spec.settings else None)
    result = checked_parse(spec.parser, block, ctx, {m.name: m for m in spec.metrics})
    assert result.parsed + result.ignored + result.unparsed == 2
