"""Reproduce the paper's comparison (Table 2) on CIFAR-10: original vs RF/CF-DARTS(E) and AU.

Per seed: train a deployed DARTS network phi0 on the clean training split, split the test
split into two disjoint seeded halves, corrupt half A with one corruption (default Gaussian
noise, severity 5) as the uploaded failures, let the pipeline confirm phi0's failures, then
run every variant (and the Control row: phi0's architecture retrained with another seed, no
failures) on the same data and seed and score all of them in one report on half B (the
held-out failures are those no variant selected). Half B never reaches training: scoring
the E variants on re-corrupted copies of their own training images would flatter them.
Writes JSON, a markdown summary with mean ± std and verdicts vs the Control, and charts.

    # the GPU protocol (one H100, minutes):
    python -m bench.reproduce --profile fast
    # a reduced CPU run, clearly labelled as such in the output:
    python -m bench.reproduce --profile smoke --train-images 4000 --test-images 1000
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench.common import REPO, load_cifar10, machine, write_json
from repair_core import choices
from repair_core.checkpoint import load_model, save_model
from repair_core.corruptions import CORRUPTION_NAMES, corrupt
from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.device import resolve_device
from repair_core.evaluation.aggregate import summary_markdown
from repair_core.evaluation.plot import plot_report
from repair_core.evaluation.report import EvaluationReport
from repair_core.pipeline import RepairConfig, build_plan, compare
from repair_core.pipeline.original import train_original
from repair_core.rng import seeded_permutation

VARIANTS = ("RF-DARTS", "CF-DARTS", "RF-DARTSE", "CF-DARTSE", "AU-DARTS", "Control")


def split_test(data: DatasetSplits, seed: int) -> tuple[ImageDataset, DatasetSplits]:
    """(half A for the failures, the splits with half B as the test split), disjoint."""
    order = seeded_permutation(len(data.test), seed)
    half = len(order) // 2
    source = data.test.subset(order[:half].sort().values)
    evaluation = data.test.subset(order[half:].sort().values)
    return source, DatasetSplits(train=data.train, test=evaluation, val=data.val)


def run_seed(args: argparse.Namespace, seed: int, out: Path) -> EvaluationReport:
    device = resolve_device(args.device)
    data = load_cifar10(
        args.data, train_images=args.train_images, test_images=args.test_images, seed=seed
    )
    # phi0's training reads only the profile's net and train sections: any search will do.
    plan = build_plan(args.profile, dict(args.set), search=args.search[0], seed=seed)
    checkpoint = out / f"seed{seed}" / "phi0.safetensors"
    started = time.perf_counter()
    if not checkpoint.exists():
        phi0_settings = plan.train
        if args.phi0_epochs is not None:
            phi0_settings = replace(phi0_settings, epochs=args.phi0_epochs)
        model = train_original(
            data.train, settings=phi0_settings, init_channels=plan.net.init_channels,
            layers=plan.net.layers, auxiliary=plan.net.auxiliary, device=device,
        )  # fmt: skip
        save_model(checkpoint, model, class_names=data.class_names)
    phi0_seconds = time.perf_counter() - started
    source, data = split_test(data, seed)
    corrupted = corrupt(source.images, args.corruption, args.severity, seed=seed)
    failures = ImageDataset(corrupted, source.labels.clone(), data.class_names)
    base = RepairConfig(
        budget=args.budget, search=args.search[0], seed=seed, profile=args.profile,
        overrides=dict(args.set), failure_name=args.corruption,
    )  # fmt: skip
    # Every variant runs with each search strategy; baselines search nothing, so they run once.
    by_name: dict[str, RepairConfig] = {}
    for search in args.search:
        for name in args.variants:
            config = RepairConfig.from_dict(
                {**base.to_dict(), "search": search, **choices.parse_variant(name)}
            )
            by_name.setdefault(config.variant_name, config)
    configs = list(by_name.values())
    report, _ = compare(
        load_model(checkpoint), data, failures, configs,
        work_dir=out / f"seed{seed}" / "work", device=device,
    )  # fmt: skip
    report = EvaluationReport(
        report.models, report.failure_corruption, {**report.info, "phi0_seconds": phi0_seconds}
    )
    (out / f"seed{seed}" / "report.md").write_text(report.to_markdown(severity=args.severity))
    plot_report(report, out / f"seed{seed}" / "report.png")
    return report


def _variant(name: str) -> str:
    try:
        choices.parse_variant(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="CIFAR-10 folder")
    parser.add_argument(
        "--profile", default=choices.DEFAULT_PROFILE, choices=choices.PROFILE_CHOICES
    )
    parser.add_argument("--corruption", default="gaussian_noise", choices=CORRUPTION_NAMES)
    parser.add_argument("--severity", type=int, default=5, choices=range(1, 6))
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument(
        "--search",
        nargs="+",
        default=[choices.DEFAULT_SEARCH],
        choices=choices.SEARCH_CHOICES,
        help="search strategies: every variant runs with each (e.g. CF-DARTS, CF-PCDARTS)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), type=_variant,
        help="variant names, e.g. CF-DARTSE Control (the first is the primary)",
    )  # fmt: skip
    parser.add_argument("--train-images", type=int, default=None, help="subsample (CPU runs)")
    parser.add_argument("--test-images", type=int, default=None, help="subsample (CPU runs)")
    parser.add_argument("--phi0-epochs", type=int, default=None, help="default: profile's")
    parser.add_argument(
        "--set", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
        help="profile override, e.g. --set train.epochs 30",
    )  # fmt: skip
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.backends.cudnn.benchmark = True
    out = args.out or REPO / "bench/results" / f"reproduce-{time.strftime('%Y%m%d-%H%M%S')}"
    started = time.perf_counter()
    reports = [run_seed(args, seed, out) for seed in args.seeds]
    total = time.perf_counter() - started
    reduced = args.train_images is not None or args.test_images is not None
    header = (
        f"CIFAR-10, {args.corruption} severity {args.severity}, B={args.budget}, "
        f"profile {args.profile}, seeds {args.seeds}"
        + (
            f", REDUCED: {args.train_images} train / {args.test_images} test images"
            if reduced
            else ""
        )
    )
    table = summary_markdown(reports, args.severity)
    summary = f"{header}\n\n{table}\n\nwall time {total:.0f} s on {machine()}\n"
    (out / "summary.md").write_text(summary)
    write_json(
        out / "results.json",
        {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine(),
         "seconds": total, "reports": [r.to_dict() for r in reports]},
    )  # fmt: skip
    print(summary)


if __name__ == "__main__":
    main()
