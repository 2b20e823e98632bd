"""The process settings of ``normagent run``, for a benchmark's child that runs a collector as the
daemon does (``run_collector_once`` alone would run it with the interpreter's defaults).

Pasted into the child's code after its imports (``CHILD + DAEMON_PROCESS + ...``). A commit
compared with ``--before``/``--compare-with`` gets what its own ``normagent run`` did: the
allocator's tuning where its ``normagent.memory`` has it; the garbage collector's settings are
the same since they were introduced.
"""

DAEMON_PROCESS = r"""
# The process as `normagent run` sets it up (normagent/agent.py: run_agent), for this tree's
# normagent: the allocator's tuning, then start-up kept out of the garbage collector's walks.
from normagent import memory as _memory
_memory.limit_malloc_arenas()
getattr(_memory, "reuse_block_buffers", lambda: None)()
import gc as _gc
_gc.freeze()
_gc.set_threshold(50_000, 20, 20)
"""
