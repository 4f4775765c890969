"""`repairctl datasets upload|list|show|delete`."""

from __future__ import annotations

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

app = typer.Typer(no_args_is_help=True, help="Clean datasets (uploaded once per model family).")


@app.command()
def upload(
    path: UploadPathArg,
    name: NameOpt = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Upload an ImageFolder .tar/.tar.gz/.zip (train/, test/, optional val/) or an .npz."""
    with connected(url, api_key) as client:
        upload_and_echo(
            path, lambda progress: client.upload_dataset(path, name=name, on_progress=progress)
        )


@app.command("list")
def list_datasets(url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """List your datasets."""
    with connected(url, api_key) as client:
        echo_json(client.list_datasets())


@app.command()
def show(dataset_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """Show one dataset: classes, counts per split, image shape, sha256, size."""
    with connected(url, api_key) as client:
        echo_json(client.get_dataset(dataset_id))


@app.command()
def delete(dataset_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """Delete a dataset with the models trained on it, their failure batches and finished
    repairs (refused while a repair job uses them)."""
    with connected(url, api_key) as client:
        client.delete_dataset(dataset_id)
    echo_json({"deleted": dataset_id})
