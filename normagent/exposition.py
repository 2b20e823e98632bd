"""The scrape side: the ledger's committed snapshot as Prometheus metric families.

One custom collector on a private ``CollectorRegistry`` (never the global ``REGISTRY``) turns the
last committed snapshot into families. Nothing in the scrape path runs a source, takes a write lock
or touches the database. Because a snapshot is immutable, the encoded page is cached per snapshot
and format: a scrape between two commits costs a dictionary lookup.

Besides what collectors declare, it exports the agent's own health: per-collector
``normagent_collector_up``, ``…_duration_seconds``, ``…_last_success_timestamp_seconds``, per-plugin
``normagent_plugin_up`` and ``normagent_build_info``; and the HTTP server's counters
(``HTTP_METRICS``: refused requests, connections cut off), read live when the agent passes them;
they stay put while all is well, so the page cache still holds between commits.

Reads through the ledger; must not import scheduler, agent or cli.
"""

from __future__ import annotations

import gzip
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import CollectorRegistry

from normagent.forward import DEVIATIONS, OLDEST, PENDING
from normagent.ledger import Snapshot
from normagent.model import MetricSpec

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
FAMILY_TYPES = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}

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


class SnapshotCollector:
    """Expose the last committed state. Never runs a source collector."""

    def __init__(self, snapshots: Callable[[], Snapshot], view: Callable[[], ExpositionView]) -> None:
        self._snapshots = snapshots
        self._view = view

    def collect(self) -> Iterator[Metric]:
        return iter(families(self._snapshots(), self._view()))

    def describe(self) -> Iterable[Metric]:
        return ()  # no auto-describe: registering must not collect


def outbox_ages(snap: Snapshot, view: ExpositionView, now: float) -> tuple[tuple[str, int], ...]:
    """Whole seconds since the oldest waiting change of each configured forwarder was queued
    (0 when none waits): the one figure that moves without a commit, so part of the cache key."""
    ages = []
    for name in view.forwarders:
        stats = snap.outbox.get(name)
        oldest = stats.oldest if stats is not None else None
        ages.append((name, max(0, int(now - oldest)) if oldest is not None else 0))
    return tuple(ages)


def deviation_families(snap: Snapshot, view: ExpositionView, ages: Sequence[tuple[str, int]]) -> list[Metric]:
    """``normagent_deviations``, ``normagent_outbox_pending`` and ``…_oldest_seconds`` from the
    snapshot (the forwarders' counters are ordinary ledger counters, in ``view.metrics``)."""
    deviations = GaugeMetricFamily(DEVIATIONS.name, DEVIATIONS.help, labels=DEVIATIONS.labels)
    for state, severity in DEVIATIONS.preset:
        deviations.add_metric([state, severity], float(snap.deviations.get((state, severity), 0)))
    pending = GaugeMetricFamily(PENDING.name, PENDING.help, labels=PENDING.labels)
    oldest = GaugeMetricFamily(OLDEST.name, OLDEST.help, labels=OLDEST.labels)
    for name, age in ages:
        stats = snap.outbox.get(name)
        pending.add_metric([name], float(stats.pending if stats is not None else 0))
        oldest.add_metric([name], float(age))
    return [deviations, pending, oldest]


def families(snap: Snapshot, view: ExpositionView, now: float | None = None) -> list[Metric]:
    """Metric families for one snapshot: declared metrics (with presets at 0), deviations, then health."""
    out: list[Metric] = []
    for spec in sorted(view.metrics.values(), key=lambda s: s.name):
        family = FAMILY_TYPES[spec.kind](spec.name, spec.help, labels=spec.labels)
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
    up, duration, success = (GaugeMetricFamily(s.name, s.help, labels=s.labels) for s in HEALTH_METRICS[:3])
    for name in sorted(view.collectors):
        run = snap.runs.get(name)
        if run is None:
            continue  # not run yet: absent rather than a false 0
        up.add_metric([name], 1.0 if run.up else 0.0)
        duration.add_metric([name], run.duration)
        if run.last_success is not None:
            success.add_metric([name], run.last_success)
    plugin_spec, build_spec = HEALTH_METRICS[3], HEALTH_METRICS[4]
    plugin = GaugeMetricFamily(plugin_spec.name, plugin_spec.help, labels=plugin_spec.labels)
    for name, ok in sorted(view.plugins.items()):
        plugin.add_metric([name], 1.0 if ok else 0.0)
    build = GaugeMetricFamily(build_spec.name, build_spec.help, labels=build_spec.labels)
    build.add_metric([view.version, platform.python_version()], 1.0)
    out.extend([up, duration, success, plugin, build])
    return out


def http_families(stats: Mapping[str, int]) -> list[Metric]:
    """The HTTP server's counters (the fields of ``web.ServerStats``) as metric families."""
    out: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
    for spec in HTTP_METRICS:
        out[spec.name] = FAMILY_TYPES[spec.kind](spec.name, spec.help, labels=spec.labels)
    for name, label, field in _HTTP_SERIES:
        out[name].add_metric([label] if label is not None else [], float(stats.get(field, 0)))
    return list(out.values())


class _Families:
    """The registry interface the prometheus_client encoders need, over families already built."""

    def __init__(self, items: list[Metric]) -> None:
        self._items = items

    def collect(self) -> Iterable[Metric]:
        return self._items


def make_registry(snapshots: Callable[[], Snapshot], view: Callable[[], ExpositionView]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshots, view))
    return registry


class MetricsApp:
    """WSGI app for /metrics: content negotiation as prometheus_client does, cached per snapshot.

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
        body = encoder(_Families(items))
        if gzip_ok:
            body = gzip.compress(body, compresslevel=6)
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
