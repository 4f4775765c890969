"""`repairctl failures upload|list|delete`."""

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

app = typer.Typer(no_args_is_help=True, help="Failure batches: field images a model gets wrong.")


@app.command()
def upload(
    model_id: str,
    path: UploadPathArg,
    name: NameOpt = None,
    url: UrlOpt = DEFAULT_URL,
    api_key: KeyOpt = None,
) -> None:
    """Upload images + a labels manifest (labels.csv/json: file, label) or an .npz (x, y)."""
    with connected(url, api_key) as client:
        batch = upload_and_echo(
            path,
            lambda progress: client.upload_failures(
                model_id, path, name=name, on_progress=progress
            ),
        )
        if batch.get("rejected"):
            typer.echo(f"{batch['accepted']} accepted, {len(batch['rejected'])} rejected", err=True)


@app.command("list")
def list_failures(model_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """List the failure batches of a model."""
    with connected(url, api_key) as client:
        echo_json(client.list_failures(model_id))


@app.command()
def delete(model_id: str, batch_id: str, url: UrlOpt = DEFAULT_URL, api_key: KeyOpt = None) -> None:
    """Delete one failure batch of a model (refused while a repair job uses it)."""
    with connected(url, api_key) as client:
        client.delete_failures(model_id, batch_id)
    echo_json({"deleted": batch_id})
