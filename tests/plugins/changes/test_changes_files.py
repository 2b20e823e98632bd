"""changes.files over real files in a temporary tree: modified, chmod'ed, chown'ed, replaced,
created and deleted, through a real ledger; and what the baseline keeps (never content)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from normagent import Event, RunFailed
from normagent.ledger import Ledger
from normagent.plugins.changes import collectors
from normagent.plugins.changes.collectors import FILES, TREE_KEY
from normagent.plugins.changes.settings import FileWatchSettings
from normagent.plugins.changes.vocab import CHANGE_EVENT, CONFIG_CHANGES, WATCHED_FILES
from normagent.plugins.changes.watch import MAX_DIGEST_BYTES, Seen, changes
from normagent.testing import make_context, observations, run_collector_once
from tests.support.tools import skip_for_host

SECRET = "password = hunter2-do-not-store\n"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    (etc / "app.d").mkdir(parents=True)
    (etc / "app.conf").write_text(SECRET)
    (etc / "hosts").write_text("127.0.0.1 localhost\n")
    (etc / "app.d" / "one.conf").write_text("one\n")
    os.symlink("one.conf", etc / "app.d" / "current.conf")
    return tmp_path


SETTINGS = FileWatchSettings(paths=("/etc/app.conf", "/etc/hosts", "/etc/app.d/*"))


def run(ledger: Ledger, root: Path, settings: FileWatchSettings = SETTINGS) -> list[Any]:
    return run_collector_once(FILES, ledger, settings=settings, root=root)


def counts(ledger: Ledger) -> dict[str, float]:
    return {dict(k)["kind"]: v for k, v in ledger.snapshot().values(CONFIG_CHANGES).items() if v and dict(k)["source"] == "file"}


def test_the_first_run_takes_the_baseline_and_counts_nothing(tree: Path, ledger: Ledger) -> None:
    run(ledger, tree)
    assert counts(ledger) == {}
    assert ledger.snapshot().values(WATCHED_FILES)[(("state", "hashed"),)] == 4


def test_content_mode_and_owner_changes_are_counted_once_each(tree: Path, ledger: Ledger) -> None:
    if os.geteuid() != 0:
        skip_for_host("not root: chown to another user needs root")
    run(ledger, tree)
    (tree / "etc/app.conf").write_text(SECRET + "timeout = 5\n")
    (tree / "etc/hosts").chmod(0o600)
    os.chown(tree / "etc/app.d/one.conf", 1, 1)
    batches = run(ledger, tree)
    assert counts(ledger) == {"content": 1, "mode": 1, "owner": 1}
    found = {(e.attrs["kind"], e.attrs["subject"]) for e in observations(batches) if isinstance(e, Event) and e.kind == CHANGE_EVENT}
    assert found == {("content", "/etc/app.conf"), ("mode", "/etc/hosts"), ("owner", "/etc/app.d/one.conf")}
    mode = [e for e in observations(batches) if isinstance(e, Event) and e.attrs.get("kind") == "mode"]
    assert (mode[0].attrs["from"], mode[0].attrs["to"]) == ("0644", "0600")
    run(ledger, tree)
    assert counts(ledger) == {"content": 1, "mode": 1, "owner": 1}


def test_created_deleted_replaced_and_relinked(tree: Path, ledger: Ledger) -> None:
    run(ledger, tree)
    (tree / "etc/app.d/two.conf").write_text("two\n")
    (tree / "etc/hosts").unlink()
    replacement = tree / "etc/app.conf.new"
    replacement.write_text("password = other\n")
    replacement.replace(tree / "etc/app.conf")  # an editor's save: a new inode
    (tree / "etc/app.d/current.conf").unlink()
    os.symlink("two.conf", tree / "etc/app.d/current.conf")
    run(ledger, tree)
    assert counts(ledger) == {"created": 1, "deleted": 1, "content": 2}


def test_a_watched_directory_that_cannot_be_listed_fails_the_run_and_deletes_nothing(tree: Path, ledger: Ledger) -> None:
    """glob lists nothing, and says nothing, for a directory it cannot list: its files looked
    deleted, a configuration change for each (and a deviation outside a planned window)."""
    run(ledger, tree)
    (tree / "etc/app.d").rename(tree / "etc/app.d.real")
    (tree / "etc/app.d").symlink_to("app.d")  # a link loop: ELOOP when listed, as EIO or EACCES would be
    with capture_logs() as logs, pytest.raises(RunFailed, match="app.d") as err:
        run(ledger, tree)
    assert err.value.reason == "unreadable"
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["file_watch_unlistable"]
    assert counts(ledger) == {}
    (tree / "etc/app.d").unlink()
    (tree / "etc/app.d.real").rename(tree / "etc/app.d")
    run(ledger, tree)
    assert counts(ledger) == {}


def test_touch_and_a_rewrite_with_the_same_content_are_no_change(tree: Path, ledger: Ledger) -> None:
    run(ledger, tree)
    os.utime(tree / "etc/hosts", ns=(1, 1))
    (tree / "etc/app.conf").write_text(SECRET)
    batches = run(ledger, tree)
    assert counts(ledger) == {}
    assert batches  # the baseline learned the new times
    assert run(ledger, tree) == []  # and the next cycle is a steady one


def test_a_steady_cycle_reads_no_file_and_writes_nothing(tree: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    run(ledger, tree)
    read: list[str] = []
    real = collectors.digest_file

    def counting(path: str, keyed: Any) -> Any:
        read.append(path)
        return real(path, keyed)

    monkeypatch.setattr(collectors, "digest_file", counting)
    assert run(ledger, tree) == []
    assert read == []
    (tree / "etc/hosts").chmod(0o600)
    run(ledger, tree)
    # only the file whose stat moved is read (its ctime moved: content could have changed with
    # a forged mtime, so a mode change is checked too), none of the others
    assert read == [str(tree / "etc/hosts")]
    assert counts(ledger) == {"mode": 1}


def test_a_file_larger_than_any_configuration_is_compared_by_size_and_time_not_hashed(tree: Path, ledger: Ledger) -> None:
    """Before: it was hashed whole on every change of its stat; a sparse file of 100 GiB among the
    watched ones held every run past its timeout, and no change of any file was seen again."""
    huge = tree / "etc/app.d/huge.conf"
    with huge.open("wb") as f:
        f.truncate(MAX_DIGEST_BYTES + 1)
    run(ledger, tree)
    watched = ledger.snapshot().values(WATCHED_FILES)
    assert (watched[(("state", "hashed"),)], watched[(("state", "stat_only"),)]) == (4, 1)

    with huge.open("r+b") as f:
        f.truncate(MAX_DIGEST_BYTES + 2)
    (tree / "etc/hosts").write_text("127.0.0.1 localhost clinic\n")
    run(ledger, tree)
    assert counts(ledger) == {"content": 2}


def test_a_double_star_pattern_does_not_follow_links_that_loop_back_up_the_tree(tree: Path, ledger: Ledger) -> None:
    """Before: glob followed linked directories, so two links back up the tree made the listing
    multiply without end, and the collector never finished a run again."""
    (tree / "etc/app.d/current").symlink_to("..")
    (tree / "etc/app.d/all").symlink_to("../..")
    done: list[object] = []
    thread = threading.Thread(target=lambda: done.append(run(ledger, tree, FileWatchSettings(paths=("/etc/**/*.conf",)))), daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the pattern's listing never ended"
    assert ledger.snapshot().values(WATCHED_FILES)[(("state", "hashed"),)] == 3  # app.conf, one.conf, current.conf


def test_a_file_name_that_is_not_utf8_is_watched_like_any_other(tree: Path, ledger: Ledger) -> None:
    """Before: its baseline key (and its rollup's and event's) held the name's undecodable bytes
    as lone surrogates, which SQLite refuses: every commit failed, and no change of any watched
    file was seen again."""
    run(ledger, tree)
    latin1 = tree / "etc/app.d" / os.fsdecode(b"bl\xe5.conf")
    latin1.write_text("one\n")
    run(ledger, tree)
    latin1.write_text("two\n")
    (tree / "etc/hosts").write_text("127.0.0.1 localhost clinic\n")
    run(ledger, tree)
    assert counts(ledger) == {"created": 1, "content": 2}
    latin1.unlink()
    run(ledger, tree)
    assert counts(ledger) == {"created": 1, "content": 2, "deleted": 1}
    assert ledger.snapshot().values(WATCHED_FILES)[(("state", "hashed"),)] == 4


def test_content_is_never_stored_only_a_keyed_digest(tree: Path, ledger: Ledger) -> None:
    run(ledger, tree)
    stored = json.dumps(dict(ledger.checkpoints("changes.files").scan("")))
    assert "hunter2" not in stored
    assert hashlib.sha256(SECRET.encode()).hexdigest() not in stored
    assert hashlib.sha256(SECRET.encode()).hexdigest()[:16] not in stored


def test_a_new_pattern_and_a_removed_pattern_count_nothing(tree: Path, ledger: Ledger) -> None:
    run(ledger, tree)
    (tree / "etc/other.conf").write_text("x\n")
    wider = replace(SETTINGS, paths=(*SETTINGS.paths, "/etc/other.conf"))
    run(ledger, tree, wider)
    narrower = replace(SETTINGS, paths=("/etc/app.conf",))
    run(ledger, tree, narrower)
    assert counts(ledger) == {}
    (tree / "etc/hosts").write_text("not watched any more\n")
    run(ledger, tree, narrower)
    assert counts(ledger) == {}


def test_a_crash_between_batches_counts_every_change_once(tree: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many changed files go out in several batches; a crash after the first loses nothing and
    the rerun counts no change twice."""
    many = tree / "etc/app.d"
    for n in range(25):
        (many / f"f{n:02}.conf").write_text("a\n")
    monkeypatch.setattr(collectors, "BATCH_FILES", 4)
    run(ledger, tree)
    for n in range(25):
        (many / f"f{n:02}.conf").write_text("b\n")
    ledger.declare(FILES.metrics)
    ctx = make_context(FILES, settings=SETTINGS, root=tree, state=ledger.checkpoints(FILES.name))
    batches = FILES.collect(ctx)
    ledger.commit(FILES.name, next(iter(batches)))  # then the process dies
    batches.close()  # type: ignore[attr-defined]
    assert counts(ledger) == {"content": 4}
    run(ledger, tree)
    assert counts(ledger) == {"content": 25}


def test_a_damaged_baseline_entry_is_taken_again_without_a_change(tree: Path, ledger: Ledger) -> None:
    run(ledger, tree)
    from normagent import Batch, Checkpoint

    ledger.commit(FILES.name, Batch(checkpoints=[Checkpoint("f:/etc/hosts", ["garbage"]), Checkpoint(TREE_KEY, None)]))
    with capture_logs() as logs:
        run(ledger, tree)
    assert counts(ledger) == {}
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["file_baseline_unusable"]


def test_the_watch_is_bounded(tree: Path, ledger: Ledger) -> None:
    with capture_logs() as logs:
        run(ledger, tree, replace(SETTINGS, max_files=2))
    assert ledger.snapshot().values(WATCHED_FILES)[(("state", "hashed"),)] == 2
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["file_watch_truncated"]


@pytest.mark.parametrize(
    ("old", "new", "kinds"),
    [
        ([1, 2, 3, 4, 5, 0o100644, 0, 0, "c:a"], Seen((1, 2, 3, 4, 5, 0o100644, 0, 0), "c:a"), []),
        ([1, 2, 3, 4, 5, 0o100644, 0, 0, "c:a"], Seen((1, 2, 3, 4, 6, 0o100600, 0, 0), "c:a", read=False), ["mode"]),
        ([1, 2, 3, 4, 5, 0o100644, 0, 0, "c:a"], Seen((1, 2, 3, 4, 6, 0o100644, 0, 4), "c:a", read=False), ["owner"]),
        ([1, 2, 3, 4, 5, 0o100644, 0, 0, "c:a"], Seen((1, 9, 3, 9, 9, 0o100644, 0, 0), "c:b"), ["content"]),
        # a file the agent may not read: size and modification time are all there is
        ([1, 2, 3, 4, 5, 0o100600, 0, 0, None], Seen((1, 2, 3, 9, 9, 0o100600, 0, 0), None), ["content"]),
        ([1, 2, 3, 4, 5, 0o100600, 0, 0, None], Seen((1, 2, 3, 4, 9, 0o100600, 0, 0), None), []),
        # became readable: its first digest is no change by itself
        ([1, 2, 3, 4, 5, 0o100600, 0, 0, None], Seen((1, 2, 3, 4, 9, 0o100644, 0, 0), "c:a"), ["mode"]),
    ],
)
def test_what_counts_as_which_change(old: list[Any], new: Seen, kinds: list[str]) -> None:
    assert changes(old, new) == kinds


def test_without_any_watched_file_there_is_no_data(tmp_path: Path) -> None:
    from normagent import NoData

    with pytest.raises(NoData):
        run_collector_once(FILES, settings=SETTINGS, root=tmp_path)
