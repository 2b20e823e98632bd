"""A fresh ledger's first index writes the index entries of the files it read ``ok`` at its end, in
key order (``collectors._write_deferred``): whatever batch the run is cut after, the next cycle
(after a restart too) counts every file once, and every file has its entry."""

from __future__ import annotations

from typing import Any

import pytest

from normagent.plugins.edi.index import FILE
from tests.plugins.edi.edi_generator import Config, generate, settings_for
from tests.plugins.edi.test_edi_collector import assert_truth


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("edi-deferred")
    return root, generate(root, Config(messages=60, per_day=20, seed=5))


def _entries(h: Any) -> list[str]:
    return list(h.ledger.checkpoints(h.spec.name).keys(FILE))


def test_the_entries_come_in_their_own_batches_after_the_files(harness: Any, small_tree: Any) -> None:
    root, truth = small_tree
    h = harness(settings_for(root, batch_size=40, first_index_batch_size=40), truth.now)
    batches = h.cycle()
    files = [[c.key for c in b.checkpoints if c.key.startswith(FILE)] for b in batches]
    ok = [[c.key for c in b.checkpoints if c.key.startswith(FILE) and c.value and c.value[2] == "ok"] for b in batches]
    # The reading batches stage the entries of what was not read ok (broken files, copies ...);
    # the entries of the files read ok follow in one batch, in key order.
    assert [len(keys) > 0 for keys in ok] == [False] * (len(batches) - 2) + [True, False]
    assert ok[-2] == sorted(ok[-2])
    assert sum(len(keys) for keys in files) == truth.file_count
    assert sorted(_entries(h)) == sorted(k for keys in files for k in keys)
    assert h.value("normagent_edi_indexed_files") == truth.file_count
    assert_truth(h, truth)


def test_a_first_index_cut_after_any_batch_counts_every_file_once(harness: Any, small_tree: Any) -> None:
    root, truth = small_tree
    total = len(harness(settings_for(root, batch_size=40, first_index_batch_size=40), truth.now).cycle())
    assert total > 4
    for cut in range(1, total):
        h = harness(settings_for(root, batch_size=40, first_index_batch_size=40), truth.now)
        run = h.batches()
        for _ in range(cut):
            h.ledger.commit(h.spec.name, next(run))
        next(run)  # yielded, never committed: the agent stopped, the deadline passed
        run.close()
        h.restart()
        h.cycle()
        assert_truth(h, truth)
        assert h.value("normagent_edi_files_total", outcome="rewritten") == 0, cut
        assert len(_entries(h)) == truth.file_count, cut
        assert h.value("normagent_edi_indexed_files") == truth.file_count, cut
        # And the index holds: nothing new, nothing read again.
        h.clock.advance(60)
        again = h.cycle()
        counted = [o for b in again for o in b.observations if type(o).__name__ == "Count" and o.value
                   and o.metric in ("normagent_edi_files_total", "normagent_edi_messages_total")]
        assert not counted, cut


def test_a_long_first_index_writes_the_entries_so_far_when_half_its_time_is_gone(harness: Any, small_tree: Any) -> None:
    """A first index longer than half its run writes the entries it kept back then, and the later
    ones with their batches: a run ended at its deadline then leaves its next one nothing to read
    twice."""
    root, truth = small_tree
    h = harness(settings_for(root, batch_size=40, first_index_batch_size=40), truth.now)
    run = h.batches(timeout=100)
    batches = []
    for batch in run:
        h.ledger.commit(h.spec.name, batch)
        batches.append(batch)
        if len(batches) == 2:
            h.clock.advance(51)  # past half of the run, not past its end
    ok = [[c.key for c in b.checkpoints if c.key.startswith(FILE) and c.value and c.value[2] == "ok"] for b in batches]
    assert [bool(keys) for keys in ok[:4]] == [False, False, True, True]
    assert ok[2] == sorted(ok[2])
    assert_truth(h, truth)
    assert len(_entries(h)) == truth.file_count
    assert h.value("normagent_edi_indexed_files") == truth.file_count
