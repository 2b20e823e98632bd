"""SNMP reads (GET, subtree walk) over pysnmp 7, behind the synchronous ``SnmpClient`` protocol.

pysnmp 7's API (``pysnmp.hlapi.v3arch.asyncio``) is asyncio only, while collectors are
plain functions run on the scheduler's threads. The bridge is one event loop per client, on a
thread of its own started by the first request, and one ``SnmpEngine`` (with its UDP socket) per
device, made by the device's first session and kept for the client's life: ``client.session(...)``
hands the device's engine to the calling thread, whose ``get``/``walk`` run on that loop. The
agent keeps one client (``LazySnmpClient``) from start to stop, and ``close()`` closes every
engine's socket and the loop. An SNMPv2c device gets pysnmp's engine-less ``SnmpDispatcher``
instead of an engine: a community needs none of the engine's MIB-backed tables (about 1 MB per
device); SNMPv1 keeps the engine, which turns v1's types and errors into v2c's.

Why not a loop and an engine per session: an engine runs some thirty MIB modules and builds its
tables anew (about 0.1 s of CPU, a fifth of the idle agent's CPU at one poll a minute), and a
session on each collector run's fresh thread allocated all of that in yet another of glibc's
per-thread malloc arenas, which keep what is freed: the idle agent with one SNMPv3 device grew
from 65 to 97 MB in ten minutes (bench/README.md). A kept engine also keeps the SNMPv3 discovery
(the agent's engine id, boots and time) and the localised keys. An engine whose request failed
(timeout, refused credentials, any error) is dropped and the device's next session starts afresh,
so a restarted agent (new engine boots) or a changed key costs one failed poll at most.

Two things make a poll of a device with many interfaces fast (bench/bench_snmp.py: 50 interfaces,
400 variables, in about 0.4 s instead of 1.9 s): requests go to pysnmp's RFC 3413 command
generators with numeric OIDs, skipping the high-level API's MIB lookup of every OID asked and
answered; and pysnmp's core MIB modules, which every engine runs from source, are compiled once
per process (``_CompiledMibs``).

SNMPv1 and v2c authenticate with a community; SNMPv3 with a USM user (``SnmpAuth.v3``): MD5 or
the SHA family for authentication, DES, 3DES or AES for privacy (AES and DES need the
``cryptography`` package, which pysnmp imports when present; about 7 MB of resident memory, kept
rather than handing pysnmp ciphers of our own: bench/README.md, "SNMP: what a device costs").

Values come back as plain Python: integers of every SNMP integer type as ``int``, OCTET STRING and
its kin (Opaque, BITS) as ``bytes`` (a caller decodes what it knows to be text), OBJECT IDENTIFIER
and IpAddress as dotted ``str``, and noSuchObject / noSuchInstance / endOfMibView as ``None``.
Failures raise ``SnmpError`` (a ``ConnectionError``) or a narrower one: ``SnmpTimeout`` (also a
``TimeoutError``) when the agent does not answer, ``SnmpAuthError`` for an unknown user, a wrong
key or an access-control refusal, ``SnmpTooManyRows`` for a walk beyond its limit. No message
holds a community string or a key.

Imports only the standard library, pysnmp and normagent's leaf modules.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    usm3DESEDEPrivProtocol,
    usmAesCfb128Protocol,
    usmAesCfb192Protocol,
    usmAesCfb256Protocol,
    usmDESPrivProtocol,
    usmHMAC128SHA224AuthProtocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMAC256SHA384AuthProtocol,
    usmHMAC384SHA512AuthProtocol,
    usmHMACMD5AuthProtocol,
    usmHMACSHAAuthProtocol,
    usmNoAuthProtocol,
    usmNoPrivProtocol,
)
from pysnmp.hlapi.v1arch.asyncio.auth import CommunityData as Community
from pysnmp.hlapi.v1arch.asyncio.dispatch import SnmpDispatcher
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
from pysnmp.error import PySnmpError
from pysnmp.proto import errind, rfc1902, rfc1905
from pysnmp.proto.api import v2c as v2c_api
from pysnmp.smi import builder as mib_builder

from normagent.errors import SnmpAuthError, SnmpError, SnmpTimeout, SnmpTooManyRows
from normagent.model import SnmpAuth, SnmpVarBind

__all__ = [
    "PysnmpClient",
    "PysnmpSession",
    "SnmpAuthError",
    "SnmpError",
    "SnmpTimeout",
    "SnmpTooManyRows",
    "split_target",
    "to_python",
]

DEFAULT_PORT = 161
_ABSENT = (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)
_AUTH_PROTOCOLS = {
    "none": usmNoAuthProtocol,
    "MD5": usmHMACMD5AuthProtocol,
    "SHA": usmHMACSHAAuthProtocol,
    "SHA224": usmHMAC128SHA224AuthProtocol,
    "SHA256": usmHMAC192SHA256AuthProtocol,
    "SHA384": usmHMAC256SHA384AuthProtocol,
    "SHA512": usmHMAC384SHA512AuthProtocol,
}
_PRIV_PROTOCOLS = {
    "none": usmNoPrivProtocol,
    "DES": usmDESPrivProtocol,
    "3DES": usm3DESEDEPrivProtocol,
    "AES": usmAesCfb128Protocol,
    "AES192": usmAesCfb192Protocol,
    "AES256": usmAesCfb256Protocol,
}
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
    """A device's engine, its transport target and its credentials as pysnmp wants them.

    ``engine`` is an ``SnmpEngine`` (RFC 3412's architecture: SNMPv3, and v1, whose answers it
    turns into v2c's types) or, for SNMPv2c, pysnmp's lighter ``SnmpDispatcher`` (its "v1arch"):
    a community string needs none of the engine's MIB-backed tables, and an engine costs about
    1 MB of resident memory per device, the dispatcher next to nothing (bench/README.md).
    """

    engine: Any
    transport: Any
    auth_data: Any
    used: float
    sessions: int = 0


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
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Touched only by coroutines on the loop's thread, so without a lock.
        self._engines: dict[tuple[Any, ...], _Engine] = {}
        self._finalizer: weakref.finalize[Any, PysnmpClient] | None = None

    @contextmanager
    def session(self, target: str, *, auth: SnmpAuth, timeout: float, retries: int = 1) -> Iterator[PysnmpSession]:
        """Requests to ``target`` on the device's kept engine (made by its first session).

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

    def pending_tasks(self) -> int:
        """Tasks waiting on the client's loop (none between polls: see ``_tick``); for tests."""
        with self._lock:
            loop = self._loop
        if loop is None:
            return 0
        count: int = asyncio.run_coroutine_threadsafe(_other_tasks(), loop).result()
        return count

    def close(self) -> None:
        """Close every engine's socket, stop the loop and end its thread; the next request starts
        them again. A second call does nothing."""
        with self._lock:
            finalizer, self._finalizer = self._finalizer, None
            self._loop = self._thread = None
        if finalizer is not None:
            finalizer()

    # ------------------------------------------------------------------------------------------

    def _submit(self, coro: Any) -> Any:
        """Run ``coro`` on the client's loop and wait for it (the caller's thread blocks)."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=_run_forever, args=(loop,), name="snmp-loop", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                # A client dropped without close() (a test, a one-shot command) still ends its
                # thread and closes its sockets when it is collected.
                self._finalizer = weakref.finalize(self, _shut_down, loop, thread, self._engines)
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def _engine_for(self, session: PysnmpSession) -> _Engine:
        now = asyncio.get_running_loop().time()
        for key, idle in list(self._engines.items()):
            if now - idle.used > IDLE_ENGINE_SECONDS and key != session.key:
                self._drop(key)
        kept = self._engines.get(session.key)
        if kept is None:
            version = _ip_version(session.host)
            kind = _TARGETS[version]
            try:
                transport = await kind.create((session.host, session.port), timeout=session.timeout, retries=session.retries)
            except Exception as exc:  # pysnmp raises PySnmpError for unresolvable names
                raise SnmpError(f"bad SNMP target {session.target!r}: {exc}") from None
            if session.auth.version == "2c":
                kept = _Engine(_Dispatcher(), transport, Community(session.auth.community, mpModel=1), now)
            else:
                kept = _Engine(SnmpEngine(), transport, auth_data(session.auth), now)
            self._engines[session.key] = kept
        kept.used = now
        kept.sessions += 1
        _tick(kept.engine, True)
        return kept

    def _release(self, kept: _Engine) -> None:
        """A session of ``kept`` ended: with none left, its timer stops (see ``_tick``)."""
        with self._lock:
            loop = self._loop
        if loop is not None:
            asyncio.run_coroutine_threadsafe(self._released(kept), loop).result()

    async def _released(self, kept: _Engine) -> None:
        kept.sessions -= 1
        if kept.sessions <= 0:
            _tick(kept.engine, False)

    def _drop(self, key: tuple[Any, ...]) -> None:
        kept = self._engines.pop(key, None)
        if kept is not None:
            _close(kept.engine)



def _shut_down(loop: asyncio.AbstractEventLoop, thread: threading.Thread, engines: dict[tuple[Any, ...], _Engine]) -> None:
    """Close every engine's socket, stop the loop and end its thread (``PysnmpClient.close``)."""

    async def close_engines() -> None:
        while engines:
            _close(engines.popitem()[1].engine)

    if threading.current_thread() is thread:  # collected on the loop's own thread: cannot wait
        loop.call_soon(loop.stop)
        return
    try:
        asyncio.run_coroutine_threadsafe(close_engines(), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        if not thread.is_alive():
            loop.close()


class _Dispatcher(SnmpDispatcher):  # type: ignore[misc]
    """pysnmp's ``SnmpDispatcher``, dropping an answer it cannot decode.

    The engine drops a malformed message; the dispatcher's receive callback raises into the
    event loop instead, which logs a traceback for every such datagram (a device sending garbage
    could fill the journal). Here it is dropped, and the request times out as with SNMPv3.
    """

    def _recv_callback(self, *args: Any) -> Any:
        try:
            return super()._recv_callback(*args)
        except (PyAsn1Error, PySnmpError):
            return None


def _close(engine: Any) -> None:
    """Close an engine's or a dispatcher's socket and timer (on the loop's thread)."""
    if isinstance(engine, SnmpDispatcher):
        engine.close()
    else:
        engine.close_dispatcher()


def _tick(engine: Any, on: bool) -> None:
    """Start or stop the engine's timer (on the loop's thread).

    pysnmp's asyncio dispatcher wakes every 0.1 s while a transport is registered, to time out
    and retry requests: kept between polls, an engine's timer alone cost the idle agent more CPU
    than everything else. It runs while a session is open and sleeps between them; with no
    request in flight it has nothing to do.
    """
    dispatcher = engine.transport_dispatcher
    if dispatcher is None:
        return  # no request sent yet: registering the transport starts the timer
    if on and dispatcher.loopingcall is None:
        dispatcher.loopingcall = asyncio.ensure_future(dispatcher.handle_timeout())
    elif not on and dispatcher.loopingcall is not None:
        dispatcher.loopingcall.cancel()
        dispatcher.loopingcall = None


async def _other_tasks() -> int:
    return len(asyncio.all_tasks()) - 1


def _run_forever(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


class PysnmpSession:
    """Requests to one agent on its kept engine; made by ``PysnmpClient.session``."""

    def __init__(self, client: PysnmpClient, target: str, auth: SnmpAuth, timeout: float, retries: int) -> None:
        self.host, self.port = split_target(target)
        self.target = target
        self.auth = auth
        auth_data(auth)  # unusable credentials fail here, before anything is sent
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
        rows: list[SnmpVarBind] = self._run(self._get(tuple(oids)))
        return rows

    def walk(self, oid: str, *, max_rows: int = 10_000) -> list[SnmpVarBind]:
        """Read every variable under ``oid`` (GETBULK with v2c and v3, GETNEXT with v1), in OID order.

        Raises:
            SnmpTooManyRows: more than ``max_rows`` variables (a misbehaving or unexpectedly large
                agent cannot keep a collector busy forever).
            SnmpTimeout, SnmpAuthError, SnmpError: see the module docstring.
        """
        rows: list[SnmpVarBind] = self._run(self._walk(oid, max_rows))
        return rows

    def close(self) -> None:
        """End the session; the engine stays with the client for the device's next session."""
        kept, self._kept = self._kept, None
        self._open = False
        if kept is not None:
            self._client._release(kept)

    # ------------------------------------------------------------------------------------------

    def _run(self, coro: Any) -> Any:
        if not self._open:
            coro.close()
            raise SnmpError(f"SNMP session to {self.target} is closed")
        return self._client._submit(self._dropping_on_failure(coro))

    async def _dropping_on_failure(self, coro: Any) -> Any:
        """``coro``'s result; on any failure the device's engine is closed and forgotten, so
        its next session discovers the agent again (new boots after a restart, a changed key)."""
        try:
            return await coro
        except BaseException:
            self._kept = None
            self._client._drop(self.key)
            raise

    async def _ready(self) -> None:
        if self._kept is None:
            self._kept = await self._client._engine_for(self)

    async def _get(self, oids: tuple[str, ...]) -> list[SnmpVarBind]:
        await self._ready()
        result: list[SnmpVarBind] = []
        for start in range(0, len(oids), self._varbinds):
            result.extend(await self._get_chunk(oids[start : start + self._varbinds]))
        return result

    async def _get_chunk(self, oids: tuple[str, ...]) -> list[SnmpVarBind]:
        indication, status, index, var_binds = await self._send(cmdgen.GetCommandGenerator(), _request(oids))
        too_big = isinstance(indication, errind.TooBig) or (status and _status_name(status) == "tooBig")
        if too_big and len(oids) > 1:
            half = len(oids) // 2
            return [*await self._get_chunk(oids[:half]), *await self._get_chunk(oids[half:])]
        _raise_for(self.target, indication, status, index)
        return [SnmpVarBind(str(name), to_python(value)) for name, value in var_binds]

    async def _walk(self, oid: str, max_rows: int) -> list[SnmpVarBind]:
        await self._ready()
        (root, _), = _request((oid,))
        current = root
        rows: list[SnmpVarBind] = []
        while True:
            if self.auth.version == "1":
                indication, status, index, var_binds = await self._send(cmdgen.NextCommandGeneratorSingleRun(), [(current, univ.Null(""))])
                if status and _status_name(status) == "noSuchName":
                    break  # SNMPv1's end of the MIB view
            else:
                indication, status, index, var_binds = await self._send(
                    cmdgen.BulkCommandGeneratorSingleRun(), [(current, univ.Null(""))], bulk=(0, self._repetitions)
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

    async def _send(self, generator: Any, var_binds: list[tuple[Any, Any]], bulk: tuple[int, int] | None = None) -> Any:
        """One request with raw variable bindings; the answer's raw bindings.

        pysnmp's high-level calls resolve every requested and answered OID through its MIB view
        (about 1 ms each); this collector asks by number and reads numbers, so the request goes to
        the command generator of RFC 3413 directly, configured as the high-level API does it.
        """
        assert self._kept is not None  # _ready() ran
        engine = self._kept.engine
        if isinstance(engine, SnmpDispatcher):
            return await self._send_v2c(engine, var_binds, bulk)
        addr_name, _ = LCD.configure(engine, self._kept.auth_data, self._kept.transport, b"")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(engine: Any, handle: Any, indication: Any, status: Any, index: Any, answer: Any, ctx: Any) -> None:
            if not future.cancelled():
                future.set_result((indication, status, index, list(answer)))

        context = ContextData()
        if bulk is None:
            generator.send_varbinds(engine, addr_name, context.contextEngineId, context.contextName, var_binds, done)
        else:
            generator.send_varbinds(engine, addr_name, context.contextEngineId, context.contextName, *bulk, var_binds, done)
        return await future


    async def _send_v2c(self, dispatcher: Any, var_binds: list[tuple[Any, Any]], bulk: tuple[int, int] | None) -> Any:
        """``_send`` for SNMPv2c: the PDU made and matched by pysnmp's ``SnmpDispatcher``
        (request ids, retries, timeouts), without an engine."""
        assert self._kept is not None
        api = v2c_api.apiPDU if bulk is None else v2c_api.apiBulkPDU
        pdu = v2c_api.GetRequestPDU() if bulk is None else v2c_api.GetBulkRequestPDU()
        api.set_defaults(pdu)
        if bulk is not None:
            api.set_non_repeaters(pdu, bulk[0])
            api.set_max_repetitions(pdu, bulk[1])
        api.set_varbinds(pdu, var_binds)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(dispatcher: Any, request_id: Any, indication: Any, response: Any, ctx: Any) -> None:
            if not future.cancelled():
                future.set_result((indication, response))

        dispatcher.send_pdu(self._kept.auth_data, self._kept.transport, pdu, done)
        indication, response = await future
        if indication or response is None:
            return indication or errind.requestTimedOut, 0, 0, []
        return None, api.get_error_status(response), api.get_error_index(response, muteErrors=True), api.get_varbinds(response)


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


class _CompiledMibs:
    """Stands in for ``runpy`` in pysnmp's MIB builder: compiles each MIB module once per process.

    Every ``SnmpEngine`` loads pysnmp's core MIB modules, and pysnmp runs them from source with
    ``runpy.run_path`` (it executes its cached byte code only under ``python -O``), compiling some
    thirty modules again for every engine: about 0.3 s of CPU per SNMP session. This does what
    ``run_path`` does — a fresh namespace from ``init_globals``, ``__name__`` and ``__file__`` set,
    the module's code run in it — with the code object compiled once.
    """

    def __init__(self) -> None:
        self._code: dict[str, Any] = {}
        self._lock = threading.Lock()

    def run_path(self, path: str, init_globals: dict[str, Any] | None = None, run_name: str | None = None) -> dict[str, Any]:
        with self._lock:
            code = self._code.get(path)
            if code is None:
                with open(path, "rb") as f:
                    code = compile(f.read(), path, "exec")
                self._code[path] = code
        namespace: dict[str, Any] = dict(init_globals or {})
        namespace.update(__name__=run_name or "<run_path>", __file__=path, __loader__=None, __package__=None, __spec__=None)
        exec(code, namespace)  # noqa: S102 - pysnmp's own MIB modules, as runpy would run them
        return namespace


# Under ``python -O`` (the service's PYTHONOPTIMIZE) pysnmp runs the code object its MIB source
# already read, and has no ``runpy`` to stand in for.
if getattr(mib_builder, "runpy", None) is not None and not isinstance(mib_builder.runpy, _CompiledMibs):
    mib_builder.runpy = _CompiledMibs()


def auth_data(auth: SnmpAuth) -> Any:
    """pysnmp's ``CommunityData`` or ``UsmUserData`` for ``auth``.

    Raises:
        ValueError: an SNMPv3 user without a name, a key shorter than 8 characters (RFC 3414
            requires 8), privacy without authentication, or an unknown version or protocol.
    """
    if auth.version in ("1", "2c"):
        return CommunityData(auth.community, mpModel=0 if auth.version == "1" else 1)
    if auth.version != "3":
        raise ValueError(f"SNMP version must be '1', '2c' or '3', got {auth.version!r}")
    if not auth.user:
        raise ValueError("SNMPv3 needs a user name")
    if auth.auth_protocol not in _AUTH_PROTOCOLS or auth.priv_protocol not in _PRIV_PROTOCOLS:
        raise ValueError(f"unknown SNMPv3 protocol ({auth.auth_protocol}/{auth.priv_protocol})")
    authenticated = auth.auth_protocol != "none"
    private = auth.priv_protocol != "none"
    if private and not authenticated:
        raise ValueError("SNMPv3 privacy needs authentication too (there is no noAuthPriv level)")
    for name, used, key in (("auth_key", authenticated, auth.auth_key), ("priv_key", private, auth.priv_key)):
        if used and len(key) < 8:
            raise ValueError(f"SNMPv3 {name} must be at least 8 characters (RFC 3414)")
    return UsmUserData(
        auth.user,
        authKey=auth.auth_key if authenticated else None,
        privKey=auth.priv_key if private else None,
        authProtocol=_AUTH_PROTOCOLS[auth.auth_protocol],
        privProtocol=_PRIV_PROTOCOLS[auth.priv_protocol],
    )


def split_target(target: str) -> tuple[str, int]:
    """``"host"``, ``"host:port"``, ``"[::1]:1161"`` or ``"::1"`` → (host, port).

    Raises:
        SnmpError: the port is not a number in 1..65535 or the host is empty.
    """
    text = target.strip()
    host, port = text, str(DEFAULT_PORT)
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        host = inside
        if rest.startswith(":"):
            port = rest[1:]
        elif rest:
            raise SnmpError(f"bad SNMP target {target!r}: expected [address]:port")
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SnmpError(f"bad SNMP target {target!r}: expected host, host:port or [address]:port")
    return host, int(port)


def _ip_version(host: str) -> int | None:
    """4 or 6 for an address, ``None`` for a name."""
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


class _Udp(UdpTransportTarget):  # type: ignore[misc]
    """A target whose host is an IPv4 address already.

    pysnmp resolves every target with ``loop.getaddrinfo``, which runs in the loop's default
    thread pool: its first call starts a thread that then waits for ever (0.4 MB resident with
    what it imports, for a lookup an address does not need). A name is still resolved by pysnmp.
    """

    async def _resolve_address(self, address: tuple[str, int]) -> tuple[str, int]:
        return address


class _Udp6(Udp6TransportTarget):  # type: ignore[misc]
    """``_Udp`` for an IPv6 address."""

    async def _resolve_address(self, address: tuple[str, int]) -> tuple[str, int]:
        return address


_TARGETS: dict[int | None, Any] = {4: _Udp, 6: _Udp6, None: UdpTransportTarget}


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

