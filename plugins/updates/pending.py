"""Pure readers of what the package managers say is pending, and the age of what waits longest.

apt: ``apt-get --just-print dist-upgrade`` (a simulation: no root needed, nothing changes, apt's
lock is not taken with ``-o Debug::NoLocking=true``) prints one line per package it would
install, with the repositories that offer the new version::

    Inst libssl3 [3.0.15-1~deb12u1] (3.0.17-1~deb12u2 Debian-Security:12/stable-security [amd64])

A pending update is security when one of those origins matches ``security_origins``.

dnf: ``dnf -q -C check-update`` (from dnf's cache only: nothing is downloaded, no root needed)
lists ``name.arch  [epoch:]version-release  repository`` per pending update and exits 100 when
there are some, 0 when none; ``dnf -q -C updateinfo list --updates --security`` lists the
pending updates that security advisories name.

Age: neither tells when an update became available, so the collector remembers when it first
saw each pending update (a checkpoint, so restarts do not reset it): the oldest pending
security update is as old as the longest-waiting one the agent has seen wait. An agent
installed today sees today's backlog as new; the report says so.

Imports only ``normagent`` (the public API) and the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from normagent import JSONValue, dataclass

from .vocab import origin_is_security

_INST = re.compile(r"^Inst (\S+) (?:\[([^\]]*)\] )?\((\S+) (.*?)(?: \[([^\]]+)\])?\)")
_CHECK_UPDATE = re.compile(r"^(\S+)\.([^.\s]+)\s+(\S+)\s+(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    """One update waiting to be installed."""

    package: str  # a name (apt) or name.arch (dnf)
    version: str
    kind: str  # security | other

    @property
    def key(self) -> str:
        return f"{self.package}={self.version}"


def parse_apt_simulation(stdout: bytes, security_origins: Iterable[str]) -> list[PendingUpdate]:
    """The ``Inst`` lines of ``apt-get --just-print dist-upgrade`` (``Conf``/``Remv`` lines and
    apt's notes are not updates)."""
    patterns = tuple(security_origins)
    found: dict[str, PendingUpdate] = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        match = _INST.match(line)
        if match is None:
            continue
        package, installed, version, origins, _arch = match.groups()
        if installed is None:
            continue  # a new package pulled in by an upgrade, not an update of one installed
        kind = "security" if any(origin_is_security(o.strip(), patterns) for o in origins.split(",")) else "other"
        found[package] = PendingUpdate(package, version, kind)
    return sorted(found.values(), key=lambda u: u.package)


def parse_dnf_check_update(stdout: bytes, security: Mapping[str, str]) -> list[PendingUpdate]:
    """``dnf check-update`` lines; ``security`` maps NEVRAs of ``updateinfo list --updates
    --security`` to their type. The "Obsoleting Packages" section that may follow is not read."""
    found: dict[str, PendingUpdate] = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("Obsoleting"):
            break
        match = _CHECK_UPDATE.match(line)
        if match is None:
            continue
        name, arch, evr, _repo = match.groups()
        if "-" not in evr:
            continue  # a header or a line of another shape
        full = f"{name}-{evr}.{arch}"
        kind = "security" if security.get(full) == "security" else "other"
        found[f"{name}.{arch}"] = PendingUpdate(f"{name}.{arch}", evr, kind)
    return sorted(found.values(), key=lambda u: u.package)


def first_seen(previous: object, pending: Iterable[PendingUpdate], now: float) -> JSONValue:
    """The next ``pending`` checkpoint: ``key -> [kind, first seen (unix time)]`` for what is
    pending now; an update seen before keeps its first sighting, one gone is forgotten."""
    before = previous if isinstance(previous, dict) else {}
    out: dict[str, JSONValue] = {}
    for update in pending:
        seen = before.get(update.key)
        when = seen[1] if isinstance(seen, list) and len(seen) == 2 and isinstance(seen[1], (int, float)) else now
        out[update.key] = [update.kind, float(min(when, now))]
    return out


def oldest(seen: JSONValue, now: float) -> dict[str, float]:
    """Seconds the oldest pending update of each kind has waited (0 when none waits)."""
    ages = {"security": 0.0, "other": 0.0}
    for entry in (seen.values() if isinstance(seen, dict) else ()):
        if not isinstance(entry, list) or len(entry) != 2:
            continue
        kind, when = entry
        if isinstance(kind, str) and kind in ages and isinstance(when, (int, float)):
            ages[kind] = max(ages[kind], now - float(when))
    return ages
