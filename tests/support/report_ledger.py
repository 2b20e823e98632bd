"""A ledger with months of history for the report's tests and benchmarks, written through the
ledger's own API (commits at the hour they happen, collector runs, the real rules engine raising
and resolving deviation candidates, an acknowledgement), as an agent would have written it.

The history is deterministic (a seeded generator): the same arguments give the same ledger, so
golden files can be made from it. An outage of the agent (no runs, no counts) and a collector
that fails for some hours show up in the report's completeness.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from normagent.ledger import Ledger
from normagent.model import Batch, Count, Event, Gauge, Rollup, RunOutcome
from normagent.testing import FakeClock

FAILED = "normagent_failed_logins_total"
LOCKOUTS = "normagent_account_lockouts_total"
RESETS = "normagent_password_resets_total"
ERRORS = "normagent_eventlog_errors_total"
BOOTS = "normagent_boots_total"
UNEXPECTED = "normagent_unexpected_shutdowns_total"
DOWNTIME = "normagent_downtime_seconds_total"
EDI_MESSAGES = "normagent_edi_messages_total"
EDI_UNACK = "normagent_edi_unacknowledged_total"
EDI_RECEIPTS = "normagent_edi_receipts_total"
EDI_MISADDRESSED = "normagent_edi_misaddressed_messages_total"
EDI_STOP = "normagent_edi_stop_seconds_total"
UPDATES = "normagent_updates_applied_total"
PENDING = "normagent_updates_pending"
BLOCKED = "normagent_firewall_blocked_total"
RULE_CHANGES = "normagent_firewall_rule_changes_total"


@dataclass
class History:
    """What to write: the hours, the agent's outages, a collector's failures, the bursts that fire rules."""

    start: datetime
    end: datetime
    collectors: Sequence[str]
    outages: Sequence[tuple[datetime, datetime]] = ()
    failing: Sequence[tuple[str, datetime, datetime]] = ()
    bursts: Sequence[datetime] = ()  # hours with 250 failed logins (access.failed_logins_burst fires)
    misaddressed: Sequence[datetime] = ()  # hours with a mis-addressed message (a 72-hour candidate)
    ack_first: bool = True
    seed: int = 1
    scale: float = 1.0  # more or less traffic per hour
    fast: bool = True  # synchronous=OFF while writing: a fixture, not a durability test
    host_id: str = ""  # a fixed host id (golden files); empty: the ledger's own
    extra: dict[str, Any] = field(default_factory=dict)


def _within(moment: datetime, spans: Iterable[tuple[datetime, datetime]]) -> bool:
    return any(a <= moment < b for a, b in spans)


def write_history(path: Path, history: History, metrics: Iterable[Any], engine: Any = None) -> str:
    """Write ``history`` into a new ledger at ``path``; returns its host id."""
    clock = FakeClock(history.start)
    rng = random.Random(history.seed)
    with Ledger.open(path, clock=clock, metrics=metrics) as ledger:
        if history.fast:
            ledger._conn.execute("PRAGMA synchronous=OFF")
        if history.host_id:
            ledger._conn.execute("UPDATE meta SET value = ? WHERE key = 'host_id'", (history.host_id,))
            ledger.host_id = history.host_id
            ledger._write_marker()
        if engine is not None:
            ledger.use_rules(engine(ledger.host_id), ["report-test"])
        hour = history.start
        pending = 3
        was_down = False
        acked = False
        while hour < history.end:
            if _within(hour, history.outages):
                was_down = True
                hour += timedelta(hours=1)
                continue
            clock._now = hour + timedelta(minutes=7)
            _hour(ledger, clock, rng, hour, history, was_down)
            if was_down:
                was_down = False
            if hour.hour == 6 and rng.random() < 0.3:
                pending = max(0, pending + rng.choice((-2, -1, 1, 2)))
                ledger.commit("updates.pending", Batch([Gauge(PENDING, pending, {"kind": "security"}), Gauge(PENDING, 2, {"kind": "other"})]))
            for name in history.collectors:
                ok = not any(name == c and a <= hour < b for c, a, b in history.failing)
                ledger.record_run(RunOutcome(name, clock.now(), 0.05, ok, "" if ok else "timeout"))
            if engine is not None:
                clock._now = hour + timedelta(minutes=50)
                ledger.evaluate_rules()
                if history.ack_first and not acked:
                    firing = ledger.candidates(("firing",))
                    if firing:
                        ledger.ack(firing[-1].id, "Fulgt opp av driftsleverandøren")
                        acked = True
            hour += timedelta(hours=1)
        return ledger.host_id


def _hour(ledger: Ledger, clock: FakeClock, rng: random.Random, hour: datetime, history: History, after_outage: bool) -> None:
    s = history.scale
    business = 7 <= hour.hour < 17 and hour.weekday() < 5
    obs: list[Any] = []
    failed = int(rng.randint(0, 6) * s) + (250 if hour in history.bursts else 0)
    if failed:
        obs.append(Count(FAILED, {"source": "sshd", "reason": "bad_password"}, failed))
        obs.append(Rollup("access.failed_by_account", hour.date(), f"acct-{rng.randint(1, 5):02d}", failed, hour, hour + timedelta(minutes=30)))
        obs.append(Rollup("access.failed_by_network", hour.date(), f"net-{rng.randint(1, 9):02d}", failed, hour, hour + timedelta(minutes=30)))
    if rng.random() < 0.02:
        obs.append(Count(LOCKOUTS, {"source": "sshd"}, 1))
    if business and rng.random() < 0.05:
        obs.append(Count(RESETS, {"source": "passwd", "kind": "reset"}, 1))
    errors = rng.randint(0, 3)
    if errors:
        obs.append(Count(ERRORS, {"log": "journal", "origin": "cron.service"}, errors))
    if business:
        sent = int(rng.randint(2, 12) * s)
        obs.append(Count(EDI_MESSAGES, {"direction": "out", "msg_type": "EPIKRISE"}, sent))
        obs.append(Count(EDI_MESSAGES, {"direction": "in", "msg_type": "APPREC"}, sent))
        obs.append(Count(EDI_RECEIPTS, {"msg_type": "EPIKRISE", "status": "1"}, sent))
        if rng.random() < 0.04:
            obs.append(Count(EDI_RECEIPTS, {"msg_type": "EPIKRISE", "status": "2"}, 1))
        if rng.random() < 0.03:
            obs.append(Count(EDI_UNACK, {"msg_type": "EPIKRISE", "receipt": "application"}, 1))
    if hour in history.misaddressed:
        obs.append(Count(EDI_MISADDRESSED, {"direction": "out", "msg_type": "EPIKRISE"}, 1))
    blocked = int(rng.randint(20, 400) * s)
    obs.append(Count(BLOCKED, {"device": "local", "direction": "in", "proto": "tcp"}, blocked))
    if rng.random() < 0.005:
        obs.append(Count(RULE_CHANGES, {"device": "local", "planned": "false"}, 1))
    if hour.hour == 3 and rng.random() < 0.2:
        obs.append(Count(UPDATES, {"kind": "security", "result": "success"}, rng.randint(1, 4)))
    if after_outage:
        obs.append(Count(BOOTS, {}, 1))
        obs.append(Count(UNEXPECTED, {"evidence": "wtmp"}, 1))
        down = _outage_before(hour, history)
        obs.append(Count(DOWNTIME, {"planned": "false"}, down))
        obs.append(Event("system.boot", hour + timedelta(minutes=2), f"boot-{hour.isoformat()}",
                         {"orderly": False, "planned": False, "downtime_seconds": down, "downtime_exact": False, "evidence": "wtmp"}))
    ledger.commit("fixture", Batch(obs))


def _outage_before(hour: datetime, history: History) -> float:
    for a, b in history.outages:
        if b == hour:
            return (b - a).total_seconds()
    return 3600.0


def month_start(year: int, month: int, tz: Any = timezone.utc) -> datetime:
    return datetime(year, month, 1, tzinfo=tz).astimezone(timezone.utc)


def day(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
