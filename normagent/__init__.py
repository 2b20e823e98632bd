"""normagent: Normen factsheet-12 indicators from a clinic server, as Prometheus metrics.

This module is the public plugin API. A plugin imports only from here::

    from normagent import hookimpl, CollectorSpec, MetricSpec, Batch, Count, Gauge

and its tests from ``normagent.testing``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

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
    Batch,
    Candidate,
    Checkpoint,
    CollectorSpec,
    CommandResult,
    Count,
    Delivery,
    Event,
    ForwarderSpec,
    Gauge,
    JournalEntry,
    JSONValue,
    LogBlock,
    MetricSpec,
    Observation,
    ParseContext,
    ParseProblem,
    ParseResult,
    Period,
    RecordBlock,
    ReportData,
    ReportSection,
    ReportTable,
    Rollup,
    RuleSpec,
    RunContext,
    SectionContent,
    Severity,
    TextBlock,
    WindowsEvent,
)
from normagent.privacy import network_of
from normagent.sources.evtx import EvtxSettings
from normagent.sources.journald import JournalSettings

try:
    __version__ = version("normagent")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

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
    "Batch",
    "Candidate",
    "Checkpoint",
    "CollectorSpec",
    "CommandResult",
    "Count",
    "Delivery",
    "Event",
    "ForwarderSpec",
    "Gauge",
    "JournalEntry",
    "JSONValue",
    "LogBlock",
    "MetricSpec",
    "NoData",
    "Observation",
    "ParseContext",
    "ParseProblem",
    "ParseResult",
    "Period",
    "RecordBlock",
    "ReportData",
    "ReportSection",
    "ReportTable",
    "Rollup",
    "RuleSpec",
    "RunContext",
    "SectionContent",
    "Severity",
    "TextBlock",
    "WindowsEvent",
    "__version__",
    "hookimpl",
]
