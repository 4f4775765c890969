"""Deployed networks of common architectures, built by name from timm's or torchvision's
registry with random weights (never a download), normalisation inside.

Names come only from the libraries' own registries: an upload chooses among them, it never
names code. An unknown name's error lists the closest valid ones.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from functools import cache
from typing import Any

import torch
from torch import nn

from repair_core.errors import RepairInputError
from repair_core.models.spec import InputSpec
from repair_core.search.normalize import Normalize


@cache
def timm_names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models())


@cache
def torchvision_names() -> tuple[str, ...]:
    import torchvision

    # Classification models only: detection and segmentation have no single classifier.
    return tuple(torchvision.models.list_models(module=torchvision.models))


def check_architecture(family: str, name: str) -> str:
    """`name` if `family`'s registry has it; else an error naming the closest valid names."""
    names = {"timm": timm_names, "torchvision": torchvision_names}[family]()
    if name in names:
        return name
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    hint = f"; close names: {', '.join(close)}" if close else ""
    raise RepairInputError(
        f"architecture {name!r} is not in the {family} registry ({len(names)} names){hint}"
    )


class TimmNet(nn.Module):
    """A timm model; features are `forward_head(forward_features(x), pre_logits=True)`."""

    def __init__(self, name: str, spec: InputSpec, num_classes: int) -> None:
        super().__init__()
        import timm

        self.normalize = Normalize(spec.mean, spec.std)
        self.net = timm.create_model(
            name, pretrained=False, num_classes=num_classes, in_chans=spec.channels
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        net: Any = self.net  # timm models all have forward_features / forward_head
        out = net.forward_head(net.forward_features(self.normalize(x)), pre_logits=True)
        return torch.flatten(out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))  # type: ignore[no-any-return]


class TorchvisionNet(nn.Module):
    """A torchvision classification model; features are the input of its last Linear layer
    (caught by a forward pre-hook). A 1-channel input replaces the first 3-channel conv."""

    def __init__(self, name: str, spec: InputSpec, num_classes: int) -> None:
        super().__init__()
        import torchvision

        self.normalize = Normalize(spec.mean, spec.std)
        self.net = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        if spec.channels != 3:
            _replace_first_conv(self.net, spec.channels)
        linears = [m for m in self.net.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise RepairInputError(f"torchvision {name} has no Linear classifier layer")
        self._head = linears[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        caught: list[torch.Tensor] = []

        def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            caught.append(args[0])

        handle = self._head.register_forward_pre_hook(hook)
        try:
            self.net(self.normalize(x))
        finally:
            handle.remove()
        return torch.flatten(caught[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))  # type: ignore[no-any-return]


def _replace_first_conv(net: nn.Module, channels: int) -> None:
    for parent in net.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                c: Any = child
                # A first convolution over RGB is never grouped (groups 1).
                layer = nn.Conv2d(channels, c.out_channels, c.kernel_size, c.stride, c.padding)
                layer.dilation = c.dilation
                if c.bias is None:
                    layer.bias = None
                setattr(parent, child_name, layer)
                return
    raise RepairInputError("found no 3-channel first convolution to adapt to the input channels")


BUILDERS: dict[str, Callable[[str, InputSpec, int], nn.Module]] = {
    "timm": TimmNet,
    "torchvision": TorchvisionNet,
}


def build_registry_net(
    family: str, name: str, spec: InputSpec, num_classes: int, *, seed: int | None = None
) -> nn.Module:
    """A fresh `family` network `name` for `spec` with `num_classes` outputs, in eval mode.

    `seed` makes the random initial weights reproducible (the caller's RNG is untouched)."""
    check_architecture(family, name)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        try:
            net = BUILDERS[family](name, spec, num_classes)
        except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
            raise RepairInputError(f"{family} {name} cannot be built: {exc}") from None
    return net.eval()
