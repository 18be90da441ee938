"""devicefarm: see README.md."""
