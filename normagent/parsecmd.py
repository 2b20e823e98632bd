"""``normagent parse FILE...``: run the agent's own parsers over log files, like ``fail2ban-regex``.

For an operator who wants to know whether their logs are understood: every collector that has a
parser (``CollectorSpec.parser``, the same function the daemon runs on each block) reads each
input — plain, gzip, bzip2 or xz text, ``journalctl -o json`` output, ``.evtx``, or ``-`` for
stdin — and the command prints, per input and collector, how many lines were parsed, ignored and
unparsed, the counts per metric and labels, how many distinct keys each report rollup got over the
whole input (``rollup_distinct_keys``: accounts or networks, not the rows ``collect --once``
shows), a few unparsed candidate lines (``--examples``), and the line numbers of malformed lines
the parser named (a corrupt apt history stanza: where, and what is wrong), as text or JSON.

Nothing is written: no ledger, no checkpoint, and the pseudonym key is a random one held in
memory for this run only (so pseudonyms printed here mean nothing, and the daemon's key file is
neither read nor created). Unparsed example lines may hold personal data: they go to the
person who asked, on stdout, and nowhere else.

Exit status: 0 when every input was read (whatever the parsers made of it; damage the EVTX reader
skipped, a chunk that crashed the parser among it, and where compressed text ends early or is
damaged, is listed with the input), 66 (``InputError``)
when an input cannot be read or is not what it must be (an ``.evtx`` that is empty, cut inside its
header, text or random bytes), 64 (``UsageError``) for an unknown collector name.

Imports model, errors, privacy, loader (types), logs and (with a config) maintenance.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import field
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any, Literal, TextIO

from normagent.errors import REORDERING, UsageError
from normagent.logs import ParseJob, ParsedInput, check_input, host_zone, parse_each
from normagent.model import CollectorSpec, Count, MaintenanceCalendar, NoMaintenance, ParseContext, Rollup, RollupRows
from normagent.privacy import Pseudonymiser
from normagent.records import dataclass

if TYPE_CHECKING:
    from normagent.config import Config
    from normagent.loader import Plugins

Format = Literal["text", "json"]
MAX_PROBLEMS_SHOWN = 10  # malformed lines named per input and collector in the text output


@dataclass
class CollectorResult:
    """What one collector's parser made of one input."""

    collector: str
    parsed: int
    ignored: int
    unparsed: int
    failed_lines: int
    counts: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    rollup_distinct_keys: dict[str, int] = field(default_factory=dict)  # rollup name -> distinct keys in the input
    examples: list[str] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong)

    @property
    def recognised(self) -> bool:
        return bool(self.parsed or self.unparsed or self.failed_lines or self.problems)

    def as_json(self) -> dict[str, Any]:
        return {
            "collector": self.collector,
            "parsed": self.parsed,
            "ignored": self.ignored,
            "unparsed": self.unparsed,
            "failed_lines": self.failed_lines,
            "counts": [
                {"metric": metric, "labels": dict(labels), "value": value}
                for (metric, labels), value in sorted(self.counts.items())
            ],
            "rollup_distinct_keys": dict(sorted(self.rollup_distinct_keys.items())),
            "examples": list(self.examples),
            "problems": [{"line": line, "reason": reason} for line, reason in self.problems],
        }


@dataclass
class InputResult:
    """One input: its kind, its lines, and each collector's result."""

    path: str
    kind: str
    lines: int
    collectors: list[CollectorResult] = field(default_factory=list)
    damage: str = ""  # what the reader skipped as damaged (EVTX), for the person to know

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path.translate(_UNDECODABLE),
            "kind": self.kind,
            "lines": self.lines,
            "damage": self.damage,
            "collectors": [c.as_json() for c in self.collectors if c.recognised],
        }


def run_parse(
    paths: Sequence[str],
    *,
    config: Config | None,
    plugins: Plugins,
    fmt: Format = "text",
    examples: int = 5,
    collectors: Sequence[str] | None = None,
    out: TextIO | None = None,
    stdin: IO[bytes] | None = None,
    now: datetime | None = None,
) -> int:
    """Parse ``paths`` with every log collector's parser (or the named ones) and print the results.

    Args:
        paths: Files, or ``"-"`` for stdin (at most once).
        config: The validated configuration: a collector's configured settings (paths aside, its
            time zone, origins, business hours) are what its parser sees; None: defaults.
        plugins: The loaded plugins.
        fmt: ``"text"`` or ``"json"``.
        examples: Unparsed candidate lines to keep per input and collector.
        collectors: Only these collectors; None or empty: every collector with a parser.
        out: Where to print (stdout by default).
        stdin: What ``"-"`` reads (``sys.stdin.buffer`` by default).
        now: "Now" for year inference of classic stamps (tests); default: the wall clock.

    Returns:
        0 once every input was read.

    Raises:
        InputError: An input does not exist or cannot be read (nothing is printed for any).
        UsageError: An unknown collector name, a negative ``examples``, or ``-`` given twice.
    """
    out = out if out is not None else sys.stdout
    if examples < 0:
        raise UsageError("--examples must be 0 or more")
    if list(paths).count("-") > 1:
        raise UsageError("stdin (-) can be read only once")
    chosen = choose_collectors(plugins.collectors(), collectors or ())
    _check_inputs(paths)
    results = parse_paths(paths, chosen, config=config, examples=examples, stdin=stdin, now=now)
    if fmt == "json":
        text = json.dumps({"inputs": [r.as_json() for r in results]}, indent=2, ensure_ascii=False)
        out.write(text.translate(_JSON_ESCAPES) + "\n")
    else:
        write_text(results, out)
    return 0


def choose_collectors(available: Mapping[str, CollectorSpec], names: Sequence[str]) -> list[CollectorSpec]:
    """The collectors whose parsers run: the named ones, or every one that has a parser."""
    with_parser = {name: spec for name, spec in available.items() if spec.parser is not None}
    if not names:
        return [with_parser[name] for name in sorted(with_parser)]
    unknown = [n for n in names if n not in with_parser]
    if unknown:
        known = ", ".join(sorted(with_parser)) or "none"
        raise UsageError(f"no log collector named {', '.join(unknown)} (collectors with a parser: {known})")
    return [with_parser[n] for n in dict.fromkeys(names)]


def _check_inputs(paths: Iterable[str]) -> None:
    for path in paths:
        check_input(path)


def parse_paths(
    paths: Sequence[str],
    specs: Sequence[CollectorSpec],
    *,
    config: Config | None = None,
    examples: int = 5,
    stdin: IO[bytes] | None = None,
    now: datetime | None = None,
) -> list[InputResult]:
    """Every input through every chosen parser: each input is read once, and every block it
    yields goes to each parser in turn (``parse_each``)."""
    # One throwaway key for the whole run: the same account is the same pseudonym across inputs.
    pseudonymise = Pseudonymiser(secrets.token_bytes(32))
    moment = now or datetime.now(timezone.utc)
    calendar = _calendar(config)
    jobs = []
    for spec in specs:
        settings = _settings(spec, config)
        ctx = ParseContext(
            now=moment,
            tz=_zone(settings),
            pseudonymise=pseudonymise,
            settings=settings,
            examples=examples,
            maintenance=calendar,
        )
        jobs.append(ParseJob(spec.parser, ctx, tuple(spec.metrics)))  # type: ignore[arg-type]  # chosen: parser set
    results: list[InputResult] = []
    for parsed in parse_each(paths, jobs, stdin=stdin):
        first = parsed[0] if parsed else None
        if first is None:
            continue
        found = InputResult(path=first.path, kind=first.kind, lines=first.lines, damage=first.damage)
        found.collectors.extend(_collector_result(spec, one) for spec, one in zip(specs, parsed, strict=True))
        results.append(found)
    return results


def _calendar(config: Config | None) -> MaintenanceCalendar:
    """The maintenance calendar of ``config`` (a change in a planned window is labelled planned,
    as the daemon would); without a config, nothing is planned."""
    settings = config.sections.get("maintenance") if config is not None else None
    if settings is None:
        return NoMaintenance()
    from normagent.maintenance import Calendar

    return Calendar(settings)


def _settings(spec: CollectorSpec, config: Config | None) -> Any:
    if config is not None and spec.name in config.collectors:
        return config.collectors[spec.name].settings
    return spec.settings() if spec.settings is not None else None


def _zone(settings: Any) -> Any:
    """The zone of stamps without offset: the settings' file timezone if they name one, else the host's."""
    files = getattr(settings, "files", None)
    name = getattr(files, "timezone", "") or getattr(settings, "timezone", "")
    if isinstance(name, str) and name:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    return host_zone()


def _collector_result(spec: CollectorSpec, parsed: ParsedInput) -> CollectorResult:
    result = parsed.result
    order = {m.name: m.labels for m in spec.metrics}
    counts: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    keys: dict[str, set[str]] = {}
    for obs in result.observations:
        if isinstance(obs, Count):
            # Labels in the order the metric declares them, as Prometheus shows them.
            ranks = {name: i for i, name in enumerate(order.get(obs.metric, ()))}
            labels = tuple(sorted(obs.labels, key=lambda kv: (ranks.get(kv[0], len(ranks)), kv[0])))
            counts[(obs.metric, labels)] = counts.get((obs.metric, labels), 0.0) + obs.value
        elif isinstance(obs, Rollup):
            keys.setdefault(obs.name, set()).add(obs.key)
        elif isinstance(obs, RollupRows):
            keys.setdefault(obs.name, set()).update(key for key, value in obs.values.items() if value)
    return CollectorResult(
        collector=spec.name,
        parsed=result.parsed,
        ignored=result.ignored,
        unparsed=result.unparsed,
        failed_lines=parsed.failed_lines,
        counts={k: v for k, v in counts.items() if v},
        rollup_distinct_keys={name: len(v) for name, v in keys.items()},
        examples=list(result.examples),
        problems=list(parsed.problems),
    )


def write_text(results: Sequence[InputResult], out: TextIO) -> None:
    """The human-readable form."""
    for n, item in enumerate(results):
        if n:
            out.write("\n")
        out.write(f"{_shown(item.path)} ({item.kind}, {_n(item.lines)} {'records' if item.kind != 'text' else 'lines'})\n")
        if item.damage:
            out.write(f"  damaged, skipped: {item.damage}\n")
        shown = [c for c in item.collectors if c.recognised]
        if not shown:
            out.write("  no parser recognised anything in this input\n")
            continue
        for c in shown:
            out.write(f"  {c.collector}: {_n(c.parsed)} parsed, {_n(c.ignored)} ignored, {_n(c.unparsed)} unparsed")
            out.write(f", {_n(c.failed_lines)} failed the parser\n" if c.failed_lines else "\n")
            width = max((len(_series(k)) for k in c.counts), default=0)
            for key, value in sorted(c.counts.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1])):
                out.write(f"    {_series(key):<{width}}  {_n(value)}\n")
            for rollup, distinct in sorted(c.rollup_distinct_keys.items()):
                out.write(f"    rollup {rollup}: {_n(distinct)} distinct key{'s' if distinct != 1 else ''}\n")
            if c.examples:
                out.write("    unparsed, for example:\n")
                for line in c.examples:
                    out.write(f"      {_shown(line)}\n")
            if c.problems:
                shown_problems = c.problems[:MAX_PROBLEMS_SHOWN]
                out.write(f"    malformed: {_n(len(c.problems))} line{'s' if len(c.problems) != 1 else ''}\n")
                for number, reason in shown_problems:
                    out.write(f"      line {number:,}: {_shown(reason)}\n")
                if len(c.problems) > len(shown_problems):
                    out.write(f"      … and {_n(len(c.problems) - len(shown_problems))} more\n")


# C0 controls but tab, DEL and C1 controls, as \xNN: a NUL left by a crash, or an escape sequence
# in a name an attacker chose, must reach the terminal as text, not as what it would do there.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0))}
# A file name's bytes that are not UTF-8 come as lone surrogates (PEP 383), which a UTF-8 stdout
# refuses (errors="strict" under a locale such as nb_NO.UTF-8): the byte, as \xNN, instead.
_UNDECODABLE = {code: f"\\x{code - 0xDC00:02x}" for code in range(0xDC80, 0xDD00)}
_ESCAPES.update(_UNDECODABLE)
# What reorders a line (errors.REORDERING): an unparsed line with U+202E showed its text turned round.
_ESCAPES.update({code: f"\\u{code:04x}" for code in REORDERING})
# The JSON escapes C0 controls itself; DEL, C1 controls (U+009B is CSI to a terminal) and the
# reordering characters went out raw with ensure_ascii=False. Only inside strings can they be, so
# a \u escape there is the same JSON value.
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x7F, 0xA0), *REORDERING)}


def _shown(text: str) -> str:
    """``text`` with control characters written as ``\\xNN``, for a terminal."""
    return text.translate(_ESCAPES)


def _series(key: tuple[str, tuple[tuple[str, str], ...]]) -> str:
    metric, labels = key
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return _shown(f"{metric}{{{inner}}}" if inner else metric)  # a label value may come from a log


def _n(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3f}"
