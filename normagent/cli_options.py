"""The options of ``normagent report`` and ``normagent demo``, apart from the commands themselves.

``normagent.cli_parser`` builds every command's parser before it knows which command runs (and
``normagent run`` may be read by it: ``cli.run_arguments`` declines what it does not read): with
the options here, it imports neither the report's command module nor the demo's package (about
0.15 MB that a running agent would keep, issue 15). The commands import these names from here.

Imports only the standard library.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

DEMO_SEED = 14  # issue 14
DEMO_PORT = 9824


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--month", metavar="YYYY-MM", help="the month to report (default: last month, in [report] time_zone)")
    parser.add_argument("--year", metavar="YYYY", type=int, help="a yearly report instead (for the management review)")
    parser.add_argument("--format", choices=("html", "md", "json", "pdf"), default=None, help="output format (default: html)")
    parser.add_argument("--lang", choices=("nb", "en"), default=None, help="language: nb (bokmål) or en (default: [report] language)")
    parser.add_argument("--output", "-o", metavar="PATH", help="file to write, - for standard output, or a folder "
                        "(default: normagent-report-<month>-<host>.<format> here)")
    parser.add_argument("--send", action="store_true", help="deliver as [report] says: by e-mail (email, to) and/or into folder, in its formats")
    parser.add_argument("--export-history", action="store_true",
                        help="instead of a report: this ledger's history as OpenMetrics, for `promtool tsdb create-blocks-from "
                        "openmetrics` (backfills a Prometheus whose retention is shorter than a year)")
    parser.add_argument("--instance", metavar="NAME", help="with --export-history: the instance label (default: <host name>:9824)")
    fleet = parser.add_argument_group("fleet (from Prometheus)")
    fleet.add_argument("--prometheus-url", metavar="URL", help="build the report for every normagent Prometheus scrapes")
    fleet.add_argument("--match", metavar="SELECTOR", default="", help="only these hosts, e.g. '{job=\"normagent\"}'")
    fleet.add_argument("--host-label", type=label_name, default="instance", metavar="LABEL",
                       help="the label that names a host (default: instance)")
    fleet.add_argument("--prometheus-ca-file", type=Path, metavar="PATH", help="CA certificates to verify Prometheus's TLS certificate")
    fleet.add_argument("--prometheus-cert", type=Path, metavar="PATH", help="client certificate (PEM) for Prometheus")
    fleet.add_argument("--prometheus-key", type=Path, metavar="PATH", help="its key (PEM), if not in --prometheus-cert")
    fleet.add_argument("--prometheus-username", default="", metavar="USER", help="basic auth user")
    fleet.add_argument("--prometheus-password-file", type=Path, metavar="PATH", help="file holding the basic auth password")
    fleet.add_argument("--prometheus-timeout", type=query_timeout, default=60.0, metavar="SECONDS", help="per query (default 60)")


LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
QUERY_TIMEOUT_MAX = 86400.0


def label_name(text: str) -> str:
    """``--host-label``: a Prometheus label name (it goes into the PromQL the report sends)."""
    if not LABEL_NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Prometheus label name (letters, digits and _, e.g. instance)")
    return text


def query_timeout(text: str) -> float:
    """``--prometheus-timeout``: seconds, more than 0 and at most a day (requests refuses 0, NaN and
    what its clock cannot add)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= QUERY_TIMEOUT_MAX:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds, more than 0 and at most {QUERY_TIMEOUT_MAX:g}")
    return value


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, metavar="PATH",
                        help="build the clinic here (absent or empty; kept afterwards) instead of a temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (its path is printed)")
    parser.add_argument("--month", metavar="YYYY-MM", help="the month to simulate (default: last month)")
    parser.add_argument("--port", type=int, default=DEMO_PORT, metavar="N",
                        help=f"serve /metrics on 127.0.0.1:N (default {DEMO_PORT}; 0: any free port)")
    parser.add_argument("--no-serve", action="store_true", help="do not serve /metrics; end after the report")
    parser.add_argument("--lang", choices=("nb", "en"), default="nb", help="the report's language (default nb)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help=argparse.SUPPRESS)
