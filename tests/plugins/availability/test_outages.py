"""Outages, planned by the maintenance calendar or not, kept as intervals in a real ledger; SLA per
month; the report sections; the default rules; bad settings."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from normagent import Period
from normagent.config import load_config
from normagent.errors import ConfigError
from normagent.ledger import Ledger
from normagent.loader import build_plugins
from normagent.maintenance import Calendar, MaintenanceSettings, OneOffWindow, WeeklyWindow
from normagent.plugins.availability import register_report_sections, register_rules
from normagent.plugins.availability.collectors import (
    DOWNTIME,
    OBSERVED,
    OUTAGE_EVENT,
    PROBES_COLLECTOR,
    SERVICE_UP,
    SLA_AVAILABILITY,
    SLA_BUDGET,
    AvailabilitySettings,
    Service,
)
from normagent.plugins.availability.parse import Probe, ServiceState, advance, month_seconds
from normagent.plugins.availability.report import NETWORK_SECTION, SERVICES_SECTION, top_causes
from normagent.testing import FakeClock, FakeHost, run_collector_once

UTC = timezone.utc
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Oslo
NOVEMBER = Period(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


class World:
    """A real ledger, a fake clock, a host whose processes come and go, and a calendar."""

    def __init__(self, tmp_path: Path, calendar: Calendar, services: tuple[Service, ...]) -> None:
        self.clock = FakeClock(START)
        self.host = FakeHost(processes={"epj", "msg", "nhn"})
        self.ledger = Ledger.open(tmp_path / "ledger.db", clock=self.clock)
        self.calendar = calendar
        self.settings = AvailabilitySettings(services=services)

    def cycle(self, minutes: float = 1) -> None:
        run_collector_once(PROBES_COLLECTOR, self.ledger, settings=self.settings, clock=self.clock, host=self.host,
                           maintenance=self.calendar)
        self.clock.advance(minutes * 60)

    def value(self, metric: str, **labels: str) -> float:
        return dict(self.ledger.snapshot().values(metric)).get(tuple(sorted(labels.items())), 0.0)


SERVICES = (
    Service("epj", "process", "epj", sla=0.999),
    Service("msg", "process", "msg", sla=0.99),
    Service("nhn", "process", "nhn", sla=0.995, tags=("network",)),
)


@pytest.fixture
def world(tmp_path: Path) -> Any:
    # A one-off window 12:00–13:00 Oslo (11:00–12:00 UTC) for the EPJ upgrade.
    calendar = Calendar(MaintenanceSettings(windows=(
        OneOffWindow(datetime(2026, 11, 24, 12, 0), datetime(2026, 11, 24, 13, 0), "EPJ 24.2", "EPJ-leverandør"),
    )))
    w = World(tmp_path, calendar, SERVICES)
    yield w
    w.ledger.close()


def test_an_outage_is_an_interval_cut_into_planned_and_unplanned_by_the_calendar(world: World) -> None:
    for _ in range(60):  # 09:00–10:00 UTC: all up
        world.cycle()
    world.host.processes.discard("epj")  # 10:00 UTC: the EPJ goes down, an hour before its window
    for _ in range(150):  # down 10:00–12:30 UTC; the window is 11:00–12:00
        world.cycle()
    world.host.processes.add("epj")
    world.cycle()
    assert world.value(SERVICE_UP, service="epj") == 1
    assert world.value(DOWNTIME, service="epj", planned="true") == pytest.approx(3600)
    assert world.value(DOWNTIME, service="epj", planned="false") == pytest.approx(5400)
    assert world.value(DOWNTIME, service="msg", planned="false") == 0
    (outage,) = world.ledger.events(OUTAGE_EVENT, NOVEMBER)
    assert outage.at == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    assert {k: outage.attrs[k] for k in ("service", "end", "seconds", "planned_seconds", "unplanned_seconds", "planned", "reason", "window")} == {
        "service": "epj", "end": "2026-11-24T12:30:00Z", "seconds": 9000.0, "planned_seconds": 3600.0,
        "unplanned_seconds": 5400.0, "planned": False, "reason": "process_missing", "window": "EPJ 24.2",
    }
    # 210 observed minutes (09:00–12:30), 60 planned, 90 unplanned: 1 − 90/(210 − 60).
    assert world.value(SLA_AVAILABILITY, service="epj", period="month") == pytest.approx(1 - 90 / 150)
    assert world.value(OBSERVED, service="epj") == pytest.approx(210 * 60)


def test_an_outage_wholly_inside_a_window_is_planned(world: World) -> None:
    world.clock.advance(2 * 3600 + 600)  # 11:10 UTC, inside the window
    world.cycle()
    world.host.processes.discard("epj")
    for _ in range(20):
        world.cycle()
    world.host.processes.add("epj")
    world.cycle()
    (outage,) = world.ledger.events(OUTAGE_EVENT, NOVEMBER)
    assert (outage.attrs["planned"], outage.attrs["unplanned_seconds"], outage.attrs["planned_seconds"]) == (True, 0.0, 1200.0)
    assert world.value(SLA_AVAILABILITY, service="epj", period="month") == 1.0


def test_a_restart_mid_outage_counts_nothing_twice(world: World, tmp_path: Path) -> None:
    world.cycle()
    world.host.processes.discard("msg")
    for _ in range(10):
        world.cycle()
    world.ledger.close()
    world.ledger = Ledger.open(tmp_path / "ledger.db", clock=world.clock)  # the agent restarts
    for _ in range(5):
        world.cycle()
    world.host.processes.add("msg")
    world.cycle()
    assert world.value(DOWNTIME, service="msg", planned="false") == pytest.approx(15 * 60)
    assert len(world.ledger.events(OUTAGE_EVENT, NOVEMBER)) == 1


def test_a_long_gap_is_unobserved_and_ends_the_open_outage_where_it_was_last_seen(world: World) -> None:
    world.cycle()
    world.host.processes.discard("nhn")
    world.cycle(minutes=2)
    world.cycle(minutes=60)  # the agent was stopped for an hour (gap 5 min)
    world.cycle()
    (outage,) = world.ledger.events(OUTAGE_EVENT, NOVEMBER)
    assert (outage.attrs["seconds"], outage.attrs["ended"]) == (120.0, "unobserved")
    # The 2 minutes seen down; the hour is nobody's; the new outage at the restart has no length yet.
    assert world.value(DOWNTIME, service="nhn", planned="false") == pytest.approx(120)


def test_month_edges_split_the_figures(tmp_path: Path) -> None:
    state = ServiceState()
    nothing = lambda a, b: []  # noqa: E731
    end_of_month = datetime(2026, 11, 30, 23, 58, tzinfo=UTC).timestamp()
    update = advance(state, Probe(False, "timeout"), end_of_month, nothing, 300, lambda a, b: "")
    update = advance(update.state, Probe(False, "timeout"), end_of_month + 240, nothing, 300, lambda a, b: "")
    assert update.month_ended is not None and update.month_ended.unplanned == pytest.approx(120)
    assert (update.state.month, update.state.unplanned) == ("2026-12", pytest.approx(120))
    assert month_seconds(end_of_month) == 30 * 86400


def test_sla_budget_and_the_default_rules_watch_it(world: World) -> None:
    world.cycle()
    world.host.processes.discard("epj")
    for _ in range(30):
        world.cycle()
    # 0.1 % of November (43.2 min) is allowed; 29 unplanned minutes (first to last failed probe) leave 33 %.
    assert world.value(SLA_BUDGET, service="epj") == pytest.approx(1 - 29 * 60 / (0.001 * 30 * 86400))
    rules = {r.name: r for r in register_rules()}
    assert rules["availability.sla_at_risk"].watch == SLA_BUDGET and rules["availability.sla_at_risk"].threshold == 0.25
    assert rules["availability.service_down"].for_ == timedelta(minutes=5)
    assert {r.name for r in register_rules()} >= {"availability.service_down", "availability.sla_at_risk", "availability.sla_breached"}


def test_hook_register_report_sections_of_availability(world: World) -> None:
    world.cycle()
    for name in ("epj", "nhn"):
        world.host.processes.discard(name)
    for _ in range(50):
        world.cycle()
    world.host.processes.update({"epj", "nhn"})
    world.cycle()
    assert [s.id for s in register_report_sections()] == ["availability.services", "availability.network"]
    services = SERVICES_SECTION.build(world.ledger, NOVEMBER)
    network = NETWORK_SECTION.build(world.ledger, NOVEMBER)
    sla = services.tables[0]
    assert [row[0] for row in sla.rows] == ["epj", "msg"]  # nhn is the network provider's
    epj = sla.rows[0]
    assert epj[1:5] == ("99,90 %", "1,96 %", "Ja", 50)  # 1 − 50/51 minutes; 99.9 % missed
    assert epj[7] == "prosessen kjører ikke (1; 50 min)"
    assert sla.rows[1][3] == "Nei"
    assert [row[0] for row in network.tables[0].rows] == ["nhn"]
    assert "SLA brutt for: nhn" in network.paragraphs[0]


def test_top_causes_rank_by_count_then_minutes() -> None:
    from normagent import Event

    def outage(reason: str, minutes: float) -> Event:
        return Event(OUTAGE_EVENT, START, f"{reason}{minutes}", {"reason": reason, "unplanned_seconds": minutes * 60})

    got = top_causes([outage("timeout", 5), outage("http_503", 30), outage("timeout", 1), outage("refused", 40), outage("dns_error", 1)])
    assert got == "tidsavbrudd (2; 6 min), tilkobling avvist (1; 40 min), HTTP 503 (1; 30 min)"


def test_weekly_window_from_the_shared_calendar_makes_night_work_planned(tmp_path: Path) -> None:
    calendar = Calendar(MaintenanceSettings(weekly=(WeeklyWindow(days=("tue",), from_=time(22), to=time(2)),)))
    w = World(tmp_path, calendar, (Service("epj", "process", "epj"),))
    w.clock = FakeClock(datetime(2026, 11, 24, 21, 30, tzinfo=UTC))  # 22:30 Oslo
    w.cycle()
    w.host.processes.discard("epj")
    for _ in range(10):
        w.cycle()
    assert w.value(DOWNTIME, service="epj", planned="true") == pytest.approx(540)
    assert w.value(DOWNTIME, service="epj", planned="false") == 0
    w.ledger.close()


def test_no_services_is_no_data() -> None:
    from normagent import NoData

    with pytest.raises(NoData):
        run_collector_once(PROBES_COLLECTOR)


@pytest.mark.parametrize(
    ("service", "problem"),
    [
        ('name = "EPJ"\nkind = "process"\ntarget = "x"', 'service name "EPJ"'),
        ('name = "epj"\nkind = "http"\ntarget = "ftp://epj"', "is not an http(s) URL"),
        ('name = "epj"\nkind = "tcp"\ntarget = "epj.example"', "is not host:port"),
        ('name = "epj"\nkind = "icmp"\ntarget = "-f"', "is not a host name"),
        ('name = "epj"\nkind = "http"\ntarget = "https://e/"\nbody_match = "("', "not a regular expression"),
        ('name = "epj"\nkind = "http"\ntarget = "https://e/"\nsla = 1.5', "must be between 0 and 1"),
        ('name = "epj"\nkind = "http"\ntarget = "https://e/"\ntimeout = "5m"', 'must be between "100ms" and "1m"'),
        ('name = "epj"\nkind = "smtp"\ntarget = "x"', 'expected one of "http"'),
        ('name = "epj"\nkind = "process"\ntarget = ""', "target is required"),
    ],
)
def test_bad_service_settings_are_config_problems(tmp_path: Path, service: str, problem: str) -> None:
    from normagent.agent import sections

    config = tmp_path / "normagent.toml"
    config.write_text(f'[[collectors."availability.probes".services]]\n{service}\n')
    with pytest.raises(ConfigError) as err:
        load_config(config, plugins_for=lambda _: build_plugins(entry_points_enabled=False), sections=sections())
    assert problem in str(err.value)


def test_two_services_with_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match='two services are named "epj"'):
        AvailabilitySettings(services=(Service("epj", "process", "a"), Service("epj", "process", "b")))
