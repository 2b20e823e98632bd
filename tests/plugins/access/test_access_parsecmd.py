"""``normagent parse``: the agent's own parsers over files and stdin, text and JSON, no state."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from normagent.cli import main
from normagent.errors import InputError, UsageError
from normagent.loader import build_plugins
from normagent.parsecmd import run_parse
from normagent.testing import EPOCH
from tests.plugins.access.cases import FIXTURES, LINUX, expected_totals, load_cases
from tests.support.tools import require_tool

EVTX = Path(__file__).parents[2] / "fixtures" / "evtx"
PLUGINS = build_plugins(entry_points_enabled=False)


def parse_json(*paths: str, stdin: bytes | None = None, **kwargs: object) -> dict:  # type: ignore[type-arg]
    out = io.StringIO()
    code = run_parse(
        list(paths), config=None, plugins=PLUGINS, fmt="json", out=out, now=EPOCH,
        stdin=io.BytesIO(stdin) if stdin is not None else None, **kwargs,  # type: ignore[arg-type]
    )
    assert code == 0
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def counts_of(collector: dict) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[type-arg]
    return {(c["metric"], tuple(sorted(c["labels"].items()))): c["value"] for c in collector["counts"]}


def logins(result: dict) -> dict:  # type: ignore[type-arg]
    return next(c for c in result["collectors"] if c["collector"] == "access.logins")


@pytest.fixture
def auth_log(tmp_path: Path) -> Path:
    """The fixture's log lines without its comments."""
    path = tmp_path / "auth.log"
    path.write_text("".join(c.line + "\n" for c in load_cases()))
    return path


def test_a_text_file_counts_what_the_rules_say(auth_log: Path) -> None:
    result = parse_json(str(auth_log))["inputs"][0]

    assert result["kind"] == "text"
    got = logins(result)
    cases = load_cases()
    assert counts_of(got) == expected_totals(cases)
    assert got["parsed"] + got["ignored"] + got["unparsed"] == result["lines"] == len(cases)
    assert got["unparsed"] == 2 and len(got["examples"]) == 2


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress], ids=["gz", "bz2"])
def test_compressed_files(tmp_path: Path, auth_log: Path, compress) -> None:  # type: ignore[no-untyped-def]
    packed = tmp_path / "auth.log.1.x"
    packed.write_bytes(compress(auth_log.read_bytes()))

    assert counts_of(logins(parse_json(str(packed))["inputs"][0])) == expected_totals(load_cases())


def test_stdin(auth_log: Path) -> None:
    result = parse_json("-", stdin=auth_log.read_bytes())["inputs"][0]

    assert result["path"] == "-" and counts_of(logins(result)) == expected_totals(load_cases())


def fed_through_a_pipe(tmp_path: Path, data: bytes, *paths_after: str, **kwargs: object) -> dict:  # type: ignore[type-arg]
    """``parse_json`` of a named pipe a writer fills once (``normagent parse <(zcat auth.log.2.gz)``).

    A reader that opened the pipe twice would wait for a second writer for ever: the parse runs
    in a thread with a deadline, and a blocked open is released (at EOF) before failing.
    """
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: dict = {}  # type: ignore[type-arg]

    def write() -> None:
        with open(fifo, "wb") as pipe:
            try:
                pipe.write(data)
            except BrokenPipeError:
                pass  # the reader closed early: what it missed shows in the result

    def parse() -> None:
        got.update(parse_json(str(fifo), *paths_after, **kwargs))

    writer = threading.Thread(target=write, daemon=True)
    reader = threading.Thread(target=parse, daemon=True)
    writer.start()
    reader.start()
    reader.join(timeout=60)
    deadline = time.monotonic() + 10
    while reader.is_alive() and time.monotonic() < deadline:  # release a reader stuck in open()
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        reader.join(timeout=0.1)
    assert got, "the parse did not finish: it opened the pipe more than once"
    return got


@pytest.mark.parametrize("compress", [lambda data: data, gzip.compress], ids=["plain", "gz"])
def test_a_pipe_is_read_once_and_every_chosen_parser_sees_all_of_it(tmp_path: Path, auth_log: Path, compress) -> None:  # type: ignore[no-untyped-def]
    chosen = ["access.logins", "access.journal_errors", "firewall.linux"]
    from_file = parse_json(str(auth_log), collectors=chosen)["inputs"][0]

    from_pipe = fed_through_a_pipe(tmp_path, compress(auth_log.read_bytes()), collectors=chosen)["inputs"][0]

    assert from_pipe["lines"] == from_file["lines"] == len(load_cases())
    assert from_pipe["collectors"] == from_file["collectors"]
    assert counts_of(logins(from_pipe)) == expected_totals(load_cases())


def test_an_evtx_file() -> None:
    result = parse_json(str(EVTX / "Security_short_selected.evtx"))["inputs"][0]

    assert result["kind"] == "evtx" and result["lines"] == 7
    windows = next(c for c in result["collectors"] if c["collector"] == "access.windows")
    assert counts_of(windows) == {
        ("normagent_failed_logins_total", (("reason", "bad_password"), ("source", "windows"))): 1.0,
        ("normagent_failed_logins_total", (("reason", "bad_password"), ("source", "ntlm"))): 1.0,
    }
    # The others saw nothing but the firewall's: the file's 5152/5157 are WFP drops.
    assert [c["collector"] for c in result["collectors"]] == ["access.windows", "firewall.windows_events"]


def test_stdin_closed_is_an_input_error_not_a_traceback() -> None:
    """``normagent parse - <&-`` (a cron job, a service without stdin): Python's ``sys.stdin`` is
    None then, and reading ``sys.stdin.buffer`` ended the command with an AttributeError traceback."""
    done = subprocess.run([sys.executable, "-m", "normagent", "parse", "-"], capture_output=True, preexec_fn=lambda: os.close(0), check=False)

    assert (done.returncode, done.stdout) == (66, b"")
    assert done.stderr == b"normagent: -: standard input is closed; give a file, or what to read on stdin\n"


def test_a_journalctl_json_export(tmp_path: Path) -> None:
    """journalctl -o json output, whatever its field order, goes to the journal parsers."""
    export = subprocess.run(
        [require_tool("journalctl", "systemd"), f"--file={FIXTURES / 'access.journal'}", "--output=json", "--all", "--no-pager"],
        capture_output=True, check=True,
    ).stdout
    (tmp_path / "journal.json").write_bytes(export)

    result = parse_json(str(tmp_path / "journal.json"))["inputs"][0]

    assert result["kind"] == "journal" and result["lines"] == export.count(b"\n")
    names = {c["collector"] for c in result["collectors"]}
    assert names == {"access.logins", "access.journal_errors"}


def test_only_the_named_collector() -> None:
    result = parse_json(str(LINUX), collectors=["access.windows"])["inputs"][0]

    assert result["collectors"] == []


def test_parse_names_its_rollup_numbers_distinct_keys(tmp_path: Path) -> None:
    """Three attempts on two accounts from one network: 2 and 1 distinct keys, however many lines."""
    log = tmp_path / "auth.log"
    log.write_text(
        "".join(
            f"Nov 23 07:25:5{n} clinic-srv1 sshd[1]: Failed password for {user} from 203.0.113.9 port 5 ssh2\n"
            for n, user in enumerate(("root", "root", "oracle"))
        )
    )
    out = io.StringIO()

    run_parse([str(log)], config=None, plugins=PLUGINS, out=out, now=EPOCH)

    assert "    rollup access.failed_by_account: 2 distinct keys\n    rollup access.failed_by_network: 1 distinct key\n" in out.getvalue()
    got = logins(parse_json(str(log))["inputs"][0])
    assert got["rollup_distinct_keys"] == {"access.failed_by_account": 2, "access.failed_by_network": 1} and "rollups" not in got


def test_the_text_form(auth_log: Path) -> None:
    out = io.StringIO()

    run_parse([str(auth_log)], config=None, plugins=PLUGINS, out=out, examples=1, now=EPOCH)

    text = out.getvalue()
    assert text.startswith(f"{auth_log} (text, ")
    assert 'normagent_failed_logins_total{source="sshd",reason="bad_password"}' in text
    assert "unparsed, for example:\n      Nov 23 07:27:11 clinic-srv1 sshd[1215]: Failed password for root fr\n" in text


def test_control_characters_in_an_unparsed_line_are_printed_escaped(tmp_path: Path) -> None:
    """A name an attacker chose may hold a terminal escape; JSON escapes it, and so does the text form."""
    log = tmp_path / "auth.log"
    log.write_bytes(b"Nov 23 07:27:11 clinic-srv1 sshd[1215]: Failed password for \x1b[2J\x07root\xc2\x9b fr\n")  # U+009B: CSI
    out = io.StringIO()

    run_parse([str(log)], config=None, plugins=PLUGINS, out=out, examples=1, now=EPOCH)

    assert "      Nov 23 07:27:11 clinic-srv1 sshd[1215]: Failed password for \\x1b[2J\\x07root\\x9b fr\n" in out.getvalue()
    assert not any(ch in out.getvalue() for ch in "\x1b\x07\x9b")


def test_a_c1_control_or_a_bidi_override_in_an_unparsed_line_is_escaped_in_the_json_and_the_text_too(tmp_path: Path) -> None:
    """``--format json`` wrote U+009B (CSI to a terminal) and U+202E (which turns the rest of the
    line round) raw, since it writes UTF-8; the text form turned the line round. Now both escape
    them; the JSON value is the same."""
    line = "Nov 23 07:27:11 clinic-srv1 sshd[1215]: Failed password for root\u009b2J \u202eexe.txt fr"
    log = tmp_path / "auth.log"
    log.write_bytes(line.encode() + b"\n")
    out, text = io.StringIO(), io.StringIO()

    run_parse([str(log)], config=None, plugins=PLUGINS, fmt="json", out=out, examples=1, now=EPOCH)
    run_parse([str(log)], config=None, plugins=PLUGINS, out=text, examples=1, now=EPOCH)

    assert not any(ch in out.getvalue() + text.getvalue() for ch in "\x9b\u202e")
    assert "root\\u009b2J \\u202eexe.txt fr" in out.getvalue() and "root\\x9b2J \\u202eexe.txt fr" in text.getvalue()
    assert json.loads(out.getvalue())["inputs"][0]["collectors"][0]["examples"] == [line]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_file_name_that_is_not_utf8_is_printed_with_its_bytes_escaped(tmp_path: Path, auth_log: Path, fmt: str) -> None:
    """Before: the name's undecodable bytes (lone surrogates) reached a UTF-8 stdout, which
    refuses them under a locale such as nb_NO.UTF-8: a traceback after all the parsing."""
    latin1 = tmp_path / os.fsdecode(b"auth-bl\xe5.log")
    latin1.write_bytes(auth_log.read_bytes())
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")

    assert run_parse([str(latin1)], config=None, plugins=PLUGINS, fmt=fmt, out=out, now=EPOCH) == 0  # type: ignore[arg-type]

    out.flush()
    shown = f"{tmp_path}/auth-bl\\xe5.log"
    text = raw.getvalue().decode("utf-8")
    assert (json.loads(text)["inputs"][0]["path"] == shown) if fmt == "json" else text.startswith(f"{shown} (text, ")


def test_an_input_nothing_recognises(tmp_path: Path) -> None:
    empty = tmp_path / "other.log"
    empty.write_text("Nov 23 07:38:00 h CRON[1]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)\n")
    out = io.StringIO()

    run_parse([str(empty)], config=None, plugins=PLUGINS, out=out, now=EPOCH)

    assert "no parser recognised anything in this input" in out.getvalue()


def test_unreadable_input_is_exit_66_and_nothing_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError):
        run_parse([str(LINUX), str(tmp_path / "missing.log")], config=None, plugins=PLUGINS, out=io.StringIO())

    assert main(["parse", str(tmp_path / "missing.log")]) == 66
    assert main(["parse", str(tmp_path)]) == 66
    assert "missing.log: no such file" in capsys.readouterr().err


def failed_password_lines(count: int) -> bytes:
    """Lines that compress about as badly as real ones (a compressed file of many 8 KiB reads)."""
    return b"".join(
        b"Nov 23 07:25:53 h sshd[%d]: Failed password for invalid user u%s from 203.0.113.%d port %d ssh2\n"
        % (n, hashlib.sha1(b"%d" % n).hexdigest()[:12].encode(), n % 250, 1024 + n)
        for n in range(count)
    )


def damaged_deflate(data: bytes) -> bytes:
    """A gzip member whose deflate stream breaks off, after ``data``, in a block of a type that does not exist."""
    pack = zlib.compressobj(6, zlib.DEFLATED, 31)
    return pack.compress(data) + pack.flush(zlib.Z_FULL_FLUSH) + b"\xff" * 64


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (lambda d: gzip.compress(d)[: len(gzip.compress(d)) // 2], "Compressed file ended before the end-of-stream marker was reached"),
        (lambda d: lzma.compress(d)[: len(lzma.compress(d)) // 2], "Compressed file ended before the end-of-stream marker was reached"),
        (lambda d: damaged_deflate(d[: len(d) // 2]), "Error -3 while decompressing data: invalid block type"),
    ],
    ids=["gz-cut-short", "xz-cut-short", "deflate-damaged"],
)
def test_a_compressed_file_cut_short_or_damaged_is_parsed_up_to_there_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Any, error: str
) -> None:
    """Before: a traceback (EOFError, zlib.error) and nothing printed for any input; and the lines
    before the damage were lost with the whole block they were read in."""
    data = failed_password_lines(4000)
    path = tmp_path / "auth.log.2.gz"
    path.write_bytes(damage(data))

    assert main(["parse", "--format", "json", "--collector", "access.logins", str(path)]) == 0

    out, err = capsys.readouterr()
    [result] = json.loads(out)["inputs"]
    lines = result["lines"]
    assert 1000 < lines < 2000  # what came before the damage, half of the file
    assert result["damage"] == f"the compressed data ends or is damaged after line {lines:,} ({error}); the rest was not read"
    assert logins(result)["parsed"] == lines
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.symlink_to("/proc/self/mem"), "cannot be read after line 0: Input/output error"),
        (lambda p: (p.symlink_to("loop.log"), p.with_name("loop.log").symlink_to(p.name)), "Too many levels of symbolic links"),
    ],
    ids=["read-fails", "link-loop"],
)
def test_an_input_that_cannot_be_read_says_why_and_exits_66(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, says: str
) -> None:
    """Before: a read error was a traceback; a link loop was called "no such file"."""
    path = tmp_path / "auth.log"
    make(path)

    assert main(["parse", str(path)]) == 66

    err = capsys.readouterr().err
    assert err == f"normagent: {path}: {says}\n"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "empty file, not an EVTX file"),
        ((EVTX / "system.evtx").read_bytes()[:100], "cut short: its 100 bytes end inside the EVTX file header"),
        (b"Nov 23 07:25:53 h sshd[1]: Failed password for root from 203.0.113.9 port 5 ssh2\n", "not an EVTX file"),
        (bytes(range(256)) * 300, "not an EVTX file"),
    ],
    ids=["empty", "first-100-bytes", "text", "random-bytes"],
)
def test_an_evtx_that_is_not_one_is_exit_66_saying_what_and_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, says: str
) -> None:
    path = tmp_path / "Security.evtx"
    path.write_bytes(content)

    assert main(["parse", str(path)]) == 66

    err = capsys.readouterr().err
    assert err == f"normagent: {path}: {says}" + err.split(says, 1)[1] and "Traceback" not in err
    assert err.count("\n") == 1


def test_damage_inside_a_readable_evtx_is_reported_with_what_was_read(tmp_path: Path) -> None:
    """The damaged fixture: records 3-117 of its first chunk cannot be read; the rest can."""
    out = io.StringIO()

    assert run_parse([str(EVTX / "sample-with-zero-data-size-event.evtx")], config=None, plugins=PLUGINS, out=out, now=EPOCH) == 0

    said = "115 records announced but unreadable (the first in the chunk at offset 4,096)"
    assert f"(evtx, 335 records)\n  damaged, skipped: {said}\n" in out.getvalue()
    assert parse_json(str(EVTX / "sample-with-zero-data-size-event.evtx"))["inputs"][0]["damage"] == said


def test_an_evtx_cut_inside_a_chunk_says_so_instead_of_reading_as_empty(tmp_path: Path) -> None:
    """The agent waits for the rest of such a chunk (a copy still being written); ``parse`` is one
    shot, and before it printed "0 records" and nothing else for a file cut short."""
    whole = (EVTX / "Security_short_selected.evtx").read_bytes()
    cut = tmp_path / "cut.evtx"
    cut.write_bytes(whole[: 4096 + 32768])  # the file header and half of the first chunk
    out = io.StringIO()

    assert run_parse([str(cut)], config=None, plugins=PLUGINS, out=out, now=EPOCH) == 0

    said = "the file ends inside a chunk (cut short, or a copy still being written): that chunk's records were not read"
    assert f"(evtx, 0 records)\n  damaged, skipped: {said}\n" in out.getvalue()
    assert parse_json(str(EVTX / "Security_short_selected.evtx"))["inputs"][0]["damage"] == ""


def test_unknown_collector_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no log collector named nope"):
        run_parse([str(LINUX)], config=None, plugins=PLUGINS, collectors=["nope"])


def test_no_state_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """No ledger, no checkpoint, no pseudonym key: the working directory stays empty."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NORMAGENT_CONFIG", raising=False)

    assert main(["parse", str(LINUX), "--format", "json"]) == 0

    assert list(tmp_path.iterdir()) == []
    assert json.loads(capsys.readouterr().out)["inputs"][0]["lines"] > 0
