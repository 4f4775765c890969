"""What confines the upload sandbox's children on this host, decided by the parent.

A root API drops its children to `SANDBOX_USER`, if that user can read the interpreter
and our code (a pyenv under /root cannot be read, and a child that cannot start Python
is no sandbox); every child asks for a network namespace of its own. What the host does
not allow is said once at API start-up (docs/sandbox-boundary.md).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# The user a root API drops the child to. Its files are never the API's.
SANDBOX_USER = "nobody"


@dataclass(frozen=True)
class SandboxPlan:
    """What the parent asks of the child on this host (logged at API start-up)."""

    user: tuple[int, int] | None  # (uid, gid) to drop to; None: the API's own
    isolate_network: bool
    notes: tuple[str, ...]


def plan(python: str | None = None) -> SandboxPlan:
    """Drop to `SANDBOX_USER` when running as root and that user can run the interpreter;
    always ask for a network namespace (root: CLONE_NEWNET; otherwise through an
    unprivileged user namespace, where the kernel allows those)."""
    notes: list[str] = []
    user: tuple[int, int] | None = None
    if not sys.platform.startswith("linux"):
        notes.append("not Linux: no network namespace, no user switch; rlimits only")
        return SandboxPlan(None, False, tuple(notes))
    if os.geteuid() != 0:
        notes.append(f"not root: children run as uid {os.geteuid()}, the API's user")
        return SandboxPlan(None, True, tuple(notes))
    import pwd

    try:
        entry = pwd.getpwnam(SANDBOX_USER)
    except KeyError:
        notes.append(f"no user {SANDBOX_USER!r}: children run as root")
        return SandboxPlan(None, True, tuple(notes))
    hidden = [str(p) for p in _interpreter_paths(python) if not _world_readable(p)]
    if hidden:
        notes.append(
            f"{SANDBOX_USER!r} cannot read {hidden[0]} (the interpreter or our code): "
            "children run as root; install Python where other users can read it"
        )
    else:
        user = (entry.pw_uid, entry.pw_gid)
    return SandboxPlan(user, True, tuple(notes))


def log_sandbox_plan(python: str | None = None) -> SandboxPlan:
    """Say at start-up what confines the upload children on this host, and what does not."""
    how = plan(python)
    user = f"uid {how.user[0]}" if how.user else f"the API's uid {os.geteuid()}"
    log.info(
        "upload sandbox: children run as %s, %s, with rlimits and a scrubbed environment",
        user,
        "in a network namespace of their own" if how.isolate_network else "with the network",
    )
    for note in how.notes:
        log.warning("upload sandbox: %s", note)
    return how


def _interpreter_paths(python: str | None) -> list[Path]:
    """What the sandbox user must be able to read to start the child: the interpreter,
    its standard library, our packages (`sandbox.child_environment`) and our code."""
    import sysconfig

    code_root = Path(__file__).resolve().parents[2]
    packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    if python is not None:
        return [Path(python).resolve(), packages, code_root]
    return [
        Path(sys.executable).resolve(),
        Path(os.__file__).resolve().parent,  # the standard library
        packages,
        code_root,
    ]


def _world_readable(path: Path) -> bool:
    """Others may open `path` (read, and enter it if a folder) and reach it from /."""
    try:
        for folder in path.parents:
            if not os.stat(folder).st_mode & 0o001:
                return False
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return bool(mode & 0o004) and (not path.is_dir() or bool(mode & 0o001))
