"""Pure judgement of SNMP polls: what a poll of a device means, given what was known before.

``judge(device, poll, state, now)`` takes the device's settings, what one poll returned
(``DevicePoll``: values already read, or why the poll failed) and the device's state from the last
run (``DeviceState``, a checkpoint), and returns the observations and the new state. No I/O, so
every rule below is tested from tables.

Rules:

* **Reachability.** A poll that times out means the device did not answer: it is *down* (network
  downtime) from that poll on, until a poll succeeds. A refused poll (auth, an error status, a huge
  table, values of the wrong type) is an SNMP problem of a device that *did* answer: counted in
  ``normagent_snmp_poll_failures_total{reason}`` and ``normagent_snmp_up`` 0, but not downtime.
* **Intervals.** Downtime of a device and of each interface is kept as a pair of events:
  ``network.down`` when it starts and ``network.up`` (with ``down_since`` and ``seconds``) when it
  ends; the report pairs them, and one still open at the period's end is ongoing. The seconds are
  also counted as they pass (``…_down_seconds_total``), so a fleet's Prometheus sees them too.
  An interface's change time comes from ``ifLastChange`` (the device's uptime at the change), so
  an outage is dated to the tick, not to the poll; never before the previous poll.
* **Restarts.** ``sysUpTime`` gives the boot time (``now − uptime``). A boot time later than the
  one known by more than the poll's uncertainty (twice its duration, at least 2 s) is a restart, dated at the new boot
  time; 497 days of uptime wrap the 32-bit TimeTicks, and a jump of exactly that is no restart.
* **Counters.** Octets (64-bit ``ifHC*``, or the 32-bit ones where a device has no HC counters),
  errors and discards are added as the increase since the last poll: after a restart the value
  itself; a 32-bit counter smaller than before wrapped; a 64-bit one smaller than before was reset
  (the value itself). An interface seen for the first time is a baseline and adds nothing.
* **Bounds.** At most ``max_interfaces`` interfaces per device (the first by ifIndex); names from
  the device are cleaned of control characters and cut to 64 characters before they are labels.

Imports only ``normagent`` and the standard library.
"""

from __future__ import annotations

import math
import re
from dataclasses import field
from datetime import datetime, timezone
from typing import Any

from normagent import Count, Event, Gauge, Observation, dataclass

SNMP_UP = "normagent_snmp_up"
POLL_FAILURES = "normagent_snmp_poll_failures_total"
POLL_DURATION = "normagent_snmp_poll_duration_seconds"
OID_VALUE = "normagent_snmp_oid_value"
DEVICE_UPTIME = "normagent_network_device_uptime_seconds"
DEVICE_RESTARTS = "normagent_network_device_restarts_total"
DEVICE_DOWN = "normagent_network_device_down_seconds_total"
IF_UP = "normagent_network_interface_up"
IF_BYTES = "normagent_network_interface_bytes_total"
IF_ERRORS = "normagent_network_interface_errors_total"
IF_DISCARDS = "normagent_network_interface_discards_total"
IF_DOWN = "normagent_network_interface_down_seconds_total"

DOWN_EVENT = "network.down"  # attrs: device, interface ("" for the device), reason
UP_EVENT = "network.up"  # attrs: device, interface, down_since (ISO time), seconds
RESTART_EVENT = "network.device_restart"  # attrs: device, uptime_seconds

REASONS = ("timeout", "auth", "error", "too_many_rows", "bad_response")
TICKS_WRAP = 2**32 / 100.0  # seconds until 32-bit TimeTicks wrap (497 days)
COUNTER32 = 2**32
MIN_SLACK = 2.0

# (state key, metric, direction, 32-bit?) for the interface counters
COUNTERS = (
    ("in_octets", IF_BYTES, "in"),
    ("out_octets", IF_BYTES, "out"),
    ("in_errors", IF_ERRORS, "in"),
    ("out_errors", IF_ERRORS, "out"),
    ("in_discards", IF_DISCARDS, "in"),
    ("out_discards", IF_DISCARDS, "out"),
)


@dataclass(frozen=True, slots=True)
class InterfaceSample:
    """One interface as polled. ``None``: the device did not give a usable value."""

    name: str
    index: int
    oper: int | None
    last_change: int | None  # TimeTicks
    counters: dict[str, int] = field(default_factory=dict)
    wide: frozenset[str] = frozenset()  # counters that are 64-bit


@dataclass(frozen=True, slots=True)
class DevicePoll:
    """What one poll of a device gave.

    Attributes:
        ok: The device answered (values below are usable).
        reason: Why not, or ``"bad_response"`` with ``ok`` for values of the wrong type.
        detail: A message for the log (never a community or key).
        uptime: sysUpTime in TimeTicks (hundredths of a second).
        uptime_at: When it was read (the boot time is computed from it, not from the end of a run
            that also waited for slower devices).
        interfaces: The configured interfaces found, by ifIndex.
        values: Named extra OIDs that gave a number.
        bad_values: How many values had the wrong type or were absent.
        duration: Seconds the poll took.
    """

    ok: bool
    reason: str = ""
    detail: str = ""
    uptime: int | None = None
    uptime_at: datetime | None = None
    interfaces: tuple[InterfaceSample, ...] = ()
    values: dict[str, float] = field(default_factory=dict)
    bad_values: int = 0
    duration: float = 0.0
    table: InterfaceTable | None = None


@dataclass(frozen=True, slots=True)
class InterfaceTable:
    """What the last walk of a device's interface names chose, and what says it may be stale (the
    checkpoint ``table:<device>``): a poll with a table that still holds GETs the chosen indices'
    names with their columns instead of walking the names again (see ``collectors.poll_device``).

    Attributes:
        column: The column the walk read (``ifName``, else ``ifDescr``).
        chosen: The matching interfaces as (name, ifIndex), by ifIndex, at most ``max_interfaces``.
        bad: Rows of the walk that were not a usable name (counted as bad values on every poll).
        walked_at: When the walk was (epoch seconds, the agent's clock).
        boot: The device's boot time (``walked_at`` − sysUpTime): a later one is a restart.
        number: ``ifNumber`` then (``None``: absent).
        last_change: ``ifTableLastChange`` then (``None``: absent).
        patterns: The ``interfaces`` patterns the choice was made for.
        max_interfaces: The cap the choice was made for.
    """

    column: str
    chosen: tuple[tuple[str, int], ...]
    bad: int
    walked_at: float
    boot: float
    number: int | None
    last_change: int | None
    patterns: tuple[str, ...]
    max_interfaces: int

    @classmethod
    def from_json(cls, value: Any) -> InterfaceTable | None:
        """The table of a checkpoint; ``None`` for anything else (the next poll walks)."""
        if not isinstance(value, dict):
            return None
        try:
            chosen = tuple((str(name), _int(index)) for name, index in value["chosen"])
            column = str(value["column"])
            if not _NUMERIC_OID.fullmatch(column):  # it is asked of the device: an OID, nothing else
                raise ValueError(f"not a numeric OID: {column!r}")
            return cls(
                column=column,
                chosen=chosen,
                bad=_int(value["bad"]),
                walked_at=_finite(value["walked_at"]),
                boot=_finite(value["boot"]),
                number=None if value["number"] is None else _int(value["number"]),
                last_change=None if value["last_change"] is None else _int(value["last_change"]),
                patterns=tuple(str(p) for p in value["patterns"]),
                max_interfaces=_int(value["max_interfaces"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "chosen": [[name, index] for name, index in self.chosen],
            "bad": self.bad,
            "walked_at": self.walked_at,
            "boot": self.boot,
            "number": self.number,
            "last_change": self.last_change,
            "patterns": list(self.patterns),
            "max_interfaces": self.max_interfaces,
        }


_NUMERIC_OID = re.compile(r"[0-9]+(?:\.[0-9]+)+", re.ASCII)


def _finite(value: Any) -> float:
    """A finite float: a NaN time would make every comparison with it false, so a table would
    never look stale."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"not an integer: {value!r}")
    return value


@dataclass
class InterfaceState:
    oper: int | None = None
    down_since: float | None = None
    counted_until: float | None = None
    counters: dict[str, int] = field(default_factory=dict)


@dataclass
class DeviceState:
    """A device as known after the last run (the checkpoint ``device:<name>``)."""

    boot: float | None = None
    down_since: float | None = None
    counted_until: float | None = None
    last_ok: float | None = None
    interfaces: dict[str, InterfaceState] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> DeviceState:
        state = cls()
        if not isinstance(value, dict):
            return state
        for name in ("boot", "down_since", "counted_until", "last_ok"):
            v = value.get(name)
            setattr(state, name, float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None)
        table = value.get("interfaces")
        if isinstance(table, dict):
            for key, raw in list(table.items())[:2000]:
                if not isinstance(raw, dict):
                    continue
                oper = raw.get("oper")
                down = raw.get("down_since")
                until = raw.get("counted_until")
                counters = raw.get("counters")
                state.interfaces[str(key)] = InterfaceState(
                    oper=oper if isinstance(oper, int) and not isinstance(oper, bool) else None,
                    down_since=float(down) if isinstance(down, (int, float)) else None,
                    counted_until=float(until) if isinstance(until, (int, float)) else None,
                    counters={str(k): int(v) for k, v in counters.items() if isinstance(v, int)} if isinstance(counters, dict) else {},
                )
        return state

    def to_json(self) -> dict[str, Any]:
        return {
            "boot": self.boot,
            "down_since": self.down_since,
            "counted_until": self.counted_until,
            "last_ok": self.last_ok,
            "interfaces": {
                name: {"oper": s.oper, "down_since": s.down_since, "counted_until": s.counted_until, "counters": dict(s.counters)}
                for name, s in sorted(self.interfaces.items())
            },
        }


def judge(device: str, poll: DevicePoll, state: DeviceState, now: datetime) -> tuple[list[Observation], DeviceState]:
    """Observations for one poll of ``device`` and the state after it (see the module docstring)."""
    t = now.timestamp()
    obs: list[Observation] = [Gauge(POLL_DURATION, poll.duration, {"device": device})]
    dev = {"device": device}
    if not poll.ok:
        obs.append(Gauge(SNMP_UP, 0, dev))
        obs.append(Count(POLL_FAILURES, {"device": device, "reason": poll.reason or "error"}))
        if poll.reason == "timeout":
            if state.down_since is None:
                state.down_since = t
                state.counted_until = t
                obs.append(_event(DOWN_EVENT, now, device, "", reason="timeout"))
            else:
                obs += _downtime(DEVICE_DOWN, dev, state, t)
        return obs, state

    obs.append(Gauge(SNMP_UP, 0 if poll.bad_values else 1, dev))
    if poll.bad_values:
        obs.append(Count(POLL_FAILURES, {"device": device, "reason": "bad_response"}, poll.bad_values))
    if state.down_since is not None:
        obs += _downtime(DEVICE_DOWN, dev, state, t)
        obs.append(_event(UP_EVENT, now, device, "", down_since=_iso(state.down_since), seconds=round(t - state.down_since, 3)))
        state.down_since = state.counted_until = None

    restarted = False
    if poll.uptime is not None:
        uptime = poll.uptime / 100.0
        obs.append(Gauge(DEVICE_UPTIME, uptime, dev))
        boot = (poll.uptime_at or now).timestamp() - uptime
        slack = max(MIN_SLACK, 2 * poll.duration)
        if state.boot is not None and boot - state.boot > slack and abs(boot - state.boot - TICKS_WRAP) > slack:
            restarted = True
            obs.append(Count(DEVICE_RESTARTS, dev))
            obs.append(Event(RESTART_EVENT, _dt(boot), f"{device}:{int(boot)}", {"device": device, "uptime_seconds": round(uptime, 2)}))
        state.boot = boot

    for name, value in sorted(poll.values.items()):
        obs.append(Gauge(OID_VALUE, value, {"device": device, "name": name}))

    seen: set[str] = set()
    for sample in poll.interfaces:
        seen.add(sample.name)
        obs += _interface(device, sample, state, poll.uptime, t, restarted)
    for name in list(state.interfaces):
        if name not in seen and state.interfaces[name].down_since is None:
            del state.interfaces[name]  # gone and not in an outage: nothing left to close
    state.last_ok = t
    return obs, state


def _interface(
    device: str, sample: InterfaceSample, state: DeviceState, uptime: int | None, t: float, restarted: bool
) -> list[Observation]:
    labels = {"device": device, "interface": sample.name}
    obs: list[Observation] = []
    known = state.interfaces.get(sample.name)
    first = known is None
    s = known or InterfaceState()
    state.interfaces[sample.name] = s
    previous_poll = state.last_ok

    for key, metric, direction in COUNTERS:
        value = sample.counters.get(key)
        if value is None:
            continue
        before = s.counters.get(key)
        s.counters[key] = value
        if first or before is None:
            continue
        if restarted:
            increase = value
        elif value >= before:
            increase = value - before
        elif key not in sample.wide:
            increase = value + COUNTER32 - before  # a 32-bit counter wrapped
        else:
            increase = value  # a 64-bit counter was reset
        if increase:
            obs.append(Count(metric, {**labels, "direction": direction}, increase))

    if sample.oper is None:
        return obs
    up = sample.oper == 1
    obs.append(Gauge(IF_UP, 1 if up else 0, labels))
    changed = _change_time(sample, uptime, t, previous_poll)
    if not up and s.down_since is None:
        start = t if first else changed
        s.down_since = s.counted_until = start
        obs.append(_event(DOWN_EVENT, _dt(start), device, sample.name, reason=f"oper_status_{sample.oper}"))
        obs += _downtime(IF_DOWN, labels, s, t)
    elif not up:
        obs += _downtime(IF_DOWN, labels, s, t)
    elif s.down_since is not None:
        end = max(changed, s.down_since)
        obs += _downtime(IF_DOWN, labels, s, end)
        obs.append(
            _event(UP_EVENT, _dt(end), device, sample.name, down_since=_iso(s.down_since), seconds=round(end - s.down_since, 3))
        )
        s.down_since = s.counted_until = None
    s.oper = sample.oper
    return obs


def _change_time(sample: InterfaceSample, uptime: int | None, t: float, previous_poll: float | None) -> float:
    """When the interface entered its state: from ifLastChange, never before the previous poll."""
    if uptime is None or sample.last_change is None or not 0 <= sample.last_change <= uptime:
        return t
    at = t - (uptime - sample.last_change) / 100.0
    return min(t, max(at, previous_poll if previous_poll is not None else at))


def _downtime(metric: str, labels: dict[str, str], s: Any, until: float) -> list[Observation]:
    start = s.counted_until if s.counted_until is not None else s.down_since
    if start is None or until <= start:
        return []
    s.counted_until = until
    return [Count(metric, labels, round(until - start, 3))]


def _event(kind: str, at: datetime, device: str, interface: str, **attrs: Any) -> Event:
    return Event(kind, at, f"{device}|{interface}|{at.timestamp():.3f}", {"device": device, "interface": interface, **attrs})


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _iso(ts: float) -> str:
    return _dt(ts).isoformat(timespec="seconds")


def clean_name(raw: Any) -> str | None:
    """An interface name from the device as a label value, or None if it is not text."""
    if isinstance(raw, bytes):
        text = raw.decode("utf-8", "replace")
    elif isinstance(raw, str):
        text = raw
    else:
        return None
    text = "".join(ch if ch.isprintable() else "?" for ch in text).strip()
    return text[:64] or None
