"""Types of the compiled scan (_candidates.c): ``parse.scan_lines``' signature, exactly."""

from .parse import FastRead, Head, HourOf

def scan(data: bytes, hour: HourOf | None, /) -> tuple[list[tuple[int, int]], int, FastRead | None, list[Head | None] | None]: ...
