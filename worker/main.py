"""The worker's entry point: `celery -A worker.main:app worker`.

The only module in worker/ that builds a Celery app when imported; everything else
imports the factory (`worker.celery_app.create_celery_app`) or what it needs directly.
The settings are read from the environment when the configuration is first needed.
"""

from __future__ import annotations

from worker.celery_app import create_celery_app

app = create_celery_app()
