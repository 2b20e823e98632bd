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
``direction`` is in|out|forward|unknown, ``proto`` tcp|udp|icmp|icmpv6|other. A rule change is
counted with ``planned="false"``: a pure parser knows no calendar, and the collectors judge each
change against the maintenance calendar (``collectors.judge_planned``). Source addresses reach
the report only as pseudonyms of their /24 or /48 (``firewall.blocked_by_network``); destination
ports as ``<proto>/<port>`` (``firewall.blocked_by_port``, ports 0-65535). Rollup rows count per
UTC day; when in the day is not kept (the counters' hours have it), so their first and last
seen are left empty.

Speed (bench/README.md, bench_firewall): in a firewall log nearly every line counts, so no line
can be skipped as the access plugin skips most of auth.log. Instead the usual lines — netfilter
LOG lines with rsyslog's stamps, filterlog spool lines — are taken apart by one bytes pattern per
block in C (``findall``): a line of the usual shape yields its fields, any other line whole for
the general way. The fields are counted with ``collections.Counter`` over tuples of bytes (C),
and Python runs once per *distinct* combination of stamp minute, prefix, protocol, port and
network, not per line; only the distinct values are decoded. The pattern takes only shapes on
which the general way (decode, split, the rules above, line by line) gives the same answer, and
property tests hold the two to it line by line and block by block. Network pseudonyms are
memoised across blocks (``NetworkPseudonyms``); a backlog's source-network rows are gathered
from block to block in the parser's carry (``flush_networks``) rather than written per block.

The netfilter lines are scanned by a compiled module of this package (``_netfilter.c``): one
forward walk over the block that does what ``_NETFILTER_LINE`` does, counting per distinct value
as it goes (no Python object per line). ``netfilter_scan_py`` (the pattern and ``Counter``) is its
definition and the fallback where the module is not built (no compiler); the tests hold the two
equal on every input.

filterlog spool lines are scanned by a compiled extension, ``_filterlog.c`` (the pattern costs
``re`` ~13,000 instructions a line; the target leaves ~2,400 for everything): one forward pass
over the block that matches each line as ``_FILTERLOG_LINE`` does and counts per distinct value
in C; ``_filterlog_scan_py``, built on the pattern, is its definition (tests hold the two equal
on any bytes) and the fallback where the extension was not built.

A backlog's source /24s never become Python objects per block: both scans hand them back as
numbers (``v4_net``), counted per (UTC day, /24) across blocks in a ``NetRows`` (C;
``NetRowsPy`` is its definition) that the carry holds, and put under their pseudonyms once per
distinct network when the driver commits a batch (the carry's JSON) or the rows are written.

Pure: no I/O, no clock, no state between calls but bounded memos of pure functions. Imports only
``normagent`` and the standard library.
"""

from __future__ import annotations

import enum
import functools
import re
import struct
from collections import Counter
from collections.abc import Container, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone, tzinfo
from itertools import compress
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, cast

from normagent import digests
from normagent import (
    Count,
    Event,
    JournalEntry,
    JSONValue,
    LiveCarry,
    LogBlock,
    Observation,
    ParseContext,
    ParseResult,
    RecordBlock,
    RollupRows,
    TextBlock,
    WindowsEvent,
    dataclass,
    parse_spool_line,
    parse_syslog,
    rfc3164_instant,
    rfc3164_time,
)

if TYPE_CHECKING:
    from normagent.privacy import Pseudonymiser

    from ._netfilter import NetRows, Nets

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


@functools.lru_cache(maxsize=4096)
def packet_keys(proto: bytes, port: bytes) -> tuple[str, str | None]:
    """``(proto_label(proto), port_key(label, port))`` of a scan's protocol and destination port
    fields (no port: ``b""``), as the fast paths count them. Memoised: a backlog's blocks bring
    the same few pairs again and again, ~30 a block (a pure function; at most 4,096 kept)."""
    label = proto_label(proto.decode("ascii"))
    return label, port_key(label, port.decode("ascii")) if port else None


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


def port_key(proto: str, port: str | None) -> str | None:
    """The rollup key of a blocked destination port, ``tcp/443``; None for other protocols and
    for what is no port (not ASCII digits, or above 65535: a log line may say anything)."""
    if not port or proto not in ("tcp", "udp") or not (port.isascii() and port.isdigit()) or len(port) > 5:
        return None
    number = int(port)
    return f"{proto}/{number}" if number <= 65535 else None


# ---------------------------------------------------------------------------------------------
# Network pseudonyms

_MAX_DAY: Final = date.max.toordinal()
MEMO_SIZE: Final = 16_384  # entries per memo; a full memo starts over


class NetRowsPy:
    """Lines per (UTC day, IPv4 /24) of blocked packets, gathered from block to block of a
    backlog without a pseudonym or a row object per network and block: the definition of
    ``_netfilter.NetRows`` (C) and, with ``netfilter_scan_py``, its fallback.

    A /24 is a number, ``a << 16 | b << 8 | c`` (only /24s of valid addresses: the scans leave
    the others out); a day is its date's ordinal. ``add`` takes what a scan gives for its IPv4
    sources (here ``{head: {/24: lines}}``, in C the scan's ``Nets``); ``unnamed`` and ``named``
    put the rows under pseudonyms (``NetworkPseudonyms.named``), once per distinct network when a
    batch is committed or the rows are written, instead of per block.
    """

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: dict[int, int] = {}  # day << 24 | /24 -> lines

    def __len__(self) -> int:
        return len(self._rows)

    def copy(self) -> NetRowsPy:
        """The same rows in a table of their own."""
        other = NetRowsPy()
        other._rows = self._rows.copy()
        return other

    def add(self, nets: Mapping[bytes, Mapping[int, int]], day: int, heads: Container[bytes]) -> None:
        """Add the lines of each /24 of ``nets`` whose head is in ``heads`` to the rows of ``day``."""
        if not 1 <= day <= _MAX_DAY:
            raise ValueError(f"add(): {day} is no date's ordinal")
        rows = self._rows
        get = rows.get
        base = day << 24
        for head, counts in nets.items():
            if head in heads:
                for net, n in counts.items():
                    key = base | net
                    rows[key] = get(key, 0) + n

    def add_packed(self, counts: bytes | Mapping[int, int], day: int) -> None:
        """Add lines per /24 to the rows of ``day``: ``{/24: lines}``, or packed as
        ``_filterlog.scan`` gives them (``packed_counts``)."""
        if not 1 <= day <= _MAX_DAY:
            raise ValueError(f"add_packed(): {day} is no date's ordinal")
        rows = self._rows
        base = day << 24
        for net, n in (packed_counts(counts) if isinstance(counts, bytes) else counts).items():
            if not 0 <= net <= 0xFFFFFF or n < 1:
                raise ValueError("add_packed(): a count that is no count of a /24")
            rows[base | net] = rows.get(base | net, 0) + n

    def unnamed(self, names: Mapping[int, str]) -> list[int]:
        """The /24s ``names`` holds no key for (each once per day it has rows on)."""
        return [key & 0xFFFFFF for key in self._rows if key & 0xFFFFFF not in names]

    def named(self, names: Mapping[int, str]) -> dict[int, dict[str, int]]:
        """``{day: {name: lines}}``: the rows under the names of their /24s (KeyError for one
        ``names`` does not name; /24s of one name add up)."""
        out: dict[int, dict[str, int]] = {}
        for key, n in self._rows.items():
            keys = out.setdefault(key >> 24, {})
            name = names[key & 0xFFFFFF]
            keys[name] = keys.get(name, 0) + n
        return out

    def as_dict(self) -> dict[tuple[int, int], int]:
        """``{(day, /24): lines}``."""
        return {(key >> 24, key & 0xFFFFFF): n for key, n in self._rows.items()}


def packed_counts(packed: bytes) -> dict[int, int]:
    """``{/24: lines}`` of records packed as two native 64-bit integers each (``_filterlog.scan``'s
    IPv4 sources), in their order; a /24 given twice adds up."""
    if len(packed) % 16:
        raise ValueError("packed counts are records of 16 bytes")
    out: dict[int, int] = {}
    for net, n in struct.iter_unpack("=Qq", packed):
        out[net] = out.get(net, 0) + n
    return out


@functools.lru_cache(maxsize=MEMO_SIZE)
def v4_net(prefix: bytes) -> int | None:
    """The /24 of ``b"203.0.113"`` as a number (``NetRows``' key), None if those are no three
    octets of an address (the same test as ``NetworkPseudonyms.v4``). Memoised: the reference
    scans (the fallback without a compiler) ask it per distinct /24 of every block."""
    if _V4_PREFIX(prefix) is None:
        return None
    a, b, c = prefix.split(b".")
    return int(a) << 16 | int(b) << 8 | int(c)


class _Missing(enum.Enum):
    """A look-up's default where None is a cached answer: an enum member, which mypy narrows."""

    MISSING = enum.auto()


_MISSING: Final = _Missing.MISSING

# ipaddress's rules for three octets, without its cost: 0-255, no leading zeros. One match in C
# instead of a split and a generator over the octets (half of a first pseudonym's time: a scan
# of a host brings ~10,000 networks to a run, each seen the first time).
_OCTET: Final = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_V4_PREFIX: Final = re.compile(_OCTET + rb"\." + _OCTET + rb"\." + _OCTET).fullmatch


class NetworkPseudonyms:
    """The pseudonyms of source networks under one key, memoised across blocks and runs.

    A pseudonym is an HMAC (microseconds), and a firewall under a scan sees the same networks in
    every block. The value is a pure function of the key and the network, so it is kept: per
    IPv4 /24 as its number (``v4_net``: what the scans count, no decoding), and per address as
    written (IPv6, and the general way). Each memo holds at most ``MEMO_SIZE``
    entries (about 2.5 MB when full, only on a host blocked by that many networks), and starts
    over when full (between blocks). Raw values are kept only here, in memory, never in the ledger.
    """

    __slots__ = ("_pseudonymise", "_nets", "_addresses")

    def __init__(self, pseudonymise: Pseudonymiser) -> None:
        self._pseudonymise = pseudonymise
        self._nets: dict[int, str] = {}  # /24 as a number (``v4_net``) -> pseudonym
        self._addresses: dict[str, str | None] = {}

    def net(self, net: int) -> str:
        """The pseudonym of the /24 numbered ``net`` (``v4_net``): what ``Pseudonymiser.network``
        gives any address in it."""
        memo = self._nets
        found = memo.get(net)
        if found is None:
            found = memo[net] = self._pseudonymise(f"network:{net >> 16}.{net >> 8 & 255}.{net & 255}.0/24")
        return found

    def v4(self, prefix: bytes) -> str | None:
        """The pseudonym of the /24 of any valid address in ``b"203.0.113"``, None if those are no
        three octets of an address."""
        net = v4_net(prefix)
        return None if net is None else self.net(net)

    def named(self, rows: NetRows | NetRowsPy) -> dict[date, dict[str, int]]:
        """``rows`` (lines per UTC day and /24 as a number) under the pseudonyms of their /24s,
        each asked of the memo once (in C where the extension is built), computed where missing."""
        memo = self._nets  # this dict throughout: ``trim`` (another collector's thread) replaces it, never empties it
        unnamed = rows.unnamed(memo)
        if unnamed:  # a backlog's first batch: ~10,000 at once
            texts = [f"network:{net >> 16}.{net >> 8 & 255}.{net & 255}.0/24" for net in unnamed]
            memo.update(zip(unnamed, self._pseudonymise.many(texts)))
        return {date.fromordinal(day): keys for day, keys in rows.named(memo).items()}

    def address(self, address: str) -> str | None:
        """``Pseudonymiser.network(address)``: the pseudonym of its /24 or /48, or None."""
        found = self._addresses.get(address, _MISSING)
        if found is not _MISSING:
            return found
        value = self._pseudonymise.network(address)
        if len(address) <= 64:  # an address is short; a log line may hold anything
            self._addresses[address] = value
        return value

    def trim(self) -> None:
        """Start a memo over once it holds ``MEMO_SIZE`` (between blocks). A new dict, not the
        old one emptied: the collectors share this object from their threads, and ``named``
        fills a memo and then reads each row's name from it, which must not empty meanwhile."""
        if len(self._nets) >= MEMO_SIZE:
            self._nets = {}
        if len(self._addresses) >= MEMO_SIZE:
            self._addresses = {}


@functools.lru_cache(maxsize=4)
def network_pseudonyms(pseudonymise: Pseudonymiser) -> NetworkPseudonyms:
    """The memo of one pseudonymiser (the agent has one; tests make others)."""
    return NetworkPseudonyms(pseudonymise)


# ---------------------------------------------------------------------------------------------
# What a block adds up to


class Tally:
    """Counts, rollup rows and rule-change events of one block, aggregated before they become
    observations (a 1 MiB block of blocks becomes a few dozen observations and a row per
    distinct port and network).

    Source-network rows are kept two ways: under pseudonyms (``networks``: the general way and
    IPv6 sources) and, from the fast paths' IPv4 sources, as lines per (UTC day, /24) in a
    ``NetRows`` (``v4_rows``), named only when they are written or carried as JSON.

    ``carry``: gather the source-network rows of a backlog from block to block (``finish``);
    the rows the block before left in ``ctx.carry`` are taken over first: as they are when the
    driver hands on the ``_Carry`` the block before made (a value: it is never changed, this
    block's rows go into copies), checked when it is JSON read back from the ledger.
    """

    __slots__ = ("blocked", "changes", "messages", "ports", "networks", "events", "names", "since", "_v4", "_carried")

    def __init__(self, ctx: ParseContext, *, carry: bool = False) -> None:
        self.blocked: Counter[tuple[str, str, str]] = Counter()  # device, direction, proto
        self.changes: Counter[str] = Counter()  # device
        self.messages: Counter[str] = Counter()  # device
        self.ports: Counter[tuple[date, str]] = Counter()  # UTC day, "tcp/443"
        self.networks: dict[date, Counter[str]] = {}  # UTC day -> pseudonym -> blocked
        self.events: list[Event] = []
        self.names = network_pseudonyms(ctx.pseudonymise)
        self.names.trim()
        self.since: float | None = None
        self._v4: NetRows | NetRowsPy | None = None  # the carried /24 rows (a copy) and this block's
        self._carried: _Carry | None = None
        if carry:
            if type(ctx.carry) is _Carry:
                self._carried = ctx.carry
                self.since = ctx.carry.since
            else:
                self.since, self.networks = _carried(ctx.carry)

    def block(self, device: str, direction: str, proto: str, when: datetime, source: str | None, port: str | None, n: int = 1) -> None:
        self.blocked[(device, direction, proto)] += n
        day = when.astimezone(timezone.utc).date()
        key = port_key(proto, port)
        if key is not None:
            self.ports[(day, key)] += n
        if source:
            network = self.names.address(source)
            if network is not None:
                self.add_network(day, network, n)

    def add_network(self, day: date, network: str, n: int) -> None:
        self.day_networks(day)[network] += n

    def day_networks(self, day: date) -> Counter[str]:
        """The rows of one day to count into (a fast path's too): on first use a copy of the
        carried rows of that day (one C-level dict copy; the carried ones stay as they are)."""
        rows = self.networks.get(day)
        if rows is None:
            carried = self._carried.named.get(day) if self._carried is not None else None
            rows = self.networks[day] = Counter(carried) if carried else Counter()
        return rows

    def v4_rows(self) -> NetRows | NetRowsPy:
        """The rows per (UTC day, /24) to count this block's into (``NetRows.add``): a copy of the
        carried ones (one memcpy in C), or new ones."""
        rows = self._v4
        if rows is None:
            carried = self._carried.v4 if self._carried is not None else None
            rows = self._v4 = carried.copy() if carried is not None else _NetRows()
        return rows

    def change(self, device: str, when: datetime, source: str, line: str) -> None:
        self.changes[device] += 1
        digest = digests.sha1(line.encode("utf-8", "replace"), usedforsecurity=False).hexdigest()[:16]
        key = f"{device}:{when.astimezone(timezone.utc).isoformat()}:{digest}"
        self.events.append(Event(RULE_CHANGE_EVENT, when, key, {"device": device, "source": source}))

    def finish(self, result: ParseResult, ctx: ParseContext, *, block: TextBlock | None = None) -> None:
        """Put the block's observations into ``result``.

        ``block``: the block, for a tally that carries source-network rows: they are written now
        or left in ``result.carry`` (see ``flush_networks``).
        """
        out: list[Observation] = [
            Count(BLOCKED, {"device": d, "direction": r, "proto": p}, n) for (d, r, p), n in sorted(self.blocked.items())
        ]
        # Planned or not is for the collectors to judge against the calendar (collectors.judge_planned).
        out += [Count(RULE_CHANGES, {"device": d, "planned": "false"}, n) for d, n in sorted(self.changes.items())]
        out += [Count(MESSAGES, {"device": d}, n) for d, n in sorted(self.messages.items())]
        # A block's port rows as one observation a day (the ledger adds a batch's up per day).
        ports: dict[date, dict[str, int]] = {}
        for (day, key), n in self.ports.items():
            ports.setdefault(day, {})[key] = n
        out += [RollupRows(BY_PORT, day, keys) for day, keys in sorted(ports.items())]
        carried = self._carried
        named: Mapping[date, Mapping[str, float]] = self.networks
        v4 = self._v4
        if carried is not None:
            # the block's days already hold the carried rows of those days (``day_networks``)
            named = {**carried.named, **self.networks} if self.networks else carried.named
            if v4 is None:
                v4 = carried.v4
        if v4 is not None and not len(v4):
            v4 = None
        if block is not None and (named or v4 is not None):
            since = ctx.now.timestamp() if self.since is None else self.since
            rows = sum(map(len, named.values())) + (len(v4) if v4 is not None else 0)
            if not flush_networks(len(block.data), rows, since, ctx):
                if carried is not None and named is carried.named and v4 is carried.v4:
                    result.carry = carried  # nothing added: the same value
                else:
                    result.carry = _Carry(since, named, v4, self.names)
                named, v4 = {}, None
        if v4 is not None:
            named = _added(named, self.names.named(v4))
        # A day's network rows as one observation (the ledger writes them in one statement): a
        # backlog's end brings ~10,000, and an object per row cost more than writing it.
        out += [RollupRows(BY_NETWORK, day, keys) for day, keys in sorted(named.items()) if keys]
        out += self.events
        result.observations = out


def _added(rows: Mapping[date, Mapping[str, float]], more: Mapping[date, Mapping[str, float]]) -> dict[date, Mapping[str, float]]:
    """``rows`` with ``more`` added, as new dicts where they differ: neither is changed (a
    carried value is shared with the driver, which may hand it on again)."""
    out = dict(rows)
    for day, keys in more.items():
        have = out.get(day)
        if not have:
            out[day] = keys
            continue
        merged = dict(have)
        for key, n in keys.items():
            merged[key] = merged.get(key, 0) + n
        out[day] = merged
    return out


# ---------------------------------------------------------------------------------------------
# Source-network rows of a backlog, carried from block to block

CARRY_FROM: Final = 256 * 1024  # bytes: a block at least this big comes from a reader in a backlog
MAX_CARRIED: Final = 20_000  # rows
CARRY_FOR: Final = timedelta(minutes=10)


def flush_networks(size: int, rows: int, since: float, ctx: ParseContext) -> bool:
    """Whether the source-network rows gathered so far are written with this block.

    A backlog of blocked packets from many networks (a scan) gives every 1 MiB block thousands
    of distinct networks, and a row costs the ledger more than the lines it counts. So while a
    reader hands out full blocks (``size`` at least ``CARRY_FROM``: it is catching up), the rows
    are added up in the parser's carry, which the log driver commits with each block's position
    (``ParseContext.carry``): nothing is lost or counted twice across a crash. They are written
    with the first block that is not full (the reader has caught up), at the end of a run (the
    driver's empty block), at the end of ``normagent parse`` (``final``), once more than
    ``MAX_CARRIED`` wait, and once the first of them waited ``CARRY_FOR`` (a reader that never
    catches up). The carry holds pseudonyms, never an address:
    ``{"since": <epoch>, "rows": {"2026-11-23": {"<pseudonym>": n}}}``.
    """
    return size < CARRY_FROM or ctx.final or rows > MAX_CARRIED or ctx.now.timestamp() - since >= CARRY_FOR.total_seconds()


class _Carry(LiveCarry):
    """A carry as ``Tally.finish`` made it, handed from block to block by the driver as it is
    (a ``LiveCarry``): rows under pseudonyms (``named``) and the fast paths' lines per (UTC day,
    /24) (``v4``, a ``NetRows``), neither ever changed once made. The next block takes
    them without looking at each row again, and adds its own to copies (the /24 rows in one
    memcpy); the pseudonyms of the /24 rows are asked once per distinct network when the driver
    puts a batch together (``json``), not per block. Read back from the ledger the carry is that
    JSON again, and checked (``_carried``)."""

    __slots__ = ("since", "named", "v4", "_names")

    def __init__(self, since: float, named: Mapping[date, Mapping[str, float]], v4: NetRows | NetRowsPy | None, names: NetworkPseudonyms) -> None:
        self.since = since
        self.named = named
        self.v4 = v4
        self._names = names

    def json(self) -> JSONValue:
        rows = _added(self.named, self._names.named(self.v4)) if self.v4 is not None else self.named
        return {"since": self.since, "rows": {day.isoformat(): dict(keys) for day, keys in rows.items()}}


def _carried(carry: JSONValue | LiveCarry) -> tuple[float | None, dict[date, Counter[str]]]:
    """The rows of a carry read back from the ledger (JSON); parts that are not what
    ``_Carry.json`` writes are left out."""
    if not isinstance(carry, dict):
        return None, {}
    since = carry.get("since")
    rows = carry.get("rows")
    out: dict[date, Counter[str]] = {}
    if isinstance(rows, dict):
        for text, keys in rows.items():
            try:
                day = date.fromisoformat(text)
            except ValueError:
                continue
            if isinstance(keys, dict):
                try:
                    sum(cast("dict[str, int]", keys).values())  # numbers only (checked in C)
                except TypeError:
                    keys = {k: v for k, v in keys.items() if isinstance(v, (int, float))}
                out[day] = Counter(keys)
    return (float(since) if isinstance(since, (int, float)) and not isinstance(since, bool) else None), out


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
            return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=tz).astimezone(timezone.utc)
        except (ValueError, OverflowError):  # year 1 east of UTC, year 9999 west of it: no UTC instant
            return None
    m = _CLASSIC.match(line)
    if m is not None:
        stamp = f"{m.group(1)} {m.group(2)}" if m.group(1) else m.group(2)
        return rfc3164_time(stamp, ref, tz)
    return None


@functools.lru_cache(maxsize=1024)
def minute_day(minute: str, offset: str, ref: datetime, tz: tzinfo) -> date | None:
    """The UTC day of every line stamped in one minute (``"Nov 23 07:25"`` or
    ``"2026-11-23T07:25"`` with its ``offset``), as ``line_time`` dates each line (a stamp it
    cannot read is dated ``ref``); None if the lines of that minute may fall on two days.

    Offsets are whole minutes, so a minute's lines share a UTC day unless a stamp's year, which
    RFC 3164 leaves out, is not the same for its first and last second (``rfc3164_time`` takes the
    year that puts the stamp at most a day after ``ref``): then each line must be dated alone.
    Memoised: a pure function, and ``rfc3164_time`` costs tens of microseconds while a quiet
    log's block may hold hundreds of minutes (and the next block the same again).
    """
    if not offset:
        m = _SHORT_MINUTE(minute)
        if m is not None:  # the scan's RFC 3164 minutes: dated from their fields, not their text again
            month, day, hour, mm = m[1], int(m[2]), int(m[3]), int(m[4])
            first = rfc3164_instant(month, day, hour, mm, 0, ref, tz) or ref
            last = rfc3164_instant(month, day, hour, mm, 59, ref, tz) or ref
            found = first.astimezone(timezone.utc).date()
            return found if found == last.astimezone(timezone.utc).date() else None
    return _minute_day_general(minute, offset, ref, tz)


def _minute_day_general(minute: str, offset: str, ref: datetime, tz: tzinfo) -> date | None:
    """``minute_day`` by its definition: each end of the minute dated by ``line_time``."""
    first = line_time(f"{minute}:00{offset}", ref, tz) or ref
    last = line_time(f"{minute}:59{offset}", ref, tz) or ref
    day = first.astimezone(timezone.utc).date()
    return day if day == last.astimezone(timezone.utc).date() else None


# An RFC 3164 minute as the scans take it (``_NETFILTER_LINE`` group 1).
_SHORT_MINUTE: Final = re.compile(r"([A-Z][a-z][a-z]) ([ 0-9][0-9]) ([0-2][0-9]):([0-5][0-9])").fullmatch


# ---------------------------------------------------------------------------------------------
# netfilter LOG lines (kern.log / syslog files, journal MESSAGE)

# The message of a LOG line: prefix, IN=, OUT=, [MAC=], SRC=, DST=, ... PROTO=, [SPT= DPT=].
_NETFILTER_MSG = re.compile(
    r"(?:\[ *\d+\.\d+\] )?(?P<prefix>.*?)IN=(?P<in>\S*) OUT=(?P<out>\S*) (?:(?:MAC|PHYSIN|PHYSOUT)=\S* )*"
    r"SRC=(?P<src>\S+) DST=\S+ (?:.*? )?PROTO=(?P<proto>\S+)(?: SPT=\d+ DPT=(?P<dpt>\d+))?"
)
# Raw (``audit(1580905834.919:82970)``) and ``ausearch -i`` (``audit(2020-05-28 17:46:41.878:162)``).
_AUDIT_CFG = re.compile(r"type=NETFILTER_CFG msg=audit\((?P<stamp>\d+(?:\.\d+)?|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?):(?P<serial>\d+)\)")
_RELOADED = re.compile(r"\bReloaded (?:firewalld|ufw)\b")
# The lines the general way looks at; every other line is ignored.
_SLOW_MARKS: Final = re.compile(rb"IN=\S* OUT=|NETFILTER_CFG|Reloaded (?:firewalld|ufw)")
# Every match of _SLOW_MARKS holds one of b"IN=", b"NETFILTER_CFG", b"Reloaded " (_slow_candidates).


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


def parse_linux_lines(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """Blocked packets and rule changes in kern.log / syslog / audit.log lines of this host.

    Every line has one outcome: ``parsed`` (a blocked packet, a rule change), ``ignored``
    (anything else, including packets a LOG rule logged as allowed), ``unparsed`` (a line that
    looks like a LOG line or an audit record of a rule change, but no pattern understands it).
    """
    return linux_lines(block, ctx, fast=True)


def linux_lines(block: LogBlock, ctx: ParseContext, *, fast: bool) -> ParseResult:
    """``parse_linux_lines``; ``fast=False`` reads every line the general way (the definition
    the fast path is held to)."""
    if not isinstance(block, TextBlock):  # journal entries or EVTX records given to ``normagent parse``
        return ParseResult(ignored=len(block.records))
    result = ParseResult()
    tally = Tally(ctx, carry=True)
    device = getattr(ctx.settings, "device", LOCAL) or LOCAL
    ref = block.mtime or ctx.now
    parsed = unparsed = 0
    rest = block.data
    if fast:
        parsed, rest = _netfilter_fast(rest, tally, device, ref, ctx.tz)
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
    tally.finish(result, ctx, block=block)
    result.parsed, result.unparsed = parsed, unparsed
    result.ignored = block.line_count - parsed - unparsed
    return result


def _slow_candidates(data: bytes) -> Iterable[bytes]:
    """Lines of ``data`` holding a mark of a LOG line, an audit rule change or a reload.

    Each mark holds one of three fixed words (``IN=``, ``NETFILTER_CFG``, ``Reloaded ``); a
    block's other lines after the fast path (a kern.log's USB, disk and driver messages) seldom
    hold any, and ``bytes`` finds a word with its own fast search where the pattern tests every
    byte against its first characters (~50 instructions a byte: 5 % of a netfilter backlog's
    time for its 5 % other lines). ``IN=`` is looked for only where a "=" is (``memchr``, ~15x
    faster than the search for the word; a kern.log's other lines seldom hold one)."""
    if not ((b"=" in data and b"IN=" in data) or b"NETFILTER_CFG" in data or b"Reloaded " in data):
        return
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
        try:
            if "-" in stamp:
                when = datetime.fromisoformat(stamp.replace(" ", "T")).replace(tzinfo=tz).astimezone(timezone.utc)
            else:
                when = datetime.fromtimestamp(float(stamp), timezone.utc)
        except (ValueError, OverflowError, OSError):
            return None  # a time no clock shows (a damaged record)
        audit_seen.add(ident)
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


# The fast path's shape of a LOG line in rsyslog's files, from the newline before it (the
# block is searched with one put in front), or any other line whole (group 9). It takes only
# what the general way reads alike: fields of printable ASCII ended by a space (where
# ``_NETFILTER_MSG``'s ``\S`` would run on over other bytes), IPv4 sources whose last octet is
# valid (the first three are checked per distinct /24), the usual fields between DST= and
# PROTO= (so the first PROTO= is this one), and a port followed by a space or the line's end.
# Groups: 1 RFC 3164 minute, 2 RFC 3339 minute, 3 its offset, 4 prefix + IN= + OUT=, 5 IPv4
# source /24, 6 IPv6 source, 7 PROTO, 8 DPT, 9 another line. (``(?:x|)`` is ``(?:x)?``, cheaper
# in ``re``.)
_NETFILTER_LINE: Final = re.compile(
    rb"\n(?:"
    rb"(?:([A-Z][a-z][a-z] [ 0-9][0-9] [0-2][0-9]:[0-5][0-9]):[0-5][0-9]"
    rb"|([0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]):[0-5][0-9](?:\.[0-9]{1,6}|)(Z|[+-][01][0-9]:[0-5][0-9]))"
    rb" [A-Za-z0-9._-]++ kernel: (?:\[ *+[0-9]++\.[0-9]++\] |)"
    rb"([ -<>-~]*IN=[!-~]*+ OUT=[!-~]*+ )(?:MAC=[!-~]*+ |)"
    rb"SRC=(?:([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])|([0-9a-f:]++))"
    rb" DST=[!-~]++ LEN=[0-9]++ "
    rb"(?:TOS=0x[0-9A-F][0-9A-F] PREC=0x[0-9A-F][0-9A-F] TTL=[0-9]++ ID=[0-9]++ (?:CE |)(?:DF |)(?:MF |)"
    rb"|TC=[0-9]++ HOPLIMIT=[0-9]++ FLOWLBL=[0-9]++ )"
    rb"PROTO=([!-~]++)(?: SPT=[0-9]++ DPT=([0-9]++)(?=[ \n]|\Z)|(?= (?!SPT=)|\n|\Z))"
    rb"|([^\n]*+))"
)


# What one scan of a block finds (``netfilter_scan_py``, and the C module's ``scan``):
# RFC 3164 minutes (b"Nov 23 07:25"); RFC 3339 minutes with their offsets; lines per (head,
# PROTO, DPT or b""), where the head is group 4 (prefix, IN=, OUT=); per head, lines per IPv4
# source /24 as a number (``v4_net``: only /24s of valid addresses; in C a ``Nets``, which
# ``NetRows.add`` reads, and whose ``as_dict()`` is this) and per IPv6 source; the other
# non-empty lines, each ended by a newline, for the general way.
NetfilterScan = tuple[
    set[bytes],
    set[tuple[bytes, bytes]],
    dict[tuple[bytes, bytes, bytes], int],
    "dict[bytes, dict[int, int]] | Nets",
    dict[bytes, dict[bytes, int]],
    bytes,
]


def netfilter_scan_py(data: bytes) -> NetfilterScan | None:
    """The groups of ``_NETFILTER_LINE`` over every line of ``data``, aggregated; None when
    ``data`` holds ``NETFILTER_CFG`` anywhere (``_linux_line`` reads any line holding it as an
    audit record, so such a block goes the general way whole). The definition the C scan
    (``_netfilter.scan``) is held to, and its fallback where the extension is not built."""
    if b"NETFILTER_CFG" in data:
        return None
    matches = _NETFILTER_LINE.findall(b"\n" + data[:-1] if data.endswith(b"\n") else b"\n" + data)
    # Projections in C (itemgetter, Counter): Python runs per distinct value, as after the C scan.
    minutes = set(map(itemgetter(0), matches))  # b"" for the other lines and RFC 3339 stamps
    stamps = set(map(itemgetter(1, 2), matches)) if b"" in minutes else set()
    minutes.discard(b"")
    stamps.discard((b"", b""))
    packets = Counter(map(itemgetter(3, 6, 7), matches))
    packets.pop((b"", b"", b""), None)  # the other lines
    v4: dict[bytes, dict[int, int]] = {}
    for (head, prefix), n in Counter(map(itemgetter(3, 4), matches)).items():
        if prefix:
            net = v4_net(prefix)
            if net is not None:  # a /24 that is no network has no pseudonym: counted nowhere
                counts = v4.get(head)
                if counts is None:
                    counts = v4[head] = {}
                counts[net] = n
    v6: dict[bytes, dict[bytes, int]] = {}
    if any(map(itemgetter(5), matches)):
        for (head, source), n in Counter(map(itemgetter(3, 5), matches)).items():
            if source:
                v6.setdefault(head, {})[source] = n
    others = b"\n".join(filter(None, map(itemgetter(8), matches)))
    return minutes, stamps, dict(packets), v4, v6, others + b"\n" if others else b""


try:  # the C scan (plugins/firewall/_netfilter.c): the same answer, ~10x less time a line
    from normagent.plugins.firewall._netfilter import NetRows as _NetRows
    from normagent.plugins.firewall._netfilter import scan as _netfilter_scan
except ImportError:  # not built (no compiler where it was installed)
    _netfilter_scan = netfilter_scan_py
    _NetRows = NetRowsPy  # type: ignore[assignment,misc]  # the C class's pure-Python twin: another class to mypy


def _netfilter_fast(data: bytes, tally: Tally, device: str, ref: datetime, tz: tzinfo) -> tuple[int, bytes]:
    """Count the LOG lines of the usual shape; return how many counted, and the other lines
    for the general way — all of them when the block holds an audit record (``_linux_line``
    reads any line with ``NETFILTER_CFG`` in it as one), or LOG lines of two UTC days.

    One scan of the block (C, or ``netfilter_scan_py``) counts the lines per distinct value;
    Python runs once per distinct minute, per distinct (prefix and interfaces, protocol, port),
    and per distinct (prefix and interfaces, source network).
    """
    if b" OUT=" not in data:
        return 0, data
    scanned = _netfilter_scan(data)
    if scanned is None:  # an audit record of a rule change: the general way reads the block
        return 0, data
    minutes, stamps, packets, v4, v6, rest = scanned
    day: date | None = None
    for stamp, offset in [(m, b"") for m in minutes] + list(stamps):
        found = minute_day(stamp.decode("ascii"), offset.decode("ascii"), ref, tz)
        if found is None or found != (day or found):
            return 0, data  # a minute of two days, or lines of two days: each line its own day
        day = found
    if day is None:
        return 0, rest  # no LOG line of the usual shape
    counted: dict[bytes, str] = {}  # prefix + interfaces of a blocked packet -> direction
    let_through: set[bytes] = set()
    parsed = 0
    blocked, ports = tally.blocked, tally.ports
    for (head, proto, dport), n in packets.items():
        direction = counted.get(head)
        if direction is None:
            if head in let_through:
                continue
            text = head.decode("ascii")
            eq = text.index("=")  # the "=" of IN=: the prefix holds none
            if not verdict_blocked(text[: eq - 2]):
                let_through.add(head)
                continue  # a packet let through
            out = text.index(" OUT=", eq)
            direction = counted[head] = direction_of(text[eq + 1 : out], text[out + 5 : -1])
        label, key = packet_keys(proto, dport)
        parsed += n
        blocked[(device, direction, label)] += n
        if key is not None:
            ports[(day, key)] += n
    # Source networks: the /24s of the blocked packets' lines counted per (day, /24) in C, into
    # a copy of the carried rows (named when a batch is committed or the rows are written), then
    # their IPv6 sources under their pseudonyms.
    if counted and len(v4):
        tally.v4_rows().add(v4, day.toordinal(), counted)  # type: ignore[arg-type]  # C's Nets with C's NetRows
    for head, sources in v6.items():
        if head in counted:
            rows = tally.day_networks(day)
            for source, n in sources.items():
                network = tally.names.address(source.decode("ascii"))
                if network is not None:
                    rows[network] += n
    return parsed, rest


# ---------------------------------------------------------------------------------------------
# journald entries (the kernel's LOG lines, audit records, reloads)


def parse_linux_journal(block: LogBlock, ctx: ParseContext) -> ParseResult:
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
    tally.finish(result, ctx)
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


def parse_pfirewall(block: LogBlock, ctx: ParseContext) -> ParseResult:
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
    tally.finish(result, ctx)
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
    except (ValueError, OverflowError):  # year 1 east of UTC, year 9999 west of it: no UTC instant
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


def parse_windows_events(block: LogBlock, ctx: ParseContext) -> ParseResult:
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
    tally.finish(result, ctx)
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


def parse_appliance_lines(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """Blocks and configuration changes from firewall appliances, in spool lines or syslog files.

    In the spool every message that is not one of the understood formats counts as ``unparsed``
    (the spool only holds what devices sent here), and so does a spool line that is not one; in a
    syslog server's file only a firewall message no rule understands does. A firewall message of
    no interest (a pass, a session teardown, an administrator's login) is ``ignored``.
    """
    return appliance_lines(block, ctx, fast=True)


def appliance_lines(block: LogBlock, ctx: ParseContext, *, fast: bool) -> ParseResult:
    """``parse_appliance_lines``; ``fast=False`` reads every line the general way (the
    definition the fast path is held to)."""
    if not isinstance(block, TextBlock):  # journal entries or EVTX records given to ``normagent parse``
        return ParseResult(ignored=len(block.records))
    result = ParseResult()
    tally = Tally(ctx, carry=True)
    devices = device_map(ctx)
    ref = block.mtime or ctx.now
    parsed = unparsed = 0
    data = block.data
    # The receiver's spool files (``syslog.log``, ``syslog.log-<stamp>``): what is in them was sent here.
    spool = block.origin.rsplit("/", 1)[-1].startswith("syslog.log")
    if fast:
        parsed, data = _filterlog_fast(data, tally, devices)
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
    tally.finish(result, ctx, block=block)
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


# The fast path's shape of a filterlog spool line (``<received> <sender> <message>``), from the
# newline before it (the block is searched with one put in front), or any other line whole
# (group 13). It takes only what ``parse_spool_line`` + ``parse_syslog`` + ``_filterlog`` read
# alike: a valid receive time (its day checked per distinct value), a PRI up to 191, an RFC 3164
# header with a month name and a host that ``_TAG`` cannot take for the tag, or an RFC 5424 one
# with a valid stamp and no structured data; CSV fields of printable ASCII without spaces to the
# line's end (so ``strip`` changes nothing), action block|reject|pass and direction in|out as
# written, and an IPv4 source whose last octet is valid. Groups: 1 receive day, 2 sender, 3 RFC
# 3164 host, 4 RFC 5424 host, 5 action, 6 direction, 7 IPv4 protocol, 8 IPv4 source /24, 9 IPv4
# destination port, 10 IPv6 protocol, 11 IPv6 source, 12 IPv6 destination port, 13 another line.
_FIELD = rb"[!-+\--~]*+"  # a CSV field: printable ASCII but comma
_FILTERLOG_LINE: Final = re.compile(
    rb"\n(?:"
    rb"([0-9]{4}-[01][0-9]-[0-3][0-9])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?Z ([!-~]++) <(?:1[0-8][0-9]|19[01]|0?[0-9]?[0-9])>"
    rb"(?:(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9] (?:([A-Za-z0-9._-]++) )?filterlog(?:\[[0-9]++\])?: "
    rb"|1 (?:-|[0-9]{4}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9](?:\.[0-9]{1,9})?(?:Z|[+-][0-9][0-9]:[0-9][0-9])?) ([A-Za-z0-9._-]++) filterlog [!-~]++ [!-~]++ - )"
    + (_FIELD + rb",") * 6 + rb"(block|reject|pass),(in|out),"
    rb"(?:4," + (_FIELD + rb",") * 7 + rb"(" + _FIELD + rb")," + _FIELD + rb","
    rb"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]),"
    + _FIELD + rb"(?:," + _FIELD + rb"(?:,(" + _FIELD + rb")(?:,[!-~]*+)?)?)?"
    rb"|6," + (_FIELD + rb",") * 3 + rb"(" + _FIELD + rb")," + (_FIELD + rb",") * 2 + rb"(" + _FIELD + rb"),"
    + _FIELD + rb"(?:," + _FIELD + rb"(?:,(" + _FIELD + rb")(?:,[!-~]*+)?)?)?)"
    rb"(?=\n|\Z)"
    rb"|([^\n]*+))"
)


# The fast path's scan of a block: the C extension (``_filterlog.c``) when it is built, else this
# module's reference, which is its definition (tests hold the two equal on any bytes).
# ``(days, counts, v4, v6, others)``: the distinct receive days of the lines of the fast shape in
# the order first seen; their count per (sender, RFC 3164 host, RFC 5424 host, action, direction,
# protocol, destination port); the count of each source /24 as a number (``v4_net``: /24s of valid
# addresses only; in C packed, ``packed_counts``, for ``NetRows.add_packed``) and of each IPv6
# source among those that are no pass; every other non-empty line, joined by newlines.
FilterlogScan = tuple[
    list[bytes],
    dict[tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes], int],
    "dict[int, int] | bytes",
    dict[bytes, int],
    bytes,
]


def _filterlog_scan_py(data: bytes) -> FilterlogScan:
    """``_filterlog.scan`` in Python: ``_FILTERLOG_LINE`` over the block, counted per distinct
    value (the fallback when the extension is not built, and the definition it is tested against)."""
    matches = _FILTERLOG_LINE.findall(b"\n" + data[:-1] if data.endswith(b"\n") else b"\n" + data)
    days = list(set(filter(None, map(itemgetter(0), matches))))
    if len(days) > 1:
        days = list(dict.fromkeys(filter(None, map(itemgetter(0), matches))))  # in the order first seen
    # Counted over C-level projections (per line), merged per distinct value: a line has the
    # protocol and port of IPv4 or of IPv6; another line has no sender.
    counts: dict[tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes], int] = {}
    for (sender, host3, host5, action, direction, proto4, proto6, port4, port6), n in Counter(
        map(itemgetter(1, 2, 3, 4, 5, 6, 9, 8, 11), matches)
    ).items():
        if sender:
            key = (sender, host3, host5, action, direction, proto4 or proto6, port4 or port6)
            counts[key] = counts.get(key, 0) + n
    # The sources of the lines that are no pass (of all of them when none is).
    sources4: Iterable[bytes] = map(itemgetter(7), matches)
    sources6: Iterable[bytes] = map(itemgetter(10), matches)
    if any(key[3] == b"pass" for key in counts):
        blocks = list(map(b"pass".__ne__, map(itemgetter(4), matches)))
        sources4, sources6 = compress(sources4, blocks), compress(sources6, blocks)
    v4: dict[int, int] = {}
    for prefix, n in Counter(filter(None, sources4)).items():
        net = v4_net(prefix)
        if net is not None:  # a /24 that is no network has no pseudonym: counted nowhere
            v4[net] = n
    v6 = Counter(filter(None, sources6)) if any(map(itemgetter(10), matches)) else Counter()
    others = b"\n".join(filter(None, map(itemgetter(12), matches)))
    return days, counts, v4, dict(v6), others


try:  # in C: plugins/firewall/_filterlog.c
    from normagent.plugins.firewall._filterlog import scan as _filterlog_scan
except ImportError:  # not built (no compiler where it was installed): the same answers, slower
    _filterlog_scan = _filterlog_scan_py


def _filterlog_fast(data: bytes, tally: Tally, devices: DeviceMap) -> tuple[int, bytes]:
    """Count the filterlog spool lines of the usual shape; return how many counted (blocks),
    and the other lines for the general way — all of them when the receive days are not one
    valid date.

    The block is scanned once (``_filterlog_scan``: in C when built) into counts per distinct
    value; Python runs once per distinct (sender, host, action, direction, protocol, port) and
    per distinct source network.
    """
    if b"filterlog" not in data:
        return 0, data
    days, counts, v4, v6, others = _filterlog_scan(data)
    if len(days) > 1:
        return 0, data  # each line its own day
    rest = others + b"\n" if others else b""
    if not days:
        return 0, rest
    try:
        day = date.fromisoformat(days[0].decode("ascii"))
    except ValueError:
        return 0, data  # parse_spool_line refuses the lines: the general way says unparsed
    names: dict[tuple[bytes, bytes, bytes], str] = {}
    parsed = 0
    blocked, ports, messages = tally.blocked, tally.ports, tally.messages
    for (sender, host3, host5, action, direction, proto, port), n in counts.items():
        device = names.get((sender, host3, host5))
        if device is None:
            host = host3 or (b"" if host5 == b"-" else host5)  # RFC 5424's nil host
            device = names[(sender, host3, host5)] = devices.name(sender.decode("ascii"), host.decode("ascii"))
        messages[device] += n
        if action == b"pass":
            continue
        label, key = packet_keys(proto, port)
        parsed += n
        blocked[(device, direction.decode("ascii"), label)] += n
        if key is not None:
            ports[(day, key)] += n
    # Source networks: the /24s counted per (day, /24) in C into a copy of the carried rows
    # (named when a batch is committed or the rows are written), then the IPv6 sources under
    # their pseudonyms.
    if v4:
        tally.v4_rows().add_packed(v4, day.toordinal())
    if v6:
        rows = tally.day_networks(day)
        for src6, n in v6.items():
            network = tally.names.address(src6.decode("ascii"))
            if network is not None:
                rows[network] += n
    return parsed, rest


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
    "NetworkPseudonyms",
    "accept_windows",
    "appliance_lines",
    "classify_appliance",
    "linux_lines",
    "parse_appliance_lines",
    "parse_linux_journal",
    "parse_linux_lines",
    "parse_pfirewall",
    "parse_windows_events",
]
