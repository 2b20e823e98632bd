"""Property tests: no input crashes a parser of the access plugin or is miscounted as a failure.

Random bytes, 1 MB lines, truncated lines, random journal entries and Windows records: every
line or record gets exactly one outcome, and a failed login is counted only where a failure
message is.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from normagent import Count, JournalEntry, ParseContext, RecordBlock, TextBlock, WindowsEvent
from normagent.plugins.access.journal import parse_journal
from normagent.plugins.access.parse import parse_auth_lines
from normagent.plugins.access.tally import EVENTLOG_ERRORS, FAILED_LOGINS, LOCKOUTS, PASSWORD_RESETS
from normagent.plugins.access.windows import parse_windows
from normagent.testing import EPOCH, test_pseudonymiser
from tests.plugins.access.cases import load_cases

OSLO = ZoneInfo("Europe/Oslo")
CTX = ParseContext(now=EPOCH, tz=OSLO, pseudonymise=test_pseudonymiser(), examples=3)
FIXTURE_LINES = [c.line for c in load_cases()]
# A line without one of these can hold no login verdict (parse.py's anchors).
ANCHORS = re.compile(
    r"Failed |FAILED |; logname=|; TTY=|Accepted |pam_faillock\(|chauthtok\): password changed|, deny "
    r"|' changed by '|change user '|TOO MANY LOGIN TRIES|BAD SU |PAM: "
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def text_block(data: bytes) -> TextBlock:
    return TextBlock(data=data, origin="fuzz", mtime=EPOCH, lines=data.count(b"\n"))


def counted(observations: list[object], *metrics: str) -> float:
    return sum(o.value for o in observations if isinstance(o, Count) and o.metric in metrics)  # type: ignore[attr-defined]


@SETTINGS
@given(st.binary(max_size=4000))
def test_random_bytes_never_crash_and_every_line_has_one_outcome(raw: bytes) -> None:
    data = raw if raw.endswith(b"\n") or not raw else raw + b"\n"

    result = parse_auth_lines(text_block(data), CTX)

    assert result.parsed + result.ignored + result.unparsed == data.count(b"\n")
    assert result.parsed >= 0 and result.ignored >= 0 and result.unparsed >= 0


@SETTINGS
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=200), max_size=30))
def test_text_without_a_failure_message_counts_nothing(lines: list[str]) -> None:
    data = "".join(line + "\n" for line in lines)
    has_anchor = bool(ANCHORS.search(data))

    result = parse_auth_lines(text_block(data.encode("utf-8", "surrogatepass")), CTX)

    if not has_anchor:
        assert result.observations == [] and result.parsed == 0 and result.unparsed == 0
    assert result.parsed + result.ignored + result.unparsed == len(lines)


@SETTINGS
@given(st.sampled_from(FIXTURE_LINES), st.integers(min_value=0, max_value=400), st.sampled_from(["", "\r", " ", "\x00", "\xff"]))
def test_truncated_fixture_lines_never_crash(line: str, cut: int, tail: str) -> None:
    data = (line[:cut] + tail + "\n").encode("utf-8", "surrogateescape")

    result = parse_auth_lines(text_block(data), CTX)

    assert result.parsed + result.ignored + result.unparsed == 1
    # A piece of a line never counts more attempts than the whole line: at most what a
    # "message repeated" multiplier on the line says.
    whole = parse_auth_lines(text_block((line + "\n").encode()), CTX)
    if "message repeated" not in line:
        assert counted(result.observations, FAILED_LOGINS) <= max(counted(whole.observations, FAILED_LOGINS), 1)


@SETTINGS
@given(
    st.sampled_from(FIXTURE_LINES),
    st.sampled_from(["x", " from 1.2.3.4 port 5 ssh2", "; logname= user=", "Failed ", "[ ", "'", ")", "\\"]),
    st.integers(min_value=10_000, max_value=60_000),
)
def test_megabyte_lines_are_handled_in_bounded_time(line: str, filler: str, times: int) -> None:
    """1 MB lines of the nastiest fillers: one outcome, and no regex runs away."""
    big = line[: len(line) // 2] + filler * times + line[len(line) // 2 :]
    data = (big[:1_048_576] + "\n").encode()
    started = datetime.now()

    result = parse_auth_lines(text_block(data), CTX)

    assert result.parsed + result.ignored + result.unparsed == 1
    assert datetime.now() - started < timedelta(seconds=5)


@SETTINGS
@given(st.lists(st.sampled_from(FIXTURE_LINES), min_size=1, max_size=40), st.integers(min_value=0, max_value=39))
def test_block_boundaries_do_not_change_the_counts(lines: list[str], split: int) -> None:
    """Counting is per line: any split of the same lines into two blocks gives the same totals."""
    cut = split % len(lines)
    whole = parse_auth_lines(text_block("".join(line + "\n" for line in lines).encode()), CTX)
    first = parse_auth_lines(text_block("".join(line + "\n" for line in lines[:cut]).encode()), CTX)
    second = parse_auth_lines(text_block("".join(line + "\n" for line in lines[cut:]).encode()), CTX)

    for metric in (FAILED_LOGINS, LOCKOUTS, PASSWORD_RESETS):
        assert counted(whole.observations, metric) == counted(first.observations, metric) + counted(second.observations, metric)
    assert whole.parsed == first.parsed + second.parsed


# ---------------------------------------------------------------------------------------------
# journal entries


field_values = st.one_of(st.text(max_size=60), st.sampled_from(["sshd", "sudo", "gdm-password]", "0", "3", "7", "", "-1", "x", "²", "03", " 3"]))
journal_entries = st.builds(
    lambda fields, t: JournalEntry(fields=fields, realtime=EPOCH + timedelta(seconds=t), cursor="c"),
    st.dictionaries(
        st.sampled_from(["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "_COMM", "_SYSTEMD_UNIT", "_SYSTEMD_USER_UNIT", "_TRANSPORT"]),
        field_values,
    ),
    st.integers(min_value=-10**9, max_value=10**9),
)


@SETTINGS
@given(st.lists(journal_entries, max_size=30))
def test_random_journal_entries(entries: list[JournalEntry]) -> None:
    result = parse_journal(RecordBlock(tuple(entries), "fuzz"), CTX)

    assert result.parsed + result.ignored + result.unparsed == len(entries)
    if not any(ANCHORS.search(e.message) for e in entries):
        assert counted(result.observations, FAILED_LOGINS, LOCKOUTS, PASSWORD_RESETS) == 0
    errors = sum(1 for e in entries if e.fields.get("PRIORITY", "").strip() in ("0", "1", "2", "3"))
    assert counted(result.observations, EVENTLOG_ERRORS) == errors


# ---------------------------------------------------------------------------------------------
# Windows records


windows_events = st.builds(
    WindowsEvent,
    record_id=st.integers(min_value=0, max_value=2**63),
    time=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)),
    channel=st.sampled_from(["Security", "System", "Application", "security", "Setup", "", "Microsoft-Windows-Windows Defender/Operational"]),
    provider=st.text(max_size=40),
    event_id=st.sampled_from([4625, 4740, 4723, 4724, 4771, 4776, 4624, 7000, 0, 1, 65535]),
    level=st.integers(min_value=-1, max_value=300),
    keywords=st.integers(min_value=0, max_value=2**64 - 1),
    computer=st.text(max_size=20),
    data=st.dictionaries(
        st.sampled_from(["Status", "SubStatus", "TargetUserName", "IpAddress", "Workstation", "0"]),
        st.one_of(st.text(max_size=30), st.sampled_from(["0x0", "0xc000006d", "0xC0000064", "-", "::ffff:1.2.3.4", "0x18"])),
    ),
)


@SETTINGS
@given(st.lists(windows_events, max_size=30))
def test_random_windows_records(events: list[WindowsEvent]) -> None:
    result = parse_windows(RecordBlock(tuple(events), "fuzz"), CTX)

    assert result.parsed + result.ignored + result.unparsed == len(events)
    failures = counted(result.observations, FAILED_LOGINS)
    possible = sum(1 for e in events if e.channel.casefold() == "security" and e.event_id in (4625, 4771, 4776))
    assert failures <= possible
    errors = sum(1 for e in events if e.channel.casefold() in ("system", "application") and e.level in (1, 2))
    assert counted(result.observations, EVENTLOG_ERRORS) == errors


# ---------------------------------------------------------------------------------------------
# the fast path for sshd's plain failure line agrees with the general way


def _generated_lines() -> list[str]:
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).parents[3] / "bench" / "gen_authlog.py"
    spec = importlib.util.spec_from_file_location("gen_authlog_for_fuzz", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_authlog_for_fuzz"] = module
    spec.loader.exec_module(module)
    lines, _ = module.generate(3000, 5, EPOCH - timedelta(minutes=5))
    return [line.rstrip("\n") for line in lines if "Failed" in line or "sshd" in line][:400]


SSHD_LINES = _generated_lines() + [line for line in FIXTURE_LINES if "Failed" in line]


def _summary(result: object) -> tuple[object, ...]:
    obs = sorted(repr(o) for o in result.observations)  # type: ignore[attr-defined]
    return (result.parsed, result.ignored, result.unparsed, obs)  # type: ignore[attr-defined]


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(SSHD_LINES),
            st.integers(min_value=0, max_value=200),
            st.sampled_from(["", " ", "x", ": ", "[", "]", "\r", "é", "  ", ":", "0", "T", ".", "-", "+", "²", "port 5 ssh2", " from 1.2.3.4"]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_the_fast_path_agrees_with_the_general_way(edits: list[tuple[str, int, str]]) -> None:
    """Any line, whole or edited at any point, is judged and dated the same by both paths."""
    from normagent.plugins.access.parse import _parse_lines

    # An empty insert deletes the character at the cut instead.
    lines = [
        line if cut >= len(line) else line[:cut] + insert + line[cut + (not insert) :] for line, cut, insert in edits
    ]
    block = text_block("".join(line + "\n" for line in lines).encode())

    assert _summary(_parse_lines(block, CTX, fast=True)) == _summary(_parse_lines(block, CTX, fast=False))


@SETTINGS
@given(
    st.sampled_from(SSHD_LINES + FIXTURE_LINES),
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=200),
            st.sampled_from(["", " ", "\t", "x", ": ", "[", "]", "(", ")", ":", "0", "T", ".", ",", "-", "+", "Z", "²", "'", ";"]),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_the_quick_line_split_agrees_with_the_patterns(line: str, edits: list[tuple[int, str]]) -> None:
    """split_line's positional cut and the general patterns read every line alike, garbled or not."""
    from normagent.plugins.access.parse import Clock, split_line, split_line_slow

    for cut, insert in edits:
        line = line[:cut] + insert + line[cut + (not insert) :]
    clock = Clock(EPOCH, OSLO)

    assert split_line(line, clock) == split_line_slow(line, Clock(EPOCH, OSLO))
