"""The agent's HTTP side: ``/metrics`` and ``/healthz``, with optional TLS and bcrypt basic auth.

Configured like the Prometheus exporter-toolkit web config, in the ``[web]`` table of our TOML::

    [web]
    listen = "127.0.0.1:9824"                 # default; "[::1]:9824", "0.0.0.0:9824" …
    tls_cert_file = "/etc/normagent/tls.crt"  # both files, or neither
    tls_key_file = "/etc/normagent/tls.key"
    tls_client_ca_file = "/etc/normagent/clients-ca.crt"
    client_auth_type = "RequireAndVerifyClientCert"
    [web.basic_auth_users]
    prometheus = "$2y$10$…"                   # htpasswd -nBC 10 "" | tr -d ':\\n'

Serving: a thread per connection on top of wsgiref (as prometheus_client's own server does), with
three differences that matter for a daemon. The TLS handshake runs in the connection's thread with
a timeout, not in the accept loop (prometheus_client wraps the listening socket, so one client that
connects and sends nothing stalls every scrape). The accept loop sleeps in ``select`` until a
connection or ``stop()`` arrives, with no polling. ``stop()`` ends open connections and joins every
thread, so nothing is left running after it returns.

Basic auth follows exporter-toolkit: bcrypt hashes, an unknown user is checked against a dummy hash
so that timing does not tell which users exist, checks are serialised (bcrypt is CPU-bound), and a
successful check is cached — keyed by a keyed hash of user, stored hash and password, never the
password itself — so that a scrape every few seconds costs a dictionary lookup, not 50 ms of bcrypt.
Passwords over 72 bytes are refused with 401 (bcrypt cannot check them; bcrypt 5 raises).

Nothing here logs client addresses or user names. Imports only the standard library, bcrypt (when
basic auth is configured), structlog and normagent.errors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
import secrets
import selectors
import socket
import socketserver
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, TypeAlias, cast
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

import structlog

from normagent.errors import EX_CONFIG, NormagentError

log = structlog.get_logger(__name__)

WSGIApp: TypeAlias = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ClientAuthType = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
TLSVersionName = Literal["TLS12", "TLS13"]

DEFAULT_LISTEN = "127.0.0.1:9824"
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
VERIFY_MODES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Python's ssl module cannot ask for a client certificate without verifying it against a CA, which
# is what Go's RequestClientCert and RequireAnyClientCert do; they are refused with this reason.
UNSUPPORTED_CLIENT_AUTH = (
    "is not supported: Python's TLS cannot request a client certificate without verifying it; "
    'use "VerifyClientCertIfGiven" or "RequireAndVerifyClientCert" with tls_client_ca_file'
)
BCRYPT_HASH = re.compile(rb"^\$2[abxy]\$(?P<cost>\d\d)\$[./A-Za-z0-9]{53}$")
BCRYPT_MAX_PASSWORD = 72  # bytes; bcrypt ignores (bcrypt ≥ 5: rejects) anything longer
HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")

REQUEST_TIMEOUT = 10.0  # seconds to send a request (and finish the TLS handshake) before we hang up
MAX_CONNECTIONS = 64  # open connections served at once; more are closed at once and counted
AUTH_CACHE_SIZE = 1024


@dataclass(frozen=True, slots=True)
class WebSettings:
    """``[web]``: where /metrics and /healthz are served, and how they are protected.

    The keys follow the Prometheus exporter-toolkit web configuration (``tls_server_config`` and
    ``basic_auth_users``), flattened into one table. Relative paths are relative to the config file.
    """

    listen: str = field(
        default=DEFAULT_LISTEN,
        metadata={"help": 'Address to listen on: "127.0.0.1:9824", "[::1]:9824", "0.0.0.0:9824" (every interface)'},
    )
    tls_cert_file: Path | None = field(default=None, metadata={"help": "Server certificate (PEM, chain allowed); enables HTTPS"})
    tls_key_file: Path | None = field(default=None, metadata={"help": "Private key of tls_cert_file (PEM, unencrypted)"})
    tls_client_ca_file: Path | None = field(
        default=None, metadata={"help": "CA certificates (PEM) that client certificates are verified against"}
    )
    client_auth_type: ClientAuthType = field(
        default="NoClientCert",
        metadata={"help": 'Client certificate policy: "NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"'},
    )
    min_version: TLSVersionName = field(default="TLS12", metadata={"help": "Oldest TLS version accepted"})
    max_version: TLSVersionName = field(default="TLS13", metadata={"help": "Newest TLS version accepted"})
    basic_auth_users: dict[str, str] = field(
        default_factory=dict,
        metadata={"help": "User name → bcrypt hash (htpasswd -nBC 10 \"\" | tr -d ':\\n'); empty: no basic auth"},
    )

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


class ListenError(NormagentError):
    """The HTTP server cannot listen where it is told to (address in use, permission, no such host)."""

    exit_code = 69  # EX_UNAVAILABLE: systemd restarts the service, the address may be free by then


class TLSConfigError(NormagentError):
    """A certificate, key or CA file cannot be used; ``key`` names the ``[web]`` key at fault."""

    exit_code = EX_CONFIG

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"web.{key}: {reason}")
        self.key = key
        self.reason = reason


# ------------------------------------------------------------------------------------------------
# validation


def parse_listen(text: str) -> tuple[str, int]:
    """Split ``"host:port"`` into its parts; IPv6 hosts are written in brackets.

    Returns:
        (host, port); host without brackets, port 0 – 65535 (0 asks the kernel for a free port).

    Raises:
        ValueError: with a message that says what was expected.
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        raise ValueError(f'expected "host:port" like "127.0.0.1:9824" or "[::1]:9824", got "{text}"')
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f'port must be a number from 1 to 65535, got "{port_text}" in "{text}"')
    if not host:
        raise ValueError(f'missing host in "{text}"; write "0.0.0.0:{port_text}" or "[::]:{port_text}" to listen on every interface')
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f'"{host}" is not an IPv6 address in brackets') from None
        return host[1:-1], int(port_text)
    if ":" in host:
        raise ValueError(f'write IPv6 addresses in brackets, like "[{host}]:{port_text}"')
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if not HOSTNAME.match(host) or host.replace(".", "").isdigit():
            raise ValueError(f'"{host}" is neither an IP address nor a host name') from None
    return host, int(port_text)


def validate_web(settings: WebSettings) -> list[tuple[str, str]]:
    """The checks ``[web]`` needs beyond types: addresses, files that load, hashes that are bcrypt.

    Used as the ``check`` of the ``web`` config section, so every problem is reported together with
    the rest of the file's.

    Returns:
        (key, message) pairs; empty when the settings can be served.
    """
    problems: list[tuple[str, str]] = []
    try:
        _, port = parse_listen(settings.listen)
        if port == 0:
            problems.append(("listen", "port must be a number from 1 to 65535, got 0"))
    except ValueError as exc:
        problems.append(("listen", str(exc)))
    problems.extend(_tls_problems(settings))
    for user, hashed in settings.basic_auth_users.items():
        key = f"basic_auth_users.{user}"
        if not user or ":" in user:
            problems.append((key, "user names must be non-empty and cannot contain ':' (basic auth splits on it)"))
        match = BCRYPT_HASH.match(hashed.encode("utf-8", "replace"))
        if not match:
            problems.append((key, 'expected a bcrypt hash like "$2y$10$…" (53 characters after the cost), not a password'))
        elif not 4 <= int(match["cost"]) <= 31:
            problems.append((key, f"bcrypt cost must be 4 to 31, got {int(match['cost'])}"))
    return problems


def _tls_problems(settings: WebSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if settings.client_auth_type in ("RequestClientCert", "RequireAnyClientCert"):
        problems.append(("client_auth_type", f'"{settings.client_auth_type}" {UNSUPPORTED_CLIENT_AUTH}'))
    if TLS_VERSIONS[settings.min_version] > TLS_VERSIONS[settings.max_version]:
        problems.append(("min_version", f'"{settings.min_version}" is newer than max_version "{settings.max_version}"'))
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        missing = "tls_key_file" if settings.tls_key_file is None else "tls_cert_file"
        problems.append((missing, "must be set too: HTTPS needs both tls_cert_file and tls_key_file"))
        return problems
    if settings.tls_cert_file is None:
        if settings.tls_client_ca_file is not None or settings.client_auth_type != "NoClientCert":
            key = "tls_client_ca_file" if settings.tls_client_ca_file is not None else "client_auth_type"
            problems.append((key, "needs HTTPS: set tls_cert_file and tls_key_file"))
        return problems
    if settings.client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") and settings.tls_client_ca_file is None:
        problems.append(("tls_client_ca_file", f'must be set: client_auth_type "{settings.client_auth_type}" verifies against it'))
    if settings.tls_client_ca_file is not None and settings.client_auth_type == "NoClientCert":
        problems.append((
            "client_auth_type",
            'is "NoClientCert", so tls_client_ca_file would not be used; set "RequireAndVerifyClientCert"',
        ))
    for key in ("tls_cert_file", "tls_key_file", "tls_client_ca_file"):
        path = getattr(settings, key)
        if path is not None and not path.is_file():
            problems.append((key, f"file {path} does not exist" if not path.exists() else f"{path} is not a file"))
    if problems:
        return problems
    try:
        tls_context(settings)
    except TLSConfigError as exc:
        problems.append((exc.key, exc.reason))
    return problems


# ------------------------------------------------------------------------------------------------
# TLS


class _EncryptedKey(Exception):
    pass


def _refuse_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for the passphrase of an encrypted key.
    raise _EncryptedKey


def tls_context(settings: WebSettings) -> ssl.SSLContext | None:
    """The server-side TLS context for ``settings``, or None when HTTPS is not configured.

    Raises:
        TLSConfigError: naming the key whose file cannot be used, and why.
    """
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    fail = TLSConfigError
    for key, path, marker, what in (
        ("tls_cert_file", settings.tls_cert_file, b"-----BEGIN CERTIFICATE-----", "PEM certificate"),
        ("tls_key_file", settings.tls_key_file, b"PRIVATE KEY-----", "PEM private key"),
    ):
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise fail(key, f"cannot read {path}: {exc.strerror or exc}") from None
        if marker not in text:
            raise fail(key, f"{path} holds no {what} (no {marker.decode().strip('-')} block)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[settings.min_version]
    ctx.maximum_version = TLS_VERSIONS[settings.max_version]
    try:
        ctx.load_cert_chain(settings.tls_cert_file, settings.tls_key_file, password=_refuse_password)
    except _EncryptedKey:
        raise fail("tls_key_file", f"{settings.tls_key_file} is encrypted; give an unencrypted key (readable only by the agent)") from None
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise fail("tls_key_file", f"{settings.tls_key_file} is not the key of {settings.tls_cert_file}") from None
        raise fail("tls_cert_file", f"cannot load {settings.tls_cert_file} with {settings.tls_key_file}: {exc.reason or exc}") from None
    except OSError as exc:
        raise fail("tls_cert_file", f"cannot read {settings.tls_cert_file} or {settings.tls_key_file}: {exc.strerror or exc}") from None
    mode = VERIFY_MODES.get(settings.client_auth_type)
    if mode is None:
        raise fail("client_auth_type", f'"{settings.client_auth_type}" {UNSUPPORTED_CLIENT_AUTH}')
    if settings.tls_client_ca_file is not None:
        try:
            if b"-----BEGIN CERTIFICATE-----" not in settings.tls_client_ca_file.read_bytes():
                raise fail("tls_client_ca_file", f"{settings.tls_client_ca_file} holds no PEM certificate (no BEGIN CERTIFICATE block)")
            ctx.load_verify_locations(cafile=settings.tls_client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise fail("tls_client_ca_file", f"cannot load CA certificates from {settings.tls_client_ca_file}: {exc}") from None
        if not ctx.get_ca_certs():
            raise fail("tls_client_ca_file", f"{settings.tls_client_ca_file} holds no CA certificate")
    ctx.verify_mode = mode
    return ctx


# ------------------------------------------------------------------------------------------------
# WSGI: routes and basic auth


def _plain(start_response: Callable[..., Any], status: str, body: bytes, *extra: tuple[str, str]) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *extra])
    return [body]


LANDING_PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>normagent</title></head>
<body><h1>normagent</h1>
<p>Normen factsheet 12 indicators of this server, for Prometheus.</p>
<ul><li><a href="metrics">/metrics</a></li><li><a href="healthz">/healthz</a></li></ul>
</body></html>
"""


class Routes:
    """``/metrics`` → the metrics app, ``/healthz`` → 200 "ok" while healthy else 503, ``/`` → links."""

    def __init__(self, metrics_app: WSGIApp, healthy: Callable[[], bool]) -> None:
        self._metrics = metrics_app
        self._healthy = healthy

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path not in ("/healthz", "/"):
            return _plain(start_response, "404 Not Found", b"not found; try /metrics\n")
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", b"use GET\n", ("Allow", "GET, HEAD"))
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(LANDING_PAGE)))])
            return [b"" if method == "HEAD" else LANDING_PAGE]
        try:
            ok = bool(self._healthy())
        except Exception:
            log.exception("health_check_failed")
            ok = False
        status, body = ("200 OK", b"ok\n") if ok else ("503 Service Unavailable", b"unhealthy\n")
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [b"" if method == "HEAD" else body]


class BasicAuth:
    """WSGI middleware: HTTP basic auth against bcrypt hashes, exporter-toolkit style.

    Args:
        app: The protected application.
        users: User name → bcrypt hash (``$2a$``, ``$2b$``, ``$2y$``).
        cache_size: Successful checks remembered (least recently used are forgotten first).
    """

    def __init__(self, app: WSGIApp, users: Mapping[str, str], *, cache_size: int = AUTH_CACHE_SIZE) -> None:
        # Imported here: most agents serve without basic auth, and the module costs 0.4 MB of RSS.
        import bcrypt

        self._checkpw = bcrypt.checkpw
        self._app = app
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        costs = [int(m["cost"]) for h in self._users.values() if (m := BCRYPT_HASH.match(h))]
        # Unknown users are checked against a hash of the same cost, so timing does not tell them apart.
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=max(costs, default=10)))
        self._key = secrets.token_bytes(32)  # per process: cache keys mean nothing outside it
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()  # bcrypt is CPU-bound: one check at a time

    def check(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value names a user and their password."""
        if not authorization:
            return False
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        raw_user, colon, password = decoded.partition(b":")
        if not colon:
            return False
        try:
            user = raw_user.decode("utf-8")
        except UnicodeDecodeError:
            return False
        stored = self._users.get(user)
        hashed = self._dummy if stored is None else stored
        key = hashlib.blake2b(b"\0".join((raw_user, hashed, password)), key=self._key, digest_size=32).digest()
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return stored is not None
        if len(password) > BCRYPT_MAX_PASSWORD:
            return False  # bcrypt cannot check it: a 401, never a 500
        with self._bcrypt_lock:
            try:
                matched = self._checkpw(password, hashed)
            except ValueError:  # a hash that is not bcrypt (validation should have caught it)
                matched = False
        if not (matched and stored is not None):
            return False
        with self._cache_lock:
            self._cache[key] = None
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return True

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.check(environ.get("HTTP_AUTHORIZATION")):
            return self._app(environ, start_response)
        return _plain(
            start_response, "401 Unauthorized", b"Unauthorized\n", ("WWW-Authenticate", 'Basic realm="normagent", charset="UTF-8"')
        )


def build_app(settings: WebSettings, metrics_app: WSGIApp, healthy: Callable[[], bool]) -> WSGIApp:
    """The whole WSGI application for ``settings``: routes, behind basic auth when users are set."""
    app: WSGIApp = Routes(metrics_app, healthy)
    if settings.basic_auth_users:
        app = BasicAuth(app, settings.basic_auth_users)
    return app


# ------------------------------------------------------------------------------------------------
# the server


@dataclass(frozen=True, slots=True)
class ServerStats:
    """What the server has seen since it started (``RunningServer.stats()``), for the agent's own
    metrics: refused logins and failed handshakes are worth a dashboard panel."""

    requests: int = 0
    unauthorized: int = 0
    errors: int = 0  # the application raised; answered 500
    tls_handshake_failures: int = 0
    rejected_busy: int = 0  # closed at once: MAX_CONNECTIONS were open


class _ServerHandler(ServerHandler):
    server_software = "normagent"

    def log_exception(self, exc_info: tuple[type[BaseException], BaseException, TracebackType] | Any) -> None:
        environ = getattr(self, "environ", None) or {}
        log.error("http_request_failed", path=environ.get("PATH_INFO", ""), exc_info=exc_info)


class _Handler(WSGIRequestHandler):
    """One request per connection (HTTP/1.0 answers, as prometheus_client's server gives)."""

    server: _HTTPServer
    server_version = "normagent"
    sys_version = ""
    timeout = REQUEST_TIMEOUT  # StreamRequestHandler applies it to the connection

    def handle(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline, self.request_version, self.command = "", "", ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        app = self.server.get_app()
        assert app is not None, "start_server sets the app before serving"
        handler = _ServerHandler(
            cast(IO[bytes], self.rfile), cast(IO[bytes], self.wfile), self.get_stderr(), self.get_environ(), multithread=True
        )
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(app)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Called by wsgiref once the response is sent: count it (no access log)."""
        self.server.count_request(str(code))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """No access log: it would hold client addresses and cost time on every scrape."""


class _HTTPServer(WSGIServer):
    """wsgiref's server, bound without a DNS lookup, with our own accept loop and thread bookkeeping."""

    def __init__(self, family: socket.AddressFamily, address: tuple[str, int], ssl_context: ssl.SSLContext | None) -> None:
        self.address_family = family
        self.ssl_context = ssl_context
        self.counts = dict.fromkeys(ServerStats.__dataclass_fields__, 0)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can hang offline.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()

    def stats(self) -> ServerStats:
        with self._lock:
            return ServerStats(**self.counts)

    def count_request(self, status: str) -> None:
        with self._lock:
            self.counts["requests"] += 1
            if status == "401":
                self.counts["unauthorized"] += 1
            elif status == "500":
                self.counts["errors"] += 1

    def serve(self) -> None:
        """Accept until ``stop()``; each connection is served in its own thread."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    self._accept()

    def _accept(self) -> None:
        try:
            conn, peer = self.socket.accept()
        except OSError:
            return  # the client gave up before we got to it, or we are closing
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.counts["rejected_busy"] += 1
            conn.close()
            return
        thread = threading.Thread(target=self._serve_connection, args=(conn, peer), name="normagent-http", daemon=True)
        with self._lock:
            if self._stopping:
                self._slots.release()
                conn.close()
                return
            # Started under the lock, so stop() never sees (and joins) a thread not yet started.
            self._threads.add(thread)
            thread.start()

    def _serve_connection(self, conn: socket.socket, peer: Any) -> None:
        try:
            conn.settimeout(REQUEST_TIMEOUT)
            if not self._track(conn):
                return
            if self.ssl_context is not None:
                plain = conn
                # Wrapping detaches the plain socket; doing it under the lock means stop() sees
                # either the plain socket or the TLS one, always one it can shut down.
                with self._lock:
                    if self._stopping:
                        return
                    conn = self.ssl_context.wrap_socket(plain, server_side=True, do_handshake_on_connect=False)
                    self._connections.discard(plain)
                    self._connections.add(conn)
                try:
                    conn.do_handshake()  # here, in this connection's thread, under REQUEST_TIMEOUT
                except (ssl.SSLError, OSError) as exc:
                    with self._lock:
                        if self._stopping:
                            return  # stop() cut it short: not the client's failure
                        self.counts["tls_handshake_failures"] += 1
                    log.debug("tls_handshake_failed", reason=getattr(exc, "reason", None) or type(exc).__name__)
                    return
            try:
                self.finish_request(conn, peer)
            except (OSError, ssl.SSLError):
                pass  # the client went away mid-request; nothing to answer
        finally:
            self._untrack(conn)
            try:
                conn.close()
            finally:
                self._slots.release()
                with self._lock:
                    self._threads.discard(threading.current_thread())

    def _track(self, conn: socket.socket) -> bool:
        with self._lock:
            if self._stopping:
                return False
            self._connections.add(conn)
            return True

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def stop(self, timeout: float) -> list[str]:
        """Stop accepting, end open connections, join their threads. Returns threads still alive."""
        with self._lock:
            self._stopping = True
            connections, threads = list(self._connections), list(self._threads)
        self._wake_w.send(b"x")
        for conn in connections:
            try:
                # The plain socket call, also for TLS sockets: it unblocks a thread waiting for a
                # request or a handshake without touching the TLS state that thread is using.
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout)
        return [t.name for t in threads if t.is_alive()]

    def close(self) -> None:
        self.server_close()
        self._wake_r.close()
        self._wake_w.close()


class RunningServer:
    """A started HTTP server. ``stop()`` returns once nothing of it is left running."""

    def __init__(self, server: _HTTPServer, thread: threading.Thread, tls: bool) -> None:
        self._server = server
        self._thread = thread
        self._stopped = False
        host, port = server.server_address[:2]
        self.host = host.decode() if isinstance(host, bytes) else str(host)
        self.port = int(port)
        self.address = f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"
        self.url = f"{'https' if tls else 'http'}://{self.address}"

    def stats(self) -> ServerStats:
        """A copy of the request counters."""
        return self._server.stats()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; in-flight requests are cut off. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        lingering = self._server.stop(timeout)
        self._thread.join(timeout)
        self._server.close()
        if lingering or self._thread.is_alive():
            log.warning("http_threads_still_running", threads=len(lingering) + self._thread.is_alive())
        log.info("http_server_stopped", listen=self.address)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(settings: WebSettings, metrics_app: WSGIApp, healthy: Callable[[], bool]) -> RunningServer:
    """Serve ``/metrics`` (``metrics_app``) and ``/healthz`` (``healthy()``) as ``settings`` say.

    Args:
        settings: Validated ``[web]`` settings (``validate_web`` found nothing).
        metrics_app: WSGI app that answers ``/metrics``.
        healthy: Called on each ``/healthz`` request; True answers 200 "ok", False 503.

    Returns:
        The running server; its ``address`` is the bound ``host:port`` (useful with port 0).

    Raises:
        ListenError: the address cannot be bound.
        TLSConfigError: a certificate, key or CA file cannot be used.
    """
    try:
        host, port = parse_listen(settings.listen)
    except ValueError as exc:
        raise ListenError(f"web.listen: {exc}") from None
    context = tls_context(settings)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"web.listen: cannot resolve {host}: {exc.strerror}") from None
    family, *_, sockaddr = infos[0]
    try:
        server = _HTTPServer(family, (str(sockaddr[0]), int(sockaddr[1])), context)
    except OSError as exc:
        raise ListenError(f"web.listen: cannot listen on {settings.listen}: {exc.strerror or exc}") from None
    server.set_app(build_app(settings, metrics_app, healthy))
    thread = threading.Thread(target=server.serve, name="normagent-http-accept", daemon=True)
    thread.start()
    running = RunningServer(server, thread, context is not None)
    log.info(
        "http_server_started",
        listen=running.address,
        tls=context is not None,
        client_auth=settings.client_auth_type if context is not None else None,
        basic_auth=bool(settings.basic_auth_users),
    )
    return running
