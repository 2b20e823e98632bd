"""Privacy: a report made from logs and EDI folders full of user names, addresses, host names,
message ids and patient data, read by the real collectors into a real ledger, contains none of them
in any format (only counts, closed-set labels and pseudonyms)."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from normagent import FileSource
from normagent.agent import read_config
from normagent.cli import build_parser
from normagent.ledger import Ledger
from normagent.model import RunOutcome
from normagent.plugins.access.collectors import LOGINS, LoginSettings
from normagent.plugins.edi.collectors import make_spec
from normagent.report.command import run_report
from normagent.testing import FakeClock, run_collector_once
from tests.plugins.edi import edi_generator

U = timezone.utc
NOW = datetime(2026, 12, 6, 9, 30, tzinfo=U)
PEOPLE = ("kari.nordmann", "per.olsen", "ingrid.bakke", "mohammed.ali", "siri.haugen")
ADDRESSES = ("203.0.113.77", "198.51.100.23", "192.0.2.140", "2001:db8:4:7::99")
HOSTNAMES = ("pc-kari.legekontor.local", "laptop-per.hjemme.example")


def auth_log(path: Path) -> None:
    """A November auth.log: failures, lockouts, password resets, logins — every line names someone."""
    lines = []
    at = datetime(2026, 11, 3, 8, 0, tzinfo=U)
    for day in range(20):
        for i, who in enumerate(PEOPLE):
            moment = (at + timedelta(days=day, minutes=7 * i)).astimezone(timezone(timedelta(hours=1)))
            stamp = moment.isoformat(timespec="microseconds")
            addr = ADDRESSES[(day + i) % len(ADDRESSES)]
            pid = 1000 + day * 10 + i
            lines += [
                f"{stamp} clinic-srv1 sshd[{pid}]: Failed password for {who} from {addr} port 50{i}12 ssh2",
                f"{stamp} clinic-srv1 sshd[{pid}]: Failed password for invalid user {who}x from {addr} port 50{i}13 ssh2",
                f"{stamp} clinic-srv1 sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={HOSTNAMES[i % 2]}  user={who}",
                f"{stamp} clinic-srv1 sshd[{pid + 1}]: pam_faillock(sshd:auth): Consecutive login failures for user {who} account temporarily locked",
                f"{stamp} clinic-srv1 chpasswd[{pid + 2}]: pam_unix(chpasswd:chauthtok): password changed for {who}",
                f"{stamp} clinic-srv1 sudo[{pid + 3}]:    {who} : 1 incorrect password attempt ; TTY=pts/1 ; PWD=/home/{who} ; USER=root ; COMMAND=/usr/bin/less /home/{who}/journal.txt",
                f"{stamp} clinic-srv1 sshd[{pid + 4}]: Accepted password for {who} from {addr} port 42532 ssh2",
            ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("privacy")
    (root / "normagent.toml").write_text("")
    fs = root / "root"
    auth_log(fs / "var" / "log" / "auth.log")
    edi = root / "edi"
    truth = edi_generator.generate(edi, edi_generator.Config(messages=150, now=datetime(2026, 11, 25, 11, 0, tzinfo=U)))
    ids = set(truth.rejected_ids)
    for file in edi.rglob("*"):
        if file.is_file():
            ids.update(re.findall(rb"<(?:\w+:)?MsgId>([^<]+)</", file.read_bytes()))
    message_ids = {i.decode() if isinstance(i, bytes) else i for i in ids}
    clock = FakeClock(datetime(2026, 11, 25, 11, 0, tzinfo=U))
    state = root / "state"
    with Ledger.open(state / "ledger.db", clock=clock) as ledger:
        settings = LoginSettings(prefer="files", files=FileSource(paths=("/var/log/auth.log",), start_at="beginning"))
        run_collector_once(LOGINS, ledger, settings=settings, root=fs, clock=clock)
        spec = make_spec()
        run_collector_once(spec, ledger, settings=edi_generator.settings_for(edi), clock=clock, timeout=600)
        for name in ("access.logins", "edi.messages"):
            ledger.record_run(RunOutcome(name, clock.now(), 0.1, True))
    return {"root": root, "message_ids": message_ids}


@pytest.mark.parametrize("fmt", ["json", "md", "html"])
def test_report_holds_no_name_address_or_message_id(site: dict[str, Any], fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    root = site["root"]
    monkeypatch.setenv("STATE_DIRECTORY", str(root / "state"))
    args = build_parser().parse_args(["report", "--config", str(root / "normagent.toml"), "--month", "2026-11", "--format", fmt,
                                      "--output", str(root / f"report.{fmt}")])
    config, plugins = read_config(args.config)
    assert run_report(args, config, plugins, io.StringIO(), io.StringIO(), now=NOW) == 0
    text = (root / f"report.{fmt}").read_text()
    if fmt == "json":
        doc = json.loads(text)
        failed = next(i for s in doc["hosts"][0]["sections"] for i in s["indicators"] if i["id"] == "access.failed_logins")
        assert failed["this"] and failed["this"] >= 200  # the data is there …
        assert next(i for s in doc["hosts"][0]["sections"] for i in s["indicators"] if i["id"] == "edi.rejected")["this"]
    lowered = text.lower()
    secrets = [*PEOPLE, *ADDRESSES, *HOSTNAMES, "journal.txt", edi_generator.PATIENT_MARKER, *sorted(site["message_ids"])]
    assert len(site["message_ids"]) > 50
    leaked = [s for s in secrets if s.lower() in lowered]
    assert leaked == []  # … and none of who, where or which message
    assert "203.0.113" not in text and "198.51.100" not in text  # not even the network
