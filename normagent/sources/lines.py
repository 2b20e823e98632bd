"""How many lines a block holds: its ``b"\\n"`` bytes, counted once per block by every reader.

A reader counts each block it hands out (``TextBlock.lines``): the lines a collector read, and so
the ones its parser ignored. ``bytes.count`` walks a byte at a time and on a log of 240-byte lines
costs about as much as a whole ``grep -c`` over the file; the compiled ``normagent.sources._lines`` finds
each newline with glibc's vectorised ``memchr``, about five times faster. Where it was not built
(no C compiler when pip installed normagent) ``bytes.count`` gives the same answer.

``count_lines_ascii`` also tells whether the block is ASCII, in the same pass: the driver checks
every block for UTF-8 (``invalid_utf8_lines``), and a block of ASCII needs no further look.

``BlockCopies`` copies a block's complete lines out of a reader's read buffer, or reads a plain
file's block straight into a kept object (``pread``). A fresh ``bytes``
of a block's size per block is faulted in page by page (glibc hands the freed block back to the
kernel at once), which cost a firewall backlog more than the copy itself; the compiled one writes
each block into one of two kept objects that nobody else holds any more (``_lines.c``). Where it
was not built, each copy is a fresh object: the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable


def _count_by_bytes(data: bytes) -> int:
    return data.count(b"\n")


def _count_ascii_by_bytes(data: bytes) -> tuple[int, bool]:
    return data.count(b"\n"), data.isascii()


class _BlockCopiesByBytes:
    """``BlockCopies`` without the compiled module: a fresh ``bytes`` per copy."""

    __slots__ = ("capacity",)

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError("BlockCopies: capacity must be 2 bytes or more")
        self.capacity = capacity

    def copy(self, buffer: bytearray, n: int, /) -> bytes:
        """The first ``n`` bytes of ``buffer``."""
        if not 0 <= n <= len(buffer):
            raise ValueError(f"copy(): {n} bytes asked of a buffer of {len(buffer)}")
        with memoryview(buffer) as view:
            return view[:n].tobytes()

    def pread(self, fd: int, offset: int, size: int, /) -> tuple[bytes | None, int]:
        """One read of up to ``size`` bytes of ``fd`` at ``offset``: its complete lines (up to
        and with the last newline), or None when it holds no newline; and how many bytes it read."""
        if offset < 0 or not 0 <= size <= self.capacity:
            raise ValueError(f"pread(): offset {offset} or size {size} out of range (capacity {self.capacity})")
        data = os.pread(fd, size, offset)
        cut = data.rfind(b"\n") + 1
        return (data[:cut] if cut else None), len(data)


count_lines: Callable[[bytes], int]
"""The number of ``b"\\n"`` bytes in ``data``."""
count_lines_ascii: Callable[[bytes], tuple[int, bool]]
"""The number of ``b"\\n"`` bytes in ``data``, and whether every byte of it is ASCII."""
BlockCopies: type[_BlockCopiesByBytes]
"""``BlockCopies(capacity).copy(buffer, n)``: the first ``n`` bytes of a read buffer, as ``bytes``."""
try:
    from normagent.sources._lines import count_lines, count_lines_ascii
except ImportError:  # not built: no C compiler or Python headers when normagent was installed
    count_lines = _count_by_bytes
    count_lines_ascii = _count_ascii_by_bytes
try:
    from normagent.sources._lines import BlockCopies  # type: ignore[assignment]  # the stub types it as its own class
except ImportError:
    BlockCopies = _BlockCopiesByBytes

COMPILED = count_lines is not _count_by_bytes
"""Whether the compiled counter is in use."""

__all__ = ["COMPILED", "BlockCopies", "count_lines", "count_lines_ascii"]
