"""The torch building blocks match the numpy/scipy/PIL calls of the CIFAR-10-C reference code."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import torch
from PIL import Image

from repair_core.corruptions import CORRUPTIONS
from repair_core.corruptions.blur import disk_kernel, zoom_factors
from repair_core.corruptions.filters import (
    border_index,
    box_resize,
    clipped_zoom,
    gaussian_blur,
    plasma_fractal,
)

ndimage = pytest.importorskip("scipy.ndimage")


def random_plane(h: int = 12, w: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w))


@pytest.mark.parametrize(
    "mode,numpy_mode",
    [("replicate", "edge"), ("symmetric", "symmetric"), ("reflect101", "reflect")],
)
def test_border_index_pads_like_numpy_even_past_the_signal_length(
    mode: str, numpy_mode: str
) -> None:
    signal = np.arange(5.0)
    ours = signal[border_index(5, 7, mode, torch.device("cpu")).numpy()]  # type: ignore[arg-type]
    assert np.array_equal(ours, np.pad(signal, 7, mode=numpy_mode))  # type: ignore[call-overload]


@pytest.mark.parametrize("sigma,truncate,mode,scipy_mode", [
    (0.7, 4.0, "replicate", "nearest"),
    (2.5, 3.0, "symmetric", "reflect"),
    (6.0, 3.0, "symmetric", "reflect"),  # kernel wider than the image
])  # fmt: skip
def test_gaussian_blur_matches_scipy_gaussian_filter(
    sigma: float, truncate: float, mode: str, scipy_mode: str
) -> None:
    plane = random_plane()
    ours = gaussian_blur(torch.from_numpy(plane)[None, None], sigma, truncate=truncate, mode=mode)  # type: ignore[arg-type]
    theirs = ndimage.gaussian_filter(plane, sigma, mode=scipy_mode, truncate=truncate)
    np.testing.assert_allclose(ours[0, 0].numpy(), theirs, atol=1e-10)


def reference_clipped_zoom(img: np.ndarray, zoom_factor: float) -> np.ndarray:
    """CIFAR-10-C's clipped_zoom, verbatim apart from names."""
    h = img.shape[0]
    ch = int(np.ceil(h / zoom_factor))
    top = (h - ch) // 2
    img = ndimage.zoom(img[top : top + ch, top : top + ch], (zoom_factor, zoom_factor), order=1)
    trim_top = (img.shape[0] - h) // 2
    return img[trim_top : trim_top + h, trim_top : trim_top + h]


@pytest.mark.parametrize("zoom", [1.0, 1.07, 1.25, 1.75, 2.25])
def test_clipped_zoom_matches_the_reference(zoom: float) -> None:
    plane = random_plane(32, 32)
    ours = clipped_zoom(torch.from_numpy(plane)[None, None], zoom)[0, 0].numpy()
    np.testing.assert_allclose(ours, reference_clipped_zoom(plane, zoom), atol=1e-9)


def test_zoom_factors_follow_numpy_arange_like_the_reference() -> None:
    for severity, bound in enumerate((1.06, 1.11, 1.16, 1.21, 1.26), start=1):
        np.testing.assert_allclose(zoom_factors(severity), np.arange(1, bound, 0.01))


@pytest.mark.parametrize("size_in,size_out", [(32, 30), (32, 20), (30, 32), (20, 32), (16, 10)])
def test_box_resize_matches_pil_box_resampling(size_in: int, size_out: int) -> None:
    image = np.random.default_rng(1).integers(0, 256, (size_in, size_in), dtype=np.uint8)
    theirs = np.asarray(Image.fromarray(image).resize((size_out, size_out), Image.Resampling.BOX))
    ours = box_resize(torch.from_numpy(image).double()[None, None], size_out, size_out)[0, 0]
    assert np.abs(ours.round().numpy() - theirs).max() <= 1  # PIL rounds in fixed point


def test_disk_kernel_is_a_softened_delta_below_radius_1_and_a_box_at_1_5() -> None:
    soft = disk_kernel(0.3, 0.4)
    one_d = np.exp(-0.5 * (np.arange(-1, 2) / 0.4) ** 2)
    one_d /= one_d.sum()
    centre = soft[
        soft.shape[0] // 2 - 1 : soft.shape[0] // 2 + 2,
        soft.shape[1] // 2 - 1 : soft.shape[1] // 2 + 2,
    ]
    np.testing.assert_allclose(centre.numpy(), np.outer(one_d, one_d), atol=1e-6)
    box = disk_kernel(1.5, 0.1)
    assert math.isclose(float(box.sum()), 1.0, rel_tol=1e-6)
    assert box.shape == (5, 5)  # radius 1.5: the 3x3 disk plus the softening ring
    assert torch.allclose(box[box > 1e-3], torch.full((9,), 1 / 9, dtype=box.dtype), atol=1e-3)


def test_plasma_fractal_spans_0_to_1_and_is_seeded() -> None:
    def make(seed: int) -> torch.Tensor:
        return plasma_fractal(3, 32, 3.0, torch.Generator().manual_seed(seed), torch.device("cpu"))

    plasma = make(0)
    assert plasma.shape == (3, 32, 32)
    assert torch.allclose(plasma.flatten(1).amin(1), torch.zeros(3))
    assert torch.allclose(plasma.flatten(1).amax(1), torch.ones(3))
    assert torch.equal(plasma, make(0)) and not torch.equal(plasma, make(1))


def test_brightness_is_the_hsv_value_shift_of_the_reference() -> None:
    rng = np.random.default_rng(2)
    pixels = np.concatenate([rng.random((50, 3)), [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])
    x = torch.from_numpy(pixels).float().T.reshape(1, 3, 1, -1)
    ours = CORRUPTIONS["brightness"].apply(x, 3, torch.Generator())[0].reshape(3, -1).T.numpy()
    expected = []
    for r, g, b in pixels:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        expected.append(colorsys.hsv_to_rgb(h, s, min(v + 0.15, 1.0)))
    np.testing.assert_allclose(ours, np.array(expected), atol=1e-5)
