"""The project's scaffolding: settings, compose file, CI entry point (the import rules are
in tests/test_layout.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from api.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_settings_default_to_the_embedded_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("REPAIR_"):
            monkeypatch.delenv(key)
    settings = Settings()
    assert settings.database.url.startswith("sqlite:///var/")
    assert settings.broker.url == "filesystem://"
    assert settings.artifacts.root == Path("var/artifacts")
    assert settings.device == "auto"


def test_settings_read_nested_env_vars_with_the_repair_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REPAIR_DATABASE__URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("REPAIR_BROKER__URL", "redis://h:6379/0")
    monkeypatch.setenv("REPAIR_UPLOADS__CHECKPOINT_BYTES", "1234")
    monkeypatch.setenv("REPAIR_DEVICE", "cpu")
    settings = Settings()
    assert settings.database.url == "postgresql+psycopg://u@h/db"
    assert settings.broker.url == "redis://h:6379/0"
    assert settings.uploads.checkpoint_bytes == 1234
    assert settings.device == "cpu"


def _settings_env_names(model: type = Settings, prefix: str = "REPAIR_") -> set[str]:
    """Every variable a setting reads, nested groups to the leaves (`REPAIR_A__B__C`)."""
    names = set()
    for field, info in model.model_fields.items():  # type: ignore[attr-defined]
        sub = info.annotation
        name = f"{prefix}{field}".upper()
        if isinstance(sub, type) and hasattr(sub, "model_fields"):
            names |= _settings_env_names(sub, f"{name}__")
        else:
            names.add(name)
    return names


def test_compose_file_declares_every_service_with_env_vars_the_settings_read() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"api", "worker", "postgres", "redis", "migrate"} <= set(services)
    known = _settings_env_names()
    for name in ("api", "worker", "migrate"):
        env = services[name]["environment"]
        ours = {key for key in env if key.startswith("REPAIR_")}
        assert ours <= known, f"{name} sets env vars no setting reads: {ours - known}"
        for required in ("REPAIR_DATABASE__URL", "REPAIR_BROKER__URL", "REPAIR_ARTIFACTS__ROOT"):
            assert required in env, f"{name} lacks {required}"
        assert env["REPAIR_DATABASE__URL"].startswith("postgresql")
        assert env["REPAIR_BROKER__URL"].startswith("redis://")
    # A deploy's SIGTERM must hand the running job back, not wait hours for it (billiard).
    assert services["worker"]["environment"]["REMAP_SIGTERM"] == "SIGQUIT"
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    for name in ("api", "postgres", "redis", "worker"):
        assert "healthcheck" in services[name]


def test_ci_entry_point_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "\nmake test\n" in ci
    assert (ROOT / ".ci" / "run").stat().st_mode & 0o111


@pytest.mark.integration
def test_postgres_fixture_gives_an_empty_fresh_database(postgres_url: str) -> None:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(postgres_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_compose_runs_several_api_processes_with_python_m_api() -> None:
    api = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["api"]
    assert api["command"] == ["python", "-m", "api"]
    assert int(api["environment"]["REPAIR_API__WORKERS"]) >= 2


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(name for name in _settings_env_names() if f"`{name}`" not in readme)
    assert not missing, f"settings missing from the README table: {missing}"


def test_compose_takes_every_secret_from_the_environment_and_never_a_default() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    services = yaml.safe_load(text)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )
    assert "--requirepass" in services["redis"]["command"]
    for name in ("api", "worker", "migrate"):
        env = services[name]["environment"]
        assert ":${POSTGRES_PASSWORD:?" in env["REPAIR_DATABASE__URL"]
        assert env["REPAIR_BROKER__URL"].startswith("redis://:${REDIS_PASSWORD:?")
        assert env["REPAIR_AUTH_PEPPER"].startswith("${REPAIR_AUTH_PEPPER:?")
    example = (ROOT / ".env.example").read_text()
    for var in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "REPAIR_AUTH_PEPPER", "MINIO_ROOT_USER"):
        assert f"\n{var}=" in example
    minio = services["minio"]["environment"]
    assert minio["MINIO_ROOT_PASSWORD"].startswith("${MINIO_ROOT_PASSWORD:?")
    for name in ("api", "worker", "migrate"):
        env = services[name]["environment"]
        assert env["REPAIR_ARTIFACTS__S3__SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]


def test_compose_keeps_artifacts_in_the_object_store_and_shares_no_volume_between_machines() -> (
    None
):
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "healthcheck" in services["minio"]
    for name in ("api", "worker"):
        env = services[name]["environment"]
        assert env["REPAIR_ARTIFACTS__BACKEND"] == "s3"
        assert env["REPAIR_ARTIFACTS__S3__ENDPOINT_URL"] == "http://minio:9000"
        assert services[name]["depends_on"]["minio"]["condition"] == "service_healthy"
    api_volumes = {v.split(":")[0] for v in services["api"]["volumes"]}
    worker_volumes = {v.split(":")[0] for v in services["worker"]["volumes"]}
    assert not api_volumes & worker_volumes


def test_settings_passed_to_a_child_as_env_vars_rebuild_the_same_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api.settings import SandboxSettings, to_env

    for key in list(__import__("os").environ):
        if key.startswith("REPAIR_"):
            monkeypatch.delenv(key)
    given = Settings(sandbox=SandboxSettings(cpu_seconds=7), auth_pepper="p")
    assert given.sandbox.python is None and given.limits.redis_url is None
    for key, value in to_env(given).items():
        monkeypatch.setenv(key, value)
    assert Settings() == given
