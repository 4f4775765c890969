"""The DARTS candidate operations, their registry, and drop path.

Module layouts (attribute names, `nn.Sequential` indices) follow the reference DARTS
implementation so that state dicts trained there load here unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from repair_core.registry import Registry

# The DARTS search space, in the reference order: alpha columns follow this order.
PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

OpFactory = Callable[[int, int, bool], nn.Module]  # (channels, stride, affine) -> module


class ReLUConvBN(nn.Module):
    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool
    ) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)  # type: ignore[no-any-return]


class DilConv(nn.Module):
    """ReLU, dilated depthwise conv, pointwise conv, BN."""

    def __init__(
        self, c: int, kernel_size: int, stride: int, padding: int, dilation: int, affine: bool
    ) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel_size, stride, padding, dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)  # type: ignore[no-any-return]


class SepConv(nn.Module):
    """Two stacked (ReLU, depthwise conv, pointwise conv, BN) blocks; only the first strides."""

    def __init__(self, c: int, kernel_size: int, stride: int, padding: int, affine: bool) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel_size, stride, padding, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel_size, 1, padding, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)  # type: ignore[no-any-return]


def _conv_7x1_1x7(c: int, stride: int, affine: bool) -> nn.Module:
    # Not in the DARTS search space, but published genotypes (AmoebaNet) use it. A bare
    # Sequential, as in the reference, so its state-dict keys match.
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(c, c, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
        nn.Conv2d(c, c, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
        nn.BatchNorm2d(c, affine=affine),
    )


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The `none` op: zeros of the output shape."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two 1x1 stride-2 convs, one shifted by a pixel."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even output width, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # The reference slices x[:, :, 1:, 1:], which breaks on odd sizes. Padding one
        # row/column first samples the same pixels on even sizes and matches conv_1 on odd.
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))  # type: ignore[no-any-return]


def _skip(c: int, stride: int, affine: bool) -> nn.Module:
    return Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine)


OPS: Registry[OpFactory] = Registry(
    "operation",
    {
        "none": lambda c, stride, affine: Zero(stride),
        "max_pool_3x3": lambda c, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
        "avg_pool_3x3": lambda c, stride, affine: nn.AvgPool2d(
            3, stride=stride, padding=1, count_include_pad=False
        ),
        "skip_connect": _skip,
        "sep_conv_3x3": lambda c, stride, affine: SepConv(c, 3, stride, 1, affine),
        "sep_conv_5x5": lambda c, stride, affine: SepConv(c, 5, stride, 2, affine),
        "sep_conv_7x7": lambda c, stride, affine: SepConv(c, 7, stride, 3, affine),
        "dil_conv_3x3": lambda c, stride, affine: DilConv(c, 3, stride, 2, 2, affine),
        "dil_conv_5x5": lambda c, stride, affine: DilConv(c, 5, stride, 4, 2, affine),
        "conv_7x1_1x7": _conv_7x1_1x7,
    },
)


def drop_path(
    x: torch.Tensor, p: float, training: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero whole examples of a branch with probability `p`, rescaling the survivors.

    `generator` must live on `x`'s device; None draws from torch's default generator, so
    callers that need reproducible training pass one.
    """
    if not training or p <= 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype)
    mask.bernoulli_(keep, generator=generator)
    return x * mask / keep


class DropPath(nn.Module):
    """`drop_path` as a module; `p` and `generator` may be changed between steps."""

    def __init__(self, p: float = 0.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.p = p
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"
