"""`repairctl admin create-owner|revoke-key|migrate`: talk to the database directly
(operators only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from api.services.owners import CreatedOwner
    from api.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Operator commands (use the database directly).")


def new_owner(settings: Settings, name: str, expires_in_days: float | None = None) -> CreatedOwner:
    """Create an owner (and its first API key, valid `expires_in_days` if given) in the
    database `settings` name."""
    from datetime import UTC, datetime, timedelta

    from api.db.session import make_engine, make_session_factory
    from api.services.owners import create_owner

    expires_at = (
        None if expires_in_days is None else datetime.now(UTC) + timedelta(days=expires_in_days)
    )
    engine = make_engine(settings.database.url)
    try:
        with make_session_factory(engine)() as session:
            return create_owner(
                session, name=name, pepper=settings.auth_pepper, expires_at=expires_at
            )
    finally:
        engine.dispose()


@app.command("create-owner")
def create_owner(
    name: Annotated[str, typer.Argument(help="Unique owner name.")],
    expires_in_days: Annotated[
        float | None,
        typer.Option(min=0, help="The key is refused (401) this many days from now."),
    ] = None,
) -> None:
    """Create an owner and print its API key. The key is shown only this once."""
    from api.errors import ServiceError
    from api.settings import get_settings

    try:
        created = new_owner(get_settings(), name, expires_in_days)
    except ServiceError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"owner {created.name} ({created.owner_id})", err=True)
    typer.echo("API key (shown once; store it now):", err=True)
    typer.echo(created.api_key)


@app.command("revoke-key")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id: the 8 characters after `rk_`.")],
) -> None:
    """Revoke an API key. Running API processes refuse it within `auth.cache_seconds`."""
    from api.db.session import make_engine, make_session_factory
    from api.services.owners import revoke_key as revoke
    from api.settings import get_settings

    settings = get_settings()
    engine = make_engine(settings.database.url)
    try:
        with make_session_factory(engine)() as session:
            found = revoke(session, key_id=key_id)
            session.commit()
    finally:
        engine.dispose()
    if not found:
        typer.echo(f"error: no active key with id {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"key {key_id} revoked", err=True)


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest revision."""
    from api.db.migrate import upgrade
    from api.settings import get_settings

    upgrade(get_settings().database.url)
    typer.echo("database at head", err=True)
