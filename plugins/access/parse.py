"""Pure parsers for Linux authentication logs: auth.log / secure lines and the messages inside them.

``classify(program, message)`` decides what one authentication message means under the counting
rules of docs/access-counting-rules.md; the journald parser (journal.py) calls it with a journal
entry's identifier and MESSAGE. ``parse_auth_lines(block, ctx)`` runs it over a ``TextBlock`` of
syslog lines (RFC 3164 with or without host, rsyslog's RFC 3339, RFC 5424, host-only journal
renderings).

Speed: a Python call per line is what makes fail2ban slow, and a ``re`` alternation of literals
scans at about 2 ns/byte. So the block is searched with ``bytes.find`` for six *rare bytes*
(memchr, tens of GB/s) and, at each hit, the bytes around it are compared with the anchor text
(``Failed `` at an ``F``, ``; logname=`` at a ``;``, ...): Python runs per hit of a rare byte,
never per line. Only lines holding an anchor are looked at; pam_unix lines that repeat a verdict
another line counts are dropped at the byte level; sshd's plain ``Failed``/``Accepted`` lines
with rsyslog's usual stamps are matched whole by one bytes pattern as they are found and
aggregated without being decoded (``_Quick``); the other candidates have their stamp and tag cut
in bytes (``_LINE_HEAD``) and only their message decoded for ``classify``. Each shortcut takes
only shapes on which the general way (``split_line`` + ``classify``) gives the same answer, and
property tests hold them to it. Counts are aggregated per block (see tally.py).

The scans, the fast lines' aggregation and the other candidates' stamp and tag cut
(``scan_lines``) also exist compiled, in ``_candidates.c``: pip builds it where a compiler is
there, and the parser then uses it; ``scan_lines`` stays the reference (tests hold the two to
the same answer) and the fallback. The compiled scan hands Python one row per distinct (day,
account) and (day, address), not one match per line.

Pure: no I/O, no clock, no state between calls (pseudonyms are memoised, see tally.py). Imports
only ``normagent`` and the standard library.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import Final, TypeAlias

from normagent import LogBlock, ParseContext, ParseResult, TextBlock

from .tally import FAILED_BY_ACCOUNT, FAILED_BY_NETWORK, SUCCESS_BY_NETWORK, BatchTally, Tally

# ---------------------------------------------------------------------------------------------
# Outcomes of classify(): a verdict tuple, or one of two markers.

IGNORED: Final = "ignored"  # understood, and deliberately not counted (or not about logins at all)
UNPARSED: Final = "unparsed"  # looks like a login message of a known program, but no rule understands it

# (kind, source, label, n, account, address); kind is fail | offer | lockout | reset | success.
# label: the reason of a fail, the kind of a reset, the client's port of an offer or a success
# (sshd: an offer counts only if its session does not log in, rule S11).
Verdict: TypeAlias = "tuple[str, str, str, int, str | None, str | None]"
Outcome: TypeAlias = "Verdict | str"

# Services whose own message carries the verdict; pam_unix's lines for them repeat an attempt
# already counted (docs/access-counting-rules.md, rule P1).
OWN_VERDICT = frozenset({"sshd", "sudo", "su", "login"})

_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()  # day 0 of Unix time, for Clock.iso

_FAMILY = {
    "sshd": "sshd",
    "sshd-session": "sshd",
    "sshd-auth": "sshd",
    "sudo": "sudo",
    "sudo-i": "sudo",
    "su": "su",
    "su-l": "su",
    "login": "login",
    "remote": "login",
    "passwd": "passwd",
    "chpasswd": "chpasswd",
    "newusers": "chpasswd",
    "usermod": "usermod",
    "runuser": "runuser",
    "runuser-l": "runuser",
}


def family(program: str) -> str:
    """The service family of a program name or PAM service name (``gdm-password`` -> ``gdm``)."""
    name = program.lower()
    fam = _FAMILY.get(name)
    if fam is not None:
        return fam
    if name.startswith("gdm"):
        return "gdm"
    return "pam"


# ---------------------------------------------------------------------------------------------
# Message rules. Each regex is anchored at the start of the message and bounded: a 1 MB line
# costs a linear scan at worst.

_REPEATED = re.compile(r"message repeated (\d{1,9}) times?: \[ ?(.*?)\]?\s*$", re.S)

# sshd: "Failed <method> for [invalid user ]<user> from <addr> port <n> ssh2[: info]". A valid
# user name has no spaces; an invalid one may hold anything, including an injected " from x"
# (fail2ban's test lines), so it is matched lazily and the tail after "ssh2" must not hold " from ".
_SSHD_FAILED = re.compile(
    r"(?:error: )?Failed (?P<method>\S+) for "
    r"(?:(?P<inv>invalid user |illegal user )(?P<iuser>.*?)|(?P<user><invalid username>|\S*)) "
    r"from (?P<addr>\S+?)(?: port (?P<port>\d+))?(?: ssh\d?)?"
    r"(?(inv)(?:: (?!.* from ).*)?|(?:: .*)?)(?: \[preauth\])?\s*$",
    re.S,
)
_SSHD_ACCEPTED = re.compile(r"Accepted (?P<method>\S+) for (?P<user>\S+) from (?P<addr>\S+?)(?: port (?P<port>\d+)|\s|$)")
# Methods whose refusal is a key the client offered (RFC 4252 section 7: usually a query, no
# signature), not a secret guessed: rule S11.
KEY_METHODS = frozenset({"publickey", "hostbased"})
# Old OpenSSH and macOS builds log PAM's verdict themselves, and no "Failed" line follows.
_SSHD_PAM = re.compile(
    r"(?:error: |fatal: )?PAM: (?P<text>.+?) for (?P<ill>illegal user |invalid user )?(?P<user>.*?) "
    r"from (?P<addr>\S+)(?: via \S+)?\s*$",
    re.S,
)

# pam_unix & co: "pam_unix(svc:type): text", "(pam_unix) text", "pam_unix: text", "PAM <n> more ..."
_PAM = re.compile(
    r"(?:(?P<mod>pam_\w+)(?:\((?P<svc>[^:)\s]*)(?::\w+)?\))?:? |\((?P<mod2>pam_\w+)\) |(?P<end>PAM )(?=\d))(?P<text>.*)",
    re.S,
)
_PAM_FAILURE = re.compile(r"(?:(?P<n>\d{1,9}) more )?authentication failures?; (?P<kv>.*)", re.S)
_FAILLOCK = re.compile(r"Consecutive login failures for user (?P<user>.*?) account temporarily locked\s*$", re.S)
_TALLY = re.compile(r"user (?P<user>.*?) \(\d+\) tally (?P<tally>\d{1,9}), deny (?P<deny>\d{1,9})\s*$", re.S)
_CHAUTHTOK = re.compile(r"password changed for (?P<user>.*?)\s*$", re.S)

# sudo: "<user> : <what> ; TTY=... ; PWD=... ; USER=... ; COMMAND=..."
_SUDO = re.compile(r"\s*(?P<user>.*?) : (?P<what>.*?) ; (?:TTY|PWD|USER|GROUP|TSID|ENV|COMMAND)=", re.S)
_SUDO_TRIES = re.compile(r"(\d{1,9}) incorrect password attempts?")
_SUDO_REFUSED = ("user NOT in sudoers", "user NOT authorized on host", "command not allowed", "user not allowed")

# su (util-linux, shadow, ancient)
_SU = re.compile(
    r"(?:FAILED SU \((?:to )?(?P<a>[^)]*)\) \S* on |FAILED su for (?P<b>\S+) by |BAD SU \S+ to (?P<c>\S+) on )"
)
# login: util-linux and shadow formats
_LOGIN = re.compile(
    r"(?:FAILED LOGIN (?:\d+ |SESSION )FROM (?P<from1>.*?) FOR (?P<u1>.*), (?P<why1>[^,]*?)"
    r"|TOO MANY LOGIN TRIES \(\d+\) FROM (?P<from2>.*?) FOR (?P<u2>.*), (?P<why2>[^,]*?)"
    r"|FAILED LOGIN \(\d+\)(?P<from3>.*?) FOR '(?P<u3>.*)', (?P<why3>.*?)"
    r"|TOO MANY LOGIN TRIES \(\d+\)(?P<from4>.*?) FOR '(?P<u4>.*)')\s*$",
    re.S,
)
_LOGIN_FROM = re.compile(r" from '([^']*)'")
# util-linux's FROM names the remote host (``login -h``, from telnetd) or else the terminal, as
# its /dev path without "/dev/" (``tty1``, ``pts/0``, ``ttyS0``, ``console``), or ``<unknown>``.
# A host name has no "/"; a host named like a terminal is taken for one.
_LOGIN_TERMINAL = re.compile(r"[^/]*/.*|tty[\w.-]*|hvc\d*|xvc\d*|console|<unknown>")
_PASSWD_SHADOW = re.compile(r"password for '(?P<user>[^']*)' changed by '(?P<by>[^']*)'")
_USERMOD = re.compile(r"change user '(?P<user>[^']*)' password\s*$")

# pam_strerror() texts login appends, and what they mean.
_PAM_REASON = {
    "Authentication failure": "bad_password",
    "Maximum number of tries exceeded": "bad_password",
    "User not known to the underlying authentication module": "unknown_user",
    "Authentication token is no longer valid; new one required": "password_expired",
    "Authentication token expired": "password_expired",
    "User account has expired": "expired",
    "Permission denied": "not_allowed",
}


def classify(program: str, message: str) -> Outcome:
    """What one authentication message means under the counting rules.

    Args:
        program: The syslog tag or journald ``SYSLOG_IDENTIFIER`` (``sshd``, ``sshd-session``,
            ``sudo``, ``gdm-password`` ...), without pid.
        message: The message text after the tag.

    Returns:
        A verdict ``(kind, source, reason_or_kind, n, account, address)``, ``IGNORED`` for a
        message that is understood but counts nothing, or ``UNPARSED`` for a login message of a
        known shape that no rule understands.
    """
    if message[:7] == "Failed " and _FAMILY.get(program) == "sshd":
        # The bulk of a server under attack: straight to sshd's rule.
        fast = _sshd_failed_plain(message)
        if fast is not None:
            return fast
    msg = message.lstrip() if message[:1] == " " else message
    if msg.startswith("[ID "):  # Solaris: "[ID 800047 auth.info] Failed ..."
        msg = msg.split("] ", 1)[1] if "] " in msg else msg
    if msg.startswith("message repeated "):
        m = _REPEATED.match(msg)
        if m is None:
            return UNPARSED
        if m.group(2).lstrip().startswith("message repeated "):
            return UNPARSED  # rsyslog never nests them; do not recurse on made-up input
        inner = classify(program, m.group(2))
        if isinstance(inner, str):
            return inner
        kind, source, label, n, account, address = inner
        return (kind, source, label, n * int(m.group(1)), account, address)
    if "(" in program:
        # "su(pam_unix)": the oldest PAM style names the module in the tag; "polkitd(authority=local)"
        # is just a decorated name.
        base, _, sub = program.partition("(")
        sub = sub.rstrip(")")
        if sub.startswith("pam_") and not msg.startswith(("pam_", "(pam_", "PAM ")):
            msg = f"({sub}) {msg}"
        program = base
    fam = family(program)
    first = msg[:1]
    if first in ("p", "(") or msg.startswith("PAM "):
        pam = _classify_pam(fam, msg)
        if pam is not None:
            return pam
    if fam == "sshd":
        return _classify_sshd(msg)
    if fam == "sudo":
        return _classify_sudo(msg)
    if fam == "su":
        return _classify_su(msg)
    if fam == "login":
        return _classify_login(msg)
    if fam == "passwd":
        m = _PASSWD_SHADOW.match(msg)
        if m is not None:
            kind = "change" if m["user"] == m["by"] else "reset"
            return ("reset", "passwd", kind, 1, m["user"], None)
    if fam == "usermod":
        m = _USERMOD.match(msg)
        if m is not None:
            return ("reset", "usermod", "reset", 1, m["user"], None)
    if fam == "runuser" and msg.startswith("FAILED RUNUSER"):
        return IGNORED  # runuser asks no password: a refused session, not a login attempt
    # Not a program whose messages we read: "Failed to start ..." from systemd is no login.
    return IGNORED


def _looks_like_login(msg: str) -> bool:
    return msg.startswith(("Failed ", "FAILED ", "TOO MANY LOGIN", "BAD SU"))


def _classify_pam(fam: str, msg: str) -> Outcome | None:
    m = _PAM.match(msg)
    if m is None:
        return None
    svc = m["svc"]
    source = family(svc) if svc else fam
    text = m["text"]
    mod = m["mod"] or m["mod2"] or ""
    failure = _PAM_FAILURE.match(text)
    if failure is not None:
        if mod not in ("pam_unix", "") and m["end"] is None:
            # pam_sss, pam_ldap ...: stacked after pam_unix, which has already logged the attempt.
            return IGNORED
        if source in OWN_VERDICT:
            return IGNORED
        user, rhost = _pam_user_rhost(failure["kv"])
        n = int(failure["n"]) if failure["n"] else 1
        reason = "bad_password" if user is not None else "unknown_user"
        return ("fail", source, reason, n, user, rhost)
    if text.startswith("check pass; user unknown"):
        return IGNORED
    if mod == "pam_faillock":
        lock = _FAILLOCK.match(text)
        if lock is not None:
            return ("lockout", source, "", 1, lock["user"], None)
        return IGNORED if text.startswith(("User unknown", "Authentication failure")) else UNPARSED
    if mod in ("pam_tally2", "pam_tally"):
        tally = _TALLY.match(text)
        if tally is None:
            return UNPARSED
        # Logged on every attempt while the tally exceeds deny; the first such line is the lockout.
        if int(tally["tally"]) == int(tally["deny"]) + 1:
            return ("lockout", source, "", 1, tally["user"], None)
        return IGNORED
    changed = _CHAUTHTOK.match(text)
    if changed is not None:
        if not svc:
            return ("reset", source if source in ("passwd", "chpasswd") else "pam", "unknown", 1, changed["user"], None)
        if source == "passwd":
            return ("reset", "passwd", "unknown", 1, changed["user"], None)
        if source == "chpasswd":
            return ("reset", "chpasswd", "reset", 1, changed["user"], None)
        # An expired password renewed by its owner while logging in (sshd, login, gdm ...).
        reset_source = source if source in ("sshd", "login", "gdm") else "pam"
        return ("reset", reset_source, "change", 1, changed["user"], None)
    return IGNORED


def _pam_user_rhost(kv: str) -> tuple[str | None, str | None]:
    """``user=`` and ``rhost=`` of pam_unix's key=value tail; ``user=`` is last and may hold anything."""
    user = None
    head = kv
    cut = kv.rfind(" user=")
    if cut >= 0 and "rhost=" in kv[:cut]:
        user = kv[cut + 6 :].rstrip() or None
        head = kv[:cut]
    elif kv.startswith("user="):
        user = kv[5:].rstrip() or None
        head = ""
    at = head.rfind("rhost=")
    rhost = head[at + 6 :].split(None, 1)[0] if at >= 0 and head[at + 6 :].strip() else None
    return user, rhost


def _classify_sshd(msg: str) -> Outcome:
    first = msg[:1]
    if first == "F" or msg.startswith("error: Failed "):
        if not msg.startswith(("Failed ", "error: Failed ")):
            return IGNORED
        fast = _sshd_failed_plain(msg)
        if fast is not None:
            return fast
        m = _SSHD_FAILED.match(msg)
        if m is None:
            return UNPARSED
        if m["method"] == "none":
            return IGNORED  # S10: the client's first request, which presents no credential
        if m["inv"] is not None:
            return ("fail", "sshd", "unknown_user", 1, m["iuser"], m["addr"])
        user = m["user"]
        if user == "<invalid username>":
            return ("fail", "sshd", "unknown_user", 1, None, m["addr"])
        if m["method"] in KEY_METHODS:
            return ("offer", "sshd", m["port"] or "", 1, user, m["addr"])
        return ("fail", "sshd", "bad_password", 1, user, m["addr"])
    if first == "A":
        m = _SSHD_ACCEPTED.match(msg)
        if m is not None:
            return ("success", "sshd", m["port"] or "", 1, m["user"], m["addr"])
        return IGNORED
    if "PAM: " in msg[:13]:
        m = _SSHD_PAM.match(msg)
        if m is None:
            return UNPARSED
        unknown = m["ill"] is not None or m["text"].startswith("User not known")
        return ("fail", "sshd", "unknown_user" if unknown else "bad_password", 1, m["user"], m["addr"])
    return IGNORED


def _sshd_failed_plain(msg: str) -> Outcome | None:
    """The common "Failed password for [invalid user ]X from A port N ssh2" without a regex.

    Only for the plain shape (one " from ", ending in "ssh2", no ": info" tail); anything else
    goes to the full pattern, which gives the same answers.
    """
    if not msg.endswith(" ssh2") or msg.count(" from ") != 1 or ": " in msg:
        return None
    head, _, tail = msg.partition(" from ")
    addr, sep, rest = tail.partition(" port ")
    if not sep or " " in addr or not rest[:-5].isdigit():
        return None
    words = head.split(" ", 3)  # Failed, method, for, user part
    if len(words) < 4 or words[0] != "Failed" or words[2] != "for":
        return None
    if words[1] == "none":
        return IGNORED  # S10
    user = words[3]
    if user.startswith(("invalid user ", "illegal user ")):
        return ("fail", "sshd", "unknown_user", 1, user[13:], addr)
    if user == "<invalid username>":
        return ("fail", "sshd", "unknown_user", 1, None, addr)
    if " " in user:
        return None
    if words[1] in KEY_METHODS:
        return ("offer", "sshd", rest[:-5], 1, user, addr)
    return ("fail", "sshd", "bad_password", 1, user, addr)


def _classify_sudo(msg: str) -> Outcome:
    m = _SUDO.match(msg)
    if m is None:
        return IGNORED
    what = m["what"]
    if what.startswith("TTY="):
        return IGNORED  # sudo 1.9's success line starts with TTY=
    tries = _SUDO_TRIES.match(what)
    if tries is not None:
        # The account whose password was refused is the invoking user's own.
        return ("fail", "sudo", "bad_password", int(tries.group(1)), m["user"], None)
    if what.startswith(_SUDO_REFUSED):
        return ("fail", "sudo", "not_allowed", 1, m["user"], None)
    if what.startswith("PAM authentication error"):
        return ("fail", "sudo", "other", 1, m["user"], None)
    if what.startswith(("a password is required", "no password was provided")):
        return IGNORED  # sudo -n without cached credentials: nothing was tried
    return UNPARSED


def _classify_su(msg: str) -> Outcome:
    m = _SU.match(msg)
    if m is None:
        return UNPARSED if _looks_like_login(msg) else IGNORED
    target = m["a"] or m["b"] or m["c"]
    return ("fail", "su", "bad_password", 1, target, None)


def _classify_login(msg: str) -> Outcome:
    m = _LOGIN.match(msg)
    if m is None:
        return UNPARSED if _looks_like_login(msg) else IGNORED
    user = m["u1"] or m["u2"] or m["u3"] or m["u4"] or ""
    why = m["why1"] or m["why2"] or m["why3"] or "Authentication failure"
    reason = _PAM_REASON.get(why.strip(), "other")
    if user in ("UNKNOWN", "(unknown)"):
        reason = "unknown_user" if reason == "bad_password" else reason
    host = m["from1"] or m["from2"]
    if host is not None:  # util-linux
        return ("fail", "login", reason, 1, user, None if _LOGIN_TERMINAL.fullmatch(host) else host)
    remote = _LOGIN_FROM.search(m["from3"] or m["from4"] or "")  # shadow: " on '<tty>'", " from '<host>'"
    return ("fail", "login", reason, 1, user, remote.group(1) if remote else None)


# ---------------------------------------------------------------------------------------------
# Syslog line headers and time stamps

_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

# After the time stamp: "[host ]tag[(sub)][[pid]][]]: message", or "[tag]:? message". The tag
# must end in ":" (or be bracketed), which is what tells "host tag:" from "tag:".
_TAG_SRC = (
    r" *(?:(?P<host>[^\s\[\]]+) )??"
    r"(?:\[(?P<btag>[^\]\s]+)\]:?|(?P<tag>[^\s\[\]:()]+)(?:\((?P<sub>[^)\s]*)\))?(?:\[[^\]\s]*\])?\]?:)"
    r"(?: |$)(?P<msg>.*)"
)
_CLASSIC_SRC = r"(?:(?P<year>\d{4}) )?(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)(?:\.\d+)? "
_ISO_SRC = r"(?P<date>\d{4}-\d\d-\d\d)[T ](?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)(?:[.,]\d+)?(?P<off>Z|[+-]\d\d(?::?\d\d)?)? "
# One match per line: stamp and tag together.
_LINE_CLASSIC = re.compile(_CLASSIC_SRC + _TAG_SRC, re.S)
_LINE_ISO = re.compile(_ISO_SRC + _TAG_SRC, re.S)
_LINE_BARE = re.compile(_TAG_SRC, re.S)
_ISO = re.compile(_ISO_SRC)
_OFFSET = re.compile(r"Z|[+-]\d\d(?::?\d\d)?")
_TWO_DIGITS: Final = frozenset(f"{n:02}" for n in range(100))
# "[host ]tag[(sub)][[pid]][]]" before the ": " of a line, as _TAG_SRC reads it.
_HEAD = re.compile(r"(?:[^\s\[\]]+ )?[^\s\[\]:()]+(?:\([^)\s]*\))?(?:\[[^\]\s]*\])?\]?")
# RFC 5424: "<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG"; an SD-ELEMENT is "[id name="value" ...]"
# (a "]" inside a quoted value should be escaped; some senders do not, so quotes are honoured).
_RFC5424 = re.compile(
    r"<\d{1,3}>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) \S+ \S+ "
    r"(?:-|(?:\[[^\]\s\"]*(?: [^=\s\]]+=\"(?:[^\"\\]|\\.)*\")*\])+) ?(?P<msg>.*)",
    re.S,
)


class Clock:
    """Turns syslog stamps into epoch seconds, caching per hour: a block has few distinct hours.

    RFC 3164 stamps carry no year and no zone: they are local time in ``tz``, in the year that
    puts them at most a day after ``ref`` (the file's modification time), so December lines read
    in January belong to last year.
    """

    __slots__ = ("tz", "ref", "_hours", "hours", "fast")

    def __init__(self, ref: datetime, tz: tzinfo) -> None:
        self.tz = tz
        self.ref = ref
        self._hours: dict[object, float] = {}
        # Epoch of the hour of a stamp's leading text ("Nov 23 07", "2026-11-23T07+01:00"), for
        # split_line's fast path; minutes and seconds are added per line.
        self.hours: dict[str, float] = {}
        # (epoch of the hour, its UTC day or None) by the stamp's bytes, for sshd's fast path.
        self.fast: dict[bytes, tuple[float, int | None] | tuple[None, None]] = {}

    def classic(self, year: str | None, mon: str, day: str, h: str, m: str, s: str) -> float | None:
        key = (year, mon, day, h)
        base = self._hours.get(key)
        if base is None:
            base = self._classic_hour(year, mon, int(day), int(h))
            if base is None:
                return None
            self._hours[key] = base
        return base + int(m) * 60 + int(s)

    def _classic_hour(self, year: str | None, mon: str, day: int, hour: int) -> float | None:
        month = _MONTHS.get(mon)
        if month is None or hour > 23:
            return None
        ref = self.ref.astimezone(self.tz)
        years = (int(year),) if year else (ref.year, ref.year - 1)
        for y in years:
            try:
                local = datetime(y, month, day, hour, tzinfo=self.tz)
            except ValueError:  # Feb 29 in a year without one: try the previous year
                continue
            if year or local - ref <= timedelta(days=1):
                return local.timestamp()
        return None

    def iso(self, date: str, h: str, m: str, s: str, off: str | None) -> float | None:
        key = (date, h, off)
        base = self._hours.get(key)
        if base is None:
            try:
                y, mo, d = int(date[:4]), int(date[5:7]), int(date[8:10])
                # calendar.timegm's arithmetic, without the calendar module;
                # datetime() validates the date
                base = float((datetime(y, mo, d).toordinal() - _EPOCH_ORDINAL) * 86_400 + int(h) * 3_600)
            except ValueError:
                return None
            if off is None:
                base = datetime(y, mo, d, int(h), tzinfo=self.tz).timestamp()
            elif off != "Z":
                sign = -1 if off[0] == "+" else 1
                digits = off[1:].replace(":", "")
                base += sign * (int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60)
            self._hours[key] = base
        return base + int(m) * 60 + int(s)

    def iso_text(self, text: str) -> float | None:
        m = _ISO.match(text + " ")
        if m is None:
            return None
        return self.iso(m["date"], m["h"], m["m"], m["s"], m["off"])


def split_line(line: str, clock: Clock) -> tuple[float | None, str, str] | None:
    """(epoch or None, program, message) of one syslog line, or None if it has no tag.

    A ``program(sub)`` tag such as ``sshd(pam_unix)`` comes back as ``sshd(pam_unix)`` so the
    classifier can read the old PAM style. A line without a time stamp (a host-only journal
    rendering) has no time: the caller dates it.

    The two shapes rsyslog writes on Debian and RHEL (``Nov 23 07:25:53 host tag[pid]: msg`` and
    ``2026-11-23T07:25:53.123456+01:00 host tag[pid]: msg``) are cut by position and ``str``
    methods, three times faster than the general pattern; anything else goes to the patterns
    (``split_line_slow``), which give the same answer for those two shapes.

    NUL bytes are padding, never text (G5): a crash or power loss leaves a run of them where the
    file's last writes were, glued to the first line written after it. A line starts after its
    last NUL; what comes before it is a line the crash cut.
    """
    if "\x00" in line:
        line = line[line.rfind("\x00") + 1 :]
    n = len(line)
    when: float | None
    if n > 33 and line[4] == "-" and line[10] == "T" and line[13] == ":" and line[16] == ":":
        space = line.find(" ", 19)
        # The offset rsyslog writes is "+01:00"; anything else ("Z", "+0100", none) takes the patterns.
        if space < 25 or line[space - 3] != ":" or line[space - 6] not in "+-":
            return split_line_slow(line, clock)
        off = line[space - 6 : space]
        fraction = line[19 : space - 6]
        if line[14:16] not in _TWO_DIGITS or line[17:19] not in _TWO_DIGITS or (
            fraction and not (len(fraction) > 1 and fraction[0] in ".," and fraction[1:].isdecimal())
        ):
            return split_line_slow(line, clock)
        key = line[:13] + off
        base = clock.hours.get(key)
        if base is None:
            if not _OFFSET.fullmatch(off):
                return split_line_slow(line, clock)
            when = clock.iso(line[:10], line[11:13], line[14:16], line[17:19], off)
            if when is None:
                return split_line_slow(line, clock)
            clock.hours[key] = when - int(line[14:16]) * 60 - int(line[17:19])
        else:
            when = base + int(line[14:16]) * 60 + int(line[17:19])
        rest = space + 1
    elif n > 16 and line[3] == " " and line[6] == " " and line[9] == ":" and line[12] == ":" and line[15] == " ":
        if line[7:9] not in _TWO_DIGITS or line[10:12] not in _TWO_DIGITS or line[13:15] not in _TWO_DIGITS:
            return split_line_slow(line, clock)
        key = line[:9]
        base = clock.hours.get(key)
        if base is None:
            day = line[4:6]
            if not (line[:3] in _MONTHS and (day.isdigit() or (day[0] == " " and day[1].isdigit()))):
                return split_line_slow(line, clock)
            when = clock.classic(None, line[:3], day.strip(), line[7:9], line[10:12], line[13:15])
            if when is None:
                return split_line_slow(line, clock)
            clock.hours[key] = when - int(line[10:12]) * 60 - int(line[13:15])
        else:
            when = base + int(line[10:12]) * 60 + int(line[13:15])
        rest = 16
    else:
        return split_line_slow(line, clock)
    colon = line.find(": ", rest)
    if colon < 0:
        return split_line_slow(line, clock)
    head = line[rest:colon]
    if not _HEAD.fullmatch(head):
        return split_line_slow(line, clock)
    host_end = head.find(" ")
    if host_end >= 0:
        tag = head[host_end + 1 :]
        if " " in tag or not head[:host_end] or "[" in head[:host_end]:
            return split_line_slow(line, clock)
    else:
        tag = head
    if not tag or tag[0] in "[(:" or tag.count("[") > 1:
        return split_line_slow(line, clock)
    bracket = tag.find("[")
    if bracket >= 0:
        if not tag.endswith("]"):
            return split_line_slow(line, clock)
        tag = tag[:bracket]
    elif tag.endswith("]"):  # GDM's "gdm-password]:"
        tag = tag[:-1]
    if not tag or "]" in tag or ("(" in tag and not tag.endswith(")")):
        return split_line_slow(line, clock)
    return when, tag, line[colon + 2 :]


def split_line_slow(line: str, clock: Clock) -> tuple[float | None, str, str] | None:
    """``split_line`` by the general patterns: every stamp and tag form of logformats.md section 0."""
    first = line[:1]
    when: float | None = None
    tag: tuple[str | None, ...] | None = None
    if first.isdigit():
        m = _LINE_ISO.match(line)
        if m is not None:
            date, h, mi, sec, off, *rest = m.groups()
            when = clock.iso(date, h, mi, sec, off)
            tag = tuple(rest)
        else:
            m = _LINE_CLASSIC.match(line)
            if m is not None:
                year, mon, day, h, mi, sec, *rest = m.groups()
                when = clock.classic(year, mon, day, h, mi, sec)
                tag = tuple(rest)
    elif first.isupper():
        m = _LINE_CLASSIC.match(line)
        if m is not None:
            year, mon, day, h, mi, sec, *rest = m.groups()
            when = clock.classic(None, mon, day, h, mi, sec)
            tag = tuple(rest)
    elif first == "<":
        m5 = _RFC5424.match(line)
        if m5 is None:
            return None
        return clock.iso_text(m5["ts"]), m5["app"], m5["msg"]
    if tag is None:
        m = _LINE_BARE.match(line)
        if m is None:
            return None
        tag = m.groups()
    _host, btag, name, sub, msg = tag
    assert msg is not None  # _TAG_SRC's message group always takes part in a match
    if btag is not None:
        return when, btag, msg
    assert name is not None  # no [btag]: the other branch of the alternation, with its tag, matched
    return when, (name if sub is None else f"{name}({sub})"), msg


# ---------------------------------------------------------------------------------------------
# The block parser

# A line is a candidate when it holds one of the anchors (the texts of the rules above). Each scan
# looks for one rare byte with memchr (``bytes.find``, tens of GB/s) and compares the text around
# each hit; six scans cover every anchor, so a block is read six times in C and Python runs once
# per hit of a rare byte, not once per line.
#   "F"  Failed , FAILED
#   "A"  Accepted , BAD SU , PAM: , TOO MANY LOGIN TRIES (the A of BAD, PAM and MANY)
#   ";"  ; logname= , ; TTY=  (only the first ";" of a line, see candidate_lines)
#   "k"  pam_faillock( , chauthtok): password changed
#   ","  , deny
#   "'"  ' changed by ' , change user '

# pam_unix's "authentication failure; logname=" for services that log their own verdict: passed
# over by the ";" scan (rule P1), by far the most frequent duplicate on a server under attack.
_OWN_VERDICT_PAM: Final = tuple(
    f"pam_unix({svc}:auth): authentication failure".encode() for svc in ("sshd", "sudo", "su", "su-l", "login")
)
_OWN_VERDICT_TAGS: Final = frozenset({b"sshd", b"sshd-session", b"sshd-auth", b"sudo", b"su", b"login"})


def _own_verdict_pam(data: bytes, start: int, semicolon: int) -> bool:
    """A pam_unix failure line (or its end-of-session count) of sshd, sudo, su or login (rule P1)."""
    if data.endswith(_OWN_VERDICT_PAM, start, semicolon):
        return True
    more = data.find(b"]: PAM ", start, semicolon)
    if more < 0:
        more = data.find(b": PAM ", start, semicolon)
        if more < 0 or not data.endswith(b" sudo", start, more):
            return False
        return data.endswith(b"authentication failures", start, semicolon) or data.endswith(b"authentication failure", start, semicolon)
    tag = data.rfind(b" ", start, more)
    name_end = data.find(b"[", tag, more)
    if name_end < 0:  # no "[" before "]: PAM ": no tag (and no slice to the block's end, per line)
        return False
    return data[tag + 1 : name_end] in _OWN_VERDICT_TAGS and data.endswith(
        (b"authentication failures", b"authentication failure"), start, semicolon
    )


def candidate_lines(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """The lines that hold an anchor, in order, and how many were passed over as duplicates.

    ``scan_lines`` by the compiled scanner (``_candidates.c``) where it was built, else by the
    Python below, which is its reference: both give the same answer (tests hold them to it).
    """
    spans, dropped, _, _ = _SCAN(data, None)
    return spans, dropped


def scan_lines(data: bytes, hour: HourOf | None) -> tuple[list[tuple[int, int]], int, FastRead | None, list[Head | None] | None]:
    """``candidate_lines``' scan, in Python: the reference of the compiled scanner, and its fallback.

    Returns the candidates, the duplicates passed over, what the fast lines counted and, with
    ``hour``, each candidate's ``Head`` (see ``_heads``).

    Each line is ``(start, end)``; ``end`` excludes the newline.

    A line is a candidate when it holds one of the anchors anywhere, except that ``; logname=``
    and ``; TTY=`` count only as the line's first ``;`` (sudo's success lines hold four, and
    pam_unix's failure line and sudo's refusals have theirs first), and that ``; logname=`` after
    pam_unix's failure text for a service with its own verdict is passed over: ``classify``
    ignores such a line (rule P1), and it is by far the most frequent duplicate on a server under
    attack. Another anchor in the same line still makes it a candidate, so that text inside a
    name an attacker chose (``Failed password for invalid user pam_unix(sshd:auth): ...``) does
    not hide the line: ``classify`` has the last word.

    With ``hour`` (a stamp's hour by its bytes, ``_Quick.hour``), sshd's plain ``Failed``/``Accepted``
    lines are matched whole as they are found, left out of the list and counted into the returned
    ``FastRead`` (see ``_read_fast``), unless their stamp is no time; every other candidate is in
    the list. Without ``hour`` there is no ``FastRead`` (None) and every candidate is in the list.
    """
    found: dict[int, int] = {}  # start -> end; _READ for the "Accepted" lines quick has read
    dropped = 0
    size = len(data)
    find = data.find
    rfind = data.rfind
    startswith = data.startswith
    endswith = data.endswith

    p = find(b";")
    while p >= 0:
        # The first ";" of a line is the anchor's or none is: go on from the next line.
        end = find(b"\n", p)
        if end < 0:
            end = size
        if startswith(_SEMICOLON_ANCHORS, p):
            # 108: the "l" of "; logname="; a suffix without a newline cannot reach past the line.
            if data[p + 2] == 108 and endswith(_OWN_VERDICT_PAM, 0, p):
                dropped += 1
            else:
                start = rfind(b"\n", 0, p) + 1
                if data[p + 2] == 108 and _own_verdict_pam(data, start, p):
                    dropped += 1
                elif start not in found:
                    found[start] = end
        p = find(b";", end)

    p = find(b"k")
    while p >= 0:
        if startswith(_K_ANCHORS, p) and endswith(b"pam_failloc" if data[p + 1] == 40 else b"chauthto", 0, p):
            p = _found(data, p, found)
        else:
            p = find(b"k", p + 1)
    p = find(b",")
    while p >= 0:
        p = _found(data, p, found) if startswith(b", deny ", p) else find(b",", p + 1)
    p = find(b"'")
    while p >= 0:
        if startswith(b"' changed by '", p) or endswith(b"change user ", 0, p):
            p = _found(data, p, found)
        else:
            p = find(b"'", p + 1)

    fast = hour is not None
    oks: list[re.Match[bytes]] = []
    p = find(b"A")
    while p >= 0:
        if startswith(b"Accepted ", p):
            start = rfind(b"\n", 0, p) + 1
            if fast:
                m = _FAST_ACCEPTED(data, start)
                if m is not None:
                    oks.append(m)
                    found[start] = _READ
                    p = find(b"A", m.end())
                    continue
            end = find(b"\n", p)
            if end < 0:
                end = size
            if start not in found:
                found[start] = end
            p = find(b"A", end)
        # At p - 1 (the last byte of the block when p is 0: too short to match).
        elif startswith(_AFTER_A, p - 1) and (data[p - 1] != 77 or startswith(b"TOO MANY LOGIN TRIES", p - 5)):
            p = _found(data, p, found)
        else:
            p = find(b"A", p + 1)

    fails: list[re.Match[bytes]] = []
    p = find(b"F")
    while p >= 0:
        if startswith(_FAILED_ANCHORS, p):
            start = rfind(b"\n", 0, p) + 1
            if fast and data[p + 1] == 97:  # 97: "Failed", not "FAILED"
                m = _FAST_FAILED(data, start)
                # A line read as "Accepted" above cannot match: its message starts otherwise. This
                # is the last scan, so the line only needs taking out of the candidates.
                if m is not None:
                    fails.append(m)
                    found.pop(start, None)
                    p = find(b"F", m.end())
                    continue
            end = find(b"\n", p)
            if end < 0:
                end = size
            if start not in found:
                found[start] = end
            p = find(b"F", end)
        else:
            p = find(b"F", p + 1)

    read: FastRead | None = None
    if hour is not None:
        rest, read = _read_fast(hour, fails, oks)
        for m in rest:  # a stamp that is no time: the general way decides
            found[m.start()] = m.end()
    spans = [(start, end) for start, end in sorted(found.items()) if end != _READ]
    return spans, dropped, read, None if hour is None else _heads(data, spans, hour)


def _found(data: bytes, p: int, found: dict[int, int]) -> int:
    """Record the line around ``p`` as a candidate (unless it is one already); where to look next."""
    start = data.rfind(b"\n", 0, p) + 1
    end = data.find(b"\n", p)
    if end < 0:
        end = len(data)
    if start not in found:
        found[start] = end
    return data.find(data[p : p + 1], end)


_FAILED_ANCHORS: Final = (b"Failed ", b"FAILED ")
# Anchors found at their "A", compared from the byte before it; "MANY ..." is then checked for
# the "TOO " of "TOO MANY LOGIN TRIES".
_AFTER_A: Final = (b"BAD SU ", b"PAM: ", b"MANY LOGIN TRIES")
_SEMICOLON_ANCHORS: Final = (b"; logname=", b"; TTY=")
_K_ANCHORS: Final = (b"k(", b"k): password changed")  # after "pam_failloc", "chauthto"
# candidate_lines' mark for a line sshd's fast path has read as "Accepted" (so that the "Failed"
# scan after it leaves the line alone): an end no real line has.
_READ: Final = -1

# sshd's plain failure and success lines, the bulk of a server under attack, read with one match
# from the line's first byte and never decoded: "<stamp> <host> sshd[-session|-auth][<pid>]:
# Failed|Accepted <method> for [invalid user ]<user> from <addr> port <n> ssh2[: <key info>]",
# with rsyslog's classic or RFC 3339 stamp. Every field is printable ASCII; anything else (other
# stamps, no host, an "error: " prefix, a user with spaces, bytes beyond ASCII, key info holding
# " from " after an invalid user, whose name the general pattern then reads differently) goes the
# general way, which gives the same verdict and time for every line these patterns take
# (property tests hold the two to it). Groups: 1 classic stamp to the hour, 2 RFC 3339 stamp to
# the hour, 3 "MM:SS", 4 offset (RFC 3339 only); then the message's.
_FAST_HEAD = (
    rb"(?:([A-Z][a-z]{2} [ \d]\d \d\d)|(\d{4}-\d\d-\d\dT\d\d)):(\d\d:\d\d)(?(1)|(?:[.,]\d+)?([+-]\d\d:\d\d))"
    rb" [\x21-\x39\x3b-\x5a\x5c\x5e-\x7e]+ sshd(?:-session|-auth)?\[\d+\]: "
)
_FAST_ADDR = rb" from ([\x21-\x7e]*[\x21-\x39\x3b-\x7e]) port (\d+) ssh2"
# 5 method, 6 "invalid user ", 7 user, 8 address, 9 port. "none" (S10, counted 0) goes the general way.
_FAST_FAILED: Final = re.compile(
    _FAST_HEAD + rb"Failed (?!none )([\x21-\x7e]+) for (invalid user |illegal user )?([\x21-\x7e]*)" + _FAST_ADDR
    + rb"(?(6)(?:: (?:(?! from )[^\n])*)?|(?:: [^\n]*)?)\r?$",
    re.M,
).match
# 5 method, 6 user, 7 address, 8 port
_FAST_ACCEPTED: Final = re.compile(
    _FAST_HEAD + rb"Accepted ([\x21-\x7e]+) for ([\x21-\x7e]+)" + _FAST_ADDR + rb"(?:: [^\n]*)?\r?$", re.M
).match
_KEY_METHODS: Final = frozenset({b"publickey", b"hostbased"})


@functools.cache
def _minute_second() -> dict[bytes, int]:
    """Seconds into the hour of the usual "MM:SS"; any other two digits are added up the same way.

    Built by the first text block parsed, not at import: its 3,660 keys are 0.4 MB that an
    agent counting logins from the journal (Debian 12's default) never uses (bench/README.md)."""
    return {b"%02d:%02d" % (m, s): m * 60 + s for m in range(60) for s in range(61)}


# A stamp's minutes and seconds add at most 99*60+99 seconds to its hour.
_HOUR_SPAN: Final = 99 * 60 + 99


def _stamp_hour(clock: Clock, key: bytes) -> tuple[float, int | None] | tuple[None, None]:
    """(epoch of the stamp's hour, its UTC day if every time in that hour falls on it) for a key of
    the fast patterns: ``Nov 23 07`` or ``2026-11-23T07+01:00``; (None, None) if it is no time."""
    text = key.decode("ascii")
    if len(text) == 9:
        if text[:3] not in _MONTHS:
            return None, None
        base = clock.classic(None, text[:3], text[4:6].strip(), text[7:9], "0", "0")
    else:
        base = clock.iso(text[:10], text[11:13], "0", "0", text[13:])
    if base is None:
        return None, None
    day = int(base // 86400)
    return base, day if int((base + _HOUR_SPAN) // 86400) == day else None


Rows = dict[tuple[int, bytes], list[float]]  # (UTC day, raw account or address) -> [n, first, last]


# What the fast path read from a block: lines, bad_password and unknown_user counts, the rows
# failed by account, failed by network and succeeded by network, sshd's key offers for valid
# users (S11: the tally decides) as (time, user, address, port), and the sessions that logged in
# as (user, address, port); all of it raw bytes, aggregated per distinct key.
FastRead: TypeAlias = (
    "tuple[int, int, int, Rows, Rows, Rows, list[tuple[float, bytes, bytes, bytes]], set[tuple[bytes, bytes, bytes]]]"
)
# A stamp's hour by the fast patterns' key (``_Quick.hour``).
HourOf: TypeAlias = "Callable[[bytes], tuple[float, int | None] | tuple[None, None]]"


def _read_fast(hour: HourOf, fails: list[re.Match[bytes]], oks: list[re.Match[bytes]]) -> tuple[list[re.Match[bytes]], FastRead]:
    """Count the lines ``_FAST_FAILED`` and ``_FAST_ACCEPTED`` matched; return those whose stamp
    is no time (nothing of them counted) and what the others count.

    The times are those ``split_line`` gives: the stamp's hour, plus minutes and seconds, in the
    same whole-second float arithmetic."""
    # One loop body per line, with no call but the dictionary's: this runs for most of the
    # lines that count on a server under attack.
    hours: dict[bytes, tuple[float, int | None] | tuple[None, None]] = {}
    seconds = _minute_second()
    keyed = _KEY_METHODS
    by_account: Rows = {}
    by_network: Rows = {}
    offers: list[tuple[float, bytes, bytes, bytes]] = []
    bad_password = unknown_user = 0
    rest: list[re.Match[bytes]] = []
    for m in fails:
        classic, iso, minute_second, offset, method, invalid, user, addr, port = m.groups()
        key = classic or iso + offset
        stamp = hours.get(key)
        if stamp is None:
            stamp = hours[key] = hour(key)
        base, day = stamp
        if base is None:
            rest.append(m)
            continue
        into = seconds.get(minute_second)
        when = base + (into if into is not None else int(minute_second[:2]) * 60 + int(minute_second[3:]))
        if day is None:
            day = int(when // 86400)
        if invalid is not None:
            unknown_user += 1
        elif method in keyed:
            offers.append((when, user, addr, port))
            continue
        else:
            bad_password += 1
        row = by_account.get((day, user))
        if row is None:
            by_account[(day, user)] = [1, when, when]
        else:
            row[0] += 1
            if when > row[2]:
                row[2] = when
            elif when < row[1]:
                row[1] = when
        row = by_network.get((day, addr))
        if row is None:
            by_network[(day, addr)] = [1, when, when]
        else:
            row[0] += 1
            if when > row[2]:
                row[2] = when
            elif when < row[1]:
                row[1] = when
    ok_by_network: Rows = {}
    sessions: set[tuple[bytes, bytes, bytes]] = set()
    for m in oks:
        classic, iso, minute_second, offset, _, user, addr, port = m.groups()
        key = classic or iso + offset
        stamp = hours.get(key)
        if stamp is None:
            stamp = hours[key] = hour(key)
        base, day = stamp
        if base is None:
            rest.append(m)
            continue
        into = seconds.get(minute_second)
        when = base + (into if into is not None else int(minute_second[:2]) * 60 + int(minute_second[3:]))
        if day is None:
            day = int(when // 86400)
        sessions.add((user, addr, port))
        row = ok_by_network.get((day, addr))
        if row is None:
            ok_by_network[(day, addr)] = [1, when, when]
        else:
            row[0] += 1
            if when > row[2]:
                row[2] = when
            elif when < row[1]:
                row[1] = when
    lines = len(fails) + len(oks) - len(rest)
    return rest, (lines, bad_password, unknown_user, by_account, by_network, ok_by_network, offers, sessions)


class _Quick:
    """What sshd's fast path read from one block: counts per reason and rollup rows, by raw bytes.

    Keys offered for valid users and the sessions that logged in go to the tally, which decides
    what the offers count (S11).
    """

    __slots__ = ("clock", "lines", "reasons", "by_account", "by_network", "ok_by_network", "offers", "sessions")

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lines = 0
        self.reasons = {"bad_password": 0, "unknown_user": 0}
        self.by_account: Rows = {}
        self.by_network: Rows = {}
        self.ok_by_network: Rows = {}
        # Keys offered for valid users (S11): (time, user, address, port); the tally decides.
        self.offers: list[tuple[float, bytes, bytes, bytes]] = []
        self.sessions: set[tuple[bytes, bytes, bytes]] = set()  # (user, address, port) that logged in

    def hour(self, key: bytes) -> tuple[float, int | None] | tuple[None, None]:
        """(epoch of the stamp's hour, its UTC day or None) for a fast pattern's key, once per block's
        ``Clock``: the scan asks once per distinct key it meets."""
        hours = self.clock.fast
        stamp = hours.get(key)
        if stamp is None:
            stamp = hours[key] = _stamp_hour(self.clock, key)
        return stamp

    def take(self, read: FastRead) -> None:
        """Take what the block's scan read: the rows are aggregated per distinct key already, and
        taken over, not copied (one scan per block, so nothing is there to merge with)."""
        self.lines, bad_password, unknown_user, self.by_account, self.by_network, self.ok_by_network, self.offers, self.sessions = read
        self.reasons = {"bad_password": bad_password, "unknown_user": unknown_user}

    def into(self, tally: Tally) -> None:
        """Add what was read to the block's tally."""
        for reason, n in self.reasons.items():
            if n:
                tally.count_fails("sshd", reason, n)
        tally.raw_logins(self.offers, self.sessions)
        tally.merge_raw_rows(FAILED_BY_ACCOUNT, self.by_account)
        tally.merge_raw_rows(FAILED_BY_NETWORK, self.by_network)
        tally.merge_raw_rows(SUCCESS_BY_NETWORK, self.ok_by_network)


def parse_auth_lines(block: LogBlock, ctx: ParseContext) -> ParseResult:
    """Count failed logins, lockouts and password changes in a block of auth.log / secure lines.

    Every line gets one outcome: ``parsed`` (it counted towards an indicator or a rollup),
    ``unparsed`` (a login message of a known program that no rule understands; a few are kept in
    ``examples`` when asked) or ``ignored`` (everything else, including lines that repeat an
    attempt another line counts).

    Example::

        >>> parse_text(parse_auth_lines, "Nov 23 07:25:53 srv sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2")
        ParseResult(observations=[Count(metric='normagent_failed_logins_total', ...
    """
    return _parse_lines(block, ctx, fast=True)


def parse_auth_lines_into(batch: BatchTally, block: LogBlock, ctx: ParseContext) -> ParseResult:
    """``parse_auth_lines``, with the block's counts and rollup rows added to ``batch`` instead of
    returned as observations (the result holds the lines' outcomes only).

    ``batch`` merges what the blocks of a ledger batch add up to, and its holder hands that on
    with those blocks' checkpoints. The block is added last, once it is read: a block the parser
    fails on adds nothing.
    """
    return _parse_lines(block, ctx, fast=True, batch=batch)


def _parse_lines(block: LogBlock, ctx: ParseContext, *, fast: bool, batch: BatchTally | None = None) -> ParseResult:
    """``parse_auth_lines``; ``fast=False`` sends every candidate line the general way (for the
    tests); ``batch``: see ``parse_auth_lines_into``."""
    if not isinstance(block, TextBlock):  # journal entries or EVTX records: not this parser's
        return ParseResult(ignored=len(block.records))
    data = block.data
    lines = block.line_count
    result = ParseResult()
    if not data:
        result.ignored = lines
        return result
    tally = Tally(ctx)
    clock = Clock(block.mtime or ctx.now, ctx.tz)
    fallback = (block.mtime or ctx.now).timestamp()
    if b"\x00" in data:
        data = drop_nul_padding(data)
    parsed = unparsed = 0
    heads: list[Head | None] | None = None
    if fast:
        quick = _Quick(clock)
        spans, _, read, heads = _SCAN(data, quick.hour)
        if read is not None:
            quick.take(read)
        quick.into(tally)
        parsed = quick.lines
    else:
        spans, _ = candidate_lines(data)
    judge = _classify_short if fast else classify
    examples = result.examples
    fail = tally.fail
    for (start, end), head in zip(spans, heads if heads is not None else itertools.repeat(None)):
        split: tuple[float | None, str, str] | None
        if head is not None:  # stamp and tag cut in bytes: only the message is decoded
            split = (head[0], head[1], data[head[2] : end].decode("utf-8", "replace").rstrip("\r"))
        else:
            split = split_line(data[start:end].decode("utf-8", "replace").rstrip("\r"), clock)
        if split is None:
            verdict: Outcome = UNPARSED
            when = None
        else:
            when, program, message = split
            verdict = judge(program, message)
        if isinstance(verdict, str):  # IGNORED or UNPARSED
            if verdict is UNPARSED:
                unparsed += 1
                if len(examples) < ctx.examples:
                    examples.append(data[start:end].decode("utf-8", "replace").rstrip("\r"))
            continue
        parsed += 1
        if verdict[0] == "fail":  # by far the most frequent: no detour through apply()
            _, source, reason, n, account, address = verdict
            fail(source, reason, n, when if when is not None else fallback, account, address)
        else:
            apply(tally, verdict, when if when is not None else fallback)
    # Keys offered in a session that logged in were no attempts (S11): those lines count as ignored.
    parsed -= tally.settle()
    if batch is None:
        result.observations = tally.observations()
    else:
        tally.hand_over(batch)
    result.parsed = parsed
    result.unparsed = unparsed
    result.ignored = lines - parsed - unparsed
    return result


def drop_nul_padding(data: bytes) -> bytes:
    """Each line of a block from its last NUL on (G5), as ``split_line`` reads a line.

    A crash or power loss leaves NUL bytes where the file's last writes were, glued to the first
    line written after it; the text before them is a line the crash cut. Done once per block that
    holds a NUL (rare), so that the byte scans, which take the first ";" of a line as its
    anchor, see the lines that ``split_line`` sees.
    """
    return b"\n".join(line[line.rfind(b"\x00") + 1 :] for line in data.split(b"\n"))


# classify is pure, and the other candidates repeat themselves (the same user failing su on the
# same tty, the same sudo refusal, GDM's pam_unix line for the same account): a bounded memo of
# short messages saves most of its cost; a long message (up to a block's size) is never kept.
_classify_memo = functools.lru_cache(maxsize=4096)(classify)
_MEMO_CHARS: Final = 300


def _classify_short(program: str, message: str) -> Outcome:
    return _classify_memo(program, message) if len(message) <= _MEMO_CHARS else classify(program, message)


# The stamp (as _FAST_HEAD's groups 1-4), host and tag of a line in rsyslog's usual shape: the
# tag is printable ASCII without brackets, parentheses or colons, followed by a numeric pid, by
# nothing, or by the "]" of GDM's "gdm-password]:". Anything else goes to split_line.
_LINE_HEAD: Final = re.compile(
    _FAST_HEAD[: _FAST_HEAD.index(b" sshd")]
    + rb" ([\x21-\x27\x2a-\x39\x3b-\x5a\x5c\x5e-\x7e]+)(?:\[\d+\]|\])?: "
).match


# A candidate's time, tag and where its message starts, as ``split_line`` would read them.
Head: TypeAlias = "tuple[float, str, int]"


def _heads(data: bytes, spans: list[tuple[int, int]], hour: HourOf) -> list[Head | None]:
    """``split_line``'s time and tag for each candidate ``_LINE_HEAD`` matches, cut in bytes (None
    where it does not match or the stamp is no time: ``split_line`` decides). The header is
    ASCII, so the message decodes alike on its own."""
    heads: list[Head | None] = []
    hours: dict[bytes, tuple[float, int | None] | tuple[None, None]] = {}
    seconds = _minute_second()
    for start, end in spans:
        m = _LINE_HEAD(data, start, end)
        if m is None:
            heads.append(None)
            continue
        classic, iso, minute_second, offset, tag = m.groups()
        key = classic or iso + offset
        stamp = hours.get(key)
        if stamp is None:
            stamp = hours[key] = hour(key)
        base = stamp[0]
        if base is None:
            heads.append(None)
            continue
        into = seconds.get(minute_second)
        when = base + (into if into is not None else int(minute_second[:2]) * 60 + int(minute_second[3:]))
        heads.append((when, tag.decode("ascii"), m.end()))
    return heads


def apply(tally: Tally, verdict: Verdict, when: float, *, alone: bool = True) -> None:
    """Add one verdict of ``classify`` to a block's tally.

    ``alone``: the line (or entry) counts through this verdict only, so that a key offer the
    tally later finds to be part of a login (``Tally.settle``) leaves it ignored.
    """
    kind, source, label, n, account, address = verdict
    if kind == "fail":
        tally.fail(source, label, n, when, account, address)
    elif kind == "offer":
        tally.key_offer(when, account or "", address or "", label, n, alone=alone)
    elif kind == "lockout":
        tally.lockout(source, when, account, n)
    elif kind == "reset":
        tally.reset(source, label, when, n)
    elif kind == "success":
        tally.success(when, address)
        tally.logged_in(account or "", address or "", label)


# The compiled scan where it was built (pip builds it when a compiler is there), else the Python
# reference: the two give the same answer.
ScanLines: TypeAlias = (
    "Callable[[bytes, HourOf | None], tuple[list[tuple[int, int]], int, FastRead | None, list[Head | None] | None]]"
)


def _compiled_scan() -> ScanLines | None:
    try:
        from normagent.plugins.access._candidates import scan
    except ImportError:  # no compiler where normagent was installed
        return None
    return scan


_SCAN: Final[ScanLines] = _compiled_scan() or scan_lines
