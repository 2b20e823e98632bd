"""Cost of ``normagent demo`` end to end: wall time and peak memory (issue 14: under 60 s).

    .venv/bin/python bench/bench_demo.py                 # 5 demos of 2026-11, medians
    .venv/bin/python bench/bench_demo.py --repeat 3 --month 2026-10

Each repeat runs, in turn and each in a fresh process:

* the demo: ``normagent demo --no-serve --dir <fresh> --month M`` (a month replayed through the real
  collectors, the candidates, the report in HTML, JSON and — with Chromium — PDF);
* its baseline: ``normagent report --month M --format html`` over the ledger that demo left, i.e.
  what one real month's report costs on its own, so the demo's cost reads as a ratio of it.

Each child reports its wall time (command start to end, imports excluded), the replay's own time
(the demo prints it), its own peak RSS (``ru_maxrss`` of the process) and the largest child's
(Chromium, journalctl, systemd-journal-remote: ``RUSAGE_CHILDREN``), and the CPU time of both
(user + system), which a busy machine stretches less than the wall time. Medians and the load average
before and after are printed as one JSON document. Run ``source .cache/debs/env.sh`` first so that
systemd-journal-remote is found (else the journal part of the scenario is skipped, as the demo says).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CHILD = r"""
import io, json, resource, sys, time
from normagent.cli import main
argv = sys.argv[1:]
started = time.monotonic()
out = io.StringIO()
sys.stdout = out
code = main(argv)
wall = time.monotonic() - started
sys.stdout = sys.__stdout__
text = out.getvalue()
print(text)
print("BENCH " + json.dumps({
    "code": code, "wall_s": round(wall, 2),
    "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "children_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    "cpu_s": round(sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                       for f in ("ru_utime", "ru_stime")), 1),
}))
"""


def child(argv: list[str], cwd: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], cwd=cwd, capture_output=True, text=True, timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"bench_demo: {' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(lines[-1][6:])
    replay = re.search(r"collector runs .* in ([\d.]+) s", done.stdout)
    if replay:
        figures["replay_s"] = float(replay.group(1))
    runs = re.search(r"(\d+) collector runs", done.stdout)
    if runs:
        figures["runs"] = int(runs.group(1))
    return figures


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if key in r]
    return round(statistics.median(values), 2) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--month", default="2026-11")
    args = parser.parse_args()
    load_before = os.getloadavg()
    demos: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    try:
        for i in range(args.repeat):
            folder = work / f"demo-{i}"
            demos.append(child(["demo", "--no-serve", "--dir", str(folder), "--month", args.month], work))
            reports.append(child(["report", "--config", str(folder / "normagent.toml"), "--month", args.month,
                                  "--format", "html", "--output", str(work / f"report-{i}.html")], work))
            print(f"repeat {i + 1}: demo {demos[-1]}, report {reports[-1]}", file=sys.stderr, flush=True)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "month": args.month,
        "repeat": args.repeat,
        "chromium": shutil.which("chromium") is not None,
        "journal_remote": shutil.which("systemd-journal-remote") is not None,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "demo": {k: median(demos, k) for k in ("wall_s", "replay_s", "cpu_s", "runs", "rss_mb", "children_rss_mb")},
        "report_html_alone": {k: median(reports, k) for k in ("wall_s", "cpu_s", "rss_mb")},
        "demo_over_report": round(statistics.median(d["wall_s"] / r["wall_s"] for d, r in zip(demos, reports)), 1),
        "runs": {"demo": demos, "report": reports},
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
