"""``EvtxSettings``: which EVTX files a collector reads, apart from the reader (``normagent.sources.evtx``).

The access and malware plugins embed these settings in theirs, so every agent builds them when it
reads its configuration; the reader itself (a thousand lines: chunk scanning, positions, crash
bookkeeping) is imported by the first EVTX pass, and an agent with no EVTX file configured — most
of them — never holds it (``tests/unit/test_imports.py``).
"""

from __future__ import annotations

from dataclasses import field

from normagent.records import dataclass


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
