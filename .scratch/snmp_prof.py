"""CPU of one SNMPv3 poll (network.snmp, interfaces *) on a kept engine, against a real snmpd."""
import cProfile, pstats, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from normagent.clock import SystemClock
from normagent.ledger import MemoryCheckpoints
from normagent.plugins.network.collectors import SNMP, Device, SnmpSettings
from normagent.sources.snmp_lazy import LazySnmpClient
from normagent.testing import run_collector_once
from tests.support.snmpd import V3_AUTH_KEY, V3_PRIV_KEY, V3_USER, start_snmpd

work = Path(tempfile.mkdtemp(prefix="snmpprof-"))
snmpd = start_snmpd(work / "snmpd")
device = Device(name="bench", target=snmpd.target, version="3", user=V3_USER, auth_key=V3_AUTH_KEY, priv_key=V3_PRIV_KEY, interfaces=("*",))
import os
client = LazySnmpClient(max_repetitions=int(os.environ.get("REPS", "25")))
state = MemoryCheckpoints()
settings = SnmpSettings(devices=(device,))
def poll():
    run_collector_once(SNMP, settings=settings, snmp=client, clock=SystemClock(), state=state)
for _ in range(3):
    poll()
n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
if "--prof" in sys.argv:
    import threading
    prof = cProfile.Profile()
    # profile the loop thread too: pysnmp runs there
    threading.setprofile(None)
    import asyncio
    loop = client._client._loop if hasattr(client, "_client") else None
    prof.enable()
    for _ in range(n): poll()
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
else:
    xs = []
    for _ in range(n):
        t0 = time.process_time(); poll(); xs.append(time.process_time() - t0)
    xs.sort()
    print(f"polls {n}: cpu per poll median {xs[n//2]*1000:.2f} ms, min {xs[0]*1000:.2f} ms")
client.close(); snmpd.close()
