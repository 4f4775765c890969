"""Secrets and defaults (issue 15): the default auth pepper serves only the embedded
default; anywhere else the service refuses to start and says which setting to set."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from api.app import create_app
from api.settings import (
    DEFAULT_AUTH_PEPPER,
    ArtifactSettings,
    BrokerSettings,
    DatabaseSettings,
    InsecureSettingsError,
    Settings,
)

ROOT = Path(__file__).resolve().parents[2]


def _production(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(
        database=DatabaseSettings(url="postgresql+psycopg://repair:pw@127.0.0.1:5432/repair"),
        broker=BrokerSettings(url="redis://127.0.0.1:6379/0"),
        artifacts=ArtifactSettings(root=tmp_path / "artifacts"),
        **overrides,  # type: ignore[arg-type]
    )


def test_the_default_pepper_is_refused_outside_the_embedded_default(tmp_path: Path) -> None:
    with pytest.raises(InsecureSettingsError, match="set REPAIR_AUTH_PEPPER"):
        create_app(_production(tmp_path, auth_pepper=DEFAULT_AUTH_PEPPER))
    # SQLite with a real broker is not the embedded default either.
    mixed = _production(tmp_path, auth_pepper=DEFAULT_AUTH_PEPPER).model_copy(
        update={"database": DatabaseSettings(url=f"sqlite:///{tmp_path}/r.db")}
    )
    with pytest.raises(InsecureSettingsError):
        create_app(mixed)


def test_the_embedded_default_and_a_real_pepper_both_start(tmp_path: Path) -> None:
    embedded = Settings(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path}/r.db"),
        broker=BrokerSettings(url="filesystem://", folder=tmp_path / "broker"),
        artifacts=ArtifactSettings(root=tmp_path / "artifacts"),
        auth_pepper=DEFAULT_AUTH_PEPPER,
    )
    assert create_app(embedded).state.settings.auth_pepper == DEFAULT_AUTH_PEPPER
    assert create_app(_production(tmp_path, auth_pepper="a-real-secret")).state.settings


@pytest.mark.integration
def test_python_m_api_exits_at_once_with_the_setting_to_set(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REPAIR_")},
        "PYTHONPATH": str(ROOT),
        "REPAIR_DATABASE__URL": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        "REPAIR_BROKER__URL": "redis://127.0.0.1:6379/0",
        "REPAIR_ARTIFACTS__ROOT": str(tmp_path / "artifacts"),
        "REPAIR_API__PORT": str(port),
        "REPAIR_AUTH_PEPPER": DEFAULT_AUTH_PEPPER,
    }
    done = subprocess.run(
        [sys.executable, "-m", "api"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "refusing to start" in done.stderr and "REPAIR_AUTH_PEPPER" in done.stderr
