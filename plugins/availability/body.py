"""``body_match`` of HTTP probes: RE2 (google-re2), whose matching takes time linear in the body.

Why not Python's ``re``: it backtracks. A pattern with a repetition inside a repetition —
``(a+)+$``, ``(\\w+\\s?)*:`` — takes 1.3 s on 25 characters that almost match and doubles with each
one more; on the first MiB of a probed page it never ends. ``re`` holds the interpreter lock all
the while, so the whole agent stops with it: no scrape is answered, no collector runs, and
systemd's watchdog kills it, over and over, for one careless pattern and a page that happens to
fit it. RE2 matches in one pass (1 ms on the same MiB), with the syntax of Prometheus' blackbox
exporter (Go's regexp is RE2 too): no look-arounds and no back-references, refused when the
configuration is read.

Imported only where a probe has a ``body_match``.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["body_pattern"]


@functools.lru_cache(maxsize=64)
def body_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (cached: every probe of a service asks again).

    Raises:
        ValueError: RE2 refuses it, with RE2's reason.
    """
    import re2  # google-re2: see the module docstring

    options = re2.Options()
    options.log_errors = False  # its reason goes into the ValueError, not onto standard error
    options.never_capture = True  # whether it matches is all that is asked
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", errors="replace")
        raise ValueError(
            f"not a regular expression RE2 accepts ({reason}); the syntax is Go's and Prometheus' blackbox "
            "exporter's: no look-arounds, no back-references"
        ) from None
