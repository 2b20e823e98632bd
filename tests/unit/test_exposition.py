"""Exposition: the committed snapshot as Prometheus text, presets at 0, health, caching."""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normagent.exposition import HEALTH_METRICS, ExpositionView, Family, MetricsApp, choose_encoder, families
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


def test_deviation_metrics_come_from_the_ledger_and_the_oldest_age_moves_with_the_clock(tmp_path: Path) -> None:
    """normagent_deviations by state and severity, and each configured forwarder's outbox: the
    oldest change's age is computed at the scrape, so a cached page never shows a stale one."""
    from datetime import timedelta

    from normagent.model import MetricSpec, RuleSpec
    from normagent.rules import Engine, EngineSettings, complete
    from normagent.testing import FakeClock

    up = MetricSpec("normagent_test_up", "gauge", "Up.")
    clock = FakeClock()
    with Ledger.open(tmp_path / "ledger.db", clock=clock) as ledger:
        ledger.declare([up])
        rule = RuleSpec(name="test.down", watch=up.name, comparison="<", threshold=1, summary="nede", section="Driftsstatus")
        ledger.use_rules(Engine([complete(rule, timedelta(0))], EngineSettings(host_id=ledger.host_id)), ["hook"])
        ledger.commit("c", Batch([Gauge(up.name, 0)]))
        view = ExpositionView(metrics={up.name: up}, collectors=[], plugins={}, version="1", forwarders=["hook", "mail"])
        now = [clock.now().timestamp() + 5]
        app = MetricsApp(ledger.snapshot, lambda: view, now=lambda: now[0])
        page = app.render()[0].decode()
        assert 'normagent_deviations{severity="warning",state="firing"} 1.0' in page
        assert 'normagent_outbox_pending{forwarder="hook"} 1.0' in page and 'normagent_outbox_pending{forwarder="mail"} 0.0' in page
        assert 'normagent_outbox_oldest_seconds{forwarder="hook"} 5.0' in page
        now[0] += 60
        assert 'normagent_outbox_oldest_seconds{forwarder="hook"} 65.0' in app.render()[0].decode()


# The encoders are the agent's own (prometheus_client costs the idle agent its import); this pins
# them byte for byte to prometheus_client's for every page the agent can produce: counters and
# gauges with names and labels that MetricSpec accepts, any help text and label value, any float.
ACCEPTS = (
    "",
    "text/plain",
    "text/plain; version=0.0.4",
    "text/plain; version=1.0.0",
    "text/plain; version=1.0.0; escaping=dots",
    "text/plain;version=1.0.0;escaping=values",
    "text/plain; version=1.0.0; escaping=allow-utf-8",
    "text/plain; version=1.0.0; escaping=bogus",
    "application/openmetrics-text",
    "application/openmetrics-text; version=0.0.1",
    "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text; version=1.0.0; escaping=dots",
    "application/openmetrics-text; version=1.0.0; escaping=values",
    "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8",
    "application/openmetrics-text;version=2.0.0",
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "application/json, text/plain;version=1.0.0;escaping=underscores",
)
_NAMES = st.from_regex(r"\A[a-zA-Z_:][a-zA-Z0-9_:]{0,12}\Z")
_LABELS = st.from_regex(r"\A[a-zA-Z][a-zA-Z0-9_]{0,8}\Z")
_VALUES = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**63), 2**63).map(float) | st.sampled_from([1e7, 1e21, 123456789.0, 0.1, 1e-5])


@st.composite
def _families(draw: st.DrawFn) -> list[tuple[str, str, str, tuple[str, ...], list[tuple[list[str], float]]]]:
    out = []
    for name in draw(st.lists(_NAMES, max_size=4, unique=True)):
        labels = tuple(draw(st.lists(_LABELS, max_size=3, unique=True)))
        series = draw(st.lists(st.tuples(st.lists(st.text(max_size=6), min_size=len(labels), max_size=len(labels)), _VALUES), max_size=3))
        out.append((name, draw(st.sampled_from(["counter", "gauge"])), draw(st.text(max_size=20)), labels, series))
    return out


@settings(max_examples=300, deadline=None)
@given(_families(), st.sampled_from(ACCEPTS))
def test_the_encoders_write_what_prometheus_client_writes(items: list[Any], accept: str) -> None:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.exposition import choose_encoder as theirs

    class Registry:
        def collect(self) -> list[Any]:
            out = []
            for name, kind, help_text, labels, series in items:
                family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, help_text, labels=labels)
                for values, value in series:
                    family.add_metric(values, value)
                out.append(family)
            return out

    ours_families = []
    for name, kind, help_text, labels, series in items:
        family = Family(name, kind, help_text, labels)
        for values, value in series:
            family.add_metric(values, value)
        ours_families.append(family)
    their_encoder, their_type = theirs(accept)
    our_encoder, our_type = choose_encoder(accept)
    assert our_type == their_type
    assert our_encoder(ours_families) == their_encoder(Registry())


def test_a_version_that_is_not_numbers_gets_the_classic_text_format() -> None:
    """prometheus_client 0.26 raises on ``version=x.y`` (a 500 for the scraper); the agent answers 0.0.4."""
    assert choose_encoder("text/plain; version=x.y")[1] == "text/plain; version=0.0.4; charset=utf-8"
    assert choose_encoder("application/openmetrics-text; version=1.x")[1] == "text/plain; version=0.0.4; charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/openmetrics-text; version=" + "9" * 5000, "application/openmetrics-text; version=" + "9" * 5000),
        ("text/plain; version=1.\u00b2.0", "text/plain; version=0.0.4"),  # "²": a digit to isdigit, not to int
        ("application/openmetrics-text; version=\u00b2, text/plain", "text/plain; version=0.0.4"),
    ],
)
def test_a_version_int_cannot_read_is_no_version_or_a_large_one_never_an_error(accept: str, content_type: str) -> None:
    """A version of 5,000 digits raised ``ValueError`` (int()'s 4,300-digit limit) out of the
    negotiation, and the scrape was a 500."""
    _, chosen = choose_encoder(accept)
    assert chosen.startswith(content_type)
