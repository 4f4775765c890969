"""The API process routes requests without torch: heavy parsing happens in the sandbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_building_the_app_and_serving_requests_does_not_import_torch(tmp_path: Path) -> None:
    code = f"""
import sys
from fastapi.testclient import TestClient
from api.app import create_app
from api.settings import Settings, DatabaseSettings, BrokerSettings, ArtifactSettings
settings = Settings(
    database=DatabaseSettings(url="sqlite:///{tmp_path}/r.db"),
    broker=BrokerSettings(url="filesystem://", folder="{tmp_path}/broker"),
    artifacts=ArtifactSettings(root="{tmp_path}/artifacts"),
)
with TestClient(create_app(settings)) as client:
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/v1/datasets").status_code == 401
heavy = [m for m in ("torch", "torchvision", "numpy", "PIL", "safetensors") if m in sys.modules]
print(",".join(heavy))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
