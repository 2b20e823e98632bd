"""What SNMP costs the agent's resident memory, step by step, in a fresh interpreter.

    .venv/bin/python bench/bench_snmp_memory.py                      # this checkout
    .venv/bin/python bench/bench_snmp_memory.py --baseline main      # and main's sources, in turn

A fresh interpreter with the service's environment (``PYTHONOPTIMIZE=2``, two malloc arenas as
``normagent run`` sets them) first imports what every agent has anyway (structlog, sqlite3, ctypes,
the thread pools…; since 2026-12-07 neither asyncio, ssl nor hashlib, which SNMPv3 brings), then, measuring RSS (``/proc/self/smaps_rollup``, after a
collection and ``malloc_trim``) after each step: pyasn1, ``normagent.sources.snmp`` (what every
SNMP site loads), then, plan "v3": the first SNMPv3 authPriv (SHA/AES) poll of a real snmpd (what
SNMPv3 imports and makes: pysnmp's USM services and pycryptodomex's AES; earlier pysnmp's
privacy services and cryptography, and before that an
``SnmpEngine`` and its MIB modules), 20 more polls,
the first SNMPv2c poll and nine more v3 devices; plan "v2c" (a site with only v2c devices): the
first v2c poll and 20 more; plan "v1" (a site with SNMPv1 devices): the first v1 poll, 20 more and
nine more v1 devices. All end with nine more v2c devices. The client keeps an engine per
device (a device is its target, credentials and timeout; the devices here differ by timeout).
Whether ``cryptography`` was imported is reported. ``--baseline REV`` runs the same in another
interpreter on that revision's sources (``git archive``), in turn, ``--repeat`` times; medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

AGENT_MODULES = (
    "json sqlite3 ctypes threading ipaddress weakref subprocess zoneinfo selectors "
    "concurrent.futures.thread structlog psutil"
).split()

MEASURE = r"""
import ctypes, gc, json, os, sys, threading
sys.path.insert(0, sys.argv[1])
target = sys.argv[2]
libc = ctypes.CDLL(None)
libc.mallopt(-8, 2)  # M_ARENA_MAX, as normagent.memory does before the first thread
steps = []
def rss():
    with open("/proc/self/smaps_rollup") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("Rss:")) / 1024
def step(name):
    gc.collect(); libc.malloc_trim(0); steps.append((name, round(rss(), 2)))
step("interpreter")
for m in MODULES:
    __import__(m)
step("what every agent imports")
import pyasn1.type.univ, pyasn1.codec.ber.decoder, pyasn1.codec.ber.encoder
step("pyasn1")
from normagent.model import SnmpAuth
from normagent.sources.snmp import PysnmpClient
step("normagent.sources.snmp")
client = PysnmpClient()
v3 = SnmpAuth.v3("normagent", "auth-passphrase-1", "priv-passphrase-2", auth_protocol="SHA", priv_protocol="AES")
v2c = SnmpAuth.v2c("public")
def poll(auth, timeout=2.0):
    with client.session(target, auth=auth, timeout=timeout) as s:
        s.get(["1.3.6.1.2.1.1.3.0"]); s.walk("1.3.6.1.2.1.2.2.1")
def first_and_20_more(auth, first, more):
    poll(auth)
    step(first)
    for _ in range(20):
        poll(auth)
    step(more)
def nine_more(auth, name):
    for n in range(1, 10):
        poll(auth, 2 + n / 10)
    step(name)
if PLAN == "v3":
    first_and_20_more(v3, "first SNMPv3 authPriv poll (SHA/AES)", "20 more v3 polls")
    poll(v2c)
    step("first SNMPv2c poll")
    nine_more(v3, "9 more v3 devices")
elif PLAN == "v1":
    v1 = SnmpAuth(version="1", community="public")
    first_and_20_more(v1, "first SNMPv1 poll", "20 more v1 polls")
    nine_more(v1, "9 more v1 devices")
else:
    first_and_20_more(v2c, "first SNMPv2c poll (no v3 device)", "20 more v2c polls")
nine_more(v2c, "9 more v2c devices")
client.close()
engine_modules = sorted(m for m in sys.modules if m.startswith(("pysnmp.entity", "pysnmp.hlapi", "pysnmp.smi.builder", "pysnmp.smi.view")))
print(json.dumps({"steps": steps, "threads": threading.active_count(), "engine_modules": len(engine_modules),
                  "cryptography": "cryptography" in sys.modules and sys.modules["cryptography"] is not None}))
"""


def serve_snmpd() -> None:
    """Child: a real snmpd (tests.support.snmpd) until stdin closes; prints its target."""
    sys.path.insert(0, str(REPO))
    from tests.support.snmpd import start_snmpd

    with tempfile.TemporaryDirectory(prefix="bench-snmpd-") as work:
        agent = start_snmpd(Path(work))
        print(agent.target, flush=True)
        sys.stdin.read()
        agent.close()


def measure(tree: Path, target: str, plan: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONOPTIMIZE": "2"}
    env.pop("MALLOC_ARENA_MAX", None)
    code = MEASURE.replace("MODULES", repr(AGENT_MODULES)).replace("PLAN", repr(plan))
    out = subprocess.run([sys.executable, "-c", code, str(tree), target], capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    result: dict[str, object] = json.loads(out.stdout.splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision's sources")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve-snmpd", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_snmpd:
        serve_snmpd()
        return 0
    trees = {"this checkout": REPO}
    with tempfile.TemporaryDirectory(prefix="bench-snmp-mem-") as tmp:
        if args.baseline:
            archive = Path(tmp) / "base.tar"
            subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), args.baseline], check=True)
            with tarfile.open(archive) as tar:
                tar.extractall(Path(tmp) / "base", filter="data")
            trees[f"baseline {args.baseline}"] = Path(tmp) / "base"
        server = subprocess.Popen([sys.executable, __file__, "--serve-snmpd"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            target = server.stdout.readline().strip()
            plans: dict[str, dict[str, list[dict[str, object]]]] = {plan: {name: [] for name in trees} for plan in ("v3", "v2c", "v1")}
            for _ in range(args.repeat):
                for plan, runs in plans.items():
                    for name, tree in trees.items():
                        runs[name].append(measure(tree, target, plan))
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait()
    for plan, runs in plans.items():
        report(plan, runs, args.repeat)
    return 0


def report(plan: str, runs: dict[str, list[dict[str, object]]], repeat: int) -> None:
    names = list(runs)
    first = runs[names[0]][0]
    print(f"\n{plan} first: RSS in MB (median of {repeat}), fresh interpreter, PYTHONOPTIMIZE=2, two malloc arenas")
    print(f"{'step':40s}" + "".join(f"{n:>28s}" for n in names))
    for i, (step, _) in enumerate(first["steps"]):  # type: ignore[arg-type]
        cells = []
        for name in names:
            values = [r["steps"][i][1] for r in runs[name]]  # type: ignore[index]
            before = [r["steps"][i - 1][1] for r in runs[name]] if i else [0.0]  # type: ignore[index]
            cells.append(f"{statistics.median(values):8.1f} ({statistics.median(values) - statistics.median(before):+5.1f})")
        print(f"{step:40s}" + "".join(f"{c:>28s}" for c in cells))
    for name in names:
        print(f"{name}: cryptography imported: {runs[name][0]['cryptography']}; modules of pysnmp's engine, SMI builder/view "
              f"or hlapi: {runs[name][0]['engine_modules']}; threads at the end: {runs[name][0]['threads']}")


if __name__ == "__main__":
    sys.exit(main())
