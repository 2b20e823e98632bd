"""The report sections of the availability plugin: critical systems (Driftsstatus) and the network
provider (Nettleverandør), each with availability against the SLA, breaches and likely causes.

Per service and period: availability ``1 − unplanned / (watched − planned)`` (planned, announced
downtime is not held against the SLA), whether it is below the SLA target (a breach), minutes of
unplanned and planned downtime, the number of unplanned outages and their most frequent causes (the
probe's reason). Services tagged ``network`` go to the network provider's section, the rest to the
critical systems'. The terms (target, tag) come from the ``availability.sla`` events the collector
writes once per service and month; a source without events (a fleet's Prometheus) still gives the
numbers from the counters, every service in the critical systems' section.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from normagent import Event, Indicator, Period, ReportData, ReportSection, ReportTable, SectionContent

from .collectors import DOWNTIME, OBSERVED, OUTAGE_EVENT, OUTAGES, SLA_EVENT

REASONS = {
    "timeout": "tidsavbrudd",
    "refused": "tilkobling avvist",
    "unreachable": "ikke nåbar",
    "dns_error": "navneoppslag feilet",
    "dns_unexpected_address": "navn peker til feil adresse",
    "tls_error": "TLS-feil",
    "tls_expired": "utløpt sertifikat",
    "body_mismatch": "uventet svar",
    "http_error": "HTTP-feil",
    "no_reply": "svarer ikke på ping",
    "ping_missing": "ping mangler på verten",
    "ping_error": "ping feilet",
    "systemctl_error": "systemctl feilet",
    "process_missing": "prosessen kjører ikke",
    "process_check_failed": "prosesskontroll feilet",
    "probe_error": "feil i prøven",
}


def reason_text(reason: str) -> str:
    if reason.startswith("http_") and reason[5:].isdigit():
        return f"HTTP {reason[5:]}"
    if reason.startswith("unit_"):
        return f"tjenesten er {reason[5:].replace('_', '-')}"
    return REASONS.get(reason, reason or "ukjent")


def _terms(data: ReportData, period: Period) -> dict[str, tuple[float | None, bool]]:
    """service → (SLA target, network tag): the latest terms written in the period."""
    out: dict[str, tuple[float | None, bool]] = {}
    for event in sorted(data.events(SLA_EVENT, period), key=lambda e: e.at):
        service = str(event.attrs.get("service", ""))
        target = event.attrs.get("target")
        out[service] = (float(target) if isinstance(target, (int, float)) and not isinstance(target, bool) else None,
                        event.attrs.get("network") is True)
    return out


def build_for(network: bool) -> Callable[[ReportData, Period], SectionContent]:
    """The builder of one of the two sections: network services, or the others."""

    def build(data: ReportData, period: Period) -> SectionContent:
        terms = _terms(data, period)
        observed = {k[0]: v for k, v in data.increase(OBSERVED, period, by=("service",)).items()}
        down = data.increase(DOWNTIME, period, by=("service", "planned"))
        services = sorted(s for s in set(observed) | set(terms) if terms.get(s, (None, False))[1] == network)
        if not services:
            what = "Ingen nettjenester" if network else "Ingen kritiske tjenester"
            return SectionContent(paragraphs=(f"{what} er satt opp for overvåking i perioden.",))
        outages = [e for e in data.events(OUTAGE_EVENT, period) if str(e.attrs.get("service")) in services]
        rows: list[tuple[str | int | float, ...]] = []
        breaches = []
        for service in services:
            target = terms.get(service, (None, False))[0]
            planned = down.get((service, "true"), 0.0)
            unplanned = down.get((service, "false"), 0.0)
            watched = observed.get(service, 0.0)
            agreed = watched - planned
            availability = 1.0 if agreed <= 0 else max(0.0, 1.0 - unplanned / agreed)
            breach = target is not None and watched > 0 and availability < target
            if breach:
                breaches.append(service)
            own = [e for e in outages if e.attrs.get("service") == service and e.attrs.get("planned") is not True]
            rows.append((
                service,
                "–" if target is None else f"{percent(100 * target)} %",
                f"{percent(100 * availability)} %" if watched > 0 else "ikke overvåket",
                "Ja" if breach else "Nei",
                round(unplanned / 60),
                round(planned / 60),
                len(own),
                top_causes(own),
            ))
        paragraphs = [_summary(services, breaches, network)]
        paragraphs.append(
            "Tilgjengelighet regnes som 1 − uplanlagt nedetid / (overvåket tid − planlagt nedetid). Nedetid er "
            "planlagt når den ligger i et varslet vedlikeholdsvindu ([maintenance]); ellers er den uplanlagt."
        )
        tables = [ReportTable(
            columns=("Tjeneste", "SLA-mål", "Tilgjengelighet", "SLA brutt", "Uplanlagt nedetid (min)",
                     "Planlagt nedetid (min)", "Uplanlagte utfall", "Vanligste årsaker"),
            rows=tuple(rows),
            caption="Tilgjengelighet mot SLA i perioden",
        )]
        if outages:
            tables.append(ReportTable(
                columns=("Start (UTC)", "Slutt (UTC)", "Tjeneste", "Type", "Varighet (min)", "Årsak", "Vindu"),
                rows=tuple(_outage_row(e) for e in sorted(outages, key=lambda e: e.at)),
                caption="Utfall i perioden",
            ))
        return SectionContent(paragraphs=tuple(paragraphs), tables=tuple(tables))

    return build


def top_causes(outages: Sequence[Event], limit: int = 3) -> str:
    """The most frequent reasons, with their unplanned minutes: ``"tidsavbrudd (3; 42 min)"``."""
    if not outages:
        return "–"
    counts: Counter[str] = Counter()
    minutes: defaultdict[str, float] = defaultdict(float)
    for event in outages:
        reason = str(event.attrs.get("reason", ""))
        counts[reason] += 1
        seconds = event.attrs.get("unplanned_seconds")
        minutes[reason] += float(seconds) / 60 if isinstance(seconds, (int, float)) else 0.0
    ranked = sorted(counts, key=lambda r: (-counts[r], -minutes[r], r))[:limit]
    return ", ".join(f"{reason_text(r)} ({counts[r]}; {round(minutes[r])} min)" for r in ranked)


def _outage_row(event: Event) -> tuple[str | int | float, ...]:
    attrs = event.attrs
    seconds = attrs.get("seconds")
    return (
        event.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        _when(attrs.get("end")),
        str(attrs.get("service", "")),
        "Planlagt" if attrs.get("planned") is True else "Uplanlagt",
        round(float(seconds) / 60, 1) if isinstance(seconds, (int, float)) else "",
        reason_text(str(attrs.get("reason", ""))) + (" (slutt ikke observert)" if attrs.get("ended") == "unobserved" else ""),
        str(attrs.get("window", "") or "–"),
    )


def _when(value: object) -> str:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ""


def _summary(services: Sequence[str], breaches: Sequence[str], network: bool) -> str:
    what = "nettjenester" if network else "kritiske tjenester"
    text = f"{len(services)} {what} overvåket."
    if breaches:
        return text + f" SLA brutt for: {', '.join(breaches)}."
    return text + " Ingen SLA-brudd i perioden."


def percent(value: float) -> str:
    """``99.954`` → ``"99,95"``: two decimals with a decimal comma, never rounded up to 100."""
    text = f"{value:.2f}"
    if text == "100.00" and value < 100.0:
        text = "99.99"
    return text.replace(".", ",")


SERVICES_SECTION = ReportSection(
    id="availability.services",
    title="Driftsstatus: kritiske systemer og SLA",
    title_en="Operations status: critical systems and SLA",
    order=15,
    build=build_for(False),
    # The counters do not tell network services from the others: the figures are of every probed service.
    indicators=(
        Indicator("availability.outages_unplanned", OUTAGES, "Uplanlagte utfall (alle overvåkede tjenester)",
                  "Unplanned outages (every probed service)", labels={"planned": "false"}),
        Indicator("availability.downtime_unplanned", DOWNTIME, "Uplanlagt nedetid (alle overvåkede tjenester)",
                  "Unplanned downtime (every probed service)", labels={"planned": "false"}, unit="seconds"),
    ),
)
NETWORK_SECTION = ReportSection(
    id="availability.network",
    title="Nettleverandør: nedetid og SLA",
    title_en="Network provider: downtime and SLA",
    order=60,
    build=build_for(network=True),
)
