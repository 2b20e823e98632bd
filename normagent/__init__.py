"""normagent: Normen factsheet-12 indicators from a clinic server, as Prometheus metrics.

This module is the public plugin API. A plugin imports only from here::

    from normagent import hookimpl, CollectorSpec, MetricSpec, Batch, Count, Gauge

and its tests from ``normagent.testing``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from normagent.errors import NoData
    from normagent.hookspecs import hookimpl
    from normagent.logs import (
        LOG_METRICS,
        FileSource,
        evtx_log_collector,
        file_log_collector,
        journal_log_collector,
        line_parser,
        record_parser,
    )
    from normagent.model import (
        Advice,
        Batch,
        Candidate,
        Checkpoint,
        CollectorSpec,
        CommandResult,
        Count,
        Delivery,
        DeliveryFailed,
        Event,
        ForwarderSpec,
        Gauge,
        JournalEntry,
        LogBlock,
        MetricSpec,
        Observation,
        ParseContext,
        ParseResult,
        Period,
        RecordBlock,
        ReportData,
        ReportSection,
        ReportTable,
        Rollup,
        RuleSpec,
        RuleText,
        RunContext,
        SectionContent,
        Sender,
        Severity,
        TextBlock,
        WindowsEvent,
    )
    from normagent.privacy import network_of
    from normagent.sources.evtx import EvtxSettings
    from normagent.sources.journald import JournalSettings

    __version__: str

# Where each public name lives. They are imported on first use (PEP 562), not here: ``normagent run``
# imports this package first of all, and until it has installed its signal handlers a SIGHUP would
# end the process, so the package itself must cost next to nothing to import.
_HOMES = {
    "NoData": "normagent.errors",
    "hookimpl": "normagent.hookspecs",
    **dict.fromkeys(
        ("LOG_METRICS", "FileSource", "evtx_log_collector", "file_log_collector", "journal_log_collector",
         "line_parser", "record_parser"),
        "normagent.logs",
    ),
    **dict.fromkeys(
        ("Advice", "Batch", "Candidate", "Checkpoint", "CollectorSpec", "CommandResult", "Count", "Delivery",
         "DeliveryFailed", "Event", "ForwarderSpec", "Gauge", "JournalEntry", "LogBlock", "MetricSpec", "Observation",
         "ParseContext", "ParseResult", "Period", "RecordBlock", "ReportData", "ReportSection", "ReportTable",
         "Rollup", "RuleSpec", "RuleText", "RunContext", "SectionContent", "Sender", "Severity", "TextBlock",
         "WindowsEvent"),
        "normagent.model",
    ),
    "network_of": "normagent.privacy",
    "EvtxSettings": "normagent.sources.evtx",
    "JournalSettings": "normagent.sources.journald",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value: Any = version("normagent")
        except PackageNotFoundError:  # running from a source tree that was never installed
            value = "0.0.0+unknown"
    elif name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    else:
        raise AttributeError(f"module 'normagent' has no attribute {name!r}")
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "LOG_METRICS",
    "EvtxSettings",
    "FileSource",
    "JournalSettings",
    "evtx_log_collector",
    "file_log_collector",
    "journal_log_collector",
    "line_parser",
    "network_of",
    "record_parser",
    "Advice",
    "Batch",
    "Candidate",
    "Checkpoint",
    "CollectorSpec",
    "CommandResult",
    "Count",
    "Delivery",
    "DeliveryFailed",
    "Event",
    "ForwarderSpec",
    "Gauge",
    "JournalEntry",
    "LogBlock",
    "MetricSpec",
    "NoData",
    "Observation",
    "ParseContext",
    "ParseResult",
    "Period",
    "RecordBlock",
    "ReportData",
    "ReportSection",
    "ReportTable",
    "Rollup",
    "RuleSpec",
    "RuleText",
    "RunContext",
    "SectionContent",
    "Sender",
    "Severity",
    "TextBlock",
    "WindowsEvent",
    "__version__",
    "hookimpl",
]
