"""SNMP reads (GET, subtree walk) over pysnmp 7, behind the synchronous ``SnmpClient`` protocol.

pysnmp 7's high-level API (``pysnmp.hlapi.v3arch.asyncio``) is asyncio only, while collectors are
plain functions run on the scheduler's threads. ``PysnmpClient`` bridges the two in the simplest
way that cannot leak: every call runs ``asyncio.run()`` on the calling thread with a fresh
``SnmpEngine`` and closes the engine's dispatcher (and with it the UDP socket) before returning.
No loop, engine or socket outlives a call, so a hung agent or an abandoned collector run cannot
wedge a shared loop, and two collectors polling at once share nothing. The price is about 60 ms of
engine set-up per call, which is nothing at collector intervals of a minute.

Values come back as plain Python: integers of every SNMP integer type as ``int``, OCTET STRING and
its kin (Opaque, BITS) as ``bytes`` (a caller decodes what it knows to be text), OBJECT IDENTIFIER
and IpAddress as dotted ``str``, and noSuchObject / noSuchInstance / endOfMibView as ``None``.
Failures raise ``SnmpError`` (a ``ConnectionError``), and ``SnmpTimeout`` (also a ``TimeoutError``)
when the agent does not answer; the community string never appears in a message.

Imports only the standard library, pysnmp and normagent.model.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from typing import Any, Literal

from pyasn1.type import univ
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    bulk_walk_cmd,
    get_cmd,
    walk_cmd,
)
from pysnmp.proto import errind, rfc1902, rfc1905

from normagent.model import SnmpVarBind

DEFAULT_PORT = 161
_ABSENT = (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)


class SnmpError(ConnectionError):
    """An SNMP request failed: the agent refused it, answered with an error, or was unreachable."""


class SnmpTimeout(SnmpError, TimeoutError):
    """The agent did not answer within the timeout (after the configured retries)."""


class PysnmpClient:
    """The ``SnmpClient`` protocol over pysnmp 7 (SNMP v1 or v2c, community based).

    Args:
        retries: Extra attempts per request after a timeout (pysnmp's ``retries``).
        version: ``"2c"`` (GETBULK walks) or ``"1"`` (GETNEXT walks).
        max_repetitions: Rows asked for per GETBULK request.
        max_rows: A walk stops with ``SnmpError`` after this many variables, so a misbehaving agent
            cannot keep a collector busy forever.
    """

    def __init__(
        self,
        *,
        retries: int = 1,
        version: Literal["1", "2c"] = "2c",
        max_repetitions: int = 25,
        max_rows: int = 10_000,
    ) -> None:
        if version not in ("1", "2c"):
            raise ValueError(f"SNMP version must be '1' or '2c', got {version!r}")
        self.retries = retries
        self.version = version
        self.max_repetitions = max_repetitions
        self.max_rows = max_rows

    def get(self, target: str, oids: Sequence[str], *, community: str, timeout: float) -> list[SnmpVarBind]:
        """Read the given OIDs with one GET request.

        Args:
            target: ``host``, ``host:port``, ``[v6-address]:port`` or a bare IPv6 address.
            oids: Dotted OIDs, e.g. ``"1.3.6.1.2.1.1.3.0"`` (sysUpTime.0).
            community: The community string.
            timeout: Seconds to wait for an answer, per attempt.

        Returns:
            One ``SnmpVarBind`` per OID, in order; ``value`` is ``None`` for an OID the agent does
            not have.

        Raises:
            SnmpTimeout: no answer.
            SnmpError: any other failure (bad target, error status in the response).
        """
        if not oids:
            return []
        return asyncio.run(self._get(target, tuple(oids), community, timeout))

    def walk(self, target: str, oid: str, *, community: str, timeout: float) -> list[SnmpVarBind]:
        """Read every variable under ``oid`` (GETBULK with v2c, GETNEXT with v1), in OID order.

        Raises:
            SnmpTimeout: no answer to one of the requests.
            SnmpError: any other failure, or more than ``max_rows`` variables.
        """
        return asyncio.run(self._walk(target, oid, community, timeout))

    def close(self) -> None:
        """Nothing to release: every call already closed what it opened. Kept for symmetry."""

    # ------------------------------------------------------------------------------------------

    def _auth(self, community: str) -> CommunityData:
        return CommunityData(community, mpModel=0 if self.version == "1" else 1)

    async def _target(self, target: str, timeout: float) -> Any:
        host, port = split_target(target)
        kind = Udp6TransportTarget if _is_ipv6(host) else UdpTransportTarget
        try:
            return await kind.create((host, port), timeout=timeout, retries=self.retries)
        except Exception as exc:  # pysnmp raises PySnmpError for unresolvable names
            raise SnmpError(f"bad SNMP target {target!r}: {exc}") from None

    async def _get(self, target: str, oids: tuple[str, ...], community: str, timeout: float) -> list[SnmpVarBind]:
        engine = SnmpEngine()
        try:
            transport = await self._target(target, timeout)
            indication, status, index, var_binds = await get_cmd(
                engine,
                self._auth(community),
                transport,
                ContextData(),
                *(ObjectType(ObjectIdentity(oid)) for oid in oids),
                lookupMib=False,
            )
            _raise_for(target, indication, status, index)
            return [SnmpVarBind(str(name), to_python(value)) for name, value in var_binds]
        finally:
            engine.close_dispatcher()

    async def _walk(self, target: str, oid: str, community: str, timeout: float) -> list[SnmpVarBind]:
        engine = SnmpEngine()
        rows: list[SnmpVarBind] = []
        try:
            transport = await self._target(target, timeout)
            start = ObjectType(ObjectIdentity(oid))
            options = {"lexicographicMode": False, "lookupMib": False}
            if self.version == "1":
                responses = walk_cmd(engine, self._auth(community), transport, ContextData(), start, **options)
            else:
                responses = bulk_walk_cmd(
                    engine, self._auth(community), transport, ContextData(), 0, self.max_repetitions, start, **options
                )
            async for indication, status, index, var_binds in responses:
                _raise_for(target, indication, status, index)
                for name, value in var_binds:
                    if isinstance(value, rfc1905.EndOfMibView):
                        continue
                    rows.append(SnmpVarBind(str(name), to_python(value)))
                if len(rows) > self.max_rows:
                    raise SnmpError(f"walk of {oid} on {target} returned more than {self.max_rows} variables")
            return rows
        finally:
            engine.close_dispatcher()


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


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _raise_for(target: str, indication: Any, status: Any, index: Any) -> None:
    if indication:
        if isinstance(indication, errind.RequestTimedOut):
            raise SnmpTimeout(f"no SNMP answer from {target}: {indication}")
        raise SnmpError(f"SNMP request to {target} failed: {indication}")
    if status:
        text = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
        raise SnmpError(f"SNMP agent {target} answered {text} (variable {int(index)})")


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
