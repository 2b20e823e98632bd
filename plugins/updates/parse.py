"""Pure parsers of apt's and dpkg's logs: which updates were applied, of which kind, with what result.

One parser, ``parse_apt_logs``, reads all four files of ``updates.apt``; each file's format is
recognised from its lines and kept in the file's carry (``ParseContext.carry``):

``/var/log/apt/history.log`` — **the count of apt's updates.** One stanza per apt run (apt-get,
    apt, unattended-upgrades, aptitude, PackageKit)::

        Start-Date: 2026-11-20  06:25:12
        Commandline: /usr/bin/unattended-upgrade
        Upgrade: libssl3:amd64 (3.0.15-1~deb12u1, 3.0.17-1~deb12u2), openssl:amd64 (…, …)
        Error: Sub-process /usr/bin/dpkg returned an error code (1)
        End-Date: 2026-11-20  06:25:40

    Each package of an ``Upgrade:`` line is one update; its result is the run's (``Error:``
    present: failure; apt reports one result per run). ``Install:`` (a new package),
    ``Remove:``/``Purge:``, ``Downgrade:``, ``Reinstall:`` are package changes, not updates.
    The stanza waits in the carry until its ``End-Date``; a ``Start-Date`` while one is open
    means the run before never finished (killed, power lost): an ``interrupted`` transaction.
``/var/log/apt/term.log`` — dpkg's terminal output per apt run, between ``Log started:`` and
    ``Log ended:``: each ``dpkg: error processing package X`` / ``archive X`` names a package dpkg
    could not process (the report lists them; counts come from history.log).
``/var/log/dpkg.log`` — **the count of updates apt did not make**: a ``startup archives
    install`` run is ``dpkg -i`` (apt unpacks with ``--unpack`` and configures apart). An
    ``upgrade P old new`` in such a run is an update; it succeeded when P reaches
    ``status installed P new``, and failed when P goes back to its old version, is removed,
    or is left half-installed/half-configured/unpacked when the run ends (the next
    ``startup``, or ``settle`` after its last line). Runs of apt are skipped at C speed.
``unattended-upgrades.log`` — the result of each unattended-upgrades run (``All upgrades
    installed``, ``Installing the upgrades failed!``, ``Apt returned an error, exiting``, ``No
    packages found that can be upgraded unattended``) for
    ``normagent_updates_unattended_runs_total``; its updates are counted from history.log.

Security or not: a package version listed in ``settings.security_packages`` (the collector adds
every version apt's security lists hold, see ``collectors.py``) is a security update; an update
unattended-upgrades made whose version is no longer listed follows ``settings.unattended``
(resolved by the collector; ``"auto"`` left unresolved counts as other).

Times without a zone (all four files) are the host's local time (``ParseContext.tz``).
``Requested-By:`` (a user name) and command lines are read for nothing but the word
``unattended-upgrade`` and never stored.

Imports only ``normagent`` (the public API) and the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from normagent import digests
from normagent import Count, Event, JSONValue, LogBlock, ParseContext, ParseProblem, ParseResult, Rollup, TextBlock, strptime

from .settings import SETTLE
from .vocab import (
    DPKG_ERRORS,
    TRANSACTION,
    UNATTENDED_RUNS,
    is_security,
    outcome_observations,
    package_set,
)

MAX_PROBLEMS = 100  # per block: enough to find a damaged file, never a flood
MAX_NAMES = 200  # package names one apt run keeps for the report; beyond, counts only
MAX_OPEN = 5000  # dpkg -i updates waiting for their result; beyond, the oldest is settled
SNIFF_LINES = 200

_HISTORY_TAG = re.compile(
    rb"^(Start-Date|Commandline|Requested-By|Comment|Install|Reinstall|Upgrade|Downgrade|Remove|Purge|Disappeared|Error|End-Date): ?"
)
_TERM = re.compile(rb"^Log (started|ended): \d{4}-\d\d-\d\d")
_DPKG = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (?:startup|install|upgrade|remove|purge|configure|trigproc|status|conffile) ")
_DPKG_STARTUP = re.compile(rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) startup (\S+) (\S+)[ \t\r]*$")
_UNATTENDED = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?:DEBUG|INFO|WARNING|ERROR|CRITICAL) ")

# history.log: "pkg:arch (old, new)" in Upgrade lines; the package list has commas inside
# parentheses, so entries are matched, not split.
_UPGRADE_ENTRY = re.compile(r"([A-Za-z0-9][A-Za-z0-9.+-]*)(?::([A-Za-z0-9_-]+))? \(([^,()\s]+), ([^,()\s]+)\)")
_TERM_ERROR = re.compile(r"^dpkg: error processing (package|archive) (\S+)")

FORMATS = ("history", "term", "dpkg", "unattended")


def parse_apt_logs(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """apt's history and terminal logs, dpkg's log and unattended-upgrades' log (see the module)."""
    if not isinstance(block, TextBlock):
        return ParseResult(ignored=len(block.records), carry=ctx.carry)
    carry = ctx.carry if isinstance(ctx.carry, dict) else {}
    fmt = carry.get("f") if carry.get("f") in FORMATS else sniff(block.data)
    if fmt is None:
        # Not one of apt's logs (normagent parse runs every parser over every input).
        return ParseResult(ignored=block.line_count, carry=None if ctx.final else ctx.carry)
    if fmt == "history":
        return _History(ctx, carry).parse(block)
    if fmt == "term":
        return _parse_term(block, ctx, carry)
    if fmt == "dpkg":
        return _Dpkg(ctx, carry).parse(block)
    return _parse_unattended(block, ctx)


def sniff(data: bytes) -> str | None:
    """The format of a log from its first recognisable line, or None."""
    for n, line in enumerate(data.split(b"\n", SNIFF_LINES)):
        if n >= SNIFF_LINES:
            break
        if _DPKG.match(line):
            return "dpkg"
        if _UNATTENDED.match(line):
            return "unattended"
        if _TERM.match(line):
            return "term"
        if _HISTORY_TAG.match(line) and line.startswith((b"Start-Date:", b"End-Date:", b"Commandline:", b"Upgrade:")):
            return "history"
    return None


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, line without its end) of each line of a block."""
    start = 0
    size = len(data)
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        yield start, data[start:end].rstrip(b"\r")
        start = end + 1


def local_time(text: str, ctx: ParseContext) -> datetime | None:
    """``2026-11-20  06:25:12`` or ``2026-11-20 06:25:12`` (local time, no zone) as aware UTC."""
    try:
        naive = strptime(" ".join(text.split()), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return naive.replace(tzinfo=ctx.tz).astimezone(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _from_iso(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _settle_after(ctx: ParseContext) -> timedelta:
    value = getattr(ctx.settings, "settle", SETTLE)
    return value if isinstance(value, timedelta) else SETTLE


def _security(ctx: ParseContext) -> frozenset[str]:
    entries = getattr(ctx.settings, "security_packages", ())
    return package_set(tuple(entries)) if entries else frozenset()


def _problem(result: ParseResult, offset: int, reason: str) -> None:
    result.unparsed += 1
    if len(result.problems) < MAX_PROBLEMS:
        result.problems.append(ParseProblem(offset, reason))


def _example(result: ParseResult, line: bytes, ctx: ParseContext) -> None:
    if len(result.examples) < ctx.examples:
        result.examples.append(line.decode("utf-8", "replace"))


# --------------------------------------------------------------------------------------------
# history.log


class _History:
    """One block of history.log; the open stanza (if any) lives in ``carry["s"]``."""

    def __init__(self, ctx: ParseContext, carry: dict[str, Any]) -> None:
        self.ctx = ctx
        self.security = _security(ctx)
        self.unattended = getattr(ctx.settings, "unattended", "auto")
        self.stanza = _stanza(carry.get("s"))
        self.result = ParseResult()

    def parse(self, block: TextBlock) -> ParseResult:
        result = self.result
        for offset, raw in _lines(block.data):
            if not raw.strip():
                result.ignored += 1
                continue
            match = _HISTORY_TAG.match(raw)
            if match is None:
                _problem(result, offset, "not a line of apt's history log")
                _example(result, raw, self.ctx)
                continue
            tag = match.group(1).decode()
            value = raw[match.end() :].decode("utf-8", "replace").strip()
            self._line(tag, value, offset, raw)
        if self.ctx.final:
            result.carry = None  # a run still open at the end of the input: neither ended nor counted
        elif self.stanza is None:
            result.carry = {"f": "history"}
        else:
            result.carry = {"f": "history", "s": self.stanza}
        return result

    stanza: dict[str, Any] | None

    def _open(self) -> dict[str, Any]:
        if self.stanza is None:
            # Lines of a stanza whose start was not read (the file was first read from its end).
            self.stanza = {"start": None, "uu": False, "err": False, "n": {}, "names": [], "more": 0}
        return self.stanza

    def _line(self, tag: str, value: str, offset: int, raw: bytes) -> None:
        result = self.result
        if tag == "Start-Date":
            when = local_time(value, self.ctx)
            if when is None:
                _problem(result, offset, "Start-Date is not a date")
                _example(result, raw, self.ctx)
                return
            if self.stanza is not None:
                self._close(None, interrupted=True)
            self.stanza = {"start": _iso(when), "uu": False, "err": False, "n": {}, "names": [], "more": 0}
            result.ignored += 1
        elif tag == "Commandline":
            program = value.split(" ", 1)[0].rsplit("/", 1)[-1]
            self._open()["uu"] = program.startswith("unattended-upgrade")
            result.ignored += 1
        elif tag == "Upgrade":
            entries = _UPGRADE_ENTRY.findall(value)
            if not entries:
                _problem(result, offset, "Upgrade line without a package list")
                _example(result, raw, self.ctx)
                return
            stanza = self._open()
            for name, _arch, _old, new in entries:
                kind = self._kind(name, new, bool(stanza["uu"]))
                stanza["n"][kind] = stanza["n"].get(kind, 0) + 1
                if len(stanza["names"]) < MAX_NAMES:
                    stanza["names"].append([name, kind])
                else:
                    stanza["more"] += 1
            result.parsed += 1
        elif tag == "Error":
            self._open()["err"] = True
            result.parsed += 1
        elif tag == "End-Date":
            when = local_time(value, self.ctx)
            if when is None:
                _problem(result, offset, "End-Date is not a date")
                _example(result, raw, self.ctx)
                return
            self._open()
            self._close(when, interrupted=False)
            result.parsed += 1
        else:
            # Requested-By, Comment, Install, Reinstall, Downgrade, Remove, Purge, Disappeared:
            # understood, and no update.
            self._open()
            result.ignored += 1

    def _kind(self, name: str, version: str, unattended: bool) -> str:
        if is_security(name, version, self.security):
            return "security"
        if unattended and self.unattended == "security":
            return "security"
        return "other"

    def _close(self, end: datetime | None, *, interrupted: bool) -> None:
        stanza = self.stanza
        self.stanza = None
        if stanza is None:
            return
        start = _from_iso(stanza.get("start"))
        when = end or start
        if when is None:
            return
        result = "failure" if interrupted or stanza.get("err") else "success"
        counts = {(kind, result): float(n) for kind, n in dict(stanza.get("n", {})).items()}
        names = [(str(name), str(kind), result) for name, kind in stanza.get("names", [])]
        day = when.date()
        self.result.observations += outcome_observations(counts, names, day, when)
        digest = digests.sha1("|".join(n for n, _, _ in names).encode(), usedforsecurity=False).hexdigest()[:10]
        self.result.observations.append(
            Event(
                TRANSACTION,
                when,
                f"apt:{stanza.get('start') or _iso(when)}:{digest}",
                {
                    "source": "apt",
                    "result": "interrupted" if interrupted else result,
                    "security": int(dict(stanza.get("n", {})).get("security", 0)),
                    "other": int(dict(stanza.get("n", {})).get("other", 0)),
                    "unattended": bool(stanza.get("uu")),
                    "started": stanza.get("start"),
                },
            )
        )


def _stanza(value: Any) -> dict[str, Any] | None:
    """An open stanza from a carry, its fields checked (a carry may come from an older version)."""
    if not isinstance(value, dict):
        return None
    counts = value.get("n")
    names = value.get("names")
    start = value.get("start")
    return {
        "start": start if isinstance(start, str) and _from_iso(start) is not None else None,
        "uu": value.get("uu") is True,
        "err": value.get("err") is True,
        "n": {k: int(v) for k, v in counts.items() if k in ("security", "other") and isinstance(v, int)} if isinstance(counts, dict) else {},
        "names": [list(n) for n in names if isinstance(n, list) and len(n) == 2 and all(isinstance(x, str) for x in n)]
        if isinstance(names, list)
        else [],
        "more": value.get("more") if isinstance(value.get("more"), int) else 0,
    }


# --------------------------------------------------------------------------------------------
# term.log


def _parse_term(block: TextBlock, ctx: ParseContext, carry: dict[str, Any]) -> ParseResult:
    """Inside a session every line is dpkg's chatter (ignored) but its error lines."""
    result = ParseResult()
    inside = bool(carry.get("in"))
    started = _from_iso(carry.get("t"))
    for offset, raw in _lines(block.data):
        match = _TERM.match(raw)
        if match is not None:
            inside = match.group(1) == b"started"
            stamp = local_time(raw.split(b": ", 1)[1].decode("ascii", "replace"), ctx)
            started = stamp if inside else None
            result.ignored += 1
            continue
        if not inside:
            if raw.strip():
                _problem(result, offset, "a line outside a Log started / Log ended session")
                _example(result, raw, ctx)
            else:
                result.ignored += 1
            continue
        error = _TERM_ERROR.match(raw.decode("utf-8", "replace"))
        if error is None:
            result.ignored += 1
            continue
        what, subject = error.groups()
        name = subject.rstrip(":(")
        if what == "archive":  # a .deb file: /var/cache/apt/archives/name_1.0_amd64.deb
            name = name.rsplit("/", 1)[-1].split("_", 1)[0]
        when = started or ctx.now
        result.observations.append(Rollup(DPKG_ERRORS, when.date(), name, 1, when, when))
        result.parsed += 1
    result.carry = None if ctx.final else {"f": "term", "in": inside, "t": _iso(started) if started else None}
    return result


# --------------------------------------------------------------------------------------------
# dpkg.log


class _Dpkg:
    """One block of dpkg.log. ``carry``: the run in force (``install`` for dpkg -i, ``other``)
    and the updates of a dpkg -i run still waiting for their result:
    ``open[package] = [old, new, last line's time as written, last status]``."""

    def __init__(self, ctx: ParseContext, carry: dict[str, Any]) -> None:
        self.ctx = ctx
        self.security = _security(ctx)
        self.run = carry.get("run") if carry.get("run") in ("install", "other") else None
        opened = carry.get("open")
        # A carry from an older version, or edited by hand: keep the entries that make sense.
        self.open: dict[str, list[Any]] = {
            str(k): list(v)
            for k, v in (opened.items() if isinstance(opened, dict) else ())
            if isinstance(v, list) and len(v) == 4 and all(isinstance(x, str) for x in v)
        }
        self.result = ParseResult()
        self.checked = False  # every line of the block was checked by _find_malformed

    def parse(self, block: TextBlock) -> ParseResult:
        result = self.result
        data = block.data
        # Every line of dpkg.log starts with the year: a line that does not is damaged, and only
        # then is each line checked in full (the lines of dpkg -i runs always are, below).
        self.checked = data.count(b"\n2") + (data[:1] == b"2") < block.line_count
        if self.checked:
            self._find_malformed(data)
        # Runs start at "startup" lines. Only dpkg -i runs (and the lines after a run that left
        # updates open) are read line by line; the startup lines of dpkg -i runs are found with
        # bytes.find (memchr speed), and apt's runs between them are not looked at at all.
        pos = 0
        if self.run == "install" or self.open:
            pos = self._read_run(data, 0)
        while pos < len(data):
            if self.run == "install":  # the run read last was followed by another dpkg -i run
                pos = self._read_run(data, pos)
                continue
            at = data.find(b" startup archives install", pos)
            if at < 0:
                last = _startup_at(data, data.rfind(b" startup ", pos))
                if last is not None:
                    self._settle_all()
                    self.run = last[2]
                break
            found = _startup_at(data, at)
            if found is None:
                pos = at + 1
                continue
            self._settle_all()
            self.run = "install"
            pos = self._read_run(data, found[1])
        if not data or self.ctx.final:
            # The driver's call at the end of a run (everything written has been read) or the
            # end of an input: a run that has been quiet long enough is over. Never in the middle
            # of a catch-up, where the next block may hold the rest of the run.
            self._settle_quiet()
        result.ignored = block.line_count - result.parsed - result.unparsed
        if self.ctx.final:
            result.carry = None
        elif self.open:
            opened: dict[str, JSONValue] = {k: list(v) for k, v in self.open.items()}
            result.carry = {"f": "dpkg", "run": self.run, "open": opened}
        else:
            result.carry = {"f": "dpkg", "run": self.run}
        return result

    def _read_run(self, data: bytes, begin: int) -> int:
        """Read the run going on at ``begin`` up to the next startup line; the run that one
        starts is in force after it. Returns where reading stopped."""
        pos = begin
        while True:
            at = data.find(b" startup ", pos)
            if at < 0:
                self._read(data, begin, len(data))
                return len(data)
            found = _startup_at(data, at)
            if found is None:
                pos = at + 1
                continue
            self._read(data, begin, found[0])
            self._settle_all()
            self.run = found[2]
            return found[1]

    def _find_malformed(self, data: bytes) -> None:
        for offset, raw in _lines(data):
            if not _DPKG.match(raw):
                _problem(self.result, offset, "not a line of dpkg's log" if raw.strip() else "an empty line")
                _example(self.result, raw, self.ctx)

    def _read(self, data: bytes, begin: int, end: int) -> None:
        for offset, raw in _lines(data[begin:end]):
            if not _DPKG.match(raw):
                if not self.checked:  # else _find_malformed counted it already
                    _problem(self.result, begin + offset, "not a line of dpkg's log")
                    _example(self.result, raw, self.ctx)
                continue
            parts = raw.split(b" ")
            when_text = (parts[0] + b" " + parts[1]).decode()
            action = parts[2]
            if action == b"upgrade" and len(parts) >= 6:
                package, old, new = (p.decode("utf-8", "replace") for p in parts[3:6])
                if self.run == "install" and old != new:
                    if package in self.open:  # a new attempt: the one before did not succeed
                        self._decide(package, "failure")
                    self.open[package] = [old, new, when_text, "upgrade"]
                    self.result.parsed += 1
                    while len(self.open) > MAX_OPEN:
                        oldest = next(iter(self.open))
                        self._decide(oldest, _verdict(self.open[oldest][3]))
            elif action == b"status" and len(parts) >= 6:
                state, package, version = (p.decode("utf-8", "replace") for p in parts[3:6])
                entry = self.open.get(package)
                if entry is None:
                    continue
                entry[2] = when_text
                if state == "installed" and version == entry[1]:
                    self._decide(package, "success")
                elif (state == "installed" and version == entry[0]) or state in ("not-installed", "config-files"):
                    self._decide(package, "failure")  # rolled back to the old version, or removed
                else:
                    entry[3] = state
            elif action in (b"remove", b"purge") and len(parts) >= 5:
                package = parts[3].decode("utf-8", "replace")
                if package in self.open:
                    self.open[package][2] = when_text
                    self._decide(package, "failure")

    def _settle_all(self) -> None:
        """A new run starts: every update of the run before has its result by now."""
        for package in list(self.open):
            self._decide(package, _verdict(self.open[package][3]))

    def _settle_quiet(self) -> None:
        """Updates whose run has written nothing for ``settle`` (all of them at the end of an input)."""
        if not self.open:
            return
        limit = self.ctx.now - _settle_after(self.ctx)
        for package in list(self.open):
            last = local_time(str(self.open[package][2]), self.ctx)
            if self.ctx.final or last is None or last <= limit:
                self._decide(package, _verdict(self.open[package][3]))

    def _decide(self, package: str, result: str) -> None:
        old, new, when_text, _state = self.open.pop(package)
        when = local_time(str(when_text), self.ctx) or self.ctx.now
        name = package.split(":", 1)[0]
        kind = "security" if is_security(name, str(new), self.security) else "other"
        self.result.observations += outcome_observations({(kind, result): 1.0}, [(name, kind, result)], when.date(), when)
        self.result.observations.append(
            Event(
                TRANSACTION,
                when,
                f"dpkg:{package}:{old}:{new}",
                {"source": "dpkg", "result": result, "security": int(kind == "security"), "other": int(kind == "other"), "package": name},
            )
        )


def _verdict(state: Any) -> str:
    """The result of a dpkg -i update whose run ended with the package in ``state``: configured
    and only waiting for triggers is a success; half-installed, half-configured or merely
    unpacked (dpkg did not configure it) is a failure."""
    return "success" if state in ("triggers-pending", "triggers-awaited") else "failure"


def _startup_at(data: bytes, at: int) -> tuple[int, int, str] | None:
    """(line start, start of the next line, "install" or "other") of the startup line that
    holds offset ``at``, or None if that line is not a startup line."""
    if at < 0:
        return None
    begin = data.rfind(b"\n", 0, at) + 1
    end = data.find(b"\n", at)
    end = len(data) if end < 0 else end
    match = _DPKG_STARTUP.match(data, begin, end)
    if match is None:
        return None
    return begin, end + 1, "install" if match.group(2, 3) == (b"archives", b"install") else "other"


# --------------------------------------------------------------------------------------------
# unattended-upgrades.log


_UU_OUTCOMES = (
    ("All upgrades installed", "success"),
    ("Installing the upgrades failed!", "failure"),
    ("Apt returned an error, exiting", "failure"),
    ("No packages found that can be upgraded unattended", "nothing"),
)


def _parse_unattended(block: TextBlock, ctx: ParseContext) -> ParseResult:
    """Each run's outcome; other lines (and the continuation lines of a message) are ignored."""
    result = ParseResult(carry={"f": "unattended"})  # None at the end of an input: see below
    counts: dict[str, float] = {}
    for _, raw in _lines(block.data):
        match = _UNATTENDED.match(raw)
        if match is None:
            result.ignored += 1
            continue
        message = raw[match.end() :].decode("utf-8", "replace")
        for text, outcome in _UU_OUTCOMES:
            if message.startswith(text):
                counts[outcome] = counts.get(outcome, 0.0) + 1
                result.parsed += 1
                break
        else:
            result.ignored += 1
    result.observations = [Count(UNATTENDED_RUNS, {"result": outcome}, n) for outcome, n in sorted(counts.items())]
    if ctx.final:
        result.carry = None
    return result
