"""The machine's own facts from ``/proc`` and the system calls: boot time, CPU, load, memory,
filesystems, processes.

``ProcHost`` implements the ``Host`` protocol of ``normagent.model`` and is the only place in
normagent that reads them. Collectors receive it as ``ctx.host`` and tests give them
``normagent.testing.FakeHost`` instead, so a collector's numbers never depend on the test machine.

Values have psutil's units (seconds, bytes) and meanings, read the way psutil reads them on Linux
(psutil 7: the same files, fields and formulas); ``tests/unit/test_host.py`` holds every value to
psutil's on the machine the tests run on. Why not psutil itself: importing it (its modules, named
tuples and C extension) and its process cache cost some 0.9 MB of the idle agent's resident memory
(issue 15) for seven facts that are a few lines of ``/proc`` each. Missing ``/proc`` files are
reported as ``HostFactUnavailable`` with the reason spelled out, because the usual cause is a
systemd sandbox setting, not a bug.

Imports only the standard library.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")

# The modes node_exporter reports for node_cpu_seconds_total, in /proc/stat's order. The two that
# follow them there ("guest", "guest_nice") are already counted in "user" and "nice".
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
COMM_BYTES = 15  # the kernel cuts a process's name (comm) to 15 bytes


class HostFactUnavailable(OSError):
    """A fact about the host cannot be read (``/proc`` hidden or unreadable, or not as Linux
    writes it)."""


class ProcHost:
    """The ``Host`` protocol read from the live machine's ``/proc`` (``proc``: another procfs, or
    a directory of files laid out as one, for the tests).

    Filesystem usage takes any path, so a collector can still point at a host root mounted
    elsewhere.
    """

    def __init__(self, proc: str = "/proc") -> None:
        self._proc = proc

    def boot_time(self) -> float:
        """Unix time the kernel booted (``btime`` in ``/proc/stat``).

        Raises:
            HostFactUnavailable: ``/proc/stat`` cannot be read, e.g. under systemd's
                ``ProcSubset=pid``, which hides it, or has no ``btime`` line.
        """
        path = f"{self._proc}/stat"
        try:
            with open(path, "rb") as f:
                for line in f:
                    if line.startswith(b"btime"):
                        return float(line.split()[1])
        except (OSError, IndexError, ValueError) as exc:
            raise HostFactUnavailable(
                f"cannot read the boot time from {path} ({exc}); a systemd unit with "
                "ProcSubset=pid hides it: remove that setting for normagent"
            ) from exc
        raise HostFactUnavailable(f"cannot read the boot time from {path}: it has no btime line")

    def cpu_seconds(self) -> Mapping[str, float]:
        """Seconds all CPUs together spent in each mode since boot (the ``cpu`` line of
        ``/proc/stat``, in clock ticks).

        Keys: the ``CPU_MODES`` the kernel counts (on any kernel since 2.6.11, all eight).
        """

        def read() -> dict[str, float]:
            with open(f"{self._proc}/stat", "rb") as f:
                fields = f.readline().split()
            if not fields or fields[0] != b"cpu" or len(fields) < 5:
                raise ValueError(f"its first line is not the CPU total: {b' '.join(fields[:3])!r}")
            ticks = os.sysconf("SC_CLK_TCK")
            return {mode: int(value) / ticks for mode, value in zip(CPU_MODES, fields[1:])}

        return self._read("CPU times", f"{self._proc}/stat", read)

    def cpu_count(self) -> int:
        """Logical CPUs online (at least 1)."""
        return os.cpu_count() or 1

    def load_average(self) -> tuple[float, float, float]:
        """The 1, 5 and 15 minute load averages."""
        return self._read("load average", "/proc/loadavg", os.getloadavg)

    def memory(self) -> Mapping[str, float]:
        """Memory and swap in bytes (``/proc/meminfo``).

        Keys: ``total``, ``available`` (MemAvailable: what can be given to programs without
        swapping; on a kernel before 3.14, which lacks it, free + buffers + page cache),
        ``free``, ``swap_total``, ``swap_used``, ``swap_free``.
        """
        info = self._read("memory", f"{self._proc}/meminfo", self._meminfo)
        try:
            total, free, swap_total, swap_free = info["MemTotal"], info["MemFree"], info["SwapTotal"], info["SwapFree"]
        except KeyError as exc:
            raise HostFactUnavailable(f"cannot read the memory from {self._proc}/meminfo: it has no {exc.args[0]} line") from None
        available = info.get("MemAvailable")
        if available is None:
            available = free + info.get("Buffers", 0) + info.get("Cached", 0) + info.get("SReclaimable", 0)
        return {
            "total": float(total),
            "available": float(available),
            "free": float(free),
            "swap_total": float(swap_total),
            "swap_used": float(swap_total - swap_free),
            "swap_free": float(swap_free),
        }

    def disk_usage(self, path: str) -> Mapping[str, float]:
        """Usage of the filesystem that holds ``path``, in bytes (``statvfs``).

        Keys: ``total`` (f_blocks), ``used`` (f_blocks − f_bfree), ``free`` (f_bavail: what an
        unprivileged user may still write). ``total − used`` is the free space including the part
        reserved for root.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            PermissionError: ``path`` cannot be reached.
        """
        st = os.statvfs(path)
        return {
            "total": float(st.f_blocks * st.f_frsize),
            "used": float((st.f_blocks - st.f_bfree) * st.f_frsize),
            "free": float(st.f_bavail * st.f_frsize),
        }

    def process_running(self, name: str) -> bool:
        """Whether a process whose name or executable base name is ``name`` runs now.

        The name is the kernel's (``comm``, at most 15 bytes); where it is that long, the base name
        of the command line's first word when it begins with it, as psutil's ``name()`` gives it.
        A process that ends while it is looked at, or whose executable is not this user's to see,
        is judged by what could be read.
        """
        try:
            pids = [entry for entry in os.listdir(self._proc) if entry.isdigit()]
        except OSError as exc:
            raise HostFactUnavailable(f"cannot list the processes in {self._proc}: {exc}") from exc
        for pid in pids:
            base = f"{self._proc}/{pid}"
            comm = _read_text(f"{base}/comm").removesuffix("\n")
            if len(comm) >= COMM_BYTES:  # psutil counts characters: a non-ASCII name of 15 bytes is not extended
                program = os.path.basename(_command_line(_read_text(f"{base}/cmdline")))
                if program.startswith(comm):
                    comm = program
            if comm and comm == name:
                return True
            try:
                exe = os.readlink(f"{base}/exe").split("\x00")[0]
            except OSError:  # ended, a kernel thread, or another user's
                continue
            if exe.endswith(" (deleted)") and not os.path.exists(exe):
                exe = exe[: -len(" (deleted)")]
            if exe and os.path.basename(exe) == name:
                return True
        return False

    def _meminfo(self) -> dict[str, int]:
        """``/proc/meminfo`` as bytes by field name; a line not as the kernel writes it is passed over."""
        info: dict[str, int] = {}
        with open(f"{self._proc}/meminfo", "rb") as f:
            for line in f:
                key, _, rest = line.partition(b":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    unit = 1024 if parts[1:2] == [b"kB"] else 1
                    info[key.decode("ascii", "replace")] = int(parts[0]) * unit
        return info

    def _read(self, what: str, path: str, read: Callable[[], T]) -> T:
        try:
            return read()
        except (OSError, ValueError) as exc:
            raise HostFactUnavailable(f"cannot read the {what} from {path}: {exc}") from exc


def _read_text(path: str) -> str:
    """A /proc file's text, or "" for a process that ended or cannot be read."""
    try:
        with open(path, "rb") as f:
            return os.fsdecode(f.read())
    except OSError:
        return ""


def _command_line(text: str) -> str:
    """The first word of a process's command line, as psutil splits ``/proc/<pid>/cmdline``: at NULs,
    or at spaces where a process rewrote its title into one NUL-less string."""
    if not text:
        return ""
    sep = "\x00" if text.endswith("\x00") else " "
    words = text.removesuffix(sep).split(sep)
    if sep == "\x00" and len(words) == 1 and " " in text:
        words = text.split(" ")
    return words[0]
