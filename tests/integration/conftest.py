"""Real servers for the integration tests: find their binaries, start them on 127.0.0.1, stop them by PID.

Binaries come from ``scripts/servers`` (Debian packages unpacked under ``.cache/debs/root``, never
started as services, each behind a wrapper that carries its environment) or from PATH, found by
tests/support/tools.py: a missing one skips with the command that installs it, and fails under CI.

Every process a test starts is stopped when the test ends: SIGTERM to its PID, SIGKILL if it is
still there after ten seconds. Its output goes to a file in the test's tmp_path and is shown when a
wait for it fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.tools import REPO, require_tool
from tests.support.service import service_environment
from tests.support.ports import reserve_port

MAKE_PKI = REPO / "tests" / "fixtures" / "tls" / "make_pki.sh"


def server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a server process: ours, without a systemd notification socket (the agent
    must not talk to a real service manager from a test). The unpacked servers need nothing more:
    their wrappers carry their own library path."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update(extra or {})
    return env


def agent_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``server_env`` with the systemd unit's ``Environment=``: the agent as the service runs it."""
    return server_env({**service_environment(), **(extra or {})})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, reserved (see tests/support/ports.py)."""
    return reserve_port()


@dataclass
class Process:
    """A server started by a test; ``stop()`` ends it by PID."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def running(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.running():
            os.kill(self.pid, signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds. Returns the exit code."""
        if self.running():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        return int(self.popen.returncode)


def wait_until(what: str, predicate: Callable[[], Any], *, timeout: float = 30.0, process: Process | None = None) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with the process's output if it never does."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if process is not None and not process.running():
            pytest.fail(f"{process.name} exited with {process.popen.returncode} while waiting for {what}:\n{process.output()[-4000:]}")
        try:
            result = predicate()
        except (requests.RequestException, OSError, KeyError, IndexError, ValueError) as exc:
            last_error, result = exc, None
        if result:
            return result
        time.sleep(0.2)
    tail = f"\n--- {process.name} output ---\n{process.output()[-4000:]}" if process is not None else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error!r}){tail}")


@pytest.fixture
def start_process(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Start processes whose output goes to tmp_path/<name>.log; all are stopped after the test."""
    started: list[Process] = []

    def _start(name: str, argv: list[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Process:
        log_path = tmp_path / f"{name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=dict(env or server_env()), cwd=cwd or tmp_path
            )
        process = Process(name, popen, log_path)
        started.append(process)
        return process

    yield _start
    for process in reversed(started):
        process.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away CA with server and client certificates, made with the openssl CLI."""
    require_tool("openssl", "openssl")
    out = tmp_path_factory.mktemp("pki")
    subprocess.run([str(MAKE_PKI), str(out)], check=True)
    return out


# ------------------------------------------------------------------------------------------------
# normagent


def normagent_command() -> list[str]:
    """``normagent`` from the venv running the tests (the package under test), as a command."""
    script = Path(sys.executable).with_name("normagent")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "normagent"]


def toml_value(value: Any) -> str:
    """A Python value as TOML (enough for test configs: str, Path, bool, numbers, tables, arrays)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


@dataclass
class Agent:
    """A running ``normagent run`` and how to reach it."""

    process: Process
    config: Path
    state_dir: Path
    url: str
    address: str
    request_args: dict[str, Any] = field(default_factory=dict)  # verify=, auth=, cert= for requests

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=10, **{**self.request_args, **kwargs})


@pytest.fixture
def start_agent(start_process: Callable[..., Process], tmp_path: Path) -> Callable[..., Agent]:
    """Start ``normagent run`` with a config in tmp_path; returns once /healthz answers 200.

    Keyword arguments: ``web`` (extra ``[web]`` keys), ``collectors`` (``{name: {key: value}}``),
    ``request_args`` (what requests needs to reach it: verify, auth, cert), ``env``.
    """

    def _start(
        *,
        web: Mapping[str, Any] | None = None,
        collectors: Mapping[str, Mapping[str, Any]] | None = None,
        request_args: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        name: str = "normagent",
    ) -> Agent:
        port = free_port()
        state_dir = tmp_path / f"{name}-state"
        web_table = {"listen": f"127.0.0.1:{port}", **(web or {})}
        lines = ["[agent]", f"state_dir = {toml_value(state_dir)}", 'log_level = "info"', "", "[web]"]
        lines += [f"{key} = {toml_value(value)}" for key, value in web_table.items() if not isinstance(value, dict)]
        for key, value in web_table.items():
            if isinstance(value, dict):
                lines += ["", f"[web.{key}]", *(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items())]
        for collector, settings in (collectors or {}).items():
            lines += ["", f"[collectors.{json.dumps(collector)}]", *(f"{k} = {toml_value(v)}" for k, v in settings.items())]
        config = tmp_path / f"{name}.toml"
        config.write_text("\n".join(lines) + "\n")
        process = start_process(name, [*normagent_command(), "run", "--config", str(config)], env=agent_env(env))
        scheme = "https" if "tls_cert_file" in web_table else "http"
        agent = Agent(process, config, state_dir, f"{scheme}://127.0.0.1:{port}", f"127.0.0.1:{port}", dict(request_args or {}))
        wait_until("normagent /healthz to answer 200", lambda: agent.get("/healthz").status_code == 200, process=process)
        return agent

    return _start


# ------------------------------------------------------------------------------------------------
# Prometheus


@dataclass
class Prometheus:
    """A running Prometheus server and its HTTP API."""

    process: Process
    url: str

    def api(self, path: str, **params: str) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets", state="active")["activeTargets"])

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])


@pytest.fixture
def start_prometheus(start_process: Callable[..., Process], tmp_path: Path) -> Callable[..., Prometheus]:
    """Start the Debian package's Prometheus on 127.0.0.1 with the given scrape configs (dicts as in
    prometheus.yml); returns once /-/ready answers. Scrapes and evaluates every second."""
    binary = require_tool("prometheus", "prometheus")

    def _start(*scrape_configs: Mapping[str, Any]) -> Prometheus:
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [dict(c) for c in scrape_configs],
        }
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        process = start_process("prometheus", argv)
        server = Prometheus(process, f"http://127.0.0.1:{port}")
        wait_until("Prometheus to be ready", lambda: requests.get(f"{server.url}/-/ready", timeout=5).status_code == 200, process=process)
        return server

    return _start
