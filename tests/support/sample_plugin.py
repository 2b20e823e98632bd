"""A small but complete plugin for core tests: a collector with settings of every supported type,
a rule, a report section and a forwarder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Literal

from normagent import (
    Advice,
    Batch,
    Checkpoint,
    CollectorSpec,
    Count,
    ForwarderSpec,
    Gauge,
    MetricSpec,
    ReportSection,
    RuleSpec,
    RunContext,
    SectionContent,
    hookimpl,
)

EVENTS = MetricSpec(
    "normagent_sample_events_total", "counter", "Events the sample collector saw.", ("kind",), preset=(("a",), ("b",))
)
LEVEL = MetricSpec("normagent_sample_level", "gauge", "The sample collector's level.")


@dataclass(frozen=True, slots=True)
class Folder:
    path: Path = Path("/srv")
    direction: Literal["in", "out"] = "in"


@dataclass(frozen=True, slots=True)
class SampleSettings:
    paths: tuple[str, ...] = ("/var/log/sample.log",)
    start_at: Literal["beginning", "end"] = "end"
    max_lines: int = field(default=1000, metadata={"min": 1, "max": 100_000})
    ratio: float = field(default=0.5, metadata={"min": 0, "max": 10})
    quiet: bool = False
    gap: timedelta = field(default=timedelta(minutes=30), metadata={"min": timedelta(minutes=1), "max": timedelta(days=1)})
    opens: time = time(8, 0)
    folders: tuple[Folder, ...] = ()
    per_type: dict[str, timedelta] = field(default_factory=dict, metadata={"min": timedelta(0), "max": timedelta(days=7)})
    ca_file: Path | None = field(default=None, metadata={"must_exist": "file"})
    days: tuple[int, ...] = field(default=(1, 2), metadata={"min": 1, "max": 7})
    home: Folder = Folder(Path("/srv/home"), "out")  # a nested table whose default is not its class's


def collect_sample(ctx: RunContext) -> Iterator[Batch]:
    seen = ctx.state.get("seen") or 0
    yield Batch([Count(EVENTS.name, {"kind": "a"}, 2), Gauge(LEVEL.name, 7)], [Checkpoint("seen", seen + 1)])


def advise_sample(ctx: RunContext) -> list[Advice]:
    """Valid but probably not meant: a quiet collector tells nobody what it saw."""
    return [Advice("quiet", "quiet = true: nothing this collector sees is logged")] if ctx.settings.quiet else []


SAMPLE = CollectorSpec(
    name="sample.events",
    help="Counts sample events.",
    collect=collect_sample,
    advise=advise_sample,
    interval=timedelta(seconds=30),
    settings=SampleSettings,
    metrics=(EVENTS, LEVEL),
)


@hookimpl
def register_collectors() -> list[CollectorSpec]:
    return [SAMPLE]


@hookimpl
def register_rules() -> list[RuleSpec]:
    return [RuleSpec("sample.many", EVENTS.name, ">", 10, "More than {threshold} sample events", window=timedelta(hours=1))]


@hookimpl
def register_report_sections() -> list[ReportSection]:
    return [ReportSection("sample.section", "Eksempel", 99, lambda data, period: SectionContent(("Ingen funn.",)))]


@hookimpl
def register_forwarders() -> list[ForwarderSpec]:
    return [ForwarderSpec("sample", "Forwards nowhere.", lambda delivery, settings: None)]
