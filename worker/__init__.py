"""Celery workers that run repair jobs."""
