"""`/v1/repairs` over real HTTP, against Postgres and the real Celery client on Redis."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import sqlalchemy as sa

from api.db.models import Genotype, JobStatus, Metric, RepairJob
from tests.api.conftest import LiveServer
from tests.api.helpers import succeeded_with_files
from tests.api.seed import Seeded, seed_model

pytestmark = pytest.mark.integration

NewOwner = Callable[[], tuple[uuid.UUID, str]]


@pytest.fixture
def owner_with_model(live_server: LiveServer, new_owner: NewOwner) -> tuple[str, Seeded]:
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        seeded = seed_model(session, owner_id, batches=2)
    return key, seeded


def _queued_job_ids(live_server: LiveServer) -> list[str]:
    client = redis.Redis.from_url(live_server.settings.broker.url)
    try:
        raw = client.lrange(live_server.settings.broker.queue, 0, -1)
    finally:
        client.close()
    ids = []
    for item in raw:
        message = json.loads(item)
        assert message["headers"]["task"] == "repair.run_job"
        ids.append(message["headers"]["argsrepr"].strip("[]'\""))
    return ids


def _set_job(live_server: LiveServer, job_id: str, **values: object) -> None:
    with live_server.session_factory() as session:
        session.execute(
            sa.update(RepairJob).where(RepairJob.id == uuid.UUID(job_id)).values(**values)
        )
        session.commit()


def test_creating_a_repair_queues_it_in_the_database_and_on_the_broker(
    live_server: LiveServer, owner_with_model: tuple[str, Seeded]
) -> None:
    key, seeded = owner_with_model
    with live_server.client(key) as client:
        response = client.post("/v1/repairs", json={"model_id": str(seeded.model_id)})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued" and job["progress"] == 0 and job["attempts"] == 0
    assert (job["handoffs"], job["oom_retries"]) == (0, 0)
    assert sorted(job["failure_batch_ids"]) == sorted(str(b) for b in seeded.batch_ids)
    assert job["config"]["selection"] == "kcenter" and job["config"]["budget"] == 1000
    assert response.headers["location"] == f"/v1/repairs/{job['id']}"
    assert job["id"] in _queued_job_ids(live_server)


def test_a_repair_can_name_a_subset_of_failure_batches_and_a_config(
    live_server: LiveServer, owner_with_model: tuple[str, Seeded]
) -> None:
    key, seeded = owner_with_model
    body = {
        "model_id": str(seeded.model_id),
        "failure_batch_ids": [str(seeded.batch_ids[1])],
        "config": {"budget": 10, "profile": "smoke", "overrides": {"search.epochs": 1}},
    }
    with live_server.client(key) as client:
        job = client.post("/v1/repairs", json=body).json()
    assert job["failure_batch_ids"] == [str(seeded.batch_ids[1])]
    assert job["config"]["budget"] == 10 and job["config"]["overrides"] == {"search.epochs": 1}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"budget": 0}, "budget"),
        ({"iterations": 4}, "iterations"),
        ({"search": "dartspt", "iterations": 2}, "iterations"),
        ({"selection": "best"}, "selection"),
        ({"surprise": True}, "surprise"),
        ({"overrides": {"../x": 1}}, "overrides"),
    ],
)
def test_an_invalid_config_answers_422_naming_the_field(
    live_server: LiveServer,
    owner_with_model: tuple[str, Seeded],
    config: dict[str, object],
    field: str,
) -> None:
    key, seeded = owner_with_model
    with live_server.client(key) as client:
        response = client.post(
            "/v1/repairs", json={"model_id": str(seeded.model_id), "config": config}
        )
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert field in problem["detail"]
    assert any(field in e["loc"] for e in problem["errors"])


@pytest.mark.parametrize(
    ("config", "named"),
    [
        # A misspelt field: the message lists the section's valid keys.
        ({"overrides": {"train.epoch": 3}}, "override 'train.epoch' is not a setting; train has"),
        ({"overrides": {"trian.epochs": 3}}, "with section one of search_net, search, net"),
        ({"overrides": {"train.epochs": "many"}}, "override 'train.epochs'='many' does not fit"),
        (
            {"overrides": {"evaluation.corruptions": "fgo"}},
            "evaluation.corruptions: unknown 'fgo'; choose from gaussian_noise",
        ),
        ({"overrides": {"search.batch_size": 0}}, "SearchSettings.batch_size must be a positive"),
        # Checked against the strategy's preset too: PC-DARTS needs channels divisible by K.
        (
            {"search": "pcdarts", "overrides": {"search_net.init_channels": 6}},
            "must be a multiple of partial_channels 4",
        ),
    ],
)
def test_overrides_that_do_not_fit_the_profile_answer_422_naming_the_key_and_store_nothing(
    live_server: LiveServer,
    owner_with_model: tuple[str, Seeded],
    config: dict[str, object],
    named: str,
) -> None:
    key, seeded = owner_with_model
    with live_server.client(key) as client:
        before = client.get("/v1/repairs").json()["count"]
        response = client.post(
            "/v1/repairs", json={"model_id": str(seeded.model_id), "config": config}
        )
        after = client.get("/v1/repairs").json()["count"]
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error" and named in problem["detail"], problem
    assert "overrides" in problem["detail"]
    assert after == before


def test_overrides_are_checked_under_each_variants_own_search(
    live_server: LiveServer, owner_with_model: tuple[str, Seeded]
) -> None:
    key, seeded = owner_with_model
    body = {
        "model_id": str(seeded.model_id),
        "config": {"profile": "smoke", "overrides": {"search_net.init_channels": 6}},
        "variants": ["CF-DARTS", "CF-PCDARTS"],
    }
    with live_server.client(key) as client:
        response = client.post("/v1/repairs", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "variants[1] (CF-PCDARTS): overrides:" in detail and "partial_channels 4" in detail


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"variants": ["CF-DARTS", "XF-DARTS"]}, "variants[1]: unknown variant 'XF-DARTS'"),
        ({"variants": ["CutMix", "CutMix"]}, "variants[1]: 'CutMix' is listed twice"),
        ({"variants": ["AugMix"], "config": {"iterations": 2}}, "variants[0]: AugMix runs one"),
        ({"variants": []}, "variants"),
    ],
)
def test_a_bad_variant_answers_422_naming_the_entry(
    live_server: LiveServer,
    owner_with_model: tuple[str, Seeded],
    body: dict[str, object],
    named: str,
) -> None:
    key, seeded = owner_with_model
    with live_server.client(key) as client:
        response = client.post("/v1/repairs", json={"model_id": str(seeded.model_id), **body})
        listed = client.get("/v1/repairs").json()
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error" and named in problem["detail"]
    assert listed["count"] == 0


def test_a_job_with_variants_lists_them_and_serves_each_variants_model(
    live_server: LiveServer, owner_with_model: tuple[str, Seeded]
) -> None:
    import hashlib

    key, seeded = owner_with_model
    body = {"model_id": str(seeded.model_id), "variants": ["RF-DARTSE", "CutMix"]}
    with live_server.client(key) as client:
        job = client.post("/v1/repairs", json=body).json()
        before = client.get(f"/v1/repairs/{job['id']}/model", params={"variant": "CutMix"})
    assert job["variants"] == ["RF-DARTSE", "CutMix"] and job["variant_downloads"] == {}
    assert before.status_code == 409
    cutmix = b"cutmix-weights" * 100
    digest = hashlib.sha256(cutmix).hexdigest()
    with live_server.session_factory() as session:
        owner_id = session.get_one(RepairJob, uuid.UUID(job["id"])).owner_id
    stored = live_server.artifacts_root / str(owner_id) / "jobs" / job["id"] / "variants"
    stored.mkdir(parents=True)
    (stored / "CutMix.safetensors").write_bytes(cutmix)
    # CutMix's ONNX export passed its check; its TorchScript export did not (no file, no row).
    onnx = b"cutmix-onnx" * 100
    onnx_digest = hashlib.sha256(onnx).hexdigest()
    (stored / "CutMix.onnx").write_bytes(onnx)
    succeeded_with_files(
        live_server, job["id"], {"m.safetensors": b"primary"},
        result_model_key="m.safetensors", variant_models={"CutMix": digest},
        variant_exports={"CutMix": {"onnx": onnx_digest}},
    )  # fmt: skip
    url = f"/v1/repairs/{job['id']}/model"
    with live_server.client(key) as client:
        shown = client.get(f"/v1/repairs/{job['id']}").json()
        primary = client.get(url, params={"variant": "RF-DARTSE"})
        default = client.get(url)
        other = client.get(url, params={"variant": "CutMix"})
        unknown = client.get(url, params={"variant": "AugMix"})
        exported = client.get(url, params={"variant": "CutMix", "format": "onnx"})
        not_exported = client.get(url, params={"variant": "CutMix", "format": "torchscript"})
        bad_format = client.get(url, params={"variant": "CutMix", "format": "pickle"})
    assert shown["variant_downloads"] == {
        "RF-DARTSE": ["safetensors"], "CutMix": ["safetensors", "onnx"],
    }  # fmt: skip
    assert primary.content == default.content == b"primary"
    assert other.status_code == 200 and other.content == cutmix
    assert other.headers["etag"] == f'"{digest}"'
    assert f"CutMix-{job['id']}.safetensors" in other.headers["content-disposition"]
    assert unknown.status_code == 404
    assert "no variant 'AugMix'; it has: RF-DARTSE, CutMix" in unknown.json()["detail"]
    assert exported.status_code == 200 and exported.content == onnx
    assert exported.headers["etag"] == f'"{onnx_digest}"'
    assert f"CutMix-{job['id']}.onnx" in exported.headers["content-disposition"]
    assert not_exported.status_code == 404
    assert "no torchscript model of the CutMix variant" in not_exported.json()["detail"]
    assert "did not pass its check" in not_exported.json()["detail"]
    assert bad_format.status_code == 422 and "format" in bad_format.text


def test_a_model_without_failure_batches_cannot_be_repaired(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        seeded = seed_model(session, owner_id, batches=0)
    with live_server.client(key) as client:
        response = client.post("/v1/repairs", json={"model_id": str(seeded.model_id)})
    assert response.status_code == 422
    assert response.json()["code"] == "no_failure_batches"


def test_same_idempotency_key_and_body_return_the_same_job_even_concurrently(
    live_server: LiveServer, owner_with_model: tuple[str, Seeded]
) -> None:
    key, seeded = owner_with_model
    body = {"model_id": str(seeded.model_id), "config": {"seed": 7}}
    headers = {"Idempotency-Key": f"k-{uuid.uuid4()}"}

    def post(_: int) -> tuple[int, str]:
        with live_server.client(key) as client:
            r = client.post("/v1/repairs", json=body, headers=headers)
        return r.status_code, r.json()["id"]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(post, range(4)))
    assert len({job_id for _, job_id in results}) == 1
    assert sorted(code for code, _ in results) == [200, 200, 200, 201]
    with live_server.session_factory() as session:
        count = session.scalar(
            sa.select(sa.func.count()).where(
                RepairJob.idempotency_key == headers["Idempotency-Key"]
            )
        )
    assert count == 1


def test_same_idempotency_key_with_another_body_is_a_conflict(
    live_server: LiveServer, owner_with_model: tuple[str, Seeded]
) -> None:
    key, seeded = owner_with_model
    headers = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    with live_server.client(key) as client:
        first = client.post("/v1/repairs", json={"model_id": str(seeded.model_id)}, headers=headers)
        second = client.post(
            "/v1/repairs",
            json={"model_id": str(seeded.model_id), "config": {"budget": 5}},
            headers=headers,
        )
    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["code"] == "idempotency_key_reused"


def test_list_is_paginated_and_filters_by_status_and_model(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        first = seed_model(session, owner_id)
        second = seed_model(session, owner_id)
    with live_server.client(key) as client:
        ids = [
            client.post("/v1/repairs", json={"model_id": str(m)}).json()["id"]
            for m in (first.model_id, first.model_id, second.model_id)
        ]
        client.post(f"/v1/repairs/{ids[0]}/cancel")
        page = client.get("/v1/repairs", params={"limit": 2}).json()
        rest = client.get("/v1/repairs", params={"limit": 2, "offset": 2}).json()
        cancelled = client.get("/v1/repairs", params={"status": "cancelled"}).json()
        of_second = client.get("/v1/repairs", params={"model_id": str(second.model_id)}).json()
    assert page["count"] == 3 and len(page["data"]) == 2 and len(rest["data"]) == 1
    # Newest first.
    assert [j["id"] for j in page["data"] + rest["data"]] == ids[::-1]
    assert [j["id"] for j in cancelled["data"]] == [ids[0]]
    assert [j["id"] for j in of_second["data"]] == [ids[2]]


def test_get_shows_progress_eta_genotype_metrics_and_error(
    live_server: LiveServer, owner_with_model: tuple[str, Seeded]
) -> None:
    key, seeded = owner_with_model
    with live_server.client(key) as client:
        job_id = client.post("/v1/repairs", json={"model_id": str(seeded.model_id)}).json()["id"]
    _set_job(
        live_server,
        job_id,
        status=JobStatus.running,
        stage="searching",
        progress=42.5,
        step=8,
        total=20,
        eta_seconds=120.0,
        attempts=1,
        handoffs=2,
        oom_retries=1,
        metrics={"loss": 0.5},
    )
    with live_server.client(key) as client:
        job = client.get(f"/v1/repairs/{job_id}").json()
    assert job["status"] == "running" and job["stage"] == "searching"
    assert job["progress"] == 42.5 and job["eta_seconds"] == 120.0 and job["attempts"] == 1
    assert (job["handoffs"], job["oom_retries"]) == (2, 1)
    assert job["live_metrics"] == {"loss": 0.5}
    assert job["genotype"] is None and job["metrics"] == {}
    # Genotype and metric rows come with the job's end (worker.results), as here.
    with live_server.session_factory() as session:
        owner_id = session.get(RepairJob, uuid.UUID(job_id)).owner_id  # type: ignore[union-attr]
        for it in (0, 1):
            session.add(
                Genotype(
                    owner_id=owner_id,
                    job_id=uuid.UUID(job_id),
                    iteration=it,
                    genotype={"iteration": it},
                )
            )
        session.add(
            Metric(owner_id=owner_id, job_id=uuid.UUID(job_id), name="repaired.acc", value=0.9)
        )
        session.commit()
    _set_job(live_server, job_id, status=JobStatus.succeeded, progress=100.0)
    with live_server.client(key) as client:
        job = client.get(f"/v1/repairs/{job_id}").json()
    assert job["status"] == "succeeded" and job["progress"] == 100.0
    assert job["genotype"] == {"iteration": 1}
    assert job["metrics"] == {"repaired.acc": 0.9}


def test_cancel_moves_queued_to_cancelled_running_to_cancelling_and_repeats_harmlessly(
    live_server: LiveServer, owner_with_model: tuple[str, Seeded]
) -> None:
    key, seeded = owner_with_model
    with live_server.client(key) as client:
        queued = client.post("/v1/repairs", json={"model_id": str(seeded.model_id)}).json()["id"]
        running = client.post("/v1/repairs", json={"model_id": str(seeded.model_id)}).json()["id"]
        _set_job(live_server, running, status=JobStatus.running)
        first = client.post(f"/v1/repairs/{queued}/cancel")
        again = client.post(f"/v1/repairs/{queued}/cancel")
        stopping = client.post(f"/v1/repairs/{running}/cancel")
        stopping_again = client.post(f"/v1/repairs/{running}/cancel")
    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    assert first.json()["finished_at"] is not None
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert stopping.json()["status"] == "cancelling"
    assert stopping_again.status_code == 200 and stopping_again.json()["status"] == "cancelling"


@pytest.mark.parametrize("final", [JobStatus.succeeded, JobStatus.failed])
def test_cancelling_a_finished_job_is_a_conflict(
    live_server: LiveServer, owner_with_model: tuple[str, Seeded], final: JobStatus
) -> None:
    key, seeded = owner_with_model
    with live_server.client(key) as client:
        job_id = client.post("/v1/repairs", json={"model_id": str(seeded.model_id)}).json()["id"]
        _set_job(live_server, job_id, status=final)
        response = client.post(f"/v1/repairs/{job_id}/cancel")
    assert response.status_code == 409
    assert response.json()["code"] == "job_finished"


@pytest.mark.parametrize("path", ["model", "model?format=onnx", "report", "report.png"])
def test_results_before_completion_are_a_conflict(
    live_server: LiveServer, owner_with_model: tuple[str, Seeded], path: str
) -> None:
    key, seeded = owner_with_model
    with live_server.client(key) as client:
        job_id = client.post("/v1/repairs", json={"model_id": str(seeded.model_id)}).json()["id"]
        response = client.get(f"/v1/repairs/{job_id}/{path}")
    assert response.status_code == 409
    assert response.json()["code"] == "result_not_ready"
    assert "queued" in response.json()["detail"]


def test_results_of_a_succeeded_job_download_with_etag_range_and_digest(
    live_server: LiveServer, owner_with_model: tuple[str, Seeded]
) -> None:
    import hashlib

    key, seeded = owner_with_model
    with live_server.client(key) as client:
        job = client.post("/v1/repairs", json={"model_id": str(seeded.model_id)}).json()
    payload = bytes(range(256)) * 40
    digest = hashlib.sha256(payload).hexdigest()
    files = {
        "model.safetensors": payload,
        "report.json": json.dumps({"clean": {"before": 0.9}}).encode(),
        "report.png": b"\x89PNG\r\n\x1a\nfake",
    }
    succeeded_with_files(
        live_server, job["id"], files,
        result_model_key="model.safetensors", result_model_sha256=digest,
        report_key="report.json", report_png_key="report.png",
    )  # fmt: skip
    with live_server.client(key) as client:
        full = client.get(f"/v1/repairs/{job['id']}/model")
        part = client.get(f"/v1/repairs/{job['id']}/model", headers={"Range": "bytes=10-19"})
        cached = client.get(
            f"/v1/repairs/{job['id']}/model", headers={"If-None-Match": f'"{digest}"'}
        )
        report = client.get(f"/v1/repairs/{job['id']}/report")
        png = client.get(f"/v1/repairs/{job['id']}/report.png")
        shown = client.get(f"/v1/repairs/{job['id']}").json()
    assert full.status_code == 200 and full.content == payload
    assert full.headers["etag"] == f'"{digest}"'
    assert hashlib.sha256(full.content).hexdigest() == full.headers["x-checksum-sha256"]
    assert part.status_code == 206 and part.content == payload[10:20]
    assert cached.status_code == 304
    assert report.json() == {"clean": {"before": 0.9}}
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert shown["result_sha256"] == digest


def test_the_onnx_export_downloads_like_the_checkpoint_and_the_job_shows_sizes_and_checks(
    live_server: LiveServer, owner_with_model: tuple[str, Seeded]
) -> None:
    import hashlib

    key, seeded = owner_with_model
    with live_server.client(key) as client:
        job = client.post("/v1/repairs", json={"model_id": str(seeded.model_id)}).json()
    payload = b"onnx-graph" * 500
    digest = hashlib.sha256(payload).hexdigest()
    succeeded_with_files(
        live_server, job["id"], {"m.safetensors": b"weights", "m.onnx": payload},
        result_model_key="m.safetensors", result_onnx_key="m.onnx", result_onnx_sha256=digest,
    )  # fmt: skip
    metrics = {
        "original.params": 1000.0, "original.flops": 9000.0, "repaired.params": 200.0,
        "repaired.flops": 700.0, "export.onnx.max_abs_diff": 2e-7,
        "repaired.clean_accuracy_dropped": 1.0,
    }  # fmt: skip
    with live_server.session_factory() as session:
        owner_id = session.get_one(RepairJob, uuid.UUID(job["id"])).owner_id
        for name, value in metrics.items():
            session.add(
                Metric(owner_id=owner_id, job_id=uuid.UUID(job["id"]), name=name, value=value)
            )
        session.commit()
    url = f"/v1/repairs/{job['id']}/model"
    with live_server.client(key) as client:
        full = client.get(url, params={"format": "onnx"})
        part = client.get(url, params={"format": "onnx"}, headers={"Range": "bytes=0-3"})
        cached = client.get(
            url, params={"format": "onnx"}, headers={"If-None-Match": f'"{digest}"'}
        )
        missing = client.get(url, params={"format": "torchscript"})
        unknown = client.get(url, params={"format": "pickle"})
        shown = client.get(f"/v1/repairs/{job['id']}").json()
    assert full.status_code == 200 and full.content == payload
    assert full.headers["etag"] == f'"{digest}"'
    assert f"repaired-{job['id']}.onnx" in full.headers["content-disposition"]
    assert part.status_code == 206 and part.content == payload[:4]
    assert cached.status_code == 304
    assert missing.status_code == 404
    assert "torchscript export did not pass its check" in missing.json()["detail"]
    assert unknown.status_code == 422 and "format" in unknown.text
    assert shown["model_formats"] == ["safetensors", "onnx"]
    assert shown["model_size"] == {
        "deployed": {"params": 1000, "flops": 9000},
        "repaired": {"params": 200, "flops": 700},
    }
    assert shown["export_max_abs_diff"] == {"onnx": 2e-7}
    assert shown["clean_accuracy_dropped"] is True


def test_a_body_over_the_json_cap_answers_413(
    live_server: LiveServer, owner_with_model: tuple[str, Seeded]
) -> None:
    key, seeded = owner_with_model
    huge = {"model_id": str(seeded.model_id), "config": {"overrides": {"a": "x" * 200_000}}}
    with live_server.client(key) as client:
        response = client.post("/v1/repairs", json=huge)
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
