"""A collector for tests of the deviation pipeline end to end: it reports, as a gauge per unit,
what a JSON file says ({"unit": 0 or 1, …}), so a test switches candidates on and off by writing
the file. Off unless a test's config enables it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from normagent import Batch, CollectorSpec, Gauge, MetricSpec, RunContext, hookimpl

SWITCH = MetricSpec("normagent_switch_on", "gauge", "1 while the test switched the unit on.", ("unit",), section="Driftsstatus")


@dataclass(frozen=True, slots=True)
class SwitchSettings:
    path: Path | None = None


def collect(ctx: RunContext) -> Iterator[Batch]:
    path = ctx.settings.path
    states = json.loads(path.read_text()) if path is not None and path.exists() else {}
    yield Batch([Gauge(SWITCH.name, float(v), {"unit": unit}) for unit, v in sorted(states.items())])


SWITCHES = CollectorSpec(
    name="switch.units",
    help="Units a test switches on and off.",
    collect=collect,
    interval=timedelta(milliseconds=200),
    timeout=timedelta(seconds=5),
    settings=SwitchSettings,
    metrics=(SWITCH,),
    enabled_by_default=False,
)


@hookimpl
def register_collectors() -> list[CollectorSpec]:
    return [SWITCHES]
