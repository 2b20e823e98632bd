"""The forwarders' HTTP/1.1 client against a scripted server on 127.0.0.1: every way an answer may
end (length, chunks with trailers, the close), interim answers, connections closed by the peer
while idle or on purpose, answers that are no HTTP, and what reaches the wire."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from normagent.forward.client import MAX_BODY, Client, HttpSettings, http_problems, post, probe
from normagent.model import DeliveryFailed

Script = Callable[[socket.socket, "Server"], None]


@dataclass
class Server:
    """Accepts connections and hands each to ``script``; keeps every request it read."""

    script: Script
    sock: socket.socket = field(default_factory=socket.socket)
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/avvik?x=1"

    def start(self) -> Server:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.script(conn, self)
            except OSError:
                pass

    def read_request(self, conn: socket.socket) -> bytes | None:
        """One whole request (head and Content-Length body), or None at the client's close."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            body += conn.recv(65536)
        request = head + b"\r\n\r\n" + body
        with self.lock:
            self.requests.append(request)
        return request

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Script], Server]]:
    servers: list[Server] = []

    def make(script: Script) -> Server:
        server = Server(script).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def answering(*answers: bytes, then_close: bool = False) -> Script:
    """A script that answers each request on a connection with the next of ``answers`` (the last
    one again when they run out), and closes after the last if told to."""

    def script(conn: socket.socket, server: Server) -> None:
        index = 0
        while server.read_request(conn) is not None:
            conn.sendall(answers[min(index, len(answers) - 1)])
            index += 1
            if then_close and index >= len(answers):
                return

    return script


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


def client_for(url: str) -> Client:
    return Client(HttpSettings(url=url, timeout=timedelta(seconds=5)))


def send(client: Client, url: str, body: bytes = b'{"a":1}', headers: dict[str, str] | None = None) -> int:
    return post(client, url, body, headers or {"Content-Type": "application/json"}, timeout=5.0)


def test_the_request_is_one_post_with_host_headers_length_and_the_body_as_given(serve: Callable[[Script], Server]) -> None:
    server = serve(answering(OK))
    client = client_for(server.url)
    body = '{"hva":"blåbær"}'.encode()
    assert send(client, server.url, body, {"Idempotency-Key": "k-firing-1", "Authorization": "Bearer t"}) == 200
    [request] = server.requests
    head, _, got = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    port = server.sock.getsockname()[1]
    assert lines[0] == b"POST /avvik?x=1 HTTP/1.1"
    assert lines[1] == f"Host: 127.0.0.1:{port}".encode()
    assert set(lines[2:]) == {b"Idempotency-Key: k-firing-1", b"Authorization: Bearer t", f"Content-Length: {len(body)}".encode()}
    assert got == body


def test_a_kept_alive_connection_carries_the_next_posts(serve: Callable[[Script], Server]) -> None:
    server = serve(answering(OK))
    client = client_for(server.url)
    for _ in range(3):
        assert send(client, server.url) == 200
    assert server.connections == 1 and len(server.requests) == 3


def test_a_chunked_answer_with_trailers_is_read_to_its_end(serve: Callable[[Script], Server]) -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4;ext=1\r\n{\"ok\r\n3\r\n\":1\r\n1\r\n}\r\n0\r\nX-Trailer: yes\r\n\r\n")
    server = serve(answering(chunked))
    client = client_for(server.url)
    assert send(client, server.url) == 200
    assert send(client, server.url) == 200  # the first answer was consumed exactly: the connection goes on
    assert server.connections == 1


def test_interim_answers_are_skipped(serve: Callable[[Script], Server]) -> None:
    server = serve(answering(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + OK))
    client = client_for(server.url)
    assert send(client, server.url) == 200
    assert send(client, server.url) == 200
    assert server.connections == 1


def test_connection_close_and_http_1_0_end_the_connection(serve: Callable[[Script], Server]) -> None:
    closing = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    server = serve(answering(closing, then_close=True))
    client = client_for(server.url)
    assert send(client, server.url) == 204
    assert send(client, server.url) == 204
    assert server.connections == 2
    old = serve(answering(b"HTTP/1.0 200 OK\r\n\r\nno length: the body ends at the close", then_close=True))
    client = client_for(old.url)
    assert send(client, old.url) == 200
    assert send(client, old.url) == 200
    assert old.connections == 2


def test_a_connection_the_peer_closed_while_idle_is_replaced_before_use(serve: Callable[[Script], Server]) -> None:
    # The server answers and closes without saying so (as one whose keep-alive timeout ran out).
    server = serve(answering(OK, then_close=True))
    client = client_for(server.url)
    assert send(client, server.url) == 200
    sock = client._sock
    assert sock is not None
    sock.settimeout(5)  # until the server's close (its EOF) has reached us
    assert sock.recv(1, socket.MSG_PEEK) == b""
    assert send(client, server.url) == 200
    assert server.connections == 2 and len(server.requests) == 2


def test_an_error_status_is_an_http_error_with_the_start_of_the_answer(serve: Callable[[Script], Server]) -> None:
    answer = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nvedlikeho\r\n4\r\nld\nx\r\n0\r\n\r\n"
    server = serve(answering(answer))
    client = client_for(server.url)
    with pytest.raises(DeliveryFailed) as failed:
        send(client, server.url)
    assert failed.value.result == "http_error"
    assert str(failed.value).endswith("answered HTTP 503: vedlikehold x")


def test_an_error_answer_s_control_characters_are_kept_as_text_not_passed_on(serve: Callable[[Script], Server]) -> None:
    # What the receiver says goes to the log and to `normagent deviations show`: an ESC sequence
    # there would clear the reader's screen or retitle the window.
    body = b"\x1b[2J\x1b]0;owned\x07down\r\nfor\tnow\x08"
    server = serve(answering(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)))
    with pytest.raises(DeliveryFailed) as failed:
        send(client_for(server.url), server.url)
    assert failed.value.result == "http_error"
    assert str(failed.value).endswith("answered HTTP 500: \\u001b[2J\\u001b]0;owned\\u0007down for now\\b")


def test_an_answer_that_is_no_http_is_an_error_that_says_so(serve: Callable[[Script], Server]) -> None:
    server = serve(answering(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n\r\n"))
    client = client_for(server.url)
    with pytest.raises(DeliveryFailed) as failed:
        send(client, server.url)
    assert failed.value.result == "error" and "not an HTTP answer" in str(failed.value)
    assert client._sock is None  # never used again


def test_a_peer_that_closes_without_answering_is_unreachable_or_an_error(serve: Callable[[Script], Server]) -> None:
    def hang_up(conn: socket.socket, server: Server) -> None:
        server.read_request(conn)

    server = serve(hang_up)
    with pytest.raises(DeliveryFailed) as failed:
        send(client_for(server.url), server.url)
    assert failed.value.result == "error" and "closed before an answer" in str(failed.value)


def test_a_long_answer_body_is_not_read_to_its_end_and_the_connection_is_not_reused(serve: Callable[[Script], Server]) -> None:
    big = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1) + b"x" * (MAX_BODY + 1)
    server = serve(answering(big, OK))
    client = client_for(server.url)
    assert send(client, server.url) == 200
    assert send(client, server.url) == 200
    assert server.connections == 2


def test_a_length_past_int_s_digits_is_a_long_answer_not_a_crash(serve: Callable[[Script], Server]) -> None:
    server = serve(answering(b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\nok", OK))
    client = client_for(server.url)
    assert send(client, server.url) == 200
    assert send(client, server.url) == 200
    assert server.connections == 2  # not read to its end, so not reused


@pytest.mark.parametrize("status_line", [b"HTTP/1.1 2000 OK", b"HTTP/1.1 200OK", b"HTTP/1.1 204-no"])
def test_a_status_code_of_other_than_three_digits_is_no_delivery(serve: Callable[[Script], Server], status_line: bytes) -> None:
    """Before: the first three digits were taken, so "2000" was a 200 and the change was delivered."""
    server = serve(answering(status_line + b"\r\nContent-Length: 0\r\n\r\n"))
    with pytest.raises(DeliveryFailed) as failed:
        send(client_for(server.url), server.url)
    assert failed.value.result == "error" and "not an HTTP answer" in str(failed.value)


@pytest.mark.parametrize("size", [b"-5", b"0x5", b"5_0", b"+5", b" ", b"g"])
def test_a_chunk_size_that_is_no_hex_number_is_a_bad_answer(serve: Callable[[Script], Server], size: bytes) -> None:
    """``int(…, 16)`` takes a sign, "0x" and underscores: a negative size read the buffer backwards
    and never reached the body's bound, so a peer could keep a delivery reading for ever."""
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\nabcde\r\n0\r\n\r\n"
    server = serve(answering(answer))
    with pytest.raises(DeliveryFailed) as failed:
        send(client_for(server.url), server.url)
    assert failed.value.result == "error" and "a bad chunk size" in str(failed.value)


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(serve: Callable[[Script], Server]) -> None:
    server = serve(answering(OK))
    with pytest.raises(DeliveryFailed) as failed:
        send(client_for(server.url), server.url, headers={"Authorization": "Bearer t\r\nX-Evil: 1"})
    assert failed.value.result == "error" and "line break" in str(failed.value)
    assert server.requests == []


def test_a_slow_answer_is_a_timeout(serve: Callable[[Script], Server]) -> None:
    release = threading.Event()

    def slow(conn: socket.socket, server: Server) -> None:
        server.read_request(conn)
        release.wait(10)

    server = serve(slow)
    with pytest.raises(DeliveryFailed) as failed:
        post(client_for(server.url), server.url, b"{}", {}, timeout=0.2)
    release.set()
    assert failed.value.result == "timeout"


def dripping(answer: bytes, pause: float) -> Script:
    """A script that answers each request a byte at a time, ``pause`` seconds between bytes."""

    def script(conn: socket.socket, server: Server) -> None:
        while server.read_request(conn) is not None:
            for byte in answer:
                conn.sendall(bytes([byte]))
                threading.Event().wait(pause)

    return script


def test_an_answer_that_trickles_in_a_byte_at_a_time_times_out_as_a_whole(serve: Callable[[Script], Server]) -> None:
    # Each byte comes within a quarter of the timeout; the answer as a whole takes some 18 times it.
    server = serve(dripping(OK, pause=0.05))
    with pytest.raises(DeliveryFailed) as failed:
        post(client_for(server.url), server.url, b"{}", {}, timeout=0.2)
    assert failed.value.result == "timeout"


def test_interim_answers_without_end_time_out(serve: Callable[[Script], Server]) -> None:
    # 100 Continue after 100 Continue for some 60 times the timeout, then a 200 that must not count.
    server = serve(dripping(b"HTTP/1.1 100 Continue\r\n\r\n" * 600 + OK, pause=0.0001))
    with pytest.raises(DeliveryFailed) as failed:
        post(client_for(server.url), server.url, b"{}", {}, timeout=0.1)
    assert failed.value.result == "timeout"


def test_nobody_listening_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    with pytest.raises(DeliveryFailed) as failed:
        send(client_for(url), url)
    assert failed.value.result == "unreachable" and str(failed.value).endswith("connection refused")


PROBE_IDNA = """
import sys
from datetime import timedelta
from normagent.forward.client import Client, HttpSettings, post
url = sys.argv[1]
status = post(Client(HttpSettings(url=url, timeout=timedelta(seconds=5))), url, b"{}", {}, timeout=5.0)
print(status, "encodings.idna" in sys.modules)
"""


def test_a_delivery_to_an_ascii_name_leaves_the_idna_codec_unimported(serve: Callable[[Script], Server]) -> None:
    """The host goes to getaddrinfo as bytes: no ``encodings.idna`` (with ``unicodedata``) in
    the agent for a name that is ASCII anyway. A fresh interpreter, since pytest imported it."""
    server = serve(answering(OK))
    url = server.url.replace("127.0.0.1", "localhost")
    done = subprocess.run([sys.executable, "-c", PROBE_IDNA, url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["200", "False"]
    assert server.requests and b"Host: localhost:" in server.requests[0]


PROBE_PLAIN = """
import socket, sys
from datetime import timedelta
from normagent.forward.client import Client, HttpSettings, post
from normagent.model import DeliveryFailed
url = sys.argv[1]
status = post(Client(HttpSettings(url=url, timeout=timedelta(seconds=5))), url, b"{}", {}, timeout=5.0)
with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    closed = f"http://127.0.0.1:{sock.getsockname()[1]}/"
try:
    post(Client(HttpSettings(url=closed)), closed, b"{}", {}, timeout=5.0)
except DeliveryFailed as exc:
    print(status, exc.result, "ssl" in sys.modules)
"""


def test_plain_http_deliveries_and_their_failures_leave_ssl_unimported(serve: Callable[[Script], Server]) -> None:
    """ssl (with OpenSSL) is for https:// alone: a failed plain delivery is told from a TLS failure
    without importing it. A fresh interpreter, since pytest imported it."""
    server = serve(answering(OK))
    done = subprocess.run([sys.executable, "-c", PROBE_PLAIN, server.url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["200", "unreachable", "False"]


def test_a_name_beyond_ascii_is_looked_up_and_sent_as_its_idna_a_label() -> None:
    """``bücher.invalid`` is looked up as ``xn--bcher-kva.invalid``: unreachable, said so (it
    once failed before any lookup, encoding the request line as ASCII)."""
    client = client_for("http://bücher.invalid:9/")
    assert client.target("http://bücher.invalid:9/ø å?q=ü")[1:] == (
        "xn--bcher-kva.invalid", 9, b"POST /%C3%B8%20%C3%A5?q=%C3%BC HTTP/1.1\r\nHost: xn--bcher-kva.invalid:9\r\n")
    with pytest.raises(DeliveryFailed) as failed:
        send(client, "http://bücher.invalid:9/")
    assert failed.value.result == "unreachable"


def test_a_host_no_dns_name_can_stand_for_is_a_problem_and_a_failed_delivery_not_a_crash() -> None:
    url = f"http://{'ü' * 64}.example/"
    problems = http_problems(HttpSettings(url=url))
    assert problems and problems[0][0] == "url" and "no valid internationalised domain name" in problems[0][1]
    assert probe(HttpSettings(url=url)) == problems
    with pytest.raises(DeliveryFailed) as failed:
        send(client_for(url), url)
    assert failed.value.result == "error" and "label" in str(failed.value)
