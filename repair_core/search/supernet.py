"""The DARTS search supernet: every edge a softmax-weighted mix of all candidate ops.

Architecture parameters (`alphas_normal`, `alphas_reduce`, one row per edge, one column
per primitive; with PC-DARTS's edge normalisation also `betas_normal`, `betas_reduce`, one
logit per edge) are registered parameters, so they move, save and load with the model.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from repair_core.errors import RepairInputError
from repair_core.search.config_checks import check_int
from repair_core.search.discretize import discretize, discretize_weights, num_edges
from repair_core.search.genotype import Genotype
from repair_core.search.normalize import CIFAR10_MEAN, CIFAR10_STD, Normalize, check_normalization
from repair_core.search.ops import OPS, PRIMITIVES, FactorizedReduce, ReLUConvBN, drop_path
from repair_core.search.partial import PartialMixedOp, edge_softmax
from repair_core.search.projection import Projection
from repair_core.search.weight_init import init_weights_

ALPHA_NAMES = ("alphas_normal", "alphas_reduce")
BETA_NAMES = ("betas_normal", "betas_reduce")
ARCH_NAMES = ALPHA_NAMES + BETA_NAMES
_NONE = PRIMITIVES.index("none")


@dataclass(frozen=True)
class SearchConfig:
    init_channels: int = 16  # channels of the first cells; doubled at each reduction
    layers: int = 8  # cells; reduction cells at layers // 3 and 2 * layers // 3
    steps: int = 4  # intermediate nodes per cell
    multiplier: int = 4  # last `multiplier` nodes are concatenated into the cell output
    stem_multiplier: int = 3  # stem width = stem_multiplier * init_channels
    num_classes: int = 10
    in_channels: int = 3  # 1 for grayscale
    mean: tuple[float, ...] = CIFAR10_MEAN  # input normalisation, per channel (or one value)
    std: tuple[float, ...] = CIFAR10_STD
    # PC-DARTS: 1/K of an edge's channels go through the ops (1: all, as DARTS) ...
    partial_channels: int = 1
    edge_normalization: bool = False  # ... and per-node softmax betas over incoming edges

    def __post_init__(self) -> None:
        check_int("SearchConfig", "init_channels", self.init_channels, 2, 1024)
        check_int("SearchConfig", "layers", self.layers, 1, 64)
        check_int("SearchConfig", "steps", self.steps, 1, 16)
        check_int("SearchConfig", "multiplier", self.multiplier, 1, self.steps)
        check_int("SearchConfig", "stem_multiplier", self.stem_multiplier, 1, 16)
        check_int("SearchConfig", "num_classes", self.num_classes, 1, 100_000)
        check_int("SearchConfig", "in_channels", self.in_channels, 1, 64)
        check_int("SearchConfig", "partial_channels", self.partial_channels, 1, 64)
        if self.init_channels % self.partial_channels:
            raise RepairInputError(
                f"SearchConfig.init_channels {self.init_channels} must be a multiple of "
                f"partial_channels {self.partial_channels}"
            )
        if not isinstance(self.edge_normalization, bool):
            raise RepairInputError("SearchConfig.edge_normalization must be true or false")
        mean, std = check_normalization(self.mean, self.std, self.in_channels)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MixedOp(nn.Module):
    """One supernet edge: sum over primitives of softmax weight x op(x)."""

    def __init__(self, c: int, stride: int) -> None:
        super().__init__()
        self._ops = nn.ModuleList()
        for name in PRIMITIVES:
            op = OPS[name](c, stride, False)
            if "pool" in name:  # pools have no BN of their own; DARTS adds a non-affine one
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            self._ops.append(op)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # `none` outputs zeros: skipping it changes neither the sum nor any gradient.
        out: torch.Tensor | None = None
        for k, op in enumerate(self._ops):
            if k != _NONE:
                y = weights[k] * op(x)
                out = y if out is None else out + y
        assert out is not None
        return out


class SearchCell(nn.Module):
    def __init__(
        self,
        config: SearchConfig,
        c_prev_prev: int,
        c_prev: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self._steps = config.steps
        self._multiplier = config.multiplier
        # Input 0 comes from two cells back: if the last cell reduced, it is twice our size.
        self.preprocess0: nn.Module = (
            FactorizedReduce(c_prev_prev, c, affine=False)
            if reduction_prev
            else ReLUConvBN(c_prev_prev, c, 1, 1, 0, affine=False)
        )
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0, affine=False)
        k = config.partial_channels
        self._ops = nn.ModuleList(
            _edge(c, 2 if reduction and j < 2 else 1, k)
            for i in range(config.steps)
            for j in range(2 + i)
        )

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        edge_weights: torch.Tensor | None = None,
        drop_p: float = 0.0,
        drop_generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """`edge_weights` (edges,) scale each edge; `drop_p` drops whole edge outputs."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self._steps):
            total: torch.Tensor | None = None
            for j, h in enumerate(states):
                out = self._ops[offset + j](h, weights[offset + j])
                if edge_weights is not None:
                    out = edge_weights[offset + j] * out
                if drop_p > 0.0:
                    out = drop_path(out, drop_p, self.training, drop_generator)
                total = out if total is None else total + out
            assert total is not None
            offset += len(states)
            states.append(total)
        return torch.cat(states[-self._multiplier :], dim=1)


def _edge(c: int, stride: int, k: int) -> nn.Module:
    return MixedOp(c, stride) if k == 1 else PartialMixedOp(MixedOp(c // k, stride), stride, k)


class SuperNet(nn.Module):
    """`generator` (a CPU generator) seeds alphas and weights; None uses torch's default."""

    alphas_normal: nn.Parameter
    alphas_reduce: nn.Parameter
    # Scheduled by the searcher for weight steps only (RobustDARTS's regularised variant).
    drop_path_prob: float = 0.0
    drop_generator: torch.Generator | None = None
    # DARTS-PT's decisions (set by its selection phase); None: the plain DARTS mixture.
    projection: Projection | None = None
    _mask_cache: tuple[Projection, dict[tuple[bool, str], tuple[torch.Tensor, torch.Tensor]]]

    def __init__(self, config: SearchConfig, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        self.normalize = Normalize(config.mean, config.std)
        c_curr = config.stem_multiplier * config.init_channels
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, c_curr, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_curr),
        )
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, config.init_channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(config.layers):
            reduction = i in (config.layers // 3, 2 * config.layers // 3)
            if reduction:
                c_curr *= 2
            cell = SearchCell(config, c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
            reduction_prev = reduction
            self.cells.append(cell)
            c_prev_prev, c_prev = c_prev, config.multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, config.num_classes)
        if generator is not None:
            init_weights_(self, generator)
        shape = (num_edges(config.steps), len(PRIMITIVES))
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(shape, generator=generator))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(shape, generator=generator))
        self.betas_normal: nn.Parameter | None = None
        self.betas_reduce: nn.Parameter | None = None
        if config.edge_normalization:
            # Drawn after the alphas, so a DARTS and a PC-DARTS supernet share their alphas.
            self.betas_normal = nn.Parameter(1e-3 * torch.randn(shape[0], generator=generator))
            self.betas_reduce = nn.Parameter(1e-3 * torch.randn(shape[0], generator=generator))

    def arch_parameters(self) -> list[nn.Parameter]:
        betas = [b for b in (self.betas_normal, self.betas_reduce) if b is not None]
        return [self.alphas_normal, self.alphas_reduce, *betas]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name not in ARCH_NAMES]

    def named_weight_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(name, p) for name, p in self.named_parameters() if name not in ARCH_NAMES]

    def cell_weights(self, reduction: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(op weights (edges, primitives), edge weights (edges,) or None) of a cell type."""
        alphas = self.alphas_reduce if reduction else self.alphas_normal
        betas = self.betas_reduce if reduction else self.betas_normal
        edge = None if betas is None else edge_softmax(betas, self.config.steps)
        weights = F.softmax(alphas, dim=-1)
        if self.projection is not None:
            keep, fixed = self._masks(self.projection, reduction, weights)
            weights = weights * keep + fixed
        return weights, edge

    def _masks(
        self, projection: Projection, reduction: bool, like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Built once per projection and device: a host-to-device copy every forward would
        # be a sync point on CUDA.
        cache = getattr(self, "_mask_cache", None)
        if cache is None or cache[0] is not projection:
            masks: dict[tuple[bool, str], tuple[torch.Tensor, torch.Tensor]] = {}
            cache = (projection, masks)
            self._mask_cache = cache
        key = (reduction, f"{like.device}:{like.dtype}")
        if key not in cache[1]:
            cache[1][key] = projection.masks(reduction, like)
        return cache[1][key]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, D): globally pooled output of the last cell."""
        s0 = s1 = self.stem(self.normalize(x))
        normal, reduce = self.cell_weights(False), self.cell_weights(True)
        for cell in self.cells:
            w, edge = reduce if cell.reduction else normal
            s0, s1 = s1, cell(s0, s1, w, edge, self.drop_path_prob, self.drop_generator)
        return torch.flatten(self.global_pooling(s1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # type: ignore[no-any-return]

    def genotype(self, max_skip_normal: int | None = None) -> Genotype:
        if self.projection is not None:
            return self._projected_genotype(max_skip_normal)
        return discretize(
            self.alphas_normal, self.alphas_reduce, self.config.steps, self.config.multiplier,
            betas_normal=self.betas_normal, betas_reduce=self.betas_reduce,
            max_skip_normal=max_skip_normal,
        )  # fmt: skip

    def _projected_genotype(self, max_skip_normal: int | None) -> Genotype:
        # The DARTS rule on the projected weights: decided edges weigh 1, given-up inputs 0.
        with torch.no_grad():
            (wn, en), (wr, er) = self.cell_weights(False), self.cell_weights(True)
        rows = [w.detach().double().cpu().tolist() for w in (wn, wr)]
        edges = [None if e is None else e.detach().double().cpu().tolist() for e in (en, er)]
        return discretize_weights(
            rows[0], rows[1], self.config.steps, self.config.multiplier,
            edge_normal=edges[0], edge_reduce=edges[1], max_skip_normal=max_skip_normal,
        )  # fmt: skip

    def new(self) -> SuperNet:
        """An independent copy (same config, weights, alphas, device)."""
        return copy.deepcopy(self)
