"""`repair`: one resumable CF-DARTS repair; `compare`: several variants on the same inputs.

Each variant runs its stages in `variant.run_variant`; then every model is evaluated once,
into one report (JSON, markdown table, Figure 3 PNG) in the work directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from repair_core.atomic import copy_file_atomic, write_json_atomic, write_text_atomic
from repair_core.checkpoint import LoadedModel
from repair_core.corruptions import CORRUPTION_NAMES
from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.device import resolve_device
from repair_core.errors import RepairInputError
from repair_core.evaluation.curves import RepairCurves, curves_of
from repair_core.evaluation.plot import plot_report
from repair_core.evaluation.report import EvaluationReport
from repair_core.evaluation.scoring import evaluate_models
from repair_core.models import DeployedModel, as_deployed, load_deployed
from repair_core.models.stats import model_stats
from repair_core.pipeline.config import RepairConfig
from repair_core.pipeline.exporting import (
    export_repaired,
    export_variants,
    exported_files,
    exported_variant_files,
)
from repair_core.pipeline.labelling import OwnerLabels
from repair_core.pipeline.progress_map import OverallProgress, variant_share
from repair_core.pipeline.variant import VariantResult, run_variant
from repair_core.pipeline.workdir import WorkDir
from repair_core.profiles import build_plan
from repair_core.progress import CancelToken, ProgressCallback, ignore_progress
from repair_core.search.collapse import health_warning
from repair_core.search.genotype import Genotype


@dataclass(frozen=True)
class RepairResult:
    genotype: Genotype | None  # None when the primary variant retrains a registry net
    checkpoint: Path  # the repaired model, <work_dir>/model.safetensors
    report: EvaluationReport
    timings: dict[str, float]  # seconds per stage
    work_dir: Path
    primary: str = ""  # the repaired variant's name (its last row is the repaired model)
    # Every variant's last checkpoint by name, the primary's and the control's included.
    variant_checkpoints: dict[str, Path] = field(default_factory=dict)
    # The repaired model in the other formats, those whose export passed its check.
    exports: dict[str, Path] = field(default_factory=dict)
    # The other variants' models in those formats: variant -> format -> file.
    variant_exports: dict[str, dict[str, Path]] = field(default_factory=dict)
    deployed_genotype: Genotype | None = None  # phi0's architecture, for the report figures
    curves: RepairCurves = field(default_factory=RepairCurves)  # the primary's, per epoch


def repair(
    deployed: LoadedModel | DeployedModel,
    data: DatasetSplits,
    failures: ImageDataset,
    config: RepairConfig,
    *,
    work_dir: Path,
    device: torch.device | str = "auto",
    on_progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    labels: OwnerLabels | None = None,
    also: Sequence[RepairConfig] = (),
) -> RepairResult:
    """Repair `deployed`; calling it again on the same `work_dir` resumes where it stopped.

    Unlabeled failures among the picks stop it with `LabelsNeeded`; call it again with the
    owner's answers in `labels` (pipeline/labelling.py).

    With `config.control` the Control row (phi0's architecture retrained with another seed,
    no failure guidance) is trained too, in `<work_dir>/Control`, and scored beside it.
    The variants in `also` (a comparison through the service) run after `config`, each in
    `<work_dir>/<variant name>` with its own ledger, and are scored in the same report on
    the same held-out failures; `config` stays the repaired (primary) model."""
    work = WorkDir(work_dir)
    report, variants = _run(
        as_deployed(deployed), data, failures, [config, *also], work, device, on_progress,
        cancel, nested=False, answers=labels,
    )  # fmt: skip
    primary = variants[0]
    final = work.path("model.safetensors")
    if not final.exists():
        copy_file_atomic(primary.checkpoints[-1], final)
    formats = export_repaired(work, final, data.image_shape)
    others = {v.name: v.checkpoints[-1] for v in variants[1:]}
    variant_formats = export_variants(work, others, data.image_shape)
    report = with_exports(work, report, formats, variant_formats)
    timings = dict(primary.timings)
    for v in variants[1:]:
        timings.update({f"{v.name}:{k}": t for k, t in v.timings.items()})
    return RepairResult(
        genotype=primary.genotypes[-1],
        checkpoint=final,
        report=report,
        timings={
            **timings,
            **{stage: work.result(stage)["seconds"] for stage in ("evaluating", "exporting")},
        },
        work_dir=work.root,
        primary=primary.name,
        variant_checkpoints={v.name: v.checkpoints[-1] for v in variants},
        exports=exported_files(work, formats),
        variant_exports=exported_variant_files(work, variant_formats),
        deployed_genotype=deployed.genotype,
        curves=curves_of(work.stages(), config.iterations),
    )


def compare(
    deployed: LoadedModel | DeployedModel,
    data: DatasetSplits,
    failures: ImageDataset,
    configs: Sequence[RepairConfig],
    *,
    work_dir: Path,
    device: torch.device | str = "auto",
    on_progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> tuple[EvaluationReport, list[VariantResult]]:
    """Run each variant (e.g. CF, RF, AU; with and without E) and score all in one report.

    Held-out failures are those no variant selected, so every row of the table is scored on
    the same images. Any config with `control` adds the Control row (unless one is listed).
    """
    return _run(
        as_deployed(deployed), data, failures, configs, WorkDir(work_dir), device, on_progress,
        cancel, nested=True,
    )  # fmt: skip


def control_config(config: RepairConfig) -> RepairConfig:
    """The control of a repair: same data, sizes and epochs, phi0's architecture, no C."""
    return replace(config, baseline="control", retrain="clean", iterations=1, control=False)


def _run(
    deployed: DeployedModel,
    data: DatasetSplits,
    failures: ImageDataset,
    configs: Sequence[RepairConfig],
    root: WorkDir,
    device: torch.device | str,
    on_progress: ProgressCallback,
    cancel: CancelToken | None,
    *,
    nested: bool,
    answers: OwnerLabels | None = None,
) -> tuple[EvaluationReport, list[VariantResult]]:
    """Every variant, each in its own work dir (the first in `root` itself unless `nested`),
    then one evaluation of all on the failures none of them selected."""
    if not configs:
        raise RepairInputError("a repair needs at least one variant")
    configs = list(configs)
    names = [c.variant_name for c in configs]
    if len(set(names)) != len(names):
        raise RepairInputError(f"compare needs distinct variants, got {names}")
    control = next((c for c in configs if c.baseline == "control" and c.retrain == "clean"), None)
    if control is None and any(c.control for c in configs):
        control = control_config(configs[0])
        configs.append(control)
    dev = resolve_device(device) if isinstance(device, str) else device
    variants = []
    for k, config in enumerate(configs):
        work = root if k == 0 and not nested else WorkDir(root.root / config.variant_name)
        variants.append(
            run_variant(
                deployed,
                data,
                failures,
                config,
                work=work,
                device=dev,
                progress=OverallProgress(
                    variant_share(on_progress, k, len(configs)), config.iterations
                ),
                cancel=cancel,
                answers=answers,
            )
        )
    # Every row is scored on the same images: those no variant trained or searched on.
    selecting = [v for v in variants if v.config.uses_failures] or variants[:1]
    held_out = selecting[0].held_out
    for v in selecting[1:]:
        held_out = held_out[torch.isin(held_out, v.held_out)]
    # Row order: original, the control, then the variants as asked.
    ordered = [v for v in variants if control is not None and v.config == control]
    ordered += [v for v in variants if v not in ordered]
    roles = {
        "primary": variants[0].name,
        "control": None if control is None else control.variant_name,
    }
    report = _evaluate(
        root, deployed, data, failures, ordered, held_out, configs[0], roles,
        device=dev, progress=OverallProgress(on_progress, 1), cancel=cancel,
    )  # fmt: skip
    return report, variants


def _evaluate(
    work: WorkDir,
    deployed: DeployedModel,
    data: DatasetSplits,
    failures: ImageDataset,
    variants: Sequence[VariantResult],
    held_out: torch.Tensor,
    config: RepairConfig,
    roles: dict[str, str | None],
    *,
    device: torch.device,
    progress: OverallProgress,
    cancel: CancelToken | None,
) -> EvaluationReport:
    report_path = work.path("report.json")
    if work.done("evaluating") and report_path.exists():
        return EvaluationReport.from_json(report_path.read_text())
    plan = build_plan(config.profile, config.overrides, search=config.search, seed=config.seed)
    on = progress.enter("evaluating")
    started = time.perf_counter()
    models: dict[str, torch.nn.Module] = {"original": deployed.model.to(device).eval()}
    rows: dict[str, list[str]] = {}
    for v in variants:
        rows[v.name] = []
        for k, checkpoint in enumerate(v.checkpoints, start=1):
            name = v.name if len(v.checkpoints) == 1 else f"{v.name}-{k}"
            models[name] = load_deployed(checkpoint, device=device).model
            rows[v.name].append(name)
    held = failures.subset(held_out) if len(held_out) else None
    ev = plan.evaluation
    corruptions = scored_corruptions(ev.corruptions, config.failure_name)
    report = evaluate_models(
        models, data.test, held,
        corruption_name_of_failures=config.failure_name,
        corruptions=corruptions, severities=ev.severities, seed=config.seed,
        device=device, batch_size=ev.batch_size, max_images=ev.max_images,
        on_progress=on, cancel=cancel,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    info: dict[str, Any] = {
        "variants": {v.name: {**v.info, "timings": v.timings} for v in variants},
        "rows": rows,  # variant -> its report rows (one per iteration)
        **roles,
        "held_out_failures": len(held_out),
        # The uploaded failure rows every row's <X>_fail column was scored on.
        "held_out_rows": held_out.tolist(),
        "evaluation_seconds": seconds,
        "evaluation_max_images": ev.max_images,
    }
    # Parameters and FLOPs per image of every row, the deployed model's first; the
    # repaired network's size is the profile's stated choice (`StagePlan.net`).
    shape = data.image_shape
    info["model_stats"] = {
        name: asdict(model_stats(model, shape)) for name, model in models.items()
    }
    info["repaired_size"] = {
        "profile": config.profile,
        "init_channels": plan.net.init_channels,
        "layers": plan.net.layers,
        "input_shape": list(shape),
    }
    warnings = [
        w
        for v in variants
        if (w := health_warning(v.name, v.info.get("search_health", {}))) is not None
    ]
    if held is None:
        # Unlabeled failures cannot be scored: the <X>_fail column needs labelled held-out
        # failures; the corrupted test split and the corruption suite still show the gain.
        note = (
            "the failure column is not available: no labelled held-out failure (the failures "
            "came unlabeled or were all selected); see the corrupted test split "
            f"({config.failure_name}_all when named after a corruption) and the corruption "
            "columns"
        )
        info["failure_column"] = "not available"
        warnings.append(note)
    else:
        info["failure_column"] = f"{len(held)} labelled held-out failures"
    if warnings:
        info["warnings"] = warnings
    report = EvaluationReport(report.models, report.failure_corruption, {**report.info, **info})
    write_report(work, report)
    plot_report(report, work.path("report.png"))
    work.finish("evaluating", {"seconds": seconds})
    return report


def scored_corruptions(listed: Sequence[str], failure_name: str | None) -> tuple[str, ...]:
    """The evaluation's corruptions plus the failures' own when it is a known corruption."""
    corruptions = tuple(listed)
    if failure_name in CORRUPTION_NAMES and failure_name not in corruptions:
        # The <X>_all column (the whole test split under the failures' corruption) always
        # exists for a known corruption, whatever the evaluation's list says.
        corruptions = (*corruptions, failure_name)
    return corruptions


def with_exports(
    work: WorkDir,
    report: EvaluationReport,
    formats: dict[str, dict[str, Any]],
    variant_formats: dict[str, dict[str, dict[str, Any]]],
) -> EvaluationReport:
    """The report with the primary's exports (`exports`) and the other variants'
    (`variant_exports`), rewritten when they changed."""
    if (report.info.get("exports"), report.info.get("variant_exports")) == (
        formats,
        variant_formats,
    ):
        return report
    info = {**report.info, "exports": formats, "variant_exports": variant_formats}
    report = EvaluationReport(report.models, report.failure_corruption, info)
    write_report(work, report)
    return report


def write_report(work: WorkDir, report: EvaluationReport) -> None:
    """report.json and report.md (its table at the highest severity scored), atomically."""
    write_json_atomic(work.path("report.json"), json.loads(report.to_json()))
    severity = max(report.severities) if report.severities else None
    write_text_atomic(work.path("report.md"), report.to_markdown(severity=severity))
