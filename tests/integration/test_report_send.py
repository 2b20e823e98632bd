"""``normagent report --send``: the report mailed to the data controller through the SMTP settings of
the deviations' e-mail forwarder (a real SMTP server with STARTTLS and AUTH), every format attached."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from normagent.agent import read_config
from normagent.cli import build_parser, main
from normagent.errors import ConfigError, Unavailable
from normagent.report.command import _intervals, run_report
from tests.integration import test_forward_email
from tests.integration.test_forward_email import PASSWORD, USER, Mailbox
from tests.support.report_ledger import History, write_history

smtp_server = test_forward_email.smtp_server  # the real SMTP server fixture, shared with the e-mail forwarder's tests

U = timezone.utc
NOW = datetime(2026, 12, 1, 6, 0, tzinfo=U)


def site(tmp_path: Path, port: int, pki: Path, extra: str = "") -> Path:
    secret = tmp_path / "smtp.password"
    secret.write_text(PASSWORD + "\n")
    cfg = tmp_path / "normagent.toml"
    cfg.write_text(
        f"""
[agent]
state_dir = "{tmp_path / 'state'}"

[forwarders.epost]
kind = "email"
host = "127.0.0.1"
port = {port}
ca_file = "{pki / 'ca.crt'}"
username = "{USER}"
password_file = "{secret}"
from_address = "normagent@legekontoret.invalid"
to = ["avvik@legekontoret.invalid"]

[report]
email = "epost"
to = ["dataansvarlig@legekontoret.invalid"]
formats = ["html", "md", "pdf"]
{extra}
"""
    )
    config, plugins = read_config(cfg)
    history = History(start=datetime(2026, 10, 25, tzinfo=U), end=datetime(2026, 12, 1, tzinfo=U), collectors=sorted(_intervals(config, plugins)))
    write_history(tmp_path / "state" / "ledger.db", history, plugins.metrics().values())
    return cfg


def test_send_mails_every_format_to_the_data_controller(smtp_server: Callable[..., tuple[Mailbox, int]], pki: Path, tmp_path: Path) -> None:
    box, port = smtp_server()
    cfg = site(tmp_path, port, pki)
    args = build_parser().parse_args(["report", "--config", str(cfg), "--send"])  # no --month: last month, as the timer runs it
    config, plugins = read_config(cfg)
    assert run_report(args, config, plugins, io.StringIO(), io.StringIO(), now=NOW) == 0
    (msg,) = box.messages
    assert box.auth == [(USER, True)]
    assert msg["To"] == "dataansvarlig@legekontoret.invalid"
    assert "Månedsrapport" in msg["Subject"] and "november 2026" in msg["Subject"]
    files = {part.get_filename(): part.get_content() for part in msg.iter_attachments()}
    names = sorted(files)
    assert [n.rsplit(".", 1)[1] for n in names] == ["html", "json", "md", "pdf"]
    pdf = next(v for k, v in files.items() if k.endswith(".pdf"))
    assert pdf[:5] == b"%PDF-"
    json_bytes = next(v for k, v in files.items() if k.endswith(".json"))
    digest = hashlib.sha256(json_bytes if isinstance(json_bytes, bytes) else json_bytes.encode()).hexdigest()
    assert digest in msg.get_body(("plain",)).get_content()  # the body carries the signing header


def test_send_without_chromium_is_a_clear_error(pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.receivers import free_port

    cfg = site(tmp_path, free_port(), pki, 'chromium = "no-such-chromium"')
    assert main(["report", "--config", str(cfg), "--month", "2026-11", "--send"]) == 69
    err = capsys.readouterr().err
    assert "no-such-chromium: not found" in err and "Traceback" not in err


def test_send_through_a_forwarder_that_is_no_email_forwarder(pki: Path, tmp_path: Path) -> None:
    from tests.support.receivers import free_port

    cfg = site(tmp_path, free_port(), pki, 'folder = "' + str(tmp_path / "out") + '"')
    text = cfg.read_text().replace('email = "epost"', 'email = "nowhere"').replace('formats = ["html", "md", "pdf"]', 'formats = ["md"]')
    cfg.write_text(text)
    args = build_parser().parse_args(["report", "--config", str(cfg), "--month", "2026-11", "--send"])
    config, plugins = read_config(cfg)
    with pytest.raises(ConfigError, match=r"report.email: 'nowhere' is no e-mail forwarder \(e-mail forwarders: epost\)"):
        run_report(args, config, plugins, io.StringIO(), io.StringIO(), now=NOW)
    assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".json", ".md"]  # the folder got it all the same


def test_smtp_that_refuses_is_unavailable(smtp_server: Callable[..., tuple[Mailbox, int]], pki: Path, tmp_path: Path) -> None:
    box, port = smtp_server()
    cfg = site(tmp_path, port, pki)
    (tmp_path / "smtp.password").write_text("wrong\n")
    cfg.write_text(cfg.read_text().replace('formats = ["html", "md", "pdf"]', 'formats = ["md"]'))
    args = build_parser().parse_args(["report", "--config", str(cfg), "--month", "2026-11", "--send"])
    config, plugins = read_config(cfg)
    with pytest.raises(Unavailable, match="could not be mailed through \\[forwarders.epost\\]: SMTP AUTH failed"):
        run_report(args, config, plugins, io.StringIO(), io.StringIO(), now=NOW)
    assert box.messages == []
