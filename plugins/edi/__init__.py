"""Message communication (factsheet section "Meldingskommunikasjon (EDI)"): messages without
receipt, negative application receipts by error type, stops, mis-addressed messages.

Hookimpls only: the collector lives in ``collectors.py`` (with ``index.py`` for the incremental
folder index), the pure header parsers in ``parse.py``, correlation in ``correlate.py``, stop
intervals in ``stops.py``, code lists in ``codes.py``, settings in ``settings.py``, the default
rules in ``rules.py`` and the report section in ``report.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

from normagent import CollectorSpec, ReportSection, RuleSpec, hookimpl
from normagent.plugins.edi.collectors import make_spec
from normagent.plugins.edi.rules import RULES


@hookimpl
def register_collectors() -> Iterable[CollectorSpec]:
    return (make_spec(),)


@hookimpl
def register_rules() -> Iterable[RuleSpec]:
    return RULES


@hookimpl
def register_report_sections() -> Iterable[ReportSection]:
    from normagent.plugins.edi.report import SECTION  # imported by `normagent report`, not by `run`

    return (SECTION,)
