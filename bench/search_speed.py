"""Seconds per search step (first and second order) and per retraining step.

Paper settings: search supernet 8 cells, 16 channels, batch 64; evaluation network
(DARTS V2 genotype) 20 cells, 36 channels, batch 96, auxiliary head, drop path 0.2.
Random 32x32 inputs. On CUDA it also times bf16 autocast + channels_last.

    OMP_NUM_THREADS=1 python -m bench.search_speed --steps 2 --warmup 1
    python -m bench.search_speed --device cuda --steps 20 --warmup 3 --json out.json

`--search pcdarts robdarts ...` instead times each strategy at its `paper` plan (its
batch, K, order, drop path): a search step (PC-DARTS also its weights-only warm-up
step) and, for RobustDARTS, one Hessian-vector product of the eigenvalue (times
`power_iters` for a whole eigenvalue) and, for DARTS-PT, one op decision of its selection
(seven removal scores on `--eval-batches` val batches, extrapolated to a decision point of
both cells scored on the 25,000 CIFAR-10 val images of the DARTS split, as the reference
scores). Each strategy runs in a child process, so its peak memory (CPU: max RSS; CUDA: max
allocated) is its own. The load average and thread settings are printed with the figures:
CPU timings on a shared machine mean little without them.

Prints a table; writes nothing unless --json is given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from repair_core.choices import SEARCH_CHOICES
from repair_core.device import resolve_device
from repair_core.precision import autocast, to_channels_last
from repair_core.profiles import build_plan
from repair_core.search.genotype import DARTS_V2
from repair_core.search.hessian import dominant_eigenvalue
from repair_core.search.network import EvalNetwork, NetworkConfig
from repair_core.search.ops import PRIMITIVES
from repair_core.search.perturbation import choose_op
from repair_core.search.step import Order, search_step
from repair_core.search.supernet import SearchConfig, SuperNet
from repair_core.train.fastpath import (
    EAGER,
    CompiledCall,
    CudaGraphStep,
    FastSwitches,
    compile_forward,
    make_sgd,
)


def _batch(
    n: int, size: int, classes: int, device: torch.device, channels_last: bool, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, 3, size, size, generator=g).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, classes, (n,), generator=g).to(device)


def _time(step: Callable[[], object], device: torch.device, warmup: int, steps: int) -> float:
    """Mean seconds per call after `warmup` untimed calls; syncs only around the timed loop."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def time_search_step(
    order: Order, device: torch.device, *, batch: int, size: int, bf16: bool, channels_last: bool,
    warmup: int, steps: int, fast: FastSwitches = EAGER, config: SearchConfig | None = None,
) -> float:  # fmt: skip
    g = torch.Generator().manual_seed(0)
    model = SuperNet(config or SearchConfig(), generator=g).to(device)
    if channels_last:
        to_channels_last(model)
    compile_forward(model, enabled=fast.compile, what="search forward")
    w_opt = make_sgd(model.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4,
                     fused=fast.fused_optimizer, device=device)  # fmt: skip
    # A captured Adam must keep its step count on the device (`capturable`).
    a_opt = torch.optim.Adam(
        model.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3,
        capturable=fast.cuda_graph and device.type == "cuda",
    )  # fmt: skip
    train = _batch(batch, size, 10, device, channels_last, g)
    val = _batch(batch, size, 10, device, channels_last, g)

    def one(xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor) -> object:
        return search_step(
            model, w_opt, a_opt, (xt, yt), (xv, yv), order=order, grad_clip=5.0, bf16=bf16
        )

    graphed = CudaGraphStep(one, enabled=fast.cuda_graph, device=device, what="search step",
                            owners=[model, w_opt, a_opt])  # fmt: skip
    return _time(lambda: graphed(*train, *val), device, warmup, steps)


# Validation images DARTS-PT scores every removal on at CIFAR-10 (half of the training set).
PAPER_VAL_IMAGES = 25_000


def measure_strategy(
    search: str, device: torch.device, *, size: int, warmup: int, steps: int, power_iters: int,
    eval_batches: int = 1,
) -> dict[str, object]:  # fmt: skip
    """Seconds per search step (and per warm-up step, per HVP, per decision) at the paper
    plan."""
    plan = build_plan("paper", {}, search=search, seed=0)
    s, net = plan.search, plan.search_net
    config = SearchConfig(
        init_channels=net.init_channels, layers=net.layers, steps=net.steps,
        multiplier=net.multiplier, partial_channels=net.partial_channels,
        edge_normalization=net.edge_normalization,
    )  # fmt: skip
    g = torch.Generator().manual_seed(0)
    model = SuperNet(config, generator=g).to(device)
    w_opt = torch.optim.SGD(
        model.weight_parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay
    )
    a_opt = torch.optim.Adam(
        model.arch_parameters(), lr=s.arch_lr, betas=s.arch_betas, weight_decay=s.arch_weight_decay
    )
    if s.drop_path_prob > 0:
        model.drop_path_prob = s.drop_path_prob  # the last epoch's, the largest
        model.drop_generator = torch.Generator(device=device).manual_seed(1)
    train = _batch(s.batch_size, size, 10, device, False, g)
    val = _batch(s.batch_size, size, 10, device, False, g)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out: dict[str, object] = {
        "search": search, "batch": s.batch_size, "partial_channels": net.partial_channels,
        "order": s.order, "drop_path_prob": s.drop_path_prob,
    }  # fmt: skip
    out["step_seconds"] = _time(
        lambda: search_step(model, w_opt, a_opt, train, val, order=s.order, grad_clip=5.0),
        device, warmup, steps,
    )  # fmt: skip
    if s.warmup_epochs:
        out["warmup_step_seconds"] = _time(
            lambda: search_step(
                model, w_opt, a_opt, train, val, order=s.order, grad_clip=5.0, arch_step=False
            ),
            device, warmup, steps,
        )  # fmt: skip
    if s.hessian_every:
        # One eigenvalue costs a gradient with graph plus `power_iters` HVPs; time the
        # whole call at a few iterations and report per HVP (tol 0: no early exit).
        def eigen() -> float:
            gen = torch.Generator().manual_seed(0)
            return dominant_eigenvalue(model, *val, iters=power_iters, generator=gen, tol=0.0)

        seconds = _time(eigen, device, 0, 1)
        out["eigen_seconds"] = seconds
        out["eigen_iters"] = power_iters
        out["eigen_seconds_paper"] = seconds / power_iters * s.power_iters
    if s.projection:
        out.update(_time_decision(model, val, device, eval_batches, s.batch_size))
    if device.type == "cuda":
        out["peak_bytes"] = torch.cuda.max_memory_allocated(device)
    else:
        out["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["load_after"] = os.getloadavg()[0]
    return out


def _time_decision(
    model: SuperNet,
    val: tuple[torch.Tensor, torch.Tensor],
    device: torch.device,
    eval_batches: int,
    batch: int,
) -> dict[str, object]:
    """One DARTS-PT op decision (one edge, one cell) on `eval_batches` copies of a val batch,
    and what a decision point (both cells) costs when every paper val image is scored."""
    candidates = [k for k in range(len(PRIMITIVES)) if PRIMITIVES[k] != "none"]
    batches = [val] * eval_batches
    seconds = _time(
        lambda: choose_op(model, batches, reduction=False, row=0, candidates=candidates),
        device, 0, 1,
    )  # fmt: skip
    per_batch = seconds / (len(candidates) * eval_batches)
    point = per_batch * len(candidates) * 2 * math.ceil(PAPER_VAL_IMAGES / batch)
    return {
        "decision_seconds": seconds,
        "decision_eval_batches": eval_batches,
        "decision_point_seconds_paper": point,
    }


def _strategies(args: argparse.Namespace) -> list[dict[str, object]]:
    results = []
    print(f"{'strategy':<14}{'batch':>6}{'K':>3}{'order':>7}{'s/step':>10}{'warm-up':>9}"
          f"{'λ s (paper)':>13}{'PT point s (paper)':>20}{'peak GiB':>10}{'load':>6}")  # fmt: skip
    for search in args.search:
        cmd = [sys.executable, "-m", "bench.search_speed", "--child", search,
               "--device", args.device, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--image-size", str(args.image_size),
               "--power-iters", str(args.power_iters),
               "--eval-batches", str(args.eval_batches)]  # fmt: skip
        line = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        r = json.loads(line.strip().splitlines()[-1])
        results.append(r)
        warm = r.get("warmup_step_seconds")
        eig = r.get("eigen_seconds_paper")
        point = r.get("decision_point_seconds_paper")
        print(
            f"{search:<14}{r['batch']:>6}{r['partial_channels']:>3}{r['order']:>7}"
            f"{r['step_seconds']:>10.2f}{'—' if warm is None else f'{warm:.2f}':>9}"
            f"{'—' if eig is None else f'{eig:.1f}':>13}"
            f"{'—' if point is None else f'{point:.0f}':>20}"
            f"{int(r['peak_bytes']) / 2**30:>10.2f}{r['load_after']:>6.1f}",
            flush=True,
        )
    return results


def _machine() -> str:
    """Load average, cores and thread settings: the context of every CPU figure."""
    one, five, fifteen = os.getloadavg()
    return (
        f"load average {one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} cores; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"torch threads {torch.get_num_threads()}"
    )


def time_retrain_step(
    device: torch.device, *, batch: int, size: int, bf16: bool, channels_last: bool,
    warmup: int, steps: int, fast: FastSwitches = EAGER, net: NetworkConfig | None = None,
) -> float:  # fmt: skip
    g = torch.Generator().manual_seed(0)
    config = net or NetworkConfig(image_size=size, auxiliary=True, drop_path_prob=0.2)
    model = EvalNetwork(DARTS_V2, config, generator=g).to(device).train()
    if channels_last:
        to_channels_last(model)
    opt = make_sgd(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4,
                   fused=fast.fused_optimizer, device=device)  # fmt: skip
    x, y = _batch(batch, size, 10, device, channels_last, g)

    def loss_of(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(device, bf16):
            logits, aux = model.forward_with_aux(x)
            loss = F.cross_entropy(logits, y)
            if aux is not None:
                loss = loss + 0.4 * F.cross_entropy(aux, y)
        return loss

    compiled = CompiledCall(loss_of, enabled=fast.compile, what="retraining loss")

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss: torch.Tensor = compiled(x, y)
        torch.autograd.backward(loss)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return loss.detach()

    graphed = CudaGraphStep(step, enabled=fast.cuda_graph, device=device, what="retrain step",
                            owners=[model, opt])  # fmt: skip
    return _time(lambda: graphed(x, y), device, warmup, steps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--search-batch", type=int, default=64)
    parser.add_argument("--eval-batch", type=int, default=96)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--skip", nargs="*", default=[], choices=["first", "second", "retrain"])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--search", nargs="+", choices=SEARCH_CHOICES, help="time these strategies' paper plans"
    )
    parser.add_argument("--power-iters", type=int, default=2, help="HVPs timed per eigenvalue")
    parser.add_argument(
        "--eval-batches", type=int, default=1, help="val batches per DARTS-PT removal score"
    )
    parser.add_argument("--child", choices=SEARCH_CHOICES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    if args.child:
        r = measure_strategy(
            args.child, device, size=args.image_size, warmup=args.warmup, steps=args.steps,
            power_iters=args.power_iters, eval_batches=args.eval_batches,
        )  # fmt: skip
        print(json.dumps(r))
        return
    if args.search:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        machine = _machine()
        print(f"device: {name}; torch {torch.__version__}; {machine}")
        strategies = _strategies(args)
        machine_after = _machine()
        print(f"after: {machine_after}")
        if args.json:
            args.json.write_text(json.dumps(
                {"device": name, "before": machine, "after": machine_after,
                 "image_size": args.image_size, "strategies": strategies}, indent=2,
            ))  # fmt: skip
        return
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    modes = [("fp32", False, False)]
    if device.type == "cuda":
        modes.append(("bf16+channels_last", True, True))
    supernet = SuperNet(SearchConfig())
    evalnet = EvalNetwork(DARTS_V2, NetworkConfig(auxiliary=True))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    print(
        f"search supernet (8 cells, 16 ch): {sum(p.numel() for p in supernet.weight_parameters())}"
        f" weights + {sum(a.numel() for a in supernet.arch_parameters())} alphas"
    )
    evalnet_params = sum(p.numel() for n, p in evalnet.named_parameters() if "auxiliary" not in n)
    print(f"eval network (DARTS V2, 20 cells, 36 ch): {evalnet_params} parameters without aux")
    print(f"{'measurement':<36}{'mode':<22}{'s/step':>10}")
    results: list[dict[str, object]] = []
    for mode, bf16, channels_last in modes:
        orders: tuple[Order, ...] = ("first", "second")
        for order in orders:
            if order in args.skip:
                continue
            seconds = time_search_step(
                order, device, batch=args.search_batch, size=args.image_size, bf16=bf16,
                channels_last=channels_last, warmup=args.warmup, steps=args.steps,
            )  # fmt: skip
            label = f"search step, {order} order (b{args.search_batch})"
            results.append({"measurement": label, "mode": mode, "seconds": seconds})
            print(f"{label:<36}{mode:<22}{seconds:>10.3f}")
        if "retrain" not in args.skip:
            seconds = time_retrain_step(
                device, batch=args.eval_batch, size=args.image_size, bf16=bf16,
                channels_last=channels_last, warmup=args.warmup, steps=args.steps,
            )  # fmt: skip
            label = f"retrain step (b{args.eval_batch}, aux)"
            results.append({"measurement": label, "mode": mode, "seconds": seconds})
            print(f"{label:<36}{mode:<22}{seconds:>10.3f}")
    if args.json:
        args.json.write_text(json.dumps({"device": name, "results": results}, indent=2))


if __name__ == "__main__":
    main()
