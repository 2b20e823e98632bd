"""Benchmark of the EDI collector on a generated folder of 100,000 messages and their receipts.

Phases, on a real ledger (SQLite, WAL, synchronous=FULL) and a fake clock at the generator's "now":

1. first full index of the whole tree (files/s, messages/s), checked against the generator's truth;
2. steady state: a cycle with nothing new (target: under 0.5 s, whatever the folder size);
3. three hours without traffic, then 100 new files: a cycle that grows with the new files, and a
   stop of (first new file − start of watching) seconds in each direction;
4. 1,000 new files a minute later;
5. steady state again.

    .venv/bin/python bench/bench_edi.py                 # 100,000 messages in a temporary folder
    .venv/bin/python bench/bench_edi.py --messages 20000 --dir /tmp/edi-bench   # keep the tree

The machine is shared and noisy: compare figures as ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "plugins" / "edi"))

import edi_generator as gen  # noqa: E402

from normagent.ledger import Ledger  # noqa: E402
from normagent.plugins.edi.collectors import make_spec  # noqa: E402
from normagent.plugins.edi.index import Index  # noqa: E402
from normagent.testing import FakeClock, make_context  # noqa: E402

CHECKS = (
    ("messages", "normagent_edi_messages_total", ("direction", "msg_type")),
    ("receipts", "normagent_edi_receipts_total", ("msg_type", "status")),
    ("receipt_errors", "normagent_edi_receipt_errors_total", ("msg_type", "code_list", "error_code")),
    ("transport_errors", "normagent_edi_transport_errors_total", ("error_code",)),
    ("misaddressed", "normagent_edi_misaddressed_messages_total", ("direction", "msg_type")),
    ("unacknowledged_total", "normagent_edi_unacknowledged_total", ("msg_type", "receipt")),
    ("unacknowledged", "normagent_edi_unacknowledged_messages", ("msg_type", "receipt")),
    ("alarm", "normagent_edi_unacknowledged_alarm_messages", ("msg_type", "receipt")),
    ("unmatched", "normagent_edi_unmatched_receipts", ("receipt",)),
    ("files", "normagent_edi_files_total", ("outcome",)),
    ("timestamps", "normagent_edi_timestamps_total", ("kind",)),
)


def series(ledger: Ledger, metric: str, names: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    out = {}
    for labels, value in ledger.snapshot().values(metric).items():
        d = dict(labels)
        out[tuple(d[n] for n in names)] = value
    return out


def compare(ledger: Ledger, truth: gen.Truth) -> list[str]:
    problems = []
    for name, metric, labels in CHECKS:
        got = {k: v for k, v in series(ledger, metric, labels).items() if v}
        want = {k: float(v) for k, v in getattr(truth, name).items() if v}
        if got != want:
            diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
            problems.append(f"{name}: {len(diff)} series differ, e.g. {sorted(diff.items())[:3]}")
    got_oldest = {k: v for k, v in series(ledger, "normagent_edi_oldest_unacknowledged_age_seconds", ("msg_type", "receipt")).items() if v}
    if got_oldest.keys() != truth.oldest.keys() or any(abs(got_oldest[k] - v) > 0.01 for k, v in truth.oldest.items()):
        problems.append("oldest unacknowledged ages differ")
    return problems


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the EDI collector")
    parser.add_argument("--messages", type=int, default=100_000, help="outgoing messages to generate")
    parser.add_argument("--dir", type=Path, help="generate here (reused if it holds a truth.json)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    work = args.dir or Path(tempfile.mkdtemp(prefix="edi-bench-"))
    tree = work / "tree"
    truth_file = tree / "truth.json"
    try:
        if truth_file.exists():
            truth = gen.Truth.from_json(json.loads(truth_file.read_text()))
            for added in tree.glob("*/new-*.xml"):  # written by an earlier run's later phases
                added.unlink()
            print(f"reusing {tree}: {truth.file_count} files")
        else:
            started = time.perf_counter()
            truth = gen.generate(tree, gen.Config(messages=args.messages, seed=args.seed))
            truth_file.write_text(json.dumps(truth.to_json()))
            print(f"generated {truth.file_count} files ({args.messages} outgoing messages) in {time.perf_counter() - started:.1f} s")
        return run(work, tree, truth)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, tree: Path, truth: gen.Truth) -> int:
    db = work / "ledger.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    start = datetime.fromtimestamp(truth.now, timezone.utc)
    clock = FakeClock(start)
    spec = make_spec()
    settings = gen.settings_for(tree)
    ok = True
    with Ledger.open(db, clock=clock) as ledger:
        ledger.declare(spec.metrics)

        def cycle() -> None:
            # As the scheduler runs a collector: commit each batch as it is yielded, keep nothing.
            ctx = make_context(spec, settings=settings, clock=clock, state=ledger.checkpoints(spec.name), timeout=3600)
            for batch in spec.collect(ctx):
                ledger.commit(spec.name, batch)

        seconds = timed(cycle)
        messages = sum(truth.messages.values())
        print(f"first full index: {truth.file_count} files, {messages} messages in {seconds:.2f} s "
              f"= {truth.file_count / seconds:,.0f} files/s, {messages / seconds:,.0f} messages/s")
        problems = compare(ledger, truth)
        print("  equals the generator's truth" if not problems else "  DIFFERS from the truth:\n    " + "\n    ".join(problems))
        ok &= not problems

        steady = []
        for _ in range(5):
            clock.advance(60)
            steady.append(timed(cycle))
        print(f"steady state, nothing new: median {statistics.median(steady) * 1000:.0f} ms, "
              f"max {max(steady) * 1000:.0f} ms over {len(steady)} cycles (target < 500 ms)")
        ok &= statistics.median(steady) < 0.5

        before = series(ledger, "normagent_edi_messages_total", ("direction", "msg_type"))
        watched_from = truth.now  # the first cycle started watching
        clock.advance(3 * 3600)
        now = clock.now().timestamp()
        added = gen.add_traffic(tree, 100, now - 120, now - 60, seed=11)
        listing = timed(lambda: [os.listdir(tree / name) for name in ("ut", "inn")])
        seconds_100 = timed(cycle)
        print(f"100 new files after 3 h of silence: {seconds_100 * 1000:.0f} ms "
              f"(of which ~{listing * 1000:.0f} ms is listing the two changed folders of "
              f"{sum(len(os.listdir(tree / n)) for n in ('ut', 'inn')):,} entries)")
        stop = series(ledger, "normagent_edi_stop_seconds_total", ("direction", "planned"))
        for direction in ("in", "out"):
            want = added["first"][direction] - watched_from
            got = stop.get((direction, "false"), 0.0)
            good = abs(got - want) < 1e-3
            ok &= good
            print(f"  stop {direction}: {got:.0f} s counted, expected {want:.0f} s {'(equal)' if good else '(DIFFERENT)'}")

        clock.advance(60)
        now = clock.now().timestamp()
        added_1000 = gen.add_traffic(tree, 1000, now - 50, now - 1, seed=12)
        listing_1000 = timed(lambda: [os.listdir(tree / name) for name in ("ut", "inn")])
        seconds_1000 = timed(cycle)
        print(f"1,000 new files: {seconds_1000 * 1000:.0f} ms (~{listing_1000 * 1000:.0f} ms listing); beyond the "
              f"listing {(seconds_1000 - listing_1000) / max(seconds_100 - listing, 1e-9):.1f}x the 100-file cycle")
        after = series(ledger, "normagent_edi_messages_total", ("direction", "msg_type"))
        expected = dict(before)
        for key, value in (added["messages"] + added_1000["messages"]).items():
            expected[key] = expected.get(key, 0.0) + value
        good = {k: v for k, v in after.items() if v} == {k: v for k, v in expected.items() if v}
        ok &= good
        print(f"  messages counted for the new files {'equal' if good else 'DIFFER from'} the generator's")

        steady = []
        for _ in range(5):
            clock.advance(60)
            steady.append(timed(cycle))
        print(f"steady state again: median {statistics.median(steady) * 1000:.0f} ms")
        ok &= statistics.median(steady) < 0.5
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the benchmark process: {rss:.0f} MiB; ledger {db.stat().st_size / 2**20:.0f} MiB")
        # The collector's in-memory view, as a restarted agent builds it from this ledger.
        tracemalloc.start()
        view = Index.load(ledger.checkpoints(spec.name))
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        entries = view.file_count + len(view.records)
        print(f"in-memory index: {size / 2**20:.0f} MiB for {view.file_count:,} files and {len(view.records):,} ids "
              f"({size / entries:.0f} bytes each)")
    print("RESULT:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
