"""PC-DARTS's supernet pieces: partial channel connections and edge normalisation.

Xu et al. (ICLR 2020): an edge sends only 1/K of its channels through the candidate
ops; the other channels bypass them (max-pooled where the edge reduces), and a channel
shuffle interleaves the two parts so that every channel takes the ops' path on some
later edge. Edge normalisation gives each node a softmax over its incoming edges
(`betas`), which scales each edge's output and its strength in discretisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave `groups` contiguous channel blocks: channel k*C/g + i moves to i*g + k."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class PartialMixedOp(nn.Module):
    """A mixed op over the first c // k channels; the rest bypass it, then shuffle."""

    def __init__(self, mixed: nn.Module, stride: int, k: int) -> None:
        super().__init__()
        # `mixed` is a MixedOp built on c // k channels: the op sum is shared, not copied.
        self.mixed = mixed
        self.stride = stride
        self.k = k

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        part = x.shape[1] // self.k
        y = self.mixed(x[:, :part], weights)
        bypass = x[:, part:]
        if self.stride == 2:
            # ceil_mode: odd sizes (7x7) give 4x4 like the padded stride-2 ops.
            bypass = F.max_pool2d(bypass, 2, 2, ceil_mode=True)
        return channel_shuffle(torch.cat([y, bypass], dim=1), self.k)


def edge_softmax(betas: torch.Tensor, steps: int) -> torch.Tensor:
    """Per-node softmax of the edge logits: node i owns the i + 2 entries after its elders."""
    parts, start = [], 0
    for i in range(steps):
        parts.append(F.softmax(betas[start : start + i + 2], dim=-1))
        start += i + 2
    return torch.cat(parts)
