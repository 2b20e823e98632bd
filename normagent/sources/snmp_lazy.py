"""An ``SnmpClient`` that imports pysnmp only when a collector first polls.

pysnmp, pyasn1 and pycryptodomex cost several MB of resident memory at import; most clinic servers
configure no SNMP device, so the agent hands collectors this stand-in and pays only when SNMP is
used.

Imports only the standard library and normagent.model (pysnmp through normagent.sources.snmp, late).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from normagent.model import SnmpAuth, SnmpSession, SnmpVarBind

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

    def session(
        self, target: str, *, auth: SnmpAuth, timeout: float, retries: int = 1
    ) -> AbstractContextManager[SnmpSession]:
        return self._real().session(target, auth=auth, timeout=timeout, retries=retries)

    def get(self, target: str, oids: Sequence[str], *, auth: SnmpAuth, timeout: float) -> list[SnmpVarBind]:
        return self._real().get(target, oids, auth=auth, timeout=timeout)

    def walk(
        self, target: str, oid: str, *, auth: SnmpAuth, timeout: float, max_rows: int = 10_000
    ) -> list[SnmpVarBind]:
        return self._real().walk(target, oid, auth=auth, timeout=timeout, max_rows=max_rows)

    @property
    def loaded(self) -> bool:
        return self._client is not None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
