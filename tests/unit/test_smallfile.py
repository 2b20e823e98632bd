"""Small files an operator names (configuration, secrets, certificates): read whole when they are
regular files within their limit, refused with a reason otherwise, and never blocked on."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from normagent.smallfile import FileTooLarge, NotRegularFile, read_head, read_secret, read_small, read_small_text


def test_a_regular_file_within_its_limit_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"s3cret\n" * 100)
    assert read_small(path, 700) == b"s3cret\n" * 100
    assert read_small_text(path, 700).count("s3cret") == 100
    assert read_secret(path).endswith("s3cret") and not read_secret(path).endswith("\n")
    with pytest.raises(FileTooLarge, match="is larger than 699 bytes"):
        read_small(path, 699)


def test_a_file_whose_size_says_nothing_is_held_to_the_limit_while_it_is_read() -> None:
    """/proc files say 0 bytes: the limit must hold while reading, not only by the size."""
    maps = Path("/proc/self/maps")
    assert os.stat(maps).st_size == 0
    with pytest.raises(FileTooLarge):
        read_small(maps, 10)
    assert b"\n" in read_small(maps, 1 << 24)


def test_a_fifo_is_refused_at_once_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            read_small(fifo, 100)
        except OSError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(30)
    if reader.is_alive():  # it blocked in open(): unblock it so the run ends, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("read_small blocked on a FIFO")
    assert len(outcome) == 1 and isinstance(outcome[0], NotRegularFile)
    assert outcome[0].strerror == "is a FIFO (named pipe), not a regular file" and outcome[0].filename == str(fifo)


def test_devices_directories_and_sockets_are_refused_with_what_they_are(tmp_path: Path) -> None:
    with pytest.raises(NotRegularFile, match="is a character device"):
        read_small(Path("/dev/zero"), 100)
    with pytest.raises(IsADirectoryError):
        read_small(tmp_path, 100)
    with pytest.raises(FileNotFoundError):
        read_small(tmp_path / "absent", 100)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
        with pytest.raises(NotRegularFile, match="is a socket"):
            read_small(tmp_path / "sock", 100)


def test_text_that_is_no_utf8_is_a_decode_error_not_garbage(tmp_path: Path) -> None:
    path = tmp_path / "password"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UnicodeDecodeError):
        read_secret(path)


def test_a_head_is_the_first_bytes_of_a_file_of_any_size_and_refuses_the_rest(tmp_path: Path) -> None:
    """``read_head`` (a ClamAV database's 512-byte header): no limit on the file, the same refusals."""
    big = tmp_path / "daily.cvd"
    big.write_bytes(b"H" * 512 + b"x" * (3 << 20))
    short = tmp_path / "short.cvd"
    short.write_bytes(b"tiny")
    assert read_head(big, 512) == b"H" * 512
    assert read_head(short, 512) == b"tiny"
    assert read_head(Path("/proc/self/maps"), 4) != b""  # says 0 bytes, has some
    with pytest.raises(NotRegularFile, match="is a character device"):
        read_head(Path("/dev/zero"), 512)
    with pytest.raises(IsADirectoryError):
        read_head(tmp_path, 512)
    fifo = tmp_path / "fifo.cvd"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile, match="is a FIFO"):  # O_NONBLOCK: refused, not waited on
        read_head(fifo, 512)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
        with pytest.raises(NotRegularFile, match="is a socket"):
            read_head(tmp_path / "sock", 512)
