"""The updates plugin's default rules fire from what its collectors read: apt's history.log and
unattended-upgrades' log, and the pending updates and reboot flag of an apt host (apt-get's
simulation as recorded), committed to a real ledger whose engine runs the plugin's rules."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from normagent import FileSource
from normagent.ledger import Ledger
from normagent.plugins.updates.collectors import APT, PENDING_COLLECTOR, apt_simulation_argv
from normagent.plugins.updates.rules import RULES
from normagent.plugins.updates.settings import APT_LOGS, AptSettings
from normagent.testing import FakeClock, recorded_command, run_collector_once
from tests.support.deviation_rules import fired, firing, install, what

HISTORY = """Start-Date: 2026-11-23  06:25:12
Commandline: /usr/bin/unattended-upgrade
Upgrade: libssl3:amd64 (3.0.15-1~deb12u1, 3.0.17-1~deb12u2)
Error: Sub-process /usr/bin/dpkg returned an error code (1)
End-Date: 2026-11-23  06:25:40
"""


def failed_run(day: int) -> str:
    return (f"2026-11-{day:02d} 06:25:10,000 INFO Starting unattended upgrades script\n"
            f"2026-11-{day:02d} 06:25:10,100 INFO Allowed origins are: o=Debian,a=bookworm-security, o=Debian,n=bookworm,l=Debian-Security\n"
            f"2026-11-{day:02d} 06:25:11,000 INFO Packages that will be upgraded: libssl3\n"
            f"2026-11-{day:02d} 06:25:40,000 ERROR Installing the upgrades failed!\n"
            f"2026-11-{day:02d} 06:25:40,001 ERROR error message: installArchives() failed\n")


def test_a_failed_security_update_and_automatic_updates_that_keep_failing(tmp_path: Path, ledger: Ledger) -> None:
    """unattended-upgrades (allowed: security origins only, so its updates are security updates) fails
    to install libssl3: the security update failed at once; the second failed run in three days
    makes it a pattern."""
    logs = tmp_path / "var" / "log"
    (logs / "apt").mkdir(parents=True)
    (logs / "unattended-upgrades").mkdir()
    (logs / "apt" / "history.log").write_text(HISTORY)
    uu = logs / "unattended-upgrades" / "unattended-upgrades.log"
    uu.write_text(failed_run(22))
    settings = AptSettings(files=FileSource(paths=APT_LOGS, start_at="beginning"))
    install(ledger, RULES)

    run_collector_once(APT, ledger, settings=settings, root=tmp_path, run_command=recorded_command({}))
    assert firing(ledger) == {"updates.security_update_failed": [{}]}
    with uu.open("a") as f:
        f.write(failed_run(23))
    run_collector_once(APT, ledger, settings=settings, root=tmp_path, run_command=recorded_command({}))

    assert set(firing(ledger)) == {"updates.security_update_failed", "updates.unattended_upgrades_failing"}
    [failed] = fired(ledger, "updates.security_update_failed")
    assert what(failed) == ("1 sikkerhetsoppdatering(er) feilet siste 1 døgn.", "1 security update(s) failed in the last 1 day.")
    assert failed["owner"] == "IKT-leder" and failed["cia"] == ["integritet", "konfidensialitet"]
    [runs] = fired(ledger, "updates.unattended_upgrades_failing")
    assert what(runs)[1] == "Automatic updates (unattended-upgrades) failed in 2 runs in the last 3 days (threshold 2)."
    assert "libssl3" not in str(runs)


def test_a_security_update_left_waiting_and_a_restart_left_undone(tmp_path: Path, ledger: Ledger, clock: FakeClock) -> None:
    """apt-get's simulation offers a security update and /run/reboot-required is there: the
    restart is a deviation after a week, the update after 14 days, owned by top management."""
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "run/reboot-required").touch()
    simulation = (b"NOTE: This is only a simulation!\n"
                  b"Inst libssl3 [3.0.15-1~deb12u1] (3.0.17-1~deb12u2 Debian-Security:12/oldstable-security [amd64])\n")
    commands = recorded_command({tuple(apt_simulation_argv(tmp_path)): simulation})
    install(ledger, RULES)

    def hourly(hours: int) -> None:
        for _ in range(hours):
            run_collector_once(PENDING_COLLECTOR, ledger, root=tmp_path, clock=clock, run_command=commands)
            clock.advance(3600)

    hourly(7 * 24)
    assert {c.rule: c.state for c in ledger.candidates()} == {"updates.reboot_pending": "pending"}
    hourly(1)
    assert firing(ledger) == {"updates.reboot_pending": [{}]}
    assert what(fired(ledger, "updates.reboot_pending")[0])[0] == "Installerte oppdateringer har ventet på omstart av serveren i over 7 døgn."
    hourly(7 * 24)
    assert set(firing(ledger)) == {"updates.reboot_pending"}, "14 days exactly: not over the threshold"
    hourly(1)

    assert set(firing(ledger)) == {"updates.reboot_pending", "updates.security_update_pending"}
    [waiting] = fired(ledger, "updates.security_update_pending")
    assert waiting["owner"] == "toppledelsen"
    assert what(waiting) == (
        "En tilgjengelig sikkerhetsoppdatering har ventet i 14 døgn 1 time uten å bli installert (grense 14 døgn).",
        "An available security update has waited 14 days 1 hour without being installed (threshold 14 days).",
    )
    assert timedelta(seconds=waiting["value"]) == timedelta(days=14, hours=1)
