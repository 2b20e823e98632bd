"""A webhook receiver for tests and benchmarks: a real HTTP server on 127.0.0.1 that keeps what it
receives, de-duplicates by Idempotency-Key as a real deviation system would, and can be told to
misbehave (answer 500, answer too late, stop listening) and to recover.

Run it in-process (``WebhookReceiver``) or as its own process (``python -m tests.support.receivers
PORT STATE_FILE``, used where the agent under test is killed and restarted).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from tests.support.ports import reserve_port


@dataclass
class Received:
    key: str
    body: bytes
    headers: dict[str, str]

    @property
    def document(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class WebhookReceiver:
    """An HTTP server that records every POST; ``mode`` says how it answers the next ones.

    Modes: ``"ok"`` (200), ``"fail"`` (500), ``"slow"`` (waits ``slow_seconds`` before answering,
    longer than the client's timeout), ``"refuse"`` (not listening at all: ``stop_listening()``).
    """

    port: int = 0
    mode: str = "ok"
    tls: Any = None  # an ssl.SSLContext: serve HTTPS
    slow_seconds: float = 3.0
    secret: bytes = b""
    posts: list[Received] = field(default_factory=list)  # every POST, duplicates included
    accepted: list[Received] = field(default_factory=list)  # answered 200, first of each key only
    seen: set[str] = field(default_factory=set)
    bad_signatures: int = 0
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                item = Received(self.headers.get("Idempotency-Key", ""), body, dict(self.headers.items()))
                with receiver.lock:
                    receiver.posts.append(item)
                    mode = receiver.mode
                    if receiver.secret:
                        expected = "sha256=" + hmac.new(receiver.secret, body, hashlib.sha256).hexdigest()
                        if not hmac.compare_digest(expected, self.headers.get("X-Normagent-Signature", "")):
                            receiver.bad_signatures += 1
                    receiver.changed.notify_all()
                if mode == "slow":
                    threading.Event().wait(receiver.slow_seconds)  # behaviour under test: an answer that comes too late
                    self._answer(500, b"too late")
                    return
                if mode == "fail":
                    self._answer(500, b"receiver is broken")
                    return
                with receiver.lock:
                    if item.key not in receiver.seen:
                        receiver.seen.add(item.key)
                        receiver.accepted.append(item)
                    receiver.changed.notify_all()
                self._answer(200, b"{}")

            def _answer(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout): nothing to tell it

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop_listening(self) -> None:
        """Close the listening socket: connections are refused until ``start()`` again (same port)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def stop(self) -> None:
        self.stop_listening()

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> bool:
        """Wait until ``predicate(self)`` holds (checked on every POST), at most ``timeout`` seconds."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, reserved (see tests/support/ports.py)."""
    return reserve_port()


def main(argv: list[str]) -> int:
    """``python -m tests.support.receivers PORT MODE_FILE LOG_FILE``: serve until killed; the mode is
    read from MODE_FILE before each request; each accepted or attempted POST is appended to LOG_FILE
    as a JSON line (key, status, body)."""
    port, mode_file, log_file = int(argv[0]), Path(argv[1]), Path(argv[2])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            mode = mode_file.read_text().strip() if mode_file.exists() else "ok"
            status = 200 if mode == "ok" else 500
            if mode == "slow":
                threading.Event().wait(3.0)
            with log_file.open("a") as log:
                log.write(json.dumps({"key": self.headers.get("Idempotency-Key", ""), "status": status, "mode": mode,
                                      "body": body.decode()}) + "\n")
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever(poll_interval=0.05)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
