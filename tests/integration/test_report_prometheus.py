"""The fleet report from a real Prometheus: a month of history of two agents, backfilled with
``promtool tsdb create-blocks-from openmetrics`` from what their ledgers hold, answers the report,
and for each host it equals the report built from that host's own ledger. A Prometheus that is down
is a clear error; one that has part of the data says what is missing."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from normagent.agent import read_config
from normagent.cli import build_parser
from normagent.deviations import build_engine, configured_rules, metric_kinds
from normagent.errors import Unavailable
from normagent.ledger import Ledger
from normagent.report import openmetrics
from normagent.report.build import ReportContext, ReportPeriod, build_report
from normagent.report.command import _intervals, run_report
from normagent.report.data import Fleet, LedgerSource, PrometheusClient, PrometheusSettings
from normagent.rules import prometheus_rules
from tests.integration.conftest import Process, free_port, wait_until
from tests.support.report_ledger import History, write_history
from tests.support.tools import require_tool

U = timezone.utc
NOW = datetime(2026, 12, 6, 9, 30, tzinfo=U)
ZONE = ZoneInfo("Europe/Oslo")
HOSTS = {
    "clinic-a:9824": History(
        start=datetime(2026, 10, 1, tzinfo=U), end=datetime(2026, 12, 1, tzinfo=U), collectors=(), seed=11,
        outages=[(datetime(2026, 11, 12, 3, tzinfo=U), datetime(2026, 11, 13, 9, tzinfo=U))],
        bursts=[datetime(2026, 11, 18, 2, tzinfo=U)], misaddressed=[datetime(2026, 11, 25, 10, tzinfo=U)],
    ),
    "clinic-b:9824": History(
        start=datetime(2026, 10, 20, tzinfo=U), end=datetime(2026, 12, 1, tzinfo=U), collectors=(), seed=22,
        # down across the month boundary: the counters at its start are looked up further back
        outages=[(datetime(2026, 10, 31, 12, tzinfo=U), datetime(2026, 11, 2, 6, tzinfo=U))],
        failing=[("firewall.linux", datetime(2026, 11, 5, tzinfo=U), datetime(2026, 11, 6, tzinfo=U))],
    ),
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two ledgers, their history backfilled into a Prometheus TSDB, Prometheus serving it with
    normagent's exported alerting rules."""
    promtool = require_tool("promtool", "prometheus")
    binary = require_tool("prometheus", "prometheus")
    root = tmp_path_factory.mktemp("fleet")
    cfg = root / "normagent.toml"
    cfg.write_text(f'[agent]\nstate_dir = "{root}/unused"\n')
    config, plugins = read_config(cfg)
    intervals = _intervals(config, plugins)
    active = [r.rule for r in configured_rules(config, plugins) if r.active]
    rules_text, skipped = prometheus_rules(active, metric_kinds(plugins))
    exported = {r.name for r in active} - set(skipped)
    (root / "rules.yml").write_text(rules_text)
    data = root / "tsdb"
    ledgers = {}
    for instance, history in HOSTS.items():
        history.collectors = sorted(intervals)
        path = root / instance.split(":")[0] / "ledger.db"
        write_history(path, history, plugins.metrics().values(), lambda host: build_engine(config, plugins, host, "test"))
        ledgers[instance] = path
        with Ledger.open_readonly(path) as ledger:
            text = "".join(openmetrics.export(ledger, {"instance": instance, "job": "normagent"}, history.end, intervals, "0.1.0", exported))
        om = root / f"{instance.split(':')[0]}.om"
        om.write_text(text)
        done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h", str(om), str(data)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    shutil.copytree(data, root / "tsdb-secure")  # for the second Prometheus (TLS, basic auth, a dead remote store)
    port = free_port()
    (root / "prometheus.yml").write_text(json.dumps({"global": {"evaluation_interval": "1h"}, "rule_files": [str(root / "rules.yml")]}))
    log = (root / "prometheus.log").open("wb")
    popen = subprocess.Popen(
        [binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={data}", f"--web.listen-address=127.0.0.1:{port}",
         "--storage.tsdb.retention.time=100y", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    process = Process("prometheus", popen, root / "prometheus.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until("Prometheus to be ready", lambda: requests.get(f"{url}/-/ready", timeout=5).status_code == 200, process=process, timeout=60)
        yield {"url": url, "config": config, "plugins": plugins, "intervals": intervals, "ledgers": ledgers, "root": root}
    finally:
        process.stop()
        log.close()


def context(f: dict[str, Any], intervals: dict[str, float], source: dict[str, Any]) -> ReportContext:
    return ReportContext(
        period=ReportPeriod.month(2026, 11, ZONE, "Europe/Oslo"), sections=list(f["plugins"].report_sections().values()),
        lang="nb", generated_at=NOW, version="0.1.0", config_fingerprint="test", intervals=intervals, source=source,
    )


def figures(host: dict[str, Any]) -> dict[str, Any]:
    """What a host's report from Prometheus must share with the one from its ledger."""
    return {
        "indicators": {i["id"]: (i["this"], i["last"], [p["value"] for p in i["trend"]]) for s in host["sections"] for i in s["indicators"]},
        "status": {a["area"]: a["status"] for a in host["summary"]["areas"]},
        "collectors": {c["name"]: c["share"] for c in host["completeness"]["collectors"]},
        "gaps": [(g["start"], g["end"]) for g in host["completeness"]["gaps"]],
        "incomplete": {s["id"]: s["incomplete"] for s in host["sections"] if s["id"] != "deviations"},
        "has_data": host["has_data"],
    }


def test_fleet_report_equals_each_hosts_own_report(fleet: dict[str, Any]) -> None:
    client = PrometheusClient(PrometheusSettings(url=fleet["url"], match='{job="normagent"}'))
    queries: list[int] = []
    fleet_source = Fleet(client, on_query=lambda: queries.append(1))
    names = fleet_source.hosts(context(fleet, {}, {}).period.span())
    assert names == sorted(HOSTS)
    doc = build_report(context(fleet, {}, {"kind": "prometheus", "url": fleet["url"]}), [fleet_source.source(n) for n in names])
    client.close()
    assert [h["name"] for h in doc["hosts"]] == names
    assert doc["fleet"] is not None and [r["name"] for r in doc["fleet"]["hosts"]] == names
    for host in doc["hosts"]:
        with Ledger.open_readonly(fleet["ledgers"][host["name"]]) as ledger:
            own = build_report(context(fleet, fleet["intervals"], {"kind": "ledger"}), [LedgerSource(ledger)])
        assert figures(host) == figures(own["hosts"][0]), host["name"]
    a, b = doc["hosts"]
    assert {x["area"]: x["status"] for x in a["summary"]["areas"]}[30] == "red"  # clinic-a's mis-addressed message (72 h)
    assert b["completeness"]["gaps"][0]["start"] == "2026-10-31T23:00:00Z"  # clinic-b was down at the month's start
    # Prometheus keeps no events, rollups or acknowledgements: each host's part says so.
    assert any("bare i den enkelte serverens database" in n for n in a["notes"])
    assert len(queries) < 400  # queries per metric and month boundary, shared by the hosts


def test_queries_do_not_grow_with_the_hosts(fleet: dict[str, Any]) -> None:
    """Queries are per metric and instant, shared by the hosts, also for the hosts that were not
    scraped at a month boundary (both began in October: every earlier boundary misses them)."""
    counts = {}
    for names in (["clinic-b:9824"], sorted(HOSTS)):
        client = PrometheusClient(PrometheusSettings(url=fleet["url"]))
        source = Fleet(client)
        build_report(context(fleet, {}, {"kind": "prometheus"}), [source.source(n) for n in names])
        counts[len(names)] = client.queries
        client.close()
    assert counts[2] == counts[1]


def test_fleet_report_through_the_command(fleet: dict[str, Any], tmp_path: Path) -> None:
    cfg = tmp_path / "normagent.toml"
    cfg.write_text("")
    args = build_parser().parse_args(["report", "--config", str(cfg), "--month", "2026-11", "--format", "md", "--output", str(tmp_path / "r.md"),
                                      "--prometheus-url", fleet["url"], "--match", 'job="normagent"'])
    config, plugins = read_config(cfg)
    err = io.StringIO()
    assert run_report(args, config, plugins, io.StringIO(), err, now=NOW) == 0
    text = (tmp_path / "r.md").read_text()
    assert "## Oversikt over serverne" in text
    assert text.count("## Sammendrag for ledelsen – clinic-") == 2


def test_prometheus_that_is_down_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "normagent.toml"
    cfg.write_text("")
    args = build_parser().parse_args(["report", "--config", str(cfg), "--month", "2026-11", "--prometheus-url", f"http://127.0.0.1:{free_port()}"])
    config, plugins = read_config(cfg)
    with pytest.raises(Unavailable, match=r"cannot be reached: Connection refused"):
        run_report(args, config, plugins, io.StringIO(), io.StringIO(), now=NOW)


def test_a_selector_that_matches_no_host_says_so(fleet: dict[str, Any], tmp_path: Path) -> None:
    from normagent.cli import main

    cfg = tmp_path / "normagent.toml"
    cfg.write_text("")
    code = main(["report", "--config", str(cfg), "--month", "2026-11", "-o", "-", "--prometheus-url", fleet["url"], "--match", 'job="other"'])
    assert code == 66


def test_partial_data_is_shown_as_missing(fleet: dict[str, Any]) -> None:
    """clinic-b began on 20 October: its October is partly there, its September not at all."""
    client = PrometheusClient(PrometheusSettings(url=fleet["url"]))
    source = Fleet(client).source("clinic-b:9824")
    ctx = context(fleet, {}, {"kind": "prometheus"})
    doc = build_report(ctx, [source])
    client.close()
    host = doc["hosts"][0]
    blocked = next(i for s in host["sections"] for i in s["indicators"] if i["id"] == "firewall.blocked")
    assert [p["value"] is None for p in blocked["trend"]] == [True] * 10 + [False, False]
    assert blocked["last"] is not None and blocked["this"] is not None
    fw = next(s for s in host["sections"] if s["id"] == "firewall.barrier")
    assert fw["incomplete"] and "firewall.linux" in fw["incomplete_collectors"]


@pytest.fixture(scope="module")
def secure(fleet: dict[str, Any], pki: Path) -> Iterator[dict[str, Any]]:
    """The same history behind TLS (a client certificate required) and basic auth, with a remote
    store that is down: Prometheus answers from its own blocks and warns that the answer may be
    partial, as Thanos or a federated Prometheus does."""
    binary = require_tool("prometheus", "prometheus")
    root = fleet["root"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # bcrypt, which Prometheus's web configuration wants, from the C library

        hashed = crypt.crypt("s3cret pass", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
    (root / "web.yml").write_text(json.dumps({
        "tls_server_config": {"cert_file": str(pki / "server.crt"), "key_file": str(pki / "server.key"),
                              "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": str(pki / "ca.crt")},
        "basic_auth_users": {"reporter": hashed},
    }))
    (root / "secure.yml").write_text(json.dumps({
        "global": {"evaluation_interval": "1h"}, "rule_files": [str(root / "rules.yml")],
        "remote_read": [{"url": f"http://127.0.0.1:{free_port()}/api/v1/read", "read_recent": True, "remote_timeout": "5s"}],
    }))
    (root / "password").write_text("s3cret pass\n")
    port = free_port()
    log = (root / "secure.log").open("wb")
    popen = subprocess.Popen(
        [binary, f"--config.file={root / 'secure.yml'}", f"--web.config.file={root / 'web.yml'}",
         f"--storage.tsdb.path={root / 'tsdb-secure'}", f"--web.listen-address=127.0.0.1:{port}",
         "--storage.tsdb.retention.time=100y", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    process = Process("prometheus (TLS)", popen, root / "secure.log")
    url = f"https://localhost:{port}"
    ready = {"verify": str(pki / "ca.crt"), "cert": (str(pki / "client.crt"), str(pki / "client.key")), "auth": ("reporter", "s3cret pass")}
    try:
        wait_until("Prometheus (TLS) to be ready", lambda: requests.get(f"{url}/-/ready", timeout=5, **ready).status_code == 200,  # type: ignore[arg-type]
                   process=process, timeout=60)
        yield {"url": url, "root": root, "pki": pki}
    finally:
        process.stop()
        log.close()


def secure_report(s: dict[str, Any], tmp_path: Path, *options: str) -> tuple[int, str]:
    """``normagent report`` (the command line, as a user runs it) against the TLS Prometheus."""
    from normagent.cli import main

    cfg = tmp_path / "normagent.toml"
    cfg.write_text("")
    pki = s["pki"]
    argv = ["report", "--config", str(cfg), "--month", "2026-11", "--format", "json", "-o", str(tmp_path / "fleet.json"),
            "--prometheus-url", s["url"], "--match", 'job="normagent"', "--prometheus-ca-file", str(pki / "ca.crt"),
            "--prometheus-cert", str(pki / "client.crt"), "--prometheus-key", str(pki / "client.key"),
            "--prometheus-username", "reporter", "--prometheus-password-file", str(s["root"] / "password"), *options]
    return main(argv), str(tmp_path / "fleet.json")


def test_fleet_report_over_tls_and_basic_auth_from_a_partial_prometheus(
    fleet: dict[str, Any], secure: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through TLS with a client certificate and basic auth, the figures equal the plain
    Prometheus's; the remote store that is down makes Prometheus warn, and the report prints it."""
    code, path = secure_report(secure, tmp_path)
    assert code == 0, capsys.readouterr().err
    doc = json.loads(Path(path).read_text())
    client = PrometheusClient(PrometheusSettings(url=fleet["url"], match='{job="normagent"}'))
    source = Fleet(client)
    names = source.hosts(context(fleet, {}, {}).period.span())
    plain = build_report(context(fleet, {}, {"kind": "prometheus"}), [source.source(n) for n in names])
    client.close()
    assert [h["name"] for h in doc["hosts"]] == names == sorted(HOSTS)
    for mine, theirs in zip(doc["hosts"], plain["hosts"]):
        assert figures(mine) == figures(theirs), mine["name"]
    assert plain["warnings"] == [] or all(not w.startswith("Prometheus:") for w in plain["warnings"])
    partial = [w for w in doc["warnings"] if w.startswith("Prometheus: ") and "remote_read" in w]
    assert partial, doc["warnings"]
    code, path = secure_report(secure, tmp_path, "--format", "md", "-o", str(tmp_path / "fleet.md"))
    assert code == 0 and partial[0] in (tmp_path / "fleet.md").read_text()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"--prometheus-username": "someone"}, "refused the credentials (401)"),
        ({"--prometheus-ca-file": "rogue-ca.crt"}, "TLS failed (certificate verify failed)"),
        ({"--prometheus-cert": "rogue.crt", "--prometheus-key": "rogue.key"}, "TLS failed"),
        ({"--prometheus-password-file": "no-such-file"}, "--prometheus-password-file"),
    ],
)
def test_wrong_credentials_are_a_clear_error(
    secure: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, str], words: str
) -> None:
    from normagent.cli import main

    code, _ = secure_report(secure, tmp_path)  # the right ones first: what differs below is the change
    assert code == 0
    capsys.readouterr()
    cfg = tmp_path / "normagent.toml"
    pki = secure["pki"]
    options = {"--prometheus-ca-file": str(pki / "ca.crt"), "--prometheus-cert": str(pki / "client.crt"),
               "--prometheus-key": str(pki / "client.key"), "--prometheus-username": "reporter",
               "--prometheus-password-file": str(secure["root"] / "password")}
    for key, value in change.items():
        options[key] = value if key == "--prometheus-username" else str(pki / value)
    argv = ["report", "--config", str(cfg), "--month", "2026-11", "-o", str(tmp_path / "x.json"), "--format", "json",
            "--prometheus-url", secure["url"], *[part for kv in options.items() for part in kv]]
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (66, 69) and words in err and "Traceback" not in err, err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    "answer",
    [
        b'{"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "2"]}]}}',
        b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": "x"}]}}',
        b'{"status": "success", "data": {"resultType": "vector", "result": [7]}}',
        b'{"status": "error", "errorType": "bad_data", "error": "parse error"}',
        b"<html>a login page</html>",
    ],
)
def test_an_answer_that_is_not_the_prometheus_api_is_a_clear_error(
    answer: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A proxy, a login page or a look-alike answering 200: exit 69 and what it said, no traceback."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._send()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._send()

        def _send(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    from normagent.cli import main

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cfg = tmp_path / "normagent.toml"
        cfg.write_text("")
        code = main(["report", "--config", str(cfg), "--month", "2026-11", "-o", str(tmp_path / "r.json"),
                     "--prometheus-url", f"http://127.0.0.1:{server.server_address[1]}"])
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert code == 69 and "Traceback" not in err, err
    assert ("unexpected shape" in err or "no JSON" in err or "parse error" in err), err
    assert not (tmp_path / "r.json").exists()


def test_exported_label_values_reach_prometheus_as_the_scrape_gives_them(tmp_path: Path) -> None:
    """OpenMetrics knows three escapes (backslash, quote, line feed). The export wrote label values
    as JSON, so a tab came as the letters "\\t" and an ESC as "\\u001b": the backfilled series had
    other labels than the scraped one (a syslog tag is any local user's choice: logger -t)."""
    from normagent.model import Batch, Count, MetricSpec
    from normagent.testing import FakeClock

    promtool = require_tool("promtool", "prometheus")
    tag = 'a\tb\x1bc\\d"e\nf ø'
    spec = MetricSpec("normagent_test_errors_total", "counter", "Errors.", ("tag",))
    clock = FakeClock(datetime(2026, 11, 2, 10, 30, tzinfo=timezone.utc))
    with Ledger.open(tmp_path / "ledger.db", clock=clock, metrics=[spec]) as ledger:
        ledger.commit("c", Batch([Count(spec.name, {"tag": tag}, 3)]))
        text = "".join(openmetrics.export(ledger, {"instance": "h:9824", "job": "normagent"},
                                          datetime(2026, 11, 2, 13, tzinfo=timezone.utc), {"c": 60.0}, "0.1.0"))
    om = tmp_path / "history.om"
    om.write_text(text)
    data = tmp_path / "tsdb"
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (data / "wal").mkdir()  # promtool's dump opens the database as Prometheus would, WAL and all
    dump = subprocess.run([promtool, "tsdb", "dump", "--match", '{__name__="normagent_test_errors_total"}', str(data)],
                          capture_output=True, text=True, timeout=300)
    assert dump.returncode == 0, dump.stderr[-2000:]
    quoted = json.dumps(tag, ensure_ascii=False).replace("\\u001b", "\\x1b")  # Go's strconv.Quote of the label value
    assert f"tag={quoted}" in dump.stdout, dump.stdout[:500]
