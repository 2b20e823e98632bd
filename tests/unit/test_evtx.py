"""EVTX reader over the six real fixture files (tests/fixtures/evtx, MIT, see its README).

Expected values come from the evtx package's *XML* rendering, parsed with ElementTree, while the
reader normalises the *JSON* rendering: two independent paths through the file must agree.
"""

from __future__ import annotations

import collections
import re
import shutil
from dataclasses import replace
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from evtx import PyEvtxParser
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from normagent.model import WindowsEvent
from normagent.sources.evtx import (
    CHUNK_BYTES,
    HEADER_BYTES,
    ChunkSpan,
    EvtxFileError,
    EvtxPosition,
    EvtxSettings,
    anchor_of,
    chunks_after,
    filetime_anchor,
    read_evtx,
    scan_chunks,
    to_windows_event,
)

from tests.unit.evtx_damage import with_chunk_number, with_record_body_zeroed, with_record_number, with_record_time

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "evtx"
FILES = sorted(p.name for p in FIXTURES.glob("*.evtx"))
DAMAGED = "sample-with-zero-data-size-event.evtx"
NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


# --------------------------------------------------------------------------------------------
# The independent rendering: XML records


def xml_records(path: Path) -> list[tuple[int, ET.Element]]:
    """(record number, parsed XML) of every record; ElementTree rejects control characters, so mask them."""
    out = []
    with pytest.warns(RuntimeWarning) if path.name == DAMAGED else _nothing():
        for record in PyEvtxParser(str(path), skip_errors=True).records():
            masked = _CONTROL.sub(lambda m: chr(0xE000 + ord(m.group())), record["data"])
            out.append((record["event_record_id"], ET.fromstring(masked)))
    return out


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def xml_text(element: ET.Element | None) -> str:
    """Element text as the JSON carries it: XML parsing turned CRLF into LF and pretty-printing adds blanks."""
    if element is None or element.text is None or not element.text.strip():
        return ""
    return re.sub("[\ue000-\ue01f]", lambda m: chr(ord(m.group()) - 0xE000), element.text)


def normalised(value: str) -> str:
    return value.replace("\r\n", "\n")


def events(path: Path, **kwargs: Any) -> list[WindowsEvent]:
    return [e for block, _ in read_evtx(path, **kwargs) for e in block.records]  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Every record of every file


@pytest.mark.parametrize("name", FILES)
def test_record_counts_per_event_id_match_the_xml_rendering(name: str) -> None:
    path = FIXTURES / name
    expected = collections.Counter(int(xml.find(f"{NS}System/{NS}EventID").text) for _, xml in xml_records(path))  # type: ignore[union-attr,arg-type]

    got = collections.Counter(e.event_id for e in events(path, block_records=97))

    assert got == expected


README_COUNTS = [
    ("Security_short_selected.evtx", 7, {4625: 1, 4776: 1, 5152: 2, 5157: 1}),
    ("Security_with_size_t.evtx", 636, {4625: 15, 4776: 21, 4624: 126}),
    ("security.evtx", 2261, {}),
    ("new-user-security.evtx", 4, {4720: 1}),
    ("system.evtx", 1881, {}),
    (DAMAGED, 335, {}),
]


@pytest.mark.parametrize(("name", "total", "some"), README_COUNTS)
def test_totals_match_the_fixture_catalogue(name: str, total: int, some: dict[int, int]) -> None:
    got = collections.Counter(e.event_id for e in events(FIXTURES / name))

    assert sum(got.values()) == total
    assert {k: got[k] for k in some} == some


@pytest.mark.parametrize("name", FILES)
def test_every_field_matches_the_xml_rendering(name: str) -> None:
    """System fields, named and unnamed EventData, Binary and simple UserData values, for every record."""
    path = FIXTURES / name
    pairs = list(zip(xml_records(path), events(path), strict=True))
    problems: list[str] = []

    for (number, xml), event in pairs:
        system = xml.find(f"{NS}System")
        assert system is not None
        level, keywords = system.find(f"{NS}Level"), system.find(f"{NS}Keywords")
        expected = {
            "record_id": int(xml_text(system.find(f"{NS}EventRecordID"))),
            "event_id": int(xml_text(system.find(f"{NS}EventID"))),
            "level": int(xml_text(level) or 0),
            "keywords": int(xml_text(keywords) or "0", 16),
            "channel": xml_text(system.find(f"{NS}Channel")),
            "computer": xml_text(system.find(f"{NS}Computer")),
            "provider": system.find(f"{NS}Provider").get("Name"),  # type: ignore[union-attr]
            "time": system.find(f"{NS}TimeCreated").get("SystemTime"),  # type: ignore[union-attr]
        }
        got = {
            "record_id": event.record_id,
            "event_id": event.event_id,
            "level": event.level,
            "keywords": event.keywords,
            "channel": event.channel,
            "computer": event.computer,
            "provider": event.provider,
            "time": event.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if got != expected:
            problems.append(f"record {number}: {got} != {expected}")
        data = xml.find(f"{NS}EventData")
        if data is not None:
            unnamed = [d for d in data.findall(f"{NS}Data") if not d.get("Name")]
            want = {d.get("Name"): xml_text(d) for d in data.findall(f"{NS}Data") if d.get("Name")}
            want.update({str(i): xml_text(d) for i, d in enumerate(unnamed)})
            if data.find(f"{NS}Binary") is not None and xml_text(data.find(f"{NS}Binary")):
                want["Binary"] = xml_text(data.find(f"{NS}Binary"))
            have = {k: normalised(event.data.get(k, "<missing>")) for k in want}  # type: ignore[arg-type]
            if have != want:
                problems.append(f"record {number} EventData: {have} != {want}")
        user = xml.find(f"{NS}UserData")
        if user is not None:
            (element,) = list(user)
            want = {c.tag.split("}")[1]: xml_text(c) for c in element if len(c) == 0 and not c.attrib}
            have = {k: normalised(event.data.get(k, "<missing>")) for k in want}
            if have != want:
                problems.append(f"record {number} UserData: {have} != {want}")

    assert problems == []


# --------------------------------------------------------------------------------------------
# Resuming: exactly once across any number of interrupted runs


def run_in_steps(path: Path, blocks_per_run: int, block_records: int, **kwargs: Any) -> tuple[list[int], int, int]:
    """Read like a collector that is killed after ``blocks_per_run`` committed blocks, run after run.

    Returns the record ids delivered over all runs, the unreadable records counted, and the runs.
    """
    position: Any = None
    delivered: list[int] = []
    unreadable = 0
    for run in range(1, 10_000):
        reader = read_evtx(path, position=EvtxPosition.from_json(position), block_records=block_records, **kwargs)
        committed_unreadable = 0
        blocks = 0
        for block, last_id in reader:
            delivered.extend(e.record_id for e in block.records)  # type: ignore[union-attr]
            position = reader.position.to_json()  # committed together with the block
            assert reader.position.record_id == last_id
            committed_unreadable = reader.stats.unreadable
            blocks += 1
            if blocks == blocks_per_run:
                break
        unreadable += committed_unreadable
        if blocks < blocks_per_run:
            return delivered, unreadable, run
    raise AssertionError("never finished")


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize(("blocks_per_run", "block_records"), [(1, 50), (3, 7), (1, 1000)])
def test_interrupted_runs_deliver_every_record_exactly_once(name: str, blocks_per_run: int, block_records: int) -> None:
    path = FIXTURES / name
    whole = read_evtx(path)
    expected = [e.record_id for block, _ in whole for e in block.records]  # type: ignore[union-attr]

    delivered, unreadable, _ = run_in_steps(path, blocks_per_run, block_records)

    assert delivered == expected
    assert unreadable == whole.stats.unreadable


def test_the_damaged_record_is_counted_once_and_skipped() -> None:
    """Record 3 is damaged and takes the rest of chunk 0 (3..117) with it; everything else is read."""
    reader = read_evtx(FIXTURES / DAMAGED)
    ids = [e.record_id for block, _ in reader for e in block.records]  # type: ignore[union-attr]
    again = read_evtx(FIXTURES / DAMAGED, position=reader.position)

    assert ids == [1, 2, *range(118, 451)]
    assert (reader.stats.errors, reader.stats.unreadable) == (1, 115)
    assert list(again) == [] and again.stats.unreadable == 0


@pytest.mark.parametrize("name", ["security.evtx", "system.evtx"])
def test_resuming_after_a_record_id_reads_only_later_records(name: str) -> None:
    path = FIXTURES / name
    everything = events(path)

    for after in (1, 90, 91, 92, 1000, len(everything) - 1, len(everything)):
        resumed = events(path, after_record_id=after)
        assert [e.record_id for e in resumed] == [e.record_id for e in everything[after:]]


def test_a_resume_reads_only_the_chunks_after_the_position() -> None:
    chunks, _ = scan_chunks(FIXTURES / "security.evtx")

    selected = chunks_after(chunks, 2150)

    assert [c.index for c in selected] == [24, 25]
    assert [c.index for c in chunks_after(chunks, 0)] == list(range(26))
    assert [c.index for c in chunks_after(chunks, 2201)] == [24, 25]  # 2201 is the last of chunk 24
    assert [c.index for c in chunks_after(chunks, 2202)] == [25]


# --------------------------------------------------------------------------------------------
# Filters


FILTERS = [
    ("Security_with_size_t.evtx", {"event_ids": [4625, 4776]}, lambda e: e.event_id in (4625, 4776)),
    ("Security_with_size_t.evtx", {"channels": ["SECURITY"]}, lambda e: True),
    ("system.evtx", {"channels": ["Security"]}, lambda e: False),
    ("system.evtx", {"channels": ["system"], "event_ids": [6005, 6006, 6008, 1074]}, lambda e: e.event_id in (6005, 6006, 6008, 1074)),
    ("security.evtx", {"event_ids": [], "channels": ()}, lambda e: True),  # empty: no filter, as in the config
]


@pytest.mark.parametrize(("name", "kwargs", "keep"), FILTERS)
def test_filters_keep_matching_records_and_still_advance_the_position(name: str, kwargs: dict[str, Any], keep: Any) -> None:
    path = FIXTURES / name
    everything = events(path)

    unfiltered = read_evtx(path)
    list(unfiltered)

    reader = read_evtx(path, block_records=10, **kwargs)
    got = [e for block, _ in reader for e in block.records]

    assert got == [e for e in everything if keep(e)]
    assert reader.position == unfiltered.position
    assert reader.stats.matched + reader.stats.skipped == reader.stats.records == len(everything)
    assert list(read_evtx(path, position=reader.position, **kwargs)) == []


def test_a_long_filtered_out_stretch_yields_empty_blocks_that_move_the_position() -> None:
    """Committing the position every few thousand records keeps a crash from re-reading all of them."""
    blocks = list(read_evtx(FIXTURES / "security.evtx", event_ids=[99999], block_records=100))

    assert [len(b.records) for b, _ in blocks] == [0, 0, 0]
    assert [last for _, last in blocks] == [1000, 2000, 2261]


# --------------------------------------------------------------------------------------------
# Files that are not what the position expects


def test_a_file_replaced_by_one_with_lower_record_numbers_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "Security.evtx"
    shutil.copy(FIXTURES / "security.evtx", path)
    first = read_evtx(path)
    list(first)
    shutil.copy(FIXTURES / "Security_with_size_t.evtx", path)  # a new export after the log was cleared

    second = read_evtx(path, position=first.position)
    got = [e for block, _ in second for e in block.records]

    assert second.stats.replaced
    assert len(got) == 636


def test_a_file_whose_record_at_the_position_differs_is_read_from_its_start(tmp_path: Path) -> None:
    """Same record numbers, different records (another machine's export): the anchor tells them apart."""
    path = tmp_path / "log.evtx"
    shutil.copy(FIXTURES / "system.evtx", path)
    first = read_evtx(path, block_records=500)
    next(iter(first))  # committed up to record 500
    shutil.copy(FIXTURES / "security.evtx", path)

    second = read_evtx(path, position=first.position)
    got = [e for block, _ in second for e in block.records]

    assert second.stats.replaced
    assert len(got) == 2261


def test_the_same_file_at_the_same_position_is_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "log.evtx"
    shutil.copy(FIXTURES / "system.evtx", path)
    first = read_evtx(path, block_records=500)
    next(iter(first))

    second = read_evtx(path, position=first.position)
    got = [e.record_id for block, _ in second for e in block.records]  # type: ignore[union-attr]

    assert not second.stats.replaced
    assert got == list(range(501, 1882))


def wrapped_copy(tmp_path: Path) -> Path:
    """security.evtx as a circular log that wrapped: chunks 0-5 overwritten by 20-25 (newest first in the file)."""
    data = (FIXTURES / "security.evtx").read_bytes()
    chunk = [data[HEADER_BYTES + i * CHUNK_BYTES : HEADER_BYTES + (i + 1) * CHUNK_BYTES] for i in range(26)]
    path = tmp_path / "wrapped.evtx"
    path.write_bytes(data[:HEADER_BYTES] + b"".join(chunk[20:26] + chunk[6:20]))
    return path


def test_a_wrapped_log_is_read_in_record_order(tmp_path: Path) -> None:
    path = wrapped_copy(tmp_path)
    first_in_chunk_6 = min(c.first for c in scan_chunks(path)[0])

    ids = [e.record_id for e in events(path, block_records=100)]

    assert ids == list(range(first_in_chunk_6, 2262))


@pytest.mark.parametrize(("after", "lost"), [(300, 230), (530, 0), (1000, 0)])
def test_records_overwritten_before_they_were_read_are_counted_lost(tmp_path: Path, after: int, lost: int) -> None:
    path = wrapped_copy(tmp_path)

    reader = read_evtx(path, after_record_id=after)
    ids = [e.record_id for block, _ in reader for e in block.records]  # type: ignore[union-attr]

    assert ids == list(range(max(after + 1, 531), 2262))
    assert reader.stats.lost == lost


# --------------------------------------------------------------------------------------------
# Damaged, truncated and foreign files


def stamp_of(path: Path, number: int) -> str:
    """The anchor (header time) of one record, from the evtx package directly."""
    return next(anchor_of(r["timestamp"]) for r in PyEvtxParser(str(path)).records_json() if r["event_record_id"] == number)


SECURITY = FIXTURES / "security.evtx"
ALL = list(range(1, 2262))
# (record, the number its damaged header says): security.evtx's chunk 1 holds 92-177, chunk 2
# 178-260, chunk 25 (the newest) 2202-2261.
FLIPS = [
    pytest.param(101, 101 ^ (1 << 24), id="far-beyond-every-record"),
    pytest.param(101, 101 ^ 128, id="inside-the-next-chunk"),
    pytest.param(101, 101 ^ 8, id="forward-inside-its-chunk"),
    pytest.param(101, 101 ^ 4, id="backward-inside-its-chunk"),
    pytest.param(100, 101, id="the-next-records-number"),
    pytest.param(101, 100, id="the-previous-records-number"),
    pytest.param(1, 1 ^ (1 << 40), id="the-first-record"),
    pytest.param(2261, 2261 ^ (1 << 33), id="the-last-record"),
    pytest.param(2250, 2250 ^ 1024, id="in-the-newest-chunk"),
    pytest.param(2250, 0, id="zero"),
]


@pytest.mark.parametrize(("number", "new"), FLIPS)
def test_a_damaged_record_number_costs_that_record_only(tmp_path: Path, number: int, new: int) -> None:
    """The number a record header claims must fit its chunk; a record whose number does not is skipped and counted."""
    path = with_record_number(SECURITY, tmp_path / "damaged.evtx", number, new)

    reader = read_evtx(path, block_records=100)
    ids = [e.record_id for block, _ in reader for e in block.records]  # type: ignore[union-attr]

    assert ids == [n for n in ALL if n != number]
    assert (reader.stats.implausible, reader.stats.unreadable, reader.stats.out_of_order) == (1, 1, 0)
    assert reader.position.record_id == max(n for n in ALL if n != number)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.integers(min_value=1, max_value=2261), st.integers(min_value=0, max_value=63)), min_size=1, max_size=2, unique_by=lambda t: t[0]),
    st.integers(min_value=1, max_value=3),
    st.sampled_from([97, 1000]),
)
def test_any_flipped_bits_in_record_numbers_cost_those_records_only(
    tmp_path: Path, flips: list[tuple[int, int]], blocks_per_run: int, block_records: int
) -> None:
    """Records far apart, any bit of their number: every other record once, the damaged ones counted once."""
    # Neighbours damaged together can trade places (100 reading 101 and 101 reading 100): then
    # the right number of records arrives, but which one is a guess. Not asked of the reader.
    assume(all(abs(a[0] - b[0]) > 2 for a in flips for b in flips if a is not b))
    path = tmp_path / "damaged.evtx"
    shutil.copy(SECURITY, path)
    for number, bit in flips:
        with_record_number(path, path, number, number ^ (1 << bit))
    damaged = {number for number, _ in flips}

    delivered, unreadable, _ = run_in_steps(path, blocks_per_run, block_records)

    assert delivered == [n for n in ALL if n not in damaged]
    assert unreadable == len(damaged)


@pytest.mark.parametrize(("blocks_per_run", "block_records"), [(1, 97), (1, 1000)])
def test_a_number_damaged_into_its_chunks_last_costs_that_record_only(tmp_path: Path, blocks_per_run: int, block_records: int) -> None:
    """Record 618 reads 622, the last number of its chunk (531..622): evtx ends a chunk at the
    first record numbered at or above the chunk's last, so 619..622 were lost with it."""
    path = with_record_number(SECURITY, tmp_path / "damaged.evtx", 618, 622)

    delivered, unreadable, _ = run_in_steps(path, blocks_per_run, block_records)

    assert delivered == [n for n in ALL if n != 618]
    assert unreadable == 1


def test_runs_interrupted_around_a_damaged_number_deliver_the_rest_exactly_once(tmp_path: Path) -> None:
    path = with_record_number(SECURITY, tmp_path / "damaged.evtx", 101, 101 ^ (1 << 24))

    delivered, unreadable, _ = run_in_steps(path, 1, 50)

    assert delivered == [n for n in ALL if n != 101]
    assert unreadable == 1


def test_a_damaged_number_never_reaches_the_position(tmp_path: Path) -> None:
    """Every committed position names a record the file really holds at that number."""
    path = with_record_number(SECURITY, tmp_path / "damaged.evtx", 101, 101 ^ (1 << 24))
    reader = read_evtx(path, block_records=7)

    positions = [reader.position.record_id for _ in reader]

    assert max(positions) == 2261 and positions == sorted(positions)


@pytest.mark.parametrize("repaired", [False, True], ids=["same-damaged-file", "a-clean-copy"])
def test_a_position_poisoned_by_a_damaged_number_resumes_after_that_record(tmp_path: Path, repaired: bool) -> None:
    """What an earlier version committed (the damaged number with record 101's time) is found again by that time."""
    damaged = with_record_number(SECURITY, tmp_path / "damaged.evtx", 101, 101 ^ (1 << 24))
    poisoned = EvtxPosition(101 ^ (1 << 24), stamp_of(SECURITY, 101), 101)

    reader = read_evtx(SECURITY if repaired else damaged, position=poisoned)
    ids = [e.record_id for block, _ in reader for e in block.records]  # type: ignore[union-attr]

    assert not reader.stats.replaced
    assert ids == list(range(102, 2262))
    assert reader.position.record_id == 2261


def test_an_older_copy_of_the_same_log_is_not_read_again(tmp_path: Path) -> None:
    """A copy rolled back to an earlier state (a share restored from backup) holds nothing new: nothing is counted twice."""
    path = tmp_path / "Security.evtx"
    path.write_bytes(SECURITY.read_bytes())
    first = read_evtx(path)
    list(first)
    path.write_bytes(SECURITY.read_bytes()[: HEADER_BYTES + 10 * CHUNK_BYTES])  # records 1-976

    second = read_evtx(path, position=first.position)

    assert list(second) == [] and not second.stats.replaced
    assert second.position.record_id == 2261


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("last", 177 ^ 1024, id="last-into-later-chunks"),
        pytest.param("last", 177 ^ (1 << 40), id="last-far-beyond"),
        pytest.param("first", 92 ^ (1 << 20), id="first-far-beyond"),
        pytest.param("first", 92 ^ 64, id="first-into-its-own-range"),
    ],
)
def test_a_damaged_chunk_header_number_delivers_nothing_twice_and_counts_the_rest(tmp_path: Path, field: str, value: int) -> None:
    """Chunk 1 (records 92-177) with a wrong number in its header, its checksum no longer matching."""
    path = with_chunk_number(SECURITY, tmp_path / "damaged.evtx", 1, field, value)

    reader = read_evtx(path)
    ids = [e.record_id for block, _ in reader for e in block.records]  # type: ignore[union-attr]

    assert ids == sorted(set(ids)) and set(ids) <= set(ALL)
    assert len(ids) + reader.stats.unreadable == 2261
    if field == "last":
        assert ids == ALL  # the records themselves are intact


def test_a_clean_file_header_bounds_what_a_chunk_header_may_claim(tmp_path: Path) -> None:
    """Security_with_size_t.evtx is clean and says its next record is 637: a chunk claiming more is wrong."""
    source = FIXTURES / "Security_with_size_t.evtx"
    path = with_chunk_number(source, tmp_path / "claims.evtx", 5, "last", 636 ^ 1024, fix_checksum=True)

    reader = read_evtx(path)
    ids = [e.record_id for block, _ in reader for e in block.records]  # type: ignore[union-attr]

    assert len(ids) == 636 and reader.stats.unreadable == 0


@pytest.mark.parametrize("name", FILES)
def test_the_raw_header_time_reads_as_the_anchor_evtx_prints(name: str) -> None:
    """search_records reads times from record headers itself: they must agree with evtx's, record by record."""
    from tests.unit.evtx_damage import record_offsets

    data = (FIXTURES / name).read_bytes()
    offsets = record_offsets(data)
    printed = {}
    records = PyEvtxParser(str(FIXTURES / name)).records_json()
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except RuntimeError:  # the damaged record of sample-with-zero-data-size-event.evtx
            continue
        printed[record["event_record_id"]] = anchor_of(record["timestamp"])
    raw = {n: filetime_anchor(int.from_bytes(data[o + 16 : o + 24], "little")) for n, o in offsets.items() if n in printed}

    assert raw == printed and raw


def test_a_damaged_time_on_the_position_record_is_not_a_new_file(tmp_path: Path) -> None:
    """The anchor disagrees, but the file still holds a record read before: the same log, read on."""
    first = read_evtx(SECURITY, block_records=500)
    next(iter(first))  # committed up to record 500
    path = with_record_time(SECURITY, tmp_path / "damaged.evtx", 500, 1 << 30)

    second = read_evtx(path, position=first.position)
    ids = [e.record_id for block, _ in second for e in block.records]  # type: ignore[union-attr]

    assert not second.stats.replaced
    assert ids == list(range(501, 2262))



def test_a_chunk_with_a_damaged_header_is_skipped_and_its_records_counted(tmp_path: Path) -> None:
    data = bytearray((FIXTURES / "security.evtx").read_bytes())
    start = HEADER_BYTES + 5 * CHUNK_BYTES
    data[start : start + 8] = b"XXXXXXXX"
    path = tmp_path / "damaged.evtx"
    path.write_bytes(bytes(data))

    reader = read_evtx(path)
    ids = [e.record_id for block, _ in reader for e in block.records]  # type: ignore[union-attr]

    assert ids == [*range(1, 442), *range(531, 2262)]
    assert (reader.stats.chunks_damaged, reader.stats.unreadable) == (1, 89)


@pytest.mark.parametrize(
    ("chunk", "field", "delivered"),
    [
        (0, "magic", range(92, 2262)),  # the oldest chunk: no chunk before it tells its numbers
        (25, "magic", range(1, 2202)),  # the newest chunk: none after it either
        (25, "free", range(1, 2202)),  # its free-space offset zeroed: the checksum fails, evtx reads no record
    ],
    ids=["oldest-magic", "newest-magic", "newest-free-space"],
)
def test_a_damaged_oldest_or_newest_chunk_has_its_records_counted_once(tmp_path: Path, chunk: int, field: str, delivered: range) -> None:
    """security.evtx's chunks 0 (records 1..91) and 25 (2202..2261, the newest) with a damaged
    header: their records are not read, and counted unreadable by the numbers their record
    headers show; a second pass from the position counts nothing again."""
    data = bytearray(SECURITY.read_bytes())
    start = HEADER_BYTES + chunk * CHUNK_BYTES
    if field == "magic":
        data[start : start + 8] = b"XXXXXXXX"
    else:
        data[start + 44 : start + 52] = bytes(8)  # last record's offset, free space's offset
    path = tmp_path / "damaged.evtx"
    path.write_bytes(bytes(data))

    first = read_evtx(path)
    ids = [e.record_id for block, _ in first for e in block.records]  # type: ignore[union-attr]
    again = read_evtx(path, position=first.position)
    more = [e.record_id for block, _ in again for e in block.records]  # type: ignore[union-attr]

    assert ids == list(delivered)
    assert first.stats.unreadable == 2261 - len(delivered)
    assert (more, again.stats.unreadable) == ([], 0)


@pytest.mark.parametrize("first", [9, 1 | 1 << 40])
def test_a_damaged_first_number_of_the_oldest_chunk_loses_no_record(tmp_path: Path, first: int) -> None:
    """Chunk 0's header says its first record is 9 (or 2**40 + 1), its checksum fails: records 1..8
    (every one) fell below it and were left out as implausible, counted nowhere. Its records'
    own numbers stand where no other chunk holds them."""
    path = with_chunk_number(SECURITY, tmp_path / "damaged.evtx", 0, "first", first)

    reader = read_evtx(path)
    ids = [e.record_id for block, _ in reader for e in block.records]  # type: ignore[union-attr]

    assert ids == list(ALL)
    assert (reader.stats.unreadable, reader.stats.implausible) == (0, 0)


def test_a_file_copied_over_in_place_while_it_is_read_is_not_read_as_the_old_one(tmp_path: Path) -> None:
    """``cp`` of another export onto the file mid-pass: the pass went on with the chunk map of the
    old file over the new one's bytes, delivered System records as the Security log's next
    numbers, counted others unreadable, and the next pass took the file for the same log (the
    new file's first records were never read). The pass ends at the first chunk whose header
    changed; the next one finds a new file and reads it whole."""
    path = tmp_path / "Security.evtx"
    shutil.copy(SECURITY, path)
    system = (FIXTURES / "system.evtx").read_bytes()

    first = read_evtx(path, block_records=50)
    channels = []
    for block, _ in first:
        channels += [e.channel for e in block.records]  # type: ignore[union-attr]
        if len(channels) == 50:
            path.write_bytes(system)  # in place: the same inode, as cp writes it
    second = read_evtx(path, position=first.position)
    ids = [e.record_id for block, _ in second for e in block.records]  # type: ignore[union-attr]

    assert set(channels) == {"Security"} and first.stats.changed
    assert (first.stats.unreadable, second.stats.unreadable) == (0, 0)
    assert second.stats.replaced and ids == list(range(1, 1882))


def test_a_chunk_with_damaged_records_is_counted(tmp_path: Path) -> None:
    data = bytearray((FIXTURES / "security.evtx").read_bytes())
    start = HEADER_BYTES + 5 * CHUNK_BYTES + 600
    data[start : start + 3000] = b"\xab" * 3000
    path = tmp_path / "damaged.evtx"
    path.write_bytes(bytes(data))

    reader = read_evtx(path)
    ids = [e.record_id for block, _ in reader for e in block.records]  # type: ignore[union-attr]

    assert reader.stats.errors >= 1
    assert len(ids) + reader.stats.unreadable == 2261
    assert ids == sorted(set(ids))


def test_a_record_that_decodes_to_no_event_is_counted_unreadable_once(tmp_path: Path) -> None:
    """Record 300's content is zeroed: evtx gives it (number, time) with ``{"Event": null}``. It
    is lost, so it counts as unreadable, as a record the parser cannot give at all does, and
    once: a resume that reads its chunk again does not count it again."""
    path = with_record_body_zeroed(SECURITY, tmp_path / "damaged.evtx", 300)

    first = read_evtx(path, block_records=350)
    blocks = iter(first)
    ids = [e.record_id for e in next(blocks)[0].records]  # type: ignore[union-attr]
    counted = first.stats.unreadable
    second = read_evtx(path, position=first.position)
    ids += [e.record_id for block, _ in second for e in block.records]  # type: ignore[union-attr]

    assert ids == [*range(1, 300), *range(301, 2262)]
    assert (counted, second.stats.unreadable) == (1, 0)
    assert first.stats.errors == 1


def test_a_truncated_copy_yields_its_complete_chunks_and_waits_for_the_rest(tmp_path: Path) -> None:
    """A copy still being written ends inside a chunk: that chunk is read once it is complete."""
    source = (FIXTURES / "security.evtx").read_bytes()
    path = tmp_path / "copy.evtx"
    path.write_bytes(source[: HEADER_BYTES + 3 * CHUNK_BYTES + 20_000])

    first = read_evtx(path)
    ids = [e.record_id for block, _ in first for e in block.records]  # type: ignore[union-attr]
    path.write_bytes(source)  # the copy completed
    second = read_evtx(path, position=first.position)
    more = [e.record_id for block, _ in second for e in block.records]  # type: ignore[union-attr]

    assert ids == list(range(1, 261))
    assert first.stats.truncated and first.stats.unreadable == 0
    assert ids + more == list(range(1, 2262))


@pytest.mark.parametrize("size", [0, 100, 4095, HEADER_BYTES, HEADER_BYTES + 100])
def test_a_file_cut_inside_its_header_or_first_chunk_never_crashes(tmp_path: Path, size: int) -> None:
    path = tmp_path / "cut.evtx"
    path.write_bytes((FIXTURES / "system.evtx").read_bytes()[:size])

    if size < 128:
        with pytest.raises(EvtxFileError):
            read_evtx(path)
    else:
        assert events(path) == []


@pytest.mark.parametrize(
    "content",
    [b"", b"not an event log\n" * 1000, b"LPKSHHRH" + bytes(5000), b"ElfChnk\x00" + bytes(70000)],
    ids=["empty", "text", "journal-magic", "chunk-without-file-header"],
)
def test_a_file_that_is_not_evtx_is_rejected_clearly(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.evtx"
    path.write_bytes(content)

    with pytest.raises(EvtxFileError, match="not an EVTX file"):
        read_evtx(path)


# --------------------------------------------------------------------------------------------
# Pure parts


def doc(system: dict[str, Any], **sections: Any) -> dict[str, Any]:
    base = {
        "Provider": {"#attributes": {"Name": "P"}},
        "EventID": 1,
        "TimeCreated": {"#attributes": {"SystemTime": "2024-03-01T08:00:00.123456Z"}},
        "EventRecordID": 7,
        "Channel": "System",
        "Computer": "srv",
    }
    base.update(system)
    return {"Event": {"System": base, **sections}}


SHAPES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("qualified event id", doc({"EventID": {"#attributes": {"Qualifiers": 32768}, "#text": 6005}}), {"event_id": 6005}),
    ("event id as text", doc({"EventID": "4625"}), {"event_id": 4625}),
    ("qualifier bits in the id", doc({"EventID": 0x80001F4}), {"event_id": 0x1F4}),
    ("keywords hex", doc({"Keywords": "0x8010000000000000"}), {"keywords": 0x8010000000000000}),
    ("missing level and keywords", doc({}), {"level": 0, "keywords": 0}),
    ("source name when no Name", doc({"Provider": {"#attributes": {"EventSourceName": "Service Control Manager"}}}), {"provider": "Service Control Manager"}),
    ("7 fraction digits", doc({"TimeCreated": {"#attributes": {"SystemTime": "2017-07-12T17:16:28.2141616Z"}}}), {"time": "2017-07-12 17:16:28.214161+00:00"}),
    ("no TimeCreated: header time", doc({"TimeCreated": None}), {"time": "2020-01-02 03:04:05.600000+00:00"}),
    ("no EventRecordID: header number", doc({"EventRecordID": None}), {"record_id": 42}),
    ("named data, typed values", doc({}, EventData={"LogonType": 2, "Elevated": False, "Status": "0xc000006d", "Gone": None}), {"data": {"LogonType": "2", "Elevated": "false", "Status": "0xc000006d", "Gone": ""}}),
    ("unnamed data list", doc({}, EventData={"Data": {"#text": ["a", "b", ""]}, "Binary": None}), {"data": {"0": "a", "1": "b", "2": ""}}),
    ("unnamed data single", doc({}, EventData={"Data": {"#text": "only"}, "Binary": "DEADBEEF"}), {"data": {"0": "only", "Binary": "DEADBEEF"}}),
    ("data as plain string", doc({}, EventData={"Data": "plain"}), {"data": {"0": "plain"}}),
    ("empty event data", doc({}, EventData=None), {"data": {}}),
    ("event data attributes", doc({}, EventData={"#attributes": {"Name": "X"}, "A": 1}), {"data": {"@Name": "X", "A": "1"}}),
    (
        "user data nested",
        doc(
            {},
            UserData={
                "EventProcessingFailure": {
                    "#attributes": {"xmlns": "http://manifests"},
                    "Error": {"#attributes": {"Code": 15007}},
                    "EventID": 4647,
                    "Inner": {"Deep": "v", "#text": "t"},
                }
            },
        ),
        {"data": {"Error@Code": "15007", "EventID": "4647", "Inner.Deep": "v", "Inner": "t"}},
    ),
    ("user data empty element", doc({}, UserData={"ServiceShutdown": {"#attributes": {"xmlns": "x"}}}), {"data": {}}),
]


@pytest.mark.parametrize(("doc_", "expected"), [(d, e) for _, d, e in SHAPES], ids=[n for n, _, _ in SHAPES])
def test_json_shapes_normalise(doc_: dict[str, Any], expected: dict[str, Any]) -> None:
    event = to_windows_event(doc_, header_id=42, header_stamp="2020-01-02T03:04:05.6Z UTC")

    got = {key: (str(getattr(event, key)) if key == "time" else getattr(event, key)) for key in expected}
    assert got == expected


@pytest.mark.parametrize(
    ("stamp", "anchor"),
    [
        ("2016-06-29T15:24:34.346Z UTC", "20160629152434.3460000"),
        ("2016-06-29T15:24:34.3460000Z", "20160629152434.3460000"),
        ("2017-07-12 17:16:28.2141616 UTC", "20170712171628.2141616"),
        ("2017-07-12T17:16:28Z", "20170712171628.0000000"),
    ],
)
def test_the_anchor_does_not_depend_on_how_evtx_prints_the_time(stamp: str, anchor: str) -> None:
    assert anchor_of(stamp) == anchor


@pytest.mark.parametrize(
    ("value", "position"),
    [
        (None, EvtxPosition()),
        (17, EvtxPosition(record_id=17)),
        ({"record_id": 5, "anchor": "a", "unreadable_through": 9}, EvtxPosition(5, "a", 9)),
        ({"record_id": 5}, EvtxPosition(5)),
        ({"record_id": 5, "witnesses": [[1, "w"], [4, "v"]]}, EvtxPosition(5, witnesses=((1, "w"), (4, "v")))),
        (
            {"record_id": 5, "crashed": {"offset": 4096, "first": 1, "last": 91, "crashes": 2}},
            EvtxPosition(5, crashed=ChunkSpan(4096, 1, 91), crashes=2),
        ),
    ],
)
def test_positions_round_trip_through_json(value: Any, position: EvtxPosition) -> None:
    assert EvtxPosition.from_json(value) == position
    assert EvtxPosition.from_json(position.to_json()) == position


@pytest.mark.parametrize(
    "value",
    [
        "5", [5], {"record_id": "5"}, True, {"record_id": -1}, {"witnesses": [[1]]}, {"witnesses": [["1", "a"]]}, {"witnesses": 3},
        {"crashed": {"offset": 4096, "first": 1, "last": 91}},  # a crash mark without its count
        {"crashed": {"offset": 4096, "first": 1, "last": 91, "crashes": 0}},
        {"crashed": {"offset": 4096, "first": 1, "crashes": 1}},
        {"crashed": {"offset": -1, "first": 1, "last": 91, "crashes": 1}},
        {"crashed": [4096, 1, 91, 1]},
    ],
)
def test_a_position_that_is_not_one_is_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        EvtxPosition.from_json(value)


@pytest.mark.parametrize("kwargs", [{"block_records": 0}, {"event_ids": (70000,)}, {"event_ids": (-1,)}])
def test_evtx_settings_refuse_what_cannot_match(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EvtxSettings(**kwargs)


# --------------------------------------------------------------------------------------------
# A chunk that crashes the parser (the crash itself is played in tests/unit/test_evtx_process.py)

SECURITY = FIXTURES / "security.evtx"
CHUNK_2 = ChunkSpan(HEADER_BYTES + 2 * CHUNK_BYTES, 178, 260)  # security.evtx's third chunk


def announced_and_read(position: EvtxPosition, block_records: int = 100) -> tuple[list[ChunkSpan], list[int], Any]:
    """The chunks a pass announced, the record ids it delivered, and the reader (stats, position)."""
    reader = read_evtx(SECURITY, position=position, block_records=block_records)
    spans: list[ChunkSpan] = []
    held: list[ChunkSpan | None] = [None]

    def announce(span: ChunkSpan | None) -> None:
        assert (held[-1] is None) != (span is None)  # one chunk in the parser at a time, and it is let go
        held.append(span)
        if span is not None:
            spans.append(span)

    reader.on_chunk = announce
    ids = [e.record_id for block, _ in reader for e in block.records]  # type: ignore[union-attr]
    return spans, ids, reader


def test_each_chunk_is_announced_before_it_is_parsed_with_its_offset_and_records() -> None:
    spans, ids, _ = announced_and_read(EvtxPosition())
    chunks, _ = scan_chunks(SECURITY)
    assert spans == [ChunkSpan(HEADER_BYTES + c.index * CHUNK_BYTES, c.first, c.last) for c in chunks]
    assert spans[2] == CHUNK_2 and ids == list(range(1, 2262))
    resumed, _, _ = announced_and_read(EvtxPosition(record_id=2150))  # a resume announces what it parses only
    assert [s.first for s in resumed] == [2110, 2202]


@pytest.mark.parametrize("after", [0, 100, 177])
def test_a_chunk_the_parser_crashed_in_twice_is_skipped_its_records_counted_once(after: int) -> None:
    """Its numbers after the position are unreadable, once; every other record is delivered, once."""
    start = read_evtx(SECURITY, block_records=after or 1)
    position = EvtxPosition()
    if after:
        next(iter(start))
        position = start.position
    assert position.record_id == after
    marked = position.after_crash(CHUNK_2).after_crash(replace(CHUNK_2, last=259))  # the same chunk, however far it reached

    spans, ids, reader = announced_and_read(marked)

    assert CHUNK_2.offset not in [s.offset for s in spans]
    assert ids == [*range(after + 1, 178), *range(261, 2262)]
    assert (reader.stats.unreadable, reader.stats.chunks_skipped) == (83, 1)
    assert reader.position.crashed is None and reader.position.record_id == 2261  # passed: the mark is dropped
    again_spans, again, again_reader = announced_and_read(reader.position)
    assert (again, again_reader.stats.unreadable) == ([], 0)


def test_a_crash_in_the_chunk_of_the_position_skips_only_the_records_after_it() -> None:
    reader = read_evtx(SECURITY, block_records=150)
    next(iter(reader))
    position = reader.position  # record 150, in the second chunk (92..177)
    chunk_1 = ChunkSpan(HEADER_BYTES + CHUNK_BYTES, 92, 177)
    spans, ids, skipping = announced_and_read(position.skipping(chunk_1))
    assert ids == list(range(178, 2262)) and skipping.stats.unreadable == 177 - 150


def test_one_crash_is_bad_luck_the_chunk_is_read_and_its_mark_dropped() -> None:
    marked = EvtxPosition().after_crash(CHUNK_2)
    assert (marked.crashes, marked.skips(CHUNK_2)) == (1, False)
    spans, ids, reader = announced_and_read(marked, block_records=5000)
    assert CHUNK_2 in spans and ids == list(range(1, 2262)) and reader.stats.unreadable == 0
    assert reader.position.crashed is None


def test_a_crash_in_another_chunk_starts_the_count_again() -> None:
    marked = EvtxPosition().after_crash(CHUNK_2).after_crash(replace(CHUNK_2, offset=CHUNK_2.offset + CHUNK_BYTES, first=261))
    assert (marked.crashes, marked.skips(CHUNK_2)) == (1, False)


def test_a_crash_mark_for_a_chunk_the_file_no_longer_holds_is_dropped() -> None:
    """A wrapped log overwrote the chunk (another first record there): it is read as any other."""
    gone = EvtxPosition().skipping(replace(CHUNK_2, first=5000, last=5090))
    spans, ids, reader = announced_and_read(gone)
    assert CHUNK_2 in spans and len(ids) == 2261 and reader.position.crashed is None


def test_a_chunk_skipped_before_stays_skipped_when_another_chunk_takes_the_mark() -> None:
    """After chunk 2 was skipped and counted, a crash in chunk 3 replaces the mark: chunk 2, all of
    whose numbers were counted unreadable, is not parsed again (else the two would take turns)."""
    first = read_evtx(SECURITY, position=EvtxPosition().skipping(CHUNK_2), block_records=150)
    blocks = iter(first)
    while first.position.unreadable_through < 260:
        next(blocks)  # the skip's count goes out at once, with the block before it
    assert first.position.record_id == 177 and first.stats.unreadable == 83
    chunk_3 = ChunkSpan(HEADER_BYTES + 3 * CHUNK_BYTES, 261, 349)
    other = first.position.after_crash(chunk_3)
    spans, ids, reader = announced_and_read(other)
    assert [s.first for s in spans][:2] == [92, 261] and ids == list(range(261, 2262))  # 92..177: the position's chunk
    assert reader.stats.unreadable == 0  # counted once, by the pass that skipped it
