"""Types of the C scan in _netfilter.c (see its header, and parse.netfilter_scan_py)."""

def scan(
    data: bytes, /
) -> tuple[
    set[bytes],
    set[tuple[bytes, bytes]],
    dict[tuple[bytes, bytes, bytes], int],
    dict[bytes, dict[bytes, int]],
    dict[bytes, dict[bytes, int]],
    bytes,
]: ...

def add_named(rows: dict[str, int], names: dict[bytes, str], counts: dict[bytes, int], /) -> list[bytes]: ...
