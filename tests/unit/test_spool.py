"""The syslog spool's reader: a real receiver on 127.0.0.1 writes a rotating spool, a collector made
by ``syslog_log_collector`` reads it into a real ledger. Every message is counted once, read files
are removed, and a file the receiver discards under a reader is never counted twice."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from normagent.errors import NoData
from normagent.ledger import Ledger
from normagent.logs import line_parser, syslog_log_collector
from normagent.model import Count, LogBlock, MetricSpec, ParseContext, ParseResult, TextBlock
from normagent.sources.spool import SPOOL_KEY, SpoolReader, SpoolShare
from normagent.sources.syslog import SPOOL_NAME, SyslogReceiver, SyslogSettings, parse_spool_line, spool_line
from normagent.testing import FakeClock, run_collector_once
from tests.unit.test_syslog import count, tcp, wait_until

METRIC = MetricSpec("test_spooled_messages_total", "counter", "Messages read from the spool.")
SMALL = SyslogSettings(udp_listen="127.0.0.1:0", tcp_listen="127.0.0.1:0", spool_file_bytes=4096, spool_max_files=1000, max_message_bytes=480)


def one_message(line: str, ctx: ParseContext) -> list[Count] | None:
    return [Count(METRIC.name)] if parse_spool_line(line.encode()) is not None else None


READER = syslog_log_collector("test.spool", help="counts spooled messages", parser=line_parser(one_message), metrics=(METRIC,))


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "ledger.db", clock=FakeClock()) as opened:
        yield opened


def share_for(spool: Path, ledger: Ledger) -> SpoolShare:
    return SpoolShare(spool, lambda: [ledger.checkpoints(READER.name).get(SPOOL_KEY)])


def counted(ledger: Ledger) -> float:
    return ledger.counter_value(METRIC.name, {})


def send(r: SyslogReceiver, messages: list[bytes], sent: list[bytes]) -> None:
    with tcp(r) as sock:
        sock.sendall(b"".join(m + b"\n" for m in messages))
    sent += messages
    wait_until(lambda: count(r, "tcp", "received") == len(sent))


def test_a_rotating_spool_is_counted_exactly_once_and_what_was_read_is_removed(tmp_path: Path, ledger: Ledger) -> None:
    clock = FakeClock()
    spool = tmp_path / "spool"
    share = share_for(spool, ledger)
    r = SyslogReceiver(SMALL, spool, clock, read_offset=share.read_offset, tick=0.02)
    r.start()
    sent: list[bytes] = []
    try:
        for run in range(8):
            send(r, [f"<13>run {run} message {i} ".encode() + b"~" * (run * 9) for i in range(40)], sent)
            clock.advance(1)
            run_collector_once(READER, ledger, syslog_spool=share, clock=clock)
            assert counted(ledger) == len(sent)
            assert r.spool.rotated() == []  # every rotated file was read to its end, and removed
    finally:
        r.stop()
    assert r.stats().discarded_messages == 0
    assert ledger.counter_value("normagent_log_lines_total", {"source": READER.name, "result": "parsed"}) == len(sent)


def test_a_crash_between_the_commit_and_the_removal_counts_nothing_twice(tmp_path: Path, ledger: Ledger) -> None:
    """The run stops right after committing the position past rotated files (the process died
    before it could delete them): the next run deletes them and counts only what is new."""
    clock = FakeClock()
    spool = tmp_path / "spool"
    share = share_for(spool, ledger)
    r = SyslogReceiver(SMALL, spool, clock, read_offset=share.read_offset, tick=0.02)
    r.start()
    sent: list[bytes] = []
    try:
        for step in range(20):  # one write each: the receiver rotates between writes
            send(r, [f"<13>before the crash {step}.{i} ".encode() + b"." * 60 for i in range(10)], sent)
        ledger.declare(READER.metrics)
        from normagent.testing import make_context

        ctx = make_context(READER, state=ledger.checkpoints(READER.name), syslog_spool=share, clock=clock)
        batches = iter(READER.collect(ctx))
        ledger.commit(READER.name, next(batches))
        batches.close()  # the process dies here: committed, and the run never resumes
        assert counted(ledger) == 200
        left_behind = r.spool.rotated()
        assert left_behind  # still on disk: the removal comes after the commit
        send(r, [b"<13>after the crash"], sent)
        run_collector_once(READER, ledger, syslog_spool=share, clock=clock)
    finally:
        r.stop()
    assert counted(ledger) == len(sent) == 201
    assert not any(p.exists() for p in left_behind)


def test_a_file_the_receiver_discards_under_the_reader_is_never_counted_twice(tmp_path: Path, ledger: Ledger) -> None:
    """The receiver takes the oldest rotated file (spool_max_files) while the reader holds
    uncommitted lines of it: those lines are dropped, the receiver counts them as discarded, and
    read + discarded is exactly what was sent."""
    clock = FakeClock()
    spool = tmp_path / "spool"
    share = share_for(spool, ledger)
    r = SyslogReceiver(SMALL, spool, clock, read_offset=share.read_offset, tick=0.02)
    r.start()
    sent: list[bytes] = []
    try:
        for step in range(15):
            send(r, [f"<13>early {step}.{i} ".encode() + b"." * 60 for i in range(10)], sent)
    finally:
        r.stop()
    oldest = r.spool.rotated()[0]
    raced: list[int] = []

    def receiver_discards_midway(line: str, ctx: ParseContext) -> list[Count] | None:
        if not raced:  # what the receiver's writer thread does to make room, while the reader reads
            raced.append(share.read_offset(oldest))
            raced.append(sum(1 for _ in oldest.open("rb")))
            oldest.unlink()
        return one_message(line, ctx)

    racing = syslog_log_collector("test.spool", help="", parser=line_parser(receiver_discards_midway), metrics=(METRIC,), commit_bytes=1)
    with capture_logs() as logs:
        run_collector_once(racing, ledger, syslog_spool=share, clock=clock)
    assert "syslog_spool_overtaken" in [e["event"] for e in logs]
    assert raced[0] == 0 and counted(ledger) == 0  # nothing of the taken file was committed
    run_collector_once(READER, ledger, syslog_spool=share, clock=clock)
    assert counted(ledger) + raced[1] == len(sent)


def test_a_half_written_line_waits_and_a_position_in_a_reused_inode_is_not_trusted(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    current = spool / SPOOL_NAME
    current.write_bytes(b"2026-01-01T00:00:00.000000Z 127.0.0.1 <13>one\n2026-01-01T00:00:00.000000Z 127.0.0.1 <13>tw")
    steps = list(SpoolReader(spool, None).reads())
    assert [s.block.data.count(b"\n") for s in steps if s.block] == [1]
    position = steps[-1].checkpoint
    # The file is replaced by another with the same inode number but other first bytes.
    current.unlink()
    current.write_bytes(b"2026-01-02T00:00:00.000000Z 127.0.0.1 <13>other\n")
    again = list(SpoolReader(spool, position).reads())
    assert [s.block.data for s in again if s.block] == [current.read_bytes()]


def test_a_fifo_or_a_directory_under_a_spool_name_is_left_out_and_logged_never_waited_on(tmp_path: Path) -> None:
    """Opening a FIFO to read waits for a writer for ever: the reader (and the receiver, which asks
    the reader before it deletes a rotated file) would hang. Such names are skipped, and said."""
    stamp = datetime(2026, 12, 7, tzinfo=timezone.utc)
    first, last = spool_line(stamp, "192.0.2.1", b"<13>first"), spool_line(stamp, "192.0.2.1", b"<13>last")
    (tmp_path / f"{SPOOL_NAME}-20261207-000000-000001").write_bytes(first)
    fifo = tmp_path / f"{SPOOL_NAME}-20261207-000000-000002"
    os.mkfifo(fifo)
    directory = tmp_path / f"{SPOOL_NAME}-20261207-000000-000003"
    directory.mkdir()
    (tmp_path / SPOOL_NAME).write_bytes(last)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a writer, so that a reader opening it would not wait here
    try:
        with capture_logs() as logs:
            steps = list(SpoolReader(tmp_path, None).reads())
            offset = SpoolShare(tmp_path).read_offset(fifo)
    finally:
        os.close(writer)

    assert [step.block.data for step in steps if step.block] == [first, last]
    assert offset == 0
    left_out = {e["file"] for e in logs if e["event"] == "syslog_spool_not_a_file" and e["log_level"] == "warning"}
    assert left_out == {str(fifo), str(directory)}


def test_without_a_receiver_the_collector_has_no_data(ledger: Ledger) -> None:
    with pytest.raises(NoData, match=r"\[syslog\]"):
        run_collector_once(READER, ledger)


def gathering_parser(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """Counts spool lines in its carry and writes the total only when asked with an empty block
    (the end of a run) or ``final``: a parser that gathers across the blocks of a backlog."""
    assert isinstance(block, TextBlock)
    total = (ctx.carry if isinstance(ctx.carry, int) else 0) + block.line_count
    result = ParseResult(parsed=block.line_count)
    if not block.data or ctx.final:
        result.observations.append(Count(METRIC.name, {}, total))
        return result
    result.carry = total
    return result


def test_the_spool_reader_settles_a_parsers_carry_at_the_end_of_a_run(tmp_path: Path, ledger: Ledger) -> None:
    """As the file reader does: what a parser gathered across blocks is written when the run has
    read all there was, in the run's last batch, and the carry is gone."""
    spool = tmp_path / "spool"
    spool.mkdir()
    at = datetime(2026, 11, 23, 7, tzinfo=timezone.utc)
    (spool / SPOOL_NAME).write_bytes(b"".join(spool_line(at, "192.0.2.1", b"<134>message %d" % i) for i in range(5000)))
    reader = syslog_log_collector("test.gathering", help="gathers spooled messages", parser=gathering_parser, metrics=(METRIC,))
    share = SpoolShare(spool, lambda: [ledger.checkpoints(reader.name).get(SPOOL_KEY)])

    run_collector_once(reader, ledger, syslog_spool=share)

    assert counted(ledger) == 5000
    assert ledger.checkpoints(reader.name).get("carry:" + SPOOL_KEY) is None


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.sampled_from([b"<13>a", b"<13>" + b"x" * 37, b"\n", b"\n", b"\n", b"\xc3\xa9", b"\n" * 3]), max_size=50).map(b"".join),
    st.integers(2, 40),
)
def test_blocks_read_straight_into_kept_objects_are_the_spool_s_lines(tmp_path_factory: pytest.TempPathFactory, data: bytes, block_bytes: int) -> None:
    """The reader's blocks (read with ``BlockCopies.pread``, or again into a growing buffer when a
    read holds no newline) are the file's complete lines in order, each block whole lines, the
    same as with a fresh object per block (the fallback without the compiled module)."""
    from normagent.sources import spool as spool_module
    from normagent.sources.lines import _BlockCopiesByBytes

    spool = tmp_path_factory.mktemp("spool")
    (spool / SPOOL_NAME).write_bytes(data)

    def steps() -> list[tuple[bytes, int, int, str]]:
        return [(s.block.data, s.block.line_count, s.bytes_read, s.position) for s in SpoolReader(spool, None, block_bytes=block_bytes).reads() if s.block]

    direct = steps()
    held = [block for block, *_ in direct]
    assert b"".join(held) == data[: data.rfind(b"\n") + 1]
    assert all(block.endswith(b"\n") and lines == block.count(b"\n") for block, lines, *_ in direct)
    original = spool_module.BlockCopies
    spool_module.BlockCopies = _BlockCopiesByBytes  # type: ignore[misc]
    try:
        assert steps() == direct
    finally:
        spool_module.BlockCopies = original  # type: ignore[misc]
