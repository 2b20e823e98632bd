"""The systemd unit as operators install it: hardening score, ``verify``, sysusers/tmpfiles, and the
Type=notify contract kept by a real ``normagent run`` (READY, WATCHDOG, RELOADING, STOPPING).

``systemd-analyze verify`` checks that ExecStart= exists. The committed unit names the operators'
path (/opt/normagent/bin/normagent), which a test machine does not have, so the unchanged unit is
verified inside a throw-away root (``--root``) holding the system's units and normagent at that path.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, Agent, normagent_command, server_env, wait_until
from tests.support.service import UNIT, service_environment, unit_settings
from tests.support.tools import require_tool

pytestmark = pytest.mark.integration

SYSTEMD = REPO / "systemd"
MAX_EXPOSURE = 2.0


@pytest.fixture(scope="module")
def analyze() -> str:
    return require_tool("systemd-analyze", "systemd")


def test_security_exposure_is_at_most_2(analyze: str) -> None:
    result = subprocess.run([analyze, "security", "--offline=yes", str(UNIT)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for normagent\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-2000:]
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_verify_prints_nothing(analyze: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    units = Path("/usr/lib/systemd/system")
    if not units.is_dir():
        units = Path("/lib/systemd/system")
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True)
    settings = unit_settings()
    for key in ("ExecStart", "ExecReload"):
        for command in settings.get(key, []):
            binary = command.lstrip("-@:+!").split()[0]
            target = root / binary.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("#!/bin/sh\nexit 0\n")
            target.chmod(0o755)
    installed = root / "etc/systemd/system/normagent.service"
    installed.parent.mkdir(parents=True)
    shutil.copyfile(UNIT, installed)  # byte for byte what operators install
    result = subprocess.run(
        [analyze, "verify", f"--root={root}", "/etc/systemd/system/normagent.service"],
        capture_output=True, text=True, timeout=60,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_unit_keeps_the_promises_the_agent_relies_on() -> None:
    settings = unit_settings()
    expected = {
        "Type": ["notify"],
        "NotifyAccess": ["main"],
        "Restart": ["on-failure"],
        "RestartPreventExitStatus": ["78"],
        "User": ["normagent"],
        "StateDirectory": ["normagent"],
        "StateDirectoryMode": ["0700"],
        "ExecReload": ["/bin/kill -HUP $MAINPID"],
    }
    assert {key: settings.get(key) for key in expected} == expected
    assert set(settings["SupplementaryGroups"][0].split()) == {"adm", "systemd-journal"}
    assert settings["ExecStart"][0].split()[1:] == ["run"]
    assert settings.get("WatchdogSec"), "the agent feeds a watchdog; the unit must ask for one"
    assert service_environment() == {"PYTHONOPTIMIZE": "2"}
    exported = (REPO / "scripts" / "agent").read_text()
    assert all(f"export {key}={value}\n" in exported for key, value in service_environment().items()), (
        "scripts/agent runs the agent as the service does"
    )
    # psutil reads the boot time from /proc/stat, which ProcSubset=pid hides.
    assert "pid" not in settings.get("ProcSubset", [])


def test_sysusers_and_tmpfiles_create_the_user_config_and_state_directories(tmp_path: Path) -> None:
    sysusers = require_tool("systemd-sysusers", "systemd")
    tmpfiles = require_tool("systemd-tmpfiles", "systemd")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "usr/lib/sysusers.d").mkdir(parents=True)
    (root / "usr/lib/tmpfiles.d").mkdir(parents=True)
    shutil.copyfile(SYSTEMD / "normagent.sysusers.conf", root / "usr/lib/sysusers.d/normagent.conf")
    shutil.copyfile(SYSTEMD / "normagent.tmpfiles.conf", root / "usr/lib/tmpfiles.d/normagent.conf")

    subprocess.run([sysusers, f"--root={root}"], check=True, capture_output=True, timeout=60)
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    group = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
    user = passwd["normagent"]
    assert user[5:] == ["/var/lib/normagent", "/usr/sbin/nologin"]
    assert int(user[2]) < 1000, "a system user"

    subprocess.run([tmpfiles, f"--root={root}", "--create"], check=True, capture_output=True, timeout=60)
    config_dir = (root / "etc/normagent").stat()
    assert oct(config_dir.st_mode & 0o7777) == "0o750"
    assert (config_dir.st_uid, config_dir.st_gid) == (0, int(group["normagent"][2]))
    state_dir = (root / "var/lib/normagent").stat()
    assert oct(state_dir.st_mode & 0o7777) == "0o700"
    assert (state_dir.st_uid, state_dir.st_gid) == (int(user[2]), int(group["normagent"][2]))


# ------------------------------------------------------------------------------------------------
# the Type=notify contract, as systemd would see it


class NotifySocket:
    """The service manager's end of $NOTIFY_SOCKET: an abstract datagram socket."""

    def __init__(self) -> None:
        self.name = f"normagent-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.extend(self.sock.recv(4096).decode().split("\n"))
            except TimeoutError:
                return self.messages

    def seen(self, message: str, after: int = 0) -> bool:
        return message in self.drain()[after:]


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    manager = NotifySocket()
    try:
        yield manager
    finally:
        manager.sock.close()


@pytest.mark.slow
def test_agent_speaks_sd_notify(start_agent: Callable[..., Agent], notify_socket: NotifySocket) -> None:
    agent = start_agent(env={"NOTIFY_SOCKET": "@" + notify_socket.name, "WATCHDOG_USEC": "2000000"})
    process = agent.process
    wait_until("READY=1", lambda: notify_socket.seen("READY=1"), process=process, timeout=10)
    assert any(m.startswith("STATUS=") for m in notify_socket.messages)
    wait_until("a WATCHDOG=1 ping (every second for WatchdogSec=2s)", lambda: notify_socket.seen("WATCHDOG=1"), process=process, timeout=10)

    mark = len(notify_socket.messages)
    process.signal(signal.SIGHUP)
    wait_until("RELOADING=1 after SIGHUP", lambda: notify_socket.seen("RELOADING=1", mark), process=process, timeout=10)
    reloading = notify_socket.messages.index("RELOADING=1", mark)
    wait_until("READY=1 after the reload", lambda: notify_socket.seen("READY=1", reloading), process=process, timeout=10)

    mark = len(notify_socket.messages)
    # More than the agent's own shutdown_grace (10 s): a collector still running at SIGTERM may
    # take all of it on a busy machine, and a kill at the same moment is no clean stop.
    assert process.stop(timeout=30) == 0
    assert notify_socket.seen("STOPPING=1", mark)


def test_bad_config_exits_78_so_systemd_stops_restarting(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[web]\nlisten = "nowhere"\n')
    result = subprocess.run(
        [*normagent_command(), "run", "--config", str(config)], capture_output=True, text=True, timeout=60, env=server_env()
    )
    assert result.returncode == 78, result.stderr
    assert "web.listen" in result.stderr


REPORT_UNIT = SYSTEMD / "normagent-report.service"
REPORT_TIMER = SYSTEMD / "normagent-report.timer"


def test_report_units_verify(analyze: str, tmp_path: Path) -> None:
    """The report's service and timer as operators install them: ``verify`` says nothing."""
    root = tmp_path / "root"
    units = Path("/usr/lib/systemd/system")
    if not units.is_dir():
        units = Path("/lib/systemd/system")
    shutil.copytree(units, root / "usr/lib/systemd/system", symlinks=True)
    binary = root / "opt/normagent/bin/normagent"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    for unit in (REPORT_UNIT, REPORT_TIMER):
        target = root / "etc/systemd/system" / unit.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(unit, target)
    result = subprocess.run(
        [analyze, "verify", f"--root={root}", "/etc/systemd/system/normagent-report.timer", "/etc/systemd/system/normagent-report.service"],
        capture_output=True, text=True, timeout=60,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_report_timer_runs_last_months_report_on_the_first(analyze: str) -> None:
    service, timer = unit_settings(REPORT_UNIT), unit_settings(REPORT_TIMER)
    assert service["Type"] == ["oneshot"] and service["User"] == ["normagent"]
    assert service["ExecStart"][0].split()[1:] == ["report", "--send"]  # no --month: the month before
    assert timer["OnCalendar"] == ["*-*-01 06:00:00"] and timer["Persistent"] == ["yes"]
    result = subprocess.run([analyze, "calendar", "--iterations=2", timer["OnCalendar"][0]], capture_output=True, text=True, timeout=60)
    days = re.findall(r"\d{4}-\d{2}-(\d{2}) 06:00:00", result.stdout)
    assert days[:2] == ["01", "01"], result.stdout
