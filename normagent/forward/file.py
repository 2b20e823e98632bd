"""Builtin forwarder ``file``: each candidate change as one JSON line, appended and fsynced.

For a local deviation system that picks files up (and for air-gapped sites). Each line is the
change document (the webhook's body) with its ``idempotency_key``; a reader that keeps the keys
it has seen gets each change once. The file is opened with ``O_APPEND`` for every delivery, so a
reader may rotate it away (rename) at any time, and each line is fsynced before the delivery
counts.

A crash between writing a line and the ledger's note of it would write the line again after the
restart; to avoid that, the sender reads the keys in the file's last 256 KiB when it opens, and
skips a change whose key it finds there.

A builtin plugin (``register_forwarders``); imports only model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from normagent.hookspecs import hookimpl
from normagent.model import Delivery, DeliveryFailed, ForwarderSpec
from normagent.records import dataclass

TAIL_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class FileSettings:
    """``[forwarders.<name>]`` with ``kind = "file"``.

    Attributes:
        path: The JSON-lines file to append to (its directory must exist).
        fsync: fsync after each line (keep it on: a change counts as delivered only once it is on disk).
    """

    path: Path | None = None
    fsync: bool = True


class FileSender:
    def __init__(self, settings: FileSettings) -> None:
        assert settings.path is not None
        self._path = settings.path
        self._fsync = settings.fsync
        self._recent = _keys_in_tail(self._path)

    def send(self, delivery: Delivery) -> None:
        if delivery.key in self._recent:
            self._recent.discard(delivery.key)
            return  # written before a crash; the ledger did not note it
        line = (delivery.text or json.dumps(delivery.document, ensure_ascii=False, separators=(",", ":"))) + "\n"
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            try:
                data = line.encode("utf-8")
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(f"short write ({written} of {len(data)} bytes)")
                if self._fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise DeliveryFailed("error", f"cannot append to {self._path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        pass


def _keys_in_tail(path: Path) -> set[str]:
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read()
    except OSError:
        return set()
    keys = set()
    for raw in tail.split(b"\n"):
        try:
            doc = json.loads(raw)
        except ValueError:
            continue  # the first, cut line, or a torn last one
        if isinstance(doc, dict) and isinstance(doc.get("idempotency_key"), str):
            keys.add(doc["idempotency_key"])
    return keys


def check(settings: FileSettings) -> list[tuple[str, str]]:
    if settings.path is None:
        return [("path", "is required")]
    folder = settings.path.parent
    if not folder.is_dir():
        return [("path", f"directory {folder} does not exist")]
    if settings.path.exists() and not settings.path.is_file():
        return [("path", f"{settings.path} is not a regular file")]
    if not os.access(folder if not settings.path.exists() else settings.path, os.W_OK):
        return [("path", f"{settings.path} cannot be written by this user")]
    return []


def _send(delivery: Delivery, settings: Any) -> None:
    FileSender(settings).send(delivery)


FILE = ForwarderSpec(
    kind="file",
    help="Appends each candidate change as a JSON line to a file (fsynced), for a local deviation system.",
    send=_send,
    settings=FileSettings,
    open=FileSender,
    check=check,
)


@hookimpl
def register_forwarders() -> list[ForwarderSpec]:
    return [FILE]
