"""The report section over a small fake ReportData: tables, ranking, pseudonyms only, trend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from normagent import Event, Period, Rollup
from normagent.plugins.access.report import SECTION, TITLE, build
from normagent.plugins.access.tally import (
    ERRORS_BY_ORIGIN,
    EVENTLOG_ERRORS,
    FAILED_BY_ACCOUNT,
    FAILED_BY_NETWORK,
    FAILED_LOGINS,
    LOCKOUT_BY_ACCOUNT,
    LOCKOUTS,
    PASSWORD_RESETS,
)

NOV = Period(datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc))


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=timezone.utc)


@dataclass
class FakeData:
    """Counter increases as (time, metric, labels, value) samples; rollups and events as given."""

    samples: list[tuple[datetime, str, dict[str, str], float]] = field(default_factory=list)
    rolls: list[Rollup] = field(default_factory=list)

    def increase(self, metric: str, period: Period, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for when, name, labels, value in self.samples:
            if name == metric and period.start <= when < period.end:
                key = tuple(labels.get(b, "") for b in by)
                out[key] = out.get(key, 0.0) + value
        return out

    def gauge(self, metric: str, at: datetime, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        return {}

    def rollups(self, name: str, period: Period) -> Sequence[Rollup]:
        return [r for r in self.rolls if r.name == name and period.start.date() <= r.day < period.end.date()]

    def events(self, kind: str, period: Period) -> Sequence[Event]:
        return []


def roll(name: str, day: int, key: str, value: float) -> Rollup:
    return Rollup(name, date(2026, 11, day), key, value, at(day, 3), at(day, 21))


def sample_data() -> FakeData:
    return FakeData(
        samples=[
            (at(2), FAILED_LOGINS, {"source": "sshd", "reason": "unknown_user"}, 120),
            (at(3), FAILED_LOGINS, {"source": "sshd", "reason": "bad_password"}, 30),
            (at(20), FAILED_LOGINS, {"source": "sudo", "reason": "bad_password"}, 3),
            (at(20), FAILED_LOGINS, {"source": "windows", "reason": "locked_out"}, 0),
            (at(10), LOCKOUTS, {"source": "sshd"}, 2),
            (at(11), PASSWORD_RESETS, {"source": "chpasswd", "kind": "reset"}, 1),
            (at(12), PASSWORD_RESETS, {"source": "windows", "kind": "change"}, 4),
            (at(12), EVENTLOG_ERRORS, {"log": "journal", "origin": "other"}, 7),
            (datetime(2026, 12, 2, tzinfo=timezone.utc), FAILED_LOGINS, {"source": "sshd", "reason": "bad_password"}, 999),
        ],
        rolls=[
            roll(FAILED_BY_ACCOUNT, 2, "aaaa000011112222", 100),
            roll(FAILED_BY_ACCOUNT, 3, "aaaa000011112222", 20),
            roll(FAILED_BY_ACCOUNT, 3, "bbbb000011112222", 30),
            roll(FAILED_BY_NETWORK, 2, "n1n1n1n1n1n1n1n1", 90),
            roll(FAILED_BY_NETWORK, 2, "n2n2n2n2n2n2n2n2", 30),
            roll(FAILED_BY_NETWORK, 3, "n1n1n1n1n1n1n1n1", 30),
            roll(LOCKOUT_BY_ACCOUNT, 10, "cccc000011112222", 2),
            roll(ERRORS_BY_ORIGIN, 12, "journal:nginx.service", 5),
            roll(ERRORS_BY_ORIGIN, 13, "journal:kernel", 2),
        ],
    )


def table(content, caption: str):  # type: ignore[no-untyped-def]
    return next(t for t in content.tables if t.caption == caption)


def test_the_section_is_norwegian_and_placed_after_uptime() -> None:
    assert SECTION.title == TITLE == "Driftsstatus: pålogging og hendelseslogger"
    assert SECTION.order == 11 and SECTION.id == "access.logins"


def test_failed_logins_by_source_and_reason_most_first() -> None:
    content = build(sample_data(), NOV)

    failed = table(content, "Mislykkede pålogginger")
    assert failed.rows == (("SSH", "ukjent bruker", 120), ("SSH", "feil passord", 30), ("sudo", "feil passord", 3))
    assert content.paragraphs[0].startswith("I perioden ble det registrert 153 mislykkede påloggingsforsøk, 2 kontosperringer, 5 passordendringer og 7 feil")


def test_lockouts_and_password_changes() -> None:
    rows = table(build(sample_data(), NOV), "Kontosperringer og passordendringer").rows

    assert rows == (
        ("Kontosperring", "SSH", 2),
        ("Passord tilbakestilt av en annen", "chpasswd", 1),
        ("Passord endret av eieren", "Windows-pålogging", 4),
    )


def test_top_accounts_and_networks_with_days_and_first_last_seen() -> None:
    content = build(sample_data(), NOV)

    accounts = table(content, "Mest forsøkte kontoer")
    assert accounts.rows[0] == ("aaaa000011112222", 120, 2, "2026-11-02 03:00", "2026-11-03 21:00")
    assert accounts.rows[1][:3] == ("bbbb000011112222", 30, 1)
    networks = table(content, "Nettverk med flest mislykkede forsøk")
    assert [r[:3] for r in networks.rows] == [("n1n1n1n1n1n1n1n1", 120, 2), ("n2n2n2n2n2n2n2n2", 30, 1)]
    assert any("2 ulike nettverk" in p and "flest på ett døgn: 2 nettverk (2026-11-02)" in p for p in content.paragraphs)
    origins = table(content, "Kilder med flest feil i hendelseslogger")
    assert [r[:3] for r in origins.rows] == [("journald", "nginx.service", 5), ("journald", "kernel", 2)]


def test_weekly_trend() -> None:
    trend = table(build(sample_data(), NOV), "Utvikling")

    assert trend.columns == ("Uke", "Mislykkede pålogginger", "Kontosperringer", "Feil i hendelseslogger")
    assert [r[1:] for r in trend.rows] == [(0, 0, 0), (150, 0, 0), (0, 2, 7), (3, 0, 0), (0, 0, 0), (0, 0, 0)]
    assert trend.rows[1][0].startswith("uke 45 (02.11.")


def test_without_rollups_the_section_says_so_and_lists_errors_by_label() -> None:
    """A fleet's Prometheus has counters but no rollups."""
    data = sample_data()
    data.rolls = []

    content = build(data, NOV)

    assert any("bare i agentens egen database" in p for p in content.paragraphs)
    assert table(content, "Feil i hendelseslogger").rows == (("journald", "other", 7),)


def test_an_empty_period() -> None:
    content = build(FakeData(), NOV)

    assert content.tables == ()
    assert content.paragraphs[0].startswith("I perioden ble det registrert 0 mislykkede")


def test_only_pseudonyms_reach_the_report() -> None:
    """The section shows rollup keys as they are; keys are pseudonyms made by the parsers."""
    text = repr(build(sample_data(), NOV))

    assert "aaaa000011112222" in text
    assert "@" not in text and "203.0.113" not in text
