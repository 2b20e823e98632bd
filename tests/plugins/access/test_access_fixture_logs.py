"""Whole real logs through the fast path and through the general way: the same answer, block by block.

``test_access_fastpaths`` holds the shortcuts to the plain rules on samples of lines; this holds
them to it on whole files as the log driver hands them out: every line of a fixture log (comments
and blank lines included, as a real log has lines no rule knows) in one block, and cut into
blocks of a few lines at every offset, so that a candidate line at a block's first or last byte,
and a block without any, are met. For each block the fast parser (byte scans, ``_Quick``, cut
stamps), the general way after the same prefilter (``_parse_lines(fast=False)``) and each line on
its own through ``split_line`` + ``classify`` + the tally must agree on what every line is
(parsed, ignored, unparsed), the examples kept, and every count and rollup row.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from normagent import ParseContext, ParseResult, TextBlock
from normagent.plugins.access.parse import _parse_lines, parse_auth_lines
from normagent.testing import EPOCH, test_pseudonymiser
from tests.plugins.access.test_access_fastpaths import GENERATED, line_by_line

ROOT = Path(__file__).parents[3]
LOGS = ROOT / "tests" / "fixtures" / "logs"
FILES = [LOGS / "access" / "linux.txt", LOGS / "fail2ban" / "sshd", LOGS / "fail2ban" / "pam-generic"]


def fixture_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def text_block(lines: list[bytes]) -> TextBlock:
    return TextBlock(data=b"".join(lines), origin="fixture", mtime=EPOCH, lines=len(lines))


def answer(result: ParseResult) -> tuple[object, ...]:
    return (result.parsed, result.ignored, result.unparsed, sorted(map(repr, result.observations)), result.examples)


def check_block(lines: list[bytes], ctx: ParseContext) -> ParseResult:
    block = text_block(lines)
    fast = parse_auth_lines(block, ctx)
    general = _parse_lines(block, ctx, fast=False)
    assert fast.parsed + fast.ignored + fast.unparsed == len(lines)
    assert answer(fast) == answer(general)
    plain = line_by_line(block.data if block.data.endswith(b"\n") else block.data + b"\n", ctx)
    assert (fast.parsed, sorted(map(repr, fast.observations))) == (plain.parsed, sorted(map(repr, plain.observations)))
    return fast


def ctx() -> ParseContext:
    return ParseContext(now=EPOCH, tz=ZoneInfo("Europe/Oslo"), pseudonymise=test_pseudonymiser(), examples=5)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_whole_fixture_log_gets_one_answer_from_the_fast_path_and_the_general_way(path: Path) -> None:
    lines = fixture_lines(path)

    result = check_block(lines, ctx())

    assert result.parsed >= 5  # the file holds attempts: the comparison is not vacuous


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
@pytest.mark.parametrize("size", [1, 2, 5, 13])
def test_a_fixture_log_cut_into_blocks_gets_the_same_answer_in_every_block(path: Path, size: int) -> None:
    lines = fixture_lines(path)
    parsed = 0
    for offset in range(0, len(lines), size):
        parsed += check_block(lines[offset : offset + size], ctx()).parsed

    assert parsed >= 5


def test_a_generated_log_gets_one_answer_in_blocks_of_the_drivers_shape() -> None:
    """bench/gen_authlog.py's lines (the bulk of sshd's plain lines, both stamp styles) in blocks of
    a few hundred lines, the last one without its newline as a block cut at the end of a file."""
    lines = [line.encode("utf-8", "surrogateescape") + b"\n" for line in GENERATED]
    lines[-1] = lines[-1].rstrip(b"\n")
    parsed = 0
    for offset in range(0, len(lines), 397):
        parsed += check_block(lines[offset : offset + 397], ctx()).parsed

    assert parsed > 100
