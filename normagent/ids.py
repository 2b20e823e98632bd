"""Random identifiers, as ``uuid.uuid4().hex`` gives them, without importing ``uuid``.

Why not ``uuid``: it imports ``platform`` and the ``_uuid`` extension with libuuid, about 0.4 MB
of the idle agent's resident memory (issue 15) for the few ids the agent makes: a new ledger's
host id, the EDI collector's run tokens and queue keys. A version-4 UUID is 122 random bits with
the version and variant bits set (RFC 4122, section 4.4); this is that, from ``os.urandom`` as
``uuid.uuid4`` takes it.

Imports only the standard library.
"""

from __future__ import annotations

import os


def random_id() -> str:
    """A random version-4 UUID as 32 lowercase hex digits, the same as ``uuid.uuid4().hex``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # variant RFC 4122
    return raw.hex()
