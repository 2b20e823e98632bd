"""Benchmark: a 500 MB dpkg.log read from its start by ``updates.apt`` (and ``changes.packages``),
against ``grep -c``.

Writes a dpkg.log of ``--mb`` megabytes in the shape real ones have: apt runs (``startup archives
unpack``, ``upgrade``, five ``status`` lines per package, ``startup packages configure``,
``configure``, ``status installed``) and, one run in twenty, a ``dpkg -i`` run whose update
succeeds or (one in five of those) fails in its postinst. The generator keeps the ground truth.

Then measures, page cache warm for everyone, each in a child process that reports its peak RSS:

* ``LC_ALL=C grep -c ' upgrade '`` over the file: the yardstick (it only counts lines);
* ``updates.apt`` over the file from its start (``start_at = "beginning"``), through the log
  driver into a real ledger (SQLite WAL, ``synchronous=FULL``): it must find exactly the dpkg -i
  updates of the truth, by result, and pass over apt's runs;
* ``changes.packages`` over the same file: every install/upgrade/remove line, into a ledger.

Usage::

    python bench/bench_updates.py [--mb 500] [--dir /tmp] [--keep]

Prints the figures; exits 1 if a count differs from the truth. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CHILD = r"""
import json, resource, sys, time
from datetime import datetime, timezone
from pathlib import Path
from normagent import FileSource
from normagent.ledger import Ledger
from normagent.testing import FakeClock, recorded_command, run_collector_once

which, root, state = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
clock = FakeClock(datetime(2027, 1, 1, tzinfo=timezone.utc))  # after every line: quiet runs settle
files = FileSource(paths=("/var/log/dpkg.log",), start_at="beginning")
if which == "updates":
    from normagent.plugins.updates.collectors import APT as SPEC
    from normagent.plugins.updates.settings import AptSettings
    settings = AptSettings(files=files)
else:
    from normagent.plugins.changes.collectors import PACKAGES as SPEC
    from normagent.plugins.changes.settings import PackageChangeSettings
    settings = PackageChangeSettings(files=files)
with Ledger.open(state / f"{which}.db", clock=clock) as ledger:
    started = time.perf_counter()
    batches = run_collector_once(SPEC, ledger, settings=settings, root=root, clock=clock, timeout=7200, run_command=recorded_command({}))
    elapsed = time.perf_counter() - started
    snap = ledger.snapshot()
    counts = {}
    for metric in ("normagent_updates_applied_total", "normagent_package_changes_total"):
        for labels, value in snap.values(metric).items():
            if value:
                counts[metric + json.dumps(dict(labels), sort_keys=True)] = value
    lines = {r: ledger.counter_value("normagent_log_lines_total", {"source": SPEC.name, "result": r}) for r in ("parsed", "ignored", "unparsed")}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"elapsed": elapsed, "batches": len(batches), "counts": counts, "lines": lines, "peak_mb": peak}))
"""


def generate(path: Path, megabytes: int) -> dict[str, object]:
    """A dpkg.log of about ``megabytes`` MB and its truth."""
    truth = {"lines": 0, "success": 0, "failure": 0, "install": 0, "upgrade": 0, "remove": 0}
    target = megabytes * 1_000_000
    written = 0
    run = 0
    with path.open("w", buffering=16 * 2**20) as out:
        while written < target:
            parts: list[str] = []
            for _ in range(200):
                run += 1
                day = 1 + run // 40000 % 28
                stamp = f"2026-{1 + run // 1_000_000 % 12:02d}-{day:02d} {run // 3600 % 24:02d}:{run // 60 % 60:02d}:{run % 60:02d}"
                if run % 20 == 0:
                    name, fails = f"vendor{run}:amd64", run % 100 == 0
                    parts.append(f"{stamp} startup archives install\n{stamp} upgrade {name} 1.0-{run} 1.1-{run}\n")
                    parts.append(f"{stamp} status half-configured {name} 1.0-{run}\n{stamp} status unpacked {name} 1.0-{run}\n")
                    parts.append(f"{stamp} status half-installed {name} 1.0-{run}\n{stamp} status unpacked {name} 1.1-{run}\n")
                    parts.append(f"{stamp} configure {name} 1.1-{run} 1.1-{run}\n{stamp} status half-configured {name} 1.1-{run}\n")
                    truth["lines"] += 8
                    truth["upgrade"] += 1
                    if fails:
                        truth["failure"] += 1
                    else:
                        parts.append(f"{stamp} status installed {name} 1.1-{run}\n")
                        truth["lines"] += 1
                        truth["success"] += 1
                    continue
                parts.append(f"{stamp} startup archives unpack\n")
                truth["lines"] += 1
                # a pool of 3,000 package names, as a host's packages are upgraded again and again
                packages = [f"lib{(run * 7 + n) % 3000}:amd64" for n in range(1 + run % 7)]
                for name in packages:
                    parts.append(f"{stamp} upgrade {name} 2.0-{run} 2.1-{run}\n")
                    for state, version in (("half-configured", "2.0"), ("unpacked", "2.0"), ("half-installed", "2.0"), ("unpacked", "2.1")):
                        parts.append(f"{stamp} status {state} {name} {version}-{run}\n")
                    truth["lines"] += 5
                    truth["upgrade"] += 1
                if run % 9 == 0:
                    parts.append(f"{stamp} install new{run % 500}:all <none> 1.0\n{stamp} status installed new{run % 500}:all 1.0\n")
                    truth["lines"] += 2
                    truth["install"] += 1
                if run % 13 == 0:
                    parts.append(f"{stamp} remove old{run % 500}:all 1.0 <none>\n{stamp} status not-installed old{run % 500}:all <none>\n")
                    truth["lines"] += 2
                    truth["remove"] += 1
                parts.append(f"{stamp} startup packages configure\n")
                truth["lines"] += 1
                for name in packages:
                    parts.append(f"{stamp} configure {name} 2.1-{run} <none>\n{stamp} status half-configured {name} 2.1-{run}\n")
                    parts.append(f"{stamp} status installed {name} 2.1-{run}\n")
                    truth["lines"] += 3
            chunk = "".join(parts)
            out.write(chunk)
            written += len(chunk)
    truth["bytes"] = path.stat().st_size
    return truth


def child(which: str, root: Path, state: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", CHILD, which, str(root), str(state)], capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--keep", action="store_true", help="keep the generated log")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="normagent-bench-updates-", dir=args.dir))
    try:
        (work / "root/var/log").mkdir(parents=True)
        log = work / "root/var/log/dpkg.log"
        started = time.perf_counter()
        truth = generate(log, args.mb)
        print(f"generated {truth['bytes'] / 1e6:,.0f} MB, {truth['lines']:,} lines in {time.perf_counter() - started:.1f} s")
        subprocess.run(["cat", str(log)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
        grep_times = []
        for _ in range(3):
            started = time.perf_counter()
            grep = subprocess.run(["grep", "-c", " upgrade ", str(log)], capture_output=True, text=True, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
            grep_times.append(time.perf_counter() - started)
        grep_time = min(grep_times)
        lines = int(truth["lines"])  # type: ignore[call-overload]
        print(f"grep -c ' upgrade ': {int(grep.stdout):,} lines matched, {grep_time:.2f} s, {lines / grep_time / 1e6:.1f} M lines/s")
        ok = True
        for which in ("updates", "changes"):
            result = child(which, work / "root", work)
            elapsed = float(result["elapsed"])  # type: ignore[arg-type]
            counted = result["counts"]
            seen = sum(result["lines"].values())  # type: ignore[union-attr]
            print(
                f"{which + '.':<9} {elapsed:.2f} s, {lines / elapsed / 1e6:.1f} M lines/s ({elapsed / grep_time:.1f}x grep), "
                f"{result['batches']} batches, peak RSS {float(result['peak_mb']):.0f} MB, lines {int(seen):,}"  # type: ignore[arg-type]
            )
            if which == "updates":
                expected = {
                    'normagent_updates_applied_total{"kind": "other", "result": "success"}': truth["success"],
                    'normagent_updates_applied_total{"kind": "other", "result": "failure"}': truth["failure"],
                }
            else:
                expected = {
                    'normagent_package_changes_total{"action": "install", "planned": "false"}': truth["install"],
                    'normagent_package_changes_total{"action": "upgrade", "planned": "false"}': truth["upgrade"],
                    'normagent_package_changes_total{"action": "remove", "planned": "false"}': truth["remove"],
                }
            if counted != expected or seen != lines:
                ok = False
                print(f"  MISMATCH: counted {counted}, expected {expected}; lines {seen} vs {lines}")
            else:
                print(f"  counts equal the truth: {json.dumps(expected)}")
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
