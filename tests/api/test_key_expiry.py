"""Expired API keys (reliability.md case 32): a key is refused with 401 from its
`expires_at` on, set when it is created (`repairctl admin create-owner --expires-in-days`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from api.services.owners import create_owner
from tests.api.conftest import LiveServer
from tests.api.helpers import problem

pytestmark = pytest.mark.integration


def _owner_key(live_server: LiveServer, expires_at: datetime) -> str:
    with live_server.session_factory() as session:
        return create_owner(
            session,
            name=f"o-{uuid.uuid4().hex[:10]}",
            pepper=live_server.settings.auth_pepper,
            expires_at=expires_at,
        ).api_key


def test_a_key_is_accepted_before_its_expiry_and_refused_with_401_after(
    live_server: LiveServer,
) -> None:
    valid = _owner_key(live_server, datetime.now(UTC) + timedelta(hours=1))
    expired = _owner_key(live_server, datetime.now(UTC) - timedelta(seconds=1))
    with live_server.client(valid) as client:
        assert client.get("/v1/datasets").status_code == 200
    with live_server.client(expired) as client:
        response = client.get("/v1/datasets")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = problem(response)
    assert body["code"] == "unauthorized"
    assert str(body["detail"]).startswith("API key expired at ")


def test_the_cli_sets_the_expiry_of_the_first_key(live_server: LiveServer) -> None:
    import sqlalchemy as sa

    from api.db.models import ApiKey
    from repairctl.commands.admin import new_owner

    created = new_owner(live_server.settings, f"o-{uuid.uuid4().hex[:10]}", expires_in_days=2)
    with live_server.session_factory() as session:
        expires_at = session.scalars(
            sa.select(ApiKey.expires_at).where(ApiKey.owner_id == created.owner_id)
        ).one()
    assert expires_at is not None
    assert timedelta(days=1.9) < expires_at - datetime.now(UTC) <= timedelta(days=2)
