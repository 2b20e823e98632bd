"""Correlation of messages and receipts, as pure functions over records.

Identity is the message id, never the path: a MsgHead by ``MsgInfo/MsgId``, an AppRec by its
``Id``, an ebXML envelope by ``eb:MessageId``. A file whose id is already known is a copy or a move
(inbox → archive) and changes no count; the same id with different content is a duplicate id.

What points to what:

- an AppRec's ``OriginalMsgId/Id`` → the MsgHead's ``MsgId`` (application receipt);
- an ebXML ``Acknowledgment``/``MessageError``'s ``RefToMessageId`` → the envelope's ``MessageId``
  (transport receipt) — the envelope id, not the MsgHead id.

A receipt may be read before its message (folders are scanned in any order, an archive may be read
first): it then leaves a *placeholder* record under the message's id, and the message, when it
comes, takes the receipt over. Receipts whose message never comes are reported by the
``unmatched`` gauge.

Timing uses when files appeared (their modification time on this host), not the dates written in
the messages: a receipt is late if it reached our folder more than the timeout after the message
left ours. That keeps a remote clock in another zone, or a delayed delivery, from hiding a late
receipt, and makes the result independent of when the collector runs. Message dates are still read
(and counted by kind) for the report's events.

The functions here get the current records through a ``Lookup`` and return what to change; the
collector stages and commits it. Imports only the standard library (with normagent's ``dataclass``)
and this package's pure modules.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Iterable
from dataclasses import field, replace
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Protocol

from normagent.plugins.edi import codes
from normagent.plugins.edi.values import immutable
from normagent.plugins.edi.parse import (
    AppRecHeader,
    EbxmlHeader,
    MsgHeadHeader,
    Parsed,
    TransportError,
    parse_timestamp,
    timestamp_kind,
)
from normagent import dataclass

if TYPE_CHECKING:
    from normagent import EventValue, JSONValue

APPLICATION = "application"
TRANSPORT = "transport"

M_MESSAGES = "normagent_edi_messages_total"
M_RECEIPTS = "normagent_edi_receipts_total"
M_RECEIPTS_UNKNOWN = "normagent_edi_receipts_for_unknown_messages_total"
M_RECEIPT_ERRORS = "normagent_edi_receipt_errors_total"
M_TRANSPORT_ERRORS = "normagent_edi_transport_errors_total"
M_MISADDRESSED = "normagent_edi_misaddressed_messages_total"
M_UNACK_TOTAL = "normagent_edi_unacknowledged_total"
M_TIMESTAMPS = "normagent_edi_timestamps_total"


# --------------------------------------------------------------------------------------------
# records


@immutable
class Record:
    """What is remembered about one id, checkpointed as ``m:<id>`` or ``e:<id>``.

    Attributes:
        kind: ``msg`` (MsgHead), ``rec`` (AppRec), ``env`` (ebXML business leg), ``sig`` (ebXML signal).
        msg_type: The ``msg_type`` label.
        direction: ``in``, ``out`` or ``unknown``.
        at: When the first file with this id appeared (mtime, unix seconds); 0 for a placeholder.
        path: That file (to tell a move from a copy).
        sig: A content signature (CRC-32 of type and dates) to tell a copy from a duplicate id.
        expects: Whether a receipt is awaited (transport for ``env``, application for ``msg``).
        seen: False for a placeholder left by a receipt whose message was not read yet.
        receipt: ``""`` (none yet), an AppRec status label, ``ack`` or ``error``.
        receipt_at: When the receipt appeared (0: none).
        overdue: Counted in ``normagent_edi_unacknowledged_total`` (once).
        misaddressed: Counted in ``normagent_edi_misaddressed_messages_total`` (once).
        counted: Counted in ``normagent_edi_messages_total`` (once).
    """

    kind: str
    msg_type: str
    direction: str
    at: float = 0.0
    path: str = ""
    sig: int = 0
    expects: bool = False
    seen: bool = True
    receipt: str = ""
    receipt_at: float = 0.0
    overdue: bool = False
    misaddressed: bool = False
    counted: bool = False

    def to_json(self) -> list[JSONValue]:
        return [
            self.kind, self.msg_type, self.direction, self.at, self.path, self.sig, int(self.expects),
            int(self.seen), self.receipt, self.receipt_at, int(self.overdue), int(self.misaddressed), int(self.counted),
        ]

    @classmethod
    def from_json(cls, value: object) -> Record | None:
        if not isinstance(value, list) or len(value) != 13:
            return None
        k, t, d, at, path, sig, exp, seen, rc, rat, od, mis, cnt = value
        # The small strings repeat in every record: interned, 100,000 records share a handful;
        # "or 0.0" shares one zero among the records without a receipt.
        return cls(sys.intern(str(k)), sys.intern(str(t)), sys.intern(str(d)), float(at) or 0.0, str(path), int(sig),
                   bool(exp), bool(seen), sys.intern(str(rc)), float(rat) or 0.0, bool(od), bool(mis), bool(cnt))

    def with_receipt(self, receipt: str, at: float) -> Record:
        """``replace(self, receipt=receipt, receipt_at=at)``, spelt out: ``dataclasses.replace``
        costs three times a plain construction, and a first index gives a receipt to most of its
        messages (bench/README.md, w14-edi). Every other field is passed on."""
        return Record(self.kind, self.msg_type, self.direction, self.at, self.path, self.sig, self.expects, self.seen,
                      receipt, at, self.overdue, self.misaddressed, self.counted)

    @property
    def receipt_kind(self) -> str:
        return TRANSPORT if self.kind == "env" else APPLICATION

    @property
    def waiting(self) -> bool:
        """Sent, expecting a receipt, none yet."""
        return self.seen and self.expects and not self.receipt


class Lookup(Protocol):
    def record(self, key: str) -> Record | None: ...

    def file_known(self, path: str) -> bool:
        """Whether the file at ``path``, the path of a record read before, is in the index."""
        ...


# --------------------------------------------------------------------------------------------
# what a file does


@dataclass(frozen=True, slots=True)
class Context:
    """What correlation needs from the settings, resolved once per cycle."""

    own_her: frozenset[str]
    msg_types: codes.MsgTypes
    naive_zone: tzinfo
    count_encrypted_envelopes: bool
    timeouts: Callable[[str], tuple[float, float, float]]  # msg_type → (transport, application, alarm)


@dataclass(slots=True)
class FileFacts:
    """A file as the collector found it.

    Not frozen: one is made per file read, and a frozen dataclass's ``__init__`` sets each field
    through ``object.__setattr__`` (four times a plain one's cost; bench/README.md, w14-edi).
    Nothing changes one after it is made."""

    path: str
    name: str  # printable (``index.printable``), for logs
    folder: str  # the folder's label, for logs
    direction: str  # the folder's configured direction
    role: str
    mtime: float
    indexed: bool = True  # the index has an entry for this path (False: a new file)


@dataclass(slots=True)
class Effect:
    """What one file changes: its outcome, counts, events, records, traffic and log lines."""

    outcome: str = "ok"
    counts: list[tuple[str, dict[str, str], float]] = field(default_factory=list)
    events: list[tuple[str, float, str, dict[str, EventValue]]] = field(default_factory=list)  # kind, at, key, attrs
    records: dict[str, Record] = field(default_factory=dict)
    traffic: str = ""  # direction of traffic this file is, "" for none
    counted_before: bool = False  # this very file was read and counted before; only its index entry is missing
    logs: list[tuple[str, str, dict[str, object]]] = field(default_factory=list)  # level, event, fields

    def count(self, metric: str, value: float = 1, **labels: str) -> None:
        self.counts.append((metric, labels, value))

    def log(self, level: str, event: str, **fields: object) -> None:
        self.logs.append((level, event, fields))


class _View:
    """A Lookup that sees the records this file already changed."""

    def __init__(self, base: Lookup, effect: Effect) -> None:
        self._base = base
        self._effect = effect

    def record(self, key: str) -> Record | None:
        if key in self._effect.records:
            return self._effect.records[key]
        return self._base.record(key)

    def file_known(self, path: str) -> bool:
        return self._base.file_known(path)


def apply_file(facts: FileFacts, parsed: Parsed, lookup: Lookup, ctx: Context) -> Effect:
    """The effect of one successfully read file (``parsed.outcome == "ok"``) on counts and records."""
    effect = Effect()
    view = _View(lookup, effect)
    header = parsed.header
    if isinstance(header, MsgHeadHeader):
        _msghead(header, facts, view, ctx, effect)
    elif isinstance(header, AppRecHeader):
        _apprec(header, facts, view, ctx, effect)
    elif isinstance(header, EbxmlHeader):
        _ebxml(header, facts, view, ctx, effect)
    return effect


def _direction(facts: FileFacts, ctx: Context, sender: Iterable[str], receiver: Iterable[str], receipt: bool) -> str:
    """The folder's direction, or for ``unknown`` folders the one the HER ids tell."""
    if facts.direction != "unknown":
        return facts.direction
    senders = {s.strip() for s in sender} - {""}
    if ctx.own_her:
        if ctx.own_her.intersection(senders):
            return "out"
        if ctx.own_her.intersection(r.strip() for r in receiver):
            return "in"
        if senders and not receipt:
            # Sent by someone else, to someone else, and still in our folder: we received it. It is
            # then mis-addressed, as it would be in a folder of direction "in".
            return "in"
    if receipt and facts.role in ("receipts", "messages"):
        # A receipt in a folder of unknown direction is most likely one we received.
        return "in"
    return "unknown"


def _count_gen_date(text: str, ctx: Context, effect: Effect, facts: FileFacts) -> None:
    """Count a message date by its kind (``timestamp_kind``; its instant is made only where a log
    line or an event needs it: ``_gen_iso``)."""
    kind = timestamp_kind(text, ctx.naive_zone)
    effect.count(M_TIMESTAMPS, kind=kind)
    if kind in ("missing", "unparseable"):
        # Timing never depends on it (file times do), but the report's events lose their date.
        effect.log("info", "edi_gendate_unusable", folder=facts.folder, file=facts.name, kind=kind)


def _gen_iso(text: str, ctx: Context) -> str:
    """A message date as the report's events and the log lines give it: ISO 8601 in UTC, or ""."""
    return _iso(parse_timestamp(text, ctx.naive_zone)[0])


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).isoformat() if moment is not None else ""


def _signature(*parts: str) -> int:
    return zlib.crc32("|".join(parts).encode("utf-8", "surrogatepass"))


def _known(key: str, sig: int, facts: FileFacts, view: _View, effect: Effect) -> bool:
    """Handle a file whose id was already read: a move, a copy, a rewrite or a duplicate id. True if so."""
    existing = view.record(key)
    if existing is None or not existing.seen:
        return False
    if existing.sig != sig:
        effect.outcome = "duplicate_id"
        effect.log("warning", "edi_duplicate_message_id", folder=facts.folder, file=facts.name, id=key[2:])
    elif existing.path == facts.path and not facts.indexed:
        # Read and counted already, its index entry not committed: a first index whose entries
        # are written at its end (``collectors``) was cut short. The same file, not a new one.
        effect.counted_before = True
    elif existing.path == facts.path:
        effect.outcome = "rewritten"  # the same file written again (seen with full_rescan)
        effect.log("debug", "edi_file_rewritten", folder=facts.folder, file=facts.name, id=key[2:])
    elif view.file_known(existing.path):
        effect.outcome = "copy"
        effect.log("debug", "edi_file_is_copy", folder=facts.folder, file=facts.name, id=key[2:])
    else:
        effect.outcome = "moved"
        effect.records[key] = replace(existing, path=facts.path)
        effect.log("debug", "edi_file_moved", folder=facts.folder, file=facts.name, id=key[2:])
    return True


def _late(record: Record, receipt_at: float, ctx: Context) -> bool:
    transport, application, _ = ctx.timeouts(record.msg_type)
    limit = transport if record.kind == "env" else application
    return record.at > 0 and receipt_at - record.at > limit


def _overdue(key: str, record: Record, effect: Effect, ctx: Context, *, late: bool) -> Record:
    """Count a message that passed its receipt timeout, once, with an event for the report."""
    if record.overdue:
        return record
    transport, application, _ = ctx.timeouts(record.msg_type)
    limit = transport if record.kind == "env" else application
    effect.count(M_UNACK_TOTAL, msg_type=record.msg_type, receipt=record.receipt_kind)
    effect.events.append(
        (
            "edi.unacknowledged",
            record.at + limit,
            f"{record.receipt_kind}:{key[2:]}",
            {
                "message_id": key[2:],
                "msg_type": record.msg_type,
                "receipt": record.receipt_kind,
                "sent_at": _iso(datetime.fromtimestamp(record.at, timezone.utc)),
                "late_receipt": late,
                "receipt_at": _iso(datetime.fromtimestamp(record.receipt_at, timezone.utc)) if late else "",
            },
        )
    )
    return replace(record, overdue=True)


# ---- MsgHead


def _msghead(h: MsgHeadHeader, facts: FileFacts, view: _View, ctx: Context, effect: Effect) -> None:
    direction = _direction(facts, ctx, h.sender_her, h.receiver_her, receipt=False)
    effect.traffic = direction
    key = "m:" + h.msg_id
    sig = _signature(h.msg_type, h.gen_date)
    if _known(key, sig, facts, view, effect):
        return
    _count_gen_date(h.gen_date, ctx, effect, facts)
    msg_type = ctx.msg_types.label(h.msg_type)
    placeholder = view.record(key)
    effect.count(M_MESSAGES, direction=direction, msg_type=msg_type)
    record = Record(
        kind="msg",
        msg_type=msg_type,
        direction=direction,
        at=facts.mtime,
        path=facts.path,
        sig=sig,
        expects=direction == "out" and h.ack != "N",
        counted=True,
    )
    if placeholder is not None:
        record = replace(record, receipt=placeholder.receipt, receipt_at=placeholder.receipt_at,
                         misaddressed=placeholder.misaddressed)
    if direction == "in" and ctx.own_her and h.receiver_her and not ctx.own_her.intersection(her.strip() for her in h.receiver_her):
        if not record.misaddressed:
            effect.count(M_MISADDRESSED, direction="in", msg_type=msg_type)
            record = replace(record, misaddressed=True)
        effect.log("info", "edi_misaddressed_incoming", folder=facts.folder, file=facts.name, id=h.msg_id,
                   msg_type=msg_type, gen_date=_gen_iso(h.gen_date, ctx))
    if record.expects and record.receipt and _late(record, record.receipt_at, ctx):
        record = _overdue(key, record, effect, ctx, late=True)
    effect.records[key] = record


# ---- AppRec


def _apprec(a: AppRecHeader, facts: FileFacts, view: _View, ctx: Context, effect: Effect) -> None:
    direction = _direction(facts, ctx, a.sender_her, a.receiver_her, receipt=True)
    effect.traffic = direction
    key = "m:" + a.id
    sig = _signature(a.status, a.gen_date, a.original_id)
    if _known(key, sig, facts, view, effect):
        return
    _count_gen_date(a.gen_date, ctx, effect, facts)
    effect.count(M_MESSAGES, direction=direction, msg_type="APPREC")
    effect.records[key] = Record(kind="rec", msg_type="APPREC", direction=direction, at=facts.mtime,
                                 path=facts.path, sig=sig, counted=True)
    orig_type = ctx.msg_types.label(a.original_type)
    status = codes.status_label(a.status)
    misaddressed = any(
        e.code in codes.MISADDRESSED_8221 and codes.code_list_label(e.code_list) in ("8221", codes.UNKNOWN)
        for e in a.errors
    )
    orig_key = "m:" + a.original_id
    original = view.record(orig_key)
    if direction == "out":
        # Our receipt for a message we received: only mis-addressing matters here.
        if misaddressed:
            _mark_misaddressed(orig_key, original, "in", orig_type, effect)
        return
    effect.count(M_RECEIPTS, msg_type=orig_type, status=status)
    if not _sent(original):
        effect.count(M_RECEIPTS_UNKNOWN, receipt=APPLICATION)
    for error in a.errors:
        effect.count(
            M_RECEIPT_ERRORS,
            msg_type=orig_type,
            code_list=codes.code_list_label(error.code_list),
            error_code=codes.error_code_label(error.code),
        )
        if error.swapped:
            effect.log("info", "edi_receipt_error_swapped", folder=facts.folder, file=facts.name, id=a.id)
    if status in ("2", "3"):
        effect.events.append(
            (
                "edi.rejected",
                facts.mtime,
                a.id,
                {
                    "apprec_id": a.id,
                    "original_msg_id": a.original_id,
                    "msg_type": orig_type,
                    "status": status,
                    "errors": ",".join(
                        f"{codes.code_list_label(e.code_list)}:{codes.error_code_label(e.code)}" for e in a.errors
                    ),
                    "gen_date": _gen_iso(a.gen_date, ctx),
                },
            )
        )
    if original is None or not original.seen:
        effect.log("info", "edi_receipt_for_unknown_message", folder=facts.folder, file=facts.name, id=a.id,
                   original_id=a.original_id)
        base = original or Record(kind="msg", msg_type=orig_type, direction="out", seen=False)
        if not base.receipt:
            base = base.with_receipt(status, facts.mtime)
        effect.records[orig_key] = base
        if misaddressed:
            _mark_misaddressed(orig_key, effect.records[orig_key], "out", orig_type, effect)
        return
    record = original
    if not record.receipt:
        record = record.with_receipt(status, facts.mtime)
        if record.expects and _late(record, facts.mtime, ctx):
            record = _overdue(orig_key, record, effect, ctx, late=True)
    effect.records[orig_key] = record
    if misaddressed:
        _mark_misaddressed(orig_key, record, "out", record.msg_type, effect)


def _sent(original: Record | None) -> bool:
    """Whether a receipt's message was read as one we sent (so far): not a placeholder, not received."""
    return original is not None and original.seen and original.direction != "in"


def _mark_misaddressed(key: str, record: Record | None, direction: str, msg_type: str, effect: Effect) -> None:
    """Count one message as mis-addressed once, whatever evidence (receipt, HER check) comes first."""
    if record is None:
        record = Record(kind="env" if key.startswith("e:") else "msg", msg_type=msg_type, direction=direction, seen=False)
    if record.misaddressed:
        return
    effect.count(M_MISADDRESSED, direction=direction, msg_type=record.msg_type or msg_type)
    effect.records[key] = replace(record, misaddressed=True)


# ---- ebXML


def _ebxml(e: EbxmlHeader, facts: FileFacts, view: _View, ctx: Context, effect: Effect) -> None:
    signal = e.kind != "payload"
    direction = _direction(facts, ctx, e.from_her, e.to_her, receipt=signal)
    effect.traffic = direction
    key = "e:" + e.message_id
    sig = _signature(e.kind, e.timestamp, e.ref_to_message_id)
    if _known(key, sig, facts, view, effect):
        return
    if not signal:
        _ebxml_payload(e, key, sig, direction, facts, view, ctx, effect)
        return
    effect.records[key] = Record(kind="sig", msg_type=e.kind, direction=direction, at=facts.mtime, path=facts.path, sig=sig)
    if direction != "in":
        return  # our own receipts for messages we received: traffic only
    ref_key = "e:" + e.ref_to_message_id if e.ref_to_message_id else ""
    target = view.record(ref_key) if ref_key else None
    msg_type = target.msg_type if target is not None and target.msg_type else codes.UNKNOWN
    misaddressed = False
    if e.kind == "message_error":
        for error in e.errors or (TransportError(""),):  # no ErrorList still counts once
            label = codes.transport_code_label(error.code)
            effect.count(M_TRANSPORT_ERRORS, error_code=label)
            if error.location and codes.MISADDRESSED_LOCATION.search(error.location):
                misaddressed = True
        effect.events.append(
            (
                "edi.transport_error",
                facts.mtime,
                e.message_id,
                {
                    "message_id": e.message_id,
                    "ref_to_message_id": e.ref_to_message_id,
                    "msg_type": msg_type,
                    "errors": ",".join(codes.transport_code_label(x.code) for x in e.errors) or codes.UNKNOWN,
                },
            )
        )
    if not ref_key:
        effect.log("info", "edi_transport_receipt_without_reference", folder=facts.folder, file=facts.name,
                   id=e.message_id, kind=e.kind)
        if misaddressed:
            effect.count(M_MISADDRESSED, direction="out", msg_type=codes.UNKNOWN)
        return
    receipt = "ack" if e.kind == "acknowledgment" else "error"
    if not _sent(target):
        effect.count(M_RECEIPTS_UNKNOWN, receipt=TRANSPORT)
    if target is None or not target.seen:
        effect.log("info", "edi_receipt_for_unknown_message", folder=facts.folder, file=facts.name, id=e.message_id,
                   original_id=e.ref_to_message_id)
        base = target or Record(kind="env", msg_type=codes.UNKNOWN, direction="out", seen=False)
        if not base.receipt:
            base = base.with_receipt(receipt, facts.mtime)
        effect.records[ref_key] = base
    else:
        record = target
        if not record.receipt:
            record = record.with_receipt(receipt, facts.mtime)
            if record.expects and _late(record, facts.mtime, ctx):
                record = _overdue(ref_key, record, effect, ctx, late=True)
        effect.records[ref_key] = record
    if misaddressed:
        _mark_misaddressed(ref_key, effect.records[ref_key], "out", msg_type, effect)


def _ebxml_payload(
    e: EbxmlHeader, key: str, sig: int, direction: str, facts: FileFacts, view: _View, ctx: Context, effect: Effect
) -> None:
    if isinstance(e.payload, MsgHeadHeader):
        msg_type = ctx.msg_types.label(e.payload.msg_type)
    elif isinstance(e.payload, AppRecHeader):
        msg_type = "APPREC"
    else:
        msg_type = ctx.msg_types.label(e.action)
    placeholder = view.record(key)
    record = Record(kind="env", msg_type=msg_type, direction=direction, at=facts.mtime, path=facts.path, sig=sig,
                    expects=direction == "out")
    if placeholder is not None:
        record = replace(record, receipt=placeholder.receipt, receipt_at=placeholder.receipt_at,
                         misaddressed=placeholder.misaddressed)
    if record.expects and record.receipt and _late(record, record.receipt_at, ctx):
        record = _overdue(key, record, effect, ctx, late=True)
    if e.payload is None and ctx.count_encrypted_envelopes:
        effect.count(M_MESSAGES, direction=direction, msg_type=msg_type)
        record = replace(record, counted=True)
    effect.records[key] = record
    if e.payload is not None:
        inner = Parsed("ok", e.payload)
        sub = apply_file(facts, inner, view, ctx)
        # The payload decides counts; the file's outcome is the payload's (a copy of a known
        # MsgHead inside a new envelope is still a new envelope, so "ok").
        effect.counts.extend(sub.counts)
        effect.events.extend(sub.events)
        effect.records.update(sub.records)
        # The envelope itself is new; that its payload was also read as a plain file (the EPJ's
        # copy) is expected, so only the payload's warnings and notices are worth a line.
        effect.logs.extend(line for line in sub.logs if line[0] != "debug")


# --------------------------------------------------------------------------------------------
# the pending set, evaluated at the end of a cycle


@dataclass(frozen=True, slots=True)
class PendingReport:
    """Gauges over the messages still waiting, and the records that became overdue."""

    unacknowledged: dict[tuple[str, str], int]  # (msg_type, receipt) → past the timeout
    alarm: dict[tuple[str, str], int]  # → past the alarm limit
    oldest: dict[tuple[str, str], float]  # → age of the oldest waiting message
    effect: Effect
    forgotten: tuple[str, ...]  # keys that left the pending set for good (waited too long)


def evaluate_pending(
    pending: Iterable[tuple[str, Record]], now: float, ctx: Context, forget_after: float
) -> PendingReport:
    """Count newly overdue messages and compute the waiting gauges from the pending set only."""
    effect = Effect()
    unack: dict[tuple[str, str], int] = {}
    alarm: dict[tuple[str, str], int] = {}
    oldest: dict[tuple[str, str], float] = {}
    forgotten: list[str] = []
    for key, record in pending:
        if not record.waiting:
            continue
        age = now - record.at
        transport, application, alarm_after = ctx.timeouts(record.msg_type)
        limit = transport if record.kind == "env" else application
        if age > limit and not record.overdue:
            effect.records[key] = _overdue(key, record, effect, ctx, late=False)
        if age > forget_after:
            forgotten.append(key)  # counted above; it leaves the gauges
            continue
        series = (record.msg_type, record.receipt_kind)
        oldest[series] = max(oldest.get(series, 0.0), age)
        if age > limit:
            unack[series] = unack.get(series, 0) + 1
        if age > alarm_after:
            alarm[series] = alarm.get(series, 0) + 1
    return PendingReport(unack, alarm, oldest, effect, tuple(forgotten))
