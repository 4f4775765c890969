"""`repairctl models upload|list|show|delete`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repairctl.commands._common import (
    DEFAULT_URL,
    KeyOpt,
    NameOpt,
    UploadPathArg,
    UrlOpt,
    connected,
    echo_json,
    upload_and_echo,
)

app = typer.Typer(no_args_is_help=True, help="Deployed models (checkpoints) to repair.")


def _text_or_file(value: str | None) -> str | None:
    """`@path` reads the value from a file."""
    if value is not None and value.startswith("@"):
        return Path(value[1:]).read_text()
    return value


def _numbers(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{option} takes comma-separated numbers, got {text!r}") from None


@app.command()
def upload(
    path: UploadPathArg,
    dataset: Annotated[str, typer.Option("--dataset", help="Id of the model's dataset.")],
    name: NameOpt = None,
    genotype: Annotated[
        str | None,
        typer.Option(help="Genotype for a .pt state dict: JSON, DARTS notation, or @file."),
    ] = None,
    network_config: Annotated[
        str | None, typer.Option(help="Network config JSON (or @file) for a .pt state dict.")
    ] = None,
    family: Annotated[
        str | None,
        typer.Option(
            help="darts, timm, torchvision or onnx (default: onnx for .onnx, else darts)."
        ),
    ] = None,
    architecture: Annotated[
        str | None, typer.Option(help="timm / torchvision registry name, e.g. resnet18.")
    ] = None,
    mean: Annotated[
        str | None, typer.Option(help="Input normalisation mean per channel: 0.5,0.5,0.5.")
    ] = None,
    std: Annotated[
        str | None, typer.Option(help="Input normalisation std per channel: 0.25,0.25,0.25.")
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Upload a deployed model: a repair_core .safetensors checkpoint, a .pt state dict with
    --genotype, a timm / torchvision state dict with --family and --architecture, or .onnx."""
    with connected(url, api_key) as client:
        upload_and_echo(
            path,
            lambda progress: client.upload_model(
                path,
                dataset_id=dataset,
                name=name,
                genotype=_text_or_file(genotype),
                network_config=_text_or_file(network_config),
                family=family,
                architecture=architecture,
                mean=_numbers(mean, "--mean"),
                std=_numbers(std, "--std"),
                on_progress=progress,
            ),
        )


@app.command("list")
def list_models(url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """List your models."""
    with connected(url, api_key) as client:
        echo_json(client.list_models())


@app.command()
def show(model_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """Show one model."""
    with connected(url, api_key) as client:
        echo_json(client.get_model(model_id))


@app.command()
def delete(model_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """Delete a model with its failure batches and finished repairs (refused while a
    repair job uses it)."""
    with connected(url, api_key) as client:
        client.delete_model(model_id)
    echo_json({"deleted": model_id})
