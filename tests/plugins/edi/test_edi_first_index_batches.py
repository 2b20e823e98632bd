"""A fresh ledger's first index in larger batches (``first_index_batch_size``), and what its end
leaves in memory: the mirror read again from the ledger, the traffic queue read one entry at a
time."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from structlog.testing import capture_logs

from normagent.plugins.edi import collectors
from normagent.plugins.edi.index import QUEUE, Index
from tests.plugins.edi.edi_generator import Config, generate, settings_for
from tests.plugins.edi.test_edi_collector import assert_truth


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("edi-first-batches")
    return root, generate(root, Config(messages=60, per_day=20, seed=7))


def _files_read(batch: Any) -> int:
    return int(sum(o.value for o in batch.observations
                   if type(o).__name__ == "Count" and o.metric == "normagent_edi_files_total"))


def test_a_fresh_first_index_reads_first_index_batch_size_files_a_batch_and_later_cycles_batch_size(
    harness: Any, small_tree: Any
) -> None:
    root, truth = small_tree
    settings = settings_for(root, batch_size=7, first_index_batch_size=20)
    # First only the outgoing folder (57 files): a fresh ledger, read 20 files a batch.
    h = harness(dataclasses.replace(settings, folders=tuple(f for f in settings.folders if f.path.name == "ut")),
                truth.now)
    first = [_files_read(b) for b in h.cycle()]
    assert [n for n in first if n] == [20, 20, 17], first
    # Then every folder: the ledger holds an index now, so the rest comes 7 files a batch.
    later = [_files_read(b) for b in h.cycle(settings=settings)]
    assert len(later) > 3
    assert max(later) == 7, later
    assert sum(first) + sum(later) == truth.file_count


def test_after_a_big_first_index_the_mirror_is_read_again_and_the_next_cycle_lists_nothing(
    harness: Any, small_tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a cycle of ``BIG_CYCLE`` files the collector's mirror is read again from the ledger
    (its objects were spread over the batches' memory): it must be the committed one, so the
    next cycle neither loads it again (which would also make it list every watched folder) nor
    finds anything to read."""
    root, truth = small_tree
    monkeypatch.setattr(collectors, "BIG_CYCLE", 10)
    h = harness(settings_for(root, batch_size=40, first_index_batch_size=40), truth.now)
    h.cycle()
    kept = h.spec.collect.__self__._index
    fresh = Index.load(h.ledger.checkpoints(h.spec.name))
    assert kept is not None and kept.token == fresh.token
    assert (kept.pending, kept.unmatched, kept.dirs, kept.queue, kept.file_count) == (
        fresh.pending, fresh.unmatched, fresh.dirs, fresh.queue, fresh.file_count)
    assert kept.absent is None
    with capture_logs() as logs:
        batches = h.cycle()
    assert not [e for e in logs if e["event"] == "edi_index_loaded"]
    scanned = [e for e in logs if e["event"] == "edi_scanned"]
    assert scanned and scanned[0]["found"] == 0
    assert not any(_files_read(b) for b in batches)
    assert_truth(h, truth)


def test_the_traffic_queue_of_every_batch_reaches_the_stop_logic_once(harness: Any, small_tree: Any) -> None:
    """The queue is read one entry at a time by its keys in memory (``Index.queued``): every
    batch's traffic is fed to the stop logic at the cycle's end and its entry deleted."""
    root, truth = small_tree
    h = harness(settings_for(root, batch_size=40, first_index_batch_size=40), truth.now)
    run = h.batches()
    queued: list[str] = []
    for batch in run:
        h.ledger.commit(h.spec.name, batch)
        keys = [c.key for c in batch.checkpoints if c.key.startswith(QUEUE)]
        queued += [k for k in keys if any(c.key == k and c.value is not None for c in batch.checkpoints)]
    assert len(queued) > 3
    assert list(h.ledger.checkpoints(h.spec.name).keys(QUEUE)) == []
    assert_truth(h, truth)


def test_a_run_whose_deadline_passed_during_a_commit_reads_no_further_file(harness: Any, small_tree: Any) -> None:
    """The loop reads the clock once per file, and again after each yield (the commit takes time):
    once the deadline passed while a batch was committed, no file is read any more — what the
    run still yields (the entries deferred so far) counts none, and the next run reads the rest."""
    root, truth = small_tree
    h = harness(settings_for(root, batch_size=10, first_index_batch_size=10), truth.now)
    run = h.batches(timeout=600)
    first = next(run)  # a fresh ledger's layout mark first
    while not _files_read(first):
        h.ledger.commit(h.spec.name, first)
        first = next(run)
    h.ledger.commit(h.spec.name, first)
    assert _files_read(first) == 10
    h.clock.advance(601)  # the commit took the rest of the run
    late = list(run)
    assert sum(_files_read(b) for b in late) == 0, [_files_read(b) for b in late]
    for batch in late:
        h.ledger.commit(h.spec.name, batch)
    h.cycle()  # the rest, once each (the clock moved on: only what does not depend on it is compared)
    assert h.nonzero("normagent_edi_messages_total", "direction", "msg_type") == {
        k: float(v) for k, v in truth.messages.items() if v}
    assert sum(h.series("normagent_edi_files_total", "outcome").values()) == truth.file_count
