"""What the HTTP forwarders (webhook, Alertmanager) share: settings for URL, TLS and a bearer
token, their checks, a reachability probe for ``check-config``, and one POST that turns every way
of failing into a ``DeliveryFailed`` with a closed-set result.

POSTs go through a small HTTP/1.1 client on the standard library's ``socket`` and ``ssl``
(``Client``): no requests, urllib3 or http.client in the agent.

Imports model, errors, hostnames, records, smallfile and the standard library.
"""

from __future__ import annotations

import re
import socket
import sys
import time
from dataclasses import field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from normagent.errors import printable
from normagent.hostnames import for_socket
from normagent.model import DeliveryFailed
from normagent.records import dataclass
from normagent.smallfile import MAX_PEM_BYTES, pem_cut_short, read_secret, read_small

if TYPE_CHECKING:
    import ssl

# ssl (with OpenSSL's libssl and libcrypto) is imported where TLS is first used: a TLS file to
# check, an https:// connection, check-config's probe. A site whose forwarders speak plain HTTP
# never loads it.


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The keys every HTTP forwarder has."""

    url: str = field(default="", metadata={"help": "Where to POST: http:// or https://, with host and port"})
    timeout: timedelta = field(
        default=timedelta(seconds=10),
        metadata={"help": "Time for one attempt (connect, send, answer)", "min": timedelta(milliseconds=100), "max": timedelta(minutes=5)},
    )
    ca_file: Path | None = field(default=None, metadata={"help": "CA certificates (PEM) the server's certificate is verified against; default: the system's"})
    client_cert_file: Path | None = field(default=None, metadata={"help": "Client certificate (PEM) for servers that ask for one"})
    client_key_file: Path | None = field(default=None, metadata={"help": "Private key of client_cert_file (PEM, unencrypted)"})
    bearer_token: str = field(default="", metadata={"help": "Sent as Authorization: Bearer <token>; prefer bearer_token_file"})
    bearer_token_file: Path | None = field(default=None, metadata={"help": "File holding the bearer token (keep it mode 0600)"})


def http_problems(settings: HttpSettings) -> list[tuple[str, str]]:
    """What is wrong with the URL, the TLS files or the token, without touching the network."""
    problems: list[tuple[str, str]] = []
    if not settings.url:
        problems.append(("url", "is required"))
    else:
        parts = urlsplit(settings.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(("url", f'expected an http:// or https:// URL with a host, got "{settings.url}"'))
        else:
            try:
                parts.port  # noqa: B018 - raises for a bad port
            except ValueError:
                problems.append(("url", f'has a bad port: "{settings.url}"'))
            if parts.username or parts.password:
                problems.append(("url", "must not hold a user or password (use bearer_token_file)"))
            try:
                _ascii_host(parts.hostname)
            except _BadUrl as exc:
                problems.append(("url", str(exc)))
            if parts.scheme == "http" and (settings.ca_file or settings.client_cert_file):
                problems.append(("url", "is http://, so ca_file and client_cert_file would not be used; use https://"))
    for key in ("ca_file", "client_cert_file", "client_key_file", "bearer_token_file"):
        path = getattr(settings, key)
        if path is not None and not path.is_file():
            problems.append((key, f"file {path} does not exist" if not path.exists() else f"{path} is not a file"))
    if (settings.client_cert_file is None) != (settings.client_key_file is None):
        missing = "client_key_file" if settings.client_key_file is None else "client_cert_file"
        problems.append((missing, "must be set too: a client certificate needs both client_cert_file and client_key_file"))
    if settings.bearer_token and settings.bearer_token_file:
        problems.append(("bearer_token", "set bearer_token or bearer_token_file, not both"))
    if problems:
        return problems
    problems += tls_problems(settings.ca_file, settings.client_cert_file, settings.client_key_file)
    if settings.bearer_token_file is not None:
        try:
            if not read_secret(settings.bearer_token_file):
                problems.append(("bearer_token_file", f"{settings.bearer_token_file} is empty"))
        except OSError as exc:
            problems.append(("bearer_token_file", f"cannot read {settings.bearer_token_file}: {exc.strerror}"))
    return problems


def tls_problems(ca_file: Path | None, cert: Path | None, key: Path | None) -> list[tuple[str, str]]:
    """A CA file that holds no certificate, a client certificate that does not load with its key."""
    problems: list[tuple[str, str]] = []
    for key_name, path in (("ca_file", ca_file), ("client_cert_file", cert), ("client_key_file", key)):
        cut = _cut_short(path)
        if cut:
            problems.append((key_name, cut))
    if problems:
        return problems  # OpenSSL would say only "PEM lib" of them
    if ca_file is None and (cert is None or key is None):
        return problems
    import ssl

    if ca_file is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # empty store: only what the file holds counts
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (ssl.SSLError, OSError, ValueError) as exc:
            problems.append(("ca_file", f"{ca_file} is not a PEM file of CA certificates ({_reason(exc)})"))
        else:
            if context.cert_store_stats().get("x509_ca", 0) == 0:
                problems.append(("ca_file", f"{ca_file} holds no CA certificate (a server or client certificate is not a CA)"))
    if cert is not None and key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_cert_chain(str(cert), str(key), password=_no_password)
        except _Encrypted:
            problems.append(("client_key_file", f"{key} is encrypted; give an unencrypted key (mode 0600)"))
        except (ssl.SSLError, OSError) as exc:
            problems.append(("client_cert_file", f"{cert} and {key} do not load as a certificate and its key ({_reason(exc)})"))
    return problems


def _cut_short(path: Path | None) -> str:
    """What is wrong with a PEM file whose BEGIN block has no END line, or "" (unreadable: the
    TLS checks that follow say why)."""
    if path is None:
        return ""
    try:
        return pem_cut_short(path, read_small(path, MAX_PEM_BYTES))
    except OSError:
        return ""


class _Encrypted(Exception):
    pass


def _no_password() -> bytes:
    raise _Encrypted  # OpenSSL would otherwise prompt on the terminal


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)


def bearer(settings: HttpSettings) -> str:
    if settings.bearer_token_file is not None:
        return read_secret(settings.bearer_token_file)
    return settings.bearer_token


_PATH_SAFE = "/?=&;:@!$'()*+,-._~%"  # what a request target may hold as it is (RFC 3986); the rest is %-encoded


class _BadUrl(ValueError):
    """A URL whose host no DNS name can stand for (a label IDNA cannot encode)."""


def _ascii_host(host: str) -> str:
    """``host`` as DNS and the ``Host`` header carry it: a name beyond ASCII as its IDNA A-label
    (``bücher.example`` → ``xn--bcher-kva.example``), an ASCII name or address as it is."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise _BadUrl(f'host "{host}" is no valid internationalised domain name ({exc})') from None


def probe(settings: HttpSettings, timeout: float = 5.0) -> list[tuple[str, str]]:
    """Can the server be reached now? A TCP connection, and for https:// a TLS handshake that
    verifies the server's certificate as deliveries will (``check-config`` only)."""
    import ssl

    parts = urlsplit(settings.url)
    try:
        host = _ascii_host(parts.hostname or "")
    except _BadUrl as exc:
        return [("url", str(exc))]
    port = parts.port or (443 if parts.scheme == "https" else 80)
    limit = min(timeout, settings.timeout.total_seconds())
    try:
        with socket.create_connection((for_socket(host), port), timeout=limit) as sock:  # type: ignore[arg-type]  # bytes hosts: see for_socket
            if parts.scheme == "https":
                context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
                if settings.client_cert_file and settings.client_key_file:
                    context.load_cert_chain(str(settings.client_cert_file), str(settings.client_key_file))
                with context.wrap_socket(sock, server_hostname=host):
                    pass
    except ssl.SSLCertVerificationError as exc:
        return [("url", f"{host}:{port} answers, but its certificate is not trusted: {exc.verify_message}"
                 + (" (check ca_file)" if settings.ca_file else " (set ca_file to the CA that signed it)"))]
    except ssl.SSLError as exc:
        return [("url", f"TLS handshake with {host}:{port} failed: {_reason(exc)}")]
    except OSError as exc:
        return [("url", f"cannot reach {host}:{port}: {_reason(exc) or type(exc).__name__}")]
    return []


MAX_HEAD = 64 * 1024  # bytes of status line and headers an answer may have
MAX_BODY = 1024 * 1024  # bytes of an answer's body read to keep the connection; a longer one closes it
_READ = 64 * 1024
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,64}")  # RFC 9112 7.1: 1*HEXDIG (leading zeros allowed)


class _BadAnswer(Exception):
    """The peer answered something that is not HTTP/1.x (or broke off in the middle)."""


class _BadHeader(ValueError):
    """A header name or value that would break the request (a line break: header injection)."""


class Client:
    """One kept-alive HTTP/1.1 connection of one forwarder sender, on the standard library's
    ``socket`` and ``ssl``: a POST is one ``sendall`` of head and body, the answer is read with
    bytes operations.

    A forwarder needs one thing of HTTP: POST a body, learn the status, read the answer so the
    connection can be used again. requests (and urllib3 and http.client below it) cost about
    0.6 ms of CPU per delivery, most of it validating each header again, sending head and body in
    two writes and parsing the answer's headers with the e-mail package; this path costs a
    fraction (bench/bench_outbox.py), and the agent imports none of them (requests with its
    charset detection: some 7 MB of resident memory).

    What it understands of an answer: any ``HTTP/1.x`` status line, interim 1xx answers (skipped),
    a body by ``Content-Length``, ``Transfer-Encoding: chunked`` or up to the close, and
    ``Connection: close``. A connection the peer closed while idle is noticed before it is used
    (it reads as ready) and replaced. No proxy from the environment is used, no redirect followed.

    TLS: the server is verified against ``ca_file`` alone when it is set, else against the
    system's CA certificates (as ``probe`` does); the client certificate is shown when asked for.
    """

    def __init__(self, settings: HttpSettings) -> None:
        self._ca_file = settings.ca_file
        self._cert = (settings.client_cert_file, settings.client_key_file) if settings.client_cert_file and settings.client_key_file else None
        self._context: ssl.SSLContext | None = None
        self._targets: dict[str, tuple[str, str, int, bytes]] = {}  # url → (scheme, host, port, request line + Host)
        self._sock: socket.socket | ssl.SSLSocket | None = None
        self._peer: tuple[str, str, int] | None = None

    def target(self, url: str) -> tuple[str, str, int, bytes]:
        known = self._targets.get(url)
        if known is None:
            parts = urlsplit(url)
            scheme, host = parts.scheme, _ascii_host(parts.hostname or "")
            port = parts.port or (443 if scheme == "https" else 80)
            path = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_PATH_SAFE)
            authority = f"[{host}]" if ":" in host else host
            if parts.port is not None:
                authority += f":{port}"
            head = f"POST {path} HTTP/1.1\r\nHost: {authority}\r\n".encode("ascii")
            known = self._targets[url] = (scheme, host, port, head)
        return known

    def connection(self, scheme: str, host: str, port: int, deadline: float) -> socket.socket | ssl.SSLSocket:
        """The kept-alive connection to (scheme, host, port), or a new one made before ``deadline``
        (``time.monotonic()``)."""
        sock = self._sock
        if sock is not None and (self._peer != (scheme, host, port) or _readable(sock)):
            self.close()  # another server, or the peer closed it (EOF) or sent what nobody asked for
            sock = None
        if sock is None:
            sock = socket.create_connection((for_socket(host), port), timeout=_left(deadline))  # type: ignore[arg-type]  # bytes hosts: see for_socket
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if scheme == "https":
                    sock.settimeout(_left(deadline))  # the handshake as a whole (OpenSSL's loop keeps one deadline)
                    sock = self._tls().wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
            self._sock, self._peer = sock, (scheme, host, port)
        return sock

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            import ssl

            context = ssl.create_default_context(cafile=str(self._ca_file) if self._ca_file is not None else None)
            if self._cert is not None:
                context.load_cert_chain(str(self._cert[0]), str(self._cert[1]))
            self._context = context
        return self._context

    def exchange(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        """POST ``body`` to ``url``: (status, the first bytes of the answer's body).

        ``timeout`` is for the whole exchange (connect, TLS, the request, the answer), not for each
        read: a peer that answers a byte at a time, or sends interim answers without end, still
        times out.

        Raises:
            TimeoutError: The exchange was not done within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        scheme, host, port, head = self.target(url)
        sock = self.connection(scheme, host, port, deadline)
        lines = [head]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name or not name:
                raise _BadHeader(f"the value of header {name!r} holds a line break" if ":" not in name and name else f"bad header name {name!r}")
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        lines.append(f"Content-Length: {len(body)}\r\n\r\n".encode("ascii"))
        lines.append(body)
        try:
            sock.settimeout(_left(deadline))  # sendall's timeout is for all of it
            sock.sendall(b"".join(lines))
            status, content, keep = _read_answer(_Reader(sock, deadline))
        except BaseException:
            self.close()
            raise
        if not keep:
            self.close()
        return status, content

    def close(self) -> None:
        sock, self._sock, self._peer = self._sock, None, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def _readable(sock: socket.socket) -> bool:
    """Whether an idle connection has something to read: its peer closed it (or talks out of turn)."""
    import select

    try:
        ready, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


def _left(deadline: float) -> float:
    """Seconds left until ``deadline``; ``TimeoutError`` once there are none."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the exchange took longer than its timeout")
    return left


class _Reader:
    """A socket's ``recv`` within one deadline for all of an answer (each read may wait only for
    the time that is left)."""

    __slots__ = ("_sock", "_deadline")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def recv(self, size: int) -> bytes:
        self._sock.settimeout(_left(self._deadline))
        return self._sock.recv(size)


def _read_answer(sock: _Reader) -> tuple[int, bytes, bool]:
    """(status, up to 200 bytes of the body, whether the connection may be used again)."""
    buffer = b""
    while True:
        end = buffer.find(b"\r\n\r\n")
        while end < 0:
            if len(buffer) > MAX_HEAD:
                raise _BadAnswer(f"an answer head longer than {MAX_HEAD} bytes")
            chunk = sock.recv(_READ)
            if not chunk:
                raise _BadAnswer("the connection was closed before an answer" if not buffer else "the answer broke off in its head")
            buffer += chunk
            end = buffer.find(b"\r\n\r\n")
        head, buffer = buffer[:end], buffer[end + 4 :]
        status_line, _, rest = head.partition(b"\r\n")
        version, _, tail = status_line.partition(b" ")
        code, after = tail[:3], tail[3:4]  # status-code = 3DIGIT, then SP and the reason (RFC 9112 4)
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit() or after not in (b"", b" "):
            raise _BadAnswer(f"not an HTTP answer: {status_line[:60]!r}")
        status = int(code)
        fields: dict[bytes, bytes] = {}
        for line in rest.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if colon:
                fields[name.strip().lower()] = value.strip()
        if 100 <= status < 200 and status != 101:
            continue  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        break
    keep = version != b"HTTP/1.0" and b"close" not in fields.get(b"connection", b"").lower()
    if version == b"HTTP/1.0" and b"keep-alive" in fields.get(b"connection", b"").lower():
        keep = True
    if status in (204, 304):
        return status, b"", keep
    if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
        content, complete = _read_chunked(sock, buffer)
        return status, content, keep and complete
    length_text = fields.get(b"content-length")
    if length_text is not None:
        if not length_text.isdigit():
            raise _BadAnswer(f"a bad Content-Length: {length_text[:40]!r}")
        length = int(length_text) if len(length_text) <= 18 else MAX_BODY + 1  # int() refuses 4,300 digits
        if length > MAX_BODY:
            return status, buffer[:200], False
        while len(buffer) < length:
            chunk = sock.recv(min(_READ, length - len(buffer)))
            if not chunk:
                raise _BadAnswer("the answer broke off in its body")
            buffer += chunk
        return status, buffer[:200], keep and len(buffer) == length
    # Neither length nor chunks: the body ends when the peer closes (read a little of it).
    return status, buffer[:200], False


def _read_chunked(sock: _Reader, buffer: bytes) -> tuple[bytes, bool]:
    """The first bytes of a chunked body, and whether it was read to its end (within MAX_BODY)."""
    content = b""
    total = 0
    while True:
        while b"\r\n" not in buffer:
            if len(buffer) > MAX_HEAD:
                raise _BadAnswer("a chunk size line too long")
            chunk = sock.recv(_READ)
            if not chunk:
                raise _BadAnswer("the answer broke off in its body")
            buffer += chunk
        size_line, _, buffer = buffer.partition(b"\r\n")
        size_text = size_line.split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_text):  # int(…, 16) would take "-5", "0x1_0" and 1,000 digits
            raise _BadAnswer(f"a bad chunk size: {size_text[:40]!r}")
        size = int(size_text, 16)
        if size == 0:
            while not (buffer.startswith(b"\r\n") or b"\r\n\r\n" in buffer):  # trailers, then an empty line
                if len(buffer) > MAX_HEAD:
                    raise _BadAnswer("trailers too long")
                chunk = sock.recv(_READ)
                if not chunk:
                    raise _BadAnswer("the answer broke off in its trailers")
                buffer += chunk
            return content, True
        total += size
        if total > MAX_BODY:
            return content, False
        while len(buffer) < size + 2:
            chunk = sock.recv(_READ)
            if not chunk:
                raise _BadAnswer("the answer broke off in its body")
            buffer += chunk
        if len(content) < 200:
            content += buffer[: min(size, 200 - len(content))]
        buffer = buffer[size + 2 :]


def session(settings: HttpSettings) -> Client:
    """A client with the settings' TLS files (its connection is kept between deliveries)."""
    return Client(settings)


def post(client: Client, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body``; the status of a 2xx answer is returned, anything else raises ``DeliveryFailed``."""
    try:
        status, content = client.exchange(url, body, headers, timeout)
    except _ssl_error() as exc:  # certificate not trusted, handshake refused, TLS broken off
        raise DeliveryFailed("tls_error", f"TLS with {url} failed: {_short(exc)}") from None
    except (socket.timeout, TimeoutError):
        raise DeliveryFailed("timeout", f"{url} did not answer within {timeout:g}s") from None
    except (_BadAnswer, _BadHeader, _BadUrl) as exc:
        raise DeliveryFailed("error", f"{url}: {exc}") from None
    except OSError as exc:  # refused, unresolvable, reset, unreachable network
        raise DeliveryFailed("unreachable", f"cannot reach {url}: {_short(exc)}") from None
    if 200 <= status < 300:
        return status
    # The receiver's words, as text a terminal shows and does not obey (an escape sequence in an
    # answer would otherwise reach `normagent deviations show` and a console log as it is).
    detail = printable(" ".join(content[:200].decode("utf-8", "replace").split()))
    raise DeliveryFailed("http_error", f"{url} answered HTTP {status}{': ' + detail if detail else ''}")


class _NoTls(OSError):
    """Never raised: what ``_ssl_error`` gives while ssl is not imported."""


def _ssl_error(name: str = "SSLError") -> type[OSError]:
    """``ssl``'s exception ``name``, once ssl is imported; before, no TLS was tried, so none can
    have failed, and an exception nothing raises stands in for it (a plain-HTTP failure does not
    import ssl to learn that it was not TLS's)."""
    module = sys.modules.get("ssl")
    error: type[OSError] = getattr(module, name) if module is not None else _NoTls
    return error


def _short(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError) or "Connection refused" in str(exc):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"name not resolved ({exc.strerror or exc})"
    if isinstance(exc, _ssl_error("SSLCertVerificationError")):
        return f"certificate verify failed: {getattr(exc, 'verify_message', exc)}"
    text = str(exc) or type(exc).__name__
    return text[:200]
