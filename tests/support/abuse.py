"""Real abusive clients for tests of the HTTP side: slow requests and floods of wrong passwords.

Each drives real sockets on 127.0.0.1 (or another loopback address, to play another client
address) from threads of its own, until the ``with`` block ends.
"""

from __future__ import annotations

import base64
import contextlib
import selectors
import socket
import threading
import time
from typing import Protocol, cast


class Server(Protocol):
    """Where the attack goes: ``web.RunningServer`` or anything with a host and port."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


class SlowHeaders:
    """Real sockets that each send a request line, then one more header line every ``every`` seconds,
    and connect again at once when the server closes one: the slow-header attack, from one thread.

    With ``tls``, the same against the handshake: a TLS record header, then a byte at a time of a
    ClientHello that never ends."""

    def __init__(
        self, server: Server, clients: int, *, every: float = 0.2, source: str = "127.0.0.1", tls: bool = False
    ) -> None:
        self.server, self.clients, self.every, self.source, self.tls = server, clients, every, source, tls
        self.cut = 0  # connections the server closed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-slow-headers")
        self._up = threading.Event()

    def _connect(self, selector: selectors.BaseSelector) -> None:
        conn = socket.create_connection((self.server.host, self.server.port), timeout=5, source_address=(self.source, 0))
        conn.sendall(b"\x16\x03\x01\x02\x00\x01" if self.tls else b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        conn.setblocking(False)
        selector.register(conn, selectors.EVENT_READ)

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            for _ in range(self.clients):
                self._connect(selector)
            self._up.set()
            line, next_line = 0, time.monotonic() + self.every
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=max(0.0, next_line - time.monotonic())):
                    conn = cast(socket.socket, key.fileobj)
                    try:
                        if conn.recv(65536):
                            continue  # an answer (431 …): the close follows
                    except BlockingIOError:
                        continue
                    except OSError:
                        pass
                    selector.unregister(conn)
                    conn.close()
                    self.cut += 1
                    if not self._stop.is_set():
                        self._connect(selector)  # at once: keep every place taken
                if time.monotonic() >= next_line:
                    line += 1
                    next_line += self.every
                    for key in list(selector.get_map().values()):
                        with contextlib.suppress(OSError):
                            cast(socket.socket, key.fileobj).send(b"\x00" if self.tls else b"X-Line-%d: slow\r\n" % line)
            for key in list(selector.get_map().values()):
                cast(socket.socket, key.fileobj).close()

    def __enter__(self) -> SlowHeaders:
        self._thread.start()
        assert self._up.wait(30), "the attackers could not connect"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


class PasswordFlood:
    """Real clients that send requests with wrong basic-auth passwords as fast as they are answered."""

    def __init__(self, server: Server, clients: int, *, user: str = "prometheus", source: str = "127.0.0.1") -> None:
        self.server, self.user, self.source = server, user, source
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), name=f"test-flood-{n}") for n in range(clients)]

    def _run(self, n: int) -> None:
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            raw_auth = f"{self.user}:guess {n}-{attempt}".encode()  # a new password each time: nothing cached
            header = "Basic " + base64.b64encode(raw_auth).decode()
            request = f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {header}\r\n\r\n".encode()
            try:
                with socket.create_connection((self.server.host, self.server.port), timeout=10,
                                              source_address=(self.source, 0)) as conn:
                    conn.sendall(request)
                    answer = b""
                    while chunk := conn.recv(65536):
                        answer += chunk
                self.statuses.append(int(answer.split(b" ", 2)[1]) if answer else 0)
            except OSError:
                self.statuses.append(0)

    def __enter__(self) -> PasswordFlood:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
