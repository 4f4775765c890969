"""Test-only crash points: a process that reaches the configured point kills itself with
SIGKILL, so a test can prove what a crash between two steps leaves behind (reliability
case 29: a file published, its row not committed). Off unless `fault_point` is set."""

from __future__ import annotations

import os
import signal


def reach(point: str, configured: str) -> None:
    """Die at once, as `kill -9` would, if `point` is the configured fault point."""
    if configured and point == configured:
        os.kill(os.getpid(), signal.SIGKILL)
