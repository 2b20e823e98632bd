"""The apt-family parser from tables: history.log stanzas, term.log errors, dpkg.log runs and
unattended-upgrades' outcomes; records cut anywhere by block boundaries; bad input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from normagent import Count, Event, ParseContext, ParseResult, Rollup, TextBlock
from normagent.plugins.updates.parse import parse_apt_logs, sniff
from normagent.plugins.updates.vocab import APPLIED, DPKG_ERRORS, FAILED, SECURITY_APPLIED, TRANSACTION, UNATTENDED_RUNS
from normagent.testing import EPOCH, test_pseudonymiser

FIXTURES = Path(__file__).parents[2] / "fixtures" / "updates" / "apt"
UTC = timezone.utc


@dataclass(frozen=True)
class Settings:
    security_packages: tuple[str, ...] = ()
    unattended: str = "auto"
    settle: timedelta = timedelta(minutes=10)


def ctx(carry: Any = None, *, now: datetime = EPOCH, final: bool = False, examples: int = 0, **settings: Any) -> ParseContext:
    return ParseContext(
        now=now, tz=UTC, pseudonymise=test_pseudonymiser(), settings=Settings(**settings), carry=carry, final=final, examples=examples
    )


def parse(text: str | bytes, carry: Any = None, **kw: Any) -> ParseResult:
    data = text.encode() if isinstance(text, str) else text
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return parse_apt_logs(TextBlock(data, "test.log", None, data.count(b"\n")), ctx(carry, **kw))


def applied(result: ParseResult) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for obs in result.observations:
        if isinstance(obs, Count) and obs.metric == APPLIED:
            key = (dict(obs.labels)["kind"], dict(obs.labels)["result"])
            out[key] = out.get(key, 0) + obs.value
    return out


def events(result: ParseResult) -> list[Event]:
    return [o for o in result.observations if isinstance(o, Event) and o.kind == TRANSACTION]


def rollups(result: ParseResult, name: str) -> list[str]:
    return sorted(o.key for o in result.observations if isinstance(o, Rollup) and o.name == name)


def outcomes_add_up(result: ParseResult, lines: int) -> bool:
    return result.parsed + result.ignored + result.unparsed == lines


STANZA = """Start-Date: 2026-11-20  06:25:12
Commandline: apt-get upgrade -y
Requested-By: alice (1000)
Upgrade: libssl3:amd64 (3.0.15-1~deb12u1, 3.0.17-1~deb12u2), openssl:amd64 (3.0.15-1~deb12u1, 3.0.17-1~deb12u2)
End-Date: 2026-11-20  06:25:40
"""


# --------------------------------------------------------------------------------------------
# history.log


def test_a_real_history_log_from_plaso_counts_its_eight_upgrades() -> None:
    """plaso's apt_history.log (Apache-2.0): 10 runs, one Upgrade line of 8 packages, one run
    that failed while installing (an Install, so no update failed)."""
    data = (FIXTURES / "plaso_apt_history.log").read_bytes()
    result = parse(data)
    assert applied(result) == {("other", "success"): 8}
    assert [e.attrs["result"] for e in events(result)].count("failure") == 1
    assert len(events(result)) == 10
    assert outcomes_add_up(result, data.count(b"\n")) and result.unparsed == 0


def test_each_package_of_an_upgrade_line_is_one_update_with_its_runs_result() -> None:
    ok = parse(STANZA)
    failed = parse(STANZA.replace("End-Date", "Error: Sub-process /usr/bin/dpkg returned an error code (1)\nEnd-Date"))
    assert applied(ok) == {("other", "success"): 2}
    assert applied(failed) == {("other", "failure"): 2}
    assert rollups(failed, FAILED) == ["libssl3", "openssl"]
    assert [e.attrs["result"] for e in events(failed)] == ["failure"]


def test_a_version_apts_security_lists_hold_is_a_security_update() -> None:
    result = parse(STANZA, security_packages=("libssl3=3.0.17-1~deb12u2", "zlib1g"))
    assert applied(result) == {("security", "success"): 1, ("other", "success"): 1}
    assert rollups(result, SECURITY_APPLIED) == ["libssl3"]


@pytest.mark.parametrize(("unattended", "expected"), [("security", "security"), ("other", "other"), ("auto", "other")])
def test_unattended_upgrades_versions_no_list_holds_follow_the_setting(unattended: str, expected: str) -> None:
    stanza = STANZA.replace("apt-get upgrade -y", "/usr/bin/unattended-upgrade").replace("Requested-By: alice (1000)\n", "")
    assert applied(parse(stanza, unattended=unattended)) == {(expected, "success"): 2}
    # an apt run a person made is never classified by unattended-upgrades' origins
    assert applied(parse(STANZA, unattended=unattended)) == {("other", "success"): 2}


def test_installs_removals_and_downgrades_are_no_updates() -> None:
    text = """Start-Date: 2026-11-20  06:25:12
Commandline: apt-get install foo
Install: foo:amd64 (1.0), libfoo:amd64 (1.0, automatic)
Remove: bar:amd64 (2.0)
Purge: baz:amd64 (1.0)
Downgrade: qux:amd64 (2.0, 1.0)
Reinstall: quux:amd64 (1.0)
Disappeared: old:amd64 (1.0)
End-Date: 2026-11-20  06:25:40
"""
    result = parse(text)
    assert applied(result) == {}
    assert [(e.attrs["security"], e.attrs["other"]) for e in events(result)] == [(0, 0)]


def test_a_run_that_never_ended_is_an_interrupted_transaction() -> None:
    """apt killed (or the power lost) after Start-Date: the next Start-Date tells."""
    text = "Start-Date: 2026-11-20  06:00:00\nCommandline: apt-get upgrade\n" + STANZA
    result = parse(text)
    assert [e.attrs["result"] for e in events(result)] == ["interrupted", "success"]
    assert applied(result) == {("other", "success"): 2}


def test_a_stanza_read_from_its_middle_still_counts() -> None:
    """The file was first read from its end (start_at = end), cutting a stanza: what follows counts."""
    tail = STANZA.split("Requested-By", 1)[1].split("\n", 1)[1]
    result = parse(tail)
    assert applied(result) == {("other", "success"): 2}
    assert result.unparsed == 0


def test_no_user_name_or_command_line_leaves_the_parser() -> None:
    result = parse(STANZA)
    text = json.dumps([repr(o) for o in result.observations]) + json.dumps(result.carry)
    assert "alice" not in text and "apt-get upgrade" not in text


HISTORY = (FIXTURES / "plaso_apt_history.log").read_bytes() + STANZA.encode() + STANZA.replace("End-Date", "Error: x\nEnd-Date").encode()


def split_parse(data: bytes, cut: int, **kw: Any) -> ParseResult:
    """Parse ``data`` as two blocks cut at the line boundary nearest ``cut``, threading the carry."""
    edge = data.rfind(b"\n", 0, cut) + 1
    first = parse_apt_logs(TextBlock(data[:edge], "h", None, data[:edge].count(b"\n")), ctx(None, **kw))
    second = parse_apt_logs(TextBlock(data[edge:], "h", None, data[edge:].count(b"\n")), ctx(first.carry, **kw))
    total = ParseResult()
    total.merge(first)
    total.merge(second)
    return total


@pytest.mark.parametrize("cut", range(0, len(HISTORY), 97))
def test_a_stanza_cut_by_a_block_boundary_counts_as_if_read_whole(cut: int) -> None:
    whole = parse(HISTORY)
    split = split_parse(HISTORY, cut)
    assert applied(split) == applied(whole)
    assert sorted(e.key for e in events(split)) == sorted(e.key for e in events(whole))
    assert (split.parsed, split.ignored, split.unparsed) == (whole.parsed, whole.ignored, whole.unparsed)
    json.dumps(split.carry)  # a carry is always a JSON value


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        ("Upgrade: nonsense without versions", "Upgrade line without a package list"),
        ("Start-Date: yesterday", "Start-Date is not a date"),
        ("End-Date: 2026-13-45  99:99:99", "End-Date is not a date"),
        ("\x00\x00\x00\x00", "not a line of apt's history log"),
        ("Some random text", "not a line of apt's history log"),
    ],
)
def test_a_damaged_history_line_is_unparsed_and_named_by_position(garbage: str, reason: str) -> None:
    text = STANZA.replace("Requested-By: alice (1000)\n", garbage + "\n")
    result = parse(text, examples=1)
    assert result.unparsed == 1
    assert [(p.offset, p.reason) for p in result.problems] == [(text.index(garbage), reason)]
    assert outcomes_add_up(result, text.count("\n"))
    if "Upgrade" not in garbage and "Date" not in garbage:
        assert applied(result) == {("other", "success"): 2}


def test_a_history_log_cut_mid_line_and_padded_with_nuls_after_a_crash() -> None:
    """A crash can leave a torn stanza and NUL padding; the next run's stanza still counts."""
    text = STANZA[:60] + "\x00" * 40 + "\n" + STANZA  # torn inside its Commandline line
    result = parse(text)
    assert applied(result) == {("other", "success"): 2}
    assert [e.attrs["result"] for e in events(result)] == ["interrupted", "success"]
    head = STANZA[: STANZA.index("Upgrade:")]
    torn = head + "Upgrade: libssl3:amd64 (3.0.15-1~deb12u1, 3.0" + "\x00" * 40 + "\n" + STANZA  # a torn Upgrade line
    result = parse(torn)
    assert applied(result) == {("other", "success"): 2}
    assert [p.reason for p in result.problems] == ["Upgrade line without a package list"]
    assert [e.attrs["result"] for e in events(result)] == ["interrupted", "success"]


# --------------------------------------------------------------------------------------------
# term.log


TERM = """
Log started: 2026-11-20  06:25:12
Preparing to unpack .../secna_2.0_all.deb ...
Setting up secna (2.0) ...
dpkg: error processing package secna (--configure):
 installed secna package post-installation script subprocess returned error exit status 1
dpkg: error processing archive /var/cache/apt/archives/broken_1.0_amd64.deb (--unpack):
Errors were encountered while processing:
 secna
Log ended: 2026-11-20  06:25:40

"""


def test_term_log_names_the_packages_dpkg_could_not_process() -> None:
    result = parse(TERM)
    assert rollups(result, DPKG_ERRORS) == ["broken", "secna"]
    assert [o.day.isoformat() for o in result.observations if isinstance(o, Rollup)] == ["2026-11-20"] * 2
    assert (result.parsed, result.unparsed) == (2, 0)


def test_term_log_lines_outside_a_session_are_unparsed() -> None:
    result = parse(TERM + "stray text\n")
    assert result.unparsed == 1 and result.problems[0].reason.startswith("a line outside")


# --------------------------------------------------------------------------------------------
# dpkg.log


def dpkg(lines: list[str], day: str = "2026-11-20") -> str:
    return "".join(f"{day} {line}\n" for line in lines)


INSTALL_OK = [
    "06:00:00 startup archives install",
    "06:00:00 upgrade tiny:all 1.0 1.1",
    "06:00:00 status half-configured tiny:all 1.0",
    "06:00:00 status unpacked tiny:all 1.0",
    "06:00:00 status half-installed tiny:all 1.0",
    "06:00:00 status unpacked tiny:all 1.1",
    "06:00:00 configure tiny:all 1.1 1.1",
    "06:00:00 status half-configured tiny:all 1.1",
    "06:00:01 status installed tiny:all 1.1",
]
POSTINST_FAILS = INSTALL_OK[:-1]
APT_RUN = [
    "07:00:00 startup archives unpack",
    "07:00:00 upgrade libssl3:amd64 3.0.15-1~deb12u1 3.0.17-1~deb12u2",
    "07:00:00 status unpacked libssl3:amd64 3.0.17-1~deb12u2",
    "07:00:01 startup packages configure",
    "07:00:01 configure libssl3:amd64 3.0.17-1~deb12u2 <none>",
    "07:00:01 status installed libssl3:amd64 3.0.17-1~deb12u2",
]
LATER = datetime(2026, 11, 21, tzinfo=UTC)


@pytest.mark.parametrize(
    ("lines", "now", "expected"),
    [
        pytest.param(INSTALL_OK, EPOCH, {("other", "success"): 1}, id="dpkg -i reaching status installed"),
        pytest.param(POSTINST_FAILS + APT_RUN, EPOCH, {("other", "failure"): 1}, id="postinst failed: decided when the next run starts"),
        pytest.param(POSTINST_FAILS, LATER, {("other", "failure"): 1}, id="postinst failed: decided when the log stays quiet"),
        pytest.param(POSTINST_FAILS, datetime(2026, 11, 20, 6, 5, tzinfo=UTC), {}, id="postinst running: not decided yet"),
        pytest.param(INSTALL_OK[:6] + ["06:00:01 status installed tiny:all 1.0"], EPOCH, {("other", "failure"): 1}, id="rolled back to the old version"),
        pytest.param(POSTINST_FAILS + ["06:01:00 remove tiny:all 1.1 <none>"], EPOCH, {("other", "failure"): 1}, id="removed before configured"),
        pytest.param(INSTALL_OK[:7] + ["06:00:01 status triggers-pending tiny:all 1.1"], LATER, {("other", "success"): 1}, id="configured, waiting for triggers"),
        pytest.param(INSTALL_OK[:2] + ["06:00:00 upgrade tiny:all 1.0 1.2", "06:00:01 status installed tiny:all 1.2"], EPOCH,
                     {("other", "failure"): 1, ("other", "success"): 1}, id="a second attempt in one run"),
        pytest.param(["06:00:00 startup archives install", "06:00:00 install new:all <none> 1.0", "06:00:00 status installed new:all 1.0"],
                     EPOCH, {}, id="a first install is no update"),
        pytest.param(["06:00:00 startup archives install", "06:00:00 upgrade same:all 1.0 1.0", "06:00:00 status installed same:all 1.0"],
                     EPOCH, {}, id="a reinstall is no update"),
        pytest.param(APT_RUN, EPOCH, {}, id="apt's runs are counted from history.log"),
        pytest.param(INSTALL_OK + [line.replace("tiny", "next") for line in INSTALL_OK] + APT_RUN + POSTINST_FAILS + APT_RUN, EPOCH,
                     {("other", "success"): 2, ("other", "failure"): 1}, id="dpkg -i runs one after the other, and between apt's"),
    ],
)
def test_dpkg_install_runs(lines: list[str], now: datetime, expected: dict[tuple[str, str], float]) -> None:
    """The block, then the driver's empty block at the end of the run (a quiet run settles there)."""
    text = dpkg(lines)
    result = parse(text, now=now)
    idle = parse_apt_logs(TextBlock(b"", "dpkg.log", None, 0), ctx(result.carry, now=now))
    total = applied(result)
    for key, value in applied(idle).items():
        total[key] = total.get(key, 0) + value
    assert total == expected
    assert outcomes_add_up(result, len(lines)) and result.unparsed == 0


def test_a_quiet_run_is_not_settled_in_the_middle_of_a_catch_up() -> None:
    """Reading an old log from its start, every line is long past: a dpkg -i run cut by a block
    boundary must wait for the next block, not be settled as failed at the boundary."""
    first = parse(dpkg(INSTALL_OK[:-1]), now=LATER)
    assert applied(first) == {}
    second = parse(dpkg(INSTALL_OK[-1:]), carry=first.carry, now=LATER)
    assert applied(second) == {("other", "success"): 1}


def test_a_dpkg_update_left_open_waits_in_the_carry_and_is_settled_by_time() -> None:
    first = parse(dpkg(POSTINST_FAILS), now=datetime(2026, 11, 20, 6, 5, tzinfo=UTC))
    assert applied(first) == {} and first.carry["open"]  # type: ignore[index]
    empty = parse_apt_logs(TextBlock(b"", "dpkg.log", None, 0), ctx(first.carry, now=datetime(2026, 11, 20, 6, 11, tzinfo=UTC)))
    assert applied(empty) == {("other", "failure"): 1}
    assert "open" not in empty.carry  # type: ignore[operator]


def test_a_dpkg_security_version_is_a_security_update() -> None:
    assert applied(parse(dpkg(INSTALL_OK), security_packages=("tiny=1.1",))) == {("security", "success"): 1}


def test_a_damaged_dpkg_line_is_unparsed_and_named() -> None:
    """In a dpkg -i run every line is checked; in apt's runs (passed over at C speed) a line is
    checked by its first character, the year's."""
    lines = dpkg(INSTALL_OK)
    text = lines.replace("06:00:00 configure", "06:00:00 frobnicate")
    result = parse(text)
    assert applied(result) == {("other", "success"): 1}
    assert [(p.offset, p.reason) for p in result.problems] == [(text.index("2026-11-20 06:00:00 frobnicate"), "not a line of dpkg's log")]
    assert outcomes_add_up(result, text.count("\n"))
    torn = dpkg(APT_RUN).replace("07:00:00 status", "\x00\x00\x00 status", 1) + "garbage\n"
    result = parse(torn)
    assert [p.reason for p in result.problems] == ["not a line of dpkg's log"] * 2 and result.unparsed == 2
    assert outcomes_add_up(result, torn.count("\n"))


def test_plaso_dpkg_log_is_read() -> None:
    data = (FIXTURES / "plaso_dpkg.log").read_bytes()
    result = parse(data, final=True)
    assert outcomes_add_up(result, len(data.splitlines())) and result.unparsed == 0 and applied(result) == {}


# --------------------------------------------------------------------------------------------
# unattended-upgrades.log


UU = """2023-07-12 06:24:36,163 INFO Starting unattended upgrades script
2023-07-12 06:24:36,163 INFO Allowed origins are: o=Ubuntu,a=jammy, o=Ubuntu,a=jammy-security, o=UbuntuESMApps,a=jammy-apps-security
2023-07-12 06:24:37,548 INFO Packages that will be upgraded: thunderbird-locale-en-us
2023-07-12 06:24:39,526 INFO All upgrades installed
2021-03-01 06:58:50,397 INFO No packages found that can be upgraded unattended and no pending auto-removals
2026-07-03 01:46:44,576 ERROR Apt returned an error, exiting
2026-07-03 01:46:44,576 ERROR error message: E:Write error - write (28: No space left on device)
2024-01-01 06:00:00,000 ERROR Installing the upgrades failed!
2024-01-01 06:00:00,000 ERROR error message: installArchives() failed
Traceback (most recent call last):
  File "/usr/bin/unattended-upgrade", line 1, in <module>
"""


def test_unattended_upgrades_runs_by_outcome() -> None:
    result = parse(UU)
    counts = {dict(o.labels)["result"]: o.value for o in result.observations if isinstance(o, Count) and o.metric == UNATTENDED_RUNS}
    assert counts == {"success": 1, "nothing": 1, "failure": 2}
    assert outcomes_add_up(result, UU.count("\n")) and result.unparsed == 0


# --------------------------------------------------------------------------------------------
# other inputs


def test_a_file_that_is_none_of_apts_logs_is_ignored_whole() -> None:
    auth = "Nov 23 07:00:00 host sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2\n" * 3
    result = parse(auth)
    assert (result.parsed, result.ignored, result.unparsed) == (0, 3, 0)
    assert sniff(auth.encode()) is None


@pytest.mark.parametrize(("text", "fmt"), [(STANZA, "history"), (TERM, "term"), (dpkg(INSTALL_OK), "dpkg"), (UU, "unattended")])
def test_each_format_is_recognised_from_its_lines(text: str, fmt: str) -> None:
    assert sniff(text.encode()) == fmt


LINES = st.sampled_from(
    [*STANZA.splitlines(), *TERM.splitlines(), *dpkg(INSTALL_OK + APT_RUN).splitlines(), *UU.splitlines(), "Error: x", "", "\x00", "garbage ü"]
)


@hsettings(max_examples=300, deadline=None)
@given(st.lists(LINES, max_size=60), st.integers(min_value=0, max_value=4000), st.booleans())
def test_any_mix_of_lines_cut_anywhere_never_raises_and_every_line_has_one_outcome(lines: list[str], cut: int, final: bool) -> None:
    data = ("\n".join(lines) + "\n").encode() if lines else b""
    result = split_parse(data, min(cut, len(data)), final=final, now=LATER)
    assert result.parsed + result.ignored + result.unparsed == data.count(b"\n")
    json.dumps(result.carry)


@hsettings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(data: bytes) -> None:
    data = data if data.endswith(b"\n") or not data else data + b"\n"
    for carry in (None, {"f": "history"}, {"f": "dpkg", "run": "install"}, {"f": "term", "in": True}, {"f": "unattended"}):
        result = parse_apt_logs(TextBlock(data, "x", None, data.count(b"\n")), ctx(carry, now=LATER))
        assert result.parsed + result.ignored + result.unparsed == data.count(b"\n")


@pytest.mark.parametrize(
    "carry",
    [{"f": "history", "s": {"start": "bogus", "n": "x"}}, {"f": "dpkg", "run": "install", "open": {"p": [1]}}, {"f": "nope"}, [1, 2], "x"],
)
def test_a_damaged_carry_does_not_crash_the_parser(carry: Any) -> None:
    """A checkpoint edited by hand or from an older version: read what makes sense, go on."""
    result = parse(STANZA + dpkg(INSTALL_OK), carry=carry, now=LATER)
    assert result.parsed + result.ignored + result.unparsed == (STANZA + dpkg(INSTALL_OK)).count("\n")

