"""``RollupRows``: many keys of one rollup and day in one observation, written by the ledger in
one statement (issue 15: a firewall backlog's ~10,000 network rows). It must store exactly what
a ``Rollup`` per key whose value is not 0 stores, in the batch's one transaction."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normagent.ledger import Ledger
from normagent.model import Batch, Checkpoint, Count, MetricSpec, Observation, Rollup, RollupRows
from normagent.oneshot import CollectorReport
from normagent.testing import FakeClock, rollup_rows

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)
DAYS = (date(2026, 11, 22), date(2026, 11, 23))
NAMES = ("fw.by_network", "fw.by_port")
KEYS = ("a", "b", "c", "d", "e")
FAILURES = MetricSpec("normagent_test_failures_total", "counter", "Test failures.", ("reason",))


def table(path: Path) -> list[tuple[Any, ...]]:
    """The rollups table as on disk, past the ledger's memory."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute("SELECT name, day, key, value, first_seen, last_seen FROM rollups ORDER BY name, day, key").fetchall()


moments = st.one_of(st.none(), st.integers(-3600, 3600).map(lambda s: T0 + timedelta(seconds=s)))
single = st.builds(
    Rollup, st.sampled_from(NAMES), st.sampled_from(DAYS), st.sampled_from(KEYS), st.integers(0, 5), moments, moments
)
many = st.builds(
    RollupRows,
    st.sampled_from(NAMES),
    st.sampled_from(DAYS),
    # whole numbers (counts): their sums are exact in any order, as the two ledgers add in two orders
    st.dictionaries(st.sampled_from(KEYS), st.integers(-2, 5) | st.integers(-2, 5).map(float)),
)
batches = st.lists(st.lists(st.one_of(single, many), max_size=6), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(batches)
def test_rollup_rows_store_what_a_rollup_per_key_stores(tmp_path_factory: pytest.TempPathFactory, drawn: list[list[Observation]]) -> None:
    """Drawn batches of ``Rollup``s and ``RollupRows`` (keys shared between them and across
    batches, values of 0, first and last seen on the single rows) against the same batches with
    each ``RollupRows`` written out as ``Rollup``s: the same table, row for row."""
    folder = tmp_path_factory.mktemp("rows")
    clock = FakeClock(T0)
    with Ledger.open(folder / "bulk.db", clock=clock) as bulk, Ledger.open(folder / "single.db", clock=clock) as single:
        for observations in drawn:
            bulk.commit("c", Batch(observations))
            single.commit("c", Batch(rollup_rows(observations)))
        assert table(bulk.path) == table(single.path)


def test_a_zero_adds_no_row_and_a_key_given_both_ways_adds_up_keeping_its_interval(ledger: Ledger) -> None:
    day = DAYS[1]
    ledger.commit("c", Batch([Rollup("n", day, "a", 2, T0, T0 + timedelta(minutes=5))]))
    ledger.commit("c", Batch([RollupRows("n", day, {"a": 3, "b": 0, "c": 1}), Rollup("n", day, "c", 1, T0, T0)]))

    assert table(ledger.path) == [
        ("n", "2026-11-23", "a", 5.0, T0.timestamp(), (T0 + timedelta(minutes=5)).timestamp()),
        ("n", "2026-11-23", "c", 2.0, T0.timestamp(), T0.timestamp()),
    ]


def test_a_batch_of_rollup_rows_alone_is_stored_and_judged_by_the_rules(ledger: Ledger) -> None:
    """A batch whose only news is a ``RollupRows`` is no batch that changes nothing, and the
    rules that read its rollup are evaluated in its transaction."""
    judged: list[set[str] | None] = []

    def evaluator(view: Any, touched: set[str] | None, now: datetime) -> list[Any]:
        judged.append(touched)
        return []

    ledger.use_rules(evaluator, watches=lambda touched: "rollup:n" in touched)
    ledger.commit("c", Batch([], [Checkpoint("file:a", 1)]))
    judged.clear()

    ledger.commit("c", Batch([RollupRows("n", DAYS[0], {"a": 1})], [Checkpoint("file:a", 1)]))

    assert table(ledger.path) == [("n", "2026-11-22", "a", 1.0, None, None)]
    assert judged == [{"rollup:n"}]


@pytest.mark.parametrize(
    "values", [{"a": 1, "b": "3"}, {"a": 1, "b": None}, {"a": b"1"}, [("a", 1)]], ids=["text", "none", "bytes", "no-mapping"]
)
def test_a_value_that_is_no_number_stores_nothing_of_its_batch(ledger: Ledger, values: Any) -> None:
    ledger.declare([FAILURES])
    batch = Batch([Count(FAILURES.name, {"reason": "r"}, 5), RollupRows("n", DAYS[0], values)], [Checkpoint("file:a", 999)])

    with pytest.raises(ValueError, match="RollupRows n"):
        ledger.commit("c", batch)

    assert table(ledger.path) == []
    assert ledger.counter_value(FAILURES.name, {"reason": "r"}) == 0
    assert ledger.checkpoints("c").get("file:a") is None


def test_a_failure_later_in_the_transaction_takes_the_rows_back_with_the_checkpoint(tmp_path: Path, clock: FakeClock) -> None:
    """The rows are written, then storing the checkpoint fails: neither is on disk, and the
    batch stored again later counts its rows once."""
    path = tmp_path / "ledger.db"
    batch = Batch([RollupRows("n", DAYS[0], {"a": 2, "b": 1})], [Checkpoint("file:a", 20)])
    with Ledger.open(path, clock=clock) as ledger:
        with contextlib.closing(sqlite3.connect(path)) as other:
            other.execute("CREATE TRIGGER fail BEFORE INSERT ON checkpoints BEGIN SELECT RAISE(ABORT, 'injected'); END")

        with pytest.raises(sqlite3.IntegrityError, match="injected"):
            ledger.commit("c", batch)

        assert table(path) == []
        with contextlib.closing(sqlite3.connect(path)) as other:
            other.execute("DROP TRIGGER fail")
        ledger.commit("c", batch)
        assert table(path) == [("n", "2026-11-22", "a", 2.0, None, None), ("n", "2026-11-22", "b", 1.0, None, None)]
        assert ledger.checkpoints("c").get("file:a") == 20


def test_a_runs_summary_counts_the_rows_rollup_rows_carry() -> None:
    """``normagent once``'s summary: a row per key whose value is not 0, as the ``Rollup``s would be."""
    result = CollectorReport("c", "p", "ok")
    result.add(Batch([RollupRows("n", DAYS[0], {"a": 1, "b": 0, "c": 2}), Rollup("n", DAYS[0], "a", 1)]))

    assert result.rollup_rows == {"n": 3}


def test_rows_of_one_name_and_day_merged_in_a_batch_keep_every_key_given(ledger: Ledger) -> None:
    """Several ``RollupRows`` of one rollup and day in a batch (a block's each): a key given with a
    value that is not 0 has its row, though its values add up to 0 (as its ``Rollup``s would);
    a key given only as 0 has none."""
    day = DAYS[0]
    ledger.commit("c", Batch([RollupRows("n", day, {"a": 2, "b": 0}), RollupRows("n", day, {"a": -2, "c": 1}), RollupRows("n", day, {"b": 0})]))

    assert table(ledger.path) == [("n", "2026-11-22", "a", 0.0, None, None), ("n", "2026-11-22", "c", 1.0, None, None)]
