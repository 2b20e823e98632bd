"""Run an external command the way a collector needs it: bounded, quiet, and with errors as values.

``run_command(argv, timeout=...)`` starts ``argv`` directly (never through a shell), in its own
process group, with a small fixed environment (``LANG=C``, ``LC_ALL=C``) so tools print the same
words and number formats on every host. It returns a ``CommandResult``: a missing binary, a
permission problem, a timeout or an over-long output are outcomes the caller reads, not exceptions
it must remember to catch.

On timeout the whole process group is killed (``SIGKILL``), so a tool that forked helpers cannot
leave them behind holding the agent's pipes. Output beyond ``max_output`` bytes per stream ends the
command the same way: a collector must never buffer an unbounded answer.

Imports only the standard library and normagent.model.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from normagent.model import CommandResult

DEFAULT_TIMEOUT = 10.0
MAX_OUTPUT = 16 * 2**20  # bytes per stream; a list of boots or packages is far below this
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_READ_CHUNK = 65536
STOP_POLL = 0.2  # seconds between looks at ``stop`` while a command runs
STOPPED = "stopped: the agent is shutting down"


def child_environment(parent: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a command runs with: the parent's PATH and HOME, C locale, nothing else.

    Nothing else is passed on purpose: ``NOTIFY_SOCKET`` or ``LISTEN_FDS`` from systemd must not
    reach a child, and a user's ``LANG=nb_NO.UTF-8`` would change the words tools print.
    """
    parent = os.environ if parent is None else parent
    env = {"PATH": parent.get("PATH") or DEFAULT_PATH, "LANG": "C", "LC_ALL": "C"}
    if "HOME" in parent:
        env["HOME"] = parent["HOME"]
    return env


def run_command(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_output: int = MAX_OUTPUT,
    stop: Callable[[], bool] | None = None,
) -> CommandResult:
    """Run ``argv`` with a timeout and return what happened.

    Args:
        argv: Program and arguments; the program is looked up on ``PATH`` unless it has a slash.
        timeout: Seconds the command may run before its process group is killed.
        max_output: Bytes of stdout (and, separately, of stderr) to accept before killing it.
        stop: Checked at least every ``STOP_POLL`` seconds while the command runs; once it returns
            True the process group is killed and the result is an error (the agent binds its
            shutdown flag here: a slow command, such as an apt simulation on a loaded machine,
            must not hold a shutdown for the whole grace, and a command's output cut short is
            never committed, the run fails and is made again after the restart).

    Returns:
        A ``CommandResult``. ``returncode`` is ``None`` when the command did not start or was
        killed by us; ``error`` then says why (``"not found"``, ``"permission denied"``,
        ``"timed out after 10s"``, ``"output exceeded 16777216 bytes"``). Output read before a
        kill is kept.

    Raises:
        ValueError: ``argv`` is empty.
    """
    args = tuple(str(a) for a in argv)
    if not args:
        raise ValueError("run_command needs a program to run")
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_environment(),
            start_new_session=True,  # own process group: a timeout kills helpers too
            close_fds=True,
        )
    except FileNotFoundError:
        return CommandResult(argv=args, returncode=None, error="not found")
    except PermissionError:
        return CommandResult(argv=args, returncode=None, error="permission denied")
    except OSError as exc:
        return CommandResult(argv=args, returncode=None, error=f"cannot start: {exc.strerror or exc}")

    stdout, stderr, problem = _collect(proc, timeout, max_output, stop)
    if problem:
        _kill_group(proc)
        return CommandResult(argv=args, returncode=None, stdout=stdout, stderr=stderr, error=problem)
    return CommandResult(argv=args, returncode=proc.returncode, stdout=stdout, stderr=stderr)


def _collect(
    proc: subprocess.Popen[bytes], timeout: float, max_output: int, stop: Callable[[], bool] | None = None
) -> tuple[bytes, bytes, str]:
    """Read both pipes until EOF and exit, a timeout, a stop, or too much output; never block past
    the deadline."""
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    sizes = dict.fromkeys(chunks, 0)
    deadline = time.monotonic() + timeout
    problem = ""
    with selectors.DefaultSelector() as selector:
        for stream in (proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
            selector.register(stream.fileno(), selectors.EVENT_READ)
        try:
            while selector.get_map() and not problem:
                left = deadline - time.monotonic()
                if left <= 0:
                    problem = f"timed out after {timeout:g}s"
                    break
                if stop is not None:
                    if stop():
                        problem = STOPPED
                        break
                    left = min(left, STOP_POLL)
                for key, _ in selector.select(left):
                    fd = int(key.fd)
                    try:
                        data = os.read(fd, _READ_CHUNK)
                    except BlockingIOError:
                        continue
                    if not data:
                        selector.unregister(fd)
                        continue
                    room = max_output - sizes[fd]
                    chunks[fd].append(data[:room])
                    sizes[fd] += len(data)
                    if sizes[fd] > max_output:
                        problem = f"output exceeded {max_output} bytes"
                        break
            if not problem:
                # Both pipes are closed; the process is exiting (or a helper closed them and lives on).
                try:
                    proc.wait(max(deadline - time.monotonic(), 0.001))
                except subprocess.TimeoutExpired:
                    problem = f"timed out after {timeout:g}s"
        finally:
            proc.stdout.close()
            proc.stderr.close()
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd]), problem


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command's whole process group and reap the command itself."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # already gone, together with its group
    except PermissionError:
        # The group changed owner (a setuid helper); kill at least what we started.
        proc.kill()
    proc.wait()
