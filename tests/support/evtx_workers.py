"""Worker commands that play an EVTX child process failing: crashing after some lines, in a given
chunk, or any code.

``normagent.sources.evtx_process`` reads EVTX in a child process; these stand in for it, as real
processes, where a test needs the child to die or hang (``command=``, or ``WORKER_COMMAND``).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

NO_CORE = "import resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "


def python(code: str) -> tuple[str, ...]:
    """A worker command: this interpreter running ``code``."""
    return (sys.executable, "-c", textwrap.dedent(code))


def crashing_worker(after_lines: int, signal_name: str = "SIGSEGV") -> tuple[str, ...]:
    """The real worker, which kills itself with ``signal_name`` once it has sent ``after_lines`` lines
    other than chunk announcements (blocks, mostly: where it dies does not depend on chunk sizes)."""
    return python(
        NO_CORE + f"""
import json, os, signal, sys
from normagent.sources import evtx_worker
sent = 0
def emit(answer):
    global sent
    if "chunk" not in answer:
        if sent == {after_lines}:
            os.kill(os.getpid(), signal.{signal_name})
        sent += 1
    sys.stdout.buffer.write(json.dumps(answer).encode() + b"\\n")
    sys.stdout.buffer.flush()
sys.exit(evtx_worker.serve(json.loads(sys.stdin.buffer.read()), emit))
"""
    )


def chunk_crashing_worker(offset: int, signal_name: str | None = "SIGSEGV", *, once: Path | None = None) -> tuple[str, ...]:
    """The real worker, which kills itself with ``signal_name`` (None: hangs) right after it announced
    the chunk at ``offset``: where the native parser would crash on a hostile chunk. With ``once``,
    only while that file does not exist (it creates it): a transient crash (the OOM killer), gone
    next pass."""
    die = "signal.pause()" if signal_name is None else f"os.kill(os.getpid(), signal.{signal_name})"
    return python(
        NO_CORE + f"""
import json, os, signal, sys
from normagent.sources import evtx_worker
once = {str(once) if once is not None else None!r}
def emit(answer):
    sys.stdout.buffer.write(json.dumps(answer).encode() + b"\\n")
    sys.stdout.buffer.flush()
    chunk = answer.get("chunk")
    if chunk is not None and chunk["offset"] == {offset}:
        if once is None:
            {die}
        elif not os.path.exists(once):
            open(once, "x").close()
            {die}
sys.exit(evtx_worker.serve(json.loads(sys.stdin.buffer.read()), emit))
"""
    )
