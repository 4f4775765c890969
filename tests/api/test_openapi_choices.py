"""The API's repair config enums are repair_core's choice lists, with the same defaults."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ArtifactSettings, BrokerSettings, DatabaseSettings, Settings
from repair_core.choices import CHOICES


def test_openapi_enums_of_the_repair_config_equal_the_core_choice_lists(tmp_path: Path) -> None:
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path}/r.db"),
        broker=BrokerSettings(url="filesystem://", folder=f"{tmp_path}/broker"),
        artifacts=ArtifactSettings(root=f"{tmp_path}/artifacts"),
    )
    schema = TestClient(create_app(settings)).get("/openapi.json").json()
    properties = schema["components"]["schemas"]["RepairConfig"]["properties"]
    assert set(CHOICES) <= set(properties)
    for field, (choices, default) in CHOICES.items():
        assert properties[field] == {
            "type": "string",
            "enum": list(choices),
            "default": default,
            "title": field.replace("_", " ").title(),
        }
