"""Chaos: the real agent, SIGKILLed at random moments, while its log is rotated both ways.

A generator writes numbered lines to a log and rotates it like logrotate would: rename+create
(the writer keeps writing to the renamed file for a while before it reopens, as rsyslog does
until its HUP), copytruncate (atomic with respect to the generator's own writes, since it is the
writer: logrotate itself loses lines written between its copy and its truncate), compression of
older rotated files (mtime kept, as logrotate does), and half-written lines finished later.
Meanwhile ``normagent run`` (with ``chaos_plugin`` loaded through ``[plugins] extra``) is killed
with SIGKILL at 20+ random moments and restarted. At the end the agent's counts of lines, id sum
and id-square sum must equal the generator's ground truth exactly.

Run with ``pytest -m slow tests/integration/test_chaos.py``; CHAOS_SEED=<n> replays a run.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from normagent.ledger import Ledger
from tests.support.tools import EVERY_BUILTIN
from tests.support.ports import reserve_port
from tests.support.service import service_environment

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("chaos_plugin_for_truth", HERE / "chaos_plugin.py")
assert _spec is not None and _spec.loader is not None
_plugin = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _plugin  # its dataclasses look their module up while being defined
_spec.loader.exec_module(_plugin)
MODULUS: int = _plugin.MODULUS  # the agent loads the same module by name, from PYTHONPATH

KILLS = 24
CATCH_UP_SECONDS = 90  # without progress
CATCH_UP_LIMIT = 400  # in all


@dataclass
class Truth:
    """What the generator wrote: the three numbers the agent must arrive at."""

    lines: int = 0
    id_sum: int = 0
    square_sum: int = 0

    def add(self, ident: int) -> None:
        self.lines += 1
        self.id_sum += ident
        self.square_sum += ident * ident % MODULUS


@dataclass
class ChaosLog:
    """The writer of app.log and its logrotate, in one thread, so the ground truth is exact."""

    folder: Path
    rng: random.Random
    truth: Truth = field(default_factory=Truth)
    renames: int = 0
    copytruncates: int = 0
    compressions: int = 0
    next_id: int = 0
    fd: int = -1
    stale_writes: int = 0  # lines still to go to a renamed file before the writer reopens
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    events: list[str] = field(default_factory=list)  # what happened, with the next id, for a post-mortem

    def note(self, what: str) -> None:
        """Record what happened and the folder as it is. Called from the test's thread too, while the
        writer may be removing a rotated file: one that vanishes between listing and stat is noted so."""
        files = []
        for path in sorted(self.folder.iterdir()):
            try:
                st = path.stat()
            except FileNotFoundError:
                files.append(f"{path.name}:gone")
                continue
            files.append(f"{path.name}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}")
        self.events.append(f"{time.time():.4f} id={self.next_id} {what} {files}")

    @property
    def log(self) -> Path:
        return self.folder / "app.log"

    def reopen(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write_line(self, split: bool = False) -> None:
        ident = self.next_id
        self.next_id += 1
        line = b"chaos host=clinic-srv1 app=chaos[%d] seq %d\n" % (ident % 977, ident)
        if split:  # a half-written line the agent may see before its end arrives
            cut = self.rng.randrange(1, len(line) - 1)
            os.write(self.fd, line[:cut])
            time.sleep(self.rng.uniform(0, 0.02))
            os.write(self.fd, line[cut:])
        else:
            os.write(self.fd, line)
        self.truth.add(ident)
        if self.stale_writes:
            self.stale_writes -= 1
            if not self.stale_writes:
                self.reopen()  # postrotate: the writer finally opens the new file
                self.note("reopened")

    def rotated(self) -> list[Path]:
        return sorted((p for p in self.folder.iterdir() if p.name.startswith("app.log.")), key=lambda p: int(p.name.split(".")[2]))

    def shift(self) -> None:
        for path in reversed(self.rotated()):
            parts = path.name.split(".")
            parts[2] = str(int(parts[2]) + 1)
            path.rename(self.folder / ".".join(parts))

    def compress_old(self, keep_plain: int) -> None:
        """gzip plain rotated files past ``.keep_plain`` that nobody writes to (delaycompress)."""
        for path in self.rotated():
            number = int(path.name.split(".")[2])
            if path.suffix == ".gz" or number <= keep_plain:
                continue
            target = path.with_name(path.name + ".gz")
            target.write_bytes(gzip.compress(path.read_bytes()))
            before = path.stat()
            os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
            path.unlink()
            self.compressions += 1

    def rotate(self) -> None:
        if self.log.stat().st_size == 0 or self.stale_writes:
            return  # notifempty; and a rotation waits for the previous postrotate
        if self.rng.random() < 0.5:
            self.shift()
            self.log.rename(self.folder / "app.log.1")
            self.log.write_bytes(b"")
            self.stale_writes = self.rng.randrange(0, 40)
            if not self.stale_writes:
                self.reopen()
            self.renames += 1
            self.compress_old(keep_plain=1 if self.stale_writes else self.rng.choice((0, 1)))
            self.note(f"renamed stale={self.stale_writes}")
        else:
            self.shift()
            shutil.copyfile(self.log, self.folder / "app.log.1")
            os.truncate(self.log, 0)
            self.copytruncates += 1
            self.compress_old(keep_plain=1)
            self.note("copytruncated")

    def run(self) -> None:
        try:
            self.reopen()
            next_rotation = self.rng.randrange(200, 2000)
            while not self.stop.is_set():
                for _ in range(self.rng.randrange(1, 60)):
                    self.write_line(split=self.rng.random() < 0.01)
                if self.next_id >= next_rotation:
                    self.rotate()
                    next_rotation = self.next_id + self.rng.randrange(200, 2000)
                time.sleep(self.rng.uniform(0, 0.01))
            while self.stale_writes:
                self.write_line()
            os.close(self.fd)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            self.error = exc


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, reserved (see tests/support/ports.py)."""
    return reserve_port()


@dataclass
class Agent:
    """``normagent run`` as a child process we can kill."""

    config: Path
    output: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        env = {**os.environ, **service_environment(),
               "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "normagent", "run", "--config", str(self.config)], stdout=out, stderr=out, env=env
            )
        self.starts += 1

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def scrape(port: int) -> dict[str, float]:
    """The chaos plugin's counters and the driver's line counts, from the agent's /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        if line.startswith(("chaos_", "normagent_log_lines_total", "normagent_collector_last_success_timestamp_seconds")):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def last_success(values: dict[str, float]) -> float | None:
    """When the chaos collector last succeeded (a new value after every successful run)."""
    return values.get('normagent_collector_last_success_timestamp_seconds{collector="chaos.lines"}')


def chaos_counters(values: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in values.items() if name.startswith("chaos_")}


def catch_up(port: int, want: dict[str, float]) -> dict[str, float]:
    """The chaos counters once they equal ``want``, or once waiting can no longer change the verdict.

    A loaded machine (the whole suite beside this test) can leave the last agent a long backlog
    to read, so the wait goes on for as long as the count still rises (each rise gives another
    CATCH_UP_SECONDS, up to CATCH_UP_LIMIT in all). A count above the truth ends it at once: it
    can only rise, so no wait would set it right.
    """
    started = time.monotonic()
    deadline = started + CATCH_UP_SECONDS
    got: dict[str, float] = {}
    lines = -1.0
    while time.monotonic() < min(deadline, started + CATCH_UP_LIMIT):
        got = chaos_counters(scrape(port))
        if got == want or got.get("chaos_lines_total", 0.0) > want["chaos_lines_total"]:
            return got
        if got.get("chaos_lines_total", 0.0) > lines:
            lines = got.get("chaos_lines_total", 0.0)
            deadline = time.monotonic() + CATCH_UP_SECONDS
        time.sleep(0.5)
    return got


def verdict(got: dict[str, float], want: dict[str, float]) -> str:
    """Which way /metrics missed the truth: a double count and a lost line are different bugs."""
    lines, truth = got.get("chaos_lines_total", 0.0), want["chaos_lines_total"]
    if lines > truth:
        return f"{lines - truth:.0f} lines counted twice (or more)"
    if lines < truth:
        return f"{truth - lines:.0f} lines not counted ({CATCH_UP_SECONDS} s without progress, or {CATCH_UP_LIMIT} s in all)"
    return "the line count is right, the sums are not (a line counted in place of another)"


@pytest.mark.slow
def test_agent_killed_at_random_while_logs_rotate_counts_every_line_exactly_once(tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED", str(random.SystemRandom().randrange(10**6))))
    print(f"chaos seed {seed}: CHAOS_SEED={seed} replays this run")  # shown with any failure below
    rng = random.Random(seed)
    logs, state = tmp_path / "logs", tmp_path / "state"
    logs.mkdir()
    port = free_port()
    config = tmp_path / "normagent.toml"
    config.write_text(
        f"""
[agent]
state_dir = "{state}"
log_format = "json"

[plugins]
disable = {EVERY_BUILTIN}
extra = ["chaos_plugin"]
entry_points = false

[web]
listen = "127.0.0.1:{port}"

[collectors."chaos.lines"]
interval = "150ms"
timeout = "20s"

[collectors."chaos.lines".files]
paths = ["{logs / 'app.log'}"]
start_at = "beginning"
block_bytes = 16384
"""
    )
    agent = Agent(config, tmp_path / "agent.log")
    generator = ChaosLog(logs, random.Random(rng.random()))
    generator.reopen()  # the log exists before the agent first looks at it

    agent.start()
    writer = threading.Thread(target=generator.run, name="chaos-writer")
    try:
        # Rotated history is not read on a first start (it is not new), so the generator only
        # begins once the agent has committed its first look at the log.
        started = time.monotonic()
        while 'normagent_log_lines_total{result="parsed",source="chaos.lines"}' not in scrape(port):
            assert time.monotonic() - started < 60, f"the agent did not start; see {agent.output}"
            assert agent.process is not None and agent.process.poll() is None, f"the agent exited; see {agent.output}"
            time.sleep(0.1)
        writer.start()
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.2, 2.0))  # sometimes during start-up, mostly while reading
            agent.kill()
            generator.note("agent killed")
            time.sleep(rng.uniform(0, 0.3))
            agent.start()
        generator.stop.set()
        writer.join(timeout=60)
        assert generator.error is None, f"generator failed: {generator.error!r}"
        want = {
            "chaos_lines_total": float(generator.truth.lines),
            "chaos_id_sum_total": float(generator.truth.id_sum),
            "chaos_id_square_sum_total": float(generator.truth.square_sum),
        }
        got = catch_up(port, want)
        # A few more successful runs: nothing may be counted after the truth is reached.
        runs_seen: set[float | None] = {None}
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while len(runs_seen) < 5 and time.monotonic() < deadline:
            runs_seen.add(last_success(scrape(port)))
            time.sleep(0.05)
        assert len(runs_seen) >= 5, f"the agent stopped running its collector (seed={seed})"
        assert agent.stop() == 0
    finally:
        generator.stop.set()
        if writer.is_alive():
            writer.join(timeout=60)
        if agent.process is not None and agent.process.poll() is None:
            agent.kill()
    (tmp_path / "generator.log").write_text("\n".join(generator.events) + "\n")
    context = (
        f"seed={seed} kills={KILLS} renames={generator.renames} copytruncates={generator.copytruncates} "
        f"compressions={generator.compressions}; agent output in {agent.output}, generator's in {tmp_path}/generator.log"
    )
    with Ledger.open(state / "ledger.db") as ledger:
        final = {name: ledger.counter_total(name) for name in want}
        parsed = ledger.counter_value("normagent_log_lines_total", {"source": "chaos.lines", "result": "parsed"})
        ignored = ledger.counter_value("normagent_log_lines_total", {"source": "chaos.lines", "result": "ignored"})
    assert got == want, f"/metrics never reached the ground truth: {verdict(got, want)}: {got} != {want} ({context})"
    assert final == want, f"ledger differs from the ground truth ({context})"
    assert (parsed, ignored) == (generator.truth.lines, 0), context
    assert agent.starts == KILLS + 1
    assert generator.renames >= 3 and generator.copytruncates >= 3, f"too few rotations to mean anything ({context})"
