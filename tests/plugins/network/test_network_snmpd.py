"""network.snmp against a real net-snmp snmpd on 127.0.0.1 (tests.support.snmpd): v2c and v3
(SHA + AES), sysUpTime and interfaces, a restart, an interface going down and up in a network
namespace of its own, wrong types, a table too large, a device that never answers."""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from normagent import Count, Event, Gauge
from normagent.clock import SystemClock
from normagent.ledger import MemoryCheckpoints
from normagent.plugins.network.collectors import SNMP, Device, SnmpSettings
from normagent.sources.snmp import PysnmpClient
from normagent.sources.snmp_lazy import LazySnmpClient
from normagent.testing import observations, run_collector_once
from tests.support.snmpd import COMMUNITY, V3_AUTH_KEY, V3_PRIV_KEY, V3_USER, Namespace, Snmpd, make_namespace, start_snmpd

_ns = itertools.count()


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    agent = start_snmpd(tmp_path_factory.mktemp("snmpd"))
    try:
        yield agent
    finally:
        agent.close()


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[tuple[Namespace, Snmpd]]:
    """snmpd in a network namespace with veth pairs a0/b0 and a1/b1 (all up)."""
    ns = make_namespace(f"na-test-{os.getpid()}-{next(_ns)}", pairs=2)
    try:
        agent = start_snmpd(tmp_path / "snmpd", netns=ns.name)
        try:
            yield ns, agent
        finally:
            agent.close()
    finally:
        ns.close()


def v2c(agent: Snmpd, **kw: Any) -> Device:
    return Device(name="r1", target=agent.target, version="2c", community="public", **kw)


def v3(agent: Snmpd, **kw: Any) -> Device:
    return Device(name="r1", target=agent.target, version="3", user=V3_USER, auth_key=V3_AUTH_KEY, priv_key=V3_PRIV_KEY, **kw)


def poll(*devices: Device, state: MemoryCheckpoints | None = None, timeout: float | None = None,
         client: LazySnmpClient | None = None) -> list[Any]:
    return observations(
        run_collector_once(
            SNMP, settings=SnmpSettings(devices=devices), snmp=client or LazySnmpClient(), clock=SystemClock(),
            state=state if state is not None else MemoryCheckpoints(), timeout=timeout,
        )
    )


def wait_for(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds:.0f}s: {condition}")
        time.sleep(0.2)  # polling a real agent with a deadline, not a sleep standing in for an event


def uptime_ticks(agent: Snmpd) -> int:
    value = PysnmpClient().get(agent.target, ["1.3.6.1.2.1.1.3.0"], auth=COMMUNITY, timeout=2)[0].value
    assert isinstance(value, int)
    return value


def if_index(agent: Snmpd, name: str) -> int:
    rows = PysnmpClient().walk(agent.target, "1.3.6.1.2.1.2.2.1.2", auth=COMMUNITY, timeout=2)
    return next(int(vb.oid.rsplit(".", 1)[1]) for vb in rows if vb.value == name.encode())


def oper_status(agent: Snmpd, index: int) -> object:
    return PysnmpClient().get(agent.target, [f"1.3.6.1.2.1.2.2.1.8.{index}"], auth=COMMUNITY, timeout=2)[0].value


def gauges(obs: list[Any], metric: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {o.labels: o.value for o in obs if isinstance(o, Gauge) and o.metric == metric}


def counted(obs: list[Any], metric: str, **labels: str) -> float:
    return sum(o.value for o in obs if isinstance(o, Count) and o.metric == metric and all(dict(o.labels).get(k) == v for k, v in labels.items()))


@pytest.mark.parametrize("make", [v2c, v3], ids=["v2c", "v3-sha-aes"])
def test_uptime_and_interfaces(snmpd: Snmpd, make: Any) -> None:
    state = MemoryCheckpoints()
    first = poll(make(snmpd, interfaces=("lo",)), state=state)
    second = poll(make(snmpd, interfaces=("lo",)), state=state)
    assert gauges(first, "normagent_snmp_up") == {(("device", "r1"),): 1}
    assert list(gauges(first, "normagent_network_device_uptime_seconds").values())[0] >= 0
    assert gauges(first, "normagent_network_interface_up") == {(("device", "r1"), ("interface", "lo")): 1}
    # the counters are read (SNMP itself crosses lo) and kept as the baseline of the next poll;
    # snmpd caches its interface table for a few seconds, so the second poll may add nothing
    counters = state.get("device:r1")["interfaces"]["lo"]["counters"]  # type: ignore[index]
    assert counters["in_octets"] > 0 and counters["out_octets"] > 0 and counters["in_errors"] == 0
    assert counted(second, "normagent_network_interface_bytes_total") >= 0
    assert not [o for o in second if isinstance(o, Event)]


SNMP_IN_PKTS = "1.3.6.1.2.1.11.1.0"  # SNMPv2-MIB snmpInPkts: every message snmpd received


def packets(agent: Snmpd) -> int:
    """Messages ``agent`` received, this request included."""
    value = PysnmpClient().get(agent.target, [SNMP_IN_PKTS], auth=COMMUNITY, timeout=2)[0].value
    assert isinstance(value, int)
    return value


@pytest.mark.parametrize("make", [v2c, v3], ids=["v2c", "v3-sha-aes"])
def test_an_idle_poll_is_one_request_after_the_first(snmpd: Snmpd, make: Any) -> None:
    """Issue 15 item 6: a request and its answer are most of an SNMPv3 poll's CPU. The first poll
    with interfaces and an extra OID is the walk of the names and one GET; the next ones are one
    GET of sysUpTime, ifNumber, ifTableLastChange, the extra OID and every chosen interface's name
    and columns (the walk is repeated only when one of them says the table changed, or after
    ``rewalk``: test_network_table.py); what a poll reads is unchanged."""
    client = LazySnmpClient()
    device = make(snmpd, interfaces=("*",), oids={"interfaces": "1.3.6.1.2.1.2.1.0"})
    state = MemoryCheckpoints()

    def run(state: MemoryCheckpoints = state) -> list[Any]:
        return observations(run_collector_once(SNMP, settings=SnmpSettings(devices=(device,)), snmp=client, clock=SystemClock(), state=state))

    try:
        run(MemoryCheckpoints())  # SNMPv3's discovery; the walk learns the table's length
        before = packets(snmpd)
        first = run()  # a fresh table: the walk and the GET
        walked = packets(snmpd)
        obs = run()
        after = packets(snmpd)
        assert walked - before == 3  # the poll's two, and the count's own
        assert after - walked == 2  # the poll's one, and the count's own
    finally:
        client.close()
    interfaces = gauges(obs, "normagent_network_interface_up")
    assert gauges(obs, "normagent_snmp_up") == {(("device", "r1"),): 1}
    assert (("device", "r1"), ("interface", "lo")) in interfaces
    assert interfaces == gauges(first, "normagent_network_interface_up")
    assert gauges(obs, "normagent_snmp_oid_value") == {(("device", "r1"), ("name", "interfaces")): len(interfaces)}


def test_a_restarted_snmpd_is_walked_again(tmp_path: Path) -> None:
    """A restarted device may have numbered its interfaces anew: the poll after a restart walks
    the names again (snmpd's count of messages starts at 0 with the restart) though ifNumber,
    ifTableLastChange and the chosen names are as they were."""
    agent = start_snmpd(tmp_path)
    try:
        state = MemoryCheckpoints()
        device = v2c(agent, interfaces=("*",))
        wait_for(lambda: uptime_ticks(agent) > 400)  # a restart is told from jitter after 2 s
        poll(device, state=state)
        agent.restart()
        poll(device, state=state)
        assert packets(agent) == 5  # the GET that saw the restart, the walk, the GET, and the count's own
    finally:
        agent.close()


def test_a_restart_of_snmpd_is_a_restart_of_the_device(tmp_path: Path) -> None:
    agent = start_snmpd(tmp_path)
    try:
        state = MemoryCheckpoints()
        device = v3(agent)
        # A restart is told from poll jitter only once the agent has been up a few seconds (the
        # slack is at least 2 s): wait for that, polling sysUpTime with a deadline.
        wait_for(lambda: uptime_ticks(agent) > 400)
        poll(device, state=state)
        agent.restart()
        after = poll(device, state=state)
    finally:
        agent.close()
    assert counted(after, "normagent_network_device_restarts_total") == 1
    assert [e.attrs["device"] for e in after if isinstance(e, Event) and e.kind == "network.device_restart"] == ["r1"]


UNKNOWN_ENGINE_IDS = "1.3.6.1.6.3.15.1.1.4.0"  # snmpd's count of SNMPv3 messages to an engine id not its own


def test_a_kept_v3_device_follows_a_restarted_snmpd(tmp_path: Path) -> None:
    """The agent's client keeps a v3 device's discovery (engine id, boots, time) and keys across
    polls. snmpd restarted (with a new engine id: tests.support.snmpd) answers the kept device's
    next request with a Report of usmStatsUnknownEngineIDs: the device discovers it again and asks
    again, in the same poll, which reads; the restart shows. (An agent that kept its engine id
    and counted a boot answers with usmStatsNotInTimeWindows instead: test_snmp's stand-in.)"""
    agent = start_snmpd(tmp_path)
    client = LazySnmpClient()
    try:
        state = MemoryCheckpoints()
        device = v3(agent)
        wait_for(lambda: uptime_ticks(agent) > 400)  # a restart is told from jitter after 2 s
        poll(device, state=state, client=client)
        poll(device, state=state, client=client)
        agent.restart()
        after = poll(device, state=state, client=client)
        unknown = PysnmpClient().get(agent.target, [UNKNOWN_ENGINE_IDS], auth=COMMUNITY, timeout=2)[0].value
    finally:
        client.close()
        agent.close()
    assert gauges(after, "normagent_snmp_up") == {(("device", "r1"),): 1}
    assert counted(after, "normagent_network_device_restarts_total") == 1
    assert [e.kind for e in after if isinstance(e, Event)] == ["network.device_restart"]
    assert unknown == 2  # the kept device's request to the old engine id, then its discovery


def test_a_silent_device_is_down_and_answers_again(tmp_path: Path) -> None:
    agent = start_snmpd(tmp_path)
    try:
        state = MemoryCheckpoints()
        device = v2c(agent, timeout=timedelta(milliseconds=300), retries=0)
        poll(device, state=state)
        agent.stop()
        down = poll(device, state=state)
        agent.start()
        back = poll(device, state=state)
    finally:
        agent.close()
    assert gauges(down, "normagent_snmp_up") == {(("device", "r1"),): 0}
    assert counted(down, "normagent_snmp_poll_failures_total", reason="timeout") == 1
    assert [e.kind for e in down if isinstance(e, Event)] == ["network.down"]
    assert "network.up" in [e.kind for e in back if isinstance(e, Event)]
    assert gauges(back, "normagent_snmp_up") == {(("device", "r1"),): 1}


@pytest.mark.parametrize(
    "credentials",
    [
        {"user": V3_USER, "auth_key": "not-the-key", "priv_key": V3_PRIV_KEY},
        {"user": V3_USER, "auth_key": V3_AUTH_KEY, "priv_key": "not-the-key"},
        {"user": "not-the-key-holder", "auth_key": V3_AUTH_KEY, "priv_key": V3_PRIV_KEY},
    ],
    ids=["wrong-auth-key", "wrong-priv-key", "unknown-user"],
)
def test_wrong_credentials_are_auth_failures_not_downtime(snmpd: Snmpd, credentials: dict[str, str]) -> None:
    wrong = Device(name="r1", target=snmpd.target, version="3", timeout=timedelta(milliseconds=500), **credentials)
    obs = poll(wrong)
    assert gauges(obs, "normagent_snmp_up") == {(("device", "r1"),): 0}
    assert counted(obs, "normagent_snmp_poll_failures_total", reason="auth") == 1
    assert not [o for o in obs if isinstance(o, Event)]
    assert "not-the-key" not in repr(obs)


def test_one_dead_device_does_not_hold_up_the_others(snmpd: Snmpd) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never answering
        dead = Device(name="dead", target=f"127.0.0.1:{sock.getsockname()[1]}", timeout=timedelta(milliseconds=300), retries=0)
        obs = poll(dead, v2c(snmpd))
    assert gauges(obs, "normagent_snmp_up") == {(("device", "dead"),): 0, (("device", "r1"),): 1}


def test_the_run_deadline_is_kept_whatever_the_devices_do(snmpd: Snmpd) -> None:
    """A device slower than the run's deadline is reported as timed out; the run ends on time."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        slow = Device(name="slow", target=f"127.0.0.1:{sock.getsockname()[1]}", timeout=timedelta(seconds=5), retries=2)
        obs = poll(slow, v2c(snmpd), timeout=4.0)  # the slow one would take 15 s
    assert gauges(obs, "normagent_snmp_up") == {(("device", "slow"),): 0, (("device", "r1"),): 1}


def test_extra_oids_and_wrong_types(tmp_path: Path) -> None:
    """snmpd's `override` makes the agent answer values of the wrong type, as a broken device would."""
    agent = start_snmpd(
        tmp_path,
        extra_config=(
            "override 1.3.6.1.4.1.99999.1.0 integer 42\n"
            "override 1.3.6.1.4.1.99999.2.0 octet_str \"not a number\"\n"
            "override 1.3.6.1.2.1.2.2.1.8.1 octet_str \"up, honest\"\n"  # ifOperStatus of lo
        ),
    )
    try:
        obs = poll(v2c(agent, interfaces=("lo",), oids={"temperature": "1.3.6.1.4.1.99999.1.0", "garbage": "1.3.6.1.4.1.99999.2.0"}))
    finally:
        agent.close()
    assert gauges(obs, "normagent_snmp_oid_value") == {(("device", "r1"), ("name", "temperature")): 42}
    assert counted(obs, "normagent_snmp_poll_failures_total", reason="bad_response") == 2
    assert gauges(obs, "normagent_snmp_up") == {(("device", "r1"),): 0}
    assert gauges(obs, "normagent_network_interface_up") == {}


def test_an_oid_that_answers_nan_or_inf_is_a_bad_value_not_a_number(tmp_path: Path) -> None:
    """A sensor unplugged answers "nan" as text, and Python's float() takes it (and "inf"): the
    gauge NaN made the ledger refuse the whole batch (SQLite stores NaN as NULL: NOT NULL
    constraint failed), every device's, at every poll. It is a bad value, as any other text."""
    agent = start_snmpd(
        tmp_path,
        extra_config=(
            "override 1.3.6.1.4.1.99999.1.0 integer 42\n"
            "override 1.3.6.1.4.1.99999.2.0 octet_str \"nan\"\n"
            "override 1.3.6.1.4.1.99999.3.0 octet_str \" -Infinity\"\n"
        ),
    )
    try:
        obs = poll(v2c(agent, oids={"temperature": "1.3.6.1.4.1.99999.1.0", "unplugged": "1.3.6.1.4.1.99999.2.0",
                                    "cold": "1.3.6.1.4.1.99999.3.0"}))
    finally:
        agent.close()
    assert gauges(obs, "normagent_snmp_oid_value") == {(("device", "r1"), ("name", "temperature")): 42}
    assert counted(obs, "normagent_snmp_poll_failures_total", reason="bad_response") == 2  # one per bad value


def test_interface_down_and_up_in_a_namespace(netns: tuple[Namespace, Snmpd]) -> None:
    ns, agent = netns
    state = MemoryCheckpoints()
    device = v3(agent, interfaces=("a*",))
    first = poll(device, state=state)
    a0 = if_index(agent, "a0")
    ns.set_link("a0", "down")
    wait_for(lambda: oper_status(agent, a0) != 1)  # snmpd caches its interface table a few seconds
    down = poll(device, state=state)
    ns.set_link("a0", "up")
    wait_for(lambda: oper_status(agent, a0) == 1)
    up = poll(device, state=state)
    key = lambda name: (("device", "r1"), ("interface", name))  # noqa: E731
    assert gauges(first, "normagent_network_interface_up") == {key("a0"): 1, key("a1"): 1}
    assert gauges(down, "normagent_network_interface_up") == {key("a0"): 0, key("a1"): 1}
    assert [(e.kind, e.attrs["interface"]) for e in down if isinstance(e, Event)] == [("network.down", "a0")]
    assert [(e.kind, e.attrs["interface"]) for e in up if isinstance(e, Event)] == [("network.up", "a0")]
    assert gauges(up, "normagent_network_interface_up") == {key("a0"): 1, key("a1"): 1}


def test_a_table_too_large_is_a_bounded_device_error(netns: tuple[Namespace, Snmpd]) -> None:
    _, agent = netns
    capped = poll(Device(name="r1", target=agent.target, interfaces=("*",), max_interfaces=2))
    assert len(gauges(capped, "normagent_network_interface_up")) == 2  # lo, a0 or b0: the first two by ifIndex
    huge = poll(Device(name="r1", target=agent.target, interfaces=("*",), max_rows=10), timeout=None)
    small = poll(Device(name="r2", target=agent.target, interfaces=("*",), max_rows=4))
    assert counted(huge, "normagent_snmp_poll_failures_total", reason="too_many_rows") == 0  # 5 names fit in 10
    assert counted(small, "normagent_snmp_poll_failures_total", reason="too_many_rows") == 1  # 5 do not fit in 4
    assert gauges(small, "normagent_snmp_up") == {(("device", "r2"),): 0}


def test_a_lone_device_that_cannot_finish_before_the_deadline_is_not_started() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        slow = Device(name="slow", target=f"127.0.0.1:{sock.getsockname()[1]}", timeout=timedelta(seconds=5), retries=2)
        obs = poll(slow, timeout=2.0)  # 15 s of attempts would not fit in 2 s
    assert gauges(obs, "normagent_snmp_up") == {(("device", "slow"),): 0}
    assert counted(obs, "normagent_snmp_poll_failures_total", reason="timeout") == 1
