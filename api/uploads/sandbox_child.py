"""The sandboxed child: confine this process, run the validator the parent named, answer
one JSON document on the file descriptor given as its only argument.

Started by `api.uploads.sandbox` as `python -P -s -m api.uploads.sandbox_child FD`, with
an allow-listed environment, in its work folder. The order matters: everything that
needs privileges (a network namespace, the user switch) happens before the validator's
module is imported, and the resource limits right after that import (torch alone maps
gigabytes of address space), before a byte of the upload is read.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import importlib
import json
import os
import resource
import sys
from typing import Any

from repair_core.errors import RepairInputError

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000


def main(argv: list[str]) -> int:
    answer_fd = int(argv[1])
    request = json.loads(sys.stdin.buffer.read())
    confinement: dict[str, Any] = {"notes": []}
    try:
        _confine(request, confinement)
        module_name, _, qualname = str(request["target"]).partition(":")
        fn: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            fn = getattr(fn, part)
        _limit_self(int(request["memory_bytes"]), int(request["cpu_seconds"]), module_name)
        result = fn(*request["args"], **request["kwargs"])
        message: dict[str, Any] = {"kind": "ok", "result": result}
    except RepairInputError as e:
        message = {"kind": "input_error", "error": _input_error(e)}
    except MemoryError as e:
        message = {"kind": "memory", "message": f"{type(e).__name__}: {e}"}
    except OSError as e:
        kind = "no_space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "crash"
        message = {"kind": kind, "message": f"{type(e).__name__}: {e}"}
    except BaseException as e:  # the parent must hear about every failure, SystemExit too
        message = {"kind": "crash", "message": f"{type(e).__name__}: {e}"}
    confinement["uid"] = os.getuid()
    message["confinement"] = confinement
    try:
        data = json.dumps(message).encode()
    except (TypeError, ValueError) as e:
        data = json.dumps(
            {
                "kind": "crash",
                "message": f"the result is not JSON ({e})",
                "confinement": confinement,
            }
        ).encode()
    with os.fdopen(answer_fd, "wb") as out:
        out.write(data)
    return 0


def _confine(request: dict[str, Any], confinement: dict[str, Any]) -> None:
    """Lower priority, cut the network, drop the user: what the host allows, said in
    `confinement`. A user switch that was asked for and failed stops the child."""
    notes: list[str] = confinement["notes"]
    # Validation is batch work: on a busy machine the API's requests go first.
    with contextlib.suppress(OSError):
        os.nice(int(request["niceness"]))
    confinement["network_isolated"] = False
    if request["isolate_network"]:
        confinement["network_isolated"] = _unshare_network(notes)
    confinement["user_dropped"] = False
    user = request["user"]
    if user is not None:
        uid, gid = int(user[0]), int(user[1])
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise PermissionError(f"could not drop to uid {uid}")
        confinement["user_dropped"] = True


def _unshare_network(notes: list[str]) -> bool:
    """A network namespace of this process's own: only a loopback that is down."""
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0:
        if libc.unshare(CLONE_NEWNET) == 0:
            return True
        notes.append(f"unshare(CLONE_NEWNET) refused: {os.strerror(ctypes.get_errno())}")
        return False
    # Without root: a user namespace (mapping only our own ids) brings the right to make
    # a network namespace, where the kernel allows unprivileged user namespaces.
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        notes.append(f"unprivileged unshare refused: {os.strerror(ctypes.get_errno())}")
        return False
    try:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    except OSError as e:
        notes.append(f"user namespace id map refused: {e.strerror}")
    return True


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _limit_self(memory_bytes: int, cpu_seconds: int, module_name: str) -> None:
    mapped = _mapped_bytes()
    if mapped is not None and mapped >= memory_bytes:
        # The validator's module was imported before any limit applied; a cap below what
        # the child maps already fails on the first allocation.
        raise MemoryError(
            f"the child already maps {mapped} bytes after importing {module_name}, "
            "memory_bytes must be larger"
        )
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


def _input_error(error: RepairInputError) -> dict[str, Any]:
    """The error as data: the parent rebuilds it from classes it knows, by name."""
    value = getattr(error, "value", None)
    return {
        "classes": [c.__name__ for c in type(error).__mro__ if issubclass(c, RepairInputError)],
        "message": str(error),
        "code": getattr(error, "code", None),
        "limit": str(getattr(error, "limit", "") or ""),
        "value": value if isinstance(value, int | float) else None,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv))
