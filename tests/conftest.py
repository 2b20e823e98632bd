"""Shared fixtures and guards for every test.

Guards (autouse): a test may open sockets only to loopback, and must leave the environment as it
found it. Under CI a test may skip only for a property of the host (tests/support/tools.py says why);
any other skip is reported as a failure. Fixtures: ``clock`` (FakeClock), ``ledger`` (a real SQLite ledger in tmp_path),
``golden`` (compare with tests/golden/, rewrite with ``--update-golden``).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from normagent.ledger import Ledger
from normagent.testing import FakeClock
from tests.support.tools import pytest_runtest_makereport  # noqa: F401  (the CI skip rule, a hook)

GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/ from current output")


def _is_loopback(address: Any) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths and abstract names
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail a test that talks to anything but this machine's loopback."""
    real_connect, real_connect_ex, real_sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto

    def guard(address: Any) -> None:
        if not _is_loopback(address):
            raise AssertionError(f"test tried to reach {address!r}: tests may only use 127.0.0.1/::1")

    def connect(self: socket.socket, address: Any) -> Any:
        guard(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        guard(address)
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: bytes, *args: Any) -> Any:
        guard(args[-1])
        return real_sendto(self, data, *args)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)


@pytest.fixture(autouse=True)
def _environment_unchanged() -> Iterator[None]:
    """Fail a test that leaks an environment variable (use monkeypatch.setenv instead)."""
    before = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    yield
    after = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    if before != after:
        changed = sorted(set(before.items()) ^ set(after.items()))
        for key in set(after) - set(before):
            del os.environ[key]
        os.environ.update(before)
        pytest.fail(f"test changed the environment: {changed}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(tmp_path: Path, clock: FakeClock) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "state" / "ledger.db", clock=clock) as opened:
        yield opened


class Golden:
    """Compares text with a file under tests/golden/; ``--update-golden`` rewrites the file."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, name: str, actual: str) -> None:
        path = GOLDEN / name
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        assert path.exists(), f"{path} is missing: run pytest --update-golden once and review the file"
        assert actual == path.read_text(encoding="utf-8"), f"output differs from {path} (pytest --update-golden to accept)"

    def section(self, path: Path, start: str, end: str, body: str) -> None:
        """Compare the part of a document between two marker lines with ``body`` (or rewrite it)."""
        text = path.read_text(encoding="utf-8")
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        expected = f"{head}{start}\n{body}{end}{tail}"
        if self.update:
            path.write_text(expected, encoding="utf-8")
            return
        assert text == expected, f"{path.name} between {start!r} and its end marker is out of date: pytest --update-golden"


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    return Golden(bool(request.config.getoption("--update-golden")))
