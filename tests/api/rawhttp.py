"""A bare HTTP/1.1 client over a socket, for what httpx will not do: lie about
Content-Length, stop sending as soon as the server answers, or vanish mid-body."""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RawResponse:
    status: int
    body: bytes
    bytes_sent: int  # body bytes the server took before it answered


def _connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    return socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10)


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return status, body


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


def send(
    base_url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body_chunks: Iterable[bytes],
    *,
    chunked: bool = False,
) -> RawResponse:
    """Send the body chunk by chunk, and stop at the first sign of a response."""
    sock = _connect(base_url)
    sent = 0
    try:
        if chunked:
            headers = {**headers, "Transfer-Encoding": "chunked"}
        sock.sendall(_head(method, path, headers))
        for chunk in body_chunks:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                if chunked:
                    sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                else:
                    sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        else:
            if chunked:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(b"0\r\n\r\n")
        status, body = _read_response(sock)
        return RawResponse(status, body, sent)
    finally:
        sock.close()


def send_partial_and_vanish(base_url: str, path: str, headers: dict[str, str], body: bytes) -> None:
    """Send the head and a part of the body, then close the connection."""
    sock = _connect(base_url)
    try:
        sock.sendall(_head("POST", path, headers) + body)
    finally:
        sock.close()


def open_slow_upload(
    base_url: str, path: str, headers: dict[str, str], body: bytes
) -> socket.socket:
    """Start an upload and leave it hanging; the caller closes the socket."""
    sock = _connect(base_url)
    sock.sendall(_head("POST", path, headers) + body)
    return sock


BOUNDARY = "----repairtestboundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def upload_headers(key: str, content_length: int | str | None = None) -> dict[str, str]:
    """Headers of a raw multipart upload by `key`'s owner; Content-Length only if given."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": MULTIPART}
    if content_length is not None:
        headers["Content-Length"] = str(content_length)
    return headers


def multipart_head(filename: str, fields: dict[str, str] | None = None) -> bytes:
    """Everything of a multipart body before the file's bytes."""
    out = b""
    for name, value in (fields or {}).items():
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    out += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return out


def multipart_tail() -> bytes:
    return f"\r\n--{BOUNDARY}--\r\n".encode()
