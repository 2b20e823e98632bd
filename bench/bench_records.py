"""Benchmarks of the structured-record and network sources: EVTX, journald, the syslog receiver.

    .venv/bin/python bench/bench_records.py            # everything, about a minute
    .venv/bin/python bench/bench_records.py --only syslog

What is measured, each in one run (the machine is shared and noisy: read figures as ratios):

* EVTX: records/s of a full read of tests/fixtures/evtx/security.evtx into WindowsEvent records,
  next to the evtx parser alone (records_json + json.loads); and the cost of a resume cycle with the
  position in the last chunk, next to a full read: the reader parses only the chunks after the
  position, so the ratio should be near 1/26 (the file has 26 chunks).
* journald: entries/s of read_journal over a generated journal (systemd-journal-remote, 50,000
  entries) through each reader (libsystemd, journalctl), next to `journalctl -o json` alone into
  /dev/null, taken in turn, medians; and the cost of one cycle with nothing new (what a collector
  pays every interval). Exits non-zero if a reader's count or cursors differ.
* syslog: messages/s accepted *durably* (counted only after fsync) over one TCP connection and
  over 8, octet-counted and newline framing; and over UDP, with what the kernel dropped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any
from pathlib import Path

from evtx import PyEvtxParser

from normagent.clock import SystemClock
from normagent.log import configure_logging
from normagent.sources.command import run_command
from normagent.sources.evtx import EvtxPosition, read_evtx, scan_chunks
from normagent.sources.journald import JournalSettings, read_journal

# The fields access.logins declares (plugins/access/journal.py LOGIN_FIELDS).
ACCESS_FIELDS = ("MESSAGE", "SYSLOG_IDENTIFIER|_COMM")
from normagent.sources.syslog import SyslogReceiver, SyslogSettings

ROOT = Path(__file__).resolve().parents[1]
EVTX = ROOT / "tests" / "fixtures" / "evtx" / "security.evtx"


def best(runs: int, fn: Callable[[], object]) -> float:
    """Fastest of ``runs`` timings, in seconds (the least disturbed by the noisy neighbours)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


# --------------------------------------------------------------------------------------------


def bench_evtx() -> None:
    def full() -> int:
        return sum(len(block.records) for block, _ in read_evtx(EVTX))

    def parser_only() -> int:
        return sum(1 for record in PyEvtxParser(str(EVTX), number_of_threads=1).records_json() if json.loads(record["data"]))

    records = full()
    chunks, _ = scan_chunks(EVTX)
    last_chunk_first = max(c.first for c in chunks)
    whole = read_evtx(EVTX)
    list(whole)
    position = EvtxPosition(last_chunk_first + 5, "", 0)

    def resume() -> int:
        return sum(len(block.records) for block, _ in read_evtx(EVTX, position=position))

    t_full, t_parser, t_resume = best(7, full), best(7, parser_only), best(7, resume)
    print(f"evtx  full read       {records} records in {t_full * 1000:7.1f} ms = {records / t_full:>10,.0f} records/s")
    print(f"evtx  parser alone    {records} records in {t_parser * 1000:7.1f} ms = {records / t_parser:>10,.0f} records/s"
          f"  (reader/parser time {t_full / t_parser:.2f}x)")
    print(f"evtx  resume cycle    last chunk only       {t_resume * 1000:7.1f} ms  ({t_resume / t_full:.3f} of a full read, "
          f"{len(chunks)} chunks)")


# --------------------------------------------------------------------------------------------


def export_entries(n: int) -> bytes:
    out = bytearray()
    for i in range(n):
        fields = {
            "__REALTIME_TIMESTAMP": str(1_772_431_200_000_000 + i * 1000),
            "__MONOTONIC_TIMESTAMP": str(5_000_000 + i * 1000),
            "_BOOT_ID": "4f1c2b3a5d6e47f8901a2b3c4d5e6f70",
            "_HOSTNAME": "clinic-srv1",
            "_TRANSPORT": "syslog",
            "PRIORITY": str(i % 8),
            "SYSLOG_IDENTIFIER": "sshd" if i % 3 else "CRON",
            "_SYSTEMD_UNIT": "ssh.service" if i % 3 else "cron.service",
            "_PID": str(1000 + i % 500),
            "MESSAGE": f"Failed password for invalid user u{i % 97} from 203.0.113.{i % 250} port {40000 + i % 20000} ssh2",
        }
        for name, value in fields.items():
            out += f"{name}={value}\n".encode()
        out += b"\n"
    return bytes(out)


def cpu_seconds() -> float:
    """CPU time of this process and of its children that ended (journalctl)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def journal_remote() -> str | None:
    for candidate in (shutil.which("systemd-journal-remote"), "/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def journald_at(rev: str, into: Path) -> Any:
    """normagent/sources/journald.py as it is at commit ``rev``, imported on its own (it imports
    only normagent.errors and normagent.model, which are this tree's)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:normagent/sources/journald.py"], capture_output=True, check=True).stdout
    path = into / "journald_at_rev.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("journald_at_rev", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def bench_journald(entries: int, runs: int, compare_with: str | None = None) -> None:
    """The two journal readers and ``journalctl -o json`` alone, in turn, ``runs`` times each; medians.

    "touched" reads what the access parsers look at in every entry (MESSAGE, the identifier,
    PRIORITY): the libsystemd reader decodes a field when it is looked at, so its figure alone
    would flatter it.
    """
    remote = journal_remote()
    if remote is None or shutil.which("journalctl") is None:
        print("journald  skipped: needs journalctl and systemd-journal-remote (scripts/servers unpacks it)")
        return
    configure_logging("warning", "json", sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        # A directory: systemd-journal-remote rotates its output file past ~16 MiB (about 50,000
        # entries), and the readers must see every file of the journal.
        directory = Path(tmp) / "journal"
        directory.mkdir()
        subprocess.run([remote, f"--output={directory / 'bench.journal'}", "-"], input=export_entries(entries), check=True, capture_output=True)

        def settings(reader: str) -> JournalSettings:
            return JournalSettings(directory=str(directory), start="beginning", block_entries=1000, reader=reader)  # type: ignore[arg-type]

        def read_all(reader: str, fields: tuple[str, ...] | None = None) -> int:
            return sum(len(block.records) for block, _ in read_journal(run_command, settings=settings(reader), fields=fields))

        def touched(reader: str, fields: tuple[str, ...] | None = None) -> int:
            n = 0
            for block, _ in read_journal(run_command, settings=settings(reader), fields=fields):
                for entry in block.records:
                    entry.message, entry.identifier, entry.fields.get("PRIORITY")  # type: ignore[union-attr]
                    n += 1
            return n

        def journalctl_alone() -> int:
            subprocess.run(["journalctl", f"--directory={directory}", "--output=json", "--all"], stdout=subprocess.DEVNULL, check=True)
            return entries

        for reader in ("journalctl", "libsystemd"):
            got = read_all(reader)
            assert got == entries, (reader, got, entries)
        blocks = {reader: list(read_journal(run_command, settings=settings(reader))) for reader in ("journalctl", "libsystemd")}
        assert [c for _, c in blocks["journalctl"]] == [c for _, c in blocks["libsystemd"]], "the readers' cursors differ"
        declared = list(read_journal(run_command, settings=settings("libsystemd"), fields=ACCESS_FIELDS))
        assert [c for _, c in declared] == [c for _, c in blocks["journalctl"]], "declared fields: the cursors differ"
        assert [(e.message, e.identifier, e.realtime) for b, _ in declared for e in b.records] == [  # type: ignore[union-attr]
            (e.message, e.identifier, e.realtime) for b, _ in blocks["journalctl"] for e in b.records  # type: ignore[union-attr]
        ], "declared fields: the entries differ"
        last = blocks["libsystemd"][-1][1]

        def idle(reader: str) -> int:
            return sum(len(b.records) for b, _ in read_journal(run_command, cursor=last, settings=settings(reader)))

        cases: dict[str, Callable[[], object]] = {}
        if compare_with:
            old = journald_at(compare_with, Path(tmp))
            old_settings = old.JournalSettings(directory=str(directory), start="beginning", block_entries=1000)

            def read_at_rev() -> int:
                return sum(len(block.records) for block, _ in old.read_journal(run_command, settings=old_settings))

            got = read_at_rev()
            assert got == entries, (compare_with, got, entries)
            cases[f"read_journal at {compare_with}"] = read_at_rev
        cases |= {
            "journalctl -o json alone": journalctl_alone,
            "reader: journalctl": lambda: read_all("journalctl"),
            "reader: libsystemd": lambda: read_all("libsystemd"),
            "reader: libsystemd, touched": lambda: touched("libsystemd"),
            "libsystemd, access's fields": lambda: read_all("libsystemd", ACCESS_FIELDS),
            "libsystemd, access's, touched": lambda: touched("libsystemd", ACCESS_FIELDS),
            "reader: journalctl, touched": lambda: touched("journalctl"),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        idles: dict[str, list[float]] = {"journalctl": [], "libsystemd": []}
        for _ in range(runs):  # in turn: the machine's load weighs on all alike
            for name, fn in cases.items():
                started, cpu = time.perf_counter(), cpu_seconds()
                fn()
                times[name].append(time.perf_counter() - started)
                cpus[name].append(cpu_seconds() - cpu)
            for reader in idles:
                started = time.perf_counter()
                idle(reader)
                idles[reader].append(time.perf_counter() - started)
    alone = statistics.median(times["journalctl -o json alone"])
    alone_cpu = statistics.median(cpus["journalctl -o json alone"])
    print(f"journald  {entries} entries, blocks of 1000, median of {runs} runs in turn (load average {os.getloadavg()[0]:.1f});")
    print("          wall time, then CPU time (this process and its children: what the load does not stretch):")
    for name, spent in times.items():
        median, cpu = statistics.median(spent), statistics.median(cpus[name])
        print(f"  {name:30s} {median:6.2f} s = {entries / median:>9,.0f} entries/s ({alone / median:.2f}x journalctl's rate); "
              f"CPU {cpu:6.2f} s = {entries / cpu:>9,.0f} entries/s ({alone_cpu / cpu:.2f}x)")
    for reader, spent in idles.items():
        print(f"  idle cycle, {reader:11s}       nothing new: {statistics.median(spent) * 1000:6.1f} ms")


# --------------------------------------------------------------------------------------------


def bench_syslog(messages: int) -> None:
    configure_logging("warning", "json", sys.stderr)
    line = b"<134>Nov  8 12:37:34 pfSense filterlog: 5,,,1000102433,em0,match,block,in,4,0x0,,128,24677,0,none,17,udp,186,10.9.0.119,10.9.0.255,17500,17600,166"
    framed = {"newline": line + b"\n", "octet-counted": str(len(line)).encode() + b" " + line}
    for connections in (1, 8):
        for framing, frame in framed.items():
            with tempfile.TemporaryDirectory() as tmp:
                r = SyslogReceiver(SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0", spool_file_bytes=2**30), Path(tmp), SystemClock())
                r.start()
                host, port = r.bound_addresses()[0][1:]
                per = messages // connections
                payload = frame * per

                def send() -> None:
                    with socket.create_connection((host, port)) as sock:
                        sock.sendall(payload)

                started = time.perf_counter()
                threads = [threading.Thread(target=send) for _ in range(connections)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                while r.stats().messages[("tcp", "received")] < per * connections:
                    time.sleep(0.001)
                took = time.perf_counter() - started
                r.stop()
                lines = (Path(tmp) / "syslog.log").read_bytes().count(b"\n")
            assert lines == per * connections
            print(f"syslog  tcp {connections} conn {framing:13s} {per * connections} messages in {took:5.2f} s = {per * connections / took:>9,.0f} messages/s durable")

    with tempfile.TemporaryDirectory() as tmp:
        r = SyslogReceiver(SyslogSettings(udp_listen="127.0.0.1:0", tcp_listen="", spool_file_bytes=2**30), Path(tmp), SystemClock())
        r.start()
        host, port = r.bound_addresses()[0][1:]
        started = time.perf_counter()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(messages):
                sock.sendto(line, (host, port))
        sent_in = time.perf_counter() - started
        deadline = time.monotonic() + 10
        last, same_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = r.stats().messages[("udp", "received")]
            if now == messages:
                break
            if now != last:
                last, same_since = now, time.monotonic()
            elif time.monotonic() - same_since > 1.0:
                break  # nothing more is coming: the rest was dropped by the kernel
            time.sleep(0.01)
        took = time.perf_counter() - started
        r.stop()
        got = r.stats().messages[("udp", "received")]
        dropped = r.stats().messages[("udp", "dropped")]
    print(f"syslog  udp               {messages} sent in {sent_in:5.2f} s, {got} spooled ({got / messages:.1%}) in {took:5.2f} s = {got / took:>9,.0f} messages/s;"
          f" {dropped} counted dropped by the kernel (unaccounted: {messages - got - dropped}, the tail after the last datagram read)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["evtx", "journald", "syslog"])
    parser.add_argument("--journal-entries", type=int, default=50_000)
    parser.add_argument("--journal-runs", type=int, default=5)
    parser.add_argument("--compare-with", metavar="REV", help="also time read_journal as it is at this commit (journald)")
    parser.add_argument("--syslog-messages", type=int, default=200_000)
    args = parser.parse_args()
    if args.only in (None, "evtx"):
        bench_evtx()
    if args.only in (None, "journald"):
        bench_journald(args.journal_entries, args.journal_runs, args.compare_with)
    if args.only in (None, "syslog"):
        bench_syslog(args.syslog_messages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
