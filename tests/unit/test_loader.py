"""Plugin loading: one plugin's failure is that plugin's problem, reported by name."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from normagent import Batch, CollectorSpec, MetricSpec, hookimpl
from normagent.loader import build_plugins
from tests.support import sample_plugin


def _collect(ctx: Any) -> Iterator[Batch]:
    yield Batch()


def spec(name: str, **changes: Any) -> CollectorSpec:
    return CollectorSpec(name=name, help="test", collect=_collect, **changes)


class Offers:
    """A plugin object offering fixed collectors."""

    def __init__(self, *specs: Any) -> None:
        self.specs = specs

    @hookimpl
    def register_collectors(self) -> Any:
        return self.specs


class Raises:
    @hookimpl
    def register_collectors(self) -> Any:
        raise RuntimeError("boom")

    @hookimpl
    def register_rules(self) -> Any:
        raise KeyError("rules")


class Misspelled:
    @hookimpl(optionalhook=False)
    def register_colectors(self) -> Any:
        return []


def plugins(*objects: tuple[str, object], builtins: tuple[str, ...] = ()) -> Any:
    return build_plugins(builtins=builtins, entry_points_enabled=False, objects=list(objects))


def test_a_plugin_failing_at_import_is_reported_and_the_rest_load() -> None:
    loaded = plugins(("sample", sample_plugin), builtins=("tests.support.broken_at_import",))

    assert [str(p) for p in loaded.problems] == [
        "plugin tests.support.broken_at_import: failed to load: RuntimeError: "
        "this plugin needs a library that is not installed"
    ]
    assert list(loaded.collectors()) == ["sample.events"]
    assert {i.name: i.loaded for i in loaded.infos} == {"tests.support.broken_at_import": False, "sample": True}


def test_hook_raising_in_one_plugin_leaves_the_others_working() -> None:
    loaded = plugins(("raises", Raises()), ("sample", sample_plugin))

    assert list(loaded.collectors()) == ["sample.events"]
    assert list(loaded.rules()) == ["sample.many"]
    assert sorted(str(p) for p in loaded.problems) == [
        "plugin raises: register_collectors() raised RuntimeError: boom",
        "plugin raises: register_rules() raised KeyError: 'rules'",
    ]
    assert loaded.failed() == {"raises"}


def test_a_duplicate_collector_keeps_the_first_and_names_both_plugins() -> None:
    loaded = plugins(("first", Offers(spec("x.y"))), ("second", Offers(spec("x.y"))))

    assert loaded.collectors()["x.y"].plugin == "first"
    assert [str(p) for p in loaded.problems] == ["plugin second: collector 'x.y' is already offered by plugin first"]


@pytest.mark.parametrize(
    ("offer", "problem"),
    [
        ("not a spec", "register_collectors() returned a str, expected CollectorSpec"),
        (spec("x.neg", interval=timedelta(0)), "collector 'x.neg' needs a positive interval and timeout"),
        (spec("x.set", settings=dict), "collector 'x.set': settings must be a dataclass type"),
    ],
)
def test_bad_offers_are_problems(offer: Any, problem: str) -> None:
    loaded = plugins(("bad", Offers(offer)))
    assert loaded.collectors() == {}
    assert [p.message for p in loaded.problems] == [problem]


def test_conflicting_metric_declarations_are_rejected() -> None:
    a = spec("a.one", metrics=(MetricSpec("normagent_x_total", "counter", "x", ("a",)),))
    b = spec("b.two", metrics=(MetricSpec("normagent_x_total", "counter", "x", ("b",)),))
    loaded = plugins(("a", Offers(a)), ("b", Offers(b)))
    assert list(loaded.collectors()) == ["a.one"]
    assert "declares metric normagent_x_total as counter['b']" in loaded.problems[0].message


def test_settings_with_unsupported_types_are_rejected() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Odd:
        when: complex = 1j

    loaded = plugins(("odd", Offers(spec("odd.one", settings=Odd))))
    assert loaded.collectors() == {}
    assert "Odd.when: <class 'complex'> is not a supported settings type" in loaded.problems[0].message


def test_a_misspelled_hook_is_reported() -> None:
    loaded = plugins(("typo", Misspelled()))
    assert [str(p) for p in loaded.problems] == ["plugin typo: implements register_colectors(), which is not a normagent hook"]


def test_disabled_plugins_do_not_load() -> None:
    loaded = build_plugins(builtins=(), entry_points_enabled=False, objects=[("sample", sample_plugin)], disabled=["sample"])
    assert loaded.collectors() == {}
    assert [(i.name, i.loaded) for i in loaded.infos] == [("sample", False)]
    assert loaded.problems == []


def test_builtin_plugins_load_without_problems() -> None:
    loaded = build_plugins(entry_points_enabled=False)
    assert loaded.problems == []
    # Every package under plugins/ is a builtin, and so is every forwarder module under normagent/forward/.
    root = Path(__file__).parents[2]
    packages = {p.parent.name for p in (root / "plugins").glob("*/__init__.py")}
    forwarders = {f"forward.{p.stem}" for p in (root / "normagent" / "forward").glob("*.py") if "@hookimpl" in p.read_text()}
    assert {i.name for i in loaded.infos} == packages | forwarders and len(packages) >= 9 and len(forwarders) >= 4


def test_every_offer_kind_is_gathered_with_its_plugin() -> None:
    loaded = plugins(("sample", sample_plugin))
    assert loaded.rules()["sample.many"].plugin == "sample"
    assert loaded.report_sections()["sample.section"].plugin == "sample"
    assert loaded.forwarders()["sample"].plugin == "sample"
    assert set(loaded.metrics()) == {"normagent_sample_events_total", "normagent_sample_level"}


def _distribution(root: Path, name: str, entry_points: str, module: str = "") -> Path:
    """A distribution as pip installs one: ``<name>-1.0.dist-info`` with METADATA and entry_points.txt."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    if module:
        (root / f"{name}.py").write_text(module)
    return root


def test_entry_points_are_looked_for_only_where_a_distribution_declares_the_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.machinery

    from normagent.loader import declared_anywhere

    # The interpreter's own finders only: a finder of distributions another test or library left on
    # sys.meta_path (an editable install's, say) makes the answer a conservative yes, checked last.
    standard = [importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter, importlib.machinery.PathFinder]
    monkeypatch.setattr(sys, "meta_path", standard)
    others = _distribution(tmp_path / "a", "tool", "[console_scripts]\ntool = tool:main\n")
    assert not declared_anywhere("normagent", [str(others)])
    ours = _distribution(tmp_path / "b", "clinic_plugin", "[console_scripts]\nx = y:z\n\n[ normagent ]\nclinic = clinic_plugin\n")
    assert declared_anywhere("normagent", [str(others), str(ours)])
    archive = tmp_path / "plugins.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    assert declared_anywhere("normagent", [str(archive)])  # cannot look inside without importlib.metadata: yes
    assert not declared_anywhere("normagent", [str(tmp_path / "missing")])

    class DistributionFinder:
        @staticmethod
        def find_distributions(*args: object, **kwargs: object) -> list[object]:
            return []

    monkeypatch.setattr(sys, "meta_path", [*standard, DistributionFinder])
    assert declared_anywhere("normagent", [str(others)])  # it cannot know what that finder holds


def test_a_plugin_installed_with_an_entry_point_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = (
        "from normagent import hookimpl\n"
        "from tests.unit.test_loader import spec\n"
        "@hookimpl\n"
        "def register_collectors():\n"
        "    return [spec('clinic.things')]\n"
    )
    root = _distribution(tmp_path, "clinic_plugin", "[normagent]\nclinic = clinic_plugin\n", module)
    monkeypatch.syspath_prepend(str(root))
    loaded = build_plugins(builtins=())
    assert list(loaded.collectors()) == ["clinic.things"]
    assert [(i.name, i.origin, i.version, i.loaded) for i in loaded.infos] == [("clinic", "clinic_plugin", "1.0", True)]
