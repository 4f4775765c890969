"""Label on demand end to end over HTTP with real processes (uvicorn, Celery workers,
Postgres, Redis): unlabeled failures -> awaiting_labels with the K-center picks ->
labels -> succeeded; partly labelled batches; bad label files; cancel and timeout while
waiting; a restart of the API and the worker while waiting.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from api.db.models import RepairJob
from api.settings import Settings
from repair_core.datasets.ingest.npz import write_npz_splits
from repair_core.datasets.ops import seeded_subset
from repair_core.datasets.types import UNLABELED
from repair_core.pipeline import build_plan
from repair_core.selection import extract_features, select_core_set
from repairctl.client import ApiError, RepairClient
from repairctl.main import app
from tests.digits_problem import RepairProblem
from tests.worker.jobs import TINY, wait_for
from tests.worker.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

BUDGET = 10
OVERRIDES = {**TINY, "evaluation.severities": "5", "train.epochs": 1}


def _config(**kwargs: Any) -> dict[str, Any]:
    return {"profile": "smoke", "budget": BUDGET, "overrides": OVERRIDES, **kwargs}


@dataclass(frozen=True)
class Uploads:
    key: str
    model_id: str
    unlabeled: str  # batch id: the model's failures, no labels at all
    partly: str  # batch id: the same failures, every other one labelled
    failures: torch.Tensor  # images of both batches, uint8 NCHW
    labels: torch.Tensor  # their true labels


@pytest.fixture(scope="module")
def uploads(
    shared_stack: Stack, digits_problem: RepairProblem, tmp_path_factory: pytest.TempPathFactory
) -> Uploads:
    """The digits dataset and model, and the images the model gets wrong (so a truthful
    label never shows a pick to be no failure) as two batches: unlabeled, partly labelled."""
    files = tmp_path_factory.mktemp("label-uploads")
    write_npz_splits(files / "digits.npz", digits_problem.data)
    model = digits_problem.deployed().model.eval()
    with torch.no_grad():
        guesses = model(digits_problem.failures.images.float() / 255).argmax(1)
    wrong = (guesses != digits_problem.failures.labels).nonzero().squeeze(1)
    images, labels = digits_problem.failures.images[wrong], digits_problem.failures.labels[wrong]
    nhwc = images.permute(0, 2, 3, 1).numpy()
    np.savez(files / "gaussian_noise.npz", x=nhwc)
    partial = labels.numpy().copy()
    partial[1::2] = UNLABELED
    np.savez(files / "partly.npz", x=nhwc, y=partial)
    _, key = shared_stack.new_owner()
    with shared_stack.client(key) as client:
        dataset = client.upload_dataset(files / "digits.npz")
        uploaded = client.upload_model(digits_problem.checkpoint, dataset_id=dataset["id"])
        unlabeled = client.upload_failures(uploaded["id"], files / "gaussian_noise.npz")
        partly = client.upload_failures(uploaded["id"], files / "partly.npz", name="gaussian_noise")
    assert unlabeled["unlabeled"] == len(images) and partly["unlabeled"] == len(images[1::2])
    return Uploads(key, uploaded["id"], unlabeled["id"], partly["id"], images, labels)


def _until(client: RepairClient, job_id: str, statuses: set[str], timeout: float = 180) -> dict:  # type: ignore[type-arg]
    seen: list[dict[str, Any]] = []

    def poll() -> bool:
        seen.append(client.get_repair(job_id))
        return seen[-1]["status"] in statuses | {"succeeded", "failed", "cancelled"}

    wait_for(poll, timeout=timeout, what=lambda: f"job {job_id} to be {statuses}: {seen[-1:]}")
    return seen[-1]


def _waiting_job(stack: Stack, client: RepairClient, uploads: Uploads, batch: str) -> dict:  # type: ignore[type-arg]
    created = client.create_repair(uploads.model_id, failure_batch_ids=[batch], config=_config())
    job = _until(client, created["id"], {"awaiting_labels"})
    assert job["status"] == "awaiting_labels", job
    return job


def _csv(rows: list[tuple[object, object]]) -> bytes:
    return ("id,label\n" + "".join(f"{i},{label}\n" for i, label in rows)).encode()


def _true_labels(uploads: Uploads, picks: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(p["id"], int(uploads.labels[p["id"]])) for p in picks]


def _row(stack: Stack, job_id: str) -> RepairJob:
    with stack.sessions() as session:
        return session.get_one(RepairJob, uuid.UUID(job_id))


def test_unlabeled_failures_wait_for_labels_of_the_k_center_picks_and_then_succeed_after_a_restart(
    base_settings: Settings,
    uploads: Uploads,
    digits_problem: RepairProblem,
    tmp_path: Path,
) -> None:
    with running_stack(base_settings, tmp_path) as stack, stack.client(uploads.key) as client:
        stack.start_worker("a")
        job = _waiting_job(stack, client, uploads, uploads.unlabeled)
        assert job["picks_to_label"] == BUDGET and job["label_rounds"] == 0
        assert job["failures_on_trust"] == len(uploads.failures) and job["failures_confirmed"] == 0
        row = _row(stack, job["id"])
        assert row.lease_token is None and row.lease_expires_at is None  # no worker holds it
        picks = client.get_picks(job["id"])
        assert picks["round"] == 1 and len(picks["picks"]) == BUDGET

        # The same K-center on the same features, computed here with repair_core.
        plan = build_plan("smoke", OVERRIDES, search="darts-1st", seed=0)
        model = digits_problem.deployed().model.eval()
        train = seeded_subset(digits_problem.data.train, plan.data.train_max_images, 0)
        expected = select_core_set(
            "kcenter", extract_features(model, uploads.failures),
            extract_features(model, train.images), BUDGET, seed=0,
        ).indices  # fmt: skip
        assert [p["id"] for p in picks["picks"]] == expected.tolist()
        with torch.no_grad():
            guesses = model(uploads.failures[expected].float() / 255).softmax(1)
        assert [p["predicted"] for p in picks["picks"]] == guesses.argmax(1).tolist()
        assert [p["confidence"] for p in picks["picks"]] == pytest.approx(
            guesses.max(1).values.tolist(), abs=1e-4
        )

        archive_path = tmp_path / "picks.zip"
        client.download_picks(job["id"], archive_path)
        with zipfile.ZipFile(archive_path) as archive:
            names_in_order = archive.namelist()
            names = sorted(names_in_order)
            assert names == sorted([p["file"] for p in picks["picks"]] + ["picks.json"])
            first = picks["picks"][0]
            pixels = np.array(Image.open(io.BytesIO(archive.read(first["file"]))))
            assert torch.equal(torch.from_numpy(pixels), uploads.failures[first["id"], 0])
            assert json.loads(archive.read("picks.json"))["picks"] == picks["picks"]
        template = client.picks_template(job["id"]).splitlines()
        assert template[0].startswith("id,file,label") and len(template) == BUDGET + 1

    # The API and the worker go away and come back (a deploy) while the job waits.
    with running_stack(base_settings, tmp_path) as stack, stack.client(uploads.key) as client:
        assert client.get_repair(job["id"])["status"] == "awaiting_labels"
        stack.start_worker("b")
        # The owner's way: the CLI downloads the picks and a template, fills it, uploads it.
        cli, env = CliRunner(), {"REPAIR_URL": stack.url, "REPAIR_API_KEY": uploads.key}
        template = tmp_path / "labels.csv"
        got = cli.invoke(
            app, ["repairs", "labels", job["id"], "-o", str(tmp_path / "dl.zip"),
                  "--template", str(template)], env=env,
        )  # fmt: skip
        assert got.exit_code == 0, got.output
        assert json.loads(got.stdout)["picks"] == picks["picks"]
        assert zipfile.ZipFile(tmp_path / "dl.zip").namelist() == names_in_order
        with template.open(newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            row["label"] = str(int(uploads.labels[int(row["id"])]))
        with template.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        sent = cli.invoke(app, ["repairs", "label", job["id"], str(template)], env=env)
        assert sent.exit_code == 0, sent.output
        queued = json.loads(sent.stdout)
        assert queued["status"] == "queued" and queued["label_rounds"] == 1
        final = _until(client, job["id"], set())
        assert final["status"] == "succeeded", final
        report = client.get_report(job["id"])
        variant = report["info"]["variants"]["CF-DARTS"]
        assert variant["core_set_size"] == BUDGET and variant["picks_given_up"] == 0
        assert variant["failures_on_trust"] == len(uploads.failures)
        # No held-out failure has a label: the report says the failure column is missing.
        assert report["info"]["failure_column"] == "not available"
        assert any("failure column is not available" in w for w in report["info"]["warnings"])
        assert final["failures_on_trust"] == len(uploads.failures)


def test_a_partly_labelled_batch_asks_only_for_unlabeled_picks_and_replaces_skipped_ones(
    stack: Stack, uploads: Uploads, tmp_path: Path
) -> None:
    with stack.client(uploads.key) as client:
        stack.start_worker("a")
        job = _waiting_job(stack, client, uploads, uploads.partly)
        labelled = len(uploads.failures) - len(uploads.failures[1::2])
        assert job["failures_confirmed"] == labelled
        assert job["failures_on_trust"] == len(uploads.failures[1::2])
        asked = client.get_picks(job["id"])["picks"]
        assert 2 <= len(asked) < BUDGET and all(p["id"] % 2 == 1 for p in asked)
        skipped = {asked[0]["id"]}
        answered = [(i, label) for i, label in _true_labels(uploads, asked) if i not in skipped]
        (tmp_path / "some.json").write_text(
            json.dumps([{"id": i, "label": v} for i, v in answered])
        )
        client.submit_labels(job["id"], tmp_path / "some.json")
        job = _until(client, job["id"], {"awaiting_labels"})
        if job["status"] == "awaiting_labels":  # replacements without a label: asked again
            again = client.get_picks(job["id"])
            assert again["round"] == 2 and len(again["picks"]) == 1
            assert not {p["id"] for p in again["picks"]} & {p["id"] for p in asked}
            (tmp_path / "more.csv").write_bytes(_csv(_true_labels(uploads, again["picks"])))
            client.submit_labels(job["id"], tmp_path / "more.csv")
            job = _until(client, job["id"], set())
        assert job["status"] == "succeeded", job
        variant = client.get_report(job["id"])["info"]["variants"]["CF-DARTS"]
        assert variant["core_set_size"] == BUDGET and variant["picks_given_up"] == 1
        assert variant["label_rounds"] == job["label_rounds"]


def test_bad_label_files_are_each_a_4xx_naming_the_rows_and_change_nothing(
    stack: Stack, uploads: Uploads, tmp_path: Path
) -> None:
    with stack.client(uploads.key) as client:
        stack.start_worker("a")
        job = _waiting_job(stack, client, uploads, uploads.unlabeled)
        ids = [p["id"] for p in client.get_picks(job["id"])["picks"]]
        not_picked = next(i for i in range(len(uploads.failures)) if i not in ids)
        before = _row(stack, job["id"])
        a, b = ids[0], ids[1]
        csv, json_ = "text/csv", "application/json"
        cases: list[tuple[bytes, str, int, str]] = [
            (_csv([(a, 1), (not_picked, 2)]), csv, 422, f"row 3 ({not_picked}): unknown id"),
            (_csv([(a, 1), (b, 10)]), csv, 422, f"row 3 ({b}): label 10 outside [0, 10)"),
            (_csv([(a, 1), (a, 2)]), csv, 422, f"row 3 ({a}): second label"),
            (_csv([(a, "zebra")]), csv, 422, "row 2"),
            (b"file,label\nx,1\n", csv, 422, "'id' and 'label' columns"),
            (b'{"a": 1', json_, 422, "not valid JSON"),
            (json.dumps([{"id": a}]).encode(), json_, 422, "entry 0"),
            (b"id,label\n", csv, 422, "no labels"),
            (b"id,label\n1,1\n", "text/plain", 415, "text/csv or application/json"),
        ]
        url = f"{stack.url}/v1/repairs/{job['id']}/labels"
        headers = {"Authorization": f"Bearer {uploads.key}"}
        for body, media_type, status, says in cases:
            response = httpx.post(
                url, content=body, headers={**headers, "Content-Type": media_type}, timeout=30
            )
            assert response.status_code == status, (body, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert says in response.json()["detail"], (says, response.json())
        after = _row(stack, job["id"])
        assert (after.status, after.version, after.labels, after.picks) == (
            before.status, before.version, before.labels, before.picks,
        )  # fmt: skip


def test_a_waiting_job_is_cancelled_at_once_and_then_offers_no_picks(
    stack: Stack, uploads: Uploads, tmp_path: Path
) -> None:
    with stack.client(uploads.key) as client:
        stack.start_worker("a")
        job = _waiting_job(stack, client, uploads, uploads.unlabeled)
        cancelled = client.cancel_repair(job["id"])
        assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
        assert client.cancel_repair(job["id"])["status"] == "cancelled"  # idempotent
        with pytest.raises(ApiError) as refused:
            client.get_picks(job["id"])
        assert refused.value.status == 409
        (tmp_path / "labels.csv").write_bytes(_csv([(0, 1)]))
        with pytest.raises(ApiError) as late:
            client.submit_labels(job["id"], tmp_path / "labels.csv")
        assert late.value.status == 409
        assert _row(stack, job["id"]).labels == {}


def test_a_job_waiting_longer_than_labels_wait_seconds_is_cancelled_saying_why(
    base_settings: Settings, uploads: Uploads, tmp_path: Path
) -> None:
    worker = base_settings.worker.model_copy(update={"labels_wait_seconds": 2.0})
    impatient = base_settings.model_copy(update={"worker": worker})
    with running_stack(impatient, tmp_path) as stack, stack.client(uploads.key) as client:
        stack.start_worker("a")
        created = client.create_repair(
            uploads.model_id, failure_batch_ids=[uploads.unlabeled], config=_config()
        )
        final = _until(client, created["id"], set())
        assert final["status"] == "cancelled", final
        assert final["error_type"] == "LabelsTimeout"
        assert "no labels came" in final["error"] and "labels_wait_seconds" in final["error"]
        assert _row(stack, created["id"]).labels_requested_at is not None
