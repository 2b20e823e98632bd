"""Default rules are data: each watches a metric the plugin declares or a rollup its parsers emit."""

from __future__ import annotations

import re
from datetime import time
from zoneinfo import ZoneInfo

import pytest

from normagent import ParseContext, RecordBlock, Rollup, RuleSpec
from normagent.plugins.access.collectors import COLLECTORS, BusinessHours, LoginSettings
from normagent.plugins.access.parse import parse_auth_lines
from normagent.plugins.access.rules import RULES
from normagent.plugins.access.tally import RESET_OUTSIDE_HOURS
from normagent.plugins.access.windows import parse_windows
from normagent.testing import EPOCH, parse_text, test_pseudonymiser
from tests.plugins.access.cases import LINUX
from tests.plugins.access.test_access_windows import event

OSLO = ZoneInfo("Europe/Oslo")
DECLARED = {m.name: m for spec in COLLECTORS for m in spec.metrics}


def emitted_rollups() -> set[str]:
    """Rollup names the parsers emit over the fixtures (and a Windows 4624/4740 and an off-hours reset)."""
    lines = [line for line in LINUX.read_text().splitlines() if line and not line.startswith("#")]
    lines.append("Nov 22 03:00:00 h passwd[1]: pam_unix(passwd:chauthtok): password changed for alice")
    result = parse_text(parse_auth_lines, "\n".join(lines), tz=OSLO, settings=LoginSettings())
    ctx = ParseContext(now=EPOCH, tz=OSLO, pseudonymise=test_pseudonymiser())
    windows = parse_windows(RecordBlock((event(4624, {"IpAddress": "10.0.0.5"}), event(4740, {"TargetUserName": "a"})), "t"), ctx)
    return {o.name for o in result.observations + windows.observations if isinstance(o, Rollup)}


EMITTED = emitted_rollups()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_each_rule_watches_something_the_plugin_produces(rule: RuleSpec) -> None:
    kind, _, target = rule.watch.partition(":")
    if kind == "rollup":
        assert target in EMITTED
        assert rule.group_by == ("key",)
    else:
        assert rule.watch in DECLARED
        assert set(rule.group_by) <= set(DECLARED[rule.watch].labels)
    for matcher in rule.labels.values():
        if matcher.startswith("rollup:"):
            assert matcher.split(":", 1)[1] in EMITTED


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_summaries_use_only_counts_thresholds_and_pseudonyms(rule: RuleSpec) -> None:
    fields = set(re.findall(r"\{(\w+)\}", rule.summary))

    assert fields <= {"value", "threshold", "key", *rule.group_by}
    assert rule.name.startswith("access.") and rule.section == "Driftsstatus"


def test_the_rule_set_covers_the_issue() -> None:
    names = {r.name for r in RULES}

    assert {"access.failed_from_network", "access.account_locked", "access.success_after_failures"} <= names


@pytest.mark.parametrize(
    ("stamp", "outside"),
    [
        ("Nov 23 10:00:00", False),  # Monday morning
        ("Nov 23 06:59:59", True),  # before work
        ("Nov 23 17:00:00", True),  # after work
        ("Nov 22 12:00:00", True),  # Sunday
    ],
)
def test_resets_outside_business_hours_go_to_their_rollup(stamp: str, outside: bool) -> None:
    line = f"{stamp} h chpasswd[1]: pam_unix(chpasswd:chauthtok): password changed for bob"

    result = parse_text(parse_auth_lines, line, tz=OSLO, settings=LoginSettings())

    rolled = [o for o in result.observations if isinstance(o, Rollup) and o.name == RESET_OUTSIDE_HOURS]
    assert [(r.key, r.value) for r in rolled] == ([("chpasswd:reset", 1.0)] if outside else [])


def test_business_hours_can_be_turned_off_or_moved() -> None:
    line = "Nov 23 06:00:00 h chpasswd[1]: pam_unix(chpasswd:chauthtok): password changed for bob"
    off = LoginSettings(business_hours=BusinessHours(enabled=False))
    early = LoginSettings(business_hours=BusinessHours(start=time(5, 0)))

    for settings in (off, early):
        result = parse_text(parse_auth_lines, line, tz=OSLO, settings=settings)
        assert not [o for o in result.observations if isinstance(o, Rollup) and o.name == RESET_OUTSIDE_HOURS]


def test_business_hours_reject_impossible_weekdays() -> None:
    with pytest.raises(ValueError, match="ISO numbers"):
        BusinessHours(weekdays=(0, 8))
