"""Pseudonyms for values that must be told apart but never shown: accounts, source networks.

A pseudonym is a keyed HMAC-SHA256 of the value, truncated to 16 hex digits. The key is 32 random
bytes created on first start in the state directory with mode 0600; it never leaves the host, is
never logged and is never exported, so a pseudonym is stable on this host (the report can say "the
same account, 40 times") and meaningless anywhere else. Networks are truncated before hashing (IPv4
/24, IPv6 /48) so one attacker's neighbouring addresses count together.

Imports only the standard library (with normagent's ``dataclass``), normagent.digests (HMAC-SHA256 without
OpenSSL) and normagent.errors.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import field
from pathlib import Path

from normagent.digests import HmacSha256
from normagent.errors import StateError
from normagent.records import dataclass
from normagent.smallfile import FileTooLarge, NotRegularFile, read_small_stat

KEY_FILE = "pseudonym.key"
KEY_BYTES = 32
MAX_KEY_FILE_BYTES = 64 * 1024  # read up to this much of a wrong file, to say how long it is


@dataclass(frozen=True, slots=True)
class Pseudonymiser:
    """Turns raw values into stable, host-local pseudonyms."""

    key: bytes = field(repr=False)
    _keyed: HmacSha256 = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The keyed states are hashed once; each pseudonym copies them (a third cheaper per call).
        object.__setattr__(self, "_keyed", HmacSha256(self.key))

    def __call__(self, value: str) -> str:
        return self._keyed.hexdigest_of(value.encode("utf-8", "surrogatepass"))[:16]

    def many(self, values: Iterable[str]) -> list[str]:
        """``[self(value) for value in values]``, without a call per value: a firewall backlog
        names ~10,000 networks at once (issue 15)."""
        mac = self._keyed.hexdigest_of
        return [mac(value.encode("utf-8", "surrogatepass"))[:16] for value in values]

    def account(self, name: str) -> str:
        """Pseudonym of an account name, as given: ``admin`` and ``Admin`` differ.

        Whether they are one account depends on the system the name comes from (Linux user names
        are case-sensitive, Windows account names are not), so the caller folds the case where
        its source's names are case-insensitive, before asking.
        """
        return self("account:" + name.strip())

    def network(self, address: str) -> str | None:
        """Pseudonym of the /24 (IPv4) or /48 (IPv6) an address is in; ``None`` if it is no address."""
        net = network_of(address)
        return self("network:" + net) if net else None


def network_of(address: str) -> str | None:
    """The /24 or /48 network of an address, as text; IPv4-mapped IPv6 counts as IPv4.

    >>> network_of("203.0.113.77"), network_of("::ffff:198.51.100.9"), network_of("2001:db8:1:2::5")
    ('203.0.113.0/24', '198.51.100.0/24', '2001:db8:1::/48')
    """
    text = address.strip().strip("[]")
    if "%" in text:  # fe80::1%eth0
        text = text.split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def load_or_create_key(state_dir: Path, new: bytes | None = None) -> bytes:
    """Read the host's pseudonym key, creating it (mode 0600, atomically) on first start.

    Args:
        new: The key to write when there is none (default: a random one). The agent passes the key
            it holds when it puts back a state directory that was deleted under it.

    Raises:
        StateError: the key file exists with the wrong size or is readable by others.
    """
    path = state_dir / KEY_FILE
    try:
        return read_key(path)
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, os.urandom(KEY_BYTES) if new is None else new)  # what secrets.token_bytes returns
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process created the key first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return read_key(path)


def read_key(path: Path) -> bytes:
    """The pseudonym key in ``path``.

    Read without blocking and never whole: a FIFO there would hang the start before a word is
    logged, a device would never end.

    Raises:
        FileNotFoundError, PermissionError: as ``open`` would (no key there, or not ours to read).
        StateError: it is not a regular file, is readable by others or has the wrong size.
    """
    try:
        key, st = read_small_stat(path, MAX_KEY_FILE_BYTES)
    except (NotRegularFile, IsADirectoryError, FileTooLarge) as exc:
        raise StateError(f"{path}: pseudonym key {exc.strerror}, expected a file of {KEY_BYTES} bytes") from None
    mode = st.st_mode & 0o777
    if mode & 0o077:
        raise StateError(f"{path}: pseudonym key must be readable by its owner only (mode is {mode:04o}, expected 0600)")
    if len(key) != KEY_BYTES:
        raise StateError(f"{path}: pseudonym key has {len(key)} bytes, expected {KEY_BYTES}; remove it to create a new one")
    return key
