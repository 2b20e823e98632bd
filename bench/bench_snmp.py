"""SNMP poll of one device with 50 interfaces: how long ``network.snmp`` takes, v2c and v3.

    sudo .venv/bin/python bench/bench_snmp.py              # as root: it makes a network namespace
    sudo .venv/bin/python bench/bench_snmp.py --polls 20 --pairs 25

The device is a real net-snmp ``snmpd`` (scripts/servers unpacks it) in a network namespace of its
own holding ``--pairs`` veth pairs (25 pairs: 50 interfaces, plus lo), started the way the tests
start it (tests/support/snmpd.py): the benchmark binds a UDP socket on 127.0.0.1 and hands it to
snmpd by socket activation, so snmpd sees only the namespace's interfaces and answers here. The
collector runs as the agent runs it (``run_collector_once`` with the lazy pysnmp client and the
system clock), configured with ``interfaces = ["a*", "b*"]``: each poll is one SNMP session that
walks ifName, then GETs sysUpTime and 8 columns of each of the 50 interfaces (401 variables).

Reported per version: the first poll (pysnmp imported, engine compiled) apart, then min / median /
max of the poll itself (``normagent_snmp_poll_duration_seconds``) and of the whole collector run
(judgement and batch included). Target from issue 12: under 1 s. JSON goes to bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from normagent import Gauge  # noqa: E402
from normagent.clock import SystemClock  # noqa: E402
from normagent.ledger import MemoryCheckpoints  # noqa: E402
from normagent.plugins.network.collectors import SNMP, Device, SnmpSettings  # noqa: E402
from normagent.sources.snmp_lazy import LazySnmpClient  # noqa: E402
from normagent.testing import observations, run_collector_once  # noqa: E402
from tests.support.snmpd import V3_AUTH_KEY, V3_PRIV_KEY, V3_USER, make_namespace, start_snmpd  # noqa: E402


def one_poll(device: Device, client: LazySnmpClient, state: MemoryCheckpoints) -> tuple[float, float, int]:
    """(poll seconds as the collector measured them, whole run seconds, interfaces up)."""
    started = time.perf_counter()
    batches = run_collector_once(SNMP, settings=SnmpSettings(devices=(device,)), snmp=client, clock=SystemClock(), state=state)
    run = time.perf_counter() - started
    obs = observations(batches)
    poll = next(o.value for o in obs if isinstance(o, Gauge) and o.metric == "normagent_snmp_poll_duration_seconds")
    up = sum(1 for o in obs if isinstance(o, Gauge) and o.metric == "normagent_network_interface_up" and o.value == 1)
    if not any(isinstance(o, Gauge) and o.metric == "normagent_snmp_up" and o.value == 1 for o in obs):
        raise SystemExit(f"the poll failed: {obs}")
    return poll, run, up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=25, help="veth pairs in the namespace (default 25: 50 interfaces)")
    parser.add_argument("--polls", type=int, default=10, help="polls per version after the first (default 10)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark makes a network namespace")

    results: dict[str, Any] = {}
    ns = make_namespace(f"na-bench-{os.getpid()}", pairs=args.pairs)
    try:
        with tempfile.TemporaryDirectory(prefix="normagent-bench-snmp-") as tmp:
            agent = start_snmpd(Path(tmp), netns=ns.name)
            try:
                common = {"name": "bench", "target": agent.target, "interfaces": ("a*", "b*"), "max_interfaces": 1000}
                devices = {
                    "v2c": Device(version="2c", community="public", **common),  # type: ignore[arg-type]
                    "v3 SHA+AES": Device(version="3", user=V3_USER, auth_key=V3_AUTH_KEY, priv_key=V3_PRIV_KEY, **common),  # type: ignore[arg-type]
                }
                client = LazySnmpClient()
                for label, device in devices.items():
                    state = MemoryCheckpoints()
                    first = one_poll(device, client, state)
                    polls = [one_poll(device, client, state) for _ in range(args.polls)]
                    poll_s = [p for p, _, _ in polls]
                    run_s = [r for _, r, _ in polls]
                    results[label] = {
                        "interfaces_up": polls[-1][2],
                        "first_poll_s": round(first[0], 3),
                        "poll_s": {"min": round(min(poll_s), 3), "median": round(statistics.median(poll_s), 3), "max": round(max(poll_s), 3)},
                        "run_s": {"min": round(min(run_s), 3), "median": round(statistics.median(run_s), 3), "max": round(max(run_s), 3)},
                    }
            finally:
                agent.close()
    finally:
        ns.close()

    print(f"\nSNMP poll of one device, {2 * args.pairs} interfaces (+lo), {args.polls} polls after the first")
    print(f"{'':14}{'up':>5}{'first':>9}{'poll min':>10}{'median':>9}{'max':>9}{'run median':>12}{'max':>9}")
    for label, r in results.items():
        print(f"{label:14}{r['interfaces_up']:>5}{r['first_poll_s']:>9}{r['poll_s']['min']:>10}{r['poll_s']['median']:>9}"
              f"{r['poll_s']['max']:>9}{r['run_s']['median']:>12}{r['run_s']['max']:>9}")
    met = all(r["run_s"]["max"] < 1.0 for r in results.values())
    print(f"target: every run under 1 s: {'yes' if met else 'NO'}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"snmp-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "interfaces": 2 * args.pairs,
                                "polls": args.polls, "results": results, "target_met": met}, indent=2) + "\n")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
