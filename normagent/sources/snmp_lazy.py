"""An ``SnmpClient`` that imports pysnmp only when a collector first polls.

pysnmp and pyasn1 cost about 4 MB of resident memory at import; most clinic servers configure no
SNMP collector, so the agent hands collectors this stand-in and pays only when SNMP is used.

Imports only the standard library and normagent.model (pysnmp through normagent.sources.snmp, late).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from normagent.model import SnmpVarBind

if TYPE_CHECKING:
    from normagent.sources.snmp import PysnmpClient


class LazySnmpClient:
    """Creates a ``PysnmpClient(**options)`` on first use; thread-safe."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._client: PysnmpClient | None = None
        self._lock = threading.Lock()

    def _real(self) -> PysnmpClient:
        with self._lock:
            if self._client is None:
                from normagent.sources.snmp import PysnmpClient

                self._client = PysnmpClient(**self._options)
            return self._client

    def get(self, target: str, oids: Sequence[str], *, community: str, timeout: float) -> list[SnmpVarBind]:
        return self._real().get(target, oids, community=community, timeout=timeout)

    def walk(self, target: str, oid: str, *, community: str, timeout: float) -> list[SnmpVarBind]:
        return self._real().walk(target, oid, community=community, timeout=timeout)

    @property
    def loaded(self) -> bool:
        return self._client is not None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
