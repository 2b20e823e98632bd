"""``dataclass``: the standard library's, with one compiled copy of its eq, hash, repr and frozen guard.

Why: ``dataclasses.dataclass`` writes the source of every method it adds and compiles it for each
class: ``__init__``, ``__repr__`` (wrapped against recursion), ``__eq__``, and for a frozen class
``__hash__``, ``__setattr__`` and ``__delattr__``. For the agent's ~250 record classes that is
about 12 KB per frozen, slotted class, and 1 MB of the idle agent's resident memory all told
(bench/README.md, "Records that share their methods"). In Python 3.11 a frozen ``slots=True``
class also keeps its pre-slots copy alive through its generated ``__setattr__``.

All of those but ``__init__`` do the same thing for every class, given the names of its fields.
This decorator lets ``dataclasses`` build the class as always, then puts in their place closures
over one code object each (per class: a function object, the field names, an ``attrgetter``).
Behaviour is the standard library's: equality compares the ``compare`` fields as a tuple, and only
with an instance of the very same class; the hash is that tuple's; the repr names the class's
``__qualname__`` and the ``repr`` fields and prints ``...`` for an object already being printed on
the same thread; a frozen class refuses assignment and deletion of every field, and of anything
on an instance of the class itself, with ``FrozenInstanceError``. ``tests/unit/test_records.py``
compares each with the standard library's on the same class. A method the class body defines is
kept, as ``dataclasses`` keeps it. ``__init__`` stays generated: it is the one on hot paths and
its signature is the class's own.

To the type checker this *is* ``dataclasses.dataclass`` (imported under ``TYPE_CHECKING``), so
mypy's own dataclass support applies unchanged. Imports only the standard library.
"""

from __future__ import annotations

import dataclasses
import operator
from _thread import get_ident
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

__all__ = ["dataclass", "share_methods"]

if TYPE_CHECKING:
    from dataclasses import dataclass as dataclass
else:

    def dataclass(cls=None, /, **options):
        """``dataclasses.dataclass(cls, **options)``, then ``share_methods`` (see the module docstring)."""

        def wrap(cls):
            own = frozenset(cls.__dict__)
            return share_methods(dataclasses.dataclass(cls, **options), own)

        return wrap if cls is None else wrap(cls)


def share_methods(cls: type[Any], own: Iterable[str]) -> type[Any]:
    """Put shared-code methods in the place of those ``dataclasses`` generated for ``cls``.

    ``own`` is what the class body defined (its ``__dict__``'s keys before ``dataclasses`` ran):
    those methods are the class's, and stay.
    """
    own = frozenset(own)
    params = cls.__dataclass_params__
    fields = dataclasses.fields(cls)
    if params.repr and "__repr__" not in own:
        _put(cls, "__repr__", _repr(tuple(f.name for f in fields if f.repr)))
    if params.eq and "__eq__" not in own:
        _put(cls, "__eq__", _equality(_values(f.name for f in fields if f.compare)))
    if "__hash__" not in own and callable(cls.__dict__.get("__hash__")):
        # dataclasses generated it (frozen with eq, or unsafe_hash): the hash of these fields.
        hashed = (f.name for f in fields if (f.compare if f.hash is None else f.hash))
        _put(cls, "__hash__", _hash(_values(hashed)))
    if params.frozen:  # dataclasses refuses a frozen class whose body defines either
        names = frozenset(f.name for f in fields)
        _put(cls, "__setattr__", _frozen_setattr(cls, names))
        _put(cls, "__delattr__", _frozen_delattr(cls, names))
    return cls


def _put(cls: type[Any], name: str, method: Callable[..., Any]) -> None:
    method.__qualname__ = f"{cls.__qualname__}.{name}"
    method.__module__ = cls.__module__
    type.__setattr__(cls, name, method)  # type.__setattr__: a frozen class's own guard is not asked


def _values(names: Iterable[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The tuple of an instance's ``names`` attributes, as the generated methods build it."""
    names = tuple(names)
    if len(names) > 1:
        return operator.attrgetter(*names)  # a tuple already
    if names:
        one = operator.attrgetter(names[0])
        return lambda self: (one(self),)
    return lambda self: ()


def _equality(values: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any, Any], Any]:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return values(self) == values(other)
        return NotImplemented

    return __eq__


def _hash(values: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(values(self))

    return __hash__


def _repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    values = _values(names)
    shown = "{}(" + ", ".join(f"{name}={{!r}}" for name in names) + ")"  # names are identifiers: no braces
    # (object id, thread id) of this class's reprs under way: an object met again inside its own
    # repr prints "..." (reprlib.recursive_repr, as dataclasses wraps its __repr__).
    running: set[tuple[int, int]] = set()

    def __repr__(self: Any) -> str:
        key = (id(self), get_ident())
        if key in running:
            return "..."
        running.add(key)
        try:
            return shown.format(self.__class__.__qualname__, *values(self))
        finally:
            running.discard(key)

    return __repr__


def _frozen_setattr(cls: type[Any], names: frozenset[str]) -> Callable[[Any, str, Any], None]:
    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    return __setattr__


def _frozen_delattr(cls: type[Any], names: frozenset[str]) -> Callable[[Any, str], None]:
    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __delattr__
