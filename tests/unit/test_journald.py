"""journald readers: real journalctl, and the host's libsystemd, over real journal files
(tests/fixtures/journal, written by systemd-journal-remote).

The expected entries come from the export-format sources the journal files were made from, read
by a small export parser here, not from journalctl: what each reader decodes is checked against
what was written. Every reading test runs through both readers, and the readers are checked
against each other: the same blocks, entries and cursors, and a cursor of one resumes in the other.
"""

from __future__ import annotations

import json

import shutil
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from normagent.errors import NoData
from normagent.model import CommandResult, JournalEntry
from normagent.sources.command import run_command
from normagent.sources import journald, sdjournal
from normagent.sources.journald import (
    JournalError,
    JournalSettings,
    decode_journal_json,
    journal_matches,
    parse_journal_json,
    priority_range,
    read_journal,
)
from normagent.testing import recorded_command
from tests.support.tools import require_tool, skip_for_host

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "journal"
MAIN = FIXTURES / "main.journal"
ARCHIVE = FIXTURES / "split" / "1-archive.journal"
CURRENT = FIXTURES / "split" / "2-current.journal"


# --------------------------------------------------------------------------------------------
# Ground truth: the export files the journals were generated from


@dataclass(frozen=True)
class Exported:
    fields: dict[str, list[bytes]]

    def text(self, name: str) -> str:
        return "\n".join(v.decode("utf-8", "replace") for v in self.fields.get(name, []))

    @property
    def realtime(self) -> datetime:
        return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(self.text("__REALTIME_TIMESTAMP")))


def read_export(path: Path) -> list[Exported]:
    """Parse journal export format: NAME=value lines, or NAME, u64 length, raw bytes; blank line ends an entry."""
    data = path.read_bytes()
    entries: list[Exported] = []
    fields: dict[str, list[bytes]] = {}
    pos = 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        line = data[pos:end]
        if not line:
            entries.append(Exported(fields))
            fields = {}
            pos = end + 1
        elif b"=" in line:
            name, value = line.split(b"=", 1)
            fields.setdefault(name.decode(), []).append(value)
            pos = end + 1
        else:
            (size,) = struct.unpack_from("<Q", data, end + 1)
            start = end + 9
            fields.setdefault(line.decode(), []).append(data[start : start + size])
            pos = start + size + 1
    if fields:
        entries.append(Exported(fields))
    return entries


MAIN_EXPORT = read_export(FIXTURES / "main.export")
ARCHIVE_EXPORT = read_export(FIXTURES / "split" / "1-archive.export")
CURRENT_EXPORT = read_export(FIXTURES / "split" / "2-current.export")


# --------------------------------------------------------------------------------------------
# The real journalctl, or a clear reason why not


@pytest.fixture(scope="module")
def journalctl() -> str:
    """journalctl able to read the committed files; CI must have it, elsewhere the tests skip."""
    path = require_tool("journalctl", "systemd")
    result = run_command([path, f"--file={MAIN}", "--output=json", "--lines=1"], timeout=20)
    if not result.ok or not result.stdout.strip():
        # An older systemd (before 252) cannot read the committed files' newer format.
        skip_for_host(f"{path} cannot read {MAIN}: {result.error or result.stderr.decode(errors='replace').strip()}")
    return path


READERS = ("journalctl", "libsystemd")


def libsystemd_or_skip() -> None:
    loaded = sdjournal.load()
    if isinstance(loaded, str):
        skip_for_host(f"libsystemd cannot be loaded here: {loaded}")


@pytest.fixture(params=READERS)
def reader(request: pytest.FixtureRequest, journalctl: str) -> str:
    """Each reading test once through journalctl and once through libsystemd."""
    if request.param == "libsystemd":
        libsystemd_or_skip()
    return str(request.param)


def read_all(journalctl: str, **kwargs: object) -> list[tuple[list[JournalEntry], str]]:
    cursor = kwargs.pop("cursor", None)
    library = str(kwargs.pop("library", journald.LIBSYSTEMD))
    fields = kwargs.pop("fields", None)
    settings = JournalSettings(**kwargs)  # type: ignore[arg-type]
    blocks = read_journal(run_command, cursor=cursor, settings=settings, journalctl=journalctl, library=library, fields=fields)  # type: ignore[arg-type]
    return [(list(block.records), c) for block, c in blocks]  # type: ignore[misc]


def entries_of(blocks: list[tuple[list[JournalEntry], str]]) -> list[JournalEntry]:
    return [entry for records, _ in blocks for entry in records]


def summary(entry: JournalEntry) -> tuple[str, str, str, datetime]:
    return (entry.identifier, entry.fields.get("PRIORITY", ""), entry.message, entry.realtime)


def exported_summary(entry: Exported) -> tuple[str, str, str, datetime]:
    return (entry.text("SYSLOG_IDENTIFIER"), entry.text("PRIORITY"), entry.text("MESSAGE"), entry.realtime)


# --------------------------------------------------------------------------------------------
# Reading and decoding


def test_reads_every_entry_in_order_with_values_decoded(journalctl: str, reader: str) -> None:
    """Binary, multi-line, repeated and >4096-byte values all arrive as the text that was written."""
    blocks = read_all(journalctl, reader=reader, files=(str(MAIN),), start="beginning", block_entries=7)

    got = entries_of(blocks)

    assert [summary(e) for e in got] == [exported_summary(e) for e in MAIN_EXPORT]
    binary = [e for e in got if "login failed for" in e.message]
    assert binary and "\ufffd" in binary[0].message  # Latin-1 bytes decoded with replacement
    tagged = [e for e in got if e.message == "tagged twice"]
    assert tagged[0].fields["NORMAGENT_TAG"] == "alpha\nbeta"
    assert max(len(e.message) for e in got) > 4096  # --all: not null


def test_blocks_are_bounded_and_carry_the_cursor_of_their_last_entry(journalctl: str, reader: str) -> None:
    blocks = read_all(journalctl, reader=reader, files=(str(MAIN),), start="beginning", block_entries=5)

    assert [len(records) for records, _ in blocks] == [5] * (len(MAIN_EXPORT) // 5) + [len(MAIN_EXPORT) % 5]
    assert all(cursor == records[-1].cursor for records, cursor in blocks)


@pytest.mark.parametrize("after", [0, 4, 5, 19, 30, 31])
def test_resuming_from_a_cursor_reads_exactly_the_entries_after_it(journalctl: str, reader: str, after: int) -> None:
    everything = entries_of(read_all(journalctl, reader=reader, files=(str(MAIN),), start="beginning"))

    resumed = entries_of(read_all(journalctl, reader=reader, files=(str(MAIN),), cursor=everything[after].cursor, block_entries=4))

    assert [e.cursor for e in resumed] == [e.cursor for e in everything[after + 1 :]]


FILTERS: list[tuple[str, dict[str, object], Callable[[Exported], bool]]] = [
    ("unit", {"units": ("ssh",)}, lambda e: e.text("_SYSTEMD_UNIT") == "ssh.service"),
    ("two units", {"units": ("ssh.service", "cron.service")}, lambda e: e.text("_SYSTEMD_UNIT") in {"ssh.service", "cron.service"}),
    ("identifier", {"identifiers": ("sudo",)}, lambda e: e.text("SYSLOG_IDENTIFIER") == "sudo"),
    ("identifiers", {"identifiers": ("sshd", "sshd-session")}, lambda e: e.text("SYSLOG_IDENTIFIER") in {"sshd", "sshd-session"}),
    (
        "unit or identifier",
        {"units": ("cron",), "identifiers": ("kernel", "sudo")},
        lambda e: e.text("_SYSTEMD_UNIT") == "cron.service" or e.text("SYSLOG_IDENTIFIER") in {"kernel", "sudo"},
    ),
    ("priority err", {"priority": "err"}, lambda e: int(e.text("PRIORITY")) <= 3),
    ("priority digit", {"priority": "0"}, lambda e: int(e.text("PRIORITY")) == 0),
    ("priority range", {"priority": "warning..err"}, lambda e: int(e.text("PRIORITY")) in (3, 4)),
    (
        "priority applies to both groups",
        {"units": ("legacy-app",), "identifiers": ("sshd",), "priority": "crit..err"},
        lambda e: (e.text("_SYSTEMD_UNIT") == "legacy-app.service" or e.text("SYSLOG_IDENTIFIER") == "sshd")
        and int(e.text("PRIORITY")) in (2, 3),
    ),
    ("no match", {"identifiers": ("nothing-logs-this",)}, lambda e: False),
]


@pytest.mark.parametrize(("kwargs", "wanted"), [(k, w) for _, k, w in FILTERS], ids=[n for n, _, _ in FILTERS])
def test_filters_select_exactly_the_matching_entries(
    journalctl: str, reader: str, kwargs: dict[str, object], wanted: Callable[[Exported], bool]
) -> None:
    got = entries_of(read_all(journalctl, reader=reader, files=(str(MAIN),), start="beginning", block_entries=3, **kwargs))

    assert [summary(e) for e in got] == [exported_summary(e) for e in MAIN_EXPORT if wanted(e)]


def test_start_at_end_takes_the_newest_cursor_then_reads_only_new_entries(journalctl: str, reader: str, tmp_path: Path) -> None:
    """A first run commits the end; entries that arrive later (a new journal file) are read once."""
    shutil.copy(ARCHIVE, tmp_path / ARCHIVE.name)

    first = read_all(journalctl, reader=reader, directory=str(tmp_path), start="end")
    shutil.copy(CURRENT, tmp_path / CURRENT.name)
    second = read_all(journalctl, reader=reader, directory=str(tmp_path), cursor=first[-1][1])
    third = read_all(journalctl, reader=reader, directory=str(tmp_path), cursor=second[-1][1])

    assert [records for records, _ in first] == [[]]
    assert [summary(e) for e in entries_of(second)] == [exported_summary(e) for e in CURRENT_EXPORT]
    assert third == []


def test_start_at_end_with_a_filter_the_newest_entry_does_not_match(journalctl: str, reader: str) -> None:
    """The end cursor is the newest entry of the whole journal; resuming from it is not a lost cursor."""
    first = read_all(journalctl, reader=reader, files=(str(MAIN),), identifiers=("CRON",), start="end")
    with capture_logs() as logs:
        second = read_all(journalctl, reader=reader, files=(str(MAIN),), identifiers=("CRON",), cursor=first[-1][1])

    assert MAIN_EXPORT[-1].text("SYSLOG_IDENTIFIER") != "CRON"
    assert second == []
    assert not [entry for entry in logs if entry["event"] == "journal_cursor_lost"]


def test_a_vacuumed_cursor_is_reported_and_the_nearest_entry_is_not_skipped(journalctl: str, reader: str, tmp_path: Path) -> None:
    """journalctl --after-cursor (systemd < 255) would drop the first surviving entry; we must not."""
    for path in (ARCHIVE, CURRENT):
        shutil.copy(path, tmp_path / path.name)
    everything = entries_of(read_all(journalctl, reader=reader, directory=str(tmp_path), start="beginning"))
    cursor_in_archive = everything[10].cursor
    (tmp_path / ARCHIVE.name).unlink()  # what journald's vacuum does to an old archived file

    with capture_logs() as logs:
        resumed = entries_of(read_all(journalctl, reader=reader, directory=str(tmp_path), cursor=cursor_in_archive))

    assert [summary(e) for e in resumed] == [exported_summary(e) for e in CURRENT_EXPORT]
    lost = [entry for entry in logs if entry["event"] == "journal_cursor_lost"]
    assert len(lost) == 1 and lost[0]["log_level"] == "warning" and lost[0]["reason"] == "vacuumed"


def test_a_rotation_under_the_cursor_resumes_after_it_with_nothing_lost_or_doubled(journalctl: str, reader: str, tmp_path: Path) -> None:
    """journald renames the active file to an archive and starts a new one: the cursor, now in the
    archive, still names its entry; the read goes on with the new file's entries, quietly."""
    active = tmp_path / "system.journal"
    shutil.copy(ARCHIVE, active)
    before = read_all(journalctl, reader=reader, directory=str(tmp_path), start="beginning")
    committed = before[-1][1]
    active.rename(tmp_path / "system@0123456789abcdef0123456789abcdef-0000000000000001-0005f0e1d2c3b4a5.journal")
    shutil.copy(CURRENT, active)

    with capture_logs() as logs:
        resumed = entries_of(read_all(journalctl, reader=reader, directory=str(tmp_path), cursor=committed))

    assert [summary(e) for e in entries_of(before)] == [exported_summary(e) for e in ARCHIVE_EXPORT]
    assert [summary(e) for e in resumed] == [exported_summary(e) for e in CURRENT_EXPORT]
    assert not [entry for entry in logs if entry["event"] == "journal_cursor_lost"]


@pytest.mark.parametrize(("start", "expected"), [("beginning", len(MAIN_EXPORT)), ("end", 0)])
def test_a_cursor_journalctl_cannot_parse_falls_back_to_the_start_setting(
    journalctl: str, reader: str, start: str, expected: int
) -> None:
    with capture_logs() as logs:
        got = entries_of(read_all(journalctl, reader=reader, files=(str(MAIN),), cursor="not-a-cursor", start=start))

    assert len(got) == expected
    assert [entry["reason"] for entry in logs if entry["event"] == "journal_cursor_lost"] == ["invalid cursor"]


# --------------------------------------------------------------------------------------------
# The two readers against each other


SAME = [
    ("everything, blocks of 7", {"start": "beginning", "block_entries": 7}),
    ("everything, one block", {"start": "beginning", "block_entries": 1000}),
    ("blocks of 1", {"start": "beginning", "block_entries": 1}),
    *[(name, {"start": "beginning", "block_entries": 3, **kwargs}) for name, kwargs, _ in FILTERS],
    ("from the end", {"start": "end"}),
    ("from the end, filtered", {"start": "end", "identifiers": ("CRON",)}),
]


@pytest.mark.parametrize("kwargs", [k for _, k in SAME], ids=[n for n, _ in SAME])
def test_both_readers_give_the_same_blocks_entries_and_cursors(journalctl: str, kwargs: dict[str, object]) -> None:
    """Fields (binary, repeated, over 4096 bytes), times, cursors and block cuts, all equal."""
    libsystemd_or_skip()

    by_journalctl = read_all(journalctl, reader="journalctl", files=(str(MAIN),), **kwargs)
    by_libsystemd = read_all(journalctl, reader="libsystemd", files=(str(MAIN),), **kwargs)

    assert by_libsystemd == by_journalctl
    assert [dict(e.fields) for e in entries_of(by_libsystemd)] == [dict(e.fields) for e in entries_of(by_journalctl)]


@pytest.mark.parametrize("after", [0, 4, 19, 31])
@pytest.mark.parametrize(("first", "then"), [("journalctl", "libsystemd"), ("libsystemd", "journalctl")])
def test_a_cursor_committed_by_one_reader_resumes_in_the_other(journalctl: str, first: str, then: str, after: int) -> None:
    """A host that gains or loses libsystemd, or a changed reader setting, neither repeats nor skips."""
    libsystemd_or_skip()
    everything = entries_of(read_all(journalctl, reader=first, files=(str(MAIN),), start="beginning"))

    resumed = entries_of(read_all(journalctl, reader=then, files=(str(MAIN),), cursor=everything[after].cursor, block_entries=4))

    assert [e.cursor for e in resumed] == [e.cursor for e in everything[after + 1 :]]


def test_a_split_journal_directory_reads_alike_in_both(journalctl: str, tmp_path: Path) -> None:
    """Two files of one journal (an archive and the current file) interleave the same way."""
    libsystemd_or_skip()
    for path in (ARCHIVE, CURRENT):
        shutil.copy(path, tmp_path / path.name)

    by_journalctl = read_all(journalctl, reader="journalctl", directory=str(tmp_path), start="beginning", block_entries=6)
    by_libsystemd = read_all(journalctl, reader="libsystemd", directory=str(tmp_path), start="beginning", block_entries=6)

    assert by_libsystemd == by_journalctl
    assert [summary(e) for e in entries_of(by_libsystemd)] == [exported_summary(e) for e in ARCHIVE_EXPORT + CURRENT_EXPORT]


DECLARED = ("MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "_COMM")
DECLARED_FILTERS = [pytest.param({}, id="all"), pytest.param({"identifiers": ("sshd", "sudo")}, id="identifiers"), pytest.param({"priority": "err"}, id="priority")]


@pytest.mark.parametrize("kwargs", DECLARED_FILTERS)
@pytest.mark.parametrize("block_entries", [1, 2, 3, 5, 7, 100])
def test_declared_fields_checkpoint_each_blocks_last_entry_and_resume_exactly_after_it(
    journalctl: str, kwargs: dict[str, object], block_entries: int
) -> None:
    """Exactly once with the cursor taken per block, not per entry: every block's cursor is its
    last entry's (as the full reader's), and resuming from it reads exactly the entries after it."""
    libsystemd_or_skip()
    everything = entries_of(read_all(journalctl, reader="journalctl", files=(str(MAIN),), start="beginning", **kwargs))
    assert everything

    blocks = read_all(journalctl, reader="libsystemd", files=(str(MAIN),), start="beginning", block_entries=block_entries, fields=DECLARED, **kwargs)

    assert [summary(e) for e in entries_of(blocks)] == [summary(e) for e in everything]
    handed = 0
    for records, cursor in blocks:
        handed += len(records)
        assert cursor == records[-1].cursor == everything[handed - 1].cursor
        resumed = read_all(journalctl, reader="libsystemd", files=(str(MAIN),), cursor=cursor, block_entries=block_entries, fields=DECLARED, **kwargs)
        assert [summary(e) for e in entries_of(resumed)] == [summary(e) for e in everything[handed:]]
        assert [c for _, c in resumed] == [r[-1].cursor for r, _ in resumed]
    assert handed == len(everything)


def test_declared_fields_are_the_only_fields_read_repeated_ones_by_their_first_value(journalctl: str) -> None:
    libsystemd_or_skip()
    full = entries_of(read_all(journalctl, reader="journalctl", files=(str(MAIN),), start="beginning"))

    got = entries_of(read_all(journalctl, reader="libsystemd", files=(str(MAIN),), start="beginning", fields=("MESSAGE", "NORMAGENT_TAG", "__CURSOR", "__REALTIME_TIMESTAMP")))

    assert [dict(e.fields) for e in got] == [
        {k: v.split("\n")[0] if k == "NORMAGENT_TAG" else v for k, v in e.fields.items() if k in ("MESSAGE", "NORMAGENT_TAG", "__CURSOR", "__REALTIME_TIMESTAMP")}
        for e in full
    ]
    assert [e.cursor for e in got] == [e.cursor for e in full]  # __CURSOR declared: every entry's
    assert [e for e in got if e.message == "tagged twice"][0].fields["NORMAGENT_TAG"] == "alpha"


def test_a_declared_alternative_is_read_only_where_the_first_is_missing(journalctl: str) -> None:
    """``"A|B"``: what ``fields.get("A") or fields.get("B")`` gives, without reading B where A is."""
    libsystemd_or_skip()
    full = entries_of(read_all(journalctl, reader="journalctl", files=(str(MAIN),), start="beginning"))

    got = entries_of(read_all(journalctl, reader="libsystemd", files=(str(MAIN),), start="beginning", fields=("NO_SUCH|_SYSTEMD_UNIT|SYSLOG_IDENTIFIER",)))

    def either(fields: Mapping[str, str]) -> str:
        return fields.get("_SYSTEMD_UNIT") or fields.get("SYSLOG_IDENTIFIER", "")

    assert [either(e.fields) for e in got] == [either(e.fields) for e in full]
    assert any("SYSLOG_IDENTIFIER" in e.fields for e in got) and any("_SYSTEMD_UNIT" in e.fields for e in got)
    assert all(("SYSLOG_IDENTIFIER" in e.fields) == (not e.fields.get("_SYSTEMD_UNIT")) for e in got)


def test_without_libsystemd_auto_reads_through_journalctl_and_says_so(journalctl: str) -> None:
    """Where the library cannot be loaded, the fallback reads the same, and the log names the reader."""
    journald._announce.cache_clear()
    with capture_logs() as logs:
        got = read_all(journalctl, files=(str(MAIN),), start="beginning", library="libnormagent-absent.so.0")
        again = read_all(journalctl, files=(str(MAIN),), cursor=entries_of(got)[-5].cursor, library="libnormagent-absent.so.0")

    assert [summary(e) for e in entries_of(got)] == [exported_summary(e) for e in MAIN_EXPORT]
    assert entries_of(again) == entries_of(got)[-4:]  # the next run resumes as the journalctl reader does
    [said] = [entry for entry in logs if entry["event"] == "journal_reader"]  # once per process, not per run
    assert said["reader"] == "journalctl" and "libnormagent-absent.so.0" in said["reason"] and said["log_level"] == "info"


def test_with_libsystemd_auto_reads_through_it_and_says_so(journalctl: str) -> None:
    libsystemd_or_skip()
    journald._announce.cache_clear()
    with capture_logs() as logs:
        got = read_all(journalctl, files=(str(MAIN),), start="beginning", library="libsystemd.so.0")

    assert [summary(e) for e in entries_of(got)] == [exported_summary(e) for e in MAIN_EXPORT]
    assert [(e["reader"], e["library"]) for e in logs if e["event"] == "journal_reader"] == [("libsystemd", "libsystemd.so.0")]
    assert all(isinstance(e.fields, sdjournal.JournalFields) for e in entries_of(got))


def test_reader_libsystemd_without_the_library_is_a_journal_error() -> None:
    """Asked for by name, a missing library fails the run (visibly) instead of switching reader."""
    settings = JournalSettings(files=(str(MAIN),), reader="libsystemd")

    with pytest.raises(JournalError, match="libnormagent-absent.so.0"):
        list(read_journal(run_command, settings=settings, library="libnormagent-absent.so.0"))


def test_libsystemd_fields_behave_as_the_dict_journalctl_gives(journalctl: str) -> None:
    libsystemd_or_skip()
    [(entries, _)] = read_all(journalctl, reader="libsystemd", files=(str(MAIN),), start="beginning", block_entries=100)
    [(expected, _)] = read_all(journalctl, reader="journalctl", files=(str(MAIN),), start="beginning", block_entries=100)

    for got, want in zip(entries, expected, strict=True):
        fields, plain = got.fields, dict(want.fields)
        assert len(fields) == len(plain) and set(fields) == set(plain) and fields == plain
        assert all(fields[name] == value and fields.get(name) == value and name in fields for name, value in plain.items())
        assert fields.get("NO_SUCH_FIELD", "absent") == "absent" and "NO_SUCH_FIELD" not in fields
        with pytest.raises(KeyError):
            fields["NO_SUCH_FIELD"]


# --------------------------------------------------------------------------------------------
# Absent sources and failures


def test_missing_journalctl_is_no_data() -> None:
    with pytest.raises(NoData, match="journalctl is not installed"):
        list(read_journal(run_command, settings=JournalSettings(reader="journalctl"), journalctl="/nonexistent/bin/journalctl"))


@pytest.mark.parametrize("kind", ["missing file", "empty file", "missing directory", "empty directory"])
@pytest.mark.parametrize("start", ["beginning", "end"])
def test_no_journal_there_is_no_data(journalctl: str, reader: str, tmp_path: Path, kind: str, start: str) -> None:
    if kind == "missing file":
        settings = JournalSettings(files=(str(tmp_path / "absent.journal"),), start=start, reader=reader)  # type: ignore[arg-type]
    elif kind == "empty file":
        (tmp_path / "new.journal").write_bytes(b"")
        settings = JournalSettings(files=(str(tmp_path / "new.journal"),), start=start, reader=reader)  # type: ignore[arg-type]
    elif kind == "missing directory":
        settings = JournalSettings(directory=str(tmp_path / "absent"), start=start, reader=reader)  # type: ignore[arg-type]
    else:
        settings = JournalSettings(directory=str(tmp_path), start=start, reader=reader)  # type: ignore[arg-type]

    with pytest.raises(NoData):
        list(read_journal(run_command, settings=settings, journalctl=journalctl))


def test_a_damaged_journal_file_is_a_journal_error(journalctl: str, reader: str, tmp_path: Path) -> None:
    """A file that is not a journal is a fault to see (the run fails), not an absent source."""
    (tmp_path / "x.journal").write_bytes(b"this is not a journal file\n" * 100)

    with pytest.raises(JournalError, match="Bad message"):
        list(read_journal(run_command, settings=JournalSettings(files=(str(tmp_path / "x.journal"),), reader=reader), journalctl=journalctl))


@pytest.mark.parametrize("start", ["beginning", "end"])
def test_a_journal_file_cut_short_is_a_journal_error_and_a_directory_of_them_says_they_may_be_damaged(
    journalctl: str, reader: str, tmp_path: Path, start: str
) -> None:
    """libsystemd answers a file cut short as it answers an empty one (ENODATA), and in a directory
    skips it without a word: the run said "no journal files there", or "no entries this user may
    read", which sent the admin after permissions."""
    data = (FIXTURES / "main.journal").read_bytes()
    cut = tmp_path / "cut.journal"
    cut.write_bytes(data[: len(data) // 2])
    named = JournalSettings(files=(str(cut),), start=start, reader=reader)  # type: ignore[arg-type]
    with pytest.raises(JournalError, match=r"cut\.journal: not a whole journal file \(cut short or damaged\)"):
        list(read_journal(run_command, settings=named, journalctl=journalctl))
    folder = JournalSettings(directory=str(tmp_path), start=start, reader=reader)  # type: ignore[arg-type]
    with pytest.raises(NoData, match=r"no entries in the journal files of .+: they are empty, damaged \(a file cut short"):
        list(read_journal(run_command, settings=folder, journalctl=journalctl))


def test_a_journalctl_timeout_is_a_journal_error() -> None:
    settings = JournalSettings(files=("/x.journal",), reader="journalctl")
    argv = ("journalctl", "--output=json", "--all", "--no-pager", "--file=/x.journal", "--lines=1")
    runner = recorded_command({argv: CommandResult(argv=argv, returncode=None, error="timed out after 30s")})

    with pytest.raises(JournalError, match="timed out"):
        list(read_journal(runner, settings=settings))


def test_access_limited_to_own_entries_is_logged(journalctl: str) -> None:
    """A user outside systemd-journal sees only their own entries; journalctl says so on stderr."""

    def hinting(argv: object, *, timeout: float = 10.0) -> CommandResult:
        result = run_command(argv, timeout=timeout)  # type: ignore[arg-type]
        hint = b"Hint: You are currently not seeing messages from other users and the system.\n"
        return CommandResult(result.argv, result.returncode, result.stdout, hint + result.stderr, result.error)

    with capture_logs() as logs:
        list(read_journal(hinting, settings=JournalSettings(files=(str(MAIN),), start="beginning", reader="journalctl"), journalctl=journalctl))

    assert [entry["event"] for entry in logs] == ["journal_access_limited"]


@pytest.mark.parametrize(
    ("euid", "groups", "limited"),
    [(0, set(), False), (1000, {"users"}, True), (1000, {"users", "systemd-journal"}, False), (998, {"adm"}, False), (1000, {"wheel"}, False)],
)
def test_libsystemd_reader_knows_when_the_local_journal_shows_only_own_entries(euid: int, groups: set[str], limited: bool) -> None:
    """The libsystemd reader's counterpart of journalctl's hint (root or the journal's groups see all)."""
    assert sdjournal.access_limited(euid, groups) is limited


# --------------------------------------------------------------------------------------------
# Pure parts


def test_decode_counts_garbage_lines_and_keeps_the_entries(journalctl: str) -> None:
    real = run_command([journalctl, f"--file={MAIN}", "--output=json", "--all"], timeout=20).stdout.splitlines()
    junk = [
        b"not json at all",
        b'["an", "array"]',
        b'{"MESSAGE": "no cursor", "__REALTIME_TIMESTAMP": "1"}',
        b'{"__CURSOR": "s=1", "__REALTIME_TIMESTAMP": "yesterday"}',
        b'{"__CURSOR": "s=1", "__REALTIME_TIMESTAMP": "99999999999999999999999"}',
        b'{"__CURSOR": "s=1", "__REALTIME_TIMESTAMP": "' + b"9" * 5000 + b'"}',  # past int()'s 4,300 digits
        '{"__CURSOR": "s=1", "__REALTIME_TIMESTAMP": "1\u00b2"}'.encode(),  # "²": a digit to isdigit, not to int
        b"\xff\xfe binary",
        b'{"truncated": ',
    ]
    data = b"\n".join([real[0], *junk, b"-- No entries --", b"", b"\x1e" + real[1], *real[2:]]) + b"\n"

    decoded = decode_journal_json(data)

    assert len(decoded.entries) == len(real)
    assert decoded.garbage == len(junk)
    assert decoded.first_garbage_line == 2


def test_parse_journal_json_logs_garbage_and_returns_entries(journalctl: str) -> None:
    real = run_command([journalctl, f"--file={MAIN}", "--output=json", "--all", "--lines=3"], timeout=20).stdout

    with capture_logs() as logs:
        entries = parse_journal_json(real + b"garbage\n")

    assert len(entries) == 3
    assert [(e["event"], e["lines"]) for e in logs] == [("journal_json_garbage", 1)]


VALUES = [
    ('"plain"', "plain"),
    ("[104, 105]", "hi"),
    ("[255, 104]", "\ufffdh"),
    ('["one", "two"]', "one\ntwo"),
    ('[[104, 105], "two"]', "hi\ntwo"),
    ("null", ""),
    ("[]", ""),
    ("[300, 1]", "300 1"),
    ("42", "42"),
]


@pytest.mark.parametrize(("raw", "text"), VALUES)
def test_field_values_become_text(raw: str, text: str) -> None:
    line = f'{{"__CURSOR": "s=1", "__REALTIME_TIMESTAMP": "1000000", "F": {raw}}}'.encode()

    (entry,) = decode_journal_json(line).entries

    assert entry.fields["F"] == text
    assert entry.realtime == datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc)


@given(st.binary(max_size=400))
def test_decode_never_raises_and_accounts_for_every_line(data: bytes) -> None:
    decoded = decode_journal_json(data)

    assert len(decoded.entries) + decoded.garbage <= data.count(b"\n") + 1


JOURNAL_LINES = st.one_of(
    st.builds(lambda n, m: ("entry", json.dumps({"__CURSOR": f"s={n}", "__REALTIME_TIMESTAMP": str(n), "MESSAGE": m}).encode()),
              st.integers(0, 2**53), st.text(max_size=40)),
    st.sampled_from([("skip", b""), ("skip", b"   "), ("skip", b"-- No entries --"), ("skip", b"-- Boot 1234 --")]),
    st.sampled_from([("garbage", b"{"), ("garbage", b"[1, 2]"), ("garbage", b"not json"), ("garbage", b'"a string"'),
                     ("garbage", b"\xff\xfe{}x")]),
)


@given(st.lists(JOURNAL_LINES, max_size=30))
def test_decode_counts_every_entry_and_every_garbage_line_exactly(lines: list[tuple[str, bytes]]) -> None:
    """Nothing dropped without a count: each entry decoded, each garbage line counted."""
    decoded = decode_journal_json(b"\n".join(line for _, line in lines))

    assert len(decoded.entries) == sum(1 for kind, _ in lines if kind == "entry")
    assert decoded.garbage == sum(1 for kind, _ in lines if kind == "garbage")
    assert [e.cursor for e in decoded.entries] == [json.loads(line)["__CURSOR"] for kind, line in lines if kind == "entry"]


MATCHES = [
    ({}, []),
    ({"units": ("ssh",)}, ["_SYSTEMD_UNIT=ssh.service"]),
    ({"units": ("ssh", "ssh.service", "session-3.scope")}, ["_SYSTEMD_UNIT=ssh.service", "_SYSTEMD_UNIT=session-3.scope"]),
    ({"identifiers": ("sshd", "sudo")}, ["SYSLOG_IDENTIFIER=sshd", "SYSLOG_IDENTIFIER=sudo"]),
    ({"units": ("cron",), "identifiers": ("sudo",)}, ["_SYSTEMD_UNIT=cron.service", "+", "SYSLOG_IDENTIFIER=sudo"]),
]


@pytest.mark.parametrize(("kwargs", "argv"), MATCHES)
def test_match_arguments(kwargs: dict[str, tuple[str, ...]], argv: list[str]) -> None:
    assert journal_matches(JournalSettings(**kwargs)) == argv  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "bounds"),
    [("err", (0, 3)), ("3", (0, 3)), ("warning..err", (3, 4)), ("0..7", (0, 7)), ("Emerg", (0, 0)), ("warn", (0, 4))],
)
def test_priority_range(text: str, bounds: tuple[int, int]) -> None:
    assert priority_range(text) == bounds


@pytest.mark.parametrize(
    "kwargs",
    [
        {"priority": "loud"},
        {"priority": "8"},
        {"block_entries": 0},
        {"start": "middle"},
        {"directory": "/var/log/journal", "files": ("/x.journal",)},
        {"units": ("A=B",)},
        {"identifiers": ("",)},
        {"reader": "python"},
    ],
)
def test_settings_reject_what_journalctl_would_misread(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        JournalSettings(**kwargs)  # type: ignore[arg-type]
