"""The nouns that cross module boundaries: specs plugins declare, observations collectors yield.

Everything here is a frozen dataclass or a Protocol, so a value handed from a collector thread to the
ledger or from the ledger to a scrape can never change under anyone's feet.

How a collector talks to the core, in one picture::

    CollectorSpec(collect=f)  ──  f(ctx: RunContext) yields Batch(observations, checkpoints)
                                   each Batch is committed in ONE ledger transaction

Observations are ``Count`` (add to a counter), ``Gauge`` (set a value), ``Rollup`` (add to a per-day
tally kept for the report; ``RollupRows`` for many keys of one tally and day at once) and ``Event``
(a notable, timestamped fact kept for the report). A
``Checkpoint`` is where a source was read up to. Because the only way to store either is a ``Batch``,
a position is never saved without the counts it covers, nor counts without their position.

Imports nothing from normagent at run time (types for signatures only under TYPE_CHECKING).
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import field
from datetime import date, datetime, timedelta
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

from normagent.records import dataclass

if TYPE_CHECKING:
    from pathlib import Path

    from structlog.typing import FilteringBoundLogger

    from normagent.clock import Clock
    from normagent.privacy import Pseudonymiser
    from normagent.sources.spool import SpoolShare

MetricKind = Literal["counter", "gauge"]
JSONValue: TypeAlias = "None | bool | int | float | str | list[JSONValue] | dict[str, JSONValue]"
EventValue: TypeAlias = "str | int | float | bool | None"

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# --------------------------------------------------------------------------------------------
# Metrics a collector declares


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A metric family a collector may emit, declared up front.

    Declaring lets exposition print HELP/TYPE before the first sample, lets the ledger reject a
    label the family does not have, and lets ``preset`` series exist at 0 so ``rate()`` and
    dashboards work from the first scrape.

    Args:
        name: ``normagent_<noun>_<unit>``; counters end in ``_total``.
        kind: ``"counter"`` or ``"gauge"``.
        help: One sentence for the HELP line and the README's metric table.
        labels: Label names, in exposition order. Values must come from small closed sets; a
            username, host name or IP address is never a label value.
        preset: Label-value tuples (same order as ``labels``) created at 0 before anything is seen.
        section: The factsheet-12 section this metric reports on (README table).
    """

    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...] = ()
    preset: tuple[tuple[str, ...], ...] = ()
    section: str = ""

    def __post_init__(self) -> None:
        if not METRIC_NAME.match(self.name):
            raise ValueError(f"metric name {self.name!r} is not a valid Prometheus name")
        if self.kind not in ("counter", "gauge"):
            raise ValueError(f"metric {self.name}: kind must be 'counter' or 'gauge', got {self.kind!r}")
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name} must end in _total")
        for label in self.labels:
            if not LABEL_NAME.match(label) or label.startswith("__"):
                raise ValueError(f"metric {self.name}: {label!r} is not a valid label name")
        for values in self.preset:
            if len(values) != len(self.labels):
                raise ValueError(
                    f"metric {self.name}: preset {values!r} has {len(values)} values "
                    f"for {len(self.labels)} labels"
                )


# --------------------------------------------------------------------------------------------
# Observations: what a collector saw


def _labels(labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    return tuple(sorted((str(k), str(v)) for k, v in pairs))


@dataclass(frozen=True, slots=True, init=False)
class Count:
    """Add ``value`` (finite, ≥ 0) to a counter series. Counters survive restarts in the ledger."""

    metric: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def __init__(
        self, metric: str, labels: Mapping[str, str] | Iterable[tuple[str, str]] = (), value: float = 1
    ) -> None:
        if value < 0:
            raise ValueError(f"counter {metric} cannot decrease (got {value})")
        if not math.isfinite(value):  # NaN: the ledger's NOT NULL refused the batch; inf: the series for good
            raise ValueError(f"counter {metric} must grow by a finite number (got {value})")
        object.__setattr__(self, "metric", metric)
        object.__setattr__(self, "labels", _labels(labels))
        object.__setattr__(self, "value", float(value))


@dataclass(frozen=True, slots=True, init=False)
class Gauge:
    """Set a gauge series to ``value`` (not NaN: a series whose value is unknown is left out).

    The gauges a ``Batch`` sets for a metric *replace* every series of that metric the same
    collector set before: a mount that disappeared stops being exported. A metric the batch does
    not mention keeps its series.
    """

    metric: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def __init__(
        self, metric: str, value: float, labels: Mapping[str, str] | Iterable[tuple[str, str]] = ()
    ) -> None:
        if math.isnan(value):  # SQLite stores NaN as NULL: the ledger refused the whole batch
            raise ValueError(f"gauge {metric} must be a number (got NaN); leave the series out when its value is unknown")
        object.__setattr__(self, "metric", metric)
        object.__setattr__(self, "labels", _labels(labels))
        object.__setattr__(self, "value", float(value))


@dataclass(frozen=True, slots=True)
class Rollup:
    """Add to a per-day tally of one key, kept for the monthly report (never exported as a label).

    Example: ``Rollup("access.failed_by_account", day, pseudonym)`` for the report's top targeted
    accounts. ``key`` must be a pseudonym (see ``RunContext.pseudonymise``) or a closed-set value,
    never a raw username or address. First/last seen widen the row's interval.
    """

    name: str
    day: date
    key: str
    value: float = 1
    first_seen: datetime | None = None
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class RollupRows:
    """Add to the per-day tallies of many keys of one rollup at once: the same as a
    ``Rollup(name, day, key, value)`` for each ``key: value`` of ``values`` whose value is not 0,
    without first or last seen.

    Why: a firewall backlog under a scan brings ~10,000 source networks to one batch, and an
    object per row, taken apart again by the ledger, cost more than writing the rows (issue 15):
    the ledger writes these in one statement, with the batch's other observations and checkpoints
    in the same transaction. ``values`` is not copied: it must not change once handed over (the
    firewall's are the rows a carry holds, which are never changed).
    """

    name: str
    day: date
    values: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Event:
    """A notable, timestamped fact for the report (an unexpected shutdown, a rejected message).

    ``key`` makes the event idempotent: a second event with the same (collector, kind, key) is
    ignored, so re-reading a source after a crash cannot duplicate it. Attributes must hold no
    personal data: counts, closed-set codes, pseudonyms, message ids.
    """

    kind: str
    at: datetime
    key: str
    attrs: Mapping[str, EventValue] = field(default_factory=dict)


Observation: TypeAlias = "Count | Gauge | Rollup | RollupRows | Event"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where one source of a collector has been read up to.

    ``key`` names the source within the collector (``"file:/var/log/auth.log"``, ``"journal"``,
    ``"edi:/srv/edi/out/1234.xml"``). ``value`` is any JSON value; ``None`` deletes the checkpoint.
    """

    key: str
    value: JSONValue


@dataclass(frozen=True, slots=True)
class Batch:
    """Observations and the checkpoints they lead to — committed together in one transaction, or not at all."""

    observations: Sequence[Observation] = ()
    checkpoints: Sequence[Checkpoint] = ()


# --------------------------------------------------------------------------------------------
# What a collector receives


class CheckpointReader(Protocol):
    """Read-only view of one collector's committed checkpoints.

    A collector with many checkpoints (one per file of a large folder) reads them by key and by
    prefix as it needs them instead of loading them all: ``scan`` and ``keys`` go through the
    matching keys in order without holding them all in memory at once.
    """

    def get(self, key: str) -> JSONValue: ...

    def scan(self, prefix: str = "") -> Iterable[tuple[str, JSONValue]]: ...

    def keys(self, prefix: str = "") -> Iterable[str]:
        """The keys starting with ``prefix``, in order, without their values."""
        ...


class Host(Protocol):
    """The machine's own facts, behind a seam so tests can give fixed ones (see normagent.testing)."""

    def boot_time(self) -> float: ...

    def cpu_seconds(self) -> Mapping[str, float]: ...

    def cpu_count(self) -> int: ...

    def load_average(self) -> tuple[float, float, float]: ...

    def memory(self) -> Mapping[str, float]: ...

    def disk_usage(self, path: str) -> Mapping[str, float]: ...

    def process_running(self, name: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command did: errors are values, not exceptions, so a collector decides what they mean."""

    argv: tuple[str, ...]
    returncode: int | None  # None: not started (missing) or killed on timeout
    stdout: bytes = b""
    stderr: bytes = b""
    error: str = ""  # "not found", "timed out after 10s", "permission denied"

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandRunner(Protocol):
    def __call__(self, argv: Sequence[str], *, timeout: float = 10.0) -> CommandResult: ...


@dataclass(frozen=True, slots=True)
class SnmpVarBind:
    oid: str
    value: str | int | float | bytes | None


SnmpVersion = Literal["1", "2c", "3"]
SnmpAuthProtocol = Literal["none", "MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"]
SnmpPrivProtocol = Literal["none", "DES", "3DES", "AES", "AES192", "AES256"]


@dataclass(frozen=True, slots=True)
class SnmpAuth:
    """Who we are to an SNMP agent: a community (v1, v2c) or an SNMPv3 USM user.

    For SNMPv3 the security level follows from the protocols: ``auth_protocol="none"`` is
    noAuthNoPriv, ``priv_protocol="none"`` authNoPriv, both set authPriv (SHA + AES is what a
    clinic's router should be given). Keys are passphrases (at least 8 characters, RFC 3414) and,
    like the community, never appear in ``repr`` or in an error message.
    """

    version: SnmpVersion = "2c"
    community: str = field(default="public", repr=False)
    user: str = ""
    auth_protocol: SnmpAuthProtocol = "SHA"
    auth_key: str = field(default="", repr=False)
    priv_protocol: SnmpPrivProtocol = "AES"
    priv_key: str = field(default="", repr=False)

    @classmethod
    def v2c(cls, community: str) -> SnmpAuth:
        return cls(version="2c", community=community)

    @classmethod
    def v3(
        cls,
        user: str,
        auth_key: str = "",
        priv_key: str = "",
        *,
        auth_protocol: SnmpAuthProtocol = "SHA",
        priv_protocol: SnmpPrivProtocol = "AES",
    ) -> SnmpAuth:
        return cls(
            version="3",
            community="",
            user=user,
            auth_protocol=auth_protocol if auth_key else "none",
            auth_key=auth_key,
            priv_protocol=priv_protocol if priv_key else "none",
            priv_key=priv_key,
        )


class SnmpSession(Protocol):
    """Requests to one agent that share one SNMP engine (one set-up, one v3 discovery)."""

    def get(self, oids: Sequence[str]) -> list[SnmpVarBind]: ...

    def walk(self, oid: str, *, max_rows: int = 10_000) -> list[SnmpVarBind]: ...


class SnmpClient(Protocol):
    """Synchronous SNMP reads; the pysnmp adapter hides its asyncio API behind this seam.

    ``session`` is the way to poll a device: every request inside it reuses one engine, which
    costs about 0.1 s to set up. ``get`` and ``walk`` are one-request sessions. Failures raise
    ``normagent.errors.SnmpError`` and its subclasses (timeout, auth, too many rows).
    """

    def session(
        self, target: str, *, auth: SnmpAuth, timeout: float, retries: int = 1
    ) -> AbstractContextManager[SnmpSession]: ...

    def get(self, target: str, oids: Sequence[str], *, auth: SnmpAuth, timeout: float) -> list[SnmpVarBind]: ...

    def walk(
        self, target: str, oid: str, *, auth: SnmpAuth, timeout: float, max_rows: int = 10_000
    ) -> list[SnmpVarBind]: ...


# --------------------------------------------------------------------------------------------
# The maintenance calendar, as collectors see it


PlannedKind = Literal["maintenance", "change"]


@dataclass(frozen=True, slots=True)
class PlannedWindow:
    """One announced window of the maintenance calendar: maintenance, or a planned change.

    An outage inside a window is *planned* (announced, as factsheet 12 means it); outside every
    window it is unplanned, however orderly it was.

    Attributes:
        start: Aware start of the window (UTC or the zone it was written in).
        end: Aware end; later than ``start``.
        what: What is done ("EPJ oppgraderes til 24.2").
        role: Who does it, as a role ("EPJ-leverandør", "driftsleverandør"), never a person.
        kind: ``"maintenance"`` or ``"change"`` (a planned change, with its expected effect).
        effect: The expected effect of a planned change ("EPJ utilgjengelig i 30 min").
        source: Where it is written: ``"config:windows[0]"``, ``"config:weekly[1]"``,
            ``"config:changes[0]"`` or ``"<file>:<line>"`` of its VEVENT.
        subjects: For a planned change, what it covers: globs of the changes it plans (a path
            glob ``/etc/ssh/**``, or ``<source>:<glob>``: ``package:openssh-*``); empty: every
            change in its span. Read by whoever counts changes (the changes plugin); an outage
            inside the window is planned whatever its subjects.
    """

    start: datetime
    end: datetime
    what: str = ""
    role: str = ""
    kind: PlannedKind = "maintenance"
    effect: str = ""
    source: str = ""
    subjects: tuple[str, ...] = ()

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


class MaintenanceCalendar(Protocol):
    """Announced maintenance windows and planned changes (``normagent.maintenance`` builds it from
    the ``[maintenance]`` config table and its iCalendar file). Thread-safe; every time is aware."""

    def planned_at(self, moment: datetime) -> PlannedWindow | None:
        """The window covering ``moment`` (the one that started first), or None."""
        ...

    def windows_between(self, start: datetime, end: datetime) -> Sequence[PlannedWindow]:
        """Every window (maintenance and planned changes) overlapping ``[start, end)``, by start."""
        ...

    def changes_between(self, start: datetime, end: datetime) -> Sequence[PlannedWindow]:
        """The planned changes overlapping ``[start, end)``, by start."""
        ...

    def planned_seconds(self, start: datetime, end: datetime) -> float:
        """Seconds of ``[start, end)`` inside some window (overlapping windows count once)."""
        ...


class NoMaintenance:
    """A calendar without windows: nothing is planned. The default of ``RunContext``."""

    def planned_at(self, moment: datetime) -> PlannedWindow | None:
        return None

    def windows_between(self, start: datetime, end: datetime) -> Sequence[PlannedWindow]:
        return ()

    def changes_between(self, start: datetime, end: datetime) -> Sequence[PlannedWindow]:
        return ()

    def planned_seconds(self, start: datetime, end: datetime) -> float:
        return 0.0


@dataclass(frozen=True)
class RunContext:
    """Everything a collector may touch, injected so tests can replace each piece.

    Collectors never call ``time.time()``, ``subprocess`` or pysnmp directly.

    Attributes:
        collector: The collector's name, e.g. ``"system.host"``.
        settings: An instance of the collector's ``settings`` dataclass, validated from the config.
        clock: Aware-UTC wall time and a monotonic clock.
        host: the machine's own facts (``ProcHost``, or ``FakeHost``).
        root: Filesystem root: ``/`` in production, a fixture tree in tests.
        run_command: Runs a command with a timeout; returns a ``CommandResult``.
        snmp: SNMP client.
        state: This collector's committed checkpoints.
        pseudonymise: Keyed HMAC of a value, stable on this host, meaningless elsewhere:
            ``pseudonymise.account(name)``, ``pseudonymise.network(ip)`` (its /24 or /48).
        log: Logger bound to the collector and run.
        deadline: ``clock.monotonic()`` value after which the run is abandoned; long readers check
            ``expired()`` between batches and stop early (their checkpoint says where to resume).
        stop_requested: True once the agent is shutting down; see ``stopping()``.
        maintenance: The site's maintenance calendar (``[maintenance]``): whether an outage was
            announced. Empty (nothing planned) unless configured.
        syslog_spool: The syslog receiver's spool, for collectors that read it
            (``CollectorSpec.reads_syslog_spool``); None when no receiver is configured.
    """

    collector: str
    settings: Any
    clock: Clock
    host: Host
    root: Path
    run_command: CommandRunner
    snmp: SnmpClient
    state: CheckpointReader
    pseudonymise: Pseudonymiser
    log: FilteringBoundLogger
    deadline: float = float("inf")
    stop_requested: Callable[[], bool] = field(default=lambda: False, repr=False)
    maintenance: MaintenanceCalendar = field(default_factory=NoMaintenance)
    syslog_spool: SpoolShare | None = None

    def expired(self) -> bool:
        return self.clock.monotonic() >= self.deadline

    def stopping(self) -> bool:
        """Whether the agent is shutting down. A long reader checks it between blocks and ends early,
        yielding what it has read: unlike after ``expired()``, that is still committed, so a catch-up
        neither holds a shutdown for its whole grace nor reads its last blocks twice."""
        return self.stop_requested()


# --------------------------------------------------------------------------------------------
# Log records handed to parsers


@dataclass(frozen=True, slots=True)
class TextBlock:
    """One or more *complete* lines of a text log (each ends in ``b"\\n"``; ``\\r\\n`` allowed).

    Readers never hand a parser a half-written last line. Parsers may prefilter the whole block in C
    (``bytes.find``, one compiled pattern over ``data``) and run Python per candidate line only.

    Attributes:
        data: The lines, raw bytes (decode with ``errors="replace"``).
        origin: Where they came from (a path); for diagnostics only, never exported.
        mtime: The source file's modification time, used to infer the year of RFC 3164 stamps.
        lines: Number of lines in ``data`` (the reader counted them already).
    """

    data: bytes
    origin: str
    mtime: datetime | None = None
    lines: int = -1

    @property
    def line_count(self) -> int:
        return self.lines if self.lines >= 0 else self.data.count(b"\n")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journald entry: ``fields`` as ``journalctl -o json`` prints them, values decoded to str.

    From a collector that declares its fields (``journal_log_collector(fields=...)``) and the
    libsystemd reader: only those fields, and ``cursor`` is ``""`` except on a block's last entry
    (the checkpoint) unless ``__CURSOR`` was declared.
    """

    fields: Mapping[str, str]
    realtime: datetime
    cursor: str

    @property
    def message(self) -> str:
        return self.fields.get("MESSAGE", "")

    @property
    def identifier(self) -> str:
        return self.fields.get("SYSLOG_IDENTIFIER") or self.fields.get("_COMM", "")

    @property
    def priority(self) -> int | None:
        value = self.fields.get("PRIORITY", "")
        return int(value) if value.isascii() and value.isdigit() else None


@dataclass(frozen=True, slots=True)
class WindowsEvent:
    """One Windows event log record, normalised from the evtx package's JSON.

    Attributes:
        record_id: EventRecordID, monotonic within a channel's file.
        time: System/TimeCreated, aware UTC.
        channel: ``"Security"``, ``"System"``, ``"Microsoft-Windows-Windows Defender/Operational"``.
        provider: System/Provider/@Name (compare case-insensitively: ``USER32`` vs ``User32``).
        event_id: System/EventID without qualifier bits.
        level: System/Level (1 critical, 2 error, 3 warning, 4 information, 0 log-always).
        keywords: System/Keywords as int (Security audit failure = 0x8010000000000000).
        computer: System/Computer (personal-ish; never exported).
        data: EventData (or UserData) flattened to str values; unnamed ``Data`` as ``"0"``, ``"1"`` …
    """

    record_id: int
    time: datetime
    channel: str
    provider: str
    event_id: int
    level: int
    keywords: int
    computer: str
    data: Mapping[str, str]

    def to_json(self) -> list[JSONValue]:
        """The event as a JSON array in field order (the EVTX worker process sends events this way).

        An array, not an object: a block of a thousand events would repeat every key a thousand
        times through the pipe. ``time`` is ISO 8601 with its offset, so ``from_json`` gets the
        same aware datetime back; JSON integers keep ``keywords`` above 2**63 exactly.
        """
        return [self.record_id, self.time.isoformat(), self.channel, self.provider, self.event_id, self.level,
                self.keywords, self.computer, dict(self.data)]

    @classmethod
    def from_json(cls, value: JSONValue) -> WindowsEvent:
        """Rebuild an event from ``to_json``; ``ValueError`` saying what is wrong for anything else
        (what a damaged or foreign process wrote must not become a plausible event)."""
        if not (isinstance(value, list) and len(value) == 9):
            raise ValueError(f"not a Windows event (an array of 9 fields): {str(value)[:200]}")
        record_id, time, channel, provider, event_id, level, keywords, computer, data = value
        numbers = (record_id, event_id, level, keywords)
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
            raise ValueError(f"not a Windows event (record id, event id, level and keywords are integers): {str(value)[:200]}")
        if not (isinstance(time, str) and isinstance(channel, str) and isinstance(provider, str) and isinstance(computer, str)):
            raise ValueError(f"not a Windows event (time, channel, provider and computer are strings): {str(value)[:200]}")
        if not (isinstance(data, dict) and all(isinstance(v, str) for v in data.values())):
            raise ValueError(f"not a Windows event (data maps names to strings): {str(value)[:200]}")
        try:
            when = datetime.fromisoformat(time)
        except ValueError:
            raise ValueError(f"not a Windows event (its time is not ISO 8601): {time!r}") from None
        if when.tzinfo is None:
            raise ValueError(f"not a Windows event (its time has no offset): {time!r}")
        return cls(record_id=record_id, time=when, channel=channel, provider=provider, event_id=event_id,  # type: ignore[arg-type]
                   level=level, keywords=keywords, computer=computer, data=data)  # type: ignore[arg-type]


LogRecord: TypeAlias = "JournalEntry | WindowsEvent"


@dataclass(frozen=True, slots=True)
class RecordBlock:
    """Structured records from one source, in source order."""

    records: Sequence[LogRecord]
    origin: str


LogBlock: TypeAlias = "TextBlock | RecordBlock"


class LiveCarry(ABC):
    """A carry kept as an object from block to block instead of as JSON (see ``ParseContext.carry``).

    A parser whose carry is large and changes with every block (a firewall backlog's rows per
    source network: ~10,000 of them, updated by every 1 MiB block) would spend more on making
    and reading the carry's JSON value per block than on the block. The log driver hands such a
    carry to the next block as it is, and asks it for its JSON value (``json``) only when it puts
    together a batch, whose checkpoints are committed with it; a carry read back from the ledger
    (the next run) is that JSON value again, which the parser checks as any carry it reads.

    It must behave as a value: never changed once it is in a ``ParseResult`` (the driver may give
    the same carry again, to the same block after a failure or to each line of a block parsed one
    by one), and ``json`` must give the same value each time it is asked.
    """

    __slots__ = ()

    @abstractmethod
    def json(self) -> JSONValue:
        """The carry as the JSON value committed with the batch."""


def carry_json(carry: JSONValue | LiveCarry) -> JSONValue:
    """A carry as JSON: a ``LiveCarry``'s value, or the carry itself."""
    return carry.json() if isinstance(carry, LiveCarry) else carry


@dataclass(frozen=True)
class ParseContext:
    """What a pure parser may know besides its input.

    Attributes:
        now: Aware UTC "now", for inferring the year of RFC 3164 stamps (a line dated later than now
            belongs to last year).
        tz: The host's local zone, in which RFC 3164 and apt stamps are written.
        pseudonymise: Keyed HMAC for values kept in rollups (accounts, networks).
        settings: The collector's settings instance.
        examples: How many unparsed candidate lines to keep in ``ParseResult.examples``
            (``normagent parse`` asks for some; the daemon asks for none).
        carry: What the parser left in ``ParseResult.carry`` after the previous block of the same
            source (one log file), or ``None`` at the start. A log whose records span lines (an
            apt history stanza, a dpkg run) keeps the unfinished record here, so a record cut by
            a block boundary, a run's end or a restart is read whole. The driver commits it with
            the block's checkpoint, in the same transaction: after a crash the block and the
            carry it started from are both read again. A ``LiveCarry`` between the blocks of one
            run: the driver commits its JSON value.
        final: The input is complete (``normagent parse`` at the end of a file): settle every
            unfinished record now. The daemon never sets it; it calls the parser with an empty
            block at the end of a run that read everything written so far instead, so a record
            can be settled by ``now``. A parser settles by time only then (an empty block), never
            at the end of an ordinary block: in a catch-up the next block may finish the record.
        maintenance: The site's maintenance calendar (the run's ``RunContext.maintenance``), for
            a parser whose records are planned or not by their time (a configuration change
            inside a planned window). Empty unless configured; ``normagent parse`` passes the
            calendar of the ``--config`` it was given.
    """

    now: datetime
    tz: Any  # datetime.tzinfo
    pseudonymise: Pseudonymiser
    settings: Any = None
    examples: int = 0
    carry: JSONValue | LiveCarry = None
    final: bool = False
    maintenance: MaintenanceCalendar = field(default_factory=NoMaintenance)


@dataclass(frozen=True, slots=True)
class ParseProblem:
    """A malformed line a parser found: where it is in the block and what is wrong, never its text.

    Attributes:
        offset: Byte offset of the line's start within the block's data.
        reason: What is wrong, in a few words (``"Upgrade line without a package list"``); it must
            not quote the line, which may hold personal data.
    """

    offset: int
    reason: str


@dataclass(slots=True)
class ParseResult:
    """What a parser made of one block.

    ``parsed + ignored + unparsed`` equals the number of lines (or records) in the block: every line
    has exactly one outcome, which the core exports as ``normagent_log_lines_total{source,result}``.

    Attributes:
        observations: Counts, rollups and events, aggregated per block where possible.
        parsed: Lines that contributed to an indicator.
        ignored: Lines the parser has no interest in (not candidates).
        unparsed: Candidate lines (the prefilter matched) that no pattern understood.
        examples: Up to ``ParseContext.examples`` unparsed candidate lines, for ``normagent parse``
            only: they may hold personal data and are never logged or stored.
        carry: The unfinished record to hand to the next block of the same source (see
            ``ParseContext.carry``); ``None`` when nothing is pending. Must be a small JSON value,
            or a ``LiveCarry`` whose JSON value is.
        problems: Malformed lines worth naming by position (the driver logs them with the file
            and offset; ``normagent parse`` prints their line numbers). Optional: a parser that
            only counts ``unparsed`` is correct too.
    """

    observations: list[Observation] = field(default_factory=list)
    parsed: int = 0
    ignored: int = 0
    unparsed: int = 0
    examples: list[str] = field(default_factory=list)
    carry: JSONValue | LiveCarry = None
    problems: list[ParseProblem] = field(default_factory=list)

    def merge(self, other: ParseResult, keep_examples: int = 0) -> None:
        """Add ``other`` (the next block's result) to this one; its carry replaces this one's."""
        self.observations.extend(other.observations)
        self.parsed += other.parsed
        self.ignored += other.ignored
        self.unparsed += other.unparsed
        self.carry = other.carry
        room = keep_examples - len(self.examples)
        if room > 0:
            self.examples.extend(other.examples[:room])


class Parser(Protocol):
    """A pure function from a block of log lines or records to observations. No I/O, no state.

    It takes either kind of block, whatever its collector reads: ``normagent parse`` hands every
    collector's parser every block of every input (text, journal export, EVTX) and settles an
    unfinished carry with an empty ``TextBlock``. A parser for one kind counts the other kind's
    lines or records as ignored. The arguments are positional (the core never names
    them), so a ``Callable[[LogBlock, ParseContext], ParseResult]`` is a ``Parser`` too.
    """

    def __call__(self, block: LogBlock, ctx: ParseContext, /) -> ParseResult: ...


# --------------------------------------------------------------------------------------------
# What plugins declare


CollectFn: TypeAlias = "Callable[[RunContext], Iterable[Batch]]"
ProbeFn: TypeAlias = "Callable[[RunContext], str | None]"
AdviseFn: TypeAlias = "Callable[[RunContext], Iterable[Advice]]"


@dataclass(frozen=True, slots=True)
class Advice:
    """A warning about a collector's settings on this host: valid, but probably not meant.

    Attributes:
        key: The setting it is about, within the collector's table (``"prefer"``, ``"files.paths"``),
            so ``check-config`` can name the file and line that set it.
        message: What is wrong and what to do instead; no personal data.
    """

    key: str
    message: str


@dataclass(frozen=True, slots=True)
class CollectorSpec:
    """A collector: who it is, how often it runs, what it emits, and the function that does it.

    Attributes:
        name: ``"<plugin>.<thing>"``, unique across plugins; also the config table
            ``[collectors."<name>"]`` and the ``collector`` label of the health metrics.
        help: One line for ``normagent plugins``.
        collect: ``collect(ctx) -> Iterable[Batch]``. Each yielded ``Batch`` is committed in one
            transaction as soon as it is yielded; a long catch-up yields many. Raise ``NoData`` when
            the source is legitimately absent on this host.
        interval: Default time between runs (config ``interval`` overrides).
        timeout: Default time a run may take (config ``timeout`` overrides); after it the run is
            abandoned and counted as failed.
        settings: A dataclass type whose fields (all with defaults) are this collector's config
            keys; ``config.py`` validates ``[collectors."<name>"]`` against it. ``None``: no keys
            beyond the common ones (``enabled``, ``interval``, ``timeout``).
        metrics: Every metric family the collector may emit.
        parser: The pure parser, for log collectors: ``normagent parse`` runs it over files.
        probe: ``probe(ctx) -> reason | None``, called once at start: a reason disables the
            collector (logged, and ``normagent_collector_up`` is 0 with that reason in the log).
        advise: ``advise(ctx) -> Iterable[Advice]``: settings that are valid but probably not
            meant on this host (two sources carrying the same messages). Read-only; never
            disables. ``check-config`` prints each with its file and line; ``run`` (at start and
            after a reload) and ``collect --once`` log each as ``collector_advice``.
        enabled_by_default: False for collectors that need site configuration to mean anything.
        reads_syslog_spool: The collector reads the syslog receiver's spool (made by
            ``syslog_log_collector``): the receiver keeps spooled messages until every such
            collector has committed them.
        plugin: Filled in by the loader with the plugin's name.
    """

    name: str
    help: str
    collect: CollectFn
    interval: timedelta = timedelta(seconds=60)
    timeout: timedelta = timedelta(seconds=30)
    settings: type | None = None
    metrics: tuple[MetricSpec, ...] = ()
    parser: Parser | None = None
    probe: ProbeFn | None = None
    advise: AdviseFn | None = None
    enabled_by_default: bool = True
    reads_syslog_spool: bool = False
    plugin: str = ""


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one run of a collector ended, as the scheduler records it.

    Attributes:
        collector: The collector's name.
        started_at: Wall time the run began.
        duration: Seconds the run took (up to the moment it was abandoned, for a timeout).
        ok: True for success, including ``NoData``.
        reason: Why it failed: an exception's class name, ``"timeout"``, ``"probe"``, or, when the
            ledger could not store the run's batches, ``"disk_full"``, ``"state_lost"`` or
            ``"state_error"``.
        note: A ``NoData`` or probe explanation, for the log.
        batches: Batches committed during the run.
    """

    collector: str
    started_at: datetime
    duration: float
    ok: bool
    reason: str = ""
    note: str = ""
    batches: int = 0


class Severity(IntEnum):
    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        """``"info"``, ``"warning"`` or ``"critical"``: as config, metrics and payloads write it."""
        return self.name.lower()


Comparison = Literal[">", ">=", "<", "<=", "==", "!="]
CIA = Literal["konfidensialitet", "integritet", "tilgjengelighet"]
"""The security property a deviation touches (Normen: confidentiality, integrity, availability)."""

OWNER_ROLES = (
    "IKT-leder",
    "prosesseier",
    "nærmeste leder",
    "toppledelsen",
    "informasjonssikkerhetsansvarlig",
    "fagansvarlig for personvern",
)
"""Who may own a deviation (avvikseier), from the internal-control guide's table (§2.4.1): a digital
security incident → IKT-leder; a missing or faulty routine → prosesseier; an employee who did not
follow a routine → nærmeste leder; outdated software and equipment → toppledelsen (as data
controller); the data subjects' rights → informasjonssikkerhetsansvarlig or fagansvarlig for
personvern."""
OwnerRole = Literal[
    "IKT-leder",
    "prosesseier",
    "nærmeste leder",
    "toppledelsen",
    "informasjonssikkerhetsansvarlig",
    "fagansvarlig for personvern",
]


@dataclass(frozen=True, slots=True)
class RuleText:
    """What a deviation candidate says, in one language (the guide's §2.4.3: what happened and
    where, its possible consequence, immediate measures).

    Templates take ``{value}``, ``{threshold}``, ``{window}`` and ``{for}`` and the rule's
    ``group_by`` labels (``{key}`` for a rollup's pseudonym). They must render without personal
    data: counts, periods, closed-set label values and pseudonyms only.

    Attributes:
        title: One line, e.g. "Konto låst etter mislykkede pålogginger".
        what: What happened (a template).
        consequence: The possible consequence.
        measures: Suggested immediate measures.
    """

    title: str
    what: str
    consequence: str = ""
    measures: str = ""


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A default deviation rule: when a watched value crosses a threshold, raise a candidate.

    Rules are data; evaluation is a pure function in ``normagent.rules``. Config may retune
    (``threshold``, ``window``, ``for``, ``severity``, ``hold``, the owner and texts) or disable a
    rule by name, and a site may add rules of its own (``[rules."<name>"]`` with ``watch``).

    Attributes:
        name: ``"<plugin>.<thing>"``, e.g. ``"access.lockout"``.
        watch: What to evaluate: a metric name (a counter's increase over ``window``, or a gauge's
            current value when ``window`` is None; the agent's own ``normagent_collector_up``
            too), ``"rollup:<name>"`` for a per-day tally summed over ``window`` (e.g. failures
            per pseudonymised network), ``"event:<kind>"`` for events counted over ``window``, or
            ``"absent:<metric>"``: true while no series of the metric matches ``labels``.
        comparison: How the value is compared with ``threshold``.
        threshold: The boundary.
        window: For counters, rollups and events: evaluate the increase over this window.
            ``None`` for gauges: evaluate the current value.
        for_: The condition must hold this long before the candidate fires (pending until then).
        labels: Label matchers (exact values) selecting the series; for events, attribute values.
        group_by: Labels (``"key"`` for rollups, attributes for events) that split one rule into
            one candidate each. Their values must be closed sets or pseudonyms: they are forwarded.
        severity: Candidate severity.
        summary: Norwegian template of what happened (``RuleText.what``) with ``{value}``,
            ``{threshold}`` and ``{<label>}`` fields; must render without personal data.
        section: The factsheet-12 section the deviation belongs to.
        cia: The security properties the deviation touches; empty: the section's usual ones
            (``normagent.rules.SECTION_DEFAULTS``).
        owner: Suggested owner role (``OWNER_ROLES``); empty: the section's usual owner.
        personal_data: The candidate may be a personal-data breach: it carries a deadline
            (``notify_by``) 72 hours after the agent first saw the evidence, by which the data
            controller must have notified Datatilsynet if it is one.
        text_nb: The Norwegian (bokmål) texts; None: title from the rule, what = ``summary``,
            consequence and measures from the section.
        text_en: The English texts; None: built from the section's English defaults.
        preceded_by: For a rollup rule: ``"rollup:<name>"``; a key fires only if the same key
            has at least ``min_preceding`` in that rollup within the window, first seen no later
            than the watched key was last seen (``access.success_after_failures``).
        min_preceding: See ``preceded_by``.
        hold: A firing candidate whose condition clears is resolved only after it stayed clear
            this long; if it returns before, it is the same candidate (flapping damped). None: the
            ``[deviations] hold`` setting.
        plugin: Filled in by the loader.
    """

    name: str
    watch: str
    comparison: Comparison
    threshold: float
    summary: str
    window: timedelta | None = None
    for_: timedelta = timedelta(0)
    labels: Mapping[str, str] = field(default_factory=dict)
    group_by: tuple[str, ...] = ()
    severity: Severity = Severity.WARNING
    section: str = ""
    cia: tuple[CIA, ...] = ()
    owner: str = ""
    personal_data: bool = False
    text_nb: RuleText | None = None
    text_en: RuleText | None = None
    preceded_by: str = ""
    min_preceding: float = 1
    hold: timedelta | None = None
    plugin: str = ""


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open reporting interval [start, end), aware UTC."""

    start: datetime
    end: datetime


class ReportData(Protocol):
    """Where report numbers come from: the ledger (one host) or the Prometheus HTTP API (a fleet)."""

    def increase(self, metric: str, period: Period, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]: ...

    def gauge(self, metric: str, at: datetime, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]: ...

    def rollups(self, name: str, period: Period) -> Sequence[Rollup]: ...

    def events(self, kind: str, period: Period) -> Sequence[Event]: ...


@dataclass(frozen=True, slots=True)
class ReportTable:
    """A table in a report section: header row plus rows of plain values."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str | int | float, ...], ...]
    caption: str = ""


@dataclass(frozen=True, slots=True)
class SectionContent:
    """What a section builder returns: prose paragraphs and tables, rendered by ``report/render``."""

    paragraphs: tuple[str, ...] = ()
    tables: tuple[ReportTable, ...] = ()


IndicatorKind = Literal["increase", "gauge"]
IndicatorUnit = Literal["count", "seconds"]


@dataclass(frozen=True, slots=True)
class Indicator:
    """A key figure of a report section: the report shows it for the month, the month before and
    the twelve months up to it (a trend chart), from the ledger or a fleet's Prometheus alike.

    Attributes:
        id: ``"<plugin>.<thing>"``, stable: the report's JSON names it.
        metric: The metric it reads.
        title: What it is, in bokmål ("Mislykkede pålogginger").
        title_en: The same in English.
        kind: ``"increase"``: a counter's increase over the month; ``"gauge"``: a gauge's value at
            the month's end.
        labels: Exact label values the series must have (``{"planned": "false"}``); the matching
            series are added up.
        unit: ``"count"`` or ``"seconds"`` (shown as a duration).
    """

    id: str
    metric: str
    title: str
    title_en: str
    kind: IndicatorKind = "increase"
    labels: Mapping[str, str] = field(default_factory=dict)
    unit: IndicatorUnit = "count"


@dataclass(frozen=True, slots=True)
class ReportSection:
    """A section of the monthly report.

    Attributes:
        id: ``"<plugin>.<thing>"``.
        title: Norwegian section title as the data controller reads it.
        order: Position in the report (factsheet order: 10 operations status … 80 firewall); the
            tens name the factsheet area the section belongs to.
        build: ``build(data, period) -> SectionContent``; pure over ``ReportData``.
        title_en: The title in English (empty: the Norwegian one is shown).
        indicators: Its key figures, each shown for this month, last month and as a 12-month trend.
        plugin: Filled in by the loader.
    """

    id: str
    title: str
    order: int
    build: Callable[[ReportData, Period], SectionContent]
    title_en: str = ""
    indicators: tuple[Indicator, ...] = ()
    plugin: str = ""


CandidateState = Literal["pending", "firing", "resolved"]
HEALTH_GAUGES = ("normagent_collector_up", "normagent_collector_last_success_timestamp_seconds")
"""Gauges the agent keeps about itself, which rules may watch like any other (label: ``collector``)."""


@dataclass(frozen=True, slots=True)
class RollupSum:
    """A rollup key's rows over a rule's window, added up (times as Unix seconds)."""

    value: float
    first_seen: float | None = None
    last_seen: float | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A deviation candidate (avvikskandidat) as the ledger keeps it: one per episode of a
    fingerprint, from pending (the condition holds, ``for`` not yet passed) to firing to resolved.

    No personal data by construction: labels are closed-set values or pseudonyms.

    Attributes:
        id: The candidate's number in this ledger (``normagent deviations show ID``); 0 until stored.
        fingerprint: 16 hex digits of sha256(host id, rule, labels): the same deviation is the same
            fingerprint, across episodes and restarts.
        rule: The rule's name.
        labels: The ``group_by`` labels of this candidate, sorted.
        state: ``"pending"``, ``"firing"`` or ``"resolved"``.
        severity: As the rule says.
        value: The watched value at the last evaluation that changed something.
        threshold: The rule's threshold then.
        first_evidence: When the agent first saw the condition hold (the start of pending).
        fired_at: When it fired.
        clear_since: While firing: when the condition last stopped holding (None while it holds).
        resolved_at: When it was resolved (the condition stayed clear for the hold time).
        notify_by: For a possible personal-data breach: first evidence + 72 hours.
        updated_at: The last evaluation that changed the row.
    """

    id: int
    fingerprint: str
    rule: str
    labels: tuple[tuple[str, str], ...]
    state: CandidateState
    severity: Severity
    value: float
    threshold: float
    first_evidence: datetime
    fired_at: datetime | None = None
    clear_since: datetime | None = None
    resolved_at: datetime | None = None
    notify_by: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """What one evaluation does to one candidate, for the ledger to store.

    Attributes:
        candidate: The candidate as it is now (id 0: a new one).
        forward: A change forwarders must see (it fired, or it was resolved): the ledger gives it
            the fingerprint's next sequence number and an outbox row per forwarder, in the same
            transaction as the candidate.
        drop: A pending candidate whose condition cleared before ``for`` passed: forgotten.
        document: The change as forwarders receive it (``normagent.rules.change_document``),
            without ``id``, ``sequence`` and ``idempotency_key``, which the ledger adds.
    """

    candidate: Candidate
    forward: bool = False
    drop: bool = False
    document: Mapping[str, JSONValue] | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to hand one candidate change to one forwarder.

    Attributes:
        document: The change (see ``docs/deviations.md`` and ``normagent/forward/change.schema.json``):
            candidate id, rule, state, sequence, labels, texts in Norwegian and English …
        key: The idempotency key, ``<fingerprint>-<state>-<sequence>``: the same for every attempt
            of the same change, so a receiver keeps each change exactly once.
        forwarder: The configured forwarder's name.
        attempt: 1 for the first attempt.
        refresh: Not a change but a re-post of a firing candidate (Alertmanager needs one before
            the ``endsAt`` it was given).
        text: The document as the ledger stores it (compact JSON, the same bytes on every
            attempt); empty when the delivery was built from the document alone.
    """

    document: Mapping[str, Any]
    key: str
    forwarder: str
    attempt: int = 1
    refresh: bool = False
    text: str = ""

    @property
    def state(self) -> str:
        return str(self.document.get("state", ""))


class DeliveryFailed(Exception):
    """A forwarder could not deliver: the change stays in the outbox and is tried again later.

    Attributes:
        result: A closed-set reason for ``normagent_forward_attempts_total{result}``:
            ``"http_error"``, ``"timeout"``, ``"unreachable"``, ``"tls_error"``, ``"rejected"``
            (the receiver refused this change), ``"error"``.
    """

    def __init__(self, result: str, message: str) -> None:
        super().__init__(message)
        self.result = result


class Sender(Protocol):
    """An open connection (or its settings) to one destination, used by one thread at a time."""

    def send(self, delivery: Delivery) -> None:
        """Deliver; return on success, raise ``DeliveryFailed`` (or anything) on failure."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ForwarderSpec:
    """A kind of destination for deviation candidates.

    Attributes:
        kind: ``"webhook"``, ``"alertmanager"``, ``"email"``, ``"file"`` … used as
            ``[forwarders.<name>] kind``.
        help: One line for ``normagent plugins``.
        send: ``send(delivery, settings)``; returns on success, raises on failure (the delivery is
            retried with back-off; nothing is dropped). Used when ``open`` is None.
        settings: Dataclass type of its config keys.
        open: ``open(settings) -> Sender``: a sender that keeps its connection between deliveries.
        check: ``check(settings) -> [(key, message)]``: what is wrong with valid-typed settings
            (a URL that is no URL, a CA file that holds no certificate); a problem at the key's
            file and line, for ``check-config`` and ``run`` alike. Must not use the network.
        probe: ``probe(settings) -> [(key, message)]``: can the destination be reached now?
            Run by ``check-config`` only: at run time an unreachable destination is a metric and a
            log line, never a reason not to start.
        refresh: Re-post firing candidates this often (Alertmanager forgets an alert after the
            ``endsAt`` it was given); None: never.
        parallel: Deliveries that may be in flight at once, each on a sender of its own (a
            receiver's round trip then sets the pace); ``[forwarders.<name>] parallel`` overrides.
            1 for a sender that must not be opened twice (one SMTP connection, one file).
        plugin: Filled in by the loader.
    """

    kind: str
    help: str
    send: Callable[[Delivery, Any], None]
    settings: type | None = None
    open: Callable[[Any], Sender] | None = None
    check: Callable[[Any], Iterable[tuple[str, str]]] | None = None
    probe: Callable[[Any], Iterable[tuple[str, str]]] | None = None
    refresh: Callable[[Any], timedelta | None] | None = None
    parallel: int = 1
    plugin: str = ""
