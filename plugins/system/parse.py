"""Pure parsers for boot history: wtmp records, wtmpdb rows, the journald boot list and boot tails.

Nothing here reads a file, runs a command or looks at the clock: bytes and rows go in, records and
judgements come out, so every rule below is tested from tables and fuzzed.

How a boot is judged, whatever the evidence — whether the boot before it ended *orderly*:

- **orderly** (clean): the previous boot ended with a shutdown the system itself performed — a wtmp
  ``shutdown`` record or a change to runlevel 0/6 (util-linux ``last -x`` semantics), a wtmpdb boot
  row with a logout time, or systemd's shutdown messages at the end of the journal of the previous
  boot. Downtime runs from that shutdown to this boot.
- **not orderly** (unexpected): the previous boot is known but ended without any of that: power
  loss, a crash, a hard reset. Downtime is bounded from the last sign of life of the previous boot
  (its last journal entry, its last wtmp record): an upper bound, marked so. wtmpdb keeps no such
  sign, so there the downtime stays unknown.
- **unknown**: nothing is known of the previous boot (the first boot in the history).

A soft reboot (systemd >= 254, ``systemctl soft-reboot``) restarts userspace only: the kernel and
the boot id stay, so it is no end of a boot, and the shutdown markers it leaves in the journal
(logind's message with ``SHUTDOWN=soft-reboot``, ``shutdown.target``, ``final.target``,
``soft-reboot.target``) are set aside once userspace starts again in the same boot.

Orderly is not *planned*: factsheet 12's planned outage is an announced one, and whether a boot's
downtime lay inside a maintenance window is decided by the collector against the site's calendar.

Imports only the standard library (with normagent's ``dataclass``).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import timezone, tzinfo
from typing import Any, Literal

from normagent import dataclass, strptime

# --------------------------------------------------------------------------------------------
# wtmp: glibc's struct utmp on x86_64 (bits/utmp.h), 384 bytes, little endian

WTMP_RECORD = struct.Struct("<h2xi32s4s32s256shhiii4i20s")
WTMP_RECORD_SIZE = WTMP_RECORD.size  # 384
EMPTY, RUN_LVL, BOOT_TIME, NEW_TIME, OLD_TIME = 0, 1, 2, 3, 4
ACCOUNTING = 9  # the highest ut_type glibc defines
MIN_TIME = 315_532_800.0  # 1980-01-01: no wtmp record of a clinic server is older
FUTURE_SLACK = 86_400.0  # a record up to a day ahead of "now" is a skewed clock, not garbage
SHUTDOWN_RUNLEVELS = (ord("0"), ord("6"))

WtmpKind = Literal["boot", "shutdown", "runlevel", "clock", "session"]
Evidence = Literal["wtmp", "wtmpdb", "journald"]


@dataclass(frozen=True, slots=True)
class WtmpRecord:
    """What one wtmp record says about the system's life; user names and hosts are not kept.

    Attributes:
        kind: ``boot``, ``shutdown`` (a shutdown record or a change to runlevel 0/6),
            ``runlevel`` (any other runlevel change), ``clock`` (date changed) or ``session``
            (logins, logouts, init and getty records: signs of life only).
        time: Unix seconds (with microseconds).
        offset: Byte offset of the record in its file.
    """

    kind: WtmpKind
    time: float
    offset: int


@dataclass(frozen=True, slots=True)
class WtmpScan:
    """The records of a wtmp chunk, and what could not be used.

    Attributes:
        records: Valid records in file order.
        invalid: Records rejected (unknown type, time out of range, microseconds out of range).
        empty: ``EMPTY`` records (type 0), which carry nothing.
        consumed: Bytes of whole records read; a torn last record (fewer than 384 bytes) is left
            for the next read, when the writer may have finished it.
    """

    records: tuple[WtmpRecord, ...]
    invalid: int
    empty: int
    consumed: int


def _text(raw: bytes) -> bytes:
    # utmp strings are NUL-padded but not necessarily NUL-terminated.
    return raw.split(b"\0", 1)[0]


def classify_wtmp(ut_type: int, pid: int, line: bytes, user: bytes) -> WtmpKind:
    """The kind of a record, as util-linux ``last`` decides it (records on line ``~`` by user name)."""
    if line.startswith(b"~"):
        if user.startswith(b"shutdown"):
            return "shutdown"
        if user.startswith(b"reboot"):
            return "boot"
        if user.startswith(b"runlevel"):
            ut_type = RUN_LVL
    if ut_type == BOOT_TIME:
        return "boot"
    if ut_type == RUN_LVL:
        return "shutdown" if (pid & 0xFF) in SHUTDOWN_RUNLEVELS else "runlevel"
    if ut_type in (NEW_TIME, OLD_TIME):
        return "clock"
    return "session"


def parse_wtmp(data: bytes, *, now: float, base_offset: int = 0) -> WtmpScan:
    """Decode wtmp records from ``data`` (which starts at a record boundary).

    Args:
        data: Bytes read from a wtmp file, starting at ``base_offset``.
        now: Unix time used to reject records from the future (more than a day ahead).
        base_offset: Where ``data`` starts in the file, for ``WtmpRecord.offset``.

    Returns:
        The valid records, counts of invalid and empty ones, and how many bytes were whole records.
    """
    whole = len(data) - len(data) % WTMP_RECORD_SIZE
    records: list[WtmpRecord] = []
    invalid = empty = 0
    latest = now + FUTURE_SLACK
    for index, fields in enumerate(WTMP_RECORD.iter_unpack(memoryview(data)[:whole])):
        ut_type, pid, line, _ident, user, _host, _term, _exit, _session, sec, usec = fields[:11]
        if ut_type == EMPTY:
            empty += 1
            continue
        if not 0 < ut_type <= ACCOUNTING or not 0 <= usec < 1_000_000 or not MIN_TIME <= sec <= latest:
            invalid += 1
            continue
        kind = classify_wtmp(ut_type, pid, _text(line), _text(user))
        records.append(WtmpRecord(kind, sec + usec / 1e6, base_offset + index * WTMP_RECORD_SIZE))
    return WtmpScan(tuple(records), invalid, empty, whole)


# --------------------------------------------------------------------------------------------
# Judging boots


@dataclass(frozen=True, slots=True)
class Boot:
    """One boot and how the boot before it ended.

    Attributes:
        at: Unix time of the boot.
        key: Stable identity within its evidence (``"1709366400"``, a journald boot id).
        evidence: Where the judgement comes from: ``wtmp``, ``wtmpdb`` or ``journald``.
        orderly: True after a clean shutdown, False after none, None when nothing is known.
        shutdown_at: When the clean shutdown began (orderly boots).
        last_seen: The last sign of life of the previous boot, when the evidence has one.
        downtime: Seconds the host was down before this boot, or None when unknown.
        downtime_exact: Whether ``downtime`` is measured from a shutdown (True) or bounded from
            the last sign of life, which makes it an upper bound (False).
    """

    at: float
    key: str
    evidence: Evidence
    orderly: bool | None
    shutdown_at: float | None = None
    last_seen: float | None = None
    downtime: float | None = None
    downtime_exact: bool = False


@dataclass(frozen=True, slots=True)
class BootCarry:
    """What is known, at the end of a wtmp chunk, about the boot still running in it.

    It travels in the checkpoint, so the next chunk (or the next file after rotation) judges its
    first boot with what came before. ``seen`` is False only before any record was read.
    """

    boot_at: float | None = None
    shutdown_at: float | None = None
    last_seen: float | None = None
    seen: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"boot_at": self.boot_at, "shutdown_at": self.shutdown_at, "last_seen": self.last_seen, "seen": self.seen}

    @classmethod
    def from_json(cls, value: Any) -> BootCarry:
        """Rebuild from a checkpoint; anything malformed gives an empty carry (unknown history)."""
        if not isinstance(value, dict):
            return cls()

        def num(key: str) -> float | None:
            item = value.get(key)
            return float(item) if isinstance(item, (int, float)) and not isinstance(item, bool) else None

        return cls(num("boot_at"), num("shutdown_at"), num("last_seen"), value.get("seen") is True)


def fold_wtmp(records: Iterable[WtmpRecord], carry: BootCarry) -> tuple[list[Boot], BootCarry]:
    """Judge every boot record in ``records``, continuing from ``carry``.

    Returns:
        The boots found, in order, and the carry for the next chunk.
    """
    boots: list[Boot] = []
    for record in records:
        if record.kind == "boot":
            if carry.shutdown_at is not None:
                downtime = record.time - carry.shutdown_at
                boots.append(
                    Boot(
                        at=record.time,
                        key=f"{record.time:.0f}",
                        evidence="wtmp",
                        orderly=True,
                        shutdown_at=carry.shutdown_at,
                        last_seen=carry.last_seen,
                        downtime=downtime if downtime >= 0 else None,
                        downtime_exact=downtime >= 0,
                    )
                )
            else:
                # wtmp does not record when a host died: its last record bounds the downtime.
                bound = record.time - carry.last_seen if carry.seen and carry.last_seen is not None else None
                boots.append(
                    Boot(
                        at=record.time,
                        key=f"{record.time:.0f}",
                        evidence="wtmp",
                        orderly=False if carry.seen else None,
                        last_seen=carry.last_seen,
                        downtime=bound if bound is not None and bound >= 0 else None,
                        downtime_exact=False,
                    )
                )
            carry = BootCarry(boot_at=record.time, shutdown_at=None, last_seen=record.time, seen=True)
        elif record.kind == "shutdown":
            # The first shutdown record after a boot marks when the orderly shutdown began.
            first = carry.shutdown_at if carry.shutdown_at is not None else record.time
            carry = replace(carry, shutdown_at=first, last_seen=_later(carry.last_seen, record.time), seen=True)
        else:
            carry = replace(carry, last_seen=_later(carry.last_seen, record.time), seen=True)
    return boots, carry


def _later(a: float | None, b: float) -> float:
    return b if a is None else max(a, b)


# --------------------------------------------------------------------------------------------
# wtmpdb (Debian 13+): SQLite rows of table wtmp


WTMPDB_BOOT_TIME = 1  # wtmpdb.h: BOOT_TIME; users "reboot" and "soft-reboot"


@dataclass(frozen=True, slots=True)
class WtmpdbRow:
    """A boot row of wtmpdb's ``wtmp`` table; times are microseconds since the epoch."""

    id: int
    login: Any
    logout: Any


def boots_from_wtmpdb(rows: Sequence[WtmpdbRow], *, now: float) -> tuple[list[Boot], int]:
    """Judge wtmpdb boot rows (``Type = 1``), oldest first.

    ``wtmpdb shutdown`` (run by ``wtmpdb-update-boot.service`` when the system stops) writes the
    boot row's ``Logout``; a boot row without one, followed by a newer boot, ended in a crash.

    Returns:
        The boots and the number of rows rejected (non-integer or out-of-range times).
    """
    valid: list[tuple[float, int, float | None]] = []
    invalid = 0
    latest = now + FUTURE_SLACK
    for row in rows:
        login = _usec(row.login, latest)
        logout = _usec(row.logout, latest) if row.logout is not None else None
        if login is None or (row.logout is not None and logout is None):
            invalid += 1
            continue
        valid.append((login, row.id, logout))
    valid.sort()
    boots: list[Boot] = []
    for position, (login, _id, _logout) in enumerate(valid):
        key = f"{login:.0f}"
        if position == 0:
            boots.append(Boot(at=login, key=key, evidence="wtmpdb", orderly=None))
            continue
        previous_logout = valid[position - 1][2]
        if previous_logout is None:
            boots.append(Boot(at=login, key=key, evidence="wtmpdb", orderly=False))
        else:
            downtime = login - previous_logout
            boots.append(
                Boot(
                    at=login,
                    key=key,
                    evidence="wtmpdb",
                    orderly=True,
                    shutdown_at=previous_logout,
                    downtime=downtime if downtime >= 0 else None,
                    downtime_exact=downtime >= 0,
                )
            )
    return boots, invalid


def _usec(value: Any, latest: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    seconds = value / 1e6
    return seconds if MIN_TIME <= seconds <= latest else None


# --------------------------------------------------------------------------------------------
# journald: the boot list and the tail of a boot


@dataclass(frozen=True, slots=True)
class JournalBoot:
    """One line of ``journalctl --list-boots``: a boot id and its first and last entry times."""

    boot_id: str
    first: float
    last: float


BOOT_ID = re.compile(r"^[0-9a-f]{32}$")
_STAMP = r"\w{3} \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \S+?"
# systemd ≥ 251 prints a header and separates the two times with spaces; older versions print no
# header and join the times with an em dash ("…08:00:00 UTC—Mon 2026…").
LIST_BOOTS_LINE = re.compile(
    rf"^\s*(?P<index>-?\d+)\s+(?P<boot_id>[0-9a-f]{{32}})\s+(?P<first>{_STAMP})\s*(?:\u2014|\s)\s*(?P<last>{_STAMP})\s*$"
)
UTC_NAMES = frozenset({"UTC", "GMT", "Z", "UCT"})


def parse_list_boots(output: bytes, *, tz: tzinfo = timezone.utc) -> tuple[list[JournalBoot], int]:
    """Parse ``journalctl --list-boots``: JSON (``--output=json``, systemd ≥ 251) or the text table.

    Args:
        output: The command's stdout.
        tz: The host's zone, for text tables whose times are local (``CET``, ``CEST``).

    Returns:
        The boots, oldest first, and the number of lines or items that could not be read.
    """
    text = output.decode("utf-8", errors="replace").strip()
    if not text:
        return [], 0
    if text.startswith("["):
        return _list_boots_json(text)
    boots: list[JournalBoot] = []
    invalid = 0
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("IDX"):
            continue
        match = LIST_BOOTS_LINE.match(line)
        first = _stamp(match["first"], tz) if match else None
        last = _stamp(match["last"], tz) if match else None
        if match is None or first is None or last is None:
            invalid += 1
            continue
        boots.append(JournalBoot(match["boot_id"], first, last))
    boots.sort(key=lambda b: b.first)
    return boots, invalid


def _list_boots_json(text: str) -> tuple[list[JournalBoot], int]:
    try:
        items = json.loads(text)
    except ValueError:
        return [], 1
    if not isinstance(items, list):
        return [], 1
    boots: list[JournalBoot] = []
    invalid = 0
    for item in items:
        try:
            boot_id, first, last = item["boot_id"], item["first_entry"], item["last_entry"]
        except (TypeError, KeyError):
            invalid += 1
            continue
        if not (isinstance(boot_id, str) and BOOT_ID.match(boot_id) and _is_int(first) and _is_int(last)):
            invalid += 1
            continue
        boots.append(JournalBoot(boot_id, first / 1e6, last / 1e6))
    boots.sort(key=lambda b: b.first)
    return boots, invalid


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _stamp(text: str, tz: tzinfo) -> float | None:
    """``Sun 2026-11-01 08:00:00 CET`` → Unix time, the zone name choosing between DST folds."""
    try:
        _weekday, day, clock, zone = text.split(" ")
        naive = strptime(f"{day} {clock}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    if zone in UTC_NAMES:
        return naive.replace(tzinfo=timezone.utc).timestamp()
    for fold in (0, 1):
        local = naive.replace(tzinfo=tz, fold=fold)
        if local.tzname() == zone:
            return local.timestamp()
    return None


# Message ids from systemd's catalog (/usr/lib/systemd/catalog/systemd.catalog, sd-messages.h).
SD_MESSAGE_SHUTDOWN = "98268866d1d54a499c4e98921d93bc40"  # "System shutdown initiated" (logind)
SD_MESSAGE_UNIT_STARTED = "39f53479d3a045ac8e11786248231fbf"  # "A start job … finished": Reached target X
SHUTDOWN_TARGETS = frozenset(
    {
        "shutdown.target",
        "final.target",
        "reboot.target",
        "poweroff.target",
        "halt.target",
        "kexec.target",
    }
)
# A soft reboot (systemd >= 254) passes shutdown.target and final.target too, then restarts
# userspace in the same boot: these say it was one, and a start-up target reached afterwards says
# userspace runs again, so the markers before it ended nothing.
SOFT_REBOOT_UNITS = frozenset({"soft-reboot.target", "systemd-soft-reboot.service"})
SOFT_REBOOT_VERB = "soft-reboot"  # logind's SHUTDOWN= field (logind-action.c, handle_action_data)
STARTUP_TARGETS = frozenset({"sysinit.target", "basic.target", "multi-user.target", "graphical.target",
                             "rescue.target", "emergency.target"})
SHUTDOWN_IDENTIFIER = "systemd-shutdown"  # the final stage of every systemd shutdown; text only

# journalctl match arguments that select exactly the entries ``shutdown_marker`` looks at:
# (MESSAGE_ID is one of two ids) OR (SYSLOG_IDENTIFIER is systemd-shutdown).
TAIL_MATCHES = (
    f"MESSAGE_ID={SD_MESSAGE_SHUTDOWN}",
    f"MESSAGE_ID={SD_MESSAGE_UNIT_STARTED}",
    "+",
    f"SYSLOG_IDENTIFIER={SHUTDOWN_IDENTIFIER}",
)
TAIL_FIELDS = "MESSAGE_ID,UNIT,SYSLOG_IDENTIFIER,SHUTDOWN"


@dataclass(frozen=True, slots=True)
class TailScan:
    """What the end of a boot's journal says about how it ended.

    Attributes:
        shutdown_at: Time of the earliest shutdown marker, or None when there is none.
        markers: How many entries were shutdown markers.
        entries: Entries read.
        invalid: Lines that were not journal JSON.
    """

    shutdown_at: float | None
    markers: int
    entries: int
    invalid: int


def scan_boot_tail(output: bytes) -> TailScan:
    """Look for systemd's clean-shutdown markers in ``journalctl -o json`` lines of one boot.

    A marker is: logind's shutdown message (``MESSAGE_ID`` SD_MESSAGE_SHUTDOWN); PID 1 reaching a
    shutdown target (SD_MESSAGE_UNIT_STARTED with ``UNIT`` ``shutdown.target``, ``reboot.target``
    …); or any message of ``systemd-shutdown``, for journals without message ids. Markers count
    from the last restart of userspace on: a soft reboot's markers (see the module docstring) are
    forgotten when a start-up target is reached after them, and a run of markers that belongs to a
    soft reboot is no clean shutdown even when nothing follows it (userspace died on the way).
    """
    earliest: float | None = None
    soft = False
    markers = entries = invalid = 0
    timed: list[tuple[float, dict[str, Any]]] = []
    for raw in output.splitlines():
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            invalid += 1
            continue
        if not isinstance(entry, dict):
            invalid += 1
            continue
        entries += 1
        when = _field(entry, "__REALTIME_TIMESTAMP")
        if not (when.isascii() and when.isdigit()) or len(when) > 17:  # µs; past year 5138 is no time
            invalid += 1
            continue
        timed.append((int(when) / 1e6, entry))
    for moment, entry in sorted(timed, key=lambda item: item[0]):
        if _is_soft_reboot(entry):
            soft = True
            continue
        if _is_startup(entry):
            earliest, soft = None, False  # userspace (re)started: what came before ended nothing
            continue
        if _is_shutdown_marker(entry):
            markers += 1
            earliest = moment if earliest is None else min(earliest, moment)
    return TailScan(None if soft else earliest, markers, entries, invalid)


def _is_soft_reboot(entry: dict[str, Any]) -> bool:
    if SD_MESSAGE_SHUTDOWN in _values(entry, "MESSAGE_ID") and SOFT_REBOOT_VERB in _values(entry, "SHUTDOWN"):
        return True
    return SD_MESSAGE_UNIT_STARTED in _values(entry, "MESSAGE_ID") and bool(SOFT_REBOOT_UNITS & set(_values(entry, "UNIT")))


def _is_startup(entry: dict[str, Any]) -> bool:
    return SD_MESSAGE_UNIT_STARTED in _values(entry, "MESSAGE_ID") and bool(STARTUP_TARGETS & set(_values(entry, "UNIT")))


def _is_shutdown_marker(entry: dict[str, Any]) -> bool:
    message_ids = _values(entry, "MESSAGE_ID")
    if SD_MESSAGE_SHUTDOWN in message_ids:
        return True
    if SD_MESSAGE_UNIT_STARTED in message_ids and SHUTDOWN_TARGETS & set(_values(entry, "UNIT")):
        return True
    return SHUTDOWN_IDENTIFIER in _values(entry, "SYSLOG_IDENTIFIER")


def _values(entry: dict[str, Any], key: str) -> list[str]:
    """A journal field's values: JSON strings, byte arrays (non-UTF-8) or arrays of those."""
    value = entry.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if value and all(isinstance(b, int) and 0 <= b < 256 for b in value):
            return [bytes(value).decode("utf-8", errors="replace")]
        out: list[str] = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, list) and all(isinstance(b, int) and 0 <= b < 256 for b in item):
                out.append(bytes(item).decode("utf-8", errors="replace"))
        return out
    return []


def _field(entry: dict[str, Any], key: str) -> str:
    values = _values(entry, key)
    return values[0] if values else ""


def judge_journal_boot(boot: JournalBoot, previous: JournalBoot, tail: TailScan) -> Boot:
    """The judgement of ``boot`` from the end of ``previous`` (its list entry and its tail).

    Orderly: downtime from the first shutdown marker to this boot's first entry. Not orderly:
    downtime from the previous boot's last entry, an upper bound (the host may have died later
    without logging).
    """
    if tail.shutdown_at is not None:
        downtime = boot.first - tail.shutdown_at
        return Boot(
            at=boot.first,
            key=boot.boot_id,
            evidence="journald",
            orderly=True,
            shutdown_at=tail.shutdown_at,
            last_seen=previous.last,
            downtime=downtime if downtime >= 0 else None,
            downtime_exact=downtime >= 0,
        )
    downtime = boot.first - previous.last
    return Boot(
        at=boot.first,
        key=boot.boot_id,
        evidence="journald",
        orderly=False,
        last_seen=previous.last,
        downtime=downtime if downtime >= 0 else None,
        downtime_exact=False,
    )
