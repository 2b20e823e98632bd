"""The machine's own facts through psutil: boot time, CPU, load, memory, filesystems, processes.

``PsutilHost`` implements the ``Host`` protocol of ``normagent.model`` and is the only place in
normagent that calls psutil. Collectors receive it as ``ctx.host`` and tests give them
``normagent.testing.FakeHost`` instead, so a collector's numbers never depend on the test machine.

Values keep psutil's units (seconds, bytes) and meanings; the keys are documented per method so a
fake can return the same shape. Missing ``/proc`` files are reported as ``HostFactUnavailable``
with the reason spelled out, because the usual cause is a systemd sandbox setting, not a bug.

Imports only the standard library, psutil and normagent.errors/model/clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import psutil

T = TypeVar("T")

# The modes node_exporter reports for node_cpu_seconds_total. psutil's "guest" and "guest_nice"
# are already contained in "user" and "nice" on Linux, so they are left out here as there.
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


class HostFactUnavailable(OSError):
    """A fact about the host cannot be read (``/proc`` hidden or unreadable)."""


class PsutilHost:
    """The ``Host`` protocol over psutil, reading the live machine.

    psutil reads ``/proc`` of the machine it runs on; there is deliberately no "procfs root"
    switch, because psutil's is a process-wide global. Filesystem usage takes any path, so a
    collector can still point at a host root mounted elsewhere.
    """

    def boot_time(self) -> float:
        """Unix time the kernel booted (``btime`` in ``/proc/stat``).

        Raises:
            HostFactUnavailable: ``/proc/stat`` cannot be read, e.g. under systemd's
                ``ProcSubset=pid``, which hides it.
        """
        try:
            return float(psutil.boot_time())
        except (OSError, RuntimeError) as exc:
            raise HostFactUnavailable(
                f"cannot read the boot time from /proc/stat ({exc}); a systemd unit with "
                "ProcSubset=pid hides it: remove that setting for normagent"
            ) from exc

    def cpu_seconds(self) -> Mapping[str, float]:
        """Seconds all CPUs together spent in each mode since boot.

        Keys: the ``CPU_MODES`` psutil knows on this platform (on Linux all eight).
        """
        times = self._proc("CPU times", "/proc/stat", lambda: psutil.cpu_times()._asdict())
        return {mode: float(times[mode]) for mode in CPU_MODES if mode in times}

    def cpu_count(self) -> int:
        """Logical CPUs (at least 1)."""
        return int(psutil.cpu_count(logical=True) or 1)

    def load_average(self) -> tuple[float, float, float]:
        """The 1, 5 and 15 minute load averages."""
        one, five, fifteen = self._proc("load average", "/proc/loadavg", psutil.getloadavg)
        return (float(one), float(five), float(fifteen))

    def memory(self) -> Mapping[str, float]:
        """Memory and swap in bytes.

        Keys: ``total``, ``available`` (MemAvailable: what can be given to programs without
        swapping), ``free``, ``swap_total``, ``swap_used``, ``swap_free``.
        """
        mem = self._proc("memory", "/proc/meminfo", psutil.virtual_memory)
        swap = self._proc("swap", "/proc/meminfo", psutil.swap_memory)
        return {
            "total": float(mem.total),
            "available": float(mem.available),
            "free": float(mem.free),
            "swap_total": float(swap.total),
            "swap_used": float(swap.used),
            "swap_free": float(swap.free),
        }

    def disk_usage(self, path: str) -> Mapping[str, float]:
        """Usage of the filesystem that holds ``path``, in bytes, as psutil reports it.

        Keys: ``total`` (f_blocks), ``used`` (f_blocks − f_bfree), ``free`` (f_bavail: what an
        unprivileged user may still write). ``total − used`` is the free space including the part
        reserved for root.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            PermissionError: ``path`` cannot be reached.
        """
        usage = psutil.disk_usage(path)
        return {"total": float(usage.total), "used": float(usage.used), "free": float(usage.free)}

    def process_running(self, name: str) -> bool:
        """Whether a process whose name (``comm``) or executable base name is ``name`` runs now."""
        for proc in psutil.process_iter(["name", "exe"]):
            info = proc.info
            exe = info.get("exe") or ""
            if info.get("name") == name or (exe and exe.rsplit("/", 1)[-1] == name):
                return True
        return False

    @staticmethod
    def _proc(what: str, path: str, read: Callable[[], T]) -> T:
        try:
            return read()
        except (OSError, RuntimeError) as exc:
            raise HostFactUnavailable(f"cannot read the {what} from {path}: {exc}") from exc
