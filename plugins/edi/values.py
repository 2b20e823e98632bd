"""``immutable``: the records a first index makes per file, frozen to the type checker, plain at run time.

Why: a first index of 100,000 messages makes several records per file (the header, its
``Parsed``, the id's ``Record``, the file's ``FileEntry``), and a frozen dataclass's ``__init__``
sets each field through ``object.__setattr__``: a 13-field ``Record`` costs 1.7 µs to make frozen
against 0.5 µs plain (bench/README.md, w15-edi). What frozen gives them — nothing changes one
after it is made, so one can be shared by the index's mirror, a batch's stage and the correlation
— is held by the type checker instead: to mypy an ``immutable`` class is a frozen dataclass
(``dataclass_transform`` with ``frozen_default``), and an assignment to a field is an error
("Property ... is read-only"; checked with ``mypy --strict`` on this package mapped as
``normagent.plugins.edi``). At run time it is a slotted
dataclass with the equality and hash a frozen one has (``unsafe_hash``: the hash of the fields),
so it compares, hashes and ``dataclasses.replace``s as before.

Only for records of this package, never handed to code that is not type-checked with it.
Imports only the standard library (with normagent's ``dataclass``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, dataclass_transform

from normagent import dataclass

T = TypeVar("T")

if TYPE_CHECKING:

    @dataclass_transform(frozen_default=True)
    def immutable(cls: type[T]) -> type[T]:
        """A frozen dataclass, as the type checker sees it."""
        ...

else:

    def immutable(cls):
        """A slotted dataclass with a frozen one's equality and hash (see the module docstring)."""
        return dataclass(slots=True, unsafe_hash=True)(cls)
