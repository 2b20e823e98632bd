"""Configuration and package changes (factsheet section "Databehandler"): watched configuration
files (content, mode, owner), the audit configuration and auditd watch keys, packages installed,
upgraded and removed, and Windows audit and domain policy changes — each one planned or not.

Hookimpls only: the collectors live in ``collectors.py``; the pure parts in ``watch.py``
(comparing files with their baseline), ``parse.py`` (auditd's and the package managers' logs)
and ``windows.py`` (EVTX records); ``planned.py`` decides whether a change was planned, against
the agent's maintenance calendar (``[maintenance]``: its windows and planned changes); names in
``vocab.py``; the default rule in ``rules.py`` and the report section in ``report.py``, which
sets the calendar's planned changes of the period beside the changes observed. The counting
rules are in docs/updates-and-changes.md.
"""

from __future__ import annotations

from collections.abc import Iterable

from normagent import CollectorSpec, ReportSection, RuleSpec, hookimpl

from .collectors import COLLECTORS
from .rules import RULES


@hookimpl
def register_collectors() -> Iterable[CollectorSpec]:
    return COLLECTORS


@hookimpl
def register_rules() -> Iterable[RuleSpec]:
    return RULES


@hookimpl
def register_report_sections() -> Iterable[ReportSection]:
    from .report import SECTION  # imported by `normagent report`, not by `run`

    return (SECTION,)
