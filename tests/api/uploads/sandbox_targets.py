"""Module-level functions for the sandbox tests: the spawned child imports them by name.

Kept free of torch so a child starts in a fraction of a second.
"""

from __future__ import annotations

import os
import time

from repair_core.errors import LimitExceededError, RepairInputError


def add(a: int, b: int, *, scale: int = 1) -> int:
    return (a + b) * scale


def child_pid() -> int:
    return os.getpid()


def refuse_input() -> None:
    raise LimitExceededError(
        "member 'x.png': unpacked size passes max_member_bytes=64",
        limit="max_member_bytes",
        value=64,
    )


def refuse_plain() -> None:
    raise RepairInputError("labels.csv: row 2: label 12 outside [0, 10)")


def allocate(n_bytes: int) -> int:
    return len(bytearray(n_bytes))


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def spin() -> None:
    while True:
        pass


def exit_hard(code: int) -> None:
    os._exit(code)


def fail_with_bug() -> None:
    raise KeyError("a bug, not bad input")


def write_then_return(path: str) -> str:
    with open(path, "w") as f:
        f.write("big result lives here")
    return path


class OddInputError(RepairInputError):
    """An error whose constructor does not take just the message (unpickles badly)."""

    def __init__(self, row: int, limit: int) -> None:
        super().__init__(f"row {row}: over {limit}")
        self.row = row


def refuse_oddly() -> None:
    raise OddInputError(7, 10)
