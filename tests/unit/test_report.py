"""``normagent report`` over a fixture ledger: golden HTML, Markdown and JSON; the JSON against its
schema; numbers and dates in each language; completeness and gaps; deviations and the summary;
bad input (no data, an older ledger, a bad month, a section that fails) and delivery."""

from __future__ import annotations

import hashlib
import io
import json
import re
import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from normagent.agent import read_config
from normagent.cli import build_parser, main
from normagent.deviations import build_engine
from normagent.report.command import _intervals, run_report
from normagent.report.render import md_code
from tests.support.report_ledger import History, write_history

U = timezone.utc
NOW = datetime(2026, 12, 6, 9, 30, tzinfo=U)
HOST_ID = "5f1e0c2a9b8d4e7f8a6b5c4d3e2f1a0b"
SCHEMA = Path(__file__).resolve().parents[2] / "normagent" / "report" / "report.schema.json"
CONFIG = """\
[deviations]
location = "Legekontoret Nord, serverrommet"

[report]
time_zone = "Europe/Oslo"
"""


def history(names: list[str], **changes: Any) -> History:
    base = dict(
        start=datetime(2026, 9, 1, tzinfo=U),
        end=datetime(2026, 12, 1, tzinfo=U),
        collectors=names,
        outages=[(datetime(2026, 11, 12, 3, tzinfo=U), datetime(2026, 11, 13, 9, tzinfo=U))],
        failing=[("edi.messages", datetime(2026, 11, 20, tzinfo=U), datetime(2026, 11, 20, 10, tzinfo=U))],
        bursts=[datetime(2026, 10, 3, 14, tzinfo=U), datetime(2026, 11, 18, 2, tzinfo=U)],
        misaddressed=[datetime(2026, 11, 25, 10, tzinfo=U)],
        host_id=HOST_ID,
    )
    base.update(changes)
    return History(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A configuration and its ledger with September to November 2026 (module-wide: ~4 s to write)."""
    root = tmp_path_factory.mktemp("report-site")
    (root / "normagent.toml").write_text(CONFIG)
    mp = pytest.MonkeyPatch()
    mp.setenv("STATE_DIRECTORY", str(root / "state"))
    config, plugins = read_config(root / "normagent.toml")
    names = sorted(_intervals(config, plugins))
    write_history(root / "state" / "ledger.db", history(names), plugins.metrics().values(),
                  lambda host: build_engine(config, plugins, host, "test"))
    yield root
    mp.undo()


@pytest.fixture
def state_env(site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STATE_DIRECTORY", str(site / "state"))
    return site


def report(site: Path, *argv: str, now: datetime = NOW) -> tuple[int, bytes, str]:
    """Run ``normagent report`` in-process at a fixed time; (exit code, stdout bytes, stderr)."""
    args = build_parser().parse_args(["report", "--config", str(site / "normagent.toml"), "--output", "-", *argv])
    config, plugins = read_config(args.config)
    out, err = _Out(), io.StringIO()
    code = run_report(args, config, plugins, out, err, now=now)  # type: ignore[arg-type]
    return code, out.buffer.getvalue(), err.getvalue()


class _Out(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.buffer = io.BytesIO()


def document(site: Path, *argv: str) -> dict[str, Any]:
    code, data, _ = report(site, "--format", "json", *argv)
    assert code == 0
    return json.loads(data)


# ------------------------------------------------------------------------------------------------
# golden files and the schema


@pytest.mark.parametrize("fmt", ["json", "md", "html"])
def test_report_matches_golden(state_env: Path, fmt: str, golden: Any) -> None:
    """The November report of the fixture ledger, as each format writes it."""
    code, data, _ = report(state_env, "--month", "2026-11", "--format", fmt)
    assert code == 0
    golden.check(f"report-2026-11.{fmt}", data.decode("utf-8"))


def test_the_html_report_is_the_same_on_another_day(state_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drawn on another day, the same month gives the same bytes: nothing of the day it was drawn
    on gets into it (pygal stamps each chart with that day in a comment, unless taken out)."""
    import datetime as dt

    import pygal.svg

    _, today, _ = report(state_env, "--month", "2026-11", "--format", "html")

    class NextYear(dt.date):
        @classmethod
        def today(cls) -> NextYear:
            return cls(2027, 12, 31)

    monkeypatch.setattr(pygal.svg, "date", NextYear)
    _, later, _ = report(state_env, "--month", "2026-11", "--format", "html")
    assert later == today
    assert b"<!--" not in later


def test_json_validates_against_the_schema(state_env: Path) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for argv in (["--month", "2026-11"], ["--month", "2026-11", "--lang", "en"], ["--month", "2026-05"], ["--year", "2026"]):
        code, data, _ = report(state_env, "--format", "json", *argv)
        jsonschema.validate(json.loads(data), schema)


def test_the_signing_header_carries_the_hash_of_the_json(state_env: Path) -> None:
    """The HTML and Markdown name the SHA-256 of exactly the bytes --format json writes."""
    _, data, _ = report(state_env, "--month", "2026-11", "--format", "json")
    digest = hashlib.sha256(data).hexdigest()
    for fmt in ("html", "md"):
        _, page, _ = report(state_env, "--month", "2026-11", "--format", fmt)
        text = page.decode()
        assert digest in text
        for needed in ("1. november 2026 – 30. november 2026", "Europe/Oslo", "6. desember 2026 kl. 10:30", "0.1.0",
                       "sha256:" + hashlib.sha256(CONFIG.encode()).hexdigest(), "Legekontoret Nord, serverrommet"):
            assert needed in text, (fmt, needed)


def test_text_from_the_configuration_or_the_ledger_is_escaped_in_the_html(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The template is ``report.html.j2``: ``select_autoescape(("html",))`` did not take it for HTML,
    so a location, host name or threat name went into the page as markup."""
    hostile = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    shutil.copytree(site / "state", tmp_path / "state")
    (tmp_path / "normagent.toml").write_text(CONFIG.replace("Legekontoret Nord, serverrommet", hostile.replace('"', '\\"')))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))

    code, page, _ = report(tmp_path, "--month", "2026-11", "--format", "html")

    html = page.decode()
    assert code == 0 and "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in html


def test_text_from_the_configuration_or_the_ledger_reads_as_itself_in_the_markdown(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A value with Markdown in it (a link, an image, HTML, a cell separator, a line break that
    starts a heading) is text in the report, not markup that a viewer renders."""
    hostile = "[klikk](javascript:alert(1)) ![x](http://x/y.png) <img src=x> *fet* _kursiv_ | ny celle \\n# Overskrift `kode`"
    shutil.copytree(site / "state", tmp_path / "state")
    (tmp_path / "normagent.toml").write_text(CONFIG.replace("Legekontoret Nord, serverrommet", hostile))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))

    code, page, _ = report(tmp_path, "--month", "2026-11", "--format", "md")

    escaped = ("\\[klikk\\](javascript:alert(1)) !\\[x\\](http://x/y.png) \\<img src=x\\> \\*fet\\* \\_kursiv\\_ "
               "\\| ny celle  # Overskrift \\`kode\\`")
    assert code == 0 and f"({escaped}) |" in page.decode()
    assert "\n# Overskrift" not in page.decode()


def test_control_characters_and_bidi_overrides_from_the_ledger_are_written_out(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A syslog tag is any local user's to choose (``logger -p err -t ...``) and becomes the key of
    ``access.eventlog_errors_by_origin``: its escape sequences, NUL and right-to-left override went
    raw into the HTML, its PDF and the Markdown, where they rewrite a terminal or turn the name
    round. The reader sees them written out instead; the JSON keeps the data as it is."""
    shutil.copytree(site / "state", tmp_path / "state")
    (tmp_path / "normagent.toml").write_text(CONFIG)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    tag = "\u202eexe.txt\x1b[2J\x1b]0;pwn\x07\x00\u2066x"
    with sqlite3.connect(tmp_path / "state" / "ledger.db") as db:
        db.execute("INSERT INTO rollups (name, day, key, value, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?)",
                   ("access.eventlog_errors_by_origin", "2026-11-10", f"journal:{tag}", 9999.0,
                    datetime(2026, 11, 10, 8, tzinfo=U).timestamp(), datetime(2026, 11, 10, 9, tzinfo=U).timestamp()))
    db.close()
    shown = "\\u202eexe.txt\\u001b[2J\\u001b]0;pwn\\u0007\\u0000\\u2066x"

    for fmt, written in (("html", shown), ("md", shown.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]"))):
        code, page, _ = report(tmp_path, "--month", "2026-11", "--format", fmt)
        text = page.decode()
        assert code == 0 and written in text, fmt
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text), fmt
    cells = [c for s in document(tmp_path, "--month", "2026-11")["hosts"][0]["sections"] for t in s["tables"] for r in t["rows"] for c in r]
    assert tag in cells


def test_a_value_that_is_no_number_is_left_out_and_named(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An infinity in the ledger (a counter grown past what a float holds, an SNMP answer "inf"
    read as a float; Prometheus answers "NaN" and "+Inf" too) stopped the Markdown and the HTML
    with a ValueError traceback in the sparkline, and the JSON said ``Infinity``, which is no JSON.
    Now the value is left out, the report is written, and its notes name the metric."""
    shutil.copytree(site / "state", tmp_path / "state")
    (tmp_path / "normagent.toml").write_text(CONFIG)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    hour = int(datetime(2026, 11, 10, 8, tzinfo=U).timestamp() // 3600)
    with sqlite3.connect(tmp_path / "state" / "ledger.db") as db:
        db.execute("INSERT OR REPLACE INTO counter_hours (metric, labels, hour, value) VALUES (?, ?, ?, 9e999)",
                   ("normagent_failed_logins_total", json.dumps({"reason": "bad_password", "source": "sshd"}, separators=(",", ":")), hour))
    db.close()

    def no_constant(name: str) -> None:
        raise AssertionError(f"{name} in the JSON")

    for fmt in ("json", "md", "html"):
        code, page, _ = report(tmp_path, "--month", "2026-11", "--format", fmt)
        assert code == 0, fmt
        if fmt == "json":
            doc = json.loads(page, parse_constant=no_constant)
            assert any("normagent_failed_logins_total" in note for note in doc["hosts"][0]["notes"])
        assert "normagent_failed_logins_total" in page.decode()


def test_a_code_span_holds_any_backticks_it_is_given() -> None:
    assert (md_code("a`b"), md_code("``x"), md_code("plain")) == ("``a`b``", "``` ``x ```", "`plain`")


def test_html_is_self_contained(state_env: Path) -> None:
    """Inline CSS and SVG: no script, no link, no external reference of any kind."""
    _, page, _ = report(state_env, "--month", "2026-11", "--format", "html")
    html = page.decode()
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert "javascript:" not in html.lower()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html) + re.findall(r"url\(([^)]*)\)", html)
    assert refs == []
    assert html.count("<svg") == sum(len(s["indicators"]) for s in document(state_env, "--month", "2026-11")["hosts"][0]["sections"])
    assert "@page { size: A4" in html


# ------------------------------------------------------------------------------------------------
# what the report says


def section(doc: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in doc["hosts"][0]["sections"] if s["id"] == sid)


def indicator(doc: dict[str, Any], iid: str) -> dict[str, Any]:
    return next(i for s in doc["hosts"][0]["sections"] for i in s["indicators"] if i["id"] == iid)


def test_sections_follow_the_factsheet_order(state_env: Path) -> None:
    doc = document(state_env, "--month", "2026-11")
    ids = [s["id"] for s in doc["hosts"][0]["sections"]]
    assert ids == ["system.uptime", "access.logins", "availability.services", "deviations", "edi.messages",
                   "updates.applied", "changes.config", "availability.network", "network.devices",
                   "malware.detections", "firewall.barrier"]
    areas = [s["area"] for s in doc["hosts"][0]["sections"]]
    assert areas == sorted(areas)


def test_indicators_this_month_last_month_and_twelve_months(state_env: Path) -> None:
    doc = document(state_env, "--month", "2026-11")
    down = indicator(doc, "system.downtime_unplanned")
    assert down["this"] == 30 * 3600 and down["last"] == 0
    assert down["this_text"] == "1\u00a0d 6\u00a0t"
    months = [p["month"] for p in down["trend"]]
    assert months[0] == "2025-12" and months[-1] == "2026-11" and len(months) == 12
    # Before the ledger began there is no data: missing, never 0.
    assert [p["value"] for p in down["trend"][:9]] == [None] * 9
    assert down["trend"][-1]["value"] == 30 * 3600
    failed = indicator(doc, "access.failed_logins")
    assert failed["this"] is not None and failed["this"] >= 250  # the burst of the 18th


def test_completeness_shows_the_agent_outage_and_the_failing_collector(state_env: Path) -> None:
    doc = document(state_env, "--month", "2026-11")
    host = doc["hosts"][0]
    gaps = host["completeness"]["gaps"]
    assert [(g["start"], g["end"], g["hours"]) for g in gaps] == [("2026-11-12T03:00:00Z", "2026-11-13T09:00:00Z", 30)]
    shares = {c["name"]: c for c in host["completeness"]["collectors"]}
    assert shares["system.host"]["share"] == pytest.approx(690 / 720)
    assert shares["edi.messages"]["hours_down"] == 10 and shares["edi.messages"]["failures"] == 10
    edi = section(doc, "edi.messages")
    assert edi["incomplete"] and edi["incomplete_collectors"] == ["edi.messages"]
    assert edi["completeness"] == pytest.approx(680 / 720)


def test_deviations_raised_acknowledged_open_and_the_72_hour_ones(state_env: Path) -> None:
    doc = document(state_env, "--month", "2026-11")
    dev = section(doc, "deviations")
    items = dev["items"]
    rules = {i["rule"] for i in items}
    assert rules == {"access.failed_from_network", "access.failed_logins_burst", "edi.misaddressed", "edi.rejected_messages",
                     "firewall.rule_change_unplanned", "system.collector_down", "system.unexpected_shutdown", "system.unplanned_downtime"}
    marked = [i for i in items if i["personal_data"]]
    assert [i["rule"] for i in marked] == ["edi.misaddressed"]
    assert marked[0]["notify_by"] is not None
    assert dev["deviations"]["raised"] == len(items)
    assert dev["deviations"]["deadline_72h"] == 1
    assert any("(72 t)" in row[1] for row in dev["tables"][1]["rows"])
    assert dev["deviations"]["acknowledged"] == 0 and dev["deviations"]["open"] == 0
    september = section(document(state_env, "--month", "2026-09"), "deviations")
    assert september["deviations"]["acknowledged"] == 1  # the first candidate was acknowledged
    assert [i["acknowledged_at"] is not None for i in september["items"]].count(True) == 1


def test_summary_status_decisions_and_changes(state_env: Path) -> None:
    doc = document(state_env, "--month", "2026-11")
    summary = doc["hosts"][0]["summary"]
    status = {a["area"]: a["status"] for a in summary["areas"]}
    assert status[30] == "red"  # a 72-hour candidate in message communication
    assert status[10] == "yellow"  # warnings: the burst, the reboot
    assert status[80] == "yellow"  # the firewall's rules changed outside any plan
    assert status[70] == "green"
    assert 1 <= len(summary["decisions"]) <= 3
    assert "Datatilsynet" in summary["decisions"][0]
    assert any("Uplanlagt nedetid" in c for c in summary["changes"])


def test_english_report_formats_numbers_and_dates_for_the_language(state_env: Path) -> None:
    nb = document(state_env, "--month", "2026-11")
    en = document(state_env, "--month", "2026-11", "--lang", "en")
    assert en["period"]["first_day"] == "1 November 2026" and nb["period"]["first_day"] == "1. november 2026"
    blocked_nb, blocked_en = indicator(nb, "firewall.blocked"), indicator(en, "firewall.blocked")
    assert blocked_nb["this"] == blocked_en["this"] and blocked_nb["this"] > 1000
    assert re.fullmatch(r"\d{1,3}(\u00a0\d{3})+", blocked_nb["this_text"])
    assert re.fullmatch(r"\d{1,3}(,\d{3})+", blocked_en["this_text"])
    assert section(en, "system.uptime")["title"] == "Operations status: uptime and restarts"
    assert en["hosts"][0]["summary"]["areas"][0]["title"] == "Operations status"


def test_a_year_report_has_the_year_and_its_months(state_env: Path) -> None:
    doc = document(state_env, "--year", "2026")
    assert doc["kind"] == "year" and doc["period"]["name"] == "2026"
    down = indicator(doc, "system.downtime_unplanned")
    assert [p["month"] for p in down["trend"]] == [f"2026-{m:02d}" for m in range(1, 13)]
    assert down["trend"][0]["value"] is None  # January 2026: before the ledger
    assert down["trend"][10]["value"] == 30 * 3600
    assert down["this"] == 30 * 3600 and down["last"] is None


# ------------------------------------------------------------------------------------------------
# bad input


def test_a_month_without_data_says_so_and_exits_65(state_env: Path) -> None:
    code, data, err = report(state_env, "--month", "2026-05", "--format", "md")
    assert code == 65
    assert "has no data" in err
    text = data.decode()
    assert "Det finnes ingen data for denne perioden" in text
    assert "| Mislykkede pålogginger | – | – |" in text  # missing, not 0
    doc = json.loads(report(state_env, "--month", "2026-05", "--format", "json")[1])
    assert indicator(doc, "access.failed_logins")["this"] is None
    assert {a["status"] for a in doc["hosts"][0]["summary"]["areas"]} == {"unknown"}


def test_a_pipe_or_a_device_given_as_output_is_written_into_not_replaced(state_env: Path, tmp_path: Path) -> None:
    """The report used to be renamed over whatever --output named: as root, ``-o /dev/null``
    put a regular file where the device was."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # the report (~20 KB of Markdown) fits in the pipe's buffer
    try:
        code, _, _ = report(state_env, "--format", "md", "--output", str(pipe))
        got = os.read(reader, 1 << 20)
    finally:
        os.close(reader)
    assert code == 0 and stat.S_ISFIFO(pipe.stat().st_mode)
    assert got.startswith(b"# M\xc3\xa5nedsrapport")
    if os.geteuid() == 0:  # a device of its own, never the system's /dev/null
        null = tmp_path / "null"
        os.mknod(null, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        assert report(state_env, "--format", "md", "--output", str(null))[0] == 0
        assert stat.S_ISCHR(null.stat().st_mode)
    plain = tmp_path / "plain.md"
    plain.write_bytes(b"old")
    assert report(state_env, "--format", "md", "--output", str(plain))[0] == 0
    assert plain.read_bytes().startswith(b"# M\xc3\xa5nedsrapport") and oct(plain.stat().st_mode & 0o777) == "0o640"


@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        (["--month", "2026-13"], 64, "expected YYYY-MM"),
        (["--month", "november"], 64, "expected YYYY-MM"),
        (["--month", "9999-12"], 64, "expected YYYY-MM from 2000-01 to 9998-12"),  # it would end in the year 10000
        (["--year", "9999"], 64, "expected a year from 2000 to 9998"),
        (["--month", "\uff12\uff10\uff12\uff16-\uff11\uff11"], 64, "expected YYYY-MM"),  # full-width digits
        (["--month", "2027-01"], 64, "has not begun yet"),
        (["--month", "2026-11", "--year", "2026"], 64, "not both"),
        (["--lang", "de"], 2, "invalid choice: 'de'"),
        # were tracebacks from requests (ValueError, OverflowError) once Prometheus was asked
        (["--prometheus-url", "http://127.0.0.1:1", "--prometheus-timeout", "-5"], 2, "expected seconds, more than 0"),
        (["--prometheus-url", "http://127.0.0.1:1", "--prometheus-timeout", "nan"], 2, "expected seconds, more than 0"),
        (["--prometheus-url", "http://127.0.0.1:1", "--prometheus-timeout", "1e308"], 2, "at most 86400"),
        (["--prometheus-url", "http://127.0.0.1:1", "--host-label", "a) or vector(1"], 2, "is not a Prometheus label name"),
        (["--format", "docx"], 2, "invalid choice: 'docx'"),
    ],
)
def test_bad_arguments_get_a_clear_message_and_exit_code(
    state_env: Path, argv: list[str], code: int, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) if code == 2 else _nothing():
        got = main(["report", "--config", str(state_env / "normagent.toml"), "--output", "-", *argv])
        assert got == code
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_no_ledger_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "normagent.toml").write_text(CONFIG)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "nothing"))
    assert main(["report", "--config", str(tmp_path / "normagent.toml"), "--month", "2026-11", "-o", "-"]) == 66
    assert "no ledger here" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()  # a report creates nothing


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("garbage", "not a readable normagent ledger (file is not a database)"),
        ("newer", "ledger schema 99 was written by a newer normagent"),
    ],
)
def test_a_damaged_or_newer_ledger_is_a_clear_error(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], damage: str, words: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    ledger = state / "ledger.db"
    if damage == "garbage":
        ledger.write_bytes(b"not a database, and long enough to be read as one\n" * 100)
    else:
        src = sqlite3.connect(site / "state" / "ledger.db")
        src.backup(dst := sqlite3.connect(ledger))
        src.close()
        dst.execute("PRAGMA user_version = 99")
        dst.close()
    before = ledger.read_bytes()
    (tmp_path / "normagent.toml").write_text(CONFIG)
    monkeypatch.setenv("STATE_DIRECTORY", str(state))
    assert main(["report", "--config", str(tmp_path / "normagent.toml"), "--month", "2026-11", "-o", str(tmp_path / "r.html")]) == 73
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err, err
    assert ledger.read_bytes() == before and not (tmp_path / "r.html").exists()


OLDER_SCHEMAS = {
    2: "DROP TABLE run_hours; DROP TABLE gauge_hours; DELETE FROM meta WHERE key = 'history_since'; PRAGMA user_version = 2;",
    1: "DROP TABLE run_hours; DROP TABLE gauge_hours; DELETE FROM meta WHERE key = 'history_since'; "
       "DROP TABLE acks; DROP TABLE outbox; DROP TABLE fingerprints; DROP TABLE candidates; PRAGMA user_version = 1;",
}


@pytest.mark.parametrize("schema", sorted(OLDER_SCHEMAS))
def test_an_older_ledger_is_read_and_says_what_it_lacks(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schema: int) -> None:
    """A schema-2 ledger (before run and gauge history): counters are reported, completeness is
    unknown. A schema-1 ledger (before deviation candidates) has no deviations to report either."""
    state = tmp_path / "state"
    state.mkdir()
    old = state / "ledger.db"
    src = sqlite3.connect(site / "state" / "ledger.db")
    src.backup(dst := sqlite3.connect(old))
    src.close()
    dst.executescript(OLDER_SCHEMAS[schema])
    dst.close()
    (tmp_path / "normagent.toml").write_text(CONFIG)
    monkeypatch.setenv("STATE_DIRECTORY", str(state))
    code, data, _ = report(tmp_path, "--month", "2026-11", "--format", "json")
    assert code == 0
    doc = json.loads(data)
    host = doc["hosts"][0]
    assert any(f"eldre normagent (skjema {schema})" in n for n in host["notes"])
    assert host["completeness"]["known"] is False and host["completeness"]["gaps"] == []
    assert indicator(doc, "system.downtime_unplanned")["this"] == 30 * 3600
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone()[0] == schema  # read, never migrated
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    deviations = section(doc, "deviations")
    statuses = {a["status"] for a in host["summary"]["areas"]}
    if schema == 1:  # no candidates kept: unknown, never "none raised" and green
        assert any("ikke førte avvikskandidater" in n for n in host["notes"])
        assert deviations["deviations"] is None and deviations["no_data"]
        assert statuses == {"unknown"}
        assert {a["why"] for a in host["summary"]["areas"]} == {"databasen er fra en normagent uten avvikskandidater"}
    else:
        raised = deviations["deviations"]["raised"]
        assert raised > 0 and raised == len(deviations["items"]) and "unknown" not in statuses


def test_a_section_that_fails_is_named_in_the_report(state_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: object, period: object) -> object:
        raise RuntimeError("plugin bug")

    from dataclasses import replace

    from normagent.loader import Plugins

    original = Plugins.report_sections

    def sections(self: Plugins) -> dict[str, Any]:
        found = dict(original(self))
        found["firewall.barrier"] = replace(found["firewall.barrier"], build=broken)
        return found

    monkeypatch.setattr(Plugins, "report_sections", sections)
    code, data, _ = report(state_env, "--month", "2026-11", "--format", "json")
    assert code == 0
    fw = section(json.loads(data), "firewall.barrier")
    assert fw["error"] == "RuntimeError: plugin bug"
    assert fw["indicators"][0]["this"] is not None  # its figures are still there


# ------------------------------------------------------------------------------------------------
# progress and delivery


def test_progress_is_logged_off_a_terminal(state_env: Path) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        report(state_env, "--month", "2026-11", "--format", "json")
    steps = [e for e in logs if e["event"] == "report_progress"]
    assert steps and steps[-1]["done"] == steps[-1]["total"]


def test_send_writes_every_format_into_the_folder(state_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "out"
    cfg = tmp_path / "send.toml"
    cfg.write_text(CONFIG + f'folder = "{folder}"\nformats = ["html", "md"]\n')
    args = build_parser().parse_args(["report", "--config", str(cfg), "--month", "2026-11", "--send"])
    config, plugins = read_config(cfg)
    assert run_report(args, config, plugins, io.StringIO(), io.StringIO(), now=NOW) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"normagent-report-2026-11-{HOST_ID[:12]}.{ext}" for ext in ("html", "json", "md")]
    data = (folder / names[1]).read_bytes()
    assert hashlib.sha256(data).hexdigest() in (folder / names[0]).read_text()


def test_export_history_writes_openmetrics_for_promtool(state_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The ledger's history as OpenMetrics: counters cumulative per hour, the agent's presence, its
    collectors' health, ALERTS of the exported rules; a counter's last sample is its total."""
    assert main(["report", "--config", str(state_env / "normagent.toml"), "--export-history", "--instance", "clinic-a:9824", "-o", "-"]) == 0
    text = capsys.readouterr().out
    assert text.endswith("# EOF\n")
    families = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    assert ("normagent_failed_logins", "counter") in families and ("ALERTS", "gauge") in families
    assert len({name for name, _ in families}) == len(families)  # each family once, its samples together
    down = [line for line in text.splitlines() if line.startswith('normagent_downtime_seconds_total{instance="clinic-a:9824",job="normagent",planned="false"}')]
    assert down[-1].split()[1] == str(30 * 3600)
    stamps = [int(line.split()[2]) for line in down]
    assert stamps == sorted(stamps) and all(s % 3600 == 3599 for s in stamps)
    assert 'alertname="access.failed_from_network"' not in text  # a rollup rule: Prometheus cannot evaluate it
    assert 'alertname="access.failed_logins_burst"' in text


def test_export_history_into_a_file_is_whole_or_a_clear_error(state_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--export-history -o PATH`` wrote with a plain open(): a folder, a file where the folder
    should be or a full disk ended in a traceback (IsADirectoryError, FileExistsError, OSError),
    and what was written before a full disk stayed, without its "# EOF". Now it is written as the
    report is (into place whole), and each failure is one line that says what."""
    config = str(state_env / "normagent.toml")
    target = tmp_path / "history.om"
    assert main(["report", "--config", config, "--export-history", "--instance", "c:9824", "-o", str(target)]) == 0
    assert target.read_text().endswith("# EOF\n")
    (tmp_path / "afile").write_text("")

    for where, why in ((tmp_path, "Is a directory"), (Path("/dev/full"), "No space left on device"),
                       (tmp_path / "afile" / "history.om", "Not a directory")):
        assert main(["report", "--config", config, "--export-history", "-o", str(where)]) == 66
        assert capsys.readouterr().err == f"normagent: {where}: cannot write the history ({why})\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "history.om"]  # no temporary file left


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar_and_no_log_lines() -> None:
    from structlog.testing import capture_logs

    from normagent.report.command import BarProgress

    screen = _Terminal()
    bar = BarProgress(screen)
    with capture_logs() as logs:
        bar.start(200, "hosts")
        for _ in range(200):
            bar.advance()
        assert bar._bar.n == 200  # tqdm redraws at most every 0.1 s; the count is what it shows next
        bar.close()
    assert "report: hosts:   0%" in screen.getvalue() and "0/200" in screen.getvalue()
    assert [e for e in logs if e["event"] == "report_progress"] == []
    plain = io.StringIO()
    with capture_logs() as logs:
        bar = BarProgress(plain)
        bar.start(200, "hosts")
        for _ in range(200):
            bar.advance()
    assert plain.getvalue() == ""
    assert [e["done"] for e in logs if e["event"] == "report_progress"] == [1, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200]
