"""The edi.messages collector over real folders and a real ledger: truth, incrementality, crash
safety, moves, files being written, privacy."""

from __future__ import annotations

import functools

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from normagent import NoData
from normagent.plugins.edi.collectors import read_file
from normagent.plugins.edi.scan import Candidate
from normagent.plugins.edi.settings import EdiFolder, EdiSettings
from normagent.testing import run_collector_once
from tests.plugins.edi.conftest import move, write
from tests.support.unprivileged import as_nobody
from tests.plugins.edi.edi_generator import (
    OWN_HER,
    PATIENT_MARKER,
    Config,
    Truth,
    apprec,
    generate,
    msghead,
    settings_for,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "edi"

CHECKS = (
    ("messages", "normagent_edi_messages_total", ("direction", "msg_type")),
    ("receipts", "normagent_edi_receipts_total", ("msg_type", "status")),
    ("receipt_errors", "normagent_edi_receipt_errors_total", ("msg_type", "code_list", "error_code")),
    ("transport_errors", "normagent_edi_transport_errors_total", ("error_code",)),
    ("misaddressed", "normagent_edi_misaddressed_messages_total", ("direction", "msg_type")),
    ("unacknowledged_total", "normagent_edi_unacknowledged_total", ("msg_type", "receipt")),
    ("unacknowledged", "normagent_edi_unacknowledged_messages", ("msg_type", "receipt")),
    ("alarm", "normagent_edi_unacknowledged_alarm_messages", ("msg_type", "receipt")),
    ("unmatched", "normagent_edi_unmatched_receipts", ("receipt",)),
    ("files", "normagent_edi_files_total", ("outcome",)),
    ("timestamps", "normagent_edi_timestamps_total", ("kind",)),
)


def assert_truth(h: Any, truth: Truth) -> None:
    for name, metric, labels in CHECKS:
        want = {k: float(v) for k, v in getattr(truth, name).items() if v}
        assert h.nonzero(metric, *labels) == want, name
    oldest = h.nonzero("normagent_edi_oldest_unacknowledged_age_seconds", "msg_type", "receipt")
    assert oldest == pytest.approx({k: v for k, v in truth.oldest.items()}, abs=0.01)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth]:
    """A generated tree over ten days: alarms, late and missing receipts, every kind of file."""
    root = tmp_path_factory.mktemp("edi-tree")
    return root, generate(root, Config(messages=400, per_day=40, seed=3))


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, copy_function=shutil.copy2)  # copy2 keeps the modification times
    return target


# --------------------------------------------------------------------------------------------
# truth


@pytest.mark.parametrize("seed", [1, 2])
def test_full_index_equals_the_generators_truth(harness: Any, tmp_path: Path, seed: int) -> None:
    truth = generate(tmp_path / "edi", Config(messages=300, per_day=30, seed=seed))
    h = harness(settings_for(tmp_path / "edi"), truth.now)
    h.cycle()
    assert_truth(h, truth)
    assert h.value("normagent_edi_indexed_files") == truth.file_count
    rejected = [e.key for e in h.ledger.events("edi.rejected", _all_time())]
    assert sorted(rejected) == sorted(truth.rejected_ids)


def _all_time() -> Any:
    from normagent import Period

    return Period(datetime(2000, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc))


def test_small_batches_give_the_same_result(harness: Any, tree: tuple[Path, Truth], tmp_path: Path) -> None:
    root = copy_tree(tree[0], tmp_path / "edi")
    h = harness(settings_for(root, batch_size=37, first_index_batch_size=37), tree[1].now)
    batches = h.cycle()
    assert len(batches) > 10
    assert_truth(h, tree[1])


def test_a_second_cycle_reads_nothing_and_counts_nothing(harness: Any, tree: tuple[Path, Truth], tmp_path: Path) -> None:
    root = copy_tree(tree[0], tmp_path / "edi")
    h = harness(settings_for(root), tree[1].now)
    h.cycle()
    def counters() -> dict[str, Any]:
        return {m: dict(v) for m, v in h.ledger.snapshot().series.items() if m.endswith("_total")}

    before = counters()
    h.clock.advance(1)  # not enough for any message to change state
    batches = h.cycle()
    assert len(batches) == 1
    assert not [o for o in batches[0].observations if type(o).__name__ in ("Count", "Event")]
    assert {c.key for c in batches[0].checkpoints} <= {"g", "s:in", "s:out", "svc"}  # no file, no id
    assert counters() == before


def test_restart_resumes_without_counting_twice(harness: Any, tree: tuple[Path, Truth], tmp_path: Path) -> None:
    root = copy_tree(tree[0], tmp_path / "edi")
    h = harness(settings_for(root), tree[1].now)
    h.cycle()
    h.restart()
    with capture_logs() as logs:
        h.cycle()
    assert any(e["event"] == "edi_index_loaded" for e in logs)  # rebuilt from the ledger
    assert_truth(h, tree[1])
    new = write(root / "ut" / "late-1.xml", msghead("late-1", "EPIKRISE", "", OWN_HER[0], "2000001"), tree[1].now - 5)
    h.cycle()
    assert h.value("normagent_edi_messages_total", direction="out", msg_type="EPIKRISE") == (
        tree[1].messages[("out", "EPIKRISE")] + 1
    ), new


def test_an_abandoned_run_loses_nothing_and_counts_nothing_twice(harness: Any, tree: tuple[Path, Truth], tmp_path: Path) -> None:
    """Batches committed before the run was abandoned stay; the one that was not is redone."""
    root = copy_tree(tree[0], tmp_path / "edi")
    h = harness(settings_for(root, batch_size=50, first_index_batch_size=50), tree[1].now)
    run = h.batches()
    for _ in range(3):
        h.ledger.commit(h.spec.name, next(run))
    next(run)  # yielded but never committed: the deadline passed, or the commit failed
    run.close()
    h.cycle()  # the same collector object: its in-memory index must not hold the lost batch
    assert_truth(h, tree[1])


def test_a_failed_commit_leaves_the_index_as_the_ledger_has_it(harness: Any, tree: tuple[Path, Truth], tmp_path: Path) -> None:
    root = copy_tree(tree[0], tmp_path / "edi")
    h = harness(settings_for(root, batch_size=50, first_index_batch_size=50), tree[1].now)
    run = h.batches()
    h.ledger.commit(h.spec.name, next(run))
    bad = next(run)
    with pytest.raises(ValueError):
        h.ledger.commit(h.spec.name, type(bad)([*bad.observations, _undeclared()], bad.checkpoints))
    run.close()
    h.cycle()
    assert_truth(h, tree[1])


def _undeclared() -> Any:
    from normagent import Count

    return Count("normagent_no_such_metric_total")


def test_run_collector_once_without_a_ledger(tree: tuple[Path, Truth], tmp_path: Path) -> None:
    """The plugin works with the in-memory checkpoints of normagent.testing too."""
    from normagent.plugins.edi.collectors import make_spec
    from normagent.testing import FakeClock, MemoryCheckpoints, observations

    root = copy_tree(tree[0], tmp_path / "edi")
    spec, state = make_spec(), MemoryCheckpoints()
    clock = FakeClock(datetime.fromtimestamp(tree[1].now, timezone.utc))
    first = observations(run_collector_once(spec, settings=settings_for(root), state=state, clock=clock))
    files = sum(o.value for o in first if getattr(o, "metric", "") == "normagent_edi_files_total")
    assert files == sum(tree[1].files.values())
    assert any(k.startswith("f:") for k in state.values)
    again = observations(run_collector_once(spec, settings=settings_for(root), state=state, clock=clock))
    assert not [o for o in again if type(o).__name__ == "Count"]


# --------------------------------------------------------------------------------------------
# files on the move


def test_files_moved_to_the_archive_are_not_counted_twice(harness: Any, tree: tuple[Path, Truth], tmp_path: Path) -> None:
    root = copy_tree(tree[0], tmp_path / "edi")
    h = harness(settings_for(root), tree[1].now)
    h.cycle()
    outbox = sorted((root / "ut").glob("*.xml"))[:15]
    for path in outbox:
        move(path, root / "arkiv" / ("moved-" + path.name))
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_files_total", outcome="moved") == 15
    assert_truth_except_files(h, tree[1])


def assert_truth_except_files(h: Any, truth: Truth) -> None:
    for name, metric, labels in CHECKS:
        if name in ("files", "unacknowledged", "alarm"):
            continue
        want = {k: float(v) for k, v in getattr(truth, name).items() if v}
        assert h.nonzero(metric, *labels) == want, name


def test_a_file_still_being_written_is_retried_not_broken(harness: Any, tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    folder = tmp_path / "ut"
    settings = EdiSettings(folders=(EdiFolder(path=folder, direction="out"),))
    h = harness(settings, now)
    data = msghead("w-1", "EPIKRISE", "2026-11-24T10:59:00", OWN_HER[0], "2000001")
    half = write(folder / "w-1.xml", data[: len(data) // 2], now - 3)
    empty = write(folder / "w-2.xml", b"", now - 3)
    with capture_logs() as logs:
        h.cycle()
    assert h.value("normagent_edi_files_total", outcome="truncated") == 0
    assert h.value("normagent_edi_files_total", outcome="empty") == 0
    assert not [e for e in logs if e.get("outcome") in ("truncated", "empty")]
    assert h.ledger.checkpoints(h.spec.name).get(f"f:{half}") is None
    h.clock.advance(30)
    write(half, data, now + 20)  # the writer finished
    h.cycle()
    assert h.value("normagent_edi_files_total", outcome="ok") == 1
    assert h.value("normagent_edi_messages_total", direction="out", msg_type="EPIKRISE") == 1
    h.clock.advance(3600)  # the empty file never got content: now it is counted, once
    h.cycle()
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_files_total", outcome="empty") == 1
    assert empty.exists()


def test_an_old_truncated_file_is_counted_once_with_a_log_line(harness: Any, tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    folder = tmp_path / "inn"
    data = msghead("t-1", "EPIKRISE", "", "2000001", OWN_HER[0])
    write(folder / "t-1.xml", data[:300], now - 86400)
    h = harness(EdiSettings(folders=(EdiFolder(path=folder, direction="in"),)), now)
    with capture_logs() as logs:
        h.cycle()
        h.clock.advance(60)
        h.cycle()
    assert h.value("normagent_edi_files_total", outcome="truncated") == 1
    lines = [e for e in logs if e["event"] == "edi_file_not_read"]
    assert len(lines) == 1
    assert lines[0]["file"] == "t-1.xml" and lines[0]["folder"] == "inn"


@pytest.mark.parametrize("start", ["truncated", "empty"])
def test_a_file_counted_truncated_is_read_again_when_its_writer_completes_it(harness: Any, tmp_path: Path, start: str) -> None:
    """A stalled writer (or a share whose clock lags) leaves a file that looks old and broken; when
    it is completed in place (its directory does not change) the message must still be counted —
    and a file that stays broken is not counted again each cycle."""
    import os

    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    folder = tmp_path / "inn"
    data = msghead("t-2", "EPIKRISE", "", "2000001", OWN_HER[0])
    path = write(folder / "t-2.xml", data[:300] if start == "truncated" else b"", now - 86400)
    h = harness(EdiSettings(folders=(EdiFolder(path=folder, direction="in"),)), now)
    h.cycle()
    h.clock.advance(60)
    h.cycle()
    assert h.nonzero("normagent_edi_files_total", "outcome") == {(start,): 1}
    dir_mtime = os.stat(folder).st_mtime_ns
    with open(path, "r+b") as fh:  # completed in place: the directory's time does not move
        fh.write(data)
    os.utime(path, (now - 3600, now - 3600))
    os.utime(folder, ns=(dir_mtime, dir_mtime))
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_messages_total", direction="in", msg_type="EPIKRISE") == 1
    assert h.nonzero("normagent_edi_files_total", "outcome") == {(start,): 1, ("ok",): 1}
    h.clock.advance(60)
    h.cycle()
    assert h.nonzero("normagent_edi_files_total", "outcome") == {(start,): 1, ("ok",): 1}


def test_a_file_that_stays_truncated_is_counted_once_even_when_it_grows(harness: Any, tmp_path: Path) -> None:
    import os

    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    folder = tmp_path / "inn"
    data = msghead("t-3", "EPIKRISE", "", "2000001", OWN_HER[0])
    path = write(folder / "t-3.xml", data[:300], now - 86400)
    h = harness(EdiSettings(folders=(EdiFolder(path=folder, direction="in"),)), now)
    h.cycle()
    path.write_bytes(data[:400])  # a little more, then the writer stalls again
    os.utime(path, (now - 7200, now - 7200))
    h.clock.advance(60)
    h.cycle()
    h.restart()  # the watch survives a restart
    path.write_bytes(data[:500])
    os.utime(path, (now - 7100, now - 7100))
    h.clock.advance(60)
    h.cycle()
    assert h.nonzero("normagent_edi_files_total", "outcome") == {("truncated",): 1}
    path.write_bytes(data)
    os.utime(path, (now - 7000, now - 7000))
    h.clock.advance(60)
    h.cycle()
    assert h.nonzero("normagent_edi_files_total", "outcome") == {("truncated",): 1, ("ok",): 1}


def test_a_file_that_cannot_be_read_is_unreadable() -> None:
    """(Running as root, permissions cannot make a file unreadable: /proc/<pid>/mem gives EIO.)"""
    import os

    directory = f"/proc/{os.getpid()}"
    st = os.stat(f"{directory}/mem")
    candidate = Candidate(f"{directory}/mem", directory, "mem", EdiFolder(path=Path(directory)), st.st_size, st.st_mtime_ns)
    parsed, why = read_file(candidate, 4096)
    assert why == "" and parsed is not None and parsed.outcome == "unreadable"
    assert parsed.detail == "Input/output error"


def _candidate_for(path: Path, base: Path | None = None) -> Candidate:
    import os

    st = os.lstat(path)
    return Candidate(str(path), str(path.parent), path.name, EdiFolder(path=base or path.parent), st.st_size,
                     st.st_mtime_ns, str(base or path.parent))


def test_what_replaced_a_listed_file_is_never_opened_if_it_is_not_a_regular_file(tmp_path: Path) -> None:
    """Swapped in between listing and opening: a directory, a link to a file outside the folder,
    a subdirectory turned into a link: left for the next listing ("changed"), never read."""
    import os

    outside = write(tmp_path / "outside" / "secret.xml", msghead("s", "EPIKRISE", "", "1", "2"), 1_000_000)
    folder = tmp_path / "inn"
    path = write(folder / "x.xml", outside.read_bytes(), 1_000_000)
    candidate = _candidate_for(path)
    path.unlink()
    path.mkdir()
    assert read_file(candidate, 4096) == (None, "changed")
    path.rmdir()
    path.symlink_to(outside)  # same size and time as what was listed
    assert read_file(candidate, 4096) == (None, "changed")
    sub = write(folder / "sub" / "y.xml", outside.read_bytes(), 1_000_000)
    candidate = _candidate_for(sub, base=folder)
    os.rename(folder / "sub", tmp_path / "old-sub")
    (folder / "sub").symlink_to(tmp_path / "outside")
    os.rename(outside, tmp_path / "outside" / "y.xml")
    assert read_file(candidate, 4096) == (None, "changed")


def test_a_fifo_swapped_in_after_the_listing_does_not_block_the_run(tmp_path: Path) -> None:
    import os
    import threading

    path = write(tmp_path / "inn" / "p.xml", msghead("p", "EPIKRISE", "", "1", "2"), 1_000_000)
    candidate = _candidate_for(path)
    path.unlink()
    os.mkfifo(path)
    result: list[Any] = []
    reader = threading.Thread(target=lambda: result.append(read_file(candidate, 4096)), daemon=True)
    reader.start()
    reader.join(timeout=30)
    blocked = reader.is_alive()
    if blocked:  # stuck in open() waiting for a writer: give it one, so the thread ends
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        reader.join(timeout=30)
    assert not blocked
    assert result == [(None, "changed")]


def test_links_fifos_and_linked_subdirectories_are_never_followed(harness: Any, tmp_path: Path) -> None:
    """A link to a file outside the folder (``/etc/shadow`` when the agent runs as root) is not
    read, nor a FIFO; each is counted once as not_regular. A subdirectory replaced by a link to a
    directory elsewhere is not listed."""
    import os

    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    elsewhere = tmp_path / "elsewhere"
    secret = write(elsewhere / "secret.xml", msghead("secret", "EPIKRISE", "", "2000001", OWN_HER[0]), now - 900)
    write(elsewhere / "secret-2.xml", msghead("secret-2", "EPIKRISE", "", "2000001", OWN_HER[0]), now - 900)
    folder = tmp_path / "inn"
    write(folder / "a.xml", msghead("a", "EPIKRISE", "", "2000001", OWN_HER[0]), now - 600)
    write(folder / "2026" / "b.xml", msghead("b", "EPIKRISE", "", "2000001", OWN_HER[0]), now - 600)
    (folder / "shadow.xml").symlink_to(secret)
    os.mkfifo(folder / "pipe.xml")
    settings = EdiSettings(folders=(EdiFolder(path=folder, direction="in", recursive=True),))
    h = harness(settings, now)
    with capture_logs() as logs:
        h.cycle()
    assert h.value("normagent_edi_messages_total", direction="in", msg_type="EPIKRISE") == 2
    assert h.nonzero("normagent_edi_files_total", "outcome") == {("ok",): 2, ("not_regular",): 2}
    assert sorted(e["file"] for e in logs if e["event"] == "edi_file_not_regular") == ["pipe.xml", "shadow.xml"]
    # The subdirectory is replaced by a link to a directory elsewhere.
    shutil.rmtree(folder / "2026")
    (folder / "2026").symlink_to(elsewhere, target_is_directory=True)
    h.clock.advance(60)
    h.cycle()
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_messages_total", direction="in", msg_type="EPIKRISE") == 2
    assert h.nonzero("normagent_edi_files_total", "outcome") == {("ok",): 2, ("not_regular",): 3}
    # A regular file put in place of the link is read.
    (folder / "shadow.xml").unlink()
    write(folder / "shadow.xml", msghead("c", "EPIKRISE", "", "2000001", OWN_HER[0]), now + 60)
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_messages_total", direction="in", msg_type="EPIKRISE") == 3


def test_a_file_changed_since_listing_is_left_for_the_next_cycle(tmp_path: Path) -> None:
    path = write(tmp_path / "y.xml", msghead("y", "EPIKRISE", "", "1", "2"), 1_000_000)
    candidate = Candidate(str(path), str(tmp_path), "y.xml", EdiFolder(path=tmp_path), 5, 1_000_000 * 10**9)
    assert read_file(candidate, 4096) == (None, "changed")
    path.unlink()
    assert read_file(candidate, 4096) == (None, "vanished")


# --------------------------------------------------------------------------------------------
# configuration and folders


def test_no_folders_is_no_data(harness: Any) -> None:
    h = harness(EdiSettings(), datetime(2026, 11, 24, tzinfo=timezone.utc))
    with pytest.raises(NoData, match="no EDI folders configured"):
        h.cycle()


def test_a_missing_folder_is_reported_and_the_others_are_read(harness: Any, tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    write(tmp_path / "inn" / "a.xml", msghead("a", "EPIKRISE", "", "2000001", OWN_HER[0]), now - 60)
    settings = EdiSettings(folders=(
        EdiFolder(path=tmp_path / "inn", direction="in"),
        EdiFolder(path=tmp_path / "borte", direction="out", name="utboks"),
    ))
    h = harness(settings, now)
    with capture_logs() as logs:
        h.cycle()
    assert h.series("normagent_edi_folder_up", "folder") == {("inn",): 1.0, ("utboks",): 0.0}
    assert {"event": "edi_folder_problem", "folder": "utboks"}.items() <= next(
        e for e in logs if e["event"] == "edi_folder_problem").items()
    assert h.value("normagent_edi_messages_total", direction="in", msg_type="EPIKRISE") == 1


def test_recursive_folders_globs_and_ignored_names(harness: Any, tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    base = tmp_path / "arkiv"
    write(base / "2026" / "11" / "a.xml", msghead("a", "EPIKRISE", "", OWN_HER[0], "2"), now - 60)
    write(base / "b.xml", msghead("b", "EPIKRISE", "", OWN_HER[0], "2"), now - 60)
    write(base / "c.xml.tmp", b"<half", now - 60)
    write(base / "notes.txt", b"not a message", now - 60)
    write(base / ".hidden.xml", msghead("h", "EPIKRISE", "", OWN_HER[0], "2"), now - 60)
    folder = EdiFolder(path=base, direction="out", role="archive", glob="*.xml", recursive=True)
    h = harness(EdiSettings(folders=(folder,)), now)
    h.cycle()
    assert h.value("normagent_edi_files_total", outcome="ok") == 2
    write(base / "2026" / "12" / "d.xml", msghead("d", "EPIKRISE", "", OWN_HER[0], "2"), now + 30)
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_messages_total", direction="out", msg_type="EPIKRISE") == 3
    shutil.rmtree(base / "2026")
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_indexed_files") == 1


def test_a_folder_removed_from_the_configuration_is_forgotten(harness: Any, tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    write(tmp_path / "a" / "1.xml", msghead("1", "EPIKRISE", "", OWN_HER[0], "2"), now - 60)
    write(tmp_path / "b" / "2.xml", msghead("2", "EPIKRISE", "", OWN_HER[0], "2"), now - 60)
    both = EdiSettings(folders=(EdiFolder(path=tmp_path / "a", direction="out"), EdiFolder(path=tmp_path / "b", direction="out")))
    h = harness(both, now)
    h.cycle()
    assert h.value("normagent_edi_indexed_files") == 2
    h.settings = EdiSettings(folders=(EdiFolder(path=tmp_path / "a", direction="out"),))
    h.restart()
    h.cycle()
    assert h.value("normagent_edi_indexed_files") == 1
    assert h.ledger.checkpoints(h.spec.name).get(f"f:{tmp_path / 'b' / '2.xml'}") is None


def test_direction_unknown_is_decided_by_our_her_ids(harness: Any, tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    mixed = tmp_path / "blandet"
    write(mixed / "out.xml", msghead("o", "HENVISNING", "", OWN_HER[0], "2000001"), now - 300)
    write(mixed / "in.xml", msghead("i", "SVAR_LAB", "", "2000001", OWN_HER[1]), now - 200)
    write(mixed / "other.xml", msghead("x", "EPIKRISE", "", "2000001", "2000002"), now - 100)
    write(mixed / "rec.xml", apprec("r", "o", "HENVISNING", "1", "", "2000001", "3000000"), now - 50)
    settings = EdiSettings(folders=(EdiFolder(path=mixed),), own_her_ids=OWN_HER)
    h = harness(settings, now)
    h.cycle()
    # other.xml was sent by someone else to someone else and still reached our folder: received,
    # and mis-addressed, as it would be in a folder of direction "in".
    assert h.nonzero("normagent_edi_messages_total", "direction", "msg_type") == {
        ("out", "HENVISNING"): 1, ("in", "SVAR_LAB"): 1, ("in", "EPIKRISE"): 1, ("in", "APPREC"): 1,
    }
    assert h.nonzero("normagent_edi_misaddressed_messages_total", "direction", "msg_type") == {("in", "EPIKRISE"): 1}
    assert h.nonzero("normagent_edi_receipts_total", "msg_type", "status") == {("HENVISNING", "1"): 1}


def test_direction_unknown_without_sender_her_stays_unknown(harness: Any, tmp_path: Path) -> None:
    """Without a HER id on either side nothing says who sent it: not counted as mis-addressed."""
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    mixed = tmp_path / "blandet"
    data = msghead("x", "EPIKRISE", "", "2000001", "2000002").replace(b'V="HER"', b'V="ENH"')
    write(mixed / "x.xml", data, now - 100)
    h = harness(EdiSettings(folders=(EdiFolder(path=mixed),), own_her_ids=OWN_HER), now)
    h.cycle()
    assert h.nonzero("normagent_edi_messages_total", "direction", "msg_type") == {("unknown", "EPIKRISE"): 1}
    assert h.nonzero("normagent_edi_misaddressed_messages_total", "direction", "msg_type") == {}


# --------------------------------------------------------------------------------------------
# the published and crafted fixtures, end to end


def _fixture_folders(root: Path, start: float) -> EdiSettings:
    out = [
        "dialogmelding/1.0/foresporsel-og-svar/dialog-svar-webmed-test.xml",
        "dialogmelding/1.0/foresporsel-og-svar/dialog-notat-webmed-test.xml",  # same MsgId, other type
        "crafted/ebxml-payload-inline.xml",
        "crafted/fellesformat-sykmeld.xml",
        "crafted/mime-encrypted.eml",
        "crafted/ebxml-payload-manifest.xml",  # the SOAP part of the MIME file: same MessageId
    ]
    inn = [
        "app-rec/1.0/example-ok.xml",
        "app-rec/1.0/example-avvist.xml",
        "app-rec/1.0/example-ok-feil-i-delmelding.xml",
        "app-rec/1.1/unknown-status.xml",
        "crafted/ebxml-acknowledgment.xml",
        "crafted/ebxml-messageerror.xml",
        "crafted/ebxml-messageerror-unprefixed.xml",
        "crafted/fellesformat-apprec.xml",
        "crafted/apprec-latin1-swapped.xml",
        "crafted/msghead-utf16.xml",
    ]
    for folder, names, offset in (("ut", out, 0), ("inn", inn, 600)):
        for i, name in enumerate(names):
            data = (FIXTURES / name).read_bytes()
            write(root / folder / f"{i:02d}-{Path(name).name}", data, start + offset + i)
    return EdiSettings(
        folders=(EdiFolder(path=root / "ut", direction="out"), EdiFolder(path=root / "inn", direction="in", role="receipts")),
        own_her_ids=("1000001", "1000002"),
    )


def test_published_and_crafted_messages_end_to_end(harness: Any, tmp_path: Path) -> None:
    start = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc).timestamp()
    h = harness(_fixture_folders(tmp_path, start), start + 5 * 3600)
    with capture_logs() as logs:
        h.cycle()
    # Receipts whose message is not in the folders: one debug line each, one info line in all.
    assert len([e for e in logs if e["event"] == "edi_receipt_for_unknown_message"]) == 7
    assert [e["files"] for e in logs if e["event"] == "edi_receipts_for_unknown_messages"] == [7]
    assert h.nonzero("normagent_edi_files_total", "outcome") == {("ok",): 14, ("duplicate_id",): 1, ("copy",): 1}
    assert h.nonzero("normagent_edi_messages_total", "direction", "msg_type") == {
        ("out", "DIALOG_SVAR"): 1, ("out", "DIALOG_HELSEFAGLIG"): 1, ("out", "SYKMELD"): 1, ("out", "EPIKRISE"): 1,
        ("in", "APPREC"): 6, ("in", "EPIKRISE"): 1,
    }
    assert h.nonzero("normagent_edi_receipts_total", "msg_type", "status") == {
        ("EPIKRISE", "1"): 1, ("EPIKRISE", "2"): 1, ("LOM", "3"): 1, ("DIALOG_HELSEFAGLIG", "unknown"): 1,
        ("SYKMELD", "2"): 1, ("HENVISNING", "2"): 1,
    }
    assert h.nonzero("normagent_edi_receipt_errors_total", "msg_type", "code_list", "error_code") == {
        ("EPIKRISE", "8221", "E21"): 1, ("LOM", "8223", "07"): 1, ("LOM", "8223", "16"): 1,
        ("SYKMELD", "8221", "X99"): 1, ("HENVISNING", "8221", "E21"): 1, ("HENVISNING", "8221", "T02"): 1,
    }
    assert h.nonzero("normagent_edi_transport_errors_total", "error_code") == {("ValueNotRecognized",): 1, ("T01",): 1}
    assert h.nonzero("normagent_edi_misaddressed_messages_total", "direction", "msg_type") == {
        ("out", "EPIKRISE"): 1, ("out", "unknown"): 1, ("out", "HENVISNING"): 1,
    }
    # Five hours on: the two envelopes we sent have no transport receipt; no AppRec is overdue yet.
    assert h.nonzero("normagent_edi_unacknowledged_messages", "msg_type", "receipt") == {
        ("DIALOG_HELSEFAGLIG", "transport"): 1, ("EPIKRISE", "transport"): 1,
    }
    assert h.series("normagent_edi_unmatched_receipts", "receipt") == {("application",): 4, ("transport",): 2}
    # The same receipts, counted once each (the crafted messages answer ones that are not in the folders).
    assert h.series("normagent_edi_receipts_for_unknown_messages_total", "receipt") == {("application",): 5, ("transport",): 2}
    rejected = h.ledger.events("edi.rejected", _all_time())
    assert {e.attrs["original_msg_id"]: e.attrs["errors"] for e in rejected} == {
        "a6967e6a-8c0a-4be4-a647-c921d3086423": "8221:E21",
        "37de51e0-33a9-11de-a4cb-0002a5d5c51b": "8223:07,8223:16",
        "22222222-0000-4000-8000-000000000005": "8221:X99",
        "55555555-0000-4000-8000-000000000008": "8221:E21,8221:T02",
    }


# --------------------------------------------------------------------------------------------
# receipts over time


def test_unacknowledged_gauges_follow_time_and_late_receipts(harness: Any, tmp_path: Path) -> None:
    sent = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc).timestamp()
    out, inn = tmp_path / "ut", tmp_path / "inn"
    write(out / "m.xml", msghead("m", "HENVISNING", "", OWN_HER[0], "2000001"), sent)
    write(out / "n.xml", msghead("n", "HENVISNING", "", OWN_HER[0], "2000001", ack="N"), sent)
    inn.mkdir()  # (receipts are judged only while their folder is there)
    settings = EdiSettings(folders=(EdiFolder(path=out, direction="out"), EdiFolder(path=inn, direction="in")))
    h = harness(settings, sent + 3600)

    def gauges() -> tuple[float, float, float, float]:
        key = {"msg_type": "HENVISNING", "receipt": "application"}
        return (
            h.value("normagent_edi_unacknowledged_messages", **key),
            h.value("normagent_edi_unacknowledged_alarm_messages", **key),
            h.value("normagent_edi_oldest_unacknowledged_age_seconds", **key),
            h.value("normagent_edi_unacknowledged_total", **key),
        )

    h.cycle()
    assert gauges() == (0, 0, 3600, 0)  # waiting, not overdue (Ack N: not waiting at all)
    h.clock.advance(24 * 3600)
    h.cycle()
    assert gauges() == (1, 0, 25 * 3600, 1)
    h.clock.advance(48 * 3600)
    h.cycle()
    assert gauges() == (1, 1, 73 * 3600, 1)
    write(inn / "r.xml", apprec("r", "m", "HENVISNING", "1", "", "2000001", OWN_HER[0]), sent + 73 * 3600 + 10)
    h.clock.advance(60)
    h.cycle()
    assert gauges() == (0, 0, 0, 1)  # the late receipt ends the wait; it was counted once, when overdue
    events = h.ledger.events("edi.unacknowledged", _all_time())
    assert [(e.key, e.attrs["late_receipt"]) for e in events] == [("application:m", False)]


def test_per_type_timeouts_and_a_late_receipt_read_in_one_go(harness: Any, tmp_path: Path) -> None:
    """A receipt that came after the timeout counts as late even when both are indexed at once."""
    sent = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc).timestamp()
    out, inn = tmp_path / "ut", tmp_path / "inn"
    write(out / "a.xml", msghead("a", "LOM", "", OWN_HER[0], "2000001"), sent)
    write(out / "b.xml", msghead("b", "EPIKRISE", "", OWN_HER[0], "2000001"), sent)
    write(inn / "ra.xml", apprec("ra", "a", "LOM", "1", "", "2000001", OWN_HER[0]), sent + 30 * 3600)
    write(inn / "rb.xml", apprec("rb", "b", "EPIKRISE", "1", "", "2000001", OWN_HER[0]), sent + 30 * 3600)
    from normagent.plugins.edi.settings import TypeTimeouts

    settings = EdiSettings(
        folders=(EdiFolder(path=out, direction="out"), EdiFolder(path=inn, direction="in")),
        type_timeouts={"LOM": TypeTimeouts(application=timedelta(days=3))},
    )
    h = harness(settings, sent + 4 * 86400)
    h.cycle()
    assert h.nonzero("normagent_edi_unacknowledged_total", "msg_type", "receipt") == {("EPIKRISE", "application"): 1}
    (event,) = h.ledger.events("edi.unacknowledged", _all_time())
    assert event.attrs["late_receipt"] is True and event.attrs["message_id"] == "b"


def test_misaddressed_incoming_is_counted_once_whatever_the_evidence(harness: Any, tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    inn, out = tmp_path / "inn", tmp_path / "kvittering-ut"
    write(inn / "x.xml", msghead("x", "SVAR_LAB", "", "2000001", "9999999"), now - 600)
    write(out / "rx.xml", apprec("rx", "x", "SVAR_LAB", "2", "", OWN_HER[0], "2000001",
                                 errors=(("E21", "2.16.578.1.12.4.1.1.8221"),)), now - 500)
    # And the other order: our E21 receipt read before the message it rejects.
    write(out / "ry.xml", apprec("ry", "y", "SVAR_LAB", "2", "", OWN_HER[0], "2000001",
                                 errors=(("E21", "2.16.578.1.12.4.1.1.8221"),)), now - 400)
    write(inn / "y.xml", msghead("y", "SVAR_LAB", "", "2000001", "9999999"), now - 300)
    settings = EdiSettings(
        folders=(EdiFolder(path=inn, direction="in"), EdiFolder(path=out, direction="out")), own_her_ids=OWN_HER,
    )
    h = harness(settings, now)
    h.cycle()
    assert h.nonzero("normagent_edi_misaddressed_messages_total", "direction", "msg_type") == {("in", "SVAR_LAB"): 2}
    assert h.nonzero("normagent_edi_receipts_total", "msg_type", "status") == {}  # our own receipts are not "received"


def test_encrypted_envelopes_can_be_left_uncounted(harness: Any, tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    write(tmp_path / "ut" / "m.eml", (FIXTURES / "crafted" / "mime-encrypted.eml").read_bytes(), now - 60)
    folders = (EdiFolder(path=tmp_path / "ut", direction="out"),)
    counted = harness(EdiSettings(folders=folders), now)
    counted.cycle()
    assert counted.value("normagent_edi_messages_total", direction="out", msg_type="EPIKRISE") == 1
    uncounted = harness(EdiSettings(folders=folders, count_encrypted_envelopes=False), now)
    uncounted.cycle()
    assert uncounted.value("normagent_edi_messages_total", direction="out", msg_type="EPIKRISE") == 0
    assert uncounted.value("normagent_edi_oldest_unacknowledged_age_seconds", msg_type="EPIKRISE", receipt="transport") == 60


# --------------------------------------------------------------------------------------------
# stops, live


@pytest.mark.parametrize("window_in", ["collector", "calendar"])
def test_stops_are_counted_live_planned_and_unplanned(harness: Any, tmp_path: Path, window_in: str) -> None:
    """The maintenance window comes from the collector's own setting or from the agent's shared
    [maintenance] calendar: either makes the stop inside it planned."""
    from normagent.maintenance import Calendar, MaintenanceSettings, OneOffWindow
    from normagent.plugins.edi.settings import MaintenanceWindow

    oslo = timezone(timedelta(hours=1))
    day = datetime(2026, 11, 24, 8, 0, tzinfo=oslo)  # a Tuesday, 08:00 in Oslo
    out = tmp_path / "ut"
    start, end = datetime(2026, 11, 24, 12, 0), datetime(2026, 11, 24, 13, 0)  # Oslo time
    own = (MaintenanceWindow(start=start, end=end),) if window_in == "collector" else ()
    settings = EdiSettings(folders=(EdiFolder(path=out, direction="out"),), stop_gap=timedelta(minutes=30), maintenance=own)
    h = harness(settings, day)
    if window_in == "calendar":
        calendar = Calendar(MaintenanceSettings(time_zone="Europe/Oslo", windows=(OneOffWindow(start, end, "EPJ", "EPJ-leverandør"),)))
        h.cycle = functools.partial(h.cycle, maintenance=calendar)
    n = 0

    def send() -> None:
        nonlocal n
        n += 1
        write(out / f"{n}.xml", msghead(f"s{n}", "EPIKRISE", "", OWN_HER[0], "2000001"), h.clock.now().timestamp() - 1)

    for _ in range(6):  # traffic every 10 minutes, 08:00–09:00
        send()
        h.cycle()
        h.clock.advance(600)
    # Silence 09:00–11:00: a stop once 30 minutes have passed.
    for _ in range(12):
        h.cycle()
        h.clock.advance(600)
    assert h.value("normagent_edi_stop_current_seconds", direction="out") > 0
    send()  # 11:00: traffic resumes
    h.cycle()
    h.clock.advance(600)
    # Silence 11:00–14:00, an hour of it inside the maintenance window.
    for _ in range(18):
        h.cycle()
        h.clock.advance(600)
    send()
    h.cycle()
    # The silences run from the last file (08:49:59, 10:59:59) to the next (10:59:59, 14:09:59).
    unplanned = h.value("normagent_edi_stop_seconds_total", direction="out", planned="false")
    planned = h.value("normagent_edi_stop_seconds_total", direction="out", planned="true")
    assert planned == pytest.approx(3600)
    assert unplanned == pytest.approx(7800 + 7800)
    stops = h.ledger.events("edi.stop", _all_time())
    assert [(e.attrs["planned"], round(e.attrs["seconds"])) for e in stops] == [
        (False, 7800), (False, 3601), (True, 3600), (False, 4199),
    ]
    assert h.value("normagent_edi_stop_current_seconds", direction="out") == 0


def test_the_message_server_being_down_starts_a_stop_at_once(harness: Any, tmp_path: Path) -> None:
    from normagent.plugins.edi.settings import ServiceCheck
    from normagent.testing import FakeHost

    day = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)  # 10:00 in Oslo
    out = tmp_path / "ut"
    host = FakeHost(processes={"meldingstjener"})
    settings = EdiSettings(folders=(EdiFolder(path=out, direction="out"),), service=ServiceCheck(process="meldingstjener"))
    h = harness(settings, day, host=host)
    write(out / "1.xml", msghead("1", "EPIKRISE", "", OWN_HER[0], "2"), day.timestamp() - 1)
    h.cycle()
    assert h.value("normagent_edi_service_up") == 1
    host.processes.clear()
    with capture_logs() as logs:
        h.clock.advance(60)
        h.cycle()  # down seen at 10:01
        h.clock.advance(300)
        write(out / "2.xml", msghead("2", "EPIKRISE", "", OWN_HER[0], "2"), h.clock.now().timestamp() - 1)
        h.cycle()
    assert h.value("normagent_edi_service_up") == 0
    assert any(e["event"] == "edi_service_down" for e in logs)
    # The EPJ still writes files, but the server is down: 5 minutes of stop in each direction.
    assert h.value("normagent_edi_stop_seconds_total", direction="out", planned="false") == pytest.approx(300)
    assert h.value("normagent_edi_stop_seconds_total", direction="in", planned="false") == pytest.approx(300)
    host.processes.add("meldingstjener")
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_service_up") == 1
    assert h.value("normagent_edi_stop_seconds_total", direction="out", planned="false") == pytest.approx(360)


def test_a_systemd_unit_is_asked_with_systemctl(harness: Any, tmp_path: Path) -> None:
    from normagent.plugins.edi.settings import ServiceCheck

    now = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
    (tmp_path / "ut").mkdir()
    settings = EdiSettings(folders=(EdiFolder(path=tmp_path / "ut"),), service=ServiceCheck(systemd_unit="edi.service"))
    h = harness(settings, now, commands={("systemctl", "is-active", "edi.service"): "failed\n"})
    h.cycle()
    assert h.value("normagent_edi_service_up") == 0
    h.commands[("systemctl", "is-active", "edi.service")] = "active\n"
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_service_up") == 1


# --------------------------------------------------------------------------------------------
# privacy


def test_no_patient_data_in_logs_checkpoints_events_or_metrics(harness: Any, tree: tuple[Path, Truth], tmp_path: Path) -> None:
    root = copy_tree(tree[0], tmp_path / "edi")
    h = harness(settings_for(root), tree[1].now)
    with capture_logs() as logs:
        h.cycle()
    state = dict(h.ledger.checkpoints(h.spec.name).scan())
    events = [e for kind in ("edi.rejected", "edi.unacknowledged", "edi.transport_error", "edi.stop")
              for e in h.ledger.events(kind, _all_time())]
    for where, text in (("logs", repr(logs)), ("checkpoints", json.dumps(state)), ("events", repr(events)),
                        ("metrics", repr(h.ledger.snapshot().series))):
        assert PATIENT_MARKER not in text, where
    # Log lines name a folder and a file, never a path that could hold a name.
    assert all("/" not in str(e.get("file", "")) for e in logs)


@pytest.mark.parametrize(("gen_date", "kind"), [("23.11.2026 10:00", "unparseable"), ("", "missing"),
                                                 ("2026-11-24T10:00:00+05:30", "with_zone"), ("2026-11-24T10:00:00", "no_zone")])
def test_message_dates_are_counted_by_kind_and_unusable_ones_logged(harness: Any, tmp_path: Path, gen_date: str, kind: str) -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    write(tmp_path / "inn" / "d.xml", msghead("d", "EPIKRISE", gen_date, "2000001", OWN_HER[0]), now - 60)
    h = harness(EdiSettings(folders=(EdiFolder(path=tmp_path / "inn", direction="in"),)), now)
    with capture_logs() as logs:
        h.cycle()
    assert h.nonzero("normagent_edi_timestamps_total", "kind") == {(kind,): 1}
    unusable = [e for e in logs if e["event"] == "edi_gendate_unusable"]
    assert [e["kind"] for e in unusable] == ([kind] if kind in ("unparseable", "missing") else [])
    assert h.value("normagent_edi_messages_total", direction="in", msg_type="EPIKRISE") == 1  # counted all the same



@pytest.mark.parametrize("full", [False, True])
def test_a_file_rewritten_in_place_is_only_noticed_with_full_rescan(harness: Any, tmp_path: Path, full: bool) -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    path = write(tmp_path / "ut" / "m.xml", msghead("m", "EPIKRISE", "2026-11-24T10:00:00", OWN_HER[0], "2"), now - 600)
    h = harness(EdiSettings(folders=(EdiFolder(path=tmp_path / "ut", direction="out"),), full_rescan=full), now)
    h.cycle()
    path.write_bytes(path.read_bytes() + b"\n<!-- rewritten -->\n")  # the directory does not change
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_files_total", outcome="rewritten") == (1 if full else 0)
    assert h.value("normagent_edi_messages_total", direction="out", msg_type="EPIKRISE") == 1


def test_waiting_gauges_drop_to_zero_across_a_restart(harness: Any, tmp_path: Path) -> None:
    """A series exported before a restart is set to 0 when its message is answered, not left stale."""
    sent = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc).timestamp()
    write(tmp_path / "ut" / "m.xml", msghead("m", "LOM", "", OWN_HER[0], "2"), sent)
    (tmp_path / "inn").mkdir()
    settings = EdiSettings(folders=(EdiFolder(path=tmp_path / "ut", direction="out"),
                                    EdiFolder(path=tmp_path / "inn", direction="in")))
    h = harness(settings, sent + 2 * 86400)
    h.cycle()
    assert h.value("normagent_edi_unacknowledged_messages", msg_type="LOM", receipt="application") == 1
    h.restart()
    write(tmp_path / "inn" / "r.xml", apprec("r", "m", "LOM", "1", "", "2", OWN_HER[0]), sent + 2 * 86400 + 5)
    h.clock.advance(60)
    h.cycle()
    assert h.series("normagent_edi_unacknowledged_messages", "msg_type", "receipt") == {("LOM", "application"): 0.0}



# --------------------------------------------------------------------------------------------
# hostile and unlucky folders (issue 9)


def test_a_file_name_that_is_not_utf8_is_indexed_losslessly_and_blocks_nothing(harness: Any, tmp_path: Path) -> None:
    """A Latin-1 name from an SMB writer (``bad\\xffname.xml``) is read and indexed like any other;
    its neighbours are counted, a restart does not count it again, and its removal is noticed."""
    import os

    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    inn = tmp_path / "inn"
    write(inn / "good.xml", msghead("good", "EPIKRISE", "", "2000001", OWN_HER[0]), now - 120)
    bad = os.path.join(os.fsencode(inn), b"bad\xe6\xf8\xe5name.xml")  # "bad¾øåname.xml" in Latin-1
    with open(bad, "wb") as fh:
        fh.write(msghead("bad", "EPIKRISE", "", "2000001", OWN_HER[0]))
    os.utime(bad, (now - 60, now - 60))
    broken = os.path.join(os.fsencode(inn), b"\xff.xml")
    with open(broken, "wb") as fh:
        fh.write(b"<html/>")
    os.utime(broken, (now - 60, now - 60))
    h = harness(EdiSettings(folders=(EdiFolder(path=inn, direction="in"),)), now)
    with capture_logs() as logs:
        h.cycle()
    assert h.value("normagent_edi_messages_total", direction="in", msg_type="EPIKRISE") == 2
    assert h.value("normagent_edi_files_total", outcome="ok") == 2
    assert h.value("normagent_edi_files_total", outcome="unknown_format") == 1
    # Log lines carry the name escaped, never a lone surrogate a JSON or console writer trips over.
    assert [e["file"] for e in logs if e["event"] == "edi_file_not_read"] == ["\\xff.xml"]
    h.restart()  # the index is rebuilt from the ledger: the stored name must match the listed one
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_files_total", outcome="ok") == 2
    assert h.value("normagent_edi_indexed_files") == 3
    os.unlink(bad)
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_indexed_files") == 2
    assert not [k for k, _ in h.ledger.checkpoints(h.spec.name).scan() if "name.xml" in k]


def test_a_subfolder_whose_name_is_not_utf8_is_read_and_remembered(harness: Any, tmp_path: Path) -> None:
    import os

    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    arkiv = tmp_path / "arkiv"
    sub = os.path.join(os.fsencode(arkiv), b"\xc5r 2026")  # "År 2026" in Latin-1
    os.makedirs(sub)
    path = os.path.join(sub, b"m.xml")
    with open(path, "wb") as fh:
        fh.write(msghead("m", "EPIKRISE", "", OWN_HER[0], "2000001"))
    os.utime(path, (now - 60, now - 60))
    h = harness(EdiSettings(folders=(EdiFolder(path=arkiv, direction="out", role="archive", recursive=True),)), now)
    h.cycle()
    h.restart()
    h.clock.advance(60)
    h.cycle()
    assert h.nonzero("normagent_edi_files_total", "outcome") == {("ok",): 1}
    assert h.value("normagent_edi_messages_total", direction="out", msg_type="EPIKRISE") == 1


def test_open_dir_refuses_a_path_outside_the_folder(tmp_path: Path) -> None:
    import errno

    from normagent.plugins.edi.scan import open_dir

    (tmp_path / "inn").mkdir()
    with pytest.raises(OSError) as err:
        open_dir(str(tmp_path / "inn"), str(tmp_path))
    assert err.value.errno == errno.EXDEV


@pytest.mark.parametrize("raw", [b"/srv/inn/a.xml", "/srv/inn/æøå.xml".encode(), b"/srv/inn/bad\xffname.xml",
                                 b"/srv/inn/100%\xe6.xml", b"/srv/\xe5r/%41.xml"])
def test_file_keys_are_valid_utf8_and_round_trip(raw: bytes) -> None:
    import os

    from normagent.plugins.edi.index import file_key, key_path

    path = os.fsdecode(raw)
    key = file_key(path)
    key.encode("utf-8")  # what SQLite stores
    assert key_path(key) == path
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        assert key.startswith("fx:")
    else:
        assert key == "f:" + path  # valid names keep the plain form: ledgers written before stay valid


def _bytes_read() -> int:
    with open("/proc/thread-self/io", "rb") as fh:
        return int(fh.read().split(b"rchar:")[1].split()[0])


class _DiskClock:
    """A FakeClock on a slow disk: monotonic time moves with the bytes this thread has read
    (``rchar`` in ``/proc/thread-self/io``) at ``speed`` bytes per second. Deterministic, and
    independent of how often the code under test looks at the clock."""

    def __init__(self, clock: Any, speed: float) -> None:
        self._clock = clock
        self._speed = speed
        self._start = _bytes_read()
        self._offset = clock.monotonic()

    def now(self) -> datetime:
        return self._clock.now()

    def monotonic(self) -> float:
        return self._offset + (_bytes_read() - self._start) / self._speed

    def advance(self, seconds: float) -> None:
        self._clock.advance(seconds)
        self._offset += seconds


def _run_as_scheduled(h: Any, timeout: float) -> Any:
    """One run through the scheduler's own ``execute``: batches yielded after the deadline are dropped."""
    from normagent.scheduler import Job, execute

    job = Job(h.spec, 60.0, timeout, h.settings)
    ctx = h.context(timeout=timeout)
    return execute(job, ctx, h.ledger, h.clock, h.clock.now(), h.clock.monotonic())


def test_a_file_too_slow_to_read_is_counted_as_timeout_and_the_folder_goes_on(harness: Any, tmp_path: Path) -> None:
    """A file that alone takes longer than the run may (a slow share, a huge junk header) once made
    every run time out on it and count nothing else, forever."""
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    inn = tmp_path / "inn"
    write(inn / "a.xml", msghead("a", "EPIKRISE", "", "2000001", OWN_HER[0]), now - 300)
    head = f"<MsgHead xmlns='{'http://www.kith.no/xmlstds/msghead/2006-05-24'}'><MsgInfo><Junk>".encode()
    write(inn / "slow.xml", head + b"<a/>" * (2 * 2**20), now - 200)  # 8 MiB: 64 chunks up to the 4 MiB limit
    write(inn / "b.xml", msghead("b", "EPIKRISE", "", "2000001", OWN_HER[0]), now - 100)
    h = harness(EdiSettings(folders=(EdiFolder(path=inn, direction="in"),)), now)
    h.clock = _DiskClock(h.clock, speed=64 * 1024)  # the 4 MiB the header limit allows take 64 s
    with capture_logs() as logs:
        outcome = _run_as_scheduled(h, timeout=50)
    assert outcome.ok, outcome
    assert h.nonzero("normagent_edi_files_total", "outcome") == {("ok",): 2, ("timeout",): 1}
    assert h.value("normagent_edi_messages_total", direction="in", msg_type="EPIKRISE") == 2
    (line,) = [e for e in logs if e["event"] == "edi_file_timed_out"]
    assert line["file"] == "slow.xml" and line["log_level"] == "warning"
    h.clock.advance(60)
    assert _run_as_scheduled(h, timeout=50).ok  # not read again while it does not change
    assert h.value("normagent_edi_files_total", outcome="timeout") == 1


def test_a_catch_up_slower_than_one_run_still_makes_progress(harness: Any, tmp_path: Path) -> None:
    """A batch that takes longer than the whole run was never committed: no run ever got past it."""
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    inn = tmp_path / "inn"
    for i in range(40):
        data = msghead(f"m{i}", "EPIKRISE", "", "2000001", OWN_HER[0], body_size=16 * 1024)
        write(inn / f"{i:02d}.xml", data, now - 1000 + i)
    h = harness(EdiSettings(folders=(EdiFolder(path=inn, direction="in"),)), now)
    h.clock = _DiskClock(h.clock, speed=8 * 1024)  # 40 files of 18 KiB: 90 s, more than a 40 s run
    counted = []
    for _ in range(12):
        _run_as_scheduled(h, timeout=40)
        h.clock.advance(60)
        counted.append(h.value("normagent_edi_files_total", outcome="ok"))
    assert counted[0] > 0 and counted == sorted(counted)  # every run gets further
    assert h.value("normagent_edi_messages_total", direction="in", msg_type="EPIKRISE") == 40
    assert h.value("normagent_edi_files_total", outcome="ok") == 40


def test_a_folder_that_cannot_be_listed_is_down(tmp_path: Path) -> None:
    """A folder (or a subfolder of a recursive one) that exists but cannot be listed — permissions,
    a broken share — is not up: nothing in it can be seen."""
    import os
    import tempfile

    from normagent.ledger import MemoryCheckpoints
    from normagent.plugins.edi.index import DirState, Index
    from normagent.plugins.edi.scan import scan

    top = Path(tempfile.mkdtemp(prefix="edi-perm-"))  # /tmp, reachable by nobody (tmp_path is not)
    try:
        top.chmod(0o755)
        for name in ("inn", "arkiv/2026/11", "ut"):
            (top / name).mkdir(parents=True)
            write(top / name / "m.xml", msghead("m", "EPIKRISE", "", "1", "2"), 1_000_000)
        for name in ("arkiv", "arkiv/2026", "ut"):
            (top / name).chmod(0o755)
        (top / "inn").chmod(0o711)  # others may pass through, not list
        (top / "arkiv" / "2026" / "11").chmod(0o711)
        folders = (EdiFolder(path=top / "inn"), EdiFolder(path=top / "arkiv", recursive=True), EdiFolder(path=top / "ut"))

        def look() -> dict[str, Any]:
            found = scan(folders, Path("/"), Index(MemoryCheckpoints()), now=2_000_000_000)
            return {"up": found.folders_up, "problems": found.problems, "files": sorted(c.name for c in found.candidates)}

        seen = as_nobody(look)
        # A folder that loses its permissions while unchanged (chmod does not move its time).
        (top / "kvittering").mkdir()
        os.chown(top / "kvittering", 65534, 65534)

        def lose_permission() -> list[bool]:
            folder = (EdiFolder(path=top / "kvittering"),)
            index = Index(MemoryCheckpoints())
            before = scan(folder, Path("/"), index, now=2_000_000_000)
            index.dirs = {d: DirState(s.mtime_ns, s.ino, False, s.subdirs) for d, s in before.dirs.items()}
            (top / "kvittering").chmod(0o311)
            after = scan(folder, Path("/"), index, now=2_000_000_000)
            return [before.folders_up["kvittering"], after.folders_up["kvittering"]]

        assert as_nobody(lose_permission) == [True, False]
    finally:
        for directory, _, _ in os.walk(top):
            os.chmod(directory, 0o755)
        shutil.rmtree(top)
    assert seen["up"] == {"inn": False, "arkiv": False, "ut": True}
    assert sorted(label for label, _ in seen["problems"]) == ["arkiv", "inn"]
    assert all("cannot list" in what for _, what in seen["problems"])


@pytest.mark.parametrize("outage", ["missing", "not_a_directory"])
def test_receipts_are_not_judged_missing_while_their_folder_is_down(harness: Any, tmp_path: Path, outage: str) -> None:
    """While the inbox is away (an unmounted share), a sent message passing its timeout is not
    counted as unacknowledged; when the inbox returns with a receipt that came in time, it never is."""
    import os

    sent = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc).timestamp()
    out, inn = tmp_path / "ut", tmp_path / "inn"
    write(out / "m.xml", msghead("m", "HENVISNING", "", OWN_HER[0], "2000001"), sent)
    write(out / "n.xml", msghead("n", "HENVISNING", "", OWN_HER[0], "2000001"), sent)
    write(inn / "r.xml", apprec("r", "m", "HENVISNING", "1", "", "2000001", OWN_HER[0]), sent + 3600)
    hidden = tmp_path / "inn-away"
    os.rename(inn, hidden)
    if outage == "not_a_directory":
        inn.write_bytes(b"")
    settings = EdiSettings(folders=(EdiFolder(path=out, direction="out"), EdiFolder(path=inn, direction="in", role="receipts")))
    h = harness(settings, sent + 3600)
    h.cycle()
    key = {"msg_type": "HENVISNING", "receipt": "application"}
    h.clock.advance(2 * 86400)
    with capture_logs() as logs:
        h.cycle()
    assert h.value("normagent_edi_folder_up", folder="inn") == 0
    assert h.value("normagent_edi_unacknowledged_total", **key) == 0
    assert any(e["event"] == "edi_receipts_not_judged" for e in logs)
    if inn.is_file():
        inn.unlink()
    os.rename(hidden, inn)  # the share is back, with m's receipt that came after an hour
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_folder_up", folder="inn") == 1
    assert h.value("normagent_edi_unacknowledged_total", **key) == 1  # n only: it has no receipt
    assert h.value("normagent_edi_unacknowledged_messages", **key) == 1
    (event,) = h.ledger.events("edi.unacknowledged", _all_time())
    assert event.attrs["message_id"] == "n"


def test_receipts_for_messages_we_never_sent_are_counted_apart(harness: Any, tmp_path: Path) -> None:
    """``normagent_edi_receipts_total`` said "for our messages" while it also counted receipts for
    messages never read as sent; those are now counted apart as well, and its help says what it counts."""
    from normagent.plugins.edi.collectors import METRICS

    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    out, inn = tmp_path / "ut", tmp_path / "inn"
    write(out / "m.xml", msghead("m", "EPIKRISE", "", OWN_HER[0], "2000001"), now - 900)
    write(inn / "x.xml", msghead("x", "SVAR_LAB", "", "2000001", OWN_HER[0]), now - 850)  # a message we received
    write(inn / "r1.xml", apprec("r1", "m", "EPIKRISE", "1", "", "2000001", OWN_HER[0]), now - 800)
    write(inn / "r2.xml", apprec("r2", "never-sent", "EPIKRISE", "2", "", "2000001", OWN_HER[0]), now - 700)
    write(inn / "r3.xml", apprec("r3", "x", "SVAR_LAB", "1", "", "2000001", OWN_HER[0]), now - 650)  # not ours either
    write(inn / "a1.xml", (FIXTURES / "crafted" / "ebxml-acknowledgment.xml").read_bytes(), now - 600)
    settings = EdiSettings(folders=(EdiFolder(path=out, direction="out"), EdiFolder(path=inn, direction="in")),
                           own_her_ids=OWN_HER)
    h = harness(settings, now)
    h.cycle()
    h.clock.advance(60)
    h.cycle()
    assert h.nonzero("normagent_edi_receipts_total", "msg_type", "status") == {
        ("EPIKRISE", "1"): 1, ("EPIKRISE", "2"): 1, ("SVAR_LAB", "1"): 1,
    }
    assert h.series("normagent_edi_receipts_for_unknown_messages_total", "receipt") == {
        ("application",): 2, ("transport",): 1,
    }
    helps = {spec.name: spec.help for spec in METRICS}
    assert "for our messages" not in helps["normagent_edi_receipts_total"]
    assert "for our messages" not in helps["normagent_edi_transport_errors_total"]


# --------------------------------------------------------------------------------------------
# how long things are remembered (issue 9, item 24: these settings had no test a bug would fail)


def test_history_retention_decides_when_a_handled_id_is_forgotten(harness: Any, tmp_path: Path) -> None:
    """An id is remembered ``history_retention`` after its last file or receipt (a move within it is
    no new message) and forgotten after it — checked once a day."""
    sent = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc).timestamp()
    out, inn, arkiv = tmp_path / "ut", tmp_path / "inn", tmp_path / "arkiv"
    write(out / "a.xml", msghead("a", "EPIKRISE", "", OWN_HER[0], "2000001"), sent)
    write(out / "b.xml", msghead("b", "EPIKRISE", "", OWN_HER[0], "2000001"), sent)
    write(inn / "rb.xml", apprec("rb", "b", "EPIKRISE", "1", "", "2000001", OWN_HER[0]), sent + 5 * 86400)
    settings = EdiSettings(
        folders=(EdiFolder(path=out, direction="out"), EdiFolder(path=inn, direction="in"),
                 EdiFolder(path=arkiv, direction="out", role="archive")),
        history_retention=timedelta(days=10),
    )
    arkiv.mkdir()
    h = harness(settings, sent + 5 * 86400 + 3600)
    state = lambda: h.ledger.checkpoints(h.spec.name)  # noqa: E731
    h.cycle()
    h.clock.advance(4 * 86400)  # 9 days after a was sent: both remembered, a move is a move
    h.cycle()
    move(out / "a.xml", arkiv / "a.xml")
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_files_total", outcome="moved") == 1
    assert state().get("m:a") is not None
    h.clock.advance(2 * 86400)  # 11 days: a is forgotten; b's receipt came 6 days ago, so b is not
    with capture_logs() as logs:
        h.cycle()
    assert state().get("m:a") is None and state().get("m:b") is not None
    assert [e["ids"] for e in logs if e["event"] == "edi_ids_forgotten"] == [1]
    def at(days: float) -> None:
        h.clock.advance(sent + days * 86400 - h.clock.now().timestamp())

    at(14.5)
    h.cycle()  # a prune: b's receipt is 9.5 days old, kept
    at(15 + 1 / 24)
    h.cycle()  # b's receipt is 10 days and an hour old, but pruning runs once a day: kept till the next
    assert state().get("m:b") is not None and state().get("m:rb") is not None
    at(15.5 + 1 / 24)
    h.cycle()
    assert state().get("m:b") is None and state().get("m:rb") is None
    # Forgotten means forgotten: the same id seen again is a new message.
    write(out / "a-again.xml", msghead("a", "EPIKRISE", "", OWN_HER[0], "2000001"), h.clock.now().timestamp() - 5)
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_messages_total", direction="out", msg_type="EPIKRISE") == 3


def test_forget_unacknowledged_after_takes_a_waiting_message_off_the_gauges_once(harness: Any, tmp_path: Path) -> None:
    """Overdue after the timeout (counted once), in the gauges until exactly ``forget_unacknowledged_after``,
    off them after it — also after a restart, and a receipt that comes later changes no count. Receipts
    for unknown messages leave the unmatched gauge after the same window."""
    sent = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc).timestamp()
    out, inn = tmp_path / "ut", tmp_path / "inn"
    write(out / "m.xml", msghead("m", "HENVISNING", "", OWN_HER[0], "2000001"), sent)
    write(inn / "r0.xml", apprec("r0", "never-sent", "HENVISNING", "1", "", "2000001", OWN_HER[0]), sent)
    settings = EdiSettings(
        folders=(EdiFolder(path=out, direction="out"), EdiFolder(path=inn, direction="in")),
        application_timeout=timedelta(days=1), alarm_after=timedelta(days=2),
        forget_unacknowledged_after=timedelta(days=3),
    )
    key = {"msg_type": "HENVISNING", "receipt": "application"}
    h = harness(settings, sent + 3600)

    def seen() -> tuple[float, float, float, float, float]:
        return (h.value("normagent_edi_unacknowledged_messages", **key),
                h.value("normagent_edi_unacknowledged_alarm_messages", **key),
                h.value("normagent_edi_oldest_unacknowledged_age_seconds", **key),
                h.value("normagent_edi_unacknowledged_total", **key),
                h.value("normagent_edi_unmatched_receipts", receipt="application"))

    h.cycle()
    assert seen() == (0, 0, 3600, 0, 1)
    h.clock.advance(3 * 86400 - 3600)  # exactly the window: still shown
    h.cycle()
    assert seen() == (1, 1, 3 * 86400, 1, 1)
    h.clock.advance(1)  # past it: off the gauges, still counted once
    h.cycle()
    assert seen() == (0, 0, 0, 1, 0)
    h.restart()
    h.clock.advance(86400)
    h.cycle()
    assert seen() == (0, 0, 0, 1, 0)
    write(inn / "r.xml", apprec("r", "m", "HENVISNING", "1", "", "2000001", OWN_HER[0]), sent + 5 * 86400)
    h.clock.advance(86400)
    h.cycle()
    assert seen() == (0, 0, 0, 1, 0)
    assert len(h.ledger.events("edi.unacknowledged", _all_time())) == 1


@pytest.mark.parametrize("gen_date", ["0001-01-01T00:00:00", "0001-01-01T00:30:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_a_message_dated_at_the_edge_of_the_calendar_is_an_unparseable_date_not_a_failed_run(
    harness: Any, tmp_path: Path, gen_date: str
) -> None:
    """A GenDate that ``fromisoformat`` reads but that has no UTC instant (year 1 east of UTC,
    year 9999 west of it) once made the run fail on that file, every cycle: the folder stuck."""
    now = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc).timestamp()
    folder = tmp_path / "ut"
    write(folder / "edge.xml", msghead("edge-1", "EPIKRISE", gen_date, OWN_HER[0], "2000001"), now - 600)
    write(folder / "plain.xml", msghead("plain-1", "EPIKRISE", "2026-11-24T10:00:00", OWN_HER[0], "2000001"), now - 500)
    h = harness(EdiSettings(folders=(EdiFolder(path=folder, direction="out"),), own_her_ids=OWN_HER), now)
    h.cycle()
    assert h.value("normagent_edi_messages_total", direction="out", msg_type="EPIKRISE") == 2
    assert h.nonzero("normagent_edi_timestamps_total", "kind") == {("unparseable",): 1.0, ("no_zone",): 1.0}
