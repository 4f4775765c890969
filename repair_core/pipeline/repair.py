"""`repair`: one resumable CF-DARTS repair; `compare`: several variants on the same inputs.

Each variant runs its stages in `variant.run_variant`; then every model is evaluated once,
into one report (JSON, markdown table, Figure 3 PNG) in the work directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from repair_core.atomic import copy_file_atomic, write_json_atomic, write_text_atomic
from repair_core.checkpoint import LoadedModel, load_model
from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.device import resolve_device
from repair_core.errors import RepairInputError
from repair_core.evaluation.plot import plot_report
from repair_core.evaluation.report import EvaluationReport
from repair_core.evaluation.scoring import evaluate_models
from repair_core.pipeline.config import RepairConfig
from repair_core.pipeline.profiles import build_plan
from repair_core.pipeline.progress_map import OverallProgress
from repair_core.pipeline.variant import VariantResult, run_variant
from repair_core.pipeline.workdir import WorkDir
from repair_core.progress import CancelToken, ProgressCallback, ignore_progress
from repair_core.search.collapse import health_warning
from repair_core.search.genotype import Genotype


@dataclass(frozen=True)
class RepairResult:
    genotype: Genotype
    checkpoint: Path  # the repaired model, <work_dir>/model.safetensors
    report: EvaluationReport
    timings: dict[str, float]  # seconds per stage
    work_dir: Path


def repair(
    deployed: LoadedModel,
    data: DatasetSplits,
    failures: ImageDataset,
    config: RepairConfig,
    *,
    work_dir: Path,
    device: torch.device | str = "auto",
    on_progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> RepairResult:
    """Repair `deployed`; calling it again on the same `work_dir` resumes where it stopped."""
    work = WorkDir(work_dir)
    dev = resolve_device(device) if isinstance(device, str) else device
    progress = OverallProgress(on_progress, config.iterations)
    variant = run_variant(
        deployed, data, failures, config,
        work=work, device=dev, progress=progress, cancel=cancel,
    )  # fmt: skip
    report = _evaluate(
        work, deployed, data, failures, [variant], variant.held_out, config,
        device=dev, progress=progress, cancel=cancel,
    )  # fmt: skip
    final = work.path("model.safetensors")
    if not final.exists():
        copy_file_atomic(variant.checkpoints[-1], final)
    return RepairResult(
        genotype=variant.genotypes[-1],
        checkpoint=final,
        report=report,
        timings={**variant.timings, "evaluating": work.result("evaluating")["seconds"]},
        work_dir=work.root,
    )


def compare(
    deployed: LoadedModel,
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
    the same images.
    """
    names = [c.variant_name for c in configs]
    if len(set(names)) != len(names):
        raise RepairInputError(f"compare needs distinct variants, got {names}")
    root = WorkDir(work_dir)
    dev = resolve_device(device) if isinstance(device, str) else device
    variants = []
    for config in configs:
        progress = OverallProgress(on_progress, config.iterations)
        variants.append(
            run_variant(
                deployed,
                data,
                failures,
                config,
                work=WorkDir(root.root / config.variant_name),
                device=dev,
                progress=progress,
                cancel=cancel,
            )
        )
    held_out = variants[0].held_out
    for v in variants[1:]:
        held_out = held_out[torch.isin(held_out, v.held_out)]
    report = _evaluate(
        root, deployed, data, failures, variants, held_out, configs[0],
        device=dev, progress=OverallProgress(on_progress, 1), cancel=cancel,
    )  # fmt: skip
    return report, variants


def _evaluate(
    work: WorkDir,
    deployed: LoadedModel,
    data: DatasetSplits,
    failures: ImageDataset,
    variants: Sequence[VariantResult],
    held_out: torch.Tensor,
    config: RepairConfig,
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
    for v in variants:
        for k, checkpoint in enumerate(v.checkpoints, start=1):
            name = v.name if len(v.checkpoints) == 1 else f"{v.name}-{k}"
            models[name] = load_model(checkpoint, device=device).model
    held = failures.subset(held_out) if len(held_out) else None
    ev = plan.evaluation
    report = evaluate_models(
        models, data.test, held,
        corruption_name_of_failures=config.failure_name,
        corruptions=ev.corruptions, severities=ev.severities, seed=config.seed,
        device=device, batch_size=ev.batch_size, max_images=ev.max_images,
        on_progress=on, cancel=cancel,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    info = {
        "variants": {v.name: {**v.info, "timings": v.timings} for v in variants},
        "held_out_failures": len(held_out),
        "evaluation_seconds": seconds,
        "evaluation_max_images": ev.max_images,
    }
    warnings = [
        w
        for v in variants
        if (w := health_warning(v.name, v.info.get("search_health", {}))) is not None
    ]
    if warnings:
        info["warnings"] = warnings
    report = EvaluationReport(report.models, report.failure_corruption, {**report.info, **info})
    write_json_atomic(report_path, json.loads(report.to_json()))
    write_text_atomic(work.path("report.md"), report.to_markdown(severity=max(ev.severities)))
    plot_report(report, work.path("report.png"))
    work.finish("evaluating", {"seconds": seconds})
    return report
