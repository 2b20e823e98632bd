"""updates.pending with the recorded output of the real dnf (tests/fixtures/commands/dnf_*.txt,
recorded by tests/fixtures/updates/dnf/record.sh) and of apt-get, and what happens when a query
fails, hangs or is not there. (The real apt-get runs in test_updates_apt_real.py.)"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from normagent import CommandResult, NoData
from normagent.ledger import Ledger
from normagent.plugins.updates.collectors import (
    DNF_CHECK_UPDATE,
    DNF_PENDING_SECURITY,
    PENDING_COLLECTOR,
    PendingUnavailable,
    apt_simulation_argv,
)
from normagent.plugins.updates.pending import first_seen, oldest, parse_apt_simulation
from normagent.plugins.updates.settings import PendingSettings
from normagent.plugins.updates.vocab import OLDEST_PENDING, PENDING, REBOOT_REQUIRED, SECURITY_ORIGINS
from normagent.testing import FakeClock, recorded_command, run_collector_once

COMMANDS = Path(__file__).parents[2] / "fixtures" / "commands"

APT_SIMULATION = b"""NOTE: This is only a simulation!
Reading package lists...
Inst libssl3 [3.0.15-1~deb12u1] (3.0.17-1~deb12u2 Debian:12.12/oldstable, Debian-Security:12/oldstable-security [amd64])
Inst base-files [12.4+deb12u11] (12.4+deb12u12 Debian:12.12/oldstable [amd64])
Inst linux-image-6.1.0-41-amd64 (6.1.158-1 Debian-Security:12/oldstable-security [amd64])
Inst tinyna [1.1] (1.2 Debian-Security:stable-security [all])
Conf libssl3 (3.0.17-1~deb12u2 Debian:12.12/oldstable, Debian-Security:12/oldstable-security [amd64])
"""


def gauges(ledger: Ledger, metric: str) -> dict[str, float]:
    return {dict(k).get("kind", ""): v for k, v in ledger.snapshot().values(metric).items()}


def test_apt_simulation_lines_by_origin() -> None:
    found = parse_apt_simulation(APT_SIMULATION, SECURITY_ORIGINS)
    assert [(u.package, u.version, u.kind) for u in found] == [
        ("base-files", "12.4+deb12u12", "other"),
        ("libssl3", "3.0.17-1~deb12u2", "security"),
        ("tinyna", "1.2", "security"),
    ]  # the new kernel package is an install an upgrade pulls in, not an update


def test_dnf_pending_from_recorded_check_update_and_updateinfo(tmp_path: Path, ledger: Ledger) -> None:
    (tmp_path / "var/lib/dnf").mkdir(parents=True)
    commands = recorded_command({
        DNF_CHECK_UPDATE: CommandResult(DNF_CHECK_UPDATE, 100, (COMMANDS / "dnf_check-update.txt").read_bytes()),
        DNF_PENDING_SECURITY: COMMANDS / "dnf_updateinfo_updates_security.txt",
        ("needs-restarting", "-r"): CommandResult(("needs-restarting", "-r"), 1, b"Reboot is required to fully utilize these updates.\n"),
    })
    clock = FakeClock()
    run_collector_once(PENDING_COLLECTOR, ledger, root=tmp_path, clock=clock, run_command=commands)
    assert gauges(ledger, PENDING) == {"security": 1, "other": 1}
    assert gauges(ledger, REBOOT_REQUIRED) == {"": 1}
    clock.advance(86400)
    run_collector_once(PENDING_COLLECTOR, ledger, root=tmp_path, clock=clock, run_command=commands)
    assert gauges(ledger, OLDEST_PENDING) == {"security": 86400, "other": 86400}
    none = recorded_command({
        DNF_CHECK_UPDATE: COMMANDS / "dnf_check-update_none.txt",
        DNF_PENDING_SECURITY: b"",
        ("needs-restarting", "-r"): CommandResult(("needs-restarting", "-r"), 0, b""),
    })
    run_collector_once(PENDING_COLLECTOR, ledger, root=tmp_path, clock=clock, run_command=none)
    assert gauges(ledger, PENDING) == {"security": 0, "other": 0}
    assert gauges(ledger, OLDEST_PENDING) == {"security": 0, "other": 0}
    assert gauges(ledger, REBOOT_REQUIRED) == {"": 0}


@pytest.mark.parametrize(
    "answer",
    [
        CommandResult((), None, error="timed out after 120s"),
        CommandResult((), None, error="not found"),
        CommandResult((), 100, b"E: The package lists or status file could not be parsed or opened.\n"),
    ],
    ids=["timeout", "missing", "failed"],
)
def test_a_failed_apt_query_fails_the_run_and_keeps_the_reboot_flag(tmp_path: Path, ledger: Ledger, answer: CommandResult) -> None:
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "run/reboot-required").touch()
    commands = recorded_command({tuple(apt_simulation_argv(tmp_path)): answer})
    with pytest.raises(PendingUnavailable, match="apt-get --just-print dist-upgrade"):
        run_collector_once(PENDING_COLLECTOR, ledger, root=tmp_path, run_command=commands)
    assert gauges(ledger, REBOOT_REQUIRED) == {"": 1}


def test_a_host_without_apt_or_dnf_has_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoData):
        run_collector_once(PENDING_COLLECTOR, root=tmp_path, settings=PendingSettings())


def test_the_apt_query_is_a_simulation_without_a_lock() -> None:
    argv = apt_simulation_argv(Path("/"))
    assert argv[:2] == ["apt-get", "--just-print"] and "Debug::NoLocking=true" in argv and argv[-1] == "dist-upgrade"
    assert not [a for a in argv if a.startswith("Dir=")]


def test_first_seen_survives_and_forgets() -> None:
    from normagent.plugins.updates.pending import PendingUpdate

    a, b = PendingUpdate("a", "1", "security"), PendingUpdate("b", "2", "other")
    seen = first_seen(None, [a, b], 100.0)
    seen = first_seen(seen, [a], 500.0)
    assert seen == {"a=1": ["security", 100.0]}
    assert oldest(seen, 700.0) == {"security": 600.0, "other": 0.0}
    assert first_seen({"a=1": "garbage"}, [a], 9.0) == {"a=1": ["security", 9.0]}
    assert oldest({"x": [1, 2, 3], "y": "z"}, 5.0) == {"security": 0.0, "other": 0.0}


def test_the_settings_bound_the_query_time() -> None:
    assert PendingSettings().command_timeout == timedelta(minutes=2)
