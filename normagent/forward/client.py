"""What the HTTP forwarders (webhook, Alertmanager) share: settings for URL, TLS and a bearer
token, their checks, a reachability probe for ``check-config``, and one POST that turns every way
of failing into a ``DeliveryFailed`` with a closed-set result.

requests is imported when a forwarder first sends, never by the idle agent (it costs some 6 MB).

Imports only model and the standard library (requests lazily).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from normagent.model import DeliveryFailed


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


class _Encrypted(Exception):
    pass


def _no_password() -> bytes:
    raise _Encrypted  # OpenSSL would otherwise prompt on the terminal


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)


def read_secret(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


def bearer(settings: HttpSettings) -> str:
    if settings.bearer_token_file is not None:
        return read_secret(settings.bearer_token_file)
    return settings.bearer_token


def probe(settings: HttpSettings, timeout: float = 5.0) -> list[tuple[str, str]]:
    """Can the server be reached now? A TCP connection, and for https:// a TLS handshake that
    verifies the server's certificate as deliveries will (``check-config`` only)."""
    parts = urlsplit(settings.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    limit = min(timeout, settings.timeout.total_seconds())
    try:
        with socket.create_connection((host, port), timeout=limit) as sock:
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


class Client:
    """One HTTP(S) connection pool of requests for one forwarder sender: its transport adapter,
    the TLS files, nothing else.

    Requests go straight to the adapter (``HTTPAdapter.send``): a ``Session`` would merge
    environment settings, cookies and redirects into each of them, none of which a forwarder wants
    (a proxy from the environment must not carry deviation candidates elsewhere), at twice the CPU
    per delivery (measured in bench/bench_outbox.py).
    """

    def __init__(self, settings: HttpSettings) -> None:
        from requests.adapters import HTTPAdapter

        self.adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1)
        self.verify: bool | str = str(settings.ca_file) if settings.ca_file is not None else True
        self.cert = (str(settings.client_cert_file), str(settings.client_key_file)) if settings.client_cert_file and settings.client_key_file else None
        self._templates: dict[str, Any] = {}

    def request(self, url: str, body: bytes, headers: dict[str, str]) -> Any:
        """A prepared POST of ``body`` to ``url``: a copy of one prepared once per URL (preparing
        parses and re-quotes the URL each time, a fifth of a delivery's CPU)."""
        import requests

        template = self._templates.get(url)
        if template is None:
            template = requests.PreparedRequest()
            template.prepare(method="POST", url=url, headers={}, data=b"")
            self._templates[url] = template
        request = template.copy()
        request.headers.update(headers)
        request.headers["Content-Length"] = str(len(body))
        request.body = body
        return request

    def close(self) -> None:
        self.adapter.close()


def session(settings: HttpSettings) -> Client:
    """A client with the settings' TLS files (its connection is kept between deliveries)."""
    return Client(settings)


def post(client: Client, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any:
    """POST ``body``; a 2xx answer is returned, anything else raises ``DeliveryFailed``."""
    import requests

    try:
        response = client.adapter.send(client.request(url, body, headers), timeout=timeout, verify=client.verify, cert=client.cert)
        content = response.content  # read to the end: the connection goes back to the pool for the next one
    except requests.exceptions.SSLError as exc:
        raise DeliveryFailed("tls_error", f"TLS with {url} failed: {_short(exc)}") from None
    except requests.exceptions.Timeout:
        raise DeliveryFailed("timeout", f"{url} did not answer within {timeout:g}s") from None
    except requests.exceptions.ConnectionError as exc:
        raise DeliveryFailed("unreachable", f"cannot reach {url}: {_short(exc)}") from None
    except requests.exceptions.RequestException as exc:
        raise DeliveryFailed("error", f"{url}: {_short(exc)}") from None
    if 200 <= response.status_code < 300:
        return response
    # Decoded here only: requests' .text would guess the charset of every 2xx answer (costly).
    detail = content[:200].decode("utf-8", "replace").strip().replace("\n", " ")
    raise DeliveryFailed("http_error", f"{url} answered HTTP {response.status_code}{': ' + detail if detail else ''}")


def _short(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    return text[:200]
