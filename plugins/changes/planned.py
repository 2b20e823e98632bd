"""The seam that decides whether a change was planned: every change passes through ``is_planned``.

Issue 13 item 3 asks for *planned changes* (what, expected effect, when, by whom — a role, not a
person) from the configuration or an iCalendar file, and for "a change outside any planned
window is a deviation candidate". The maintenance calendar that holds planned windows and
planned changes is being built in the core, apart from this plugin. Until it lands, this
function answers ``False``: **every change is unplanned**, which is what
``normagent_config_changes_total{planned="false"}`` and ``normagent_package_changes_total
{planned="false"}`` then show, and what the rule ``changes.unplanned_config_change`` watches.

Wiring the calendar in means changing this module only: the collectors hand it each change as
it is counted (its time, source, kind and subject, never content), and pass along whatever
``calendar`` they were given; the label, the rule and the report follow.

Imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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


def is_planned(change: Change, calendar: object | None = None) -> bool:
    """Whether ``change`` was planned: inside a planned window or a planned change of the
    maintenance calendar.

    Args:
        change: The change being counted.
        calendar: The maintenance calendar, once normagent's core has one; ``None`` until then.

    Returns:
        ``False`` for now (see the module docstring): no calendar exists yet, so no change can
        be shown to have been planned.
    """
    return False


def planned_label(change: Change, calendar: object | None = None) -> str:
    """The ``planned`` label value of a change."""
    return "true" if is_planned(change, calendar) else "false"
