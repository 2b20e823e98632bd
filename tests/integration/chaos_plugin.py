"""A plugin for the chaos test: counts the numbered lines of one log, and their ids' sums.

Loaded by the real agent through ``[plugins] extra = ["chaos_plugin"]`` with this directory on
PYTHONPATH. Its parser counts every line ``chaos <id>``, the sum of the ids and the sum of
``id² mod P``: the three equal the generator's ground truth only if every line was counted once
(a lost line and a doubled one cannot cancel out in all three). With ``CHAOS_TRACE=1`` it also
keeps one rollup row per id, to find which lines a failing run lost or doubled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

from normagent import Count, LogBlock, MetricSpec, Observation, ParseContext, ParseResult, Rollup, TextBlock, hookimpl
from normagent.logs import FileSource, file_log_collector

MODULUS = 1_000_003
TRACE_DAY = date(2026, 1, 1)
LINES = MetricSpec("chaos_lines_total", "counter", "Numbered lines counted.", section="Agent")
ID_SUM = MetricSpec("chaos_id_sum_total", "counter", "Sum of the numbered lines' ids.", section="Agent")
SQUARES = MetricSpec("chaos_id_square_sum_total", "counter", "Sum of id squared modulo a prime.", section="Agent")


def ids_of(data: bytes) -> list[int]:
    """The ids of ``chaos <id>`` lines; a checksum of what was read, not a parser to copy."""
    return [int(line.rsplit(b" ", 1)[1]) for line in data.splitlines() if line.startswith(b"chaos ")]


def parse(block: LogBlock, ctx: ParseContext) -> ParseResult:
    assert isinstance(block, TextBlock)
    ids = ids_of(block.data)
    observations: list[Observation] = [
        Count(LINES.name, (), len(ids)),
        Count(ID_SUM.name, (), sum(ids)),
        Count(SQUARES.name, (), sum(i * i % MODULUS for i in ids)),
    ]
    if os.environ.get("CHAOS_TRACE"):  # one rollup row per id: which lines were doubled or lost
        observations += [Rollup("chaos.ids", TRACE_DAY, str(i)) for i in ids]
    return ParseResult(
        observations=observations,
        parsed=len(ids),
        ignored=block.line_count - len(ids),
    )


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    files: FileSource = FileSource(paths=(), start_at="beginning")


COLLECTOR = file_log_collector(
    "chaos.lines",
    help="Numbered lines of the chaos test's log.",
    parser=parse,
    settings=ChaosSettings,
    metrics=(LINES, ID_SUM, SQUARES),
)


@hookimpl
def register_collectors() -> list[object]:
    return [COLLECTOR]
