"""Modules that stand in for others while a library is imported, so that it binds them instead.

Two libraries the agent uses import, at their top, modules that load far more than they use:
structlog imports ``asyncio`` for its ``a*`` methods alone (``normagent.lazy_structlog``), and
pysnmp's SNMPv3 services import ``hashlib`` and ``hmac`` for SHA and MD5 (``snmp_usm``). asyncio
imports ``ssl``; ``ssl``, ``hashlib`` and ``hmac`` load OpenSSL's libcrypto: megabytes of resident
memory for as long as the agent runs (bench/README.md). While such a library is imported,
``standing_in`` puts a ``StandIn`` in ``sys.modules`` under the module's name (only where that
module is not imported already) and takes it out again afterwards, so only that library binds it.

A ``StandIn`` answers the names it was given (``normagent.digests``' hashes for ``hashlib``) and
gets any other from the real module, importing it then: whoever gets a stand-in, a thread
importing meanwhile included, gets a module that works. The import system's questions
(``__path__``, ``__spec__``…) are not passed on.

Imports only the standard library.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any


class StandIn(types.ModuleType):
    """The module ``name`` as a library sees it: ``attributes``, else the real module's."""

    def __init__(self, name: str, doc: str, attributes: dict[str, Any] | None = None) -> None:
        super().__init__(name, doc)
        self.__dict__.update(attributes or {})

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # the import system's questions (``__path__``: not a package)
            raise AttributeError(attribute)
        if sys.modules.get(self.__name__) is self:  # used while the library is being imported
            del sys.modules[self.__name__]  # else importing the real one would give this one back
        real = importlib.import_module(self.__name__)
        if real is self:  # put back by someone: never recurse
            raise AttributeError(f"module {self.__name__!r} is not imported yet (no attribute {attribute!r})")
        return getattr(real, attribute)


@contextmanager
def standing_in(stand_ins: Iterable[StandIn]) -> Iterator[None]:
    """``sys.modules`` with each of ``stand_ins`` whose module is not imported yet, for the block."""
    placed = [s for s in stand_ins if s.__name__ not in sys.modules]
    for stand_in in placed:
        sys.modules[stand_in.__name__] = stand_in
    try:
        yield
    finally:
        for stand_in in placed:
            if sys.modules.get(stand_in.__name__) is stand_in:
                del sys.modules[stand_in.__name__]
