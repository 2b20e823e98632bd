"""The ``deviations`` and ``rules`` commands: what the ledger holds, and what the rules say.

``deviations list|show|ack`` read (and, for ack, add to) the daemon's ledger in the configured
state directory; they never create one. ``rules list|test|export`` show the rules as configured,
evaluate them against the ledger at a given time without storing anything, and write them as
Prometheus alerting rules.

Imports deviations, rules, ledger, config and errors; only cli imports it.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

from normagent.errors import InputError, StateError, UsageError, printable

if TYPE_CHECKING:
    from normagent.config import Config
    from normagent.ledger import Ledger
    from normagent.loader import Plugins

LEDGER_FILE = "ledger.db"


def open_ledger(config: Config, *, acks: bool = False) -> Ledger:
    """The daemon's ledger, to read (or, with ``acks``, to add an ack to); an error, not a new
    ledger, when there is none. Nothing else is written: no schema, no marker (``ledger.id``)."""
    from normagent.ledger import Ledger, exists

    path = config.state_dir() / LEDGER_FILE
    if not exists(path):
        raise StateError(f"{path}: no ledger here (the agent has not run with this state directory); see --config")
    return Ledger.open_for_command(path, acks=acks)


def _when(moment: datetime | None) -> str:
    return "–" if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _labels(labels: Any) -> str:
    return printable(",".join(f"{k}={v}" for k, v in labels)) or "–"


# ------------------------------------------------------------------------------------------------
# deviations


def deviations_list(config: Config, states: list[str], fmt: str, out: TextIO) -> int:
    with open_ledger(config) as ledger:
        cands = ledger.candidates(states)
        acks = ledger.acks([c.id for c in cands])
        outbox = ledger.outbox_stats()
        dead = ledger.dead_letters()
    if fmt == "json":
        doc = {
            "candidates": [
                {
                    "id": c.id, "state": c.state, "severity": c.severity.label, "rule": c.rule, "labels": dict(c.labels),
                    "value": c.value, "first_evidence": _iso(c.first_evidence), "fired_at": _iso(c.fired_at),
                    "resolved_at": _iso(c.resolved_at), "notify_by": _iso(c.notify_by), "acks": acks.get(c.id, 0),
                }
                for c in cands
            ],
            "outbox": {name: {"pending": s.pending, "oldest": _iso_ts(s.oldest)} for name, s in outbox.items()},
            "dead_letters": [
                {"candidate": d.candidate_id, "forwarder": d.forwarder, "key": d.key, "attempts": d.attempts,
                 "created_at": _iso(d.created_at), "dead_at": _iso(d.done_at), "last_result": d.last_result, "last_error": d.last_error}
                for d in dead
            ],
        }
        json.dump(doc, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return 0
    if not cands:
        print("no deviation candidates" + (f" in state {', '.join(states)}" if states else ""), file=out)
    else:
        print(f"{'ID':>5}  {'STATE':<8}  {'SEVERITY':<8}  {'RULE':<32}  {'LABELS':<28}  {'FIRST EVIDENCE':<20}  {'NOTIFY BY':<20}  ACKS", file=out)
        for c in cands:
            print(
                f"{c.id:>5}  {c.state:<8}  {c.severity.label:<8}  {c.rule:<32}  {_labels(c.labels):<28}  "
                f"{_when(c.first_evidence):<20}  {_when(c.notify_by):<20}  {acks.get(c.id, 0)}",
                file=out,
            )
    for name, stats in sorted(outbox.items()):
        print(f"outbox {name}: {stats.pending} change(s) waiting, oldest since {_when(_dt(stats.oldest))}", file=out)
    if dead:
        print(f"dead letters ({len(dead)}): changes given up on, kept here", file=out)
        for d in dead:
            print(
                f"  candidate {d.candidate_id} {d.key} to {d.forwarder}: {d.attempts} attempt(s), queued "
                f"{_when(d.created_at)}, given up {_when(d.done_at)}; last: {d.last_result} {printable(str(d.last_error))}",
                file=out,
            )
    return 0


def deviations_show(config: Config, cid: int, fmt: str, out: TextIO) -> int:
    with open_ledger(config) as ledger:
        record = ledger.candidate(cid)
    if record is None:
        raise InputError(f"no deviation candidate {cid}")
    c = record.candidate
    if fmt == "json":
        json.dump(
            {
                "id": c.id, "state": c.state, "rule": c.rule, "fingerprint": c.fingerprint, "labels": dict(c.labels),
                "severity": c.severity.label, "value": c.value, "threshold": c.threshold,
                "first_evidence": _iso(c.first_evidence), "fired_at": _iso(c.fired_at), "clear_since": _iso(c.clear_since),
                "resolved_at": _iso(c.resolved_at), "notify_by": _iso(c.notify_by), "document": record.document,
                "deliveries": [
                    {"forwarder": d.forwarder, "key": d.key, "status": d.status, "attempts": d.attempts,
                     "last_result": d.last_result, "last_error": d.last_error, "queued": _iso(d.created_at), "done": _iso(d.done_at)}
                    for d in record.deliveries
                ],
                "acks": [{"at": _iso(at), "note": note} for at, note in record.acks],
            },
            out, indent=2, ensure_ascii=False,
        )
        out.write("\n")
        return 0
    print(f"candidate {c.id}: {c.rule} ({c.state}, {c.severity.label})", file=out)
    print(f"  labels: {_labels(c.labels)}   fingerprint: {c.fingerprint}", file=out)
    print(f"  value: {c.value:g} (threshold {c.threshold:g})", file=out)
    print(f"  first evidence: {_when(c.first_evidence)}   fired: {_when(c.fired_at)}   resolved: {_when(c.resolved_at)}", file=out)
    if c.clear_since is not None and c.state == "firing":
        print(f"  clear since {_when(c.clear_since)} (resolved once clear for the hold time)", file=out)
    if c.notify_by is not None:
        print(f"  may be a personal-data breach: notify Datatilsynet by {_when(c.notify_by)} if it is one", file=out)
    doc = record.document
    if doc:
        print(f"  section: {doc.get('section')}   touches: {', '.join(doc.get('cia', []))}   suggested owner: {doc.get('owner')}", file=out)
        for lang in ("nb", "en"):
            text = doc["texts"][lang]
            print(f"  [{lang}] {printable(text['title'])}", file=out)
            for key in ("what", "consequence", "measures"):
                print(f"       {key}: {printable(text[key])}", file=out)
    for d in record.deliveries:
        print(f"  delivery {d.key} to {d.forwarder}: {d.status} after {d.attempts} attempt(s)"
              + (f"; last: {d.last_result} {printable(str(d.last_error))}" if d.last_result and d.status != "delivered" else ""), file=out)
    for at, note in record.acks:
        print(f"  ack {_when(at)}: {printable(note)}", file=out)
    return 0


NOTE_MAX = 4000  # characters: a follow-up, not a document


def deviations_ack(config: Config, cid: int, note: str, out: TextIO) -> int:
    note = note.strip()
    if not note:
        raise UsageError("--note must say what was done (it is kept with the candidate)")
    if len(note) > NOTE_MAX:
        raise UsageError(f"--note has {len(note):,} characters; at most {NOTE_MAX:,} (what was done, in short)")
    # A control character (an escape sequence for whoever reads it in a terminal later), a byte that
    # was not UTF-8 (argv's surrogate escapes, which SQLite cannot store) or an invisible format
    # character (a bidi override) is refused, naming where it is.
    bad = next((i for i, ch in enumerate(note) if not ch.isprintable()), None)
    if bad is not None:
        code = ord(note[bad])
        what = ("a byte that is not UTF-8" if 0xDC80 <= code <= 0xDCFF else "a control character" if code < 0x20 or 0x7F <= code < 0xA0
                else "an invisible character")
        raise UsageError(f"--note: character {bad + 1} (U+{code:04X}) is {what}; write the note on one line in plain text")
    with open_ledger(config, acks=True) as ledger:
        try:
            at = ledger.ack(cid, note)
        except KeyError:
            raise InputError(f"no deviation candidate {cid}") from None
    print(f"candidate {cid}: follow-up recorded at {_when(at)}", file=out)
    return 0


# ------------------------------------------------------------------------------------------------
# rules


def rules_list(config: Config, plugins: Plugins, fmt: str, out: TextIO) -> int:
    from normagent.config import format_duration
    from normagent.deviations import configured_rules

    rows = configured_rules(config, plugins)
    if fmt == "json":
        json.dump(
            [
                {
                    "name": r.rule.name, "origin": r.origin, "active": r.active, "inactive": r.inactive, "watch": r.rule.watch,
                    "comparison": r.rule.comparison, "threshold": r.rule.threshold,
                    "window": format_duration(r.rule.window) if r.rule.window else None,
                    "for": format_duration(r.rule.for_), "hold": format_duration(r.rule.hold) if r.rule.hold is not None else None,
                    "group_by": list(r.rule.group_by), "labels": dict(r.rule.labels), "preceded_by": r.rule.preceded_by,
                    "severity": r.rule.severity.label, "section": r.rule.section, "cia": list(r.rule.cia),
                    "owner": r.rule.owner, "personal_data": r.rule.personal_data,
                    "title": {"nb": r.rule.text_nb.title if r.rule.text_nb else "", "en": r.rule.text_en.title if r.rule.text_en else ""},
                }
                for r in rows
            ],
            out, indent=2, ensure_ascii=False,
        )
        out.write("\n")
        return 0
    for r in rows:
        rule = r.rule
        state = "active" if r.active else f"inactive ({r.inactive})"
        window = f" over {format_duration(rule.window)}" if rule.window else ""
        by = f" by {','.join(rule.group_by)}" if rule.group_by else ""
        sel = f"{{{','.join(f'{k}={v}' for k, v in rule.labels.items())}}}" if rule.labels else ""
        print(f"{rule.name} [{r.origin}, {state}]", file=out)
        print(f"  {rule.watch}{sel}{window}{by} {rule.comparison} {rule.threshold:g}"
              + (f" after rollup {rule.preceded_by} >= {rule.min_preceding:g}" if rule.preceded_by else "")
              + f"; for {format_duration(rule.for_)}, hold {format_duration(rule.hold or rule.for_ * 0)}", file=out)
        print(f"  {rule.severity.label}; {rule.section}; {', '.join(rule.cia)}; owner: {rule.owner}"
              + ("; may be a personal-data breach (72 h)" if rule.personal_data else ""), file=out)
        if rule.text_nb is not None:
            print(f"  {rule.text_nb.title}", file=out)
    return 0


def rules_test(config: Config, plugins: Plugins, at: str | None, names: list[str], expect: list[str], fmt: str, out: TextIO) -> int:
    """Evaluate the rules against the ledger at ``at`` and print each group, its value and what
    would happen to its candidate; nothing is stored."""
    from normagent import __version__
    from normagent.deviations import build_engine
    from normagent.rules import fingerprint, groups

    moment = _parse_time(at) if at else datetime.now(timezone.utc)
    wanted: dict[str, str] = {}
    for item in expect:
        rule_name, sep, expected = item.partition("=")
        if not sep or expected not in ("none", "pending", "firing", "resolved"):
            raise UsageError(f"--expect {item!r}: expected RULE=STATE with STATE none, pending, firing or resolved")
        wanted[rule_name] = expected
    with open_ledger(config) as ledger:
        engine = build_engine(config, plugins, ledger.host_id, __version__)
        unknown = [n for n in [*names, *wanted] if n not in engine.rules]
        if unknown:
            raise UsageError(f"no active rule {unknown[0]!r} (normagent rules list shows them)")
        view = ledger.read_view()
        chosen = [engine.rules[n] for n in names] if names else list(engine.rules.values())
        opened = view.open_candidates(None)
        transitions = {t.candidate.fingerprint: t for t in engine.evaluate(view, opened, moment, chosen)}
        results = []
        for spec in chosen:
            for group in groups(spec, view, moment.timestamp()):
                fp = fingerprint(ledger.host_id, spec.name, group.labels)
                prev = opened.get(fp)
                t = transitions.get(fp)
                was = prev.state if prev is not None else "none"
                after = ("none" if t.drop else t.candidate.state) if t is not None else was
                results.append((spec.name, group, was, after))
    states_by_rule: dict[str, set[str]] = {}
    for name, _, _, after in results:
        states_by_rule.setdefault(name, set()).add(after)
    failed = [f"{name}: expected {state}, got {', '.join(sorted(states_by_rule.get(name, {'none'})))}"
              for name, state in wanted.items() if state not in states_by_rule.get(name, {"none"})]
    if fmt == "json":
        json.dump({"at": _iso(moment), "groups": [
            {"rule": n, "labels": dict(g.labels), "value": g.value, "holds": g.holds, "before": b, "after": a}
            for n, g, b, a in results], "failed": failed}, out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        print(f"rules evaluated at {_when(moment)} (nothing stored)", file=out)
        for name, group, before, after in results:
            mark = "HOLDS" if group.holds else "     "
            change = after if after == before else f"{before} -> {after}"
            print(f"  {mark} {name:<34} {_labels(group.labels):<30} value {group.value:g}  {change}", file=out)
        for line in failed:
            print(f"FAILED {line}", file=out)
    return 1 if failed else 0


def rules_export(config: Config, plugins: Plugins, out: TextIO, err: TextIO | None = None) -> int:
    from normagent.deviations import configured_rules, metric_kinds
    from normagent.rules import prometheus_rules

    active = [r.rule for r in configured_rules(config, plugins) if r.active]
    text, skipped = prometheus_rules(active, metric_kinds(plugins))
    out.write(text)
    if skipped:
        print(f"normagent: left out (they read rollups or events only the ledger keeps): {', '.join(skipped)}", file=err or sys.stderr)
    return 0


def probe_forwarders(config: Config, plugins: Plugins) -> None:
    """``check-config``: raise ``ConfigError`` naming file, line and key for each forwarder that
    cannot be reached now."""
    from normagent.config import format_key, locate
    from normagent.deviations import forwarder_problems
    from normagent.errors import ConfigError, Problem

    problems = []
    for name, found in forwarder_problems(config, plugins).items():
        for key, message in found:
            path = ("forwarders", name, *[k for k in key.split(".") if k])
            problems.append(Problem(config.path, format_key(path), message, locate(config.path, path)))
    if problems:
        raise ConfigError(problems)


def _parse_time(text: str) -> datetime:
    """``--at``: a time in the years a ledger can hold data of (a rule's window reaches back from it,
    so year 1 had none before it to reach)."""
    from normagent.report.command import LAST_YEAR

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at {text!r}: expected a time like 2026-11-23T07:00:00Z") from None
    if not 2000 <= moment.year <= LAST_YEAR:
        raise UsageError(f"--at {text!r}: expected a time in the years 2000 to {LAST_YEAR}")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


def _iso_ts(ts: float | None) -> str | None:
    return _iso(_dt(ts))

