"""A real Prometheus scrapes a real ``normagent run``: the target is up and the boot time is right.

What an operator sees, end to end: the agent started as a process on its own config, the Debian
package's Prometheus scraping it every second on 127.0.0.1, and the answers read back through
Prometheus's HTTP API. ``promtool check metrics`` lints the exposition as Prometheus's own tool does.
And it keeps doing so while real abusive clients attack the agent's HTTP side.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import psutil
import pytest

from tests.integration.conftest import Agent, Prometheus, wait_until
from tests.support.abuse import PasswordFlood, SlowHeaders
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


@dataclass(frozen=True)
class Target:
    host: str
    port: int


def test_prometheus_keeps_scraping_while_clients_abuse_the_agent(
    start_agent: Callable[..., Agent], start_prometheus: Callable[..., Prometheus], tmp_path: Path
) -> None:
    """Issue 9 item 15: slow-header clients and a wrong-password flood left 0 of 76 scrapes answered.

    The attackers come from Prometheus's own address (127.0.0.1), more of them than the agent has
    places, reconnecting at once when cut off; every scrape in the window must still succeed.
    """
    password = "scrape password"
    agent = start_agent(
        web={
            "request_timeout": "1s",
            "max_connections": 32,
            "basic_auth_users": {"prometheus": bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode()},
        },
        collectors={"system.host": {"interval": "1s"}},
        request_args={"auth": ("prometheus", password)},
    )
    password_file = tmp_path / "scrape-password"
    password_file.write_text(password)
    prometheus = start_prometheus(
        scrape_config(agent, basic_auth={"username": "prometheus", "password_file": str(password_file)})
    )
    wait_until(
        "the normagent target to be up",
        lambda: next((t for t in prometheus.targets() if t["health"] == "up"), None),
        process=agent.process,
    )
    host, port = agent.address.rsplit(":", 1)
    target = Target(host, int(port))
    with SlowHeaders(target, clients=80, every=0.1) as slow, PasswordFlood(target, clients=40) as flood:
        # The attack in full swing, then twelve scrape intervals of it: the last ten seconds hold
        # ten scrapes or so, every one of them under attack.
        wait_until("the attack to be in full swing", lambda: slow.cut >= 80 and len(flood.statuses) >= 100, process=agent.process)
        started = time.monotonic()
        wait_until("twelve seconds of attack", lambda: time.monotonic() - started >= 12, timeout=20)
        scrapes = prometheus.query('count_over_time(up{job="normagent"}[10s])')
        succeeded = prometheus.query('sum_over_time(up{job="normagent"}[10s])')
    assert float(scrapes[0]["value"][1]) >= 5
    assert float(succeeded[0]["value"][1]) == float(scrapes[0]["value"][1]), (succeeded, scrapes)
    assert 401 in flood.statuses  # the flood was heard (and refused), not just dropped
    cut = prometheus.query('normagent_http_connections_cut_total{job="normagent"}')
    by_reason = {series["metric"]["reason"]: float(series["value"][1]) for series in cut}
    assert by_reason["evicted"] > 0 or by_reason["timed_out"] > 0, by_reason  # and the agent says so
    refused = prometheus.query('normagent_http_requests_refused_total{job="normagent",reason="unauthorized"}')
    assert float(refused[0]["value"][1]) > 0
