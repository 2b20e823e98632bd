"""Damaged copies of the real EVTX fixtures, made in a test's tmp_path by changing bytes at offsets
computed from the format (never committed: the fixtures stay as their authors wrote them).

An EVTX file is a 4 KiB file header and 64 KiB chunks; a chunk's records follow its 512-byte header,
each record starting with the signature 2a 2a 00 00, its size (u32 at +4), its record number (u64
at +8) and its time (FILETIME, u64 at +16). The walk below finds them the way the format lays them
out, independently of the reader under test.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

HEADER_BYTES = 4096
CHUNK_BYTES = 65536
RECORD_SIGNATURE = 0x00002A2A


def record_offsets(data: bytes) -> dict[int, int]:
    """Record number -> file offset of that record's header, for every record of every chunk."""
    out: dict[int, int] = {}
    for index in range((len(data) - HEADER_BYTES) // CHUNK_BYTES):
        base = HEADER_BYTES + index * CHUNK_BYTES
        if data[base : base + 8] != b"ElfChnk\x00":
            continue
        (free,) = struct.unpack_from("<I", data, base + 48)
        offset = base + 512
        while offset + 24 <= base + min(free, CHUNK_BYTES):
            signature, size, number = struct.unpack_from("<IIQ", data, offset)
            if signature != RECORD_SIGNATURE or size < 28:
                break
            out[number] = offset
            offset += size
    return out


def with_record_number(source: Path, target: Path, number: int, new: int) -> Path:
    """A copy of ``source`` in which record ``number``'s header says ``new`` (its content is intact)."""
    data = bytearray(source.read_bytes())
    struct.pack_into("<Q", data, record_offsets(bytes(data))[number] + 8, new)
    target.write_bytes(bytes(data))
    return target


def with_record_time(source: Path, target: Path, number: int, flip: int) -> Path:
    """A copy of ``source`` in which one bit (``flip``, a mask) of record ``number``'s header time is wrong."""
    data = bytearray(source.read_bytes())
    offset = record_offsets(bytes(data))[number] + 16
    (filetime,) = struct.unpack_from("<Q", data, offset)
    struct.pack_into("<Q", data, offset, filetime ^ flip)
    target.write_bytes(bytes(data))
    return target


def with_chunk_number(source: Path, target: Path, chunk: int, field: str, value: int, *, fix_checksum: bool = False) -> Path:
    """A copy of ``source`` whose chunk ``chunk`` header says ``value`` as its ``first`` or ``last`` record number.

    With ``fix_checksum`` the header's CRC-32 (bytes 0-119 and 128-511, stored at 124) is made to
    match, as if the wrong number had been written by the program that wrote the file.
    """
    data = bytearray(source.read_bytes())
    base = HEADER_BYTES + chunk * CHUNK_BYTES
    struct.pack_into("<Q", data, base + {"first": 8, "last": 16}[field], value)
    if fix_checksum:
        crc = zlib.crc32(bytes(data[base + 128 : base + 512]), zlib.crc32(bytes(data[base : base + 120])))
        struct.pack_into("<I", data, base + 124, crc)
    target.write_bytes(bytes(data))
    return target


def with_record_body_zeroed(source: Path, target: Path, number: int) -> Path:
    """A copy of ``source`` in which record ``number``'s content (its BinXML, between the 24-byte
    header and the 4-byte size copy that ends it) is zero bytes: evtx decodes it to ``{"Event": null}``."""
    data = bytearray(source.read_bytes())
    offset = record_offsets(bytes(data))[number]
    (size,) = struct.unpack_from("<I", data, offset + 4)
    data[offset + 24 : offset + size - 4] = bytes(size - 28)
    target.write_bytes(bytes(data))
    return target
