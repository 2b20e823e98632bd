"""Logging: JSON lines off a terminal, personal data keys never rendered, stdlib bridged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from normagent.log import configure_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("info", "auto", out)
    yield out
    for handler in list(logging.getLogger().handlers):
        if getattr(handler, "_normagent", False):
            logging.getLogger().removeHandler(handler)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_events_are_json_lines_with_level_and_time(stream: io.StringIO) -> None:
    structlog.get_logger("normagent.test").info("collector_finished", collector="system.host", batches=2)

    [entry] = lines(stream)
    assert {"event": "collector_finished", "collector": "system.host", "batches": 2, "level": "info"}.items() <= entry.items()
    assert str(entry["timestamp"]).endswith("Z")


def test_personal_data_keys_are_redacted(stream: io.StringIO) -> None:
    structlog.get_logger("t").warning("login_seen", username="alice", src_ip="192.0.2.1", count=3)

    [entry] = lines(stream)
    assert entry["username"] == entry["src_ip"] == "[redacted]" and entry["count"] == 3
    assert "alice" not in stream.getvalue()


def test_stdlib_records_use_the_same_format(stream: io.StringIO) -> None:
    logging.getLogger("urllib3").warning("connection pool is full")

    [entry] = lines(stream)
    assert entry["event"] == "connection pool is full" and entry["logger"] == "urllib3"


def test_levels_below_the_threshold_are_dropped(stream: io.StringIO) -> None:
    structlog.get_logger("t").debug("too_chatty")
    assert stream.getvalue() == ""
