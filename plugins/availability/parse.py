"""Pure parts of the availability plugin: command outputs, and outage and SLA accounting.

Nothing here does I/O or looks at a clock: probe results and times go in, states and observations
come out, so the accounting is tested from tables.

How outages are counted (per service, each probe cycle at time *now*):

- the interval since the previous probe, ``[last, now)``, is *observed* time, and the service is
  taken to have stayed as that probe found it. A gap longer than ``gap`` (the agent was stopped, the
  host suspended) is *unobserved*: counted neither as up nor as down; an outage open before it
  ends at the last probe that saw it (``ended = "unobserved"``);
- downtime in an observed interval is cut at the edges of the maintenance calendar's windows into
  planned and unplanned seconds, and at month edges (UTC), so each month's figures are its own;
- an outage starts at the first failed probe, with that probe's reason, and ends at the first
  probe that succeeds; it is *planned* only when every second of it lay inside a window.

A month's availability is ``1 − unplanned / (observed − planned)``: planned (announced) downtime is
not held against the SLA, and time the agent did not watch is not claimed either way. The error
budget is the share of the month's allowed unplanned downtime ``(1 − target) × month`` still left.

Imports only the standard library (with normagent's ``dataclass``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from normagent import dataclass

if TYPE_CHECKING:
    from normagent import JSONValue

Span = tuple[float, float]  # [start, end) in unix seconds
PlannedSpans = Callable[[float, float], Sequence[Span]]  # the calendar's windows overlapping [a, b)


# --------------------------------------------------------------------------------------------
# command outputs


@dataclass(frozen=True, slots=True)
class UnitState:
    """What ``systemctl show --property=LoadState,ActiveState,SubState <unit>`` says."""

    load: str
    active: str
    sub: str

    @property
    def up(self) -> bool:
        return self.load == "loaded" and self.active in ("active", "reloading")

    @property
    def reason(self) -> str:
        if self.load in ("not-found", "bad-setting", "error", "masked"):
            return f"unit_{self.load.replace('-', '_')}"
        return f"unit_{self.active or 'unknown'}"


def parse_systemctl_show(output: bytes) -> UnitState | None:
    """``Key=Value`` lines of ``systemctl show``; None when the three states are not all there."""
    values: dict[str, str] = {}
    for raw in output.decode("utf-8", errors="replace").splitlines():
        key, sep, value = raw.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    if not {"LoadState", "ActiveState", "SubState"} <= values.keys():
        return None
    return UnitState(values["LoadState"], values["ActiveState"], values["SubState"])


PING_TIME = re.compile(rb"time[=<]([0-9.]+) ?ms")


def parse_ping_rtt(output: bytes) -> float | None:
    """Round-trip seconds from iputils/busybox ``ping`` output (``time=0.045 ms``), or None."""
    match = PING_TIME.search(output)
    return float(match.group(1)) / 1000.0 if match else None


# --------------------------------------------------------------------------------------------
# interval arithmetic


def merge(spans: Sequence[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def planned_part(a: float, b: float, windows: Sequence[Span]) -> float:
    """Seconds of [a, b) inside the windows (overlaps counted once)."""
    return sum(min(e, b) - max(s, a) for s, e in merge([(max(s, a), min(e, b)) for s, e in windows]))


def month_of(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m")


def month_start(moment: float) -> float:
    day = datetime.fromtimestamp(moment, timezone.utc)
    return day.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def next_month_start(moment: float) -> float:
    day = datetime.fromtimestamp(month_start(moment), timezone.utc)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return day.replace(year=year, month=month).timestamp()


def month_seconds(moment: float) -> float:
    return next_month_start(moment) - month_start(moment)


# --------------------------------------------------------------------------------------------
# outage accounting


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe's result: up or down, why, and how long it took."""

    up: bool
    reason: str = "ok"
    duration: float = 0.0
    detail: str = ""  # for the log only (an HTTP status, an error text)
    cert_expiry: float | None = None  # unix time the TLS certificate expires, when known


@dataclass(frozen=True, slots=True)
class ServiceState:
    """Checkpointed per service: the last probe, the open outage and this month's totals."""

    last: float | None = None
    up: bool | None = None
    down_since: float | None = None
    reason: str = ""
    window: str = ""  # what of the first window the open outage touched
    outage_planned: float = 0.0
    outage_unplanned: float = 0.0
    month: str = ""
    observed: float = 0.0
    planned: float = 0.0
    unplanned: float = 0.0

    def to_json(self) -> dict[str, JSONValue]:
        return {f: getattr(self, f) for f in self.__slots__}

    @classmethod
    def from_json(cls, value: Any) -> ServiceState:
        """From a checkpoint; a malformed one starts afresh (nothing is invented)."""
        if not isinstance(value, dict):
            return cls()
        try:
            return cls(
                last=_num(value.get("last")),
                up=value.get("up") if isinstance(value.get("up"), bool) else None,
                down_since=_num(value.get("down_since")),
                reason=str(value.get("reason") or ""),
                window=str(value.get("window") or ""),
                outage_planned=_num(value.get("outage_planned")) or 0.0,
                outage_unplanned=_num(value.get("outage_unplanned")) or 0.0,
                month=str(value.get("month") or ""),
                observed=_num(value.get("observed")) or 0.0,
                planned=_num(value.get("planned")) or 0.0,
                unplanned=_num(value.get("unplanned")) or 0.0,
            )
        except (TypeError, ValueError):
            return cls()

    def availability(self) -> float:
        """This month's availability against the SLA (1.0 while nothing was held against it)."""
        agreed = self.observed - self.planned
        return 1.0 if agreed <= 0 else max(0.0, 1.0 - self.unplanned / agreed)

    def error_budget(self, target: float, now: float) -> float:
        """Share of this month's allowed unplanned downtime still left (below 0: the SLA is breached)."""
        allowed = (1.0 - target) * month_seconds(now)
        if allowed <= 0:
            return 1.0 if self.unplanned == 0 else -1.0
        return 1.0 - self.unplanned / allowed


@dataclass(frozen=True, slots=True)
class Outage:
    """A closed outage, for the ledger's events."""

    start: float
    end: float
    planned_seconds: float
    unplanned_seconds: float
    reason: str
    window: str
    ended: str  # "recovered" | "unobserved"

    @property
    def planned(self) -> bool:
        return self.unplanned_seconds == 0 and self.planned_seconds > 0


@dataclass(slots=True)
class Update:
    """What one probe cycle changes for one service."""

    state: ServiceState
    observed: float = 0.0
    planned: float = 0.0
    unplanned: float = 0.0
    closed: list[Outage] = field(default_factory=list)
    month_ended: ServiceState | None = None  # the totals of a month that ended in this interval


def advance(
    state: ServiceState, probe: Probe, now: float, planned_spans: PlannedSpans, gap: float, window_name: Callable[[float, float], str]
) -> Update:
    """Account the interval since the last probe and apply the new result (see the module docstring)."""
    update = Update(state)
    s = state
    last = s.last
    if last is not None and now > last:
        if now - last > gap:
            if s.down_since is not None:
                update.closed.append(_close(s, last, "unobserved"))
                s = replace(s, down_since=None, reason="", window="", outage_planned=0.0, outage_unplanned=0.0)
            s = replace(s, up=None)
        else:
            cursor = last
            while cursor < now:
                cut = min(now, next_month_start(cursor))
                s, update = _account(s, update, cursor, cut, planned_spans, window_name)
                cursor = cut
    if s.month != month_of(now):
        if s.month:
            update.month_ended = update.month_ended or s
        s = replace(s, month=month_of(now), observed=0.0, planned=0.0, unplanned=0.0)
    if probe.up and s.down_since is not None:
        update.closed.append(_close(s, now, "recovered"))
        s = replace(s, down_since=None, reason="", window="", outage_planned=0.0, outage_unplanned=0.0)
    elif not probe.up and s.down_since is None:
        s = replace(s, down_since=now, reason=probe.reason, window="", outage_planned=0.0, outage_unplanned=0.0)
    update.state = replace(s, last=now, up=probe.up)
    return update


def _account(
    s: ServiceState, update: Update, a: float, b: float, planned_spans: PlannedSpans, window_name: Callable[[float, float], str]
) -> tuple[ServiceState, Update]:
    if s.month != month_of(a):
        if s.month:
            update.month_ended = s
        s = replace(s, month=month_of(a), observed=0.0, planned=0.0, unplanned=0.0)
    seconds = b - a
    update.observed += seconds
    s = replace(s, observed=s.observed + seconds)
    if s.up is False:
        planned = planned_part(a, b, planned_spans(a, b))
        unplanned = seconds - planned
        update.planned += planned
        update.unplanned += unplanned
        window = s.window or (window_name(a, b) if planned > 0 else "")
        s = replace(
            s, planned=s.planned + planned, unplanned=s.unplanned + unplanned, window=window,
            outage_planned=s.outage_planned + planned, outage_unplanned=s.outage_unplanned + unplanned,
        )
    return s, update


def _close(s: ServiceState, end: float, ended: str) -> Outage:
    assert s.down_since is not None
    return Outage(s.down_since, max(end, s.down_since), s.outage_planned, s.outage_unplanned, s.reason, s.window, ended)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
