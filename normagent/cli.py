"""The ``normagent`` command: run | collect --once | check-config | parse | plugins | deviations | rules | report | demo.

``main()`` is the one place that prints a ``NormagentError`` and turns it into an exit code:
``check-config`` exits 2 on a bad config, ``run`` exits 78 (EX_CONFIG) so systemd's
``RestartPreventExitStatus=78`` ends restart loops.

Imports everything; nothing imports it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

from normagent.cli_options import add_demo_arguments, add_report_arguments
from normagent.errors import EX_IOERR, ConfigError, NormagentError, OutputFailed, UsageError, printable

CHECK_CONFIG_FAILED = 2


class EarlySignals:
    """SIGTERM, SIGINT and SIGHUP that reach ``normagent run`` while it is still importing the agent.

    The default action of SIGHUP (and SIGTERM) ends the process, and importing the agent takes a
    few hundred milliseconds: a ``systemctl reload`` or a logrotate ``postrotate`` that sends SIGHUP
    just after a (re)start would kill the daemon. So ``main`` records them before it does anything
    else (this module and the package import next to nothing) and hands the record to the agent
    once its own handlers are in place (``run_agent``). Only the interpreter's own start (site,
    .pth files: some 10–30 ms) comes before this; under systemd (Type=notify) ``ExecReload`` is
    not sent before READY=1.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: list[int] = []
        for signum in self.SIGNALS:
            signal.signal(signum, self._record)

    def _record(self, signum: int, frame: object) -> None:
        self.received.append(signum)

DESCRIPTION = """\
normagent collects the security indicators of Normen factsheet 12 on this server (failed logins,
event-log errors, EDI messages without receipt, uptime …) and serves them to Prometheus.

With no --config and no /etc/normagent/normagent.toml it runs on built-in defaults: state in
/var/lib/normagent (root) or ./.normagent, metrics on http://127.0.0.1:9824/metrics.
"""


def help_width() -> int:
    """The width argparse lays help out for, found as ``shutil.get_terminal_size`` finds it
    (``$COLUMNS``, then the terminal of standard output, else 80), less argparse's margin of 2.

    Why not argparse's own: its formatter imports ``shutil`` for it, and ``shutil`` imports ``bz2``
    and ``lzma`` (their C modules and libraries): 0.46 MB that ``normagent run`` would keep for
    months, for a width it never prints with (argparse makes a formatter for every argument it
    adds, to check the argument's metavar)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns if columns > 0 else 80) - 2


class Parser(argparse.ArgumentParser):
    """argparse's parser, its help laid out ``help_width()`` wide: its sub-commands' parsers are of
    this class too, so none of them asks argparse for the width."""

    def __init__(self, *, formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter, **kwargs: Any) -> None:
        super().__init__(formatter_class=functools.partial(formatter_class, width=help_width()), **kwargs)


def candidate_id(text: str) -> int:
    """A deviation candidate's number as the ledger keeps it: 1 up to SQLite's largest integer."""
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a candidate number (1, 2, … as `deviations list` shows them)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="normagent", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    from normagent import __version__

    parser.add_argument("--version", action="version", version=f"normagent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def config_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config", "-c", type=Path, metavar="PATH",
            help="configuration file (default: $NORMAGENT_CONFIG, else /etc/normagent/normagent.toml if it exists, "
            "else built-in defaults)",
        )

    run = sub.add_parser("run", help="run the agent (the daemon)", description="Run the agent until SIGTERM/SIGINT; "
                         "SIGHUP reloads the configuration. Exits 78 on a bad configuration, 73 when the "
                         "state cannot be used (a full disk; a ledger missing where one existed).")
    config_option(run)
    run.add_argument(
        "--new-state", action="store_true",
        help="start a new ledger where the old one is missing or empty (it was lost: counts restart at 0 and logs "
        "are read again from their start positions; a pseudonym key still there is kept). Refused over an intact ledger",
    )

    collect = sub.add_parser(
        "collect", help="run every collector once and print what it saw",
        description="Run every enabled collector once, in parallel, and print what each saw. Writes no state: "
        "log collectors start from the daemon's committed positions when its ledger exists.",
    )
    config_option(collect)
    collect.add_argument("--once", action="store_true", required=True, help="run each collector once (required; the daemon is `normagent run`)")
    collect.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")

    check = sub.add_parser(
        "check-config", help="validate a configuration file",
        description="Validate a configuration: print OK, or every problem (file:line: key: what is wrong). Exits 2 on problems.",
    )
    check.add_argument("path", nargs="?", type=Path, help="file to check (default: as for --config)")

    plugins = sub.add_parser("plugins", help="list loaded plugins and their collectors")
    config_option(plugins)
    plugins.add_argument("--format", choices=("text", "json"), default="text")

    parse = sub.add_parser(
        "parse", help="run the agent's parsers over log files and show what they understand",
        description="Like fail2ban-regex: run the agent's own parsers over files (plain, .gz, .bz2, .evtx, "
        "journalctl -o json) or stdin ('-') and print counts per indicator and reason, plus unparsed candidate "
        "lines. Writes no state.",
    )
    config_option(parse)
    parse.add_argument("files", nargs="+", metavar="FILE", help="log files, or - for stdin")
    parse.add_argument("--format", choices=("text", "json"), default="text")
    parse.add_argument("--examples", type=int, default=5, metavar="N", help="unparsed candidate lines to show (default 5)")
    parse.add_argument("--collector", action="append", metavar="NAME", help="only this collector's parser (repeatable)")

    dev = sub.add_parser("deviations", help="deviation candidates in the ledger: list, show, ack",
                         description="Deviation candidates (avvikskandidater) the rules raised, from the daemon's ledger.")
    dev_sub = dev.add_subparsers(dest="action", metavar="ACTION", required=True)
    dev_list = dev_sub.add_parser("list", help="candidates, newest first; the outbox and its dead letters")
    config_option(dev_list)
    dev_list.add_argument("--state", action="append", choices=("pending", "firing", "resolved"), help="only these (repeatable)")
    dev_list.add_argument("--format", choices=("text", "json"), default="text")
    dev_show = dev_sub.add_parser("show", help="one candidate: its texts, deliveries and acks")
    config_option(dev_show)
    dev_show.add_argument("id", type=candidate_id, metavar="ID")
    dev_show.add_argument("--format", choices=("text", "json"), default="text")
    dev_ack = dev_sub.add_parser("ack", help="record the follow-up of a candidate (kept, nothing deleted)")
    config_option(dev_ack)
    dev_ack.add_argument("id", type=candidate_id, metavar="ID")
    dev_ack.add_argument("--note", required=True, metavar="TEXT", help="what was done (no personal data)")

    rules = sub.add_parser("rules", help="the deviation rules: list, test, export",
                           description="The deviation rules as configured (plugin defaults and the site's own).")
    rules_sub = rules.add_subparsers(dest="action", metavar="ACTION", required=True)
    rules_list = rules_sub.add_parser("list", help="every rule as configured, and whether it runs")
    config_option(rules_list)
    rules_list.add_argument("--format", choices=("text", "json"), default="text")
    rules_test = rules_sub.add_parser(
        "test", help="evaluate the rules against the ledger at a given time (stores nothing)",
        description="Evaluate the rules against the daemon's ledger at --at (default now), like promtool test rules: "
        "each group, its value, whether the condition holds and what would happen to its candidate. Nothing is "
        "stored. --expect RULE=STATE makes it exit 1 unless some group of RULE would be in STATE.",
    )
    config_option(rules_test)
    rules_test.add_argument("--at", metavar="TIME", help="evaluation time, e.g. 2026-11-23T07:00:00Z (default: now)")
    rules_test.add_argument("--rule", action="append", default=[], metavar="NAME", help="only this rule (repeatable)")
    rules_test.add_argument("--expect", action="append", default=[], metavar="RULE=STATE", help="none, pending, firing or resolved")
    rules_test.add_argument("--format", choices=("text", "json"), default="text")
    rules_export = rules_sub.add_parser("export", help="the rules as Prometheus alerting rules")
    config_option(rules_export)
    rules_export.add_argument("--format", choices=("prometheus",), required=True)

    report = sub.add_parser(
        "report", help="the monthly report for the data controller (HTML, Markdown, JSON, PDF)",
        description="The report of a month (default: last month) or a year, from this host's ledger or, with "
        "--prometheus-url, for every host Prometheus scrapes: a summary for management, data completeness, and the "
        "factsheet's sections with their key figures and 12-month trends. Exits 65 when the period has no data "
        "(the report says so), 69 when Prometheus, Chromium or the SMTP server is not there.",
    )
    config_option(report)
    add_report_arguments(report)

    demo = sub.add_parser(
        "demo", help="the whole product on an invented clinic: a month replayed, candidates, /metrics, the report",
        description="Build an invented clinic (auth log, journal, Windows event logs, EDI folders, ClamAV, firewall, "
        "apt and a service outage) in a temporary directory, replay a month of it through the real collectors on a "
        "simulated clock into a real ledger, print the deviation candidates the rules raised, write the monthly report "
        "(HTML, JSON, and PDF when Chromium is installed) and serve /metrics on 127.0.0.1 until Ctrl-C.",
    )
    add_demo_arguments(demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    early = EarlySignals() if words[:1] == ["run"] else None  # first of all: see EarlySignals
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    del parser  # every command's options (~0.1 MB): `run` lasts as long as the agent does
    if args.command == "run":
        out = sys.stdout
    elif sys.stdout is None:  # started with fd 1 closed: print() would drop every line, exit 0
        print(f"normagent: standard output is closed ({args.command} prints its result there)", file=sys.stderr)
        return EX_IOERR
    else:
        out = cast(TextIO, _Output(sys.stdout))
    try:
        code = dispatch(args, out, early)
        if out is not sys.stdout:
            out.flush()  # here, not at exit: a full disk under it is an error that is said
        return code
    except OutputFailed as exc:
        # What is still buffered would fail again at exit, as a second error: it goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"normagent: {exc}", file=sys.stderr)
        return exc.exit_code
    except ConfigError as exc:
        print(f"normagent: {exc}", file=sys.stderr)
        return CHECK_CONFIG_FAILED if args.command == "check-config" else exc.exit_code
    except NormagentError as exc:
        # Printable (a ConfigError's problems are already, each on its line): the message quotes
        # a path given on the command line or found on the host, what Prometheus, an SMTP server
        # or Chromium answered; an escape sequence there is text, and a newline forges no line.
        print(f"normagent: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `normagent parse … | head`: the reader left; say nothing more, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


class _Output:
    """A command's standard output: a write or flush that fails (a full disk under ``> file``, an
    I/O error) is an ``OutputFailed`` (exit 74, said on stderr), not a traceback; a reader that
    left (``BrokenPipeError``) is left to ``main``. ``buffer`` (the report's bytes) likewise."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _failed(self, exc: OSError) -> OutputFailed:
        return OutputFailed(f"standard output cannot be written: {exc.strerror or exc}; what was printed is incomplete")

    def write(self, text: Any) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise self._failed(exc) from None

    @property
    def buffer(self) -> Any:
        return _Output(self._stream.buffer)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding …
        return getattr(self._stream, name)


def dispatch(args: argparse.Namespace, out: TextIO, early: EarlySignals | None = None) -> int:
    if args.command == "run":
        from normagent.agent import run_agent

        return run_agent(args.config, early.received if early is not None else (), new_state=args.new_state)
    if args.command == "check-config":
        return check_config(args.path, out)
    if args.command == "collect":
        return collect(args.config, args.format, out)
    if args.command == "plugins":
        return list_plugins(args.config, args.format, out)
    if args.command == "parse":
        return parse_files(args, out)
    if args.command in ("deviations", "rules"):
        return deviation_command(args, out)
    if args.command == "report":
        return report_command(args, out)
    if args.command == "demo":
        return demo_command(args, out)
    raise UsageError(f"unknown command {args.command}")


def deviation_command(args: argparse.Namespace, out: TextIO) -> int:
    from normagent import devcmd
    from normagent.agent import read_config

    _quiet_logging()
    config, plugins = read_config(args.config)
    if args.command == "deviations":
        if args.action == "list":
            return devcmd.deviations_list(config, args.state or [], args.format, out)
        if args.action == "show":
            return devcmd.deviations_show(config, args.id, args.format, out)
        return devcmd.deviations_ack(config, args.id, args.note, out)
    if args.action == "list":
        return devcmd.rules_list(config, plugins, args.format, out)
    if args.action == "test":
        return devcmd.rules_test(config, plugins, args.at, args.rule, args.expect, args.format, out)
    return devcmd.rules_export(config, plugins, out)


def report_command(args: argparse.Namespace, out: TextIO) -> int:
    from normagent.agent import read_config
    from normagent.log import configure_logging

    configure_logging("info", "auto")
    config, plugins = read_config(args.config)
    try:
        from normagent.report.command import run_report
    except ImportError as exc:  # the report extra is not installed
        raise UsageError(
            f"normagent report needs the report extra ({exc.name or exc} is missing): pip install 'normagent[report]'"
        ) from None
    return run_report(args, config, plugins, out, sys.stderr)


def demo_command(args: argparse.Namespace, out: TextIO) -> int:
    try:
        import jinja2  # noqa: F401 - the report extra, which the demo's report needs
    except ImportError as exc:
        raise UsageError(f"normagent demo needs the report extra ({exc.name or exc} is missing): pip install 'normagent[report]'") from None
    from normagent.demo import run_demo

    run_demo(args, out, sys.stderr)
    return 0


def _quiet_logging() -> None:
    from normagent.log import configure_logging

    configure_logging("warning", "auto")


def check_config(path: Path | None, out: TextIO) -> int:
    from normagent.agent import read_config
    from normagent.config import find_config_path, format_key, locate

    from normagent.devcmd import probe_forwarders

    _quiet_logging()
    config, plugins = read_config(path)
    probe_forwarders(config, plugins)  # an unreachable forwarder is a problem here, never at run time
    where = find_config_path(path)
    rules = len(plugins.rules()) + len([n for n in config.rules if n not in plugins.rules()])
    # Printable, as the problems are (errors.printable): a plugin's name comes from [plugins] extra or
    # an installed distribution, a load error quotes it, advice names paths found on the host.
    print(printable(f"{where or 'built-in defaults'}: OK ({len(config.collectors)} collectors, {rules} rules, "
                    f"{len(config.forwarders)} forwarders)"), file=out)
    for problem in plugins.problems:
        print(printable(f"  warning: {problem}"), file=out)
    for collector, advice in _advice(config, plugins).items():
        for item in advice:
            keypath = ("collectors", collector, *item.key.split(".")) if item.key else ("collectors", collector)
            line = locate(where, keypath)
            place = f"{where}:{line}: " if where and line else f"{where}: " if where else ""
            print(printable(f"  warning: {place}{format_key(keypath)}: {item.message}"), file=out)
    return 0


def _advice(config: Any, plugins: Any) -> dict[str, list[Any]]:
    """Each enabled collector's advice about its settings on this host (read-only checks)."""
    from normagent.agent import enabled_specs
    from normagent.oneshot import advise_once

    with _host_world(config) as world:
        return advise_once(enabled_specs(config, plugins), world)


@contextlib.contextmanager
def _host_world(config: Any) -> Iterator[Any]:
    """This host's real seams for a one-shot command (the SNMP client is closed afterwards)."""
    from normagent.clock import SystemClock
    from normagent.maintenance import Calendar
    from normagent.oneshot import OneShotWorld
    from normagent.sources.command import run_command
    from normagent.sources.host import PsutilHost
    from normagent.sources.snmp_lazy import LazySnmpClient

    snmp = LazySnmpClient()
    try:
        yield OneShotWorld(
            clock=SystemClock(), host=PsutilHost(), run_command=run_command, snmp=snmp,
            maintenance=Calendar(config.sections["maintenance"]),
        )
    finally:
        snmp.close()


def collect(path: Path | None, fmt: str, out: TextIO) -> int:
    from normagent.agent import enabled_specs, read_config
    from normagent.oneshot import collect_once, render_text

    _quiet_logging()
    config, plugins = read_config(path)
    jobs = enabled_specs(config, plugins)
    disabled = {name: "disabled in the configuration" for name in plugins.collectors() if name not in {s.name for s, _, _ in jobs}}
    with _host_world(config) as world:
        reports = collect_once(jobs, world, config.state_dir())
    if fmt == "json":
        doc: dict[str, Any] = {
            "collectors": [r.as_json() for r in reports],
            "disabled": disabled,
            "plugin_problems": [str(p) for p in plugins.problems],
        }
        json.dump(doc, out, indent=2, sort_keys=False)
        out.write("\n")
    else:
        out.write(render_text(reports, disabled))
        for problem in plugins.problems:
            print(printable(f"warning: {problem}"), file=out)
    return 0 if all(r.status in ("ok", "no_data", "disabled") for r in reports) else 1


def list_plugins(path: Path | None, fmt: str, out: TextIO) -> int:
    from normagent.agent import plugins_factory, read_config
    from normagent.config import PluginsSettings

    _quiet_logging()
    try:
        _, plugins = read_config(path)
    except ConfigError:
        # Listing plugins must work even when the config does not validate: show what loads.
        plugins = plugins_factory(PluginsSettings())
    collectors = plugins.collectors()
    rules, forwarders, sections = plugins.rules(), plugins.forwarders(), plugins.report_sections()
    rows: list[dict[str, Any]] = []
    for info in plugins.infos:
        rows.append(
            {
                "name": info.name,
                "version": info.version,
                "origin": info.origin,
                "module": info.module,
                "loaded": info.loaded,
                "collectors": [
                    {"name": c.name, "interval": c.interval.total_seconds(), "help": c.help}
                    for c in collectors.values() if c.plugin == info.name
                ],
                "rules": sorted(r.name for r in rules.values() if r.plugin == info.name),
                "report_sections": sorted(s.id for s in sections.values() if s.plugin == info.name),
                "forwarders": sorted(f.kind for f in forwarders.values() if f.plugin == info.name),
                "problems": [p.message for p in plugins.problems if p.plugin == info.name],
            }
        )
    if fmt == "json":
        json.dump({"plugins": rows}, out, indent=2)
        out.write("\n")
        return 0 if not plugins.problems else 1
    from datetime import timedelta

    from normagent.config import format_duration

    for row in rows:
        state = "loaded" if row["loaded"] and not row["problems"] else ("disabled" if not row["problems"] else "BROKEN")
        # Printable: a plugin's name, version and texts are a third party's, or [plugins] extra's.
        print(printable(f"{row['name']} {row['version']} ({row['origin']}) {state}"), file=out)
        for c in row["collectors"]:
            every = format_duration(timedelta(seconds=c["interval"]))
            print(printable(f"  collector {c['name']:<28} every {every:<6} {c['help']}"), file=out)
        for kind in ("rules", "report_sections", "forwarders"):
            if row[kind]:
                print(printable(f"  {kind.replace('_', ' ')}: {', '.join(row[kind])}"), file=out)
        for problem in row["problems"]:
            print(printable(f"  problem: {problem}"), file=out)
    return 0 if not plugins.problems else 1


def parse_files(args: argparse.Namespace, out: TextIO) -> int:
    from normagent.agent import read_config
    from normagent.parsecmd import run_parse

    _quiet_logging()
    config, plugins = read_config(args.config)
    return run_parse(
        args.files,
        config=config,
        plugins=plugins,
        fmt=args.format,
        examples=args.examples,
        collectors=args.collector,
        out=out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
