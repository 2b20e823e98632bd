"""``normagent parse`` over the new formats: apt's history, dpkg's log, dnf's logs, audit.log, the
System and Security EVTX; a damaged history log names its bad lines by number."""

from __future__ import annotations

import io
import json
from pathlib import Path

from normagent.loader import build_plugins
from normagent.parsecmd import run_parse
from normagent.testing import EPOCH

FIXTURES = Path(__file__).parents[2] / "fixtures"
PLUGINS = build_plugins(entry_points_enabled=False)


def parse(*paths: Path, fmt: str = "json") -> str:
    out = io.StringIO()
    assert run_parse([str(p) for p in paths], config=None, plugins=PLUGINS, fmt=fmt, out=out, now=EPOCH) == 0  # type: ignore[arg-type]
    return out.getvalue()


def collectors(path: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    (item,) = json.loads(parse(path))["inputs"]
    return {c["collector"]: c for c in item["collectors"]}


def test_each_new_format_is_understood_by_its_collector_and_by_no_other() -> None:
    cases = {
        FIXTURES / "updates/apt/plaso_apt_history.log": {"updates.apt"},
        FIXTURES / "updates/dnf/dnf.rpm.log": {"updates.dnf", "changes.packages"},
        FIXTURES / "updates/dnf/dnf.log": {"updates.dnf"},
        # audit.log also holds a NETFILTER_CFG record: a firewall rule change, the firewall plugin's.
        FIXTURES / "changes/audit/go-libaudit_audit-rhel7.log": {"changes.audit", "firewall.linux"},
    }
    for path, expected in cases.items():
        found = collectors(path)
        assert set(found) == expected, path.name
        assert all(c["unparsed"] == 0 for c in found.values()), path.name


def test_a_damaged_history_log_names_its_bad_lines(tmp_path: Path) -> None:
    good = (FIXTURES / "updates/apt/plaso_apt_history.log").read_text().splitlines(keepends=True)
    damaged = tmp_path / "history.log"
    damaged.write_text("".join(good[:5]) + "\x00\x00 torn by a crash\n" + "".join(good[5:]) + "Upgrade: nonsense\n")
    text = parse(damaged, fmt="text")
    assert "updates.apt: 12 parsed" in text and "2 unparsed" in text
    assert "malformed: 2 lines" in text
    assert "line 6: not a line of apt's history log" in text
    assert f"line {len(good) + 2}: Upgrade line without a package list" in text
    (item,) = json.loads(parse(damaged))["inputs"]
    (apt,) = [c for c in item["collectors"] if c["collector"] == "updates.apt"]
    assert apt["problems"] == [
        {"line": 6, "reason": "not a line of apt's history log"},
        {"line": len(good) + 2, "reason": "Upgrade line without a package list"},
    ]
