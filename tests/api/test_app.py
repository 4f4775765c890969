"""The app factory: start-up housekeeping and the OpenAPI document."""

from __future__ import annotations

import os
import time
from pathlib import Path

from api.app import create_app
from api.settings import ArtifactSettings, BrokerSettings, DatabaseSettings, Settings
from tests.api.conftest import serve


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'r.db'}"),
        broker=BrokerSettings(url="filesystem://", folder=tmp_path / "broker"),
        artifacts=ArtifactSettings(root=tmp_path / "artifacts"),
    )


def test_start_up_removes_upload_temp_files_older_than_an_hour(tmp_path: Path) -> None:
    tmp = tmp_path / "artifacts" / ".tmp"
    tmp.mkdir(parents=True)
    (tmp / "stale.upload").write_bytes(b"x")
    (tmp / "fresh.upload").write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(tmp / "stale.upload", (two_hours_ago, two_hours_ago))
    with serve(create_app(_settings(tmp_path))):
        assert sorted(p.name for p in tmp.iterdir()) == ["fresh.upload"]


def test_openapi_documents_every_error_as_a_problem_and_every_schema_has_examples(
    tmp_path: Path,
) -> None:
    spec = create_app(_settings(tmp_path)).openapi()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        code,
                    )
    schemas = spec["components"]["schemas"]
    for name in ("Problem", "DatasetPublic", "ModelPublic", "FailureBatchPublic",
                 "RepairConfig", "RepairCreate", "RepairPublic"):  # fmt: skip
        assert schemas[name].get("examples"), name
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
