"""The service layer: keyword-only functions between routes and the database/queue.

They take a session and the caller's owner id, filter every query by owner, commit
before they enqueue, and raise `api.errors` domain errors (mapped to HTTP in one place).
"""
