"""CPU of one idle SNMP poll, as ``network.snmp`` makes it, in a fresh interpreter per revision.

    .venv/bin/python bench/bench_snmp_cpu.py --baseline main --polls 200 --repeat 5

A real snmpd (tests.support.snmpd, on 127.0.0.1: ``lo`` and the host's interfaces) is polled by
``poll_device`` with the agent's lazy client, ``interfaces = ["*"]`` and one extra OID, once as an
SNMPv2c device and once as an SNMPv3 authPriv (SHA/AES) one: 5 polls to warm up (SNMPv3's
discovery, the walk's learned length), then ``--polls`` polls; the figure is the process's CPU
time (the caller's thread and the client's loop thread) per poll, in ms. ``--baseline REV`` runs
the same on that revision's sources (``git archive``), in turn, ``--repeat`` times; medians. The
interpreter runs as the service does (``PYTHONOPTIMIZE=2``). Exits non-zero when a poll fails.
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

MEASURE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from datetime import timedelta
import structlog
from normagent.clock import SystemClock
from normagent.plugins.network.collectors import Device, poll_device
from normagent.sources.snmp_lazy import LazySnmpClient
import normagent.plugins.network.collectors as collectors, normagent.sources.snmp as snmp
assert collectors.__file__.startswith(sys.argv[1]) and snmp.__file__.startswith(sys.argv[1]), (collectors.__file__, snmp.__file__)
target, version, polls = sys.argv[2], sys.argv[3], int(sys.argv[4])
if version == "3":
    device = Device(name="bench", target=target, version="3", user="normagent", auth_key="auth-passphrase-1",
                    priv_key="priv-passphrase-2", interfaces=("*",), oids={"interfaces": "1.3.6.1.2.1.2.1.0"})
else:
    device = Device(name="bench", target=target, version="2c", community="public", interfaces=("*",),
                    oids={"interfaces": "1.3.6.1.2.1.2.1.0"})
client, log, clock = LazySnmpClient(), structlog.get_logger(), SystemClock()
for _ in range(5):
    poll = poll_device(client, device, log, clock)
start = time.process_time()
for _ in range(polls):
    poll = poll_device(client, device, log, clock)
    if not poll.ok:
        raise SystemExit(f"poll failed: {poll.reason} {poll.detail}")
cpu = time.process_time() - start
client.close()
print(json.dumps({"ms_per_poll": 1000 * cpu / polls, "interfaces": len(poll.interfaces)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision's sources")
    parser.add_argument("--polls", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.support.snmpd import start_snmpd

    trees = {"this checkout": REPO}  # normagent.plugins from REPO/plugins through the editable install
    env = {**os.environ, "PYTHONOPTIMIZE": "2"}
    with tempfile.TemporaryDirectory(prefix="bench-snmp-cpu-") as tmp:
        if args.baseline:
            # laid out as installed (plugins/ as normagent/plugins), or the editable install's finder
            # would answer for normagent.plugins with this checkout's
            archive = Path(tmp) / "base.tar"
            subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), args.baseline, "normagent", "plugins"], check=True)
            with tarfile.open(archive) as tar:
                tar.extractall(Path(tmp) / "base", filter="data")
            (Path(tmp) / "base" / "plugins").rename(Path(tmp) / "base" / "normagent" / "plugins")
            trees[f"baseline {args.baseline}"] = Path(tmp) / "base"
        agent = start_snmpd(Path(tmp) / "snmpd")
        try:
            runs: dict[tuple[str, str], list[float]] = {(v, n): [] for v in ("2c", "3") for n in trees}
            interfaces = 0
            for _ in range(args.repeat):
                for version in ("2c", "3"):
                    for name, tree in trees.items():
                        out = subprocess.run([sys.executable, "-c", MEASURE, str(tree), agent.target, version, str(args.polls)],
                                             capture_output=True, text=True, env=env, cwd=tmp)
                        if out.returncode != 0:
                            raise SystemExit(f"{name} v{version}: {out.stderr}")
                        result = json.loads(out.stdout.splitlines()[-1])
                        runs[(version, name)].append(result["ms_per_poll"])
                        interfaces = result["interfaces"]
        finally:
            agent.close()
    print(f"CPU per idle poll (ms, process: caller and loop thread), {args.polls} polls, {interfaces} interfaces, "
          f"median of {args.repeat} (all runs in brackets)")
    for (version, name), values in runs.items():
        print(f"  v{version:3s} {name:24s} {statistics.median(values):6.2f}   ({', '.join(f'{v:.2f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
