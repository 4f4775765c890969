"""End to end over HTTP with real processes, for every deployed-model family: a torchvision
ResNet-18, a timm MobileNetV3, a DARTS network and an ONNX graph each go upload -> smoke
repair -> download (safetensors and ONNX, the ONNX run in onnxruntime); and a non-square
(12 x 8) dataset goes through the whole repair.

The deployed models have random weights: a smoke repair only needs failures they get
wrong, and building them costs milliseconds where training would cost minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort
import pytest
import torch
from safetensors.torch import save_file

from repair_core.checkpoint import load_model, save_model
from repair_core.datasets.ingest.npz import write_npz_images, write_npz_splits
from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.models import InputSpec
from repair_core.models.registry_nets import build_registry_net
from repair_core.search.genotype import DARTS_V2
from repair_core.search.network import EvalNetwork, NetworkConfig
from tests.digits_problem import RepairProblem
from tests.onnx_graphs import tiny_onnx
from tests.worker.jobs import tiny_config
from tests.worker.stack import Stack
from tests.worker.test_e2e import _finished, _watch

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

NORMALIZATION = {"mean": [0.3], "std": [0.4]}


@dataclass(frozen=True)
class Deployed:
    file: Path
    fields: dict[str, object]  # the upload's form fields besides the dataset


def _registry(family: str, name: str) -> Callable[[Path, InputSpec, int], Deployed]:
    def make(folder: Path, spec: InputSpec, classes: int) -> Deployed:
        net = build_registry_net(family, name, spec, classes, seed=0)
        path = folder / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in net.net.state_dict().items()}, path)  # type: ignore[union-attr]
        return Deployed(path, {"family": family, "architecture": name, **NORMALIZATION})

    return make


def _darts(folder: Path, spec: InputSpec, classes: int) -> Deployed:
    config = NetworkConfig(
        init_channels=4, layers=3, num_classes=classes, in_channels=spec.channels,
        image_size=spec.height, image_width=None if spec.width == spec.height else spec.width,
        mean=spec.mean, std=spec.std,
    )  # fmt: skip
    net = EvalNetwork(DARTS_V2, config, generator=torch.Generator().manual_seed(0))
    path = folder / "darts.safetensors"
    save_model(path, net, class_names=[str(i) for i in range(classes)])
    return Deployed(path, {})


def _onnx(folder: Path, spec: InputSpec, classes: int) -> Deployed:
    path = folder / "deployed.onnx"
    path.write_bytes(tiny_onnx(channels=spec.channels, classes=classes).to_bytes())
    return Deployed(path, NORMALIZATION)


KINDS: dict[str, Callable[[Path, InputSpec, int], Deployed]] = {
    "torchvision-resnet18": _registry("torchvision", "resnet18"),
    "timm-mobilenetv3_small_050": _registry("timm", "mobilenetv3_small_050"),
    "darts": _darts,
    "onnx": _onnx,
}


# One search and one retraining epoch: the path through every stage is what is tested.
SHORT = tiny_config(**{"search.epochs": 1, "train.epochs": 1})


@dataclass(frozen=True)
class Owner:
    key: str
    dataset_id: str
    failures: Path  # an .npz of the failures, uploaded for each model
    data: DatasetSplits


def _upload_owner_and_dataset(
    stack: Stack, data: DatasetSplits, failures: ImageDataset, folder: Path
) -> Owner:
    """An owner and its dataset, uploaded through the API as a user would."""
    write_npz_splits(folder / "data.npz", data)
    write_npz_images(folder / "gaussian_noise.npz", failures.images, failures.labels)
    _, key = stack.new_owner()
    with stack.client(key) as client:
        dataset = client.upload_dataset(folder / "data.npz")
    return Owner(key, dataset["id"], folder / "gaussian_noise.npz", data)


@pytest.fixture(scope="module")
def digits_owner(
    shared_stack: Stack, digits_problem: RepairProblem, tmp_path_factory: pytest.TempPathFactory
) -> Owner:
    return _upload_owner_and_dataset(
        shared_stack, digits_problem.data, digits_problem.failures,
        tmp_path_factory.mktemp("digits"),
    )  # fmt: skip


def _repair_and_download(
    stack, owner: Owner, kind: str, tmp_path: Path
) -> tuple[dict[str, object], Path]:  # type: ignore[no-untyped-def]
    """Upload the model and its failures; a smoke repair; the repaired model's file."""
    c, h, w = owner.data.train.image_shape
    spec = InputSpec(c, h, w, **NORMALIZATION) if kind != "darts" else InputSpec(c, h, w)
    deployed = KINDS[kind](tmp_path, spec, len(owner.data.class_names))
    stack.start_worker("a")
    with stack.client(owner.key) as client:
        model = client.upload_model(deployed.file, dataset_id=owner.dataset_id, **deployed.fields)
        client.upload_failures(model["id"], owner.failures)
        created = client.create_repair(model["id"], config=SHORT)
        final = _watch(client, created["id"], until=_finished, timeout=300)[-1]
        assert final["status"] == "succeeded", final
        path = tmp_path / "repaired.safetensors"
        assert client.download_model(created["id"], path) == final["result_sha256"]
        if "onnx" in final["model_formats"]:
            client.download_model(created["id"], path.with_suffix(".onnx"), model_format="onnx")
    return model, path


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_deployed_model_family_goes_upload_repair_download(
    stack, digits_owner: Owner, kind: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = digits_owner.data
    model, path = _repair_and_download(stack, digits_owner, kind, tmp_path)
    family = kind.split("-")[0]
    assert model["family"] == family and model["num_parameters"] > 0
    assert (model["num_flops"] is None) == (family == "onnx")
    repaired = load_model(path)
    images = data.test.images[:8].float() / 255
    assert repaired.model(images).shape == (8, len(data.class_names))
    # The repaired network takes the deployed model's input (normalisation included).
    expected = (0.3,) if family != "darts" else repaired.config.mean
    assert repaired.config.mean == expected and repaired.config.in_channels == 1
    # The ONNX export computes the same logits in onnxruntime alone (fp32, within 1e-4).
    session = ort.InferenceSession(
        str(path.with_suffix(".onnx")), providers=["CPUExecutionProvider"]
    )
    (logits,) = session.run(["logits"], {"pixels": images.numpy()})
    with torch.no_grad():
        expected_logits = repaired.model(images)
    assert float((torch.from_numpy(logits) - expected_logits).abs().max()) <= 1e-4


def _pad_to(images: torch.Tensor, height: int) -> torch.Tensor:
    extra = height - images.shape[2]
    return torch.nn.functional.pad(images, (0, 0, extra // 2, extra - extra // 2))


def test_a_non_square_dataset_goes_end_to_end(
    stack, digits_problem: RepairProblem, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    d = digits_problem.data
    data = DatasetSplits(
        train=ImageDataset(_pad_to(d.train.images, 12), d.train.labels, d.class_names),
        test=ImageDataset(_pad_to(d.test.images, 12), d.test.labels, d.class_names),
    )
    f = digits_problem.failures
    failures = ImageDataset(_pad_to(f.images, 12), f.labels, f.class_names)
    owner = _upload_owner_and_dataset(stack, data, failures, tmp_path)
    model, path = _repair_and_download(stack, owner, "darts", tmp_path)
    assert model["input_spec"]["height"] == 12 and model["input_spec"]["width"] == 8
    repaired = load_model(path)
    assert (repaired.config.image_size, repaired.config.width) == (12, 8)
    assert repaired.model(data.test.images[:4].float() / 255).shape == (4, 10)
