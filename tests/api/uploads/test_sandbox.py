"""run_sandboxed: results and input errors come back as data; bombs and hangs become
SandboxError; the child is confined (no secrets, no network, not root) and nothing it
sends is run by the parent."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from api.uploads import sandbox
from api.uploads.sandbox import (
    SandboxError,
    run_sandboxed,
    run_sandboxed_with_confinement,
    validator,
)
from api.uploads.sandbox_plan import log_sandbox_plan
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


def test_input_error_of_a_class_the_parent_does_not_know_arrives_as_its_known_base() -> None:
    with pytest.raises(RepairInputError, match="row 7: over 10") as caught:
        run(targets.refuse_oddly)
    assert type(caught.value) is RepairInputError  # rebuilt from repair_core.errors only


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


def test_child_writes_big_results_into_the_work_folder_it_is_given(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    assert Path(run(targets.write_then_return, "result.txt", workdir=workdir)) == (
        workdir / "result.txt"
    )
    assert (workdir / "result.txt").read_text() == "big result lives here"


def test_functions_not_registered_as_validators_are_refused_before_starting_a_child() -> None:
    def local() -> None:
        return None

    with pytest.raises(TypeError, match="module-level"):
        validator(local)
    with pytest.raises(TypeError, match="not a registered sandbox validator"):
        run(os.getpid)


def test_memory_cap_below_the_childs_start_up_size_is_explained() -> None:
    with pytest.raises(SandboxError, match="already maps") as caught:
        run_sandboxed(
            targets.add, 1, 2, memory_bytes=1024 * 1024, cpu_seconds=5, timeout_seconds=30
        )
    assert caught.value.reason == "memory"


@pytest.mark.slow
def test_dataset_ingestion_runs_in_the_sandbox_and_refuses_bombs(tmp_path: Path) -> None:
    # Ingestion no longer imports torch (test_no_torch.py); the cap is the generous old one.
    from api.uploads.validation import ingest_dataset
    from tests.repair_core.datasets.ingest.builders import image_tree, write_tar, write_zip

    limits: dict[str, Any] = {"memory_bytes": 6 * GiB, "cpu_seconds": 60, "timeout_seconds": 120}
    entries = [*image_tree({"a": 2, "b": 1}, split="train"), *image_tree({"a": 1}, split="test")]
    write_tar(tmp_path / "d.tar", entries)
    summary = run_sandboxed(ingest_dataset, "d.tar", "canon.npz", {}, workdir=tmp_path, **limits)
    assert summary["split_counts"] == {"train": 3, "test": 1}
    assert summary["class_names"] == ["a", "b"]
    assert (tmp_path / "canon.npz").stat().st_size > 0
    write_zip(tmp_path / "bomb.zip", [("train/a/0.png", bytes(64 * 1024 * 1024))])
    with pytest.raises(LimitExceededError, match="max_ratio"):
        run_sandboxed(ingest_dataset, "bomb.zip", "no.npz", {}, workdir=tmp_path, **limits)
    assert not (tmp_path / "no.npz").exists()


# The probe needs only the standard library: a system interpreter that other users can
# read lets the user switch happen even where the project's Python is private (a
# pyenv under /root, as on the development host).
READABLE_PYTHON = next(
    (p for p in ("/usr/bin/python3.11", "/usr/local/bin/python3.11") if os.access(p, os.X_OK)),
    sys.executable,
)

SECRETS = {
    "REPAIR_DATABASE__URL": "postgresql+psycopg://repair:s3cret-db-password@db:5432/repair",
    "REPAIR_AUTH_PEPPER": "s3cret-pepper",
    "REPAIR_BROKER__URL": "redis://:s3cret-redis@redis:6379/0",
    "AWS_SECRET_ACCESS_KEY": "s3cret-aws",
}


def test_child_sees_none_of_the_apis_secrets_and_runs_unprivileged_without_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    seen, confinement = run_sandboxed_with_confinement(
        targets.report_environment,
        memory_bytes=GiB,
        cpu_seconds=20,
        timeout_seconds=30.0,
        python=READABLE_PYTHON,
    )
    environ = seen["environ"]
    assert not [k for k in environ if k.startswith("REPAIR_") or k.startswith("AWS_")]
    assert not [v for v in environ.values() if "s3cret" in v]
    assert set(environ) <= {*sandbox.ENV_ALLOW, "PYTHONPATH", "PYTHONDONTWRITEBYTECODE",
                            "PYTHONNOUSERSITE", "HOME", "TMPDIR"}  # fmt: skip
    expected = sandbox.plan(READABLE_PYTHON)
    if expected.user is not None:  # the API runs as root: the child must not
        assert (seen["uid"], seen["euid"], seen["gid"]) == (*expected.user[:1], expected.user[0],
                                                            expected.user[1])  # fmt: skip
        assert seen["groups"] == [] or seen["groups"] == [expected.user[1]]
        assert confinement.user_dropped
    if confinement.network_isolated:
        assert not seen["reached_postgres"]  # the shared Postgres listens on 127.0.0.1
    if os.geteuid() == 0 and sys.platform.startswith("linux"):
        assert confinement.network_isolated, confinement.notes
        assert expected.user is not None, expected.notes


def test_plan_keeps_root_when_the_sandbox_user_cannot_read_the_interpreter(
    tmp_path: Path,
) -> None:
    if os.geteuid() != 0:
        assert sandbox.plan().user is None  # not root: nothing to drop
        return
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    shutil.copy(READABLE_PYTHON, private / "python3")
    how = sandbox.plan(str(private / "python3"))
    assert how.user is None
    assert "cannot read" in how.notes[0]
    assert sandbox.plan(READABLE_PYTHON).user is not None


@pytest.mark.slow
def test_a_real_validator_parses_an_upload_as_the_sandbox_user(tmp_path: Path) -> None:
    # Torch and the readers imported as `nobody`, through an interpreter it can read.
    from api.uploads.validation import ingest_dataset
    from tests.api import payloads

    how = sandbox.plan(READABLE_PYTHON)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "upload").write_bytes(payloads.npz_dataset(3))
    summary, confinement = run_sandboxed_with_confinement(
        ingest_dataset,
        "upload",
        "validated.npz",
        {},
        memory_bytes=6 * GiB,
        cpu_seconds=120,
        timeout_seconds=300.0,
        workdir=workdir,
        python=READABLE_PYTHON,
    )
    assert summary["split_counts"] == {"train": 9, "test": 3}
    if how.user is not None:
        assert confinement.user_dropped and confinement.uid == how.user[0]
        assert (workdir / "validated.npz").stat().st_uid == how.user[0]


def test_a_pickle_on_the_answer_pipe_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(SandboxError, match="not its JSON") as caught:
        run(targets.answer_with_pickle, str(marker))
    assert caught.value.reason == "crash"
    assert not marker.exists()


def test_a_forged_error_class_is_not_imported_and_a_bad_code_is_dropped() -> None:
    with pytest.raises(RepairInputError, match="forged") as caught:
        run(targets.answer_with_foreign_error_class)
    assert type(caught.value) is RepairInputError
    assert getattr(caught.value, "code", None) is None


def test_start_up_says_what_confines_the_children_on_this_host(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="api.uploads.sandbox_plan"):
        how = log_sandbox_plan()
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("upload sandbox: children run as") for m in said), said
    # Every limitation of this host is said, as a warning.
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [f"upload sandbox: {note}" for note in how.notes] == warned
