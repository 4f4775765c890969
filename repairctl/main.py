"""Entry point of `repairctl`. Commands import their heavy dependencies lazily."""

from __future__ import annotations

import typer

from repairctl.commands import admin, datasets, failures, models, repairs
from repairctl.corrupt import corrupt_command
from repairctl.run import run_command

app = typer.Typer(no_args_is_help=True, help="Model-repair service command-line tool.")
app.add_typer(datasets.app, name="datasets")
app.add_typer(models.app, name="models")
app.add_typer(failures.app, name="failures")
app.add_typer(repairs.app, name="repairs")
app.add_typer(admin.app, name="admin")
app.command("corrupt")(corrupt_command)
app.command("run")(run_command)


@app.command()
def version() -> None:
    """Print the version of the installed service."""
    import repair_core

    typer.echo(repair_core.__version__)
