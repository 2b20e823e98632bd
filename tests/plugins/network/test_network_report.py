"""The "Nettleverandør" report section: intervals from down/up event pairs, open ones, counters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from normagent import Event, Period, Rollup
from normagent.ledger import Ledger
from normagent.plugins.network.parse import DevicePoll, DeviceState, InterfaceSample, judge
from normagent.plugins.network.report import build
from normagent.testing import FakeClock

NOV = Period(datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc))
T0 = datetime(2026, 11, 23, 8, tzinfo=timezone.utc)


class NoEvents:
    def __init__(self, increases: Mapping[str, Mapping[tuple[str, ...], float]]) -> None:
        self._increases = increases

    def increase(self, metric: str, period: Period, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        return self._increases.get(metric, {})

    def gauge(self, metric: str, at: datetime, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        return {}

    def rollups(self, name: str, period: Period) -> Sequence[Rollup]:
        return []

    def events(self, kind: str, period: Period) -> Sequence[Event]:
        return []


def test_intervals_from_a_real_ledger(tmp_path: Path) -> None:
    """A device silent for 3 minutes, an interface down since the last poll and still down."""
    clock = FakeClock(T0)
    polls = [
        (T0, DevicePoll(ok=True, uptime=100000, interfaces=(InterfaceSample("ge-1", 1, 1, 0),))),
        (T0 + timedelta(minutes=1), DevicePoll(ok=False, reason="timeout")),
        (T0 + timedelta(minutes=4), DevicePoll(ok=True, uptime=124000, interfaces=(InterfaceSample("ge-1", 1, 2, 123000),))),
    ]
    with Ledger.open(tmp_path / "ledger.db", clock=clock) as ledger:
        from normagent import Batch
        from normagent.plugins.network.collectors import SNMP

        ledger.declare(SNMP.metrics)
        state = DeviceState()
        for at, poll in polls:
            obs, state = judge("router", poll, state, at)
            ledger.commit("network.snmp", Batch(obs))
        content = build(ledger, NOV)
    table = content.tables[0]
    assert table.rows[0] == ("router", "(hele enheten)", "2026-11-23 08:01", "2026-11-23 08:04", "3 min")
    assert table.rows[1][:4] == ("router", "ge-1", "2026-11-23 08:03", "pågår")
    assert "2 avbrudd" in content.paragraphs[0]


def test_from_counters_only() -> None:
    content = build(NoEvents({"normagent_network_device_down_seconds_total": {("r",): 120.0}}), NOV)
    assert content.paragraphs[0].startswith("Nedetid på utstyr: 2 min")


def test_quiet_period() -> None:
    assert "Ingen nedetid" in build(NoEvents({}), NOV).paragraphs[0]
