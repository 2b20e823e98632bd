"""The process settings of ``normagent run``, for a benchmark's child that runs a collector as the
daemon does (``run_collector_once`` alone would run it with the interpreter's defaults).

Pasted into the child's code after its imports, or run with ``exec``. A commit compared with
``--before``/``--compare-with`` gets the same settings: its ``normagent run`` made them too
(the arena limit and the garbage collector's settings predate the commits compared here).
"""

DAEMON_PROCESS = r"""
# The process as `normagent run` sets it up (normagent/agent.py: run_agent), for this tree's
# normagent: two malloc arenas, then start-up kept out of the garbage collector's walks.
from normagent import memory as _memory
_memory.limit_malloc_arenas()
import gc as _gc
_gc.freeze()
_gc.set_threshold(50_000, 20, 20)
"""
