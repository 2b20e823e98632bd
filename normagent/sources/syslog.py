"""Syslog receiver for firewalls and appliances: UDP and TCP in, one durable spool file out.

``SyslogReceiver`` listens on UDP and TCP (127.0.0.1 unless configured), accepts RFC 3164 and
RFC 5424 messages, on TCP with octet-counted (RFC 6587 ``LEN SP MSG``) or newline framing (LF;
CRLF and NUL tolerated), chosen per message so one connection may mix them. Every accepted message
is appended as one line to a spool file, ``<spool_dir>/syslog.log``, which a collector then reads
with the rotation-safe file tailer like any other log. ``parse_spool_line`` and ``parse_syslog``
are the pure functions a plugin uses to read those lines.

Durability, exactly: a message counts as ``received`` only after the spool write that holds it has
been ``fsync``-ed. One writer thread batches whatever is waiting into one write and one fsync (group
commit: while one fsync runs, the next batch gathers). A TCP connection is not read again until
what was read from it is durable, so a crash (even SIGKILL or power loss) loses nothing that was
read from a TCP socket; only bytes still in the kernel's socket buffer are lost, and syslog has no
application acknowledgement by which a sender could know the difference. UDP has no such bound:
datagrams waiting in the writer's queue when the process dies are lost (the queue is capped at
``MAX_PENDING_BYTES``; beyond it datagrams are dropped and counted).

When the spool cannot take a write (a full disk, the spool full, its directory replaced by a file),
what was read from a TCP connection is kept and written again every ``SPOOL_RETRY_SECONDS``, and the
connection stays paused meanwhile, so its sender keeps what follows (TCP flow control) instead of
losing it; datagrams cannot wait and are dropped and counted.

Spool lines: ``<received, RFC 3339 UTC> <sender address> <message>\\n``. The message is kept as
sent, except that control characters (LF, CR, NUL …, not TAB) are escaped rsyslog-style as
``#ooo`` (``#012`` for LF), so one message is exactly one line. The sender address is local state
like the rest of the spool, never exported; a plugin that needs it pseudonymises it.

Rotation: when the spool reaches ``spool_file_bytes`` it is renamed to
``syslog.log-YYYYmmdd-HHMMSS-ffffff`` (a name the file tailer recognises as a rotated sibling) and a
new one is created. At most ``spool_max_files`` rotated files are kept, so the spool never takes
more than about ``(spool_max_files + 1) * spool_file_bytes`` of disk. To rotate beyond that, the
oldest rotated file goes: removed quietly if its reader has read all of it, otherwise *discarded*:
the messages in it the reader had not read are counted (``discarded_messages``/``discarded_bytes``,
exported as ``normagent_syslog_spool_discarded_*_total``) and logged (``syslog_spool_discarded``,
a warning). Old unread messages go rather than new ones: a reader that is behind (or, today, no
reader at all) never makes the receiver refuse what arrives. Only when a file cannot be deleted
is the spool full: new datagrams are then dropped and counted, TCP senders wait, and the log
says so (``syslog_spool_full``).
A spool file (or directory) removed or replaced while the receiver runs is opened again at its path
before the next write (``syslog_spool_reopened``), never appended to unseen. A failing write is
logged once (``syslog_spool_write_failed``, then ``syslog_spool_write_resumed``). A FIFO, directory or device
where the spool file should be is refused, never opened and waited on.

For the reader (the file tailer of a log plugin): lines are appended whole and never rewritten;
files are renamed, never copied or truncated, and deleted only whole and oldest first, so a
checkpoint of (inode, first bytes, offset) stays valid for every file that still exists. The
receiver asks ``read_offset(path)`` how far the reader has committed in a rotated file before it
deletes it, and counts the rest as discarded; the answer and the deletion are not atomic with the
reader's own reading, so a reader must not count lines of a spool file read after it answered for
that file (it is gone by then, and those lines are counted as discarded).

Everything a sender can get wrong is counted per transport and result and never stops the
receiver: ``received``, ``oversized`` (over ``max_message_bytes``), ``malformed`` (no valid PRI,
binary junk, an octet count cut short by the end of the connection, an empty frame) and
``dropped`` (datagrams the spool could not take, UDP queue full, a partial frame or a TCP message
the spool could not take when the receiver stops, and on Linux
datagrams the kernel dropped because the socket buffer was full, read from SO_RXQ_OVFL).

Imports only the standard library (with normagent's ``dataclass``) and normagent.clock/errors
(structlog for the log).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import selectors
import socket
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Literal

import structlog

from normagent.clock import Clock
from normagent.errors import NormagentError, StateError
from normagent.hostnames import fairness_group, for_socket
from normagent.records import dataclass
from normagent.timeparse import strptime
from normagent.smallfile import kind_of
from normagent.sources.lines import count_lines

log = structlog.get_logger(__name__)

Transport = Literal["udp", "tcp"]
TRANSPORTS: tuple[Transport, ...] = ("udp", "tcp")
RESULTS = ("received", "oversized", "malformed", "dropped")
CONNECTION_RESULTS = ("accepted", "refused", "idle_closed", "evicted")
SPOOL_NAME = "syslog.log"
MAX_PENDING_BYTES = 16 * 2**20  # UDP datagrams waiting for the writer; beyond this they are dropped
SPOOL_RETRY_SECONDS = 1.0  # a write the spool could not take (full disk, spool full) is tried again after this
READ_BYTES = 65536
MAX_OCTET_DIGITS = 10  # RFC 6587 MSG-LEN; more digits than this is not a length
# Linux SO_RXQ_OVFL (asm-generic/socket.h; Python has no constant): each datagram then carries the
# socket's running count of datagrams the kernel dropped for want of buffer space.
SO_RXQ_OVFL = 40
_ROTATED = re.compile(re.escape(SPOOL_NAME) + r"-(\d{8})-(\d{6})-(\d{6})$")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_PRI = re.compile(rb"<(\d{1,3})>")


class SyslogListenError(NormagentError):
    """The receiver cannot listen where it is told to (address in use, permission, no such host)."""

    exit_code = 69  # EX_UNAVAILABLE, as the HTTP server's: the address may be free after a restart


@dataclass(frozen=True, slots=True)
class SyslogSettings:
    """``[syslog]``: the receiver for firewalls and appliances that send syslog to this server."""

    udp_listen: str = field(
        default="127.0.0.1:514",
        metadata={"help": 'UDP address to receive on, "host:port" ("0.0.0.0:514" for every interface, "[::]:514" for IPv6); "" turns UDP off'},
    )
    tcp_listen: str = field(
        default="127.0.0.1:514",
        metadata={"help": 'TCP address to receive on, as udp_listen; "" turns TCP off'},
    )
    max_message_bytes: int = field(
        default=65536,
        metadata={
            "help": "Longest message accepted; a longer one is counted as oversized and dropped. Each TCP connection "
            "may hold this much of an unfinished message",
            "min": 480,  # RFC 3164/5426: every receiver must take 480 octets
            "max": 2**20,
        },
    )
    max_connections: int = field(
        default=100,
        metadata={
            "help": "TCP connections served at once. When full, a new connection closes the longest silent one of "
            "the address holding the most (evicted), if that address holds more than the newcomer's; "
            "otherwise the new one is closed (refused)",
            "min": 1,
            "max": 1000,  # each an open file, and up to max_message_bytes of memory
        },
    )
    idle_timeout: timedelta = field(
        default=timedelta(minutes=5),
        metadata={"help": "A TCP connection silent this long is closed", "min": timedelta(seconds=1), "max": timedelta(days=1)},
    )
    spool_file_bytes: int = field(
        default=64 * 2**20,
        metadata={"help": "Size at which the spool file is rotated", "min": 4096, "max": 2**30},
    )
    spool_max_files: int = field(
        default=8,
        metadata={
            "help": "Rotated spool files kept for their reader; to rotate beyond this, the oldest is deleted, and "
            "what no reader had read in it is counted (normagent_syslog_spool_discarded_messages_total) and "
            "logged. With spool_file_bytes, this caps the spool's disk space",
            "min": 1,
            "max": 1000,
        },
    )
    udp_receive_buffer: int = field(
        default=4 * 2**20,
        metadata={
            "help": "Kernel receive buffer asked for the UDP socket (SO_RCVBUF), for bursts; Linux caps it at "
            "net.core.rmem_max",
            "min": 4096,
            "max": 256 * 2**20,
        },
    )


def validate_syslog(settings: SyslogSettings) -> list[tuple[str, str]]:
    """The checks ``[syslog]`` needs beyond types and ranges, as (key, message) pairs; empty when usable."""
    problems: list[tuple[str, str]] = []
    for key in ("udp_listen", "tcp_listen"):
        text = getattr(settings, key)
        if text:
            try:
                parse_listen(text)
            except ValueError as exc:
                problems.append((key, str(exc)))
    if not settings.udp_listen and not settings.tcp_listen:
        problems.append(("udp_listen", 'both udp_listen and tcp_listen are "": the receiver would receive nothing'))
    # Each value's own range is field metadata, checked where the configuration is read.
    if settings.spool_file_bytes < settings.max_message_bytes:
        problems.append(("spool_file_bytes", "must be at least max_message_bytes"))
    return problems


def parse_listen(text: str) -> tuple[str, int]:
    """Split ``"host:port"`` (IPv6 in brackets) into host and port; port 0 asks for a free port."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f'expected "host:port" like "127.0.0.1:514" or "[::1]:514", got "{text}"')
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ValueError(f'port must be a number from 0 to 65535, got "{port_text}" in "{text}"')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f'"[{host}]" is not an IPv6 address in brackets') from None
    elif ":" in host:
        raise ValueError(f'write IPv6 addresses in brackets, like "[{host}]:{port_text}"')
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class SyslogStats:
    """A snapshot of the receiver's counters (cumulative since start) and state.

    Attributes:
        messages: ``{(transport, result): count}`` for every transport in ``TRANSPORTS`` and
            result in ``RESULTS``, zeros included.
        connections: TCP connections by outcome: ``accepted``, ``refused`` (over
            ``max_connections``), ``idle_closed`` (silent past ``idle_timeout``), ``evicted``
            (closed to make room for another address's connection).
        open_connections: TCP connections open now.
        spool_files: Rotated spool files on disk now (the current file not included).
        spool_full: Whether new messages are being dropped because a rotated file cannot be deleted.
        discarded_messages: Messages spooled, then discarded unread with the oldest rotated file to
            keep ``spool_max_files``.
        discarded_bytes: Their bytes in the spool (spool lines, with timestamp and sender).
    """

    messages: Mapping[tuple[str, str], int]
    connections: Mapping[str, int]
    open_connections: int
    spool_files: int
    spool_full: bool
    discarded_messages: int = 0
    discarded_bytes: int = 0


# ------------------------------------------------------------------------------------------------
# Framing (pure)


FrameResult = tuple[Literal["message", "oversized", "malformed"], bytes]


class TcpFramer:
    """Cuts a TCP byte stream into syslog messages, octet-counted or newline-framed, per message.

    RFC 6587: a frame that starts with a digit is ``MSG-LEN SP MSG``; anything else (normally
    ``<PRI>``) runs to LF. NUL also ends a newline-framed message and a CR before the LF is
    dropped, as rsyslog and syslog-ng do. Buffering is bounded by ``max_bytes``: an oversized
    message is skipped as it streams past, never held.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversized octet-counted frame still to discard
        self._discard_line = False  # discarding an oversized newline-framed message up to its end

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[FrameResult]:
        """Add bytes from the stream; return the frames they complete."""
        self._buf += data
        buf = self._buf
        out: list[FrameResult] = []
        pos = 0  # consumed up to here; the buffer is cut once at the end (no quadratic copying)
        size = len(buf)
        while pos < size:
            if self._skip:
                n = min(self._skip, size - pos)
                pos += n
                self._skip -= n
                continue
            if self._discard_line:
                end = _terminator(buf, pos)
                if end < 0:
                    pos = size
                    break
                pos = end + 1
                self._discard_line = False
                continue
            pos = _content_start(buf, pos)
            if pos == size:
                break
            if 0x30 <= buf[pos] <= 0x39:
                header = _octet_header(buf, pos)
                if header == "wait":
                    break
                if header is not None:
                    length, body = header
                    if length == 0:
                        pos = body
                        out.append(("malformed", b""))
                        continue
                    if length > self.max_bytes:
                        pos = body
                        self._skip = length
                        out.append(("oversized", b""))
                        continue
                    if size < body + length:
                        break
                    out.append(("message", bytes(buf[body : body + length])))
                    pos = body + length
                    continue
            end = _terminator(buf, pos)
            if end < 0:
                if size - pos > self.max_bytes:
                    pos = size
                    self._discard_line = True
                    out.append(("oversized", b""))
                break
            if end - pos > self.max_bytes:
                out.append(("oversized", b""))
            else:
                out.append(("message", bytes(buf[pos:end]).rstrip(b"\r")))
            pos = end + 1
        del buf[:pos]
        return out

    def close(self) -> list[FrameResult]:
        """The end of the stream. A newline-framed message without its LF still counts (many
        senders omit the last one); an octet-counted frame cut short is malformed."""
        buf, self._buf = self._buf, bytearray()
        skipping = self._skip or self._discard_line
        self._skip, self._discard_line = 0, False
        if skipping:
            return []  # the oversized frame was counted when it began
        start = _content_start(buf, 0)
        if start == len(buf):
            return []
        if 0x30 <= buf[start] <= 0x39 and _octet_header(buf, start) is not None:
            return [("malformed", b"")]  # a length, and fewer bytes than it promised
        return [("message", bytes(buf[start:]).rstrip(b"\r"))]


def _terminator(buf: bytearray, pos: int) -> int:
    """Index of the LF or NUL that ends the message starting at ``pos``; -1 if none yet."""
    lf = buf.find(b"\n", pos)
    nul = buf.find(b"\x00", pos, lf if lf >= 0 else len(buf))
    return nul if nul >= 0 else lf


def _content_start(buf: bytearray, pos: int) -> int:
    """Skip LF/CR/NUL/blanks between frames (keep-alives, a stray LF after a counted frame)."""
    size = len(buf)
    while pos < size and buf[pos] in b" \t\r\n\x00":
        pos += 1
    return pos


def _octet_header(buf: bytearray, pos: int) -> tuple[int, int] | Literal["wait"] | None:
    """``(length, start of body)`` of ``MSG-LEN SP`` at ``pos``; "wait" for more; None: not a length."""
    i = pos
    size = len(buf)
    while i < size and i - pos <= MAX_OCTET_DIGITS and 0x30 <= buf[i] <= 0x39:
        i += 1
    if i == size and i - pos <= MAX_OCTET_DIGITS:
        return "wait"
    if i - pos > MAX_OCTET_DIGITS or buf[i] != 0x20:
        return None
    return int(buf[pos:i]), i + 1


def valid_pri(message: bytes) -> bool:
    """Whether ``message`` starts with a syslog PRI ``<0>`` … ``<191>``."""
    match = _PRI.match(message)
    return match is not None and int(match.group(1)) <= 191


def escape_controls(message: bytes) -> bytes:
    """Control characters other than TAB as rsyslog writes them (``#012`` for LF): one message, one line."""
    if _CONTROL.search(message) is None:
        return message
    return _CONTROL.sub(lambda m: b"#%03o" % m.group()[0], message)


def spool_line(received: datetime, sender: str, message: bytes) -> bytes:
    """One spool line: receive time, sender address, the message with controls escaped."""
    stamp = received.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{stamp} {sender or '-'} ".encode() + escape_controls(message) + b"\n"


@dataclass(frozen=True, slots=True)
class SpoolLine:
    """A spool line taken apart: when and from where a message came, and the message."""

    received: datetime
    sender: str
    message: bytes


def parse_spool_line(line: bytes) -> SpoolLine | None:
    """Split a spool line written by the receiver; None for anything else."""
    stamp, sp, rest = line.rstrip(b"\r\n").partition(b" ")
    sender, sp2, message = rest.partition(b" ")
    if not sp or not sp2:
        return None
    try:
        received = datetime.fromisoformat(stamp.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if received.tzinfo is None:
        return None
    return SpoolLine(received=received, sender=sender.decode("ascii", "replace"), message=message)


# ------------------------------------------------------------------------------------------------
# Parsing messages (pure)


@dataclass(frozen=True, slots=True)
class SyslogMessage:
    """The fields of one syslog message, RFC 5424 or RFC 3164 (and the variants devices send).

    Attributes:
        facility: PRI // 8, or None when the line had no PRI (a line from a log file).
        severity: PRI % 8 (0 emergency … 7 debug), or None.
        version: 1 for RFC 5424; None otherwise.
        stamp: The timestamp as written (``"Nov  8 12:37:34"``, ``"2021-03-06T04:07:38.26+00:00"``).
        time: The timestamp as aware UTC when it carries a year and a zone (RFC 5424, RFC 3339);
            None for RFC 3164 (``rfc3164_time`` infers the year and applies the host's zone).
        hostname: HOSTNAME, or "" when the sender left it out.
        app_name: RFC 5424 APP-NAME or the RFC 3164 TAG (``sshd``, ``filterlog``).
        procid: RFC 5424 PROCID or the PID in ``tag[pid]:``.
        msgid: RFC 5424 MSGID.
        structured_data: RFC 5424 STRUCTURED-DATA as written ("" when nil); see
            ``structured_data_elements``.
        message: MSG, decoded as UTF-8 with replacement (a leading BOM removed).
    """

    facility: int | None
    severity: int | None
    version: int | None
    stamp: str
    time: datetime | None
    hostname: str
    app_name: str
    procid: str
    msgid: str
    structured_data: str
    message: str


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|z|[+-]\d\d:?\d\d)?$")
_BSD_STAMP = re.compile(
    r"^(?:(?P<lyear>\d{4}) )?(?P<mon>[A-Za-z]{3}) +(?P<day>\d{1,2})(?: (?P<myear>\d{4}))? (?P<clock>\d\d:\d\d:\d\d)(?:\.\d+)?:? "
)
_ISO_PREFIX = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|z|[+-]\d\d:?\d\d)?) ")
_TAG = re.compile(r"^(?P<tag>[^\s:\[\]=]{1,64}|[^\s:\[\]=]{0,64}\([^\s)]*\))(?:\[(?P<pid>[^\]\s]*)\])?:(?: |$)")
_SD_ELEMENT = re.compile(r'\[(?P<id>[^\s\]=]+)(?P<params>(?:\s+[^\s=\]"]+="(?:[^"\\]|\\.)*")*)\s*\]')
_SD_PARAM = re.compile(r'([^\s=\]"]+)="((?:[^"\\]|\\.)*)"')


def parse_syslog(line: bytes | str) -> SyslogMessage | None:
    """Take a syslog message apart: RFC 5424, RFC 3164 with or without host, year-prefixed, RFC 3339.

    Also accepts lines as log files hold them (no PRI). Tolerant by design: what cannot be
    recognised ends up in ``message``.

    Returns:
        The fields, or None for an empty line or one starting with ``<`` but no valid PRI.
    """
    raw = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
    raw = raw.rstrip(b"\r\n")
    if not raw.strip():
        return None
    facility = severity = None
    if raw.startswith(b"<"):
        match = _PRI.match(raw)
        if match is None or int(match.group(1)) > 191:
            return None
        pri = int(match.group(1))
        facility, severity = pri // 8, pri % 8
        raw = raw[match.end() :]
    text = raw.decode("utf-8", "replace")
    if text.startswith("1 ") and facility is not None:
        parsed = _parse_5424(text[2:], facility, severity)
        if parsed is not None:
            return parsed
    return _parse_3164(text, facility, severity)


def _parse_5424(text: str, facility: int | None, severity: int | None) -> SyslogMessage | None:
    parts = text.split(" ", 5)
    if len(parts) < 5:
        return None
    stamp, host, app, procid, msgid = parts[:5]
    rest = parts[5] if len(parts) > 5 else ""
    if stamp != "-" and not _RFC3339.match(stamp):
        return None
    sd, message = _split_structured_data(rest)
    if sd is None:
        return None
    return SyslogMessage(
        facility=facility,
        severity=severity,
        version=1,
        stamp="" if stamp == "-" else stamp,
        time=None if stamp == "-" else _iso_time(stamp),
        hostname=_nil(host),
        app_name=_nil(app),
        procid=_nil(procid),
        msgid=_nil(msgid),
        structured_data="" if sd == "-" else sd,
        message=message.removeprefix("\ufeff"),
    )


def _nil(value: str) -> str:
    return "" if value == "-" else value


def _split_structured_data(rest: str) -> tuple[str | None, str]:
    """(STRUCTURED-DATA, MSG) from what follows MSGID; None when SD is neither "-" nor elements."""
    if not rest:
        return "-", ""  # SD left out altogether: tolerated, as rsyslog does
    if rest.startswith("-"):
        return "-", rest[2:] if rest[1:2] == " " else rest[1:]
    pos = 0
    while pos < len(rest) and rest[pos] == "[":
        match = _SD_ELEMENT.match(rest, pos)
        if match is None:
            return None, rest
        pos = match.end()
    if pos == 0:
        return None, rest
    message = rest[pos:]
    return rest[:pos], message[1:] if message.startswith(" ") else message


def structured_data_elements(sd: str) -> list[tuple[str, dict[str, str]]]:
    """RFC 5424 STRUCTURED-DATA as (SD-ID, {param: value}) pairs, escapes (\\" \\\\ \\]) undone."""
    out = []
    for element in _SD_ELEMENT.finditer(sd):
        params = {name: re.sub(r"\\([\"\\\]])", r"\1", value) for name, value in _SD_PARAM.findall(element["params"])}
        out.append((element["id"], params))
    return out


def _parse_3164(text: str, facility: int | None, severity: int | None) -> SyslogMessage:
    stamp = ""
    time: datetime | None = None
    rest = text
    iso = _ISO_PREFIX.match(text)
    if iso:
        stamp, rest = iso.group(1), text[iso.end() :]
        time = _iso_time(stamp)
    else:
        bsd = _BSD_STAMP.match(text)
        if bsd and bsd["mon"].lower() in _MONTHS:
            # Local time without a zone (even with a year): rfc3164_time resolves it.
            stamp, rest = text[: bsd.end()].rstrip(": "), text[bsd.end() :]
    hostname, app, procid = "", "", ""
    tag = _TAG.match(rest)
    if tag is None and " " in rest:
        first, remainder = rest.split(" ", 1)
        tag_after_host = _TAG.match(remainder)
        if tag_after_host is not None or (stamp and _looks_like_host(first)):
            hostname, rest = first, remainder
            tag = tag_after_host
    if tag is not None:
        app, procid = tag["tag"], tag["pid"] or ""
        rest = rest[tag.end() :]
    return SyslogMessage(
        facility=facility,
        severity=severity,
        version=None,
        stamp=stamp,
        time=time,
        hostname=hostname,
        app_name=app,
        procid=procid,
        msgid="",
        structured_data="",
        message=rest,
    )


def _looks_like_host(token: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]*", token))


def _iso_time(stamp: str) -> datetime | None:
    text = stamp.replace("z", "Z")
    # fromisoformat takes 6 fraction digits at most; RFC 5424 allows up to 6, rsyslog writes 6,
    # some devices write 9.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        value = datetime.fromisoformat(text)
        return value.astimezone(timezone.utc) if value.tzinfo is not None else None
    except (ValueError, OverflowError):  # OverflowError: no UTC instant (year 1 east of UTC, 9999 west)
        return None


def rfc3164_time(stamp: str, now: datetime, tz: tzinfo) -> datetime | None:
    """The instant of an RFC 3164 stamp (``"Nov  8 12:37:34"``), written in zone ``tz``.

    The year is taken from the stamp if it has one; otherwise it is the latest year that does
    not put the stamp more than a day after ``now`` (December lines read in January belong to
    last year; a sender whose clock is a little ahead on New Year's Eve to next year).

    Args:
        stamp: ``SyslogMessage.stamp``.
        now: Aware "now".
        tz: The zone the sender writes its local time in.
    """
    match = _BSD_STAMP.match(stamp + " ")
    if not match:
        return None
    hour, minute, second = (int(x) for x in match["clock"].split(":"))
    explicit = match["lyear"] or match["myear"]
    return rfc3164_instant(match["mon"], int(match["day"]), hour, minute, second, now, tz, year=int(explicit) if explicit else None)


def rfc3164_instant(
    month: str, day: int, hour: int, minute: int, second: int, now: datetime, tz: tzinfo, year: int | None = None
) -> datetime | None:
    """``rfc3164_time`` of a stamp already split into its fields (``month`` as written, "Nov"):
    for a reader that has them from a scan of its own and need not parse the stamp's text.

    Without ``year``, the latest of next year, this year and last year (in ``tz``) that does not
    put the stamp more than a day after ``now``. None for an unknown month or no such day.
    """
    try:
        number = _MONTHS.index(month.lower()) + 1
    except ValueError:
        return None
    local_now = now.astimezone(tz)
    years = (year,) if year is not None else (local_now.year + 1, local_now.year, local_now.year - 1)
    for candidate in years:
        try:
            value = datetime(candidate, number, day, hour, minute, second, tzinfo=tz)
            if year is not None or value <= local_now + timedelta(days=1):
                return value.astimezone(timezone.utc)
        except ValueError:
            continue  # Feb 29 outside a leap year, or no such day at all
        except OverflowError:
            return None  # a written year with no UTC instant: year 1 east of UTC, 9999 west
    return None


# ------------------------------------------------------------------------------------------------
# The spool (used by the writer thread only)


class Spool:
    """The spool file and its rotated siblings. One writer thread owns it; only ``rotated()``,
    ``full`` and ``discarded()`` may be read from other threads."""

    def __init__(
        self,
        directory: Path,
        settings: SyslogSettings,
        clock: Clock,
        read_offset: Callable[[Path], int] | None = None,
    ) -> None:
        self.directory = directory
        self.path = directory / SPOOL_NAME
        self._settings = settings
        self._clock = clock
        self._read_offset = read_offset
        self._fd = -1
        self._size = 0
        self.full = False
        self._last_prune = float("-inf")
        self._discard_failing = False  # log a file that cannot be deleted once, not every second
        self._counts_lock = threading.Lock()
        self._discarded = (0, 0)  # messages, bytes

    def open(self) -> None:
        """Create the directory and file, and cut off a line a crash left half-written.

        Raises:
            StateError: the spool cannot be used, saying which path and why (the directory is a
                file, no permission, the spool file is a FIFO or a directory …).
        """
        try:
            self._open()
        except OSError as exc:
            raise StateError(f"syslog spool {exc.filename or self.path}: {exc.strerror or exc}") from None

    def _open(self) -> None:
        _refuse_other_than(self.directory, stat.S_ISDIR, "a directory")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = _open_spool_file(self.path)
        self._size = os.fstat(self._fd).st_size
        self._repair()
        _fsync_dir(self.directory)

    def _ensure_open(self) -> None:
        """Open the spool file again if it is not the one at ``path`` any more: removed (with its
        directory, perhaps), replaced, or never reopened after a failed rotation. Appending to a
        file no directory lists would count messages as received that no reader can ever read.

        Raises:
            OSError: the spool cannot be opened again (the write is then dropped and counted).
        """
        try:
            on_disk: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            on_disk = None
        if self._fd >= 0 and on_disk is not None:
            mine = os.fstat(self._fd)
            if (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino):
                return
        if self._fd >= 0:
            log.warning(
                "syslog_spool_reopened",
                spool=str(self.path),
                reason="the spool file was removed" if on_disk is None else "the spool file was replaced",
                effect="messages in the old file that were not read yet are lost with it",
            )
            self.close()
        self._open()

    def _repair(self) -> None:
        if self._size == 0:
            return
        end = self._last_newline_end()
        if end == self._size:
            return
        # A line whose fsync never finished was never counted: cut it off rather than glue the
        # next message onto it. The tailer has not read it either: it waits for a whole line.
        os.ftruncate(self._fd, end)
        log.warning("syslog_spool_repaired", spool=str(self.path), removed_bytes=self._size - end)
        self._size = end

    def _last_newline_end(self) -> int:
        """Offset just after the file's last LF (0 if it has none)."""
        with open(self.path, "rb") as f:
            pos = self._size
            while pos > 0:
                start = max(0, pos - READ_BYTES)
                f.seek(start)
                chunk = f.read(pos - start)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    return start + cut + 1
                pos = start
        return 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def discarded(self) -> tuple[int, int]:
        """Messages and bytes discarded unread since start (rotated files deleted to make room)."""
        with self._counts_lock:
            return self._discarded

    def rotated(self) -> list[Path]:
        """Rotated spool files, oldest first."""
        names = [entry for entry in os.listdir(self.directory) if _ROTATED.fullmatch(entry)]
        return [self.directory / name for name in sorted(names)]

    def write(self, lines: list[bytes]) -> bool:
        """Append ``lines`` and make them durable; False (nothing written) when the spool is full."""
        self._ensure_open()
        if self._size >= self._settings.spool_file_bytes and not self._rotate():
            return False
        data = b"".join(lines)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fdatasync(self._fd)
        except OSError:
            # A disk full mid-write leaves half a line: take it back so the next write starts clean.
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                self._size = os.fstat(self._fd).st_size
            raise
        self._size += len(data)
        return True

    def _rotate(self) -> bool:
        rotated = self.rotated()
        if len(rotated) >= self._settings.spool_max_files:
            now = self._clock.monotonic()
            if self.full and now - self._last_prune < 1.0:
                return False  # a file could not be deleted less than a second ago
            self._last_prune = now
            rotated = self._make_room(rotated)
            if len(rotated) >= self._settings.spool_max_files:
                if not self.full:
                    log.warning("syslog_spool_full", spool=str(self.path), rotated_files=len(rotated))
                self.full = True
                return False
        target = self.directory / f"{SPOOL_NAME}-{self._stamp(rotated)}"
        os.rename(self.path, target)
        self.close()  # if the new file cannot be made, the next write tries again (_ensure_open)
        self._fd = _open_spool_file(self.path)
        _fsync_dir(self.directory)
        log.info("syslog_spool_rotated", rotated_to=target.name, bytes=self._size)
        self._size = 0
        if self.full:
            log.info("syslog_spool_resumed", spool=str(self.path))
        self.full = False
        return True

    def _make_room(self, rotated: list[Path]) -> list[Path]:
        """Delete the oldest rotated files until fewer than ``spool_max_files`` remain.

        A file its reader has read to the end is removed; any other is discarded: what the reader
        had not read is counted and logged. Stops at a file that cannot be deleted.
        """
        kept = list(rotated)
        while kept and len(kept) >= self._settings.spool_max_files:
            oldest = kept[0]
            uncounted: str | None = None  # why its messages could not be counted (its bytes still are)
            try:
                size = oldest.stat().st_size
                read = min(self._reader_offset(oldest), size)
                try:
                    messages = _lines_after(oldest, read) if read < size else 0
                except OSError as exc:
                    messages, uncounted = 0, exc.strerror or str(exc)
                oldest.unlink()
            except FileNotFoundError:
                pass  # gone already (a reader that deletes what it read): nothing to count
            except OSError as exc:
                if not self._discard_failing:
                    log.error("syslog_spool_discard_failed", file=oldest.name, error=exc.strerror or str(exc))
                self._discard_failing = True
                break
            else:
                self._discard_failing = False
                if read >= size:
                    log.info("syslog_spool_removed", file=oldest.name)
                else:
                    with self._counts_lock:
                        self._discarded = (self._discarded[0] + messages, self._discarded[1] + size - read)
                    log.warning(
                        "syslog_spool_discarded",
                        file=oldest.name,
                        messages=messages if uncounted is None else None,
                        bytes=size - read,
                        read_bytes=read,
                        reason="spool_max_files reached" + ("; nothing reads the spool" if self._read_offset is None else ""),
                        **({"count_error": uncounted} if uncounted is not None else {}),
                    )
            kept.pop(0)
        if len(kept) != len(rotated):
            _fsync_dir(self.directory)
        return kept

    def _reader_offset(self, path: Path) -> int:
        """Bytes of ``path`` its reader has committed: 0 without a reader, or if it cannot say."""
        if self._read_offset is None:
            return 0
        try:
            return max(0, int(self._read_offset(path)))
        except Exception:  # a failing callback must not stop the receiver: count the whole file
            log.exception("syslog_spool_reader_failed", file=path.name)
            return 0

    def _stamp(self, rotated: list[Path]) -> str:
        """A rotation stamp later than every existing one, even if the clock went back."""
        now = self._clock.now().astimezone(timezone.utc)
        if rotated:
            match = _ROTATED.fullmatch(rotated[-1].name)
            assert match is not None
            last = strptime("".join(match.groups()), "%Y%m%d%H%M%S%f").replace(tzinfo=timezone.utc)
            if now <= last:
                now = last + timedelta(microseconds=1)
        return now.strftime("%Y%m%d-%H%M%S-%f")


def _lines_after(path: Path, offset: int) -> int:
    """Spool lines in ``path`` after byte ``offset`` (a torn last line, which the spool never
    leaves, would count as one)."""
    lines = 0
    last = b"\n"
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(READ_BYTES * 16):
            lines += count_lines(chunk)
            last = chunk[-1:]
    return lines + (last != b"\n")


def _open_spool_file(path: Path) -> int:
    """The spool file opened for appending (created if missing).

    Raises:
        OSError: it cannot be opened, or something other than a regular file is there: a FIFO
            (never waited on: opening it without O_NONBLOCK would block until a reader came), a
            directory, a device.
    """
    _refuse_other_than(path, stat.S_ISREG, "a regular file")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    try:
        _refuse_other_than(path, stat.S_ISREG, "a regular file", os.fstat(fd))  # replaced meanwhile
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse_other_than(path: Path, is_kind: Callable[[int], bool], kind: str, st: os.stat_result | None = None) -> None:
    """Raise if ``path`` exists (``st``: as fstat saw it) and is not ``kind``; nothing if it is missing."""
    if st is None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
    if not is_kind(st.st_mode):
        raise OSError(errno.EINVAL, f"is {kind_of(st.st_mode)}, not {kind}", str(path))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------
# The receiver


@dataclass(slots=True)
class _Batch:
    transport: Transport
    lines: list[bytes]
    connection: int | None  # the connection to resume reading once the lines are durable
    size: int


@dataclass(slots=True, eq=False)
class _Connection:
    ident: int
    sock: socket.socket
    sender: str
    framer: TcpFramer
    last_active: float
    group: str = ""  # fairness_group(sender): what fairness counts it under
    waiting: bool = False  # its last read is not durable yet: do not read more


class SyslogReceiver:
    """UDP/TCP syslog receiver writing a durable spool; see the module docstring for guarantees.

    Args:
        settings: What to listen on and the limits.
        spool_dir: Directory of the spool (``<state_dir>/syslog``); created if missing.
        clock: Receive timestamps (``now``) and idle timeouts (``monotonic``).
        read_offset: ``read_offset(path) -> int``: how many bytes of a rotated spool file the
            spool's reader has committed (its checkpoint offset; the file's size once it is done).
            Asked before the oldest rotated file is deleted to keep ``spool_max_files``: the rest
            of the file is counted as discarded. None (no reader yet): every deleted file counts
            as discarded in full.
        tick: Longest the network loop sleeps before checking idle connections, in seconds.
    """

    def __init__(
        self,
        settings: SyslogSettings,
        spool_dir: Path,
        clock: Clock,
        *,
        read_offset: Callable[[Path], int] | None = None,
        tick: float = 1.0,
    ) -> None:
        self.settings = settings
        self.spool = Spool(Path(spool_dir), settings, clock, read_offset)
        self._clock = clock
        self._tick = tick
        self._lock = threading.Lock()
        self._messages: dict[tuple[str, str], int] = {(t, r): 0 for t in TRANSPORTS for r in RESULTS}
        self._connections_count = dict.fromkeys(CONNECTION_RESULTS, 0)
        self._selector: selectors.BaseSelector | None = None
        self._wake_r = self._wake_w = -1
        self._listeners: list[tuple[Transport, socket.socket]] = []
        self._addresses: list[tuple[str, str, int]] = []
        self._conns: dict[int, _Connection] = {}
        self._next_ident = 0
        self._stopping = threading.Event()
        self._net_thread: threading.Thread | None = None
        self._writer_thread: threading.Thread | None = None
        # writer queue
        self._cond = threading.Condition()
        self._pending: list[_Batch] = []
        self._pending_bytes = 0
        self._writer_stop = False
        self._acks: deque[int] = deque()
        self._ancillary_size = 0  # room for the SO_RXQ_OVFL counter, where the kernel has one
        self._kernel_drops: int | None = None

    @property
    def spool_path(self) -> Path:
        """The file to tail: ``<spool_dir>/syslog.log``."""
        return self.spool.path

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool, bind the sockets and start the threads.

        Raises:
            SyslogListenError: An address cannot be bound (in use, no permission for port 514,
                unknown host); nothing is left running.
        """
        self.spool.open()
        try:
            for transport, text in (("udp", self.settings.udp_listen), ("tcp", self.settings.tcp_listen)):
                if text:
                    sock = self._bind(transport, text)  # type: ignore[arg-type]
                    self._listeners.append((transport, sock))  # type: ignore[arg-type]
                    self._addresses.append((transport, *sock.getsockname()[:2]))
        except BaseException:
            for _, sock in self._listeners:
                sock.close()
            self._listeners.clear()
            self._addresses.clear()
            self.spool.close()
            raise
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        for transport, sock in self._listeners:
            self._selector.register(sock, selectors.EVENT_READ, (transport, None))
        self._writer_thread = threading.Thread(target=self._write_loop, name="syslog-writer", daemon=True)
        self._net_thread = threading.Thread(target=self._serve, name="syslog-receiver", daemon=True)
        self._writer_thread.start()
        self._net_thread.start()
        log.info(
            "syslog_receiver_started",
            listen=[f"{t}:{h}:{p}" for t, h, p in self.bound_addresses()],
            spool=str(self.spool.path),
        )

    def stop(self) -> None:
        """Close every socket, spool what was received, and join the threads. Safe to call twice."""
        if self._net_thread is None:
            return
        self._stopping.set()
        self._wake()
        self._net_thread.join()
        with self._cond:
            self._writer_stop = True
            self._cond.notify_all()
        assert self._writer_thread is not None
        self._writer_thread.join()
        self.spool.close()
        assert self._selector is not None
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._net_thread = self._writer_thread = None
        stats = self.stats()
        log.info(
            "syslog_receiver_stopped",
            received=sum(v for (t, r), v in stats.messages.items() if r == "received"),
            dropped=sum(v for (t, r), v in stats.messages.items() if r == "dropped"),
            discarded=stats.discarded_messages,
        )

    def bound_addresses(self) -> list[tuple[str, str, int]]:
        """``(transport, host, port)`` of every listening socket (the real port when 0 was asked)."""
        return list(self._addresses)

    def stats(self) -> SyslogStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            messages = dict(self._messages)
            connections = dict(self._connections_count)
            open_now = len(self._conns)
        try:
            files = len(self.spool.rotated())
        except OSError:
            files = 0
        return SyslogStats(messages, connections, open_now, files, self.spool.full, *self.spool.discarded())

    def _bind(self, transport: Transport, text: str) -> socket.socket:
        try:
            host, port = parse_listen(text)
        except ValueError as exc:
            raise SyslogListenError(f"syslog.{transport}_listen: {exc}") from None
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        try:
            infos = socket.getaddrinfo(for_socket(host), port, type=kind, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise SyslogListenError(f"syslog.{transport}_listen: cannot resolve {host}: {exc.strerror}") from None
        family, _, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if transport == "udp":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.settings.udp_receive_buffer)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
                    self._ancillary_size = socket.CMSG_SPACE(4)
                    self._kernel_drops = 0
                except OSError:
                    pass  # not Linux: kernel drops stay invisible, as with any syslog daemon
            sock.bind(address)
            if transport == "tcp":
                sock.listen(min(socket.SOMAXCONN, 128))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise SyslogListenError(f"syslog.{transport}_listen: cannot listen on {text}: {exc.strerror or exc}") from None
        return sock

    # -- counting -------------------------------------------------------------------------------

    def _count(self, transport: Transport, result: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._messages[(transport, result)] += n

    # -- network thread -------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending, or we are shutting down

    def _serve(self) -> None:
        assert self._selector is not None
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(self._tick):
                    self._dispatch(key)
                self._resume_acked()
                self._close_idle()
        except Exception:
            log.exception("syslog_receiver_failed")  # the stats stop growing; the log says why
        finally:
            self._shutdown_network()

    def _dispatch(self, key: selectors.SelectorKey) -> None:
        kind, conn = key.data
        try:
            if kind == "wake":
                self._drain_wake()
            elif kind == "udp":
                self._read_udp(key.fileobj)  # type: ignore[arg-type]
            elif kind == "tcp":
                self._accept(key.fileobj)  # type: ignore[arg-type]
            else:
                self._read_tcp(conn)
        except Exception:
            # A bug met by one sender's bytes must not stop the receiver for everyone else.
            log.exception("syslog_receiver_error", transport=kind if kind in TRANSPORTS else "tcp")
            if conn is not None and conn.ident in self._conns:
                self._close(conn)

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _read_udp(self, sock: socket.socket) -> None:
        limit = self.settings.max_message_bytes
        lines: list[bytes] = []
        size = 0
        now = self._clock.now()
        for _ in range(256):  # bounded, so TCP connections get their turn in a flood
            try:
                data, ancillary, _, address = sock.recvmsg(max(limit + 1, READ_BYTES), self._ancillary_size)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    continue  # ICMP errors surfacing from earlier sends: nothing to do with input
                raise
            self._count_kernel_drops(ancillary)
            message = data.rstrip(b"\r\n\x00")
            if len(message) > limit:
                self._count("udp", "oversized")
            elif not valid_pri(message):
                self._count("udp", "malformed")
            else:
                line = spool_line(now, _sender(address), message)
                lines.append(line)
                size += len(line)
        if lines:
            self._submit(_Batch("udp", lines, None, size))

    def _count_kernel_drops(self, ancillary: list[tuple[int, int, bytes]]) -> None:
        """Datagrams the kernel dropped before we could read them (a full socket buffer)."""
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(data) >= 4:
                total = int.from_bytes(data[:4], sys.byteorder)
                # The counter rides on the next datagram that gets through: drops are counted
                # late (at the next datagram), never lost.
                if self._kernel_drops is not None and total > self._kernel_drops:
                    self._count("udp", "dropped", total - self._kernel_drops)
                self._kernel_drops = total

    def _accept(self, listener: socket.socket) -> None:
        assert self._selector is not None
        for _ in range(64):
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("syslog_accept_failed", error=exc.strerror)
                    return
                continue  # ECONNABORTED and friends: the client is gone already
            sender = _sender(address)
            group = fairness_group(sender)
            if len(self._conns) >= self.settings.max_connections and not self._make_room(group):
                sock.close()
                with self._lock:
                    self._connections_count["refused"] += 1
                continue
            sock.setblocking(False)
            self._next_ident += 1
            conn = _Connection(self._next_ident, sock, sender, TcpFramer(self.settings.max_message_bytes), self._clock.monotonic(), group)
            with self._lock:
                self._conns[conn.ident] = conn
                self._connections_count["accepted"] += 1
            self._selector.register(sock, selectors.EVENT_READ, ("conn", conn))

    def _make_room(self, newcomer: str) -> bool:
        """Close a connection for one from ``newcomer`` (a ``fairness_group``): the longest silent one of the address
        (IPv6: the /64, one host's) holding the most, if it holds more than ``newcomer`` would with this one. So a sender that
        opens every place cannot lock out the others (a firewall keeps one connection open for
        days), and one address flooding is refused, not allowed to close the others' connections.
        A connection whose lines are being written is never closed. False: nothing was closed."""
        held: dict[str, int] = {}
        for conn in self._conns.values():
            held[conn.group] = held.get(conn.group, 0) + 1
        limit = held.get(newcomer, 0) + 1
        for group, n in sorted(held.items(), key=lambda item: -item[1]):
            if n <= limit:
                return False
            candidates = [c for c in self._conns.values() if c.group == group and not c.waiting]
            if candidates:
                victim = min(candidates, key=lambda c: c.last_active)
                if victim.framer.pending:
                    self._count("tcp", "dropped")  # a message begun and never finished
                self._close(victim)
                with self._lock:
                    self._connections_count["evicted"] += 1
                return True
        return False

    def _read_tcp(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # reset by the peer: what was framed so far stands
        conn.last_active = self._clock.monotonic()
        frames = conn.framer.feed(data) if data else conn.framer.close()
        lines: list[bytes] = []
        size = 0
        now = self._clock.now()
        for result, message in frames:
            if result != "message":
                self._count("tcp", result)
            elif not valid_pri(message):
                self._count("tcp", "malformed")
            else:
                line = spool_line(now, conn.sender, message)
                lines.append(line)
                size += len(line)
        if not data:
            self._close(conn)
            if lines:
                self._submit(_Batch("tcp", lines, None, size))
            return
        if lines:
            # Read no more from this connection until these lines are durable.
            conn.waiting = True
            assert self._selector is not None
            self._selector.unregister(conn.sock)
            self._submit(_Batch("tcp", lines, conn.ident, size))

    def _resume_acked(self) -> None:
        assert self._selector is not None
        while True:
            with self._cond:
                if not self._acks:
                    return
                ident = self._acks.popleft()
            conn = self._conns.get(ident)
            if conn is not None and conn.waiting:
                conn.waiting = False
                self._selector.register(conn.sock, selectors.EVENT_READ, ("conn", conn))

    def _close_idle(self) -> None:
        limit = self.settings.idle_timeout.total_seconds()
        now = self._clock.monotonic()
        for conn in [c for c in self._conns.values() if not c.waiting and now - c.last_active > limit]:
            if conn.framer.pending:
                self._count("tcp", "dropped")  # a message begun and never finished
            self._close(conn)
            with self._lock:
                self._connections_count["idle_closed"] += 1

    def _close(self, conn: _Connection) -> None:
        assert self._selector is not None
        if not conn.waiting:
            try:
                self._selector.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        conn.sock.close()
        with self._lock:
            self._conns.pop(conn.ident, None)

    def _shutdown_network(self) -> None:
        """Stop: close listeners and connections; a frame cut off by the stop is counted dropped."""
        assert self._selector is not None
        for _, sock in self._listeners:
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        for conn in list(self._conns.values()):
            if conn.framer.pending:
                self._count("tcp", "dropped")
            self._close(conn)

    def _submit(self, batch: _Batch) -> None:
        with self._cond:
            if batch.transport == "udp" and self._pending_bytes + batch.size > MAX_PENDING_BYTES:
                dropped = True
            else:
                dropped = False
                self._pending.append(batch)
                self._pending_bytes += batch.size
                self._cond.notify()
        if dropped:
            self._count("udp", "dropped", len(batch.lines))

    # -- writer thread --------------------------------------------------------------------------

    def _write_loop(self) -> None:
        failing = False  # log a failing disk once, not once per batch
        # TCP batches the spool could not take (a full disk, the spool full): their connections
        # stay paused, so the senders keep what follows, and they are tried again every
        # SPOOL_RETRY_SECONDS (not at every datagram: a flood would rewrite them all the time).
        held: list[_Batch] = []
        next_try = 0.0  # time.monotonic() at which held batches are tried again
        while True:
            with self._cond:
                while not self._writer_stop and not self._pending and (not held or time.monotonic() < next_try):
                    self._cond.wait(max(0.0, next_try - time.monotonic()) if held else None)
                stopping = self._writer_stop
                arrived, self._pending, self._pending_bytes = self._pending, [], 0
            if held and not stopping and time.monotonic() < next_try:
                held += [b for b in arrived if b.connection is not None]  # waits with the others
                for transport in TRANSPORTS:
                    datagrams = sum(len(b.lines) for b in arrived if b.connection is None and b.transport == transport)
                    self._count(transport, "dropped", datagrams)
                continue
            batches, held = held + arrived, []
            if not batches:
                return
            lines = [line for batch in batches for line in batch.lines]
            retry = not stopping
            try:
                stored = self.spool.write(lines)
                if failing and stored:
                    log.info("syslog_spool_write_resumed", spool=str(self.spool.path))
                failing = failing and not stored
            except Exception as exc:  # noqa: BLE001 - whatever it is, the connections must be released
                if not failing:
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
                    log.error("syslog_spool_write_failed", spool=str(self.spool.path), error=reason)
                stored, failing = False, True
                retry = retry and isinstance(exc, OSError)  # a bug would hold the connections for ever
            if not stored and retry:
                held = [b for b in batches if b.connection is not None]
                batches = [b for b in batches if b.connection is None]  # UDP, and TCP whose sender left
                next_try = time.monotonic() + SPOOL_RETRY_SECONDS
            for transport in TRANSPORTS:
                count = sum(len(b.lines) for b in batches if b.transport == transport)
                self._count(transport, "received" if stored else "dropped", count)
            acks = [b.connection for b in batches if b.connection is not None]
            if acks:
                with self._cond:
                    self._acks.extend(acks)
                self._wake()


def _sender(address: object) -> str:
    """The sender's IP address as text; an IPv4-mapped IPv6 address as plain IPv4."""
    host = address[0] if isinstance(address, tuple) and address else str(address)
    host = str(host)
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host

