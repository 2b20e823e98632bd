"""Access and event-log indicators (factsheet section "Driftsstatus"): failed logins, account
lockouts, password changes and resets, errors in event logs.

Hookimpls only: the collectors live in ``collectors.py``; the pure parsers in ``parse.py`` (Linux
auth lines), ``journal.py`` (journald entries) and ``windows.py`` (EVTX records), sharing the
per-block ``Tally`` of ``tally.py``; the default rules in ``rules.py`` and the report section in
``report.py``. The counting rules are in docs/access-counting-rules.md.
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
