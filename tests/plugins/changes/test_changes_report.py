"""The changes report section over a small fake ReportData."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from normagent import Event, Period, Rollup
from normagent.plugins.changes.report import SECTION, build
from normagent.plugins.changes.vocab import BY_SUBJECT, CHANGE_EVENT, CONFIG_CHANGES, PACKAGE_CHANGES, PACKAGES_BY_NAME

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
    assert content.paragraphs[0] == "I perioden ble det registrert 3 konfigurasjonsendringer, 3 av dem uplanlagte, og 41 pakkeendringer."
    captions = [t.caption for t in content.tables]
    assert captions == ["Konfigurasjonsendringer", "Pakkeendringer", "Uplanlagte konfigurasjonsendringer", "Oftest endret", "Pakker endret"]
    unplanned = content.tables[2].rows
    assert [r[3] for r in unplanned] == ["/etc/sudoers", "add_rule"]  # package changes are listed apart


def test_without_the_ledger_the_section_says_so() -> None:
    data = FakeData(counters={(CONFIG_CHANGES, (("kind", "mode"), ("planned", "false"), ("source", "file"))): 1})
    content = build(data, NOV)
    assert "finnes bare i agentens egen database" in content.paragraphs[-1]
    assert SECTION.order == 50
