"""The C scan of netfilter LOG lines (plugins/firewall/_netfilter.c) gives exactly what its
Python reference gives (``parse.netfilter_scan_py``: the groups of ``_NETFILTER_LINE.findall``,
aggregated), on every input: the lines the fast-path tests draw, the same garbled, cut short or
missing a field, each hostile byte at every position of a usual line, random bytes and random
runs of a LOG line's own tokens, 1 MB lines, NUL/CR/DEL and bytes that are no UTF-8, empty input
and input without a final newline. The reference is also the fallback where the extension is
not built, so the whole parser is held to give the same answers with either.

Under CI a missing extension fails (the test scripts build it); elsewhere these tests skip saying
how to build it. A memory-safety run (slow) builds the same source with AddressSanitizer and
UndefinedBehaviorSanitizer and runs a differential in a child process.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normagent.plugins.firewall import parse
from normagent.plugins.firewall.collectors import LinuxSettings
from normagent.plugins.firewall.parse import NetfilterScan, NetRowsPy, linux_lines, netfilter_scan_py
from tests.plugins.firewall import test_firewall_fastpaths as fastpaths
from tests.support.sanitizers import build_sanitized, run_sanitized
from tests.support.tools import require_extension

try:
    from normagent.plugins.firewall import _netfilter
except ImportError:  # not built: each test says so through c_scan()
    _netfilter = None  # type: ignore[assignment]

SOURCE = Path(parse.__file__).with_name("_netfilter.c")
BUILD = (  # how to build it in place while working (pip builds it on install)
    "gcc -O2 -std=c11 -Wall -Wextra -shared -fPIC $(python3-config --includes) "
    "-o plugins/firewall/_netfilter$(python3-config --extension-suffix) plugins/firewall/_netfilter.c"
)
SETTINGS = fastpaths.SETTINGS


def c_scan() -> Callable[[bytes], NetfilterScan | None]:
    """The C scan; a missing extension fails under CI (the test scripts build it) and skips
    elsewhere (build it in place: ``BUILD``)."""
    module = require_extension("normagent.plugins.firewall._netfilter")
    return module.scan  # type: ignore[no-any-return]


def plain(scanned: NetfilterScan | None) -> NetfilterScan | None:
    """A scan's answer with its IPv4 sources as the reference gives them (the C scan keeps them
    in a ``Nets``, which ``NetRows.add`` reads; ``as_dict`` is what the reference's dict is)."""
    if scanned is None or isinstance(scanned[3], dict):
        return scanned
    minutes, stamps, packets, v4, v6, others = scanned
    return minutes, stamps, packets, v4.as_dict(), v6, others


def same(data: bytes) -> NetfilterScan | None:
    """Scan ``data`` with both; they must agree. The C answer (its sources as a dict), for further checks."""
    got = plain(c_scan()(data))
    assert got == netfilter_scan_py(data), data[:300]
    return got


def encode(lines: list[str], end: str = "\n") -> bytes:
    return ("\n".join(lines) + end).encode("utf-8", "surrogateescape")


ENDS = st.sampled_from(["\n", "", "\n\n", "\r\n"])

# ---------------------------------------------------------------------------------------------
# The lines the fast-path tests draw


@SETTINGS
@given(st.lists(fastpaths.netfilter_lines, max_size=60), ENDS)
def test_usual_and_other_lines_scan_alike(lines: list[str], end: str) -> None:
    same(encode(lines, end))


@SETTINGS
@given(st.lists(st.tuples(fastpaths.netfilter_lines, st.integers(min_value=0, max_value=260), st.sampled_from(fastpaths.INSERTS)), min_size=1, max_size=30), ENDS)
def test_lines_garbled_anywhere_scan_alike(edits: list[tuple[str, int, str]], end: str) -> None:
    same(encode([fastpaths._garble(line, cut, insert) for line, cut, insert in edits], end))


@SETTINGS
@given(st.lists(st.tuples(fastpaths.netfilter_lines, st.integers(min_value=0, max_value=300), st.sampled_from(fastpaths.NETFILTER_FIELDS)), min_size=1, max_size=30), ENDS)
def test_lines_cut_short_or_missing_a_field_scan_alike(edits: list[tuple[str, int, str]], end: str) -> None:
    same(encode([line[:cut] if cut % 2 else fastpaths._without(line, field) for line, cut, field in edits], end))


def test_stamps_heads_tails_and_hosts_at_the_edge_scan_alike() -> None:
    """The fast-path tests' lists of odd stamps, prefixes, fields and host names, each line
    alone (no other line to hide it) and all in one block."""
    lines = [f"{stamp} fw01 kernel: [1.5] {message}" for stamp in fastpaths.STAMPS for message in fastpaths.MESSAGES]
    lines += [f"Nov 23 07:25:53 fw01 kernel: [1.5] {head}{tail}" for head in fastpaths.HEADS for tail in fastpaths.TAILS]
    lines += [f"Nov 23 07:25:53 {host} kernel: [1.5] {message}" for host in fastpaths.HOSTS for message in fastpaths.MESSAGES]
    for line in lines:
        same(encode([line]))
    audit = [line for line in lines if "NETFILTER_CFG" in line]
    assert audit, "the messages hold an audit record of a rule change"
    assert same(encode(lines)) is None, "a block with an audit record goes the general way whole"
    got = same(encode([line for line in lines if line not in audit]))
    assert got is not None
    assert sum(got[2].values()) > len(lines) // 3, "most of these lines are of the usual shape"


@pytest.mark.parametrize("at", [0, 1, 100, 239, 240, 10_000])
def test_a_block_holding_netfilter_cfg_anywhere_scans_to_none(at: int) -> None:
    """The general way reads every line holding NETFILTER_CFG as an audit record, so the scan
    gives such a block up whole (None) wherever the word is: at the start, the end, inside a
    LOG line's prefix or field; another word is no such record."""
    line = EDGE_LINES[0]
    data = encode([line] * 50)
    for word, expected_none in ((b"NETFILTER_CFG", True), (b"NETFILTER_CFg", False), (b"NETFILTER CFG", False)):
        cut = min(at, len(data))
        edited = data[:cut] + word + data[cut:]
        got = same(edited)
        assert (got is None) is expected_none, (at, word)


# Each hostile byte (and each of the fast-path tests' inserts) at every position of a usual line
# of each shape: RFC 3164 and RFC 3339 stamps, IPv4 and IPv6, with and without ports, a kernel
# time stamp with spaces, CE/DF/MF, MAC= and none.
EDGE_LINES = fastpaths.EDGE_LINES["netfilter"][0] + [
    "Nov  3 23:59:59 h.example.org kernel: [ 123.000456] FINAL_REJECT: IN=eth0 OUT=eth1 SRC=10.0.0.5 DST=10.0.0.6 LEN=28 "
    "TOS=0x10 PREC=0x00 TTL=44 ID=60200 CE DF MF PROTO=ICMP TYPE=8 CODE=0",
    "2026-11-23T07:25:53Z fw01 kernel: IN=wg0 OUT= MAC= SRC=255.255.255.249 DST=1.2.3.4 LEN=1 TOS=0x00 PREC=0x00 TTL=1 ID=0 PROTO=2",
]
EDGE_INSERTS = sorted(set(fastpaths.EDGE_INSERTS + fastpaths.INSERTS))


@pytest.mark.parametrize("line", EDGE_LINES, ids=range(len(EDGE_LINES)))
def test_every_position_of_a_usual_line_with_a_hostile_byte_scans_alike(line: str) -> None:
    scan = c_scan()
    differ = []
    for cut in range(len(line) + 1):
        for insert in EDGE_INSERTS:
            data = encode([fastpaths._garble(line, cut, insert)])
            if plain(scan(data)) != netfilter_scan_py(data):
                differ.append((cut, insert))
    assert not differ, f"the C scan reads {len(differ)} edits otherwise, the first: {differ[:5]}"
    alone = scan(encode([line]))
    assert alone is not None and sum(alone[2].values()) == 1, "the line itself is of the usual shape"


def test_every_byte_value_in_place_of_and_before_each_byte_of_a_usual_line_scans_alike() -> None:
    """Each of the 256 byte values put in place of, and before, each byte of the usual RFC 3164
    line, alone and after the same line whole (its head then known to the scan): the stamp is
    checked a word at a time, the head compared with the known ones, PROTO and DPT kept as
    words, so every value at every place is held to the reference."""
    scan = c_scan()
    raw = USUAL_BYTES[0]
    differ = []
    for at in range(len(raw) + 1):
        for b in range(256):
            for edit in (raw[:at] + bytes([b]) + raw[at + 1 :], raw[:at] + bytes([b]) + raw[at:]):
                for data in (edit, raw + b"\n" + edit):
                    if plain(scan(data)) != netfilter_scan_py(data):
                        differ.append((at, b))
    assert not differ, f"the C scan reads {len(differ)} edits otherwise, the first: {differ[:5]}"


# ---------------------------------------------------------------------------------------------
# Random input

# The pieces a LOG line is made of, and bytes around their edges: random runs of them reach
# the pattern's branches far more often than random bytes do.
TOKENS = [
    b"\n", b" ", b"  ", b"Nov 23 07:25:53", b"Nov  3 07:25", b":53", b"2026-11-23T07:25:53", b".123456", b".1234567", b"Z", b"+01:00",
    b"-03:30", b" fw01 kernel: ", b"kernel: ", b"[1.5] ", b"[ 12.5] ", b"[", b"]", b"[UFW BLOCK] ", b"[UFW ALLOW] ", b"IN=", b"eth0",
    b" OUT=", b"OUT=", b"MAC=", b"00:11:22", b"SRC=", b"203.0.113", b".", b"9", b"0", b"25", b"255", b"256", b"09", b"2001:db8::1",
    b" DST=", b"10.0.0.5", b" LEN=", b"52", b"TOS=0x", b"0A", b" PREC=0x", b"00", b" TTL=", b" ID=", b"CE ", b"DF ", b"MF ",
    b"TC=", b" HOPLIMIT=", b" FLOWLBL=", b"PROTO=", b"TCP", b" SPT=", b"SPT=", b" DPT=", b"22", b"=", b"\t", b"\r", b"\x00", b"\x7f",
    b"\xff", b"\xc3\xa9", b"a",
]
USUAL_BYTES = [line.encode() for line in fastpaths.EDGE_LINES["netfilter"][0]]


@SETTINGS
@given(st.binary(max_size=3000))
def test_random_bytes_scan_alike(data: bytes) -> None:
    same(data)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS + USUAL_BYTES), max_size=120))
def test_random_runs_of_a_log_lines_tokens_scan_alike(tokens: list[bytes]) -> None:
    same(b"".join(tokens))


def test_usual_lines_cut_at_every_byte_scan_alike() -> None:
    """A block that ends anywhere in a usual line (a partial last line), with and without the
    lines before it."""
    for line in USUAL_BYTES:
        for cut in range(len(line) + 1):
            same(line[:cut])
            same(USUAL_BYTES[0] + b"\n" + line[:cut])


# ---------------------------------------------------------------------------------------------
# Hostile and odd blocks


@pytest.mark.parametrize("data", [
    b"", b"\n", b"\n\n", b"\r", b"\r\n", b"\x00", b"\x00\n\x00", b"\xff" * 100, b"\x7f\n",
    USUAL_BYTES[0], USUAL_BYTES[0] + b"\n", USUAL_BYTES[0] + b"\r\n", USUAL_BYTES[0] + b"\n\n", b"\n" + USUAL_BYTES[0],
    USUAL_BYTES[0].replace(b" DPT=22", b" DPT=22\x00"), USUAL_BYTES[1].replace(b"DPT=53", b"DPT=53\r"),
], ids=repr)
def test_small_odd_blocks_scan_alike(data: bytes) -> None:
    same(data)


def test_megabyte_lines_scan_alike() -> None:
    """Lines of 1 MB in each field, among usual ones: read to their end, the others still counted."""
    usual = fastpaths.BENCH_NETFILTER[:20]
    mb = 1_000_000
    hostile = [
        usual[0].replace("MAC=", "MAC=" + "a" * mb),
        usual[1].replace("[UFW BLOCK] ", "[UFW BLOCK] " + "x" * mb + " "),
        usual[2].replace("IN=eth0", "IN=" + "e" * mb),
        usual[3].replace("DST=10.0.0.5", "DST=" + "d" * mb),
        usual[4].replace("PROTO=", "PROTO=" + "P" * mb),
        usual[5].replace("DPT=", "DPT=" + "9" * mb),
        usual[6].replace("SRC=", "SRC=" + "a" * mb + ":"),
        usual[7].replace("kernel: [", "kernel: [" + " " * mb),
        usual[8] + " " + "9" * mb,
        "\x00" * mb,
        "\udcff" * mb,
    ]
    got = same(encode(usual[:10] + hostile + usual[10:]))
    assert got is not None
    assert sum(got[2].values()) >= sum("AUDIT" not in line and "usb" not in line for line in usual) - 2


LOG_LINE = (
    "Nov 23 07:25:53 fw01 kernel: [12.5] [UFW BLOCK] IN=eth0 OUT= MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 "
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 DF PROTO=TCP SPT=4242 DPT=22 WINDOW=1024"
)


def _one_byte_apart(n: int) -> list[str]:
    """Values of n bytes that differ from ``"9" * n`` in one byte each: the first, the eighth,
    the ninth and the last (the C scan keeps a PROTO or DPT of up to 8 bytes as one word)."""
    return ["9" * n] + ["9" * at + "7" + "9" * (n - at - 1) for at in sorted({0, 7, 8, n - 1}) if 0 <= at < n]


def test_protocols_and_ports_of_every_length_and_heads_taking_turns_scan_alike() -> None:
    """The C scan finds a line's (head, PROTO, DPT) entry through a cache of three words per key
    (the head's number and both lengths, PROTO's bytes, DPT's bytes): PROTO and DPT of 1 to 17
    bytes that differ in one byte only, under three heads taking turns, each line also last in its
    block ending right after DPT (a word read near the block's end), and more keys than the cache
    has slots (keys sharing a slot take turns in it)."""
    heads = ["[UFW BLOCK] IN=eth0 OUT= ", "IPTABLES-DROPPED: IN=eth0 OUT= ", "[UFW AUDIT] IN=eth1 OUT=eth0 "]
    lines = []
    for n in range(1, 18):
        for value in _one_byte_apart(n):
            for i, head in enumerate(heads):
                line = LOG_LINE.replace("[UFW BLOCK] IN=eth0 OUT= ", head)
                line = line.replace("PROTO=TCP", f"PROTO={value}") if n % 2 else line.replace("DPT=22", f"DPT={value}")
                lines.append(line)
                same(line.encode())
                same(line.split(" WINDOW=")[0].encode())  # DPT's digits the block's last bytes
                same(line.replace("PROTO=TCP SPT=4242 DPT=22 WINDOW=1024", f"PROTO={value}").encode())  # PROTO's the last
    got = same(encode(lines))
    assert got is not None and len(got[2]) == len(set(lines))  # each line counted, under a key of its own
    same(encode(lines[::-1], ""))
    many = [LOG_LINE.replace("DPT=22", f"DPT={port}").replace("PROTO=TCP", ("PROTO=TCP", "PROTO=UDP")[port % 2]) for port in range(3000)]
    got = same(encode(many + many[::-7]))
    assert got is not None and len(got[2]) == 3000


def test_only_bytes_are_taken() -> None:
    """A memoryview, bytearray or str is refused with a TypeError, never read (the reference
    takes bytes too)."""
    scan = c_scan()
    for data in (memoryview(USUAL_BYTES[0]), bytearray(USUAL_BYTES[0]), USUAL_BYTES[0].decode(), None):
        with pytest.raises(TypeError):
            scan(data)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The parser with either scan


def test_the_fast_path_uses_the_c_scan_when_built() -> None:
    """So the benchmark measures it (and the tests of the fast path run it)."""
    assert parse._netfilter_scan is c_scan()  # noqa: SLF001
    assert parse._NetRows is _netfilter.NetRows  # noqa: SLF001


def test_the_scan_takes_the_benchs_lines_whole() -> None:
    lines, blocked, networks = fastpaths.BENCH.netfilter_lines(3000, random.Random(5))  # type: ignore[attr-defined]
    got = same("".join(lines).encode())
    assert got is not None
    minutes, stamps, packets, v4, v6, others = got

    assert isinstance(v4, dict) and sum(packets.values()) + others.count(b"\n") == len(lines) and not stamps and not v6
    assert sum(n for head, counts in v4.items() if b"AUDIT" not in head for n in counts.values()) == blocked
    assert len({network for head, counts in v4.items() if b"AUDIT" not in head for network in counts}) == networks
    assert all(b"usb" in line for line in others.splitlines())


@pytest.mark.parametrize("tz", fastpaths.ZONES, ids=str)
def test_the_parser_answers_alike_with_the_c_scan_and_its_fallback(tz: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whichever scan is there (the C one where built, the reference where not), the parser's
    whole answer is the same; and the same as the general way."""
    c_scan()
    lines = fastpaths.NETFILTER_GENERATED + fastpaths.NETFILTER_REAL[:5]
    data = fastpaths.block(lines)
    ctx = fastpaths.ctx_for(tz, LinuxSettings())  # type: ignore[arg-type]

    with_c = fastpaths.summary(linux_lines(data, ctx, fast=True))
    monkeypatch.setattr(parse, "_netfilter_scan", netfilter_scan_py)
    monkeypatch.setattr(parse, "_NetRows", NetRowsPy)
    with_fallback = fastpaths.summary(linux_lines(data, ctx, fast=True))

    assert with_c == with_fallback == fastpaths.summary(linux_lines(data, ctx, fast=False))


# ---------------------------------------------------------------------------------------------
# Memory safety: the same source under AddressSanitizer and UndefinedBehaviorSanitizer

CHILD = r"""
import os, pickle, random, sys
from normagent.plugins.firewall import _netfilter as module
from normagent.plugins.firewall.parse import NetRowsPy, netfilter_scan_py
assert module.__file__.startswith(os.environ["SANITIZED_BUILD"]), module.__file__
blocks = pickle.load(open(sys.argv[1], "rb"))
def plain(got):
    return got if got is None else (*got[:3], got[3].as_dict(), *got[4:])
bad = [i for i, data in enumerate(blocks) if plain(module.scan(data)) != netfilter_scan_py(data)]
for data in (memoryview(b"x"), "x", None):
    try:
        module.scan(data)
    except TypeError:
        pass
    else:
        bad.append(repr(data))
rng = random.Random(7)
# NetRows: the blocks' sources added on random days with random heads, copied on the way, named
rows, mirror = module.NetRows(), NetRowsPy()
kept = []
for i, data in enumerate(blocks):
    got, want = module.scan(data), netfilter_scan_py(data)
    if got is None:
        continue
    heads = {head for head in want[3] if rng.random() < 0.7}
    day = rng.choice([1, 739_000, 3_652_059])
    if rng.random() < 0.2:
        kept.append((rows, rows.as_dict()))
        rows, mirror = rows.copy(), mirror.copy()
    rows.add(got[3], day, heads)
    mirror.add(want[3], day, heads)
    if i % 97 == 0 and rows.as_dict() != mirror.as_dict():
        bad.append(f"NetRows {i}")
for day in (0, 3_652_060, -5):
    try:
        rows.add(got[3], day, set())
    except ValueError:
        pass
    else:
        bad.append(f"day {day}")
names = {net: f"n{net % 7}" for _, net in mirror.as_dict() if net % 2}
if sorted(rows.unnamed(names)) != sorted(mirror.unnamed(names)):
    bad.append("unnamed")
try:
    rows.named(names)
except KeyError:
    pass
else:
    if mirror.unnamed(names):
        bad.append("named without a name")
names = {net: f"n{net % 7}" for _, net in mirror.as_dict()}
if rows.named(names) != mirror.named(names) or rows.as_dict() != mirror.as_dict() or len(rows) != len(mirror):
    bad.append("named")
if any(old.as_dict() != then for old, then in kept):
    bad.append("a copy changed")
grown = len(mirror)
# add_packed: records and dicts, good and bad (filterlog's /24 counts)
import struct
for i in range(2000):
    counts = {rng.randrange(1 << 24): rng.randrange(1, 2**40) for _ in range(rng.randrange(40))}
    packed = b"".join(struct.pack("=Qq", net, n) for net, n in counts.items())
    if rng.random() < 0.1:
        packed = packed[: rng.randrange(len(packed) + 1)]
    if rng.random() < 0.05:
        packed += struct.pack("=Qq", rng.choice([1 << 24, 2**63]), rng.choice([0, -1, 5]))
    day = rng.choice([1, 739_000, 3_652_059])
    given = packed if i % 2 else counts
    outcomes = []
    for target in (rows, mirror):
        try:
            target.add_packed(given, day)
            outcomes.append("ok")
        except (ValueError, TypeError) as exc:
            outcomes.append(type(exc).__name__)
    if outcomes[0] != outcomes[1]:
        bad.append(f"add_packed {i}: {outcomes}")
    if outcomes[0] != "ok":  # a partial add: start both over from equal rows
        rows, mirror = module.NetRows(), NetRowsPy()
if rows.as_dict() != mirror.as_dict():
    bad.append("add_packed rows")
print(f"{len(blocks)} blocks, {grown} rows, {len(bad)} differ: {bad[:5]}")
sys.exit(1 if bad else 0)
"""


def _sanitizer_blocks() -> list[bytes]:
    """A few thousand blocks: random bytes, random token runs, garbled and cut usual lines, and
    the hostile ones (a block is a `bytes` of its own size, so reading past it is caught)."""
    rng = random.Random(2026)
    lines = fastpaths.NETFILTER_GENERATED + fastpaths.NETFILTER_REAL
    blocks: list[bytes] = [b"", b"\n", b"\r", b"\x00"]
    for _ in range(1500):
        blocks.append(rng.randbytes(rng.randrange(400)))
        blocks.append(b"".join(rng.choice(TOKENS + USUAL_BYTES) for _ in range(rng.randrange(80))))
        garbled = [fastpaths._garble(rng.choice(lines), rng.randrange(260), rng.choice(EDGE_INSERTS)) for _ in range(rng.randrange(1, 6))]
        blocks.append(encode(garbled, rng.choice(["\n", ""])))
    for line in USUAL_BYTES + [line.encode() for line in EDGE_LINES[2:]]:
        blocks += [line[:cut] for cut in range(len(line) + 1)]
        blocks += [line + b"\n" + line[:cut] for cut in range(len(line) + 1)]  # cut in a head known from the line before
    usual = fastpaths.BENCH_NETFILTER[:10]
    blocks.append(encode(usual + [usual[0].replace("MAC=", "MAC=" + "a" * 1_000_000), usual[5].replace("DPT=", "DPT=" + "9" * 100_000)]))
    blocks.append(encode(fastpaths.BENCH_NETFILTER, ""))
    bench = fastpaths.BENCH.netfilter_lines(6000, random.Random(3))[0]  # type: ignore[attr-defined]
    blocks += ["".join(bench[i : i + 600]).encode() for i in range(0, len(bench), 600)]  # ~5,000 networks: the tables grow
    return blocks


@pytest.mark.slow
def test_the_c_scan_is_memory_safe_under_sanitizers(tmp_path: Path) -> None:
    """The same source built with ASan and UBSan (tests/support/sanitizers.py), run over a few
    thousand random and hostile blocks against the reference: no report, no difference."""
    build = build_sanitized(SOURCE, "normagent.plugins.firewall._netfilter", tmp_path / "build")
    blocks = tmp_path / "blocks.pickle"
    blocks.write_bytes(pickle.dumps(_sanitizer_blocks()))

    out = run_sanitized(CHILD, str(blocks), first_on_path=build)

    assert " 0 differ" in out, out
    assert int(out.split(" rows")[0].split()[-1]) > 1000, f"NetRows grew through several sizes: {out}"
