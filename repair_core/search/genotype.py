"""`Genotype`: a discrete DARTS cell architecture, as JSON and as published DARTS notation.

A cell has two input states (0: the cell before last, 1: the last cell) and `steps`
intermediate nodes; node i (state i + 2) sums two edges, each an `(op, input state)`
pair with input state < i + 2. `normal`/`reduce` list those pairs two per node; the
concat lists name the states whose concatenation is the cell output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from repair_core.errors import RepairInputError
from repair_core.registry import Registry
from repair_core.search.notation import parse_genotype_notation
from repair_core.search.ops import OPS

Edge = tuple[str, int]

FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
# A bound on untrusted genotypes: the published ones have 4 nodes, 5 at most.
MAX_NODES = 16


def _check_cell(name: str, edges: Any) -> tuple[Edge, ...]:
    if isinstance(edges, str | bytes) or not isinstance(edges, Sequence):
        raise RepairInputError(f"genotype.{name} must be a list of (op, input) pairs")
    if len(edges) < 2 or len(edges) % 2 or len(edges) > 2 * MAX_NODES:
        raise RepairInputError(
            f"genotype.{name} has {len(edges)} entries: need 2 per node "
            f"(an even number from 2 to {2 * MAX_NODES}; DARTS cells have 8)"
        )
    out: list[Edge] = []
    for k, edge in enumerate(edges):
        where = f"genotype.{name}[{k}]"
        if isinstance(edge, str | bytes) or not isinstance(edge, Sequence) or len(edge) != 2:
            raise RepairInputError(f"{where} must be an (op, input) pair, got {edge!r}")
        op, index = edge
        if not isinstance(op, str) or op not in OPS or op == "none":
            valid = ", ".join(n for n in OPS if n != "none")
            raise RepairInputError(f"{where}: unknown op {op!r}; valid ops: {valid}")
        if isinstance(index, bool) or not isinstance(index, int):
            raise RepairInputError(f"{where}: input must be an integer, got {index!r}")
        node = k // 2
        if not 0 <= index < node + 2:
            raise RepairInputError(
                f"{where}: input {index} out of range for node {node} (valid 0..{node + 1})"
            )
        out.append((op, index))
    return tuple(out)


def _check_concat(name: str, concat: Any, steps: int, *, reduction: bool) -> tuple[int, ...]:
    if isinstance(concat, str | bytes) or not isinstance(concat, Sequence) or not concat:
        raise RepairInputError(f"genotype.{name} must be a non-empty list of state indices")
    # States 0 and 1 of a reduction cell still have the input resolution: not concatenable.
    low = 2 if reduction else 0
    out: list[int] = []
    for index in concat:
        if isinstance(index, bool) or not isinstance(index, int) or not low <= index < steps + 2:
            raise RepairInputError(
                f"genotype.{name}: {index!r} is not a state index in {low}..{steps + 1}"
            )
        if index in out:
            raise RepairInputError(f"genotype.{name}: state {index} listed twice")
        out.append(index)
    return tuple(out)


@dataclass(frozen=True)
class Genotype:
    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        # Validates and normalises lists (e.g. from published notation) into tuples.
        normal = _check_cell("normal", self.normal)
        reduce = _check_cell("reduce", self.reduce)
        n_concat = _check_concat(
            "normal_concat", self.normal_concat, len(normal) // 2, reduction=False
        )
        r_concat = _check_concat(
            "reduce_concat", self.reduce_concat, len(reduce) // 2, reduction=True
        )
        object.__setattr__(self, "normal", normal)
        object.__setattr__(self, "reduce", reduce)
        object.__setattr__(self, "normal_concat", n_concat)
        object.__setattr__(self, "reduce_concat", r_concat)

    def to_dict(self) -> dict[str, list[Any]]:
        return {
            "normal": [[op, i] for op, i in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, i] for op, i in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Genotype:
        if not isinstance(data, Mapping):
            raise RepairInputError(f"genotype must be an object with keys {list(FIELDS)}")
        missing = [k for k in FIELDS if k not in data]
        extra = [k for k in data if k not in FIELDS]
        if missing or extra:
            raise RepairInputError(
                f"genotype keys must be {list(FIELDS)}; missing {missing}, unexpected {extra}"
            )
        return cls(**{k: data[k] for k in FIELDS})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Genotype:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise RepairInputError(f"genotype is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def to_darts_notation(self) -> str:
        """The reference implementation's `Genotype(...)` repr."""
        return (
            f"Genotype(normal={list(self.normal)!r}, normal_concat={list(self.normal_concat)!r}, "
            f"reduce={list(self.reduce)!r}, reduce_concat={list(self.reduce_concat)!r})"
        )

    @classmethod
    def from_darts_notation(cls, value: object) -> Genotype:
        """Accept a genotype as published: the `Genotype(normal=[...], ...)` text (or
        `NAME = Genotype(...)`, `range(2, 6)` for concat), a namedtuple-like object with the
        four fields, or a mapping. Text is parsed, never evaluated."""
        if isinstance(value, Genotype):
            return value
        if isinstance(value, str | bytes):
            text = value.decode() if isinstance(value, bytes) else value
            return cls.from_dict(parse_genotype_notation(text))
        if isinstance(value, Mapping):
            return cls.from_dict({k: _listify(v) for k, v in value.items()})
        if all(hasattr(value, k) for k in FIELDS):
            return cls.from_dict({k: _listify(getattr(value, k)) for k in FIELDS})
        raise RepairInputError(
            f"cannot read a genotype from {type(value).__name__}: give DARTS notation text, "
            f"a mapping or an object with fields {list(FIELDS)}"
        )

    @property
    def steps(self) -> int:
        """Intermediate nodes of the normal cell."""
        return len(self.normal) // 2

    def __str__(self) -> str:
        return self.to_darts_notation()


def _listify(value: Any) -> Any:
    # range objects and tuples from published files become lists; validation does the rest.
    return list(value) if isinstance(value, range | tuple) else value


# Published genotypes, as printed in their papers' code (second-order DARTS is V2;
# PC-DARTS's is its CIFAR-10 cell).
DARTS_V1 = Genotype(
    normal=(
        ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
        ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
        ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0),
    ),
    reduce_concat=(2, 3, 4, 5),
)  # fmt: skip
DARTS_V2 = Genotype(
    normal=(
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
        ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1),
    ),
    reduce_concat=(2, 3, 4, 5),
)  # fmt: skip
PC_DARTS = Genotype(
    normal=(
        ("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
        ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
        ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2),
    ),
    reduce_concat=(2, 3, 4, 5),
)  # fmt: skip

GENOTYPES: Registry[Genotype] = Registry(
    "genotype", {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "PC_DARTS": PC_DARTS}
)
