"""The report section "Sikkerhetsbarriere (brannmur)" for one period.

From the counters: blocked packets by device, direction and protocol, and rule-set changes by
device, with how many of them were unplanned (outside every window and planned change of the
maintenance calendar). From the rollups (one host's ledger keeps them; a fleet's Prometheus does not, and the
section then says so): the destination ports most blocked, and the source networks most blocked
— pseudonyms of their /24 or /48 only. From the events: each rule change, when and on which
device.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timezone

from normagent import Indicator, Period, ReportData, ReportSection, ReportTable, SectionContent

from .parse import BLOCKED, BY_NETWORK, BY_PORT, RULE_CHANGE_EVENT, RULE_CHANGES

TITLE = "Sikkerhetsbarriere (brannmur)"
TOP = 10
DIRECTIONS = {"in": "inn", "out": "ut", "forward": "gjennom", "unknown": "ukjent"}
PLANNED: dict[object, str] = {True: "ja", False: "nei"}
NOTE = (
    "Kildenettverk vises bare som pseudonymer (per /24 eller /48) som kun kan slås opp på denne "
    "serveren. Enheter er navnene i oppsettet; «local» er denne serveren, «other» alle andre avsendere."
)


def build(data: ReportData, period: Period) -> SectionContent:
    blocked = data.increase(BLOCKED, period, by=("device", "direction", "proto"))
    changes = data.increase(RULE_CHANGES, period, by=("device", "planned"))
    by_device: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # all, unplanned
    for (device, planned), n in changes.items():
        by_device[device][0] += n
        by_device[device][1] += n if planned != "true" else 0
    total = sum(blocked.values())
    paragraphs = [
        f"Brannmurene blokkerte {_number(total)} pakker eller forbindelser i perioden, og regelsettet ble "
        f"endret {_number(sum(changes.values()))} ganger, {_number(sum(u for _, u in by_device.values()))} av dem "
        "utenfor planlagte vinduer.",
        NOTE,
    ]
    tables = [
        ReportTable(
            ("enhet", "retning", "protokoll", "blokkert"),
            tuple(
                (device, DIRECTIONS.get(direction, direction), proto, int(n))
                for (device, direction, proto), n in sorted(blocked.items(), key=lambda kv: (-kv[1], kv[0]))
                if n
            ),
            caption="Blokkert trafikk",
        ),
        ReportTable(
            ("enhet", "regelendringer", "herav uplanlagte"),
            tuple((device, int(n), int(unplanned)) for device, (n, unplanned) in sorted(by_device.items()) if n),
            caption="Endringer i regelsettet (planlagt: innenfor et vedlikeholdsvindu eller en planlagt endring)",
        ),
    ]
    ports = _top(data, BY_PORT, period)
    networks = _top(data, BY_NETWORK, period)
    if not ports and total:  # blocked traffic without its rollups: a source that keeps none (a fleet's Prometheus)
        paragraphs.append("Toppliste over porter og nettverk finnes bare i rapporten fra den enkelte serveren.")
    else:
        tables.append(ReportTable(("port", "blokkert"), tuple(ports), caption=f"De {TOP} mest blokkerte målportene"))
        tables.append(
            ReportTable(("nettverk (pseudonym)", "blokkert"), tuple(networks), caption=f"De {TOP} kildenettverkene med flest blokkeringer")
        )
    events = sorted(data.events(RULE_CHANGE_EVENT, period), key=lambda e: e.at)
    if events:
        tables.append(
            ReportTable(
                ("tidspunkt (UTC)", "enhet", "kilde", "planlagt"),
                tuple(
                    (
                        e.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M"),
                        str(e.attrs.get("device", "")),
                        str(e.attrs.get("source", "")),
                        PLANNED.get(e.attrs["planned"], "") if isinstance(e.attrs.get("planned"), bool) else "",
                    )
                    for e in events
                ),
                caption="Regelendringer",
            )
        )
    return SectionContent(paragraphs=tuple(paragraphs), tables=tuple(tables))


def _number(n: float) -> str:
    """``12 345``: thousands apart by a space, as Norwegian writes them."""
    return f"{n:,.0f}".replace(",", " ")


def _top(data: ReportData, name: str, period: Period) -> list[tuple[str, int]]:
    totals: defaultdict[str, float] = defaultdict(float)
    for row in data.rollups(name, period):
        totals[row.key] += row.value
    return [(key, int(n)) for key, n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]]


SECTION = ReportSection(
    id="firewall.barrier",
    title=TITLE,
    title_en="Security barrier (firewall)",
    order=80,
    build=build,
    indicators=(
        Indicator("firewall.blocked", BLOCKED, "Blokkerte pakker og forbindelser", "Blocked packets and connections"),
        Indicator("firewall.rule_changes", RULE_CHANGES, "Endringer i brannmurens regelsett", "Changes of the firewall's rules"),
    ),
)
