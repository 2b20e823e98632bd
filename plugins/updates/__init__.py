"""Security and system updates with their result (factsheet section "Systemleverandør"): what
apt, dpkg, unattended-upgrades, dnf and Windows Update applied, of which kind (security or
other) and with what result, what is still pending and for how long, and whether a reboot is
required.

Hookimpls only: the collectors live in ``collectors.py``; the pure parsers in ``parse.py``
(apt's and dpkg's logs), ``dnf.py`` (dnf's history rows and logs), ``windows.py`` (EVTX records)
and ``pending.py`` (what apt and dnf say is pending); names in ``vocab.py``; the default rules in
``rules.py`` and the report section in ``report.py``. The counting rules are in
docs/updates-and-changes.md.
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
