"""Windows event log files (.evtx), read with the ``evtx`` package and checkpointed by record id.

``read_evtx(path, ...)`` returns an ``EvtxReader``; iterating it yields ``(RecordBlock, last_record_id)``
with ``WindowsEvent`` records. After each block, ``reader.position`` is the ``EvtxPosition`` to
commit with that block's observations (``position.to_json()``), and ``reader.stats`` counts what
was read, filtered out, damaged or lost so far.

How a file is read, and why:

* An EVTX file is a 4 KiB header followed by 64 KiB chunks; each chunk header names the first and
  last record number it holds. We read those headers ourselves (a few bytes per chunk) and hand the
  ``evtx`` parser a view of the file with only the chunks that can hold records after the saved
  position, ordered by record number. So a resume parses the new chunks, not the whole file (a
  1 GB Security.evtx costs what its new records cost), and a log that wrapped around (a circular
  live log, whose oldest chunk is overwritten in place) is still read in record order.
* Position = the record number of the last record read (the record header's number, by which the
  file is ordered) plus an *anchor*: that record's timestamp. If the file no longer holds that
  record with that timestamp, or holds only lower numbers, it was replaced (a new export, a cleared
  log): it is read again from its start and ``stats.replaced`` says so. If its oldest record is
  newer than the position, the records in between were overwritten before we read them:
  ``stats.lost`` counts them.
* Damage: ``evtx`` raises ``RuntimeError`` for a record it cannot decode and carries on with the
  next one. We catch it per record (``skip_errors=True`` would report through ``warnings``, whose
  state is process-global and not thread-safe, and older ``evtx`` versions lack the keyword): each
  is counted in ``stats.errors``. A damaged record can make the rest of its chunk unreadable, so
  ``stats.unreadable`` counts the record numbers a chunk header announces that were not delivered;
  the position remembers how far that was counted, so a damaged chunk that is re-read on the next
  run is not counted twice.
* ``WindowsEvent.record_id`` is System/EventRecordID, the number Windows shows; it equals the
  record header's number in files Windows wrote (a file assembled from selected records, like
  the test sample ``Security_short_selected.evtx``, may differ).

Values are normalised from evtx's JSON (see logformats.md §12.2): EventID with or without
Qualifiers, Keywords hex to int, TimeCreated/SystemTime to aware UTC, every data value to ``str``
(``true``/``false`` as XML writes them, null as ""), unnamed ``Data`` as ``"0"``, ``"1"``…, and
UserData flattened (``Error@Code`` for an attribute of a nested element).

Imports only the standard library, the evtx package and normagent.model.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
from bisect import bisect_right
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evtx import PyEvtxParser

from normagent.model import JSONValue, RecordBlock, WindowsEvent

FILE_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
HEADER_BYTES = 4096
CHUNK_BYTES = 65536
CHUNK_HEADER_BYTES = 512
MAX_CONSECUTIVE_ERRORS = 10_000  # a parser stuck raising on one spot must not spin forever
SCAN_FACTOR = 10  # yield (a possibly empty block) at least every block_records * SCAN_FACTOR records
_STAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?")


@dataclass(frozen=True, slots=True)
class EvtxSettings:
    """Which EVTX files to read and which records to keep; embed it in a collector's settings.

    Attributes:
        paths: EVTX files or globs (``/srv/eventlogs/*/Security.evtx``): exported logs, or logs
            forwarded to a share. None by default: there is no EVTX on a Linux host by itself.
        channels: Keep records of these channels only (``Security``, ``System``,
            ``Microsoft-Windows-Windows Defender/Operational``; case-insensitive). Empty: all.
        event_ids: Keep records with these event ids only. Empty: all.
        block_records: Records per block, i.e. per committed batch.
    """

    paths: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    event_ids: tuple[int, ...] = field(default=(), metadata={"min": 0, "max": 0xFFFF})
    block_records: int = field(default=1000, metadata={"min": 1, "max": 100_000})

    def __post_init__(self) -> None:
        if self.block_records < 1:
            raise ValueError(f"block_records must be at least 1, got {self.block_records}")
        for event_id in self.event_ids:
            if not 0 <= event_id <= 0xFFFF:
                raise ValueError(f"event id {event_id} is outside 0..65535")


class EvtxFileError(ValueError):
    """The file is not an EVTX file (wrong magic, shorter than its header) or cannot be parsed at all."""


@dataclass(frozen=True, slots=True)
class EvtxPosition:
    """Where a file was read up to: commit ``to_json()`` with the block it follows.

    Attributes:
        record_id: Record number (record header) of the last record read; 0: nothing yet.
        anchor: That record's timestamp, normalised; proves a later run finds the same record.
        unreadable_through: Highest record number already counted as unreadable.
    """

    record_id: int = 0
    anchor: str = ""
    unreadable_through: int = 0

    def to_json(self) -> dict[str, JSONValue]:
        return {"record_id": self.record_id, "anchor": self.anchor, "unreadable_through": self.unreadable_through}

    @classmethod
    def from_json(cls, value: JSONValue) -> EvtxPosition:
        """Rebuild a committed position; ``None`` (never read) or a bare record id are accepted."""
        if value is None:
            return cls()
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(record_id=value)
        if isinstance(value, dict):
            record_id = value.get("record_id", 0)
            anchor = value.get("anchor", "")
            through = value.get("unreadable_through", 0)
            if isinstance(record_id, int) and isinstance(anchor, str) and isinstance(through, int):
                return cls(record_id=record_id, anchor=anchor, unreadable_through=through)
        raise ValueError(f"not an EVTX position: {value!r}")


@dataclass(slots=True)
class EvtxStats:
    """What one ``read_evtx`` pass did, cumulative while it is iterated.

    Attributes:
        records: Records read after the position (matched or not).
        matched: Records handed out (they passed the channel and event-id filters).
        skipped: Records read but filtered out.
        errors: Parse errors the evtx parser raised in this pass (each skips what it could not
            decode). The chunk holding the position is parsed again on the next run and reports
            its errors again: for a counter, use ``unreadable``, which is counted once.
        unreadable: Record numbers announced by chunk headers that could not be read (damage).
        lost: Records overwritten in a wrapped log before they could be read.
        replaced: The file no longer held the position's record: it was read from its start.
        chunks_damaged: Chunks whose header is not an EVTX chunk header (skipped whole).
        out_of_order: Records numbered at or below one already read in this pass (a stale
            duplicate chunk), skipped so that no record is counted twice.
        truncated: The file ends inside a chunk (a truncated file, or a copy still being
            written); that chunk's missing records are not counted as unreadable, as they may
            still arrive.
    """

    records: int = 0
    matched: int = 0
    skipped: int = 0
    errors: int = 0
    unreadable: int = 0
    lost: int = 0
    replaced: bool = False
    chunks_damaged: int = 0
    out_of_order: int = 0
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk as its header describes it."""

    index: int  # position in the file
    first: int  # first record number
    last: int  # last record number (the header's claim)
    size: int  # bytes present in the file (less than CHUNK_BYTES for a truncated file)
    next_first: int = 0  # first record number of the chunk that follows in record order; 0: none


def read_evtx(
    path: str | os.PathLike[str],
    *,
    after_record_id: int = 0,
    channels: Iterable[str] | None = None,
    event_ids: Iterable[int] | None = None,
    block_records: int = 1000,
    position: EvtxPosition | None = None,
) -> EvtxReader:
    """Open an EVTX file for reading the records after a position.

    Args:
        path: The .evtx file.
        after_record_id: Read records numbered above this (no anchor check); ``position`` wins.
        channels: Keep records of these channels only (case-insensitive); None or empty: all.
        event_ids: Keep records with these event ids only; None or empty: all.
        block_records: Records per yielded block (per committed batch).
        position: A committed ``EvtxPosition`` (with its anchor and damage bookkeeping).

    Returns:
        An ``EvtxReader``: iterate it for ``(RecordBlock, last_record_id)``; after each block,
        ``reader.position`` is what to commit and ``reader.stats`` what happened so far.

    Raises:
        EvtxFileError: Not an EVTX file.
        OSError: The file cannot be opened.
    """
    start = position if position is not None else EvtxPosition(record_id=after_record_id)
    return EvtxReader(Path(path), start, channels=channels, event_ids=event_ids, block_records=block_records)


class EvtxReader:
    """One pass over an EVTX file after a position; see ``read_evtx``. Iterate it once."""

    def __init__(
        self,
        path: Path,
        start: EvtxPosition,
        *,
        channels: Iterable[str] | None,
        event_ids: Iterable[int] | None,
        block_records: int,
    ) -> None:
        if block_records < 1:
            raise ValueError(f"block_records must be at least 1, got {block_records}")
        self.path = path
        self.start = start
        self.position = start
        self.stats = EvtxStats()
        # None or empty: no filter, as an empty list in the configuration means "all".
        self._channels = {c.casefold() for c in channels or ()} or None
        self._event_ids = {int(i) for i in event_ids or ()} or None
        self._block = block_records
        self._chunks, self.stats.chunks_damaged = scan_chunks(path)
        self.stats.truncated = any(c.size < CHUNK_BYTES for c in self._chunks)

    def __iter__(self) -> Iterator[tuple[RecordBlock, int]]:
        after = self.start.record_id
        if after and self._chunks:
            newest = max(max(c.last for c in self._chunks), max(c.first for c in self._chunks))
            oldest = min(c.first for c in self._chunks)
            if newest < after:
                after = self._restart()
            elif oldest > after + 1:
                self.stats.lost = oldest - after - 1
        elif after and not self._chunks:
            return  # an empty log: nothing to read, nothing to decide yet
        outcome = yield from self._pass(after)
        if outcome == "replaced":
            yield from self._pass(self._restart())

    def _restart(self) -> int:
        self.stats = EvtxStats(replaced=True, chunks_damaged=self.stats.chunks_damaged, truncated=self.stats.truncated)
        self.position = EvtxPosition()
        return 0

    def _pass(self, after: int) -> Generator[tuple[RecordBlock, int], None, str]:
        """Read every record numbered above ``after``; returns "replaced" if the anchor disagrees."""
        chunks = chunks_after(self._chunks, after)
        if not chunks:
            return "done"
        firsts = [c.first for c in chunks]
        delivered: dict[int, set[int]] = {}  # chunk slot -> record numbers read
        unfinished = 0  # chunks before this slot have been tallied for unreadable records
        counted_through = max(after, self.position.unreadable_through)
        anchor_checked = not (after and self.start.anchor and after == self.start.record_id)
        records: list[WindowsEvent] = []
        scanned = 0
        reported_unreadable = self.stats.unreadable
        last_id, last_stamp = self.position.record_id, ""
        with _ChunkView(self.path, chunks) as view:
            for header_id, stamp, data in _records(view, self.stats):
                slot = bisect_right(firsts, header_id) - 1
                if slot >= 0:
                    delivered.setdefault(slot, set()).add(header_id)
                if header_id <= after:
                    if header_id == after and not anchor_checked:
                        anchor_checked = True
                        if anchor_of(stamp) != self.start.anchor:
                            return "replaced"
                    continue
                if not anchor_checked:
                    # The position's record is gone (damaged or overwritten): nothing to compare.
                    anchor_checked = True
                if header_id <= last_id:
                    # A stale copy of a chunk (seen in dirty files): its records were read already.
                    self.stats.out_of_order += 1
                    continue
                self.stats.records += 1
                scanned += 1
                last_id, last_stamp = header_id, stamp
                event = self._event(header_id, stamp, data)
                if event is not None:
                    records.append(event)
                if len(records) >= self._block or scanned >= self._block * SCAN_FACTOR:
                    # Records come in chunk order: every chunk before this record's is complete.
                    counted_through = _count_unreadable(
                        delivered, chunks[unfinished : max(slot, unfinished)], unfinished, counted_through, self.stats
                    )
                    unfinished = max(slot, unfinished)
                    self.position = EvtxPosition(last_id, anchor_of(last_stamp), counted_through)
                    yield RecordBlock(records=tuple(records), origin=str(self.path)), last_id
                    records, scanned, reported_unreadable = [], 0, self.stats.unreadable
        counted_through = _count_unreadable(delivered, chunks[unfinished:], unfinished, counted_through, self.stats)
        if scanned or self.stats.unreadable > reported_unreadable:
            anchor = anchor_of(last_stamp) if last_stamp else self.position.anchor
            self.position = EvtxPosition(last_id, anchor, counted_through)
            yield RecordBlock(records=tuple(records), origin=str(self.path)), last_id
        return "done"

    def _event(self, header_id: int, stamp: str, data: str) -> WindowsEvent | None:
        try:
            event = to_windows_event(json.loads(data), header_id, stamp)
        except (ValueError, TypeError, KeyError, AttributeError):
            self.stats.errors += 1
            return None
        if self._channels is not None and event.channel.casefold() not in self._channels:
            self.stats.skipped += 1
            return None
        if self._event_ids is not None and event.event_id not in self._event_ids:
            self.stats.skipped += 1
            return None
        self.stats.matched += 1
        return event


def _records(view: _ChunkView, stats: EvtxStats) -> Iterator[tuple[int, str, str]]:
    """(record number, header timestamp, JSON) of every record evtx can decode; errors counted."""
    try:
        parser = PyEvtxParser(view, number_of_threads=1)
    except (OSError, RuntimeError) as exc:
        raise EvtxFileError(f"{view.path}: the evtx parser rejects the file: {exc}") from exc
    iterator = parser.records_json()
    consecutive = 0
    while consecutive < MAX_CONSECUTIVE_ERRORS:
        try:
            record = next(iterator)
        except StopIteration:
            return
        except RuntimeError:
            stats.errors += 1
            consecutive += 1
            continue
        if record is None:  # the stubs allow it; a record without content is a damaged one
            stats.errors += 1
            consecutive += 1
            continue
        consecutive = 0
        yield int(record["event_record_id"]), str(record.get("timestamp", "")), record["data"]


def _count_unreadable(
    delivered: dict[int, set[int]], finished: list[Chunk], first_slot: int, counted_through: int, stats: EvtxStats
) -> int:
    """Count the record numbers that ``finished`` chunks announce but did not deliver.

    Only numbers above ``counted_through`` count (those below were counted by an earlier run, or
    lie before the position). Returns the new ``counted_through``.
    """
    for slot, chunk in enumerate(finished, start=first_slot):
        seen = delivered.pop(slot, set())
        if chunk.size < CHUNK_BYTES:
            continue  # cut short (a copy still in progress?): read it whole on a later run
        # Up to the next chunk's first record: a chunk whose header is damaged leaves a gap there.
        end = max(chunk.last, chunk.next_first - 1)
        missing = [n for n in range(max(chunk.first, counted_through + 1), end + 1) if n not in seen]
        if missing:
            stats.unreadable += len(missing)
            counted_through = missing[-1]
    return counted_through


def scan_chunks(path: Path) -> tuple[list[Chunk], int]:
    """The chunks of an EVTX file that hold records, and how many chunk headers are damaged.

    Raises:
        EvtxFileError: The file does not start with an EVTX file header.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        header = f.read(HEADER_BYTES)
        if len(header) < 128 or header[:8] != FILE_MAGIC:
            raise EvtxFileError(f"{path}: not an EVTX file (no ElfFile header)")
        chunks: list[Chunk] = []
        damaged = 0
        index = 0
        while HEADER_BYTES + index * CHUNK_BYTES < size:
            offset = HEADER_BYTES + index * CHUNK_BYTES
            f.seek(offset)
            head = f.read(40)
            present = min(CHUNK_BYTES, size - offset)
            if len(head) == 40 and head[:8] == CHUNK_MAGIC:
                first, last = struct.unpack_from("<QQ", head, 8)
                if first >= 1 and last >= first:
                    chunks.append(Chunk(index=index, first=first, last=last, size=present))
                elif first or last:
                    damaged += 1
            elif head.strip(b"\x00"):
                damaged += 1  # not zero-filled (an unused chunk) yet not a chunk: damaged
            index += 1
    return chunks, damaged


def chunks_after(chunks: list[Chunk], after: int) -> list[Chunk]:
    """The chunks that may hold records numbered above ``after`` (or ``after`` itself), in record order.

    Chunk i of the record-ordered list covers [first_i, first_{i+1} - 1]; the newest chunk's end is
    open, because a live file's chunk header may lag behind the records already in it.
    """
    ordered = sorted(chunks, key=lambda c: c.first)
    keep = []
    for i, chunk in enumerate(ordered):
        next_first = ordered[i + 1].first if i + 1 < len(ordered) else 0
        if not next_first or next_first - 1 >= after:
            keep.append(replace(chunk, next_first=next_first))
    return keep


def anchor_of(stamp: str) -> str:
    """A record header timestamp in one fixed form (100 ns digits), whatever evtx version printed it."""
    match = _STAMP.search(stamp)
    if not match:
        return stamp
    fraction = (match[7] or "").ljust(7, "0")[:7]
    return "".join(match.groups()[:6]) + "." + fraction


def parse_time(text: str) -> datetime | None:
    """``2016-06-29T15:24:34.346000Z`` (any number of fraction digits) as aware UTC, or None."""
    match = _STAMP.search(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micro = int((match[7] or "").ljust(6, "0")[:6])
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone.utc)
    except ValueError:
        return None


def to_windows_event(doc: Mapping[str, Any], header_id: int = 0, header_stamp: str = "") -> WindowsEvent:
    """Normalise one record of evtx's JSON (``json.loads(record["data"])``) into a ``WindowsEvent``."""
    event = doc["Event"]
    system = event.get("System") or {}
    provider = system.get("Provider")
    attrs = provider.get("#attributes", {}) if isinstance(provider, dict) else {}
    provider_name = attrs.get("Name") or attrs.get("EventSourceName") or ""
    created = system.get("TimeCreated")
    created_attrs = created.get("#attributes", {}) if isinstance(created, dict) else {}
    time = parse_time(str(created_attrs.get("SystemTime", ""))) or parse_time(header_stamp)
    record_id = system.get("EventRecordID")
    data: dict[str, str] = {}
    if event.get("EventData") is not None:
        _flatten_event_data(event["EventData"], data)
    if event.get("UserData") is not None:
        _flatten_user_data(event["UserData"], data)
    return WindowsEvent(
        record_id=_int(record_id, header_id),
        time=time or datetime(1601, 1, 1, tzinfo=timezone.utc),
        channel=_text(system.get("Channel")),
        provider=str(provider_name),
        event_id=_event_id(system.get("EventID")),
        level=_int(system.get("Level"), 0),
        keywords=_int(system.get("Keywords"), 0),
        computer=_text(system.get("Computer")),
        data=data,
    )


def _event_id(value: Any) -> int:
    if isinstance(value, dict):
        value = value.get("#text")
    return _int(value, 0) & 0xFFFF  # classic ids may carry qualifier bits above the low 16


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 16) if text.lower().startswith("0x") else int(text)
        except ValueError:
            return default
    return default


def _text(value: Any) -> str:
    """One value as text: strings as they are, booleans as XML writes them, null as ""."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return json.dumps(value, sort_keys=True)


def _flatten_event_data(section: Any, out: dict[str, str]) -> None:
    """EventData: named ``<Data Name=..>`` values by name, unnamed ``<Data>`` by position."""
    if not isinstance(section, dict):
        _positional(section, out)
        return
    for name, value in section.items():
        if name == "#attributes":
            _attributes("", value, out)
        elif name == "Data":
            _positional(value.get("#text") if isinstance(value, dict) else value, out)
        elif name == "#text":
            _positional(value, out)
        elif name == "Binary":
            if value is not None:
                out["Binary"] = _text(value)
        else:
            _flatten(name, value, out)


def _positional(values: Any, out: dict[str, str]) -> None:
    items = values if isinstance(values, list) else [values]
    for i, value in enumerate(items):
        out[str(i)] = _text(value)


def _flatten_user_data(section: Any, out: dict[str, str]) -> None:
    """UserData wraps one provider-defined element: its children become the data."""
    if not isinstance(section, dict):
        _positional(section, out)
        return
    for name, value in section.items():
        if name == "#attributes":
            continue
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "#attributes":
                    _attributes("", inner, out)
                elif key == "#text":
                    out[name] = _text(inner)
                else:
                    _flatten(key, inner, out)
        else:
            out[name] = _text(value)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if type(value) is str:
        out[prefix] = value  # the common case, first
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key == "#attributes":
                _attributes(prefix, inner, out)
            elif key == "#text":
                out[prefix] = _text(inner)
            else:
                _flatten(f"{prefix}.{key}", inner, out)
    else:
        out[prefix] = _text(value)


def _attributes(prefix: str, attrs: Any, out: dict[str, str]) -> None:
    if not isinstance(attrs, dict):
        return
    for name, value in attrs.items():
        if name == "xmlns" or name.startswith("xmlns:"):
            continue  # namespace declarations are markup, not data
        out[f"{prefix}@{name}"] = _text(value)


class _ChunkView(io.RawIOBase):
    """A read-only file made of an EVTX file's header and some of its chunks, in a chosen order."""

    def __init__(self, path: Path, chunks: list[Chunk]) -> None:
        super().__init__()
        self.path = path
        self._file = path.open("rb")
        # (virtual start, real offset, length) for the header and each chunk
        self._parts: list[tuple[int, int, int]] = [(0, 0, HEADER_BYTES)]
        virtual = HEADER_BYTES
        for chunk in chunks:
            self._parts.append((virtual, HEADER_BYTES + chunk.index * CHUNK_BYTES, chunk.size))
            virtual += chunk.size
        self._starts = [p[0] for p in self._parts]
        self._size = virtual
        self._pos = 0

    def __enter__(self) -> _ChunkView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()
        super().close()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            part = bisect_right(self._starts, self._pos) - 1
            start, real, length = self._parts[part]
            within = self._pos - start
            want = min(length - within, len(view) - done)
            self._file.seek(real + within)
            got = self._file.readinto(view[done : done + want])
            if not got:
                break  # the file shrank under us: end of data
            done += got
            self._pos += got
        return done
