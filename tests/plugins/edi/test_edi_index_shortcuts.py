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
    """``values.immutable`` (plain at run time, frozen to mypy) against the frozen dataclass of the same
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


@pytest.mark.parametrize("path", [
    "/srv/edi/ut/a.xml", "/a.xml", "a.xml", "", "/", "//", "//a", "///a/b", "/srv//edi//ut/a.xml", "/srv/edi/ut/",
    "/srv/edi/ut//", "relative/dir/b\udce6.xml", "/srv/æø\udcff/x", "a/", "a//b", "/srv/edi/ut/ lead ",
])
def test_a_paths_split_is_os_path_splits(path: str) -> None:
    from normagent.plugins.edi.index import split_path

    assert split_path(path) == os.path.split(path)


def _candidates_to_order() -> Candidates:
    import random

    rng = random.Random(15)
    candidates = Candidates()
    folders = [EdiFolder(path=Path("/srv/edi/ut"), direction="out"),
               EdiFolder(path=Path("/srv/edi/arkiv"), direction="out", role="archive")]
    places = [("/srv/edi/ut", folders[0]), ("/srv/edi/ut/sub", folders[0]), ("/srv/edi/arkiv", folders[1])]
    alphabet = ["a", "b", "z", "0", "é", "æ", "ø", "\u4e00", "-", ".", "\U0001f600", " "]
    for i in range(600):
        directory, folder = rng.choice(places)
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) + f"{i}.xml"
        mtime = rng.choice([10**18, 10**18 + 1, rng.randint(0, 2**62)])  # ties to the nanosecond
        candidates.add(candidates.place_id(directory, "/srv/edi", folder), name, i, mtime, regular=True, indexed=False)
        if rng.random() < 0.7:
            candidates.defer(len(candidates) - 1)
    return candidates


def test_candidates_are_read_in_the_order_of_their_sort_key() -> None:
    candidates = _candidates_to_order()
    assert [c.path for c in candidates.ordered()] == [c.path for c in sorted(candidates, key=lambda c: c.order)]


def test_deferred_entries_come_by_directory_then_in_the_order_of_their_keys() -> None:
    from normagent.plugins.edi.index import file_key

    candidates = _candidates_to_order()
    got = [candidates.path(slot) for slots in candidates.deferred() for slot in slots]
    deferred = [c for c in candidates if candidates.flags[c.slot] & 4]
    directories = sorted({c.directory for c in deferred}, key=lambda d: file_key(d + os.sep))
    assert got == [c.path for d in directories for c in sorted((c for c in deferred if c.directory == d),
                                                                  key=lambda c: file_key(c.path))]


def test_the_directory_cache_answers_each_get_with_an_open_descriptor_of_that_directory(tmp_path: Path) -> None:
    """The last directory answered without the OrderedDict: after drops, evictions and a close,
    every descriptor handed out is still open and still the directory asked for."""
    import random

    from normagent.plugins.edi.scan import DirectoryCache

    dirs = []
    for i in range(5):
        (tmp_path / f"d{i}").mkdir()
        dirs.append(str(tmp_path / f"d{i}"))
    cache = DirectoryCache(size=2)
    rng = random.Random(4)
    for step in range(400):
        directory = rng.choice(dirs)
        action = rng.random()
        if action < 0.15:
            cache.drop(directory)
        elif action < 0.18:
            cache.close()
        else:
            for _ in range(rng.randint(1, 3)):  # the same directory asked again, as per file
                fd = cache.get(str(tmp_path), directory)
                assert os.fstat(fd).st_ino == os.stat(directory).st_ino, step
    cache.close()


def test_the_absent_keys_filter_answers_as_its_three_spots_say() -> None:
    """``AbsentKeys.may_hold`` spelt out against ``_spots``, the long way: every bit set. A small
    filter, so that keys with one, two or all three bits set occur."""
    import random

    from normagent.plugins.edi.index import AbsentKeys

    class Small(AbsentKeys):
        BITS = 1 << 10
        MASK = BITS - 1

    keys = Small()
    rng = random.Random(15)
    for i in range(120):
        keys.add(f"m:{rng.random()}")
    answers = set()
    for i in range(3000):
        key = f"m:{i}"
        spots = keys._spots(key)
        set_bits = sum(bool(keys._bits[spot >> 3] & (1 << (spot & 7))) for spot in spots)
        answers.add(set_bits)
        assert keys.may_hold(key) is (set_bits == 3), key
    assert answers == {0, 1, 2, 3}


@pytest.mark.parametrize("zone_name", ["Europe/Oslo", "America/New_York", "Pacific/Kiritimati", "Etc/GMT+12", "UTC"])
def test_a_dates_kind_is_the_one_its_conversion_gives(zone_name: str) -> None:
    """``timestamp_kind`` (no conversion between the years 2 and 9998) against
    ``parse_timestamp``, the long way, up to the calendar's edges in zones east and west of UTC."""
    from zoneinfo import ZoneInfo

    from normagent.plugins.edi.parse import parse_timestamp, timestamp_kind

    zone = ZoneInfo(zone_name)
    texts = ["", "  ", "garbage", "2026-11-24T23:01:22", " 2026-11-24T23:01:22 ", "2026-11-24T23:01:22.123456789",
             "2026-11-24T23:01:22Z", "2026-11-24T23:01:22+14:00", "2026-11-24T23:01:22-12:00", "2026-03-29T02:30:00",
             "2026-10-25T02:30:00", "2026-11-24", "2026-13-01T00:00:00", "2026-11-24T24:00:00"]
    for year in (1, 2, 9998, 9999):
        for clock in ("00:00:00", "00:30:00", "12:00:00", "23:59:59"):
            for day in ("01-01", "12-31"):
                for offset in ("", "Z", "+14:00", "-12:00", "+00:01", "-00:01"):
                    texts.append(f"{year:04d}-{day}T{clock}{offset}")
    kinds = set()
    for text in texts:
        kinds.add(timestamp_kind(text, zone))
        assert timestamp_kind(text, zone) == parse_timestamp(text, zone)[1], text
    assert kinds == {"missing", "unparseable", "no_zone", "with_zone"}
