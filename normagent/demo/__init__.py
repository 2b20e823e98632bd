"""``normagent demo``: the whole product on an invented clinic, in one command.

1. ``clinic.build_clinic`` decides a month of a small clinic (seeded: every demo of a month is the
   same) and the demo writes the configuration an operations provider would write for it
   (``normagent.toml`` in the demo directory: the builtin plugins, files as sources);
2. ``replay.replay`` runs the month through the real collectors on a simulated clock, into a real
   ledger, with the real rules engine inside it: every hour the clinic's files grow by that hour's
   lines, and each collector runs as the scheduler would run it (``scheduler.execute``), in a fixed
   order rather than on threads, so that the month comes out the same every time;
3. the deviation candidates the rules raised are printed, the monthly report is written (HTML,
   JSON, and PDF when Chromium is there) by ``normagent report``'s own code, and ``/metrics`` is
   served from the ledger on 127.0.0.1 until Ctrl-C (``--no-serve``: not at all).

Imports agent (for the configuration), report, ledger and the rest of the core; only cli imports it.
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import structlog

from normagent import digests
from normagent.errors import InputError, NormagentError, UsageError
from normagent.records import dataclass

# shutil and tempfile (which bring bz2, lzma and random) are imported where they are used.

log = structlog.get_logger(__name__)

OSLO = ZoneInfo("Europe/Oslo")


@dataclass
class DemoResult:
    """What a demo made, for its caller (and the tests)."""

    directory: Path
    config: Path
    ledger: Path
    month: str
    expected: set[str]
    raised: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, Path] = field(default_factory=dict)
    pdf_note: str = ""
    journal_note: str = ""
    address: str = ""


def parse_month(text: str | None, now: datetime) -> tuple[int, int]:
    from normagent.report.command import parse_month as parse_given

    if text is None:
        local = now.astimezone(OSLO)
        return (local.year - 1, 12) if local.month == 1 else (local.year, local.month - 1)
    return parse_given(text)


def run_demo(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    *,
    now: datetime | None = None,
    on_serving: Callable[[DemoResult], None] | None = None,
    stop: threading.Event | None = None,
) -> DemoResult:
    """The demo, start to end. ``on_serving`` is called once ``/metrics`` answers (the tests scrape
    there and set ``stop``); without ``stop`` serving ends at SIGINT or SIGTERM."""
    now = now or datetime.now(timezone.utc)
    year, month = parse_month(args.month, now)
    name = f"{year}-{month:02d}"
    from normagent.demo.clinic import month_span

    if month_span(year, month)[1] > now:
        raise UsageError(f"--month {name}: the month is not over yet; the demo reports a whole month")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: not a port number")
    if not args.no_serve:
        _check_port(args.port)  # before a minute of work, not after it
    directory, created = _directory(args.dir)
    remove = args.dir is None and not args.keep
    try:
        result = _build(args, directory, year, month, now, out, err)
        if not args.no_serve:
            _serve(args, result, out, on_serving, stop)
        return result
    finally:
        if remove and created:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)
            print(f"{directory} removed (--keep or --dir keeps the clinic, its ledger and the report)", file=out)


def _check_port(port: int) -> None:
    """Refuse a port something already listens on (the server binds it again after the replay)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UsageError(f"--port {port}: cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); choose another "
                             "with --port N (0: any free one), or leave /metrics out with --no-serve") from None


def _directory(given: Path | None) -> tuple[Path, bool]:
    if given is None:
        import tempfile

        return Path(tempfile.mkdtemp(prefix="normagent-demo-")), True
    path = given.absolute()
    if path.exists():
        if not path.is_dir():
            raise InputError(f"--dir {path}: not a directory")
        if any(path.iterdir()):
            raise InputError(f"--dir {path}: not empty; the demo builds its clinic only in an empty or new directory")
        return path, False
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise InputError(f"--dir {path}: cannot create it ({exc.strerror or exc})") from None
    return path, True


def _build(args: argparse.Namespace, directory: Path, year: int, month: int, now: datetime, out: TextIO, err: TextIO) -> DemoResult:
    from normagent import __version__
    from normagent.agent import read_config
    from normagent.demo.clinic import build_clinic
    from normagent.demo.config import write_config
    from normagent.demo.replay import Progress, replay
    from normagent.testing import FakeClock
    from normagent.ledger import Ledger
    from normagent.log import configure_logging
    from normagent.privacy import Pseudonymiser, load_or_create_key

    started = time.monotonic()
    clinic = build_clinic(directory / "clinic", year, month, seed=args.seed)
    clinic.prepare(Path(__file__).with_name("evtx"))
    config_path = write_config(directory, clinic, args.lang)
    # The collectors' own warnings (a host command the demo does not offer) are not the demo's story.
    configure_logging("error", "console", err)
    config, plugins = read_config(config_path)
    state = config.state_dir()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    clock = FakeClock(clinic.start)
    # The ledger's id (it names the host in the report, and is in every candidate's key) and the
    # pseudonym key come from the seed, so that two demos of a month write the same report; a real
    # agent's are random (ledger.py, privacy.py).
    host_id = digests.sha256(f"normagent-demo-host:{args.seed}".encode()).hexdigest()[:32]
    result = DemoResult(directory, config_path, state / "ledger.db", f"{year}-{month:02d}", set(clinic.expected))
    if clinic.journal_remote is None:
        result.journal_note = ("the journal: skipped (systemd-journal-remote is not installed, so the demo cannot write a journal "
                               "file of its own; apt-get install systemd-journal-remote)")
    print(f"normagent demo {__version__}: a clinic's {result.month}, built in {directory}", file=out)
    # The agent's own ledger, durable as the agent's (not syncing each commit was measured: no
    # faster under load, bench/README.md).
    with Ledger.open(state / "ledger.db", clock=clock, host_id=host_id) as ledger:
        # The key is created with the ledger, as the agent does (a key without its ledger means a lost one).
        key = digests.sha256(f"normagent-demo-key:{args.seed}".encode()).digest()
        pseudonymise = Pseudonymiser(load_or_create_key(state, new=key))
        progress = Progress(err)
        stats = replay(config, plugins, clinic, ledger, clock, pseudonymise, progress)
        progress.close()
        print(f"replayed {stats.hours} hours: {stats.runs} collector runs ({stats.failed} failed), "
              f"{stats.evaluations} rule evaluations, {stats.followed_up} candidates followed up, in {time.monotonic() - started:.1f} s", file=out)
        result.raised = _candidates(ledger)
    _print_candidates(result, out)
    if result.journal_note:
        print(f"note: {result.journal_note}", file=out)
    _reports(config_path, result, args.lang, now, out, err)
    return result


def _candidates(ledger: Any) -> list[dict[str, Any]]:
    rows = [c for c in ledger.candidates() if c.fired_at is not None]
    rows.sort(key=lambda c: (c.fired_at, c.id))
    return [
        {"id": c.id, "rule": c.rule, "severity": c.severity.name.lower(),
         "labels": dict(c.labels), "fired_at": c.fired_at.astimezone(OSLO).strftime("%Y-%m-%d %H:%M"), "state": c.state,
         "value": c.value}
        for c in rows
    ]


def _print_candidates(result: DemoResult, out: TextIO) -> None:
    print(f"\ndeviation candidates raised ({len(result.raised)}):", file=out)
    for c in result.raised:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(c["labels"].items()))
        print(f"  #{c['id']:<3} {c['fired_at']}  {c['severity']:<8} {c['rule']:<34} {labels}", file=out)
    missing = sorted(result.expected - {c["rule"] for c in result.raised})
    if missing:
        print(f"  (expected but not raised: {', '.join(missing)})", file=out)


def _reports(config_path: Path, result: DemoResult, lang: str, now: datetime, out: TextIO, err: TextIO) -> None:
    from normagent.agent import read_config
    from normagent.cli_options import add_report_arguments
    from normagent.report.command import run_report

    config, plugins = read_config(config_path)
    folder = result.directory / "report"
    folder.mkdir(exist_ok=True)
    formats = ["html", "json"]
    chromium = config.sections["report"].chromium
    import shutil

    if shutil.which(chromium):
        formats.append("pdf")
    else:
        result.pdf_note = f"no PDF: Chromium ({chromium}) is not installed here (apt-get install chromium); the HTML prints as well"
    for fmt in formats:
        target = folder / f"normagent-report-{result.month}.{fmt}"
        parser = argparse.ArgumentParser(prog="normagent report")
        add_report_arguments(parser)
        args = parser.parse_args(["--month", result.month, "--format", fmt, "--lang", lang, "--output", str(target)])
        try:
            run_report(args, config, plugins, out, io.StringIO(), now=now)
        except NormagentError as exc:
            if fmt != "pdf":
                raise
            result.pdf_note = f"no PDF: {exc}"  # Chromium is there but could not print: the rest of the demo stands
            continue
        result.reports[fmt] = target
    print("\nthe monthly report:", file=out)
    for fmt, path in result.reports.items():
        print(f"  {fmt:<5} {path}", file=out)
    if result.pdf_note:
        print(f"  {result.pdf_note}", file=out)
    (result.directory / "candidates.json").write_text(json.dumps(result.raised, indent=1, ensure_ascii=False) + "\n")


def _serve(args: argparse.Namespace, result: DemoResult, out: TextIO, on_serving: Callable[[DemoResult], None] | None,
           stop: threading.Event | None) -> None:
    from normagent import __version__
    from normagent.agent import read_config
    from normagent.demo.replay import exposition_view
    from normagent.exposition import MetricsApp
    from normagent.ledger import Ledger
    from normagent.web import ListenError, WebSettings, start_server

    config, plugins = read_config(result.config)
    with Ledger.open(result.ledger) as ledger:
        view = exposition_view(config, plugins, ledger, __version__)
        try:
            server = start_server(WebSettings(listen=f"127.0.0.1:{args.port}"), MetricsApp(ledger.snapshot, lambda: view), lambda: True)
        except ListenError as exc:
            raise UsageError(f"--port {args.port}: {exc}; the report is in {result.directory / 'report'}; "
                             "choose another port with --port N (0: any free one) or leave /metrics out with --no-serve") from None
        try:
            result.address = server.address
            print(f"\n/metrics: http://{server.address}/metrics  (Ctrl-C ends the demo)", file=out)
            out.flush()
            own = stop is None
            stop = stop or threading.Event()
            previous = {}
            if own and threading.current_thread() is threading.main_thread():
                for signum in (signal.SIGINT, signal.SIGTERM):
                    previous[signum] = signal.signal(signum, lambda *_: stop.set())
            try:
                if on_serving is not None:
                    on_serving(result)
                while not stop.wait(1.0):
                    pass
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        finally:
            server.stop()
