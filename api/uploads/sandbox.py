"""Running parsers of untrusted bytes in a fresh, resource-limited child process.

Decoding archives, images and arrays from uploads runs outside the API process:
a bomb that slips past the parsers' own caps then kills a child, not the server.
The child is started with the `spawn` method (a fresh interpreter: no copy of the
API's sockets, threads or database pools), sets RLIMIT_AS (address space),
RLIMIT_CPU and no core dumps on itself, calls the function, and sends back either
its result or the `RepairInputError` it raised.

What it does not do: drop privileges, cut the network, or hide the environment
(the child inherits the API's environment variables). Results are unpickled in the
parent; they come from our own code in the child, so keep them small (summaries)
and let the child write big arrays to a path it is given.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import resource
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar, cast

from repair_core.errors import RepairInputError

T = TypeVar("T")

_JOIN_SECONDS = 5.0  # grace for a child that answered to exit on its own
CHILD_NICENESS = 10  # below the API process (0): validation yields the CPU to requests


class SandboxError(RuntimeError):
    """The sandboxed call gave no answer: it timed out, ran out of memory or CPU time,
    was killed, or failed with an error that is not a `RepairInputError`.

    `reason` is one of "timeout", "memory", "cpu", "killed", "crash".
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def run_sandboxed(
    fn: Callable[..., T],
    *args: Any,
    memory_bytes: int,
    cpu_seconds: int,
    timeout_seconds: float,
    **kwargs: Any,
) -> T:
    """`fn(*args, **kwargs)` in a child with the given limits; its result, or raise.

    `fn` must be a module-level function (the child imports it by name); arguments
    and result must be picklable. `memory_bytes` caps the child's whole address
    space, including the interpreter and the libraries `fn`'s module imports
    (measure: importing torch alone maps well over 1 GiB). `timeout_seconds` is wall
    time from start-up to answer. A `RepairInputError` raised by `fn` is raised here
    with the same class and message; anything else becomes `SandboxError`.
    """
    if "<locals>" in fn.__qualname__ or fn.__name__ == "<lambda>":
        raise TypeError(f"run_sandboxed needs a module-level function, got {fn.__qualname__}")
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child_main,
        args=(sender, fn, args, kwargs, memory_bytes, cpu_seconds),
        name=f"sandbox:{fn.__name__}",
        daemon=True,
    )
    child.start()
    sender.close()  # so that the child's death shows as end-of-file on `receiver`
    try:
        if not receiver.poll(timeout_seconds):
            child.kill()
            raise SandboxError(
                f"{fn.__name__} gave no answer within timeout_seconds={timeout_seconds}",
                reason="timeout",
            )
        try:
            kind, payload = receiver.recv()
        except (EOFError, OSError):
            child.join(_JOIN_SECONDS)
            raise _death(fn.__name__, child, memory_bytes, cpu_seconds) from None
    finally:
        receiver.close()
        _reap(child)
    if kind == "ok":
        return cast(T, payload)
    if kind == "input_error" and isinstance(payload, RepairInputError):
        raise payload
    if kind == "input_error_parts":
        raise _rebuild_input_error(*payload)
    if kind == "memory":
        raise SandboxError(
            f"{fn.__name__} ran out of memory (memory_bytes={memory_bytes}): {payload}",
            reason="memory",
        )
    raise SandboxError(f"{fn.__name__} failed: {payload}", reason="crash")


def _child_main(
    conn: Connection,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    memory_bytes: int,
    cpu_seconds: int,
) -> None:
    message: tuple[str, Any]
    # Validation is batch work: on a busy machine the API process's requests go first
    # (docs/api-under-load.md); the caps on concurrent uploads bound how many run.
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)
    try:
        mapped = _mapped_bytes()
        if mapped is not None and mapped >= memory_bytes:
            # Unpickling `fn` imported its module before any limit applied (torch alone
            # maps ~3 GiB of address space); a cap below that fails on the first allocation.
            raise MemoryError(
                f"the child already maps {mapped} bytes after importing {fn.__module__}, "
                "memory_bytes must be larger"
            )
        _limit_self(memory_bytes, cpu_seconds)
        message = ("ok", fn(*args, **kwargs))
    except RepairInputError as e:
        message = _input_error_message(e)
    except MemoryError as e:
        message = ("memory", f"{type(e).__name__}: {e}")
    except BaseException as e:  # the parent must hear about every failure, SystemExit too
        message = ("crash", f"{type(e).__name__}: {e}")
    try:
        conn.send(message)
    except Exception as e:  # an unpicklable result, or no memory left to pickle it
        conn.send(("crash", f"could not send the result back ({type(e).__name__}: {e})"))
    finally:
        conn.close()


def _input_error_message(error: RepairInputError) -> tuple[str, Any]:
    # An exception unpickles as `cls(*args)`; a class whose __init__ takes other arguments
    # than its args would fail in the parent, so send it by name then, message intact.
    try:
        type(error)(*error.args)
    except Exception:
        cls = type(error)
        return ("input_error_parts", (cls.__module__, cls.__qualname__, str(error)))
    return ("input_error", error)


def _rebuild_input_error(module: str, qualname: str, message: str) -> RepairInputError:
    """The child's error class with its message (attributes set by __init__ are lost)."""
    cls: Any = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part, None)
    if not (isinstance(cls, type) and issubclass(cls, RepairInputError)):
        return RepairInputError(message)
    error: RepairInputError = cls.__new__(cls, message)
    error.args = (message,)
    return error


def _limit_self(memory_bytes: int, cpu_seconds: int) -> None:
    # Soft CPU limit sends SIGXCPU (fatal by default); the hard one a second later SIGKILL.
    _lower(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)
    _lower(resource.RLIMIT_AS, memory_bytes, memory_bytes)
    _lower(resource.RLIMIT_CORE, 0, 0)


def _mapped_bytes() -> int | None:
    """This process's address-space size (what RLIMIT_AS counts), where /proc tells."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _lower(which: int, soft: int, hard: int) -> None:
    """Set a limit, never above what this process is already allowed (that would fail)."""
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


def _death(name: str, child: BaseProcess, memory_bytes: int, cpu_seconds: int) -> SandboxError:
    code = child.exitcode
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


def _reap(child: BaseProcess) -> None:
    child.join(_JOIN_SECONDS)
    if child.is_alive():
        child.kill()
        child.join()
    child.close()
