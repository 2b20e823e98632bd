"""Watched configuration files: what a file's stat and keyed digest say changed since the baseline.

The baseline of a file is one small JSON list, kept in the ledger as a checkpoint
(``f:<path>``): ``[dev, ino, size, mtime_ns, ctime_ns, mode, uid, gid, digest]``. ``digest`` is
a keyed HMAC (the host's pseudonym key) of the SHA-256 of the content — ``c:<16 hex>`` — or of a
symbolic link's target — ``l:<16 hex>`` — or ``None`` when the agent may not read the file (or
it is larger than ``MAX_DIGEST_BYTES``, 64 MiB).
Content itself is never stored, shown or logged; without the key (which never leaves the host)
the digest cannot even be checked against a guessed content.

What counts (``changes``):

- ``mode`` — the permission bits or the file type changed;
- ``owner`` — the owning user or group changed;
- ``content`` — the digest changed (a file the agent may not read, or over 64 MiB: its size or
  modification time changed; ``touch`` alone is then taken for a change);
- ``created`` — a file appeared where a configured pattern already matched before;
- ``deleted`` — a file of the baseline is gone.

Steady cycles are cheap: only ``lstat`` runs for each file; a file is read (hashed) only when
its ctime, mtime, size, inode or device moved. ctime moves with every change of content, mode
or owner, and no program can set it back.

Imports only the standard library (with normagent's ``dataclass`` and ``digests``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from typing import Any

from normagent import dataclass, digests

MAX_DIGEST_BYTES = 64 * 2**20  # far above any configuration file; a larger one is compared by size and mtime
_DIGEST_CHUNK = 2**20

# Positions in a baseline entry.
DEV, INO, SIZE, MTIME, CTIME, MODE, UID, GID, DIGEST = range(9)
STAT_FIELDS = 8


@dataclass(frozen=True, slots=True)
class Seen:
    """A file as a run finds it: its stat key and (if it was read) its digest."""

    key: tuple[int, ...]  # dev, ino, size, mtime_ns, ctime_ns, mode, uid, gid
    digest: str | None  # None: not readable by the agent
    read: bool = True  # False: the digest was not computed (unchanged stat)

    def entry(self) -> list[Any]:
        return [*self.key, self.digest]


def stat_key(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid, st.st_gid)


def valid_entry(value: Any) -> bool:
    """A baseline entry as this module writes it (a checkpoint may be damaged or older)."""
    return (
        isinstance(value, list)
        and len(value) == STAT_FIELDS + 1
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value[:STAT_FIELDS])
        and (value[DIGEST] is None or isinstance(value[DIGEST], str))
    )


def needs_reading(old: Sequence[Any], key: tuple[int, ...]) -> bool:
    """Whether the content may have changed: anything but mode and owner moved."""
    return tuple(old[:STAT_FIELDS]) != key and (
        old[DEV] != key[DEV] or old[INO] != key[INO] or old[SIZE] != key[SIZE] or old[MTIME] != key[MTIME] or old[CTIME] != key[CTIME]
    )


def changes(old: Sequence[Any], new: Seen) -> list[str]:
    """The kinds of change from baseline entry ``old`` to ``new`` (empty: none that counts)."""
    kinds: list[str] = []
    if old[MODE] != new.key[MODE]:
        kinds.append("mode")
    if old[UID] != new.key[UID] or old[GID] != new.key[GID]:
        kinds.append("owner")
    if new.read:
        if new.digest is not None and old[DIGEST] is not None:
            if new.digest != old[DIGEST]:
                kinds.append("content")
        elif old[SIZE] != new.key[SIZE] or old[MTIME] != new.key[MTIME]:
            # Not readable now or then: size and modification time are all there is to go by.
            kinds.append("content")
    return kinds


def digest_file(path: str, keyed: Callable[[str], str]) -> tuple[tuple[int, ...], str | None] | None:
    """(stat key, digest) of the file at ``path``, taken from one open file so both describe the
    same inode; ``None`` when it is gone or is no regular file or link any more.

    A symbolic link is not followed: its target is what is digested. A file the agent may not
    read gets its stat and no digest.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            return stat_key(st), None
        return stat_key(st), "l:" + keyed("link:" + target)
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        # O_NONBLOCK: a FIFO swapped in after lstat must not hang the run; O_NOFOLLOW: nor a link.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError:
        return stat_key(st), None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        content = _digest_up_to(f, MAX_DIGEST_BYTES)
    if content is None:
        # Larger than any configuration file: hashed whole (a sparse file of a terabyte, a log
        # a "**" pattern matched), it held every run past its timeout, and from then on no
        # change of any watched file was seen. Size and modification time tell a change.
        return stat_key(st), None
    return stat_key(st), "c:" + keyed("content:" + content)


def _digest_up_to(f: Any, limit: int) -> str | None:
    """The SHA-256 of an open file's content, or None when it holds more than ``limit`` bytes
    (told by its size before reading, and again while reading, for a file that grows)."""
    if os.fstat(f.fileno()).st_size > limit:
        return None
    digest = digests.sha256()
    read = 0
    while chunk := f.read(_DIGEST_CHUNK):
        read += len(chunk)
        if read > limit:
            return None
        digest.update(chunk)
    return digest.hexdigest()


def tree_digest(stats: dict[str, int]) -> str:
    """One digest of every watched path and its stat summary: equal to the last run's, nothing moved."""
    text = "\n".join(f"{path}\0{stats[path]}" for path in sorted(stats))
    return digests.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def mode_text(mode: int) -> str:
    return f"{stat.S_IMODE(mode):04o}"
