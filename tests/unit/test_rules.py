"""The rules engine: each kind of rule, the lifecycle of a candidate, texts, and the outbox rows a
change leaves, all through a real ledger with a fake clock."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from normagent.ledger import Ledger
from normagent.model import Batch, Count, Event, Gauge, MetricSpec, Rollup, RuleSpec, RuleText, Severity
from normagent.rules import (
    Engine,
    EngineSettings,
    complete,
    fingerprint,
    format_duration,
    format_number,
    format_span,
    idempotency_key,
    prometheus_rules,
    rule_problems,
)
from normagent.testing import FakeClock

FAILED = MetricSpec("normagent_test_failed_total", "counter", "Failed things.", ("source",))
RATIO = MetricSpec("normagent_test_ratio", "gauge", "A ratio.", ("mount",))
UP = MetricSpec("normagent_test_up", "gauge", "Up.")
AGE = MetricSpec("normagent_test_age_seconds", "gauge", "An age.", ("engine",))
HOLD = timedelta(minutes=10)


def engine_for(ledger: Ledger, *rules: RuleSpec, forwarders: tuple[str, ...] = ("hook",), **settings: Any) -> Engine:
    ledger.declare([FAILED, RATIO, UP, AGE])
    engine = Engine([complete(r, HOLD) for r in rules], EngineSettings(host_id=ledger.host_id, hold=HOLD, **settings))
    ledger.use_rules(engine, forwarders)
    return engine


BURST = RuleSpec(
    name="test.burst",
    watch=FAILED.name,
    comparison=">=",
    threshold=5,
    window=timedelta(hours=1),
    group_by=("source",),
    summary="Mange feil via {source}: {value} siste {window}, grense {threshold}.",
    section="Driftsstatus",
)


def states(ledger: Ledger) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    return sorted((c.rule, c.state, c.labels) for c in ledger.candidates())


def outbox(ledger: Ledger, forwarder: str = "hook") -> list[tuple[str, str]]:
    return [(row.key.rsplit("-", 2)[1], row.document["rule"]) for row in ledger.due_deliveries(forwarder, 1000)]


def test_a_counter_rule_fires_in_the_commit_that_brings_the_evidence(ledger: Ledger) -> None:
    """No timer needed: the batch that crosses the threshold leaves a firing candidate and its
    outbox row, stored with it."""
    engine_for(ledger, BURST)
    ledger.commit("c", Batch([Count(FAILED.name, {"source": "sshd"}, 4)]))
    assert states(ledger) == []
    ledger.commit("c", Batch([Count(FAILED.name, {"source": "sshd"}, 1)]))
    assert states(ledger) == [("test.burst", "firing", (("source", "sshd"),))]
    [row] = ledger.due_deliveries("hook")
    fp = fingerprint(ledger.host_id, "test.burst", (("source", "sshd"),))
    assert row.key == idempotency_key(fp, "firing", 1) == f"{fp}-firing-1"
    assert row.document["texts"]["nb"]["what"] == "Mange feil via sshd: 5 siste 1 time, grense 5."
    assert row.document["value"] == 5 and row.document["labels"] == {"source": "sshd"}


def test_a_rule_that_raises_never_costs_the_batch(ledger: Ledger, clock: FakeClock) -> None:
    """A broken evaluator is logged; the observations and checkpoint are committed all the same."""
    ledger.declare([FAILED])

    def broken(view: Any, touched: Any, now: Any) -> list[Any]:
        raise RuntimeError("bug in a rule")

    ledger.use_rules(broken, ("hook",))
    ledger.commit("c", Batch([Count(FAILED.name, {"source": "sshd"}, 9)]))
    assert ledger.counter_value(FAILED.name, {"source": "sshd"}) == 9
    with Ledger.open(ledger.path, clock=clock) as again:
        assert again.counter_value(FAILED.name, {"source": "sshd"}) == 9


def test_pending_until_for_passes_then_firing_then_resolved_after_the_hold(ledger: Ledger, clock: FakeClock) -> None:
    rule = RuleSpec(name="test.low", watch=RATIO.name, comparison="<", threshold=0.1, for_=timedelta(minutes=5),
                    group_by=("mount",), summary="Lite plass på {mount}: {value}.", section="Driftsstatus")
    engine_for(ledger, rule)
    ledger.commit("c", Batch([Gauge(RATIO.name, 0.05, {"mount": "/"})]))
    assert states(ledger) == [("test.low", "pending", (("mount", "/"),))]
    assert outbox(ledger) == []
    clock.advance(240)
    ledger.evaluate_rules()
    assert states(ledger)[0][1] == "pending"
    clock.advance(60)
    ledger.evaluate_rules()
    assert states(ledger)[0][1] == "firing"
    assert outbox(ledger) == [("firing", "test.low")]
    ledger.commit("c", Batch([Gauge(RATIO.name, 0.5, {"mount": "/"})]))
    assert states(ledger)[0][1] == "firing", "clear, but the hold time has not passed"
    clock.advance(HOLD.total_seconds())
    ledger.evaluate_rules()
    assert states(ledger)[0][1] == "resolved"
    keys = [row.key.split("-", 1)[1] for row in ledger.due_deliveries("hook", 10)]
    assert keys == ["firing-1"], "the resolution waits behind the firing change of the same fingerprint"


def test_a_pending_candidate_that_clears_is_forgotten(ledger: Ledger, clock: FakeClock) -> None:
    rule = RuleSpec(name="test.low", watch=RATIO.name, comparison="<", threshold=0.1, for_=timedelta(minutes=5),
                    group_by=("mount",), summary="x", section="Driftsstatus")
    engine_for(ledger, rule)
    ledger.commit("c", Batch([Gauge(RATIO.name, 0.05, {"mount": "/"})]))
    ledger.commit("c", Batch([Gauge(RATIO.name, 0.5, {"mount": "/"})]))
    assert states(ledger) == [] and outbox(ledger) == []


def test_flapping_within_the_hold_time_is_one_candidate_and_sends_nothing_more(ledger: Ledger, clock: FakeClock) -> None:
    rule = RuleSpec(name="test.down", watch=UP.name, comparison="<", threshold=1, summary="nede", section="Driftsstatus")
    engine_for(ledger, rule)
    for _ in range(5):
        ledger.commit("c", Batch([Gauge(UP.name, 0)]))
        clock.advance(60)
        ledger.commit("c", Batch([Gauge(UP.name, 1)]))
        clock.advance(60)
    cands = ledger.candidates()
    assert [(c.state, c.id) for c in cands] == [("firing", 1)]
    assert outbox(ledger) == [("firing", "test.down")]
    clock.advance(HOLD.total_seconds())
    ledger.evaluate_rules()
    ledger.commit("c", Batch([Gauge(UP.name, 0)]))
    assert [(c.state, c.id) for c in ledger.candidates()] == [("firing", 2), ("resolved", 1)]
    seqs = [(r.document["id"], r.sequence, r.key.split("-")[1]) for r in _all_rows(ledger)]
    assert seqs == [(1, 1, "firing"), (1, 2, "resolved"), (2, 3, "firing")], "one fingerprint: sequence goes on across episodes"


def _all_rows(ledger: Ledger) -> list[Any]:
    rows = []
    while True:
        due = ledger.due_deliveries("hook", 1000)
        if not due:
            return rows
        rows.extend(due)
        from normagent.ledger import AttemptResult

        ledger.record_attempts("hook", [AttemptResult(r.id, True) for r in due])


def test_state_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    rule = RuleSpec(name="test.low", watch=RATIO.name, comparison="<", threshold=0.1, for_=timedelta(minutes=5),
                    group_by=("mount",), summary="x", section="Driftsstatus")
    path = tmp_path / "ledger.db"
    with Ledger.open(path, clock=clock) as first:
        engine_for(first, rule)
        first.commit("c", Batch([Gauge(RATIO.name, 0.05, {"mount": "/"})]))
    clock.advance(300)
    with Ledger.open(path, clock=clock) as second:
        engine_for(second, rule)
        second.evaluate_rules()
        [cand] = second.candidates()
        assert cand.state == "firing" and cand.first_evidence == clock.now() - timedelta(seconds=300)


def test_personal_data_candidates_carry_a_deadline_72_hours_after_the_first_evidence(ledger: Ledger, clock: FakeClock) -> None:
    rule = RuleSpec(name="test.leak", watch=FAILED.name, comparison=">", threshold=0, window=timedelta(hours=1),
                    for_=timedelta(minutes=10), personal_data=True, summary="x", section="Driftsstatus")
    engine_for(ledger, rule)
    seen = clock.now()
    ledger.commit("c", Batch([Count(FAILED.name, {"source": "x"})]))
    clock.advance(600)
    ledger.evaluate_rules()
    [row] = ledger.due_deliveries("hook")
    assert row.document["notify_by"] == (seen + timedelta(hours=72)).isoformat().replace("+00:00", "Z")
    assert row.document["personal_data"] is True


def test_rollup_rule_with_preceded_by(ledger: Ledger, clock: FakeClock) -> None:
    """access.success_after_failures: a network that logged in fires only if it failed enough before."""
    rule = RuleSpec(name="test.success_after", watch="rollup:ok_by_net", comparison=">", threshold=0,
                    window=timedelta(days=1), group_by=("key",), preceded_by="rollup:failed_by_net", min_preceding=10,
                    summary="{key}: {value}", section="Driftsstatus")
    engine_for(ledger, rule)
    today, t0 = clock.now().date(), clock.now()
    ledger.commit("c", Batch([Rollup("failed_by_net", today, "aaaa", 12, t0, t0), Rollup("failed_by_net", today, "bbbb", 3, t0, t0)]))
    later = t0 + timedelta(minutes=1)
    ledger.commit("c", Batch([Rollup("ok_by_net", today, "aaaa", 1, later, later), Rollup("ok_by_net", today, "bbbb", 1, later, later),
                              Rollup("ok_by_net", today, "cccc", 1, later, later)]))
    assert states(ledger) == [("test.success_after", "firing", (("key", "aaaa"),))]


def test_a_success_before_the_failures_does_not_match(ledger: Ledger, clock: FakeClock) -> None:
    rule = RuleSpec(name="test.success_after", watch="rollup:ok_by_net", comparison=">", threshold=0,
                    window=timedelta(days=1), group_by=("key",), preceded_by="rollup:failed_by_net", min_preceding=10,
                    summary="{key}", section="Driftsstatus")
    engine_for(ledger, rule)
    t0 = clock.now()
    ledger.commit("c", Batch([Rollup("ok_by_net", t0.date(), "aaaa", 1, t0, t0)]))
    later = t0 + timedelta(minutes=5)
    ledger.commit("c", Batch([Rollup("failed_by_net", t0.date(), "aaaa", 50, later, later)]))
    assert states(ledger) == []


def test_event_rule_groups_by_attribute(ledger: Ledger, clock: FakeClock) -> None:
    rule = RuleSpec(name="test.changes", watch="event:rule_change", comparison=">", threshold=0, window=timedelta(hours=1),
                    group_by=("device",), summary="{device}: {value}", section="Sikkerhetsbarriere (brannmur)")
    engine_for(ledger, rule)
    ledger.commit("c", Batch([Event("rule_change", clock.now(), "e1", {"device": "fw1"})]))
    assert states(ledger) == [("test.changes", "firing", (("device", "fw1"),))]
    clock.advance(3601)
    ledger.evaluate_rules()
    clock.advance(HOLD.total_seconds())
    ledger.evaluate_rules()
    assert states(ledger) == [("test.changes", "resolved", (("device", "fw1"),))]


def test_absent_rule_and_collector_health(ledger: Ledger, clock: FakeClock) -> None:
    absent = RuleSpec(name="test.absent", watch=f"absent:{UP.name}", comparison=">", threshold=0, summary="borte",
                      section="Driftsstatus")
    down = RuleSpec(name="test.collector_down", watch="normagent_collector_up", comparison="<", threshold=1,
                    group_by=("collector",), summary="{collector} nede", section="Driftsstatus")
    engine_for(ledger, absent, down)
    ledger.evaluate_rules()
    assert states(ledger) == [("test.absent", "firing", ())]
    from normagent.model import RunOutcome

    ledger.record_run(RunOutcome("system.host", clock.now(), 0.1, False, reason="timeout"))
    ledger.commit("c", Batch([Gauge(UP.name, 1)]))
    ledger.evaluate_rules()
    assert ("test.collector_down", "firing", (("collector", "system.host"),)) in states(ledger)


def test_an_unchanged_counter_with_no_series_grew_by_zero(ledger: Ledger) -> None:
    """Absence of data as "fewer than 1 in the window": a counter nothing incremented grew by 0."""
    silent = RuleSpec(name="test.silent", watch=FAILED.name, comparison="<", threshold=1, window=timedelta(hours=1),
                      summary="stille", section="Driftsstatus")
    engine_for(ledger, silent)
    ledger.evaluate_rules()
    assert states(ledger) == [("test.silent", "firing", ())]


def test_groups_beyond_the_bound_are_gathered_in_one_candidate(ledger: Ledger, clock: FakeClock) -> None:
    rule = RuleSpec(name="test.per_key", watch="rollup:failed", comparison=">=", threshold=1, window=timedelta(days=1),
                    group_by=("key",), summary="{key}", section="Driftsstatus")
    engine_for(ledger, rule, max_candidates=3)
    now = clock.now()
    ledger.commit("c", Batch([Rollup("failed", now.date(), f"k{i:02d}", i + 1, now, now) for i in range(10)]))
    labels = sorted(dict(c.labels)["key"] for c in ledger.candidates())
    assert labels == ["k08", "k09", "other"]


def test_a_rule_no_longer_configured_is_resolved_by_the_full_evaluation(ledger: Ledger, clock: FakeClock) -> None:
    engine_for(ledger, BURST)
    ledger.commit("c", Batch([Count(FAILED.name, {"source": "sshd"}, 9)]))
    engine_for(ledger)  # reload without the rule
    ledger.evaluate_rules()
    [cand] = ledger.candidates()
    assert cand.state == "resolved"


def test_retuned_threshold_and_severity_apply(ledger: Ledger) -> None:
    from normagent.rules import configured_rule

    tuned = configured_rule("test.burst", {"threshold": 2.0, "severity": "critical"}, BURST)
    engine_for(ledger, tuned)
    ledger.commit("c", Batch([Count(FAILED.name, {"source": "sshd"}, 2)]))
    [row] = ledger.due_deliveries("hook")
    assert row.document["severity"] == "critical" and row.document["threshold"] == 2


def test_every_text_has_both_languages_and_section_defaults() -> None:
    rule = complete(BURST, HOLD)
    assert rule.cia == ("tilgjengelighet",) and rule.owner == "IKT-leder"
    assert rule.text_nb is not None and rule.text_nb.title == "Mange feil via {source}"
    assert rule.text_en is not None and "{value}" in rule.text_en.what and rule.text_en.consequence


@pytest.mark.parametrize(
    ("value", "nb", "en"), [(12, "12", "12"), (0.0734, "0,07", "0.07"), (12000, "12\u00a0000", "12,000"), (float("nan"), "–", "–")]
)
def test_numbers_in_texts(value: float, nb: str, en: str) -> None:
    assert (format_number(value, "nb"), format_number(value, "en")) == (nb, en)


@pytest.mark.parametrize(
    ("seconds", "nb", "en"),
    [
        (14 * 86400, "14 døgn", "14 days"),
        (5400, "1 time 30 minutter", "1 hour 30 minutes"),
        (86400 + 3600 + 61, "1 døgn 1 time", "1 day 1 hour"),
        (2 * 86400 + 300, "2 døgn", "2 days"),  # the next unit is 0: no "0 timer 5 minutter"
        (1800.4, "30 minutter", "30 minutes"),
        (45, "45 sekunder", "45 seconds"),
        (1, "1 sekund", "1 second"),
        (-2 * 86400, "-2 døgn", "-2 days"),  # a certificate that expired two days ago
        (float("inf"), "–", "–"),
    ],
)
def test_durations_in_texts(seconds: float, nb: str, en: str) -> None:
    assert (format_duration(seconds, "nb"), format_duration(seconds, "en")) == (nb, en)


def test_a_value_in_seconds_reads_as_a_duration(ledger: Ledger) -> None:
    """Signatures 4 days old read "4 døgn", not "345 600"; the threshold too, and in the
    Prometheus annotation Prometheus' own humanizeDuration does it."""
    rule = RuleSpec(name="test.old", watch=AGE.name, comparison=">", threshold=3 * 86400, group_by=("engine",),
                    summary="Definisjonene er {value} gamle, grense {threshold}.", section="Ondsinnet programvare",
                    text_en=RuleText("Old", "The definitions are {value} old, threshold {threshold}."))
    engine_for(ledger, rule)
    ledger.commit("c", Batch([Gauge(AGE.name, 4 * 86400 + 7200, {"engine": "clamav"})]))
    [row] = ledger.due_deliveries("hook")
    assert row.document["texts"]["nb"]["what"] == "Definisjonene er 4 døgn 2 timer gamle, grense 3 døgn."
    assert row.document["texts"]["en"]["what"] == "The definitions are 4 days 2 hours old, threshold 3 days."
    assert row.document["value"] == 4 * 86400 + 7200, "the number itself stays a number"
    text, _ = prometheus_rules([complete(rule, HOLD)], {AGE.name: ("gauge", ("engine",))})
    assert 'summary: "Definisjonene er {{ $value | humanizeDuration }} gamle, grense 3 døgn."' in text


def test_spans_in_texts() -> None:
    assert format_span(timedelta(hours=1), "nb") == "1 time"
    assert format_span(timedelta(days=2), "en") == "2 days"
    assert format_span(timedelta(minutes=90), "nb") == "90 minutter"


def test_rule_problems_name_the_key() -> None:
    metrics = {FAILED.name: FAILED.labels, RATIO.name: RATIO.labels}
    bad = RuleSpec(name="site.x", watch="normagent_test_faild_total", comparison=">", threshold=1, summary="{nope}")
    assert rule_problems(bad, metrics) == [
        ("watch", "unknown metric 'normagent_test_faild_total' (did you mean \"normagent_test_failed_total\"?): no enabled plugin declares it"),
        ("summary", "unknown field {nope}: a text may use {for}, {threshold}, {value}, {window}"),
    ]
    wrong_label = RuleSpec(name="site.y", watch=FAILED.name, comparison=">", threshold=1, window=timedelta(hours=1),
                           labels={"user": "x"}, group_by=("source", "host"), summary="")
    assert [k for k, _ in rule_problems(wrong_label, metrics)] == ["labels.user", "group_by[1]"]


@pytest.mark.parametrize(
    ("summary", "problem"),
    [
        ("{value:>999999999}", "{value:>999999999}: write {value}, without a format (the values come formatted)"),  # 1 GB a candidate
        ("{value!r}", "{value!r}: write {value}, without a format (the values come formatted)"),
        ("{window:{value}}", "{window:{value}}: write {window}, without a format (the values come formatted)"),
        ("{} feil", "{} names no field"),
    ],
)
def test_a_text_with_a_format_spec_a_conversion_or_no_field_name_is_refused(summary: str, problem: str) -> None:
    rule = RuleSpec(name="site.x", watch=FAILED.name, comparison=">", threshold=1, window=timedelta(hours=1), summary=summary)
    assert rule_problems(rule, {FAILED.name: FAILED.labels}) == [("summary", f"not a valid template: {problem}")]


def test_prometheus_export_skips_what_only_the_ledger_keeps() -> None:
    rollup = RuleSpec(name="test.per_key", watch="rollup:failed", comparison=">=", threshold=1, window=timedelta(days=1),
                      group_by=("key",), summary="{key}", section="Driftsstatus")
    text, skipped = prometheus_rules([complete(BURST, HOLD), complete(rollup, HOLD)], {FAILED.name: ("counter", ("source",))})
    assert skipped == ["test.per_key"]
    assert 'expr: "increase(normagent_test_failed_total[1h]) >= 5"' in text
    assert "keep_firing_for: 10m" in text


def test_the_same_text_with_personal_fields_cannot_be_written() -> None:
    """A template can only use the rule's numbers and group labels (closed sets and pseudonyms)."""
    rule = RuleSpec(name="site.x", watch=FAILED.name, comparison=">", threshold=1, window=timedelta(hours=1),
                    summary="ok", text_en=RuleText("t", "{username} failed"))
    assert rule_problems(rule, {FAILED.name: FAILED.labels})[0][0] == "summary_en"


def test_severity_label() -> None:
    assert Severity.CRITICAL.label == "critical"


def test_rollup_days_outside_the_window_do_not_count(ledger: Ledger, clock: FakeClock) -> None:
    rule = RuleSpec(name="test.per_key", watch="rollup:failed", comparison=">=", threshold=5, window=timedelta(days=1),
                    group_by=("key",), summary="{key}", section="Driftsstatus")
    engine_for(ledger, rule)
    old = clock.now() - timedelta(days=3)
    ledger.commit("c", Batch([Rollup("failed", date.fromordinal(old.date().toordinal()), "k", 50, old, old)]))
    assert states(ledger) == []


def test_a_candidate_change_and_its_outbox_rows_are_stored_together_or_not_at_all(ledger: Ledger) -> None:
    """The outbox refuses a row (a trigger stands in for bad luck): the firing candidate is not
    stored either, while the batch's own counts are; the next evaluation stores both."""
    engine_for(ledger, BURST)
    ledger._conn.execute("CREATE TEMP TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'outbox refused'); END")
    ledger.commit("c", Batch([Count(FAILED.name, {"source": "sshd"}, 9)]))
    assert ledger.counter_value(FAILED.name, {"source": "sshd"}) == 9
    assert ledger.candidates() == [] and ledger.due_deliveries("hook") == []
    ledger._conn.execute("DROP TRIGGER refuse")
    ledger.evaluate_rules()
    assert states(ledger) == [("test.burst", "firing", (("source", "sshd"),))]
    assert outbox(ledger) == [("firing", "test.burst")]


def test_pruning_forgets_old_candidates_but_never_reuses_a_sequence(ledger: Ledger, clock: FakeClock) -> None:
    """After retention has removed a resolved candidate and its delivered changes, the same
    fingerprint firing again goes on with the next sequence: no idempotency key names two changes."""
    rule = RuleSpec(name="test.down", watch=UP.name, comparison="<", threshold=1, summary="nede", section="Driftsstatus",
                    hold=timedelta(0))
    engine_for(ledger, rule)
    ledger.commit("c", Batch([Gauge(UP.name, 0)]))
    ledger.commit("c", Batch([Gauge(UP.name, 1)]))
    _all_rows(ledger)  # delivered: firing-1, resolved-2
    clock.advance(86400 * 2)
    assert ledger.prune_deviations(clock.now() - timedelta(days=1)) == 3  # two outbox rows and the candidate
    assert ledger.candidates() == []
    ledger.commit("c", Batch([Gauge(UP.name, 0)]))
    [row] = ledger.due_deliveries("hook")
    assert row.key.endswith("-firing-3")


def test_a_collector_that_no_longer_runs_is_not_down(ledger: Ledger, clock: FakeClock) -> None:
    from normagent.model import RunOutcome

    down = RuleSpec(name="test.collector_down", watch="normagent_collector_up", comparison="<", threshold=1,
                    group_by=("collector",), summary="{collector} nede", section="Driftsstatus")
    engine = Engine([complete(down, HOLD)], EngineSettings(host_id=ledger.host_id))
    ledger.record_run(RunOutcome("edi.messages", clock.now(), 0.1, False, reason="timeout"))
    ledger.use_rules(engine, ["hook"], collectors=["system.host"])  # edi.messages was disabled since
    ledger.evaluate_rules()
    assert states(ledger) == []
    ledger.use_rules(engine, ["hook"], collectors=["system.host", "edi.messages"])
    ledger.evaluate_rules()
    assert states(ledger) == [("test.collector_down", "firing", (("collector", "edi.messages"),))]
