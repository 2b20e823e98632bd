"""Rules: numbers from the ledger in, deviation-candidate transitions out. Pure.

A rule (``RuleSpec``) watches one thing the ledger keeps and compares it with a threshold:

============================  ==========================================================  =========
watch                          value                                                       example
============================  ==========================================================  =========
``<counter>`` + ``window``     increase over the window (hour buckets), summed by group    failed logins per hour
``<gauge>``                    current value; max per group for ``>``, min for ``<``       free space ratio
``normagent_collector_up``     the agent's own health gauge (1 up, 0 failed)               collector down for 15 m
``rollup:<name>`` + window     per-day tally summed over the days the window touches      failures per network
``event:<kind>`` + window      events counted, grouped by attributes                      rule changes
``absent:<metric>``            1 while no series of the metric matches ``labels``, else 0  no data
============================  ==========================================================  =========

plus the matcher of ``preceded_by`` (a rollup key counts only if the same key crossed
``min_preceding`` in another rollup within the window, first seen no later than it: a success
after failures).

The lifecycle of one candidate (one fingerprint = rule + its ``group_by`` labels)::

    (none) ──holds──▶ pending ──holds for `for`──▶ firing ──clear for `hold`──▶ resolved
               │          └──clears──▶ dropped         └──holds again within `hold`: the same candidate
               └─ `for` = 0: straight to firing

Only *firing* and *resolved* are changes a receiver sees (``Transition.forward``); each gets the
fingerprint's next sequence number in the ledger, and the idempotency key
``<fingerprint>-<state>-<sequence>``. A candidate that clears and comes back within the hold time
never stopped firing, so a flapping value sends nothing (Prometheus' ``keep_firing_for``).

Why evaluation can run inside the ledger's commit: the ledger calls the engine (``evaluate``)
inside the very transaction that stores a batch, for the rules that watch what the batch touched,
and stores the transitions and their outbox rows in that same transaction. So a candidate's state,
its outbox rows and the observation that changed them are one atomic step: a crash leaves all or
none, the 72-hour deadline of a possible personal-data breach starts at the commit that brought
the evidence (not at the next timer tick), and nothing can be delivered for a state that was never
stored. Time alone also changes states (``for`` passes, a window slides, the hold ends, a gauge or
the agent's own health sits still): a timer evaluates every rule in a transaction of its own. Both
paths call the same pure function on the same data, so they cannot disagree.

This module imports only ``normagent.model``, ``normagent.digests`` and the standard library: it reads the ledger
through the ``RuleData`` protocol and never writes.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from normagent import digests
from normagent.model import (
    CIA,
    OWNER_ROLES,
    Candidate,
    Comparison,
    JSONValue,
    RollupSum,
    RuleSpec,
    RuleText,
    Severity,
    Transition,
)
from normagent.records import dataclass

Labels = tuple[tuple[str, str], ...]
NOTIFY_WITHIN = timedelta(hours=72)
"""A personal-data breach must reach Datatilsynet within 72 hours (GDPR art. 33; the guide's §2.4.2)."""
SCHEMA = "normagent.deviation/v1"
OTHER = "other"
"""The label value of the candidate that gathers groups beyond ``max_candidates_per_rule``."""
TEMPLATE_FIELDS = ("value", "threshold", "window", "for")

_SELECTOR_KINDS = ("rollup", "event", "absent")


# ------------------------------------------------------------------------------------------------
# what the ledger offers, and what the engine is configured with


class RuleData(Protocol):
    """Read access to the ledger for the rules (implemented by ``normagent.ledger``).

    Times are Unix seconds. Label sets are sorted (name, value) pairs.
    """

    def counter_increase(self, metric: str, since: float, until: float) -> Mapping[Labels, float]:
        """Increase of every known series of a counter from the hour bucket holding ``since`` to
        the one holding ``until``; a series that did not grow is there with 0."""
        ...

    def gauge_series(self, metric: str) -> Mapping[Labels, float]:
        """The current value of every series of a gauge (the agent's health gauges included)."""
        ...

    def rollup_sums(self, name: str, since: float, until: float) -> Mapping[str, RollupSum]:
        """Per key: the rollup's rows of the days from ``since`` to ``until`` whose last sighting
        (when known) is not before ``since``, added up."""
        ...

    def event_attrs(self, kind: str, since: float, until: float) -> Sequence[Mapping[str, Any]]:
        """The attributes of each event of ``kind`` that happened in [since, until]."""
        ...


class RuleView(RuleData, Protocol):
    """``RuleData`` plus the open candidates: what ``Engine.__call__`` reads (``ledger.RuleView``)."""

    def open_candidates(self, rules: Iterable[str] | None) -> Mapping[str, Candidate]:
        """Pending and firing candidates by fingerprint, of ``rules`` (None: of every rule)."""
        ...


@dataclass(frozen=True, slots=True)
class SectionDefaults:
    """What a rule of a factsheet section says when it does not say it itself."""

    cia: tuple[CIA, ...]
    owner: str
    nb: RuleText
    en: RuleText


SECTION_DEFAULTS: Mapping[str, SectionDefaults] = {
    "Driftsstatus": SectionDefaults(
        ("tilgjengelighet",),
        "IKT-leder",
        RuleText("", "", "Kritiske systemer kan bli utilgjengelige eller ustabile for de ansatte.",
                 "Undersøk serveren og tjenestene på den; vurder om driftsleverandøren må kontaktes."),
        RuleText("Operations status deviation", "", "Critical systems may become unavailable or unstable for staff.",
                 "Examine the server and its services; consider contacting the operations provider."),
    ),
    "Meldingskommunikasjon": SectionDefaults(
        ("tilgjengelighet", "integritet"),
        "prosesseier",
        RuleText("", "", "Helseopplysninger kan komme for sent fram, eller ikke fram, til mottaker.",
                 "Kontroller meldingstjeneren og køene; ta kontakt med meldingsleverandøren ved behov."),
        RuleText("Message communication deviation", "",
                 "Health information may reach its receiver late, or not at all.",
                 "Check the message server and its queues; contact the message service provider if needed."),
    ),
    "Systemleverandør": SectionDefaults(
        ("integritet", "tilgjengelighet"),
        "toppledelsen",
        RuleText("", "", "Systemet kan være sårbart eller fungere feil.",
                 "Kontroller oppdateringer og endringer sammen med systemleverandøren."),
        RuleText("System supplier deviation", "", "The system may be vulnerable or malfunction.",
                 "Review updates and changes with the system supplier."),
    ),
    "Databehandler": SectionDefaults(
        ("integritet", "tilgjengelighet"),
        "IKT-leder",
        RuleText("", "", "Avtalt tjenestenivå kan være brutt.",
                 "Ta opp hendelsen med databehandleren og kontroller avtalen."),
        RuleText("Data processor deviation", "", "The agreed service level may have been breached.",
                 "Raise the incident with the data processor and check the agreement."),
    ),
    "Nettleverandør": SectionDefaults(
        ("tilgjengelighet",),
        "IKT-leder",
        RuleText("", "", "Nettverket til klinikken kan være nede eller ustabilt.",
                 "Kontroller ruter og linje; meld feil til nettleverandøren."),
        RuleText("Network provider deviation", "", "The clinic's network may be down or unstable.",
                 "Check the router and the line; report the fault to the network provider."),
    ),
    "Ondsinnet programvare": SectionDefaults(
        ("integritet", "konfidensialitet"),
        "IKT-leder",
        RuleText("", "", "Skadevare kan ha fått tilgang til systemer og opplysninger.",
                 "Isoler berørt maskin om nødvendig, og undersøk funnet med driftsleverandøren."),
        RuleText("Malware deviation", "", "Malware may have gained access to systems and data.",
                 "Isolate the affected machine if needed, and examine the finding with the operations provider."),
    ),
    "Sikkerhetsbarriere": SectionDefaults(
        ("konfidensialitet", "integritet"),
        "IKT-leder",
        RuleText("", "", "Sikkerhetsbarrieren kan være svekket eller under angrep.",
                 "Kontroller brannmurens regler og logg sammen med driftsleverandøren."),
        RuleText("Firewall deviation", "", "The security barrier may be weakened or under attack.",
                 "Check the firewall's rules and log with the operations provider."),
    ),
}
GENERIC_DEFAULTS = SectionDefaults(
    ("tilgjengelighet",),
    "IKT-leder",
    RuleText("", "", "Kan påvirke sikkerheten eller driften av systemene.", "Undersøk hendelsen og vurder tiltak."),
    RuleText("Deviation candidate", "", "May affect the security or operation of the systems.",
             "Examine the incident and consider measures."),
)


def section_defaults(section: str) -> SectionDefaults:
    """The defaults of a factsheet section, matched on its first word(s) ("Meldingskommunikasjon (EDI)")."""
    for name, defaults in SECTION_DEFAULTS.items():
        if section.startswith(name):
            return defaults
    return GENERIC_DEFAULTS


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """What the engine needs besides the rules (from ``[deviations]`` and the ledger).

    Attributes:
        host_id: The ledger's host id: fingerprints of two hosts never collide.
        location: Where this server is, in the operator's words (``[deviations] location``).
        hold: The default hold time of a rule.
        max_candidates: Candidates one rule may have open at once; more groups are gathered into one
            candidate whose ``group_by`` labels are ``"other"``.
        version: normagent's version, for the change documents.
    """

    host_id: str = ""
    location: str = ""
    hold: timedelta = timedelta(minutes=15)
    max_candidates: int = 20
    version: str = ""


# ------------------------------------------------------------------------------------------------
# rules as configured


def complete(spec: RuleSpec, default_hold: timedelta) -> RuleSpec:
    """The rule with every derived field filled in: CIA, owner, both texts and the hold time."""
    defaults = section_defaults(spec.section)
    nb = spec.text_nb or RuleText(_derived_title(spec.summary, spec.name), spec.summary)
    nb = RuleText(
        nb.title or _derived_title(nb.what or spec.summary, spec.name),
        nb.what or spec.summary,
        nb.consequence or defaults.nb.consequence,
        nb.measures or defaults.nb.measures,
    )
    en = spec.text_en or RuleText("", "")
    en = RuleText(
        en.title or f"{defaults.en.title}: {spec.name}",
        en.what or _english_what(spec),
        en.consequence or defaults.en.consequence,
        en.measures or defaults.en.measures,
    )
    return replace(
        spec,
        cia=spec.cia or defaults.cia,
        owner=spec.owner or defaults.owner,
        text_nb=nb,
        text_en=en,
        hold=spec.hold if spec.hold is not None else default_hold,
    )


def _derived_title(summary: str, name: str) -> str:
    """The summary's first clause (up to a colon or full stop), else the rule's name."""
    head = re.split(r"[:.]\s", summary.strip(), maxsplit=1)[0].strip().rstrip(".:")
    head = re.sub(r"\s*\([^)]*\{[^}]*\}[^)]*\)", "", head)  # "(pseudonym {key})" belongs to the text
    return head if 0 < len(head) <= 100 else name


def _english_what(spec: RuleSpec) -> str:
    over = " over {window}" if spec.window is not None else ""
    groups = "".join(f", {label} {{{label}}}" for label in spec.group_by)
    return f"Rule {spec.name} ({spec.section or 'normagent'}): value {{value}}{over}{groups}; threshold {spec.comparison} {{threshold}}."


def rule_problems(spec: RuleSpec, metrics: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """What is wrong with a rule, as (key, message) pairs for ``check-config``.

    Args:
        spec: The rule as configured.
        metrics: Every metric a rule may watch (declared by a collector, or the agent's health
            gauges) → its label names; a metric known to be a counter or gauge is told by
            ``window`` alone, so kinds are not needed here.
    """
    problems: list[tuple[str, str]] = []
    kind, _, target = spec.watch.partition(":")
    if not target:
        kind, target = "metric", spec.watch
    if kind not in ("metric", *_SELECTOR_KINDS) or not target:
        problems.append(("watch", f'expected a metric name, "rollup:<name>", "event:<kind>" or "absent:<metric>", got "{spec.watch}"'))
        return problems
    labels_known: Sequence[str] | None = None
    if kind in ("metric", "absent"):
        if target not in metrics:
            close = _close(target, metrics)
            problems.append(("watch", f"unknown metric {target!r}{close}: no enabled plugin declares it"))
        else:
            labels_known = metrics[target]
    elif kind == "rollup":
        labels_known = ("key",)
    if labels_known is not None:
        for label in spec.labels:
            if label not in labels_known:
                problems.append((f"labels.{label}", f"{target} has no label {label!r} (it has: {', '.join(labels_known) or 'none'})"))
        for i, label in enumerate(spec.group_by):
            if label not in labels_known:
                problems.append((f"group_by[{i}]", f"{target} has no label {label!r} (it has: {', '.join(labels_known) or 'none'})"))
    if kind in ("rollup", "event") and spec.window is None:
        problems.append(("window", f"a {kind} rule needs a window (the period its {kind}s are counted over)"))
    if kind == "absent" and spec.window is not None:
        problems.append(("window", "an absent: rule has no window (it is true while no series matches)"))
    if spec.preceded_by:
        if kind != "rollup" or not spec.preceded_by.startswith("rollup:") or len(spec.preceded_by) <= len("rollup:"):
            problems.append(("preceded_by", 'only a rollup rule can be preceded_by another rollup ("rollup:<name>")'))
    if spec.owner and spec.owner not in OWNER_ROLES:
        problems.append(("owner", f"expected one of {', '.join(repr(r) for r in OWNER_ROLES)}, got {spec.owner!r}"))
    if not math.isfinite(spec.threshold):
        problems.append(("threshold", "must be a finite number"))
    allowed = {*TEMPLATE_FIELDS, *spec.group_by}
    texts = {"summary": spec.summary}
    for lang, text in (("nb", spec.text_nb), ("en", spec.text_en)):
        if text is not None:
            key = "" if lang == "nb" else "_en"
            texts.update({f"title{key}": text.title, f"consequence{key}": text.consequence, f"measures{key}": text.measures})
            if lang == "en":
                texts["summary_en"] = text.what
    for key, template in texts.items():
        try:
            used = template_fields(template)
        except ValueError as exc:
            problems.append((key, f"not a valid template: {exc}"))
            continue
        unknown = sorted(used - allowed)
        if unknown:
            problems.append((key, f"unknown field {{{unknown[0]}}}: a text may use {', '.join('{' + f + '}' for f in sorted(allowed))}"))
    return problems


def _close(name: str, choices: Iterable[str]) -> str:
    import difflib

    match = difflib.get_close_matches(name, list(choices), n=1)
    return f' (did you mean "{match[0]}"?)' if match else ""


def template_fields(template: str) -> set[str]:
    """The ``{field}`` names a text uses.

    Raises:
        ValueError: A broken template, a ``{}`` that names no field, or a field with a format spec
            or conversion: the values come formatted (in the text's language), and
            ``{value:>999999999}`` would have made a gigabyte of text for each candidate.
    """
    names: set[str] = set()
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name:
            raise ValueError("{} names no field")
        if spec or conversion:
            written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{written}: write {{{name}}}, without a format (the values come formatted)")
        names.add(name)
    return names


# ------------------------------------------------------------------------------------------------
# evaluation


@dataclass(frozen=True, slots=True)
class Group:
    """One group of a rule's series at one evaluation: its labels, value and whether it holds."""

    labels: Labels
    value: float
    holds: bool


def watched(spec: RuleSpec) -> set[str]:
    """What a rule reads, in the terms the ledger reports a commit's touches in: metric names,
    ``rollup:<name>``, ``event:<kind>``."""
    kind, _, target = spec.watch.partition(":")
    found = {spec.watch if kind not in _SELECTOR_KINDS else (target if kind == "absent" else spec.watch)}
    if spec.preceded_by:
        found.add(spec.preceded_by)
    return found


def compare(value: float, comparison: Comparison, threshold: float) -> bool:
    if comparison == ">":
        return value > threshold
    if comparison == ">=":
        return value >= threshold
    if comparison == "<":
        return value < threshold
    if comparison == "<=":
        return value <= threshold
    if comparison == "==":
        return value == threshold
    return value != threshold


def groups(spec: RuleSpec, data: RuleData, now: float) -> list[Group]:
    """The rule's groups now, each with its value and whether the condition holds."""
    kind, _, target = spec.watch.partition(":")
    since = now - spec.window.total_seconds() if spec.window is not None else now
    values: dict[Labels, float] = {}
    if kind == "rollup":
        sums = data.rollup_sums(target, since, now)
        preceding: Mapping[str, RollupSum] = {}
        if spec.preceded_by:
            preceding = data.rollup_sums(spec.preceded_by.partition(":")[2], since, now)
        for key, row in sums.items():
            if spec.labels.get("key", key) != key:
                continue
            if spec.preceded_by and not _preceded(row, preceding.get(key), spec.min_preceding):
                continue
            group: Labels = (("key", key),) if "key" in spec.group_by else ()
            values[group] = values.get(group, 0.0) + row.value
        if not spec.group_by:
            values.setdefault((), 0.0)
    elif kind == "event":
        for attrs in data.event_attrs(target, since, now):
            if any(str(attrs.get(k, "")) != v for k, v in spec.labels.items()):
                continue
            group = tuple((name, str(attrs.get(name, ""))) for name in spec.group_by)
            values[group] = values.get(group, 0.0) + 1.0
        if not spec.group_by:
            values.setdefault((), 0.0)
    elif kind == "absent":
        present = any(_matches(labels, spec.labels) for labels in data.gauge_series(target)) or any(
            _matches(labels, spec.labels) for labels in data.counter_increase(target, now, now)
        )
        values[()] = 0.0 if present else 1.0
    elif spec.window is not None:
        for labels, value in data.counter_increase(spec.watch, since, now).items():
            if _matches(labels, spec.labels):
                group = _group_of(labels, spec.group_by)
                values[group] = values.get(group, 0.0) + value
        if not spec.group_by:
            values.setdefault((), 0.0)  # a counter never incremented grew by 0
    else:
        pick = min if spec.comparison in ("<", "<=") else max
        for labels, value in data.gauge_series(spec.watch).items():
            if _matches(labels, spec.labels):
                group = _group_of(labels, spec.group_by)
                values[group] = pick(values[group], value) if group in values else value
    return [Group(labels, value, compare(value, spec.comparison, spec.threshold)) for labels, value in values.items()]


def _preceded(row: RollupSum, before: RollupSum | None, minimum: float) -> bool:
    if before is None or before.value < minimum:
        return False
    if before.first_seen is not None and row.last_seen is not None:
        return before.first_seen <= row.last_seen
    return True


def _matches(labels: Labels, matchers: Mapping[str, str]) -> bool:
    if not matchers:
        return True
    as_dict = dict(labels)
    return all(as_dict.get(name) == value for name, value in matchers.items())


def _group_of(labels: Labels, group_by: Sequence[str]) -> Labels:
    as_dict = dict(labels)
    return tuple((name, as_dict.get(name, "")) for name in group_by)


def fingerprint(host_id: str, rule: str, labels: Labels) -> str:
    """16 hex digits naming one deviation: the same rule and labels on the same host."""
    text = json.dumps([host_id, rule, sorted(labels)], separators=(",", ":"), ensure_ascii=False)
    return digests.sha256(text.encode("utf-8")).hexdigest()[:16]


def idempotency_key(fp: str, state: str, sequence: int) -> str:
    """``<fingerprint>-<state>-<sequence>``: one change, whatever the number of attempts."""
    return f"{fp}-{state}-{sequence}"


class Engine:
    """The rules as configured, evaluated against what the ledger holds. Immutable; a reload
    builds a new one.

    Args:
        rules: Completed rules (``complete``) that are enabled.
        settings: Host id, location, default hold, the bound on candidates per rule.
    """

    def __init__(self, rules: Iterable[RuleSpec], settings: EngineSettings) -> None:
        self.rules: dict[str, RuleSpec] = {rule.name: rule for rule in rules}
        self.settings = settings
        self._by_watch: dict[str, list[RuleSpec]] = {}
        for rule in self.rules.values():
            for name in watched(rule):
                self._by_watch.setdefault(name, []).append(rule)

    def __call__(self, view: RuleView, touched: set[str] | None, now: datetime) -> list[Transition]:
        """The ledger's evaluator (``Ledger.use_rules``): every rule when ``touched`` is None, else
        the rules watching what a commit touched."""
        rules = None if touched is None else self.rules_watching(touched)
        if rules is not None and not rules:
            return []
        states = view.open_candidates(None if rules is None else [r.name for r in rules])
        return self.evaluate(view, states, now, rules)

    def watches(self, touched: Iterable[str]) -> bool:
        """Whether any rule reads one of ``touched`` (``Ledger.use_rules``'s ``watches``)."""
        return any(name in self._by_watch for name in touched)

    def rules_watching(self, touched: Iterable[str]) -> list[RuleSpec]:
        """The rules that read any of ``touched`` (metric names, ``rollup:<name>``, ``event:<kind>``)."""
        found: dict[str, RuleSpec] = {}
        for name in sorted(touched):  # a set's order follows the hash seed: candidates would be numbered differently each run
            for rule in self._by_watch.get(name, ()):
                found[rule.name] = rule
        return list(found.values())

    def evaluate(
        self,
        data: RuleData,
        open_candidates: Mapping[str, Candidate],
        now: datetime,
        rules: Sequence[RuleSpec] | None = None,
    ) -> list[Transition]:
        """Evaluate ``rules`` (default: all, and then candidates of rules no longer configured
        are ended) and return what changes.

        Args:
            data: The ledger's numbers.
            open_candidates: Pending and firing candidates by fingerprint (all of them, or at
                least those of ``rules``).
            now: The evaluation time (aware UTC).
            rules: Only these rules (those a commit touched).
        """
        full = rules is None
        chosen = list(self.rules.values()) if rules is None else list(rules)
        moment = now.timestamp()
        out: list[Transition] = []
        by_rule: dict[str, list[Candidate]] = {}
        for cand in open_candidates.values():
            by_rule.setdefault(cand.rule, []).append(cand)
        for rule in chosen:
            current = {c.fingerprint: c for c in by_rule.get(rule.name, ())}
            seen: set[str] = set()
            for group in self._bounded(rule, groups(rule, data, moment), current):
                fp = fingerprint(self.settings.host_id, rule.name, group.labels)
                seen.add(fp)
                change = self.step(rule, fp, group.labels, group.holds, group.value, current.get(fp), now)
                if change is not None:
                    out.append(change)
            for fp, cand in current.items():
                if fp not in seen:  # the group is gone (its series or rollup key left the window)
                    change = self.step(rule, fp, cand.labels, False, cand.value, cand, now)
                    if change is not None:
                        out.append(change)
        if full:
            for name, cands in by_rule.items():
                if name not in self.rules:
                    out.extend(self._end(cand, now) for cand in cands)
        return out

    def _bounded(self, rule: RuleSpec, found: list[Group], current: Mapping[str, Candidate]) -> list[Group]:
        """At most ``max_candidates`` holding groups; the rest gathered into one ``"other"`` group.

        Groups that already have a candidate keep their place, so a candidate never moves into
        "other" and out again."""
        holding = [g for g in found if g.holds]
        if len(holding) <= self.settings.max_candidates or not rule.group_by:
            return found
        open_labels = {c.labels for c in current.values()}
        holding.sort(key=lambda g: (g.labels not in open_labels, -g.value if rule.comparison[0] == ">" else g.value))
        kept = holding[: self.settings.max_candidates - 1]
        rest = holding[self.settings.max_candidates - 1 :]
        total = sum(g.value for g in rest)
        other = Group(tuple((name, OTHER) for name in rule.group_by), total, True)  # its members hold
        return [*kept, other, *(g for g in found if not g.holds)]

    def step(
        self, rule: RuleSpec, fp: str, labels: Labels, holds: bool, value: float, prev: Candidate | None, now: datetime
    ) -> Transition | None:
        """The lifecycle of one candidate for one evaluation (see the module docstring)."""
        hold = rule.hold if rule.hold is not None else self.settings.hold
        if prev is None or prev.state == "resolved":
            if not holds:
                return None
            notify_by = now + NOTIFY_WITHIN if rule.personal_data else None
            cand = Candidate(0, fp, rule.name, labels, "pending", rule.severity, value, rule.threshold, now,
                             notify_by=notify_by, updated_at=now)
            if rule.for_ <= timedelta(0):
                return self._fire(rule, cand, now)
            return Transition(cand)
        if prev.state == "pending":
            if not holds:
                return Transition(prev, drop=True)
            if now - prev.first_evidence >= rule.for_:
                return self._fire(rule, replace(prev, value=value, threshold=rule.threshold, severity=rule.severity), now)
            return None
        # firing
        if holds:
            if prev.clear_since is not None or prev.value != value:
                return Transition(replace(prev, clear_since=None, value=value, updated_at=now))
            return None
        clear_since = prev.clear_since or now
        if now - clear_since >= hold:
            done = replace(prev, state="resolved", clear_since=clear_since, resolved_at=now, value=value, updated_at=now)
            return Transition(done, forward=True, document=self.document(rule, done, now))
        if prev.clear_since is None:
            return Transition(replace(prev, clear_since=now, value=value, updated_at=now))
        return None

    def _fire(self, rule: RuleSpec, cand: Candidate, now: datetime) -> Transition:
        fired = replace(cand, state="firing", fired_at=now, updated_at=now)
        return Transition(fired, forward=True, document=self.document(rule, fired, now))

    def _end(self, cand: Candidate, now: datetime) -> Transition:
        """A candidate of a rule that is no longer configured (disabled, or its plugin gone)."""
        if cand.state == "pending":
            return Transition(cand, drop=True)
        done = replace(cand, state="resolved", resolved_at=now, updated_at=now)
        gone = RuleSpec(cand.rule, "", ">", cand.threshold, "", severity=cand.severity)
        text_nb = RuleText(f"Regelen {cand.rule} er slått av", "Regelen som meldte avvikskandidaten, er ikke lenger i bruk.")
        text_en = RuleText(f"Rule {cand.rule} was disabled", "The rule that raised this candidate is no longer in use.")
        return Transition(done, forward=True, document=self.document(complete(replace(gone, text_nb=text_nb, text_en=text_en), self.settings.hold), done, now))

    def document(self, rule: RuleSpec, cand: Candidate, now: datetime) -> dict[str, JSONValue]:
        """The change as every forwarder receives it (``id``, ``sequence`` and
        ``idempotency_key`` are added by the ledger when it stores the change)."""
        rule = rule if rule.text_nb is not None and rule.text_en is not None else complete(rule, self.settings.hold)
        assert rule.text_nb is not None and rule.text_en is not None
        labels = dict(cand.labels)
        texts = {
            "nb": render_text(rule.text_nb, rule, cand, "nb"),
            "en": render_text(rule.text_en, rule, cand, "en"),
        }
        return {
            "schema": SCHEMA,
            "state": cand.state,
            "fingerprint": cand.fingerprint,
            "rule": rule.name,
            "severity": rule.severity.label,
            "section": rule.section,
            "cia": list(rule.cia),
            "owner": rule.owner,
            "personal_data": rule.personal_data,
            "notify_by": _iso(cand.notify_by),
            "labels": dict(sorted(labels.items())),
            "value": _number(cand.value),
            "threshold": _number(rule.threshold),
            "comparison": rule.comparison,
            "window_seconds": int(rule.window.total_seconds()) if rule.window is not None else None,
            "first_evidence": _iso(cand.first_evidence),
            "fired_at": _iso(cand.fired_at),
            "resolved_at": _iso(cand.resolved_at),
            "changed_at": _iso(now),
            "host": {"id": self.settings.host_id, "location": self.settings.location},
            "texts": {lang: dict(text) for lang, text in texts.items()},
            "agent": {"version": self.settings.version},
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _number(value: float) -> float | int:
    if not math.isfinite(value):
        return 0
    return int(value) if value == int(value) and abs(value) < 2**53 else round(value, 6)


# ------------------------------------------------------------------------------------------------
# texts


def render_text(text: RuleText, rule: RuleSpec, cand: Candidate, lang: str) -> dict[str, str]:
    """A rule's texts for one candidate, with its numbers and labels filled in."""
    number = value_format(rule)
    fields: dict[str, str] = {
        "value": number(cand.value, lang),
        "threshold": number(rule.threshold, lang),
        "window": format_span(rule.window, lang) if rule.window is not None else "",
        "for": format_span(rule.for_, lang),
    }
    fields.update(dict(cand.labels))
    out = {
        "title": _fill(text.title, fields),
        "what": _fill(text.what, fields),
        "consequence": _fill(text.consequence, fields),
        "measures": _fill(text.measures, fields),
    }
    if cand.state == "resolved":
        out["title"] = ("Løst: " if lang == "nb" else "Resolved: ") + out["title"]
    return out


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(template: str, fields: Mapping[str, str]) -> str:
    try:
        return string.Formatter().vformat(template, (), _Fields(fields))
    except (ValueError, IndexError, KeyError, AttributeError):
        return template


def value_format(rule: RuleSpec) -> Callable[[float, str], str]:
    """How a rule's value and threshold read: a ``_ratio`` as a percentage (0.05: "5 %"), seconds
    (a ``_seconds`` gauge, the increase of a ``_seconds_total`` counter) as a duration (1209600:
    "14 døgn"), anything else as a number."""
    kind, _, _ = rule.watch.partition(":")
    if kind in _SELECTOR_KINDS:
        return format_number
    if rule.watch.endswith("_ratio"):
        return format_percent
    if rule.watch.endswith(("_seconds", "_seconds_total")):
        return format_duration
    return format_number


def format_number(value: float, lang: str) -> str:
    """12 → "12"; 0.0734 → "0,07" (bokmål) or "0.07" (English)."""
    if not math.isfinite(value):
        return "–"
    if value == int(value) and abs(value) < 1e15:
        text = f"{int(value):,}".replace(",", "\u00a0" if lang == "nb" else ",")
        return text
    text = f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return text.replace(".", ",") if lang == "nb" else text


def format_percent(ratio: float, lang: str) -> str:
    """0.05 → "5 %" (bokmål) or "5%" (English)."""
    if not math.isfinite(ratio):
        return "–"
    text = f"{ratio * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text.replace('.', ',')}\u00a0%" if lang == "nb" else f"{text}%"


def format_duration(seconds: float, lang: str) -> str:
    """A number of seconds as people say it: its two largest units, the smaller rounded down.

    1209600 → "14 døgn" / "14 days"; 5400 → "1 time 30 minutter"; 1800.4 → "30 minutter";
    45 → "45 sekunder"; a negative span (a certificate that has expired) keeps its sign.
    """
    if not math.isfinite(seconds):
        return "–"
    sign = "-" if seconds < 0 else ""
    left = abs(seconds)
    if left < 60:
        unit = _SPANS[lang][-1]
        return f"{sign}{format_number(round(left, 2), lang)} {unit[0] if left == 1 else unit[1]}"
    left = int(left)
    parts: list[str] = []
    for one, many, size in _SPANS[lang]:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {one if count == 1 else many}")
        elif parts:
            break  # "2 døgn", not "2 døgn 0 timer 5 minutter"
        if len(parts) == 2:
            break
    return sign + " ".join(parts)


_SPANS = {
    "nb": (("døgn", "døgn", 86400), ("time", "timer", 3600), ("minutt", "minutter", 60), ("sekund", "sekunder", 1)),
    "en": (("day", "days", 86400), ("hour", "hours", 3600), ("minute", "minutes", 60), ("second", "seconds", 1)),
}


def format_span(span: timedelta, lang: str) -> str:
    """timedelta(hours=1) → "1 time" / "1 hour"; the largest unit that divides it."""
    seconds = int(span.total_seconds())
    if seconds <= 0:
        return "0 " + _SPANS[lang][-1][1]
    for one, many, size in _SPANS[lang]:
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {one if count == 1 else many}"
    return f"{seconds} {_SPANS[lang][-1][1]}"


# ------------------------------------------------------------------------------------------------
# Prometheus alerting rules


def prometheus_rules(rules: Iterable[RuleSpec], metrics: Mapping[str, tuple[str, Sequence[str]]]) -> tuple[str, list[str]]:
    """The rules as a Prometheus alerting-rule file over the exported metrics, for sites that
    alert centrally; and the names of the rules that cannot be written so (rollups, events and
    ``preceded_by`` read what only the ledger keeps).

    Aggregations use ``without``, never ``by``: the labels Prometheus adds (``instance``, ``job``)
    stay, so across a fleet each host's deviation is its own alert, as each agent's is.

    Args:
        rules: Completed rules.
        metrics: Metric name → (kind, label names).
    """
    lines = [
        "# Generated by `normagent rules export --format prometheus`: normagent's deviation rules as",
        "# Prometheus alerting rules over the metrics it exports. Rules over rollups and events (per",
        "# account or network, from the ledger) have no such metric and are left out.",
        "groups:",
    ]
    skipped: list[str] = []
    by_plugin: dict[str, list[RuleSpec]] = {}
    for rule in sorted(rules, key=lambda r: r.name):
        kind, _, target = rule.watch.partition(":")
        if kind in ("rollup", "event") or rule.preceded_by or (target if kind == "absent" else rule.watch) not in metrics:
            skipped.append(rule.name)
            continue
        by_plugin.setdefault(rule.name.split(".")[0], []).append(rule)
    for plugin, members in sorted(by_plugin.items()):
        lines += [f"  - name: normagent-{plugin}", "    rules:"]
        for rule in members:
            lines += _alert(rule, metrics)
    return "\n".join(lines) + "\n", skipped


def promql(rule: RuleSpec, metrics: Mapping[str, tuple[str, Sequence[str]]]) -> str:
    """The rule's condition in PromQL (see ``prometheus_rules``)."""
    kind, _, target = rule.watch.partition(":")
    matchers = ",".join(f"{name}={json.dumps(value)}" for name, value in sorted(rule.labels.items()))
    if kind == "absent":
        return f"absent({target}{{{matchers}}})" if matchers else f"absent({target})"
    metric_kind, labels = metrics[rule.watch]
    selector = f"{rule.watch}{{{matchers}}}" if matchers else rule.watch
    dropped = [label for label in labels if label not in rule.group_by]
    if rule.window is not None and metric_kind == "counter":
        # The ledger sums hour buckets over at least the window; Prometheus' increase() is exact.
        inner = f"increase({selector}[{_prom_duration(rule.window)}])"
        expr = f"sum without ({', '.join(dropped)}) ({inner})" if dropped else inner
    else:
        pick = "min" if rule.comparison in ("<", "<=") else "max"
        expr = f"{pick} without ({', '.join(dropped)}) ({selector})" if dropped else selector
    return f"{expr} {rule.comparison} {_number(rule.threshold)}"


def _alert(rule: RuleSpec, metrics: Mapping[str, tuple[str, Sequence[str]]]) -> list[str]:
    assert rule.text_nb is not None and rule.text_en is not None
    def q(text: str) -> str:  # a JSON string is a YAML double-quoted scalar
        return json.dumps(text, ensure_ascii=False)

    out = [
        f"      - alert: {q(rule.name)}",
        f"        expr: {q(promql(rule, metrics))}",
    ]
    if rule.for_ > timedelta(0):
        out.append(f"        for: {_prom_duration(rule.for_)}")
    if rule.hold:
        out.append(f"        keep_firing_for: {_prom_duration(rule.hold)}")
    out += [
        "        labels:",
        f"          severity: {q(rule.severity.label)}",
        f"          section: {q(rule.section)}",
        f"          cia: {q(','.join(rule.cia))}",
        f"          owner: {q(rule.owner)}",
        f"          personal_data: {q('true' if rule.personal_data else 'false')}",
        "        annotations:",
        f"          title: {q(_prom_template(rule.text_nb.title, rule, 'nb'))}",
        f"          summary: {q(_prom_template(rule.text_nb.what, rule, 'nb'))}",
        f"          consequence: {q(_prom_template(rule.text_nb.consequence, rule, 'nb'))}",
        f"          measures: {q(_prom_template(rule.text_nb.measures, rule, 'nb'))}",
        f"          summary_en: {q(_prom_template(rule.text_en.what, rule, 'en'))}",
    ]
    return out


def _prom_template(text: str, rule: RuleSpec, lang: str) -> str:
    """A normagent text as a Prometheus annotation template ({value} → {{ $value }})."""
    number = value_format(rule)
    humanize = "humanizePercentage" if number is format_percent else "humanizeDuration" if number is format_duration else "humanize"
    fields = {
        "value": f"{{{{ $value | {humanize} }}}}",
        "threshold": number(rule.threshold, lang),
        "window": format_span(rule.window, lang) if rule.window is not None else "",
        "for": format_span(rule.for_, lang),
    }
    fields.update({label: f"{{{{ $labels.{label} }}}}" for label in rule.group_by})
    return _fill(text, fields)


def _prom_duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# ------------------------------------------------------------------------------------------------
# configuration of rules (the [rules."<name>"] tables, already type-checked by config.py)

def configured_rule(name: str, values: Mapping[str, Any], base: RuleSpec | None) -> RuleSpec:
    """A default rule with a table's keys over it, or a site rule built from its table.

    ``values`` holds only the keys that were written, under their field names (``for_``), already
    converted (durations, ``Severity``). A site rule's ``plugin`` is ``"site"``.
    """
    if base is None:
        base = RuleSpec(
            name=name,
            watch=values["watch"],
            comparison=values["comparison"],
            threshold=float(values["threshold"]),
            summary=values.get("summary", ""),
            section=values.get("section", ""),
            plugin="site",
        )
    changes: dict[str, Any] = {}
    for key in ("threshold", "window", "for_", "severity", "hold", "owner", "cia", "personal_data", "labels",
                "group_by", "section", "preceded_by", "min_preceding", "comparison", "watch", "summary"):
        if key in values and values[key] is not None:
            changes[key] = values[key]
    if "severity" in changes and isinstance(changes["severity"], str):
        changes["severity"] = Severity[changes["severity"].upper()]
    if "threshold" in changes:
        changes["threshold"] = float(changes["threshold"])
    if "labels" in changes:
        changes["labels"] = dict(changes["labels"])
    if "group_by" in changes or "cia" in changes:
        changes.update({k: tuple(changes[k]) for k in ("group_by", "cia") if k in changes})
    rule = replace(base, **changes)
    nb_keys = {k: values[k] for k in ("title", "consequence", "measures") if values.get(k)}
    if nb_keys or "summary" in changes:
        old = base.text_nb or RuleText("", "")
        rule = replace(rule, text_nb=RuleText(
            nb_keys.get("title", old.title), changes.get("summary", old.what or base.summary),
            nb_keys.get("consequence", old.consequence), nb_keys.get("measures", old.measures)))
    en_keys = {k[:-3]: values[k] for k in ("title_en", "summary_en", "consequence_en", "measures_en") if values.get(k)}
    if en_keys:
        old = base.text_en or RuleText("", "")
        rule = replace(rule, text_en=RuleText(
            en_keys.get("title", old.title), en_keys.get("summary", old.what),
            en_keys.get("consequence", old.consequence), en_keys.get("measures", old.measures)))
    return rule

