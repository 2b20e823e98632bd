"""The EDI index's pending set in the ledger (``wt:<time>:<key>``): the committed family is always
the set the collector holds in memory — written when a message starts waiting, moved when its
record changes, deleted when its receipt comes or it is forgotten — so a restart waits for
exactly the messages still waiting; and a ledger written in layout 2 (``w:<key>``) is read after
the upgrade, nothing counted again."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from normagent import Batch, Checkpoint
from normagent.plugins.edi.correlate import Record
from normagent.plugins.edi.index import PENDING, Index, pending_key, pending_record_key
from normagent.plugins.edi.settings import EdiFolder, EdiSettings
from tests.plugins.edi.conftest import write
from tests.plugins.edi.edi_generator import OWN_HER, apprec, msghead

UNACK = "normagent_edi_unacknowledged_messages"
SENT = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc).timestamp()


def _settings(tmp_path: Path) -> EdiSettings:
    (tmp_path / "inn").mkdir(exist_ok=True)
    return EdiSettings(folders=(EdiFolder(path=tmp_path / "ut", direction="out"),
                                EdiFolder(path=tmp_path / "inn", direction="in")))


def _committed(h: Any) -> list[tuple[str, Any]]:
    return list(h.ledger.checkpoints(h.spec.name).scan(PENDING))


def _in_memory(h: Any) -> dict[str, Record]:
    return dict(h.spec.collect.__self__._index.pending)


def _assert_ledger_is_memory(h: Any) -> None:
    """The committed pending family, key by key, is the collector's pending set; and a fresh load
    (a restart) gives the same set."""
    memory = _in_memory(h)
    committed = _committed(h)
    assert sorted(k for k, _ in committed) == sorted(pending_key(k, r) for k, r in memory.items())
    assert {pending_record_key(k): Record.from_json(v) for k, v in committed} == memory
    assert Index.load(h.ledger.checkpoints(h.spec.name)).pending == memory


def test_the_committed_pending_set_follows_sends_receipts_and_restarts(harness: Any, tmp_path: Path) -> None:
    # Six messages sent a minute apart, named against their order (the family is ordered by time).
    for i in range(6):
        write(tmp_path / "ut" / f"{9 - i}.xml", msghead(f"m{i}", "LOM", "", OWN_HER[0], "2"), SENT + 60 * i)
    h = harness(_settings(tmp_path), SENT + 600)
    h.cycle()
    _assert_ledger_is_memory(h)
    assert [pending_record_key(k) for k, _ in _committed(h)] == [f"m:m{i}" for i in range(6)]

    # Receipts for two of them in a later cycle: their committed entries go.
    for i in (1, 4):
        write(tmp_path / "inn" / f"r{i}.xml", apprec(f"r{i}", f"m{i}", "LOM", "1", "", "2", OWN_HER[0]), SENT + 700 + i)
    h.clock.advance(120)
    h.cycle()
    _assert_ledger_is_memory(h)
    assert sorted(_in_memory(h)) == ["m:m0", "m:m2", "m:m3", "m:m5"]

    # Past the timeout, still waiting: the records change (counted overdue) and stay pending.
    h.clock.advance(2 * 86400)
    h.cycle()
    _assert_ledger_is_memory(h)
    assert all(r.overdue for r in _in_memory(h).values())
    assert h.value(UNACK, msg_type="LOM", receipt="application") == 4

    # A restart waits for exactly those; a receipt after it removes one.
    h.restart()
    write(tmp_path / "inn" / "r3.xml", apprec("r3", "m3", "LOM", "1", "", "2", OWN_HER[0]), SENT + 2 * 86400 + 900)
    h.clock.advance(60)
    h.cycle()
    _assert_ledger_is_memory(h)
    assert sorted(_in_memory(h)) == ["m:m0", "m:m2", "m:m5"]
    assert h.value(UNACK, msg_type="LOM", receipt="application") == 3
    assert h.value("normagent_edi_unacknowledged_total", msg_type="LOM", receipt="application") == 4

    # Forgotten after ``forget_unacknowledged_after``: gone from the ledger too.
    h.clock.advance(40 * 86400)
    h.cycle()
    _assert_ledger_is_memory(h)
    assert _in_memory(h) == {}
    h.restart()
    h.clock.advance(60)
    h.cycle()
    assert h.value(UNACK, msg_type="LOM", receipt="application") == 0


def test_a_ledger_of_layout_2_is_read_after_the_upgrade(harness: Any, tmp_path: Path) -> None:
    """Layout 2 kept the pending set as ``w:<key>`` and said ``v`` = 2: the first cycle after the
    upgrade moves it under the time-ordered keys in one batch; nothing is read or counted again,
    the gauges stay, and a receipt that comes later still finds its message waiting."""
    for i in range(4):
        write(tmp_path / "ut" / f"m{i}.xml", msghead(f"m{i}", "LOM", "", OWN_HER[0], "2"), SENT + 60 * i)
    h = harness(_settings(tmp_path), SENT + 2 * 86400)
    h.cycle()
    before = _committed(h)
    gauges = h.nonzero(UNACK, "msg_type", "receipt")
    assert len(before) == 4 and gauges == {("LOM", "application"): 4}
    # The same ledger as layout 2 wrote it.
    old = [Checkpoint(k, None) for k, _ in before] + [Checkpoint("w:" + pending_record_key(k), v) for k, v in before]
    h.ledger.commit(h.spec.name, Batch([], [*old, Checkpoint("v", 2)]))
    h.restart()
    h.clock.advance(60)
    with capture_logs() as logs:
        h.cycle()
    assert [e for e in logs if e["event"] == "edi_index_derived"]
    assert [e for e in logs if e["event"] == "edi_scanned"][-1]["found"] == 0
    state = h.ledger.checkpoints(h.spec.name)
    assert list(state.keys("w:")) == [] and state.get("v") == 3
    assert _committed(h) == before
    assert h.nonzero(UNACK, "msg_type", "receipt") == gauges
    assert h.value("normagent_edi_messages_total", direction="out", msg_type="LOM") == 4
    write(tmp_path / "inn" / "r2.xml", apprec("r2", "m2", "LOM", "1", "", "2", OWN_HER[0]), SENT + 2 * 86400 + 70)
    h.clock.advance(60)
    h.cycle()
    _assert_ledger_is_memory(h)
    assert h.value(UNACK, msg_type="LOM", receipt="application") == 3


def test_a_fresh_ledgers_first_index_forgets_what_is_already_past_retention(harness: Any, tmp_path: Path) -> None:
    """The first index of a fresh ledger knows the times of every record it committed, so its prune
    reads no id when none is older than ``history_retention`` — and still forgets those that are
    in that cycle, read early (the oldest files come first) or late (an archive's, read last)."""
    from datetime import timedelta

    now = SENT + 30 * 86400
    for i in range(5):
        write(tmp_path / "ut" / f"old{i}.xml", msghead(f"old{i}", "LOM", "", OWN_HER[0], "2", ack="N"), SENT + i)
        write(tmp_path / "ut" / f"new{i}.xml", msghead(f"new{i}", "LOM", "", OWN_HER[0], "2", ack="N"), now - 3600 + i)
    write(tmp_path / "arkiv" / "gammel.xml", msghead("gammel", "LOM", "", OWN_HER[0], "2", ack="N"), SENT - 86400)
    settings = EdiSettings(
        folders=(EdiFolder(path=tmp_path / "ut", direction="out"),
                 EdiFolder(path=tmp_path / "arkiv", direction="out", role="archive")),
        history_retention=timedelta(days=10), batch_size=3, first_index_batch_size=3,
    )
    h = harness(settings, now)
    with capture_logs() as logs:
        batches = h.cycle()
    assert len(batches) > 3
    state = h.ledger.checkpoints(h.spec.name)
    assert [e["ids"] for e in logs if e["event"] == "edi_ids_forgotten"] == [6]
    assert sorted(state.keys("m:")) == [f"m:new{i}" for i in range(5)]
    assert h.value("normagent_edi_messages_total", direction="out", msg_type="LOM") == 11

    # All within retention: nothing forgotten in the first cycle; the prune after it reads the
    # ledger as always.
    for path in [*(tmp_path / "ut").glob("old*"), tmp_path / "arkiv" / "gammel.xml"]:
        path.unlink()
    h2 = harness(settings, now)
    with capture_logs() as logs:
        h2.cycle()
    assert not [e for e in logs if e["event"] == "edi_ids_forgotten"]
    assert sorted(h2.ledger.checkpoints(h2.spec.name).keys("m:")) == [f"m:new{i}" for i in range(5)]
    h2.clock.advance(11 * 86400)
    with capture_logs() as logs:
        h2.cycle()
    assert [e["ids"] for e in logs if e["event"] == "edi_ids_forgotten"] == [5]
