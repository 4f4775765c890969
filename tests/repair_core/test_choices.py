"""The choice lists are defined once (`repair_core.choices`) and the core agrees with them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from repair_core.choices import (
    CHOICES,
    PROFILE_CHOICES,
    SELECTION_CHOICES,
    help_text,
    parse_variant,
    variant_name,
)
from repair_core.errors import RepairInputError
from repair_core.pipeline.config import VARIANT_PREFIXES, RepairConfig
from repair_core.profiles import PROFILES
from repair_core.selection import FAILURE_SELECTION_METHODS, SELECTION_METHODS

ROOT = Path(__file__).resolve().parents[2]


def test_the_registries_of_the_core_are_the_choice_lists() -> None:
    assert SELECTION_METHODS == SELECTION_CHOICES
    assert set(FAILURE_SELECTION_METHODS) == set(SELECTION_CHOICES) - {"augment"}
    assert tuple(PROFILES) == PROFILE_CHOICES
    assert tuple(VARIANT_PREFIXES) == SELECTION_CHOICES


def test_every_choice_field_of_the_repair_config_has_a_list() -> None:
    fields = {f.name for f in dataclasses.fields(RepairConfig)}
    assert set(CHOICES) == {"selection", "search", "retrain", "profile", "unlabeled_picks"}
    assert set(CHOICES) <= fields
    assert help_text("retrain") == "clean | with-failures"


@pytest.mark.parametrize("field", list(CHOICES))
def test_repair_config_accepts_every_choice_defaults_to_the_shared_default(field: str) -> None:
    choices, default = CHOICES[field]
    assert default in choices
    assert {f.name: f.default for f in dataclasses.fields(RepairConfig)}[field] == default
    for choice in choices:
        assert getattr(RepairConfig(**{field: choice}), field) == choice
    with pytest.raises(RepairInputError, match=f"choose one of {', '.join(choices)}"):
        RepairConfig(**{field: "nonsense"})


def test_the_choices_module_loads_without_torch() -> None:
    code = "import sys, repair_core.choices; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_the_profiles_and_their_settings_load_without_torch() -> None:
    # The API checks a job's overrides by building its plan, in a process without torch.
    code = (
        "import sys; from repair_core.profiles import build_plan; "
        "build_plan('fast', {'train.epochs': 2}, search='pcdarts', seed=0); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_the_corruption_names_the_api_checks_are_the_registrys() -> None:
    from repair_core.choices import CORRUPTION_CHOICES, SEVERITY_CHOICES
    from repair_core.corruptions import CORRUPTION_NAMES, SEVERITIES

    assert CORRUPTION_CHOICES == CORRUPTION_NAMES and SEVERITY_CHOICES == SEVERITIES


def test_variant_names_parse_to_the_config_that_names_them_back() -> None:
    from repair_core.choices import BASELINE_NAMES

    names = [f"{p}-DARTS{e}" for p in VARIANT_PREFIXES.values() for e in ("", "E")]
    names += [f"{b}{e}" for b in BASELINE_NAMES.values() for e in ("", "-E")]
    for name in names:
        fields = parse_variant(name)
        assert RepairConfig(**fields).variant_name == name  # type: ignore[arg-type]
        assert variant_name(fields.get("selection", "kcenter"), fields["retrain"],
                            fields["baseline"]) == name  # fmt: skip
    with pytest.raises(ValueError, match="CF-DARTS\\[E\\]"):
        parse_variant("XF-DARTS")
    with pytest.raises(RepairInputError, match="iterations must be 1"):
        RepairConfig(baseline="augmix", iterations=2)


def test_a_config_as_a_variant_keeps_its_sizes_and_takes_the_variants_choices() -> None:
    base = RepairConfig(budget=7, seed=3, search="darts-2nd", overrides={"train.epochs": 2})
    rf = base.as_variant("RF-PCDARTSE")
    assert (rf.selection, rf.search, rf.retrain) == ("random", "pcdarts", "with-failures")
    assert (rf.budget, rf.seed, rf.overrides) == (7, 3, {"train.epochs": 2})
    assert base.as_variant("CF-DARTS").search == "darts-2nd"  # DARTS names both orders
    assert base.as_variant("CutMix").baseline == "cutmix"
    with pytest.raises(RepairInputError, match="unknown variant 'Nope'"):
        base.as_variant("Nope")


def test_variant_names_carry_the_search_strategy() -> None:
    fields = parse_variant("RF-PCDARTSE")
    assert fields == {"selection": "random", "retrain": "with-failures", "baseline": "none",
                      "search": "pcdarts"}  # fmt: skip
    assert RepairConfig(**fields).variant_name == "RF-PCDARTSE"  # type: ignore[arg-type]
    assert parse_variant("CF-DARTSPT")["search"] == "dartspt"
    assert parse_variant("CF-DARTSE") == {"selection": "kcenter", "retrain": "with-failures",
                                          "baseline": "none"}  # fmt: skip
    assert "search" not in parse_variant("CF-DARTS")  # both DARTS orders keep their name
    assert variant_name("kcenter", "clean", "none", "robdarts-reg") == "CF-RobDARTSReg"
