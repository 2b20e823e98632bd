"""The report section "Meldingskommunikasjon (EDI)" for a period.

Factsheet 12 asks for: messages without receipt, unplanned and planned stops, mis-addressed
messages, and messages with a negative application receipt — count and error type. The section
answers per message type from the counters (``ReportData.increase``), so it also works on a fleet's
Prometheus, and lists the notable events (rejected messages, messages without receipt, stops) when
the data source keeps events (one host's ledger). Message ids are not shown: the report goes to the
data controller, and a message id leads to a patient's message (the ledger keeps them for the
operations provider). Error texts come from the code lists in ``codes``, never from the messages.
Times are Norwegian time.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from normagent import Event, Indicator, Period, ReportData, ReportSection, ReportTable, SectionContent
from normagent.plugins.edi import codes, collectors, correlate

TITLE = collectors.SECTION
SHOWN_TIME_ZONE = ZoneInfo("Europe/Oslo")
MAX_ROWS = 200  # notable events listed per table; the rest is summarised in a sentence

DIRECTION = {"out": "utgående", "in": "inngående", "unknown": "ukjent retning"}
RECEIPT = {correlate.TRANSPORT: "transportkvittering", correlate.APPLICATION: "applikasjonskvittering"}
STATUS = {"2": "Avvist", "3": "OK, feil i delmelding", "1": "OK", "unknown": "Ukjent status"}
OUTCOME = {
    "duplicate_id": "samme meldings-ID med annet innhold",
    "encrypted": "kryptert (kan ikke leses uten nøkkel)",
    "empty": "tom fil",
    "malformed": "ikke gyldig XML",
    "truncated": "avkortet fil",
    "unsafe_xml": "avvist: DTD/entiteter (mulig angrep)",
    "unknown_format": "ukjent format",
    "unknown_namespace": "ukjent navnerom",
    "unknown_version": "ukjent versjon",
    "incomplete": "mangler påkrevde felt",
    "header_too_large": "meldingshode for stort",
    "too_deep": "for dypt nøstet XML (mulig angrep)",
    "timeout": "kunne ikke leses innen tidsgrensen",
    "not_regular": "ikke en vanlig fil (symbolsk lenke, FIFO …): ikke lest",
    "unreadable": "kunne ikke åpnes",
}


def build(data: ReportData, period: Period) -> SectionContent:
    """The section's paragraphs and tables for ``period``."""
    messages = data.increase(correlate.M_MESSAGES, period, by=("direction", "msg_type"))
    unack = data.increase(correlate.M_UNACK_TOTAL, period, by=("msg_type", "receipt"))
    receipts = data.increase(correlate.M_RECEIPTS, period, by=("msg_type", "status"))
    misaddressed = data.increase(correlate.M_MISADDRESSED, period, by=("direction", "msg_type"))
    errors = data.increase(correlate.M_RECEIPT_ERRORS, period, by=("msg_type", "code_list", "error_code"))
    transport = data.increase(correlate.M_TRANSPORT_ERRORS, period, by=("error_code",))
    stop_seconds = data.increase(collectors.M_STOP_SECONDS, period, by=("direction", "planned"))
    files = data.increase(collectors.M_FILES, period, by=("outcome",))
    unknown = data.increase(correlate.M_RECEIPTS_UNKNOWN, period, by=("receipt",))

    rejected_events = _sorted(data.events("edi.rejected", period))
    unack_events = _sorted(data.events("edi.unacknowledged", period))
    stop_events = _sorted(data.events("edi.stop", period))

    tables = [
        _per_type(messages, unack, receipts, misaddressed),
        _errors(errors),
        _transport(transport),
        _stops(stop_seconds, stop_events),
    ]
    if stop_events:
        tables.append(_stop_list(stop_events))
    if rejected_events:
        tables.append(_rejected_list(rejected_events))
    if unack_events:
        tables.append(_unack_list(unack_events))
    bad_files = {k: v for k, v in files.items() if k and k[0] in OUTCOME and v > 0}
    if bad_files:
        tables.append(_files(bad_files))
    paragraphs = [
        _summary(messages, unack, receipts, misaddressed),
        _stop_summary(stop_seconds),
    ]
    unknown_receipts = _n(sum(unknown.values()))
    if unknown_receipts:
        paragraphs.append(
            f"{unknown_receipts} mottatte kvitteringer gjaldt meldinger som ikke er lest som sendt fra de "
            "overvåkede mappene (sendt før eller utenom det agenten leser, eller aldri sendt herfra); "
            "applikasjonskvitteringene blant dem er med i tallene over."
        )
    for events, what in ((rejected_events, "avviste meldinger"), (unack_events, "meldinger uten kvittering")):
        if len(events) > MAX_ROWS:
            paragraphs.append(f"Listen over {what} viser de første {MAX_ROWS} av {len(events)}.")
    return SectionContent(paragraphs=tuple(paragraphs), tables=tuple(t for t in tables if t.rows or t.caption))


SECTION = ReportSection(
    id="edi.messages",
    title=TITLE,
    title_en="Message communication (EDI)",
    order=30,
    build=build,
    indicators=(
        Indicator("edi.unacknowledged", correlate.M_UNACK_TOTAL, "Meldinger uten kvittering innen fristen",
                  "Messages without a receipt in time"),
        Indicator("edi.rejected", correlate.M_RECEIPTS, "Avviste meldinger (negativ applikasjonskvittering)",
                  "Rejected messages (negative application receipt)", labels={"status": "2"}),
        Indicator("edi.misaddressed", correlate.M_MISADDRESSED, "Feiladresserte meldinger", "Mis-addressed messages"),
        Indicator("edi.stop_unplanned", collectors.M_STOP_SECONDS, "Uplanlagt stans i meldingsutvekslingen",
                  "Unplanned stops of message traffic", labels={"planned": "false"}, unit="seconds"),
        Indicator("edi.stop_planned", collectors.M_STOP_SECONDS, "Planlagt stans i meldingsutvekslingen",
                  "Planned stops of message traffic", labels={"planned": "true"}, unit="seconds"),
    ),
)


# --------------------------------------------------------------------------------------------
# tables


def _n(value: float) -> int:
    return int(round(value))


def _type(label: str) -> str:
    name = codes.msg_type_text(label)
    return name if name == label or label in (codes.OTHER, codes.UNKNOWN) else f"{name} ({label})"


def _per_type(
    messages: Mapping[tuple[str, ...], float],
    unack: Mapping[tuple[str, ...], float],
    receipts: Mapping[tuple[str, ...], float],
    misaddressed: Mapping[tuple[str, ...], float],
) -> ReportTable:
    types = {k[1] for k in messages} | {k[0] for k in unack} | {k[0] for k in receipts} | {k[1] for k in misaddressed}
    rows = []
    for label in sorted(types):
        row = (
            _type(label),
            _n(messages.get(("out", label), 0)),
            _n(messages.get(("in", label), 0)),
            _n(unack.get((label, correlate.TRANSPORT), 0)),
            _n(unack.get((label, correlate.APPLICATION), 0)),
            _n(receipts.get((label, "2"), 0)),
            _n(receipts.get((label, "3"), 0)),
            _n(misaddressed.get(("out", label), 0)),
            _n(misaddressed.get(("in", label), 0)),
        )
        if any(row[1:]):
            rows.append(row)
    return ReportTable(
        columns=(
            "Meldingstype", "Sendt", "Mottatt", "Uten transportkvittering", "Uten applikasjonskvittering",
            "Avvist", "OK, feil i delmelding", "Feiladressert (sendt)", "Feiladressert (mottatt)",
        ),
        rows=tuple(rows),
        caption="Meldinger per type. «Uten kvittering» teller meldinger der kvitteringen ikke kom innen fristen.",
    )


def _errors(errors: Mapping[tuple[str, ...], float]) -> ReportTable:
    rows = []
    for (msg_type, code_list, code), value in sorted(errors.items(), key=lambda kv: (-kv[1], kv[0])):
        if value <= 0:
            continue
        rows.append((_type(msg_type), code_list, code, codes.error_text(code_list, code), _n(value)))
    return ReportTable(
        columns=("Meldingstype", "Kodeverk", "Feilkode", "Betydning", "Antall"),
        rows=tuple(rows),
        caption="Feil i negative applikasjonskvitteringer (kodeverk 8221 og meldingsspesifikke lister).",
    )


def _transport(transport: Mapping[tuple[str, ...], float]) -> ReportTable:
    rows = tuple(
        (code, codes.transport_error_text(code), _n(value))
        for (code,), value in sorted(transport.items(), key=lambda kv: (-kv[1], kv[0]))
        if value > 0
    )
    return ReportTable(columns=("Feilkode", "Betydning", "Antall"), rows=rows, caption="Transportfeil (ebXML MessageError).")


def _stops(stop_seconds: Mapping[tuple[str, ...], float], events: Sequence[Event]) -> ReportTable:
    rows = []
    for direction in ("out", "in"):
        for planned in ("false", "true"):
            seconds = stop_seconds.get((direction, planned), 0.0)
            count = sum(
                1 for e in events if e.attrs.get("direction") == direction and e.attrs.get("planned") is (planned == "true")
            )
            rows.append((DIRECTION[direction], "planlagt" if planned == "true" else "uplanlagt", count, duration(seconds)))
    return ReportTable(
        columns=("Retning", "Stans", "Antall", "Samlet varighet"),
        rows=tuple(rows),
        caption="Stans i meldingsutvekslingen i åpningstiden (antall: avsluttede stanser med hendelse).",
    )


def _stop_list(events: Sequence[Event]) -> ReportTable:
    rows = tuple(
        (
            DIRECTION.get(str(e.attrs.get("direction")), "?"),
            _time(str(e.attrs.get("start", ""))),
            _time(str(e.attrs.get("end", ""))),
            "planlagt" if e.attrs.get("planned") is True else "uplanlagt",
            duration(float(e.attrs.get("seconds") or 0)),
            "ja" if e.attrs.get("service_down") is True else "nei",
        )
        for e in events[:MAX_ROWS]
    )
    return ReportTable(columns=("Retning", "Fra", "Til", "Stans", "Varighet", "Tjeneste nede"), rows=rows,
                       caption="Stanser i perioden.")


def _rejected_list(events: Sequence[Event]) -> ReportTable:
    rows = []
    for e in events[:MAX_ROWS]:
        local = e.at.astimezone(SHOWN_TIME_ZONE)
        rows.append(
            (
                local.strftime("%Y-%m-%d"),
                local.strftime("%H:%M"),
                _type(str(e.attrs.get("msg_type", ""))),
                STATUS.get(str(e.attrs.get("status", "")), str(e.attrs.get("status", ""))),
                _error_texts(str(e.attrs.get("errors", ""))),
            )
        )
    return ReportTable(
        columns=("Dato", "Tid", "Meldingstype", "Status", "Feil"),
        rows=tuple(rows),
        caption="Avviste meldinger per dag (negative applikasjonskvitteringer).",
    )


def _unack_list(events: Sequence[Event]) -> ReportTable:
    rows = []
    for e in events[:MAX_ROWS]:
        late = e.attrs.get("late_receipt") is True
        rows.append(
            (
                _time(str(e.attrs.get("sent_at", ""))),
                _type(str(e.attrs.get("msg_type", ""))),
                RECEIPT.get(str(e.attrs.get("receipt", "")), str(e.attrs.get("receipt", ""))),
                ("kom for sent: " + _time(str(e.attrs.get("receipt_at", "")))) if late else "ikke mottatt ved fristen",
            )
        )
    return ReportTable(
        columns=("Sendt", "Meldingstype", "Kvittering", "Status"),
        rows=tuple(rows),
        caption="Meldinger der kvitteringen ikke kom innen fristen.",
    )


def _files(files: Mapping[tuple[str, ...], float]) -> ReportTable:
    rows = tuple((OUTCOME[k[0]], _n(v)) for k, v in sorted(files.items(), key=lambda kv: -kv[1]))
    return ReportTable(columns=("Utfall", "Antall filer"), rows=rows, caption="Filer i EDI-mappene som ikke kunne telles som meldinger.")


def _error_texts(errors: str) -> str:
    parts = []
    for item in filter(None, errors.split(",")):
        code_list, _, code = item.partition(":")
        parts.append(f"{code} {codes.error_text(code_list, code)}")
    return "; ".join(parts) or "ingen feilkode oppgitt"


# --------------------------------------------------------------------------------------------
# text


def _summary(
    messages: Mapping[tuple[str, ...], float],
    unack: Mapping[tuple[str, ...], float],
    receipts: Mapping[tuple[str, ...], float],
    misaddressed: Mapping[tuple[str, ...], float],
) -> str:
    sent = _n(sum(v for (d, t), v in messages.items() if d == "out" and t != "APPREC"))
    received = _n(sum(v for (d, t), v in messages.items() if d == "in" and t != "APPREC"))
    no_transport = _n(sum(v for (t, r), v in unack.items() if r == correlate.TRANSPORT))
    no_app = _n(sum(v for (t, r), v in unack.items() if r == correlate.APPLICATION))
    rejected = _n(sum(v for (t, s), v in receipts.items() if s == "2"))
    partial = _n(sum(v for (t, s), v in receipts.items() if s == "3"))
    wrong = _n(sum(misaddressed.values()))
    return (
        f"I perioden ble det sendt {sent} og mottatt {received} meldinger (kvitteringer ikke medregnet). "
        f"{no_transport} sendte meldinger fikk ikke transportkvittering og {no_app} ikke applikasjonskvittering "
        f"innen fristen. {rejected} meldinger ble avvist og {partial} godtatt med feil i delmelding. "
        f"{wrong} meldinger var feiladressert."
    )


def _stop_summary(stop_seconds: Mapping[tuple[str, ...], float]) -> str:
    unplanned = sum(v for (d, p), v in stop_seconds.items() if p == "false")
    planned = sum(v for (d, p), v in stop_seconds.items() if p == "true")
    if not unplanned and not planned:
        return "Ingen stans i meldingsutvekslingen i åpningstiden."
    return (
        f"Stans i meldingsutvekslingen i åpningstiden: uplanlagt {duration(unplanned)}, planlagt {duration(planned)} "
        "(summert over utgående og inngående trafikk)."
    )


def duration(seconds: float) -> str:
    """``5400`` → ``"1 t 30 min"``; under a minute → ``"under 1 min"``."""
    minutes = int(seconds // 60)
    if minutes == 0:
        return "0 min" if seconds <= 0 else "under 1 min"
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = ([f"{days} d"] if days else []) + ([f"{hours} t"] if hours else []) + ([f"{minutes} min"] if minutes else [])
    return " ".join(parts)


def _time(iso: str) -> str:
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).astimezone(SHOWN_TIME_ZONE).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def _sorted(events: Sequence[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e.at, e.key))
