"""Throughput of every repair stage on the current device: fp32 eager vs the fast path.

Stages: selection (K-center greedy over random features), first-order search step (8 cells,
16 ch, batch 64), retraining step (DARTS V2, 20 cells, 36 ch, aux, batch 96) and evaluation
(forward passes of the same network). On CUDA the fast path is bf16 autocast +
channels_last; on a CPU there is none, so only fp32 is measured.

    python -m bench.speed                       # whatever device is here
    python -m bench.speed --steps 2 --warmup 1  # a quick CPU run
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench.common import machine, write_json
from bench.search_speed import time_retrain_step, time_search_step
from repair_core.device import resolve_device
from repair_core.precision import autocast, to_channels_last
from repair_core.search.genotype import DARTS_V2
from repair_core.search.network import EvalNetwork, NetworkConfig
from repair_core.selection.kcenter import k_center_greedy


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--selection", type=int, nargs=4, default=[30_000, 50_000, 512, 1000],
                        metavar=("FAILURES", "TRAIN", "DIM", "B"))  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = True
    info = machine()
    print(f"device: {info['gpu'] or info['cpu']}; torch {info['torch']}; threads {info['threads']}")
    modes = [("fp32", False, False)]
    if device.type == "cuda":
        modes.append(("bf16+channels_last", True, True))
    n_fail, n_train, dim, budget = args.selection
    rows: list[dict[str, object]] = []
    seconds = time_selection(device, failures=n_fail, train=n_train, dim=dim, budget=budget)
    rows.append({"stage": f"selection {n_fail}x{n_train}x{dim}, B={budget}", "mode": "fp32",
                 "seconds": seconds, "images_per_second": n_fail / seconds})  # fmt: skip
    common = {"warmup": args.warmup, "steps": args.steps}
    for mode, bf16, cl in modes:
        s = time_search_step("first", device, batch=64, size=32, bf16=bf16, channels_last=cl,
                             **common)  # fmt: skip
        rows.append({"stage": "search step, 1st order, batch 64", "mode": mode, "seconds": s,
                     "images_per_second": 64 / s})  # fmt: skip
        s = time_retrain_step(device, batch=96, size=32, bf16=bf16, channels_last=cl, **common)
        rows.append({"stage": "retraining step, batch 96", "mode": mode, "seconds": s,
                     "images_per_second": 96 / s})  # fmt: skip
        s = time_evaluation(device, batch=256, bf16=bf16, channels_last=cl, **common)
        rows.append({"stage": "evaluation forward, batch 256", "mode": mode, "seconds": s,
                     "images_per_second": 256 / s})  # fmt: skip
    print(f"{'stage':<40}{'mode':<22}{'s/step':>10}{'img/s':>12}{'vs fp32':>9}")
    fp32 = {r["stage"]: r["images_per_second"] for r in rows if r["mode"] == "fp32"}
    for r in rows:
        ratio = float(r["images_per_second"]) / float(fp32[r["stage"]])  # type: ignore[arg-type]
        print(f"{r['stage']:<40}{r['mode']:<22}{r['seconds']:>10.4f}"
              f"{r['images_per_second']:>12.1f}{ratio:>8.2f}x")  # fmt: skip
    if args.json:
        write_json(args.json, {"machine": info, "rows": rows})


if __name__ == "__main__":
    main()
