"""`repairctl failures upload|list`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repairctl.commands._common import (
    DEFAULT_URL,
    KeyOpt,
    UrlOpt,
    api_errors,
    echo_json,
    make_client,
    transfer_progress,
)

app = typer.Typer(no_args_is_help=True, help="Failure batches: field images a model gets wrong.")


@app.command()
def upload(
    model_id: str,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    name: Annotated[str | None, typer.Option(help="Display name (default: file name).")] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Upload images + a labels manifest (labels.csv/json: file, label) or an .npz (x, y)."""
    with api_errors(), make_client(url, api_key) as client:
        with transfer_progress(f"uploading {path.name}") as progress:
            batch = client.upload_failures(model_id, path, name=name, on_progress=progress)
        echo_json(batch)
        if batch.get("rejected"):
            typer.echo(f"{batch['accepted']} accepted, {len(batch['rejected'])} rejected", err=True)


@app.command("list")
def list_failures(model_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """List the failure batches of a model."""
    with api_errors(), make_client(url, api_key) as client:
        echo_json(client.list_failures(model_id))
