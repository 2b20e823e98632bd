"""Run a piece of a test as an unprivileged user: root lists and reads anything, so a test of
"permission denied" must drop root first."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any


def as_nobody(work: Callable[[], Any]) -> Any:
    """Run ``work()`` as nobody (in a forked child when we are root: root lists any directory) and
    return its JSON-able result."""
    if os.geteuid() != 0:
        return json.loads(json.dumps(work()))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with os.fdopen(write_end, "w") as out:
                json.dump(work(), out)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as result:
        data = result.read()
    _, status = os.waitpid(pid, 0)
    assert status == 0 and data, "the unprivileged child failed"
    return json.loads(data)
