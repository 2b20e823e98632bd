"""run_command: real processes, their outcomes as values, and nothing left behind."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from normagent.sources.command import CommandResult, child_environment, run_command


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize(
    ("argv", "returncode", "stdout", "stderr"),
    [
        (["echo", "hello"], 0, b"hello\n", b""),
        ([sys.executable, "-c", "import sys; sys.stderr.write('oops'); sys.exit(3)"], 3, b"", b"oops"),
        ([sys.executable, "-c", "import sys; sys.stdout.buffer.write(bytes(range(256)))"], 0, bytes(range(256)), b""),
        (["true"], 0, b"", b""),
    ],
    ids=["stdout", "exit-code-and-stderr", "binary-output", "silent"],
)
def test_finished_commands_report_code_and_output(argv: list[str], returncode: int, stdout: bytes, stderr: bytes) -> None:
    result = run_command(argv, timeout=10)
    assert (result.returncode, result.stdout, result.stderr, result.error) == (returncode, stdout, stderr, "")
    assert result.ok is (returncode == 0)
    assert result.argv == tuple(argv)


def test_missing_program_is_a_value_not_an_exception() -> None:
    result = run_command(["normagent-no-such-program-xyz"])
    assert (result.returncode, result.error, result.ok) == (None, "not found", False)


def test_program_without_execute_permission_is_permission_denied(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")
    # No execute bit anywhere: execve refuses even root.
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    result = run_command([str(script)])
    assert (result.returncode, result.error) == (None, "permission denied")


def test_timeout_kills_the_whole_process_group() -> None:
    """A helper forked into the background dies with the command when the timeout hits (and its
    open stdout does not keep run_command waiting: the helper would sleep for an hour)."""
    results: list[CommandResult] = []
    caller = threading.Thread(target=lambda: results.append(run_command(["sh", "-c", "sleep 3600 & echo $!; wait"], timeout=0.5)))
    caller.start()
    caller.join(60)
    assert not caller.is_alive(), "run_command kept waiting after its timeout"
    [result] = results
    assert (result.returncode, result.error) == (None, "timed out after 0.5s")
    helper = int(result.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _alive(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(helper)


def test_a_stop_kills_the_command_and_its_helpers_and_is_an_error() -> None:
    """The agent's shutdown flag: a command in flight (and a helper it forked) is killed once the
    flag is up, well before its own timeout, and the result says so (no output is taken as whole)."""
    stop = threading.Event()
    results: list[CommandResult] = []
    caller = threading.Thread(
        target=lambda: results.append(run_command(["sh", "-c", "sleep 3600 & echo $!; wait"], timeout=3600, stop=stop.is_set))
    )
    caller.start()
    stop.set()
    caller.join(60)
    assert not caller.is_alive(), "run_command kept waiting after the stop"
    [result] = results
    assert (result.returncode, result.ok, result.error) == (None, False, "stopped: the agent is shutting down")
    if result.stdout.split():  # the helper was started before the stop was seen
        helper = int(result.stdout.split()[0])
        deadline = time.monotonic() + 5
        while _alive(helper) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(helper)


def test_a_stop_that_never_comes_changes_nothing() -> None:
    result = run_command(["sh", "-c", "echo out; echo err >&2; exit 3"], stop=lambda: False)

    assert (result.returncode, result.stdout, result.stderr, result.error) == (3, b"out\n", b"err\n", "")


def test_output_beyond_the_cap_stops_the_command_and_keeps_the_head() -> None:
    result = run_command(["sh", "-c", "yes normagent"], timeout=10, max_output=4096)
    assert result.returncode is None
    assert result.error == "output exceeded 4096 bytes"
    assert result.stdout == (b"normagent\n" * 410)[:4096]


def test_child_sees_c_locale_and_no_systemd_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "nb_NO.UTF-8")
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    result = run_command([sys.executable, "-c", "import os, json; print(json.dumps(dict(os.environ)))"])
    env = json.loads(result.stdout)
    assert env["LANG"] == "C" and env["LC_ALL"] == "C"
    assert "NOTIFY_SOCKET" not in env
    assert env["PATH"] == os.environ["PATH"]


@pytest.mark.parametrize(
    ("parent", "expected"),
    [
        ({}, {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LC_ALL": "C"}),
        (
            {"PATH": "/opt/bin", "HOME": "/var/lib/normagent", "LC_TIME": "nb_NO", "LISTEN_FDS": "3"},
            {"PATH": "/opt/bin", "HOME": "/var/lib/normagent", "LANG": "C", "LC_ALL": "C"},
        ),
    ],
    ids=["empty-parent", "only-path-and-home-pass"],
)
def test_child_environment(parent: dict[str, str], expected: dict[str, str]) -> None:
    assert child_environment(parent) == expected


def test_empty_argv_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="needs a program"):
        run_command([])


def test_stdin_is_closed() -> None:
    """A tool that reads stdin gets EOF at once instead of waiting for the agent's terminal."""
    result = run_command(["cat"], timeout=5)
    assert (result.returncode, result.stdout) == (0, b"")
