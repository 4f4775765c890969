"""run_sandboxed: results and input errors come back; bombs and hangs become SandboxError."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from api.uploads.sandbox import SandboxError, run_sandboxed
from repair_core.errors import LimitExceededError, RepairInputError
from tests.api.uploads import sandbox_targets as targets

pytestmark = pytest.mark.integration
T = TypeVar("T")

GiB = 1024**3


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return run_sandboxed(
        fn, *args, memory_bytes=GiB, cpu_seconds=20, timeout_seconds=30.0, **kwargs
    )


def test_result_comes_back_from_a_separate_process() -> None:
    assert run(targets.add, 2, 3, scale=10) == 50
    assert run(targets.child_pid) != os.getpid()


def test_repair_input_error_is_raised_again_with_its_class_message_and_fields() -> None:
    with pytest.raises(LimitExceededError, match="max_member_bytes=64") as caught:
        run(targets.refuse_input)
    assert caught.value.limit == "max_member_bytes"
    assert caught.value.value == 64
    with pytest.raises(RepairInputError, match=r"row 2: label 12"):
        run(targets.refuse_plain)


def test_input_error_that_cannot_be_unpickled_still_arrives_with_class_and_message() -> None:
    with pytest.raises(targets.OddInputError, match="row 7: over 10"):
        run(targets.refuse_oddly)


def test_memory_bomb_becomes_sandbox_error() -> None:
    with pytest.raises(SandboxError, match="memory") as caught:
        run(targets.allocate, 4 * GiB)
    assert caught.value.reason == "memory"
    # The same allocation is fine when the cap allows it: the limit is what refused it.
    assert run(targets.allocate, 1024) == 1024


def test_timeout_kills_the_child_quickly() -> None:
    start = time.perf_counter()
    with pytest.raises(SandboxError, match=r"timeout_seconds=1\.5") as caught:
        run_sandboxed(targets.sleep, 60, memory_bytes=GiB, cpu_seconds=20, timeout_seconds=1.5)
    assert caught.value.reason == "timeout"
    assert time.perf_counter() - start < 5


def test_cpu_limit_stops_a_busy_child() -> None:
    start = time.perf_counter()
    with pytest.raises(SandboxError, match="cpu_seconds=1") as caught:
        run_sandboxed(targets.spin, memory_bytes=GiB, cpu_seconds=1, timeout_seconds=30)
    assert caught.value.reason == "cpu"
    assert time.perf_counter() - start < 15


@pytest.mark.parametrize(
    ("fn", "args", "match"),
    [
        (targets.exit_hard, (3,), "exited with code 3"),
        (targets.fail_with_bug, (), "KeyError"),
    ],
)
def test_crashes_and_bugs_become_sandbox_error(
    fn: object, args: tuple[int, ...], match: str
) -> None:
    with pytest.raises(SandboxError, match=match) as caught:
        run(fn, *args)  # type: ignore[arg-type]
    assert caught.value.reason == "crash"


def test_child_writes_big_results_to_the_path_it_is_given(tmp_path: Path) -> None:
    out = tmp_path / "result.txt"
    assert run(targets.write_then_return, str(out)) == str(out)
    assert out.read_text() == "big result lives here"


def test_local_functions_are_refused_before_starting_a_child() -> None:
    def local() -> None:
        return None

    with pytest.raises(TypeError, match="module-level"):
        run(local)


def test_memory_cap_below_the_childs_start_up_size_is_explained() -> None:
    with pytest.raises(SandboxError, match="already maps") as caught:
        run_sandboxed(
            targets.add, 1, 2, memory_bytes=1024 * 1024, cpu_seconds=5, timeout_seconds=30
        )
    assert caught.value.reason == "memory"


@pytest.mark.slow
def test_dataset_ingestion_runs_in_the_sandbox_and_refuses_bombs(tmp_path: Path) -> None:
    # The child imports torch here: address space must cover it (about 3 GiB mapped).
    from repair_core.datasets.ingest import ingest_dataset
    from repair_core.datasets.ingest.limits import IngestLimits
    from tests.repair_core.datasets.ingest.builders import image_tree, write_tar, write_zip

    limits: dict[str, Any] = {"memory_bytes": 6 * GiB, "cpu_seconds": 60, "timeout_seconds": 120}
    entries = [*image_tree({"a": 2, "b": 1}, split="train"), *image_tree({"a": 1}, split="test")]
    out = tmp_path / "canon.npz"
    summary = run_sandboxed(
        ingest_dataset, write_tar(tmp_path / "d.tar", entries), out, IngestLimits(), **limits
    )
    assert summary.counts == {"train": 3, "test": 1}
    assert summary.class_names == ("a", "b")
    assert out.stat().st_size > 0
    bomb = write_zip(tmp_path / "bomb.zip", [("train/a/0.png", bytes(64 * 1024 * 1024))])
    with pytest.raises(LimitExceededError, match="max_ratio"):
        run_sandboxed(ingest_dataset, bomb, tmp_path / "no.npz", IngestLimits(), **limits)
    assert not (tmp_path / "no.npz").exists()
