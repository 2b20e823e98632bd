# The C extension _filterlog.c; parse._filterlog_scan_py is its definition.

from .parse import FilterlogScan

def scan(data: bytes, /) -> FilterlogScan: ...
