"""`repairctl repairs create|transfer|status|watch|cancel|delete|download|report|list|labels|
label`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn

from repair_core import choices
from repair_core.atomic import write_bytes_atomic
from repairctl.client import RepairClient
from repairctl.commands._common import (
    DEFAULT_URL,
    KeyOpt,
    UrlOpt,
    connected,
    echo_json,
    err_console,
    fail_message,
    transfer_progress,
)

app = typer.Typer(no_args_is_help=True, help="Repair jobs: create, follow, fetch the results.")


def _override(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep:
        fail_message(f"--set expects key=value, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


@app.command()
def create(
    model_id: str,
    batch: Annotated[
        list[str] | None, typer.Option("--batch", help="Failure batch id (repeat; default: all).")
    ] = None,
    selection: Annotated[str | None, typer.Option(help=choices.help_text("selection", "|"))] = None,
    budget: Annotated[int | None, typer.Option(help="Core failure set size B.")] = None,
    search: Annotated[str | None, typer.Option(help=choices.help_text("search", "|"))] = None,
    retrain: Annotated[str | None, typer.Option(help=choices.help_text("retrain", "|"))] = None,
    iterations: Annotated[int | None, typer.Option(help="1 to 3.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    profile: Annotated[str | None, typer.Option(help=choices.help_text("profile", "|"))] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override, e.g. search.epochs=5 (repeat).")
    ] = None,
    variants: Annotated[
        str | None,
        typer.Option(
            help="Compare variants in one report with the Control row, comma-separated, "
            "e.g. CF-DARTS,RF-DARTSE,CutMix (the first is the primary)."
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Retry-safe: the same key returns the same job.")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Queue a repair of MODEL_ID."""
    config: dict[str, Any] = {
        k: v
        for k, v in {
            "selection": selection,
            "budget": budget,
            "search": search,
            "retrain": retrain,
            "iterations": iterations,
            "seed": seed,
            "profile": profile,
        }.items()
        if v is not None
    }
    if set_:
        config["overrides"] = dict(_override(item) for item in set_)
    with connected(url, api_key) as client:
        echo_json(
            client.create_repair(
                model_id,
                failure_batch_ids=batch or None,
                config=config,
                idempotency_key=idempotency_key,
                variants=[v.strip() for v in variants.split(",")] if variants else None,
            )
        )


@app.command()
def transfer(
    job_id: str,
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset id to retrain on.")],
    profile: Annotated[
        str | None, typer.Option(help=choices.help_text("profile", "|") + " (default: the job's)")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override, e.g. train.epochs=20 (repeat).")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Queue a transfer: JOB_ID's genotype and the deployed architecture retrained on
    DATASET and scored on its test split (Table 4); follow it like any job."""
    overrides = dict(_override(item) for item in set_ or [])
    with connected(url, api_key) as client:
        echo_json(client.create_transfer(job_id, dataset, profile=profile, overrides=overrides))


@app.command("list")
def list_repairs(
    status: Annotated[str | None, typer.Option(help="Only jobs in this status.")] = None,
    model: Annotated[str | None, typer.Option(help="Only jobs of this model.")] = None,
    limit: int = 20,
    offset: int = 0,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """List your repair jobs, newest first."""
    with connected(url, api_key) as client:
        echo_json(client.list_repairs(status=status, model_id=model, limit=limit, offset=offset))


@app.command()
def status(job_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """Status, stage, progress, ETA, genotype, metrics and error of a job."""
    with connected(url, api_key) as client:
        echo_json(client.get_repair(job_id))


def _describe(job: dict[str, Any]) -> str:
    stage = f" {job['stage']}" if job.get("stage") else ""
    eta = job.get("eta_seconds")
    eta_text = f" eta {int(eta) // 60}m{int(eta) % 60:02d}s" if eta is not None else ""
    return f"{job['status']}{stage}{eta_text}"


def follow(client: RepairClient, job_id: str, *, interval: float = 2.0) -> dict[str, Any]:
    """Poll a job, showing a progress bar on stderr, until it finishes; returns its state."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        console=err_console,
    )
    with progress:
        task = progress.add_task("waiting", total=100)

        def update(job: dict[str, Any]) -> None:
            progress.update(task, completed=job["progress"], description=_describe(job))

        return client.watch(job_id, interval=interval, on_update=update)


@app.command()
def watch(
    job_id: str,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 2.0,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Follow a job with a progress bar until it finishes (or awaits labels); exit 0 only
    if it succeeded."""
    with connected(url, api_key) as client:
        job = follow(client, job_id, interval=interval)
    echo_json(job)
    if job["status"] == "awaiting_labels":
        err_console.print(
            f"{job['picks_to_label']} picked failures need labels: "
            f"repairctl repairs labels {job_id} --template labels.csv"
        )
    if job["status"] != "succeeded":
        raise typer.Exit(1)


@app.command()
def cancel(job_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """Cancel a queued or running job (running jobs stop at the next step)."""
    with connected(url, api_key) as client:
        job = client.cancel_repair(job_id)
    echo_json(job)


@app.command()
def delete(job_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """Delete a finished job with its results and work directory (a queued or running
    job is refused: cancel it first)."""
    with connected(url, api_key) as client:
        client.delete_repair(job_id)
    echo_json({"deleted": job_id})


@app.command()
def download(
    job_id: str,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Default: repaired-<id>.<safetensors|onnx|pt>"),
    ] = None,
    model_format: Annotated[
        str,
        typer.Option(
            "--format",
            help=" | ".join(choices.MODEL_FORMAT_CHOICES)
            + " (onnx and torchscript run without this project)",
        ),
    ] = choices.DEFAULT_MODEL_FORMAT,
    variant: Annotated[
        str | None,
        typer.Option(help="Another compared variant's model, e.g. CutMix (any --format)."),
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Download the repaired model (or a compared variant's); its SHA-256 is checked
    against the ETag."""
    if model_format not in choices.MODEL_FORMAT_CHOICES:
        fail_message(
            f"--format {model_format!r}: choose one of {', '.join(choices.MODEL_FORMAT_CHOICES)}",
            code=2,
        )
    stem = variant or "repaired"
    dest = output or Path(f"{stem}-{job_id}{choices.MODEL_FORMAT_SUFFIXES[model_format]}")
    with (
        connected(url, api_key) as client,
        transfer_progress(f"downloading {dest.name}") as progress,
    ):
        digest = client.download_model(
            job_id, dest, model_format=model_format, variant=variant, on_progress=progress
        )
    typer.echo(f"{dest}  sha256 {digest}")


@app.command()
def report(
    job_id: str,
    figures: Annotated[
        Path | None,
        typer.Option(help="Folder for the report figures (default: report-<id>/)."),
    ] = None,
    no_figures: Annotated[bool, typer.Option("--no-figures", help="Do not download them.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    png: Annotated[Path | None, typer.Option(help="Also save the summary bar chart here.")] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Print the report's table (markdown; --json: the whole report) and download the job's
    figures (cell graphs, heatmap, search and retraining curves), saying where they are."""
    with connected(url, api_key) as client:
        if as_json:
            echo_json(client.get_report(job_id))
        else:
            typer.echo(client.get_report_markdown(job_id), nl=False)
        if png is not None:
            client.download_report_png(job_id, png)
            typer.echo(f"figure saved to {png}", err=True)
        if no_figures:
            return
        names = list(client.get_repair(job_id).get("figures") or [])
        if not names:
            typer.echo("this job has no report figures", err=True)
            return
        folder = figures or Path(f"report-{job_id}")
        for name in names:
            client.download_figure(job_id, name, folder / name)
        typer.echo(f"{len(names)} figures saved to {folder}/: {', '.join(names)}", err=True)


@app.command()
def labels(
    job_id: str,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The picks archive; default picks-<id>.zip"),
    ] = None,
    template: Annotated[
        Path | None, typer.Option(help="Also write a labels CSV template here.")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Download the failures a job waits to have labelled (`<id>.png` + picks.json) and
    print their ids with the deployed model's guesses."""
    dest = output or Path(f"picks-{job_id}.zip")
    with connected(url, api_key) as client:
        picks = client.get_picks(job_id)
        client.download_picks(job_id, dest)
        if template is not None:
            write_bytes_atomic(template, client.picks_template(job_id).encode())
    echo_json(picks)
    err_console.print(f"{len(picks['picks'])} picks saved to {dest}")
    if template is not None:
        err_console.print(f"fill in the label column of {template}, then: "
                          f"repairctl repairs label {job_id} {template}")  # fmt: skip


@app.command()
def label(
    job_id: str,
    labels_file: Annotated[Path, typer.Argument(help="labels.csv (id,label) or labels.json")],
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Upload labels for the picks of a job awaiting labels; the job goes on."""
    if not labels_file.is_file():
        fail_message(f"no such file: {labels_file}")
    with connected(url, api_key) as client:
        echo_json(client.submit_labels(job_id, labels_file))
