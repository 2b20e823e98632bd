"""The deviations and rules commands over a real ledger, and check-config's forwarder probe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from normagent.agent import read_config
from normagent.cli import main
from normagent.deviations import build_engine
from normagent.ledger import Ledger
from normagent.model import Batch, Count
from normagent.testing import FakeClock
from tests.support.receivers import WebhookReceiver, free_port

SITE_RULE = """
[rules."site.sample_burst"]
watch = "normagent_sample_events_total"
comparison = ">="
threshold = 3
window = "1h"
group_by = ["kind"]
section = "Driftsstatus"
personal_data = true
summary = "{value} hendelser av typen {kind} siste {window}."
summary_en = "{value} events of kind {kind} in the last {window}."
"""


def config_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "normagent.toml"
    path.write_text(
        f"""
[agent]
state_dir = "{tmp_path / 'state'}"

[plugins]
extra = ["tests.support.sample_plugin"]
disable = ["system", "access", "edi"]
entry_points = false
{SITE_RULE}
{extra}
"""
    )
    return path


@pytest.fixture
def populated(tmp_path: Path) -> Path:
    """A ledger where site.sample_burst fired once (candidate 1) for kind=a."""
    return populate(tmp_path)


def populate(site: Path) -> Path:
    path = config_file(site)
    config, plugins = read_config(path)
    clock = FakeClock()
    with Ledger.open(site / "state" / "ledger.db", clock=clock) as ledger:
        ledger.declare(plugins.metrics().values())
        ledger.use_rules(build_engine(config, plugins, ledger.host_id, "test"), ["hook"])
        ledger.commit("sample.events", Batch([Count("normagent_sample_events_total", {"kind": "a"}, 5)]))
    return path


def test_deviations_list_shows_candidates_and_the_outbox(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deviations", "list", "--config", str(populated)]) == 0
    out = capsys.readouterr().out
    assert "    1  firing    warning   site.sample_burst" in out
    assert "kind=a" in out and "2026-11-26 07:00:00Z" in out, "notify_by: 72 hours after the first evidence"
    assert "outbox hook: 1 change(s) waiting" in out


def test_deviations_show_and_ack(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deviations", "ack", "1", "--note", "Sjekket, falsk alarm", "--config", str(populated)]) == 0
    assert "candidate 1: follow-up recorded" in capsys.readouterr().out
    assert main(["deviations", "show", "1", "--format", "json", "--config", str(populated)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "firing" and shown["acks"][0]["note"] == "Sjekket, falsk alarm"
    assert shown["document"]["texts"]["en"]["what"] == "5 events of kind a in the last 1 hour."
    assert shown["deliveries"][0]["status"] == "pending"
    assert main(["deviations", "list", "--format", "json", "--config", str(populated)]) == 0
    assert json.loads(capsys.readouterr().out)["candidates"][0]["acks"] == 1


def test_what_a_receiver_or_a_label_says_reaches_the_terminal_as_text_not_as_escape_sequences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A hostile receiver's answer (kept as the delivery's last error) and a label from a log line
    # may hold an ESC sequence (clear the screen, retitle the window), a CR that overwrites the line.
    from normagent.ledger import AttemptResult

    path = config_file(tmp_path)
    config, plugins = read_config(path)
    with Ledger.open(tmp_path / "state" / "ledger.db", clock=FakeClock()) as ledger:
        ledger.declare(plugins.metrics().values())
        ledger.use_rules(build_engine(config, plugins, ledger.host_id, "test"), ["hook"])
        ledger.commit("sample.events", Batch([Count("normagent_sample_events_total", {"kind": "x\x1b]0;owned\x07"}, 5)]))
        [row] = ledger.due_deliveries("hook", 10)
        ledger.record_attempts("hook", [AttemptResult(row.id, False, "http_error", "HTTP 500: \x1b[2J\x1b[31mPWNED\r\x08", 0.0)], [])
    for argv in (["deviations", "show", "1"], ["deviations", "list"]):
        assert main([*argv, "--config", str(path)]) == 0
        out = capsys.readouterr().out
        assert not any(ch in out for ch in "\x1b\x07\r\x08"), out
        assert "x\\u001b]0;owned\\u0007" in out
    assert main(["deviations", "show", "1", "--config", str(path)]) == 0
    assert "last: http_error HTTP 500: \\u001b[2J\\u001b[31mPWNED\\r\\b" in capsys.readouterr().out


def test_ack_of_an_unknown_candidate_fails(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deviations", "ack", "99", "--note", "x", "--config", str(populated)]) == 66
    assert "no deviation candidate 99" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("note", "words"),
    [
        ("fixed \udcff", "character 7 (U+DCFF) is a byte that is not UTF-8"),  # argv's surrogate escape of a non-UTF-8 byte
        ("\x1b[31mred", "character 1 (U+001B) is a control character"),
        ("ok\nthen", "character 3 (U+000A) is a control character"),
        ("a\u202eb", "character 2 (U+202E) is an invisible character"),  # a bidi override
        ("x" * 4001, "--note has 4,001 characters; at most 4,000"),
    ],
)
def test_a_note_that_is_not_one_line_of_plain_text_is_refused_and_nothing_is_kept(
    populated: Path, note: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deviations", "ack", "1", "--note", note, "--config", str(populated)]) == 64
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert main(["deviations", "show", "1", "--format", "json", "--config", str(populated)]) == 0
    assert json.loads(capsys.readouterr().out)["acks"] == []


@pytest.mark.parametrize("given", ["0", "-1", "9223372036854775808", "99999999999999999999999", "\u0661", "1e3", ""])
def test_a_candidate_number_sqlite_cannot_hold_is_a_usage_error(populated: Path, given: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["deviations", "show", "--config", str(populated), "--", given],
                 ["deviations", "ack", "--note", "x", "--config", str(populated), "--", given]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        assert "is not a candidate number" in capsys.readouterr().err
    assert main(["deviations", "show", "--config", str(populated), "--", "9223372036854775807"]) == 66  # the largest: none such


def test_deviations_without_a_ledger_say_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deviations", "list", "--config", str(config_file(tmp_path))]) == 73
    assert "no ledger here" in capsys.readouterr().err
    assert not (tmp_path / "state" / "ledger.db").exists(), "a read command never creates a ledger"


def test_the_commands_write_nothing_beside_the_ledger_but_an_ack(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: they opened the daemon's ledger as the agent does, and wrote its marker where there
    was none (a ledger from before markers, or one whose marker was removed as the agent's own
    message advises): run as root, a ledger.id the agent's user cannot read, so the agent did not
    start (exit 73, "the ledger's marker cannot be used (Permission denied)")."""
    marker = populated.parent / "state" / "ledger.id"
    marker.unlink()
    for argv in (["deviations", "list"], ["deviations", "show", "1"], ["rules", "test"],
                 ["deviations", "ack", "1", "--note", "Sjekket"]):
        assert main([*argv, "--config", str(populated)]) in (0, 1), argv
        assert not marker.exists(), argv
    capsys.readouterr()
    assert main(["deviations", "show", "1", "--format", "json", "--config", str(populated)]) == 0
    assert json.loads(capsys.readouterr().out)["acks"][0]["note"] == "Sjekket"


def test_an_empty_ledger_file_is_no_ledger_and_stays_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `deviations list` made a new ledger in it (and its marker, in the command user's name)."""
    path = config_file(tmp_path)
    ledger = tmp_path / "state" / "ledger.db"
    ledger.parent.mkdir()
    ledger.touch()
    for argv in (["deviations", "list"], ["deviations", "ack", "1", "--note", "x"], ["rules", "test"]):
        assert main([*argv, "--config", str(path)]) == 73, argv
        assert "no ledger here" in capsys.readouterr().err
    assert ledger.stat().st_size == 0 and sorted(p.name for p in ledger.parent.iterdir()) == ["ledger.db"]


def test_an_emptied_ledger_is_called_lost_by_the_commands_too(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = populated.parent / "state" / "ledger.db"
    ledger.write_bytes(b"")
    assert main(["deviations", "list", "--config", str(populated)]) == 73
    assert f"{ledger} is empty, but a ledger existed here (ledger.id records ledger" in capsys.readouterr().err
    assert ledger.stat().st_size == 0


def test_a_ledger_this_user_may_not_look_at_is_a_clear_error() -> None:
    """An operator's own user on a host where the agent's state directory is 0700: it was a
    PermissionError traceback from ``Path.exists()``."""
    site = Path(tempfile.mkdtemp(prefix="normagent-perm-"))  # pytest's own directories are 0700 all the way
    site.chmod(0o755)
    populated = populate(site)
    state = site / "state"
    state.chmod(0o700)
    # As root, a user with no rights on it; as anyone else, a directory its owner may not search.
    as_other = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    if not as_other:
        state.chmod(0)
    try:
        for argv in (["deviations", "list"], ["rules", "test"], ["report", "--output", "-"], ["report", "--export-history"]):
            done = subprocess.run([*as_other, sys.executable, "-m", "normagent", *argv, "--config", str(populated)],
                                  capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
            assert done.returncode == 73, (argv, done.stderr)
            assert f"{state / 'ledger.db'}: permission denied: the state directory is the agent's" in done.stderr, argv
            assert "Traceback" not in done.stderr, argv
    finally:
        state.chmod(0o700)
        shutil.rmtree(site)


def test_rules_list_shows_site_and_default_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list", "--format", "json", "--config", str(config_file(tmp_path))]) == 0
    rules = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rules["site.sample_burst"]["origin"] == "site" and rules["site.sample_burst"]["personal_data"] is True
    assert rules["sample.many"]["origin"] == "tests.support.sample_plugin"


def test_rules_test_evaluates_at_a_time_and_checks_expectations(populated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    at = "2026-11-23T07:30:00Z"
    assert main(["rules", "test", "--at", at, "--rule", "site.sample_burst", "--expect", "site.sample_burst=firing",
                 "--config", str(populated)]) == 0
    assert "HOLDS site.sample_burst" in capsys.readouterr().out
    later = "2026-11-23T12:00:00Z"  # the window has slid past the events: clearing, held
    assert main(["rules", "test", "--at", later, "--expect", "site.sample_burst=resolved", "--config", str(populated)]) == 1
    assert "FAILED site.sample_burst: expected resolved, got firing" in capsys.readouterr().out


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00", "1999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"])
def test_rules_test_at_a_time_outside_the_years_a_ledger_holds_is_a_usage_error(
    populated: Path, at: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Year 1 was a traceback: a rule's window reached back before the first year datetime has."""
    assert main(["rules", "test", "--at", at, "--config", str(populated)]) == 64
    err = capsys.readouterr().err
    assert "expected a time in the years 2000 to 9998" in err and "Traceback" not in err


def test_rules_export_writes_prometheus_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "export", "--format", "prometheus", "--config", str(config_file(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert '- alert: "site.sample_burst"' in out
    assert 'expr: "increase(normagent_sample_events_total[1h]) >= 3"' in out


def test_check_config_names_an_unreachable_forwarder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    path = config_file(tmp_path, f'[forwarders.avvik]\nkind = "webhook"\nurl = "http://127.0.0.1:{port}/inn"\n')
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    line = path.read_text().splitlines().index(f'url = "http://127.0.0.1:{port}/inn"') + 1
    assert f"{path}:{line}: forwarders.avvik.url: cannot reach 127.0.0.1:{port}: Connection refused" in err


def test_check_config_passes_a_reachable_forwarder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    receiver = WebhookReceiver().start()
    try:
        path = config_file(tmp_path, f'[forwarders.avvik]\nkind = "webhook"\nurl = "{receiver.url}"\n')
        assert main(["check-config", str(path)]) == 0
        assert "1 forwarders)" in capsys.readouterr().out
        assert receiver.posts == [], "the probe only connects; it sends no change"
    finally:
        receiver.stop()
