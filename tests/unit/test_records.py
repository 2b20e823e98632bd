"""normagent.records.dataclass behaves as the standard library's, with methods that share their code."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

import normagent
from normagent.records import dataclass as shared

SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("plain", {}),
    ("frozen", {"frozen": True}),
    ("frozen-slots", {"frozen": True, "slots": True}),
    ("slots", {"slots": True}),
    ("unsafe-hash", {"unsafe_hash": True}),
    ("unsafe-hash-slots", {"slots": True, "unsafe_hash": True}),
    ("no-eq", {"eq": False}),
    ("no-repr", {"repr": False}),
    ("frozen-no-eq", {"frozen": True, "eq": False}),
]


def make(decorator: Callable[..., Any], options: dict[str, Any]) -> type[Any]:
    """The same class body, decorated by ``decorator``: fields of every kind of option."""

    class Reading:
        unit: ClassVar[str] = "s"
        host: str
        value: float = 0.0
        labels: tuple[str, ...] = ()
        note: str = dataclasses.field(default="", compare=False)
        secret: str = dataclasses.field(default="", repr=False)
        seen: int = dataclasses.field(default=0, hash=False)
        tag: str = dataclasses.field(default="", compare=False, hash=True)
        items: list[Any] = dataclasses.field(
            default_factory=list, compare=False, hash=False
        )

    return decorator(**options)(Reading)


NAN = float("nan")  # one object: a NaN's hash is its identity's


def instances(cls: type[Any]) -> list[Any]:
    return [
        cls("a"),
        cls("a", 1.0, ("x",), note="n"),
        cls("a", 1.0, ("x",), note="other"),
        cls("a", 1.0, ("x",), secret="s", seen=3),
        cls("b", NAN),
        cls("a", 1.0, ("x",), tag="t"),
        cls("ä\x00", -0.0, ("y", "z"), items=[1, {2}]),
    ]


@pytest.mark.parametrize(("name", "options"), SHAPES, ids=[s[0] for s in SHAPES])
def test_equality_hash_and_repr_are_the_standard_librarys(
    name: str, options: dict[str, Any]
) -> None:
    ours, theirs = make(shared, options), make(dataclasses.dataclass, options)
    for a, a_std in zip(instances(ours), instances(theirs), strict=True):
        if options.get("repr", True):
            assert repr(a) == repr(a_std)
        else:
            assert "__repr__" not in vars(ours)
        for b, b_std in zip(instances(ours), instances(theirs), strict=True):
            assert (a == b) is (a_std == b_std)
            assert (a != b) is (a_std != b_std)
        assert a.__eq__(object()) is a_std.__eq__(object())
        if theirs.__hash__ is None:
            assert ours.__hash__ is None
        elif options.get("eq", True):
            assert hash(a) == hash(a_std)  # the hash of the same tuple of fields


def test_one_field_and_no_field_classes_hash_and_compare_as_tuples() -> None:
    for fields in ({"x": int}, {}):
        ours = shared(frozen=True)(type("One", (), {"__annotations__": fields}))
        theirs = dataclasses.dataclass(frozen=True)(
            type("One", (), {"__annotations__": fields})
        )
        args = (5,) if fields else ()
        assert hash(ours(*args)) == hash(theirs(*args))
        assert ours(*args) == ours(*args)
        assert repr(ours(*args)) == repr(theirs(*args))


def test_an_instance_of_another_class_is_never_equal() -> None:
    cls = make(shared, {"frozen": True})
    sub = shared(frozen=True)(type("Sub", (cls,), {"__annotations__": {}}))
    assert cls("a").__eq__(sub("a")) is NotImplemented
    assert cls("a") != sub("a")
    other = make(shared, {"frozen": True})
    assert cls("a") != other("a")


@pytest.mark.parametrize("slots", [False, True])
def test_a_frozen_record_refuses_changes_as_the_standard_librarys(slots: bool) -> None:
    ours, theirs = (
        make(shared, {"frozen": True, "slots": slots}),
        make(dataclasses.dataclass, {"frozen": True}),
    )
    for cls in (ours, theirs):
        record = cls("a")
        with pytest.raises(
            dataclasses.FrozenInstanceError, match="cannot assign to field 'host'"
        ):
            record.host = "b"
        with pytest.raises(
            dataclasses.FrozenInstanceError, match="cannot delete field 'value'"
        ):
            del record.value
        with pytest.raises(
            dataclasses.FrozenInstanceError, match="cannot assign to field 'extra'"
        ):
            record.extra = 1  # not a field, but the frozen class's own instance
        assert record.host == "a"


def test_a_plain_subclass_of_a_frozen_record_may_take_other_attributes_but_not_fields() -> (
    None
):
    for decorator in (shared, dataclasses.dataclass):
        base = make(decorator, {"frozen": True})
        child = type("Child", (base,), {})
        record = child("a")
        record.extra = 1
        del record.extra
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.host = "b"
        with pytest.raises(dataclasses.FrozenInstanceError):
            del record.host


def test_a_repr_that_meets_its_own_object_prints_dots_on_its_own_thread_only() -> None:
    shown = {}
    for decorator in (shared, dataclasses.dataclass):
        cls = make(decorator, {})
        looped = cls("a")
        looped.labels = (looped,)
        # Another thread printing the object while this one is inside its repr prints it whole.
        other_thread: list[str] = []

        class Probe:
            def __repr__(self) -> str:
                if not other_thread:
                    other_thread.append("")
                    thread = threading.Thread(
                        target=lambda: other_thread.append(repr(probed))
                    )
                    thread.start()
                    thread.join()
                return "probe"

        probed = cls("b", labels=(Probe(),))
        shown[decorator] = (repr(looped), repr(probed), other_thread[1])
    assert shown[shared] == shown[dataclasses.dataclass]
    assert shown[shared] == tuple(
        f"{cls.__qualname__}{text}"
        for text in (
            "(host='a', value=0.0, labels=(...,), note='', seen=0, tag='', items=[])",
            "(host='b', value=0.0, labels=(probe,), note='', seen=0, tag='', items=[])",
            "(host='b', value=0.0, labels=(probe,), note='', seen=0, tag='', items=[])",
        )
    )


def test_methods_the_class_defines_are_kept() -> None:
    class Own:
        x: int

        def __repr__(self) -> str:
            return "own"

        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return 7

    cls = shared(unsafe_hash=False, frozen=False)(Own)
    assert repr(cls(1)) == "own"
    assert cls(1) == cls(2)
    assert hash(cls(1)) == 7


def test_every_class_shares_one_code_object_per_method() -> None:
    first, second = (
        make(shared, {"frozen": True, "slots": True}),
        make(shared, {"frozen": True, "slots": True}),
    )
    for name in ("__eq__", "__hash__", "__repr__", "__setattr__", "__delattr__"):
        assert getattr(first, name).__code__ is getattr(second, name).__code__, name
        assert getattr(first, name).__qualname__ == f"{first.__qualname__}.{name}"
    assert (
        first.__init__.__code__ is not second.__init__.__code__
    )  # generated for each class, as always


def _generated_by_the_standard_library(cls: type[Any]) -> list[str]:
    found = []
    for name in ("__eq__", "__hash__", "__repr__", "__setattr__", "__delattr__"):
        method = cls.__dict__.get(name)
        code = getattr(getattr(method, "__wrapped__", method), "__code__", None)
        if code is not None and code.co_filename == "<string>":
            found.append(name)
    return found


def test_every_record_of_the_agent_and_its_plugins_shares_its_methods() -> None:
    """A module that takes ``dataclass`` from ``dataclasses`` again brings back 3–12 KB per class."""
    checked = 0
    modules = [
        info.name
        for info in pkgutil.walk_packages(normagent.__path__, "normagent.")
        if not info.name.endswith("__main__")
    ]
    offenders = []
    for name in modules:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == name
                and "__dataclass_fields__" in value.__dict__
            ):
                checked += 1
                if _generated_by_the_standard_library(value):
                    offenders.append(f"{name}.{value.__qualname__}")
    assert checked > 100
    assert offenders == []
