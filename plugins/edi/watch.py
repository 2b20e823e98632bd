"""Change notification for the EDI folders: inotify(7) through ctypes on libc, where it can be trusted.

Why: listing a folder of 100,000 messages costs tens of milliseconds, and the listing grows with
the folder; with inotify the kernel names the files that changed, and a cycle costs what changed.
ctypes on libc's ``inotify_init1``/``inotify_add_watch``/``inotify_rm_watch`` (glibc and musl
both have them) needs no dependency; the events are read with ``os.read`` from a non-blocking
descriptor, so nothing waits.

Where it is not used, the directory listing (as before) is the only way:

- not Linux, or a libc without inotify, or the per-user instance limit is reached (``EMFILE``,
  ``fs.inotify.max_user_instances``): ``Inotify.open`` returns None;
- a directory on a network, cluster or FUSE filesystem (NFS, SMB/CIFS, CephFS, sshfs …): the kernel
  only sees changes made through this host, never those of the file server's other clients
  (``remote_filesystem``, from ``/proc/self/mountinfo``);
- a watch the kernel refuses (``ENOSPC``: ``fs.inotify.max_user_watches``).

Events are not trusted blindly (see ``scan.py``): a queue that overflowed (``IN_Q_OVERFLOW``)
makes every watched directory be listed again, a directory whose watch ended (deleted, moved,
unmounted: ``IN_IGNORED``) is listed when it is back, and every directory is listed in full at
least every ``listing_interval``.

Imports only the standard library (ctypes only when ``Inotify.open`` is called) and normagent's
``dataclass``.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator
from typing import Any

from normagent import dataclass

# <sys/inotify.h>
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# What makes a name worth a look: it appeared (created, moved in), went (deleted, moved out), was
# closed after writing, or had its size or time set (IN_ATTRIB: utime, truncate by some writers).
# Not IN_MODIFY: a file being written would flood the queue; it is looked at when closed, and a
# writer that never closes is found by the watched files' stat (index.WATCHED).
NAME_EVENTS = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CLOSE_WRITE | IN_ATTRIB
# The watch itself ended or cannot be trusted: the directory is listed again.
SELF_EVENTS = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED
MASK = NAME_EVENTS | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR

_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len


@dataclass(frozen=True, slots=True)
class Event:
    wd: int  # -1 for IN_Q_OVERFLOW
    mask: int
    name: str  # as os.listdir spells it (undecodable bytes as surrogates); "" for the directory itself


class Inotify:
    """One inotify instance: watches by directory, events read without blocking."""

    def __init__(self, fd: int, add: Any, rm: Any) -> None:
        self.fd = fd
        self._add = add
        self._rm = rm

    @classmethod
    def open(cls) -> tuple[Inotify | None, str]:
        """An instance, or None and why not (no inotify here, or the instance limit reached)."""
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            init1, add, rm = libc.inotify_init1, libc.inotify_add_watch, libc.inotify_rm_watch
        except (OSError, AttributeError, ImportError) as exc:
            return None, f"no inotify in this C library ({exc})"
        init1.argtypes, init1.restype = [ctypes.c_int], ctypes.c_int
        add.argtypes, add.restype = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32], ctypes.c_int
        rm.argtypes, rm.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        fd = init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            return None, f"inotify_init1: {os.strerror(code)}" + (
                " (fs.inotify.max_user_instances reached)" if code == errno.EMFILE else "")
        return cls(fd, add, rm), ""

    def watch(self, path: bytes, *, follow: bool = True) -> int:
        """Watch a directory; returns the watch descriptor (the same one for a directory already watched).

        Raises:
            OSError: as inotify_add_watch(2) fails (ENOSPC: the watch limit; ENOTDIR; ENOENT …).
        """
        import ctypes

        wd = self._add(self.fd, path, MASK | (0 if follow else IN_DONT_FOLLOW))
        if wd < 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))
        return int(wd)

    def unwatch(self, wd: int) -> None:
        self._rm(self.fd, wd)  # fails harmlessly for a watch the kernel already dropped

    def read(self) -> Iterator[Event]:
        """Every event queued so far (none: returns at once)."""
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            if not data:
                return
            offset = 0
            while offset + _HEADER.size <= len(data):
                wd, mask, _, size = _HEADER.unpack_from(data, offset)
                offset += _HEADER.size
                raw = data[offset : offset + size].split(b"\0", 1)[0]
                offset += size
                yield Event(wd, mask, os.fsdecode(raw))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# --------------------------------------------------------------------------------------------
# where inotify sees every change


# Filesystems whose files other hosts change (network, cluster, FUSE, hypervisor shares): an
# inotify watch there sees only what this host did.
REMOTE_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "ncp", "9p", "afs", "coda", "ceph", "glusterfs", "lustre",
    "gpfs", "ocfs2", "gfs2", "beegfs", "orangefs", "pvfs2", "davfs", "fuse", "fuseblk", "virtiofs", "vboxsf",
    "vmhgfs", "prl_fs", "afpfs", "sshfs", "panfs", "cvfs", "dfs",
})


@dataclass(frozen=True, slots=True)
class Mount:
    point: str
    fstype: str


def mounts(text: str) -> list[Mount]:
    """The mounts of a ``/proc/self/mountinfo`` text, the most specific (longest) point first."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if separator + 1 >= len(fields):
            continue
        point = _unescape(fields[4])
        found.append(Mount(point, fields[separator + 1]))
    return sorted(found, key=lambda m: len(m.point), reverse=True)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (``\\040``)."""
    if "\\" not in field:
        return field
    out = bytearray()
    raw = os.fsencode(field)
    i = 0
    while i < len(raw):
        if raw[i : i + 1] == b"\\" and raw[i + 1 : i + 4].isdigit() and len(raw[i + 1 : i + 4]) == 3:
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return os.fsdecode(bytes(out))


def filesystem(path: str, table: list[Mount]) -> str:
    """The type of the filesystem ``path`` (an absolute, resolved path) is on ("" if unknown)."""
    for mount in table:
        point = mount.point
        if path == point or point == "/" or path.startswith(point.rstrip("/") + "/"):
            return mount.fstype
    return ""


def remote_filesystem(fstype: str) -> bool:
    """Whether a filesystem of this type may be changed by other hosts (or an unknown type)."""
    return not fstype or fstype in REMOTE_FILESYSTEMS or fstype.startswith("fuse.")


def read_mounts() -> list[Mount]:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            return mounts(fh.read())
    except OSError:
        return []
