"""Counting a block's lines: the compiled counter (normagent/sources/_lines.c) answers as bytes.count does.

Every reader counts each block's lines with ``normagent.sources.lines.count_lines``; a wrong count is a
wrong ``normagent_log_lines_total`` and a wrong "ignored". The compiled counter is held to
``bytes.count(b"\\n")`` on drawn and edge-case input, and run under the sanitizers.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

from hypothesis import given, settings, strategies as st

from normagent.sources import lines
from tests.support.sanitizers import build_sanitized, run_sanitized
from tests.support.tools import REPO, require_extension

SOURCE = REPO / "normagent" / "sources" / "_lines.c"


def compiled_count() -> object:
    return require_extension("normagent.sources._lines").count_lines  # type: ignore[attr-defined]


def test_the_readers_use_the_compiled_counter_when_it_is_built() -> None:
    assert lines.count_lines is compiled_count()
    assert lines.COMPILED


@given(st.binary(max_size=5000) | st.lists(st.sampled_from([b"\n", b"a", b"\r\n", b"\x00", b"\n\n", b"x" * 70])).map(b"".join))
def test_the_compiled_count_is_bytes_count(data: bytes) -> None:
    count = compiled_count()
    assert count(data) == data.count(b"\n")  # type: ignore[operator]
    assert count(bytearray(data)) == count(memoryview(data)) == data.count(b"\n")  # type: ignore[operator]


def compiled_count_ascii() -> object:
    return require_extension("normagent.sources._lines").count_lines_ascii  # type: ignore[attr-defined]


@given(st.binary(max_size=5000) | st.lists(st.sampled_from([b"\n", b"a", b"\x7f", b"\x80", b"\xff", b"\x00", b"x" * 70])).map(b"".join))
def test_the_compiled_count_and_ascii_check_are_bytes_count_and_isascii(data: bytes) -> None:
    count = compiled_count_ascii()
    expected = (data.count(b"\n"), data.isascii())
    assert count(data) == count(bytearray(data)) == count(memoryview(data)) == expected  # type: ignore[operator]
    assert lines.count_lines_ascii is count


def test_a_byte_that_is_no_ascii_is_seen_at_every_position() -> None:
    """The check runs 64 bytes at a time and then a byte at a time: a high byte at any place of
    a block of any length around those edges, and a newline there, are both seen."""
    count = compiled_count_ascii()
    for size in range(1, 200):
        for at in range(size):
            for byte in (b"\x80", b"\xff", b"\n"):
                data = b"a" * at + byte + b"a" * (size - at - 1)
                assert count(data) == (data.count(b"\n"), data.isascii()), (size, at, byte)  # type: ignore[operator]


def test_without_the_compiled_counter_bytes_count_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "normagent.sources._lines", None)  # as if it was never built
    fallback = importlib.reload(lines)
    try:
        assert not fallback.COMPILED
        assert fallback.count_lines(b"a\nb\n\nc") == 3
        assert fallback.count_lines_ascii(b"a\nb\n\nc") == (3, True)
        assert fallback.count_lines_ascii("é\n".encode()) == (1, False)
    finally:
        monkeypatch.undo()
        importlib.reload(lines)


def test_edges_and_a_large_block() -> None:
    count = compiled_count()
    both = compiled_count_ascii()
    for data in (b"", b"\n", b"a", b"a\n", b"\na", b"\n" * 1_000_003, b"x" * 16 * 2**20, (b"y" * 239 + b"\n") * 70_000):
        assert count(data) == data.count(b"\n")  # type: ignore[operator]
        assert both(data) == (data.count(b"\n"), True)  # type: ignore[operator]
        assert both(data + b"\xc3\xa9") == (data.count(b"\n"), False)  # type: ignore[operator]


def test_what_is_no_buffer_is_refused() -> None:
    for count in (compiled_count(), compiled_count_ascii()):
        for wrong in ("text\n", 12, None, [b"\n"]):
            try:
                count(wrong)  # type: ignore[operator]
            except TypeError:
                continue
            raise AssertionError(f"{wrong!r} was counted")


def compiled_copies() -> type:
    return require_extension("normagent.sources._lines").BlockCopies  # type: ignore[attr-defined,no-any-return]


def test_the_readers_use_the_compiled_block_copies_when_built() -> None:
    assert lines.BlockCopies is compiled_copies()


@given(st.lists(st.tuples(st.binary(max_size=300), st.integers(0, 300), st.booleans()), max_size=40), st.integers(2, 200))
def test_a_copy_is_the_buffer_s_first_bytes_and_a_block_still_held_never_changes(
    steps: list[tuple[bytes, int, bool]], capacity: int
) -> None:
    """Each copy is the first n bytes of its buffer, with the hash and length of a new object; a
    copy the caller still holds keeps its bytes while later copies are made (the kept objects are
    reused only when nobody else holds them), and one dropped may be written again."""
    copies = compiled_copies()(capacity)
    held: list[tuple[bytes, bytes]] = []
    for data, n, keep in steps:
        n = min(n, len(data))
        block = copies.copy(bytearray(data), n)
        assert type(block) is bytes and block == data[:n] and len(block) == n
        assert hash(block) == hash(bytes(data[:n]))
        assert block.decode("latin-1").encode("latin-1") == data[:n]  # read through the C API too
        if keep:
            held.append((block, data[:n]))
        del block
        for kept, expected in held:
            assert kept == expected and hash(kept) == hash(expected)


def test_a_copy_reuses_a_dropped_block_and_makes_a_new_one_when_both_are_held() -> None:
    copies = compiled_copies()(64)
    a = copies.copy(bytearray(b"a" * 40), 40)
    b = copies.copy(bytearray(b"b" * 30), 30)
    c = copies.copy(bytearray(b"c" * 20), 20)  # both kept ones held: a new one
    assert (a, b, c) == (b"a" * 40, b"b" * 30, b"c" * 20)
    first = id(b)
    del b
    d = copies.copy(bytearray(b"d" * 50), 50)  # b's object, dropped, written again
    assert id(d) == first and d == b"d" * 50 and hash(d) == hash(b"d" * 50)
    assert (a, c) == (b"a" * 40, b"c" * 20)


@pytest.mark.parametrize("copies", [pytest.param(None, id="compiled"), pytest.param(lines._BlockCopiesByBytes, id="fallback")])
def test_block_copies_edges_and_refusals(copies: type | None) -> None:
    kind = copies or compiled_copies()
    c = kind(8)
    assert c.capacity == 8
    buffer = bytearray(b"0123456789abcdef")
    assert [c.copy(buffer, n) for n in (0, 1, 2, 8, 9, 16)] == [bytes(buffer[:n]) for n in (0, 1, 2, 8, 9, 16)]
    for n in (-1, 17):
        with pytest.raises(ValueError):
            c.copy(buffer, n)
    with pytest.raises(ValueError):
        kind(1)
    with pytest.raises(TypeError):
        c.copy("text", 1)


def test_a_file_s_blocks_are_its_bytes_whether_held_or_dropped(tmp_path: Path) -> None:
    """Through the file reader: blocks dropped as they come (the kept objects written again) and
    blocks all held, each the file's lines in order."""
    from normagent.sources.files import _cut_blocks, _pread_reader

    data = b"".join(b"%d %s\n" % (i, b"x" * (i % 97)) for i in range(3000))
    path = tmp_path / "log"
    path.write_bytes(data)
    with open(path, "rb") as f:
        seen = b"".join(cut.data for cut in _cut_blocks(_pread_reader(f.fileno()), 0, 4096))
        held = [cut.data for cut in _cut_blocks(_pread_reader(f.fileno()), 0, 4096)]
    assert seen == b"".join(held) == data
    assert len(held) > 10 and all(block.endswith(b"\n") for block in held)


@pytest.mark.parametrize("copies", [pytest.param(None, id="compiled"), pytest.param(lines._BlockCopiesByBytes, id="fallback")])
def test_pread_reads_a_file_s_complete_lines_into_a_block(tmp_path: Path, copies: type | None) -> None:
    """One read of up to ``size`` bytes: its complete lines and how many bytes it read, None
    without a newline; the compiled one and the fallback alike, blocks held left as they were."""
    kind = copies or compiled_copies()
    data = b"first line\nsecond\n" + b"x" * 50 + b"\nlast without end"
    path = tmp_path / "log"
    path.write_bytes(data)
    c = kind(64)
    with open(path, "rb") as f:
        fd = f.fileno()
        held = []
        for offset in range(len(data) + 2):
            for size in (0, 1, 5, 11, 12, 30, 64):
                block, n = c.pread(fd, offset, size)
                got = data[offset : offset + size]
                cut = got.rfind(b"\n") + 1
                assert n == len(got)
                assert block == (got[:cut] if cut else None), (offset, size)
                if block is not None:
                    assert hash(block) == hash(got[:cut])
                    if size == 30:
                        held.append((block, got[:cut]))
                assert all(kept == expected for kept, expected in held)
        for offset, size in ((-1, 5), (0, 65), (0, -1)):
            with pytest.raises(ValueError):
                c.pread(fd, offset, size)
    directory = os.open(tmp_path, os.O_RDONLY)
    try:
        with pytest.raises(IsADirectoryError):
            c.pread(directory, 0, 5)
    finally:
        os.close(directory)


@settings(deadline=None, max_examples=200)
@given(st.lists(st.sampled_from([b"a", b"bb", b"\n", b"\n", b"x" * 40, b"\xc3\xa9", b"\n" * 3]), max_size=60).map(b"".join),
       st.integers(2, 50), st.booleans(), st.booleans())
def test_a_file_read_straight_into_blocks_is_cut_as_through_the_read_buffer(data: bytes, block_bytes: int, skip: bool, complete: bool) -> None:
    """``_cut_blocks`` with ``fd`` (blocks read into ``BlockCopies``' objects) hands out the same
    cuts — bytes, lines, ends, over-long lines, a partial last line left — as the general way."""
    import tempfile

    from normagent.sources.files import _cut_blocks, _pread_reader

    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        fd = f.fileno()
        general = [(c.data, c.lines, c.end, c.skip, c.truncated, c.ascii) for c in _cut_blocks(_pread_reader(fd), 0, block_bytes, skip=skip, complete=complete)]
        direct = [(c.data, c.lines, c.end, c.skip, c.truncated, c.ascii) for c in _cut_blocks(_pread_reader(fd), 0, block_bytes, skip=skip, complete=complete, fd=fd)]
    assert direct == general


SANITIZED = r"""
import ctypes, random, sys
import normagent.sources._lines as compiled
assert compiled.__file__.startswith(sys.argv[1]), compiled.__file__
rng = random.Random(15)
for size in list(range(70)) + [rng.randrange(1 << 16) for _ in range(300)]:
    data = bytes(rng.choice(b"\nab\x00\x80" if size % 3 == 0 else b"\nab\x00") for _ in range(size))
    assert compiled.count_lines(data) == data.count(b"\n")
    # A bytes object ends in a NUL of its own: a buffer of exactly its size (malloc'd, as
    # PYTHONMALLOC=malloc makes it) lets the sanitizer see a read even one byte past the end.
    exact = memoryview((ctypes.c_char * size).from_buffer_copy(data)).cast("B")
    assert compiled.count_lines(exact) == data.count(b"\n")
    start = rng.randrange(size + 1)
    assert compiled.count_lines(exact[start:]) == data[start:].count(b"\n")
    both = (data.count(b"\n"), data.isascii())
    assert compiled.count_lines_ascii(data) == compiled.count_lines_ascii(exact) == both
    assert compiled.count_lines_ascii(exact[start:]) == (data[start:].count(b"\n"), data[start:].isascii())
copies, held = compiled.BlockCopies(1 << 12), []
for step in range(3000):
    n = rng.randrange(1 << 13)
    buffer = (ctypes.c_char * n).from_buffer_copy(bytes(rng.randrange(256) for _ in range(min(n, 64))).ljust(n, b"z"))
    want = rng.randrange(n + 1)
    block = copies.copy(memoryview(buffer).cast("B"), want)
    assert block == bytes(buffer)[:want] and hash(block) == hash(bytes(buffer)[:want])
    if step % 7 == 0:
        held.append((block, bytes(block)))
    if len(held) > 3:
        held.pop(rng.randrange(len(held)))
    assert all(kept == copy for kept, copy in held)
import os, tempfile
with tempfile.TemporaryFile() as f:
    data = bytes(rng.choice(b"ab\n\x00\xff") for _ in range(1 << 14))
    f.write(data)
    f.flush()
    for step in range(2000):
        offset, size = rng.randrange(len(data) + 10), rng.randrange(1 << 12)
        block, n = copies.pread(f.fileno(), offset, size)
        got = data[offset : offset + size]
        cut = got.rfind(b"\n") + 1
        assert n == len(got) and block == (got[:cut] if cut else None)
        if block is not None and step % 5 == 0:
            held.append((block, bytes(block)))
        if len(held) > 3:
            held.pop(rng.randrange(len(held)))
        assert all(kept == copy for kept, copy in held)
del copies
print("ok")
"""


def test_the_counter_is_memory_safe_under_the_sanitizers(tmp_path: Path) -> None:
    build = build_sanitized(SOURCE, "normagent.sources._lines", tmp_path)
    assert run_sanitized(SANITIZED, str(build), first_on_path=build).strip() == "ok"
