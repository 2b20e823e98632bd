"""Cost of ``normagent report``: one host over a ledger with 400 days of history, and a fleet of 200
hosts from a real Prometheus.

    .venv/bin/python bench/bench_report.py                    # one host, 400 days: html, md, json, pdf
    .venv/bin/python bench/bench_report.py --fleet 200        # and 200 hosts from Prometheus
    .venv/bin/python bench/bench_report.py --days 30 --repeat 3

One host: a ledger is written through the ledger's own API (tests/support/report_ledger.py: every
enabled collector running every hour, counts every hour, gauges, events, rollups, the real rules
engine raising and resolving candidates) for ``--days`` days, then ``normagent report --month``
runs in a fresh process per format, ``--repeat`` times, in turn with a baseline process that only
imports normagent and opens the ledger (what any command pays). Each child reports the time of the
report itself (configuration read to file written), its CPU time (user + system: what the report
costs, whatever other work takes the cores) and its peak RSS (``ru_maxrss``); for PDF also
Chromium's peak RSS and CPU time (``RUSAGE_CHILDREN``). Medians are printed. Targets (issue 11): under 2 s and
under 150 MB for HTML.

Fleet: one host's ledger of the last two months is exported as OpenMetrics and copied under
``--fleet`` instance names into one file, which ``promtool tsdb create-blocks-from openmetrics``
turns into blocks; a Prometheus serves them, and the fleet report is built ``--fleet-repeat``
times (time; CPU time of the report and of Prometheus; queries). Target: under 60 s for 200 hosts.

Prints one JSON document with every figure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

U = timezone.utc
END = datetime(2026, 12, 1, tzinfo=U)
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=U)


def write_ledger(root: Path, days: int) -> float:
    from normagent.agent import read_config
    from normagent.deviations import build_engine
    from normagent.report.command import _intervals
    from tests.support.report_ledger import History, write_history

    cfg = root / "normagent.toml"
    cfg.write_text(f'[agent]\nstate_dir = "{root / "state"}"\n[deviations]\nlocation = "Bench"\n')
    config, plugins = read_config(cfg)
    start = END - timedelta(days=days)
    bursts = [start + timedelta(days=d, hours=14) for d in range(3, days, 23)]
    outages = [(start + timedelta(days=d, hours=2), start + timedelta(days=d, hours=9)) for d in range(10, days, 47)]
    misaddressed = [start + timedelta(days=d, hours=10) for d in range(5, days, 61)]
    history = History(start=start, end=END, collectors=sorted(_intervals(config, plugins)), bursts=bursts, outages=outages,
                      misaddressed=misaddressed, seed=3)
    t = time.perf_counter()
    write_history(root / "state" / "ledger.db", history, plugins.metrics().values(), lambda host: build_engine(config, plugins, host, "bench"))
    return time.perf_counter() - t


def child(root: Path, fmt: str) -> None:
    """In a fresh process: one report (or, for "baseline", what every command pays)."""
    t0 = time.perf_counter()
    from normagent.agent import read_config
    from normagent.cli import build_parser

    cfg = root / "normagent.toml"
    if fmt == "baseline":
        from normagent.ledger import Ledger

        config, _ = read_config(cfg)
        with Ledger.open_readonly(config.state_dir() / "ledger.db") as ledger:
            ledger.has_data
        elapsed = time.perf_counter() - t0
    else:
        from normagent.report.command import run_report

        args = build_parser().parse_args(["report", "--config", str(cfg), "--month", "2026-11", "--format", fmt,
                                          "--output", str(root / f"bench.{fmt}")])
        config, plugins = read_config(cfg)
        code = run_report(args, config, plugins, io.StringIO(), io.StringIO(), now=NOW)
        assert code == 0, code
        elapsed = time.perf_counter() - t0
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"seconds": elapsed, "rss_mb": own.ru_maxrss / 1024, "children_rss_mb": children.ru_maxrss / 1024,
                      # CPU time counts what the report costs whatever the other sessions take from the machine
                      "cpu_s": own.ru_utime + own.ru_stime, "children_cpu_s": children.ru_utime + children.ru_stime}))


def run_child(root: Path, fmt: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items()}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, __file__, "--child", fmt, "--root", str(root)], capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def one_host(days: int, repeat: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        written = write_ledger(root, days)
        size = (root / "state" / "ledger.db").stat().st_size
        runs: dict[str, list[dict[str, float]]] = {f: [] for f in ("baseline", "html", "md", "json", "pdf")}
        for _ in range(repeat):
            for fmt in runs:  # in turn, so load from other sessions falls on all alike
                runs[fmt].append(run_child(root, fmt))
        out: dict[str, Any] = {"days": days, "ledger_mb": round(size / 2**20, 1), "ledger_written_s": round(written, 1), "repeat": repeat}
        for fmt, results in runs.items():
            out[fmt] = {
                "seconds_median": round(statistics.median(r["seconds"] for r in results), 3),
                "cpu_s_median": round(statistics.median(r["cpu_s"] for r in results), 3),
                "rss_mb_median": round(statistics.median(r["rss_mb"] for r in results), 1),
                **({"chromium_rss_mb_median": round(statistics.median(r["children_rss_mb"] for r in results), 1),
                    "chromium_cpu_s_median": round(statistics.median(r["children_cpu_s"] for r in results), 3)} if fmt == "pdf" else {}),
            }
        base = out["baseline"]
        for fmt in ("html", "md", "json", "pdf"):
            out[fmt]["seconds_over_baseline"] = round(out[fmt]["seconds_median"] - base["seconds_median"], 3)
            out[fmt]["cpu_s_over_baseline"] = round(out[fmt]["cpu_s_median"] - base["cpu_s_median"], 3)
            out[fmt]["rss_mb_over_baseline"] = round(out[fmt]["rss_mb_median"] - base["rss_mb_median"], 1)
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def fleet(hosts: int, repeat: int) -> dict[str, Any]:
    from normagent.agent import read_config
    from normagent.ledger import Ledger
    from normagent.report import openmetrics
    from normagent.report.build import ReportContext, ReportPeriod, build_report
    from normagent.report.command import _intervals
    from normagent.report.data import Fleet, PrometheusClient, PrometheusSettings
    from normagent.report.render import to_html
    from tests.support.tools import find_tool
    from zoneinfo import ZoneInfo

    promtool, prometheus = find_tool("promtool"), find_tool("prometheus")
    if not promtool or not prometheus:
        raise SystemExit("promtool and prometheus are needed: run scripts/servers")
    root = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    try:
        write_ledger(root, 61)
        config, plugins = read_config(root / "normagent.toml")
        families: dict[str, list[str]] = {}
        order: list[str] = []
        with Ledger.open_readonly(root / "state" / "ledger.db") as ledger:
            current = ""
            for line in openmetrics.export(ledger, {"instance": "HOST", "job": "normagent"}, END, _intervals(config, plugins), "bench"):
                if line.startswith("# TYPE"):
                    current = line
                    order.append(line)
                    families[line] = []
                elif not line.startswith("# EOF"):
                    families[current].append(line)
        om = root / "fleet.om"
        samples = 0
        t = time.perf_counter()
        with om.open("w") as out:
            for head in order:
                out.write(head)
                for n in range(hosts):
                    name = f'instance="clinic-{n:03d}:9824"'
                    for line in families[head]:
                        out.write(line.replace('instance="HOST"', name))
                    samples += len(families[head])
            out.write("# EOF\n")
        generated = time.perf_counter() - t
        data = root / "tsdb"
        t = time.perf_counter()
        subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=744h", str(om), str(data)],
                       check=True, capture_output=True, timeout=3600)
        backfilled = time.perf_counter() - t
        om.unlink()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        (root / "prometheus.yml").write_text("global: {}\n")
        proc = subprocess.Popen([prometheus, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y", "--log.level=warn"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import requests

            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.5)
            import psutil

            server = psutil.Process(proc.pid)
            times, queries, html_times, build_cpu, html_cpu, server_cpu = [], [], [], [], [], []
            for _ in range(repeat):
                client = PrometheusClient(PrometheusSettings(url=f"http://127.0.0.1:{port}", timeout=300))
                c0, s0 = _cpu(), sum(server.cpu_times()[:2])
                t = time.perf_counter()
                source = Fleet(client)
                ctx = ReportContext(period=ReportPeriod.month(2026, 11, ZoneInfo("Europe/Oslo"), "Europe/Oslo"),
                                    sections=list(plugins.report_sections().values()), generated_at=NOW, version="bench",
                                    source={"kind": "prometheus", "url": f"http://127.0.0.1:{port}", "match": ""})
                names = source.hosts(ctx.period.span())
                doc = build_report(ctx, [source.source(n) for n in names])
                built = time.perf_counter() - t
                c1, s1 = _cpu(), sum(server.cpu_times()[:2])
                t2 = time.perf_counter()
                to_html(doc)
                html_times.append(time.perf_counter() - t2)
                html_cpu.append(_cpu() - c1)
                build_cpu.append(c1 - c0)
                server_cpu.append(s1 - s0)
                times.append(built)
                queries.append(client.queries)
                client.close()
                assert len(names) == hosts, len(names)
            return {
                "hosts": hosts, "samples": samples, "openmetrics_written_s": round(generated, 1), "promtool_s": round(backfilled, 1),
                "report_build_s_median": round(statistics.median(times), 2), "html_render_s_median": round(statistics.median(html_times), 2),
                "total_s_median": round(statistics.median(a + b for a, b in zip(times, html_times)), 2),
                "report_build_cpu_s_median": round(statistics.median(build_cpu), 2),
                "prometheus_cpu_s_median": round(statistics.median(server_cpu), 2),
                "html_render_cpu_s_median": round(statistics.median(html_cpu), 2),
                "queries": queries[0], "repeat": repeat,
            }
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fleet", type=int, default=0, metavar="HOSTS")
    parser.add_argument("--fleet-only", action="store_true")
    parser.add_argument("--fleet-repeat", type=int, default=3, metavar="N")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.root, args.child)
        return
    result: dict[str, Any] = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
    if not args.fleet_only:
        result["one_host"] = one_host(args.days, args.repeat)
        print(json.dumps({"one_host": result["one_host"]}), file=sys.stderr, flush=True)  # kept should the fleet fail
    if args.fleet:
        result["fleet"] = fleet(args.fleet, max(1, args.fleet_repeat))
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
