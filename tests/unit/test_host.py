"""ProcHost: the Host protocol over the live machine, shape-compatible with FakeHost, every value
held to psutil's (installed for the tests) on the machine the tests run on; and over a /proc laid
out by the test, for what a live machine does not show on demand."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from normagent.sources.host import CPU_MODES, HostFactUnavailable, ProcHost
from normagent.testing import FakeHost
from tests.support.tools import require_tool, skip_for_host

TEN_YEARS = 10 * 365 * 86400
MB = 2**20


@pytest.fixture(scope="module")
def host() -> ProcHost:
    return ProcHost()


def test_boot_time_is_in_the_past_and_recent_and_psutil_s(host: ProcHost) -> None:
    boot = host.boot_time()
    assert time.time() - TEN_YEARS < boot < time.time()
    assert boot == psutil.boot_time()


def test_cpu_seconds_has_the_node_exporter_modes_grows_and_is_psutil_s(host: ProcHost) -> None:
    before = psutil.cpu_times()._asdict()
    first = host.cpu_seconds()
    after = psutil.cpu_times()._asdict()
    assert set(first) == set(CPU_MODES)  # Linux has all eight
    assert all(before[mode] <= first[mode] <= after[mode] for mode in CPU_MODES), (before, first, after)
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        pass  # burn some CPU so the counters move
    second = host.cpu_seconds()
    assert sum(second.values()) > sum(first.values())


def test_memory_and_disk_values_are_consistent_and_psutil_s(host: ProcHost) -> None:
    mem, vm, swap = host.memory(), psutil.virtual_memory(), psutil.swap_memory()
    assert set(FakeHost().memory()) <= set(mem)  # everything a FakeHost offers, the real one offers
    assert 0 < mem["available"] <= mem["total"]
    assert mem["swap_used"] <= mem["swap_total"]
    assert (mem["total"], mem["swap_total"]) == (vm.total, swap.total)
    assert abs(mem["available"] - vm.available) < 256 * MB and abs(mem["free"] - vm.free) < 256 * MB  # read a moment apart
    assert abs(mem["swap_used"] - swap.used) < 256 * MB
    disk, theirs = host.disk_usage("/"), psutil.disk_usage("/")
    assert set(disk) == set(FakeHost().disk_usage("/"))
    assert 0 <= disk["used"] <= disk["total"] and 0 <= disk["free"] <= disk["total"]
    assert disk["total"] == theirs.total
    assert abs(disk["used"] - theirs.used) < 256 * MB and abs(disk["free"] - theirs.free) < 256 * MB


def test_disk_usage_of_a_missing_path_raises_file_not_found(host: ProcHost, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        host.disk_usage(str(tmp_path / "not-mounted"))


def test_load_and_cpu_count(host: ProcHost) -> None:
    load = host.load_average()
    assert len(load) == 3 and all(v >= 0 for v in load)
    assert host.cpu_count() == psutil.cpu_count(logical=True) >= 1


@pytest.mark.parametrize(
    ("name", "running"),
    [(Path(sys.executable).resolve().name, True), ("normagent-no-such-process", False)],
    ids=["this-interpreter", "absent"],
)
def test_process_running(host: ProcHost, name: str, running: bool) -> None:
    assert host.process_running(name) is running


def test_process_running_answers_as_psutil_for_every_process_s_names(host: ProcHost) -> None:
    """Each running process's name and executable base name, as psutil gives them, is found (a
    long-lived one: a process may end between the two looks); names nobody has are not."""
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        names: set[str] = set()
        for proc in psutil.process_iter(["name", "exe"]):
            names.add(proc.info["name"] or "")
            names.add((proc.info["exe"] or "").rsplit("/", 1)[-1])
        names.discard("")
        assert "sleep" in names
        still = {n for n in names if any(p.info["name"] == n or (p.info["exe"] or "").rsplit("/", 1)[-1] == n
                                         for p in psutil.process_iter(["name", "exe"]))}
        assert {n for n in still if not host.process_running(n)} == set()
        assert not host.process_running("sleep6") and not host.process_running("slee")
    finally:
        sleeper.kill()
        sleeper.wait()


# --------------------------------------------------------------------------------------------
# A /proc laid out by the test


def fake_proc(root: Path, *, stat: str = "cpu  100 2 30 4000 5 6 7 8 9 10\ncpu0 1 2 3 4\nbtime 1764000000\n",
              meminfo: str = "MemTotal:       2000 kB\nMemFree:         500 kB\nMemAvailable:   1200 kB\n"
                             "Buffers:          10 kB\nCached:          100 kB\nSwapTotal:      1000 kB\nSwapFree:        400 kB\n") -> ProcHost:
    root.mkdir(exist_ok=True)
    (root / "stat").write_text(stat)
    (root / "meminfo").write_text(meminfo)
    return ProcHost(str(root))


def process(root: Path, pid: int, comm: str, cmdline: bytes = b"", exe: str | None = None) -> None:
    folder = root / str(pid)
    folder.mkdir(parents=True)
    (folder / "comm").write_text(comm + "\n")
    (folder / "cmdline").write_bytes(cmdline)
    if exe is not None:
        (folder / "exe").symlink_to(exe)


def test_values_come_from_the_files_in_psutil_s_units(tmp_path: Path) -> None:
    host = fake_proc(tmp_path / "proc")
    ticks = os.sysconf("SC_CLK_TCK")
    assert host.boot_time() == 1764000000.0
    assert host.cpu_seconds() == {mode: value / ticks for mode, value in zip(CPU_MODES, (100, 2, 30, 4000, 5, 6, 7, 8))}
    assert host.memory() == {"total": 2000 * 1024.0, "available": 1200 * 1024.0, "free": 500 * 1024.0,
                             "swap_total": 1000 * 1024.0, "swap_used": 600 * 1024.0, "swap_free": 400 * 1024.0}


def test_an_old_kernel_without_mem_available_gets_free_buffers_and_cache(tmp_path: Path) -> None:
    host = fake_proc(tmp_path / "proc", meminfo="MemTotal: 2000 kB\nMemFree: 500 kB\nBuffers: 10 kB\nCached: 100 kB\n"
                                               "SReclaimable: 5 kB\ngarbage line\nOdd: x kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")
    assert host.memory()["available"] == (500 + 10 + 100 + 5) * 1024.0


@pytest.mark.parametrize(
    ("stat", "meminfo", "call", "message"),
    [
        ("cpu 1 2 3 4 5\n", None, "boot_time", "it has no btime line"),
        ("cpu 1 2 3 4 5\nbtime soon\n", None, "boot_time", "could not convert"),
        ("intr 1 2\nbtime 1\n", None, "cpu_seconds", "its first line is not the CPU total"),
        ("cpu 1 2 x 4 5\n", None, "cpu_seconds", "invalid literal"),
        (None, "MemTotal: 2000 kB\nMemFree: 500 kB\n", "memory", "it has no SwapTotal line"),
    ],
)
def test_files_not_as_linux_writes_them_are_a_clear_error(tmp_path: Path, stat: str | None, meminfo: str | None, call: str,
                                                           message: str) -> None:
    kwargs = {k: v for k, v in (("stat", stat), ("meminfo", meminfo)) if v is not None}
    host = fake_proc(tmp_path / "proc", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(HostFactUnavailable, match=message) as err:
        getattr(host, call)()
    assert str(tmp_path / "proc") in str(err.value)


def test_a_missing_proc_is_a_clear_error(tmp_path: Path) -> None:
    host = ProcHost(str(tmp_path / "nothing"))
    for call in ("boot_time", "cpu_seconds", "memory", "process_running"):
        with pytest.raises(HostFactUnavailable, match="cannot"):
            getattr(host, call)(*(["x"] if call == "process_running" else []))


def test_process_names_as_psutil_gives_them(tmp_path: Path) -> None:
    root = tmp_path / "proc"
    host = fake_proc(root)
    process(root, 10, "gnome-keyring-d", b"/usr/bin/gnome-keyring-daemon\x00--start\x00")  # comm cut at 15
    process(root, 11, "chrome-rewrite1", b"/opt/chrome-rewrite123 --type=renderer")  # a title rewritten, no NUL
    process(root, 12, "kworker/0:1")  # a kernel thread: no cmdline, no exe
    process(root, 13, "python3", b"/usr/bin/python3\x00x.py\x00", exe=str(tmp_path / "bin" / "clamd (deleted)"))
    process(root, 14, "short-name-here", b"/usr/bin/other-program\x00")  # 15 long, cmdline not its start
    (root / "self").mkdir()  # not a process
    (root / "15").mkdir()  # ended while listed: nothing in it

    assert host.process_running("gnome-keyring-daemon") and not host.process_running("gnome-keyring-d")
    assert host.process_running("chrome-rewrite123")
    assert host.process_running("kworker/0:1")
    assert host.process_running("clamd") and host.process_running("python3")  # the executable's name, "(deleted)" off
    assert host.process_running("short-name-here") and not host.process_running("other-program")
    assert not host.process_running("self") and not host.process_running("")


PROBE = """
from normagent.sources.host import HostFactUnavailable, ProcHost
try:
    ProcHost().boot_time()
except HostFactUnavailable as exc:
    print("unavailable:", exc)
"""


def test_hidden_proc_stat_is_a_clear_error() -> None:
    """Under systemd's ProcSubset=pid (/proc mounted with subset=pid) the error names the cause."""
    if os.geteuid() != 0:
        skip_for_host("not root: mounting a procfs with subset=pid needs root")
    unshare = require_tool("unshare", "util-linux")
    script = f"mount -t proc -o subset=pid proc /proc && exec {sys.executable} -c '{PROBE}'"
    proc = subprocess.run([unshare, "-m", "-p", "-f", "sh", "-c", script], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0 and not proc.stdout:
        # A chroot (its root is no mount point: "cannot change root filesystem propagation"), a
        # container without CAP_SYS_ADMIN or a kernel older than 5.8 refuses before the probe runs.
        skip_for_host(f"this kernel, container or chroot cannot give a private mount namespace with a subset=pid procfs: {proc.stderr.strip()}")
    assert "unavailable: cannot read the boot time from /proc/stat" in proc.stdout
    assert "ProcSubset=pid" in proc.stdout


def test_host_fact_unavailable_is_an_os_error() -> None:
    """Callers that already handle OSError (the scheduler) treat it as an I/O failure."""
    assert issubclass(HostFactUnavailable, OSError)
