"""The filterlog fast path's C scan (``_filterlog.c``) equals its definition on any bytes.

``_filterlog_scan_py`` counts ``_FILTERLOG_LINE.findall`` per distinct value; the extension
matches each line by hand. They must give the same answer, in the same order, for every block:
the lines the fast-path tests draw (real, generated, garbled anywhere, cut short), every byte at
every position of a usual line, lines built from every edge of the pattern's parts, random bytes,
huge lines and odd blocks. A memory-safety run under AddressSanitizer and UBSan closes the file.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normagent.plugins.firewall.parse import _filterlog_scan_py, packed_counts
from tests.plugins.firewall.test_firewall_fastpaths import (
    EDGE_INSERTS,
    EDGE_LINES,
    FILTERLOG_FIELDS,
    FILTERLOG_GENERATED,
    FILTERLOG_REAL,
    INSERTS,
    SETTINGS,
    _garble,
    filterlog_lines,
)
from tests.support.sanitizers import build_sanitized, run_sanitized
from tests.support.tools import require_extension

ROOT = Path(__file__).parents[3]
SOURCE = ROOT / "plugins" / "firewall" / "_filterlog.c"
USUAL: list[str] = EDGE_LINES["filterlog"][0]  # type: ignore[assignment]


def _extension() -> ModuleType:
    return require_extension("normagent.plugins.firewall._filterlog")


@pytest.fixture(scope="module")
def scan() -> Any:
    return _extension().scan


def _encode(lines: list[str], end: str = "\n") -> bytes:
    return end.join(lines).encode("utf-8", "surrogateescape") + (end.encode() if lines else b"")


def _ordered(answer: tuple[Any, ...]) -> tuple[Any, ...]:
    """An answer comparable with its order (dicts as lists of items; the C scan's packed /24
    counts, ``packed_counts``, as the reference's dict, in the order first seen)."""
    days, counts, v4, v6, others = answer
    v4 = packed_counts(v4) if isinstance(v4, bytes) else v4
    return days, list(counts.items()), list(v4.items()), list(v6.items()), others


def assert_same(scan: Any, data: bytes) -> None:
    assert _ordered(scan(data)) == _ordered(_filterlog_scan_py(data))


# ---------------------------------------------------------------------------------------------
# What the fast-path tests draw


def test_the_usual_lines_are_taken(scan: Any) -> None:
    """Not a vacuous equality: the C scan takes the usual lines, with their groups."""
    days, counts, v4, v6, others = scan(_encode(USUAL))
    assert (days, others) == ([b"2026-11-23"], b"")
    assert counts == {
        (b"192.0.2.1", b"pfsense", b"", b"block", b"in", b"tcp", b"22"): 1,
        (b"192.0.2.2", b"", b"bbfw01", b"block", b"out", b"udp", b"53"): 1,
    }
    assert (packed_counts(v4), v6) == ({45 << 16 | 249 << 8 | 0: 1}, {b"2001:db8::1": 1})


def test_real_and_generated_blocks(scan: Any) -> None:
    for lines in (FILTERLOG_REAL, FILTERLOG_GENERATED):
        assert_same(scan, _encode(lines))
        for size in (1, 7, 100):
            for at in range(0, len(lines), size):
                assert_same(scan, _encode(lines[at : at + size]))


@SETTINGS
@given(st.lists(filterlog_lines, min_size=1, max_size=60))
def test_drawn_lines(scan: Any, lines: list[str]) -> None:
    assert_same(scan, _encode(lines))


@SETTINGS
@given(st.lists(st.tuples(filterlog_lines, st.integers(min_value=0, max_value=260), st.sampled_from(INSERTS)), min_size=1, max_size=30))
def test_drawn_lines_garbled_anywhere(scan: Any, edits: list[tuple[str, int, str]]) -> None:
    assert_same(scan, _encode([_garble(line, cut, insert) for line, cut, insert in edits]))


@SETTINGS
@given(st.lists(st.tuples(filterlog_lines, st.integers(min_value=0, max_value=300), st.sampled_from(FILTERLOG_FIELDS)), min_size=1, max_size=30))
def test_drawn_lines_cut_short_or_missing_a_field(scan: Any, edits: list[tuple[str, int, str]]) -> None:
    assert_same(scan, _encode([line[:cut] if cut % 2 else line.replace(field, "", 1) for line, cut, field in edits]))


# ---------------------------------------------------------------------------------------------
# Every position of a usual line


@pytest.mark.parametrize("line", USUAL, ids=["rfc3164-ipv4", "rfc5424-ipv6"])
def test_every_byte_at_every_position(scan: Any, line: str) -> None:
    """Each of the 256 byte values put in before, and put in place of, each byte of a usual
    line; the line cut at every position; each hostile insert of the fast-path tests."""
    raw = line.encode()
    differ = []
    for at in range(len(raw) + 1):
        edits = [raw[:at], raw[:at] + raw[at + 1 :]]
        edits += [raw[:at] + bytes([b]) + raw[at:] for b in range(256)]
        edits += [raw[:at] + bytes([b]) + raw[at + 1 :] for b in range(256)]
        edits += [_garble(line, at, insert).encode("utf-8", "surrogateescape") for insert in EDGE_INSERTS]
        for one in edits:
            if _ordered(scan(one)) != _ordered(_filterlog_scan_py(one)):
                differ.append((at, one[max(0, at - 5) : at + 5]))
    assert not differ, f"the C scan reads {len(differ)} edits otherwise, the first: {differ[:5]}"


# ---------------------------------------------------------------------------------------------
# Lines built from the edges of each part of the pattern

RECEIVED = st.sampled_from(
    ["2026-11-23T07:00:00", "2026-11-24T23:59:59", "2026-13-39T19:00:00", "2026-11-23T24:00:00", "2026-11-23T20:60:00",
     "2026-11-23T07:00:60", "2026-21-23T07:00:00", "2026-11-43T07:00:00", "2026-1-23T07:00:00", "20261-11-23T07:00:00",
     "2026-11-23 07:00:00", "2026-11-23T07:00"]
)
FRACTIONS = st.sampled_from(["", ".", ".0", ".123456", ".1234567", ".12345", "..1", ".1a"])
ZULU = st.sampled_from(["Z ", "Z", "z ", "+00:00 ", "Z  ", " "])
SENDERS = st.sampled_from(["192.0.2.1", "-", "a<b", "<", "x", "", "fe80::1", "h\tx", "h\x7fx", "é"])
PRIS = st.sampled_from(["<" + p + ">" for p in ["0", "9", "00", "09", "99", "000", "013", "099", "100", "189", "190", "191", "192", "199",
                                                 "200", "255", "999", "0191", "1", "", "1a", "-1", " 1"]] + ["134>", "<134"])
MONTHS = st.sampled_from(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "NOV", "nov", "No", "Foo", "1"])
MDAYS = st.sampled_from([" 8", "23", "08", "8 ", "x1", "  ", " "])
CLOCKS = st.sampled_from(["12:37:34", "99:99:99", "12:37", "12:37:3a", "1:2:3"])
HOSTS3 = st.sampled_from(["", "pfsense ", "filterlog ", "filterlog  ", "filterlog", "filterlogs ", "fw.example_org-1 ", "- ", "pf sense ",
                          "pf: ", "[pf] ", "p\xe6 ", " ", "filterlog[1]: ", "filterlog: "])
TAGS = st.sampled_from(["", "[4242]", "[1]", "[]", "[x]", "[1 ]", "[1][2]", "[1", "[-1]"])
COLONS = st.sampled_from([": ", ":", ":  ", " : ", ";", ""])
STAMPS = st.sampled_from(["-", "--", "2021-08-04T06:59:07.691848+04:00", "2026-11-23T07:00:00Z", "2026-11-23T07:00:00", "2026-11-23T07:00:00.1Z",
                          "2026-11-23T07:00:00.123456789Z", "2026-11-23T07:00:00.1234567890Z", "2026-11-23T07:00:00.Z",
                          "2026-11-23T07:00:00+0100", "2026-11-23T07:00:00+01:0", "2026-11-23T07:00:00-01:00", "2026-11-23T07:00:00ZZ",
                          "2026-11-23 07:00:00Z", "9999-99-99T99:99:99", "yesterday"])
HOSTS5 = st.sampled_from(["bbfw01", "-", "BBFW01.posoiden.local", "a_b", "", "pf:x", "p\xe6", "filterlog", "a b"])
PROCIDS = st.sampled_from(["48906", "-", "", "a b", "[x]", "\x7f"])
MSGIDS = st.sampled_from(["-", "ID47", "", "a,b"])
SDS = st.sampled_from(["- ", "-", "-x ", '[x@1 a="b"] ', "  ", "--  "])
FIELDS = st.sampled_from(["", "5", "em0", "1000102433", "0x0", "none", "x y", "a\tb", "é", "-", "!", "~", "+", ".", "\x7f"])
ACTIONS = st.sampled_from(["block", "reject", "pass", "match", "Block", "blocked", "pas", ""])
DIRECTIONS = st.sampled_from(["in", "out", "IN", "inout", "", "o"])
VERSIONS = st.sampled_from(["4", "6", "44", "", "4 "])
PROTOS = st.sampled_from(["tcp", "udp", "icmp", "", "TCP", "ipv6-icmp", "6"])
OCTETS = st.sampled_from(["0", "1", "9", "10", "99", "100", "199", "200", "249", "250", "255", "256", "260", "300", "01", "001", "0001", "1000", "", "a"])
SOURCES6 = st.sampled_from(["2001:db8::1", "fe80::1:2", "", "x", "[2001:db8::1]", "2001:db8::1%em0", "1.2.3.4"])
TAILS = st.sampled_from(["", ",", ",,", ",,,", ",,,,", ",1", ",1,22", ",1,22,", ",1,22,0", ",1,22,0,S,1,,64240,,mss", ",1,22,0,a b",
                         ",1,22 ", ",1, 22", ",x,22", ",1,65536", ",1,2\t3", ",1,22,0\t", ",datalength=36", ",request,1,2", " ", "\r"])


@st.composite
def built_lines(draw: st.DrawFn) -> str:
    head = draw(RECEIVED) + draw(FRACTIONS) + draw(ZULU) + draw(SENDERS) + " " + draw(PRIS)
    if draw(st.booleans()):
        head += draw(MONTHS) + " " + draw(MDAYS) + " " + draw(CLOCKS) + " " + draw(HOSTS3) + "filterlog" + draw(TAGS) + draw(COLONS)
    else:
        head += "1 " + draw(STAMPS) + " " + draw(HOSTS5) + " filterlog " + draw(PROCIDS) + " " + draw(MSGIDS) + " " + draw(SDS)
    csv = [draw(FIELDS) for _ in range(6)] + [draw(ACTIONS), draw(DIRECTIONS), draw(VERSIONS)]
    if draw(st.booleans()):
        source = ".".join(draw(OCTETS) for _ in range(draw(st.sampled_from([4, 4, 4, 3, 5]))))
        csv += [draw(FIELDS) for _ in range(7)] + [draw(PROTOS), draw(FIELDS), source, draw(FIELDS)]
    else:
        csv += [draw(FIELDS) for _ in range(3)] + [draw(PROTOS), draw(FIELDS), draw(FIELDS), draw(SOURCES6), draw(FIELDS)]
    if draw(st.integers(0, 9)) == 0:  # a field too many or too few
        csv.insert(draw(st.integers(0, len(csv))), draw(FIELDS)) if draw(st.booleans()) else csv.pop(draw(st.integers(0, len(csv) - 1)))
    return head + ",".join(csv) + draw(TAILS)


@SETTINGS
@given(st.lists(built_lines(), min_size=1, max_size=40), st.sampled_from(["\n", "\r\n"]))
def test_lines_built_from_the_edges_of_the_pattern(scan: Any, lines: list[str], end: str) -> None:
    assert_same(scan, _encode(lines, end))


@SETTINGS
@given(built_lines())
def test_a_built_line_is_taken_exactly_when_the_pattern_takes_it(scan: Any, line: str) -> None:
    """One line alone, with and without a newline after it (``\\Z`` against ``\\n``)."""
    assert_same(scan, line.encode("utf-8", "surrogateescape"))
    assert_same(scan, line.encode("utf-8", "surrogateescape") + b"\n")


# ---------------------------------------------------------------------------------------------
# Random bytes and odd blocks

NEAR = [line.encode() for line in USUAL]


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes(scan: Any, data: bytes) -> None:
    assert_same(scan, data)


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(NEAR), st.integers(0, 200), st.integers(0, 200), st.binary(max_size=6)), min_size=1, max_size=20))
def test_usual_lines_with_random_bytes_spliced_in(scan: Any, edits: list[tuple[bytes, int, int, bytes]]) -> None:
    lines = [raw[:at] + junk + raw[at + cut % 3 :] for raw, at, cut, junk in edits]
    assert_same(scan, b"\n".join(lines))


ODD = [
    b"",
    b"\n",
    b"\n\n",
    b"\n\n\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\x00" * 1000,
    b"\xff\xfe" * 100,
    b"\x7f\n\x7f",
    NEAR[0],
    NEAR[0] + b"\n",
    NEAR[0] + b"\n\n",
    b"\n" + NEAR[0],
    NEAR[0] + b"\r\n",
    NEAR[0] + b"\r",
    NEAR[0] + b"\n" + NEAR[1],
    NEAR[0] + b"\x00",
    b"\x00" + NEAR[0],
    NEAR[0] + b"," + b"x" * 1_000_000,
    NEAR[0] + b",1" + b"," * 1_000_000,
    NEAR[1].replace(b"bbfw01", b"h" * 1_000_000),
    NEAR[0].replace(b"192.0.2.1", b"s" * 1_000_000),
    NEAR[0].replace(b"4242", b"4" * 1_000_000),
    NEAR[0].replace(b".000001Z", b"." + b"0" * 1_000_000 + b"Z"),
    b"9" * 1_000_000,
    (NEAR[0] + b"\n") * 20_000,
    (NEAR[0] + b"\n" + NEAR[1] + b"\n" + b"other\n") * 5_000,
    (NEAR[0] + b"\n" + NEAR[0].replace(b"2026-11-23T", b"2026-11-24T")) * 3,
    NEAR[0].replace(b",block,", b",pass,") + b"\n" + NEAR[1].replace(b",block,", b",pass,"),
    NEAR[0].replace(b"\n", b"") + b"\xc3\xa9",
]


@pytest.mark.parametrize("data", ODD, ids=range(len(ODD)))
def test_odd_blocks(scan: Any, data: bytes) -> None:
    assert_same(scan, data)


def test_many_distinct_values_grow_the_tables(scan: Any) -> None:
    """Thousands of distinct keys, prefixes, IPv6 sources and days (the tables grow many times)."""
    rng = random.Random(5)
    lines = []
    for i in range(30_000):
        line = NEAR[i % 2].replace(b"45.249.0", f"{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}".encode())
        line = line.replace(b",22,0", f",{rng.randrange(70000)},0".encode()).replace(b"2001:db8::1,", f"2001:db8::{i:x},".encode())
        lines.append(line.replace(b"2026-11-23T", f"2026-11-{10 + i % 20}T".encode()) if i % 1000 == 999 else line)
    assert_same(scan, b"\n".join(lines))


def _variants(n: int) -> list[str]:
    """Values of n bytes that differ from ``"p" * n`` in one byte each: the first, the eighth,
    the ninth and the last (the C scan keeps a value of up to 8 bytes as one word)."""
    return ["p" * n] + ["p" * at + "q" + "p" * (n - at - 1) for at in sorted({0, 7, 8, n - 1}) if 0 <= at < n]


def test_keys_of_every_length_and_devices_taking_turns(scan: Any) -> None:
    """The C scan keeps the usual key as words (the device as its number, looked up among the two
    seen last first; protocol and port as a word each, action and direction as the literal's
    number): protocols and ports of 0 to 17 bytes that differ in one byte only, three senders and
    two hosts taking turns, every action and direction, each line also last in its block without
    a newline (a value near the block's end read byte by byte)."""
    lines = []
    for n in range(18):
        for value in _variants(n):
            for i, (action, direction) in enumerate([("block", "in"), ("reject", "out"), ("pass", "in"), ("block", "out")]):
                line = NEAR[0].replace(b",tcp,", f",{value},".encode()) if n % 2 else NEAR[0].replace(b",22,0", f",{value},0".encode())
                line = line.replace(b",block,in,", f",{action},{direction},".encode())
                line = line.replace(b"192.0.2.1", f"192.0.2.{i % 3}".encode()).replace(b" pfsense ", b" pfsense " if i % 2 else b" opnsense ")
                lines.append(line)
                assert_same(scan, line)
                assert_same(scan, line[: -len(b",0")])  # the port last: its word read near the block's end
    assert_same(scan, b"\n".join(lines))
    assert_same(scan, b"\n".join(lines[::-1]) + b"\n")
    assert len(scan(b"\n".join(lines))[1]) == len(set(lines))  # each line taken, a key of its own


def test_only_bytes_are_taken(scan: Any) -> None:
    """A block is ``bytes``; anything else is a TypeError (a memoryview or bytearray could change
    under the scan, and ``_filterlog_scan_py`` needs ``bytes`` methods too)."""
    for other in (memoryview(NEAR[0]), bytearray(NEAR[0]), NEAR[0].decode(), None):
        with pytest.raises(TypeError):
            scan(other)


# ---------------------------------------------------------------------------------------------
# Memory safety: the same source under AddressSanitizer and UBSan

ASAN_CHILD = r"""
import random, sys
from normagent.plugins.firewall import _filterlog, parse
from normagent.plugins.firewall.parse import _filterlog_scan_py, packed_counts
assert _filterlog.__file__.startswith(sys.argv[1]) and parse._filterlog_scan is _filterlog.scan, "not the sanitized build"
usual = [line.encode() for line in sys.argv[2:]]
rng = random.Random(1)
alphabet = b"\n\r\t\x00\x7f\xff ,.:-[]<>0123456789Zfilterlogblockpassinout46" + bytes(range(256))
def ordered(a):
    v4 = packed_counts(a[2]) if isinstance(a[2], bytes) else a[2]
    return a[0], list(a[1].items()), list(v4.items()), list(a[3].items()), a[4]
for i in range(3000):
    lines = []
    for _ in range(rng.randrange(1, 12)):
        raw = rng.choice(usual)
        roll = rng.random()
        if roll < 0.3:
            raw = raw[: rng.randrange(len(raw) + 1)]
        elif roll < 0.7:
            at = rng.randrange(len(raw) + 1)
            raw = raw[:at] + bytes(rng.choice(alphabet) for _ in range(rng.randrange(4))) + raw[at + rng.randrange(3):]
        elif roll < 0.8:
            raw = bytes(rng.choice(alphabet) for _ in range(rng.randrange(300)))
        lines.append(raw)
    data = b"\n".join(lines) + rng.choice([b"", b"\n", b"\n\n"])
    data = bytes(bytearray(data))  # a fresh object of its exact size (PYTHONMALLOC=malloc)
    if ordered(_filterlog.scan(data)) != ordered(_filterlog_scan_py(data)):
        print("differ:", data, file=sys.stderr)
        sys.exit(3)
big = usual[0] + b"," + b"x" * 1_000_000
assert ordered(_filterlog.scan(big)) == ordered(_filterlog_scan_py(big))
for data in (b"", b"\n", usual[0], usual[0][:-1], b"\n".join(usual * 5000)):
    assert ordered(_filterlog.scan(data)) == ordered(_filterlog_scan_py(data))
print("ok")
"""


@pytest.mark.slow
def test_the_scan_is_memory_safe_under_asan_and_ubsan(tmp_path: Path) -> None:
    build = build_sanitized(SOURCE, "normagent.plugins.firewall._filterlog", tmp_path)
    assert run_sanitized(ASAN_CHILD, str(build), *USUAL, first_on_path=build).strip().endswith("ok")
