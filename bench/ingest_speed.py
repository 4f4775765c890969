"""Seconds to ingest the shared CIFAR-10 copy (`train.tar.gz` + `test.tar.gz`, 60,000 JPEGs)
through the guarded readers, in-process or inside the upload sandbox.

    OMP_NUM_THREADS=1 python -m bench.ingest_speed
    OMP_NUM_THREADS=1 python -m bench.ingest_speed --sandbox --memory-gib 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import default_cifar10_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="folder with train/test archives")
    parser.add_argument("--sandbox", action="store_true", help="run ingest_dataset sandboxed")
    parser.add_argument("--memory-gib", type=float, default=4.0, help="sandbox RLIMIT_AS")
    args = parser.parse_args()
    data = args.data or default_cifar10_dir()

    from repair_core.datasets.ingest import ingest_dataset
    from repair_core.datasets.ingest.imagefolder import read_imagefolder
    from repair_core.datasets.ingest.limits import IngestLimits

    limits = IngestLimits()
    start = time.perf_counter()
    if args.sandbox:
        from api.uploads.sandbox import run_sandboxed

        with tempfile.TemporaryDirectory() as scratch:
            summary = run_sandboxed(
                ingest_dataset,
                data,
                Path(scratch) / "canon.npz",
                limits,
                memory_bytes=int(args.memory_gib * 1024**3),
                cpu_seconds=600,
                timeout_seconds=900,
            )
        count = sum(summary.counts.values())
        shape = summary.image_shape
    else:
        splits = read_imagefolder(data, limits).splits
        count = len(splits.train) + len(splits.test)
        shape = splits.image_shape
    seconds = time.perf_counter() - start
    mode = f"sandboxed ingest_dataset, {args.memory_gib:g} GiB" if args.sandbox else "in-process"
    rate = count / seconds
    print(f"{data}: {count} images {shape} in {seconds:.1f} s ({rate:.0f} images/s, {mode})")


if __name__ == "__main__":
    main()
