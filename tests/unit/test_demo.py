"""The demo's parts that need no month's replay: the clinic is decided the same way every time, its
configuration is one the agent's loader accepts, the month defaults to last month, and the progress
shows as a bar on a terminal and as plain lines elsewhere. (The whole demo: tests/integration/test_demo.py.)"""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from normagent.agent import job_for, read_config
from normagent.demo import parse_month
from normagent.demo.clinic import build_clinic
from normagent.demo.config import write_config
from normagent.demo.replay import Progress
from normagent.errors import Unavailable, UsageError

U = timezone.utc


def test_the_clinic_is_the_same_for_the_same_month_and_seed(tmp_path: Path) -> None:
    a, b = build_clinic(tmp_path / "a", 2026, 11), build_clinic(tmp_path / "b", 2026, 11)
    other = build_clinic(tmp_path / "c", 2026, 11, seed=15)
    assert a.lines == b.lines and a.edi == b.edi and a.journal == b.journal and a.outages == b.outages
    assert a.lines != other.lines
    # Every line and file falls inside the month, in time order.
    for timed in a.lines.values():
        assert [t for t, _ in timed] == sorted(t for t, _ in timed)
        assert all(a.start <= t < a.end for t, _ in timed)
    assert all(a.start <= t < a.end for t, _, _ in a.edi)


def test_a_month_with_a_summer_time_change_has_its_hours(tmp_path: Path) -> None:
    """October in Oslo has 745 hours (the clocks go back): the month is Oslo's, counted in UTC."""
    clinic = build_clinic(tmp_path, 2026, 10)
    assert (clinic.end - clinic.start).total_seconds() == 745 * 3600
    assert clinic.start == datetime(2026, 9, 30, 22, tzinfo=U)


@pytest.mark.parametrize("journal", [True, False])
def test_the_configuration_is_valid_and_runs_what_the_clinic_feeds(tmp_path: Path, journal: bool) -> None:
    clinic = build_clinic(tmp_path / "clinic", 2026, 11)
    if not journal:
        clinic = replace(clinic, journal_remote=None)
    config, plugins = read_config(write_config(tmp_path, clinic, "en"))
    enabled = sorted(name for name, spec in plugins.collectors().items() if job_for(spec, config) is not None)
    assert enabled == sorted([
        "access.logins", "access.windows", "availability.probes", "changes.plans", "edi.messages", "firewall.linux",
        "malware.clamav", "system.host", "updates.apt", *(["access.journal_errors"] if journal else []),
    ])
    assert config.state_dir() == tmp_path / "state"
    assert config.sections["report"].language == "en"
    assert "site.windows_system_errors" in config.rules


def test_the_month_defaults_to_last_month_and_a_bad_one_is_refused() -> None:
    assert parse_month(None, datetime(2026, 12, 6, tzinfo=U)) == (2026, 11)
    assert parse_month(None, datetime(2027, 1, 1, 0, 30, tzinfo=U)) == (2026, 12)  # already January in Oslo
    assert parse_month("2026-02", datetime(2026, 12, 6, tzinfo=U)) == (2026, 2)
    for bad in ("2026-13", "26-11", "2026/11", "x", "2026-1\u00b2", "9999-12", "\uff12\uff10\uff12\uff16-11"):  # "²" is a digit to isdigit
        with pytest.raises(UsageError, match="expected YYYY-MM"):
            parse_month(bad, datetime(2026, 12, 6, tzinfo=U))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    at = datetime(2026, 11, 8, tzinfo=U)
    plain, tty = io.StringIO(), Terminal()
    for stream in (plain, tty):
        progress = Progress(stream)
        progress.start(30)
        for day in range(31):
            progress.day(day, at)
        progress.close()
    assert plain.getvalue().splitlines()[0] == "demo: day 7 of 30 replayed (2026-11-08 00:00 UTC)"
    assert len(plain.getvalue().splitlines()) == 5  # days 7, 14, 21, 28 and 30
    assert "demo: the month" in tty.getvalue() and "\r" in tty.getvalue() and "replayed" not in tty.getvalue()


@pytest.mark.parametrize(("program", "said"), [("/bin/false", "exited 1 writing the demo's journal file"),
                                               ("/nonexistent/journal-remote", "cannot write the demo's journal file")])
def test_a_journal_writer_that_fails_is_a_clear_error(tmp_path: Path, program: str, said: str) -> None:
    """Not a traceback: the demo ends with what failed (seen when the unpacked tool was being replaced)."""
    clinic = replace(build_clinic(tmp_path / "clinic", 2026, 11), journal_remote=program)
    clinic.prepare(tmp_path / "evtx")
    with pytest.raises(Unavailable, match=said):
        clinic.flush_journal(clinic.end)
