"""The corruption suite: every corruption x severity keeps shape, dtype and device, is seeded,
and distorts more as the severity grows (by a measure that fits the corruption)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from repair_core.corruptions import (
    CORRUPTION_NAMES,
    CORRUPTIONS,
    SEVERITIES,
    corrupt,
    corrupt_in_chunks,
)
from repair_core.corruptions.registry import chunk_seed
from repair_core.errors import RepairInputError

RANDOM = [name for name, c in CORRUPTIONS.items() if c.random]
DETERMINISTIC = [name for name, c in CORRUPTIONS.items() if not c.random]


def pink_images(n: int, c: int, h: int, w: int, seed: int = 0) -> Tensor:
    """uint8 images with a natural-image-like 1/f spectrum: detail at every scale."""
    g = torch.Generator().manual_seed(seed)
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    f = torch.sqrt(fy**2 + fx**2)
    f[0, 0] = 1.0
    parts = torch.randn(n, c, h, w // 2 + 1, 2, generator=g)
    spectrum = torch.complex(parts[..., 0], parts[..., 1]) / f
    spectrum[..., 0, 0] = 0
    img = torch.fft.irfft2(spectrum, s=(h, w))
    img = img - img.amin(dim=(2, 3), keepdim=True)
    img = img / img.amax(dim=(2, 3), keepdim=True)
    images: Tensor = (img * 200 + 28).round().to(torch.uint8)
    return images


CASES = [(3, 32, 32), (1, 16, 16)]  # CIFAR-like colour, and a small grayscale (scaled params)


@pytest.fixture(scope="module", params=CASES, ids=["rgb32", "gray16"])
def small_batch(request: pytest.FixtureRequest) -> Tensor:
    c, h, w = request.param
    return pink_images(4, c, h, w)


def test_the_registry_lists_the_15_corruptions_in_the_order_of_the_method() -> None:
    assert CORRUPTION_NAMES == (
        "gaussian_noise", "shot_noise", "impulse_noise",
        "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
        "snow", "frost", "fog", "brightness",
        "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    )  # fmt: skip
    assert SEVERITIES == (1, 2, 3, 4, 5)
    assert [c.group for c in CORRUPTIONS.values()].count("noise") == 3


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_corruption_keeps_shape_dtype_device_and_changes_the_images(
    small_batch: Tensor, name: str, severity: int
) -> None:
    out = corrupt(small_batch, name, severity, seed=0)
    assert out.shape == small_batch.shape
    assert out.dtype == torch.uint8
    assert out.device == small_batch.device
    # Values are in range by dtype; what could go wrong is a blank or saturated image.
    assert 0 < out.float().mean() < 255
    assert out.float().std() > 1
    assert not torch.equal(out, small_batch)
    raw = CORRUPTIONS[name].apply(small_batch.float() / 255, severity, torch.Generator())
    assert torch.isfinite(raw).all()


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_corruption_with_the_same_seed_is_identical(
    small_batch: Tensor, name: str, severity: int
) -> None:
    first = corrupt(small_batch, name, severity, seed=7)
    second = corrupt(small_batch, name, severity, seed=7)
    assert torch.equal(first, second)


@pytest.mark.parametrize("name", RANDOM)
def test_random_corruption_differs_between_seeds(small_batch: Tensor, name: str) -> None:
    for severity in SEVERITIES:
        a = corrupt(small_batch, name, severity, seed=1)
        b = corrupt(small_batch, name, severity, seed=2)
        assert not torch.equal(a, b), f"{name} severity {severity} ignores its seed"


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruption_does_not_depend_on_the_seed(
    small_batch: Tensor, name: str
) -> None:
    for severity in SEVERITIES:
        a = corrupt(small_batch, name, severity, seed=1)
        assert torch.equal(a, corrupt(small_batch, name, severity, seed=2))


# --- distortion grows with severity ----------------------------------------------------------


def mean_abs_difference(name: str, clean: Tensor) -> list[float]:
    return [
        (corrupt(clean, name, s, seed=1).float() - clean.float()).abs().mean().item()
        for s in SEVERITIES
    ]


def lost_correlation(name: str, clean: Tensor) -> list[float]:
    """1 - Pearson correlation with the clean image: how much of the image an overlay hides.

    Used for frost and snow: their overlays brighten the image (frost's image weight drops
    as its frost weight rises), so the mean absolute difference is not monotone."""
    out = []
    for s in SEVERITIES:
        a = clean.float().flatten(1)
        b = corrupt(clean, name, s, seed=1).float().flatten(1)
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        r = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
        out.append((1 - r).mean().item())
    return out


def point_spread(name: str, clean: Tensor) -> list[float]:
    """Spread (px^2) of the average response to isolated bright points, over 64 random draws.

    The natural size of a blur: pixel differences shrink as the glass blur's second Gaussian
    smooths its scrambled pixels, although the image is more degraded."""
    _, _, h, w = clean.shape
    points = torch.zeros(64, 1, h, w)
    centres = [(i, j) for i in range(4, h - 3, 8) for j in range(4, w - 3, 8)]
    for i, j in centres:
        points[:, :, i, j] = 1.0
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    out = []
    for s in SEVERITIES:
        response = CORRUPTIONS[name].apply(points, s, torch.Generator().manual_seed(0)).mean(0)[0]
        spread = 0.0
        for i, j in centres:
            weight = response[i - 4 : i + 4, j - 4 : j + 4].clamp_min(0)
            weight = weight / weight.sum()
            my, mx = (weight * yy).sum(), (weight * xx).sum()
            spread += (weight * ((yy - my) ** 2 + (xx - mx) ** 2)).sum().item()
        out.append(spread / len(centres))
    return out


def non_affine_displacement(name: str, clean: Tensor) -> list[float]:
    """RMS (px) of where pixels are sampled from, after removing the best-fitting affine map.

    The published elastic parameters shrink the random affine part (0.08 -> 0.03 of the size)
    while growing the elastic part, so this measures the elastic part. Reading the sampling
    map off a coordinate ramp is exact: bilinear interpolation of a linear ramp is linear."""
    _, _, h, w = clean.shape
    yy, xx = torch.meshgrid(torch.arange(h * 1.0), torch.arange(w * 1.0), indexing="ij")
    ramp = torch.stack([xx / (w - 1), yy / (h - 1), torch.zeros_like(xx)])[None].repeat(16, 1, 1, 1)
    m = h // 4  # stay clear of the reflected border
    inner = (slice(m, h - m), slice(m, w - m))
    design = torch.stack([xx[inner], yy[inner], torch.ones_like(xx[inner])], -1).reshape(-1, 3)
    out = []
    for s in SEVERITIES:
        mapped = CORRUPTIONS[name].apply(ramp, s, torch.Generator().manual_seed(0))
        source = mapped[:, :2, inner[0], inner[1]] * torch.tensor([w - 1.0, h - 1.0])[:, None, None]
        rms = 0.0
        for k in range(source.shape[0]):
            target = source[k].permute(1, 2, 0).reshape(-1, 2).double()
            fit = torch.linalg.lstsq(design.double(), target).solution
            rms += (target - design.double() @ fit).pow(2).sum(1).mean().sqrt().item()
        out.append(rms / source.shape[0])
    return out


MEASURES: dict[str, Callable[[str, Tensor], list[float]]] = {
    "defocus_blur": point_spread,
    "glass_blur": point_spread,
    "motion_blur": point_spread,
    "zoom_blur": point_spread,
    "snow": lost_correlation,
    "frost": lost_correlation,
    "elastic_transform": non_affine_displacement,
}


@pytest.mark.parametrize("c,h,w", CASES, ids=["rgb32", "gray16"])
@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_distortion_grows_from_severity_1_to_5(name: str, c: int, h: int, w: int) -> None:
    clean = pink_images(32, c, h, w, seed=3)
    measure = MEASURES.get(name, mean_abs_difference)
    values = measure(name, clean)
    # Non-decreasing (motion blur 3 and 4 differ only in taps whose weight is ~1e-9) ...
    for s in range(4):
        assert values[s + 1] >= values[s] * (1 - 1e-3), f"{measure.__name__}: {values}"
    # ... and clearly larger at 5 than at 1.
    assert values[4] > 1.1 * values[0] + 1e-3, f"{measure.__name__}: {values}"


# --- errors and batching ---------------------------------------------------------------------


def test_unknown_corruption_names_the_valid_ones() -> None:
    with pytest.raises(RepairInputError, match=r"gaussian_noise.*jpeg_compression"):
        corrupt(pink_images(1, 3, 32, 32), "gausian_noise", 1, seed=0)


@pytest.mark.parametrize("severity", [0, 6, -1, 2.0, "3", True])
def test_severity_outside_1_to_5_is_rejected(severity: object) -> None:
    with pytest.raises(RepairInputError, match="severity"):
        corrupt(pink_images(1, 3, 32, 32), "fog", severity, seed=0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "images",
    [
        torch.zeros(2, 3, 32, 32),  # float
        torch.zeros(3, 32, 32, dtype=torch.uint8),  # 3-d
        torch.zeros(2, 2, 32, 32, dtype=torch.uint8),  # 2 channels
        torch.zeros(2, 32, 32, 3, dtype=torch.uint8),  # NHWC
        torch.zeros(2, 3, 4, 4, dtype=torch.uint8),  # too small
    ],
    ids=["float", "3d", "2ch", "nhwc", "tiny"],
)
def test_images_that_are_not_uint8_nchw_with_1_or_3_channels_are_rejected(images: Tensor) -> None:
    with pytest.raises(RepairInputError, match="images"):
        corrupt(images, "contrast", 1, seed=0)


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5])
def test_seed_must_be_a_non_negative_63_bit_integer(seed: object) -> None:
    with pytest.raises(RepairInputError, match="seed"):
        corrupt(pink_images(1, 3, 32, 32), "fog", 1, seed=seed)  # type: ignore[arg-type]


def test_an_empty_batch_comes_back_empty() -> None:
    empty = torch.zeros(0, 3, 32, 32, dtype=torch.uint8)
    assert corrupt(empty, "snow", 3, seed=0).shape == (0, 3, 32, 32)


def test_non_square_images_keep_their_shape() -> None:
    images = pink_images(2, 3, 24, 40)
    for name in CORRUPTION_NAMES:
        assert corrupt(images, name, 5, seed=0).shape == (2, 3, 24, 40)


def test_larger_images_get_proportionally_larger_blurs() -> None:
    points32 = torch.zeros(1, 1, 32, 32)
    points32[..., 16, 16] = 1
    points64 = torch.zeros(1, 1, 64, 64)
    points64[..., 32, 32] = 1
    g = torch.Generator()
    small = CORRUPTIONS["defocus_blur"].apply(points32, 5, g)
    large = CORRUPTIONS["defocus_blur"].apply(points64, 5, g)
    assert (small > 1e-3).sum() == 9  # the 3x3 disk of radius 1.5
    assert (large > 1e-3).sum() > 4 * 9 - 12  # radius 3: about four times the area


def test_corrupt_in_chunks_seeds_each_chunk_independently() -> None:
    images = pink_images(5, 3, 32, 32)
    chunked = corrupt_in_chunks(images, "gaussian_noise", 2, seed=3, chunk_size=2)
    expected = torch.cat(
        [
            corrupt(
                images[i : i + 2], "gaussian_noise", 2, seed=chunk_seed(3, "gaussian_noise", 2, k)
            )
            for k, i in enumerate(range(0, 5, 2))
        ]
    )
    assert torch.equal(chunked, expected)
    assert not torch.equal(chunked[0:2], chunked[2:4])


@pytest.mark.gpu
@pytest.mark.parametrize("name", CORRUPTION_NAMES)
def test_corruption_runs_on_cuda_and_is_seeded_there(name: str) -> None:
    images = pink_images(4, 3, 32, 32).to("cuda")
    out = corrupt(images, name, 5, seed=0)
    assert out.device == images.device and out.dtype == torch.uint8
    assert torch.equal(out, corrupt(images, name, 5, seed=0))
