"""Builtin forwarder ``webhook``: each candidate change as a JSON POST.

The body is the change document (``docs/deviations.md``; its JSON Schema is
``normagent/forward/change.schema.json``), byte for byte the same on every attempt. Headers:

- ``Idempotency-Key: <fingerprint>-<state>-<sequence>``: the same for every attempt of a change;
  a receiver that keeps the keys it has seen gets every change exactly once;
- ``X-Normagent-Signature: sha256=<hex>``: HMAC-SHA256 of the body with the shared ``secret``
  (when one is set), so the receiver knows the body came from this agent unchanged;
- ``Authorization: Bearer <token>`` when a token is set;
- ``X-Normagent-Attempt: <n>``.

Any 2xx answer is a delivery; anything else (another status, a timeout, a refused connection, a
TLS failure) is retried with back-off. The POST goes through ``forward.client``'s small HTTP/1.1
client (one kept-alive connection per sender, up to four in flight).

A builtin plugin (``register_forwarders``); imports only the public API, model, digests and
forward.client.
"""

from __future__ import annotations

import json
from dataclasses import field
from pathlib import Path
from typing import Any

from normagent.digests import HmacSha256
from normagent.forward.client import HttpSettings, bearer, http_problems, post, probe, session
from normagent.records import dataclass
from normagent.smallfile import read_secret
from normagent.hookspecs import hookimpl
from normagent.model import Delivery, ForwarderSpec

SIGNATURE_HEADER = "X-Normagent-Signature"


@dataclass(frozen=True, slots=True)
class WebhookSettings(HttpSettings):
    """``[forwarders.<name>]`` with ``kind = "webhook"``.

    Attributes:
        secret: Shared secret for the X-Normagent-Signature header (HMAC-SHA256 of the body); prefer secret_file.
        secret_file: File holding the shared secret (keep it mode 0600).
    """

    secret: str = field(default="", metadata={"help": "Shared secret for the X-Normagent-Signature header (HMAC-SHA256 of the body); prefer secret_file"})
    secret_file: Path | None = field(default=None, metadata={"help": "File holding the shared secret (keep it mode 0600)"})


def body_of(delivery: Delivery) -> bytes:
    """The bytes POSTed: the change document as compact UTF-8 JSON (as the ledger stored it)."""
    if delivery.text:
        return delivery.text.encode("utf-8")
    return json.dumps(delivery.document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signature(secret: bytes, body: bytes) -> str:
    """The X-Normagent-Signature value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + HmacSha256(secret, body).hexdigest()  # hmac.new(secret, body, hashlib.sha256)


class WebhookSender:
    """Keeps one HTTP session (connections are reused between deliveries)."""

    def __init__(self, settings: WebhookSettings) -> None:
        self._settings = settings
        self._secret = (read_secret(settings.secret_file) if settings.secret_file else settings.secret).encode("utf-8")
        self._token = bearer(settings)
        self._session = session(settings)
        from normagent import __version__

        self._agent = f"normagent/{__version__}"

    def send(self, delivery: Delivery) -> None:
        body = body_of(delivery)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": delivery.key,
            "User-Agent": self._agent,
            "X-Normagent-Attempt": str(delivery.attempt),
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, body)
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        post(self._session, self._settings.url, body, headers, self._settings.timeout.total_seconds())

    def close(self) -> None:
        self._session.close()


def check(settings: WebhookSettings) -> list[tuple[str, str]]:
    problems = http_problems(settings)
    if settings.secret and settings.secret_file:
        problems.append(("secret", "set secret or secret_file, not both"))
    if settings.secret_file is not None:
        if not settings.secret_file.is_file():
            problems.append(("secret_file", f"file {settings.secret_file} does not exist"))
        else:
            try:
                if not read_secret(settings.secret_file):
                    problems.append(("secret_file", f"{settings.secret_file} is empty"))
            except OSError as exc:
                problems.append(("secret_file", f"cannot read {settings.secret_file}: {exc.strerror}"))
    return problems


def _send(delivery: Delivery, settings: Any) -> None:
    sender = WebhookSender(settings)
    try:
        sender.send(delivery)
    finally:
        sender.close()


WEBHOOK = ForwarderSpec(
    kind="webhook",
    help="POSTs each candidate change as JSON, with an Idempotency-Key and an HMAC-SHA256 signature.",
    send=_send,
    settings=WebhookSettings,
    open=WebhookSender,
    check=check,
    probe=probe,
    parallel=4,
)


@hookimpl
def register_forwarders() -> list[ForwarderSpec]:
    return [WEBHOOK]
