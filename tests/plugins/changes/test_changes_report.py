"""The changes report section over a small fake ReportData."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from normagent import Event, Period, Rollup
from normagent.plugins.changes.report import SECTION, build
from normagent.plugins.changes.vocab import (
    BY_PLAN,
    BY_SUBJECT,
    CHANGE_EVENT,
    CONFIG_CHANGES,
    PACKAGE_CHANGES,
    PACKAGES_BY_NAME,
    PLAN_EVENT,
    UNPLANNED_PACKAGES,
)

NOV = Period(datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc))


@dataclass
class FakeData:
    counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    rolls: list[Rollup] = field(default_factory=list)
    evs: list[Event] = field(default_factory=list)

    def increase(self, metric: str, period: Period, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for (name, labels), value in self.counters.items():
            if name == metric:
                key = tuple(dict(labels).get(b, "") for b in by)
                out[key] = out.get(key, 0.0) + value
        return out

    def gauge(self, metric: str, at: datetime, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        return {}

    def rollups(self, name: str, period: Period) -> Sequence[Rollup]:
        return [r for r in self.rolls if r.name == name]

    def events(self, kind: str, period: Period) -> Sequence[Event]:
        return [e for e in self.evs if e.kind == kind]


def change(day: int, source: str, kind: str, subject: str, planned: bool = False) -> Event:
    at = datetime(2026, 11, day, 14, tzinfo=timezone.utc)
    return Event(CHANGE_EVENT, at, f"{source}:{subject}:{day}", {"source": source, "kind": kind, "subject": subject, "planned": planned})


def test_the_section_lists_unplanned_changes_and_packages() -> None:
    data = FakeData(
        counters={
            (CONFIG_CHANGES, (("kind", "content"), ("planned", "false"), ("source", "file"))): 2,
            (CONFIG_CHANGES, (("kind", "audit_config"), ("planned", "false"), ("source", "auditd"))): 1,
            (PACKAGE_CHANGES, (("action", "upgrade"), ("planned", "false"))): 41,
        },
        rolls=[Rollup(BY_SUBJECT, date(2026, 11, 3), "file:/etc/sudoers", 2), Rollup(PACKAGES_BY_NAME, date(2026, 11, 3), "openssl", 1)],
        evs=[change(3, "file", "content", "/etc/sudoers"), change(4, "auditd", "audit_config", "add_rule"), change(5, "package", "upgrade", "openssl")],
    )
    content = build(data, NOV)
    assert content.paragraphs[0] == (
        "I perioden ble det registrert 3 konfigurasjonsendringer, 3 av dem uplanlagte, og 41 pakkeendringer, 41 av dem uplanlagte."
    )
    assert content.paragraphs[1] == "Ingen planlagte endringer fra vedlikeholdskalenderen er registrert for perioden."
    captions = [t.caption for t in content.tables]
    assert captions == ["Konfigurasjonsendringer", "Pakkeendringer", "Konfigurasjonsendringer utenfor plan", "Oftest endret", "Pakker endret"]
    unplanned = content.tables[2].rows
    assert [r[3] for r in unplanned] == ["/etc/sudoers", "add_rule"]  # package changes are listed apart


def test_without_the_ledger_the_section_says_so() -> None:
    data = FakeData(counters={(CONFIG_CHANGES, (("kind", "mode"), ("planned", "false"), ("source", "file"))): 1})
    content = build(data, NOV)
    assert "finnes bare i agentens egen database" in content.paragraphs[-1]
    assert not any("Ingen planlagte endringer" in p for p in content.paragraphs)  # unknown, not none
    assert SECTION.order == 50


def plan(day: int, what: str, end_day: int | None = None, **attrs: str) -> Event:
    start = datetime(2026, 11 if day > 0 else 10, abs(day), 22, tzinfo=timezone.utc)
    end = datetime(2026, 11, end_day, 2, tzinfo=timezone.utc) if end_day else start.replace(hour=23)
    fields = {"what": what, "effect": "", "role": "", "start": start.isoformat(), "end": end.isoformat(), "subjects": "", **attrs}
    return Event(PLAN_EVENT, start, f"plan-{what}", fields)


def test_planned_changes_stand_beside_the_changes_they_planned_and_those_outside() -> None:
    """A plan that began in October and reaches into November is the period's too; one that ended
    in October is not. Each plan with the changes it planned (``changes.by_plan``)."""
    data = FakeData(
        counters={
            (CONFIG_CHANGES, (("kind", "content"), ("planned", "true"), ("source", "file"))): 2,
            (CONFIG_CHANGES, (("kind", "mode"), ("planned", "false"), ("source", "file"))): 1,
            (PACKAGE_CHANGES, (("action", "install"), ("planned", "false"))): 1,
        },
        rolls=[
            Rollup(BY_PLAN, date(2026, 11, 3), "plan-SSH", 2),
            Rollup(UNPLANNED_PACKAGES, date(2026, 11, 4), "nmap", 1),
        ],
        evs=[
            plan(-31, "Flytting", end_day=1, effect="EPJ nede 3 t", role="driftsleverandør"),
            plan(-20, "Ferdig i oktober"),
            plan(3, "SSH", effect="ingen nedetid", role="driftsleverandør", subjects="/etc/ssh/**"),
            change(3, "file", "content", "/etc/ssh/sshd_config", planned=True),
            change(4, "file", "mode", "/etc/hosts"),
        ],
    )
    content = build(data, NOV)
    tables = {t.caption: t for t in content.tables}
    assert tables["Planlagte endringer"].rows == (
        ("2026-10-31 22:00 – 2026-11-01 02:00", "Flytting", "EPJ nede 3 t", "driftsleverandør", "alle endringer i tidsrommet", 0),
        ("2026-11-03 22:00–23:00", "SSH", "ingen nedetid", "driftsleverandør", "/etc/ssh/**", 2),
    )
    assert [r[3] for r in tables["Konfigurasjonsendringer utenfor plan"].rows] == ["/etc/hosts"]
    assert tables["Pakker installert eller fjernet utenfor plan"].rows == (("nmap", 1, 1),)
    assert [t.caption for t in content.tables][0] == "Planlagte endringer"  # beside, and before, what was seen
