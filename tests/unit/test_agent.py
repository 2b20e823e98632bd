"""The daemon as a process: start on a config, serve, reload on SIGHUP, stop on SIGTERM, refuse a bad config.

These start `normagent run` for real (a subprocess on 127.0.0.1, a state dir in tmp_path), with an
extra plugin module from tests/support so the collectors are deterministic.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
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

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.port = free_port()
        self.config = tmp_path / "normagent.toml"
        self.log = tmp_path / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, extra: str = "", interval: str = "200ms") -> None:
        self.config.write_text(
            f"""
[agent]
state_dir = "{self.tmp / 'state'}"
log_format = "json"
shutdown_grace = "2s"

[web]
listen = "127.0.0.1:{self.port}"

[plugins]
extra = ["tests.support.sample_plugin"]
disable = ["edi", "access"]
entry_points = false

[collectors."sample.events"]
interval = "{interval}"
{extra}
"""
        )

    def start(self, *options: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "normagent", "run", "--config", str(self.config), *options],
            stdout=subprocess.DEVNULL, stderr=self.log.open("wb"), env=env, cwd=self.tmp,
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

    value = float(page.split('normagent_sample_events_total{kind="a"} ')[1].split()[0])
    assert value >= before > 0


def test_sighup_with_a_bad_config_keeps_the_old_one(daemon: Daemon) -> None:
    daemon.write_config()
    daemon.start()
    daemon.wait_for('normagent_collector_up{collector="sample.events"} 1.0')

    daemon.config.write_text(daemon.config.read_text() + '\n[collectors."sample.events".oops]\n')
    daemon.config.write_text(daemon.config.read_text().replace('interval = "200ms"', 'interval = "15x"'))
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)

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

    end = time.monotonic() + 10
    while time.monotonic() < end and not any(e["event"] == "config_reloaded" for e in daemon.events()):
        time.sleep(0.1)
    assert any(e["event"] == "config_reloaded" for e in daemon.events())
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


# --------------------------------------------------------------------------------------------
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
disable = ["system", "edi", "access"]
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


def wait_event(daemon: Daemon, name: str, timeout: float = 20) -> dict[str, object]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = [e for e in daemon.events() if e["event"] == name]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {name} in the log:\n{daemon.log.read_text()[-3000:]}")


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

    lost = wait_event(daemon, "state_lost")
    rescued = wait_event(daemon, "state_rescued")
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
