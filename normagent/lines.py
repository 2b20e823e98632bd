"""How many lines a block holds: its ``b"\\n"`` bytes, counted once per block by every reader.

A reader counts each block it hands out (``TextBlock.lines``): the lines a collector read, and so
the ones its parser ignored. ``bytes.count`` walks a byte at a time and on a log of 240-byte lines
costs about as much as a whole ``grep -c`` over the file; the compiled ``normagent._lines`` finds
each newline with glibc's vectorised ``memchr``, about five times faster. Where it was not built
(no C compiler when pip installed normagent) ``bytes.count`` gives the same answer.
"""

from __future__ import annotations

from collections.abc import Callable


def _count_by_bytes(data: bytes) -> int:
    return data.count(b"\n")


count_lines: Callable[[bytes], int]
"""The number of ``b"\\n"`` bytes in ``data``."""
try:
    from normagent._lines import count_lines
except ImportError:  # not built: no C compiler or Python headers when normagent was installed
    count_lines = _count_by_bytes

COMPILED = count_lines is not _count_by_bytes
"""Whether the compiled counter is in use."""

__all__ = ["COMPILED", "count_lines"]
