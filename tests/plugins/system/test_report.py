"""The "Driftsstatus: oppetid og omstarter" report section, from a real ledger and from counters only."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from normagent import Event, Period, Rollup
from normagent.ledger import Ledger
from normagent.plugins.system import register_report_sections
from normagent.plugins.system.collectors import BOOT_EVENT, BOOTS, BOOTS_COLLECTOR, DOWNTIME, UNEXPECTED_SHUTDOWNS, BootSettings
from normagent.plugins.system.report import SECTION, build, duration, percent
from normagent.testing import FakeClock, run_collector_once
from tests.plugins.system.builders import utc

WTMP = Path(__file__).resolve().parents[2] / "fixtures" / "system" / "wtmp"
MARCH = Period(utc("2024-03-01 00:00:00"), utc("2024-04-01 00:00:00"))
NOVEMBER = Period(utc("2026-11-01 00:00:00"), utc("2026-12-01 00:00:00"))


class Data:
    """A ReportData with fixed events and counter increases (as a fleet's Prometheus would answer)."""

    def __init__(self, events: Sequence[Event] = (), increases: Mapping[str, Mapping[tuple[str, ...], float]] | None = None) -> None:
        self._events = list(events)
        self._increases = increases or {}

    def increase(self, metric: str, period: Period, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        return self._increases.get(metric, {})

    def gauge(self, metric: str, at: datetime, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        return {}

    def rollups(self, name: str, period: Period) -> Sequence[Rollup]:
        return []

    def events(self, kind: str, period: Period) -> Sequence[Event]:
        return [e for e in self._events if e.kind == kind and period.start <= e.at < period.end]


def boot(
    at: str, planned: bool | None, downtime: float | None, exact: bool = True, evidence: str = "journald",
    orderly: bool | None | str = "same",
) -> Event:
    """A boot event; ``orderly`` defaults to ``planned`` (an announced, orderly reboot, or a crash)."""
    return Event(
        BOOT_EVENT,
        utc(at),
        f"{evidence}:{at}",
        {"orderly": planned if orderly == "same" else orderly, "planned": planned, "evidence": evidence,
         "downtime_seconds": downtime, "downtime_exact": exact},
    )


def test_section_is_registered_first_in_factsheet_order() -> None:
    (section,) = register_report_sections()
    assert (section.id, section.title, section.order) == ("system.uptime", "Driftsstatus: oppetid og omstarter", 10)
    assert section is SECTION


def test_section_from_a_real_ledger_after_collecting_wtmp(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "var" / "log").mkdir(parents=True)
    shutil.copyfile(WTMP / "history.wtmp", root / "var" / "log" / "wtmp")
    clock = FakeClock(utc("2024-03-04 12:00:00"))
    with Ledger.open(tmp_path / "ledger.db", clock=clock) as ledger:
        ledger.declare(BOOTS_COLLECTOR.metrics)
        run_collector_once(BOOTS_COLLECTOR, ledger, root=root, clock=clock, settings=BootSettings(evidence="wtmp"))
        content = build(ledger, MARCH)
    assert content.paragraphs[:3] == (
        # No maintenance window is configured: the orderly reboot was not announced, so it is unplanned.
        "Serveren startet 3 ganger i perioden: 0 planlagt og 2 uplanlagt, 1 med ukjent forløp (første registrerte "
        "oppstart). 1 etter stopp uten kontrollert avslutning (strømbrudd, krasj eller hard omstart).",
        # 14 h after the clean shutdown and at most 22 h 30 min before the crash's boot, in 31 days.
        "Registrert nedetid: 1 d 12 t (planlagt 0 s, uplanlagt 1 d 12 t). Oppetid i perioden: 95,09 %.",
        "Varighet merket «ca.» er regnet fra siste loggføring før stoppet og er et øvre anslag.",
    )
    (table,) = content.tables
    assert table.columns == ("Oppstart (UTC)", "Type", "Avslutning", "Nedetid før oppstart", "Kilde")
    assert table.rows == (
        ("2024-03-01 08:00", "Ukjent forløp", "ukjent", "ukjent", "wtmp"),
        ("2024-03-02 08:00", "Uplanlagt", "kontrollert", "14 t", "wtmp"),
        ("2024-03-03 07:30", "Uplanlagt", "ukontrollert", "ca. 22 t 30 min", "wtmp"),
    )


def test_estimated_downtime_is_marked_and_counted() -> None:
    data = Data(
        [
            boot("2026-11-02 18:01:30", True, 90.0),
            boot("2026-11-10 07:00:00", False, 20_760.0, exact=False),
            boot("2026-11-17 06:30:00", True, 116_990.0),
        ]
    )
    content = build(data, NOVEMBER)
    down = 90 + 20_760 + 116_990
    assert content.paragraphs[0] == (
        "Serveren startet 3 ganger i perioden: 2 planlagt og 1 uplanlagt. "
        "1 etter stopp uten kontrollert avslutning (strømbrudd, krasj eller hard omstart)."
    )
    assert content.paragraphs[1] == (
        f"Registrert nedetid: 1 d 14 t (planlagt 1 d 8 t, uplanlagt 5 t 46 min). "
        f"Oppetid i perioden: {percent(100 * (1 - down / (30 * 86400)))} %."
    )
    assert "«ca.»" in content.paragraphs[2]
    assert [row[3] for row in content.tables[0].rows] == ["1 min", "ca. 5 t 46 min", "1 d 8 t"]


def test_outage_across_the_period_end_counts_only_its_share() -> None:
    """Down from 23:30 on the 30th to 00:30 on the 1st: half an hour belongs to November."""
    data = Data([boot("2026-12-01 00:30:00", False, 3600.0, exact=False)])
    content = build(data, NOVEMBER)
    assert content.paragraphs[0] == "Ingen omstarter registrert i perioden."
    assert content.paragraphs[1].startswith("Registrert nedetid: 30 min (planlagt 0 s, uplanlagt 30 min).")
    assert content.tables[0].rows == ()


def test_outage_that_began_before_the_period_counts_only_its_share() -> None:
    data = Data([boot("2026-11-01 01:00:00", True, 7200.0)])
    content = build(data, NOVEMBER)
    assert "Registrert nedetid: 1 t (planlagt 1 t" in content.paragraphs[1]


def test_section_from_counters_when_the_source_has_no_events() -> None:
    """A fleet report from Prometheus has counters but no events: numbers without the table."""
    data = Data(
        increases={
            BOOTS: {(): 4.0},
            UNEXPECTED_SHUTDOWNS: {("journald",): 1.0},
            DOWNTIME: {("true",): 600.0, ("false",): 3000.0},
        }
    )
    content = build(data, NOVEMBER)
    assert content.tables == ()
    assert content.paragraphs[:2] == (
        "Serveren startet 4 ganger i perioden, 1 av dem etter stopp uten kontrollert avslutning.",
        "Registrert nedetid: 1 t (planlagt 10 min, uplanlagt 50 min). Oppetid i perioden: 99,86 %.",
    )


def test_quiet_period() -> None:
    content = build(Data(), NOVEMBER)
    assert content.paragraphs == ("Ingen omstarter registrert i perioden. Oppetid: 100 %.",)
    assert content.tables == ()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59.4, "59 s"), (60, "1 min"), (3599, "59 min"), (3600, "1 t"), (3660, "1 t 1 min"),
     (86400, "1 d"), (90000, "1 d 1 t"), (50400, "14 t")],
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "text"), [(100.0, "100,00"), (99.999, "99,99"), (99.954, "99,95"), (98.11827, "98,12"), (0.0, "0,00")]
)
def test_percent_never_rounds_up_to_a_full_hundred(value: float, text: str) -> None:
    assert percent(value) == text


def test_unknown_planned_value_in_an_event_is_shown_as_unknown() -> None:
    odd = replace(boot("2026-11-05 10:00:00", None, None), attrs={"orderly": "yes", "planned": "maybe", "evidence": "wtmp"})
    content = build(Data([odd]), NOVEMBER)
    assert content.tables[0].rows == (("2026-11-05 10:00", "Ukjent forløp", "ukjent", "ukjent", "wtmp"),)


def test_an_event_from_before_the_calendar_is_read_as_orderly_and_not_judged() -> None:
    """Events written before planned meant "announced" carry only the old "planned" (orderly)."""
    old = Event(BOOT_EVENT, utc("2026-11-05 10:00:00"), "wtmp:1", {"planned": True, "evidence": "wtmp", "downtime_seconds": 60.0,
                                                                   "downtime_exact": True})
    content = build(Data([old]), NOVEMBER)
    assert content.tables[0].rows == (("2026-11-05 10:00", "Uplanlagt", "kontrollert", "1 min", "wtmp"),)


def test_unknown_downtime_names_its_source() -> None:
    content = build(Data([boot("2026-11-05 10:00:00", False, None, evidence="wtmpdb")]), NOVEMBER)
    assert "kilden (wtmpdb) registrerer ikke" in content.paragraphs[2]


def test_period_length_is_used_for_uptime() -> None:
    week = Period(utc("2026-11-01 00:00:00"), utc("2026-11-01 00:00:00") + timedelta(days=7))
    content = build(Data([boot("2026-11-03 00:00:00", True, 6048.0)]), week)
    assert content.paragraphs[1].endswith("Oppetid i perioden: 99,00 %.")
