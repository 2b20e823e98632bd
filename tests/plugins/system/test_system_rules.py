"""system.unplanned_downtime fires from the boots system.boots reads in a wtmpdb database with the
real schema, against the maintenance calendar, committed to a real ledger whose engine runs the
plugin's rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from normagent.ledger import Ledger
from normagent.maintenance import Calendar, MaintenanceSettings, OneOffWindow
from normagent.plugins.system.collectors import BOOTS_COLLECTOR, BootSettings
from normagent.plugins.system.rules import RULES
from normagent.testing import FakeClock, run_collector_once
from tests.plugins.system.builders import make_wtmpdb, us, utc
from tests.support.deviation_rules import fired, firing, install, what


def boots(tmp_path: Path, down: str, up: str, calendar: Calendar | None = None) -> Ledger:
    """A server that shut down in good order at ``down`` and booted again at ``up`` (UTC, 23 Nov
    2026), read ten minutes after the boot."""
    root = tmp_path / "root"
    (root / "var/lib/wtmpdb").mkdir(parents=True)
    make_wtmpdb(root / "var/lib/wtmpdb/wtmp.db", [
        (1, "reboot", us("2026-11-20 07:00:00"), us(f"2026-11-23 {down}"), "~"),
        (1, "reboot", us(f"2026-11-23 {up}"), None, "~"),
    ])
    clock = FakeClock(utc(f"2026-11-23 {up}") + timedelta(minutes=10))
    ledger = Ledger.open(tmp_path / "ledger.db", clock=clock)
    install(ledger, RULES)
    run_collector_once(BOOTS_COLLECTOR, ledger, root=root, clock=clock, settings=BootSettings(evidence="wtmpdb"),
                       maintenance=calendar or Calendar(MaintenanceSettings()))
    return ledger


def test_a_server_left_off_for_forty_minutes_without_a_plan(tmp_path: Path) -> None:
    """An orderly shutdown, so no unexpected shutdown; but 40 unannounced minutes without it."""
    with boots(tmp_path, "10:00:00", "10:40:00") as ledger:
        assert firing(ledger) == {"system.unplanned_downtime": [{}]}
        [doc] = fired(ledger, "system.unplanned_downtime")
        assert what(doc) == (
            "Serveren var nede utenfor planlagt vedlikehold i til sammen 40 minutter siste 1 døgn (grense 30 minutter).",
            "The server was down outside planned maintenance for 40 minutes in all in the last 1 day (threshold 30 minutes).",
        )
        assert doc["cia"] == ["tilgjengelighet"] and doc["owner"] == "IKT-leder"


@pytest.mark.parametrize(
    ("down", "up", "window"),
    [
        ("10:00:00", "10:03:00", None),  # a quick restart: 3 minutes
        ("10:00:00", "10:40:00", (datetime(2026, 11, 23, 9, 55, tzinfo=timezone.utc), datetime(2026, 11, 23, 11, 0, tzinfo=timezone.utc))),
    ],
    ids=["short", "announced"],
)
def test_short_or_announced_downtime_is_no_deviation(tmp_path: Path, down: str, up: str, window: tuple[datetime, datetime] | None) -> None:
    calendar = Calendar(MaintenanceSettings(windows=(OneOffWindow(*window, "Omstart", "driftsleverandør"),) if window else ()))
    with boots(tmp_path, down, up, calendar) as ledger:
        assert ledger.counter_value("normagent_downtime_seconds_total", {"planned": "true" if window else "false"}) > 0
        assert firing(ledger) == {}
