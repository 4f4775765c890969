"""Registries by name: read-only mappings whose unknown names list the valid ones."""

from __future__ import annotations

import pytest

from repair_core.corruptions import CORRUPTION_NAMES, CORRUPTIONS, get_corruption
from repair_core.errors import RepairInputError
from repair_core.registry import Registry, UnknownNameError
from repair_core.search.genotype import GENOTYPES
from repair_core.search.ops import OPS


def test_an_unknown_name_is_bad_input_and_a_key_error_naming_the_valid_names() -> None:
    colours = Registry("colour", {"red": 1, "blue": 2})
    with pytest.raises(UnknownNameError) as caught:
        colours["green"]
    assert isinstance(caught.value, RepairInputError) and isinstance(caught.value, KeyError)
    assert str(caught.value) == "unknown colour 'green'; valid names: red, blue"
    assert colours.get("green") is None and "red" in colours and 1 not in colours
    assert list(colours) == ["red", "blue"] and len(colours) == 2


def test_corruptions_operations_and_genotypes_are_registries() -> None:
    for registry in (CORRUPTIONS, OPS, GENOTYPES):
        assert isinstance(registry, Registry)
    assert tuple(CORRUPTIONS) == CORRUPTION_NAMES
    with pytest.raises(RepairInputError, match="unknown corruption 'rain'; valid names: gauss"):
        get_corruption("rain")
