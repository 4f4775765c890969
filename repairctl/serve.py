"""`repairctl serve`: the whole service on one machine, with one command."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both stop the service cleanly. Set explicitly: a process started
    in the background of a non-interactive shell inherits SIGINT *ignored* (Python then
    keeps it ignored, and Ctrl-C did nothing), and SIGTERM (systemd, `docker stop`) would
    kill `serve` at once and leave the API and the worker, each in a session of its own,
    running without it."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)


def serve_command(
    host: Annotated[str, typer.Option(help="Address the API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the API.")] = 8000,
) -> None:
    """Start the API and a repair worker (migrating the database first); Ctrl-C stops both.

    Settings come from the REPAIR_* variables; unset, that is the embedded default:
    SQLite, artifacts and a serverless broker under ./var, nothing else to run.
    """
    from api.db.migrate import upgrade
    from api.settings import get_settings
    from repairctl.service import ServiceProcesses
    from worker.timing import TimingError, time_limits

    _stop_on_signals()
    settings = get_settings()
    try:
        time_limits(settings.worker)
    except TimingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    upgrade(settings.database.url)
    service = ServiceProcesses(settings, host=host, port=port)
    service.start()
    typer.echo(
        f"repair service: API on {service.url} (docs {service.url}/docs), one worker on "
        f"queue {settings.broker.queue!r}, database {settings.database.url}, artifacts "
        f"{settings.artifacts.root}. Ctrl-C stops it.",
        err=True,
    )
    code = 0
    try:
        what = service.wait()
        typer.echo(f"error: {what}; stopping", err=True)
        code = 1
    except KeyboardInterrupt:
        typer.echo("stopping (a running job resumes at the next start) ...", err=True)
    finally:
        service.stop()
    raise typer.Exit(code)
