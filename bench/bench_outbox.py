"""Outbox drain rate: 10,000 queued candidate changes delivered to a local webhook receiver.

    .venv/bin/python bench/bench_outbox.py                # 10,000 changes
    .venv/bin/python bench/bench_outbox.py --changes 2000 --repeat 3

One rule fires for each of ``--changes`` rollup keys in a single commit, which leaves that many
firing candidates and as many outbox rows in a real ledger (SQLite WAL, synchronous=FULL). A
``forward.Worker`` with the real webhook sender (the forwarders' HTTP client, kept-alive connections, HMAC
signature) then drains them to a receiver in another process (a small asyncio HTTP/1.1 server that
answers 200 and counts distinct Idempotency-Keys), committing each batch's outcome as the agent
does. Printed: deliveries per second, and the receiver's count of distinct keys (must equal
``--changes``). Target (issue 10): at least 1,000 deliveries/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


async def _serve(port: int, out: Path) -> None:
    keys: set[str] = set()
    posts = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal posts
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, key = 0, ""
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                    elif name.lower() == b"idempotency-key":
                        key = value.strip().decode()
                await reader.readexactly(length)
                posts += 1
                keys.add(key)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    out.write_text(json.dumps({"posts": posts, "keys": len(keys)}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def drain(changes: int, workdir: Path, port: int) -> dict[str, Any]:
    import random

    from normagent.config import ForwarderCommon, ForwarderConfig
    from normagent.forward import ATTEMPTS, DEAD_LETTERS, Route, Worker, metrics_for
    from normagent.forward.webhook import WEBHOOK, WebhookSettings
    from normagent.ledger import Ledger
    from normagent.model import Batch, Rollup, RuleSpec
    from normagent.rules import Engine, EngineSettings, complete
    from normagent.testing import FakeClock

    now = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
    clock = FakeClock(now)
    ledger = Ledger.open(workdir / "ledger.db", clock=clock)
    ledger.declare([m for m in metrics_for(["hook"]) if m.name in (ATTEMPTS.name, DEAD_LETTERS.name)])
    rule = RuleSpec(name="bench.per_key", watch="rollup:bench", comparison=">", threshold=0, window=timedelta(days=1),
                    group_by=("key",), summary="{value} fra {key}", section="Driftsstatus")
    engine = Engine([complete(rule, timedelta(minutes=15))], EngineSettings(host_id=ledger.host_id, max_candidates=changes))
    ledger.use_rules(engine, ["hook"])
    started = time.perf_counter()
    ledger.commit("bench", Batch([Rollup("bench", now.date(), f"{k:016x}", 1, now, now) for k in range(changes)]))
    queued_s = time.perf_counter() - started
    assert ledger.outbox_stats()["hook"].pending == changes
    settings = WebhookSettings(url=f"http://127.0.0.1:{port}/hook", secret="bench-secret")
    worker = Worker(Route(ForwarderConfig("hook", ForwarderCommon(kind="webhook"), settings), WEBHOOK), ledger, clock,
                    rng=random.Random(0))
    started = time.perf_counter()
    cpu = time.process_time()
    while "hook" in ledger.outbox_stats():
        worker.run_once()
        if worker.failures:
            raise SystemExit("a delivery failed; is the receiver up?")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    worker.close()
    ok = ledger.counter_value(ATTEMPTS.name, {"forwarder": "hook", "result": "ok"})
    ledger.close()
    return {"changes": changes, "queued_in_one_commit_s": round(queued_s, 3), "drain_s": round(elapsed, 3),
            "deliveries_per_s": round(ok / elapsed), "attempts_ok": ok,
            "agent_cpu_ms_per_delivery": round(cpu * 1000 / changes, 3), "parallel": worker.parallel}


BOOT = ("import runpy, sys; sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]; "
        "sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = {script!r}; runpy.run_path({script!r}, run_name='__main__')")


def one_run(changes: int, tree: Path | None) -> dict[str, Any]:
    """One drain in a process of its own (the agent's sources of ``tree``, else this checkout's)."""
    with tempfile.TemporaryDirectory(prefix="normagent-bench-outbox-") as tmp:
        port, out = free_port(), Path(tmp) / "receiver.json"
        receiver = subprocess.Popen([sys.executable, __file__, "--receiver", str(port), "--receiver-out", str(out)],
                                    env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            args = ["--drain", str(port), "--dir", tmp, "--changes", str(changes)]
            command = [sys.executable, __file__, *args] if tree is None else \
                [sys.executable, "-c", BOOT.format(script=__file__), str(tree), *args]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            receiver.send_signal(signal.SIGTERM)
            receiver.wait(10)
        result["receiver"] = json.loads(out.read_text())
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", metavar="REVISION",
                        help="also drain with the agent of this git revision (its sources unpacked), in turn with this one")
    parser.add_argument("--receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--receiver-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--drain", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        asyncio.run(_serve(args.receiver, args.receiver_out))
        return 0
    if args.drain:
        from normagent.log import configure_logging

        configure_logging("error")
        print(json.dumps(drain(args.changes, args.dir, args.drain)))
        return 0
    with tempfile.TemporaryDirectory(prefix="normagent-bench-outbox-tree-") as tmp:
        trees: list[tuple[str, Path | None]] = [("now", None)]
        if args.baseline:
            sys.path.insert(0, str(REPO / "bench"))
            from bench_idle import unpack_revision

            trees.insert(0, (f"before {args.baseline}", unpack_revision(args.baseline, Path(tmp) / "baseline")))
        rates: dict[str, list[int]] = {label: [] for label, _ in trees}
        wrong = 0
        for _ in range(args.repeat):
            for label, tree in trees:  # in turn, so that the machine's load falls on both alike
                result = one_run(args.changes, tree)
                result["agent"] = label
                print(json.dumps(result), flush=True)
                rates[label].append(result["deliveries_per_s"])
                if result["receiver"]["keys"] != args.changes or result["attempts_ok"] != args.changes:
                    wrong += 1
    for label, values in rates.items():
        median = sorted(values)[len(values) // 2]
        print(f"{label}: deliveries/s {sorted(values)}, median {median}; target >= 1,000: {'met' if median >= 1000 else 'NOT met'}")
    if wrong:
        print(f"{wrong} runs delivered a wrong count")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
