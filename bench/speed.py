"""Throughput of every repair stage on the current device: our eager fp32 step vs the fast path.

Stages: selection (K-center greedy over random features), first-order search step (8 cells,
16 ch, batch 64), retraining step (DARTS V2, 20 cells, 36 ch, aux, batch 96) and evaluation
(forward passes of the same network). The fast path (`repair_core.train.fastpath`) is, on a
CPU, torch.compile (inductor); on CUDA, the whole step as one CUDA graph + bf16 autocast +
channels_last + fused SGD. `--accuracy` adds a short same-seed training run on both paths.

    python -m bench.speed                                  # whatever device is here
    python -m bench.speed --steps 2 --warmup 1 --reduced   # a quick CPU run, small networks
    python -m bench.speed --only search retrain --accuracy --json out.json
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench.common import machine, write_json
from bench.search_speed import time_retrain_step, time_search_step
from repair_core.datasets.digits import load_digits_splits
from repair_core.device import resolve_device
from repair_core.precision import autocast, to_channels_last
from repair_core.search.genotype import DARTS_V2
from repair_core.search.network import EvalNetwork, NetworkConfig
from repair_core.search.supernet import SearchConfig
from repair_core.selection.kcenter import k_center_greedy
from repair_core.train import TrainSettings, train_model
from repair_core.train.fastpath import EAGER, FastSwitches

# mode name -> (bf16, channels_last, switches). "eager" is our step as the jobs run it today.
Mode = tuple[str, bool, bool, FastSwitches]
CPU_MODES: list[Mode] = [
    ("eager fp32", False, False, EAGER),
    ("compile", False, False, FastSwitches(compile=True)),
]
CUDA_MODES: list[Mode] = [
    ("eager fp32", False, False, EAGER),
    ("graph+bf16+cl+fused", True, True, FastSwitches(cuda_graph=True, fused_optimizer=True)),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_selection(
    device: torch.device, *, failures: int, train: int, dim: int, budget: int
) -> float:
    g = torch.Generator().manual_seed(0)
    f = torch.randn(failures, dim, generator=g).to(device)
    t = torch.randn(train, dim, generator=g).to(device)
    _sync(device)
    start = time.perf_counter()
    k_center_greedy(f, t, budget)
    _sync(device)
    return time.perf_counter() - start


def time_evaluation(
    device: torch.device, *, batch: int, bf16: bool, channels_last: bool, warmup: int, steps: int
) -> float:
    g = torch.Generator().manual_seed(0)
    model = EvalNetwork(DARTS_V2, NetworkConfig(), generator=g).to(device).eval()
    x = torch.rand(batch, 3, 32, 32, generator=g).to(device)
    if channels_last:
        to_channels_last(model)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        for _ in range(warmup):
            with autocast(device, bf16):
                model(x)
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            with autocast(device, bf16):
                model(x)
        _sync(device)
    return (time.perf_counter() - start) / steps


def accuracy_check(device: torch.device, switches: FastSwitches, epochs: int) -> dict[str, float]:
    """A short same-seed retraining of a small network on sklearn digits; the fast path must
    land where eager does (loss and accuracy), or it is not a fast path."""
    data = load_digits_splits(seed=0)
    settings = TrainSettings(
        epochs=epochs, batch_size=64, drop_path_prob=0.0, report_every_steps=0,
        compile=switches.compile, cuda_graph=switches.cuda_graph,
        fused_optimizer=switches.fused_optimizer,
    )  # fmt: skip
    config = NetworkConfig(
        init_channels=8, layers=3, num_classes=len(data.train.class_names),
        in_channels=data.train.image_shape[0], image_size=data.train.image_shape[1],
    )  # fmt: skip
    model = EvalNetwork(DARTS_V2, config, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    result = train_model(model, data.train, settings, device=device, eval_set=data.test)
    last = result.history[-1]
    return {"loss": last["loss"], "train_acc": last["train_acc"],
            "eval_acc": last["eval_acc"], "seconds": time.perf_counter() - start}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (compile/capture)")
    parser.add_argument(
        "--reduced",
        action="store_true",
        help="small networks (search 5 cells 8 ch, retrain 8 cells 16 ch)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["selection", "search", "retrain", "eval"],
        default=["selection", "search", "retrain", "eval"],
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["eager", "fast"],
        default=["eager", "fast"],
        help="eager: our fp32 step as jobs run it; fast: this device's fast path",
    )
    parser.add_argument(
        "--accuracy",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="also train a small network this many epochs on both paths",
    )
    parser.add_argument("--selection", type=int, nargs=4, default=[30_000, 50_000, 512, 1000],
                        metavar=("FAILURES", "TRAIN", "DIM", "B"))  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = True
    info = machine()
    load = os.getloadavg()
    info["load_average"] = list(load)
    print(
        f"device: {info['gpu'] or info['cpu']}; torch {info['torch']}; "
        f"threads {info['threads']}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    eager_mode, fast_mode = CUDA_MODES if device.type == "cuda" else CPU_MODES
    modes = [m for m, name in ((eager_mode, "eager"), (fast_mode, "fast")) if name in args.modes]
    search_config = SearchConfig(init_channels=8, layers=5) if args.reduced else None
    net = NetworkConfig(auxiliary=True, drop_path_prob=0.2)
    if args.reduced:
        net = replace(net, init_channels=16, layers=8)
    rows: list[dict[str, object]] = []
    eager: dict[str, float] = {}
    print(f"{'stage':<40}{'mode':<22}{'s/step':>10}{'img/s':>12}{'vs eager':>9}", flush=True)

    def record(stage: str, mode: str, seconds: float, items: int) -> None:
        # Printed as measured: a slow compile must not hide the figures already taken.
        speed = items / seconds
        if mode == "eager fp32":
            eager[stage] = speed
        ratio = speed / eager[stage] if stage in eager else float("nan")
        rows.append({"stage": stage, "mode": mode, "seconds": seconds,
                     "images_per_second": speed, "ratio": ratio})  # fmt: skip
        print(f"{stage:<40}{mode:<22}{seconds:>10.4f}{speed:>12.1f}{ratio:>8.2f}x", flush=True)

    if "selection" in args.only:
        n_fail, n_train, dim, budget = args.selection
        seconds = time_selection(device, failures=n_fail, train=n_train, dim=dim, budget=budget)
        record(f"selection {n_fail}x{n_train}x{dim}, B={budget}", "eager fp32", seconds, n_fail)
    common = {"warmup": args.warmup, "steps": args.steps}
    size = " (reduced)" if args.reduced else ""
    for mode, bf16, cl, fast in modes:
        if "search" in args.only:
            s = time_search_step("first", device, batch=64, size=32, bf16=bf16, channels_last=cl,
                                 fast=fast, config=search_config, **common)  # fmt: skip
            record(f"search step, 1st order, b64{size}", mode, s, 64)
        if "retrain" in args.only:
            s = time_retrain_step(device, batch=96, size=32, bf16=bf16, channels_last=cl,
                                  fast=fast, net=net, **common)  # fmt: skip
            record(f"retraining step, b96{size}", mode, s, 96)
        if "eval" in args.only and not fast.compile:
            s = time_evaluation(device, batch=256, bf16=bf16, channels_last=cl, **common)
            record("evaluation forward, batch 256", mode, s, 256)
    checks: dict[str, dict[str, float]] = {}
    if args.accuracy:
        print(f"same-seed retraining, digits, {args.accuracy} epochs:")
        for mode, _, _, fast in modes:
            checks[mode] = accuracy_check(device, fast, args.accuracy)
            c = checks[mode]
            print(
                f"  {mode:<22} loss {c['loss']:.4f}  train acc {c['train_acc']:.4f}  "
                f"eval acc {c['eval_acc']:.4f}  {c['seconds']:.1f} s",
                flush=True,
            )
    info["load_average_end"] = list(os.getloadavg())
    if args.json:
        write_json(args.json, {"machine": info, "rows": rows, "accuracy": checks})


if __name__ == "__main__":
    main()
