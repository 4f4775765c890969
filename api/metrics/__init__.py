"""Prometheus metrics at `/metrics`: what each API process counts (`process`), and what is
read from the database when scraped (`database`). See README, "Metrics"."""
