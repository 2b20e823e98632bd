"""``normagent report``: build the report of a month (or a year) and write, print or send it.

One host from its own ledger (opened read-only), or a fleet from Prometheus's HTTP API
(``--prometheus-url``). The exit codes: 0 the report is written; 65 it is written but the period
has no data at all (it says so); 64 a bad month or option; 66 no ledger; 69 Prometheus, Chromium or
the SMTP server is not there; 73 the ledger cannot be read (damaged, or from a newer normagent); 78 a
bad configuration. Never a traceback for any of these.

Long work (a fleet's queries, a year's sections) shows a progress bar on a terminal (tqdm) and a
log line every tenth of the way otherwise (``report_progress``).

Imports the report package, config, agent (for the configuration) and ledger; only cli imports it.
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo

import structlog

from normagent import digests
from normagent.errors import EX_DATAERR, InputError, UsageError
from normagent.smallfile import read_secret

if TYPE_CHECKING:
    from normagent.report.build import ReportPeriod
    from normagent.config import Config
    from normagent.loader import Plugins
    from normagent.report.data import HostSource

log = structlog.get_logger(__name__)

LEDGER_FILE = "ledger.db"
MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")
# The last year a report can cover: a period ends where the next one begins, and that day must be a
# date Python can hold (9999-12 would end in the year 10000).
LAST_YEAR = 9998


class BarProgress:
    """A tqdm bar on a terminal, or a log line every tenth of the way."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._bar: Any = None
        self._total = 0
        self._done = 0
        self._what = ""
        self._logged = -1

    def start(self, total: int, what: str) -> None:
        self.close()
        self._total, self._done, self._what, self._logged = total, 0, what, -1
        if self._stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=f"report: {what}", unit=what.rstrip("s") or "step", file=self._stream, leave=False)

    def advance(self, steps: int = 1) -> None:
        self._done += steps
        if self._bar is not None:
            self._bar.update(steps)
            return
        tenth = self._done * 10 // max(self._total, 1)
        if tenth != self._logged and (tenth > self._logged):
            self._logged = tenth
            log.info("report_progress", what=self._what, done=self._done, total=self._total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def parse_month(text: str) -> tuple[int, int]:
    """``--month YYYY-MM`` as (year, month), for the report and the demo.

    Raises:
        UsageError: Not a month from 2000-01 to LAST_YEAR-12 in ASCII digits.
    """
    found = MONTH.match(text)
    if not found or not 1 <= int(found.group(2)) <= 12 or not 2000 <= int(found.group(1)) <= LAST_YEAR:
        raise UsageError(f"--month {text!r}: expected YYYY-MM from 2000-01 to {LAST_YEAR}-12, e.g. 2026-11")
    return int(found.group(1)), int(found.group(2))


def parse_period(month: str | None, year: int | None, zone: ZoneInfo, zone_name: str, now: datetime) -> ReportPeriod:
    from normagent.report.build import ReportPeriod, last_month

    if month and year:
        raise UsageError("give --month or --year, not both")
    if year is not None:
        if not 2000 <= year <= LAST_YEAR:
            raise UsageError(f"--year {year}: expected a year from 2000 to {LAST_YEAR}")
        return ReportPeriod.year(year, zone, zone_name)
    if month:
        return ReportPeriod.month(*parse_month(month), zone, zone_name)
    y, m = last_month(now, zone)
    return ReportPeriod.month(y, m, zone, zone_name)


def config_fingerprint(config: Config) -> str:
    """``sha256:<hex>`` of the configuration file as read; built-in defaults say so."""
    if config.path is None:
        return "built-in defaults"
    try:
        return "sha256:" + digests.sha256(config.path.read_bytes()).hexdigest()
    except OSError:
        return f"unreadable ({config.path})"


def run_report(args: argparse.Namespace, config: Config, plugins: Plugins, out: TextIO, err: TextIO, now: datetime | None = None) -> int:
    from normagent import __version__
    from normagent.report import deliver
    from normagent.report.build import ReportContext, build_report
    from normagent.report.render import FORMATS, render, sha256

    settings = config.sections["report"]
    if args.export_history:
        return export_history(args, config, plugins, out, now or datetime.now(timezone.utc))
    lang = args.lang or settings.language
    zone = ZoneInfo(settings.time_zone)
    now = now or datetime.now(timezone.utc)
    period = parse_period(args.month, args.year, zone, settings.time_zone, now)
    if period.span().start >= now:
        raise UsageError(f"{period.name()} has not begun yet")
    progress = BarProgress(err)
    sections = list(plugins.report_sections().values())
    intervals = _intervals(config, plugins)
    source_info: dict[str, Any]
    ledger = client = None
    try:
        hosts: list[HostSource]
        if args.prometheus_url:
            from normagent.report.data import Fleet, PrometheusClient, PrometheusSettings

            password = ""
            if args.prometheus_password_file is not None:
                try:
                    password = read_secret(args.prometheus_password_file)
                except OSError as exc:
                    raise InputError(f"--prometheus-password-file {args.prometheus_password_file}: {exc.strerror or exc}") from None
                except UnicodeDecodeError as exc:
                    raise InputError(f"--prometheus-password-file {args.prometheus_password_file}: not UTF-8 text ({exc})") from None
            client = PrometheusClient(
                PrometheusSettings(
                    url=args.prometheus_url, match=args.match, host_label=args.host_label, ca_file=args.prometheus_ca_file,
                    client_cert=args.prometheus_cert, client_key=args.prometheus_key, username=args.prometheus_username,
                    password=password, timeout=args.prometheus_timeout,
                )
            )
            fleet = Fleet(client)
            names = fleet.hosts(period.span())
            if not names:
                raise InputError(
                    f"Prometheus at {args.prometheus_url} has no normagent (normagent_build_info{args.match or ''}) in {period.name()}"
                )
            hosts = [fleet.source(name) for name in names]
            source_info = {"kind": "prometheus", "url": args.prometheus_url, "match": args.match, "hosts": len(names)}
            intervals = {}
        else:
            from normagent.ledger import Ledger, exists
            from normagent.report.data import LedgerSource

            path = config.state_dir() / LEDGER_FILE
            if not exists(path):
                raise InputError(f"{path}: no ledger here (the agent has not run with this state directory); see --config")
            ledger = Ledger.open_readonly(path)
            location = config.sections["deviations"].location
            hosts = [LedgerSource(ledger, location=location)]
            source_info = {"kind": "ledger"}
        ctx = ReportContext(
            period=period, sections=sections, lang=lang, generated_at=now, version=__version__,
            config_fingerprint=config_fingerprint(config), intervals=intervals, source=source_info,
        )
        doc = build_report(ctx, hosts, progress)
        if client is not None:
            doc["warnings"] = [*doc["warnings"], *(f"Prometheus: {w}" for w in client.warnings)]
    finally:
        progress.close()
        if ledger is not None:
            ledger.close()
        if client is not None:
            client.close()

    timeout = settings.chromium_timeout.total_seconds()
    if args.send:
        if settings.folder is None and not settings.email:
            raise UsageError("--send: [report] names neither a folder nor an e-mail forwarder (email)")
        formats = list(dict.fromkeys([*settings.formats, "json"]))
        files = {fmt: render(doc, fmt, settings.chromium, timeout) for fmt in formats if fmt in FORMATS}
        if settings.folder is not None:
            for path in deliver.to_folder(settings.folder, doc, files):
                log.info("report_written", path=str(path))
        if settings.email:
            summary = render(doc, "md").decode("utf-8")
            recipients = deliver.by_email(config, doc, files, summary)
            log.info("report_mailed", forwarder=settings.email, recipients=len(recipients))
    else:
        fmt = args.format or "html"
        data = render(doc, fmt, settings.chromium, timeout)
        target = _target(args.output, doc, fmt)
        if target is None:
            out.flush()
            if hasattr(out, "buffer"):
                out.buffer.write(data)
                out.buffer.flush()
            else:
                out.write(data.decode("utf-8", "replace"))
        else:
            try:
                deliver.write_output(target, data)
            except OSError as exc:
                raise InputError(f"{target}: cannot write the report ({exc.strerror or exc})") from None
            print(f"{target} (JSON sha256 {sha256(doc)})", file=err)
    if not doc["has_data"]:
        print(f"normagent: the report for {period.name()} has no data: the agent did not run in that period (see the report)", file=err)
        return EX_DATAERR
    return 0


def export_history(args: argparse.Namespace, config: Config, plugins: Plugins, out: TextIO, now: datetime) -> int:
    """The ledger's history as OpenMetrics text (``normagent.report.openmetrics``)."""
    import socket

    from normagent import __version__
    from normagent.deviations import configured_rules, metric_kinds
    from normagent.ledger import Ledger, exists
    from normagent.report.openmetrics import export
    from normagent.rules import prometheus_rules

    path = config.state_dir() / LEDGER_FILE
    if not exists(path):
        raise InputError(f"{path}: no ledger here (the agent has not run with this state directory); see --config")
    active = [r.rule for r in configured_rules(config, plugins) if r.active]
    _, skipped = prometheus_rules(active, metric_kinds(plugins))
    exported = {r.name for r in active} - set(skipped)
    target = {"instance": args.instance or f"{socket.gethostname()}:9824", "job": "normagent"}
    with Ledger.open_readonly(path) as ledger:
        lines = export(ledger, target, now, _intervals(config, plugins), __version__, exported)
        if args.output in (None, "-"):
            for line in lines:
                out.write(line)
        else:
            # As the report is written: into place whole, or not at all (a full disk left half a
            # history without its "# EOF", and every failure was a traceback).
            from normagent.report import deliver

            try:
                deliver.write_output(Path(args.output), lines)
            except OSError as exc:
                raise InputError(f"{args.output}: cannot write the history ({exc.strerror or exc})") from None
    return 0


def _target(output: str | None, doc: dict[str, Any], fmt: str) -> Path | None:
    from normagent.report.deliver import file_name

    if output == "-":
        return None
    if output is None:
        return Path.cwd() / file_name(doc, fmt)
    path = Path(output)
    return path / file_name(doc, fmt) if path.is_dir() else path


def _intervals(config: Config, plugins: Plugins) -> dict[str, float]:
    """Every collector the configuration enables → its interval in seconds."""
    from normagent.agent import job_for

    out: dict[str, float] = {}
    for spec in plugins.collectors().values():
        job = job_for(spec, config)
        if job is not None:
            out[job.spec.name] = job.interval
    return out
