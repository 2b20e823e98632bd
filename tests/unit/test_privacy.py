"""Pseudonyms: stable per host, different across hosts, networks truncated, key kept private."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normagent.errors import StateError
from normagent.privacy import KEY_FILE, Pseudonymiser, load_or_create_key, network_of


def test_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)

    assert len(key) == 32
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    assert load_or_create_key(tmp_path) == key
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no temporary file left behind


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_or_create_key(tmp_path)
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with pytest.raises(StateError, match="readable by its owner only"):
        load_or_create_key(tmp_path)


def test_a_truncated_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(b"short")
    os.chmod(path, 0o600)
    with pytest.raises(StateError, match="has 5 bytes"):
        load_or_create_key(tmp_path)


@pytest.mark.parametrize(
    ("put", "said"),
    [
        (lambda p: os.mkfifo(p, 0o600), "pseudonym key is a FIFO (named pipe), not a regular file"),
        (lambda p: p.mkdir(mode=0o700), "pseudonym key is a directory, not a file"),
        (lambda p: p.symlink_to("/dev/zero"), "pseudonym key is a character device, not a regular file"),
    ],
    ids=["fifo", "directory", "dev-zero"],
)
def test_a_key_that_is_no_file_is_refused_without_blocking(tmp_path: Path, put: Any, said: str) -> None:
    """A FIFO as pseudonym.key hung the start (and `collect --once`) in open(); a directory ended
    it in a traceback (IsADirectoryError)."""
    path = tmp_path / KEY_FILE
    put(path)
    with pytest.raises(StateError) as err:
        load_or_create_key(tmp_path)
    assert str(err.value) == f"{path}: {said}, expected a file of 32 bytes"


def test_a_key_file_far_too_long_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    with path.open("wb") as f:
        f.truncate(2**40)  # sparse: a terabyte read whole would never end
    os.chmod(path, 0o600)
    with pytest.raises(StateError, match="pseudonym key is larger than 65,536 bytes"):
        load_or_create_key(tmp_path)


def test_pseudonyms_are_stable_per_key_and_differ_between_keys() -> None:
    one, two = Pseudonymiser(b"a" * 32), Pseudonymiser(b"b" * 32)
    assert one.account("admin") == one.account("admin ") != two.account("admin")
    assert one.account("Admin") != one.account("admin")  # the caller folds where names are case-insensitive
    assert len(one.account("admin")) == 16
    assert "admin" not in one.account("admin")


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("2001:db8:1:2::5", "2001:db8:1::/48"),
        ("[2001:db8::1]", "2001:db8::/48"),
        ("fe80::1%eth0", "fe80::/48"),
        ("example.org", None),
        ("", None),
    ],
)
def test_network_of(address: str, network: str | None) -> None:
    assert network_of(address) == network


def test_neighbouring_addresses_share_a_network_pseudonym() -> None:
    p = Pseudonymiser(b"k" * 32)
    assert p.network("203.0.113.5") == p.network("203.0.113.250") != p.network("203.0.114.5")
    assert p.network("not an address") is None


def test_a_pseudonym_is_hmac_sha256_of_the_value_cut_to_16_hex_digits() -> None:
    """The definition, pinned by value: pseudonyms in every ledger and report depend on it."""
    p = Pseudonymiser(b"k" * 32)
    assert p.network("203.0.113.77") == p("network:203.0.113.0/24") == "d45a294fbd57605b"
    assert p.account("admin") == "d2314354c9e0b1eb"
    assert p.many(["network:203.0.113.0/24", "account:admin"]) == ["d45a294fbd57605b", "d2314354c9e0b1eb"]


@settings(max_examples=160, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), values=st.lists(st.text(max_size=80), max_size=8))
def test_pseudonyms_one_by_one_and_many_at_once_are_the_definition(key: bytes, values: list[str]) -> None:
    """``hmac``'s HMAC-SHA256, one by one or many at once (surrogates as written), though the
    agent's is normagent.digests' (no OpenSSL)."""
    p = Pseudonymiser(key)
    want = [hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:16] for value in values]

    assert [p(value) for value in values] == p.many(values) == want
