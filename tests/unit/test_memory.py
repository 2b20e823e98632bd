"""normagent.memory: the allocator tuning behind the idle agent's resident size (issue 15, item 1).

Each case runs in a fresh interpreter: glibc fixes its arena limit once, and the test process's
own heap would blur a resident-size difference.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Sequence
from pathlib import Path

import pytest

from normagent import memory
from tests.support.tools import skip_for_host

GLIBC = platform.libc_ver()[0] == "glibc"


def run(code: str, args: Sequence[str] = (), **env: str) -> dict[str, object]:
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                            timeout=120, env={**base, **env})
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.fixture(autouse=True)
def _glibc() -> None:
    if not GLIBC:
        skip_for_host("mallopt and malloc_trim are glibc's")


def test_the_arena_limit_is_set_unless_the_environment_sets_one() -> None:
    code = """
        import json
        from normagent import memory
        print(json.dumps({"set": memory.limit_malloc_arenas()}))
    """
    assert run(code) == {"set": True}
    assert run(code, MALLOC_ARENA_MAX="4") == {"set": False}


def test_threads_share_the_limited_arenas(tmp_path: Path) -> None:
    # Eight threads that each allocate at the same time: without a limit glibc gives most of them
    # an arena of their own; with the limit they share two. malloc_info(3) lists the arenas.
    code = """
        import ctypes, json, sys, threading
        from normagent import memory
        if LIMIT:
            memory.limit_malloc_arenas()
        barrier = threading.Barrier(9)
        def work():
            barrier.wait()
            block = [bytes(2000) for _ in range(2_000)]
            barrier.wait()
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads: t.start()
        barrier.wait()
        barrier.wait()
        libc = ctypes.CDLL(None)
        libc.fopen.restype = ctypes.c_void_p
        fp = libc.fopen(sys.argv[1].encode(), b"w")
        libc.malloc_info(0, ctypes.c_void_p(fp))
        libc.fclose(ctypes.c_void_p(fp))
        for t in threads: t.join()
        print(json.dumps({"arenas": open(sys.argv[1]).read().count("<heap nr=")}))
    """
    free = run(code.replace("LIMIT", "False"), args=[str(tmp_path / "free.xml")])
    limited = run(code.replace("LIMIT", "True"), args=[str(tmp_path / "limited.xml")])
    assert limited == {"arenas": 2}
    assert int(str(free["arenas"])) > 2


def test_give_back_returns_freed_heap_to_the_system() -> None:
    # 60 MB of malloc'ed blocks (above pymalloc's 512 bytes, below the mmap threshold), all freed:
    # glibc keeps them mapped until asked.
    code = """
        import json
        from normagent import memory
        def rss():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
        keep = bytes(10)  # something allocated after the blocks, so the heap's top stays in use
        blocks = [bytes(3000) for _ in range(20_000)]
        top = [bytes(3000)]
        del blocks
        before = rss()
        memory.give_back_memory()
        print(json.dumps({"before": before, "after": rss()}))
    """
    result = run(code)
    assert float(str(result["before"])) - float(str(result["after"])) > 40


class _Node:
    """Something that can be part of a reference cycle and be watched by a weak reference."""

    def __init__(self) -> None:
        self.me = self


def test_the_minute_give_back_collects_the_young_and_the_hourly_one_the_old() -> None:
    """What the last runs left in a cycle is collected every minute (``full=False``); a cycle of
    objects that had lived through collections (an SNMP engine's, say) waits for the full one,
    so the minute's collection does not walk every long-lived object again."""
    gc.disable()  # no automatic collection between the steps
    try:
        old = _Node()
        old_ref = weakref.ref(old)
        gc.collect()
        gc.collect()  # survived: in the oldest generation now
        del old
        young = _Node()
        young_ref = weakref.ref(young)
        del young
        memory.give_back_memory(full=False)
        assert young_ref() is None
        assert old_ref() is not None
        memory.give_back_memory(full=True)
        assert old_ref() is None
    finally:
        gc.enable()


def test_the_give_back_schedule_collects_in_full_once_an_hour() -> None:
    schedule = memory.GiveBackSchedule.starting(0.0)
    due = {t: schedule.due(float(t)) for t in range(0, 7300, 5)}
    assert [t for t, full in due.items() if full is not None] == list(range(10, 7300, 60))  # soon after the start, then each minute
    assert [t for t, full in due.items() if full] == [3610, 7210]
    late = memory.GiveBackSchedule.starting(0.0)
    assert late.due(9.0) is None
    assert late.due(4000.0) is True  # a give-back that came late (a long run) is the full one
    assert late.due(4030.0) is None and late.due(4060.0) is False
