"""Errors `repair_core` raises for bad input. Messages say what is wrong and where."""

from __future__ import annotations


class RepairInputError(ValueError):
    """The caller's data, model or config cannot be used; retrying will not help."""


class UnsafeCheckpointError(RepairInputError):
    """A checkpoint tried to run code or is not a plain tensor container."""
