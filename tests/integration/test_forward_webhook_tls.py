"""The webhook forwarder over HTTPS: the receiver's certificate is verified against ca_file, the
agent shows its client certificate, and a receiver it cannot trust gets nothing."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from normagent.forward.client import probe
from normagent.forward.webhook import WebhookSender, WebhookSettings, check
from normagent.model import Delivery, DeliveryFailed
from tests.support.receivers import WebhookReceiver

pytestmark = pytest.mark.integration


@pytest.fixture
def https_receiver(pki: Path) -> Iterator[WebhookReceiver]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.crt"))
    context.load_cert_chain(pki / "server.crt", pki / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED  # only clients with a certificate from the test CA
    receiver = WebhookReceiver(tls=context).start()
    yield receiver
    receiver.stop()


def settings(receiver: WebhookReceiver, pki: Path, **changes: object) -> WebhookSettings:
    base: dict[str, object] = {
        "url": f"https://localhost:{receiver.port}/hook", "ca_file": pki / "ca.crt", "client_cert_file": pki / "client.crt",
        "client_key_file": pki / "client.key", "timeout": timedelta(seconds=5),
    }
    base.update(changes)
    return WebhookSettings(**base)  # type: ignore[arg-type]


DOC = {"idempotency_key": "0123456789abcdef-firing-1", "state": "firing"}


def test_https_with_a_verified_server_and_a_client_certificate(https_receiver: WebhookReceiver, pki: Path) -> None:
    s = settings(https_receiver, pki)
    assert check(s) == [] and probe(s) == []
    sender = WebhookSender(s)
    try:
        sender.send(Delivery(DOC, DOC["idempotency_key"], "hook"))
    finally:
        sender.close()
    assert [r.key for r in https_receiver.accepted] == ["0123456789abcdef-firing-1"]


def test_a_server_certificate_from_another_ca_is_refused(https_receiver: WebhookReceiver, pki: Path) -> None:
    s = settings(https_receiver, pki, ca_file=pki / "rogue-ca.crt")
    assert "certificate is not trusted" in probe(s)[0][1]
    with pytest.raises(DeliveryFailed) as failed:
        WebhookSender(s).send(Delivery(DOC, DOC["idempotency_key"], "hook"))
    assert failed.value.result == "tls_error"
    assert https_receiver.posts == []


def test_a_certificate_that_is_no_ca_is_a_config_problem(pki: Path) -> None:
    s = WebhookSettings(url="https://localhost:1/hook", ca_file=pki / "server.crt")
    assert check(s) == [("ca_file", f"{pki / 'server.crt'} holds no CA certificate (a server or client certificate is not a CA)")]
