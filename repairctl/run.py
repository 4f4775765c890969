"""`repairctl run`: the repair pipeline on local files, without the service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repair_core import choices

SelectionOpt = Annotated[str, typer.Option(help=choices.help_text("selection"))]
SearchOpt = Annotated[str, typer.Option(help=choices.help_text("search"))]
RetrainOpt = Annotated[str, typer.Option(help=choices.help_text("retrain"))]
ProfileOpt = Annotated[str, typer.Option(help=choices.help_text("profile"))]


def _parse_overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set takes section.field=value, got {pair!r}")
        overrides[key.strip()] = value.strip()
    return overrides


def run_command(
    model: Annotated[Path, typer.Option(help="deployed model (.safetensors checkpoint)")],
    data: Annotated[
        Path, typer.Option(help="clean dataset: .npz, ImageFolder archive or directory")
    ],
    failures: Annotated[
        Path, typer.Option(help="failures: .npz (x, y) or archive with labels.csv/json")
    ],
    work_dir: Annotated[Path, typer.Option(help="stage outputs; rerun to resume")],
    selection: SelectionOpt = choices.DEFAULT_SELECTION,
    budget: Annotated[int, typer.Option(help="core failure set size B")] = 1000,
    search: SearchOpt = choices.DEFAULT_SEARCH,
    retrain: RetrainOpt = choices.DEFAULT_RETRAIN,
    iterations: Annotated[int, typer.Option(min=1, max=3)] = 1,
    seed: int = 0,
    profile: ProfileOpt = choices.DEFAULT_PROFILE,
    failure_name: Annotated[str, typer.Option(help="label of the failures' column")] = "failures",
    override: Annotated[
        list[str] | None, typer.Option("--set", help="profile override section.field=value")
    ] = None,
    compare: Annotated[
        bool, typer.Option(help="also run the RF and AU baselines and score all together")
    ] = False,
    variants: Annotated[
        str | None,
        typer.Option(
            help="comma-separated variants scored together, e.g. CF-DARTSE,AugMix-E,CutMix-E "
            "(CF|CFS|RF|AU-DARTS[E], Control|AugMix|CutMix|FourierStyle[-E]); the first is "
            "the repaired model"
        ),
    ] = None,
    control: Annotated[
        bool, typer.Option(help="also retrain phi0's architecture without failures (Control)")
    ] = True,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
) -> None:
    """Repair a deployed model on local files and print the report table."""
    from dataclasses import replace

    from rich.console import Console

    from repair_core.checkpoint import load_model
    from repair_core.datasets.ingest import IngestLimits, read_dataset, read_failure_batch
    from repair_core.errors import RepairInputError
    from repair_core.pipeline import RepairConfig, repair
    from repair_core.pipeline import compare as compare_variants
    from repairctl.progress_bars import StageBars

    console = Console()
    try:
        config = RepairConfig(
            selection=selection, budget=budget, search=search,
            retrain=retrain, iterations=iterations, seed=seed,
            profile=profile, overrides=_parse_overrides(override or []),
            failure_name=failure_name, control=control,
        )  # fmt: skip
        configs = [config]
        if variants:
            configs = [config.as_variant(n.strip()) for n in variants.split(",")]
        elif compare:
            configs = [
                config, replace(config, selection="random"), replace(config, selection="augment")
            ]  # fmt: skip
        limits = IngestLimits()
        deployed = load_model(model)
        splits = read_dataset(data, limits).splits
        batch = read_failure_batch(
            failures, class_names=splits.class_names, image_shape=splits.image_shape,
            limits=limits,
        )  # fmt: skip
        for rejected in batch.rejected[:20]:
            console.print(f"[yellow]skipped failure {rejected.file}: {rejected.reason}")
        with StageBars(console) as bars:
            if len(configs) > 1:
                report, _ = compare_variants(
                    deployed, splits, batch.dataset, configs,
                    work_dir=work_dir, device=device, on_progress=bars,
                )  # fmt: skip
            else:
                result = repair(
                    deployed, splits, batch.dataset, config,
                    work_dir=work_dir, device=device, on_progress=bars,
                )  # fmt: skip
                report = result.report
    except RepairInputError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    severity = max(report.severities) if report.severities else None
    console.print(report.to_markdown(severity=severity))
    console.print(f"work directory: {work_dir} (model.safetensors, report.json, report.png)")
