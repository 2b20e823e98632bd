"""Every query of the Grafana dashboard returns data from a real Prometheus scraping a real agent.

The agent runs its real collectors over the fixtures (auth logs, a journal, Windows EVTX, a
generated EDI tree with rejected and unanswered messages, ClamAV and freshclam logs, firewall logs
and a syslog line from an appliance, apt/dnf/dpkg histories, audit logs, wtmp, probes of live and
dead services, snmpd) and serves them over HTTPS with basic auth. Prometheus scrapes it with the
example configuration config/prometheus/prometheus.yml (its paths and intervals adapted) and loads
the recording and alerting rules from config/prometheus/.

A month of history cannot be waited for, so the series the agent exposes are backfilled with
``promtool tsdb create-blocks-from openmetrics`` over the 62 days before the test (counters rising
to their live value, gauges at it) — only series the live agent exposes, so backfill never makes a
panel show something the agent does not. Then every target of every panel is run as Grafana would
run it (``$host``, ``$__range``, ``$__interval``, ``$__rate_interval`` substituted the way Grafana
does; instant targets through /api/v1/query, the others through /api/v1/query_range over the
dashboard's 30 days), and each must return at least one series. None is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Agent, Process, agent_env, free_port, normagent_command, wait_until
from tests.plugins.edi.edi_generator import FOLDERS, OWN_HER, Config, generate
from tests.support.snmpd import start_snmpd
from tests.support.tools import REPO, require_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURES = REPO / "tests" / "fixtures"
DASHBOARD = REPO / "config" / "grafana" / "normagent.json"
PROMETHEUS_DIR = REPO / "config" / "prometheus"
PASSWORD = "scrape password"

RANGE_SECONDS = 30 * 86400  # the dashboard's time range in this test: the last 30 days
INTERVAL = "1h"  # Grafana's $__interval for 30 days on a panel ~1000 px wide
SCRAPE_INTERVAL_GRAFANA = 60  # the data source's "scrape interval" setting, as the example config's
BACKFILL_DAYS = 62
BACKFILL_STEP = 7200


def grafana_regex_escape(value: str) -> str:
    """Grafana's Prometheus data source escapes a multi-value variable's values for a regex
    (``prometheusSpecialRegexEscape``) and joins them as ``(a|b)``; inside a PromQL string literal
    the backslash is doubled."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


def substitute(expr: str, instance: str) -> str:
    """What Grafana sends for ``expr`` with ``host`` = [instance] over the last 30 days."""
    rate_interval = max(3600 + SCRAPE_INTERVAL_GRAFANA, 4 * SCRAPE_INTERVAL_GRAFANA)  # max($__interval + scrape, 4 × scrape)
    out = expr.replace("$__rate_interval", f"{rate_interval}s").replace("$__range", f"{RANGE_SECONDS}s")
    out = out.replace("$__interval", INTERVAL)
    out = out.replace("$host", f"({grafana_regex_escape(instance)})")
    assert "$" not in out.replace("$1", ""), out
    return out


def write_fixture_logs(root: Path) -> dict[str, Path]:
    """Copies of the fixture logs (collectors keep positions and may be pointed at a tree of their own)."""
    root.mkdir()
    paths = {
        "auth": FIXTURES / "logs" / "access" / "linux.txt",
        "kern": FIXTURES / "logs" / "firewall" / "netfilter" / "kern.log",
        "fw_audit": FIXTURES / "logs" / "firewall" / "audit" / "audit.log",
        "pfirewall": FIXTURES / "logs" / "firewall" / "windows" / "pfirewall.log",
        "clamd": FIXTURES / "logs" / "malware" / "clamd.log",
        "freshclam": FIXTURES / "logs" / "malware" / "freshclam.log",
        "clamscan": FIXTURES / "logs" / "malware" / "clamscan.log",
        "apt_history": FIXTURES / "updates" / "apt" / "plaso_apt_history.log",
        "dpkg": FIXTURES / "updates" / "apt" / "plaso_dpkg.log",
        "dnf_rpm": FIXTURES / "updates" / "dnf" / "dnf.rpm.log",
        "audit": FIXTURES / "changes" / "audit" / "plaso_audit_enriched.log",
    }
    out = {}
    for name, source in paths.items():
        target = root / f"{name}.log"
        shutil.copyfile(source, target)
        out[name] = target
    # a log path that is not a regular file: counted in normagent_log_file_errors_total
    fifo = root / "clamonacc.log"
    os.mkfifo(fifo)
    out["fifo"] = fifo
    # an .evtx that is no EVTX file: counted in normagent_log_files_unreadable_total
    (root / "broken.evtx").write_bytes(b"this is not an event log\n" * 10)
    out["broken_evtx"] = root / "broken.evtx"
    return out


def recent_wtmp(path: Path) -> Path:
    """A wtmp of the last weeks (the fixture's boots are too old to be judged): an orderly reboot
    and a crash (a boot with no shutdown before it), made by the fixture's own record writer."""
    spec = importlib.util.spec_from_file_location("make_wtmp", FIXTURES / "system" / "wtmp" / "make_wtmp.py")
    assert spec is not None and spec.loader is not None
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)

    def ago(days: float) -> str:
        return datetime.fromtimestamp(time.time() - days * 86400, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

    path.write_bytes(make.boot(ago(20)) + make.shutdown(ago(10.1)) + make.boot(ago(10)) + make.boot(ago(3)))
    return path


class TcpService:
    """A TCP port the availability probes watch; ``toggle`` closes and reopens it (an outage that ends)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock: socket.socket | None = None
        self.open()

    def open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@pytest.fixture
def tcp_service() -> Iterator[TcpService]:
    service = TcpService()
    yield service
    service.close()


def agent_config(tmp_path: Path, port: int, pki: Path, logs: dict[str, Path], edi_root: Path, snmp_target: str,
                 tcp_port: int, dead_port: int, syslog_port: int, watched: Path, wtmp: Path) -> str:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    evtx = FIXTURES / "evtx"
    folders = "\n".join(
        f'[[collectors."edi.messages".folders]]\npath = "{edi_root / name}"\ndirection = "{direction}"\nrole = "{role}"\n'
        for name, direction, role in FOLDERS
    )
    return f"""
[agent]
state_dir = "{tmp_path / 'state'}"

[web]
listen = "127.0.0.1:{port}"
tls_cert_file = "{pki / 'server.crt'}"
tls_key_file = "{pki / 'server.key'}"
[web.basic_auth_users]
prometheus = "{hashed}"

[syslog]
udp_listen = "127.0.0.1:{syslog_port}"
tcp_listen = "127.0.0.1:{syslog_port}"

[deviations]
evaluate_every = "1s"

[forwarders.local]
kind = "file"
path = "{tmp_path / 'deviations.jsonl'}"

[collectors."system.host"]
interval = "1s"

[collectors."system.boots"]
interval = "2s"
evidence = "wtmp"
wtmp = "{wtmp}"
backfill = "400d"

[collectors."access.logins"]
interval = "1s"
prefer = "files"
[collectors."access.logins".files]
paths = ["{logs['auth']}"]
start_at = "beginning"

[collectors."access.journal_errors"]
interval = "2s"
[collectors."access.journal_errors".journal]
files = ["{FIXTURES / 'journal' / 'main.journal'}"]
start = "beginning"

[collectors."access.windows"]
enabled = true
interval = "2s"
paths = ["{evtx / 'security.evtx'}", "{evtx / 'system.evtx'}", "{evtx / 'new-user-security.evtx'}", "{logs['broken_evtx']}"]

[collectors."availability.probes"]
interval = "1s"
[[collectors."availability.probes".services]]
name = "epj"
kind = "tcp"
target = "127.0.0.1:{tcp_port}"
timeout = "1s"
[[collectors."availability.probes".services]]
name = "helsenett"
kind = "tcp"
target = "127.0.0.1:{dead_port}"
timeout = "1s"
tags = ["network"]
[[collectors."availability.probes".services]]
name = "agent-https"
kind = "http"
target = "https://127.0.0.1:{port}/metrics"
expect_status = [200, 401]
ca_file = "{pki / 'ca.crt'}"
timeout = "2s"

[collectors."edi.messages"]
interval = "2s"
own_her_ids = {json.dumps(list(OWN_HER))}
[collectors."edi.messages".service]
process = "normagent-no-such-message-server"
{folders}

[collectors."malware.clamav"]
interval = "1s"
[collectors."malware.clamav".files]
paths = ["{logs['clamd']}", "{logs['clamscan']}"]
start_at = "beginning"

[collectors."malware.clamonacc"]
interval = "5s"
[collectors."malware.clamonacc".files]
paths = ["{logs['fifo']}"]

[collectors."malware.freshclam"]
interval = "1s"
[collectors."malware.freshclam".files]
paths = ["{logs['freshclam']}"]
start_at = "beginning"

[collectors."malware.clamav_status"]
interval = "2s"
database_directory = "{FIXTURES / 'clamav'}"
daemon_config = "{FIXTURES / 'clamav' / 'marker.ndb'}"

[collectors."malware.defender"]
enabled = true
interval = "2s"
paths = ["{evtx / 'WinDefender_Events_1117_1116_AtomicRedTeam.evtx'}"]

[collectors."firewall.linux"]
interval = "1s"
source = "files"
[collectors."firewall.linux".files]
paths = ["{logs['kern']}", "{logs['fw_audit']}"]
start_at = "beginning"

[collectors."firewall.windows_log"]
enabled = true
interval = "1s"
device = "winsrv"
[collectors."firewall.windows_log".files]
paths = ["{logs['pfirewall']}"]
start_at = "beginning"

[collectors."firewall.windows_events"]
enabled = true
interval = "2s"
paths = ["{evtx / 'security.evtx'}"]

[collectors."firewall.appliances"]
interval = "1s"
[collectors."firewall.appliances".devices.edge]
senders = ["127.0.0.1", "fw01"]

[collectors."updates.apt"]
interval = "1s"
[collectors."updates.apt".files]
paths = ["{logs['apt_history']}", "{logs['dpkg']}"]
start_at = "beginning"

[collectors."updates.dnf"]
interval = "2s"
source = "history"
history = "{FIXTURES / 'updates' / 'dnf' / 'history.sqlite'}"

[collectors."updates.pending"]
interval = "2s"
manager = "none"

[collectors."updates.windows"]
enabled = true
interval = "2s"
paths = ["{evtx / 'system.evtx'}"]

[collectors."changes.files"]
interval = "1s"
paths = ["{watched}"]

[collectors."changes.audit"]
interval = "1s"
[collectors."changes.audit".files]
paths = ["{logs['audit']}"]
start_at = "beginning"

[collectors."changes.packages"]
interval = "1s"
[collectors."changes.packages".files]
paths = ["{logs['dpkg']}", "{logs['dnf_rpm']}"]
start_at = "beginning"

[collectors."changes.windows"]
enabled = true
interval = "2s"
paths = ["{evtx / 'security.evtx'}", "{logs['broken_evtx']}"]

[collectors."network.snmp"]
interval = "1s"
[[collectors."network.snmp".devices]]
name = "router"
target = "{snmp_target}"
community = "public"
interfaces = ["*"]
oids = {{ temperature = "1.3.6.1.4.1.99999.1.0" }}
[[collectors."network.snmp".devices]]
name = "gone"
target = "127.0.0.1:{dead_port}"
timeout = "200ms"
retries = 0
"""


def backfill(metrics_text: str, instance: str, now: float, out: Path) -> int:
    """OpenMetrics for every series in ``metrics_text``, hourly over BACKFILL_DAYS ending before the
    first scrape: counters rising linearly to their live value, gauges at it. Returns the series count."""
    lines: list[str] = []
    series = 0
    start = now - BACKFILL_DAYS * 86400
    end = now - 900
    steps = int((end - start) // BACKFILL_STEP)
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = {**sample.labels, "instance": instance, "job": "normagent"}
            text = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items()))
            series += 1
            for i in range(steps + 1):
                value = sample.value * i / steps if family.type == "counter" else sample.value
                lines.append(f"{sample.name}{{{text}}} {value} {int(start + i * BACKFILL_STEP)}")
    lines.append("# EOF")
    out.write_text("\n".join(lines) + "\n")
    return series


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def example_prometheus_config(into: Path, pki: Path, target: str) -> Path:
    """config/prometheus/prometheus.yml for this test: its /etc/prometheus/normagent/ files made here,
    every interval 1s (so rules and rates have points within seconds), the rules beside it."""
    normagent = into / "normagent"
    (normagent / "targets").mkdir(parents=True)
    shutil.copyfile(pki / "ca.crt", normagent / "ca.crt")
    (normagent / "password").write_text(PASSWORD)
    (normagent / "targets" / "clinic.yml").write_text(f'- targets: ["{target}"]\n  labels: {{site: "test"}}\n')
    for rules in ("normagent-recording.yml", "normagent-rules.yml"):
        text = (PROMETHEUS_DIR / rules).read_text()
        (into / rules).write_text(re.sub(r"(?m)^(\s+)interval: \S+$", r"\1interval: 1s", text))
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text().replace("/etc/prometheus/normagent/", f"{normagent}/")
    text = re.sub(r"(?m)^(\s+(?:scrape|evaluation)_interval): \S+", r"\1: 1s", text).replace("scrape_timeout: 10s", "scrape_timeout: 1s")
    config = into / "prometheus.yml"
    config.write_text(text)
    return config


def targets_of(board: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p["title"], t["refId"], t) for p in board["panels"] if p["type"] != "row" for t in p["targets"]]


def test_every_dashboard_query_returns_data(
    tmp_path: Path, pki: Path, start_process: Callable[..., Process], tcp_service: TcpService, capsys: pytest.CaptureFixture[str]
) -> None:
    prometheus_bin = require_tool("prometheus", "prometheus")
    promtool = require_tool("promtool", "prometheus")

    logs = write_fixture_logs(tmp_path / "logs")
    edi_root = tmp_path / "edi"
    generate(edi_root, Config(messages=400, per_day=40, seed=5, now=datetime.now(timezone.utc)))
    watched = tmp_path / "sshd_config"
    watched.write_text("PermitRootLogin no\n")
    snmpd = start_snmpd(tmp_path / "snmpd", extra_config="override 1.3.6.1.4.1.99999.1.0 integer 42\n")
    try:
        port, dead_port, syslog_port = free_port(), free_port(), free_port()
        config = tmp_path / "normagent.toml"
        config.write_text(agent_config(tmp_path, port, pki, logs, edi_root, snmpd.target, tcp_service.port, dead_port, syslog_port, watched, recent_wtmp(tmp_path / "wtmp")))
        agent_process = start_process("normagent", [*normagent_command(), "run", "--config", str(config)], env=agent_env())
        agent = Agent(agent_process, config, tmp_path / "state", f"https://127.0.0.1:{port}", f"127.0.0.1:{port}",
                      {"verify": str(pki / "ca.crt"), "auth": ("prometheus", PASSWORD)})
        wait_until("the agent to answer", lambda: agent.get("/healthz").status_code == 200, process=agent_process, timeout=60)

        # What happens while it runs: an appliance's syslog line, a watched file changed, an outage
        # of a probed service that ends, a wrong password from a scraper.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for line in (FIXTURES / "logs" / "firewall" / "pfsense" / "filterlog.log").read_text().splitlines()[:20]:
                udp.sendto(f"<134>{line}".encode(), ("127.0.0.1", syslog_port))
        wait_until("the watched file's baseline", lambda: 'normagent_watched_files{state="hashed"} 1.0' in agent.get("/metrics").text,
                   process=agent_process, timeout=60)
        watched.write_text("PermitRootLogin yes\n")
        requests.get(f"{agent.url}/metrics", verify=str(pki / "ca.crt"), auth=("prometheus", "wrong"), timeout=10)
        tcp_service.close()
        wait_until("the probe to see epj down", lambda: 'normagent_service_up{service="epj"} 0.0' in agent.get("/metrics").text,
                   process=agent_process, timeout=60)
        tcp_service.open()

        def settled() -> str | None:
            text = agent.get("/metrics").text
            wanted = ('normagent_service_outages_total{planned="false",service="epj"} 1.0', "normagent_firewall_messages_total{device=",
                      "normagent_network_interface_up{", "normagent_edi_receipt_errors_total{", 'normagent_config_changes_total{kind="content",planned="false",source="file"} 1.0')
            missing = [w for w in wanted if w not in text]
            (tmp_path / "waiting-for.txt").write_text("\n".join(missing) + "\n\n" + text)
            return text if not missing else None

        metrics_text = wait_until("every collector to have seen its fixtures", settled, process=agent_process, timeout=120)

        # A month of history before the first scrape, then Prometheus on it.
        data = tmp_path / "prometheus-data"
        data.mkdir()
        now = time.time()
        om = tmp_path / "history.om"
        series = backfill(metrics_text, agent.address, now, om)
        done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h", str(om), str(data)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        prom_config = example_prometheus_config(tmp_path / "prometheus", pki, agent.address)
        prom_port = free_port()
        prometheus = start_process("prometheus", [
            prometheus_bin, f"--config.file={prom_config}", f"--storage.tsdb.path={data}", "--storage.tsdb.retention.time=400d",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn",
        ])
        url = f"http://127.0.0.1:{prom_port}/api/v1"

        def api(path: str, **params: Any) -> Any:
            response = requests.get(f"{url}/{path}", params=params, timeout=60)
            body = response.json()
            assert body["status"] == "success", (params, body)
            return body["data"]

        wait_until("Prometheus to be ready", lambda: requests.get(f"http://127.0.0.1:{prom_port}/-/ready", timeout=5).status_code == 200,
                   process=prometheus, timeout=60)
        wait_until("a few scrapes of the agent over TLS with basic auth",
                   lambda: (r := api("query", query=f'count_over_time(up{{instance="{agent.address}"}}[1m])')["result"]) and float(r[0]["value"][1]) >= 5,
                   process=prometheus, timeout=90)
        wait_until("the recording rules to be evaluated",
                   lambda: api("query", query="instance:normagent_failed_logins:increase30d")["result"], process=prometheus, timeout=60)

        board = json.loads(DASHBOARD.read_text())
        # The host variable's query, as Grafana's label_values(metric, label) asks it.
        variable = next(v for v in board["templating"]["list"] if v["name"] == "host")
        metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["query"]["query"]).groups()  # type: ignore[union-attr]
        assert agent.address in api(f"label/{label}/values", **{"match[]": metric})

        end = time.time()
        empty: list[str] = []
        panels_with_data: set[str] = set()
        all_panels: set[str] = set()
        for title, ref, target in targets_of(board):
            all_panels.add(title)
            expr = substitute(target["expr"], agent.address)
            if target.get("instant"):
                result = api("query", query=expr, time=end)["result"]
            else:
                result = api("query_range", query=expr, start=end - RANGE_SECONDS, end=end, step=3600)["result"]
            if result:
                panels_with_data.add(title)
            else:
                empty.append(f"{title} [{ref}]: {expr}")
        with capsys.disabled():
            print(f"\ngrafana dashboard: {len(panels_with_data)} of {len(all_panels)} panels returned data "
                  f"({len(targets_of(board)) - len(empty)} of {len(targets_of(board))} queries; {series} series backfilled)")
        assert empty == [], "queries without data:\n" + "\n".join(empty)
    finally:
        snmpd.close()
