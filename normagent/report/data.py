"""Where the report's numbers come from: one host's ledger, or a fleet's Prometheus HTTP API.

Both give the same four things for each host, so ``build.py`` never asks which it has:

- ``data``: a ``ReportData`` (``increase``, ``gauge``, ``rollups``, ``events``) for the plugins'
  sections and the indicators;
- ``coverage(period, intervals)``: for each hour of the period, whether the agent ran and whether
  each collector was up (the report's data completeness);
- ``alerts(period)``: the deviation candidates that were open in the period;
- ``notes``: what this source cannot tell (an older ledger's missing history, Prometheus without
  events, rollups and acknowledgements).

The ledger is opened read-only: a report never changes the state of the agent running beside it.

From Prometheus, a counter's increase over a period is its value at the end minus its value at the
start (each the last sample within an hour before that instant; a host not scraped then is looked
up further back, 31 days), not ``increase()``, which extrapolates: so a month from Prometheus
equals the month from the host's own ledger, hour for hour. A counter that went back (a new ledger)
counts from 0. Completeness is ``max_over_time(normagent_collector_up[1h])`` per hour, presence
``normagent_build_info`` per hour, deviations ``ALERTS`` from the alerting rules that
``normagent rules export`` writes. One query serves every host: the cost grows with the number of
metrics and months, hardly with the number of hosts.

Imports ledger, model and errors, and requests (for Prometheus) where used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from normagent.errors import Unavailable, UsageError
from normagent.model import Event, Period, ReportData, Rollup
from normagent.records import dataclass

if TYPE_CHECKING:

    from normagent.ledger import Ledger

HOUR = 3600
UP, DOWN, ABSENT = "up", "down", ""
LOOKBACK_FAR = timedelta(days=31)  # a host not scraped at a boundary: its last value this far back


@dataclass(frozen=True, slots=True)
class HostInfo:
    """Who a part of the report is about: the ledger's host id, or the Prometheus instance."""

    id: str
    name: str
    location: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    """A deviation candidate as the report shows it (no personal data: rule, labels, times)."""

    rule: str
    severity: str
    section: str
    personal_data: bool
    fired_at: datetime | None
    resolved_at: datetime | None
    open_at_end: bool
    id: int | None = None
    title_nb: str = ""
    title_en: str = ""
    notify_by: datetime | None = None
    acked_at: datetime | None = None
    acks: int = 0


@dataclass(frozen=True, slots=True)
class Coverage:
    """Hour by hour over a period: did the agent run, and was each collector up.

    Attributes:
        hours: The Unix hours of the period, in order.
        alive: Per hour: the agent ran (a collector ran, or Prometheus scraped it).
        collectors: Per collector, per hour: ``"up"``, ``"down"`` or ``""`` (the agent did not run).
        runs: Per collector: (runs, failed runs) in the period, where the source counts them.
        known: False where the source cannot tell (a ledger from before the run history).
    """

    hours: tuple[int, ...]
    alive: tuple[bool, ...]
    collectors: Mapping[str, tuple[str, ...]]
    runs: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    known: bool = True


class HostSource(Protocol):
    host: HostInfo
    data: ReportData
    keeps_details: bool  # events, rollups and acknowledgements
    alerts_unknown: str  # the text key that says why ``alerts`` may be None (the status is unknown then)

    def coverage(self, period: Period, intervals: Mapping[str, float]) -> Coverage: ...

    def alerts(self, period: Period) -> list[Alert] | None: ...

    def notes(self) -> list[tuple[str, dict[str, str]]]: ...

    def has_data(self, period: Period) -> bool: ...


def hours_of(period: Period) -> tuple[int, ...]:
    return tuple(range(int(period.start.timestamp() // HOUR), int(-(-period.end.timestamp() // HOUR))))


# ------------------------------------------------------------------------------------------------
# one host's ledger


class LedgerSource:
    """The report's view of one host's ledger (opened read-only by the caller)."""

    keeps_details = True
    alerts_unknown = "status_why_no_candidates"

    def __init__(self, ledger: Ledger, location: str = "", name: str = "") -> None:
        self._ledger = ledger
        self.data: ReportData = ledger
        self.host = HostInfo(ledger.host_id, name or ledger.host_id[:12], location)

    def has_data(self, period: Period) -> bool:
        return self._ledger.has_data(period)

    def notes(self) -> list[tuple[str, dict[str, str]]]:
        from normagent.ledger import DEVIATIONS_SCHEMA, HISTORY_SCHEMA

        notes: list[tuple[str, dict[str, str]]] = []
        if self._ledger.schema_version < HISTORY_SCHEMA:
            notes.append(("history_missing", {"version": str(self._ledger.schema_version)}))
        if self._ledger.schema_version < DEVIATIONS_SCHEMA:
            notes.append(("candidates_missing", {"version": str(self._ledger.schema_version)}))
        return notes

    def coverage(self, period: Period, intervals: Mapping[str, float]) -> Coverage:
        hours = hours_of(period)
        if self._ledger.schema_version < 3:
            return Coverage(hours, tuple(False for _ in hours), {}, {}, known=False)
        longest = max([*intervals.values(), HOUR])
        before = Period(period.start - timedelta(seconds=longest + 2 * HOUR), period.end)
        runs = self._ledger.run_hours(before)
        return timeline(hours, runs, intervals)

    def alerts(self, period: Period) -> list[Alert] | None:
        """None for a ledger from before deviation candidates: none kept is not none raised."""
        from normagent.ledger import DEVIATIONS_SCHEMA

        if self._ledger.schema_version < DEVIATIONS_SCHEMA:
            return None
        out = []
        for record in self._ledger.candidates_between(period):
            cand, doc = record.candidate, record.document or {}
            texts = doc.get("texts") or {}
            acked = [at for at, _ in record.acks]
            out.append(
                Alert(
                    rule=cand.rule,
                    severity=cand.severity.label,
                    section=str(doc.get("section") or ""),
                    personal_data=bool(doc.get("personal_data")) or cand.notify_by is not None,
                    fired_at=cand.fired_at,
                    resolved_at=cand.resolved_at,
                    open_at_end=cand.resolved_at is None or cand.resolved_at >= period.end,
                    id=cand.id,
                    title_nb=_title(texts, "nb", cand.rule),
                    title_en=_title(texts, "en", cand.rule),
                    notify_by=cand.notify_by,
                    acked_at=min(acked) if acked else None,
                    acks=len(acked),
                )
            )
        return out


RESOLVED_PREFIX = ("Løst: ", "Resolved: ")


def _title(texts: Mapping[str, Any], lang: str, rule: str) -> str:
    """A candidate's title in ``lang``, without the "Løst: " its last (resolving) change put before it."""
    title = str((texts.get(lang) or {}).get("title") or rule)
    for prefix in RESOLVED_PREFIX:
        if title.startswith(prefix):
            return title[len(prefix):]
    return title


def timeline(hours: Sequence[int], runs: Mapping[str, Mapping[int, tuple[int, int]]], intervals: Mapping[str, float]) -> Coverage:
    """Per hour: the agent ran if any collector ran; a collector is up in an hour in which one of
    its runs succeeded, down in one in which all failed, and between its runs keeps the state of
    its last run while its interval has not passed (an hourly collector is not missing between
    two runs). Past that, an agent that runs but not the collector has it down."""
    alive = tuple(any(h in per for per in runs.values()) for h in hours)
    states: dict[str, tuple[str, ...]] = {}
    totals: dict[str, tuple[int, int]] = {}
    first = hours[0] if hours else 0
    for name in sorted(set(runs) | set(intervals)):
        per = runs.get(name, {})
        reach = int(math.ceil(intervals.get(name, HOUR) / HOUR)) + 1
        last_hour, last_up = None, False
        for h in sorted(k for k in per if k < first):
            runs_h, failed = per[h]
            last_hour, last_up = h, failed < runs_h
        row = []
        for h, ran in zip(hours, alive):
            if h in per:
                runs_h, failed = per[h]
                last_hour, last_up = h, failed < runs_h
                row.append(UP if last_up else DOWN)
            elif not ran:
                row.append(ABSENT)
            elif last_hour is not None and h - last_hour <= reach:
                row.append(UP if last_up else DOWN)
            else:
                row.append(DOWN)
        states[name] = tuple(row)
        in_period = [per[h] for h in per if h >= first]
        totals[name] = (sum(r for r, _ in in_period), sum(f for _, f in in_period))
    return Coverage(tuple(hours), alive, states, totals)


# ------------------------------------------------------------------------------------------------
# Prometheus


@dataclass(frozen=True, slots=True)
class PrometheusSettings:
    """How to reach Prometheus (or Thanos, Mimir: the same HTTP API)."""

    url: str
    match: str = ""
    host_label: str = "instance"
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 60.0


def selector(match: str) -> str:
    """``'{job="normagent"}'`` or ``'job="normagent"'`` → ``'job="normagent"'`` (inside braces)."""
    inner = match.strip()
    if inner.startswith("{"):
        if not inner.endswith("}"):
            raise UsageError(f"--match {match!r}: a selector in braces, e.g. '{{job=\"normagent\"}}'")
        inner = inner[1:-1].strip()
    return inner


class PrometheusClient:
    """The Prometheus HTTP API: instant and range queries, with TLS and basic auth. Every failure
    is an ``Unavailable`` that names the server and what it said; warnings (a partial answer from
    Thanos or a remote store) are kept for the report."""

    def __init__(self, settings: PrometheusSettings) -> None:
        import requests

        self.settings = settings
        self.base = settings.url.rstrip("/")
        self.warnings: list[str] = []
        self.queries = 0
        self._session = requests.Session()
        if settings.username:
            self._session.auth = (settings.username, settings.password)
        # Given with each request, not set on the session: requests lets REQUESTS_CA_BUNDLE or
        # CURL_CA_BUNDLE in the environment override a session's ``verify``, and --prometheus-ca-file
        # would be ignored on exactly the hosts that set them.
        self._verify: str | bool = str(settings.ca_file) if settings.ca_file is not None else True
        self._cert = (str(settings.client_cert), str(settings.client_key or settings.client_cert)) if settings.client_cert is not None else None

    def close(self) -> None:
        self._session.close()

    def _get(self, path: str, params: Mapping[str, str], post: bool = True) -> Any:
        import requests

        self.queries += 1
        try:
            if post:  # queries: POST keeps long PromQL out of URLs and logs
                answer = self._session.post(f"{self.base}{path}", data=dict(params), timeout=self.settings.timeout,
                                            verify=self._verify, cert=self._cert)
            else:
                answer = self._session.get(f"{self.base}{path}", params=dict(params), timeout=self.settings.timeout,
                                           verify=self._verify, cert=self._cert)
        except requests.exceptions.SSLError as exc:
            raise Unavailable(f"Prometheus at {self.base}: TLS failed ({_reason(exc)}); see --prometheus-ca-file") from None
        except requests.exceptions.Timeout:
            raise Unavailable(f"Prometheus at {self.base} did not answer within {self.settings.timeout:g} s") from None
        except requests.exceptions.RequestException as exc:
            raise Unavailable(f"Prometheus at {self.base} cannot be reached: {_reason(exc)}") from None
        if answer.status_code == 401:
            raise Unavailable(f"Prometheus at {self.base} refused the credentials (401); see --prometheus-username")
        try:
            body = answer.json()
        except ValueError:
            raise Unavailable(
                f"Prometheus at {self.base}{path} answered HTTP {answer.status_code} with no JSON: is this the Prometheus HTTP API?"
            ) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error", "") if isinstance(body, dict) else ""
            raise Unavailable(f"Prometheus at {self.base} refused a query (HTTP {answer.status_code}): {error or 'no reason given'}")
        for warning in body.get("warnings") or ():
            if warning not in self.warnings:
                self.warnings.append(str(warning))
        return body.get("data")

    def instant(self, query: str, at: datetime) -> list[tuple[dict[str, str], float]]:
        data = self._get("/api/v1/query", {"query": query, "time": _stamp(at)})
        if not isinstance(data, dict) or data.get("resultType") != "vector":
            return []
        try:
            return [(dict(item["metric"]), float(item["value"][1])) for item in data.get("result", [])]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise self._malformed("/api/v1/query", exc) from None

    def range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        data = self._get(
            "/api/v1/query_range",
            {"query": query, "start": _stamp(start), "end": _stamp(end), "step": f"{int(step.total_seconds())}s"},
        )
        if not isinstance(data, dict):
            return []
        try:
            return [
                (dict(item["metric"]), [(float(t), float(v)) for t, v in item.get("values", [])]) for item in data.get("result", [])
            ]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise self._malformed("/api/v1/query_range", exc) from None

    def _malformed(self, path: str, exc: Exception) -> Unavailable:
        """A success whose data has another shape: not the Prometheus API (or a broken proxy)."""
        return Unavailable(
            f"Prometheus at {self.base}{path} answered with data of an unexpected shape ({type(exc).__name__}: {str(exc)[:80]}): "
            "is this the Prometheus HTTP API?"
        )

    def rule_groups(self) -> list[str]:
        data = self._get("/api/v1/rules", {"type": "alert"}, post=False)
        try:
            return [str(g.get("name", "")) for g in (data or {}).get("groups", [])] if isinstance(data, dict) else []
        except (TypeError, AttributeError) as exc:
            raise self._malformed("/api/v1/rules", exc) from None


def _stamp(moment: datetime) -> str:
    return f"{moment.timestamp():.3f}"


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host", "certificate verify failed"):
        if marker in text:
            return marker
    return text[:200]


Series = dict[tuple[tuple[str, str], ...], float]


class Fleet:
    """A fleet's numbers from Prometheus, queried once for every host and kept for the report.

    ``hosts(period)`` lists the hosts seen in the period; ``source(host)`` is one host's
    ``HostSource``. Queries are cached by (metric, instant): the twelve months of every indicator
    of every host cost one query per metric and month boundary.
    """

    def __init__(self, client: PrometheusClient, on_query: Callable[[], None] | None = None) -> None:
        self.client = client
        self._inner = selector(client.settings.match)
        self._label = client.settings.host_label
        self._values: dict[tuple[str, float], dict[str, Series]] = {}
        self._present: dict[float, set[str]] = {}
        self._far: dict[tuple[str, float], dict[str, Series]] = {}
        self._alive: dict[tuple[float, float], dict[str, dict[int, float]]] = {}
        self._up: dict[tuple[float, float], dict[str, dict[str, dict[int, float]]]] = {}
        self._alerts: dict[tuple[float, float], dict[str, list[dict[str, str]]]] = {}
        self._rules: bool | None = None
        self._info: dict[str, dict[str, str]] = {}
        self._on_query = on_query or (lambda: None)

    def _sel(self, metric: str, extra: str = "") -> str:
        parts = [p for p in (self._inner, extra) if p]
        return f"{metric}{{{', '.join(parts)}}}" if parts else metric

    def hosts(self, period: Period) -> list[str]:
        """The hosts with a normagent in the period (``normagent_build_info``), by name."""
        span = int((period.end - period.start).total_seconds())
        found = self.client.instant(f"max by ({self._label}, version) (max_over_time({self._sel('normagent_build_info')}[{span}s]))", period.end)
        self._on_query()
        names = set()
        for labels, _ in found:
            name = labels.get(self._label, "")
            if name:
                names.add(name)
                self._info[name] = labels
        return sorted(names)

    def version(self, host: str) -> str:
        return self._info.get(host, {}).get("version", "")

    def present(self, at: datetime) -> set[str]:
        key = at.timestamp()
        if key not in self._present:
            found = self.client.instant(f"max by ({self._label}) (last_over_time({self._sel('normagent_build_info')}[1h]))", at)
            self._on_query()
            self._present[key] = {labels.get(self._label, "") for labels, _ in found}
        return self._present[key]

    def values(self, metric: str, at: datetime, host: str) -> Series:
        """Every series of ``metric`` of ``host`` at ``at``: its last sample within the hour
        before, or, for a host not scraped then, within the 31 days before."""
        key = (metric, at.timestamp())
        if key not in self._values:
            per: dict[str, Series] = {}
            for labels, value in self.client.instant(f"last_over_time({self._sel(metric)}[1h])", at):
                per.setdefault(labels.get(self._label, ""), {})[_key(labels, self._label)] = value
            self._on_query()
            self._values[key] = per
        per = self._values[key]
        if host not in per and host not in self.present(at):
            # One query for every host not scraped then (a fleet of new hosts has them all at the
            # month before it began), not one per host: the same answer, a fraction of the queries.
            if key not in self._far:
                far: dict[str, Series] = {}
                for labels, value in self.client.instant(f"last_over_time({self._sel(metric)}[{int(LOOKBACK_FAR.total_seconds())}s])", at):
                    far.setdefault(labels.get(self._label, ""), {})[_key(labels, self._label)] = value
                self._on_query()
                self._far[key] = far
            per[host] = self._far[key].get(host, {})
        return per.get(host, {})

    def hourly(self, query: str, period: Period) -> list[tuple[dict[str, str], dict[int, float]]]:
        """``query`` (over ``[1h]``) at the end of every hour of the period → per series, Unix hour → value."""
        start = period.start + timedelta(hours=1)
        out = []
        # Prometheus answers at most 11,000 points a series: a year is 8,760 hours, so one query suffices.
        for labels, points in self.client.range(query, start, period.end, timedelta(hours=1)):
            out.append((labels, {int(t // HOUR) - 1: v for t, v in points}))
        self._on_query()
        return out

    def alive(self, period: Period) -> dict[str, dict[int, float]]:
        key = (period.start.timestamp(), period.end.timestamp())
        if key not in self._alive:
            found: dict[str, dict[int, float]] = {}
            for labels, points in self.hourly(f"max by ({self._label}) (max_over_time({self._sel('normagent_build_info')}[1h]))", period):
                found[labels.get(self._label, "")] = points
            self._alive[key] = found
        return self._alive[key]

    def up(self, period: Period) -> dict[str, dict[str, dict[int, float]]]:
        key = (period.start.timestamp(), period.end.timestamp())
        if key not in self._up:
            found: dict[str, dict[str, dict[int, float]]] = {}
            query = f"max by ({self._label}, collector) (max_over_time({self._sel('normagent_collector_up')}[1h]))"
            for labels, points in self.hourly(query, period):
                found.setdefault(labels.get(self._label, ""), {})[labels.get("collector", "")] = points
            self._up[key] = found
        return self._up[key]

    def has_rules(self) -> bool:
        if self._rules is None:
            self._rules = any(name.startswith("normagent-") for name in self.client.rule_groups())
            self._on_query()
        return self._rules

    def alerts(self, period: Period) -> dict[str, list[dict[str, str]]]:
        key = (period.start.timestamp(), period.end.timestamp())
        if key not in self._alerts:
            span = int((period.end - period.start).total_seconds())
            found: dict[str, list[dict[str, str]]] = {}
            sel = self._sel("ALERTS", 'alertstate="firing"')
            still = {
                (labels.get(self._label, ""), _key(labels, "")) for labels, _ in self.client.instant(f"last_over_time({sel}[1h])", period.end)
            }
            for labels, _ in self.client.instant(f"max_over_time({sel}[{span}s])", period.end):
                if not str(labels.get("alertname", "")).count("."):
                    continue  # normagent's rules are named <plugin>.<thing>
                host = labels.get(self._label, "")
                labels["__open__"] = "true" if (host, _key(labels, "")) in still else "false"
                found.setdefault(host, []).append(labels)
            self._on_query()
            self._alerts[key] = found
        return self._alerts[key]

    def source(self, host: str) -> PrometheusSource:
        return PrometheusSource(self, host)


def _key(labels: Mapping[str, str], host_label: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ("__name__", host_label, "__open__")))


class PrometheusData:
    """``ReportData`` for one host of a fleet: counters and gauges; no rollups, no events."""

    def __init__(self, fleet: Fleet, host: str) -> None:
        self._fleet = fleet
        self._host = host

    def increase(self, metric: str, period: Period, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        end = self._fleet.values(metric, period.end, self._host)
        start = self._fleet.values(metric, period.start, self._host)
        out: dict[tuple[str, ...], float] = {}
        for labels, value in end.items():
            before = start.get(labels, 0.0)
            grown = value - before if value >= before else value  # went back: a new ledger counts from 0
            names = dict(labels)
            key = tuple(names.get(name, "") for name in by)
            out[key] = out.get(key, 0.0) + grown
        return out

    def gauge(self, metric: str, at: datetime, by: Sequence[str] = ()) -> Mapping[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for labels, value in self._fleet.values(metric, at, self._host).items():
            names = dict(labels)
            key = tuple(names.get(name, "") for name in by)
            out[key] = out.get(key, 0.0) + value
        return out

    def rollups(self, name: str, period: Period) -> Sequence[Rollup]:
        return ()  # kept only in each host's ledger; the sections say so

    def events(self, kind: str, period: Period) -> Sequence[Event]:
        return ()


class PrometheusSource:
    """One host of a fleet as the report sees it."""

    keeps_details = False
    alerts_unknown = "status_why_alerts"

    def __init__(self, fleet: Fleet, host: str) -> None:
        self._fleet = fleet
        self.host = HostInfo(host, host)
        self.data: ReportData = PrometheusData(fleet, host)

    def has_data(self, period: Period) -> bool:
        return any(v for v in self._fleet.alive(period).get(self.host.id, {}).values())

    def notes(self) -> list[tuple[str, dict[str, str]]]:
        return [("not_in_prometheus", {})]

    def coverage(self, period: Period, intervals: Mapping[str, float]) -> Coverage:
        hours = hours_of(period)
        present = self._fleet.alive(period).get(self.host.id, {})
        alive = tuple(present.get(h, 0.0) > 0 for h in hours)
        ups = self._fleet.up(period).get(self.host.id, {})
        states: dict[str, tuple[str, ...]] = {}
        for name in sorted(set(ups) | set(intervals)):
            points = ups.get(name, {})
            row = []
            for h, ran in zip(hours, alive):
                if h in points:
                    row.append(UP if points[h] >= 1 else DOWN)
                else:
                    row.append(DOWN if ran else ABSENT)
            states[name] = tuple(row)
        return Coverage(hours, alive, states, {})

    def alerts(self, period: Period) -> list[Alert] | None:
        if not self._fleet.has_rules():
            return None
        out = []
        for labels in self._fleet.alerts(period).get(self.host.id, []):
            out.append(
                Alert(
                    rule=labels.get("alertname", ""),
                    severity=labels.get("severity", "warning"),
                    section=labels.get("section", ""),
                    personal_data=labels.get("personal_data") == "true",
                    fired_at=None,
                    resolved_at=None,
                    open_at_end=labels.get("__open__") == "true",
                )
            )
        return sorted(out, key=lambda a: (a.rule, a.severity))


def utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)
