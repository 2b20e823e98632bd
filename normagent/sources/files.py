"""Checkpointed, rotation-safe reading of log files: blocks of complete lines, each with its checkpoint.

This module owns *where a file has been read up to* and how that position survives rotation. It
hands out blocks of complete lines (``TextBlock``), each paired with the checkpoint value it leads
to, so the caller can commit a block's counts and its position in one transaction.

Identity. A file is (st_dev, st_ino, sha1 of its first ``FINGERPRINT_BYTES`` bytes). While a file
is shorter than that, the fingerprint covers what there is and grows with the file. The fingerprint
is what tells a reused inode from the old file, a copytruncate from an append, and what finds the
old file again after it was renamed, copied or compressed.

Rotation. One checkpoint per configured path (``file:<path>``) holds the *current* file and the
*rotated* files still being drained. On each run:

- rotated files are drained first (oldest first): a renamed file may still get lines from a writer
  that has not reopened yet, so it is followed until it has not grown for a whole run; then its
  unterminated last line, if any, is complete and counted;
- the current file is verified (same inode, at least as long as the offset, same first bytes). If
  it is not the same any more (rename+create, copytruncate, delete+recreate, inode reuse), the old
  file is looked for among its rotated siblings (``name.1``, ``name.2.gz``, ``name-20250101``,
  ``name.old`` …; plain, gzip, bzip2, xz) by inode and fingerprint, or by the fingerprint of its
  decompressed first bytes; its unread rest is read, then every sibling *newer* than it (the agent
  was down across several rotations), then the new file from its start;
- when the old file cannot be found (deleted), or had no first bytes yet (empty), every sibling
  modified after the last look (``seen``, the newest mtime of the path's files then) holds unread
  lines; logrotate gives a compressed file its original's mtime, so older ones do not qualify;
- a whole catch-up (the files to read, and the new current file) goes into the checkpoint before
  its first block, so a crash half-way forgets nothing;
- a file never seen before starts at its beginning, or at its end (``start_at="end"``) if it was
  already there when its pattern was first configured; files that appear later always start at
  their beginning.

Concurrency. logrotate and writers work while we read. The identity of a file is checked again
*after* each read (a truncated file never gets its old first bytes back), so a copytruncate
between the check and the read cannot pass new lines off as the old file's. A directory is
listed until two listings agree, and every rotated file is opened pinned to the inode the listing
saw; if one moved in between, the path is left alone for this run and looked at again next run.

Known limits. A rotated file that was empty at the last look has no first bytes to be known by,
only its inode: were it deleted and its inode reused by another rotated file before the next run,
that file would be taken for it (logrotate's ``notifempty``, the usual setting, never rotates an
empty file). A file that was empty at the last look and was then written and copytruncated is
recognised by its copy's modification time; on a filesystem with coarse timestamps a copy made
within the same clock tick as the last look could be missed.

Not a regular file. Every file is opened with ``O_NONBLOCK`` and its type checked on the open file:
a configured path that is a FIFO, a device, a socket or a directory is refused with
``NotRegularFile`` (opening a FIFO without a writer would block the run forever, and with it every
later run of the collector). Rotated files are never FIFOs or links: a sibling that is one is not
read, and one is opened with ``O_NOFOLLOW``, so no link leads the reader out of the directory. The
configured path itself may be a link; it is the administrator's choice.

A half-written last line is never handed out: the offset stays after the last ``b"\\n"``. CRLF and
invalid UTF-8 are passed through as bytes. All splitting and counting is done by ``bytes`` methods
(C speed); no Python runs per line.

Imports only the standard library (with normagent's ``dataclass``), normagent.model and
normagent.digests (structlog for the log).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import functools
import glob
import os
import re
import stat
import sys
import time
import urllib.parse
from collections.abc import Callable, Generator, Iterator
from dataclasses import field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from normagent import digests
from normagent.records import dataclass
from normagent.sources.lines import BlockCopies, count_lines_ascii
from normagent.model import CheckpointReader, JSONValue, TextBlock
from normagent.smallfile import kind_of

log = structlog.get_logger(__name__)

FINGERPRINT_BYTES = 1024  # as Filebeat's fingerprint: long enough to get past fixed file headers
BLOCK_BYTES = 2**20  # blocks stay in the CPU cache while they are cut and counted
MIN_BLOCK_BYTES = 64
MAX_BLOCK_BYTES = 16 * 2**20  # a block (and the longest line kept whole) is held in memory
CHECKPOINT_VERSION = 1
FILE_KEY = "file:"
FILE_ESCAPED_KEY = "filex:"  # a path that is not valid UTF-8, percent-encoded (see ``file_key``)
PATTERN_KEY = "pattern:"
_END_SCAN = 64 * 2**10  # how far back "start at end" looks for the last complete line
_SCAN_TRIES = 5  # listings of a directory until two agree (a rotation may be renaming files)
_SCAN_PAUSE = 0.002
_GLOB_CHARS = re.compile(r"[*?\[]")
_CODEC_BY_SUFFIX = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))

StartAt = Literal["beginning", "end"]


@dataclass(frozen=True, slots=True)
class FileSource:
    """Which log files a collector reads, as a settings table a plugin embeds in its own settings.

    Example (``normagent.toml``)::

        [collectors."access.auth".files]
        paths = ["/var/log/auth.log", "/var/log/secure"]
        start_at = "end"

    Attributes:
        paths: Paths or globs (``/var/log/nginx/*.log``). Rotated siblings (``x.log.1``,
            ``x.log.2.gz``) matched by a glob are not separate sources: they are read as part of
            ``x.log``'s rotation, so a glob like ``auth.log*`` counts each line once. A path with
            ``*``, ``?`` or ``[`` is a glob: a name with a literal ``[`` is written ``[[]``
            (``/var/log/app[[]1].log``). A directory a glob names that cannot be listed fails the
            run, saying why; only regular files are matched.
        exclude: Globs of paths to leave out.
        start_at: Where a file already present when its pattern is first configured starts:
            ``"end"`` (history on disk at install time is not counted as new events) or
            ``"beginning"``. Files that appear later always start at their beginning.
        block_bytes: Largest block handed to a parser; also the longest line kept whole (a longer
            line is cut to this length, counted once, and the rest of it skipped).
        timezone: IANA zone of timestamps written without an offset (RFC 3164); empty: the host's.
    """

    paths: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    start_at: StartAt = "end"
    block_bytes: int = field(default=BLOCK_BYTES, metadata={"min": MIN_BLOCK_BYTES, "max": MAX_BLOCK_BYTES})
    timezone: str = ""

    def __post_init__(self) -> None:
        if self.start_at not in ("beginning", "end"):
            raise ValueError(f'start_at must be "beginning" or "end", got {self.start_at!r}')
        if self.block_bytes < MIN_BLOCK_BYTES:
            raise ValueError(f"block_bytes must be at least {MIN_BLOCK_BYTES}, got {self.block_bytes}")
        if self.timezone:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f'timezone {self.timezone!r} is not an IANA zone name like "Europe/Oslo"') from None


@dataclass(frozen=True, slots=True)
class FileRead:
    """One step of a tail: maybe a block of lines, and the checkpoint value it leads to.

    Attributes:
        key: Checkpoint key of the configured path (``"file:/var/log/auth.log"``, ``"pattern:…"``).
        checkpoint: The key's value once ``block`` is counted; ``None`` forgets the key.
        block: Complete lines, or ``None`` for a checkpoint-only step (a file started at its end,
            a rotated file finished, an unterminated line skipped).
        position: Where the block starts, stable across retries of the same block (for counting
            consecutive parser failures), e.g. ``"2049:1311@1048576"``.
        bytes_read: Bytes this step consumed from the source (lines, plus skipped bytes).
        ascii: Every byte of the block is ASCII, so it is valid UTF-8 (found while its lines were
            counted: the driver's UTF-8 check can skip it); False when not known.
    """

    key: str
    checkpoint: JSONValue
    block: TextBlock | None = None
    position: str = ""
    bytes_read: int = 0
    ascii: bool = False


# --------------------------------------------------------------------------------------------
# Byte-level helpers (pure)


def fingerprint(prefix: bytes) -> str:
    """The fingerprint of a file's first bytes."""
    return digests.sha1(prefix, usedforsecurity=False).hexdigest()


def invalid_utf8_lines(data: bytes) -> int:
    """How many lines of ``data`` are not valid UTF-8. Costs one C pass when all are valid."""
    if data.isascii():
        return 0
    try:
        data.decode("utf-8")
        return 0
    except UnicodeDecodeError:
        pass
    # Python runs once per bad line only. surrogateescape turns each invalid byte into a lone
    # surrogate, which no valid UTF-8 decodes to (unlike U+FFFD, which a line may really hold).
    text = data.decode("utf-8", "surrogateescape")
    search = _ESCAPED_BYTE.search
    bad = 0
    found = search(text)
    while found is not None:
        bad += 1
        end = text.find("\n", found.start())
        if end < 0:
            break
        found = search(text, end)
    return bad


@dataclass(frozen=True, slots=True)
class _Cut:
    data: bytes  # complete lines (possibly empty: only skipped bytes)
    lines: int
    end: int  # stream offset just after this cut
    skip: bool  # still skipping the rest of an over-long line
    truncated: bool = False
    ascii: bool = False  # every byte of data is ASCII (known from counting its lines)


def _cut_blocks(
    read_into: Callable[[int, bytearray], int],
    start: int,
    block_bytes: int,
    *,
    skip: bool = False,
    complete: bool = False,
    fd: int | None = None,
) -> Iterator[_Cut]:
    """Cut a byte stream into blocks of complete lines, none longer than ``block_bytes``.

    Each read starts at the end of the last complete line: the partial line at a block's end is
    read again with the next block rather than copied over. Reads go into one buffer kept while
    the generator runs (dropped with it, so an idle agent keeps none), and a block's complete
    lines are copied out of it once: a fresh ``bytes`` per read, and its slice, were two new
    allocations of a block's size each, which glibc serves from ``mmap`` (128 KiB and more) and
    the kernel faults in page by page (bench/README.md, bench_firewall.py: a sixth of a backlog's
    CPU time). The copies go into objects kept while the generator runs where nobody else holds
    them any more (``BlockCopies``): a fresh one per block was faulted in again each time. A
    plain file's usual block (``fd``) is read straight into such an object, no copy at all; a
    read that holds no newline is read again the general way.

    Args:
        read_into: ``read_into(offset, buffer)`` fills ``buffer`` from ``offset`` and returns how
            many bytes it put there; fewer than ``len(buffer)`` only at the end of the stream.
        start: Stream offset to start at.
        block_bytes: Largest block, and longest line kept whole; a longer line is cut, counted
            once, and the rest of it skipped (``skip`` carries that over to the next read).
        skip: Discard bytes up to and including the first newline (an over-long line's rest).
        complete: The stream is finished: an unterminated last line is a line (``b"\\n"`` added).
        fd: The stream is this file, read with ``os.preadv`` by ``read_into``: a block may be read
            into its object directly (``BlockCopies.pread``: the same bytes).
    """
    buffer: bytearray | None = None  # made when a read needs it: a stream, an over-long line, a line being written
    copies = BlockCopies(max(block_bytes, 2))
    pos = start
    while True:
        if fd is not None and not skip:
            block, n = copies.pread(fd, pos, block_bytes)
            if not n:
                return
            if block is not None:
                pos += len(block)
                yield _block_cut(block, pos)
                if n < block_bytes and (len(block) == n or not complete):
                    return  # the end for now: a partial line after the cut waits for its newline
                continue
        if buffer is None:
            buffer = bytearray(block_bytes)
        n = read_into(pos, buffer)
        if not n:
            return
        if skip:
            nl = buffer.find(b"\n", 0, n)
            pos += n if nl < 0 else nl + 1
            skip = nl < 0
            yield _Cut(b"", 0, pos, skip)
            continue
        cut = buffer.rfind(b"\n", 0, n) + 1
        if cut == 0:
            if n >= block_bytes:
                pos += n
                skip = True
                yield _Cut(bytes(buffer) + b"\n", 1, pos, True, truncated=True)
                continue
            if complete:  # the unterminated last line of a finished stream
                yield _Cut(_copy(buffer, n) + b"\n", 1, pos + n, False)
            return
        pos += cut
        yield _block_cut(copies.copy(buffer, cut), pos)
        if n < block_bytes and not complete:
            return  # the end for now: a partial line after the cut waits for its newline
        # A finished stream is read until it says it has ended: a decompressor that found its data
        # damaged says so on that last read (``_stream_reader``), after the lines before it.


def _block_cut(block: bytes, end: int) -> _Cut:
    """A block of complete lines that ends at stream offset ``end``, its lines counted."""
    lines, ascii = count_lines_ascii(block)
    return _Cut(block, lines, end, False, ascii=ascii)


def _copy(buffer: bytearray, n: int) -> bytes:
    """The first ``n`` bytes of ``buffer``, copied once."""
    with memoryview(buffer) as view:
        return view[:n].tobytes()


def _pread_reader(fd: int) -> Callable[[int, bytearray], int]:
    def read_into(offset: int, buffer: bytearray) -> int:
        return os.preadv(fd, (buffer,), offset)

    return read_into


def _stream_reader(read: Callable[[int], bytes], start: int) -> Callable[[int, bytearray], int]:
    """``read_into`` over a stream that only reads forward (decompressors, stdin) from ``start``.

    ``read`` should read a piece at a time (``read_some``): a decompressor's ``read(n)`` that
    meets damaged data raises, and everything it had decompressed within that call is gone.
    """
    pending = b""
    pending_at = start  # stream offset of pending[0]
    failure: Exception | None = None

    def read_into(offset: int, buffer: bytearray) -> int:
        nonlocal pending, pending_at, failure
        if offset < pending_at:
            raise ValueError(f"cannot read backwards in a stream (at {pending_at}, asked {offset})")
        size = len(buffer)
        pending = pending[offset - pending_at :]
        pending_at = offset
        parts = [pending] if pending else []
        have = len(pending)
        while have < size and failure is None:
            try:
                more = read(size - have)
            except Exception as exc:
                # Damaged or cut-short compressed data. The complete lines read before it are
                # handed out first (they were a whole block's worth, lost with the error); the
                # error comes with the next read, and the line it broke off is never a line.
                failure = exc
                break
            if not more:
                break
            parts.append(more)
            have += len(more)
        pending = parts[0] if len(parts) == 1 else b"".join(parts)
        n = min(len(pending), size)
        if failure is not None:
            n = pending.rfind(b"\n", 0, n) + 1
            if not n:
                raise failure
        buffer[:n] = pending[:n] if n < len(pending) else pending
        return n

    return read_into


_PIECE_BYTES = 64 * 1024


def read_some(stream: IO[bytes]) -> Callable[[int], bytes]:
    """``stream.read``, at most ``_PIECE_BYTES`` at a time: a decompressor's ``read(n)`` that meets
    damaged data raises, and what it had decompressed within that call is gone with it. (Its
    ``read1`` would lose less, but gives 8 KiB a call: a quarter slower.)"""
    read = stream.read
    return lambda n: read(min(n, _PIECE_BYTES))


# The decompressors' modules (gzip, bz2, lzma, with their libraries) are imported by the first
# compressed file read, not by every agent: most rotate to plain files first.


def _open_codec(path: str, codec: str) -> IO[bytes]:
    if codec == "gzip":
        import gzip

        return gzip.open(path, "rb")  # type: ignore[return-value]  # GzipFile is a binary IO
    if codec == "bz2":
        import bz2

        return bz2.open(path, "rb")
    if codec == "xz":
        import lzma

        return lzma.open(path, "rb")
    return open(path, "rb")  # noqa: SIM115 - the caller closes it


def codec_of(path: str | Path) -> str:
    """``"gzip"``, ``"bz2"``, ``"xz"`` or ``""`` (plain), by the file's first bytes."""
    with open(path, "rb") as f:
        return codec_from_magic(f.read(6))


def codec_from_magic(head: bytes) -> str:
    """``"gzip"``, ``"bz2"``, ``"xz"`` or ``""`` (plain), by the first bytes of a stream."""
    for prefix, codec in _MAGIC:
        if head.startswith(prefix):
            return codec
    return ""


def open_codec_stream(stream: IO[bytes], codec: str) -> IO[bytes]:
    """A decompressing reader over an open binary stream (which it does not close)."""
    if codec == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]  # GzipFile is a binary IO
    if codec == "bz2":
        import bz2

        return bz2.BZ2File(stream, "rb")
    if codec == "xz":
        import lzma

        return lzma.LZMAFile(stream, "rb")
    raise ValueError(f"unknown codec {codec!r}")


def codec_errors() -> tuple[type[BaseException], ...]:
    """A decompressor's complaints about its data (corrupt, or cut short), not the file's: a
    stream cut short is ``EOFError``; gzip lets ``zlib.error`` through for a damaged deflate stream
    (``Error -3 while decompressing data``), which is no ``OSError``; lzma raises ``LZMAError``.
    gzip's and bz2's other complaints are ``OSError``s without an errno. A function, as ``except``
    evaluates it only when something was raised: a module's error exists only once it was
    imported, and only then can it have been raised."""
    lzma, zlib = sys.modules.get("lzma"), sys.modules.get("zlib")
    return (EOFError, *((lzma.LZMAError,) if lzma is not None else ()), *((zlib.error,) if zlib is not None else ()))


def _decompress_errors() -> tuple[type[BaseException], ...]:
    """Corrupt or truncated compressed data as the three decompressors report it, and the read
    errors of the file under them."""
    return (OSError, ValueError, *codec_errors())


# --------------------------------------------------------------------------------------------
# Whole files, stateless (``normagent parse``)


def read_fd(fd: int, origin: str, *, mtime: datetime | None = None, block_bytes: int = BLOCK_BYTES) -> Iterator[TextBlock]:
    """All lines of an open regular file from its start, in blocks, read as the tail reads: one
    ``preadv`` per block into a buffer kept for the file, no copy through a stream. An unterminated last
    line is included."""
    for cut in _cut_blocks(_pread_reader(fd), 0, block_bytes, complete=True):
        if cut.lines:
            yield TextBlock(data=cut.data, origin=origin, mtime=mtime, lines=cut.lines)


def read_stream(
    stream: IO[bytes], origin: str, *, mtime: datetime | None = None, block_bytes: int = BLOCK_BYTES
) -> Iterator[TextBlock]:
    """All lines of a finished stream in blocks; an unterminated last line is included."""
    for cut in _cut_blocks(_stream_reader(read_some(stream), 0), 0, block_bytes, complete=True):
        if cut.lines:
            yield TextBlock(data=cut.data, origin=origin, mtime=mtime, lines=cut.lines)


def open_decompressed(path: str | Path) -> IO[bytes]:
    """Open a plain, gzip, bzip2 or xz file (told apart by content) for reading its text."""
    return _open_codec(str(path), codec_of(path))


def read_whole(path: str | Path, *, block_bytes: int = BLOCK_BYTES) -> Iterator[TextBlock]:
    """All lines of a plain, gzip, bzip2 or xz file (detected by content), in blocks.

    Stateless: no checkpoint is read or written. The file is taken as complete, so an unterminated
    last line is included. Corrupt compressed data raises ``OSError``/``EOFError`` after the lines
    before it were yielded.
    """
    text = str(path)
    mtime = datetime.fromtimestamp(os.stat(text).st_mtime, timezone.utc)
    with open_decompressed(text) as stream:
        yield from read_stream(stream, text, mtime=mtime, block_bytes=block_bytes)


# --------------------------------------------------------------------------------------------
# Rotated siblings


_DATE_DIGITS = 8  # a stamp with at least this many digits is a date (dateext), not a counter


@dataclass(frozen=True, slots=True)
class _Sibling:
    """A rotated sibling of a tailed path, e.g. ``auth.log.2.gz`` of ``auth.log``."""

    path: str
    codec: str
    age: tuple[int, int]  # sort key: smaller is newer
    st: os.stat_result


@functools.lru_cache(maxsize=256)
def _sibling_pattern(base: str) -> re.Pattern[str]:
    return re.compile(
        re.escape(base) + r"(?:[.-](?P<stamp>\d[\d_.-]*?)|\.(?P<old>old))(?P<comp>\.gz|\.bz2|\.xz)?$"
    )


def _age(match: re.Match[str]) -> tuple[int, int]:
    if match.group("old"):
        return (1, 0)  # Windows keeps one: pfirewall.log.old
    digits = re.sub(r"\D", "", match.group("stamp"))
    if len(digits) >= _DATE_DIGITS:
        # dateext: a later date is newer. Dated files sort before counted ones; a directory
        # mixing both schemes is a configuration change in progress.
        return (0, -int(digits))
    return (1, int(digits))


def list_siblings(real_path: str) -> list[_Sibling]:
    """The rotated siblings of ``real_path``, newest first (``.1`` before ``.2.gz``).

    A rotation renames several files one after another; a listing taken while it runs can miss a
    file or show one twice. So the directory is listed until two listings in a row agree.
    """
    previous: list[tuple[str, int]] | None = None
    found: list[_Sibling] = []
    for attempt in range(_SCAN_TRIES):
        found = _scan_siblings(real_path)
        names = [(s.path, s.st.st_ino) for s in found]
        if names == previous:
            break
        previous = names
        if attempt:
            time.sleep(_SCAN_PAUSE * attempt)
    return found


def _scan_siblings(real_path: str) -> list[_Sibling]:
    folder, base = os.path.split(real_path)
    pattern = _sibling_pattern(base)
    found: list[_Sibling] = []
    stems: set[str] = set()
    try:
        entries = list(os.scandir(folder or "."))
    except OSError:
        return []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue  # a link, a FIFO …: not something logrotate made; never read as a rotated file
        comp = match.group("comp") or ""
        if not comp:
            stems.add(entry.path)
        found.append(_Sibling(entry.path, _CODEC_BY_SUFFIX.get(comp, ""), _age(match), st))
    # ``x.1`` and ``x.1.gz`` side by side: compression is in progress; the plain one is whole.
    found = [s for s in found if not s.codec or s.path.rsplit(".", 1)[0] not in stems]
    found.sort(key=lambda s: s.age)
    unique: dict[tuple[int, int], _Sibling] = {}
    for sibling in found:  # one file under two names (a hard link): once, by its newest name
        unique.setdefault((sibling.st.st_dev, sibling.st.st_ino), sibling)
    return list(unique.values())


def regular_files(paths: list[str], errors: list[NotRegularFile] | None = None) -> list[str]:
    """The regular files among ``paths`` (a link to one included), in their order.

    A FIFO, a socket or a device that a glob matched is no log file and is never opened; given
    ``errors``, it is reported there (``NotRegularFile``), so a log that was replaced by a pipe
    says so, as a configured path does, instead of going quiet. Directories, and names that are
    gone or dangling links, are passed over as matches of no file.
    """
    found: list[str] = []
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode):
            found.append(path)
        elif not stat.S_ISDIR(mode) and errors is not None:
            errors.append(NotRegularFile(path, kind_of(mode)))
    return found


def glob_paths(pattern: str, errors: list[OSError] | None = None) -> list[str]:
    """What ``glob.glob(pattern, recursive=True)`` lists, except that ``**`` never descends into
    a directory reached through a symbolic link (as bash's globstar since 4.3).

    glob follows such links: one back up the tree (``current -> ..``) is walked again at every
    depth, until the path is too long, and two of them multiply without end, holding the run
    (and every later run of the collector) for good. Links to files, and links named by the part
    of the pattern before ``**``, are matched as glob matches them.

    glob also lists nothing, and says nothing, for a directory it may not read. Given ``errors``,
    the directory the pattern names before its first wildcard (``/var/log/epj`` of
    ``/var/log/epj/*.log``) is tried, and why it cannot be listed is appended there (not that it
    is missing: that is no file matching). Directories a wildcard reaches are skipped as glob
    skips them: ``/var/log/**/*.log`` read by a service user meets ``/var/log/private`` (0700) on
    every run, and that is no fault of the pattern.
    """
    if errors is not None:
        error = _unlistable(pattern)
        if error is not None:
            errors.append(error)
    parts = pattern.split("/")
    deep = next((i for i, part in enumerate(parts) if "**" in part), None)
    if deep is None:
        return glob.glob(pattern)
    head = "/".join(parts[:deep])
    bases = glob.glob(head) if _GLOB_CHARS.search(head) else [head]
    found: list[str] = []
    for base in bases:
        if not os.path.isdir(base or "."):
            continue
        for folder, dirs, files in os.walk(base or ".", followlinks=False):
            if not base:  # a relative pattern starting with "**": names as glob gives them
                folder = "" if folder == "." else folder.removeprefix("./")
            if folder != base and _match_parts(folder.split("/"), parts):
                found.append(folder)
            found.extend(path for path in (os.path.join(folder, name) for name in files)
                         if _match_parts(path.split("/"), parts))
            found.extend(path for path in (os.path.join(folder, name) for name in dirs)
                         if os.path.islink(path) and _match_parts(path.split("/"), parts))
    return found


def _unlistable(pattern: str) -> OSError | None:
    """Why the directory ``pattern`` names before its first wildcard cannot be listed, if it is
    there and cannot be; None if it can, or is not there (``glob_paths``)."""
    parts = pattern.split("/")
    wild = next((i for i, part in enumerate(parts) if _GLOB_CHARS.search(part)), None)
    if wild is None:
        return None
    head = "/".join(parts[:wild]) or ("/" if pattern.startswith("/") else ".")
    try:
        with os.scandir(head):
            return None
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:  # EACCES, EIO, ELOOP (a link loop), ENAMETOOLONG
        exc.filename = exc.filename or head
        return exc


def _glob_matches(path: str, pattern: str) -> bool:
    """Whether ``glob.glob(pattern, recursive=True)`` would list ``path`` if it were there.

    For files that are gone, so glob cannot be asked. Not ``fnmatch``: its ``*`` also matches
    ``/``, so ``/var/log/*.log`` would claim ``/var/log/app/x.log``, a file no configured path
    names any more, and read it again. Here ``*``, ``?`` and ``[…]`` stay within one component,
    ``**`` spans any number of them, and neither matches a hidden name (as glob does).
    """
    return _match_parts(path.split("/"), pattern.split("/"))


def _match_parts(parts: list[str], patterns: list[str]) -> bool:
    if not patterns:
        return not parts
    head, rest = patterns[0], patterns[1:]
    if head == "**":
        for n in range(len(parts) + 1):
            if _match_parts(parts[n:], rest):
                return True
            if n < len(parts) and parts[n].startswith("."):
                return False
        return False
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _match_parts(parts[1:], rest)


def _is_rotated_name(path: str, others: set[str]) -> bool:
    """Whether a glob match is a rotated sibling of another match, or compressed."""
    if os.path.splitext(path)[1] in _CODEC_BY_SUFFIX:
        return True
    folder, name = os.path.split(path)
    for other in others:
        if other != path and os.path.dirname(other) == folder:
            if _sibling_pattern(os.path.basename(other)).fullmatch(name):
                return True
    return False


# --------------------------------------------------------------------------------------------
# Checkpoint state


@dataclass(slots=True)
class _Tracked:
    """A file being read: its identity and how far it has been read. Stored as JSON."""

    dev: int
    ino: int
    fp: str
    fpn: int  # bytes the fingerprint covers
    offset: int = 0
    size: int = 0  # file size when last looked at (a rotated file that stops growing is done)
    mtime: int = 0  # st_mtime_ns when last looked at
    skip: bool = False  # the rest of an over-long line is being discarded
    path: str = ""  # where it was last found; a hint, never trusted without the identity

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "dev": self.dev,
            "ino": self.ino,
            "fp": self.fp,
            "fpn": self.fpn,
            "offset": self.offset,
            "size": self.size,
            "mtime": self.mtime,
            "skip": self.skip,
            "path": self.path,
        }

    @classmethod
    def from_json(cls, value: Any) -> _Tracked:
        return cls(
            dev=int(value["dev"]),
            ino=int(value["ino"]),
            fp=str(value["fp"]),
            fpn=int(value["fpn"]),
            offset=int(value["offset"]),
            size=int(value.get("size", 0)),
            mtime=int(value.get("mtime", 0)),
            skip=bool(value.get("skip", False)),
            path=str(value.get("path", "")),
        )


@dataclass(slots=True)
class _PathState:
    """A configured path: the file there now, the rotated files still owed lines, and ``seen``,
    the latest modification time of any of its files at the last look: a rotated file modified
    after that holds lines not read yet."""

    current: _Tracked | None = None
    rotated: list[_Tracked] = field(default_factory=list)
    seen: int | None = None

    def to_json(self) -> JSONValue:
        if self.current is None and not self.rotated and self.seen is None:
            return None
        return {
            "v": CHECKPOINT_VERSION,
            "current": None if self.current is None else self.current.to_json(),
            "rotated": [t.to_json() for t in self.rotated],
            "seen": self.seen,
        }

    @classmethod
    def from_json(cls, value: Any) -> _PathState:
        if not isinstance(value, dict) or value.get("v") != CHECKPOINT_VERSION:
            raise ValueError(f"not a version-{CHECKPOINT_VERSION} file checkpoint")
        current = value.get("current")
        seen = value.get("seen")
        return cls(
            current=None if current is None else _Tracked.from_json(current),
            rotated=[_Tracked.from_json(t) for t in value.get("rotated", [])],
            seen=None if seen is None else int(seen),
        )


# --------------------------------------------------------------------------------------------
# The tail


def path_key(path: str, plain: str, escaped: str) -> str:
    """A key for ``path`` in the ledger: ``plain + path``, or ``escaped`` + the path's bytes
    percent-encoded where it is not valid UTF-8.

    Names come from a glob or ``os.listdir`` as ``str`` with undecodable bytes as lone surrogates
    (PEP 383): a file named in Latin-1 (an SMB client's ``æøå``), or by someone who wants the
    collector blind. SQLite stores text as UTF-8 and refuses surrogates, so such a key failed
    every commit of the collector, and nothing of it was counted again. Percent-encoding the bytes
    is lossless (``%`` itself is encoded); valid paths keep the plain form, so the keys of
    existing ledgers stay valid. For plugins that keep per-file state of their own.
    """
    if path.isascii():  # the usual path: valid UTF-8, no encoded copy made to find out
        return plain + path
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return escaped + urllib.parse.quote(os.fsencode(path), safe="/")
    return plain + path


def key_path_of(key: str, plain: str, escaped: str) -> str:
    """The inverse of ``path_key``: the path as a glob or ``os.listdir`` spells it."""
    if key.startswith(escaped):
        return os.fsdecode(urllib.parse.unquote_to_bytes(key[len(escaped) :]))
    return key[len(plain) :]


def file_key(path: str) -> str:
    """The checkpoint key of a configured path or glob match: ``file:<path>``, or
    ``filex:<percent-encoded bytes>`` for a path that is not valid UTF-8 (see ``path_key``)."""
    return path_key(path, FILE_KEY, FILE_ESCAPED_KEY)


def key_path(key: str) -> str:
    """The inverse of ``file_key``: the path as a glob lists it."""
    return key_path_of(key, FILE_KEY, FILE_ESCAPED_KEY)


def _rooted(root: Path, path: str) -> str:
    return os.path.join(str(root), path.lstrip("/")) if path.startswith("/") else os.path.join(str(root), path)


def _unrooted(root: Path, real: str, absolute: bool) -> str:
    rel = os.path.relpath(real, str(root))
    return "/" + rel if absolute else rel


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _head(fd: int, n: int) -> bytes:
    return os.pread(fd, n, 0) if n > 0 else b""


class FileTail:
    """One run's reading of a ``FileSource``: scan, then ``reads()`` until done or stopped.

    ``reads()`` may be abandoned at any point (the caller stops iterating); every ``FileRead``
    already handed out carries a complete checkpoint, so committing some of them and dropping the
    rest is always consistent.

    Args:
        source: What to read.
        state: The collector's committed checkpoints.
        root: Filesystem root the configured paths live under (``/`` except in tests).
        logger: The run's logger (``ctx.log``); this module's if not given.
    """

    def __init__(
        self, source: FileSource, state: CheckpointReader, *, root: Path = Path("/"), logger: Any = None
    ) -> None:
        self.source = source
        self.root = root
        self.log = logger if logger is not None else log
        self.errors: list[OSError] = []
        self._states: dict[str, _PathState] = {}
        self._lag: dict[str, int] = {}
        self._jobs: list[tuple[str, str, str, bool, bool]] = []  # key, logical, real, pattern known, glob
        self._new_patterns: list[str] = []
        self._scan(state)

    # -----------------------------------------------------------------------------------------
    # scanning

    def _scan(self, state: CheckpointReader) -> None:
        saved: dict[str, JSONValue] = {**dict(state.scan(FILE_KEY)), **dict(state.scan(FILE_ESCAPED_KEY))}
        seen: set[str] = set()
        for pattern in self.source.paths:
            known = state.get(PATTERN_KEY + pattern) is not None
            if not known:
                self._new_patterns.append(pattern)
            absolute = pattern.startswith("/")
            rooted = _rooted(self.root, pattern)
            if _GLOB_CHARS.search(pattern):
                unlistable: list[OSError] = []
                not_regular: list[NotRegularFile] = []
                matches = set(regular_files(glob_paths(rooted, unlistable), not_regular))
                for exc in unlistable:  # reported with the files' errors once the rest is read
                    self.errors.append(exc)
                    self.log.error("log_directory_unlistable", pattern=pattern, reason=error_reason(exc), error=str(exc))
                for exc in not_regular:
                    self.errors.append(exc)
                    logical_path = _unrooted(self.root, exc.path, absolute)
                    self.log.error("log_file_unreadable", path=logical_path, reason=error_reason(exc), error=str(exc))
                matches = {m for m in matches if not _is_rotated_name(m, matches)}
                logical = {_unrooted(self.root, m, absolute): m for m in matches}
                for key in saved:  # files gone since, still owed a rotated tail
                    path = key_path(key)
                    if path not in logical and _glob_matches(path, pattern):
                        logical[path] = _rooted(self.root, path)
            else:
                logical = {pattern: rooted}
            for path, real in sorted(logical.items()):
                if path in seen or any(fnmatch.fnmatchcase(path, ex) for ex in self.source.exclude):
                    continue
                seen.add(path)
                key = file_key(path)
                self._jobs.append((key, path, real, known, path != pattern))
                value = saved.get(key)
                if value is not None:
                    try:
                        self._states[key] = _PathState.from_json(value)
                    except (ValueError, KeyError, TypeError) as exc:
                        self.log.warning("checkpoint_unusable", key=key, error=str(exc))
                self._lag[key] = self._initial_lag(key, real)

    def _initial_lag(self, key: str, real: str) -> int:
        try:
            st: os.stat_result | None = os.stat(real)
        except OSError:
            # Gone, or not to be looked at (a link loop, a name too long, a file where a directory
            # should be): only an estimate is wanted here. Reading it says what is wrong, as this
            # path's own error, and the collector's other paths are read all the same.
            st = None
        ps = self._states.get(key)
        if ps is None:
            return 0
        lag = sum(max(t.size - t.offset, 0) for t in ps.rotated)
        cur = ps.current
        if st is not None and cur is not None and st.st_ino == cur.ino:
            lag += max(st.st_size - cur.offset, 0)
        elif st is not None:
            lag += st.st_size
        return lag

    def lag(self) -> int:
        """Bytes not yet read, as of the last look at each file (file size − offset, summed)."""
        return sum(self._lag.values())

    @property
    def tracked(self) -> int:
        """How many configured paths have a file (current or rotated) being followed."""
        return len(self._states)

    @property
    def paths(self) -> list[str]:
        """The configured paths and glob matches this tail covers (logical, without the root)."""
        return [job[1] for job in self._jobs]

    # -----------------------------------------------------------------------------------------
    # reading

    def reads(self) -> Generator[FileRead, None, None]:
        """Every step of this run, in order; stop iterating at any point to stop reading."""
        for pattern in self._new_patterns:
            yield FileRead(PATTERN_KEY + pattern, {"v": CHECKPOINT_VERSION, "start_at": self.source.start_at})
        for key, path, real, known, from_glob in self._jobs:
            try:
                yield from self._follow(key, path, real, known, from_glob)
            except OSError as exc:
                # One unreadable file does not keep the others from being read; the caller
                # reports ``errors`` once the rest is done. What was handed out stays consistent.
                if exc.filename is None and not isinstance(exc, NotRegularFile):
                    exc.filename = path  # a read's error (EIO) names no file: the run's failure must say which
                self.errors.append(exc)
                self.log.error("log_file_unreadable", path=path, reason=error_reason(exc), error=str(exc))

    def _follow(self, key: str, path: str, real: str, known: bool, from_glob: bool) -> Iterator[FileRead]:
        try:
            yield from self._follow_path(key, path, real, known, from_glob)
        except _Moved as moved:
            # Files moved between listing and opening: a rotation is under way. What was handed
            # out is consistent; the next run looks again once the renames are done.
            self.log.info("log_rotation_in_progress", path=path, moved=str(moved))

    def _follow_path(self, key: str, path: str, real: str, known: bool, from_glob: bool) -> Iterator[FileRead]:
        ps = self._states.get(key)
        fd = _open_regular(real)
        try:
            if ps is None:
                if fd is None:
                    return
                ps = _PathState()
                self._states[key] = ps
                st = os.fstat(fd)
                from_end = not known and self.source.start_at == "end"
                ps.current = _new_tracked(fd, st, real, at_end=from_end)
                yield self._state(key)
                yield from self._read_current(key, ps, fd, real)
                return
            handled: set[tuple[int, int]] = set()
            last_look = ps.seen
            for t in list(ps.rotated):
                yield from self._drain(key, ps, t, real, handled)
            cur = ps.current
            if cur is not None and fd is not None and _same_file(cur, fd) and not _refilled(cur, fd):
                yield from self._read_current(key, ps, fd, real)
            elif cur is not None or ps.seen is not None:
                yield from self._catch_up(key, ps, real, handled, fd, last_look)
            elif fd is not None:  # nothing known of what was here: a new file
                ps.current = _new_tracked(fd, os.fstat(fd), real, at_end=False)
                yield self._state(key)
                yield from self._read_current(key, ps, fd, real)
            if ps.current is None and not ps.rotated and from_glob:
                # A glob match that is gone for good; a file appearing there later is new.
                self.log.info("log_file_gone", path=path)
                del self._states[key]
                self._lag[key] = 0
                yield FileRead(key, None)
        finally:
            if fd is not None:
                os.close(fd)

    def _state(self, key: str) -> FileRead:
        ps = self._states.get(key)
        self._lag[key] = _lag_of(ps)
        return FileRead(key, None if ps is None else ps.to_json())

    def _catch_up(
        self,
        key: str,
        ps: _PathState,
        real: str,
        handled: set[tuple[int, int]],
        fd: int | None,
        last_look: int | None,
    ) -> Iterator[FileRead]:
        """The file read last is not at its path any more: finish it, what was rotated after it,
        then the file there now from its start.

        Found among the siblings, its rest is read, then every sibling newer than it. Not found
        (deleted), empty at the last look (no first bytes to know it by), or no file there at the
        last look: every sibling modified since the last look holds unread lines, as it was
        written, copied or renamed after it (logrotate gives a compressed file its original's
        mtime, so older ones do not qualify).
        """
        cur = ps.current
        listed = list_siblings(real)
        if fd is not None:
            opened = os.fstat(fd)
            inode = (opened.st_dev, opened.st_ino)
            if inode in handled | {(s.st.st_dev, s.st.st_ino) for s in listed}:
                now = _stat(real)
                if now is None or (now.st_dev, now.st_ino) != inode:
                    # The file opened at the path has been rotated since: it would be read twice,
                    # as a sibling and as the new file. Once the rotation is over, all is clear.
                    raise _Moved(real)
                listed = [s for s in listed if (s.st.st_dev, s.st.st_ino) != inode]  # a hard link
        siblings = [s for s in listed if (s.st.st_dev, s.st.st_ino) not in handled]
        found = _locate(cur, siblings) if cur is not None and cur.fpn else None
        plan: list[tuple[_Tracked, _Sibling]] = []
        if cur is not None and found is not None:
            newer = siblings[: siblings.index(found)]
            plan.append((cur, found))
        else:
            since = max(last_look or 0, cur.mtime if cur is not None else 0)
            newer = [s for s in siblings if s.st.st_mtime_ns > since]
        for sibling in reversed(newer):  # oldest first
            st = sibling.st
            try:
                head = _read_head(sibling, FINGERPRINT_BYTES)
            except _Moved:
                raise  # before anything is handed out: this run leaves the path alone
            except _decompress_errors() as exc:
                self.log.warning("rotated_file_unreadable", path=self._logical(sibling.path), error=str(exc))
                continue
            plan.append((_Tracked(st.st_dev, st.st_ino, fingerprint(head), len(head), path=sibling.path), sibling))
        reading = [f"{os.path.basename(sibling.path)}@{t.offset}" for t, sibling in plan]
        if cur is not None and found is not None:
            self.log.info("log_file_rotated", path=self._logical(real), rotated_to=self._logical(found.path), reading=reading)
        else:
            unread = max(cur.size - cur.offset, 0) if cur is not None and cur.fpn else 0
            (self.log.warning if unread else self.log.info)(
                "log_file_replaced", path=self._logical(real), unread_bytes=unread, reading=reading
            )
        # The whole catch-up and the new current file go into the checkpoint before the first
        # block: a crash half-way must not forget what was not reached yet.
        ps.rotated.extend(t for t, _ in plan)
        ps.current = _new_tracked(fd, os.fstat(fd), real, at_end=False) if fd is not None else None
        yield self._state(key)
        for t, sibling in plan:
            yield from self._drain(key, ps, t, real, handled, sibling, fresh=True)
        if fd is not None:
            yield from self._read_current(key, ps, fd, real)

    def _drain(
        self,
        key: str,
        ps: _PathState,
        t: _Tracked,
        real: str,
        handled: set[tuple[int, int]],
        found: _Sibling | None = None,
        *,
        fresh: bool = False,
    ) -> Iterator[FileRead]:
        """Read the rest of a rotated file; forget it once it is complete.

        ``fresh``: it was found rotated in this run, so it has not yet been seen to stop growing.
        """
        if found is None:
            found = _locate(t, [s for s in list_siblings(real) if (s.st.st_dev, s.st.st_ino) not in handled])
        if found is None:
            unread = max(t.size - t.offset, 0)
            log = self.log.warning if unread else self.log.debug
            log("rotated_file_gone", path=self._logical(real), unread_bytes=unread)
            ps.rotated.remove(t)
            yield self._state(key)
            return
        handled.add((found.st.st_dev, found.st.st_ino))
        origin = self._logical(found.path)
        mtime = datetime.fromtimestamp(found.st.st_mtime, timezone.utc)
        if found.codec:
            yield from self._drain_compressed(key, ps, t, found, origin, mtime)
            return
        fd = _open_pinned(found)
        try:
            st = os.fstat(fd)
            if not _unchanged(t, fd, t.offset):
                raise _Moved(found.path)  # another file under the listed inode's name since
            # Not grown for a whole run: the writer has moved to the new file, so an unterminated
            # last line will never be finished and is a line of its own.
            quiet = not fresh and st.st_size == t.size
            t.dev, t.ino, t.path = st.st_dev, st.st_ino, found.path
            t.size = st.st_size
            t.mtime = st.st_mtime_ns
            _grow_fingerprint(t, fd, st.st_size)
            pos = f"{st.st_dev}:{st.st_ino}"
            yield from self._emit(key, t, _pread_reader(fd), origin, mtime, pos, complete=quiet, fd=fd)
            if quiet and t.mtime <= (ps.seen or 0):
                ps.rotated.remove(t)
                yield self._state(key)
        finally:
            os.close(fd)

    def _drain_compressed(
        self, key: str, ps: _PathState, t: _Tracked, found: _Sibling, origin: str, mtime: datetime
    ) -> Iterator[FileRead]:
        # A compressed sibling is complete: logrotate writes it whole before it removes the plain
        # file, and a half-written one is never chosen while its plain twin exists. So an
        # unterminated last line is a line, and a stream that breaks off is corrupt, not pending.
        try:
            with _opened(found) as stream:
                if t.fpn and fingerprint(stream.read(t.fpn)) != t.fp:
                    raise _Moved(found.path)  # another file under the listed name since
                t.path = found.path
                t.mtime = found.st.st_mtime_ns
                stream.seek(t.offset)
                reader = _stream_reader(read_some(stream), t.offset)
                yield from self._emit(key, t, reader, origin, mtime, t.fp[:16], complete=True)
        except _Moved:
            raise
        except _decompress_errors() as exc:
            self.log.warning("rotated_file_corrupt", path=origin, offset=t.offset, error=str(exc))
        if t.mtime <= (ps.seen or 0):
            ps.rotated.remove(t)
        yield self._state(key)

    def _read_current(self, key: str, ps: _PathState, fd: int, real: str) -> Iterator[FileRead]:
        cur = ps.current
        assert cur is not None
        st = os.fstat(fd)
        cur.path = real
        cur.size = st.st_size
        cur.mtime = st.st_mtime_ns
        # Every file of this path is accounted for now (read, or tracked in ``rotated``), so
        # anything modified later than all of them is unread.
        ps.seen = max([ps.seen or 0, cur.mtime, *(t.mtime for t in ps.rotated)])
        _grow_fingerprint(cur, fd, st.st_size)
        mtime = datetime.fromtimestamp(st.st_mtime, timezone.utc)
        position = f"{st.st_dev}:{st.st_ino}"
        reader = _pread_reader(fd)
        yield from self._emit(key, cur, reader, self._logical(real), mtime, position, complete=False, fd=fd)
        end = os.fstat(fd).st_size
        if end != cur.size:  # grown while we read
            cur.size = end
        yield self._state(key)

    def _emit(
        self,
        key: str,
        t: _Tracked,
        read_into: Callable[[int, bytearray], int],
        origin: str,
        mtime: datetime,
        position: str,
        *,
        complete: bool,
        fd: int | None = None,
    ) -> Iterator[FileRead]:
        start = t.offset
        for cut in _cut_blocks(read_into, t.offset, self.source.block_bytes, skip=t.skip, complete=complete, fd=fd):
            if fd is not None and not _unchanged(t, fd, cut.end):
                # Truncated (copytruncate) between our identity check and this read: what was
                # read may be the new content. Drop it; the next run sorts out the rotation.
                self.log.info("log_file_changed_while_read", path=origin, offset=start)
                return
            consumed = cut.end - start
            at = f"{position}@{start}"
            t.offset, t.skip = cut.end, cut.skip
            t.size = max(t.size, cut.end)
            if fd is not None:
                _grow_fingerprint(t, fd, t.size)
            start = cut.end
            if cut.truncated:
                self.log.warning("log_line_truncated", path=origin, offset=cut.end, limit_bytes=self.source.block_bytes)
            ps = self._states[key]
            self._lag[key] = _lag_of(ps)
            block = TextBlock(cut.data, origin, mtime, cut.lines) if cut.lines else None
            yield FileRead(key, ps.to_json(), block, at, consumed, ascii=cut.ascii)

    def _logical(self, real: str) -> str:
        return _unrooted(self.root, real, True) if str(self.root) != "/" else real


# --------------------------------------------------------------------------------------------
# identity


class NotRegularFile(OSError):
    """A log path names something that is not a regular file: a FIFO, a device, a socket, a directory.

    Reading one could block the run forever (a FIFO without a writer) or never end (a device).
    """

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(errno.EINVAL, f"{path} is {kind}, not a regular file; a log path must name a regular file")
        self.path = path
        self.kind = kind


def _open_file(path: str, *, follow: bool) -> int:
    """An fd on the regular file at ``path``, opened without ever blocking.

    ``O_NONBLOCK`` makes opening a FIFO return at once instead of waiting for a writer (it would
    wait forever, and the run with it); the type is then checked on the open file (``fstat``), not
    on the path, so nothing can be swapped in between. A regular file ignores ``O_NONBLOCK``, but it
    is cleared all the same. ``follow=False`` refuses a symbolic link (``O_NOFOLLOW``).

    Raises:
        FileNotFoundError: nothing at ``path``.
        NotRegularFile: something other than a regular file.
        OSError: it cannot be opened (permission …).
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket, or a device without its driver
            raise NotRegularFile(path, kind_of(os.lstat(path).st_mode)) from None
        if exc.errno == errno.ELOOP and not follow:
            raise NotRegularFile(path, "a symbolic link") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(path, kind_of(mode))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


FILE_ERROR_REASONS = ("not_a_regular_file", "permission_denied", "unreadable")


def error_reason(exc: OSError) -> str:
    """Why a log path could not be read, as one of ``FILE_ERROR_REASONS`` (a metric label)."""
    if isinstance(exc, NotRegularFile):
        return "not_a_regular_file"
    if isinstance(exc, PermissionError):
        return "permission_denied"
    return "unreadable"


def _open_regular(path: str) -> int | None:
    """An fd on the regular file at a configured path (links followed: the path is the admin's
    choice), or None if nothing is there. Other problems raise (``NotRegularFile``, ``OSError``)."""
    try:
        return _open_file(path, follow=True)
    except FileNotFoundError:
        return None


def _new_tracked(fd: int, st: os.stat_result, real: str, *, at_end: bool) -> _Tracked:
    head = _head(fd, min(st.st_size, FINGERPRINT_BYTES))
    t = _Tracked(st.st_dev, st.st_ino, fingerprint(head), len(head), size=st.st_size, mtime=st.st_mtime_ns, path=real)
    if at_end and st.st_size:
        # Start after the last complete line; a line still being written is not ours to count.
        window = min(st.st_size, _END_SCAN)
        tail = os.pread(fd, window, st.st_size - window)
        nl = tail.rfind(b"\n")
        if nl >= 0:
            t.offset = st.st_size - window + nl + 1
        elif window == st.st_size:
            t.offset = 0  # one unfinished line, whose start is known: counted once complete
        else:
            t.offset, t.skip = st.st_size, True  # a line longer than the window: its start is unknown
    return t


def _refilled(t: _Tracked, fd: int) -> bool:
    """An empty file written to since the last look: its lines may also be in a copy by now."""
    return t.fpn == 0 and os.fstat(fd).st_mtime_ns != t.mtime


def _grow_fingerprint(t: _Tracked, fd: int, size: int) -> None:
    # The first bytes of an append-only file do not change, so a longer prefix is the same file,
    # as long as the one read (a single page) still starts with the bytes the fingerprint covers.
    if t.fpn < FINGERPRINT_BYTES and size > t.fpn:
        head = _head(fd, FINGERPRINT_BYTES)
        if fingerprint(head[: t.fpn]) == t.fp:
            t.fp, t.fpn = fingerprint(head), len(head)


def _unchanged(t: _Tracked, fd: int, end: int) -> bool:
    """Whether an open file still is ``t`` up to ``end``, checked *after* reading up to there.

    A truncated file never gets its old first bytes back, so if they are still there now, every
    byte read before now was the old content.
    """
    if os.fstat(fd).st_size < end:
        return False
    return t.fpn == 0 or fingerprint(_head(fd, t.fpn)) == t.fp


def _same_file(t: _Tracked, fd: int) -> bool:
    """Whether an open file is ``t``: same inode, not shorter than what was read, same first bytes.

    The device is not compared: it can change across a reboot (btrfs, NFS) for the same file.
    """
    st = os.fstat(fd)
    if st.st_ino != t.ino or st.st_size < t.offset or st.st_size < t.fpn:
        return False
    return fingerprint(_head(fd, t.fpn)) == t.fp


class _Moved(Exception):
    """A file is not where the directory listing put it: a rotation is renaming files right now."""


def _open_pinned(sibling: _Sibling) -> int:
    """An fd on the very file the listing saw (same inode), or ``_Moved``.

    Never blocks and never follows a link: a rotated file is a regular file logrotate renamed, so
    anything else under its name (a FIFO, a link to a file elsewhere) was swapped in since.
    """
    try:
        fd = _open_file(sibling.path, follow=False)
    except (FileNotFoundError, NotRegularFile):
        raise _Moved(sibling.path) from None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (sibling.st.st_dev, sibling.st.st_ino):
        os.close(fd)
        raise _Moved(sibling.path)
    return fd


@contextlib.contextmanager
def _opened(sibling: _Sibling) -> Iterator[IO[bytes]]:
    """The (decompressed) content of the very file the listing saw, or ``_Moved``."""
    raw = os.fdopen(_open_pinned(sibling), "rb")
    stream: IO[bytes]
    try:
        stream = open_codec_stream(raw, sibling.codec) if sibling.codec else raw
        try:
            yield stream
        finally:
            stream.close()
    finally:
        raw.close()  # the decompressors leave a file object they were given open


def _read_head(sibling: _Sibling, n: int) -> bytes:
    with _opened(sibling) as stream:
        return stream.read(n)


def _locate(t: _Tracked, siblings: list[_Sibling]) -> _Sibling | None:
    """Find a tracked file among rotated siblings.

    Best: same inode and same first bytes (renamed). Else the same first bytes in a file of
    another inode (a copytruncate copy, or compressed): a full fingerprint before a short one,
    plain before compressed (a compressed twin may still be being written).
    """
    best: tuple[int, int] | None = None
    choice: _Sibling | None = None
    for sibling in siblings:
        st = sibling.st
        same_inode = not sibling.codec and st.st_ino == t.ino and st.st_dev == t.dev
        if not sibling.codec and (st.st_size < t.offset or st.st_size < t.fpn):
            continue
        if t.fpn == 0 and not same_inode:
            continue  # an empty fingerprint matches anything
        try:
            head = _read_head(sibling, t.fpn)
        except _Moved:
            raise
        except _decompress_errors():
            continue  # unreadable: it cannot be told to be this file
        if len(head) < t.fpn or fingerprint(head) != t.fp:
            continue
        score = (3 if same_inode else 2 if t.fpn >= FINGERPRINT_BYTES else 1, 0 if sibling.codec else 1)
        if best is None or score > best:
            best, choice = score, sibling
    return choice


def _lag_of(ps: _PathState | None) -> int:
    if ps is None:
        return 0
    files = ([ps.current] if ps.current else []) + ps.rotated
    return sum(max(t.size - t.offset, 0) for t in files)


# --------------------------------------------------------------------------------------------
# Convenience


def tail_files(
    source: FileSource, state: CheckpointReader, *, root: Path = Path("/"), logger: Any = None
) -> Iterator[FileRead]:
    """Read what is new in ``source`` since ``state``: ``FileTail(...).reads()``."""
    return FileTail(source, state, root=root, logger=logger).reads()


def lag_bytes(source: FileSource, state: CheckpointReader, *, root: Path = Path("/")) -> int:
    """Bytes written to ``source``'s files and not yet read, from one ``stat`` per file."""
    return FileTail(source, state, root=root).lag()


__all__ = [
    "BLOCK_BYTES",
    "FINGERPRINT_BYTES",
    "FileRead",
    "FileSource",
    "FileTail",
    "FILE_ERROR_REASONS",
    "FILE_ESCAPED_KEY",
    "FILE_KEY",
    "NotRegularFile",
    "codec_from_magic",
    "codec_errors",
    "codec_of",
    "error_reason",
    "file_key",
    "fingerprint",
    "glob_paths",
    "invalid_utf8_lines",
    "key_path",
    "key_path_of",
    "lag_bytes",
    "list_siblings",
    "open_codec_stream",
    "path_key",
    "open_decompressed",
    "read_fd",
    "read_some",
    "read_stream",
    "read_whole",
    "regular_files",
    "tail_files",
]
