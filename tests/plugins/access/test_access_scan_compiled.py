"""The compiled candidate scan (``_candidates.scan``) against its Python reference (``scan_lines``).

The other access tests hold the parser, with whichever scan was built, to the general way and to
the plain rules; this holds the compiled scan to the Python one on every input either could meet:
the candidate spans, the duplicates passed over, everything the fast lines count (the rows with
their times, key offers, sessions) and the other candidates' time, tag and message start, with
each stamp's hour from the same ``hour`` function.
Real logs cut at every byte, real lines garbled by hypothesis, every hostile byte at every
position of the lines the fast patterns take, random bytes, lines of a megabyte, no trailing
newline. A last test builds the C file with AddressSanitizer and UBSan and runs a differential
loop under them (tests/support/sanitizers.py).
"""

from __future__ import annotations

import hashlib
import random
import textwrap
from collections.abc import Callable
from datetime import timezone
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normagent import TextBlock
from normagent.plugins.access import parse
from normagent.plugins.access.parse import Clock, HourOf, _parse_lines, _Quick, parse_auth_lines, scan_lines
from normagent.testing import EPOCH
from tests.plugins.access.test_access_parsecmd import logins, parse_json
from tests.plugins.access.test_access_fastpaths import BYTES, INSERTS, REAL, SETTINGS, ZONES, ctx_for, real_lines, summary
from tests.support.sanitizers import build_sanitized, run_sanitized
from tests.support.tools import require_extension

ROOT = Path(__file__).parents[3]
LOGS = ROOT / "tests" / "fixtures" / "logs"
FIXTURES = [LOGS / "access" / "linux.txt", LOGS / "fail2ban" / "sshd", LOGS / "fail2ban" / "pam-generic"]
SOURCE = ROOT / "plugins" / "access" / "_candidates.c"


@pytest.fixture(scope="module")
def compiled() -> ModuleType:
    return require_extension("normagent.plugins.access._candidates")


def clock_hour(tz: object = ZoneInfo("Europe/Oslo")) -> HourOf:
    """The parser's own ``hour``: a block's clock (a fresh one per call, as per block)."""
    return _Quick(Clock(EPOCH, tz)).hour


def odd_hour(key: bytes) -> tuple[float, int | None] | tuple[None, None]:
    """An ``hour`` that takes every branch: no time, a day of its own, a day per time (with bases
    before 1970 and near midnight), decided by the key's digest so that both scans see the same."""
    digest = hashlib.blake2b(key, digest_size=8).digest()
    kind = digest[0] % 4
    base = float(int.from_bytes(digest[1:5], "big") - 2**31) * 3600.0 / 7 // 1
    if kind == 0:
        return None, None
    if kind == 1:
        return base, int(base // 86400)
    if kind == 2:
        return float((int(base) // 86400 + 1) * 86400 - 60 * digest[5]), None  # minutes before midnight
    return base, None


def same(compiled: ModuleType, data: bytes, hours: tuple[Callable[[], HourOf | None], ...] | None = None) -> None:
    """The compiled scan gives the Python one's answer, without and with the fast lines."""
    for make in hours or (lambda: None, clock_hour, lambda: odd_hour):
        want = scan_lines(data, make())
        got = compiled.scan(data, make())
        assert got == want, data[:300]
        if want[2] is not None:  # == does not see 1 == 1.0: the times must be floats both ways
            assert repr(got[2:]) == repr(want[2:])


# ---------------------------------------------------------------------------------------------
# real logs, cut anywhere


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_fixture_log_whole_and_cut_at_every_byte(compiled: ModuleType, path: Path) -> None:
    data = path.read_bytes()
    same(compiled, data)
    same(compiled, data.rstrip(b"\n"))
    for start in range(len(data)):  # a window from every byte: a block starts and ends mid-line
        same(compiled, data[start : start + 700], (clock_hour, lambda: odd_hour))


def test_generated_lines_in_blocks_of_every_size(compiled: ModuleType) -> None:
    data = "".join(line + "\n" for line in REAL).encode("utf-8", "surrogateescape")
    same(compiled, data)
    lines = data.splitlines(keepends=True)
    for size in (1, 2, 5, 40):
        for start in range(0, len(lines), size):
            same(compiled, b"".join(lines[start : start + size]), (clock_hour,))


# ---------------------------------------------------------------------------------------------
# drawn lines and bytes


@SETTINGS
@given(
    st.lists(st.tuples(real_lines, st.integers(min_value=0, max_value=200), st.sampled_from(INSERTS)), min_size=1, max_size=30),
    st.sampled_from(ZONES),
    st.booleans(),
)
def test_garbled_real_lines(compiled: ModuleType, edits: list[tuple[str, int, str]], tz: object, newline: bool) -> None:
    lines = [line if cut >= len(line) else line[:cut] + insert + line[cut + (not insert) :] for line, cut, insert in edits]
    data = "\n".join(lines).encode("utf-8", "surrogateescape") + b"\n" * newline
    same(compiled, data, (lambda: None, lambda: clock_hour(tz), lambda: odd_hour))


@SETTINGS
@given(st.lists(st.tuples(real_lines, st.integers(min_value=0, max_value=200), st.lists(BYTES, max_size=4)), min_size=1, max_size=30))
def test_anchor_bytes_inserted_anywhere(compiled: ModuleType, edits: list[tuple[str, int, list[bytes]]]) -> None:
    data = b"".join(
        raw[:cut] + b"".join(insert) + raw[cut:] + b"\n"
        for raw, (_, cut, insert) in zip((line.encode("utf-8", "surrogateescape") for line, _, _ in edits), edits)
    )
    same(compiled, data)


PIECES = [b"Failed ", b"Accepted ", b"FAILED ", b"; logname=", b"; TTY=", b"pam_faillock(", b"chauthtok): password changed",
          b", deny ", b"' changed by '", b"change user '", b"TOO MANY LOGIN TRIES", b"BAD SU ", b"PAM: ", b"]: PAM ",
          b"pam_unix(sshd:auth): authentication failure", b"authentication failures", b" sudo", b"sshd[1]: ",
          b"Nov 23 07:25:53 h ", b"2026-11-23T07:25:53.5+01:00 h ", b" from 1.2.3.4 port 5 ssh2", b"invalid user ",
          b"password for ", b"publickey for ", b"\n", b"\r\n", b" ", b":", b"\x00", b"\xff"]


@SETTINGS
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=12)), max_size=60))
def test_random_pieces_and_bytes(compiled: ModuleType, pieces: list[bytes]) -> None:
    same(compiled, b"".join(pieces))


def test_random_blocks(compiled: ModuleType) -> None:
    rng = random.Random(15)
    alphabet = bytes(range(256)) + b"FA;k,' \n\n\n:[]0123456789" * 8
    for _ in range(400):
        same(compiled, bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 400))))
    for _ in range(300):
        same(compiled, b"".join(rng.choice(PIECES) + bytes(rng.choice(alphabet) for _ in range(rng.randrange(3))) for _ in range(40)))


# ---------------------------------------------------------------------------------------------
# every hostile byte at every position of the lines the fast patterns take

FAST_LINES = [
    b"Nov 23 07:25:53 srv sshd[4242]: Failed password for root from 203.0.113.9 port 50412 ssh2",
    b"Nov  3 07:25:53 srv sshd-session[42]: Failed password for invalid user admin from 2001:db8::7 port 22 ssh2",
    b"2026-11-23T07:25:53.123456+01:00 srv sshd[4242]: Failed publickey for git from 198.51.100.2 port 22 ssh2: RSA SHA256:ab",
    b"2026-11-23T23:59:59,5-03:30 srv sshd-auth[1]: Failed password for illegal user x from h.example port 1 ssh2: key",
    b"2026-11-23T07:25:53+00:00 srv sshd[1]: Failed hostbased for u from ::1 port 2 ssh2\r",
    b"Nov 23 07:25:53 srv sshd[4242]: Accepted publickey for backup from 10.20.1.9 port 61533 ssh2: ED25519 SHA256:0g+3",
    b"2026-11-23T07:25:53.5+01:00 srv sshd-session[9]: Accepted password for bob from 192.0.2.4 port 5 ssh2",
    b"Nov 23 07:25:53 srv sshd[7]: Failed password for invalid user a from 1.2.3.4 port 5 ssh2: x from y",
    b"Nov 23 07:25:53 srv sshd[7]: Failed none for invalid user a from 1.2.3.4 port 5 ssh2",
    b"Nov 23 07:25:53 srv sshd[7]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4",
    b"Nov 23 07:25:53 srv sshd[7]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4",
    b"Nov 23 07:25:53 srv sudo: pam_unix(sudo:auth): authentication failure; logname=bob uid=1000 euid=0 tty=/dev/pts/1",
    b"Nov 23 07:25:53 srv sudo:      bob : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/bob ; USER=root",
    b"Nov 23 07:25:53 srv su[77]: FAILED SU (to root) bob on pts/2",
    b"Nov 23 07:25:53 srv login[1]: FAILED LOGIN (1) on '/dev/tty1' FOR 'UNKNOWN', Authentication failure",
    b"Nov 23 07:25:53 srv passwd[9]: pam_unix(passwd:chauthtok): password changed for carol",
    b"Nov 23 07:25:53 srv sshd[9]: pam_faillock(sshd:auth): Consecutive login failures for user root account temporarily locked",
    b"2026-11-23T07:25:53.5+01:00 srv gdm-password]: pam_unix(gdm-password:auth): authentication failure; logname= uid=0 "
    b"euid=0 tty=/dev/tty1 ruser= rhost=  user=carol",
    b"Nov 23 07:25:53 srv su[]: FAILED SU (to root) bob on pts/2",
    b"Nov 23 07:25:53 srv sshd(pam_unix)[9]: authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4",
]
HOSTILE = [b"\t", b"(", b")", b"\x00", b"\x1c", b"\r", b"\x7f", b"\xff", b"\xc2\xa0", b"\xc2\xb2", b"=", b",", b":", b"[", b"]", b" ",
           b"\n", b"F", b"A", b";", b"'", b"0", b"-", b"."]


@pytest.mark.parametrize("line", FAST_LINES, ids=range(len(FAST_LINES)))
def test_every_hostile_byte_at_every_position(compiled: ModuleType, line: bytes) -> None:
    hours = (clock_hour, lambda: odd_hour)
    same(compiled, line + b"\n")
    same(compiled, line, hours)
    for at in range(len(line) + 1):
        same(compiled, line[:at] + b"\n", hours)  # cut short
        same(compiled, line[:at] + line[at + 1 :] + b"\n", hours)  # a byte missing
        for byte in HOSTILE:
            same(compiled, line[:at] + byte + line[at:] + b"\n", hours)  # inserted
            same(compiled, line[:at] + byte + line[at + 1 :] + b"\n", hours)  # replacing


# ---------------------------------------------------------------------------------------------
# sizes and edges


def test_huge_lines_and_edges(compiled: ModuleType) -> None:
    mb = 1 << 20
    fast = FAST_LINES[0]
    for data in [
        b"",
        b"\n",
        b"\n" * 1000,
        b"F",
        b"A",
        b";",
        b"x" * mb,
        b"Failed " * (mb // 7),
        b"; logname=" * (mb // 10),
        b"A" * mb + b"ccepted \n",
        fast.replace(b"root", b"r" * mb) + b"\n" + fast,
        fast.replace(b"203.0.113.9", b"9" * mb) + b"\n",
        fast + b": " + b" from" * (mb // 5) + b"\n",
        FAST_LINES[7].replace(b"x from y", b"k" * mb) + b"\n",
        (fast + b"\n") * 5000,
        b"\n".join(FAST_LINES) * 200,
        b"\x00" * mb + fast,
    ]:
        same(compiled, data)


def test_only_bytes_are_taken(compiled: ModuleType) -> None:
    line = FAST_LINES[0] + b"\n"
    with pytest.raises(TypeError):
        compiled.scan(memoryview(line), None)
    with pytest.raises(TypeError):
        compiled.scan(bytearray(line), None)
    with pytest.raises(TypeError):
        compiled.scan(line, 3)


def test_an_error_of_hour_comes_through(compiled: ModuleType) -> None:
    def failing(key: bytes) -> tuple[None, None]:
        raise LookupError(key)

    with pytest.raises(LookupError):
        compiled.scan(FAST_LINES[0] * 1 + b"\n", failing)
    with pytest.raises(TypeError):
        compiled.scan(FAST_LINES[0] + b"\n", lambda key: (1.0,))
    with pytest.raises(TypeError):
        compiled.scan(FAST_LINES[0] + b"\n", lambda key: ("noon", None))


# ---------------------------------------------------------------------------------------------
# the parser with either scan


@pytest.mark.parametrize("tz", [ZoneInfo("Europe/Oslo"), timezone.utc], ids=str)
def test_the_parser_answers_alike_with_either_scan(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, tz: object) -> None:
    blocks = [TextBlock(data=path.read_bytes(), origin="fixture", mtime=EPOCH, lines=path.read_bytes().count(b"\n")) for path in FIXTURES]
    generated = "".join(line + "\n" for line in REAL).encode("utf-8", "surrogateescape")
    blocks.append(TextBlock(data=generated, origin="generated", mtime=EPOCH, lines=generated.count(b"\n")))
    ctx = ctx_for(tz)
    assert parse._SCAN is compiled.scan
    with_c = [summary(parse_auth_lines(b, ctx)) for b in blocks]
    monkeypatch.setattr(parse, "_SCAN", scan_lines)
    with_python = [summary(parse_auth_lines(b, ctx)) for b in blocks]
    assert with_c == with_python
    assert with_python == [summary(_parse_lines(b, ctx, fast=False)) for b in blocks]


def test_normagent_parse_answers_alike_with_either_scan(compiled: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(b"".join(path.read_bytes() for path in FIXTURES) + "".join(line + "\n" for line in REAL).encode("utf-8", "surrogateescape"))
    assert parse._SCAN is compiled.scan
    with_c = parse_json(str(log), collectors=["access.logins"])
    monkeypatch.setattr(parse, "_SCAN", scan_lines)
    with_python = parse_json(str(log), collectors=["access.logins"])
    assert with_c == with_python
    assert logins(with_c["inputs"][0])["counts"]


# ---------------------------------------------------------------------------------------------
# memory safety

SANITIZED_CHECK = textwrap.dedent(
    """
    import random, sys
    from normagent.plugins.access import _candidates as scanner
    assert scanner.__file__.startswith(sys.argv[1]), scanner.__file__  # the sanitized build
    from tests.plugins.access.test_access_scan_compiled import FAST_LINES, HOSTILE, PIECES, clock_hour, odd_hour
    from normagent.plugins.access.parse import scan_lines
    rng = random.Random(1)
    alphabet = bytes(range(256)) + b"FA;k,' \\n:[]0123456789" * 8
    blocks = []
    for _ in range(1500):
        blocks.append(bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 300))))
        blocks.append(b"".join(rng.choice(PIECES + FAST_LINES) for _ in range(rng.randrange(1, 30))))
        line = rng.choice(FAST_LINES)
        at = rng.randrange(len(line) + 1)
        blocks.append(line[:at] + rng.choice(HOSTILE) + line[at + rng.randrange(2):])
        blocks.append(line[:at])
    blocks.append(b"Failed " * 100000 + FAST_LINES[0].replace(b"root", b"r" * 200000))
    for data in blocks:
        for hour in (None, clock_hour(), odd_hour):
            assert scanner.scan(data, hour) == scan_lines(data, hour), data
        try:
            scanner.scan(data, lambda key: 1 / 0)
        except ZeroDivisionError:
            pass
    print("checked", len(blocks))
    """
)


@pytest.mark.slow
def test_the_scan_under_address_and_undefined_behaviour_sanitizers(tmp_path: Path) -> None:
    build = build_sanitized(SOURCE, "normagent.plugins.access._candidates", tmp_path)
    out = run_sanitized(SANITIZED_CHECK, str(tmp_path), first_on_path=build)
    assert out.startswith("checked ")
