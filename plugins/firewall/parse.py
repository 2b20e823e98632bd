"""Pure parsers for firewall logs: what was blocked, by which device, and when the rules changed.

Formats, each recognised by its own marks (never by the file it came from, so ``normagent parse``
tells them apart in any file):

- **netfilter / nftables / iptables** ``LOG`` lines (``IN=… OUT=… SRC=… DST=… PROTO=…``) as the
  kernel writes them: in kern.log/syslog after ``kernel:``, or as a journal entry's MESSAGE. The
  log prefix says the verdict: ufw's ``[UFW BLOCK]``, firewalld's ``FINAL_REJECT:`` or
  ``filter_IN_public_DROP:``, a site's ``IPTABLES-DROPPED:``. A prefix holding one of
  ``ALLOWED_WORDS`` and none of ``BLOCKED_WORDS`` (``[UFW ALLOW]``, ``[UFW AUDIT]``) logs a packet
  that went through and is not counted; any other prefix, or none, is taken for a drop, as a
  ``LOG`` rule normally sits in front of a ``DROP``.
- **rule-set changes on Linux**: auditd's ``NETFILTER_CFG`` records (one change per audit event:
  an nftables transaction writes several records under one serial), and the service manager's
  ``Reloaded firewalld`` / ``Reloaded ufw`` lines (``count_service_reloads``).
- **Windows Firewall** ``pfirewall.log`` (W3C extended format): the columns are those of the
  last ``#Fields:`` line before a record in the block; a block without one uses the standard
  order, identical in its first 16 columns on every Windows version. ``DROP`` is a block.
- **Windows events** (EVTX): Security 5152 (packet dropped) and 5157 (connection blocked) by the
  Windows Filtering Platform; Security 4946/4947/4948 and the firewall channel's 2004/2005/2006/
  2033 (rule added, modified, deleted, all deleted) are rule changes.
- **appliances** over syslog: pfSense/OPNsense ``filterlog`` CSV, FortiGate key=value
  (``type=traffic`` with ``action=deny``, or ``status=deny`` before FortiOS 5; ``type=event`` with
  ``cfgpath=`` is a configuration change), Cisco ASA/FTD ``%ASA-`` deny messages and configuration
  ends (111005) and erases (111003). Lines come from the receiver's spool
  (``<received> <sender> <message>``) or from a syslog server's files.

Labels stay bounded: ``device`` is a configured name (the spool's sender address or the syslog
host name, matched against ``devices``), ``local`` for this host's own logs, or ``other``;
``direction`` is in|out|forward|unknown, ``proto`` tcp|udp|icmp|icmpv6|other. Source addresses
reach the report only as pseudonyms of their /24 or /48 (``firewall.blocked_by_network``);
destination ports as ``<proto>/<port>`` (``firewall.blocked_by_port``).

Speed: a block is cut by one bytes pattern per format in C (``findall``), the matches are
counted with ``collections.Counter`` (C), and Python runs once per *distinct* combination of
labels, day, network and port, not per line; only lines the pattern does not take whole go the
general way (decoded, split, looked at one by one), which gives the same answer for the lines the
pattern takes (property tests hold the two to it).

Pure: no I/O, no clock, no state between calls. Imports only ``normagent`` and the standard library.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from operator import itemgetter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from typing import Any, Final

from normagent import (
    Count,
    Event,
    JournalEntry,
    ParseContext,
    ParseResult,
    RecordBlock,
    Rollup,
    TextBlock,
    WindowsEvent,
    parse_spool_line,
    parse_syslog,
    rfc3164_time,
)

BLOCKED = "normagent_firewall_blocked_total"
RULE_CHANGES = "normagent_firewall_rule_changes_total"
MESSAGES = "normagent_firewall_messages_total"
BY_PORT = "firewall.blocked_by_port"
BY_NETWORK = "firewall.blocked_by_network"
RULE_CHANGE_EVENT = "firewall.rule_change"

LOCAL: Final = "local"
OTHER: Final = "other"
DIRECTIONS: Final = ("in", "out", "forward", "unknown")
PROTOS: Final = ("tcp", "udp", "icmp", "icmpv6", "other")
BLOCKED_WORDS: Final = ("BLOCK", "DROP", "REJECT", "DENY", "DENIED")
ALLOWED_WORDS: Final = ("ALLOW", "ACCEPT", "AUDIT", "PASS")
_PROTO_NUMBERS: Final = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}


def proto_label(name: str) -> str:
    """``tcp``, ``udp``, ``icmp``, ``icmpv6`` or ``other`` for a protocol name or number."""
    low = name.strip().lower()
    if low in ("tcp", "udp", "icmp", "icmpv6"):
        return low
    if low in ("ipv6-icmp", "icmp6"):
        return "icmpv6"
    return _PROTO_NUMBERS.get(low, "other")


def verdict_blocked(prefix: str) -> bool:
    """Whether a netfilter LOG prefix logs a packet that was dropped (see the module docstring)."""
    upper = prefix.upper()
    if any(word in upper for word in BLOCKED_WORDS):
        return True
    return not any(word in upper for word in ALLOWED_WORDS)


def direction_of(inside: str, outside: str) -> str:
    """Netfilter's IN=/OUT= interfaces as a direction: in, out, forward (both) or unknown."""
    if inside and outside:
        return "forward"
    if inside:
        return "in"
    return "out" if outside else "unknown"


# ---------------------------------------------------------------------------------------------
# What a block adds up to


@dataclass
class Tally:
    """Counts, rollup rows and rule-change events of one block, aggregated before they become
    observations (a 1 MiB block of blocks becomes a few dozen observations)."""

    ctx: ParseContext
    blocked: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # device, direction, proto
    changes: Counter[str] = field(default_factory=Counter)  # device
    messages: Counter[str] = field(default_factory=Counter)  # device
    ports: dict[tuple[date, str], list[Any]] = field(default_factory=dict)  # -> [n, first, last]
    networks: dict[tuple[date, str], list[Any]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    _pseudonyms: dict[str, str | None] = field(default_factory=dict)

    def block(self, device: str, direction: str, proto: str, when: datetime, source: str | None, port: str | None, n: int = 1) -> None:
        self.blocked[(device, direction, proto)] += n
        day = when.astimezone(timezone.utc).date()
        if port and port.isdigit() and proto in ("tcp", "udp"):
            _row(self.ports, (day, f"{proto}/{int(port)}"), when, n)
        if source:
            key = self.network(source)
            if key is not None:
                _row(self.networks, (day, key), when, n)

    def network(self, address: str) -> str | None:
        """The pseudonym of an address's /24 or /48, memoised per block."""
        if address not in self._pseudonyms:
            self._pseudonyms[address] = self.ctx.pseudonymise.network(address)
        return self._pseudonyms[address]

    def network_v4(self, prefix: bytes) -> str | None:
        """The pseudonym of an IPv4 /24 given as its first three octets (``b"203.0.113"``), without
        parsing an address: the same value ``pseudonymise.network`` gives for any address in it."""
        key = prefix.decode("ascii")
        found = self._pseudonyms.get(key)
        if found is None and key not in self._pseudonyms:
            octets = key.split(".")
            if all(o == "0" or (o[0] != "0" and int(o) <= 255) for o in octets):
                found = self.ctx.pseudonymise(f"network:{key}.0/24")
            else:
                found = self.ctx.pseudonymise.network(key + ".0")
            self._pseudonyms[key] = found
        return found

    def change(self, device: str, when: datetime, source: str, line: str) -> None:
        self.changes[device] += 1
        digest = hashlib.sha1(line.encode("utf-8", "replace"), usedforsecurity=False).hexdigest()[:16]
        key = f"{device}:{when.astimezone(timezone.utc).isoformat()}:{digest}"
        self.events.append(Event(RULE_CHANGE_EVENT, when, key, {"device": device, "source": source}))

    def observations(self) -> list[Any]:
        out: list[Any] = [
            Count(BLOCKED, {"device": d, "direction": r, "proto": p}, n) for (d, r, p), n in sorted(self.blocked.items())
        ]
        out += [Count(RULE_CHANGES, {"device": d}, n) for d, n in sorted(self.changes.items())]
        out += [Count(MESSAGES, {"device": d}, n) for d, n in sorted(self.messages.items())]
        for name, rows in ((BY_PORT, self.ports), (BY_NETWORK, self.networks)):
            for (day, key), (n, first, last) in sorted(rows.items()):
                out.append(Rollup(name, day, key, n, first, last))
        out += self.events
        return out


def _row(rows: dict[tuple[date, str], list[Any]], key: tuple[date, str], when: datetime, n: int) -> None:
    row = rows.get(key)
    if row is None:
        rows[key] = [n, when, when]
    else:
        row[0] += n
        if when < row[1]:
            row[1] = when
        elif when > row[2]:
            row[2] = when


# ---------------------------------------------------------------------------------------------
# Devices


@dataclass(frozen=True)
class DeviceMap:
    """Syslog host names and sender addresses (and Windows computer names) to configured device
    names; anything else is ``other``. Matching is case-insensitive."""

    by_sender: Mapping[str, str]

    @classmethod
    def from_settings(cls, devices: Mapping[str, Any] | None) -> DeviceMap:
        table: dict[str, str] = {}
        for name, device in sorted((devices or {}).items()):
            for sender in getattr(device, "senders", ()):
                table.setdefault(sender.strip().lower(), name)
        return cls(table)

    def name(self, *candidates: str) -> str:
        for candidate in candidates:
            if candidate:
                found = self.by_sender.get(candidate.lower())
                if found is None and "." in candidate and not candidate[0].isdigit():
                    found = self.by_sender.get(candidate.split(".", 1)[0].lower())  # fw01.example.org
                if found is not None:
                    return found
        return OTHER


def device_map(ctx: ParseContext) -> DeviceMap:
    return DeviceMap.from_settings(getattr(ctx.settings, "devices", None))


# ---------------------------------------------------------------------------------------------
# Time stamps of text lines


_CLASSIC = re.compile(r"^(?:(\d{4}) )?([A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d)")
_ISO = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)")


def line_time(line: str, ref: datetime, tz: tzinfo) -> datetime | None:
    """The time of a syslog line from its leading stamp (RFC 3164 or RFC 3339), or None."""
    m = _ISO.match(line)
    if m is not None:
        text = m.group(1).replace(" ", "T").replace("Z", "+00:00")
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return None
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=tz).astimezone(timezone.utc)
    m = _CLASSIC.match(line)
    if m is not None:
        stamp = f"{m.group(1)} {m.group(2)}" if m.group(1) else m.group(2)
        return rfc3164_time(stamp, ref, tz)
    return None


# ---------------------------------------------------------------------------------------------
# netfilter LOG lines (kern.log / syslog files, journal MESSAGE)

# The message of a LOG line: prefix, IN=, OUT=, [MAC=], SRC=, DST=, ... PROTO=, [SPT= DPT=].
_NETFILTER_MSG = re.compile(
    r"(?:\[ *\d+\.\d+\] )?(?P<prefix>.*?)IN=(?P<in>\S*) OUT=(?P<out>\S*) (?:(?:MAC|PHYSIN|PHYSOUT)=\S* )*"
    r"SRC=(?P<src>\S+) DST=\S+ (?:.*? )?PROTO=(?P<proto>\S+)(?: SPT=\d+ DPT=(?P<dpt>\d+))?"
)
# A LOG line's message, in bytes, for the fast path; the pattern starts with a literal, which
# ``re`` finds by a fast scan rather than trying every position. Groups: 1 prefix, 2 IN, 3 OUT,
# 4 the /24 of an IPv4 SRC, 5 an IPv6 SRC, 6 PROTO, 7 DPT.
_NETFILTER_FAST: Final = re.compile(
    rb" kernel: (?:\[ *\d+\.\d+\] )?([^\n]*?)IN=(\S*) OUT=(\S*) (?:MAC=\S* )?"
    rb"SRC=(?:(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}|([0-9a-fA-F:]+)) DST=\S+ [^\n\[]*?PROTO=(\w+)(?: SPT=\d+ DPT=(\d+))?"
)
# The stamp of a line as rsyslog writes it: the day, to the block's first and last line.
_DAY = re.compile(rb"(?:([A-Z][a-z]{2} [ \d]\d) \d\d:\d\d:\d\d|(\d{4}-\d\d-\d\d)T\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) \S+ ")
_KERNEL_MARK: Final = b" kernel: "
_NETFILTER_MARK: Final = re.compile(rb"IN=\S* OUT=")
# Raw (``audit(1580905834.919:82970)``) and ``ausearch -i`` (``audit(2020-05-28 17:46:41.878:162)``).
_AUDIT_CFG = re.compile(r"type=NETFILTER_CFG msg=audit\((?P<stamp>\d+(?:\.\d+)?|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?):(?P<serial>\d+)\)")
_RELOADED = re.compile(r"\bReloaded (?:firewalld|ufw)\b")


def netfilter_message(message: str) -> tuple[bool, str, str, str, str | None] | None:
    """(blocked, direction, proto, source, destination port) of a LOG message, or None."""
    m = _NETFILTER_MSG.match(message)
    if m is None:
        return None
    return (
        verdict_blocked(m["prefix"]),
        direction_of(m["in"], m["out"]),
        proto_label(m["proto"]),
        m["src"],
        m["dpt"],
    )


def parse_linux_lines(block: TextBlock, ctx: ParseContext) -> ParseResult:
    """Blocked packets and rule changes in kern.log / syslog / audit.log lines of this host.

    Every line has one outcome: ``parsed`` (a blocked packet, a rule change), ``ignored``
    (anything else, including packets a LOG rule logged as allowed), ``unparsed`` (a line that
    looks like a LOG line or an audit record of a rule change, but no pattern understands it).
    """
    if not isinstance(block, TextBlock):  # journal entries or EVTX records given to ``normagent parse``
        return ParseResult(ignored=len(block.records))
    data = block.data
    result = ParseResult()
    tally = Tally(ctx)
    device = getattr(ctx.settings, "device", LOCAL) or LOCAL
    ref = block.mtime or ctx.now
    parsed = unparsed = 0
    if _KERNEL_MARK in data and _NETFILTER_MARK.search(data):
        fast, rest = _netfilter_fast(data, tally, device, ref, ctx.tz)
        parsed += fast
    else:
        rest = data
    reloads = getattr(ctx.settings, "count_service_reloads", True)
    audit_seen: set[str] = set()
    for raw in _slow_candidates(rest):
        line = raw.decode("utf-8", "replace").rstrip("\r")
        outcome = _linux_line(line, tally, device, ref, ctx.tz, audit_seen, reloads)
        if outcome is None:
            unparsed += 1
            if len(result.examples) < ctx.examples:
                result.examples.append(line)
        elif outcome:
            parsed += 1
    result.observations = tally.observations()
    result.parsed, result.unparsed = parsed, unparsed
    result.ignored = block.line_count - parsed - unparsed
    return result


_SLOW_MARKS: Final = re.compile(rb"IN=\S* OUT=|NETFILTER_CFG|Reloaded (?:firewalld|ufw)")


def _slow_candidates(data: bytes) -> Iterable[bytes]:
    """Lines of ``data`` holding a mark of a LOG line, an audit rule change or a reload."""
    pos = 0
    search = _SLOW_MARKS.search
    while True:
        m = search(data, pos)
        if m is None:
            return
        start = data.rfind(b"\n", 0, m.start()) + 1
        end = data.find(b"\n", m.start())
        end = len(data) if end < 0 else end
        yield data[start:end]
        pos = end + 1


def _linux_line(line: str, tally: Tally, device: str, ref: datetime, tz: tzinfo, audit_seen: set[str], reloads: bool) -> bool | None:
    """True: counted; False: ignored; None: unparsed."""
    if "NETFILTER_CFG" in line:
        m = _AUDIT_CFG.search(line)
        if m is None:
            return None
        stamp = m["stamp"]
        ident = f"{stamp}:{m['serial']}"
        if ident in audit_seen:
            return False  # another record of the same change (an nftables transaction)
        audit_seen.add(ident)
        if "-" in stamp:
            when = datetime.fromisoformat(stamp.replace(" ", "T")).replace(tzinfo=tz).astimezone(timezone.utc)
        else:
            when = datetime.fromtimestamp(float(stamp), timezone.utc)
        tally.change(device, when, "auditd", f"audit:{ident}")
        return True
    when = line_time(line, ref, tz) or ref
    if "IN=" in line and " OUT=" in line:
        at = line.find(" kernel: ")
        message = line[at + 9 :] if at >= 0 else line
        found = netfilter_message(message)
        if found is None:
            return None
        blocked, direction, proto, source, port = found
        if not blocked:
            return False
        tally.block(device, direction, proto, when, source, port)
        return True
    if _RELOADED.search(line):
        if not reloads:
            return False
        tally.change(device, when, "service", line)
        return True
    return False


def _netfilter_fast(data: bytes, tally: Tally, device: str, ref: datetime, tz: tzinfo) -> tuple[int, bytes]:
    """Count the LOG lines of a block in C; return how many counted, and the lines left for the
    general way (all of them when the block does not have the usual shape).

    The usual shape: every line holding ``IN=…OUT=`` is one ``_NETFILTER_FAST`` takes, there is no
    audit record or reload in the block, and its first and last lines carry stamps of the same
    day (a 1 MiB block spans minutes). Then the matches are counted by ``Counter`` over C-level
    projections, and Python runs once per distinct (prefix, interfaces, protocol), (protocol,
    port) and network — not per line. A rollup row's first and last seen are noon of that day.
    """
    if b"NETFILTER_CFG" in data or b"Reloaded " in data or b"[SRC=" in data:
        return 0, data
    first = _DAY.match(data)
    last_start = data.rfind(b"\n", 0, len(data) - 1) + 1
    last = _DAY.match(data, last_start)
    if first is None or last is None or first.group(1, 2) != last.group(1, 2):
        return 0, data
    matches = _NETFILTER_FAST.findall(data)
    if len(matches) != data.count(b" OUT="):
        return 0, data
    when = _day_time(first.group(1) or first.group(2), ref, tz) or ref
    verdicts: dict[bytes, bool] = {}
    counted = 0
    for (prefix, inside, outside, proto), n in Counter(map(itemgetter(0, 1, 2, 5), matches)).items():
        blocked = verdicts.get(prefix)
        if blocked is None:
            blocked = verdicts[prefix] = verdict_blocked(prefix.decode("utf-8", "replace"))
        if blocked:
            counted += n
            tally.blocked[(device, direction_of(inside.decode(), outside.decode()), proto_label(proto.decode()))] += n
    if not counted:
        return 0, b""
    every = all(verdicts.values())
    day = when.date()
    for (prefix, proto, port), n in Counter(map(itemgetter(0, 5, 6), matches)).items():
        label = proto_label(proto.decode())
        if port and label in ("tcp", "udp") and (every or verdicts[prefix]):
            _row(tally.ports, (day, f"{label}/{int(port)}"), when, n)
    for (prefix, net4, src6), n in Counter(map(itemgetter(0, 3, 4), matches)).items():
        if every or verdicts[prefix]:
            key = tally.network_v4(net4) if net4 else tally.network(src6.decode("ascii", "replace"))
            if key is not None:
                _row(tally.networks, (day, key), when, n)
    return counted, b""


def _day_time(stamp: bytes, ref: datetime, tz: tzinfo) -> datetime | None:
    """Noon of a stamp's day (``Nov 23`` or ``2026-11-23``), for rollup rows of the fast path."""
    text = stamp.decode("ascii")
    if text[:1].isdigit():
        try:
            return datetime.fromisoformat(text + "T12:00:00").replace(tzinfo=timezone.utc)
        except ValueError:
            return None
    return rfc3164_time(f"{text} 12:00:00", ref, tz)


# ---------------------------------------------------------------------------------------------
# journald entries (the kernel's LOG lines, audit records, reloads)


def parse_linux_journal(block: RecordBlock, ctx: ParseContext) -> ParseResult:
    """The journal's counterpart of ``parse_linux_lines``: kernel, audit and service entries."""
    if not isinstance(block, RecordBlock):
        return ParseResult(ignored=block.line_count)
    result = ParseResult()
    tally = Tally(ctx)
    device = getattr(ctx.settings, "device", LOCAL) or LOCAL
    reloads = getattr(ctx.settings, "count_service_reloads", True)
    audit_seen: set[str] = set()
    for record in block.records:
        if not isinstance(record, JournalEntry):
            result.ignored += 1
            continue
        outcome = _journal_entry(record, tally, device, audit_seen, reloads)
        if outcome is None:
            result.unparsed += 1
            if len(result.examples) < ctx.examples:
                result.examples.append(record.message)
        elif outcome:
            result.parsed += 1
        else:
            result.ignored += 1
    result.observations = tally.observations()
    return result


# Every field parse_linux_journal reads; ``__CURSOR``: a service reload is keyed by its entry's cursor.
JOURNAL_FIELDS: Final = ("MESSAGE", "_AUDIT_TYPE_NAME", "_AUDIT_TYPE", "_AUDIT_ID", "__CURSOR")


def _journal_entry(entry: JournalEntry, tally: Tally, device: str, audit_seen: set[str], reloads: bool) -> bool | None:
    fields = entry.fields
    message = entry.message
    if fields.get("_AUDIT_TYPE_NAME") == "NETFILTER_CFG" or fields.get("_AUDIT_TYPE") == "1325":
        serial = fields.get("_AUDIT_ID", "") or message
        if serial in audit_seen:
            return False
        audit_seen.add(serial)
        tally.change(device, entry.realtime, "auditd", f"audit:{serial}")
        return True
    if "IN=" in message and " OUT=" in message:
        found = netfilter_message(message)
        if found is None:
            return None
        blocked, direction, proto, source, port = found
        if not blocked:
            return False
        tally.block(device, direction, proto, entry.realtime, source, port)
        return True
    if _RELOADED.search(message):
        if not reloads:
            return False
        tally.change(device, entry.realtime, "service", entry.cursor or message)
        return True
    return False


# ---------------------------------------------------------------------------------------------
# Windows Firewall pfirewall.log

STANDARD_FIELDS: Final = (
    "date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path"
).split()
_W3C_DATE: Final = re.compile(r"\d{4}-\d\d-\d\d$")
_PATHS: Final = {"RECEIVE": "in", "SEND": "out", "FORWARD": "forward"}


def parse_pfirewall(block: TextBlock, ctx: ParseContext) -> ParseResult:
    """Dropped packets in a Windows Firewall log (``pfirewall.log``), W3C extended format.

    The file's host is ``device`` in the settings (default ``other``): pfirewall.log names no
    host, and this agent reads copies of Windows servers' logs.
    """
    if not isinstance(block, TextBlock):  # journal entries or EVTX records given to ``normagent parse``
        return ParseResult(ignored=len(block.records))
    result = ParseResult()
    tally = Tally(ctx)
    device = getattr(ctx.settings, "device", OTHER) or OTHER
    tz = ctx.tz
    fields: Sequence[str] = STANDARD_FIELDS
    index = {name: i for i, name in enumerate(fields)}
    parsed = unparsed = 0
    for raw in block.data.split(b"\n")[: block.line_count]:
        line = raw.decode("utf-8", "replace").strip().lstrip("\ufeff")
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("#Fields:"):
                fields = line[8:].split()
                index = {name: i for i, name in enumerate(fields)}
            continue
        values = line.split()
        if not _W3C_DATE.match(values[0]):
            continue  # not a record of this format (another log given to ``normagent parse``): ignored
        outcome = _pfirewall_record(values, index, tally, device, tz)
        if outcome is None:
            unparsed += 1
            if len(result.examples) < ctx.examples:
                result.examples.append(line)
        elif outcome:
            parsed += 1
    result.observations = tally.observations()
    result.parsed, result.unparsed = parsed, unparsed
    result.ignored = block.line_count - parsed - unparsed
    return result


def _pfirewall_record(values: list[str], index: Mapping[str, int], tally: Tally, device: str, tz: tzinfo) -> bool | None:
    def get(name: str) -> str:
        i = index.get(name)
        if i is None or i >= len(values):
            return "-"
        return values[i]

    need = ("date", "time", "action")
    if any(name not in index for name in need) or len(values) < len(index) - 2:
        return None
    action = get("action").upper()
    try:
        when = datetime.fromisoformat(f"{get('date')}T{get('time')}").replace(tzinfo=tz).astimezone(timezone.utc)
    except ValueError:
        return None
    if action != "DROP":
        return False if action in ("ALLOW", "OPEN", "CLOSE", "OPEN-INBOUND", "INFO-EVENTS-LOST") else None
    direction = _PATHS.get(get("path").upper(), "unknown")
    proto = proto_label(get("protocol"))
    source = get("src-ip")
    port = get("dst-port")
    tally.block(device, direction, proto, when, None if source == "-" else source, None if port == "-" else port)
    return True


# ---------------------------------------------------------------------------------------------
# Windows events

BLOCK_EVENTS: Final = frozenset({5152, 5157})
SECURITY_RULE_EVENTS: Final = frozenset({4946, 4947, 4948})
FIREWALL_RULE_EVENTS: Final = frozenset({2004, 2005, 2006, 2033})
FIREWALL_CHANNEL: Final = "microsoft-windows-windows firewall with advanced security/firewall"
_WFP_DIRECTIONS: Final = {"%%14592": "in", "%%14593": "out"}


def accept_windows(record: Any) -> bool:
    """The events ``parse_windows_event`` reads; everything else is ignored without a look."""
    if not isinstance(record, WindowsEvent):
        return False
    channel = record.channel.lower()
    if channel == "security":
        return record.event_id in BLOCK_EVENTS or record.event_id in SECURITY_RULE_EVENTS
    return channel == FIREWALL_CHANNEL and record.event_id in FIREWALL_RULE_EVENTS


def parse_windows_events(block: RecordBlock, ctx: ParseContext) -> ParseResult:
    """WFP drops (5152, 5157) and firewall rule changes (4946-4948, 2004-2006, 2033) from EVTX."""
    if not isinstance(block, RecordBlock):  # text given to ``normagent parse``
        return ParseResult(ignored=block.line_count)
    result = ParseResult()
    tally = Tally(ctx)
    devices = device_map(ctx)
    for record in block.records:
        if not accept_windows(record):
            result.ignored += 1
            continue
        assert isinstance(record, WindowsEvent)
        device = devices.name(record.computer)
        if record.event_id in BLOCK_EVENTS:
            data = record.data
            if not data.get("Protocol"):
                result.unparsed += 1
                continue
            direction = _WFP_DIRECTIONS.get(data.get("Direction", ""), "unknown")
            # The remote end: the source of an inbound packet, the destination of an outbound one.
            source = data.get("SourceAddress") if direction != "out" else data.get("DestAddress")
            port = data.get("DestPort")
            proto = proto_label(data.get("Protocol", ""))
            tally.block(device, direction, proto, record.time, source or None, port or None)
        else:
            tally.change(device, record.time, f"windows:{record.event_id}", f"{record.channel}:{record.record_id}")
        result.parsed += 1
    result.observations = tally.observations()
    return result


# ---------------------------------------------------------------------------------------------
# Appliances: spool lines or a syslog server's files


_FORTI_KV = re.compile(r'([A-Za-z_][\w-]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)')
_ASA = re.compile(r"%(?:ASA|FTD|PIX|FWSM)-(?P<sev>\d)-(?P<id>\d{6})[: ]\s*(?P<text>.*)")
_ASA_ADDR = r"(?:(?P<{0}if>[^\s:/]+):)?(?P<{0}>[0-9A-Fa-f.:]+)(?:/(?P<{0}port>\w+))?"
_ASA_DENIES: Final = {
    # id: pattern of the text; groups src, dst (with optional interface and port), proto, dir
    "106001": re.compile(r"(?P<dir>Inbound|Outbound) (?P<proto>\w+) connection denied from " + _ASA_ADDR.format("src") + " to " + _ASA_ADDR.format("dst")),
    "106006": re.compile(r"Deny (?P<dir>inbound|outbound) (?P<proto>\w+) from " + _ASA_ADDR.format("src") + " to " + _ASA_ADDR.format("dst")),
    "106007": re.compile(r"Deny (?P<dir>inbound|outbound) (?P<proto>\w+) from " + _ASA_ADDR.format("src") + " to " + _ASA_ADDR.format("dst")),
    "106010": re.compile(r"Deny (?P<dir>inbound|outbound) protocol (?P<proto>\d+) src " + _ASA_ADDR.format("src") + " dst " + _ASA_ADDR.format("dst")),
    "106014": re.compile(r"Deny (?P<dir>inbound|outbound) (?P<proto>icmp) src " + _ASA_ADDR.format("src") + " dst " + _ASA_ADDR.format("dst")),
    "106015": re.compile(r"Deny (?P<proto>\w+) \(no connection\) from " + _ASA_ADDR.format("src") + " to " + _ASA_ADDR.format("dst")),
    "106023": re.compile(r"Deny (?P<proto>\w+) src " + _ASA_ADDR.format("src") + " dst " + _ASA_ADDR.format("dst")),
    "106021": re.compile(r"Deny (?P<proto>\w+) reverse path check from (?P<src>\S+) to (?P<dst>\S+)"),
    "106022": re.compile(r"Deny (?P<proto>\w+) connection spoof from (?P<src>\S+) to (?P<dst>\S+)"),
    "710003": re.compile(r"(?P<proto>\w+) access denied by ACL from " + _ASA_ADDR.format("src") + " to " + _ASA_ADDR.format("dst")),
}
_ASA_CHANGES: Final = {"111005": "end configuration", "111003": "erase configuration"}


@dataclass(frozen=True, slots=True)
class Appliance:
    """One appliance message taken apart: ``kind`` block | change | other."""

    kind: str
    direction: str = "unknown"
    proto: str = "other"
    source: str | None = None
    port: str | None = None
    vendor: str = ""


def classify_appliance(app: str, message: str) -> Appliance | None:
    """What an appliance's syslog message says; None: a firewall message no rule understands,
    or no firewall message at all (an unknown format counts as unparsed)."""
    if app == "filterlog" or app.startswith("filterlog["):
        return _filterlog(message)
    if "%ASA-" in message or "%FTD-" in message or "%PIX-" in message or "%FWSM-" in message:
        return _asa(message)
    if "type=" in message and ("logid=" in message or "devid=" in message or "log_id=" in message or "device_id=" in message):
        return _fortigate(message)
    return None


def _filterlog(csv: str) -> Appliance | None:
    """pfSense/OPNsense filterlog: rule,subrule,anchor,tracker,if,reason,action,dir,ipver,...

    IPv4 then has tos,ecn,ttl,id,offset,flags,protoid,protoname,length,src,dst[,sport,dport,...];
    IPv6 class,flowlabel,hoplimit,protoname,protoid,length,src,dst[,sport,dport,...].
    """
    f = csv.strip().split(",")
    if len(f) < 9:
        return None
    action, direction, version = f[6].lower(), f[7].lower(), f[8]
    if action not in ("block", "reject", "pass", "match", "scrub", "nat", "rdr", "binat") or direction not in ("in", "out"):
        return None
    if version == "4":
        if len(f) < 20:
            return None
        proto, src = f[16], f[18]
        rest = f[20:]
    elif version == "6":
        if len(f) < 17:
            return None
        proto, src = f[12], f[15]
        rest = f[17:]
    else:
        return None
    if action not in ("block", "reject"):
        return Appliance("other", vendor="filterlog")
    label = proto_label(proto)
    port = rest[1] if label in ("tcp", "udp") and len(rest) >= 2 and rest[1].isdigit() else None
    return Appliance("block", direction, label, src or None, port, "filterlog")


def _fortigate(message: str) -> Appliance | None:
    if (message.count('"') - message.count('\\"')) % 2:
        return None  # a quote left open: the values cannot be told apart
    kv = {k.lower(): v.strip('"') for k, v in _FORTI_KV.findall(message)}
    kind = kv.get("type", "")
    if not kind:
        return None
    if kind == "traffic":
        verdict = (kv.get("action") or kv.get("status") or "").lower()
        if verdict not in ("deny", "block", "blocked"):
            return Appliance("other", vendor="fortigate")
        src_role, dst_role = kv.get("srcintfrole", ""), kv.get("dstintfrole", "")
        direction = "in" if src_role == "wan" else "out" if dst_role == "wan" else "unknown"
        proto = proto_label(kv.get("proto", ""))
        port = kv.get("dstport") or kv.get("dst_port")
        return Appliance("block", direction, proto, kv.get("srcip") or kv.get("src") or None, port if port and port.isdigit() else None, "fortigate")
    if kind == "event" and "cfgpath" in kv:
        return Appliance("change", vendor="fortigate")
    return Appliance("other", vendor="fortigate")


def _asa(message: str) -> Appliance | None:
    m = _ASA.search(message)
    if m is None:
        return None
    ident, text = m["id"], m["text"]
    if ident in _ASA_CHANGES:
        return Appliance("change", vendor="asa")
    pattern = _ASA_DENIES.get(ident)
    if pattern is None:
        return Appliance("other", vendor="asa")
    d = pattern.search(text)
    if d is None:
        return None
    groups = d.groupdict()
    direction = (groups.get("dir") or "").lower()
    direction = {"inbound": "in", "outbound": "out"}.get(direction, "unknown")
    port = groups.get("dstport")
    return Appliance("block", direction, proto_label(groups.get("proto") or ""), groups.get("src"), port if port and port.isdigit() else None, "asa")


_RFC5424_NO_PRI: Final = re.compile(rb"^1 \d{4}-\d\d-\d\dT")
_SPOOL_HEAD: Final = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z \S+ <\d{1,3}>")


def parse_appliance_lines(block: TextBlock, ctx: ParseContext) -> ParseResult:
    """Blocks and configuration changes from firewall appliances, in spool lines or syslog files.

    In the spool every message that is not one of the understood formats counts as ``unparsed``
    (the spool only holds what devices sent here), and so does a spool line that is not one; in a
    syslog server's file only a firewall message no rule understands does. A firewall message of
    no interest (a pass, a session teardown, an administrator's login) is ``ignored``.
    """
    if not isinstance(block, TextBlock):  # journal entries or EVTX records given to ``normagent parse``
        return ParseResult(ignored=len(block.records))
    result = ParseResult()
    tally = Tally(ctx)
    devices = device_map(ctx)
    ref = block.mtime or ctx.now
    parsed = unparsed = ignored = 0
    data = block.data
    # The receiver's spool files (``syslog.log``, ``syslog.log-<stamp>``): what is in them was sent here.
    spool = block.origin.rsplit("/", 1)[-1].startswith("syslog.log")
    fast_parsed, fast_ignored, data = _filterlog_fast(data, tally, devices)
    parsed += fast_parsed
    ignored += fast_ignored
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        outcome, line = _appliance_line(raw, tally, devices, ref, ctx.tz, spool)
        if outcome is None:
            unparsed += 1
            if len(result.examples) < ctx.examples:
                result.examples.append(line)
        elif outcome:
            parsed += 1
        else:
            ignored += 1
    result.observations = tally.observations()
    result.parsed, result.unparsed = parsed, unparsed
    result.ignored = block.line_count - parsed - unparsed
    return result


def _looks_like_firewall(app: str, text: str) -> bool:
    return app.startswith("filterlog") or "%ASA-" in text or "%FTD-" in text or "type=" in text and ("devid=" in text or "logid=" in text)


def _appliance_line(raw: bytes, tally: Tally, devices: DeviceMap, ref: datetime, tz: tzinfo, spool: bool) -> tuple[bool | None, str]:
    sender = ""
    received: datetime | None = None
    if spool or _SPOOL_HEAD.match(raw):
        spooled = parse_spool_line(raw)
        if spooled is None:
            return None, raw.decode("utf-8", "replace")
        sender, received, raw = spooled.sender, spooled.received, spooled.message
    line = raw.decode("utf-8", "replace").rstrip("\r")
    # An RFC 5424 line as a syslog server's file holds it, without its PRI.
    msg = parse_syslog(b"<13>" + raw if _RFC5424_NO_PRI.match(raw) else raw)
    if msg is None:
        return None, line
    device = devices.name(sender, msg.hostname)
    tally.messages[device] += 1
    app, text = msg.app_name, msg.message
    if app.startswith("%"):  # "%ASA-4-106023: Deny ...": the message id reads as the tag
        app, text = "", f"{app}: {text}"
    found = classify_appliance(app, text)
    if found is None:
        # What reached the receiver is meant for this plugin: not understood is unparsed. In a
        # syslog server's file (``normagent parse``) other programs' lines are of no interest.
        return (None if spool or sender or _looks_like_firewall(app, text) else False), line
    # The receive time when there is one (a device's clock may be wrong or in another zone).
    when = received or msg.time or (rfc3164_time(msg.stamp, ref, tz) if msg.stamp else None) or ref
    if found.kind == "block":
        tally.block(device, found.direction, found.proto, when, found.source, found.port)
        return True, line
    if found.kind == "change":
        tally.change(device, when, found.vendor, line)
        return True, line
    return False, line


# The spool lines of filterlog blocks in their usual shape, whole, for the fast path: the sender,
# the host and tag, and the CSV fields that count. Groups: 1 sender, 2 host (RFC 3164 with a
# host, or RFC 5424), 3 action, 4 direction, 5 IPv4 protocol, 6 IPv4 source /24, 7 IPv4 dport,
# 8 IPv6 protocol, 9 IPv6 source, 10 IPv6 dport. The day comes from the receive stamp (UTC).
_FILTERLOG_FAST: Final = re.compile(
    rb"^(\d{4}-\d\d-\d\d)T[\d:.]+Z (\S+) <\d{1,3}>(?:1 \S+ (\S+) filterlog \S+ \S+ - |[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?:(\S+) )?filterlog(?:\[\d+\])?: )"
    rb"\d*,[^,\n]*,[^,\n]*,[^,\n]*,[^,\n]*,[^,\n]*,(block|reject|pass),(in|out),"
    rb"(?:4,[^,\n]*,[^,\n]*,[^,\n]*,[^,\n]*,[^,\n]*,[^,\n]*,\d+,(\w+),\d+,(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3},[\d.]+(?:,\d+,(\d+))?"
    rb"|6,[^,\n]*,[^,\n]*,[^,\n]*,([\w-]+),\d+,\d+,([0-9a-fA-F:]+),[0-9a-fA-F:]+(?:,\d+,(\d+))?)(?:,[^\n]*)?$",
    re.M,
)


def _filterlog_fast(data: bytes, tally: Tally, devices: DeviceMap) -> tuple[int, int, bytes]:
    """Count the filterlog spool lines ``_FILTERLOG_FAST`` takes whole, per distinct combination;
    return (parsed, ignored, the other lines)."""
    if b"filterlog" not in data:
        return 0, 0, data
    matches = _FILTERLOG_FAST.findall(data)
    if not matches:
        return 0, 0, data
    rest = _FILTERLOG_FAST.sub(b"", data)
    parsed = ignored = 0
    names: dict[tuple[bytes, bytes], str] = {}
    days: dict[bytes, datetime] = {}

    def device_of(sender: bytes, host: bytes) -> str:
        name = names.get((sender, host))
        if name is None:
            name = names[(sender, host)] = devices.name(sender.decode("ascii", "replace"), host.decode("ascii", "replace"))
        return name

    def day_of(day: bytes) -> datetime:
        when = days.get(day)
        if when is None:
            when = days[day] = datetime.fromisoformat(day.decode() + "T12:00:00+00:00")
        return when

    # (day, sender, host5, host3, action, dir, proto4, net4, port4, proto6, src6, port6)
    for (sender, host5, host3, action, direction, proto4, proto6), n in Counter(map(itemgetter(1, 2, 3, 4, 5, 6, 9), matches)).items():
        device = device_of(sender, host5 or host3)
        tally.messages[device] += n
        if action == b"pass":
            ignored += n
            continue
        parsed += n
        tally.blocked[(device, direction.decode(), proto_label((proto4 or proto6).decode()))] += n
    for (day, action, proto4, port4, proto6, port6), n in Counter(map(itemgetter(0, 4, 6, 8, 9, 11), matches)).items():
        label = proto_label((proto4 or proto6).decode())
        port = port4 or port6
        if action != b"pass" and port and label in ("tcp", "udp"):
            when = day_of(day)
            _row(tally.ports, (when.date(), f"{label}/{int(port)}"), when, n)
    for (day, action, net4, src6), n in Counter(map(itemgetter(0, 4, 7, 10), matches)).items():
        if action != b"pass":
            key = tally.network_v4(net4) if net4 else tally.network(src6.decode("ascii", "replace"))
            if key is not None:
                when = day_of(day)
                _row(tally.networks, (when.date(), key), when, n)
    return parsed, ignored, rest


__all__ = [
    "BLOCKED",
    "BY_NETWORK",
    "BY_PORT",
    "DIRECTIONS",
    "MESSAGES",
    "PROTOS",
    "RULE_CHANGES",
    "RULE_CHANGE_EVENT",
    "DeviceMap",
    "accept_windows",
    "classify_appliance",
    "parse_appliance_lines",
    "parse_linux_journal",
    "parse_linux_lines",
    "parse_pfirewall",
    "parse_windows_events",
]
