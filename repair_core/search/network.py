"""The evaluation network: a stack of cells built from a `Genotype`, trained from scratch.

Layout and parameter names follow the reference DARTS `NetworkCIFAR`, so the DARTS V2
genotype at 20 cells / 36 channels counts 3.349M parameters (auxiliary head excluded),
and state dicts trained with the reference code load here.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from repair_core.errors import RepairInputError
from repair_core.search.config_checks import check_int
from repair_core.search.genotype import Genotype
from repair_core.search.normalize import CIFAR10_MEAN, CIFAR10_STD, Normalize, check_normalization
from repair_core.search.ops import OPS, FactorizedReduce, Identity, ReLUConvBN, drop_path
from repair_core.search.weight_init import init_weights_


@dataclass(frozen=True)
class NetworkConfig:
    init_channels: int = 36  # channels of the first cells; doubled at each reduction
    layers: int = 20  # cells; reduction cells at layers // 3 and 2 * layers // 3
    num_classes: int = 10
    in_channels: int = 3  # 1 for grayscale
    image_size: int = 32  # pixels: the height (and the width unless image_width is set)
    auxiliary: bool = False  # auxiliary classifier after the second reduction cell
    drop_path_prob: float = 0.0  # the maximum; the trainer ramps `model.drop_path_prob` to it
    mean: tuple[float, ...] = CIFAR10_MEAN  # input normalisation, per channel (or one value)
    std: tuple[float, ...] = CIFAR10_STD
    stem_multiplier: int = 3  # stem width = stem_multiplier * init_channels
    image_width: int | None = None  # pixels, for non-square inputs; None: image_size

    def __post_init__(self) -> None:
        check_int("NetworkConfig", "init_channels", self.init_channels, 2, 1024)
        check_int("NetworkConfig", "layers", self.layers, 1, 100)
        check_int("NetworkConfig", "num_classes", self.num_classes, 1, 100_000)
        check_int("NetworkConfig", "in_channels", self.in_channels, 1, 64)
        check_int("NetworkConfig", "image_size", self.image_size, 1, 4096)
        check_int("NetworkConfig", "stem_multiplier", self.stem_multiplier, 1, 16)
        if self.image_width is not None:
            check_int("NetworkConfig", "image_width", self.image_width, 1, 4096)
        if not isinstance(self.auxiliary, bool):
            raise RepairInputError(
                f"NetworkConfig.auxiliary must be a bool, got {self.auxiliary!r}"
            )
        p = self.drop_path_prob
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p < 1.0:
            raise RepairInputError(f"NetworkConfig.drop_path_prob must be in [0, 1), got {p!r}")
        mean, std = check_normalization(self.mean, self.std, self.in_channels)
        object.__setattr__(self, "drop_path_prob", float(p))
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def width(self) -> int:
        """Input width in pixels."""
        return self.image_size if self.image_width is None else self.image_width

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        if values["image_width"] is None:  # square: the same dict as before widths existed
            del values["image_width"]
        return values

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        if not isinstance(data, dict):
            raise RepairInputError("network config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RepairInputError(f"network config has unknown keys {unknown}")
        values = dict(data)
        for key in ("mean", "std"):
            if key in values:
                if not isinstance(values[key], list | tuple):
                    raise RepairInputError(f"network config {key} must be a list of numbers")
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except TypeError as exc:  # e.g. a string where a number belongs
            raise RepairInputError(f"invalid network config: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> NetworkConfig:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise RepairInputError(f"network config is not valid JSON: {exc}") from None
        return cls.from_dict(data)


class EvalCell(nn.Module):
    def __init__(
        self,
        genotype: Genotype,
        c_prev_prev: int,
        c_prev: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0: nn.Module = (
            FactorizedReduce(c_prev_prev, c)
            if reduction_prev
            else ReLUConvBN(c_prev_prev, c, 1, 1, 0, True)
        )
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0, True)
        edges = genotype.reduce if reduction else genotype.normal
        self._concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self._indices = tuple(index for _, index in edges)
        self._steps = len(edges) // 2
        self.multiplier = len(self._concat)
        self._ops = nn.ModuleList(
            OPS[name](c, 2 if reduction and index < 2 else 1, True) for name, index in edges
        )

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        drop_prob: float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self._steps):
            total: torch.Tensor | None = None
            for k in (2 * i, 2 * i + 1):
                op = self._ops[k]
                h = op(states[self._indices[k]])
                if not isinstance(op, Identity):  # identity edges are never dropped
                    h = drop_path(h, drop_prob, self.training, generator)
                total = h if total is None else total + h
            assert total is not None
            states.append(total)
        return torch.cat([states[i] for i in self._concat], dim=1)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier on the second reduction cell's output (`spatial` pixels a side).

    The reference pools 8x8 with a 5x5/3 window to 2x2; other sizes use adaptive pooling
    to the same 2x2, so the parameter count does not depend on the image size.
    """

    def __init__(self, c: int, num_classes: int, spatial: int) -> None:
        super().__init__()
        pool: nn.Module = (
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False)
            if spatial >= 5 and (spatial - 5) // 3 + 1 == 2
            else nn.AdaptiveAvgPool2d(2)
        )
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),  # the reference's inplace ReLU here mutates the trunk
            pool,
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))  # type: ignore[no-any-return]


class EvalNetwork(nn.Module):
    """`generator` (a CPU generator) seeds the initial weights; None uses torch's default.
    Set `drop_path_generator` (on the model's device) for reproducible drop path."""

    def __init__(
        self, genotype: Genotype, config: NetworkConfig, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.genotype = genotype
        self.config = config
        self.drop_path_prob = config.drop_path_prob
        self.drop_path_generator: torch.Generator | None = None
        self.normalize = Normalize(config.mean, config.std)
        c_curr = config.stem_multiplier * config.init_channels
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, c_curr, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_curr),
        )
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, config.init_channels
        reductions = (config.layers // 3, 2 * config.layers // 3)
        self._aux_index = 2 * config.layers // 3
        self.cells = nn.ModuleList()
        # The auxiliary head's pooling is sized for square maps; a non-square input gets
        # its adaptive pooling (spatial 0).
        reduction_prev, aux_spatial, c_aux = False, 1, c_prev
        spatial = config.image_size if config.width == config.image_size else 0
        for i in range(config.layers):
            reduction = i in reductions
            if reduction:
                c_curr *= 2
                spatial = math.ceil(spatial / 2)
            cell = EvalCell(genotype, c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
            reduction_prev = reduction
            self.cells.append(cell)
            c_prev_prev, c_prev = c_prev, cell.multiplier * c_curr
            if i == self._aux_index:
                c_aux, aux_spatial = c_prev, spatial
        self.auxiliary_head = (
            AuxiliaryHead(c_aux, config.num_classes, aux_spatial) if config.auxiliary else None
        )
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, config.num_classes)
        self.feature_dim = c_prev
        if generator is not None:
            init_weights_(self, generator)

    def _trunk(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        s0 = s1 = self.stem(self.normalize(x))
        aux: torch.Tensor | None = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob, self.drop_path_generator)
            if with_aux and i == self._aux_index and self.auxiliary_head is not None:
                aux = self.auxiliary_head(s1)
        return torch.flatten(self.global_pooling(s1), 1), aux

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, feature_dim): the classifier's input."""
        return self._trunk(x, with_aux=False)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # type: ignore[no-any-return]

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and, in training mode with an auxiliary head, the auxiliary logits."""
        feats, aux = self._trunk(x, with_aux=self.training)
        return self.classifier(feats), aux
