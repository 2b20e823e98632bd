"""structlog without asyncio (nor uuid, nor pickle), until something really awaits a log line.

structlog imports asyncio at the top of ``structlog/_native.py`` and ``structlog/stdlib.py``, for
its ``a*`` methods alone (``await log.ainfo(...)``: they log on the event loop's executor), which
the agent never calls. asyncio imports ssl, and ssl OpenSSL's libssl and libcrypto: several
megabytes of resident memory for as long as the agent runs (issue 15), to log lines to stderr.
Likewise ``structlog/threadlocal.py`` (deprecated) imports uuid for ids its ``tmp_bind`` makes,
and ``structlog/_output.py`` pickle for the one exception class its loggers raise when pickled.

``install`` (called by ``normagent/__init__.py``, so before any module of the package imports
structlog) sets up the first import of structlog, whoever does it, to run with stand-ins for
``asyncio``, ``uuid`` and ``pickle`` in ``sys.modules`` (for each not imported yet): structlog's
modules bind the stand-in, and it imports the real module the first time one of its attributes is
used (an ``a*`` method, or anything at all; ``pickle``'s holds ``PicklingError`` from the start).
A stand-in is in ``sys.modules`` only while structlog is being imported, so no other module ever
gets it; one that imports asyncio in that moment (another thread) gets a module that works all
the same, and the real one from its first attribute on.

It is a meta path finder rather than an ``import structlog`` here, because importing
``normagent`` must cost next to nothing (``normagent run`` installs its signal handlers after it).

Imports only the standard library and normagent.standin.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from typing import Any

from normagent.standin import StandIn, standing_in

# What structlog imports at its top for parts the agent never calls, and what each would cost.
STANDS_IN_FOR = {
    "asyncio": "asyncio, imported when structlog first uses it (normagent.lazy_structlog)",
    # structlog.threadlocal (deprecated since 22.1) for tmp_bind's ids: uuid, platform and the
    # _uuid extension with libuuid, about 0.4 MB.
    "uuid": "uuid, imported when structlog first uses it (normagent.lazy_structlog)",
    # structlog/_output.py's `from pickle import PicklingError`, raised when a logger writing to a
    # file is pickled: the stand-in holds that class (pickle.py's own is _pickle's), and pickle's
    # Python half, about 0.16 MB, comes when something uses pickle.
    "pickle": "pickle, imported when structlog first uses it (normagent.lazy_structlog)",
}


def _attributes(name: str) -> dict[str, Any]:
    """What a stand-in must hold from the start: names structlog imports *from* it."""
    if name == "pickle":
        import _pickle

        return {"PicklingError": _pickle.PicklingError}
    return {}


class _Loader:
    """structlog's own loader, executing the package with the stand-in in ``sys.modules``."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> types.ModuleType | None:
        made: types.ModuleType | None = self._loader.create_module(spec)
        return made

    def exec_module(self, module: types.ModuleType) -> None:
        with standing_in([StandIn(name, doc, _attributes(name)) for name, doc in STANDS_IN_FOR.items() if name not in sys.modules]):
            self._loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, get_data, ...
        return getattr(self._loader, name)


class _FirstImport:
    """A meta path finder for the first import of structlog, then gone from ``sys.meta_path``."""

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None) -> Any:
        if name != "structlog":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:  # another thread's import got here first
            return None
        if all(name in sys.modules for name in STANDS_IN_FOR):
            return None  # the real ones are in memory already: nothing to save
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


def install() -> None:
    """Have the first import of structlog run without importing the modules of ``STANDS_IN_FOR``;
    nothing if structlog or all of them are imported already, or this was installed before."""
    if "structlog" in sys.modules or all(name in sys.modules for name in STANDS_IN_FOR):
        return
    if not any(isinstance(finder, _FirstImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FirstImport())
