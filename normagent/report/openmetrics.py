"""A ledger's history as OpenMetrics text, for ``promtool tsdb create-blocks-from openmetrics``.

What Prometheus would have scraped from this agent, hour by hour, had it been scraping all along:
every counter's value at the end of each hour the agent ran, each gauge's value then,
``normagent_build_info``, ``normagent_collector_up`` per collector (from the run history) and
``ALERTS`` for the deviation candidates that were firing (as the rules ``normagent rules export``
writes would have made them). A site whose Prometheus retention is shorter than the twelve months a
trend needs can backfill it from the agents' ledgers; the tests build their Prometheus this way.

One sample per series per hour, at the hour's last second: the report reads a counter at a month
boundary as its last sample within the hour before, which is then exactly the ledger's own sum of
hourly buckets.

Imports ledger types, model and report.data (for the run timeline).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from normagent.exposition import label_value
from normagent.model import Period
from normagent.report.data import UP, timeline

if TYPE_CHECKING:
    from normagent.ledger import Ledger

HOUR = 3600


def _labels(pairs: Mapping[str, str]) -> str:
    # As /metrics escapes them: OpenMetrics knows three escapes; JSON's "\t" or "\u001b" would be
    # read as those letters, and the series would not join the one Prometheus scraped.
    return "{" + ",".join(f'{k}="{label_value(str(v))}"' for k, v in sorted(pairs.items())) + "}"


def _num(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value)) if abs(value) < 2**53 else repr(float(value))


def export(
    ledger: Ledger,
    target: Mapping[str, str],
    until: datetime,
    intervals: Mapping[str, float],
    version: str = "",
    alert_rules: Collection[str] | None = None,
) -> Iterator[str]:
    """OpenMetrics lines of ``ledger``'s history up to ``until``, every series labelled with
    ``target`` (``{"instance": …, "job": …}``), ending with ``# EOF``. ``alert_rules``: the rules
    Prometheus evaluates (those ``normagent rules export`` writes); None: every candidate's."""
    first = ledger.first_hour()
    if first is None:
        yield "# EOF\n"
        return
    last = int(until.timestamp() // HOUR)
    period = Period(datetime.fromtimestamp(first * HOUR, timezone.utc), datetime.fromtimestamp(last * HOUR, timezone.utc))
    runs = ledger.run_hours(period)
    hours = list(range(first, last))
    alive = hours if not runs else [h for h in hours if any(h in per for per in runs.values())]
    alive_set = set(alive)

    def stamp(hour: int) -> str:
        return str(hour * HOUR + HOUR - 1)

    for metric in ledger.counter_metrics():
        family = metric[: -len("_total")] if metric.endswith("_total") else metric
        yield f"# TYPE {family} counter\n"
        for labels, total, buckets in ledger.counter_history(metric):
            value = total - sum(v for _, v in buckets)  # what it held before the oldest bucket kept
            by_hour = dict(buckets)
            name = _labels({**dict(labels), **target})
            for hour in sorted(alive_set | set(by_hour)):
                if hour >= last:
                    break
                value += by_hour.get(hour, 0.0)
                if hour in alive_set:
                    yield f"{metric}{name} {_num(value)} {stamp(hour)}\n"
    for metric, series in sorted(ledger.gauge_history().items()):
        yield f"# TYPE {metric} gauge\n"
        for labels, rows in series:
            name = _labels({**dict(labels), **target})
            changes = dict(rows)
            current: float | None = None
            start = min(changes)
            for hour in alive:
                if hour < start:
                    continue
                if hour in changes:
                    current = changes[hour]
                if current is not None:
                    yield f"{metric}{name} {_num(current)} {stamp(hour)}\n"
    yield "# TYPE normagent_build_info gauge\n"
    info = _labels({"version": version, **target})
    for hour in alive:
        yield f"normagent_build_info{info} 1 {stamp(hour)}\n"
    coverage = timeline(alive, runs, intervals)
    yield "# TYPE normagent_collector_up gauge\n"
    for name, row in sorted(coverage.collectors.items()):
        up_labels = _labels({"collector": name, **target})
        for hour, state in zip(alive, row):
            yield f"normagent_collector_up{up_labels} {1 if state == UP else 0} {stamp(hour)}\n"
    yield "# TYPE ALERTS gauge\n"
    for record in ledger.candidates_between(period):
        cand, doc = record.candidate, record.document or {}
        if cand.fired_at is None or (alert_rules is not None and cand.rule not in alert_rules):
            continue
        alert = _labels(
            {
                **dict(cand.labels),
                "alertname": cand.rule,
                "alertstate": "firing",
                "severity": cand.severity.label,
                "section": str(doc.get("section") or ""),
                "personal_data": "true" if (doc.get("personal_data") or cand.notify_by is not None) else "false",
                **target,
            }
        )
        begin = int(cand.fired_at.timestamp() // HOUR)
        end = int(cand.resolved_at.timestamp() // HOUR) if cand.resolved_at else last - 1
        for hour in range(begin, min(end, last - 1) + 1):
            yield f"ALERTS{alert} 1 {stamp(hour)}\n"
    yield "# EOF\n"
