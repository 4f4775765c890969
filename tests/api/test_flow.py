"""The whole flow over real HTTP: create owner -> upload dataset -> model -> failure
batch -> create repair -> it is queued (database and broker) -> list and get it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from api.settings import get_settings
from repairctl.main import app as repairctl
from tests.api import payloads
from tests.api.conftest import LiveServer

pytestmark = pytest.mark.integration


def test_an_owner_goes_from_uploads_to_a_queued_repair(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("REPAIR_DATABASE__URL", live_server.settings.database.url)
    get_settings.cache_clear()
    try:
        created = runner.invoke(repairctl, ["admin", "create-owner", f"flow-{tmp_path.name}"])
    finally:
        get_settings.cache_clear()
    assert created.exit_code == 0, created.output
    env = {"REPAIR_URL": live_server.url, "REPAIR_API_KEY": created.stdout.strip()}

    def run(*args: str) -> dict[str, object]:
        result = runner.invoke(repairctl, list(args), env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    (tmp_path / "data.tar.gz").write_bytes(
        payloads.tar_bytes(payloads.imagefolder_files(), gz=True)
    )
    (tmp_path / "model.safetensors").write_bytes(payloads.checkpoint(tmp_path))
    (tmp_path / "fog.zip").write_bytes(payloads.failure_zip({"a.png": 0, "b.png": "emu"}))

    dataset = run("datasets", "upload", str(tmp_path / "data.tar.gz"))
    model = run("models", "upload", str(tmp_path / "model.safetensors"),
                "--dataset", str(dataset["id"]))  # fmt: skip
    batch = run("failures", "upload", str(model["id"]), str(tmp_path / "fog.zip"))
    assert batch["accepted"] == 2
    job = run("repairs", "create", str(model["id"]), "--budget", "2", "--profile", "smoke")
    assert job["status"] == "queued" and job["failure_batch_ids"] == [batch["id"]]

    listed = run("repairs", "list")
    assert [j["id"] for j in listed["data"]] == [job["id"]]  # type: ignore[index]
    assert run("repairs", "status", str(job["id"]))["status"] == "queued"

    broker = redis.Redis.from_url(live_server.settings.broker.url)
    try:
        messages = [json.loads(m) for m in broker.lrange(live_server.settings.broker.queue, 0, -1)]
    finally:
        broker.close()
    assert any(str(job["id"]) in m["headers"]["argsrepr"] for m in messages)
