"""`repairctl` client commands over real HTTP against a live server."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from api.db.models import Genotype, JobStatus, RepairJob
from api.settings import get_settings
from repairctl.main import app
from tests.api.conftest import LiveServer
from tests.api.helpers import succeeded_with_files
from tests.api.seed import Seeded, seed_model

pytestmark = pytest.mark.integration

NewOwner = Callable[[], tuple[uuid.UUID, str]]


@pytest.fixture
def cli(live_server: LiveServer, new_owner: NewOwner) -> tuple[CliRunner, dict[str, str], Seeded]:
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        seeded = seed_model(session, owner_id, batches=2)
    env = {"REPAIR_URL": live_server.url, "REPAIR_API_KEY": key}
    return CliRunner(), env, seeded


def _set_job(live_server: LiveServer, job_id: str, **values: object) -> None:
    with live_server.session_factory() as session:
        session.execute(
            sa.update(RepairJob).where(RepairJob.id == uuid.UUID(job_id)).values(**values)
        )
        session.commit()


def test_admin_create_owner_prints_a_working_key_once(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPAIR_DATABASE__URL", live_server.settings.database.url)
    get_settings.cache_clear()
    try:
        name = f"cli-{uuid.uuid4().hex[:8]}"
        result = CliRunner().invoke(app, ["admin", "create-owner", name])
        again = CliRunner().invoke(app, ["admin", "create-owner", name])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("rk_") and "shown once" in result.stderr
    assert again.exit_code == 1 and "exists already" in again.stderr
    with live_server.client(key) as client:
        assert client.get("/v1/datasets").status_code == 200


def test_repairs_create_status_list_and_cancel(
    live_server: LiveServer, cli: tuple[CliRunner, dict[str, str], Seeded]
) -> None:
    runner, env, seeded = cli
    created = runner.invoke(
        app,
        [
            "repairs",
            "create",
            str(seeded.model_id),
            "--budget",
            "10",
            "--profile",
            "smoke",
            "--set",
            "search.epochs=2",
            "--batch",
            str(seeded.batch_ids[0]),
            "--idempotency-key",
            "cli-1",
        ],
        env=env,
    )
    assert created.exit_code == 0, created.output
    job = json.loads(created.stdout)
    assert job["status"] == "queued" and job["config"]["budget"] == 10
    assert job["config"]["overrides"] == {"search.epochs": 2}
    assert job["failure_batch_ids"] == [str(seeded.batch_ids[0])]

    status = runner.invoke(app, ["repairs", "status", job["id"]], env=env)
    assert json.loads(status.stdout)["id"] == job["id"]
    listed = runner.invoke(app, ["repairs", "list", "--status", "queued"], env=env)
    assert [j["id"] for j in json.loads(listed.stdout)["data"]] == [job["id"]]
    cancelled = runner.invoke(app, ["repairs", "cancel", job["id"]], env=env)
    assert json.loads(cancelled.stdout)["status"] == "cancelled"


def test_watch_follows_a_job_to_its_end_and_exits_by_outcome(
    live_server: LiveServer, cli: tuple[CliRunner, dict[str, str], Seeded]
) -> None:
    runner, env, seeded = cli
    job_id = json.loads(
        runner.invoke(app, ["repairs", "create", str(seeded.model_id)], env=env).stdout
    )["id"]
    _set_job(live_server, job_id, status=JobStatus.succeeded, progress=100.0)
    ok = runner.invoke(app, ["repairs", "watch", job_id, "--interval", "0.01"], env=env)
    other = json.loads(
        runner.invoke(app, ["repairs", "create", str(seeded.model_id)], env=env).stdout
    )["id"]
    runner.invoke(app, ["repairs", "cancel", other], env=env)
    bad = runner.invoke(app, ["repairs", "watch", other, "--interval", "0.01"], env=env)
    assert ok.exit_code == 0 and json.loads(ok.stdout)["status"] == "succeeded"
    assert bad.exit_code == 1 and json.loads(bad.stdout)["status"] == "cancelled"


def test_download_checks_the_digest_and_report_saves_the_figure(
    live_server: LiveServer, cli: tuple[CliRunner, dict[str, str], Seeded], tmp_path: object
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    runner, env, seeded = cli
    job_id = json.loads(
        runner.invoke(app, ["repairs", "create", str(seeded.model_id)], env=env).stdout
    )["id"]
    payload = b"weights" * 1000
    files = {"m.safetensors": payload, "r.json": b'{"ok": true}', "r.png": b"\x89PNG\r\n\x1a\n"}
    succeeded_with_files(
        live_server, job_id, files,
        result_model_key="m.safetensors", result_model_sha256=hashlib.sha256(payload).hexdigest(),
        report_key="r.json", report_png_key="r.png",
    )  # fmt: skip
    folder = live_server.artifacts_root / f"results-{job_id}"
    out = tmp_path / "repaired.safetensors"
    downloaded = runner.invoke(app, ["repairs", "download", job_id, "-o", str(out)], env=env)
    assert downloaded.exit_code == 0, downloaded.output
    assert out.read_bytes() == payload
    assert hashlib.sha256(payload).hexdigest() in downloaded.stdout

    report = runner.invoke(
        app, ["repairs", "report", job_id, "--json", "--png", str(tmp_path / "r.png")], env=env
    )
    assert json.loads(report.stdout) == {"ok": True}
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")

    # A corrupted artifact no longer matches its digest: nothing is written.
    (folder / "m.safetensors").write_bytes(b"tampered")
    broken = tmp_path / "broken.safetensors"
    failed = runner.invoke(app, ["repairs", "download", job_id, "-o", str(broken)], env=env)
    assert failed.exit_code == 1 and "digest_mismatch" in failed.stderr
    assert not broken.exists() and not (tmp_path / "broken.safetensors.part").exists()


def test_download_format_onnx_fetches_the_export_and_an_unknown_format_is_a_usage_error(
    live_server: LiveServer, cli: tuple[CliRunner, dict[str, str], Seeded], tmp_path: Path
) -> None:
    runner, env, seeded = cli
    job_id = json.loads(
        runner.invoke(app, ["repairs", "create", str(seeded.model_id)], env=env).stdout
    )["id"]
    graph = b"onnx" * 1000
    succeeded_with_files(
        live_server, job_id, {"m.safetensors": b"weights", "m.onnx": graph},
        result_model_key="m.safetensors", result_onnx_key="m.onnx",
        result_onnx_sha256=hashlib.sha256(graph).hexdigest(),
    )  # fmt: skip
    out = tmp_path / "repaired.onnx"
    onnx = runner.invoke(
        app, ["repairs", "download", job_id, "--format", "onnx", "-o", str(out)], env=env
    )
    assert onnx.exit_code == 0, onnx.output
    assert out.read_bytes() == graph
    none = runner.invoke(
        app, ["repairs", "download", job_id, "--format", "torchscript", "-o", str(out)], env=env
    )
    assert none.exit_code == 1 and "HTTP 404" in none.stderr
    bad = runner.invoke(app, ["repairs", "download", job_id, "--format", "pickle"], env=env)
    assert bad.exit_code == 2 and "safetensors, onnx, torchscript" in bad.stderr


def test_repairs_create_with_variants_and_download_of_a_variant(
    live_server: LiveServer, cli: tuple[CliRunner, dict[str, str], Seeded], tmp_path: Path
) -> None:
    runner, env, seeded = cli
    created = runner.invoke(
        app, ["repairs", "create", str(seeded.model_id), "--variants", "CF-DARTSE, AugMix"],
        env=env,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    job = json.loads(created.stdout)
    assert job["variants"] == ["CF-DARTSE", "AugMix"]
    weights = b"augmix" * 1000
    with live_server.session_factory() as session:
        owner_id = session.get_one(RepairJob, uuid.UUID(job["id"])).owner_id
    folder = live_server.artifacts_root / str(owner_id) / "jobs" / job["id"] / "variants"
    folder.mkdir(parents=True)
    (folder / "AugMix.safetensors").write_bytes(weights)
    succeeded_with_files(
        live_server, job["id"], {"m.safetensors": b"weights"}, result_model_key="m.safetensors",
        variant_models={"AugMix": hashlib.sha256(weights).hexdigest()},
    )  # fmt: skip
    out = tmp_path / "augmix.safetensors"
    downloaded = runner.invoke(
        app, ["repairs", "download", job["id"], "--variant", "AugMix", "-o", str(out)], env=env
    )
    assert downloaded.exit_code == 0, downloaded.output
    assert out.read_bytes() == weights
    bad = runner.invoke(
        app, ["repairs", "create", str(seeded.model_id), "--variants", "CF-DARTS,Nope"], env=env
    )
    assert bad.exit_code == 1 and "variants[1]" in bad.stderr


def test_errors_are_one_line_with_the_problem_code(
    live_server: LiveServer, cli: tuple[CliRunner, dict[str, str], Seeded]
) -> None:
    runner, env, _seeded = cli
    missing = runner.invoke(app, ["repairs", "status", str(uuid.uuid4())], env=env)
    assert missing.exit_code == 1 and "HTTP 404 not_found" in missing.stderr
    no_key = runner.invoke(
        app, ["datasets", "list"], env={"REPAIR_URL": live_server.url, "REPAIR_API_KEY": ""}
    )
    assert no_key.exit_code == 1 and "no API key" in no_key.stderr
    unreachable = runner.invoke(app, ["datasets", "list", "--url", "http://127.0.0.1:1"], env=env)
    assert unreachable.exit_code == 1 and "cannot reach the service" in unreachable.stderr


def test_admin_migrate_creates_the_embedded_database_and_its_folder(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    url = f"sqlite:///{tmp_path / 'var' / 'repair.db'}"
    monkeypatch.setenv("REPAIR_DATABASE__URL", url)
    get_settings.cache_clear()
    try:
        migrated = CliRunner().invoke(app, ["admin", "migrate"])
        created = CliRunner().invoke(app, ["admin", "create-owner", "embedded"])
    finally:
        get_settings.cache_clear()
    assert migrated.exit_code == 0, migrated.output
    assert created.exit_code == 0 and created.stdout.startswith("rk_")
    engine = sa.create_engine(url)
    try:
        assert "repair_jobs" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_delete_commands_refuse_while_a_job_runs_then_remove_each_kind(
    live_server: LiveServer, cli: tuple[CliRunner, dict[str, str], Seeded]
) -> None:
    runner, env, seeded = cli
    created = runner.invoke(app, ["repairs", "create", str(seeded.model_id)], env=env)
    job_id = json.loads(created.stdout)["id"]
    _set_job(live_server, job_id, status=JobStatus.running)
    refused = runner.invoke(app, ["models", "delete", str(seeded.model_id)], env=env)
    assert refused.exit_code != 0 and "HTTP 409 in_use" in refused.output
    assert job_id in refused.output.replace("\n", "")
    _set_job(live_server, job_id, status=JobStatus.failed)

    def delete(*args: str) -> dict[str, str]:
        result = runner.invoke(app, [*args], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    assert delete("repairs", "delete", job_id) == {"deleted": job_id}
    batch = str(seeded.batch_ids[0])
    assert delete("failures", "delete", str(seeded.model_id), batch) == {"deleted": batch}
    assert delete("models", "delete", str(seeded.model_id))["deleted"] == str(seeded.model_id)
    assert delete("datasets", "delete", str(seeded.dataset_id))["deleted"] == str(seeded.dataset_id)
    gone = runner.invoke(app, ["datasets", "show", str(seeded.dataset_id)], env=env)
    assert gone.exit_code != 0 and "HTTP 404" in gone.output


def test_report_prints_the_table_and_downloads_the_figures_saying_where(
    live_server: LiveServer, cli: tuple[CliRunner, dict[str, str], Seeded], tmp_path: object
) -> None:
    from pathlib import Path

    from api.storage import ArtifactStore
    from tests.repair_core.evaluation.samples import sample_report

    assert isinstance(tmp_path, Path)
    runner, env, seeded = cli
    job_id = json.loads(
        runner.invoke(app, ["repairs", "create", str(seeded.model_id)], env=env).stdout
    )["id"]
    store = ArtifactStore(live_server.artifacts_root)
    with live_server.session_factory() as session:
        owner_id = session.get_one(RepairJob, uuid.UUID(job_id)).owner_id
    store.write_bytes(f"{owner_id}/report-{job_id}.json", sample_report().to_json().encode())
    names = ["robustness-heatmap.png", "cell-repaired-normal.svg"]
    for name in names:
        store.write_bytes(store.figure_key(owner_id, uuid.UUID(job_id), name), name.encode())
    _set_job(
        live_server, job_id, status=JobStatus.succeeded, finished_at=datetime.now(UTC),
        report_key=f"{owner_id}/report-{job_id}.json", figures=names,
    )  # fmt: skip
    folder = tmp_path / "figs"
    shown = runner.invoke(app, ["repairs", "report", job_id, "--figures", str(folder)], env=env)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == sample_report().to_markdown(severity=5)
    assert f"2 figures saved to {folder}/" in shown.stderr
    assert [(folder / n).read_bytes() for n in names] == [n.encode() for n in names]


def test_repairs_transfer_queues_a_transfer_and_a_409_is_one_line(
    live_server: LiveServer, cli: tuple[CliRunner, dict[str, str], Seeded]
) -> None:
    runner, env, seeded = cli
    created = runner.invoke(
        app, ["repairs", "create", str(seeded.model_id), "--profile", "smoke"], env=env
    )
    source = json.loads(created.stdout)["id"]
    args = ["repairs", "transfer", source, "--dataset", str(seeded.dataset_id)]
    refused = runner.invoke(app, args, env=env)
    assert refused.exit_code == 1 and "source_not_succeeded" in refused.stderr
    _set_job(live_server, source, status=JobStatus.succeeded)
    with live_server.session_factory() as session:
        owner_id = session.get_one(RepairJob, uuid.UUID(source)).owner_id
        session.add(
            Genotype(
                owner_id=owner_id, job_id=uuid.UUID(source), iteration=1, genotype={"normal": []}
            )
        )
        session.commit()
    queued = runner.invoke(app, [*args, "--set", "train.epochs=2"], env=env)
    assert queued.exit_code == 0, queued.output
    job = json.loads(queued.stdout)
    assert job["kind"] == "transfer" and job["source_job_id"] == source
    assert job["dataset_id"] == str(seeded.dataset_id)
    assert job["config"]["overrides"] == {"train.epochs": 2}
    assert job["config"]["genotype"] == {"normal": []}
