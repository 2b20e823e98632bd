"""Benchmark of the firewall plugin: log lines/s end to end, and the syslog receiver under load.

1. **netfilter**: a generated kern.log of ufw/iptables LOG lines (``--lines``), read by the
   ``firewall.linux`` collector (files) through the log driver into a real ledger, in a child
   process; the same file through ``LC_ALL=C grep -cE`` with what the reader selects
   (``NETFILTER_GREP``); in turn, medians of ``--runs``.
   With ``--before REV`` the plugin as it was at that git revision runs too, in the same turns
   (same driver and ledger: the plugin's own code is what differs). With ``--before-checkout
   DIR`` the whole of another checkout runs instead (its driver, ledger, plugin and compiled
   modules, with its own ``.venv``: e.g. the main checkout), for changes outside the plugin.
2. **filterlog**: the same for a spool file of pfSense filterlog lines (what the syslog receiver
   writes), read by ``firewall.appliances`` through the spool reader.
3. **receiver**: ``normagent run`` with ``[syslog]``; one sender writes ``--rate`` filterlog
   messages a second over TCP for ``--seconds``; then the blocked counter on /metrics must reach
   the number sent (nothing lost), and the time it took after the last message is printed.

Start-up (interpreter, imports, opening the ledger) is measured apart and taken off the lines/s
("net of start-up"). Every run's counts are checked against the generator's truth: blocked
packets, lines by outcome, and the report rollups (blocked packets by port and by source network,
and how many distinct networks). Prints figures; exits 1 if any count differs from what was
generated or sent. Not part of the test suite.

Usage::

    python bench/bench_firewall.py [--lines 1000000] [--runs 5] [--before REV | --before-checkout DIR] [--rate 20000] [--seconds 60] [--skip-receiver]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, also when loaded from a file by the tests
from daemon_process import DAEMON_PROCESS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# What each reader selects, as ERE: the lines firewall.linux looks at (``_SLOW_MARKS``), and the
# appliance messages it understands (``classify_appliance``).
NETFILTER_GREP = "IN=[^ ]* OUT=|NETFILTER_CFG|Reloaded (firewalld|ufw)"
APPLIANCE_GREP = "filterlog|%(ASA|FTD|PIX|FWSM)-|(logid|devid|log_id|device_id)="

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from datetime import datetime, timezone
from pathlib import Path
if os.environ.get("BENCH_PLUGIN_ROOT"):  # the plugin of another revision, as package "firewall_before"
    sys.path.insert(0, os.environ["BENCH_PLUGIN_ROOT"])
    from firewall_before.collectors import APPLIANCES, LINUX, LinuxSettings
else:
    from normagent.plugins.firewall.collectors import APPLIANCES, LINUX, LinuxSettings
from normagent import Period
from normagent.ledger import Ledger
from normagent.logs import FileSource
from normagent.sources.spool import SPOOL_KEY, SpoolShare
from normagent.testing import FakeClock, run_collector_once
""" + DAEMON_PROCESS + r"""
kind, root, state = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
clock = FakeClock(datetime(2026, 11, 23, 12, tzinfo=timezone.utc))
ledger = Ledger.open(state / "ledger.db", clock=clock)
startup = time.perf_counter() - t0
started, cpu_started = time.perf_counter(), time.process_time()
if kind == "netfilter":
    settings = LinuxSettings(source="files", files=FileSource(paths=("/kern.log",), start_at="beginning", timezone="UTC"))
    run_collector_once(LINUX, ledger, settings=settings, root=root, clock=clock, timeout=3600)
    source = "firewall.linux"
else:
    share = SpoolShare(root, lambda: [ledger.checkpoints("firewall.appliances").get(SPOOL_KEY)])
    run_collector_once(APPLIANCES, ledger, syslog_spool=share, clock=clock, timeout=3600)
    source = "firewall.appliances"
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
lines = {r: ledger.counter_value("normagent_log_lines_total", {"source": source, "result": r}) for r in ("parsed", "ignored", "unparsed")}
period = Period(datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc))
rows = {name: ledger.rollups(name, period) for name in ("firewall.blocked_by_port", "firewall.blocked_by_network")}
print(json.dumps({
    "startup": startup, "elapsed": elapsed, "cpu": cpu, "blocked": ledger.counter_total("normagent_firewall_blocked_total"), "lines": lines,
    "by_port": sum(r.value for r in rows["firewall.blocked_by_port"]),
    "by_network": sum(r.value for r in rows["firewall.blocked_by_network"]),
    "networks": len({r.key for r in rows["firewall.blocked_by_network"]}),
}))
"""


def netfilter_lines(n: int, rng: random.Random) -> tuple[list[str], int, int]:
    """kern.log lines over one day: 90 % ufw/iptables blocks, 5 % [UFW AUDIT] (allowed), 5 %
    other kernel lines; how many are blocks, and from how many /24 networks."""
    lines, blocked, networks = [], 0, set()
    for i in range(n):
        sec = i * 86400 // n
        stamp = f"Nov 23 {sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d} fw01 kernel: [{i}.{i % 999999:06d}]"
        r = rng.random()
        if r < 0.05:
            lines.append(f"{stamp} usb 1-1: new high-speed USB device number {i % 100} using xhci_hcd\n")
            continue
        prefix = "[UFW AUDIT] " if r < 0.10 else rng.choice(("[UFW BLOCK] ", "IPTABLES-DROPPED: ", "[UFW BLOCK] "))
        blocked += r >= 0.10
        src = f"{rng.choice((45, 89, 185, 193, 203))}.{rng.randrange(256)}.{rng.randrange(8)}.{rng.randrange(1, 255)}"
        if r >= 0.10:
            networks.add(src.rsplit(".", 1)[0])
        proto = rng.choice(("TCP", "TCP", "TCP", "UDP"))
        lines.append(
            f"{stamp} {prefix}IN=eth0 OUT= MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 SRC={src} DST=10.0.0.5 LEN=52 "
            f"TOS=0x00 PREC=0x00 TTL=52 ID={i % 65536} DF PROTO={proto} SPT={rng.randrange(1024, 65535)} "
            f"DPT={rng.choice((22, 23, 80, 443, 445, 3389, 8080))} WINDOW=1024 RES=0x00 SYN URGP=0\n"
        )
    return lines, blocked, len(networks)


def filterlog_lines(n: int, rng: random.Random) -> tuple[list[str], int, int]:
    """Spool lines of pfSense filterlog over one day: 85 % blocks, 15 % passes, from two
    senders; how many are blocks, and from how many /24 networks."""
    lines, blocked, networks = [], 0, set()
    for i in range(n):
        sec = i * 86400 // n
        action = "pass" if rng.random() < 0.15 else "block"
        blocked += action == "block"
        src = f"{rng.choice((45, 89, 185))}.{rng.randrange(256)}.{rng.randrange(8)}.{rng.randrange(1, 255)}"
        if action == "block":
            networks.add(src.rsplit(".", 1)[0])
        proto, pid = rng.choice((("tcp", 6), ("tcp", 6), ("udp", 17)))
        lines.append(
            f"2026-11-23T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.{i % 1000000:06d}Z 192.0.2.{1 + i % 2} "
            f"<134>Nov 23 {sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d} pfsense filterlog[4242]: "
            f"5,,,1000102433,em0,match,{action},in,4,0x0,,64,{i % 65536},0,none,{pid},{proto},60,{src},10.0.0.5,"
            f"{rng.randrange(1024, 65535)},{rng.choice((22, 443, 3389, 53))},0\n"
        )
    return lines, blocked, len(networks)


def gen_netfilter(path: Path, n: int, rng: random.Random) -> tuple[int, int]:
    """Write ``netfilter_lines`` to ``path``; return how many are blocks, from how many networks."""
    lines, blocked, networks = netfilter_lines(n, rng)
    path.write_text("".join(lines))
    return blocked, networks


def gen_filterlog(path: Path, n: int, rng: random.Random) -> tuple[int, int]:
    """Write ``filterlog_lines`` to ``path``; return how many are blocks, from how many networks."""
    lines, blocked, networks = filterlog_lines(n, rng)
    path.write_text("".join(lines))
    return blocked, networks


def run_child(kind: str, root: Path, plugin_root: Path | None, checkout: Path | None = None) -> dict:  # type: ignore[type-arg]
    """One run of the child: this checkout, its plugin of ``plugin_root`` (``--before``), or the
    whole of ``checkout`` with its own interpreter (``--before-checkout``)."""
    env = {**os.environ, "BENCH_PLUGIN_ROOT": str(plugin_root) if plugin_root else ""}
    python, cwd = (str(checkout / ".venv" / "bin" / "python"), checkout) if checkout else (sys.executable, ROOT)
    with tempfile.TemporaryDirectory() as state:
        done = subprocess.run([python, "-c", CHILD, kind, str(root), state], capture_output=True, text=True, cwd=cwd, env=env, check=False)
    if done.returncode:
        sys.exit(f"{kind} run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def grep(path: Path, pattern: str) -> tuple[int, float, float]:
    """``LC_ALL=C grep -cE pattern path``: matches, wall seconds, CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(["grep", "-cE", pattern, str(path)], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return int(done.stdout.strip() or 0), wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def files_bench(
    kind: str, root: Path, file: Path, lines: int, truth: tuple[int, int], runs: int, pattern: str, before: Path | None, rev: str,
    checkout: Path | None = None,
) -> bool:
    """Run each variant and grep in turn, ``runs`` times; print medians and check every count."""
    blocked, networks = truth
    variants: list[tuple[str, Path | None, Path | None]] = [("now", None, None)]
    if before:
        variants.insert(0, (f"before ({rev})", before, None))
    if checkout:
        variants.insert(0, (f"before ({checkout})", None, checkout))
    reports: dict[str, list[dict]] = {name: [] for name, _, _ in variants}  # type: ignore[type-arg]
    greps = []
    for _ in range(runs):
        for name, plugin_root, tree in variants:
            reports[name].append(run_child(kind, root, plugin_root, tree))
        greps.append(grep(file, pattern))
    g = statistics.median(t for _, t, _ in greps)
    g_cpu = statistics.median(c for _, _, c in greps)
    print(f"\n{kind}: {lines:,} lines, {file.stat().st_size / 2**20:.0f} MiB, {blocked:,} blocked from {networks:,} /24 networks (truth)")
    print(f"  LC_ALL=C grep -cE '{pattern}': median {g:.3f} s = {lines / g:,.0f} lines/s, CPU {g_cpu:.3f} s ({greps[0][0]:,} matches; "
          f"best {min(t for _, t, _ in greps):.3f} s, worst {max(t for _, t, _ in greps):.3f} s)")
    ok = True
    for name, _, _ in variants:
        rs = reports[name]
        good = all(
            r["blocked"] == blocked and sum(r["lines"].values()) == lines and r["lines"]["unparsed"] == 0
            and r["lines"]["parsed"] == blocked and r["by_port"] == blocked and r["by_network"] == blocked and r["networks"] == networks
            for r in rs
        )
        ok &= good
        net = statistics.median(r["elapsed"] for r in rs)
        cpu = statistics.median(r["cpu"] for r in rs)
        startup = statistics.median(r["startup"] for r in rs)
        print(f"  normagent {name}, {runs} runs: median {net:.3f} s net of start-up ({startup:.2f} s) = {lines / net:,.0f} lines/s "
              f"(best {min(r['elapsed'] for r in rs):.3f} s, worst {max(r['elapsed'] for r in rs):.3f} s); {net / g:.1f}x grep's time")
        print(f"    CPU: median {cpu:.3f} s = {lines / cpu:,.0f} lines/s per CPU second; {cpu / g_cpu:.1f}x grep's CPU time")
        r = rs[0]
        print(f"    counts equal the truth in every run: {'yes' if good else 'NO'} ({r['blocked']:,.0f} blocked, lines {r['lines']}, "
              f"by port {r['by_port']:,.0f}, by network {r['by_network']:,.0f} in {r['networks']:,} rows' networks)")
    return ok


def scrape_blocked(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("normagent_firewall_blocked_total{"))


def receiver_bench(rate: int, seconds: int) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        ports = []
        for kind in (socket.SOCK_STREAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        web, tcp = ports
        config = Path(tmp) / "n.toml"
        config.write_text(
            f'[agent]\nstate_dir = "{tmp}/state"\nlog_format = "json"\n[plugins]\ndisable = ["system", "access", "edi"]\n'
            f'entry_points = false\n[web]\nlisten = "127.0.0.1:{web}"\n[syslog]\nudp_listen = ""\ntcp_listen = "127.0.0.1:{tcp}"\n'
            f'[collectors."firewall.linux"]\nenabled = false\n[collectors."firewall.appliances"]\ninterval = "1s"\n'
        )
        agent = subprocess.Popen([sys.executable, "-m", "normagent", "run", "--config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while scrape_blocked(web) < 0:
                if time.monotonic() > deadline:
                    sys.exit("the agent did not start")
                time.sleep(0.1)
            line = b"<134>Nov 23 07:25:53 fw01 filterlog[1]: 5,,,1000102433,em0,match,block,in,4,0x0,,64,1,0,none,6,tcp,60,198.51.100.7,10.0.0.5,51514,443,0\n"
            sent = 0
            tick = 0.01
            per_tick = rate * tick
            with socket.create_connection(("127.0.0.1", tcp)) as sock:
                started = time.monotonic()
                while (now := time.monotonic()) - started < seconds:
                    due = int((now - started) / tick * per_tick) + int(per_tick)
                    if due > sent:
                        sock.sendall(line * (due - sent))
                        sent = due
                    time.sleep(max(0.0, tick - (time.monotonic() - now)))
                sent_for = time.monotonic() - started
            finished = time.monotonic()
            got = 0.0
            while time.monotonic() - finished < 120:
                got = scrape_blocked(web)
                if got >= sent:
                    break
                time.sleep(0.2)
            lag = time.monotonic() - finished
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=60)
        finally:
            if agent.poll() is None:
                agent.kill()
    ok = got == sent
    print(f"\nreceiver: {sent:,} messages over TCP in {sent_for:.1f} s = {sent / sent_for:,.0f}/s (asked {rate:,}/s for {seconds} s)")
    print(f"  counted on /metrics: {got:,.0f} ({'nothing lost' if ok else 'DIFFERS'}), {lag:.1f} s after the last one was sent")
    return ok


def plugin_at(rev: str, into: Path) -> Path:
    """The firewall plugin's files at git revision ``rev``, as package ``firewall_before`` under
    ``into`` (a name of its own: ``plugins`` would be this checkout's)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "plugins/firewall"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    (into / "plugins" / "firewall").rename(into / "firewall_before")
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", metavar="REV", help="also run the firewall plugin of this git revision, in turn")
    parser.add_argument("--before-checkout", metavar="DIR", type=Path, help="also run the whole of this checkout (its .venv), in turn")
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--skip-receiver", action="store_true")
    parser.add_argument("--only", choices=("netfilter", "filterlog"), help="run one of the two file benchmarks")
    args = parser.parse_args(argv)
    rng = random.Random(1)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        before = plugin_at(args.before, Path(tmp)) if args.before else None
        net_root = Path(tmp) / "net"
        net_root.mkdir()
        truth = gen_netfilter(net_root / "kern.log", args.lines, rng)
        if args.only in (None, "netfilter"):
            ok &= files_bench(
                "netfilter", net_root, net_root / "kern.log", args.lines, truth, args.runs, NETFILTER_GREP, before, args.before, args.before_checkout
            )
        spool = Path(tmp) / "spool"
        spool.mkdir()
        truth = gen_filterlog(spool / "syslog.log", args.lines, rng)
        if args.only in (None, "filterlog"):
            # The spool reader removes nothing from the current file: every run reads it all again.
            ok &= files_bench(
                "filterlog", spool, spool / "syslog.log", args.lines, truth, args.runs, APPLIANCE_GREP, before, args.before, args.before_checkout
            )
    if not args.skip_receiver:
        ok &= receiver_bench(args.rate, args.seconds)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
