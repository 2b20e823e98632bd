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

Serving: one ``selectors`` loop in a thread of its own, not a thread per connection, because a
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

Nothing here logs client addresses or user names. Imports only the standard library (``ssl``
only for a TLS context), bcrypt (when basic auth is configured), structlog and normagent's leaf
modules (errors, digests, hostnames, records, smallfile).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import functools
import heapq
import io
import ipaddress
import itertools
import math
import os
import queue
import re
import resource
import selectors
import socket
import sys
import threading
import time
import urllib.parse
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import structlog

from normagent.digests import blake2b
from normagent.errors import EX_CONFIG, NormagentError
from normagent.hostnames import fairness_group, for_socket
from normagent.records import dataclass
from normagent.smallfile import MAX_PEM_BYTES, pem_cut_short, read_small

if TYPE_CHECKING:
    import ssl

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
TLS_VERSIONS = ("TLS12", "TLS13")  # oldest first; ssl.TLSVersion's names are "TLSv1_2", "TLSv1_3"
VERIFY_MODES = {  # client_auth_type → the ssl module's verify mode (ssl is imported for TLS only)
    "NoClientCert": "CERT_NONE",
    "VerifyClientCertIfGiven": "CERT_OPTIONAL",
    "RequireAndVerifyClientCert": "CERT_REQUIRED",
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
    if TLS_VERSIONS.index(settings.min_version) > TLS_VERSIONS.index(settings.max_version):
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
    import ssl  # noqa: PLC0415 - here: a server without TLS never loads OpenSSL (about 6 MB resident)

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
    ctx.minimum_version = ssl.TLSVersion[f"TLSv1_{settings.min_version[-1]}"]
    ctx.maximum_version = ssl.TLSVersion[f"TLSv1_{settings.max_version[-1]}"]
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
    mode_name = VERIFY_MODES.get(settings.client_auth_type)
    if mode_name is None:
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
    ctx.verify_mode = ssl.VerifyMode[mode_name]
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
        self._dummy = bcrypt.hashpw(os.urandom(16), bcrypt.gensalt(rounds=max(costs, default=10)))
        self._key = os.urandom(32)  # per process: cache keys mean nothing outside it
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
        key = blake2b(b"\0".join((raw_user, hashed, password)), key=self._key, digest_size=32).digest()
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


@dataclass(eq=False, slots=True)
class _Work:
    """A blocking call handed to a worker thread. ``done(result, error)`` runs on the server's
    loop thread when it returns, unless the work was ``cancelled`` first (its client went away or
    ran out of time): then it is not started, or its result is dropped."""

    call: Callable[[], Any]
    done: Callable[[Any, BaseException | None], None]
    cancelled: bool = False


class _Workers:
    """Daemon threads that run blocking calls for the loop; ``stop`` joins them."""

    def __init__(self, finished: Callable[[_Work, Any, BaseException | None], None], count: int, name: str) -> None:
        self._finished = finished
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=name, daemon=True) for _ in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, work: _Work) -> None:
        self._queue.put(work)

    def _work(self) -> None:
        while self._do(self._queue.get()):
            pass  # the work is done in a call of its own: nothing of it stays referenced while waiting

    def _do(self, work: _Work | None) -> bool:
        """Run ``work``; False when told to stop (None)."""
        if work is None:
            return False
        if not work.cancelled:  # else its client is gone: do not spend the work
            try:
                result, error = work.call(), None
            except BaseException as exc:  # noqa: BLE001 - handed to the loop, which decides
                result, error = None, exc
            self._finished(work, result, error)
        return True

    def stop(self, timeout: float) -> list[threading.Thread]:
        """Let the workers finish what they run; returns those still alive after ``timeout``."""
        for _ in self._threads:
            self._queue.put(None)
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        return [t for t in self._threads if t.is_alive()]


class _FairChecks:
    """Password checks on one worker, taken in turn from each client address that waits for one.

    bcrypt costs tens to hundreds of milliseconds of CPU, so checks are bounded: at most
    ``per_source`` waiting per address and ``total`` in all; beyond that a request is answered 503
    at once. Taking addresses in turn means a scraper waits for at most one check per other
    address, however many requests an attacker sends. Used on the loop thread only.
    """

    def __init__(self, workers: _Workers, *, per_source: int, total: int) -> None:
        self._workers = workers
        self._per_source = per_source
        self._total = total
        self._waiting: dict[str, deque[_Work]] = {}
        self._turns: deque[str] = deque()
        self._queued = 0
        self._running = False

    def submit(self, source: str, check: _Work) -> bool:
        """Queue ``check``; False (and nothing queued) when it would wait behind too many others."""
        waiting = self._waiting.get(source)
        if self._queued >= self._total or (waiting is not None and len(waiting) >= self._per_source):
            return False
        if waiting is None:
            waiting = self._waiting[source] = deque()
            self._turns.append(source)
        waiting.append(check)
        self._queued += 1
        self._next()
        return True

    def _next(self) -> None:
        while not self._running and self._turns:
            source = self._turns.popleft()
            waiting = self._waiting[source]
            check = waiting.popleft()
            self._queued -= 1
            if waiting:
                self._turns.append(source)
            else:
                del self._waiting[source]
            if check.cancelled:
                continue  # its client is gone
            self._running = True
            self._workers.submit(_Work(check.call, functools.partial(self._finished, check)))

    def _finished(self, check: _Work, result: Any, error: BaseException | None) -> None:
        self._running = False
        if not check.cancelled:
            check.done(result, error)
        self._next()


class _RequestReader:
    """Cuts one request (line, headers, body) out of the bytes a client sends, as they arrive.

    ``feed`` returns the request once it is whole, None while it is not; bytes after it (pipelined
    requests) are left in ``rest``. Each byte is looked at once, however the client splits its
    request, so a client sending a byte at a time costs its reads, not their square.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # start of the first line not yet taken
        self._searched = 0  # bytes from _pos known to hold no line end
        self._line: tuple[str, str, str] | None = None  # method, target, version
        self._headers: list[tuple[str, str]] = []
        self._total = 0  # bytes of the request line and headers so far
        self._empty_first = False  # the one empty line allowed before the request line was seen
        self._length: int | None = None  # the body's length, once the headers have ended

    @property
    def rest(self) -> int:
        """Bytes received after the request (pipelined requests)."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> _Request | None:
        """Take ``data``; the request when it is whole.

        Raises:
            _BadRequest: with the status to answer (malformed, too large, or not supported).
        """
        self._buf += data
        while self._length is None:
            line = self._take_line()
            if line is None:
                return None
            self._take(line)
        if len(self._buf) - self._pos < self._length:
            return None
        body = bytes(self._buf[self._pos : self._pos + self._length])
        self._pos += self._length
        assert self._line is not None
        return _Request(*self._line, self._headers, body)

    def _take_line(self) -> bytes | None:
        end = self._buf.find(b"\n", self._pos + self._searched)
        if end < 0 or end - self._pos >= MAX_HEADER_BYTES:
            self._searched = len(self._buf) - self._pos
            if self._searched > MAX_HEADER_BYTES:
                raise self._refusal("414 URI Too Long" if self._line is None else "431 Request Header Fields Too Large")
            return None
        line = bytes(self._buf[self._pos : end + 1])
        self._pos, self._searched = end + 1, 0
        return line

    def _refusal(self, status: str) -> _BadRequest:
        return _BadRequest(status, self._line[0] if self._line is not None else "")

    def _take(self, line: bytes) -> None:
        if self._line is None:
            if line in (b"\r\n", b"\n") and not self._empty_first:
                self._empty_first = True  # RFC 9112 2.2: one empty line is allowed first
                return
            parts = line.decode("latin-1").rstrip("\r\n").split(" ")
            if len(parts) != 3 or not TOKEN.fullmatch(parts[0]) or not TARGET.fullmatch(parts[1]):
                raise _BadRequest("400 Bad Request")
            method, target, version = parts
            self._line = (method, target, version)
            self._total = len(line)
            if not HTTP_VERSION.fullmatch(version):
                raise self._refusal("505 HTTP Version Not Supported" if version.startswith("HTTP/") else "400 Bad Request")
            return
        self._total += len(line)
        if self._total > MAX_HEADER_BYTES or len(self._headers) >= MAX_HEADERS:
            raise self._refusal("431 Request Header Fields Too Large")
        if line in (b"\r\n", b"\n"):
            self._length = self._body_length()
            return
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not TOKEN.fullmatch(name):  # also refuses obsolete line folding
            raise self._refusal("400 Bad Request")
        value = value.removesuffix("\n").removesuffix("\r").strip(" \t")
        if FIELD_CONTROL.search(value):  # a bare CR, a NUL: refused, as Go and RFC 9112 2.2 do
            raise self._refusal("400 Bad Request")
        self._headers.append((name, value))

    def _body_length(self) -> int:
        if _header(self._headers, "transfer-encoding") is not None:
            raise self._refusal("501 Not Implemented")  # nothing here takes a request body, let alone chunks
        lengths = {value for name, value in self._headers if name.lower() == "content-length"}
        if not lengths:
            return 0
        length = lengths.pop()
        if lengths or not (length.isascii() and length.isdigit()):
            raise self._refusal("400 Bad Request")
        if len(length) > 18 or int(length) > MAX_BODY_BYTES:  # int() refuses 4,300 digits
            raise self._refusal("413 Content Too Large")
        return int(length)


# What a connection is doing; the selector events it waits for follow from it. "busy": its request
# is with the password check or the application, and it is never evicted.
_State = Literal["peek", "handshake", "request", "busy", "answer", "linger", "closed"]


@dataclass(eq=False)
class _Connection:
    """One accepted connection, as the loop tracks it (weakly referenced by the deadline heap)."""

    sock: socket.socket  # an ssl.SSLSocket once its handshake began
    source: str  # the client's address (IPv6: its /64), for fairness; never logged
    accepted: float  # time.monotonic()
    state: _State = "request"
    deadline: float = 0.0  # of the request (from accept), then of the answer (from its first byte sent)
    events: int = 0  # selector events registered for it (0: not registered)
    reader: _RequestReader = field(default_factory=_RequestReader)
    head_only: bool = False  # a HEAD request: its answer has no body
    work: _Work | None = None  # the password check or the application, while busy
    out: memoryview | None = None  # what is left to send
    refused: bool = False  # answered before its request was read to its end: linger before closing
    linger_quiet: bool = False  # its deadline is the end of lingering, not of the answer's time
    lingered: int = 0  # bytes read and dropped while lingering


class _Server:
    """An HTTP/1.0 server on one ``selectors`` loop (in its own thread), one request per connection.

    Why a loop: a connection that is still sending its request (or reading its answer, or in its
    TLS handshake) costs a socket and a few hundred bytes, not a thread, so slow clients cannot take
    the places scrapes need. Every connection has a deadline for the whole request
    (``request_timeout`` from accept, handshake included) and another for sending the answer. When
    ``max_connections`` are open, a new connection makes room by closing the oldest connection of
    the address holding the most that is still sending its request or reading its answer; a scraper
    that sends its request at once is never the one to go. The application and the password checks
    run on worker threads, so nothing slow ever runs in the loop.

    Why not asyncio: it imports ``ssl`` (and with it OpenSSL's libcrypto) whether TLS is configured
    or not, about 6 MB of every idle agent's resident memory (bench/README.md); this loop imports
    ``ssl`` only for a TLS context.
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
        self._deadlines: list[tuple[float, int, weakref.ref[_Connection]]] = []  # a heap
        self._sequence = itertools.count()
        self._would_block: tuple[type[BaseException], ...] = (BlockingIOError, InterruptedError)
        self._wants_write: tuple[type[BaseException], ...] = ()
        if ssl_context is not None:
            import ssl  # noqa: PLC0415 - only a TLS server needs it

            self._would_block += (ssl.SSLWantReadError,)
            self._wants_write = (ssl.SSLWantWriteError,)
        self._send_blocked = (BlockingIOError, InterruptedError, *self._wants_write)
        self._handshake_waits = (*self._would_block, *self._wants_write)
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._finished: queue.SimpleQueue[tuple[_Work, Any, BaseException | None]] = queue.SimpleQueue()
        self._stopping = False
        self._accepting = True
        self._accept_failing = False  # accept() ran out of descriptors, and has not accepted since
        self._accept_again = 0.0  # when accept() ran out of descriptors: when to try again
        self._next_report = 0.0
        self._last_report = ServerStats()
        self._app_workers = _Workers(self._post, APP_WORKERS, "normagent-http-app")
        self._auth_workers = _Workers(self._post, 1, "normagent-http-auth") if auth is not None else None
        self._checks = (
            _FairChecks(self._auth_workers, per_source=AUTH_CHECKS_PER_SOURCE, total=AUTH_CHECKS_WAITING)
            if self._auth_workers is not None
            else None
        )
        self._thread = threading.Thread(target=self._run, name="normagent-http", daemon=True)

    # -- life cycle

    def start(self) -> None:
        self._selector.register(self.sock, selectors.EVENT_READ)
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._next_report = time.monotonic() + REPORT_EVERY
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._turn()
        except Exception:
            log.exception("http_loop_failed")  # a defect of this module; the process's health check sees no answers
        finally:
            for conn in list(self._connections):
                self._cut(conn, "stopping")
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self.sock)
            self._selector.close()
            self._wake_reader.close()
            self._wake_writer.close()

    def _turn(self) -> None:
        """One turn of the loop: wait for sockets or the next deadline, then do what is due.
        (A method of its own so that nothing it touched stays referenced while the loop waits.)"""
        for key, _ in self._selector.select(self._timeout(time.monotonic())):
            if key.data is not None:
                self._step(key.data)
            elif key.fileobj is self.sock:
                try:
                    self._accept()
                except Exception:
                    log.exception("http_connection_failed")
            else:
                self._wake_up()
        self._run_finished()
        self._run_timers(time.monotonic())

    def stop(self, timeout: float, *, keep_listener: bool = False) -> list[str]:
        """Stop accepting, end every connection, join the threads. Returns threads still alive.

        With ``keep_listener`` the listening socket stays open (see ``RunningServer.hand_over``).
        """
        if self._thread.is_alive():
            self._stopping = True
            self._wake()
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

    def _count(self, what: str, n: int = 1) -> None:
        with self._counts_lock:
            self.counts[what] += n

    # -- the loop's clock: deadlines, reports, accept back-off

    def _timeout(self, now: float) -> float:
        heap = self._deadlines
        while heap and ((conn := heap[0][2]()) is None or conn.state == "closed" or heap[0][0] != conn.deadline):
            heapq.heappop(heap)  # a connection that ended, or whose deadline moved
        soonest = min(self._next_report, heap[0][0] if heap else math.inf)
        if not self._accepting:
            soonest = min(soonest, self._accept_again)
        return max(0.0, soonest - now)

    def _run_timers(self, now: float) -> None:
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            when, _, ref = heapq.heappop(heap)
            conn = ref()
            if conn is not None and conn.state != "closed" and when == conn.deadline:
                self._expired(conn, now)
        if now >= self._next_report:
            self._report()
            self._next_report = now + REPORT_EVERY
        if not self._accepting and now >= self._accept_again:
            self._accepting = True
            self._selector.register(self.sock, selectors.EVENT_READ)

    def _set_deadline(self, conn: _Connection, when: float) -> None:
        conn.deadline = when
        heapq.heappush(self._deadlines, (when, next(self._sequence), weakref.ref(conn)))

    def _expired(self, conn: _Connection, now: float) -> None:
        if conn.state == "linger" and conn.linger_quiet:
            self._close(conn)  # lingered long enough, within the answer's time
        else:
            self._cut(conn, "timed_out")

    def _report(self) -> None:
        """Say so in the log when clients were cut off or refused: once a period, with how many,
        never once per client (an attack would flood the journal) and never who."""
        now, last = self.stats(), self._last_report
        changed = {name: getattr(now, name) - getattr(last, name) for name in CUT_OFF if getattr(now, name) != getattr(last, name)}
        if changed:
            log.warning("http_clients_cut_off", period_s=REPORT_EVERY, open_connections=now.open_connections, **changed)
        self._last_report = now

    # -- work done on other threads

    def _post(self, work: _Work, result: Any, error: BaseException | None) -> None:
        """From a worker: hand the result to the loop and wake it."""
        self._finished.put((work, result, error))
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full: the loop is awake anyway; closed: it has stopped
            self._wake_writer.send(b"\0")

    def _wake_up(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_reader.recv(4096):
                pass

    def _run_finished(self) -> None:
        while True:
            try:
                work, result, error = self._finished.get_nowait()
            except queue.Empty:
                return
            if not work.cancelled:
                try:
                    work.done(result, error)
                except Exception:  # a defect here: its connection times out, the loop goes on
                    log.exception("http_connection_failed")

    # -- connections

    def _accept(self) -> None:
        try:
            conn_sock, peer = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # Out of file descriptors: the listening socket stays readable, so wait a little
                # instead of spinning; connections ending free descriptors. Said once a spell.
                if not self._accept_failing:
                    log.warning("http_accept_failed", error=exc.strerror, open_connections=len(self._connections))
                self._accept_failing = True
                self._selector.unregister(self.sock)
                self._accepting = False
                self._accept_again = time.monotonic() + ACCEPT_BACKOFF
            return  # else the client gave up before we got to it
        self._accept_failing = False
        conn_sock.setblocking(False)
        conn = _Connection(conn_sock, _source_of(peer), time.monotonic())
        if len(self._connections) >= self.max_connections and not self._make_room():
            self._count("rejected_busy")
            conn_sock.close()
            return
        self._connections[conn] = None
        self._per_source[conn.source] = self._per_source.get(conn.source, 0) + 1
        self._set_deadline(conn, conn.accepted + self.request_timeout)
        conn.state = "peek" if self.ssl_context is not None else "request"
        # At once: a scraper's request has often arrived with its connection, and a connection
        # being served cannot be evicted by the next ones of a burst.
        self._step(conn)

    def _make_room(self) -> bool:
        """Close one connection that is still sending its request (or reading its answer): the
        oldest of the address holding the most connections. False if every one is being served."""
        most = max(self._per_source.values(), default=0)
        while most > 0:
            for conn in self._connections:  # oldest first
                if conn.state != "busy" and self._per_source[conn.source] == most:
                    self._cut(conn, "evicted")
                    return True
            # Every connection of the busiest addresses is being served: try the next busiest.
            most = max((n for n in self._per_source.values() if n < most), default=0)
        return False

    def _cut(self, conn: _Connection, why: str) -> None:
        """End a connection early: ``why`` is "evicted", "timed_out" or "stopping"."""
        if conn.state == "closed":
            return
        if why != "stopping":
            self._count(why)
        self._close(conn)

    def _close(self, conn: _Connection) -> None:
        if conn.state == "closed":
            return
        conn.state = "closed"
        if conn in self._connections:
            del self._connections[conn]
            left = self._per_source[conn.source] - 1
            if left:
                self._per_source[conn.source] = left
            else:
                del self._per_source[conn.source]
        if conn.work is not None:
            conn.work.cancelled = True
            conn.work = None  # the work's callback refers to the connection
        self._want(conn, 0)
        conn.out = None
        conn.sock.close()

    def _want(self, conn: _Connection, events: int) -> None:
        if events == conn.events:
            return
        if events == 0:
            self._selector.unregister(conn.sock)
        elif conn.events == 0:
            self._selector.register(conn.sock, events, conn)
        else:
            self._selector.modify(conn.sock, events, conn)
        conn.events = events

    def _step(self, conn: _Connection) -> None:
        """Move ``conn`` on as far as its socket allows; never blocks, never raises."""
        try:
            try:
                if conn.state == "peek":
                    self._peek(conn)
                if conn.state == "handshake":
                    self._handshake(conn)
                if conn.state == "request":
                    self._read_request(conn)
                if conn.state == "answer":
                    self._send(conn)
                if conn.state == "linger":
                    self._linger(conn)
            except self._would_block:
                self._want(conn, selectors.EVENT_READ)
            except self._wants_write:
                self._want(conn, selectors.EVENT_WRITE)
        except OSError:
            self._close(conn)  # the client went away (a reset, a TLS alert); nothing to answer
        except Exception:
            log.exception("http_connection_failed")
            self._close(conn)

    def _peek(self, conn: _Connection) -> None:
        """TLS: look at the first byte. A handshake starts with 0x16, plain HTTP with a letter."""
        first = conn.sock.recv(1, socket.MSG_PEEK)
        if not first:
            self._close(conn)  # closed before saying anything
        elif first.isalpha():
            # Said in plain HTTP, as Go's servers (and so exporter-toolkit's) say it: a scraper
            # configured with http:// learns why, instead of reading "EOF".
            self._count("tls_handshake_failures")
            log.debug("tls_handshake_failed", reason="plain HTTP")
            refused = _Response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")], PLAIN_TO_TLS)
            self._answer(conn, refused.status, _encode(refused), refused=True)
        else:
            assert self.ssl_context is not None
            self._want(conn, 0)  # the TLS socket takes the descriptor over
            conn.sock = self.ssl_context.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False)
            conn.state = "handshake"

    def _handshake(self, conn: _Connection) -> None:
        try:
            cast(Any, conn.sock).do_handshake()
        except self._handshake_waits:
            raise
        except OSError as exc:  # ssl.SSLError included
            self._count("tls_handshake_failures")
            log.debug("tls_handshake_failed", reason=getattr(exc, "reason", None) or type(exc).__name__)
            self._close(conn)
            return
        conn.state = "request"

    def _read_request(self, conn: _Connection) -> None:
        while conn.state == "request":
            data = conn.sock.recv(65536)
            if not data:
                self._close(conn)  # the client left before its request was whole
                return
            try:
                request = conn.reader.feed(data)
            except _BadRequest as bad:
                self._answer(conn, bad.status, _encode(_error_response(bad.status), head_only=bad.method == "HEAD"), refused=True)
                return
            if request is not None:
                self._respond(conn, request)

    def _respond(self, conn: _Connection, request: _Request) -> None:
        """Check the password (if basic auth is on), then run the application on a worker."""
        conn.state, conn.head_only = "busy", request.method == "HEAD"
        self._want(conn, 0)
        if self.auth is not None and self._checks is not None:
            verdict = self.auth.lookup(_header(request.headers, "authorization"))
            if isinstance(verdict, Credentials):
                conn.work = _Work(functools.partial(self.auth.verify, verdict), functools.partial(self._checked, conn, request))
                if not self._checks.submit(conn.source, conn.work):
                    conn.work = None
                    self._count("auth_throttled")
                    busy = _error_response("503 Service Unavailable", ("Retry-After", "1"))
                    self._answer(conn, busy.status, _encode(busy, head_only=conn.head_only))
                return
            if not verdict:
                self._unauthorized(conn)
                return
        self._run_app(conn, request)

    def _checked(self, conn: _Connection, request: _Request, verdict: Any, error: BaseException | None) -> None:
        conn.work = None
        if error is not None:
            self._failed(conn, error)
        elif verdict:
            self._run_app(conn, request)
        else:
            self._unauthorized(conn)
            self._resume(conn)

    def _failed(self, conn: _Connection, error: BaseException) -> None:
        """A worker's call raised (a defect, not a client's doing): said, and the connection closed."""
        log.error("http_connection_failed", error=f"{type(error).__name__}: {error}")
        self._close(conn)

    def _unauthorized(self, conn: _Connection) -> None:
        refused = _error_response("401 Unauthorized", ("WWW-Authenticate", 'Basic realm="normagent", charset="UTF-8"'))
        self._answer(conn, refused.status, _encode(refused, head_only=conn.head_only))

    def _run_app(self, conn: _Connection, request: _Request) -> None:
        conn.work = _Work(functools.partial(self._call_app, self._environ(request)), functools.partial(self._app_done, conn))
        self._app_workers.submit(conn.work)

    def _app_done(self, conn: _Connection, answer: Any, error: BaseException | None) -> None:
        conn.work = None
        if error is not None:  # _call_app answers the application's errors itself
            self._failed(conn, error)
            return
        status, data = answer
        self._answer(conn, status, data)
        self._resume(conn)

    def _answer(self, conn: _Connection, status: str, data: bytes, *, refused: bool = False) -> None:
        """Send ``data`` (then close, or linger if ``refused``), within ``request_timeout``."""
        self._count_response(status)
        conn.state, conn.out, conn.refused = "answer", memoryview(data), refused
        self._set_deadline(conn, time.monotonic() + self.request_timeout)

    def _resume(self, conn: _Connection) -> None:
        """After a worker's result: send the answer as far as the socket takes it."""
        if conn.state == "answer":
            self._step(conn)

    def _send(self, conn: _Connection) -> None:
        assert conn.out is not None
        while conn.out:
            try:
                sent = conn.sock.send(conn.out)
            except self._send_blocked:
                self._want(conn, selectors.EVENT_WRITE)  # (a TLS socket that wants to read first: _step)
                return
            conn.out = conn.out[sent:]
        conn.out = None
        if conn.refused or conn.reader.rest or _unread(conn.sock):  # a refusal, or a client that sent more (pipelined)
            self._start_linger(conn)
        else:
            self._finish(conn)

    def _start_linger(self, conn: _Connection) -> None:
        """After refusing a request that may still be arriving (a 431 for a header that goes on),
        or answering one followed by more (pipelined requests: one is answered per connection),
        read and drop what the client sends until it closes, a little while at most.

        Closing a socket with unread bytes makes the kernel reset the connection, and a reset
        throws away whatever the client had not yet read: the answer that says what was wrong.
        The answer is sent first and, without TLS, followed by our end of the stream.
        """
        if not _is_tls(conn.sock):
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
        conn.state = "linger"
        end = time.monotonic() + min(LINGER_SECONDS, self.request_timeout)
        if end < conn.deadline:
            conn.linger_quiet = True
            self._set_deadline(conn, end)

    def _linger(self, conn: _Connection) -> None:
        while conn.lingered < LINGER_BYTES:
            data = conn.sock.recv(min(LINGER_BYTES - conn.lingered, 65536))
            if not data:
                break
            conn.lingered += len(data)
        self._close(conn)  # the client closed, or kept sending: closed as it is

    def _finish(self, conn: _Connection) -> None:
        """The answer is sent: close. Over TLS, say so first (close_notify), without waiting for
        the client's own."""
        if _is_tls(conn.sock):
            self._want(conn, 0)
            try:
                plain = cast(Any, conn.sock).unwrap()  # sends close_notify; raises while the client's has not come
            except (OSError, ValueError):
                pass
            else:
                conn.sock = plain  # the TLS socket gave its descriptor back
        self._close(conn)

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




def _is_tls(sock: socket.socket) -> bool:
    """Whether ``sock`` is an ``ssl.SSLSocket`` (asked without importing ssl)."""
    return hasattr(sock, "unwrap")


def _unread(sock: socket.socket) -> bool:
    """Whether the client has sent bytes not read yet (the kernel holds them; over TLS, still
    encrypted: the base class's ``recv`` peeks under the TLS layer)."""
    try:
        return bool(socket.socket.recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # BlockingIOError: nothing waiting; anything else: the client is gone
        return False


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
