"""Idle cost and scrape latency of ``normagent run``, side by side with prometheus-node-exporter.

    .venv/bin/python bench/bench_idle.py                 # the real run: 10 idle minutes
    .venv/bin/python bench/bench_idle.py --minutes 1     # a quick look

Both exporters run on 127.0.0.1 at the same time: node_exporter with its default collectors
(Debian package, unpacked by scripts/servers), normagent with every builtin plugin loaded, its
default deviation rules, one forwarder of every kind enabled (webhook, Alertmanager, e-mail, file;
``--no-forwarders`` leaves them out) and every collector enabled *with something to read*
(``--sources all``, the default): the Windows collectors on the project's EVTX fixtures (Security
and Defender), the ClamAV collectors on its ClamAV fixtures (clamscan, clamd and freshclam logs, two
signature databases), and ``network.snmp`` polling a real snmpd (started here on 127.0.0.1, so
pysnmp is loaded as on a site with a router configured). ``--sources snmp-off`` is the same without
the SNMP device (pysnmp never loaded), ``--sources v2c`` the same with an SNMPv2c device in place of
the SNMPv3 one; ``--sources defaults`` is the built-in configuration (only
the state directory and the port set). The script measures, for both:

1. resident memory (RSS) after a warm-up, after the scrapes and at the end;
2. /metrics latency over N scrapes (default 1,000) on a fresh connection each, with the headers
   Prometheus sends (OpenMetrics/text Accept, gzip). The two alternate in blocks of 100, so that
   the machine's noise hits both alike while one's garbage collection after a scrape (node_exporter
   collects on every scrape) does not land on every sample of the other;
3. CPU time used over the idle minutes (no scrapes), including reaped child processes (normagent
   runs journalctl, last, systemctl), as a percentage of one core.

Targets (issue 15; issue 2 asked 40 MB and 0.3 %): RSS ≤ 30 MB, idle CPU < 0.1 % of one core, p99
no worse than node_exporter's. ``--baseline REVISION`` runs that revision's agent beside this one
(``--sources`` may name several variants: one agent of each, all side by side). The machine is shared and noisy: read the two columns as a ratio.
Results are printed and written as JSON to bench/out/idle-<time>.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.support.service import compile_as_installed, service_environment  # noqa: E402
DEBS_ROOT = REPO / ".cache" / "debs" / "root"
BLOCK = 100  # scrapes of one exporter before switching to the other
PROMETHEUS_HEADERS = {  # what Prometheus 2.42 sends when it scrapes
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.42.0",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Exporter:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    latencies: list[float] = field(default_factory=list)
    rss: dict[str, int] = field(default_factory=dict)
    cpu_percent: float = 0.0
    body_bytes: int = 0

    @property
    def process(self) -> psutil.Process:
        return psutil.Process(self.popen.pid)

    def scrape(self) -> float:
        """One /metrics request on a fresh connection; seconds until the whole body is read."""
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/metrics", headers=PROMETHEUS_HEADERS)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"{self.name} answered {response.status}")
        self.body_bytes = len(body)
        return elapsed

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def wait_ready(exporter: Exporter, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exporter.popen.poll() is not None:
            raise SystemExit(f"{exporter.name} exited with {exporter.popen.returncode} before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{exporter.name} was not ready after {timeout:.0f}s")


FIXTURES = REPO / "tests" / "fixtures"


def source_config(workdir: Path, snmp_target: str | None, snmp_version: str = "3") -> str:
    """Configuration that gives every collector something to read (see the module docstring)."""
    logs = workdir / "logs"
    databases = workdir / "clamav"
    logs.mkdir(exist_ok=True)
    databases.mkdir(exist_ok=True)
    for name in ("clamscan.log", "clamd.log", "freshclam.log"):
        shutil.copy(FIXTURES / "logs" / "malware" / name, logs / name)
    shutil.copy(FIXTURES / "clamav" / "test-6.cvd", databases / "daily.cvd")
    shutil.copy(FIXTURES / "clamav" / "test-1.cvd", databases / "main.cvd")
    evtx = FIXTURES / "evtx"
    text = f"""
[collectors."access.windows"]
enabled = true
paths = ["{evtx / "security.evtx"}", "{evtx / "system.evtx"}"]

[collectors."malware.defender"]
enabled = true
paths = ["{evtx / "WinDefender_Events_1117_1116_AtomicRedTeam.evtx"}"]

[collectors."malware.clamav".files]
paths = ["{logs / "clamscan.log"}", "{logs / "clamd.log"}"]
start_at = "beginning"

[collectors."malware.clamonacc".files]
paths = ["{logs / "clamscan.log"}"]
start_at = "beginning"

[collectors."malware.freshclam".files]
paths = ["{logs / "freshclam.log"}"]
start_at = "beginning"

[collectors."malware.clamav_status"]
database_directory = "{databases}"
"""
    if snmp_target and snmp_version == "2c":
        text += f"""
[collectors."network.snmp"]
devices = [{{ name = "bench", target = "{snmp_target}", version = "2c", community = "public", interfaces = ["*"] }}]
"""
    elif snmp_target:
        text += f"""
[collectors."network.snmp"]
devices = [{{ name = "bench", target = "{snmp_target}", version = "3", user = "normagent", auth_key = "auth-passphrase-1", priv_key = "priv-passphrase-2", interfaces = ["*"] }}]
"""
    return text


def forwarders_config(workdir: Path) -> str:
    """Every kind of forwarder, enabled; the HTTP and SMTP ones point at a port nothing listens on
    (an idle agent has nothing to send; were a default rule to fire on this host, its deliveries
    would fail and be retried, which is what an unreachable deviation system costs)."""
    dead = free_port()
    return f"""
[forwarders.webhook]
kind = "webhook"
url = "http://127.0.0.1:{dead}/avvik"
secret = "bench"

[forwarders.alertmanager]
kind = "alertmanager"
url = "http://127.0.0.1:{dead}"

[forwarders.epost]
kind = "email"
host = "127.0.0.1"
port = {dead}
starttls = false
from_address = "normagent@bench.invalid"
to = ["avvik@bench.invalid"]

[forwarders.fil]
kind = "file"
path = "{workdir / 'avvik.jsonl'}"
"""


def unpack_revision(revision: str, into: Path) -> Path:
    """The agent's sources at ``revision`` (git archive), laid out as installed (``plugins/`` as
    ``normagent/plugins``), to run with ``PYTHONPATH`` beside the checkout's own in one run."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "normagent", "plugins"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (into / "plugins").rename(into / "normagent" / "plugins")
    return into


def start_normagent(workdir: Path, log: Path, extra_config: str = "", forwarders: bool = True,
                    name: str = "normagent", source_tree: Path | None = None) -> Exporter:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "normagent.toml"
    config.write_text(f'[agent]\nstate_dir = "{workdir / "state"}"\n\n[web]\nlisten = "127.0.0.1:{port}"\n'
                      + extra_config + (forwarders_config(workdir) if forwarders else ""))
    binary = Path(sys.executable).with_name("normagent")
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env.update(service_environment())  # the agent as systemd/normagent.service runs it
    command = [str(binary)]
    if source_tree is not None:  # the editable install's finder would answer for normagent: take it out
        command = [sys.executable, "-c", "import sys; sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in "
                   f"getattr(f, '__module__', '')]; sys.path.insert(0, {str(source_tree)!r}); "
                   "from normagent.cli import main; sys.exit(main())"]
    with log.open("wb") as out:
        popen = subprocess.Popen([*command, "run", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env)
    exporter = Exporter(name, popen, port)
    wait_ready(exporter, "/healthz")
    return exporter


def start_node_exporter(log: Path) -> Exporter:
    binary = next(
        (str(p) for p in (DEBS_ROOT.parent / "bin" / "prometheus-node-exporter",) if p.exists()),
        shutil.which("prometheus-node-exporter") or shutil.which("node_exporter"),
    )
    if binary is None:
        raise SystemExit("prometheus-node-exporter not found: run scripts/servers first")
    port = free_port()
    with log.open("wb") as out:
        popen = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}"], stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    exporter = Exporter("node_exporter", popen, port)
    wait_ready(exporter, "/metrics")
    return exporter


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def report(exporters: list[Exporter], args: argparse.Namespace) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for e in exporters:
        ms = [x * 1000 for x in e.latencies]
        rows[e.name] = {
            "rss_mb": {k: round(v / 2**20, 1) for k, v in e.rss.items()},
            "idle_cpu_percent_of_one_core": round(e.cpu_percent, 3),
            "scrape_ms": {"p50": round(percentile(ms, 50), 3), "p90": round(percentile(ms, 90), 3),
                          "p99": round(percentile(ms, 99), 3), "max": round(max(ms), 3),
                          "mean": round(statistics.fmean(ms), 3)},
            "body_bytes_gzip": e.body_bytes,
        }
    names = [e.name for e in exporters]
    print(f"\nidle benchmark: {args.scrapes} scrapes, {args.minutes:g} idle minutes, warm-up {args.warmup:g}s, sources: {args.sources}")
    width = max(16, *(len(n) + 2 for n in names))
    print(f"{'':34}" + "".join(f"{n:>{width}}" for n in names))
    lines = [
        ("RSS after warm-up (MB)", lambda r: r["rss_mb"]["warm"]),
        (f"RSS after {args.scrapes} scrapes (MB)", lambda r: r["rss_mb"]["scraped"]),
        ("RSS at the end (MB)", lambda r: r["rss_mb"]["end"]),
        ("idle CPU (% of one core)", lambda r: r["idle_cpu_percent_of_one_core"]),
        ("scrape p50 (ms)", lambda r: r["scrape_ms"]["p50"]),
        ("scrape p99 (ms)", lambda r: r["scrape_ms"]["p99"]),
        ("scrape max (ms)", lambda r: r["scrape_ms"]["max"]),
        ("page size, gzip (bytes)", lambda r: r["body_bytes_gzip"]),
    ]
    for label, get in lines:
        print(f"{label:34}" + "".join(f"{get(rows[n]):>{width}}" for n in names))
    node = rows["node_exporter"]
    verdicts = {}
    for name in names:
        if name == "node_exporter" or name.startswith("before"):
            continue
        agent = rows[name]
        verdicts[f"{name}: rss <= 30 MB"] = max(agent["rss_mb"].values()) <= 30
        verdicts[f"{name}: idle CPU < 0.1 %"] = agent["idle_cpu_percent_of_one_core"] < 0.1
        verdicts[f"{name}: p99 <= node_exporter p99"] = agent["scrape_ms"]["p99"] <= node["scrape_ms"]["p99"]
    print("targets: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in verdicts.items()))
    return {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpus": os.cpu_count(), "sources": args.sources,
            "scrapes": args.scrapes, "idle_minutes": args.minutes, "warmup_seconds": args.warmup,
            "results": rows, "targets_met": verdicts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="idle minutes to measure CPU over (default 10)")
    parser.add_argument("--scrapes", type=int, default=1000, help="scrapes of each exporter (default 1000)")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds to let both settle first (default 30)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="directory for the JSON result")
    parser.add_argument("--sources", default="all",
                        help="what normagent's collectors read: all, v2c (all with an SNMPv2c device instead of "
                        "the SNMPv3 one), snmp-off or defaults, or several separated by "
                        "commas (one agent each, side by side; default all: see the module docstring)")
    parser.add_argument("--baseline", metavar="REVISION",
                        help="also run the agent of this git revision (its sources unpacked, same venv) beside each")
    parser.add_argument("--no-forwarders", action="store_true",
                        help="without the four forwarders (by default every kind is enabled; the rules engine always runs)")
    args = parser.parse_args()
    variants = args.sources.split(",")
    if not variants or any(v not in ("all", "v2c", "snmp-off", "defaults") for v in variants):
        parser.error(f"--sources: {args.sources!r}: each must be all, v2c, snmp-off or defaults")

    with tempfile.TemporaryDirectory(prefix="normagent-bench-") as tmp:
        workdir = Path(tmp)
        exporters: list[Exporter] = []
        snmpd = None
        try:
            snmp_target = None
            if "all" in variants or "v2c" in variants:
                sys.path.insert(0, str(REPO))
                from tests.support.snmpd import start_snmpd

                snmpd = start_snmpd(workdir / "snmpd")
                snmp_target = snmpd.target
            trees: list[tuple[str, Path | None]] = [("after" if args.baseline else "normagent", None)]
            if args.baseline:
                trees.append((f"before {args.baseline}", unpack_revision(args.baseline, workdir / "baseline")))
            compile_as_installed(REPO / "normagent", REPO / "plugins", *(tree for _, tree in trees if tree is not None))
            for variant in variants:
                for label, tree in trees:
                    home = workdir / f"{label.split()[0]}-{variant}"
                    home.mkdir()
                    extra = "" if variant == "defaults" else source_config(
                        home, snmp_target if variant in ("all", "v2c") else None, "2c" if variant == "v2c" else "3")
                    name = label if len(variants) == 1 else f"{label} [{variant}]"
                    exporters.append(start_normagent(home, home / "normagent.log", extra, forwarders=not args.no_forwarders,
                                                     name=name, source_tree=tree))
            exporters.append(start_node_exporter(workdir / "node_exporter.log"))
            print(f"warm-up {args.warmup:g}s …", flush=True)
            time.sleep(args.warmup)
            for e in exporters:
                e.scrape()  # first page render outside the measurement
                e.rss["warm"] = e.process.memory_info().rss
            print(f"{args.scrapes} scrapes each, alternating in blocks of {BLOCK} …", flush=True)
            for start in range(0, args.scrapes, BLOCK):
                for e in exporters:
                    e.latencies.extend(e.scrape() for _ in range(min(BLOCK, args.scrapes - start)))
            for e in exporters:
                e.rss["scraped"] = e.process.memory_info().rss
            print(f"{args.minutes:g} idle minutes …", flush=True)
            before = {e.name: e.cpu_seconds() for e in exporters}
            started = time.monotonic()
            time.sleep(args.minutes * 60)
            wall = time.monotonic() - started
            for e in exporters:
                e.cpu_percent = 100 * (e.cpu_seconds() - before[e.name]) / wall
                e.rss["end"] = e.process.memory_info().rss
            for e in exporters:
                if e.popen.poll() is not None:
                    raise SystemExit(f"{e.name} died during the benchmark: see {workdir}")
        finally:
            for e in exporters:
                e.stop()
            if snmpd is not None:
                snmpd.close()
        result = report(exporters, args)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"idle-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
