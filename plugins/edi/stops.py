"""Stops in message traffic, as pure functions over timestamps (unix seconds).

A *stop* is time inside business hours during which messages did not flow: either a silence
(no traffic in one direction) whose business-hours length exceeds the configured gap, or a period
in which the message server's own service was down (that starts a stop at once, gap or not). A stop
is *planned* where a maintenance window covers it (the collector's own ``maintenance`` windows, or
any window or planned change of the agent's shared ``[maintenance]`` calendar), *unplanned*
elsewhere; one silence can hold both kinds. Each second is planned or not by the calendar of the
cycle that counts it, and the stop's event, written when it ends, says what the counter counted:
a window written into the calendar afterwards (or cancelled) changes neither, as for the probed
services' outages.

Stops are counted only from the moment the collector first watched a direction (``since``): the
gaps between files already in an archive when the agent is installed, and the silence between the
newest of them and the first cycle, were not observed and are not claimed as stops.

Counting is incremental and exact across restarts. Per direction the state is the time of the last
traffic and the stop intervals already counted inside the silence that follows it. Each cycle adds
only what is newly known (``StopUpdate.accrued``), so a counter fed with it never counts a second
twice. The only loss of precision is deliberate: traffic found later with a timestamp inside time
already counted as a stop (a file indexed late) cannot un-count it; it ends the silence there.

The events of a stop (``StopUpdate.closed``) are produced once, when traffic resumes and the stop's
extent is final.

Imports only the standard library (with normagent's ``dataclass``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING

from normagent import dataclass

if TYPE_CHECKING:
    from normagent import JSONValue

Span = tuple[float, float]  # [start, end) in unix seconds


# --------------------------------------------------------------------------------------------
# interval arithmetic on sorted, non-overlapping lists


def normalise(spans: Iterable[Span]) -> list[Span]:
    """Sorted, merged, non-empty spans."""
    out: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def intersect(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    out: list[Span] = []
    j = 0
    for start, end in a:
        cur = start
        while j < len(b) and b[j][1] <= cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] < end:
            if b[k][0] > cur:
                out.append((cur, b[k][0]))
            cur = max(cur, b[k][1])
            k += 1
        if cur < end:
            out.append((cur, end))
    return out


def total(spans: Iterable[Span]) -> float:
    return sum(end - start for start, end in spans)


def clip(spans: Sequence[Span], start: float, end: float) -> list[Span]:
    return intersect(spans, [(start, end)]) if start < end else []


# --------------------------------------------------------------------------------------------
# calendars


def _day_spans(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Opening hours in a time zone: ISO weekdays (1 = Monday), from/to, and closed dates.

    ``end`` of 00:00 means midnight at the end of the day (a 24-hour day is 00:00–00:00).
    """

    zone: tzinfo
    weekdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    start: time = time(8, 0)
    end: time = time(16, 0)
    closed: frozenset[date] = frozenset()

    def spans(self, a: float, b: float) -> list[Span]:
        """The business-hours parts of [a, b)."""
        if b <= a:
            return []
        first = datetime.fromtimestamp(a, self.zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(b, self.zone).date()
        out: list[Span] = []
        for day in _day_spans(first, last):
            if day.isoweekday() not in self.weekdays or day in self.closed:
                continue
            open_at = datetime.combine(day, self.start, tzinfo=self.zone).timestamp()
            close_day = day + timedelta(days=1) if self.end == time(0) else day
            close_at = datetime.combine(close_day, self.end, tzinfo=self.zone).timestamp()
            start, end = max(a, open_at), min(b, close_at)
            if start < end:
                out.append((start, end))
        return normalise(out)


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """A recurring window: ISO weekday, from/to local times (``to`` 00:00 = end of day)."""

    weekday: int
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class Maintenance:
    """Planned maintenance: one-off spans (unix seconds) and weekly windows in ``zone``, plus the
    windows of ``calendar`` (the agent's shared maintenance calendar: ``calendar(a, b)`` gives the
    spans overlapping [a, b))."""

    zone: tzinfo
    once: tuple[Span, ...] = ()
    weekly: tuple[WeeklyWindow, ...] = ()
    calendar: Callable[[float, float], Sequence[Span]] | None = None

    def spans(self, a: float, b: float) -> list[Span]:
        out = [s for s in self.once if s[1] > a and s[0] < b]
        if self.calendar is not None and b > a:
            out.extend(self.calendar(a, b))
        if self.weekly:
            first = datetime.fromtimestamp(a, self.zone).date() - timedelta(days=1)
            last = datetime.fromtimestamp(b, self.zone).date()
            for day in _day_spans(first, last):
                for window in self.weekly:
                    if day.isoweekday() != window.weekday:
                        continue
                    start = datetime.combine(day, window.start, tzinfo=self.zone).timestamp()
                    end_day = day + timedelta(days=1) if window.end <= window.start else day
                    end = datetime.combine(end_day, window.end, tzinfo=self.zone).timestamp()
                    out.append((start, end))
        return clip(normalise(out), a, b)


# --------------------------------------------------------------------------------------------
# the per-direction accounting


@dataclass(frozen=True, slots=True)
class StopPiece:
    """A contiguous part of a stop that is wholly planned or wholly unplanned."""

    start: float
    end: float
    planned: bool
    service_down: bool = False

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class DirectionState:
    """Checkpointed per direction: since when it is watched, the last traffic, what was counted in
    the silence after it, and which of that was counted planned.

    ``planned`` keeps the planned-or-not each second was counted with, so the stop's event tells
    what the counter told, however the calendar changed since; ``None``: not known (a checkpoint
    written before it was kept), the calendar tells."""

    since: float | None = None
    last: float | None = None
    counted: tuple[Span, ...] = ()
    planned: tuple[Span, ...] | None = ()

    def to_json(self) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {"since": self.since, "last": self.last, "counted": [list(s) for s in self.counted]}
        if self.planned is not None:
            out["planned"] = [list(s) for s in self.planned]
        return out

    @classmethod
    def from_json(cls, value: object) -> DirectionState:
        if not isinstance(value, dict):
            return cls()
        since, last = value.get("since"), value.get("last")
        counted = value.get("counted") or []
        planned = value.get("planned")
        return cls(
            float(since) if isinstance(since, (int, float)) else None,
            float(last) if isinstance(last, (int, float)) else None,
            tuple((float(s), float(e)) for s, e in counted),
            tuple((float(s), float(e)) for s, e in planned) if isinstance(planned, list) else None,
        )


@dataclass(frozen=True, slots=True)
class StopRules:
    """What makes a stop: business hours, the silence gap, maintenance and service outages."""

    hours: BusinessHours
    gap: float  # seconds of business time
    maintenance: Maintenance
    down: tuple[Span, ...] = ()  # service-down spans, sorted; an open one ends at "now"


@dataclass(frozen=True, slots=True)
class StopUpdate:
    """The result of one cycle for one direction."""

    state: DirectionState
    accrued: tuple[StopPiece, ...] = ()  # newly counted, for the counter
    closed: tuple[StopPiece, ...] = ()  # stops that ended this cycle, whole, for events
    current: float = 0.0  # seconds of the stop going on now (0: traffic flows)
    late_traffic: int = 0  # traffic not newer than what was known (ignored for stops)


def stop_spans(a: float, b: float, rules: StopRules) -> list[Span]:
    """The stop set of one silence [a, b): all of its business hours if they exceed the gap,
    else only the business hours in which the service was down."""
    if b <= a:
        return []
    down = clip(list(rules.down), a, b)
    # Fast path: a silence shorter than the gap in wall time can only stop through an outage.
    if b - a <= rules.gap and not down:
        return []
    business = rules.hours.spans(a, b)
    if total(business) > rules.gap:
        return business
    return intersect(business, down)


def outage_spans(a: float, b: float, rules: StopRules) -> list[Span]:
    """The business hours of [a, b) in which the service was down."""
    down = clip(list(rules.down), a, b)
    return intersect(rules.hours.spans(a, b), down) if down else []


def split_planned(spans: Sequence[Span], rules: StopRules) -> list[StopPiece]:
    """Cut stop spans into planned (under maintenance) and unplanned pieces, in time order."""
    if not spans:
        return []
    return _cut(spans, rules.maintenance.spans(spans[0][0], spans[-1][1]), rules)


def _cut(spans: Sequence[Span], windows: Sequence[Span], rules: StopRules) -> list[StopPiece]:
    """Cut stop spans into the pieces inside ``windows`` (planned) and outside, in time order."""
    if not spans:
        return []
    lo, hi = spans[0][0], spans[-1][1]
    down = clip(list(rules.down), lo, hi)
    pieces = [(s, True) for s in intersect(spans, windows)] + [(s, False) for s in subtract(spans, windows)]
    out = []
    for (start, end), planned in sorted(pieces):
        out.append(StopPiece(start, end, planned, bool(clip(down, start, end))))
    return out


def advance(state: DirectionState, traffic: Sequence[float], now: float, rules: StopRules) -> StopUpdate:
    """Account one cycle of one direction.

    Args:
        state: The committed state (``since`` None: the first cycle; watching starts at ``now``).
        traffic: Timestamps of traffic seen since, sorted ascending.
        now: The time the cycle's scan started; the open silence runs to here.
        rules: Business hours, gap, maintenance, service outages.
    """
    since = state.since if state.since is not None else now
    last = state.last
    counted = list(state.counted)
    if state.planned is not None:
        planned_before = list(state.planned)
    else:  # not kept by the version that counted it: the calendar tells, as it did then
        planned_before = [(p.start, p.end) for p in split_planned(counted, rules) if p.planned]
    accrued: list[Span] = []
    closed: list[Span] = []
    late = 0
    for t in traffic:
        if last is None:
            # Before the first traffic ever seen no silence is known, but an outage still stops.
            if t > since:
                stop = outage_spans(since, t, rules)
                accrued.extend(subtract(stop, counted))
                closed.extend(normalise([*stop, *clip(counted, since, t)]))
                counted = clip(counted, t, float("inf"))
            last = t
            continue
        if t <= last:
            late += 1
            continue
        stop = clip(stop_spans(last, t, rules), since, t) if t > since else []
        new = subtract(stop, counted)
        accrued.extend(new)
        closed.extend(normalise([*stop, *clip(counted, last, t)]))
        # Time past t that was already counted stays counted: it belongs to the next silence now.
        counted = clip(counted, t, float("inf"))
        last = t
    current = 0.0
    if last is None and now > since:
        stop = outage_spans(since, now, rules)
    elif last is not None and now > last:
        stop = clip(stop_spans(last, now, rules), max(since, last), now)
    else:
        stop = []
    if stop or counted:
        new = subtract(stop, counted)
        accrued.extend(new)
        counted = normalise([*counted, *new])
        current = total(normalise([*stop, *counted]))
    pieces = split_planned(normalise(accrued), rules)
    # Every second of a stop that ended was counted, earlier or now: it ends planned or not as
    # it was counted, so its event and the counter agree whatever the calendar did meanwhile.
    planned = normalise([*planned_before, *((p.start, p.end) for p in pieces if p.planned)])
    return StopUpdate(
        state=DirectionState(since, last, tuple(counted), tuple(intersect(normalise(counted), planned))),
        accrued=tuple(pieces),
        closed=tuple(_merge_pieces(_cut(normalise(closed), planned, rules))),
        current=current,
        late_traffic=late,
    )


def _merge_pieces(pieces: list[StopPiece]) -> list[StopPiece]:
    out: list[StopPiece] = []
    for piece in pieces:
        if out and out[-1].end == piece.start and out[-1].planned == piece.planned:
            prev = out[-1]
            out[-1] = StopPiece(prev.start, piece.end, prev.planned, prev.service_down or piece.service_down)
        else:
            out.append(piece)
    return out


# --------------------------------------------------------------------------------------------
# service outages


@dataclass(frozen=True, slots=True)
class ServiceState:
    """Checkpointed outages of the message server: closed spans and the open one's start."""

    down: tuple[Span, ...] = ()
    down_since: float | None = None

    def observe(self, up: bool | None, now: float) -> ServiceState:
        """Record one check: True up, False down, None unknown (the check itself failed)."""
        if up is None:
            return self
        if not up and self.down_since is None:
            return ServiceState(self.down, now)
        if up and self.down_since is not None:
            return ServiceState(tuple(normalise([*self.down, (self.down_since, now)])), None)
        return self

    def spans(self, now: float) -> tuple[Span, ...]:
        if self.down_since is None:
            return self.down
        return tuple(normalise([*self.down, (self.down_since, max(now, self.down_since))]))

    def forget_before(self, moment: float) -> ServiceState:
        return ServiceState(tuple(s for s in self.down if s[1] > moment), self.down_since)

    def to_json(self) -> dict[str, JSONValue]:
        return {"down": [list(s) for s in self.down], "down_since": self.down_since}

    @classmethod
    def from_json(cls, value: object) -> ServiceState:
        if not isinstance(value, dict):
            return cls()
        since = value.get("down_since")
        return cls(
            tuple((float(s), float(e)) for s, e in value.get("down") or []),
            float(since) if isinstance(since, (int, float)) else None,
        )
