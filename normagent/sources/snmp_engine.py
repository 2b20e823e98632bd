"""SNMPv1 and SNMPv3 devices on pysnmp's ``SnmpEngine`` (RFC 3412's architecture).

Imported by ``normagent.sources.snmp`` when the first SNMPv1 or v3 device connects, never for a
site whose devices all speak SNMPv2c: this module brings pysnmp's engine, its USM (and with it
``cryptography``), its SMI builder and its high-level API's helpers, about 10 MB of resident memory
that a community string does not need (bench/README.md, "SNMP: v2c without the engine").

Imports only the standard library, pysnmp and normagent's leaf modules.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

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
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
from pysnmp.smi import builder as mib_builder

from normagent.errors import SnmpError
from normagent.model import SnmpAuth

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


class EngineDevice:
    """One device on an ``SnmpEngine`` of its own: its transport target and its credentials.

    A kept engine keeps the SNMPv3 discovery (the agent's engine id, boots and time) and the
    localised keys; SNMPv1 uses the engine too, which turns v1's types and errors into v2c's.
    """

    def __init__(self, engine: Any, transport: Any, auth_data: Any) -> None:
        self.engine = engine
        self.transport = transport
        self.auth_data = auth_data

    @classmethod
    async def open(cls, host: str, port: int, auth: SnmpAuth, timeout: float, retries: int, version: int | None) -> EngineDevice:
        """The device's engine and transport target (``version``: 4 or 6 for an address, ``None``
        for a name, which pysnmp resolves)."""
        kind = _TARGETS[version]
        try:
            transport = await kind.create((host, port), timeout=timeout, retries=retries)
        except Exception as exc:  # pysnmp raises PySnmpError for unresolvable names
            raise SnmpError(f"bad SNMP target {host!r}: {exc}") from None
        return cls(SnmpEngine(), transport, auth_data(auth))

    async def request(self, kind: str, var_binds: list[tuple[Any, Any]], bulk: tuple[int, int] | None) -> Any:
        """One request (``kind``: "get", "next" or "bulk") with raw variable bindings; the
        answer as ``(error indication, error status, error index, variable bindings)``.

        pysnmp's high-level calls resolve every requested and answered OID through its MIB view
        (about 1 ms each); this collector asks by number and reads numbers, so the request goes to
        the command generator of RFC 3413 directly, configured as the high-level API does it.
        """
        addr_name, _ = LCD.configure(self.engine, self.auth_data, self.transport, b"")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(engine: Any, handle: Any, indication: Any, status: Any, index: Any, answer: Any, ctx: Any) -> None:
            if not future.cancelled():
                future.set_result((indication, status, index, list(answer)))

        context = ContextData()
        if kind == "bulk":
            assert bulk is not None
            cmdgen.BulkCommandGeneratorSingleRun().send_varbinds(
                self.engine, addr_name, context.contextEngineId, context.contextName, *bulk, var_binds, done
            )
        else:
            generator = cmdgen.GetCommandGenerator() if kind == "get" else cmdgen.NextCommandGeneratorSingleRun()
            generator.send_varbinds(self.engine, addr_name, context.contextEngineId, context.contextName, var_binds, done)
        return await future

    def tick(self, on: bool) -> None:
        """Start or stop the engine's timer (on the loop's thread).

        pysnmp's asyncio dispatcher wakes every 0.1 s while a transport is registered, to time out
        and retry requests: kept between polls, an engine's timer alone cost the idle agent more
        CPU than everything else. It runs while a session is open and sleeps between them; with no
        request in flight it has nothing to do.
        """
        dispatcher = self.engine.transport_dispatcher
        if dispatcher is None:
            return  # no request sent yet: registering the transport starts the timer
        if on and dispatcher.loopingcall is None:
            dispatcher.loopingcall = asyncio.ensure_future(dispatcher.handle_timeout())
        elif not on and dispatcher.loopingcall is not None:
            dispatcher.loopingcall.cancel()
            dispatcher.loopingcall = None

    def close(self) -> None:
        """Close the engine's socket and timer (on the loop's thread)."""
        self.engine.close_dispatcher()


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
    """pysnmp's ``CommunityData`` or ``UsmUserData`` for ``auth`` (checked by
    ``normagent.sources.snmp.check_auth`` first)."""
    if auth.version in ("1", "2c"):
        return CommunityData(auth.community, mpModel=0 if auth.version == "1" else 1)
    authenticated = auth.auth_protocol != "none"
    private = auth.priv_protocol != "none"
    return UsmUserData(
        auth.user,
        authKey=auth.auth_key if authenticated else None,
        privKey=auth.priv_key if private else None,
        authProtocol=_AUTH_PROTOCOLS[auth.auth_protocol],
        privProtocol=_PRIV_PROTOCOLS[auth.priv_protocol],
    )


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
