"""The report section "Databehandler: konfigurasjonsendringer" for one period.

From the counters: configuration changes by source and kind, planned or not, and package
changes by action. From the events and rollups (one host's ledger; a fleet's Prometheus keeps
neither and the section then says so): the unplanned configuration changes one by one (when,
what, which file, key or policy), the files changed most often and the packages changed.

Paths, audit keys, policy names and package names are shown; file content and who made a
change are never recorded. Times are shown in UTC.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timezone

from normagent import Event, Period, ReportData, ReportSection, ReportTable, Rollup, SectionContent

from .vocab import BY_SUBJECT, CHANGE_EVENT, CONFIG_CHANGES, PACKAGE_CHANGES, PACKAGES_BY_NAME

TITLE = "Databehandler: konfigurasjonsendringer"
TOP = 20
SOURCES = {"file": "Konfigurasjonsfil", "auditd": "auditd", "windows": "Windows-policy", "package": "Pakke"}
KINDS = {
    "content": "innhold endret",
    "mode": "rettigheter endret",
    "owner": "eier endret",
    "created": "fil opprettet",
    "deleted": "fil slettet",
    "audit_config": "revisjonsoppsett endret",
    "watch": "overvåket fil skrevet",
    "audit_policy": "revisjonspolicy endret",
    "domain_policy": "domenepolicy endret",
}
ACTIONS = {
    "install": "installert",
    "upgrade": "oppgradert",
    "downgrade": "nedgradert",
    "reinstall": "reinstallert",
    "remove": "fjernet",
    "purge": "fjernet med oppsett",
}
PLANNED_NOTE = (
    "«Planlagt» betyr at endringen falt innenfor et planlagt vedlikeholdsvindu eller en planlagt "
    "endring i vedlikeholdskalenderen. Uten vedlikeholdskalender regnes alle endringer som "
    "uplanlagte. Innholdet i filer lagres aldri; agenten sammenligner bare et nøkkelbasert "
    "fingeravtrykk."
)


def build(data: ReportData, period: Period) -> SectionContent:
    """The section's text and tables for ``period``."""
    config = data.increase(CONFIG_CHANGES, period, by=("source", "kind", "planned"))
    packages = data.increase(PACKAGE_CHANGES, period, by=("action", "planned"))
    total = int(sum(config.values()))
    unplanned = int(sum(v for (_, _, p), v in config.items() if p == "false"))
    package_total = int(sum(packages.values()))
    paragraphs = [
        f"I perioden ble det registrert {_n(total)} konfigurasjonsendringer, {_n(unplanned)} av dem uplanlagte, "
        f"og {_n(package_total)} pakkeendringer.",
        PLANNED_NOTE,
    ]
    tables: list[ReportTable] = []
    if total:
        rows = sorted(
            (
                (SOURCES.get(s, s), KINDS.get(k, k), int(config.get((s, k, "true"), 0)), int(config.get((s, k, "false"), 0)))
                for s, k in {(s, k) for (s, k, _) in config}
                if config.get((s, k, "true"), 0) or config.get((s, k, "false"), 0)
            ),
            key=lambda r: (-(r[2] + r[3]), r[0], r[1]),
        )
        tables.append(ReportTable(("Kilde", "Endring", "Planlagt", "Uplanlagt"), tuple(rows), "Konfigurasjonsendringer"))
    if package_total:
        rows2 = tuple(
            (ACTIONS.get(a, a), int(packages.get((a, "true"), 0)), int(packages.get((a, "false"), 0)))
            for a in ACTIONS
            if packages.get((a, "true"), 0) or packages.get((a, "false"), 0)
        )
        tables.append(ReportTable(("Pakker", "Planlagt", "Uplanlagt"), rows2, "Pakkeendringer"))
    events = sorted(
        (e for e in data.events(CHANGE_EVENT, period) if e.attrs.get("source") != "package" and e.attrs.get("planned") is False),
        key=lambda e: e.at,
    )
    subjects = _top(r for r in data.rollups(BY_SUBJECT, period))
    names = _top(data.rollups(PACKAGES_BY_NAME, period))
    if events:
        tables.append(_events_table(events[:TOP], len(events)))
    if subjects:
        tables.append(ReportTable(("Hva", "Endringer", "Dager"), tuple(subjects), "Oftest endret"))
    if names:
        tables.append(ReportTable(("Pakke", "Endringer", "Dager"), tuple(names), "Pakker endret"))
    if (total or package_total) and not (events or subjects or names):
        paragraphs.append(
            "Oversikt over enkeltendringer finnes bare i agentens egen database, ikke i Prometheus; "
            "denne rapporten er laget uten den."
        )
    return SectionContent(paragraphs=tuple(paragraphs), tables=tuple(tables))


def _events_table(events: Sequence[Event], total: int) -> ReportTable:
    rows = tuple(
        (
            e.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M"),
            SOURCES.get(str(e.attrs.get("source")), str(e.attrs.get("source"))),
            KINDS.get(str(e.attrs.get("kind")), str(e.attrs.get("kind"))),
            str(e.attrs.get("subject", "")),
        )
        for e in events
    )
    caption = "Uplanlagte konfigurasjonsendringer" + (f" (de første {len(events)} av {total})" if total > len(events) else "")
    return ReportTable(("Tid (UTC)", "Kilde", "Endring", "Hva"), rows, caption)


def _top(rows: Iterable[Rollup]) -> list[tuple[str, int, int]]:
    totals: dict[str, float] = {}
    days: dict[str, set[object]] = {}
    for row in rows:
        totals[row.key] = totals.get(row.key, 0.0) + row.value
        days.setdefault(row.key, set()).add(row.day)
    tops = [(key, int(total), len(days[key])) for key, total in totals.items()]
    tops.sort(key=lambda t: (-t[1], t[0]))
    return tops[:TOP]


def _n(value: int) -> str:
    return f"{value:,}".replace(",", " ")


SECTION = ReportSection(id="changes.config", title=TITLE, order=50, build=build)
