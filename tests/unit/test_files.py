"""The file tail: every rotation case, each asserting exactly which lines are read, and when.

Lines carry unique ids, so "exactly once" is checked as: the ids read, in order, are exactly the
ids written. ``Reader`` commits every step's checkpoint to a ``MemoryCheckpoints``, as the ledger
would, and can stop early to play a crash before commit.
"""

from __future__ import annotations

import bz2
import errno
import glob
import gzip
import json
import lzma
import os
import shutil
import socket
import tempfile
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from structlog.testing import capture_logs
from hypothesis import strategies as st

from normagent.ledger import Ledger
from normagent.model import Batch, Checkpoint
from normagent.sources.files import (
    FINGERPRINT_BYTES,
    FileSource,
    FileTail,
    NotRegularFile,
    _Moved,
    _open_pinned,
    _PathState,
    _glob_matches,
    _Tracked,
    codec_of,
    error_reason,
    glob_paths,
    invalid_utf8_lines,
    lag_bytes,
    list_siblings,
    read_whole,
)
from normagent.testing import MemoryCheckpoints
from tests.support.unprivileged import as_nobody

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}


def lines(first: int, count: int, tag: str = "line") -> bytes:
    """``count`` numbered lines, like a syslog writer would write them."""
    return b"".join(b"Nov 23 07:00:00 host app[1]: %s %08d\n" % (tag.encode(), i) for i in range(first, first + count))


def ids(data: list[bytes]) -> list[int]:
    return [int(line.rsplit(b" ", 1)[1].rstrip(b"\r")) for line in data]


@dataclass
class Reader:
    """Runs a tail the way a collector does and keeps what was committed."""

    source: FileSource
    root: Path = Path("/")
    state: MemoryCheckpoints = field(default_factory=MemoryCheckpoints)
    read: list[bytes] = field(default_factory=list)  # every committed line, in order
    origins: list[str] = field(default_factory=list)
    mtimes: list[datetime | None] = field(default_factory=list)  # each block's, in order

    def run(self, commit: int | None = None) -> list[bytes]:
        """One run; with ``commit``, only that many steps are committed (then the run dies)."""
        tail = FileTail(self.source, self.state, root=self.root)
        got: list[bytes] = []
        for done, step in enumerate(tail.reads()):
            if commit is not None and done >= commit:
                break
            if step.block is not None:
                assert step.block.data.endswith(b"\n")
                assert step.block.lines == step.block.data.count(b"\n")
                got.extend(step.block.data.split(b"\n")[:-1])
                self.origins.append(step.block.origin)
                self.mtimes.append(step.block.mtime)
            self.state.apply([Checkpoint(step.key, step.checkpoint)])
        assert not tail.errors
        self.read.extend(got)
        return got


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def source(*paths: Path | str, **kw: object) -> FileSource:
    kw.setdefault("start_at", "beginning")
    return FileSource(paths=tuple(str(p) for p in paths), **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# plain reading


def test_appended_lines_are_read_once_across_runs(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 5))
    reader = Reader(source(log))
    assert ids(reader.run()) == [0, 1, 2, 3, 4]
    assert reader.run() == []
    append(log, lines(5, 3))
    assert ids(reader.run()) == [5, 6, 7]


def test_half_written_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 2) + b"Nov 23 07:00:00 host app[1]: line 0000")
    reader = Reader(source(log))
    assert ids(reader.run()) == [0, 1]
    assert reader.run() == []
    append(log, b"0002\n")
    assert ids(reader.run()) == [2]


def test_blocks_are_whole_lines_and_at_most_block_bytes(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 1000))
    tail = FileTail(source(log, block_bytes=4096), MemoryCheckpoints())
    blocks = [step.block for step in tail.reads() if step.block is not None]
    assert len(blocks) > 1
    assert all(b.data.endswith(b"\n") and len(b.data) <= 4096 for b in blocks)
    assert sum(b.lines for b in blocks) == 1000


def test_crlf_lines_are_passed_as_they_are(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 3).replace(b"\n", b"\r\n"))
    reader = Reader(source(log))
    got = reader.run()
    assert ids(got) == [0, 1, 2]
    assert all(line.endswith(b"\r") for line in got)


def test_invalid_utf8_is_passed_as_bytes(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    raw = b"D\xe9c 31 host sshd[1]: caf\xc3\xa9 line 00000000\nbad \xff\xfe line 00000001\n"
    log.write_bytes(raw)
    reader = Reader(source(log))
    got = reader.run()
    assert b"\n".join(got) + b"\n" == raw


@pytest.mark.parametrize(
    ("data", "bad"),
    [
        (b"", 0),
        (b"plain ascii\nlines\n", 0),
        (b"valid \xc3\xa6\xc3\xb8\xc3\xa5\n", 0),
        (b"latin-1 \xe6\xf8\xe5\nok\n", 1),
        (b"\xff\n\xfe\nok\n\xc3\n", 3),
        (b"two bad \xff and \xfe on one line\n", 1),
        (b"last line without newline \xff", 1),
        (b"\xef\xbf\xbd is U+FFFD written on purpose\n\xff\n", 1),  # valid U+FFFD is not an invalid byte
    ],
)
def test_invalid_utf8_lines_are_counted_per_line(data: bytes, bad: int) -> None:
    assert invalid_utf8_lines(data) == bad


def test_empty_file_then_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    reader = Reader(source(log))
    assert reader.run() == []
    append(log, lines(0, 2))
    assert ids(reader.run()) == [0, 1]


def test_overlong_line_is_cut_counted_once_and_its_rest_skipped(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 1) + b"x" * 1000 + b"\n" + lines(1, 1))
    reader = Reader(source(log, block_bytes=256))
    got = reader.run()
    assert len(got) == 3
    assert got[1] == b"x" * 256
    assert ids([got[0], got[2]]) == [0, 1]


def test_overlong_line_whose_rest_ends_where_a_read_starts(tmp_path: Path) -> None:
    """The newline that ends the skipped rest is the first byte of a read: the next line is whole."""
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 1) + b"x" * 256 + b"\n" + lines(1, 1))  # the rest's newline at offset 300
    got = Reader(source(log, block_bytes=256)).run()
    assert got == [lines(0, 1)[:-1], b"x" * 256, lines(1, 1)[:-1]]


def test_overlong_line_that_starts_more_than_a_block_into_the_file(tmp_path: Path) -> None:
    """The skip resumes after the cut part of the line, not at a block's length from the start."""
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 10) + b"x" * 1000 + b"\n" + lines(10, 1))  # the long line at offset 460
    got = Reader(source(log, block_bytes=256)).run()
    assert got == [*lines(0, 10).split(b"\n")[:-1], b"x" * 256, lines(10, 1)[:-1]]


def test_overlong_line_that_fills_exactly_one_block_at_the_end_of_the_file(tmp_path: Path) -> None:
    """The cut part ends the run: the checkpoint must carry "skip the rest" to the next run."""
    log = tmp_path / "app.log"
    log.write_bytes(b"y" * 256)
    reader = Reader(source(log, block_bytes=256))
    assert reader.run() == [b"y" * 256]
    append(log, b"y" * 10 + b"\n" + lines(0, 1))
    assert ids(reader.run()) == [0]


def test_overlong_line_split_across_runs_is_still_one_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"y" * 300)
    reader = Reader(source(log, block_bytes=256))
    assert reader.run() == [b"y" * 256]
    append(log, b"y" * 300 + b"\n" + lines(0, 1))
    assert ids(reader.run()) == [0]


# --------------------------------------------------------------------------------------------
# where a new file starts


def test_start_at_end_skips_history_but_reads_what_follows(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 10))
    reader = Reader(source(log, start_at="end"))
    assert reader.run() == []
    append(log, lines(10, 2))
    assert ids(reader.run()) == [10, 11]


def test_start_at_end_never_starts_inside_a_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 3) + b"Nov 23 07:00:00 host app[1]: line 0000")
    reader = Reader(source(log, start_at="end"))
    assert reader.run() == []
    append(log, b"0003\n" + lines(4, 1))
    assert ids(reader.run()) == [3, 4]


def test_start_at_end_when_the_last_newline_is_the_first_byte_looked_at(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"\nNov 23 07:00:00 host app[1]: line 0000")
    reader = Reader(source(log, start_at="end"))
    assert reader.run() == []
    append(log, b"0007\n")
    assert reader.run() == [b"Nov 23 07:00:00 host app[1]: line 00000007"]


def test_start_at_end_on_a_file_that_is_one_unfinished_line_counts_that_line_once_complete(tmp_path: Path) -> None:
    # The line starts at offset 0, inside the window looked at: it is known whole, as one after a
    # newline is, and must not be skipped as the rest of a line whose start is unknown.
    log = tmp_path / "app.log"
    log.write_bytes(b"Nov 23 07:00:00 host app[1]: line 0000")
    reader = Reader(source(log, start_at="end"))
    assert reader.run() == []
    append(log, b"0005\n" + lines(6, 1))
    assert reader.run() == [b"Nov 23 07:00:00 host app[1]: line 00000005", lines(6, 1)[:-1]]


def test_start_at_beginning_reads_history(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 10))
    assert ids(Reader(source(log, start_at="beginning")).run()) == list(range(10))


def test_file_appearing_later_is_read_from_its_start_even_with_start_at_end(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    reader = Reader(source(log, start_at="end"))
    assert reader.run() == []  # the pattern is known from now on
    log.write_bytes(lines(0, 4))
    assert ids(reader.run()) == [0, 1, 2, 3]


def test_glob_matches_several_files_and_new_ones(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(lines(0, 2))
    (tmp_path / "b.log").write_bytes(lines(100, 3))
    (tmp_path / "notes.txt").write_bytes(lines(900, 1))
    reader = Reader(source(tmp_path / "*.log"))
    assert sorted(ids(reader.run())) == [0, 1, 100, 101, 102]
    (tmp_path / "c.log").write_bytes(lines(200, 1))
    append(tmp_path / "a.log", lines(2, 1))
    assert sorted(ids(reader.run())) == [2, 200]


def test_a_name_with_a_bracket_is_read_through_its_glob_escape(tmp_path: Path) -> None:
    """A path with ``[`` is a glob (as the README says): the literal name is written ``[[]``."""
    (tmp_path / "app[1].log").write_bytes(lines(0, 2))
    (tmp_path / "app1.log").write_bytes(lines(100, 1))
    assert sorted(ids(Reader(source(f"{tmp_path}/app[[]1].log")).run())) == [0, 1]
    assert sorted(ids(Reader(source(f"{tmp_path}/app[1].log")).run())) == [100]  # a class: the other file


def test_glob_over_rotated_names_counts_each_line_once(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    (tmp_path / "auth.log.2.gz").write_bytes(gzip.compress(lines(0, 2)))
    (tmp_path / "auth.log.1").write_bytes(lines(2, 2))
    log.write_bytes(lines(4, 2))
    reader = Reader(source(str(tmp_path / "auth.log*")))
    assert ids(reader.run()) == [4, 5]  # history in rotated files is not new on a first start
    assert [k for k in reader.state.values if k.startswith("file:")] == [f"file:{log}"]


def test_exclude_leaves_files_out(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(lines(0, 1))
    (tmp_path / "debug.log").write_bytes(lines(1, 1))
    reader = Reader(source(tmp_path / "*.log", exclude=("*/debug.log",)))
    assert ids(reader.run()) == [0]


def test_paths_live_under_the_root(tmp_path: Path) -> None:
    (tmp_path / "var" / "log").mkdir(parents=True)
    (tmp_path / "var" / "log" / "auth.log").write_bytes(lines(0, 2))
    reader = Reader(source("/var/log/auth.log"), root=tmp_path)
    assert ids(reader.run()) == [0, 1]
    assert "file:/var/log/auth.log" in reader.state.values
    assert reader.origins == ["/var/log/auth.log"]


# --------------------------------------------------------------------------------------------
# rotation


def test_rename_and_create_finishes_the_old_file_first(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 3))
    reader = Reader(source(log))
    reader.run()
    append(log, lines(3, 2))
    log.rename(tmp_path / "app.log.1")
    append(tmp_path / "app.log.1", lines(5, 1))  # the writer has not reopened yet
    log.write_bytes(lines(6, 2))
    assert ids(reader.run()) == [3, 4, 5, 6, 7]


def test_lines_written_to_the_old_file_after_the_switch_are_read(tmp_path: Path) -> None:
    log, old = tmp_path / "app.log", tmp_path / "app.log.1"
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    reader.run()
    log.rename(old)
    log.write_bytes(lines(10, 1))
    assert ids(reader.run()) == [10]
    append(old, lines(2, 2))  # a late write by a writer that reopens slowly
    append(log, lines(11, 1))
    assert ids(reader.run()) == [2, 3, 11]
    assert reader.run() == []
    assert ids(reader.read) == [0, 1, 10, 2, 3, 11]


def test_rotated_file_unterminated_last_line_counts_once_it_stops_growing(tmp_path: Path) -> None:
    log, old = tmp_path / "app.log", tmp_path / "app.log.1"
    log.write_bytes(lines(0, 1) + b"Nov 23 07:00:00 host app[1]: line 0000")
    reader = Reader(source(log))
    assert ids(reader.run()) == [0]
    log.rename(old)
    log.write_bytes(b"")
    assert reader.run() == []  # the old file may still grow: its last line is not complete yet
    assert ids(reader.run()) == [0]  # unchanged for a whole run: that line is final
    assert reader.run() == []


def test_a_rotated_file_deleted_before_it_is_drained_is_reported_and_the_new_file_read_once(tmp_path: Path) -> None:
    """The tail saw the rotation and read part of the rotated file, then the agent stopped; the
    rotated file is deleted before the next run (logrotate with ``rotate 0``, a disk full
    clean-up). What was not read is gone: the tail says how much (``unread_bytes``, a warning),
    forgets the file and reads the current one, each of its lines once."""
    log, old = tmp_path / "app.log", tmp_path / "app.log.1"
    log.write_bytes(lines(0, 4))
    reader = Reader(source(log, block_bytes=2 * len(lines(0, 1))))  # two lines a block
    reader.run()
    append(log, lines(4, 6))
    log.rename(old)
    log.write_bytes(lines(100, 2))
    # Committed: the catch-up's checkpoint (the rotated file tracked) and its first block.
    assert ids(reader.run(commit=2)) == [4, 5]
    old.unlink()
    with capture_logs() as logs:
        assert ids(reader.run()) == [100, 101]
    gone = [e for e in logs if e["event"] == "rotated_file_gone"]
    assert gone == [
        {"event": "rotated_file_gone", "log_level": "warning", "path": str(log), "unread_bytes": len(lines(6, 4))}
    ]
    append(log, lines(102, 1))
    assert ids(reader.run()) == [102]
    assert ids(reader.read) == [0, 1, 2, 3, 4, 5, 100, 101, 102]


def test_a_finished_rotated_file_touched_again_is_not_read_twice(tmp_path: Path) -> None:
    """Its unterminated last line, once counted, moves the offset to the file's end: a rotated
    file kept because it was modified since the last look is read from there, not before it."""
    log, old = tmp_path / "app.log", tmp_path / "app.log.1"
    log.write_bytes(lines(0, 1) + b"Nov 23 07:00:00 host app[1]: line 00000001")
    reader = Reader(source(log))
    assert ids(reader.run()) == [0]
    log.rename(old)
    log.write_bytes(b"")
    assert reader.run() == []
    later = old.stat().st_mtime_ns + 10**9
    os.utime(old, ns=(later, later))  # modified since the last look, but not grown
    assert ids(reader.run()) == [1]
    assert reader.run() == []
    assert ids(reader.read) == [0, 1]


def test_rotation_while_the_new_file_is_not_there_yet(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    reader.run()
    append(log, lines(2, 1))
    log.rename(tmp_path / "app.log.1")
    assert ids(reader.run()) == [2]
    assert reader.origins[-1] == str(tmp_path / "app.log.1")  # the parser names the file it came from
    log.write_bytes(lines(3, 2))
    assert ids(reader.run()) == [3, 4]
    assert ids(reader.read) == list(range(5))


def test_a_file_that_appears_and_is_rotated_while_the_path_had_none_is_read_whole(tmp_path: Path) -> None:
    """No file at the path at the last look, but one was read there before: whatever was written
    since (now rotated) is owed, not only the file there now."""
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    assert ids(reader.run()) == [0, 1]
    log.rename(tmp_path / "app.log.1")
    assert reader.run() == []  # no file at the path
    last = (tmp_path / "app.log.1").stat().st_mtime_ns
    (tmp_path / "app.log.1").rename(tmp_path / "app.log.2")
    (tmp_path / "app.log.1").write_bytes(lines(2, 1))  # written and rotated while we were away
    log.write_bytes(lines(3, 1))
    for n, path in enumerate((tmp_path / "app.log.1", log), 1):
        os.utime(path, ns=(last + n * 10**9, last + n * 10**9))
    assert ids(reader.run()) == [2, 3]
    assert ids(reader.read) == [0, 1, 2, 3]


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
def test_catch_up_after_downtime_reads_rotated_and_compressed_files(tmp_path: Path, suffix: str) -> None:
    """Down across two rotations: the rest of the file read last, then the whole next one, then the new."""
    log = tmp_path / "auth.log"
    log.write_bytes(lines(0, 3))
    reader = Reader(source(log))
    reader.run()
    # agent down: first rotation (delaycompress) …
    append(log, lines(3, 2))
    log.rename(tmp_path / "auth.log.1")
    log.write_bytes(lines(5, 3))
    # … second rotation: .1 is compressed to .2<suffix>, current → .1
    old = tmp_path / "auth.log.1"
    (tmp_path / f"auth.log.2{suffix}").write_bytes(COMPRESSORS[suffix](old.read_bytes()))
    old.unlink()
    log.rename(tmp_path / "auth.log.1")
    log.write_bytes(lines(8, 2))
    newest = log.stat().st_mtime_ns + 10**9  # the compressed copy is the newest file: seen equals its time
    os.utime(tmp_path / f"auth.log.2{suffix}", ns=(newest, newest))
    assert ids(reader.run()) == list(range(3, 10))
    assert reader.run() == []
    assert reader.state.values[f"file:{log}"]["rotated"] == []  # read and quiet for a run: forgotten
    append(log, lines(10, 1))
    assert ids(reader.run()) == [10]


def test_catch_up_tells_the_renamed_file_from_a_newer_one_with_the_same_first_line(tmp_path: Path) -> None:
    """Read while short, its fingerprint is one line, which the next file starts with too; down
    across two rotations, the newer one is listed first. The renamed file (same inode) wins."""
    log = tmp_path / "app.log"
    header = b"Nov 23 07:00:00 host app[1]: logging started 00000999\n"
    log.write_bytes(header)
    reader = Reader(source(log))
    assert ids(reader.run()) == [999]
    append(log, lines(1, 1))
    log.rename(tmp_path / "app.log.1")
    log.write_bytes(header + lines(2, 1))
    (tmp_path / "app.log.1").rename(tmp_path / "app.log.2")
    log.rename(tmp_path / "app.log.1")
    log.write_bytes(lines(3, 1))
    assert ids(reader.run()) == [1, 999, 2, 3]


def test_catch_up_with_dateext_names(tmp_path: Path) -> None:
    log = tmp_path / "secure"
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    reader.run()
    append(log, lines(2, 1))
    log.rename(tmp_path / "secure-20261101")
    log.write_bytes(lines(3, 1))
    log.rename(tmp_path / "secure-20261108")
    log.write_bytes(lines(4, 1))
    (tmp_path / "secure-20261025").write_bytes(lines(900, 5))  # older than anything read: not read
    assert ids(reader.run()) == [2, 3, 4]


def test_compressed_immediately_after_rotation(tmp_path: Path) -> None:
    """compress without delaycompress: the renamed file is gone, only its .gz twin remains."""
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 40))  # more than the fingerprint's bytes
    reader = Reader(source(log))
    reader.run()
    append(log, lines(40, 2))
    (tmp_path / "app.log.1.gz").write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    log.write_bytes(lines(42, 1))
    assert ids(reader.run()) == [40, 41, 42]


def test_compression_in_progress_is_not_read_twice(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    reader.run()
    append(log, lines(2, 1))
    log.rename(tmp_path / "app.log.1")
    whole = gzip.compress((tmp_path / "app.log.1").read_bytes())
    (tmp_path / "app.log.1.gz").write_bytes(whole[: len(whole) // 2])  # logrotate still writing it
    log.write_bytes(lines(3, 1))
    assert ids(reader.run()) == [2, 3]
    (tmp_path / "app.log.1.gz").write_bytes(whole)
    (tmp_path / "app.log.1").unlink()
    assert reader.run() == []


def test_corrupt_compressed_sibling_counts_what_is_readable(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 40))
    reader = Reader(source(log))
    reader.run()
    append(log, lines(40, 200))
    whole = gzip.compress(log.read_bytes())
    log.unlink()
    (tmp_path / "app.log.1.gz").write_bytes(whole[: len(whole) - 200])
    log.write_bytes(lines(1000, 1))
    got = ids(reader.run())
    assert got[-1] == 1000
    assert got[:-1] == list(range(40, 40 + len(got) - 1))  # a prefix of the lost file, nothing twice


@pytest.mark.parametrize("intact", [100, len(lines(0, 3000))], ids=["damaged-inside-the-first-bytes", "damaged-after-many-unread-lines"])
def test_a_damaged_deflate_stream_in_a_rotated_file_is_skipped_and_the_new_file_read(tmp_path: Path, intact: int) -> None:
    """gzip raises zlib.error for a damaged deflate stream, and that is no OSError: it escaped the
    tail, so every run failed with a traceback and the new file was never read again."""
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 40))
    reader = Reader(source(log))
    reader.run()
    append(log, lines(40, 4000))
    pack = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip member
    damaged = pack.compress(log.read_bytes()[:intact]) + pack.flush(zlib.Z_FULL_FLUSH) + b"\xff" * 64  # block type 3: none
    log.unlink()
    (tmp_path / "app.log.1.gz").write_bytes(damaged)
    log.write_bytes(lines(1000, 1))
    with capture_logs() as logs:
        got = ids(reader.run())
    assert got[-1] == 1000
    assert got[:-1] == list(range(40, 40 + len(got) - 1))  # what could be read of the lost file, nothing twice
    if intact > FINGERPRINT_BYTES:  # lines before the damage are counted, not lost with a whole block
        assert len(got) > 1
    said = [e["event"] for e in logs if e["event"] in ("rotated_file_unreadable", "rotated_file_corrupt")]
    assert said == ["rotated_file_unreadable" if intact < FINGERPRINT_BYTES else "rotated_file_corrupt"]
    assert reader.run() == []


def test_copytruncate_reads_the_unread_rest_from_the_copy(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 3))
    reader = Reader(source(log))
    reader.run()
    append(log, lines(3, 2))  # not read before the copy
    shutil.copyfile(log, tmp_path / "app.log.1")
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, lines(5, 1))
    assert ids(reader.run()) == [3, 4, 5]
    assert reader.run() == []
    assert ids(reader.read) == list(range(6))


def test_copytruncate_after_regrowing_past_the_old_offset(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    reader.run()
    shutil.copyfile(log, tmp_path / "app.log.1")
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, lines(2, 10))  # longer than before: only the first bytes tell
    assert ids(reader.run()) == list(range(2, 12))


def test_copytruncate_with_compressed_copy(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 3))
    reader = Reader(source(log))
    reader.run()
    append(log, lines(3, 1))
    (tmp_path / "app.log.1.gz").write_bytes(gzip.compress(log.read_bytes()))
    with open(log, "r+b") as f:
        f.truncate(0)
    assert ids(reader.run()) == [3]


def test_copytruncate_of_a_file_that_was_empty_at_the_last_look(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    reader = Reader(source(log))
    reader.run()
    append(log, lines(0, 2))
    shutil.copyfile(log, tmp_path / "app.log.1")
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, lines(2, 1))
    assert ids(reader.run()) == [0, 1, 2]


@pytest.mark.parametrize("new_lines", [30, 3], ids=["new-file-longer-than-the-offset", "new-file-shorter"])
def test_a_copytruncate_between_two_blocks_of_one_read_passes_no_new_line_off_as_old(tmp_path: Path, new_lines: int) -> None:
    """The file is checked, then read block by block; logrotate copies and truncates it after the
    first block and the writer goes on. The next block read comes from the new content: passed off
    as the old file's, its lines would be counted now and again from the new file's start, and the
    old file's rest (in the copy) would be lost. Only the re-check after each read tells."""
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 20))
    reader = Reader(source(log, block_bytes=200))  # 4 lines a block
    tail = FileTail(reader.source, reader.state)
    got: list[bytes] = []
    for step in tail.reads():
        reader.state.apply([Checkpoint(step.key, step.checkpoint)])
        if step.block is None:
            continue
        got.extend(step.block.data.split(b"\n")[:-1])
        if len(got) == 4:  # between the first block and the next read
            shutil.copyfile(log, tmp_path / "app.log.1")
            with open(log, "r+b") as f:
                f.truncate(0)
            append(log, lines(100, new_lines))
    assert not tail.errors

    got += reader.run()  # the next run sorts out the rotation

    assert ids(got) == [*range(20), *range(100, 100 + new_lines)]


def test_a_listing_made_stale_by_a_rotation_in_progress_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory is listed, then logrotate renames files before they are opened: the tail
    leaves the path for this run and the next run, with a fresh listing, reads every line once."""
    import normagent.sources.files as files

    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 40))
    reader = Reader(source(log))
    reader.run()
    append(log, lines(40, 5))
    log.rename(tmp_path / "app.log.1")
    log.write_bytes(lines(45, 2))
    stale = files.list_siblings(str(log))
    (tmp_path / "app.log.1").rename(tmp_path / "app.log.2")  # the next rotation, mid-run
    log.rename(tmp_path / "app.log.1")
    log.write_bytes(lines(47, 1))
    monkeypatch.setattr(files, "list_siblings", lambda real: stale)
    with capture_logs() as logs:
        assert reader.run() == []
    assert "log_rotation_in_progress" in [e["event"] for e in logs]
    monkeypatch.undo()
    assert ids(reader.run()) == list(range(40, 48))


def test_a_rotation_between_opening_the_file_and_listing_its_siblings_reads_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tail opens app.log, then logrotate renames it to app.log.1 before the siblings are
    listed: the open file must not be read both as the rotated sibling and as the new file."""
    import normagent.sources.files as files

    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 40))
    reader = Reader(source(log))
    reader.run()
    log.rename(tmp_path / "app.log.1")
    log.write_bytes(lines(40, 3))  # Y: the file the next run opens
    real_list = files.list_siblings

    def rotate_then_list(real: str) -> list[Any]:
        if not (tmp_path / "app.log.2").exists():  # logrotate strikes once, right now
            (tmp_path / "app.log.1").rename(tmp_path / "app.log.2")
            log.rename(tmp_path / "app.log.1")
            log.write_bytes(lines(43, 2))
        return real_list(real)

    monkeypatch.setattr(files, "list_siblings", rotate_then_list)
    reader.run()
    monkeypatch.undo()
    reader.run()
    reader.run()
    assert ids(reader.read) == list(range(45))


def test_a_hard_link_under_a_rotated_name_is_not_a_rotation(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    reader = Reader(source(log))
    reader.run()
    append(log, lines(0, 3))
    os.link(log, tmp_path / "app.log.1")
    assert ids(reader.run()) == [0, 1, 2]
    append(log, lines(3, 1))
    assert ids(reader.run()) == [3]


def test_same_inode_with_different_content_is_a_new_file(tmp_path: Path) -> None:
    """Inode reuse: same (dev, inode), other first bytes; only the fingerprint tells."""
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 3))
    reader = Reader(source(log))
    reader.run()
    inode = log.stat().st_ino
    with open(log, "r+b") as f:  # rewritten in place, longer than what was read
        f.write(lines(100, 5))
    assert log.stat().st_ino == inode
    assert ids(reader.run()) == [100, 101, 102, 103, 104]


def test_truncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 5))
    reader = Reader(source(log))
    reader.run()
    with open(log, "r+b") as f:
        f.truncate(0)
        f.write(lines(5, 1))
    assert ids(reader.run()) == [5]


def test_deleted_and_recreated_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    reader.run()
    log.unlink()
    assert reader.run() == []
    assert reader.state.values[f"file:{log}"]["current"] is None  # type: ignore[index]
    log.write_bytes(lines(2, 2))
    assert ids(reader.run()) == [2, 3]  # a known path: new files start at their beginning


def test_glob_file_gone_forgets_its_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(lines(0, 1))
    reader = Reader(source(tmp_path / "*.log"))
    reader.run()
    (tmp_path / "a.log").unlink()
    tail = FileTail(source(tmp_path / "*.log"), reader.state)
    for step in tail.reads():
        reader.state.apply([Checkpoint(step.key, step.checkpoint)])
    assert not [k for k in reader.state.values if k.startswith("file:")]
    assert tail.lag() == 0  # nothing owed for a file that is gone


def test_a_crash_after_the_first_checkpoint_then_a_rotation_reads_the_old_file_whole(tmp_path: Path) -> None:
    """The first checkpoint of a new file knows it but has no "last look" yet: a rotation before
    the next run must still be followed, not taken for a new file at the path."""
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    assert reader.run(commit=2) == []  # the pattern's checkpoint and the file's; then the run dies
    log.rename(tmp_path / "app.log.1")
    log.write_bytes(lines(2, 1))
    assert ids(reader.run()) == [0, 1, 2]


def test_crash_before_commit_reads_the_block_again(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 100))
    reader = Reader(source(log, block_bytes=1024))
    first = reader.run(commit=3)
    assert 0 < len(first) < 100
    reader.run()
    assert ids(reader.read) == list(range(100))


def test_block_position_is_stable_across_retries(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 10))
    state = MemoryCheckpoints()
    first = [s.position for s in FileTail(source(log), state).reads() if s.block]
    append(log, lines(10, 10))
    again = [s.position for s in FileTail(source(log), state).reads() if s.block]
    assert first == again[:1]


def test_lag_is_bytes_not_yet_read(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 3))
    reader = Reader(source(log))
    reader.run()
    assert lag_bytes(reader.source, reader.state) == 0
    append(log, lines(3, 2) + b"partial")
    expected = len(lines(3, 2)) + len(b"partial")
    assert lag_bytes(reader.source, reader.state) == expected
    tail = FileTail(reader.source, reader.state)
    list(tail.reads())
    assert tail.lag() == len(b"partial")


def test_unreadable_file_is_an_error_and_others_are_still_read(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(lines(0, 1))
    (tmp_path / "b.log").mkdir()  # a directory where a log should be
    tail = FileTail(source(tmp_path / "a.log", tmp_path / "b.log"), MemoryCheckpoints())
    got = [s.block.lines for s in tail.reads() if s.block]
    assert got == [1]
    assert len(tail.errors) == 1


# --------------------------------------------------------------------------------------------
# siblings and whole files


def test_siblings_are_ordered_newest_first(tmp_path: Path) -> None:
    for name in ["x.log.10.gz", "x.log.2.gz", "x.log.1", "x.log.old", "x.log.3.bz2", "x.log-20261101", "xx.log.1"]:
        (tmp_path / name).write_bytes(b"a\n")
    got = [os.path.basename(s.path) for s in list_siblings(str(tmp_path / "x.log"))]
    assert got == ["x.log-20261101", "x.log.old", "x.log.1", "x.log.2.gz", "x.log.3.bz2", "x.log.10.gz"]


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2", ".xz"])
def test_read_whole_includes_the_unterminated_last_line(tmp_path: Path, suffix: str) -> None:
    raw = lines(0, 500) + b"Nov 23 07:00:00 host app[1]: line 00000500"
    path = tmp_path / f"x.log{suffix}"
    path.write_bytes(COMPRESSORS[suffix](raw) if suffix else raw)
    blocks = list(read_whole(path, block_bytes=1024))
    assert len(blocks) > 1
    got = b"".join(b.data for b in blocks)
    assert got == raw + b"\n"
    assert sum(b.lines for b in blocks) == 501
    assert codec_of(path) == {"": "", ".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}[suffix]


def test_a_checkpoint_keeps_every_field_across_a_restart() -> None:
    """The stored checkpoint is all a restarted agent knows of a path: every field must come back
    as it was (a lost ``skip`` counts the rest of an over-long line as a line, a lost ``mtime``
    or ``seen`` blurs which rotated files hold unread lines)."""
    tracked = [_Tracked(dev=1, ino=2, fp="ab", fpn=3, offset=4, size=5, mtime=6, skip=True, path="/var/log/app.log.1")]
    state = _PathState(current=_Tracked(7, 8, "cd", 9, 10, 11, 12, True, "/var/log/app.log"), rotated=tracked, seen=13)

    stored = json.loads(json.dumps(state.to_json()))

    assert _PathState.from_json(stored) == state
    assert _PathState().to_json() is None  # nothing known: nothing stored
    with pytest.raises(ValueError, match="not a version-1 file checkpoint"):
        _PathState.from_json({**stored, "v": 2})


def test_file_source_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="start_at"):
        FileSource(start_at="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block_bytes"):
        FileSource(block_bytes=1)
    with pytest.raises(ValueError, match="Europe/Oslo"):
        FileSource(timezone="Mars/Olympus")


def test_fingerprint_bytes_is_long_enough_for_firewall_log_headers() -> None:
    header = (
        b"#Version: 1.5\n#Software: Microsoft Windows Firewall\n#Time Format: Local\n"
        b"#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn "
        b"tcpack tcpwin icmptype icmpcode info path pid\n"
    )
    assert len(header) < FINGERPRINT_BYTES // 2


# --------------------------------------------------------------------------------------------
# property: any mix of writes, rotations, runs and crashes counts every line exactly once


@dataclass
class World:
    """A writer, logrotate and the reader, on one log in a temporary directory."""

    folder: Path
    reader: Reader
    next_id: int = 0
    handle_path: Path | None = None  # the file the writer has open (it follows renames)
    writer_fd: int | None = None
    stale: bool = False  # renamed under the writer, which has not reopened yet

    @property
    def log(self) -> Path:
        return self.folder / "app.log"

    def open_writer(self) -> None:
        if self.writer_fd is not None:
            os.close(self.writer_fd)
        self.writer_fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.stale = False

    def append(self, count: int) -> None:
        assert self.writer_fd is not None
        os.write(self.writer_fd, lines(self.next_id, count))
        self.next_id += count

    def rotated(self) -> list[Path]:
        return sorted(
            (p for p in self.folder.iterdir() if p.name.startswith("app.log.")),
            key=lambda p: int(p.name.split(".")[2]),
        )

    def shift(self) -> None:
        """Make room for a new ``.1``: ``.n`` → ``.n+1``, compressing plain ones past ``.1``."""
        for path in reversed(self.rotated()):
            parts = path.name.split(".")
            parts[2] = str(int(parts[2]) + 1)
            path.rename(self.folder / ".".join(parts))

    def compress(self) -> None:
        """Compress every plain rotated file the writer no longer writes to, as logrotate does:
        the compressed file keeps the original's mtime (logrotate's test 108)."""
        for path in self.rotated():
            if path.suffix.isdigit() or path.name.count(".") == 2:
                if self.stale and path.name == "app.log.1":
                    continue
                target = path.with_name(path.name + ".gz")
                target.write_bytes(gzip.compress(path.read_bytes()))
                before = path.stat()
                os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
                path.unlink()

    def rotate_rename(self) -> None:
        if self.stale:
            self.open_writer()  # postrotate of the previous rotation
        if self.log.stat().st_size == 0:
            return  # notifempty, as Debian's logrotate configurations say
        self.shift()
        self.log.rename(self.folder / "app.log.1")
        self.stale = True
        self.log.write_bytes(b"")

    def copytruncate(self) -> None:
        if self.stale:
            self.open_writer()
        if self.log.stat().st_size == 0:
            return  # notifempty
        self.shift()
        shutil.copyfile(self.log, self.folder / "app.log.1")
        with open(self.log, "r+b") as f:
            f.truncate(0)

    def run(self, commit: int | None) -> None:
        self.reader.run(commit)
        if self.stale:
            self.open_writer()  # the writer reopens before the next cycle

    def finish(self) -> list[int]:
        if self.writer_fd is not None:
            os.close(self.writer_fd)
        for _ in range(3):  # rotated files are dropped once quiet for a whole run
            self.reader.run()
        return ids(self.reader.read)


OPERATIONS = st.one_of(
    st.tuples(st.just("append"), st.integers(1, 60)),
    st.tuples(st.just("rename"), st.none()),
    st.tuples(st.just("copytruncate"), st.none()),
    st.tuples(st.just("compress"), st.none()),
    st.tuples(st.just("run"), st.none()),
    st.tuples(st.just("crash"), st.integers(0, 4)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(OPERATIONS, max_size=40), block=st.sampled_from([64, 300, 4096]))
def test_any_rotation_history_counts_every_line_exactly_once(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int | None]], block: int
) -> None:
    folder = tmp_path_factory.mktemp("world")
    world = World(folder, Reader(FileSource(paths=(str(folder / "app.log"),), start_at="beginning", block_bytes=block)))
    world.open_writer()
    world.run(None)  # the agent was there first: rotated history from before it is not new
    for op, arg in steps:
        if op == "append":
            assert arg is not None
            world.append(arg)
        elif op == "rename":
            world.rotate_rename()
        elif op == "copytruncate":
            world.copytruncate()
        elif op == "compress":
            world.compress()
        elif op == "run":
            world.run(None)
        else:
            world.run(arg)
    got = world.finish()
    assert sorted(got) == list(range(world.next_id)), "lines lost or counted twice"
    assert len(got) == world.next_id


# --------------------------------------------------------------------------------------------
# paths that are not regular files


def read_in_a_thread(source: FileSource, root: Path) -> tuple[list[bytes], list[OSError]]:
    """Read ``source`` on a thread, so a read that blocks fails the test instead of hanging it."""
    got: list[bytes] = []
    tail = FileTail(source, MemoryCheckpoints(), root=root)

    def read() -> None:
        got.extend(step.block.data for step in tail.reads() if step.block is not None)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the read blocked"
    return got, tail.errors


def test_a_fifo_at_a_log_path_is_refused_without_blocking_and_the_others_are_read(tmp_path: Path) -> None:
    """Issue 9 item 16: opening a FIFO that has no writer blocked the run (and every later one) forever."""
    os.mkfifo(tmp_path / "auth.log")
    (tmp_path / "secure").write_bytes(lines(0, 3))
    source = FileSource(paths=("/auth.log", "/secure"), start_at="beginning")
    with capture_logs() as logs:
        got, errors = read_in_a_thread(source, tmp_path)
    assert ids(b"".join(got).splitlines()) == [0, 1, 2]
    assert [type(e) for e in errors] == [NotRegularFile] and error_reason(errors[0]) == "not_a_regular_file"
    assert str(errors[0]) == f"[Errno 22] {tmp_path}/auth.log is a FIFO (named pipe), not a regular file; a log path must name a regular file"
    failed = [e for e in logs if e["event"] == "log_file_unreadable"]
    assert [(e["path"], e["reason"], e["log_level"]) for e in failed] == [("/auth.log", "not_a_regular_file", "error")]


@pytest.mark.parametrize(("make", "kind"), [
    (lambda p: p.mkdir(), "a directory"),
    (lambda p: p.symlink_to("/dev/null"), "a character device"),
    (lambda p: socket.socket(socket.AF_UNIX).bind(str(p)), "a socket"),
], ids=["directory", "device", "socket"])
def test_other_files_that_are_not_regular_are_refused_by_kind(tmp_path: Path, make: Callable[[Path], Any], kind: str) -> None:
    make(tmp_path / "auth.log")
    got, errors = read_in_a_thread(FileSource(paths=("/auth.log",), start_at="beginning"), tmp_path)
    assert got == [] and [type(e) for e in errors] == [NotRegularFile]
    assert f"auth.log is {kind}, not a regular file" in str(errors[0])


@pytest.mark.parametrize(("path", "make", "said"), [
    ("/secure", lambda root: ((root / "secure").symlink_to("secure.2"), (root / "secure.2").symlink_to("secure")),
     "Too many levels of symbolic links"),
    ("/auth.log/secure", lambda root: (root / "auth.log").write_bytes(b"x\n"), "Not a directory"),
    ("/" + "s" * 300, lambda root: None, "File name too long"),
    ("/mem.log", lambda root: (root / "mem.log").symlink_to("/proc/self/mem"), "Input/output error"),
], ids=["link-loop", "file-as-directory", "name-too-long", "read-fails"])
def test_a_log_path_that_cannot_be_looked_at_is_its_own_error_and_the_others_are_read(
    tmp_path: Path, path: str, make: Callable[[Path], Any], said: str
) -> None:
    """Before: os.stat raised while the tail was set up, so the whole run failed with a traceback
    and no other path of the collector was read (auth.log stopped being counted for a bad secure)."""
    (tmp_path / "messages").write_bytes(lines(0, 3))
    make(tmp_path)
    source = FileSource(paths=(path, "/messages"), start_at="beginning")
    with capture_logs() as logs:
        got, errors = read_in_a_thread(source, tmp_path)
    assert ids(b"".join(got).splitlines()) == [0, 1, 2]
    assert len(errors) == 1 and said in str(errors[0]) and error_reason(errors[0]) == "unreadable"
    assert path in str(errors[0])  # the run's failure says which file (a read's EIO names none of itself)
    failed = [e for e in logs if e["event"] == "log_file_unreadable"]
    assert [(e["path"], e["reason"]) for e in failed] == [(path, "unreadable")]


def test_a_double_star_glob_does_not_follow_links_that_loop_back_up_the_tree(tmp_path: Path) -> None:
    """Before: glob.glob followed every linked directory, so two links back up the tree
    (current -> .., all -> ../..) made the listing multiply without end: the tail never got set
    up, and the collector's run never ended (nor, with it, any later run)."""
    (tmp_path / "logs/app/old").mkdir(parents=True)
    (tmp_path / "logs/app/a.log").write_bytes(lines(0, 2))
    (tmp_path / "logs/app/old/b.log").write_bytes(lines(2, 1))
    (tmp_path / "logs/app/old/link.log").symlink_to("b.log")  # a link to a file is matched, as glob matches it
    (tmp_path / "logs/app/current").symlink_to("..")
    (tmp_path / "logs/app/old/all").symlink_to("../..")
    got: list[list[str]] = []

    def scan() -> None:
        tail = FileTail(source("/logs/**/*.log"), MemoryCheckpoints(), root=tmp_path)
        got.append(tail.paths)

    thread = threading.Thread(target=scan, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the glob never ended"
    assert got == [["/logs/app/a.log", "/logs/app/old/b.log", "/logs/app/old/link.log"]]


@pytest.mark.parametrize("relative", [False, True], ids=["absolute", "relative"])
@pytest.mark.parametrize("pattern", ["**/*.log", "**", "a/**/*.log", "*/**/c.log", "**/b", "a/*.log", "a/b/c.log", "*"])
def test_glob_paths_lists_what_glob_lists_where_no_directory_is_a_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pattern: str, relative: bool
) -> None:
    for name in ("top.log", "a/one.log", "a/b/c.log", "a/.hidden.log", ".h/x.log"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x\n")
    (tmp_path / "a/link.log").symlink_to("one.log")
    monkeypatch.chdir(tmp_path)
    full = pattern if relative else f"{tmp_path}/{pattern}"
    expected = {p.rstrip("/") for p in glob.glob(full, recursive=True)} - {str(tmp_path)}
    assert {p.rstrip("/") for p in glob_paths(full)} - {str(tmp_path)} == expected


def test_glob_paths_says_why_the_directory_a_pattern_names_cannot_be_listed(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "file").write_bytes(b"")
    errors: list[OSError] = []
    assert glob_paths(f"{tmp_path}/loop/*.log", errors) == []
    assert [(e.errno, e.filename) for e in errors] == [(errno.ELOOP, f"{tmp_path}/loop")]
    for quiet in (f"{tmp_path}/missing/*.log", f"{tmp_path}/file/*.log", f"{tmp_path}/*/x.log", f"{tmp_path}/none.log"):
        errors = []
        assert glob_paths(quiet, errors) == [] and errors == [], quiet  # missing, not a directory, no wildcard


def test_glob_paths_as_an_unprivileged_user(tmp_path: Path) -> None:
    """The directory the pattern names, unlistable: said. One a wildcard reaches: skipped, as glob
    skips it (``/var/log/**`` meets ``/var/log/private`` on every run of a service user)."""
    top = Path(tempfile.mkdtemp(prefix="glob-perm-"))  # in /tmp: nobody may reach it (tmp_path: not)
    try:
        top.chmod(0o755)
        for name in ("locked/a.log", "open/b.log", "open/private/c.log"):
            (top / name).parent.mkdir(parents=True, exist_ok=True)
            (top / name).write_bytes(b"x\n")
            (top / name).chmod(0o644)
        (top / "open").chmod(0o755)
        (top / "locked").chmod(0o711)  # others may pass through, not list
        (top / "open/private").chmod(0o700)

        def look() -> list[Any]:
            said: list[Any] = []
            for pattern in ("locked/*.log", "open/**/*.log", "*/*.log", "locked/a.log"):
                errors: list[OSError] = []
                found = sorted(p.removeprefix(f"{top}/") for p in glob_paths(f"{top}/{pattern}", errors))
                said.append([pattern, found, [(e.errno, e.filename) for e in errors]])
            return said

        seen = as_nobody(look)
    finally:
        shutil.rmtree(top)
    assert seen == [
        ["locked/*.log", [], [[errno.EACCES, f"{top}/locked"]]],
        ["open/**/*.log", ["open/b.log"], []],
        ["*/*.log", ["open/b.log"], []],
        ["locked/a.log", ["locked/a.log"], []],  # no wildcard: nothing to list, the file is reachable
    ]


def test_a_file_name_that_is_not_utf8_is_read_once_and_followed_through_rotation(tmp_path: Path, ledger: Ledger) -> None:
    """Before: its checkpoint key held the name's undecodable bytes as lone surrogates, which
    SQLite refuses, so every commit of the collector failed and no file of it was counted again
    (one file named in Latin-1, or by someone who wants the collector blind, in /var/log)."""
    bad = tmp_path / os.fsdecode(b"auth-\xe6\xf8.log")
    bad.write_bytes(lines(0, 2))
    (tmp_path / "good.log").write_bytes(lines(2, 1))
    tail_source = source(f"{tmp_path}/*.log")

    def run() -> list[int]:
        got: list[bytes] = []
        tail = FileTail(tail_source, ledger.checkpoints("c"))
        for step in tail.reads():
            if step.block is not None:
                got.extend(step.block.data.splitlines())
            ledger.commit("c", Batch([], [Checkpoint(step.key, step.checkpoint)]))
        assert not tail.errors
        return sorted(ids(got))

    assert run() == [0, 1, 2]
    assert list(ledger.checkpoints("c").keys("filex:")) == [f"filex:{tmp_path}/auth-%E6%F8.log"]
    append(bad, lines(3, 1))
    bad.rename(f"{bad}.1")  # rotated, and no new file: only the escaped key knows where it was
    assert run() == [3]
    assert run() == []


def test_a_fifo_swapped_in_for_a_rotated_file_is_not_opened(tmp_path: Path) -> None:
    """Between the listing and the open, a rotated file's name may come to hold something else."""
    log = tmp_path / "auth.log"
    log.write_bytes(lines(0, 2))
    reader = Reader(FileSource(paths=("/auth.log",), start_at="beginning"), root=tmp_path)
    assert ids(reader.run()) == [0, 1]
    append(log, lines(2, 2))
    log.rename(tmp_path / "auth.log.1")  # rotated with two unread lines
    log.write_bytes(lines(4, 1))
    listed = list_siblings(str(log))
    (tmp_path / "auth.log.1").unlink()
    os.mkfifo(tmp_path / "auth.log.1")
    with pytest.raises(_Moved):
        _open_pinned(listed[0])


def test_rotated_siblings_that_are_links_or_fifos_are_not_listed(tmp_path: Path) -> None:
    (tmp_path / "auth.log").write_bytes(lines(0, 1))
    (tmp_path / "elsewhere").write_bytes(lines(1, 1))
    (tmp_path / "auth.log.1").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(tmp_path / "auth.log.2")
    (tmp_path / "auth.log.3").write_bytes(lines(2, 1))
    assert [os.path.basename(s.path) for s in list_siblings(str(tmp_path / "auth.log"))] == ["auth.log.3"]


def test_a_configured_path_may_be_a_link_to_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "real.log").write_bytes(lines(0, 2))
    (tmp_path / "auth.log").symlink_to(tmp_path / "real.log")
    reader = Reader(FileSource(paths=("/auth.log",), start_at="beginning"), root=tmp_path)
    assert ids(reader.run()) == [0, 1]


# --------------------------------------------------------------------------------------------
# Cases the mutation run of issue 9 (item 24) found no test reaching: each of these failed with a
# mutant of files.py applied (bench/README.md, "Mutation testing").


def _stamp(path: Path, when: datetime) -> None:
    ns = int(when.timestamp()) * 10**9
    os.utime(path, ns=(ns, ns))


NOV_1 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
NOV_2 = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_every_block_carries_the_modification_time_of_the_file_it_came_from(tmp_path: Path, suffix: str) -> None:
    """Year-less stamps are dated by the file's mtime (the parser's reference): a rotated file's
    block carries the rotated file's, the current file's its own, a whole file's its own."""
    log, old = tmp_path / "app.log", tmp_path / f"app.log.1{suffix}"
    log.write_bytes(lines(0, 40))
    reader = Reader(source(log))
    reader.run()
    append(log, lines(40, 2))
    old.write_bytes(COMPRESSORS[suffix](log.read_bytes()) if suffix else log.read_bytes())
    log.unlink()
    log.write_bytes(lines(42, 1))
    _stamp(old, NOV_1)
    _stamp(log, NOV_2)
    assert ids(reader.run()) == [40, 41, 42]
    assert reader.mtimes[-2:] == [NOV_1, NOV_2]
    assert [b.mtime for b in read_whole(old)] == [NOV_1]


def test_a_rotated_file_being_compressed_is_listed_once_by_its_plain_name(tmp_path: Path) -> None:
    """``x.1`` and ``x.1.gz`` side by side: the compressed twin may be half written."""
    for name in ["x.log.1.gz", "x.log.1", "x.log.2.gz"]:
        (tmp_path / name).write_bytes(b"a\n")
    got = [os.path.basename(s.path) for s in list_siblings(str(tmp_path / "x.log"))]
    assert got == ["x.log.1", "x.log.2.gz"]


def test_rotated_siblings_are_found_among_many_links_fifos_and_other_files(tmp_path: Path) -> None:
    """A link or FIFO under a rotated name is passed over, not the end of the listing. The regular
    files sit between twenty others in creation order, so that a listing in creation order or its
    reverse puts others before them, and a hash order (ext4) all but surely does."""
    (tmp_path / "auth.log").write_bytes(lines(0, 1))
    (tmp_path / "elsewhere").write_bytes(lines(1, 1))
    for n in range(3, 13):
        (tmp_path / f"auth.log.{n}").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "auth.log.1").write_bytes(lines(2, 1))
    (tmp_path / "auth.log.2").write_bytes(lines(3, 1))
    for n in range(13, 23):
        os.mkfifo(tmp_path / f"auth.log.{n}")
    assert [os.path.basename(s.path) for s in list_siblings(str(tmp_path / "auth.log"))] == ["auth.log.1", "auth.log.2"]


def test_a_glob_match_is_a_rotated_name_only_beside_the_file_it_was_rotated_from(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "app.log").write_bytes(lines(0, 1))
    (tmp_path / "b" / "app.log.1").write_bytes(lines(1, 1))  # b's only log: nothing was rotated there
    reader = Reader(source(str(tmp_path / "*" / "app.log*")))
    assert sorted(ids(reader.run())) == [0, 1]


def test_a_double_star_glob_crosses_directories(tmp_path: Path) -> None:
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "x" / "y" / "app.log").write_bytes(lines(0, 1))
    (tmp_path / "app.log").write_bytes(lines(1, 1))
    reader = Reader(source(str(tmp_path / "**" / "app.log")))
    assert sorted(ids(reader.run())) == [0, 1]


def test_a_file_no_longer_configured_is_not_read(tmp_path: Path) -> None:
    """Its checkpoint stays in the ledger; a glob of the same source must not take it up again."""
    (tmp_path / "other").mkdir()
    a, b = tmp_path / "a.log", tmp_path / "other" / "b.log"
    a.write_bytes(lines(0, 1))
    b.write_bytes(lines(100, 1))
    reader = Reader(source(tmp_path / "*.log", b))
    assert sorted(ids(reader.run())) == [0, 100]
    append(a, lines(1, 1))
    append(b, lines(101, 1))
    reader.source = source(tmp_path / "*.log")
    assert ids(reader.run()) == [1]


@pytest.mark.parametrize(
    "pattern",
    ["*.log", "*/*.log", "**/*.log", "**", "a/**", "a/**/b.log", "**/b.log", "?.log", "[ab]/*.log", ".h/*.log", "**/.h/*.log", "a/*/b.log"],
)
def test_a_gone_file_is_taken_for_a_glob_match_exactly_when_glob_would_list_it(tmp_path: Path, pattern: str) -> None:
    """The tail asks glob for the files there, and ``_glob_matches`` for those gone since."""
    for name in ["a.log", "b.log", ".h.log", "a/b.log", "a/x/b.log", "a/x/y/b.log", "a/.h/b.log", ".h/c.log", "b/c.log"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    files = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    listed = {os.path.relpath(m, tmp_path) for m in glob.glob(str(tmp_path / pattern), recursive=True) if os.path.isfile(m)}
    assert {f for f in files if _glob_matches(f"{tmp_path}/{f}", f"{tmp_path}/{pattern}")} == listed


def test_exclude_of_the_first_match_leaves_the_later_ones_in(tmp_path: Path) -> None:
    (tmp_path / "a-debug.log").write_bytes(lines(0, 1))
    (tmp_path / "b.log").write_bytes(lines(1, 1))
    (tmp_path / "c.log").write_bytes(lines(2, 1))
    reader = Reader(source(tmp_path / "*.log", exclude=("*/a-debug.log",)))
    assert ids(reader.run()) == [1, 2]


def test_an_old_rotated_file_is_not_read_after_the_current_file_was_deleted(tmp_path: Path) -> None:
    """No file at the path, only an old sibling: the last look (``seen``) tells it is not new."""
    log, old = tmp_path / "app.log", tmp_path / "app.log.1"
    old.write_bytes(lines(900, 2))
    _stamp(old, NOV_1)
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    assert ids(reader.run()) == [0, 1]
    log.unlink()
    assert reader.run() == []
    assert reader.state.values[f"file:{log}"]["current"] is None  # type: ignore[index]
    assert reader.run() == []  # still no file at the path: the old sibling stays unread
    log.write_bytes(lines(2, 1))
    assert ids(reader.run()) == [2]


def test_a_crash_after_the_first_checkpoint_a_rotation_then_a_new_file_a_run_later(tmp_path: Path) -> None:
    """Known but never looked at (no ``seen``), rotated with no file after it: the rotated file
    is read, and the file that appears at the path a run later is new, read from its start."""
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    assert reader.run(commit=2) == []  # the pattern's checkpoint and the file's; then the run dies
    log.rename(tmp_path / "app.log.1")
    assert ids(reader.run()) == [0, 1]
    log.write_bytes(lines(2, 2))
    assert ids(reader.run()) == [2, 3]
    assert reader.run() == []
    assert reader.state.values[f"file:{log}"]["rotated"] == []  # type: ignore[index]


def test_an_unreadable_rotated_file_does_not_hide_the_newer_ones(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    reader.run()
    last = log.stat().st_mtime_ns
    log.unlink()
    (tmp_path / "app.log.2.gz").write_bytes(b"not gzip at all\n")
    (tmp_path / "app.log.1").write_bytes(lines(2, 2))
    log.write_bytes(lines(4, 1))
    for n, path in enumerate((tmp_path / "app.log.2.gz", tmp_path / "app.log.1", log), 1):
        os.utime(path, ns=(last + n * 10**9, last + n * 10**9))
    with capture_logs() as logs:
        assert ids(reader.run()) == [2, 3, 4]
    assert [e["path"] for e in logs if e["event"] == "rotated_file_unreadable"] == [str(tmp_path / "app.log.2.gz")]


def test_the_unterminated_last_line_of_a_compressed_rotated_file_is_a_line(tmp_path: Path) -> None:
    """logrotate compresses a file whole: its last line will never be finished."""
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 40) + b"Nov 23 07:00:00 host app[1]: line 00000040")
    reader = Reader(source(log))
    assert ids(reader.run()) == list(range(40))
    (tmp_path / "app.log.1.gz").write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    log.write_bytes(lines(41, 1))
    assert ids(reader.run()) == [40, 41]
    assert reader.run() == []


def test_start_at_end_inside_a_line_longer_than_the_window_skips_the_rest_of_that_line(tmp_path: Path) -> None:
    """No newline in the last 64 KiB: where the line started is unknown, so none of it is read."""
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 1) + b"x" * (70 * 1024))
    reader = Reader(source(log, start_at="end"))
    assert reader.run() == []
    append(log, b"the end of the long line\n" + lines(1, 2))
    assert ids(reader.run()) == [1, 2]


HEADER = b"Nov 23 07:00:00 host app[1]: logging started 00000999\n"


def test_the_fingerprint_grows_with_the_file_so_a_rewrite_with_the_same_first_line_is_told_apart(tmp_path: Path) -> None:
    """First seen as one line, its fingerprint grows to FINGERPRINT_BYTES as the file does; a
    copytruncate whose new content starts with the same line is then not taken for the old file."""
    log = tmp_path / "app.log"
    log.write_bytes(HEADER)
    reader = Reader(source(log))
    assert ids(reader.run()) == [999]
    append(log, lines(0, 30))
    assert ids(reader.run()) == list(range(30))
    append(log, lines(30, 2))
    shutil.copyfile(log, tmp_path / "app.log.1")
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, HEADER + lines(100, 40))  # longer than the old offset, same first line
    assert ids(reader.run()) == [30, 31, 999, *range(100, 140)]


def test_a_new_file_with_the_same_first_line_is_not_the_renamed_one(tmp_path: Path) -> None:
    """Another inode at the path is another file, whatever its first bytes."""
    log = tmp_path / "app.log"
    log.write_bytes(HEADER)
    reader = Reader(source(log))
    assert ids(reader.run()) == [999]
    append(log, lines(0, 1))
    log.rename(tmp_path / "app.log.1")
    log.write_bytes(HEADER + lines(100, 5))
    assert ids(reader.run()) == [0, 999, *range(100, 105)]


def test_the_renamed_file_is_found_before_an_older_one_with_the_same_first_line(tmp_path: Path) -> None:
    """Two siblings start alike: the renamed file (same inode, listed first) is the one read, not
    the older history behind it."""
    log = tmp_path / "app.log"
    (tmp_path / "app.log.1").write_bytes(HEADER + lines(900, 2))  # history from before
    log.write_bytes(HEADER)
    reader = Reader(source(log))
    assert ids(reader.run()) == [999]
    append(log, lines(0, 1))
    _rotate(log)
    log.write_bytes(lines(1, 1))
    assert ids(reader.run()) == [0, 1]


def _rotate(log: Path) -> None:
    """logrotate without compression: x.N becomes x.N+1, oldest first, then x becomes x.1."""
    n = 1
    while log.with_name(f"{log.name}.{n}").exists():
        n += 1
    for k in range(n - 1, 0, -1):
        log.with_name(f"{log.name}.{k}").rename(log.with_name(f"{log.name}.{k + 1}"))
    log.rename(log.with_name(f"{log.name}.1"))


def test_an_unreadable_sibling_listed_first_does_not_hide_the_renamed_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    reader.run()
    append(log, lines(2, 1))
    log.rename(tmp_path / "app.log.2")
    (tmp_path / "app.log.1.gz").write_bytes(b"not gzip at all\n")
    log.write_bytes(lines(3, 1))
    assert ids(reader.run()) == [2, 3]


def test_an_old_short_copy_with_the_same_first_bytes_does_not_stall_the_path(tmp_path: Path) -> None:
    """A copy cut short (a full disk during copytruncate) starts like the file read, but is shorter
    than what was read: it is not that file, and the path goes on being read."""
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 40))
    reader = Reader(source(log))
    assert len(reader.run()) == 40
    short = tmp_path / "app.log.1"
    short.write_bytes(lines(0, 30))  # more than the fingerprint's bytes, less than was read
    assert FINGERPRINT_BYTES <= short.stat().st_size < log.stat().st_size
    _stamp(short, NOV_1)  # from before the last look
    log.unlink()
    log.write_bytes(lines(100, 1))
    assert ids(reader.run()) == [100]
    append(log, lines(101, 1))
    assert ids(reader.run()) == [101]


def test_an_empty_rotated_file_deleted_before_it_is_drained_is_not_taken_for_another(tmp_path: Path) -> None:
    """An empty file's fingerprint matches any file: only its own inode is it."""
    log = tmp_path / "app.log"
    (tmp_path / "app.log.1").write_bytes(lines(900, 2))  # history, never read
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    assert ids(reader.run()) == [0, 1]
    # down across two rotations; the second moved an empty file
    _rotate(log)
    log.write_bytes(b"")
    _rotate(log)
    log.write_bytes(lines(2, 1))
    assert ids(reader.run()) == [2]
    assert len(reader.state.values[f"file:{log}"]["rotated"]) == 2  # type: ignore[index,arg-type]
    (tmp_path / "app.log.1").unlink()  # the empty one
    assert reader.run() == []
    assert ids(reader.read) == [0, 1, 2]


def test_a_rotated_file_newer_than_the_current_one_is_forgotten_after_a_quiet_run(tmp_path: Path) -> None:
    """Written after the new file was created, the rotated file is the newest: ``seen`` is its
    own time, which it does not exceed; once quiet for a run it is done."""
    log, old = tmp_path / "app.log", tmp_path / "app.log.1"
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    reader.run()
    log.rename(old)
    log.write_bytes(b"")
    append(old, lines(2, 1))
    now = old.stat().st_mtime_ns
    os.utime(log, ns=(now + 10**9, now + 10**9))
    os.utime(old, ns=(now + 2 * 10**9, now + 2 * 10**9))
    assert ids(reader.run()) == [2]
    assert reader.run() == []
    assert reader.state.values[f"file:{log}"]["rotated"] == []  # type: ignore[index]


def test_lines_written_late_to_an_empty_rotated_file_are_read_after_a_further_rotation(tmp_path: Path) -> None:
    """Tracked while empty (an empty fingerprint), it is known by its inode alone, also when a
    file of another inode is listed before it."""
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 2))
    reader = Reader(source(log))
    assert ids(reader.run()) == [0, 1]
    _rotate(log)
    log.write_bytes(b"")
    _rotate(log)  # the empty file is app.log.1 now
    log.write_bytes(lines(2, 1))
    assert ids(reader.run()) == [2]
    _rotate(log)  # the empty file is app.log.2, behind the file read last
    append(tmp_path / "app.log.2", lines(3, 1))  # its writer had not reopened yet
    log.write_bytes(lines(4, 1))
    assert ids(reader.run()) == [3, 4]


def test_of_two_copies_that_start_alike_the_newest_is_the_file_read(tmp_path: Path) -> None:
    """copytruncate of a file that starts with the same header every time (a firewall log): its
    first look saw only the header, so both copies match the fingerprint; the newer is the copy."""
    log = tmp_path / "app.log"
    (tmp_path / "app.log.1").write_bytes(HEADER + lines(900, 2))  # the previous copy
    log.write_bytes(HEADER)
    reader = Reader(source(log))
    assert ids(reader.run()) == [999]
    append(log, lines(0, 1))
    (tmp_path / "app.log.1").rename(tmp_path / "app.log.2")
    shutil.copyfile(log, tmp_path / "app.log.1")
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, lines(1, 1))
    assert ids(reader.run()) == [0, 1]
