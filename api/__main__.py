"""`python -m api`: the API under uvicorn with `api.workers` processes.

Each worker process builds its own engine, gate and auth cache through the factory, so
Postgres sees `api.workers x (database.pool_size + uploads.max_concurrent_total)`
connections at most (README, "Capacity")."""

from __future__ import annotations

import uvicorn

from api.metrics.process import reset_multiprocess_folder
from api.settings import InsecureSettingsError, check_secrets, get_settings


def main() -> None:
    everything = get_settings()
    try:
        check_secrets(everything)
    except InsecureSettingsError as exc:
        # Before uvicorn forks: its supervisor would restart refusing workers for ever.
        raise SystemExit(f"refusing to start: {exc}") from None
    settings = everything.api
    if settings.workers > 1:
        # Counters of an earlier run's processes would be summed into this run's.
        reset_multiprocess_folder(everything.metrics.multiproc_dir)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        proxy_headers=settings.proxy_headers,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
