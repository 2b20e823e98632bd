"""SNMPv3 privacy: the user's privacy key localised to an agent, and the messages' ciphers.

pysnmp's privacy services encrypt through the ``cryptography`` package: 8 MB of resident memory
for its Rust bindings and OpenSSL's cipher tables, most of what an SNMPv3 device cost the idle
agent (bench/README.md, "SNMP: v3 privacy without cryptography"); their AES and DES modes are
also ones ``cryptography`` has deprecated and moved aside. The three block ciphers SNMP uses are
here from ``pycryptodomex`` (its ``Cryptodome`` package: each cipher a small C module, about
0.35 MB in all with its loader imported lightly, ``_import_loader``), and what makes them SNMP's
is the protocols' own text:

- **keys**: the passphrase hashed to a master key and localised to the agent's engine id
  (RFC 3414 A.2) by pysnmp's ``localkey`` functions, the user's authentication hash deciding the
  hash; 3DES, AES-192 and AES-256 need more bytes than one hash gives, and get them as the Reeder
  draft (draft-reeder-snmpv3-usm-3desede 2.1) says and as pysnmp's engine, Cisco and net-snmp
  (AES-192-C, AES-256-C) do: the key so far hashed as if a passphrase, localised again, appended;
- **DES** (RFC 3414 8.1.1): DES-CBC with the key's first 8 bytes; the salt the agent's boots and a
  32-bit counter of ours, the IV the key's next 8 bytes (the pre-IV) XOR the salt; the plaintext
  padded to 8 bytes;
- **3DES** (draft-reeder-snmpv3-usm-3desede 5.1.1): the same with 3DES-EDE, a 24-byte key and the
  pre-IV after it;
- **AES** (RFC 3826 3.1.2.1, and 128/192/256-bit keys): CFB with 128-bit segments, the salt a
  64-bit counter, the IV the agent's boots, its time and the salt.

``tests/unit/test_snmp_privacy.py`` holds every protocol to pysnmp's own services (with
``cryptography``, installed for the tests' pysnmp agent): the same localised keys, the same
ciphertexts for the same salts, each side decrypting the other.
"""

from __future__ import annotations

import importlib
import os
import struct
import sys
from collections.abc import Callable
from typing import Any, Literal

from pyasn1.type import univ

from normagent import digests
from normagent.errors import SnmpError
from normagent.records import dataclass
from normagent.standin import StandIn, standing_in

Cipher = Literal["DES", "DES3", "AES"]  # its module in Cryptodome.Cipher


@dataclass(frozen=True, slots=True)
class PrivProtocol:
    """What a privacy protocol takes: its cipher, the localised key's length (the cipher's key, and
    for DES and 3DES the 8-byte pre-IV after it) and its salt counter's bits."""

    cipher: Cipher
    key_size: int
    salt_bits: int


PRIV_PROTOCOLS: dict[str, PrivProtocol] = {
    "DES": PrivProtocol("DES", 16, 32),
    "3DES": PrivProtocol("DES3", 32, 32),
    "AES": PrivProtocol("AES", 16, 64),
    "AES192": PrivProtocol("AES", 24, 64),
    "AES256": PrivProtocol("AES", 32, 64),
}

# The authentication protocol decides the hash of the privacy key's localisation (RFC 3414 A.2;
# RFC 7860 for the SHA-2 family). CPython's own hash modules, not hashlib's OpenSSL (normagent.digests).
KEY_HASHES: dict[str, Callable[..., Any]] = {
    "MD5": digests.md5,
    "SHA": digests.sha1,
    "SHA224": digests.sha224,
    "SHA256": digests.sha256,
    "SHA384": digests.sha384,
    "SHA512": digests.sha512,
}


class Privacy:
    """One user's privacy at one device: the master key (the passphrase hashed once, a megabyte's
    worth: kept), and a salt counter of its own.

    The counter starts at a random value per instance, so two devices (or a device made again
    after a failure) never count through the same salts with one key (RFC 3414 8.1.1.1 and
    RFC 3826 3.1.2.1 ask that a salt never repeat under a key)."""

    def __init__(self, protocol: str, auth_protocol: str, passphrase: str) -> None:
        if protocol not in PRIV_PROTOCOLS:
            raise SnmpError(f"unknown SNMPv3 privacy protocol {protocol!r}")
        if auth_protocol not in KEY_HASHES:
            raise SnmpError(f"SNMPv3 privacy needs an authentication protocol, not {auth_protocol!r}")
        if not passphrase:  # RFC 3414 A.2.1 repeats it to a megabyte: nothing repeats to nothing
            raise SnmpError("SNMPv3 privacy needs a passphrase")
        self.protocol = PRIV_PROTOCOLS[protocol]
        self._hash = KEY_HASHES[auth_protocol]
        self._localkey = _localkey()
        self._master = bytes(self._localkey.hash_passphrase(passphrase, self._hash))
        self._salt = int.from_bytes(os.urandom(self.protocol.salt_bits // 8), "big")  # secrets.randbits
        # the cipher module, imported here so a device without privacy never loads it
        self._module = _cipher_module(self.protocol.cipher)

    def localize(self, engine_id: bytes) -> bytes:
        """The privacy key localised to the agent ``engine_id``, extended to the protocol's length."""
        localkey, engine = self._localkey, univ.OctetString(engine_id)
        key = bytes(localkey.localize_key(self._master, engine, self._hash))
        while len(key) < self.protocol.key_size:
            key += bytes(localkey.localize_key(bytes(localkey.hash_passphrase(key, self._hash)), engine, self._hash))
        return key[: self.protocol.key_size]

    def encrypt(self, key: bytes, boots: int, time: int, plaintext: bytes) -> tuple[bytes, bytes]:
        """``(ciphertext, msgPrivacyParameters)`` of ``plaintext`` (a scoped PDU's BER) for a
        message that carries ``boots`` and ``time``; each call takes the next salt."""
        bits = self.protocol.salt_bits
        counter, self._salt = self._salt, (self._salt + 1) % (1 << bits)
        if self.protocol.cipher == "AES":
            salt = counter.to_bytes(8, "big")
            return self._aes(key, boots, time, salt).encrypt(plaintext), salt
        salt = (boots & 0xFFFFFFFF).to_bytes(4, "big") + counter.to_bytes(4, "big")
        padded = plaintext + b"\x00" * (-len(plaintext) % 8)  # RFC 3414 8.1.1.2: any padding
        return self._cbc(key, salt).encrypt(padded), salt

    def decrypt(self, key: bytes, boots: int, time: int, salt: bytes, ciphertext: bytes) -> bytes:
        """The plaintext of an answer's ``ciphertext`` (``ValueError`` when it cannot be: a salt
        that is not 8 bytes, a CBC ciphertext that is not whole blocks). What a wrong key gives is
        garbage, which the caller's decoding refuses."""
        if len(salt) != 8:
            raise ValueError(f"msgPrivacyParameters of {len(salt)} bytes, not 8")
        if self.protocol.cipher == "AES":
            return bytes(self._aes(key, boots, time, salt).decrypt(ciphertext))
        if len(ciphertext) % 8:
            raise ValueError(f"a CBC ciphertext of {len(ciphertext)} bytes, not whole blocks of 8")
        return bytes(self._cbc(key, salt).decrypt(ciphertext))

    def _aes(self, key: bytes, boots: int, time: int, salt: bytes) -> Any:
        iv = (boots & 0xFFFFFFFF).to_bytes(4, "big") + (time & 0xFFFFFFFF).to_bytes(4, "big") + salt
        return self._module.new(key[: self.protocol.key_size], self._module.MODE_CFB, iv=iv, segment_size=128)

    def _cbc(self, key: bytes, salt: bytes) -> Any:
        size = self.protocol.key_size - 8  # the cipher's key; the pre-IV after it
        iv = bytes(a ^ b for a, b in zip(key[size : size + 8], salt))
        return self._module.new(key[:size], self._module.MODE_CBC, iv=iv)


def _cipher_module(cipher: Cipher) -> Any:
    """pycryptodomex's module for ``cipher``; a clear error where it is not installed."""
    try:
        _import_loader()
        return importlib.import_module(f"Cryptodome.Cipher.{cipher}")
    except ImportError as exc:
        raise SnmpError(f"SNMPv3 privacy ({cipher}) needs the pycryptodomex package: {exc}") from None


def _import_loader() -> None:
    """Import pycryptodomex's loader of its C modules (``Cryptodome.Util._raw_api``) lightly.

    It imports ``ctypes.util`` for ``find_library``, which it calls only for a bare library name
    (its own modules are loaded by path): ``ctypes.util`` brings shutil, tempfile, bz2, lzma and
    random, about 1 MB of the idle agent's memory (issue 15). It stands in here, the real one
    imported if ``find_library`` is ever called. And the first module loaded asks
    ``platform.architecture()``, which imports ``platform`` and runs ``file`` on the interpreter
    in a child process, to learn whether the platform is Windows: told here instead (ELF, the
    interpreter's pointer width), in the list pycryptodomex keeps the answer in; a version of it
    without that list asks ``platform`` as before.
    """
    if "Cryptodome.Util._raw_api" in sys.modules:
        return
    util = StandIn("ctypes.util", "ctypes.util, imported if pycryptodomex looks a library up by name (snmp_privacy)",
                   {"find_library": _find_library})
    with standing_in([util]):
        loader = importlib.import_module("Cryptodome.Util._raw_api")
    asked = getattr(loader, "cached_architecture", None)
    if isinstance(asked, list) and not asked:
        asked[:] = [f"{struct.calcsize('P') * 8}bit", "ELF"]


def _find_library(name: str) -> str | None:
    found: str | None = importlib.import_module("ctypes.util").find_library(name)
    return found


def _localkey() -> Any:
    """pysnmp's RFC 3414 A.2 functions (``hash_passphrase``, ``localize_key``), imported as
    ``snmp_usm`` imports pysnmp's security services: without the engine's USM."""
    from normagent.sources.snmp_usm import secmod  # here: snmp_usm imports this module

    return secmod("rfc3414.localkey")
