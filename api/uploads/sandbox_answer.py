"""Reading the sandboxed child's answer: one JSON document, data only.

Nothing of it is unpickled or imported: an input error comes back as its class names and
fields, and is rebuilt from `repair_core.errors` classes alone; anything that is not the
expected document is a `SandboxError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import repair_core.errors as core_errors
from repair_core.errors import RepairInputError

_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class SandboxError(RuntimeError):
    """The sandboxed call gave no usable answer: it timed out, ran out of memory, CPU time
    or disk space, was killed, answered garbage, or failed with an error that is not a
    `RepairInputError`.

    `reason` is one of "timeout", "memory", "cpu", "killed", "crash", "no_space".
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Confinement:
    """What a child really got: its uid and whether its network was cut."""

    uid: int
    user_dropped: bool
    network_isolated: bool
    notes: tuple[str, ...] = ()


def read_answer(
    answer: bytes, name: str, memory_bytes: int, cpu_seconds: int
) -> tuple[Any, Confinement]:
    try:
        message = json.loads(answer)
        kind = message["kind"]
        confinement = _confinement(message["confinement"])
    except (ValueError, KeyError, TypeError):
        # Garbage (a pickle, say) from a child that lost control: read as bytes, never run.
        raise SandboxError(
            f"{name} answered something that is not its JSON", reason="crash"
        ) from None
    if kind == "ok":
        return message.get("result"), confinement
    if kind == "input_error":
        raise _input_error(message.get("error"))
    text = str(message.get("message", ""))[:2000]
    if kind == "memory":
        raise SandboxError(
            f"{name} ran out of memory (memory_bytes={memory_bytes}): {text}", reason="memory"
        )
    if kind == "no_space":
        raise SandboxError(f"{name} ran out of disk space", reason="no_space")
    raise SandboxError(f"{name} failed: {text}", reason="crash")


def _confinement(raw: Mapping[str, Any]) -> Confinement:
    notes = raw.get("notes", [])
    return Confinement(
        uid=int(raw["uid"]),
        user_dropped=bool(raw["user_dropped"]),
        network_isolated=bool(raw["network_isolated"]),
        notes=tuple(str(n)[:500] for n in notes[:10]) if isinstance(notes, list) else (),
    )


# The classes an input error may come back as: repair_core's own, chosen here.
_INPUT_ERRORS: dict[str, type[RepairInputError]] = {
    name: cls
    for name, cls in vars(core_errors).items()
    if isinstance(cls, type) and issubclass(cls, RepairInputError)
}


def _input_error(raw: Any) -> RepairInputError:
    """The child's input error rebuilt as data: the first of its classes (most derived
    first) that `repair_core.errors` defines, with its message, code and limit."""
    if not isinstance(raw, Mapping):
        raise SandboxError("the child's input error is not an object", reason="crash")
    message = str(raw.get("message", ""))[:20_000]
    given = raw.get("classes")
    classes: list[Any] = given if isinstance(given, list) else []
    cls = next((_INPUT_ERRORS[c] for c in classes if c in _INPUT_ERRORS), RepairInputError)
    error: RepairInputError
    if issubclass(cls, core_errors.LimitExceededError):
        value = raw.get("value")
        error = cls(
            message,
            limit=str(raw.get("limit") or ""),
            value=value if isinstance(value, int | float) else 0,
        )
    else:
        error = cls(message)
    code = raw.get("code")
    if isinstance(code, str) and _CODE_RE.match(code):
        error.code = code  # type: ignore[attr-defined]
    return error
