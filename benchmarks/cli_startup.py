"""CLI start-up: wall time of `akd-tf --help` and `akd-tf arch sample` against a bare Python start.

Each command is started --repeats times as a fresh process, interleaved with the baseline
(`python -c pass`, the interpreter's own start-up), so bursts of host noise hit all of them alike.
Medians are printed in milliseconds with each command's ratio to the baseline.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 15]

The headline (median of `akd-tf arch sample`, ms) is printed last.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

AKD_TF = str(Path(sys.executable).with_name("akd-tf"))
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "akd-tf --help": [AKD_TF, "--help"],
    "akd-tf arch sample": [AKD_TF, "arch", "sample", "--n", "3", "--seed", "0"],
}


def wall_seconds(argv: list[str]) -> float:
    """Seconds from starting ``argv`` to its exit; a failing command is an error."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="starts per command (default 15)")
    args = parser.parse_args()
    for argv in COMMANDS.values():  # warm the file cache and .pyc files once
        wall_seconds(argv)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, argv in COMMANDS.items():
            times[name].append(wall_seconds(argv))
    baseline = statistics.median(times["python -c pass"])
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<20} median {median * 1000:7.1f} ms  min {min(samples) * 1000:7.1f} ms  "
              f"{median / baseline:5.2f}x python start-up")
    print(f"akd-tf arch sample: {statistics.median(times['akd-tf arch sample']) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
