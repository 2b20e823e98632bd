"""Hashes and HMAC-SHA256 from CPython's own hash modules, never OpenSSL's.

Why not ``hashlib``: importing it loads ``_hashlib``, CPython's binding of OpenSSL's libcrypto,
whose mapped pages and initialisation heap cost the agent some 3.7 MB of resident memory for as
long as it runs (``hmac`` and ``secrets`` import it too). The interpreter ships its own small hash
modules (``_sha1``, ``_sha256`` — ``_sha2`` from 3.12 —, ``_sha512``, ``_md5``, ``_blake2``):
the same digests, each a few kilobytes. Here they are taken from those; only where a build lacks
one does that constructor fall back to ``hashlib``, on its first call.

``Hmac`` is RFC 2104's HMAC over those hashes (SHA-256 unless told: ``HmacSha256``), with
``hmac.HMAC``'s ``copy``, ``update``, ``digest`` and ``hexdigest``, and ``new`` is ``hmac.new``
over them (SNMPv3's authentication, ``snmp_usm``); ``hexdigest_of`` is the pseudonyms' hot path
(one value, one MAC, from states keyed once). ``compare_digest`` is ``hmac.compare_digest``
without ``hmac``.

``tests/unit/test_digests.py`` holds every constructor to ``hashlib`` and the HMAC to ``hmac``,
and checks in a fresh interpreter that none of this loads ``_hashlib``.

Imports only the standard library (never ``hashlib``, ``hmac`` or ``secrets`` at import).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

from _operator import _compare_digest as compare_digest  # what hmac.compare_digest is, in C

__all__ = ["Hash", "Hmac", "HmacSha256", "blake2b", "compare_digest", "md5", "new", "sha1", "sha224", "sha256", "sha384", "sha512"]


class Hash(Protocol):
    """What a hash object offers (``hashlib``'s and the builtin modules' alike)."""

    @property
    def name(self) -> str: ...
    @property
    def digest_size(self) -> int: ...
    @property
    def block_size(self) -> int: ...
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> Hash: ...


HashConstructor = Callable[..., Hash]
"""Called as ``hashlib``'s are: ``(data=b"", *, usedforsecurity=True)`` (blake2b: and its keywords)."""


def _builtin(name: str, *modules: str) -> HashConstructor:
    """The constructor ``name`` of the first of ``modules`` this interpreter has; else one that
    imports ``hashlib`` when first called (a build without CPython's own hash modules)."""
    for module in modules:
        try:
            constructor: HashConstructor = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        return constructor

    def from_hashlib(*args: Any, **kwargs: Any) -> Hash:
        import hashlib  # noqa: PLC0415 - only where the interpreter has no builtin module for it

        made: Hash = getattr(hashlib, name)(*args, **kwargs)
        return made

    from_hashlib.__name__ = from_hashlib.__qualname__ = name
    return from_hashlib


md5 = _builtin("md5", "_md5")
sha1 = _builtin("sha1", "_sha1")
sha224 = _builtin("sha224", "_sha2", "_sha256")  # _sha2 from Python 3.12
sha256 = _builtin("sha256", "_sha2", "_sha256")
sha384 = _builtin("sha384", "_sha2", "_sha512")
sha512 = _builtin("sha512", "_sha2", "_sha512")
blake2b = _builtin("blake2b", "_blake2")

_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class Hmac:
    """HMAC (RFC 2104), as ``hmac.new(key, msg, digestmod)``, over one of this module's hashes
    (SHA-256 by default).

    The key's inner and outer states are hashed once, when the object is made; ``copy`` copies
    them, so a key used for many messages is keyed once (``Pseudonymiser``).
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes, msg: bytes = b"", digestmod: HashConstructor | None = None) -> None:
        make = digestmod or sha256
        inner = make()
        block = inner.block_size
        if len(key) > block:  # RFC 2104 2: a key longer than the block is hashed first
            key = make(key).digest()
        key = key.ljust(block, b"\0")
        inner.update(key.translate(_IPAD))
        self._inner = inner
        self._outer = make(key.translate(_OPAD))
        if msg:
            self._inner.update(msg)

    @property
    def name(self) -> str:
        return "hmac-" + self._inner.name

    @property
    def digest_size(self) -> int:
        return self._inner.digest_size

    @property
    def block_size(self) -> int:
        return self._inner.block_size

    def update(self, msg: bytes) -> None:
        """Feed ``msg`` to the MAC, after what it was fed before."""
        self._inner.update(msg)

    def copy(self) -> Hmac:
        """An independent MAC in this one's state."""
        other = Hmac.__new__(Hmac)
        other._inner = self._inner.copy()
        other._outer = self._outer  # never updated: ``digest`` hashes into a copy of it
        return other

    def digest(self) -> bytes:
        """The MAC of what was fed so far (more may be fed after)."""
        outer = self._outer.copy()
        outer.update(self._inner.digest())
        return outer.digest()

    def hexdigest(self) -> str:
        """``digest()`` as lower-case hex digits."""
        return self.digest().hex()

    def hexdigest_of(self, msg: bytes) -> str:
        """``hexdigest`` of the MAC of what was fed so far followed by ``msg``, leaving this one as
        it was: ``copy``, ``update`` and ``hexdigest`` without the Python object in between."""
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


HmacSha256 = Hmac
"""HMAC-SHA256: ``Hmac`` with its default hash (the pseudonyms' MAC)."""


def new(key: bytes, msg: bytes | None = None, digestmod: HashConstructor | None = None) -> Hmac:
    """``hmac.new``'s signature, over this module's hashes (``digestmod`` one of its constructors)."""
    return Hmac(key, msg or b"", digestmod)
