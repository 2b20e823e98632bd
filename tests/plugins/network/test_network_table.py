"""network.snmp walks a device's interface names only when something says the table may have
changed, and at least every ``rewalk`` (issue 15 item 6): between walks a poll is one GET that
reads the chosen interfaces' names with their columns.

The device is a stand-in whose sysUpTime runs on the test's fake clock (the period is minutes;
the real snmpd of test_network_snmpd.py shows the request counts and a real restart). Each
reason to walk again is pinned by a test that changes only that one thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from normagent import Gauge
from normagent.ledger import MemoryCheckpoints
from normagent.model import SnmpVarBind
from normagent.plugins.network.collectors import (
    IF_COLUMNS,
    IF_DESCR,
    IF_NAME,
    IF_NUMBER,
    IF_TABLE_LAST_CHANGE,
    SNMP,
    SYS_UPTIME,
    Device,
    SnmpSettings,
)
from normagent.testing import FakeClock, observations, run_collector_once
from tests.support.snmp_standin import StandInDevice


class Switch(StandInDevice):
    """A device with named interfaces by ifIndex, as an SNMP client sees it; counts its walks."""

    def __init__(self, clock: FakeClock, names: dict[int, str]) -> None:
        super().__init__(clock)
        self.names = dict(names)
        self.number = len(names)
        self.last_change = 0
        self.walks = 0
        self.gets = 0

    def get(self, oids: Sequence[str]) -> list[SnmpVarBind]:
        self.gets += 1
        return [SnmpVarBind(oid, self._value(oid)) for oid in oids]

    def _value(self, oid: str) -> object:
        fixed: dict[str, object] = {SYS_UPTIME: self.uptime(), IF_NUMBER: self.number, IF_TABLE_LAST_CHANGE: self.last_change}
        if oid in fixed:
            return fixed[oid]
        column, _, index = oid.rpartition(".")
        if column == IF_NAME:
            name = self.names.get(int(index))
            return name.encode() if name is not None else None
        if column in IF_COLUMNS.values() and int(index) in self.names:
            return 1 if column == IF_COLUMNS["oper"] else 0
        return None

    def walk(self, oid: str, *, max_rows: int = 10_000) -> list[SnmpVarBind]:
        self.walks += 1
        if oid != IF_NAME:
            return []
        return [SnmpVarBind(f"{IF_NAME}.{index}", name.encode()) for index, name in sorted(self.names.items())]


DEVICE = Device(name="sw", target="192.0.2.2", interfaces=("ge-*",))


def poll(switch: Switch, state: MemoryCheckpoints, device: Device = DEVICE) -> set[str]:
    """One run of network.snmp a minute after the last; the interfaces it exported."""
    switch.clock.advance(60)
    obs = observations(run_collector_once(SNMP, settings=SnmpSettings(devices=(device,)), snmp=switch, clock=switch.clock, state=state))
    return {dict(o.labels)["interface"] for o in obs if isinstance(o, Gauge) and o.metric == "normagent_network_interface_up"}


@pytest.fixture
def switch(clock: FakeClock) -> Switch:
    return Switch(clock, {1: "lo", 2: "ge-0/0/1", 3: "ge-0/0/2"})


def settled(switch: Switch, state: MemoryCheckpoints) -> None:
    """The first poll walks; the next one does not (the table holds)."""
    assert poll(switch, state) == {"ge-0/0/1", "ge-0/0/2"}
    assert switch.walks == 1
    assert poll(switch, state) == {"ge-0/0/1", "ge-0/0/2"}
    assert (switch.walks, switch.gets) == (1, 2)


def test_an_idle_poll_walks_once_and_then_reads_the_names_with_the_columns(switch: Switch) -> None:
    state = MemoryCheckpoints()
    settled(switch, state)
    for _ in range(10):
        poll(switch, state)
    assert (switch.walks, switch.gets) == (1, 12)


def test_the_walk_is_repeated_within_the_rewalk_period(switch: Switch) -> None:
    """An interface renamed into the patterns on an index not chosen before, with nothing else to
    show it (same ifNumber, an agent that keeps ifTableLastChange at 0), is seen within
    ``rewalk`` (15 minutes by default)."""
    state = MemoryCheckpoints()
    settled(switch, state)  # walked at minute 1
    switch.names[1] = "ge-0/0/0"
    for _ in range(13):  # minutes 3 to 15
        assert poll(switch, state) == {"ge-0/0/1", "ge-0/0/2"}
    assert switch.walks == 1
    assert poll(switch, state) == {"ge-0/0/0", "ge-0/0/1", "ge-0/0/2"}  # minute 16: 15 after the walk
    assert switch.walks == 2


def test_rewalk_zero_walks_on_every_poll(switch: Switch) -> None:
    state = MemoryCheckpoints()
    device = replace(DEVICE, rewalk=timedelta(0))
    for _ in range(3):
        poll(switch, state, device)
    assert switch.walks == 3


def test_a_restart_walks_again(switch: Switch) -> None:
    """A device that restarted may have numbered its interfaces anew: the chosen indices kept
    their names, but another one is now in the patterns."""
    state = MemoryCheckpoints()
    settled(switch, state)
    switch.booted = switch.clock.now()
    switch.names[1] = "ge-0/0/0"
    assert poll(switch, state) == {"ge-0/0/0", "ge-0/0/1", "ge-0/0/2"}
    assert switch.walks == 2


def test_a_changed_if_number_walks_again(switch: Switch) -> None:
    state = MemoryCheckpoints()
    settled(switch, state)
    switch.names[4] = "ge-0/0/3"
    switch.number += 1
    assert poll(switch, state) == {"ge-0/0/1", "ge-0/0/2", "ge-0/0/3"}
    assert switch.walks == 2


def test_a_changed_if_table_last_change_walks_again(switch: Switch) -> None:
    state = MemoryCheckpoints()
    settled(switch, state)
    switch.names[1] = "ge-0/0/0"
    switch.last_change = switch.uptime() - 3000  # 30 s ago: not within the poll's uncertainty
    assert poll(switch, state) == {"ge-0/0/0", "ge-0/0/1", "ge-0/0/2"}
    assert switch.walks == 2
    poll(switch, state)
    assert switch.walks == 2, "the new value is kept with the new walk"


def test_a_change_of_the_table_just_before_the_walk_walks_again_next_time(switch: Switch) -> None:
    """ifTableLastChange within the poll's uncertainty of sysUpTime: the ifNumber and
    ifTableLastChange of the GET may be newer than the names the walk read, so the table is not
    kept and the next poll walks."""
    state = MemoryCheckpoints()
    switch.last_change = switch.uptime() + 6000 - 100  # a second before the first poll
    poll(switch, state)
    switch.names[1] = "ge-0/0/0"  # what the walk could have missed
    assert poll(switch, state) == {"ge-0/0/0", "ge-0/0/1", "ge-0/0/2"}
    assert switch.walks == 2
    poll(switch, state)
    assert switch.walks == 2


@pytest.mark.parametrize("name", [None, "ge-0/0/9"], ids=["absent", "renamed"])
def test_a_chosen_index_absent_or_renamed_walks_again(switch: Switch, name: str | None) -> None:
    state = MemoryCheckpoints()
    settled(switch, state)
    if name is None:
        del switch.names[3]
    else:
        switch.names[3] = name
    assert poll(switch, state) == ({"ge-0/0/1"} if name is None else {"ge-0/0/1", "ge-0/0/9"})
    assert switch.walks == 2


def test_changed_patterns_or_cap_walk_again(switch: Switch) -> None:
    state = MemoryCheckpoints()
    settled(switch, state)
    assert poll(switch, state, replace(DEVICE, interfaces=("lo",))) == {"lo"}
    assert switch.walks == 2
    assert poll(switch, state, replace(DEVICE, interfaces=("lo",), max_interfaces=1)) == {"lo"}
    assert switch.walks == 3


def test_a_checkpoint_that_does_not_read_walks_again(switch: Switch) -> None:
    state = MemoryCheckpoints()
    settled(switch, state)
    assert "table:sw" in state.values
    state.values["table:sw"] = {"column": IF_NAME, "chosen": "garbage"}  # a checkpoint that does not read
    poll(switch, state)
    assert switch.walks == 2


@pytest.mark.parametrize(
    "damage",
    [{"column": "1.3.6.1.2.1.31.1.1.1.1 OR 1"}, {"column": ""}, {"boot": "nan"}],
    ids=["column-not-an-oid", "column-empty", "boot-nan"],
)
def test_a_damaged_checkpoint_is_not_asked_of_the_device_nor_trusted(switch: Switch, damage: dict[str, Any]) -> None:
    """The column is asked of the device and the times decide whether the table is stale: a
    checkpoint whose column is no numeric OID, or whose times are not finite (a NaN makes every
    comparison false, so the table would never look stale), reads as no table: the poll walks
    first and asks one GET, of what the walk chose."""
    state = MemoryCheckpoints()
    settled(switch, state)
    state.values["table:sw"] = {**state.values["table:sw"], **damage}
    assert poll(switch, state) == {"ge-0/0/1", "ge-0/0/2"}
    assert (switch.walks, switch.gets) == (2, 3)


def test_a_device_with_descriptions_only_keeps_the_descr_column(clock: FakeClock) -> None:
    class DescrOnly(Switch):
        def _value(self, oid: str) -> object:
            if oid.startswith(IF_NAME + "."):
                return None
            if oid.startswith(IF_DESCR + "."):
                return super()._value(IF_NAME + oid[len(IF_DESCR) :])
            return super()._value(oid)

        def walk(self, oid: str, *, max_rows: int = 10_000) -> list[SnmpVarBind]:
            self.walks += 1
            rows = {i: n for i, n in self.names.items()} if oid == IF_DESCR else {}
            return [SnmpVarBind(f"{IF_DESCR}.{i}", n.encode()) for i, n in sorted(rows.items())]

    switch = DescrOnly(clock, {1: "lo", 2: "ge-0/0/1"})
    state = MemoryCheckpoints()
    assert poll(switch, state) == {"ge-0/0/1"}
    walks = switch.walks
    assert poll(switch, state) == {"ge-0/0/1"}
    assert switch.walks == walks
