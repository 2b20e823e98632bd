"""Reading the syslog receiver's spool: every spooled message counted once, and what is read removed.

The receiver (``normagent.sources.syslog``) appends whole lines to ``<spool>/syslog.log``, renames
it to ``syslog.log-YYYYmmdd-HHMMSS-ffffff`` when it is full and starts a new one; it never
rewrites, copies or truncates a file. So the spool is a queue of files, oldest rotated first, the
current file last, and one position says how far a reader has got in it: the file it is reading
(device, inode, and the sha1 of its first bytes, so a reused inode is never taken for it) and the
offset after the last whole line read. ``SpoolReader`` hands out blocks of whole lines, each with
the position it leads to; a collector commits a block's counts and its position in one ledger
transaction (``normagent.logs.syslog_log_collector``), so a crash at any moment neither loses nor
doubles a message.

Consumed files are removed. A rotated file read to its end is deleted once the position past it
is committed (``SpoolShare.release``); a crash in between leaves it behind, and the next run
recognises it as older than the committed position and deletes it then. With several readers a
file goes only when every one of them is past it.

The receiver asks ``SpoolShare.read_offset(path)`` how far the readers have committed in a rotated
file before it discards it to keep ``spool_max_files`` (a reader that fell far behind): the rest is
counted there as discarded. Answer and deletion are not atomic with a reader's reading, so the
answer marks the file *taken*, under a lock a reader holds from the moment it checks its batch's
files until the batch is committed; a reader whose batch holds lines of a taken file drops that
batch and ends its run, and the next run resumes from the committed position, past the file that
is gone. Nothing is counted both as read and as discarded.

Imports only the standard library (with normagent's ``dataclass``), normagent.model,
normagent.digests and normagent.sources.syslog (structlog for the log).
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Sequence
from dataclasses import field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

from normagent import digests
from normagent.records import dataclass
from normagent.sources.lines import BlockCopies, count_lines_ascii
from normagent.model import JSONValue, TextBlock
from normagent.sources.syslog import _ROTATED, SPOOL_NAME

log = structlog.get_logger(__name__)

SPOOL_KEY = "spool"  # the reader's checkpoint key
FINGERPRINT_BYTES = 1024
BLOCK_BYTES = 2**20
_LIST_TRIES = 5  # listings until the opened files are those the directory shows (a rotation may be renaming)

Identity = tuple[int, int, str]  # device, inode, fingerprint of the first FINGERPRINT_BYTES


def _fingerprint(data: bytes) -> str:
    return digests.sha1(data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class SpoolPosition:
    """Where a reader is: a file (device, inode, sha1 of its first ``fpn`` bytes) and an offset."""

    dev: int
    ino: int
    fp: str
    fpn: int
    offset: int

    def to_json(self) -> dict[str, JSONValue]:
        return {"dev": self.dev, "ino": self.ino, "fp": self.fp, "fpn": self.fpn, "offset": self.offset}

    @classmethod
    def from_json(cls, value: Any) -> SpoolPosition | None:
        """The position, or None for no position or one that is not a spool position."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(int(value["dev"]), int(value["ino"]), str(value["fp"]), int(value["fpn"]), int(value["offset"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(slots=True)
class _File:
    path: Path
    fd: int
    st: os.stat_result
    head: bytes  # the first FINGERPRINT_BYTES (fewer while the file is shorter)

    def matches(self, pos: SpoolPosition) -> bool:
        return (
            self.st.st_ino == pos.ino
            and self.st.st_dev == pos.dev
            and len(self.head) >= pos.fpn
            and _fingerprint(self.head[: pos.fpn]) == pos.fp
        )

    def position(self, offset: int) -> SpoolPosition:
        return SpoolPosition(self.st.st_dev, self.st.st_ino, _fingerprint(self.head), len(self.head), offset)

    @property
    def identity(self) -> Identity:
        return (self.st.st_dev, self.st.st_ino, _fingerprint(self.head))

    @property
    def rotated(self) -> bool:
        return self.path.name != SPOOL_NAME


def _rotated_names(directory: Path) -> list[str]:
    try:
        return sorted(name for name in os.listdir(directory) if _ROTATED.fullmatch(name))
    except FileNotFoundError:
        return []


class SpoolBusy(Exception):
    """The spool's files kept moving while they were listed (a rotation under way): try next run."""


@contextlib.contextmanager
def open_spool(directory: Path) -> Iterator[list[_File]]:
    """The spool's files, open, oldest first (rotated by name, then the current file).

    Listed, opened, and listed again until the two listings agree, so that a rotation between
    listing and opening cannot hide a file (the renamed current one) from the reader.

    Something other than a regular file under a spool name (a FIFO, a directory) is left out and
    logged: opening a FIFO to read would wait for a writer for ever, here and in the receiver,
    which asks ``read_offset`` before it deletes a rotated file.
    """
    for _ in range(_LIST_TRIES):
        names = _rotated_names(directory)
        files: list[_File] = []
        complete = True
        for name in [*names, SPOOL_NAME]:
            try:
                fd = os.open(directory / name, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            except FileNotFoundError:
                if name != SPOOL_NAME:
                    complete = False
                continue
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                log.warning("syslog_spool_not_a_file", file=str(directory / name), effect="left out: nothing is read from it")
                continue
            files.append(_File(directory / name, fd, st, os.pread(fd, FINGERPRINT_BYTES, 0)))
        if complete and _rotated_names(directory) == names:
            try:
                yield files
            finally:
                for f in files:
                    os.close(f.fd)
            return
        for f in files:
            os.close(f.fd)
    raise SpoolBusy(f"{directory}: the spool files kept changing while they were listed")


def _index(files: Sequence[_File], pos: SpoolPosition | None) -> int | None:
    if pos is None:
        return None
    return next((i for i, f in enumerate(files) if f.matches(pos)), None)


@dataclass(frozen=True, slots=True)
class SpoolRead:
    """One step of reading the spool.

    Attributes:
        checkpoint: The reader's position once this step is committed.
        block: Whole lines, or None for a step that only moves the position (to the next file).
        position: Where the block starts, stable across retries (``"dev:ino@offset"``).
        bytes_read: Bytes this step consumed.
        identity: The file the block came from (to check it was not taken meanwhile).
        finished: Rotated files this position has moved past: removable once it is committed.
        ascii: Every byte of the block is ASCII (valid UTF-8: the driver's check can skip it).
    """

    checkpoint: JSONValue
    block: TextBlock | None = None
    position: str = ""
    bytes_read: int = 0
    identity: Identity | None = None
    finished: tuple[Path, ...] = ()
    ascii: bool = False


class SpoolReader:
    """One run's reading of the spool from a saved position (``None``: from the very start).

    ``stale`` lists rotated files that lie before the saved position (consumed; their deletion was
    interrupted). ``reads()`` yields steps until everything spooled so far is read.
    """

    def __init__(self, directory: Path, saved: JSONValue, *, block_bytes: int = BLOCK_BYTES) -> None:
        self.directory = Path(directory)
        self.position = SpoolPosition.from_json(saved)
        self.block_bytes = block_bytes
        self.stale: list[Path] = []
        self._lag = 0

    def lag(self) -> int:
        """Bytes spooled and not yet read, as of the last look."""
        return self._lag

    def reads(self) -> Generator[SpoolRead, None, None]:
        with open_spool(self.directory) as files:
            at = _index(files, self.position)
            if at is None:
                start, offset = 0, 0
                if self.position is not None:
                    # The file read last is gone, deleted whole: removed once read, or discarded by
                    # the receiver (which counted its unread rest). Every file left is newer.
                    log.info("syslog_spool_position_gone", files=len(files))
            else:
                start, offset = at, self.position.offset if self.position else 0
                self.stale = [f.path for f in files[:at] if f.rotated]
            self._lag = sum(f.st.st_size for f in files[start:]) - offset
            for i in range(start, len(files)):
                f = files[i]
                yield from self._read(f, offset if i == start else 0)
                if f.rotated and i + 1 < len(files):
                    nxt = files[i + 1]
                    yield SpoolRead(nxt.position(0).to_json(), finished=(f.path,))

    def _read(self, f: _File, offset: int) -> Iterator[SpoolRead]:
        size = os.fstat(f.fd).st_size if not f.rotated else f.st.st_size
        mtime = datetime.fromtimestamp(f.st.st_mtime, timezone.utc)
        where = f"{f.st.st_dev}:{f.st.st_ino}"
        want = self.block_bytes
        # A block is read straight into an object kept while the file is read that nobody else
        # holds any more (``BlockCopies.pread``): a fresh ``bytes`` per block was faulted in page
        # by page each time. A read that holds no newline (a line longer than a block, or one
        # still being written) is read again into a buffer that grows. Dropped with the
        # generator: idle keeps none.
        buffer: bytearray | None = None
        copies = BlockCopies(max(want, 2))
        while offset < size:
            block: bytes | None = None
            if want == self.block_bytes:
                block, n = copies.pread(f.fd, offset, min(want, size - offset))
                if not n:
                    return
            if block is None:
                if buffer is None or len(buffer) < want:
                    buffer = bytearray(want)
                with memoryview(buffer) as view:
                    n = os.preadv(f.fd, (view[: min(want, size - offset)],), offset)
                if not n:
                    return
                cut = buffer.rfind(b"\n", 0, n) + 1
                if cut == 0:
                    if offset + n >= size:
                        return  # a line still being written: it waits for its end
                    want *= 2  # a line longer than a block (the receiver caps one at about 1 MiB)
                    continue
                block = copies.copy(buffer, cut)
            want = self.block_bytes
            cut = len(block)
            if len(f.head) < FINGERPRINT_BYTES:  # a young file: its fingerprint grows with it
                f.head = os.pread(f.fd, FINGERPRINT_BYTES, 0)
            start, offset = offset, offset + cut
            self._lag = max(0, self._lag - cut)
            lines, ascii = count_lines_ascii(block)
            yield SpoolRead(
                f.position(offset).to_json(),
                TextBlock(block, str(f.path), mtime, lines),
                f"{where}@{start}",
                cut,
                f.identity,
                ascii=ascii,
            )


def committed_offset(files: Sequence[_File], target: _File, saved: JSONValue) -> int:
    """How many bytes of ``target`` a reader whose committed position is ``saved`` has read."""
    at = _index(files, SpoolPosition.from_json(saved))
    mine = next((i for i, f in enumerate(files) if f is target), None)
    if at is None or mine is None:
        return 0  # never read, or its file is gone: it reads every file left from the start
    if at > mine:
        return target.st.st_size
    if at == mine:
        pos = SpoolPosition.from_json(saved)
        return pos.offset if pos is not None else 0
    return 0


@dataclass
class SpoolShare:
    """What the spool's readers and the receiver share: the directory, the committed positions of
    every reader, and the lock that keeps a discard from crossing a reader's commit.

    Args:
        directory: The spool directory (``<state_dir>/syslog``).
        positions: Returns the committed position (checkpoint ``SPOOL_KEY``) of each reader; the
            agent reads them from the ledger. No reader: nothing counts as read.
    """

    directory: Path
    positions: Callable[[], Sequence[JSONValue]] = lambda: ()
    lock: threading.Lock = field(default_factory=threading.Lock)
    _taken: OrderedDict[Identity, None] = field(default_factory=OrderedDict)

    def read_offset(self, path: Path) -> int:
        """For the receiver: bytes of the rotated file ``path`` every reader has committed.

        The file is then taken: a reader holding uncommitted lines of it drops them.
        """
        with self.lock:
            offset = 0
            try:
                with open_spool(self.directory) as files:
                    target = next((f for f in files if f.path == Path(path)), None)
                    if target is None:
                        return 0
                    self._taken[target.identity] = None
                    while len(self._taken) > 64:
                        self._taken.popitem(last=False)
                    offset = self._min_offset(files, target)
            except SpoolBusy:
                return 0
            return offset

    def _min_offset(self, files: Sequence[_File], target: _File) -> int:
        saved = list(self.positions())
        if not saved:
            return 0
        return min(committed_offset(files, target, value) for value in saved)

    @contextlib.contextmanager
    def holding(self, identities: Collection[Identity]) -> Iterator[bool]:
        """Hold the lock while a batch is committed; yields False if one of its files was taken."""
        with self.lock:
            yield not any(identity in self._taken for identity in identities)

    def release(self, paths: Iterable[Path]) -> list[Path]:
        """Delete the rotated files every reader has read to their end; returns those deleted."""
        wanted = {Path(p) for p in paths}
        if not wanted:
            return []
        removed: list[Path] = []
        with self.lock:
            try:
                with open_spool(self.directory) as files:
                    for f in files:
                        if f.path in wanted and f.rotated and self._min_offset(files, f) >= f.st.st_size:
                            try:
                                os.unlink(f.path)
                            except FileNotFoundError:
                                continue
                            removed.append(f.path)
            except SpoolBusy:
                return removed
        for path in removed:
            log.info("syslog_spool_consumed", file=path.name)
        return removed


__all__ = ["SPOOL_KEY", "SpoolBusy", "SpoolPosition", "SpoolRead", "SpoolReader", "SpoolShare", "open_spool"]
