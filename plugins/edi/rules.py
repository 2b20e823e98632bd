"""The EDI plugin's default deviation rules (data; ``normagent.rules`` evaluates them).

Summaries are Norwegian, as the clinic's deviation handler reads them, and carry no personal data:
message types, receipt kinds, directions, error codes and numbers only. Each rule can be retuned
or disabled under ``[rules."<name>"]``.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, Severity
from normagent.plugins.edi import collectors, correlate

SECTION = collectors.SECTION

RECEIPT_ALARM = RuleSpec(
    name="edi.receipt_alarm",
    watch=collectors.M_ALARM,
    comparison=">",
    threshold=0,
    group_by=("msg_type", "receipt"),
    severity=Severity.CRITICAL,
    summary=(
        "{value} sendte meldinger av typen {msg_type} har ventet på {receipt}-kvittering lenger enn "
        "alarmgrensen (standard 72 timer, da gir den nasjonale meldingsformidleren opp)."
    ),
    section=SECTION,
)

REJECTED = RuleSpec(
    name="edi.rejected_messages",
    watch=correlate.M_RECEIPTS,
    comparison=">",
    threshold=0,
    window=timedelta(days=1),
    labels={"status": "2"},
    group_by=("msg_type",),
    severity=Severity.WARNING,
    summary="{value} meldinger av typen {msg_type} ble avvist av mottaker (negativ applikasjonskvittering) siste døgn.",
    section=SECTION,
)

STOP = RuleSpec(
    name="edi.stop",
    watch=collectors.M_STOP_CURRENT,
    comparison=">",
    threshold=1800,
    group_by=("direction",),
    severity=Severity.WARNING,
    summary=(
        "Meldingstrafikken ({direction}) har stått stille i {value} sekunder i åpningstiden "
        "(grense {threshold} sekunder)."
    ),
    section=SECTION,
)

MISADDRESSED = RuleSpec(
    name="edi.misaddressed",
    watch=correlate.M_MISADDRESSED,
    comparison=">",
    threshold=0,
    window=timedelta(days=1),
    group_by=("direction", "msg_type"),
    severity=Severity.WARNING,
    summary="{value} feiladresserte meldinger ({direction}, type {msg_type}) siste døgn.",
    section=SECTION,
)

TRANSPORT_ERRORS = RuleSpec(
    name="edi.transport_errors",
    watch=correlate.M_TRANSPORT_ERRORS,
    comparison=">",
    threshold=0,
    window=timedelta(days=1),
    group_by=("error_code",),
    severity=Severity.WARNING,
    summary="{value} transportfeil (ebXML MessageError, kode {error_code}) for sendte meldinger siste døgn.",
    section=SECTION,
)

UNSAFE_FILES = RuleSpec(
    name="edi.unsafe_files",
    watch=collectors.M_FILES,
    comparison=">",
    threshold=0,
    window=timedelta(days=1),
    labels={"outcome": "unsafe_xml"},
    severity=Severity.CRITICAL,
    summary=(
        "{value} filer i EDI-mappene inneholdt XML med dokumenttypedeklarasjon eller entiteter "
        "(mulig angrep: «billion laughs»/XXE); de ble avvist uten å bli lest."
    ),
    section=SECTION,
)

UNREADABLE_FILES = RuleSpec(
    name="edi.malformed_files",
    watch=collectors.M_FILES,
    comparison=">",
    threshold=0,
    window=timedelta(days=1),
    labels={"outcome": "malformed"},
    severity=Severity.WARNING,
    summary="{value} filer i EDI-mappene var ikke gyldig XML siste døgn.",
    section=SECTION,
)

SERVICE_DOWN = RuleSpec(
    name="edi.service_down",
    watch=collectors.M_SERVICE_UP,
    comparison="<",
    threshold=1,
    for_=timedelta(minutes=5),
    severity=Severity.CRITICAL,
    summary="Meldingstjenerens tjeneste har vært nede i over 5 minutter; meldingsutvekslingen står.",
    section=SECTION,
)

FOLDER_MISSING = RuleSpec(
    name="edi.folder_missing",
    watch=collectors.M_FOLDER_UP,
    comparison="<",
    threshold=1,
    for_=timedelta(minutes=10),
    group_by=("folder",),
    severity=Severity.WARNING,
    summary="EDI-mappen {folder} finnes ikke eller kan ikke leses.",
    section=SECTION,
)

RULES = (
    RECEIPT_ALARM,
    REJECTED,
    STOP,
    MISADDRESSED,
    TRANSPORT_ERRORS,
    UNSAFE_FILES,
    UNREADABLE_FILES,
    SERVICE_DOWN,
    FOLDER_MISSING,
)
