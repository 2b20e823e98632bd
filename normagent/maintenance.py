"""The maintenance calendar: when an outage was announced, and which changes are planned.

Factsheet 12 calls an outage *planned* when it was announced, not when it was orderly. One calendar
answers that for every part of the agent: the availability probes (an outage inside a window is
planned), ``system.boots`` (a reboot inside a window is planned, an orderly one at 14:00 outside
every window is not), the EDI stops, and later the changes plugin (a change outside every planned
window is a deviation candidate). Collectors reach it as ``ctx.maintenance`` (the
``MaintenanceCalendar`` protocol of ``normagent.model``).

Where windows come from, all in the top-level ``[maintenance]`` table:

- one-off windows (``[[maintenance.windows]]``: start, end, what, role);
- weekly windows (``[[maintenance.weekly]]``: days, from, to, time zone; ``to`` earlier than
  ``from`` ends the next day);
- planned changes (``[[maintenance.changes]]``: what, expected effect, start, end, role, and
  optionally ``subjects``: what the change covers);
- an iCalendar file (``calendar = "/etc/normagent/maintenance.ics"``), so a site can publish its
  maintenance calendar from the tool it already uses. Every VEVENT is a window (``SUMMARY`` is
  what, ``X-NORMAGENT-ROLE`` the role, ``DESCRIPTION`` the expected effect); one whose
  ``CATEGORIES`` holds ``change_category`` (default ``CHANGE``) is a planned change, and its
  ``X-NORMAGENT-SUBJECTS`` (comma-separated, or the property repeated) are its ``subjects``.
  ``RRULE``, ``RDATE`` and ``EXDATE`` are expanded by ``recurring-ical-events``;
  ``STATUS:CANCELLED`` events are left out; ``ORGANIZER`` and ``ATTENDEE`` are never read (they
  name people).

A planned change's ``subjects`` narrow which *changes* it plans (a configuration change outside
every plan is a deviation candidate): a glob of a path (``/etc/ssh/**``: ``*`` stays within one
directory, ``**`` crosses them) or ``<source>:<glob>`` for the other things the changes plugin
counts (``package:openssh-*``, ``auditd:identity``, ``windows:Password Policy``). Without
subjects a planned change plans every change in its span. They do not narrow outages: an outage
inside a planned change is planned whatever the change covers.

The file is parsed by ``icalendar`` (imported only when a file is configured: the idle agent does
not load it). An invalid file is a configuration problem naming its line; a file that becomes
invalid while the agent runs keeps the last good version in use, and the log says why, once per
version of the file.

Imports only normagent.model (types) and the standard library (icalendar lazily).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from normagent.model import PlannedWindow
from normagent.records import dataclass
from normagent.smallfile import read_small_stat

log = structlog.get_logger(__name__)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CHUNK = timedelta(days=32)  # windows are expanded and cached per chunk of this length
MAX_OCCURRENCES = 20_000  # per chunk and file: a calendar that recurs more often is refused
MAX_CALENDAR_BYTES = 32 * 1024 * 1024  # years of a busy change calendar exported whole are a few MB
TOO_FREQUENT = ("SECONDLY", "MINUTELY")
MAX_PER_DAY = 25  # occurrences of one event in 24 hours: hourly, and an RDATE beside it


def zone(name: str) -> ZoneInfo:
    """A time zone by IANA name; ``ValueError`` (a config problem) if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'unknown time zone "{name}" (expected an IANA name like "Europe/Oslo")') from None


def _check_role(role: str) -> None:
    # A role ("EPJ-leverandør"), never a person: an e-mail address is the one thing we can tell.
    if "@" in role:
        raise ValueError(f'role "{role}" looks like an e-mail address: name a role ("driftsleverandør"), not a person')


def _check_span(start: datetime | None, end: datetime | None, what: str) -> None:
    if start is None or end is None:
        raise ValueError(f"{what} needs both start and end")
    if _naive_utc(end) <= _naive_utc(start):
        raise ValueError(f"{what} must end after it starts")


# What a planned change's subjects may name besides a path: the other sources of changes the
# changes plugin counts (a closed set, so a misspelt prefix is a config problem, not a plan that
# silently never matches).
SUBJECT_SOURCES = ("package", "auditd", "windows")


def check_subject(pattern: str) -> None:
    """``ValueError`` unless ``pattern`` is a path glob (``/…``) or ``<source>:<glob>``."""
    if pattern.startswith("/"):
        return
    source, colon, rest = pattern.partition(":")
    if not colon or source not in SUBJECT_SOURCES:
        raise ValueError(
            f'subject "{pattern}" is neither a path glob ("/etc/ssh/**") nor "<source>:<glob>" with source '
            + ", ".join(SUBJECT_SOURCES)
            + ' ("package:openssh-*")'
        )
    if not rest.strip():
        raise ValueError(f'subject "{pattern}" names no {source} after the colon')


def _naive_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


# --------------------------------------------------------------------------------------------
# settings: the [maintenance] table


@dataclass(frozen=True, slots=True)
class OneOffWindow:
    """A one-off maintenance window.

    Attributes:
        start: Start; without an offset it is read in ``[maintenance] time_zone``.
        end: End, later than start.
        what: What is done (shown in the report).
        role: Who does it, as a role ("EPJ-leverandør"), never a person.
    """

    start: datetime | None = None
    end: datetime | None = None
    what: str = ""
    role: str = ""

    def __post_init__(self) -> None:
        _check_span(self.start, self.end, "a maintenance window")
        _check_role(self.role)


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """A maintenance window that recurs every week.

    Attributes:
        days: Days it starts on (``"mon"`` … ``"sun"``).
        from_: Local start time.
        to: Local end time; earlier than (or equal to) ``from`` means the next day.
        time_zone: IANA zone of ``from``/``to``; empty: ``[maintenance] time_zone``.
        what: What is done.
        role: Who does it, as a role, never a person.
    """

    days: tuple[Weekday, ...] = ()
    from_: time | None = field(default=None, metadata={"toml": "from"})
    to: time | None = None
    time_zone: str = ""
    what: str = ""
    role: str = ""

    def __post_init__(self) -> None:
        if not self.days or self.from_ is None or self.to is None:
            raise ValueError("a weekly maintenance window needs days, from and to")
        if self.time_zone:
            zone(self.time_zone)
        _check_role(self.role)


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """A planned change: what, its expected effect, when, and by whom (a role).

    Attributes:
        what: What changes ("Brannmurregler for Helsenett").
        effect: The expected effect ("kort brudd mot Helsenett, under 5 min").
        start: When it starts; without an offset it is read in ``[maintenance] time_zone``.
        end: When it is done.
        role: Who does it, as a role ("nettleverandør"), never a person.
        subjects: What it covers, as globs: a path (``"/etc/ssh/**"``) or ``"<source>:<glob>"``
            (``"package:openssh-*"``, ``"auditd:identity"``, ``"windows:Password Policy"``);
            a configuration or package change in its span is planned only if one matches.
            Empty: every change in its span is planned.
    """

    what: str = ""
    effect: str = ""
    start: datetime | None = None
    end: datetime | None = None
    role: str = ""
    subjects: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.what.strip():
            raise ValueError("a planned change needs what")
        _check_span(self.start, self.end, "a planned change")
        _check_role(self.role)
        for subject in self.subjects:
            check_subject(subject)


@dataclass(frozen=True, slots=True)
class MaintenanceSettings:
    """``[maintenance]``: announced maintenance windows and planned changes, shared by every plugin.

    Attributes:
        time_zone: IANA zone of times written without an offset and of weekly windows.
        windows: One-off maintenance windows.
        weekly: Weekly maintenance windows.
        changes: Planned changes (what, expected effect, when, by whom); an outage inside one is
            planned too.
        calendar: An iCalendar file (RFC 5545) of windows, e.g. ``/etc/normagent/maintenance.ics``;
            re-read when it changes. Every VEVENT is a window; see ``change_category``.
        change_category: A VEVENT whose ``CATEGORIES`` holds this value (any case) is a planned
            change; ``DESCRIPTION`` is its expected effect, ``X-NORMAGENT-ROLE`` its role,
            ``X-NORMAGENT-SUBJECTS`` what it covers (as ``subjects`` of ``changes``).
    """

    time_zone: str = "Europe/Oslo"
    windows: tuple[OneOffWindow, ...] = ()
    weekly: tuple[WeeklyWindow, ...] = ()
    changes: tuple[PlannedChange, ...] = ()
    calendar: Path | None = None
    change_category: str = "CHANGE"

    def __post_init__(self) -> None:
        zone(self.time_zone)
        if not self.change_category.strip():
            raise ValueError("change_category must not be empty")


def validate_maintenance(settings: MaintenanceSettings) -> list[tuple[str, str]]:
    """Config check of ``[maintenance]``: the iCalendar file must exist and parse (the problem names
    its line)."""
    if settings.calendar is None:
        return []
    try:
        IcalFile.load(settings.calendar, zone(settings.time_zone), settings.change_category)
    except CalendarError as exc:
        return [("calendar", str(exc))]
    return []


# --------------------------------------------------------------------------------------------
# the iCalendar file


class CalendarError(Exception):
    """An iCalendar file that cannot be used; the message names the file and, where known, the line."""


_CONTENT = re.compile(r"'([^']*)'")


@dataclass(frozen=True, slots=True)
class _Lines:
    """Where things are written in the file (icalendar keeps no positions): the line of every
    component's BEGIN in file order, each component's property lines, every logical line."""

    begins: tuple[int, ...]
    props: tuple[dict[str, int], ...]
    logical: tuple[tuple[int, str], ...]
    unclosed: int | None  # line of a BEGIN without its END
    unclosed_name: str
    stray_end: int | None  # line of an END without its BEGIN

    @classmethod
    def index(cls, text: str) -> _Lines:
        logical: list[tuple[int, str]] = []
        for number, raw in enumerate(text.splitlines(), 1):
            if raw[:1] in (" ", "\t") and logical:  # RFC 5545 3.1: a folded line continues the last
                line, content = logical[-1]
                logical[-1] = (line, content + raw[1:])
            else:
                logical.append((number, raw))
        begins: list[int] = []
        props: list[dict[str, int]] = []
        stack: list[tuple[int, str]] = []  # (component index, name)
        stray = None
        for number, content in logical:
            name = re.split(r"[;:]", content, maxsplit=1)[0].strip().upper()
            value = content.split(":", 1)[1].strip().upper() if ":" in content else ""
            if name == "BEGIN":
                begins.append(number)
                props.append({})
                stack.append((len(begins) - 1, value))
            elif name == "END":
                if stack and stack[-1][1] == value:
                    stack.pop()
                elif stray is None:
                    stray = number
            elif stack and name:
                props[stack[-1][0]].setdefault(name, number)
        unclosed = begins[stack[-1][0]] if stack else None
        return cls(tuple(begins), tuple(props), tuple(logical), unclosed, stack[-1][1] if stack else "", stray)

    def of_text(self, content: str) -> int | None:
        for number, line in self.logical:
            if line.strip() == content.strip():
                return number
        return None


@dataclass(frozen=True)
class IcalFile:
    """A parsed iCalendar file and the identity of the version read (to notice a new one)."""

    path: Path
    identity: tuple[int, int, int, int]  # dev, inode, size, mtime_ns
    calendar: Any  # icalendar.Calendar (typed loosely: icalendar is imported lazily)
    events: tuple[tuple[Any, int], ...]  # (VEVENT, line of its BEGIN)
    zone: tzinfo
    change_category: str

    @classmethod
    def load(cls, path: Path, default_zone: tzinfo, change_category: str) -> IcalFile:
        """Read, parse and check ``path``.

        Raises:
            CalendarError: the file cannot be read, is not iCalendar, or an event in it cannot be
                used; the message says ``<file>:<line>: what``.
        """
        try:
            data, st = read_small_stat(path, MAX_CALENDAR_BYTES)
        except FileNotFoundError:
            raise CalendarError(f"{path}: file not found") from None
        except IsADirectoryError:
            raise CalendarError(f"{path}: is a directory, expected an iCalendar file") from None
        except OSError as exc:
            raise CalendarError(f"{path}: cannot read: {exc.strerror or exc}") from None
        identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise CalendarError(f"{path}:{line}: not UTF-8 text (RFC 5545 calendars are UTF-8)") from None
        lines = _Lines.index(text)
        calendar = _parse(path, text, lines)
        events = _events(path, calendar, lines, change_category.strip().upper())
        loaded = cls(path, identity, calendar, tuple(events), default_zone, change_category.strip().upper())
        loaded._check_rules(lines)
        return loaded

    def _check_rules(self, lines: _Lines) -> None:
        """Expand every event once near its start, so a broken RRULE is found now, with its line;
        one that recurs more than hourly, or a calendar with more windows in a CHUNK than the
        agent expands, is refused."""
        steady = 0  # windows per CHUNK of the recurring events (their first CHUNK's)
        once: dict[int, int] = {}  # windows of the one-off events, per CHUNK they begin in
        for event, begin in self.events:
            rule = event.get("RRULE")
            freq = _rule_freq(rule)
            if freq in TOO_FREQUENT:
                raise CalendarError(
                    f"{self.path}:{_prop_line(lines, begin, 'RRULE')}: RRULE FREQ={freq}: maintenance windows "
                    "may recur at most hourly"
                )
            recurring = rule is not None or event.get("RDATE") is not None
            try:
                start = _as_datetime(event.get("DTSTART").dt, self.zone)
                busiest, chunk = _density(self.calendar, event, start, self.zone, MAX_OCCURRENCES + 1 if recurring else 1)
            except CalendarError:
                raise
            except Exception as exc:  # icalendar and recurring-ical-events raise many kinds
                prop = "RRULE" if rule is not None else "DTSTART"
                raise CalendarError(
                    f"{self.path}:{_prop_line(lines, begin, prop)}: {prop}: {_short(exc)}"
                ) from None
            if busiest > MAX_PER_DAY:
                # FREQ=HOURLY with a BYMINUTE or BYSECOND list recurs by the second all the same.
                raise CalendarError(
                    f"{self.path}:{_prop_line(lines, begin, 'RRULE')}: RRULE recurs more than {MAX_PER_DAY} times a day: "
                    "maintenance windows may recur at most hourly"
                )
            if recurring:
                steady += chunk
            else:
                index = int(start.timestamp() // CHUNK.total_seconds())
                once[index] = once.get(index, 0) + chunk
            if steady + max(once.values(), default=0) > MAX_OCCURRENCES:
                # The agent expands a CHUNK of windows at once, at most MAX_OCCURRENCES of them.
                raise CalendarError(
                    f"{self.path}:{_prop_line(lines, begin, 'DTSTART')}: with this event the calendar has more than "
                    f"{MAX_OCCURRENCES:,} windows in {CHUNK.days} days; the agent expands at most that many"
                )

    def windows(self, start: datetime, end: datetime) -> list[PlannedWindow]:
        """The occurrences overlapping ``[start, end)`` as windows (at most MAX_OCCURRENCES)."""
        import recurring_ical_events

        out: list[PlannedWindow] = []
        # One by one in the order they begin (never the whole span's list at once), up to the
        # first that begins at or after ``end``, or MAX_OCCURRENCES.
        for n, occurrence in enumerate(recurring_ical_events.of(self.calendar).after(start)):
            if n == MAX_OCCURRENCES:
                log.warning("maintenance_calendar_truncated", file=str(self.path), occurrences=n)
                break
            if _as_datetime(occurrence.get("DTSTART").dt, self.zone) >= end:
                break
            window = self._window(occurrence)
            if window is not None and window.end > start and window.start < end:
                out.append(window)
        return out

    def _window(self, event: Any) -> PlannedWindow | None:
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            return None
        local_begin = _as_datetime(event.get("DTSTART").dt, self.zone)
        end_prop = event.get("DTEND")
        if end_prop is not None:
            end = _local(_as_datetime(end_prop.dt, self.zone), self.zone)
        elif event.get("DURATION") is not None:
            end = _local(local_begin + event.get("DURATION").dt, self.zone)  # nominal: wall-clock days
        elif not isinstance(event.get("DTSTART").dt, datetime):
            # RFC 5545 3.6.1: a DATE start without end is that whole (local) day.
            end = _local(datetime.combine(local_begin.date() + timedelta(days=1), time(0), tzinfo=self.zone), self.zone)
        else:
            return None  # a moment, not a window
        begin = _local(local_begin, self.zone)
        if end <= begin:
            return None
        categories = {c.upper() for c in _categories(event)}
        change = self.change_category in categories
        uid = str(event.get("UID", ""))
        return PlannedWindow(
            start=begin,
            end=end,
            what=str(event.get("SUMMARY", "")),
            role=", ".join(_texts(event, "X-NORMAGENT-ROLE")),
            kind="change" if change else "maintenance",
            effect=str(event.get("DESCRIPTION", "")) if change else "",
            source=f"{self.path}" + (f" UID {uid}" if uid else ""),
            subjects=_subjects(event) if change else (),
        )


def _parse(path: Path, text: str, lines: _Lines) -> Any:
    import icalendar

    if lines.unclosed is not None:
        raise CalendarError(f"{path}:{lines.unclosed}: BEGIN:{lines.unclosed_name} without its END")
    if lines.stray_end is not None:
        raise CalendarError(f"{path}:{lines.stray_end}: END without its BEGIN")
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except Exception as exc:  # icalendar raises ValueError and friends with the content line quoted
        quoted = _CONTENT.search(str(exc))
        line = lines.of_text(quoted.group(1)) if quoted else None
        where = f"{path}:{line}" if line else (f"{path}:1" if not text.strip() else str(path))
        raise CalendarError(f"{where}: not an iCalendar file: {_short(exc)}") from None
    if getattr(calendar, "name", "") != "VCALENDAR":
        raise CalendarError(f"{path}:1: not an iCalendar file: expected BEGIN:VCALENDAR")
    return calendar


def _events(path: Path, calendar: Any, lines: _Lines, change_category: str) -> list[tuple[Any, int]]:
    """The VEVENTs with the line of their BEGIN; the first property icalendar could not read is an error."""
    events = []
    for index, component in enumerate(calendar.walk()):
        begin = lines.begins[index] if index < len(lines.begins) else 1
        for prop, message in getattr(component, "errors", ()):
            if prop:
                line = _prop_line(lines, begin, str(prop), index)
                raise CalendarError(f"{path}:{line}: {prop}: {_short(message)}")
            quoted = _CONTENT.search(str(message))
            line = (lines.of_text(quoted.group(1)) if quoted else None) or begin
            raise CalendarError(f"{path}:{line}: {_short(message)}")
        if component.name != "VEVENT":
            continue
        if component.get("DTSTART") is None:
            raise CalendarError(f"{path}:{begin}: VEVENT without DTSTART")
        for prop in ("DTSTART", "DTEND"):
            value = component.get(prop)
            tzid = value.params.get("TZID") if value is not None else None
            if tzid and isinstance(value.dt, datetime) and value.dt.tzinfo is None:
                # icalendar leaves a time naive when neither a VTIMEZONE nor the zone database knows it.
                line = _prop_line(lines, begin, prop, index)
                raise CalendarError(f"{path}:{line}: {prop}: unknown time zone TZID={tzid} (no VTIMEZONE for it)")
        if component.get("X-NORMAGENT-ROLE") is not None:
            try:
                _check_role(", ".join(_texts(component, "X-NORMAGENT-ROLE")))
            except ValueError as exc:
                raise CalendarError(f"{path}:{_prop_line(lines, begin, 'X-NORMAGENT-ROLE', index)}: X-NORMAGENT-ROLE: {exc}") from None
        if component.get(SUBJECTS) is not None:
            line = _prop_line(lines, begin, SUBJECTS, index)
            if change_category not in {c.upper() for c in _categories(component)}:
                raise CalendarError(
                    f"{path}:{line}: {SUBJECTS} on an event that is no planned change (its CATEGORIES lack {change_category})"
                )
            try:
                for subject in _subjects(component):
                    check_subject(subject)
            except ValueError as exc:
                raise CalendarError(f"{path}:{line}: {SUBJECTS}: {exc}") from None
        events.append((component, begin))
    return events


def _prop_line(lines: _Lines, begin: int, prop: str, index: int | None = None) -> int:
    if index is None:
        index = lines.begins.index(begin) if begin in lines.begins else -1
    if 0 <= index < len(lines.props):
        return lines.props[index].get(prop.upper(), begin)
    return begin


def _rule_freq(rule: Any) -> str:
    rules = rule if isinstance(rule, list) else [rule] if rule is not None else []
    for item in rules:
        freq = item.get("FREQ") if hasattr(item, "get") else None
        if freq:
            return str(freq[0] if isinstance(freq, list) else freq).upper()
    return ""


def _density(calendar: Any, event: Any, start: datetime, zone: tzinfo, budget: int) -> tuple[int, int]:
    """How often ``event`` recurs from its ``start``: the most occurrences in one day of its first
    CHUNK, and how many that chunk holds. Counted one by one (a broken RRULE raises here) and given
    up past MAX_PER_DAY in a day or ``budget`` in all: a rule that recurs by the second is never
    expanded whole (it took check-config a minute and 1.6 GB for 9 days)."""
    import icalendar
    import recurring_ical_events

    single = icalendar.Calendar()
    for component in calendar.subcomponents:
        if component.name == "VTIMEZONE":
            single.add_component(component)
    single.add_component(event)
    days: dict[int, int] = {}
    total = 0
    for occurrence in recurring_ical_events.of(single).after(start):
        began = _as_datetime(occurrence.get("DTSTART").dt, zone)
        if began - start >= CHUNK:
            break
        day = (began - start) // timedelta(days=1)
        days[day] = days.get(day, 0) + 1
        total += 1
        if days[day] > MAX_PER_DAY or total >= budget:
            break
    return max(days.values(), default=0), total


SUBJECTS = "X-NORMAGENT-SUBJECTS"


def _texts(event: Any, name: str) -> list[str]:
    """The values of a text property, the property repeated or its values comma-separated, with
    the RFC 5545 (3.3.11) escapes undone: icalendar hands an X- property over as written."""
    value = event.get(name)
    items = value if isinstance(value, list) else [value] if value is not None else []
    out: list[str] = []
    for item in items:
        raw = item.to_ical().decode("utf-8", "replace") if hasattr(item, "to_ical") else str(item)
        out.extend(_split_text(raw))
    return [text.strip() for text in out if text.strip()]


def _split_text(raw: str) -> list[str]:
    """``a\\,b,c`` → ``["a,b", "c"]``: an unescaped comma separates values; ``\\\\``, ``\\;``,
    ``\\,`` and ``\\n`` are undone."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw):
            following = raw[i + 1]
            current.append("\n" if following in "nN" else following)
            i += 2
            continue
        if char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def _subjects(event: Any) -> tuple[str, ...]:
    return tuple(_texts(event, SUBJECTS))


def _categories(event: Any) -> list[str]:
    value = event.get("CATEGORIES")
    items = value if isinstance(value, list) else [value] if value is not None else []
    out: list[str] = []
    for item in items:
        cats = getattr(item, "cats", None)
        if cats is None:
            out.append(str(item))
        else:
            out.extend(str(c) for c in cats)
    return out


def _as_datetime(value: date | datetime, default_zone: tzinfo) -> datetime:
    """An aware datetime: floating times and whole days are read in the site's zone."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=default_zone)
    return datetime.combine(value, time(0), tzinfo=default_zone)


def _short(exc: object) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------------------------
# the calendar


class Calendar:
    """The ``MaintenanceCalendar`` of a configuration: its windows, cached per chunk of time.

    Built once per configuration (SIGHUP builds a new one). The iCalendar file is looked at again
    (one ``stat``) at most every ``recheck`` seconds; a new valid version replaces the old, an
    invalid one keeps the old in use and is logged once.
    """

    def __init__(self, settings: MaintenanceSettings, *, recheck: float = 10.0, monotonic: Any = None) -> None:
        import time as _time

        self.settings = settings
        self._zone = zone(settings.time_zone)
        self._fixed = self._config_windows()
        self._lock = threading.Lock()
        self._chunks: dict[int, tuple[PlannedWindow, ...]] = {}
        self._ical: IcalFile | None = None
        self._bad_identity: tuple[int, int, int, int] | None = None
        self._recheck = recheck
        self._monotonic = monotonic or _time.monotonic
        self._checked_at = float("-inf")
        if settings.calendar is not None:
            try:
                self._ical = IcalFile.load(settings.calendar, self._zone, settings.change_category)
            except CalendarError as exc:
                # check-config refuses such a file; one that broke since is logged and ignored.
                log.error("maintenance_calendar_invalid", error=str(exc))
            self._checked_at = self._monotonic()

    # -- the protocol -----------------------------------------------------------------------

    def planned_at(self, moment: datetime) -> PlannedWindow | None:
        for window in self.windows_between(moment, moment + timedelta(microseconds=1)):
            if window.covers(moment):
                return window
        return None

    def windows_between(self, start: datetime, end: datetime) -> list[PlannedWindow]:
        if end <= start:
            return []
        self._refresh()
        first, last = _chunk(start), _chunk(end - timedelta(microseconds=1))
        seen: set[PlannedWindow] = set()
        out: list[PlannedWindow] = []
        for index in range(first, last + 1):
            for window in self._chunk_windows(index):
                if window.end > start and window.start < end and window not in seen:
                    seen.add(window)
                    out.append(window)
        out.sort(key=lambda w: (w.start, w.end))
        return out

    def changes_between(self, start: datetime, end: datetime) -> list[PlannedWindow]:
        return [w for w in self.windows_between(start, end) if w.kind == "change"]

    def planned_seconds(self, start: datetime, end: datetime) -> float:
        spans = merge((max(w.start, start), min(w.end, end)) for w in self.windows_between(start, end))
        return sum((b - a).total_seconds() for a, b in spans)

    # -- inside -------------------------------------------------------------------------------

    def _config_windows(self) -> tuple[PlannedWindow, ...]:
        s, tz = self.settings, self._zone
        out = []
        for i, w in enumerate(s.windows):
            assert w.start is not None and w.end is not None
            out.append(PlannedWindow(_local(w.start, tz), _local(w.end, tz), w.what, w.role, "maintenance", "",
                                     f"config:windows[{i}]"))
        for i, c in enumerate(s.changes):
            assert c.start is not None and c.end is not None
            out.append(PlannedWindow(_local(c.start, tz), _local(c.end, tz), c.what, c.role, "change", c.effect,
                                     f"config:changes[{i}]", c.subjects))
        return tuple(out)

    def _weekly(self, start: datetime, end: datetime) -> list[PlannedWindow]:
        out = []
        for i, w in enumerate(self.settings.weekly):
            assert w.from_ is not None and w.to is not None
            tz = zone(w.time_zone) if w.time_zone else self._zone
            days = {WEEKDAYS.index(d) for d in w.days}
            day = start.astimezone(tz).date() - timedelta(days=1)
            last = end.astimezone(tz).date()
            while day <= last:
                if day.weekday() in days:
                    begin = _local(datetime.combine(day, w.from_, tzinfo=tz), tz)
                    finish_day = day + timedelta(days=1) if w.to <= w.from_ else day
                    finish = _local(datetime.combine(finish_day, w.to, tzinfo=tz), tz)
                    out.append(PlannedWindow(begin, finish, w.what, w.role, "maintenance", "", f"config:weekly[{i}]"))
                day += timedelta(days=1)
        return out

    def _chunk_windows(self, index: int) -> tuple[PlannedWindow, ...]:
        with self._lock:
            cached = self._chunks.get(index)
            ical = self._ical
        if cached is not None:
            return cached
        start = EPOCH + index * CHUNK
        end = start + CHUNK
        windows = [w for w in self._fixed if w.end > start and w.start < end]
        windows += [w for w in self._weekly(start, end) if w.end > start and w.start < end]
        if ical is not None:
            try:
                windows += ical.windows(start, end)
            except Exception as exc:  # a rule that expands badly far from where it was checked
                log.error("maintenance_calendar_expansion_failed", file=str(ical.path), error=_short(exc))
        result = tuple(windows)
        with self._lock:
            if self._ical is ical:
                if len(self._chunks) > 64:  # bounded: a long report reads back a year at most
                    self._chunks.clear()
                self._chunks[index] = result
        return result

    def _refresh(self) -> None:
        path = self.settings.calendar
        if path is None:
            return
        now = self._monotonic()
        with self._lock:
            if now - self._checked_at < self._recheck:
                return
            self._checked_at = now
            current = self._ical
        try:
            st = path.stat()
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            identity = None
        if current is not None and identity == current.identity:
            return
        if identity is not None and identity == self._bad_identity:
            return
        try:
            loaded = IcalFile.load(path, self._zone, self.settings.change_category)
        except CalendarError as exc:
            self._bad_identity = identity
            log.error("maintenance_calendar_invalid", error=str(exc), kept="previous version" if current else "none")
            return
        with self._lock:
            self._ical = loaded
            self._chunks.clear()
        log.info("maintenance_calendar_loaded", file=str(path), events=len(loaded.events))


EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def _chunk(moment: datetime) -> int:
    return (moment - EPOCH) // CHUNK


def _local(moment: datetime, tz: tzinfo) -> datetime:
    """Aware and in UTC: Python subtracts two times of the *same* zone as wall-clock times, which
    is an hour off across a DST change; in UTC the arithmetic is exact."""
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)).astimezone(timezone.utc)


def merge(spans: Any) -> list[tuple[datetime, datetime]]:
    """Sorted, merged, non-empty ``(start, end)`` spans."""
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def split_by_windows(
    start: datetime, end: datetime, windows: Sequence[PlannedWindow]
) -> list[tuple[datetime, datetime, bool]]:
    """``[start, end)`` cut at window edges into ``(start, end, planned)`` pieces, in order."""
    inside = merge((max(w.start, start), min(w.end, end)) for w in windows)
    pieces: list[tuple[datetime, datetime, bool]] = []
    cursor = start
    for a, b in inside:
        if a > cursor:
            pieces.append((cursor, a, False))
        pieces.append((a, b, True))
        cursor = b
    if cursor < end:
        pieces.append((cursor, end, False))
    return pieces


__all__ = [
    "Calendar",
    "CalendarError",
    "IcalFile",
    "MaintenanceSettings",
    "OneOffWindow",
    "PlannedChange",
    "WeeklyWindow",
    "check_subject",
    "merge",
    "split_by_windows",
    "validate_maintenance",
]
