"""The annotated log lines of tests/fixtures/logs/access/linux.txt, and what a verdict looks like
in a ``ParseResult`` (shared by the text, journald and fail2ban tests)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from normagent import Count, ParseResult, Rollup
from normagent.plugins.access.tally import FAILED_LOGINS, LOCKOUTS, PASSWORD_RESETS, SUCCESS_BY_NETWORK

FIXTURES = Path(__file__).parents[2] / "fixtures" / "logs" / "access"
LINUX = FIXTURES / "linux.txt"
RULE = re.compile(r"^# ([A-Z]+\d*) ")


@dataclass(frozen=True)
class Case:
    rule: str  # "S1", "P2" ... (docs/access-counting-rules.md)
    what: str
    expect: str  # "fail sshd bad_password 1", "lockout sshd", "reset passwd unknown", "success", "ignored", "unparsed"
    line: str
    number: int  # line number in the fixture file

    @property
    def id(self) -> str:
        return f"{self.rule}:{self.number}"


def load_cases(path: Path = LINUX) -> list[Case]:
    cases: list[Case] = []
    rule = what = expect = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("# expect: "):
            expect = line[len("# expect: ") :].strip()
            continue
        head = RULE.match(line)
        if head:
            rule, what = head.group(1), line[head.end() :]
            continue
        if line.startswith("#"):
            continue
        assert expect, f"{path}:{number}: a log line without '# expect:'"
        cases.append(Case(rule, what, expect, line, number))
        expect = ""
    return cases


def verdict(result: ParseResult) -> str:
    """The verdict a one-line (or one-record) result stands for, in the fixture's words."""
    if result.unparsed:
        return "unparsed"
    if not result.parsed:
        return "ignored"
    counts = [o for o in result.observations if isinstance(o, Count)]
    if not counts:
        rollups = {o.name for o in result.observations if isinstance(o, Rollup)}
        return "success" if rollups == {SUCCESS_BY_NETWORK} else f"rollups {sorted(rollups)}"
    assert len(counts) == 1, counts
    count = counts[0]
    labels = dict(count.labels)
    if count.metric == FAILED_LOGINS:
        return f"fail {labels['source']} {labels['reason']} {int(count.value)}"
    if count.metric == LOCKOUTS:
        return f"lockout {labels['source']}"
    if count.metric == PASSWORD_RESETS:
        return f"reset {labels['source']} {labels['kind']}"
    return f"{count.metric} {labels}"


def totals(results: list[ParseResult]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Counts summed over results, by (metric, labels)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for result in results:
        for obs in result.observations:
            if isinstance(obs, Count):
                out[(obs.metric, obs.labels)] = out.get((obs.metric, obs.labels), 0.0) + obs.value
    return out


def expected_totals(cases: list[Case]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What the fixture's verdicts add up to, by (metric, labels)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for case in cases:
        words = case.expect.split()
        if words[0] == "fail":
            key = (FAILED_LOGINS, (("reason", words[2]), ("source", words[1])))
            out[key] = out.get(key, 0.0) + int(words[3])
        elif words[0] == "lockout":
            key = (LOCKOUTS, (("source", words[1]),))
            out[key] = out.get(key, 0.0) + 1
        elif words[0] == "reset":
            key = (PASSWORD_RESETS, (("kind", words[2]), ("source", words[1])))
            out[key] = out.get(key, 0.0) + 1
    return out
