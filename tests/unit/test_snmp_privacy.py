"""SNMPv3 privacy (``normagent.sources.snmp_privacy``) held to pysnmp's engine, which encrypts
through ``cryptography`` (installed for the tests' pysnmp agent): for every privacy protocol and
every authentication hash, the same localised keys, the same ciphertexts for the same salts, and
each side decrypting the other. The known answers of RFC 3414 A.3 pin the key localisation on its
own, and the interoperability tests in test_snmp.py (31 users of a real snmpd, pysnmp's agent for
3DES) the whole exchange."""

from __future__ import annotations

import random
import sys

import pytest
from pyasn1.type import univ

from normagent.errors import SnmpError
from normagent.sources.snmp_privacy import PRIV_PROTOCOLS, Privacy
from tests.support.pysnmp_agent import ENGINE_AUTH_PROTOCOLS, ENGINE_PRIV_PROTOCOLS

AUTHS = sorted(set(ENGINE_AUTH_PROTOCOLS) - {"none"})
PRIVS = sorted(set(ENGINE_PRIV_PROTOCOLS) - {"none"})


def engine_services() -> tuple[dict[tuple[int, ...], object], dict[tuple[int, ...], object]]:
    """The authentication and privacy services pysnmp's engine uses, by the service id its
    configuration names a protocol by (what ``tests.support.pysnmp_agent`` configures)."""
    from pysnmp.proto.secmod.rfc3414.service import SnmpUSMSecurityModel

    return SnmpUSMSecurityModel.AUTH_SERVICES, SnmpUSMSecurityModel.PRIV_SERVICES


def test_every_protocol_the_configuration_offers_is_here() -> None:
    assert set(PRIV_PROTOCOLS) == set(PRIVS)


@pytest.mark.parametrize("priv", PRIVS)
@pytest.mark.parametrize("auth", AUTHS)
def test_keys_and_ciphertexts_are_those_of_pysnmp_s_engine(auth: str, priv: str) -> None:
    auth_services, priv_services = engine_services()
    auth_id = ENGINE_AUTH_PROTOCOLS[auth]
    assert auth_id in auth_services
    theirs = priv_services[ENGINE_PRIV_PROTOCOLS[priv]]
    rng = random.Random(f"{auth}/{priv}")
    for _ in range(8):
        passphrase = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzæøå0123456789 -") for _ in range(rng.randint(8, 40)))
        engine_id = rng.randbytes(rng.randint(5, 32))
        ours = Privacy(priv, auth, passphrase)
        key = ours.localize(engine_id)
        their_key = theirs.localize_key(auth_id, theirs.hash_passphrase(auth_id, passphrase), univ.OctetString(engine_id))  # type: ignore[attr-defined]
        assert key == bytes(their_key)
        assert len(key) == PRIV_PROTOCOLS[priv].key_size
        for size in (0, 1, 7, 8, 9, 15, 16, 17, 200, 1400):
            plaintext = rng.randbytes(size)
            boots, time = rng.randrange(0, 2**31), rng.randrange(0, 2**31)
            theirs.local_int = ours._salt  # type: ignore[attr-defined]  # the same next salt on both sides
            ciphertext, salt = ours.encrypt(key, boots, time, plaintext)
            their_ciphertext, their_salt = theirs.encrypt_data(univ.OctetString(key), (boots, time, None), plaintext)  # type: ignore[attr-defined]
            assert salt == bytes(their_salt)
            if PRIV_PROTOCOLS[priv].cipher != "AES" and size % 8 == 0:
                # pysnmp pads whole blocks with one more (RFC 3414 8.1.1.2 pads only what is not
                # whole); CBC's blocks before it are the same
                assert bytes(their_ciphertext) == ciphertext + bytes(their_ciphertext)[size:] and len(their_ciphertext) == size + 8
            else:
                assert ciphertext == bytes(their_ciphertext)
            # each decrypts the other's (CBC's padding stays: the BER inside says its length)
            decrypted = ours.decrypt(key, boots, time, salt, bytes(their_ciphertext))
            assert decrypted[:size] == plaintext and len(decrypted) == len(their_ciphertext)
            their_plain = theirs.decrypt_data(univ.OctetString(key), (boots, time, univ.OctetString(salt)), univ.OctetString(ciphertext))  # type: ignore[attr-defined]
            assert bytes(their_plain)[:size] == plaintext


def test_localisation_gives_rfc_3414_s_known_answers() -> None:
    """RFC 3414 A.3.1 and A.3.2: "maplesyrup" localised to engine id 00…02 (MD5 and SHA); AES
    takes the first 16 bytes, DES the key and the pre-IV."""
    engine_id = bytes(11) + b"\x02"
    md5 = bytes.fromhex("526f5eed9fcce26f8964c2930787d82b")
    sha = bytes.fromhex("6695febc9288e36282235fc7151f128497b38f3f")
    assert Privacy("DES", "MD5", "maplesyrup").localize(engine_id) == md5
    assert Privacy("AES", "SHA", "maplesyrup").localize(engine_id) == sha[:16]
    # the Reeder extension appends to the localised key (what it appends: the test above)
    extended = Privacy("AES256", "SHA", "maplesyrup").localize(engine_id)
    assert extended[:20] == sha and len(extended) == 32


def test_salts_count_on_and_never_repeat_between_devices() -> None:
    key = Privacy("AES", "SHA", "p" * 8).localize(b"engine-1")
    one, two = Privacy("AES", "SHA", "p" * 8), Privacy("AES", "SHA", "p" * 8)
    salts = [one.encrypt(key, 1, 2, b"x")[1] for _ in range(3)]
    assert [int.from_bytes(s, "big") for s in salts] == [(int.from_bytes(salts[0], "big") + i) % 2**64 for i in range(3)]
    assert two.encrypt(key, 1, 2, b"x")[1] not in salts  # a random start per device (2^-64 to fail)
    des = Privacy("DES", "MD5", "p" * 8)
    des._salt = 2**32 - 1  # type: ignore[attr-defined]
    des_key = des.localize(b"engine-1")
    assert des.encrypt(des_key, 7, 0, b"x")[1] == (7).to_bytes(4, "big") + b"\xff\xff\xff\xff"
    assert des.encrypt(des_key, 7, 0, b"x")[1] == (7).to_bytes(4, "big") + bytes(4)  # wraps to 0


@pytest.mark.parametrize("priv", PRIVS)
def test_an_answer_that_cannot_be_decrypted_is_a_value_error(priv: str) -> None:
    """What the device's receive loop drops (a ``ValueError``), never another exception."""
    privacy = Privacy(priv, "SHA", "passphrase")
    key = privacy.localize(b"engine-1")
    for salt, data in ((b"", b"x" * 16), (b"s" * 7, b"x" * 16), (b"s" * 9, b"x" * 16)):
        with pytest.raises(ValueError, match="msgPrivacyParameters"):
            privacy.decrypt(key, 1, 1, salt, data)
    if PRIV_PROTOCOLS[priv].cipher != "AES":
        with pytest.raises(ValueError, match="whole blocks"):
            privacy.decrypt(key, 1, 1, b"s" * 8, b"x" * 13)
    else:
        assert len(privacy.decrypt(key, 1, 1, b"s" * 8, b"x" * 13)) == 13  # CFB: any length
    assert privacy.decrypt(key, 1, 1, b"s" * 8, b"") == b""


def test_unknown_protocols_and_a_missing_cipher_library_are_snmp_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SnmpError, match="unknown SNMPv3 privacy protocol 'ROT13'"):
        Privacy("ROT13", "SHA", "passphrase")
    with pytest.raises(SnmpError, match="needs an authentication protocol, not 'none'"):
        Privacy("AES", "none", "passphrase")
    with pytest.raises(SnmpError, match="needs a passphrase"):
        Privacy("AES", "SHA", "")
    import Cryptodome.Cipher

    monkeypatch.delattr(Cryptodome.Cipher, "AES", raising=False)
    monkeypatch.setitem(sys.modules, "Cryptodome.Cipher.AES", None)  # as if pycryptodomex were not installed
    with pytest.raises(SnmpError, match=r"SNMPv3 privacy \(AES\) needs the pycryptodomex package") as err:
        Privacy("AES", "SHA", "secret-passphrase")
    assert "secret-passphrase" not in str(err.value)


# In a fresh interpreter with the service's PYTHONOPTIMIZE=2 (pycryptodomex then loads its C
# modules through ctypes, as on a server without cffi): decrypt what the test encrypted, and say
# what was imported and whether a child process ran.
LIGHT_LOADER = r"""
import json, sys
ran = []
sys.addaudithook(lambda event, args: ran.append(event) if event in ("subprocess.Popen", "os.posix_spawn", "os.exec") else None)
from normagent.sources.snmp_privacy import Privacy
out = {}
for priv, key, salt, ciphertext in json.loads(sys.argv[1]):
    privacy = Privacy(priv, "SHA", "passphrase")
    out[priv] = privacy.decrypt(bytes.fromhex(key), 7, 9, bytes.fromhex(salt), bytes.fromhex(ciphertext)).hex()
raw_api = sys.modules["Cryptodome.Util._raw_api"]
print(json.dumps({"plain": out, "ran": ran, "architecture": raw_api.cached_architecture, "backend": raw_api.backend,
                  "imported": sorted(set(sys.modules) & {"ctypes.util", "shutil", "tempfile", "bz2", "lzma", "platform"})}))
"""


def test_pycryptodomex_loads_its_ciphers_without_ctypes_util_platform_or_a_child_process() -> None:
    """The loader imported lightly (``_import_loader``): ~1 MB less for an SNMPv3 device with
    privacy, no ``file`` run on the interpreter, and the ciphers decrypt as before."""
    import json
    import os
    import subprocess

    cases, plain = [], b"a scoped PDU, 43 bytes long: the plaintext."
    for priv in ("AES", "DES", "3DES"):
        privacy = Privacy(priv, "SHA", "passphrase")
        key = privacy.localize(b"engine-1")
        ciphertext, salt = privacy.encrypt(key, 7, 9, plain)
        cases.append([priv, key.hex(), salt.hex(), ciphertext.hex()])
    env = {**os.environ, "PYTHONOPTIMIZE": "2"}
    done = subprocess.run([sys.executable, "-c", LIGHT_LOADER, json.dumps(cases)], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])

    assert seen["backend"] == "ctypes"
    assert all(bytes.fromhex(text).startswith(plain) for text in seen["plain"].values()) and len(seen["plain"]) == 3
    assert seen["imported"] == [] and seen["ran"] == []
    assert seen["architecture"] == ["64bit", "ELF"]
