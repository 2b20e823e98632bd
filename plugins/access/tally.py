"""The access plugin's vocabulary and the per-block tally every parser of the plugin writes into.

One place names the metrics, their closed label sets and the rollups, so the Linux, journald and
Windows parsers, the collectors, the rules and the report section cannot drift apart. ``Tally``
aggregates what one block contributes — one ``Count`` per series and one ``Rollup`` per
(name, day, key) — instead of one observation per line, and pseudonymises accounts and networks
once per distinct raw value of the block (the pseudonyms themselves are memoised, see
``account_pseudonym``).

Imports only ``normagent`` (the public API) and the standard library.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from normagent import Count, Observation, ParseContext, Rollup

if TYPE_CHECKING:
    from normagent.privacy import Pseudonymiser

FAILED_LOGINS = "normagent_failed_logins_total"
LOCKOUTS = "normagent_account_lockouts_total"
PASSWORD_RESETS = "normagent_password_resets_total"
EVENTLOG_ERRORS = "normagent_eventlog_errors_total"

# Where an attempt was judged. Linux: the service that logged its own verdict (sshd, sudo, su,
# login), GDM and any other PAM service through pam_unix; the password tools for resets. Windows:
# logons on the machine that wrote the log (4625) versus credential checks it made for a domain
# (Kerberos 4771, NTLM 4776) - see docs/access-counting-rules.md.
LOGIN_SOURCES = ("sshd", "sudo", "su", "login", "gdm", "pam", "windows", "kerberos", "ntlm")
RESET_SOURCES = ("passwd", "chpasswd", "usermod", "sshd", "login", "gdm", "pam", "windows")
REASONS = (
    "bad_password",
    "bad_key",
    "unknown_user",
    "locked_out",
    "disabled",
    "expired",
    "password_expired",
    "outside_hours",
    "workstation_restricted",
    "must_change_password",
    "not_allowed",
    "other",
)
# change: the account's owner changed it; reset: someone else set it (the "forgotten password"
# case); unknown: the log does not say which (Linux passwd writes the same line for both).
RESET_KINDS = ("change", "reset", "unknown")
EVENT_LOGS = ("journal", "system", "application")
OTHER_ORIGIN = "other"

# Rollups for the report (keys are pseudonyms or closed-set values, never raw names).
FAILED_BY_ACCOUNT = "access.failed_by_account"
FAILED_BY_NETWORK = "access.failed_by_network"
SUCCESS_BY_NETWORK = "access.success_by_network"
LOCKOUT_BY_ACCOUNT = "access.lockout_by_account"
RESET_OUTSIDE_HOURS = "access.reset_outside_hours"
ERRORS_BY_ORIGIN = "access.eventlog_errors_by_origin"

# Sources whose account names are case-insensitive (Windows: "Administrator" is "ADMINISTRATOR"),
# so they are case-folded before they are told apart. Linux names are case-sensitive: "admin"
# and "Admin" are two accounts (useradd takes both), and are kept apart (rule G6).
CASE_INSENSITIVE_SOURCES = frozenset({"windows", "kerberos", "ntlm"})

# Placeholders programs print instead of a name: not an account anyone targeted.
NO_ACCOUNT = frozenset({"", "UNKNOWN", "(unknown)", "<invalid username>", "-", "?"})
NO_ADDRESS = frozenset({"", "-", "?", "unknown", "::1", "127.0.0.1", "localhost"})  # compared casefolded

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# A canonical dotted quad (no leading zeros, which ipaddress rejects).
_IPV4 = re.compile(r"(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(?:0|[1-9]\d{0,2})\Z")


_FAIL_KEYS = {(s, r): (FAILED_LOGINS, (("reason", r), ("source", s))) for s in LOGIN_SOURCES for r in REASONS}

# Rollups keyed by an account name (pseudonymised with .account) or an address (.network).
_BY_ACCOUNT = frozenset({FAILED_BY_ACCOUNT, LOCKOUT_BY_ACCOUNT})
_BY_ADDRESS = frozenset({FAILED_BY_NETWORK, SUCCESS_BY_NETWORK})


class Tally:
    """What one block adds up to, aggregated, ready to become observations.

    Times are epoch seconds (UTC) while aggregating; rollup days are UTC days, like the ledger's
    report periods. Rollup rows are kept under the raw account or address while the block is
    read and pseudonymised once per distinct value at the end (``observations``), so a raw value
    never leaves this object.
    """

    __slots__ = ("counts", "_rows", "_raw_rows", "_pseudonymise", "_business", "_offers", "_sessions", "_raw_offers", "_raw_sessions")

    def __init__(self, ctx: ParseContext) -> None:
        self.counts: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._rows: Rows = {}
        self._raw_rows: RawRows = {}  # rows a fast path aggregated in bytes (``merge_raw_rows``)
        self._pseudonymise = ctx.pseudonymise
        self._business = _business_hours(ctx)
        self._offers: list[tuple[float, str, str, str, float, bool]] = []
        self._sessions: set[tuple[str, str, str]] = set()
        # sshd's fast path's offers (time, user, address, port) and sessions, as ASCII bytes.
        self._raw_offers: list[tuple[float, bytes, bytes, bytes]] = []
        self._raw_sessions: set[tuple[bytes, bytes, bytes]] = set()

    # -- what parsers report --------------------------------------------------------------------

    def fail(self, source: str, reason: str, n: float, when: float, account: str | None, address: str | None) -> None:
        if account is not None and source in CASE_INSENSITIVE_SOURCES:
            account = account.casefold()
        key = _FAIL_KEYS.get((source, reason))
        if key is None:
            key = (FAILED_LOGINS, (("reason", reason), ("source", source)))
        counts = self.counts
        counts[key] = counts.get(key, 0.0) + n
        day = int(when // 86400)
        if account is not None:
            _count_in(self._rows, (FAILED_BY_ACCOUNT, day, account), n, when)
        if address is not None:
            _count_in(self._rows, (FAILED_BY_NETWORK, day, address), n, when)

    def count_fails(self, source: str, reason: str, n: float) -> None:
        """Add ``n`` failed attempts to the counter alone; their rollup rows come by ``merge_raw_rows``."""
        key = _FAIL_KEYS.get((source, reason))
        if key is None:
            key = (FAILED_LOGINS, (("reason", reason), ("source", source)))
        self.counts[key] = self.counts.get(key, 0.0) + n

    def merge_raw_rows(self, name: str, rows: dict[tuple[int, bytes], list[float]]) -> None:
        """Add rollup rows of ``name`` a parser aggregated itself: ``(utc_day, raw) -> [n, first, last]``.

        ``raw`` is an account name for the ``*_by_account`` rollups and an address for the
        ``*_by_network`` ones, in ASCII bytes, pseudonymised like those of ``fail`` and
        ``success``. They are decoded once per distinct row when observations are made, in a
        ``BatchTally`` once per batch. The rows are taken over, not copied.
        """
        have = self._raw_rows.get(name)
        if have is None:
            self._raw_rows[name] = rows
        else:
            _merge(have, rows)

    def key_offer(self, when: float, account: str, address: str, port: str, n: float = 1, *, alone: bool = True) -> None:
        """sshd refused a key a client offered for a valid account (rule S11): decided by ``settle``.

        ``alone``: the line counts through this offer only (journald entries may also be errors).
        """
        self._offers.append((when, account, address, port, n, alone))

    def logged_in(self, account: str, address: str, port: str) -> None:
        """An sshd session (account, client address and port) that logged in, for ``settle``."""
        self._sessions.add((account, address, port))

    def raw_logins(self, offers: list[tuple[float, bytes, bytes, bytes]], sessions: set[tuple[bytes, bytes, bytes]]) -> None:
        """sshd's key offers (time, user, address, port) and sessions (user, address, port) as its
        fast path read them, in ASCII bytes: ``key_offer`` and ``logged_in`` for each, of one line
        each, decoded only where an offer counts. Taken over, not copied."""
        if self._raw_offers:
            self._raw_offers.extend(offers)
        else:
            self._raw_offers = offers
        if self._raw_sessions:
            self._raw_sessions.update(sessions)
        else:
            self._raw_sessions = sessions

    def settle(self) -> int:
        """Count the block's key offers: a failed login each, unless its session logged in.

        A client with several keys offers them in turn, and sshd refuses each one it does not
        know before it accepts the right one (rule S11): those offers are no attempts. Call once,
        after the block's lines and before ``observations``. Returns how many lines counted only
        offers that were left out (the caller counts them as ignored).
        """
        left_out = 0
        sessions, raw_sessions = self._sessions, self._raw_sessions
        for when, account, address, port, n, alone in self._offers:
            if (account, address, port) in sessions or (raw_sessions and _encoded(account, address, port) in raw_sessions):
                left_out += alone
            else:
                self.fail("sshd", "bad_key", n, when, account, address or None)
        self._offers.clear()
        if self._raw_offers:
            left_out += self._settle_raw(self._raw_offers, raw_sessions | {_encoded(*session) for session in sessions})
            self._raw_offers = []
        return left_out

    def _settle_raw(self, offers: list[tuple[float, bytes, bytes, bytes]], sessions: set[tuple[bytes, bytes, bytes]]) -> int:
        """``settle`` for the fast path's offers: what ``fail("sshd", "bad_key", 1, ...)`` would do
        for each offer no session took, the rows aggregated in bytes first (an attacker's
        address and account recur), then decoded once per distinct row."""
        by_account: dict[tuple[int, bytes], list[float]] = {}
        by_network: dict[tuple[int, bytes], list[float]] = {}
        counted = 0
        for when, user, addr, port in offers:
            if (user, addr, port) in sessions:
                continue
            counted += 1
            day = int(when // 86400)
            _count_in(by_account, (day, user), 1, when)
            _count_in(by_network, (day, addr), 1, when)
        if counted:
            self.count_fails("sshd", "bad_key", counted)
            self.merge_raw_rows(FAILED_BY_ACCOUNT, by_account)
            self.merge_raw_rows(FAILED_BY_NETWORK, {key: row for key, row in by_network.items() if key[1]})  # fail's ``address or None``
        return len(offers) - counted

    def lockout(self, source: str, when: float, account: str | None, n: float = 1) -> None:
        self._count(LOCKOUTS, (("source", source),), n)
        if account is not None:
            if source in CASE_INSENSITIVE_SOURCES:
                account = account.casefold()
            self._roll(LOCKOUT_BY_ACCOUNT, when, account, n)

    def reset(self, source: str, kind: str, when: float, n: float = 1) -> None:
        self._count(PASSWORD_RESETS, (("kind", kind), ("source", source)), n)
        if self._business is not None and not self._business(when):
            self._roll(RESET_OUTSIDE_HOURS, when, f"{source}:{kind}", n)

    def success(self, when: float, address: str | None) -> None:
        if address is not None:
            self._roll(SUCCESS_BY_NETWORK, when, address, 1)

    def error(self, log: str, origin: str, label: str, when: float, n: float = 1) -> None:
        """An event-log error: ``label`` is the bounded origin label, ``origin`` the real name for the rollup."""
        self._count(EVENTLOG_ERRORS, (("log", log), ("origin", label)), n)
        self._roll(ERRORS_BY_ORIGIN, when, f"{log}:{origin}", n)

    # -- pseudonyms -----------------------------------------------------------------------------

    def account(self, name: str) -> str | None:
        """The pseudonym of an account name; None for placeholders such as ``UNKNOWN``."""
        return account_pseudonym(self._pseudonymise, name)

    def network(self, address: str) -> str | None:
        """The pseudonym of an address's /24 or /48 (or of a host name); None for local or empty ones."""
        return network_pseudonym(self._pseudonymise, address)

    # -- output ---------------------------------------------------------------------------------

    def observations(self) -> list[Observation]:
        """The block's counts, then its rollup rows (one ``Rollup`` per name, day and key)."""
        out: list[Observation] = [Count(metric, labels, value) for (metric, labels), value in self.counts.items()]
        out.extend(rollups(self._rows, self._raw_rows, self._pseudonymise))
        return out

    def hand_over(self, batch: BatchTally) -> None:
        """Add the block's counts and rollup rows to ``batch`` instead of making observations of
        them (the rows are taken over, not copied: the tally is empty afterwards)."""
        batch.add(self.counts, self._rows, self._raw_rows)
        self.counts = {}
        self._rows = {}
        self._raw_rows = {}

    def _count(self, metric: str, labels: tuple[tuple[str, str], ...], n: float) -> None:
        key = (metric, labels)
        self.counts[key] = self.counts.get(key, 0.0) + n

    def _roll(self, name: str, when: float, raw: str, n: float) -> None:
        _count_in(self._rows, (name, int(when // 86400), raw), n, when)


class BatchTally:
    """What the blocks read since the last batch left add up to: counts and rollup rows, merged
    across those blocks.

    A batch of the file driver carries up to 16 MiB of blocks (one ledger transaction), and a
    brute-force run's networks and accounts recur in every block of a day: one ``Rollup`` per
    (name, day, key) and one ``Count`` per series per *batch* instead of per block is a third
    fewer rollups made, each with two datetimes, and a tenth of the counts, each merged again by
    the ledger (on the 1M-line bench log 13,638 rollups against 21,273, 104 counts against
    1,560). Rows stay under the raw value until ``take``, which pseudonymises once per distinct
    value, as ``Tally.observations`` does; a raw value never leaves this object.

    Whoever holds one must hand ``take``'s observations on with the checkpoints of exactly the
    blocks added since the last ``take`` (see ``collectors.collect_login_files``).
    """

    __slots__ = ("_counts", "_rows", "_raw_rows", "_pseudonymise")

    def __init__(self, pseudonymise: Pseudonymiser) -> None:
        self._counts: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._rows: Rows = {}
        self._raw_rows: RawRows = {}
        self._pseudonymise = pseudonymise

    def add(self, counts: dict[tuple[str, tuple[tuple[str, str], ...]], float], rows: Rows, raw_rows: RawRows) -> None:
        """Merge one block's counts and rows (as a ``Tally`` keeps them); the rows are taken over."""
        mine = self._counts
        for key, value in counts.items():
            mine[key] = mine.get(key, 0.0) + value
        if self._rows:
            _merge(self._rows, rows)
        else:
            self._rows = rows
        for name, block_rows in raw_rows.items():
            have = self._raw_rows.get(name)
            if have is None:
                self._raw_rows[name] = block_rows
            else:
                _merge(have, block_rows)

    def take(self) -> list[Observation]:
        """The counts and the merged rows as observations; the object is empty afterwards."""
        counts, rows, raw_rows = self._counts, self._rows, self._raw_rows
        self._counts, self._rows, self._raw_rows = {}, {}, {}
        out: list[Observation] = [Count(metric, labels, value) for (metric, labels), value in counts.items()]
        if rows or raw_rows:
            out.extend(rollups(rows, raw_rows, self._pseudonymise))
        return out


# Rollup rows while they are added up: (name, UTC day, raw account or address) -> [n, first, last],
# and those a fast path aggregated in ASCII bytes: name -> (UTC day, raw) -> [n, first, last].
Rows: TypeAlias = "dict[tuple[str, int, str], list[float]]"
RawRows: TypeAlias = "dict[str, dict[tuple[int, bytes], list[float]]]"
_Key = TypeVar("_Key")


def _count_in(rows: dict[_Key, list[float]], key: _Key, n: float, when: float) -> None:
    """Add ``n`` at ``when`` to the row ``key`` (``[n, first, last]``), made if it is not there."""
    row = rows.get(key)
    if row is None:
        rows[key] = [n, when, when]
    else:
        row[0] += n
        if when < row[1]:
            row[1] = when
        elif when > row[2]:
            row[2] = when


def _merge(mine: dict[_Key, list[float]], rows: dict[_Key, list[float]]) -> None:
    """Add ``rows`` to ``mine``, row by row: counts add up, first and last times widen. A row
    ``mine`` does not have is taken over, not copied."""
    for key, row in rows.items():
        have = mine.get(key)
        if have is None:
            mine[key] = row
        else:
            have[0] += row[0]
            if row[1] < have[1]:
                have[1] = row[1]
            if row[2] > have[2]:
                have[2] = row[2]


def rollups(rows: Rows, raw_rows: RawRows, pseudonymise: Pseudonymiser) -> list[Observation]:
    """One ``Rollup`` per (name, day, pseudonym) of rows kept under raw values, as text or as a
    fast path's ASCII bytes; rows whose raw value is a placeholder (no account, a local address)
    are left out. Raw values that share a pseudonym (addresses of one network, or one account as
    text and as bytes) make one row."""
    merged: dict[tuple[str, int, str], list[float]] = {}
    for (name, day, raw), row in rows.items():
        if name in _BY_ADDRESS:
            key = network_pseudonym(pseudonymise, raw)
        elif name in _BY_ACCOUNT:
            key = account_pseudonym(pseudonymise, raw)
        else:
            key = raw
        if key is None:
            continue
        have = merged.get((name, day, key))
        # A new list when two raw values share a pseudonym: the caller's rows stay as they are.
        merged[(name, day, key)] = row if have is None else [have[0] + row[0], min(have[1], row[1]), max(have[2], row[2])]
    for name, raws in raw_rows.items():
        pseudonym = network_pseudonym if name in _BY_ADDRESS else account_pseudonym if name in _BY_ACCOUNT else None
        # An address or account recurs on each day of the batch: asked of the memo once.
        keys: dict[bytes, str | None] = {}
        for (day, raw_bytes), row in raws.items():
            key = keys.get(raw_bytes)
            if key is None:
                text = raw_bytes.decode("ascii")
                key = keys[raw_bytes] = text if pseudonym is None else pseudonym(pseudonymise, text)
                if key is None:
                    continue
            have = merged.get((name, day, key))
            merged[(name, day, key)] = row if have is None else [have[0] + row[0], min(have[1], row[1]), max(have[2], row[2])]
    out: list[Observation] = []
    days: dict[int, date] = {}
    # One line's time is often the first or last of two rows (its account's and its network's).
    stamps: dict[float, datetime] = {}
    for (name, day, key), (value, first, last) in merged.items():
        when = days.get(day)
        if when is None:
            when = days[day] = date.fromordinal(day + _EPOCH_ORDINAL)
        first_seen = stamps.get(first)
        if first_seen is None:
            first_seen = stamps[first] = _utc(first)
        last_seen = stamps.get(last)
        if last_seen is None:
            last_seen = stamps[last] = _utc(last)
        out.append(Rollup(name, when, key, value, first_seen, last_seen))
    return out


def _encoded(account: str, address: str, port: str) -> tuple[bytes, bytes, bytes]:
    """A session or offer of the general way as the fast path's bytes: equal to an ASCII one's
    exactly when the strings equal its decoding (a non-ASCII string never does)."""
    return (account.encode("utf-8", "surrogatepass"), address.encode("utf-8", "surrogatepass"), port.encode("utf-8", "surrogatepass"))


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


# Pseudonyms are a pure function of (key, value), so they are memoised across blocks and runs: an
# attacker's network recurs in every block of a brute-force run, and each HMAC costs microseconds.
# The cache is bounded; it holds values that are in the log files being read anyway, and the key
# is part of the cache key, so a context with another key never sees these pseudonyms.
@functools.lru_cache(maxsize=8192)
def account_pseudonym(pseudonymise: Pseudonymiser, name: str) -> str | None:
    clean = name.strip()
    return None if clean in NO_ACCOUNT else pseudonymise.account(clean)


@functools.lru_cache(maxsize=8192)
def network_pseudonym(pseudonymise: Pseudonymiser, address: str) -> str | None:
    clean = address.strip().strip("[]")
    if clean.casefold() in NO_ADDRESS:
        return None
    quad = _IPV4.match(clean)
    if quad is not None and all(int(octet) < 256 for octet in quad.groups()):
        # The same pseudonym as Pseudonymiser.network(), without ipaddress's parsing cost.
        return pseudonymise(f"network:{quad[1]}.{quad[2]}.{quad[3]}.0/24")
    key = pseudonymise.network(clean)
    if key is None:
        # A host name (sshd with UseDNS, PAM's rhost): still one source, never shown.
        key = pseudonymise("host:" + clean.casefold())
    return key


def _business_hours(ctx: ParseContext) -> Callable[[float], bool] | None:
    """A predicate ``epoch -> bool`` for the settings' business hours, or None when unset."""
    settings = ctx.settings
    hours = getattr(settings, "business_hours", None)
    if hours is None or not getattr(hours, "enabled", False):
        return None
    tz = ctx.tz
    start, end, days = hours.start, hours.end, frozenset(hours.weekdays)

    def inside(epoch: float) -> bool:
        local = datetime.fromtimestamp(epoch, tz)
        return local.isoweekday() in days and start <= local.time() < end

    return inside


def preset_labels() -> dict[str, tuple[tuple[str, ...], ...]]:
    """The closed label combinations each metric starts with at 0, in declared label order."""
    return {
        FAILED_LOGINS: tuple((s, r) for s in LOGIN_SOURCES for r in _reasons_for(s)),
        LOCKOUTS: tuple((s,) for s in ("sshd", "sudo", "su", "login", "gdm", "pam", "windows")),
        PASSWORD_RESETS: tuple(
            (s, k) for s in RESET_SOURCES for k in RESET_KINDS if _kind_possible(s, k)
        ),
    }


def _reasons_for(source: str) -> Iterable[str]:
    """Reasons a source can report at all, so the preset does not invent impossible series."""
    if source in ("windows", "ntlm"):
        return [r for r in REASONS if r != "bad_key"]
    if source == "kerberos":
        return ("bad_password", "unknown_user", "password_expired", "other")
    if source == "sshd":
        return ("bad_password", "bad_key", "unknown_user")
    if source == "sudo":
        return ("bad_password", "not_allowed", "other")
    if source in ("su", "login"):
        return ("bad_password", "unknown_user", "expired", "password_expired", "not_allowed", "other")
    return ("bad_password", "unknown_user")


def _kind_possible(source: str, kind: str) -> bool:
    if source == "passwd":
        return True  # unknown with PAM; change or reset from shadow's passwd without PAM
    if source in ("chpasswd", "usermod"):
        return kind == "reset"
    if source == "windows":
        return kind in ("change", "reset")
    return kind == "change"
