"""The EDI plugin's default deviation rules (data; ``normagent.rules`` evaluates them).

Texts are in bokmål and English and carry no personal data: message types, receipt kinds,
directions, error codes, configured folder names and numbers only. Each rule can be retuned or
disabled under ``[rules."<name>"]``.

``edi.misaddressed`` may be a personal-data breach (a message with health information that
reached, or was meant for, the wrong receiver), so its candidates carry the 72-hour deadline.

Imports only normagent (the public API) and the standard library.
"""

from __future__ import annotations

from datetime import timedelta

from normagent import RuleSpec, RuleText, Severity
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
    cia=("tilgjengelighet", "integritet"),
    owner="prosesseier",
    text_nb=RuleText(
        "Meldinger uten kvittering etter alarmgrensen",
        "{value} sendte meldinger av typen {msg_type} har ventet på {receipt}-kvittering lenger enn alarmgrensen "
        "(standard 72 timer, da gir den nasjonale meldingsformidleren opp).",
        "Mottakeren har trolig ikke fått meldingene: helseopplysninger kan mangle der pasienten behandles.",
        "Kontakt mottakeren eller meldingsleverandøren, og send meldingene på nytt eller på annen måte.",
    ),
    text_en=RuleText(
        "Messages without receipt past the alarm limit",
        "{value} sent messages of type {msg_type} have waited for a {receipt} receipt longer than the alarm limit "
        "(72 hours by default, when the national message service gives up).",
        "The receiver has probably not got the messages: health information may be missing where the patient is treated.",
        "Contact the receiver or the message service provider, and send the messages again or another way.",
    ),
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
    cia=("integritet", "tilgjengelighet"),
    owner="prosesseier",
    text_nb=RuleText(
        "Meldinger avvist av mottaker",
        "{value} meldinger av typen {msg_type} ble avvist av mottaker (negativ applikasjonskvittering) siste {window}.",
        "Opplysningene i meldingene er ikke tatt imot og kan mangle hos mottakeren.",
        "Se feilkodene i kvitteringene (normagent-rapporten), rett meldingene og send dem på nytt.",
    ),
    text_en=RuleText(
        "Messages rejected by the receiver",
        "{value} messages of type {msg_type} were rejected by the receiver (negative application receipt) in the last {window}.",
        "The information in the messages was not accepted and may be missing at the receiver.",
        "See the error codes in the receipts (the normagent report), correct the messages and send them again.",
    ),
)

STOP = RuleSpec(
    name="edi.stop",
    watch=collectors.M_STOP_CURRENT,
    comparison=">",
    threshold=1800,
    group_by=("direction",),
    severity=Severity.WARNING,
    summary=(
        "Meldingstrafikken ({direction}) har stått stille i {value} i åpningstiden "
        "(grense {threshold})."
    ),
    section=SECTION,
    cia=("tilgjengelighet",),
    owner="prosesseier",
    text_nb=RuleText(
        "Stans i meldingstrafikken",
        "Meldingstrafikken ({direction}) har stått stille i {value} i åpningstiden (grense {threshold}).",
        "Henvisninger, epikriser og svar kan bli forsinket.",
        "Kontroller meldingstjeneren og forbindelsen til Norsk Helsenett.",
    ),
    text_en=RuleText(
        "Message traffic has stopped",
        "Message traffic ({direction}) has stood still for {value} during business hours (threshold {threshold}).",
        "Referrals, discharge letters and answers may be delayed.",
        "Check the message server and the connection to Norsk Helsenett.",
    ),
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
    cia=("konfidensialitet",),
    owner="prosesseier",
    personal_data=True,
    text_nb=RuleText(
        "Feiladresserte meldinger",
        "{value} feiladresserte meldinger ({direction}, type {msg_type}) siste {window}.",
        "Helseopplysninger kan ha kommet til feil mottaker. Er det et brudd på personopplysningssikkerheten, "
        "skal det meldes til Datatilsynet innen fristen.",
        "Finn meldingene i meldingstjeneren, kontakt mottakeren, rett adresseringen (adresseregisteret) og vurder "
        "om hendelsen må meldes til Datatilsynet.",
    ),
    text_en=RuleText(
        "Mis-addressed messages",
        "{value} mis-addressed messages ({direction}, type {msg_type}) in the last {window}.",
        "Health information may have reached the wrong receiver. If this is a personal-data breach, it must be "
        "notified to Datatilsynet by the deadline.",
        "Find the messages in the message server, contact the receiver, correct the addressing (the address "
        "register) and consider whether the incident must be notified to Datatilsynet.",
    ),
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
    cia=("tilgjengelighet", "integritet"),
    owner="prosesseier",
    text_nb=RuleText(
        "Transportfeil for sendte meldinger",
        "{value} transportfeil (ebXML MessageError, kode {error_code}) for sendte meldinger siste {window}.",
        "Meldingene er ikke levert og kan mangle hos mottakeren.",
        "Se feilkoden, kontroller sertifikater og adressering, og kontakt meldingsleverandøren ved behov.",
    ),
    text_en=RuleText(
        "Transport errors for sent messages",
        "{value} transport errors (ebXML MessageError, code {error_code}) for sent messages in the last {window}.",
        "The messages were not delivered and may be missing at the receiver.",
        "See the error code, check certificates and addressing, and contact the message service provider if needed.",
    ),
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
    cia=("integritet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Mistenkelige filer i EDI-mappene",
        "{value} filer i EDI-mappene inneholdt XML med dokumenttypedeklarasjon eller entiteter (mulig angrep: "
        "«billion laughs»/XXE) siste {window}; de ble avvist uten å bli lest.",
        "Noen kan forsøke å angripe meldingssystemet gjennom filene det leser.",
        "Finn ut hvor filene kom fra, og undersøk meldingstjeneren med driftsleverandøren.",
    ),
    text_en=RuleText(
        "Suspicious files in the EDI folders",
        "{value} files in the EDI folders held XML with a document type declaration or entities (a possible "
        "attack: billion laughs/XXE) in the last {window}; they were refused unread.",
        "Someone may be trying to attack the message system through the files it reads.",
        "Find out where the files came from, and examine the message server with the operations provider.",
    ),
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
    cia=("integritet",),
    owner="prosesseier",
    text_nb=RuleText(
        "Ugyldige filer i EDI-mappene",
        "{value} filer i EDI-mappene var ikke gyldig XML siste {window}.",
        "Meldinger kan være skadet og ikke bli behandlet.",
        "Kontroller filene og programmet som skriver dem.",
    ),
    text_en=RuleText(
        "Invalid files in the EDI folders",
        "{value} files in the EDI folders were not valid XML in the last {window}.",
        "Messages may be damaged and not be processed.",
        "Check the files and the program that writes them.",
    ),
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
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "Meldingstjeneren er nede",
        "Meldingstjenerens tjeneste har vært nede i over {for}; meldingsutvekslingen står.",
        "Ingen meldinger sendes eller mottas: henvisninger, svar og kvitteringer blir forsinket.",
        "Start tjenesten igjen, og finn årsaken i loggen; kontakt leverandøren ved behov.",
    ),
    text_en=RuleText(
        "The message server is down",
        "The message server's service has been down for over {for}; message exchange has stopped.",
        "No messages are sent or received: referrals, answers and receipts are delayed.",
        "Start the service again, and find the cause in its log; contact the supplier if needed.",
    ),
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
    cia=("tilgjengelighet",),
    owner="IKT-leder",
    text_nb=RuleText(
        "EDI-mappe mangler",
        "EDI-mappen {folder} har ikke funnets eller kunnet leses i over {for}.",
        "Meldinger i mappen blir ikke sett av normagent, og kanskje heller ikke av meldingstjeneren.",
        "Kontroller at mappen finnes og at normagent har lesetilgang.",
    ),
    text_en=RuleText(
        "An EDI folder is missing",
        "The EDI folder {folder} has not existed or been readable for over {for}.",
        "Messages in it are not seen by normagent, and maybe not by the message server either.",
        "Check that the folder exists and that normagent may read it.",
    ),
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
