"""The report section "Driftsstatus: pålogging og hendelseslogger" for one period.

From the counters: failed logins by source and reason, account lockouts, password changes and
resets, event-log errors, and their trend week by week. From the rollups (one host's ledger
keeps them; a fleet's Prometheus does not, and the section then says so): the most targeted
accounts and the source networks with most failures — pseudonyms only, with the days they were
seen and first/last time — the number of distinct networks, and the event-log origins with most
errors (exact unit or provider names, which are not personal data).

Times are shown in UTC, like the rest of the report.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import field
from datetime import date, datetime, timedelta, timezone

from normagent import Indicator, Period, ReportData, ReportSection, ReportTable, Rollup, SectionContent, dataclass

from .tally import (
    ERRORS_BY_ORIGIN,
    EVENTLOG_ERRORS,
    FAILED_BY_ACCOUNT,
    FAILED_BY_NETWORK,
    FAILED_LOGINS,
    LOCKOUT_BY_ACCOUNT,
    LOCKOUTS,
    PASSWORD_RESETS,
)

TITLE = "Driftsstatus: pålogging og hendelseslogger"
TOP = 10

SOURCES = {
    "sshd": "SSH",
    "sudo": "sudo",
    "su": "su",
    "login": "konsoll (login)",
    "gdm": "grafisk pålogging (GDM)",
    "pam": "andre PAM-tjenester",
    "windows": "Windows-pålogging",
    "kerberos": "Kerberos (domenekontroller)",
    "ntlm": "NTLM-kontroll",
    "passwd": "passwd",
    "chpasswd": "chpasswd",
    "usermod": "usermod",
}
REASONS = {
    "bad_password": "feil passord",
    "bad_key": "feil nøkkel",
    "unknown_user": "ukjent bruker",
    "locked_out": "kontoen er låst",
    "disabled": "kontoen er deaktivert",
    "expired": "kontoen er utløpt",
    "password_expired": "passordet er utløpt",
    "outside_hours": "utenfor tillatt tid",
    "workstation_restricted": "ikke tillatt fra denne maskinen",
    "must_change_password": "må bytte passord",
    "not_allowed": "ikke tillatt",
    "other": "annet",
}
KINDS = {"change": "endret av eieren", "reset": "tilbakestilt av en annen", "unknown": "ukjent hvem"}
LOGS = {"journal": "journald", "system": "Windows System", "application": "Windows Application"}
COUNTING_NOTE = (
    "Hvert påloggingsforsøk telles én gang, også når det står i flere loggmeldinger "
    "(tellereglene er beskrevet i dokumentasjonen). Kontoer og nettverk vises bare som "
    "pseudonymer som kun kan slås opp på denne serveren."
)


@dataclass(frozen=True, slots=True)
class _Top:
    key: str
    value: float
    days: int
    first: datetime | None
    last: datetime | None


def build(data: ReportData, period: Period) -> SectionContent:
    """The section's text and tables for ``period``."""
    failed = data.increase(FAILED_LOGINS, period, by=("source", "reason"))
    lockouts = data.increase(LOCKOUTS, period, by=("source",))
    resets = data.increase(PASSWORD_RESETS, period, by=("source", "kind"))
    errors = data.increase(EVENTLOG_ERRORS, period, by=("log", "origin"))
    total_failed, total_locked = _sum(failed), _sum(lockouts)
    total_resets, total_errors = _sum(resets), _sum(errors)
    paragraphs = [
        f"I perioden ble det registrert {_n(total_failed)} mislykkede påloggingsforsøk, "
        f"{_n(total_locked)} kontosperringer, {_n(total_resets)} passordendringer og "
        f"{_n(total_errors)} feil i hendelseslogger.",
        COUNTING_NOTE,
    ]
    tables: list[ReportTable] = []
    if total_failed:
        rows = sorted(
            ((SOURCES.get(s, s), REASONS.get(r, r), int(n)) for (s, r), n in failed.items() if n),
            key=lambda row: (-row[2], row[0], row[1]),
        )
        tables.append(ReportTable(("Kilde", "Årsak", "Antall"), tuple(rows), "Mislykkede pålogginger"))
    if total_locked or total_resets:
        rows2: list[tuple[str | int | float, ...]] = [
            ("Kontosperring", SOURCES.get(s, s), int(n)) for (s,), n in sorted(lockouts.items()) if n
        ]
        rows2 += [
            (f"Passord {KINDS.get(k, k)}", SOURCES.get(s, s), int(n)) for (s, k), n in sorted(resets.items()) if n
        ]
        tables.append(ReportTable(("Hendelse", "Kilde", "Antall"), tuple(rows2), "Kontosperringer og passordendringer"))
    trend = _trend(data, period)
    if trend is not None:
        tables.append(trend)

    accounts = _top(data.rollups(FAILED_BY_ACCOUNT, period))
    networks = _top(data.rollups(FAILED_BY_NETWORK, period))
    locked = _top(data.rollups(LOCKOUT_BY_ACCOUNT, period))
    origins = _top(data.rollups(ERRORS_BY_ORIGIN, period))
    if accounts or networks or locked or origins:
        distinct = len({r.key for r in networks})
        if networks:
            paragraphs.append(
                f"Mislykkede forsøk kom fra {distinct} ulike nettverk (IPv4 /24, IPv6 /48); "
                f"flest på ett døgn: {_busiest_day(data.rollups(FAILED_BY_NETWORK, period))}."
            )
        if accounts:
            tables.append(_top_table(accounts, "Konto (pseudonym)", "Mest forsøkte kontoer"))
        if networks:
            tables.append(_top_table(networks, "Nettverk (pseudonym)", "Nettverk med flest mislykkede forsøk"))
        if locked:
            tables.append(_top_table(locked, "Konto (pseudonym)", "Sperrede kontoer"))
        if origins:
            tables.append(_origin_table(origins))
    elif total_failed or total_errors:
        paragraphs.append(
            "Oversikt over kontoer, nettverk og feilkilder finnes bare i agentens egen database, "
            "ikke i Prometheus; denne rapporten er laget uten den."
        )
    if total_errors and not origins:
        rows3 = sorted(
            ((LOGS.get(log, log), origin, int(n)) for (log, origin), n in errors.items() if n),
            key=lambda row: (-row[2], row[0], row[1]),
        )
        tables.append(ReportTable(("Logg", "Kilde", "Antall"), tuple(rows3), "Feil i hendelseslogger"))
    return SectionContent(paragraphs=tuple(paragraphs), tables=tuple(tables))


def _trend(data: ReportData, period: Period) -> ReportTable | None:
    """Week by week (Monday to Monday, cut to the period): failures, lockouts, errors."""
    rows: list[tuple[str | int | float, ...]] = []
    start = period.start
    while start < period.end:
        monday = (start - timedelta(days=start.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        end = min(monday + timedelta(days=7), period.end)
        week = Period(start, end)
        counts = [_sum(data.increase(metric, week)) for metric in (FAILED_LOGINS, LOCKOUTS, EVENTLOG_ERRORS)]
        rows.append((f"uke {start.isocalendar().week} ({start:%d.%m.}–{end - timedelta(seconds=1):%d.%m.})", *map(int, counts)))
        start = end
    if len(rows) < 2 or not any(any(r[1:]) for r in rows):
        return None
    return ReportTable(("Uke", "Mislykkede pålogginger", "Kontosperringer", "Feil i hendelseslogger"), tuple(rows), "Utvikling")


@dataclass(slots=True)
class _Sum:
    """One key's rollup rows summed so far (``_top``)."""

    value: float = 0.0
    days: set[date] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None


def _top(rows: Iterable[Rollup]) -> list[_Top]:
    """Rollup rows summed per key over the period, most first (ties by key), at most TOP."""
    sums: dict[str, _Sum] = {}
    for row in rows:
        entry = sums.setdefault(row.key, _Sum())
        entry.value += row.value
        entry.days.add(row.day)
        entry.first = _earliest(entry.first, row.first_seen)
        entry.last = _latest(entry.last, row.last_seen)
    tops = [_Top(k, s.value, len(s.days), s.first, s.last) for k, s in sums.items()]
    tops.sort(key=lambda t: (-t.value, t.key))
    return tops[:TOP] if tops else []


def _top_table(tops: Sequence[_Top], what: str, caption: str) -> ReportTable:
    rows = tuple((t.key, int(t.value), t.days, _when(t.first), _when(t.last)) for t in tops)
    return ReportTable((what, "Forsøk", "Dager", "Først sett", "Sist sett"), rows, caption)


def _origin_table(tops: Sequence[_Top]) -> ReportTable:
    rows = []
    for t in tops:
        log, _, origin = t.key.partition(":")
        rows.append((LOGS.get(log, log), origin, int(t.value), t.days, _when(t.first), _when(t.last)))
    return ReportTable(("Logg", "Kilde", "Feil", "Dager", "Først sett", "Sist sett"), tuple(rows), "Kilder med flest feil i hendelseslogger")


def _busiest_day(rows: Iterable[Rollup]) -> str:
    per_day: dict[date, set[str]] = {}
    for row in rows:
        per_day.setdefault(row.day, set()).add(row.key)
    day, keys = max(per_day.items(), key=lambda kv: (len(kv[1]), kv[0]))
    return f"{len(keys)} nettverk ({day})"


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if moment else ""


def _sum(values: Mapping[tuple[str, ...], float]) -> float:
    return float(sum(values.values()))


def _n(value: float) -> str:
    return f"{int(value):,}".replace(",", " ")


SECTION = ReportSection(
    id="access.logins",
    title=TITLE,
    title_en="Operations status: logins and event logs",
    order=11,
    build=build,
    indicators=(
        Indicator("access.failed_logins", FAILED_LOGINS, "Mislykkede pålogginger", "Failed logins"),
        Indicator("access.lockouts", LOCKOUTS, "Kontosperringer", "Account lockouts"),
        Indicator("access.password_resets", PASSWORD_RESETS, "Glemte passord (tilbakestilt av en annen)",
                  "Forgotten passwords (reset by someone else)", labels={"kind": "reset"}),
        Indicator("access.eventlog_errors", EVENTLOG_ERRORS, "Feil i hendelseslogger", "Errors in event logs"),
    ),
)
