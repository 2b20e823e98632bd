"""Every command's parser: argparse, its help laid out as argparse lays it out.

Imported by ``normagent.cli`` when a command line needs it; ``normagent run`` as the service starts
it never does (``cli.run_arguments``): argparse, gettext and these parsers would stay in the
agent's memory for as long as it runs (about 0.6 MB, issue 15).

Imports only the standard library and normagent.cli_options.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Any

from normagent.cli_options import add_demo_arguments, add_report_arguments

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
