"""Candidates reach a real Alertmanager (Debian's prometheus-alertmanager, unpacked by
scripts/servers) through its API v2: amtool lists them with the right labels, re-posts keep them
alive, and a resolution ends them."""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from normagent.config import ForwarderCommon, ForwarderConfig
from normagent.forward import ATTEMPTS, DEAD_LETTERS, Route, Worker, metrics_for
from normagent.forward.alertmanager import ALERTMANAGER, AlertmanagerSettings
from normagent.ledger import Ledger
from normagent.model import Batch, Gauge, MetricSpec, RuleSpec
from normagent.rules import Engine, EngineSettings, complete
from normagent.testing import FakeClock
from tests.integration.conftest import Process, free_port, wait_until
from tests.support.tools import require_tool

pytestmark = pytest.mark.integration

UP = MetricSpec("normagent_test_service_up", "gauge", "Up.", ("service",))
DOWN = RuleSpec(name="test.service_down", watch=UP.name, comparison="<", threshold=1, group_by=("service",),
                summary="Tjenesten {service} er nede.", section="Driftsstatus", hold=timedelta(0))


class Alertmanager:
    def __init__(self, process: Process, url: str, amtool: str) -> None:
        self.process, self.url, self._amtool = process, url, amtool

    def alerts(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v2/alerts", timeout=10)
        response.raise_for_status()
        return list(response.json())

    def amtool(self, *args: str) -> Any:
        out = subprocess.run([self._amtool, f"--alertmanager.url={self.url}", "--output=json", *args],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        return json.loads(out)


@pytest.fixture
def alertmanager(start_process: Callable[..., Process], tmp_path: Path) -> Alertmanager:
    binary = require_tool("prometheus-alertmanager", "prometheus-alertmanager")
    amtool = require_tool("amtool", "prometheus-alertmanager")
    port = free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(json.dumps({"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}))
    process = start_process("alertmanager", [
        binary, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn",
    ])
    am = Alertmanager(process, f"http://127.0.0.1:{port}", amtool)
    wait_until("Alertmanager to be ready", lambda: requests.get(f"{am.url}/-/ready", timeout=5).status_code == 200, process=process)
    return am


def worker_for(ledger: Ledger, url: str) -> Worker:
    ledger.declare([UP, *(m for m in metrics_for(["am"]) if m.name in (ATTEMPTS.name, DEAD_LETTERS.name))])
    engine = Engine([complete(DOWN, timedelta(0))], EngineSettings(host_id=ledger.host_id, location="Legekontoret"))
    ledger.use_rules(engine, ["am"])
    settings = AlertmanagerSettings(url=url, resend_every=timedelta(seconds=30), labels={"site": "test"})
    route = Route(ForwarderConfig("am", ForwarderCommon(kind="alertmanager"), settings), ALERTMANAGER)
    return Worker(route, ledger, ledger._clock, rng=random.Random(1))


def test_candidates_reach_alertmanager_are_kept_alive_and_resolved(alertmanager: Alertmanager, ledger: Ledger, clock: FakeClock) -> None:
    worker = worker_for(ledger, alertmanager.url)
    ledger.commit("c", Batch([Gauge(UP.name, 0, {"service": "epj"}), Gauge(UP.name, 1, {"service": "edi"})]))
    worker.run_once()

    listed = wait_until("amtool to list the alert", lambda: alertmanager.amtool("alert", "query", "alertname=test.service_down"))
    [found] = listed
    labels = found["labels"]
    assert labels == {"alertname": "test.service_down", "severity": "warning", "section": "Driftsstatus", "service": "epj",
                      "site": "test", "location": "Legekontoret", "normagent_host": ledger.host_id}
    assert found["annotations"]["summary"] == "Tjenesten epj er nede."
    assert found["annotations"]["owner"] == "IKT-leder" and found["status"]["state"] == "active"
    first_end = datetime.fromisoformat(found["endsAt"].replace("Z", "+00:00"))

    clock.advance(30)  # time for a re-post: endsAt moves on
    worker.run_once()
    renewed = wait_until("the re-post to move endsAt", lambda: [a for a in alertmanager.alerts()
                                                               if datetime.fromisoformat(a["endsAt"].replace("Z", "+00:00")) > first_end])
    assert renewed[0]["labels"]["service"] == "epj"
    assert ledger.counter_value(ATTEMPTS.name, {"forwarder": "am", "result": "ok"}) == 2

    ledger.commit("c", Batch([Gauge(UP.name, 1, {"service": "epj"}), Gauge(UP.name, 1, {"service": "edi"})]))
    worker.run_once()
    wait_until("the alert to be resolved", lambda: alertmanager.amtool("alert", "query", "alertname=test.service_down") == [])
    assert [c.state for c in ledger.candidates()] == ["resolved"]


@pytest.mark.parametrize("suffix", ["/", "/?tenant=a", "?tenant=a"])
def test_a_url_with_a_query_posts_to_the_alerts_endpoint_with_the_query_kept(
    alertmanager: Alertmanager, ledger: Ledger, suffix: str
) -> None:
    """Before: the query stayed inside the path ("/?tenant=a/api/v2/alerts"): Alertmanager's UI at
    "/" took the POST, and no alert was made."""
    worker = worker_for(ledger, alertmanager.url + suffix)
    ledger.commit("c", Batch([Gauge(UP.name, 0, {"service": "epj"})]))
    worker.run_once()
    assert ledger.counter_value(ATTEMPTS.name, {"forwarder": "am", "result": "ok"}) == 1
    wait_until("amtool to list the alert", lambda: alertmanager.amtool("alert", "query", "alertname=test.service_down"))


def test_an_alertmanager_that_is_down_leaves_the_change_in_the_outbox(alertmanager: Alertmanager, ledger: Ledger,
                                                                        clock: FakeClock) -> None:
    worker = worker_for(ledger, alertmanager.url)
    alertmanager.process.stop()
    ledger.commit("c", Batch([Gauge(UP.name, 0, {"service": "epj"})]))
    worker.run_once()
    assert ledger.counter_value(ATTEMPTS.name, {"forwarder": "am", "result": "unreachable"}) == 1
    assert ledger.outbox_stats()["am"].pending == 1
