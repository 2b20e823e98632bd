"""pysnmp's own SNMP agent (its engine and command responder) on 127.0.0.1, in a thread of its own.

For the SNMPv3 privacy protocol net-snmp does not have (3DES: the Reeder draft's, which pysnmp's
engine speaks): the agent side is pysnmp's engine and its USM module (``rfc3414.service``: message
processing, discovery, timeliness, key localisation per user), not normagent's code. It answers
GET, GETNEXT and GETBULK from pysnmp's own MIB instrumentation (sysDescr, sysUpTime…).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from pysnmp.entity import config

from normagent.model import SnmpAuth

SYS_DESCR = "1.3.6.1.2.1.1.1.0"

# normagent's protocol names as pysnmp's engine configuration knows them: what normagent's engine
# path configured until 2026-12-07, and what ``normagent.sources.snmp_usm`` must match.
ENGINE_AUTH_PROTOCOLS = {
    "none": config.USM_AUTH_NONE,
    "MD5": config.USM_AUTH_HMAC96_MD5,
    "SHA": config.USM_AUTH_HMAC96_SHA,
    "SHA224": config.USM_AUTH_HMAC128_SHA224,
    "SHA256": config.USM_AUTH_HMAC192_SHA256,
    "SHA384": config.USM_AUTH_HMAC256_SHA384,
    "SHA512": config.USM_AUTH_HMAC384_SHA512,
}
ENGINE_PRIV_PROTOCOLS = {
    "none": config.USM_PRIV_NONE,
    "DES": config.USM_PRIV_CBC56_DES,
    "3DES": config.USM_PRIV_CBC168_3DES,
    "AES": config.USM_PRIV_CFB128_AES,
    "AES192": config.USM_PRIV_CFB192_AES,
    "AES256": config.USM_PRIV_CFB256_AES,
}


class PysnmpAgent:
    """A pysnmp agent with one SNMPv3 user, read access to everything at the user's level."""

    def __init__(self, auth: SnmpAuth) -> None:
        self.auth = auth
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="pysnmp-agent", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"pysnmp agent did not start: {self._error}")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._engine = self._start()
        except BaseException as exc:  # reported to the constructor
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._engine.close_dispatcher()
        pending = asyncio.all_tasks(self._loop)  # the dispatcher's timer
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def _start(self) -> Any:
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.entity import engine
        from pysnmp.entity.rfc3413 import cmdrsp, context

        snmp_engine = engine.SnmpEngine()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        transport = udp.UdpAsyncioTransport().open_server_mode(sock=sock)
        config.add_transport(snmp_engine, udp.DOMAIN_NAME, transport)
        auth = self.auth
        authenticated, private = auth.auth_protocol != "none", auth.priv_protocol != "none"
        config.add_v3_user(
            snmp_engine, auth.user,
            ENGINE_AUTH_PROTOCOLS[auth.auth_protocol], auth.auth_key if authenticated else None,
            ENGINE_PRIV_PROTOCOLS[auth.priv_protocol], auth.priv_key if private else None,
        )
        level = "authPriv" if private else "authNoPriv" if authenticated else "noAuthNoPriv"
        config.add_vacm_user(snmp_engine, 3, auth.user, level, (1, 3, 6))
        snmp_context = context.SnmpContext(snmp_engine)
        cmdrsp.GetCommandResponder(snmp_engine, snmp_context)
        cmdrsp.NextCommandResponder(snmp_engine, snmp_context)
        cmdrsp.BulkCommandResponder(snmp_engine, snmp_context)
        snmp_engine.transport_dispatcher.job_started(1)  # serve until stopped
        return snmp_engine

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
