"""fail2ban's real test logs: every line fail2ban counts as a failure is counted here as a failed
login, except the kinds docs/access-counting-rules.md ("Compared with fail2ban") leaves out, each
named here with its rule; and the lines fail2ban does not count are not counted here either,
except the two kinds the document lists."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from normagent.plugins.access.parse import parse_auth_lines
from normagent.testing import parse_text
from tests.plugins.access.cases import verdict

LOGS = Path(__file__).parents[2] / "fixtures" / "logs" / "fail2ban"
OSLO = ZoneInfo("Europe/Oslo")

# fail2ban matches, deliberately not counted: (pattern over the message, our verdict, rule).
NOT_ATTEMPTS = [
    (r"Invalid user ", "ignored", "S2"),
    (r"User \S+ from \S+ not allowed because |ROOT LOGIN REFUSED", "ignored", "S3"),
    (r"maximum authentication attempts exceeded|Disconnecting: Too many authentication failures", "ignored", "S4"),
    (r"(Connection (closed|reset) by|Disconnected from) (authenticating|invalid) user ", "ignored", "S5"),
    (r"pam_unix\(sshd:auth\): authentication failure|\(pam_unix\) authentication failure; .*tty=ssh", "ignored", "P1"),
    (r"Accepted password for ", "success", "S7"),
    (
        r"Connection (closed|reset) by [0-9.]+( port \d+)?( \[preauth\])?$|Disconnected from [0-9.]+ port|"
        r"Did not receive identification string|Bad protocol version|kex_exchange_identification|banner exchange|"
        r"Unable to negotiate|no matching mac found|Read from socket failed|Received disconnect from|"
        r"Change of username or service not allowed|refused connect from",
        "ignored",
        "S9",
    ),
]
# fail2ban does not match, counted here: (pattern, our verdict, rule).
COUNTED_HERE = [
    (r"Failed publickey for git ", "fail sshd bad_key 1", "S11"),
    (r"pop\(pam_unix\)\[\d+\]: authentication failure", "fail pam bad_password 1", "P2"),
]


@dataclass(frozen=True)
class F2bLine:
    file: str
    number: int
    match: bool
    line: str


def f2b_lines() -> list[F2bLine]:
    out = []
    for name in ("sshd", "pam-generic"):
        expect = None
        text = (LOGS / name).read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if line.startswith("# failJSON:"):
                expect = json.loads(line[len("# failJSON:") :])
            elif line.strip() and not line.startswith("#") and expect is not None:
                out.append(F2bLine(name, number, bool(expect.get("match")), line))
                expect = None
    return out


LINES = f2b_lines()


def _documented(line: str, table: list[tuple[str, str, str]]) -> tuple[str, str] | None:
    for pattern, ours, rule in table:
        if re.search(pattern, line):
            return ours, rule
    return None


@pytest.mark.parametrize("f2b", [x for x in LINES if x.match], ids=lambda x: f"{x.file}:{x.number}")
def test_every_line_fail2ban_matches_is_a_failure_or_a_documented_exception(f2b: F2bLine) -> None:
    got = verdict(parse_text(parse_auth_lines, f2b.line, tz=OSLO))

    if got.startswith("fail "):
        return
    documented = _documented(f2b.line, NOT_ATTEMPTS)
    assert documented is not None, f"not counted and not documented: {f2b.line}"
    assert got == documented[0], f"rule {documented[1]}"


@pytest.mark.parametrize("f2b", [x for x in LINES if not x.match], ids=lambda x: f"{x.file}:{x.number}")
def test_lines_fail2ban_does_not_match_are_not_counted_unless_documented(f2b: F2bLine) -> None:
    got = verdict(parse_text(parse_auth_lines, f2b.line, tz=OSLO))

    documented = _documented(f2b.line, COUNTED_HERE)
    if documented is not None:
        assert got == documented[0], f"rule {documented[1]}"
    else:
        assert not got.startswith("fail "), got


def test_keys_offered_by_a_user_who_then_logs_in_are_not_counted_in_fail2bans_log() -> None:
    """fail2ban's gh-1263 lines read together: git offers two keys and logs in (0); another
    connection offers two and is disconnected (2, bad_key). fail2ban counts neither offer alone."""
    lines = [x.line for x in LINES if x.file == "sshd" and re.search(r"sshd\[323(07|10)\]", x.line)]

    result = parse_text(parse_auth_lines, "\n".join(lines), tz=OSLO)

    fails = {o.labels: o.value for o in result.observations if getattr(o, "metric", "") == "normagent_failed_logins_total"}
    assert len(lines) == 10  # 5 lines each, their closing lines included
    assert fails == {(("reason", "bad_key"), ("source", "sshd")): 2.0}


@pytest.mark.parametrize(
    ("name", "sha256"),
    [
        ("sshd", "8b0471fa41098f81fde60d1caf0b22ec4cf3beb685906b8581ca511d762bc03c"),
        ("pam-generic", "cf121991bf6df6bd14b8015c21db024593058cef404bbee5facfee6ebe1cef72"),
    ],
)
def test_the_fixture_is_the_debian_packages_file(name: str, sha256: str) -> None:
    """Guard against a truncated or edited copy: the files of fail2ban 1.0.2-2 as they are."""
    assert hashlib.sha256((LOGS / name).read_bytes()).hexdigest() == sha256


def test_the_document_lists_every_exception_rule() -> None:
    text = (Path(__file__).parents[3] / "docs" / "access-counting-rules.md").read_text(encoding="utf-8")
    section = text.split("## Compared with fail2ban", 1)[1]

    for _, _, rule in NOT_ATTEMPTS + COUNTED_HERE:
        assert rule in section, rule
