"""journald read through libsystemd (``sd_journal``), in process, via ctypes.

``read_journal`` (journald.py) uses this reader when the host's ``libsystemd.so.0`` loads, and
``journalctl`` otherwise (``JournalSettings.reader`` may force either). Both hand out the same
entries, the same cursors and the same blocks, so a cursor committed by one resumes in the other
(a host that loses or gains libsystemd, or an operator who switches, neither loses nor repeats an
entry). What "the same" means is what ``journalctl --output=json --all`` prints, field by field
(systemd's ``output_json``): ``__CURSOR``, ``__REALTIME_TIMESTAMP``, ``__MONOTONIC_TIMESTAMP`` and
``_BOOT_ID`` from the entry's header (the data field ``_BOOT_ID`` is left out for it),
``__SEQNUM``/``__SEQNUM_ID`` where the library knows them (systemd 254 and later, whose journalctl
prints them), every data field with its value decoded as UTF-8 with replacement, a field that
occurs more than once joined with ``"\\n"`` in journal order, and no size threshold (``--all``).
An entry libsystemd cannot read is skipped, as journalctl skips it, and counted in a warning.

Why ctypes on the host's library rather than a binding from PyPI: python-systemd has no wheel
(it builds against libsystemd's headers, which a clinic server lacks); cysystemd's wheel bundles
its own libsystemd and libgcrypt (6 MB), whose version need not read the host's journal files as
the host's journald writes them, and its entries keep only the last value of a repeated field.
The host's own ``libsystemd.so.0`` is what journalctl itself uses: same format support, same
cursor code, nothing to install.

Why the library stays loaded between runs: it and the five it needs (libgcrypt, liblz4, libzstd,
liblzma, libcap) are about 1.2 MB of the idle agent's resident memory, mostly their code's pages,
which the host's other users of libsystemd share. Loading it for each read and closing it after
gave those back, but each load resolves every symbol at once (the library is linked ``-z now``):
about 2 ms of CPU a read, 0.01 % of a core with the journal read some three times a minute, which
is more than the idle agent's whole CPU target allows (bench/README.md, issue 15).

Why it is fast where journalctl is not: one handle for a whole run (journalctl was started, and
seeked to the cursor, once per block), matches evaluated inside libsystemd, and per entry only
libsystemd's calls plus one C-level split of its fields: names and values stay bytes until a
parser looks at a field (``JournalFields``), and most parsers look at three or four. The calls
that run per entry (``sd_journal_next``, ``sd_journal_enumerate_data``, ``sd_journal_get_cursor``)
keep the GIL (``ctypes.PyDLL``): they take well under a microsecond, and giving the GIL away a
dozen times per entry would let any other busy thread of the agent take it for a whole switch
interval each time. Calls that may take long (opening, seeking) release it.

Faster still where the collector declares the fields its parser reads (``wanted_entries``): one
``sd_journal_get_data`` per declared field instead of enumerating the 20-odd fields of a real
entry, the time from ``sd_journal_get_realtime_usec`` instead of the cursor, and the cursor only
of each block's last entry, the one its commit checkpoints (2.3x on the benchmark's entries, 3x
and more on 22-field ones; bench/README.md).

Imports only the standard library (with normagent's ``dataclass``) and normagent.errors/model
(structlog for the log).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from itertools import repeat
from typing import Any

import structlog

from normagent.errors import NoData
from normagent.model import JournalEntry, RecordBlock
from normagent.records import dataclass
from normagent.sources.journald import no_entries, not_whole

log = structlog.get_logger(__name__)

LIBSYSTEMD = "libsystemd.so.0"
SD_JOURNAL_LOCAL_ONLY = 1  # journalctl's default: this machine's journal, not containers'
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# journalctl skips an entry whose data these errors make unreadable (a file cut or corrupted
# while written); any other error fails the read.
_SKIPPED_ENTRY = (errno.EBADMSG, errno.EADDRNOTAVAIL)
_NO_JOURNAL = (errno.ENOENT, errno.ENODATA, errno.ENOTDIR)


class SdJournalError(RuntimeError):
    """libsystemd failed to read the journal (a damaged file, an I/O error)."""


class JournalFields(Mapping[str, str]):
    """The fields of one entry as ``journalctl -o json --all`` gives them, decoded when looked at.

    Names and values are kept as the bytes libsystemd returned; ``fields["MESSAGE"]`` decodes that
    one value (UTF-8, invalid bytes replaced). The header's fields (``__CURSOR``,
    ``__REALTIME_TIMESTAMP``, ``__MONOTONIC_TIMESTAMP``, ``_BOOT_ID`` and, where the library has
    them, ``__SEQNUM``/``__SEQNUM_ID``) are read from the entry's cursor when asked for. Equal to
    the dict the journalctl reader builds for the same entry.
    """

    __slots__ = ("_raw", "_cursor", "_seqnum")

    def __init__(self, raw: dict[bytes, bytes], cursor: bytes, seqnum: bool = False) -> None:
        self._raw = raw
        self._cursor = cursor
        self._seqnum = seqnum

    def _header(self) -> dict[bytes, bytes]:
        """The header's fields, from the cursor ``s=<seqnum id>;i=<seqnum>;b=<boot id>;m=<monotonic>;t=<realtime>;x=<hash>``
        (hexadecimal numbers; journalctl prints them in decimal)."""
        cursor = self._cursor
        parts = dict(part.split(b"=", 1) for part in cursor.split(b";") if b"=" in part)
        header = {
            b"__CURSOR": cursor,
            b"__REALTIME_TIMESTAMP": b"%d" % int(parts[b"t"], 16),
            b"__MONOTONIC_TIMESTAMP": b"%d" % int(parts[b"m"], 16),
            b"_BOOT_ID": parts[b"b"],
        }
        if self._seqnum:
            header[b"__SEQNUM"] = b"%d" % int(parts[b"i"], 16)
            header[b"__SEQNUM_ID"] = parts[b"s"]
        return header

    def _names(self) -> dict[bytes, bytes]:
        """Every field, header and data, as bytes (for iteration and comparison: the slow way)."""
        return {**{k: v for k, v in self._raw.items() if k != b"_BOOT_ID"}, **self._header()}

    def __getitem__(self, key: str) -> str:
        name = key.encode("utf-8", "surrogateescape")
        if name in _HEADER:
            value = self._header().get(name)
            if value is None:
                raise KeyError(key)
            return value.decode("utf-8", "replace")
        return self._raw[name].decode("utf-8", "replace")

    def get(self, key: str, default: Any = None) -> Any:
        name = key.encode("utf-8", "surrogateescape")
        value = self._header().get(name) if name in _HEADER else self._raw.get(name)
        return default if value is None else value.decode("utf-8", "replace")

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.encode("utf-8", "surrogateescape") in self._names()

    def __iter__(self) -> Iterator[str]:
        return (name.decode("utf-8", "replace") for name in self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]  # a mapping, like dict

    def __repr__(self) -> str:
        return f"JournalFields({dict(self.items())!r})"


_HEADER = frozenset({b"__CURSOR", b"__REALTIME_TIMESTAMP", b"__MONOTONIC_TIMESTAMP", b"_BOOT_ID", b"__SEQNUM", b"__SEQNUM_ID"})


@dataclass(frozen=True, slots=True)
class _Lib:
    """The functions of a loaded libsystemd, typed once."""

    fast: Any  # PyDLL: short per-entry calls keep the GIL
    slow: Any  # CDLL: calls that may block release it
    free: Any
    has_seqnum: bool
    name: str


def load(library: str = LIBSYSTEMD) -> _Lib | str:
    """libsystemd's journal functions, or why they cannot be had (the reason, for the log)."""
    return _load(library)


@functools.lru_cache(maxsize=8)
def _load(library: str) -> _Lib | str:
    try:
        fast = ctypes.PyDLL(library, use_errno=True)
        slow = ctypes.CDLL(library, use_errno=True)
        libc = ctypes.PyDLL(None)
        for name in _FUNCTIONS:
            getattr(fast, name)
    except (OSError, AttributeError) as exc:
        return f"{library}: {exc}"
    p, u64, size = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t
    out_p = ctypes.POINTER(ctypes.c_void_p)
    for lib in (fast, slow):
        lib.sd_journal_open.argtypes = [out_p, ctypes.c_int]
        lib.sd_journal_open_directory.argtypes = [out_p, ctypes.c_char_p, ctypes.c_int]
        lib.sd_journal_open_files.argtypes = [out_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]
        lib.sd_journal_close.argtypes = [p]
        lib.sd_journal_close.restype = None
        lib.sd_journal_set_data_threshold.argtypes = [p, size]
        lib.sd_journal_add_match.argtypes = [p, ctypes.c_char_p, size]
        lib.sd_journal_add_disjunction.argtypes = [p]
        lib.sd_journal_add_conjunction.argtypes = [p]
        lib.sd_journal_seek_head.argtypes = [p]
        lib.sd_journal_seek_tail.argtypes = [p]
        lib.sd_journal_seek_cursor.argtypes = [p, ctypes.c_char_p]
        lib.sd_journal_test_cursor.argtypes = [p, ctypes.c_char_p]
        lib.sd_journal_previous.argtypes = [p]
        lib.sd_journal_get_realtime_usec.argtypes = [p, ctypes.POINTER(u64)]
        lib.sd_journal_get_monotonic_usec.argtypes = [p, ctypes.POINTER(u64), ctypes.c_void_p]
    # The per-entry calls take pre-made byref() arguments and are left without argtypes: ctypes
    # then passes them as they are, the cheapest call it makes.
    libc.free.restype = None  # no argtypes: a c_char_p is passed as the pointer it holds
    return _Lib(fast=fast, slow=slow, free=libc.free, has_seqnum=hasattr(fast, "sd_journal_get_seqnum"), name=library)


_FUNCTIONS = (
    "sd_journal_open",
    "sd_journal_open_directory",
    "sd_journal_open_files",
    "sd_journal_close",
    "sd_journal_set_data_threshold",
    "sd_journal_add_match",
    "sd_journal_add_disjunction",
    "sd_journal_add_conjunction",
    "sd_journal_seek_head",
    "sd_journal_seek_tail",
    "sd_journal_seek_cursor",
    "sd_journal_test_cursor",
    "sd_journal_next",
    "sd_journal_previous",
    "sd_journal_enumerate_data",
    "sd_journal_get_cursor",
    "sd_journal_get_realtime_usec",
    "sd_journal_get_monotonic_usec",
    "sd_journal_get_data",
)


class _Journal:
    """One open ``sd_journal`` handle: the directory, the files, or the local journal."""

    def __init__(self, lib: _Lib, *, directory: str, files: Sequence[str], origin: str) -> None:
        self.lib = lib
        self.origin = origin
        handle = ctypes.c_void_p()
        if directory:
            r = lib.slow.sd_journal_open_directory(ctypes.byref(handle), os.fsencode(directory), 0)
        elif files:
            paths = (ctypes.c_char_p * (len(files) + 1))(*(os.fsencode(f) for f in files), None)
            r = lib.slow.sd_journal_open_files(ctypes.byref(handle), paths, 0)
        else:
            r = lib.slow.sd_journal_open(ctypes.byref(handle), SD_JOURNAL_LOCAL_ONLY)
        if r < 0:
            cut = not_whole(files) if -r == errno.ENODATA else []
            if cut:
                raise SdJournalError(f"{origin}: {', '.join(cut)}: not a whole journal file (cut short or damaged): {os.strerror(-r)}")
            what = "no journal files there" if -r in _NO_JOURNAL else "cannot open the journal"
            if -r in _NO_JOURNAL:
                raise NoData(f"{origin}: {what} ({os.strerror(-r)})")
            raise SdJournalError(f"{origin}: {what}: {os.strerror(-r)}")
        self.handle = handle
        try:
            # No threshold, as journalctl --all: fields over 64 KiB whole, not cut.
            self._check(lib.slow.sd_journal_set_data_threshold(handle, 0), "set the data threshold")
        except SdJournalError:
            self.close()
            raise

    def close(self) -> None:
        if self.handle:
            self.lib.slow.sd_journal_close(self.handle)
            self.handle = ctypes.c_void_p()

    def _check(self, r: int, doing: str) -> int:
        if r < 0:
            raise SdJournalError(f"{self.origin}: libsystemd failed to {doing}: {os.strerror(-r)}")
        return r

    def add_matches(self, priorities: Sequence[int], groups: Sequence[Sequence[str]]) -> None:
        """``PRIORITY`` in ``priorities`` AND (any match of the first group OR of the next ...).

        The expression journalctl builds from ``--priority=A..B`` and ``M1 M2 + M3`` (its
        priorities are added, then a conjunction, then the positional matches).
        """
        slow = self.lib.slow
        for value in priorities:
            match = f"PRIORITY={value}".encode()
            self._check(slow.sd_journal_add_match(self.handle, match, len(match)), "add a match")
        if priorities:
            self._check(slow.sd_journal_add_conjunction(self.handle), "add a conjunction")
        for n, group in enumerate(g for g in groups if g):
            if n:
                self._check(slow.sd_journal_add_disjunction(self.handle), "add a disjunction")
            for text in group:
                match = text.encode("utf-8", "surrogateescape")
                self._check(slow.sd_journal_add_match(self.handle, match, len(match)), "add a match")

    def seek_head(self) -> None:
        self._check(self.lib.slow.sd_journal_seek_head(self.handle), "seek to the head")

    def seek_cursor(self, cursor: str) -> bool:
        """Seek to ``cursor``; False if libsystemd cannot parse it (an invalid cursor)."""
        r = self.lib.slow.sd_journal_seek_cursor(self.handle, cursor.encode("utf-8", "surrogateescape"))
        if r == -errno.EINVAL:
            return False
        self._check(r, "seek to the cursor")
        return True

    def newest_cursor(self) -> str | None:
        """The cursor of the newest entry this handle shows, or None when it shows none."""
        self._check(self.lib.slow.sd_journal_seek_tail(self.handle), "seek to the tail")
        if self._check(self.lib.slow.sd_journal_previous(self.handle), "step back") == 0:
            return None
        return self.cursor()

    def test_cursor(self, cursor: str) -> bool:
        r = self.lib.slow.sd_journal_test_cursor(self.handle, cursor.encode("utf-8", "surrogateescape"))
        return bool(r > 0)

    def step(self) -> bool:
        return bool(self._check(self.lib.fast.sd_journal_next(self.handle), "read the next entry") > 0)

    def cursor(self) -> str:
        text = ctypes.c_char_p()
        self._check(self.lib.fast.sd_journal_get_cursor(self.handle, ctypes.byref(text)), "get a cursor")
        try:
            return (text.value or b"").decode("ascii", "replace")
        finally:
            self.lib.free(text)

    def entries(self, limit: int) -> tuple[list[JournalEntry], int]:
        """Up to ``limit`` entries from the current position on (each one read with
        ``sd_journal_next``), and how many unreadable ones were skipped on the way."""
        lib = self.lib
        handle = self.handle
        step = lib.fast.sd_journal_next
        enumerate_data = lib.fast.sd_journal_enumerate_data
        get_cursor = lib.fast.sd_journal_get_cursor
        free = lib.free
        data = ctypes.POINTER(ctypes.c_char)()
        size = ctypes.c_size_t()
        p_data, p_size = ctypes.byref(data), ctypes.byref(size)
        text = ctypes.c_char_p()
        p_text = ctypes.byref(text)
        split, eq, once = bytes.split, b"=", 1
        seqnum = lib.has_seqnum
        epoch, microseconds, entry = _EPOCH, timedelta, JournalEntry
        out: list[JournalEntry] = []
        append = out.append
        skipped = 0
        while len(out) < limit:
            r = step(handle)
            if r <= 0:
                self._check(r, "read the next entry")
                break
            r = get_cursor(handle, p_text)
            if r < 0:
                self._check(r, "get a cursor")
            raw_cursor: bytes = text.value  # type: ignore[assignment]  # set: the call succeeded
            free(text)
            items: list[bytes] = []
            add = items.append
            r = enumerate_data(handle, p_data, p_size)
            while r > 0:
                add(data[: size.value])  # type: ignore[arg-type]  # a c_char pointer's slice is bytes
                r = enumerate_data(handle, p_data, p_size)
            if r < 0:
                if -r in _SKIPPED_ENTRY:
                    skipped += 1
                    continue
                self._check(r, "read an entry's data")
            try:
                # bytes.split(item, b"=", 1) called from C by map(): no Python frame per field
                # (a functools.partial with keywords would build a dict of them per call: 4x slower).
                raw: dict[bytes, bytes] = dict(map(split, items, repeat(eq), repeat(once)))
            except ValueError:  # an item without "=": journalctl leaves it out
                raw = _joined(items)
            else:
                if len(raw) != len(items):  # a name occurs more than once: join its values
                    raw = _joined(items)
            t = raw_cursor.find(b";t=")
            x = raw_cursor.find(b";", t + 3)
            try:
                realtime = int(raw_cursor[t + 3 : x], 16)
            except ValueError:  # not the cursor libsystemd has written since 2012
                raise SdJournalError(f"{self.origin}: libsystemd gave a cursor without a time: {raw_cursor!r}") from None
            append(entry(JournalFields(raw, raw_cursor, seqnum), epoch + microseconds(0, 0, realtime), raw_cursor.decode("ascii", "replace")))
        return out, skipped

    def wanted_entries(self, limit: int, fields: Sequence[str], *, first_cursor: bool) -> tuple[list[JournalEntry], int]:
        """As ``entries``, but only ``fields`` of each entry (``sd_journal_get_data`` per name, the
        first value of a repeated field; ``"A|B"``: B only where A is missing or empty, as a
        parser's ``fields.get("A") or fields.get("B")`` reads them), its time from ``sd_journal_get_realtime_usec``, and the
        cursor only where it is used: on the last entry (the block's checkpoint), on the first when
        ``first_cursor`` (resuming: is it the saved entry?), on every entry if ``__CURSOR`` is wanted.

        The last entry's cursor: at ``limit`` it is taken on the entry; at the journal's end it is
        taken after ``sd_journal_next`` said there is no more, which leaves the position on the
        last entry read (checked against that entry's time). Where the last entries read were
        unreadable ones (skipped), the cursor is the last skipped one's: resuming after it repeats
        nothing and loses nothing but what is skipped anyway.
        """
        lib = self.lib
        handle = self.handle
        step = lib.fast.sd_journal_next
        get_data = lib.fast.sd_journal_get_data
        get_realtime = lib.fast.sd_journal_get_realtime_usec
        data = ctypes.POINTER(ctypes.c_char)()
        size = ctypes.c_size_t()
        p_data, p_size = ctypes.byref(data), ctypes.byref(size)
        usec = ctypes.c_uint64()
        p_usec = ctypes.byref(usec)
        every_cursor = "__CURSOR" in fields
        with_time = "__REALTIME_TIMESTAMP" in fields
        # Each declared item: its alternatives "A|B", B read only where A is missing or empty.
        wanted = [
            [(name.encode("utf-8", "surrogateescape"), name, len(name.encode("utf-8", "surrogateescape")) + 1) for name in item.split("|")]
            for item in dict.fromkeys(fields)
            if item not in _WANTED_HEADER
        ]
        epoch, microseconds, entry = _EPOCH, timedelta, JournalEntry
        enoent = -errno.ENOENT
        out: list[JournalEntry] = []
        append = out.append
        skipped = 0
        last_skipped = False
        last_usec = 0
        while len(out) < limit:
            r = step(handle)
            if r <= 0:
                self._check(r, "read the next entry")
                break
            r = get_realtime(handle, p_usec)
            if r < 0:
                if -r in _SKIPPED_ENTRY:
                    skipped += 1
                    last_skipped = True
                    continue
                self._check(r, "read an entry's time")
            values: dict[str, str] = {}
            bad = False
            for alternatives in wanted:
                for name, key, cut in alternatives:
                    r = get_data(handle, name, p_data, p_size)
                    if r >= 0:
                        value = data[cut : size.value].decode("utf-8", "replace")  # type: ignore[attr-defined]  # a c_char pointer's slice is bytes
                        values[key] = value
                        if value:
                            break
                    elif r != enoent:
                        if -r in _SKIPPED_ENTRY:
                            bad = True
                            break
                        self._check(r, "read an entry's data")
                if bad:
                    break
            if bad:
                skipped += 1
                last_skipped = True
                continue
            last_skipped = False
            last_usec = usec.value
            if with_time:
                values["__REALTIME_TIMESTAMP"] = str(last_usec)
            cursor = ""
            if every_cursor or len(out) == limit - 1 or (first_cursor and not out):
                cursor = self.cursor()
                if every_cursor:
                    values["__CURSOR"] = cursor
            append(entry(values, epoch + microseconds(0, 0, last_usec), cursor))
        if out and not out[-1].cursor:
            # The journal's end (or skipped entries after the last one read): the position is
            # still on the last entry stepped to.
            cursor = self.cursor()
            if not last_skipped and _cursor_time(cursor) != last_usec:
                raise SdJournalError(f"{self.origin}: libsystemd's position moved past the last entry read (cursor {cursor!r})")
            last = out[-1]
            out[-1] = entry(last.fields, last.realtime, cursor)
        return out, skipped


def _cursor_time(cursor: str) -> int | None:
    """The realtime ``t=`` of a cursor, or None if it has none."""
    for part in cursor.split(";"):
        if part.startswith("t="):
            try:
                return int(part[2:], 16)
            except ValueError:
                return None
    return None


# Header fields the wanted-fields reader can give without enumerating the entry.
_WANTED_HEADER = frozenset({"__CURSOR", "__REALTIME_TIMESTAMP"})


def _joined(items: list[bytes]) -> dict[bytes, bytes]:
    """The slow way, for an entry with a repeated field or an item without ``=``: values of one
    name joined with ``"\\n"`` in journal order, ``_BOOT_ID`` and items without a name left out."""
    raw: dict[bytes, bytes] = {}
    for item in items:
        name, sep, value = item.partition(b"=")
        if not sep or name == b"_BOOT_ID":
            continue
        raw[name] = raw[name] + b"\n" + value if name in raw else value
    return raw


def read(
    lib: _Lib,
    *,
    cursor: str | None,
    start: str,
    directory: str,
    files: Sequence[str],
    priorities: Sequence[int],
    groups: Sequence[Sequence[str]],
    block_entries: int,
    origin: str,
    fields: Sequence[str] | None = None,
) -> Iterator[tuple[RecordBlock, str]]:
    """The libsystemd side of ``read_journal``: blocks and cursors as the journalctl side gives them.

    One handle for the whole read, closed when the generator ends or is closed (the driver stops
    early at its deadline or at shutdown). ``fields``: only these fields of each entry, and the
    cursor only on a block's last entry (``_Journal.wanted_entries``); None: every field and
    every cursor, as journalctl gives them.
    """
    journal = _Journal(lib, directory=directory, files=files, origin=origin)
    try:
        if cursor is None and not directory and not files and access_limited(os.geteuid(), _group_names()):
            # As journalctl's hint: outside these groups the local journal shows only one's own entries.
            log.warning("journal_access_limited", origin=origin, hint="add the user to the systemd-journal group")
        saved = cursor
        if saved is None and start == "end":
            saved = journal.newest_cursor()  # of the whole journal, before any match
            if saved is None:
                raise no_entries(origin, directory, files)
            yield RecordBlock(records=(), origin=origin), saved
        journal.add_matches(priorities, groups)
        if saved is None:
            journal.seek_head()
        elif not journal.seek_cursor(saved):
            log.warning("journal_cursor_lost", origin=origin, reason="invalid cursor", start=start)
            journal.close()
            yield from read(
                lib, cursor=None, start=start, directory=directory, files=files, priorities=priorities,
                groups=groups, block_entries=block_entries, origin=origin, fields=fields,
            )  # fmt: skip
            return
        first = True
        while True:
            limit = block_entries + (1 if first and saved else 0)
            if fields is None:
                entries, skipped = journal.entries(limit)
            else:
                entries, skipped = journal.wanted_entries(limit, fields, first_cursor=bool(first and saved))
            if skipped:
                log.warning("journal_entries_unreadable", origin=origin, skipped=skipped)
            if first and saved and entries:
                if entries[0].cursor == saved:
                    entries = entries[1:]
                elif not _cursor_exists(lib, directory, files, saved, origin):
                    log.warning("journal_cursor_lost", origin=origin, reason="vacuumed", resumed_at=entries[0].realtime.isoformat())
            if not entries:
                if first and cursor is None and saved is None and _newest(lib, directory, files, origin) is None:
                    raise no_entries(origin, directory, files)
                return
            first = False
            yield RecordBlock(records=tuple(entries), origin=origin), entries[-1].cursor
            if len(entries) < block_entries:
                return
    finally:
        journal.close()


JOURNAL_GROUPS = frozenset({"systemd-journal", "adm", "wheel"})


def access_limited(euid: int, groups: set[str]) -> bool:
    """Whether a user sees only their own entries of the local journal (not root, in none of the
    groups journald's files are readable by)."""
    return euid != 0 and not groups & JOURNAL_GROUPS


def _group_names() -> set[str]:
    import grp

    names = set()
    for gid in {os.getegid(), *os.getgroups()}:
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


def _cursor_exists(lib: _Lib, directory: str, files: Sequence[str], cursor: str, origin: str) -> bool:
    """Whether the entry ``cursor`` names is still in the journal (it may just not match the filters)."""
    journal = _Journal(lib, directory=directory, files=files, origin=origin)
    try:
        return journal.seek_cursor(cursor) and journal.step() and journal.test_cursor(cursor)
    finally:
        journal.close()


def _newest(lib: _Lib, directory: str, files: Sequence[str], origin: str) -> str | None:
    journal = _Journal(lib, directory=directory, files=files, origin=origin)
    try:
        return journal.newest_cursor()
    finally:
        journal.close()
