"""Search strategies as presets of the profiles, and their variant names."""

from __future__ import annotations

import pytest

from repair_core.choices import SEARCH_CHOICES, SEARCH_NAMES
from repair_core.errors import RepairInputError
from repair_core.pipeline.config import RepairConfig
from repair_core.profiles import PROFILES, SEARCH_ORDERS, SEARCH_PRESETS, build_plan


def test_every_search_choice_has_a_preset_an_order_and_a_name() -> None:
    assert tuple(SEARCH_PRESETS) == tuple(SEARCH_ORDERS) == tuple(SEARCH_NAMES) == SEARCH_CHOICES
    for search in SEARCH_CHOICES:
        for profile in PROFILES:
            build_plan(profile, {}, search=search, seed=0)  # every preset is a valid plan


def test_variant_names_follow_the_paper() -> None:
    assert RepairConfig(search="darts-2nd").variant_name == "CF-DARTS"
    assert RepairConfig(search="pcdarts").variant_name == "CF-PCDARTS"
    assert RepairConfig(search="robdarts", selection="random",
                        retrain="with-failures").variant_name == "RF-RobDARTSE"  # fmt: skip
    assert RepairConfig(search="robdarts-reg", selection="augment",
                        retrain="with-failures").variant_name == "AU-RobDARTSRegE"  # fmt: skip


@pytest.mark.parametrize("profile", list(PROFILES))
def test_darts_plans_are_the_profiles_themselves(profile: str) -> None:
    plan = build_plan(profile, {}, search="darts-1st", seed=3)
    assert plan.search_net == PROFILES[profile].search_net
    assert plan.search.order == "first" and plan.search.seed == 3
    assert build_plan(profile, {}, search="darts-2nd", seed=0).search.order == "second"


def test_paper_plans_carry_the_reference_settings() -> None:
    pc = build_plan("paper", {}, search="pcdarts", seed=0)
    assert (pc.search.batch_size, pc.search.lr, pc.search.arch_lr) == (256, 0.1, 6e-4)
    assert (pc.search.warmup_epochs, pc.search.epochs, pc.search.order) == (15, 50, "first")
    assert pc.search_net.partial_channels == 4 and pc.search_net.edge_normalization
    rob = build_plan("paper", {}, search="robdarts", seed=0)
    assert (rob.search.hessian_every, rob.search.early_stop, rob.search.order) == (
        2,
        True,
        "second",
    )
    reg = build_plan("paper", {}, search="robdarts-reg", seed=0)
    assert (reg.search.weight_decay, reg.search.drop_path_prob) == (8.1e-3, 0.6)
    pt = build_plan("paper", {}, search="dartspt", seed=0)
    assert pt.search.projection and (pt.search.epochs, pt.search.order) == (50, "first")
    assert (pt.search.proj_interval, pt.search.proj_lr) == (5, pt.search.lr / 10)
    assert pt.search.proj_eval_batches is None  # every val image, as the reference scores


def test_dartspt_runs_one_iteration_and_is_named_dartspt() -> None:
    assert RepairConfig(search="dartspt", selection="random",
                        retrain="with-failures").variant_name == "RF-DARTSPTE"  # fmt: skip
    with pytest.raises(RepairInputError, match="iterations must be 1 for the dartspt search"):
        RepairConfig(search="dartspt", iterations=2)


def test_user_overrides_beat_the_preset_and_order_stays_the_strategys() -> None:
    plan = build_plan("paper", {"search.warmup_epochs": "3"}, search="pcdarts", seed=0)
    assert plan.search.warmup_epochs == 3 and plan.search.batch_size == 256
    with pytest.raises(RepairInputError, match="is not a setting"):
        build_plan("smoke", {"search.order": "second"}, search="pcdarts", seed=0)
    with pytest.raises(RepairInputError, match="must be a multiple of"):
        build_plan("smoke", {"search_net.init_channels": 6}, search="pcdarts", seed=0)


def test_the_searched_cell_size_is_checked_when_the_plan_is_built() -> None:
    plan = build_plan("smoke", {}, search="dartspt", seed=0)
    assert (plan.search_net.steps, plan.search_net.multiplier) == (2, 2)
    with pytest.raises(RepairInputError, match=r"search_net\.multiplier must be"):
        build_plan("smoke", {"search_net.multiplier": 3}, search="dartspt", seed=0)
    with pytest.raises(RepairInputError, match=r"search_net\.steps must be"):
        build_plan("smoke", {"search_net.steps": 0}, search="darts-1st", seed=0)
