"""latency_db: see README.md."""
