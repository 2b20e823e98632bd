"""SNMPv3 privacy through libcrypto (normagent.sources.snmp_cipher) against known answers and
against the ``cryptography`` package pysnmp would otherwise use, for every cipher the USM has."""

from __future__ import annotations

import os
import random

import pytest

from normagent.sources import snmp_cipher
from normagent.sources.snmp_cipher import CipherError, aes_cfb, crypt, des3_cbc, des_cbc


def _round_trip(factory, key: bytes, iv: bytes, data: bytes) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    encryptor = factory(key, iv).encryptor()
    ciphertext = encryptor.update(data) + encryptor.finalize()
    decryptor = factory(key, iv).decryptor()
    return ciphertext, decryptor.update(ciphertext) + decryptor.finalize()


def test_aes_128_cfb_known_answer() -> None:
    """NIST SP 800-38A, F.3.13 (CFB128-AES128.Encrypt), the first two blocks."""
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    iv = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    plain = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
    expected = bytes.fromhex("3b3fd92eb72dad20333449f8e83cfb4ac8a64537a0b3a93fcde3cdad9f1ce58b")
    assert _round_trip(aes_cfb, key, iv, plain) == (expected, plain)


def test_3des_cbc_known_answer() -> None:
    """NIST SP 800-67's TDEA example in CBC: the first block with a zero IV is its ECB block."""
    key = bytes.fromhex("0123456789abcdef23456789abcdef01456789abcdef0123")
    plain = b"The qufc"  # SP 800-67 B.1's first block
    expected = bytes.fromhex("a826fd8ce53b855f")
    assert _round_trip(des3_cbc, key, bytes(8), plain) == (expected, plain)


@pytest.mark.parametrize(
    ("ours", "key_size", "iv_size", "block"),
    [(aes_cfb, 16, 16, 1), (aes_cfb, 24, 16, 1), (aes_cfb, 32, 16, 1), (des_cbc, 8, 8, 8), (des3_cbc, 24, 8, 8)],
)
def test_every_usm_cipher_matches_cryptography(ours, key_size: int, iv_size: int, block: int) -> None:  # type: ignore[no-untyped-def]
    """What pysnmp's own ``_cryptography_cipher`` (over ``cryptography``) gives, byte for byte."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    def theirs(key: bytes, iv: bytes) -> Cipher:  # type: ignore[type-arg]
        if ours is aes_cfb:
            return Cipher(algorithms.AES(key), CFB(iv))
        return Cipher(TripleDES(key * 3 if ours is des_cbc else key), modes.CBC(iv))

    rng = random.Random(12)
    for size in (0, block, 3 * block, 1472 // block * block, *(rng.randrange(1, 600) * block for _ in range(20))):
        key, iv, data = os.urandom(key_size), os.urandom(iv_size), os.urandom(size)
        ciphertext, plain = _round_trip(ours, key, iv, data)
        assert (ciphertext, plain) == (_round_trip(theirs, key, iv, data)[0], data)


def test_refusals_are_errors_not_garbage() -> None:
    with pytest.raises(CipherError, match="not whole blocks"):
        crypt("des-ede3-cbc", bytes(24), bytes(8), b"seven b", encrypt=False)
    with pytest.raises(CipherError, match="key of 15"):
        crypt("aes-128-cfb", bytes(15), bytes(16), b"data", encrypt=True)


def test_pysnmp_gets_its_ciphers_from_libcrypto() -> None:
    import importlib

    import normagent.sources.snmp  # noqa: F401 - installs them

    for name, kind in snmp_cipher.PRIVACY_MODULES.items():
        module = importlib.import_module(name)
        assert module._cryptography_cipher is snmp_cipher._FACTORIES[kind]
        assert module.PysnmpCryptoError is False
