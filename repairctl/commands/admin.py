"""`repairctl admin create-owner|migrate`: talk to the database directly (operators only)."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Operator commands (use the database directly).")


@app.command("create-owner")
def create_owner(name: Annotated[str, typer.Argument(help="Unique owner name.")]) -> None:
    """Create an owner and print its API key. The key is shown only this once."""
    from api.db.session import make_engine, make_session_factory
    from api.errors import ServiceError
    from api.services.owners import create_owner as create
    from api.settings import get_settings

    settings = get_settings()
    engine = make_engine(settings.database.url)
    try:
        with make_session_factory(engine)() as session:
            created = create(session, name=name, pepper=settings.auth_pepper)
    except ServiceError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    typer.echo(f"owner {created.name} ({created.owner_id})", err=True)
    typer.echo("API key (shown once; store it now):", err=True)
    typer.echo(created.api_key)


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest revision."""
    from api.db.migrate import upgrade
    from api.settings import get_settings

    upgrade(get_settings().database.url)
    typer.echo("database at head", err=True)
