"""The changes plugin's default rules fire from what its collectors read against the real
maintenance calendar: a recorded audit log and a recorded dnf.rpm.log, committed to a real ledger
whose engine runs the plugin's rules. What a plan covers raises nothing."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from normagent import FileSource
from normagent.ledger import Ledger
from normagent.maintenance import Calendar, MaintenanceSettings, OneOffWindow
from normagent.plugins.changes.collectors import AUDIT, PACKAGES
from normagent.plugins.changes.rules import RULES
from normagent.plugins.changes.settings import AuditSettings, PackageChangeSettings
from normagent.plugins.changes.vocab import PACKAGE_CHANGES
from normagent.testing import FakeClock, run_collector_once
from tests.plugins.changes.test_changes_planned import ICS
from tests.support.deviation_rules import fired, firing, install, what

FIXTURES = Path(__file__).parents[2] / "fixtures"


def calendar(tmp_path: Path) -> Calendar:
    path = tmp_path / "maintenance.ics"
    path.write_text(ICS.replace("\n", "\r\n"), encoding="utf-8")
    return Calendar(MaintenanceSettings(calendar=path))


def test_an_audit_change_outside_every_plan(tmp_path: Path, ledger: Ledger) -> None:
    """go-libaudit's audit log: of three audit configuration changes the calendar covers two;
    the third (auditd.conf re-read, no plan) is the candidate."""
    (tmp_path / "var/log/audit").mkdir(parents=True)
    (tmp_path / "var/log/audit/audit.log").write_bytes((FIXTURES / "changes/audit/go-libaudit_audit-rhel7.log").read_bytes() + b"\n")
    install(ledger, RULES)

    run_collector_once(AUDIT, ledger, settings=AuditSettings(files=FileSource(paths=("/var/log/audit/audit.log",), start_at="beginning")),
                       root=tmp_path, maintenance=calendar(tmp_path))

    assert firing(ledger) == {"changes.unplanned_config_change": [{"source": "auditd"}]}
    [doc] = fired(ledger, "changes.unplanned_config_change")
    assert what(doc) == (
        "1 konfigurasjonsendring(er) (auditd) siste 1 time utenfor planlagte vedlikeholdsvinduer og planlagte endringer.",
        "1 configuration change(s) (auditd) in the last 1 hour outside planned maintenance windows and planned changes.",
    )
    assert doc["cia"] == ["integritet"] and doc["section"] == "Databehandler" and "auditd.conf" not in str(doc)


def test_packages_installed_outside_every_plan(tmp_path: Path) -> None:
    """The recorded dnf.rpm.log of 6 Dec 2026 13:02 UTC: the planned change names openssl-* and
    tinyrpm; brokenup and brokenrpm were installed outside it (an upgrade outside it is the
    updates plugin's). Read ten minutes later: one candidate, for two packages, naming none."""
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/dnf.rpm.log").write_bytes((FIXTURES / "updates/dnf/dnf.rpm.log").read_bytes())
    clock = FakeClock(datetime(2026, 12, 6, 13, 12, tzinfo=timezone.utc))
    with Ledger.open(tmp_path / "ledger.db", clock=clock) as ledger:
        install(ledger, RULES)

        run_collector_once(PACKAGES, ledger, settings=PackageChangeSettings(files=FileSource(paths=("/var/log/dnf.rpm.log",), start_at="beginning")),
                           root=tmp_path, clock=clock, maintenance=calendar(tmp_path))

        assert firing(ledger) == {"changes.unplanned_package_change": [{}]}
        [doc] = fired(ledger, "changes.unplanned_package_change")
        assert doc["severity"] == "info" and what(doc)[1] == (
            "2 package(s) were installed, removed or downgraded in the last 1 day outside planned maintenance windows and planned changes.")
        assert "broken" not in str(doc)


def test_the_same_packages_inside_a_maintenance_window_raise_nothing(tmp_path: Path) -> None:
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/dnf.rpm.log").write_bytes((FIXTURES / "updates/dnf/dnf.rpm.log").read_bytes())
    utc = timezone.utc
    window = Calendar(MaintenanceSettings(windows=(
        OneOffWindow(datetime(2026, 12, 6, 13, 0, tzinfo=utc), datetime(2026, 12, 6, 14, 0, tzinfo=utc), "Pakker", "driftsleverandør"),
    )))
    clock = FakeClock(datetime(2026, 12, 6, 13, 12, tzinfo=timezone.utc))
    with Ledger.open(tmp_path / "ledger.db", clock=clock) as ledger:
        install(ledger, RULES)

        run_collector_once(PACKAGES, ledger, settings=PackageChangeSettings(files=FileSource(paths=("/var/log/dnf.rpm.log",), start_at="beginning")),
                           root=tmp_path, clock=clock, maintenance=window)

        assert ledger.counter_value(PACKAGE_CHANGES, {"action": "install", "planned": "true"}) == 4
        assert firing(ledger) == {}
