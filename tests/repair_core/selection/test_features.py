"""Feature extraction: batched, no_grad, eval mode, float in [0, 1] fed to `features`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from repair_core.errors import RepairInputError
from repair_core.progress import CancelToken, Progress, RepairCancelled
from repair_core.selection.features import FeatureModel, extract_features


class TinyNet(nn.Module):
    """conv -> batch norm -> pooled features -> classifier, recording what it was fed."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.classifier = nn.Linear(4, 2)
        self.batch_sizes: list[int] = []
        self.input_range: list[tuple[float, float]] = []
        self.grad_enabled: list[bool] = []

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(x.shape[0])
        self.input_range.append((float(x.min()), float(x.max())))
        self.grad_enabled.append(torch.is_grad_enabled())
        pooled: torch.Tensor = self.bn(self.conv(x)).mean(dim=(2, 3))
        return pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.features(x))
        return logits


def images(n: int = 10) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (n, 3, 6, 6), generator=g, dtype=torch.uint8)


def test_features_match_an_eval_mode_forward_on_scaled_images_in_batches() -> None:
    net, x = TinyNet(), images(10)
    assert net.bn.running_mean is not None
    net.bn.running_mean.fill_(0.3)  # eval mode must use these, not the batch statistics
    got = extract_features(net, x, batch_size=4)
    assert net.batch_sizes == [4, 4, 2]
    assert all(lo >= 0.0 and hi <= 1.0 for lo, hi in net.input_range)
    assert not any(net.grad_enabled)
    net.eval()
    with torch.no_grad():
        expected = net.features(x.float() / 255)
    torch.testing.assert_close(got, expected)
    assert got.dtype == torch.float32 and got.shape == (10, 4) and not got.requires_grad


def test_the_models_training_mode_is_restored() -> None:
    net = TinyNet().train()
    extract_features(net, images(3))
    assert net.training
    net.eval()
    extract_features(net, images(3))
    assert not net.training


def test_any_object_with_a_features_method_works_and_4d_outputs_are_flattened() -> None:
    class PoolOnly:
        def features(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)

    model = PoolOnly()
    assert isinstance(model, FeatureModel)
    got = extract_features(model, images(5), batch_size=2)
    torch.testing.assert_close(got, images(5).float().div(255).mean(dim=(2, 3)))


def test_a_model_on_another_device_is_refused_not_moved() -> None:
    net = TinyNet().to("meta")
    with pytest.raises(RepairInputError, match="model is on meta"):
        extract_features(net, images(2), device="cpu")
    assert next(net.parameters()).device.type == "meta"


def test_a_model_returning_the_wrong_number_of_rows_is_refused() -> None:
    class Broken:
        def features(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(1, 3)

    with pytest.raises(RepairInputError, match="returned 1 rows"):
        extract_features(Broken(), images(4))


@pytest.mark.parametrize(
    ("x", "batch_size", "message"),
    [
        (torch.zeros(2, 3, 4, 4), 8, "uint8"),
        (torch.zeros(3, 4, 4, dtype=torch.uint8), 8, "uint8"),
        (torch.zeros(0, 3, 4, 4, dtype=torch.uint8), 8, "N = 0"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), 0, "batch_size"),
    ],
)
def test_invalid_images_or_batch_size_raise_clear_errors(
    x: torch.Tensor, batch_size: int, message: str
) -> None:
    with pytest.raises(RepairInputError, match=message):
        extract_features(TinyNet(), x, batch_size=batch_size)


def test_progress_counts_batches_and_cancel_stops_between_them() -> None:
    seen: list[Progress] = []
    extract_features(TinyNet(), images(10), batch_size=3, on_progress=seen.append)
    assert [(p.step, p.total) for p in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]

    token = CancelToken()
    net = TinyNet().train()
    with pytest.raises(RepairCancelled):
        extract_features(
            net, images(10), batch_size=3, on_progress=lambda p: token.cancel(), cancel=token
        )
    assert net.batch_sizes == [3]
    assert net.training


@pytest.mark.gpu
def test_features_are_computed_on_the_cuda_device() -> None:
    net = TinyNet().cuda()
    got = extract_features(net, images(5), batch_size=2)
    assert got.device.type == "cuda"
    expected = extract_features(net.cpu(), images(5), batch_size=2)
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-5)
