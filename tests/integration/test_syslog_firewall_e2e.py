"""Syslog end to end: filterlog lines sent over UDP and TCP to a running ``normagent run`` are counted
exactly once by the firewall plugin, although the agent is SIGKILLed again and again.

Each round sends numbered filterlog block lines over TCP and UDP, waits until the receiver holds
all of them durably in its spool (the spool file is made large enough never to rotate in this test,
so it keeps every message it ever got), then kills the agent at a random moment — often while the
spool reader is reading or committing — and starts it again. At the end the blocked count, the
parsed line count and the spool's own lines must all equal what was sent.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from normagent.ledger import Ledger
from tests.support.ports import reserve_port, reserve_udp_port
from tests.support.service import service_environment

ROUNDS = 6
TCP_PER_ROUND = 300
UDP_PER_ROUND = 60


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """Reserved, TCP and UDP alike (tests/support/ports.py)."""
    return reserve_port() if kind == socket.SOCK_STREAM else reserve_udp_port()


def line(n: int) -> bytes:
    """A pfSense block, numbered by its source port (RFC 3164, host name, tag with pid)."""
    return f"<134>Nov 23 07:25:53 fw01 filterlog[4242]: 5,,,1000102433,em0,match,block,in,4,0x0,,64,{n % 65536},0,none,6,tcp,60,198.51.100.{n % 250},10.0.0.5,{n % 60000 + 1024},443,0".encode()


def scrape(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    values = {}
    for row in text.splitlines():
        if row.startswith(("normagent_firewall_", "normagent_log_lines_total")):
            name, value = row.rsplit(" ", 1)
            values[name] = float(value)
    return values


def spool_lines(spool: Path) -> int:
    try:
        return sum(p.read_bytes().count(b"\n") for p in spool.glob("syslog.log*"))
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_udp_and_tcp_messages_are_counted_exactly_once_across_sigkill(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("E2E_SEED", "12")))
    state, web, tcp_port, udp_port = tmp_path / "state", free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    config = tmp_path / "normagent.toml"
    config.write_text(
        f"""
[agent]
state_dir = "{state}"
log_format = "json"

[plugins]
disable = ["system", "access", "edi"]
entry_points = false

[web]
listen = "127.0.0.1:{web}"

[syslog]
udp_listen = "127.0.0.1:{udp_port}"
tcp_listen = "127.0.0.1:{tcp_port}"
spool_file_bytes = 1073741824

[collectors."firewall.linux"]
enabled = false

[collectors."firewall.appliances"]
interval = "200ms"
timeout = "20s"
devices = {{ lab = {{ senders = ["127.0.0.1"] }} }}
"""
    )
    output = tmp_path / "agent.log"
    process: subprocess.Popen[bytes] | None = None

    def start() -> subprocess.Popen[bytes]:
        with open(output, "ab") as out:
            return subprocess.Popen([sys.executable, "-m", "normagent", "run", "--config", str(config)], stdout=out, stderr=out,
                                    env={**os.environ, **service_environment()})

    def wait_listening() -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", tcp_port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, f"the receiver did not start; see {output}"
                assert process is not None and process.poll() is None, f"the agent exited; see {output}"
                time.sleep(0.05)

    sent = 0
    spool = state / "syslog"
    try:
        process = start()
        for _ in range(ROUNDS):
            wait_listening()
            with socket.create_connection(("127.0.0.1", tcp_port)) as tcp:
                tcp.sendall(b"".join(line(sent + i) + b"\n" for i in range(TCP_PER_ROUND)))
            sent += TCP_PER_ROUND
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                for i in range(UDP_PER_ROUND):
                    udp.sendto(line(sent + i), ("127.0.0.1", udp_port))
                    if i % 10 == 9:  # paced: a loopback burst cannot overflow the socket buffer
                        time.sleep(0.002)
            sent += UDP_PER_ROUND
            deadline = time.monotonic() + 60
            while spool_lines(spool) < sent:  # durable in the spool: the receiver's part is done
                assert time.monotonic() < deadline, f"spooled {spool_lines(spool)} of {sent}; see {output}"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.4))  # the reader is somewhere in its cycle
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            process = start()
        wait_listening()
        want = float(sent)
        key = 'normagent_firewall_blocked_total{device="lab",direction="in",proto="tcp"}'
        deadline = time.monotonic() + 60
        got: dict[str, float] = {}
        while time.monotonic() < deadline:
            got = scrape(web)
            if got.get(key) == want:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # a few more reader cycles: nothing may be counted after the truth
        got = scrape(web)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process is not None and process.poll() is None:
            process.kill()
    assert spool_lines(spool) == sent, "the spool holds every message once"
    assert got.get(key) == want, f"/metrics: {got.get(key)} blocked, {sent} sent; see {output}"
    with Ledger.open(state / "ledger.db") as ledger:
        parsed = ledger.counter_value("normagent_log_lines_total", {"source": "firewall.appliances", "result": "parsed"})
        unparsed = ledger.counter_value("normagent_log_lines_total", {"source": "firewall.appliances", "result": "unparsed"})
        blocked = ledger.counter_total("normagent_firewall_blocked_total")
        messages = ledger.counter_value("normagent_firewall_messages_total", {"device": "lab"})
    assert (parsed, unparsed, blocked, messages) == (sent, 0, sent, sent)
