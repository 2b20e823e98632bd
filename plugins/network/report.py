"""The report section "Nettleverandør: nettverksutstyr" for one period.

Downtime intervals per device and interface from the ``network.down`` / ``network.up`` events (one
host's ledger): an ``up`` event closes the interval that began at its ``down_since``; a ``down``
event without an ``up`` after it is still going on at the period's end. Restarts from their
events. A fleet's Prometheus has no events: the section then gives the seconds of downtime and the
restarts from the counters. Times in UTC.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from normagent import Indicator, Period, ReportData, ReportSection, ReportTable, SectionContent

from .parse import DEVICE_DOWN, DEVICE_RESTARTS, DOWN_EVENT, IF_DOWN, RESTART_EVENT, UP_EVENT

TITLE = "Nettleverandør: nedetid og omstarter på nettverksutstyr"
LOOK_AHEAD = timedelta(days=31)
MAX_ROWS = 100


def build(data: ReportData, period: Period) -> SectionContent:
    """The section's text and tables for ``period``."""
    wide = Period(period.start - LOOK_AHEAD, period.end + LOOK_AHEAD)
    downs = data.events(DOWN_EVENT, wide)
    ups = data.events(UP_EVENT, wide)
    closed: set[tuple[str, str, str]] = set()
    rows: list[tuple[str | int | float, ...]] = []
    total = 0.0
    for up in ups:
        start = _parse(up.attrs.get("down_since"))
        if start is None:
            continue
        key = (str(up.attrs.get("device", "")), str(up.attrs.get("interface", "")), start.isoformat(timespec="seconds"))
        closed.add(key)
        seconds = _overlap(start, up.at, period)
        if seconds > 0:
            total += seconds
            rows.append((*_where(up.attrs), _when(start), _when(up.at), _duration(seconds)))
    for down in downs:
        key = (str(down.attrs.get("device", "")), str(down.attrs.get("interface", "")), down.at.isoformat(timespec="seconds"))
        if key in closed or not (down.at < period.end):
            continue
        seconds = _overlap(down.at, period.end, period)
        if seconds > 0:
            total += seconds
            rows.append((*_where(down.attrs), _when(down.at), "pågår", _duration(seconds)))
    restarts = [e for e in data.events(RESTART_EVENT, period)]
    paragraphs: list[str] = []
    tables: list[ReportTable] = []
    if rows or restarts:
        paragraphs.append(
            f"I perioden ble det registrert {len(rows)} avbrudd på nettverksutstyr og "
            f"grensesnitt, til sammen {_duration(total)}, og {len(restarts)} omstart{'er' if len(restarts) != 1 else ''} av utstyr."
        )
        if rows:
            rows.sort(key=lambda r: (str(r[2]), str(r[0]), str(r[1])))
            tables.append(ReportTable(("Utstyr", "Grensesnitt", "Fra (UTC)", "Til (UTC)", "Varighet"), tuple(rows[:MAX_ROWS]), "Nedetid"))
        if restarts:
            tables.append(
                ReportTable(
                    ("Utstyr", "Omstart (UTC)"),
                    tuple((str(e.attrs.get("device", "")), _when(e.at)) for e in sorted(restarts, key=lambda e: e.at)[:MAX_ROWS]),
                    "Omstarter",
                )
            )
    else:
        device = data.increase(DEVICE_DOWN, period, by=("device",))
        interface = data.increase(IF_DOWN, period, by=("device", "interface"))
        restarted = data.increase(DEVICE_RESTARTS, period, by=("device",))
        if any(device.values()) or any(interface.values()) or any(restarted.values()):
            paragraphs.append(
                f"Nedetid på utstyr: {_duration(sum(device.values()))}; på grensesnitt: "
                f"{_duration(sum(interface.values()))}; omstarter: {int(sum(restarted.values()))}."
            )
        else:
            paragraphs.append("Ingen nedetid eller omstarter registrert på overvåket nettverksutstyr i perioden.")
    paragraphs.append(
        "Nedetid for utstyr betyr at det ikke svarte på SNMP fra denne serveren; for grensesnitt at "
        "det ikke var oppe (ifOperStatus). Tidene er målt ved hver avspørring."
    )
    return SectionContent(paragraphs=tuple(paragraphs), tables=tuple(tables))


def _where(attrs: Mapping[str, object]) -> tuple[str, str]:
    return str(attrs.get("device", "")), str(attrs.get("interface") or "(hele enheten)")


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _overlap(start: datetime, end: datetime, period: Period) -> float:
    lo, hi = max(start, period.start), min(end, period.end)
    return max((hi - lo).total_seconds(), 0.0)


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float) -> str:
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = whole // 60
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} t"
    if hours:
        return f"{hours} t {minutes} min"
    return f"{minutes} min"


SECTION = ReportSection(
    id="network.devices",
    title=TITLE,
    title_en="Network provider: downtime and restarts of network equipment",
    order=61,
    build=build,
    indicators=(
        Indicator("network.device_down", DEVICE_DOWN, "Nedetid på nettverksutstyr", "Downtime of network equipment", unit="seconds"),
        Indicator("network.device_restarts", DEVICE_RESTARTS, "Omstarter av nettverksutstyr", "Restarts of network equipment"),
    ),
)
