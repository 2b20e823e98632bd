"""Worker commands that play an EVTX child process failing: crashing after some lines, or any code.

``normagent.sources.evtx_process`` reads EVTX in a child process; these stand in for it, as real
processes, where a test needs the child to die or hang (``command=``, or ``WORKER_COMMAND``).
"""

from __future__ import annotations

import sys
import textwrap

NO_CORE = "import resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "


def python(code: str) -> tuple[str, ...]:
    """A worker command: this interpreter running ``code``."""
    return (sys.executable, "-c", textwrap.dedent(code))


def crashing_worker(after_lines: int, signal_name: str = "SIGSEGV") -> tuple[str, ...]:
    """The real worker, which kills itself with ``signal_name`` once it has sent ``after_lines`` lines."""
    return python(
        NO_CORE + f"""
import json, os, signal, sys
from normagent.sources import evtx_worker
sent = 0
def emit(answer):
    global sent
    if sent == {after_lines}:
        os.kill(os.getpid(), signal.{signal_name})
    sys.stdout.buffer.write(json.dumps(answer).encode() + b"\\n")
    sys.stdout.buffer.flush()
    sent += 1
sys.exit(evtx_worker.serve(json.loads(sys.stdin.buffer.read()), emit))
"""
    )
