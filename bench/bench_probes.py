"""200 availability probes every 30 s: the cost of a cycle and the agent's CPU share.

    .venv/bin/python bench/bench_probes.py               # 10 minutes (20 cycles)
    .venv/bin/python bench/bench_probes.py --minutes 3   # a quicker look

Starts ``normagent run`` with only the availability plugin (the other builtins disabled, so the
CPU is the probes'), 200 services on 127.0.0.1 and a maintenance calendar (an iCalendar file with
a weekly RRULE): 120 HTTP probes of a plain-HTTP server (Python's ``http.server`` in its own
process, so its CPU is not the agent's), 20 HTTPS-less HTTP probes with a body match, 30 TCP
connects, 10 DNS look-ups of ``localhost``, 10 refused TCP ports (down all along: outage
accounting each cycle) and 10 ``process`` probes. After one warm-up cycle it reads, every cycle,
the agent's own ``normagent_collector_duration_seconds{collector="availability.probes"}`` and
at the end the agent's CPU time (children included) over the measured minutes, as a percentage
of one core. Target (issue 13): under 2 % of one core. JSON goes to bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
INTERVAL = 30.0

ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//normagent bench//probes//NO\r
BEGIN:VEVENT\r
UID:weekly@bench\r
DTSTART;TZID=Europe/Oslo:20260106T220000\r
DTEND;TZID=Europe/Oslo:20260107T020000\r
SUMMARY:Patching\r
RRULE:FREQ=WEEKLY;BYDAY=TU\r
END:VEVENT\r
END:VCALENDAR\r
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def services(http_port: int, refused: list[int]) -> str:
    out = []

    def add(name: str, kind: str, target: str, extra: str = "") -> None:
        out.append(f'[[collectors."availability.probes".services]]\nname = "{name}"\nkind = "{kind}"\ntarget = "{target}"\n'
                   f'timeout = "2s"\n{extra}')

    for i in range(120):
        add(f"http-{i}", "http", f"http://127.0.0.1:{http_port}/health.txt")
    for i in range(20):
        add(f"body-{i}", "http", f"http://127.0.0.1:{http_port}/health.txt", 'body_match = "status: ok"\n')
    for i in range(30):
        add(f"tcp-{i}", "tcp", f"127.0.0.1:{http_port}")
    for i in range(10):
        add(f"dns-{i}", "dns", "localhost")
    for i, port in enumerate(refused):
        add(f"down-{i}", "tcp", f"127.0.0.1:{port}", 'tags = ["network"]\n')
    for i in range(10):
        add(f"proc-{i}", "process", "python3")
    return "\n".join(out)


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith('normagent_collector_duration_seconds{collector="availability.probes"}'):
            found["duration"] = float(line.rsplit(" ", 1)[1])
        if line.startswith("normagent_service_up{"):
            found["up_series"] = found.get("up_series", 0) + 1
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-probes-"))
    (work / "www").mkdir()
    (work / "www" / "health.txt").write_text("status: ok\n")
    (work / "maintenance.ics").write_text(ICS)
    http_port, agent_port = free_port(), free_port()
    refused = [free_port() for _ in range(10)]
    config = work / "normagent.toml"
    config.write_text(
        f'[agent]\nstate_dir = "{work / "state"}"\nlog_level = "warning"\n\n'
        f'[plugins]\ndisable = ["system", "access", "edi"]\nentry_points = false\n\n'
        f'[web]\nlisten = "127.0.0.1:{agent_port}"\n\n'
        f'[maintenance]\ncalendar = "{work / "maintenance.ics"}"\n\n'
        f'[collectors."availability.probes"]\ninterval = "30s"\n\n' + services(http_port, refused)
    )
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(work / "www"),
                               str(http_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent = subprocess.Popen([str(REPO / ".venv" / "bin" / "normagent"), "run", "--config", str(config)],
                             stdout=subprocess.DEVNULL, stderr=open(work / "agent.log", "w"))
    try:
        proc = psutil.Process(agent.pid)
        deadline = time.monotonic() + 60
        while "duration" not in _try_scrape(agent_port):  # the first cycle has run
            if time.monotonic() > deadline or agent.poll() is not None:
                print((work / "agent.log").read_text(), file=sys.stderr)
                return 1
            time.sleep(1)
        time.sleep(INTERVAL)  # warm-up: a second cycle (imports, calendar expansion) before measuring
        cpu0 = _cpu(proc)
        start = time.monotonic()
        durations = []
        while time.monotonic() - start < args.minutes * 60:
            time.sleep(INTERVAL)
            found = _try_scrape(agent_port)
            if "duration" in found:
                durations.append(found["duration"])
        elapsed = time.monotonic() - start
        cpu = _cpu(proc) - cpu0
        rss = proc.memory_info().rss / 2**20
        up_series = _try_scrape(agent_port).get("up_series", 0)
    finally:
        for p in (agent, server):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
    result = {
        "when": datetime.now(timezone.utc).isoformat(),
        "services": 200,
        "service_up_series": up_series,
        "minutes": round(elapsed / 60, 2),
        "cycles": len(durations),
        "cycle_seconds_p50": round(statistics.median(durations), 3) if durations else None,
        "cycle_seconds_max": round(max(durations), 3) if durations else None,
        "cpu_seconds": round(cpu, 2),
        "cpu_percent_of_one_core": round(100 * cpu / elapsed, 3),
        "cpu_seconds_per_cycle": round(cpu / max(1, elapsed / INTERVAL), 3),
        "rss_mb": round(rss, 1),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / f"probes-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json").write_text(json.dumps(result, indent=2))
    return 0


def _try_scrape(port: int) -> dict[str, float]:
    try:
        return scrape(port)
    except OSError:
        return {}


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


if __name__ == "__main__":
    raise SystemExit(main())
