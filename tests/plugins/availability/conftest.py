"""Real servers on 127.0.0.1 for the availability probes, and a throw-away PKI made with openssl.

- ``pki(days)``: a CA and a server certificate for 127.0.0.1/localhost that expires in ``days``
  days (``-days -1``: expired yesterday), made by the openssl CLI;
- ``https_server(cert)``: a threaded HTTPS server: ``/health`` answers 200 ``status: ok``,
  ``/fail`` 503, ``/trickle`` sends its headers and then one body byte every 0.2 s for ever;
- ``hanging_port``: a TCP server that accepts and never answers;
- ``refused_port``: a port nothing listens on (bound, then closed).

Every server is stopped (and its threads joined) when the test ends.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.tools import require_tool


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], tuple[Path, Path, Path]]:
    """``pki(days)`` → (ca.crt, server.crt, server.key); one CA per module, certificates per call."""
    openssl = require_tool("openssl", "openssl")
    out = tmp_path_factory.mktemp("pki")
    run = lambda *args: subprocess.run([openssl, *args], cwd=out, check=True, capture_output=True)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "30", "-subj", "/CN=normagent availability test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    (out / "server.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    )

    def make(days: int) -> tuple[Path, Path, Path]:
        name = f"server-{days}"
        if not (out / f"{name}.crt").exists():
            run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=localhost")
            run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", str(days), "-extfile", "server.ext", "-out", f"{name}.crt")
        return out / "ca.crt", out / f"{name}.crt", out / f"{name}.key"

    return make


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path == "/health":
            self._send(200, b"status: ok\n")
        elif self.path == "/fail":
            self._send(503, b"maintenance\n")
        elif self.path == "/almost":
            self._send(200, b"a" * 100_000 + b"!")  # all but matches (a+)+$: backtracking's worst case
        elif self.path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            stop: threading.Event = self.server.stop  # type: ignore[attr-defined]
            while not stop.wait(0.2):  # a slow body: each byte well within any read timeout
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
        else:
            self._send(404, b"no\n")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def https_server() -> Iterator[Callable[[Path, Path], str]]:
    """``https_server(cert, key)`` → ``https://127.0.0.1:<port>``."""
    servers: list[tuple[http.server.ThreadingHTTPServer, threading.Thread]] = []

    def start(cert: Path, key: Path) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.stop = threading.Event()  # type: ignore[attr-defined]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"https://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in servers:
        server.stop.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.05)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def refused_port() -> int:
    """A loopback port with no listener (bound to find a free one, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
