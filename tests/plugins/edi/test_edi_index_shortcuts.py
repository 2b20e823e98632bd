"""The first index's per-file shortcuts (bench/README.md, w14-edi) give what the long ways gave:
a candidate's path is ``os.path.join``'s, and a checkpoint's stored text is ``JSONEncoder``'s."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from normagent.ledger import _compact_json
from normagent.plugins.edi.scan import Candidates
from normagent.plugins.edi.settings import EdiFolder


@pytest.mark.parametrize("directory", ["/srv/edi/ut", "/srv/edi/ut/", "/", "//srv//edi", "relative/dir", "/srv/æø\udcff"])
def test_a_candidates_path_is_os_path_join_of_its_directory_and_name(directory: str) -> None:
    candidates = Candidates()
    folder = EdiFolder(path=Path("/srv/edi"), direction="out")
    names = ["a.xml", "b\udce6.xml", " lead", "x" * 255]
    for name in names:
        candidates.add(candidates.place_id(directory, "", folder), name, 1, 2, regular=True, indexed=False)
    candidates.add(candidates.place_id("/other", "", folder), "c.xml", 1, 2, regular=True, indexed=False)
    for i, name in enumerate(names):
        assert candidates.path(i) == os.path.join(directory, name)
        assert candidates.get(i).path == os.path.join(directory, name)
    assert candidates.path(len(names)) == "/other/c.xml"


CIRCULAR: list[object] = []
CIRCULAR.append(CIRCULAR)


@pytest.mark.parametrize("value", [
    "plain", "æø\u2028\"\\\n", 0, -7, 10**40, 1.5, 1765012345.123456, -0.0, 1e-300, float("inf"), float("nan"),
    None, True, False, [], {}, [1, [2.5, "ø", None]], {"b": 1, "a": [True, {"c": "d"}]},
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    ["msg", "DIALOGMELDING", "out", 1765012345.25, "/srv/edi/ut/0b2f.xml", 123456789, 1, 1, "", 0.0, 0, 0, 1],
])
def test_a_checkpoints_stored_text_is_the_compact_json_encoders(value: object) -> None:
    assert _compact_json(value) == json.JSONEncoder(separators=(",", ":")).encode(value)


def test_a_checkpoint_that_cannot_be_json_is_refused_as_before() -> None:
    with pytest.raises(ValueError, match="Circular reference"):
        _compact_json(CIRCULAR)
    with pytest.raises(TypeError):
        _compact_json({(1, 2): "tuple key"})
    with pytest.raises(TypeError):
        _compact_json([object()])


def test_a_records_receipt_spelt_out_passes_every_other_field_on() -> None:
    from normagent.plugins.edi.correlate import Record

    # Every field away from its default, so one left out of ``with_receipt`` shows.
    values: dict[str, object] = {}
    for i, f in enumerate(dataclasses.fields(Record)):
        values[f.name] = {str: f"v{i}", float: float(i) + 0.5, int: i + 7, bool: f.default is False}[
            type(f.default) if f.default is not dataclasses.MISSING else str]
    record = Record(**values)  # type: ignore[arg-type]
    assert record.with_receipt("2", 99.5) == dataclasses.replace(record, receipt="2", receipt_at=99.5)


def test_a_batchs_counts_add_up_per_series_whatever_the_labels_order() -> None:
    from normagent.plugins.edi.collectors import _Tally

    tally = _Tally()
    tally.count("m", {"b": "1", "a": "2"})
    tally.count("m", {"a": "2", "b": "1"}, 2)
    tally.count("m", {"a": "2", "b": "3"})
    tally.count("n", {"a": "2", "b": "1"})
    got = {(c.metric, c.labels): c.value for c in tally.observations()}
    assert got == {("m", (("a", "2"), ("b", "1"))): 3.0, ("m", (("a", "2"), ("b", "3"))): 1.0,
                   ("n", (("a", "2"), ("b", "1"))): 1.0}


@pytest.mark.parametrize("name", ["plain.xml", "b\udce6r.xml", "æøå.xml", "\udcff"])
def test_names_and_keys_of_ascii_and_other_names_are_as_the_long_way_makes_them(name: str) -> None:
    from urllib.parse import quote

    from normagent.plugins.edi.index import file_key, printable

    assert printable(name) == name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    path = "/srv/edi/" + name
    try:
        path.encode("utf-8")
        assert file_key(path) == "f:" + path
    except UnicodeEncodeError:
        assert file_key(path) == "fx:" + quote(os.fsencode(path), safe="/")


def _value_classes() -> list[type]:
    from normagent.plugins.edi.correlate import Record
    from normagent.plugins.edi.index import FileEntry
    from normagent.plugins.edi.parse import AppRecHeader, EbxmlHeader, MsgHeadHeader, Parsed, ReceiptError, TransportError

    return [Record, FileEntry, Parsed, MsgHeadHeader, AppRecHeader, EbxmlHeader, ReceiptError, TransportError]


def _sample(cls: type, seed: int) -> dict[str, object]:
    """Every field of ``cls`` away from its default (``seed`` varies the values)."""
    values: dict[str, object] = {}
    for i, f in enumerate(dataclasses.fields(cls)):
        default = f.default if f.default is not dataclasses.MISSING else ""
        values[f.name] = {str: f"v{i}.{seed}", float: i + seed + 0.5, int: i + seed + 7, bool: default is False,
                          tuple: (f"t{seed}",)}.get(type(default), f"v{i}.{seed}")
    return values


@pytest.mark.parametrize("cls", _value_classes(), ids=lambda c: c.__name__)
def test_a_value_record_compares_hashes_and_replaces_as_its_frozen_dataclass_did(cls: type) -> None:
    """``values.value`` (plain at run time, frozen to mypy) against the frozen dataclass of the same
    fields, the long way it replaced: the same equality, hash, repr, fields and ``replace``."""
    twin = dataclasses.make_dataclass(
        cls.__name__, [(f.name, f.type, f) for f in dataclasses.fields(cls)], frozen=True, slots=True)
    a, b = _sample(cls, 1), _sample(cls, 2)
    for left, right in ((a, a), (a, b), (a, {**a, dataclasses.fields(cls)[-1].name: b[dataclasses.fields(cls)[-1].name]})):
        assert (cls(**left) == cls(**right)) == (twin(**left) == twin(**right))
        assert (hash(cls(**left)) == hash(cls(**right))) == (left == right)
    assert hash(cls(**a)) == hash(twin(**a))
    assert repr(cls(**a)) == repr(twin(**a))
    assert [f.name for f in dataclasses.fields(cls)] == [f.name for f in dataclasses.fields(twin)]
    first = dataclasses.fields(cls)[0].name
    changed = dataclasses.replace(cls(**a), **{first: b[first]})
    assert changed == cls(**{**a, first: b[first]}) and changed != cls(**a)
    assert not hasattr(cls(**a), "__dict__")  # slotted, as before
    assert len({cls(**a), cls(**a), cls(**b)}) == 2
