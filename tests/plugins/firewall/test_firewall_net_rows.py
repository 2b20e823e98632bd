"""A backlog's source networks counted per (UTC day, /24) across blocks: ``_netfilter.NetRows``
(C) against its definition ``parse.NetRowsPy``, the carry that holds them (a ``LiveCarry``: a
value, named and written as JSON when a batch is committed), and counting exactly once through
the log driver when a run dies between batches or a parser fails inside one.

Under CI a missing extension fails (the test scripts build it); elsewhere the C half skips.
"""

from __future__ import annotations

import json
import random
import struct
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from normagent import LiveCarry, ParseContext, ParseResult, TextBlock
from normagent.ledger import Ledger
from normagent.logs import FileSource, file_log_collector
from normagent.model import CollectorSpec, carry_json
from normagent.plugins.firewall import parse
from normagent.plugins.firewall.collectors import LINUX_METRICS, LinuxSettings
from normagent.plugins.firewall.parse import (
    BY_NETWORK,
    CARRY_FROM,
    NetRowsPy,
    netfilter_scan_py,
    network_pseudonyms,
    packed_counts,
    parse_appliance_lines,
    parse_linux_lines,
    v4_net,
)
from normagent.privacy import Pseudonymiser
from normagent.testing import FakeClock, make_context, rollup_rows, run_collector_once, test_pseudonymiser
from tests.plugins.firewall import test_firewall_fastpaths as fastpaths
from tests.support.tools import require_extension

SETTINGS = fastpaths.SETTINGS
DAY = date(2026, 11, 23).toordinal()


def encode(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")


def c_module() -> Any:
    return require_extension("normagent.plugins.firewall._netfilter")


def bench_lines(n: int, seed: int) -> list[str]:
    return [line.rstrip("\n") for line in fastpaths.BENCH.netfilter_lines(n, random.Random(seed))[0]]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# NetRows (C) is NetRowsPy

# A block: the fast-path tests' lines (real, generated, odd) and the benchmark's scan lines.
blocks = st.lists(fastpaths.netfilter_lines | st.sampled_from(bench_lines(300, 3)), max_size=40).map(encode)
days = st.sampled_from([1, DAY, DAY + 1, date.max.toordinal()])
# Which heads count: all, none, or those of blocked packets (as the fast path decides).
choices = st.sampled_from(["all", "none", "blocked"])
steps = st.lists(st.tuples(blocks, days, choices, st.booleans()), max_size=8)


def _heads(scanned_v4: dict[bytes, dict[int, int]], choice: str) -> set[bytes]:
    heads = set(scanned_v4)
    if choice == "none":
        return set()
    if choice == "blocked":
        return {head for head in heads if parse.verdict_blocked(head.decode("ascii").split("IN=")[0])}
    return heads


def _named_by(rows_dict: dict[tuple[int, int], int]) -> dict[int, str]:
    """Names for some of the rows' /24s (the others left unnamed), some shared."""
    return {net: f"n{net % 5}" for _, net in rows_dict if net % 3}


@SETTINGS
@given(steps)
def test_net_rows_in_c_count_as_their_definition(plan: list[tuple[bytes, int, str, bool]]) -> None:
    """Blocks added to rows on various days with various heads, copied at random points: the C
    rows hold what the Python ones hold, the copies left behind stay as they were, and both name
    their rows alike."""
    module = c_module()
    c_rows, py_rows = module.NetRows(), NetRowsPy()
    kept: list[tuple[Any, dict[tuple[int, int], int]]] = []
    for data, day, choice, copy in plan:
        c_scanned, py_scanned = module.scan(data), netfilter_scan_py(data)
        if c_scanned is None:
            assert py_scanned is None
            continue
        assert py_scanned is not None and c_scanned[3].as_dict() == py_scanned[3]
        heads = _heads(py_scanned[3], choice)
        if copy:  # the carry's way: the next block adds to a copy, the old rows stay a value
            kept.append((c_rows, c_rows.as_dict()))
            c_rows, py_rows = c_rows.copy(), py_rows.copy()
        c_rows.add(c_scanned[3], day, heads)
        py_rows.add(py_scanned[3], day, heads)
        assert c_rows.as_dict() == py_rows.as_dict() and len(c_rows) == len(py_rows)
    for rows, then in kept:
        assert rows.as_dict() == then, "rows handed on are never changed by a later block"
    names = _named_by(py_rows.as_dict())
    assert sorted(c_rows.unnamed(names)) == sorted(py_rows.unnamed(names))
    full = {net: f"n{net % 5}" for _, net in py_rows.as_dict()}
    assert c_rows.named(full) == py_rows.named(full)
    if py_rows.unnamed(names):
        for rows in (c_rows, py_rows):
            with pytest.raises(KeyError):
                rows.named(names)


def test_net_rows_add_up_the_benchs_lines_per_day_and_network() -> None:
    """The benchmark's lines (a scan: ~10 lines per /24) over two days: the rows are the lines
    of each blocked packet's /24, per day, as counted line by line."""
    module = c_module()
    lines = bench_lines(4000, 9)
    want: Counter[tuple[int, int]] = Counter()
    for day in (DAY, DAY + 1):
        for line in lines:
            if "BLOCK" in line or "DROPPED" in line:
                a, b, c, _ = line.split("SRC=")[1].split(" ")[0].split(".")
                want[(day, int(a) << 16 | int(b) << 8 | int(c))] += 1
    for rows, scan in ((module.NetRows(), module.scan), (NetRowsPy(), netfilter_scan_py)):
        for day in (DAY, DAY + 1):
            data = encode(lines)
            scanned = scan(data)
            v4 = scanned[3]
            heads = _heads(v4 if isinstance(v4, dict) else v4.as_dict(), "blocked")
            rows.add(v4, day, heads)
        assert rows.as_dict() == want


def test_net_rows_refuse_what_they_cannot_count() -> None:
    """A day no date has, the wrong arguments, a /24 without a name: an error, nothing added."""
    module = c_module()
    nets_c = module.scan(encode(bench_lines(20, 1)))[3]
    nets_py = netfilter_scan_py(encode(bench_lines(20, 1)))[3]  # type: ignore[index]
    for rows, nets in ((module.NetRows(), nets_c), (NetRowsPy(), nets_py)):
        for day in (0, -1, date.max.toordinal() + 1):
            with pytest.raises(ValueError, match="ordinal"):
                rows.add(nets, day, set(nets_py))
        assert len(rows) == 0
    rows = module.NetRows()
    for args in [(nets_py, DAY, set()), (nets_c, "1", set()), (nets_c, DAY), (None, DAY, set())]:
        with pytest.raises(TypeError):
            rows.add(*args)
    with pytest.raises(TypeError):
        rows.add(nets_c, DAY, 5)  # heads that are no container
    for bad in (None, [1], "x"):
        with pytest.raises(TypeError):
            rows.unnamed(bad)
        with pytest.raises(TypeError):
            rows.named(bad)
    with pytest.raises(TypeError):
        module.NetRows(1)
    with pytest.raises(TypeError):
        type(nets_c)()  # a Nets comes from a scan only
    assert len(rows) == 0 and rows.named({}) == {} and rows.unnamed({}) == []


packed_counts_st = st.dictionaries(st.integers(min_value=0, max_value=0xFFFFFF), st.integers(min_value=1, max_value=2**40), max_size=50)


def pack(counts: dict[int, int]) -> bytes:
    return b"".join(struct.pack("=Qq", net, n) for net, n in counts.items())


@SETTINGS
@given(st.lists(st.tuples(packed_counts_st, days, st.booleans(), st.booleans()), max_size=8))
def test_packed_counts_add_up_in_c_as_in_their_definition(plan: list[tuple[dict[int, int], int, bool, bool]]) -> None:
    """filterlog's /24 counts, packed (its C scan) or as a dict (its reference), added on
    various days, with copies on the way: the C rows hold what the Python ones hold."""
    module = c_module()
    c_rows, py_rows = module.NetRows(), NetRowsPy()
    for counts, day, packed, copy in plan:
        if copy:
            c_rows, py_rows = c_rows.copy(), py_rows.copy()
        given_ = pack(counts) if packed else counts
        assert packed_counts(pack(counts)) == counts
        c_rows.add_packed(given_, day)
        py_rows.add_packed(given_, day)
        assert c_rows.as_dict() == py_rows.as_dict()


def test_filterlogs_packed_counts_are_what_its_reference_counts() -> None:
    """The C filterlog scan's packed /24s, added to rows, give the rows of its reference's dict."""
    module = c_module()
    filterlog = require_extension("normagent.plugins.firewall._filterlog")
    data = "".join(fastpaths.BENCH.filterlog_lines(3000, random.Random(2))[0]).encode()  # type: ignore[attr-defined]
    packed, reference = filterlog.scan(data)[2], parse._filterlog_scan_py(data)[2]  # noqa: SLF001
    assert isinstance(packed, bytes) and packed_counts(packed) == reference and len(reference) > 1000
    rows = module.NetRows()
    rows.add_packed(packed, DAY)
    assert rows.as_dict() == {(DAY, net): n for net, n in reference.items()}


@pytest.mark.parametrize("bad", [
    b"x" * 15, struct.pack("=Qq", 1 << 24, 1), struct.pack("=Qq", 5, 0), struct.pack("=Qq", 5, -3),
    {1 << 24: 1}, {-1: 1}, {5: 0}, {"5": 1}, {5: "1"},
], ids=repr)
def test_packed_counts_that_are_no_counts_are_refused(bad: object) -> None:
    module = c_module()
    for rows in (module.NetRows(), NetRowsPy()):
        with pytest.raises((ValueError, TypeError)):
            rows.add_packed(bad, DAY)
        with pytest.raises((ValueError, TypeError)):
            rows.add_packed({}, 0)
    with pytest.raises(TypeError):
        module.NetRows().add_packed([(5, 1)], DAY)


@SETTINGS
@given(st.lists(st.sampled_from(["0", "00", "01", "1", "9", "10", "99", "100", "199", "255", "256", "300", "999", "", "a", "٣"]), min_size=1, max_size=4))
def test_a_v4_network_number_is_named_as_its_addresses(octets: list[str]) -> None:
    """``v4_net`` takes what ``NetworkPseudonyms.v4`` takes (the scans count no other /24), and
    the rows' names (``NetworkPseudonyms.named``) are the pseudonyms of addresses in that /24."""
    pseudonymise = Pseudonymiser(b"k" * 32)
    prefix = ".".join(octets).encode("utf-8")
    names = network_pseudonyms(pseudonymise)
    net = v4_net(prefix)
    assert (net is None) == (names.v4(prefix) is None)
    if net is not None:
        rows = NetRowsPy()
        rows.add({b"h": {net: 2}}, DAY, {b"h"})
        assert names.named(rows) == {date.fromordinal(DAY): {pseudonymise.network(prefix.decode() + ".7"): 2}}


# ---------------------------------------------------------------------------------------------
# The carry: a value, written as JSON when a batch is committed

ORIGIN = "/var/log/kern.log"


def _ctx(carry: object = None, *, now: datetime = fastpaths.NOW) -> ParseContext:
    return ParseContext(now=now, tz=timezone.utc, pseudonymise=test_pseudonymiser(), settings=LinuxSettings(), carry=carry)  # type: ignore[arg-type]


def _full_block(lines: list[str]) -> TextBlock:
    one = "".join(line + "\n" for line in lines)
    return fastpaths.block(lines * (CARRY_FROM // len(one.encode()) + 1), ORIGIN)


SPOOL = "/var/lib/normagent/syslog/syslog.log"


def _filterlog_block(seed: int) -> TextBlock:
    lines = [line.rstrip("\n") for line in fastpaths.BENCH.filterlog_lines(2000, random.Random(seed))[0]]  # type: ignore[attr-defined]
    one = "".join(line + "\n" for line in lines)
    return fastpaths.block(lines * (CARRY_FROM // len(one.encode()) + 1), SPOOL)


@pytest.mark.parametrize("reader", ["netfilter", "filterlog"])
def test_a_carry_is_a_value_the_same_block_from_it_twice_counts_alike(reader: str) -> None:
    """The driver may give one carry again (to a block retried after a failure, to each line of
    a block parsed one by one): a block never changes the carry it started from."""
    if reader == "netfilter":
        parser, blocks, ctx = parse_linux_lines, [_full_block(bench_lines(2000, seed)) for seed in (4, 5)], _ctx
    else:
        parser, blocks = parse_appliance_lines, [_filterlog_block(seed) for seed in (4, 5)]

        def ctx(carry: object = None) -> ParseContext:
            return ParseContext(now=fastpaths.NOW, tz=timezone.utc, pseudonymise=test_pseudonymiser(), settings=fastpaths.DEVICES, carry=carry)  # type: ignore[arg-type]

    first = parser(blocks[0], ctx())
    carry = first.carry
    assert isinstance(carry, LiveCarry)
    before = json.dumps(carry_json(carry), sort_keys=True)
    second = blocks[1]

    again = [parser(second, ctx(carry)) for _ in range(2)]

    assert json.dumps(carry_json(carry), sort_keys=True) == before
    assert fastpaths.summary(again[0]) == fastpaths.summary(again[1])
    assert json.dumps(carry_json(again[0].carry), sort_keys=True) != before


def test_a_carry_in_memory_writes_what_one_read_back_from_json_writes_for_every_block_order() -> None:
    """Three full blocks, the carry handed on in memory or through JSON after any of them (a
    restart between batches), the rows written by the driver's empty block: the same rows, each
    block's lines once."""
    lines = [bench_lines(2000, seed) for seed in (4, 5, 6)]
    written = []
    for through_json in [(False, False, False), (True, False, True), (False, True, False), (True, True, True)]:
        carry: object = None
        for block_lines, via_json in zip(lines, through_json):
            carry = parse_linux_lines(_full_block(block_lines), _ctx(carry)).carry
            if via_json:
                carry = json.loads(json.dumps(carry_json(carry)))  # type: ignore[arg-type]
        end = parse_linux_lines(TextBlock(b"", ORIGIN, None, 0), _ctx(carry))
        assert end.carry is None
        written.append(Counter({(o.day, o.key): o.value for o in rollup_rows(end.observations) if o.name == BY_NETWORK}))
    alone = Counter[tuple[date, str]]()
    for block_lines in lines:
        result = parse_linux_lines(_full_block(block_lines), ParseContext(now=fastpaths.NOW, tz=timezone.utc, pseudonymise=test_pseudonymiser(), settings=LinuxSettings(), final=True))
        alone.update({(o.day, o.key): o.value for o in rollup_rows(result.observations) if o.name == BY_NETWORK})
    assert alone and all(rows == alone for rows in written)


def test_a_carry_unchanged_by_a_block_is_handed_on_as_it_is() -> None:
    """A full block without a blocked packet adds no row: the carry is the same object (the
    driver then writes no new checkpoint for it)."""
    carry = parse_linux_lines(_full_block(bench_lines(2000, 4)), _ctx()).carry
    quiet = _full_block([line for line in bench_lines(400, 7) if "usb" in line or "AUDIT" in line])
    assert parse_linux_lines(quiet, _ctx(carry)).carry is carry


# ---------------------------------------------------------------------------------------------
# Exactly once through the log driver: batches of several full blocks, a run that dies between
# them, a parser that fails inside one


def _backlog_collector(parser: Any = parse_linux_lines) -> CollectorSpec:
    return file_log_collector(
        "firewall.linux", help="netfilter, batches of two full blocks", parser=parser, settings=LinuxSettings,
        files=lambda s: s.files, metrics=LINUX_METRICS, commit_bytes=2 * CARRY_FROM,
    )


BACKLOG_SETTINGS = LinuxSettings(source="files", files=FileSource(paths=(ORIGIN,), start_at="beginning", block_bytes=CARRY_FROM + 4096, timezone="UTC"))


def _write_backlog(root: Path) -> tuple[int, Counter[tuple[date, str]]]:
    """~7 full blocks of the benchmark's lines; how many are blocked, and the rows by network."""
    lines = bench_lines(8000, 11)
    path = root / ORIGIN.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    alone = parse_linux_lines(fastpaths.block(lines, ORIGIN), ParseContext(now=fastpaths.NOW, tz=timezone.utc, pseudonymise=test_pseudonymiser(), settings=BACKLOG_SETTINGS, final=True))
    rows = Counter({(o.day, o.key): o.value for o in rollup_rows(alone.observations) if o.name == BY_NETWORK})
    return alone.parsed, rows


def _rows(ledger: Ledger) -> Counter[tuple[date, str]]:
    from normagent import Period

    period = Period(datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc))
    return Counter({(r.day, r.key): r.value for r in ledger.rollups(BY_NETWORK, period)})


def _blocked(ledger: Ledger) -> float:
    return ledger.counter_total("normagent_firewall_blocked_total")


def _die_after(spec: CollectorSpec, ledger: Ledger, keep: int, **context: Any) -> None:
    """Run ``spec``, commit its first ``keep`` batches (the rows still waiting in the carry),
    then die: the generator is dropped, the rest never committed."""
    ledger.declare(spec.metrics)
    batches = spec.collect(make_context(spec, state=ledger.checkpoints(spec.name), **context))
    for done, batch in enumerate(batches):
        if done == keep:
            break
        ledger.commit(spec.name, batch)
        assert not _rows(ledger), "a backlog's rows wait in the carry"
    batches.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("keep", [0, 1, 2, 3])
def test_a_backlogs_rows_count_once_when_a_run_dies_between_batches(tmp_path: Path, keep: int) -> None:
    """The rows ride in the carry of each batch (its JSON made when the batch is): a run that
    dies after any batch and the run after it count every blocked packet and network row once."""
    root = tmp_path / "root"
    blocked, rows = _write_backlog(root)
    spec = _backlog_collector()
    clock = FakeClock(fastpaths.NOW)
    with Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
        _die_after(spec, ledger, keep, settings=BACKLOG_SETTINGS, root=root, clock=clock)
        carried = ledger.checkpoints(spec.name).get(f"carry:file:{ORIGIN}")
        assert (carried is not None) == (keep > 0) and (keep == 0 or isinstance(carried, dict))
        run_collector_once(spec, ledger, settings=BACKLOG_SETTINGS, root=root, clock=clock)

        assert _blocked(ledger) == blocked and _rows(ledger) == rows
        assert ledger.checkpoints(spec.name).get(f"carry:file:{ORIGIN}") is None


def test_a_parser_failing_inside_a_batch_counts_nothing_of_it_twice(tmp_path: Path) -> None:
    """The parser fails on the fourth block (the batch of the third and fourth): the batches
    before it are committed with their carry, the failed one is not, and the next runs read on
    from there — the rows of every block once."""
    root = tmp_path / "root"
    blocked, rows = _write_backlog(root)
    calls = {"n": 0, "fail_at": 4}

    def failing(block: TextBlock, ctx: ParseContext) -> ParseResult:
        calls["n"] += 1
        if calls["n"] == calls["fail_at"]:
            parse_linux_lines(block, ctx)  # the block read, its rows counted into a copy: then the failure
            raise RuntimeError("a parser bug")
        return parse_linux_lines(block, ctx)

    spec = _backlog_collector(failing)
    clock = FakeClock(fastpaths.NOW)
    with Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
        with pytest.raises(Exception, match="failed"):
            run_collector_once(spec, ledger, settings=BACKLOG_SETTINGS, root=root, clock=clock)
        assert 0 < _blocked(ledger) < blocked and not _rows(ledger)
        run_collector_once(spec, ledger, settings=BACKLOG_SETTINGS, root=root, clock=clock)

        assert _blocked(ledger) == blocked and _rows(ledger) == rows


def test_the_driver_asks_a_carry_for_its_json_once_per_batch(tmp_path: Path) -> None:
    """Not per block: the pseudonyms of a backlog's networks are asked once per batch."""
    root = tmp_path / "root"
    _write_backlog(root)
    asked = []
    real = parse._Carry.json  # noqa: SLF001

    def counting(self: Any) -> Any:
        asked.append(1)
        return real(self)

    spec = _backlog_collector()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parse._Carry, "json", counting)  # noqa: SLF001
        batches = run_collector_once(spec, settings=BACKLOG_SETTINGS, root=root, clock=FakeClock(fastpaths.NOW))

    carrying = [b for b in batches if any(cp.key.startswith("carry:") and cp.value is not None for cp in b.checkpoints)]
    assert len(carrying) >= 2 and len(asked) == len(carrying)
    assert not [cp for b in batches for cp in b.checkpoints if isinstance(cp.value, LiveCarry)], "batches hold JSON only"


def test_rows_read_back_after_the_carry_waited_too_long_are_written(tmp_path: Path) -> None:
    """A carry from the ledger (JSON, checked) whose first row waited ``CARRY_FOR``: written with
    the next full block, the /24 rows of that block with it."""
    first = parse_linux_lines(_full_block(bench_lines(2000, 4)), _ctx())
    stored = json.loads(json.dumps(carry_json(first.carry)))
    later = parse_linux_lines(_full_block(bench_lines(2000, 5)), _ctx(stored, now=fastpaths.NOW + timedelta(minutes=10)))
    assert later.carry is None
    got = Counter({(o.day, o.key): o.value for o in rollup_rows(later.observations) if o.name == BY_NETWORK})
    assert sum(got.values()) == first.parsed + later.parsed



def test_rows_are_named_while_another_collector_starts_the_memo_over() -> None:
    """The memo of pseudonyms is shared by the firewall collectors' threads: one starting it over
    (``trim``, a full memo) between another's filling it and reading its rows' names from it
    leaves that one's names whole."""
    from normagent.plugins.firewall.parse import MEMO_SIZE

    pseudonymise = Pseudonymiser(b"t" * 32)
    names = network_pseudonyms(pseudonymise)
    for net in range(MEMO_SIZE):
        names.net(net)

    class Racing(NetRowsPy):
        def unnamed(self, memo: Any) -> list[int]:
            missing = super().unnamed(memo)
            names.trim()  # the other thread, here
            return missing

    rows = Racing()
    rows.add({b"h": {5: 2, MEMO_SIZE + 7: 3}}, DAY, {b"h"})

    assert names.named(rows) == {date.fromordinal(DAY): {pseudonymise.network("0.0.5.1"): 2, pseudonymise.network("0.64.7.1"): 3}}


@pytest.mark.parametrize("keep", [0, 1, 2])
def test_filterlogs_rows_count_once_through_the_spool_when_a_run_dies_between_batches(tmp_path: Path, keep: int) -> None:
    """The spool reader's driver commits the carry's JSON with each batch too: a run of
    ``firewall.appliances`` that dies after any batch (one full block each) and the run after it
    count every blocked packet and network row once."""
    from normagent.logs import syslog_log_collector
    from normagent.plugins.firewall.collectors import APPLIANCE_METRICS, ApplianceSettings
    from normagent.sources.spool import SPOOL_KEY, SpoolShare

    spool = tmp_path / "spool"
    spool.mkdir()
    lines = fastpaths.BENCH.filterlog_lines(20_000, random.Random(13))[0]  # type: ignore[attr-defined]  # ~3.5 MiB: 4 blocks
    (spool / "syslog.log").write_text("".join(lines))
    whole = parse_appliance_lines(
        TextBlock("".join(lines).encode(), str(spool / "syslog.log"), None, len(lines)),
        ParseContext(now=fastpaths.NOW, tz=timezone.utc, pseudonymise=test_pseudonymiser(), settings=ApplianceSettings(), final=True),
    )
    rows = Counter({(o.day, o.key): o.value for o in rollup_rows(whole.observations) if o.name == BY_NETWORK})
    spec = syslog_log_collector("firewall.appliances", help="filterlog, a batch a block", parser=parse_appliance_lines,
                                settings=ApplianceSettings, metrics=APPLIANCE_METRICS, commit_bytes=1)
    clock = FakeClock(fastpaths.NOW)
    with Ledger.open(tmp_path / "l.db", clock=clock) as ledger:
        share = SpoolShare(spool, lambda: [ledger.checkpoints(spec.name).get(SPOOL_KEY)])
        _die_after(spec, ledger, keep, syslog_spool=share, clock=clock)
        run_collector_once(spec, ledger, syslog_spool=share, clock=clock)

        assert _blocked(ledger) == whole.parsed and _rows(ledger) == rows and sum(rows.values()) == whole.parsed
