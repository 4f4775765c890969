"""Transfer (the paper's Table 4): a repair's searched genotype retrained on another dataset.

The searched cell is retrained from scratch on the new dataset (its own classes, channels and
image size) and scored on that dataset's clean test split and the corruption suite, beside
the Control: the deployed architecture (its DARTS genotype, or its timm / torchvision
registry architecture built for the new classes and input) retrained on the same images with
the same plan and the same seed policy as a repair's control (init and data order from
seed + offset). Only an ONNX graph, which has no trainable architecture, falls back to
DARTS V2 (`architecture_fallback` in the report's info), as a repair's control does. The
deployed model itself has no row: it was trained for other classes. Each retraining is a
ledger stage of the work directory, so a second call resumes after the last finished one.

The result is a `RepairResult` (primary row: Transferred; its model exported to the other
formats like a repair's), so the service stores a transfer job like any other job.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from repair_core.datasets.ops import seeded_subset
from repair_core.datasets.types import DatasetSplits
from repair_core.device import resolve_device
from repair_core.evaluation.plot import plot_report
from repair_core.evaluation.report import EvaluationReport
from repair_core.evaluation.scoring import evaluate_models
from repair_core.models.retrainable import DeployedArchitecture, architecture_of, save_trained
from repair_core.models.spec import DeployedModel, InputSpec
from repair_core.models.store import load_deployed
from repair_core.pipeline.config import CONTROL_SEED_OFFSET
from repair_core.pipeline.exporting import (
    export_repaired,
    export_variants,
    exported_files,
    exported_variant_files,
)
from repair_core.pipeline.original import dataset_normalization
from repair_core.pipeline.progress_map import span_share
from repair_core.pipeline.repair import (
    RepairResult,
    scored_corruptions,
    with_exports,
    write_report,
)
from repair_core.pipeline.stages import retrain
from repair_core.pipeline.workdir import WorkDir
from repair_core.profiles import StagePlan
from repair_core.progress import CancelToken, ProgressCallback, ignore_progress
from repair_core.scratch import TRAIN_STATE
from repair_core.search.genotype import Genotype
from repair_core.search.network import NetworkConfig

TRANSFERRED = "Transferred"  # the searched genotype's row
CONTROL = "Control"  # the deployed architecture's row


def transfer_network_config(data: DatasetSplits, plan: StagePlan) -> NetworkConfig:
    """The profile's network size with the new dataset's classes, shape and normalisation."""
    spec = transfer_input_spec(data)
    return NetworkConfig(
        init_channels=plan.net.init_channels,
        layers=plan.net.layers,
        num_classes=len(data.class_names),
        in_channels=spec.channels,
        image_size=spec.height,
        auxiliary=plan.net.auxiliary,
        drop_path_prob=plan.train.drop_path_prob,
        mean=spec.mean,
        std=spec.std,
    )


def transfer_input_spec(data: DatasetSplits) -> InputSpec:
    """The new dataset's input: shape and the normalisation of its training split."""
    c, h, w = data.image_shape
    mean, std = dataset_normalization(data.train)
    return InputSpec(c, h, w, mean, std)


def transfer(
    genotype: Genotype,
    deployed: DeployedArchitecture,
    data: DatasetSplits,
    plan: StagePlan,
    *,
    seed: int,
    work_dir: Path,
    failure_name: str | None = None,
    device: torch.device | str = "auto",
    on_progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> RepairResult:
    """Retrain `genotype` and the `deployed` architecture on `data.train`, score both on
    `data.test`.

    `failure_name`: the source repair's failure corruption; when it names a known corruption
    the report has its whole-test-split column (<X>_all) on the new dataset too."""
    work = WorkDir(work_dir)
    dev = resolve_device(device) if isinstance(device, str) else device
    config = transfer_network_config(data, plan)
    spec = transfer_input_spec(data)
    classes = len(data.class_names)
    own = architecture_of(deployed, spec, classes)
    train = seeded_subset(data.train, plan.data.train_max_images, seed)
    # Same seed policy as a repair: the searched cell from `seed` with the plan's data order,
    # the control from seed + offset for both (variant.py).
    control_seed = seed + CONTROL_SEED_OFFSET
    rows = {
        CONTROL: (own.genotype, own.build, control_seed, control_seed),
        TRANSFERRED: (genotype, None, seed, None),
    }
    # The facts save_trained writes beside a retrained registry net (its module is unused).
    target = DeployedModel(
        torch.nn.Identity(), deployed.family, deployed.architecture, spec, classes,
        data.class_names,
    )  # fmt: skip
    checkpoints: dict[str, Path] = {}
    for k, (name, (cell, build, init_seed, train_seed)) in enumerate(rows.items()):
        key = f"retraining:{name}"
        checkpoint = work.path(name, "model.safetensors")
        if not work.done(key):
            started = time.perf_counter()
            # Each retraining is 44 % of the whole, the evaluation the last 12 %.
            on = span_share(on_progress, "retraining", 44.0 * k, 44.0 * (k + 1))
            net, result = retrain(
                cell, config, train, plan,
                seed=init_seed, device=dev, state_path=work.path(name, TRAIN_STATE),
                on_progress=on, cancel=cancel, train_seed=train_seed, build=build,
            )  # fmt: skip
            save_trained(checkpoint, net, target, {})
            last = result.history[-1] if result.history else {}
            work.finish(
                key,
                {"seconds": time.perf_counter() - started, "train_images": len(train),
                 "seed": init_seed, "genotype": None if cell is None else cell.to_dict(),
                 "architecture": _architecture_label(deployed) if build else "darts",
                 "final_train_acc": last.get("train_acc")},
            )  # fmt: skip
        checkpoints[name] = checkpoint
    fallback = {} if own.fallback is None else {"architecture_fallback": own.fallback}
    report = _evaluate(
        work, data, plan, checkpoints, seed, failure_name, dev, on_progress, cancel, fallback
    )
    formats = export_repaired(work, checkpoints[TRANSFERRED], data.image_shape)
    control_formats = export_variants(work, {CONTROL: checkpoints[CONTROL]}, data.image_shape)
    report = with_exports(work, report, formats, control_formats)
    return RepairResult(
        genotype=genotype,
        checkpoint=checkpoints[TRANSFERRED],
        report=report,
        timings=work.timings(),
        work_dir=work.root,
        primary=TRANSFERRED,
        variant_checkpoints=checkpoints,
        exports=exported_files(work, formats),
        variant_exports=exported_variant_files(work, control_formats),
        deployed_genotype=own.genotype,
    )


def _architecture_label(deployed: DeployedArchitecture) -> str:
    return f"{deployed.family} {deployed.architecture}"


def _evaluate(
    work: WorkDir,
    data: DatasetSplits,
    plan: StagePlan,
    checkpoints: dict[str, Path],
    seed: int,
    failure_name: str | None,
    device: torch.device,
    on_progress: ProgressCallback,
    cancel: CancelToken | None,
    extra_info: dict[str, str],
) -> EvaluationReport:
    report_path = work.path("report.json")
    if work.done("evaluating") and report_path.exists():
        return EvaluationReport.from_json(report_path.read_text())
    started = time.perf_counter()
    ev = plan.evaluation
    models = {name: load_deployed(path, device=device).model for name, path in checkpoints.items()}
    report = evaluate_models(
        models, data.test, None,
        corruption_name_of_failures=failure_name,
        corruptions=scored_corruptions(ev.corruptions, failure_name), severities=ev.severities,
        seed=seed, device=device, batch_size=ev.batch_size, max_images=ev.max_images,
        on_progress=span_share(on_progress, "evaluating", 88.0, 100.0), cancel=cancel,
    )  # fmt: skip
    info = {
        **report.info,
        "kind": "transfer",
        "primary": TRANSFERRED,
        "control": CONTROL,
        "rows": {TRANSFERRED: [TRANSFERRED], CONTROL: [CONTROL]},
        "classes": list(data.class_names),
        "input_shape": list(data.image_shape),
        "train_images": work.result(f"retraining:{TRANSFERRED}")["train_images"],
        "genotypes": {name: work.result(f"retraining:{name}")["genotype"] for name in checkpoints},
        "architectures": {
            name: work.result(f"retraining:{name}").get("architecture", "darts")
            for name in checkpoints
        },
        "failure_column": "not available: a transfer has no failures on the new dataset",
        "evaluation_seconds": time.perf_counter() - started,
        **extra_info,
    }
    report = EvaluationReport(report.models, report.failure_corruption, info)
    write_report(work, report)
    severity = max(report.severities) if report.severities else None
    plot_report(report, work.path("report.png"), severity=severity)
    work.finish("evaluating", {"seconds": info["evaluation_seconds"]})
    return report
