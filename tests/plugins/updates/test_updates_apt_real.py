"""updates.apt and updates.pending over logs the real dpkg and apt-get wrote into a throw-away
root: tiny packages built with dpkg-deb, installed with ``dpkg -i`` and ``apt-get install`` from
local repositories, one of them labelled Debian-Security. The host's own packages are never
touched (everything runs with ``--root`` / ``-o Dir=``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from normagent import FileSource
from normagent.ledger import Ledger
from normagent.model import CommandResult
from normagent.plugins.updates.collectors import APT, PENDING_COLLECTOR, SECURITY_INDEX_KEY, security_index
from normagent.plugins.updates.settings import APT_LOGS, AptSettings, PendingSettings
from normagent.plugins.updates.vocab import APPLIED, DPKG_ERRORS, OLDEST_PENDING, PENDING, REBOOT_REQUIRED
from normagent.sources.command import run_command
from normagent.testing import FakeClock, MemoryCheckpoints, make_context, observations, recorded_command, run_collector_once
from tests.plugins.updates.aptroot import AptRoot, require_root_and_tools

LINES = "normagent_log_lines_total"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> AptRoot:
    """Five updates, made by the real tools:

    - ``dpkg -i`` tinyna 1.0, then 1.1: an update (other, success) from dpkg.log;
    - ``dpkg -i`` failna 1.0, then 1.1 whose postinst fails: other, failure (dpkg.log); it is
      purged afterwards, or every apt run would try to configure it again;
    - ``apt-get install mainna=1.0`` then ``mainna`` 1.1 from the main repository: other, success;
    - ``apt-get install tinyna`` 1.2 from the security repository: security, success;
    - ``apt-get install secna=1.0`` then ``secna`` 2.0 from the security repository, whose
      postinst fails: security, failure (history.log's Error line); purged afterwards.
    """
    require_root_and_tools()
    apt = AptRoot(tmp_path_factory.mktemp("apt") / "root")
    apt.dpkg_install(apt.build("tinyna", "1.0"))
    apt.dpkg_install(apt.build("tinyna", "1.1"))
    apt.dpkg_install(apt.build("failna", "1.0"))
    assert apt.dpkg_install(apt.build("failna", "1.1", postinst_fails=True), check=False).returncode != 0
    apt.dpkg_purge("failna")
    apt.repository(
        "main", [apt.build("mainna", "1.0"), apt.build("mainna", "1.1"), apt.build("secna", "1.0")],
        origin="Debian", label="Debian", suite="stable", codename="bookworm",
    )
    apt.repository(
        "security", [apt.build("tinyna", "1.2"), apt.build("secna", "2.0", postinst_fails=True)],
        origin="Debian", label="Debian-Security", suite="stable-security", codename="bookworm-security",
    )
    apt.apt_get("update")
    apt.apt_get("install", "mainna=1.0", "secna=1.0")
    apt.apt_get("install", "mainna")
    apt.apt_get("install", "tinyna")
    assert apt.apt_get("install", "secna", check=False).returncode != 0
    apt.dpkg_purge("secna")
    return apt


def settings(**changes: object) -> AptSettings:
    return replace(AptSettings(files=FileSource(paths=APT_LOGS, start_at="beginning")), **changes)  # type: ignore[arg-type]


def applied(ledger: Ledger) -> dict[tuple[str, str], float]:
    return {(dict(k)["kind"], dict(k)["result"]): v for k, v in ledger.snapshot().values(APPLIED).items() if v}


def now() -> FakeClock:
    return FakeClock(datetime.now(timezone.utc))


def test_the_real_tools_wrote_what_the_rules_count(scenario: AptRoot) -> None:
    """The premise: apt unpacks with --unpack (dpkg logs "startup archives unpack"), dpkg -i
    logs "startup archives install", and the failed apt run left an Error line."""
    dpkg_log = (scenario.root / "var/log/dpkg.log").read_text()
    history = (scenario.root / "var/log/apt/history.log").read_text()
    assert dpkg_log.count("startup archives install") == 4
    assert "status half-configured failna:all 1.1" in dpkg_log
    assert "startup archives unpack" in dpkg_log
    assert history.count("Start-Date:") == history.count("End-Date:") == 4
    assert history.count("Error: Sub-process") == 1


def test_every_update_counts_once_by_kind_and_result(scenario: AptRoot, ledger: Ledger) -> None:
    run_collector_once(APT, ledger, settings=settings(), root=scenario.root, clock=now(), run_command=run_command)

    assert applied(ledger) == {
        ("security", "success"): 1,  # tinyna 1.2 by apt, from the security repository
        ("security", "failure"): 1,  # secna 2.0 by apt, its postinst failed
        ("other", "success"): 2,  # tinyna 1.1 by dpkg -i, mainna 1.1 by apt
        ("other", "failure"): 1,  # failna 1.1 by dpkg -i, its postinst failed
    }
    assert ledger.counter_value(LINES, {"source": "updates.apt", "result": "unparsed"}) == 0
    rollups = ledger.rollups(DPKG_ERRORS, _all_time())
    assert [r.key for r in rollups] == ["secna"]


def test_a_second_run_and_a_new_update_count_only_what_is_new(scenario: AptRoot, tmp_path: Path) -> None:
    """Run, run again (nothing new), then a real upgrade: only it is added."""
    clock = now()
    with Ledger.open(tmp_path / "ledger.sqlite", clock=clock) as ledger:
        run_collector_once(APT, ledger, settings=settings(), root=scenario.root, clock=clock, run_command=run_command)
        first = applied(ledger)
        run_collector_once(APT, ledger, settings=settings(), root=scenario.root, clock=clock, run_command=run_command)
        assert applied(ledger) == first
        scenario.repository(
            "security-2", [scenario.build("mainna", "1.2")],
            origin="Debian", label="Debian-Security", suite="stable-security", codename="bookworm-security",
        )
        scenario.apt_get("update")
        scenario.apt_get("install", "mainna")
        run_collector_once(APT, ledger, settings=settings(), root=scenario.root, clock=clock, run_command=run_command)
    expected = dict(first)
    expected[("security", "success")] += 1
    assert applied_from(tmp_path / "ledger.sqlite") == expected


def applied_from(path: Path) -> dict[tuple[str, str], float]:
    with Ledger.open(path) as ledger:
        return applied(ledger)


def test_without_apt_nothing_is_security(scenario: AptRoot, tmp_path: Path) -> None:
    """apt's lists are what make a version a security update: where apt cannot be asked, the
    same updates count, none of them as security."""
    with Ledger.open(tmp_path / "with.sqlite") as with_apt, Ledger.open(tmp_path / "without.sqlite") as without:
        run_collector_once(APT, with_apt, settings=settings(), root=scenario.root, clock=now(), run_command=run_command)
        run_collector_once(APT, without, settings=settings(), root=scenario.root, clock=now(), run_command=recorded_command({}))
        known, unknown = applied(with_apt), applied(without)
    assert known[("security", "success")] >= 1 and known[("security", "failure")] == 1
    assert set(unknown) == {("other", "success"), ("other", "failure")}
    assert sum(unknown.values()) == sum(known.values())


def test_security_versions_come_from_the_security_repositorys_lists(scenario: AptRoot) -> None:
    """apt-get indextargets names the lists, apt-helper cat-file reads them (lz4 or not); the
    second look, with nothing changed, reads nothing and writes no checkpoint."""
    ctx = make_context(APT, settings=settings(), root=scenario.root, run_command=run_command)
    found, checkpoint = security_index(ctx, ctx.settings)
    assert {"tinyna=1.2", "secna=2.0"} <= set(found)
    assert not [v for v in found if v.startswith("mainna=1.0") or v.startswith("mainna=1.1")]
    assert checkpoint is not None and checkpoint.key == SECURITY_INDEX_KEY
    asked: list[list[str]] = []

    def counted(argv: Sequence[str], **kwargs: Any) -> CommandResult:
        asked.append(list(argv))
        return run_command(argv, **kwargs)

    again = make_context(APT, settings=settings(), root=scenario.root, run_command=counted,
                         state=MemoryCheckpoints({SECURITY_INDEX_KEY: checkpoint.value}))
    assert security_index(again, again.settings) == (found, None)
    assert asked == []  # apt is not even asked (its indextargets costs 0.6 s of CPU a minute)


def test_apt_is_asked_again_when_its_lists_or_sources_change(scenario: AptRoot) -> None:
    asked: list[str] = []

    def counted(argv: Sequence[str], **kwargs: Any) -> CommandResult:
        asked.append(argv[-4] if "indextargets" in argv else argv[-2])
        return run_command(argv, **kwargs)

    state = MemoryCheckpoints()

    def look() -> tuple[str, ...]:
        ctx = make_context(APT, settings=settings(), root=scenario.root, run_command=counted, state=state)
        found, checkpoint = security_index(ctx, ctx.settings)
        if checkpoint is not None:
            state.apply([checkpoint])
        return found

    first = look()
    assert asked.count("indextargets") == 1 and asked.count("cat-file") >= 1
    asked.clear()
    assert look() == first and asked == []
    scenario.repository(
        "security-late", [scenario.build("latena", "1.0")],
        origin="Debian", label="Debian-Security", suite="stable-security", codename="bookworm-security",
    )
    assert look() == first and asked == ["indextargets"]  # a new source: apt asked, no list fetched yet
    asked.clear()
    scenario.apt_get("update")
    assert "latena=1.0" in look() and asked.count("indextargets") == 1
    asked.clear()
    assert "latena=1.0" in look() and asked == []


def test_pending_updates_and_their_age_from_a_real_apt_simulation(scenario: AptRoot, tmp_path: Path) -> None:
    """apt-get --just-print over the root: a new security version waits; its age grows with the
    clock and survives a restart (a checkpoint); once installed nothing waits."""
    scenario.repository(
        "security-3", [scenario.build("tinyna", "1.3")],
        origin="Debian", label="Debian-Security", suite="stable-security", codename="bookworm-security",
    )
    scenario.apt_get("update")
    clock = now()
    pending = PendingSettings(manager="apt")
    with Ledger.open(tmp_path / "ledger.sqlite", clock=clock) as ledger:
        run_collector_once(PENDING_COLLECTOR, ledger, settings=pending, root=scenario.root, clock=clock, run_command=run_command)
        snapshot = ledger.snapshot()
        assert snapshot.values(PENDING)[(("kind", "security"),)] >= 1
        assert snapshot.values(OLDEST_PENDING)[(("kind", "security"),)] == 0
        assert snapshot.values(REBOOT_REQUIRED)[()] == 0
        clock.advance(3 * 86400)
        (scenario.root / "run").mkdir(exist_ok=True)
        (scenario.root / "run/reboot-required").touch()
        run_collector_once(PENDING_COLLECTOR, ledger, settings=pending, root=scenario.root, clock=clock, run_command=run_command)
        assert ledger.snapshot().values(OLDEST_PENDING)[(("kind", "security"),)] == 3 * 86400
        assert ledger.snapshot().values(REBOOT_REQUIRED)[()] == 1
        scenario.apt_get("dist-upgrade", check=False)
        run_collector_once(PENDING_COLLECTOR, ledger, settings=pending, root=scenario.root, clock=clock, run_command=run_command)
        assert ledger.snapshot().values(PENDING)[(("kind", "security"),)] == 0
        assert ledger.snapshot().values(OLDEST_PENDING)[(("kind", "security"),)] == 0
    (scenario.root / "run/reboot-required").unlink()


def test_the_parser_alone_sees_the_same_updates_as_other(scenario: AptRoot) -> None:
    """normagent parse has no lists: the same five updates, all of kind other."""
    from normagent.logs import parse_inputs
    from normagent.model import Count, ParseContext
    from normagent.testing import test_pseudonymiser
    from normagent.plugins.updates.parse import parse_apt_logs

    ctx = ParseContext(now=datetime.now(timezone.utc), tz=timezone.utc, pseudonymise=test_pseudonymiser())
    paths = [scenario.root / "var/log/apt/history.log", scenario.root / "var/log/dpkg.log"]
    total: dict[tuple[str, str], float] = {}
    for parsed in parse_inputs(paths, parse_apt_logs, ctx):
        for obs in parsed.result.observations:
            if isinstance(obs, Count) and obs.metric == APPLIED:
                key = (dict(obs.labels)["kind"], dict(obs.labels)["result"])
                total[key] = total.get(key, 0) + obs.value
    assert total[("other", "success")] >= 3 and total[("other", "failure")] == 2
    assert ("security", "success") not in total


def _all_time():  # type: ignore[no-untyped-def]
    from normagent import Period

    return Period(datetime(2000, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc))


def test_observations_name_no_user(scenario: AptRoot) -> None:
    """Requested-By and command lines are read, never kept: nothing in a batch names the root user."""
    batches = run_collector_once(APT, settings=settings(), root=scenario.root, clock=now())
    text = repr(observations(batches))
    assert "Requested-By" not in text and "apt-get -o" not in text
