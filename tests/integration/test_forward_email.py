"""The e-mail forwarder against a real SMTP server on 127.0.0.1 (aiosmtpd, a test-only
dependency) that requires STARTTLS and AUTH, with a certificate from the test PKI."""

from __future__ import annotations

import email
import email.policy
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from normagent.forward.smtp import EmailSender, EmailSettings, check, probe
from normagent.model import Delivery, DeliveryFailed
from tests.support.receivers import free_port

USER, PASSWORD = "normagent", "correct horse"


@dataclass
class Mailbox:
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    auth: list[tuple[str, bool]] = field(default_factory=list)  # (login, tls active)
    arrived: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        self.arrived.set()
        return "250 OK"


@pytest.fixture
def smtp_server(pki: Path) -> Iterator[Callable[..., tuple[Mailbox, int]]]:
    import logging

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    # aiosmtpd logs each connection from its own thread, which may outlive the test's captured
    # streams (a command under test that configured logging to them): keep its lines to itself.
    server_log = logging.getLogger("mail.log")
    saved = server_log.propagate
    server_log.propagate = False
    controllers: list[Any] = []

    def _start(*, starttls: bool = True, implicit_tls: bool = False) -> tuple[Mailbox, int]:
        box = Mailbox()

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD
            box.auth.append((auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?", session.ssl is not None))
            return AuthResult(success=ok, handled=False)  # handled=True would mean "I answered the client myself"

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki / "server.crt", pki / "server.key")
        port = free_port()
        kwargs: dict[str, Any] = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": True}
        if implicit_tls:  # SMTPS (port 465): TLS from the first byte; aiosmtpd's auth_require_tls only knows STARTTLS
            kwargs.update(ssl_context=context, auth_require_tls=False)
        elif starttls:
            kwargs.update(tls_context=context, require_starttls=True)
        controller = Controller(box, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return box, port

    yield _start
    for controller in controllers:
        controller.stop()
    server_log.propagate = saved


def document(**extra: Any) -> dict[str, Any]:
    texts = {
        "nb": {"title": "Konto låst", "what": "En konto (pseudonym 0123456789abcdef) ble låst.", "consequence": "K", "measures": "T"},
        "en": {"title": "Account locked", "what": "An account was locked.", "consequence": "C", "measures": "M"},
    }
    doc = {
        "schema": "normagent.deviation/v1", "id": 7, "sequence": 1, "idempotency_key": "0123456789abcdef-firing-1",
        "state": "firing", "fingerprint": "0123456789abcdef", "rule": "access.account_locked", "severity": "warning",
        "section": "Driftsstatus", "cia": ["konfidensialitet"], "owner": "IKT-leder", "personal_data": True,
        "notify_by": "2026-11-26T07:00:00Z", "labels": {"key": "0123456789abcdef"}, "value": 1, "threshold": 0,
        "comparison": ">", "window_seconds": 3600, "first_evidence": "2026-11-23T07:00:00Z", "fired_at": "2026-11-23T07:00:00Z",
        "resolved_at": None, "changed_at": "2026-11-23T07:00:00Z", "host": {"id": "feedc0de", "location": "Legekontoret"},
        "texts": texts, "agent": {"version": "0"},
    }
    doc.update(extra)
    return doc


def settings(port: int, pki: Path, tmp_path: Path, **extra: Any) -> EmailSettings:
    secret = tmp_path / "smtp.password"
    secret.write_text(PASSWORD + "\n")
    base: dict[str, Any] = {
        "host": "127.0.0.1", "port": port, "ca_file": pki / "ca.crt", "username": USER, "password_file": secret,
        "from_address": "normagent@legekontoret.invalid", "to": ("avvik@legekontoret.invalid",), "timeout": timedelta(seconds=10),
    }
    base.update(extra)
    return EmailSettings(**base)


def test_an_email_goes_through_starttls_and_auth(smtp_server: Callable[..., tuple[Mailbox, int]], pki: Path, tmp_path: Path) -> None:
    box, port = smtp_server()
    s = settings(port, pki, tmp_path)
    assert check(s) == [] and probe(s) == []
    sender = EmailSender(s)
    try:
        sender.send(Delivery(document(), "0123456789abcdef-firing-1", "epost"))
        sender.send(Delivery(document(state="resolved", sequence=2, idempotency_key="0123456789abcdef-resolved-2",
                                      resolved_at="2026-11-23T08:00:00Z"), "0123456789abcdef-resolved-2", "epost"))
    finally:
        sender.close()
    assert box.auth == [(USER, True)], "one connection, AUTH only inside TLS"
    first, second = box.messages
    assert first["Message-ID"] == "<0123456789abcdef-firing-1.feedc0de@normagent.invalid>"
    assert first["X-Normagent-Idempotency-Key"] == "0123456789abcdef-firing-1"
    assert "AVVIKSKANDIDAT (utløst, advarsel): Konto låst" in first["Subject"]
    body = first.get_content()
    assert "Hvor: Legekontoret" in body and "Datatilsynet innen 72 timer, senest 2026-11-26T07:00:00Z" in body
    assert "What happened: An account was locked." in body
    assert "(løst" in second["Subject"]


def test_a_server_without_starttls_is_refused_before_the_password_is_sent(smtp_server: Callable[..., tuple[Mailbox, int]], pki: Path,
                                                                          tmp_path: Path) -> None:
    box, port = smtp_server(starttls=False)
    s = settings(port, pki, tmp_path)
    assert probe(s) == [("starttls", f"127.0.0.1:{port} does not offer STARTTLS")]
    with pytest.raises(DeliveryFailed) as failed:
        EmailSender(s).send(Delivery(document(), "k", "epost"))
    assert failed.value.result == "tls_error"
    assert box.auth == [] and box.messages == []


def test_a_wrong_password_is_rejected(smtp_server: Callable[..., tuple[Mailbox, int]], pki: Path, tmp_path: Path) -> None:
    _, port = smtp_server()
    s = settings(port, pki, tmp_path, password_file=None, password="wrong")
    with pytest.raises(DeliveryFailed) as failed:
        EmailSender(s).send(Delivery(document(), "k", "epost"))
    assert failed.value.result == "rejected"


def test_an_untrusted_certificate_fails_the_delivery(smtp_server: Callable[..., tuple[Mailbox, int]], pki: Path, tmp_path: Path) -> None:
    box, port = smtp_server()
    s = settings(port, pki, tmp_path, ca_file=pki / "rogue-ca.crt")
    assert "certificate is not trusted" in probe(s)[0][1]
    with pytest.raises(DeliveryFailed) as failed:
        EmailSender(s).send(Delivery(document(), "k", "epost"))
    assert failed.value.result == "tls_error" and box.auth == []


def test_settings_that_would_send_the_password_in_clear_are_refused() -> None:
    s = EmailSettings(host="mail", starttls=False, username="u", password="p", from_address="a@b", to=("c@d",))
    assert ("username", "AUTH would send the password unencrypted: set starttls = true (or tls = true)") in check(s)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # SMTPS: the transport is TLS
def test_an_email_goes_through_tls_from_the_start(smtp_server: Callable[..., tuple[Mailbox, int]], pki: Path, tmp_path: Path) -> None:
    box, port = smtp_server(implicit_tls=True)
    s = settings(port, pki, tmp_path, tls=True, starttls=False)
    assert check(s) == [] and probe(s) == []
    sender = EmailSender(s)
    try:
        sender.send(Delivery(document(), "0123456789abcdef-firing-1", "epost"))
    finally:
        sender.close()
    assert [m["X-Normagent-Idempotency-Key"] for m in box.messages] == ["0123456789abcdef-firing-1"]
    assert [login for login, _ in box.auth] == [USER]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # SMTPS: the transport is TLS
def test_tls_from_the_start_verifies_the_servers_certificate(smtp_server: Callable[..., tuple[Mailbox, int]], pki: Path,
                                                             tmp_path: Path) -> None:
    box, port = smtp_server(implicit_tls=True)
    s = settings(port, pki, tmp_path, tls=True, starttls=False, ca_file=pki / "rogue-ca.crt")
    with pytest.raises(DeliveryFailed) as failed:
        EmailSender(s).send(Delivery(document(), "k", "epost"))
    assert failed.value.result == "tls_error" and box.auth == [] and box.messages == []


def test_an_unreachable_server_fails_the_delivery_without_the_email_modules(tmp_path: Path) -> None:
    """An agent whose mail server is down never imports smtplib or the e-mail package (2.6 MB)."""
    port = free_port()  # nothing listens there
    code = f"""
import sys
from datetime import timedelta
from normagent.forward.smtp import EmailSender, EmailSettings
from normagent.model import Delivery, DeliveryFailed
s = EmailSettings(host="127.0.0.1", port={port}, starttls=False, from_address="a@b.invalid", to=("c@d.invalid",),
                  timeout=timedelta(seconds=5))
sender = EmailSender(s)
for attempt in range(2):
    try:
        sender.send(Delivery({{}}, "k", "epost"))
    except DeliveryFailed as exc:
        print(exc.result)
sender.close()
print(sorted(m for m in sys.modules if m == "smtplib" or m == "email" or m.startswith("email.")))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["unreachable", "unreachable", "[]"]


def scripted_smtp(greeting: Callable[[Any], None], ehlo_answer: bytes = b"250 hi\r\n",
                  answers: dict[bytes, bytes | Callable[[bytes], bytes]] | None = None) -> tuple[int, list[bytes]]:
    """A plain-text SMTP server on 127.0.0.1 for one connection: ``greeting(conn)`` says hello,
    EHLO gets ``ehlo_answer``, a command in ``answers`` its answer there (or what it makes of the
    command's line), the rest of the dialogue is accepted. Returns the port and the commands it got."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    commands: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        listener.close()
        with conn, conn.makefile("rb") as lines:
            try:
                greeting(conn)
                while line := lines.readline():
                    commands.append(line.split(b" ", 1)[0].strip().upper())
                    verb = commands[-1]
                    if verb in (answers or {}):
                        answer = (answers or {})[verb]
                        conn.sendall(answer(line) if callable(answer) else answer)
                    elif verb == b"EHLO":
                        conn.sendall(ehlo_answer)
                    elif verb == b"DATA":
                        conn.sendall(b"354 go on\r\n")
                        while lines.readline() not in (b".\r\n", b""):
                            pass
                        conn.sendall(b"250 queued\r\n")
                    elif verb == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        return
                    else:
                        conn.sendall(b"250 ok\r\n")
            except OSError:
                pass  # the client gave up on us

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], commands


def plain(port: int) -> EmailSettings:
    return EmailSettings(host="127.0.0.1", port=port, starttls=False, from_address="normagent@legekontoret.invalid",
                         to=("avvik@legekontoret.invalid",), timeout=timedelta(seconds=1))


def test_a_server_that_greets_a_byte_at_a_time_times_out_as_a_whole() -> None:
    """Before: the timeout was for each read, so a greeting of 100 bytes at 20 a second (each
    well within it) took 5 s of a 1 s timeout, and the delivery went on as if nothing was wrong."""

    def drip(conn: Any) -> None:
        for byte in b"220 " + b"s" * 94 + b"\r\n":
            conn.sendall(bytes([byte]))
            threading.Event().wait(0.05)

    port, _ = scripted_smtp(drip)
    with pytest.raises(DeliveryFailed) as failed:
        EmailSender(plain(port)).send(Delivery(document(), "k", "epost"))
    assert failed.value.result == "timeout"


def test_an_answer_of_continuation_lines_without_end_is_an_error_not_all_the_memory() -> None:
    """Before: smtplib kept every "250-…" line of an answer, so a server that never sent the last
    one took all the memory there is (here it ends after 1 MiB, and was taken as an EHLO)."""
    endless = b"250-" + b"A" * 60 + b"\r\n"
    port, commands = scripted_smtp(lambda conn: conn.sendall(b"220 hello\r\n"), endless * (2**20 // len(endless)) + b"250 hi\r\n")
    with pytest.raises(DeliveryFailed) as failed:
        EmailSender(plain(port)).send(Delivery(document(), "k", "epost"))
    assert failed.value.result == "error"
    assert "answer went on past 64 KiB" in str(failed.value)
    assert b"DATA" not in commands


def test_a_server_that_offers_starttls_and_then_refuses_it_is_a_tls_error_and_gets_no_mail() -> None:
    """Before: counted as unreachable (smtplib's "(454, b'TLS not available')"), though the server answered."""
    port, commands = scripted_smtp(lambda conn: conn.sendall(b"220 hello\r\n"), b"250-hi\r\n250 STARTTLS\r\n",
                                   {b"STARTTLS": b"454 4.7.0 TLS not available due to temporary reason\r\n"})
    s = EmailSettings(host="127.0.0.1", port=port, from_address="normagent@legekontoret.invalid", to=("avvik@legekontoret.invalid",),
                      timeout=timedelta(seconds=5))
    with pytest.raises(DeliveryFailed) as failed:
        EmailSender(s).send(Delivery(document(), "k", "epost"))
    assert failed.value.result == "tls_error"
    assert "offers STARTTLS but refused it: 454" in str(failed.value)
    assert b"MAIL" not in commands and b"DATA" not in commands


def test_recipients_the_server_refused_while_it_took_the_others_are_logged_not_dropped_in_silence() -> None:
    """Before: smtplib returns the refused recipients when others took the message, and that was
    thrown away: the change counted as delivered, and nothing said that one mailbox never got it."""
    from structlog.testing import capture_logs

    port, commands = scripted_smtp(lambda conn: conn.sendall(b"220 hello\r\n"), answers={
        b"RCPT": lambda line: b"550 5.1.1 no such user\r\n" if b"gone@" in line else b"250 ok\r\n"})
    s = EmailSettings(host="127.0.0.1", port=port, starttls=False, from_address="normagent@legekontoret.invalid",
                      to=("avvik@legekontoret.invalid", "gone@legekontoret.invalid"), timeout=timedelta(seconds=5))
    with capture_logs() as logs:
        EmailSender(s).send(Delivery(document(), "k", "epost"))
    assert b"DATA" in commands, "the other recipient got it"
    [event] = [e for e in logs if e["event"] == "email_recipients_refused"]
    assert event["refused"] == {"gone@legekontoret.invalid": 550} and event["log_level"] == "error"
