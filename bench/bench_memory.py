"""Where the idle agent's resident memory goes (issue 15, item 1): modules, heap, libraries, stacks.

    .venv/bin/python bench/bench_memory.py [--sources snmp-off] [--warmup 60]

Runs ``normagent run`` with every builtin plugin, the rules engine and every forwarder (the
configuration of ``bench_idle.py``; ``--sources`` as there) three times, one after the other:

1. under ``-X importtime``, to list the modules it imports in the order they finish importing;
2. as it is, to read ``/proc/<pid>/smaps`` after the warm-up: resident memory by mapping — the
   Python binary and each shared library (file-backed: shared with other processes but counted in
   RSS), thread stacks (the 8 MiB anonymous mappings with a guard page below), the malloc heap and
   arenas, the ledger's files (mapped WAL index) — and the ledger connections' page caches;
3. in process with ``tracemalloc``, to split the Python heap by the line that allocated it.

Then, in a fresh interpreter, it imports the modules of step 1 in that order (children before
their parents, so each costs only itself) and reads RSS after each: the cost per module group.
Prints the tables; JSON goes to bench/out/memory-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_idle  # noqa: E402

REPO = bench_idle.REPO
STACK_SIZE = 8 * 2**20  # glibc's default thread stack (ulimit -s), mapped anonymous with a guard page

GROUP_IMPORTS = r'''
import importlib, json, sys
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
def group(name):
    parts = name.split(".")
    if parts[0] == "normagent":
        if len(parts) > 2 and parts[1] == "plugins":
            return "normagent.plugins." + parts[2]
        if len(parts) > 1 and parts[1] in ("forward", "sources", "rules", "ledger", "web", "cli", "config", "model"):
            return "normagent." + parts[1]
        return "normagent (other)"
    top = parts[0].lstrip("_")
    families = {"ssl": "ssl", "asyncio": "asyncio", "selectors": "socket", "concurrent": "concurrent.futures",
                "socket": "socket", "sqlite3": "sqlite3", "hashlib": "hashlib", "sha512": "hashlib", "blake2": "hashlib",
                "psutil": "psutil", "pluggy": "pluggy", "structlog": "structlog", "logging": "structlog",
                "evtx": "evtx", "email": "email", "smtplib": "email", "pysnmp": "pysnmp", "pyasn1": "pysnmp",
                "cryptography": "pysnmp", "Cryptodome": "pysnmp", "pyexpat": "xml", "xml": "xml", "zoneinfo": "zoneinfo", "tzdata": "zoneinfo"}
    return families.get(top, "other stdlib")
# Importing a submodule runs its package's __init__ first (structlog's imports asyncio, which
# imports ssl): the libraries every agent needs are imported first, one by one, each costing only
# what the ones before it did not already bring; then the rest in the order they finished.
FIRST = ["ssl", "socket", "concurrent.futures", "asyncio", "logging", "hashlib", "sqlite3", "psutil", "pluggy",
         "structlog", "evtx", "email.parser", "smtplib", "xml.parsers.expat", "zoneinfo"]
# Only what the agent imported: the EVTX parser runs in a child process, and smtplib comes with
# the e-mail forwarder's first delivery.
agent = json.load(sys.stdin)
imported = set(agent)
base = rss()
costs, last = {}, base
for name in [f for f in FIRST if f in imported] + agent:
    if name in sys.modules:
        continue
    try:
        importlib.import_module(name)
    except Exception:
        continue
    now = rss()
    costs[group(name)] = costs.get(group(name), 0) + now - last
    last = now
print(json.dumps({"interpreter": base, "groups": costs, "total": last}))
'''

TRACE = r'''
import os, signal, sys, threading, time, tracemalloc
tracemalloc.start(1)
config, out, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
def dump():
    time.sleep(wait)
    snap = tracemalloc.take_snapshot()
    by_file = {}
    for stat in snap.statistics("filename"):
        name = stat.traceback[0].filename
        key = ("code of imported modules" if name.startswith("<frozen importlib") else
               "dataclasses' generated methods" if name.endswith("dataclasses.py") else
               "normagent: " + name.split("/normagent/")[-1].split("/plugins/")[-1] if ("/normagent/" in name or "/plugins/" in name) and "site-packages" not in name else
               "other")
        by_file[key] = by_file.get(key, 0) + stat.size
    lines = [(s.size, str(s.traceback[0])) for s in snap.statistics("lineno")[:15]]
    import json
    with open(out, "w") as f:
        json.dump({"by": by_file, "top_lines": lines}, f)
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=dump, daemon=True).start()
from normagent.cli import main
sys.exit(main(["run", "--config", config]))
'''


# ``normagent run`` with a SIGUSR1 handler that writes, from inside, what /proc cannot tell:
# pymalloc's arenas (``sys._debugmallocstats``, on stderr) and SQLite's own heap (every
# connection's page cache, schema and prepared statements: ``sqlite3_memory_used``).
ALLOCATORS = r'''
import ctypes, os, signal, sys
def allocators(*_):
    path = os.environ["NORMAGENT_BENCH_ALLOCATORS"]
    try:
        lib = ctypes.CDLL("libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        used = lib.sqlite3_memory_used()
    except (OSError, AttributeError):
        used = -1
    with open(path, "w") as f:
        f.write(f"sqlite3_memory_used {used}\n")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    saved = os.dup(2)
    os.dup2(fd, 2)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(fd)
        os.close(saved)
signal.signal(signal.SIGUSR1, allocators)
from normagent.cli import main
sys.exit(main(["run", "--config", sys.argv[1]]))
'''


def allocator_figures(text: str) -> dict[str, int]:
    """pymalloc's arenas and blocks, and SQLite's heap, from what ``ALLOCATORS`` wrote."""
    wanted = {"# arenas allocated current": "pymalloc_arenas", "# bytes in allocated blocks": "pymalloc_bytes_in_use",
              "# bytes in available blocks": "pymalloc_bytes_free_in_used_pools", "sqlite3_memory_used": "sqlite_bytes"}
    found: dict[str, int] = {}
    for line in text.splitlines():
        for prefix, key in wanted.items():
            if line.startswith(prefix):
                found[key] = int(line.rsplit(None, 1)[-1].replace(",", ""))
    return found


def agent_config(home: Path, sources: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    port = bench_idle.free_port()
    extra = "" if sources == "defaults" else bench_idle.source_config(home, None)
    config = home / "normagent.toml"
    config.write_text(f'[agent]\nstate_dir = "{home / "state"}"\n\n[web]\nlisten = "127.0.0.1:{port}"\n'
                      + extra + bench_idle.forwarders_config(home))
    return config


def run_for(command: list[str], seconds: float, stderr: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env.update(bench_idle.service_environment())  # the agent as systemd/normagent.service runs it
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, stdin=subprocess.DEVNULL, env=env)


def stop(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        popen.wait(30)


def smaps(pid: int, state_dir: Path) -> dict[str, Any]:
    """Resident kB by kind of mapping."""
    groups: dict[str, int] = defaultdict(int)
    stacks = 0
    current: dict[str, Any] = {}
    maps: list[dict[str, Any]] = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$", line)
            if head:
                current = {"size": int(head.group(2), 16) - int(head.group(1), 16), "perms": head.group(3),
                           "path": head.group(4).strip(), "rss": 0}
                maps.append(current)
            elif line.startswith("Rss:"):
                current["rss"] = int(line.split()[1])
    for i, m in enumerate(maps):
        path = m["path"]
        if path == "[stack]":
            groups["main thread's stack"] += m["rss"]
        elif path and not path.startswith("["):
            if str(state_dir) in path:
                key = "ledger files (WAL index)"
            else:
                key = "file: " + Path(path).name.split(".cpython")[0]
            groups[key] += m["rss"]
        elif path == "[heap]":
            groups["malloc heap (brk)"] += m["rss"]
        elif m["size"] == STACK_SIZE and i > 0 and maps[i - 1]["perms"].startswith("---"):
            groups["thread stacks"] += m["rss"]
            stacks += 1
        elif path:
            groups[path] += m["rss"]
        else:
            groups["anonymous (malloc arenas, pymalloc, mmapped buffers)"] += m["rss"]
    return {"kB": dict(groups), "thread_stacks": stacks}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", choices=("snmp-off", "defaults"), default="snmp-off")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before measuring (default 60)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args()
    binary = Path(sys.executable).with_name("normagent")
    bench_idle.compile_as_installed(REPO / "normagent", REPO / "plugins")
    result: dict[str, Any] = {"sources": args.sources, "warmup": args.warmup}
    with tempfile.TemporaryDirectory(prefix="normagent-memory-") as tmp:
        root = Path(tmp)
        # 1. the modules, in the order they finish importing
        config = agent_config(root / "a", args.sources)
        log = root / "importtime.log"
        with log.open("wb") as err:
            popen = run_for([sys.executable, "-X", "importtime", str(binary), "run", "--config", str(config)], args.warmup, err)
            time.sleep(args.warmup)
            stop(popen)
        modules = [line.split("|")[2].strip() for line in log.read_text().splitlines()
                   if line.startswith("import time:") and "self [us]" not in line]
        # 2. smaps of the agent as it runs
        config = agent_config(root / "b", args.sources)
        figures = root / "allocators.txt"
        os.environ["NORMAGENT_BENCH_ALLOCATORS"] = str(figures)
        popen = run_for([sys.executable, "-c", ALLOCATORS, str(config)], args.warmup)
        time.sleep(args.warmup)
        popen.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while "Total" not in (figures.read_text() if figures.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.1)
        result["allocators"] = allocator_figures(figures.read_text()) if figures.exists() else {}
        status = {k: v for k, v in (line.split(":", 1) for line in open(f"/proc/{popen.pid}/status")) if k in ("VmRSS", "RssAnon", "RssFile", "Threads")}
        result["status"] = {k: v.strip() for k, v in status.items()}
        result["smaps"] = smaps(popen.pid, root / "b" / "state")
        result["ledger_connections"] = sum(1 for fd in os.listdir(f"/proc/{popen.pid}/fd")
                                           if os.readlink(f"/proc/{popen.pid}/fd/{fd}").endswith(".db"))
        result["ledger_bytes"] = sum(p.stat().st_size for p in (root / "b" / "state").glob("*.db*"))
        stop(popen)
        # 3. the Python heap by allocating line
        config = agent_config(root / "c", args.sources)
        out = root / "trace.json"
        popen = run_for([sys.executable, "-c", TRACE, str(config), str(out), str(args.warmup)], args.warmup)
        popen.wait(args.warmup + 60)
        result["python_heap"] = json.loads(out.read_text())
    # 4. each module group's cost, imported in a fresh interpreter
    done = subprocess.run([sys.executable, "-c", GROUP_IMPORTS], input=json.dumps(modules), capture_output=True, text=True, check=True)
    result["imports"] = json.loads(done.stdout)

    print(f"\nnormagent run, sources {args.sources}, after {args.warmup:g}s: " + ", ".join(f"{k} {v}" for k, v in result["status"].items()))
    print(f"\nby mapping (/proc/pid/smaps), {result['smaps']['thread_stacks']} thread stacks:")
    for key, kb in sorted(result["smaps"]["kB"].items(), key=lambda kv: -kv[1]):
        if kb >= 200:
            print(f"  {kb / 1024:6.1f} MB  {key}")
    print(f"ledger: {result['ledger_connections']} open database descriptors, files {result['ledger_bytes'] / 2**20:.1f} MB")
    a = result["allocators"]
    if a:
        print(f"pymalloc: {a.get('pymalloc_arenas')} arenas of 1 MiB, {a.get('pymalloc_bytes_in_use', 0) / 2**20:.1f} MB in live "
              f"objects, {a.get('pymalloc_bytes_free_in_used_pools', 0) / 2**20:.1f} MB free in used pools; "
              f"SQLite's heap {a.get('sqlite_bytes', 0) / 2**20:.2f} MB")
    imports = result["imports"]
    print(f"\nimports, RSS after each group in a fresh interpreter (interpreter and site {imports['interpreter'] / 1024:.1f} MB,"
          f" all imported {imports['total'] / 1024:.1f} MB):")
    for key, kb in sorted(imports["groups"].items(), key=lambda kv: -kv[1]):
        if kb >= 100:
            print(f"  {kb / 1024:6.2f} MB  {key}")
    print("\nPython heap (tracemalloc) by what allocated it:")
    for key, size in sorted(result["python_heap"]["by"].items(), key=lambda kv: -kv[1])[:20]:
        print(f"  {size / 2**20:6.2f} MB  {key}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"memory-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
