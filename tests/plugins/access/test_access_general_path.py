"""The sshd shortcut switched off: the full pattern must give every fixture line the same verdict.

``classify`` sends the plain "Failed <method> for [invalid user ]X from A port N ssh2" through
``_sshd_failed_plain`` before the full pattern (``_SSHD_FAILED``), which handles every other shape.
A mutation run over parse.py (bench/README.md, "Mutation testing") found the full pattern's
branches for these shapes reached by no test: with the shortcut on, the fixture never gets there,
so a mistake in them (a count of 2, a lost account) would pass every test and miscount each line
the shortcut declines (a ": info" tail, a second " from "). Here the shortcut is off and the
fixture goes through the general path line by line.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from normagent.plugins.access import parse
from normagent.testing import parse_text
from tests.plugins.access.cases import load_cases, verdict

OSLO = ZoneInfo("Europe/Oslo")


@pytest.mark.parametrize("case", load_cases(), ids=lambda c: c.id)
def test_each_fixture_line_gets_its_verdict_through_the_full_sshd_pattern(case, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(parse, "_sshd_failed_plain", lambda message: None)

    result = parse_text(lambda block, ctx: parse._parse_lines(block, ctx, fast=False), case.line, tz=OSLO)

    assert verdict(result) == case.expect, case.what
