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

Serving: one asyncio event loop in a thread of its own, not a thread per connection, because a
daemon's scrape endpoint meets slow and hostile clients. A connection still in its TLS handshake or
still sending its request costs a socket, not a thread, and has a deadline for the whole request
(``request_timeout`` from accept), not per read, so a client that sends a header line every few
seconds is cut off all the same. When ``max_connections`` are open, a new connection makes room by
closing the oldest unfinished connection of the address that holds the most, so flooding the server
closes the flooder's connections, not a scraper's. A request refused before it has all arrived (a
431 for a header that goes on), or followed by more (pipelined requests), is answered, then the
rest is read and dropped for a little while before the connection closes: closing with bytes unread resets it, and a reset throws away the
answer the client has not read yet. Plain HTTP sent to the HTTPS port is answered, in plain HTTP,
with Go's 400 "Client sent an HTTP request to an HTTPS server." (counted as a failed handshake), so
a scraper with the wrong scheme says why. The application runs on two worker threads,
password checks on one more; nothing slow runs in the loop. ``stop()`` ends open connections and
joins every thread, so nothing is left running after it returns.

Basic auth follows exporter-toolkit: bcrypt hashes, an unknown user is checked against a dummy hash
so that timing does not tell which users exist, and a verdict is cached — keyed by a keyed hash of
user, stored hash and password, never the password itself — so that a scrape every few seconds
costs a dictionary lookup, not 50 ms of bcrypt, and a wrong password tried again costs nothing
either. Checks that do need bcrypt wait in line per client address and are taken from each address
in turn, a few at most per address (more are answered 503 at once), so a flood of wrong passwords
neither delays a scraper whose password was checked before nor starves one from another address.
Passwords over 72 bytes are refused with 401 (bcrypt cannot check them; bcrypt 5 raises).

Nothing here logs client addresses or user names. Imports only the standard library (with
normagent's ``dataclass``), bcrypt (when
basic auth is configured), structlog and normagent.errors.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import functools
import gc
import hashlib
import io
import ipaddress
import queue
import re
import resource
import secrets
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast

import structlog

from normagent.errors import EX_CONFIG, NormagentError
from normagent.hostnames import fairness_group, for_socket
from normagent.records import dataclass
from normagent.smallfile import MAX_PEM_BYTES, pem_cut_short, read_small

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
# htpasswd's own limit. A check at cost 10 takes ~60 ms here; at 31 it would take over a day, on
# the one thread that checks passwords, and no scraper would ever get in.
BCRYPT_MAX_COST = 17
BCRYPT_MAX_PASSWORD = 72  # bytes; bcrypt ignores (bcrypt ≥ 5: rejects) anything longer
HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")

REQUEST_TIMEOUT = timedelta(seconds=10)  # default: handshake plus request, and again for the answer
REQUEST_TIMEOUT_RANGE = (timedelta(milliseconds=100), timedelta(minutes=5))
MAX_CONNECTIONS = 256  # default: connections open at once (each costs a file descriptor)
MAX_CONNECTIONS_RANGE = (1, 4096)
AUTH_CACHE_SIZE = 1024  # verdicts remembered, per verdict
AUTH_CHECKS_PER_SOURCE = 4  # bcrypt checks waiting per client address; more are answered 503
AUTH_CHECKS_WAITING = 32  # bcrypt checks waiting in all
APP_WORKERS = 2  # threads running the application (/metrics is rendered from a cached snapshot)
MAX_HEADER_BYTES = 65536  # request line plus headers
MAX_HEADERS = 100
MAX_BODY_BYTES = 65536  # nothing here reads a body; a small one is read and ignored
LINGER_BYTES = 1024 * 1024  # read and dropped after a refusal, so closing does not reset the answer away
LINGER_SECONDS = 2.0  # at most this long (and never past request_timeout)
LISTEN_BACKLOG = 128
ACCEPT_BACKOFF = 0.1  # seconds to wait when accept() runs out of file descriptors
COLLECT_EVERY = 200  # connections ended between two young-generation garbage collections
REPORT_EVERY = 60.0  # seconds between log lines about clients cut off
CUT_OFF = ("timed_out", "evicted", "rejected_busy", "auth_throttled", "tls_handshake_failures")
SERVER_SOFTWARE = "normagent"
PLAIN_TO_TLS = b"Client sent an HTTP request to an HTTPS server.\n"  # Go's words, which Prometheus users know
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 5.6.2
TARGET = re.compile(r"[\x21-\x7e]+")  # visible ASCII: no spaces, no controls
HTTP_VERSION = re.compile(r"HTTP/1\.[01]")
FIELD_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # RFC 9110 5.5: a field value holds no controls but HTAB


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
    request_timeout: timedelta = field(
        default=REQUEST_TIMEOUT,
        metadata={
            "min": REQUEST_TIMEOUT_RANGE[0],
            "max": REQUEST_TIMEOUT_RANGE[1],
            "help": "Time a client has for the TLS handshake and its whole request, and again to read the answer",
        },
    )
    max_connections: int = field(
        default=MAX_CONNECTIONS,
        metadata={
            "min": MAX_CONNECTIONS_RANGE[0],
            "max": MAX_CONNECTIONS_RANGE[1],
            "help": "Connections open at once (at most half the open-files limit); "
            "when full, the oldest unfinished one of the busiest address is closed",
        },
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
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
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
        elif not 4 <= int(match["cost"]) <= BCRYPT_MAX_COST:
            problems.append((key, f"bcrypt cost must be 4 to {BCRYPT_MAX_COST} (as htpasswd -C allows), got {int(match['cost'])}: "
                                  "each step doubles the time of a check, and 31 takes more than a day"))
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
            text = read_small(path, MAX_PEM_BYTES)
        except OSError as exc:
            raise fail(key, f"cannot read {path}: {exc.strerror or exc}") from None
        if marker not in text:
            raise fail(key, f"{path} holds no {what} (no {marker.decode().strip('-')} block)")
        cut = pem_cut_short(path, text)
        if cut:
            raise fail(key, cut)
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
            text = read_small(settings.tls_client_ca_file, MAX_PEM_BYTES)
            if b"-----BEGIN CERTIFICATE-----" not in text:
                raise fail("tls_client_ca_file", f"{settings.tls_client_ca_file} holds no PEM certificate (no BEGIN CERTIFICATE block)")
            cut = pem_cut_short(settings.tls_client_ca_file, text)
            if cut:
                raise fail("tls_client_ca_file", cut)
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


@dataclass(frozen=True, slots=True)
class Credentials:
    """Credentials that only bcrypt can judge: what ``BasicAuth.verify`` needs, the password included."""

    known: bool  # the user exists (else ``hashed`` is the dummy hash)
    hashed: bytes
    password: bytes = field(repr=False)
    key: bytes = field(repr=False)  # cache key: keyed hash of user, stored hash and password


class BasicAuth:
    """HTTP basic auth against bcrypt hashes, exporter-toolkit style, in two steps.

    ``lookup`` is cheap and decides whatever it can without bcrypt: a malformed header, a password
    bcrypt cannot check, and any credentials judged before (successes and failures are both
    remembered, keyed by a keyed hash, never the password). What is left goes to ``verify``, which
    costs one bcrypt check; the server runs those on a worker of their own, fairly between client
    addresses, so a scraper whose password was verified once never waits behind anyone's bcrypt.

    Args:
        users: User name → bcrypt hash (``$2a$``, ``$2b$``, ``$2y$``).
        cache_size: Judged credentials remembered per verdict (least recently used forgotten first).
    """

    def __init__(self, users: Mapping[str, str], *, cache_size: int = AUTH_CACHE_SIZE) -> None:
        # Imported here: most agents serve without basic auth, and the module costs 0.4 MB of RSS.
        import bcrypt

        self._checkpw = bcrypt.checkpw
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        costs = [int(m["cost"]) for h in self._users.values() if (m := BCRYPT_HASH.match(h))]
        # Unknown users are checked against a hash of the same cost, so timing does not tell them apart.
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=max(costs, default=10)))
        self._key = secrets.token_bytes(32)  # per process: cache keys mean nothing outside it
        self._verdicts: dict[bool, OrderedDict[bytes, None]] = {True: OrderedDict(), False: OrderedDict()}
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def lookup(self, authorization: str | None) -> bool | Credentials:
        """True or False when that is clear without bcrypt, else the ``Credentials`` to ``verify``."""
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
        if not colon or len(password) > BCRYPT_MAX_PASSWORD:
            return False  # bcrypt cannot check a longer password: a 401, never a 500
        try:
            user = raw_user.decode("utf-8")
        except UnicodeDecodeError:
            return False
        stored = self._users.get(user)
        hashed = self._dummy if stored is None else stored
        key = hashlib.blake2b(b"\0".join((raw_user, hashed, password)), key=self._key, digest_size=32).digest()
        with self._lock:
            for verdict, cache in self._verdicts.items():
                if key in cache:
                    cache.move_to_end(key)
                    return verdict
        return Credentials(stored is not None, hashed, password, key)

    def verify(self, credentials: Credentials) -> bool:
        """One bcrypt check (tens to hundreds of milliseconds of CPU); the verdict is remembered."""
        try:
            matched = self._checkpw(credentials.password, credentials.hashed) and credentials.known
        except ValueError:  # a hash that is not bcrypt (validation should have caught it)
            matched = False
        with self._lock:
            cache = self._verdicts[matched]
            cache[credentials.key] = None
            while len(cache) > self._cache_size:
                cache.popitem(last=False)
        return matched

    def check(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value names a user and their password (blocking)."""
        found = self.lookup(authorization)
        return found if isinstance(found, bool) else self.verify(found)


# ------------------------------------------------------------------------------------------------
# the server


@dataclass(frozen=True, slots=True)
class ServerStats:
    """What the server has seen since it started (``RunningServer.stats()``): refused logins, failed
    handshakes and clients that were cut off are worth a dashboard panel."""

    requests: int = 0  # answered, whatever the status
    unauthorized: int = 0  # answered 401
    errors: int = 0  # the application raised; answered 500
    tls_handshake_failures: int = 0
    timed_out: int = 0  # did not finish handshake, request or reading the answer within request_timeout
    evicted: int = 0  # closed to make room for a new connection (max_connections were open)
    rejected_busy: int = 0  # closed at once: max_connections were open and none could be evicted
    auth_throttled: int = 0  # answered 503: too many password checks waiting (from that address)
    open_connections: int = 0  # now, not since the start


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class _Response:
    status: str
    headers: list[tuple[str, str]]
    body: bytes


class _BadRequest(Exception):
    """The request cannot be served; answered with ``status`` and the connection closed.

    ``method`` is the request's, once its line was read: the answer to a HEAD has no body
    (RFC 9110 9.3.2), refused or not.
    """

    def __init__(self, status: str, method: str = "") -> None:
        super().__init__(status)
        self.status = status
        self.method = method


def _error_response(status: str, *extra: tuple[str, str]) -> _Response:
    body = status.split(" ", 1)[1].encode() + b"\n"
    return _Response(status, [("Content-Type", "text/plain; charset=utf-8"), *extra], body)


@dataclass(eq=False)
class _Connection:
    """One accepted connection, as the event loop tracks it."""

    sock: socket.socket
    source: str  # the client's address (IPv6: its /64), for fairness; never logged
    accepted: float  # loop time
    task: asyncio.Task[None] | None = None
    started: bool = False  # its task has begun (and owns the socket)
    transport: asyncio.Transport | None = None
    busy: bool = False  # its request is with the password check or the application: not evictable
    cut: str = ""  # why the server ended it early: "evicted", "timed_out", "stopping"


class _Workers:
    """Daemon threads that run blocking calls for the event loop; ``stop`` joins them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int, name: str) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=name, daemon=True) for _ in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run ``call`` on a worker; the future is resolved on the loop (call from the loop)."""
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put((call, future))
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            call, future = item
            if future.cancelled():
                continue  # its client is gone: do not spend the work
            try:
                result, error = call(), None
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                result, error = None, exc
            try:
                self._loop.call_soon_threadsafe(_resolve, future, result, error)
            except RuntimeError:
                return  # the loop is closed: the server stopped while this ran

    def stop(self, timeout: float) -> list[threading.Thread]:
        """Let the workers finish what they run; returns those still alive after ``timeout``."""
        for _ in self._threads:
            self._queue.put(None)
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        return [t for t in self._threads if t.is_alive()]


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _FairChecks:
    """Password checks on one worker, taken in turn from each client address that waits for one.

    bcrypt costs tens to hundreds of milliseconds of CPU, so checks are bounded: at most
    ``per_source`` waiting per address and ``total`` in all; beyond that a request is answered 503
    at once. Taking addresses in turn means a scraper waits for at most one check per other
    address, however many requests an attacker sends.
    """

    def __init__(self, workers: _Workers, *, per_source: int, total: int) -> None:
        self._workers = workers
        self._per_source = per_source
        self._total = total
        self._waiting: dict[str, deque[tuple[Callable[[], bool], asyncio.Future[bool]]]] = {}
        self._turns: deque[str] = deque()
        self._queued = 0
        self._running = False

    def submit(self, source: str, check: Callable[[], bool]) -> asyncio.Future[bool] | None:
        """The check's future, or None when it would wait behind too many others."""
        waiting = self._waiting.get(source)
        if self._queued >= self._total or (waiting is not None and len(waiting) >= self._per_source):
            return None
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if waiting is None:
            waiting = self._waiting[source] = deque()
            self._turns.append(source)
        waiting.append((check, future))
        self._queued += 1
        self._next()
        return future

    def _next(self) -> None:
        while not self._running and self._turns:
            source = self._turns.popleft()
            waiting = self._waiting[source]
            check, future = waiting.popleft()
            self._queued -= 1
            if waiting:
                self._turns.append(source)
            else:
                del self._waiting[source]
            if future.cancelled():
                continue  # its client is gone
            self._running = True
            self._workers.submit(check).add_done_callback(functools.partial(self._finished, future))

    def _finished(self, future: asyncio.Future[bool], done: asyncio.Future[Any]) -> None:
        self._running = False
        if not future.done():
            if done.cancelled():
                future.cancel()
            elif done.exception() is not None:
                future.set_exception(cast(BaseException, done.exception()))
            else:
                future.set_result(bool(done.result()))
        self._next()


def _connection_limit(wanted: int) -> int:
    """``max_connections``, or half the open-files limit if that is lower (said in the log): each
    connection is a file descriptor, and the agent needs descriptors for its ledger, its log files
    and journalctl too. (systemd's default is 1024; raise it with LimitNOFILE= in the unit.)"""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or wanted <= soft // 2:
        return wanted
    allowed = max(1, soft // 2)
    log.warning("http_max_connections_lowered", configured=wanted, effective=allowed, open_files_limit=soft)
    return allowed


def _source_of(peer: Any) -> str:
    """The address a client's connections are grouped by (``fairness_group``)."""
    return fairness_group(str(peer[0]) if isinstance(peer, tuple) and peer else str(peer))


class _Server:
    """An HTTP/1.0 server on one asyncio event loop (in its own thread), one request per connection.

    Why an event loop: a connection that is still sending its request (or reading its answer, or
    in its TLS handshake) costs a socket and a few kilobytes, not a thread, so slow clients cannot
    take the places scrapes need. Every connection has a deadline for the whole request
    (``request_timeout`` from accept, handshake included) and another for sending the answer. When
    ``max_connections`` are open, a new connection makes room by closing the oldest connection of
    the address holding the most that is still sending its request or reading its answer; a scraper
    that sends its request at once is never the one to go. The application and the password checks
    run on worker threads, so nothing slow ever runs in the loop.
    """

    def __init__(
        self,
        sock: socket.socket,
        app: WSGIApp,
        auth: BasicAuth | None,
        ssl_context: ssl.SSLContext | None,
        settings: WebSettings,
    ) -> None:
        self.sock = sock
        self.app = app
        self.auth = auth
        self.ssl_context = ssl_context
        self.request_timeout = settings.request_timeout.total_seconds()
        self.max_connections = _connection_limit(settings.max_connections)
        host, port = sock.getsockname()[:2]
        self.server_name, self.server_port = str(host), str(port)
        self.counts = dict.fromkeys(ServerStats.__dataclass_fields__, 0)
        self._counts_lock = threading.Lock()
        self._connections: dict[_Connection, None] = {}  # in accept order: the oldest first
        self._per_source: dict[str, int] = {}  # connections open per client address
        self._served = 0  # connections ended
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(_quiet_exception_handler)
        self._app_workers = _Workers(self._loop, APP_WORKERS, "normagent-http-app")
        self._auth_workers = _Workers(self._loop, 1, "normagent-http-auth") if auth is not None else None
        self._checks = (
            _FairChecks(self._auth_workers, per_source=AUTH_CHECKS_PER_SOURCE, total=AUTH_CHECKS_WAITING)
            if self._auth_workers is not None
            else None
        )
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="normagent-http", daemon=True)
        self._ready = threading.Event()

    # -- life cycle

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        accepting = asyncio.create_task(self._accept_loop())
        reporting = asyncio.create_task(self._report_loop())
        self._ready.set()
        await self._stopping.wait()
        reporting.cancel()
        accepting.cancel()
        connections = list(self._connections)
        for conn in connections:
            self._cut(conn, "stopping")
        tasks = [t for t in (accepting, *(c.task for c in connections)) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self, timeout: float, *, keep_listener: bool = False) -> list[str]:
        """Stop accepting, end every connection, join the threads. Returns threads still alive.

        With ``keep_listener`` the listening socket stays open (see ``RunningServer.hand_over``).
        """
        if self._thread.is_alive():
            self._ready.wait()
            stopping = self._stopping
            assert stopping is not None
            try:
                self._loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:
                pass  # the loop has closed already
            self._thread.join(timeout)
        lingering = self._app_workers.stop(timeout)
        if self._auth_workers is not None:
            lingering += self._auth_workers.stop(timeout)
        if self._thread.is_alive():
            lingering.append(self._thread)
        if not keep_listener:
            self.sock.close()
        return [t.name for t in lingering]

    def stats(self) -> ServerStats:
        with self._counts_lock:
            return ServerStats(**{**self.counts, "open_connections": len(self._connections)})

    async def _report_loop(self) -> None:
        """Say so in the log when clients were cut off or refused: once a period, with how many,
        never once per client (an attack would flood the journal) and never who."""
        last = self.stats()
        while True:
            await asyncio.sleep(REPORT_EVERY)
            now = self.stats()
            changed = {name: getattr(now, name) - getattr(last, name) for name in CUT_OFF if getattr(now, name) != getattr(last, name)}
            if changed:
                log.warning("http_clients_cut_off", period_s=REPORT_EVERY, open_connections=now.open_connections, **changed)
            last = now

    def _count(self, what: str, n: int = 1) -> None:
        with self._counts_lock:
            self.counts[what] += n

    # -- connections

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        accept_failing = False
        while True:
            try:
                conn_sock, peer = await loop.sock_accept(self.sock)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of file descriptors: the listening socket stays readable, so wait a little
                    # instead of spinning; connections ending free descriptors. Said once a spell.
                    if not accept_failing:
                        log.warning("http_accept_failed", error=exc.strerror, open_connections=len(self._connections))
                    accept_failing = True
                    await asyncio.sleep(ACCEPT_BACKOFF)
                continue  # the client gave up before we got to it
            accept_failing = False
            conn = _Connection(conn_sock, _source_of(peer), loop.time())
            if len(self._connections) >= self.max_connections and not self._make_room():
                self._count("rejected_busy")
                conn_sock.close()
                continue
            self._track(conn)
            conn.task = asyncio.create_task(self._serve(conn))
            # Let the new connection's task (and the others) run before the next accept: accepting
            # never waits while the backlog is full, so without this a burst of connections would
            # evict one another, a scraper's included, before any of them had read its request.
            await asyncio.sleep(0)

    def _make_room(self) -> bool:
        """Close one connection that is still sending its request (or reading its answer): the
        oldest of the address holding the most connections. False if every one is being served."""
        most = max(self._per_source.values(), default=0)
        while most > 0:
            for conn in self._connections:  # oldest first
                if not conn.busy and self._per_source[conn.source] == most:
                    self._cut(conn, "evicted")
                    return True
            # Every connection of the busiest addresses is being served: try the next busiest.
            most = max((n for n in self._per_source.values() if n < most), default=0)
        return False

    def _track(self, conn: _Connection) -> None:
        self._connections[conn] = None
        self._per_source[conn.source] = self._per_source.get(conn.source, 0) + 1

    def _untrack(self, conn: _Connection) -> None:
        if conn in self._connections:
            del self._connections[conn]
            left = self._per_source[conn.source] - 1
            if left:
                self._per_source[conn.source] = left
            else:
                del self._per_source[conn.source]

    def _cut(self, conn: _Connection, why: str) -> None:
        """End a connection early: ``why`` is "evicted", "timed_out" or "stopping"."""
        if conn.cut:
            return
        conn.cut = why
        if why != "stopping":
            self._count(why)
        self._untrack(conn)
        if conn.transport is not None:
            conn.transport.abort()
        elif not conn.started:
            conn.sock.close()  # its task never ran: nothing else will close it
        if conn.task is not None:
            conn.task.cancel()

    async def _serve(self, conn: _Connection) -> None:
        conn.started = True
        try:
            try:
                async with asyncio.timeout_at(conn.accepted + self.request_timeout):
                    received = await self._receive(conn)
            except TimeoutError:
                self._cut(conn, "timed_out")
                return
            if received is None:
                return
            writer, status, data, reader, refused = received
            self._count_response(status)
            async with asyncio.timeout(self.request_timeout):
                writer.write(data)
                await writer.drain()
                if refused or _unread(conn.sock):  # a refusal, or a client that sent more (pipelined requests)
                    await self._linger(writer, reader)
                writer.close()
                await writer.wait_closed()
        except TimeoutError:
            self._cut(conn, "timed_out")
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            if not conn.cut:
                raise
        except Exception:
            log.exception("http_connection_failed")
        finally:
            self._untrack(conn)
            if conn.transport is not None:
                conn.transport.abort()
            else:
                conn.sock.close()
            self._served += 1
            if self._served % COLLECT_EVERY == 0:
                # Python 3.11's socket transport keeps a bound method of itself (_read_ready_cb): a
                # reference cycle only the cyclic GC frees, and the agent runs that rarely
                # (gc.set_threshold in run_agent). Ended connections are young: a young collection
                # now and then frees them for a millisecond, where waiting grew the heap ~1 kB a scrape.
                gc.collect(0)

    async def _receive(self, conn: _Connection) -> tuple[asyncio.StreamWriter, str, bytes, asyncio.StreamReader, bool] | None:
        """Handshake, read the request, decide the answer: (writer, status, encoded answer, reader,
        whether the request was refused before it was read to its end), or None when there is
        nothing to answer (the handshake failed, the client left)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_HEADER_BYTES, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        context = self.ssl_context
        plain_to_tls = False
        if context is not None:
            first = await _peek(conn.sock)
            if not first:
                return None  # closed before saying anything
            # A TLS handshake starts with 0x16; an HTTP request with the letters of its method.
            plain_to_tls = first.isalpha()
            if plain_to_tls:
                context = None
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol,
                conn.sock,
                ssl=context,
                # Longer than the whole-request deadline, which is the one meant to end it.
                ssl_handshake_timeout=2 * self.request_timeout if context is not None else None,
            )
        except (ssl.SSLError, OSError) as exc:
            if context is not None:
                self._count("tls_handshake_failures")
                log.debug("tls_handshake_failed", reason=getattr(exc, "reason", None) or type(exc).__name__)
            return None
        conn.transport = transport
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        if plain_to_tls:
            # Said in plain HTTP, as Go's servers (and so exporter-toolkit's) say it: a scraper
            # configured with http:// learns why, instead of reading "EOF".
            self._count("tls_handshake_failures")
            log.debug("tls_handshake_failed", reason="plain HTTP")
            refused = _Response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")], PLAIN_TO_TLS)
            return writer, refused.status, _encode(refused), reader, True
        try:
            request = await _read_request(reader)
        except _BadRequest as bad:
            return writer, bad.status, _encode(_error_response(bad.status), head_only=bad.method == "HEAD"), reader, True
        if request is None:
            return None
        conn.busy = True
        try:
            status, data = await self._respond(conn, request)
        finally:
            conn.busy = False
        return writer, status, data, reader, False

    async def _linger(self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
        """After refusing a request that may still be arriving (a 431 for a header that goes on),
        or answering one followed by more (pipelined requests: one is answered per connection),
        read and drop what the client sends until it closes, a little while at most.

        Closing a socket with unread bytes makes the kernel reset the connection, and a reset
        throws away whatever the client had not yet read: the answer that says what was wrong.
        The answer is sent first and, without TLS, followed by our end of the stream.
        """
        if writer.can_write_eof():
            writer.write_eof()
        left = LINGER_BYTES
        try:
            async with asyncio.timeout(min(LINGER_SECONDS, self.request_timeout)):
                while left > 0 and (data := await reader.read(min(left, 65536))):
                    left -= len(data)
        except TimeoutError:
            pass  # a client that keeps sending, or keeps the connection open: closed as it is

    async def _respond(self, conn: _Connection, request: _Request) -> tuple[str, bytes]:
        """Check the password (if basic auth is on), then run the application on a worker."""
        if self.auth is not None and self._checks is not None:
            verdict = self.auth.lookup(_header(request.headers, "authorization"))
            if isinstance(verdict, Credentials):
                checking = self._checks.submit(conn.source, functools.partial(self.auth.verify, verdict))
                if checking is None:
                    self._count("auth_throttled")
                    busy = _error_response("503 Service Unavailable", ("Retry-After", "1"))
                    return busy.status, _encode(busy, head_only=request.method == "HEAD")
                verdict = await checking
            if not verdict:
                refused = _error_response("401 Unauthorized", ("WWW-Authenticate", 'Basic realm="normagent", charset="UTF-8"'))
                return refused.status, _encode(refused, head_only=request.method == "HEAD")
        environ = self._environ(request)
        answer: tuple[str, bytes] = await self._app_workers.submit(functools.partial(self._call_app, environ))
        return answer

    def _environ(self, request: _Request) -> dict[str, Any]:
        path, _, query = request.target.partition("?")
        if "://" in path:  # absolute form: "http://host:port/metrics"
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": urllib.parse.unquote(path, "iso-8859-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": "",
            "CONTENT_LENGTH": str(len(request.body)) if request.body else "",
            "SERVER_NAME": self.server_name,
            "SERVER_PORT": self.server_port,
            "SERVER_PROTOCOL": request.version,
            "SERVER_SOFTWARE": SERVER_SOFTWARE,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.ssl_context is not None else "http",
            "wsgi.input": io.BytesIO(request.body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in request.headers:
            if "_" in name:
                continue  # "X_Forwarded" and "X-Forwarded" would be one key; such headers are dropped (as wsgiref does)
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = value
                continue
            key = "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _call_app(self, environ: dict[str, Any]) -> tuple[str, bytes]:
        """Run the WSGI application (on a worker thread): (status, the encoded answer)."""
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, list(headers)]
            return written.append

        try:
            result = self.app(environ, start_response)
            try:
                body = b"".join([*written, *result])
            finally:
                close = getattr(result, "close", None)
                if callable(close):
                    close()
            if not started:
                raise RuntimeError("the application returned without calling start_response")
            response = _Response(str(started[0]), started[1], body)
            return response.status, _encode(response, head_only=environ["REQUEST_METHOD"] == "HEAD")
        except Exception:
            log.exception("http_request_failed", path=environ.get("PATH_INFO", ""))
            failed = _error_response("500 Internal Server Error")
            return failed.status, _encode(failed, head_only=environ["REQUEST_METHOD"] == "HEAD")

    def _count_response(self, status: str) -> None:
        code = status[:3]
        with self._counts_lock:
            self.counts["requests"] += 1
            if code == "401":
                self.counts["unauthorized"] += 1
            elif code == "500":
                self.counts["errors"] += 1


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's own complaints, without the transport (whose text holds the client's address)."""
    exc = context.get("exception")
    if isinstance(exc, (OSError, asyncio.CancelledError)):
        return  # a client that went away
    log.error("http_loop_error", message=context.get("message"), error=f"{type(exc).__name__}: {exc}" if exc else None)


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(when: float) -> str:
    """An IMF-fixdate (RFC 9110), as ``email.utils.formatdate(usegmt=True)`` writes it: the e-mail
    package is not imported for one header (its modules cost the idle agent about 1 MB); nor is
    ``strftime``, whose day and month names follow the locale."""
    t = time.gmtime(when)
    return f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"


def _encode(response: _Response, *, head_only: bool = False) -> bytes:
    """The response as bytes: HTTP/1.0, one request per connection."""
    headers = list(response.headers)
    if not any(name.lower() == "content-length" for name, _ in headers):
        headers.append(("Content-Length", str(len(response.body))))
    headers += [("Date", http_date(time.time())), ("Server", SERVER_SOFTWARE), ("Connection", "close")]
    head = "".join([f"HTTP/1.0 {response.status}\r\n", *(f"{name}: {value}\r\n" for name, value in headers), "\r\n"])
    return head.encode("latin-1") + (b"" if head_only else response.body)


def _unread(sock: socket.socket) -> bool:
    """Whether the client has sent bytes not read yet (the kernel holds them)."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # BlockingIOError: nothing waiting; anything else: the client is gone
        return False


async def _peek(sock: socket.socket) -> bytes:
    """The first byte the client sent, left in the socket for whoever reads it next; b"" if the
    client closed without sending anything."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            pass
        readable: asyncio.Future[None] = loop.create_future()

        def wake(readable: asyncio.Future[None] = readable) -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(sock.fileno(), wake)
        try:
            await readable
        finally:
            loop.remove_reader(sock.fileno())


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """Read one request (line, headers, body); None if the client closed before it was whole.

    Raises:
        _BadRequest: with the status to answer (malformed, too large, or not supported).
    """
    line = await _read_line(reader, "414 URI Too Long")
    if line in (b"\r\n", b"\n"):
        line = await _read_line(reader, "414 URI Too Long")  # RFC 9112 2.2: one empty line is allowed first
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not TARGET.fullmatch(parts[1]):
        raise _BadRequest("400 Bad Request")
    method, target, version = parts
    try:
        return await _read_rest(reader, method, target, version, len(line))
    except _BadRequest as bad:
        bad.method = method
        raise


async def _read_rest(reader: asyncio.StreamReader, method: str, target: str, version: str, total: int) -> _Request | None:
    """The request after its line: ``_read_request``'s headers and body (``total``: bytes read so far)."""
    if not HTTP_VERSION.fullmatch(version):
        raise _BadRequest("505 HTTP Version Not Supported" if version.startswith("HTTP/") else "400 Bad Request")
    headers: list[tuple[str, str]] = []
    while True:
        line = await _read_line(reader, "431 Request Header Fields Too Large")
        if not line:
            return None
        total += len(line)
        if total > MAX_HEADER_BYTES or len(headers) >= MAX_HEADERS:
            raise _BadRequest("431 Request Header Fields Too Large")
        if line in (b"\r\n", b"\n"):
            break
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not TOKEN.fullmatch(name):  # also refuses obsolete line folding
            raise _BadRequest("400 Bad Request")
        value = value.removesuffix("\n").removesuffix("\r").strip(" \t")
        if FIELD_CONTROL.search(value):  # a bare CR, a NUL: refused, as Go and RFC 9112 2.2 do
            raise _BadRequest("400 Bad Request")
        headers.append((name, value))
    if _header(headers, "transfer-encoding") is not None:
        raise _BadRequest("501 Not Implemented")  # nothing here takes a request body, let alone chunks
    lengths = {value for name, value in headers if name.lower() == "content-length"}
    body = b""
    if lengths:
        length = lengths.pop()
        if lengths or not (length.isascii() and length.isdigit()):
            raise _BadRequest("400 Bad Request")
        if len(length) > 18 or int(length) > MAX_BODY_BYTES:  # int() refuses 4,300 digits
            raise _BadRequest("413 Content Too Large")
        try:
            body = await reader.readexactly(int(length))
        except asyncio.IncompleteReadError:
            return None
    return _Request(method, target, version, headers, body)


async def _read_line(reader: asyncio.StreamReader, too_long: str) -> bytes:
    """One line with its end; b"" if the stream ended before a whole line."""
    try:
        line = await reader.readline()
    except ValueError:  # longer than the reader's limit
        raise _BadRequest(too_long) from None
    return line if line.endswith(b"\n") else b""


class RunningServer:
    """A started HTTP server. ``stop()`` returns once nothing of it is left running."""

    def __init__(self, server: _Server, tls: bool) -> None:
        self._server = server
        self._stopped = False
        host, port = server.sock.getsockname()[:2]
        self.host = str(host)
        self.port = int(port)
        self.address = f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"
        self.url = f"{'https' if tls else 'http'}://{self.address}"

    def stats(self) -> ServerStats:
        """A copy of the request counters."""
        return self._server.stats()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; requests in flight are cut off. Safe to call twice."""
        self._stop(timeout, keep_listener=False)

    def hand_over(self, timeout: float = 5.0) -> socket.socket:
        """Stop serving but keep listening: the socket, for ``start_server(..., listener=...)``.

        A reload that keeps the address never lets go of the port: closing and binding again
        leaves a moment in which a scrape is refused, connections waiting to be accepted are
        reset, and another process can take the port (then even the old settings cannot be
        served again). Connections that arrive meanwhile wait in the kernel's backlog for the
        next server.
        """
        if self._stopped:
            raise RuntimeError("the server has stopped; its socket is closed")
        self._stop(timeout, keep_listener=True)
        return self._server.sock

    def _stop(self, timeout: float, *, keep_listener: bool) -> None:
        if self._stopped:
            return
        self._stopped = True
        lingering = self._server.stop(timeout, keep_listener=keep_listener)
        if lingering:
            log.warning("http_threads_still_running", threads=len(lingering))
        log.info("http_server_stopped", listen=self.address, handed_over=keep_listener)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    settings: WebSettings, metrics_app: WSGIApp, healthy: Callable[[], bool], *, listener: socket.socket | None = None
) -> RunningServer:
    """Serve ``/metrics`` (``metrics_app``) and ``/healthz`` (``healthy()``) as ``settings`` say.

    Args:
        settings: Validated ``[web]`` settings (``validate_web`` found nothing).
        metrics_app: WSGI app that answers ``/metrics``.
        healthy: Called on each ``/healthz`` request; True answers 200 "ok", False 503.
        listener: A socket already listening on ``settings.listen`` (``RunningServer.hand_over``),
            served instead of binding a new one; left open if this raises.

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
    auth = BasicAuth(settings.basic_auth_users) if settings.basic_auth_users else None
    sock = listener if listener is not None else _listen(settings.listen, host, port)
    server = _Server(sock, Routes(metrics_app, healthy), auth, context, settings)
    server.start()
    running = RunningServer(server, context is not None)
    log.info(
        "http_server_started",
        listen=running.address,
        tls=context is not None,
        client_auth=settings.client_auth_type if context is not None else None,
        basic_auth=auth is not None,
    )
    return running


def _listen(listen: str, host: str, port: int) -> socket.socket:
    """A non-blocking socket listening on ``host``:``port`` (``listen`` as written, for errors)."""
    try:
        infos = socket.getaddrinfo(for_socket(host), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"web.listen: cannot resolve {host}: {exc.strerror}") from None
    family, *_, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # A restart or a reload to another address may find connections of the previous server
        # lingering in TIME_WAIT on this port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(f"web.listen: cannot listen on {listen}: {exc.strerror or exc}") from None
    return sock
