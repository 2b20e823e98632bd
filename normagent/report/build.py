"""``build_report``: the report as data (a JSON document), before any rendering.

The document is the source of truth: HTML, Markdown and PDF are drawn from it alone, and its
SHA-256 (of the bytes ``render.to_json`` writes) is what the data controller signs against. Its
shape is documented in ``report.schema.json`` beside this module.

For each host, in the factsheet's order:

1. the summary for management: a status per area (green, yellow, red by the deviation rules'
   thresholds, i.e. by the candidates they raised; unknown where data is missing), the three things
   that most need a decision, what changed since last month;
2. data completeness: per collector the share of the period it ran and succeeded, the gaps in
   which the agent did not run at all;
3. the sections, each with its key figures (this month, last month, the twelve months up to this
   one) and what its plugin writes; the deviations and their follow-up as the second area.

A value that cannot be known is ``null`` and shown as missing, never as 0: a month in which the
host has no data at all has no figures. A section whose collectors did not cover the whole period
says so in its heading.

Imports model, data and text; the plugins' sections come in as ``ReportSection`` values.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, Protocol

import structlog

from normagent.model import Event, Indicator, Period, ReportData, ReportSection, Rollup
from normagent.records import dataclass
from normagent.report import text as tx
from normagent.report.data import ABSENT, UP, Alert, Coverage, HostSource

log = structlog.get_logger(__name__)

SCHEMA = "normagent-report/1"
DEVIATIONS_ORDER = 20
UNKNOWN_BELOW = 0.5  # an area whose data covers less of the period than this has status unknown
DECIDE_INCOMPLETE_BELOW = 0.95
WORSE_FACTOR = 1.5
WORSE_MINIMUM = {"count": 10.0, "seconds": 3600.0}
MAX_CHANGES = 10


class ProgressSink(Protocol):
    def start(self, total: int, what: str) -> None: ...

    def advance(self, steps: int = 1) -> None: ...

    def close(self) -> None: ...


class Progress:
    """Told of each unit of work done (a host, a section); the CLI draws a bar or logs lines.
    This one does nothing."""

    def start(self, total: int, what: str) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class ReportPeriod:
    """The period a report is about, in the report's time zone (a month or a year)."""

    kind: str  # "month" or "year"
    first: date  # its first day
    zone: tzinfo
    zone_name: str

    @classmethod
    def month(cls, year: int, month: int, zone: tzinfo, zone_name: str) -> ReportPeriod:
        return cls("month", date(year, month, 1), zone, zone_name)

    @classmethod
    def year(cls, year: int, zone: tzinfo, zone_name: str) -> ReportPeriod:
        return cls("year", date(year, 1, 1), zone, zone_name)

    def _at(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=self.zone).astimezone(timezone.utc)

    def span(self) -> Period:
        return Period(self._at(self.first), self._at(self.next_first()))

    def next_first(self) -> date:
        return add_months(self.first, 12 if self.kind == "year" else 1)

    def previous(self) -> ReportPeriod:
        return ReportPeriod(self.kind, add_months(self.first, -12 if self.kind == "year" else -1), self.zone, self.zone_name)

    def months(self) -> list[tuple[date, Period]]:
        """The twelve months up to the end of the period (a year: its own months)."""
        end = self.next_first()
        firsts = [add_months(end, -12 + i) for i in range(12)]
        return [(first, Period(self._at(first), self._at(add_months(first, 1)))) for first in firsts]

    def label(self, lang: str) -> str:
        return str(self.first.year) if self.kind == "year" else tx.month_name(self.first, lang)

    def name(self) -> str:
        return f"{self.first.year}" if self.kind == "year" else f"{self.first.year}-{self.first.month:02d}"


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def last_month(now: datetime, zone: tzinfo) -> tuple[int, int]:
    """The month before the one ``now`` is in, in ``zone`` (what the timer on the 1st reports)."""
    local = now.astimezone(zone)
    first = add_months(date(local.year, local.month, 1), -1)
    return first.year, first.month


@dataclass(frozen=True)
class ReportContext:
    """What a report is built from besides its data."""

    period: ReportPeriod
    sections: Sequence[ReportSection]
    lang: str = "nb"
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    version: str = ""
    config_fingerprint: str = ""
    intervals: Mapping[str, float] = field(default_factory=dict)  # enabled collector → interval (s)
    source: Mapping[str, Any] = field(default_factory=dict)  # {"kind": "ledger"} or {"kind": "prometheus", "url": …}


def build_report(ctx: ReportContext, hosts: Sequence[HostSource], progress: ProgressSink | None = None, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """The report for ``hosts`` (one: a host's report; several: a fleet's, with a fleet summary)."""
    progress = progress if progress is not None else Progress()
    lang = ctx.lang
    span = ctx.period.span()
    prev = ctx.period.previous()
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "lang": lang,
        "kind": ctx.period.kind,
        "title": tx.text(lang, "title_year" if ctx.period.kind == "year" else "title"),
        "period": _period_json(ctx.period, lang),
        "previous": _period_json(prev, lang),
        "generated_at": _iso(ctx.generated_at),
        "generated_at_text": tx.date_time(ctx.generated_at, lang, ctx.period.zone),
        "agent_version": ctx.version,
        "config_fingerprint": ctx.config_fingerprint,
        "source": dict(ctx.source),
        "warnings": list(warnings),
        "hosts": [],
        "fleet": None,
    }
    progress.start(len(hosts), "hosts" if len(hosts) > 1 else "sections")
    for host in hosts:
        doc["hosts"].append(_host(ctx, host, span, prev, progress if len(hosts) == 1 else None))
        if len(hosts) > 1:
            progress.advance()
    progress.close()
    if len(hosts) > 1:
        doc["fleet"] = _fleet(doc["hosts"], lang)
    doc["has_data"] = any(h["has_data"] for h in doc["hosts"])
    doc["warnings"] = list(dict.fromkeys([*warnings]))
    return doc


def _period_json(period: ReportPeriod, lang: str) -> dict[str, Any]:
    span = period.span()
    last_day = period.next_first() - timedelta(days=1)
    return {
        "name": period.name(),
        "label": period.label(lang),
        "start": _iso(span.start),
        "end": _iso(span.end),
        "first_day": tx.long_date(period.first, lang),
        "last_day": tx.long_date(last_day, lang),
        "time_zone": period.zone_name,
    }


# ------------------------------------------------------------------------------------------------
# one host


def _host(ctx: ReportContext, source: HostSource, span: Period, prev: ReportPeriod, progress: ProgressSink | None) -> dict[str, Any]:
    lang = ctx.lang
    coverage = source.coverage(span, ctx.intervals)
    has_data = source.has_data(span)
    completeness = _completeness(coverage, lang, ctx.period.zone)
    notes = [tx.text(lang, key, **fields) for key, fields in source.notes()]
    if not has_data:
        notes.insert(0, tx.text(lang, "no_data_period"))
    alerts = source.alerts(span)
    unknown = tx.text(lang, source.alerts_unknown)
    months = ctx.period.months()
    month_has_data = {first: source.has_data(p) for first, p in months}
    prev_span = prev.span()
    prev_has_data = source.has_data(prev_span)

    data = FiniteData(source.data)
    sections: list[dict[str, Any]] = []
    ordered = sorted(ctx.sections, key=lambda s: (s.order, s.id))
    if progress is not None:
        progress.start(len(ordered) + 1, "sections")
    deviations_done = False
    for section in ordered:
        if not deviations_done and section.order >= DEVIATIONS_ORDER + 10:
            sections.append(_deviations(alerts, lang, ctx.period.zone, source.keeps_details, unknown))
            deviations_done = True
        sections.append(
            _section(section, data, ctx, span, prev_span, has_data, prev_has_data, months, month_has_data, coverage)
        )
        if progress is not None:
            progress.advance()
    if not deviations_done:
        sections.append(_deviations(alerts, lang, ctx.period.zone, source.keeps_details, unknown))
    if progress is not None:
        progress.advance()
    if data.left_out:
        notes.append(tx.text(lang, "not_finite", metrics=", ".join(sorted(data.left_out))))

    areas = _areas(sections, alerts, completeness, lang, has_data, unknown)
    prev_areas: dict[int, str] = {}
    if prev_has_data:
        prev_cov = source.coverage(prev_span, ctx.intervals)
        prev_sections = [
            {"area": tx.area_of(s.order), "plugin": s.plugin, "completeness": _section_share(s.plugin, _completeness(prev_cov, lang, ctx.period.zone))}
            for s in ordered
        ]
        prev_areas = {
            a["area"]: a["status"]
            for a in _areas(prev_sections, source.alerts(prev_span), _completeness(prev_cov, lang, ctx.period.zone), lang, True, unknown)
        }
    summary = {
        "areas": areas,
        "status_rule": tx.text(lang, "status_rule"),
        "decisions": _decisions(alerts, areas, sections, lang, ctx.period.zone),
        "changes": _changes(sections, areas, prev_areas, lang),
    }
    return {
        "id": source.host.id,
        "name": source.host.name,
        "location": source.host.location,
        "has_data": has_data,
        "notes": notes,
        "summary": summary,
        "completeness": completeness,
        "sections": sections,
    }


class FiniteData:
    """``ReportData`` with what is no number left out: a NaN or an infinity (an SNMP device's
    answer read as a float, a ledger or a Prometheus series holding one, a counter grown past
    what a float holds) stopped the HTML and Markdown with a traceback and made the JSON invalid
    (``NaN``, ``Infinity``). Each metric or rollup it came from is named in ``left_out`` (the
    report's notes say so), and logged."""

    def __init__(self, inner: ReportData) -> None:
        self._inner = inner
        self.left_out: set[str] = set()

    def _finite(self, name: str, values: Mapping[tuple[str, ...], float]) -> Mapping[tuple[str, ...], float]:
        if all(math.isfinite(v) for v in values.values()):
            return values
        if name not in self.left_out:
            log.warning("report_value_not_finite", metric=name)
            self.left_out.add(name)
        return {k: v for k, v in values.items() if math.isfinite(v)}

    def increase(self, metric: str, period: Period, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        return self._finite(metric, self._inner.increase(metric, period, by))

    def gauge(self, metric: str, at: datetime, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        return self._finite(metric, self._inner.gauge(metric, at, by))

    def rollups(self, name: str, period: Period) -> Sequence[Rollup]:
        rows = self._inner.rollups(name, period)
        kept = [r for r in rows if math.isfinite(r.value)]
        if len(kept) != len(rows):
            self._finite(name, {(): math.nan})  # named and logged as a metric is
        return kept

    def events(self, kind: str, period: Period) -> Sequence[Event]:
        return self._inner.events(kind, period)


def _section(
    section: ReportSection,
    data: ReportData,
    ctx: ReportContext,
    span: Period,
    prev_span: Period,
    has_data: bool,
    prev_has_data: bool,
    months: Sequence[tuple[date, Period]],
    month_has_data: Mapping[date, bool],
    coverage: Coverage,
) -> dict[str, Any]:
    lang = ctx.lang
    out: dict[str, Any] = {
        "id": section.id,
        "plugin": section.plugin,
        "order": section.order,
        "area": tx.area_of(section.order),
        "title": (section.title_en or section.title) if lang == "en" else section.title,
        "text_lang": "nb",
        "indicators": [],
        "paragraphs": [],
        "tables": [],
        "error": None,
    }
    share, missing = _collectors_of(section.plugin, coverage)
    out["completeness"] = share
    out["incomplete_collectors"] = missing
    out["incomplete"] = has_data and coverage.known and share is not None and share < 1.0
    out["no_data"] = not has_data
    for indicator in section.indicators:
        out["indicators"].append(_indicator(indicator, data, ctx, span, prev_span, has_data, prev_has_data, months, month_has_data))
    if not has_data:
        return out
    try:
        content = section.build(data, span)
    except Exception as exc:  # a plugin's bug must not cost the whole report; it is named in it
        log.error("report_section_failed", section=section.id, error=type(exc).__name__, exc_info=True)
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
        return out
    out["paragraphs"] = [str(p) for p in content.paragraphs]
    out["tables"] = [
        {"caption": t.caption, "columns": [str(c) for c in t.columns], "rows": [[_cell(v) for v in row] for row in t.rows]}
        for t in content.tables
    ]
    return out


def _cell(value: object) -> str | int | float:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def _indicator(
    indicator: Indicator,
    data: ReportData,
    ctx: ReportContext,
    span: Period,
    prev_span: Period,
    has_data: bool,
    prev_has_data: bool,
    months: Sequence[tuple[date, Period]],
    month_has_data: Mapping[date, bool],
) -> dict[str, Any]:
    lang = ctx.lang

    def measure(period: Period, known: bool) -> float | None:
        if not known:
            return None
        if indicator.kind == "gauge":
            values = data.gauge(indicator.metric, period.end, by=tuple(indicator.labels))
        else:
            values = data.increase(indicator.metric, period, by=tuple(indicator.labels))
        want = tuple(indicator.labels.values())
        return float(sum(v for k, v in values.items() if k == want))

    trend = []
    for first, period in months:
        amount = measure(period, month_has_data.get(first, False))
        trend.append({"month": f"{first.year}-{first.month:02d}", "label": tx.short_month(first, lang), "value": amount})
    this = measure(span, has_data)
    last = measure(prev_span, prev_has_data)
    return {
        "id": indicator.id,
        "metric": indicator.metric,
        "title": indicator.title_en if lang == "en" else indicator.title,
        "unit": indicator.unit,
        "kind": indicator.kind,
        "this": this,
        "last": last,
        "this_text": tx.value(this, indicator.unit, lang),
        "last_text": tx.value(last, indicator.unit, lang),
        "trend": trend,
    }


def _collectors_of(plugin: str, coverage: Coverage) -> tuple[float | None, list[str]]:
    """The least share among the collectors of ``plugin`` (named ``<plugin>.<thing>``), and those short of the whole period."""
    shares = {}
    for name, row in coverage.collectors.items():
        if name.split(".")[0] == plugin and row:
            shares[name] = sum(1 for s in row if s == UP) / len(row)
    if not shares:
        return None, []
    return min(shares.values()), sorted(n for n, v in shares.items() if v < 1.0)


def _section_share(plugin: str, completeness: Mapping[str, Any]) -> float | None:
    shares = [c["share"] for c in completeness["collectors"] if c["name"].split(".")[0] == plugin]
    return min(shares) if shares else None


# ------------------------------------------------------------------------------------------------
# completeness


def _completeness(coverage: Coverage, lang: str, zone: tzinfo) -> dict[str, Any]:
    total = len(coverage.hours)
    collectors = []
    for name, row in sorted(coverage.collectors.items()):
        up = sum(1 for s in row if s == UP)
        absent = sum(1 for s in row if s == ABSENT)
        runs, failures = coverage.runs.get(name, (None, None))
        share = up / total if total else 0.0
        collectors.append(
            {
                "name": name,
                "share": share,
                "share_text": tx.percent(share, lang),
                "hours_up": up,
                "hours_down": total - up - absent,
                "hours_absent": absent,
                "runs": runs,
                "failures": failures,
            }
        )
    gaps = []
    start = None
    for index, (hour, alive) in enumerate(zip(coverage.hours, coverage.alive)):
        if not alive and start is None:
            start = hour
        if start is not None and (alive or index == total - 1):
            end = hour if alive else hour + 1
            gaps.append(_gap(start, end, lang, zone))
            start = None
    alive_share = (sum(coverage.alive) / total) if total and coverage.known else None
    return {
        "known": coverage.known,
        "hours": total,
        "share": alive_share,
        "share_text": tx.percent(alive_share, lang) if alive_share is not None else tx.text(lang, "unknown"),
        "collectors": collectors,
        "gaps": gaps if coverage.known else [],
    }


def _gap(start: int, end: int, lang: str, zone: tzinfo) -> dict[str, Any]:
    a = datetime.fromtimestamp(start * 3600, timezone.utc)
    b = datetime.fromtimestamp(end * 3600, timezone.utc)
    return {
        "start": _iso(a),
        "end": _iso(b),
        "hours": end - start,
        "start_text": tx.date_time(a, lang, zone),
        "end_text": tx.date_time(b, lang, zone),
        "length_text": tx.duration((end - start) * 3600, lang),
    }


# ------------------------------------------------------------------------------------------------
# deviations


def _deviations(alerts: list[Alert] | None, lang: str, zone: tzinfo, details: bool, unknown: str) -> dict[str, Any]:
    title = tx.text(lang, "deviations")
    out: dict[str, Any] = {
        "id": "deviations",
        "plugin": "",
        "order": DEVIATIONS_ORDER,
        "area": DEVIATIONS_ORDER,
        "title": title,
        "text_lang": lang,
        "indicators": [],
        "paragraphs": [tx.text(lang, "deviations_intro")],
        "tables": [],
        "error": None,
        "completeness": None,
        "incomplete_collectors": [],
        "incomplete": False,
        "no_data": alerts is None,
    }
    if alerts is None:
        out["paragraphs"].append(unknown + ".")
        out["deviations"] = None
        return out
    raised = len(alerts)
    acknowledged = sum(1 for a in alerts if a.acks)
    still_open = sum(1 for a in alerts if a.open_at_end)
    deadline = sum(1 for a in alerts if a.personal_data)
    out["deviations"] = {"raised": raised, "acknowledged": acknowledged if details else None, "open": still_open, "deadline_72h": deadline}
    counts = [
        (tx.text(lang, "raised"), raised),
        (tx.text(lang, "acknowledged"), acknowledged if details else "–"),
        (tx.text(lang, "open"), still_open),
        (tx.text(lang, "deadline_72h"), deadline),
    ]
    out["tables"].append({"caption": "", "columns": [tx.text(lang, "rule"), tx.text(lang, "count")], "rows": [list(r) for r in counts]})
    if not alerts:
        out["paragraphs"].append(tx.text(lang, "no_deviations"))
        return out
    severity = tx.SEVERITY[lang]
    rows = []
    for a in alerts:
        title_text = (a.title_en if lang == "en" else a.title_nb) or a.rule
        mark = " (72 t)" if lang == "nb" and a.personal_data else " (72 h)" if a.personal_data else ""
        rows.append(
            [
                str(a.id) if a.id is not None else "–",
                title_text + mark,
                severity.get(a.severity, a.severity),
                tx.area_name(tx.area_of_rule_section(a.section), lang),
                _when(a.fired_at, lang, zone),
                _when(a.resolved_at, lang, zone) if a.resolved_at else (tx.text(lang, "open") if a.open_at_end else "–"),
                (_when(a.acked_at, lang, zone) if a.acked_at else tx.text(lang, "no")) if details else "–",
                _when(a.notify_by, lang, zone) if a.notify_by else ("72 t" if lang == "nb" else "72 h") if a.personal_data else "",
            ]
        )
    out["tables"].append(
        {
            "caption": tx.text(lang, "deviations"),
            "columns": [tx.text(lang, k) for k in ("candidate", "rule", "severity", "area", "fired", "resolved", "followed_up", "notify_by")],
            "rows": rows,
        }
    )
    out["items"] = [
        {
            "id": a.id,
            "rule": a.rule,
            "title": (a.title_en if lang == "en" else a.title_nb) or a.rule,
            "severity": a.severity,
            "area": tx.area_of_rule_section(a.section),
            "personal_data": a.personal_data,
            "fired_at": _iso(a.fired_at),
            "resolved_at": _iso(a.resolved_at),
            "open_at_end": a.open_at_end,
            "acknowledged_at": _iso(a.acked_at),
            "acks": a.acks if details else None,
            "notify_by": _iso(a.notify_by),
        }
        for a in alerts
    ]
    return out


def _when(moment: datetime | None, lang: str, zone: tzinfo) -> str:
    return tx.date_time(moment, lang, zone) if moment is not None else "–"


# ------------------------------------------------------------------------------------------------
# the summary


def _areas(
    sections: Sequence[Mapping[str, Any]], alerts: list[Alert] | None, completeness: Mapping[str, Any], lang: str, has_data: bool,
    unknown: str,
) -> list[dict[str, Any]]:
    codes = sorted({int(s["area"]) for s in sections} | {DEVIATIONS_ORDER})
    out = []
    for code in codes:
        shares = [s["completeness"] for s in sections if s["area"] == code and s.get("completeness") is not None]
        share = min(shares) if shares else None
        status, why = _status(code, alerts, share, has_data, completeness, lang, unknown)
        out.append(
            {
                "area": code,
                "title": tx.area_name(code, lang),
                "status": status,
                "status_text": tx.text(lang, status),
                "why": why,
                "completeness": share,
                "incomplete": share is not None and share < 1.0 and bool(completeness.get("known")),
                "completeness_text": tx.percent(share, lang) if share is not None else "",
            }
        )
    return out


def _status(
    code: int, alerts: list[Alert] | None, share: float | None, has_data: bool, completeness: Mapping[str, Any], lang: str,
    unknown: str,
) -> tuple[str, str]:
    if not has_data:
        return "unknown", tx.text(lang, "no_data")
    if alerts is None:
        return "unknown", unknown
    if code == DEVIATIONS_ORDER:
        waiting = [a for a in alerts if a.open_at_end and not a.acks]
        if any(a.personal_data or a.severity == "critical" for a in waiting):
            return "red", tx.text(lang, "status_why_open")
        if waiting:
            return "yellow", tx.text(lang, "status_why_open")
        return "green", tx.text(lang, "status_why_followed")
    if completeness.get("known") and share is not None and share < UNKNOWN_BELOW:
        return "unknown", tx.text(lang, "status_why_unknown")
    mine = [a for a in alerts if tx.area_of_rule_section(a.section) == code]
    if any(a.severity == "critical" or a.personal_data for a in mine):
        return "red", tx.text(lang, "status_why_red")
    if any(a.severity != "info" for a in mine):
        return "yellow", tx.text(lang, "status_why_yellow")
    return "green", tx.text(lang, "status_why_green")


def _decisions(
    alerts: list[Alert] | None, areas: Sequence[Mapping[str, Any]], sections: Sequence[Mapping[str, Any]], lang: str, zone: tzinfo
) -> list[str]:
    """At most three, most pressing first: a possible personal-data breach, a critical deviation,
    open deviations nobody followed up, an area with incomplete data, a figure that rose sharply."""
    found: list[str] = []
    waiting = [a for a in (alerts or []) if a.open_at_end and not a.acks]
    # A possible personal-data breach needs the decision whether to notify, resolved or not.
    unanswered = [a for a in (alerts or []) if a.personal_data and not a.acks]
    for a in sorted(unanswered, key=lambda a: (a.notify_by or datetime.max.replace(tzinfo=timezone.utc))):
        if a.personal_data:
            deadline = _when(a.notify_by, lang, zone) if a.notify_by else "72 t" if lang == "nb" else "72 h"
            found.append(tx.text(lang, "decision_72h", title=(a.title_en if lang == "en" else a.title_nb) or a.rule, deadline=deadline))
    for a in waiting:
        if a.severity == "critical" and not a.personal_data:
            found.append(
                tx.text(lang, "decision_critical", area=tx.area_name(tx.area_of_rule_section(a.section), lang),
                        title=(a.title_en if lang == "en" else a.title_nb) or a.rule)
            )
    per_area: dict[int, int] = {}
    for a in waiting:
        if a.severity != "critical" and not a.personal_data:
            code = tx.area_of_rule_section(a.section)
            per_area[code] = per_area.get(code, 0) + 1
    for code, count in sorted(per_area.items(), key=lambda kv: (-kv[1], kv[0])):
        found.append(tx.text(lang, "decision_open", count=str(count), area=tx.area_name(code, lang)))
    for area in areas:
        if area["completeness"] is not None and area["completeness"] < DECIDE_INCOMPLETE_BELOW and area["incomplete"]:
            found.append(tx.text(lang, "decision_incomplete", area=area["title"], share=area["completeness_text"]))
    worse = []
    for section in sections:
        for ind in section["indicators"]:
            this, last = ind["this"], ind["last"]
            if this is None or last is None:
                continue
            if this - last >= WORSE_MINIMUM.get(ind["unit"], 10.0) and this >= last * WORSE_FACTOR:
                worse.append(((this + 1) / (last + 1), ind))
    for _, ind in sorted(worse, key=lambda w: -w[0]):
        found.append(tx.text(lang, "decision_worse", title=ind["title"], before=ind["last_text"], after=ind["this_text"]))
    return found[:3]


def _changes(
    sections: Sequence[Mapping[str, Any]], areas: Sequence[Mapping[str, Any]], before: Mapping[int, str], lang: str
) -> list[str]:
    out = []
    for area in areas:
        old = before.get(area["area"])
        if old is not None and old != area["status"]:
            out.append(tx.text(lang, "status_changed", area=area["title"], before=tx.text(lang, old), after=area["status_text"]))
    moved = []
    for section in sections:
        for ind in section["indicators"]:
            this, last = ind["this"], ind["last"]
            if this is None or last is None or this == last:
                continue
            moved.append((abs(this - last) / max(abs(last), 1.0), ind))
    for _, ind in sorted(moved, key=lambda m: (-m[0], m[1]["id"]))[:MAX_CHANGES]:
        out.append(tx.text(lang, "change_up", title=ind["title"], before=ind["last_text"], after=ind["this_text"]))
    return out


# ------------------------------------------------------------------------------------------------
# fleet


def _fleet(hosts: Sequence[Mapping[str, Any]], lang: str) -> dict[str, Any]:
    codes = sorted({a["area"] for h in hosts for a in h["summary"]["areas"]})
    rows = []
    for h in hosts:
        status = {a["area"]: a["status"] for a in h["summary"]["areas"]}
        rows.append(
            {
                "name": h["name"],
                "has_data": h["has_data"],
                "share": h["completeness"]["share"],
                "share_text": h["completeness"]["share_text"],
                "status": {str(code): status.get(code, "unknown") for code in codes},
                "open": (next((s.get("deviations") or {} for s in h["sections"] if s["id"] == "deviations"), {}) or {}).get("open"),
            }
        )
    worst = {str(code): _worst([r["status"][str(code)] for r in rows]) for code in codes}
    return {
        "areas": [{"area": code, "title": tx.area_name(code, lang), "status": worst[str(code)], "status_text": tx.text(lang, worst[str(code)])} for code in codes],
        "hosts": rows,
    }


def _worst(states: Sequence[str]) -> str:
    for state in ("red", "yellow", "unknown", "green"):
        if state in states:
            return state
    return "unknown"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def month_days(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


ProgressFactory = Callable[[], Progress]
