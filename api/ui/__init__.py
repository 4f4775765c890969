"""The dashboard at `/ui`: server-rendered pages over the same services and owner check as
the JSON API, a small script for live progress and forms (docs/dashboard.md)."""
