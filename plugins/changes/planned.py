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
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta, timezone

from normagent import digests
from normagent import MaintenanceCalendar, NoMaintenance, PlannedWindow, dataclass


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


def glob_match(path: str, pattern: str) -> bool:
    """Glob rules of watched paths: ``*`` stops at ``/``, ``**`` does not."""
    if "**" in pattern:
        return fnmatch.fnmatchcase(path, pattern.replace("**/", "*").replace("**", "*"))
    return path.count("/") == pattern.count("/") and fnmatch.fnmatchcase(path, pattern)


class Planner:
    """Decides for many changes with few look-ups: the calendar's windows are fetched once per
    UTC day a change falls on (a 500 MB dpkg.log has a few thousand days, and millions of
    lines), and each planned change's subjects are compiled once. One per parse or run: a
    calendar file that changes is seen by the next one."""

    def __init__(self, calendar: MaintenanceCalendar | None = None) -> None:
        # Without a calendar nothing is planned, and the hot loops pay one attribute test.
        self._calendar = calendar if calendar is not None and not isinstance(calendar, NoMaintenance) else None
        self._days: dict[date, tuple[PlannedWindow, ...]] = {}
        self._matchers: dict[PlannedWindow, Callable[[Change], bool]] = {}

    def window(self, change: Change) -> PlannedWindow | None:
        """The window that plans ``change`` (a planned change before a maintenance window, then
        the one that started first), or None: unplanned."""
        if self._calendar is None:
            return None
        at = change.at
        day = (at if at.tzinfo is timezone.utc else at.astimezone(timezone.utc)).date()
        windows = self._days.get(day)
        if windows is None:
            windows = self._load(day)
        best: PlannedWindow | None = None
        for window in windows:
            if not window.start <= at < window.end or not self._matches(window, change):
                continue
            if best is None or (window.kind != "change", window.start, window.end) < (best.kind != "change", best.start, best.end):
                best = window
        return best

    def label(self, change: Change) -> str:
        """The ``planned`` label value: ``"true"`` or ``"false"``."""
        return "true" if self.window(change) is not None else "false"

    def _load(self, day: date) -> tuple[PlannedWindow, ...]:
        assert self._calendar is not None
        start = datetime.combine(day, time(0), tzinfo=timezone.utc)
        windows = tuple(self._calendar.windows_between(start, start + timedelta(days=1)))
        if len(self._days) > 366:
            self._days.clear()
        self._days[day] = windows
        return windows

    def _matches(self, window: PlannedWindow, change: Change) -> bool:
        if window.kind != "change" or not window.subjects:
            return True
        matcher = self._matchers.get(window)
        if matcher is None:
            matcher = self._matchers[window] = _matcher(window.subjects)
        return matcher(change)


def _matcher(subjects: Sequence[str]) -> Callable[[Change], bool]:
    """One test for all the subjects of a planned change (the rules are in the module docstring):
    the globs of a package, an audit key or a policy compiled into one pattern per source; paths
    by ``glob_match``, as the watched paths themselves."""
    paths = [p for p in subjects if p.startswith("/")]
    by_source: dict[str, list[str]] = {}
    for pattern in subjects:
        if not pattern.startswith("/"):
            source, _, glob = pattern.partition(":")
            by_source.setdefault(source, []).append(glob.casefold() if source == "windows" else glob)
    compiled = {source: re.compile("|".join(fnmatch.translate(g) for g in globs)) for source, globs in by_source.items()}

    def matches(change: Change) -> bool:
        if change.source == "file":
            return any(glob_match(change.subject, p) for p in paths)
        pattern = compiled.get(change.source)
        if pattern is None:
            return False
        if change.source == "windows":
            return pattern.match(change.subject.casefold()) is not None
        if change.source == "auditd":
            parts = [change.subject, *change.subject.replace(",", " ").split()]
            return any(pattern.match(part) is not None for part in parts)
        return pattern.match(change.subject) is not None

    return matches


def is_planned(change: Change, calendar: MaintenanceCalendar | None = None) -> bool:
    """Whether ``change`` was planned by ``calendar`` (None: no calendar, nothing planned)."""
    return Planner(calendar).window(change) is not None


def plan_id(window: PlannedWindow) -> str:
    """A stable name of one planned change (one occurrence of a recurring one): the key of its
    report event, and what a change event it planned refers to. Its span and what it is — not
    where it is written, which moves when a site reorders its config."""
    text = f"{window.start.astimezone(timezone.utc).isoformat()}|{window.end.astimezone(timezone.utc).isoformat()}|{window.what}"
    return digests.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]
