"""The baselines' augmentations on known inputs: AugMix weights and views, the JSD loss,
CutMix's box against its label mix, and the Fourier style transfer."""

from __future__ import annotations

import math

import pytest
import torch

from repair_core.train.mixing import (
    AUGMIX_OPS,
    augmix,
    cutmix,
    fourier_amplitude_mix,
    fourier_style,
    jsd_consistency,
)


def _images(n: int, seed: int = 0, size: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def test_augmix_weights_are_beta_and_dirichlet_per_image() -> None:
    images = _images(4096, size=4)
    torch.manual_seed(0)
    _, m, w = augmix(
        images, torch.Generator().manual_seed(1), ops=("identity",), chunk=4096,
        return_weights=True,
    )  # type: ignore[misc]  # fmt: skip
    assert abs(float(m.mean()) - 0.5) < 0.03  # Beta(1, 1) = U(0, 1): mean 1/2, var 1/12
    assert abs(float(m.var()) - 1 / 12) < 0.01
    assert torch.allclose(w.sum(1), torch.ones(4096), atol=1e-5)
    assert (w >= 0).all() and abs(float(w.mean()) - 1 / 3) < 0.01
    assert len(set(m[:50].tolist())) == 50  # per image, not one value per batch


def test_augmix_with_identity_ops_returns_the_input() -> None:
    images = _images(64)
    out = augmix(images, torch.Generator().manual_seed(0), ops=("identity",))
    assert torch.allclose(out, images.float() / 255, atol=1e-6)  # type: ignore[arg-type]


def test_augmix_is_seeded_and_views_differ() -> None:
    images = _images(40)

    def view(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        out = augmix(images, torch.Generator().manual_seed(seed), chunk=16)
        assert isinstance(out, torch.Tensor)
        return out

    first, again = view(3), view(3)
    assert torch.equal(first, again)
    assert not torch.equal(first, view(4))
    assert first.shape == images.shape and first.dtype == torch.float32
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert first.device == images.device
    assert not {"brightness", "contrast", "color", "sharpness"} & set(AUGMIX_OPS)


def test_jsd_known_values() -> None:
    x = torch.randn(5, 4)
    assert float(jsd_consistency(x, x, x)) == pytest.approx(0.0, abs=1e-6)
    a = torch.tensor([[50.0, -50.0]])
    b = torch.tensor([[-50.0, 50.0]])
    c = torch.tensor([[0.0, 0.0]])
    # M = (1/2, 1/2): KL(a||M) = KL(b||M) = ln 2, KL(c||M) = 0.
    assert float(jsd_consistency(a, b, c)) == pytest.approx(2 * math.log(2) / 3, abs=1e-4)
    assert float(jsd_consistency(b, c, a)) == pytest.approx(float(jsd_consistency(a, b, c)))
    three = torch.eye(3) * 100
    assert float(jsd_consistency(three[:1], three[1:2], three[2:])) <= math.log(3) + 1e-5


def test_cutmix_box_area_matches_label_mix() -> None:
    n, size = 8, 16
    labels = torch.arange(n) % 4
    images = (
        (torch.arange(n, dtype=torch.float32) / n)[:, None, None, None]
        .expand(n, 3, size, size)
        .clone()
    )  # image i is constant i/n, so each pixel says where it came from
    torch.manual_seed(0)
    mixed, soft = cutmix(images, labels, 4, alpha=1.0, prob=1.0)
    assert torch.allclose(soft.sum(1), torch.ones(n))
    changed = mixed[:, 0] != images[:, 0]  # (N, H, W)
    own = 1.0 - changed.float().mean(dim=(1, 2))
    for i in range(n):
        partner = (i - 1) % n  # torchvision pastes from batch.roll(1, 0)
        expected = torch.zeros(4)
        expected[labels[i]] += own[i]
        expected[labels[partner]] += 1 - own[i]
        assert torch.allclose(soft[i], expected, atol=1e-6)
        assert torch.all(mixed[i, 0][changed[i]] == images[partner, 0, 0, 0])
    rows, cols = changed[0].any(1), changed[0].any(0)
    box = rows[:, None] & cols[None, :]
    assert torch.equal(changed[0], box)  # one rectangle, the same for the whole batch
    same, one_hot = cutmix(images, labels, 4, alpha=1.0, prob=0.0)
    assert torch.equal(same, images) and torch.equal(one_hot.argmax(1), labels)


def test_fourier_mix_moves_amplitude_toward_style() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g)
    s = torch.rand(4, 3, 16, 16, generator=g)
    amp = lambda t: torch.fft.fft2(t).abs()  # noqa: E731
    base = (amp(x) - amp(s)).abs().mean()
    for lam in (0.25, 0.5, 0.9):
        out = fourier_amplitude_mix(x, s, torch.full((4,), lam))
        dist = (amp(out) - amp(s)).abs().mean()
        assert float(dist) == pytest.approx((1 - lam) * float(base), rel=1e-4)
        spectrum = torch.fft.fft2(out)
        big = amp(x) > 1e-3
        phase = torch.angle(spectrum * torch.conj(torch.fft.fft2(x)))[big]
        assert float(phase.abs().max()) < 1e-3  # content (the phase) kept
    assert torch.allclose(fourier_amplitude_mix(x, s, torch.zeros(4)), x, atol=1e-5)
    # On uint8 training images with a noise bank: the amplitude moves toward the noise.
    clean = torch.full((32, 3, 16, 16), 128, dtype=torch.uint8)
    clean[:, :, 4:12, 4:12] = 200
    noise = torch.randint(0, 256, (8, 3, 16, 16), generator=g, dtype=torch.uint8)
    styled = fourier_style(clean, noise, torch.Generator().manual_seed(1))
    assert styled.dtype == torch.uint8 and styled.shape == clean.shape
    bank = amp(noise.float() / 255).mean(0)

    def distance(t: torch.Tensor) -> float:
        return float((amp(t.float() / 255) - bank).abs().mean())

    assert distance(styled) < 0.7 * distance(clean)
