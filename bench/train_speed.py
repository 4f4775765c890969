"""Images per second of the retraining loop (`repair_core.train.train_model`).

Runs the real loop (on-device augmentation, SGD, grad clip, aux head, drop path) at the
paper's evaluation settings: batch 96, cutout 16, crop padding 4, drop path 0.2, aux 0.4, on
the DARTS_V2 evaluation network (20 cells, 36 channels) or a stand-in ResNet-18. Each
configuration trains `--warmup-epochs` short epochs first (allocator, cuDNN autotuning) and
reports the images/s of the last epoch.

    # CPU, stand-in model, CIFAR-10 images from ../shared:
    OMP_NUM_THREADS=2 python -m bench.train_speed --model resnet18 --data cifar10 --steps 5
    # GPU, DARTS network, fp32 against bf16 + channels_last:
    python -m bench.train_speed --model darts --device cuda --steps 50 --compare
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from bench.common import default_cifar10_dir, first_images
from repair_core.datasets.types import ImageDataset
from repair_core.device import resolve_device
from repair_core.train import TrainSettings, train_model


def _dataset(kind: str, count: int, cifar_dir: Path | None, seed: int) -> tuple[ImageDataset, str]:
    classes = tuple(f"class{i}" for i in range(10))
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (count,), generator=generator)
    if kind == "cifar10":
        folder = cifar_dir or default_cifar10_dir()
        images = first_images("train", count, folder)
        # Labels do not change the speed; random ones avoid depending on archive order.
        return ImageDataset(images, labels, classes), f"cifar10 ({folder})"
    images = torch.randint(0, 256, (count, 3, 32, 32), generator=generator, dtype=torch.uint8)
    return ImageDataset(images, labels, classes), "random uint8"


def _model(kind: str, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    if kind == "darts":
        # Imported here: the DARTS network lives in repair_core.search.
        from repair_core.search.genotype import DARTS_V2
        from repair_core.search.network import EvalNetwork, NetworkConfig

        config = NetworkConfig(
            init_channels=36, layers=20, num_classes=10, auxiliary=True, drop_path_prob=0.2
        )
        model: nn.Module = EvalNetwork(DARTS_V2, config, generator=generator)
        return model
    import torchvision

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        resnet: nn.Module = torchvision.models.resnet18(weights=None, num_classes=10)
    return resnet


@dataclass(frozen=True)
class Figures:
    images_per_second: float  # training images per second in the last (measured) epoch
    epoch_seconds: float  # wall time of that epoch
    wall_seconds: float  # the whole call, warm-up included
    params_millions: float  # parameters without the auxiliary head
    data: str
    device: torch.device


def _measure(args: argparse.Namespace, bf16: bool, channels_last: bool) -> Figures:
    device = resolve_device(args.device)
    count = args.steps * args.batch_size
    data, data_name = _dataset(args.data, count, args.cifar_dir, args.seed)
    model = _model(args.model, args.seed)
    params = sum(p.numel() for n, p in model.named_parameters() if "auxiliary" not in n)
    settings = replace(
        TrainSettings(),  # the paper's evaluation protocol ...
        epochs=args.warmup_epochs + 1,  # ... but only a few short epochs
        batch_size=args.batch_size,
        bf16=bf16,
        channels_last=channels_last,
        report_every_steps=0,
    )
    started = time.perf_counter()
    last = train_model(model, data, settings, device=device).history[-1]
    return Figures(
        images_per_second=last["images_per_second"],
        epoch_seconds=last["seconds"],
        wall_seconds=time.perf_counter() - started,
        params_millions=params / 1e6,
        data=data_name,
        device=device,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["darts", "resnet18"], default="darts")
    parser.add_argument("--data", choices=["random", "cifar10"], default="random")
    parser.add_argument("--cifar-dir", type=Path, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20, help="steps per measured epoch")
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC (CUDA only)")
    parser.add_argument("--compare", action="store_true", help="fp32, then bf16+channels_last")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if torch.cuda.is_available():
        # The steps all have one shape, so let cuDNN pick its fastest kernels once.
        torch.backends.cudnn.benchmark = True
    configs = [(False, False), (True, True)] if args.compare else [(args.bf16, args.channels_last)]
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"cuda {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}"
    )
    for bf16, channels_last in configs:
        figures = _measure(args, bf16, channels_last)
        on_cpu = figures.device.type == "cpu"
        precision = "fp32" if on_cpu or not bf16 else "bf16"
        layout = "channels_last" if channels_last and not on_cpu else "NCHW"
        print(
            f"{args.model} ({figures.params_millions:.2f}M params) on {figures.device}, "
            f"{precision} {layout}, batch {args.batch_size}, {args.steps} steps, "
            f"data {figures.data}: {figures.images_per_second:.1f} images/s "
            f"(epoch {figures.epoch_seconds:.2f} s, wall {figures.wall_seconds:.1f} s)"
        )


if __name__ == "__main__":
    main()
