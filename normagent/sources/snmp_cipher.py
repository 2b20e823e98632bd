"""SNMPv3 privacy (AES-CFB, DES and 3DES-CBC) through the OpenSSL the interpreter has loaded already.

pysnmp 7 encrypts with the ``cryptography`` package, which it imports with its USM modules (every
SNMP session, v2c too). That package is a 15 MB Rust extension; importing it and initialising its
OpenSSL backend cost the idle agent with one SNMP device about 7 MB of resident memory
(bench/README.md, "SNMP: what one device costs") — for a few hundred bytes of AES per poll. The
interpreter's ``ssl`` module (which asyncio imports whatever the agent does) has OpenSSL's
``libcrypto`` mapped already; its EVP cipher functions, called through ``ctypes`` (which the agent
has for ``malloc_trim``), do the same transformation for nothing.

``pysnmp_modules()`` imports pysnmp's three privacy modules with ``cryptography`` hidden and
hands each the cipher factory it expects (``_cryptography_cipher(key, iv)``: an object with
``encryptor()`` and ``decryptor()``, each with ``update`` and ``finalize``): RFC 3826 AES-CFB128
(and the 192/256-bit variants, which inherit it), RFC 3414 DES-CBC (as pysnmp does it: 3DES with
the key three times) and 3DES-EDE-CBC. pysnmp keeps doing everything else (keys, salts, IVs, the
USM). Where libcrypto cannot be loaded (no such library, an OpenSSL without these ciphers), nothing
is hidden or replaced and pysnmp uses ``cryptography`` as before.

Imports only the standard library.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# sonames to try when /proc/self/maps does not name the libcrypto the interpreter loaded
_SONAMES = ("libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so")
# pysnmp's modules whose ``_cryptography_cipher`` is replaced, with the cipher each uses
PRIVACY_MODULES = {
    "pysnmp.proto.secmod.rfc3826.priv.aes": "aes-cfb",  # and AES192/256 (eso.priv.aesbase)
    "pysnmp.proto.secmod.rfc3414.priv.des": "des-cbc",
    "pysnmp.proto.secmod.eso.priv.des3": "3des-cbc",
}
_lock = threading.Lock()


class CipherError(ValueError):
    """OpenSSL refused a key, an IV or the data (pysnmp turns it into a decryption error)."""


@dataclass(frozen=True, slots=True)
class _Lib:
    """libcrypto's EVP functions, typed once."""

    dll: Any
    ciphers: dict[str, int]  # "aes-128-cfb" … → the EVP_CIPHER pointer


@functools.cache
def libcrypto() -> _Lib | None:
    """The EVP functions of the libcrypto this process has loaded (``ssl`` is imported first),
    or ``None`` where there is none with AES-CFB128 and 3DES-CBC."""
    import ssl  # noqa: F401 - maps libcrypto (asyncio has imported it already)

    for name in (*_mapped_libcrypto(), *_SONAMES):
        try:
            dll = ctypes.CDLL(name)
            return _typed(dll)
        except (OSError, AttributeError):
            continue
    return None


def _mapped_libcrypto() -> list[str]:
    """The path of the libcrypto mapped into this process (Linux), so no other copy is loaded."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "/libcrypto.so" in line}
    except OSError:
        return []
    return sorted(paths)


def _typed(dll: Any) -> _Lib:
    p, c_int = ctypes.c_void_p, ctypes.c_int
    dll.EVP_CIPHER_CTX_new.restype = p
    dll.EVP_CIPHER_CTX_new.argtypes = []
    dll.EVP_CIPHER_CTX_free.restype = None
    dll.EVP_CIPHER_CTX_free.argtypes = [p]
    dll.EVP_CIPHER_CTX_set_padding.argtypes = [p, c_int]
    dll.EVP_CipherInit_ex.argtypes = [p, p, p, ctypes.c_char_p, ctypes.c_char_p, c_int]
    dll.EVP_CipherUpdate.argtypes = [p, ctypes.c_char_p, ctypes.POINTER(c_int), ctypes.c_char_p, c_int]
    dll.EVP_CipherFinal_ex.argtypes = [p, ctypes.c_char_p, ctypes.POINTER(c_int)]
    ciphers = {}
    for name, symbol in (
        ("aes-128-cfb", "EVP_aes_128_cfb128"),
        ("aes-192-cfb", "EVP_aes_192_cfb128"),
        ("aes-256-cfb", "EVP_aes_256_cfb128"),
        ("des-ede3-cbc", "EVP_des_ede3_cbc"),
    ):
        function = getattr(dll, symbol)
        function.restype = p
        function.argtypes = []
        pointer = function()
        if not pointer:
            raise AttributeError(f"{symbol} returned no cipher")
        ciphers[name] = pointer
    return _Lib(dll, ciphers)


def crypt(cipher: str, key: bytes, iv: bytes, data: bytes, *, encrypt: bool) -> bytes:
    """``data`` en- or decrypted with ``cipher`` (``"aes-128-cfb"``, ``"des-ede3-cbc"``…),
    without padding (SNMP's USM pads DES itself, and CFB needs none).

    Raises:
        CipherError: OpenSSL refused (a wrong key length, CBC data not a multiple of the block).
        RuntimeError: no usable libcrypto (``libcrypto()`` is ``None``).
    """
    lib = libcrypto()
    if lib is None:
        raise RuntimeError("no libcrypto with AES-CFB128 and 3DES-CBC in this process")
    dll = lib.dll
    ctx = dll.EVP_CIPHER_CTX_new()
    if not ctx:
        raise MemoryError("EVP_CIPHER_CTX_new failed")
    try:
        # The key length and IV length are the cipher's; OpenSSL reads that many bytes.
        if dll.EVP_CipherInit_ex(ctx, lib.ciphers[cipher], None, None, None, int(encrypt)) != 1:
            raise CipherError(f"{cipher}: cannot initialise")
        expected_key, expected_iv = _KEY_IV[cipher]
        if len(key) != expected_key or len(iv) != expected_iv:
            raise CipherError(f"{cipher}: key of {len(key)} and IV of {len(iv)} bytes, expected {expected_key} and {expected_iv}")
        if dll.EVP_CipherInit_ex(ctx, None, None, key, iv, int(encrypt)) != 1:
            raise CipherError(f"{cipher}: key or IV refused")
        dll.EVP_CIPHER_CTX_set_padding(ctx, 0)
        out = ctypes.create_string_buffer(len(data) + 32)
        written, tail = ctypes.c_int(0), ctypes.c_int(0)
        if dll.EVP_CipherUpdate(ctx, out, ctypes.byref(written), data, len(data)) != 1:
            raise CipherError(f"{cipher}: update failed")
        rest = ctypes.cast(ctypes.addressof(out) + written.value, ctypes.c_char_p)
        if dll.EVP_CipherFinal_ex(ctx, rest, ctypes.byref(tail)) != 1:
            raise CipherError(f"{cipher}: {len(data)} bytes are not whole blocks")
        return out.raw[: written.value + tail.value]
    finally:
        dll.EVP_CIPHER_CTX_free(ctx)


_KEY_IV = {"aes-128-cfb": (16, 16), "aes-192-cfb": (24, 16), "aes-256-cfb": (32, 16), "des-ede3-cbc": (24, 8)}


class _Context:
    """What pysnmp calls on ``cipher.encryptor()``: ``update(data)`` then ``finalize()``."""

    def __init__(self, cipher: str, key: bytes, iv: bytes, encrypt: bool) -> None:
        self._args = (cipher, key, iv)
        self._encrypt = encrypt
        self._data: list[bytes] = []

    def update(self, data: bytes) -> bytes:
        # pysnmp calls update once with the whole message; the result comes with finalize().
        self._data.append(bytes(data))
        return b""

    def finalize(self) -> bytes:
        cipher, key, iv = self._args
        return crypt(cipher, key, iv, b"".join(self._data), encrypt=self._encrypt)


class Cipher:
    """Stands in for the ``cryptography`` ``Cipher`` pysnmp builds in ``_cryptography_cipher``."""

    def __init__(self, cipher: str, key: bytes, iv: bytes) -> None:
        self._cipher, self._key, self._iv = cipher, bytes(key), bytes(iv)

    def encryptor(self) -> _Context:
        return _Context(self._cipher, self._key, self._iv, True)

    def decryptor(self) -> _Context:
        return _Context(self._cipher, self._key, self._iv, False)


def aes_cfb(key: bytes, iv: bytes) -> Cipher:
    """RFC 3826's AES-CFB128 (the key's length chooses AES-128, -192 or -256)."""
    return Cipher(f"aes-{len(key) * 8}-cfb" if len(key) in (16, 24, 32) else "aes-128-cfb", key, iv)


def des_cbc(key: bytes, iv: bytes) -> Cipher:
    """RFC 3414's DES-CBC as pysnmp computes it: 3DES-EDE with the 8-byte key three times."""
    return Cipher("des-ede3-cbc", bytes(key) * 3, iv)


def des3_cbc(key: bytes, iv: bytes) -> Cipher:
    """3DES-EDE-CBC (draft-reeder-snmpv3-usm-3desede) with its 24-byte key."""
    return Cipher("des-ede3-cbc", key, iv)


_FACTORIES = {"aes-cfb": aes_cfb, "des-cbc": des_cbc, "3des-cbc": des3_cbc}


@contextmanager
def _cryptography_hidden() -> Iterator[None]:
    """Make ``import cryptography`` fail while pysnmp's privacy modules are imported (they catch
    the ``ImportError``); a ``cryptography`` already imported is left where it is."""
    if "cryptography" in sys.modules:
        yield
        return
    sys.modules["cryptography"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get("cryptography", 0) is None:
            del sys.modules["cryptography"]


def pysnmp_modules() -> bool:
    """Import pysnmp's privacy modules with their ciphers on libcrypto (once per process; call it
    before anything else of pysnmp is imported). Returns whether libcrypto is used; if not,
    pysnmp imports and uses ``cryptography`` as it would without this module."""
    import importlib

    with _lock:
        if libcrypto() is None:
            return False
        with _cryptography_hidden():
            # In pysnmp's own order (its USM package imports them; importing ``aes`` first
            # runs into a circular import).
            importlib.import_module("pysnmp.entity.config")
            modules = {name: importlib.import_module(name) for name in PRIVACY_MODULES}
        for name, module in modules.items():
            if not callable(getattr(module, "_cryptography_cipher", None)) or not hasattr(module, "PysnmpCryptoError"):
                # A pysnmp whose privacy modules changed: without cryptography it would refuse
                # every authPriv request, so say so at once.
                raise RuntimeError(f"{name} has no _cryptography_cipher to replace (pysnmp changed)")
            setattr(module, "_cryptography_cipher", _FACTORIES[PRIVACY_MODULES[name]])
            setattr(module, "PysnmpCryptoError", False)
        return True
