"""`/v1/models`: checkpoints are loaded safely, run once on the dataset's image shape,
checked against its class count and stored as safetensors; hostile ones are refused."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.api import payloads
from tests.api.conftest import LiveServer, make_owner
from tests.api.helpers import assert_unchanged, problem, snapshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def owner_with_dataset(live_server: LiveServer) -> tuple[uuid.UUID, str, str]:
    """One owner and dataset for the module: each upload costs a sandboxed child."""
    owner_id, key = make_owner(live_server)
    with live_server.client(key) as client:
        response = client.post(
            "/v1/datasets",
            files={"file": ("d.zip", payloads.zip_bytes(payloads.imagefolder_files()))},
        )
    assert response.status_code == 201, response.text
    return owner_id, key, response.json()["id"]


def refused_upload(
    live_server: LiveServer,
    owner_with_dataset: tuple[uuid.UUID, str, str],
    file: tuple[str, bytes],
    **fields: str,
) -> dict[str, object]:
    """POST a checkpoint that must answer 422 and leave nothing behind; its problem."""
    owner_id, key, dataset_id = owner_with_dataset
    before = snapshot(live_server, owner_id)
    with live_server.client(key) as client:
        response = client.post(
            "/v1/models", files={"file": file}, data={"dataset_id": dataset_id, **fields}
        )
    assert response.status_code == 422
    body = problem(response)
    assert_unchanged(live_server, owner_id, before)
    return body


def test_a_safetensors_checkpoint_is_validated_and_stored(
    live_server: LiveServer, owner_with_dataset: tuple[uuid.UUID, str, str], tmp_path: Path
) -> None:
    owner_id, key, dataset_id = owner_with_dataset
    before = snapshot(live_server, owner_id)
    with live_server.client(key) as client:
        response = client.post(
            "/v1/models",
            files={"file": ("model.safetensors", payloads.checkpoint(tmp_path))},
            data={"dataset_id": dataset_id, "name": "deployed"},
        )
        assert response.status_code == 201, response.text
        model = response.json()
        assert client.get(f"/v1/models/{model['id']}").json() == model
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [model["id"]]
    assert model["dataset_id"] == dataset_id and model["num_classes"] == 3
    assert model["num_parameters"] > 0 and model["genotype"] is not None
    assert model["source_format"] == "safetensors"
    after = snapshot(live_server, owner_id)
    assert after.rows["models"] == before.rows["models"] + 1
    assert len(after.files) == len(before.files) + 1


def test_a_pt_state_dict_with_its_genotype_is_accepted_and_resaved_as_safetensors(
    live_server: LiveServer, owner_with_dataset: tuple[uuid.UUID, str, str], tmp_path: Path
) -> None:
    from safetensors import safe_open

    owner_id, key, dataset_id = owner_with_dataset
    data, genotype, config = payloads.state_dict_pt(tmp_path)
    before = snapshot(live_server, owner_id)
    with live_server.client(key) as client:
        response = client.post(
            "/v1/models",
            files={"file": ("model.pt", data)},
            data={"dataset_id": dataset_id, "genotype": genotype, "network_config": config},
        )
    assert response.status_code == 201, response.text
    assert response.json()["source_format"] == "pt"
    new = set(snapshot(live_server, owner_id).files) - set(before.files)
    assert len(new) == 1 and new.pop().endswith(".safetensors")
    stored = [
        p
        for p in (live_server.artifacts_root / str(owner_id)).iterdir()
        if p.name not in before.files
    ]
    with safe_open(str(stored[0]), framework="pt") as f:
        assert f.metadata()["format"] == "repair-core-checkpoint"


def test_a_malicious_pickle_is_refused_without_running_it(
    live_server: LiveServer, owner_with_dataset: tuple[uuid.UUID, str, str], tmp_path: Path
) -> None:
    owner_id, key, dataset_id = owner_with_dataset
    before = snapshot(live_server, owner_id)
    marker = tmp_path / "pwned"
    _data, genotype, config = payloads.state_dict_pt(tmp_path)
    with live_server.client(key) as client:
        response = client.post(
            "/v1/models",
            files={"file": ("model.pt", payloads.malicious_pickle(marker))},
            data={"dataset_id": dataset_id, "genotype": genotype, "network_config": config},
        )
        alive = client.get("/healthz")
    assert response.status_code == 422
    body = problem(response)
    assert body["code"] == "checkpoint_unsafe"
    assert "state_dict or safetensors" in str(body["detail"])
    assert not marker.exists()
    assert alive.status_code == 200
    assert_unchanged(live_server, owner_id, before)


def test_a_checkpoint_whose_class_count_differs_from_the_dataset_is_refused(
    live_server: LiveServer, owner_with_dataset: tuple[uuid.UUID, str, str], tmp_path: Path
) -> None:
    body = refused_upload(
        live_server,
        owner_with_dataset,
        ("m.safetensors", payloads.checkpoint(tmp_path, num_classes=5)),
    )
    detail = str(body["detail"])
    assert "5 classes" in detail and "3" in detail


def test_a_pt_without_a_genotype_is_refused_before_loading(
    live_server: LiveServer, owner_with_dataset: tuple[uuid.UUID, str, str], tmp_path: Path
) -> None:
    data, _genotype, _config = payloads.state_dict_pt(tmp_path)
    body = refused_upload(live_server, owner_with_dataset, ("m.pt", data))
    assert "genotype" in str(body["detail"])


def test_a_truncated_safetensors_file_is_refused(
    live_server: LiveServer, owner_with_dataset: tuple[uuid.UUID, str, str], tmp_path: Path
) -> None:
    data = payloads.checkpoint(tmp_path)
    refused_upload(live_server, owner_with_dataset, ("m.safetensors", data[: len(data) // 2]))


def test_a_missing_or_malformed_dataset_id_answers_422(
    live_server: LiveServer, owner_with_dataset: tuple[uuid.UUID, str, str], tmp_path: Path
) -> None:
    owner_id, key, _dataset_id = owner_with_dataset
    before = snapshot(live_server, owner_id)
    data = payloads.checkpoint(tmp_path)
    with live_server.client(key) as client:
        missing = client.post("/v1/models", files={"file": ("m.safetensors", data)})
        malformed = client.post(
            "/v1/models", files={"file": ("m.safetensors", data)}, data={"dataset_id": "x"}
        )
    assert missing.status_code == 422 and "dataset_id" in str(problem(missing)["detail"])
    assert malformed.status_code == 422 and "UUID" in str(problem(malformed)["detail"])
    assert_unchanged(live_server, owner_id, before)
