"""Benchmark: ``changes.files`` watching 10,000 files — what a cycle costs with nothing changed, and
how the cost grows with the number of changed files rather than the number of watched ones.

Writes ``--files`` small configuration-like files (1–4 KiB, in 100 directories) under a temporary
root, watched with one ``**`` glob, and runs the collector against a real ledger (SQLite WAL,
``synchronous=FULL``) with the real clock:

* the first cycle, which reads and digests every file to make the baseline;
* steady cycles with nothing changed (median of ``--repeat``): one ``lstat`` per file and one
  digest over the stat keys, nothing read, nothing written;
* cycles after changing the content of 1, 10, 100 and 1,000 files (each counted once: checked);
* the same steady cycle over a tenth of the files, to show what the number of files costs;
* an ``lstat`` of every file alone: the floor of any cycle that does not trust inotify.

Usage::

    python bench/bench_changes.py [--files 10000] [--repeat 7] [--dir /tmp]

Prints the figures; exits 1 if a count is wrong. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from normagent.ledger import Ledger  # noqa: E402
from normagent.plugins.changes.collectors import FILES  # noqa: E402
from normagent.plugins.changes.settings import FileWatchSettings  # noqa: E402
from normagent.plugins.changes.vocab import CONFIG_CHANGES  # noqa: E402
from normagent.sources.command import run_command  # noqa: E402
from normagent.testing import FakeClock, run_collector_once  # noqa: E402


def make_tree(root: Path, files: int) -> list[Path]:
    paths = []
    for n in range(files):
        folder = root / "watch" / f"d{n % 100:02}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"f{n:05}.conf"
        path.write_bytes((f"# file {n}\nkey{n} = value\n" * (40 + n % 120)).encode())
        paths.append(path)
    return paths


def cycle(ledger: Ledger, root: Path, settings: FileWatchSettings, clock: FakeClock) -> float:
    started = time.perf_counter()
    run_collector_once(FILES, ledger, settings=settings, root=root, clock=clock, timeout=3600, run_command=run_command)
    return time.perf_counter() - started


def changed(ledger: Ledger) -> float:
    return sum(v for k, v in ledger.snapshot().values(CONFIG_CHANGES).items() if dict(k)["source"] == "file")


def measure(work: Path, files: int, repeat: int, steps: list[int]) -> dict[str, float]:
    root = work / f"root{files}"
    paths = make_tree(root, files)
    settings = FileWatchSettings(paths=("/watch/**/*.conf",), max_files=max(files, 1))
    clock = FakeClock(datetime.now(timezone.utc))
    out: dict[str, float] = {}
    with Ledger.open(work / f"ledger{files}.db", clock=clock) as ledger:
        out["baseline"] = cycle(ledger, root, settings, clock)
        out["steady"] = statistics.median(cycle(ledger, root, settings, clock) for _ in range(repeat))
        total = 0
        for k in steps:
            for path in paths[:k]:
                with path.open("a") as f:
                    f.write(f"# changed {k}\n")
            total += k
            out[f"changed {k}"] = cycle(ledger, root, settings, clock)
            if changed(ledger) != total:
                raise SystemExit(f"counted {changed(ledger)} changes, expected {total}")
        out["steady after"] = statistics.median(cycle(ledger, root, settings, clock) for _ in range(repeat))
    out["lstat alone (floor)"] = statistics.median(_lstat_all(paths) for _ in range(repeat))
    return out


def _lstat_all(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        os.lstat(path)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="normagent-bench-changes-", dir=args.dir))
    try:
        big = measure(work, args.files, args.repeat, [1, 10, 100, 1000])
        small = measure(work, args.files // 10, args.repeat, [1, 10, 100])
        size = sum(p.stat().st_size for p in (work / f"root{args.files}").rglob("*.conf"))
        print(f"{args.files:,} files ({size / 1e6:.1f} MB) and {args.files // 10:,} files, one '**' glob, times in ms:")
        print(f"{'cycle':<22}{args.files:>10,}{args.files // 10:>10,}")
        for name in big:
            print(f"{name:<22}{big[name] * 1000:>10.1f}{small[name] * 1000 if name in small else float('nan'):>10.1f}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
