"""Exposition: the committed snapshot as Prometheus text, presets at 0, health, caching."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
from typing import Any

from normagent.exposition import HEALTH_METRICS, ExpositionView, MetricsApp, families
from normagent.ledger import Ledger
from normagent.model import Batch, Count, Gauge, RunOutcome
from tests.support.sample_plugin import EVENTS, LEVEL

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)


def view(collectors: tuple[str, ...] = ("sample.events", "sample.never")) -> ExpositionView:
    return ExpositionView(
        metrics={EVENTS.name: EVENTS, LEVEL.name: LEVEL},
        collectors=collectors,
        plugins={"sample": True, "broken": False},
        version="1.2.3",
    )


def scrape(app: MetricsApp, accept: str = "", encoding: str = "") -> tuple[str, dict[str, str], bytes]:
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(app({"REQUEST_METHOD": "GET", "HTTP_ACCEPT": accept, "HTTP_ACCEPT_ENCODING": encoding}, start_response))
    return got["status"], got["headers"], body


def test_exposition_matches_golden(ledger: Ledger, golden: Any) -> None:
    ledger.declare([EVENTS, LEVEL, *HEALTH_METRICS])
    ledger.commit("sample.events", Batch([Count(EVENTS.name, {"kind": "b"}, 3), Count(EVENTS.name, {"kind": "z"}), Gauge(LEVEL.name, 7)]))
    ledger.record_run(RunOutcome("sample.events", T0, 0.25, True))
    v = view()
    app = MetricsApp(ledger.snapshot, lambda: v)

    status, headers, body = scrape(app)

    assert status == "200 OK" and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode().replace(f'python="{__import__("platform").python_version()}"', 'python="X"')
    golden.check("exposition.prom", text)


def test_preset_series_exist_at_zero_before_anything_is_seen(ledger: Ledger) -> None:
    samples = [(s.labels["kind"], s.value) for f in families(ledger.snapshot(), view()) for s in f.samples if s.name == EVENTS.name]
    assert samples == [("a", 0.0), ("b", 0.0)]


def test_collectors_that_never_ran_have_no_health_series(ledger: Ledger) -> None:
    ledger.record_run(RunOutcome("sample.events", T0, 0.1, False, reason="timeout"))
    up = [s for f in families(ledger.snapshot(), view()) for s in f.samples if s.name == "normagent_collector_up"]
    assert [(s.labels, s.value) for s in up] == [({"collector": "sample.events"}, 0.0)]
    success = [s for f in families(ledger.snapshot(), view()) for s in f.samples if s.name.endswith("last_success_timestamp_seconds")]
    assert success == []  # it never succeeded


def test_pages_are_cached_per_snapshot_and_renewed_after_a_commit(ledger: Ledger) -> None:
    ledger.declare([EVENTS, LEVEL])
    v = view()
    app = MetricsApp(ledger.snapshot, lambda: v)
    first = scrape(app)[2]
    assert scrape(app)[2] is first  # same snapshot: the cached bytes

    ledger.commit("sample.events", Batch([Gauge(LEVEL.name, 9)]))

    assert b"normagent_sample_level 9.0" in scrape(app)[2]


def test_the_http_servers_counters_are_exposed_live_with_every_reason_at_zero(ledger: Ledger) -> None:
    stats = dict.fromkeys(("requests", "unauthorized", "errors", "tls_handshake_failures", "timed_out", "evicted",
                           "rejected_busy", "auth_throttled", "open_connections"), 0)
    v = view()
    app = MetricsApp(ledger.snapshot, lambda: v, lambda: stats)
    first_bytes = scrape(app)[2]
    first = first_bytes.decode()
    assert 'normagent_http_connections_cut_total{reason="evicted"} 0.0' in first
    assert 'normagent_http_requests_refused_total{reason="auth_throttled"} 0.0' in first
    stats.update(requests=5, open_connections=7)
    assert scrape(app)[2] is first_bytes  # requests answered do not defeat the page cache
    stats.update(evicted=3)
    second = scrape(app)[2].decode()  # same snapshot, a connection cut: rendered again
    assert 'normagent_http_connections_cut_total{reason="evicted"} 3.0' in second


def test_openmetrics_and_gzip_are_negotiated(ledger: Ledger) -> None:
    v = view()
    app = MetricsApp(ledger.snapshot, lambda: v)
    _, headers, body = scrape(app, accept="application/openmetrics-text; version=1.0.0", encoding="gzip")
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body).endswith(b"# EOF\n")


def test_only_get_and_head_are_allowed(ledger: Ledger) -> None:
    v = view()
    app = MetricsApp(ledger.snapshot, lambda: v)
    statuses = []
    app({"REQUEST_METHOD": "POST"}, lambda status, headers: statuses.append(status))
    assert statuses == ["405 Method Not Allowed"]
