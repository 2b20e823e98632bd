"""The Linux parser's shortcuts give the answers of the plain rules, line for line.

``parse_auth_lines`` finds candidate lines with byte scans, reads sshd's plain Failed/Accepted
lines without decoding them (``_Quick``) and cuts the other candidates' stamp and tag in bytes.
These tests hold each shortcut to the plain definition: every line on its own through
``split_line`` + ``classify`` + the tally, with no prefilter at all (on real lines), the general
way after the prefilter (on real lines garbled anywhere), and the anchor texts as regular
expressions (for the prefilter).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from datetime import timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from normagent import ParseContext, ParseResult, Rollup, TextBlock
from normagent.plugins.access.parse import (
    IGNORED,
    UNPARSED,
    Clock,
    _own_verdict_pam,
    _parse_lines,
    apply,
    candidate_lines,
    classify,
    parse_auth_lines,
    split_line,
    split_line_slow,
)
from normagent.plugins.access.tally import FAILED_LOGINS, Tally
from normagent.testing import EPOCH, parse_text, test_pseudonymiser
from tests.plugins.access.cases import load_cases, verdict

ROOT = Path(__file__).parents[3]
FAIL2BAN = ROOT / "tests" / "fixtures" / "logs" / "fail2ban"
# Zones with whole-hour and half-hour offsets (an hour of local time then straddles a UTC day),
# with and without daylight saving time.
ZONES = [ZoneInfo("Europe/Oslo"), timezone.utc, ZoneInfo("Asia/Kolkata"), ZoneInfo("America/St_Johns")]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _generated(lines: int, seed: int) -> list[str]:
    """Lines of bench/gen_authlog.py: every kind of line a clinic server writes, both stamp styles."""
    path = ROOT / "bench" / "gen_authlog.py"
    spec = importlib.util.spec_from_file_location("gen_authlog_for_fastpaths", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_authlog_for_fastpaths"] = module
    spec.loader.exec_module(module)
    out, _ = module.generate(lines, seed, EPOCH - timedelta(minutes=5))
    return [line.rstrip("\n") for line in out]


def _fail2ban_lines() -> list[str]:
    return [
        line
        for path in sorted(FAIL2BAN.iterdir())
        if path.is_file() and path.suffix not in (".md",) and not path.name.startswith("LICENSE")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        if line and not line.startswith("#")
    ]


# Real lines: the annotated fixture, fail2ban's test logs, and a generated day (of which only a
# few hundred lines hold an anchor, so those are sampled on their own as well).
GENERATED = _generated(4000, 7)
REAL = [c.line for c in load_cases()] + _fail2ban_lines() + GENERATED
ANCHORED = [line for line in REAL if re.search(r"Failed |FAILED |Accepted |; logname=|; TTY=|PAM|TOO MANY|'|pam_faillock", line)]
real_lines = st.one_of(st.sampled_from(REAL), st.sampled_from(ANCHORED))


def ctx_for(tz: object) -> ParseContext:
    return ParseContext(now=EPOCH, tz=tz, pseudonymise=test_pseudonymiser(), examples=3)


def block(lines: list[str]) -> TextBlock:
    data = "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")
    return TextBlock(data=data, origin="test", mtime=EPOCH, lines=len(lines))


def line_by_line(data: bytes, ctx: ParseContext) -> ParseResult:
    """The rules with no prefilter and no shortcut: each line split, classified and tallied alone."""
    tally = Tally(ctx)
    clock = Clock(EPOCH, ctx.tz)
    result = ParseResult()
    for raw in data.split(b"\n")[:-1]:
        split = split_line(raw.decode("utf-8", "replace").rstrip("\r"), clock)
        outcome = UNPARSED if split is None else classify(split[1], split[2])
        if outcome is IGNORED or outcome is UNPARSED:
            continue
        result.parsed += 1
        when = split[0] if split is not None and split[0] is not None else EPOCH.timestamp()
        apply(tally, outcome, when)  # type: ignore[arg-type]
    result.parsed -= tally.settle()  # key offers of a session that logged in (S11)
    result.observations = tally.observations()
    return result


def summary(result: ParseResult) -> tuple[object, ...]:
    """Everything a result says, in a comparable form (rollup times and values included)."""
    return (result.parsed, result.ignored, result.unparsed, sorted(map(repr, result.observations)), result.examples)


# ---------------------------------------------------------------------------------------------
# the whole parser against the plain rules


@SETTINGS
@given(st.lists(real_lines, min_size=1, max_size=60), st.sampled_from(ZONES))
def test_real_lines_count_as_the_rules_say_line_by_line(lines: list[str], tz: object) -> None:
    """Any mix of real lines: the same counts and rollups as each line through the plain rules."""
    ctx = ctx_for(tz)
    data = block(lines)

    got = parse_auth_lines(data, ctx)
    want = line_by_line(data.data, ctx)

    assert (got.parsed, sorted(map(repr, got.observations))) == (want.parsed, sorted(map(repr, want.observations)))


def test_a_generated_day_counts_as_the_rules_say_line_by_line() -> None:
    """All of a generated log at once (hundreds of attempts, both stamp styles, sessions)."""
    ctx = ctx_for(ZONES[0])
    data = block(GENERATED)

    got = parse_auth_lines(data, ctx)

    assert got.parsed > 100
    assert (got.parsed, sorted(map(repr, got.observations))) == (
        line_by_line(data.data, ctx).parsed,
        sorted(map(repr, line_by_line(data.data, ctx).observations)),
    )


# ---------------------------------------------------------------------------------------------
# the shortcuts against the general way after the prefilter, on garbled lines

INSERTS = ["", " ", "\t", "x", ": ", "[", "]", "(", ")", ":", "0", "9", "T", ".", ",", "-", "+", "Z", "é", "²", "\r",
           "\x00", "\x1c", "\xa0", "'", ";", " from 1.2.3.4", "port 5 ssh2", "invalid user ", "Failed ", "Accepted "]


@SETTINGS
@given(
    st.lists(
        st.tuples(real_lines, st.integers(min_value=0, max_value=160), st.sampled_from(INSERTS)),
        min_size=1,
        max_size=25,
    ),
    st.sampled_from(ZONES),
)
def test_the_shortcuts_agree_with_the_general_way_on_garbled_lines(edits: list[tuple[str, int, str]], tz: object) -> None:
    """Any real line, whole or edited at any point: the same outcome, counts, rollups and examples."""
    # An empty insert deletes the character at the cut instead.
    lines = [line if cut >= len(line) else line[:cut] + insert + line[cut + (not insert) :] for line, cut, insert in edits]
    data = block(lines)
    ctx = ctx_for(tz)

    assert summary(_parse_lines(data, ctx, fast=True)) == summary(_parse_lines(data, ctx, fast=False))


@SETTINGS
@given(
    st.lists(
        st.tuples(real_lines, st.integers(min_value=0, max_value=5000), st.one_of(st.none(), st.tuples(real_lines, st.integers(0, 200)))),
        min_size=1,
        max_size=25,
    ),
    st.sampled_from(ZONES),
)
def test_nul_padding_before_real_lines_changes_nothing(edits: list[tuple[str, int, tuple[str, int] | None]], tz: object) -> None:
    """A crash leaves NULs (after a line it cut) before the next line: each attempt counts as without them."""
    clean = [line for line, _, _ in edits]
    padded = [(cut[0][: cut[1]] if cut else "") + "\x00" * max(nuls, 1) + line for line, nuls, cut in edits]
    ctx = ctx_for(tz)

    got = parse_auth_lines(block(padded), ctx)
    want = parse_auth_lines(block(clean), ctx)

    assert (got.parsed, got.unparsed, sorted(map(repr, got.observations))) == (want.parsed, want.unparsed, sorted(map(repr, want.observations)))
    assert summary(got) == summary(_parse_lines(block(padded), ctx, fast=False))
    assert (got.parsed, sorted(map(repr, got.observations))) == (line_by_line(block(padded).data, ctx).parsed, sorted(map(repr, line_by_line(block(padded).data, ctx).observations)))


MESSAGES = [
    "sshd[4242]: Failed password for root from 203.0.113.9 port 50412 ssh2",
    "sshd-session[4242]: Failed password for invalid user admin from 2001:db8::7 port 22 ssh2",
    "sshd[4242]: Failed publickey for git from 198.51.100.2 port 22 ssh2: RSA SHA256:abcdef",
    "sshd[4242]: Accepted publickey for backup from 10.20.1.9 port 61533 ssh2: ED25519 SHA256:0g+3/3e",
    "su[77]: FAILED SU (to root) bob on pts/2",
    "gdm-password]: pam_unix(gdm-password:auth): authentication failure; logname= uid=0 euid=0 tty=/dev/tty1 ruser= rhost=  user=carol",
]
STAMPS = [
    "Nov 23 07:25:53", "Nov  3 07:25:53", "Jan  1 00:00:00", "Dec 31 23:59:59", "Feb 29 12:00:00", "Feb 30 12:00:00",
    "Foo 23 07:25:53", "Nov 23 24:00:00", "Nov 23 07:60:60", "Nov 23 07:99:99", "Mar 29 02:30:00", "Oct 25 02:30:00",
    "Nov 23 05:30:00", "Nov 23 23:30:00", "Nov 32 07:00:00", "Nov 00 07:00:00", "Nov 23 07:00:60", "Nov 23 07:59:61",
    "2026-11-23T07:25:53+01:00", "2026-11-23T07:25:53.123456+01:00", "2026-11-23T07:25:53,5-03:30",
    "2026-11-23T25:00:00+01:00", "2026-02-30T07:00:00+01:00", "2026-11-23T23:59:60+05:30", "2026-11-23T00:10:00+05:30",
    "2026-11-23T07:25:53Z", "2026-11-23T07:25:53+0100", "2026-11-23 07:25:53+01:00", "0000-01-01T00:00:00+00:00",
]


@pytest.mark.parametrize("tz", ZONES, ids=str)
@pytest.mark.parametrize("stamp", STAMPS)
def test_every_stamp_is_dated_alike_by_the_shortcuts_and_the_general_way(stamp: str, tz: object) -> None:
    """Odd days, hours and seconds, DST gaps and half-hour zones: the shortcuts date as split_line does."""
    data = block([f"{stamp} clinic-srv1 {message}" for message in MESSAGES])
    ctx = ctx_for(tz)

    assert summary(_parse_lines(data, ctx, fast=True)) == summary(_parse_lines(data, ctx, fast=False))


# Stamps one character off the two shapes split_line cuts by position.
ODD_STAMPS = [
    "2026-11-23T07:25:53xyz+01:00", "2026-11-23T07:25:53.+01:00", "2026-11-23T07:25:53.5a+01:00",
    "2026-11-23T07:25:53,12+01:00", "2026-11-23T07:25:53.1234567+01:00", "2026-11-23T7:25:53+01:00",
    "2026-11-23T07:25:53+01:0", "2026-11-23T07:25:53+1:00", "2026-11-23T07:25:53 +01:00", "2026-11-23T07:25:53+01:00:00",
    "2026-11-23T07:25:53-0130", "2026-11-23T07:2a:53+01:00", "2026-11-23T07:25:5a+01:00", "2026-11-23X07:25:53+01:00",
    "2026/11/23T07:25:53+01:00", "2026-11-23T07-25-53+01:00", "2026-11-23T07:25:53+01;00", "2026-11-23T07:25:53*01:00",
    "Nov 23 7:25:53", "Nov  23 07:25:53", "Nov 23 07:25:5", "Nov 2307:25:53", "nov 23 07:25:53", "NOV 23 07:25:53",
    "Nov 3 07:25:53", "Nov 23 07:25:53.123", "Nov 23 2026 07:25:53", "2026 Nov 23 07:25:53", "Nov x3 07:25:53",
    "Nov 23 07-25:53", "Nov 23 07:25-53", "Nov-23 07:25:53", "Nov 23 0a:25:53", "Nov 23 07:2a:53", "Nov 23 07:25:5a",
    "No 23 07:25:53", "Novx23 07:25:53", "Nov 23 07:25:53x",
]


@pytest.mark.parametrize("stamp", STAMPS + ODD_STAMPS)
def test_the_positional_cut_reads_every_stamp_and_header_as_the_patterns_do(stamp: str) -> None:
    """split_line cuts the two usual shapes by position and hands anything else to the patterns;
    whatever it takes, it must read as split_line_slow does (one clock for all, as in a block)."""
    clock = Clock(EPOCH, ZONES[0])
    for header in HEADERS:
        for line in MESSAGES:
            tag, message = re.match(r"(.*?)(?:\[\d+\])?: (.*)", line).groups()  # type: ignore[union-attr]
            text = f"{stamp} {header.replace('T', tag)} {message}"
            assert split_line(text, clock) == split_line_slow(text, Clock(EPOCH, ZONES[0])), text


def test_lines_out_of_time_order_give_each_row_its_earliest_and_latest_time() -> None:
    """A block's lines need not be in time order (a clock stepped back, files merged): the rows the
    sshd shortcut fills keep the earliest first and the latest last, as the general way does. A
    line whose stamp is no time (Feb 30) goes the general way and stops nothing after it."""
    ctx = ctx_for(timezone.utc)
    messages = [
        "Failed password for root from 203.0.113.9 port 5 ssh2",
        "Failed password for invalid user admin from 203.0.113.9 port 5 ssh2",
        "Accepted password for bob from 203.0.113.9 port 5 ssh2",
    ]
    lines = [f"Feb 30 07:25:00 h sshd[1]: {m}" for m in messages]
    lines += [f"Nov 22 07:25:{s} h sshd[1]: {m}" for s in ("30", "10", "50", "20", "05", "40") for m in messages]
    data = block(lines)

    got = _parse_lines(data, ctx, fast=True)

    assert summary(got) == summary(_parse_lines(data, ctx, fast=False))
    rows = [o for o in got.observations if isinstance(o, Rollup) and o.day.day == 22]  # the Feb 30 lines: the file's day
    assert len(rows) == 4  # by account (2), by network, success by network
    first, last = EPOCH.replace(day=22, minute=25, second=5), EPOCH.replace(day=22, minute=25, second=50)
    assert {(o.first_seen, o.last_seen) for o in rows} == {(first, last)}


def test_where_a_line_sits_in_its_block_does_not_change_its_outcome() -> None:
    """The prefilter scans from the block's first byte: a line whose first byte is an anchor's (a
    message without stamp or tag) is judged at the start of a block as it is after another line."""
    ctx = ctx_for(ZONES[0])
    filler = "Nov 23 07:00:00 h cron[1]: (root) CMD (true)"
    for body in sorted({line.split(": ", 1)[1] for line in REAL[:2000] if ": " in line}):
        alone = parse_auth_lines(block([body]), ctx)
        after = parse_auth_lines(block([filler, body]), ctx)
        assert (alone.parsed, alone.unparsed, alone.ignored + 1, sorted(map(repr, alone.observations))) == (
            after.parsed, after.unparsed, after.ignored, sorted(map(repr, after.observations))
        ), body


# Whole lines one edit off the usual shapes, found by searching such edits for ones that a
# mutant of split_line's guards reads otherwise than the patterns (bench/README.md).
ODD_LINES = [
    "2026-11-23T07:25:53123456+01:00 h gdm-password]: Failed password for root from 203.0.113.9 port 5 ssh2",
    "2026-11-23T07:25:53,\t5-03:30 h gdm-password]: Failed password for root from 203.0.113.9 port 5 ssh2",
    "2026-11-23T07:25:53.a5+01:00 h sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2",
    "2026-11-23T07:25:53+01:0: 0 sshd[4242]: Failed password for root from 203.0.113.9 port 5 ssh2",
    "Nov  3 07:25:53sshd[4242]: Failed password for root from 203.0.113.9 port 5 ssh2",
    "Nov 23 07:25:53xh sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2",
]


@pytest.mark.parametrize("line", ODD_LINES)
def test_the_positional_cut_reads_lines_one_edit_off_as_the_patterns_do(line: str) -> None:
    assert split_line(line, Clock(EPOCH, ZONES[0])) == split_line_slow(line, Clock(EPOCH, ZONES[0]))


# "T" stands for the tag of each of MESSAGES.
HEADERS = [
    "h T[1]:", "h: T[1]:", "h:x T[1]:", "h:: T[1]:", "[h] T[1]:", "h] T[1]:", "h T[x]:", "h T[]:", "h T:", " h T[1]:",
    "h  T[1]:", "h\tT[1]:", "h T[1] :", "h T[1]:\t", "h T(pam_unix)[1]:", "h T-x[1]:", "h.example.org T[1]:",
    "h\\x T[1]:", "h;x T[1]:", "h T[1]]:", "T[1]:", "h x T[1]:", "h T:x[1]:", "h T;x[1]:", "h T:[1]:", "h T]:", "h T)]:",
    "h (T)[1]:", "h T[1][2]:", "h T[1", "h Té[1]:", "é T[1]:", "h T[¹]:",
]


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("stamp", ["Nov 23 07:25:53", "2026-11-23T07:25:53.5+01:00"])
def test_every_host_and_tag_shape_is_read_alike_by_the_shortcuts_and_the_general_way(stamp: str, header: str) -> None:
    """Hosts and tags at the edge of the shape the shortcuts take: the answers of split_line."""
    lines = []
    for line in MESSAGES:
        tag, message = re.match(r"(.*?)(?:\[\d+\])?: (.*)", line).groups()  # type: ignore[union-attr]
        lines.append(f"{stamp} {header.replace('T', tag)} {message}")
    data = block(lines)
    ctx = ctx_for(ZONES[0])

    assert summary(_parse_lines(data, ctx, fast=True)) == summary(_parse_lines(data, ctx, fast=False))


# ---------------------------------------------------------------------------------------------
# the prefilter against the anchor texts

OTHER_ANCHORS = re.compile(
    r"Failed |FAILED |Accepted |pam_faillock\(|chauthtok\): password changed|, deny |' changed by '|change user '"
    r"|TOO MANY LOGIN TRIES|BAD SU |PAM: "
)


def reference_candidates(data: bytes) -> tuple[list[bytes], int]:
    """candidate_lines' definition, line by line: an anchor anywhere, the ";" ones as the line's
    first ";", and ``; logname=`` after an own-verdict pam_unix failure passed over."""
    lines: list[bytes] = []
    passed = 0
    start = 0
    for raw in data.split(b"\n")[:-1]:
        semi = raw.find(b";")
        by_semicolon = semi >= 0 and raw.startswith((b"; logname=", b"; TTY="), semi)
        if by_semicolon and raw.startswith(b"; logname=", semi) and _own_verdict_pam(data, start, start + semi):
            by_semicolon = False
            passed += 1
        if by_semicolon or OTHER_ANCHORS.search(raw.decode("latin-1")):
            lines.append(raw)
        start += len(raw) + 1
    return lines, passed


BYTES = st.sampled_from([b"F", b"A", b";", b"k", b",", b"'", b" ", b"\n", b"\r", b"(", b")", b"M", b"P", b"B", b"T", b"\xff"])


@SETTINGS
@given(
    st.lists(
        st.tuples(real_lines, st.integers(min_value=0, max_value=160), st.lists(BYTES, max_size=3)),
        min_size=1,
        max_size=30,
    )
)
def test_the_prefilter_finds_exactly_the_lines_with_an_anchor(edits: list[tuple[str, int, list[bytes]]]) -> None:
    """Real lines with bytes of the anchors inserted anywhere (a newline splits a line in two)."""
    raws = [line.encode("utf-8", "surrogateescape") for line, _, _ in edits]
    data = b"".join(raw[:cut] + b"".join(insert) + raw[cut:] + b"\n" for raw, (_, cut, insert) in zip(raws, edits))

    spans, passed = candidate_lines(data)

    assert ([data[s:e] for s, e in spans], passed) == reference_candidates(data)


def test_the_prefilter_at_the_edges_of_a_block() -> None:
    """Anchors at the block's first and last bytes, and a block without a final newline."""
    for data in (
        b"Accepted x", b"AM: x\nBAD SU y", b"; TTY=", b"\nFailed ", b"TOO MANY LOGIN TRIES", b"x' changed by '",
        b"OO MANY LOGIN TRIES", b"AD SU x", b"k(x", b"ok): password changed", b"change user 'x'",
        b"x sshd[1]: pam_unix(sshd:auth): authentication failure; TTY=x",
    ):
        spans, _ = candidate_lines(data)
        assert [data[s:e] for s, e in spans] == reference_candidates(data + b"\n")[0]


# ---------------------------------------------------------------------------------------------
# regressions


def test_pam_text_in_a_user_name_does_not_hide_the_attempt() -> None:
    """An attacker picks the name: the P1 text inside it must not make the prefilter drop the line."""
    line = (
        "Nov 23 07:25:53 h sshd[1]: Failed password for invalid user pam_unix(sshd:auth): authentication failure;"
        " logname= from 203.0.113.9 port 5 ssh2"
    )

    result = parse_text(parse_auth_lines, line, tz=ZONES[0])

    assert verdict(result) == "fail sshd unknown_user 1"


def test_an_empty_user_name_is_no_success() -> None:
    """``Accepted ... for  from`` names nobody: the general way ignores it, and so does the fast path."""
    line = "Nov 23 07:25:53 h sshd[1]: Accepted password for  from 203.0.113.9 port 5 ssh2"

    assert verdict(parse_text(parse_auth_lines, line, tz=ZONES[0])) == "ignored"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Nov 23 07:25:53 h sshd[1]: Failed password for invalid user a from 1.2.3.4 port 22 ssh2: b from c", "fail sshd unknown_user 1"),
        ("Nov 23 07:25:53 h sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2: b from c", "fail sshd bad_password 1"),
        ("Nov 23 07:25:53 h sshd[1]: Failed hostbased for root from 1.2.3.4 port 22 ssh2", "fail sshd bad_key 1"),
        ("Nov 23 07:25:53 h sshd[1]: Failed none for invalid user x from 1.2.3.4 port 22 ssh2", "ignored"),
        ("Nov 23 07:25:53 h sshd[1]: Failed none for x from 1.2.3.4 port 22 ssh2", "ignored"),
        ("Nov 23 07:25:53 h sshd[1]: Failed nonesuch for x from 1.2.3.4 port 22 ssh2", "fail sshd bad_password 1"),
        ("Nov 23 07:25:53 h sshd[1]: Failed password for root from 1.2.3.4: port 22 ssh2", "fail sshd bad_password 1"),
        # Other anchors in the key info: still one line, one attempt (or one success).
        *[
            (f"Nov 23 07:25:53 h sshd[1]: {verdict} publickey for root from 1.2.3.4 port 22 ssh2: x{other}y", expected)
            for verdict, expected in (("Failed", "fail sshd bad_key 1"), ("Accepted", "success"))
            for other in ("; TTY=", " ; TTY=", ", deny ", "' changed by '", "pam_faillock(", "chauthtok): password changed",
                          "BAD SU ", "PAM: ", "TOO MANY LOGIN TRIES", " Accepted ", " Failed ", " FAILED ", "change user '")
        ],
    ],
)
def test_sshd_lines_near_the_fast_shape(line: str, expected: str) -> None:
    result = parse_text(parse_auth_lines, line, tz=ZONES[0])

    assert verdict(result) == expected
    assert summary(result) == summary(_parse_lines(block([line]), ctx_for(ZONES[0]), fast=False))


def test_failed_logins_of_the_fast_path_have_their_rollups() -> None:
    """Three attempts, two users, one network: counts and per-day rows as the rules say."""
    lines = [
        "Nov 23 07:25:53 h sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2",
        "Nov 23 07:25:55 h sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2",
        "2026-11-23T07:26:10+01:00 h sshd-session[2]: Failed password for invalid user oracle from 203.0.113.10 port 6 ssh2",
    ]

    result = parse_auth_lines(block(lines), ctx_for(ZONES[0]))

    assert result.parsed == 3
    assert sorted(repr(o) for o in result.observations if getattr(o, "metric", "") == FAILED_LOGINS) == sorted(
        repr(o) for o in line_by_line(block(lines).data, ctx_for(ZONES[0])).observations if getattr(o, "metric", "") == FAILED_LOGINS
    )
    rows = {(o.name, o.key): (o.value, o.first_seen, o.last_seen) for o in result.observations if hasattr(o, "first_seen")}
    network = [v for (name, _), v in rows.items() if name == "access.failed_by_network"]
    assert network == [(3, network[0][1], network[0][1] + timedelta(seconds=17))]


def test_only_short_messages_are_memoised() -> None:
    """The memo of classify is bounded in entries and never holds a long (attacker-sized) message."""
    from normagent.plugins.access.parse import _MEMO_CHARS, _classify_memo

    long_user = "x" * (_MEMO_CHARS + 1)
    lines = [
        f"Nov 23 07:25:53 h su[1]: FAILED SU (to {long_user}) bob on pts/2",
        "Nov 23 07:25:54 h su[1]: FAILED SU (to root) memo-test on pts/2",
    ]
    before = _classify_memo.cache_info()

    result = parse_auth_lines(block(lines), ctx_for(ZONES[0]))

    after = _classify_memo.cache_info()
    assert result.parsed == 2
    assert after.misses + after.hits - before.misses - before.hits == 1
    assert after.maxsize is not None and after.maxsize <= 4096


def test_merged_rows_add_up_with_the_tallys_own() -> None:
    """Rows a parser aggregated itself widen and add to the rows the tally already has."""
    from normagent.plugins.access.tally import FAILED_BY_NETWORK

    ctx = ctx_for(timezone.utc)
    day = int(EPOCH.timestamp() // 86400)
    alone, merged = Tally(ctx), Tally(ctx)
    for tally in (alone, merged):
        tally.fail("sshd", "bad_password", 1, EPOCH.timestamp() + 10, None, "203.0.113.9")
    for when in (EPOCH.timestamp() + 5, EPOCH.timestamp() + 20):
        alone.fail("sshd", "bad_password", 1, when, None, "203.0.113.9")
    merged.count_fails("sshd", "bad_password", 2)

    merged.merge_raw_rows(FAILED_BY_NETWORK, {(day, b"203.0.113.9"): [2, EPOCH.timestamp() + 5, EPOCH.timestamp() + 20]})

    assert sorted(map(repr, merged.observations())) == sorted(map(repr, alone.observations()))


def test_the_minute_second_table_is_built_by_the_python_scan_not_at_import() -> None:
    """Its 3,660 keys are 0.4 MB that only the Python scan uses (the compiled scanner's fallback
    and reference): the plugin loaded as at start has not built it; the Python scan's first
    block with a sshd line builds it, once, with the same seconds."""
    import subprocess

    probe = (
        "import normagent.plugins.access as plugin, normagent.plugins.access.parse as p\n"
        "before = p._minute_second.cache_info().currsize\n"
        "line = b'Nov 23 07:12:09 h sshd[1]: Failed password for root from 192.0.2.7 port 22 ssh2\\n'\n"
        "spans, dropped, read, heads = p.scan_lines(line * 2, lambda key: (0.0, None))\n"
        "p.scan_lines(line, lambda key: (0.0, None))\n"
        "print(before, p._minute_second.cache_info().currsize, p._minute_second.cache_info().misses, read is not None)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "1", "1", "True"]
