"""The daemon as a process: start on a config, serve, reload on SIGHUP, stop on SIGTERM, refuse a bad config.

These start `normagent run` for real (a subprocess on 127.0.0.1, a state dir in tmp_path), with an
extra plugin module from tests/support so the collectors are deterministic.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from normagent.errors import EX_CANTCREAT, EX_CONFIG
from normagent.ledger import Ledger
from tests.support.disks import fill, small_filesystem
from tests.support.lines_plugin import write_lines
from tests.support.tools import EVERY_BUILTIN, builtins_except
from tests.support.ports import reserve_port
from tests.support.service import service_environment

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, reserved (see tests/support/ports.py)."""
    return reserve_port()


class Daemon:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.port = free_port()
        self.config = tmp_path / "normagent.toml"
        self.log = tmp_path / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, extra: str = "", interval: str = "200ms", grace: str = "2s", tables: str = "") -> None:
        self.config.write_text(
            f"""
[agent]
state_dir = "{self.tmp / 'state'}"
log_format = "json"
shutdown_grace = "{grace}"

[web]
listen = "127.0.0.1:{self.port}"

[plugins]
extra = ["tests.support.sample_plugin", "tests.support.daemon_plugin"]
disable = {builtins_except("system")}
entry_points = false

[collectors."sample.events"]
interval = "{interval}"
{extra}
{tables}
"""
        )

    def start(self, *options: str, argv: list[str] | None = None, stdin: int | None = None, stdout: int | None = None) -> None:
        env = {**os.environ, **service_environment(), "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            argv or [sys.executable, "-m", "normagent", "run", "--config", str(self.config), *options],
            stdin=stdin, stdout=stdout or subprocess.DEVNULL, stderr=self.log.open("wb"), env=env, cwd=self.tmp,
        )

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=2).text

    def wait_for(self, text: str, timeout: float = 15) -> str:
        end = time.monotonic() + timeout
        last = ""
        while time.monotonic() < end:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            try:
                last = self.metrics()
                if text in last:
                    return last
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; last page:\n{last}\nlog:\n{self.log.read_text()}")

    def wait_for_event(self, name: str, timeout: float = 15) -> dict[str, object]:
        """The first log event called ``name``, polled for until ``timeout``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            found = [e for e in self.events() if e["event"] == name]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no {name!r} event; log:\n{self.log.read_text()}")

    def events(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def test_serves_metrics_and_stops_cleanly_on_sigterm(daemon: Daemon) -> None:
    daemon.write_config()
    daemon.start()

    page = daemon.wait_for('normagent_collector_up{collector="sample.events"} 1.0')

    assert 'normagent_sample_events_total{kind="a"}' in page
    assert requests.get(f"http://127.0.0.1:{daemon.port}/healthz", timeout=2).status_code == 200
    assert daemon.stop() == 0
    assert [e["event"] for e in daemon.events()][-1] == "agent_stopped"
    with Ledger.open(daemon.tmp / "state" / "ledger.db") as ledger:  # consistent after the stop
        runs = ledger.checkpoints("sample.events").get("seen")
        assert isinstance(runs, int) and runs >= 1
        assert ledger.counter_value("normagent_sample_events_total", {"kind": "a"}) == 2 * runs


def test_counters_continue_after_a_restart(daemon: Daemon) -> None:
    daemon.write_config()
    daemon.start()
    daemon.wait_for('normagent_collector_up{collector="sample.events"} 1.0')
    daemon.stop()
    with Ledger.open(daemon.tmp / "state" / "ledger.db") as ledger:
        before = ledger.counter_value("normagent_sample_events_total", {"kind": "a"})

    daemon.start()
    page = daemon.wait_for("normagent_sample_events_total")
    first = float(page.split('normagent_sample_events_total{kind="a"} ')[1].split()[0])
    assert first >= before > 0  # continued from the ledger, not reset
    daemon.wait_for(f'normagent_sample_events_total{{kind="a"}} {before + 2}')  # a run of the second life
    assert daemon.stop() == 0

    with Ledger.open(daemon.tmp / "state" / "ledger.db") as ledger:
        runs = ledger.checkpoints("sample.events").get("seen")
        # Every run adds 2 and moves the checkpoint by 1 in one transaction, across both lives of
        # the agent: a run counted twice (or counted without its checkpoint) breaks the ratio.
        assert isinstance(runs, int) and ledger.counter_value("normagent_sample_events_total", {"kind": "a"}) == 2 * runs
        assert 2 * runs > before


def test_sighup_with_a_bad_config_keeps_the_old_one(daemon: Daemon) -> None:
    daemon.write_config()
    daemon.start()
    daemon.wait_for('normagent_collector_up{collector="sample.events"} 1.0')

    daemon.config.write_text(daemon.config.read_text() + '\n[collectors."sample.events".oops]\n')
    daemon.config.write_text(daemon.config.read_text().replace('interval = "200ms"', 'interval = "15x"'))
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for_event("config_reload_failed")

    assert daemon.proc.poll() is None
    failed = [e for e in daemon.events() if e["event"] == "config_reload_failed"]
    assert failed and any('interval: expected a duration like "30s"' in p for p in failed[0]["problems"])  # type: ignore[union-attr]
    daemon.wait_for('normagent_collector_up{collector="sample.events"} 1.0')


def test_sighup_with_a_good_config_applies_it(daemon: Daemon) -> None:
    daemon.write_config()
    daemon.start()
    daemon.wait_for('normagent_collector_up{collector="sample.events"} 1.0')

    daemon.write_config(extra="enabled = false")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)

    daemon.wait_for_event("config_reloaded")
    assert 'collector="sample.events"' not in daemon.metrics()  # a disabled collector is not reported down


def test_a_bad_config_starts_nothing_and_exits_78(daemon: Daemon) -> None:
    daemon.write_config(interval="15x")
    daemon.start()
    assert daemon.proc is not None

    assert daemon.proc.wait(15) == EX_CONFIG
    assert 'interval: expected a duration like "30s"' in daemon.log.read_text()
    assert not (daemon.tmp / "state").exists()
    with pytest.raises(requests.ConnectionError):
        daemon.metrics()


def test_sighup_applies_new_web_settings_on_the_same_address(daemon: Daemon) -> None:
    """Adding basic auth keeps the listen address: the old server must let go of it first."""
    import bcrypt

    daemon.write_config()
    daemon.start()
    daemon.wait_for('normagent_collector_up{collector="sample.events"} 1.0')
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    daemon.config.write_text(daemon.config.read_text() + f'\n[web.basic_auth_users]\nprometheus = "{hashed}"\n')
    assert daemon.proc is not None

    daemon.proc.send_signal(signal.SIGHUP)

    url = f"http://127.0.0.1:{daemon.port}/metrics"
    def status() -> int:
        try:
            return requests.get(url, timeout=2).status_code
        except requests.ConnectionError:  # the moment between the old server and the new one
            return 0

    end = time.monotonic() + 10
    while time.monotonic() < end and status() != 401:
        time.sleep(0.1)
    assert status() == 401
    assert requests.get(url, auth=("prometheus", "s3cret"), timeout=2).status_code == 200
    assert daemon.proc.poll() is None
    # The port was never free: the new server took over the old one's socket (see test_web).
    assert [e.get("handed_over") for e in daemon.events() if e["event"] == "http_server_stopped"] == [True]


# --------------------------------------------------------------------------------------------
# signals early and late (issue 9 items 16 and 21)


# Runs `normagent run` with the import of structlog (the first thing the agent needs that the
# command line does not) held until the test writes a line to stdin: the moment of start-up in
# which a SIGHUP used to be fatal, made to last as long as the test needs.
HELD_START = """
import sys
from importlib.abc import MetaPathFinder

class Hold(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "structlog":
            sys.meta_path.remove(self)
            print("holding", flush=True)
            sys.stdin.readline()
        return None

sys.meta_path.insert(0, Hold())
from normagent.cli import main
raise SystemExit(main(["run", "--config", sys.argv[1]]))
"""


def start_held(daemon: Daemon) -> subprocess.Popen[bytes]:
    daemon.start(argv=[sys.executable, "-c", HELD_START, str(daemon.config)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc = daemon.proc
    assert proc is not None and proc.stdout is not None
    assert proc.stdout.readline() == b"holding\n", daemon.log.read_text()
    return proc


def release(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"go\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass  # it died of the signal: the test's assertions say so


def test_a_sighup_while_the_agent_is_still_starting_is_not_fatal(daemon: Daemon) -> None:
    """Issue 9 item 21: a SIGHUP in the first ~50 ms after start killed the process."""
    daemon.write_config()
    proc = start_held(daemon)
    proc.send_signal(signal.SIGHUP)
    release(proc)
    daemon.wait_for('normagent_collector_up{collector="sample.events"} 1.0')
    assert daemon.stop() == 0


def test_a_sigterm_while_the_agent_is_still_starting_stops_it_before_it_starts_anything(daemon: Daemon) -> None:
    daemon.write_config()
    proc = start_held(daemon)
    proc.send_signal(signal.SIGTERM)
    release(proc)
    assert proc.wait(15) == 0
    assert "agent_started" not in daemon.log.read_text()
    assert not (daemon.tmp / "state").exists()


def log_lines(path: Path, count: int) -> bytes:
    return b"".join(b"Nov 23 07:00:00 host app[1]: line %08d\n" % i for i in range(count))


def slow_log_config(path: Path, seconds_per_block: float) -> str:
    return f"""
[collectors."daemon.log"]
enabled = true
interval = "1s"
timeout = "10m"
seconds_per_block = {seconds_per_block}

[collectors."daemon.log".files]
paths = ["{path}"]
start_at = "beginning"
block_bytes = 256
"""


def lines_counted(ledger: Ledger) -> float:
    return sum(ledger.counter_value("normagent_log_lines_total", {"source": "daemon.log", "result": r})
               for r in ("parsed", "ignored", "unparsed"))


def test_sigterm_during_a_long_catch_up_stops_at_the_next_block_and_keeps_what_was_read(daemon: Daemon) -> None:
    """Issue 9 item 21: the reader did not look at the stop flag between blocks, so SIGTERM waited
    for the whole shutdown_grace (here a minute) while the catch-up went on."""
    log = daemon.tmp / "app.log"
    log.write_bytes(log_lines(log, 4000))  # ~900 blocks of 256 bytes, 20 ms each: far longer than the test
    daemon.write_config(grace="60s", tables=slow_log_config(log, 0.02))
    daemon.start()
    daemon.wait_for('normagent_log_bytes_read_total{source="daemon.log"}')

    assert daemon.stop() == 0  # Daemon.stop waits 15 s, a quarter of the grace

    # This collector's pause: another one reading at that moment (updates.apt) pauses too.
    paused = [e["reason"] for e in daemon.events() if e["event"] == "log_read_paused" and e.get("collector") == "daemon.log"]
    assert paused == ["shutdown"]
    with Ledger.open(daemon.tmp / "state" / "ledger.db") as ledger:
        checkpoint = ledger.checkpoints("daemon.log").get(f"file:{log}")
        assert isinstance(checkpoint, dict) and isinstance(checkpoint["current"], dict)
        offset = checkpoint["current"]["offset"]
        assert 0 < lines_counted(ledger) == log.read_bytes()[:offset].count(b"\n") < 4000
    daemon.write_config(tables=slow_log_config(log, 0))
    daemon.start()
    daemon.wait_for('normagent_log_checkpoint_lag_bytes{source="daemon.log"} 0.0')
    assert daemon.stop() == 0
    with Ledger.open(daemon.tmp / "state" / "ledger.db") as ledger:
        assert lines_counted(ledger) == 4000  # nothing lost, nothing twice


def test_a_fifo_as_log_path_is_a_counted_error_and_does_not_hold_the_shutdown(daemon: Daemon) -> None:
    """Issue 9 item 16: the collector hung in open() until a restart, and SIGTERM waited the grace."""
    fifo = daemon.tmp / "app.log"
    os.mkfifo(fifo)
    daemon.write_config(grace="60s", tables=slow_log_config(fifo, 0))
    daemon.start()
    page = daemon.wait_for('normagent_log_file_errors_total{reason="not_a_regular_file",source="daemon.log"} 2.0')
    assert 'normagent_collector_up{collector="daemon.log"} 0.0' in page  # runs again, says it again
    assert daemon.stop() == 0
    unreadable = [e for e in daemon.events() if e["event"] == "log_file_unreadable"]
    assert unreadable and "is a FIFO (named pipe), not a regular file" in str(unreadable[0]["error"])
    # Said once per run, as what it is: not again as an unexpected failure with a traceback.
    assert not [e for e in daemon.events() if e["event"] == "collector_failed"]
    assert "Traceback" not in daemon.log.read_text()


def test_a_run_stuck_past_its_timeout_is_named_at_exit_and_not_waited_for(daemon: Daemon) -> None:
    """Issue 9 item 16: shutdown waited all of shutdown_grace for a run that had timed out long ago."""
    daemon.write_config(grace="60s", tables='[collectors."daemon.stuck"]\nenabled = true\n')
    daemon.start()
    daemon.wait_for('normagent_collector_up{collector="daemon.stuck"} 0.0')
    assert daemon.stop() == 0
    at_exit = [e for e in daemon.events() if e["event"] == "collectors_still_running_at_exit"]
    assert [(e["collectors"], e["timed_out"]) for e in at_exit] == [([], ["daemon.stuck"])]


def test_a_plugin_that_fails_to_load_is_logged_as_json_like_everything_else(daemon: Daemon) -> None:
    """Plugins load before the config says how to log: that first line must not be console text."""
    daemon.write_config()
    daemon.config.write_text(daemon.config.read_text().replace(
        'extra = ["tests.support.sample_plugin", "tests.support.daemon_plugin"]',
        'extra = ["tests.support.sample_plugin", "tests.support.broken_at_import"]',
    ))
    daemon.start()
    daemon.wait_for('normagent_plugin_up{plugin="tests.support.broken_at_import"} 0.0')
    assert daemon.stop() == 0

    lines = [line for line in daemon.log.read_text().splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), lines  # every line is a JSON object
    failed = [e for e in daemon.events() if e["event"] == "plugin_load_failed"]
    assert len(failed) == 1 and "not installed" in str(failed[0]["error"])


def test_advice_about_the_settings_is_logged_at_start_and_the_collector_runs(daemon: Daemon) -> None:
    daemon.write_config(extra="quiet = true")
    daemon.start()

    advice = daemon.wait_for_event("collector_advice")

    assert (advice["collector"], advice["key"], advice["level"]) == ("sample.events", "quiet", "warning")
    daemon.wait_for('normagent_collector_up{collector="sample.events"} 1.0')  # advice never disables
    assert daemon.stop() == 0


# the state directory: lost, refused, full


def write_lines_config(daemon: Daemon, state: Path, log: Path) -> None:
    daemon.config.write_text(
        f"""
[agent]
state_dir = "{state}"
log_format = "json"
shutdown_grace = "2s"

[web]
listen = "127.0.0.1:{daemon.port}"

[plugins]
extra = ["tests.support.lines_plugin"]
disable = {EVERY_BUILTIN}
entry_points = false

[collectors."lines.log"]
interval = "100ms"

[collectors."lines.log".files]
paths = ["{log}"]
start_at = "beginning"
"""
    )


def counted(page: str) -> tuple[float, float]:
    """(lines counted, sum of their ids) on a metrics page."""
    values = {}
    for name in ('normagent_log_lines_total{result="parsed",source="lines.log"}', "normagent_test_line_id_sum_total"):
        line = next((row for row in page.splitlines() if row.startswith(name + " ")), None)
        values[name] = float(line.rsplit(" ", 1)[1]) if line else 0.0
    return tuple(values.values())  # type: ignore[return-value]


def wait_counted(daemon: Daemon, lines: int, timeout: float = 20) -> str:
    end = time.monotonic() + timeout
    page = ""
    while time.monotonic() < end:
        page = daemon.wait_for('collector="lines.log"')
        if counted(page) == (lines, sum(range(lines))):
            return page
        time.sleep(0.05)
    raise AssertionError(f"never counted {lines} lines exactly; last: {counted(page)}\n{daemon.log.read_text()[-3000:]}")


def test_a_state_directory_deleted_while_running_is_noticed_and_put_back_for_the_restart(daemon: Daemon) -> None:
    """SQLite went on committing into the deleted ledger; the restart began anew, counting the log
    again from its start under a new pseudonym key."""
    state, log = daemon.tmp / "state", daemon.tmp / "app.log"
    write_lines(log, 0, 100)
    write_lines_config(daemon, state, log)
    daemon.start()
    wait_counted(daemon, 100)
    key = (state / "pseudonym.key").read_bytes()

    shutil.rmtree(state)
    write_lines(log, 100, 50)

    lost = daemon.wait_for_event("state_lost")
    rescued = daemon.wait_for_event("state_rescued")
    assert "was deleted" in str(lost["why"]) and rescued["ledger"] == str(state / "ledger.db")
    assert requests.get(f"http://127.0.0.1:{daemon.port}/healthz", timeout=2).status_code == 503
    daemon.wait_for('normagent_collector_up{collector="lines.log"} 0.0')
    assert counted(daemon.metrics()) == (100, sum(range(100)))  # nothing counted into the void
    assert daemon.stop() == 0
    assert (state / "pseudonym.key").read_bytes() == key

    daemon.start()
    wait_counted(daemon, 150)  # from where counting stopped: nothing again, nothing lost
    assert requests.get(f"http://127.0.0.1:{daemon.port}/healthz", timeout=2).status_code == 200


def test_a_lost_ledger_stops_the_start_until_new_state_says_to_begin_afresh(daemon: Daemon) -> None:
    state, log = daemon.tmp / "state", daemon.tmp / "app.log"
    write_lines(log, 0, 10)
    write_lines_config(daemon, state, log)
    daemon.start()
    wait_counted(daemon, 10)
    daemon.stop()
    (state / "ledger.db").unlink()

    daemon.start()
    assert daemon.proc is not None and daemon.proc.wait(15) == EX_CANTCREAT
    message = daemon.log.read_text()
    assert "ledger.db is missing, but a ledger existed here" in message and "--new-state" in message
    assert not (state / "ledger.db").exists()

    daemon.start("--new-state")
    wait_counted(daemon, 10)  # afresh, on purpose: the log is read again from its start
    assert any(e["event"] == "state_started_afresh" for e in daemon.events())


def test_a_read_only_state_filesystem_stops_the_start_with_what_and_where(daemon: Daemon) -> None:
    """Before: the ledger opened (read-only, through the WAL a crash left), then the start ended in
    a traceback from os.chmod: "OSError: [Errno 30] Read-only file system"."""
    log = daemon.tmp / "app.log"
    write_lines(log, 0, 10)
    with small_filesystem(daemon.tmp / "state", "512k") as state:
        write_lines_config(daemon, state, log)
        daemon.start()
        wait_counted(daemon, 10)
        assert daemon.proc is not None
        daemon.proc.kill()  # a crash: the -wal and -shm stay, so SQLite can open the ledger read-only
        daemon.proc.wait()
        subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)

        daemon.start()
        assert daemon.proc.wait(15) == EX_CANTCREAT

        text = daemon.log.read_text()
        assert f"normagent: {state}: cannot prepare the state directory: Read-only file system" in text
        assert "Traceback" not in text


def test_a_full_512_kib_state_filesystem_takes_collectors_down_and_loses_nothing(daemon: Daemon) -> None:
    """Before: the WAL alone filled the filesystem; commits failed with "cannot rollback - no
    transaction is active", raw tracebacks came from the scheduler thread and collector_up stayed 1."""
    log = daemon.tmp / "app.log"
    with small_filesystem(daemon.tmp / "state", "512k") as state:
        write_lines(log, 0, 300)
        write_lines_config(daemon, state, log)
        daemon.start()
        wait_counted(daemon, 300)
        ballast = fill(state)
        written = 300
        for _ in range(20):  # until the ledger has to grow (it may reuse its WAL for a while)
            write_lines(log, written, 100)
            written += 100
            try:
                daemon.wait_for('normagent_collector_up{collector="lines.log"} 0.0', timeout=2)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("the collector never went down on a full disk")
        failed = [e for e in daemon.events() if e["event"] == "collector_failed"]
        assert [e["reason"] for e in failed] == ["disk_full"]
        assert "state filesystem is full" in str(failed[0]["error"])

        ballast.remove()
        page = wait_counted(daemon, written)
        assert 'normagent_collector_up{collector="lines.log"} 1.0' in page
        assert daemon.stop() == 0
        text = daemon.log.read_text()
        assert "Traceback" not in text and "no transaction is active" not in text


def test_sighup_brings_new_rules_and_forwarders_into_use(daemon: Daemon) -> None:
    """A rule and a forwarder added by a reload: the candidate the new rule raises reaches the new
    forwarder, with no restart."""
    daemon.write_config()
    daemon.start()
    daemon.wait_for('normagent_collector_up{collector="sample.events"} 1.0')
    out = daemon.tmp / "avvik.jsonl"
    daemon.write_config(tables=f"""
[rules."site.sample_seen"]
watch = "normagent_sample_events_total"
comparison = ">"
threshold = 0
window = "1h"
group_by = ["kind"]
summary = "{{value}} hendelser av typen {{kind}}"

[forwarders.lokal]
kind = "file"
path = "{out}"
""")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for_event("config_reloaded")
    daemon.wait_for('normagent_outbox_pending{forwarder="lokal"} 0.0')
    end = time.monotonic() + 15
    while time.monotonic() < end and not (out.exists() and out.read_text().strip()):
        time.sleep(0.1)
    [line] = out.read_text().splitlines()
    document = json.loads(line)
    assert document["rule"] == "site.sample_seen" and document["labels"] == {"kind": "a"}
    # The line is written (and fsynced) before the attempt is stored: wait for the count, do not race it.
    daemon.wait_for('normagent_forward_attempts_total{forwarder="lokal",result="ok"} 1.0')


REPORT_LIBRARIES = ("jinja2", "pygal", "babel", "tqdm", "markupsafe")


def test_the_running_agent_imports_none_of_the_reports_libraries(daemon: Daemon) -> None:
    """The idle agent stays small: Jinja2, pygal, Babel and tqdm (the ``report`` extra) are
    imported by ``normagent report`` alone, not by ``run`` with every builtin plugin loaded and
    every collector run once. ``-X importtime`` lists every module the process imported."""
    daemon.config.write_text(
        f"""
[agent]
state_dir = "{daemon.tmp / 'state'}"
log_format = "json"
shutdown_grace = "2s"

[web]
listen = "127.0.0.1:{daemon.port}"

[plugins]
entry_points = false
"""
    )
    daemon.start(argv=[sys.executable, "-X", "importtime", "-m", "normagent", "run", "--config", str(daemon.config)])
    started = daemon.wait_for_event("agent_started")
    collectors = list(started["collectors"])  # type: ignore[call-overload]
    assert len(collectors) > 10
    end = time.monotonic() + 60
    while True:  # every collector has run once (succeeded or not)
        page = daemon.metrics()
        waiting = [c for c in collectors if f'normagent_collector_duration_seconds{{collector="{c}"}}' not in page]
        if not waiting:
            break
        assert time.monotonic() < end, f"collectors that never ran: {waiting}"
        time.sleep(0.1)
    assert daemon.stop() == 0
    imported = {line.rsplit("|", 1)[1].strip() for line in daemon.log.read_text().splitlines() if line.startswith("import time:")}
    assert "normagent.report.settings" in imported and "normagent.plugins.system" in " ".join(imported)
    assert sorted(m for m in imported if m.split(".")[0] in REPORT_LIBRARIES) == []
    # the [report] section's settings, as the configuration is read; the command's options are
    # normagent.cli_options', and the service's command line is read without argparse at all
    assert sorted(m for m in imported if m.startswith("normagent.report.")) == ["normagent.report.settings"]
    assert not {"argparse", "normagent.cli_parser", "normagent.cli_options", "normagent.demo"} & imported
