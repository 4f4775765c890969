"""The confinement the upload sandbox really gets on this host, as `/readyz` reports it.

`sandbox_plan` says what the parent will ask for; only a child knows what the kernel
granted (a network namespace may be refused). So the API starts one child running the
`probe` validator, once per process and interpreter, and keeps its answer: a host does not
change its mind while the API runs.
"""

from __future__ import annotations

import pwd
import threading
from dataclasses import dataclass
from typing import Literal

from api.settings import SandboxSettings
from api.uploads.sandbox import SandboxError, run_sandboxed_with_confinement
from api.uploads.sandbox_plan import plan
from api.uploads.validation import probe

# Starting the probe child is an interpreter start-up and nothing else.
_PROBE_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class SandboxStatus:
    """Who an upload child runs as, whether its network is cut, and whether that is the
    confinement docs/sandbox-boundary.md asks for (not root, no network)."""

    user: str
    network: Literal["isolated", "shared"]
    confined: bool
    notes: tuple[str, ...] = ()


_known: dict[str | None, SandboxStatus] = {}
_lock = threading.Lock()


def sandbox_status(settings: SandboxSettings) -> SandboxStatus:
    """The confinement of this host's upload children (probed on the first call)."""
    with _lock:  # one probe child, however many readiness checks arrive at once
        if settings.python not in _known:
            _known[settings.python] = _probe(settings)
        return _known[settings.python]


def _probe(settings: SandboxSettings) -> SandboxStatus:
    try:
        _, got = run_sandboxed_with_confinement(
            probe,
            memory_bytes=settings.memory_bytes,
            cpu_seconds=settings.cpu_seconds,
            timeout_seconds=min(settings.timeout_seconds, _PROBE_TIMEOUT_SECONDS),
            python=settings.python,
        )
    except (SandboxError, OSError) as e:
        # A child that cannot start cannot parse uploads either: nothing is confined.
        return SandboxStatus("unknown", "shared", False, (f"the probe child failed: {e}",))
    network: Literal["isolated", "shared"] = "isolated" if got.network_isolated else "shared"
    return SandboxStatus(
        user=_user_name(got.uid),
        network=network,
        confined=got.uid != 0 and got.network_isolated,
        # Why it is not confined: what the plan gave up on, then what the kernel refused.
        notes=plan(settings.python).notes + got.notes,
    )


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
