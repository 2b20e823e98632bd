"""A real systemd service manager for tests: Debian's ``systemd --user``, started in a private mount
namespace, so a test can give it units and ask ``systemctl --user`` about them.

A user manager refuses to start unless the system "was booted with systemd" (``/run/systemd/system``
exists); on a machine whose PID 1 is something else (a container, a CI runner) the manager gets a
tmpfs over ``/run/systemd`` with that directory, in its own mount namespace only: the host's
``/run`` is never touched. Its units live in a directory of the test's, its runtime directory
(``XDG_RUNTIME_DIR``: the ``systemctl --user`` socket) too. Stopped by PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.tools import require_tool, skip_for_host

MANAGER = Path("/lib/systemd/systemd")
START_DEADLINE = 30.0


@dataclass(frozen=True)
class UserManager:
    """A running ``systemd --user`` and how to reach it."""

    runtime_dir: Path
    unit_dir: Path

    def systemctl(self, *args: str) -> list[str]:
        """The argv of ``systemctl --user ARGS`` for this manager (through env, for a child that
        gets a clean environment)."""
        return ["env", f"XDG_RUNTIME_DIR={self.runtime_dir}", "systemctl", "--user", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.systemctl(*args), capture_output=True, text=True, timeout=30, check=False)


@contextmanager
def user_manager(work: Path, units: Mapping[str, str]) -> Iterator[UserManager]:
    """Start ``systemd --user`` with ``units`` (file name → unit file text); skip where this host
    cannot give it a mount namespace (not root, a chroot or container that refuses)."""
    require_tool("systemctl", "systemd")
    if not MANAGER.exists():
        require_tool(str(MANAGER), "systemd")
    unshare = require_tool("unshare", "util-linux")
    if os.geteuid() != 0:
        skip_for_host("not root: a user manager needs its own mount namespace here")
    if not os.path.ismount("/sys/fs/cgroup"):
        skip_for_host("no cgroup hierarchy at /sys/fs/cgroup (a bare chroot): systemd cannot run a manager")
    runtime, config = work / "runtime", work / "config"
    unit_dir = config / "systemd" / "user"
    unit_dir.mkdir(parents=True)
    runtime.mkdir(mode=0o700)
    for name, text in units.items():
        (unit_dir / name).write_text(text)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "XDG_RUNTIME_DIR": str(runtime),
           "XDG_CONFIG_HOME": str(config),
           # (its own words on stderr, into the log, instead of a journal this namespace may lack)
           "SYSTEMD_LOG_TARGET": "console"}
    script = "mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system && exec " + str(MANAGER) + " --user"
    log = (work / "manager.log").open("wb")
    proc = subprocess.Popen([unshare, "-m", "--propagation", "private", "sh", "-c", script],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    manager = UserManager(runtime, unit_dir)
    try:
        deadline = time.monotonic() + START_DEADLINE
        # (not is-system-running: systemctl answers "offline" where PID 1 is not systemd)
        while manager.run("show", "--property=SystemState", "--value").stdout.strip() not in ("running", "degraded"):
            if proc.poll() is not None:
                output = (work / "manager.log").read_text(errors="replace")[-2000:]
                if "unshare" in output or "mount" in output:
                    skip_for_host(f"this host cannot give systemd --user a mount namespace: {output.strip()}")
                raise AssertionError(f"systemd --user exited with {proc.returncode}:\n{output}")
            if time.monotonic() > deadline:
                raise AssertionError(f"systemd --user did not come up:\n{(work / 'manager.log').read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        yield manager
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
