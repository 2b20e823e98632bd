"""The pure judgement of SNMP polls (plugins/network/parse.py), rule by rule, and the settings."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from normagent import Count, Event, Gauge
from normagent.plugins.network.collectors import Device, SnmpSettings
from normagent.plugins.network.parse import DevicePoll, DeviceState, InterfaceSample, clean_name, judge

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def run(polls: list[tuple[datetime, DevicePoll]], state: DeviceState | None = None) -> tuple[list[list[Any]], DeviceState]:
    state = state or DeviceState()
    out = []
    for at, poll in polls:
        obs, state = judge("r1", poll, state, at)
        state = DeviceState.from_json(state.to_json())  # as the checkpoint carries it
        out.append(obs)
    return out, state


def total(obs: list[Any], metric: str, **labels: str) -> float:
    return sum(o.value for o in obs if isinstance(o, Count) and o.metric == metric and all(dict(o.labels).get(k) == v for k, v in labels.items()))


def gauge(obs: list[Any], metric: str, **labels: str) -> float | None:
    found = [o.value for o in obs if isinstance(o, Gauge) and o.metric == metric and all(dict(o.labels).get(k) == v for k, v in labels.items())]
    return found[-1] if found else None


def events(obs: list[Any], kind: str) -> list[Event]:
    return [o for o in obs if isinstance(o, Event) and o.kind == kind]


def ok(uptime_s: float, *interfaces: InterfaceSample, bad: int = 0) -> DevicePoll:
    return DevicePoll(ok=True, uptime=int(uptime_s * 100), interfaces=interfaces, bad_values=bad, duration=0.05)


def test_a_timeout_is_downtime_from_the_first_failed_poll_to_the_first_answer() -> None:
    out, state = run([
        (T0, ok(1000)),
        (T0 + MIN, DevicePoll(ok=False, reason="timeout")),
        (T0 + 3 * MIN, DevicePoll(ok=False, reason="timeout")),
        (T0 + 4 * MIN, ok(1000 + 240)),
    ])
    assert [gauge(o, "normagent_snmp_up") for o in out] == [1, 0, 0, 1]
    assert [e.at for e in events(out[1], "network.down")] == [T0 + MIN]
    up = events(out[3], "network.up")[0]
    assert up.attrs == {"device": "r1", "interface": "", "down_since": (T0 + MIN).isoformat(timespec="seconds"), "seconds": 180.0}
    assert sum(total(o, "normagent_network_device_down_seconds_total") for o in out) == 180
    assert total(out[1], "normagent_snmp_poll_failures_total", reason="timeout") == 1
    assert state.down_since is None and not events(out[3], "network.device_restart")


@pytest.mark.parametrize("reason", ["auth", "error", "too_many_rows"])
def test_a_refusal_is_an_snmp_failure_not_downtime(reason: str) -> None:
    out, state = run([(T0, ok(1000)), (T0 + MIN, DevicePoll(ok=False, reason=reason))])
    assert gauge(out[1], "normagent_snmp_up") == 0 and total(out[1], "normagent_snmp_poll_failures_total", reason=reason) == 1
    assert not events(out[1], "network.down") and state.down_since is None


@pytest.mark.parametrize(
    ("uptimes", "restarts"),
    [
        ([1000, 1060, 1120], 0),
        ([1000, 30, 90], 1),  # restarted 30 s before the second poll
        ([1000, 1060.4, 1119.7], 0),  # jitter of the poll timing and tick rounding
        ([5, 2, 62], 1),  # restarted twice, the second time with little uptime
        ([2**32 / 100 - 30, 30, 90], 0),  # TimeTicks wrapped after 497 days: no restart
    ],
)
def test_restarts(uptimes: list[float], restarts: int) -> None:
    out, _ = run([(T0 + i * MIN, ok(u)) for i, u in enumerate(uptimes)])
    found = [e for o in out for e in events(o, "network.device_restart")]
    assert len(found) == restarts == sum(total(o, "normagent_network_device_restarts_total") for o in out)
    if restarts:
        assert found[0].at == T0 + MIN - timedelta(seconds=uptimes[1])


def iface(oper: int | None = 1, last_change: int | None = 0, wide: bool = True, **counters: int) -> InterfaceSample:
    return InterfaceSample("ge-0/0/1", 3, oper, last_change, dict(counters), frozenset({"in_octets", "out_octets"}) if wide else frozenset())


def test_counters_add_the_increase_from_the_second_poll_on() -> None:
    out, _ = run([
        (T0, ok(1000, iface(in_octets=100, out_octets=10, in_errors=2))),
        (T0 + MIN, ok(1060, iface(in_octets=350, out_octets=10, in_errors=5))),
    ])
    assert total(out[0], "normagent_network_interface_bytes_total") == 0  # a baseline
    assert total(out[1], "normagent_network_interface_bytes_total", direction="in", interface="ge-0/0/1") == 250
    assert total(out[1], "normagent_network_interface_errors_total", direction="in") == 3


@pytest.mark.parametrize(
    ("first", "second", "wide", "uptime2", "increase"),
    [
        (2**32 - 10, 5, False, 1060, 15),  # a 32-bit counter wrapped
        (10**12, 500, True, 1060, 500),  # a 64-bit counter reset: the value is what came since
        (10**12, 500, True, 20, 500),  # the device restarted: the value is what came since boot
    ],
)
def test_counter_wrap_reset_and_restart(first: int, second: int, wide: bool, uptime2: float, increase: int) -> None:
    out, _ = run([(T0, ok(1000, iface(wide=wide, in_octets=first))), (T0 + MIN, ok(uptime2, iface(wide=wide, in_octets=second)))])
    assert total(out[1], "normagent_network_interface_bytes_total") == increase


def test_interface_outage_is_dated_by_if_last_change() -> None:
    out, state = run([
        (T0, ok(1000, iface(oper=1, last_change=500))),
        (T0 + MIN, ok(1060, iface(oper=2, last_change=103000))),  # went down at uptime 1030 s: 30 s ago
        (T0 + 2 * MIN, ok(1120, iface(oper=2, last_change=103000))),
        (T0 + 3 * MIN, ok(1180, iface(oper=1, last_change=116000))),  # up at uptime 1160 s: 20 s ago
    ])
    down = events(out[1], "network.down")[0]
    assert down.at == T0 + MIN - timedelta(seconds=30) and down.attrs["interface"] == "ge-0/0/1"
    assert [gauge(o, "normagent_network_interface_up") for o in out] == [1, 0, 0, 1]
    up = events(out[3], "network.up")[0]
    assert up.at == T0 + 3 * MIN - timedelta(seconds=20) and up.attrs["seconds"] == 130
    assert sum(total(o, "normagent_network_interface_down_seconds_total") for o in out) == 130
    assert state.interfaces["ge-0/0/1"].down_since is None


def test_an_interface_already_down_at_first_sight_is_down_from_that_poll() -> None:
    out, _ = run([(T0, ok(1000, iface(oper=2, last_change=10)))])
    assert events(out[0], "network.down")[0].at == T0


def test_a_change_time_is_never_before_the_previous_poll() -> None:
    """ifLastChange from before the previous poll (a flap in between) is read as 'since then'."""
    out, _ = run([(T0, ok(1000, iface(oper=1))), (T0 + MIN, ok(1060, iface(oper=2, last_change=1000)))])
    assert events(out[1], "network.down")[0].at == T0


def test_bad_values_count_and_make_the_poll_not_up() -> None:
    out, _ = run([(T0, ok(1000, iface(oper=None), bad=2))])
    assert gauge(out[0], "normagent_snmp_up") == 0
    assert total(out[0], "normagent_snmp_poll_failures_total", reason="bad_response") == 2
    assert gauge(out[0], "normagent_network_interface_up") is None


def test_state_survives_garbage() -> None:
    assert DeviceState.from_json({"boot": "x", "interfaces": {"a": "b", "c": {"oper": True, "counters": {"x": "1"}}}}).interfaces["c"].oper is None
    assert DeviceState.from_json([1, 2]) == DeviceState()


@pytest.mark.parametrize(("raw", "name"), [(b"ge-0/0/1", "ge-0/0/1"), (b"eth\x1b[31m0", "eth?[31m0"), (b"x" * 300, "x" * 64), (7, None), (b"  ", None), (b"\xff\xfe", "\ufffd\ufffd")])
def test_interface_names_from_a_device_are_cleaned(raw: object, name: str | None) -> None:
    assert clean_name(raw) == name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "", "target": "x"}, "name"),
        ({"name": "a b", "target": "x"}, "name"),
        ({"name": "r", "target": ""}, "target is required"),
        # were accepted by check-config and failed every poll (or, "²", raised ValueError in it)
        ({"name": "r", "target": "192.0.2.1:99999"}, "port '99999' is not a number from 1 to 65535"),
        ({"name": "r", "target": "192.0.2.1:\u00b2"}, "is not a number from 1 to 65535"),
        ({"name": "r", "target": "[2001:db8::1"}, r"expected \[address\] or \[address\]:port"),
        ({"name": "r", "target": "x", "version": "3"}, "needs a user"),
        ({"name": "r", "target": "x", "version": "3", "user": "u", "auth_key": "short", "priv_key": "long-enough"}, "auth_key must be at least 8"),
        ({"name": "r", "target": "x", "version": "3", "user": "u", "auth_protocol": "none", "priv_key": "long-enough"}, "privacy needs authentication"),
        ({"name": "r", "target": "x", "oids": {"cpu": "1.3.6.x"}}, "numeric OID"),
        ({"name": "r", "target": "x", "oids": {"c p u": "1.3.6.1"}}, "not a valid label"),
    ],
)
def test_device_settings_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Device(**kwargs)


def test_device_names_are_unique_and_secrets_stay_out_of_repr() -> None:
    with pytest.raises(ValueError, match="used twice"):
        SnmpSettings(devices=(Device("r", "a"), Device("r", "b")))
    device = Device("r", "a", version="3", user="u", auth_key="auth-secret-1", priv_key="priv-secret-2", community="c0mmunity")
    assert "secret" not in repr(device) and "c0mmunity" not in repr(device)
    assert "secret" not in repr(device.auth())
