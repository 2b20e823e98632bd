"""The EDI collector with inotify: real files, the real kernel, no mocks.

What it must hold: a cycle learns new files from the events without listing the folder, and
wherever the events cannot tell everything — the queue overflowed, the watch limit is reached, the
folder was removed and made again, a file was renamed in, a file is still being written — it falls
back to the listing, so nothing is lost; and nothing is counted twice, across restarts too (the
ledger's index decides, as without inotify).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from normagent.ledger import MemoryCheckpoints
from normagent.plugins.edi.index import Index
from normagent.plugins.edi.scan import Watcher, scan
from normagent.plugins.edi.settings import EdiFolder, EdiSettings
from normagent.plugins.edi.watch import Inotify
from tests.plugins.edi.edi_generator import OWN_HER, msghead
from tests.support.tools import require_tool, skip_for_host

OK = "normagent_edi_files_total"


@pytest.fixture(autouse=True)
def _inotify() -> None:
    inotify, why = Inotify.open()
    if inotify is None:
        skip_for_host(f"no inotify: {why}")
    inotify.close()


def message(path: Path, msg_id: str) -> Path:
    """A sent message file, written as a message server writes it (open, write, close)."""
    path.write_bytes(msghead(msg_id, "EPIKRISE", "", OWN_HER[0], "2000001"))
    return path


def settings(folder: Path, **changes: Any) -> EdiSettings:
    return EdiSettings(folders=(EdiFolder(path=folder, direction="out"),), own_her_ids=OWN_HER, **changes)


def scanned(logs: list[dict[str, Any]]) -> dict[str, Any]:
    return [e for e in logs if e["event"] == "edi_scanned"][-1]


def test_new_files_come_from_the_events_without_a_listing(harness: Any, tmp_path: Path) -> None:
    folder = tmp_path / "ut"
    folder.mkdir()
    for i in range(50):
        message(folder / f"old-{i}.xml", f"old-{i}")
    h = harness(settings(folder), time.time())
    h.cycle()
    assert h.value(OK, outcome="ok") == 50
    h.clock.advance(60)
    h.cycle()  # the directory's time is no longer racy: its claim is brought up to date
    for i in range(20):
        message(folder / f"new-{i}.xml", f"new-{i}")
    h.clock.advance(60)
    with capture_logs() as logs:
        h.cycle()
    assert h.value(OK, outcome="ok") == 70
    assert h.value("normagent_edi_messages_total", direction="out", msg_type="EPIKRISE") == 70
    line = scanned(logs)
    assert (line["listed"], line["found"], line["events"] >= 20) == (0, 20, True)
    # Deleted files leave the index from their events too.
    for i in range(5):
        (folder / f"old-{i}.xml").unlink()
    h.clock.advance(60)
    with capture_logs() as logs:
        h.cycle()
    assert (scanned(logs)["listed"], scanned(logs)["gone"]) == (0, 5)
    assert h.value("normagent_edi_indexed_files") == 65


def test_a_file_touched_after_it_was_read_is_not_counted_again(harness: Any, tmp_path: Path) -> None:
    """An event for a file already in the index (chmod, a close after reading, a touch to the same
    time) is looked up in the ledger's index, not taken for a new file."""
    folder = tmp_path / "ut"
    folder.mkdir()
    files = [message(folder / f"m-{i}.xml", f"m-{i}") for i in range(10)]
    h = harness(settings(folder), time.time())
    h.cycle()
    h.clock.advance(60)
    h.cycle()  # the listing right after the folder changed is repeated once (racy): settled now
    for path in files:
        os.chmod(path, 0o600)  # IN_ATTRIB
        with open(path, "rb+"):  # IN_CLOSE_WRITE without a change
            pass
    h.clock.advance(60)
    with capture_logs() as logs:
        h.cycle()
    assert (scanned(logs)["listed"], scanned(logs)["found"], scanned(logs)["events"] >= 10) == (0, 0, True)
    assert h.value(OK, outcome="ok") == 10
    assert h.value("normagent_edi_messages_total", direction="out", msg_type="EPIKRISE") == 10


def test_a_file_renamed_into_the_folder_is_read(harness: Any, tmp_path: Path) -> None:
    folder, elsewhere = tmp_path / "ut", tmp_path / "tmp"
    folder.mkdir()
    elsewhere.mkdir()
    message(folder / "a.xml", "a")
    h = harness(settings(folder), time.time())
    h.cycle()
    h.clock.advance(60)
    h.cycle()
    message(elsewhere / "b.part", "b").rename(folder / "b.xml")  # as a server writes atomically
    h.clock.advance(60)
    with capture_logs() as logs:
        h.cycle()
    assert (scanned(logs)["listed"], scanned(logs)["found"]) == (0, 1)
    assert h.value(OK, outcome="ok") == 2
    # Renamed away again (moved out to another folder): gone from the index.
    (folder / "b.xml").rename(elsewhere / "b.xml")
    h.clock.advance(60)
    h.cycle()
    assert h.value("normagent_edi_indexed_files") == 1


def test_a_file_still_being_written_is_read_once_when_it_is_complete(harness: Any, tmp_path: Path) -> None:
    folder = tmp_path / "ut"
    folder.mkdir()
    h = harness(settings(folder), time.time())
    h.cycle()
    data = msghead("w", "EPIKRISE", "", OWN_HER[0], "2000001")
    with open(folder / "w.xml", "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        h.clock.advance(60)
        h.cycle()  # young and truncated: not counted, looked at again
        assert h.value(OK, outcome="truncated") == 0
        h.clock.advance(60)
        h.cycle()
        assert h.value(OK, outcome="ok") == 0
        fh.write(data[len(data) // 2 :])
    # Closed after writing (IN_CLOSE_WRITE): read, once.
    h.clock.advance(60)
    h.cycle()
    h.clock.advance(60)
    h.cycle()
    assert (h.value(OK, outcome="ok"), h.value(OK, outcome="truncated")) == (1, 0)
    assert h.value("normagent_edi_messages_total", direction="out", msg_type="EPIKRISE") == 1


def test_a_folder_removed_and_made_again_is_listed(harness: Any, tmp_path: Path) -> None:
    folder = tmp_path / "ut"
    folder.mkdir()
    for i in range(3):
        message(folder / f"a-{i}.xml", f"a-{i}")
    h = harness(settings(folder), time.time())
    h.cycle()
    shutil.rmtree(folder)
    folder.mkdir()
    for i in range(4):
        message(folder / f"b-{i}.xml", f"b-{i}")
    h.clock.advance(60)
    h.cycle()
    assert h.value(OK, outcome="ok") == 7
    assert h.value("normagent_edi_indexed_files") == 4
    # And the new directory is watched: the next file comes from its events.
    h.clock.advance(60)
    h.cycle()
    message(folder / "c.xml", "c")
    h.clock.advance(60)
    with capture_logs() as logs:
        h.cycle()
    assert (scanned(logs)["listed"], scanned(logs)["found"]) == (0, 1)
    assert h.value(OK, outcome="ok") == 8


def test_a_subfolder_made_later_in_a_recursive_folder_is_watched(harness: Any, tmp_path: Path) -> None:
    folder = tmp_path / "arkiv"
    folder.mkdir()
    h = harness(EdiSettings(folders=(EdiFolder(path=folder, direction="out", role="archive", recursive=True),),
                            own_her_ids=OWN_HER), time.time())
    h.cycle()
    (folder / "2026" / "12").mkdir(parents=True)
    message(folder / "2026" / "12" / "a.xml", "a")
    h.clock.advance(60)
    h.cycle()
    assert h.value(OK, outcome="ok") == 1
    h.clock.advance(60)
    h.cycle()
    message(folder / "2026" / "12" / "b.xml", "b")
    h.clock.advance(60)
    with capture_logs() as logs:
        h.cycle()
    assert (scanned(logs)["listed"], h.value(OK, outcome="ok")) == (0, 2)


def test_exactly_once_across_restarts(harness: Any, tmp_path: Path) -> None:
    """What was read before a restart is not read again; what came while the agent was away, or
    between its cycles, is read once."""
    folder = tmp_path / "ut"
    folder.mkdir()
    h = harness(settings(folder), time.time())
    total = 0
    for round_ in range(4):
        for i in range(5):
            message(folder / f"r{round_}-{i}.xml", f"r{round_}-{i}")
        total += 5
        h.clock.advance(60)
        h.cycle()
        h.clock.advance(60)
        h.cycle()
        assert h.value(OK, outcome="ok") == total
        h.restart()
        for i in range(3):
            message(folder / f"away{round_}-{i}.xml", f"away{round_}-{i}")  # while the agent is down
        total += 3
        h.clock.advance(60)
        h.cycle()
        assert h.value(OK, outcome="ok") == total
    assert h.value("normagent_edi_messages_total", direction="out", msg_type="EPIKRISE") == total
    assert h.value("normagent_edi_indexed_files") == total


def test_a_restart_does_not_list_a_folder_that_did_not_change(harness: Any, tmp_path: Path) -> None:
    folder = tmp_path / "ut"
    folder.mkdir()
    for i in range(10):
        message(folder / f"m-{i}.xml", f"m-{i}")
    past = time.time() - 3600
    os.utime(folder, (past, past))  # last changed an hour ago: the claim is not racy
    h = harness(settings(folder), time.time())
    h.cycle()
    h.restart()
    h.clock.advance(60)
    with capture_logs() as logs:
        h.cycle()
    assert (scanned(logs)["listed"], scanned(logs)["found"]) == (0, 0)
    assert h.value(OK, outcome="ok") == 10


def test_an_overflowed_queue_falls_back_to_the_listing(tmp_path: Path) -> None:
    """More events than ``fs.inotify.max_queued_events`` between two looks: the kernel drops the
    rest and says so (IN_Q_OVERFLOW); the folder is listed, and every file is found."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 200_000:
        skip_for_host(f"fs.inotify.max_queued_events is {limit}: too many files to overflow it in a test")
    folder = tmp_path / "ut"
    folder.mkdir()
    inotify, _ = Inotify.open()
    assert inotify is not None
    watcher = Watcher(inotify)
    index = Index(MemoryCheckpoints())
    folders = (EdiFolder(path=folder),)
    try:
        first = scan(folders, Path("/"), index, now=time.time(), watcher=watcher)
        assert (first.found, first.listed) == (0, 1)
        seen = first.dirs[str(folder)]
        from normagent.plugins.edi.index import DirState

        index.dirs[str(folder)] = DirState(seen.mtime_ns, seen.ino, False, ())
        count = limit // 2 + 500  # IN_CREATE and IN_CLOSE_WRITE each
        for i in range(count):
            with open(folder / f"m-{i}.xml", "wb") as fh:
                fh.write(b"<x/>")
        found = scan(folders, Path("/"), index, now=time.time(), watcher=watcher)
        assert found.overflowed
        assert found.listed == 1
        assert found.found == count
        assert sorted(c.name for c in found.candidates) == sorted(f"m-{i}.xml" for i in range(count))
    finally:
        watcher.close()


_LIMITED = r"""
import json, sys, time
from pathlib import Path
from normagent.ledger import MemoryCheckpoints
from normagent.plugins.edi.index import DirState, Index
from normagent.plugins.edi.scan import Watcher, scan
from normagent.plugins.edi.settings import EdiFolder
from normagent.plugins.edi.watch import Inotify

top = Path(sys.argv[1])
inotify, why = Inotify.open()
watcher = Watcher(inotify)
index = Index(MemoryCheckpoints())
folders = (EdiFolder(path=top, recursive=True),)
first = scan(folders, Path("/"), index, now=time.time(), watcher=watcher)
index.dirs = {d: DirState(s.mtime_ns, s.ino, False, s.subdirs) for d, s in first.dirs.items()}
for d in sorted(first.dirs):
    (Path(d) / "new.xml").write_bytes(b"<x/>")
    st = (Path(d)).stat()
    # A different time for certain, even within one timestamp tick.
    import os
    os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
second = scan(folders, Path("/"), index, now=time.time(), watcher=watcher)
print(json.dumps({"watched": sorted(watcher.dirs), "refused": watcher.refused,
                  "found": sorted(c.path for c in second.candidates), "listed": second.listed}))
"""


def test_a_watch_limit_reached_falls_back_to_the_listing(tmp_path: Path) -> None:
    """``inotify_add_watch`` failing with ENOSPC (``max_user_watches``): the directories left
    without a watch are listed when their time changes, as without inotify. The limit is set low in
    a user namespace of the test's own (``/proc/sys/user/max_inotify_watches`` is per namespace),
    so the host's limit is not touched."""
    unshare = require_tool("unshare", "util-linux")
    top = tmp_path / "arkiv"
    for name in ("a", "b", "c"):
        (top / name).mkdir(parents=True)
    script = tmp_path / "limited.py"
    script.write_text(_LIMITED)
    command = f"echo 2 > /proc/sys/user/max_inotify_watches && exec {sys.executable} {script} {top}"
    done = subprocess.run([unshare, "--user", "--map-root-user", "sh", "-c", command], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[3])
    # (a chroot may not make a user namespace at all: the kernel refuses CLONE_NEWUSER there)
    if done.returncode != 0 and ("max_inotify_watches" in done.stderr or "unshare failed" in done.stderr):
        skip_for_host(f"no user namespace with its own inotify limit here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert len(seen["watched"]) == 2
    assert len(seen["refused"]) == 2 and all("max_user_watches" in why for why in seen["refused"].values())
    assert seen["found"] == sorted([str(top / "new.xml"), *(str(top / d / "new.xml") for d in ("a", "b", "c"))])
    assert seen["listed"] == 2  # the two directories without a watch; the watched two told by events


def test_network_filesystems_are_listed_not_watched() -> None:
    """inotify sees only the changes made through this host: a folder on NFS, SMB, CephFS or FUSE
    is listed. The filesystem is read from mountinfo (octal escapes in paths, the most specific
    mount point first)."""
    from normagent.plugins.edi.watch import filesystem, mounts, remote_filesystem

    table = mounts(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 22 0:40 / /srv/edi rw shared:20 - nfs4 fil01:/edi rw,vers=4.2\n"
        "41 40 0:41 / /srv/edi/lokal\\040kopi rw shared:21 - tmpfs tmpfs rw\n"
        "42 22 0:42 / /mnt/share rw - cifs //fil02/edi rw\n"
        "43 22 0:43 / /mnt/fuse rw - fuse.sshfs host:/x rw\n"
        "garbage line\n"
    )
    assert filesystem("/srv/edi/inn", table) == "nfs4"
    assert filesystem("/srv/edi/lokal kopi/inn", table) == "tmpfs"
    assert filesystem("/srv/edi-other", table) == "ext4"
    assert [remote_filesystem(filesystem(p, table)) for p in ("/srv/edi/inn", "/mnt/share/a", "/mnt/fuse", "/var/x")] == [
        True, True, True, False]
    assert remote_filesystem("")  # unknown: not trusted


def test_a_ledger_without_the_derived_families_gets_them_once(harness: Any, tmp_path: Path) -> None:
    """A ledger written before the index kept its waiting set, unmatched receipts and directory
    states (the file and id entries only): the first cycle derives them, nothing is read or counted
    again, and the gauges stay as they were."""
    from normagent import Batch, Checkpoint

    folder = tmp_path / "ut"
    folder.mkdir()
    for i in range(6):
        message(folder / f"m-{i}.xml", f"m-{i}")
    h = harness(settings(folder), time.time())
    h.cycle()
    before = {m: h.nonzero(m, "msg_type", "receipt") for m in ("normagent_edi_unacknowledged_messages",)}
    state = h.ledger.checkpoints(h.spec.name)
    derived = [k for k, _ in state.scan() if k[:2] in ("wt", "u:", "x:", "d:") or k in ("n", "v")]
    assert any(k.startswith("wt:") for k in derived) and "v" in derived
    h.ledger.commit(h.spec.name, Batch([], [Checkpoint(k, None) for k in derived]))
    h.restart()
    h.clock.advance(60)
    with capture_logs() as logs:
        h.cycle()
    assert [e for e in logs if e["event"] == "edi_index_derived"]
    assert scanned(logs)["found"] == 0
    assert h.value(OK, outcome="ok") == 6
    assert h.value("normagent_edi_indexed_files") == 6
    assert {m: h.nonzero(m, "msg_type", "receipt") for m in before} == before
    again = sorted(k for k, _ in h.ledger.checkpoints(h.spec.name).scan() if k[:2] in ("wt", "d:") or k in ("n", "v"))
    assert again == sorted(k for k in derived if k[:2] in ("wt", "d:") or k in ("n", "v"))
