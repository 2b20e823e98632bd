"""changes.audit, changes.packages and changes.windows over recorded real logs (go-libaudit's and
plaso's audit logs, Apache-2.0; the recorded dnf.rpm.log; security.evtx, MIT), a dpkg.log written
by the real dpkg in a throw-away root, and bad input. Planned or not: test_changes_planned.py."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from normagent import Count, Event, FileSource, ParseContext, Rollup, TextBlock
from normagent.ledger import Ledger
from normagent.model import WindowsEvent
from normagent.plugins.changes.collectors import AUDIT, PACKAGES, WINDOWS
from normagent.plugins.changes.parse import parse_audit, parse_package_logs
from normagent.plugins.changes.settings import AuditSettings, PackageChangeSettings, WindowsPolicySettings
from normagent.plugins.changes.vocab import BY_SUBJECT, CHANGE_EVENT, CONFIG_CHANGES, PACKAGE_CHANGES
from normagent.plugins.changes.windows import parse_policy_change
from normagent.testing import EPOCH, observations, run_collector_once, test_pseudonymiser
from tests.plugins.updates.aptroot import AptRoot, require_root_and_tools

FIXTURES = Path(__file__).parents[2] / "fixtures"
AUDIT_DIR = FIXTURES / "changes" / "audit"
LINES = "normagent_log_lines_total"


@dataclass(frozen=True)
class Keys:
    keys: tuple[str, ...]


def ctx(settings: Any = None) -> ParseContext:
    return ParseContext(now=EPOCH, tz=timezone.utc, pseudonymise=test_pseudonymiser(), settings=settings)


def parse(parser: Any, data: bytes, settings: Any = None) -> Any:
    data = data if data.endswith(b"\n") else data + b"\n"
    return parser(TextBlock(data, "x", None, data.count(b"\n")), ctx(settings))


def kinds(result: Any, metric: str = CONFIG_CHANGES, label: str = "kind") -> dict[str, float]:
    out: dict[str, float] = {}
    for obs in result.observations:
        if isinstance(obs, Count) and obs.metric == metric:
            out[dict(obs.labels)[label]] = out.get(dict(obs.labels)[label], 0) + obs.value
    return out


# --------------------------------------------------------------------------------------------
# auditd


def test_a_real_rhel_audit_log_counts_its_configuration_changes(tmp_path: Path, ledger: Ledger) -> None:
    """go-libaudit's audit-rhel7.log: two rules added (CONFIG_CHANGE) and auditd.conf re-read
    (DAEMON_CONFIG); the kill_signals key is no configuration watch."""
    (tmp_path / "var/log/audit").mkdir(parents=True)
    # The recording lacks its last newline; auditd ends every record (the tail waits for it).
    (tmp_path / "var/log/audit/audit.log").write_bytes((AUDIT_DIR / "go-libaudit_audit-rhel7.log").read_bytes() + b"\n")
    settings = AuditSettings(files=FileSource(paths=("/var/log/audit/audit.log",), start_at="beginning"))
    batches = run_collector_once(AUDIT, ledger, settings=settings, root=tmp_path)
    got = {dict(k)["kind"]: v for k, v in ledger.snapshot().values(CONFIG_CHANGES).items() if v}
    assert got == {"audit_config": 3}
    subjects = sorted(o.key for o in observations(batches) if isinstance(o, Rollup) and o.name == BY_SUBJECT)
    assert subjects == ["auditd:add_rule", "auditd:add_rule pam", "auditd:auditd.conf"]
    assert ledger.counter_value(LINES, {"source": "changes.audit", "result": "unparsed"}) == 0


def test_watch_keys_in_the_enriched_format_count_when_configured() -> None:
    """plaso's audit_enriched.log (RHEL 9, ENRICHED, \\x1d separators): exec watches keyed
    specimen_exec and spec2; counted only when the keys are asked for."""
    data = (AUDIT_DIR / "plaso_audit_enriched.log").read_bytes()
    assert kinds(parse(parse_audit, data)) == {}
    assert kinds(parse(parse_audit, data, Keys(("spec*",)))) == {"watch": 3}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'type=CONFIG_CHANGE msg=audit(1790730001.000:11): auid=1001 ses=3 op=remove_rule key="identity" list=4 res=0', {}),
        (b"type=CONFIG_CHANGE msg=audit(1790730000.000:10): op=set audit_enabled=0 old=2 auid=1001 ses=3 res=0", {}),
        (b'type=CONFIG_CHANGE msg=audit(1368831799.081:466947): auid=4294967295 ses=4294967295 op="remove rule" path="/x" key=(null) list=4 res=1',
         {"audit_config": 1}),
        (b'node=web type=SYSCALL msg=audit(1479982525.380:50): arch=c000003e syscall=2 success=yes exit=3 comm="vi" key="identity"',
         {"watch": 1}),
        (b'type=SYSCALL msg=audit(1479982525.380:51): arch=c000003e syscall=2 success=no exit=-13 comm="vi" key="identity"', {}),
        # two keys on one rule, hex-encoded: "exec\x01other" (no configuration key), "identity\x01scope"
        (b"type=SYSCALL msg=audit(1479982525.380:52): arch=c000003e syscall=2 success=yes key=65786563016F74686572", {}),
        (b"type=SYSCALL msg=audit(1479982525.380:53): arch=c000003e syscall=2 success=yes key=6964656E746974790173636F7065", {"watch": 1}),
        # a user-space record quoting key= inside msg='...' is no watch hit
        (b"type=USER_CMD msg=audit(1479982525.380:54): pid=1 uid=0 msg='cwd=\"/\" cmd=x key=\"identity\" res=success'", {}),
    ],
)
def test_audit_records(line: bytes, expected: dict[str, float]) -> None:
    assert kinds(parse(parse_audit, line)) == expected


def test_a_damaged_audit_log_is_unparsed_by_line_and_the_rest_counts() -> None:
    good = b'type=CONFIG_CHANGE msg=audit(1481077231.371:478): auid=1000 ses=3 op="add_rule" key=(null) list=4 res=1\n'
    data = good + b"\x00\x00\x00garbage after a crash\n" + good.replace(b":478", b":479")
    result = parse(parse_audit, data)
    assert kinds(result) == {"audit_config": 2}
    assert (result.parsed, result.ignored, result.unparsed) == (2, 0, 1)
    assert [(p.offset, p.reason) for p in result.problems] == [(len(good), "not an audit record")]


def test_an_audit_stamp_past_any_calendar_is_an_unparsed_line_not_a_failed_block() -> None:
    """``int()`` refuses 4,300 digits and ``datetime`` stops at year 9999: either raised out of the
    parser before, and the driver counted the block's lines as failed."""
    good = b'type=CONFIG_CHANGE msg=audit(1481077231.371:478): auid=1000 ses=3 op="add_rule" key=(null) list=4 res=1\n'
    bad = [good.replace(b"1481077231", stamp) for stamp in (b"9" * 5000, b"9" * 12, b"9" * 13)]
    result = parse(parse_audit, bad[0] + good + bad[1] + bad[2])
    assert kinds(result) == {"audit_config": 1}
    assert (result.parsed, result.ignored, result.unparsed) == (1, 0, 3)
    starts = [0, len(bad[0]) + len(good), len(bad[0]) + len(good) + len(bad[1])]
    assert [(p.offset, p.reason) for p in result.problems] == [(start, "audit record's time does not read") for start in starts]


def test_other_files_are_not_audit_logs() -> None:
    result = parse(parse_audit, b"Start-Date: 2026-11-20  06:25:12\nCommandline: apt-get upgrade\n")
    assert (result.parsed, result.ignored, result.unparsed) == (0, 2, 0)


# --------------------------------------------------------------------------------------------
# packages


def test_packages_dpkg_changed_for_real(tmp_path: Path, ledger: Ledger) -> None:
    """dpkg -i twice, an upgrade, a reinstall and a purge in a throw-away root."""
    require_root_and_tools()
    apt = AptRoot(tmp_path / "root")
    apt.dpkg_install(apt.build("tinyna", "1.0"))
    apt.dpkg_install(apt.build("tinyna", "1.1"))
    apt.dpkg_install(apt.build("tinyna", "1.1"))  # again: a reinstall
    apt.dpkg_install(apt.build("other", "1.0"))
    apt.dpkg_purge("tinyna")
    settings = PackageChangeSettings(files=FileSource(paths=("/var/log/dpkg.log", "/var/log/dnf.rpm.log"), start_at="beginning"))
    batches = run_collector_once(PACKAGES, ledger, settings=settings, root=apt.root)
    got = {dict(k)["action"]: v for k, v in ledger.snapshot().values(PACKAGE_CHANGES).items() if v}
    # dpkg --purge of an installed package logs "remove" then "purge": the program, then its
    # configuration files, two changes
    assert got == {"install": 2, "upgrade": 1, "reinstall": 1, "remove": 1, "purge": 1}
    names = sorted({o.key for o in observations(batches) if isinstance(o, Rollup)})
    assert names == ["other", "tinyna"]
    assert all(dict(k)["planned"] == "false" for k in ledger.snapshot().values(PACKAGE_CHANGES) if ledger.snapshot().values(PACKAGE_CHANGES)[k])


def test_packages_from_the_recorded_dnf_rpm_log() -> None:
    """Installed 4 (one of them, brokenrpm, failed in %pre: dnf.rpm.log writes Installed first),
    5 upgrades (brokenup's failed), 1 erase."""
    result = parse(parse_package_logs, (FIXTURES / "updates/dnf/dnf.rpm.log").read_bytes())
    assert kinds(result, PACKAGE_CHANGES, "action") == {"install": 4, "upgrade": 5, "remove": 1}


def test_package_lines_with_damaged_dates_are_ignored_not_counted() -> None:
    data = b"2026-13-45 99:00:00 install x:all <none> 1.0\n2026-11-20 06:00:00 install y:all <none> 1.0\n"
    result = parse(parse_package_logs, data)
    assert kinds(result, PACKAGE_CHANGES, "action") == {"install": 1}
    assert result.parsed + result.ignored == 2


# --------------------------------------------------------------------------------------------
# Windows


def test_domain_policy_changes_from_a_real_security_log(tmp_path: Path, ledger: Ledger) -> None:
    shutil.copy(FIXTURES / "evtx" / "security.evtx", tmp_path / "Security.evtx")
    batches = run_collector_once(WINDOWS, ledger, settings=WindowsPolicySettings(paths=("/Security.evtx",)), root=tmp_path)
    got = {dict(k)["kind"]: v for k, v in ledger.snapshot().values(CONFIG_CHANGES).items() if v}
    assert got == {"domain_policy": 3}
    subjects = {o.attrs["subject"] for o in observations(batches) if isinstance(o, Event) and o.kind == CHANGE_EVENT}
    assert subjects and all("Policy" in s for s in subjects)
    assert "Administrator" not in repr(observations(batches))


def test_an_audit_policy_change_4719() -> None:
    """No public EVTX with 4719 under a licence we can ship was found; the record's shape is
    Microsoft's (SubcategoryGuid, AuditPolicyChanges)."""
    record = WindowsEvent(
        42, datetime(2026, 11, 20, 10, tzinfo=timezone.utc), "Security", "Microsoft-Windows-Security-Auditing", 4719, 0,
        0x8020000000000000, "dc1",
        {"SubjectUserName": "admin", "CategoryId": "%%8274", "SubcategoryId": "%%12544",
         "SubcategoryGuid": "{0CCE9215-69AE-11D9-BED3-505054503030}", "AuditPolicyChanges": "%%8449"},
    )
    observed = parse_policy_change(record, ctx())
    assert observed is not None
    assert [o.key for o in observed if isinstance(o, Rollup)] == ["windows:{0CCE9215-69AE-11D9-BED3-505054503030}"]
    assert "admin" not in repr(observed)
