"""Benchmark of the EDI collector on a generated folder of 100,000 messages and their receipts,
side by side with an earlier commit (``--baseline``), each in fresh processes.

For each implementation, on a real ledger (SQLite, WAL, synchronous=FULL), a fake clock at the
generator's "now", and driving the collector as the scheduler does (each batch committed as it is
yielded):

1. process "index": the first full index of the whole tree (files/s; peak resident memory of the
   process), checked against the generator's truth; five cycles with nothing new; resident
   memory after them (the idle agent);
2. process "restart", on the same ledger: the first cycle (time, peak memory); five cycles with
   nothing new; three hours of silence in 10-minute cycles; 100 new files in the two largest
   folders (time; a stop in each direction, compared with the expected seconds); 1,000 new files a
   minute later; five more idle cycles; resident memory.

Every count is compared with the generator's truth; the benchmark exits 1 if one differs (in any
implementation). Rounds alternate the implementations; medians are printed::

    .venv/bin/python bench/bench_edi.py                              # 100,000 messages, this checkout
    .venv/bin/python bench/bench_edi.py --baseline e8ba9a6 --rounds 3 --dir /tmp/edi-bench
    .venv/bin/python bench/bench_edi.py --messages 10000             # a tenth, for a quick look

``--baseline REF`` extracts ``normagent/`` and ``plugins/`` of that commit (``git archive``) and
runs the same phases with it. The generator (tests/plugins/edi/edi_generator.py) is this
checkout's for both.

Directory times: the generator and the phases write files at the real time while the collector's
clock is fake (the tree's "now" lies in the past). A directory changed "after now" would look as
if it changed within the last two seconds forever (the racy-listing guard), so after writing, the
benchmark sets the folders' times to the fake clock, as they would be on a host whose clock is
the collector's. Both implementations get the same tree.

The machine is shared and noisy: compare figures as ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GENERATOR_DIR = ROOT / "tests" / "plugins" / "edi"

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
FOLDERS = ("ut", "inn", "kvittering-ut", "ebxml-ut", "arkiv")
BIG = ("ut", "inn")  # the folders the new files go to (about 100,000 and 138,000 entries)


# --------------------------------------------------------------------------------------------
# the parent: generate, run each implementation in turn, print medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the EDI collector, side by side with a baseline commit")
    parser.add_argument("--messages", type=int, default=100_000, help="outgoing messages to generate")
    parser.add_argument("--dir", type=Path, help="generate here (reused if it holds a truth.json)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline", metavar="REF", help="also run this commit's collector (git archive)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; the implementations alternate")
    parser.add_argument("--child", choices=("index", "restart"), help=argparse.SUPPRESS)
    parser.add_argument("--impl", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ledger", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    work = args.dir or Path(tempfile.mkdtemp(prefix="edi-bench-"))
    tree = work / "tree"
    try:
        sys.path.insert(0, str(GENERATOR_DIR))
        import edi_generator as gen

        truth_file = tree / "truth.json"
        if truth_file.exists():
            truth = gen.Truth.from_json(json.loads(truth_file.read_text()))
            print(f"reusing {tree}: {truth.file_count:,} files")
        else:
            started = time.perf_counter()
            truth = gen.generate(tree, gen.Config(messages=args.messages, seed=args.seed))
            truth_file.write_text(json.dumps(truth.to_json()))
            print(f"generated {truth.file_count:,} files ({args.messages:,} outgoing messages) in "
                  f"{time.perf_counter() - started:.1f} s")
        sizes = {name: len(os.listdir(tree / name)) for name in FOLDERS}
        print("folders: " + ", ".join(f"{name} {n:,}" for name, n in sizes.items()))
        impls: list[tuple[str, Path]] = []
        if args.baseline:
            impls.append((f"baseline {args.baseline}", extract(args.baseline, work / "baseline")))
        impls.append(("this checkout", ROOT))
        results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in impls}
        for round_ in range(args.rounds):
            order = impls if round_ % 2 == 0 else impls[::-1]
            for name, path in order:
                print(f"round {round_ + 1}: {name} (load average {os.getloadavg()[0]:.1f})", flush=True)
                results[name].append(run_implementation(path, work, tree, truth.now))
                show_round(results[name][-1])
        return report(results)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


def extract(ref: str, target: Path) -> Path:
    """``normagent/`` and ``plugins/`` of ``ref``, laid out as the installed package is."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "normagent", "plugins"],
                             check=True, capture_output=True).stdout
    with tempfile.TemporaryFile() as fh:
        fh.write(archive)
        fh.seek(0)
        with tarfile.open(fileobj=fh) as tar:
            tar.extractall(target, filter="data")
    shutil.move(str(target / "plugins"), str(target / "normagent" / "plugins"))
    return target


def reset_tree(tree: Path, now: float) -> None:
    """Remove what an earlier run added and date the folders at the fake clock (see the docstring)."""
    for name in BIG:
        for path in (tree / name).glob("new-*.xml"):
            path.unlink()
    date_folders(tree, now - 10)


def date_folders(tree: Path, moment: float) -> None:
    for name in FOLDERS:
        os.utime(tree / name, (moment, moment))


def run_implementation(impl: Path, work: Path, tree: Path, now: float) -> dict[str, Any]:
    reset_tree(tree, now)
    state = work / "state"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir()
    ledger = state / "ledger.db"
    first = run_child("index", impl, tree, ledger, now)
    second = run_child("restart", impl, tree, ledger, first["clock"])
    return {**first, **second, "problems": first["problems"] + second["problems"]}


def run_child(phase: str, impl: Path, tree: Path, ledger: Path, start: float) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", phase, "--impl", str(impl),
            "--dir", str(tree), "--ledger", str(ledger), "--start", repr(start)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the {phase} process failed ({done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def show_round(r: dict[str, Any]) -> None:
    print(f"  first index {r['index_s']:.1f} s = {r['files_per_s']:,.0f} files/s, peak {r['index_peak_mib']:.0f} MiB, "
          f"idle {r['idle_after_index_mib']:.0f} MiB; steady median {r['steady_ms']:.1f} ms; "
          f"restart first cycle {r['restart_s'] * 1000:.0f} ms (peak {r['restart_peak_mib']:.0f} MiB); "
          f"100 new {r['new100_ms']:.0f} ms; 1,000 new {r['new1000_ms']:.0f} ms; "
          f"steady again {r['steady_again_ms']:.1f} ms; idle {r['idle_end_mib']:.0f} MiB; "
          f"counts {'equal' if not r['problems'] else 'DIFFER: ' + '; '.join(r['problems'])}", flush=True)


ROWS = (
    ("first index, files/s", "files_per_s", "{:,.0f}"),
    ("first index, files per CPU second", "files_per_cpu_s", "{:,.0f}"),
    ("first index, s", "index_s", "{:.1f}"),
    ("peak resident during the first index, MiB", "index_peak_mib", "{:.0f}"),
    ("idle resident after the index, MiB", "idle_after_index_mib", "{:.0f}"),
    ("steady cycle (nothing new), median of 5, ms", "steady_ms", "{:.1f}"),
    ("  its CPU, ms", "steady_ms_cpu", "{:.1f}"),
    ("restart: first cycle, ms", "restart_s_ms", "{:.0f}"),
    ("  its CPU, ms", "restart_s_cpu_ms", "{:.0f}"),
    ("restart: peak resident, MiB", "restart_peak_mib", "{:.0f}"),
    ("100 new files in the 100k-file folders, ms", "new100_ms", "{:.0f}"),
    ("  its CPU, ms", "new100_ms_cpu", "{:.0f}"),
    ("1,000 new files, ms", "new1000_ms", "{:.0f}"),
    ("  its CPU, ms", "new1000_ms_cpu", "{:.0f}"),
    ("steady cycle after the restart, median of 5, ms", "steady_restart_ms", "{:.1f}"),
    ("  its CPU, ms", "steady_restart_ms_cpu", "{:.1f}"),
    ("steady cycle again, median of 5, ms", "steady_again_ms", "{:.1f}"),
    ("  its CPU, ms", "steady_again_ms_cpu", "{:.1f}"),
    ("idle resident at the end, MiB", "idle_end_mib", "{:.0f}"),
)


def report(results: dict[str, list[dict[str, Any]]]) -> int:
    names = list(results)
    print()
    print("| medians | " + " | ".join(f"{name} (n={len(results[name])})" for name in names) + " |")
    print("|---|" + "---:|" * len(names))
    for label, key, fmt in ROWS:
        cells = []
        for name in names:
            values = [r[key[:-3]] * 1000 if key.startswith("restart_s") and key.endswith("_ms") else r[key]
                      for r in results[name]]
            cells.append(fmt.format(statistics.median(values)) + (
                f" ({fmt.format(min(values))}–{fmt.format(max(values))})" if len(values) > 1 else ""))
        print(f"| {label} | " + " | ".join(cells) + " |")
    wrong = {name: r["problems"] for name, rs in results.items() for r in rs if r["problems"]}
    for name, problems in wrong.items():
        print(f"{name}: counts DIFFER from the truth: {'; '.join(problems)}")
    print("RESULT:", "ok" if not wrong else "FAILED")
    return 1 if wrong else 0


# --------------------------------------------------------------------------------------------
# a child: one implementation, one process


def rss_mib() -> tuple[float, float]:
    """(resident now, peak resident) of this process in MiB."""
    fields = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


CPU: dict[str, float] = {}  # CPU seconds (user + system) of the last ``timed`` call: the load-independent figure


def timed(fn: Callable[[], Any]) -> float:
    started, cpu = time.perf_counter(), time.process_time()
    fn()
    CPU["last"] = time.process_time() - cpu
    return time.perf_counter() - started


def child(args: argparse.Namespace) -> int:
    import logging

    sys.path.insert(0, str(args.impl))
    sys.path.insert(1, str(GENERATOR_DIR))
    import normagent

    if not Path(normagent.__file__).resolve().is_relative_to(args.impl.resolve()):
        raise SystemExit(f"imported {normagent.__file__}, not the implementation under {args.impl}")
    import edi_generator as gen
    import structlog

    from normagent.ledger import Ledger
    from normagent.plugins.edi.collectors import make_spec
    from normagent.testing import FakeClock, make_context

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    from daemon_process import DAEMON_PROCESS  # bench/: the process as `normagent run` sets it up

    exec(DAEMON_PROCESS, {})
    tree: Path = args.dir
    truth = gen.Truth.from_json(json.loads((tree / "truth.json").read_text()))
    clock = FakeClock(datetime.fromtimestamp(args.start, timezone.utc))
    spec = make_spec()
    settings = gen.settings_for(tree)
    out: dict[str, Any] = {"problems": []}

    with Ledger.open(args.ledger, clock=clock) as ledger:
        ledger.declare(spec.metrics)

        def cycle() -> None:
            # As the scheduler runs a collector: commit each batch as it is yielded, keep nothing.
            ctx = make_context(spec, settings=settings, clock=clock, state=ledger.checkpoints(spec.name), timeout=3600)
            for batch in spec.collect(ctx):
                ledger.commit(spec.name, batch)

        def steady(name: str) -> None:
            times, cpu = [], []
            for _ in range(5):
                clock.advance(60)
                times.append(timed(cycle))
                cpu.append(CPU["last"])
            out[name] = statistics.median(times) * 1000
            out[name + "_cpu"] = statistics.median(cpu) * 1000

        def check(when: str, gauges: bool = True) -> None:
            out["problems"].extend(f"{when}: {p}" for p in compare(ledger, truth, gauges=gauges))

        if args.child == "index":
            seconds = timed(cycle)
            out["index_s"] = seconds
            out["files_per_s"] = truth.file_count / seconds
            out["files_per_cpu_s"] = truth.file_count / CPU["last"]
            out["index_peak_mib"] = rss_mib()[1]
            check("first index")
            steady("steady_ms")
            out["idle_after_index_mib"] = rss_mib()[0]
        else:
            out["restart_s"] = timed(cycle)
            out["restart_s_cpu"] = CPU["last"]
            out["restart_peak_mib"] = rss_mib()[1]
            check("after the restart", gauges=False)
            steady("steady_restart_ms")
            before = series(ledger, "normagent_edi_messages_total", ("direction", "msg_type"))
            for _ in range(18):  # three hours without traffic, the collector running every 10 minutes
                clock.advance(600)
                cycle()
            clock.advance(300)
            now = clock.now().timestamp()
            added = gen.add_traffic(tree, 100, now - 120, now - 60, seed=11)
            date_folders(tree, now - 30)
            out["new100_ms"] = timed(cycle) * 1000
            out["new100_ms_cpu"] = CPU["last"] * 1000
            stop = series(ledger, "normagent_edi_stop_seconds_total", ("direction", "planned"))
            for direction in ("in", "out"):
                want = added["first"][direction] - truth.now  # silent since the first cycle started watching
                got = stop.get((direction, "false"), 0.0)
                if abs(got - want) > 1e-3:
                    out["problems"].append(f"stop {direction}: {got:.0f} s counted, {want:.0f} s expected")
            clock.advance(60)
            now = clock.now().timestamp()
            added_1000 = gen.add_traffic(tree, 1000, now - 50, now - 1, seed=12)
            date_folders(tree, now - 0.5)
            out["new1000_ms"] = timed(cycle) * 1000
            out["new1000_ms_cpu"] = CPU["last"] * 1000
            expected = dict(before)
            for key, value in (added["messages"] + added_1000["messages"]).items():
                expected[key] = expected.get(key, 0.0) + value
            after = series(ledger, "normagent_edi_messages_total", ("direction", "msg_type"))
            if {k: v for k, v in after.items() if v} != {k: v for k, v in expected.items() if v}:
                out["problems"].append("messages counted for the new files differ from the generator's")
            indexed = series(ledger, "normagent_edi_indexed_files", ()).get((), 0.0)
            if indexed != truth.file_count + 1100:
                out["problems"].append(f"indexed files {indexed:.0f}, expected {truth.file_count + 1100}")
            steady("steady_again_ms")
            out["idle_end_mib"] = rss_mib()[0]
        out["clock"] = clock.now().timestamp()
    print(json.dumps(out))
    return 0


def series(ledger: Any, metric: str, names: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    out = {}
    for labels, value in ledger.snapshot().values(metric).items():
        d = dict(labels)
        out[tuple(d[n] for n in names)] = value
    return out


TIMED = ("unacknowledged", "alarm", "unmatched", "unacknowledged_total")  # change as the clock moves


def compare(ledger: Any, truth: Any, *, gauges: bool = True) -> list[str]:
    """How the ledger differs from the truth; ``gauges=False`` once the clock has moved past the
    truth's "now" (ages and timeouts then differ by design)."""
    problems = []
    for name, metric, labels in CHECKS:
        if name in TIMED and not gauges:
            continue
        got = {k: v for k, v in series(ledger, metric, labels).items() if v}
        want = {k: float(v) for k, v in getattr(truth, name).items() if v}
        if got != want:
            diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
            problems.append(f"{name}: {len(diff)} series differ, e.g. {sorted(diff.items())[:3]}")
    oldest = {k: v for k, v in series(ledger, "normagent_edi_oldest_unacknowledged_age_seconds", ("msg_type", "receipt")).items() if v}
    if gauges and (oldest.keys() != truth.oldest.keys() or any(abs(oldest[k] - v) > 0.01 for k, v in truth.oldest.items())):
        problems.append("oldest unacknowledged ages differ")
    indexed = series(ledger, "normagent_edi_indexed_files", ()).get((), 0.0)
    if indexed != truth.file_count:
        problems.append(f"indexed files {indexed:.0f}, expected {truth.file_count}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
