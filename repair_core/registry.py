"""Registries by name whose lookup error lists the valid names.

A `Registry` is a read-only mapping. Unknown names raise `UnknownNameError`, which is
both a `RepairInputError` (so callers map it to "bad input") and a `KeyError` (so the
mapping protocol, `in` and `.get` keep working).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar

from repair_core.errors import RepairInputError

T = TypeVar("T")


class UnknownNameError(RepairInputError, KeyError):
    """A name that no registry entry carries."""

    def __str__(self) -> str:
        # KeyError would repr-quote the message; we want it readable.
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T]):
    """An immutable name -> entry mapping; `kind` names the entries in error messages."""

    def __init__(self, kind: str, entries: Mapping[str, T]) -> None:
        self._kind = kind
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            valid = ", ".join(self._entries)
            raise UnknownNameError(f"unknown {self._kind} {name!r}; valid names: {valid}") from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self._kind!r}, {list(self._entries)})"
