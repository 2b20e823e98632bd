"""A plugin's default rules at work in a test: installed in a real ledger as the agent installs
them, then what they made of the observations its collectors committed.

The rules are completed (``rules.complete``) and evaluated by the real engine inside each commit
and by ``ledger.evaluate_rules()`` for what time alone changes; a test reads the candidates and
the change documents a forwarder would receive.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from normagent.ledger import Ledger
from normagent.model import RuleSpec
from normagent.rules import Engine, EngineSettings, complete

HOLD = timedelta(minutes=15)
FORWARDER = "hook"


def install(ledger: Ledger, rules: Iterable[RuleSpec]) -> Engine:
    """The rules, completed with the default hold, evaluated by the ledger from now on."""
    engine = Engine([complete(rule, HOLD) for rule in rules], EngineSettings(host_id=ledger.host_id, location="Legekontoret"))
    ledger.use_rules(engine, (FORWARDER,))
    return engine


def firing(ledger: Ledger) -> dict[str, list[dict[str, str]]]:
    """Rule → the labels of each of its firing candidates."""
    out: dict[str, list[dict[str, str]]] = {}
    for cand in ledger.candidates(["firing"]):
        out.setdefault(cand.rule, []).append(dict(cand.labels))
    return {rule: sorted(found, key=lambda labels: sorted(labels.items())) for rule, found in out.items()}


def fired(ledger: Ledger, rule: str) -> list[dict[str, Any]]:
    """The change documents of ``rule`` waiting for the forwarder (its "firing" changes)."""
    return [row.document for row in ledger.due_deliveries(FORWARDER, 1000) if row.document["rule"] == rule]


def what(document: dict[str, Any]) -> tuple[str, str]:
    """A change's "what happened", in bokmål and English."""
    return document["texts"]["nb"]["what"], document["texts"]["en"]["what"]
