"""Options, output and error handling shared by the HTTP client commands."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from repairctl.client import ApiError, RepairClient

DEFAULT_URL = "http://127.0.0.1:8000"

UrlOpt = Annotated[
    str, typer.Option("--url", envvar="REPAIR_URL", help="Base URL of the repair service.")
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="REPAIR_API_KEY",
        help="API key (rk_...); prefer the REPAIR_API_KEY variable to keep it out of history.",
        show_default=False,
    ),
]

# The file argument and name option of every upload command.
UploadPathArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]
NameOpt = Annotated[str | None, typer.Option(help="Display name (default: file name).")]

err_console = Console(stderr=True)


def make_client(url: str, api_key: str | None) -> RepairClient:
    if not api_key:
        fail_message("no API key: pass --api-key or set REPAIR_API_KEY")
    return RepairClient(url, api_key)


def fail_message(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def api_errors() -> Iterator[None]:
    """Turn service errors and connection failures into a one-line message and exit 1."""
    try:
        yield
    except ApiError as exc:
        lines = [f"HTTP {exc.status} {exc.code}: {exc.detail}"]
        lines += [f"  - {json.dumps(e)}" for e in exc.problem.get("errors", [])[:20]]
        fail_message("\n".join(lines))
    except OSError as exc:  # includes httpx transport errors' causes
        fail_message(f"cannot reach the service: {exc}")
    except Exception as exc:
        import httpx

        if isinstance(exc, httpx.TransportError):
            fail_message(f"cannot reach the service: {exc}")
        raise


@contextmanager
def connected(url: str, api_key: str | None) -> Iterator[RepairClient]:
    """A client to the service; its errors end the command with a one-line message."""
    with api_errors(), make_client(url, api_key) as client:
        yield client


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=False))


@contextmanager
def transfer_progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A byte progress bar on stderr; yields the callback that moves it."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    with progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None)

        yield update


def upload_and_echo(
    path: Path, send: Callable[[Callable[[int, int], None]], dict[str, Any]]
) -> dict[str, Any]:
    """`send(on_progress)` under an upload progress bar; prints and returns what it created."""
    with transfer_progress(f"uploading {path.name}") as progress:
        created = send(progress)
    echo_json(created)
    return created
