"""The Linux line parser against the annotated fixture: one case per rule of docs/access-counting-rules.md."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from normagent import Count, Rollup, TextBlock
from normagent.plugins.access.parse import (
    IGNORED,
    UNPARSED,
    Clock,
    candidate_lines,
    classify,
    parse_auth_lines,
    split_line,
)
from normagent.plugins.access.tally import FAILED_BY_ACCOUNT, FAILED_BY_NETWORK, FAILED_LOGINS
from normagent.testing import EPOCH, parse_text, test_pseudonymiser
from tests.plugins.access.cases import expected_totals, load_cases, totals, verdict

OSLO = ZoneInfo("Europe/Oslo")
CASES = load_cases()
DOC = Path(__file__).parents[3] / "docs" / "access-counting-rules.md"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_fixture_line_gets_its_verdict(case) -> None:
    """Each annotated line, parsed alone, counts exactly what its rule says."""
    result = parse_text(parse_auth_lines, case.line, tz=OSLO)

    assert verdict(result) == case.expect, case.what
    assert result.parsed + result.ignored + result.unparsed == 1


def test_the_whole_fixture_as_one_block_adds_up() -> None:
    """All lines in one block: the same totals as the cases one by one, every line one outcome."""
    data = "\n".join(c.line for c in CASES) + "\n"

    result = parse_text(parse_auth_lines, data, tz=OSLO)

    assert totals([result]) == expected_totals(CASES)
    assert result.parsed + result.ignored + result.unparsed == len(CASES)
    assert result.unparsed == sum(1 for c in CASES if c.expect == "unparsed")


def test_every_line_rule_of_the_document_has_a_fixture_line() -> None:
    """A rule an auditor reads is a rule the suite checks on a real line."""
    documented = set(re.findall(r"^- \*\*([A-Z]+\d+)\*\*", DOC.read_text(encoding="utf-8"), re.M))
    line_rules = {r for r in documented if r[0] in "GSPUL" or r.startswith(("SU", "K1", "K2", "R1", "R2", "R3", "R4"))}
    line_rules -= {"G1", "G3", "G4", "S7"} - {c.rule for c in CASES}  # G1/G3/G4 are about every line
    covered = {c.rule for c in CASES}

    assert line_rules - covered == set()


def test_examples_are_kept_only_when_asked_for() -> None:
    line = "Nov 23 07:27:11 clinic-srv1 sshd[1215]: Failed password for root fr"

    quiet = parse_text(parse_auth_lines, line, tz=OSLO)
    asked = parse_text(parse_auth_lines, line * 1 + "\n" + line, tz=OSLO, examples=1)

    assert quiet.unparsed == 1 and quiet.examples == []
    assert asked.unparsed == 2 and asked.examples == [line]


def test_no_raw_name_or_address_leaves_the_parser() -> None:
    """Rollup keys are pseudonyms: the attempted account and address appear nowhere in the output."""
    line = "Nov 23 07:25:53 clinic-srv1 sshd[1]: Failed password for invalid user zelda from 203.0.113.9 port 5 ssh2"

    result = parse_text(parse_auth_lines, line, tz=OSLO)

    text = repr(result.observations)
    assert "zelda" not in text and "203.0.113" not in text
    keys = {o.name: o.key for o in result.observations if isinstance(o, Rollup)}
    assert keys[FAILED_BY_ACCOUNT] == test_pseudonymiser().account("zelda")
    assert keys[FAILED_BY_NETWORK] == test_pseudonymiser().network("203.0.113.9")


def test_the_remote_host_of_a_util_linux_login_failure_is_its_network() -> None:
    """``login -h`` (telnetd) names the client after FROM: counted by network, pseudonymised as
    sshd's addresses are; a terminal after FROM is a local login, with no network."""
    lines = (
        "Nov 23 07:35:02 clinic-srv1 login[2403]: FAILED LOGIN 1 FROM 192.0.2.4 FOR bob, Authentication failure\n"
        "Nov 23 07:35:03 clinic-srv1 login[2404]: FAILED LOGIN 1 FROM tty2 FOR bob, Authentication failure\n"
    )

    result = parse_text(parse_auth_lines, lines, tz=OSLO)

    assert "192.0.2" not in repr(result.observations)
    networks = [(o.key, o.value) for o in result.observations if isinstance(o, Rollup) and o.name == FAILED_BY_NETWORK]
    assert networks == [(test_pseudonymiser().network("192.0.2.4"), 1.0)]
    assert sum(failed_logins(result).values()) == 2


def test_counts_are_aggregated_per_block() -> None:
    """Many attempts become one Count per series and one Rollup per (name, day, key)."""
    line = "Nov 23 07:25:53 clinic-srv1 sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2\n"

    result = parse_text(parse_auth_lines, line * 500, tz=OSLO)

    counts = [o for o in result.observations if isinstance(o, Count)]
    rollups = [o for o in result.observations if isinstance(o, Rollup)]
    assert [(c.metric, c.value) for c in counts] == [(FAILED_LOGINS, 500.0)]
    assert sorted((r.name, r.value) for r in rollups) == [(FAILED_BY_ACCOUNT, 500.0), (FAILED_BY_NETWORK, 500.0)]


def test_addresses_in_one_slash_24_are_one_network() -> None:
    lines = "".join(
        f"Nov 23 07:25:{n:02} h sshd[1]: Failed password for root from 198.51.100.{n} port 5 ssh2\n" for n in range(1, 11)
    )

    result = parse_text(parse_auth_lines, lines, tz=OSLO)

    networks = [o for o in result.observations if isinstance(o, Rollup) and o.name == FAILED_BY_NETWORK]
    assert len(networks) == 1 and networks[0].value == 10
    assert networks[0].first_seen == datetime(2026, 11, 23, 6, 25, 1, tzinfo=timezone.utc)
    assert networks[0].last_seen == datetime(2026, 11, 23, 6, 25, 10, tzinfo=timezone.utc)


# ---------------------------------------------------------------------------------------------
# time stamps (G4)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Nov 23 07:25:53 h sshd[1]: x", datetime(2026, 11, 23, 6, 25, 53, tzinfo=timezone.utc)),
        ("Jul  3 21:44:07 h sshd[1]: x", datetime(2026, 7, 3, 19, 44, 7, tzinfo=timezone.utc)),
        ("Feb 7 16:01:07 h sshd[1]: x", datetime(2026, 2, 7, 15, 1, 7, tzinfo=timezone.utc)),
        ("Dec 31 23:59:59 h sshd[1]: x", datetime(2025, 12, 31, 22, 59, 59, tzinfo=timezone.utc)),
        ("2026-11-23T07:25:53.123456+01:00 h sshd[1]: x", datetime(2026, 11, 23, 6, 25, 53, tzinfo=timezone.utc)),
        ("2024-03-01T08:00:00+0000 h sshd[1]: x", datetime(2024, 3, 1, 8, 0, 0, tzinfo=timezone.utc)),
        ("2024-03-01T08:00:00Z h sshd[1]: x", datetime(2024, 3, 1, 8, 0, 0, tzinfo=timezone.utc)),
        ("2022-03-28T14:27:30+00 h sshd[1]: x", datetime(2022, 3, 28, 14, 27, 30, tzinfo=timezone.utc)),
        # half-hour offsets, and an RFC 3339 stamp without one: local time, as a classic stamp is
        ("2026-11-23T07:25:53+05:30 h sshd[1]: x", datetime(2026, 11, 23, 1, 55, 53, tzinfo=timezone.utc)),
        ("2026-11-23T07:25:53.5-03:30 h sshd[1]: x", datetime(2026, 11, 23, 10, 55, 53, tzinfo=timezone.utc)),
        ("2026-11-23 07:25:53 h sshd[1]: x", datetime(2026, 11, 23, 6, 25, 53, tzinfo=timezone.utc)),
        ("2026-07-03T21:44:07 h sshd[1]: x", datetime(2026, 7, 3, 19, 44, 7, tzinfo=timezone.utc)),
        ("2015 Nov 13 13:40:01 h sshd[1]: x", datetime(2015, 11, 13, 12, 40, 1, tzinfo=timezone.utc)),
        ("<38>1 2019-07-08T17:40:16.954167-04:00 h sshd 1 - - x", datetime(2019, 7, 8, 21, 40, 16, tzinfo=timezone.utc)),
    ],
)
def test_time_stamps(line: str, expected: datetime) -> None:
    """Classic stamps are Oslo time in the year that is not after the file's mtime (+1 day)."""
    clock = Clock(EPOCH, OSLO)

    when, program, message = split_line(line, clock)  # type: ignore[misc]

    assert when == expected.timestamp()
    assert (program, message) == ("sshd", "x")


def test_a_stamp_one_day_ahead_of_the_file_is_still_this_year() -> None:
    clock = Clock(datetime(2026, 1, 1, 0, 30, tzinfo=timezone.utc), OSLO)

    when, _, _ = split_line("Jan  2 00:10:00 h sshd[1]: x", clock)  # type: ignore[misc]
    last_year, _, _ = split_line("Jan  3 00:10:00 h sshd[1]: x", clock)  # type: ignore[misc]

    assert when == datetime(2026, 1, 1, 23, 10, tzinfo=timezone.utc).timestamp()
    assert last_year == datetime(2025, 1, 2, 23, 10, tzinfo=timezone.utc).timestamp()


def test_a_stamp_exactly_one_day_ahead_of_the_file_is_still_this_year() -> None:
    """The hour a day after the file's mtime is the last hour of this year's reading, not last year's."""
    clock = Clock(datetime(2025, 12, 31, 23, 0, tzinfo=timezone.utc), OSLO)  # Jan 1, 00:00 in Oslo

    when, _, _ = split_line("Jan  2 00:00:00 h sshd[1]: x", clock)  # type: ignore[misc]

    assert when == datetime(2026, 1, 1, 23, 0, tzinfo=timezone.utc).timestamp()


def test_feb_29_read_in_a_year_without_one_is_last_leap_day() -> None:
    """No Feb 29 in the file's year: the stamp is the previous year's, when there was one."""
    clock = Clock(datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc), OSLO)

    when, _, _ = split_line("Feb 29 12:00:00 h sshd[1]: x", clock)  # type: ignore[misc]
    none, _, _ = split_line("Feb 29 12:00:00 h sshd[1]: x", Clock(datetime(2027, 3, 10, tzinfo=timezone.utc), OSLO))  # type: ignore[misc]

    assert when == datetime(2024, 2, 29, 11, 0, tzinfo=timezone.utc).timestamp()
    assert none is None  # neither 2027 nor 2026 had one: the file's date says nothing of 2024


def test_rollup_days_are_utc_days() -> None:
    """00:30 in Oslo on Nov 24 is 23:30 UTC on Nov 23."""
    line = "Nov 24 00:30:00 h sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2"

    result = parse_text(parse_auth_lines, line, tz=OSLO, now=EPOCH + timedelta(days=2))

    days = {o.day for o in result.observations if isinstance(o, Rollup)}
    assert days == {date(2026, 11, 23)}


def test_a_line_without_stamp_is_dated_by_the_file() -> None:
    mtime = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)

    result = parse_text(parse_auth_lines, "srv sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2", mtime=mtime)

    assert {o.first_seen for o in result.observations if isinstance(o, Rollup)} == {mtime}


@pytest.mark.parametrize(
    ("line", "program", "message"),
    [
        ("Mar  3 00:17:22 [sshd]: User root from 1.2.3.4 not allowed", "sshd", "User root from 1.2.3.4 not allowed"),
        ("Jun 25 23:53:34 [sshd] User root from 1.2.3.4 not allowed", "sshd", "User root from 1.2.3.4 not allowed"),
        ("May 12 09:47:54 vaio sshd(pam_unix)[19939]: authentication failure;", "sshd(pam_unix)", "authentication failure;"),
        ("Jan 22 19:18:59 host gdm-password]: pam_unix(x:auth): y", "gdm-password", "pam_unix(x:auth): y"),
        ("Nov 23 07:32:00 h polkitd(authority=local): pam_unix(polkit-1:auth): z", "polkitd(authority=local)", "pam_unix(polkit-1:auth): z"),
        ("2020-03-23 06:47:42.801612-0700  localhost sshd[3186]: m", "sshd", "m"),
    ],
)
def test_tags(line: str, program: str, message: str) -> None:
    _, got_program, got_message = split_line(line, Clock(EPOCH, OSLO))  # type: ignore[misc]

    assert (got_program, got_message) == (program, message)


# ---------------------------------------------------------------------------------------------
# the prefilter


def test_the_prefilter_finds_every_line_that_counts() -> None:
    """No line with a verdict other than ignored is missed by the byte-level prefilter."""
    data = ("\n".join(c.line for c in CASES) + "\n").encode()
    spans, dropped = candidate_lines(data)

    found = {data[s:e].decode() for s, e in spans}
    counted = {c.line for c in CASES if c.expect != "ignored"}
    assert counted <= found
    own_verdict_pam = re.compile(
        r"pam_unix\((sshd|sudo|su|su-l|login):auth\): authentication failure|"
        r" (sshd|sshd-session|sudo|su|login)(\[\d+\])?: PAM \d+ more authentication failure"
    )
    assert dropped == sum(1 for c in CASES if own_verdict_pam.search(c.line))


def test_the_prefilter_drops_pam_lines_of_services_with_their_own_verdict() -> None:
    line = b"Nov 23 07:29:08 h sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root\n"

    spans, dropped = candidate_lines(line * 3)

    assert (spans, dropped) == ([], 3)


def test_the_prefilter_finds_an_anchor_right_after_a_byte_that_starts_none() -> None:
    """Each scan goes on from the byte after a miss: an empty name in quotes puts the quote of
    "' changed by '" right after another quote, and that line counts (a password reset)."""
    data = b"Nov 23 07:00:00 h passwd[1]: password for '' changed by 'root'\n"

    spans, _ = candidate_lines(data)

    assert spans == [(0, len(data) - 1)]
    assert parse_text(parse_auth_lines, data).parsed == 1


def test_the_prefilter_keeps_pam_counts_of_services_without_their_own_verdict() -> None:
    """"PAM n more authentication failures" is passed over only for sshd, sudo, su and login."""
    line = b"Nov 23 07:00:00 h gdm-password]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=:0 ruser= rhost=  user=carol\n"

    assert candidate_lines(line) == ([(0, len(line) - 1)], 0)
    assert parse_text(parse_auth_lines, line).parsed == 1


def test_classic_stamps_take_their_year_from_the_file_not_from_now() -> None:
    """Read in November, a file last written in January: its March lines are last year's."""
    line = "Mar  1 10:00:00 h sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2"
    mtime = datetime(2026, 1, 1, tzinfo=timezone.utc)

    result = parse_text(parse_auth_lines, line, tz=OSLO, mtime=mtime, now=EPOCH)

    assert {o.day for o in result.observations if isinstance(o, Rollup)} == {date(2025, 3, 1)}


def test_crlf_lines() -> None:
    data = b"Nov 23 07:25:53 h sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2\r\n"

    result = parse_text(parse_auth_lines, data, tz=OSLO)

    assert verdict(result) == "fail sshd bad_password 1"


def test_an_empty_block() -> None:
    result = parse_auth_lines(TextBlock(b"", "x", EPOCH, 0), _ctx())

    assert (result.parsed, result.ignored, result.unparsed, result.observations) == (0, 0, 0, [])


def _ctx():  # type: ignore[no-untyped-def]
    from normagent import ParseContext

    return ParseContext(now=EPOCH, tz=OSLO, pseudonymise=test_pseudonymiser())


# ---------------------------------------------------------------------------------------------
# classify() directly, for the journal's sake: the identifier stands in for the tag


@pytest.mark.parametrize(
    ("program", "message", "expected"),
    [
        ("sshd", "Failed password for root from 203.0.113.9 port 5 ssh2", ("fail", "sshd", "bad_password", 1, "root", "203.0.113.9")),
        ("sshd-session", "Failed password for invalid user  from 192.0.2.68 port 34916 ssh2", ("fail", "sshd", "unknown_user", 1, "", "192.0.2.68")),
        ("sudo", "   alice : 2 incorrect password attempts ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/ls", ("fail", "sudo", "bad_password", 2, "alice", None)),
        ("gdm-password]", "pam_unix(gdm-password:auth): authentication failure; logname= uid=0 euid=0 tty=/dev/tty1 ruser= rhost=  user=carol", ("fail", "gdm", "bad_password", 1, "carol", None)),
        # pam_unix's key=value tail: rhost= before user=, user= alone, user= empty, no user= at all
        ("gdm-password]", "pam_unix(gdm-password:auth): authentication failure; logname= uid=0 euid=0 tty=:0 ruser= rhost=192.0.2.7  user=carol", ("fail", "gdm", "bad_password", 1, "carol", "192.0.2.7")),
        ("gdm-password]", "pam_unix(gdm-password:auth): authentication failure; user=bob", ("fail", "gdm", "bad_password", 1, "bob", None)),
        ("gdm-password]", "pam_unix(gdm-password:auth): authentication failure; user=", ("fail", "gdm", "unknown_user", 1, None, None)),
        ("gdm-password]", "pam_unix(gdm-password:auth): authentication failure; logname= uid=0 euid=0 tty=:0 ruser= rhost=192.0.2.7", ("fail", "gdm", "unknown_user", 1, None, "192.0.2.7")),
        ("gdm-password]", "pam_unix(gdm-password:auth): authentication failure; rhost=h user=dave", ("fail", "gdm", "bad_password", 1, "dave", "h")),
        ("sshd", "Accepted password for alice from 192.0.2.5 port 50022 ssh2", ("success", "sshd", "50022", 1, "alice", "192.0.2.5")),
        ("sshd", "Failed publickey for alice from 10.20.1.9 port 50000 ssh2", ("offer", "sshd", "50000", 1, "alice", "10.20.1.9")),
        ("sshd", "Failed publickey for alice from 10.20.1.9 port 22 ssh2", ("offer", "sshd", "22", 1, "alice", "10.20.1.9")),
        # sshd's PAM lines: an illegal user, or PAM's "User not known", is an unknown user
        ("sshd", "PAM: Authentication failure for illegal user bob from 192.0.2.3", ("fail", "sshd", "unknown_user", 1, "bob", "192.0.2.3")),
        ("sshd", "PAM: User not known to the underlying authentication module for bob from 192.0.2.3", ("fail", "sshd", "unknown_user", 1, "bob", "192.0.2.3")),
        ("sshd", "PAM: Authentication failure for bob from 192.0.2.3", ("fail", "sshd", "bad_password", 1, "bob", "192.0.2.3")),
        ("sshd", "Failed password for a b from 192.0.2.1 port 22 ssh2", UNPARSED),  # no valid user has a space
        ("su", "FAILED SU (to root) alice on pts/0", ("fail", "su", "bad_password", 1, "root", None)),
        # pam_unix's chauthtok line without a service in the tag: its program names the source
        ("passwd", "pam_unix: password changed for bob", ("reset", "passwd", "unknown", 1, "bob", None)),
        ("sshd", "pam_unix: password changed for bob", ("reset", "pam", "unknown", 1, "bob", None)),
        # login (L1, L2): util-linux's FROM is the remote host (login -h) or else the terminal;
        # shadow writes " on '<tty>'" and, for a remote login, " from '<host>'"
        ("login", "FAILED LOGIN 1 FROM 192.0.2.4 FOR bob, Authentication failure", ("fail", "login", "bad_password", 1, "bob", "192.0.2.4")),
        ("login", "FAILED LOGIN 2 FROM telnet.example.net FOR bob, Authentication failure", ("fail", "login", "bad_password", 1, "bob", "telnet.example.net")),
        ("login", "FAILED LOGIN SESSION FROM 192.0.2.4 FOR bob, Permission denied", ("fail", "login", "not_allowed", 1, "bob", "192.0.2.4")),
        ("login", "TOO MANY LOGIN TRIES (5) FROM 2001:db8::4 FOR (unknown), Maximum number of tries exceeded", ("fail", "login", "unknown_user", 1, "(unknown)", "2001:db8::4")),
        ("login", "FAILED LOGIN 1 FROM tty1 FOR bob, Authentication failure", ("fail", "login", "bad_password", 1, "bob", None)),
        ("login", "FAILED LOGIN 1 FROM pts/0 FOR bob, Authentication failure", ("fail", "login", "bad_password", 1, "bob", None)),
        ("login", "FAILED LOGIN 1 FROM ttyS0 FOR bob, Authentication failure", ("fail", "login", "bad_password", 1, "bob", None)),
        ("login", "FAILED LOGIN 1 FROM console FOR bob, Authentication failure", ("fail", "login", "bad_password", 1, "bob", None)),
        ("login", "FAILED LOGIN 1 FROM <unknown> FOR bob, Authentication failure", ("fail", "login", "bad_password", 1, "bob", None)),
        ("login", "FAILED LOGIN (1) on '/dev/tty1' FOR 'bob', Authentication failure", ("fail", "login", "bad_password", 1, "bob", None)),
        ("login", "FAILED LOGIN (1) on '/dev/pts/4' from '192.0.2.4' FOR 'bob', Authentication failure", ("fail", "login", "bad_password", 1, "bob", "192.0.2.4")),
        ("systemd", "Failed to start foo.service.", IGNORED),
        ("sshd", "Failed password", UNPARSED),
    ],
)
def test_classify(program: str, message: str, expected: object) -> None:
    assert classify(program, message) == expected


# ---------------------------------------------------------------------------------------------
# sshd sessions: keys offered before a login (S11)

KEY = "RSA SHA256:Zm9vYmFyYmF6cXV4cXV1eHh5enp5eHh5enp5eHh5enp5eA"
STAMPS = ["Nov 23 07:40:0{s} clinic-srv1", "2026-11-23T07:40:0{s}.000001+01:00 clinic-srv1", "Nov 23 07:40:0{s}"]  # the last: no host


def session(stamp: str, *messages: str) -> str:
    return "".join(f"{stamp.format(s=n)} sshd[3001]: {m}\n" for n, m in enumerate(messages))


def failed_logins(result: object) -> dict[tuple[tuple[str, str], ...], float]:
    return {o.labels: o.value for o in result.observations if isinstance(o, Count) and o.metric == FAILED_LOGINS}  # type: ignore[attr-defined]


@pytest.mark.parametrize("stamp", STAMPS)
def test_keys_a_client_offers_before_it_logs_in_are_no_failed_logins(stamp: str) -> None:
    """An agent with several keys: two refused, the third accepted, one session: no attack in the numbers."""
    text = session(
        stamp,
        f"Failed publickey for alice from 10.20.1.9 port 50000 ssh2: {KEY}",
        "message repeated 2 times: [ Failed publickey for alice from 10.20.1.9 port 50000 ssh2: ECDSA SHA256:abc]",
        "Accepted publickey for alice from 10.20.1.9 port 50000 ssh2: ED25519 SHA256:def",
    )

    result = parse_text(parse_auth_lines, text, tz=OSLO)

    assert failed_logins(result) == {}
    assert {o.name for o in result.observations if isinstance(o, Rollup)} == {"access.success_by_network"}
    assert (result.parsed, result.ignored, result.unparsed) == (1, 2, 0)


@pytest.mark.parametrize("stamp", STAMPS)
def test_keys_refused_in_a_session_that_does_not_log_in_are_failed_logins(stamp: str) -> None:
    """The same offers, but the login that follows is another connection (another port) or a failure."""
    text = session(
        stamp,
        f"Failed publickey for alice from 10.20.1.9 port 50000 ssh2: {KEY}",
        f"Failed hostbased for alice from 10.20.1.9 port 50000 ssh2: {KEY}",
        "Accepted publickey for alice from 10.20.1.9 port 50001 ssh2: ED25519 SHA256:def",
        "Accepted publickey for bob from 10.20.1.9 port 50000 ssh2: ED25519 SHA256:def",
    )

    result = parse_text(parse_auth_lines, text, tz=OSLO)

    assert failed_logins(result) == {(("reason", "bad_key"), ("source", "sshd")): 2.0}
    assert result.parsed == 4


@pytest.mark.parametrize(("offer_stamp", "login_stamp"), [(STAMPS[0], STAMPS[2]), (STAMPS[2], STAMPS[0]), (STAMPS[1], STAMPS[2])])
def test_a_login_leaves_out_the_offers_of_its_session_whichever_way_each_line_is_read(offer_stamp: str, login_stamp: str) -> None:
    """sshd's fast path reads lines with a host (in bytes), the general way the others (in text): an
    offer read one way and the login of its session read the other are still one session (S11)."""
    text = (
        session(offer_stamp, f"Failed publickey for alice from 10.20.1.9 port 50000 ssh2: {KEY}")
        + session(login_stamp, "", "Accepted publickey for alice from 10.20.1.9 port 50000 ssh2: ED25519 SHA256:def").split("\n", 1)[1]
        + session(offer_stamp, f"Failed publickey for bob from 10.20.1.9 port 50002 ssh2: {KEY}")
    )

    result = parse_text(parse_auth_lines, text, tz=OSLO)

    assert failed_logins(result) == {(("reason", "bad_key"), ("source", "sshd")): 1.0}  # bob's: no login
    assert (result.parsed, result.ignored, result.unparsed) == (2, 1, 0)


def test_a_password_refused_before_a_login_is_still_a_failed_login() -> None:
    """S11 is about keys offered: a wrong password typed in the session that then logs in is an attempt (S1)."""
    text = session(
        STAMPS[0],
        f"Failed publickey for alice from 10.20.1.9 port 50000 ssh2: {KEY}",
        "Failed password for alice from 10.20.1.9 port 50000 ssh2",
        "Accepted password for alice from 10.20.1.9 port 50000 ssh2",
    )

    result = parse_text(parse_auth_lines, text, tz=OSLO)

    assert failed_logins(result) == {(("reason", "bad_password"), ("source", "sshd")): 1.0}


def test_none_then_a_password_for_an_invalid_user_is_one_attempt() -> None:
    """S10: the client's first request names no credential; the password after it is the attempt."""
    text = session(
        STAMPS[0],
        "Invalid user bb from 192.0.2.101 port 1154",
        "Failed none for invalid user bb from 192.0.2.101 port 1154 ssh2",
        "Failed password for invalid user bb from 192.0.2.101 port 1154 ssh2",
    )

    result = parse_text(parse_auth_lines, text, tz=OSLO)

    assert failed_logins(result) == {(("reason", "unknown_user"), ("source", "sshd")): 1.0}


# ---------------------------------------------------------------------------------------------
# NUL padding left by a crash (G5)

ATTEMPT = "Nov 23 07:25:53 clinic-srv1 sshd[1201]: Failed password for root from 203.0.113.9 port 50412 ssh2"


@pytest.mark.parametrize(
    "padded",
    [
        "\x00\x00\x00" + ATTEMPT,
        "\x00" * 4000 + ATTEMPT,
        "Nov 23 07:25:50 clinic-srv1 sshd[1200]: Failed pass" + "\x00" * 300 + ATTEMPT,  # a line cut by the crash
    ],
    ids=["three", "a-page", "after-a-cut-line"],
)
def test_nul_padding_before_a_line_does_not_lose_the_attempt(padded: str) -> None:
    clean = parse_text(parse_auth_lines, ATTEMPT, tz=OSLO)

    result = parse_text(parse_auth_lines, padded + "\n" + ATTEMPT, tz=OSLO)

    assert (result.parsed, result.unparsed) == (2, 0)
    assert failed_logins(result) == {labels: 2 * n for labels, n in failed_logins(clean).items()}


# ---------------------------------------------------------------------------------------------
# account names: Linux tells cases apart, Windows does not (rule G6)


def test_linux_account_names_that_differ_in_case_are_different_accounts() -> None:
    text = "".join(
        f"Nov 23 07:25:5{n} clinic-srv1 sshd[1201]: Failed password for {name} from 203.0.113.9 port 50412 ssh2\n"
        for n, name in enumerate(("admin", "Admin", "ADMIN"))
    )

    result = parse_text(parse_auth_lines, text, tz=OSLO)

    keys = {o.key for o in result.observations if isinstance(o, Rollup) and o.name == FAILED_BY_ACCOUNT}
    pseudonyms = test_pseudonymiser()
    assert keys == {pseudonyms.account(n) for n in ("admin", "Admin", "ADMIN")} and len(keys) == 3


@pytest.mark.parametrize("placeholder", ["UNKNOWN", "unknown", "[UNKNOWN]", "LOCALHOST", "localhost", "-", ""])
def test_an_address_placeholder_is_no_network_whatever_its_case(placeholder: str) -> None:
    # sshd prints UNKNOWN for a peer it could not name; it is no source to count by network.
    from normagent.plugins.access.tally import network_pseudonym

    assert network_pseudonym(test_pseudonymiser(), placeholder) is None
    assert network_pseudonym(test_pseudonymiser(), "192.0.2.4") is not None


def test_journal_entries_given_to_the_auth_log_parser_are_ignored() -> None:
    """``normagent parse`` hands every parser every kind of block (the ``Parser`` protocol): the
    auth.log parser counts a journal export's entries as ignored, as the other line parsers do,
    instead of failing on a block that has no lines."""
    from normagent import JournalEntry, RecordBlock

    entry = JournalEntry({"MESSAGE": "Failed password for root from 203.0.113.9 port 5 ssh2"}, EPOCH, "c1")
    result = parse_auth_lines(RecordBlock((entry, entry), "journal"), _ctx())
    assert (result.parsed, result.ignored, result.unparsed, result.observations) == (0, 2, 0, [])
