"""Bad luck for the state directory, made real: a tiny filesystem, a full one, and a power cut.

- ``small_filesystem(size)`` mounts a real tmpfs of that size (root only; the test is skipped,
  saying why, where mounting is impossible).
- ``fill(folder)`` takes every free byte with a ballast file; ``Ballast.remove()`` gives them back.
- ``limit_pages(ledger)`` makes SQLite answer "database or disk is full" on any machine.
- ``power_cut(trace, files)`` replays an ``strace`` of a process that wrote the ledger and
  returns the files as they would be after a power cut at the end of the trace: only what was
  made durable (``fsync``/``fdatasync`` of the file, and of its directory for a new file) survives.
  SIGKILL is no model for this: the kernel keeps writing what a killed process left in the page
  cache; a power cut does not.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


from tests.support.tools import require_tool, skip_for_host

from normagent.ledger import Ledger


@contextlib.contextmanager
def small_filesystem(where: Path, size: str = "512k") -> Iterator[Path]:
    """A real filesystem of ``size`` mounted at ``where`` for the duration of the block."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        skip_for_host(f"not root: a {size} tmpfs cannot be mounted, so the real small-filesystem case cannot run")
    mount = require_tool("mount", "mount")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        skip_for_host(f"this host refuses a {size} tmpfs ({done.stderr.strip()}): the real small-filesystem case cannot run")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


@dataclass
class Ballast:
    """A file holding every byte that was free; ``remove()`` frees them again."""

    path: Path

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def fill(folder: Path) -> Ballast:
    """Take every free byte of ``folder``'s filesystem (the ledger's next growth will fail)."""
    ballast = Ballast(folder / "ballast")
    fd = os.open(ballast.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 16, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return ballast


def limit_pages(ledger: Ledger, extra: int = 0) -> None:
    """Let the ledger's database grow by ``extra`` pages at most from now on.

    SQLite then fails exactly as on a full disk (SQLITE_FULL, "database or disk is full"), at once
    and on any machine: the deterministic twin of ``small_filesystem`` + ``fill``. It reaches into
    the ledger's connection (under its lock, so a running scheduler is no problem) because that is
    where SQLite keeps the limit.
    """
    with ledger._lock:
        pages = ledger._conn.execute("PRAGMA page_count").fetchone()[0]
        ledger._conn.execute(f"PRAGMA max_page_count = {pages + extra}")


# --------------------------------------------------------------------------------------------
# power cut


def strace_usable() -> str | None:
    """None if ``strace`` can trace a child here, else why not (a host property: a container that
    forbids ptrace). A missing strace is no such property: scripts/servers installs it."""
    strace = require_tool("strace", "strace")
    done = subprocess.run([strace, "-o", os.devnull, "true"], capture_output=True, text=True)
    if done.returncode != 0:
        return f"strace cannot trace here: {done.stderr.strip()[:200]}"
    return None


def traced(argv: list[str], trace: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` under strace, recording the calls that write or make durable (paths via -y)."""
    calls = "pwrite64,write,pwritev,ftruncate,fsync,fdatasync,fallocate"
    return subprocess.run(
        ["strace", "-o", str(trace), "-y", "-xx", "-s", "1000000", "-e", f"trace={calls}", *argv],
        capture_output=True, text=True, **kwargs,  # type: ignore[call-overload]
    )


_CALL = re.compile(r"^(?P<name>\w+)\((?P<fd>\d+)<(?P<path>[^>]*)>(?P<rest>.*)\)\s+=\s+(?P<ret>-?\d+)")
_HEX = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text.replace("\\x", ""))


@dataclass
class _File:
    durable: bytearray  # what a power cut leaves
    exists: bool  # its name is durable
    pending: list[tuple[str, int, bytes]] = field(default_factory=list)  # ("write", offset, data) | ("truncate", size, b"")
    seen: bool = False  # written during the trace (so created by then, if it did not exist)

    def sync(self) -> None:
        for op, at, data in self.pending:
            if op == "write":
                if len(self.durable) < at:
                    self.durable.extend(b"\0" * (at - len(self.durable)))
                self.durable[at : at + len(data)] = data
            else:
                del self.durable[at:]
        self.pending.clear()


def sync_points(trace: Path) -> list[int]:
    """The number of trace lines up to and including each fsync/fdatasync: the moments worth a power cut."""
    return [i + 1 for i, line in enumerate(trace.read_text().splitlines()) if re.match(r"f(data)?sync\(", line)]


def power_cut(trace: Path, before: dict[Path, bytes | None], upto: int | None = None) -> dict[Path, bytes | None]:
    """The files of ``before`` (their durable content when the trace began; None: absent) after a
    power cut at the end of ``trace`` (or after its first ``upto`` lines): each keeps only the writes
    that an fsync/fdatasync of it made durable, and a file created meanwhile exists only if its
    directory was synced after."""
    files = {path: _File(bytearray(data or b""), exists=data is not None) for path, data in before.items()}
    for line in trace.read_text().splitlines()[:upto]:
        m = _CALL.match(line)
        if m is None or int(m["ret"]) < 0:
            continue
        path = Path(_unhex(m["path"]).decode())
        name = m["name"]
        if name in ("fsync", "fdatasync"):
            if path in files:
                files[path].sync()
            for f_path, f in files.items():
                if f_path.parent == path and f.seen:
                    f.exists = True  # the directory entry of a file created before now
            continue
        f = files.get(path)
        if f is None:
            continue
        f.seen = True
        if name == "pwrite64":
            found = _HEX.search(m["rest"])
            assert found is not None, line[:120]
            f.pending.append(("write", int(m["rest"].rsplit(",", 1)[1]), _unhex(found.group(1))[: int(m["ret"])]))
        elif name == "ftruncate":
            f.pending.append(("truncate", int(m["rest"].rsplit(",", 1)[1]), b""))
        else:
            raise AssertionError(f"the power-cut model does not know {name} on {path}: {line[:120]}")
    return {path: bytes(f.durable) if f.exists else None for path, f in files.items()}
