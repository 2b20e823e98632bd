"""Builtin forwarder ``email``: each candidate change as a plain-text e-mail over SMTP.

Many small clinics' deviation system is a mailbox. The message says, in bokmål and then in
English, what happened and where, the possible consequence and suggested immediate measures, the
suggested owner and the security property touched, and for a possible personal-data breach the
deadline for notifying Datatilsynet. No personal data: the document holds counts, periods,
closed-set labels and pseudonyms only.

``Message-ID`` is made from the idempotency key, so a change sent twice (a crash between the
server's "250 OK" and the ledger's note of it) is the same message to every mail system that
de-duplicates by Message-ID; ``X-Normagent-Idempotency-Key`` and ``X-Normagent-Fingerprint`` carry
the key and fingerprint for filters.

Security: ``starttls = true`` (default) upgrades the connection before anything else is said and
fails the delivery if the server does not offer STARTTLS; ``tls = true`` speaks TLS from the start
(port 465). The server's certificate is verified (``ca_file`` or the system's CAs). The password is
only ever sent inside TLS. The connection is made before smtplib (with ssl) and the e-mail package
are imported (``normagent.forward.smtp_session`` brings them), so a mail server that cannot be reached
costs the agent none of their memory (2.6 MB of an idle agent, measured); once a server answers,
they stay.

A builtin plugin (``register_forwarders``); imports only structlog, model, hostnames, smallfile and
forward.client (and forward.smtp_session once a server answers).
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from normagent.forward.client import tls_problems
from normagent.hostnames import for_socket
from normagent.records import dataclass
from normagent.smallfile import read_secret
from normagent.hookspecs import hookimpl
from normagent.model import Delivery, DeliveryFailed, ForwarderSpec

if TYPE_CHECKING:
    import smtplib
    import ssl
    from email.message import EmailMessage

log = structlog.get_logger(__name__)

ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
STATE_NB = {"firing": "utløst", "resolved": "løst"}
SEVERITY_NB = {"info": "info", "warning": "advarsel", "critical": "kritisk"}


@dataclass(frozen=True, slots=True)
class EmailSettings:
    """``[forwarders.<name>]`` with ``kind = "email"``.

    Attributes:
        host: The SMTP server.
        port: Its port: 587 (submission, STARTTLS), 465 (tls = true) or 25.
        starttls: Upgrade to TLS with STARTTLS before anything else; refuse a server that does not offer it.
        tls: Speak TLS from the start (SMTPS, port 465) instead of STARTTLS.
        ca_file: CA certificates (PEM) the server's certificate is verified against; default: the system's.
        username: User for SMTP AUTH (sent only inside TLS); empty: no AUTH.
        password: Password for SMTP AUTH; prefer password_file.
        password_file: File holding the SMTP password (keep it mode 0600).
        from_address: The sender, e.g. "normagent@legekontoret.no".
        to: The recipients: the deviation system's mailbox.
        subject_prefix: Put before every subject.
        timeout: Time for one delivery (connect, TLS, AUTH, the message).
    """

    host: str = ""
    port: int = field(default=587, metadata={"min": 1, "max": 65535})
    starttls: bool = True
    tls: bool = False
    ca_file: Path | None = None
    username: str = ""
    password: str = ""
    password_file: Path | None = None
    from_address: str = ""
    to: tuple[str, ...] = ()
    subject_prefix: str = "[normagent]"
    timeout: timedelta = field(default=timedelta(seconds=30), metadata={"min": timedelta(seconds=1), "max": timedelta(minutes=5)})


def message(delivery: Delivery, settings: EmailSettings) -> EmailMessage:
    """The e-mail for one change."""
    from email.message import EmailMessage
    from email.utils import format_datetime

    doc = delivery.document
    nb = doc["texts"]["nb"]
    state_nb = STATE_NB.get(doc["state"], doc["state"])
    msg = EmailMessage()
    msg["From"] = settings.from_address
    msg["To"] = ", ".join(settings.to)
    msg["Subject"] = f"{settings.subject_prefix} AVVIKSKANDIDAT ({state_nb}, {SEVERITY_NB.get(doc['severity'], doc['severity'])}): {nb['title']}".strip()
    msg["Message-ID"] = f"<{delivery.key}.{doc['host']['id'][:12]}@normagent.invalid>"
    msg["X-Normagent-Idempotency-Key"] = delivery.key
    msg["X-Normagent-Fingerprint"] = str(doc["fingerprint"])
    from datetime import datetime

    changed = doc.get("changed_at")
    if changed:
        msg["Date"] = format_datetime(datetime.fromisoformat(changed.replace("Z", "+00:00")))
    msg.set_content(body(doc))
    return msg


def body(doc: dict[str, Any] | Any) -> str:
    """The text of the e-mail: bokmål first, then English."""
    nb, en = doc["texts"]["nb"], doc["texts"]["en"]
    where = doc["host"].get("location") or f"normagent-vert {doc['host']['id']}"
    where_en = doc["host"].get("location") or f"normagent host {doc['host']['id']}"
    lines = [
        f"AVVIKSKANDIDAT nr. {doc.get('id')} ({STATE_NB.get(doc['state'], doc['state'])}): {nb['title']}",
        "",
        f"Hva skjedde: {nb['what']}",
        f"Hvor: {where}",
        f"Mulig konsekvens: {nb['consequence']}",
        f"Foreslåtte strakstiltak: {nb['measures']}",
        "",
        f"Alvorlighet: {SEVERITY_NB.get(doc['severity'], doc['severity'])}",
        f"Avsnitt i faktaark 12: {doc.get('section') or '–'}",
        f"Berører: {', '.join(doc.get('cia', [])) or '–'}",
        f"Foreslått avvikseier: {doc.get('owner') or '–'}",
        f"Første tegn: {doc.get('first_evidence')}",
        f"Utløst: {doc.get('fired_at')}",
    ]
    if doc.get("resolved_at"):
        lines.append(f"Løst: {doc['resolved_at']}")
    if doc.get("personal_data"):
        lines += [
            "",
            "Dette kan være et brudd på personopplysningssikkerheten. Er det et brudd som sannsynlig gir risiko for de",
            f"registrerte, skal det meldes til Datatilsynet innen 72 timer, senest {doc.get('notify_by')}.",
        ]
    lines += [
        "",
        f"Mer: normagent deviations show {doc.get('id')}",
        "",
        "-- English --",
        f"DEVIATION CANDIDATE no. {doc.get('id')} ({doc['state']}): {en['title']}",
        f"What happened: {en['what']}",
        f"Where: {where_en}",
        f"Possible consequence: {en['consequence']}",
        f"Suggested immediate measures: {en['measures']}",
    ]
    if doc.get("personal_data"):
        lines.append(f"May be a personal-data breach: notify Datatilsynet by {doc.get('notify_by')} if it is one.")
    lines += ["", f"Idempotency key: {doc.get('idempotency_key')}", ""]
    return "\n".join(lines)


class EmailSender:
    """Keeps one SMTP connection open between deliveries; a dropped one is opened again once."""

    def __init__(self, settings: EmailSettings) -> None:
        self._settings = settings
        self._password = read_secret(settings.password_file) if settings.password_file else settings.password
        self._smtp: smtplib.SMTP | None = None
        self._socket: socket.socket | None = None  # reached, its SMTP session not yet opened

    def _context(self) -> ssl.SSLContext:
        import ssl  # with smtplib, which imports it too: never before a delivery or a probe

        return ssl.create_default_context(cafile=str(self._settings.ca_file) if self._settings.ca_file else None)

    def _reach(self, deadline: float) -> socket.socket:
        """The TCP connection to the server, made before anything is imported for SMTP.

        Raises:
            DeliveryFailed: ``timeout`` or ``unreachable``, naming the server.
        """
        s = self._settings
        try:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            # bytes hosts: see for_socket
            return socket.create_connection((for_socket(s.host), s.port), timeout=left)  # type: ignore[arg-type]
        except (socket.timeout, TimeoutError):
            raise DeliveryFailed("timeout", f"{s.host} did not answer in time") from None
        except OSError as exc:
            raise DeliveryFailed("unreachable", f"{s.host}:{s.port}: {exc}") from None

    def _connect(self, deadline: float) -> smtplib.SMTP:
        import smtplib

        from normagent.forward.smtp_session import open_session

        s = self._settings
        sock, self._socket = (self._socket if self._socket is not None else self._reach(deadline)), None
        smtp = open_session(sock, s.host, s.port, deadline, self._context() if s.tls else None)
        try:
            if s.starttls and not s.tls:
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise DeliveryFailed("tls_error", f"{s.host}:{s.port} does not offer STARTTLS (starttls = true)")
                try:
                    smtp.starttls(context=self._context())
                except smtplib.SMTPResponseException as exc:  # offered, then refused ("454 TLS not available")
                    raise DeliveryFailed("tls_error", f"{s.host}:{s.port} offers STARTTLS but refused it: {_smtp_reason(exc)}") from None
                smtp.ehlo()
            if s.username:
                self._login(smtp)
        except BaseException:
            _quit(smtp)
            raise
        return smtp

    def _login(self, smtp: smtplib.SMTP) -> None:
        """AUTH PLAIN when offered (inside TLS it is the standard), else what smtplib picks.

        smtplib's ``login()`` tries every mechanism the server offers in turn after a refusal;
        some servers close or stall on the second try, so a wrong password would look like an
        unreachable server instead of what it is."""
        smtp.ehlo_or_helo_if_needed()
        offered = smtp.esmtp_features.get("auth", "").upper().split()
        if "PLAIN" in offered:
            smtp.user, smtp.password = self._settings.username, self._password
            smtp.auth("PLAIN", smtp.auth_plain)
        else:
            smtp.login(self._settings.username, self._password)

    def send(self, delivery: Delivery) -> None:
        deadline = time.monotonic() + self._settings.timeout.total_seconds()
        if self._smtp is None and self._socket is None:
            self._socket = self._reach(deadline)  # before the message is made: an unreachable server needs no e-mail package
        self.send_message(message(delivery, self._settings), deadline)

    def send_message(self, msg: EmailMessage, deadline: float | None = None) -> None:
        """Send any message over this forwarder's SMTP settings (the monthly report uses it too),
        all of it (connect, TLS, AUTH, the message) within ``timeout`` or by ``deadline``
        (``time.monotonic()``).

        Raises:
            DeliveryFailed: with a closed-set result and a message naming the server.
        """
        import smtplib
        import ssl

        from normagent.forward.smtp_session import timed_out, too_long

        if deadline is None:
            deadline = time.monotonic() + self._settings.timeout.total_seconds()
        for again in (True, False):
            try:
                if self._smtp is None:
                    self._smtp = self._connect(deadline)
                else:
                    self._smtp.arm(deadline)  # type: ignore[attr-defined]  # an _OnSocket
                refused = self._smtp.send_message(msg)
                if refused:  # some recipients took it, these did not: sending again would repeat it to the others
                    log.error("email_recipients_refused", host=self._settings.host, subject=str(msg["Subject"])[:120],
                              refused={address: code for address, (code, _) in refused.items()},
                              hint="the other recipients got it, so it is not sent again: check these addresses")
                return
            except smtplib.SMTPServerDisconnected as exc:
                self.close()
                if timed_out(exc):
                    raise DeliveryFailed("timeout", f"{self._settings.host} did not answer in time") from None
                if (long := too_long(exc)) is not None:
                    raise DeliveryFailed("error", f"{self._settings.host}:{self._settings.port}: {long}") from None
                if not again:
                    raise DeliveryFailed("unreachable", f"{self._settings.host}: {exc}") from None
            except smtplib.SMTPAuthenticationError as exc:
                self.close()
                raise DeliveryFailed("rejected", f"SMTP AUTH failed: {exc.smtp_code}") from None
            except smtplib.SMTPNotSupportedError as exc:
                self.close()
                raise DeliveryFailed("rejected", f"{self._settings.host}: {exc}") from None
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                self.close()
                raise DeliveryFailed("rejected", f"{self._settings.host} refused the message: {_smtp_reason(exc)}") from None
            except ssl.SSLError as exc:
                self.close()
                raise DeliveryFailed("tls_error", f"TLS with {self._settings.host} failed: {exc.reason or exc}") from None
            except (socket.timeout, TimeoutError):
                self.close()
                raise DeliveryFailed("timeout", f"{self._settings.host} did not answer in time") from None
            except (smtplib.SMTPException, OSError) as exc:
                self.close()
                raise DeliveryFailed("unreachable", f"{self._settings.host}:{self._settings.port}: {exc}") from None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._smtp is not None:
            self._smtp.arm(time.monotonic() + min(5.0, self._settings.timeout.total_seconds()))  # type: ignore[attr-defined]  # for the QUIT
            _quit(self._smtp)
            self._smtp = None


def _quit(smtp: smtplib.SMTP) -> None:
    """End the session politely (QUIT), or just close it where the server no longer listens."""
    try:
        smtp.quit()
    except Exception:
        smtp.close()


def _smtp_reason(exc: Exception) -> str:
    code = getattr(exc, "smtp_code", "")
    return f"{code}".strip() or type(exc).__name__


def check(settings: EmailSettings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not settings.host:
        problems.append(("host", "is required"))
    if not ADDRESS.match(settings.from_address):
        problems.append(("from_address", f'expected an address like "normagent@example.org", got "{settings.from_address}"'))
    if not settings.to:
        problems.append(("to", "needs at least one address (the deviation system's mailbox)"))
    for i, address in enumerate(settings.to):
        if not ADDRESS.match(address):
            problems.append((f"to[{i}]", f'expected an address like "avvik@example.org", got "{address}"'))
    if settings.tls and settings.starttls:
        problems.append(("starttls", "tls = true speaks TLS from the start; set starttls = false with it"))
    if settings.username and not (settings.tls or settings.starttls):
        problems.append(("username", "AUTH would send the password unencrypted: set starttls = true (or tls = true)"))
    if settings.password and settings.password_file:
        problems.append(("password", "set password or password_file, not both"))
    if settings.username and not (settings.password or settings.password_file):
        problems.append(("password_file", "a username needs a password (password_file)"))
    for key in ("ca_file", "password_file"):
        path = getattr(settings, key)
        if path is not None and not path.is_file():
            problems.append((key, f"file {path} does not exist" if not path.exists() else f"{path} is not a file"))
    if not problems and settings.ca_file is not None:
        problems += tls_problems(settings.ca_file, None, None)
    return problems


def probe(settings: EmailSettings) -> list[tuple[str, str]]:
    """Connect, say EHLO and, as configured, STARTTLS or TLS (certificate verified); no AUTH, no mail."""
    import smtplib
    import ssl

    try:
        sender = EmailSender(settings)
        if settings.tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=5, context=sender._context())
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=5)
            smtp.ehlo()
            if settings.starttls:
                if not smtp.has_extn("starttls"):
                    smtp.close()
                    return [("starttls", f"{settings.host}:{settings.port} does not offer STARTTLS")]
                smtp.starttls(context=sender._context())
        smtp.quit()
    except ssl.SSLCertVerificationError as exc:
        return [("host", f"{settings.host}:{settings.port} answers, but its certificate is not trusted: {exc.verify_message} (check ca_file)")]
    except (smtplib.SMTPException, OSError) as exc:
        return [("host", f"cannot reach the SMTP server {settings.host}:{settings.port}: {getattr(exc, 'strerror', None) or exc}")]
    return []


def _send(delivery: Delivery, settings: Any) -> None:
    sender = EmailSender(settings)
    try:
        sender.send(delivery)
    finally:
        sender.close()


EMAIL = ForwarderSpec(
    kind="email",
    help="Sends each candidate change as an e-mail (SMTP with STARTTLS or TLS, optional AUTH).",
    send=_send,
    settings=EmailSettings,
    open=EmailSender,
    check=check,
    probe=probe,
)


@hookimpl
def register_forwarders() -> list[ForwarderSpec]:
    return [EMAIL]
