"""updates.dnf over a history database, dnf.rpm.log and dnf.log recorded from the real dnf 4.14
(tests/fixtures/updates/dnf/record.sh says how), and the recorded output of
``dnf updateinfo list``; then the same database damaged in the ways bad luck damages files.

The recording's truth: transaction 2 upgraded tinyrpm 1.0→1.1 and openssl-libs 3.0.7→3.0.8;
transaction 4's upgrade of brokenup to 1.1 failed (its %pre refused); transaction 5 upgraded
tinyrpm to 1.3 (security advisory TEST-2026:0001) and openssl-libs to 3.0.9 (a bug fix).
Transactions 1, 3 and 6 installed, failed to install and removed: no updates.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from normagent import Count, Event, FileSource, ParseContext, TextBlock
from normagent.ledger import Ledger
from normagent.logs import parse_inputs
from normagent.plugins.updates.collectors import DNF, DNF_KEY, UPDATEINFO_INSTALLED
from normagent.plugins.updates.dnf import DnfItem, DnfTransaction, judge_transactions, parse_dnf_logs, parse_updateinfo
from normagent.plugins.updates.settings import DnfSettings
from normagent.plugins.updates.vocab import APPLIED, HISTORY_UNREADABLE, TRANSACTION
from normagent.testing import FakeClock, recorded_command, run_collector_once, test_pseudonymiser

FIXTURES = Path(__file__).parents[2] / "fixtures"
DNF_DIR = FIXTURES / "updates" / "dnf"
COMMANDS = FIXTURES / "commands"
RECORDED_AT = datetime(2026, 12, 6, 13, 10, tzinfo=timezone.utc)
TRUTH = {("security", "success"): 1, ("other", "success"): 3, ("other", "failure"): 1}
LINES = "normagent_log_lines_total"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "var/lib/dnf").mkdir(parents=True)
    shutil.copy(DNF_DIR / "history.sqlite", tmp_path / "var/lib/dnf/history.sqlite")
    return tmp_path


def updateinfo() -> Any:
    return recorded_command({UPDATEINFO_INSTALLED: COMMANDS / "dnf_updateinfo_installed_security.txt"})


def history_settings(**kw: Any) -> DnfSettings:
    return DnfSettings(source="history", start_at="beginning", **kw)


def applied(ledger: Ledger) -> dict[tuple[str, str], float]:
    return {(dict(k)["kind"], dict(k)["result"]): v for k, v in ledger.snapshot().values(APPLIED).items() if v}


def test_the_recorded_history_counts_its_updates(root: Path, ledger: Ledger) -> None:
    run_collector_once(DNF, ledger, settings=history_settings(), root=root, clock=FakeClock(RECORDED_AT), run_command=updateinfo())
    assert applied(ledger) == TRUTH
    assert ledger.checkpoints("updates.dnf").get(DNF_KEY) == {"last": 6}
    assert ledger.counter_value(LINES, {"source": "updates.dnf", "result": "parsed"}) == 5
    assert ledger.counter_value(LINES, {"source": "updates.dnf", "result": "unparsed"}) == 0


def test_a_second_run_counts_nothing_twice_and_asks_dnf_nothing(root: Path, ledger: Ledger) -> None:
    run_collector_once(DNF, ledger, settings=history_settings(), root=root, clock=FakeClock(RECORDED_AT), run_command=updateinfo())
    again = updateinfo()
    run_collector_once(DNF, ledger, settings=history_settings(), root=root, clock=FakeClock(RECORDED_AT), run_command=again)
    assert applied(ledger) == TRUTH
    assert again.calls == []


def test_by_default_the_history_before_the_agent_is_not_counted(root: Path, ledger: Ledger) -> None:
    run_collector_once(DNF, ledger, settings=DnfSettings(), root=root, clock=FakeClock(RECORDED_AT), run_command=updateinfo())
    assert applied(ledger) == {}
    assert ledger.checkpoints("updates.dnf").get(DNF_KEY) == {"last": 6}


def test_new_transactions_after_the_checkpoint_are_counted(root: Path, ledger: Ledger) -> None:
    ledger.declare(DNF.metrics)
    ledger.commit("updates.dnf", _checkpoint(3))
    run_collector_once(DNF, ledger, settings=DnfSettings(), root=root, clock=FakeClock(RECORDED_AT), run_command=updateinfo())
    assert applied(ledger) == {("security", "success"): 1, ("other", "success"): 1, ("other", "failure"): 1}


def _checkpoint(last: int) -> Any:
    from normagent import Batch, Checkpoint

    return Batch(checkpoints=[Checkpoint(DNF_KEY, {"last": last})])


def test_without_dnfs_advisories_updates_count_as_other(root: Path, ledger: Ledger) -> None:
    with capture_logs() as logs:
        run_collector_once(DNF, ledger, settings=history_settings(), root=root, clock=FakeClock(RECORDED_AT), run_command=recorded_command({}))
    assert applied(ledger) == {("other", "success"): 4, ("other", "failure"): 1}
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["dnf_updateinfo_unavailable"]


def test_transaction_events_carry_no_command_line_or_user(root: Path) -> None:
    batches = run_collector_once(DNF, settings=history_settings(), root=root, clock=FakeClock(RECORDED_AT), run_command=updateinfo())
    found = [o for b in batches for o in b.observations if isinstance(o, Event) and o.kind == TRANSACTION]
    assert [(e.key.split(":")[1], e.attrs["result"]) for e in found] == [
        ("1", "success"), ("2", "success"), ("3", "failure"), ("4", "failure"), ("5", "success"), ("6", "success")
    ]
    assert "installroot" not in repr(found) and "user" not in repr(found)


# --------------------------------------------------------------------------------------------
# bad input: a damaged database


def corrupt_header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(b"this is not an SQLite file any more")


def truncate(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(4096)


def overwrite_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for page in range(2, len(data) // 4096):
        data[page * 4096 : page * 4096 + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [corrupt_header, truncate, overwrite_pages, lambda p: p.write_bytes(b"")], ids=["header", "truncated", "pages", "empty"])
def test_a_damaged_database_is_counted_once_per_version_and_logged_with_the_position(
    root: Path, ledger: Ledger, damage: Any
) -> None:
    path = root / "var/lib/dnf/history.sqlite"
    damage(path)
    with capture_logs() as logs:
        run_collector_once(DNF, ledger, settings=history_settings(), root=root, clock=FakeClock(RECORDED_AT), run_command=updateinfo())
        run_collector_once(DNF, ledger, settings=history_settings(), root=root, clock=FakeClock(RECORDED_AT), run_command=updateinfo())
    assert ledger.counter_value(HISTORY_UNREADABLE, {"source": "dnf"}) == 1
    errors = [e for e in logs if e["event"] == "dnf_history_unreadable"]
    assert len(errors) == 1
    assert errors[0]["path"] == "/var/lib/dnf/history.sqlite" and errors[0]["position"] == "before its first transaction"
    assert "Error" in errors[0]["error"]
    # the file replaced by a good copy is read again, from where reading stopped
    shutil.copy(DNF_DIR / "history.sqlite", path)
    run_collector_once(DNF, ledger, settings=history_settings(), root=root, clock=FakeClock(RECORDED_AT), run_command=updateinfo())
    assert applied(ledger) == TRUTH


def mangle(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()


SECURITY_OK, OTHER_OK, OTHER_FAILED = ("security", "success"), ("other", "success"), ("other", "failure")


@pytest.mark.parametrize(
    ("sql", "reason", "lost", "unparsed"),
    [
        ("UPDATE trans_item SET action = 99 WHERE id = 13", "action 99 is not one libdnf writes", [SECURITY_OK], 1),
        ("UPDATE trans_item SET state = 'x' WHERE id = 13", "state 'x' is not one libdnf writes", [SECURITY_OK], 1),
        ("UPDATE rpm SET name = '' WHERE item_id = 9", "name is not a package name", [SECURITY_OK], 2),
        ("UPDATE trans SET dt_begin = 'yesterday' WHERE id = 5", "dt_begin is not a time", [SECURITY_OK, OTHER_OK], 4),
        ("UPDATE trans SET state = 7 WHERE id = 4", "state 7 is not one libdnf writes", [OTHER_FAILED], 2),
    ],
)
def test_rows_that_make_no_sense_are_unparsed_and_named(
    root: Path, ledger: Ledger, sql: str, reason: str, lost: list[tuple[str, str]], unparsed: int
) -> None:
    """The row is counted as unparsed (a transaction row: each of its items), named by
    transaction and item in the log, and reading goes on to the end."""
    mangle(root / "var/lib/dnf/history.sqlite", sql)
    with capture_logs() as logs:
        run_collector_once(DNF, ledger, settings=history_settings(), root=root, clock=FakeClock(RECORDED_AT), run_command=updateinfo())
    named = [e for e in logs if e["event"] == "dnf_history_row_malformed"]
    assert [e["reason"] for e in named] == [reason] * len(named) and named
    assert ledger.counter_value(LINES, {"source": "updates.dnf", "result": "unparsed"}) == unparsed
    expected = dict(TRUTH)
    for key in lost:
        expected[key] -= 1
    assert applied(ledger) == {k: v for k, v in expected.items() if v}
    assert ledger.checkpoints("updates.dnf").get(DNF_KEY) == {"last": 6}


def test_an_unfinished_transaction_waits_then_is_judged(root: Path, ledger: Ledger) -> None:
    """dnf is writing transaction 6 (state 0, no end): reading stops in front of it until an
    hour after it began (dnf died in it: its unfinished items failed)."""
    mangle(root / "var/lib/dnf/history.sqlite", "UPDATE trans SET state = 0, dt_end = NULL WHERE id = 5")
    mangle(root / "var/lib/dnf/history.sqlite", "DELETE FROM trans WHERE id = 6")
    mangle(root / "var/lib/dnf/history.sqlite", "UPDATE trans_item SET state = 0 WHERE trans_id = 5 AND id = 13")
    begun = datetime.fromtimestamp(_begin(root, 5), timezone.utc)
    clock = FakeClock(begun + timedelta(minutes=5))
    run_collector_once(DNF, ledger, settings=history_settings(), root=root, clock=clock, run_command=updateinfo())
    assert ledger.checkpoints("updates.dnf").get(DNF_KEY) == {"last": 4}
    clock.advance(3600)
    run_collector_once(DNF, ledger, settings=history_settings(), root=root, clock=clock, run_command=updateinfo())
    assert applied(ledger) == {("security", "failure"): 1, ("other", "success"): 3, ("other", "failure"): 1}


def _begin(root: Path, trans_id: int) -> int:
    conn = sqlite3.connect(root / "var/lib/dnf/history.sqlite")
    try:
        return int(conn.execute("SELECT dt_begin FROM trans WHERE id = ?", (trans_id,)).fetchone()[0])
    finally:
        conn.close()


def test_the_database_is_opened_read_only(root: Path, ledger: Ledger) -> None:
    path = root / "var/lib/dnf/history.sqlite"
    before = path.read_bytes()
    path.chmod(0o444)
    run_collector_once(DNF, ledger, settings=history_settings(), root=root, clock=FakeClock(RECORDED_AT), run_command=updateinfo())
    assert applied(ledger) == TRUTH
    assert path.read_bytes() == before


def test_judging_rows_by_hand() -> None:
    """A transaction without items, an upgrade done and one failed, by NEVRA with an epoch."""
    items = (
        DnfItem(1, 6, 1, "openssl-libs", 1, "3.0.7", "27.el9", "x86_64"),
        DnfItem(2, 7, 1, "openssl-libs", 1, "3.0.7", "25.el9", "x86_64"),
        DnfItem(3, 6, 2, "bash", 0, "5.2", "1.el9", "x86_64"),
    )
    judged = judge_transactions(
        [DnfTransaction(1, 100, 101, 1), DnfTransaction(2, 200, 201, 2, items)],
        now=RECORDED_AT,
        security=frozenset({"openssl-libs-1:3.0.7-27.el9.x86_64"}),
    )
    counts = {(dict(o.labels)["kind"], dict(o.labels)["result"]): o.value for o in judged.observations if isinstance(o, Count)}
    assert counts == {("security", "success"): 1, ("other", "failure"): 1}
    assert (judged.last, judged.records, judged.parsed, judged.unparsed) == (2, 3, 2, 0)


# --------------------------------------------------------------------------------------------
# dnf.rpm.log and dnf.log, and updateinfo


def parse_file(path: Path, **kw: Any) -> dict[tuple[str, str], float]:
    ctx = ParseContext(now=RECORDED_AT, tz=timezone.utc, pseudonymise=test_pseudonymiser(), **kw)
    (parsed,) = parse_inputs([path], parse_dnf_logs, ctx)
    assert parsed.result.parsed + parsed.result.ignored + parsed.result.unparsed == parsed.lines
    out: dict[tuple[str, str], float] = {}
    for obs in parsed.result.observations:
        if isinstance(obs, Count) and obs.metric == APPLIED:
            key = (dict(obs.labels)["kind"], dict(obs.labels)["result"])
            out[key] = out.get(key, 0) + obs.value
    return out


class Security:
    security_packages = ("tinyrpm-1.3-1.noarch",)


@pytest.mark.parametrize("name", ["dnf.rpm.log", "dnf.log"])
def test_the_recorded_logs_count_the_same_updates_as_the_database(name: str) -> None:
    assert parse_file(DNF_DIR / name, settings=Security()) == TRUTH


def test_dnf_rpm_log_through_the_collector_settles_the_last_session_after_an_hour(tmp_path: Path, ledger: Ledger) -> None:
    """The log names the last session's updates but no next session follows: an hour later
    (``settle``) they are counted, once."""
    (tmp_path / "var/log").mkdir(parents=True)
    recorded = (DNF_DIR / "dnf.rpm.log").read_bytes()
    cut = recorded.index(b"Upgraded: openssl-libs-3.0.8-1.noarch\n") + len(b"Upgraded: openssl-libs-3.0.8-1.noarch\n")
    (tmp_path / "var/log/dnf.rpm.log").write_bytes(recorded[:cut])  # dnf has not run since transaction 5
    settings = DnfSettings(source="log", files=FileSource(paths=("/var/log/dnf.rpm.log",), start_at="beginning"))
    clock = FakeClock(datetime(2026, 12, 6, 13, 3, tzinfo=timezone.utc))
    run_collector_once(DNF, ledger, settings=settings, root=tmp_path, clock=clock, run_command=updateinfo())
    assert applied(ledger) == {("other", "success"): 2, ("other", "failure"): 1}
    clock.advance(3600)
    run_collector_once(DNF, ledger, settings=settings, root=tmp_path, clock=clock, run_command=updateinfo())
    run_collector_once(DNF, ledger, settings=settings, root=tmp_path, clock=clock, run_command=updateinfo())
    assert applied(ledger) == TRUTH


def test_updateinfo_types_from_dnf_and_from_a_real_yum_host() -> None:
    """dnf's recorded output, and a yum updateinfo list from insights-core's tests (Apache-2.0)."""
    assert parse_updateinfo((COMMANDS / "dnf_updateinfo_installed_security.txt").read_bytes()) == {"tinyrpm-1.3-1.noarch": "security"}
    yum = (
        b"FEDORA-2020-786c7010d2 bugfix         flatpak-libs-1.8.3-1.fc32.x86_64\n"
        b"FEDORA-2020-352b61ce72 bugfix         iwl1000-firmware-1:39.31.5.1-115.fc32.noarch\n"
        b"FEDORA-2020-352b61ce72 Moderate/Sec.  iwl2000-firmware-18.168.6.1-115.fc32.noarch\n"
        b"RSHA-2020-0001 security       firefox-83.0-13.fc32.x86_64\n"
        b"Last metadata expiration check: 0:01:02 ago\n"
    )
    assert parse_updateinfo(yum) == {
        "flatpak-libs-1.8.3-1.fc32.x86_64": "bugfix",
        "iwl1000-firmware-1:39.31.5.1-115.fc32.noarch": "bugfix",
        "iwl2000-firmware-18.168.6.1-115.fc32.noarch": "security",
        "firefox-83.0-13.fc32.x86_64": "security",
    }


def test_a_dnf_log_line_with_a_broken_time_is_named() -> None:
    data = b"2026-13-45T99:00:00+0000 SUBDEBUG Upgrade: x-1-1.noarch\n2026-12-06T13:02:23+0000 SUBDEBUG Upgrade: y-1-1.noarch\n"
    ctx = ParseContext(now=RECORDED_AT, tz=timezone.utc, pseudonymise=test_pseudonymiser(), final=True)
    result = parse_dnf_logs(TextBlock(data, "dnf.rpm.log", None, 2), ctx)
    assert [p.reason for p in result.problems] == ["not a time dnf writes"]
    assert (result.parsed, result.unparsed) == (1, 1)


def test_other_files_are_not_dnf_logs() -> None:
    data = b"Start-Date: 2026-11-20  06:25:12\nCommandline: apt-get upgrade\n"
    ctx = ParseContext(now=RECORDED_AT, tz=timezone.utc, pseudonymise=test_pseudonymiser())
    result = parse_dnf_logs(TextBlock(data, "x", None, 2), ctx)
    assert (result.parsed, result.ignored, result.unparsed) == (0, 2, 0)


@pytest.mark.parametrize("carry", [{"f": "dnf", "up": [[1]], "err": "x", "t": 5}, {"f": "dnflog", "planned": 3}])
def test_a_damaged_dnf_carry_does_not_crash_the_parser(carry: Any) -> None:
    data = (DNF_DIR / "dnf.rpm.log").read_bytes()
    ctx = ParseContext(now=RECORDED_AT, tz=timezone.utc, pseudonymise=test_pseudonymiser(), carry=carry)
    result = parse_dnf_logs(TextBlock(data, "x", None, data.count(b"\n")), ctx)
    assert result.parsed + result.ignored + result.unparsed == data.count(b"\n")


def test_settings_replace_keeps_the_log_files() -> None:
    assert replace(DnfSettings(), source="log").files.paths == ("/var/log/dnf.rpm.log",)
