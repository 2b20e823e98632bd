"""Code lists of Norwegian health messaging, with the Norwegian texts the report shows.

Owns: kodeverk 8258 (status of an application receipt), 8221 (general AppRec error codes), the
few message-specific error codes whose texts are published, the ebMS 2.0 transport error codes, and
the message types (kodeverk 8279 "Meldingens funksjon") that become ``msg_type`` label values.

Sources (collected in the project's EDI research notes, §4 and §6): KS
``StatusForMottakAvMelding`` / ``FeilmeldingForApplikasjonskvittering``, NAV ``AppRecErrorCode``,
OASIS ebMS 2.0 §4.2.3.4.1. The published lists on FinnKode/Volven are the authority; a site can add
message types through the ``msg_types`` setting, and unknown error codes are still counted.

Label cardinality: ``msg_type`` is bounded to ``KNOWN_MSG_TYPES`` plus the configured extras;
anything else is ``"other"`` (and a missing type ``"unknown"``). Error codes are bounded by shape
(``error_code_label``), so a producer writing free text into ``Error/@V`` cannot explode a metric.

Imports only the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

OID_PREFIX = "2.16.578.1.12.4.1.1."

# Kodeverk 8258 "Status for mottak av melding".
STATUS_8258: dict[str, str] = {
    "1": "OK",
    "2": "Avvist",
    "3": "OK, feil i delmelding",
}
STATUS_LABELS = ("1", "2", "3", "unknown")

# Kodeverk 8221 "Feilmeldinger for applikasjonskvittering – Generelle".
ERRORS_8221: dict[str, str] = {
    "E10": "Ugyldig meldingsidentifikator",
    "E20": "Lege finnes ikke",
    "E21": "Mottaker finnes ikke",
    "E30": "Pasientens fødselsnummer mangler",
    "E31": "Pasientens fødselsnummer er feil",
    "E32": "Pasientens navn mangler",
    "E35": "Pasienten finnes ikke i mottakersystemet",
    "E36": "Pasientopplysninger er utilstrekkelige",
    "E53": "Pasientens fødselsnummer eller D-nummer finnes ikke registrert i Folkeregisteret",
    "E54": "Pasientens fødselsnummer er ikke registrert i mottagersystemet",
    "S01": "Feil på signatur",
    "S02": "Ugyldig sertifikat",
    "S03": "Tilbaketrukket sertifikat",
    "S99": "Annen feil på signatur eller sertifikat",
    "T01": "Ikke XML / ikke 'well formed' / uleselig",
    "T02": "XML validerer ikke",
    "T10": "Støtter ikke meldingsformatet",
    "T99": "Annen feil på format",
    "X99": "Annen feil",
}

# 8221 codes that say the message reached the wrong receiver: factsheet 12's "feiladresserte meldinger".
MISADDRESSED_8221 = frozenset({"E20", "E21"})

# Message-specific lists seen in Error/@S. Only texts published next to the codes are kept; the
# report says "tekst ikke i kodelisten" for the rest rather than guessing.
ERRORS_OTHER: dict[str, dict[str, str]] = {
    "8222": {"54": "Duplikat"},
}

CODE_LIST_NAMES: dict[str, str] = {
    "8221": "Feilmeldinger for applikasjonskvittering – generelle",
    "8222": "Feilmeldinger for sykmelding og legeerklæring",
    "8223": "Feilmeldinger for legeoppgjørsmelding (LOM)",
    "8124": "Feilmeldinger for innrapportering av trekk",
}

# ebMS 2.0 ErrorList/Error/@errorCode (OASIS §4.2.3.4.1), explained in Norwegian for the report.
EBMS_ERRORS: dict[str, str] = {
    "ValueNotRecognized": "Verdi i ebXML-hodet gjenkjennes ikke (f.eks. CPA-id eller mottaker)",
    "NotSupported": "Funksjonen støttes ikke av mottakeren",
    "Inconsistent": "Motstridende verdier i ebXML-hodet",
    "OtherXml": "Annen XML-feil i ebXML-hodet",
    "DeliveryFailure": "Meldingen kunne ikke leveres",
    "TimeToLiveExpired": "Meldingens levetid gikk ut før levering",
    "SecurityFailure": "Signatur eller sertifikat kunne ikke valideres",
    "MimeProblem": "Feil i MIME-strukturen",
    "Unknown": "Ukjent feil",
}

# Where an ebXML error points at the addressing (errorCode aside): eb:To, eb:PartyId or eb:CPAId.
MISADDRESSED_LOCATION = re.compile(r"(?i)\b(to|partyid|cpaid|cpa_id)\b")

# Kodeverk 8279 "Meldingens funksjon": values seen in public samples and common in Norway.
# MsgInfo/Type is an open set; these (plus configured extras) become label values, others "other".
KNOWN_MSG_TYPES: dict[str, str] = {
    "APPREC": "Applikasjonskvittering",
    "BEHANDLERKRAV": "Behandlerkrav",
    "DIALOG_AVVIK": "Tilbakemelding om feil i mottatt melding",
    "DIALOG_FORESPORSEL": "Forespørsel",
    "DIALOG_HELSEFAGLIG": "Helsefaglig dialog",
    "DIALOG_INNBYGGER_DIGITALBRUKER": "Innbyggerdialog: digital bruker",
    "DIALOG_INNBYGGER_EKONSULTASJON": "Innbyggerdialog: e-konsultasjon",
    "DIALOG_INNBYGGER_EKONTAKT": "Innbyggerdialog: e-kontakt",
    "DIALOG_INNBYGGER_KOORDINATOR": "Innbyggerdialog: koordinator",
    "DIALOG_INNBYGGER_RESEPTFORNYELSE": "Innbyggerdialog: reseptfornyelse",
    "DIALOG_INNBYGGER_TEST": "Innbyggerdialog: test",
    "DIALOG_INNBYGGER_TIMERESERVASJON": "Innbyggerdialog: timebestilling",
    "DIALOG_KOMMUNIKASJONSTEST": "Kommunikasjonstest",
    "DIALOG_NOTAT": "Notat",
    "DIALOG_SVAR": "Svar på forespørsel",
    "EPIKRISE": "Epikrise",
    "HENVISNING": "Henvisning",
    "INNRAPPORTERING_TREKK": "Innrapportering av trekk",
    "INNTEKTSFORESPORSEL": "Inntektsforespørsel",
    "LEGEERKL": "Legeerklæring",
    "LOM": "Legeoppgjørsmelding",
    "OPPGJORSKRAV": "Oppgjørskrav",
    "PLO": "Pleie- og omsorgsmelding",
    "REKVISISJON": "Rekvisisjon",
    "SVAR_LAB": "Svarrapport laboratorium",
    "SVAR_PATOLOGI": "Svarrapport patologi",
    "SVAR_RADIOLOGI": "Svarrapport radiologi",
    "SYKMELD": "Sykmelding",
}
OTHER = "other"
UNKNOWN = "unknown"

_CODE_SHAPE = re.compile(r"^[A-Za-z0-9_.-]{1,16}$")
_OID = re.compile(r"^\d+(\.\d+)+$")


def status_label(value: str) -> str:
    """The ``status`` label of an AppRec ``Status/@V``: ``1``, ``2``, ``3`` or ``unknown``."""
    value = value.strip()
    return value if value in STATUS_8258 else UNKNOWN


def is_oid(value: str) -> bool:
    return bool(_OID.match(value.strip()))


def code_list_label(oid: str) -> str:
    """``2.16.578.1.12.4.1.1.8221`` → ``8221``; another OID → ``other``; missing → ``unknown``."""
    oid = oid.strip()
    if not oid:
        return UNKNOWN
    if oid.startswith(OID_PREFIX):
        tail = oid[len(OID_PREFIX) :]
        if tail.isdigit() and len(tail) <= 6:
            return tail
    if oid.isdigit() and len(oid) <= 6:  # some producers write only the kodeverk number
        return oid
    return OTHER


def error_code_label(code: str) -> str:
    """A bounded label for an error code: the code itself if it has the shape of one, else ``other``."""
    code = code.strip()
    if not code:
        return UNKNOWN
    return code if _CODE_SHAPE.match(code) else OTHER


def transport_code_label(code: str) -> str:
    """ebMS errorCode as a label: the OASIS codes, AppRec-like codes (``T01``, seen in the wild), else ``other``."""
    code = code.strip()
    if not code:
        return UNKNOWN
    if code in EBMS_ERRORS:
        return code
    # Some producers write a namespace prefix into the value ("eb:DeliveryFailure").
    bare = code.rsplit(":", 1)[-1]
    if bare in EBMS_ERRORS:
        return bare
    if re.fullmatch(r"[A-Z]\d{2}", code):
        return code
    return OTHER


def error_text(code_list: str, code: str) -> str:
    """The Norwegian text of an error code, or a plain statement that the list has none for it."""
    if code_list == "8221":
        text = ERRORS_8221.get(code)
    else:
        text = ERRORS_OTHER.get(code_list, {}).get(code)
    return text if text is not None else "tekst ikke i kodelisten"


def transport_error_text(code: str) -> str:
    if code in EBMS_ERRORS:
        return EBMS_ERRORS[code]
    if code in ERRORS_8221:
        return ERRORS_8221[code] + " (AppRec-kode brukt i ebXML-feil)"
    return "ukjent feilkode"


class MsgTypes:
    """Maps a raw ``MsgInfo/Type`` (or ebXML Action) to a bounded label value.

    Matching is case-insensitive and ignores surrounding whitespace; the label keeps the canonical
    spelling of the known list (or of the configured extra).
    """

    __slots__ = ("_known",)

    def __init__(self, extra: Iterable[str] = ()) -> None:
        known = {name.upper(): name for name in KNOWN_MSG_TYPES}
        for name in extra:
            name = name.strip()
            if name:
                known[name.upper()] = name
        self._known = known

    def label(self, raw: str) -> str:
        raw = raw.strip()
        if not raw:
            return UNKNOWN
        return self._known.get(raw.upper(), OTHER)


def msg_type_text(label: str) -> str:
    """The Norwegian name of a message type label, for the report."""
    if label == OTHER:
        return "Andre meldingstyper"
    if label == UNKNOWN:
        return "Ukjent meldingstype"
    return KNOWN_MSG_TYPES.get(label, label)
