"""journald: the same login rules on a real journal file (read by the real journalctl and by the
host's libsystemd: every test that reads the file runs through both readers), event-log errors per
origin, the journald/auth.log preference and the bounded origin label."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import pytest

from normagent import Checkpoint, CommandResult, Count, FileSource, JournalEntry, JournalSettings, ParseContext, ParseResult, RecordBlock, Rollup
from normagent.plugins.access.collectors import (
    JOURNAL_ERRORS,
    LOGIN_IDENTIFIERS,
    LOGINS,
    ORIGINS_KEY,
    SOURCE_KEY,
    JournalErrorSettings,
    LoginSettings,
    OriginTracker,
)
from normagent.plugins.access.journal import ERROR_FIELDS, JOURNAL_FIELDS, LOGIN_FIELDS, journal_origin, parse_journal, parse_journal_errors, parse_journal_logins
from normagent.plugins.access.tally import ERRORS_BY_ORIGIN, EVENTLOG_ERRORS, FAILED_LOGINS
from normagent.testing import EPOCH, MemoryCheckpoints, make_context, observations, run_collector_once, test_pseudonymiser
from tests.plugins.access.cases import FIXTURES, verdict
from normagent.sources import sdjournal
from normagent.sources.journald import read_journal
from tests.support.tools import find_tool, require_tool, skip_for_host

JOURNAL = FIXTURES / "access.journal"


@pytest.fixture
def needs_journalctl() -> None:
    require_tool("journalctl", "systemd")


def real_run(argv: Sequence[str], *, timeout: float = 10.0) -> CommandResult:
    """The real command runner, for journalctl over the fixture file."""
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return CommandResult(tuple(argv), None, error="not found")
    return CommandResult(tuple(argv), done.returncode, done.stdout, done.stderr)


def _entries() -> list[JournalEntry]:
    out = real_run(["journalctl", f"--file={JOURNAL}", "--output=json", "--all", "--no-pager"]).stdout
    entries = []
    for line in out.splitlines():
        raw = json.loads(line)
        fields = {k: (bytes(v).decode("utf-8", "replace") if isinstance(v, list) else str(v)) for k, v in raw.items()}
        when = datetime.fromtimestamp(int(fields["__REALTIME_TIMESTAMP"]) / 1e6, timezone.utc)
        entries.append(JournalEntry(fields=fields, realtime=when, cursor=fields["__CURSOR"]))
    return entries


READERS = ("journalctl", "libsystemd")


@pytest.fixture(params=READERS)
def reader(request: pytest.FixtureRequest, needs_journalctl: None) -> str:
    """Each test that reads the journal file once through journalctl and once through libsystemd."""
    if request.param == "libsystemd":
        loaded = sdjournal.load()
        if isinstance(loaded, str):
            skip_for_host(f"libsystemd cannot be loaded here: {loaded}")
    return str(request.param)


def entries_for(reader: str) -> list[JournalEntry]:
    """The file's entries as the collector's reader hands them out (libsystemd's fields are decoded
    when looked at); the same entries, field for field, as journalctl's (test_journald.py)."""
    settings = JournalSettings(files=(str(JOURNAL),), start="beginning", reader=reader, block_entries=100_000)  # type: ignore[arg-type]
    got = [entry for block, _ in read_journal(real_run, settings=settings) for entry in block.records]
    assert got == ENTRIES
    return got  # type: ignore[return-value]


def _ctx(**settings: object) -> ParseContext:
    return ParseContext(now=EPOCH, tz=timezone.utc, pseudonymise=test_pseudonymiser(), settings=JournalErrorSettings(**settings))  # type: ignore[arg-type]


ENTRIES = _entries() if find_tool("journalctl") else []
# Without journalctl the entries are unknown when tests are collected: one case stands for them all
# and skips (fails under CI) through the fixture, instead of vanishing as an empty parameter set.
PER_ENTRY = [pytest.param(n, id=e.fields["NORMAGENT_TEST_RULE"]) for n, e in enumerate(ENTRIES) if e.fields["NORMAGENT_TEST_RULE"] != "J2"]


@pytest.mark.parametrize("index", PER_ENTRY or [pytest.param(None, id="journalctl-missing")])
def test_each_journal_entry_gets_the_verdict_of_its_line(reader: str, index: int) -> None:
    """J1: identifier + MESSAGE are judged exactly as the auth.log line they would have been."""
    entry = entries_for(reader)[index]

    result = parse_journal_logins(RecordBlock((entry,), "test"), _ctx())

    assert verdict(result) == entry.fields["NORMAGENT_TEST_EXPECT"], entry.message


def test_keys_offered_before_a_login_are_no_failed_logins_in_the_journal_either() -> None:
    """S11 through J1: the session's entries in one block, judged as their auth.log lines are."""
    messages = [
        "Failed publickey for alice from 10.20.1.9 port 50000 ssh2: RSA SHA256:abc",
        "Failed publickey for alice from 10.20.1.9 port 50000 ssh2: ECDSA SHA256:def",
        "Accepted publickey for alice from 10.20.1.9 port 50000 ssh2: ED25519 SHA256:ghi",
        "Failed publickey for bob from 10.20.1.9 port 50002 ssh2: RSA SHA256:abc",
    ]
    entries = tuple(
        JournalEntry({"SYSLOG_IDENTIFIER": "sshd-session", "MESSAGE": m, "PRIORITY": "6"}, EPOCH, f"c{n}") for n, m in enumerate(messages)
    )

    result = parse_journal_logins(RecordBlock(entries, "test"), _ctx())

    fails = {o.labels: o.value for o in result.observations if isinstance(o, Count) and o.metric == FAILED_LOGINS}
    assert fails == {(("reason", "bad_key"), ("source", "sshd")): 1.0}  # bob's: his session did not log in
    assert (result.parsed, result.ignored) == (2, 2)


def test_errors_are_counted_per_origin_with_units_folded(reader: str) -> None:
    """J2: priority 0-3 entries count once each under their unit, identifier or command."""
    entries = entries_for(reader)
    origins = sorted({e.fields["NORMAGENT_TEST_ERROR_ORIGIN"] for e in entries if "NORMAGENT_TEST_ERROR_ORIGIN" in e.fields})

    result = parse_journal_errors(RecordBlock(tuple(entries), "test"), _ctx(origins=tuple(origins)))

    expected: dict[str, float] = {}
    for e in entries:
        if "NORMAGENT_TEST_ERROR_ORIGIN" in e.fields:
            expected[e.fields["NORMAGENT_TEST_ERROR_ORIGIN"]] = expected.get(e.fields["NORMAGENT_TEST_ERROR_ORIGIN"], 0) + 1
    got = {dict(o.labels)["origin"]: o.value for o in result.observations if isinstance(o, Count)}
    assert got == expected
    assert result.parsed == sum(expected.values()) and result.parsed + result.ignored == len(entries)
    assert {"nginx.service", "getty@.service", "session.scope", "kernel", "user@.service"} <= set(got)


def test_an_origin_that_is_not_labelled_is_other_but_kept_exactly_in_the_rollup(reader: str) -> None:
    entries = entries_for(reader)
    result = parse_journal_errors(RecordBlock(tuple(entries), "test"), _ctx(origins=("nginx.service",)))

    labels = {dict(o.labels)["origin"] for o in result.observations if isinstance(o, Count)}
    assert labels == {"nginx.service", "other"}
    rolled = {o.key for o in result.observations if isinstance(o, Rollup) and o.name == ERRORS_BY_ORIGIN}
    assert "journal:kernel" in rolled and "journal:getty@.service" in rolled


def test_the_combined_parser_gives_each_entry_one_outcome(reader: str) -> None:
    """An sshd "error:" line is both an event-log error and a login verdict: parsed once."""
    entries = entries_for(reader)
    result = parse_journal(RecordBlock(tuple(entries), "test"), _ctx())

    assert result.parsed + result.ignored + result.unparsed == len(entries)
    errors = sum(o.value for o in result.observations if isinstance(o, Count) and o.metric == EVENTLOG_ERRORS)
    assert errors == sum(1 for e in entries if "NORMAGENT_TEST_ERROR_ORIGIN" in e.fields)


@pytest.mark.parametrize(
    ("parse", "declared"),
    [(parse_journal_logins, LOGIN_FIELDS), (parse_journal_errors, ERROR_FIELDS), (parse_journal, JOURNAL_FIELDS)],
    ids=["logins", "errors", "both"],
)
def test_the_parsers_read_no_field_the_collectors_do_not_declare(reader: str, parse: Callable[[RecordBlock, ParseContext], ParseResult], declared: tuple[str, ...]) -> None:
    """The collectors declare the fields their parser reads and the libsystemd reader then reads
    only those: the parser gives the same result on the entries so read as with every field."""
    entries = tuple(entries_for(reader))
    settings = JournalSettings(files=(str(JOURNAL),), start="beginning", reader=reader, block_entries=100_000)  # type: ignore[arg-type]
    cut = tuple(e for block, _ in read_journal(real_run, settings=settings, fields=declared) for e in block.records)
    origins = tuple(sorted({e.fields["NORMAGENT_TEST_ERROR_ORIGIN"] for e in entries if "NORMAGENT_TEST_ERROR_ORIGIN" in e.fields}))
    if reader == "libsystemd":
        names = {name for item in declared for name in item.split("|")}
        assert all(set(e.fields) <= names for e in cut)  # type: ignore[union-attr]

    full = parse(RecordBlock(entries, "test"), _ctx(origins=origins))

    assert full.parsed
    assert parse(RecordBlock(cut, "test"), _ctx(origins=origins)) == full


@pytest.mark.parametrize(
    ("fields", "origin"),
    [
        ({"_SYSTEMD_UNIT": "getty@tty1.service"}, "getty@.service"),
        ({"_SYSTEMD_UNIT": "session-12.scope"}, "session.scope"),
        ({"_SYSTEMD_UNIT": "run-r1b2c3d4e5.scope"}, "run-r.scope"),
        ({"_SYSTEMD_UNIT": "nginx.service", "SYSLOG_IDENTIFIER": "nginx"}, "nginx.service"),
        ({"_TRANSPORT": "kernel", "SYSLOG_IDENTIFIER": "kernel"}, "kernel"),
        ({"SYSLOG_IDENTIFIER": "epj"}, "epj"),
        ({"_COMM": "x"}, "x"),
        ({}, "unknown"),
    ],
)
def test_journal_origin(fields: dict[str, str], origin: str) -> None:
    assert journal_origin(fields) == origin


# ---------------------------------------------------------------------------------------------
# the collectors, end to end over the real journal file


def _login_settings(
    prefer: str = "journald", identifiers: tuple[str, ...] = LOGIN_IDENTIFIERS, reader: str = "auto", **files: object
) -> LoginSettings:
    return LoginSettings(
        prefer=prefer,  # type: ignore[arg-type]
        files=FileSource(paths=("/var/log/auth.log",), start_at="beginning", **files),  # type: ignore[arg-type]
        journal=JournalSettings(identifiers=identifiers, files=(str(JOURNAL),), start="beginning", reader=reader),  # type: ignore[arg-type]
    )


def _expected_failures() -> float:
    """Failures in the entries the collector asks journalctl for (the login identifiers)."""
    total = 0.0
    for e in ENTRIES:
        if e.identifier not in LOGIN_IDENTIFIERS:
            continue
        words = e.fields["NORMAGENT_TEST_EXPECT"].split()
        if words[0] == "fail":
            total += int(words[3])
    return total


def test_logins_read_the_journal_when_it_holds_login_messages(reader: str, tmp_path: Path) -> None:
    """J3: prefer journald + a journal with sshd entries: the journal is read, auth.log is not."""
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/auth.log").write_text("Nov 23 07:25:53 h sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2\n")
    state = MemoryCheckpoints()

    batches = run_collector_once(LOGINS, settings=_login_settings(reader=reader), root=tmp_path, run_command=real_run, state=state)

    assert batches[0].checkpoints[0] == Checkpoint(SOURCE_KEY, {"prefer": "journald", "source": "journal"})
    failed = sum(o.value for o in observations(batches) if isinstance(o, Count) and o.metric == FAILED_LOGINS)
    assert failed == _expected_failures()
    assert not [k for k in state.values if k.startswith("file:")]
    again = run_collector_once(LOGINS, settings=_login_settings(reader=reader), root=tmp_path, run_command=real_run, state=state)
    assert sum(o.value for o in observations(again) if isinstance(o, Count) and o.metric == FAILED_LOGINS) == 0


def test_logins_fall_back_to_files_when_the_journal_holds_no_login_messages(reader: str, tmp_path: Path) -> None:
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/auth.log").write_text("Nov 23 07:25:53 h sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2\n")

    batches = run_collector_once(
        LOGINS, settings=_login_settings(identifiers=("no-such-program",), reader=reader), root=tmp_path, run_command=real_run
    )

    assert batches[0].checkpoints[0].value == {"prefer": "journald", "source": "files"}
    failed = sum(o.value for o in observations(batches) if isinstance(o, Count) and o.metric == FAILED_LOGINS)
    assert failed == 1


def test_changing_prefer_switches_source_and_forgets_the_old_position(reader: str, tmp_path: Path) -> None:
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/auth.log").write_text("Nov 23 07:25:53 h sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2\n")
    state = MemoryCheckpoints()
    run_collector_once(LOGINS, settings=_login_settings("files", reader=reader), root=tmp_path, run_command=real_run, state=state)
    assert any(k.startswith("file:") for k in state.values)

    batches = run_collector_once(LOGINS, settings=_login_settings("journald", reader=reader), root=tmp_path, run_command=real_run, state=state)

    first = batches[0].checkpoints
    assert first[0].value == {"prefer": "journald", "source": "journal"}
    assert {c.key for c in first[1:] if c.value is None} >= {k for k in ("file:/var/log/auth.log",)}
    assert not any(k.startswith(("file:", "pattern:")) for k in state.values)


def test_prefer_both_reads_both(reader: str, tmp_path: Path) -> None:
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/auth.log").write_text("Nov 23 07:25:53 h sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2\n")

    batches = run_collector_once(LOGINS, settings=_login_settings("both", reader=reader), root=tmp_path, run_command=real_run)

    failed = sum(o.value for o in observations(batches) if isinstance(o, Count) and o.metric == FAILED_LOGINS)
    assert failed == _expected_failures() + 1


# ---------------------------------------------------------------------------------------------
# bounded origins (J4)


def journal_with_logins(argv: Sequence[str], *, timeout: float = 10.0) -> CommandResult:
    """The host's own journal, holding sshd entries (what journalctl prints for the probe's question)."""
    if argv[0] != "journalctl":
        return CommandResult(tuple(argv), None, error="not found")
    return CommandResult(tuple(argv), 0, b'{"__CURSOR":"s=1","SYSLOG_IDENTIFIER":"sshd","MESSAGE":"Accepted publickey for a"}\n')


def overlap_warnings(root: Path, settings: LoginSettings, run_command: object = journal_with_logins) -> list[dict[str, object]]:
    """The collector's advice about its settings on this host (it never disables anything)."""
    assert LOGINS.advise is not None and LOGINS.probe is None
    return [{"key": a.key, "message": a.message} for a in LOGINS.advise(make_context(LOGINS, settings=settings, root=root, run_command=run_command))]


def host_root(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hostname").write_text("clinic-srv1\n")
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return tmp_path


OWN_LINE = "Nov 23 07:25:53 clinic-srv1 sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2\n"
OTHER_LINE = "Nov 23 07:25:53 epj-db2 sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2\n"


def test_prefer_both_over_the_hosts_own_auth_log_and_journal_warns_at_start(tmp_path: Path) -> None:
    """23: both sources carry this host's messages, so every attempt would count twice: say so."""
    root = host_root(tmp_path, {"var/log/auth.log": OWN_LINE})

    [warning] = overlap_warnings(root, LoginSettings(prefer="both"))

    assert warning["key"] == "prefer" and "/var/log/auth.log" in str(warning["message"])
    assert "twice" in str(warning["message"])


def test_prefer_both_over_a_file_that_holds_this_hosts_lines_warns_too(tmp_path: Path) -> None:
    """A syslog server's collected file that also holds this host's own lines (found by its host name)."""
    root = host_root(tmp_path, {"srv/log/all.log": OTHER_LINE * 50 + OWN_LINE})

    [warning] = overlap_warnings(root, LoginSettings(prefer="both", files=FileSource(paths=("/srv/log/*.log",))))

    assert "/srv/log/all.log" in str(warning["message"]) and "auth.log" not in str(warning["message"])


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(LoginSettings(prefer="both", files=FileSource(paths=("/srv/log/*.log",))), id="other-machines-files"),
        pytest.param(LoginSettings(prefer="both", journal=JournalSettings(directory="/var/log/journal/remote")), id="a-remote-journal"),
        pytest.param(LoginSettings(prefer="journald"), id="prefer-journald"),
        pytest.param(LoginSettings(prefer="files"), id="prefer-files"),
    ],
)
def test_no_warning_where_the_sources_do_not_overlap(tmp_path: Path, settings: LoginSettings) -> None:
    root = host_root(tmp_path, {"var/log/auth.log": OWN_LINE, "srv/log/all.log": OTHER_LINE * 3})

    assert overlap_warnings(root, settings) == []


def test_no_warning_when_the_journal_holds_no_login_messages(tmp_path: Path) -> None:
    root = host_root(tmp_path, {"var/log/auth.log": OWN_LINE})

    assert overlap_warnings(root, LoginSettings(prefer="both"), run_command=real_run_nothing) == []


def real_run_nothing(argv: Sequence[str], *, timeout: float = 10.0) -> CommandResult:
    return CommandResult(tuple(argv), 0, b"")


def test_origins_are_admitted_after_enough_errors_and_then_labelled(reader: str) -> None:
    journal = JournalSettings(priority="err", files=(str(JOURNAL),), start="beginning", reader=reader)  # type: ignore[arg-type]
    settings = JournalErrorSettings(journal=journal, max_origins=2, admit_after=2)
    state = MemoryCheckpoints()

    first = run_collector_once(JOURNAL_ERRORS, settings=settings, run_command=real_run, state=state)

    labels = {dict(o.labels)["origin"] for o in observations(first) if isinstance(o, Count) and o.metric == EVENTLOG_ERRORS and o.value}
    assert labels == {"other"}
    per_origin: dict[str, int] = {}
    for e in entries_for(reader):
        if "NORMAGENT_TEST_ERROR_ORIGIN" in e.fields:
            per_origin[e.fields["NORMAGENT_TEST_ERROR_ORIGIN"]] = per_origin.get(e.fields["NORMAGENT_TEST_ERROR_ORIGIN"], 0) + 1
    top_two = [o for o, n in sorted(per_origin.items(), key=lambda kv: (-kv[1], kv[0])) if n >= 2][:2]
    assert state.values[ORIGINS_KEY]["admitted"] == top_two  # most errors first, ties by name
    fresh = MemoryCheckpoints({ORIGINS_KEY: state.values[ORIGINS_KEY]})
    second = run_collector_once(JOURNAL_ERRORS, settings=settings, run_command=real_run, state=fresh)
    counts = {dict(o.labels)["origin"]: o.value for o in observations(second) if isinstance(o, Count) and o.metric == EVENTLOG_ERRORS and o.value}
    assert {o: counts[o] for o in top_two} == {o: per_origin[o] for o in top_two}
    assert set(counts) == {*top_two, "other"}
    assert counts["other"] == sum(per_origin.values()) - sum(per_origin[o] for o in top_two)


def test_the_origin_tally_is_bounded_and_deterministic() -> None:
    tracker = OriginTracker(max_origins=1, admit_after=100)
    rollups = [Rollup(ERRORS_BY_ORIGIN, EPOCH.date(), f"journal:unit{n}.service", 1) for n in range(500)]

    assert tracker.observe(rollups)

    assert len(tracker.seen) == 50 and tracker.admitted == []
    assert list(tracker.seen)[:2] == ["unit0.service", "unit1.service"]


def test_admission_never_exceeds_the_cap_and_never_evicts() -> None:
    tracker = OriginTracker(max_origins=2, admit_after=1)
    tracker.observe([Rollup(ERRORS_BY_ORIGIN, EPOCH.date(), "journal:a", 5), Rollup(ERRORS_BY_ORIGIN, EPOCH.date(), "journal:b", 3)])

    tracker.observe([Rollup(ERRORS_BY_ORIGIN, EPOCH.date(), "journal:c", 1000)])

    assert tracker.admitted == ["a", "b"]
    assert OriginTracker.from_json(tracker.to_json(), 2, 1) == tracker
