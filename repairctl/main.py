"""Entry point of `repairctl`. Commands import their heavy dependencies lazily."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Model-repair service command-line tool.")


@app.command()
def version() -> None:
    """Print the version of the installed service."""
    import repair_core

    typer.echo(repair_core.__version__)
