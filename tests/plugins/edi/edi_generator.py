"""Realistic EDI message folders with their ground truth, for the tests and the benchmark.

The folders look like what a clinic's EPJ and message server leave behind:

==================  ========  ==============================================================
folder              config    holds
==================  ========  ==============================================================
``ut/``             out       our MsgHead messages (several types; Ack J or N)
``inn/``            in        incoming MsgHeads, AppRecs for our messages (OK, rejected, partial,
                              unknown status, late), ebXML Acknowledgments and MessageErrors,
                              receipts for messages we never sent, and broken files
``kvittering-ut/``  out       our AppRecs for incoming messages (E21 for mis-addressed ones)
``ebxml-ut/``       out       ebXML envelopes: SOAP with the MsgHead in the Body, and MIME files
                              whose payload is PKCS#7-encrypted
``arkiv/``          archive   sent messages moved here, and copies of some still in ``ut/``
==================  ========  ==============================================================

File modification times are set to when each file "appeared", and nothing is dated after ``now``:
a receipt due after ``now`` is simply not there yet.

The truth is computed here from the generator's own decisions (which message got which receipt,
when), never by running the plugin, so a test comparing the two tests the plugin. Timing follows
the plugin's documented rule: a receipt is late when it appeared more than the timeout after the
message did.

Importable (``from edi_generator import generate``) and a CLI::

    python tests/plugins/edi/edi_generator.py /tmp/edi --messages 100000 --seed 1

The fictitious patient fields contain ``PATIENT_MARKER`` so tests can prove it never leaks.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")
OWN_HER = ("1000001", "1000002")  # institution, department
FOREIGN_HER = "9999999"
PARTNERS = ("2000001", "2000002", "2000003", "2000004", "2000005")
PATIENT_MARKER = "PASIENTHEMMELIG"

NS_MH = "http://www.kith.no/xmlstds/msghead/2006-05-24"
NS_AR = {"1.0": "http://www.kith.no/xmlstds/apprec/2004-11-21", "1.1": "http://www.kith.no/xmlstds/apprec/2012-02-15"}
MIG_AR = {"1.0": "1.0 2004-11-21", "1.1": "v1.1 2012-02-15"}
OID_8221 = "2.16.578.1.12.4.1.1.8221"
OID_8223 = "2.16.578.1.12.4.1.1.8223"

# (MsgInfo/Type as written, expected label, weight of outgoing messages)
OUT_TYPES = (
    ("DIALOG_HELSEFAGLIG", "DIALOG_HELSEFAGLIG", 25),
    ("HENVISNING", "HENVISNING", 18),
    ("EPIKRISE", "EPIKRISE", 10),
    ("LOM", "LOM", 12),
    ("SYKMELD", "SYKMELD", 10),
    ("DIALOG_FORESPORSEL", "DIALOG_FORESPORSEL", 8),
    ("REKVISISJON", "REKVISISJON", 8),
    ("KOMMUNE_SPESIAL_X", "other", 4),
    (" dialog_notat ", "DIALOG_NOTAT", 5),  # stray whitespace and case
)
IN_TYPES = (("SVAR_LAB", "SVAR_LAB"), ("EPIKRISE", "EPIKRISE"), ("DIALOG_SVAR", "DIALOG_SVAR"), ("SVAR_RADIOLOGI", "SVAR_RADIOLOGI"))
REJECT_CODES = (("E10", False), ("E21", True), ("E20", True), ("E35", False), ("T02", False), ("S01", False), ("X99", False))
EBMS_ERRORS = (("DeliveryFailure", ""), ("ValueNotRecognized", "xpointer(//MessageHeader/To/PartyId)"),
               ("SecurityFailure", ""), ("T01", "NorwegianAmendment"))

TRANSPORT_TIMEOUT = 4 * 3600
APPLICATION_TIMEOUT = 24 * 3600
ALARM = 72 * 3600
FORGET = 14 * 86400


@dataclass
class Config:
    """What to generate. ``messages`` is the number of our outgoing MsgHead messages; the rest
    (receipts, incoming, envelopes, broken files) scales with it."""

    messages: int = 200
    seed: int = 1
    now: datetime = datetime(2026, 11, 25, 11, 0, tzinfo=timezone.utc)  # Wednesday 12:00 in Oslo
    per_day: int = 1500
    envelope_share: float = 0.2
    broken: bool = True

    @property
    def span(self) -> float:
        return max(2.0, self.messages / self.per_day) * 86400


@dataclass
class Truth:
    """Expected metric values after one full index at ``now`` (labels as tuples, as JSON lists)."""

    now: float
    messages: Counter[tuple[str, str]] = field(default_factory=Counter)
    receipts: Counter[tuple[str, str]] = field(default_factory=Counter)
    receipt_errors: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    transport_errors: Counter[tuple[str]] = field(default_factory=Counter)
    misaddressed: Counter[tuple[str, str]] = field(default_factory=Counter)
    unacknowledged_total: Counter[tuple[str, str]] = field(default_factory=Counter)
    unacknowledged: Counter[tuple[str, str]] = field(default_factory=Counter)
    alarm: Counter[tuple[str, str]] = field(default_factory=Counter)
    oldest: dict[tuple[str, str], float] = field(default_factory=dict)
    unmatched: Counter[tuple[str]] = field(default_factory=Counter)
    files: Counter[tuple[str]] = field(default_factory=Counter)
    timestamps: Counter[tuple[str]] = field(default_factory=Counter)
    rejected_ids: list[str] = field(default_factory=list)
    last_traffic: dict[str, float] = field(default_factory=dict)
    file_count: int = 0

    COUNTERS = ("messages", "receipts", "receipt_errors", "transport_errors", "misaddressed", "unacknowledged_total",
                "unacknowledged", "alarm", "unmatched", "files", "timestamps")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"now": self.now, "file_count": self.file_count, "rejected_ids": sorted(self.rejected_ids),
                               "last_traffic": self.last_traffic}
        for name in self.COUNTERS:
            out[name] = sorted([list(k), v] for k, v in getattr(self, name).items())
        out["oldest"] = sorted([list(k), v] for k, v in self.oldest.items())
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Truth:
        truth = cls(now=data["now"], file_count=data["file_count"], rejected_ids=data["rejected_ids"],
                    last_traffic=data["last_traffic"])
        for name in cls.COUNTERS:
            setattr(truth, name, Counter({tuple(k): v for k, v in data[name]}))
        truth.oldest = {tuple(k): v for k, v in data["oldest"]}  # type: ignore[misc]
        return truth


FOLDERS = (
    ("ut", "out", "messages"),
    ("inn", "in", "receipts"),
    ("kvittering-ut", "out", "messages"),
    ("ebxml-ut", "out", "messages"),
    ("arkiv", "out", "archive"),
)


def settings_for(root: Path, **changes: Any) -> Any:
    """The collector settings for a generated tree."""
    from normagent.plugins.edi.settings import EdiFolder, EdiSettings

    folders = tuple(EdiFolder(path=root / name, direction=d, role=r) for name, d, r in FOLDERS)  # type: ignore[arg-type]
    return EdiSettings(folders=folders, own_her_ids=OWN_HER, **changes)


# --------------------------------------------------------------------------------------------
# XML writers


def _ident(her: str, *, quirk: bool) -> str:
    v = " HER" if quirk else "HER"
    return f'<{{p}}Ident><{{p}}Id>{her}</{{p}}Id><{{p}}TypeId V="{v}" DN="HER-id" S="2.16.578.1.12.4.1.1.9051"/></{{p}}Ident>'


def msghead(
    msg_id: str, msg_type: str, gen_date: str, sender: str, receiver: str, *, ack: str = "J", prefix: str = "",
    encoding: str = "UTF-8", bom: bool = False, her_quirk: bool = False, body_size: int = 0, mig: str = "v1.2 2006-05-24",
    ns: str = NS_MH,
) -> bytes:
    """A Hodemelding with a fictitious patient and a Dialogmelding body (``body_size`` adds base64)."""
    p = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="{ns}"' if prefix else f'xmlns="{ns}"'
    gen = f"<{{p}}GenDate>{gen_date}</{{p}}GenDate>" if gen_date else ""
    attachment = ""
    if body_size:
        attachment = (
            "<{p}Document><{p}RefDoc><{p}MsgType V=\"A\" DN=\"Vedlegg\"/><{p}MimeType>application/pdf</{p}MimeType>"
            "<{p}Content><Base64Container xmlns=\"http://www.kith.no/xmlstds/base64container\">"
            + "QUFB" * (body_size // 4) + "</Base64Container></{p}Content></{p}RefDoc></{p}Document>"
        )
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        f"<{{p}}MsgHead {xmlns}>\n"
        "  <{p}MsgInfo>\n"
        f'    <{{p}}Type V="{msg_type}" DN="Melding"/>\n'
        f"    <{{p}}MIGversion>{mig}</{{p}}MIGversion>\n"
        f"    {gen}\n"
        f"    <{{p}}MsgId>{msg_id}</{{p}}MsgId>\n"
        f'    <{{p}}Ack V="{ack}" DN="{"Ja" if ack == "J" else "Nei"}"/>\n'
        "    <{p}Sender><{p}Organisation><{p}OrganisationName>Fjellbygda legekontor</{p}OrganisationName>"
        + _ident(sender, quirk=her_quirk)
        + "</{p}Organisation></{p}Sender>\n"
        "    <{p}Receiver><{p}Organisation><{p}OrganisationName>Mottaker HF</{p}OrganisationName>"
        + _ident(receiver, quirk=False)
        + "<{p}Organisation><{p}OrganisationName>Avdeling for sjeldne ting</{p}OrganisationName>"
        + _ident(receiver + "9", quirk=False)
        + "</{p}Organisation></{p}Organisation></{p}Receiver>\n"
        f"    <{{p}}Patient><{{p}}FamilyName>{PATIENT_MARKER}-Ærlig</{{p}}FamilyName><{{p}}GivenName>Kåre Øyvind</{{p}}GivenName>"
        f'<{{p}}Ident><{{p}}Id>{PATIENT_MARKER}01017012345</{{p}}Id><{{p}}TypeId V="FNR" DN="Fødselsnummer"/></{{p}}Ident></{{p}}Patient>\n'
        "  </{p}MsgInfo>\n"
        "  <{p}Document><{p}RefDoc><{p}MsgType V=\"XML\" DN=\"XML-instans\"/><{p}Content>"
        f'<Dialogmelding xmlns="http://www.kith.no/xmlstds/dialog/2013-01-23"><Notat><TekstNotatInnhold>{PATIENT_MARKER}: '
        "pasienten har vondt i foten, æøå.</TekstNotatInnhold></Notat></Dialogmelding>"
        "</{p}Content></{p}RefDoc></{p}Document>\n" + attachment + "</{p}MsgHead>\n"
    ).replace("{p}", p)
    data = text.encode("iso-8859-1" if encoding.upper() == "ISO-8859-1" else "utf-8")
    return (b"\xef\xbb\xbf" + data) if bom else data


def apprec(
    apprec_id: str, original_id: str, original_type: str, status: str, gen_date: str, sender: str, receiver: str, *,
    errors: tuple[tuple[str, str], ...] = (), version: str = "1.0", prefix: str = "", encoding: str = "UTF-8",
    swapped: bool = False, her_quirk: bool = False,
) -> bytes:
    p = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="{NS_AR[version]}"' if prefix else f'xmlns="{NS_AR[version]}"'
    error_xml = "".join(
        (f'<{{p}}Error V="{oid}" S="{code}" DN="Feil" OT="{PATIENT_MARKER} fritekst"/>' if swapped else
         f'<{{p}}Error S="{oid}" V="{code}" DN="Feil" OT="{PATIENT_MARKER} fritekst"/>')
        for code, oid in errors
    )
    v = " HER" if her_quirk else "HER"
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        f"<{{p}}AppRec {xmlns}>\n"
        '  <{p}MsgType V="APPREC" DN="Applikasjonskvittering"/>\n'
        f"  <{{p}}MIGversion>{MIG_AR[version]}</{{p}}MIGversion>\n"
        f"  <{{p}}GenDate>{gen_date}</{{p}}GenDate>\n"
        f"  <{{p}}Id>{apprec_id}</{{p}}Id>\n"
        f'  <{{p}}Sender><{{p}}HCP><{{p}}Inst><{{p}}Name>Sender Ås</{{p}}Name><{{p}}Id>{sender}</{{p}}Id><{{p}}TypeId V="{v}" DN="HER-id"/>'
        f'<{{p}}HCPerson><{{p}}Name>Lege Løvås</{{p}}Name><{{p}}Id>{sender}7</{{p}}Id><{{p}}TypeId V="HER" DN="HER-id"/></{{p}}HCPerson>'
        "</{p}Inst></{p}HCP></{p}Sender>\n"
        f'  <{{p}}Receiver><{{p}}HCP><{{p}}Inst><{{p}}Name>Mottaker</{{p}}Name><{{p}}Id>{receiver}</{{p}}Id><{{p}}TypeId V="HER" DN="HER-id"/>'
        "</{p}Inst></{p}HCP></{p}Receiver>\n"
        f'  <{{p}}Status V="{status}" DN="Status"/>\n'
        f"  {error_xml}\n"
        f'  <{{p}}OriginalMsgId><{{p}}MsgType V="{original_type}" DN="Melding"/><{{p}}IssueDate>{gen_date}</{{p}}IssueDate>'
        f"<{{p}}Id>{original_id}</{{p}}Id></{{p}}OriginalMsgId>\n"
        "</{p}AppRec>\n"
    ).replace("{p}", p)
    return text.encode("iso-8859-1" if encoding.upper() == "ISO-8859-1" else "utf-8")


SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
EB = "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"


def _eb_header(message_id: str, action: str, service: str, from_her: str, to_her: str, timestamp: str, ref: str = "") -> str:
    ref_xml = f"<eb:RefToMessageId>{ref}</eb:RefToMessageId>" if ref else ""
    return (
        '<eb:MessageHeader SOAP:mustUnderstand="1" eb:version="2.0">'
        f'<eb:From><eb:PartyId eb:type="HER">{from_her}</eb:PartyId><eb:Role>Behandler</eb:Role></eb:From>'
        f'<eb:To><eb:PartyId eb:type="HER">{to_her}</eb:PartyId><eb:Role>Mottaker</eb:Role></eb:To>'
        f"<eb:CPAId>nhn:1234</eb:CPAId><eb:ConversationId>{uuid.uuid4()}</eb:ConversationId>"
        f"<eb:Service>{service}</eb:Service><eb:Action>{action}</eb:Action>"
        f"<eb:MessageData><eb:MessageId>{message_id}</eb:MessageId><eb:Timestamp>{timestamp}</eb:Timestamp>{ref_xml}</eb:MessageData>"
        "</eb:MessageHeader>"
    )


def envelope(message_id: str, action: str, timestamp: str, payload: bytes | None) -> bytes:
    """A SOAP/ebXML business message; ``payload`` (a MsgHead without XML declaration) in the Body."""
    body = payload.split(b"?>", 1)[1].decode("utf-8") if payload else (
        '<eb:Manifest eb:version="2.0"><eb:Reference xlink:href="cid:payload-1" xlink:type="simple"/></eb:Manifest>'
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<SOAP:Envelope xmlns:SOAP="{SOAP}" xmlns:eb="{EB}" '
        'xmlns:xlink="http://www.w3.org/1999/xlink"><SOAP:Header>'
        + _eb_header(message_id, action, "S-" + action, OWN_HER[0], PARTNERS[0], timestamp)
        + '<eb:AckRequested SOAP:mustUnderstand="1" eb:version="2.0" eb:signed="true"/>'
        + f"</SOAP:Header><SOAP:Body>{body}</SOAP:Body></SOAP:Envelope>\n"
    ).encode("utf-8")


def acknowledgment(message_id: str, ref: str, timestamp: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<SOAP:Envelope xmlns:SOAP="{SOAP}" xmlns:eb="{EB}"><SOAP:Header>'
        + _eb_header(message_id, "Acknowledgment", "urn:oasis:names:tc:ebxml-msg:service", PARTNERS[0], OWN_HER[0], timestamp, ref)
        + f'<eb:Acknowledgment eb:version="2.0" SOAP:mustUnderstand="1"><eb:Timestamp>{timestamp}</eb:Timestamp>'
        f"<eb:RefToMessageId>{ref}</eb:RefToMessageId></eb:Acknowledgment></SOAP:Header><SOAP:Body/></SOAP:Envelope>\n"
    ).encode("utf-8")


def message_error(message_id: str, ref: str, timestamp: str, code: str, location: str, *, unprefixed: bool = False) -> bytes:
    attrs = (f'errorCode="{code}" severity="Error" location="{location}"' if unprefixed else
             f'eb:errorCode="{code}" eb:severity="Error" eb:location="{location}"')
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<SOAP:Envelope xmlns:SOAP="{SOAP}" xmlns:eb="{EB}"><SOAP:Header>'
        + _eb_header(message_id, "MessageError", "urn:oasis:names:tc:ebxml-msg:service", PARTNERS[0], OWN_HER[0], timestamp, ref)
        + '<eb:ErrorList SOAP:mustUnderstand="1" eb:highestSeverity="Error" eb:version="2.0">'
        f'<eb:Error {attrs}><eb:Description xml:lang="no">Feil</eb:Description></eb:Error>'
        "</eb:ErrorList></SOAP:Header><SOAP:Body/></SOAP:Envelope>\n"
    ).encode("utf-8")


def mime_encrypted(message_id: str, action: str, timestamp: str, rng: random.Random) -> bytes:
    """ebXML over SMTP as stored: SOAP part plus a PKCS#7-encrypted payload part."""
    soap = envelope(message_id, action, timestamp, None).decode("utf-8")
    secret = base64.encodebytes(bytes(rng.getrandbits(8) for _ in range(600))).decode("ascii")
    boundary = f"----=_Part_{rng.randrange(10**9)}"
    return (
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/related; boundary="{boundary}"; type="text/xml"; start="<soap>"\r\n'
        "Subject: ebXML\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/xml; charset=UTF-8\r\nContent-ID: <soap>\r\n\r\n{soap}\r\n"
        f"--{boundary}\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n"
        f"Content-Transfer-Encoding: base64\r\nContent-ID: <payload-1>\r\n\r\n{secret}\r\n"
        f"--{boundary}--\r\n"
    ).encode("ascii")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"><MsgInfo><MsgId>&lol9;</MsgId></MsgInfo></MsgHead>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE MsgHead [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"><MsgInfo><MsgId>&xxe;</MsgId></MsgInfo></MsgHead>
"""
PKCS7_DER = bytes.fromhex("3082012306092a864886f70d010703a0820114") + bytes(range(200))


# --------------------------------------------------------------------------------------------
# the scenario


def _iso(moment: float, rng: random.Random, truth: Truth | None, count: bool = True) -> str:
    """A GenDate in one of the forms seen in the wild, counted by kind in ``truth``."""
    roll = rng.random()
    dt = datetime.fromtimestamp(moment, timezone.utc)
    if roll < 0.65:
        text, kind = dt.astimezone(OSLO).replace(tzinfo=None).isoformat(timespec="seconds"), "no_zone"
    elif roll < 0.85:
        text, kind = dt.astimezone(timezone(timedelta(hours=3))).isoformat(timespec="seconds"), "with_zone"
    elif roll < 0.97:
        text, kind = dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z", "with_zone"
    elif roll < 0.99:
        text, kind = dt.strftime("%d.%m.%Y %H:%M"), "unparseable"
    else:
        text, kind = "", "missing"
    if truth is not None and count:
        truth.timestamps[(kind,)] += 1
    return text


class _Writer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0
        for name, _, _ in FOLDERS:
            (root / name).mkdir(parents=True, exist_ok=True)

    def write(self, folder: str, name: str, data: bytes, moment: float) -> Path:
        path = self.root / folder / name
        path.write_bytes(data)
        os.utime(path, (moment, moment))
        self.count += 1
        return path


def _style(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    return {
        "prefix": "ns9" if roll < 0.1 else "",
        "encoding": "ISO-8859-1" if 0.1 <= roll < 0.2 else "UTF-8",
        "her_quirk": rng.random() < 0.1,
    }


def generate(root: Path, config: Config | None = None) -> Truth:
    """Write a message tree under ``root`` and return its ground truth at ``config.now``."""
    config = config or Config()
    rng = random.Random(config.seed)
    now = config.now.timestamp()
    truth = Truth(now=now)
    out = _Writer(root)
    start = now - config.span
    types = [t for t in OUT_TYPES for _ in range(t[2])]
    last = {"in": 0.0, "out": 0.0}

    def traffic(direction: str, moment: float) -> None:
        last[direction] = max(last[direction], moment)

    def file(outcome: str) -> None:
        truth.files[(outcome,)] += 1

    def waiting(label: str, receipt: str, sent: float, arrived: float | None, limit: float) -> None:
        """Apply the timing rule to one expected receipt."""
        if arrived is not None and arrived <= now:
            if arrived - sent > limit:
                truth.unacknowledged_total[(label, receipt)] += 1
            return
        age = now - sent
        if age > limit:
            truth.unacknowledged_total[(label, receipt)] += 1
        if age <= FORGET:
            truth.oldest[(label, receipt)] = max(truth.oldest.get((label, receipt), 0.0), age)
            if age > limit:
                truth.unacknowledged[(label, receipt)] += 1
            if age > ALARM:
                truth.alarm[(label, receipt)] += 1

    # ---- our outgoing messages, their application receipts and (some) envelopes
    times = sorted(rng.uniform(start, now - 60) for _ in range(config.messages))
    for sent in times:
        raw, label, _ = rng.choice(types)
        msg_id = str(uuid.uuid4())
        ack = "N" if rng.random() < 0.05 else "J"
        style = _style(rng)
        data = msghead(msg_id, raw, _iso(sent, rng, truth), OWN_HER[0], rng.choice(PARTNERS), ack=ack, **style)
        place = rng.random()
        with_envelope = rng.random() < config.envelope_share
        if place < 0.03:
            # Already moved to the archive. The archive is read after the other folders, so when
            # the envelope (with the same MsgHead inside) exists, the archive file is the copy.
            out.write("arkiv", msg_id + ".xml", data, sent)
            file("copy" if with_envelope else "ok")
        else:
            out.write("ut", msg_id + ".xml", data, sent)
            file("ok")
            if place > 0.98:  # an archive copy of a file still in the outbox
                out.write("arkiv", msg_id + ".xml", data, sent)
                file("copy")
        truth.messages[("out", label)] += 1
        traffic("out", sent)
        transport_failed = False
        if with_envelope:
            transport_failed = _envelope_leg(out, rng, truth, msg_id, raw, label, data, sent, now, traffic, file, waiting)
        if ack == "N":
            continue
        # An archived message that also went out in an envelope is first read from the envelope
        # (the archive is read last), written a second after the message: it was sent then.
        seen = sent + 1 if place < 0.03 and with_envelope else sent
        if transport_failed:
            # The message never reached the receiver: no application receipt will come.
            waiting(label, "application", seen, None, APPLICATION_TIMEOUT)
            continue
        _application_receipt(out, rng, truth, msg_id, raw, label, seen, now, traffic, file, waiting)

    # ---- encrypted ebXML messages (MIME, PKCS#7 payload): counted by eb:Action
    for _ in range(max(1, config.messages // 50)):
        sent = rng.uniform(start, now - 60)
        raw, label, _ = rng.choice(types)
        action = raw.strip().upper()
        env_id = f"{uuid.uuid4()}@edi.example"
        out.write("ebxml-ut", env_id.split("@")[0] + ".eml", mime_encrypted(env_id, action, _iso(sent, rng, None), rng), sent)
        file("ok")
        truth.messages[("out", label)] += 1
        traffic("out", sent)
        _transport_receipt(out, rng, truth, env_id, label, sent, now, traffic, file, waiting)

    # ---- incoming messages and our receipts for them
    for _ in range(max(3, config.messages * 3 // 10)):
        received = rng.uniform(start, now - 60)
        raw, label = rng.choice(IN_TYPES)
        msg_id = str(uuid.uuid4())
        foreign = rng.random() < 0.02
        receiver = FOREIGN_HER if foreign else OWN_HER[rng.randrange(2)]
        out.write("inn", msg_id + ".xml", msghead(msg_id, raw, _iso(received, rng, truth), rng.choice(PARTNERS), receiver, **_style(rng)), received)
        file("ok")
        truth.messages[("in", label)] += 1
        traffic("in", received)
        if foreign:
            truth.misaddressed[("in", label)] += 1
        answered = received + rng.uniform(5, 600)
        if answered <= now:
            status, errors = ("2", (("E21", OID_8221),)) if foreign else ("1", ())
            out.write("kvittering-ut", str(uuid.uuid4()) + ".xml",
                      apprec(str(uuid.uuid4()), msg_id, raw, status, _iso(answered, rng, truth), OWN_HER[0], rng.choice(PARTNERS), errors=errors),
                      answered)
            file("ok")
            truth.messages[("out", "APPREC")] += 1
            traffic("out", answered)

    # ---- receipts for messages we never sent (or whose files are not in the folders)
    for i in range(max(2, config.messages // 200)):
        arrived = now - rng.uniform(60, 30 * 86400)
        raw, label, _ = rng.choice(types)
        if i % 2 == 0:
            out.write("inn", str(uuid.uuid4()) + ".xml",
                      apprec(str(uuid.uuid4()), str(uuid.uuid4()), raw, "1", _iso(arrived, rng, truth), rng.choice(PARTNERS), OWN_HER[0]),
                      arrived)
            truth.messages[("in", "APPREC")] += 1
            truth.receipts[(label, "1")] += 1
            receipt = "application"
        else:
            out.write("inn", str(uuid.uuid4()) + ".xml", acknowledgment(str(uuid.uuid4()), f"{uuid.uuid4()}@edi.example", _iso(arrived, rng, None)), arrived)
            receipt = "transport"
        file("ok")
        traffic("in", arrived)
        if now - arrived <= FORGET:
            truth.unmatched[(receipt,)] += 1

    if config.broken:
        _broken_files(out, rng, truth, start, now, traffic, file)
    truth.file_count = out.count
    truth.last_traffic = dict(last)
    return truth


def _application_receipt(out: _Writer, rng: random.Random, truth: Truth, msg_id: str, raw: str, label: str, sent: float,
                         now: float, traffic: Any, file: Any, waiting: Any) -> None:
    roll = rng.random()
    errors: tuple[tuple[str, str], ...] = ()
    if roll < 0.78:
        status, delay = "1", rng.uniform(60, 6 * 3600)
    elif roll < 0.84:
        code, misaddressed = rng.choice(REJECT_CODES)
        status, delay, errors = "2", rng.uniform(60, 2 * 3600), ((code, OID_8221),)
        if rng.random() < 0.2:
            errors += (("X99", OID_8221),)
    elif roll < 0.87:
        status, delay = "3", rng.uniform(60, 6 * 3600)
        errors = (("07", OID_8223), ("16", OID_8223)) if label == "LOM" else (("E36", OID_8221),)
    elif roll < 0.88:
        status, delay = "73", rng.uniform(60, 6 * 3600)
    elif roll < 0.92:
        status, delay = "1", rng.uniform(25 * 3600, 60 * 3600)  # late
    else:
        waiting(label, "application", sent, None, APPLICATION_TIMEOUT)  # never comes
        return
    arrived = sent + delay
    waiting(label, "application", sent, arrived, APPLICATION_TIMEOUT)
    if arrived > now:
        return
    apprec_id = str(uuid.uuid4())
    swapped = bool(errors) and rng.random() < 0.1
    out.write("inn", apprec_id + ".xml",
              apprec(apprec_id, msg_id, raw, status, _iso(arrived, rng, truth), rng.choice(PARTNERS), OWN_HER[0], errors=errors,
                     version=rng.choice(("1.0", "1.1")), swapped=swapped, **_style(rng)),
              arrived)
    file("ok")
    traffic("in", arrived)
    truth.messages[("in", "APPREC")] += 1
    status_label = status if status in ("1", "2", "3") else "unknown"
    truth.receipts[(label, status_label)] += 1
    for code, oid in errors:
        truth.receipt_errors[(label, oid.rsplit(".", 1)[1], code)] += 1
    if any(code in ("E20", "E21") for code, _ in errors):
        truth.misaddressed[("out", label)] += 1
    if status_label in ("2", "3"):
        truth.rejected_ids.append(apprec_id)


def _envelope_leg(out: _Writer, rng: random.Random, truth: Truth, msg_id: str, raw: str, label: str, data: bytes,
                  sent: float, now: float, traffic: Any, file: Any, waiting: Any) -> bool:
    """The ebXML envelope of a sent message (MsgHead in the Body) and its transport receipt.

    Returns True if the transport failed (a MessageError came back)."""
    env_id = f"{uuid.uuid4()}@edi.example"
    payload = data.removeprefix(b"\xef\xbb\xbf")
    moment = sent + 1
    out.write("ebxml-ut", env_id.split("@")[0] + ".xml", envelope(env_id, raw.strip().upper(), _iso(moment, rng, None),
                                                                 _reencode(payload)), moment)
    file("ok")
    traffic("out", moment)
    return _transport_receipt(out, rng, truth, env_id, label, moment, now, traffic, file, waiting)


def _reencode(payload: bytes) -> bytes:
    """A MsgHead re-declared as UTF-8 (an envelope is one document with one encoding)."""
    if b'encoding="ISO-8859-1"' in payload:
        return payload.decode("iso-8859-1").replace('encoding="ISO-8859-1"', 'encoding="UTF-8"').encode("utf-8")
    return payload


def _transport_receipt(out: _Writer, rng: random.Random, truth: Truth, env_id: str, label: str, sent: float, now: float,
                       traffic: Any, file: Any, waiting: Any) -> bool:
    roll = rng.random()
    if roll < 0.85:
        arrived, error = sent + rng.uniform(10, 600), None
    elif roll < 0.90:
        arrived, error = sent + rng.uniform(10, 600), rng.choice(EBMS_ERRORS)
    elif roll < 0.93:
        arrived, error = sent + rng.uniform(5 * 3600, 40 * 3600), None  # late
    else:
        waiting(label, "transport", sent, None, TRANSPORT_TIMEOUT)
        return False
    waiting(label, "transport", sent, arrived, TRANSPORT_TIMEOUT)
    if arrived > now:
        return error is not None
    signal_id = f"{uuid.uuid4()}@edi.example"
    if error is None:
        data = acknowledgment(signal_id, env_id, _iso(arrived, rng, None))
    else:
        code, location = error
        data = message_error(signal_id, env_id, _iso(arrived, rng, None), code, location, unprefixed=code == "T01")
        truth.transport_errors[(code,)] += 1
        if location and "To" in location:
            truth.misaddressed[("out", label)] += 1
    out.write("inn", signal_id.split("@")[0] + ".xml", data, arrived)
    file("ok")
    traffic("in", arrived)
    return error is not None


def _broken_files(out: _Writer, rng: random.Random, truth: Truth, start: float, now: float, traffic: Any, file: Any) -> None:
    def old() -> float:
        return rng.uniform(start, now - 3600)

    good = msghead(str(uuid.uuid4()), "EPIKRISE", "2026-01-01T10:00:00", PARTNERS[0], OWN_HER[0])
    cases = [
        ("truncated", good[: len(good) // 3]),
        ("malformed", good.replace(b"<MsgInfo>", b"<MsgInfo><<>", 1)),
        ("empty", b""),
        ("unsafe_xml", BILLION_LAUGHS),
        ("unsafe_xml", XXE),
        ("encrypted", PKCS7_DER),
        ("unknown_namespace", good.replace(NS_MH.encode(), b"http://example.org/msghead/1999")),
        ("unknown_format", b"<html><body>ikke en melding</body></html>"),
        ("unknown_version", msghead(str(uuid.uuid4()), "EPIKRISE", "2026-01-01T10:00:00", PARTNERS[0], OWN_HER[0], mig="v1.1 2006-05-24")),
        ("incomplete", apprec(str(uuid.uuid4()), "", "EPIKRISE", "1", "2026-01-01T10:00:00", PARTNERS[0], OWN_HER[0])),
        ("unknown_format", b"Dette er en tekstfil, ikke en melding.\n"),
    ]
    for outcome, data in cases:
        moment = old()
        out.write("inn", f"{uuid.uuid4()}.xml" if outcome != "encrypted" else f"{uuid.uuid4()}.p7m", data, moment)
        file(outcome)
        if outcome == "encrypted":
            traffic("in", moment)
    # A second, different message under an id already used: counted once, the other is a duplicate id.
    dup_id = str(uuid.uuid4())
    first = old()
    out.write("inn", dup_id + ".xml", msghead(dup_id, "EPIKRISE", _iso(first, rng, truth), PARTNERS[1], OWN_HER[0]), first)
    truth.messages[("in", "EPIKRISE")] += 1
    file("ok")
    traffic("in", first)
    out.write("inn", dup_id + "-b.xml", msghead(dup_id, "DIALOG_SVAR", "2026-01-02T10:00:00", PARTNERS[1], OWN_HER[0]), first + 10)
    file("duplicate_id")


def add_traffic(root: Path, count: int, start: float, end: float, seed: int = 7) -> dict[str, Any]:
    """Write ``count`` new files (half our messages, half incoming) dated in [start, end), named
    ``new-*.xml`` so a benchmark can remove them before reusing a tree.

    Returns the truth of the addition: messages per (direction, label) and the first traffic
    time per direction.
    """
    rng = random.Random(seed)
    out = _Writer(root)
    messages: Counter[tuple[str, str]] = Counter()
    first: dict[str, float] = {}
    for i in range(count):
        moment = start + (end - start) * (i + rng.random()) / count
        msg_id = str(uuid.uuid4())
        if i % 2 == 0:
            raw, label, _ = rng.choice(OUT_TYPES)
            out.write("ut", f"new-{msg_id}.xml", msghead(msg_id, raw, "", OWN_HER[0], rng.choice(PARTNERS)), moment)
            direction = "out"
        else:
            raw, label = rng.choice(IN_TYPES)
            out.write("inn", f"new-{msg_id}.xml", msghead(msg_id, raw, "", rng.choice(PARTNERS), OWN_HER[0]), moment)
            direction = "in"
        messages[(direction, label)] += 1
        first[direction] = min(first.get(direction, moment), moment)
    return {"messages": messages, "first": first}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--now", default=Config.now.isoformat(), help="ISO time the folders end at")
    args = parser.parse_args(argv)
    config = Config(messages=args.messages, seed=args.seed, now=datetime.fromisoformat(args.now))
    truth = generate(args.root, config)
    (args.root / "truth.json").write_text(json.dumps(truth.to_json(), indent=1))
    print(f"{truth.file_count} files under {args.root}; truth in {args.root / 'truth.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
