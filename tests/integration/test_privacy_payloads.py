"""No personal data leaves the host in a deviation candidate.

The real collectors read fixtures full of personal data (a generated auth.log with user names,
client addresses and host names; generated EDI folders with message ids, patient names and
national identity numbers), every default rule is loosened until everything it watches fires, and
every change is delivered by all four forwarders to real receivers on 127.0.0.1: a webhook
server, an "Alertmanager" endpoint, an SMTP server (aiosmtpd) and a JSON-lines file. Every byte
they received is scanned for every such value; none may be there."""

from __future__ import annotations

import email
import email.policy
import importlib.util
import json
import random
import re
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from normagent import FileSource
from normagent.config import ForwarderCommon, ForwarderConfig
from normagent.forward import ATTEMPTS, DEAD_LETTERS, Route, Worker, metrics_for
from normagent.forward.alertmanager import ALERTMANAGER, AlertmanagerSettings
from normagent.forward.file import FILE, FileSettings
from normagent.forward.smtp import EMAIL, EmailSettings
from normagent.forward.webhook import WEBHOOK, WebhookSettings
from normagent.ledger import Ledger
from normagent.loader import build_plugins
from normagent.plugins.access.collectors import LOGINS, LoginSettings
from normagent.plugins.edi.collectors import make_spec
from normagent.rules import SECTION_DEFAULTS, Engine, EngineSettings, complete
from normagent.testing import FakeClock, FakeHost, make_context, recorded_command, run_collector_once
from tests.plugins.edi.edi_generator import PATIENT_MARKER, Config, generate, settings_for
from tests.support.receivers import WebhookReceiver, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
FORWARDERS = ("hook", "am", "mail", "file")


def generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_authlog", REPO / "bench" / "gen_authlog.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_authlog"] = module
    spec.loader.exec_module(module)
    return module


def loosened(rule: Any) -> Any:
    """The rule made to fire on anything it sees: the payloads then carry all they ever could."""
    if rule.comparison in (">", ">="):
        rule = replace(rule, comparison=">", threshold=0)
    return replace(rule, for_=timedelta(0), min_preceding=1 if rule.preceded_by else rule.min_preceding)


def secrets_in(log: str, edi_root: Path) -> dict[str, set[str]]:
    """What must never leave the host, read from the fixtures themselves."""
    names = set(re.findall(r"(?:for|user|FOR|by|to) (?:invalid user )?'?([A-Za-z][\w.-]{2,})'?", log))
    names |= set(re.findall(r"(?:user|ruser)=([A-Za-z][\w.-]{2,})", log))
    names = {n for n in names if n.lower() not in ("unknown", "invalid")}  # "check pass; user unknown", login's UNKNOWN: words of the log, and closed-set values
    addresses = set(re.findall(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b", log))
    networks = {a.rsplit(".", 1)[0] + ".0/24" for a in addresses}
    hosts = set(re.findall(r"^\S+ (\S+) ", log, re.M)) | set(re.findall(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d (\S+) ", log, re.M))
    ids: set[str] = set()
    for path in edi_root.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            ids |= set(re.findall(r"<(?:\w+:)?(?:MsgId|Id|ConversationRef|RefToParent)>([^<&]{6,})</", text))
    return {"user names": names, "addresses": addresses | networks, "host names": hosts,
            "message ids": ids, "patient data": {PATIENT_MARKER, "01017012345", "Kåre Øyvind"}}


def static_texts(rules: Any) -> str:
    """Everything the payloads say that does not come from the data (a secret that is also a
    common word there, like "user", cannot be told apart and is left out of the scan)."""
    parts = []
    for rule in rules:
        for text in (rule.text_nb, rule.text_en):
            parts += [text.title, text.what, text.consequence, text.measures]
    for d in SECTION_DEFAULTS.values():
        parts += [d.nb.consequence, d.nb.measures, d.en.title, d.en.consequence, d.en.measures]
    return "\n".join(parts)


def test_no_payload_carries_a_user_name_address_or_message_id(tmp_path: Path, pki: Path) -> None:
    from aiosmtpd.controller import Controller

    edi_root = tmp_path / "edi"
    truth = generate(edi_root, Config(messages=300, per_day=60, seed=5))
    from datetime import datetime, timezone

    now = datetime.fromtimestamp(truth.now, timezone.utc)
    clock = FakeClock(now)
    root = tmp_path / "root"
    log = root / "var" / "log" / "auth.log"
    log.parent.mkdir(parents=True)
    generator().write(log, 30_000, 11, now - timedelta(minutes=10))
    with log.open("a") as f:  # someone guesses a password from one network, and gets in
        oslo = (now - timedelta(minutes=5)).astimezone(timezone(timedelta(hours=1)))
        for i in range(12):
            stamp = (oslo + timedelta(seconds=i)).isoformat(timespec="microseconds")
            f.write(f"{stamp} clinic-srv1 sshd[{4000 + i}]: Failed password for kari.nordmann from 203.0.113.77 port {5000 + i} ssh2\n")
        stamp = (oslo + timedelta(seconds=30)).isoformat(timespec="microseconds")
        f.write(f"{stamp} clinic-srv1 sshd[4100]: Accepted password for kari.nordmann from 203.0.113.78 port 5100 ssh2\n")
    secrets = secrets_in(log.read_text(), edi_root)

    plugins = build_plugins(entry_points_enabled=False)
    rules = [complete(loosened(r), timedelta(minutes=15)) for r in plugins.rules().values()]
    ledger = Ledger.open(tmp_path / "ledger.db", clock=clock)
    ledger.declare([m for spec in plugins.collectors().values() for m in spec.metrics])
    ledger.declare([m for m in metrics_for(FORWARDERS) if m.name in (ATTEMPTS.name, DEAD_LETTERS.name)])
    ledger.use_rules(Engine(rules, EngineSettings(host_id=ledger.host_id, location="Legekontoret")), FORWARDERS)

    settings = LoginSettings(prefer="files", files=FileSource(paths=("/var/log/auth.log",), start_at="beginning", timezone="Europe/Oslo"))
    run_collector_once(LOGINS, ledger, settings=settings, root=root, clock=clock)
    edi = make_spec()
    ledger.declare(edi.metrics)
    ctx = make_context(edi, settings=settings_for(edi_root), clock=clock, state=ledger.checkpoints(edi.name), host=FakeHost(),
                       run_command=recorded_command({}), timeout=600)
    for batch in edi.collect(ctx):
        ledger.commit(edi.name, batch)
    ledger.evaluate_rules()
    fired = {c.rule for c in ledger.candidates(["firing"])}
    assert {"access.failed_from_network", "access.failed_logins_burst", "access.success_after_failures",
            "edi.rejected_messages", "edi.misaddressed"} <= fired, f"too little fired to prove anything: {sorted(fired)}"

    hook, am = WebhookReceiver().start(), WebhookReceiver().start()
    mailbox: list[bytes] = []

    class Box:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            mailbox.append(envelope.content)
            return "250 OK"

    smtp_port = free_port()
    smtp = Controller(Box(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    out = tmp_path / "avvik.jsonl"
    try:
        targets = {
            "hook": (WEBHOOK, WebhookSettings(url=hook.url, secret="k")),
            "am": (ALERTMANAGER, AlertmanagerSettings(url=f"http://127.0.0.1:{am.port}")),
            "mail": (EMAIL, EmailSettings(host="127.0.0.1", port=smtp_port, starttls=False, from_address="a@b.invalid",
                                          to=("avvik@b.invalid",))),
            "file": (FILE, FileSettings(path=out)),
        }
        for name, (spec, s) in targets.items():
            worker = Worker(Route(ForwarderConfig(name, ForwarderCommon(kind=spec.kind), s), spec), ledger, clock, rng=random.Random(0))
            for _ in range(50):
                worker.run_once()
                if name not in ledger.outbox_stats():
                    break
            assert name not in ledger.outbox_stats(), f"{name} did not deliver everything"
    finally:
        hook.stop()
        am.stop()
        smtp.stop()
        ledger.close()

    payloads = {
        "webhook": [p.body.decode() for p in hook.posts],
        "alertmanager": [p.body.decode() for p in am.posts],
        "email": [email.message_from_bytes(m, policy=email.policy.default).as_string() for m in mailbox],
        "file": out.read_text().splitlines(),
    }
    changes = len(payloads["file"])
    assert changes >= 20 and all(len(v) == changes for v in payloads.values()), {k: len(v) for k, v in payloads.items()}
    # Decode what JSON escapes (æøå, /), so a value cannot hide behind \\u00e6.
    corpus = {kind: "\n".join(json.loads(json.dumps(t)) for t in texts) for kind, texts in payloads.items()}
    corpus["webhook"] = "\n".join(json.dumps(json.loads(t), ensure_ascii=False) for t in payloads["webhook"])
    corpus["alertmanager"] = "\n".join(json.dumps(json.loads(t), ensure_ascii=False) for t in payloads["alertmanager"])
    corpus["file"] = "\n".join(json.dumps(json.loads(t), ensure_ascii=False) for t in payloads["file"])
    static = static_texts(rules).lower()
    # Every word of every payload (dots and dashes kept inside: user names, addresses, ids).
    words = {kind: {w.strip(".-:").lower() for w in re.findall(r"[\w.:-]+", text)} for kind, text in corpus.items()}
    lowered = {kind: text.lower() for kind, text in corpus.items()}
    checked = 0
    for what, values in secrets.items():
        for value in values:
            if value.lower() in static or len(value) < 4:
                continue  # "user", "test": words of the texts themselves, not proof of anything
            checked += 1
            for kind in corpus:
                found = value.lower() in lowered[kind] if re.search(r"[\s/]", value) else value.lower() in words[kind]
                assert not found, f"{what[:-1]} {value!r} is in a {kind} payload"
    assert len(secrets["user names"]) >= 15 and len(secrets["addresses"]) >= 50 and len(secrets["message ids"]) >= 100
    assert checked >= 200, checked
