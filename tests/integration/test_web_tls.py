"""HTTPS, client certificates and basic auth on a real ``normagent run``, with real clients.

Prometheus (Go's TLS stack) scrapes through ``tls_config`` and ``basic_auth`` exactly as an operator
configures it; ``requests`` (OpenSSL) checks the refusals. Certificates come from a CA the openssl
CLI makes for the test run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest
import requests

from tests.integration.conftest import Agent, Prometheus, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER, PASSWORD = "prometheus", "a long scrape password, not a real one"
BOOT_TIME_SAMPLE = re.compile(r"^normagent_boot_time_seconds [0-9.e+]+$", re.M)


@pytest.fixture
def secure_agent(start_agent: Callable[..., Agent], pki: Path) -> Agent:
    """The agent on HTTPS, demanding a client certificate from our CA and a bcrypt-checked password."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    return start_agent(
        web={
            "tls_cert_file": pki / "server.crt",
            "tls_key_file": pki / "server.key",
            "tls_client_ca_file": pki / "ca.crt",
            "client_auth_type": "RequireAndVerifyClientCert",
            "basic_auth_users": {USER: hashed},
        },
        collectors={"system.host": {"interval": "1s"}},
        request_args={
            "verify": str(pki / "ca.crt"),
            "cert": (str(pki / "client.crt"), str(pki / "client.key")),
            "auth": (USER, PASSWORD),
        },
    )


def test_prometheus_scrapes_over_tls_with_client_certificate_and_basic_auth(
    secure_agent: Agent, start_prometheus: Callable[..., Prometheus], pki: Path, tmp_path: Path
) -> None:
    password_file = tmp_path / "scrape-password"
    password_file.write_text(PASSWORD)
    prometheus = start_prometheus(
        {
            "job_name": "normagent",
            "scheme": "https",
            "tls_config": {
                "ca_file": str(pki / "ca.crt"),
                "cert_file": str(pki / "client.crt"),
                "key_file": str(pki / "client.key"),
            },
            "basic_auth": {"username": USER, "password_file": str(password_file)},
            "static_configs": [{"targets": [secure_agent.address]}],
        }
    )
    target = wait_until(
        "the HTTPS target to be up",
        lambda: next((t for t in prometheus.targets() if t["health"] == "up"), None),
        process=secure_agent.process,
    )
    assert target["scrapeUrl"] == f"https://{secure_agent.address}/metrics"
    series = wait_until(
        "normagent_boot_time_seconds scraped over HTTPS",
        lambda: prometheus.query('normagent_boot_time_seconds{job="normagent"}'),
        process=secure_agent.process,
    )
    assert float(series[0]["value"][1]) > 0


def test_prometheus_with_the_wrong_password_sees_401(
    secure_agent: Agent, start_prometheus: Callable[..., Prometheus], pki: Path
) -> None:
    prometheus = start_prometheus(
        {
            "job_name": "normagent",
            "scheme": "https",
            "tls_config": {"ca_file": str(pki / "ca.crt"), "cert_file": str(pki / "client.crt"), "key_file": str(pki / "client.key")},
            "basic_auth": {"username": USER, "password": "wrong"},
            "static_configs": [{"targets": [secure_agent.address]}],
        }
    )
    target = wait_until(
        "the target to be down", lambda: next((t for t in prometheus.targets() if t["health"] == "down"), None)
    )
    assert "401" in target["lastError"]


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({}, 200),
        ({"auth": (USER, "wrong")}, 401),
        ({"auth": ("nobody", PASSWORD)}, 401),
        ({"auth": (USER, "p" * 73)}, 401),  # longer than bcrypt can check: 401, never 500
        ({"auth": None}, 401),
    ],
    ids=["right-password", "wrong-password", "unknown-user", "73-byte-password", "no-password"],
)
def test_requests_client_passwords(secure_agent: Agent, changes: dict[str, object], status: int) -> None:
    # The right client first waits for a sample (not only its # HELP line): then a refused one is
    # known to be refused data that exists.
    wait_until("a boot time sample", lambda: BOOT_TIME_SAMPLE.search(secure_agent.get("/metrics").text), process=secure_agent.process)

    response = secure_agent.get("/metrics", **changes)

    assert response.status_code == status
    assert bool(BOOT_TIME_SAMPLE.search(response.text)) == (status == 200)
    assert ("normagent_" in response.text) == (status == 200)  # a refusal shows no metric at all


@pytest.mark.parametrize(
    "changes",
    [
        {"cert": None},  # no client certificate
        {"cert": ("rogue.crt", "rogue.key")},  # a certificate from a CA the agent does not trust
        {"verify": True},  # the client does not trust our test CA (system CAs only)
    ],
    ids=["no-client-cert", "untrusted-client-cert", "untrusted-server-cert"],
)
def test_tls_refusals(secure_agent: Agent, pki: Path, changes: dict[str, object]) -> None:
    if isinstance(changes.get("cert"), tuple):
        changes = {"cert": tuple(str(pki / name) for name in changes["cert"])}  # type: ignore[union-attr]
    before = handshake_failures(secure_agent)

    with pytest.raises(requests.exceptions.ConnectionError) as refused:  # SSLError is one
        secure_agent.get("/metrics", **changes)

    assert not isinstance(refused.value, requests.exceptions.ConnectTimeout)
    # The agent counted exactly this one failed handshake: the refusal was TLS's, not another error.
    wait_until("the failed handshake to be counted", lambda: handshake_failures(secure_agent) == before + 1, process=secure_agent.process)
    assert secure_agent.get("/healthz").status_code == 200  # and it keeps serving the right clients


def handshake_failures(agent: Agent) -> float:
    """The agent's own count of failed TLS handshakes, from its /metrics (scraped by the right client)."""
    match = re.search(r'^normagent_http_connections_cut_total\{reason="tls_handshake_failed"\} (\S+)$', agent.get("/metrics").text, re.M)
    assert match, "normagent_http_connections_cut_total{reason=\"tls_handshake_failed\"} is missing"
    return float(match[1])
