"""normagent: Normen factsheet-12 indicators from a clinic server, as Prometheus metrics.

This module is the public plugin API. A plugin imports only from here::

    from normagent import hookimpl, CollectorSpec, MetricSpec, Batch, Count, Gauge

and its tests from ``normagent.testing``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from normagent.lazy_structlog import install as install_lazy_structlog
from normagent.zones import add_bundled_zone_path

add_bundled_zone_path()  # before any plugin asks for a zone (see normagent/zones.py)
install_lazy_structlog()  # before any module imports structlog: no asyncio, ssl, OpenSSL for it

if TYPE_CHECKING:
    from normagent import digests
    from normagent.errors import NoData, RunFailed, SnmpAuthError, SnmpError, SnmpTimeout, SnmpTooManyRows
    from normagent.hookspecs import hookimpl
    from normagent.logs import (
        LOG_METRICS,
        FileSource,
        evtx_log_collector,
        file_log_collector,
        journal_log_collector,
        line_parser,
        record_parser,
        syslog_log_collector,
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
        EventValue,
        ForwarderSpec,
        Gauge,
        Indicator,
        JournalEntry,
        JSONValue,
        LiveCarry,
        LogBlock,
        MaintenanceCalendar,
        MetricSpec,
        NoMaintenance,
        Observation,
        ParseContext,
        ParseProblem,
        ParseResult,
        Period,
        PlannedWindow,
        RecordBlock,
        ReportData,
        ReportSection,
        ReportTable,
        Rollup,
        RollupRows,
        RuleSpec,
        RuleText,
        RunContext,
        SectionContent,
        Sender,
        Severity,
        SnmpAuth,
        SnmpVarBind,
        TextBlock,
        WindowsEvent,
    )
    from normagent.forward.client import tls_problems
    from normagent.hostnames import split_host_port
    from normagent.randomness import random_id
    from normagent.memory import give_back_memory
    from normagent.privacy import network_of
    from normagent.records import dataclass
    from normagent.smallfile import read_head
    from normagent.timeparse import strptime
    from normagent.sources.files import error_reason, glob_paths, key_path_of, path_key
    from normagent.sources.evtx_settings import EvtxSettings
    from normagent.sources.journald import JournalSettings
    from normagent.sources.syslog import SpoolLine, SyslogMessage, parse_spool_line, parse_syslog, rfc3164_instant, rfc3164_time


# Kept equal to pyproject.toml's version by tests/unit/test_cli.py. Not read from the installed
# metadata: importlib.metadata (with zipfile, csv and email) costs the idle agent some 2 MB.
__version__ = "0.1.0"

# Where each public name lives. They are imported on first use (PEP 562), not here: ``normagent run``
# imports this package first of all, and until it has installed its signal handlers a SIGHUP would
# end the process, so the package itself must cost next to nothing to import.
_HOMES = {
    **dict.fromkeys(("NoData", "RunFailed", "SnmpAuthError", "SnmpError", "SnmpTimeout", "SnmpTooManyRows"), "normagent.errors"),
    "hookimpl": "normagent.hookspecs",
    **dict.fromkeys(
        ("LOG_METRICS", "FileSource", "evtx_log_collector", "file_log_collector", "journal_log_collector",
         "line_parser", "record_parser", "syslog_log_collector"),
        "normagent.logs",
    ),
    **dict.fromkeys(
        ("Advice", "Batch", "Candidate", "Checkpoint", "CollectorSpec", "CommandResult", "Count", "Delivery",
         "DeliveryFailed", "Event", "EventValue", "ForwarderSpec", "Gauge", "Indicator", "JournalEntry", "JSONValue", "LiveCarry", "LogBlock",
         "MaintenanceCalendar", "MetricSpec", "NoMaintenance", "Observation", "ParseContext", "ParseProblem",
         "ParseResult", "Period", "PlannedWindow", "RecordBlock", "ReportData", "ReportSection", "ReportTable",
         "Rollup", "RollupRows", "RuleSpec", "RuleText", "RunContext", "SectionContent", "Sender", "Severity", "SnmpAuth",
         "SnmpVarBind", "TextBlock", "WindowsEvent"),
        "normagent.model",
    ),
    "give_back_memory": "normagent.memory",
    "tls_problems": "normagent.forward.client",
    "split_host_port": "normagent.hostnames",
    "random_id": "normagent.randomness",
    "network_of": "normagent.privacy",
    "dataclass": "normagent.records",
    "read_head": "normagent.smallfile",
    "strptime": "normagent.timeparse",
    **dict.fromkeys(("error_reason", "glob_paths", "key_path_of", "path_key"), "normagent.sources.files"),
    "EvtxSettings": "normagent.sources.evtx_settings",
    "JournalSettings": "normagent.sources.journald",
    **dict.fromkeys(("SpoolLine", "SyslogMessage", "parse_spool_line", "parse_syslog", "rfc3164_instant", "rfc3164_time"), "normagent.sources.syslog"),
}


def __getattr__(name: str) -> Any:
    if name == "digests":  # a module: hashes without OpenSSL (normagent/digests.py)
        value = importlib.import_module("normagent.digests")
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
    "dataclass",
    "digests",
    "error_reason",
    "evtx_log_collector",
    "file_log_collector",
    "give_back_memory",
    "glob_paths",
    "journal_log_collector",
    "key_path_of",
    "line_parser",
    "network_of",
    "parse_spool_line",
    "parse_syslog",
    "path_key",
    "random_id",
    "read_head",
    "record_parser",
    "Advice",
    "rfc3164_instant",
    "rfc3164_time",
    "split_host_port",
    "strptime",
    "syslog_log_collector",
    "tls_problems",
    "SpoolLine",
    "SyslogMessage",
    "Batch",
    "Candidate",
    "Checkpoint",
    "CollectorSpec",
    "CommandResult",
    "Count",
    "Delivery",
    "DeliveryFailed",
    "Event",
    "EventValue",
    "ForwarderSpec",
    "Gauge",
    "Indicator",
    "JournalEntry",
    "JSONValue",
    "LiveCarry",
    "LogBlock",
    "MaintenanceCalendar",
    "MetricSpec",
    "NoMaintenance",
    "NoData",
    "RunFailed",
    "Observation",
    "ParseContext",
    "ParseProblem",
    "ParseResult",
    "Period",
    "PlannedWindow",
    "RecordBlock",
    "ReportData",
    "ReportSection",
    "ReportTable",
    "Rollup",
    "RollupRows",
    "RuleSpec",
    "RuleText",
    "RunContext",
    "SectionContent",
    "Sender",
    "Severity",
    "SnmpAuth",
    "SnmpAuthError",
    "SnmpError",
    "SnmpTimeout",
    "SnmpTooManyRows",
    "SnmpVarBind",
    "TextBlock",
    "WindowsEvent",
    "__version__",
    "hookimpl",
]
