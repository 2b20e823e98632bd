"""Random ids and random draws, without the ``uuid`` and ``random`` modules.

Why: ``uuid`` imports ``platform`` and the ``_uuid`` extension with libuuid, and ``random`` its
generator's module and state: together about 0.5 MB of the idle agent's resident memory (issue 15)
for a few ids (a new ledger's host id, the EDI collector's run tokens and queue keys) and the
scheduler's and forwarders' jitter. Both are drawn here from ``os.urandom``, as ``uuid.uuid4`` and
``random.SystemRandom`` draw them.

Imports only the standard library.
"""

from __future__ import annotations

import os
from typing import Protocol


def random_id() -> str:
    """A random version-4 UUID as 32 lowercase hex digits, the same as ``uuid.uuid4().hex``: 122
    random bits with the version and variant bits set (RFC 4122, section 4.4)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # variant RFC 4122
    return raw.hex()


class Uniform(Protocol):
    """What the scheduler and the forwarders draw from: ``random.Random`` has it (the tests give
    them seeded ones), ``SystemUniform`` is the agent's."""

    def uniform(self, a: float, b: float) -> float: ...


class SystemUniform:
    """``uniform(a, b)`` as ``random.SystemRandom().uniform`` gives it: ``a + (b - a) * u`` with
    ``u`` of 53 random bits in [0, 1)."""

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * ((int.from_bytes(os.urandom(7), "big") >> 3) / (1 << 53))
