"""Whether a change was planned: the one place that asks the maintenance calendar.

Issue 13 item 3: planned changes (what, expected effect, when, by whom — a role) come from the
configuration or the iCalendar file of the agent's ``[maintenance]`` calendar, and "a change
outside any planned window is a deviation candidate". A change is **planned** when, at the
moment it happened,

- a maintenance window was open (one-off, weekly or a VEVENT that is no planned change): a
  window announces work on the host, and any change in it is part of that work; or
- a planned change was under way whose ``subjects`` cover it — or that names no subjects (it
  then plans every change in its span).

A subject pattern is a path glob (``/etc/ssh/**``: ``*`` stays within one directory, ``**``
crosses them) matched against a watched file's path, or ``<source>:<glob>``: ``package:`` against
a package's name, ``auditd:`` against an audit change's watch keys or operation (any one of them,
or the whole subject), ``windows:`` against a Windows policy (without regard to case, as Windows
names them). The window's span is half-open: a change at its end is outside.

Every count, event and rule of the plugin takes its ``planned`` label from here, so
``normagent_config_changes_total{planned}``, ``normagent_package_changes_total{planned}``, the
events the report lists and the rule ``changes.unplanned_config_change`` always agree. The label
is decided when the change is counted, against the calendar as it then was: a plan written into
the calendar afterwards does not turn a counted change into a planned one.

Imports only ``normagent`` (the public API) and the standard library.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from normagent import MaintenanceCalendar, NoMaintenance, PlannedWindow


@dataclass(frozen=True, slots=True)
class Change:
    """One change as the plugin counts it.

    Attributes:
        at: When it happened (aware UTC): the file's ctime, the audit record's, the log line's.
        source: ``file``, ``auditd``, ``package`` or ``windows``.
        kind: ``content``, ``mode``, ``owner``, ``created``, ``deleted``, ``audit_config``,
            ``watch``, ``install``, ``upgrade`` … ``audit_policy``, ``domain_policy``.
        subject: The path, audit key, package or policy: never content, never a person.
    """

    at: datetime
    source: str
    kind: str
    subject: str


def covers(window: PlannedWindow, change: Change) -> bool:
    """Whether ``window`` plans ``change``: open at its moment and, for a planned change with
    subjects, one of them matching (see the module docstring)."""
    if not window.covers(change.at):
        return False
    if window.kind != "change" or not window.subjects:
        return True
    return any(subject_matches(pattern, change) for pattern in window.subjects)


def subject_matches(pattern: str, change: Change) -> bool:
    """Whether one subject pattern of a planned change names ``change``."""
    if pattern.startswith("/"):
        return change.source == "file" and glob_match(change.subject, pattern)
    source, _, glob = pattern.partition(":")
    if source != change.source:
        return False
    if source == "windows":
        return fnmatch.fnmatchcase(change.subject.casefold(), glob.casefold())
    if source == "auditd":
        parts = [change.subject, *change.subject.replace(",", " ").split()]
        return any(fnmatch.fnmatchcase(part, glob) for part in parts)
    return fnmatch.fnmatchcase(change.subject, glob)


def glob_match(path: str, pattern: str) -> bool:
    """Glob rules of watched paths: ``*`` stops at ``/``, ``**`` does not."""
    if "**" in pattern:
        return fnmatch.fnmatchcase(path, pattern.replace("**/", "*").replace("**", "*"))
    return path.count("/") == pattern.count("/") and fnmatch.fnmatchcase(path, pattern)


class Planner:
    """Decides for many changes with few look-ups: the calendar's windows are fetched once per
    UTC day a change falls on (a 500 MB dpkg.log has a few thousand days, and millions of
    lines). One per parse or run: a calendar file that changes is seen by the next one."""

    def __init__(self, calendar: MaintenanceCalendar | None = None) -> None:
        self._calendar = calendar if calendar is not None else NoMaintenance()
        self._days: dict[date, tuple[PlannedWindow, ...]] = {}

    def window(self, change: Change) -> PlannedWindow | None:
        """The window that plans ``change`` (a planned change before a maintenance window, then
        the one that started first), or None: unplanned."""
        day = change.at.astimezone(timezone.utc).date()
        windows = self._days.get(day)
        if windows is None:
            start = datetime.combine(day, time(0), tzinfo=timezone.utc)
            windows = tuple(self._calendar.windows_between(start, start + timedelta(days=1)))
            if len(self._days) > 366:
                self._days.clear()
            self._days[day] = windows
        found = [w for w in windows if covers(w, change)]
        if not found:
            return None
        return min(found, key=lambda w: (w.kind != "change", w.start, w.end))

    def label(self, change: Change) -> str:
        """The ``planned`` label value: ``"true"`` or ``"false"``."""
        return "true" if self.window(change) is not None else "false"


def is_planned(change: Change, calendar: MaintenanceCalendar | None = None) -> bool:
    """Whether ``change`` was planned by ``calendar`` (None: no calendar, nothing planned)."""
    return Planner(calendar).window(change) is not None


def plan_id(window: PlannedWindow) -> str:
    """A stable name of one planned change (one occurrence of a recurring one): the key of its
    report event, and what a change event it planned refers to. Its span and what it is — not
    where it is written, which moves when a site reorders its config."""
    text = f"{window.start.astimezone(timezone.utc).isoformat()}|{window.end.astimezone(timezone.utc).isoformat()}|{window.what}"
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]
