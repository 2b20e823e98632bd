"""The report section over a small fake ReportData: counts, pending at the period's end, the runs
that failed, package tables; and the same section from a fleet's Prometheus (no events, no rollups)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from normagent import Event, Period, Rollup
from normagent.plugins.updates.report import SECTION, build
from normagent.plugins.updates.vocab import (
    APPLIED,
    FAILED,
    OLDEST_PENDING,
    PENDING,
    REBOOT_REQUIRED,
    SECURITY_APPLIED,
    TRANSACTION,
    UNATTENDED_RUNS,
)

NOV = Period(datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc))


@dataclass
class FakeData:
    counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    rolls: list[Rollup] = field(default_factory=list)
    evs: list[Event] = field(default_factory=list)

    def _by(self, table: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], metric: str, by: Sequence[str]) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for (name, labels), value in table.items():
            if name == metric:
                key = tuple(dict(labels).get(b, "") for b in by)
                out[key] = out.get(key, 0.0) + value
        return out

    def increase(self, metric: str, period: Period, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        return self._by(self.counters, metric, by)

    def gauge(self, metric: str, at: datetime, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        return self._by(self.gauges, metric, by)

    def rollups(self, name: str, period: Period) -> Sequence[Rollup]:
        return [r for r in self.rolls if r.name == name]

    def events(self, kind: str, period: Period) -> Sequence[Event]:
        return [e for e in self.evs if e.kind == kind and period.start <= e.at < period.end]


def at(day: int) -> datetime:
    return datetime(2026, 11, day, 6, 25, tzinfo=timezone.utc)


def sample() -> FakeData:
    return FakeData(
        counters={
            (APPLIED, (("kind", "security"), ("result", "success"))): 12,
            (APPLIED, (("kind", "security"), ("result", "failure"))): 1,
            (APPLIED, (("kind", "other"), ("result", "success"))): 30,
            (UNATTENDED_RUNS, (("result", "success"),)): 28,
            (UNATTENDED_RUNS, (("result", "failure"),)): 1,
        },
        gauges={
            (PENDING, (("kind", "security"),)): 2,
            (PENDING, (("kind", "other"),)): 5,
            (OLDEST_PENDING, (("kind", "security"),)): 3 * 86400,
            (REBOOT_REQUIRED, ()): 1,
        },
        rolls=[Rollup(FAILED, date(2026, 11, 3), "secna", 1), Rollup(SECURITY_APPLIED, date(2026, 11, 3), "libssl3", 2)],
        evs=[
            Event(TRANSACTION, at(3), "apt:1", {"source": "apt", "result": "failure", "security": 1, "other": 0}),
            Event(TRANSACTION, at(4), "apt:2", {"source": "apt", "result": "success", "security": 2, "other": 3}),
            Event(TRANSACTION, at(5), "apt:3", {"source": "apt", "result": "interrupted", "security": 0, "other": 0}),
        ],
    )


def test_the_section_tells_counts_pending_and_what_failed() -> None:
    content = build(sample(), NOV)
    text = "\n".join(content.paragraphs)
    assert "13 sikkerhetsoppdateringer forsøkt installert (1 feilet) og 30 andre" in text
    assert "kjørte 29 ganger: 28 vellykket, 1 feilet" in text
    assert "ventet 2 sikkerhetsoppdateringer og 5 andre" in text and "3.0 døgn" in text
    assert "må startes på nytt" in text
    captions = [t.caption for t in content.tables]
    assert captions == [
        "Installerte oppdateringer",
        "Kjøringer som feilet eller ble avbrutt",
        "Pakker der oppdateringen feilet",
        "Pakker med sikkerhetsoppdateringer",
    ]
    runs = content.tables[1].rows
    assert [r[2] for r in runs] == ["feilet", "avbrutt"]


def test_from_a_fleets_prometheus_the_section_says_what_it_cannot_show() -> None:
    data = sample()
    data.rolls, data.evs, data.gauges = [], [], {}
    content = build(data, NOV)
    assert "finnes bare i agentens egen database" in content.paragraphs[-1]
    assert [t.caption for t in content.tables] == ["Installerte oppdateringer"]


def test_a_quiet_month() -> None:
    content = build(FakeData(), NOV)
    assert content.paragraphs[0].startswith("I perioden ble 0 sikkerhetsoppdateringer")
    assert content.tables == ()
    assert SECTION.order == 40 and SECTION.id == "updates.applied"
