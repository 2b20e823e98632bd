"""normagent: Normen factsheet-12 indicators from a clinic server, as Prometheus metrics.

This module is the public plugin API. A plugin imports only from here::

    from normagent import hookimpl, CollectorSpec, MetricSpec, Batch, Count, Gauge

and its tests from ``normagent.testing``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from normagent.errors import NoData
from normagent.hookspecs import hookimpl
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
    RunContext,
    SectionContent,
    Severity,
    TextBlock,
    WindowsEvent,
)

try:
    __version__ = version("normagent")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
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
    "RunContext",
    "SectionContent",
    "Severity",
    "TextBlock",
    "WindowsEvent",
    "__version__",
    "hookimpl",
]
