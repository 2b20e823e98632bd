"""Types of the compiled scan (_candidates.c): ``parse.scan_lines``' signature, exactly."""

from collections.abc import Callable

_Rows = dict[tuple[int, bytes], list[float]]
_Read = tuple[int, int, int, _Rows, _Rows, _Rows, list[tuple[float, bytes, bytes, bytes]], set[tuple[bytes, bytes, bytes]]]

def scan(
    data: bytes, hour: Callable[[bytes], tuple[float, int | None] | tuple[None, None]] | None, /
) -> tuple[list[tuple[int, int]], int, _Read | None, list[tuple[float, str, int] | None] | None]: ...
