"""The first index's filter of record keys the ledger surely lacks (``index.AbsentKeys``): it may
say "perhaps" for a key never added (then the ledger is asked, as without it), never "no" for a key
that was added; and it is used only while a fresh ledger's first cycle runs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from normagent import Checkpoint
from normagent.testing import MemoryCheckpoints
from normagent.plugins.edi.index import AbsentKeys, Index, Record


@settings(max_examples=200)
@given(st.lists(st.text(max_size=60), max_size=300), st.lists(st.text(max_size=60), max_size=300))
def test_a_key_added_is_never_said_to_be_absent(added: list[str], others: list[str]) -> None:
    keys = AbsentKeys()
    for key in added:
        keys.add(key)
    assert all(keys.may_hold(key) for key in added)
    absent = [key for key in others if key not in set(added)]
    assert sum(keys.may_hold(key) for key in absent) <= max(2, len(absent) // 50)  # nearly all answered "no"


def test_only_a_fresh_ledger_gets_the_filter_and_it_never_hides_a_committed_record() -> None:
    store = MemoryCheckpoints()
    fresh = Index.load(store)
    assert fresh.absent is not None
    assert fresh.record("m:never-written") is None  # answered without the ledger
    record = Record(kind="msg", msg_type="EPIKRISE", direction="out", at=1.0, counted=True)
    store.apply([Checkpoint("m:written", record.to_json())])
    fresh.absent.add("m:written")  # what Index.apply does once a batch is committed
    assert fresh.record("m:written") == record
    assert Index.load(store).absent is None  # a ledger that holds ids: every look-up goes to it
