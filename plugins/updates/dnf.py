"""Pure readers of dnf's records: its history database's rows, ``dnf.rpm.log`` and the output of
``dnf updateinfo list``.

The history database (``/var/lib/dnf/history.sqlite``, libdnf's "swdb") holds one row per
transaction in ``trans`` and one per package in ``trans_item``, each with a state: 1 done, 2
error, 0 not known yet (the transaction is running, or dnf died in it). An update is an item
with action 6 (Upgrade); its result is its own state. A transaction whose state is still 0 is
judged once a later transaction exists (dnf died in it: its unfinished items failed) or once it
began longer than ``settle`` ago; until then reading stops in front of it, so nothing after it
is counted out of order.

``dnf.rpm.log`` has a line per package as rpm finishes it::

    2026-12-06T13:02:44+0000 SUBDEBUG Upgrade: brokenup-1.1-1.noarch
    2026-12-06T13:02:44+0000 ERROR Error in PREIN scriptlet in rpm package brokenup

Each ``Upgrade:`` line is an update; it failed when an ``Error in … scriptlet in rpm package
<name>`` or ``Error unpacking rpm package <name>`` line of the same dnf session names it. A
session ends at the next ``--- logging initialized ---``, or ``settle`` after its last line.

Security or not: a NEVRA (``name-[epoch:]version-release.arch``) or name in
``security_packages``; the collector adds the packages of the security advisories dnf knows.

Imports only ``normagent`` (the public API) and the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import field
from datetime import datetime, timedelta, timezone
from typing import Any

from normagent import (
    Event,
    JSONValue,
    LogBlock,
    Observation,
    ParseContext,
    ParseProblem,
    ParseResult,
    TextBlock,
    dataclass,
)

from .vocab import TRANSACTION, outcome_observations, package_set

UPGRADE = 6
ACTIONS = frozenset(range(1, 12))  # Install … Reason Change (libdnf TransactionItemAction)
DONE, ERROR, UNKNOWN = 1, 2, 0
STATES = frozenset({UNKNOWN, DONE, ERROR})
DNF_SETTLE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class DnfItem:
    """One package of a transaction, as read from ``trans_item`` joined with ``rpm``."""

    item_id: Any
    action: Any
    state: Any
    name: Any
    epoch: Any
    version: Any
    release: Any
    arch: Any


@dataclass(frozen=True, slots=True)
class DnfTransaction:
    """One row of ``trans`` and its items."""

    id: Any
    begin: Any
    end: Any
    state: Any
    items: Sequence[DnfItem] = ()


@dataclass
class DnfJudgement:
    """What a run makes of the transactions after the checkpoint.

    Attributes:
        observations: Counts, rollups and one event per judged transaction.
        last: The id of the last transaction judged (the next checkpoint), or None if none was.
        records: Items read (a transaction row that makes no sense counts its items, or itself
            when it has none); each has one outcome: parsed, ignored or unparsed.
        parsed: Items that were updates.
        unparsed: Items or transactions whose values make no sense (counted, skipped).
        problems: (transaction id, item id or None, what is wrong).
        waiting: The id of an unfinished transaction reading stopped in front of, if any.
    """

    observations: list[Observation] = field(default_factory=list)
    last: int | None = None
    records: int = 0
    parsed: int = 0
    unparsed: int = 0
    problems: list[tuple[Any, Any, str]] = field(default_factory=list)
    waiting: int | None = None


def nevra(name: str, epoch: Any, version: str, release: str, arch: str) -> str:
    """``name-[epoch:]version-release.arch`` as dnf prints it (no epoch when it is 0)."""
    prefix = f"{epoch}:" if str(epoch) not in ("", "0", "None") else ""
    return f"{name}-{prefix}{version}-{release}.{arch}"


def judge_transactions(
    transactions: Iterable[DnfTransaction], *, now: datetime, security: frozenset[str], settle: timedelta = DNF_SETTLE
) -> DnfJudgement:
    """Count the updates of transactions in id order (see the module docstring)."""
    out = DnfJudgement()
    rows = list(transactions)
    for index, trans in enumerate(rows):
        problem = _bad_transaction(trans)
        if problem:
            # Its items cannot be judged without it: each one (or the row itself) is unparsed.
            n = max(1, len(trans.items))
            out.records += n
            out.unparsed += n
            out.problems.append((trans.id, None, problem))
            out.last = trans.id if isinstance(trans.id, int) and not isinstance(trans.id, bool) else out.last
            continue
        if trans.state == UNKNOWN:
            begun = datetime.fromtimestamp(trans.begin, timezone.utc)
            if index == len(rows) - 1 and now - begun < settle:
                out.waiting = trans.id
                break
        _judge_one(trans, out, security)
        out.last = trans.id
    return out


def _bad_transaction(trans: DnfTransaction) -> str:
    if not isinstance(trans.id, int) or isinstance(trans.id, bool):
        return "transaction id is not a number"
    if not isinstance(trans.begin, int) or isinstance(trans.begin, bool) or trans.begin <= 0:
        return "dt_begin is not a time"
    if trans.end is not None and (not isinstance(trans.end, int) or isinstance(trans.end, bool)):
        return "dt_end is not a time"
    if trans.state not in STATES:
        return f"state {trans.state!r} is not one libdnf writes"
    return ""


def _judge_one(trans: DnfTransaction, out: DnfJudgement, security: frozenset[str]) -> None:
    when = datetime.fromtimestamp(trans.end if isinstance(trans.end, int) and trans.end > 0 else trans.begin, timezone.utc)
    counts: dict[tuple[str, str], float] = {}
    packages: list[tuple[str, str, str]] = []
    failed_any = False
    for item in trans.items:
        out.records += 1
        problem = _bad_item(item)
        if problem:
            out.unparsed += 1
            out.problems.append((trans.id, item.item_id, problem))
            continue
        if item.action != UPGRADE:
            continue
        out.parsed += 1
        # An item still unknown when its transaction is over (or was abandoned) did not complete.
        result = "success" if item.state == DONE else "failure"
        full = nevra(item.name, item.epoch, item.version, item.release, item.arch)
        kind = "security" if full in security or item.name in security else "other"
        counts[(kind, result)] = counts.get((kind, result), 0.0) + 1
        packages.append((item.name, kind, result))
        failed_any = failed_any or result == "failure"
    out.observations += outcome_observations(counts, packages, when.date(), when)
    state = {DONE: "success", ERROR: "failure"}.get(trans.state, "interrupted")
    out.observations.append(
        Event(
            TRANSACTION,
            when,
            f"dnf:{trans.id}:{trans.begin}",
            {
                "source": "dnf",
                "result": "failure" if failed_any and state == "success" else state,
                "security": int(sum(n for (k, _), n in counts.items() if k == "security")),
                "other": int(sum(n for (k, _), n in counts.items() if k == "other")),
            },
        )
    )


def _bad_item(item: DnfItem) -> str:
    if item.action not in ACTIONS:
        return f"action {item.action!r} is not one libdnf writes"
    if item.state not in STATES:
        return f"state {item.state!r} is not one libdnf writes"
    for name in ("name", "version", "release", "arch"):
        value = getattr(item, name)
        if not isinstance(value, str) or not value or any(c.isspace() for c in value):
            return f"{name} is not a package {name}"
    return ""


# --------------------------------------------------------------------------------------------
# dnf updateinfo list


_UPDATEINFO = re.compile(r"^(\S+)\s+(\S+)\s+(\S+-[^-\s]+-[^-\s]+\.[^.\s]+)\s*$")


def parse_updateinfo(stdout: bytes) -> dict[str, str]:
    """NEVRA → ``security`` or the advisory's type, from ``dnf updateinfo list`` (dnf 4, yum).

    Lines are ``ADVISORY  TYPE  NEVRA``; TYPE is ``security``, ``<Severity>/Sec.``, ``bugfix``,
    ``enhancement`` or ``newpackage``.
    """
    found: dict[str, str] = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        match = _UPDATEINFO.match(line.strip())
        if match is None:
            continue
        _advisory, kind, package = match.groups()
        folded = kind.casefold()
        security = folded == "security" or folded.endswith("/sec.")
        if security or package not in found:
            found[package] = "security" if security else folded
    return found


# --------------------------------------------------------------------------------------------
# dnf.rpm.log and dnf.log


_RPM_LOG = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(Z|[+-]\d\d(?::?\d\d)?) ([A-Z]+) (.*)$")
_SCRIPTLET = re.compile(r"^Error (?:in \S+ scriptlet in|unpacking) rpm package (\S+)")
_NEVRA_NAME = re.compile(r"^(.+)-[^-]+-[^-]+$")
_WILL_UPGRADE = re.compile(r"^---> Package (\S+)\.([^.\s]+) (\S+) will be an upgrade$")
LOGGING_STARTED = "--- logging initialized ---"


def parse_dnf_logs(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """``dnf.rpm.log`` (rpm's line per package) or ``dnf.log`` (dnf's own debug log).

    dnf.rpm.log: see the module docstring. dnf.log: a session announces each update
    (``---> Package openssl-libs.x86_64 1:3.0.7-27.el9 will be an upgrade``) and, once its
    transaction is over, lists ``Upgraded: <new NEVRA>`` for each one installed and ``Failed:
    <NEVRA>`` for each one that was not; an announced update neither lists was never tried
    (the transaction was declined or a dry run) and is not counted. dnf writes those lines at
    DEBUG level: with a ``logfilelevel`` below the default they are missing, and dnf.rpm.log is
    the file to read.
    """
    if not isinstance(block, TextBlock):
        return ParseResult(ignored=len(block.records), carry=ctx.carry)
    carry = ctx.carry if isinstance(ctx.carry, dict) and ctx.carry.get("f") in ("dnf", "dnflog") else None
    fmt = carry.get("f") if carry else _sniff_dnf(block.data)
    if fmt is None:
        return ParseResult(ignored=block.line_count, carry=None if ctx.final else ctx.carry)
    if fmt == "dnflog":
        return _parse_dnf_log(block, ctx, carry)
    return _parse_rpm_log(block, ctx, carry)


def _sniff_dnf(data: bytes) -> str | None:
    found = None
    for line in data.split(b"\n", 200)[:200]:
        match = _RPM_LOG.match(line.rstrip(b"\r"))
        if match is None:
            continue
        level = match.group(3)
        if level in (b"DDEBUG", b"DEBUG"):
            return "dnflog"
        if level == b"SUBDEBUG" or match.group(4).startswith(LOGGING_STARTED.encode()):
            found = "dnf"
    return found


def _dnf_lines(data: bytes) -> Iterable[tuple[int, bytes]]:
    start = 0
    size = len(data)
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        yield start, data[start:end].rstrip(b"\r")
        start = end + 1


def _parse_dnf_log(block: TextBlock, ctx: ParseContext, carry: dict[str, Any] | None) -> ParseResult:
    result = ParseResult()
    kept = carry.get("planned") if carry else None
    planned = {p for p in kept if isinstance(p, str)} if isinstance(kept, list) else set()
    security = _security(ctx)
    counts: dict[tuple[str, str], float] = {}
    packages: list[tuple[str, str, str]] = []
    last: datetime | None = None
    for start, line in _dnf_lines(block.data):
        match = _RPM_LOG.match(line)
        if match is None:
            result.ignored += 1  # the transaction table, tracebacks: continuation lines
            continue
        when = _rpm_time(match.group(1), match.group(2))
        if when is None:
            result.unparsed += 1
            result.problems.append(ParseProblem(start, "not a time dnf writes"))
            continue
        message = match.group(4).decode("utf-8", "replace").strip()
        will = _WILL_UPGRADE.match(message)
        if message.startswith(LOGGING_STARTED):
            planned.clear()
            result.ignored += 1
        elif will is not None:
            name, arch, evr = will.groups()
            planned.add(f"{name}-{evr}.{arch}")
            result.ignored += 1
        elif message.startswith(("Upgraded: ", "Failed: ")):
            verb, _, package = message.partition(": ")
            if package not in planned:
                result.ignored += 1  # an install, a removal, or the old side of a failed update
                continue
            planned.discard(package)
            name_match = _NEVRA_NAME.match(package)
            name = name_match.group(1) if name_match else package
            outcome = "success" if verb == "Upgraded" else "failure"
            kind = "security" if package in security or name in security else "other"
            counts[(kind, outcome)] = counts.get((kind, outcome), 0.0) + 1
            packages.append((name, kind, outcome))
            last = when
            result.parsed += 1
        else:
            result.ignored += 1
    if packages and last is not None:
        result.observations += outcome_observations(counts, packages, last.date(), last)
    kept_planned: list[JSONValue] = list(sorted(planned))
    result.carry = None if ctx.final else {"f": "dnflog", "planned": kept_planned}
    return result


def _parse_rpm_log(block: TextBlock, ctx: ParseContext, carry: dict[str, Any] | None) -> ParseResult:
    session = _session(carry)
    result = ParseResult()
    security = _security(ctx)
    for start, line in _dnf_lines(block.data):
        match = _RPM_LOG.match(line)
        if match is None:
            # A message's continuation line (rpm's error text runs over lines) or a blank one.
            result.ignored += 1
            continue
        stamp, zone, _level, message_bytes = match.groups()
        when = _rpm_time(stamp, zone)
        if when is None:
            result.unparsed += 1
            result.problems.append(ParseProblem(start, "not a time dnf writes"))
            continue
        message = message_bytes.decode("utf-8", "replace")
        if message.startswith(LOGGING_STARTED):
            _close(session, result, security)
            result.ignored += 1
        elif message.startswith("Upgrade: "):
            package = message[len("Upgrade: ") :].strip()
            name_match = _NEVRA_NAME.match(package)
            if name_match is None:
                result.unparsed += 1
                result.problems.append(ParseProblem(start, "Upgrade names no package"))
                continue
            session["up"].append([package, name_match.group(1), when.isoformat()])
            result.parsed += 1
        else:
            error = _SCRIPTLET.match(message)
            if error is not None:
                session["err"].append(error.group(1))
                result.parsed += 1
            else:
                result.ignored += 1
        session["t"] = when.isoformat()
    last = _time(session.get("t"))
    # Settled by time only at the end of a run (an empty block: all that was written is read)
    # or of an input, never in the middle of a catch-up.
    if ctx.final or (not block.data and last is not None and ctx.now - last >= _settle(ctx)):
        _close(session, result, security)
    result.carry = None if ctx.final else session
    return result


def _session(carry: dict[str, Any] | None) -> dict[str, Any]:
    """The open dnf.rpm.log session of a carry, its fields checked (it may be from an older version)."""
    carry = carry or {}
    updates = carry.get("up")
    errors = carry.get("err")
    last = carry.get("t")
    return {
        "f": "dnf",
        "t": last if isinstance(last, str) and _time(last) is not None else None,
        "up": [list(u) for u in updates if isinstance(u, list) and len(u) == 3 and all(isinstance(x, str) for x in u)]
        if isinstance(updates, list)
        else [],
        "err": [e for e in errors if isinstance(e, str)] if isinstance(errors, list) else [],
    }


def _close(session: dict[str, Any], result: ParseResult, security: frozenset[str]) -> None:
    """The session is over: each update in it failed if an error line named it, else succeeded."""
    updates = session.get("up", [])
    if updates:
        errors = set(session.get("err", []))
        counts: dict[tuple[str, str], float] = {}
        packages: list[tuple[str, str, str]] = []
        when = _time(updates[-1][2]) or datetime.now(timezone.utc)
        for full, name, _at in updates:
            outcome = "failure" if name in errors or full in errors else "success"
            kind = "security" if full in security or name in security else "other"
            counts[(kind, outcome)] = counts.get((kind, outcome), 0.0) + 1
            packages.append((name, kind, outcome))
        result.observations += outcome_observations(counts, packages, when.date(), when)
        result.observations.append(
            Event(
                TRANSACTION,
                when,
                f"dnf-log:{updates[0][2]}:{updates[0][0]}",
                {
                    "source": "dnf",
                    "result": "failure" if any(p[2] == "failure" for p in packages) else "success",
                    "security": int(sum(n for (k, _), n in counts.items() if k == "security")),
                    "other": int(sum(n for (k, _), n in counts.items() if k == "other")),
                },
            )
        )
    session["up"] = []
    session["err"] = []


def _rpm_time(stamp: bytes, zone: bytes) -> datetime | None:
    text = stamp.decode() + ("+00:00" if zone == b"Z" else _zone(zone.decode()))
    try:
        return datetime.fromisoformat(text).astimezone(timezone.utc)
    except ValueError:
        return None


def _zone(zone: str) -> str:
    digits = zone[1:].replace(":", "")
    if len(digits) == 2:
        digits += "00"
    return f"{zone[0]}{digits[:2]}:{digits[2:4]}"


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _security(ctx: ParseContext) -> frozenset[str]:
    entries = getattr(ctx.settings, "security_packages", ())
    return package_set(tuple(entries)) if entries else frozenset()


def _settle(ctx: ParseContext) -> timedelta:
    value = getattr(ctx.settings, "settle", DNF_SETTLE)
    return value if isinstance(value, timedelta) else DNF_SETTLE
