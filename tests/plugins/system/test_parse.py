"""The system plugin's pure parsers, from crafted fixtures checked against the real tools."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import zoneinfo
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normagent.plugins.system.parse import (
    SD_MESSAGE_SHUTDOWN,
    SD_MESSAGE_UNIT_STARTED,
    WTMP_RECORD,
    WTMP_RECORD_SIZE,
    Boot,
    BootCarry,
    JournalBoot,
    TailScan,
    WtmpdbRow,
    boots_from_wtmpdb,
    classify_wtmp,
    fold_wtmp,
    judge_journal_boot,
    parse_list_boots,
    parse_wtmp,
    scan_boot_tail,
)

from tests.plugins.system.builders import WTMPDB_ROWS, WTMPDB_SCHEMA, make_wtmpdb, t, us
from tests.support.tools import missing_tool, require_tool, skip_for_host

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
WTMP = FIXTURES / "system" / "wtmp"
COMMANDS = FIXTURES / "commands"
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc).timestamp()
CATALOG = Path("/usr/lib/systemd/catalog/systemd.catalog")


def judge(name: str) -> list[Boot]:
    scan = parse_wtmp((WTMP / name).read_bytes(), now=NOW)
    boots, _ = fold_wtmp(scan.records, BootCarry())
    return boots


# --------------------------------------------------------------------------------------------
# wtmp records

WTMP_CASES = {
    # file: (kinds in order, invalid, empty, consumed bytes)
    "history.wtmp": (
        ["boot", "runlevel", "session", "session", "shutdown", "boot", "runlevel", "session", "boot", "runlevel"],
        0,
        0,
        10 * WTMP_RECORD_SIZE,
    ),
    "sysv.wtmp": (["boot", "runlevel", "shutdown", "boot", "runlevel", "shutdown", "boot"], 0, 0, 7 * WTMP_RECORD_SIZE),
    "clock.wtmp": (["boot", "clock", "clock", "session", "session", "boot"], 0, 0, 6 * WTMP_RECORD_SIZE),
    "corrupt.wtmp": (["boot", "shutdown", "boot"], 5, 0, 8 * WTMP_RECORD_SIZE),
    "empty.wtmp": ([], 0, 0, 0),
}


@pytest.mark.parametrize("name", sorted(WTMP_CASES))
def test_parse_wtmp_fixture(name: str) -> None:
    kinds, invalid, empty, consumed = WTMP_CASES[name]
    scan = parse_wtmp((WTMP / name).read_bytes(), now=NOW)
    assert [r.kind for r in scan.records] == kinds
    assert (scan.invalid, scan.empty, scan.consumed) == (invalid, empty, consumed)
    assert [r.offset for r in scan.records] == sorted(r.offset for r in scan.records)


def test_corrupt_wtmp_leaves_the_torn_tail_unread() -> None:
    data = (WTMP / "corrupt.wtmp").read_bytes()
    scan = parse_wtmp(data, now=NOW)
    assert len(data) - scan.consumed == 100  # the torn write waits for the writer (or stays unread)


BOOT_CASES = {
    # file: [(boot time, orderly, downtime seconds)]
    "history.wtmp": [
        (t("2024-03-01 08:00:00"), None, None),  # the first boot: nothing known before it
        (t("2024-03-02 08:00:00"), True, 14 * 3600.0),  # shutdown 18:00, boot 08:00
        # No shutdown since the previous boot: a crash, bounded from the last record (a login at 09:00).
        (t("2024-03-03 07:30:00"), False, t("2024-03-03 07:30:00") - t("2024-03-02 09:00:00")),
    ],
    "sysv.wtmp": [
        (t("2024-04-01 06:00:00"), None, None),
        (t("2024-04-07 22:01:30"), True, 90.0),  # runlevel 6 at 22:00:00
        (t("2024-04-21 07:00:00"), True, t("2024-04-21 07:00:00") - t("2024-04-20 03:00:00")),  # runlevel 0
    ],
    "clock.wtmp": [
        (t("2024-05-01 06:00:00"), None, None),
        (t("2024-05-02 06:00:00"), False, 82200.0),  # clock steps and logins are not shutdowns, but signs of life
    ],
    "corrupt.wtmp": [
        (t("2024-06-01 06:00:00"), None, None),
        (t("2024-06-02 20:02:00"), True, 120.0),  # the rejected records in between changed nothing
    ],
    "empty.wtmp": [],
}


@pytest.mark.parametrize("name", sorted(BOOT_CASES))
def test_fold_wtmp_judges_each_boot(name: str) -> None:
    got = [(b.at, b.orderly, b.downtime) for b in judge(name)]
    assert got == BOOT_CASES[name]
    assert all(b.evidence == "wtmp" for b in judge(name))


def test_crash_records_the_last_sign_of_life() -> None:
    crash = judge("history.wtmp")[2]
    assert crash.last_seen == t("2024-03-02 09:00:00")  # bob's login, the last record before the crash
    assert crash.downtime == t("2024-03-03 07:30:00") - crash.last_seen and crash.downtime_exact is False  # a bound


@pytest.mark.parametrize("cut", range(0, 11))
def test_fold_continues_across_chunks(cut: int) -> None:
    """Reading a file in two pieces (a later run, or wtmp.1 then wtmp) judges every boot the same."""
    data = (WTMP / "history.wtmp").read_bytes()
    whole = judge("history.wtmp")
    first = parse_wtmp(data[: cut * WTMP_RECORD_SIZE], now=NOW)
    second = parse_wtmp(data[cut * WTMP_RECORD_SIZE :], now=NOW, base_offset=cut * WTMP_RECORD_SIZE)
    boots_a, carry = fold_wtmp(first.records, BootCarry())
    carry = BootCarry.from_json(json.loads(json.dumps(carry.to_json())))  # through a checkpoint
    boots_b, _ = fold_wtmp(second.records, carry)
    assert boots_a + boots_b == whole


@pytest.mark.parametrize(
    ("ut_type", "pid", "line", "user", "kind"),
    [
        (2, 0, b"~", b"reboot", "boot"),
        (2, 0, b"", b"", "boot"),  # BOOT_TIME by type alone
        (1, 0, b"~", b"shutdown", "shutdown"),
        (1, ord("5") + 256 * ord("N"), b"~", b"runlevel", "runlevel"),
        (1, ord("0") + 256 * ord("2"), b"~", b"runlevel", "shutdown"),
        (1, ord("6") + 256 * ord("2"), b"~", b"runlevel", "shutdown"),
        (5, ord("6"), b"~", b"runlevel", "shutdown"),  # last(1) re-types "runlevel" records on "~"
        (8, 0, b"~", b"shutdown", "shutdown"),  # and "shutdown" whatever the type
        (7, 1234, b"pts/0", b"reboot", "session"),  # a user called "reboot" logging in is a login
        (3, 0, b"{", b"date", "clock"),
        (4, 0, b"|", b"date", "clock"),
        (7, 1234, b"pts/0", b"alice", "session"),
        (8, 1234, b"pts/0", b"", "session"),
    ],
)
def test_classify_wtmp_as_last_does(ut_type: int, pid: int, line: bytes, user: bytes, kind: str) -> None:
    assert classify_wtmp(ut_type, pid, line, user) == kind


def _last_x(path: Path) -> tuple[set[float], set[float]] | None:
    """(boot times, shutdown times) as util-linux ``last -x`` reads them, or None where last reads
    wtmpdb instead of wtmp files."""
    last = require_tool("last", "util-linux")
    out = subprocess.run(
        [last, "-x", "-F", "-f", str(path)], capture_output=True, text=True, env={"TZ": "UTC", "LC_ALL": "C"}, check=True
    ).stdout
    if "wtmpdb" in out:  # Debian 13's last reads wtmpdb, not wtmp files
        return None
    boots: set[float] = set()
    downs: set[float] = set()
    stamp = r"(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})"
    for line in out.splitlines():
        match = re.search(stamp, line)
        if match is None:
            continue
        when = datetime.strptime(" ".join(match[1].split()), "%a %b %d %H:%M:%S %Y").replace(tzinfo=timezone.utc)
        if "system boot" in line:
            boots.add(when.timestamp())
        elif "system down" in line or re.search(r"\(to lvl [06]\)", line):
            downs.add(when.timestamp())
    return boots, downs


@pytest.mark.parametrize("name", ["history.wtmp", "sysv.wtmp", "clock.wtmp"])
def test_fixtures_read_the_same_in_util_linux_last(name: str) -> None:
    """The crafted files have the real layout: ``last -x`` sees the boots and shutdowns we see."""
    seen = _last_x(WTMP / name)
    if seen is None:
        skip_for_host("this last(1) reads wtmpdb (Debian 13 and later), not wtmp files")
    scan = parse_wtmp((WTMP / name).read_bytes(), now=NOW)
    assert seen == (
        {r.time for r in scan.records if r.kind == "boot"},
        {r.time for r in scan.records if r.kind == "shutdown"},
    )


@pytest.mark.parametrize("name", ["history.wtmp", "sysv.wtmp", "clock.wtmp", "corrupt.wtmp"])
def test_fixtures_read_the_same_in_utmpdump(name: str) -> None:
    """``utmpdump`` decodes every record at the same type and time as our struct does."""
    utmpdump = require_tool("utmpdump", "util-linux")
    out = subprocess.run(
        [utmpdump, str(WTMP / name)], capture_output=True, text=True, env={"TZ": "UTC", "LC_ALL": "C"}, check=True
    ).stdout
    theirs = [
        (int(m[1]), m[2]) for m in re.finditer(r"^\[(-?\d+)\].*\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d),\d+", out, re.M)
    ]
    data = (WTMP / name).read_bytes()
    ours = [
        (fields[0], datetime.fromtimestamp(fields[9], timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
        for fields in WTMP_RECORD.iter_unpack(data[: len(data) - len(data) % WTMP_RECORD_SIZE])
    ]
    assert theirs == ours


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=WTMP_RECORD_SIZE * 6))
def test_parse_wtmp_never_crashes_and_accounts_for_every_record(data: bytes) -> None:
    scan = parse_wtmp(data, now=NOW)
    assert scan.consumed == len(data) - len(data) % WTMP_RECORD_SIZE
    assert len(scan.records) + scan.invalid + scan.empty == scan.consumed // WTMP_RECORD_SIZE
    assert all(315_532_800 <= r.time <= NOW + 86_400 for r in scan.records)
    fold_wtmp(scan.records, BootCarry())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["boot", "shutdown", "session", "runlevel", "clock"]), st.floats(1e9, 2e9, allow_nan=False)
        ),
        max_size=30,
    )
)
def test_fold_wtmp_yields_one_boot_per_boot_record(events: list[tuple[str, float]]) -> None:
    from normagent.plugins.system.parse import WtmpRecord

    records = [WtmpRecord(kind, when, i * WTMP_RECORD_SIZE) for i, (kind, when) in enumerate(events)]  # type: ignore[arg-type]
    boots, _ = fold_wtmp(records, BootCarry())
    assert len(boots) == sum(1 for kind, _ in events if kind == "boot")
    assert all(b.downtime is None or b.downtime >= 0 for b in boots)


@pytest.mark.parametrize(
    "value",
    [None, "x", [], {"boot_at": "1"}, {"boot_at": True, "seen": "yes"}],
    ids=["none", "string", "list", "string-number", "bool-number"],
)
def test_carry_from_a_malformed_checkpoint_is_empty(value: object) -> None:
    assert BootCarry.from_json(value) == BootCarry()


# --------------------------------------------------------------------------------------------
# wtmpdb

@pytest.mark.parametrize("schema", WTMPDB_SCHEMA, ids=["current", "old-with-pid"])
def test_wtmpdb_boots(tmp_path: Path, schema: str) -> None:
    db = make_wtmpdb(tmp_path / "wtmp.db", WTMPDB_ROWS, schema)
    conn = sqlite3.connect(db)
    try:
        rows = [WtmpdbRow(*r) for r in conn.execute("SELECT rowid, Login, Logout FROM wtmp WHERE Type = 1 ORDER BY Login")]
    finally:
        conn.close()
    boots, invalid = boots_from_wtmpdb(rows, now=NOW)
    assert invalid == 0
    assert [(b.at, b.orderly, b.downtime) for b in boots] == [
        (t("2026-09-01 08:00:00"), None, None),
        (t("2026-09-05 18:02:00"), True, 120.0),
        (t("2026-09-07 07:00:00"), False, None),
        (t("2026-09-20 03:00:05"), True, 5.0),
    ]
    assert {b.evidence for b in boots} == {"wtmpdb"}


def test_wtmpdb_rejects_rows_with_impossible_times() -> None:
    rows = [
        WtmpdbRow(1, us("2026-09-01 08:00:00"), None),
        WtmpdbRow(2, "1788249600000000", None),  # text where an integer belongs
        WtmpdbRow(3, 0, None),  # the epoch
        WtmpdbRow(4, us("2026-09-02 08:00:00"), 4.5),  # a float logout
        WtmpdbRow(5, int(NOW * 1e6) + 10**13, None),  # months ahead
        WtmpdbRow(6, us("2026-09-03 08:00:00"), None),
    ]
    boots, invalid = boots_from_wtmpdb(rows, now=NOW)
    assert invalid == 4
    assert [(b.at, b.orderly) for b in boots] == [(t("2026-09-01 08:00:00"), None), (t("2026-09-03 08:00:00"), False)]


# --------------------------------------------------------------------------------------------
# journald

JOURNAL_BOOTS = [
    JournalBoot("a1" * 16, t("2026-11-01 08:00:00"), t("2026-11-02 18:00:23")),
    JournalBoot("b2" * 16, t("2026-11-02 18:01:30"), t("2026-11-10 01:14:00")),
    JournalBoot("c3" * 16, t("2026-11-10 07:00:00"), t("2026-11-15 22:00:11")),
    JournalBoot("d4" * 16, t("2026-11-17 06:30:00"), t("2026-11-20 04:58:21")),
    JournalBoot("e5" * 16, t("2026-11-20 05:00:00"), t("2026-11-20 05:00:09")),
]


@pytest.mark.parametrize(
    ("fixture", "zone"),
    [
        ("journalctl_list-boots_json.txt", "UTC"),  # systemd 252, --output=json
        ("journalctl_list-boots_text-utc.txt", "UTC"),  # systemd 252 text table, TZ=UTC
        ("journalctl_list-boots_text-oslo.txt", "Europe/Oslo"),  # same, local time (CET)
        ("journalctl_list-boots_text-v247.txt", "UTC"),  # systemd ≤ 250: no header, em dash
    ],
)
def test_parse_list_boots_in_every_format(fixture: str, zone: str) -> None:
    boots, invalid = parse_list_boots((COMMANDS / fixture).read_bytes(), tz=zoneinfo.ZoneInfo(zone))
    assert (boots, invalid) == (JOURNAL_BOOTS, 0)


@pytest.mark.parametrize(
    ("output", "boots", "invalid"),
    [
        (b"", 0, 0),
        (b"No journal files were found.\n", 0, 1),
        (b"[", 0, 1),
        (b'{"boot_id": "x"}', 0, 1),
        (b'[{"boot_id":"a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1","first_entry":1,"last_entry":2},{"boot_id":"zz"},7]', 1, 2),
        (b'[{"boot_id":"a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1","first_entry":true,"last_entry":2}]', 0, 1),
        (" 0 e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5 Fri 2026-11-20 05:00:00 XYZ Fri 2026-11-20 05:00:09 XYZ\n".encode(), 0, 1),
        (" 0 e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5 Fri 2026-13-20 05:00:00 UTC Fri 2026-11-20 05:00:09 UTC\n".encode(), 0, 1),
    ],
    ids=["empty", "message", "torn-json", "not-a-list", "bad-items", "bool-time", "unknown-zone", "bad-date"],
)
def test_parse_list_boots_counts_what_it_cannot_read(output: bytes, boots: int, invalid: int) -> None:
    got, bad = parse_list_boots(output)
    assert (len(got), bad) == (boots, invalid)


def test_text_table_in_summer_time_uses_the_zone_name() -> None:
    """``CEST`` and ``CET`` pick the right offset; the ambiguous hour of the autumn change too."""
    table = (
        " -1 a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1 Sun 2026-10-25 02:30:00 CEST Sun 2026-10-25 02:30:00 CET\n"
        "  0 b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2 Mon 2026-07-06 12:00:00 CEST Mon 2026-07-06 13:00:00 CEST\n"
    ).encode()
    boots, invalid = parse_list_boots(table, tz=zoneinfo.ZoneInfo("Europe/Oslo"))
    assert invalid == 0
    by_id = {b.boot_id[:2]: b for b in boots}
    assert by_id["a1"].last - by_id["a1"].first == 3600  # 02:30 CEST is an hour before 02:30 CET
    assert by_id["b2"].first == t("2026-07-06 10:00:00")
    assert [b.boot_id[:2] for b in boots] == ["b2", "a1"]  # oldest first, whatever the input order


TAIL_CASES = {
    # tail of boot → (earliest shutdown marker, markers, entries)
    "a1": (t("2026-11-02 18:00:00"), 4, 5),  # logind "System is rebooting" + three targets
    "b2": (None, 0, 1),  # only "Reached target multi-user.target": a crash
    "c3": (t("2026-11-15 22:00:10"), 2, 3),  # shutdown.target + poweroff.target, no logind
    "d4": (t("2026-11-20 04:58:20"), 2, 3),  # systemd-shutdown's own lines, no message id
}


@pytest.mark.parametrize("boot", sorted(TAIL_CASES))
def test_scan_boot_tail_of_recorded_journalctl_output(boot: str) -> None:
    scan = scan_boot_tail((COMMANDS / f"journalctl_boot-{boot}_tail.txt").read_bytes())
    assert (scan.shutdown_at, scan.markers, scan.entries, scan.invalid) == (*TAIL_CASES[boot], 0)


def test_boot_tail_entries_whose_time_is_no_time_are_invalid_not_a_crash() -> None:
    """``int()`` refuses "²" and 5,000 digits; a float of 400 digits overflows: each raised."""
    good = json.dumps({"__REALTIME_TIMESTAMP": "1793642400000000", "MESSAGE_ID": "x"})
    bad = [json.dumps({"__REALTIME_TIMESTAMP": stamp, "MESSAGE_ID": "x"}) for stamp in ("1\u00b2", "9" * 5000, "9" * 400)]
    scan = scan_boot_tail("\n".join([good, *bad, good]).encode())
    assert (scan.entries, scan.invalid) == (5, 3)


@pytest.mark.parametrize(
    ("entry", "marker"),
    [
        ({"MESSAGE_ID": SD_MESSAGE_SHUTDOWN}, True),
        ({"MESSAGE_ID": SD_MESSAGE_UNIT_STARTED, "UNIT": "reboot.target"}, True),
        ({"MESSAGE_ID": SD_MESSAGE_UNIT_STARTED, "UNIT": "multi-user.target"}, False),
        ({"MESSAGE_ID": SD_MESSAGE_UNIT_STARTED, "USER_UNIT": "shutdown.target"}, False),  # a user manager
        ({"MESSAGE_ID": [SD_MESSAGE_UNIT_STARTED, "x"], "UNIT": ["kexec.target"]}, True),  # repeated fields
        ({"SYSLOG_IDENTIFIER": list(b"systemd-shutdown")}, True),  # a byte-array value
        ({"SYSLOG_IDENTIFIER": "sshd"}, False),
    ],
    ids=["logind", "reboot-target", "other-target", "user-unit", "arrays", "byte-array", "unrelated"],
)
def test_shutdown_markers(entry: dict[str, object], marker: bool) -> None:
    line = json.dumps({"__REALTIME_TIMESTAMP": "1793642400000000", **entry}).encode()
    assert scan_boot_tail(line).markers == (1 if marker else 0)


def test_scan_boot_tail_counts_lines_it_cannot_read() -> None:
    lines = b'not json\n[1,2]\n{"MESSAGE_ID":"%s"}\n\n' % SD_MESSAGE_SHUTDOWN.encode()
    assert scan_boot_tail(lines) == TailScan(None, 0, 1, 3)


def test_message_ids_are_systemds_own() -> None:
    """The ids we match are in the catalog of the systemd on this machine, with these meanings."""
    if not CATALOG.exists():
        missing_tool(f"systemd's message catalog {CATALOG} (Debian package systemd)")
    catalog = CATALOG.read_text()
    for message_id, subject in (
        (SD_MESSAGE_SHUTDOWN, "System shutdown initiated"),
        (SD_MESSAGE_UNIT_STARTED, "A start job for unit @UNIT@ has finished successfully"),
    ):
        assert re.search(rf"^-- {message_id}\nSubject: {re.escape(subject)}$", catalog, re.M), message_id


JUDGE_CASES = [
    # previous boot, tail marker → planned, downtime, exact
    (JOURNAL_BOOTS[0], JOURNAL_BOOTS[1], t("2026-11-02 18:00:00"), True, 90.0, True),
    (JOURNAL_BOOTS[1], JOURNAL_BOOTS[2], None, False, t("2026-11-10 07:00:00") - t("2026-11-10 01:14:00"), False),
    (JOURNAL_BOOTS[1], JOURNAL_BOOTS[2], t("2026-11-10 08:00:00"), True, None, False),  # marker after boot: bad clock
]


@pytest.mark.parametrize(("previous", "boot", "marker", "planned", "downtime", "exact"), JUDGE_CASES)
def test_judge_journal_boot(
    previous: JournalBoot, boot: JournalBoot, marker: float | None, planned: bool, downtime: float | None, exact: bool
) -> None:
    judged = judge_journal_boot(boot, previous, TailScan(marker, 1 if marker else 0, 3, 0))
    assert (judged.orderly, judged.downtime, judged.downtime_exact) == (planned, downtime, exact)
    assert (judged.at, judged.key, judged.last_seen) == (boot.first, boot.boot_id, previous.last)
