"""What an EVTX pass's caller keeps and hears of: the position, the chunks, the counts, the error.

``normagent.sources.evtx`` reads EVTX files (in the EVTX worker process, ``evtx_worker``); the
agent's side of a pass (``evtx_process``, ``normagent.logs``) needs only these types, to hand the
position over, to read the worker's answers and to commit. They live here so that the agent does
not import the reader itself (about 0.2 MB of the idle agent's memory, issue 15).

Imports only the standard library (with normagent's ``dataclass``) and normagent.model.
"""

from __future__ import annotations

from dataclasses import fields, replace

from normagent.model import JSONValue
from normagent.records import dataclass

SKIP_AFTER_CRASHES = 2  # passes that crashed in one chunk before it is skipped (one may be bad luck)
Witness = tuple[int, str]  # (record number, anchor) of a record read before


class EvtxFileError(ValueError):
    """The file is not an EVTX file (wrong magic, cut inside its header) or cannot be parsed at all.

    Attributes:
        incomplete: What the file holds is the start of an EVTX file (empty, or cut inside its
            header): a copy still being written may become readable. False for a file that is
            not EVTX at all.
    """

    def __init__(self, message: str, *, incomplete: bool = False) -> None:
        super().__init__(message)
        self.incomplete = incomplete


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    """A chunk as the reader announces it before parsing it: where it is and which records it holds.

    A chunk is the same chunk while its offset and first record are: the newest chunk of a live
    log grows (its ``last`` rises with each record written), and a chunk overwritten when a
    circular log wraps starts with another number.

    Attributes:
        offset: Its byte offset in the file.
        first: The first record number its header gives.
        last: The last record number, as far as the reader believes its header.
    """

    offset: int
    first: int
    last: int

    def same_chunk(self, other: ChunkSpan) -> bool:
        return (self.offset, self.first) == (other.offset, other.first)

    def describe(self) -> str:
        """``chunk at offset 4,096 (records 1..91)``, for a message."""
        return f"chunk at offset {self.offset:,} (records {self.first:,}..{self.last:,})"

    def to_json(self) -> dict[str, JSONValue]:
        return {"offset": self.offset, "first": self.first, "last": self.last}

    @classmethod
    def from_json(cls, value: JSONValue) -> ChunkSpan:
        """Rebuild a chunk from ``to_json``; ``ValueError`` for anything else."""
        if isinstance(value, dict) and set(value) == {"offset", "first", "last"}:
            offset, first, last = value["offset"], value["first"], value["last"]
            if _count(offset) and _count(first) and _count(last):
                return cls(offset=offset, first=first, last=last)  # type: ignore[arg-type]
        raise ValueError(f"not an EVTX chunk (offset, first, last): {str(value)[:200]}")


@dataclass(frozen=True, slots=True)
class EvtxPosition:
    """Where a file was read up to: commit ``to_json()`` with the block it follows.

    Attributes:
        record_id: Record number (record header) of the last record read; 0: nothing yet.
        anchor: That record's timestamp, normalised; proves a later run finds the same record.
        unreadable_through: Highest record number already counted as unreadable.
        witnesses: (number, anchor) of records read before: the first one read from the file and
            the first one the latest pass saw. A file that still holds one is the same log, even
            where the anchor is gone (a rolled-back copy, a damaged record).
        crashed: The chunk the parser crashed in (killed by a signal, ended without its answer,
            hung) on its way from this position: the one holding the position or one after it;
            None: none. Committed with the file's state, so
            a restart between two crashes changes nothing.
        crashes: Passes that crashed in ``crashed``: 1 is retried (bad luck happens: the OOM
            killer), from 2 on the reader skips that chunk (``SKIP_AFTER_CRASHES``).
    """

    record_id: int = 0
    anchor: str = ""
    unreadable_through: int = 0
    witnesses: tuple[Witness, ...] = ()
    crashed: ChunkSpan | None = None
    crashes: int = 0

    def to_json(self) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {"record_id": self.record_id, "anchor": self.anchor, "unreadable_through": self.unreadable_through}
        if self.witnesses:
            out["witnesses"] = [[number, anchor] for number, anchor in self.witnesses]
        if self.crashed is not None:
            out["crashed"] = {**self.crashed.to_json(), "crashes": self.crashes}
        return out

    def after_crash(self, chunk: ChunkSpan) -> EvtxPosition:
        """This position with one more crash in ``chunk`` (the first one if another chunk was marked)."""
        crashes = self.crashes + 1 if self.crashed is not None and self.crashed.same_chunk(chunk) else 1
        return replace(self, crashed=chunk, crashes=crashes)

    def skipping(self, chunk: ChunkSpan) -> EvtxPosition:
        """This position, skipping ``chunk`` at once (``normagent parse``: one pass, no second chance)."""
        return replace(self, crashed=chunk, crashes=max(self.after_crash(chunk).crashes, SKIP_AFTER_CRASHES))

    def skips(self, chunk: ChunkSpan) -> bool:
        """Whether the reader skips ``chunk``: the parser crashed in it ``SKIP_AFTER_CRASHES`` times."""
        return self.crashed is not None and self.crashes >= SKIP_AFTER_CRASHES and self.crashed.same_chunk(chunk)

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
            listed = value.get("witnesses", [])
            witnesses: list[Witness] = []
            for item in listed if isinstance(listed, list) else [None]:
                if not (isinstance(item, list) and len(item) == 2 and _count(item[0]) and isinstance(item[1], str)):
                    raise ValueError(f"not an EVTX position (a witness is not [number, anchor]): {value!r}")
                witnesses.append((int(item[0]), item[1]))  # type: ignore[arg-type]
            crashed, crashes = None, 0
            if "crashed" in value:
                mark = value["crashed"]
                if not (isinstance(mark, dict) and _count(mark.get("crashes")) and mark["crashes"]):
                    raise ValueError(f"not an EVTX position (a crash mark without its count): {value!r}")
                crashed = ChunkSpan.from_json({k: v for k, v in mark.items() if k != "crashes"})
                crashes = int(mark["crashes"])  # type: ignore[arg-type]
            if isinstance(record_id, int) and _count(record_id) and isinstance(anchor, str) and isinstance(through, int) and _count(through):
                return cls(record_id=record_id, anchor=anchor, unreadable_through=through, witnesses=tuple(witnesses),
                           crashed=crashed, crashes=crashes)
        raise ValueError(f"not an EVTX position: {value!r}")


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
        unreadable: Record numbers announced by chunk headers that could not be read (damage),
            and records the parser gave whose content is no event (``{"Event": null}``: BinXML
            that decodes to nothing); counted once, however often a chunk is read.
        implausible: Records whose header number does not fit their chunk (a damaged number):
            skipped, as are their errors in ``errors``; the number they should have had is
            missing from the chunk and counted in ``unreadable``. Like ``errors``, counted again
            when the chunk is read again.
        lost: Records overwritten in a wrapped log before they could be read.
        replaced: The file holds nothing read before: it was read from its start.
        relocated: The position's record was not where the position said, but the file is the
            same log (that record's time at another number, or a record read before still in it):
            reading went on from there, and nothing was read twice.
        chunks_damaged: Chunks whose header is not an EVTX chunk header (skipped whole; the
            numbers their record headers give, or the gap they leave, count in ``unreadable``).
        chunks_skipped: Chunks skipped because the parser crashed in them twice (see
            ``EvtxPosition.crashes``); their numbers after the position are in ``unreadable``.
        out_of_order: Records numbered at or below one already read in this pass (a stale
            duplicate chunk), skipped so that no record is counted twice.
        truncated: The file ends inside a chunk (a truncated file, or a copy still being
            written); that chunk's missing records are not counted as unreadable, as they may
            still arrive.
        damage_offset: File offset of the first chunk (in file order) that records counted in
            ``unreadable`` by this pass belong to, for the log line that says where; 0: none.
        changed: The file changed under the pass: a chunk's header, as the parser read it, gave
            another first number than when the file was scanned (a file copied over this one in
            place, a circular log that wrapped). Its records were not taken (they may be another
            file's, numbered as this one's), the pass ended there, the next one reads on.
    """

    records: int = 0
    matched: int = 0
    skipped: int = 0
    errors: int = 0
    unreadable: int = 0
    implausible: int = 0
    lost: int = 0
    replaced: bool = False
    relocated: bool = False
    chunks_damaged: int = 0
    chunks_skipped: int = 0
    out_of_order: int = 0
    truncated: bool = False
    damage_offset: int = 0
    changed: bool = False

    def damaged_at(self, offset: int) -> None:
        """Note that records of the chunk at ``offset`` were counted unreadable."""
        self.damage_offset = min(self.damage_offset or offset, offset)

    def to_json(self) -> dict[str, JSONValue]:
        """The counts as a JSON object (the EVTX worker process reports them after each block)."""
        return {name: getattr(self, name) for name in _STATS_FIELDS}

    @classmethod
    def from_json(cls, value: JSONValue) -> EvtxStats:
        """Rebuild stats from ``to_json``: every field, of its type, and nothing else (``ValueError``)."""
        if not (isinstance(value, dict) and set(value) == set(_STATS_FIELDS)):
            raise ValueError(f"not EVTX stats (the fields {', '.join(_STATS_FIELDS)}): {str(value)[:200]}")
        for name, kind in _STATS_FIELDS.items():
            item = value[name]
            if not (isinstance(item, kind) and (kind is bool or (not isinstance(item, bool) and item >= 0))):  # type: ignore[operator]
                raise ValueError(f"not EVTX stats ({name} is not a {'flag' if kind is bool else 'count'}): {str(value)[:200]}")
        return cls(**value)  # type: ignore[arg-type]


_STATS_FIELDS: dict[str, type] = {f.name: type(f.default) for f in fields(EvtxStats)}  # every field: int or bool
