"""What tests that start a server of their own need: a free port, and whether it is up."""

from __future__ import annotations

import socket

import httpx


def free_port() -> int:
    """A loopback port nobody listens on now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthz_answers(url: str) -> bool:
    """Whether the API at `url` answers its liveness probe."""
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
