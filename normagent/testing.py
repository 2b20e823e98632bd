"""Test helpers for plugin authors and for normagent's own tests: fakes, not mocks.

Every seam of ``RunContext`` has a small concrete fake here (``FakeClock``, ``FakeHost``,
``MemoryCheckpoints``, ``recorded_command``), and ``run_collector_once`` runs a collector the way
the scheduler does, without a daemon. A plugin's tests import this module; its shipped code never
does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import field, replace
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from normagent.errors import SnmpError
from normagent.ledger import MemoryCheckpoints  # noqa: F401 - re-exported for plugin tests
from normagent.model import (
    Batch,
    CollectorSpec,
    CommandResult,
    LogBlock,
    NoMaintenance,
    Observation,
    ParseContext,
    ParseResult,
    Rollup,
    RollupRows,
    RunContext,
    SnmpAuth,
    SnmpVarBind,
    TextBlock,
)
from normagent.privacy import Pseudonymiser
from normagent.records import dataclass

if TYPE_CHECKING:
    from normagent.ledger import Ledger

TEST_KEY = b"normagent-test-key-0123456789abc"  # 32 bytes, for stable pseudonyms in goldens
EPOCH = datetime(2026, 11, 23, 7, 0, 0, tzinfo=timezone.utc)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = EPOCH) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(timezone.utc)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


@dataclass
class FakeHost:
    """Fixed host facts. Every field can be set by a test; ``disks`` maps mount → usage."""

    boot: float = 1_763_880_000.0
    cpu: dict[str, float] = field(default_factory=lambda: {"user": 100.0, "system": 50.0, "idle": 1000.0, "iowait": 5.0})
    cpus: int = 2
    load: tuple[float, float, float] = (0.1, 0.2, 0.3)
    mem: dict[str, float] = field(
        default_factory=lambda: {"total": 8 * 2**30, "available": 6 * 2**30, "swap_total": 2**30, "swap_used": 0.0}
    )
    disks: dict[str, dict[str, float]] = field(
        default_factory=lambda: {"/": {"total": 100 * 2**30, "used": 40 * 2**30, "free": 60 * 2**30}}
    )
    processes: set[str] = field(default_factory=set)

    def boot_time(self) -> float:
        return self.boot

    def cpu_seconds(self) -> Mapping[str, float]:
        return dict(self.cpu)

    def cpu_count(self) -> int:
        return self.cpus

    def load_average(self) -> tuple[float, float, float]:
        return self.load

    def memory(self) -> Mapping[str, float]:
        return dict(self.mem)

    def disk_usage(self, path: str) -> Mapping[str, float]:
        try:
            return dict(self.disks[path])
        except KeyError:
            raise FileNotFoundError(path) from None

    def process_running(self, name: str) -> bool:
        return name in self.processes


def recorded_command(
    outputs: Mapping[tuple[str, ...], CommandResult | str | bytes | Path],
) -> Any:
    """A ``CommandRunner`` that answers from recorded outputs instead of running anything.

    Values may be a ``CommandResult``, the stdout text/bytes of a successful run, or a path to a file
    under ``tests/fixtures/commands/`` holding that stdout. An unrecorded argv answers like a missing
    command (returncode ``None``, error ``"not found"``) and is remembered in ``.calls``.
    """

    calls: list[tuple[str, ...]] = []

    def run(argv: Sequence[str], *, timeout: float = 10.0) -> CommandResult:
        key = tuple(argv)
        calls.append(key)
        answer = outputs.get(key)
        if answer is None:
            return CommandResult(argv=key, returncode=None, error="not found")
        if isinstance(answer, CommandResult):
            return answer
        if isinstance(answer, Path):
            answer = answer.read_bytes()
        if isinstance(answer, str):
            answer = answer.encode()
        return CommandResult(argv=key, returncode=0, stdout=answer)

    run.calls = calls  # type: ignore[attr-defined]
    return run


class NoSnmp:
    """An SNMP client for contexts that must not poll anything."""

    def session(self, target: str, *, auth: SnmpAuth, timeout: float, retries: int = 1) -> Any:
        raise SnmpError(f"SNMP is not available in this test (asked {target})")

    def get(self, target: str, oids: Sequence[str], *, auth: SnmpAuth, timeout: float) -> list[SnmpVarBind]:
        raise SnmpError(f"SNMP is not available in this test (asked {target})")

    def walk(
        self, target: str, oid: str, *, auth: SnmpAuth, timeout: float, max_rows: int = 10_000
    ) -> list[SnmpVarBind]:
        raise SnmpError(f"SNMP is not available in this test (asked {target})")


def test_pseudonymiser() -> Pseudonymiser:
    """The pseudonymiser every test context uses: stable, so goldens can hold pseudonyms."""
    return Pseudonymiser(TEST_KEY)


test_pseudonymiser.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def default_settings(spec: CollectorSpec) -> Any:
    """An instance of the collector's settings type with every default."""
    return spec.settings() if spec.settings is not None else None


def make_context(
    spec: CollectorSpec,
    *,
    settings: Any = None,
    root: Path = Path("/"),
    clock: FakeClock | None = None,
    host: Any = None,
    run_command: Any = None,
    snmp: Any = None,
    state: Any = None,
    timeout: float | None = None,
    stop_requested: Callable[[], bool] | None = None,
    maintenance: Any = None,
    syslog_spool: Any = None,
) -> RunContext:
    """A ``RunContext`` for ``spec`` made of fakes; anything not given gets a harmless default.

    ``stop_requested`` plays the agent shutting down (e.g. ``event.is_set``).
    """
    clock = clock or FakeClock()
    return RunContext(
        collector=spec.name,
        settings=settings if settings is not None else default_settings(spec),
        clock=clock,
        host=host or FakeHost(),
        root=root,
        run_command=run_command or recorded_command({}),
        snmp=snmp or NoSnmp(),
        state=state if state is not None else MemoryCheckpoints(),
        pseudonymise=test_pseudonymiser(),
        log=structlog.get_logger("normagent.test").bind(collector=spec.name),
        deadline=clock.monotonic() + (timeout if timeout is not None else spec.timeout.total_seconds()),
        stop_requested=stop_requested or (lambda: False),
        maintenance=maintenance if maintenance is not None else NoMaintenance(),
        syslog_spool=syslog_spool,
    )


def run_collector_once(spec: CollectorSpec, ledger: Ledger | None = None, **context: Any) -> list[Batch]:
    """Run ``spec.collect`` once, as the scheduler would, and return what it yielded.

    With a ``ledger``, each batch is committed to it (and checkpoints are read from it), so a test
    can run a collector twice and see it resume. Without one, checkpoints go to the
    ``MemoryCheckpoints`` passed as ``state=`` (or a fresh one).
    """
    if ledger is not None:
        ledger.declare(spec.metrics)
        context.setdefault("state", ledger.checkpoints(spec.name))
    ctx = make_context(spec, **context)
    batches: list[Batch] = []
    for batch in spec.collect(ctx):
        if not isinstance(batch, Batch):
            raise TypeError(f"{spec.name}: collect() must yield Batch, got {type(batch).__name__}")
        if ledger is not None:
            ledger.commit(spec.name, batch)
        elif isinstance(ctx.state, MemoryCheckpoints):
            ctx.state.apply(batch.checkpoints)
        batches.append(batch)
    return batches


def observations(batches: Iterable[Batch]) -> list[Any]:
    """All observations of some batches, in order."""
    return [obs for batch in batches for obs in batch.observations]


def rollup_rows(observations: Iterable[Observation]) -> list[Rollup]:
    """The rollup rows some observations add, one ``Rollup`` each: a ``Rollup`` as it is, a
    ``RollupRows`` as the ``Rollup`` of each of its keys whose value is not 0, in key order
    (what the ledger writes for it), in the order the observations come."""
    out: list[Rollup] = []
    for obs in observations:
        if isinstance(obs, Rollup):
            out.append(obs)
        elif isinstance(obs, RollupRows):
            out += [Rollup(obs.name, obs.day, key, value) for key, value in sorted(obs.values.items()) if value]
    return out


def parse_text(
    parser: Any,
    text: str | bytes,
    *,
    now: datetime = EPOCH,
    tz: tzinfo = timezone.utc,
    settings: Any = None,
    examples: int = 0,
    origin: str = "test.log",
    mtime: datetime | None = None,
    maintenance: Any = None,
) -> ParseResult:
    """Run a text parser over some lines (a trailing newline is added if missing); ``maintenance``
    is the calendar the parser sees (default: nothing planned)."""
    data = text.encode() if isinstance(text, str) else text
    if data and not data.endswith(b"\n"):
        data += b"\n"
    block: LogBlock = TextBlock(data=data, origin=origin, mtime=mtime or now)
    ctx = ParseContext(
        now=now, tz=tz, pseudonymise=test_pseudonymiser(), settings=settings, examples=examples,
        maintenance=maintenance if maintenance is not None else NoMaintenance(),
    )
    result: ParseResult = parser(block, ctx)
    return result


def with_settings(spec: CollectorSpec, **changes: Any) -> Any:
    """The spec's default settings with some fields changed."""
    return replace(default_settings(spec), **changes)
