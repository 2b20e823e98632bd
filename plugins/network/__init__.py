"""Network provider (factsheet section "Nettleverandør"): downtime of network devices and of their
interfaces, device restarts, traffic, errors and discards, over SNMP v2c or v3.

Hookimpls only: the collector lives in ``collectors.py`` (polling through ``ctx.snmp``), the pure
judgement of a poll in ``parse.py``, the default rules in ``rules.py`` and the report section in
``report.py``.
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
