"""An SMTP session on a connection the e-mail forwarder has already made.

Why a module of its own: importing smtplib brings the e-mail package with it (2.6 MB of an idle
agent). ``normagent.forward.smtp`` connects first and imports this only once the server answers,
so an agent whose mail server is down never loads them.

smtplib's own timeout is for each read: a server that greets a byte at a time, or answers with
continuation lines (``250-…``) without end, would hold a delivery for as long as it liked, and the
lines it keeps (smtplib gathers every line of an answer) would take all the memory there is. Here
the connection keeps one deadline for a whole delivery (``arm``), and an answer may be at most
``MAX_ANSWER`` bytes.
"""

from __future__ import annotations

import math
import smtplib
import socket
import ssl
import time
from typing import Any

MAX_ANSWER = 64 * 1024  # bytes one answer of the server may have (an EHLO list is well under 1 KiB)


class AnswerTooLong(OSError):
    """The server's answer to one command went on past ``MAX_ANSWER`` bytes."""


class _Limited:
    """A socket whose reads and writes wait only for the time left until its deadline, and whose
    reads since the last write (one answer) stop at ``MAX_ANSWER`` bytes."""

    _deadline: float = math.inf
    _received: int = 0

    def arm(self, deadline: float) -> None:
        self._deadline = deadline
        self._received = 0

    def _wait(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self.settimeout(left)  # type: ignore[attr-defined]

    def _got(self, n: int) -> int:
        self._received += n
        if self._received > MAX_ANSWER:
            raise AnswerTooLong(f"the server's answer went on past {MAX_ANSWER // 1024} KiB")
        return n

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        self._wait()
        return self._got(super().recv_into(*args, **kwargs))  # type: ignore[misc]

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        self._wait()
        data: bytes = super().recv(*args, **kwargs)  # type: ignore[misc]
        self._got(len(data))
        return data

    def send(self, *args: Any, **kwargs: Any) -> int:
        self._wait()
        self._received = 0  # a command: what comes next is its answer
        sent: int = super().send(*args, **kwargs)  # type: ignore[misc]
        return sent

    def sendall(self, *args: Any, **kwargs: Any) -> None:
        self._wait()
        self._received = 0
        super().sendall(*args, **kwargs)  # type: ignore[misc]


class _PlainSocket(_Limited, socket.socket):
    pass


class _TlsSocket(_Limited, ssl.SSLSocket):
    pass


def _limited(context: ssl.SSLContext) -> ssl.SSLContext:
    context.sslsocket_class = _TlsSocket
    return context


class _OnSocket(smtplib.SMTP):
    """smtplib's client, handed a connected socket instead of connecting; TLS-wrapped here, with
    the server's name verified, when the server speaks TLS from the start (what ``SMTP_SSL`` does)."""

    def __init__(self, sock: socket.socket, host: str, port: int, deadline: float, tls: ssl.SSLContext | None) -> None:
        self._connected: socket.socket | None = sock
        self._tls = tls
        self._deadline = deadline
        super().__init__(host, port, timeout=max(0.001, deadline - time.monotonic()))  # connect(): _get_socket, then the greeting

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock, self._connected = self._connected, None
        if sock is None:
            raise smtplib.SMTPServerDisconnected("the connection was used already")
        limited = _PlainSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        limited.arm(self._deadline)
        if self._tls is None:
            return limited
        try:
            limited._wait()  # the handshake as a whole within what is left
            wrapped = _limited(self._tls).wrap_socket(limited, server_hostname=host)
        except BaseException:
            limited.close()
            raise
        wrapped.arm(self._deadline)  # type: ignore[attr-defined]
        return wrapped

    def arm(self, deadline: float) -> None:
        """The next exchanges (one delivery) must be done by ``deadline`` (``time.monotonic()``)."""
        self._deadline = deadline
        if isinstance(self.sock, _Limited):
            self.sock.arm(deadline)

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        """smtplib's STARTTLS (only ``context=`` is used here), the handshake within the time left."""
        context = kwargs.pop("context", None) or ssl.create_default_context()
        if args or kwargs:
            raise TypeError("starttls takes only context=")
        if isinstance(self.sock, _Limited):
            self.sock._wait()  # the handshake inherits the time left
        answer = super().starttls(context=_limited(context))
        self.arm(self._deadline)
        return answer


def open_session(sock: socket.socket, host: str, port: int, deadline: float, tls: ssl.SSLContext | None) -> smtplib.SMTP:
    """The session after the server's 220 greeting; ``sock`` is closed if there is none. Every
    exchange until the next ``arm`` must be done by ``deadline`` (``time.monotonic()``).

    Raises:
        smtplib.SMTPConnectError: The greeting was not 220.
        ssl.SSLError, OSError: TLS or the connection failed.
    """
    try:
        return _OnSocket(sock, host, port, deadline, tls)
    except BaseException:
        sock.close()  # smtplib closed what it held; this one is closed too if TLS never took it over
        raise


def timed_out(exc: BaseException) -> bool:
    """Whether smtplib's error (it turns a failed read into ``SMTPServerDisconnected``) was the deadline."""
    return isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)


def too_long(exc: BaseException) -> AnswerTooLong | None:
    """The ``AnswerTooLong`` behind smtplib's error, if that is what it was."""
    for cause in (exc, exc.__context__):
        if isinstance(cause, AnswerTooLong):
            return cause
    return None
