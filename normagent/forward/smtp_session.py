"""An SMTP session on a connection the e-mail forwarder has already made.

Why a module of its own: importing smtplib brings the e-mail package with it (2.6 MB of an idle
agent). ``normagent.forward.smtp`` connects first and imports this only once the server answers,
so an agent whose mail server is down never loads them.
"""

from __future__ import annotations

import smtplib
import socket
import ssl


class _OnSocket(smtplib.SMTP):
    """smtplib's client, handed a connected socket instead of connecting; TLS-wrapped here, with
    the server's name verified, when the server speaks TLS from the start (what ``SMTP_SSL`` does)."""

    def __init__(self, sock: socket.socket, host: str, port: int, timeout: float, tls: ssl.SSLContext | None) -> None:
        self._connected: socket.socket | None = sock
        self._tls = tls
        super().__init__(host, port, timeout=timeout)  # connect(): _get_socket, then the greeting

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock, self._connected = self._connected, None
        if sock is None:
            raise smtplib.SMTPServerDisconnected("the connection was used already")
        if self._tls is None:
            return sock
        return self._tls.wrap_socket(sock, server_hostname=host)


def open_session(sock: socket.socket, host: str, port: int, timeout: float, tls: ssl.SSLContext | None) -> smtplib.SMTP:
    """The session after the server's 220 greeting; ``sock`` is closed if there is none.

    Raises:
        smtplib.SMTPConnectError: The greeting was not 220.
        ssl.SSLError, OSError: TLS or the connection failed.
    """
    try:
        return _OnSocket(sock, host, port, timeout, tls)
    except BaseException:
        sock.close()  # smtplib closed what it held; this one is closed too if TLS never took it over
        raise
