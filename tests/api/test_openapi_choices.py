"""The API's enums are repair_core's choice lists, with the same defaults: the repair
config's fields and the download's model format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ArtifactSettings, BrokerSettings, DatabaseSettings, Settings
from repair_core.choices import CHOICES, DEFAULT_MODEL_FORMAT, MODEL_FORMAT_CHOICES


@pytest.fixture
def schema(tmp_path: Path) -> dict[str, Any]:
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path}/r.db"),
        broker=BrokerSettings(url="filesystem://", folder=f"{tmp_path}/broker"),
        artifacts=ArtifactSettings(root=f"{tmp_path}/artifacts"),
    )
    openapi: dict[str, Any] = TestClient(create_app(settings)).get("/openapi.json").json()
    return openapi


def test_openapi_enums_of_the_repair_config_equal_the_core_choice_lists(
    schema: dict[str, Any],
) -> None:
    properties = schema["components"]["schemas"]["RepairConfig"]["properties"]
    assert set(CHOICES) <= set(properties)
    for field, (choices, default) in CHOICES.items():
        assert properties[field] == {
            "type": "string",
            "enum": list(choices),
            "default": default,
            "title": field.replace("_", " ").title(),
        }


def test_openapi_enum_of_the_model_download_format_is_the_core_format_list(
    schema: dict[str, Any],
) -> None:
    download = schema["paths"]["/v1/repairs/{job_id}/model"]["get"]["parameters"]
    (model_format,) = [p["schema"] for p in download if p["name"] == "format"]
    assert model_format["enum"] == list(MODEL_FORMAT_CHOICES)
    assert model_format["default"] == DEFAULT_MODEL_FORMAT
