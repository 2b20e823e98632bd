"""normagent.digests: hashlib's digests and hmac's HMAC-SHA256, without loading OpenSSL."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from normagent import digests

CONSTRUCTORS = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512", "blake2b"]
# empty, one byte, either side of the 64- and 128-byte blocks, and a mebibyte
SIZES = [0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 1000, 1 << 20]


def data(size: int, seed: int = 0) -> bytes:
    return bytes((i * 131 + seed * 7 + (i >> 8)) & 0xFF for i in range(size))


@pytest.mark.parametrize("name", CONSTRUCTORS)
@pytest.mark.parametrize("size", SIZES)
def test_each_constructor_is_hashlibs(name: str, size: int) -> None:
    made: Callable[..., Any] = getattr(digests, name)
    value = data(size)

    ours, theirs = made(value), getattr(hashlib, name)(value)

    assert (ours.digest(), ours.hexdigest()) == (theirs.digest(), theirs.hexdigest())
    assert (ours.name, ours.digest_size, ours.block_size) == (theirs.name, theirs.digest_size, theirs.block_size)


@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_updates_in_pieces_and_copies_are_hashlibs(name: str) -> None:
    made: Callable[..., Any] = getattr(digests, name)
    ours, theirs = made(usedforsecurity=False), getattr(hashlib, name)(usedforsecurity=False)
    for size in SIZES[:-1]:
        ours.update(data(size, seed=size))
        theirs.update(data(size, seed=size))
    fork = ours.copy()
    fork.update(b"only in the copy")

    assert ours.hexdigest() == theirs.hexdigest()  # the copy's update left the original as it was
    theirs.update(b"only in the copy")
    assert fork.hexdigest() == theirs.hexdigest()


def test_blake2b_takes_hashlibs_keywords() -> None:
    key = b"per-process key"
    assert digests.blake2b(b"a\0b", key=key, digest_size=32).digest() == hashlib.blake2b(b"a\0b", key=key, digest_size=32).digest()


def test_a_missing_builtin_module_falls_back_to_hashlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build without CPython's own hash modules still hashes, through hashlib, imported on first call."""
    for module in ("_sha2", "_sha256"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails

    made = digests._builtin("sha256", "_sha2", "_sha256")

    assert made.__name__ == "sha256"
    assert made(b"abc", usedforsecurity=False).hexdigest() == hashlib.sha256(b"abc").hexdigest()


MESSAGES = [b"", b"a", b"network:203.0.113.0/24", data(63), data(64), data(65), data(1000), data(1 << 16)]


@pytest.mark.parametrize("key_size", range(201))
def test_hmac_sha256_is_hmacs_for_every_key_length(key_size: int) -> None:
    """Keys shorter than, as long as and longer than the 64-byte block (a longer one is hashed first)."""
    key = data(key_size, seed=key_size)
    for message in MESSAGES:
        want = hmac.new(key, message, hashlib.sha256)

        made = digests.HmacSha256(key, message)
        fed = digests.HmacSha256(key)
        fed.update(message[:10])
        fed.update(message[10:])

        assert made.digest() == fed.digest() == want.digest()
        assert made.hexdigest() == fed.hexdigest() == digests.HmacSha256(key).hexdigest_of(message) == want.hexdigest()


def test_hmac_copies_and_hexdigest_of_are_independent() -> None:
    key = b"k" * 32
    mac = digests.HmacSha256(key, b"head:")
    copy = mac.copy()
    copy.update(b"copy")
    once = mac.hexdigest_of(b"value")
    mac.update(b"rest")
    mac.digest()  # a digest does not end the MAC: more may be fed
    mac.update(b"more")

    assert copy.hexdigest() == hmac.new(key, b"head:copy", hashlib.sha256).hexdigest()
    assert once == hmac.new(key, b"head:value", hashlib.sha256).hexdigest()
    assert mac.hexdigest() == hmac.new(key, b"head:restmore", hashlib.sha256).hexdigest()
    assert (mac.name, mac.digest_size, mac.block_size) == ("hmac-sha256", 32, 64)


@pytest.mark.parametrize(("a", "b", "equal"), [(b"", b"", True), (b"abc", b"abc", True), (b"abc", b"abd", False),
                                               (b"abc", b"ab", False), ("abc", "abc", True)])
def test_compare_digest_is_hmacs(a: Any, b: Any, equal: bool) -> None:
    assert digests.compare_digest(a, b) is hmac.compare_digest(a, b) is equal


def test_nothing_here_loads_openssl() -> None:
    """In a fresh interpreter, every function of normagent.digests and the pseudonyms load neither
    ``_hashlib`` (OpenSSL's libcrypto, 3.7 MB) nor what imports it."""
    probe = textwrap.dedent(
        """
        import json, sys, tempfile
        from pathlib import Path
        from normagent import digests
        from normagent.privacy import Pseudonymiser, load_or_create_key

        for name in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "blake2b"):
            h = getattr(digests, name)(b"x", usedforsecurity=False)
            h.update(b"y")
            h.copy().hexdigest()
        mac = digests.HmacSha256(b"k" * 100, b"m")
        mac.copy().update(b"n")
        mac.hexdigest_of(b"o"), mac.digest(), digests.compare_digest(b"a", b"a")
        with tempfile.TemporaryDirectory() as state:
            p = Pseudonymiser(load_or_create_key(Path(state)))
        p.account("admin"), p.network("203.0.113.7"), p.many(["a", "b"])
        print(json.dumps(sorted(set(sys.modules) & {"_hashlib", "hashlib", "hmac", "secrets", "ssl", "_ssl"})))
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
