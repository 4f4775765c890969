"""Entry point of `repairctl`. Commands import their heavy dependencies lazily."""

from __future__ import annotations

import typer

from repairctl.corrupt import corrupt_command
from repairctl.run import run_command

app = typer.Typer(no_args_is_help=True, help="Model-repair service command-line tool.")
app.command("corrupt")(corrupt_command)
app.command("run")(run_command)


@app.command()
def version() -> None:
    """Print the version of the installed service."""
    import repair_core

    typer.echo(repair_core.__version__)
