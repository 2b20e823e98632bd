"""system.host and system.boots through normagent.testing: fakes, fixture roots, a real ledger."""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from datetime import time as dtime
from pathlib import Path
from typing import Any

import pytest
import structlog

from normagent import Batch, Count, Event, Gauge, NoData
from normagent.ledger import Ledger
from normagent.maintenance import Calendar, MaintenanceSettings, WeeklyWindow
from normagent.model import CommandResult
from normagent.plugins.system.collectors import (
    BOOT_EVENT,
    BOOT_RECORDS_INVALID,
    BOOT_TIME,
    BOOTS,
    BOOTS_COLLECTOR,
    CPU_SECONDS,
    DOWNTIME,
    FS_AVAIL,
    FS_AVAIL_RATIO,
    FS_UP,
    LOAD,
    FS_FREE,
    FS_SIZE,
    HOST,
    MEMORY_AVAILABLE_RATIO,
    UNEXPECTED_SHUTDOWNS,
    BootSettings,
    EvidenceUnavailable,
    HostSettings,
    list_boots_argv,
    probe_host,
    tail_argv,
)
from normagent.plugins.system.parse import WTMP_RECORD_SIZE
from normagent.sources.command import run_command
from normagent.sources.host import ProcHost
from normagent.model import Period
from normagent.testing import (
    FakeClock,
    FakeHost,
    MemoryCheckpoints,
    make_context,
    observations,
    recorded_command,
    run_collector_once,
)
from tests.plugins.system.builders import WTMPDB_ROWS, make_wtmpdb, t, utc
from tests.support.tools import require_tool

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
WTMP = FIXTURES / "system" / "wtmp"
COMMANDS = FIXTURES / "commands"
REPO = Path(__file__).resolve().parents[3]
GiB = 2**30


def gauges(batches: list[Batch]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(o.metric, o.labels): o.value for o in observations(batches) if isinstance(o, Gauge)}


def counts(batches: list[Batch]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    total: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for o in observations(batches):
        if isinstance(o, Count):
            total[(o.metric, o.labels)] = total.get((o.metric, o.labels), 0.0) + o.value
    return total


def boot_events(batches: list[Batch]) -> list[Event]:
    return [o for o in observations(batches) if isinstance(o, Event) and o.kind == BOOT_EVENT]


# --------------------------------------------------------------------------------------------
# system.host


def test_host_gauges_from_fake_host() -> None:
    host = FakeHost(
        boot=1_763_880_000.0,
        mem={"total": 8 * GiB, "available": 2 * GiB, "swap_total": GiB, "swap_used": 0.25 * GiB},
        disks={
            "/": {"total": 100 * GiB, "used": 40 * GiB, "free": 55 * GiB},  # 5 GiB reserved for root
            "/srv/edi": {"total": 10 * GiB, "used": 9.5 * GiB, "free": 0.5 * GiB},
        },
    )
    batches = run_collector_once(HOST, host=host, settings=HostSettings(mounts=("/", "/srv/edi")))
    got = gauges(batches)
    root, edi = (("mountpoint", "/"),), (("mountpoint", "/srv/edi"),)
    assert got[(BOOT_TIME, ())] == 1_763_880_000.0
    assert got[("normagent_memory_available_bytes", ())] == 2 * GiB
    assert got[(MEMORY_AVAILABLE_RATIO, ())] == 0.25
    assert got[("normagent_swap_free_bytes", ())] == 0.75 * GiB
    assert [got[(LOAD, (("window", w),))] for w in ("1m", "5m", "15m")] == [0.1, 0.2, 0.3]
    assert got[("normagent_cpus", ())] == 2
    assert (got[(FS_SIZE, root)], got[(FS_AVAIL, root)], got[(FS_FREE, root)]) == (100 * GiB, 55 * GiB, 60 * GiB)
    assert got[(FS_AVAIL_RATIO, edi)] == 0.05
    assert got[(FS_UP, root)] == got[(FS_UP, edi)] == 1


def test_unreadable_mount_is_reported_down_not_a_crash() -> None:
    with structlog.testing.capture_logs() as logs:
        batches = run_collector_once(HOST, settings=HostSettings(mounts=("/", "/mnt/backup")))
    got = gauges(batches)
    assert got[(FS_UP, (("mountpoint", "/mnt/backup"),))] == 0
    assert (FS_SIZE, (("mountpoint", "/mnt/backup"),)) not in got
    assert got[(FS_UP, (("mountpoint", "/"),))] == 1
    assert {"event": "filesystem_unreadable", "mountpoint": "/mnt/backup", "error": "FileNotFoundError"}.items() <= logs[0].items()


def test_mounts_are_looked_up_under_the_root(tmp_path: Path) -> None:
    """In a container with the host's root at /host, mount "/" means /host."""
    host = FakeHost(disks={str(tmp_path / "data"): {"total": 10.0, "used": 4.0, "free": 6.0}})
    batches = run_collector_once(HOST, host=host, root=tmp_path, settings=HostSettings(mounts=("/data",)))
    assert gauges(batches)[(FS_SIZE, (("mountpoint", "/data"),))] == 10.0


@pytest.mark.parametrize("mounts", [("data",), ("/", "/")], ids=["relative", "duplicate"])
def test_host_settings_reject_bad_mounts(mounts: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="mounts"):
        HostSettings(mounts=mounts)


CPU_STEPS = [
    # (boot, cpu seconds this run, counter increments expected)
    (1000.0, {"user": 100.0, "idle": 1000.0}, {"user": 100.0, "idle": 1000.0}),  # first run: all since boot
    (1000.0, {"user": 130.0, "idle": 1060.0}, {"user": 30.0, "idle": 60.0}),
    (1000.0, {"user": 130.0, "idle": 1050.0}, {}),  # idle went backwards: nothing counted
    (1000.0, {"user": 140.0, "idle": 1070.0}, {"user": 10.0, "idle": 10.0}),  # the dip is not counted twice
    (5000.0, {"user": 3.0, "idle": 20.0}, {"user": 3.0, "idle": 20.0}),  # rebooted: everything since boot
]


def test_cpu_seconds_counter_survives_restarts_and_reboots() -> None:
    state = MemoryCheckpoints()
    for boot, seconds, expected in CPU_STEPS:
        host = FakeHost(boot=boot, cpu=seconds)
        # a fresh context each time: the agent may have restarted in between
        batches = run_collector_once(HOST, host=host, state=state)
        got = {dict(labels)["mode"]: v for (metric, labels), v in counts(batches).items() if metric == CPU_SECONDS}
        assert got == expected


def test_probe_host_names_the_reason() -> None:
    class HiddenProc(FakeHost):
        def boot_time(self) -> float:
            raise OSError("cannot read the boot time from /proc/stat; ProcSubset=pid hides it")

    assert probe_host(make_context(HOST, host=FakeHost())) is None
    assert "ProcSubset=pid" in (probe_host(make_context(HOST, host=HiddenProc())) or "")


def test_host_collector_on_the_live_machine() -> None:
    """Smoke test: the only test that reads this machine's own numbers."""
    now = time.time()
    batches = run_collector_once(HOST, host=ProcHost(), clock=FakeClock(datetime.now(timezone.utc)))
    got = gauges(batches)
    assert now - 10 * 365 * 86400 < got[(BOOT_TIME, ())] < now
    assert 0 < got[(MEMORY_AVAILABLE_RATIO, ())] <= 1
    assert got[(FS_UP, (("mountpoint", "/"),))] == 1
    assert sum(counts(batches).values()) > 0  # CPU time since boot


# --------------------------------------------------------------------------------------------
# system.boots over wtmp


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "var" / "log").mkdir(parents=True)
    return tmp_path


def put_wtmp(root: Path, name: str, *, as_name: str = "wtmp") -> Path:
    target = root / "var" / "log" / as_name
    shutil.copyfile(WTMP / name, target)
    return target


def wtmp_settings(**changes: Any) -> BootSettings:
    return replace(BootSettings(evidence="wtmp"), **changes)


HISTORY_NOW = utc("2024-03-04 12:00:00")


def test_wtmp_history_first_run(root: Path) -> None:
    put_wtmp(root, "history.wtmp")
    batches = run_collector_once(BOOTS_COLLECTOR, root=root, clock=FakeClock(HISTORY_NOW), settings=wtmp_settings())
    events = boot_events(batches)
    assert [(e.at, e.attrs["orderly"], e.attrs["downtime_seconds"]) for e in events] == [
        (utc("2024-03-01 08:00:00"), None, None),
        (utc("2024-03-02 08:00:00"), True, 50400.0),
        (utc("2024-03-03 07:30:00"), False, 81000.0),  # a bound from the last record (see below)
    ]
    assert events[1].attrs["shutdown_at"] == "2024-03-01T18:00:00Z"
    assert events[2].attrs["last_seen"] == "2024-03-02T09:00:00Z"
    assert counts(batches) == {
        (BOOTS, ()): 3,
        (UNEXPECTED_SHUTDOWNS, (("evidence", "wtmp"),)): 1,
        (DOWNTIME, (("planned", "false"),)): 50400.0 + 81000.0,  # no maintenance window: nothing was announced
    }
    assert [e.key for e in events] == [f"wtmp:{t(x):.0f}" for x in ("2024-03-01 08:00:00", "2024-03-02 08:00:00", "2024-03-03 07:30:00")]


def test_wtmp_second_run_and_restart_count_nothing_twice(root: Path) -> None:
    put_wtmp(root, "history.wtmp")
    state = MemoryCheckpoints()
    clock = FakeClock(HISTORY_NOW)
    first = run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state)
    assert len(boot_events(first)) == 3
    clock.advance(300)
    second = run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state)
    restarted = run_collector_once(
        BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=MemoryCheckpoints(dict(state.values))
    )
    assert counts(second) == counts(restarted) == {}
    assert boot_events(second) == boot_events(restarted) == []


def test_wtmp_appended_boot_is_judged_once_with_the_history_before_it(root: Path) -> None:
    wtmp = put_wtmp(root, "history.wtmp")
    state = MemoryCheckpoints()
    clock = FakeClock(HISTORY_NOW)
    run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state)
    # Later: a clean shutdown and a boot are appended (the third boot's story continues).
    sysv = (WTMP / "history.wtmp").read_bytes()
    shutdown_record, boot_record = sysv[4 * WTMP_RECORD_SIZE : 5 * WTMP_RECORD_SIZE], sysv[: WTMP_RECORD_SIZE]
    with wtmp.open("ab") as handle:
        handle.write(_retime(shutdown_record, t("2024-03-05 20:00:00")) + _retime(boot_record, t("2024-03-05 20:03:00")))
    clock.advance(2 * 86400)
    batches = run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state)
    assert [(e.at, e.attrs["orderly"], e.attrs["downtime_seconds"]) for e in boot_events(batches)] == [
        (utc("2024-03-05 20:03:00"), True, 180.0)
    ]


def _retime(record: bytes, when: float) -> bytes:
    """A copy of a wtmp record at another time (tv_sec is at byte 340)."""
    return record[:340] + int(when).to_bytes(4, "little", signed=True) + record[344:]


def test_wtmp_rotation_finishes_the_old_file_first(root: Path) -> None:
    """logrotate renames wtmp to wtmp.1 and creates a new one: nothing is lost or read twice."""
    wtmp = put_wtmp(root, "history.wtmp")
    data = (WTMP / "history.wtmp").read_bytes()
    wtmp.write_bytes(data[: 6 * WTMP_RECORD_SIZE])  # up to the second boot (and its runlevel)
    state = MemoryCheckpoints()
    clock = FakeClock(HISTORY_NOW)
    first = run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state)
    assert len(boot_events(first)) == 2
    with wtmp.open("ab") as handle:
        handle.write(data[6 * WTMP_RECORD_SIZE : 8 * WTMP_RECORD_SIZE])  # bob logs in, never out
    wtmp.rename(wtmp.with_name("wtmp.1"))
    wtmp.write_bytes(data[8 * WTMP_RECORD_SIZE :])  # the crash boot lands in the new file
    second = run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state)
    events = boot_events(second)
    assert [(e.at, e.attrs["orderly"], e.attrs["last_seen"]) for e in events] == [
        (utc("2024-03-03 07:30:00"), False, "2024-03-02T09:00:00Z")
    ]


def test_wtmp_first_run_reads_the_rotated_file_first(root: Path) -> None:
    data = (WTMP / "history.wtmp").read_bytes()
    (root / "var/log/wtmp.1").write_bytes(data[: 5 * WTMP_RECORD_SIZE])  # ends with the shutdown
    (root / "var/log/wtmp").write_bytes(data[5 * WTMP_RECORD_SIZE :])
    batches = run_collector_once(BOOTS_COLLECTOR, root=root, clock=FakeClock(HISTORY_NOW), settings=wtmp_settings())
    assert [e.attrs["orderly"] for e in boot_events(batches)] == [None, True, False]


def test_wtmp_truncated_in_place_is_read_again(root: Path) -> None:
    wtmp = put_wtmp(root, "history.wtmp")
    state = MemoryCheckpoints()
    clock = FakeClock(HISTORY_NOW)
    run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state)
    data = (WTMP / "history.wtmp").read_bytes()
    with wtmp.open("r+b") as handle:  # same inode, new content: a new boot after a shutdown
        handle.truncate(0)
        handle.write(_retime(data[4 * WTMP_RECORD_SIZE : 5 * WTMP_RECORD_SIZE], t("2024-03-06 10:00:00")))
        handle.write(_retime(data[:WTMP_RECORD_SIZE], t("2024-03-06 10:05:00")))
    clock.advance(3 * 86400)
    batches = run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state)
    assert [(e.at, e.attrs["orderly"]) for e in boot_events(batches)] == [(utc("2024-03-06 10:05:00"), True)]


def test_backfill_limits_the_first_run(root: Path) -> None:
    """A first run long after the history: old boots are marked seen, not reported or counted."""
    put_wtmp(root, "history.wtmp")
    state = MemoryCheckpoints()
    late = FakeClock(utc("2024-03-20 00:00:00"))
    batches = run_collector_once(
        BOOTS_COLLECTOR, root=root, clock=late, settings=wtmp_settings(backfill=timedelta(days=17)), state=state
    )
    assert [e.at for e in boot_events(batches)] == [utc("2024-03-03 07:30:00")]  # within 17 days
    assert state.values["boots"]["judged_until"] == t("2024-03-03 07:30:00")  # type: ignore[index]


def test_corrupt_wtmp_records_are_counted(root: Path) -> None:
    put_wtmp(root, "corrupt.wtmp")
    with structlog.testing.capture_logs() as logs:
        batches = run_collector_once(
            BOOTS_COLLECTOR, root=root, clock=FakeClock(utc("2024-06-03 00:00:00")), settings=wtmp_settings()
        )
    assert counts(batches)[(BOOT_RECORDS_INVALID, (("evidence", "wtmp"),))] == 5
    assert [e.attrs["orderly"] for e in boot_events(batches)] == [None, True]
    assert any(entry["event"] == "boot_records_invalid" and entry["records"] == 5 for entry in logs)


def test_wtmp_deadline_stops_early_and_the_next_run_resumes(root: Path) -> None:
    put_wtmp(root, "history.wtmp")
    state = MemoryCheckpoints()
    clock = FakeClock(HISTORY_NOW)
    with pytest.raises(EvidenceUnavailable, match="deadline"):
        run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state, timeout=0)
    assert state.values["boots"]["wtmp"]["offset"] == 0  # type: ignore[index]
    batches = run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state)
    assert len(boot_events(batches)) == 3


def test_boots_counted_once_in_a_real_ledger_across_restarts(root: Path, tmp_path: Path) -> None:
    put_wtmp(root, "history.wtmp")
    clock = FakeClock(HISTORY_NOW)
    path = tmp_path / "state" / "ledger.db"
    for _ in range(2):  # two agent lifetimes, two runs each
        with Ledger.open(path, clock=clock) as ledger:
            ledger.declare(BOOTS_COLLECTOR.metrics)
            for _ in range(2):
                run_collector_once(BOOTS_COLLECTOR, ledger, root=root, clock=clock, settings=wtmp_settings())
                clock.advance(300)
    with Ledger.open(path, clock=clock) as ledger:
        ledger.declare(BOOTS_COLLECTOR.metrics)
        assert ledger.counter_value(BOOTS) == 3
        assert ledger.counter_value(UNEXPECTED_SHUTDOWNS, {"evidence": "wtmp"}) == 1
        assert ledger.counter_value(DOWNTIME, {"planned": "false"}) == 50400 + 81000
        events = ledger.events(BOOT_EVENT, Period(utc("2024-03-01 00:00:00"), utc("2024-04-01 00:00:00")))
        assert [e.attrs["orderly"] for e in events] == [None, True, False]


# --------------------------------------------------------------------------------------------
# system.boots over wtmpdb


def test_wtmpdb_boots_and_idempotency(root: Path) -> None:
    (root / "var/lib/wtmpdb").mkdir(parents=True)
    make_wtmpdb(root / "var/lib/wtmpdb/wtmp.db", WTMPDB_ROWS)
    state = MemoryCheckpoints()
    clock = FakeClock(utc("2026-09-21 00:00:00"))
    first = run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, state=state)  # auto finds wtmpdb
    assert [(e.attrs["orderly"], e.attrs["evidence"]) for e in boot_events(first)] == [
        (None, "wtmpdb"),
        (True, "wtmpdb"),
        (False, "wtmpdb"),
        (True, "wtmpdb"),
    ]
    assert counts(first)[(UNEXPECTED_SHUTDOWNS, (("evidence", "wtmpdb"),))] == 1
    assert boot_events(run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, state=state)) == []


def test_wtmpdb_that_is_not_a_database_is_a_clear_error(root: Path) -> None:
    (root / "var/lib/wtmpdb").mkdir(parents=True)
    (root / "var/lib/wtmpdb/wtmp.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(EvidenceUnavailable, match="cannot read /var/lib/wtmpdb/wtmp.db"):
        run_collector_once(BOOTS_COLLECTOR, root=root, settings=BootSettings(evidence="wtmpdb"))


# --------------------------------------------------------------------------------------------
# system.boots over journald


JOURNAL_NOW = utc("2026-11-23 07:00:00")
BOOT_IDS = {name: name * 16 for name in ("a1", "b2", "c3", "d4", "e5")}


def journal_commands(settings: BootSettings, root: Path, list_fixture: str = "journalctl_list-boots_json.txt") -> Any:
    outputs: dict[tuple[str, ...], Any] = {tuple(list_boots_argv(settings, root)): COMMANDS / list_fixture}
    for name in ("a1", "b2", "c3", "d4"):
        outputs[tuple(tail_argv(settings, root, BOOT_IDS[name]))] = COMMANDS / f"journalctl_boot-{name}_tail.txt"
    return recorded_command(outputs)


JOURNAL_EXPECTED = [
    # boot, planned, downtime, exact
    (utc("2026-11-01 08:00:00"), None, None, False),
    (utc("2026-11-02 18:01:30"), True, 90.0, True),  # logind at 18:00:00
    (utc("2026-11-10 07:00:00"), False, t("2026-11-10 07:00:00") - t("2026-11-10 01:14:00"), False),
    (utc("2026-11-17 06:30:00"), True, t("2026-11-17 06:30:00") - t("2026-11-15 22:00:10"), True),
    (utc("2026-11-20 05:00:00"), True, t("2026-11-20 05:00:00") - t("2026-11-20 04:58:20"), True),
]


@pytest.fixture
def journal_root(root: Path) -> Path:
    (root / "var/log/journal").mkdir()
    return root


@pytest.mark.parametrize(
    "list_fixture", ["journalctl_list-boots_json.txt", "journalctl_list-boots_text-v247.txt"], ids=["json", "text-v247"]
)
def test_journald_boots_from_recorded_journalctl(journal_root: Path, list_fixture: str) -> None:
    settings = BootSettings()
    runner = journal_commands(settings, journal_root, list_fixture)
    state = MemoryCheckpoints()
    clock = FakeClock(JOURNAL_NOW)
    batches = run_collector_once(BOOTS_COLLECTOR, root=journal_root, clock=clock, run_command=runner, state=state)
    events = boot_events(batches)
    assert [(e.at, e.attrs["orderly"], e.attrs["downtime_seconds"], e.attrs["downtime_exact"]) for e in events] == JOURNAL_EXPECTED
    assert [e.key for e in events] == [f"journald:{BOOT_IDS[n]}" for n in ("a1", "b2", "c3", "d4", "e5")]
    assert counts(batches)[(UNEXPECTED_SHUTDOWNS, (("evidence", "journald"),))] == 1
    # second run: one list-boots call, no tail queries, nothing new
    calls_before = len(runner.calls)
    again = run_collector_once(BOOTS_COLLECTOR, root=journal_root, clock=clock, run_command=runner, state=state)
    assert boot_events(again) == [] and counts(again) == {}
    assert runner.calls[calls_before:] == [tuple(list_boots_argv(settings, journal_root))]


def test_journald_tail_failure_commits_what_was_judged_and_resumes(journal_root: Path) -> None:
    settings = BootSettings()
    good = journal_commands(settings, journal_root)
    broken_argv = tuple(tail_argv(settings, journal_root, BOOT_IDS["c3"]))
    failing = recorded_command(
        {
            **{argv: COMMANDS / "journalctl_list-boots_json.txt" for argv in [tuple(list_boots_argv(settings, journal_root))]},
            **{
                tuple(tail_argv(settings, journal_root, BOOT_IDS[n])): COMMANDS / f"journalctl_boot-{n}_tail.txt"
                for n in ("a1", "b2")
            },
            broken_argv: CommandResult(argv=broken_argv, returncode=1, stderr=b"Failed to seek: Bad message\n"),
        }
    )
    state = MemoryCheckpoints()
    clock = FakeClock(JOURNAL_NOW)
    committed: list[Batch] = []
    ctx = make_context(BOOTS_COLLECTOR, root=journal_root, clock=clock, run_command=failing, state=state)
    with pytest.raises(EvidenceUnavailable, match="Bad message"):
        for batch in BOOTS_COLLECTOR.collect(ctx):
            state.apply(batch.checkpoints)
            committed.append(batch)
    assert [e.at for e in boot_events(committed)] == [row[0] for row in JOURNAL_EXPECTED[:3]]
    rest = run_collector_once(BOOTS_COLLECTOR, root=journal_root, clock=clock, run_command=good, state=state)
    assert [e.at for e in boot_events(rest)] == [row[0] for row in JOURNAL_EXPECTED[3:]]


def test_auto_prefers_the_journal_and_falls_back_when_it_fails(journal_root: Path) -> None:
    put_wtmp(journal_root, "history.wtmp")
    broken = tuple(list_boots_argv(BootSettings(), journal_root))
    runner = recorded_command({broken: CommandResult(argv=broken, returncode=1, stderr=b"Permission denied\n")})
    with structlog.testing.capture_logs() as logs:
        batches = run_collector_once(BOOTS_COLLECTOR, root=journal_root, clock=FakeClock(HISTORY_NOW), run_command=runner)
    assert {e.attrs["evidence"] for e in boot_events(batches)} == {"wtmp"}
    warning = next(entry for entry in logs if entry["event"] == "boot_evidence_unreadable")
    assert warning["evidence"] == "journald" and "Permission denied" in warning["error"]


def test_auto_skips_an_empty_journal(journal_root: Path) -> None:
    put_wtmp(journal_root, "history.wtmp")
    argv = tuple(list_boots_argv(BootSettings(), journal_root))
    runner = recorded_command({argv: b""})  # "No journal files were found." goes to stderr
    batches = run_collector_once(BOOTS_COLLECTOR, root=journal_root, clock=FakeClock(HISTORY_NOW), run_command=runner)
    assert {e.attrs["evidence"] for e in boot_events(batches)} == {"wtmp"}


def test_switching_source_does_not_judge_the_same_boot_twice(journal_root: Path) -> None:
    """wtmp judged boots up to a time; the journal (enabled later) sees the last one 3 s later."""
    state = MemoryCheckpoints({"boots": {"evidence": "wtmp", "judged_until": t("2026-11-20 04:59:57")}})
    settings = BootSettings()
    batches = run_collector_once(
        BOOTS_COLLECTOR,
        root=journal_root,
        clock=FakeClock(JOURNAL_NOW),
        run_command=journal_commands(settings, journal_root),
        state=state,
    )
    assert boot_events(batches) == []
    assert state.values["boots"]["evidence"] == "journald"  # type: ignore[index]


def test_no_boot_history_is_no_data(root: Path) -> None:
    with pytest.raises(NoData, match="no boot history"):
        run_collector_once(BOOTS_COLLECTOR, root=root)


def test_explicit_source_that_is_missing_is_an_error(root: Path) -> None:
    with pytest.raises(EvidenceUnavailable, match="/var/log/wtmp does not exist"):
        run_collector_once(BOOTS_COLLECTOR, root=root, settings=wtmp_settings())


def test_boot_dated_in_the_future_is_judged_once(root: Path) -> None:
    """A boot dated after "now" (the clock was wrong at boot) counts once and blocks no later boot."""
    put_wtmp(root, "history.wtmp")
    state = MemoryCheckpoints()
    early = FakeClock(utc("2024-03-02 12:00:00"))  # before the third boot's timestamp
    with structlog.testing.capture_logs() as logs:
        batches = run_collector_once(BOOTS_COLLECTOR, root=root, clock=early, settings=wtmp_settings(), state=state)
    assert len(boot_events(batches)) == 3
    assert any(entry["event"] == "boot_dated_in_future" for entry in logs)
    assert state.values["boots"]["judged_until"] == early.now().timestamp()  # type: ignore[index]
    early.advance(86400 * 2)  # time catches up with the boot's date
    assert boot_events(run_collector_once(BOOTS_COLLECTOR, root=root, clock=early, settings=wtmp_settings(), state=state)) == []


def test_future_dated_journal_boot_is_not_judged_again_on_the_next_run(journal_root: Path) -> None:
    """The journal lists every boot on every run: the ``ahead`` keys keep a future boot judged once."""
    settings = BootSettings()
    runner = journal_commands(settings, journal_root)
    state = MemoryCheckpoints()
    clock = FakeClock(utc("2026-11-19 00:00:00"))  # boot e5 (2026-11-20 05:00) is "in the future"
    first = run_collector_once(BOOTS_COLLECTOR, root=journal_root, clock=clock, run_command=runner, state=state)
    assert len(boot_events(first)) == 5
    clock.advance(3600)
    assert boot_events(run_collector_once(BOOTS_COLLECTOR, root=journal_root, clock=clock, run_command=runner, state=state)) == []
    assert state.values["boots"]["ahead"] == [["e5" * 16, t("2026-11-20 05:00:00")]]  # type: ignore[index]
    clock.advance(2 * 86400)  # the boot's date is reached: the watermark moves past it, the key goes
    assert boot_events(run_collector_once(BOOTS_COLLECTOR, root=journal_root, clock=clock, run_command=runner, state=state)) == []
    assert "ahead" not in state.values["boots"]  # type: ignore[operator]
    assert state.values["boots"]["judged_until"] == t("2026-11-20 05:00:00")  # type: ignore[index]


# --------------------------------------------------------------------------------------------
# The real journalctl over a real journal


@pytest.fixture
def real_journal(tmp_path: Path) -> Iterator[Path]:
    """The five-boot journal of make_journal.py, written by the real systemd-journal-remote."""
    yield write_real_journal(tmp_path, "main")


@pytest.fixture
def soft_reboot_journal(tmp_path: Path) -> Iterator[Path]:
    """The two-boot journal of ``make_journal.py --soft-reboot``, written by the real systemd-journal-remote."""
    yield write_real_journal(tmp_path, "main_soft_reboot")


def write_real_journal(tmp_path: Path, maker: str) -> Path:
    binary = require_tool("systemd-journal-remote", "systemd-journal-remote")
    require_tool("journalctl", "systemd")
    directory = tmp_path / "host" / "var" / "log" / "journal" / "0123456789abcdef0123456789abcdef"
    directory.mkdir(parents=True)
    export = tmp_path / "boots.export"
    script = runpy.run_path(str(FIXTURES / "system" / "journald" / "make_journal.py"))
    with export.open("w") as out, contextlib.redirect_stdout(out):
        script[maker]()
    subprocess.run(
        [binary, f"--output={directory / 'system.journal'}", str(export)],
        check=True,
        capture_output=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},  # the wrapper brings its own libraries
    )
    return tmp_path / "host"


MACHINE_DIR = Path("/var/log/journal/0123456789abcdef0123456789abcdef")


def test_journald_end_to_end_with_the_real_journalctl(real_journal: Path) -> None:
    settings = BootSettings(evidence="journald", journal_directory=MACHINE_DIR)
    state = MemoryCheckpoints()
    clock = FakeClock(JOURNAL_NOW)
    batches = run_collector_once(BOOTS_COLLECTOR, root=real_journal, clock=clock, settings=settings, run_command=run_command, state=state)
    events = boot_events(batches)
    assert [(e.at, e.attrs["orderly"], e.attrs["downtime_seconds"], e.attrs["downtime_exact"]) for e in events] == JOURNAL_EXPECTED
    assert boot_events(run_collector_once(BOOTS_COLLECTOR, root=real_journal, clock=clock, settings=settings, run_command=run_command, state=state)) == []


@pytest.mark.parametrize("name", ["a1", "b2", "c3", "d4"])
def test_recorded_tails_are_what_journalctl_prints(real_journal: Path, name: str) -> None:
    """The recorded fixtures match the real tool's output (cursors aside: they are random per file)."""
    settings = BootSettings(journal_directory=MACHINE_DIR)
    result = run_command(tail_argv(settings, real_journal, BOOT_IDS[name]))
    assert result.ok, result.stderr

    def entries(text: bytes) -> list[dict[str, Any]]:
        return [{k: v for k, v in json.loads(line).items() if k != "__CURSOR"} for line in text.splitlines() if line.strip()]

    assert entries(result.stdout) == entries((COMMANDS / f"journalctl_boot-{name}_tail.txt").read_bytes())


def test_wtmp_boot_stamped_by_a_wrong_clock_still_counts(root: Path) -> None:
    """After the first run every boot appended to wtmp is new, even one dated before the last (RTC reset)."""
    wtmp = put_wtmp(root, "history.wtmp")
    state = MemoryCheckpoints()
    clock = FakeClock(HISTORY_NOW)
    run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state)
    boot_record = (WTMP / "history.wtmp").read_bytes()[:WTMP_RECORD_SIZE]
    with wtmp.open("ab") as handle:
        handle.write(_retime(boot_record, t("2001-01-01 00:00:00")))
    batches = run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state)
    assert [(e.at, e.attrs["orderly"]) for e in boot_events(batches)] == [(utc("2001-01-01 00:00:00"), False)]
    assert state.values["boots"]["judged_until"] == t("2024-03-03 07:30:00")  # type: ignore[index]


def test_wtmp_replaced_by_a_copy_is_not_counted_again(root: Path) -> None:
    """A wtmp restored from a backup (new inode, same records) does not repeat its boots."""
    wtmp = put_wtmp(root, "history.wtmp")
    state = MemoryCheckpoints()
    clock = FakeClock(HISTORY_NOW)
    run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state)
    copy = wtmp.with_name("wtmp.restored")
    shutil.copyfile(wtmp, copy)
    wtmp.unlink()
    copy.rename(wtmp)
    with structlog.testing.capture_logs() as logs:
        batches = run_collector_once(BOOTS_COLLECTOR, root=root, clock=clock, settings=wtmp_settings(), state=state)
    assert boot_events(batches) == [] and counts(batches) == {}
    assert any(entry["event"] == "wtmp_replaced" for entry in logs)


def test_journald_first_run_asks_only_for_the_tails_it_needs(journal_root: Path) -> None:
    """With a 7-day backfill only the last two boots are judged: two tail queries, not four."""
    settings = BootSettings(backfill=timedelta(days=7))
    runner = journal_commands(settings, journal_root)
    batches = run_collector_once(
        BOOTS_COLLECTOR, root=journal_root, clock=FakeClock(JOURNAL_NOW), run_command=runner, settings=settings
    )
    assert [e.at for e in boot_events(batches)] == [row[0] for row in JOURNAL_EXPECTED[3:]]
    tails = [call for call in runner.calls if any(arg.startswith("--boot=") for arg in call)]
    assert [call[1] for call in tails] == [f"--boot={BOOT_IDS['c3']}", f"--boot={BOOT_IDS['d4']}"]


def test_a_soft_reboot_is_no_shutdown_and_a_later_crash_in_that_boot_is_unexpected(soft_reboot_journal: Path) -> None:
    """systemd >= 254's soft-reboot restarts userspace only (same kernel, same boot id): its
    shutdown.target and logind message are no end of the boot. The crash 70 h later is one, with
    downtime from the last entry (at most 600 s), not from the soft-reboot (252,600 s)."""
    settings = BootSettings(evidence="journald", journal_directory=MACHINE_DIR)
    clock = FakeClock(utc("2026-11-09 00:00:00"))
    batches = run_collector_once(BOOTS_COLLECTOR, root=soft_reboot_journal, clock=clock, settings=settings, run_command=run_command)
    crash = boot_events(batches)[-1]
    assert crash.at == utc("2026-11-08 07:10:00")
    assert (crash.attrs["orderly"], crash.attrs["downtime_seconds"], crash.attrs["downtime_exact"]) == (False, 600.0, False)
    assert counts(batches)[(UNEXPECTED_SHUTDOWNS, (("evidence", "journald"),))] == 1


def test_wtmp_crash_gets_a_downtime_bound_from_the_last_activity_seen(root: Path) -> None:
    """wtmp does not record when a host died: the last record before the crash (a login at 09:00)
    bounds the downtime, marked as a bound (not exact)."""
    put_wtmp(root, "history.wtmp")
    batches = run_collector_once(BOOTS_COLLECTOR, root=root, clock=FakeClock(HISTORY_NOW), settings=wtmp_settings())
    crash = boot_events(batches)[2]
    assert (crash.attrs["orderly"], crash.attrs["downtime_seconds"], crash.attrs["downtime_exact"]) == (False, 81000.0, False)
    # No maintenance window: the clean reboot's 14 h and the crash's bound are both unplanned.
    assert counts(batches)[(DOWNTIME, (("planned", "false"),))] == 50400.0 + 81000.0


@pytest.mark.parametrize(
    ("weekly", "planned"),
    [
        ((), False),  # an orderly reboot outside every window is unplanned
        ((WeeklyWindow(days=("fri",), from_=dtime(17, 0), to=dtime(9, 0), time_zone="UTC"),), True),
    ],
    ids=["no-window", "friday-night-window"],
)
def test_a_reboot_is_planned_by_the_maintenance_calendar_not_by_being_orderly(root: Path, weekly: Any, planned: bool) -> None:
    put_wtmp(root, "history.wtmp")  # the clean reboot: shutdown Fri 2024-03-01 18:00, boot Sat 08:00 (UTC)
    calendar = Calendar(MaintenanceSettings(weekly=weekly))
    batches = run_collector_once(
        BOOTS_COLLECTOR, root=root, clock=FakeClock(HISTORY_NOW), settings=wtmp_settings(), maintenance=calendar
    )
    clean = boot_events(batches)[1]
    assert (clean.attrs["orderly"], clean.attrs["planned"]) == (True, planned)
    assert counts(batches)[(DOWNTIME, (("planned", "true" if planned else "false"),))] >= 50400.0
    assert counts(batches).get((DOWNTIME, (("planned", "true"),)), 0.0) == (50400.0 if planned else 0.0)
