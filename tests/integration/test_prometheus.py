"""A real Prometheus scrapes a real ``normagent run``: the target is up and the boot time is right.

What an operator sees, end to end: the agent started as a process on its own config, the Debian
package's Prometheus scraping it every second on 127.0.0.1, and the answers read back through
Prometheus's HTTP API. ``promtool check metrics`` lints the exposition as Prometheus's own tool does.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import psutil
import pytest

from tests.integration.conftest import Agent, Prometheus, wait_until
from tests.support.tools import require_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEN_YEARS = 10 * 365.25 * 86400


def scrape_config(agent: Agent, **extra: object) -> dict[str, object]:
    return {"job_name": "normagent", "static_configs": [{"targets": [agent.address]}], **extra}


def test_prometheus_scrapes_the_agent_and_sees_the_boot_time(
    start_agent: Callable[..., Agent], start_prometheus: Callable[..., Prometheus]
) -> None:
    agent = start_agent(collectors={"system.host": {"interval": "1s"}})
    prometheus = start_prometheus(scrape_config(agent))

    target = wait_until(
        "the normagent target to be up",
        lambda: next((t for t in prometheus.targets() if t["health"] == "up"), None),
        process=agent.process,
    )
    assert target["labels"]["job"] == "normagent"
    assert target["lastError"] == ""

    result = wait_until(
        "normagent_boot_time_seconds in Prometheus",
        lambda: prometheus.query('normagent_boot_time_seconds{job="normagent"}'),
        process=agent.process,
    )
    assert len(result) == 1
    boot_time = float(result[0]["value"][1])
    now = time.time()
    assert now - TEN_YEARS < boot_time <= now, boot_time
    assert abs(boot_time - psutil.boot_time()) < 5, (boot_time, psutil.boot_time())

    up = prometheus.query('up{job="normagent"}')
    assert [float(series["value"][1]) for series in up] == [1.0]
    health = prometheus.query('normagent_collector_up{collector="system.host"}')
    assert [float(series["value"][1]) for series in health] == [1.0]


def test_promtool_finds_nothing_to_complain_about(start_agent: Callable[..., Agent]) -> None:
    promtool = require_tool("promtool", "prometheus")
    agent = start_agent(collectors={"system.host": {"interval": "1s"}})
    body = wait_until(
        "the first system.host run to be exposed",
        lambda: (r := agent.get("/metrics")).status_code == 200 and "normagent_boot_time_seconds " in r.text and r.text,
        process=agent.process,
    )
    lint = subprocess.run([promtool, "check", "metrics"], input=body.encode(), capture_output=True, timeout=60)
    assert (lint.returncode, lint.stdout.decode() + lint.stderr.decode()) == (0, "")
