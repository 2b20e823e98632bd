"""EVTX read in a child process: the same blocks, positions and stats as in the agent's own process,
and every way the child can fail ends in a clear error with the child reaped, never in a hang or a
crash of the agent. Real child processes throughout; a crash or a hang is played by a worker
command that does it (``command=``, or ``WORKER_COMMAND`` for readers a collector creates).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pytest

from normagent.model import RecordBlock, WindowsEvent
from normagent.sources import evtx_worker
from normagent.sources.evtx import CHUNK_BYTES, HEADER_BYTES, ChunkSpan, EvtxFileError, EvtxPosition, EvtxStats, read_evtx
from normagent.sources.evtx_process import EvtxCrash, EvtxProcessReader, read_evtx_in_child
from normagent.model import JSONValue
from tests.support.evtx_workers import chunk_crashing_worker, crashing_worker, python

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "evtx"
SECURITY = FIXTURES / "security.evtx"
def fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def assert_nothing_left(before: set[str]) -> None:
    """No child process (running or zombie) and no file descriptor outlives the reader."""
    assert psutil.Process().children() == []
    assert fds() <= before  # listdir's own descriptor is gone again by the time it returns


def passes(reader: EvtxProcessReader | object) -> list[tuple[RecordBlock, int, EvtxPosition, EvtxStats]]:
    """Each block with the reader's position and a copy of its stats right after it."""
    seen = []
    for block, last in reader:  # type: ignore[attr-defined]
        stats = EvtxStats(**reader.stats.to_json())  # type: ignore[attr-defined, arg-type]
        seen.append((block, last, reader.position, stats))  # type: ignore[attr-defined]
    return seen


@pytest.mark.parametrize("name", ["security.evtx", "system.evtx", "Security_short_selected.evtx"])
def test_the_child_gives_what_the_reader_in_this_process_gives(name: str) -> None:
    """Lossless: the same events (aware times, 64-bit keywords, data), positions and stats, block by block,
    from the start, from a committed position and with filters."""
    path = FIXTURES / name
    first = read_evtx(path, block_records=100)
    whole = passes(first)
    middle = whole[len(whole) // 2][2]
    for kwargs in ({}, {"position": middle}, {"channels": ["SECURITY"], "event_ids": [4624, 4625, 7036]}):
        here = read_evtx(path, block_records=100, **kwargs)  # type: ignore[arg-type]
        there = read_evtx_in_child(path, block_records=100, **kwargs)  # type: ignore[arg-type]
        expected, got = passes(here), passes(there)
        assert got == expected and (there.position, there.stats) == (here.position, here.stats)
    assert any(e.keywords >= 2**63 for block, *_ in whole for e in block.records)  # type: ignore[union-attr]


def test_the_agent_s_side_of_a_pass_does_not_import_the_reader() -> None:
    """The reader (normagent.sources.evtx, with evtx) runs in the worker; the agent keeps only the
    types of normagent.sources.evtx_state (issue 15: the idle agent's memory)."""
    probe = (
        "import sys; from pathlib import Path; from normagent.sources.evtx_process import read_evtx_in_child; "
        f"blocks = list(read_evtx_in_child(Path({str(SECURITY)!r}), block_records=100)); "
        "print(len(blocks), sorted({'normagent.sources.evtx', 'evtx'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    count, imported = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) > 1 and imported == "[]"


def test_windows_event_json_round_trip_keeps_types_and_rejects_what_is_no_event() -> None:
    event = WindowsEvent(
        record_id=7, time=datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))), channel="Security",
        provider="Microsoft-Windows-Security-Auditing", event_id=4625, level=0, keywords=0x8010000000000000 | (1 << 63),
        computer="DC1", data={"TargetUserName": "ålesund\udcff", "0": ""},
    )
    back = WindowsEvent.from_json(json.loads(json.dumps(event.to_json())))
    assert back == event and back.time.utcoffset() == timedelta(hours=2) and back.keywords == event.keywords
    good = event.to_json()
    for bad in ([*good[:8]], [*good[:1], "yesterday", *good[2:]], [*good[:1], "2024-03-01T12:00:00", *good[2:]],
                [True, *good[1:]], [*good[:8], {"a": 1}], {"record_id": 7}, None):
        with pytest.raises(ValueError, match="not a Windows event"):
            WindowsEvent.from_json(bad)  # type: ignore[arg-type]


def test_evtx_stats_json_round_trip_rejects_missing_or_wrong_fields() -> None:
    stats = EvtxStats(records=3, matched=2, skipped=1, replaced=True, truncated=True)
    assert EvtxStats.from_json(json.loads(json.dumps(stats.to_json()))) == stats
    for bad in ({**stats.to_json(), "records": -1}, {**stats.to_json(), "replaced": 1}, {**stats.to_json(), "records": True},
                {**stats.to_json(), "extra": 0}, {k: v for k, v in stats.to_json().items() if k != "lost"}, []):
        with pytest.raises(ValueError, match="not EVTX stats"):
            EvtxStats.from_json(bad)  # type: ignore[arg-type]


def test_errors_come_back_as_the_reader_in_this_process_raises_them(tmp_path: Path) -> None:
    junk, empty = tmp_path / "junk.evtx", tmp_path / "empty.evtx"
    junk.write_bytes(b"not an event log" * 100)
    empty.write_bytes(b"")
    with pytest.raises(EvtxFileError, match="not an EVTX file") as raised:
        list(read_evtx_in_child(junk))
    assert raised.value.incomplete is False
    with pytest.raises(EvtxFileError, match="empty file") as raised:
        list(read_evtx_in_child(empty))
    assert raised.value.incomplete is True
    with pytest.raises(OSError) as missing:
        list(read_evtx_in_child(tmp_path / "gone.evtx"))
    assert missing.value.errno == errno.ENOENT and missing.value.filename == str(tmp_path / "gone.evtx")


def test_a_worker_request_that_is_not_one_is_answered_with_an_error() -> None:
    said: list[dict[str, JSONValue]] = []
    for request in ({"path": 3}, {"path": "x", "channels": [], "event_ids": [], "block_records": 0, "position": None}, []):
        assert evtx_worker.serve(request, said.append) == 2
    assert [a["error"] for a in said] == ["request"] * 3


@pytest.mark.parametrize("signal_name", ["SIGSEGV", "SIGABRT", "SIGKILL"])
def test_a_child_killed_by_a_signal_is_a_crash_naming_the_file_and_the_signal(signal_name: str) -> None:
    before = fds()
    reader = read_evtx_in_child(SECURITY, block_records=100, command=crashing_worker(2, signal_name))
    got = []
    with pytest.raises(EvtxFileError, match=f"{SECURITY}: the evtx parser crashed \\(killed by {signal_name}\\)"):
        for block, _ in reader:
            got.append((block, reader.position))
    # What came before the crash is delivered, with the position after it.
    assert [len(b.records) for b, _ in got] == [100, 100] and reader.position.record_id == 200
    assert_nothing_left(before)


CHUNK_2 = ChunkSpan(HEADER_BYTES + 2 * CHUNK_BYTES, 178, 260)  # security.evtx's third chunk


@pytest.mark.parametrize("signal_name", ["SIGSEGV", "SIGABRT", "SIGKILL"])
def test_a_crash_names_the_chunk_the_parser_held_and_a_second_one_there_skips_it(signal_name: str) -> None:
    """The worker announces each chunk before parsing it: a crash (SIGKILL from outside too: the
    OOM killer) names the file, the chunk's offset and its records. Once marked twice in the
    position, the chunk is skipped and the rest read; its records counted unreadable once."""
    before = fds()
    crashing = chunk_crashing_worker(CHUNK_2.offset, signal_name)
    position = EvtxPosition()
    delivered: list[int] = []
    for crash in (1, 2):
        reader = read_evtx_in_child(SECURITY, block_records=100, position=position, command=crashing)
        with pytest.raises(EvtxCrash) as raised:
            for block, _ in reader:
                delivered.extend(e.record_id for e in block.records)  # type: ignore[union-attr]
        assert str(raised.value) == f"{SECURITY}: the evtx parser crashed (killed by {signal_name}) in chunk at offset 135,168 (records 178..260)"
        assert raised.value.chunk == CHUNK_2 and reader.position.record_id == 100
        position = reader.position.after_crash(CHUNK_2)
        assert (position.crashes, position.skips(CHUNK_2)) == (crash, crash == 2)
    reader = read_evtx_in_child(SECURITY, block_records=100, position=position, command=crashing)
    delivered += [e.record_id for block, _ in reader for e in block.records]  # type: ignore[union-attr]
    assert delivered == [*range(1, 178), *range(261, 2262)]
    assert (reader.stats.unreadable, reader.stats.chunks_skipped, reader.position.crashed) == (83, 1, None)
    assert_nothing_left(before)


def test_a_crash_before_any_chunk_names_none_and_a_hang_names_the_chunk_it_hung_in() -> None:
    with pytest.raises(EvtxCrash, match=r"crashed \(killed by SIGSEGV\)$") as raised:
        list(read_evtx_in_child(SECURITY, command=python(
            "import os, resource, signal, sys; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); sys.stdin.read(); os.kill(os.getpid(), signal.SIGSEGV)"
        )))
    assert raised.value.chunk is None
    announce_and_hang = python(
        'import signal, sys; sys.stdin.read(); print(\'{"chunk": {"offset": 135168, "first": 178, "last": 260}}\', flush=True); signal.pause()'
    )
    with pytest.raises(EvtxCrash, match=r"hung \(nothing from it in 0.3 s\) in chunk at offset 135,168 \(records 178..260\); it was stopped") as hung:
        list(read_evtx_in_child(SECURITY, command=announce_and_hang, chunk_silence=0.3))
    assert hung.value.chunk == CHUNK_2
    # Out of the parser, the chunk's short wait no longer holds, and no chunk is to blame.
    let_go = python(
        'import sys, time; sys.stdin.read(); print(\'{"chunk": {"offset": 135168, "first": 178, "last": 260}}\', flush=True); '
        'print(\'{"chunk": null}\', flush=True); time.sleep(0.6)'
    )
    with pytest.raises(EvtxCrash, match=r"crashed \(it ended without finishing its answer; exit status 0\)$") as ended:
        list(read_evtx_in_child(SECURITY, command=let_go, chunk_silence=0.2))
    assert ended.value.chunk is None


def test_a_child_that_exits_without_its_last_line_is_a_crash_with_its_status_and_last_words() -> None:
    before = fds()
    command = python("import sys; sys.stdin.read(); sys.stderr.write('thread main panicked at src/binxml.rs\\n'); sys.exit(101)")
    with pytest.raises(EvtxFileError, match=r"crashed \(exit status 101\): thread main panicked at src/binxml.rs"):
        list(read_evtx_in_child(SECURITY, command=command))
    with pytest.raises(EvtxFileError, match=r"crashed \(it ended without finishing its answer; exit status 0\)"):
        list(read_evtx_in_child(SECURITY, command=python("import sys; sys.stdin.read()")))
    assert_nothing_left(before)


def test_a_child_stopped_by_sigterm_is_not_the_file_s_fault() -> None:
    """A stop signal to the whole process group ends the run; the file is not marked damaged."""
    with pytest.raises(ChildProcessError, match="stopped by SIGTERM"):
        list(read_evtx_in_child(SECURITY, command=crashing_worker(0, "SIGTERM")))


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("garbage\\n", "sent an unreadable line: b'garbage'"),
        ("[1, 2]\\n", "sent an unreadable line"),
        ('{\\"block\\": [[1]], \\"origin\\": \\"x\\", \\"last\\": 1}\\n', "sent a block that is not one: not a Windows event"),
        ('{\\"end\\": true, \\"position\\": 5}\\n', "sent a last line that is not one"),
        ('{\\"block\\": [', r"crashed \(its last line is cut short after 11 bytes; exit status 0\)"),
        ('{\\"error\\": \\"os\\"}\\n', "sent an unreadable line"),
        ('{\\"chunk\\": {\\"offset\\": -1, \\"first\\": 1, \\"last\\": 2}}\\n', "sent an unreadable line: not an EVTX chunk"),
    ],
)
def test_garbage_from_the_child_is_a_clear_error(output: str, message: str) -> None:
    before = fds()
    command = python(f'import sys; sys.stdin.read(); sys.stdout.write("{output}")')
    with pytest.raises(EvtxFileError, match=message):
        list(read_evtx_in_child(SECURITY, command=command))
    assert_nothing_left(before)


def test_a_consumer_that_stops_early_leaves_no_child_and_no_descriptor() -> None:
    before = fds()
    reader = read_evtx_in_child(SECURITY, block_records=10)
    blocks = iter(reader)
    assert len(next(blocks)[0].records) == 10
    assert len(psutil.Process().children()) == 1  # the child is still reading
    blocks.close()  # GeneratorExit: the run timed out, was stopped, or the collector ended
    assert_nothing_left(before)
    with read_evtx_in_child(SECURITY, block_records=10) as reader:
        for _ in reader:
            break  # leaving the with block ends the child even before the generator is collected
    assert_nothing_left(before)


def test_a_child_that_hangs_is_killed_after_its_silence_and_at_the_run_s_deadline() -> None:
    before = fds()
    hang = python("import signal; signal.pause()")
    with pytest.raises(EvtxFileError, match=r"the evtx parser hung \(nothing from it in 0.3 s\)"):
        list(read_evtx_in_child(SECURITY, command=hang, silence=0.3))
    assert_nothing_left(before)
    with pytest.raises(TimeoutError, match="stopped at the run's deadline"):
        list(read_evtx_in_child(SECURITY, command=hang, deadline=time.monotonic() + 0.3))
    assert_nothing_left(before)


def test_the_agent_process_never_loads_the_native_parser(tmp_path: Path) -> None:
    """The point of the child: a collector run reads every record, yet ``evtx`` (and the allocator
    churn of its JSON) stays out of the agent's process."""
    probe = textwrap.dedent(
        f"""
        import sys
        from dataclasses import dataclass
        from normagent.logs import evtx_log_collector
        from normagent.model import MetricSpec, ParseResult
        from normagent.sources.evtx import EvtxSettings
        from normagent.testing import run_collector_once

        @dataclass(frozen=True)
        class Windows:
            evtx: EvtxSettings = EvtxSettings(paths=({str(SECURITY)!r},))

        seen = []
        def parse(block, ctx):
            seen.extend(block.records)
            return ParseResult(ignored=len(block.records))

        spec = evtx_log_collector("test.windows", help="w", parser=parse, settings=Windows,
                                  metrics=(MetricSpec("test_total", "counter", "t.", section="Driftsstatus"),))
        run_collector_once(spec)
        print(len(seen), "evtx" in sys.modules)
        """
    )
    import subprocess

    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2261", "False"]


def test_a_pass_is_iterated_once() -> None:
    """A second iteration would start again from the first position and count everything twice."""
    reader = read_evtx_in_child(FIXTURES / "new-user-security.evtx")
    assert sum(len(block.records) for block, _ in reader) == 4
    with pytest.raises(RuntimeError, match="iterated once"):
        list(reader)


def test_a_stop_signal_to_the_agent_s_process_group_does_not_end_the_child_mid_pass() -> None:
    """``systemctl stop`` signals the whole cgroup: the child ignores SIGTERM and SIGINT, and the
    agent, which decides when to stop reading, ends it itself."""
    import signal

    reader = read_evtx_in_child(SECURITY, block_records=100)
    blocks = iter(reader)
    total = len(next(blocks)[0].records)  # the worker has started, its handlers are set
    [child] = psutil.Process().children()
    child.send_signal(signal.SIGTERM)
    child.send_signal(signal.SIGINT)
    total += sum(len(block.records) for block, _ in blocks)
    assert total == 2261 and reader.position.record_id == 2261
