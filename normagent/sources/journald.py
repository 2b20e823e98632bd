"""journald, read through libsystemd or ``journalctl --output=json``, checkpointed by cursor.

``read_journal`` yields the entries after a cursor in blocks of ``block_entries`` entries, each
block a ``RecordBlock`` of ``JournalEntry`` with the cursor of its last entry. The caller commits
the block's observations and that cursor together; after a crash it passes the committed cursor
back and reading resumes right after it. ``parse_journal_json`` turns a file written by
``journalctl -o json`` into entries, for ``normagent parse``.

Two readers give the same blocks, entries and cursors (a cursor saved by one resumes in the
other), chosen by ``JournalSettings.reader``: ``"auto"`` (the default) reads through the host's
``libsystemd.so.0`` in process (``normagent.sources.sdjournal``: one handle per run, about 2.5
times the entries per second of the journalctl reader, bench/README.md) and falls back to journalctl where the library cannot be loaded;
the choice is logged once per process (``journal_reader``). The journalctl reader runs it through
the injected ``CommandRunner`` (so a collector's timeout and the test fakes apply), one call per
block.

Why the journalctl commands look the way they do (verified against systemd 252, Debian 12, and
the current journalctl source; the libsystemd reader builds the same matches and seeks):

* Resuming uses ``--cursor=C`` and drops the first entry when it *is* C, rather than
  ``--after-cursor=C``. Before systemd 255, ``--after-cursor`` always skips one entry after seeking,
  so when C was vacuumed away it silently drops the nearest surviving entry. With ``--cursor`` that
  entry is read, and a first entry other than C tells us the cursor is gone
  (``journal_cursor_lost``, logged at warning with the reader's origin).
* A step is ``--cursor=C --lines=N``: with a cursor, journalctl shows at most N entries forward
  from it in every version. ``--lines`` alone means "the last N", so a first read from the
  beginning seeks with the cursor ``t=0`` (realtime 0: the head of the journal) instead.
* Starting at the end takes the cursor of the newest entry (``--lines=1``) without reading history.
  That first step yields an empty block with this cursor, so the position is committed at once.
* ``--all``: without it fields over 4096 bytes are printed as ``null``.
* Matches: units become ``_SYSTEMD_UNIT=`` (not ``-u``, which adds coredump and systemd-about-unit
  messages), identifiers ``SYSLOG_IDENTIFIER=``. journalctl ORs matches on one field and ANDs
  different fields, so the unit and identifier groups are joined with ``+`` (explicit OR): an
  entry from any listed unit *or* with any listed identifier is read. ``--priority`` applies to
  both groups.

Values: journalctl prints every value as a string, except a non-UTF-8 or control-character value
(an array of byte values, decoded here as UTF-8 with replacement) and a field that occurs more
than once in an entry (an array of values, joined here with ``"\\n"`` in journal order).

Imports only the standard library (with normagent's ``dataclass``) and normagent.errors/model
(structlog for the log).
"""

from __future__ import annotations

import functools
import glob
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

import structlog

from normagent.errors import NoData
from normagent.model import CommandResult, CommandRunner, JournalEntry, RecordBlock
from normagent.records import dataclass

if TYPE_CHECKING:
    from normagent.sources.sdjournal import _Lib

log = structlog.get_logger(__name__)

LIBSYSTEMD = "libsystemd.so.0"
Reader = Literal["auto", "libsystemd", "journalctl"]
HEAD_CURSOR = "t=0"
_ACCESS_HINT = b"not seeing messages from other users"  # a cursor journalctl accepts that points before the first entry
PRIORITY_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_PRIORITY = re.compile(r"^(?P<a>[0-7]|[a-z]+)(?:\.\.(?P<b>[0-7]|[a-z]+))?$")
_UNIT_SUFFIXES = (
    ".service", ".socket", ".target", ".device", ".mount", ".automount", ".swap", ".timer", ".path",
    ".slice", ".scope",
)  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class JournalError(RuntimeError):
    """Reading the journal failed (a timeout, an unreadable file, libsystemd missing where it was
    asked for): the run failed, retry later."""


@dataclass(frozen=True, slots=True)
class JournalSettings:
    """What to read from the journal and how; embed it in a collector's settings dataclass.

    Attributes:
        units: Read entries of these systemd units (``_SYSTEMD_UNIT``); ``"ssh"`` means
            ``"ssh.service"``. Empty, together with ``identifiers``: read every entry.
        identifiers: Read entries with these syslog identifiers (``SYSLOG_IDENTIFIER``, the tag:
            ``"sshd"``, ``"sudo"``). An entry matching a unit *or* an identifier is read.
        priority: Only entries this severe: ``"err"`` or ``"3"`` means 0..3; a range
            ``"warning..err"`` or ``"4..3"`` as journalctl's ``-p``. Empty: every priority.
        start: Where a source without a saved cursor starts: ``"end"`` (only new entries) or
            ``"beginning"`` (everything the journal still holds).
        directory: Read the journal files in this directory (``journalctl --directory``) instead
            of the local journal; e.g. ``/var/log/journal/remote`` of systemd-journal-remote.
        files: Read these journal files (``journalctl --file``, globs allowed) instead.
        block_entries: Entries per block, i.e. per committed batch.
        command_timeout: Time one journalctl call may take.
        reader: ``"auto"`` (libsystemd where ``libsystemd.so.0`` loads, else journalctl),
            ``"libsystemd"`` or ``"journalctl"``. Both give the same entries and cursors.
    """

    units: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()
    priority: str = ""
    start: Literal["beginning", "end"] = "end"
    directory: str = ""
    files: tuple[str, ...] = ()
    block_entries: int = field(default=1000, metadata={"min": 1, "max": 100_000})
    command_timeout: timedelta = field(
        default=timedelta(seconds=30), metadata={"min": timedelta(seconds=1), "max": timedelta(hours=1)}
    )
    reader: Reader = "auto"

    def __post_init__(self) -> None:
        if self.reader not in ("auto", "libsystemd", "journalctl"):
            raise ValueError(f'reader must be "auto", "libsystemd" or "journalctl", got {self.reader!r}')
        if self.block_entries < 1:
            raise ValueError(f"block_entries must be at least 1, got {self.block_entries}")
        if self.start not in ("beginning", "end"):
            raise ValueError(f'start must be "beginning" or "end", got {self.start!r}')
        if self.directory and self.files:
            raise ValueError("give either directory or files, not both")
        if self.priority:
            priority_range(self.priority)  # raises with the reason
        for unit in self.units:
            if not unit or "=" in unit:
                raise ValueError(f"unit {unit!r} is not a unit name")
        for ident in self.identifiers:
            if not ident or "\n" in ident:
                raise ValueError(f"identifier {ident!r} is not a syslog identifier")


@dataclass(frozen=True, slots=True)
class JournalDecode:
    """What ``decode_journal_json`` made of ``journalctl -o json`` output.

    Attributes:
        entries: The entries, in output order.
        garbage: Lines that are not a journal entry (not JSON, not an object, or without
            ``__CURSOR``/``__REALTIME_TIMESTAMP``); counted, never fatal.
        first_garbage_line: 1-based number of the first such line, for a diagnostic.
    """

    entries: list[JournalEntry]
    garbage: int = 0
    first_garbage_line: int | None = None


def priority_range(text: str) -> tuple[int, int]:
    """Parse a journalctl priority (``"err"``, ``"3"``, ``"warning..err"``) into (most, least) severe.

    Raises:
        ValueError: The text names no priority.
    """
    match = _PRIORITY.match(text.strip().lower())
    if not match:
        raise ValueError(f'priority {text!r}: expected a name like "err", a digit 0-7, or a range "A..B"')
    values = [_priority_value(match["a"]), _priority_value(match["b"] or match["a"])]
    if match["b"] is None:
        return 0, values[0]
    return min(values), max(values)


def _priority_value(token: str) -> int:
    if token.isdigit():
        return int(token)
    aliases = {"emergency": "emerg", "panic": "emerg", "critical": "crit", "error": "err", "warn": "warning"}
    name = aliases.get(token, token)
    if name not in PRIORITY_NAMES:
        raise ValueError(f"priority {token!r}: expected one of {', '.join(PRIORITY_NAMES)} or 0-7")
    return PRIORITY_NAMES.index(name)


def journal_matches(settings: JournalSettings) -> list[str]:
    """The journalctl match arguments (units OR identifiers) for ``settings``; empty: everything."""
    units, idents = match_groups(settings)
    if units and idents:
        return [*units, "+", *idents]
    return units or idents


def match_groups(settings: JournalSettings) -> tuple[list[str], list[str]]:
    """The unit matches and the identifier matches (``FIELD=value``); an entry is read if it
    matches any of either group."""
    units = list(dict.fromkeys(f"_SYSTEMD_UNIT={_unit_name(unit)}" for unit in settings.units))
    idents = list(dict.fromkeys(f"SYSLOG_IDENTIFIER={ident}" for ident in settings.identifiers))
    return units, idents


def _unit_name(unit: str) -> str:
    # Like `journalctl -u`: a bare name is a service.
    return unit if unit.endswith(_UNIT_SUFFIXES) else f"{unit}.service"


def journalctl_base(settings: JournalSettings, journalctl: str = "journalctl") -> list[str]:
    """The argv every call starts with: JSON output, full fields, the chosen journal."""
    argv = [journalctl, "--output=json", "--all", "--no-pager"]
    if settings.directory:
        argv.append(f"--directory={settings.directory}")
    argv.extend(f"--file={path}" for path in settings.files)
    return argv


def not_whole(files: Sequence[str]) -> list[str]:
    """Of the journal files named (globs as journalctl takes them), those there and not empty.

    libsystemd answers ENODATA ("No data available") both for a new, empty journal file (nothing
    to read yet: NoData) and for one cut short below what its header says it holds; the second
    is a fault to see, as a file that is no journal at all is (``JournalError``).
    """
    found: list[str] = []
    for path in expand_files(files):
        try:
            if os.stat(path).st_size > 0:
                found.append(path)
        except OSError:
            continue
    return found


def no_entries(origin: str, directory: str, files: Sequence[str]) -> NoData:
    """What a first read that found no entry at all says. Of the local journal: this user may read
    none (journalctl's own hint). Of chosen files (which exist: else NoData said so before): they
    are empty, damaged, or not for this user. libsystemd, and with it journalctl, skips a journal
    file cut short or with a damaged header whole, without a word; "no entries this user may
    read" sent the admin after permissions."""
    if directory or files:
        where = directory or ", ".join(files)
        return NoData(f"{origin}: no entries in the journal files of {where}: they are empty, damaged (a file "
                      "cut short or with a damaged header is skipped whole) or not readable by this user")
    return NoData(f"{origin}: the journal has no entries this user may read")


def read_journal(
    run_command: CommandRunner,
    *,
    cursor: str | None = None,
    settings: JournalSettings | None = None,
    journalctl: str = "journalctl",
    origin: str = "journal",
    library: str = LIBSYSTEMD,
    fields: Sequence[str] | None = None,
) -> Iterator[tuple[RecordBlock, str]]:
    """Read journal entries after ``cursor`` in blocks, each with the cursor to commit with it.

    Stops when caught up (a block shorter than ``block_entries``); the caller may stop earlier
    (its deadline) and resume from the last cursor it committed.

    Args:
        run_command: Runs journalctl (``RunContext.run_command``), for the journalctl reader.
        cursor: The committed cursor, or None for a source never read (``settings.start``
            decides).
        settings: What to read, and with which reader; defaults to everything from the end.
        journalctl: The journalctl executable.
        origin: Names the source in blocks and log events (``"journal"``, a directory).
        library: The libsystemd to load, for the libsystemd reader.
        fields: The fields the caller looks at (``JournalEntry.fields``), or None for all of them.
            The libsystemd reader then reads only these (the first value of a repeated field;
            ``"A|B"`` reads B only where A is missing or empty, as ``get("A") or get("B")``;
            ``__CURSOR`` and ``__REALTIME_TIMESTAMP`` may be named) and takes the cursor only of
            each block's last entry: the other entries' ``cursor`` is ``""`` unless ``__CURSOR``
            is named. The journalctl reader gives every field and cursor regardless.

    Yields:
        ``(RecordBlock, cursor)``: up to ``settings.block_entries`` entries and the cursor of the
        last one. Starting at the end yields one empty block with the newest entry's cursor.

    Raises:
        NoData: journalctl is missing (journalctl reader), the chosen journal files do not exist,
            or the journal has no entries this user may read (on a first read).
        JournalError: Reading failed otherwise (timeout, unreadable file), or the libsystemd
            reader was asked for and the library cannot be loaded.
    """
    settings = settings or JournalSettings()
    lib = choose_reader(settings.reader, library)
    if lib is None:
        yield from _read_journalctl(run_command, cursor=cursor, settings=settings, journalctl=journalctl, origin=origin)
        return
    from normagent.sources import sdjournal

    units, idents = match_groups(settings)
    most, least = priority_range(settings.priority) if settings.priority else (0, 7)
    try:
        yield from sdjournal.read(
            lib,
            cursor=cursor,
            start=settings.start,
            directory=settings.directory,
            files=expand_files(settings.files),
            priorities=list(range(most, least + 1)) if settings.priority else [],
            groups=[units, idents],
            block_entries=settings.block_entries,
            origin=origin,
            fields=fields,
        )
    except sdjournal.SdJournalError as exc:
        raise JournalError(str(exc)) from exc


def expand_files(patterns: Sequence[str]) -> list[str]:
    """The journal files ``--file`` patterns name, as journalctl expands them (glob(3), sorted; a
    pattern that matches nothing is kept, so that opening it fails as journalctl's does)."""
    files: list[str] = []
    for pattern in patterns:
        files.extend(sorted(glob.glob(pattern)) or [pattern])
    return files


def choose_reader(reader: Reader, library: str = LIBSYSTEMD) -> _Lib | None:
    """The loaded libsystemd to read with, or None for journalctl, as ``reader`` asks.

    Raises:
        JournalError: ``reader`` is ``"libsystemd"`` and the library cannot be loaded.
    """
    if reader == "journalctl":
        _announce("journalctl", library, "reader = journalctl")
        return None
    from normagent.sources import sdjournal

    loaded = sdjournal.load(library)
    if isinstance(loaded, str):
        if reader == "libsystemd":
            raise JournalError(f"reader = libsystemd, but it cannot be loaded: {loaded}")
        _announce("journalctl", library, f"libsystemd cannot be loaded: {loaded}")
        return None
    _announce("libsystemd", library, "")
    return loaded


@functools.lru_cache(maxsize=16)
def _announce(reader: str, library: str, reason: str) -> None:
    """Say once per process which reader reads the journal, and why not libsystemd if not."""
    if reader == "libsystemd":
        log.info("journal_reader", reader=reader, library=library)
    else:
        log.info("journal_reader", reader=reader, reason=reason)


def _read_journalctl(
    run_command: CommandRunner,
    *,
    cursor: str | None,
    settings: JournalSettings,
    journalctl: str,
    origin: str,
) -> Iterator[tuple[RecordBlock, str]]:
    """The journalctl reader: one call per block, resuming from the last block's cursor."""
    timeout = settings.command_timeout.total_seconds()
    base = journalctl_base(settings, journalctl)
    filters = [*(_priority_args(settings)), *journal_matches(settings)]
    saved = cursor  # a cursor that names an entry we already counted

    if saved is None and settings.start == "end":
        saved = _newest_cursor(run_command, base, timeout, settings.files)
        if saved is None:
            raise no_entries(origin, settings.directory, settings.files)
        yield RecordBlock(records=(), origin=origin), saved

    first_read = cursor is None
    while True:
        position = saved or HEAD_CURSOR
        want = settings.block_entries + (1 if saved else 0)
        argv = [*base, f"--cursor={position}", f"--lines={want}", *filters]
        result = run_command(argv, timeout=timeout)
        if not result.ok and saved and _invalid_cursor(result):
            # A checkpoint journalctl cannot even parse: treat it like a vacuumed cursor.
            log.warning("journal_cursor_lost", origin=origin, reason="invalid cursor", start=settings.start)
            yield from _read_journalctl(run_command, cursor=None, settings=settings, journalctl=journalctl, origin=origin)
            return
        _check(result, origin, settings.files)
        if first_read and _ACCESS_HINT in result.stderr:
            # journalctl shows a user outside adm/systemd-journal only their own entries.
            log.warning("journal_access_limited", origin=origin, hint="add the user to the systemd-journal group")
        decoded = decode_journal_json(result.stdout)
        if decoded.garbage:
            log.warning(
                "journal_output_garbage", origin=origin, lines=decoded.garbage, first_line=decoded.first_garbage_line
            )
        entries = decoded.entries
        if saved and entries:
            if entries[0].cursor == saved:
                entries = entries[1:]
            elif not _cursor_exists(run_command, base, saved, timeout):
                log.warning("journal_cursor_lost", origin=origin, reason="vacuumed", resumed_at=entries[0].realtime.isoformat())
        if not entries:
            if first_read and saved is None and _newest_cursor(run_command, base, timeout, settings.files) is None:
                raise no_entries(origin, settings.directory, settings.files)
            return
        saved = entries[-1].cursor
        first_read = False
        yield RecordBlock(records=tuple(entries), origin=origin), saved
        if len(entries) < settings.block_entries:
            return


def _priority_args(settings: JournalSettings) -> list[str]:
    if not settings.priority:
        return []
    most, least = priority_range(settings.priority)
    return [f"--priority={most}..{least}"]


def _newest_cursor(run_command: CommandRunner, base: list[str], timeout: float, files: Sequence[str] = ()) -> str | None:
    """The cursor of the newest entry of the whole journal (no filters), or None when empty."""
    result = run_command([*base, "--lines=1"], timeout=timeout)
    _check(result, "journal", files)
    entries = decode_journal_json(result.stdout).entries
    return entries[-1].cursor if entries else None


def _cursor_exists(run_command: CommandRunner, base: list[str], cursor: str, timeout: float) -> bool:
    """Whether the entry ``cursor`` names is still in the journal (it may just not match the filters)."""
    result = run_command([*base, f"--cursor={cursor}", "--lines=1"], timeout=timeout)
    if not result.ok:
        return False
    entries = decode_journal_json(result.stdout).entries
    return bool(entries) and entries[0].cursor == cursor


def _invalid_cursor(result: CommandResult) -> bool:
    return b"seek to cursor" in result.stderr


def _check(result: CommandResult, origin: str, files: Sequence[str] = ()) -> None:
    """Turn a failed journalctl call into NoData (nothing to read here) or JournalError."""
    if result.ok:
        return
    stderr = result.stderr.decode("utf-8", "replace").strip()
    if result.returncode is None and ("not found" in result.error or "No such file" in result.error):
        raise NoData(f"{origin}: journalctl is not installed ({result.error})")
    last_line = stderr.splitlines()[-1] if stderr else ""
    if "Failed to open" in last_line and ("No such file" in last_line or "No data available" in last_line):
        cut = not_whole(files) if "No data available" in last_line else []
        if cut:
            raise JournalError(f"{origin}: {', '.join(cut)}: not a whole journal file (cut short or damaged): {last_line}")
        raise NoData(f"{origin}: no journal files there ({last_line})")
    reason = result.error or last_line or f"exit status {result.returncode}"
    raise JournalError(f"{origin}: journalctl failed: {reason}")


def decode_journal_json(data: bytes) -> JournalDecode:
    """Decode ``journalctl -o json`` (or ``-o json-seq``) output, one entry per line.

    Informational lines journalctl may print (``-- No entries --``) and blank lines are skipped;
    any other line that is not an entry is counted in ``garbage``.
    """
    entries: list[JournalEntry] = []
    garbage = 0
    first_garbage: int | None = None
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.strip().lstrip(b"\x1e")  # json-seq puts an RS before each record
        if not line or line.startswith(b"-- "):
            continue
        entry = _entry(line)
        if entry is None:
            garbage += 1
            first_garbage = first_garbage or number
        else:
            entries.append(entry)
    return JournalDecode(entries=entries, garbage=garbage, first_garbage_line=first_garbage)


def parse_journal_json(data: bytes) -> list[JournalEntry]:
    """The entries of a file written by ``journalctl -o json``; garbage lines are skipped and logged.

    ``decode_journal_json`` returns the garbage count as well, for callers that report it.
    """
    decoded = decode_journal_json(data)
    if decoded.garbage:
        log.warning("journal_json_garbage", lines=decoded.garbage, first_line=decoded.first_garbage_line)
    return decoded.entries


def _entry(line: bytes) -> JournalEntry | None:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    fields = {str(name): _value(value) for name, value in obj.items()}
    cursor = fields.get("__CURSOR", "")
    stamp = fields.get("__REALTIME_TIMESTAMP", "")
    if not cursor or not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 20:  # int() refuses "²" and 4,300 digits
        return None
    try:
        realtime = _EPOCH + timedelta(microseconds=int(stamp))
    except OverflowError:
        return None
    return JournalEntry(fields=fields, realtime=realtime, cursor=cursor)


def _value(value: Any) -> str:
    """One field value as text: strings as they are, byte arrays decoded, repeated values joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if value and all(isinstance(item, int) and not isinstance(item, bool) for item in value):
            return _bytes(value)
        return "\n".join(_value(item) for item in value)
    if value is None:
        return ""  # only without --all: a field over 4096 bytes
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _bytes(values: Sequence[int]) -> str:
    try:
        raw = bytes(values)
    except ValueError:  # an int outside 0..255: not journalctl's byte array
        return " ".join(str(v) for v in values)
    return raw.decode("utf-8", "replace")
