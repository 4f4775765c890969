"""Every deployed-model family: logits and penultimate features against a reference
computed by hand from the network's own layers; the ONNX graph checks; stats."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from repair_core.errors import RepairInputError
from repair_core.models import InputSpec, load_deployed, model_stats
from repair_core.models.onnx_net import OnnxNet, prepare_onnx
from repair_core.models.registry_nets import build_registry_net, check_architecture
from repair_core.models.store import (
    as_deployed,
    registry_model,
    save_onnx_model,
    save_registry_model,
)
from repair_core.search.genotype import DARTS_V2
from repair_core.search.network import EvalNetwork, NetworkConfig
from tests.onnx_graphs import tiny_onnx, with_custom_op, with_external_data, without_classifier

SPEC = InputSpec(3, 12, 8, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


def _images(spec: InputSpec, n: int = 3) -> torch.Tensor:
    return torch.rand(n, *spec.shape, generator=torch.Generator().manual_seed(0))


def _normalized(x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    return (x - mean) / std


def test_torchvision_resnet_features_are_the_pooled_input_of_fc() -> None:
    net = build_registry_net("torchvision", "resnet18", SPEC, 4, seed=0)
    x = _images(SPEC)
    r = net.net  # type: ignore[union-attr]
    with torch.no_grad():
        h = r.maxpool(r.relu(r.bn1(r.conv1(_normalized(x, SPEC)))))
        h = r.layer4(r.layer3(r.layer2(r.layer1(h))))
        reference = torch.flatten(r.avgpool(h), 1)
        features, logits = net.features(x), net(x)  # type: ignore[operator]
    torch.testing.assert_close(features, reference)
    torch.testing.assert_close(logits, r.fc(reference))


def test_torchvision_mobilenet_features_are_the_input_of_the_last_linear() -> None:
    net = build_registry_net("torchvision", "mobilenet_v3_small", SPEC, 4, seed=0)
    m = net.net  # type: ignore[union-attr]
    x = _images(SPEC)
    with torch.no_grad():
        pooled = torch.flatten(m.avgpool(m.features(_normalized(x, SPEC))), 1)
        reference = m.classifier[:-1](pooled)  # Linear, Hardswish, Dropout (eval: identity)
        torch.testing.assert_close(net.features(x), reference)  # type: ignore[operator]
        torch.testing.assert_close(net(x), m.classifier[-1](reference))


def test_timm_features_are_pre_logits_of_the_head() -> None:
    net = build_registry_net("timm", "mobilenetv3_small_050", SPEC, 4, seed=0)
    m = net.net  # type: ignore[union-attr]
    x = _images(SPEC)
    with torch.no_grad():
        h = m.conv_head(m.global_pool(m.blocks(m.bn1(m.conv_stem(_normalized(x, SPEC))))))
        reference = torch.flatten(m.act2(m.norm_head(h)), 1)
        torch.testing.assert_close(net.features(x), reference)  # type: ignore[operator]
        torch.testing.assert_close(net(x), m.classifier(reference))


def test_darts_features_are_the_classifier_input() -> None:
    config = NetworkConfig(
        init_channels=4, layers=2, num_classes=3, image_size=12, image_width=8,
        mean=SPEC.mean, std=SPEC.std,
    )  # fmt: skip
    net = EvalNetwork(DARTS_V2, config, generator=torch.Generator().manual_seed(0)).eval()
    from repair_core.checkpoint import LoadedModel

    deployed = as_deployed(LoadedModel(net, DARTS_V2, config, ("a", "b", "c")))
    assert deployed.spec == SPEC and deployed.family == "darts"
    x = _images(SPEC)
    with torch.no_grad():
        reference = torch.flatten(net.global_pooling(net._trunk(x, False)[0][:, :, None, None]), 1)
        torch.testing.assert_close(deployed.model.features(x), reference)  # type: ignore[operator]
        assert deployed.model(x).shape == (3, 3)


def test_onnx_features_are_the_input_of_the_last_gemm(tmp_path: Path) -> None:
    tiny = tiny_onnx(channels=3, classes=4)
    prepared = prepare_onnx(tiny.to_bytes())
    assert prepared.features_name == "pooled" and prepared.params == sum(
        a.size for a in (tiny.conv_w, tiny.conv_b, tiny.fc_w, tiny.fc_b)
    )
    x = _images(SPEC)
    hidden = F.relu(
        F.conv2d(_normalized(x, SPEC), torch.from_numpy(tiny.conv_w),
                 torch.from_numpy(tiny.conv_b), padding=1)
    ).mean(dim=(2, 3))  # fmt: skip
    logits = hidden @ torch.from_numpy(tiny.fc_w).T + torch.from_numpy(tiny.fc_b)
    net = OnnxNet(prepared, SPEC)
    torch.testing.assert_close(net.features(x), hidden, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(net(x), logits, atol=1e-5, rtol=1e-5)
    save_onnx_model(tmp_path / "m.onnx", prepared, SPEC, ["a", "b", "c", "d"])
    loaded = load_deployed(tmp_path / "m.onnx")
    assert (loaded.family, loaded.spec, loaded.num_classes) == ("onnx", SPEC, 4)
    torch.testing.assert_close(loaded.model(x), logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (with_custom_op, "custom-op domains ['com.example.evil']"),
        (with_external_data, "external data (location '../../etc/passwd')"),
        (without_classifier, "no Gemm or MatMul"),
        (lambda t: b"\x08\x01garbage", "ONNX"),
    ],
)
def test_prepare_onnx_refuses_graphs_it_cannot_trust_or_read(make: object, words: str) -> None:
    with pytest.raises(RepairInputError) as caught:
        prepare_onnx(make(tiny_onnx(3, 4)))  # type: ignore[operator]
    assert words in str(caught.value)


def test_unknown_architecture_lists_close_names() -> None:
    with pytest.raises(RepairInputError) as caught:
        check_architecture("torchvision", "resnet-18")
    assert "resnet18" in str(caught.value) and "close names" in str(caught.value)


def test_registry_model_round_trips_through_its_file(tmp_path: Path) -> None:
    fresh = registry_model("timm", "mobilenetv3_small_050", SPEC, ["a", "b"], seed=3)
    save_registry_model(tmp_path / "m.safetensors", fresh)
    again = load_deployed(tmp_path / "m.safetensors")
    assert (again.family, again.architecture, again.spec) == ("timm", "mobilenetv3_small_050", SPEC)
    x = _images(SPEC)
    with torch.no_grad():
        torch.testing.assert_close(again.model(x), fresh.model(x))


def test_model_stats_counts_params_and_flops_of_one_image() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 5, 7))
    stats = model_stats(net, (3, 4, 5))
    assert stats.params == 60 * 7 + 7
    assert stats.flops == 2 * 60 * 7  # one multiply-add per weight, batch of 1
    assert net.training  # mode restored
