"""Builders shared by the system plugin's tests: wtmpdb databases with the real schema, UTC times."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

WTMPDB_SCHEMA = (
    # wtmpdb lib/sqlite.c, current and older (with PID, without ID) schemas, verbatim
    "CREATE TABLE IF NOT EXISTS wtmp(ID INTEGER PRIMARY KEY, Type INTEGER, User TEXT NOT NULL, Login INTEGER, "
    "Logout INTEGER, TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;",
    "CREATE TABLE IF NOT EXISTS wtmp(Type INTEGER, User TEXT NOT NULL, PID INTEGER, Login INTEGER, Logout INTEGER, "
    "TTY TEXT, RemoteHost TEXT, Service TEXT) STRICT;",
)


def utc(text: str) -> datetime:
    """An aware UTC datetime from ``YYYY-MM-DD HH:MM:SS``."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


def t(text: str) -> float:
    """Unix time of a UTC ``YYYY-MM-DD HH:MM:SS``."""
    return utc(text).timestamp()


def us(text: str) -> int:
    """Microseconds since the epoch, as wtmpdb stores times."""
    return int(t(text)) * 1_000_000


# (Type, User, Login µs, Logout µs, TTY); users are invented.
WTMPDB_ROWS: list[tuple[int, str, int, int | None, str]] = [
    (1, "reboot", us("2026-09-01 08:00:00"), us("2026-09-05 18:00:00"), "~"),
    (3, "alice", us("2026-09-01 09:00:00"), us("2026-09-01 10:00:00"), "pts/0"),
    (1, "reboot", us("2026-09-05 18:02:00"), None, "~"),  # crashed: never logged out
    (3, "bob", us("2026-09-06 09:00:00"), None, "pts/1"),
    (1, "reboot", us("2026-09-07 07:00:00"), us("2026-09-20 03:00:00"), "~"),
    (1, "soft-reboot", us("2026-09-20 03:00:05"), None, "~"),  # systemd soft-reboot, still running
]


def make_wtmpdb(path: Path, rows: list[tuple[int, str, int, int | None, str]], schema: str = WTMPDB_SCHEMA[0]) -> Path:
    """A wtmpdb database with the real schema, as ``wtmpdb boot``/``login``/``shutdown`` leave it."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute(schema)
            conn.executemany("INSERT INTO wtmp (Type, User, Login, Logout, TTY) VALUES (?, ?, ?, ?, ?)", rows)
    finally:
        conn.close()
    return path
