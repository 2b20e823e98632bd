"""The firewall report section over a real ledger: blocked traffic, rule changes planned or not."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from normagent import Batch, Count, Event, Period
from normagent.ledger import Ledger
from normagent.maintenance import Calendar, MaintenanceSettings, OneOffWindow
from normagent.plugins.firewall.collectors import APPLIANCE_METRICS, planned_batch
from normagent.plugins.firewall.parse import BLOCKED, RULE_CHANGE_EVENT, RULE_CHANGES
from normagent.plugins.firewall.report import build
from normagent.testing import FakeClock

NOV = Period(datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc))


def test_the_report_tells_planned_from_unplanned_rule_changes(tmp_path: Path) -> None:
    """Three changes on edge, one inside a maintenance window: the table says 3, of them 2
    unplanned, and each change's row says whether it was planned."""
    at = datetime(2026, 11, 20, 7, 30, tzinfo=timezone.utc)
    calendar = Calendar(MaintenanceSettings(time_zone="UTC", windows=(OneOffWindow(start=at.replace(minute=0), end=at.replace(hour=8, minute=0)),)))
    changes = [at, at.replace(hour=9), at.replace(day=21)]
    batch = Batch(
        observations=[
            Count(BLOCKED, {"device": "edge", "direction": "in", "proto": "tcp"}, 12_345),
            Count(RULE_CHANGES, {"device": "edge", "planned": "false"}, len(changes)),
            *(Event(RULE_CHANGE_EVENT, when, f"edge:{when.isoformat()}", {"device": "edge", "source": "fortigate"}) for when in changes),
        ]
    )
    with Ledger.open(tmp_path / "l.db", clock=FakeClock(at)) as ledger:
        ledger.declare(APPLIANCE_METRICS)
        ledger.commit("firewall.appliances", planned_batch(batch, calendar))

        content = build(ledger, NOV)

    assert "endret 3 ganger, 2 av dem utenfor planlagte vinduer" in content.paragraphs[0]
    assert "blokkerte 12 345 pakker" in content.paragraphs[0]
    tables = {t.caption.split(" (")[0]: t for t in content.tables}
    assert tables["Endringer i regelsettet"].rows == (("edge", 3, 2),)
    assert [row[-1] for row in tables["Regelendringer"].rows] == ["ja", "nei", "nei"]
