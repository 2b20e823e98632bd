"""The firewall parsers' fast paths give the answers of the general way, line for line.

``parse_linux_lines`` and ``parse_appliance_lines`` take the usual netfilter LOG lines and
filterlog spool lines apart with one bytes pattern per block and count them per distinct value
(``_netfilter_fast``, ``_filterlog_fast``); every other line goes the general way (decoded, the
rules one line at a time), which is the definition. These tests hold the whole parser to the
general way on the same block (real lines, generated lines of every shape, and the same garbled
anywhere), and to each line read alone by the general way (real and generated lines).
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from collections import Counter
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from normagent import Count, Event, ParseContext, ParseResult, Rollup, RollupRows, TextBlock
from normagent.plugins.firewall.collectors import ApplianceSettings, Device, LinuxSettings
from normagent.plugins.firewall.parse import (
    BY_NETWORK,
    CARRY_FROM,
    appliance_lines,
    _minute_day_general,
    linux_lines,
    minute_day,
    network_pseudonyms,
    parse_appliance_lines,
    parse_linux_lines,
    port_key,
)
from normagent.model import carry_json
from normagent.privacy import Pseudonymiser
from normagent.sources.syslog import spool_line
from normagent.testing import rollup_rows, test_pseudonymiser

ROOT = Path(__file__).parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "logs" / "firewall"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
# Whole-hour and half-hour offsets (a local hour then straddles a UTC day), with and without DST.
ZONES: list[tzinfo] = [ZoneInfo("Europe/Oslo"), timezone.utc, ZoneInfo("Asia/Kolkata"), ZoneInfo("America/St_Johns")]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# "-" is what the spool writes for an unknown sender, and RFC 5424's nil host: a device may be
# configured under it, and a nil host must then not be taken for it.
DEVICES = ApplianceSettings(
    devices={"edge": Device(senders=("192.0.2.1",)), "core": Device(senders=("pfsense", "bbfw01")), "nil": Device(senders=("-",))}
)


def _bench() -> object:
    """bench/bench_firewall.py, for the lines it generates."""
    path = ROOT / "bench" / "bench_firewall.py"
    spec = importlib.util.spec_from_file_location("bench_firewall_for_fastpaths", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_firewall_for_fastpaths"] = module
    spec.loader.exec_module(module)
    return module


BENCH = _bench()

# ---------------------------------------------------------------------------------------------
# Lines of every shape the fast paths meet, and some they must leave alone


def _netfilter_line(rng: random.Random) -> str:
    """A kernel LOG line as rsyslog writes it, in any of the usual variants."""
    stamp = rng.choice(
        [
            f"Nov {rng.choice([' 3', '23', '30'])} {rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}",
            f"Dec 31 23:{rng.randrange(50, 60)}:{rng.randrange(60):02d}",
            f"Jan  1 00:0{rng.randrange(3)}:{rng.randrange(60):02d}",
            f"2026-11-{rng.choice(['22', '23', '24'])}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
            + rng.choice(["", ".5", ".123456"])
            + rng.choice(["Z", "+01:00", "-03:30", "+05:30", "+00:00"]),
        ]
    )
    host = rng.choice(["fw01", "clinic-srv1", "h.example.org", "OpenWRT"])
    ts = rng.choice(["", f"[{rng.randrange(10**6)}.{rng.randrange(10**6):06d}] ", f"[ {rng.randrange(1000)}.{rng.randrange(10**6):06d}] "])
    prefix = rng.choice(
        ["[UFW BLOCK] ", "[UFW ALLOW] ", "[UFW AUDIT] ", "IPTABLES-DROPPED: ", "FINAL_REJECT: ", "filter_IN_public_DROP: ",
         "DROP(src wan)", "", "IPT: CBLK ", "ACCEPT-IN ", "DENY ", "x", "[UFW AUDIT INVALID] "]
    )
    inside, outside = rng.choice([("eth0", ""), ("", "eth0"), ("eth0", "eth1"), ("", ""), ("wg0", ""), ("", "lo")])
    mac = rng.choice(["", "MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 ", "MAC= "])
    v6 = rng.random() < 0.15
    if v6:
        src = rng.choice(["2001:db8::1", "2001:db8:1:2::5", "fe80::1", f"2a01:{rng.randrange(65536):x}::{rng.randrange(65536):x}"])
        middle = f"DST=2001:db8::2 LEN={rng.randrange(40, 1500)} TC=0 HOPLIMIT=64 FLOWLBL={rng.randrange(10**6)} "
    else:
        src = rng.choice(
            [
                f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(8)}.{rng.randrange(256)}",
                "0.0.0.0", "255.255.255.255", "10.0.0.5", "192.168.1.102",
            ]
        )
        flags = "".join(f for f in ("CE ", "DF ", "MF ") if rng.random() < 0.4)
        middle = f"DST=10.0.0.5 LEN={rng.randrange(20, 1500)} TOS=0x{rng.choice(['00', '10', '02'])} PREC=0x00 TTL={rng.randrange(1, 256)} ID={rng.randrange(65536)} {flags}"
    proto = rng.choice(["TCP", "UDP", "ICMP", "ICMPv6", "2", "47", "6", "17", "SCTP"])
    if proto in ("TCP", "UDP", "6", "17", "SCTP"):
        ports = f" SPT={rng.randrange(65536)} DPT={rng.choice([22, 80, 443, 3389, 0, 65535, rng.randrange(65536)])}"
        tail = rng.choice([" WINDOW=1024 RES=0x00 SYN URGP=0", " LEN=83", "", " WINDOW=501 RES=0x00 ACK PSH FIN URGP=0 "])
    else:
        ports = ""
        tail = rng.choice([" TYPE=8 CODE=0 ID=10466 SEQ=21229", "", " TYPE=3 CODE=3 [SRC=10.0.0.5 DST=1.2.3.4 LEN=40 PROTO=TCP SPT=1 DPT=2 ]"])
    return f"{stamp} {host} kernel: {ts}{prefix}IN={inside} OUT={outside} {mac}SRC={src} {middle}PROTO={proto}{ports}{tail}"


def _other_linux_line(rng: random.Random) -> str:
    return rng.choice(
        [
            "Nov 23 07:25:53 fw01 kernel: [12.5] usb 1-1: new high-speed USB device number 3 using xhci_hcd",
            "Nov 23 07:00:00 host systemd[1]: Reloaded firewalld.service - firewalld - dynamic firewall daemon.",
            "Nov 23 07:00:01 host systemd[1]: Reloaded ufw.service.",
            "",
            "Nov 23 07:25:53 fw01 kernel: IN=eth0 OUT= garbage",
            "2026-11-23T07:25:53.123456+01:00 fw01 kernel: [1.0] IN= OUT= SRC=1.2.3.4",
        ]
    )


def _filterlog_message(rng: random.Random) -> str:
    """A pfSense/OPNsense filterlog message, RFC 3164 or RFC 5424, IPv4 or IPv6: a usual one,
    or one with one part at or beyond the edge of what the fast path takes."""
    odd = rng.choice(["", "", "", "action", "direction", "src", "pri", "host", "month", "tag", "ports", "stamp", "sd"])

    def pick(usual: list[str], unusual: list[str], part: str) -> str:
        return rng.choice(unusual if odd == part else usual)

    action = pick(["block", "block", "pass", "reject"], ["match", "Block", "BLOCK", "nat", ""], "action")
    direction = pick(["in", "out"], ["sideways", "IN", ""], "direction")
    if rng.random() < 0.8:
        proto, pid = rng.choice([("tcp", "6"), ("udp", "17"), ("icmp", "1"), ("carp", "112"), ("TCP", "6")])
        src = pick(
            [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(8)}.{rng.randrange(1, 255)}", "0.0.0.0", "10.9.0.119"],
            ["10.9.0.256", "10.9.0.09", "10.09.0.1", "300.1.2.3", "::ffff:10.9.0.1", "10.9.0.1x", "", "1.2.3"],
            "src",
        )
        csv = f"5,,,1000102433,em0,match,{action},{direction},4,0x0,,64,{rng.randrange(65536)},0,none,{pid},{proto},60,{src},10.0.0.5"
    else:
        proto, pid = rng.choice([("tcp", "6"), ("udp", "17"), ("ipv6-icmp", "58")])
        src = pick(["2001:db8::1", "fe80::1:2", "2a01:4f8::7"], ["2001:db8::1%em0", "[2001:db8::1]", "x", ""], "src")
        csv = f"7,,,1000000105,em0,match,{action},{direction},6,0x00,0x00000,64,{proto},{pid},60,{src},2001:db8::2"
    if proto.lower() in ("tcp", "udp"):
        csv += pick(
            [f",{rng.randrange(1024, 65535)},{rng.choice([22, 443, 53, 0, 65535])},0", f",{rng.randrange(65536)},{rng.randrange(65536)},20,S,1,,64240,,mss"],
            [",x,22", ",1234", "", ",1,", ",1,22 ", ",1,65536", ",1,2\t3"],
            "ports",
        )
    else:
        csv += rng.choice([",datalength=36", ",request,1,2", ""])
    pri = pick(["134", "6", "191", "13", "013", "0"], ["192", "999", "1345", "x", ""], "pri")
    if rng.random() < 0.75:
        host = pick(["pfsense ", "pfSense ", "", "filterlog ", "fw.example.org "], ["pf: ", "pf:sense ", "[pf] ", "pf=1 ", "pf(x) ", "p\u00e6 "], "host")
        month = pick(["Nov", "Jan"], ["NOV", "nov", "Foo", "No"], "month")
        tag = pick(["[4242]", "[1]", ""], ["[]", "[x]", "[1 ]", "[1]["], "tag")
        return f"<{pri}>{month} {rng.choice([' 8', '23'])} 12:37:34 {host}filterlog{tag}: {csv}"
    stamp = pick(["2021-08-04T06:59:07.691848+04:00", "-", "2026-11-23T07:00:00Z"], ["2026-11-23T07:00:00.1234567890Z", "2026-11-23 07:00:00Z", "yesterday", "2026-11-23T07:00:00+0100"], "stamp")
    host = pick(["BBFW01.posoiden.local", "-", "bbfw01"], ["pf:x", "p\u00e6"], "host")
    msgid, sd = pick(["-", "ID47"], ["", "a b"], "sd"), pick(["-"], ['[x@1 a="b"]', "-x", "[bad"], "sd")
    return f"<{pri}>1 {stamp} {host} filterlog 48906 {msgid} {sd} {csv}"


def _spooled(message: str, sender: str, at: datetime) -> str:
    return spool_line(at, sender, message.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape").rstrip("\n")


def _filterlog_line(rng: random.Random) -> str:
    at = datetime(2026, 11, 23, rng.randrange(24), rng.randrange(60), rng.randrange(60), rng.randrange(10**6), tzinfo=timezone.utc)
    return _spooled(_filterlog_message(rng), rng.choice(["192.0.2.1", "192.0.2.2", "203.0.113.5", "-"]), at)


def _other_appliance_line(rng: random.Random) -> str:
    at = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
    return rng.choice(
        [
            _spooled("<134>Nov 23 07:00:00 fw %ASA-4-106023: Deny tcp src outside:203.0.113.9/5 dst inside:10.0.0.5/22 by access-group", "192.0.2.9", at),
            _spooled('<134>date=2016-01-01 time=1 devid=F type=traffic action=deny proto=6 srcip=198.51.100.7 dstport=443', "192.0.2.9", at),
            _spooled("<134>Nov 23 07:00:00 fw sshd[1]: hello", "192.0.2.9", at),
            "not a spool line",
            "",
            "2026-11-31T07:00:00.000000Z 192.0.2.1 <134>Nov 23 07:00:00 pfsense filterlog[1]: 5,,,0,em0,match,block,in,4,0x0,,64,1,0,none,6,tcp,60,1.2.3.4,10.0.0.5,1,22,0",
        ]
    )


def _lines(make: object, others: object, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [others(rng) if rng.random() < 0.1 else make(rng) for _ in range(n)]  # type: ignore[operator]


BENCH_NETFILTER = [line.rstrip("\n") for line in BENCH.netfilter_lines(400, random.Random(7))[0]]  # type: ignore[attr-defined]
BENCH_FILTERLOG = [line.rstrip("\n") for line in BENCH.filterlog_lines(400, random.Random(7))[0]]  # type: ignore[attr-defined]
NETFILTER_REAL = (FIXTURES / "netfilter" / "kern.log").read_text().splitlines() + (FIXTURES / "audit" / "audit.log").read_text().splitlines()
NETFILTER_GENERATED = BENCH_NETFILTER + _lines(_netfilter_line, _other_linux_line, 1500, 11)
FILTERLOG_REAL = [
    _spooled(("<134>" + line) if not line.startswith("1 ") else "<134>" + line, sender, datetime(2026, 11, 23, 7, i, tzinfo=timezone.utc))
    for i, line in enumerate((FIXTURES / "pfsense" / "filterlog.log").read_text().splitlines())
    for sender in ("192.0.2.1", "198.51.100.77")
]
FILTERLOG_GENERATED = BENCH_FILTERLOG + _lines(_filterlog_line, _other_appliance_line, 1500, 13)


def _any(usual: list[str], make: object, others: object) -> st.SearchStrategy[str]:
    """A line made by a Random that hypothesis draws (every shape alike likely, and shrinkable):
    one of the bench's, a generated one, or another line."""

    def line(rng: random.Random) -> str:
        roll = rng.random()
        return rng.choice(usual) if roll < 0.2 else others(rng) if roll < 0.3 else make(rng)  # type: ignore[operator,no-any-return]

    return st.randoms(use_true_random=False).map(line)


netfilter_lines = st.one_of(st.sampled_from(NETFILTER_REAL), _any(BENCH_NETFILTER, _netfilter_line, _other_linux_line))
filterlog_lines = st.one_of(st.sampled_from(FILTERLOG_REAL), _any(BENCH_FILTERLOG, _filterlog_line, _other_appliance_line))

# Edits anywhere in a line: bytes the patterns take or refuse, the marks they look for, and
# characters that str patterns read otherwise than bytes patterns do (Unicode digits and spaces).
INSERTS = ["", " ", "  ", "\t", "x", "=", "[", "]", ".", ",", "0", "9", "-", ":", "Z", "T", "é", "²", "٣", "\r", "\x00", "\x1c",
           "\xa0", "\u2028", " SPT=", " DPT=", " PROTO=", "IN=", " OUT=", "SRC=", "NETFILTER_CFG", " kernel: ", "block", "pass",
           "filterlog[1]: ", "<13>", "1 ", "ALLOW", "DROP", "256", "01", "::", "\ufeff",
           # Bytes that are no UTF-8 (a block is encoded with surrogateescape): a stray lead
           # byte, a lone continuation byte, 0xff; and DEL.
           "\udcc3", "\udc80", "\udcff", "\x7f"]


def _garble(line: str, cut: int, insert: str) -> str:
    """``line`` with ``insert`` put in at ``cut`` (an empty insert deletes the character there)."""
    return line if cut >= len(line) else line[:cut] + insert + line[cut + (not insert) :]


# ---------------------------------------------------------------------------------------------
# Helpers


def ctx_for(tz: tzinfo, settings_: object, carry: object = None, *, examples: int = 3, final: bool = False) -> ParseContext:
    return ParseContext(now=NOW, tz=tz, pseudonymise=test_pseudonymiser(), settings=settings_, examples=examples, carry=carry, final=final)  # type: ignore[arg-type]


def block(lines: list[str], origin: str = "/var/log/kern.log") -> TextBlock:
    data = "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")
    return TextBlock(data=data, origin=origin, mtime=NOW, lines=len(lines))


def summary(result: ParseResult) -> tuple[object, ...]:
    """Everything a result says, comparable (observations in order, carry, examples)."""
    observations = [repr(rollup_rows([o])) if isinstance(o, RollupRows) else repr(o) for o in result.observations]
    return (result.parsed, result.ignored, result.unparsed, observations, result.examples, json.dumps(carry_json(result.carry), sort_keys=True))


def totals(results: list[ParseResult]) -> tuple[object, ...]:
    """What some results add up to: outcomes, counters by labels, rollup rows by day and key,
    events by key."""
    counts: Counter[tuple[object, ...]] = Counter()
    rows: Counter[tuple[object, ...]] = Counter()
    events: set[tuple[object, ...]] = set()
    outcomes = [0, 0, 0]
    for result in results:
        outcomes = [outcomes[0] + result.parsed, outcomes[1] + result.ignored, outcomes[2] + result.unparsed]
        for obs in result.observations:
            if isinstance(obs, Count):
                counts[(obs.metric, obs.labels)] += obs.value
            elif isinstance(obs, (Rollup, RollupRows)):
                for row in rollup_rows([obs]):
                    rows[(row.name, row.day, row.key)] += row.value
            elif isinstance(obs, Event):
                events.add((obs.kind, obs.key, obs.at, tuple(sorted(obs.attrs.items()))))
    return tuple(outcomes), +counts, +rows, events


# ---------------------------------------------------------------------------------------------
# netfilter: the whole parser against the general way


@SETTINGS
@given(st.lists(netfilter_lines, min_size=1, max_size=60), st.sampled_from(ZONES))
def test_netfilter_lines_read_alike_by_the_fast_path_and_the_general_way(lines: list[str], tz: tzinfo) -> None:
    """Any mix of real and generated lines: the same outcomes, counts, rows, examples and carry."""
    data = block(lines)
    ctx = ctx_for(tz, LinuxSettings())

    assert summary(linux_lines(data, ctx, fast=True)) == summary(linux_lines(data, ctx, fast=False))


@SETTINGS
@given(
    st.lists(st.tuples(netfilter_lines, st.integers(min_value=0, max_value=260), st.sampled_from(INSERTS)), min_size=1, max_size=30),
    st.sampled_from(ZONES),
)
def test_netfilter_lines_garbled_anywhere_read_alike(edits: list[tuple[str, int, str]], tz: tzinfo) -> None:
    """Real and generated lines edited at any point: the same answers, line for line."""
    data = block([_garble(line, cut, insert) for line, cut, insert in edits])
    ctx = ctx_for(tz, LinuxSettings())

    assert summary(linux_lines(data, ctx, fast=True)) == summary(linux_lines(data, ctx, fast=False))


@SETTINGS
@given(st.lists(netfilter_lines, min_size=1, max_size=60), st.sampled_from(ZONES))
def test_netfilter_lines_count_as_each_line_alone(lines: list[str], tz: tzinfo) -> None:
    """The fast path over a block adds up to each line read alone by the general way (audit
    records aside: one change writes several of them, told apart within a block)."""
    lines = [line for line in lines if "NETFILTER_CFG" not in line]
    ctx = ctx_for(tz, LinuxSettings(), examples=0)

    got = parse_linux_lines(block(lines), ctx)
    alone = [linux_lines(block([line]), ctx, fast=False) for line in lines]

    assert totals([got]) == totals(alone)


STAMPS = [
    "Nov 23 07:25:53", "Nov  3 07:25:53", "Jan  1 00:00:00", "Dec 31 23:59:59", "Feb 29 12:00:00", "Feb 30 12:00:00",
    "Foo 23 07:25:53", "Nov 23 24:00:00", "Nov 23 29:59:59", "Nov 23 07:59:59", "Mar 29 02:30:00", "Oct 25 02:30:00",
    "Nov 23 05:30:00", "Nov 23 23:30:00", "Nov 32 07:00:00", "Nov 00 07:00:00", "Nov 24 11:59:59", "Nov 24 12:00:00",
    "Nov 24 12:00:30", "Nov 24 12:01:00", "Nov 24 11:59:00",
    "2026-11-23T07:25:53+01:00", "2026-11-23T07:25:53.123456+01:00", "2026-11-23T07:25:53.5-03:30", "2026-11-23T25:00:00+01:00",
    "2026-02-30T07:00:00+01:00", "2026-11-23T23:59:59+05:30", "2026-11-23T00:10:00+05:30", "2026-11-23T07:25:53Z",
    "2026-11-23T07:25:53+0100", "2026-11-23 07:25:53+01:00", "0000-01-01T00:00:00+00:00", "2026-13-01T00:00:00Z",
    "2026-11-23T23:30:00-01:00", "2026-11-23T07:25:53.1234567+01:00",
]
MESSAGES = [
    "[UFW BLOCK] IN=eth0 OUT= MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 DF PROTO=TCP SPT=5 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0",
    "[UFW AUDIT] IN= OUT=ppp0 SRC=117.197.243.67 DST=218.248.255.163 LEN=62 TOS=0x00 PREC=0x00 TTL=64 ID=52751 DF PROTO=UDP SPT=57548 DPT=53 LEN=42",
    "IN=eth0 OUT=eth1 SRC=198.51.100.7 DST=10.0.0.5 LEN=28 TOS=0x00 PREC=0x00 TTL=44 ID=60200 PROTO=ICMP TYPE=8 CODE=0 ID=10466 SEQ=21229",
]


@pytest.mark.parametrize("tz", ZONES, ids=str)
@pytest.mark.parametrize("stamp", STAMPS)
def test_every_stamp_is_dated_alike_by_the_fast_path_and_the_general_way(stamp: str, tz: tzinfo) -> None:
    """Odd days and hours, DST gaps, half-hour zones, a year that RFC 3164 leaves to be guessed
    near the day after now: the fast path dates lines as ``line_time`` does."""
    data = block([f"{stamp} fw01 kernel: [1.5] {message}" for message in MESSAGES])
    ctx = ctx_for(tz, LinuxSettings())

    assert summary(linux_lines(data, ctx, fast=True)) == summary(linux_lines(data, ctx, fast=False))


_MINUTE_ZONES: list[tzinfo] = [
    *ZONES, ZoneInfo("America/Sao_Paulo"), ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Pacific/Apia"),
    timezone(-timedelta(hours=3, minutes=30)), timezone(timedelta(hours=14)),
]


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(["Jan", "Feb", "Mar", "Apr", "Oct", "Nov", "Dec", "Foo", "Nov", "Dec"]),
    st.sampled_from([" 1", " 9", "01", "00", "28", "29", "30", "31", "32", "99", "24", "25"]),
    st.integers(0, 29),
    st.integers(0, 59),
    st.sampled_from(_MINUTE_ZONES),
    st.datetimes(min_value=datetime(2019, 12, 28), max_value=datetime(2027, 1, 5), timezones=st.just(timezone.utc))
    | st.sampled_from([datetime(2026, 12, 31, 23, 30, tzinfo=timezone.utc), datetime(2025, 12, 31, 0, 0, 30, tzinfo=timezone.utc),
                       datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc), datetime(2028, 2, 28, 23, 0, 30, tzinfo=timezone.utc)]),
)
def test_a_short_minute_is_dated_as_line_time_dates_its_first_and_last_second(
    month: str, day: str, hour: int, minute: int, tz: tzinfo, ref: datetime
) -> None:
    """``minute_day`` reads the scans' RFC 3164 minutes without ``line_time``'s patterns: the same
    day (or None) on every month, day and hour, valid or not, near New Year (the year RFC 3164
    leaves out), in DST gaps and in half-hour and +14 zones."""
    text = f"{month} {day} {hour:02d}:{minute:02d}"
    minute_day.cache_clear()
    assert minute_day(text, "", ref, tz) == _minute_day_general(text, "", ref, tz)


@pytest.mark.parametrize("tz", _MINUTE_ZONES, ids=str)
def test_a_short_minute_at_the_edge_of_the_year_rfc3164_leaves_out(tz: tzinfo) -> None:
    """``now`` a day (and a second or a minute either way) before a minute's first or last second,
    in the year after or the year of ``now``: the guessed year changes there, and ``minute_day``
    takes it as ``line_time`` does (the next year, ``<=`` a day after ``now``)."""
    minutes = ["Jan 01 00:00", "Jan  1 00:10", "Dec 31 23:59", "Feb 29 12:00", "Mar 01 00:00", "Nov 23 07:25", "Oct 25 02:30",
               "Mar 29 02:30"]
    for text in minutes:
        month, day, clock = text.split()
        for year in (2026, 2027, 2028):
            for second in (0, 59):
                try:
                    local = datetime(year, _MONTHS.index(month) + 1, int(day), int(clock[:2]), int(clock[3:]), second)
                except ValueError:
                    continue
                for delta in (-61, -60, -1, 0, 1, 59, 60):
                    ref = (local - timedelta(days=1) + timedelta(seconds=delta)).replace(tzinfo=tz).astimezone(timezone.utc)
                    minute_day.cache_clear()
                    assert minute_day(text, "", ref, tz) == _minute_day_general(text, "", ref, tz), (text, ref)


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


HEADS = [
    "[UFW BLOCK] IN=eth0 OUT= ", "IN=eth0 OUT= ", "XININ=eth0 OUT= ", "IN=IN= OUT= ", "pre=x IN=eth0 OUT= ", "[ 1.5] IN=eth0 OUT= ",
    "[1.5]IN=eth0 OUT= ", "[ 1.٣] IN=eth0 OUT= ", "DROP\tIN=eth0 OUT= ", "ALLOW IN=eth0 OUT= ", "AL1LOW IN=eth0 OUT= ",
    "B1LOCK ALLOW IN=eth0 OUT= ", "IN=0 OUT=5 ", "IN=eth0  OUT= ", "IN=eth0 OUT=  ", "IN=é OUT= ", "kernel: IN=eth0 OUT= ",
    "IN=eth0 OUT= PHYSIN=eth1 ", "IN=eth0 OUT= MAC=x MAC=y ", "a=b OUT=x IN= OUT= ", "NETFILTER_CFG IN=eth0 OUT= ",
]
TAILS = [
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 DF PROTO=TCP SPT=5 DPT=22 WINDOW=1",
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 DF PROTO=TCP SPT=5 DPT=22",
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=TCP SPT=5 DPT=22٣ WINDOW=1",
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=TCP SPT=5٣ DPT=22 WINDOW=1",
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=TCP SPT=5 DPT=x",
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=TCP SPT= DPT=22",
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=TCPé SPT=5 DPT=22",
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=TCP\tSPT=5 DPT=22",
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=TCP SPT=5 DPT=99999",
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=TCP SPT=5 DPT=" + "9" * 5000,
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=TCP SPT=5 DPT=22\r",
    "SRC=203.0.113.256 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=UDP SPT=5 DPT=22",
    "SRC=203.0.113.09 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=UDP SPT=5 DPT=22",
    "SRC=203.00.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=UDP SPT=5 DPT=22",
    "SRC=300.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=UDP SPT=5 DPT=22",
    "SRC=0.0.0.0 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=UDP SPT=5 DPT=22",
    "SRC=::ffff:203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=UDP SPT=5 DPT=22",
    "SRC=2001:db8::1 DST=2001:db8::2 LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=5 DPT=443 WINDOW=1",
    "SRC=2001:DB8::1 DST=2001:db8::2 LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=5 DPT=443 WINDOW=1",
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 DF PROTO=6 SPT=5 DPT=22",
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 CE DF MF PROTO=ICMP TYPE=3 CODE=3 [SRC=1.2.3.4 DST=5.6.7.8 LEN=1 PROTO=TCP SPT=1 DPT=2 ]",
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=ICMP SPT=5 DPT=22",
    "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 FRAG:5 PROTO=UDP SPT=5 DPT=22",
    "SRC=203.0.113.9 DST=10.0.0.5 PROTO=UDP LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 PROTO=TCP SPT=5 DPT=22",
]


@pytest.mark.parametrize("head", HEADS)
def test_prefixes_interfaces_and_fields_at_the_edge_of_the_fast_shape(head: str) -> None:
    """Prefixes with IN= or "=", tabs, Unicode digits and spaces, odd sources, protocols and
    ports: what the fast path takes it reads as the general way does."""
    data = block([f"Nov 23 07:25:53 fw01 kernel: [1.5] {head}{tail}" for tail in TAILS])
    ctx = ctx_for(ZONES[0], LinuxSettings())

    assert summary(linux_lines(data, ctx, fast=True)) == summary(linux_lines(data, ctx, fast=False))


def test_the_fast_path_takes_the_usual_lines() -> None:
    """Not a test that cannot fail by passing everything to the general way: the bench's lines
    are all taken by the pattern, none is left over."""
    from normagent.plugins.firewall.parse import Tally, _netfilter_fast

    lines, blocked, _ = BENCH.netfilter_lines(2000, random.Random(3))  # type: ignore[attr-defined]
    data = "".join(lines).encode()
    tally = Tally(ctx_for(timezone.utc, LinuxSettings()))

    parsed, rest = _netfilter_fast(data, tally, "local", NOW, timezone.utc)

    assert parsed == blocked and rest.count(b"\n") == sum(" usb " in line for line in lines)


# ---------------------------------------------------------------------------------------------
# filterlog: the whole parser against the general way


@SETTINGS
@given(st.lists(filterlog_lines, min_size=1, max_size=60), st.sampled_from(ZONES))
def test_filterlog_lines_read_alike_by_the_fast_path_and_the_general_way(lines: list[str], tz: tzinfo) -> None:
    data = block(lines, origin="/var/lib/normagent/syslog/syslog.log")
    ctx = ctx_for(tz, DEVICES)

    assert summary(appliance_lines(data, ctx, fast=True)) == summary(appliance_lines(data, ctx, fast=False))


@SETTINGS
@given(
    st.lists(st.tuples(filterlog_lines, st.integers(min_value=0, max_value=260), st.sampled_from(INSERTS)), min_size=1, max_size=30),
    st.sampled_from(["/var/lib/normagent/syslog/syslog.log", "/srv/syslog/firewalls.log"]),
)
def test_filterlog_lines_garbled_anywhere_read_alike(edits: list[tuple[str, int, str]], origin: str) -> None:
    """Spool lines edited at any point, in the spool and in a syslog server's file."""
    data = block([_garble(line, cut, insert) for line, cut, insert in edits], origin=origin)
    ctx = ctx_for(timezone.utc, DEVICES)

    assert summary(appliance_lines(data, ctx, fast=True)) == summary(appliance_lines(data, ctx, fast=False))


@SETTINGS
@given(st.lists(filterlog_lines, min_size=1, max_size=60))
def test_filterlog_lines_count_as_each_line_alone(lines: list[str]) -> None:
    ctx = ctx_for(timezone.utc, DEVICES, examples=0)
    origin = "/var/lib/normagent/syslog/syslog.log"

    got = parse_appliance_lines(block(lines, origin), ctx)
    alone = [appliance_lines(block([line], origin), ctx, fast=False) for line in lines]

    assert totals([got]) == totals(alone)


def test_the_filterlog_fast_path_takes_the_usual_lines() -> None:
    from normagent.plugins.firewall.parse import DeviceMap, Tally, _filterlog_fast

    lines, blocked, _ = BENCH.filterlog_lines(2000, random.Random(3))  # type: ignore[attr-defined]
    tally = Tally(ctx_for(timezone.utc, DEVICES))

    parsed, rest = _filterlog_fast("".join(lines).encode(), tally, DeviceMap.from_settings(DEVICES.devices))

    assert (parsed, rest) == (blocked, b"")


# ---------------------------------------------------------------------------------------------
# Source-network rows carried across the blocks of a backlog


def _big_block(lines: list[str], origin: str) -> TextBlock:
    """Whole copies of ``lines`` to at least ``CARRY_FROM`` bytes: a block of a backlog."""
    one = "".join(line + "\n" for line in lines)
    copies = CARRY_FROM // len(one.encode()) + 1
    return block(lines * copies, origin)


@pytest.mark.parametrize(("parse", "lines", "origin", "settings_"), [
    (parse_linux_lines, NETFILTER_GENERATED, "/var/log/kern.log", LinuxSettings()),
    (parse_appliance_lines, FILTERLOG_GENERATED, "/var/lib/normagent/syslog/syslog.log", DEVICES),
], ids=["netfilter", "filterlog"])
def test_a_backlogs_network_rows_are_carried_and_written_once(parse: object, lines: list[str], origin: str, settings_: object) -> None:
    """Two full blocks carry their rows (through JSON, as the ledger keeps them), the driver's
    empty block writes them: the same rows as each block alone, none lost, none twice."""
    big = _big_block(lines, origin)
    first = parse(big, ctx_for(timezone.utc, settings_, examples=0))  # type: ignore[operator]
    second = parse(big, ctx_for(timezone.utc, settings_, json.loads(json.dumps(carry_json(first.carry))), examples=0))  # type: ignore[operator]
    end = parse(TextBlock(b"", origin, None, 0), ctx_for(timezone.utc, settings_, json.loads(json.dumps(carry_json(second.carry))), examples=0))  # type: ignore[operator]
    alone = parse(big, ctx_for(timezone.utc, settings_, examples=0, final=True))  # type: ignore[operator]

    assert first.carry and not [o for o in rollup_rows(first.observations + second.observations) if o.name == BY_NETWORK]
    assert end.carry is None
    written = Counter({(o.day, o.key): o.value for o in rollup_rows(end.observations)})
    once = Counter({(o.day, o.key): o.value for o in rollup_rows(alone.observations) if o.name == BY_NETWORK})
    assert written and written == once + once
    carried = [key for keys in carry_json(first.carry)["rows"].values() for key in keys]  # type: ignore[index,union-attr]
    assert all(len(key) == 16 and "." not in key and ":" not in key for key in carried), "the carry holds pseudonyms, never an address"


def test_a_carry_handed_on_in_memory_counts_as_one_read_back_from_the_ledger() -> None:
    """The driver hands a parser's carry to the next block as it is (its numbers are not checked
    again then); read back from the ledger's JSON, the same rows come out."""
    big = _big_block(NETFILTER_GENERATED, "/var/log/kern.log")
    outcomes = []
    for through_json in (False, True):
        carry = None
        for _ in range(3):
            carry = parse_linux_lines(big, ctx_for(timezone.utc, LinuxSettings(), carry, examples=0)).carry
            carry = json.loads(json.dumps(carry_json(carry))) if through_json else carry
        end = parse_linux_lines(TextBlock(b"", "/var/log/kern.log", None, 0), ctx_for(timezone.utc, LinuxSettings(), carry, examples=0))
        outcomes.append(sorted((o.day, o.key, o.value) for o in rollup_rows(end.observations)))

    assert outcomes[0] and outcomes[0] == outcomes[1]


@pytest.mark.parametrize("carry", [
    {"since": NOW.timestamp(), "rows": {"2026-11-22": {"aaaa": 3, "bbbb": "x"}, "not a day": {"cccc": 1}, "2026-11-23": "nope"}},
    {"since": "yesterday", "rows": []},
    ["not", "a", "carry"],
    {"rows": {"2026-11-23": {"dddd": 2.0, "eeee": None}}},
])
def test_a_damaged_carry_keeps_what_is_a_count_and_never_wedges_the_source(carry: object) -> None:
    """The carry is JSON from the ledger: what is not a count is left out, never a crash."""
    lines = NETFILTER_GENERATED[:50]
    ctx = ctx_for(timezone.utc, LinuxSettings(), carry, final=True)

    fast, general = linux_lines(block(lines), ctx, fast=True), linux_lines(block(lines), ctx, fast=False)

    assert summary(fast) == summary(general) and fast.carry is None
    assert all(isinstance(o.value, (int, float)) for o in rollup_rows(fast.observations)), "a row that is no count is left out"


def test_rows_wait_at_most_carry_for() -> None:
    """A reader that never catches up (full blocks, run after run) still writes its rows."""
    from normagent.plugins.firewall.parse import CARRY_FOR

    big = _big_block(NETFILTER_GENERATED, "/var/log/kern.log")
    first = parse_linux_lines(big, ctx_for(timezone.utc, LinuxSettings()))
    later = ParseContext(now=NOW + CARRY_FOR, tz=timezone.utc, pseudonymise=test_pseudonymiser(), settings=LinuxSettings(), carry=first.carry)

    second = parse_linux_lines(big, later)

    assert first.carry is not None and second.carry is None
    assert any(o.name == BY_NETWORK for o in rollup_rows(second.observations))


# ---------------------------------------------------------------------------------------------
# Pieces


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["0", "00", "01", "1", "9", "10", "99", "100", "199", "255", "256", "300", "999", "0001", "", "a", "٣"]), min_size=1, max_size=4))
def test_a_v4_prefix_has_the_pseudonym_of_its_addresses(octets: list[str]) -> None:
    """``NetworkPseudonyms.v4`` (no parsing) gives what ``Pseudonymiser.network`` gives an
    address in that /24, and None where that is no address."""
    pseudonymise = Pseudonymiser(b"k" * 32)
    prefix = ".".join(octets)

    got = network_pseudonyms(pseudonymise).v4(prefix.encode("utf-8"))

    assert got == pseudonymise.network(prefix + ".7")


_MARK_PIECES = ["IN=", "IN=eth0", " OUT=", "OUT=", "NETFILTER_CFG", "NETFILTER_CF", "Reloaded ", "Reloaded firewalld", "Reloaded ufw", "Reloaded", "\n", " ", "x", "\t", "é"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_MARK_PIECES), max_size=12))
def test_the_general_way_is_handed_exactly_the_lines_with_a_mark(pieces: list[str]) -> None:
    """``_slow_candidates`` yields the lines ``_SLOW_MARKS`` finds something in, in order, and
    nothing else: also where it skips a block that holds none of the marks' fixed words."""
    from normagent.plugins.firewall.parse import _SLOW_MARKS, _slow_candidates

    data = "".join(pieces).encode("utf-8")

    assert list(_slow_candidates(data)) == [line for line in data.split(b"\n") if _SLOW_MARKS.search(line)]


@pytest.mark.parametrize("prefix", [b"1.2.3\n", b"1.2.3 ", b"1.2.3.4", b"1..3", b"255.255.255", b"0.0.0", b"01.2.3", b"1.2.256", b"+1.2.3", b"1.2.\xd9\xa3", b""])
def test_a_v4_prefix_is_three_octets_and_nothing_else(prefix: bytes) -> None:
    """What the memo's one match (``_V4_PREFIX``) accepts is what ``Pseudonymiser.network`` takes
    for an address in that /24, also with a byte before or after (the scans cut prefixes out of
    lines)."""
    pseudonymise = Pseudonymiser(b"k" * 32)
    text = prefix.decode("utf-8")

    got = network_pseudonyms(pseudonymise).v4(prefix)

    assert got == pseudonymise.network(text + ".7")


@pytest.mark.parametrize(("proto", "port", "key"), [
    ("tcp", "443", "tcp/443"), ("udp", "0", "udp/0"), ("tcp", "65535", "tcp/65535"), ("tcp", "65536", None), ("tcp", "0443", "tcp/443"),
    ("tcp", "9" * 5000, None), ("tcp", "²", None), ("tcp", "٣", None), ("icmp", "8", None), ("tcp", "", None), ("tcp", None, None),
])
def test_port_keys_are_ports(proto: str, port: str | None, key: str | None) -> None:
    assert port_key(proto, port) == key


def test_a_superscript_port_is_no_crash() -> None:
    """``"²".isdigit()`` but ``int("²")`` fails: such a port is no port, the line still counts."""
    line = "2026-11-23T07:00:00.000000Z 192.0.2.1 <134>Nov 23 07:00:00 pfsense filterlog[1]: 5,,,0,em0,match,block,in,4,0x0,,64,1,0,none,6,tcp,60,198.51.100.7,10.0.0.5,1,²,0"
    result = appliance_lines(block([line], "/x/syslog.log"), ctx_for(timezone.utc, DEVICES), fast=False)

    assert result.parsed == 1 and not [o for o in rollup_rows(result.observations) if o.name != BY_NETWORK]


def test_the_pseudonym_memo_is_bounded() -> None:
    from normagent.plugins.firewall.parse import MEMO_SIZE

    names = network_pseudonyms(Pseudonymiser(b"m" * 32))
    for i in range(MEMO_SIZE + 10):
        names.v4(f"{i // 65536}.{i // 256 % 256}.{i % 256}".encode())
    names.trim()

    assert len(names._nets) < MEMO_SIZE  # noqa: SLF001


def test_day_of_a_row_is_the_utc_day() -> None:
    """00:30 in Oslo is the day before in UTC; the row says so (fast and general alike)."""
    line = "Nov 23 00:30:00 fw01 kernel: [UFW BLOCK] IN=eth0 OUT= SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 DF PROTO=TCP SPT=5 DPT=22"
    result = parse_linux_lines(block([line]), ctx_for(ZoneInfo("Europe/Oslo"), LinuxSettings()))

    assert {o.day for o in rollup_rows(result.observations)} == {date(2026, 11, 22)}


# ---------------------------------------------------------------------------------------------
# Hostile lines: cut short, fields missing, huge, odd hosts (the general way is the oracle)


def _without(line: str, field: str) -> str:
    """``line`` without its first ``field`` (``" DPT="`` takes the value with it)."""
    at = line.find(field)
    if at < 0:
        return line
    end = line.find(" ", at + len(field))
    return line[:at] + ("" if end < 0 else line[end:])


NETFILTER_FIELDS = [" SRC=", " DST=", " PROTO=", " DPT=", " SPT=", "IN=", " OUT=", " LEN=", " TTL=", " ID=", " kernel:", "] "]
FILTERLOG_FIELDS = [",block", ",in", ",4,", ",6,", ",tcp", " filterlog", "Z ", "<134>"]


@SETTINGS
@given(st.lists(st.tuples(netfilter_lines, st.integers(min_value=0, max_value=300), st.sampled_from(NETFILTER_FIELDS)), min_size=1, max_size=30),
       st.sampled_from(ZONES))
def test_netfilter_lines_cut_short_or_missing_a_field_read_alike(edits: list[tuple[str, int, str]], tz: tzinfo) -> None:
    """A line cut anywhere (a truncated write, a partial last line settled at the end), or
    without one of its fields: the same answers as the general way."""
    lines = [line[:cut] if cut % 2 else _without(line, field) for line, cut, field in edits]
    data = block(lines)
    ctx = ctx_for(tz, LinuxSettings())

    assert summary(linux_lines(data, ctx, fast=True)) == summary(linux_lines(data, ctx, fast=False))


@SETTINGS
@given(st.lists(st.tuples(filterlog_lines, st.integers(min_value=0, max_value=300), st.sampled_from(FILTERLOG_FIELDS)), min_size=1, max_size=30))
def test_filterlog_lines_cut_short_or_missing_a_field_read_alike(edits: list[tuple[str, int, str]]) -> None:
    lines = [line[:cut] if cut % 2 else line.replace(field, "", 1) for line, cut, field in edits]
    data = block(lines, origin="/var/lib/normagent/syslog/syslog.log")
    ctx = ctx_for(timezone.utc, DEVICES)

    assert summary(appliance_lines(data, ctx, fast=True)) == summary(appliance_lines(data, ctx, fast=False))


HOSTS = ["fw01", "kernel:", "a:b", "fe80::1", "h\tx", "h\x00x", "h\udcffx", "hé", "[x]", "x=IN=", "-", "a" * 300]


@pytest.mark.parametrize("host", HOSTS)
def test_odd_host_names_read_alike(host: str) -> None:
    """The host before ``kernel:`` is no part of what the general way reads, unless it makes a
    ``kernel:`` of its own: whatever the fast path takes, it counts as the general way does."""
    data = block([f"Nov 23 07:25:53 {host} kernel: [1.5] {message}" for message in MESSAGES])
    ctx = ctx_for(ZONES[0], LinuxSettings())

    assert summary(linux_lines(data, ctx, fast=True)) == summary(linux_lines(data, ctx, fast=False))


def test_huge_lines_nul_bytes_and_invalid_utf8_read_alike() -> None:
    """Lines of 1 MB, NUL bytes and bytes that are no UTF-8 anywhere in a block of usual lines:
    each counted as the general way counts it, the usual lines around them still counted."""
    usual = BENCH_NETFILTER[:50]
    hostile = [
        usual[0].replace("MAC=", "MAC=" + "a" * 1_000_000),
        usual[1].replace("[UFW BLOCK] ", "[UFW BLOCK] " + "x" * 1_000_000 + " "),
        usual[2] + " " + "9" * 1_000_000,
        "\x00" * 1000,
        usual[3].replace("SRC=", "SRC=\x00"),
        usual[4].replace("DPT=", "DPT=\udcff"),
        usual[5][:40] + "\udcc3\udca9" + usual[5][40:],
        "\udcff" * 5000,
    ]
    lines = usual[:25] + hostile + usual[25:]
    ctx = ctx_for(timezone.utc, LinuxSettings())

    fast, general = linux_lines(block(lines), ctx, fast=True), linux_lines(block(lines), ctx, fast=False)

    assert summary(fast) == summary(general)
    assert fast.parsed >= sum("BLOCK" in line or "DROPPED" in line for line in usual)  # the usual ones are not lost
    spooled = BENCH_FILTERLOG[:20]
    hostile = [spooled[0] + "," + "x" * 1_000_000, "\x00" * 10, spooled[1].replace("block", "bl\udcffock"), spooled[2].replace(" <134>", " <134>\x00")]
    lines = spooled[:10] + hostile + spooled[10:]
    data = block(lines, origin="/var/lib/normagent/syslog/syslog.log")
    ctx = ctx_for(timezone.utc, DEVICES)

    fast = appliance_lines(data, ctx, fast=True)
    assert summary(fast) == summary(appliance_lines(data, ctx, fast=False))
    assert fast.parsed >= sum(",block," in line for line in spooled[3:])


# Every position of a line of each usual shape, with each byte that a field of the fast shape
# must refuse (or that the str patterns of the general way read otherwise): hypothesis draws cut
# points near the ends of a line more often than in its middle, where MAC=, SRC= and DST= are.
EDGE_INSERTS = ["", "\t", "\x00", "\x1c", "\r", "\x7f", " ", "\udcff", "\udcc3", "é", "\xa0", "٣", "=", ","]
EDGE_LINES = {
    "netfilter": (
        [
            "Nov 23 07:25:53 fw01 kernel: [12.5] [UFW BLOCK] IN=eth0 OUT= MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 "
            "SRC=203.0.113.9 DST=10.0.0.5 LEN=52 TOS=0x00 PREC=0x00 TTL=52 ID=1 DF PROTO=TCP SPT=5 DPT=22 WINDOW=1024",
            "2026-11-23T07:25:53.5+01:00 fw01 kernel: IPTABLES-DROPPED: IN= OUT=eth0 SRC=2001:db8::1 DST=2001:db8::2 LEN=60 "
            "TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=5 DPT=53",
        ],
        "/var/log/kern.log",
        LinuxSettings(),
        linux_lines,
    ),
    "filterlog": (
        [
            "2026-11-23T07:00:00.000001Z 192.0.2.1 <134>Nov 23 07:00:00 pfsense filterlog[4242]: "
            "5,,,1000102433,em0,match,block,in,4,0x0,,64,1,0,none,6,tcp,60,45.249.0.229,10.0.0.5,29385,22,0",
            "2026-11-23T07:00:00.000001Z 192.0.2.2 <134>1 2026-11-23T07:00:00Z bbfw01 filterlog 48906 - - "
            "7,,,1000000105,em0,match,block,out,6,0x00,0x00000,64,udp,17,60,2001:db8::1,2001:db8::2,5,53,20",
        ],
        "/var/lib/normagent/syslog/syslog.log",
        DEVICES,
        appliance_lines,
    ),
}


@pytest.mark.parametrize("shape", list(EDGE_LINES))
def test_every_position_of_a_usual_line_with_a_hostile_byte_reads_alike(shape: str) -> None:
    usual, origin, settings_, parse = EDGE_LINES[shape]
    ctx = ctx_for(timezone.utc, settings_)
    differ = []
    for line in usual:
        for cut in range(len(line) + 1):
            for insert in EDGE_INSERTS:
                one = block([_garble(line, cut, insert)], origin)
                if summary(parse(one, ctx, fast=True)) != summary(parse(one, ctx, fast=False)):
                    differ.append((cut, insert))
    assert not differ, f"the fast path reads {len(differ)} edits otherwise, the first: {differ[:5]}"
    assert parse(block(usual, origin), ctx, fast=True).parsed == len(usual)
