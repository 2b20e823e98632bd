"""structlog set-up, done once: JSON lines off a terminal, readable lines on one.

Every module logs with ``structlog.get_logger(__name__)``; events are stable snake_case facts
(``collector_failed``, ``config_reloaded``) and values go in keys. Third-party ``logging`` records
(urllib3, pysnmp) pass through the same processors. The last processor before rendering drops keys
that may hold personal data: it is the final guard behind ``privacy.py``, not the first.

Imports only the standard library, structlog and normagent.errors.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]

# Keys that could carry a username, an address or message content. Never rendered.
REDACTED_KEYS = frozenset(
    {"username", "user", "account", "src_ip", "ip", "address", "remote", "line", "message_text", "password", "patient"}
)


def drop_personal_data(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Remove keys that may hold personal data, whatever a caller put in them."""
    for key in REDACTED_KEYS.intersection(event_dict):
        event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(level: LogLevel = "info", fmt: LogFormat = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to ``stream`` (stderr by default) in one format.

    Args:
        level: The least severe level written.
        fmt: ``"json"`` one object per line (for journald and log shippers), ``"console"`` aligned
            and coloured for people, ``"auto"`` console on a terminal, JSON otherwise.
        stream: Where to write; stderr, so ``collect --format json`` keeps stdout for data.
    """
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # tests use capture_logs(), which needs uncached loggers
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            drop_personal_data,
            *([structlog.processors.format_exc_info] if as_json else []),
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_normagent", False):
            root.removeHandler(old)
    handler._normagent = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Chatty libraries stay at warning unless we debug.
    for noisy in ("urllib3", "pysnmp", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
