"""PsutilHost: the Host protocol over the live machine, shape-compatible with FakeHost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from normagent.sources.host import CPU_MODES, HostFactUnavailable, PsutilHost
from normagent.testing import FakeHost
from tests.support.tools import require_tool, skip_for_host

TEN_YEARS = 10 * 365 * 86400


@pytest.fixture(scope="module")
def host() -> PsutilHost:
    return PsutilHost()


def test_boot_time_is_in_the_past_and_recent(host: PsutilHost) -> None:
    boot = host.boot_time()
    assert time.time() - TEN_YEARS < boot < time.time()


def test_cpu_seconds_has_the_node_exporter_modes_and_grows(host: PsutilHost) -> None:
    first = host.cpu_seconds()
    assert set(first) == set(CPU_MODES)  # Linux has all eight
    assert all(v >= 0 for v in first.values())
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        pass  # burn some CPU so the counters move
    second = host.cpu_seconds()
    assert sum(second.values()) > sum(first.values())


def test_memory_and_disk_values_are_consistent(host: PsutilHost) -> None:
    mem = host.memory()
    assert set(FakeHost().memory()) <= set(mem)  # everything a FakeHost offers, the real one offers
    assert 0 < mem["available"] <= mem["total"]
    assert mem["swap_used"] <= mem["swap_total"]
    disk = host.disk_usage("/")
    assert set(disk) == set(FakeHost().disk_usage("/"))
    assert 0 <= disk["used"] <= disk["total"] and 0 <= disk["free"] <= disk["total"]


def test_disk_usage_of_a_missing_path_raises_file_not_found(host: PsutilHost, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        host.disk_usage(str(tmp_path / "not-mounted"))


def test_load_and_cpu_count(host: PsutilHost) -> None:
    load = host.load_average()
    assert len(load) == 3 and all(v >= 0 for v in load)
    assert host.cpu_count() >= 1


@pytest.mark.parametrize(
    ("name", "running"),
    [(Path(sys.executable).resolve().name, True), ("normagent-no-such-process", False)],
    ids=["this-interpreter", "absent"],
)
def test_process_running(host: PsutilHost, name: str, running: bool) -> None:
    assert host.process_running(name) is running


PROBE = """
from normagent.sources.host import HostFactUnavailable, PsutilHost
try:
    PsutilHost().boot_time()
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
