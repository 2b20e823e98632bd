"""SNMPv3 devices (RFC 3414's User-based Security Model) on a UDP socket of their own, without
pysnmp's engine.

An ``SnmpEngine`` per SNMPv3 device cost the idle agent about 15 MB for the first device and 1 MB
for each further one (its MIB tables), and 7 ms of CPU per idle poll (bench/README.md, "SNMP: what
a device costs the idle agent"). A manager polling one agent needs little of it: the agent's engine
id, boots and time (discovered once, RFC 3414 section 4), the user's keys localised to that engine
id, and the message processing of RFC 3412 section 7 and RFC 3414 section 3 for a request and its
answer. That is this module; what it does not do itself it takes from pysnmp, so the protocol is
pysnmp's, exactly as its engine would do it:

- the message and scoped-PDU types (``pysnmp.proto.mpmod.rfc3412``) and the PDU types and API of
  RFC 3416 (``pysnmp.proto.api.v2c``);
- password to key, key localisation (RFC 3414 A.2) and digests: pysnmp's authentication
  services, the very classes its engine's configuration names for each protocol
  (``pysnmp.entity.config``'s USM_AUTH_* constants, which normagent's engine path used until
  2026-12-07; a test pins it);
- privacy: ``snmp_privacy`` (the ciphers from pycryptodomex instead of pysnmp's services, which
  need ``cryptography``; a test holds it to pysnmp's services for every protocol);
- the Report OIDs and the error indications they become (``_REPORTS``: the engine's
  ``rfc3412._snmpErrors``, pinned by a test too).

pysnmp keeps those services under ``pysnmp.proto.secmod.rfc3414``, whose ``__init__`` imports the
engine's USM module, which imports pysnmp's SMI (the MIB builder and instrumentation) and every
cipher. ``secmod`` imports the service modules without running that ``__init__`` (see there), so
an SNMPv3 device brings the modules it uses and no more.

The USM state of a device — the agent's engine id, boots and time, the localised keys — is kept on
the device object, which the client keeps across polls and drops after a failed request
(``snmp.PysnmpSession``), so the next session discovers the agent afresh: a restarted agent (new
boots, maybe a new engine id) or a changed key costs one failed poll at most.

Imports only the standard library (with normagent's ``dataclass``), pyasn1, pysnmp's protocol
modules and normagent's leaf modules.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import constraint, namedtype, univ
from pysnmp.proto import errind, rfc1905
from pysnmp.proto.error import StatusInformation
from pysnmp.proto.api import v2c as v2c_api
from pysnmp.proto.mpmod.rfc3412 import ScopedPDU, SNMPv3Message

from normagent import digests
from normagent.errors import SnmpError
from normagent.model import SnmpAuth
from normagent.records import dataclass
from normagent.sources.snmp import UdpDevice, request_pdu
from normagent.sources.snmp_privacy import Privacy
from normagent.standin import StandIn, standing_in

# The service classes of every protocol normagent.sources.snmp offers, by module under
# pysnmp.proto.secmod, class and (SHA-2) the service id the class is made for: the classes
# pysnmp.entity.config's USM_AUTH_* / USM_PRIV_* constants stand for.
_AUTH_SERVICES: dict[str, tuple[str, str, str | None]] = {
    "MD5": ("rfc3414.auth.hmacmd5", "HmacMd5", None),
    "SHA": ("rfc3414.auth.hmacsha", "HmacSha", None),
    "SHA224": ("rfc7860.auth.hmacsha2", "HmacSha2", "SHA224_SERVICE_ID"),
    "SHA256": ("rfc7860.auth.hmacsha2", "HmacSha2", "SHA256_SERVICE_ID"),
    "SHA384": ("rfc7860.auth.hmacsha2", "HmacSha2", "SAH384_SERVICE_ID"),  # sic, pysnmp's name
    "SHA512": ("rfc7860.auth.hmacsha2", "HmacSha2", "SHA512_SERVICE_ID"),
}
_USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)  # usmStats of SNMP-USER-BASED-SM-MIB
NOT_IN_TIME_WINDOW = (*_USM_STATS, 2, 0)
UNKNOWN_ENGINE_IDS = (*_USM_STATS, 4, 0)
# What a Report with each of these counters means: the error indications pysnmp's engine gives
# (its rfc3412._snmpErrors), so a refusal reads the same with or without the engine.
_REPORTS: dict[tuple[int, ...], Any] = {
    (*_USM_STATS, 1, 0): errind.unsupportedSecurityLevel,
    NOT_IN_TIME_WINDOW: errind.notInTimeWindow,
    (*_USM_STATS, 3, 0): errind.unknownUserName,
    UNKNOWN_ENGINE_IDS: errind.unknownEngineID,
    (*_USM_STATS, 5, 0): errind.wrongDigest,
    (*_USM_STATS, 6, 0): errind.decryptionError,
}
NOT_DECRYPTED = errind.DecryptionError(
    "no answer to encrypted requests, but to an authenticated one: a wrong privacy key or protocol"
)
"""An agent that cannot decrypt a request drops it without a Report (net-snmp does: what a wrong
key decrypts to does not parse); an authenticated request without privacy that it answers tells
that apart from a lost packet."""

MAX_MESSAGE_SIZE = 65507  # msgMaxSize: the largest UDP payload, what pysnmp's engine announces
TIME_WINDOW = 150  # seconds (RFC 3414 section 2.2.3)
_MAX_BOOTS = 2147483647
_USM = 3  # msgSecurityModel
_REPORTABLE, _AUTH_FLAG, _PRIV_FLAG = 0x04, 0x01, 0x02
_LEVELS = {0: 1, _AUTH_FLAG: 2, _AUTH_FLAG | _PRIV_FLAG: 3}  # msgFlags' low bits → securityLevel


class UsmSecurityParameters(univ.Sequence):  # type: ignore[misc]  # pyasn1 is untyped
    """RFC 3414 section 2.4's msgSecurityParameters.

    pysnmp defines this type in its USM module (``rfc3414.service``), the one that imports its SMI;
    this is the same ASN.1 (without pysnmp's type-coercion mix-in, which only the engine's MIB
    instrumentation needs)."""

    componentType = namedtype.NamedTypes(  # noqa: N815 - pyasn1's name
        namedtype.NamedType("msgAuthoritativeEngineId", univ.OctetString()),
        namedtype.NamedType(
            "msgAuthoritativeEngineBoots", univ.Integer().subtype(subtypeSpec=constraint.ValueRangeConstraint(0, _MAX_BOOTS))
        ),
        namedtype.NamedType(
            "msgAuthoritativeEngineTime", univ.Integer().subtype(subtypeSpec=constraint.ValueRangeConstraint(0, _MAX_BOOTS))
        ),
        namedtype.NamedType("msgUserName", univ.OctetString().subtype(subtypeSpec=constraint.ValueSizeConstraint(0, 32))),
        namedtype.NamedType("msgAuthenticationParameters", univ.OctetString()),
        namedtype.NamedType("msgPrivacyParameters", univ.OctetString()),
    )


_USM_PACKAGE = "pysnmp.proto.secmod.rfc3414"
_import_lock = threading.Lock()


def secmod(name: str) -> ModuleType:
    """``pysnmp.proto.secmod.<name>``, without running ``pysnmp.proto.secmod.rfc3414``'s ``__init__``.

    That ``__init__`` is one line, ``from pysnmp.proto.secmod.rfc3414 import service``: the
    engine's USM, which imports pysnmp's SMI (MIB builder, instrumentation) and every cipher; and
    every service module (``localkey``, ``auth.hmacsha``, ``rfc7860.auth.hmacsha2``, the priv
    modules) imports a module of that package. So unless the package is already imported (an
    SNMPv1 device's engine), it is put in ``sys.modules`` as the import system would make it,
    ``__path__`` and all, but with its one name, ``SnmpUSMSecurityModel``, given on first access
    (PEP 562) rather than imported at once: ``pysnmp.entity.engine`` still finds it there.
    """
    with _import_lock:
        if _USM_PACKAGE not in sys.modules:
            spec = importlib.util.find_spec(_USM_PACKAGE)
            if spec is None:  # pragma: no cover - pysnmp without its USM
                raise SnmpError("pysnmp has no USM (pysnmp.proto.secmod.rfc3414)")
            package = importlib.util.module_from_spec(spec)
            setattr(package, "__getattr__", _usm_package_attribute)
            sys.modules[_USM_PACKAGE] = package
            setattr(sys.modules["pysnmp.proto.secmod"], "rfc3414", package)
        with _hashes_without_openssl():
            return importlib.import_module(f"pysnmp.proto.secmod.{name}")


@contextmanager
def _hashes_without_openssl() -> Iterator[None]:
    """Import pysnmp's USM services with ``hashlib`` and ``hmac`` standing in for the real ones.

    They do ``from hashlib import sha1`` and ``hmac.new(key, msg, sha256)``; ``hashlib`` and
    ``hmac`` import ``_hashlib``, which loads OpenSSL's libcrypto, about 3.7 MB of resident memory
    for as long as the agent runs, where CPython's own hash modules compute the same digests
    (``normagent.digests``; tests/unit/test_snmp.py reads a real snmpd with every protocol pair).
    Each stand-in is in ``sys.modules`` only during the import and only where the real module is
    not imported already; whoever else gets one meanwhile gets the real module's other names.
    """
    hashes = {name: getattr(digests, name) for name in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")}
    doc = "{}, its hashes from normagent.digests (normagent.sources.snmp_usm)"
    with standing_in([
        StandIn("hashlib", doc.format("hashlib"), hashes),
        StandIn("hmac", doc.format("hmac"), {"new": digests.new, "compare_digest": digests.compare_digest}),
    ]):
        yield


def _usm_package_attribute(name: str) -> Any:
    """What ``pysnmp.proto.secmod.rfc3414.__init__`` would have bound, imported when asked for."""
    if name == "SnmpUSMSecurityModel":
        from pysnmp.proto.secmod.rfc3414.service import SnmpUSMSecurityModel

        return SnmpUSMSecurityModel
    raise AttributeError(f"module {_USM_PACKAGE!r} has no attribute {name!r}")


def auth_service(protocol: str) -> tuple[Any, tuple[int, ...]]:
    """pysnmp's authentication service for ``protocol`` (a key of ``_AUTH_SERVICES``) and its
    service id (the OID pysnmp's engine configuration names the protocol by)."""
    module, name, id_name = _AUTH_SERVICES[protocol]
    cls = getattr(secmod(module), name)
    service_id: tuple[int, ...] = getattr(cls, id_name or "SERVICE_ID")
    return (cls(service_id) if id_name else cls()), service_id


@dataclass(frozen=True, slots=True)
class _Sent:
    """What a message in flight asked, to check its answer against."""

    level: int  # 1 noAuthNoPriv, 2 authNoPriv, 3 authPriv
    request_id: int
    discovery: bool = False


@dataclass(frozen=True, slots=True)
class _Answer:
    kind: str  # "response", "report" or "discovered"
    pdu: Any = None
    report: tuple[int, ...] | None = None  # a Report's first OID
    authenticated: bool = False
    engine: tuple[bytes, int, int] | None = None  # discovered: the agent's engine id, boots, time


@dataclass(frozen=True, slots=True)
class UsmSecurity:
    """Who a message is from and to, and the services and localised keys that protect it."""

    engine_id: bytes  # msgAuthoritativeEngineID
    user: bytes
    boots: int
    time: int
    auth: Any = None
    auth_key: Any = None
    priv: Privacy | None = None
    priv_key: bytes | None = None


def encode_message(msg_id: int, pdu: Any, flags: int, security: UsmSecurity, *, context: bytes) -> bytes:
    """An SNMPv3 message (RFC 3412 section 6, RFC 3414 3.1): ``pdu`` in the default context of the
    engine ``context``, encrypted by ``security.priv`` when ``flags`` ask for privacy, its digest
    set by ``security.auth`` (pysnmp's service) when they ask for authentication, with the keys
    localised to ``security.engine_id``."""
    scoped = ScopedPDU()
    scoped.setComponentByPosition(0, context)  # contextEngineID
    scoped.setComponentByPosition(1, b"")  # contextName: the default context
    scoped.setComponentByPosition(2)
    scoped.getComponentByPosition(2).setComponentByType(pdu.tagSet, pdu, verifyConstraints=False, matchTags=False, matchConstraints=False)
    message = SNMPv3Message()
    message["msgVersion"] = 3
    header = message["msgGlobalData"]
    header["msgID"] = msg_id
    header["msgMaxSize"] = MAX_MESSAGE_SIZE
    header["msgFlags"] = bytes([flags])
    header["msgSecurityModel"] = _USM
    params = UsmSecurityParameters()
    params["msgAuthoritativeEngineId"] = security.engine_id
    params["msgAuthoritativeEngineBoots"] = security.boots
    params["msgAuthoritativeEngineTime"] = security.time
    params["msgUserName"] = security.user
    authenticated = bool(flags & _AUTH_FLAG)
    # the digest's place, zeros until the message is encoded (RFC 3414 3.1.8a)
    params["msgAuthenticationParameters"] = b"\x00" * security.auth.digest_length if authenticated else b""
    if flags & _PRIV_FLAG:
        assert security.priv is not None and security.priv_key is not None
        plain = encoder.encode(scoped)
        encrypted, salt = security.priv.encrypt(security.priv_key, security.boots, security.time, plain)
        params["msgPrivacyParameters"] = salt
        message["msgData"]["encryptedPDU"] = encrypted
    else:
        params["msgPrivacyParameters"] = b""
        message["msgData"]["plaintext"] = scoped
    message["msgSecurityParameters"] = encoder.encode(params)
    whole: bytes = encoder.encode(message)
    if authenticated:
        whole = security.auth.authenticate_outgoing_message(security.auth_key, whole)
    return whole


class UsmDevice(UdpDevice):
    """An SNMPv3 device: a connected UDP socket on the client's loop, and the USM state of one user
    at one agent (see the module docstring).

    A request discovers the agent first if its engine id is not known (a noAuthNoPriv request that
    the agent answers with a Report of usmStatsUnknownEngineIDs carrying its engine id, boots and
    time), then goes out authenticated and encrypted as the user's level says. Its answer must
    carry the message id of a request in flight, be authenticated with the user's key (at the
    request's level for a Response), be timely (RFC 3414 3.2.7: the agent's boots not behind, its
    time within 150 s of our estimate) and decrypt; anything else is dropped and the request times
    out. A Report of usmStatsNotInTimeWindows, authenticated, carries the agent's time: the request
    is sent again once with it; one of usmStatsUnknownEngineIDs (the agent's engine id changed)
    makes the device discover it again, once. Any other Report is the error its counter says.
    """

    def __init__(self, target: str, auth: SnmpAuth, timeout: float, retries: int) -> None:
        super().__init__(target, timeout, retries)
        authenticated, private = auth.auth_protocol != "none", auth.priv_protocol != "none"
        self.user = auth.user.encode()
        self.level = 3 if private else 2 if authenticated else 1
        # pysnmp's authentication service and ``Privacy``, each with its master key (RFC 3414
        # A.2.1: a megabyte hashed each) made once per device, localised to the agent's engine id
        # when it is discovered.
        self._auth: Any = None
        self._auth_master: Any = None
        self._priv: Privacy | None = None
        if authenticated:
            self._auth, _ = auth_service(auth.auth_protocol)
            self._auth_master = self._auth.hash_passphrase(auth.auth_key)
        if private:
            self._priv = Privacy(auth.priv_protocol, auth.auth_protocol, auth.priv_key)
        self._auth_key: Any = None
        self._priv_key: bytes | None = None
        # The agent: engine id (None until discovered), boots, the latest time it sent and when.
        self.engine_id: bytes | None = None
        self.boots = 0
        self._time = 0
        self._synced_at = 0.0
        self._sent: dict[int, _Sent] = {}

    @classmethod
    def open(cls, host: str, port: int, auth: SnmpAuth, timeout: float, retries: int) -> UsmDevice:
        """The device's socket, connected to ``host`` (an address, or a name resolved by ``resolve``)."""
        device = cls(f"{host}:{port}", auth, timeout, retries)
        device._connect(host, port)
        return device

    # -- requests ------------------------------------------------------------------------------

    def request(self, kind: str, var_binds: list[tuple[Any, Any]], bulk: tuple[int, int] | None) -> Any:
        """``CommunityDevice.request`` for SNMPv3 (``kind`` "get" or "bulk"): ``(error indication,
        error status, error index, variable bindings)``."""
        api, pdu = request_pdu(kind, var_binds, bulk)
        discovered = resynced = rediscovered = False
        while True:
            if self.engine_id is None:
                if not self._discover():
                    return errind.requestTimedOut, 0, 0, []
                discovered = True
            answer = self._send(pdu, self.level)
            if answer is None:
                # Silence right after the agent answered the discovery: is it our encryption?
                if discovered and self.level == 3 and self._answers_unencrypted():
                    return NOT_DECRYPTED, 0, 0, []
                return errind.requestTimedOut, 0, 0, []
            if answer.kind == "response":
                response = answer.pdu
                return None, api.get_error_status(response), api.get_error_index(response, muteErrors=True), api.get_varbinds(response)
            if answer.report == NOT_IN_TIME_WINDOW and answer.authenticated and not resynced:
                resynced = True  # _match took the agent's boots and time from the Report
                continue
            if answer.report == UNKNOWN_ENGINE_IDS and not rediscovered:
                rediscovered = True
                self.forget()
                continue
            return _report_indication(answer.report), 0, 0, []

    def forget(self) -> None:
        """Drop what discovery found (the agent's engine id, boots, time, the localised keys)."""
        self.engine_id = self._auth_key = self._priv_key = None
        self.boots = self._time = 0

    def _discover(self) -> bool:
        """RFC 3414 section 4: a noAuthNoPriv GET with no variables, to no engine id and no user;
        the agent's Report names its engine id (and, from most agents, its boots and time, taken as
        a first estimate: an authenticated Report of usmStatsNotInTimeWindows corrects them).
        False if the agent did not answer."""
        pdu = v2c_api.GetRequestPDU()
        v2c_api.apiPDU.set_defaults(pdu)
        v2c_api.apiPDU.set_varbinds(pdu, [])
        msg_id = self._new_message_id()
        self._sent[msg_id] = _Sent(1, int(v2c_api.apiPDU.get_request_id(pdu)), discovery=True)
        try:
            datagram = self._message(msg_id, pdu, 1, engine_id=b"", user=b"", boots=0, time=0)
            answer = self._exchange(msg_id, datagram)
        finally:
            del self._sent[msg_id]
        if answer is None or answer.engine is None:
            return False
        engine_id, boots, time = answer.engine
        self.engine_id, self.boots = engine_id, boots
        self._set_time(time)
        engine = univ.OctetString(engine_id)
        if self._auth is not None:
            self._auth_key = self._auth.localize_key(self._auth_master, engine)
        if self._priv is not None:
            self._priv_key = self._priv.localize(engine_id)
        return True

    def _answers_unencrypted(self) -> bool:
        """Whether the agent answers an authenticated GET with no variables, sent without privacy
        (one attempt): it reads our digests, so silence to encrypted requests is our privacy key."""
        pdu = v2c_api.GetRequestPDU()
        v2c_api.apiPDU.set_defaults(pdu)
        v2c_api.apiPDU.set_varbinds(pdu, [])
        answer = self._send(pdu, 2, attempts=1)
        return answer is not None and answer.authenticated

    def _send(self, pdu: Any, level: int, *, attempts: int | None = None) -> _Answer | None:
        assert self.engine_id is not None
        msg_id = self._new_message_id()
        self._sent[msg_id] = _Sent(level, int(v2c_api.apiPDU.get_request_id(pdu)))
        try:
            datagram = self._message(msg_id, pdu, level, engine_id=self.engine_id, user=self.user,
                                     boots=self.boots, time=self._engine_time())
            answer: _Answer | None = self._exchange(msg_id, datagram, attempts=attempts)
            return answer
        finally:
            del self._sent[msg_id]

    def _new_message_id(self) -> int:
        while True:
            msg_id = 1 + int.from_bytes(os.urandom(4), "big") % (_MAX_BOOTS - 1)  # msgID: 0..2^31-1, unpredictable
            if msg_id not in self._sent:
                return msg_id

    def _engine_time(self) -> int:
        """Our estimate of the agent's snmpEngineTime now (RFC 3414 2.3)."""
        elapsed = time.monotonic() - self._synced_at
        return min(self._time + int(elapsed), _MAX_BOOTS)

    def _set_time(self, engine_time: int) -> None:
        self._time = engine_time
        self._synced_at = time.monotonic()

    def _message(self, msg_id: int, pdu: Any, level: int, *, engine_id: bytes, user: bytes, boots: int, time: int) -> bytes:
        """The request's whole message, reportable, encrypted and authenticated as ``level`` says."""
        flags = _REPORTABLE | (_AUTH_FLAG if level >= 2 else 0) | (_PRIV_FLAG if level == 3 else 0)
        security = UsmSecurity(engine_id, user, boots, time, self._auth, self._auth_key, self._priv, self._priv_key)
        try:
            return encode_message(msg_id, pdu, flags, security, context=engine_id)
        except (PyAsn1Error, ValueError) as exc:  # pysnmp's StatusInformation too; a cipher refusing its key: no value, no key
            indication = exc.get("errorIndication") if isinstance(exc, StatusInformation) else None
            raise SnmpError(f"SNMPv3 request to {self.target} could not be made: {indication or type(exc).__name__}") from None

    # -- answers -------------------------------------------------------------------------------

    def _match(self, data: bytes) -> tuple[int, _Answer] | None:
        """RFC 3412 7.2 and RFC 3414 3.2 for an answer: ``(message id, answer)``, or ``None`` (or a
        pyasn1/pysnmp error) for a datagram to drop."""
        message, _ = decoder.decode(data, asn1Spec=SNMPv3Message())
        header = message["msgGlobalData"]
        msg_id = int(header["msgID"])
        sent = self._sent.get(msg_id)
        level = _LEVELS.get(header["msgFlags"].asNumbers()[0] & (_AUTH_FLAG | _PRIV_FLAG))
        if sent is None or int(message["msgVersion"]) != 3 or int(header["msgSecurityModel"]) != _USM or level is None:
            return None
        params, _ = decoder.decode(message["msgSecurityParameters"].asOctets(), asn1Spec=UsmSecurityParameters())
        engine_id = params["msgAuthoritativeEngineId"].asOctets()
        boots, time = int(params["msgAuthoritativeEngineBoots"]), int(params["msgAuthoritativeEngineTime"])
        msg_data = message["msgData"]
        if sent.discovery:
            if level != 1 or msg_data.getName() != "plaintext" or not 5 <= len(engine_id) <= 32:
                return None
            if not isinstance(msg_data["plaintext"]["data"].getComponent(), rfc1905.ReportPDU):
                return None
            return msg_id, _Answer("discovered", engine=(engine_id, boots, time))
        if level > sent.level:
            return None
        if level >= 2:
            if params["msgUserName"].asOctets() != self.user or engine_id != self.engine_id:
                return None  # not ours to check: our keys are for this user at this engine
            # RFC 3414 3.2.6: raises pysnmp's StatusInformation (a PyAsn1Error) on a wrong digest
            self._auth.authenticate_incoming_message(self._auth_key, params["msgAuthenticationParameters"], data)
            if not self._timely(boots, time):
                return None
        if level == 3:
            if msg_data.getName() != "encryptedPDU" or self._priv is None or self._priv_key is None:
                return None
            salt = params["msgPrivacyParameters"].asOctets()
            plain = self._priv.decrypt(self._priv_key, boots, time, salt, msg_data["encryptedPDU"].asOctets())
            scoped, _ = decoder.decode(plain, asn1Spec=ScopedPDU())
        elif msg_data.getName() != "plaintext":
            return None
        else:
            scoped = msg_data["plaintext"]
        pdu = scoped["data"].getComponent()
        if isinstance(pdu, rfc1905.ReportPDU):
            binds = v2c_api.apiPDU.get_varbinds(pdu)
            report = tuple(binds[0][0]) if binds else None
            return msg_id, _Answer("report", report=report, authenticated=level >= 2)
        if not isinstance(pdu, rfc1905.ResponsePDU) or level != sent.level:
            return None  # RFC 3412 7.2.12b: a Response at the request's security level
        if int(v2c_api.apiPDU.get_request_id(pdu)) != sent.request_id:
            return None
        if scoped["contextEngineId"].asOctets() != self.engine_id or scoped["contextName"].asOctets() != b"":
            return None
        return msg_id, _Answer("response", pdu=pdu, authenticated=level >= 2)

    def _timely(self, boots: int, time: int) -> bool:
        """RFC 3414 3.2.7b for an authenticated message: take the agent's boots and time if they are
        later than the latest known, then whether the message is within the time window."""
        if boots > self.boots or (boots == self.boots and time > self._time):
            self.boots = boots
            self._set_time(time)
        if self.boots == _MAX_BOOTS or boots < self.boots:
            return False
        return abs(self._engine_time() - time) <= TIME_WINDOW


def _report_indication(report: tuple[int, ...] | None) -> Any:
    if report in _REPORTS:
        return _REPORTS[report]
    return errind.ReportPduReceived(".".join(map(str, report)) if report else "an empty Report")
