"""The EDI collector's configuration: ``[collectors."edi.messages"]`` and its nested tables.

Every field has a default, so the collector loads without configuration (and then raises
``NoData``: no folders). ``config.py`` validates TOML against these types; the ``__post_init__``
checks here cover what a type cannot say (a known time zone, a window with both ends), and their
``ValueError`` becomes a config problem naming the table.

Example::

    [collectors."edi.messages"]
    own_her_ids = ["1000001", "1000002"]
    stop_gap = "1h"

    [[collectors."edi.messages".folders]]
    path = "/srv/edi/ut"
    direction = "out"

    [[collectors."edi.messages".folders]]
    path = "/srv/edi/inn"
    direction = "in"
    role = "receipts"

    [[collectors."edi.messages".maintenance]]
    start = "2026-12-01T22:00:00+01:00"
    end = "2026-12-02T02:00:00+01:00"

Imports only the standard library (with normagent's ``dataclass``).
"""

from __future__ import annotations

from dataclasses import field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from normagent import dataclass

Direction = Literal["out", "in", "unknown"]
Role = Literal["messages", "receipts", "archive"]
Weekday = Literal["", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_IGNORE = (".*", "~*", "*.tmp", "*.part", "*.partial", "*.lock")


def zone(name: str) -> ZoneInfo:
    """A time zone by IANA name; ``ValueError`` (a config problem) if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name like \"Europe/Oslo\")") from None


@dataclass(frozen=True, slots=True)
class EdiFolder:
    """One folder where a message server or EPJ leaves messages.

    Attributes:
        path: The folder (required).
        direction: ``out`` (we send), ``in`` (we receive) or ``unknown`` (decided per file from the
            HER ids in ``own_her_ids``: sent from one of ours is out; to one of ours, or from another
            HER id, is in — and then mis-addressed unless it is to one of ours).
        role: What the folder holds. ``receipts``: a file whose direction cannot be decided is a
            receipt *to* us. ``archive``: messages already handled (moved here from an in- or outbox);
            scanned after the other folders, so a moved file is recognised by its message id.
        glob: Which file names to read (``fnmatch`` pattern). Only regular files are opened: a
            symbolic link, FIFO, device or socket is counted as ``not_regular`` and never followed.
        ignore: File names never read: temporary files of writers that rename when done.
        recursive: Also read subfolders (never one reached through a symbolic link).
        name: The folder's label in ``normagent_edi_folder_up`` and logs (default: the last path part).
    """

    path: Path = Path("")
    direction: Direction = "unknown"
    role: Role = "messages"
    glob: str = "*"
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    recursive: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        if str(self.path) in ("", "."):
            raise ValueError("a folder needs a path")

    @property
    def label(self) -> str:
        # Asked per file read: a Path is not made anew each time (a first index asks 300,000 times).
        path = self.path if isinstance(self.path, Path) else Path(self.path)
        return self.name or path.name or str(path)


@dataclass(frozen=True, slots=True)
class TypeTimeouts:
    """Per message type overrides of the receipt timeouts (unset: the collector-wide value).

    Attributes:
        transport: Overrides ``transport_timeout`` for this type.
        application: Overrides ``application_timeout`` for this type (e.g. longer for LOM claims).
        alarm: Overrides ``alarm_after`` for this type.
    """

    transport: timedelta | None = field(default=None, metadata={"min": timedelta(minutes=1), "max": timedelta(days=30)})
    application: timedelta | None = field(default=None, metadata={"min": timedelta(minutes=1), "max": timedelta(days=90)})
    alarm: timedelta | None = field(default=None, metadata={"min": timedelta(minutes=1), "max": timedelta(days=90)})


@dataclass(frozen=True, slots=True)
class BusinessHoursSettings:
    """When traffic is expected: stops are only counted inside these hours.

    Attributes:
        weekdays: ISO weekdays, 1 = Monday … 7 = Sunday.
        start: Opening time, local.
        end: Closing time, local; ``"00:00"`` means midnight at the end of the day.
        time_zone: IANA zone of ``start``/``end`` and of ``closed_dates``.
        closed_dates: Dates with no business hours (public holidays), ``"YYYY-MM-DD"``.
    """

    weekdays: tuple[int, ...] = field(default=(1, 2, 3, 4, 5), metadata={"min": 1, "max": 7})
    start: time = time(8, 0)
    end: time = time(16, 0)
    time_zone: str = "Europe/Oslo"
    closed_dates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        zone(self.time_zone)
        bad = [d for d in self.weekdays if not 1 <= d <= 7]
        if bad:
            raise ValueError(f"weekdays must be 1 (Monday) … 7 (Sunday), got {bad}")
        if self.end != time(0) and self.end <= self.start:
            raise ValueError(f"business hours end ({self.end}) must be after start ({self.start})")
        for text in self.closed_dates:
            try:
                date.fromisoformat(text)
            except ValueError:
                raise ValueError(f'closed_dates: expected a date like "2026-12-25", got "{text}"') from None

    def dates(self) -> frozenset[date]:
        return frozenset(date.fromisoformat(text) for text in self.closed_dates)


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A planned maintenance window: one-off (``start``/``end``) or weekly (``weekday``/``from``/``to``).

    Attributes:
        start: Start of a one-off window; without an offset it is read in the business hours' zone.
        end: End of a one-off window.
        weekday: Day of a weekly window.
        from_: Start of a weekly window, in the business hours' zone.
        to: End of a weekly window, in the business hours' zone; earlier than (or equal to)
            ``from`` means the next day.
    """

    start: datetime | None = None
    end: datetime | None = None
    weekday: Weekday = ""
    from_: time | None = field(default=None, metadata={"toml": "from"})
    to: time | None = None

    def __post_init__(self) -> None:
        once = self.start is not None or self.end is not None
        weekly = bool(self.weekday) or self.from_ is not None or self.to is not None
        if once == weekly:
            raise ValueError("a maintenance window is either start/end or weekday/from/to")
        if once and (self.start is None or self.end is None):
            raise ValueError("a one-off maintenance window needs both start and end")
        if once and self.start is not None and self.end is not None and _naive_as_utc(self.end) <= _naive_as_utc(self.start):
            raise ValueError("a maintenance window must end after it starts")
        if weekly and (not self.weekday or self.from_ is None or self.to is None):
            raise ValueError("a weekly maintenance window needs weekday, from and to")


def _naive_as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=ZoneInfo("UTC"))


@dataclass(frozen=True, slots=True)
class ServiceCheck:
    """The message server's own service: a systemd unit or a process name (or neither).

    Attributes:
        systemd_unit: Checked with ``systemctl is-active``; anything but active/reloading is down.
        process: A process name that must be running.
    """

    systemd_unit: str = ""
    process: str = ""

    def __post_init__(self) -> None:
        if self.systemd_unit and self.process:
            raise ValueError("check either a systemd_unit or a process, not both")


@dataclass(frozen=True, slots=True)
class EdiSettings:
    """Settings of the ``edi.messages`` collector.

    Attributes:
        folders: Where messages are; empty means this host has no EDI (``NoData``). While a folder
            that may hold receipts (``role = "receipts"``, or a direction other than ``out``) is
            down, no sent message is judged to lack its receipt.
        own_her_ids: Our HER ids (institution, departments, persons): an incoming message addressed
            to none of them is mis-addressed; with ``direction = "unknown"`` they decide direction.
        msg_types: Message types (MsgInfo/Type) to keep as ``msg_type`` label values besides the
            built-in list; others are counted as ``other``.
        transport_timeout: A sent ebXML message without Acknowledgment/MessageError is overdue after this.
        application_timeout: A sent message (Ack not "N") without AppRec is overdue after this.
        alarm_after: Overdue messages alarm after this (the national handler gives up at 72 h).
        type_timeouts: Per message type overrides, e.g. ``type_timeouts.LOM.application = "7d"``.
        forget_unacknowledged_after: A message still without receipt leaves the gauges after this
            (it was counted in ``normagent_edi_unacknowledged_total`` when it became overdue).
        history_retention: How long a handled message's id is remembered (to recognise a file moved
            to an archive, or a late duplicate).
        naive_time_zone: Zone of message dates written without an offset (KITH messages usually are).
        business_hours: When traffic is expected.
        stop_gap: A silence longer than this (business time) is a stop.
        maintenance: Planned maintenance windows of the message traffic alone: stops inside them are
            planned, as are stops inside any window or planned change of the agent's shared
            ``[maintenance]`` calendar (which the other plugins use too: prefer it).
        service: The message server's service; down starts a stop at once.
        count_encrypted_envelopes: Count ebXML envelopes whose payload cannot be read (encrypted or
            in another MIME part) as messages, by their ebXML Action. Turn off when the same messages
            are also read as plain MsgHead files from another folder.
        write_grace: A truncated or empty file younger than this is being written: retried, not
            counted as broken. An older one is counted, and read again when it changes (a stalled
            writer that finishes later).
        batch_size: Files per committed batch during a large catch-up (a batch is also committed
            after an eighth of the collector's timeout, so a slow catch-up still gets on; a single
            file may take a quarter of it, a slower one is counted as ``timeout``).
        first_index_batch_size: Files per committed batch while a fresh ledger's first index runs
            (the time limit of ``batch_size`` applies too). Each batch writes the records of its
            message ids, random keys, in one sorted pass over the ledger: the more of them a pass
            holds, the more share a B-tree page (at 100,000 messages, 5,000 files a batch take a
            third less of the ledger's CPU than 1,000, 20,000 half). Costs about 1 KiB of memory
            per file of a batch while it is built and committed, and larger batches leave more of
            the interpreter's memory arenas held after the index (bench/README.md); a crash
            re-reads at most the batch not committed.
        max_header_bytes: Give up on a file whose header is not complete after this many bytes.
        full_rescan: Stat every file every cycle instead of trusting directory modification times
            and write-once files (for network shares with coarse or unreliable timestamps).
        inotify: Learn what changed in a folder on a local filesystem from inotify instead of
            listing it (a cycle then costs what changed, not what the folder holds). Off, or where
            inotify is missing, refused or overflows, and on network filesystems: the listing.
        listing_interval: A folder watched by inotify is still listed in full this often (a safety
            net: nothing the events missed stays unseen for longer).
    """

    folders: tuple[EdiFolder, ...] = ()
    own_her_ids: tuple[str, ...] = ()
    msg_types: tuple[str, ...] = ()
    transport_timeout: timedelta = field(default=timedelta(hours=4), metadata={"min": timedelta(minutes=1), "max": timedelta(days=30)})
    application_timeout: timedelta = field(
        default=timedelta(hours=24), metadata={"min": timedelta(minutes=1), "max": timedelta(days=90)}
    )
    alarm_after: timedelta = field(
        default=timedelta(hours=72), metadata={"min": timedelta(minutes=1), "max": timedelta(days=90)}
    )
    type_timeouts: dict[str, TypeTimeouts] = field(default_factory=dict)
    forget_unacknowledged_after: timedelta = field(
        default=timedelta(days=14), metadata={"min": timedelta(hours=1), "max": timedelta(days=400)}
    )
    history_retention: timedelta = field(
        default=timedelta(days=120), metadata={"min": timedelta(days=1), "max": timedelta(days=3650)}
    )
    naive_time_zone: str = "Europe/Oslo"
    business_hours: BusinessHoursSettings = BusinessHoursSettings()
    stop_gap: timedelta = field(default=timedelta(hours=1), metadata={"min": timedelta(minutes=1), "max": timedelta(days=7)})
    maintenance: tuple[MaintenanceWindow, ...] = ()
    service: ServiceCheck = ServiceCheck()
    count_encrypted_envelopes: bool = True
    write_grace: timedelta = field(default=timedelta(minutes=10), metadata={"min": timedelta(0), "max": timedelta(days=1)})
    batch_size: int = field(default=1000, metadata={"min": 1, "max": 100_000})
    first_index_batch_size: int = field(default=5000, metadata={"min": 1, "max": 100_000})
    max_header_bytes: int = field(default=4 * 1024 * 1024, metadata={"min": 4096, "max": 16 * 1024 * 1024})
    full_rescan: bool = False
    inotify: bool = True
    listing_interval: timedelta = field(
        default=timedelta(hours=1), metadata={"min": timedelta(minutes=1), "max": timedelta(days=7)}
    )

    def __post_init__(self) -> None:
        zone(self.naive_time_zone)
        labels = [folder.label for folder in self.folders]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"folders share the label {twice[0]!r}: give them different names (name = \"...\")")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.first_index_batch_size < 1:
            raise ValueError("first_index_batch_size must be at least 1")
        if self.max_header_bytes < 4096:
            raise ValueError("max_header_bytes must be at least 4096")
        for name in ("transport_timeout", "application_timeout", "alarm_after", "stop_gap"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be longer than 0s")

    def timeouts(self, msg_type: str) -> tuple[float, float, float]:
        """(transport, application, alarm) in seconds for a message type label."""
        override = self.type_timeouts.get(msg_type)
        transport, application, alarm = self.transport_timeout, self.application_timeout, self.alarm_after
        if override is not None:
            transport = override.transport or transport
            application = override.application or application
            alarm = override.alarm or alarm
        return transport.total_seconds(), application.total_seconds(), alarm.total_seconds()
