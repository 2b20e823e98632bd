"""Keep the long-running agent's resident memory near what it needs at idle (issue 15, item 1).

The agent runs for months beside the EPJ on small servers, so what matters is the memory it
holds between cycles, not its peak. Two habits of glibc's allocator keep memory the agent no
longer uses:

- every thread that allocates under contention gets an *arena* of its own (up to eight per core),
  each keeping its own freed chunks; the scheduler runs each collector on a thread of its own,
  so the freed blocks of a log read stay spread over many arenas;
- freed memory in the middle of a heap, and often at its top, stays mapped until ``malloc_trim``
  is called (Python's own allocator returns its empty 1 MiB arenas, but a log block, a parsed
  batch or a query's rows are allocated by malloc).

Measured on the idle agent with every forwarder and the rules engine (bench/README.md): two
arenas and a collection plus ``malloc_trim`` after the collectors' runs save 3–4 MB of 44.

On a C library without these calls (musl) both do nothing: they are tuning, never behaviour.
"""

from __future__ import annotations

import ctypes
import functools
import gc

from normagent.records import dataclass

M_ARENA_MAX = -8  # glibc's malloc.h: mallopt parameter for the number of arenas
ARENAS = 2  # the main thread's and one shared by every other thread
# Seconds between handing freed memory back when no collector runs: the collectors' usual
# interval, so what one cycle freed is given back before the next.
GIVE_BACK_EVERY = 60.0
# The first comes this soon after the start, when the start's burst (the first run of every
# collector, spread over a second) is over: what start-up freed goes back then, not a minute on.
FIRST_GIVE_BACK = 10.0
FULL_COLLECT_EVERY = 3600.0  # seconds between its full collections (``give_back_memory``)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The process's own C library (the handle of the main program), looked up once."""
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Let glibc create at most ``arenas`` malloc arenas, as ``MALLOC_ARENA_MAX`` would.

    Call it before the agent starts threads: glibc fixes its limit when the first thread needs
    an arena of its own. An explicit ``MALLOC_ARENA_MAX`` in the environment wins (glibc read it
    at start; this call would override it, so it is not made). Returns whether the limit was set.
    """
    import os

    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    return bool(mallopt is not None and mallopt(M_ARENA_MAX, arenas) == 1)


def settle_after_start() -> None:
    """Keep what start-up built (it lives as long as the process) out of the garbage collector's
    walks, and let young garbage (a log block's parse) pile up a little more before a collection
    (measured: about 4 % of a large log catch-up). ``normagent run`` calls it once started."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def give_back_memory(full: bool = True) -> None:
    """Collect cyclic garbage, then hand the allocator's free pages back to the system.

    Cheap after ``gc.freeze()`` (only what was allocated since is walked) and a few milliseconds
    of ``malloc_trim`` on an idle heap: the agent calls it once a minute when no collector runs,
    and after a cycle that read many files (an EDI first index).

    ``full=False`` collects only the two young generations: what the last minute's runs left.
    The agent's minute-by-minute call does that and a full collection once an hour
    (``FULL_COLLECT_EVERY``), because what was built after start and lives on — an SNMP device's
    kept engine and its MIB tables, tens of thousands of objects — sits in the oldest generation,
    and walking it every minute was a tenth of the idle agent's CPU with one device (8.7 ms a
    collection against 1.5–2 ms without it; bench/README.md). A cycle of objects that lived
    through two of these collections before they were dropped waits for the hourly one (and
    plain garbage, freed by its reference count, waits for nothing).
    """
    if full:
        gc.collect()
    else:
        gc.collect(1)
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


@dataclass
class GiveBackSchedule:
    """When the serving agent gives memory back, and which of those times collect in full.

    ``due(now)`` is ``None`` before the next give-back, else whether it is a full collection
    (the first due after ``FULL_COLLECT_EVERY`` has passed) or only the young generations.
    """

    next_at: float
    next_full_at: float

    @classmethod
    def starting(cls, now: float) -> GiveBackSchedule:
        return cls(now + FIRST_GIVE_BACK, now + FULL_COLLECT_EVERY)

    def due(self, now: float) -> bool | None:
        if now < self.next_at:
            return None
        self.next_at = now + GIVE_BACK_EVERY
        if now < self.next_full_at:
            return False
        self.next_full_at = now + FULL_COLLECT_EVERY
        return True
