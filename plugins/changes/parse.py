"""Pure parsers of the changes plugin: auditd's log and the package managers' logs.

``/var/log/audit/audit.log`` (one record per line; records of one event share
``msg=audit(<epoch>.<ms>:<serial>)``; a ``node=<host>`` prefix and, in the ENRICHED format, a
``\\x1d`` followed by interpreted fields are allowed):

- ``type=CONFIG_CHANGE`` with ``res=1``/``res=yes``/``res=success`` = 1 change of kind
  ``audit_config`` (a rule added or removed, auditing switched): the audit configuration
  itself changed; so does ``type=DAEMON_CONFIG`` (auditd re-read auditd.conf). A refused
  change (``res=0``, rules locked with ``-e 2``) changed nothing and is not counted.
- ``type=SYSCALL`` with ``success=yes`` and a ``key`` that matches ``settings.keys`` = 1 change
  of kind ``watch``: a watched path was written or its attributes changed (``-w /etc/sudoers
  -p wa -k scope``). Keys are the ones a site gives its watches; the default list holds the
  names the CIS and STIG rule sets use for configuration. A denied attempt (``success=no``)
  changed nothing. Several keys on one rule are hex-encoded and separated by ``\\x01``.
- Every other record is ignored; a line that is no audit record is unparsed.

``/var/log/dpkg.log`` and ``/var/log/dnf.rpm.log``: one package change per action line —
dpkg's ``install``, ``upgrade`` (``reinstall`` when the version stays), ``remove``, ``purge``;
dnf's ``Installed``, ``Upgrade``, ``Downgrade``, ``Reinstall``, ``Erase`` (the past-tense
partner lines of an upgrade name the old package and are not counted again). Package changes
are counted and kept per package and day for the report; they are not events (a dist-upgrade
is hundreds of them).

Every change is planned or not by the maintenance calendar (``ctx.maintenance``, through
``planned.Planner``), which gives its ``planned`` label. A package change a planned change covers
is also kept per plan and day (``changes.by_plan``), and one outside every plan per package and
day (``changes.packages_unplanned``; upgrades only counted), for the report.

Imports only ``normagent`` (the public API) and the standard library.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from datetime import date, datetime, timezone
from typing import Any

from normagent import Count, LogBlock, Observation, ParseContext, ParseProblem, ParseResult, Rollup, TextBlock

from .planned import Change, Planner, plan_id
from .vocab import BY_PLAN, PACKAGE_CHANGES, PACKAGES_BY_NAME, UNPLANNED_PACKAGES, config_change, utc

MAX_PROBLEMS = 100

# The keys CIS benchmarks and STIG rule sets give watches of configuration (audit.rules).
CONFIG_KEYS = (
    "identity",
    "scope",
    "sudoers",
    "actions",
    "sshd",
    "sshd_config",
    "system-locale",
    "MAC-policy",
    "audit_rules",
    "audit-config",
    "audit_config",
    "auditconfig",
    "cron",
    "modules",
    "time-change",
    "logins",
    "pam",
    "networkconfig",
    "config_changes",
)

# auditd writes a record per line; its own DAEMON_* records put no colon after the stamp, and a
# type it does not know is "type=UNKNOWN[1329] msg=?": records all the same.
_AUDIT_LINE = re.compile(rb"^(?:node=\S+ )?type=(\S+) msg=audit\((\d+)(?:\.(\d+))?:(\d+)\):? ?(.*)$")
_AUDIT_SHAPE = re.compile(rb"^(?:node=\S+ )?type=\S+ msg=")
_AUDIT_LINES = re.compile(rb"(?m)^(?:node=\S+ )?type=\S+ msg=[^\n]*$")
_CANDIDATE = re.compile(rb"CONFIG_CHANGE|DAEMON_CONFIG| key=[\"0-9A-F]")
_FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')

_STAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
_DNF_ACTION = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(Z|[+-]\d\d(?::?\d\d)?) SUBDEBUG (Installed|Upgrade|Downgrade|Reinstall|Erase): (\S+)")
# Searched over a whole block: a literal space first lets the regex engine skip ahead in C.
_ACTION_WORD = re.compile(rb" (?:install|upgrade|remove|purge|SUBDEBUG) ")
_NEVRA_NAME = re.compile(r"^(.+)-[^-]+-[^-]+$")
_DNF_ACTIONS = {b"Installed": "install", b"Upgrade": "upgrade", b"Downgrade": "downgrade", b"Reinstall": "reinstall", b"Erase": "remove"}


def _lines(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    start = 0
    size = len(data)
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        out.append((start, data[start:end].rstrip(b"\r")))
        start = end + 1
    return out


# --------------------------------------------------------------------------------------------
# auditd


def parse_audit(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """audit.log records: configuration changes and hits of configuration watches."""
    if not isinstance(block, TextBlock):
        return ParseResult(ignored=len(block.records))
    data = block.data
    result = ParseResult()
    good = _AUDIT_LINES.subn(b"", data)[1]
    if good == 0:
        return ParseResult(ignored=block.line_count)  # not an audit log (normagent parse tries every parser)
    if good < block.line_count:
        for offset, raw in _lines(data):
            if not _AUDIT_SHAPE.match(raw):
                result.unparsed += 1
                if len(result.problems) < MAX_PROBLEMS:
                    result.problems.append(ParseProblem(offset, "not an audit record"))
                if len(result.examples) < ctx.examples:
                    result.examples.append(raw.decode("utf-8", "replace"))
    keys = tuple(getattr(ctx.settings, "keys", CONFIG_KEYS))
    planner = Planner(ctx.maintenance)
    pos = 0
    search = _CANDIDATE.search
    while True:
        found = search(data, pos)
        if found is None:
            break
        start = data.rfind(b"\n", 0, found.start()) + 1
        end = data.find(b"\n", found.start())
        end = len(data) if end < 0 else end
        pos = end + 1
        raw = data[start:end].rstrip(b"\r")
        try:
            observations = _audit_record(raw, keys, planner)
        except UnreadableStamp:
            result.unparsed += 1
            if len(result.problems) < MAX_PROBLEMS:
                result.problems.append(ParseProblem(start, "audit record's time does not read"))
            if len(result.examples) < ctx.examples:
                result.examples.append(raw.decode("utf-8", "replace"))
            continue
        if observations:
            result.observations += observations
            result.parsed += 1
    result.problems.sort(key=lambda problem: problem.offset)  # two passes found them: in the file's order
    result.ignored = block.line_count - result.parsed - result.unparsed
    return result


class UnreadableStamp(ValueError):
    """An audit record whose ``msg=audit(SECONDS.MILLIS:SERIAL)`` is no time (too many digits, or
    past what a datetime holds): the line is unparsed, not a failure of the whole block."""


def _audit_time(seconds: bytes, millis: bytes | None) -> datetime:
    if len(seconds) > 12:  # year 33658 and later; and int() refuses 4,300 digits
        raise UnreadableStamp(seconds[:20])
    try:
        return utc(int(seconds) + int((millis or b"0").ljust(3, b"0")[:3]) / 1000)
    except (OverflowError, OSError, ValueError):
        raise UnreadableStamp(seconds) from None


def _audit_record(raw: bytes, keys: Sequence[str], planner: Planner) -> list[Observation]:
    match = _AUDIT_LINE.match(raw)
    if match is None:
        return []
    kind, seconds, millis, serial, rest = match.groups()
    body = rest.split(b"\x1d", 1)[0].decode("utf-8", "replace")  # ENRICHED: interpreted fields after \x1d
    fields = {k: v.strip('"') for k, v in _FIELD.findall(_outer(body))}
    at = _audit_time(seconds, millis)
    event_key = f"auditd:{seconds.decode()}.{(millis or b'0').decode()}:{serial.decode()}"
    if kind in (b"CONFIG_CHANGE", b"DAEMON_CONFIG"):
        if fields.get("res", "").lower() not in ("1", "yes", "success"):
            return []
        if kind == b"DAEMON_CONFIG":  # auditd re-read auditd.conf (SIGHUP): "config changed"
            return config_change(Change(at, "auditd", "audit_config", "auditd.conf"), event_key, planner)
        op = fields.get("op", "unknown")
        subject = op if not _audit_keys(fields.get("key", "")) else f"{op} {','.join(_audit_keys(fields.get('key', '')))}"
        return config_change(Change(at, "auditd", "audit_config", subject), event_key, planner)
    if kind == b"SYSCALL" and fields.get("success") == "yes":
        matched = [k for k in _audit_keys(fields.get("key", "")) if any(fnmatch.fnmatchcase(k, p) for p in keys)]
        if matched:
            return config_change(Change(at, "auditd", "watch", ",".join(matched)), event_key, planner)
    return []


def _outer(body: str) -> str:
    """The record's own fields: a user-space record nests ``msg='…'``, which is dropped."""
    return re.sub(r"msg='[^']*'", "", body)


def _audit_keys(value: str) -> list[str]:
    """The keys of a record: ``(null)``, a plain key, or hex of several keys joined by \\x01."""
    if not value or value == "(null)":
        return []
    if re.fullmatch(r"[0-9A-F]+", value) and len(value) % 2 == 0:
        try:
            decoded = bytes.fromhex(value).decode("utf-8", "replace")
        except ValueError:
            return [value]
        return [k for k in decoded.split("\x01") if k]
    return [value]


# --------------------------------------------------------------------------------------------
# package logs


def parse_package_logs(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """dpkg.log and dnf.rpm.log: one package change per action line (see the module docstring).

    Action lines are found by a pattern searched over the block in C; only they cost Python
    time, so dpkg's many status lines pass at the speed of the scan. Counts and rollups are
    summed per block (a dist-upgrade is thousands of lines).
    """
    if not isinstance(block, TextBlock):
        return ParseResult(ignored=len(block.records))
    result = ParseResult()
    planner = Planner(ctx.maintenance)
    data = block.data
    counts: dict[tuple[str, str], float] = {}
    rows: dict[tuple[date, str], list[Any]] = {}
    unplanned: dict[tuple[date, str], list[Any]] = {}
    plans: dict[tuple[date, str], list[Any]] = {}
    times: dict[bytes, datetime | None] = {}
    last_begin = -1
    for match in _ACTION_WORD.finditer(data):
        begin = data.rfind(b"\n", 0, match.start()) + 1
        if begin == last_begin:
            continue  # the word twice on one line
        last_begin = begin
        end = data.find(b"\n", match.start())
        line = data[begin : len(data) if end < 0 else end].rstrip(b"\r")
        change = _package_change(line, ctx, times)
        if change is None:
            continue
        window = planner.window(change)
        planned = "true" if window is not None else "false"
        counts[(change.kind, planned)] = counts.get((change.kind, planned), 0.0) + 1
        result.parsed += 1
        day = change.at.date()
        if window is not None and window.kind == "change":
            _tally(plans, (day, plan_id(window)), change.at)
        if change.kind in ("upgrade", "reinstall"):
            # Counted, not kept per package: a host upgrades hundreds of packages a month (the
            # updates section lists the security updates and the failures by package).
            continue
        _tally(rows, (day, change.subject), change.at)
        if window is None:
            _tally(unplanned, (day, change.subject), change.at)
    result.observations = [Count(PACKAGE_CHANGES, {"action": a, "planned": p}, n) for (a, p), n in sorted(counts.items())]
    for name, tally in ((PACKAGES_BY_NAME, rows), (UNPLANNED_PACKAGES, unplanned), (BY_PLAN, plans)):
        result.observations += [Rollup(name, day, key, n, first, last) for (day, key), (n, first, last) in sorted(tally.items())]
    result.ignored = block.line_count - result.parsed
    return result


def _tally(rows: dict[tuple[date, str], list[Any]], key: tuple[date, str], at: datetime) -> None:
    row = rows.get(key)
    if row is None:
        rows[key] = [1.0, at, at]
    else:
        row[0] += 1
        row[1] = min(row[1], at)
        row[2] = max(row[2], at)


def _package_change(line: bytes, ctx: ParseContext, times: dict[bytes, datetime | None]) -> Change | None:
    """The change an action line makes; None for any other line."""
    parts = line.split(b" ")
    if len(parts) >= 6 and parts[2] in _DPKG_WORDS and len(parts[0]) == 10 and len(parts[1]) == 8:
        stamp = parts[0] + b" " + parts[1]
        at = times.get(stamp, _MISSING)
        if at is _MISSING:
            at = times[stamp] = _local(stamp, ctx)
        if at is None:
            return None
        action = _DPKG_WORDS[parts[2]]
        if action == "upgrade" and parts[4] == parts[5]:
            action = "reinstall"
        return Change(at, "package", action, parts[3].split(b":", 1)[0].decode("utf-8", "replace"))
    dnf = _DNF_ACTION.match(line)
    if dnf is not None:
        stamp, zone, verb, nevra = dnf.groups()
        try:
            at_dnf = datetime.fromisoformat(stamp.decode() + _zone(zone.decode())).astimezone(timezone.utc)
        except ValueError:
            return None
        text = nevra.decode("utf-8", "replace")
        name_match = _NEVRA_NAME.match(text)
        return Change(at_dnf, "package", _DNF_ACTIONS[verb], name_match.group(1) if name_match else text)
    return None


_DPKG_WORDS = {b"install": "install", b"upgrade": "upgrade", b"remove": "remove", b"purge": "purge"}
_MISSING: Any = object()


def _local(stamp: bytes, ctx: ParseContext) -> datetime | None:
    """``2026-11-20 06:25:12`` (local time) as aware UTC, or None if it is no time."""
    if not _STAMP.match(stamp):
        return None
    try:
        naive = datetime(int(stamp[0:4]), int(stamp[5:7]), int(stamp[8:10]), int(stamp[11:13]), int(stamp[14:16]), int(stamp[17:19]))
    except ValueError:
        return None
    return naive.replace(tzinfo=ctx.tz).astimezone(timezone.utc)


def _zone(zone: str) -> str:
    if zone == "Z":
        return "+00:00"
    digits = zone[1:].replace(":", "")
    digits = digits + "00" if len(digits) == 2 else digits
    return f"{zone[0]}{digits[:2]}:{digits[2:4]}"
