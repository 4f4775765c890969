"""`/v1/models/{id}/failure-batches`: accepted counts, each rejected file with its reason,
and labels that do not fit the model's dataset refused."""

from __future__ import annotations

import uuid

import pytest

from tests.api import payloads
from tests.api.conftest import LiveServer, make_owner
from tests.api.helpers import assert_unchanged, problem, snapshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def owner_with_model(
    live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[uuid.UUID, str, str]:
    """One owner, dataset and model for the module: each upload costs a sandboxed child."""
    tmp_path = tmp_path_factory.mktemp("failures")
    owner_id, key = make_owner(live_server)
    with live_server.client(key) as client:
        dataset = client.post(
            "/v1/datasets",
            files={"file": ("d.zip", payloads.zip_bytes(payloads.imagefolder_files()))},
        ).json()
        model = client.post(
            "/v1/models",
            files={"file": ("m.safetensors", payloads.checkpoint(tmp_path))},
            data={"dataset_id": dataset["id"]},
        )
    assert model.status_code == 201, model.text
    return owner_id, key, model.json()["id"]


def test_a_batch_reports_accepted_images_and_each_rejected_file_with_its_reason(
    live_server: LiveServer, owner_with_model: tuple[uuid.UUID, str, str]
) -> None:
    owner_id, key, model_id = owner_with_model
    before = snapshot(live_server, owner_id)
    # Four labelled files, one of which is not an image.
    files = {
        "a.png": payloads.png(1),
        "b.png": payloads.png(2),
        "c.png": payloads.png(3),
        "junk.png": b"definitely not a png",
        "labels.csv": b"file,label\na.png,0\nb.png,dog\nc.png,2\njunk.png,1\n",
    }
    data = payloads.zip_bytes(files)
    with live_server.client(key) as client:
        response = client.post(
            f"/v1/models/{model_id}/failure-batches", files={"file": ("fog.zip", data)}
        )
        assert response.status_code == 201, response.text
        batch = response.json()
        listed = client.get(f"/v1/models/{model_id}/failure-batches").json()
        shown = client.get(f"/v1/models/{model_id}/failure-batches/{batch['id']}").json()
    assert batch["accepted"] == 3
    assert [r["file"] for r in batch["rejected"]] == ["junk.png"]
    assert batch["rejected"][0]["reason"]
    assert batch in listed["data"] and shown == batch
    after = snapshot(live_server, owner_id)
    assert after.rows["failure_batches"] == before.rows["failure_batches"] + 1
    assert len(after.files) == len(before.files) + 1


def test_labels_out_of_range_answer_422_listing_the_rows(
    live_server: LiveServer, owner_with_model: tuple[uuid.UUID, str, str]
) -> None:
    owner_id, key, model_id = owner_with_model
    before = snapshot(live_server, owner_id)
    data = payloads.failure_zip({"a.png": 0, "b.png": 3, "c.png": -1, "d.png": "yak"})
    with live_server.client(key) as client:
        response = client.post(
            f"/v1/models/{model_id}/failure-batches", files={"file": ("bad.zip", data)}
        )
    assert response.status_code == 422
    detail = str(problem(response)["detail"])
    assert "b.png" in detail and "c.png" in detail and "d.png" in detail
    assert_unchanged(live_server, owner_id, before)


def test_an_npz_batch_is_accepted(
    live_server: LiveServer, owner_with_model: tuple[uuid.UUID, str, str]
) -> None:
    import io

    import numpy as np

    _owner_id, key, model_id = owner_with_model
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((4, 3, 8, 8), np.uint8), y=np.array([0, 1, 2, 0], np.int64))
    with live_server.client(key) as client:
        response = client.post(
            f"/v1/models/{model_id}/failure-batches", files={"file": ("b.npz", buf.getvalue())}
        )
    assert response.status_code == 201, response.text
    assert response.json()["accepted"] == 4 and response.json()["rejected"] == []
