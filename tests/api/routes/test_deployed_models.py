"""`/v1/models` with timm / torchvision architectures by name and ONNX graphs: built in
the sandbox, loaded strictly, probed, counted; wrong or hostile ones answer 422 naming
the problem, with nothing stored."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.api import payloads
from tests.api.conftest import LiveServer
from tests.api.helpers import snapshot
from tests.api.routes.test_models import owner_with_dataset, refused_upload
from tests.onnx_graphs import tiny_onnx, with_custom_op, with_external_data

pytestmark = pytest.mark.integration
__all__ = ["owner_with_dataset"]  # the fixture, shared with test_models

Owner = tuple[uuid.UUID, str, str]


def _upload(live_server: LiveServer, owner: Owner, file: tuple[str, bytes], **fields: str):  # type: ignore[no-untyped-def]
    _, key, dataset_id = owner
    with live_server.client(key) as client:
        return client.post(
            "/v1/models", files={"file": file}, data={"dataset_id": dataset_id, **fields}
        )


@pytest.mark.parametrize(("family", "name"), [("timm", "mobilenetv3_small_050")])
def test_a_registry_architecture_state_dict_is_built_loaded_and_counted(
    live_server: LiveServer, owner_with_dataset: Owner, family: str, name: str
) -> None:
    owner_id = owner_with_dataset[0]
    before = snapshot(live_server, owner_id)
    response = _upload(
        live_server, owner_with_dataset,
        ("w.safetensors", payloads.registry_state_dict(family, name)),
        family=family, architecture=name, mean="[0.5, 0.5, 0.5]", std="[0.25]",
        input_size="[8, 8, 3]",
    )  # fmt: skip
    assert response.status_code == 201, response.text
    model = response.json()
    assert (model["family"], model["architecture"], model["num_classes"]) == (family, name, 3)
    assert model["num_parameters"] > 100_000 and model["num_flops"] > 0
    assert model["input_spec"] == {
        "channels": 3, "height": 8, "width": 8, "mean": [0.5, 0.5, 0.5], "std": [0.25],
    }  # fmt: skip
    assert snapshot(live_server, owner_id).rows["models"] == before.rows["models"] + 1


def test_an_onnx_graph_is_accepted_with_its_parameter_count(
    live_server: LiveServer, owner_with_dataset: Owner
) -> None:
    tiny = tiny_onnx(channels=3, classes=3)
    response = _upload(live_server, owner_with_dataset, ("m.onnx", tiny.to_bytes()))
    assert response.status_code == 201, response.text
    model = response.json()
    assert (model["family"], model["source_format"], model["num_flops"]) == ("onnx", "onnx", None)
    assert model["num_parameters"] == sum(
        a.size for a in (tiny.conv_w, tiny.conv_b, tiny.fc_w, tiny.fc_b)
    )


def test_an_unknown_architecture_is_refused_with_close_names(
    live_server: LiveServer, owner_with_dataset: Owner
) -> None:
    body = refused_upload(
        live_server, owner_with_dataset,
        ("w.safetensors", payloads.registry_state_dict("torchvision", "mobilenet_v3_small")),
        family="torchvision", architecture="mobilenet_v3_smal",
    )  # fmt: skip
    assert "'mobilenet_v3_smal' is not in the torchvision registry" in str(body["detail"])
    assert "mobilenet_v3_small" in str(body["detail"])


def test_a_state_dict_of_another_architecture_names_its_mismatched_keys(
    live_server: LiveServer, owner_with_dataset: Owner
) -> None:
    body = refused_upload(
        live_server, owner_with_dataset,
        ("w.safetensors", payloads.registry_state_dict("timm", "mobilenetv3_small_050")),
        family="torchvision", architecture="mobilenet_v3_small",
    )  # fmt: skip
    detail = str(body["detail"])
    assert "weights do not match the declared architecture" in detail
    assert "missing " in detail and "'features.0.0.weight'" in detail  # torchvision's names
    assert "unexpected " in detail and "'blocks.0.0." in detail  # timm's names


def test_a_state_dict_with_another_class_count_is_refused_naming_both_counts(
    live_server: LiveServer, owner_with_dataset: Owner
) -> None:
    body = refused_upload(
        live_server, owner_with_dataset,
        ("w.safetensors", payloads.registry_state_dict("timm", "mobilenetv3_small_050", 10)),
        family="timm", architecture="mobilenetv3_small_050",
    )  # fmt: skip
    assert "has 10 outputs but the dataset has 3 classes" in str(body["detail"])


def test_a_pickle_that_runs_code_inside_a_pt_is_refused_unrun(
    live_server: LiveServer, owner_with_dataset: Owner, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    body = refused_upload(
        live_server, owner_with_dataset, ("w.pt", payloads.malicious_pickle(marker)),
        family="torchvision", architecture="resnet18",
    )  # fmt: skip
    assert body["code"] == "checkpoint_unsafe" and "tries to run code" in str(body["detail"])
    assert not marker.exists()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (with_custom_op, "custom-op domains ['com.example.evil']"),
        (with_external_data, "external data (location '../../etc/passwd')"),
    ],
)
def test_an_onnx_graph_with_custom_ops_or_external_data_is_refused(
    live_server: LiveServer, owner_with_dataset: Owner, make: object, words: str
) -> None:
    data = make(tiny_onnx(channels=3, classes=3))  # type: ignore[operator]
    body = refused_upload(live_server, owner_with_dataset, ("m.onnx", data))
    assert words in str(body["detail"])


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"family": "timm"}, "needs the form field `architecture`"),
        ({"family": "onnx", "architecture": "x"}, "does not fit a .safetensors file"),
        ({"family": "timm", "architecture": "resnet18", "input_size": "[8, 6, 3]"},
         "differs from the dataset's images [8, 8, 3]"),
        ({"family": "timm", "architecture": "resnet18", "std": "[0]"}, "`std` must be positive"),
    ],
)  # fmt: skip
def test_wrong_model_form_fields_are_refused_before_any_validation(
    live_server: LiveServer, owner_with_dataset: Owner, fields: dict[str, str], words: str
) -> None:
    body = refused_upload(
        live_server, owner_with_dataset, ("w.safetensors", payloads.checkpoint_stub()), **fields
    )
    assert words in str(body["detail"])
