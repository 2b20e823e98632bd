"""The HTTP side: listen addresses, [web] validation, basic auth, TLS and client certificates,
clean shutdown — all against a real server on 127.0.0.1 and real clients (requests, ssl)."""

from __future__ import annotations

import base64
import gc
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from hypothesis import given
from hypothesis import strategies as st
import requests
from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app
from structlog.testing import capture_logs

from normagent import web
from tests.support.abuse import PasswordFlood, SlowHeaders
from normagent.web import BasicAuth, ListenError, TLSConfigError, WebSettings, parse_listen, start_server, validate_web
from tests.support.tools import require_tool, skip_for_host

MAKE_PKI = Path(__file__).resolve().parents[1] / "fixtures" / "tls" / "make_pki.sh"
PASSWORD = "correct horse battery staple"
LONG_OK = "p" * 72  # the longest password bcrypt can check
HASHES = {  # cost 4 keeps the suite fast; real configs use 10 or more
    "prometheus": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode(),
    "long": bcrypt.hashpw(LONG_OK.encode(), bcrypt.gensalt(4)).decode(),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, server and client certificates made by the openssl CLI for this test run."""
    require_tool("openssl", "openssl")
    out = tmp_path_factory.mktemp("pki")
    subprocess.run([str(MAKE_PKI), str(out)], check=True)
    for name in ("server.crt", "server.key", "ca.crt"):  # a copy that stopped half-way (a full disk)
        data = (out / name).read_bytes()
        (out / f"cut-{name}").write_bytes(data[: len(data) // 2])
    return out


def metrics_app() -> Callable[..., Any]:
    """A real prometheus_client WSGI app over a private registry with one gauge."""
    registry = CollectorRegistry(auto_describe=False)
    Gauge("normagent_test_value", "A value for the web tests.", registry=registry).set(42)
    return make_wsgi_app(registry)


@pytest.fixture
def serve() -> Iterator[Callable[..., web.RunningServer]]:
    """Start servers on a free port; stop them all after the test, and check no thread is left."""
    started: list[web.RunningServer] = []

    def _serve(settings: WebSettings | None = None, healthy: Callable[[], bool] = lambda: True, app: Any = None,
               **changes: Any) -> web.RunningServer:
        settings = replace(settings or WebSettings(listen="127.0.0.1:0"), **changes)
        server = start_server(settings, app or metrics_app(), healthy)
        started.append(server)
        return server

    yield _serve
    for server in started:
        server.stop()
    assert [t.name for t in threading.enumerate() if t.name.startswith("normagent-http")] == []


def wait_for(predicate: Callable[[], bool], timeout: float = 5) -> bool:
    """Poll ``predicate``: request counters are updated just after the response is sent."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def tls_settings(pki: Path, **changes: Any) -> WebSettings:
    base = WebSettings(listen="127.0.0.1:0", tls_cert_file=pki / "server.crt", tls_key_file=pki / "server.key")
    return replace(base, **changes)


def basic(user: str | bytes, password: str | bytes) -> str:
    raw = (user if isinstance(user, bytes) else user.encode()) + b":" + (password if isinstance(password, bytes) else password.encode())
    return "Basic " + base64.b64encode(raw).decode()


# ------------------------------------------------------------------------------------------------
# listen addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9824", ("127.0.0.1", 9824)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("[::1]:9824", ("::1", 9824)),
        ("[::]:9824", ("::", 9824)),
        ("[fe80::1%lo]:9824", ("fe80::1%lo", 9824)),
        ("localhost:9824", ("localhost", 9824)),
        ("metrics.clinic.example:443", ("metrics.clinic.example", 443)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_parse_listen_accepts(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9824", 'expected "host:port"'),
        (":9824", 'write "0.0.0.0:9824" or "[::]:9824"'),
        ("::1:9824", 'like "[::1]:9824"'),
        ("127.0.0.1:99999", "port must be a number from 1 to 65535"),
        ("127.0.0.1:http", "port must be a number"),
        ("127.0.0.1:\u00b2", "port must be a number"),  # a digit to isdigit, not to int: "invalid literal for int()"
        ("127.0.0.1:", "port must be a number"),
        ("[nothex]:80", "is not an IPv6 address in brackets"),
        ("[127.0.0.1]:80", "is not an IPv6 address in brackets"),
        ("bad_host!:80", "neither an IP address nor a host name"),
        ("1.2.3:80", "neither an IP address nor a host name"),
        ("300.1.1.1:80", "neither an IP address nor a host name"),
    ],
)
def test_parse_listen_rejects_with_a_hint(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=__import__("re").escape(message)):
        parse_listen(text)


# ------------------------------------------------------------------------------------------------
# validation of [web]


def test_defaults_are_valid_and_listen_on_loopback() -> None:
    settings = WebSettings()
    assert validate_web(settings) == []
    assert parse_listen(settings.listen) == ("127.0.0.1", 9824)
    assert not settings.tls and not settings.basic_auth_users


VALIDATION_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    ("full TLS with client certificates", {"tls": True, "tls_client_ca_file": "ca.crt",
                                           "client_auth_type": "RequireAndVerifyClientCert"}, []),
    ("optional client certificates", {"tls": True, "tls_client_ca_file": "ca.crt",
                                      "client_auth_type": "VerifyClientCertIfGiven"}, []),
    ("TLS 1.3 only", {"tls": True, "min_version": "TLS13"}, []),
    ("port 0", {"listen": "127.0.0.1:0"}, [("listen", "port must be a number from 1 to 65535, got 0")]),
    ("bad listen", {"listen": "localhost"}, [("listen", 'expected "host:port" like "127.0.0.1:9824" or "[::1]:9824", got "localhost"')]),
    ("cert without key", {"tls_cert_file": "server.crt"},
     [("tls_key_file", "must be set too: HTTPS needs both tls_cert_file and tls_key_file")]),
    ("key without cert", {"tls_key_file": "server.key"},
     [("tls_cert_file", "must be set too: HTTPS needs both tls_cert_file and tls_key_file")]),
    ("missing cert file", {"tls": True, "tls_cert_file": "nope.crt"}, [("tls_cert_file", "file {pki}/nope.crt does not exist")]),
    ("cert is a directory", {"tls": True, "tls_cert_file": "."}, [("tls_cert_file", "{pki} is not a file")]),
    ("key of another certificate", {"tls": True, "tls_key_file": "other.key"},
     [("tls_key_file", "{pki}/other.key is not the key of {pki}/server.crt")]),
    ("encrypted key", {"tls": True, "tls_key_file": "server-encrypted.key"},
     [("tls_key_file", "{pki}/server-encrypted.key is encrypted; give an unencrypted key (readable only by the agent)")]),
    ("certificate file holds a key", {"tls": True, "tls_cert_file": "server.key"},
     [("tls_cert_file", "{pki}/server.key holds no PEM certificate (no BEGIN CERTIFICATE block)")]),
    ("key file holds a certificate", {"tls": True, "tls_key_file": "server.crt"},
     [("tls_key_file", "{pki}/server.crt holds no PEM private key (no PRIVATE KEY block)")]),
    ("CA file holds no certificate", {"tls": True, "tls_client_ca_file": "other.key",
                                      "client_auth_type": "RequireAndVerifyClientCert"},
     [("tls_client_ca_file", "{pki}/other.key holds no PEM certificate (no BEGIN CERTIFICATE block)")]),
    ("certificate cut short", {"tls": True, "tls_cert_file": "cut-server.crt"},
     [("tls_cert_file", "{pki}/cut-server.crt is cut short: its CERTIFICATE block has no END line")]),
    ("key cut short", {"tls": True, "tls_key_file": "cut-server.key"},
     [("tls_key_file", "{pki}/cut-server.key is cut short: its PRIVATE KEY block has no END line")]),
    ("CA file cut short", {"tls": True, "tls_client_ca_file": "cut-ca.crt", "client_auth_type": "RequireAndVerifyClientCert"},
     [("tls_client_ca_file", "{pki}/cut-ca.crt is cut short: its CERTIFICATE block has no END line")]),
    ("client CA without HTTPS", {"tls_client_ca_file": "ca.crt"}, [("tls_client_ca_file", "needs HTTPS: set tls_cert_file and tls_key_file")]),
    ("client auth without HTTPS", {"client_auth_type": "RequireAndVerifyClientCert"},
     [("client_auth_type", "needs HTTPS: set tls_cert_file and tls_key_file")]),
    ("verification without a CA", {"tls": True, "client_auth_type": "RequireAndVerifyClientCert"},
     [("tls_client_ca_file", 'must be set: client_auth_type "RequireAndVerifyClientCert" verifies against it')]),
    ("CA that would be ignored", {"tls": True, "tls_client_ca_file": "ca.crt"},
     [("client_auth_type", 'is "NoClientCert", so tls_client_ca_file would not be used; set "RequireAndVerifyClientCert"')]),
    ("unverified client certificates", {"tls": True, "tls_client_ca_file": "ca.crt", "client_auth_type": "RequireAnyClientCert"},
     [("client_auth_type", f'"RequireAnyClientCert" {web.UNSUPPORTED_CLIENT_AUTH}')]),
    ("min newer than max", {"tls": True, "min_version": "TLS13", "max_version": "TLS12"},
     [("min_version", 'is newer than max_version "TLS12"'.join(['"TLS13" ', '']))]),
    ("plain password instead of a hash", {"basic_auth_users": {"prometheus": "hunter2"}},
     [("basic_auth_users.prometheus", 'expected a bcrypt hash like "$2y$10$…" (53 characters after the cost), not a password')]),
    ("bcrypt cost too low", {"basic_auth_users": {"prometheus": "$2b$03$" + HASHES["prometheus"][7:]}},
     [("basic_auth_users.prometheus", "bcrypt cost must be 4 to 17 (as htpasswd -C allows), got 3: "
       "each step doubles the time of a check, and 31 takes more than a day")]),
    ("bcrypt cost that takes a day a check", {"basic_auth_users": {"prometheus": "$2b$31$" + HASHES["prometheus"][7:]}},
     [("basic_auth_users.prometheus", "bcrypt cost must be 4 to 17 (as htpasswd -C allows), got 31: "
       "each step doubles the time of a check, and 31 takes more than a day")]),
    ("user name with a colon", {"basic_auth_users": {"a:b": HASHES["prometheus"]}},
     [("basic_auth_users.a:b", "user names must be non-empty and cannot contain ':' (basic auth splits on it)")]),
    ("htpasswd $2y$ hash", {"basic_auth_users": {"prometheus": "$2y$" + HASHES["prometheus"][4:]}}, []),
    ("limits at their bounds", {"request_timeout": timedelta(milliseconds=100), "max_connections": 4096}, []),
]


@pytest.mark.parametrize(("changes", "expected"), [c[1:] for c in VALIDATION_CASES], ids=[c[0] for c in VALIDATION_CASES])
def test_validate_web_reports_each_problem(pki: Path, changes: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    fields: dict[str, Any] = {"listen": "127.0.0.1:9824"}
    changes = dict(changes)
    if changes.pop("tls", False):
        fields.update(tls_cert_file=pki / "server.crt", tls_key_file=pki / "server.key")
    for key, value in changes.items():
        fields[key] = pki / value if key.endswith("_file") else value
    problems = validate_web(WebSettings(**fields))
    assert problems == [(key, message.format(pki=pki)) for key, message in expected]


# ------------------------------------------------------------------------------------------------
# routes


def test_metrics_healthz_and_landing_page(serve: Callable[..., web.RunningServer]) -> None:
    server = serve()
    metrics = requests.get(f"{server.url}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert "normagent_test_value 42.0" in metrics.text
    assert requests.get(f"{server.url}/healthz", timeout=5).text == "ok\n"
    assert 'href="metrics"' in requests.get(f"{server.url}/", timeout=5).text
    assert requests.get(f"{server.url}/metrics/extra", timeout=5).status_code == 404
    assert requests.post(f"{server.url}/healthz", timeout=5).status_code == 405
    assert requests.head(f"{server.url}/healthz", timeout=5).status_code == 200


def test_healthz_is_503_when_unhealthy_or_when_the_check_raises(serve: Callable[..., web.RunningServer]) -> None:
    def broken() -> bool:
        raise RuntimeError("scheduler gone")

    assert requests.get(f"{serve(healthy=lambda: False).url}/healthz", timeout=5).status_code == 503
    server = serve(healthy=broken)
    with capture_logs() as logs:
        response = requests.get(f"{server.url}/healthz", timeout=5)
    assert (response.status_code, response.text) == (503, "unhealthy\n")
    assert [entry["event"] for entry in logs] == ["health_check_failed"]


def test_an_application_error_is_a_logged_500_and_the_server_keeps_serving(serve: Callable[..., web.RunningServer]) -> None:
    def failing(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        raise RuntimeError("boom")

    server = serve(app=failing)
    with capture_logs() as logs:
        assert requests.get(f"{server.url}/metrics", timeout=5).status_code == 500
    assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
    assert any(entry["event"] == "http_request_failed" and entry["log_level"] == "error" for entry in logs)
    assert wait_for(lambda: (server.stats().requests, server.stats().errors) == (2, 1)), server.stats()
    with capture_logs():
        head = requests.head(f"{server.url}/metrics", timeout=5)
    assert (head.status_code, head.content) == (500, b"")
    with socket.create_connection((server.host, server.port), timeout=5) as conn, capture_logs():
        conn.sendall(b"HEAD /metrics HTTP/1.1\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 500 ") and answer.endswith(b"\r\n\r\n"), answer  # no body after the head


def test_ipv6_loopback(serve: Callable[..., web.RunningServer]) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        skip_for_host("no IPv6 loopback")
    server = serve(listen="[::1]:0")
    assert server.address.startswith("[::1]:")
    assert requests.get(f"{server.url}/healthz", timeout=5).text == "ok\n"


def test_address_in_use_is_a_listen_error(serve: Callable[..., web.RunningServer]) -> None:
    first = serve()
    with pytest.raises(ListenError, match=f"cannot listen on {first.address}: Address already in use") as err:
        serve(listen=first.address)
    assert err.value.exit_code == 69


def test_a_handed_over_listener_never_frees_the_port_and_serves_who_waited() -> None:
    """A reload on the same address (issue: SIGHUP could fail to listen again): the next server
    takes the old one's socket; meanwhile nobody else can bind the port, and a scraper that
    connects between the two servers is answered by the new one, not refused."""
    old = start_server(WebSettings(listen="127.0.0.1:0"), metrics_app(), lambda: True)
    listener = old.hand_over()
    new: web.RunningServer | None = None
    try:
        waiting = socket.create_connection((old.host, old.port), timeout=5)  # no server runs now
        waiting.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with socket.socket() as other:  # another process, even one that asks for SO_REUSEADDR
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError, match="Address already in use"):
                other.bind((old.host, old.port))
        new = start_server(WebSettings(listen=old.address, basic_auth_users=HASHES), metrics_app(), lambda: True,
                           listener=listener)
        with waiting:
            assert waiting.makefile("rb").readline().split()[1] == b"401"
        assert new.address == old.address
        assert requests.get(f"{new.url}/metrics", auth=("prometheus", PASSWORD), timeout=5).status_code == 200
    finally:
        (new.stop() if new is not None else listener.close())
    assert listener.fileno() == -1  # stopping the new server closed it
    with pytest.raises(RuntimeError, match="has stopped"):
        old.hand_over()


# ------------------------------------------------------------------------------------------------
# basic auth


@pytest.fixture
def auth_server(serve: Callable[..., web.RunningServer]) -> web.RunningServer:
    return serve(basic_auth_users=HASHES)


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (basic("prometheus", PASSWORD), 200),
        (basic("long", LONG_OK), 200),  # 72 bytes: the most bcrypt checks
        (basic("prometheus", "wrong"), 401),
        (basic("nobody", PASSWORD), 401),
        (basic("long", LONG_OK + "p"), 401),  # 73 bytes: bcrypt 5 raises; must be 401, not 500
        (basic("prometheus", "x" * 10_000), 401),
        (basic("prometheus", ""), 401),
        (basic("", PASSWORD), 401),
        (basic(b"\xff\xfe", PASSWORD), 401),  # user name that is not UTF-8
        (None, 401),
        ("Basic", 401),
        ("Basic !!!not-base64!!!", 401),
        ("Basic " + base64.b64encode(b"no-colon-here").decode(), 401),
        ("Bearer " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode(), 401),
        ("basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode(), 200),  # scheme is case-insensitive
    ],
    ids=["right", "72-bytes", "wrong-password", "unknown-user", "73-bytes", "10k-bytes", "empty-password", "empty-user",
         "non-utf8-user", "no-header", "no-credentials", "bad-base64", "no-colon", "other-scheme", "lowercase-scheme"],
)
def test_basic_auth(auth_server: web.RunningServer, authorization: str | None, status: int) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = requests.get(f"{auth_server.url}/metrics", headers=headers, timeout=5)
    assert response.status_code == status
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
        assert "normagent_test_value" not in response.text
    else:
        assert "normagent_test_value 42.0" in response.text


def test_basic_auth_protects_every_path_and_counts_refusals(auth_server: web.RunningServer) -> None:
    for path in ("/healthz", "/", "/metrics"):
        assert requests.get(f"{auth_server.url}{path}", timeout=5).status_code == 401
    assert requests.get(f"{auth_server.url}/healthz", auth=("prometheus", PASSWORD), timeout=5).text == "ok\n"
    assert wait_for(lambda: (auth_server.stats().requests, auth_server.stats().unauthorized) == (4, 3)), auth_server.stats()


def test_a_verdict_is_remembered_so_a_repeated_scrape_needs_no_bcrypt() -> None:
    """Right and wrong passwords alike: the second time, ``lookup`` decides without bcrypt."""
    auth = BasicAuth(HASHES)
    for header, verdict in ((basic("prometheus", PASSWORD), True), (basic("prometheus", "wrong"), False),
                            (basic("nobody", PASSWORD), False)):
        first = auth.lookup(header)
        assert isinstance(first, web.Credentials)  # needs bcrypt
        assert auth.verify(first) is verdict
        assert auth.lookup(header) is verdict  # decided from the cache


def test_a_failed_check_is_not_cached_as_success() -> None:
    auth = BasicAuth(HASHES)
    assert not auth.check(basic("prometheus", "wrong"))
    assert not auth.check(basic("prometheus", "wrong"))
    assert auth.check(basic("prometheus", PASSWORD))
    assert not auth.check(basic("prometheus", "wrong"))


def test_the_cache_forgets_the_least_recently_used_verdicts() -> None:
    auth = BasicAuth(HASHES, cache_size=2)
    for n in range(3):
        auth.check(basic("prometheus", f"wrong {n}"))
    assert isinstance(auth.lookup(basic("prometheus", "wrong 0")), web.Credentials)
    assert auth.lookup(basic("prometheus", "wrong 2")) is False


def test_an_unknown_user_costs_a_bcrypt_check_like_a_known_one() -> None:
    """Timing must not tell which user names exist (exporter-toolkit checks a dummy hash of the same cost)."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(6)).decode()
    auth = BasicAuth({"prometheus": hashed})
    known, unknown = auth.lookup(basic("prometheus", "wrong")), auth.lookup(basic("nobody", "wrong"))
    assert isinstance(known, web.Credentials) and isinstance(unknown, web.Credentials)
    assert (known.known, unknown.known) == (True, False)
    assert unknown.hashed != known.hashed and unknown.hashed[:7] == known.hashed[:7] == b"$2b$06$"
    assert not auth.verify(unknown) and not auth.verify(known)


# ------------------------------------------------------------------------------------------------
# TLS


def test_https_with_a_verified_certificate(serve: Callable[..., web.RunningServer], pki: Path) -> None:
    server = serve(tls_settings(pki))
    assert server.url.startswith("https://127.0.0.1:")
    response = requests.get(f"{server.url}/metrics", verify=pki / "ca.crt", timeout=5)
    assert response.status_code == 200 and "normagent_test_value" in response.text
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{server.url}/metrics", timeout=5)  # system CAs do not know our test CA


def test_tls_and_basic_auth_together(serve: Callable[..., web.RunningServer], pki: Path) -> None:
    server = serve(tls_settings(pki, basic_auth_users=HASHES))
    ca = pki / "ca.crt"
    assert requests.get(f"{server.url}/metrics", auth=("prometheus", PASSWORD), verify=ca, timeout=5).status_code == 200
    assert requests.get(f"{server.url}/metrics", auth=("prometheus", "wrong"), verify=ca, timeout=5).status_code == 401


def test_plain_http_to_the_tls_port_is_told_to_use_https_and_counted(
    serve: Callable[..., web.RunningServer], pki: Path
) -> None:
    """As Go's servers answer it (so a Prometheus job with the wrong scheme shows why, not "EOF")."""
    server = serve(tls_settings(pki))
    answer = requests.get(f"http://{server.address}/metrics", timeout=5)
    assert (answer.status_code, answer.text) == (400, "Client sent an HTTP request to an HTTPS server.\n")
    assert requests.get(f"{server.url}/healthz", verify=pki / "ca.crt", timeout=5).status_code == 200
    assert wait_for(lambda: server.stats().tls_handshake_failures == 1), server.stats()


def test_min_version_tls13_refuses_a_tls12_client(serve: Callable[..., web.RunningServer], pki: Path) -> None:
    server = serve(tls_settings(pki, min_version="TLS13"))
    client = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((server.host, server.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            client.wrap_socket(raw, server_hostname="127.0.0.1")
    client.maximum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection((server.host, server.port), timeout=5) as raw:
        with client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() == "TLSv1.3"


CLIENT_CERT_CASES = [
    ("RequireAndVerifyClientCert", "client", True),
    ("RequireAndVerifyClientCert", None, False),
    ("RequireAndVerifyClientCert", "rogue", False),
    ("VerifyClientCertIfGiven", "client", True),
    ("VerifyClientCertIfGiven", None, True),
    ("VerifyClientCertIfGiven", "rogue", False),
]


@pytest.mark.parametrize(("policy", "cert", "allowed"), CLIENT_CERT_CASES, ids=[f"{p}-{c}" for p, c, _ in CLIENT_CERT_CASES])
def test_client_certificates(
    serve: Callable[..., web.RunningServer], pki: Path, policy: str, cert: str | None, allowed: bool
) -> None:
    server = serve(tls_settings(pki, tls_client_ca_file=pki / "ca.crt", client_auth_type=policy))
    client_cert = (str(pki / f"{cert}.crt"), str(pki / f"{cert}.key")) if cert else None

    def get() -> requests.Response:
        return requests.get(f"{server.url}/metrics", verify=pki / "ca.crt", cert=client_cert, timeout=5)

    if allowed:
        assert get().status_code == 200
        assert server.stats().tls_handshake_failures == 0
        return
    # Refused in the TLS handshake, by the server: the client sees the connection end (under TLS 1.3
    # its side of the handshake is done before the server checks the certificate, so it may see a
    # plain disconnect rather than an SSL error), never a timeout, and the server counts exactly
    # this one failed handshake and no request: that is what proves the cause.
    with pytest.raises(requests.exceptions.ConnectionError) as refused:
        get()
    assert not isinstance(refused.value, requests.exceptions.ConnectTimeout)
    assert wait_for(lambda: server.stats().tls_handshake_failures == 1), server.stats()
    assert server.stats().requests == 0


@pytest.mark.parametrize(
    ("changes", "key"),
    [({"tls_key_file": "other.key"}, "tls_key_file"), ({"tls_key_file": "server-encrypted.key"}, "tls_key_file"),
     ({"tls_cert_file": "missing.crt"}, "tls_cert_file")],
)
def test_start_server_refuses_unusable_tls_files(pki: Path, changes: dict[str, str], key: str) -> None:
    settings = tls_settings(pki, **{k: pki / v for k, v in changes.items()})
    with pytest.raises(TLSConfigError) as err:
        start_server(settings, metrics_app(), lambda: True)
    assert err.value.key == key and err.value.exit_code == 78
    assert [t.name for t in threading.enumerate() if t.name.startswith("normagent-http")] == []


# ------------------------------------------------------------------------------------------------
# connections and shutdown


def open_connections(server: web.RunningServer) -> int:
    return server.stats().open_connections


def closed_by_server(conn: socket.socket, timeout: float = 5) -> bool:
    """Whether the server has closed ``conn`` (EOF or reset) within ``timeout``, draining any answer."""
    conn.settimeout(timeout)
    try:
        while conn.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def test_a_client_that_sends_nothing_does_not_stall_scrapes(serve: Callable[..., web.RunningServer], pki: Path) -> None:
    """prometheus_client's server handshakes in its accept loop; ours does it per connection."""
    server = serve(tls_settings(pki))
    with socket.create_connection((server.host, server.port), timeout=5):
        response = requests.get(f"{server.url}/healthz", verify=pki / "ca.crt", timeout=5)
        assert response.status_code == 200


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_stop_ends_idle_connections_and_leaves_no_thread(pki: Path, tls: bool) -> None:
    settings = tls_settings(pki) if tls else WebSettings(listen="127.0.0.1:0")
    server = start_server(settings, metrics_app(), lambda: True)
    idle = [socket.create_connection((server.host, server.port), timeout=5) for _ in range(3)]
    try:
        assert wait_for(lambda: open_connections(server) == 3), server.stats()
        server.stop()
        assert [t.name for t in threading.enumerate() if t.name.startswith("normagent-http")] == []
        assert all(closed_by_server(conn) for conn in idle)
        server.stop()  # a second stop is harmless
        with pytest.raises(OSError):
            socket.create_connection((server.host, server.port), timeout=1).close()
    finally:
        for conn in idle:
            conn.close()


def test_a_request_sent_a_line_at_a_time_is_cut_off_at_the_whole_request_deadline(
    serve: Callable[..., web.RunningServer],
) -> None:
    """A per-read timeout never ends a client that sends a header line every few seconds; the deadline does."""
    server = serve(request_timeout=timedelta(milliseconds=300))
    with socket.create_connection((server.host, server.port), timeout=5) as slow:
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")
        ended = threading.Event()
        sent = 0
        while not ended.wait(0.02):  # a header line every 20 ms, much faster than any per-read timeout
            try:
                slow.sendall(b"X-Slow: %d\r\n" % sent)
            except OSError:
                break
            sent += 1
            if sent > 1000:
                pytest.fail("the server never cut off a request that did not end")
        assert closed_by_server(slow)
    assert wait_for(lambda: server.stats().timed_out == 1), server.stats()
    assert server.stats().requests == 0


def test_clients_cut_off_are_reported_in_the_log_once_a_period_without_addresses(
    serve: Callable[..., web.RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web, "REPORT_EVERY", 0.05)
    with capture_logs() as logs:
        server = serve(request_timeout=timedelta(milliseconds=100))
        with socket.create_connection((server.host, server.port), timeout=5) as silent:
            assert closed_by_server(silent)
        assert wait_for(lambda: any(e["event"] == "http_clients_cut_off" for e in list(logs)))
    report = next(e for e in logs if e["event"] == "http_clients_cut_off")
    assert report["timed_out"] == 1 and report["log_level"] == "warning"
    assert "127.0.0.1" not in repr(report)


def test_a_full_server_makes_room_by_closing_the_oldest_unfinished_connection(
    serve: Callable[..., web.RunningServer],
) -> None:
    server = serve(max_connections=4)
    idle = [socket.create_connection((server.host, server.port), timeout=5) for _ in range(4)]
    try:
        assert wait_for(lambda: open_connections(server) == 4), server.stats()
        response = requests.get(f"{server.url}/healthz", timeout=5)  # a fifth connection
        assert response.status_code == 200
        assert closed_by_server(idle[0])  # the oldest went
        assert not closed_by_server(idle[1], timeout=0.05)
        assert wait_for(lambda: server.stats().evicted == 1), server.stats()
    finally:
        for conn in idle:
            conn.close()


def test_room_is_made_at_the_busiest_address_not_at_the_oldest_connection(serve: Callable[..., web.RunningServer]) -> None:
    server = serve(max_connections=4)
    lone = socket.create_connection((server.host, server.port), timeout=5, source_address=("127.0.0.1", 0))
    crowd = [socket.create_connection((server.host, server.port), timeout=5, source_address=("127.0.0.2", 0)) for _ in range(3)]
    try:
        assert wait_for(lambda: open_connections(server) == 4), server.stats()
        newcomer = socket.create_connection((server.host, server.port), timeout=5, source_address=("127.0.0.3", 0))
        assert closed_by_server(crowd[0])  # the oldest of the address with three
        assert not closed_by_server(lone, timeout=0.05)  # older, but alone at its address
        newcomer.close()
    finally:
        for conn in (lone, *crowd):
            conn.close()


def test_max_connections_is_lowered_to_half_the_open_files_limit(serve: Callable[..., web.RunningServer]) -> None:
    """Connections beyond the descriptor limit would fail accept() instead of making room."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        with capture_logs() as logs:
            serve(max_connections=4096)
            serve(max_connections=128)  # fits: nothing said
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    lowered = [e for e in logs if e["event"] == "http_max_connections_lowered"]
    assert [(e["configured"], e["effective"], e["log_level"]) for e in lowered] == [(4096, 128, "warning")]


def test_a_full_server_closes_new_connections_when_every_one_is_being_served(
    serve: Callable[..., web.RunningServer],
) -> None:
    """Requests with the application are never evicted: a new connection is refused instead, and counted."""
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        entered.release()
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done\n"]

    server = serve(app=slow_app, max_connections=2)
    results: list[int] = []

    def scrape() -> None:
        results.append(requests.get(f"{server.url}/metrics", timeout=10).status_code)

    scrapers = [threading.Thread(target=scrape) for _ in range(2)]
    for thread in scrapers:
        thread.start()
    try:
        assert entered.acquire(timeout=5) and entered.acquire(timeout=5)
        with socket.create_connection((server.host, server.port), timeout=5) as extra:
            assert closed_by_server(extra)
        assert server.stats().rejected_busy == 1
    finally:
        release.set()
        for thread in scrapers:
            thread.join(10)
    assert results == [200, 200]


def scrapes(url: str, count: int, **kwargs: Any) -> list[int | str]:
    """``count`` scrapes one after another, each given 5 s (Prometheus gives 10): status or error."""
    outcomes: list[int | str] = []
    for _ in range(count):
        try:
            outcomes.append(requests.get(f"{url}/metrics", timeout=5, **kwargs).status_code)
        except requests.RequestException as exc:
            outcomes.append(type(exc).__name__)
    return outcomes


def test_slow_header_clients_beyond_the_old_slot_count_do_not_starve_scrapes(serve: Callable[..., web.RunningServer]) -> None:
    """Issue 9 item 15: 64 connections sending a header line now and then left 0 of 76 scrapes answered."""
    server = serve()
    with SlowHeaders(server, clients=80):
        assert scrapes(server.url, 20) == [200] * 20


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_slow_clients_filling_every_place_do_not_starve_scrapes(
    serve: Callable[..., web.RunningServer], pki: Path, tls: bool
) -> None:
    """More attackers than places, reconnecting the moment they are closed (over HTTPS: handshakes
    that never end): room is made by closing the attackers' connections, never the scraper's."""
    settings = tls_settings(pki) if tls else WebSettings(listen="127.0.0.1:0")
    server = serve(settings, max_connections=16, request_timeout=timedelta(milliseconds=500))
    with SlowHeaders(server, clients=40, every=0.05, tls=tls, source="127.0.0.2") as attack:
        assert scrapes(server.url, 20, verify=pki / "ca.crt") == [200] * 20
        assert wait_for(lambda: attack.cut >= 40), (attack.cut, server.stats())
    stats = server.stats()
    assert stats.evicted > 0 and stats.requests >= 20, stats


def test_slow_clients_from_the_scrapers_own_address_make_room_for_it(serve: Callable[..., web.RunningServer]) -> None:
    """The same attack from the scraper's own address: the oldest unfinished connection goes, and a
    scraper that sends its request at once is answered before it would be the oldest."""
    server = serve(max_connections=32, request_timeout=timedelta(milliseconds=500))
    with SlowHeaders(server, clients=80, every=0.05) as attack:
        assert scrapes(server.url, 20) == [200] * 20
        assert wait_for(lambda: attack.cut >= 80), (attack.cut, server.stats())
    assert server.stats().evicted > 0, server.stats()


def test_wrong_password_flood_does_not_starve_a_scraper_checked_before(serve: Callable[..., web.RunningServer]) -> None:
    """Issue 9 item 15: 100 clients with wrong passwords left no scrape answered (bcrypt checks in one line)."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    server = serve(basic_auth_users={"prometheus": hashed})
    assert scrapes(server.url, 1, auth=("prometheus", PASSWORD)) == [200]
    with PasswordFlood(server, clients=100) as flood:
        assert wait_for(lambda: len(flood.statuses) > 100, timeout=30)
        assert scrapes(server.url, 20, auth=("prometheus", PASSWORD)) == [200] * 20
    assert set(flood.statuses) <= {401, 503}, sorted(set(flood.statuses))
    assert 401 in flood.statuses and server.stats().auth_throttled > 0, server.stats()


def test_wrong_password_flood_from_another_address_does_not_starve_a_new_scraper(
    serve: Callable[..., web.RunningServer],
) -> None:
    """A scraper whose password was never checked waits for its turn, not behind the whole flood."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    server = serve(basic_auth_users={"prometheus": hashed})
    with PasswordFlood(server, clients=100, source="127.0.0.2") as flood:
        assert wait_for(lambda: len(flood.statuses) > 100, timeout=30)
        assert scrapes(server.url, 5, auth=("prometheus", PASSWORD)) == [200] * 5
        assert scrapes(server.url, 1, auth=("prometheus", "wrong")) == [401]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /healthz HTTP/1.0\r\n\r\n", 200),
        (b"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200),  # one empty line first is allowed
        (b"GET /healthz HTTP/1.1\nHost: x\n\n", 200),  # bare LF line ends
        (b"HEAD /healthz HTTP/1.1\r\n\r\n", 200),
        (b"POST /healthz HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 405),
        (b"GET /healthz\r\n\r\n", 400),  # HTTP/0.9
        (b"GET  /healthz HTTP/1.1\r\n\r\n", 400),
        (b"GET /healthz HTTP/2.0\r\n\r\n", 505),
        (b"GET /healthz HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nX-A: 1\rX-B: 2\r\n\r\n", 400),  # a bare CR inside a value
        (b"GET /healthz HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nX-A: a\tb \xff\r\n\r\n", 200),  # HTAB and obs-text are allowed
        (b"GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"GET /healthz HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /healthz HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"POST /healthz HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", 413),  # past int()'s 4,300 digits
        (b"POST /healthz HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", 400),  # "²" (latin-1): a digit to isdigit
        (b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", 431),
        # The answer to a HEAD has no body, refused or not (RFC 9110 9.3.2).
        (b"HEAD /nothing-here HTTP/1.1\r\n\r\n", 404),
        (b"HEAD /healthz HTTP/2.0\r\n\r\n", 505),
        (b"HEAD /healthz HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"HEAD /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"HEAD /healthz HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", 431),
    ],
    ids=["http10", "leading-empty-line", "bare-lf", "head", "post-with-body", "http09", "double-space", "http2",
         "header-without-colon", "obsolete-folding", "bare-cr-in-value", "nul-in-value", "tab-and-obs-text", "two-lengths", "negative-length", "huge-body", "length-of-5000-digits", "superscript-length", "chunked",
         "long-target", "long-header", "too-many-headers",
         "head-not-found", "head-http2", "head-header-without-colon", "head-chunked", "head-too-many-headers"],
)
def test_raw_requests_are_answered_or_refused_with_the_right_status(
    serve: Callable[..., web.RunningServer], request_bytes: bytes, status: int
) -> None:
    server = serve()
    with socket.create_connection((server.host, server.port), timeout=5) as conn:
        conn.sendall(request_bytes)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == str(status).encode(), answer[:200]
    assert b"Connection: close" in head
    if request_bytes.startswith(b"HEAD"):
        assert body == b""


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 300_000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"POST /healthz HTTP/1.1\r\nContent-Length: 300000\r\n\r\n" + b"x" * 300_000, 413),
        (b"NOT HTTP\r\n" + b"\x16\x03\x01" * 100_000, 400),
        (b"GET /healthz HTTP/1.1\r\n\r\n" * 20_000, 200),  # pipelined: one is answered, the rest dropped
    ],
    ids=["long-header", "long-target", "huge-body", "garbage", "pipelined"],
)
def test_an_answer_reaches_a_client_still_sending_and_the_connection_ends_cleanly(
    serve: Callable[..., web.RunningServer], request_bytes: bytes, status: int
) -> None:
    """The answer is refused before the request has all arrived. Closing with the rest unread
    would reset the connection, and a reset discards the answer if the client has not read it yet
    (on a real network it often has not): the rest is read and dropped first, then the end is clean."""
    server = serve()
    with socket.create_connection((server.host, server.port), timeout=5) as conn:

        def send() -> None:
            conn.sendall(request_bytes)
            conn.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
            ended = "cleanly"
        except ConnectionResetError:
            ended = "reset"
        sender.join()
    assert answer.split(b" ", 2)[1] == str(status).encode(), answer[:200]
    assert ended == "cleanly"


def test_ended_connections_are_freed_even_when_the_garbage_collector_runs_rarely(
    serve: Callable[..., web.RunningServer],
) -> None:
    """The agent raises gc thresholds, so a connection kept alive by a reference cycle would pile up
    (asyncio's transports did, a kilobyte a scrape) until a collection came: an ended connection
    must be freed by its reference count alone, answered, refused or cut off."""
    server = serve(request_timeout=timedelta(seconds=5))
    count = 300
    thresholds = gc.get_threshold()
    gc.collect()
    gc.disable()
    try:
        for i in range(count):
            with socket.create_connection((server.host, server.port), timeout=5) as conn:
                conn.sendall(b"GET /healthz HTTP/1.0\r\n\r\n" if i % 3 else b"GET /x HTTP/3.0\r\n\r\n")
                assert closed_by_server(conn)
        assert wait_for(lambda: server.stats().requests == count and server.stats().open_connections == 0)
        alive = sum(isinstance(o, web._Connection) for o in gc.get_objects())
    finally:
        gc.enable()
        gc.set_threshold(*thresholds)
    assert alive == 0, alive


@given(st.data())
def test_a_request_split_anywhere_reads_as_it_does_whole(data: st.DataObject) -> None:
    """The reader looks at each byte once, however the client splits its request: any split of
    the same bytes gives the same request, or the same refusal, as the bytes given at once."""
    raw = data.draw(st.sampled_from(SPLIT_REQUESTS))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))

    def outcome(chunks: list[bytes]) -> object:
        """The request and the bytes after it (received or not yet), or the refusal."""
        reader = web._RequestReader()
        fed = 0
        try:
            for chunk in chunks:
                fed += len(chunk)
                request = reader.feed(chunk)
                if request is not None:
                    return (request, reader.rest + len(raw) - fed)
        except web._BadRequest as bad:
            return (bad.status, bad.method)
        return None

    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
    assert outcome(pieces) == outcome([raw])


SPLIT_REQUESTS = [
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n",
    b"\r\nGET /healthz HTTP/1.0\n\n",
    b"POST /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n",  # a body, then pipelined
    b"GET /healthz HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
    b"HEAD /x HTTP/2.0\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
]


def test_running_out_of_file_descriptors_pauses_accepting_is_said_once_and_recovers(
    serve: Callable[..., web.RunningServer],
) -> None:
    """accept() failing with EMFILE leaves the listening socket readable: the server waits a little
    instead of spinning, says so once a spell, and serves again when descriptors are free."""
    import resource

    server = serve()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    waiting = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(10)]  # made before the limit
    with capture_logs() as logs:
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 2, hard))
        try:
            for conn in waiting:  # connected by the kernel's backlog; the server can accept two
                conn.connect((server.host, server.port))
            assert wait_for(lambda: any(e["event"] == "http_accept_failed" for e in list(logs)))
            time.sleep(0.5)  # five back-offs
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for conn in waiting:
            conn.close()
        assert scrapes(server.url, 3) == [200] * 3
    failed = [e for e in logs if e["event"] == "http_accept_failed"]
    assert len(failed) == 1 and failed[0]["log_level"] == "warning", failed


def test_restart_on_the_same_port_right_after_stop(serve: Callable[..., web.RunningServer]) -> None:
    """A reload that changes [web] stops the old server and starts the new one on the same address."""
    first = serve()
    assert requests.get(f"{first.url}/healthz", timeout=5).status_code == 200
    address = first.address
    first.stop()
    second = serve(listen=address)
    assert requests.get(f"{second.url}/healthz", timeout=5).status_code == 200


@given(st.floats(min_value=0, max_value=2**37, allow_nan=False))
def test_the_date_header_is_what_the_email_package_writes(when: float) -> None:
    from email.utils import formatdate

    from normagent.web import http_date

    assert http_date(when) == formatdate(when, usegmt=True)
