"""The report document (``build.build_report``) as JSON, HTML, Markdown and PDF.

JSON is written canonically (sorted keys, two-space indent, UTF-8, one final newline): its SHA-256
is the one the other formats print in their signing header, so ``sha256sum report.json`` checks a
signed HTML or PDF against the data. HTML and Markdown come from Jinja2 templates
(``templates/``, autoescaped HTML); the HTML is self-contained — inline CSS, inline SVG charts, no
JavaScript, no external request — and prints on A4. PDF is that HTML printed by headless Chromium.

Imports Jinja2 and pygal (the ``report`` extra); Chromium is a program, found on PATH.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from normagent.errors import Unavailable, printable
from normagent.report import text as tx
from normagent.report.charts import trend_svg

FORMATS = ("html", "md", "json", "pdf")
SUFFIX = {"html": ".html", "md": ".md", "json": ".json", "pdf": ".pdf"}
SPARK = "▁▂▃▄▅▆▇█"
# Chromium must never reach the network: no background services, no proxy discovery, every host
# name resolving to nothing and every connection sent to a proxy that does not exist.
CHROMIUM_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-quic",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--hide-scrollbars",
    "--font-render-hinting=none",
)


def to_json(doc: Mapping[str, Any]) -> bytes:
    """The canonical bytes of the report: the source of truth, and what the SHA-256 is of."""
    return (json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


def sha256(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(to_json(doc)).hexdigest()


def _environment(markdown: bool = False) -> Any:
    """The templates' environment: the HTML autoescaped (its template is ``report.html.j2``, which
    ``select_autoescape`` takes for HTML only when told its extension), or, for the Markdown, every
    ``{{ value }}`` escaped as Markdown unless it is ``Markdown`` already (``md_row``, ``md_code``)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    escaping: dict[str, Any] = (
        {"autoescape": False, "finalize": lambda value: value if isinstance(value, Markdown) else md_text(value)}
        if markdown else {
            "autoescape": select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
            "finalize": html_text,
        }
    )
    return Environment(
        loader=PackageLoader("normagent.report", "templates"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        **escaping,
    )


# What CommonMark would read as markup in a value: emphasis, code, links and images, raw HTML, a
# table's cell separator; an underscore only at a word's edge (inside a word it is no emphasis).
_MD_MARKUP = re.compile(r"[\\`*\[\]<>|]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x85\u2028\u2029]+")


class Markdown(str):
    """Text that is Markdown already (a table row, a code span): the Markdown template's
    ``finalize`` leaves it as it is. Not markupsafe's ``Markup``, whose operations escape HTML."""


def html_text(value: object) -> object:
    """A value as the HTML shows it: text with its control characters and bidirectional overrides
    written out (``\\u001b``, ``\\u202e``), so a name from a log (a syslog tag any local user
    chooses with ``logger -t``) or a Prometheus label cannot reorder what the reader sees ("Trojan
    Source") or carry an escape sequence into the page, its PDF or a terminal. ``Markup`` (the
    charts) and numbers pass as they are; autoescaping follows."""
    if isinstance(value, str) and not hasattr(value, "__html__"):
        return printable(value)
    return value


def md_text(value: object) -> str:
    """A value as Markdown that reads as itself: a host, device or threat name from a log or a
    Prometheus label must not become a link, an image, HTML or a new table row in the report,
    nor bring a control character or a bidirectional override (see ``html_text``)."""
    return _MD_MARKUP.sub(lambda m: "\\" + m.group(), printable(_LINE_BREAKS.sub(" ", str(value))))


def md_code(value: object) -> Markdown:
    """A value as a Markdown code span (hashes, a PromQL matcher, a sparkline): fenced by more
    backticks than it holds in a row, so nothing in it ends the span."""
    text = printable(_LINE_BREAKS.sub(" ", str(value)))
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Markdown(f"{fence}{pad}{text}{pad}{fence}")


def md_row(cells: list[Any]) -> Markdown:
    """One row of a Markdown table, each cell's text escaped."""
    return Markdown("| " + " | ".join(md_text(c) for c in cells) + " |")


def _view(doc: Mapping[str, Any], charts: bool) -> dict[str, Any]:
    """What the templates see: the document, its words in its language, its hash and the charts."""
    lang = doc["lang"]
    words = dict(tx.TEXTS[lang])
    chart: dict[str, str] = {}
    spark: dict[str, str] = {}
    for h, host in enumerate(doc["hosts"]):
        for section in host["sections"]:
            for ind in section["indicators"]:
                key = f"{h}:{ind['id']}"
                spark[key] = sparkline(ind["trend"])
                if charts:
                    chart[key] = trend_svg(f"trend-{h}-{ind['id'].replace('.', '-')}", ind["trend"], ind["unit"], lang)
    return {
        "doc": doc,
        "t": words,
        "sha256": sha256(doc),
        "chart": chart,
        "spark": spark,
        "cell": lambda value: cell(value, lang),
        "missing_months": lambda trend: [p["label"] for p in trend if p["value"] is None],
        "hosts_text": ", ".join(h["name"] for h in doc["hosts"]),
    }


def cell(value: object, lang: str) -> str:
    """A table cell: numbers in the report's language, text as it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return tx.number(value, lang, 0 if float(value).is_integer() else 2)


def sparkline(trend: Any) -> str:
    """Twelve months as ``▁▃▅█·``: a dot where a month has no data."""
    values = [p["value"] for p in trend]
    known = [v for v in values if v is not None]
    top = max(known) if known else 0.0
    out = []
    for v in values:
        if v is None:
            out.append("·")
        elif top <= 0:
            out.append(SPARK[0])
        else:
            out.append(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))])
    return "".join(out)


def to_html(doc: Mapping[str, Any]) -> bytes:
    return str(_environment().get_template("report.html.j2").render(**_view(doc, charts=True))).encode("utf-8")


def to_markdown(doc: Mapping[str, Any]) -> bytes:
    view = _view(doc, charts=False) | {"row": md_row, "code": md_code}
    return str(_environment(markdown=True).get_template("report.md.j2").render(**view)).encode("utf-8")


def find_chromium(name: str = "chromium") -> str:
    """The Chromium program, or an ``Unavailable`` that says how to get it."""
    found = shutil.which(name) or next((shutil.which(n) for n in ("chromium-browser", "google-chrome") if name == "chromium" and shutil.which(n)), None)
    if not found:
        raise Unavailable(
            f"{name}: not found; PDF needs headless Chromium (Debian: apt-get install chromium), "
            "or write --format html and print it"
        )
    return found


def chromium_argv(program: str, profile: Path) -> list[str]:
    argv = [program, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    if os.geteuid() == 0:
        argv.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return argv


def html_to(html: bytes, fmt: str, program: str = "chromium", timeout: float = 120.0) -> bytes:
    """The HTML printed by headless Chromium: ``"pdf"`` (A4, from the page's CSS) or ``"png"``
    (the first screen at A4's proportions, for a look)."""
    binary = find_chromium(program)
    with tempfile.TemporaryDirectory(prefix="normagent-report-") as folder:
        where = Path(folder)
        page = where / "report.html"
        page.write_bytes(html)
        out = where / f"report.{fmt}"
        argv = chromium_argv(binary, where / "profile")
        if fmt == "pdf":
            argv += ["--no-pdf-header-footer", "--print-to-pdf-no-header", f"--print-to-pdf={out}"]
        else:
            argv += ["--window-size=1240,1754", f"--screenshot={out}"]
        argv.append(page.as_uri())
        try:
            done = subprocess.run(argv, capture_output=True, timeout=timeout, cwd=folder, env=_quiet_env(where), check=False)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"{binary} did not finish the {fmt.upper()} within {timeout:g} s") from None
        if not out.exists() or out.stat().st_size == 0:
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise Unavailable(f"{binary} made no {fmt.upper()} (exit {done.returncode}): {' / '.join(said) or 'no message'}")
        return out.read_bytes()


def _quiet_env(home: Path) -> dict[str, str]:
    """Chromium's environment: its own HOME (no profile of the user's), no proxy settings."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env["HOME"] = str(home)
    return env


def render(doc: Mapping[str, Any], fmt: str, chromium: str = "chromium", timeout: float = 120.0) -> bytes:
    """The report in ``fmt`` (``html``, ``md``, ``json`` or ``pdf``)."""
    if fmt == "json":
        return to_json(doc)
    if fmt == "md":
        return to_markdown(doc)
    html = to_html(doc)
    if fmt == "html":
        return html
    if fmt == "pdf":
        return html_to(html, "pdf", chromium, timeout)
    raise ValueError(f"unknown format {fmt!r}")
