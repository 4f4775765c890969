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
    # sweeps of CF-DARTS (--sweep-variant): B (Table 6) and the iterations (Figure 4),
    # each a table in summary.md and a chart sweep-<budget|iterations>.png:
    python -m bench.reproduce --profile fast --budgets 100 500 1000 2500
    python -m bench.reproduce --profile fast --iterations 1 2 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from bench.common import REPO, load_cifar10, machine, write_json
from bench.sweeps import SweepPoint, plot_sweep, sweep_point, sweep_table
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


# The dataset of one seed: CIFAR-10 by default; the tests pass a tiny synthetic problem.
Loader = Callable[[argparse.Namespace, int], DatasetSplits]


def load_cifar(args: argparse.Namespace, seed: int) -> DatasetSplits:
    return load_cifar10(
        args.data, train_images=args.train_images, test_images=args.test_images, seed=seed
    )


@dataclass(frozen=True)
class SeedProblem:
    """One seed's deployed model phi0, its splits (half B as the test split) and failures."""

    checkpoint: Path
    data: DatasetSplits
    failures: ImageDataset
    phi0_seconds: float


def prepare_seed(args: argparse.Namespace, seed: int, out: Path, load: Loader) -> SeedProblem:
    """phi0 trained once per seed (kept in <out>/seed<k>), the test halves, the failures."""
    device = resolve_device(args.device)
    data = load(args, seed)
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
    return SeedProblem(checkpoint, data, failures, phi0_seconds)


def compare_variants(
    args: argparse.Namespace,
    problem: SeedProblem,
    seed: int,
    names: Sequence[str],
    work: Path,
    *,
    budget: int,
    iterations: int = 1,
) -> EvaluationReport:
    """Every variant of `names` (with each search strategy) scored in one report."""
    base = RepairConfig(
        budget=budget, search=args.search[0], seed=seed, profile=args.profile,
        overrides=dict(args.set), failure_name=args.corruption, iterations=iterations,
    )  # fmt: skip
    # Every variant runs with each search strategy; baselines search nothing, so they run once.
    by_name: dict[str, RepairConfig] = {}
    for search in args.search:
        for name in names:
            config = RepairConfig.from_dict(
                {**base.to_dict(), "search": search, **choices.parse_variant(name)}
            )
            by_name.setdefault(config.variant_name, config)
    report, _ = compare(
        load_model(problem.checkpoint), problem.data, problem.failures, list(by_name.values()),
        work_dir=work, device=resolve_device(args.device),
    )  # fmt: skip
    return EvaluationReport(
        report.models, report.failure_corruption,
        {**report.info, "phi0_seconds": problem.phi0_seconds},
    )  # fmt: skip


def run_seed(
    args: argparse.Namespace, seed: int, out: Path, load: Loader = load_cifar
) -> EvaluationReport:
    problem = prepare_seed(args, seed, out, load)
    report = compare_variants(
        args, problem, seed, args.variants, out / f"seed{seed}" / "work", budget=args.budget
    )
    (out / f"seed{seed}" / "report.md").write_text(report.to_markdown(severity=args.severity))
    plot_report(report, out / f"seed{seed}" / "report.png")
    return report


def run_sweep(
    args: argparse.Namespace,
    swept: str,
    values: Sequence[int],
    seed: int,
    out: Path,
    load: Loader = load_cifar,
) -> list[SweepPoint]:
    """The sweep variant at each value of `swept` ("budget" or "iterations"), one seed."""
    problem = prepare_seed(args, seed, out, load)
    folder = out / f"seed{seed}"
    name = args.sweep_variant
    if swept == "iterations":
        # One run of the most iterations: its iteration k continues the search of k - 1 and
        # is scored as its own row, which is what a k-iteration repair ends with.
        report = compare_variants(
            args, problem, seed, [name], folder / "sweep-iterations",
            budget=args.budget, iterations=max(values),
        )  # fmt: skip
        rows = report.info["rows"][report.info["primary"]]
        return [sweep_point(report, rows[v - 1], v, seed) for v in values]
    points = []
    for budget in values:
        report = compare_variants(
            args, problem, seed, [name], folder / f"sweep-budget-{budget}", budget=budget
        )
        row = report.repaired
        assert row is not None, "a compare report names its primary row"
        points.append(sweep_point(report, row, budget, seed))
    return points


def _variant(name: str) -> str:
    try:
        choices.parse_variant(name)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


def main(argv: list[str] | None = None, *, load: Loader = load_cifar) -> None:
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
    parser.add_argument(
        "--budgets", type=int, nargs="+", default=None, metavar="B",
        help="sweep B (Table 6) for --sweep-variant instead of the Table 2 comparison",
    )  # fmt: skip
    parser.add_argument(
        "--iterations", type=int, nargs="+", default=None, choices=range(1, 4), metavar="K",
        help="sweep the iterations (Figure 4) for --sweep-variant, e.g. 1 2 3",
    )  # fmt: skip
    parser.add_argument("--sweep-variant", default="CF-DARTS", type=_variant)
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
    sweeps = {k: v for k, v in (("budget", args.budgets), ("iterations", args.iterations)) if v}
    reports: list[EvaluationReport] = []
    points: dict[str, list[SweepPoint]] = {}
    if sweeps:
        for swept, values in sweeps.items():
            values = sorted(set(values))
            points[swept] = [
                p for seed in args.seeds for p in run_sweep(args, swept, values, seed, out, load)
            ]
    else:
        reports = [run_seed(args, seed, out, load) for seed in args.seeds]
    total = time.perf_counter() - started
    reduced = args.train_images is not None or args.test_images is not None
    header = (
        f"CIFAR-10, {args.corruption} severity {args.severity}, "
        + ("B swept, " if args.budgets else f"B={args.budget}, ")
        + f"profile {args.profile}, seeds {args.seeds}"
        + (
            f", REDUCED: {args.train_images} train / {args.test_images} test images"
            if reduced
            else ""
        )
    )
    if load is not load_cifar:
        header = header.replace("CIFAR-10", "a synthetic problem (not CIFAR-10)")
    sections = []
    for swept, found in points.items():
        title = f"{args.sweep_variant} vs {swept}"
        sections.append(f"### {title}\n\n{sweep_table(found, swept)}")
        plot_sweep(found, swept, out / f"sweep-{swept}.png", title=title)
    if reports:
        sections.append(summary_markdown(reports, args.severity))
    body = "\n\n".join(sections)
    summary = f"{header}\n\n{body}\n\nwall time {total:.0f} s on {machine()}\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(summary)
    write_json(
        out / "results.json",
        {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine(),
         "seconds": total, "reports": [r.to_dict() for r in reports],
         "sweeps": {k: [p.to_dict() for p in v] for k, v in points.items()}},
    )  # fmt: skip
    print(summary)


if __name__ == "__main__":
    main()
