"""Running a registered validator on untrusted bytes in a confined child process.

The boundary (docs/sandbox-boundary.md):
- the child is a fresh interpreter (`python -P -m api.uploads.sandbox_child`) started
  with an allow-listed environment (`child_environment`): no database URL, broker URL,
  pepper or any other `REPAIR_*` variable reaches it;
- it runs only a function the parent chose from `VALIDATORS`, the registry the
  `@validator` decorator fills; the parent names it in the request it writes to the
  child's stdin, and never imports anything the child names;
- it answers one JSON document on a pipe of its own (never pickle): a result of plain
  values, or an input error as data (class name, message, code, limit), which the parent
  rebuilds from `repair_core.errors` classes only. Tensors never cross the pipe: the
  validator writes them as npz / safetensors into its work folder;
- it confines itself before it imports the validator's module (`sandbox_child`):
  lower priority, a network namespace of its own (no interfaces but a down loopback),
  an unprivileged user (`nobody`) when the API runs as root, then RLIMIT_AS, RLIMIT_CPU,
  no core dumps. What the host refused is reported back in `Confinement`.

The parent kills it after `timeout_seconds` of wall time and reads at most
`MAX_ANSWER_BYTES`; any answer that is not the expected JSON is a `SandboxError`.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from api.uploads.sandbox_answer import Confinement, SandboxError, read_answer
from api.uploads.sandbox_plan import plan

__all__ = ["VALIDATORS", "Confinement", "SandboxError", "run_sandboxed", "validator"]

F = TypeVar("F", bound=Callable[..., Any])

CHILD_MODULE = "api.uploads.sandbox_child"
CHILD_NICENESS = 10  # below the API process (0): validation yields the CPU to requests
# An answer is a summary (counts, names, the rejected files of a batch); bigger is a bug.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
_JOIN_SECONDS = 5.0  # grace for a child that answered to exit on its own
# What the child's environment keeps of the parent's: the interpreter's needs (locale,
# search path for executables) and the thread caps of the numeric libraries.
ENV_ALLOW = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

# The registry: "module:qualname" -> the function. Only these ever run in a child.
VALIDATORS: dict[str, Callable[..., Any]] = {}


def validator(fn: F) -> F:
    """Register `fn` (a module-level function) as one the sandbox may run.

    It is called as `fn(*args, **kwargs)` in the child, with JSON values only, from the
    child's work folder (paths it gets are relative to it); it returns JSON values.
    """
    if "<locals>" in fn.__qualname__ or fn.__name__ == "<lambda>":
        raise TypeError(f"a sandbox validator must be a module-level function: {fn.__qualname__}")
    VALIDATORS[_target(fn)] = fn
    return fn


def run_sandboxed(
    fn: Callable[..., Any],
    *args: Any,
    memory_bytes: int,
    cpu_seconds: int,
    timeout_seconds: float,
    workdir: Path | None = None,
    python: str | None = None,
    **kwargs: Any,
) -> Any:
    """`fn(*args, **kwargs)` in a confined child; its JSON result, or raise.

    `fn` must be registered with `@validator`. `workdir` is the child's current folder
    (given to the sandbox user): put its input there and name files relative to it; by
    default a fresh empty folder, removed afterwards. `memory_bytes` caps the child's
    whole address space, including the interpreter and what `fn`'s module imports
    (torch alone maps well over 1 GiB). `timeout_seconds` is wall time from start-up to
    answer. `python` is the child's interpreter (default: this one). A `RepairInputError`
    raised by `fn` is raised here as the nearest class of `repair_core.errors`, message,
    `code` and `limit` intact; the rest is `SandboxError`.
    """
    return run_sandboxed_with_confinement(
        fn,
        *args,
        memory_bytes=memory_bytes,
        cpu_seconds=cpu_seconds,
        timeout_seconds=timeout_seconds,
        workdir=workdir,
        python=python,
        **kwargs,
    )[0]


def run_sandboxed_with_confinement(
    fn: Callable[..., Any],
    *args: Any,
    memory_bytes: int,
    cpu_seconds: int,
    timeout_seconds: float,
    workdir: Path | None = None,
    python: str | None = None,
    **kwargs: Any,
) -> tuple[Any, Confinement]:
    """`run_sandboxed`, with what the child's confinement really was."""
    target = _target(fn)
    if VALIDATORS.get(target) is not fn:
        known = ", ".join(sorted(VALIDATORS)) or "none"
        raise TypeError(
            f"{fn.__qualname__} is not a registered sandbox validator (decorate it with "
            f"@validator); registered: {known}"
        )
    how = plan(python)
    request = {
        "target": target,
        "args": list(args),
        "kwargs": kwargs,
        "memory_bytes": memory_bytes,
        "cpu_seconds": cpu_seconds,
        "niceness": CHILD_NICENESS,
        "user": list(how.user) if how.user else None,
        "isolate_network": how.isolate_network,
    }
    payload = json.dumps(request).encode()  # TypeError here: arguments must be JSON
    own_dir = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="sandbox-")) if workdir is None else workdir
    try:
        if how.user is not None:
            os.chown(folder, *how.user)
        answer, exit_code = _run_child(
            payload, folder, fn.__name__, timeout_seconds, python or sys.executable
        )
    finally:
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)
    if not answer:
        raise _death(fn.__name__, exit_code, memory_bytes, cpu_seconds)
    return read_answer(answer, fn.__name__, memory_bytes, cpu_seconds)


def child_environment(python: str | None = None) -> dict[str, str]:
    """The child's whole environment: the allow-list, and where to find our code."""
    env = {name: os.environ[name] for name in ENV_ALLOW if name in os.environ}
    env.setdefault("PATH", os.defpath)
    # The folder holding the `api` package (a source checkout or site-packages), so the
    # child imports the same code as the parent, whatever PYTHONPATH the API had; another
    # interpreter (`sandbox.python`) also gets this one's packages (torch, numpy, ...).
    paths = [str(Path(__file__).resolve().parents[2])]
    if python is not None and Path(python).resolve() != Path(sys.executable).resolve():
        import sysconfig

        paths += dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the sandbox user cannot write __pycache__
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _target(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


def _run_child(
    payload: bytes, folder: Path, name: str, timeout_seconds: float, python: str
) -> tuple[bytes, int | None]:
    """The child's answer (empty if it died without one) and its exit code."""
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen(
            [python, "-P", "-s", "-m", CHILD_MODULE, str(write_end)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            cwd=folder,
            # Relative: a child dropped to another user reaches its folder only as its cwd
            # (the folders above are the API's, 0700).
            env={**child_environment(python), "HOME": ".", "TMPDIR": "."},
            pass_fds=(write_end,),
            close_fds=True,
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)  # the child's death now shows as end-of-file on `read_end`
    try:
        assert child.stdin is not None
        try:
            child.stdin.write(payload)
            child.stdin.close()
        except BrokenPipeError:
            pass  # it died at once; its exit code tells why
        answer = _read_answer(read_end, time.monotonic() + timeout_seconds)
        if answer is None:
            child.kill()
            raise SandboxError(
                f"{name} gave no answer within timeout_seconds={timeout_seconds}",
                reason="timeout",
            )
        if not answer:
            try:
                child.wait(_JOIN_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
        return answer, child.returncode
    finally:
        os.close(read_end)
        _reap(child)


def _read_answer(fd: int, deadline: float) -> bytes | None:
    """Everything written to `fd` until end-of-file; None when `deadline` passed first."""
    chunks: list[bytes] = []
    size = 0
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if not poller.poll(left * 1000):
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise SandboxError(
                f"the child's answer passed MAX_ANSWER_BYTES={MAX_ANSWER_BYTES}", reason="crash"
            )
        chunks.append(chunk)


def _death(name: str, code: int | None, memory_bytes: int, cpu_seconds: int) -> SandboxError:
    if code == -signal.SIGXCPU:
        return SandboxError(f"{name} used more than cpu_seconds={cpu_seconds}", reason="cpu")
    if code == -signal.SIGKILL:
        return SandboxError(
            f"{name} was killed (hard limit of cpu_seconds={cpu_seconds}, the kernel's "
            "out-of-memory killer, or an operator)",
            reason="killed",
        )
    if code is not None and code < 0:
        return SandboxError(
            f"{name} crashed with {signal.Signals(-code).name} (memory_bytes={memory_bytes})",
            reason="crash",
        )
    return SandboxError(f"{name} exited with code {code} without an answer", reason="crash")


def _reap(child: subprocess.Popen[bytes]) -> None:
    try:
        child.wait(_JOIN_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
