"""Validators registered only by the sandbox tests: the child imports this module by the
name the parent (the test process) sends it.

Kept free of torch so a child starts in a fraction of a second.
"""

from __future__ import annotations

import os
import pickle
import socket
import sys
import time
from typing import Any

from api.uploads.sandbox import validator
from repair_core.errors import LimitExceededError, RepairInputError


@validator
def add(a: int, b: int, *, scale: int = 1) -> int:
    return (a + b) * scale


@validator
def child_pid() -> int:
    return os.getpid()


@validator
def refuse_input() -> None:
    raise LimitExceededError(
        "member 'x.png': unpacked size passes max_member_bytes=64",
        limit="max_member_bytes",
        value=64,
    )


@validator
def refuse_plain() -> None:
    raise RepairInputError("labels.csv: row 2: label 12 outside [0, 10)")


@validator
def allocate(n_bytes: int) -> int:
    return len(bytearray(n_bytes))


@validator
def sleep(seconds: float) -> None:
    time.sleep(seconds)


@validator
def spin() -> None:
    while True:
        pass


@validator
def exit_hard(code: int) -> None:
    os._exit(code)


@validator
def fail_with_bug() -> None:
    raise KeyError("a bug, not bad input")


@validator
def write_then_return(name: str) -> str:
    with open(name, "w") as f:
        f.write("big result lives here")
    return os.path.abspath(name)


class OddInputError(RepairInputError):
    """A subclass the parent does not know: it comes back as its nearest known base."""

    def __init__(self, row: int, limit: int) -> None:
        super().__init__(f"row {row}: over {limit}")
        self.row = row


@validator
def refuse_oddly() -> None:
    raise OddInputError(7, 10)


@validator
def report_environment() -> dict[str, Any]:
    """What a validator sees of the world: its environment, ids and network."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=2):
            reached = True
    except OSError:
        reached = False
    return {
        "environ": dict(os.environ),
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "reached_postgres": reached,
    }


class _Marker:
    """Unpickling this runs `open(path, "w")`: what a child that lost control could send."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


@validator
def answer_with_pickle(marker: str) -> None:
    """Writes a crafted pickle to the answer pipe (fd from argv) and exits, as a child
    whose parser was exploited would."""
    fd = int(sys.argv[1])
    os.write(fd, pickle.dumps(("ok", _Marker(marker))))
    os._exit(0)


@validator
def answer_with_foreign_error_class() -> None:
    """A forged answer naming a class outside repair_core.errors, to be imported."""
    fd = int(sys.argv[1])
    os.write(
        fd,
        b'{"kind": "input_error", "confinement": {"uid": 0, "user_dropped": false, '
        b'"network_isolated": false}, "error": {"classes": ["os:system", "Popen"], '
        b'"message": "forged", "code": "not a code!"}}',
    )
    os._exit(0)
