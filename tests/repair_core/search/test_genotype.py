"""Genotype: JSON and published-notation round trips, and clear rejection of bad input."""

from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path

import pytest

from repair_core.errors import RepairInputError
from repair_core.search.genotype import DARTS_V1, DARTS_V2, GENOTYPES, PC_DARTS, Genotype

# Verbatim from the PC-DARTS repository's genotypes.py (note the range() concat).
PC_DARTS_TEXT = (
    "PC_DARTS_cifar = Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), "
    "('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), "
    "('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, 6), "
    "reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), "
    "('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 2)], reduce_concat=range(2, 6))"
)
DARTS_V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


@pytest.mark.parametrize("genotype", [DARTS_V1, DARTS_V2, PC_DARTS])
def test_published_genotypes_round_trip_through_json_and_notation(genotype: Genotype) -> None:
    assert Genotype.from_json(genotype.to_json()) == genotype
    assert Genotype.from_dict(json.loads(genotype.to_json())) == genotype
    assert Genotype.from_darts_notation(genotype.to_darts_notation()) == genotype
    assert Genotype.from_darts_notation(str(genotype)) == genotype


def test_darts_v2_notation_prints_exactly_as_the_reference_repr() -> None:
    assert DARTS_V2.to_darts_notation() == DARTS_V2_TEXT


def test_published_text_with_range_concat_and_assignment_is_read() -> None:
    assert Genotype.from_darts_notation(PC_DARTS_TEXT) == PC_DARTS
    assert PC_DARTS.normal_concat == (2, 3, 4, 5)


def test_reference_namedtuple_and_plain_mapping_are_accepted() -> None:
    Reference = namedtuple("Reference", "normal normal_concat reduce reduce_concat")
    ref = Reference(
        normal=list(DARTS_V2.normal),
        normal_concat=range(2, 6),
        reduce=list(DARTS_V2.reduce),
        reduce_concat=range(2, 6),
    )
    assert Genotype.from_darts_notation(ref) == DARTS_V2
    assert Genotype.from_darts_notation(ref._asdict()) == DARTS_V2
    positional = (
        f"Genotype({list(DARTS_V2.normal)}, [2, 3, 4, 5], {list(DARTS_V2.reduce)}, [2, 3, 4, 5])"
    )
    assert Genotype.from_darts_notation(positional) == DARTS_V2


def test_registry_lookup_and_its_error() -> None:
    assert GENOTYPES["DARTS_V2"] is DARTS_V2
    with pytest.raises(RepairInputError, match="DARTS_V1, DARTS_V2, PC_DARTS"):
        GENOTYPES["DARTS_V3"]


def _with(**changes: object) -> dict[str, object]:
    data: dict[str, object] = json.loads(DARTS_V2.to_json())
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with(normal=[["conv_9x9", 0]] + [["skip_connect", 1]] * 7), "unknown op 'conv_9x9'"),
        (_with(normal=[["none", 0], ["skip_connect", 1]] * 4), "unknown op 'none'"),
        (_with(normal=[["sep_conv_3x3", 2], ["skip_connect", 1]] * 4), r"normal\[0\]: input 2"),
        (_with(reduce=[["sep_conv_3x3", 0]] * 7), "7 entries"),
        (_with(normal=[]), "0 entries"),
        (_with(normal=[["sep_conv_3x3", 0, 1]] * 8), "pair"),
        (_with(normal=[["sep_conv_3x3", "0"]] * 8), "input must be an integer"),
        (_with(normal=[["sep_conv_3x3", True]] * 8), "input must be an integer"),
        (_with(normal_concat=[2, 3, 4, 6]), "normal_concat"),
        (_with(normal_concat=[2, 2]), "listed twice"),
        (_with(reduce_concat=[0, 2]), "reduce_concat"),
        (_with(normal_concat=[]), "non-empty"),
        ({"normal": DARTS_V2.to_dict()["normal"]}, "missing"),
        (_with(extra=1), "unexpected"),
    ],
)
def test_invalid_genotypes_are_rejected_with_a_clear_message(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(RepairInputError, match=message):
        Genotype.from_dict(data)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"normal": 1}',
        "[" * 100_000,
    ],
)
def test_malformed_json_is_rejected(text: str) -> None:
    with pytest.raises(RepairInputError):
        Genotype.from_json(text)


def test_notation_text_is_parsed_never_evaluated(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hostile = [
        f"__import__('os').system('touch {marker}')",
        f"Genotype(normal=__import__('os').system('touch {marker}'), normal_concat=[2], "
        "reduce=[], reduce_concat=[2])",
        f"Genotype(normal=[(open('{marker}', 'w'), 0)], normal_concat=[2], reduce=[], "
        "reduce_concat=[2])",
        "Genotype(normal=[], normal_concat=range(10**12), reduce=[], reduce_concat=[2])",
        "Genotype(normal=[], normal_concat=range(0, 4, 0), reduce=[], reduce_concat=[2])",
        "import os",
        "Genotype(" * 10_000,
    ]
    for text in hostile:
        with pytest.raises(RepairInputError):
            Genotype.from_darts_notation(text)
    assert not marker.exists()


def test_notation_errors_name_unknown_fields() -> None:
    with pytest.raises(RepairInputError, match="no field 'normals'"):
        Genotype.from_darts_notation("Genotype(normals=[])")


def test_genotype_is_immutable_and_hashable() -> None:
    assert len({DARTS_V2, Genotype.from_json(DARTS_V2.to_json())}) == 1
    with pytest.raises(AttributeError):
        DARTS_V2.normal = ()  # type: ignore[misc]
