"""Types of the compiled fast path (_header.c): ``parse._SCAN``'s signature, exactly."""

from .parse import Scanned

def scan(data: bytes, /) -> Scanned | None: ...
