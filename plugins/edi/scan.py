"""Finding what changed in the EDI folders: new, changed and vanished files.

Two ways, per directory:

- **inotify** (``watch.py``), on a local filesystem: the kernel names each file created, moved in
  or out, deleted, closed after writing or re-dated since the last cycle; a cycle stats those names
  and looks each up in the index (one read by key). Nothing is listed, so a cycle costs what
  changed, not what the folder holds. The watch is set up before the directory is listed or its
  time is compared with the index's (``DirState``), so no change falls between the two.
- **listing** (a network share, no inotify, an overflowed event queue, a new watch on a changed
  directory, and every ``listing_interval`` as a safety net): the directory is stat'ed each cycle
  and listed only when its modification time changed, while it holds files still being written,
  or in the cycle after a listing that happened within ``RACY_SECONDS`` of the directory's last
  change (a file created later in the same timestamp tick would leave the time unchanged: git's
  "racy" case). A listing is compared with the names the index holds for the directory (read by
  prefix from the ledger); known files are not stat'ed again unless ``full_rescan``.

Either way, files whose last outcome is in ``index.WATCHED`` are stat'ed by name every cycle.

What the index may claim for a directory (``DirState.mtime_ns``: "every change up to this time is
in the index"), so that a restart need not list a directory that did not change: for a listed
directory, its time before the listing (unless racy); for a watched one, its time when two
consecutive cycles saw the same time and no file of it is still pending (a change made in the
same timestamp tick as the first look is then already drained from the queue and committed).

The files found are kept compactly (``Candidates``: arrays and the names ``os.listdir`` gave)
until they are read in order: archive folders last, by modification time, then path.

Imports only the standard library (with normagent's ``dataclass``) and this package.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
import sys
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import field
from pathlib import Path

from normagent.plugins.edi.index import DirState, FileEntry, Index, file_key
from normagent.plugins.edi.settings import EdiFolder
from normagent.plugins.edi.watch import (
    IN_Q_OVERFLOW,
    SELF_EVENTS,
    Inotify,
    Mount,
    filesystem,
    read_mounts,
    remote_filesystem,
)
from normagent import dataclass

ROLE_ORDER = {"messages": 0, "receipts": 0, "archive": 1}
RACY_SECONDS = 2.0

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def open_dir(base: str, directory: str) -> int:
    """A file descriptor of ``directory`` (``base`` or a directory below it) that no symbolic link
    below ``base`` led to.

    The configured folder itself may be reached through links (the administrator chose it); each
    part below it is opened relative to its parent with ``O_NOFOLLOW``, so a subdirectory swapped
    for a link to ``/etc`` between two looks fails (``ELOOP``/``ENOTDIR``) instead of being read.

    Raises:
        OSError: As ``os.open`` does.
    """
    relative = os.path.relpath(directory, base)
    parts = [] if relative == os.curdir else relative.split(os.sep)
    if os.pardir in parts:
        raise OSError(errno.EXDEV, f"{directory} is not below {base}")
    fd = os.open(base, _DIR_FLAGS)
    if not parts:
        return fd
    try:
        for part in parts:
            inner = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def resolve(root: Path, path: Path) -> str:
    """A configured folder under the context's filesystem root (``/`` in production)."""
    if str(root) in ("", "/"):
        return os.path.normpath(str(path))
    return os.path.normpath(os.path.join(str(root), str(path).lstrip("/")))


@dataclass(slots=True)
class Candidate:
    """A file that is new or changed since it was last read.

    Not frozen: a first index makes one per file (``Candidates.get``), and a frozen dataclass's
    ``__init__`` costs four times a plain one's (bench/README.md, w14-edi). Nothing changes one."""

    path: str
    directory: str
    name: str
    folder: EdiFolder
    size: int
    mtime_ns: int
    base: str = ""  # the configured folder it was found under ("": ``directory``)
    regular: bool = True  # False: a symbolic link, FIFO, device or socket, never opened
    indexed: bool = False  # the index has an entry for it (it changed, or is watched)
    slot: int = -1  # its place in ``Candidates`` (-1: not from there)

    @property
    def order(self) -> tuple[int, int, str]:
        return (ROLE_ORDER.get(self.folder.role, 0), self.mtime_ns, self.path)


_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # os.fsdecode's


class Candidates:
    """The files to read, kept compactly: a first index of 300,000 files holds their names in one
    buffer and five arrays — not 300,000 objects.

    The names are kept as their bytes (``os.fsencode``, which undoes ``os.listdir``'s decoding
    exactly, lone surrogates included) in one buffer, and made ``str`` again when read: as 300,000
    strings they took 28 MiB of the interpreter's small-object arenas, allocated among the
    directory states and watches made during the listing, which then kept some of those arenas
    from being handed back after the index (bench/README.md)."""

    def __init__(self) -> None:
        self.places: list[tuple[str, str, EdiFolder]] = []  # (directory, base, folder)
        self._prefixes: list[str] = []  # each place's directory as ``os.path.join`` prefixes a name
        self._place_ids: dict[str, int] = {}
        self._names = bytearray()  # the names' bytes, one after the other
        self._ends = array("q")  # where each name ends in ``_names``
        self.place = array("l")
        self.size = array("q")
        self.mtime = array("q")
        self.flags = bytearray()  # 1: regular, 2: indexed, 4: read "ok", its entry deferred (``defer``)

    def __len__(self) -> int:
        return len(self._ends)

    def __iter__(self) -> Iterator[Candidate]:
        """The candidates in the order found (``ordered`` gives reading order)."""
        return (self.get(i) for i in range(len(self._ends)))

    def name(self, i: int) -> str:
        """The name of candidate ``i``, as ``os.listdir`` gave it."""
        ends = self._ends
        return self._names[ends[i - 1] if i else 0 : ends[i]].decode(_FS_ENCODING, _FS_ERRORS)

    def place_id(self, directory: str, base: str, folder: EdiFolder) -> int:
        found = self._place_ids.get(directory)
        if found is None:
            found = self._place_ids[directory] = len(self.places)
            self.places.append((directory, base, folder))
            self._prefixes.append(os.path.join(directory, ""))
        return found

    def path(self, i: int) -> str:
        """``os.path.join(directory, name)`` of candidate ``i``: its place's prefix and its name (a
        name from a listing is never absolute nor empty; no join per file)."""
        return self._prefixes[self.place[i]] + self.name(i)

    def add(self, place: int, name: str, size: int, mtime_ns: int, *, regular: bool, indexed: bool) -> None:
        self._names += name.encode(_FS_ENCODING, _FS_ERRORS)  # os.fsencode's, without its frame
        self._ends.append(len(self._names))
        self.place.append(place)
        self.size.append(size)
        self.mtime.append(mtime_ns)
        self.flags.append((1 if regular else 0) | (2 if indexed else 0))

    def get(self, i: int) -> Candidate:
        place = self.place[i]
        directory, base, folder = self.places[place]
        name = self.name(i)
        flags = self.flags[i]
        return Candidate(self._prefixes[place] + name, directory, name, folder, self.size[i], self.mtime[i], base,
                         bool(flags & 1), bool(flags & 2), i)

    def defer(self, slot: int) -> None:
        """Mark a candidate read ``ok`` whose index entry is written at the end of the cycle."""
        self.flags[slot] |= 4

    def deferred(self) -> Iterator[list[int]]:
        """The deferred candidates (``defer``) in the order of their entries' keys, a few at a time:
        so the entries go into the ledger in key order."""
        # By directory, then by the names' first two characters: each part is sorted on its own,
        # so no list of 100,000 numbers is made (Python ints: the heap would keep their pages).
        # The names' bytes, not their text, are sorted: not decoded for it, and in the keys' order
        # all the same — a name that is valid UTF-8 is its UTF-8 bytes (the ledger compares keys as
        # those), and one that is not has its key in ``fx:``, apart from the rest.
        parts: dict[int, dict[bytes, array[int]]] = {}
        flags, place, names, ends = self.flags, self.place, self._names, self._ends
        for i in range(len(self)):
            if flags[i] & 4:
                start = ends[i - 1] if i else 0
                parts.setdefault(place[i], {}).setdefault(bytes(names[start : min(start + 2, ends[i])]), array("l")).append(i)
        for p in sorted(parts, key=lambda p: file_key(self.places[p][0] + os.sep)):
            by_prefix = parts.pop(p)
            for prefix in sorted(by_prefix):
                yield sorted(by_prefix.pop(prefix), key=self._name_bytes)

    def _name_bytes(self, i: int) -> bytes:
        ends = self._ends
        return bytes(self._names[ends[i - 1] if i else 0 : ends[i]])

    def ordered(self) -> Iterator[Candidate]:
        """The candidates in reading order (``Candidate.order``): archives last, then by time, then path."""
        roles = [ROLE_ORDER.get(folder.role, 0) for _, _, folder in self.places]
        place, mtime = self.place, self.mtime
        shift = 1 << 63
        # One int per file as the sort key (role, then time): small, and compared in C.
        order = array("l", sorted(range(len(self)), key=lambda i: (roles[place[i]] << 64) + mtime[i] + shift))
        get, count = self.get, len(order)
        i = 0
        while i < count:
            first = order[i]
            j = i + 1
            # The next one's time differs (nearly always): no tuple made, no further look.
            if j == count or mtime[order[j]] != mtime[first] or roles[place[order[j]]] != roles[place[first]]:
                yield get(first)
                i = j
                continue
            key = (roles[place[first]], mtime[first])
            while j < count and (roles[place[order[j]]], mtime[order[j]]) == key:
                j += 1
            # the same time to the nanosecond: by path
            yield from sorted((get(k) for k in order[i:j]), key=lambda c: c.path)
            i = j


@dataclass(slots=True)
class Seen:
    """A directory as this cycle found it."""

    mtime_ns: int  # when first stat'ed this cycle (before any listing)
    ino: int
    subdirs: tuple[str, ...]
    listed: bool = False
    racy: bool = False
    watched: bool = False


@dataclass
class ScanResult:
    candidates: Candidates = field(default_factory=Candidates)
    gone: list[str] = field(default_factory=list)  # files no longer there
    gone_dirs: list[str] = field(default_factory=list)  # directories whose indexed files are all gone
    dirs: dict[str, Seen] = field(default_factory=dict)
    folders_up: dict[str, bool] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (folder label, what)
    listed: int = 0  # directories listed
    events: int = 0  # names inotify reported
    overflowed: bool = False  # the inotify queue overflowed since the last cycle

    @property
    def found(self) -> int:
        return len(self.candidates)


# --------------------------------------------------------------------------------------------
# inotify, kept between cycles


@dataclass(slots=True)
class WatchedDir:
    wd: int
    dev: int
    ino: int
    names: set[str] = field(default_factory=set)  # reported since they were last looked at
    relist: bool = False  # the events cannot tell everything (overflow, a run that did not end)
    ended: bool = False  # the watch ended (deleted, moved away, unmounted): set up again


class Watcher:
    """The collector's inotify instance, its watches, and what the events said since the last cycle.

    Lives as long as the collector object (the agent's run, until a reload). Only names and flags
    are kept; what they mean is decided when the directory is looked at (``scan``).
    """

    def __init__(self, inotify: Inotify) -> None:
        self.inotify = inotify
        self.dirs: dict[str, WatchedDir] = {}
        self._by_wd: dict[int, list[str]] = {}
        self._mounts: list[Mount] | None = None
        self.refused: dict[str, str] = {}  # directory → why inotify cannot (or must not) watch it
        self.overflows = 0

    def close(self) -> None:
        self.inotify.close()

    def drain(self) -> tuple[int, bool]:
        """Read the queued events into ``dirs``; returns how many named a file, and whether the
        queue overflowed (events were lost: every watched directory is listed again)."""
        named = 0
        overflowed = False
        for event in self.inotify.read():
            if event.mask & IN_Q_OVERFLOW:
                overflowed = True
                self.overflows += 1
                self.relist_all()
                continue
            for directory in self._by_wd.get(event.wd, ()):
                watched = self.dirs.get(directory)
                if watched is None or watched.wd != event.wd:
                    continue
                if event.mask & SELF_EVENTS and not event.name:
                    watched.ended = True  # deleted, moved or unmounted: set up again when it is back
                elif event.name:
                    watched.names.add(event.name)
                    named += 1
        return named, overflowed

    def relist_all(self) -> None:
        """What the events said may not be in the index (an overflow, a run that did not end):
        list every watched directory again."""
        for watched in self.dirs.values():
            watched.relist = True

    def watch(self, directory: str, base: str, st: os.stat_result) -> tuple[WatchedDir | None, os.stat_result, bool]:
        """The directory's watch, set up if it has none, its watch ended or the path now names
        another directory.

        Returns:
            The watch (None where inotify is not used), and the directory's status: for a new
            watch taken *after* the watch was added, so that no change falls between the two
            (a change after it is an event); otherwise ``st``; and whether the watch is new. A new
            watch on a directory that was watched before has ``relist`` set: what happened in
            between is not known.
        """
        watched = self.dirs.get(directory)
        if watched is not None and (watched.dev, watched.ino) == (st.st_dev, st.st_ino) and not watched.ended:
            return watched, st, False
        again = watched is not None
        if watched is not None:
            self.forget(directory)
        if directory in self.refused:
            return None, st, False
        if self._mounts is None:
            self._mounts = read_mounts()
        fstype = filesystem(os.path.realpath(directory), self._mounts)
        if remote_filesystem(fstype):
            self.refused[directory] = f"filesystem {fstype or 'unknown'}: changes by other hosts are not seen"
            return None, st, False
        try:
            fd = open_dir(base, directory)
        except OSError:
            return None, st, False
        try:
            try:
                # The descriptor's directory, reached without following any link below the folder.
                wd = self.inotify.watch(f"/proc/self/fd/{fd}".encode())
            except FileNotFoundError:  # no /proc: by path, never following a link at its end
                wd = self.inotify.watch(os.fsencode(directory), follow=directory == base)
            opened = os.fstat(fd)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.ENOMEM, errno.EACCES, errno.EPERM):
                self.refused[directory] = os.strerror(exc.errno) + (
                    " (fs.inotify.max_user_watches reached)" if exc.errno == errno.ENOSPC else "")
            return None, st, False
        finally:
            os.close(fd)
        watched = WatchedDir(wd, opened.st_dev, opened.st_ino, relist=again)
        self.dirs[directory] = watched
        self._by_wd.setdefault(wd, []).append(directory)
        return watched, opened, True

    def forget(self, directory: str) -> None:
        watched = self.dirs.pop(directory, None)
        if watched is None:
            return
        sharing = self._by_wd.get(watched.wd, [])
        if directory in sharing:
            sharing.remove(directory)
        if not sharing:
            self._by_wd.pop(watched.wd, None)
            self.inotify.unwatch(watched.wd)


# --------------------------------------------------------------------------------------------
# one cycle's look at the folders


class _Names:
    """A folder's glob and ignore patterns, compiled once per cycle (their ``match``, None for none:
    asked per name listed, in ``_consider``)."""

    def __init__(self, folder: EdiFolder) -> None:
        self.ignore = re.compile("|".join(fnmatch.translate(p) for p in folder.ignore)).match if folder.ignore else None
        self.wanted = None if folder.glob == "*" else re.compile(fnmatch.translate(folder.glob)).match


@dataclass
class _Cycle:
    index: Index
    watcher: Watcher | None
    now: float
    full: bool
    listing_due: Callable[[str], bool]
    result: ScanResult
    names: dict[int, _Names] = field(default_factory=dict)

    def patterns(self, folder: EdiFolder) -> _Names:
        found = self.names.get(id(folder))
        if found is None:
            found = self.names[id(folder)] = _Names(folder)
        return found


def scan(
    folders: Sequence[EdiFolder],
    root: Path,
    index: Index,
    *,
    now: float,
    full: bool = False,
    watcher: Watcher | None = None,
    listing_due: Callable[[str], bool] = lambda directory: False,
) -> ScanResult:
    """Find new, changed and vanished files in the configured folders.

    Each directory is stat'ed; what changed in it is learnt from its inotify events (``watcher``)
    or by listing it (see the module docstring). A directory claimed by an earlier folder is not
    read again for a later, overlapping one.

    Args:
        listing_due: Whether a directory is due for its safety-net listing.
    """
    result = ScanResult()
    cycle = _Cycle(index, watcher, now, full, listing_due, result)
    if watcher is not None:
        result.events, result.overflowed = watcher.drain()
    claimed: set[str] = set()
    unreachable = []
    for folder in sorted(folders, key=lambda f: ROLE_ORDER.get(f.role, 0)):
        base = resolve(root, folder.path)
        if not os.path.isdir(base):
            unreachable.append(base)
            result.folders_up[folder.label] = False
            result.problems.append((folder.label, "missing or not a directory"))
            continue
        result.folders_up[folder.label] = True
        todo = [base]
        while todo:
            directory = todo.pop()
            if directory in claimed:
                continue
            claimed.add(directory)
            subdirs = _scan_dir(directory, base, folder, cycle)
            if folder.recursive:
                todo.extend(subdirs)
    # Directories no configured folder reaches any more (a folder removed from the configuration,
    # a subdirectory deleted): their files are forgotten; those of a folder that is missing right
    # now (an unmounted share) are kept, so its return does not look like new files.
    for directory in index.dirs:
        if directory in claimed or any(directory == b or directory.startswith(b + os.sep) for b in unreachable):
            continue
        result.gone_dirs.append(directory)
    if watcher is not None:
        for directory in [d for d in watcher.dirs if d not in claimed]:
            watcher.forget(directory)
    return result


def _scan_dir(directory: str, base: str, folder: EdiFolder, cycle: _Cycle) -> tuple[str, ...]:
    index, result = cycle.index, cycle.result
    prev = index.dirs.get(directory)
    try:
        # A subdirectory is looked at without following a link: one replaced by a link to a
        # directory elsewhere is gone, never listed.
        st = os.stat(directory) if directory == base else os.lstat(directory)
    except FileNotFoundError:
        return ()
    except OSError as exc:
        result.problems.append((folder.label, f"cannot stat a directory: {exc.strerror}"))
        result.folders_up[folder.label] = False
        return prev.subdirs if prev is not None else ()
    if not stat.S_ISDIR(st.st_mode):
        if directory == base:  # replaced since os.path.isdir: looked at again next cycle
            result.problems.append((folder.label, "not a directory"))
            result.folders_up[folder.label] = False
            return ()
        # A subdirectory replaced by a link or a file: what was indexed below it is gone, and the
        # name is looked at as a file of its parent.
        result.gone_dirs.append(directory)
        parent, name = os.path.split(directory)
        entry = index.file_entry(directory)
        _consider(parent, base, name, folder, entry, cycle)
        return ()
    watched, fresh = None, False
    if cycle.watcher is not None:
        watched, st, fresh = cycle.watcher.watch(directory, base, st)
    changed = prev is None or prev.mtime_ns != st.st_mtime_ns or (prev.ino not in (0, st.st_ino))
    must_list = cycle.full or prev is None or prev.mtime_ns < 0 or prev.rescan or cycle.listing_due(directory)
    # Watched: the events since the watch was set up tell what changed; the time compared with the
    # index's claim, when the watch is new, what happened before (after a restart, a directory
    # that changed while the agent was away is listed once). Not watched: a changed time means a
    # listing.
    if watched is not None:
        must_list = must_list or watched.relist or (fresh and changed)
    else:
        must_list = must_list or changed
    if not must_list:
        assert prev is not None
        if not os.access(directory, os.R_OK | os.X_OK):
            # Permissions taken away do not change the directory's time: without this check the
            # folder would look up until its next change.
            result.problems.append((folder.label, "cannot list a directory: Permission denied"))
            result.folders_up[folder.label] = False
            return prev.subdirs
        subdirs = set(prev.subdirs)
        names = set(index.watch.get(directory, ()))
        if watched is not None:
            names |= watched.names
            watched.names = set()
        for name in names:
            path = os.path.join(directory, name)
            kind = _consider(directory, base, name, folder, index.file_entry(path), cycle)
            if kind == "dir":
                if folder.recursive:
                    subdirs.add(path)
            elif path in subdirs:
                subdirs.discard(path)  # no longer a directory: its files are found gone (not claimed)
        result.dirs[directory] = Seen(st.st_mtime_ns, st.st_ino, tuple(sorted(subdirs)), watched=watched is not None)
        return tuple(sorted(subdirs))
    return _list_dir(directory, base, folder, st, prev, watched, cycle)


def _list_dir(
    directory: str, base: str, folder: EdiFolder, st: os.stat_result, prev: DirState | None, watched: WatchedDir | None,
    cycle: _Cycle,
) -> tuple[str, ...]:
    index, result = cycle.index, cycle.result
    before = st.st_mtime_ns
    if watched is not None:
        watched.names = set()  # the listing tells all they could
        watched.relist = False
    try:
        fd = open_dir(base, directory)
        try:
            listed = set(os.listdir(fd))
        except BaseException:
            os.close(fd)
            raise
    except OSError as exc:
        # Down until a listing succeeds: the next cycle lists it again.
        result.problems.append((folder.label, f"cannot list a directory: {exc.strerror}"))
        result.folders_up[folder.label] = False
        if watched is not None:
            watched.relist = True
        return prev.subdirs if prev is not None else ()
    try:
        result.listed += 1
        known_subdirs = {os.path.basename(d) for d in prev.subdirs} if prev is not None else set()
        # Set differences run in C: with 100,000 files in a folder, only the new names cost Python time.
        # Known files are written once and not looked at again (unless full, or watched).
        if cycle.full:
            entries = index.known_entries(directory)
            known = set(entries)
        else:
            entries = {}
            known = index.known_names(directory)
        result.gone.extend(os.path.join(directory, name) for name in known - listed)
        watch = index.watch.get(directory, {})
        if cycle.full:
            fresh = listed - known_subdirs
        else:
            fresh = listed - known - known_subdirs
            fresh.update(watch.keys() & listed)
        subdirs = [os.path.join(directory, name) for name in listed & known_subdirs] if folder.recursive else []
        del listed
        for name in fresh:
            if name in known:
                entry = entries.get(name) or index.file_entry(os.path.join(directory, name))
            else:
                entry = None
            if _consider(directory, base, name, folder, entry, cycle, fd) == "dir" and folder.recursive:
                subdirs.append(os.path.join(directory, name))
    finally:
        os.close(fd)
    try:
        after = (os.stat(directory) if directory == base else os.lstat(directory)).st_mtime_ns
    except OSError:
        after = -1
    racy = after != before or after / 1e9 > cycle.now - RACY_SECONDS
    result.dirs[directory] = Seen(before, st.st_ino, tuple(sorted(subdirs)), listed=True, racy=racy,
                                  watched=watched is not None)
    return tuple(subdirs)


def _consider(
    directory: str, base: str, name: str, folder: EdiFolder, entry: FileEntry | None, cycle: _Cycle,
    dir_fd: int | None = None,
) -> str:
    """Make ``name`` a candidate if it is a wanted file that is new or changed (``entry``: what the
    index holds for it). Returns ``"dir"`` for a directory, ``"gone"`` for a name no longer there,
    ``""`` otherwise.

    ``dir_fd``: the directory as its listing opened it (``open_dir``); the name is looked at there,
    relative to it (no walk of the whole path per file: a third of the ``lstat``'s cost in a first
    index; and the directory listed, not another put in its place since).

    Nothing is followed: a symbolic link (to ``/etc/shadow``, or to a directory elsewhere), a FIFO,
    a device or a socket that matches the folder's glob becomes a candidate that is never opened —
    counted once as ``not_regular`` and watched, so a regular file put in its place is read.
    """
    result = cycle.result
    patterns = cycle.patterns(folder)
    ignore = patterns.ignore
    if ignore is not None and ignore(name) is not None:
        return ""
    try:
        st = os.lstat(os.path.join(directory, name)) if dir_fd is None else os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        if entry is not None:
            result.gone.append(os.path.join(directory, name))
        return "gone"
    if stat.S_ISDIR(st.st_mode):
        if entry is not None:
            result.gone.append(os.path.join(directory, name))  # a file replaced by a directory
        return "dir"
    wanted = patterns.wanted
    if wanted is not None and wanted(name) is None:
        return ""
    if entry is None or not entry.unchanged(st.st_size, st.st_mtime_ns):
        candidates = result.candidates
        candidates.add(candidates.place_id(directory, base, folder), name, st.st_size, st.st_mtime_ns,
                       regular=stat.S_ISREG(st.st_mode), indexed=entry is not None)
    return ""


# --------------------------------------------------------------------------------------------
# directories opened once per cycle


class DirectoryCache:
    """Descriptors of the directories files are read from, each opened once per cycle
    (``open_dir``: no link followed below the folder) instead of once per file."""

    def __init__(self, size: int = 64) -> None:
        self._open: OrderedDict[str, int] = OrderedDict()
        self._size = size
        # The directory asked for last and its descriptor, answered without the OrderedDict: the
        # files of a first index come mostly from one folder after another (a get per file).
        # Always the most recently used entry of ``_open``, so never the one evicted.
        self._last: tuple[str, int] | None = None

    def get(self, base: str, directory: str) -> int:
        last = self._last
        if last is not None and last[0] == directory:
            return last[1]
        fd = self._open.get(directory)
        if fd is not None:
            self._open.move_to_end(directory)
            self._last = (directory, fd)
            return fd
        fd = open_dir(base or directory, directory)
        self._open[directory] = fd
        if len(self._open) > self._size:
            _, oldest = self._open.popitem(last=False)
            os.close(oldest)
        self._last = (directory, fd)
        return fd

    def drop(self, directory: str) -> None:
        """Forget a descriptor that may no longer be the directory's (it is opened afresh next time)."""
        if self._last is not None and self._last[0] == directory:
            self._last = None
        fd = self._open.pop(directory, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        self._last = None
        while self._open:
            os.close(self._open.popitem()[1])
