"""The command line: exit codes and output of check-config, plugins, collect --once, --version."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normagent import __version__
from normagent.cli import main
from tests.support.tools import EVERY_BUILTIN

BAD = Path(__file__).parents[1] / "fixtures" / "config" / "bad"


def sample_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "normagent.toml"
    path.write_text(
        f"""
[agent]
state_dir = "{tmp_path / 'state'}"

[plugins]
extra = ["tests.support.sample_plugin"]
disable = {EVERY_BUILTIN}
entry_points = false
{extra}
"""
    )
    return path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"normagent {__version__}"


def test_the_version_written_in_the_package_is_the_one_in_pyproject() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert __version__ == pyproject["project"]["version"]


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sample_config(tmp_path)
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: OK (1 collectors, ")


def test_check_config_lists_every_problem_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sample_config(tmp_path, '[collectors."sample.events"]\ninterval = "15x"\nmax_lines = "ten"\n\n[agent2]\n')

    assert main(["check-config", str(path)]) == 2

    err = capsys.readouterr().err.splitlines()
    assert err[0] == "normagent: configuration has 3 problems:"
    assert err[1:] == [
        f'  {path}:10: collectors."sample.events".interval: expected a duration like "30s", "5m" or "1h30m", got "15x"',
        f'  {path}:11: collectors."sample.events".max_lines: expected an integer, got "ten"',
        f'  {path}:13: agent2: unknown key; did you mean "agent"?',
    ]


def test_check_config_warns_about_settings_a_collector_advises_against(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Valid but probably not meant (e.g. prefer = "both" over this host's own sources): exit 0,
    with a warning at the file and line of the key."""
    path = sample_config(tmp_path, '[collectors."sample.events"]\nratio = 0.7\nquiet = true\n')

    assert main(["check-config", str(path)]) == 0

    assert capsys.readouterr().out.splitlines() == [
            f"{path}: OK (1 collectors, 1 rules, 0 forwarders)",
        f'  warning: {path}:11: collectors."sample.events".quiet: quiet = true: nothing this collector sees is logged',
    ]


def test_collect_once_and_run_tell_the_same_advice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sample_config(tmp_path, '[collectors."sample.events"]\nquiet = true\n')

    main(["collect", "--once", "--format", "json", "--config", str(path)])

    [report] = json.loads(capsys.readouterr().out)["collectors"]
    assert report["advice"] == [{"key": "quiet", "message": "quiet = true: nothing this collector sees is logged"}]


def test_check_config_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: file not found" in capsys.readouterr().err


def test_plugins_lists_plugins_and_their_collectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--config", str(sample_config(tmp_path)), "--format", "json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["plugins"]}
    sample = rows["tests.support.sample_plugin"]
    assert sample["loaded"] and [c["name"] for c in sample["collectors"]] == ["sample.events"]
    assert sample["rules"] == ["sample.many"] and sample["forwarders"] == ["sample"]
    assert rows["edi"]["loaded"] is False


def test_plugins_shows_a_broken_plugin_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sample_config(tmp_path)
    path.write_text(path.read_text().replace('extra = ["tests.support.sample_plugin"]', 'extra = ["tests.support.sample_plugin", "tests.support.broken_at_import"]'))

    assert main(["plugins", "--config", str(path)]) == 1

    out = capsys.readouterr().out
    assert "tests.support.broken_at_import  (config) BROKEN" in out
    assert "problem: failed to load: RuntimeError: this plugin needs a library that is not installed" in out
    assert "collector sample.events" in out


def test_plugins_and_check_config_print_a_plugin_name_as_text_not_as_terminal_control(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin's name ([plugins] extra, or an installed distribution's entry point) and the load
    error that quotes it went to the terminal raw: an escape sequence cleared the screen, a
    right-to-left override turned the name round. check-config's problems were printable already."""
    path = sample_config(tmp_path)
    path.write_text(path.read_text().replace('extra = ["tests.support.sample_plugin"]', 'extra = ["tests.support.sample_plugin", "no\\u001b[2Jsuch\\u202eplugin"]'))

    assert main(["plugins", "--config", str(path)]) == 1
    assert main(["check-config", str(path)]) == 0

    out = capsys.readouterr().out
    assert "no\\u001b[2Jsuch\\u202eplugin  (config) BROKEN" in out and "warning: plugin no\\u001b[2Jsuch\\u202eplugin: failed to load" in out
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", out)


def test_an_error_that_quotes_a_path_prints_it_as_text_not_as_terminal_control(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``normagent parse`` of a name with an escape sequence or a newline in it (a file an attacker
    named, or what Prometheus or an SMTP server answered, in other commands): the error went to
    the terminal raw, and a newline in it printed a line of its own."""
    name = str(tmp_path / "x\x1b]0;PWNED\x07\nnormagent: all is well")

    assert main(["parse", name]) == 66

    err = capsys.readouterr().err
    assert err == f"normagent: {tmp_path}/x\\u001b]0;PWNED\\u0007\\nnormagent: all is well: no such file\n"


@pytest.mark.parametrize("command", [["plugins"], ["check-config"], ["parse", "-"]])
def test_standard_output_on_a_full_disk_or_closed_is_said_not_a_traceback_or_silence(command: list[str]) -> None:
    """``normagent plugins > /mnt/full/x`` ended in an OSError traceback (ENOSPC); with stdout
    closed (``>&-``) ``plugins`` and ``check-config`` printed nothing and exited 0 (print() to a
    None stdout drops the line) and ``parse`` raised AttributeError. Each is now exit 74, said."""
    import os
    import subprocess
    import sys

    argv = [sys.executable, "-m", "normagent", *command]
    with open("/dev/full", "wb") as full:
        done = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, input=b"x\n" * 10_000, check=False)
    assert done.returncode == 74
    assert done.stderr == b"normagent: standard output cannot be written: No space left on device; what was printed is incomplete\n"

    closed = subprocess.run(argv, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(1), check=False)
    assert closed.returncode == 74
    assert closed.stderr == f"normagent: standard output is closed ({command[0]} prints its result there)\n".encode()


def test_collect_once_prints_what_each_collector_saw_and_writes_no_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sample_config(tmp_path)

    assert main(["collect", "--once", "--config", str(path), "--format", "json"]) == 0

    [report] = json.loads(capsys.readouterr().out)["collectors"]
    assert report["name"] == "sample.events" and report["status"] == "ok"
    assert report["counters"] == [{"metric": "normagent_sample_events_total", "labels": {"kind": "a"}, "value": 2.0}]
    assert report["gauges"] == [{"metric": "normagent_sample_level", "labels": {}, "value": 7.0}]
    assert not (tmp_path / "state").exists()


def test_collect_once_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = sample_config(tmp_path, '[collectors."sample.events"]\nenabled = false\n')
    assert main(["collect", "--once", "--config", str(path)]) == 0
    assert "sample.events  disabled" in capsys.readouterr().out


def test_collect_requires_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["collect"])
    assert exit_.value.code == 2
    assert "--once" in capsys.readouterr().err


def test_collect_once_names_rollup_rows_as_rows_not_keys() -> None:
    """collect --once adds up the rows its batches carry (a key in two batches is two rows); parse
    counts distinct keys. Each says which it prints, so the two numbers cannot be mistaken."""
    from datetime import date

    from normagent.model import Batch, Rollup
    from normagent.oneshot import CollectorReport, render_text

    day = date(2026, 11, 23)
    report = CollectorReport("access.logins", "access", "ok")
    report.add(Batch([Rollup("access.failed_by_account", day, "k1", 2), Rollup("access.failed_by_account", day, "k2", 1)]))
    report.add(Batch([Rollup("access.failed_by_account", day, "k1", 5)]))

    text = render_text([report], {})

    assert "    rollup access.failed_by_account: 3 rows (one per batch, day and key; not distinct keys)\n" in text
    assert report.as_json()["rollup_rows"] == {"access.failed_by_account": 3} and "rollups" not in report.as_json()


def test_collect_once_prints_what_a_path_or_a_log_holds_as_text_not_as_terminal_control(tmp_path: Path) -> None:
    """A log path is printed in the collector's detail ("no file matches …", what could not be
    read), and a label value or an event key may come from a log: their escape sequences went to
    the terminal as they were (retitling the window, clearing the screen)."""
    from datetime import datetime, timezone

    from normagent.model import Batch, Count, Event
    from normagent.oneshot import CollectorReport, render_text

    hostile = "evil\x1b]0;PWNED\x07\x1b[2J\u202eexe.txt"
    report = CollectorReport("access.logins", "access", "no_data", detail=f"no file matches /var/log/{hostile}.log")
    report.add(Batch([Count("normagent_x_total", {"origin": hostile}), Event("x.seen", datetime(2026, 11, 1, tzinfo=timezone.utc), hostile, {})]))

    text = render_text([report], {})

    shown = "evil\\u001b]0;PWNED\\u0007\\u001b[2J\\u202eexe.txt"
    assert f"no file matches /var/log/{shown}.log" in text and f'origin="{shown}"' in text and f"({shown})" in text
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", text)


@pytest.mark.parametrize("columns", ["100", "61", "", "garbage", "-5"])
def test_help_is_laid_out_as_argparse_lays_it_out(monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    """``normagent.cli_parser.Parser`` finds the width as argparse would (through shutil, which the
    running agent must not keep): every command's help is argparse's own, character for character."""
    import argparse

    import normagent.cli
    import normagent.cli_parser

    monkeypatch.setenv("COLUMNS", columns)

    def helps(parser: argparse.ArgumentParser) -> list[str]:
        found = [parser.format_help()]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found += helps(sub)
        return found

    ours = helps(normagent.cli.build_parser())
    monkeypatch.setattr(normagent.cli_parser, "Parser", argparse.ArgumentParser)  # argparse's own width, through shutil
    theirs = helps(normagent.cli.build_parser())
    assert ours == theirs and len(ours) > 15


RUN_WORDS = ["--config", "-c", "--new-state", "/etc/normagent/a.toml", "x.toml", "--config=b.toml", "-cc.toml", "-c=d.toml",
             "--config=", "-", "--", "--conf", "--new", "-h", "--help", "extra", "", "-x", "--config=-y", "ü.toml", "-5"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(RUN_WORDS), max_size=6))
def test_run_s_arguments_read_without_argparse_are_what_argparse_reads(words: list[str]) -> None:
    """``run_arguments`` answers only where argparse would, and with what argparse gives; all else
    it leaves to argparse (None)."""
    import contextlib
    import io

    from normagent.cli import build_parser, run_arguments

    ours = run_arguments(["run", *words])
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            theirs = vars(build_parser().parse_args(["run", *words]))
    except SystemExit:
        theirs = None
    if ours is not None:
        assert vars(ours) == theirs
    assert run_arguments(words) is None or words[:1] == ["run"]


def test_the_service_s_command_line_imports_no_argparse() -> None:
    """``normagent run`` as systemd/normagent.service starts it: argparse (and gettext) never imported."""
    probe = (
        "import sys; from normagent.cli import run_arguments; "
        "args = run_arguments(['run', '--config', '/etc/normagent/normagent.toml']); "
        "print(args.config, args.new_state, sorted({'argparse', 'gettext'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["/etc/normagent/normagent.toml", "False", "[]"]
