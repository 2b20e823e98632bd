"""SNMP reads (GET, subtree walk) over pysnmp 7, behind the synchronous ``SnmpClient`` protocol.

Collectors are plain functions run on the scheduler's threads, and so are these reads: one device
object (with its UDP socket) per device, made by the device's first session and kept for the
client's life; ``client.session(...)`` hands the device to the calling thread, whose ``get`` and
``walk`` send and wait on that socket (one request at a time per device). No event loop: pysnmp 7's
own API is asyncio's, and asyncio imports ``ssl`` and with it OpenSSL (about 6 MB of resident
memory) that SNMPv1 and v2c never use. The agent keeps one client (``LazySnmpClient``) from start
to stop, and ``close()`` closes every device's socket. Devices (SNMPv1, v2c, v3) are a UDP socket each (``UdpDevice``: the
requests in flight, their retries, the rule that an answer counts only if it decodes and matches
one), with pysnmp's message and PDU types (``pysnmp.proto``) and pyasn1's BER codec, and no engine:
an SNMPv1 or v2c device (``CommunityDevice``) adds its community (and for v1 pysnmp's RFC 2576
translation of v1's PDUs to v2c's), an SNMPv3 device (``normagent.sources.snmp_usm.UsmDevice``,
imported with the first such device) RFC 3414's USM with pysnmp's own key localisation, digests
and ciphers. Nothing of pysnmp's engine (``SnmpEngine``), SMI or high-level API is imported.

Why a kept device and not one per session: the USM state of an SNMPv3 device (the agent's engine
id, boots and time, the localised keys) is found out once (a discovery, key localisation) and
kept (when pysnmp's ``SnmpEngine`` did it, an engine per session ran some thirty MIB modules anew
each time, in yet another of glibc's per-thread malloc arenas, which keep what is freed: the idle
agent with one SNMPv3 device grew from 65 to 97 MB in ten minutes; bench/README.md). A device whose
request failed (timeout, refused credentials, any error) is dropped and its next session starts
afresh, so a restarted agent (new engine id or boots) or a changed key costs one failed poll at
most.

Requests go by numeric OID straight into a PDU, without the high-level API's MIB lookup of every
OID asked and answered (bench/bench_snmp.py: 50 interfaces, 400 variables, in under 0.15 s).

SNMPv1 and v2c authenticate with a community; SNMPv3 with a USM user (``SnmpAuth.v3``): MD5 or
the SHA family for authentication, DES, 3DES or AES for privacy (``snmp_privacy``: pycryptodomex's
ciphers, about 1.4 MB of resident memory, imported only for a device with privacy; bench/README.md,
"SNMP: v3 privacy without cryptography").

Values come back as plain Python: integers of every SNMP integer type as ``int``, OCTET STRING and
its kin (Opaque, BITS) as ``bytes`` (a caller decodes what it knows to be text), OBJECT IDENTIFIER
and IpAddress as dotted ``str``, and noSuchObject / noSuchInstance / endOfMibView as ``None``.
Failures raise ``SnmpError`` (a ``ConnectionError``) or a narrower one: ``SnmpTimeout`` (also a
``TimeoutError``) when the agent does not answer, ``SnmpAuthError`` for an unknown user, a wrong
key (an SNMPv3 agent that answers an authenticated request but not an encrypted one: a wrong
privacy key) or an access-control refusal, ``SnmpTooManyRows`` for a walk beyond its limit. No
message holds a community string or a key.

Imports only the standard library (with normagent's ``dataclass``), pyasn1, pysnmp's protocol types
(``pysnmp.proto``) and
normagent's leaf modules; ``normagent.sources.snmp_usm`` (SNMPv3) and pysnmp's v1 API and RFC 2576
translation (SNMPv1) late.
"""

from __future__ import annotations

import abc
import ipaddress
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import field
from typing import TYPE_CHECKING, Any

from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pysnmp.proto import errind, rfc1902, rfc1905
from pysnmp.proto.api import v2c as v2c_api

from normagent.errors import SnmpAuthError, SnmpError, SnmpTimeout, SnmpTooManyRows
from normagent.hostnames import for_socket, split_host_port
from normagent.model import SnmpAuth, SnmpVarBind
from normagent.records import dataclass

if TYPE_CHECKING:
    from normagent.sources.snmp_usm import UsmDevice

Lookup = Callable[..., list[tuple[Any, ...]]]
"""``socket.getaddrinfo(host, port, *, family, type)``'s signature."""

__all__ = [
    "PysnmpClient",
    "PysnmpSession",
    "SnmpAuthError",
    "SnmpError",
    "SnmpTimeout",
    "SnmpTooManyRows",
    "check_auth",
    "resolve",
    "split_target",
    "to_python",
]

DEFAULT_PORT = 161
_ABSENT = (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)
# The SNMPv3 protocols pysnmp offers (normagent.sources.snmp_usm maps them to its services).
AUTH_PROTOCOLS = frozenset({"none", "MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"})
PRIV_PROTOCOLS = frozenset({"none", "DES", "3DES", "AES", "AES192", "AES256"})
# What an agent says when it does not accept who we are (RFC 3414 section 3.2 reports, and the
# USM processing of the answer on our side).
_AUTH_INDICATIONS = (
    errind.UnknownUserName,
    errind.UnknownSecurityName,
    errind.WrongDigest,
    errind.AuthenticationError,
    errind.AuthenticationFailure,
    errind.DecryptionError,
    errind.UnsupportedSecurityLevel,
    errind.UnsupportedAuthProtocol,
    errind.UnsupportedPrivProtocol,
    errind.NotInTimeWindow,
    errind.UnknownCommunityName,
)
_AUTH_STATUSES = frozenset({"authorizationError", "noAccess"})


IDLE_ENGINE_SECONDS = 3600.0
"""An engine no session used for this long is closed (a device removed by a reload, a changed key)."""


@dataclass(slots=True)
class _Engine:
    """A device kept by the client: how requests reach it, and what the client tracks of it.

    ``device`` is a ``CommunityDevice`` for SNMPv1 and v2c or a ``snmp_usm.UsmDevice`` for SNMPv3:
    a UDP socket and pysnmp's message and PDU types, and for v3 its USM state.
    """

    device: CommunityDevice | UsmDevice
    used: float
    # Rows the last walk of each subtree returned: the next walk's GETBULK asks for that many and
    # one more (the one past the subtree's end that ends the walk), not ``max_repetitions``.
    walked: dict[str, int] = field(default_factory=dict)


class PysnmpClient:
    """The ``SnmpClient`` protocol over pysnmp 7 (SNMP v1, v2c and v3).

    Args:
        max_repetitions: Rows asked for per GETBULK request of a walk (v2c, v3).
        max_varbinds: Variables per GET request; a longer list is split into several requests
            (and a request the agent answers ``tooBig`` is split again).
    """

    def __init__(self, *, max_repetitions: int = 25, max_varbinds: int = 40) -> None:
        if max_repetitions < 1 or max_varbinds < 1:
            raise ValueError("max_repetitions and max_varbinds must be at least 1")
        self.max_repetitions = max_repetitions
        self.max_varbinds = max_varbinds
        self._lock = threading.Lock()  # guards _engines (sessions run on the scheduler's threads)
        self._engines: dict[tuple[Any, ...], _Engine] = {}
        # A client dropped without close() (a test, a one-shot command) still closes its sockets
        # when it is collected.
        self._finalizer = weakref.finalize(self, _close_engines, self._engines, self._lock)

    @contextmanager
    def session(self, target: str, *, auth: SnmpAuth, timeout: float, retries: int = 1) -> Iterator[PysnmpSession]:
        """Requests to ``target`` on the device kept for it (made by its first session).

        Args:
            target: ``host``, ``host:port``, ``[v6-address]:port`` or a bare IPv6 address.
            auth: Community or SNMPv3 user.
            timeout: Seconds to wait for an answer, per attempt.
            retries: Extra attempts per request after a timeout.

        Raises:
            SnmpError: a bad target (checked before anything is sent).
            ValueError: ``auth`` cannot be used (an SNMPv3 user without a name, a key shorter
                than 8 characters, privacy without authentication).
        """
        session = PysnmpSession(self, target, auth, timeout, retries)
        try:
            yield session
        finally:
            session.close()

    def get(self, target: str, oids: Sequence[str], *, auth: SnmpAuth, timeout: float) -> list[SnmpVarBind]:
        """Read the given OIDs (a one-request session; see ``PysnmpSession.get``)."""
        if not oids:
            return []
        with self.session(target, auth=auth, timeout=timeout) as session:
            return session.get(oids)

    def walk(
        self, target: str, oid: str, *, auth: SnmpAuth, timeout: float, max_rows: int = 10_000
    ) -> list[SnmpVarBind]:
        """Read every variable under ``oid`` (a one-walk session; see ``PysnmpSession.walk``)."""
        with self.session(target, auth=auth, timeout=timeout) as session:
            return session.walk(oid, max_rows=max_rows)

    @property
    def engines(self) -> int:
        """Engines kept open (one per device polled lately); for tests and benchmarks."""
        return len(self._engines)

    def close(self) -> None:
        """Close every device's socket; the next session opens its device again. A second call
        does nothing."""
        _close_engines(self._engines, self._lock)

    # ------------------------------------------------------------------------------------------

    def _engine_for(self, session: PysnmpSession) -> _Engine:
        now = time.monotonic()
        with self._lock:
            for key, idle in list(self._engines.items()):
                if now - idle.used > IDLE_ENGINE_SECONDS and key != session.key:
                    self._drop_locked(key)
            kept = self._engines.get(session.key)
            if kept is not None:
                kept.used = now
                return kept
        # Opened outside the lock: an SNMPv3 device's discovery waits for the agent, and other
        # devices' sessions must not wait behind it.
        device: CommunityDevice | UsmDevice
        if session.auth.version == "3":
            from normagent.sources.snmp_usm import UsmDevice  # SNMPv3 only: pysnmp's USM services, pycryptodomex for privacy

            device = UsmDevice.open(session.host, session.port, session.auth, session.timeout, session.retries)
        else:
            device = CommunityDevice.open(
                session.host, session.port, session.auth.community, session.timeout, session.retries, session.auth.version
            )
        with self._lock:
            kept = self._engines.get(session.key)
            opened_meanwhile = kept is not None
            if kept is None:
                kept = self._engines[session.key] = _Engine(device, now)
            kept.used = now
        if opened_meanwhile:
            device.close()  # another thread opened the same device meanwhile: its is kept
        return kept

    def _drop(self, key: tuple[Any, ...]) -> None:
        with self._lock:
            self._drop_locked(key)

    def _drop_locked(self, key: tuple[Any, ...]) -> None:
        kept = self._engines.pop(key, None)
        if kept is not None:
            kept.device.close()


def _close_engines(engines: dict[tuple[Any, ...], _Engine], lock: threading.Lock) -> None:
    """Close every engine's socket (``PysnmpClient.close``, and its finalizer)."""
    with lock:
        while engines:
            engines.popitem()[1].device.close()


class UdpDevice(abc.ABC):
    """What SNMPv2c and SNMPv3 devices share: a connected UDP socket, the request in flight and
    its retries.

    An answer is matched to its request by the subclass's ``_match`` (a request id for v2c, a
    message id for v3), which reads the datagram and returns ``(key, answer)``, or ``None`` or an
    exception for anything that does not decode or is not the answer it claims to be: such a
    datagram is dropped and the request times out, as with pysnmp's engine. The socket is
    connected, so the kernel drops datagrams from anyone but the device; an ICMP "port
    unreachable" (nobody listening) is a lost answer too. One request is in flight at a time (the
    threads of two sessions of one device take turns); nothing runs between requests: each
    attempt waits on its own deadline.
    """

    def __init__(self, target: str, timeout: float, retries: int) -> None:
        self.target = target  # for messages
        self.timeout = timeout
        self.retries = retries
        self._sock: socket.socket | None = None
        self._closed = False
        self._turn = threading.Lock()  # one request in flight

    def _connect(self, host: str, port: int) -> None:
        """Connect the socket to ``host`` (an address, or a name resolved by ``resolve``)."""
        family: int
        address: tuple[Any, ...]
        version = _ip_version(host)
        if version:
            family, address = (socket.AF_INET6 if version == 6 else socket.AF_INET), (host, port)
        else:
            family, address = resolve(host, port)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.connect(address)
        except OSError as exc:  # no route, an address of no family this host has
            sock.close()
            raise SnmpError(f"bad SNMP target {host!r}: {exc}") from None
        self._sock = sock

    def _answer_in(self, key: int, data: bytes) -> tuple[bool, Any]:
        """(True, answer) if ``data`` answers the request ``key``, else (False, None)."""
        try:
            matched = self._match(data)
        except (PyAsn1Error, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError):
            # garbage, or not what it claims to be: dropped, the request times out (pysnmp's
            # ProtocolError is a PyAsn1Error; a BER length of 2^63 or more is pyasn1's OverflowError)
            return False, None
        if matched is None or matched[0] != key:
            return False, None  # not an answer, or a late answer to an earlier request
        return True, matched[1]

    @abc.abstractmethod
    def _match(self, data: bytes) -> tuple[int, Any] | None:
        """``(key, answer)`` for a datagram that answers a request in flight, else ``None`` (or an
        exception): what each SNMP version reads from its messages."""

    def _exchange(self, key: int, datagram: bytes, *, attempts: int | None = None) -> Any:
        """Send ``datagram`` up to ``attempts`` times (``retries`` + 1 by default), ``timeout``
        seconds each, until ``_match`` finds its answer under ``key``; ``None`` if none came."""
        with self._turn:
            for _ in range(self.retries + 1 if attempts is None else attempts):
                sock = self._open_socket()
                try:
                    sock.send(datagram)
                except OSError:
                    pass  # an ICMP error of an earlier datagram (nobody listening): this one is lost too
                deadline = time.monotonic() + self.timeout
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        sock.settimeout(left)
                        data = sock.recv(65535)
                    except TimeoutError:
                        break
                    except ConnectionRefusedError:  # ICMP "port unreachable" (nobody listening): wait on
                        continue
                    except OSError:  # closed under the request ("closed"), or the socket failed: attempt lost
                        self._open_socket()
                        break
                    found, answer = self._answer_in(key, data)
                    if found:
                        return answer
        return None

    def _open_socket(self) -> socket.socket:
        if self._closed or self._sock is None:
            raise SnmpError(f"SNMP device {self.target} closed")
        return self._sock

    def close(self) -> None:
        """Close the socket; a request in flight (a client closed under it) fails when its
        attempt's wait ends."""
        self._closed = True
        if self._sock is not None:
            self._sock.close()


def request_pdu(kind: str, var_binds: list[tuple[Any, Any]], bulk: tuple[int, int] | None) -> tuple[Any, Any]:
    """A GetRequest (``kind`` "get"), GetNextRequest ("next") or GetBulkRequest ("bulk", ``bulk``
    = (non-repeaters, max-repetitions)) PDU asking for ``var_binds``, with a fresh request id; and
    pysnmp's API for its kind (the PDU types of RFC 3416; SNMPv1's are made from them)."""
    if kind == "bulk":
        assert bulk is not None
        api: Any = v2c_api.apiBulkPDU
        pdu: Any = v2c_api.GetBulkRequestPDU()
        api.set_defaults(pdu)
        api.set_non_repeaters(pdu, bulk[0])
        api.set_max_repetitions(pdu, bulk[1])
    else:
        api = v2c_api.apiPDU
        pdu = v2c_api.GetRequestPDU() if kind == "get" else v2c_api.GetNextRequestPDU()
        api.set_defaults(pdu)
    api.set_varbinds(pdu, var_binds)
    return api, pdu


class CommunityDevice(UdpDevice):
    """An SNMPv1 or v2c device: a connected UDP socket on the client's loop and pysnmp's message types.

    A community string needs none of an ``SnmpEngine``'s state (no discovery, no keys, no MIB-backed
    tables), so SNMPv1 and v2c use pysnmp's protocol API (``pysnmp.proto.api.v1``/``v2c``: the
    message and PDU types, request ids) and pyasn1's BER codec directly, and nothing of pysnmp's
    engine, SMI or high-level API is imported (``cryptography`` neither): a site with only v2c
    devices pays about 2 MB for SNMP instead of 11 (bench/README.md, "SNMP: v2c without the
    engine"). SNMPv1's PDUs are made from and read as v2c's by pysnmp's RFC 2576 translation
    (``pysnmp.proto.proxy.rfc2576``, what its engine's command generator does): the same types and
    errors for the session whatever the version (noSuchName stays an error status, as v1 has no
    noSuchObject).

    Requests are matched to answers by request id; an answer that does not decode, or is not a
    Response to a request in flight, is dropped (``UdpDevice``).
    """

    def __init__(self, target: str, community: str, timeout: float, retries: int, version: str = "2c") -> None:
        super().__init__(target, timeout, retries)
        self.community = community
        self.version = version
        self._api: Any = v2c_api
        if version == "1":
            from pysnmp.proto.api import v1 as v1_api

            self._api = v1_api

    @classmethod
    def open(cls, host: str, port: int, community: str, timeout: float, retries: int, version: str = "2c") -> CommunityDevice:
        """The device's socket, connected to ``host`` (an address, or a name resolved by ``resolve``)."""
        device = cls(f"{host}:{port}", community, timeout, retries, version)
        device._connect(host, port)
        return device

    def _match(self, data: bytes) -> tuple[int, Any] | None:
        message, _ = decoder.decode(data, asn1Spec=self._api.Message())
        pdu = self._api.apiMessage.get_pdu(message)
        if not isinstance(pdu, self._api.GetResponsePDU if self.version == "1" else rfc1905.ResponsePDU):
            return None
        return int(self._api.apiPDU.get_request_id(pdu)), pdu

    def request(self, kind: str, var_binds: list[tuple[Any, Any]], bulk: tuple[int, int] | None) -> Any:
        """One request (``kind``: "get", "next" or "bulk", v2c only) with raw variable bindings,
        sent up to ``retries`` + 1 times, ``timeout`` seconds each; the answer as ``(error
        indication, error status, error index, variable bindings)``."""
        api, pdu = request_pdu(kind, var_binds, bulk)
        sent = pdu
        if self.version == "1":
            from pysnmp.proto.proxy import rfc2576

            sent = rfc2576.v2_to_v1(pdu)
        message = self._api.Message()
        self._api.apiMessage.set_defaults(message)
        self._api.apiMessage.set_community(message, self.community)
        self._api.apiMessage.set_pdu(message, sent)
        response = self._exchange(int(api.get_request_id(pdu)), encoder.encode(message))
        if response is None:
            return errind.requestTimedOut, 0, 0, []
        if self.version == "1":
            try:
                response = rfc2576.v1_to_v2(response, pdu)
            except PyAsn1Error as exc:  # e.g. a negative error-index, which v2c's PDU cannot hold
                raise SnmpError(f"SNMP device {self.target} answered an SNMPv1 response that cannot be read: {type(exc).__name__}") from None
        return None, api.get_error_status(response), api.get_error_index(response, muteErrors=True), api.get_varbinds(response)


class PysnmpSession:
    """Requests to one agent on its kept device; made by ``PysnmpClient.session``."""

    def __init__(self, client: PysnmpClient, target: str, auth: SnmpAuth, timeout: float, retries: int) -> None:
        self.host, self.port = split_target(target)
        self.target = target
        self.auth = auth
        check_auth(auth)  # unusable credentials fail here, before anything is sent
        self.timeout = timeout
        self.retries = retries
        self.key = (self.host, self.port, auth, timeout, retries)
        self._client = client
        self._repetitions = client.max_repetitions
        self._varbinds = client.max_varbinds
        self._open = True
        self._kept: _Engine | None = None

    def get(self, oids: Sequence[str]) -> list[SnmpVarBind]:
        """Read the given OIDs with GET requests of at most ``max_varbinds`` variables each.

        Returns:
            One ``SnmpVarBind`` per OID, in order; ``value`` is ``None`` for an OID the agent does
            not have (SNMPv2c/v3; an SNMPv1 agent answers noSuchName, an ``SnmpError``).

        Raises:
            SnmpTimeout, SnmpAuthError, SnmpError: see the module docstring.
        """
        if not oids:
            return []
        rows: list[SnmpVarBind] = self._run(self._get, tuple(oids))
        return rows

    def walk(self, oid: str, *, max_rows: int = 10_000) -> list[SnmpVarBind]:
        """Read every variable under ``oid`` (GETBULK with v2c and v3, GETNEXT with v1), in OID order.

        Raises:
            SnmpTooManyRows: more than ``max_rows`` variables (a misbehaving or unexpectedly large
                agent cannot keep a collector busy forever).
            SnmpTimeout, SnmpAuthError, SnmpError: see the module docstring.
        """
        rows: list[SnmpVarBind] = self._run(self._walk, oid, max_rows)
        return rows

    def close(self) -> None:
        """End the session; the device stays with the client for its next session."""
        self._kept = None
        self._open = False

    # ------------------------------------------------------------------------------------------

    def _run(self, read: Callable[..., Any], *args: Any) -> Any:
        """``read(*args)``; on any failure the device's engine is closed and forgotten, so its
        next session discovers the agent again (new boots after a restart, a changed key)."""
        if not self._open:
            raise SnmpError(f"SNMP session to {self.target} is closed")
        try:
            return read(*args)
        except BaseException:
            self._kept = None
            self._client._drop(self.key)
            raise

    def _ready(self) -> None:
        if self._kept is None:
            self._kept = self._client._engine_for(self)

    def _get(self, oids: tuple[str, ...]) -> list[SnmpVarBind]:
        self._ready()
        result: list[SnmpVarBind] = []
        for start in range(0, len(oids), self._varbinds):
            result.extend(self._get_chunk(oids[start : start + self._varbinds]))
        return result

    def _get_chunk(self, oids: tuple[str, ...]) -> list[SnmpVarBind]:
        indication, status, index, var_binds = self._send("get", _request(oids))
        too_big = isinstance(indication, errind.TooBig) or (status and _status_name(status) == "tooBig")
        if too_big and len(oids) > 1:
            half = len(oids) // 2
            return [*self._get_chunk(oids[:half]), *self._get_chunk(oids[half:])]
        _raise_for(self.target, indication, status, index)
        return [SnmpVarBind(str(name), to_python(value)) for name, value in var_binds]

    def _walk(self, oid: str, max_rows: int) -> list[SnmpVarBind]:
        rows = self._walk_rows(oid, max_rows)
        if self._kept is not None:
            self._kept.walked[oid] = len(rows)
        return rows

    def _repetitions_for(self, oid: str, rows: int) -> int:
        """GETBULK repetitions for the next request of a walk of ``oid`` that has ``rows`` rows.

        A device's table rarely changes between polls, and every variable an answer carries past
        the subtree's end costs its BER decoding and nothing else: a walk of 4 interface names
        asked for 25 got 21 of another column (an eighth of an idle SNMPv3 poll's CPU). So a walk
        asks for the rows the last walk of the subtree on this engine returned, plus the one that
        shows the end; a table that grew past that is read on with ``max_repetitions``."""
        assert self._kept is not None  # _ready() ran
        last = self._kept.walked.get(oid)
        if last is None or rows > last:
            return self._repetitions
        return min(self._repetitions, last + 1 - rows)

    def _walk_rows(self, oid: str, max_rows: int) -> list[SnmpVarBind]:
        self._ready()
        (root, _), = _request((oid,))
        current = root
        rows: list[SnmpVarBind] = []
        while True:
            if self.auth.version == "1":
                indication, status, index, var_binds = self._send("next", [(current, univ.Null(""))])
                if status and _status_name(status) == "noSuchName":
                    break  # SNMPv1's end of the MIB view
            else:
                indication, status, index, var_binds = self._send(
                    "bulk", [(current, univ.Null(""))],
                    bulk=(0, self._repetitions_for(oid, len(rows))),
                )
            _raise_for(self.target, indication, status, index)
            if not var_binds:
                break
            for name, value in var_binds:
                if isinstance(value, rfc1905.EndOfMibView) or not root.isPrefixOf(name):
                    return rows
                if name <= current:
                    # An agent that answers with an OID not after the one asked would loop forever.
                    raise SnmpError(f"walk of {oid} on {self.target}: the agent answered {name} after {current}")
                rows.append(SnmpVarBind(str(name), to_python(value)))
                current = name
                if len(rows) > max_rows:
                    raise SnmpTooManyRows(f"walk of {oid} on {self.target} returned more than {max_rows} variables")
        return rows

    def _send(self, kind: str, var_binds: list[tuple[Any, Any]], bulk: tuple[int, int] | None = None) -> Any:
        """One request (``kind``: "get", "next" or "bulk") with raw variable bindings; the answer as
        ``(error indication, error status, error index, variable bindings)``."""
        assert self._kept is not None  # _ready() ran
        return self._kept.device.request(kind, var_binds, bulk)


def _request(oids: tuple[str, ...]) -> list[tuple[Any, Any]]:
    """Variable bindings asking for ``oids`` (dotted numbers).

    Raises:
        SnmpError: an OID that is not a dotted number.
    """
    try:
        return [(rfc1902.ObjectName(oid), univ.Null("")) for oid in oids]
    except PyAsn1Error:
        bad = next((o for o in oids if not _NUMERIC_OID.match(o)), oids[0])
        raise SnmpError(f"{bad!r} is not a numeric OID") from None


_NUMERIC_OID = re.compile(r"^\.?\d+(\.\d+)*$")


def check_auth(auth: SnmpAuth) -> None:
    """Refuse credentials pysnmp could not use, before anything is sent.

    Raises:
        ValueError: an SNMPv3 user without a name or with one longer than 32 octets, a key shorter
            than 8 characters (RFC 3414 requires 8), privacy without authentication, or an unknown
            version or protocol.
    """
    if auth.version in ("1", "2c"):
        return
    if auth.version != "3":
        raise ValueError(f"SNMP version must be '1', '2c' or '3', got {auth.version!r}")
    if not auth.user:
        raise ValueError("SNMPv3 needs a user name")
    if len(auth.user.encode()) > 32:
        raise ValueError("SNMPv3 user names are at most 32 octets (RFC 3414's msgUserName)")
    if auth.auth_protocol not in AUTH_PROTOCOLS or auth.priv_protocol not in PRIV_PROTOCOLS:
        raise ValueError(f"unknown SNMPv3 protocol ({auth.auth_protocol}/{auth.priv_protocol})")
    authenticated = auth.auth_protocol != "none"
    private = auth.priv_protocol != "none"
    if private and not authenticated:
        raise ValueError("SNMPv3 privacy needs authentication too (there is no noAuthPriv level)")
    for name, used, key in (("auth_key", authenticated, auth.auth_key), ("priv_key", private, auth.priv_key)):
        if used and len(key) < 8:
            raise ValueError(f"SNMPv3 {name} must be at least 8 characters (RFC 3414)")


def split_target(target: str) -> tuple[str, int]:
    """``"host"``, ``"host:port"``, ``"[::1]:1161"`` or ``"::1"`` → (host, port).

    Raises:
        SnmpError: the port is not a number in 1..65535 or the host is empty.
    """
    try:
        return split_host_port(target, DEFAULT_PORT)
    except ValueError as exc:
        raise SnmpError(f"bad SNMP target {target!r}: {exc}") from None


def resolve(host: str, port: int, lookup: Lookup | None = None) -> tuple[int, tuple[Any, ...]]:
    """The address family and socket address to send to for a target given by name.

    IPv4 first, and IPv6 only for a name with no IPv4 address: a name means IPv4 to net-snmp
    (its default ``udp:`` transport) and to pysnmp's ``UdpTransportTarget``. The first answer of
    an unrestricted lookup would do otherwise where the system sorts IPv6 first: "localhost" is
    then ``::1``, and an SNMP agent listening on 127.0.0.1 (snmpd's usual ``agentAddress``) never
    answers. ``lookup`` is ``getaddrinfo``'s signature (``socket.getaddrinfo`` by default).
    """
    lookup = lookup or _getaddrinfo
    problem: OSError | None = None
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            found = lookup(host, port, family=family, type=socket.SOCK_DGRAM)
        except OSError as exc:  # socket.gaierror: no such name, or no address of this family
            problem = problem or exc
            continue
        if found:
            return int(found[0][0]), tuple(found[0][4])
    raise SnmpError(f"bad SNMP target {host!r}: {problem or 'no address'}")


def _getaddrinfo(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
    """``socket.getaddrinfo`` with an ASCII name as bytes (``hostnames.for_socket``: no idna codec)."""
    return socket.getaddrinfo(for_socket(host), port, **kwargs)


def _ip_version(host: str) -> int | None:
    """4 or 6 for an address, ``None`` for a name."""
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


def _status_name(status: Any) -> str:
    return str(status.prettyPrint()) if hasattr(status, "prettyPrint") else str(status)


def _raise_for(target: str, indication: Any, status: Any, index: Any) -> None:
    if indication:
        if isinstance(indication, errind.RequestTimedOut):
            raise SnmpTimeout(f"no SNMP answer from {target}: {indication}")
        if isinstance(indication, _AUTH_INDICATIONS):
            raise SnmpAuthError(f"SNMP agent {target} refused the credentials: {indication}")
        raise SnmpError(f"SNMP request to {target} failed: {indication}")
    if status:
        text = _status_name(status)
        kind = SnmpAuthError if text in _AUTH_STATUSES else SnmpError
        raise kind(f"SNMP agent {target} answered {text} (variable {int(index)})")


def to_python(value: Any) -> str | int | float | bytes | None:
    """A pysnmp/pyasn1 value as plain Python (see the module docstring for the mapping)."""
    if isinstance(value, _ABSENT) or isinstance(value, univ.Null):
        return None
    if isinstance(value, rfc1902.IpAddress):
        return ".".join(str(octet) for octet in value.asNumbers())
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    if isinstance(value, univ.Integer):
        return int(value)
    if isinstance(value, univ.OctetString):
        return bytes(value)
    if isinstance(value, univ.Real):
        return float(value)
    return str(value.prettyPrint()) if hasattr(value, "prettyPrint") else str(value)

