"""The arguments every latency-table benchmark shares: which table (database, resolution, classes)."""

from __future__ import annotations

import argparse
from pathlib import Path

CACHE = Path(__file__).with_name(".cache")


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resolution", type=int, default=32, help="input height and width (default 32)")
    parser.add_argument("--classes", type=int, default=10, help="output classes (default 10)")
    parser.add_argument("--db", default=f"sqlite:///{CACHE / 'host.db'}",
                        help="database holding the table (default benchmarks/.cache/host.db)")


def ensure_cache() -> None:
    CACHE.mkdir(exist_ok=True)
