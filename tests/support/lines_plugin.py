"""A plugin for daemon tests of exactly-once counting: the numbered lines of one log file.

Its parser counts every ``line <id>`` and the sum of the ids: both equal the writer's truth only if
every line was counted once (a lost line and a doubled one do not cancel out in both). The file
collector itself adds ``normagent_log_lines_total{source="lines.log",result="parsed"}``. One rollup
row per line makes the ledger grow with every line, as a full disk test needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from normagent import Count, LogBlock, MetricSpec, Observation, ParseContext, ParseResult, Rollup, TextBlock, hookimpl
from normagent.logs import FileSource, file_log_collector

DAY = date(2026, 1, 1)
ID_SUM = MetricSpec("normagent_test_line_id_sum_total", "counter", "Sum of the numbered lines' ids.", section="Agent")


def write_lines(path: object, first: int, count: int) -> None:
    """Append ``line <first>`` … ``line <first + count - 1>`` to the log, as its writer would."""
    with open(str(path), "ab") as log:
        log.write(b"".join(b"line %d\n" % i for i in range(first, first + count)))


def parse(block: LogBlock, ctx: ParseContext) -> ParseResult:
    assert isinstance(block, TextBlock)
    ids = [int(line.split(b" ", 1)[1]) for line in block.data.splitlines()]
    observations: list[Observation] = [Count(ID_SUM.name, (), sum(ids))]
    observations += [Rollup("lines.ids", DAY, str(i)) for i in ids]
    return ParseResult(observations=observations, parsed=len(ids))


@dataclass(frozen=True, slots=True)
class LinesSettings:
    files: FileSource = FileSource(paths=(), start_at="beginning")


COLLECTOR = file_log_collector(
    "lines.log", help="Numbered lines of one test log.", parser=parse, settings=LinesSettings, metrics=(ID_SUM,)
)


@hookimpl
def register_collectors() -> list[object]:
    return [COLLECTOR]
