"""SNMPv1 devices on pysnmp's ``SnmpEngine`` (RFC 3412's architecture).

Imported by ``normagent.sources.snmp`` when the first SNMPv1 device connects, never for a site
whose devices speak SNMPv2c or v3 (``CommunityDevice``, ``snmp_usm.UsmDevice``): this module
brings pysnmp's engine, its USM (and with it ``cryptography``) and its SMI builder, about 10 MB of
resident memory and 1 MB more per device (bench/README.md, "SNMP: v2c without the engine", "SNMP:
v3 without the engine"). The engine could still serve SNMPv3 (``EngineDevice.open`` configures a
USM user as before), which is how SNMPv3 was polled until 2026-12-07; its protocol tables are the
ones ``snmp_usm`` must match (a test pins it).

Imports only the standard library, pysnmp and normagent's leaf modules.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp, udp6
from pysnmp.entity import config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.smi import builder as mib_builder

from normagent.sources.snmp import resolve
from normagent.model import SnmpAuth

_AUTH_PROTOCOLS = {
    "none": config.USM_AUTH_NONE,
    "MD5": config.USM_AUTH_HMAC96_MD5,
    "SHA": config.USM_AUTH_HMAC96_SHA,
    "SHA224": config.USM_AUTH_HMAC128_SHA224,
    "SHA256": config.USM_AUTH_HMAC192_SHA256,
    "SHA384": config.USM_AUTH_HMAC256_SHA384,
    "SHA512": config.USM_AUTH_HMAC384_SHA512,
}
_PRIV_PROTOCOLS = {
    "none": config.USM_PRIV_NONE,
    "DES": config.USM_PRIV_CBC56_DES,
    "3DES": config.USM_PRIV_CBC168_3DES,
    "AES": config.USM_PRIV_CFB128_AES,
    "AES192": config.USM_PRIV_CFB192_AES,
    "AES256": config.USM_PRIV_CFB256_AES,
}
# The names under which the device's engine knows its one target (each device has its own engine).
_PARAMS, _ADDRESS, _COMMUNITY = "normagent-params", "normagent-target", "normagent-community"


class EngineDevice:
    """One device on an ``SnmpEngine`` of its own, configured for its one target.

    SNMPv1 uses the engine, which turns v1's types and errors into v2c's (and could do SNMPv3: a
    kept engine keeps the discovery and the localised keys). The
    engine is configured once, through pysnmp's engine configuration API (``pysnmp.entity.config``:
    the user or community, the target's parameters, transport and address), as its high-level API
    would on every request; that API itself (``pysnmp.hlapi``, about 0.5 MB) is not imported.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    @classmethod
    async def open(cls, host: str, port: int, auth: SnmpAuth, timeout: float, retries: int, version: int | None) -> EngineDevice:
        """The device's engine (``version``: 4 or 6 for an address, ``None`` for a name, resolved
        here through the loop; an address is used as it is, without a lookup in the loop's thread
        pool, whose first use starts a thread that then stays)."""
        address: tuple[Any, ...] = (host, port)
        if version is None:
            family, found = await resolve(host, port)
            address = found[:2]
            version = 6 if family == socket.AF_INET6 else 4
        engine = SnmpEngine()
        if auth.version == "1":
            config.add_v1_system(engine, _COMMUNITY, auth.community)
            security_name, level, model = _COMMUNITY, "noAuthNoPriv", 0
        else:
            authenticated, private = auth.auth_protocol != "none", auth.priv_protocol != "none"
            config.add_v3_user(
                engine, auth.user,
                _AUTH_PROTOCOLS[auth.auth_protocol], auth.auth_key if authenticated else None,
                _PRIV_PROTOCOLS[auth.priv_protocol], auth.priv_key if private else None,
            )
            security_name, model = auth.user, 3
            level = "authPriv" if private else "authNoPriv" if authenticated else "noAuthNoPriv"
        config.add_target_parameters(engine, _PARAMS, security_name, level, model)
        domain, transport = (udp6.DOMAIN_NAME, udp6.Udp6AsyncioTransport) if version == 6 else (udp.DOMAIN_NAME, udp.UdpAsyncioTransport)
        config.add_transport(engine, domain, transport().open_client_mode())
        config.add_target_address(engine, _ADDRESS, domain, address, _PARAMS, timeout * 100, retries)  # in 1/100 s (RFC 3413)
        return cls(engine)

    async def request(self, kind: str, var_binds: list[tuple[Any, Any]], bulk: tuple[int, int] | None) -> Any:
        """One request (``kind``: "get", "next" or "bulk") with raw variable bindings; the
        answer as ``(error indication, error status, error index, variable bindings)``.

        pysnmp's high-level calls resolve every requested and answered OID through its MIB view
        (about 1 ms each); this collector asks by number and reads numbers, so the request goes to
        the command generator of RFC 3413 directly.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def done(engine: Any, handle: Any, indication: Any, status: Any, index: Any, answer: Any, ctx: Any) -> None:
            if not future.cancelled():
                future.set_result((indication, status, index, list(answer)))

        if kind == "bulk":
            assert bulk is not None
            cmdgen.BulkCommandGeneratorSingleRun().send_varbinds(self.engine, _ADDRESS, None, b"", *bulk, var_binds, done)
        else:
            generator = cmdgen.GetCommandGenerator() if kind == "get" else cmdgen.NextCommandGeneratorSingleRun()
            generator.send_varbinds(self.engine, _ADDRESS, None, b"", var_binds, done)
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
