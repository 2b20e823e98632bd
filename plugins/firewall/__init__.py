"""Firewall indicators (factsheet section "Sikkerhetsbarriere"): what the firewalls blocked, and
when their rules changed.

Hookimpls only: the collectors live in ``collectors.py`` (this host's netfilter/ufw/firewalld, Windows
Firewall logs and events, appliances over syslog), the pure parsers in ``parse.py``, the default
rules in ``rules.py`` and the report section in ``report.py``.
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
