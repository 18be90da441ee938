"""CLI start-up: wall time of `akd-tf --help` and `akd-tf arch sample` against a bare Python start.

Each command is started --repeats times as a fresh process, interleaved with the baseline
(`python -c pass`, the interpreter's own start-up), so bursts of host noise hit all of them alike.
The CLI runs as its console script does (`from akd_tf.cli import main; main()`) from this
checkout; with --before-src DIR (say, a `git worktree` of an older commit) the same commands also
run from DIR's sources, interleaved with the others, for a before/after in one process.
Medians are printed in milliseconds with each command's ratio to the baseline.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 15] [--before-src DIR]

The headline (median of `akd-tf arch sample`, ms; with --before-src, after/before) is printed last.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = ["-c", "import sys; from akd_tf.cli import main; sys.exit(main())"]
ARGUMENTS = {"--help": ["--help"], "arch sample": ["arch", "sample", "--n", "3", "--seed", "0"]}


def wall_seconds(argv: list[str], src: Path | None) -> float:
    """Seconds from starting ``argv`` (with ``src`` first on the import path) to its exit; failing is an error."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="starts per command (default 15)")
    parser.add_argument("--before-src", type=Path, default=None,
                        help="a checkout of an earlier commit to time the same commands from")
    args = parser.parse_args()
    trees = {"": ROOT} if args.before_src is None else {"after ": ROOT, "before ": args.before_src.resolve()}
    commands = {"python -c pass": ([sys.executable, "-c", "pass"], None)}
    for label, src in trees.items():
        for name, arguments in ARGUMENTS.items():
            commands[f"{label}akd-tf {name}"] = ([sys.executable, *CLI, *arguments], src)
    for argv, src in commands.values():  # warm the file cache once
        wall_seconds(argv, src)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, (argv, src) in commands.items():
            times[name].append(wall_seconds(argv, src))
    medians = {name: statistics.median(samples) for name, samples in times.items()}
    baseline = medians["python -c pass"]
    for name, samples in times.items():
        print(f"{name:<26} median {medians[name] * 1000:7.1f} ms  min {min(samples) * 1000:7.1f} ms  "
              f"{medians[name] / baseline:5.2f}x python start-up")
    if args.before_src is None:
        print(f"akd-tf arch sample: {medians['akd-tf arch sample'] * 1000:.1f} ms")
        return
    for name in ARGUMENTS:
        ratio = medians[f"after akd-tf {name}"] / medians[f"before akd-tf {name}"]
        print(f"akd-tf {name}: after/before {ratio:.2f}")


if __name__ == "__main__":
    main()
