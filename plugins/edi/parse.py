"""Pure header parsers for Norwegian health messages: bytes in, header records out.

What a file can be, recognised by its XML root element and namespace (never by file name or by
``MIGversion`` text, which varies in the wild):

- a Hodemelding (``MsgHead`` 1.2), bare or inside NAV's ``EI_fellesformat`` wrapper;
- an applikasjonskvittering (``AppRec`` 1.0 or 1.1), bare or wrapped;
- a SOAP/ebXML envelope: a business message (payload inside the SOAP Body, referenced by ``cid:``,
  or encrypted), a transport receipt (``eb:Acknowledgment``) or a transport error
  (``eb:MessageError`` with an ``eb:ErrorList``);
- a MIME file (``.eml``/``.mime``) holding such an envelope and its (usually PKCS#7-encrypted) payload;
- a PKCS#7/CMS file (``.p7m``, PEM or DER): encrypted, counted as such.

Only headers are read. The XML is fed to expat in chunks and parsing stops as soon as the header is
complete: at the end of ``MsgInfo`` (or at its ``Patient`` child, the only part after the addresses),
at the end of ``OriginalMsgId`` in an AppRec, at the end of the SOAP Header or the embedded payload's
header. Character data is kept only for the elements listed below (ids, codes, dates, HER ids);
names, addresses, patient fields and message bodies reach expat's buffer but never a Python object
of ours, and nothing parsed here is logged. ``Error/@OT`` (free text) and every ``DN`` text are
never kept: the report takes its texts from ``codes``.

Safety: any document type declaration is rejected before an entity could be declared, so a
billion-laughs or XXE file (``<!ENTITY x SYSTEM "file:///etc/passwd">``) is refused without
expansion and without opening anything; parameter entities are never parsed. Work per element is
constant and nesting deeper than ``MAX_DEPTH`` is refused (``too_deep``), so no file can cost more
than a linear pass over ``max_header_bytes``.

Speed: a whole file of at most ``CHUNK`` bytes (``parse_file_bytes``: nearly every message) is first
given to the compiled fast path (``_header.c``, built by pip where a compiler is), which reads a bare
MsgHead or AppRec or an ebXML envelope of the usual shape in a few microseconds and answers None for
anything it is not sure of (a DTD, entities, CDATA, other encodings...): expat reads those, and the
result is the same ``Parsed`` either way (tests/plugins/edi/test_edi_header_compiled.py).

Imports only the standard library (with normagent's ``dataclass``), ``values`` (the records'
decorator) and its own compiled
module where built.
"""

from __future__ import annotations

import base64
import binascii
import re
import xml.parsers.expat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

from normagent.plugins.edi.values import immutable
from normagent import dataclass

if TYPE_CHECKING:
    import email.message

NS_MSGHEAD = "http://www.kith.no/xmlstds/msghead/2006-05-24"
NS_APPREC_10 = "http://www.kith.no/xmlstds/apprec/2004-11-21"
NS_APPREC_11 = "http://www.kith.no/xmlstds/apprec/2012-02-15"
NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_EBXML = "http://www.oasis-open.org/committees/ebxml-msg/schema/msg-header-2_0.xsd"
NS_FELLESFORMAT = "http://www.trygdeetaten.no/xml/eiff/1/"

APPREC_VERSIONS = {NS_APPREC_10: "1.0", NS_APPREC_11: "1.1"}
KNOWN_ROOTS = {
    (NS_MSGHEAD, "MsgHead"),
    (NS_APPREC_10, "AppRec"),
    (NS_APPREC_11, "AppRec"),
    (NS_SOAP, "Envelope"),
    (NS_SOAP12, "Envelope"),
    (NS_FELLESFORMAT, "EI_fellesformat"),
}
KNOWN_LOCAL_ROOTS = {local for _, local in KNOWN_ROOTS}

# MIGversion texts seen for each document kind: "v1.2 2006-05-24"; "1.0 2004-11-21", "1.0 2008-11-21";
# "v1.1 2012-02-15". A missing MIGversion is tolerated (the namespace already says the version).
MIG_VERSIONS = {
    "msghead": re.compile(r"^v?1\.2(\s|$)"),
    "1.0": re.compile(r"^v?1\.0(\s|$)"),
    "1.1": re.compile(r"^v?1\.1(\s|$)"),
}

CHUNK = 64 * 1024
DEFAULT_MAX_HEADER_BYTES = 4 * 1024 * 1024
# Deepest element nesting read (the root is depth 1). A MsgHead's deepest header field is about
# 8 levels down (EI_fellesformat/MsgHead/MsgInfo/Receiver/Organisation/Organisation/Ident/Id), a
# SOAP envelope with an XML signature about 10: anything near this is not a message header.
MAX_DEPTH = 100
# Below this depth relative to a document's root no field is read (MsgHead's HER ids are the
# deepest: MsgInfo/Receiver/Organisation/Organisation/Ident/Id), so the handlers are not called.
_FIELD_DEPTH = 6

Outcome = Literal[
    "ok",
    "encrypted",
    "empty",
    "malformed",
    "truncated",
    "unsafe_xml",
    "unknown_format",
    "unknown_namespace",
    "unknown_version",
    "incomplete",
    "header_too_large",
    "too_deep",
]
# What a ``Parsed`` may hold: the parser's ``Outcome``, or ``"unreadable"``, which no parser gives:
# ``collectors.read_file`` could not read the file at all (an I/O error), so no parser ran.
ReadOutcome = Outcome | Literal["unreadable"]


# --------------------------------------------------------------------------------------------
# Records


@immutable
class MsgHeadHeader:
    """What normagent reads of a Hodemelding: ``MsgInfo`` without the patient.

    HER ids are level 1 (institution) first, then level 2 (department or person), as
    Helsenorge's ``MetadataHelper`` reads them. ``ack`` is ``Ack/@V`` (``J``, ``N`` or empty).
    """

    msg_type: str
    mig_version: str
    gen_date: str
    msg_id: str
    ack: str = ""
    ref_to_parent: str = ""
    ref_to_conversation: str = ""
    sender_her: tuple[str, ...] = ()
    receiver_her: tuple[str, ...] = ()


@immutable
class ReceiptError:
    """One ``AppRec/Error``: code and code list (OID), after undoing a swapped ``V``/``S``."""

    code: str
    code_list: str
    swapped: bool = False


@immutable
class AppRecHeader:
    """What normagent reads of an applikasjonskvittering (everything but texts)."""

    version: str  # "1.0" | "1.1"
    mig_version: str
    gen_date: str
    id: str
    status: str
    errors: tuple[ReceiptError, ...]
    original_type: str
    original_id: str
    original_issue_date: str = ""
    sender_her: tuple[str, ...] = ()
    receiver_her: tuple[str, ...] = ()


@immutable
class TransportError:
    """One ``eb:ErrorList/eb:Error`` (attributes read with or without their ``eb:`` prefix)."""

    code: str
    severity: str = ""
    location: str = ""


PayloadState = Literal["none", "readable", "encrypted", "external"]
EbxmlKind = Literal["payload", "acknowledgment", "message_error"]


@immutable
class EbxmlHeader:
    """An ebXML (ebMS 2.0) envelope: a business message leg or a transport signal.

    ``payload`` is the embedded MsgHead/AppRec header when the SOAP Body (or a MIME part) holds
    it in clear text; ``payload_state`` says why it may be missing.
    """

    kind: EbxmlKind
    message_id: str
    ref_to_message_id: str = ""
    action: str = ""
    service: str = ""
    cpa_id: str = ""
    timestamp: str = ""
    from_her: tuple[str, ...] = ()
    to_her: tuple[str, ...] = ()
    errors: tuple[TransportError, ...] = ()
    payload: MsgHeadHeader | AppRecHeader | None = None
    payload_state: PayloadState = "none"


Header: TypeAlias = "MsgHeadHeader | AppRecHeader | EbxmlHeader"

# What the compiled fast path hands back: kind ("msghead" | "apprec" | "soap"), the AppRec's version,
# the reader's fields, the HER ids of sender and receiver (level 1, level 2), the (V, S) of each
# Error, and for an envelope (else None): From and To HER ids, the (errorCode, severity, location)
# of each transport error, the signal, the payload state, the payload's kind ("" for none) and version.
ScannedSoap: TypeAlias = "tuple[list[str], list[str], list[tuple[str, str, str]], EbxmlKind, PayloadState, str, str]"
Scanned: TypeAlias = (
    "tuple[str, str, dict[str, str], list[list[str]], list[list[str]], list[tuple[str, str]], ScannedSoap | None]"
)


@immutable
class Parsed:
    """The outcome of reading one file's header.

    Attributes:
        outcome: ``"ok"`` with a ``header``, or why there is none (see ``Outcome``; ``"unreadable"``
            from ``collectors.read_file`` only).
        header: The header record for ``"ok"`` (and what was read of it for ``"unknown_version"``
            and ``"incomplete"``, for diagnostics; never counted as a message).
        detail: A short reason for the log: an expat error, the root element, never content.
        wrapper: ``"fellesformat"`` or ``"mime"`` when the document came wrapped.
        bytes_read: How many bytes were consumed before parsing stopped.
    """

    outcome: ReadOutcome
    header: Header | None = None
    detail: str = ""
    wrapper: str = ""
    bytes_read: int = 0


# --------------------------------------------------------------------------------------------
# Entry points


def parse_bytes(data: bytes, *, name: str = "", max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> Parsed:
    """Parse one file's content held in memory (tests, small files)."""
    return parse_header(_slices(data), name=name, max_header_bytes=max_header_bytes)


def parse_file_bytes(data: bytes, *, name: str = "", max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> Parsed:
    """A whole file's content of at most ``CHUNK`` bytes (one read), as ``parse_header`` reads it.

    A bare MsgHead or AppRec of the usual shape is read by the compiled fast path (``_header.c``)
    where it was built; whatever that path is not sure of (it answers None) goes to expat, as does
    everything where it was not built. Both give the same ``Parsed``.
    """
    if _SCAN is not None and len(data) <= CHUNK and (data[:1] == b"<" or data[:4] == UTF8_BOM + b"<"):
        found = _SCAN(data)
        if found is not None:
            return _scanned(found, len(data))
    return parse_bytes(data, name=name, max_header_bytes=max_header_bytes)


def _scanned(found: Scanned, consumed: int) -> Parsed:
    """The ``Parsed`` of what the compiled scan read, as ``_HeaderReader.result`` makes it."""
    kind, version, fields, sender_her, receiver_her, errors, soap = found
    receipt_errors = [_receipt_error(v, s) for v, s in errors]
    if soap is None:
        return check_document(_document(kind, version, fields, sender_her, receiver_her, receipt_errors), "", consumed)
    from_her, to_her, transport_errors, signal, payload_state, nested, nested_version = soap
    payload = _document(nested, nested_version, fields, sender_her, receiver_her, receipt_errors) if nested else None
    return _ebxml_parsed(
        fields, signal, from_her, to_her,
        [TransportError(code.strip(), severity.strip(), location.strip()) for code, severity, location in transport_errors],
        payload, payload_state, "", consumed,
    )


def parse_header(
    chunks: Iterable[bytes], *, name: str = "", max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
) -> Parsed:
    """Recognise a file and read its header, consuming only as many chunks as the header needs.

    Args:
        chunks: The file's bytes in order (a reader yields 64 KiB at a time); iteration stops as
            soon as the header is complete, so a 50 MB message costs one chunk.
        name: The file name, used only for the ``.p7m`` hint when the content is not recognised.
        max_header_bytes: Give up (``"header_too_large"``) if the header is not complete after
            this many bytes.
    """
    stream = _Stream(iter(chunks))
    # Blank lines before the content (some writers pad; 600 of them hid a valid MsgHead) are
    # dropped: an XML declaration must be the first thing expat sees, a MIME header block the first
    # line. They count against ``max_header_bytes``.
    blank = stream.skip_blank(max_header_bytes)
    if blank is None:
        return Parsed("empty", detail="no content", bytes_read=stream.consumed)
    if blank > max_header_bytes:
        return Parsed("header_too_large", detail=f"only blank lines in the first {blank} bytes", bytes_read=stream.consumed)
    max_header_bytes -= blank
    head = stream.peek(512)
    sniff = head[3:] if head.startswith(UTF8_BOM) else head
    sniff = sniff.lstrip()
    if _is_pkcs7(sniff):
        return Parsed("encrypted", detail="PKCS#7/CMS content", bytes_read=stream.consumed)
    if sniff.startswith(b"<") or head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _parse_xml(stream, max_header_bytes)
    if _looks_like_mime(sniff):
        return _parse_mime(stream, max_header_bytes)
    if name.lower().endswith((".p7m", ".p7s", ".p7c", ".p7", ".enc")):
        return Parsed("encrypted", detail="encrypted file (by name)", bytes_read=stream.consumed)
    return Parsed("unknown_format", detail="neither XML, MIME nor PKCS#7", bytes_read=stream.consumed)


def _slices(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), CHUNK):
        yield bytes(view[start : start + CHUNK])


UTF8_BOM = b"\xef\xbb\xbf"
_BLANK = b" \t\r\n"


class _Stream:
    """Chunks with a little look-ahead, counting what was consumed."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""
        self.consumed = 0

    def peek(self, size: int) -> bytes:
        while len(self._pending) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
            self.consumed += len(chunk)
        return self._pending[:size]

    def skip_blank(self, limit: int) -> int | None:
        """Drop ASCII blanks at the start (after a UTF-8 byte order mark, which is kept).

        Returns:
            How many bytes were dropped (more than ``limit`` when it gave up), or None if the
            stream holds nothing else.
        """
        bom = b""
        if self.peek(3).startswith(UTF8_BOM):
            bom, self._pending = UTF8_BOM, self._pending[3:]
        dropped = 0
        while True:
            rest = self._pending.lstrip(_BLANK)
            dropped += len(self._pending) - len(rest)
            self._pending = rest
            if rest or dropped > limit:
                break
            chunk = next(self._chunks, None)
            if chunk is None:
                return None
            self.consumed += len(chunk)
            self._pending = chunk
        self._pending = bom + self._pending
        return dropped

    def __iter__(self) -> Iterator[bytes]:
        if self._pending:
            pending, self._pending = self._pending, b""
            yield pending
        for chunk in self._chunks:
            self.consumed += len(chunk)
            yield chunk

    def read_up_to(self, limit: int) -> tuple[bytes, bool]:
        """Everything up to ``limit`` bytes; the flag says the stream ended within the limit."""
        parts = [self._pending]
        size = len(self._pending)
        self._pending = b""
        while size < limit:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b"".join(parts), True
            self.consumed += len(chunk)
            parts.append(chunk)
            size += len(chunk)
        data = b"".join(parts)
        return data[:limit], False


_PKCS7_OID = bytes.fromhex("06092a864886f70d0107")  # 1.2.840.113549.1.7 (PKCS#7 content types)


def _is_pkcs7(head: bytes) -> bool:
    if head.startswith((b"-----BEGIN PKCS7-----", b"-----BEGIN CMS-----", b"-----BEGIN PKCS #7")):
        return True
    return head[:1] == b"\x30" and _PKCS7_OID in head[:64]


_MIME_FIRST_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]{1,40}:[ \t]")


def _looks_like_mime(head: bytes) -> bool:
    if not _MIME_FIRST_LINE.match(head):
        return False
    end = re.search(rb"\r?\n\r?\n", head)
    headers = head[: end.start()] if end else head
    return b"content-type:" in headers.lower()


# --------------------------------------------------------------------------------------------
# XML


class _Stop(Exception):
    """The header is complete: stop reading."""


class _Reject(Exception):
    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


def _attr(attrs: dict[str, str], key: str) -> str:
    """An attribute by local name, so ``eb:type`` and ``type`` read alike (the last one written wins)."""
    value = ""
    suffix = " " + key
    for name, text in attrs.items():
        if name == key or name.endswith(suffix):
            value = text
    return value


def _attrs(attrs: dict[str, str]) -> dict[str, str]:
    """Attributes by local name, so ``eb:errorCode`` and ``errorCode`` read alike."""
    return {key.rpartition(" ")[2]: value for key, value in attrs.items()}


def _parse_xml(stream: _Stream, max_header_bytes: int, wrapper: str = "") -> Parsed:
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    reader = _HeaderReader(parser)
    parser.buffer_text = True
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = reader.doctype
    parser.EntityDeclHandler = reader.entity
    parser.ExternalEntityRefHandler = reader.external_entity
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    # No CharacterDataHandler: ``_HeaderReader._want`` sets one only while a field is being read.
    fed = 0
    try:
        for chunk in stream:
            fed += len(chunk)
            parser.Parse(chunk, False)
            if fed > max_header_bytes:
                return Parsed("header_too_large", detail=f"header not complete after {fed} bytes",
                              wrapper=wrapper, bytes_read=stream.consumed)
        try:
            parser.Parse(b"", True)
        except xml.parsers.expat.ExpatError as exc:
            # An error at the very end of input: the file stops early (or is still being written).
            return Parsed("truncated", detail=_expat_detail(exc), wrapper=wrapper, bytes_read=stream.consumed)
    except _Stop:
        pass
    except _Reject as why:
        return Parsed(why.outcome, detail=why.detail, wrapper=wrapper or reader.wrapper, bytes_read=stream.consumed)
    except xml.parsers.expat.ExpatError as exc:
        return Parsed("malformed", detail=_expat_detail(exc), wrapper=wrapper, bytes_read=stream.consumed)
    except (LookupError, ValueError) as exc:  # an unknown declared encoding, a bad byte for it
        return Parsed("malformed", detail=f"encoding: {type(exc).__name__}", wrapper=wrapper, bytes_read=stream.consumed)
    return reader.result(wrapper or reader.wrapper, stream.consumed)


def _expat_detail(exc: xml.parsers.expat.ExpatError) -> str:
    return f"{xml.parsers.expat.errors.messages[exc.code]} at line {exc.lineno}, column {exc.offset}"


@dataclass(slots=True)
class _Ident:
    id: str = ""
    type: str = ""


_PARTY = {"Sender": "s", "Receiver": "r"}
_LEVEL_2 = ("Organisation", "HealthcareProfessional")
_MSGINFO_TEXT = ("MIGversion", "GenDate", "MsgId")
_CONVERSATION = ("RefToParent", "RefToConversation")
_APPREC_TEXT = ("MIGversion", "GenDate", "Id")
_HCP_LEVELS = ("Inst", "Dept", "HCPerson")
_ENVELOPE_PARTS = ("Header", "Body")
_MESSAGE_HEADER_TEXT = ("CPAId", "Service", "Action", "ConversationId")
_MESSAGE_DATA_TEXT = ("MessageId", "Timestamp", "RefToMessageId")
_PARTIES = ("From", "To")
_DOCUMENTS = ("MsgHead", "AppRec")


class _HeaderReader:
    """expat handlers that pick the header fields and stop when they are complete.

    ``stack`` holds the local names of the open elements. Each document (MsgHead, AppRec, SOAP
    Envelope) is read relative to the depth of its root (``base``), so the same code reads a bare
    MsgHead, one inside ``EI_fellesformat`` and one inside a SOAP Body.

    Cost: constant per element, and small, because every element of every message passes through
    ``start`` and ``end`` (about 50 calls per MsgHead): the handlers look at the path relative to
    the document's root by index into ``stack`` (never a copy of it; copying it on every tag made
    4 MiB of nested elements take 17 minutes), only when it is at most ``_FIELD_DEPTH`` long (no
    field is deeper), and character data reaches Python only while a field is read (``_want``
    installs the handler, the field's end removes it). Nesting deeper than ``MAX_DEPTH`` ends the
    file as ``too_deep``.
    """

    __slots__ = (
        "parser", "stack", "wrapper", "doc", "doc_depth", "nested", "nested_depth", "capture", "buffer", "fields",
        "sender_her", "receiver_her", "ident", "errors", "transport_errors", "from_her", "to_her", "party_type",
        "signal", "payload_state", "apprec_version", "payload", "base",
    )

    def __init__(self, parser: xml.parsers.expat.XMLParserType) -> None:
        self.parser = parser
        self.stack: list[str] = []
        self.wrapper = ""
        self.doc = ""  # "msghead" | "apprec" | "soap" | "fellesformat"
        self.doc_depth = 0  # len(stack) at the document's root element
        self.nested = ""  # "msghead" | "apprec" inside a SOAP Body
        self.nested_depth = 0
        self.capture: str | None = None
        self.buffer: list[str] = []
        self.fields: dict[str, str] = {}
        self.sender_her: list[list[str]] = [[], []]  # level 1, level 2
        self.receiver_her: list[list[str]] = [[], []]
        self.ident: _Ident | None = None
        self.errors: list[ReceiptError] = []
        self.transport_errors: list[TransportError] = []
        self.from_her: list[str] = []
        self.to_her: list[str] = []
        self.party_type = ""
        self.signal: EbxmlKind = "payload"
        self.payload_state: PayloadState = "none"
        self.apprec_version = ""
        self.payload: MsgHeadHeader | AppRecHeader | None = None
        self.base = 0  # len(stack) at the root of the MsgHead or AppRec being read

    # ---- safety

    def doctype(self, name: str, sysid: str | None, pubid: str | None, has_internal: int) -> None:
        raise _Reject("unsafe_xml", "document type declaration (DTD) refused")

    def entity(self, *args: object) -> None:
        raise _Reject("unsafe_xml", "entity declaration refused")

    def external_entity(self, *args: object) -> int:
        raise _Reject("unsafe_xml", "external entity reference refused")

    # ---- elements: the root, EI_fellesformat and SOAP (a MsgHead or AppRec has its own handlers)

    def start(self, name: str, attrs: dict[str, str]) -> None:
        cut = name.rfind(" ")
        local = name[cut + 1 :]
        ns = name[:cut] if cut >= 0 else ""
        stack = self.stack
        stack.append(local)
        depth = len(stack)
        if depth > MAX_DEPTH:
            raise _Reject("too_deep", f"elements nested deeper than {MAX_DEPTH} levels")
        if depth == 1:
            self._root(ns, local)
        elif self.doc == "fellesformat":
            if local in _DOCUMENTS and (ns, local) in KNOWN_ROOTS:
                self._enter(ns, local, nested=False)
        elif depth - self.doc_depth <= _FIELD_DEPTH:  # SOAP
            self._soap_start(ns, local, attrs, depth - self.doc_depth)

    def end(self, name: str) -> None:
        stack = self.stack
        depth = len(stack)
        if self.capture is not None:
            self._flush(self.capture)
        if self.doc == "soap" and depth - self.doc_depth <= _FIELD_DEPTH:
            self._soap_end(stack, self.doc_depth, depth - self.doc_depth)
        stack.pop()
        if depth == 1:
            raise _Stop

    def text(self, data: str) -> None:
        self.buffer.append(data)

    def _flush(self, capture: str) -> None:
        self.fields[capture] = "".join(self.buffer).strip()
        self.capture = None
        self.buffer = []
        self.parser.CharacterDataHandler = None

    # ---- root detection

    def _root(self, ns: str, local: str) -> None:
        if (ns, local) not in KNOWN_ROOTS:
            if local in KNOWN_LOCAL_ROOTS:
                raise _Reject("unknown_namespace", f"root {local} in namespace {ns[:80] or '(none)'}")
            raise _Reject("unknown_format", f"root element {local[:40]}")
        if local == "EI_fellesformat":
            self.doc, self.wrapper, self.doc_depth = "fellesformat", "fellesformat", 1
            return
        self._enter(ns, local, nested=False)

    def _enter(self, ns: str, local: str, *, nested: bool) -> None:
        kind = "msghead" if local == "MsgHead" else "apprec" if local == "AppRec" else "soap"
        if kind == "apprec":
            self.apprec_version = APPREC_VERSIONS[ns]
        if nested:
            self.nested, self.nested_depth = kind, len(self.stack)
        else:
            self.doc, self.doc_depth = kind, len(self.stack)
        if kind != "soap":
            # Every element from here on belongs to this document (a wrapper's or an envelope's
            # later elements come after its header, or do not matter): handlers made for it alone.
            self.base = len(self.stack)
            parser = self.parser
            if kind == "msghead":
                parser.StartElementHandler = self._start_msghead
                parser.EndElementHandler = self._end_msghead
            else:
                parser.StartElementHandler = self._start_apprec
                parser.EndElementHandler = self._end_apprec

    def _want(self, key: str) -> None:
        self.capture = key
        self.buffer = []
        self.parser.CharacterDataHandler = self.text

    # ---- MsgHead: MsgInfo only. ``n`` elements below the document's root are open.

    def _start_msghead(self, name: str, attrs: dict[str, str]) -> None:
        leaf = name[name.rfind(" ") + 1 :]
        stack = self.stack
        stack.append(leaf)
        depth = len(stack)
        if depth > MAX_DEPTH:
            raise _Reject("too_deep", f"elements nested deeper than {MAX_DEPTH} levels")
        base = self.base
        n = depth - base
        if n < 2:
            if n == 1 and leaf != "MsgInfo":
                # Document/PatientReport come after MsgInfo: if MsgInfo was missing, stop here.
                self._header_done()
            return
        if n > _FIELD_DEPTH or stack[base] != "MsgInfo":
            return
        if n == 2:
            if leaf == "Type":
                self.fields["type"] = _attr(attrs, "V")
            elif leaf == "Ack":
                self.fields["ack"] = _attr(attrs, "V")
            elif leaf in _MSGINFO_TEXT:
                self._want(leaf)
            elif leaf == "Patient":
                # The patient is MsgInfo's last child: everything we need has been read.
                self._header_done()
            return
        party = stack[base + 1]
        if party == "ConversationRef":
            if n == 3 and leaf in _CONVERSATION:
                self._want(leaf)
            return
        if party in _PARTY and stack[base + 2] == "Organisation":
            # Organisation/Ident (level 1); Organisation/(Organisation|HealthcareProfessional)/Ident (level 2)
            if leaf == "Ident" and (n == 4 or (n == 5 and stack[base + 3] in _LEVEL_2)):
                self.ident = _Ident()
            elif self.ident is not None and stack[-2] == "Ident":
                if leaf == "Id":
                    self._want("ident_id")
                elif leaf == "TypeId":
                    self.ident.type = _attr(attrs, "V")

    def _end_msghead(self, name: str) -> None:
        stack = self.stack
        depth = len(stack)
        if self.capture is not None:
            self._flush(self.capture)
        base = self.base
        n = depth - base
        if n == 0 and self.nested:
            self._header_done()  # the embedded document ended before its header did
        if n == 1:
            if stack[base] == "MsgInfo":
                self._header_done()
        elif (n == 4 or n == 5) and stack[-1] == "Ident" and self.ident is not None and stack[base] == "MsgInfo":
            ident = self.ident
            ident.id = self.fields.pop("ident_id", "")
            if ident.type.strip().upper() == "HER" and ident.id:
                target = self.sender_her if _PARTY.get(stack[base + 1]) == "s" else self.receiver_her
                target[0 if n == 4 else 1].append(ident.id)
            self.ident = None
        stack.pop()
        if depth == 1:
            raise _Stop

    # ---- AppRec

    def _start_apprec(self, name: str, attrs: dict[str, str]) -> None:
        leaf = name[name.rfind(" ") + 1 :]
        stack = self.stack
        stack.append(leaf)
        depth = len(stack)
        if depth > MAX_DEPTH:
            raise _Reject("too_deep", f"elements nested deeper than {MAX_DEPTH} levels")
        base = self.base
        n = depth - base
        if n == 1:
            if leaf in _APPREC_TEXT:
                self._want(leaf)
            elif leaf == "Status":
                self.fields["status"] = _attr(attrs, "V")
            elif leaf == "Error":
                self.errors.append(_receipt_error(_attr(attrs, "V"), _attr(attrs, "S")))
            return
        if n < 1 or n > _FIELD_DEPTH:
            return  # (n < 1: an element after the AppRec, inside the wrapper that holds it)
        first = stack[base]
        if first == "OriginalMsgId":
            if n == 2:
                if leaf == "MsgType":
                    self.fields["orig_type"] = _attr(attrs, "V")
                elif leaf == "IssueDate" or leaf == "Id":
                    self._want("orig_" + leaf)
            return
        if first in _PARTY and n >= 4 and stack[base + 1] == "HCP" and stack[base + 2] == "Inst":
            # Inst/Id + Inst/TypeId (level 1); Inst/(Dept|HCPerson)/Id + TypeId (level 2)
            if leaf == "Id" and n <= 5:
                self._want(f"hcp_id_{n}")
            elif leaf == "TypeId" and n <= 5:
                self.fields[f"hcp_type_{n}"] = _attr(attrs, "V")

    def _end_apprec(self, name: str) -> None:
        stack = self.stack
        depth = len(stack)
        if self.capture is not None:
            self._flush(self.capture)
        base = self.base
        n = depth - base
        if n == 0 and self.nested:
            self._header_done()  # the embedded document ended before its header did
        if n == 1:
            if stack[base] == "OriginalMsgId":
                self._header_done()
        elif (n == 3 or n == 4) and stack[-1] in _HCP_LEVELS and stack[base] in _PARTY and stack[base + 1] == "HCP":
            size = 4 if n == 3 else 5
            ident, kind = self.fields.pop(f"hcp_id_{size}", ""), self.fields.pop(f"hcp_type_{size}", "")
            if kind.strip().upper() == "HER" and ident:
                target = self.sender_her if _PARTY[stack[base]] == "s" else self.receiver_her
                target[0 if n == 3 else 1].append(ident)
        stack.pop()
        if depth == 1:
            raise _Stop

    # ---- SOAP / ebXML (``n`` elements below the Envelope are open, the last is ``local``)

    def _soap_start(self, ns: str, local: str, attrs: dict[str, str], n: int) -> None:
        stack, base = self.stack, self.doc_depth
        part = stack[base]
        if part == "Body":
            if n == 2:
                if local in _DOCUMENTS and (ns, local) in KNOWN_ROOTS:
                    self.payload_state = "readable"
                    self._enter(ns, local, nested=True)
                elif local == "EncryptedData":
                    self.payload_state = "encrypted"
                elif local == "Manifest" and self.payload_state == "none":
                    self.payload_state = "external"
            return
        if part != "Header" or n < 2:
            return
        section = stack[base + 1]
        if section == "Acknowledgment":
            self.signal = "acknowledgment"
            if n == 3 and local == "RefToMessageId":
                self._want("ack_ref")
            return
        if section == "ErrorList":
            self.signal = "message_error"
            if n == 3 and local == "Error":
                a = _attrs(attrs)
                self.transport_errors.append(
                    TransportError(a.get("errorCode", "").strip(), a.get("severity", "").strip(), a.get("location", "").strip())
                )
            return
        if section != "MessageHeader" or n < 3:
            return
        if n == 3 and local in _MESSAGE_HEADER_TEXT:
            self._want(local)
        elif n == 4:
            group = stack[base + 2]
            if group == "MessageData" and local in _MESSAGE_DATA_TEXT:
                self._want(local)
            elif group in _PARTIES and local == "PartyId":
                self.party_type = _attr(attrs, "type")
                self._want("party_" + group)

    def _soap_end(self, stack: list[str], base: int, n: int) -> None:
        if n < 1:
            return
        if n == 4 and stack[-1] == "PartyId" and stack[base + 2] in _PARTIES:
            group = stack[base + 2]
            value = self.fields.pop("party_" + group, "")
            if self.party_type.strip().upper() == "HER" and value:
                (self.from_her if group == "From" else self.to_her).append(value)
            self.party_type = ""
        elif n == 1 and stack[base] in _ENVELOPE_PARTS:
            if stack[base] == "Body" or self._is_signal():
                # A signal has an empty Body; a payload's header is done once the Body ends.
                raise _Stop

    def _is_signal(self) -> bool:
        action = self.fields.get("Action", "").strip()
        return self.signal != "payload" or action in ("Acknowledgment", "MessageError")

    # ---- completion

    def _header_done(self) -> None:
        if self.nested:
            self.payload = self._build_document(self.nested)
            self.nested = ""
        raise _Stop

    def _build_document(self, kind: str) -> MsgHeadHeader | AppRecHeader:
        return _document(kind, self.apprec_version, self.fields, self.sender_her, self.receiver_her, self.errors)

    def result(self, wrapper: str, consumed: int) -> Parsed:
        if self.doc == "fellesformat":
            return Parsed("incomplete", detail="EI_fellesformat without MsgHead or AppRec", wrapper=wrapper, bytes_read=consumed)
        if self.doc == "soap":
            return self._soap_result(wrapper, consumed)
        if not self.doc:
            return Parsed("incomplete", detail="no root element", wrapper=wrapper, bytes_read=consumed)
        return check_document(self._build_document(self.doc), wrapper, consumed)

    def _soap_result(self, wrapper: str, consumed: int) -> Parsed:
        return _ebxml_parsed(self.fields, self.signal, self.from_her, self.to_her, self.transport_errors, self.payload,
                             self.payload_state, wrapper, consumed)


def _ebxml_parsed(
    f: dict[str, str], signal: EbxmlKind, from_her: list[str], to_her: list[str], transport_errors: list[TransportError],
    payload: MsgHeadHeader | AppRecHeader | None, payload_state: PayloadState, wrapper: str, consumed: int,
) -> Parsed:
    """An envelope's ``Parsed`` from what the reader collected."""
    action = f.get("Action", "").strip()
    kind: EbxmlKind = signal
    if kind == "payload" and action == "Acknowledgment":
        kind = "acknowledgment"
    elif kind == "payload" and action == "MessageError":
        kind = "message_error"
    header = EbxmlHeader(
        kind=kind,
        message_id=f.get("MessageId", ""),
        ref_to_message_id=f.get("RefToMessageId", "") or f.get("ack_ref", ""),
        action=action,
        service=f.get("Service", ""),
        cpa_id=f.get("CPAId", ""),
        timestamp=f.get("Timestamp", ""),
        from_her=tuple(from_her),
        to_her=tuple(to_her),
        errors=tuple(transport_errors),
        payload=payload,
        payload_state=payload_state,
    )
    if not header.message_id:
        return Parsed("incomplete", header, detail="ebXML envelope without MessageId", wrapper=wrapper, bytes_read=consumed)
    if header.payload is not None:
        inner = check_document(header.payload, wrapper, consumed)
        if inner.outcome != "ok":
            return replace(inner, header=header)
    return Parsed("ok", header, wrapper=wrapper, bytes_read=consumed)


_OID_TEXT = re.compile(r"^\d+(\.\d+)+$")


def _receipt_error(v: str, s: str) -> ReceiptError:
    """An ``AppRec/Error`` from its ``V`` and ``S`` attributes as written."""
    code, oid = v.strip(), s.strip()
    swapped = bool(_OID_TEXT.match(code)) and not _OID_TEXT.match(oid)
    if swapped:  # a known producer bug: V holds the OID and S the code
        code, oid = oid, code
    return ReceiptError(code, oid, swapped)


def _document(
    kind: str, version: str, f: dict[str, str], sender_her: list[list[str]], receiver_her: list[list[str]],
    errors: Iterable[ReceiptError],
) -> MsgHeadHeader | AppRecHeader:
    """The header record from what the reader collected (HER ids per party: level 1, level 2)."""
    if kind == "msghead":
        return MsgHeadHeader(
            msg_type=f.get("type", "").strip(),
            mig_version=f.get("MIGversion", ""),
            gen_date=f.get("GenDate", ""),
            msg_id=f.get("MsgId", ""),
            ack=f.get("ack", "").strip().upper(),
            ref_to_parent=f.get("RefToParent", ""),
            ref_to_conversation=f.get("RefToConversation", ""),
            sender_her=tuple(sender_her[0] + sender_her[1]),
            receiver_her=tuple(receiver_her[0] + receiver_her[1]),
        )
    return AppRecHeader(
        version=version,
        mig_version=f.get("MIGversion", ""),
        gen_date=f.get("GenDate", ""),
        id=f.get("Id", ""),
        status=f.get("status", "").strip(),
        errors=tuple(errors),
        original_type=f.get("orig_type", "").strip(),
        original_id=f.get("orig_Id", ""),
        original_issue_date=f.get("orig_IssueDate", ""),
        sender_her=tuple(sender_her[0] + sender_her[1]),
        receiver_her=tuple(receiver_her[0] + receiver_her[1]),
    )


def check_document(doc: MsgHeadHeader | AppRecHeader, wrapper: str = "", consumed: int = 0) -> Parsed:
    """Required fields and a plausible MIGversion, or the outcome that says what is wrong."""
    mig = doc.mig_version.strip()
    if isinstance(doc, MsgHeadHeader):
        if mig and not MIG_VERSIONS["msghead"].match(mig):
            return Parsed("unknown_version", doc, detail=f"MsgHead MIGversion {mig[:40]!r}", wrapper=wrapper, bytes_read=consumed)
        if not doc.msg_id:
            return Parsed("incomplete", doc, detail="MsgHead without MsgInfo/MsgId", wrapper=wrapper, bytes_read=consumed)
        return Parsed("ok", doc, wrapper=wrapper, bytes_read=consumed)
    if mig and not MIG_VERSIONS[doc.version].match(mig):
        return Parsed("unknown_version", doc, detail=f"AppRec {doc.version} MIGversion {mig[:40]!r}", wrapper=wrapper, bytes_read=consumed)
    if not doc.id or not doc.original_id:
        return Parsed("incomplete", doc, detail="AppRec without Id or OriginalMsgId/Id", wrapper=wrapper, bytes_read=consumed)
    return Parsed("ok", doc, wrapper=wrapper, bytes_read=consumed)


# --------------------------------------------------------------------------------------------
# MIME (ebXML over SMTP as stored by message servers)


_XML_TYPES = ("text/xml", "application/xml", "application/soap+xml", "application/ebxml+xml")
# The longest MIME header block (the file's, or one part's) handed to the e-mail package: its
# parameter parser takes time growing with the square of a header's length (a Content-Type of
# 1 MB of ";" took 15 s, one of 4 MB minutes), and an ebXML message's headers are a few hundred
# bytes. A longer block makes the file ``header_too_large``.
MIME_HEADER_BYTES = 64 * 1024
# Parts of a multipart file that are looked at: an ebXML message has two or three (envelope,
# payload, maybe an attachment); a file of 300,000 empty parts took seconds to split.
MAX_MIME_PARTS = 100
_PKCS7_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")


@dataclass(frozen=True, slots=True)
class _Part:
    content_type: str
    encoding: str
    body: bytes
    complete: bool


def _parse_mime(stream: _Stream, max_header_bytes: int) -> Parsed:
    """A MIME file: its parts are located in the first ``max_header_bytes`` (read into memory; a
    stored ebXML message is usually far smaller, and a larger one costs only that much)."""
    data, at_end = stream.read_up_to(max_header_bytes)
    try:
        return _parse_mime_data(data, at_end, stream, max_header_bytes)
    except _Reject as why:
        return Parsed(why.outcome, detail=why.detail, wrapper="mime", bytes_read=stream.consumed)


def _parse_mime_data(data: bytes, at_end: bool, stream: _Stream, max_header_bytes: int) -> Parsed:
    split = _split_headers(data)
    if split is None:
        outcome: Outcome = "truncated" if at_end else "header_too_large"
        return Parsed(outcome, detail="MIME headers do not end", wrapper="mime", bytes_read=stream.consumed)
    message, body = split
    ctype = message.get_content_type()
    if ctype in _PKCS7_TYPES:
        return Parsed("encrypted", detail=f"S/MIME {ctype}", wrapper="mime", bytes_read=stream.consumed)
    if ctype.startswith("multipart/"):
        boundary = message.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            return Parsed("malformed", detail="multipart without boundary", wrapper="mime", bytes_read=stream.consumed)
        parts, more = _split_parts(body, boundary.encode("ascii", "replace"))
    else:
        more = False
        encoding = str(message.get("Content-Transfer-Encoding", "")).strip().lower()
        parts = [_Part(ctype, encoding, body, at_end)]
    first: Parsed | None = None
    encrypted = False
    extra_xml: _Part | None = None
    for part in parts:
        if part.content_type in _PKCS7_TYPES:
            encrypted = True
        elif _is_xml_part(part):
            if first is None:
                first = _parse_part(part, max_header_bytes)
            elif extra_xml is None:
                extra_xml = part
    if first is None:
        if encrypted:
            return Parsed("encrypted", detail="MIME with only encrypted parts", wrapper="mime", bytes_read=stream.consumed)
        if more:
            return Parsed("unknown_format", detail=f"no XML part in the first {MAX_MIME_PARTS} MIME parts", wrapper="mime", bytes_read=stream.consumed)
        if not at_end and not parts:
            return Parsed("header_too_large", detail="no MIME part found", wrapper="mime", bytes_read=stream.consumed)
        outcome = "truncated" if at_end and not parts else "unknown_format"
        return Parsed(outcome, detail="MIME without an XML part", wrapper="mime", bytes_read=stream.consumed)
    first = replace(first, wrapper="mime", bytes_read=stream.consumed)
    header = first.header
    if first.outcome == "ok" and isinstance(header, EbxmlHeader) and header.payload is None:
        if encrypted:
            first = replace(first, header=replace(header, payload_state="encrypted"))
        elif extra_xml is not None:
            inner = _parse_part(extra_xml, max_header_bytes)
            if inner.outcome == "ok" and isinstance(inner.header, (MsgHeadHeader, AppRecHeader)):
                first = replace(first, header=replace(header, payload=inner.header, payload_state="readable"))
    return first


def _split_headers(data: bytes) -> tuple[email.message.Message, bytes] | None:
    """The header block at the start of ``data`` (the file's or a part's), parsed, and what follows
    it; None if it does not end.

    Raises:
        _Reject: ``header_too_large``, the block is longer than ``MIME_HEADER_BYTES``.
    """
    match = re.search(rb"\r?\n\r?\n", data[: MIME_HEADER_BYTES + 4])
    if match is None or match.start() > MIME_HEADER_BYTES:
        if len(data) > MIME_HEADER_BYTES:
            raise _Reject("header_too_large", f"MIME headers longer than {MIME_HEADER_BYTES:,} bytes")
        return None
    head = data[: match.start()] + b"\n"
    # The e-mail package (about 1 MB resident) is imported by the first MIME-wrapped message only.
    import email.parser
    import email.policy

    message = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    return message, data[match.end() :]


def _split_parts(body: bytes, boundary: bytes) -> tuple[list[_Part], bool]:
    """The parts among the first ``MAX_MIME_PARTS``, and whether more follow (not looked at)."""
    delimiter = b"--" + boundary
    parts: list[_Part] = []
    pos = body.find(delimiter)
    for _ in range(MAX_MIME_PARTS):
        if pos == -1:
            break
        after = pos + len(delimiter)
        if body[after : after + 2] == b"--":
            break  # the closing delimiter
        line_end = body.find(b"\n", after)
        if line_end == -1:
            break
        start = line_end + 1
        nxt = body.find(b"\n" + delimiter, start)
        chunk = body[start : nxt if nxt != -1 else len(body)]
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
        split = _split_headers(chunk)
        if split is not None:
            headers, content = split
            parts.append(
                _Part(
                    headers.get_content_type(),
                    str(headers.get("Content-Transfer-Encoding", "")).strip().lower(),
                    content,
                    nxt != -1,
                )
            )
        pos = nxt + 1 if nxt != -1 else -1
    else:
        return parts, pos != -1 and body[pos + len(delimiter) : pos + len(delimiter) + 2] != b"--"
    return parts, False


def _is_xml_part(part: _Part) -> bool:
    if part.content_type in _XML_TYPES or part.content_type.endswith("+xml"):
        return True
    # A part without a Content-Type defaults to text/plain; some servers write XML that way.
    return part.content_type == "text/plain" and part.body.lstrip()[:1] == b"<"


def _parse_part(part: _Part, max_header_bytes: int) -> Parsed:
    body = part.body
    if part.encoding == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/=]", b"", body)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
        try:
            body = base64.b64decode(cleaned)
        except binascii.Error:
            return Parsed("malformed", detail="bad base64 in MIME part")
    elif part.encoding == "quoted-printable":
        import quopri  # here: rare in EDI, and not worth every agent's memory

        body = quopri.decodestring(body)
    return _parse_xml(_Stream(_slices(body)), max_header_bytes, wrapper="mime")


# --------------------------------------------------------------------------------------------
# The compiled fast path (``_header.c``), where pip built it


def _compiled_scan() -> Callable[[bytes], Scanned | None] | None:
    try:
        from normagent.plugins.edi._header import scan
    except ImportError:  # no compiler where normagent was installed: expat reads every file
        return None
    return scan


_SCAN: Final[Callable[[bytes], Scanned | None] | None] = _compiled_scan()


# --------------------------------------------------------------------------------------------
# Timestamps

TimestampKind = Literal["with_zone", "no_zone", "missing", "unparseable"]


def parse_timestamp(text: str, naive_zone: tzinfo) -> tuple[datetime | None, TimestampKind]:
    """An XML ``dateTime`` (GenDate, IssueDate, eb:Timestamp) as aware UTC.

    KITH messages usually carry local time without an offset (``2025-01-01T10:00:00``); such a
    value is read in ``naive_zone`` (Europe/Oslo unless configured). An explicit offset or ``Z`` is
    respected. Fractional seconds beyond microseconds are cut.

    Returns:
        The instant (or None) and what kind of value it was. A date and time that has no UTC
        instant (year 1 east of UTC, year 9999 west of it: ``OverflowError``) is ``unparseable``.
    """
    text = text.strip()
    if not text:
        return None, "missing"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None, "unparseable"
    try:
        if moment.tzinfo is None:
            return moment.replace(tzinfo=naive_zone).astimezone(timezone.utc), "no_zone"
        return moment.astimezone(timezone.utc), "with_zone"
    except OverflowError:
        return None, "unparseable"


def timestamp_kind(text: str, naive_zone: tzinfo) -> TimestampKind:
    """``parse_timestamp(text, naive_zone)[1]`` without making the instant where it surely exists.

    Every message's GenDate is counted by its kind, but the instant is wanted only for a few log
    lines and events; turning a local time into UTC through its zone was most of the 1.4 µs a
    file spent here (bench/README.md, w15-edi). An offset or a zone moves a time by less than a
    day, so between the years 2 and 9998 the instant exists; at the calendar's edges the
    conversion decides, as in ``parse_timestamp``.
    """
    text = text.strip()
    if not text:
        return "missing"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return "unparseable"
    if not 1 < moment.year < 9999:
        return parse_timestamp(text, naive_zone)[1]
    return "no_zone" if moment.tzinfo is None else "with_zone"


