"""The report section "Databehandler: konfigurasjonsendringer" for one period.

Factsheet 12 asks the system supplier and the data processor for "planlagte endringer, forventet
effekt og når" beside the changes made. So the section shows, side by side:

- the planned changes of the period from the maintenance calendar (what, expected effect, when,
  by whom — a role — and what they cover), as ``changes.plans`` recorded them when they began,
  each with the number of observed changes it planned;
- the changes observed: from the counters, configuration changes by source and kind and package
  changes by action, planned or not;
- which observed changes fell outside every plan: the unplanned configuration changes one by
  one (when, what, which file, key or policy) and the packages installed or removed outside
  every plan; then the files and packages changed most often.

Plans, events and rollups are kept in one host's ledger; a fleet's Prometheus keeps none of
them, and the section then says so.

Paths, audit keys, policy names and package names are shown; file content and who made a
change are never recorded. Times are shown in UTC.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone

from normagent import Event, Indicator, Period, ReportData, ReportSection, ReportTable, Rollup, SectionContent

from .vocab import (
    BY_PLAN,
    BY_SUBJECT,
    CHANGE_EVENT,
    CONFIG_CHANGES,
    PACKAGE_CHANGES,
    PACKAGES_BY_NAME,
    PLAN_EVENT,
    UNPLANNED_PACKAGES,
)

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
    "«Planlagt» betyr at endringen skjedde i et varslet vedlikeholdsvindu, eller innenfor en planlagt "
    "endring i vedlikeholdskalenderen som omfatter den. En endring utenfor enhver plan er en "
    "avvikskandidat. Uten vedlikeholdskalender er alle endringer uplanlagte. Innholdet i filer lagres "
    "aldri; agenten sammenligner bare et nøkkelbasert fingeravtrykk."
)
# A plan is recorded at its start; one that began this long before the period can still reach into it.
PLAN_REACH = timedelta(days=92)
EVERYTHING = "alle endringer i tidsrommet"


def build(data: ReportData, period: Period) -> SectionContent:
    """The section's text and tables for ``period``."""
    config = data.increase(CONFIG_CHANGES, period, by=("source", "kind", "planned"))
    packages = data.increase(PACKAGE_CHANGES, period, by=("action", "planned"))
    total = int(sum(config.values()))
    unplanned = int(sum(v for (_, _, p), v in config.items() if p == "false"))
    package_total = int(sum(packages.values()))
    package_unplanned = int(sum(v for (_, p), v in packages.items() if p == "false"))
    plans = _plans(data, period)
    events = sorted(
        (e for e in data.events(CHANGE_EVENT, period) if e.attrs.get("source") != "package" and e.attrs.get("planned") is False),
        key=lambda e: e.at,
    )
    subjects = _top(r for r in data.rollups(BY_SUBJECT, period))
    names = _top(data.rollups(PACKAGES_BY_NAME, period))
    outside = _top(data.rollups(UNPLANNED_PACKAGES, period))
    # Plans, events and rollups are kept only in the host's own ledger, not in Prometheus.
    without_ledger = bool(total or package_total) and not (plans or events or subjects or names or outside)
    paragraphs = [
        f"I perioden ble det registrert {_n(total)} konfigurasjonsendringer, {_n(unplanned)} av dem uplanlagte, "
        f"og {_n(package_total)} pakkeendringer, {_n(package_unplanned)} av dem uplanlagte.",
    ]
    if plans:
        paragraphs.append(
            f"Vedlikeholdskalenderen hadde {_n(len(plans))} planlagte endringer i perioden: hva, forventet effekt, "
            "når, hvem som utfører dem (som rolle), hva de omfatter og hvor mange observerte endringer de dekket."
        )
    elif not without_ledger:
        paragraphs.append("Ingen planlagte endringer fra vedlikeholdskalenderen er registrert for perioden.")
    paragraphs.append(PLANNED_NOTE)
    tables: list[ReportTable] = []
    if plans:
        tables.append(_plans_table(plans, data, period))
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
    if events:
        tables.append(_events_table(events[:TOP], len(events)))
    if outside:
        tables.append(ReportTable(("Pakke", "Endringer", "Dager"), tuple(outside), "Pakker installert eller fjernet utenfor plan"))
    if subjects:
        tables.append(ReportTable(("Hva", "Endringer", "Dager"), tuple(subjects), "Oftest endret"))
    if names:
        tables.append(ReportTable(("Pakke", "Endringer", "Dager"), tuple(names), "Pakker endret"))
    if without_ledger:
        paragraphs.append(
            "Planlagte endringer og oversikten over enkeltendringer finnes bare i agentens egen database, "
            "ikke i Prometheus; denne rapporten er laget uten den."
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
    caption = "Konfigurasjonsendringer utenfor plan" + (f" (de første {len(events)} av {total})" if total > len(events) else "")
    return ReportTable(("Tid (UTC)", "Kilde", "Endring", "Hva"), rows, caption)


def _plans(data: ReportData, period: Period) -> list[Event]:
    """The planned changes that overlap the period, by start (recorded at their start, so looked
    for from ``PLAN_REACH`` before it)."""
    reach = Period(period.start - PLAN_REACH, period.end)
    out = []
    for event in data.events(PLAN_EVENT, reach):
        end = _time(event.attrs.get("end"))
        if end is None or end > period.start:
            out.append(event)
    return sorted(out, key=lambda e: (e.at, e.key))


def _plans_table(plans: Sequence[Event], data: ReportData, period: Period) -> ReportTable:
    observed: dict[str, float] = {}
    for row in data.rollups(BY_PLAN, period):
        observed[row.key] = observed.get(row.key, 0.0) + row.value
    rows = tuple(
        (
            _span(e.at, _time(e.attrs.get("end"))),
            str(e.attrs.get("what", "")),
            str(e.attrs.get("effect", "")) or "–",
            str(e.attrs.get("role", "")) or "–",
            str(e.attrs.get("subjects", "")) or EVERYTHING,
            int(observed.get(e.key, 0)),
        )
        for e in plans
    )
    return ReportTable(
        ("Når (UTC)", "Hva", "Forventet effekt", "Utføres av", "Omfatter", "Observerte endringer"), rows, "Planlagte endringer"
    )


def _span(start: datetime, end: datetime | None) -> str:
    a = start.astimezone(timezone.utc)
    if end is None:
        return a.strftime("%Y-%m-%d %H:%M")
    b = end.astimezone(timezone.utc)
    return f"{a:%Y-%m-%d %H:%M}–{b:%H:%M}" if a.date() == b.date() else f"{a:%Y-%m-%d %H:%M} – {b:%Y-%m-%d %H:%M}"


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


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


SECTION = ReportSection(
    id="changes.config",
    title=TITLE,
    title_en="Data processor: configuration changes",
    order=50,
    build=build,
    indicators=(
        Indicator("changes.config_unplanned", CONFIG_CHANGES, "Uplanlagte konfigurasjonsendringer", "Unplanned configuration changes",
                  labels={"planned": "false"}),
        Indicator("changes.packages_unplanned", PACKAGE_CHANGES, "Uplanlagte pakkeendringer", "Unplanned package changes",
                  labels={"planned": "false"}),
    ),
)
