"""Stop intervals: business hours, gap, maintenance, service outages, and exact incremental counting."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normagent.plugins.edi.stops import (
    BusinessHours,
    DirectionState,
    Maintenance,
    ServiceState,
    StopRules,
    WeeklyWindow,
    advance,
    intersect,
    normalise,
    subtract,
    total,
)

OSLO = ZoneInfo("Europe/Oslo")
HOURS = BusinessHours(OSLO)


def at(text: str) -> float:
    """Local Oslo time → unix seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=OSLO).timestamp()


def rules(gap: float = 3600, maintenance: Maintenance | None = None, down: tuple[tuple[float, float], ...] = ()) -> StopRules:
    return StopRules(HOURS, gap, maintenance or Maintenance(OSLO), down)


# --------------------------------------------------------------------------------------------
# intervals and calendars


def test_interval_arithmetic() -> None:
    a = normalise([(5, 10), (0, 3), (2, 4), (10, 12)])
    assert a == [(0, 4), (5, 12)]
    assert intersect(a, [(3, 6), (11, 20)]) == [(3, 4), (5, 6), (11, 12)]
    assert subtract(a, [(1, 2), (6, 7), (11, 30)]) == [(0, 1), (2, 4), (5, 6), (7, 11)]
    assert total(a) == 11


@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        ("2026-11-23T07:00", "2026-11-23T18:00", 8),  # Monday: 08–16
        ("2026-11-27T15:00", "2026-11-30T09:00", 2),  # Friday 15–16 + Monday 08–09
        ("2026-11-28T00:00", "2026-11-30T00:00", 0),  # weekend
        ("2026-03-27T00:00", "2026-03-31T00:00", 16),  # across the spring DST change
        ("2026-10-23T00:00", "2026-10-27T00:00", 16),  # across the autumn DST change
    ],
)
def test_business_hours(start: str, end: str, hours: float) -> None:
    assert total(HOURS.spans(at(start), at(end))) == hours * 3600


def test_closed_dates_and_midnight_end() -> None:
    closed = BusinessHours(OSLO, closed=frozenset({date(2026, 12, 25)}))
    assert total(closed.spans(at("2026-12-25T00:00"), at("2026-12-26T00:00"))) == 0
    all_day = BusinessHours(OSLO, frozenset(range(1, 8)), time(0), time(0))
    assert total(all_day.spans(at("2026-11-28T00:00"), at("2026-11-29T00:00"))) == 86400


def test_maintenance_windows_once_and_weekly() -> None:
    maint = Maintenance(
        OSLO,
        once=((at("2026-11-24T10:00"), at("2026-11-24T11:00")),),
        weekly=(WeeklyWindow(3, time(22), time(2)),),  # Wednesdays 22:00–02:00
    )
    spans = maint.spans(at("2026-11-23T00:00"), at("2026-11-30T00:00"))
    assert spans == [(at("2026-11-24T10:00"), at("2026-11-24T11:00")), (at("2026-11-25T22:00"), at("2026-11-26T02:00"))]


# --------------------------------------------------------------------------------------------
# advance()


def test_a_silence_longer_than_the_gap_is_a_stop() -> None:
    start = DirectionState(since=at("2026-11-24T07:00"), last=at("2026-11-24T09:00"))
    update = advance(start, [at("2026-11-24T11:30")], at("2026-11-24T11:31"), rules())
    assert [(p.start, p.end, p.planned) for p in update.accrued] == [(at("2026-11-24T09:00"), at("2026-11-24T11:30"), False)]
    assert [(p.start, p.end) for p in update.closed] == [(at("2026-11-24T09:00"), at("2026-11-24T11:30"))]
    assert update.current == 0


def test_a_short_silence_is_not() -> None:
    start = DirectionState(since=at("2026-11-24T07:00"), last=at("2026-11-24T09:00"))
    update = advance(start, [at("2026-11-24T09:50")], at("2026-11-24T10:00"), rules())
    assert update.accrued == () and update.closed == ()


def test_a_silence_over_night_counts_business_time_only() -> None:
    """15:30 → next day 08:45: 30 + 45 minutes of business time; above a 1 h gap."""
    start = DirectionState(since=at("2026-11-23T07:00"), last=at("2026-11-23T15:30"))
    update = advance(start, [at("2026-11-24T08:45")], at("2026-11-24T08:46"), rules())
    assert sum(p.seconds for p in update.accrued) == 75 * 60
    assert len(update.closed) == 2  # one piece each business day


def test_maintenance_makes_part_of_a_stop_planned() -> None:
    maint = Maintenance(OSLO, once=((at("2026-11-24T10:00"), at("2026-11-24T11:00")),))
    start = DirectionState(since=at("2026-11-24T07:00"), last=at("2026-11-24T09:00"))
    update = advance(start, [at("2026-11-24T12:00")], at("2026-11-24T12:00"), rules(maintenance=maint))
    planned = sum(p.seconds for p in update.accrued if p.planned)
    unplanned = sum(p.seconds for p in update.accrued if not p.planned)
    assert (planned, unplanned) == (3600, 7200)
    assert [p.planned for p in update.closed] == [False, True, False]


@pytest.mark.parametrize("announced", ["after it was counted", "and cancelled after it was counted"])
def test_a_stop_ends_planned_or_not_as_its_seconds_were_counted(announced: str) -> None:
    """The counter takes each second of a stop planned or not by the calendar of the cycle that
    counts it (as the availability probes do). The stop's event, written when traffic resumes,
    told the whole stop by the calendar of that moment instead: a window written in afterwards
    (or cancelled) made the event disagree with the counter and the report's table with itself."""
    window = Maintenance(OSLO, once=((at("2026-11-24T09:00"), at("2026-11-24T12:00")),))
    before, after = (rules(), rules(maintenance=window)) if announced == "after it was counted" else (rules(maintenance=window), rules())
    start = DirectionState(since=at("2026-11-24T07:00"), last=at("2026-11-24T09:00"))
    first = advance(start, [], at("2026-11-24T11:00"), before)  # 09:00-11:00 counted
    second = advance(DirectionState.from_json(first.state.to_json()), [at("2026-11-24T12:00")], at("2026-11-24T12:00"), after)
    counted = [(p.start, p.end, p.planned) for p in (*first.accrued, *second.accrued)]
    assert [(p.start, p.end, p.planned) for p in second.closed] == counted
    assert [p.planned for p in second.closed] == ([False, True] if announced == "after it was counted" else [True, False])


def test_a_checkpoint_from_before_planned_spans_were_kept_is_judged_by_the_calendar() -> None:
    """A checkpoint written without ``planned`` (the version before): its counted seconds are told
    by the calendar, as then."""
    window = Maintenance(OSLO, once=((at("2026-11-24T09:00"), at("2026-11-24T12:00")),))
    old = {"since": at("2026-11-24T07:00"), "last": at("2026-11-24T09:00"), "counted": [[at("2026-11-24T09:00"), at("2026-11-24T11:00")]]}
    update = advance(DirectionState.from_json(old), [at("2026-11-24T12:00")], at("2026-11-24T12:00"), rules(maintenance=window))
    assert [(p.start, p.end, p.planned) for p in update.closed] == [(at("2026-11-24T09:00"), at("2026-11-24T12:00"), True)]


def test_service_down_stops_at_once_without_a_gap() -> None:
    down = ((at("2026-11-24T10:00"), at("2026-11-24T10:10")),)
    start = DirectionState(since=at("2026-11-24T07:00"), last=at("2026-11-24T09:55"))
    # Traffic every 10 minutes, but the service was down for 10 of them.
    traffic = [at("2026-11-24T10:05"), at("2026-11-24T10:15")]
    update = advance(start, traffic, at("2026-11-24T10:20"), rules(down=down))
    assert sum(p.seconds for p in update.accrued) == 600
    assert all(p.service_down for p in update.accrued)


def test_nothing_before_watching_started_is_a_stop() -> None:
    """Files already in a folder at install: their gaps and the silence after them are not claimed."""
    update = advance(DirectionState(), [at("2026-11-23T09:00"), at("2026-11-23T13:00")], at("2026-11-24T12:00"), rules())
    assert update.accrued == ()
    assert update.state.since == at("2026-11-24T12:00")
    later = advance(update.state, [], at("2026-11-24T14:00"), rules())
    assert sum(p.seconds for p in later.accrued) == 7200  # from the first cycle on


def test_late_traffic_cannot_uncount_a_stop() -> None:
    start = DirectionState(since=at("2026-11-24T07:00"), last=at("2026-11-24T09:00"))
    first = advance(start, [], at("2026-11-24T12:00"), rules())
    assert sum(p.seconds for p in first.accrued) == 3 * 3600
    # A file dated 10:00 shows up only now (indexed late), then traffic resumes at 12:30.
    second = advance(first.state, [at("2026-11-24T10:00"), at("2026-11-24T12:30")], at("2026-11-24T12:31"), rules())
    assert sum(p.seconds for p in second.accrued) == 1800  # 12:00–12:30, nothing counted twice
    assert second.current == 0


def test_state_round_trips_through_json() -> None:
    state = DirectionState(1.0, 2.0, ((3.0, 4.0),), ((3.5, 4.0),))
    assert DirectionState.from_json(state.to_json()) == state
    service = ServiceState(((1.0, 2.0),), 5.0)
    assert ServiceState.from_json(service.to_json()) == service
    assert DirectionState.from_json(None) == DirectionState()


def test_service_state_observations() -> None:
    service = ServiceState().observe(False, 100).observe(False, 160).observe(None, 200).observe(True, 300)
    assert service == ServiceState(((100.0, 300.0),), None)
    assert ServiceState().observe(False, 100).spans(250) == ((100.0, 250.0),)


DAY_START = at("2026-11-23T06:00")
WEEK = 5 * 86400


@settings(max_examples=150, deadline=None)
@given(
    traffic=st.lists(st.floats(min_value=0, max_value=WEEK), max_size=40),
    cuts=st.lists(st.floats(min_value=0, max_value=WEEK), max_size=8),
    gap=st.sampled_from([600.0, 3600.0, 7200.0]),
)
def test_counting_in_cycles_equals_counting_at_once(traffic: list[float], cuts: list[float], gap: float) -> None:
    """However the traffic is split into cycles, the seconds counted are the same."""
    times = sorted(DAY_START + t for t in traffic)
    maint = Maintenance(OSLO, once=((DAY_START + 86400 + 3 * 3600, DAY_START + 86400 + 5 * 3600),))
    r = rules(gap=gap, maintenance=maint)
    end = DAY_START + WEEK
    once = advance(DirectionState(since=DAY_START), times, end, r)
    state = DirectionState(since=DAY_START)
    counted = {True: 0.0, False: 0.0}
    for cut in [*sorted(DAY_START + c for c in cuts), end]:
        update = advance(state, [t for t in times if (state.last or 0) < t <= cut], cut, r)
        for piece in update.accrued:
            counted[piece.planned] += piece.seconds
        state = update.state
    expected = {True: 0.0, False: 0.0}
    for piece in once.accrued:
        expected[piece.planned] += piece.seconds
    assert counted[True] == pytest.approx(expected[True], abs=1e-6)
    assert counted[False] == pytest.approx(expected[False], abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(
    traffic=st.lists(st.floats(min_value=0, max_value=WEEK), max_size=30),
    cycles=st.lists(st.tuples(st.floats(min_value=0, max_value=WEEK), st.booleans()), max_size=8),
)
def test_stops_end_with_the_planned_seconds_the_counter_counted(traffic: list[float], cycles: list[tuple[float, bool]]) -> None:
    """However the calendar changes from cycle to cycle, the ended stops' events hold, planned and
    unplanned, exactly the seconds the counter counted."""
    times = sorted(DAY_START + t for t in traffic)
    window = Maintenance(OSLO, once=((DAY_START + 86400 + 3 * 3600, DAY_START + 3 * 86400),))
    end = DAY_START + WEEK
    state = DirectionState(since=DAY_START)
    counted = {True: 0.0, False: 0.0}
    ended = {True: 0.0, False: 0.0}
    steps = [*sorted((DAY_START + c, w) for c, w in cycles), (end, False), (end + 1, True)]
    for cut, windowed in steps:
        batch = [t for t in times if (state.last or 0) < t <= cut] + ([end + 1] if cut == end + 1 else [])
        update = advance(state, batch, cut, rules(gap=1800, maintenance=window if windowed else None))
        for piece in update.accrued:
            counted[piece.planned] += piece.seconds
        for piece in update.closed:
            ended[piece.planned] += piece.seconds
        state = update.state
    assert ended[True] == pytest.approx(counted[True], abs=1e-6)
    assert ended[False] == pytest.approx(counted[False], abs=1e-6)
