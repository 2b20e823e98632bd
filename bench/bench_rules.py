"""Cost of one rules cycle over a ledger with 400 days of hourly counts for every default rule.

    .venv/bin/python bench/bench_rules.py                 # 400 days, then 1 day, side by side
    .venv/bin/python bench/bench_rules.py --days 400 --extra-rules 100

The ledger gets, for every counter a default rule watches, ``--series`` label sets with a count in
every hour of ``--days`` days (400 days × 24 h × series rows in counter_hours), every gauge a rule
watches set, and every rollup a rule watches ``--keys`` keys a day over the same days. Then it
measures, best of ``--repeat``:

1. a full evaluation of every default rule (what the timer does every ``evaluate_every``), with
   nothing to change and with every rule's candidates open;
2. one commit of a batch that touches a watched counter and a watched rollup (the evaluation that
   runs inside the commit, plus the commit itself, next to the same commit without rules);
3. the same with ``--extra-rules`` more site rules, to show the cost follows the rules;

and does it all again over a ledger of 1 day, to show it does not follow the history.
Target (issue 10): under 50 ms for one cycle, growing with the rules, not with the history.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from normagent.ledger import Ledger
from normagent.loader import build_plugins
from normagent.model import Batch, Count, Rollup, RuleSpec
from normagent.rules import Engine, EngineSettings, complete
from normagent.testing import FakeClock

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def build(path: Path, days: int, series: int, keys: int, extra: int) -> tuple[Ledger, Engine, list[RuleSpec], dict[str, Any]]:
    plugins = build_plugins(entry_points_enabled=False)
    metrics = plugins.metrics()
    rules = [complete(r, timedelta(minutes=15)) for r in plugins.rules().values()]
    clock = FakeClock(NOW)
    ledger = Ledger.open(path, clock=clock)
    ledger.declare(metrics.values())
    conn = ledger._conn
    hours_now = int(NOW.timestamp() // 3600)
    rows = 0
    conn.execute("BEGIN")
    for rule in rules:
        kind, _, target = rule.watch.partition(":")
        if kind == "rollup":
            for d in range(days):
                day = (NOW - timedelta(days=d)).date().isoformat()
                conn.executemany(
                    "INSERT OR IGNORE INTO rollups (name, day, key, value, first_seen, last_seen) VALUES (?, ?, ?, 1, ?, ?)",
                    [(target, day, f"{k:016x}", NOW.timestamp() - d * 86400, NOW.timestamp() - d * 86400) for k in range(keys)],
                )
                rows += keys
            continue
        spec = metrics.get(rule.watch)
        if spec is None:
            continue
        label_sets = [json.dumps({name: f"{name}{i}" for name in spec.labels}, sort_keys=True, separators=(",", ":")) for i in range(series)]
        if spec.kind == "counter":
            for labels in label_sets:
                conn.execute("INSERT OR IGNORE INTO counters (metric, labels, value, updated_at) VALUES (?, ?, 0, 0)", (spec.name, labels))
                conn.executemany(
                    "INSERT OR IGNORE INTO counter_hours (metric, labels, hour, value) VALUES (?, ?, ?, 1)",
                    [(spec.name, labels, hours_now - h) for h in range(days * 24)],
                )
                rows += days * 24
        else:
            for labels in label_sets:
                conn.execute(
                    "INSERT OR REPLACE INTO gauges (metric, labels, collector, value, updated_at) VALUES (?, ?, 'bench', 0.5, 0)",
                    (spec.name, labels),
                )
    conn.execute("COMMIT")
    if extra:
        counter = next(r for r in rules if r.watch in metrics and metrics[r.watch].kind == "counter" and r.window)
        for i in range(extra):
            rules.append(replace(counter, name=f"site.extra_{i}", threshold=counter.threshold + i + 1, plugin="site"))
    engine = Engine(rules, EngineSettings(host_id=ledger.host_id))
    ledger.use_rules(engine, ["hook"])
    watched_counter = next(r.watch for r in rules if r.watch in metrics and metrics[r.watch].kind == "counter")
    watched_rollup = next(r.watch.partition(":")[2] for r in rules if r.watch.startswith("rollup:"))
    info = {"rules": len(rules), "rows": rows, "counter": watched_counter, "rollup": watched_rollup,
            "labels": metrics[watched_counter].labels}
    return ledger, engine, rules, info


def best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times) * 1000, statistics.median(times) * 1000  # type: ignore[return-value]


def measure(days: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"days": days}
    for extra in (0, args.extra_rules):
        ledger, engine, rules, info = build(workdir / f"ledger-{days}-{extra}.db", days, args.series, args.keys, extra)
        labels = {name: f"{name}0" for name in info["labels"]}
        batch = Batch([Count(info["counter"], labels, 1), Rollup(info["rollup"], NOW.date(), f"{0:016x}", 1, NOW, NOW)])
        ledger.commit("bench", batch)  # warm: candidates that fire are open from here on
        full = best(ledger.evaluate_rules, args.repeat)
        commit = best(lambda: ledger.commit("bench", batch), args.repeat)
        ledger.use_rules(None)
        bare = best(lambda: ledger.commit("bench", batch), args.repeat)
        ledger.use_rules(engine, ["hook"])
        touched = len(engine.rules_watching({info["counter"], f"rollup:{info['rollup']}"}))
        open_candidates = sum(1 for c in ledger.candidates(["firing", "pending"]))
        ledger.close()
        out[f"rules_{len(rules)}"] = {
            "rows": info["rows"], "open_candidates": open_candidates,
            "full_cycle_ms": {"best": round(full[0], 2), "median": round(full[1], 2)},
            "commit_with_rules_ms": {"best": round(commit[0], 2), "median": round(commit[1], 2), "rules_evaluated": touched},
            "commit_without_rules_ms": {"best": round(bare[0], 2), "median": round(bare[1], 2)},
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--series", type=int, default=5, help="label sets per watched counter or gauge (default 5)")
    parser.add_argument("--keys", type=int, default=50, help="rollup keys a day (default 50)")
    parser.add_argument("--extra-rules", type=int, default=100, help="site rules added in the second round (default 100)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    from normagent.log import configure_logging

    configure_logging("error")
    with tempfile.TemporaryDirectory(prefix="normagent-bench-rules-") as tmp:
        results = [measure(args.days, args, Path(tmp)), measure(1, args, Path(tmp))]
    print(json.dumps(results, indent=2))
    worst = max(r[k]["full_cycle_ms"]["median"] for r in results for k in r if k.startswith("rules_"))
    print(f"target: one cycle under 50 ms: {'met' if worst < 50 else 'NOT met'} (worst median {worst:.1f} ms)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
