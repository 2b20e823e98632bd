"""sd_notify over a real AF_UNIX datagram socket, as systemd's manager would receive it."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from normagent import systemd


class Manager:
    """The receiving end of $NOTIFY_SOCKET: a bound datagram socket, as PID 1 holds it."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.environ = {"NOTIFY_SOCKET": env_value}

    def receive(self) -> list[str]:
        data = self.sock.recv(4096)
        return data.decode().split("\n")


@pytest.fixture(params=["path", "abstract"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Manager]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(2)
    if request.param == "path":
        path = tmp_path / "notify"
        sock.bind(str(path))
        value = str(path)
    else:
        name = f"normagent-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        value = "@" + name
    try:
        yield Manager(sock, value)
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda env: systemd.notify("READY=1", "STATUS=collecting with 3 collectors", environ=env),
         ["READY=1", "STATUS=collecting with 3 collectors"]),
        (lambda env: systemd.ready("up", environ=env), ["READY=1", "STATUS=up"]),
        (lambda env: systemd.ready(environ=env), ["READY=1"]),
        (lambda env: systemd.watchdog(environ=env), ["WATCHDOG=1"]),
        (lambda env: systemd.stopping(environ=env), ["STOPPING=1"]),
        (lambda env: systemd.status("reloading config", environ=env), ["STATUS=reloading config"]),
    ],
    ids=["notify", "ready-status", "ready", "watchdog", "stopping", "status"],
)
def test_message_arrives_as_one_datagram(
    manager: Manager, call: Callable[[Mapping[str, str]], bool], expected: list[str]
) -> None:
    assert call(manager.environ) is True
    assert manager.receive() == expected


def test_reloading_carries_a_monotonic_timestamp(manager: Manager) -> None:
    """systemd ≥ 253 matches RELOADING=1 to the request by MONOTONIC_USEC."""
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert systemd.reloading(environ=manager.environ)
    first, second = manager.receive()
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC" and int(value) >= before


def test_newline_in_a_value_cannot_inject_an_assignment(manager: Manager) -> None:
    assert systemd.status("line one\nREADY=1", environ=manager.environ)
    assert manager.receive() == ["STATUS=line one READY=1"]


def test_assignment_without_equals_is_a_programming_error(manager: Manager) -> None:
    with pytest.raises(ValueError, match="has no '='"):
        systemd.notify("READY", environ=manager.environ)


@pytest.mark.parametrize("value", [None, "", "relative/socket", "@", "vsock:2:1234"])
def test_outside_systemd_every_call_is_a_quiet_no_op(value: str | None) -> None:
    environ = {} if value is None else {"NOTIFY_SOCKET": value}
    with capture_logs() as logs:
        assert systemd.ready("up", environ=environ) is False
        assert systemd.watchdog(environ=environ) is False
    assert logs == []


def test_unreachable_socket_is_logged_and_returns_false(tmp_path: Path) -> None:
    environ = {"NOTIFY_SOCKET": str(tmp_path / "gone")}
    with capture_logs() as logs:
        assert systemd.ready(environ=environ) is False
    assert logs[0]["event"] == "sd_notify_failed"
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["message"] == "READY=1"


def test_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(2)
    sock.bind(str(tmp_path / "notify"))
    with sock:
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        assert systemd.notify("READY=1")
        assert sock.recv(100) == b"READY=1"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's watchdog
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "500000"}, 0.25),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(environ: dict[str, str], expected: float | None) -> None:
    assert systemd.watchdog_interval(environ, pid=4242) == expected


def test_watchdog_pid_defaults_to_this_process() -> None:
    environ = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert systemd.watchdog_interval(environ) == 1.0
