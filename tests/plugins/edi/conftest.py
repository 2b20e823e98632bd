"""Helpers for the EDI plugin's tests: run the collector as the scheduler does, read series back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from normagent import Batch
from normagent.ledger import Ledger
from normagent.plugins.edi.collectors import make_spec
from normagent.testing import FakeClock, FakeHost, make_context, recorded_command


@dataclass
class Harness:
    """One collector object, one real ledger, one fake clock: what the agent has, minus threads."""

    ledger: Ledger
    clock: FakeClock
    settings: Any
    host: FakeHost
    commands: dict[tuple[str, ...], Any]
    spec: Any = None

    def __post_init__(self) -> None:
        self.spec = self.spec or make_spec()
        self.ledger.declare(self.spec.metrics)

    def context(self, **changes: Any) -> Any:
        return make_context(
            self.spec, settings=changes.pop("settings", self.settings), clock=self.clock,
            state=self.ledger.checkpoints(self.spec.name), host=self.host,
            run_command=recorded_command(self.commands), timeout=changes.pop("timeout", 600), **changes,
        )

    def cycle(self, **changes: Any) -> list[Batch]:
        """Run once, committing each batch as it is yielded (as ``scheduler.execute`` does)."""
        batches = []
        for batch in self.spec.collect(self.context(**changes)):
            self.ledger.commit(self.spec.name, batch)
            batches.append(batch)
        return batches

    def restart(self) -> None:
        """A new collector object on the same ledger: what a restart or a SIGHUP reload gives."""
        self.spec = make_spec()

    def batches(self, **changes: Any) -> Iterator[Batch]:
        """The raw generator, for tests that decide what gets committed."""
        return iter(self.spec.collect(self.context(**changes)))

    def series(self, metric: str, *names: str) -> dict[tuple[str, ...], float]:
        out = {}
        for labels, value in self.ledger.snapshot().values(metric).items():
            d = dict(labels)
            out[tuple(d[n] for n in names)] = value
        return out

    def value(self, metric: str, **labels: str) -> float:
        return self.series(metric, *labels).get(tuple(labels.values()), 0.0)

    def nonzero(self, metric: str, *names: str) -> dict[tuple[str, ...], float]:
        return {k: v for k, v in self.series(metric, *names).items() if v}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Any]:
    """Build a ``Harness`` at a given time: ``harness(settings, now)``."""
    opened: list[Ledger] = []

    def make(settings: Any, now: datetime | float, **kw: Any) -> Harness:
        start = now if isinstance(now, datetime) else datetime.fromtimestamp(now, timezone.utc)
        clock = FakeClock(start)
        ledger = Ledger.open(tmp_path / f"ledger-{len(opened)}.db", clock=clock)
        opened.append(ledger)
        return Harness(ledger, clock, settings, kw.get("host") or FakeHost(), kw.get("commands") or {})

    yield make
    for ledger in opened:
        ledger.close()


def write(path: Path, data: bytes, mtime: float) -> Path:
    """Write a file dated ``mtime``, making sure its directory's modification time moves.

    On a real host a listing can only miss a new file if both land in the same timestamp tick;
    the collector guards against that by the host clock, which a FakeClock in another year does
    not share — so tests make every write visible in the directory's time themselves.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    before = os.stat(path.parent).st_mtime_ns
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    after = os.stat(path.parent).st_mtime_ns
    if after == before:
        os.utime(path.parent, ns=(after + 1, after + 1))
    return path


def move(source: Path, target: Path) -> Path:
    """Move a file (as an EPJ archives a handled message), making both directories' times move."""
    target.parent.mkdir(parents=True, exist_ok=True)
    stamps = {d: os.stat(d).st_mtime_ns for d in (source.parent, target.parent)}
    source.rename(target)
    for directory, before in stamps.items():
        after = os.stat(directory).st_mtime_ns
        if after == before:
            os.utime(directory, ns=(after + 1, after + 1))
    return target
