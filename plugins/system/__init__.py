"""Operations status (factsheet section "Driftsstatus"): boots, unexpected shutdowns, uptime, CPU,
memory and free space.

Hookimpls only: the collectors live in ``collectors.py``, the pure parsers in ``parse.py``, the
default rules in ``rules.py`` and the report section in ``report.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

from normagent import CollectorSpec, ReportSection, RuleSpec, hookimpl

from .collectors import BOOTS_COLLECTOR, HOST
from .rules import RULES


@hookimpl
def register_collectors() -> Iterable[CollectorSpec]:
    return (HOST, BOOTS_COLLECTOR)


@hookimpl
def register_rules() -> Iterable[RuleSpec]:
    return RULES


@hookimpl
def register_report_sections() -> Iterable[ReportSection]:
    from .report import SECTION  # imported by `normagent report`, not by `run`

    return (SECTION,)
