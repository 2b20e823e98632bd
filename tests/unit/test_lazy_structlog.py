"""normagent.lazy_structlog: structlog imported without asyncio (nor ssl, nor OpenSSL), its async
methods still working once something awaits them.

Each test runs in a fresh interpreter: pytest has imported asyncio long before any test runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest


def run(probe: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(probe)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_logging_a_line_imports_no_asyncio_and_the_async_methods_still_work() -> None:
    result = run(
        """
        import io, json, sys
        import normagent
        from normagent.log import configure_logging
        import structlog

        stream = io.StringIO()
        configure_logging("info", "json", stream)
        structlog.get_logger("t").info("agent_started", n=1)
        before = sorted(set(sys.modules) & {"asyncio", "ssl", "_ssl", "_hashlib"})
        stand_in = type(structlog.stdlib.asyncio).__name__

        import asyncio

        async def main():
            await structlog.get_logger("t").ainfo("awaited", n=2)  # stdlib.BoundLogger.ainfo (structlog/stdlib.py)
            native = structlog.wrap_logger(structlog.PrintLogger(stream), wrapper_class=structlog.make_filtering_bound_logger(20),
                                           processors=[structlog.processors.JSONRenderer()])
            await native.ainfo("native")  # structlog/_native.py

        asyncio.run(main())
        events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
        print(json.dumps({"before": before, "stand_in": stand_in, "events": events,
                          "real": type(sys.modules["asyncio"]).__name__, "same": structlog.stdlib.asyncio.run is asyncio.run}))
        """
    )
    assert result["before"] == []
    assert result["stand_in"] == "StandIn"
    assert result["events"] == ["agent_started", "awaited", "native"]
    assert (result["real"], result["same"]) == ("module", True)  # the stand-in never reached sys.modules' readers


def test_structlog_s_threadlocal_gets_uuid_when_it_first_uses_it() -> None:
    """structlog.threadlocal imports uuid (and with it platform and libuuid) for its deprecated
    tmp_bind alone: not imported with structlog, the real module from its first use on."""
    result = run(
        """
        import json, sys
        import normagent, structlog
        before = sorted(set(sys.modules) & {"uuid", "platform", "_uuid"})
        stand_in = type(structlog.threadlocal.uuid).__name__
        made = str(structlog.threadlocal.uuid.uuid4())
        import uuid
        print(json.dumps({"before": before, "stand_in": stand_in, "made": made,
                          "same": structlog.threadlocal.uuid.uuid4 is uuid.uuid4, "real": type(sys.modules["uuid"]).__name__}))
        """
    )
    assert result["before"] == [] and result["stand_in"] == "StandIn"
    assert len(result["made"]) == 36 and result["made"].count("-") == 4
    assert (result["same"], result["real"]) == (True, "module")


def test_structlog_s_pickling_error_is_pickle_s_own_and_pickle_is_not_imported() -> None:
    result = run(
        """
        import json, sys
        import normagent, structlog, structlog._output
        before = "pickle" in sys.modules
        import pickle
        print(json.dumps({"before": before, "same": structlog._output.PicklingError is pickle.PicklingError}))
        """
    )
    assert result == {"before": False, "same": True}


def test_importing_asyncio_after_structlog_gives_the_real_module() -> None:
    result = run(
        """
        import json, sys
        import normagent, structlog
        gone = "asyncio" not in sys.modules
        import asyncio
        print(json.dumps({"gone": gone, "file": bool(getattr(asyncio, "__file__", None)), "meta_path": [type(f).__name__ for f in sys.meta_path]}))
        """
    )
    assert result["gone"] is True and result["file"] is True
    assert "_FirstImport" not in result["meta_path"]  # one import only: then out of the way


@pytest.mark.parametrize("first", ["asyncio", "structlog"])
def test_nothing_is_done_when_asyncio_or_structlog_is_imported_first(first: str) -> None:
    result = run(
        f"""
        import json, sys
        import {first}
        import normagent, structlog
        print(json.dumps({{"kind": type(structlog.stdlib.asyncio).__name__, "meta_path": [type(f).__name__ for f in sys.meta_path]}}))
        """
    )
    assert result["kind"] == "module"
    assert "_FirstImport" not in result["meta_path"]


def test_the_stand_in_used_while_structlog_is_imported_hands_over_to_the_real_module() -> None:
    """Asked for an attribute while it is still in ``sys.modules`` (another thread's import during
    structlog's): it leaves ``sys.modules`` first, so importing the real one does not recurse."""
    result = run(
        """
        import json, sys
        from normagent.standin import StandIn
        stand_in = sys.modules["asyncio"] = StandIn("asyncio", "a stand-in")
        run = stand_in.run
        import asyncio
        print(json.dumps({"same": run is asyncio.run, "real": sys.modules["asyncio"] is not stand_in}))
        """
    )
    assert result["same"] is True and result["real"] is True
