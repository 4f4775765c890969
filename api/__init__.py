"""HTTP API and persistence of the model-repair service.

Kept import-light on purpose: the worker imports `api.settings` and `api.db`
without pulling in FastAPI.
"""
