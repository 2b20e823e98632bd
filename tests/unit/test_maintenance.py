"""The maintenance calendar: config windows, the iCalendar file (real icalendar + recurring-ical-events),
bad files named by line, and a file that breaks while the agent runs."""

from __future__ import annotations

import os
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from normagent.agent import sections
from normagent.config import load_config
from normagent.errors import ConfigError
from normagent.loader import build_plugins
from normagent.maintenance import (
    Calendar,
    MaintenanceSettings,
    OneOffWindow,
    PlannedChange,
    WeeklyWindow,
    split_by_windows,
    validate_maintenance,
)

OSLO = ZoneInfo("Europe/Oslo")
UTC = timezone.utc


def at(text: str, tz: object = OSLO) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)  # type: ignore[arg-type]


ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//normagent tests//maintenance//NO
BEGIN:VEVENT
UID:epj-weekly@clinic.example
DTSTART;TZID=Europe/Oslo:20261201T220000
DTEND;TZID=Europe/Oslo:20261202T020000
SUMMARY:EPJ-vedlikehold
X-NORMAGENT-ROLE:EPJ-leverandør
RRULE:FREQ=WEEKLY;COUNT=4
EXDATE;TZID=Europe/Oslo:20261208T220000
END:VEVENT
BEGIN:VEVENT
UID:fw-change@clinic.example
DTSTART:20261210T130000Z
DTEND:20261210T133000Z
SUMMARY:Brannmurregler for Helsenett
DESCRIPTION:Kort brudd mot Helsenett\\, under 5 min
CATEGORIES:NETWORK,change
X-NORMAGENT-ROLE:nettleverandør
ORGANIZER:mailto:kari.nordmann@clinic.example
END:VEVENT
BEGIN:VEVENT
UID:cancelled@clinic.example
DTSTART:20261211T130000Z
DTEND:20261211T140000Z
SUMMARY:Avlyst
STATUS:CANCELLED
END:VEVENT
BEGIN:VEVENT
UID:allday@clinic.example
DTSTART;VALUE=DATE:20261227
SUMMARY:Romjul: serverflytting
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture
def ics(tmp_path: Path) -> Path:
    path = tmp_path / "maintenance.ics"
    path.write_text(ICS.replace("\n", "\r\n"), encoding="utf-8")
    return path


def test_recurring_events_are_expanded_with_their_exceptions(ics: Path) -> None:
    calendar = Calendar(MaintenanceSettings(calendar=ics))
    windows = calendar.windows_between(at("2026-12-01T00:00:00"), at("2027-01-01T00:00:00"))
    assert [(w.start, w.end, w.what, w.kind) for w in windows] == [
        (at("2026-12-01T22:00:00"), at("2026-12-02T02:00:00"), "EPJ-vedlikehold", "maintenance"),
        (at("2026-12-10T13:00:00", UTC), at("2026-12-10T13:30:00", UTC), "Brannmurregler for Helsenett", "change"),
        (at("2026-12-15T22:00:00"), at("2026-12-16T02:00:00"), "EPJ-vedlikehold", "maintenance"),  # 8th: EXDATE
        (at("2026-12-22T22:00:00"), at("2026-12-23T02:00:00"), "EPJ-vedlikehold", "maintenance"),
        (at("2026-12-27T00:00:00"), at("2026-12-28T00:00:00"), "Romjul: serverflytting", "maintenance"),  # whole day
    ]  # the cancelled event is not a window


def test_a_vevent_in_the_change_category_is_a_planned_change_with_its_effect_and_role(ics: Path) -> None:
    calendar = Calendar(MaintenanceSettings(calendar=ics))
    (change,) = calendar.changes_between(at("2026-12-01T00:00:00"), at("2027-01-01T00:00:00"))
    assert (change.what, change.effect, change.role) == ("Brannmurregler for Helsenett", "Kort brudd mot Helsenett, under 5 min", "nettleverandør")
    assert "kari" not in repr(change)  # ORGANIZER names a person: never read


def test_a_planned_change_names_what_it_covers_in_the_file_and_in_config(ics: Path) -> None:
    """X-NORMAGENT-SUBJECTS, comma-separated or repeated, with RFC 5545 escapes undone; the same
    ``subjects`` in [[maintenance.changes]]. A role escaped as text is read unescaped too."""
    ics.write_text(
        ICS.replace(
            "X-NORMAGENT-ROLE:nettleverandør\n",
            "X-NORMAGENT-ROLE:nettleverandør\\, Helsenett\n"
            "X-NORMAGENT-SUBJECTS:/etc/nftables.conf,package:nftables\n"
            "X-NORMAGENT-SUBJECTS:windows:Password Policy\\, domain\n",
        ),
        encoding="utf-8",
    )
    (change,) = Calendar(MaintenanceSettings(calendar=ics)).changes_between(at("2026-12-01T00:00:00"), at("2027-01-01T00:00:00"))
    assert change.subjects == ("/etc/nftables.conf", "package:nftables", "windows:Password Policy, domain")
    assert change.role == "nettleverandør, Helsenett"
    planned = PlannedChange("SSH", "ingen", datetime(2026, 11, 26, 9), datetime(2026, 11, 26, 10), subjects=("/etc/ssh/**", "package:openssh-*"))
    (window,) = Calendar(MaintenanceSettings(changes=(planned,))).windows_between(at("2026-11-26T00:00:00"), at("2026-11-27T00:00:00"))
    assert window.subjects == ("/etc/ssh/**", "package:openssh-*")


def test_planned_at_and_planned_seconds(ics: Path) -> None:
    calendar = Calendar(MaintenanceSettings(calendar=ics))
    assert calendar.planned_at(at("2026-12-01T23:30:00")).what == "EPJ-vedlikehold"  # type: ignore[union-attr]
    assert calendar.planned_at(at("2026-12-08T23:30:00")) is None  # the EXDATE
    assert calendar.planned_at(at("2026-12-02T02:00:00")) is None  # end is exclusive
    # 21:00–03:00 around the 4-hour window of 1 December: 4 h planned.
    assert calendar.planned_seconds(at("2026-12-01T21:00:00"), at("2026-12-02T03:00:00")) == 4 * 3600


def test_config_windows_one_off_weekly_and_changes() -> None:
    settings = MaintenanceSettings(
        time_zone="Europe/Oslo",
        windows=(OneOffWindow(datetime(2026, 11, 24, 12, 0), datetime(2026, 11, 24, 13, 0), "EPJ", "EPJ-leverandør"),),
        weekly=(WeeklyWindow(days=("tue", "thu"), from_=time(22, 0), to=time(2, 0), what="patching", role="driftsleverandør"),),
        changes=(PlannedChange("Ny DNS", "ingen nedetid", datetime(2026, 11, 26, 9, 0), datetime(2026, 11, 26, 9, 30), "nettleverandør"),),
    )
    calendar = Calendar(settings)
    windows = calendar.windows_between(at("2026-11-23T00:00:00"), at("2026-11-27T00:00:00"))
    assert [(w.start, w.end, w.kind, w.source) for w in windows] == [
        (at("2026-11-24T12:00:00"), at("2026-11-24T13:00:00"), "maintenance", "config:windows[0]"),
        (at("2026-11-24T22:00:00"), at("2026-11-25T02:00:00"), "maintenance", "config:weekly[0]"),  # over midnight
        (at("2026-11-26T09:00:00"), at("2026-11-26T09:30:00"), "change", "config:changes[0]"),
        (at("2026-11-26T22:00:00"), at("2026-11-27T02:00:00"), "maintenance", "config:weekly[0]"),
    ]
    # An orderly reboot at 14:00 on a weekday is outside every window.
    assert calendar.planned_at(at("2026-11-25T14:00:00")) is None


def test_weekly_window_keeps_local_time_across_the_dst_change() -> None:
    calendar = Calendar(MaintenanceSettings(weekly=(WeeklyWindow(days=("sun",), from_=time(1, 0), to=time(4, 0)),)))
    (window,) = calendar.windows_between(at("2026-10-25T00:00:00"), at("2026-10-26T00:00:00"))
    # 25 October 2026: clocks go back at 03:00 CEST, so 01:00–04:00 local lasts four hours.
    assert (window.end - window.start) == timedelta(hours=4)


def test_split_by_windows_cuts_an_outage_at_window_edges() -> None:
    calendar = Calendar(MaintenanceSettings(windows=(OneOffWindow(at("2026-11-24T12:00:00"), at("2026-11-24T13:00:00")),)))
    start, end = at("2026-11-24T11:30:00"), at("2026-11-24T13:15:00")
    pieces = split_by_windows(start, end, calendar.windows_between(start, end))
    assert [(a.astimezone(OSLO).time(), b.astimezone(OSLO).time(), planned) for a, b, planned in pieces] == [
        (time(11, 30), time(12, 0), False), (time(12, 0), time(13, 0), True), (time(13, 0), time(13, 15), False),
    ]


BAD_FILES = [
    # (what is wrong, the file, the problem)
    ("bad date", ICS.replace("DTSTART;TZID=Europe/Oslo:20261201T220000", "DTSTART;TZID=Europe/Oslo:2026120xT220000"),
     ":6: DTSTART: Wrong datetime format"),
    ("no colon", ICS.replace("SUMMARY:EPJ-vedlikehold", "SUMMARY EPJ-vedlikehold"), ":8: Content line could not be parsed"),
    ("missing END", ICS.replace("END:VEVENT\nBEGIN:VEVENT\nUID:fw", "BEGIN:VEVENT\nUID:fw", 1), ":4: BEGIN:VEVENT without its END"),
    ("stray END", ICS.replace("BEGIN:VEVENT\nUID:cancelled", "UID:cancelled"), ":28: END without its BEGIN"),
    ("bad RRULE", ICS.replace("FREQ=WEEKLY;COUNT=4", "FREQ=SOMETIMES"), ":10: RRULE: Expected frequency"),
    ("too frequent", ICS.replace("FREQ=WEEKLY;COUNT=4", "FREQ=MINUTELY"), ":10: RRULE FREQ=MINUTELY: maintenance windows may recur at most hourly"),
    # hourly by its FREQ, every half hour by its BYMINUTE (by the second, the agent expanded a
    # month of them whole: a minute and 1.6 GB for check-config)
    ("hourly, twice an hour", ICS.replace("FREQ=WEEKLY;COUNT=4", "FREQ=HOURLY;BYMINUTE=0,30"),
     ":10: RRULE recurs more than 25 times a day: maintenance windows may recur at most hourly"),
    ("too many windows", ICS.replace("END:VCALENDAR", "".join(
        f"BEGIN:VEVENT\nUID:h{i}@x\nDTSTART:20261201T0000{i:02d}Z\nDTEND:20261201T0001{i:02d}Z\nRRULE:FREQ=HOURLY\nEND:VEVENT\n"
        for i in range(27)) + "END:VCALENDAR"),  # 27 events, each 768 windows in 32 days
     ":193: with this event the calendar has more than 20,000 windows in 32 days; the agent expands at most that many"),
    ("no DTSTART", ICS.replace("DTSTART:20261210T130000Z\n", ""), ":13: VEVENT without DTSTART"),
    ("unknown zone", ICS.replace("TZID=Europe/Oslo:20261201T220000", "TZID=Mars/Olympus:20261201T220000"),
     ":6: DTSTART: unknown time zone TZID=Mars/Olympus"),
    ("subjects on a window", ICS.replace("X-NORMAGENT-ROLE:EPJ-leverandør\n", "X-NORMAGENT-ROLE:EPJ-leverandør\nX-NORMAGENT-SUBJECTS:/etc/epj/*\n"),
     ":10: X-NORMAGENT-SUBJECTS on an event that is no planned change (its CATEGORIES lack CHANGE)"),
    ("bad subject", ICS.replace("X-NORMAGENT-ROLE:nettleverandør\n", "X-NORMAGENT-ROLE:nettleverandør\nX-NORMAGENT-SUBJECTS:/etc/x,pkg:nft\n"),
     ':21: X-NORMAGENT-SUBJECTS: subject "pkg:nft" is neither a path glob'),
    ("a person for a role", ICS.replace("X-NORMAGENT-ROLE:nettleverandør", "X-NORMAGENT-ROLE:kari.nordmann@clinic.example"),
     ':20: X-NORMAGENT-ROLE: role "kari.nordmann@clinic.example" looks like an e-mail address'),
    ("not iCalendar", "this is not a calendar\n", ":1: not an iCalendar file"),
    ("empty", "", ":1: not an iCalendar file"),
]


@pytest.mark.parametrize(("text", "problem"), [case[1:] for case in BAD_FILES], ids=[case[0] for case in BAD_FILES])
def test_an_invalid_calendar_file_is_a_problem_naming_its_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "maintenance.ics"
    path.write_text(text.replace("\n", "\r\n"), encoding="utf-8")
    ((key, message),) = validate_maintenance(MaintenanceSettings(calendar=path))
    assert key == "calendar"
    assert message.startswith(f"{path}{problem}"), message


def test_a_folded_line_is_counted_as_the_line_it_starts_on(tmp_path: Path) -> None:
    folded = ICS.replace("SUMMARY:EPJ-vedlikehold\n", "SUMMARY:EPJ-\n vedlikehold\n").replace(
        "DTSTART:20261210T130000Z", "DTSTART:2026121OT130000Z"
    )
    path = tmp_path / "m.ics"
    path.write_text(folded, encoding="utf-8")
    ((_, message),) = validate_maintenance(MaintenanceSettings(calendar=path))
    assert message.startswith(f"{path}:16: DTSTART:"), message  # one line more than unfolded


def test_binary_garbage_and_missing_files_are_clear_problems(tmp_path: Path) -> None:
    garbage = tmp_path / "g.ics"
    garbage.write_bytes(b"BEGIN:VCALENDAR\r\nSUMMARY:\xff\xfe\r\n")
    assert validate_maintenance(MaintenanceSettings(calendar=garbage)) == [("calendar", f"{garbage}:2: not UTF-8 text (RFC 5545 calendars are UTF-8)")]
    missing = tmp_path / "nope.ics"
    assert validate_maintenance(MaintenanceSettings(calendar=missing)) == [("calendar", f"{missing}: file not found")]
    fifo = tmp_path / "fifo.ics"
    os.mkfifo(fifo)  # would block the reader until a writer came
    assert validate_maintenance(MaintenanceSettings(calendar=fifo)) == [("calendar", f"{fifo}: cannot read: is a FIFO (named pipe), not a regular file")]


def test_check_config_names_the_calendar_line(tmp_path: Path) -> None:
    ics = tmp_path / "maintenance.ics"
    ics.write_text(ICS.replace("FREQ=WEEKLY;COUNT=4", "FREQ=SOMETIMES"), encoding="utf-8")
    config = tmp_path / "normagent.toml"
    config.write_text('[agent]\nlog_level = "info"\n\n[maintenance]\ncalendar = "maintenance.ics"\n')
    with pytest.raises(ConfigError) as err:
        load_config(config, plugins_for=lambda _: build_plugins(entry_points_enabled=False), sections=sections())
    assert [str(p) for p in err.value.problems] == [f"{config}:5: maintenance.calendar: {ics}:10: RRULE: Expected frequency, got: SOMETIMES"]


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('[[maintenance.windows]]\nstart = "2026-12-01T22:00:00"', "maintenance.windows[0]: a maintenance window needs both start and end"),
        ('[[maintenance.windows]]\nstart = "2026-12-01T22:00:00"\nend = "2026-12-01T21:00:00"', "must end after it starts"),
        ('[[maintenance.windows]]\nstart = "2026-12-01T22:00:00"\nend = "2026-12-01T23:00:00"\nrole = "kari@clinic.example"',
         "looks like an e-mail address"),
        ('[[maintenance.weekly]]\ndays = ["tue"]\nfrom = "22:00"', "needs days, from and to"),
        ('[[maintenance.weekly]]\ndays = ["tuesday"]\nfrom = "22:00"\nto = "23:00"', 'expected one of "mon"'),
        ('[[maintenance.changes]]\nstart = "2026-12-01T22:00:00"\nend = "2026-12-01T23:00:00"', "a planned change needs what"),
        ('[maintenance]\ntime_zone = "Europe/Olso"', "unknown time zone"),
        ('[[maintenance.changes]]\nwhat = "SSH"\nstart = "2026-12-01T22:00:00"\nend = "2026-12-01T23:00:00"\nsubjects = ["openssh-*"]',
         'subject "openssh-*" is neither a path glob ("/etc/ssh/**") nor "<source>:<glob>" with source package, auditd, windows'),
        ('[[maintenance.changes]]\nwhat = "SSH"\nstart = "2026-12-01T22:00:00"\nend = "2026-12-01T23:00:00"\nsubjects = ["package:"]',
         'subject "package:" names no package after the colon'),
    ],
)
def test_bad_maintenance_tables_are_problems(tmp_path: Path, table: str, problem: str) -> None:
    config = tmp_path / "normagent.toml"
    config.write_text(table + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(config, plugins_for=lambda _: build_plugins(entry_points_enabled=False), sections=sections())
    assert problem in str(err.value)


def test_a_file_that_breaks_while_running_keeps_the_last_good_version(ics: Path) -> None:
    ticks = iter(range(0, 10_000, 60))
    calendar = Calendar(MaintenanceSettings(calendar=ics), recheck=10, monotonic=lambda: float(next(ticks)))
    december = (at("2026-12-01T00:00:00"), at("2027-01-01T00:00:00"))
    assert len(calendar.windows_between(*december)) == 5
    ics.write_text(ICS.replace("FREQ=WEEKLY;COUNT=4", "FREQ=SOMETIMES"), encoding="utf-8")
    os.utime(ics, ns=(1, 1))  # a different version even on a coarse clock
    with capture_logs() as logs:
        assert len(calendar.windows_between(*december)) == 5
        assert len(calendar.windows_between(*december)) == 5
    assert [entry["event"] for entry in logs] == ["maintenance_calendar_invalid"]  # once per version
    ics.write_text(ICS.replace("COUNT=4", "COUNT=1"), encoding="utf-8")
    with capture_logs() as logs:
        assert len(calendar.windows_between(*december)) == 3
    assert logs[-1]["event"] == "maintenance_calendar_loaded"


def test_no_calendar_configured_imports_no_icalendar() -> None:
    """The idle agent stays small: icalendar is imported only when a file is configured."""
    import subprocess
    import sys

    code = (
        "import sys; from normagent.maintenance import Calendar, MaintenanceSettings; "
        "Calendar(MaintenanceSettings()).planned_at(__import__('datetime').datetime.now(__import__('datetime').timezone.utc)); "
        "print('icalendar' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
