"""PysnmpClient against a real net-snmp ``snmpd`` on 127.0.0.1, started and stopped by this module.

snmpd is the Debian package's, unpacked by scripts/servers (or the host's own); without one the
snmpd tests skip, except under CI, where they fail (tests/support/tools.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from normagent.model import SnmpVarBind
from normagent.sources.snmp import PysnmpClient, SnmpError, SnmpTimeout, split_target, to_python
from tests.support.tools import require_tool


SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_CONTACT = "1.3.6.1.2.1.1.4.0"
SYS_LOCATION = "1.3.6.1.2.1.1.6.0"
SYSTEM = "1.3.6.1.2.1.1"
LOCATION = "normagent test rack 7"
CONTACT = "drift@example.invalid"


@dataclass(frozen=True)
class Agent:
    target: str
    pid: int


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """A real snmpd answering v1/v2c community ``public`` on 127.0.0.1 only."""
    binary = require_tool("snmpd", "snmpd")
    work = tmp_path_factory.mktemp("snmpd")
    (work / "mibs").mkdir()
    (work / "persist").mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MIBS": "",  # load no MIB files: the agent needs none, and they only add noise to its log
        "SNMP_PERSISTENT_DIR": str(work / "persist"),  # never touch /var/lib/snmp
    }
    for attempt in range(3):
        port = _free_udp_port()
        conf = work / "snmpd.conf"
        conf.write_text(
            f"agentAddress udp:127.0.0.1:{port}\n"
            "rocommunity public 127.0.0.1\n"
            f"sysLocation {LOCATION}\n"
            f"sysContact {CONTACT}\n"
        )
        log = (work / f"snmpd-{attempt}.log").open("wb")
        proc = subprocess.Popen(
            [str(binary), "-f", "-Lo", "-C", "-c", str(conf), "-p", str(work / "snmpd.pid"), "-M", str(work / "mibs")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        client = PysnmpClient(retries=0)
        deadline = time.monotonic() + 10
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                client.get(f"127.0.0.1:{port}", [SYS_UPTIME], community="public", timeout=0.2)
                ready = True
                break
            except SnmpTimeout:
                continue
        if ready:
            try:
                yield Agent(target=f"127.0.0.1:{port}", pid=proc.pid)
            finally:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                log.close()
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
    pytest.fail(f"snmpd did not start; its log: {(work / 'snmpd-2.log').read_text(errors='replace')[-2000:]}")


@pytest.fixture
def client() -> PysnmpClient:
    return PysnmpClient(retries=0)


def test_get_returns_plain_python_values(snmpd: Agent, client: PysnmpClient) -> None:
    got = client.get(snmpd.target, [SYS_LOCATION, SYS_CONTACT, SYS_OBJECT_ID, SYS_UPTIME], community="public", timeout=2)
    assert [vb.oid for vb in got] == [SYS_LOCATION, SYS_CONTACT, SYS_OBJECT_ID, SYS_UPTIME]
    assert got[0].value == LOCATION.encode()
    assert got[1].value == CONTACT.encode()
    assert isinstance(got[2].value, str) and got[2].value.startswith("1.3.6.1.4.1.8072.")  # net-snmp's enterprise
    assert isinstance(got[3].value, int) and got[3].value >= 0


def test_get_of_an_absent_oid_is_none(snmpd: Agent, client: PysnmpClient) -> None:
    got = client.get(snmpd.target, [SYS_DESCR, "1.3.6.1.2.1.1.77.0"], community="public", timeout=2)
    assert isinstance(got[0].value, bytes) and got[0].value
    assert got[1] == SnmpVarBind("1.3.6.1.2.1.1.77.0", None)


@pytest.mark.parametrize("version", ["2c", "1"])
def test_walk_stays_in_the_subtree_in_oid_order(snmpd: Agent, version: str) -> None:
    rows = PysnmpClient(retries=0, version=version).walk(snmpd.target, SYSTEM, community="public", timeout=2)  # type: ignore[arg-type]
    oids = [tuple(int(part) for part in vb.oid.split(".")) for vb in rows]
    assert oids == sorted(oids) and len(set(oids)) == len(oids)
    assert all(vb.oid.startswith(SYSTEM + ".") for vb in rows)
    assert SnmpVarBind(SYS_LOCATION, LOCATION.encode()) in rows


def test_v1_and_v2c_walks_agree(snmpd: Agent) -> None:
    v2c = PysnmpClient(retries=0, version="2c").walk(snmpd.target, "1.3.6.1.2.1.2.2.1.1", community="public", timeout=2)
    v1 = PysnmpClient(retries=0, version="1").walk(snmpd.target, "1.3.6.1.2.1.2.2.1.1", community="public", timeout=2)
    assert [vb.oid for vb in v1] == [vb.oid for vb in v2c] and v2c  # ifIndex: at least lo


def test_walk_beyond_max_rows_is_an_error(snmpd: Agent) -> None:
    small = PysnmpClient(retries=0, max_rows=3, max_repetitions=2)
    with pytest.raises(SnmpError, match="more than 3 variables"):
        small.walk(snmpd.target, SYSTEM, community="public", timeout=2)


def test_wrong_community_times_out_without_naming_it(snmpd: Agent, client: PysnmpClient) -> None:
    """snmpd drops requests with an unknown community silently, as RFC 3584 agents do."""
    with pytest.raises(SnmpTimeout) as err:
        client.get(snmpd.target, [SYS_DESCR], community="s3cret-community", timeout=0.3)
    assert "s3cret" not in str(err.value)
    assert isinstance(err.value, TimeoutError) and isinstance(err.value, ConnectionError)


def test_v1_get_of_absent_oid_is_an_error_status(snmpd: Agent) -> None:
    """SNMPv1 has no noSuchObject: the agent answers noSuchName, which is an error."""
    with pytest.raises(SnmpError, match="noSuchName"):
        PysnmpClient(retries=0, version="1").get(snmpd.target, ["1.3.6.1.2.1.1.77.0"], community="public", timeout=2)


def test_calls_leave_no_sockets_open(snmpd: Agent, client: PysnmpClient) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    client.get(snmpd.target, [SYS_UPTIME], community="public", timeout=2)  # warm imports
    before = open_fds()
    for _ in range(5):
        client.get(snmpd.target, [SYS_UPTIME], community="public", timeout=2)
        client.walk(snmpd.target, SYSTEM, community="public", timeout=2)
    assert open_fds() == before


def test_nobody_listening_is_a_timeout(client: PysnmpClient) -> None:
    port = _free_udp_port()
    with pytest.raises(SnmpTimeout, match="127.0.0.1"):
        client.get(f"127.0.0.1:{port}", [SYS_DESCR], community="public", timeout=0.2)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("192.0.2.1", ("192.0.2.1", 161)),
        ("192.0.2.1:1161", ("192.0.2.1", 1161)),
        ("router.example:162", ("router.example", 162)),
        ("[2001:db8::1]:1161", ("2001:db8::1", 1161)),
        ("[2001:db8::1]", ("2001:db8::1", 161)),
        ("2001:db8::1", ("2001:db8::1", 161)),
    ],
)
def test_split_target(target: str, expected: tuple[str, int]) -> None:
    assert split_target(target) == expected


@pytest.mark.parametrize("target", ["", "host:", "host:0", "host:70000", "host:snmp", "[::1]x", ":161"])
def test_split_target_rejects_bad_targets(target: str) -> None:
    with pytest.raises(SnmpError, match="bad SNMP target"):
        split_target(target)


def test_to_python_maps_every_smi_type() -> None:
    from pysnmp.proto import rfc1902, rfc1905

    cases = [
        (rfc1902.Integer32(-5), -5),
        (rfc1902.Counter32(7), 7),
        (rfc1902.Counter64(2**40), 2**40),
        (rfc1902.Gauge32(9), 9),
        (rfc1902.TimeTicks(100), 100),
        (rfc1902.Unsigned32(3), 3),
        (rfc1902.OctetString(b"\x00\xffab"), b"\x00\xffab"),
        (rfc1902.Opaque(b"\x9f\x78"), b"\x9f\x78"),
        (rfc1902.IpAddress("192.0.2.7"), "192.0.2.7"),
        (rfc1902.ObjectIdentifier("1.3.6.1.4.1.8072"), "1.3.6.1.4.1.8072"),
        (rfc1905.NoSuchObject(""), None),
        (rfc1905.NoSuchInstance(""), None),
        (rfc1905.EndOfMibView(""), None),
    ]
    assert [to_python(value) for value, _ in cases] == [expected for _, expected in cases]
