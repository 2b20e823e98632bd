"""The report section "Driftsstatus: oppetid og omstarter": boots, outages and uptime for a period.

Built from the ``system.boot`` events when the data source keeps events (one host's ledger): one
table row per boot with its kind (planned: inside an announced maintenance window), how the host
went down (orderly or not) and the downtime before it. A source without events (a fleet's
Prometheus) still gives the counts and downtime from the counters, without the table.

Uptime is ``1 − downtime within the period / length of the period``. Downtime that is unknown
(wtmpdb does not record when a host died) cannot be subtracted, so the figure is then an upper bound
and the text says so. Events written before the maintenance calendar existed carry only "planned"
in the old sense (orderly): they are read as orderly, their planned-ness as not judged. Times are
shown in UTC.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from normagent import Event, Indicator, Period, ReportData, ReportSection, ReportTable, SectionContent

from .collectors import BOOT_EVENT, BOOTS, DOWNTIME, UNEXPECTED_SHUTDOWNS

TITLE = "Driftsstatus: oppetid og omstarter"
KIND = {True: "Planlagt", False: "Uplanlagt", None: "Ukjent forløp"}
ENDING = {True: "kontrollert", False: "ukontrollert", None: "ukjent"}
PLANNED_NOTE = (
    "«Planlagt» betyr at stansen lå i et varslet vedlikeholdsvindu; en kontrollert omstart utenfor "
    "alle vinduer er uplanlagt. «Avslutning» sier om maskinen ble avsluttet kontrollert eller stoppet "
    "uten (strømbrudd, krasj eller hard omstart)."
)


def _orderly(event: Event) -> bool | None:
    """How the host went down; events from before the calendar called this "planned"."""
    value = event.attrs.get("orderly", event.attrs.get("planned"))
    return value if isinstance(value, bool) else None


def _planned(event: Event) -> bool | None:
    if "orderly" not in event.attrs:
        return None  # written before planned meant "announced": not judged against a calendar
    value = event.attrs.get("planned")
    return value if isinstance(value, bool) else None


LOOK_AHEAD = timedelta(days=31)  # a boot this long after the period may end an outage that began in it


def build(data: ReportData, period: Period) -> SectionContent:
    """The section's text and table for ``period`` (see the module docstring)."""
    wider = data.events(BOOT_EVENT, Period(period.start, period.end + LOOK_AHEAD))
    events = sorted((e for e in wider if period.start <= e.at < period.end), key=lambda e: e.at)
    later = [e for e in wider if e.at >= period.end]
    if events or later:
        return _from_events(events, later, period)
    return _from_counters(data, period)


def _from_events(events: Sequence[Event], later: Sequence[Event], period: Period) -> SectionContent:
    planned = sum(1 for e in events if _planned(e) is True)
    unplanned = sum(1 for e in events if _planned(e) is False)
    unknown = len(events) - planned - unplanned
    unorderly = sum(1 for e in events if _orderly(e) is False)
    down = {True: 0.0, False: 0.0}
    unknown_length = estimated = 0
    unknown_sources: set[str] = set()
    rows: list[tuple[str | int | float, ...]] = []
    for event in events:
        kind = _planned(event)
        if kind is None and _orderly(event) is not None:
            kind = False  # not judged against a calendar: nothing says it was announced
        seconds = _seconds(event.attrs.get("downtime_seconds"))
        exact = event.attrs.get("downtime_exact") is True
        if seconds is None:
            if _orderly(event) is False:
                unknown_length += 1
                unknown_sources.add(str(event.attrs.get("evidence", "")))
            shown = "ukjent"
        else:
            if isinstance(kind, bool):
                down[kind] += _overlap(event.at - timedelta(seconds=seconds), event.at, period)
            if not exact:
                estimated += 1
            shown = ("ca. " if not exact else "") + duration(seconds)
        rows.append(
            (
                event.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M"),
                KIND.get(kind if isinstance(kind, bool) else None, KIND[None]),
                ENDING[_orderly(event)],
                shown,
                str(event.attrs.get("evidence", "")),
            )
        )
    for event in later:
        # An outage that began inside the period and ended with a boot after it.
        kind, seconds = _planned(event), _seconds(event.attrs.get("downtime_seconds"))
        kind = False if kind is None and _orderly(event) is not None else kind
        if isinstance(kind, bool) and seconds is not None:
            down[kind] += _overlap(event.at - timedelta(seconds=seconds), event.at, period)
    paragraphs = [_summary(len(events), planned, unplanned, unknown, unorderly), _downtime(down, period, bool(unknown_length))]
    if unknown_length:
        sources = ", ".join(sorted(unknown_sources))
        paragraphs.append(
            f"For {unknown_length} omstart{'er' if unknown_length > 1 else ''} uten kontrollert avslutning er "
            f"varigheten ukjent: kilden ({sources}) registrerer ikke når maskinen stoppet. Oppetiden over er "
            "derfor et øvre anslag."
        )
    if estimated:
        paragraphs.append(
            "Varighet merket «ca.» er regnet fra siste loggføring før stoppet og er et øvre anslag."
        )
    paragraphs.append(PLANNED_NOTE)
    table = ReportTable(
        columns=("Oppstart (UTC)", "Type", "Avslutning", "Nedetid før oppstart", "Kilde"),
        rows=tuple(rows),
        caption="Omstarter i perioden",
    )
    return SectionContent(paragraphs=tuple(paragraphs), tables=(table,))


def _from_counters(data: ReportData, period: Period) -> SectionContent:
    boots = round(sum(data.increase(BOOTS, period).values()))
    unplanned = round(sum(data.increase(UNEXPECTED_SHUTDOWNS, period).values()))
    by_planned = data.increase(DOWNTIME, period, by=("planned",))
    down = {True: by_planned.get(("true",), 0.0), False: by_planned.get(("false",), 0.0)}
    if boots == 0:
        return SectionContent(paragraphs=("Ingen omstarter registrert i perioden. Oppetid: 100 %.",))
    # Counters tell how many boots were not orderly, not which were announced: no split by kind.
    text = f"Serveren startet {boots} {'gang' if boots == 1 else 'ganger'} i perioden"
    text += f", {unplanned} av dem etter stopp uten kontrollert avslutning." if unplanned else "."
    return SectionContent(paragraphs=(text, _downtime(down, period, False), PLANNED_NOTE))


def _summary(total: int, planned: int, unplanned: int, unknown: int, unorderly: int = 0) -> str:
    if total == 0:
        return "Ingen omstarter registrert i perioden."
    text = (
        f"Serveren startet {total} {'gang' if total == 1 else 'ganger'} i perioden: "
        f"{planned} planlagt og {unplanned} uplanlagt"
    )
    if unknown:
        text += f", {unknown} med ukjent forløp (første registrerte oppstart)"
    text += "."
    if unorderly:
        text += f" {unorderly} etter stopp uten kontrollert avslutning (strømbrudd, krasj eller hard omstart)."
    return text


def _downtime(down: dict[bool, float], period: Period, upper_bound: bool) -> str:
    length = (period.end - period.start).total_seconds()
    total = down[True] + down[False]
    uptime = 100.0 * (1 - total / length) if length > 0 else 100.0
    bound = "høyst " if upper_bound else ""
    return (
        f"Registrert nedetid: {duration(total)} (planlagt {duration(down[True])}, "
        f"uplanlagt {duration(down[False])}). Oppetid i perioden: {bound}{percent(uptime)} %."
    )


def _overlap(start: datetime, end: datetime, period: Period) -> float:
    """Seconds of [start, end) inside the period: an outage that began last month counts partly."""
    lo, hi = max(start, period.start), min(end, period.end)
    return max((hi - lo).total_seconds(), 0.0)


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def duration(seconds: float) -> str:
    """Seconds as Norwegian text: ``"45 s"``, ``"12 min"``, ``"2 t 5 min"``, ``"3 d 4 t"``."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, _ = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} t" if hours else f"{days} d"
    if hours:
        return f"{hours} t {minutes} min" if minutes else f"{hours} t"
    return f"{minutes} min"


def percent(value: float) -> str:
    """``99.954`` → ``"99,95"``: two decimals with a decimal comma, never rounded up to 100."""
    text = f"{value:.2f}"
    if text == "100.00" and value < 100.0:
        text = "99.99"
    return text.replace(".", ",")


SECTION = ReportSection(
    id="system.uptime",
    title=TITLE,
    title_en="Operations status: uptime and restarts",
    order=10,
    build=build,
    indicators=(
        Indicator("system.boots", BOOTS, "Omstarter", "Restarts"),
        Indicator("system.unexpected_shutdowns", UNEXPECTED_SHUTDOWNS, "Stopp uten kontrollert avslutning", "Stops without an orderly shutdown"),
        Indicator("system.downtime_unplanned", DOWNTIME, "Uplanlagt nedetid", "Unplanned downtime", labels={"planned": "false"}, unit="seconds"),
        Indicator("system.downtime_planned", DOWNTIME, "Planlagt nedetid", "Planned downtime", labels={"planned": "true"}, unit="seconds"),
    ),
)
