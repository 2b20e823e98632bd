"""The report section "Meldingskommunikasjon (EDI)", built from a small fake ReportData, and from a
real ledger after a collector run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from normagent import Event, Period, ReportTable, Rollup
from normagent.plugins.edi.report import SECTION, build, duration
from tests.plugins.edi.edi_generator import Config, generate, settings_for

PERIOD = Period(datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc))
AT = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)


@dataclass
class FakeReportData:
    """Counter increases by label values, and events by kind (what a ledger or Prometheus answers)."""

    counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)
    events_by_kind: dict[str, list[Event]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def increase(self, metric: str, period: Period, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        self.asked.append(metric)
        out: dict[tuple[str, ...], float] = {}
        for labels, value in self.counters.get(metric, {}).items():
            d = dict(labels)
            key = tuple(d.get(name, "") for name in by)
            out[key] = out.get(key, 0.0) + value
        return out

    def gauge(self, metric: str, at: datetime, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        return {}

    def rollups(self, name: str, period: Period) -> Sequence[Rollup]:
        return []

    def events(self, kind: str, period: Period) -> Sequence[Event]:
        return [e for e in self.events_by_kind.get(kind, []) if period.start <= e.at < period.end]


def labels(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kw.items()))


def table(content: Any, caption_start: str) -> ReportTable:
    return next(t for t in content.tables if t.caption.startswith(caption_start))


def sample() -> FakeReportData:
    return FakeReportData(
        counters={
            "normagent_edi_messages_total": {
                labels(direction="out", msg_type="EPIKRISE"): 120, labels(direction="in", msg_type="EPIKRISE"): 4,
                labels(direction="out", msg_type="HENVISNING"): 30, labels(direction="in", msg_type="APPREC"): 140,
            },
            "normagent_edi_unacknowledged_total": {
                labels(msg_type="EPIKRISE", receipt="application"): 3, labels(msg_type="HENVISNING", receipt="transport"): 1,
            },
            "normagent_edi_receipts_total": {
                labels(msg_type="EPIKRISE", status="1"): 110, labels(msg_type="EPIKRISE", status="2"): 5,
                labels(msg_type="HENVISNING", status="3"): 2,
            },
            "normagent_edi_misaddressed_messages_total": {labels(direction="out", msg_type="EPIKRISE"): 2},
            "normagent_edi_receipt_errors_total": {
                labels(msg_type="EPIKRISE", code_list="8221", error_code="E21"): 2,
                labels(msg_type="EPIKRISE", code_list="8221", error_code="T02"): 3,
                labels(msg_type="HENVISNING", code_list="8223", error_code="07"): 2,
            },
            "normagent_edi_transport_errors_total": {labels(error_code="DeliveryFailure"): 1},
            "normagent_edi_stop_seconds_total": {
                labels(direction="out", planned="false"): 5400, labels(direction="out", planned="true"): 3600,
            },
            "normagent_edi_files_total": {labels(outcome="ok"): 300, labels(outcome="unsafe_xml"): 1},
        },
        events_by_kind={
            "edi.rejected": [Event("edi.rejected", AT, "r-1", {
                "msg_type": "EPIKRISE", "status": "2", "errors": "8221:E21,8221:T02", "original_msg_id": "m-1"})],
            "edi.stop": [Event("edi.stop", AT, "out:x", {
                "direction": "out", "start": "2026-11-24T09:30:00+00:00", "end": "2026-11-24T11:00:00+00:00",
                "planned": False, "seconds": 5400.0, "service_down": False})],
            "edi.unacknowledged": [Event("edi.unacknowledged", AT, "application:m-2", {
                "message_id": "m-2", "msg_type": "EPIKRISE", "receipt": "application",
                "sent_at": "2026-11-23T09:30:00+00:00", "late_receipt": False, "receipt_at": ""})],
        },
    )


def test_section_identity() -> None:
    assert (SECTION.id, SECTION.title, SECTION.order) == ("edi.messages", "Meldingskommunikasjon (EDI)", 30)


def test_per_type_table_answers_the_factsheet() -> None:
    content = build(sample(), PERIOD)
    per_type = table(content, "Meldinger per type")
    rows = {row[0]: row[1:] for row in per_type.rows}
    assert rows["Epikrise (EPIKRISE)"] == (120, 4, 0, 3, 5, 0, 2, 0)
    assert rows["Henvisning (HENVISNING)"] == (30, 0, 1, 0, 0, 2, 0, 0)
    assert rows["Applikasjonskvittering (APPREC)"] == (0, 140, 0, 0, 0, 0, 0, 0)


def test_error_codes_carry_their_norwegian_text() -> None:
    errors = table(build(sample(), PERIOD), "Feil i negative")
    assert errors.rows[0] == ("Epikrise (EPIKRISE)", "8221", "T02", "XML validerer ikke", 3)
    assert ("Epikrise (EPIKRISE)", "8221", "E21", "Mottaker finnes ikke", 2) in errors.rows
    assert ("Henvisning (HENVISNING)", "8223", "07", "tekst ikke i kodelisten", 2) in errors.rows


def test_stops_planned_and_unplanned_with_duration() -> None:
    content = build(sample(), PERIOD)
    stops = table(content, "Stans i meldingsutvekslingen")
    assert ("utgående", "uplanlagt", 1, "1 t 30 min") in stops.rows
    assert ("utgående", "planlagt", 0, "1 t") in stops.rows
    assert "uplanlagt 1 t 30 min, planlagt 1 t" in content.paragraphs[1]


def test_notable_events_are_listed_per_day_without_patient_data() -> None:
    content = build(sample(), PERIOD)
    rejected = table(content, "Avviste meldinger")
    assert rejected.rows == (("2026-11-24", "10:30", "Epikrise (EPIKRISE)", "Avvist",
                              "E21 Mottaker finnes ikke; T02 XML validerer ikke"),)
    unack = table(content, "Meldinger der kvitteringen")
    assert unack.rows == (("2026-11-23 10:30", "Epikrise (EPIKRISE)", "applikasjonskvittering", "ikke mottatt ved fristen"),)
    assert not any("m-1" in str(cell) or "m-2" in str(cell) for t in content.tables for row in t.rows for cell in row)
    files = table(content, "Filer i EDI-mappene")
    assert files.rows == (("avvist: DTD/entiteter (mulig angrep)", 1),)


def test_summary_counts() -> None:
    summary = build(sample(), PERIOD).paragraphs[0]
    assert summary.startswith("I perioden ble det sendt 150 og mottatt 4 meldinger")
    assert "1 sendte meldinger fikk ikke transportkvittering og 3 ikke applikasjonskvittering" in summary
    assert "5 meldinger ble avvist og 2 godtatt med feil i delmelding. 2 meldinger var feiladressert." in summary


def test_receipts_for_messages_not_read_as_sent_are_told_apart() -> None:
    data = sample()
    assert not [p for p in build(data, PERIOD).paragraphs if "ikke er lest som sendt" in p]
    data.counters["normagent_edi_receipts_for_unknown_messages_total"] = {
        labels(receipt="application"): 4, labels(receipt="transport"): 1,
    }
    (line,) = [p for p in build(data, PERIOD).paragraphs if "ikke er lest som sendt" in p]
    assert line.startswith("5 mottatte kvitteringer gjaldt meldinger")


def test_an_empty_period_still_says_something() -> None:
    content = build(FakeReportData(), PERIOD)
    assert "sendt 0 og mottatt 0" in content.paragraphs[0]
    assert content.paragraphs[1] == "Ingen stans i meldingsutvekslingen i åpningstiden."


def test_a_fleet_source_without_events_still_gives_the_counts() -> None:
    data = sample()
    data.events_by_kind = {}
    content = build(data, PERIOD)
    assert {t.caption.split(".")[0] for t in content.tables} >= {"Meldinger per type", "Transportfeil (ebXML MessageError)"}
    assert not [t for t in content.tables if t.caption.startswith("Avviste")]


def test_many_events_are_capped_with_a_sentence() -> None:
    data = sample()
    data.events_by_kind["edi.rejected"] = [
        Event("edi.rejected", AT, f"r-{i}", {"msg_type": "EPIKRISE", "status": "2", "errors": "", "original_msg_id": f"m-{i}"})
        for i in range(250)
    ]
    content = build(data, PERIOD)
    assert len(table(content, "Avviste meldinger").rows) == 200
    assert "Listen over avviste meldinger viser de første 200 av 250." in content.paragraphs


def test_durations() -> None:
    assert [duration(s) for s in (0, 30, 60, 5400, 90061)] == ["0 min", "under 1 min", "1 min", "1 t 30 min", "1 d 1 t 1 min"]


def test_section_over_a_real_ledger(harness: Any, tmp_path: Path) -> None:
    """The section reads what the collector wrote, through the ledger's own ReportData methods."""
    truth = generate(tmp_path / "edi", Config(messages=120, per_day=40, seed=4))
    h = harness(settings_for(tmp_path / "edi"), truth.now)
    h.cycle()
    content = build(h.ledger, Period(datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2027, 12, 1, tzinfo=timezone.utc)))
    per_type = table(content, "Meldinger per type")
    sent = sum(int(row[1]) for row in per_type.rows)
    assert sent == sum(v for (d, _), v in truth.messages.items() if d == "out")
    rejected = table(content, "Avviste meldinger")
    assert len(rejected.rows) == len(truth.rejected_ids)
