"""Delivering a finished report: into a folder, or by e-mail through the SMTP settings of an e-mail
forwarder of the deviations (``[report] email``), to the data controller (``[report] to``).

A report is written to a temporary file in the folder and renamed into place, so a reader never
sees half a report; the JSON is always written beside the other formats (it is what the signed
SHA-256 is of). By e-mail every format is an attachment, and the body carries the signing header.

Imports forward.smtp (for its sender), errors and config types only.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normagent.errors import ConfigError, Problem, Unavailable
from normagent.model import DeliveryFailed

if TYPE_CHECKING:
    from normagent.config import Config

MIME = {
    "html": ("text", "html"),
    "md": ("text", "markdown"),
    "json": ("application", "json"),
    "pdf": ("application", "pdf"),
}


def file_name(doc: Mapping[str, Any], fmt: str) -> str:
    """``normagent-report-2026-11-<host>.pdf``: month and host (one host) or ``fleet``."""
    hosts = doc["hosts"]
    who = "fleet" if doc.get("fleet") else (hosts[0]["name"] if hosts else "none")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in who)[:64]
    return f"normagent-report-{doc['period']['name']}-{safe}.{fmt}"


def _pieces(data: bytes | Iterable[str]) -> Iterator[bytes]:
    """``data`` as bytes, a piece at a time: a report's bytes, or lines made as they are written
    (``--export-history``: a year of every series, never held whole)."""
    if isinstance(data, bytes):
        yield data
        return
    for line in data:
        yield line.encode("utf-8")


def write_atomically(path: Path, data: bytes | Iterable[str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where the folder should be: "File exists" said the opposite
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent)) from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in _pieces(data):
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_output(path: Path, data: bytes | Iterable[str]) -> None:
    """``--output PATH``: a file is replaced atomically; a pipe or a device the user names
    (``-o /dev/stdout``, a FIFO) is written into. Renaming over it would put a regular file where
    the device was: as root, ``-o /dev/null`` replaced /dev/null."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = stat.S_IFREG
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        write_atomically(path, data)
        return
    with open(path, "wb") as out:
        for piece in _pieces(data):
            out.write(piece)


def to_folder(folder: Path, doc: Mapping[str, Any], files: Mapping[str, bytes]) -> list[Path]:
    written = []
    for fmt, data in files.items():
        target = folder / file_name(doc, fmt)
        try:
            write_atomically(target, data)
        except OSError as exc:
            raise Unavailable(f"{target}: cannot write the report ({exc.strerror or exc})") from None
        written.append(target)
    return written


def by_email(config: Config, doc: Mapping[str, Any], files: Mapping[str, bytes], summary: str) -> list[str]:
    """Mail the report through ``[report] email``'s forwarder; returns the recipients."""
    from email.message import EmailMessage

    from normagent.forward.smtp import EmailSender, EmailSettings

    settings = config.sections["report"]
    forwarder = config.forwarders.get(settings.email)
    where = config.path
    if forwarder is None or forwarder.kind != "email" or not isinstance(forwarder.settings, EmailSettings):
        known = sorted(n for n, f in config.forwarders.items() if f.kind == "email")
        raise ConfigError([Problem(where, "report.email", f"{settings.email!r} is no e-mail forwarder (e-mail forwarders: {', '.join(known) or 'none'})")])
    smtp: EmailSettings = forwarder.settings
    recipients = tuple(settings.to) or tuple(smtp.to)
    if not recipients:
        raise ConfigError([Problem(where, "report.to", "no recipients: set [report] to, or the forwarder's to")])
    msg = EmailMessage()
    msg["From"] = smtp.from_address
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = f"{smtp.subject_prefix} {doc['title']}: {doc['period']['label']}".strip()
    msg.set_content(summary)
    for fmt, data in files.items():
        main, sub = MIME[fmt]
        msg.add_attachment(data, maintype=main, subtype=sub, filename=file_name(doc, fmt))
    sender = EmailSender(smtp)
    try:
        sender.send_message(msg)
    except DeliveryFailed as exc:
        raise Unavailable(f"the report could not be mailed through [forwarders.{settings.email}]: {exc}") from None
    finally:
        sender.close()
    return list(recipients)
