"""One repair variant up to its repaired checkpoint(s), resumable stage by stage.

Stages: confirm failures -> select C (the rest are held out) -> label the unlabeled picks
(stops with `LabelsNeeded` until the owner answered, see labelling.py) -> per iteration: search
(continuing the previous iteration's search) -> discretize -> retrain. Each finished
stage is recorded in the work directory's ledger and read back, not redone, on a resume.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from repair_core import choices
from repair_core.datasets.ops import concat_datasets, data_fingerprint, seeded_subset
from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.errors import RepairInputError
from repair_core.evaluation.curves import search_epoch
from repair_core.models import DeployedModel
from repair_core.models.retrainable import deployed_architecture, save_trained
from repair_core.pipeline.config import CONTROL_SEED_OFFSET, RepairConfig
from repair_core.pipeline.inputs import check_inputs
from repair_core.pipeline.labelling import LabelledSelection, OwnerLabels, resolve_picks
from repair_core.pipeline.progress_map import OverallProgress
from repair_core.pipeline.stages import (
    confirm_failures,
    network_config,
    retrain,
    run_search,
    search_data,
)
from repair_core.pipeline.workdir import WorkDir
from repair_core.profiles import StagePlan, build_plan
from repair_core.progress import CancelToken, Progress
from repair_core.scratch import SEARCH_STATE, TRAIN_STATE
from repair_core.search.collapse import search_health
from repair_core.search.genotype import Genotype
from repair_core.selection import Selection, select
from repair_core.selection.features import FeatureModel


@dataclass(frozen=True)
class VariantResult:
    name: str  # e.g. "CF-DARTS"
    config: RepairConfig
    genotypes: tuple[Genotype | None, ...]  # one per iteration (None: a registry net)
    checkpoints: tuple[Path, ...]  # one per iteration, the last is the repaired model
    # Rows of the uploaded failures that are confirmed, labelled, not in C and not given up.
    held_out: torch.Tensor
    info: dict[str, Any]  # counts and choices, JSON-native
    timings: dict[str, float]  # seconds per stage


def run_variant(
    deployed: DeployedModel,
    data: DatasetSplits,
    failures: ImageDataset,
    config: RepairConfig,
    *,
    work: WorkDir,
    device: torch.device,
    progress: OverallProgress,
    cancel: CancelToken | None,
    answers: OwnerLabels | None = None,
) -> VariantResult:
    """Every stage up to the repaired checkpoint(s); finished stages are read back, not redone.
    Raises `LabelsNeeded` while unlabeled picks wait for the owner's `answers`."""
    check_inputs(deployed, data, failures)
    plan = build_plan(config.profile, config.overrides, search=config.search, seed=config.seed)
    work.bind("config", config.to_json())
    work.bind("inputs", json.dumps([data_fingerprint(d) for d in (data.train, failures)]))
    model = deployed.model.to(device).eval()
    train = seeded_subset(data.train, plan.data.train_max_images, config.seed)

    if not work.done("confirming"):
        on = progress.enter("confirming")
        started = time.perf_counter()
        kept = confirm_failures(
            model, failures, device=device, batch_size=plan.data.feature_batch_size, cancel=cancel
        )
        work.save_tensors("confirmed.safetensors", {"rows": kept})
        if len(kept) == 0:
            raise RepairInputError(
                f"none of the {len(failures)} uploaded failures is misclassified by the deployed "
                "model: there is nothing to repair"
            )
        on_done = {
            "total": len(failures), "confirmed": len(kept),
            "on_trust": int((~failures.labelled).sum()),
        }  # fmt: skip
        work.finish(
            "confirming",
            {**on_done, "dropped_correct": len(failures) - len(kept),
             "seconds": time.perf_counter() - started},
        )  # fmt: skip
        on(Progress("confirming", 1, 1))
    confirmed = failures.subset(work.load_tensors("confirmed.safetensors")["rows"])

    confirmed_rows = work.load_tensors("confirmed.safetensors")["rows"]
    selection: Selection | None = None
    labelled: LabelledSelection | None = None
    # A variant that selects nothing holds every failure out; only labelled ones can be scored.
    held = confirmed.labelled.clone()
    if config.uses_failures:
        selection = _select(work, model, train, confirmed, config, plan, device, progress, cancel)
        labelled = _label(
            work, model, train, confirmed, confirmed_rows, selection, config, plan, device,
            answers or OwnerLabels(), cancel,
        )  # fmt: skip
        selection = labelled.selection
        held[selection.selected] = False
        held[labelled.given_up] = False
    held_out = confirmed_rows[held]

    genotypes, checkpoints = [], []
    net_config = network_config(deployed.spec, deployed.num_classes, plan)
    own = deployed_architecture(deployed)
    genotype: Genotype | None
    with_failures = config.retrain == "with-failures"
    train_failure_rows: list[int] = []
    if with_failures and selection is not None:
        train_failure_rows = confirmed_rows[selection.selected].tolist()
    style_rows: list[int] = []  # uploaded failure rows the fourier-style bank holds
    if config.baseline == "fourier-style" and selection is not None:
        style_rows = confirmed_rows[selection.selected].tolist()
    for iteration in range(1, config.iterations + 1):
        if config.baseline != choices.DEFAULT_BASELINE:
            # A baseline keeps phi0's architecture: only the training recipe differs.
            genotype = own.genotype
            seed = config.seed + CONTROL_SEED_OFFSET
        else:
            genotype = _search_iteration(
                work, data, _selected(selection), deployed, plan, iteration,
                device=device, progress=progress, cancel=cancel,
            )  # fmt: skip
            seed = config.seed + iteration - 1
        key = f"retraining@{iteration}"
        checkpoint = work.path(f"iter{iteration}", "model.safetensors")
        if not work.done(key):
            on = progress.enter("retraining", iteration)
            started = time.perf_counter()
            train_set = train
            if with_failures:
                train_set = concat_datasets(train, _selected(selection).core)
            baseline = config.baseline != choices.DEFAULT_BASELINE
            style = _selected(selection).core if config.baseline == "fourier-style" else None
            net, result = retrain(
                genotype, net_config, train_set, plan,
                seed=seed, device=device,
                state_path=work.path(f"iter{iteration}", TRAIN_STATE),
                on_progress=on, cancel=cancel,
                train_seed=seed if baseline else None,
                augmentation=choices.BASELINE_AUGMENTATION[config.baseline] if baseline else None,
                style_images=style, build=own.build if baseline else None,
            )  # fmt: skip
            save_trained(
                checkpoint, net, deployed,
                {"repair_config": config.to_json(), "iteration": str(iteration)},
            )  # fmt: skip
            last = result.history[-1] if result.history else {}
            work.finish(
                key,
                {"seconds": time.perf_counter() - started, "train_images": len(train_set),
                 "train_failure_rows": train_failure_rows, "seed": seed,
                 "style_rows": style_rows,
                 "final_loss": last.get("loss"), "final_train_acc": last.get("train_acc"),
                 "history": result.history},
            )  # fmt: skip
        genotypes.append(genotype)
        checkpoints.append(checkpoint)

    timings = {k: v for k, v in work.timings().items() if k != "evaluating"}
    info = {
        "variant": config.variant_name,
        "config": config.to_dict(),
        "failures_uploaded": work.result("confirming")["total"],
        "failures_confirmed": work.result("confirming")["confirmed"],
        "failures_dropped_correctly_classified": work.result("confirming")["dropped_correct"],
        # Unlabeled uploads cannot be checked against the model: taken on trust as failures.
        "failures_on_trust": work.result("confirming").get("on_trust", 0),
        "failures_misclassified": work.result("confirming")["confirmed"]
        - work.result("confirming").get("on_trust", 0),
        "label_rounds": 0 if labelled is None else labelled.rounds,
        "picks_labelled_by_owner": 0 if labelled is None else labelled.owner_labelled,
        "picks_given_up": 0 if labelled is None else len(labelled.given_up),
        "core_set_size": len(selection.core) if selection is not None else 0,
        "budget_clipped": bool(selection is not None and selection.budget_clipped),
        "held_out_failures": len(held_out),
        "train_failure_rows": train_failure_rows,
        "style_rows": style_rows,
        "genotypes": [None if g is None else g.to_dict() for g in genotypes],
    }
    if config.baseline != choices.DEFAULT_BASELINE and own.fallback is not None:
        info["architecture_fallback"] = own.fallback
    # The collapse guard of the last search; baselines search nothing, and ledgers written
    # before the guard existed have none.
    if work.done(f"searching@{config.iterations}"):
        health = work.result(f"searching@{config.iterations}").get("health")
        if health is not None:
            info["search_health"] = health
    return VariantResult(
        config.variant_name, config, tuple(genotypes), tuple(checkpoints), held_out, info, timings
    )


def _select(
    work: WorkDir,
    model: torch.nn.Module,
    train: ImageDataset,
    confirmed: ImageDataset,
    config: RepairConfig,
    plan: StagePlan,
    device: torch.device,
    progress: OverallProgress,
    cancel: CancelToken | None,
) -> Selection:
    """Select C from the confirmed failures once; read it back on a resume."""
    if not work.done("selecting"):
        on = progress.enter("selecting")
        started = time.perf_counter()
        chosen = select(
            config.selection, cast(FeatureModel, model), train, confirmed, config.budget,
            seed=config.seed, device=device, batch_size=plan.data.feature_batch_size,
            on_progress=on, cancel=cancel,
        )  # fmt: skip
        work.save_tensors(
            "selection.safetensors",
            {"core_images": chosen.core.images, "core_labels": chosen.core.labels,
             "core_train": chosen.core_train, "core_val": chosen.core_val,
             "selected": chosen.selected, "radii": chosen.radii},
        )  # fmt: skip
        work.finish(
            "selecting",
            {"method": config.selection, "budget": config.budget, "size": len(chosen.core),
             "budget_clipped": chosen.budget_clipped, "seconds": time.perf_counter() - started},
        )  # fmt: skip
    return _load_selection(work, confirmed)


def _label(
    work: WorkDir,
    model: torch.nn.Module,
    train: ImageDataset,
    confirmed: ImageDataset,
    confirmed_rows: torch.Tensor,
    selection: Selection,
    config: RepairConfig,
    plan: StagePlan,
    device: torch.device,
    answers: OwnerLabels,
    cancel: CancelToken | None,
) -> LabelledSelection:
    """C with every label known; fully labelled failures need no stage of their own."""
    if bool(confirmed.labelled.all()):
        return LabelledSelection(selection, torch.empty(0, dtype=torch.int64), 0, 0)
    if not work.done("labelling"):
        started = time.perf_counter()
        result = resolve_picks(
            model, confirmed, confirmed_rows, train, selection, answers,
            policy=config.unlabeled_picks, seed=config.seed, device=device,
            batch_size=plan.data.feature_batch_size, cancel=cancel,
        )  # fmt: skip
        chosen = result.selection
        work.save_tensors(
            "labelled.safetensors",
            {"core_labels": chosen.core.labels, "core_train": chosen.core_train,
             "core_val": chosen.core_val, "selected": chosen.selected, "radii": chosen.radii,
             "given_up": result.given_up},
        )  # fmt: skip
        work.finish(
            "labelling",
            {"policy": config.unlabeled_picks, "rounds": result.rounds,
             "owner_labelled": result.owner_labelled, "given_up": len(result.given_up),
             "size": len(chosen.core), "seconds": time.perf_counter() - started},
        )  # fmt: skip
    t = work.load_tensors("labelled.safetensors")
    core = ImageDataset(confirmed.images[t["selected"]], t["core_labels"], confirmed.class_names)
    done = work.result("labelling")
    return LabelledSelection(
        Selection(
            core, t["core_train"], t["core_val"], t["selected"], t["radii"],
            selection.budget_clipped,
        ),
        t["given_up"], int(done["rounds"]), int(done["owner_labelled"]),
    )  # fmt: skip


def _selected(selection: Selection | None) -> Selection:
    if selection is None:  # `uses_failures` is false only for variants that never ask
        raise AssertionError("this variant selected no core set")
    return selection


def _search_iteration(
    work: WorkDir,
    data: DatasetSplits,
    selection: Selection,
    deployed: DeployedModel,
    plan: StagePlan,
    iteration: int,
    *,
    device: torch.device,
    progress: OverallProgress,
    cancel: CancelToken | None,
) -> Genotype:
    key = f"searching@{iteration}"
    if not work.done(key):
        on = progress.enter("searching", iteration)
        started = time.perf_counter()
        train, val = search_data(data, selection, plan, plan.search.seed)
        # Iteration k continues the same search for k x epochs: W and alpha carry over (§4.7).
        result = run_search(
            train, val, deployed.spec, deployed.num_classes, plan,
            epochs=plan.search.epochs * iteration, device=device,
            state_path=work.path(SEARCH_STATE), on_progress=on, cancel=cancel,
        )  # fmt: skip
        work.finish(
            key,
            {"genotype": result.genotype.to_dict(), "seconds": time.perf_counter() - started,
             "final_loss": result.history[-1].loss if result.history else None,
             "health": search_health(result), "perturbation": result.perturbation,
             "history": [search_epoch(r.to_dict()) for r in result.history]},
        )  # fmt: skip
    return Genotype.from_dict(work.result(key)["genotype"])


def _load_selection(work: WorkDir, data: ImageDataset) -> Selection:
    t = work.load_tensors("selection.safetensors")
    core = ImageDataset(t["core_images"], t["core_labels"], data.class_names)
    return Selection(
        core, t["core_train"], t["core_val"], t["selected"], t["radii"],
        bool(work.result("selecting")["budget_clipped"]),
    )  # fmt: skip
