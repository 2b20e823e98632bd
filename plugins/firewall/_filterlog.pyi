# The C extension _filterlog.c; parse._filterlog_scan_py is its definition.

def scan(
    data: bytes, /
) -> tuple[list[bytes], dict[tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes], int], dict[bytes, int], dict[bytes, int], bytes]: ...
