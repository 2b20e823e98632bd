"""Windows event log files (.evtx), read with the ``evtx`` package and checkpointed by record id.

``read_evtx(path, ...)`` returns an ``EvtxReader``; iterating it yields ``(RecordBlock, last_record_id)``
with ``WindowsEvent`` records. After each block, ``reader.position`` is the ``EvtxPosition`` to
commit with that block's observations (``position.to_json()``), and ``reader.stats`` counts what
was read, filtered out, damaged or lost so far. The agent and ``normagent parse`` run a pass in a
child process (``normagent.sources.evtx_process``, which gives the same blocks through the same
interface), so that a crash of the native parser or the memory a pass fragments stays there.

How a file is read, and why:

* An EVTX file is a 4 KiB header followed by 64 KiB chunks; each chunk header names the first and
  last record number it holds. We read those headers ourselves (a few bytes per chunk) and hand the
  ``evtx`` parser the file's header and one chunk at a time, only the chunks that can hold records
  after the saved position, ordered by record number. So a resume parses the new chunks, not the
  whole file (a 1 GB Security.evtx costs what its new records cost), a log that wrapped around (a
  circular live log, whose oldest chunk is overwritten in place) is still read in record order, and
  every record is known to come from the chunk it was read from.
* Record numbers are checked before anything trusts them: a record header's number must lie in
  its chunk header's first..last range (below the file header's next record number when that
  header is clean and its checksum holds), and the numbers of one chunk must rise. A record whose
  number does not fit (one flipped bit turns 101 into 16,777,317) is skipped and counted in
  ``stats.implausible``; the number it should have had is then missing from its chunk and counted
  once in ``stats.unreadable``. Where the order alone cannot tell which of two records is damaged,
  the one whose System/EventRecordID agrees with its header wins. So no damaged number is ever
  delivered or checkpointed, and one damaged record costs that record only.
* Position = the record number of the last record read (the record header's number, by which the
  file is ordered) plus an *anchor*: that record's time, and *witnesses*: the number and time of
  records read earlier (the first record read from the file, and the first one the latest pass
  saw). If the file no longer holds the position's record with that time, or holds only lower
  numbers, it may have been replaced (a new export, a cleared log) — or it is the same log, damaged
  or rolled back to an older copy. It is read again from its start (``stats.replaced``) only when
  nothing read before is in it: the anchor's time at another number means the same log (an earlier
  version's checkpoint may hold a damaged number: reading resumes after the record that has the
  time), and a witness still in the file means the same log as well (reading resumes after the
  position). So replacement detection cannot count a record twice. If the file's oldest record is
  newer than the position, the records in between were overwritten before we read them:
  ``stats.lost`` counts them.
* Damage: ``evtx`` raises ``RuntimeError`` for a record it cannot decode and carries on with the
  next one. We catch it per record (``skip_errors=True`` would report through ``warnings``, whose
  state is process-global and not thread-safe, and older ``evtx`` versions lack the keyword): each
  is counted in ``stats.errors``, as is a record it gives whose content is no event (its BinXML
  decodes to ``{"Event": null}``). A damaged record can make the rest of its chunk unreadable, so
  ``stats.unreadable`` counts the record numbers a chunk header announces that were not delivered
  (such a record included); the position remembers how far that was counted, so a damaged chunk
  that is re-read on the next run is not counted twice. A chunk whose header is damaged is
  placed by its records' own headers (walked by their sizes, numbers rising one by one): read
  by them where only its numbers are damaged, counted unreadable by them where it is no chunk
  header at all, so an oldest or newest chunk, which no neighbour's numbers account for, is not
  lost without a count.
* A file copied over in place while a pass reads it (``cp`` onto it) shows the pass the new
  file's chunks under the old file's chunk map: the pass ends at the first chunk whose header
  the parser read with another first number than the scan did (``stats.changed``), and the
  next pass sees the new file as such.
* A chunk that crashes the native parser (a segfault, a Rust panic: the pass runs in a child
  process, see ``normagent.sources.evtx_process``) would otherwise stop the file there for good:
  every pass resumes from the committed position and crashes on the same chunk. So the reader
  announces each chunk before it parses it and when the parser is done with it (``on_chunk``),
  the agent keeps a crash (or a hang) in the parser in the position (``crashed``, ``crashes``),
  and a position whose chunk crashed twice makes the reader skip that chunk: the numbers it announces after the position count once in
  ``stats.unreadable`` and ``stats.chunks_skipped`` counts the chunk. A chunk that parses after
  one crash was bad luck (the OOM killer): its mark is dropped and it is read as any other. A
  chunk every number of which was counted unreadable already (below ``unreadable_through``, not
  the newest chunk, which may still grow) is not parsed again: nothing in it can be delivered
  without being counted twice, and a crashing chunk skipped before stays skipped when another
  crash takes the position's mark.
* A file that is not an EVTX file at all, or one cut inside its header, raises ``EvtxFileError``
  saying what is wrong; ``incomplete`` tells a file that may still be being copied (what is there
  is the start of an EVTX header) from one that never will be.
* ``WindowsEvent.record_id`` is System/EventRecordID, the number Windows shows; it equals the
  record header's number in files Windows wrote (a file assembled from selected records, like
  the test sample ``Security_short_selected.evtx``, may differ).

Values are normalised from evtx's JSON (see logformats.md §12.2): EventID with or without
Qualifiers, Keywords hex to int, TimeCreated/SystemTime to aware UTC, every data value to ``str``
(``true``/``false`` as XML writes them, null as ""), unnamed ``Data`` as ``"0"``, ``"1"``…, and
UserData flattened (``Error@Code`` for an attribute of a nested element).

Imports only the standard library (with normagent's ``dataclass``), the evtx package and
normagent.model.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

from normagent.model import RecordBlock, WindowsEvent
from normagent.records import dataclass
from normagent.sources.evtx_settings import EvtxSettings as EvtxSettings  # where it was before
from normagent.sources.evtx_state import (  # where they were before: the reader's own types
    SKIP_AFTER_CRASHES as SKIP_AFTER_CRASHES,
    ChunkSpan as ChunkSpan,
    EvtxFileError as EvtxFileError,
    EvtxPosition as EvtxPosition,
    EvtxStats as EvtxStats,
    Witness as Witness,
)
from normagent.timeparse import strptime

FILE_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
RECORD_MAGIC = b"\x2a\x2a\x00\x00"
HEADER_BYTES = 4096
FILE_HEADER_BYTES = 128  # the part of the file header that holds values; the rest is padding
CHUNK_BYTES = 65536
CHUNK_HEADER_BYTES = 512
RECORD_HEADER_BYTES = 24  # signature, size, record number, time
MIN_RECORD_BYTES = 28  # a record header and the copy of its size that ends the record
MAX_RECORDS_PER_CHUNK = (CHUNK_BYTES - CHUNK_HEADER_BYTES) // MIN_RECORD_BYTES
FILE_DIRTY = 0x1  # file header flag: the log was open for writing, its header may lag behind
MAX_CONSECUTIVE_ERRORS = 10_000  # a parser stuck raising on one spot must not spin forever
SCAN_FACTOR = 10  # yield (a possibly empty block) at least every block_records * SCAN_FACTOR records
_STAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?")
_ANCHOR = re.compile(r"(\d{14})\.(\d{7})")
_EVENT_RECORD_ID = re.compile(r'"EventRecordID":\s*"?(\d+)')
_FILETIME_EPOCH = datetime(1601, 1, 1)
_TICKS = 10_000_000  # FILETIME counts 100 ns ticks



def chunk_span(chunk: Chunk) -> ChunkSpan:
    """How ``chunk`` is announced, and named in a crash mark."""
    return ChunkSpan(offset=HEADER_BYTES + chunk.index * CHUNK_BYTES, first=chunk.first, last=chunk.last)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk as its header describes it."""

    index: int  # position in the file
    first: int  # first record number
    last: int  # last record number (the header's claim, cut to what the file and the chunk can hold)
    size: int  # bytes present in the file (less than CHUNK_BYTES for a truncated file)
    next_first: int = 0  # first record number of the chunk that follows in record order; 0: none
    free: int = CHUNK_BYTES  # where the chunk's free space starts: its records end there
    trusted: bool = True  # the chunk header's checksum holds
    damaged: bool = False  # its header is no chunk header: first..last is what its record headers say
    seen: int = 0  # header checksum fails: the last number its record headers show within first..last; 0: none
    header_first: int = 0  # the first number its header gave when the file was scanned, damaged or not


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
        EvtxFileError: Not an EVTX file, or cut inside its header.
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
        # Called with each chunk right before the native parser gets it, and with None once the
        # parser is done with it (freed): the EVTX worker tells the agent, so that a crash or a
        # hang in the parser names its chunk and the next pass can skip it.
        self.on_chunk: Callable[[ChunkSpan | None], None] | None = None
        crashed = start.crashed
        if crashed is not None and not any(chunk_span(c).same_chunk(crashed) for c in self._chunks):
            # That chunk is gone (overwritten by a wrapped log, a new file): the mark with it.
            self.position = replace(start, crashed=None, crashes=0)

    def __iter__(self) -> Iterator[tuple[RecordBlock, int]]:
        after = self.start.record_id
        if after and not self._chunks:
            return  # an empty log: nothing to read, nothing to decide yet
        if after:
            newest = max(max(c.last for c in self._chunks), max(c.first for c in self._chunks))
            oldest = min(c.first for c in self._chunks)
            if newest < after:
                after = self._relocate()
            elif oldest > after + 1:
                self.stats.lost = oldest - after - 1
        outcome = yield from self._pass(after, check_anchor=not self.stats.relocated)
        if outcome == "moved":
            yield from self._pass(self._relocate(), check_anchor=False)

    def _relocate(self) -> int:
        """The position's record is not where the position says: find the log's place, or start over.

        Returns the record number to read after.
        """
        start = self.start
        timed, witnessed = search_records(self.path, self._chunks, start.anchor, start.witnesses)
        found = _same_record(start.record_id, timed)
        if found is not None:
            # The record read last is here under another number: an earlier version of this
            # reader committed a damaged number. Read on after that record's true place.
            self.stats.relocated = True
            self.position = replace(start, record_id=found)
            return found
        if witnessed:
            # The same log, rolled back to an older copy or with the position's record damaged:
            # what is above the position is new, what is below it was read.
            self.stats.relocated = True
            return start.record_id
        self.stats = EvtxStats(replaced=True, chunks_damaged=self.stats.chunks_damaged, truncated=self.stats.truncated)
        self.position = EvtxPosition()  # a crash mark was about another file
        return 0

    def _pass(self, after: int, *, check_anchor: bool) -> Generator[tuple[RecordBlock, int], None, str]:
        """Read every record numbered above ``after``; returns "moved" if the anchor disagrees."""
        chunks = chunks_after(self._chunks, after)
        if not chunks:
            return "done"
        counted_through = max(after, self.position.unreadable_through)
        counted_before = counted_through
        anchor_checked = not (check_anchor and after and self.start.anchor and after == self.start.record_id)
        witnesses = self.position.witnesses
        first_seen: Witness | None = None
        records: list[WindowsEvent] = []
        scanned = 0
        reported_unreadable = self.stats.unreadable
        last_id, last_stamp = self.position.record_id, ""
        with _ChunkView(self.path) as view:
            for chunk in chunks:
                before = chunk.first - 1  # the chunk's last record number so far
                span = chunk_span(chunk)
                if chunk.next_first and after < chunk.first and chunk.next_first - 1 <= counted_before:
                    continue  # every number it holds was counted unreadable: nothing in it can be delivered
                if chunk.damaged or self.position.skips(span):
                    # Its header is damaged, or the parser crashed in it on two passes: its numbers
                    # after the position count as unreadable (once: the position carries how far),
                    # and reading goes on.
                    counted_through = _count_unreadable(chunk, chunk.first, _chunk_end(chunk, before), max(counted_through, last_id), self.stats)
                    if not chunk.damaged:
                        self.stats.chunks_skipped += 1
                    if self.stats.unreadable > reported_unreadable:
                        # Out with the count at once: should the next chunk crash the parser too, the
                        # position that takes its mark already says this one was counted (and is
                        # not parsed again).
                        anchor = anchor_of(last_stamp) if last_stamp else self.position.anchor
                        self.position = self._moved(last_id, anchor, counted_through, witnesses)
                        yield RecordBlock(records=tuple(records), origin=str(self.path)), last_id
                        records, scanned, reported_unreadable = [], 0, self.stats.unreadable
                    continue
                if self.on_chunk is not None:
                    self.on_chunk(span)
                parsed = self._chunk_records(view, chunk)
                if self.on_chunk is not None:
                    self.on_chunk(None)
                if view.first_number() not in (None, chunk.header_first):
                    self.stats.changed = True
                    break
                if self.position.crashed is not None and self.position.crashed.same_chunk(span):
                    self.position = replace(self.position, crashed=None, crashes=0)  # it parses: the crash was bad luck
                for header_id, stamp, data in parsed:
                    # A chunk's numbers rise one by one: a gap is damage, known as soon as it shows.
                    counted_through = _count_unreadable(chunk, before + 1, header_id - 1, max(counted_through, last_id), self.stats)
                    before = header_id
                    if first_seen is None:
                        first_seen = (header_id, anchor_of(stamp))
                        origin = witnesses[0] if witnesses else first_seen
                        witnesses = (origin, first_seen) if origin != first_seen else (origin,)
                    if header_id <= after:
                        if header_id == after and not anchor_checked:
                            anchor_checked = True
                            if not same_time(anchor_of(stamp), self.start.anchor):
                                return "moved"
                        continue
                    # Past the position: if its record was not seen (damaged, overwritten),
                    # there is nothing to compare.
                    anchor_checked = True
                    if header_id <= last_id:
                        # A stale copy of a chunk (seen in dirty files): its records were read already.
                        self.stats.out_of_order += 1
                        continue
                    self.stats.records += 1
                    scanned += 1
                    last_id, last_stamp = header_id, stamp
                    event = self._event(header_id, stamp, data)
                    if event is None:
                        if header_id > counted_through:
                            # The parser gave this record, but no event (its XML decoded to
                            # nothing): announced and never delivered, as a gap is. Counted once:
                            # the position passes it with this block.
                            self.stats.unreadable += 1
                            self.stats.damaged_at(span.offset)
                            counted_through = header_id
                    elif self._wanted(event):
                        records.append(event)
                    if len(records) >= self._block or scanned >= self._block * SCAN_FACTOR:
                        # The position carries how far unreadable numbers were counted, so the
                        # count rides with this block and is not repeated by the next run.
                        self.position = self._moved(last_id, anchor_of(last_stamp), counted_through, witnesses)
                        yield RecordBlock(records=tuple(records), origin=str(self.path)), last_id
                        records, scanned, reported_unreadable = [], 0, self.stats.unreadable
                end = _chunk_end(chunk, before)
                counted_through = _count_unreadable(chunk, before + 1, end, max(counted_through, last_id), self.stats)
        if scanned or self.stats.unreadable > reported_unreadable:
            anchor = anchor_of(last_stamp) if last_stamp else self.position.anchor
            self.position = self._moved(last_id, anchor, counted_through, witnesses)
            yield RecordBlock(records=tuple(records), origin=str(self.path)), last_id
        return "done"

    def _moved(self, record_id: int, anchor: str, counted_through: int, witnesses: tuple[Witness, ...]) -> EvtxPosition:
        """The position after a block: the crash mark rides along until reading has passed its chunk."""
        crashed = self.position.crashed
        if crashed is not None and record_id > crashed.last:
            crashed = None
        return EvtxPosition(record_id, anchor, counted_through, witnesses, crashed, self.position.crashes if crashed else 0)

    def _chunk_records(self, view: _ChunkView, chunk: Chunk) -> list[tuple[int, str, str]]:
        """The records of one chunk whose numbers fit it, in order; the others counted as implausible."""
        view.show(chunk)
        got = list(_records(view, self.stats))
        kept = consistent_records(got, chunk)
        self.stats.implausible += len(got) - len(kept)
        return kept

    def _event(self, header_id: int, stamp: str, data: str) -> WindowsEvent | None:
        """The record as an event; None (counted in ``errors``) if its JSON is no event."""
        try:
            return to_windows_event(json.loads(data), header_id, stamp)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            self.stats.errors += 1
            return None

    def _wanted(self, event: WindowsEvent) -> bool:
        """Whether ``event`` passes the channel and event-id filters (counted in ``matched`` or ``skipped``)."""
        if self._channels is not None and event.channel.casefold() not in self._channels:
            self.stats.skipped += 1
            return False
        if self._event_ids is not None and event.event_id not in self._event_ids:
            self.stats.skipped += 1
            return False
        self.stats.matched += 1
        return True


def _records(view: _ChunkView, stats: EvtxStats) -> Iterator[tuple[int, str, str]]:
    """(record number, header timestamp, JSON) of every record evtx can decode; errors counted."""
    try:
        from evtx import PyEvtxParser  # a 1.3 MB native module: loaded by the first EVTX read, not at start

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


def consistent_records(records: list[tuple[int, str, str]], chunk: Chunk) -> list[tuple[int, str, str]]:
    """The records of one chunk whose header numbers can be true: in the chunk's range, and rising.

    Windows numbers the records of a chunk one after the other, so a number outside the chunk's
    first..last, or one that breaks the rise, is damage. Where numbers do not rise, the most
    records that do are kept (a longest rising run); of two records with the same number, the
    one whose System/EventRecordID agrees with its header wins. Everything else is left out.
    """
    fit = [r for r in records if chunk.first <= r[0] <= chunk.last]
    if all(a[0] < b[0] for a, b in zip(fit, fit[1:])):
        return fit
    return _longest_rising(fit)


def _longest_rising(records: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """A longest run of records with strictly rising numbers (patience sorting, n log n)."""
    tails: list[int] = []  # index of the record ending the best run of each length
    tail_numbers: list[int] = []
    before = [-1] * len(records)  # the record preceding each one in its best run
    for i, (number, _, data) in enumerate(records):
        k = bisect_left(tail_numbers, number)
        if k < len(tails) and tail_numbers[k] == number:
            # Two records claim one number: keep the one whose content agrees with it.
            if not (_agrees(number, data) and not _agrees(number, records[tails[k]][2])):
                continue
        before[i] = tails[k - 1] if k else -1
        if k == len(tails):
            tails.append(i)
            tail_numbers.append(number)
        else:
            tails[k], tail_numbers[k] = i, number
    run: list[tuple[int, str, str]] = []
    i = tails[-1] if tails else -1
    while i >= 0:
        run.append(records[i])
        i = before[i]
    return run[::-1]


def _agrees(number: int, data: str) -> bool:
    match = _EVENT_RECORD_ID.search(data)
    return match is not None and int(match[1]) == number


def _count_unreadable(chunk: Chunk, low: int, high: int, counted_through: int, stats: EvtxStats) -> int:
    """Count the record numbers ``low``..``high`` of ``chunk`` as unreadable: announced, never delivered.

    Only numbers above ``counted_through`` count: those below were delivered, counted by an
    earlier run, or lie before the position. Returns the new ``counted_through``.
    """
    if chunk.size < CHUNK_BYTES:
        return counted_through  # cut short (a copy still in progress?): read it whole on a later run
    low = max(low, counted_through + 1)
    if low > high:
        return counted_through
    stats.unreadable += high - low + 1
    stats.damaged_at(chunk_span(chunk).offset)
    return high


def _chunk_end(chunk: Chunk, delivered: int) -> int:
    """The last number a finished chunk accounts for; ``delivered`` is the last it delivered.

    Up to the next chunk's first record: a chunk whose header is damaged leaves a gap there. The
    newest chunk ends where its header says, unless that header's checksum fails: then at the
    last record both its header and its record headers show (``Chunk.seen``), a record present
    in the file that the parser could not give.
    """
    if not chunk.next_first and not chunk.trusted:
        return max(delivered, chunk.seen)
    return max(chunk.last, chunk.next_first - 1)


def scan_chunks(path: Path) -> tuple[list[Chunk], int]:
    """The chunks of an EVTX file that hold records, and how many chunk headers are damaged.

    A chunk header whose numbers cannot be true (first above last, more records than a chunk can
    hold, numbers at or past the file header's next record number where that header is clean and
    its checksum holds) is damaged. One whose checksum fails is read, within what a chunk can hold
    and (see ``chunks_after``) below the next chunk's first record.

    Raises:
        EvtxFileError: The file does not start with an EVTX file header.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        header = f.read(HEADER_BYTES)
        check_file_header(path, header)
        bound = _next_record(header)
        chunks: list[Chunk] = []
        damaged = 0
        lost: list[tuple[int, bool]] = []  # damaged chunk headers: index, and whether the parser can read it
        walked: list[tuple[int, tuple[int, int]]] = []  # chunks whose first number their records deny
        index = 0
        while HEADER_BYTES + index * CHUNK_BYTES < size:
            offset = HEADER_BYTES + index * CHUNK_BYTES
            f.seek(offset)
            head = f.read(CHUNK_HEADER_BYTES)
            present = min(CHUNK_BYTES, size - offset)
            if len(head) >= 56 and head[:8] == CHUNK_MAGIC:
                first, last = struct.unpack_from("<QQ", head, 8)
                (free,) = struct.unpack_from("<I", head, 48)
                trusted = len(head) == CHUNK_HEADER_BYTES and zlib.crc32(head[128:], zlib.crc32(head[:120])) == struct.unpack_from("<I", head, 124)[0]
                if bound is not None:
                    last = min(last, bound - 1)
                if not trusted:
                    last = min(last, first + MAX_RECORDS_PER_CHUNK - 1)
                if 1 <= first <= last and last - first < MAX_RECORDS_PER_CHUNK:
                    seen = 0
                    if not trusted:
                        f.seek(offset)
                        numbers = _walk_numbers(f.read(CHUNK_BYTES))
                        seen = min(numbers[1], last) if numbers is not None and numbers[0] == first else 0
                        if numbers is not None and numbers[0] != first:
                            walked.append((len(chunks), numbers))
                    chunks.append(Chunk(index=index, first=first, last=last, size=present, free=min(free, present), trusted=trusted, seen=seen, header_first=first))
                elif first or last:
                    damaged += 1
                    lost.append((index, not trusted))
            elif head[:40].strip(b"\x00"):
                damaged += 1  # not zero-filled (an unused chunk) yet not a chunk: damaged
                lost.append((index, False))
            index += 1
        for i, (first, last) in walked:
            # The header's checksum fails and its first number is not its first record's: the
            # number is damaged (1 read as 9 left records 1..8 below the oldest chunk, lost).
            # The records' own numbers stand, unless another chunk holds them.
            if (bound is None or last < bound) and not any(c.first <= last and first <= c.last for j, c in enumerate(chunks) if j != i):
                chunks[i] = replace(chunks[i], first=first, last=last, seen=last)
        chunks += _damaged_chunks(f, lost, size, bound, chunks)
    return chunks, damaged


def _damaged_chunks(f: BinaryIO, lost: list[tuple[int, bool]], size: int, bound: int | None, chunks: list[Chunk]) -> list[Chunk]:
    """The chunks among ``lost`` (damaged headers: index, readable) whose record headers still
    tell their numbers.

    A chunk whose header is not a chunk header is not parsed (``Chunk.damaged``), but its numbers
    are counted as unreadable: where it is the oldest or the newest chunk, no neighbour's numbers
    tell that it held any. One that is a chunk header with numbers that cannot be true and a
    checksum that fails (``readable``: one flipped bit in its first number) is read by those
    numbers. The numbers are the first run of record headers, walked by their sizes, that rise
    one by one; a run that overlaps a readable chunk's numbers (a stale copy) or lies at or past
    the file header's next record number is left out.
    """
    out: list[Chunk] = []
    for index, readable in lost:
        offset = HEADER_BYTES + index * CHUNK_BYTES
        f.seek(offset)
        data = f.read(CHUNK_BYTES)
        numbers = _walk_numbers(data)
        if not numbers:
            continue
        first, last = numbers
        if bound is not None and last >= bound:
            continue
        if any(c.first <= last and first <= c.last for c in chunks):
            continue
        present = min(CHUNK_BYTES, size - offset)
        (header_first,) = struct.unpack_from("<Q", data, 8)
        out.append(Chunk(index=index, first=first, last=last, size=present, free=present, trusted=False, damaged=not readable, seen=last, header_first=header_first))
    return out


def _walk_numbers(data: bytes) -> tuple[int, int] | None:
    """First and last number of the records at the start of a chunk's data whose numbers rise by one."""
    offset = CHUNK_HEADER_BYTES
    first = last = 0
    while offset + RECORD_HEADER_BYTES <= len(data) and data[offset : offset + 4] == RECORD_MAGIC:
        size, number = struct.unpack_from("<IQ", data, offset + 4)
        if size < MIN_RECORD_BYTES or offset + size > len(data) or (last and number != last + 1):
            break
        first, last = first or number, number
        offset += size
    return (first, last) if first >= 1 and last - first < MAX_RECORDS_PER_CHUNK else None


def check_file_header(path: Path, header: bytes) -> None:
    """Raise ``EvtxFileError`` saying what is wrong if ``header`` (the file's first bytes) cannot start an EVTX file."""
    if not header:
        raise EvtxFileError(f"{path}: empty file, not an EVTX file", incomplete=True)
    if header[: len(FILE_MAGIC)] != FILE_MAGIC[: len(header)]:
        raise EvtxFileError(f"{path}: not an EVTX file (it does not start with the ElfFile header)")
    if len(header) < FILE_HEADER_BYTES:
        raise EvtxFileError(f"{path}: cut short: its {len(header)} bytes end inside the EVTX file header", incomplete=True)


def _next_record(header: bytes) -> int | None:
    """The file header's next record number, if the header can be believed: clean, and its checksum holds."""
    (flags, checksum) = struct.unpack_from("<II", header, 120)
    if flags & FILE_DIRTY or zlib.crc32(header[:120]) != checksum:
        return None  # a dirty header lags behind the chunks (system.evtx: 3 chunks counted, 15 used)
    (next_record,) = struct.unpack_from("<Q", header, 24)
    return next_record if next_record > 1 else None


def chunks_after(chunks: list[Chunk], after: int) -> list[Chunk]:
    """The chunks that may hold records numbered above ``after`` (or ``after`` itself), in record order.

    Chunk i of the record-ordered list covers [first_i, first_{i+1} - 1]. A chunk whose header
    checksum fails holds no record at or past the next chunk's first.
    """
    ordered = sorted(chunks, key=lambda c: c.first)
    keep = []
    for i, chunk in enumerate(ordered):
        next_first = ordered[i + 1].first if i + 1 < len(ordered) else 0
        if not next_first or next_first - 1 >= after:
            last = chunk.last if chunk.trusted or not next_first else min(chunk.last, max(next_first - 1, chunk.first))
            keep.append(replace(chunk, next_first=next_first, last=last))
    return keep


def search_records(path: Path, chunks: list[Chunk], anchor: str, witnesses: Iterable[Witness]) -> tuple[list[tuple[int, int]], bool]:
    """Look through a file's record headers (without decoding records) for records read before.

    Returns (place, header number) of every record whose time is ``anchor`` — the place being the
    number the record's position in its chunk gives it, which differs from the header's only where
    that is damaged — and whether any witness (number and time) is in the file. Windows gives many
    records the same time (a burst of logons within 100 ns), so a time alone names no record.
    """
    wanted = time_range(anchor) if anchor else None
    known = [(number, r) for number, stamp in witnesses if (r := time_range(stamp)) is not None]
    timed: list[tuple[int, int]] = []
    witnessed = False
    with path.open("rb") as f:
        for chunk in sorted(chunks, key=lambda c: c.first):
            before = chunk.first - 1  # the number of the record before, as far as numbers can be believed
            for number, filetime in _record_headers(f, chunk):
                place = number if before < number <= chunk.last else before + 1  # a damaged number still takes a place
                if wanted is not None and wanted[0] <= filetime <= wanted[1]:
                    timed.append((place, number))
                if not witnessed and any(n == number and lo <= filetime <= hi for n, (lo, hi) in known):
                    witnessed = True
                before = place
    return timed, witnessed


def _same_record(committed: int, timed: list[tuple[int, int]]) -> int | None:
    """Which of the records with the anchor's time is the one committed as number ``committed``.

    The record itself, its header still damaged the same way; else the one record whose place is
    one flipped bit away from ``committed`` (the damage seen in the wild: 101 read as 16,777,317).
    None when neither is there, or when several records are as likely.
    """
    for place, number in timed:
        if number == committed and place != committed:
            return place
    near = {place for place, _ in timed if (place ^ committed).bit_count() == 1}
    return near.pop() if len(near) == 1 else None


def _record_headers(f: BinaryIO, chunk: Chunk) -> Iterator[tuple[int, int]]:
    """(number, FILETIME) of each record header of a chunk, walked by the sizes the headers give."""
    f.seek(HEADER_BYTES + chunk.index * CHUNK_BYTES)
    data = f.read(chunk.size)
    end = min(chunk.free, len(data))
    offset = CHUNK_HEADER_BYTES
    while offset + RECORD_HEADER_BYTES <= end and data[offset : offset + 4] == RECORD_MAGIC:
        size, number, filetime = struct.unpack_from("<IQQ", data, offset + 4)
        if size < MIN_RECORD_BYTES or offset + size > end:
            return
        yield number, filetime
        offset += size


def time_range(anchor: str) -> tuple[int, int] | None:
    """The FILETIMEs (100 ns ticks since 1601) an anchor can stand for; None if it is no anchor.

    An older evtx printed fewer fraction digits (milliseconds, microseconds), which ``anchor_of``
    padded with zeros: trailing zeros widen the range to every tick they may have cut off.
    """
    match = _ANCHOR.fullmatch(anchor)
    if match is None:
        return None
    try:
        seconds = (strptime(match[1], "%Y%m%d%H%M%S") - _FILETIME_EPOCH) // timedelta(seconds=1)
    except ValueError:
        return None
    digits = match[2].rstrip("0")
    base = seconds * _TICKS
    return base + int(digits.ljust(7, "0")), base + int(digits.ljust(7, "9"))


def same_time(seen: str, anchor: str) -> bool:
    """Whether two anchors can be the same instant (one may be printed with fewer digits)."""
    if seen == anchor:
        return True
    a, b = time_range(seen), time_range(anchor)
    return a is not None and b is not None and a[0] <= b[1] and b[0] <= a[1]


def filetime_anchor(filetime: int) -> str:
    """The anchor of a record header's raw time, as ``anchor_of`` gives it for evtx's printed one."""
    seconds, ticks = divmod(filetime, _TICKS)
    try:
        when = _FILETIME_EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return ""
    return f"{when.year:04d}{when.month:02d}{when.day:02d}{when.hour:02d}{when.minute:02d}{when.second:02d}.{ticks:07d}"


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
    """A read-only file made of an EVTX file's header and one of its chunks (``show``).

    The evtx parser reads it as a file of one chunk, so every record it yields is known to come
    from that chunk: a record's number can be checked against the chunk that holds it.

    The chunk header's last record id (``_LAST_ID_AT``) reads as the largest number: evtx stops a
    chunk at the first record whose number is at or above it, so one record whose number was
    damaged into the chunk's last (618 read as 622 in a chunk of 531..622) ended the chunk there,
    and the good records after it were lost. The chunk ends at its free space all the same, and
    ``consistent_records`` leaves out whatever number does not fit.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._file = path.open("rb")
        # (virtual start, real offset, length) for the header and the chunk shown
        self._parts: list[tuple[int, int, int]] = [(0, 0, HEADER_BYTES)]
        self._starts = [0]
        self._size = HEADER_BYTES
        self._pos = 0
        self._first = bytearray(8)
        self._first_read = 0

    def show(self, chunk: Chunk) -> None:
        """Make the view the file's header and ``chunk``, read from the start."""
        self._parts = [(0, 0, HEADER_BYTES), (HEADER_BYTES, HEADER_BYTES + chunk.index * CHUNK_BYTES, chunk.size)]
        self._starts = [0, HEADER_BYTES]
        self._size = HEADER_BYTES + chunk.size
        self._pos = 0
        self._first = bytearray(8)  # the chunk header's first record number, as the parser read it
        self._first_read = 0  # which of its bytes were read (a bit each)

    def first_number(self) -> int | None:
        """The chunk header's first record number as the parser read it; None if it did not read it."""
        return int.from_bytes(self._first, "little") if self._first_read == 0xFF else None

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
            if part == 1 and within < _FIRST_AT + 8 and within + got > _FIRST_AT:
                low, high = max(within, _FIRST_AT), min(within + got, _FIRST_AT + 8)
                self._first[low - _FIRST_AT : high - _FIRST_AT] = view[done + low - within : done + high - within]
                self._first_read |= ((1 << (high - low)) - 1) << (low - _FIRST_AT)
            if part == 1 and within < _LAST_ID_AT + 8 and within + got > _LAST_ID_AT:
                # The chunk header's last record id, as the largest number (see the class).
                low, high = max(within, _LAST_ID_AT), min(within + got, _LAST_ID_AT + 8)
                view[done + low - within : done + high - within] = _NO_LAST_ID[low - _LAST_ID_AT : high - _LAST_ID_AT]
            done += got
            self._pos += got
        return done


_FIRST_AT = 8  # offset of a chunk header's first record number (u64)
_LAST_ID_AT = 32  # offset of a chunk header's last record id (u64; the record number is at 16)
_NO_LAST_ID = b"\xff" * 8
