"""Syslog receiver: pure framing and parsing, then real sockets on 127.0.0.1 and a real spool.

Socket tests bind port 0 on loopback only. The durability test kills a receiver running in a child
process with SIGKILL and counts what its spool holds.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from normagent.hostnames import fairness_group
from normagent.sources.syslog import (
    SPOOL_NAME,
    SyslogListenError,
    SyslogMessage,
    SyslogReceiver,
    SyslogSettings,
    TcpFramer,
    escape_controls,
    parse_spool_line,
    parse_syslog,
    rfc3164_time,
    spool_line,
    structured_data_elements,
    valid_pri,
    validate_syslog,
)
from normagent.errors import StateError
from normagent.model import Checkpoint
from normagent.testing import FakeClock
from tests.support.tools import skip_for_host

LOOPBACK = SyslogSettings(udp_listen="127.0.0.1:0", tcp_listen="127.0.0.1:0")


# --------------------------------------------------------------------------------------------
# Framing


FRAMES: list[tuple[str, list[bytes], list[tuple[str, bytes]]]] = [
    ("newline", [b"<13>a\n<13>b\n"], [("message", b"<13>a"), ("message", b"<13>b")]),
    ("crlf", [b"<13>a\r\n<13>b\r\n"], [("message", b"<13>a"), ("message", b"<13>b")]),
    ("nul", [b"<13>a\x00<13>b\x00"], [("message", b"<13>a"), ("message", b"<13>b")]),
    ("octet counted", [b"5 <13>a6 <13>bc"], [("message", b"<13>a"), ("message", b"<13>bc")]),
    ("octet counted with LF inside", [b"9 <13>a\nb\nc"], [("message", b"<13>a\nb\nc")]),
    ("mixed", [b"5 <13>a<13>b\n5 <13>c\n<13>d\n"], [("message", b"<13>a"), ("message", b"<13>b"), ("message", b"<13>c"), ("message", b"<13>d")]),
    ("split everywhere", [b"1", b"0 <13>", b"ab", b"cdef", b"<13>x", b"y\n"], [("message", b"<13>abcdef"), ("message", b"<13>xy")]),
    ("keep-alive blank lines", [b"\n\r\n\n<13>a\n\n"], [("message", b"<13>a")]),
    ("digits then text is not a length", [b"12ab\n"], [("message", b"12ab")]),
    ("zero length", [b"0 <13>a\n"], [("malformed", b""), ("message", b"<13>a")]),
    ("oversized octet frame is skipped", [b"40 <13>" + b"x" * 36 + b"<13>ok\n"], [("oversized", b""), ("message", b"<13>ok")]),
    ("oversized line is skipped", [b"<13>" + b"y" * 30, b"y" * 30, b"yy\n<13>ok\n"], [("oversized", b""), ("message", b"<13>ok")]),
    ("oversized line in one piece", [b"<13>" + b"z" * 40 + b"\n<13>ok\n"], [("oversized", b""), ("message", b"<13>ok")]),
    ("too many digits", [b"12345678901 <13>a\n"], [("message", b"12345678901 <13>a")]),
]


@pytest.mark.parametrize(("chunks", "frames"), [(c, f) for _, c, f in FRAMES], ids=[n for n, _, _ in FRAMES])
def test_framing(chunks: list[bytes], frames: list[tuple[str, bytes]]) -> None:
    framer = TcpFramer(max_bytes=32)

    got = [frame for chunk in chunks for frame in framer.feed(chunk)] + framer.close()

    assert got == frames


@pytest.mark.parametrize(
    ("tail", "frames"),
    [
        (b"<13>no newline at the end", [("message", b"<13>no newline at the end")]),
        (b"20 <13>short", [("malformed", b"")]),
        (b"17", [("malformed", b"")]),
        (b"\n\n", []),
        (b"40 <13>" + b"x" * 10, []),  # oversized, already counted when it began
    ],
)
def test_end_of_stream(tail: bytes, frames: list[tuple[str, bytes]]) -> None:
    framer = TcpFramer(max_bytes=32)

    got = framer.feed(tail)
    got += framer.close()

    assert [f for f in got if f[0] != "oversized"] == frames


frame_content = st.binary(min_size=1, max_size=40).map(lambda b: b"<13>" + b.replace(b"\n", b"").replace(b"\x00", b"").strip(b" \t\r"))


@given(
    st.lists(st.tuples(st.booleans(), frame_content), min_size=1, max_size=12),
    st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=40),
)
@settings(max_examples=300, deadline=None)
def test_any_segmentation_gives_the_same_messages(messages: list[tuple[bool, bytes]], cuts: list[int]) -> None:
    """However TCP splits the stream, the framer yields the messages that were framed."""
    stream = b"".join(str(len(m)).encode() + b" " + m if counted else m + b"\n" for counted, m in messages)
    framer = TcpFramer(max_bytes=64)
    got = []
    pos = 0
    for cut in cuts * (len(stream) // max(1, sum(cuts)) + 1):
        if pos >= len(stream):
            break
        got += framer.feed(stream[pos : pos + cut])
        pos += cut
    got += framer.close()

    assert got == [("message", m.rstrip(b"\r") if not counted else m) for counted, m in messages]


@given(st.lists(st.binary(max_size=200), max_size=20))
@settings(max_examples=300, deadline=None)
def test_garbage_never_breaks_the_framer_and_memory_stays_bounded(chunks: list[bytes]) -> None:
    framer = TcpFramer(max_bytes=64)

    for chunk in chunks:
        framer.feed(chunk)
        assert framer.pending <= 64 + 11 + len(chunk)  # a frame in progress, never more
    framer.close()


@pytest.mark.parametrize(
    ("message", "ok"),
    [(b"<0>x", True), (b"<191>x", True), (b"<192>x", False), (b"<13", False), (b"13>x", False), (b"<>x", False), (b"<1234>x", False), (b"\xff\xfe", False)],
)
def test_valid_pri(message: bytes, ok: bool) -> None:
    assert valid_pri(message) is ok


def test_spool_lines_round_trip_and_stay_one_line() -> None:
    received = datetime(2026, 3, 2, 6, 0, 0, 123456, tzinfo=timezone.utc)
    message = b"<13>a\nb\rc\x00d\te\x7ff \xff"

    line = spool_line(received, "192.0.2.1", message)
    parsed = parse_spool_line(line)

    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert parsed is not None
    assert (parsed.received, parsed.sender) == (received, "192.0.2.1")
    assert parsed.message == b"<13>a#012b#015c#000d\te#177f \xff" == escape_controls(message)


@pytest.mark.parametrize("line", [b"", b"garbage", b"2026-03-02T06:00:00 naive-time <13>x\n", b"notatime 1.2.3.4 <13>x\n"])
def test_a_line_that_is_not_a_spool_line(line: bytes) -> None:
    assert parse_spool_line(line) is None


# --------------------------------------------------------------------------------------------
# Parsing messages


def msg(**fields: object) -> dict[str, object]:
    base: dict[str, object] = dict(
        facility=None, severity=None, version=None, stamp="", time=None, hostname="", app_name="", procid="", msgid="",
        structured_data="", message="",
    )
    base.update(fields)
    return base


UTC = timezone.utc
MESSAGES: list[tuple[str, bytes, dict[str, object]]] = [
    (
        "RFC 5424 example 1",
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8",
        msg(facility=4, severity=2, version=1, stamp="2003-10-11T22:14:15.003Z", time=datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC),
            hostname="mymachine.example.com", app_name="su", msgid="ID47", message="'su root' failed for lonvick on /dev/pts/8"),
    ),
    (
        "RFC 5424 with structured data",
        b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event',
        msg(facility=20, severity=5, version=1, stamp="2003-10-11T22:14:15.003Z", time=datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC),
            hostname="mymachine.example.com", app_name="evntslog", msgid="ID47",
            structured_data='[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]', message="An application event"),
    ),
    (
        "RFC 5424 SD only, offset, procid",
        b'<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - [a@1 x="1"][b@2 y="a \\"q\\" \\]"]',
        msg(facility=20, severity=5, version=1, stamp="2003-08-24T05:14:15.000003-07:00", time=datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC),
            hostname="192.0.2.1", app_name="myproc", procid="8710", structured_data='[a@1 x="1"][b@2 y="a \\"q\\" \\]"]'),
    ),
    (
        "RFC 5424 from rsyslog (nil SD, two spaces)",
        b"<30>1 2021-03-06T04:07:38.263426+00:00 hostname systemd 1 - -  Stopping Daily apt download activities...",
        msg(facility=3, severity=6, version=1, stamp="2021-03-06T04:07:38.263426+00:00", time=datetime(2021, 3, 6, 4, 7, 38, 263426, tzinfo=UTC),
            hostname="hostname", app_name="systemd", procid="1", message=" Stopping Daily apt download activities..."),
    ),
    (
        "RFC 5424 nil everything",
        b"<14>1 - - - - - -",
        msg(facility=1, severity=6, version=1),
    ),
    (
        "RFC 3164 example",
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        msg(facility=4, severity=2, stamp="Oct 11 22:14:15", hostname="mymachine", app_name="su", message="'su root' failed for lonvick on /dev/pts/8"),
    ),
    (
        "RFC 3164 with pid and padded day",
        b"<38>Feb  5 14:34:10 srv sshd[31602]: Failed password for root from 203.0.113.9 port 40112 ssh2",
        msg(facility=4, severity=6, stamp="Feb  5 14:34:10", hostname="srv", app_name="sshd", procid="31602",
            message="Failed password for root from 203.0.113.9 port 40112 ssh2"),
    ),
    (
        "pfSense filterlog",
        b"<134>Nov  8 12:37:34 pfSense filterlog: 5,,,1000102433,em0,match,block,in,4,0x0,,128,24677,0,none,17,udp,186,10.9.0.119,10.9.0.255,17500,17600,166",
        msg(facility=16, severity=6, stamp="Nov  8 12:37:34", hostname="pfSense", app_name="filterlog",
            message="5,,,1000102433,em0,match,block,in,4,0x0,,128,24677,0,none,17,udp,186,10.9.0.119,10.9.0.255,17500,17600,166"),
    ),
    (
        "forwarded BSD without host",
        b"<134>Jan 22 18:34:00 filterlog: 65,,,0,vmx1,match,pass,out,4,0x0,,63,21011,0,none,1,icmp,56,192.168.105.11,192.168.105.1,datalength=36",
        msg(facility=16, severity=6, stamp="Jan 22 18:34:00", app_name="filterlog",
            message="65,,,0,vmx1,match,pass,out,4,0x0,,63,21011,0,none,1,icmp,56,192.168.105.11,192.168.105.1,datalength=36"),
    ),
    (
        "year-prefixed",
        b"2015 Nov 13 13:40:01 ether rsyslogd-2177: imuxsock begins to drop messages from pid 17840 due to rate-limiting",
        msg(stamp="2015 Nov 13 13:40:01", hostname="ether", app_name="rsyslogd-2177",
            message="imuxsock begins to drop messages from pid 17840 due to rate-limiting"),
    ),
    (
        "RFC 3339 file line (rsyslog default on Debian 12)",
        b"2020-05-31T00:00:45.698885+00:00 localhost rsyslogd: [origin software=\"rsyslogd\"] rsyslogd was HUPed",
        msg(stamp="2020-05-31T00:00:45.698885+00:00", time=datetime(2020, 5, 31, 0, 0, 45, 698885, tzinfo=UTC), hostname="localhost",
            app_name="rsyslogd", message='[origin software="rsyslogd"] rsyslogd was HUPed'),
    ),
    (
        "Cisco ASA with device year",
        b"<164>Oct 03 2018 17:34:08: %ASA-4-106023: Deny udp src office:1.1.1.1/3217 dst FE_xUI:Server_Windows/15000 by access-group \"ACLoffice\" [0x0, 0x0]",
        msg(facility=20, severity=4, stamp="Oct 03 2018 17:34:08", app_name="%ASA-4-106023",
            message='Deny udp src office:1.1.1.1/3217 dst FE_xUI:Server_Windows/15000 by access-group "ACLoffice" [0x0, 0x0]'),
    ),
    (
        "FortiGate key=value without header",
        b'<189>date=2016-06-16 time=10:19:23 devname=Device_Name logid=0000000013 type=traffic action=deny service="HTTP"',
        msg(facility=23, severity=5, message='date=2016-06-16 time=10:19:23 devname=Device_Name logid=0000000013 type=traffic action=deny service="HTTP"'),
    ),
    (
        "old PAM tag",
        b"<86>Mar  1 08:00:00 srv sshd(pam_unix)[19939]: authentication failure; logname= uid=0",
        msg(facility=10, severity=6, stamp="Mar  1 08:00:00", hostname="srv", app_name="sshd(pam_unix)", procid="19939",
            message="authentication failure; logname= uid=0"),
    ),
    (
        "no timestamp, no tag",
        b"<13>hello world",
        msg(facility=1, severity=5, message="hello world"),
    ),
    (
        "invalid UTF-8 is replaced",
        b"<13>Mar  1 08:00:00 srv app: caf\xe9",
        msg(facility=1, severity=5, stamp="Mar  1 08:00:00", hostname="srv", app_name="app", message="caf\ufffd"),
    ),
    (
        "version 1 but not RFC 5424 falls back",
        b"<13>1 is the loneliest number",
        msg(facility=1, severity=5, message="1 is the loneliest number"),
    ),
]


@pytest.mark.parametrize(("line", "expected"), [(l, e) for _, l, e in MESSAGES], ids=[n for n, _, _ in MESSAGES])
def test_parse_syslog(line: bytes, expected: dict[str, object]) -> None:
    parsed = parse_syslog(line)

    assert parsed == SyslogMessage(**expected)  # type: ignore[arg-type]


@pytest.mark.parametrize("line", [b"", b"   \n", b"<999>too big", b"<x>not a number", b"<13"])
def test_parse_syslog_refuses_what_has_no_valid_pri_or_nothing(line: bytes) -> None:
    assert parse_syslog(line) is None


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_parse_syslog_never_raises_and_refuses_only_empty_lines_or_a_bad_pri(line: bytes) -> None:
    parsed = parse_syslog(line)

    body = line.rstrip(b"\r\n")
    if not body.strip() or body.startswith(b"<"):
        return  # refused or not: the next property pins lines with a valid PRI
    assert parsed is not None and parsed.facility is None and parsed.severity is None  # a log file's line


@given(st.integers(0, 191), st.binary(max_size=300).filter(lambda b: b.rstrip(b"\r\n").strip() != b""))
@settings(max_examples=500, deadline=None)
def test_a_valid_pri_always_parses_to_its_facility_and_severity(pri: int, rest: bytes) -> None:
    parsed = parse_syslog(b"<%d>" % pri + rest)

    assert parsed is not None
    assert (parsed.facility, parsed.severity) == divmod(pri, 8)


def test_structured_data_elements_undo_escapes() -> None:
    sd = '[exampleSDID@32473 iut="3" eventSource="Application"][b@2 y="a \\"q\\" \\] \\\\"]'

    assert structured_data_elements(sd) == [
        ("exampleSDID@32473", {"iut": "3", "eventSource": "Application"}),
        ("b@2", {"y": 'a "q" ] \\'}),
    ]


OSLO = ZoneInfo("Europe/Oslo")


@pytest.mark.parametrize(
    ("stamp", "now", "expected"),
    [
        ("Nov  8 12:37:34", datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 8, 11, 37, 34, tzinfo=UTC)),
        ("Dec 31 23:59:59", datetime(2027, 1, 1, 0, 30, tzinfo=UTC), datetime(2026, 12, 31, 22, 59, 59, tzinfo=UTC)),
        ("Jan  1 00:10:00", datetime(2026, 12, 31, 22, 30, tzinfo=UTC), datetime(2026, 12, 31, 23, 10, tzinfo=UTC)),
        ("Feb 29 10:00:00", datetime(2025, 3, 1, tzinfo=UTC), datetime(2024, 2, 29, 9, 0, tzinfo=UTC)),
        ("Jul  1 12:00:00", datetime(2026, 7, 1, 9, 0, tzinfo=UTC), datetime(2026, 7, 1, 10, 0, tzinfo=UTC)),
        ("2015 Nov 13 13:40:01", datetime(2026, 1, 1, tzinfo=UTC), datetime(2015, 11, 13, 12, 40, 1, tzinfo=UTC)),
        ("Oct 03 2018 17:34:08", datetime(2026, 1, 1, tzinfo=UTC), datetime(2018, 10, 3, 15, 34, 8, tzinfo=UTC)),
        ("Feb 30 10:00:00", datetime(2026, 3, 1, tzinfo=UTC), None),
        ("Foo  1 10:00:00", datetime(2026, 3, 1, tzinfo=UTC), None),
    ],
)
def test_rfc3164_time_infers_the_year_in_the_senders_zone(stamp: str, now: datetime, expected: datetime | None) -> None:
    assert rfc3164_time(stamp, now, OSLO) == expected


@pytest.mark.parametrize(
    "line",
    [b"<13>1 0001-01-01T00:00:00+01:00 fw kernel - - - x", b"<13>1 9999-12-31T23:59:59-01:00 fw kernel - - - x",
     b"<13>0001-01-01T00:00:00+01:00 fw kernel: x"],
)
def test_a_time_with_no_utc_instant_is_no_time_not_an_overflow(line: bytes) -> None:
    """Year 1 east of UTC (or 9999 west) has no UTC instant: astimezone raised OverflowError,
    out of the parser and through the firewall appliances' whole block."""
    parsed = parse_syslog(line)
    assert parsed is not None and parsed.time is None and parsed.message.endswith("x")
    assert rfc3164_time("Jan  1 0001 00:00:00", datetime(2026, 11, 20, tzinfo=UTC), OSLO) is None


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"udp_listen": "514"}, "udp_listen"),
        ({"tcp_listen": "::1:514"}, "tcp_listen"),
        ({"tcp_listen": "[nope]:514"}, "tcp_listen"),
        ({"udp_listen": "127.0.0.1:70000"}, "udp_listen"),
        ({"udp_listen": "", "tcp_listen": ""}, "udp_listen"),
        ({"spool_file_bytes": 8192, "max_message_bytes": 65536}, "spool_file_bytes"),
    ],
)
def test_validate_syslog_names_the_key(changes: dict[str, object], key: str) -> None:
    problems = validate_syslog(SyslogSettings(**changes))  # type: ignore[arg-type]

    assert key in [k for k, _ in problems]


def test_a_port_in_digits_int_cannot_read_is_said_to_be_no_port() -> None:
    problems = validate_syslog(SyslogSettings(udp_listen="127.0.0.1:\u00b2"))  # "²": a digit to isdigit, not to int
    assert [(k, m.startswith("port must be a number")) for k, m in problems] == [("udp_listen", True)]


def test_the_defaults_are_valid_and_local() -> None:
    assert validate_syslog(SyslogSettings()) == []
    assert SyslogSettings().udp_listen.startswith("127.0.0.1:") and SyslogSettings().tcp_listen.startswith("127.0.0.1:")


# --------------------------------------------------------------------------------------------
# Real sockets


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def receiver(tmp_path: Path, clock: FakeClock) -> Iterator[SyslogReceiver]:
    r = SyslogReceiver(LOOPBACK, tmp_path / "spool", clock, tick=0.02)
    r.start()
    yield r
    r.stop()


def address(r: SyslogReceiver, transport: str) -> tuple[str, int]:
    return next((h, p) for t, h, p in r.bound_addresses() if t == transport)


def spooled(r: SyslogReceiver) -> list[bytes]:
    """Messages in the spool (rotated files oldest first, then the current one)."""
    lines = []
    for path in [p for p in r.spool.rotated() if p.is_file()] + [r.spool_path]:
        for line in path.read_bytes().splitlines():
            parsed = parse_spool_line(line)
            assert parsed is not None, line
            lines.append(parsed.message)
    return lines


def count(r: SyslogReceiver, transport: str, result: str) -> int:
    return r.stats().messages[(transport, result)]


def tcp(r: SyslogReceiver) -> socket.socket:
    sock = socket.create_connection(address(r, "tcp"))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def test_udp_rfc3164_and_rfc5424(receiver: SyslogReceiver, clock: FakeClock) -> None:
    messages = [
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\"] An application event",
        b"<13>with trailing newline\n",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for m in messages:
            sock.sendto(m, address(receiver, "udp"))

    wait_until(lambda: count(receiver, "udp", "received") == 3)

    assert spooled(receiver) == [m.rstrip(b"\n") for m in messages]
    first = parse_spool_line(receiver.spool_path.read_bytes().splitlines()[0])
    assert first is not None and first.received == clock.now() and first.sender == "127.0.0.1"


def test_tcp_newline_octet_counted_and_mixed_on_one_connection(receiver: SyslogReceiver) -> None:
    counted = b"<13>counted\nmessage with a newline"
    with tcp(receiver) as sock:
        sock.sendall(b"<13>first\n" + str(len(counted)).encode() + b" " + counted + b"<13>third\r\n<13>fourth\x00")

    wait_until(lambda: count(receiver, "tcp", "received") == 4)

    assert spooled(receiver) == [b"<13>first", b"<13>counted#012message with a newline", b"<13>third", b"<13>fourth"]


def test_a_message_split_across_tcp_segments(receiver: SyslogReceiver) -> None:
    with tcp(receiver) as sock:
        for piece in (b"2", b"5 <13>split ", b"across", b" segments", b"<13>and a ", b"line\n"):
            sock.sendall(piece)
            time.sleep(0.03)  # separate segments, separate reads

    wait_until(lambda: count(receiver, "tcp", "received") == 2)

    assert spooled(receiver) == [b"<13>split across segments", b"<13>and a line"]


def test_oversized_messages_are_counted_and_the_rest_still_arrives(tmp_path: Path, clock: FakeClock) -> None:
    r = SyslogReceiver(SyslogSettings(udp_listen="127.0.0.1:0", tcp_listen="127.0.0.1:0", max_message_bytes=1000), tmp_path, clock, tick=0.02)
    r.start()
    try:
        big = b"<13>" + b"x" * 2000
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(big, address(r, "udp"))
            udp.sendto(b"<13>small udp", address(r, "udp"))
        with tcp(r) as sock:
            sock.sendall(str(len(big)).encode() + b" " + big + b"<13>after counted\n")
            sock.sendall(big + b"\n<13>after line\n")

        wait_until(lambda: count(r, "udp", "received") + count(r, "tcp", "received") == 3)

        assert (count(r, "udp", "oversized"), count(r, "tcp", "oversized")) == (1, 2)
        assert sorted(spooled(r)) == [b"<13>after counted", b"<13>after line", b"<13>small udp"]
    finally:
        r.stop()


def test_garbage_is_counted_malformed_and_never_stops_the_receiver(receiver: SyslogReceiver) -> None:
    rng = random.Random(7)
    junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(40)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for blob in junk:
            udp.sendto(b"\x00\x01" + blob, address(receiver, "udp"))
        udp.sendto(b"<13>still fine", address(receiver, "udp"))
    with tcp(receiver) as sock:
        # one frame per blob: no LF or NUL (terminators) inside, and a start that is not a length
        sock.sendall(b"".join(b"\x01" + blob.replace(b"\n", b"").replace(b"\x00", b"") + b"\n" for blob in junk))
        sock.sendall(b"<13>fine too\n")
        sock.sendall(b"99 <13>a length that never arrives")

    wait_until(lambda: count(receiver, "tcp", "received") == 1 and count(receiver, "udp", "received") == 1)
    wait_until(lambda: count(receiver, "tcp", "malformed") == len(junk) + 1)

    assert count(receiver, "udp", "malformed") == len(junk)
    assert sorted(spooled(receiver)) == [b"<13>fine too", b"<13>still fine"]


def test_datagrams_the_kernel_dropped_are_counted(tmp_path: Path, clock: FakeClock) -> None:
    """A burst into a tiny socket buffer: every datagram is either spooled or counted dropped."""
    r = SyslogReceiver(SyslogSettings(udp_listen="127.0.0.1:0", tcp_listen="", udp_receive_buffer=4096), tmp_path, clock, tick=0.02)
    r.start()
    sent = 20_000
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for i in range(sent):
                udp.sendto(b"<13>burst %05d " % i + b"." * 200, address(r, "udp"))
            time.sleep(0.2)
            udp.sendto(b"<13>last", address(r, "udp"))  # carries the kernel's final drop count
        wait_until(lambda: count(r, "udp", "received") + count(r, "udp", "dropped") == sent + 1)
    finally:
        r.stop()

    if count(r, "udp", "dropped") == 0:
        skip_for_host("the receiver kept up with the burst: no kernel drops to count on this machine")
    assert count(r, "udp", "received") == len(spooled(r))


def test_many_concurrent_connections_each_message_spooled_once(tmp_path: Path, clock: FakeClock) -> None:
    r = SyslogReceiver(SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0", max_connections=64), tmp_path, clock, tick=0.02)
    r.start()
    senders, per_sender = 40, 250

    def send(n: int) -> None:
        with tcp(r) as sock:
            for i in range(per_sender):
                m = f"<13>sender {n} message {i}".encode()
                sock.sendall(m + b"\n" if i % 2 else str(len(m)).encode() + b" " + m)

    try:
        threads = [threading.Thread(target=send, args=(n,)) for n in range(senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_until(lambda: count(r, "tcp", "received") == senders * per_sender)
        got = spooled(r)
    finally:
        r.stop()

    assert sorted(got) == sorted(f"<13>sender {n} message {i}".encode() for n in range(senders) for i in range(per_sender))
    for n in range(senders):  # per connection, in the order sent
        mine = [m for m in got if m.startswith(f"<13>sender {n} ".encode())]
        assert mine == [f"<13>sender {n} message {i}".encode() for i in range(per_sender)]


def test_connections_over_the_limit_are_refused_and_counted(tmp_path: Path, clock: FakeClock) -> None:
    r = SyslogReceiver(SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0", max_connections=5), tmp_path, clock, tick=0.02)
    r.start()
    try:
        held = [tcp(r) for _ in range(5)]
        wait_until(lambda: r.stats().open_connections == 5)
        extra = [tcp(r) for _ in range(3)]
        wait_until(lambda: r.stats().connections["refused"] == 3)
        for sock in extra:
            sock.settimeout(5)
            assert sock.recv(10) == b""  # closed by the receiver
        held[0].sendall(b"<13>the held ones still work\n")
        wait_until(lambda: count(r, "tcp", "received") == 1)
        for sock in held + extra:
            sock.close()
    finally:
        r.stop()

    assert r.stats().connections["accepted"] == 5


def test_a_sender_holding_every_place_cannot_lock_out_another(tmp_path: Path, clock: FakeClock) -> None:
    """One address opens max_connections and keeps them (half a message each): a device from
    another address still gets in, by closing the flooder's longest silent connection, and the
    flooder's own new connections are refused rather than closing anyone else's."""
    r = SyslogReceiver(SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0", max_connections=4), tmp_path, clock, tick=0.02)
    r.start()

    def from_(host: str) -> socket.socket:
        return socket.create_connection(address(r, "tcp"), source_address=(host, 0))

    try:
        flood = [from_("127.0.0.2") for _ in range(4)]
        for sock in flood:
            sock.sendall(b"<13>half a message")
        wait_until(lambda: r.stats().open_connections == 4)
        clock.advance(1)  # the flooder's connections have been silent longest
        with from_("127.0.0.1") as device:
            wait_until(lambda: r.stats().connections["accepted"] + r.stats().connections["refused"] == 5)
            device.sendall(b"<13>from the device\n")
            wait_until(lambda: count(r, "tcp", "received") == 1)
            again = from_("127.0.0.2")
            wait_until(lambda: r.stats().connections["accepted"] + r.stats().connections["refused"] == 6)
            again.settimeout(5)
            assert again.recv(10) == b""  # refused: 3 of 4 places are the flooder's already
            device.sendall(b"<13>the device still sends\n")
            wait_until(lambda: count(r, "tcp", "received") == 2)
            dropped = count(r, "tcp", "dropped")  # the evicted connection's half message
        for sock in [*flood, again]:
            sock.close()
    finally:
        r.stop()

    connections = r.stats().connections
    assert (connections["accepted"], connections["evicted"], connections["refused"]) == (5, 1, 1)
    assert dropped == 1
    assert spooled(r)[:2] == [b"<13>from the device", b"<13>the device still sends"]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),  # one host's /64: one sender for fairness
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
        ("192.0.2.1", "192.0.2.2", False),
        ("fe80::1%eth0", "fe80::2%eth1", True),
    ],
)
def test_connections_are_counted_per_ipv4_address_and_per_ipv6_64(a: str, b: str, same: bool) -> None:
    assert (fairness_group(a) == fairness_group(b)) is same


def test_stop_with_clients_connected_is_fast_and_keeps_what_was_received(tmp_path: Path, clock: FakeClock) -> None:
    r = SyslogReceiver(LOOPBACK, tmp_path, clock, tick=0.5)
    r.start()
    clients = [tcp(r) for _ in range(10)]
    for i, sock in enumerate(clients):
        sock.sendall(f"<13>complete {i}\n".encode() + b"<13>half a mess")
    wait_until(lambda: count(r, "tcp", "received") == 10)

    # The clients stay connected (and the idle timeout is 5 minutes): stop must not wait for them.
    stopper = threading.Thread(target=r.stop)
    stopper.start()
    stopper.join(60)
    assert not stopper.is_alive(), "stop() waited for connected clients"
    lines = r.spool_path.read_bytes().splitlines()  # as soon as stop returned
    for sock in clients:
        sock.close()

    assert len(lines) == count(r, "tcp", "received") == 10
    assert count(r, "tcp", "dropped") == 10  # the half messages, cut off by the stop
    r.stop()  # a second stop is harmless


def test_an_idle_connection_is_closed(tmp_path: Path, clock: FakeClock) -> None:
    r = SyslogReceiver(SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0", idle_timeout=timedelta(seconds=30)), tmp_path, clock, tick=0.02)
    r.start()
    try:
        sock = tcp(r)
        sock.sendall(b"<13>never finished")
        wait_until(lambda: r.stats().open_connections == 1)
        time.sleep(0.1)
        clock.advance(31)
        sock.settimeout(5)
        assert sock.recv(10) == b""
        sock.close()
    finally:
        r.stop()

    assert r.stats().connections["idle_closed"] == 1
    assert count(r, "tcp", "dropped") == 1


def test_ipv6_loopback(tmp_path: Path, clock: FakeClock) -> None:
    if not socket.has_ipv6:
        skip_for_host("no IPv6 in this Python")
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        skip_for_host("no ::1 on this host")
    r = SyslogReceiver(SyslogSettings(udp_listen="[::1]:0", tcp_listen="[::1]:0"), tmp_path, clock, tick=0.02)
    r.start()
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"<13>over v6", address(r, "udp"))
        wait_until(lambda: count(r, "udp", "received") == 1)
        line = parse_spool_line(r.spool_path.read_bytes().splitlines()[0])
    finally:
        r.stop()

    assert line is not None and line.sender == "::1"


def test_an_address_in_use_is_a_clear_error_and_nothing_keeps_running(tmp_path: Path, clock: FakeClock) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = SyslogReceiver(SyslogSettings(udp_listen="127.0.0.1:0", tcp_listen=f"127.0.0.1:{port}"), tmp_path, clock)

        with pytest.raises(SyslogListenError, match="tcp_listen"):
            r.start()

    assert r.bound_addresses() == []
    r.stop()  # never started: nothing to do


# --------------------------------------------------------------------------------------------
# The spool


def send_in_steps(r: SyslogReceiver, messages: list[bytes]) -> None:
    """Send over TCP, ten at a time, each ten spooled (or dropped) before the next: rotations
    then happen at the same places on every run."""
    done = count(r, "tcp", "received") + count(r, "tcp", "dropped")
    with tcp(r) as sock:
        for i, message in enumerate(messages):
            sock.sendall(message + b"\n")
            if i % 10 == 9 or i == len(messages) - 1:
                wait_until(lambda i=i: count(r, "tcp", "received") + count(r, "tcp", "dropped") == done + i + 1)


def numbered(n: int) -> list[bytes]:
    return [f"<13>line {i:03d} ".encode() + b"." * 40 for i in range(n)]


def spool_bytes(r: SyslogReceiver) -> int:
    return sum(p.stat().st_size for p in [*r.spool.rotated(), r.spool_path])


def test_without_a_reader_the_oldest_rotated_file_is_discarded_counted_and_logged(tmp_path: Path, clock: FakeClock) -> None:
    """Nothing reads the spool yet (issue 9, item 18): a full spool must not stop the receiver.
    The oldest rotated file goes instead, and every message in it is counted and logged."""
    settings_ = SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0", spool_file_bytes=4096, spool_max_files=2, max_message_bytes=480)
    r = SyslogReceiver(settings_, tmp_path, clock, tick=0.02)
    r.start()
    sent = numbered(300)  # about 27 KiB: six times what the current file and two rotated ones hold
    try:
        with capture_logs() as logs:
            send_in_steps(r, sent)
        stats = r.stats()
        on_disk = spool_bytes(r)
    finally:
        r.stop()

    kept = spooled(r)
    written = sum(len(spool_line(clock.now(), "127.0.0.1", m)) for m in sent)
    discards = [e for e in logs if e["event"] == "syslog_spool_discarded"]
    names = [p.name for p in r.spool.rotated()]
    assert count(r, "tcp", "received") == len(sent) and count(r, "tcp", "dropped") == 0
    assert len(names) == 2 and not stats.spool_full
    assert names == sorted(names) and all(n.startswith(SPOOL_NAME + "-") for n in names)
    assert kept == sent[len(sent) - len(kept) :]  # the newest, in order
    assert stats.discarded_messages == len(sent) - len(kept) > 0
    assert stats.discarded_bytes == written - on_disk
    assert discards and all(e["log_level"] == "warning" for e in discards)
    assert sum(e["messages"] for e in discards) == stats.discarded_messages
    assert sum(e["bytes"] for e in discards) == stats.discarded_bytes


def test_rotated_files_the_reader_has_finished_are_removed_without_loss(tmp_path: Path, clock: FakeClock) -> None:
    settings_ = SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0", spool_file_bytes=4096, spool_max_files=1, max_message_bytes=480)
    r = SyslogReceiver(settings_, tmp_path, clock, read_offset=lambda p: p.stat().st_size, tick=0.02)
    r.start()
    try:
        with capture_logs() as logs:
            send_in_steps(r, numbered(200))
    finally:
        r.stop()

    events = [e["event"] for e in logs]
    assert "syslog_spool_removed" in events and "syslog_spool_discarded" not in events
    assert (r.stats().discarded_messages, r.stats().discarded_bytes) == (0, 0)
    assert count(r, "tcp", "received") == 200 and count(r, "tcp", "dropped") == 0


def test_only_what_the_reader_has_not_read_is_counted_as_discarded(tmp_path: Path, clock: FakeClock) -> None:
    """The reader is three lines into each rotated file when it has to go: read + discarded +
    still spooled is exactly what was sent, nothing counted twice."""
    asked: dict[str, tuple[int, int, int]] = {}  # file → (lines, size, offset the reader gave)

    def three_lines_in(path: Path) -> int:
        data = path.read_bytes()
        offset = [i + 1 for i, b in enumerate(data) if b == 0x0A][2]
        asked[path.name] = (data.count(b"\n"), len(data), offset)
        return offset

    settings_ = SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0", spool_file_bytes=4096, spool_max_files=2, max_message_bytes=480)
    r = SyslogReceiver(settings_, tmp_path, clock, read_offset=three_lines_in, tick=0.02)
    r.start()
    sent = numbered(300)
    try:
        with capture_logs() as logs:
            send_in_steps(r, sent)
    finally:
        r.stop()

    discards = [e for e in logs if e["event"] == "syslog_spool_discarded"]
    assert discards
    for event in discards:
        lines, size, offset = asked[event["file"]]
        assert (event["messages"], event["bytes"], event["read_bytes"]) == (lines - 3, size - offset, offset)
    read_by_reader = 3 * len(discards)
    assert read_by_reader + r.stats().discarded_messages + len(spooled(r)) == len(sent)


def test_a_failing_reader_callback_counts_the_whole_file_as_discarded(tmp_path: Path, clock: FakeClock) -> None:
    def broken(path: Path) -> int:
        raise RuntimeError("the reader's state is unavailable")

    settings_ = SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0", spool_file_bytes=4096, spool_max_files=1, max_message_bytes=480)
    r = SyslogReceiver(settings_, tmp_path, clock, read_offset=broken, tick=0.02)
    r.start()
    sent = numbered(200)
    try:
        with capture_logs() as logs:
            send_in_steps(r, sent)
    finally:
        r.stop()

    assert "syslog_spool_reader_failed" in [e["event"] for e in logs]
    assert count(r, "tcp", "received") == len(sent) and count(r, "tcp", "dropped") == 0
    assert r.stats().discarded_messages + len(spooled(r)) == len(sent)


def test_a_rotated_file_that_cannot_be_removed_makes_the_spool_full_loudly(tmp_path: Path, clock: FakeClock) -> None:
    """The one way left to fill the spool: the oldest rotated file cannot be deleted (here it is a
    directory). The log says why, once; the TCP sender waits (its connection paused) rather than
    losing what it sent; once the file can go, the spool resumes and every message is there, in order."""
    blocker = tmp_path / f"{SPOOL_NAME}-20000101-000000-000000"
    blocker.mkdir()
    settings_ = SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0", spool_file_bytes=4096, spool_max_files=1, max_message_bytes=480)
    r = SyslogReceiver(settings_, tmp_path, clock, tick=0.02)
    r.start()
    sent = numbered(200)
    try:
        with capture_logs() as logs:
            with tcp(r) as sock:
                for i in range(0, len(sent), 10):  # a write each ten: rotations are needed, and fail
                    sock.sendall(b"".join(m + b"\n" for m in sent[i : i + 10]))
                    wait_until(lambda i=i: count(r, "tcp", "received") == i + 10 or r.stats().spool_full)
                wait_until(lambda: r.stats().spool_full)
                waiting = count(r, "tcp", "received"), count(r, "tcp", "dropped")
                blocker.rmdir()
                clock.advance(2)  # a file that could not be deleted is tried again after a second
                wait_until(lambda: count(r, "tcp", "received") == len(sent))
                sock.sendall(b"<13>after\n")
                wait_until(lambda: count(r, "tcp", "received") == len(sent) + 1)
    finally:
        r.stop()

    events = [e["event"] for e in logs]
    assert waiting[0] < len(sent) and waiting[1] == 0 and count(r, "tcp", "dropped") == 0
    assert events.count("syslog_spool_full") == 1 and events.count("syslog_spool_discard_failed") == 1
    assert "syslog_spool_resumed" in events and not r.stats().spool_full
    kept = spooled(r)
    assert r.stats().discarded_messages + len(kept) == len(sent) + 1  # nothing reads the spool here
    assert kept[-1] == b"<13>after" and kept[:-1] == sent[len(sent) + 1 - len(kept) :]


@pytest.mark.parametrize("how", ["directory removed", "file removed", "file replaced"])
def test_a_spool_removed_or_replaced_while_running_is_opened_again_and_nothing_received_is_lost(
    tmp_path: Path, clock: FakeClock, how: str
) -> None:
    """Appending to a file no directory lists any more would count messages as received that no
    reader can ever read: the receiver opens the spool at its path again, and says so."""
    spool_dir = tmp_path / "spool"
    r = SyslogReceiver(SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0"), spool_dir, clock, tick=0.02)
    r.start()
    before, after = numbered(10), [b"<13>after " + m for m in numbered(10)]
    other = spool_line(clock.now(), "192.0.2.9", b"<13>in the file put in its place")
    try:
        send_in_steps(r, before)
        if how == "directory removed":
            shutil.rmtree(spool_dir)
        elif how == "file removed":
            r.spool_path.unlink()
        else:
            (tmp_path / "other").write_bytes(other)
            os.replace(tmp_path / "other", r.spool_path)
        with capture_logs() as logs:
            send_in_steps(r, after)
    finally:
        r.stop()

    assert count(r, "tcp", "received") == 20 and count(r, "tcp", "dropped") == 0
    assert spooled(r) == ([b"<13>in the file put in its place"] if how == "file replaced" else []) + after
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["syslog_spool_reopened"]


def test_while_the_spool_cannot_be_written_tcp_senders_wait_and_nothing_they_sent_is_lost(tmp_path: Path, clock: FakeClock) -> None:
    """The spool directory replaced by a file while running (as a full disk, every write fails):
    the log says where and why, once; datagrams are dropped and counted; what TCP senders sent
    waits (their connections paused) and is spooled once the directory can be made again."""
    spool_dir = tmp_path / "spool"
    r = SyslogReceiver(SyslogSettings(udp_listen="127.0.0.1:0", tcp_listen="127.0.0.1:0"), spool_dir, clock, tick=0.02)
    r.start()
    first, during = numbered(10), [b"<13>during " + m for m in numbered(30)]
    try:
        send_in_steps(r, first)
        shutil.rmtree(spool_dir)
        spool_dir.write_bytes(b"not a directory")
        with capture_logs() as logs:
            with tcp(r) as a, tcp(r) as b, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                a.sendall(b"".join(m + b"\n" for m in during[:15]))
                b.sendall(b"".join(m + b"\n" for m in during[15:]))
                wait_until(lambda: any(e["event"] == "syslog_spool_write_failed" for e in logs))
                udp.sendto(b"<13>a datagram while failing", address(r, "udp"))
                wait_until(lambda: count(r, "udp", "dropped") == 1)
                time.sleep(0.3)  # writes are tried again meanwhile, and fail
                waiting = count(r, "tcp", "received"), count(r, "tcp", "dropped")
                spool_dir.unlink()
                wait_until(lambda: count(r, "tcp", "received") == 40)
                a.sendall(b"<13>after\n")
                wait_until(lambda: count(r, "tcp", "received") == 41)
    finally:
        r.stop()

    failed = [e for e in logs if e["event"] == "syslog_spool_write_failed"]
    assert waiting == (10, 0) and count(r, "tcp", "dropped") == 0
    assert len(failed) == 1 and failed[0]["spool"] == str(spool_dir / SPOOL_NAME) and failed[0]["log_level"] == "error"
    assert "not a directory" in failed[0]["error"].lower()
    assert "syslog_spool_write_resumed" in [e["event"] for e in logs]
    assert sorted(spooled(r)[:-1]) == sorted(during) and spooled(r)[-1] == b"<13>after"


@pytest.mark.parametrize("kind", ["directory is a file", "spool file is a directory", "spool file is a FIFO"])
def test_a_spool_path_that_is_the_wrong_kind_of_file_is_a_clear_error_at_start(tmp_path: Path, clock: FakeClock, kind: str) -> None:
    """Never a traceback, and never waiting: opening a FIFO for writing blocks until a reader comes
    (here one is there, so the old code would even have appended to it)."""
    spool_dir = tmp_path / "spool"
    reader = -1
    if kind == "directory is a file":
        spool_dir.write_bytes(b"")
        wrong, found = spool_dir, "a regular file"
    else:
        spool_dir.mkdir()
        wrong = spool_dir / SPOOL_NAME
        if kind == "spool file is a directory":
            wrong.mkdir()
            found = "a directory"
        else:
            os.mkfifo(wrong)
            reader = os.open(wrong, os.O_RDONLY | os.O_NONBLOCK)
            found = "a FIFO (named pipe)"
    r = SyslogReceiver(SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0"), spool_dir, clock)
    try:
        with pytest.raises(StateError) as raised:
            r.start()
    finally:
        if reader >= 0:
            os.close(reader)

    assert str(raised.value).startswith(f"syslog spool {wrong}: is {found}, not a ")
    assert r.bound_addresses() == []


def test_the_collector_commits_what_was_discarded_as_counters() -> None:
    from normagent.syslog_stats import DISCARDED_BYTES, DISCARDED_MESSAGES, syslog_collector
    from normagent.sources.syslog import CONNECTION_RESULTS, RESULTS, TRANSPORTS, SyslogStats

    class Receiver:
        discarded = (0, 0)

        def stats(self) -> SyslogStats:
            zeros = {(t, x): 0 for t in TRANSPORTS for x in RESULTS}
            return SyslogStats(zeros, dict.fromkeys(CONNECTION_RESULTS, 0), 0, 2, False, *self.discarded)

    receiver = Receiver()
    spec = syslog_collector(receiver)
    assert {DISCARDED_MESSAGES, DISCARDED_BYTES} <= set(spec.metrics)

    def run() -> dict[str, float]:
        batches = list(spec.collect(None))  # type: ignore[arg-type]  # the collector reads no context
        return {o.metric: o.value for b in batches for o in b.observations if o.metric.startswith("normagent_syslog_spool_discarded")}

    receiver.discarded = (120, 9000)
    assert run() == {DISCARDED_MESSAGES.name: 120, DISCARDED_BYTES.name: 9000}
    receiver.discarded = (150, 11000)
    assert run() == {DISCARDED_MESSAGES.name: 30, DISCARDED_BYTES.name: 2000}  # what grew since


def test_a_half_written_last_line_is_cut_off_at_start(tmp_path: Path, clock: FakeClock) -> None:
    spool = tmp_path / SPOOL_NAME
    good = spool_line(clock.now(), "192.0.2.1", b"<13>whole")
    spool.write_bytes(good + b"2026-11-23T07:00:00.000000Z 192.0.2.1 <13>half")

    with capture_logs() as logs:
        r = SyslogReceiver(LOOPBACK, tmp_path, clock)
        r.start()
        r.stop()

    assert spool.read_bytes() == good
    assert [e["removed_bytes"] for e in logs if e["event"] == "syslog_spool_repaired"] == [len(b"2026-11-23T07:00:00.000000Z 192.0.2.1 <13>half")]


CHILD = r"""
import json, sys, time
from pathlib import Path
from normagent.clock import SystemClock
from normagent.log import configure_logging
from normagent.sources.syslog import SyslogReceiver, SyslogSettings
configure_logging("warning", "json", sys.stderr)  # stdout carries the reports
r = SyslogReceiver(SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0"), Path(sys.argv[1]), SystemClock(), tick=0.02)
r.start()
print(json.dumps(r.bound_addresses()), flush=True)
last = -1
while True:
    n = r.stats().messages[("tcp", "received")]
    if n != last:
        print(f"received {n}", flush=True)
        last = n
    time.sleep(0.002)
"""


def child_receiver(spool_dir: Path) -> tuple[subprocess.Popen[str], tuple[str, int]]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(spool_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    (_, host, port), *_ = json.loads(proc.stdout.readline())
    return proc, (host, port)


def read_reports(proc: subprocess.Popen[str], until: int) -> int:
    assert proc.stdout is not None
    last = -1
    while last < until:
        line = proc.stdout.readline()
        assert line, "the receiver exited"
        last = int(line.split()[1])
    return last


def test_what_the_receiver_reported_received_survives_sigkill(tmp_path: Path) -> None:
    proc, where = child_receiver(tmp_path)
    n = 2000
    try:
        with socket.create_connection(where) as sock:
            sock.sendall(b"".join(f"<13>durable {i}\n".encode() for i in range(n)))
            reported = read_reports(proc, n)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    lines = (tmp_path / SPOOL_NAME).read_bytes().splitlines()
    assert reported == n
    assert [parse_spool_line(line).message for line in lines] == [f"<13>durable {i}".encode() for i in range(n)]  # type: ignore[union-attr]


def test_sigkill_in_mid_stream_keeps_every_reported_message_and_no_partial_line(tmp_path: Path) -> None:
    proc, where = child_receiver(tmp_path)
    stop_sending = threading.Event()

    def flood() -> None:
        i = 0
        try:
            with socket.create_connection(where) as sock:
                while not stop_sending.is_set():
                    sock.sendall(f"<13>flood {i}\n".encode())
                    i += 1
        except OSError:
            pass  # the receiver died under us: expected

    sender = threading.Thread(target=flood)
    sender.start()
    try:
        reported = read_reports(proc, 500)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        stop_sending.set()
        sender.join()
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    data = (tmp_path / SPOOL_NAME).read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    # SIGKILL may cut a write() short (Linux stops a write at a fatal signal): part of a batch that
    # was never fsync-ed, so never reported received. The next start cuts it off.
    restarted = SyslogReceiver(SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0"), tmp_path, FakeClock())
    restarted.start()
    restarted.stop()
    assert (tmp_path / SPOOL_NAME).read_bytes() == whole
    lines = whole.splitlines()
    assert len(lines) >= reported
    assert [parse_spool_line(line).message for line in lines] == [f"<13>flood {i}".encode() for i in range(len(lines))]  # type: ignore[union-attr]


def test_the_file_tailer_reads_the_rotating_spool_exactly_once(tmp_path: Path, clock: FakeClock) -> None:
    """The spool's contract with normagent.sources.files: rotated names it follows, whole lines only."""
    from normagent.sources.files import FileSource, FileTail
    from normagent.testing import MemoryCheckpoints

    settings_ = SyslogSettings(udp_listen="", tcp_listen="127.0.0.1:0", spool_file_bytes=4096, spool_max_files=100, max_message_bytes=480)
    r = SyslogReceiver(settings_, tmp_path / "spool", clock, tick=0.02)
    r.start()
    state = MemoryCheckpoints()
    source = FileSource(paths=(str(r.spool_path),), start_at="beginning")
    read: list[bytes] = []
    sent: list[bytes] = []
    try:
        with tcp(r) as sock:
            for run in range(12):
                batch = [f"<13>run {run} message {i} ".encode() + b"~" * (run * 7) for i in range(25)]
                sock.sendall(b"".join(m + b"\n" for m in batch))
                sent += batch
                wait_until(lambda: count(r, "tcp", "received") == len(sent))
                clock.advance(1)  # rotated files get distinct stamps, as they would in real time
                for step in FileTail(source, state).reads():
                    if step.block is not None:
                        read += [parse_spool_line(line).message for line in step.block.data.splitlines()]  # type: ignore[union-attr]
                    state.apply([Checkpoint(step.key, step.checkpoint)])
    finally:
        r.stop()

    assert len(r.spool.rotated()) >= 5
    assert read == sent
