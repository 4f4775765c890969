"""A real S3 API server on loopback for the tests: moto's server mode in a subprocess."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from api.settings import S3Settings

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"


@contextmanager
def moto_server() -> Iterator[str]:
    """Start `python -m moto.server` on a free port; yields its endpoint URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "moto server exited"
            try:
                if httpx.get(f"{url}/moto-api/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "moto server did not start"
            time.sleep(0.1)  # polling the server's readiness, with a deadline
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def s3_settings(endpoint: str, **overrides: Any) -> S3Settings:
    """Settings for a fresh bucket of its own on `endpoint` (created on first use)."""
    values: dict[str, Any] = {
        "endpoint_url": endpoint,
        "bucket": f"test-{uuid.uuid4().hex[:12]}",
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "create_bucket": True,
        "multipart_threshold_bytes": 5 * 1024 * 1024,
        "multipart_chunk_bytes": 5 * 1024 * 1024,
        **overrides,
    }
    return S3Settings(**values)
