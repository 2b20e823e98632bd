"""The cost of the ledger's bounded WAL: fsyncs per commit and the WAL's size, SQLite's defaults vs normagent's.

    strace -f -c -e trace=fsync,fdatasync .venv/bin/python bench/bench_wal.py defaults 1000 20
    strace -f -c -e trace=fsync,fdatasync .venv/bin/python bench/bench_wal.py bounded 1000 20

Arguments: ``defaults`` (SQLite's wal_autocheckpoint=1000 and no journal_size_limit) or ``bounded``
(the ledger's own settings), the number of commits, and how many new rollup rows each commit adds
(0: only a counter and a checkpoint change, as in a quiet log's cycle). Counting fsyncs rather than
timing them keeps the figure independent of the disk and of the machine's load. Prints the WAL's and
the database's sizes after the last commit.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import date
from pathlib import Path

from normagent.ledger import Ledger
from normagent.model import Batch, Checkpoint, Count, MetricSpec, Observation, Rollup

METRIC = MetricSpec("normagent_bench_total", "counter", "Bench counter.", ("k",))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", choices=("defaults", "bounded"))
    parser.add_argument("commits", type=int)
    parser.add_argument("rows", type=int, help="new rollup rows per commit")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(dir="/var/tmp"))
    try:
        ledger = Ledger.open(folder / "ledger.db", metrics=[METRIC])
        if args.settings == "defaults":
            ledger._conn.execute("PRAGMA wal_autocheckpoint=1000")
            ledger._conn.execute("PRAGMA journal_size_limit=-1")
        for i in range(args.commits):
            observations: list[Observation] = [Count(METRIC.name, {"k": f"v{i % 7}"}, 1)]
            observations += [Rollup("bench", date(2026, 1, 1), f"{i}-{j}") for j in range(args.rows)]
            ledger.commit("bench", Batch(observations, [Checkpoint("file:a", {"offset": i})]))
        wal = (folder / "ledger.db-wal").stat().st_size
        db = (folder / "ledger.db").stat().st_size
        ledger.close()
        print(f"{args.settings}: {args.commits} commits of {args.rows} new rows: WAL {wal:,} bytes, database {db:,} bytes")
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
