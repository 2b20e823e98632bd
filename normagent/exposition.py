"""The scrape side: the ledger's committed snapshot as Prometheus metric families, encoded here.

The last committed snapshot becomes families of counters and gauges, written in the Prometheus
text format (0.0.4, or 1.0.0 when asked) or OpenMetrics 1.0, with the content negotiation of
prometheus_client 0.26 and byte for byte its output for these two types (a property test compares
the two). prometheus_client itself is not imported: with the HTTP server, WSGI, urllib and e-mail
modules it pulls in, it cost the idle agent some 3 MB resident for two short functions (counters
and gauges are all the agent exports). Nothing in the scrape path runs a source, takes a write
lock or touches the database. Because a snapshot is immutable, the encoded page is cached per snapshot
and format: a scrape between two commits costs a dictionary lookup.

Besides what collectors declare, it exports the agent's own health: per-collector
``normagent_collector_up``, ``…_duration_seconds``, ``…_last_success_timestamp_seconds``, per-plugin
``normagent_plugin_up`` and ``normagent_build_info``; and the HTTP server's counters
(``HTTP_METRICS``: refused requests, connections cut off), read live when the agent passes them;
they stay put while all is well, so the page cache still holds between commits.

Reads through the ledger; must not import scheduler, agent or cli.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from normagent.forward import DEVIATIONS, OLDEST, PENDING
from normagent.ledger import Snapshot
from normagent.model import MetricSpec
from normagent.records import dataclass

# platform.python_version() without ``platform`` (0.1 MB for one string): the leading word of
# sys.version, as platform parses it ("3.11.7", "3.13.0rc1").
PYTHON_VERSION = sys.version.split(maxsplit=1)[0]

HEALTH_METRICS = (
    MetricSpec(
        "normagent_collector_up",
        "gauge",
        "1 if the collector's last run succeeded (no data counts as success), 0 if it failed or timed out.",
        ("collector",),
        section="Agent",
    ),
    MetricSpec(
        "normagent_collector_duration_seconds",
        "gauge",
        "How long the collector's last run took.",
        ("collector",),
        section="Agent",
    ),
    MetricSpec(
        "normagent_collector_last_success_timestamp_seconds",
        "gauge",
        "Unix time the collector last finished a run successfully.",
        ("collector",),
        section="Agent",
    ),
    MetricSpec("normagent_plugin_up", "gauge", "1 if the plugin loaded and offered valid data, else 0.", ("plugin",), section="Agent"),
    MetricSpec("normagent_build_info", "gauge", "Always 1; labels tell the normagent and Python versions.", ("version", "python"), section="Agent"),
)

# The HTTP server's own counters (``web.ServerStats``), read live, not from the ledger: they start
# at 0 with the server (a reload that changes [web] starts a new one; Prometheus sees a reset).
# Only counters that stay put while all is well: the page cache is keyed by them, and a request
# counter would make every scrape render the page afresh.
HTTP_METRICS = (
    MetricSpec(
        "normagent_http_requests_refused_total",
        "counter",
        "HTTP requests refused: unauthorized (wrong or no basic-auth password, 401), "
        "auth_throttled (too many password checks waiting from that address, 503).",
        ("reason",),
        section="Agent",
        preset=(("unauthorized",), ("auth_throttled",)),
    ),
    MetricSpec(
        "normagent_http_connections_cut_total",
        "counter",
        "HTTP connections ended by the agent: timed_out (handshake, request or answer not done within "
        "request_timeout), evicted (closed to make room: max_connections were open), rejected_busy (refused: "
        "every place was being served), tls_handshake_failed.",
        ("reason",),
        section="Agent",
        preset=(("timed_out",), ("evicted",), ("rejected_busy",), ("tls_handshake_failed",)),
    ),
    MetricSpec("normagent_http_request_errors_total", "counter", "HTTP requests answered 500 (see the log).", section="Agent"),
)
_HTTP_SERIES = (  # (metric, label value or None, ServerStats field)
    ("normagent_http_requests_refused_total", "unauthorized", "unauthorized"),
    ("normagent_http_requests_refused_total", "auth_throttled", "auth_throttled"),
    ("normagent_http_connections_cut_total", "timed_out", "timed_out"),
    ("normagent_http_connections_cut_total", "evicted", "evicted"),
    ("normagent_http_connections_cut_total", "rejected_busy", "rejected_busy"),
    ("normagent_http_connections_cut_total", "tls_handshake_failed", "tls_handshake_failures"),
    ("normagent_http_request_errors_total", None, "errors"),
)


@dataclass(frozen=True)
class ExpositionView:
    """What the scrape side needs to know besides the snapshot: declared metrics, active collectors,
    plugin health. Swapped as a whole on reload."""

    metrics: Mapping[str, MetricSpec]
    collectors: Sequence[str]
    plugins: Mapping[str, bool]
    version: str
    forwarders: Sequence[str] = ()


# --------------------------------------------------------------------------------------------
# Families and their text


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of a family: its full name (a counter's ends in ``_total``), labels and value."""

    name: str
    labels: dict[str, str]
    value: float


class Family:
    """A counter or gauge family: its series as (label values in ``labels`` order, value)."""

    __slots__ = ("name", "kind", "help", "labels", "series")

    def __init__(self, name: str, kind: str, help: str, labels: Sequence[str] = ()) -> None:
        # A counter family is named without ``_total`` (OpenMetrics); its series carry it.
        self.name = name[:-6] if kind == "counter" and name.endswith("_total") else name
        self.kind = kind
        self.help = help
        self.labels = tuple(labels)
        self.series: list[tuple[Sequence[str], float]] = []

    def add_metric(self, values: Sequence[str], value: float) -> None:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name}: {len(values)} label values for labels {list(self.labels)}")
        self.series.append((values, float(value)))

    @property
    def sample_name(self) -> str:
        return self.name + "_total" if self.kind == "counter" else self.name

    @property
    def samples(self) -> list[Sample]:
        return [Sample(self.sample_name, dict(zip(self.labels, values)), value) for values, value in self.series]


UNDERSCORES, DOTS, VALUES, ALLOW_UTF8 = "underscores", "dots", "values", "allow-utf-8"
CONTENT_TYPE_TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_TEXT_1_0_0 = "text/plain; version=1.0.0; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_LEGACY_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LEGACY_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def gzipped(body: bytes) -> bytes:
    """``body`` as a gzip member (RFC 1952), from zlib directly: the gzip module is not worth
    its resident memory in every agent for this one call. Level 6, as prometheus_client
    compresses; the header's time is 0, which RFC 1952 allows."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 16+15: the gzip header and trailer
    return packer.compress(body) + packer.flush()


def go_float(value: float) -> str:
    """A float as Prometheus' Go client writes it (``+Inf``, ``NaN``, exponent from 1e+07 on)."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value != value:
        return "NaN"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def label_value(text: str) -> str:
    """A label value as the text formats and OpenMetrics escape it: backslash, line
    feed and double quote, and nothing else (a tab or an ESC goes in as it is)."""
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _legacy_rune(char: str, index: int, metric: bool) -> bool:
    return "a" <= char <= "z" or "A" <= char <= "Z" or char == "_" or ("0" <= char <= "9" and index > 0) or (metric and char == ":")


def _escape(text: str, escaping: str, metric: bool) -> str:
    """Characters outside the legacy set under an escaping scheme (prometheus_client's ``_escape``)."""
    if escaping == ALLOW_UTF8:
        return label_value(text)
    if escaping == DOTS:
        return "".join("__" if c == "_" else "_dot_" if c == "." else c if _legacy_rune(c, i, metric) else "__" for i, c in enumerate(text))
    if escaping == VALUES:
        return "U__" + "".join("__" if c == "_" else c if _legacy_rune(c, i, metric) else f"_{ord(c):x}_" for i, c in enumerate(text))
    return "".join(c if _legacy_rune(c, i, metric) else "_" for i, c in enumerate(text))


def escape_name(name: str, escaping: str, metric: bool = True) -> str:
    """A metric (or label) name under the Accept header's escaping scheme, as prometheus_client 0.26
    writes it: ``dots`` doubles underscores; the others change only names outside the legacy set
    (which MetricSpec refuses, so for the agent's own names only ``dots`` matters)."""
    if not name:
        return name
    valid = (_LEGACY_NAME if metric else _LEGACY_LABEL).match(name) is not None
    if escaping == ALLOW_UTF8:
        return name if valid else '"' + _escape(name, escaping, metric) + '"'
    if escaping == DOTS or not valid:
        return _escape(name, escaping, metric)
    return name


def _label_text(family: Family, values: Sequence[str], escaping: str) -> str:
    if not family.labels:
        return ""
    pairs = sorted(zip(family.labels, values))
    return "{" + ",".join(f'{escape_name(k, escaping, metric=False)}="{label_value(v)}"' for k, v in pairs) + "}"


def encode_text(items: Iterable[Family], escaping: str = UNDERSCORES) -> bytes:
    """The Prometheus text format (0.0.4; 1.0.0 differs only in the names an escaping changes)."""
    out: list[str] = []
    for family in items:
        name = escape_name(family.sample_name, escaping)
        help_text = family.help.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {family.kind}\n")
        for values, value in family.series:
            out.append(f"{name}{_label_text(family, values, escaping)} {go_float(value)}\n")
    return "".join(out).encode("utf-8")


def encode_openmetrics(items: Iterable[Family], escaping: str = UNDERSCORES) -> bytes:
    """OpenMetrics 1.0 text: counters named without ``_total``, series with it; ``# EOF`` at the end."""
    out: list[str] = []
    for family in items:
        name = escape_name(family.name, escaping)
        out.append(f"# HELP {name} {label_value(family.help)}\n# TYPE {name} {family.kind}\n")
        # Series names are escaped with the label rune set (no ":"), whether valid or not, as
        # prometheus_client's OpenMetrics encoder does (so "values" always prefixes ``U__``).
        sample = family.sample_name if escaping == ALLOW_UTF8 else _escape(family.sample_name, escaping, metric=False)
        for values, value in family.series:
            out.append(f"{sample}{_label_text(family, values, escaping)} {go_float(value)}\n")
    out.append("# EOF\n")
    return "".join(out).encode("utf-8")


Encoder = Callable[[Iterable[Family]], bytes]


def _parameter(tokens: Sequence[str], key: str) -> str:
    for token in tokens:
        if "=" in token:
            name, value = token.strip().split("=", 1)
            if name == key:
                return value
    return ""


def _escaping(tokens: Sequence[str]) -> str:
    value = next((t.strip().split("=", 1)[1] for t in tokens if "=" in t and t.strip().split("=", 1)[0] == "escaping"), None)
    return value if value in (ALLOW_UTF8, UNDERSCORES, DOTS, VALUES) else UNDERSCORES


def _at_least_1(version: str) -> bool:
    parts: list[int] = []
    for part in version.split("."):
        if not (part.isascii() and part.isdigit()):
            return False  # not a version we know how to compare ("²" is a digit to isdigit, not to int)
        parts.append(int(part) if len(part) <= 18 else 10**18)  # int() refuses 4,300 digits
    return tuple(parts) >= (1, 0, 0)


def choose_encoder(accept: str) -> tuple[Encoder, str]:
    """The encoder and content type for an Accept header, as prometheus_client 0.26 chooses them:
    the first acceptable OpenMetrics (version 1.0.0 or later, or none given) or text/plain 1.0.0+
    entry wins; otherwise the text format 0.0.4."""
    for accepted in (accept or "").split(","):
        tokens = accepted.split(";")
        media = tokens[0].strip()
        if media == "application/openmetrics-text":
            version, escaping = _parameter(tokens, "version"), _escaping(tokens)
            if not version:
                return encode_openmetrics, CONTENT_TYPE_OPENMETRICS
            if _at_least_1(version):
                return (lambda items: encode_openmetrics(items, escaping)), (
                    f"application/openmetrics-text; version={version}; charset=utf-8; escaping={escaping}")
        elif media == "text/plain":
            version, escaping = _parameter(tokens, "version"), _escaping(tokens)
            if version and _at_least_1(version):
                return (lambda items: encode_text(items, escaping)), f"{CONTENT_TYPE_TEXT_1_0_0}; escaping={escaping}"
    return encode_text, CONTENT_TYPE_TEXT_0_0_4


def gzip_accepted(accept_encoding: str) -> bool:
    return any(part.split(";")[0].strip().lower() == "gzip" for part in (accept_encoding or "").split(","))


def outbox_ages(snap: Snapshot, view: ExpositionView, now: float) -> tuple[tuple[str, int], ...]:
    """Whole seconds since the oldest waiting change of each configured forwarder was queued
    (0 when none waits): the one figure that moves without a commit, so part of the cache key."""
    ages = []
    for name in view.forwarders:
        stats = snap.outbox.get(name)
        oldest = stats.oldest if stats is not None else None
        ages.append((name, max(0, int(now - oldest)) if oldest is not None else 0))
    return tuple(ages)


def deviation_families(snap: Snapshot, view: ExpositionView, ages: Sequence[tuple[str, int]]) -> list[Family]:
    """``normagent_deviations``, ``normagent_outbox_pending`` and ``…_oldest_seconds`` from the
    snapshot (the forwarders' counters are ordinary ledger counters, in ``view.metrics``)."""
    deviations = Family(DEVIATIONS.name, "gauge", DEVIATIONS.help, DEVIATIONS.labels)
    for state, severity in DEVIATIONS.preset:
        deviations.add_metric([state, severity], float(snap.deviations.get((state, severity), 0)))
    pending = Family(PENDING.name, "gauge", PENDING.help, PENDING.labels)
    oldest = Family(OLDEST.name, "gauge", OLDEST.help, OLDEST.labels)
    for name, age in ages:
        stats = snap.outbox.get(name)
        pending.add_metric([name], float(stats.pending if stats is not None else 0))
        oldest.add_metric([name], float(age))
    return [deviations, pending, oldest]


def families(snap: Snapshot, view: ExpositionView, now: float | None = None) -> list[Family]:
    """Metric families for one snapshot: declared metrics (with presets at 0), deviations, then health."""
    out: list[Family] = []
    for spec in sorted(view.metrics.values(), key=lambda s: s.name):
        family = Family(spec.name, spec.kind, spec.help, spec.labels)
        values = snap.values(spec.name)
        for preset in spec.preset:
            key = tuple(sorted(zip(spec.labels, preset)))
            if key not in values:
                family.add_metric(list(preset), 0.0)
        for labels, value in sorted(values.items()):
            as_dict = dict(labels)
            family.add_metric([as_dict.get(name, "") for name in spec.labels], value)
        out.append(family)
    out.extend(deviation_families(snap, view, outbox_ages(snap, view, time.time() if now is None else now)))
    up, duration, success = (Family(s.name, "gauge", s.help, s.labels) for s in HEALTH_METRICS[:3])
    for name in sorted(view.collectors):
        run = snap.runs.get(name)
        if run is None:
            continue  # not run yet: absent rather than a false 0
        up.add_metric([name], 1.0 if run.up else 0.0)
        duration.add_metric([name], run.duration)
        if run.last_success is not None:
            success.add_metric([name], run.last_success)
    plugin_spec, build_spec = HEALTH_METRICS[3], HEALTH_METRICS[4]
    plugin = Family(plugin_spec.name, "gauge", plugin_spec.help, plugin_spec.labels)
    for name, ok in sorted(view.plugins.items()):
        plugin.add_metric([name], 1.0 if ok else 0.0)
    build = Family(build_spec.name, "gauge", build_spec.help, build_spec.labels)
    build.add_metric([view.version, PYTHON_VERSION], 1.0)
    out.extend([up, duration, success, plugin, build])
    return out


def http_families(stats: Mapping[str, int]) -> list[Family]:
    """The HTTP server's counters (the fields of ``web.ServerStats``) as metric families."""
    out: dict[str, Family] = {}
    for spec in HTTP_METRICS:
        out[spec.name] = Family(spec.name, spec.kind, spec.help, spec.labels)
    for name, label, field in _HTTP_SERIES:
        out[name].add_metric([label] if label is not None else [], float(stats.get(field, 0)))
    return list(out.values())


class MetricsApp:
    """WSGI app for /metrics: content negotiation as prometheus_client's, cached per snapshot.

    The cache key is the snapshot object itself (plus format and compression), so a new commit or a
    reload (a new view) makes the next scrape render afresh, and nothing is ever served stale.
    """

    def __init__(
        self,
        snapshots: Callable[[], Snapshot],
        view: Callable[[], ExpositionView],
        http_stats: Callable[[], Mapping[str, int] | None] = lambda: None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._snapshots = snapshots
        self._view = view
        self._http_stats = http_stats
        self._now = now
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, bool], bytes] = {}
        self._cache_for: tuple[Snapshot, ExpositionView, tuple[tuple[str, int], ...]] | None = None

    def _cached_for(self, snap: Snapshot, view: ExpositionView, http: tuple[tuple[str, int], ...]) -> bool:
        cached = self._cache_for
        return cached is not None and cached[0] is snap and cached[1] is view and cached[2] == http

    def render(self, accept: str = "", gzip_ok: bool = False) -> tuple[bytes, str]:
        """The page for an Accept header: (body, content type)."""
        encoder, content_type = choose_encoder(accept)
        snap, view, stats = self._snapshots(), self._view(), self._http_stats()
        now = self._now()
        http = tuple((field, stats.get(field, 0)) for _, _, field in _HTTP_SERIES) if stats is not None else ()
        # An outbox's oldest age moves with the clock: part of the key (it is () when none waits).
        http += outbox_ages(snap, view, now)
        key = (content_type, gzip_ok)
        with self._lock:
            if self._cached_for(snap, view, http):
                body = self._cache.get(key)
                if body is not None:
                    return body, content_type
            else:
                self._cache = {}
                self._cache_for = (snap, view, http)
        items = families(snap, view, now)
        if stats is not None:
            items = [*items, *http_families(stats)]
        body = encoder(items)
        if gzip_ok:
            body = gzipped(body)
        with self._lock:
            if self._cached_for(snap, view, http):
                self._cache[key] = body
        return body, content_type

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")])
            return [b"use GET\n"]
        gzip_ok = gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", ""))
        body, content_type = self.render(environ.get("HTTP_ACCEPT", ""), gzip_ok)
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if gzip_ok:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [b"" if method == "HEAD" else body]
