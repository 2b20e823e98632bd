"""The updates plugin's vocabulary: metric names, their closed label sets, rollups, event kinds,
and the one place that decides whether an update is a security update.

Every parser (apt's logs, dnf's history, Windows Update events) and the collectors, rules and
report section take their names from here, so they cannot drift apart.

Imports only ``normagent`` (the public API) and the standard library.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable
from datetime import date, datetime

from normagent import Count, Observation, Rollup

SECTION = "Systemleverandør"

APPLIED = "normagent_updates_applied_total"
PENDING = "normagent_updates_pending"
OLDEST_PENDING = "normagent_updates_oldest_pending_seconds"
REBOOT_REQUIRED = "normagent_reboot_required"
UNATTENDED_RUNS = "normagent_updates_unattended_runs_total"
HISTORY_UNREADABLE = "normagent_updates_history_unreadable_total"

KINDS = ("security", "other")
RESULTS = ("success", "failure")
UNATTENDED_RESULTS = ("success", "failure", "nothing")

# Rollups for the report: package names (or Windows update titles) are no personal data.
SECURITY_APPLIED = "updates.security_applied"  # key: package, one per security update applied
FAILED = "updates.failed"  # key: package, one per update that failed (any kind)
DPKG_ERRORS = "updates.dpkg_errors"  # key: package dpkg could not process (apt's term.log)

# Events for the report: one per package-manager transaction (an apt run, a dnf transaction, a
# dpkg -i run, a Windows update), keyed so re-reading a source cannot repeat one.
TRANSACTION = "updates.transaction"

# Origins (apt: label, origin, suite or codename of a repository) whose updates are security
# updates, matched case-insensitively: Debian-Security / bookworm-security, Ubuntu's
# jammy-security, UbuntuESM's jammy-infra-security.
SECURITY_ORIGINS = ("*-security", "Debian-Security")

# Windows Update titles that carry security fixes (the event does not say; the title does).
SECURITY_TITLES = (
    "*security*",
    "*cumulative update*",
    "*definition update*",
    "*malicious software removal tool*",
)


def applied(kind: str, result: str, n: float = 1) -> Count:
    return Count(APPLIED, (("kind", kind), ("result", result)), n)


@functools.lru_cache(maxsize=8)
def package_set(entries: tuple[str, ...]) -> frozenset[str]:
    """``security_packages`` as a set (memoised: the same settings tuple comes with every block)."""
    return frozenset(entries)


def is_security(name: str, version: str, security: frozenset[str]) -> bool:
    """Whether ``name`` at ``version`` is listed as a security update (``name=version`` or ``name``)."""
    return f"{name}={version}" in security or name in security


def origin_is_security(origin: str, patterns: Iterable[str]) -> bool:
    """Whether any part of an apt origin string (``Debian-Security:12/stable-security``, or the
    fields of a Release file) matches a security pattern."""
    parts = [p for p in _split_origin(origin) if p]
    return any(fnmatch.fnmatch(part.casefold(), pattern.casefold()) for part in parts for pattern in patterns)


def _split_origin(origin: str) -> list[str]:
    out = [origin]
    for sep in (":", "/", ",", " ", "="):
        out = [piece for item in out for piece in item.split(sep)]
    return out


def title_is_security(title: str, patterns: Iterable[str]) -> bool:
    folded = title.casefold()
    return any(fnmatch.fnmatch(folded, pattern.casefold()) for pattern in patterns)


def outcome_observations(
    kind_counts: dict[tuple[str, str], float],
    packages: Iterable[tuple[str, str, str]],
    day: date,
    when: datetime,
) -> list[Observation]:
    """Counts per (kind, result) plus the report's rollups of one transaction.

    ``packages`` are (name, kind, result); ``day`` a UTC date, ``when`` an aware datetime.
    """
    out: list[Observation] = [applied(kind, result, n) for (kind, result), n in sorted(kind_counts.items()) if n]
    for name, kind, result in packages:
        if result == "failure":
            out.append(Rollup(FAILED, day, name, 1, when, when))
        elif kind == "security":
            out.append(Rollup(SECURITY_APPLIED, day, name, 1, when, when))
    return out
