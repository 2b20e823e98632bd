"""Builtin forwarder ``file``: each candidate change as one JSON line, appended and fsynced.

For a local deviation system that picks files up (and for air-gapped sites). Each line is the
change document (the webhook's body) with its ``idempotency_key``; a reader that keeps the keys
it has seen gets each change once. The file is opened with ``O_APPEND`` for every delivery, so a
reader may rotate it away (rename) at any time, and each line is fsynced before the delivery
counts. Only a regular file is written: a FIFO, a device (``/dev/null``) or a directory at the
path fails the delivery, which stays in the outbox. A line the filesystem took only part of
(full) is cut off again, and a line begins on a new one where the file's last was cut short (a
crash, a power cut), so no change is glued to a torn line and lost to the reader.

A crash between writing a line and the ledger's note of it would write the line again after the
restart; to avoid that, the sender reads the keys in the file's last 256 KiB when it opens, and
skips a change whose key it finds there.

A builtin plugin (``register_forwarders``); imports only model.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from normagent.hookspecs import hookimpl
from normagent.model import Delivery, DeliveryFailed, ForwarderSpec
from normagent.records import dataclass

TAIL_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class FileSettings:
    """``[forwarders.<name>]`` with ``kind = "file"``.

    Attributes:
        path: The JSON-lines file to append to (its directory must exist).
        fsync: fsync after each line (keep it on: a change counts as delivered only once it is on disk).
    """

    path: Path | None = None
    fsync: bool = True


class FileSender:
    def __init__(self, settings: FileSettings) -> None:
        assert settings.path is not None
        self._path = settings.path
        self._fsync = settings.fsync
        self._recent = _keys_in_tail(self._path)

    def send(self, delivery: Delivery) -> None:
        if delivery.key in self._recent:
            self._recent.discard(delivery.key)
            return  # written before a crash; the ledger did not note it
        line = (delivery.text or json.dumps(delivery.document, ensure_ascii=False, separators=(",", ":"))) + "\n"
        data = line.encode("utf-8")
        try:
            fd, readable = _open_regular(self._path)
            try:
                size = os.fstat(fd).st_size
                if readable and size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # the last line was cut short (a crash, a power cut): ours starts a line of its own
                written = os.write(fd, data)  # all of it, or a part on a full filesystem (an error: nothing)
                if written != len(data):
                    _cut(fd, size, written)  # no torn line left for the next attempt's line to be glued to
                    raise OSError(f"short write ({written} of {len(data)} bytes)")
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise DeliveryFailed("error", f"cannot append to {self._path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        pass


class _NotRegular(OSError):
    """The path names something that is not a regular file (a FIFO, a device, a directory)."""


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFDIR: "a directory", stat.S_IFSOCK: "a socket"}


def _open_regular(path: Path) -> tuple[int, bool]:
    """``path`` opened to append (created if missing), and whether it could be opened for reading too.

    Opened without blocking, and refused unless it is a regular file: a FIFO without a reader
    would hold the forwarder for ever in ``open``, one with a reader, ``/dev/null`` or
    ``/dev/full`` would take lines no deviation system ever sees.

    Raises:
        OSError: It cannot be opened, or is no regular file (``_NotRegular``).
    """
    flags = os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
    try:
        fd, readable = os.open(path, os.O_RDWR | flags, 0o640), True
    except PermissionError:
        fd, readable = os.open(path, os.O_WRONLY | flags, 0o640), False  # written for, not readable by, this user
    try:
        _regular(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd, readable


def _regular(fd: int, path: Path) -> None:
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        raise _NotRegular(f"{path} is {_KINDS.get(stat.S_IFMT(mode), 'no regular file')}, not a regular file")


def _cut(fd: int, size: int, written: int) -> None:
    """Take the ``written`` bytes of a line cut short off again, if nothing was appended after them
    (a second sender, another agent); best effort: the next line starts on a new one anyway."""
    try:
        if os.fstat(fd).st_size == size + written:
            os.ftruncate(fd, size)
    except OSError:
        pass


def _keys_in_tail(path: Path) -> set[str]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return set()
    try:
        _regular(fd, path)
        size = os.fstat(fd).st_size
        start = max(0, size - TAIL_BYTES)
        tail = os.pread(fd, size - start, start)
    except OSError:
        return set()  # no regular file (the delivery will say so), or unreadable
    finally:
        os.close(fd)
    keys = set()
    for raw in tail.split(b"\n"):
        try:
            doc = json.loads(raw)
        except ValueError:
            continue  # the first, cut line, or a torn last one
        if isinstance(doc, dict) and isinstance(doc.get("idempotency_key"), str):
            keys.add(doc["idempotency_key"])
    return keys


def check(settings: FileSettings) -> list[tuple[str, str]]:
    if settings.path is None:
        return [("path", "is required")]
    folder = settings.path.parent
    if not folder.is_dir():
        return [("path", f"directory {folder} does not exist")]
    if settings.path.exists() and not settings.path.is_file():
        return [("path", f"{settings.path} is not a regular file")]
    if not os.access(folder if not settings.path.exists() else settings.path, os.W_OK):
        return [("path", f"{settings.path} cannot be written by this user")]
    return []


def _send(delivery: Delivery, settings: Any) -> None:
    FileSender(settings).send(delivery)


FILE = ForwarderSpec(
    kind="file",
    help="Appends each candidate change as a JSON line to a file (fsynced), for a local deviation system.",
    send=_send,
    settings=FileSettings,
    open=FileSender,
    check=check,
)


@hookimpl
def register_forwarders() -> list[ForwarderSpec]:
    return [FILE]
