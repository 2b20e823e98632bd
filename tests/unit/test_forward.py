"""Delivery from the outbox to real receivers on 127.0.0.1: a webhook server, a JSON-lines file,
an SMTP server with STARTTLS and AUTH (aiosmtpd). The worker runs one pass at a time on a fake
clock, so back-off, pauses and dead letters are exact."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from normagent.config import ForwarderCommon, ForwarderConfig
from normagent import forward
from normagent.forward import ATTEMPTS, DEAD_LETTERS, SWEEP_EVERY, Route, Worker, backoff, metrics_for
from normagent.forward.alertmanager import ALERTMANAGER, AlertmanagerSettings, alert
from normagent.forward.file import FILE, FileSettings
from normagent.forward.webhook import WEBHOOK, WebhookSettings, signature
from normagent.ledger import Ledger
from normagent.model import Batch, Count, Delivery, DeliveryFailed, ForwarderSpec, MetricSpec, RuleSpec
from normagent.rules import Engine, EngineSettings, complete
from normagent.testing import FakeClock
from tests.support.receivers import WebhookReceiver

SCHEMA = json.loads((Path(__file__).parents[2] / "normagent" / "forward" / "change.schema.json").read_text())
EVENTS = MetricSpec("normagent_test_events_total", "counter", "Events.", ("source",))
RULE = RuleSpec(name="test.events", watch=EVENTS.name, comparison=">", threshold=0, window=timedelta(hours=1),
                group_by=("source",), summary="{value} hendelser fra {source} siste {window}.", section="Driftsstatus")


def validate(document: dict[str, Any]) -> None:
    import jsonschema

    jsonschema.validate(document, SCHEMA, format_checker=jsonschema.FormatChecker())


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(secret=b"s3cret").start()
    yield r
    r.stop()


def setup(ledger: Ledger, spec: ForwarderSpec, settings: Any, name: str = "hook", **common: Any) -> Worker:
    ledger.declare([EVENTS, *(m for m in metrics_for([name]) if m.name in (ATTEMPTS.name, DEAD_LETTERS.name))])
    engine = Engine([complete(RULE, timedelta(minutes=5))], EngineSettings(host_id=ledger.host_id, location="Testklinikken"))
    ledger.use_rules(engine, [name])
    route = Route(ForwarderConfig(name, ForwarderCommon(kind=spec.kind, **common), settings), spec)
    return Worker(route, ledger, ledger._clock, rng=random.Random(1))


def fire(ledger: Ledger, *sources: str) -> None:
    ledger.commit("c", Batch([Count(EVENTS.name, {"source": s}) for s in sources]))


def attempts(ledger: Ledger, result: str, name: str = "hook") -> float:
    return ledger.counter_value(ATTEMPTS.name, {"forwarder": name, "result": result})


def test_webhook_delivers_a_signed_body_that_matches_the_schema(ledger: Ledger, receiver: WebhookReceiver) -> None:
    worker = setup(ledger, WEBHOOK, WebhookSettings(url=receiver.url, secret="s3cret", bearer_token="t0ken"))
    fire(ledger, "sshd")
    worker.run_once()
    [got] = receiver.accepted
    document = got.document
    validate(document)
    assert got.key == document["idempotency_key"] == f"{document['fingerprint']}-firing-1"
    assert got.headers["X-Normagent-Signature"] == "sha256=" + hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
    assert got.headers["Authorization"] == "Bearer t0ken"
    assert receiver.bad_signatures == 0
    assert document["texts"]["nb"]["what"] == "1 hendelser fra sshd siste 1 time."
    assert document["host"]["location"] == "Testklinikken"
    assert attempts(ledger, "ok") == 1
    assert ledger.due_deliveries("hook") == []


def test_a_failing_receiver_keeps_the_change_and_the_forwarder_backs_off(ledger: Ledger, clock: FakeClock,
                                                                          receiver: WebhookReceiver) -> None:
    worker = setup(ledger, WEBHOOK, WebhookSettings(url=receiver.url), retry_min=timedelta(seconds=2), parallel=1)
    receiver.mode = "fail"
    fire(ledger, "a", "b")
    wait = worker.run_once()
    assert len(receiver.posts) == 1, "after the first failure the rest of the batch waits with the pause"
    assert 1.0 <= wait <= 2.0
    assert worker.run_once() == pytest.approx(wait), "paused: nothing is tried"
    assert len(receiver.posts) == 1
    clock.advance(wait)
    worker.run_once()
    assert len(receiver.posts) == 2
    assert attempts(ledger, "http_error") == 2
    assert ledger.outbox_stats()["hook"].pending == 2
    receiver.mode = "ok"
    clock.advance(10)
    worker.run_once()
    assert sorted(r.document["labels"]["source"] for r in receiver.accepted) == ["a", "b"]
    assert "hook" not in ledger.outbox_stats()


def test_parallel_deliveries_start_no_new_one_after_a_failure(ledger: Ledger, receiver: WebhookReceiver) -> None:
    worker = setup(ledger, WEBHOOK, WebhookSettings(url=receiver.url), parallel=4)
    receiver.mode = "fail"
    fire(ledger, *"abcdefghij")
    worker.run_once()
    assert 1 <= len(receiver.posts) <= 4, "at most the deliveries already in flight"
    assert ledger.outbox_stats()["hook"].pending == 10
    receiver.mode = "ok"
    ledger._clock.advance(10)  # type: ignore[attr-defined]
    worker.run_once()
    assert sorted(r.document["labels"]["source"] for r in receiver.accepted) == list("abcdefghij")
    assert worker.parallel == 4


def test_the_parallel_deliveries_threads_end_when_nothing_is_due_and_stay_through_a_backlog(
    ledger: Ledger, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle threads cost the idle agent memory: a pass that leaves nothing due ends them; a pass
    that stops at a full batch (more rows due at once) keeps them for the next."""
    worker = setup(ledger, WEBHOOK, WebhookSettings(url=receiver.url), parallel=3)
    monkeypatch.setattr(forward, "BATCH", 5)  # a backlog within the 20 groups a rule raises at most

    def pool_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("forward:hook_")]

    fire(ledger, *(f"s{i}" for i in range(8)))
    assert worker.run_once() == 0.0  # a full batch delivered, more rows due
    assert len(pool_threads()) == 3
    assert worker.run_once() > 0.0  # the rest delivered: nothing due
    for thread in pool_threads():
        thread.join(timeout=10)
    assert pool_threads() == []
    assert len(receiver.accepted) == 8 and "hook" not in ledger.outbox_stats()
    fire(ledger, "again")  # and deliveries after it start their threads anew
    worker.run_once()
    assert [r.document["labels"]["source"] for r in receiver.accepted][-1] == "again"
    worker.close()


def test_an_unreachable_receiver_is_a_result_not_a_crash(ledger: Ledger, clock: FakeClock) -> None:
    from tests.support.receivers import free_port

    worker = setup(ledger, WEBHOOK, WebhookSettings(url=f"http://127.0.0.1:{free_port()}/x", timeout=timedelta(seconds=2)))
    fire(ledger, "a")
    worker.run_once()
    assert attempts(ledger, "unreachable") == 1
    assert ledger.outbox_stats()["hook"].pending == 1


def test_a_slow_receiver_times_out(ledger: Ledger, receiver: WebhookReceiver) -> None:
    receiver.mode, receiver.slow_seconds = "slow", 2.0
    worker = setup(ledger, WEBHOOK, WebhookSettings(url=receiver.url, timeout=timedelta(milliseconds=300)))
    fire(ledger, "a")
    worker.run_once()
    assert attempts(ledger, "timeout") == 1


def test_changes_of_one_fingerprint_are_delivered_in_order(ledger: Ledger, clock: FakeClock, receiver: WebhookReceiver) -> None:
    worker = setup(ledger, WEBHOOK, WebhookSettings(url=receiver.url))
    receiver.mode = "fail"
    fire(ledger, "a")
    worker.run_once()  # firing-1 fails
    clock.advance(3600 * 2)  # the window empties …
    ledger.evaluate_rules()
    clock.advance(600)  # … and stays empty past the hold: resolved-2 queued behind firing-1
    ledger.evaluate_rules()
    receiver.mode = "ok"
    for _ in range(3):
        clock.advance(400)
        worker.run_once()
    assert [r.key.split("-", 1)[1] for r in receiver.accepted] == ["firing-1", "resolved-2"]
    for r in receiver.accepted:
        validate(r.document)


def test_a_change_waiting_behind_its_earlier_one_does_not_make_the_worker_spin(ledger: Ledger, clock: FakeClock,
                                                                              receiver: WebhookReceiver) -> None:
    """Before: after a restart (or reload) the worker took the next attempt of resolved-2, due at
    once but waiting behind firing-1 and its back-off, for when to look again: 0 s, pass after pass,
    a loop of ledger queries on a whole core until firing-1 was due (retry_max: up to a day)."""
    worker = setup(ledger, WEBHOOK, WebhookSettings(url=receiver.url), retry_min=timedelta(hours=12), retry_max=timedelta(days=1))
    receiver.mode = "fail"
    fire(ledger, "a")
    worker.run_once()  # firing-1 fails: next attempt in 6 to 12 hours
    clock.advance(3600 * 2)
    ledger.evaluate_rules()
    clock.advance(600)
    ledger.evaluate_rules()  # resolved-2 queued behind firing-1, itself due now
    restarted = Worker(worker.route, ledger, clock)
    assert restarted.run_once() == SWEEP_EVERY, "nothing can go before firing-1's next attempt: the next look is the sweep's"
    assert receiver.posts[-1].key.endswith("-firing-1") and len(receiver.posts) == 1


def test_dead_letters_are_kept_counted_and_unblock_the_fingerprint(ledger: Ledger, clock: FakeClock, receiver: WebhookReceiver) -> None:
    worker = setup(ledger, WEBHOOK, WebhookSettings(url=receiver.url), dead_letter_after=timedelta(hours=1))
    receiver.mode = "fail"
    fire(ledger, "a")
    worker.run_once()
    clock.advance(3601)
    worker.run_once()  # the sweep comes first in each pass
    assert ledger.counter_value(DEAD_LETTERS.name, {"forwarder": "hook"}) == 1
    [dead] = ledger.dead_letters()
    assert dead.status == "dead" and dead.forwarder == "hook" and dead.last_result == "http_error"
    assert "hook" not in ledger.outbox_stats(), "nothing pending any more: given up, not lost"


def test_backoff_doubles_with_jitter_up_to_the_limit() -> None:
    rng = random.Random(7)
    waits = [backoff(n, 1.0, 60.0, rng) for n in range(1, 10)]
    for n, wait in enumerate(waits, 1):
        full = min(60.0, 2 ** (n - 1))
        assert full / 2 <= wait <= full
    assert len({round(w, 6) for w in waits}) == len(waits)


def test_file_forwarder_appends_fsynced_lines_once(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "avvik.jsonl"
    worker = setup(ledger, FILE, FileSettings(path=out))
    fire(ledger, "a", "b")
    worker.run_once()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["labels"]["source"] for d in lines] == ["a", "b"]
    for d in lines:
        validate(d)


def test_file_forwarder_does_not_repeat_a_line_written_before_a_crash(ledger: Ledger, tmp_path: Path) -> None:
    """The line is on disk but the ledger never noted the delivery: after the restart the sender
    finds the key in the file's tail and does not write it twice."""
    out = tmp_path / "avvik.jsonl"
    worker = setup(ledger, FILE, FileSettings(path=out))
    fire(ledger, "a")
    [row] = ledger.due_deliveries("hook")
    out.write_text(json.dumps(row.document) + "\n")  # what the crashed agent had written
    worker.run_once()
    assert len(out.read_text().splitlines()) == 1
    assert ledger.due_deliveries("hook") == []


def last_error(ledger: Ledger, name: str = "hook") -> str:
    record = ledger.candidate(1)
    assert record is not None
    return next(d.last_error or "" for d in record.deliveries if d.forwarder == name)


@pytest.mark.parametrize(("target", "words"), [("/dev/null", "is a character device, not a regular file"),
                                               (".", "Is a directory")])
def test_file_forwarder_refuses_what_is_no_regular_file_and_keeps_the_change(ledger: Ledger, tmp_path: Path, target: str,
                                                                              words: str) -> None:
    """Before: /dev/null took every change as delivered (and a device was read, for the keys in
    its "tail", to its end: /dev/zero or /dev/full took all the memory there is)."""
    out = tmp_path / "avvik.jsonl"
    out.symlink_to(target if target.startswith("/") else tmp_path)
    worker = setup(ledger, FILE, FileSettings(path=out))
    fire(ledger, "a")
    worker.run_once()
    assert attempts(ledger, "error") == 1 and attempts(ledger, "ok") == 0
    assert ledger.outbox_stats()["hook"].pending == 1
    assert words in last_error(ledger)


def test_a_fifo_at_the_file_forwarders_path_fails_the_delivery_instead_of_holding_the_forwarder(ledger: Ledger,
                                                                                                tmp_path: Path) -> None:
    """Before: opening the FIFO waited for a reader for ever: no attempt counted, no log line, the
    change stuck in the outbox with nothing saying why."""
    import os
    import threading

    out = tmp_path / "avvik.jsonl"
    os.mkfifo(out)
    worker = setup(ledger, FILE, FileSettings(path=out))
    fire(ledger, "a")
    passed = threading.Thread(target=worker.run_once, daemon=True)
    passed.start()
    passed.join(60)  # not a measure of speed: without the fix the pass never ends
    assert not passed.is_alive(), "the forwarder hangs in open() on the FIFO"
    assert attempts(ledger, "error") == 1 and ledger.outbox_stats()["hook"].pending == 1
    assert "is a FIFO, not a regular file" in last_error(ledger)


def test_file_forwarder_takes_back_a_line_a_full_filesystem_cut_short_and_writes_it_whole_later(ledger: Ledger, clock: FakeClock,
                                                                                               tmp_path: Path) -> None:
    """Before: the part written stayed, the retry's line was glued to it, and the reader got one
    line of garbage instead of that change (the ledger had it as delivered)."""
    from tests.support.disks import fill, small_filesystem

    with small_filesystem(tmp_path / "small", "64k") as small:
        out = small / "avvik.jsonl"
        worker = setup(ledger, FILE, FileSettings(path=out), retry_min=timedelta(seconds=1))
        fire(ledger, "a")
        worker.run_once()
        ballast = fill(small)  # what is left: the rest of the file's last page
        fire(ledger, *"bcdefgh")
        worker.run_once()
        assert attempts(ledger, "error") == 1, "the page's rest was used up in the middle of a line"
        assert out.read_bytes().endswith(b"\n")
        ballast.remove()
        clock.advance(10)
        worker.run_once()
        lines = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(d["labels"]["source"] for d in lines) == list("abcdefgh")
    assert ledger.due_deliveries("hook") == []


def test_file_forwarder_starts_its_line_on_a_new_one_after_a_line_a_crash_cut_short(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "avvik.jsonl"
    out.write_bytes(b'{"idempotency_key":"x-firing-1","la')  # a power cut in the middle of a line
    worker = setup(ledger, FILE, FileSettings(path=out))
    fire(ledger, "a")
    worker.run_once()
    torn, line = out.read_bytes().split(b"\n", 1)
    assert torn == b'{"idempotency_key":"x-firing-1","la'
    assert json.loads(line)["labels"]["source"] == "a"


def test_a_delivery_the_full_state_filesystem_kept_from_being_noted_is_not_sent_again(tmp_path: Path, clock: FakeClock,
                                                                                      receiver: WebhookReceiver) -> None:
    """Before: the receiver took the change, the ledger could not note it (no room), and the next
    pass sent it again: the webhook got it twice, a JSON-lines file had two lines of it (its
    check of the tail is made when the file is opened, before this line was written)."""
    from tests.support.disks import fill, small_filesystem

    out = tmp_path / "avvik.jsonl"
    with small_filesystem(tmp_path / "small", "1m") as small, Ledger.open(small / "ledger.db", clock=clock) as ledger:
        ledger.declare([EVENTS, *(m for m in metrics_for(["hook", "file"]) if m.name == ATTEMPTS.name)])
        engine = Engine([complete(RULE, timedelta(minutes=5))], EngineSettings(host_id=ledger.host_id, location="Testklinikken"))
        ledger.use_rules(engine, ["hook", "file"])
        workers = [Worker(Route(ForwarderConfig(name, ForwarderCommon(kind=spec.kind), settings), spec), ledger, clock)
                   for name, spec, settings in (("hook", WEBHOOK, WebhookSettings(url=receiver.url)),
                                                ("file", FILE, FileSettings(path=out)))]
        fire(ledger, "a")
        ballast = fill(small)
        for worker in workers:
            with pytest.raises(Exception, match="the state filesystem is full"):
                worker.run_once()
        ballast.remove()
        clock.advance(10)
        for worker in workers:
            worker.run_once()
            worker.run_once()
        assert len(receiver.posts) == 1
        assert len(out.read_text().splitlines()) == 1
        assert ledger.due_deliveries("hook") == ledger.due_deliveries("file") == []
        assert attempts(ledger, "ok") == attempts(ledger, "ok", "file") == 1


def test_a_forwarder_that_raises_anything_is_retried(ledger: Ledger) -> None:
    def broken(delivery: Delivery, settings: Any) -> None:
        raise RuntimeError("bug")

    spec = ForwarderSpec("broken", "Raises.", broken)
    worker = setup(ledger, spec, None)
    fire(ledger, "a")
    worker.run_once()
    assert attempts(ledger, "error") == 1 and ledger.outbox_stats()["hook"].pending == 1


def test_alertmanager_alert_shape() -> None:
    document = {
        "rule": "test.events", "severity": "warning", "section": "Driftsstatus", "state": "firing",
        "labels": {"source": "sshd"}, "host": {"id": "abc", "location": "Kjelleren"}, "owner": "IKT-leder",
        "cia": ["tilgjengelighet"], "personal_data": False, "id": 3, "idempotency_key": "k",
        "fired_at": "2026-11-23T07:00:00Z", "resolved_at": None,
        "texts": {lang: {"title": "T", "what": "W", "consequence": "C", "measures": "M"} for lang in ("nb", "en")},
    }
    from datetime import datetime, timezone

    now = datetime(2026, 11, 23, 7, 1, tzinfo=timezone.utc)
    got = alert(document, AlertmanagerSettings(url="http://x", labels={"site": "s"}), now)
    assert got["labels"] == {"source": "sshd", "site": "s", "alertname": "test.events", "severity": "warning",
                             "section": "Driftsstatus", "normagent_host": "abc", "location": "Kjelleren"}
    assert got["endsAt"] == "2026-11-23T07:05:00.000Z" and got["startsAt"] == "2026-11-23T07:00:00Z"
    resolved = alert({**document, "state": "resolved", "resolved_at": "2026-11-23T07:30:00Z"}, AlertmanagerSettings(url="http://x"), now)
    assert resolved["endsAt"] == "2026-11-23T07:30:00Z"


def test_signature_is_hmac_sha256_of_the_body() -> None:
    assert signature(b"k", b"{}") == "sha256=" + hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()


def test_delivery_failed_carries_its_result() -> None:
    assert DeliveryFailed("timeout", "x").result == "timeout"


def test_alertmanager_refresh_is_asked_of_the_spec() -> None:
    assert ALERTMANAGER.refresh is not None and ALERTMANAGER.refresh(AlertmanagerSettings(resend_every=timedelta(seconds=5))) == timedelta(seconds=5)
