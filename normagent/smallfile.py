"""Read a small file an operator names (the configuration, a secret, a certificate) safely.

Why not ``Path.read_text``: the path is whatever a configuration or a command line says, and
bad luck or an attacker can put something else there. A FIFO blocks ``open`` until someone writes
to it, so the agent would hang at start without a word; a device such as ``/dev/zero`` never
ends, and a log file given by mistake can be gigabytes, read whole into memory. Here the file is
opened without blocking, must be a regular file, and is read only up to a limit; each refusal is
an ``OSError`` whose text says what the path is instead.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISREG, "a regular file"),
)


def kind_of(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, for a message: "a FIFO (named pipe)", …"""
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


# Read in pieces, never ``limit`` bytes at once: a 4 MiB buffer for a 3 kB file is an mmap'd chunk
# whose free raises glibc's mmap threshold to 4 MiB, after which every buffer below that size
# (a log reader's 1 MiB blocks) comes from the heap and stays there: 3-5 MB more idle RSS.
_CHUNK = 64 * 1024


class NotRegularFile(OSError):
    """The path is a FIFO, a device or a socket, where a file was expected."""


class FileTooLarge(OSError):
    """The file is larger than what its kind can reasonably be."""


def _open_regular(path: Path) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file ``path``, opened without blocking, and its ``fstat``.

    Raises:
        FileNotFoundError, PermissionError, IsADirectoryError: as ``open`` would.
        NotRegularFile: a FIFO, device or socket (opened without blocking, never read).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket, or a device without its driver
            raise NotRegularFile(errno.EINVAL, f"is {kind_of(os.stat(path).st_mode)}, not a regular file", str(path)) from None
        raise
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(path))
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, f"is {kind_of(st.st_mode)}, not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes (fewer at the end) of the regular file ``path``, however large it
    is: a header, such as a ClamAV database's, never the whole file.

    Raises:
        As ``read_small_stat``, except for ``FileTooLarge``.
    """
    fd, _ = _open_regular(path)
    try:
        return _read_up_to(fd, size)
    finally:
        os.close(fd)


def _read_up_to(fd: int, count: int) -> bytes:
    """Up to ``count`` bytes from ``fd``, fewer where it ends, read ``_CHUNK`` at most at a time."""
    parts: list[bytes] = []
    got = 0
    while got < count:
        part = os.read(fd, min(_CHUNK, count - got))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_small(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them (see ``read_small_stat``)."""
    return read_small_stat(path, limit)[0]


def read_small_stat(path: Path, limit: int) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file ``path``, at most ``limit`` of them, with its ``fstat``
    before reading (for a reader that notices when the file is replaced).

    Raises:
        FileNotFoundError, PermissionError, IsADirectoryError: as ``open`` would.
        NotRegularFile: a FIFO, device or socket (opened without blocking, never read).
        FileTooLarge: more than ``limit`` bytes (checked before reading, and again while
            reading, for a file that grows meanwhile).
    """
    fd, st = _open_regular(path)
    try:
        if st.st_size > limit:
            raise FileTooLarge(errno.EFBIG, f"is larger than {limit:,} bytes", str(path))
        data = _read_up_to(fd, limit + 1)  # one byte more than allowed tells a file that grew
        if len(data) > limit:
            raise FileTooLarge(errno.EFBIG, f"is larger than {limit:,} bytes", str(path))
        return data, st
    finally:
        os.close(fd)


def read_small_text(path: Path, limit: int) -> str:
    """``read_small`` decoded as UTF-8 (``UnicodeDecodeError`` names the byte's position)."""
    return read_small(path, limit).decode("utf-8")


MAX_SECRET_BYTES = 64 * 1024  # a token, password or shared secret; anything longer is the wrong file


def read_secret(path: Path) -> str:
    """A secret file's text, trimmed (refused: a FIFO, a device, a file over 64 KiB)."""
    return read_small_text(path, MAX_SECRET_BYTES).strip()


MAX_PEM_BYTES = 4 * 1024 * 1024  # a certificate chain, a key or a CA bundle (the system's is ~200 kB)
_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def pem_cut_short(path: Path, text: bytes) -> str:
    """What is wrong with the PEM file ``path`` holding ``text`` if a BEGIN block in it has no
    END line ("<path> is cut short: its CERTIFICATE block has no END line"), else "".

    OpenSSL says only "PEM lib" or "no start line" of a file cut short (a copy that stopped, a
    full disk); a BEGIN line whose END never comes is what such a file shows.
    """
    for begin in _PEM_BEGIN.finditer(text):
        if text.find(b"-----END " + begin[1] + b"-----", begin.end()) < 0:
            return f"{path} is cut short: its {begin[1].decode('ascii')} block has no END line"
    return ""
