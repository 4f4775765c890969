"""HTTP client of the repair service: one method per operation, streamed uploads and
downloads with progress callbacks. Takes its base URL and key as arguments; the CLI
layer reads them from options or `REPAIR_URL` / `REPAIR_API_KEY`."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from repair_core.atomic import atomic_open, write_bytes_atomic
from repair_core.choices import DEFAULT_MODEL_FORMAT

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# Where following a job stops: it finished, or it waits for the owner's labels.
STOPS = TERMINAL | {"awaiting_labels"}
DOWNLOAD_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ServerEvent:
    event: str
    data: Any
    id: str | None


def parse_sse(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """Server-Sent Events from a stream's lines: `event:`, `data:` (JSON) and `id:`
    fields, dispatched on a blank line; `:` comments (keep-alive pings) are skipped."""
    event, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield ServerEvent(event, json.loads("\n".join(data)), event_id)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


class ApiError(Exception):
    """An error answer of the service, with its problem document."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem = dict(problem)
        self.code = str(problem.get("code", "error"))
        self.detail = str(problem.get("detail", ""))
        super().__init__(f"HTTP {status} {self.code}: {self.detail}")


class _ProgressFile:
    """A read-only file that reports how much of it has been read (httpx streams file
    parts by reading 64 KiB at a time)."""

    def __init__(self, file: IO[bytes], total: int, on_progress: ProgressFn | None) -> None:
        self._file = file
        self._total = total
        self._done = 0
        self._on_progress = on_progress

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._done += len(data)
        if self._on_progress is not None:
            self._on_progress(self._done, self._total)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._file.seek(offset, whence)
        if position == 0:
            self._done = 0
        return position

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()


class RepairClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 600.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )
        self._etags: dict[str, tuple[str, dict[str, Any]]] = {}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RepairClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:500]}
            if not isinstance(problem, dict):
                problem = {"detail": str(problem)[:500]}
            raise ApiError(response.status_code, problem)
        return response

    def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        response = self._check(self._http.request(method, url, **kwargs))
        body: dict[str, Any] = response.json()
        return body

    def _upload(
        self,
        url: str,
        path: Path,
        fields: Mapping[str, str | None],
        on_progress: ProgressFn | None,
    ) -> dict[str, Any]:
        path = Path(path)
        total = path.stat().st_size
        data = {k: v for k, v in fields.items() if v is not None}
        with path.open("rb") as f:
            wrapped = _ProgressFile(f, total, on_progress)
            files = {"file": (path.name, wrapped, "application/octet-stream")}
            return self._json("POST", url, files=files, data=data)

    # -- datasets, models, failure batches --------------------------------------------

    def upload_dataset(
        self, path: Path, *, name: str | None = None, on_progress: ProgressFn | None = None
    ) -> dict[str, Any]:
        return self._upload("/v1/datasets", path, {"name": name}, on_progress)

    def list_datasets(self) -> dict[str, Any]:
        return self._json("GET", "/v1/datasets")

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/datasets/{dataset_id}")

    def upload_model(
        self,
        path: Path,
        *,
        dataset_id: str,
        name: str | None = None,
        genotype: str | None = None,
        network_config: str | None = None,
        family: str | None = None,
        architecture: str | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        input_size: Sequence[int] | None = None,
        on_progress: ProgressFn | None = None,
    ) -> dict[str, Any]:
        """`family` timm / torchvision with `architecture` (a registry name), or onnx for an
        .onnx file; `mean`/`std` the model's input normalisation, `input_size` (H, W, C)."""

        def listed(values: Sequence[float] | None) -> str | None:
            return None if values is None else json.dumps(list(values))

        fields = {
            "dataset_id": dataset_id,
            "name": name,
            "genotype": genotype,
            "network_config": network_config,
            "family": family,
            "architecture": architecture,
            "mean": listed(mean),
            "std": listed(std),
            "input_size": listed(input_size),
        }
        return self._upload("/v1/models", path, fields, on_progress)

    def list_models(self) -> dict[str, Any]:
        return self._json("GET", "/v1/models")

    def get_model(self, model_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/models/{model_id}")

    def upload_failures(
        self,
        model_id: str,
        path: Path,
        *,
        name: str | None = None,
        on_progress: ProgressFn | None = None,
    ) -> dict[str, Any]:
        url = f"/v1/models/{model_id}/failure-batches"
        return self._upload(url, path, {"name": name}, on_progress)

    def list_failures(self, model_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/models/{model_id}/failure-batches")

    def delete(self, path: str) -> None:
        """DELETE a resource (`/v1/datasets/<id>`, ...): 204, or an `ApiError` (404, 409)."""
        self._check(self._http.request("DELETE", path))

    def delete_dataset(self, dataset_id: str) -> None:
        self.delete(f"/v1/datasets/{dataset_id}")

    def delete_model(self, model_id: str) -> None:
        self.delete(f"/v1/models/{model_id}")

    def delete_failures(self, model_id: str, batch_id: str) -> None:
        self.delete(f"/v1/models/{model_id}/failure-batches/{batch_id}")

    def delete_repair(self, job_id: str) -> None:
        self.delete(f"/v1/repairs/{job_id}")

    # -- repairs ----------------------------------------------------------------------

    def create_repair(
        self,
        model_id: str,
        *,
        failure_batch_ids: list[str] | None = None,
        config: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        variants: list[str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model_id": model_id, "config": dict(config or {})}
        if failure_batch_ids:
            body["failure_batch_ids"] = failure_batch_ids
        if variants:
            body["variants"] = variants
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json("POST", "/v1/repairs", json=body, headers=headers)

    def create_transfer(
        self,
        job_id: str,
        dataset_id: str,
        *,
        profile: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue a transfer of a succeeded job's genotype to another dataset."""
        body: dict[str, Any] = {"dataset_id": dataset_id, "overrides": dict(overrides or {})}
        if profile is not None:
            body["profile"] = profile
        return self._json("POST", f"/v1/repairs/{job_id}/transfers", json=body)

    def list_repairs(
        self,
        *,
        status: str | None = None,
        model_id: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        if model_id:
            params["model_id"] = model_id
        return self._json("GET", "/v1/repairs", params=params)

    def get_repair(self, job_id: str) -> dict[str, Any]:
        """The job; an unchanged job (its ETag sent back) costs the server a 304."""
        cached = self._etags.get(job_id)
        headers = {"If-None-Match": cached[0]} if cached else {}
        response = self._http.get(f"/v1/repairs/{job_id}", headers=headers)
        if response.status_code == 304 and cached:
            return cached[1]
        body: dict[str, Any] = self._check(response).json()
        if etag := response.headers.get("etag"):
            self._etags[job_id] = (etag, body)
        return body

    def cancel_repair(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/repairs/{job_id}/cancel")

    def iter_events(
        self, job_id: str, *, last_event_id: str | None = None
    ) -> Iterator[ServerEvent]:
        """The job's Server-Sent Events until the server ends the stream."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        # Read timeout over the server's 15 s keep-alive ping.
        timeout = httpx.Timeout(10.0, read=60.0)
        with self._http.stream(
            "GET", f"/v1/repairs/{job_id}/events", headers=headers, timeout=timeout
        ) as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            yield from parse_sse(response.iter_lines())

    def watch(
        self,
        job_id: str,
        *,
        interval: float = 2.0,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        timeout: float | None = None,
        stream: bool = True,
    ) -> dict[str, Any]:
        """Follow the job until it finishes or awaits labels; returns its last state.
        Uses the event stream (reconnecting with Last-Event-ID up to 3 times), and polls
        with If-None-Match when the stream is unavailable."""
        if stream:
            last_id: str | None = None
            for _attempt in range(4):
                try:
                    for event in self.iter_events(job_id, last_event_id=last_id):
                        last_id = event.id or last_id
                        if on_update is not None:
                            on_update(event.data)
                        if event.event == "end":
                            final: dict[str, Any] = event.data
                            return final
                        if event.data.get("status") in STOPS:
                            # A stage event carries a snapshot of the moving fields only
                            # (no timings, metrics...): the job record has them all.
                            return self.get_repair(job_id)
                except ApiError as exc:
                    # No stream here (an older server, a cap, a busy database): poll. An
                    # unknown job answers the poll's 404 as well.
                    if exc.status not in (404, 405, 429, 503):
                        raise
                    break
                except httpx.TransportError:
                    continue  # reconnect, resuming after the last event seen
        return self._poll(job_id, interval=interval, on_update=on_update, timeout=timeout)

    def _poll(
        self,
        job_id: str,
        *,
        interval: float,
        on_update: Callable[[dict[str, Any]], None] | None,
        timeout: float | None,
    ) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_repair(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in STOPS:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"repair job {job_id} still {job['status']} after {timeout} s")
            time.sleep(interval)

    def download_model(
        self,
        job_id: str,
        dest: Path,
        *,
        model_format: str = DEFAULT_MODEL_FORMAT,
        variant: str | None = None,
        on_progress: ProgressFn | None = None,
    ) -> str:
        """Stream the repaired model (`model_format`: safetensors, onnx, torchscript), or a
        compared `variant`'s, to `dest`; returns its SHA-256, checked against the server's
        ETag. `dest` appears only complete."""
        dest = Path(dest)
        digest = hashlib.sha256()
        url = f"/v1/repairs/{job_id}/model"
        params = {"format": model_format, **({"variant": variant} if variant else {})}
        with self._http.stream("GET", url, params=params) as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            total = int(response.headers.get("content-length", 0))
            expected = response.headers.get("etag", "").strip('"')
            done = 0
            # A digest mismatch raises inside the block, so `dest` is never written.
            with atomic_open(dest) as f:
                for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if on_progress is not None:
                        on_progress(done, total)
                if expected and digest.hexdigest() != expected:
                    raise ApiError(
                        502,
                        {
                            "code": "digest_mismatch",
                            "detail": f"downloaded SHA-256 {digest.hexdigest()} != ETag {expected}",
                        },
                    )
        return digest.hexdigest()

    def get_picks(self, job_id: str) -> dict[str, Any]:
        """The picks of a job awaiting labels: ids, files, the model's guesses."""
        return self._json("GET", f"/v1/repairs/{job_id}/picks")

    def picks_template(self, job_id: str) -> str:
        """A labels CSV with one row per pick and an empty label column."""
        return self._check(self._http.get(f"/v1/repairs/{job_id}/picks.csv")).text

    def download_picks(self, job_id: str, dest: Path) -> None:
        """The picked images (`<id>.png`) and `picks.json`, as a zip at `dest`."""
        response = self._check(self._http.get(f"/v1/repairs/{job_id}/picks.zip"))
        write_bytes_atomic(dest, response.content)

    def submit_labels(self, job_id: str, labels: Path) -> dict[str, Any]:
        """Upload labels for the picks (a .csv, or .json); the job is queued again."""
        media_type = "text/csv" if Path(labels).suffix.lower() == ".csv" else "application/json"
        return self._json(
            "POST", f"/v1/repairs/{job_id}/labels",
            content=Path(labels).read_bytes(), headers={"Content-Type": media_type},
        )  # fmt: skip

    def get_report(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/repairs/{job_id}/report")

    def get_report_markdown(self, job_id: str) -> str:
        return self._check(self._http.get(f"/v1/repairs/{job_id}/report.md")).text

    def download_figure(self, job_id: str, name: str, dest: Path) -> None:
        """One report figure (`<name>.png|svg`, from the job's `figures`) into `dest`."""
        response = self._check(self._http.get(f"/v1/repairs/{job_id}/figures/{name}"))
        write_bytes_atomic(dest, response.content)

    def download_report_png(self, job_id: str, dest: Path) -> None:
        response = self._check(self._http.get(f"/v1/repairs/{job_id}/report.png"))
        write_bytes_atomic(dest, response.content)
