"""`repairctl datasets upload|list|show`."""

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

app = typer.Typer(no_args_is_help=True, help="Clean datasets (uploaded once per model family).")


@app.command()
def upload(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    name: Annotated[str | None, typer.Option(help="Display name (default: file name).")] = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Upload an ImageFolder .tar/.tar.gz/.zip (train/, test/, optional val/) or an .npz."""
    with api_errors(), make_client(url, api_key) as client:
        with transfer_progress(f"uploading {path.name}") as progress:
            dataset = client.upload_dataset(path, name=name, on_progress=progress)
        echo_json(dataset)


@app.command("list")
def list_datasets(url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """List your datasets."""
    with api_errors(), make_client(url, api_key) as client:
        echo_json(client.list_datasets())


@app.command()
def show(dataset_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """Show one dataset: classes, counts per split, image shape, sha256, size."""
    with api_errors(), make_client(url, api_key) as client:
        echo_json(client.get_dataset(dataset_id))
