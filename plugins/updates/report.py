"""The report section "Systemleverandør: sikkerhets- og systemoppdateringer" for one period.

From the counters: updates applied by kind and result, unattended-upgrades' runs. From the
gauges at the period's end: updates pending, how long the oldest has waited, a reboot still
required. From the rollups and events (one host's ledger keeps them; a fleet's Prometheus does
not, and the section then says so): the package-manager runs that failed or were interrupted,
the packages whose update failed, the security updates applied.

Package names and Windows update titles are no personal data; nothing here names a person.
Times are shown in UTC, like the rest of the report.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timezone

from normagent import Event, Indicator, Period, ReportData, ReportSection, ReportTable, Rollup, SectionContent

from .vocab import (
    APPLIED,
    DPKG_ERRORS,
    FAILED,
    OLDEST_PENDING,
    PENDING,
    REBOOT_REQUIRED,
    SECURITY_APPLIED,
    TRANSACTION,
    UNATTENDED_RUNS,
)

TITLE = "Systemleverandør: sikkerhets- og systemoppdateringer"
TOP = 20
KINDS = {"security": "Sikkerhetsoppdateringer", "other": "Andre oppdateringer"}
RESULTS = {"success": "vellykket", "failure": "feilet", "interrupted": "avbrutt"}
SOURCES = {"apt": "apt", "dpkg": "dpkg -i", "dnf": "dnf", "windows": "Windows Update"}
KIND_NOTE = (
    "En oppdatering regnes som sikkerhetsoppdatering når den kommer fra en sikkerhetskilde "
    "(for apt: et arkiv som Debian-Security eller *-security; for dnf: en sikkerhetsmelding; "
    "for Windows: tittelen). Hver pakke teller én gang; resultatet er det pakkehåndtereren "
    "meldte for kjøringen eller pakken."
)
AGE_NOTE = (
    "Ventetiden regnes fra agenten første gang så oppdateringen som tilgjengelig; "
    "oppdateringer som ventet da agenten ble installert, regnes fra det tidspunktet."
)


def build(data: ReportData, period: Period) -> SectionContent:
    """The section's text and tables for ``period``."""
    applied = data.increase(APPLIED, period, by=("kind", "result"))
    runs = data.increase(UNATTENDED_RUNS, period, by=("result",))
    n = {key: int(value) for key, value in applied.items()}
    security_ok, security_failed = n.get(("security", "success"), 0), n.get(("security", "failure"), 0)
    other_ok, other_failed = n.get(("other", "success"), 0), n.get(("other", "failure"), 0)
    paragraphs = [
        f"I perioden ble {_n(security_ok + security_failed)} sikkerhetsoppdateringer forsøkt installert "
        f"({_n(security_failed)} feilet) og {_n(other_ok + other_failed)} andre oppdateringer "
        f"({_n(other_failed)} feilet).",
        KIND_NOTE,
    ]
    tables: list[ReportTable] = []
    if any(n.values()):
        rows = tuple(
            (KINDS[kind], n.get((kind, "success"), 0), n.get((kind, "failure"), 0)) for kind in ("security", "other")
        )
        tables.append(ReportTable(("Type", "Vellykket", "Feilet"), rows, "Installerte oppdateringer"))
    if any(runs.values()):
        paragraphs.append(
            f"Automatiske oppdateringer (unattended-upgrades) kjørte {_n(sum(runs.values()))} ganger: "
            f"{_n(runs.get(('success',), 0))} vellykket, {_n(runs.get(('failure',), 0))} feilet, "
            f"{_n(runs.get(('nothing',), 0))} uten noe å oppdatere."
        )
    paragraphs += _pending(data, period)

    events = sorted(data.events(TRANSACTION, period), key=lambda e: e.at)
    failed = _top(data.rollups(FAILED, period))
    dpkg_errors = _top(data.rollups(DPKG_ERRORS, period))
    security = _top(data.rollups(SECURITY_APPLIED, period), limit=10_000)
    if events or failed or security:
        bad = [e for e in events if e.attrs.get("result") in ("failure", "interrupted")]
        paragraphs.append(
            f"Pakkehåndtereren kjørte {_n(len(events))} ganger med oppdateringer eller feil; "
            f"{_n(len(bad))} av kjøringene feilet eller ble avbrutt."
        )
        if bad:
            tables.append(_runs_table(bad[:TOP]))
        if failed:
            tables.append(_package_table(failed[:TOP], "Pakker der oppdateringen feilet", "Feil"))
        if dpkg_errors:
            tables.append(_package_table(dpkg_errors[:TOP], "Pakker dpkg ikke kunne behandle (term.log)", "Ganger"))
        if security:
            paragraphs.append(f"Sikkerhetsoppdateringer ble installert for {_n(len(security))} ulike pakker.")
            tables.append(_package_table(security[:TOP], "Pakker med sikkerhetsoppdateringer", "Oppdateringer"))
    elif any(n.values()):
        paragraphs.append(
            "Oversikt over enkeltkjøringer og pakker finnes bare i agentens egen database, ikke i "
            "Prometheus; denne rapporten er laget uten den."
        )
    return SectionContent(paragraphs=tuple(paragraphs), tables=tuple(tables))


def _pending(data: ReportData, period: Period) -> list[str]:
    pending = data.gauge(PENDING, period.end, by=("kind",))
    if not pending:
        return []
    ages = data.gauge(OLDEST_PENDING, period.end, by=("kind",))
    reboot = data.gauge(REBOOT_REQUIRED, period.end)
    security, other = int(pending.get(("security",), 0)), int(pending.get(("other",), 0))
    text = f"Ved periodens slutt ventet {_n(security)} sikkerhetsoppdateringer og {_n(other)} andre oppdateringer"
    age = ages.get(("security",), 0.0)
    if security and age:
        text += f"; den eldste sikkerhetsoppdateringen hadde ventet {age / 86400:.1f} døgn"
    text += "."
    if reboot.get((), 0.0) >= 1:
        text += " Serveren må startes på nytt for at installerte oppdateringer skal tre i kraft."
    return [text, AGE_NOTE]


def _runs_table(events: Sequence[Event]) -> ReportTable:
    rows = tuple(
        (
            e.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M"),
            SOURCES.get(str(e.attrs.get("source")), str(e.attrs.get("source"))),
            RESULTS.get(str(e.attrs.get("result")), str(e.attrs.get("result"))),
            int(e.attrs.get("security") or 0),
            int(e.attrs.get("other") or 0),
        )
        for e in events
    )
    return ReportTable(("Tid (UTC)", "Kilde", "Resultat", "Sikkerhet", "Andre"), rows, "Kjøringer som feilet eller ble avbrutt")


def _top(rows: Iterable[Rollup], limit: int = TOP) -> list[tuple[str, int, int]]:
    """(key, total, days) summed over the period, most first (ties by key)."""
    totals: dict[str, float] = {}
    days: dict[str, set[object]] = {}
    for row in rows:
        totals[row.key] = totals.get(row.key, 0.0) + row.value
        days.setdefault(row.key, set()).add(row.day)
    tops = [(key, int(total), len(days[key])) for key, total in totals.items()]
    tops.sort(key=lambda t: (-t[1], t[0]))
    return tops[:limit]


def _package_table(tops: Sequence[tuple[str, int, int]], caption: str, what: str) -> ReportTable:
    return ReportTable(("Pakke", what, "Dager"), tuple(tops), caption)


def _n(value: float | int) -> str:
    return f"{int(value):,}".replace(",", " ")


SECTION = ReportSection(
    id="updates.applied",
    title=TITLE,
    title_en="System supplier: security and system updates",
    order=40,
    build=build,
    indicators=(
        Indicator("updates.security_applied", APPLIED, "Sikkerhetsoppdateringer installert", "Security updates installed",
                  labels={"kind": "security", "result": "success"}),
        Indicator("updates.failed", APPLIED, "Oppdateringer som feilet", "Updates that failed", labels={"result": "failure"}),
        Indicator("updates.security_pending", PENDING, "Ventende sikkerhetsoppdateringer ved månedens slutt",
                  "Security updates pending at the month's end", kind="gauge", labels={"kind": "security"}),
    ),
)
