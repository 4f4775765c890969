"""Time to corrupt the CIFAR-10 test split with all 15 corruptions x 5 severities.

    OMP_NUM_THREADS=2 python -m bench.corruption_speed              # 10,000 test images, CPU
    python -m bench.corruption_speed --n 1000 --device cuda --json bench/results/c.json
    python -m bench.corruption_speed --random --n 1000              # no data needed

Reads `test.tar.gz` (ImageFolder layout of JPEGs) from `shared/data/cifar10`, looked up
beside the repository or above it. Prints seconds per corruption and severity.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bench.common import first_images
from repair_core.corruptions import CORRUPTION_NAMES, SEVERITIES, corrupt_in_chunks
from repair_core.device import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="folder holding test.tar.gz")
    parser.add_argument("--n", type=int, default=10_000, help="number of test images")
    parser.add_argument("--random", action="store_true", help="random uint8 images, no data")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--chunk-size", type=int, default=1000, help="images corrupted at once")
    parser.add_argument("--corruptions", nargs="*", default=list(CORRUPTION_NAMES))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.random:
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (args.n, 3, 32, 32), dtype=torch.uint8, generator=generator)
    else:
        images = first_images("test", args.n, args.data)
    images = images.to(device)
    print(
        f"{len(images)} images {tuple(images.shape[1:])} on {device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"chunk {args.chunk_size}"
    )

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # timings must include the queued GPU work

    corrupt_in_chunks(images[:8], "gaussian_noise", 1, seed=0)  # warm-up (allocator, kernels)
    seconds: dict[str, dict[int, float]] = {}
    # CPU time of this process beside wall time: on a shared machine wall time also counts
    # the time other processes hold the cores.
    cpu_started = time.process_time()
    print(f"{'corruption':18s} " + " ".join(f"{'s' + str(s):>7s}" for s in SEVERITIES) + "   total")
    for name in args.corruptions:
        seconds[name] = {}
        for severity in SEVERITIES:
            sync()
            started = time.perf_counter()
            corrupt_in_chunks(images, name, severity, seed=0, chunk_size=args.chunk_size)
            sync()
            seconds[name][severity] = time.perf_counter() - started
        row = " ".join(f"{seconds[name][s]:7.2f}" for s in SEVERITIES)
        print(f"{name:18s} {row} {sum(seconds[name].values()):7.2f}")
    total = sum(sum(by_sev.values()) for by_sev in seconds.values())
    cpu = time.process_time() - cpu_started
    sets = len(seconds) * len(SEVERITIES)
    print(
        f"total {total:.1f} s wall, {cpu:.1f} s CPU (all threads) for {sets} sets of "
        f"{len(images)} images ({sets * len(images) / total:,.0f} images/s)"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {
            "images": len(images),
            "device": str(device),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "chunk_size": args.chunk_size,
            "seconds": {n: {str(s): v for s, v in by.items()} for n, by in seconds.items()},
            "total_seconds": total,
            "cpu_seconds": cpu,
        }
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
