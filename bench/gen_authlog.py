"""Write a realistic Debian auth.log and the ground truth of what it contains.

The log is what an internet-facing clinic server's rsyslog writes over a few weeks: cron sessions,
administrators' ssh and sudo sessions, systemd-logind, scanners that never authenticate, and about
7 % of lines that belong to failed logins (ssh brute force against real and unknown accounts, a
mistyped password before a good one, sudo and su failures, console and GDM logins), with the
pam_unix lines that repeat the same attempts, rsyslog's ``message repeated N times``, pam_faillock
lockouts and password changes. The first part uses the classic ``Nov 23 07:25:53 host`` stamp, the
rest rsyslog's RFC 3339 stamp (``2026-11-23T07:25:53.123456+01:00 host``), as after an upgrade to
Debian 12; after a later point sshd's per-connection messages come from ``sshd-session`` (OpenSSH
9.8).

The ground truth (``OUT.truth.json``) is kept while generating, from what was simulated, not by
parsing the output:

- ``attempts``: every failed attempt simulated, by source and reason;
- ``expected``: what the counting rules of docs/access-counting-rules.md count, by metric and labels
  (equal to ``attempts`` except for the documented exclusions, listed under ``not_counted``);
- ``failure_lines``: how many lines match ``grep_pattern`` (what ``LC_ALL=C grep -cE`` prints);
- ``rollups``: distinct (UTC day, network) and (UTC day, account) pairs of counted failures.

Usage::

    python bench/gen_authlog.py OUT.log --lines 1000000 --seed 1

Standard library only, deterministic for a given seed and end time.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

HOST = "clinic-srv1"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# The alternation bench/bench_access.py gives grep: one line per failure-related message.
GREP_PATTERN = (
    "Failed (password|publickey|keyboard-interactive|none|hostbased)|authentication failures?;"
    "|incorrect password attempt|NOT in sudoers|FAILED (SU|LOGIN)|TOO MANY LOGIN TRIES"
    "|Consecutive login failures"
)

ADMINS = ("alice", "bob", "carol")
SERVICE_USERS = ("deploy", "backup")
VALID_TARGETS = ("root", "alice", "admin", "postgres")  # accounts that exist on the host
UNKNOWN_USERS = (
    "test", "user", "oracle", "ubuntu", "pi", "guest", "ftpuser", "git", "support", "administrator",
    "mysql", "www", "nagios", "hadoop", "ts3", "minecraft", "jenkins", "steam", "usuario", "dev",
)
COMMANDS = (
    "/usr/bin/systemctl status epj-server", "/usr/bin/apt update", "/usr/bin/apt upgrade",
    "/usr/bin/journalctl -u epj-server", "/usr/bin/tail -n 200 /var/log/syslog", "/usr/sbin/reboot",
)
KEX_OFFERS = ("diffie-hellman-group1-sha1,diffie-hellman-group14-sha1", "ssh-rsa,ssh-dss")


@dataclass
class Truth:
    """What the generator put into the log, kept as it goes."""

    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (source, reason)
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)  # counted by the rules
    lockouts: Counter[str] = field(default_factory=Counter)
    resets: Counter[tuple[str, str]] = field(default_factory=Counter)  # (source, kind)
    not_counted: Counter[str] = field(default_factory=Counter)
    successes_with_address: int = 0
    network_days: set[tuple[str, str]] = field(default_factory=set)
    account_days: set[tuple[str, str]] = field(default_factory=set)
    attempts_with_address: int = 0
    failure_lines: int = 0

    def fail(self, when: datetime, source: str, reason: str, n: int, account: str | None, address: str | None) -> None:
        """``n`` failed attempts that the counting rules count."""
        self.attempts[(source, reason)] += n
        self.failed[(source, reason)] += n
        day = when.astimezone(timezone.utc).date().isoformat()
        if account is not None:
            self.account_days.add((day, account.casefold()))
        if address is not None:
            self.network_days.add((day, network_of(address)))
            self.attempts_with_address += n

    def excluded(self, source: str, reason: str, n: int, why: str) -> None:
        """``n`` failed attempts that happened but that the counting rules deliberately do not count."""
        self.attempts[(source, reason)] += n
        self.not_counted[why] += n

    def as_json(self, lines: int) -> dict[str, object]:
        def nested(counter: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for (a, b), n in sorted(counter.items()):
                out.setdefault(a, {})[b] = n
            return out

        return {
            "lines": lines,
            "grep_pattern": GREP_PATTERN,
            "failure_lines": self.failure_lines,
            "attempts": nested(self.attempts),
            "expected": {
                "normagent_failed_logins_total": nested(self.failed),
                "normagent_account_lockouts_total": dict(sorted(self.lockouts.items())),
                "normagent_password_resets_total": nested(self.resets),
            },
            "not_counted": dict(sorted(self.not_counted.items())),
            "rollups": {
                "failed_by_network_rows": len(self.network_days),
                "failed_by_account_rows": len(self.account_days),
                "attempts_with_address": self.attempts_with_address,
                "successes_with_address": self.successes_with_address,
            },
        }


def network_of(address: str) -> str:
    ip = ipaddress.ip_address(address)
    return str(ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 48}", strict=False))


class Writer:
    """Formats lines the way rsyslog writes them and counts failure lines for grep."""

    def __init__(self, out: list[str], truth: Truth, classic_until: datetime, session_from: datetime) -> None:
        self.out = out
        self.truth = truth
        self.classic_until = classic_until
        self.session_from = session_from
        self.tz = ZoneInfo("Europe/Oslo")
        self._grep = __import__("re").compile(GREP_PATTERN)

    def stamp(self, when: datetime) -> str:
        local = when.astimezone(self.tz)
        if when < self.classic_until:
            return f"{MONTHS[local.month - 1]} {local.day:>2} {local:%H:%M:%S}"
        return local.isoformat(timespec="microseconds")

    def line(self, when: datetime, tag: str, message: str) -> None:
        text = f"{self.stamp(when)} {HOST} {tag}: {message}\n"
        if self._grep.search(message):
            self.truth.failure_lines += 1
        self.out.append(text)

    def sshd(self, when: datetime) -> str:
        return "sshd-session" if when >= self.session_from else "sshd"


class Scenario:
    """Generates one event (a few related lines) at a time."""

    def __init__(self, rng: random.Random, w: Writer, truth: Truth) -> None:
        self.rng = rng
        self.w = w
        self.t = truth
        self.session = 1000
        self.attackers = [self._public_ip() for _ in range(600)]
        self.attackers += [f"2001:db8:{rng.randrange(0x10000):x}:{rng.randrange(0x10000):x}::{rng.randrange(1, 0xffff):x}" for _ in range(40)]
        self.admin_ips = [f"10.20.{rng.randrange(1, 5)}.{rng.randrange(2, 250)}" for _ in range(12)]

    def _public_ip(self) -> str:
        while True:
            ip = ipaddress.IPv4Address(self.rng.randrange(0x01000000, 0xDF000000))
            if ip.is_global:
                return str(ip)

    def pid(self) -> int:
        return self.rng.randrange(300, 4_000_000)

    def port(self) -> int:
        return self.rng.randrange(1024, 65535)

    def tick(self, when: datetime, lo: float = 0.0, hi: float = 2.0) -> datetime:
        return when + timedelta(seconds=self.rng.uniform(lo, hi))

    # -- noise ----------------------------------------------------------------------------------

    def cron(self, when: datetime) -> datetime:
        pid = self.pid()
        user, uid = self.rng.choice((("root", 0), ("root", 0), ("www-data", 33)))
        self.w.line(when, f"CRON[{pid}]", f"pam_unix(cron:session): session opened for user {user}(uid={uid}) by (uid=0)")
        when = self.tick(when, 0.0, 1.5)
        self.w.line(when, f"CRON[{pid}]", f"pam_unix(cron:session): session closed for user {user}")
        return when

    def ssh_login(self, when: datetime, user: str | None = None, method: str | None = None) -> datetime:
        user = user or self.rng.choice(ADMINS + SERVICE_USERS)
        method = method or ("publickey" if user in SERVICE_USERS or self.rng.random() < 0.7 else "password")
        ip, port, pid, tag = self.rng.choice(self.admin_ips), self.port(), self.pid(), self.w.sshd(when)
        uid = 1000 + (ADMINS + SERVICE_USERS).index(user) if user in ADMINS + SERVICE_USERS else 0
        suffix = ": ED25519 SHA256:" + "".join(self.rng.choices("ABCDEFGHabcdefgh0123456789+/", k=43)) if method == "publickey" else ""
        self.w.line(when, f"{tag}[{pid}]", f"Accepted {method} for {user} from {ip} port {port} ssh2{suffix}")
        self.t.successes_with_address += 1
        self.w.line(when, f"{tag}[{pid}]", f"pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)")
        self.session += 1
        self.w.line(when, "systemd-logind[512]", f"New session {self.session} of user {user}.")
        when = self.tick(when, 2, 120)
        self.w.line(when, f"{tag}[{pid}]", f"Received disconnect from {ip} port {port}:11: disconnected by user")
        self.w.line(when, f"{tag}[{pid}]", f"Disconnected from user {user} {ip} port {port}")
        self.w.line(when, f"{tag}[{pid}]", f"pam_unix(sshd:session): session closed for user {user}")
        self.w.line(when, "systemd-logind[512]", f"Session {self.session} logged out. Waiting for processes to exit.")
        self.w.line(when, "systemd-logind[512]", f"Removed session {self.session}.")
        return when

    def sudo_ok(self, when: datetime) -> datetime:
        user = self.rng.choice(ADMINS)
        uid = 1000 + ADMINS.index(user)
        pad = " " * self.rng.choice((1, 4))
        self.w.line(when, "sudo", f"{pad}{user} : TTY=pts/{self.rng.randrange(4)} ; PWD=/home/{user} ; USER=root ; COMMAND={self.rng.choice(COMMANDS)}")
        self.w.line(when, "sudo", f"pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid={uid})")
        when = self.tick(when, 0.1, 10)
        self.w.line(when, "sudo", "pam_unix(sudo:session): session closed for user root")
        return when

    def su_ok(self, when: datetime) -> datetime:
        user = self.rng.choice(ADMINS)
        uid = 1000 + ADMINS.index(user)
        pid, tty = self.pid(), f"pts/{self.rng.randrange(4)}"
        self.w.line(when, f"su[{pid}]", f"(to root) {user} on {tty}")
        self.w.line(when, f"su[{pid}]", f"pam_unix(su-l:session): session opened for user root(uid=0) by {user}(uid={uid})")
        when = self.tick(when, 5, 120)
        self.w.line(when, f"su[{pid}]", "pam_unix(su-l:session): session closed for user root")
        return when

    def scanner(self, when: datetime) -> datetime:
        ip, port, pid, tag = self.rng.choice(self.attackers), self.port(), self.pid(), self.w.sshd(when)
        kind = self.rng.randrange(6)
        if kind == 0:
            self.w.line(when, f"{tag}[{pid}]", f"Connection closed by {ip} port {port} [preauth]")
        elif kind == 1:
            self.w.line(when, f"{tag}[{pid}]", "error: kex_exchange_identification: Connection closed by remote host")
            self.w.line(when, f"{tag}[{pid}]", f"Connection closed by {ip} port {port}")
        elif kind == 2:
            self.w.line(when, f"{tag}[{pid}]", f"banner exchange: Connection from {ip} port {port}: invalid format")
        elif kind == 3:
            offer = self.rng.choice(KEX_OFFERS)
            self.w.line(when, f"{tag}[{pid}]", f"Unable to negotiate with {ip} port {port}: no matching key exchange method found. Their offer: {offer} [preauth]")
        elif kind == 4:
            self.w.line(when, f"{tag}[{pid}]", f"Connection reset by {ip} port {port} [preauth]")
        else:
            # Probes a user name and leaves without presenting a credential: not a login attempt.
            user = self.rng.choice(UNKNOWN_USERS)
            self.w.line(when, f"{tag}[{pid}]", f"Invalid user {user} from {ip} port {port}")
            self.w.line(self.tick(when), f"{tag}[{pid}]", f"Connection closed by invalid user {user} {ip} port {port} [preauth]")
        return when

    def logind(self, when: datetime) -> datetime:
        self.w.line(when, "systemd-logind[512]", self.rng.choice((
            "Watching system buttons on /dev/input/event0 (Power Button)",
            "New seat seat0.",
            "Watching system buttons on /dev/input/event1 (AT Translated Set 2 keyboard)",
        )))
        return when

    def user_session(self, when: datetime) -> datetime:
        user = self.rng.choice(ADMINS)
        uid = 1000 + ADMINS.index(user)
        self.w.line(when, f"(systemd)[{self.pid()}]", f"pam_unix(systemd-user:session): session opened for user {user}(uid={uid}) by (uid=0)")
        return when

    # -- failures -------------------------------------------------------------------------------

    def _failed_repeated(
        self, when: datetime, tag: str, message: str, k: int, record: tuple[str, str, str | None, str | None]
    ) -> datetime:
        """``k`` identical failure messages; rsyslog folds consecutive repeats on some hosts.

        ``record`` is (source, reason, account, address); each line's attempts go into the truth
        at that line's time, as a reader dates them.
        """
        source, reason, account, address = record
        if k > 1 and self.rng.random() < 0.25:
            self.w.line(when, tag, message)
            self.t.fail(when, source, reason, 1, account, address)
            when = self.tick(when, 2, 6)
            self.w.line(when, tag, f"message repeated {k - 1} times: [ {message}]")
            self.t.fail(when, source, reason, k - 1, account, address)
            return when
        for i in range(k):
            if i:
                when = self.tick(when, 2, 4)
            self.w.line(when, tag, message)
            self.t.fail(when, source, reason, 1, account, address)
        return when

    def _tries(self) -> int:
        return min(6, 1 + int(self.rng.expovariate(0.55)))

    def ssh_brute_unknown(self, when: datetime) -> datetime:
        ip, port, pid, tag = self.rng.choice(self.attackers), self.port(), self.pid(), self.w.sshd(when)
        user = self.rng.choice(UNKNOWN_USERS)
        k = self._tries()
        tg = f"{tag}[{pid}]"
        self.w.line(when, tg, f"Invalid user {user} from {ip} port {port}")
        self.w.line(when, tg, "pam_unix(sshd:auth): check pass; user unknown")
        self.w.line(when, tg, f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}")
        message = f"Failed password for invalid user {user} from {ip} port {port} ssh2"
        when = self._failed_repeated(self.tick(when), tg, message, k, ("sshd", "unknown_user", user, ip))
        if k == 6:
            self.w.line(when, tg, f"error: maximum authentication attempts exceeded for invalid user {user} from {ip} port {port} ssh2 [preauth]")
            self.w.line(when, tg, f"Disconnecting invalid user {user} {ip} port {port}: Too many authentication failures [preauth]")
        else:
            if k > 1:
                self.w.line(when, tg, f"PAM {k - 1} more authentication failure{'s' if k > 2 else ''}; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}")
            self.w.line(when, tg, f"Received disconnect from {ip} port {port}:11: Bye Bye [preauth]")
            self.w.line(when, tg, f"Disconnected from invalid user {user} {ip} port {port} [preauth]")
        return when

    def ssh_brute_valid(self, when: datetime) -> datetime:
        ip, port, pid, tag = self.rng.choice(self.attackers), self.port(), self.pid(), self.w.sshd(when)
        user = self.rng.choice(VALID_TARGETS)
        k = self._tries()
        tg = f"{tag}[{pid}]"
        self.w.line(when, tg, f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}")
        message = f"Failed password for {user} from {ip} port {port} ssh2"
        when = self._failed_repeated(self.tick(when), tg, message, k, ("sshd", "bad_password", user, ip))
        if k == 6:
            self.w.line(when, tg, f"error: maximum authentication attempts exceeded for {user} from {ip} port {port} ssh2 [preauth]")
            self.w.line(when, tg, f"Disconnecting authenticating user {user} {ip} port {port}: Too many authentication failures [preauth]")
            if self.rng.random() < 0.5:
                self.w.line(when, tg, f"pam_faillock(sshd:auth): Consecutive login failures for user {user} account temporarily locked")
                self.t.lockouts["sshd"] += 1
        else:
            if k > 1:
                self.w.line(when, tg, f"PAM {k - 1} more authentication failure{'s' if k > 2 else ''}; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}")
            self.w.line(when, tg, f"Connection closed by authenticating user {user} {ip} port {port} [preauth]")
        return when

    def ssh_typo(self, when: datetime) -> datetime:
        user = self.rng.choice(ADMINS)
        ip, port, pid, tag = self.rng.choice(self.admin_ips), self.port(), self.pid(), self.w.sshd(when)
        self.w.line(when, f"{tag}[{pid}]", f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}")
        self.w.line(when, f"{tag}[{pid}]", f"Failed password for {user} from {ip} port {port} ssh2")
        self.t.fail(when, "sshd", "bad_password", 1, user, ip)
        return self.ssh_login(self.tick(when, 3, 8), user, "password")

    def ssh_bad_key(self, when: datetime) -> datetime:
        ip, port, pid, tag = self.rng.choice(self.attackers), self.port(), self.pid(), self.w.sshd(when)
        user = self.rng.choice(("root", "deploy"))
        k = self.rng.randrange(1, 4)
        for i in range(k):
            if i:
                when = self.tick(when, 0, 1)
            fp = "".join(self.rng.choices("ABCDEFGHabcdefgh0123456789+/", k=43))
            self.w.line(when, f"{tag}[{pid}]", f"Failed publickey for {user} from {ip} port {port} ssh2: RSA SHA256:{fp}")
            self.t.fail(when, "sshd", "bad_key", 1, user, ip)
        self.w.line(when, f"{tag}[{pid}]", f"Connection closed by authenticating user {user} {ip} port {port} [preauth]")
        return when

    def sudo_fail(self, when: datetime) -> datetime:
        user = self.rng.choice(ADMINS)
        uid = 1000 + ADMINS.index(user)
        tty = f"pts/{self.rng.randrange(4)}"
        pam = f"logname={user} uid={uid} euid=0 tty=/dev/{tty} ruser={user} rhost=  user={user}"
        self.w.line(when, "sudo", f"pam_unix(sudo:auth): authentication failure; {pam}")
        if self.rng.random() < 0.3:
            # A mistyped password followed by the right one: sudo itself logs no failure.
            self.t.excluded("sudo", "bad_password", 1, "sudo: mistyped password followed by a correct one")
            return self.sudo_ok(self.tick(when, 2, 5))
        k = self.rng.randrange(1, 4)
        when = self.tick(when, 2, 8 * k)
        pad = " " * self.rng.choice((1, 4))
        plural = "attempts" if k > 1 else "attempt"
        self.w.line(when, "sudo", f"{pad}{user} : {k} incorrect password {plural} ; TTY={tty} ; PWD=/home/{user} ; USER=root ; COMMAND={self.rng.choice(COMMANDS)}")
        if k > 1:
            self.w.line(when, "sudo", f"PAM {k - 1} more authentication failure{'s' if k > 2 else ''}; {pam}")
        # sudo asks for the invoking user's own password: that is the account tried.
        self.t.fail(when, "sudo", "bad_password", k, user, None)
        return when

    def sudo_refused(self, when: datetime) -> datetime:
        self.w.line(when, "sudo", "    mallory : user NOT in sudoers ; TTY=pts/2 ; PWD=/home/mallory ; USER=root ; COMMAND=/bin/bash")
        self.t.fail(when, "sudo", "not_allowed", 1, "mallory", None)
        return when

    def su_fail(self, when: datetime) -> datetime:
        user = self.rng.choice(ADMINS)
        uid = 1000 + ADMINS.index(user)
        pid, tty = self.pid(), f"pts/{self.rng.randrange(4)}"
        self.w.line(when, f"su[{pid}]", f"pam_unix(su-l:auth): authentication failure; logname={user} uid={uid} euid=0 tty=/dev/{tty} ruser={user} rhost=  user=root")
        when = self.tick(when, 1, 3)
        self.w.line(when, f"su[{pid}]", f"FAILED SU (to root) {user} on {tty}")
        self.t.fail(when, "su", "bad_password", 1, "root", None)
        return when

    def console_fail(self, when: datetime) -> datetime:
        # Debian 12's login comes from shadow: pam_unix stops the third try with PAM_MAXTRIES,
        # which login logs as TOO MANY LOGIN TRIES instead of a third FAILED LOGIN.
        pid = self.pid()
        user = self.rng.choice(("root", "carol", "UNKNOWN"))
        k = self.rng.randrange(1, 4)
        reason = "unknown_user" if user == "UNKNOWN" else "bad_password"
        pam_user = "" if user == "UNKNOWN" else f"  user={user}"
        self.w.line(when, f"login[{pid}]", f"pam_unix(login:auth): authentication failure; logname=LOGIN uid=0 euid=0 tty=/dev/tty1 ruser= rhost={pam_user}")
        for n in range(1, k + 1):
            when = self.tick(when, 3, 8)
            if n == 3:
                self.w.line(when, f"login[{pid}]", f"TOO MANY LOGIN TRIES (3) on '/dev/tty1' FOR '{user}'")
            else:
                self.w.line(when, f"login[{pid}]", f"FAILED LOGIN ({n}) on '/dev/tty1' FOR '{user}', Authentication failure")
            self.t.fail(when, "login", reason, 1, None if user == "UNKNOWN" else user, None)
        if k > 1:
            self.w.line(when, f"login[{pid}]", f"PAM {k - 1} more authentication failure{'s' if k > 2 else ''}; logname=LOGIN uid=0 euid=0 tty=/dev/tty1 ruser= rhost={pam_user}")
        return when

    def gdm_fail(self, when: datetime) -> datetime:
        user = self.rng.choice(ADMINS)
        k = self.rng.randrange(1, 4)
        message = f"pam_unix(gdm-password:auth): authentication failure; logname= uid=0 euid=0 tty=/dev/tty1 ruser= rhost=  user={user}"
        self.w.line(when, "gdm-password]", message)
        self.t.fail(when, "gdm", "bad_password", 1, user, None)
        if k > 1:
            when = self.tick(when, 3, 10)
            self.w.line(when, "gdm-password]", f"message repeated {k - 1} times: [ {message}]")
            self.t.fail(when, "gdm", "bad_password", k - 1, user, None)
        return when

    def ftp_fail(self, when: datetime) -> datetime:
        ip = self.rng.choice(self.attackers)
        self.w.line(when, "vsftpd", f"pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=anonymous rhost={ip}  user=ftp")
        self.t.fail(when, "pam", "bad_password", 1, "ftp", ip)
        return when

    def password_change(self, when: datetime) -> datetime:
        user = self.rng.choice(ADMINS + SERVICE_USERS)
        kind = self.rng.randrange(3)
        if kind == 0:
            self.w.line(when, f"passwd[{self.pid()}]", f"pam_unix(passwd:chauthtok): password changed for {user}")
            self.t.resets[("passwd", "unknown")] += 1
        elif kind == 1:
            self.w.line(when, f"chpasswd[{self.pid()}]", f"pam_unix(chpasswd:chauthtok): password changed for {user}")
            self.t.resets[("chpasswd", "reset")] += 1
        else:
            self.w.line(when, f"usermod[{self.pid()}]", f"change user '{user}' password")
            self.t.resets[("usermod", "reset")] += 1
        return when


MAX_EVENT_LINES = 40

# (scenario method, relative weight). Tuned so about 7 % of lines match GREP_PATTERN.
MIX = (
    ("cron", 500),
    ("ssh_login", 22),
    ("sudo_ok", 40),
    ("su_ok", 6),
    ("scanner", 200),
    ("logind", 2),
    ("user_session", 30),
    ("ssh_brute_unknown", 16),
    ("ssh_brute_valid", 10),
    ("ssh_typo", 4),
    ("ssh_bad_key", 5),
    ("sudo_fail", 5),
    ("sudo_refused", 1),
    ("su_fail", 3),
    ("console_fail", 2),
    ("gdm_fail", 2),
    ("ftp_fail", 2),
    ("password_change", 2),
)


def generate(lines: int, seed: int, end: datetime) -> tuple[list[str], Truth]:
    """The log's lines (exactly ``lines`` of them) and their ground truth."""
    rng = random.Random(seed)
    truth = Truth()
    span = timedelta(days=30)
    start = end - span
    out: list[str] = []
    writer = Writer(out, truth, classic_until=start + span * 0.4, session_from=start + span * 0.75)
    scenario = Scenario(rng, writer, truth)
    names = [name for name, _ in MIX]
    weights = [weight for _, weight in MIX]
    when = start
    # The clock follows the share of lines written, so the log spans ``span`` whatever the mix;
    # an event that runs long (a session) only pushes the next one later, never back in time.
    # No event writes more than MAX_EVENT_LINES lines; the tail is filled with one-line events so
    # the file has exactly ``lines`` lines and the truth covers every one of them.
    while len(out) < lines - MAX_EVENT_LINES:
        when = getattr(scenario, rng.choices(names, weights)[0])(when)
        when = max(when + timedelta(seconds=rng.uniform(0, 1)), start + span * (len(out) / lines))
    while len(out) < lines:
        when = scenario.logind(max(when + timedelta(seconds=1), start + span * (len(out) / lines)))
    return out, truth


def write(path: Path, lines: int, seed: int, end: datetime) -> dict[str, object]:
    """Write ``path`` and ``path.truth.json``; return the truth."""
    out, truth = generate(lines, seed, end)
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(out)
    data = truth.as_json(len(out))
    truth_path = path.with_name(path.name.removesuffix(".log") + ".truth.json")
    truth_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="log file to write; the truth goes to OUT.truth.json")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--end",
        default=None,
        help="time of the last line, ISO 8601 (default: now, so classic stamps infer the right year)",
    )
    args = parser.parse_args(argv)
    end = datetime.fromisoformat(args.end) if args.end else datetime.now(timezone.utc)
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    # Stay a minute before "now" so no line is dated in the reader's future.
    end = end - timedelta(minutes=1)
    data = write(args.out, args.lines, args.seed, end)
    print(f"{args.out}: {data['lines']} lines, {data['failure_lines']} failure lines", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
