"""Availability of the critical systems a site depends on (factsheet sections "Driftsstatus",
"Databehandler" and "Nettleverandør"): probes, outages planned or not, SLA per month.

Hookimpls only: the collector and the probes live in ``collectors.py``, the pure accounting in
``parse.py``, the default rules in ``rules.py`` and the report sections in ``report.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

from normagent import CollectorSpec, ReportSection, RuleSpec, hookimpl

from .collectors import PROBES_COLLECTOR
from .rules import RULES


@hookimpl
def register_collectors() -> Iterable[CollectorSpec]:
    return (PROBES_COLLECTOR,)


@hookimpl
def register_rules() -> Iterable[RuleSpec]:
    return RULES


@hookimpl
def register_report_sections() -> Iterable[ReportSection]:
    from .report import NETWORK_SECTION, SERVICES_SECTION  # imported by `normagent report`, not by `run`

    return (SERVICES_SECTION, NETWORK_SECTION)
