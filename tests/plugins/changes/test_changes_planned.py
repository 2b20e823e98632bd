"""Planned or not: every change against the real maintenance calendar (``normagent.maintenance``,
config windows and an iCalendar file parsed by icalendar), on a FakeClock.

Real files changed, chmod'ed and deleted in a temporary tree inside and outside configured
windows; the recorded audit log and dnf.rpm.log against an iCalendar file holding a maintenance
window and planned changes (``CATEGORIES:CHANGE``) with subjects; the label the default rule
selects; the plans recorded for the report and the report built from the ledger."""

from __future__ import annotations

import io
import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from normagent import Event, FileSource, Period, PlannedWindow, Rollup
from normagent.agent import sections
from normagent.config import load_config
from normagent.ledger import Ledger
from normagent.loader import build_plugins
from normagent.maintenance import Calendar, MaintenanceSettings, OneOffWindow, PlannedChange
from normagent.plugins.changes.collectors import AUDIT, FILES, PACKAGES, PLANS, PLANS_LOOKBACK
from normagent.plugins.changes.planned import Change, Planner, is_planned, plan_id
from normagent.plugins.changes.report import build
from normagent.plugins.changes.rules import UNPLANNED_CONFIG_CHANGE
from normagent.parsecmd import run_parse
from normagent.plugins.changes.settings import AuditSettings, FileWatchSettings, PackageChangeSettings
from normagent.plugins.changes.vocab import BY_PLAN, CHANGE_EVENT, CONFIG_CHANGES, PACKAGE_CHANGES, PLAN_EVENT
from normagent.testing import FakeClock, observations, run_collector_once

UTC = timezone.utc
FIXTURES = Path(__file__).parents[2] / "fixtures"
SETTINGS = FileWatchSettings(paths=("/etc/app.conf", "/etc/hosts", "/etc/app.d/*"))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    (etc / "app.d").mkdir(parents=True)
    (etc / "app.conf").write_text("timeout = 5\n")
    (etc / "hosts").write_text("127.0.0.1 localhost\n")
    (etc / "app.d" / "one.conf").write_text("one\n")
    return tmp_path


def ctime(path: Path) -> datetime:
    """A file's ctime as the collector reads it."""
    return datetime.fromtimestamp(os.stat(path).st_ctime_ns / 1e9, UTC)


def write_after(path: Path, moment: datetime, text: str) -> datetime:
    """Write ``path`` until its ctime is later than ``moment``: file times tick coarsely, two writes
    in a row may share one. Polled with a deadline, never slept."""
    deadline = time.monotonic() + 10
    while True:
        path.write_text(text)
        at = ctime(path)
        if at > moment:
            return at
        if time.monotonic() > deadline:
            pytest.fail(f"the ctime of {path} did not move past {moment} in 10 s")


def files_run(ledger: Ledger, root: Path, calendar: Any, now: datetime) -> list[Any]:
    return run_collector_once(FILES, ledger, settings=SETTINGS, root=root, clock=FakeClock(now), maintenance=calendar)


def labels(ledger: Ledger, metric: str = CONFIG_CHANGES) -> dict[tuple[str, ...], float]:
    """Non-zero series of ``metric`` as (label values in name order) → value."""
    return {tuple(v for _, v in sorted(k)): value for k, value in ledger.snapshot().values(metric).items() if value}


def change_events(batches: list[Any]) -> dict[str, tuple[Any, Any]]:
    return {
        o.attrs["subject"]: (o.attrs["planned"], o.attrs.get("planned_by"))
        for o in observations(batches)
        if isinstance(o, Event) and o.kind == CHANGE_EVENT
    }


def rule_value(ledger: Ledger) -> dict[str, float]:
    """What ``changes.unplanned_config_change`` watches: the series its label matchers select,
    per ``group_by`` label."""
    out: dict[str, float] = {}
    for key, value in ledger.snapshot().values(UNPLANNED_CONFIG_CHANGE.watch).items():
        found = dict(key)
        if all(found.get(k) == v for k, v in UNPLANNED_CONFIG_CHANGE.labels.items()) and value:
            group = found[UNPLANNED_CONFIG_CHANGE.group_by[0]]
            out[group] = out.get(group, 0) + value
    return out


# --------------------------------------------------------------------------------------------
# watched files


def test_a_file_changed_inside_a_window_is_planned_and_one_changed_after_it_is_not(tree: Path, ledger: Ledger) -> None:
    files_run(ledger, tree, Calendar(MaintenanceSettings()), ctime(tree / "etc/hosts") + timedelta(minutes=1))
    (tree / "etc/app.conf").write_text("timeout = 10\n")
    inside = ctime(tree / "etc/app.conf")
    closes = inside + timedelta(milliseconds=1)
    outside = write_after(tree / "etc/hosts", closes + timedelta(milliseconds=1), "127.0.0.1 localhost epj\n")
    window = OneOffWindow(inside - timedelta(hours=1), closes, "Oppdatering av app", "driftsleverandør")
    calendar = Calendar(MaintenanceSettings(windows=(window,)))
    batches = files_run(ledger, tree, calendar, outside + timedelta(minutes=10))
    assert labels(ledger) == {("content", "true", "file"): 1, ("content", "false", "file"): 1}
    assert change_events(batches) == {"/etc/app.conf": (True, "maintenance"), "/etc/hosts": (False, None)}
    # The default rule watches exactly the change outside the window.
    assert rule_value(ledger) == {"file": 1}


def test_a_file_deleted_inside_a_window_is_planned_though_the_run_after_it_finds_it_gone(tree: Path, ledger: Ledger) -> None:
    """A deleted file has no ctime left: its directory's ctime says when it went. Taking the time
    of the run instead made a deletion at the end of a window an unplanned change."""
    files_run(ledger, tree, Calendar(MaintenanceSettings()), ctime(tree / "etc/hosts") + timedelta(minutes=1))
    (tree / "etc/hosts").unlink()
    gone = ctime(tree / "etc")
    window = OneOffWindow(gone - timedelta(hours=1), gone + timedelta(milliseconds=1), "Opprydding", "driftsleverandør")
    batches = files_run(ledger, tree, Calendar(MaintenanceSettings(windows=(window,))), gone + timedelta(minutes=5))
    assert labels(ledger) == {("deleted", "true", "file"): 1}
    (event,) = [o for o in observations(batches) if isinstance(o, Event)]
    assert event.at == gone


def test_a_planned_change_plans_only_the_files_it_names(tree: Path, ledger: Ledger) -> None:
    files_run(ledger, tree, Calendar(MaintenanceSettings()), ctime(tree / "etc/hosts") + timedelta(minutes=1))
    (tree / "etc/app.d/one.conf").chmod(0o600)
    (tree / "etc/hosts").chmod(0o600)
    around = ctime(tree / "etc/hosts")
    change = PlannedChange(
        "Herding av app", "ingen nedetid", around - timedelta(hours=1), around + timedelta(hours=1), "driftsleverandør",
        subjects=("/etc/app.d/*",),
    )
    batches = files_run(ledger, tree, Calendar(MaintenanceSettings(changes=(change,))), around + timedelta(minutes=2))
    assert labels(ledger) == {("mode", "true", "file"): 1, ("mode", "false", "file"): 1}
    assert change_events(batches) == {"/etc/app.d/one.conf": (True, "change"), "/etc/hosts": (False, None)}
    (plan,) = [o for o in observations(batches) if isinstance(o, Rollup) and o.name == BY_PLAN]
    (window,) = Calendar(MaintenanceSettings(changes=(change,))).changes_between(around, around + timedelta(seconds=1))
    assert (plan.key, plan.value) == (plan_id(window), 1)


# --------------------------------------------------------------------------------------------
# the iCalendar file: a maintenance window and planned changes with subjects

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//normagent tests//changes//NO
BEGIN:VEVENT
UID:rules@clinic.example
DTSTART:20161207T020000Z
DTEND:20161207T030000Z
SUMMARY:Revisjonsregler lastes inn
END:VEVENT
BEGIN:VEVENT
UID:pam@clinic.example
DTSTART:20170421T040000Z
DTEND:20170421T050000Z
SUMMARY:PAM-oppsett
DESCRIPTION:Ny innlogging mot AD\\, ingen nedetid
CATEGORIES:CHANGE
X-NORMAGENT-ROLE:driftsleverandør
X-NORMAGENT-SUBJECTS:auditd:pam
END:VEVENT
BEGIN:VEVENT
UID:dnf@clinic.example
DTSTART:20261206T130000Z
DTEND:20261206T133000Z
SUMMARY:Oppgradering av OpenSSL
DESCRIPTION:TLS-biblioteket byttes\\, tjenester startes på nytt
CATEGORIES:CHANGE
X-NORMAGENT-ROLE:systemleverandør
X-NORMAGENT-SUBJECTS:package:openssl-*,package:tinyrpm
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture
def calendar(tmp_path: Path) -> Calendar:
    path = tmp_path / "maintenance.ics"
    path.write_text(ICS.replace("\n", "\r\n"), encoding="utf-8")
    return Calendar(MaintenanceSettings(calendar=path))


def test_audit_changes_against_a_window_and_a_planned_change_of_the_calendar_file(
    tmp_path: Path, ledger: Ledger, calendar: Calendar
) -> None:
    """go-libaudit's audit-rhel7.log: a rule added at 02:20 on 7 Dec 2016 (inside the maintenance
    window), auditd.conf re-read on 23 Mar 2017 (no plan), the pam rule added on 21 Apr 2017
    04:37 (inside the planned change that names auditd:pam)."""
    (tmp_path / "var/log/audit").mkdir(parents=True)
    (tmp_path / "var/log/audit/audit.log").write_bytes((FIXTURES / "changes/audit/go-libaudit_audit-rhel7.log").read_bytes() + b"\n")
    settings = AuditSettings(files=FileSource(paths=("/var/log/audit/audit.log",), start_at="beginning"))
    batches = run_collector_once(AUDIT, ledger, settings=settings, root=tmp_path, maintenance=calendar)
    assert change_events(batches) == {
        "add_rule": (True, "maintenance"),
        "auditd.conf": (False, None),
        "add_rule pam": (True, "change"),
    }
    assert labels(ledger) == {("audit_config", "true", "auditd"): 2, ("audit_config", "false", "auditd"): 1}
    assert rule_value(ledger) == {"auditd": 1}


def test_package_changes_inside_a_planned_change_that_names_them(tmp_path: Path, ledger: Ledger, calendar: Calendar) -> None:
    """The recorded dnf.rpm.log of 6 Dec 2026 13:02–13:03 UTC: openssl-libs and tinyrpm are the
    planned change's subjects (7 changes), brokenup and brokenrpm are not (3)."""
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/dnf.rpm.log").write_bytes((FIXTURES / "updates/dnf/dnf.rpm.log").read_bytes())
    settings = PackageChangeSettings(files=FileSource(paths=("/var/log/dnf.rpm.log",), start_at="beginning"))
    batches = run_collector_once(PACKAGES, ledger, settings=settings, root=tmp_path, maintenance=calendar)
    assert labels(ledger, PACKAGE_CHANGES) == {
        ("install", "true"): 2, ("install", "false"): 2, ("upgrade", "true"): 4, ("upgrade", "false"): 1, ("remove", "true"): 1,
    }
    by_plan = [o for o in observations(batches) if isinstance(o, Rollup) and o.name == BY_PLAN]
    assert sum(r.value for r in by_plan) == 7


def test_the_plans_are_recorded_once_as_they_begin_and_the_report_sets_them_beside_what_was_seen(
    tmp_path: Path, ledger: Ledger, calendar: Calendar
) -> None:
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/dnf.rpm.log").write_bytes((FIXTURES / "updates/dnf/dnf.rpm.log").read_bytes())
    settings = PackageChangeSettings(files=FileSource(paths=("/var/log/dnf.rpm.log",), start_at="beginning"))
    run_collector_once(PACKAGES, ledger, settings=settings, root=tmp_path, maintenance=calendar)
    clock = FakeClock(datetime(2026, 12, 6, 12, 55, tzinfo=UTC))
    assert observations(run_collector_once(PLANS, ledger, clock=clock, maintenance=calendar)) == []  # not begun yet
    for _ in range(3):  # it begins, goes on, has ended: recorded once
        clock.advance(15 * 60)
        run_collector_once(PLANS, ledger, clock=clock, maintenance=calendar)
    december = Period(datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    (plan,) = ledger.events(PLAN_EVENT, december)
    assert plan.at == datetime(2026, 12, 6, 13, tzinfo=UTC)
    assert (plan.attrs["what"], plan.attrs["effect"], plan.attrs["role"], plan.attrs["subjects"]) == (
        "Oppgradering av OpenSSL", "TLS-biblioteket byttes, tjenester startes på nytt", "systemleverandør",
        "package:openssl-*, package:tinyrpm",
    )
    content = build(ledger, december)
    tables = {t.caption: t for t in content.tables}
    assert tables["Planlagte endringer"].rows == (
        ("2026-12-06 13:00–13:30", "Oppgradering av OpenSSL", "TLS-biblioteket byttes, tjenester startes på nytt",
         "systemleverandør", "package:openssl-*, package:tinyrpm", 7),
    )
    assert tables["Pakker installert eller fjernet utenfor plan"].rows == (("brokenrpm", 1, 1), ("brokenup", 1, 1))
    assert content.paragraphs[1].startswith("Vedlikeholdskalenderen hadde 1 planlagte endringer i perioden")


def test_normagent_parse_labels_changes_by_the_calendar_of_its_config(tmp_path: Path) -> None:
    """What the daemon would count, ``normagent parse --config`` shows: the same planned labels."""
    config_file = tmp_path / "normagent.toml"
    config_file.write_text(
        '[[maintenance.changes]]\nwhat = "OpenSSL"\nstart = 2026-12-06T13:00:00Z\nend = 2026-12-06T13:30:00Z\n'
        'subjects = ["package:openssl-*"]\n'
    )
    plugins = build_plugins(entry_points_enabled=False)
    config, _ = load_config(config_file, plugins_for=lambda _: plugins, sections=sections())
    found = {}
    for with_config in (config, None):
        out = io.StringIO()
        run_parse([str(FIXTURES / "updates/dnf/dnf.rpm.log")], config=with_config, plugins=plugins, fmt="json", out=out,
                  collectors=["changes.packages"])
        (item,) = json.loads(out.getvalue())["inputs"]
        (result,) = item["collectors"]
        found[with_config is not None] = {(c["labels"]["action"], c["labels"]["planned"]): c["value"] for c in result["counts"]}
    assert found[True] == {("install", "true"): 1, ("install", "false"): 3, ("upgrade", "true"): 2, ("upgrade", "false"): 3, ("remove", "false"): 1}
    assert all(planned == "false" for _, planned in found[False])


def test_a_plan_keeps_at_most_a_bounded_text(ledger: Ledger) -> None:
    start = datetime(2026, 12, 6, 13, tzinfo=UTC)
    long = PlannedChange("x" * 5000, "y" * 100_000, start, start + timedelta(hours=1), "driftsleverandør")
    clock = FakeClock(start + timedelta(minutes=5))
    run_collector_once(PLANS, ledger, clock=clock, maintenance=Calendar(MaintenanceSettings(changes=(long,))))
    (plan,) = ledger.events(PLAN_EVENT, Period(start, clock.now()))
    assert (len(str(plan.attrs["what"])), len(str(plan.attrs["effect"]))) == (500, 500)


def test_the_first_run_looks_back_far_enough_for_last_months_report(calendar: Calendar, ledger: Ledger) -> None:
    clock = FakeClock(datetime(2026, 12, 6, 13, 0, tzinfo=UTC) + PLANS_LOOKBACK - timedelta(minutes=1))
    run_collector_once(PLANS, ledger, clock=clock, maintenance=calendar)
    assert [e.attrs["what"] for e in ledger.events(PLAN_EVENT, Period(datetime(2026, 12, 1, tzinfo=UTC), clock.now()))] == [
        "Oppgradering av OpenSSL"
    ]


# --------------------------------------------------------------------------------------------
# how a plan matches a change


def window(kind: str = "change", subjects: tuple[str, ...] = ()) -> PlannedWindow:
    return PlannedWindow(datetime(2026, 12, 6, 13, tzinfo=UTC), datetime(2026, 12, 6, 14, tzinfo=UTC), "x", "", kind, "", "", subjects)  # type: ignore[arg-type]


class Fixed:
    """A calendar of given windows (the protocol's one method the planner asks)."""

    def __init__(self, *windows: PlannedWindow) -> None:
        self.windows = windows

    def windows_between(self, start: datetime, end: datetime) -> list[PlannedWindow]:
        return [w for w in self.windows if w.end > start and w.start < end]


AT = datetime(2026, 12, 6, 13, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("subjects", "change", "planned"),
    [
        ((), Change(AT, "file", "content", "/etc/anything"), True),  # no subjects: the whole span
        (("/etc/ssh/*",), Change(AT, "file", "content", "/etc/ssh/sshd_config"), True),
        (("/etc/ssh/*",), Change(AT, "file", "content", "/etc/ssh/sshd_config.d/x.conf"), False),  # * stays in one directory
        (("/etc/ssh/**",), Change(AT, "file", "content", "/etc/ssh/sshd_config.d/x.conf"), True),
        (("/etc/ssh/**",), Change(AT, "package", "upgrade", "openssh-server"), False),  # a path plans no package
        (("package:openssh-*",), Change(AT, "package", "upgrade", "openssh-server"), True),
        (("package:openssh-*",), Change(AT, "file", "content", "/etc/openssh-x"), False),
        (("auditd:identity",), Change(AT, "auditd", "watch", "identity,scope"), True),  # one key of several
        (("auditd:identity",), Change(AT, "auditd", "audit_config", "add_rule identity"), True),
        (("auditd:identity",), Change(AT, "auditd", "watch", "scope"), False),
        (("windows:password policy",), Change(AT, "windows", "domain_policy", "Password Policy"), True),  # any case
        (("/etc/hosts",), Change(AT, "file", "content", "/etc/hosts"), True),
        (("/etc/hosts",), Change(datetime(2026, 12, 6, 14, tzinfo=UTC), "file", "content", "/etc/hosts"), False),  # end is outside
    ],
)
def test_what_a_planned_change_covers(subjects: tuple[str, ...], change: Change, planned: bool) -> None:
    assert is_planned(change, Fixed(window(subjects=subjects))) is planned  # type: ignore[arg-type]


def test_a_maintenance_window_plans_every_change_and_a_planned_change_is_named_first() -> None:
    maintenance, change = window("maintenance"), window(subjects=("/etc/hosts",))
    planner = Planner(Fixed(maintenance, change))  # type: ignore[arg-type]
    assert planner.window(Change(AT, "package", "install", "x")) == maintenance
    assert planner.window(Change(AT, "file", "content", "/etc/hosts")) == change
    assert Planner().label(Change(AT, "file", "content", "/etc/hosts")) == "false"  # no calendar: nothing planned


def test_the_planner_asks_the_calendar_once_a_day() -> None:
    """A catch-up over a large dpkg.log decides a million changes: one calendar look-up per UTC
    day they fall on, not one per change."""
    calendar = Fixed(window(subjects=("package:openssh-*",)))
    asked: list[datetime] = []
    real = calendar.windows_between
    calendar.windows_between = lambda start, end: asked.append(start) or real(start, end)  # type: ignore[method-assign]
    planner = Planner(calendar)  # type: ignore[arg-type]
    decided = [planner.label(Change(AT + timedelta(seconds=n), "package", "upgrade", f"openssh-{n % 3}")) for n in range(1000)]
    assert decided == ["true"] * 1000  # 13:30 + 1000 s, inside the window to 14:00
    assert asked == [datetime(2026, 12, 6, tzinfo=UTC)]
