"""How fast does the subgraph strategy carve a ResNet-20 teacher to a latency target on the demo?

Trains the demo's ResNet-20 teacher (``akd-tf teacher train --model resnet20 --epochs 3``, not timed;
``--teacher`` reuses one), then runs ``akd-tf search --strategy subgraph`` on this host towards
``--target-ms`` (or ``--target-share`` of the teacher's own latency) in a fresh database, and reports
each trial and the time until the first student within the tolerance. Goal (issue 18): within 10%
of the target in at most 15 minutes.

    .venv/bin/python benchmarks/subgraph_demo.py [--teacher T.keras] [--target-share 0.6] [--cost latency]

The headline (minutes to a student within the tolerance, or that none was reached) is printed last.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from latency_db.schema import as_utc, utcnow
from latency_db.store import open_store
from search import runs
from search.config import SubgraphSettings

CLI = [sys.executable, "-c", "from akd_tf.cli import main; main()"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=None, help="a trained teacher .keras (default: train one, untimed)")
    parser.add_argument("--target-ms", type=float, default=None)
    parser.add_argument("--target-share", type=float, default=0.6,
                        help="without --target-ms: this share of the teacher's measured latency")
    parser.add_argument("--cost", default="latency", choices=("latency", "macs", "units"))
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--proxy-epochs", type=int, default=1)
    parser.add_argument("--gate-epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="subgraph-bench-") as tmp:
        tmp = Path(tmp)
        teacher = args.teacher
        if teacher is None:
            teacher = str(tmp / "teacher.keras")
            subprocess.run([*CLI, "teacher", "train", "--model", "resnet20", "--epochs", "3", "--out", teacher],
                           check=True, stdout=subprocess.DEVNULL)
        db = f"sqlite:///{tmp}/bench.db"
        target = args.target_ms
        if target is None:
            from akd_tf.benchmark import WHOLE_MODEL_SETTINGS, run_local_benchmark
            from akd_tf.export import export_tflite, load_keras_model

            exported = export_tflite(load_keras_model(teacher), tmp / "teacher.tflite")
            teacher_ms = run_local_benchmark(exported.path, WHOLE_MODEL_SETTINGS).min_us / 1000
            target = round(args.target_share * teacher_ms, 3)
        command = [*CLI, "search", "--strategy", "subgraph", "--name", "bench", "--teacher", teacher,
                   "--target-ms", str(target), "--trials", str(args.trials), "--proxy-epochs", str(args.proxy_epochs),
                   "--gate-epochs", str(args.gate_epochs), "--subgraph-cost", args.cost, "--db", db,
                   "--cache-dir", str(tmp / "cache")]
        started_at, started = utcnow(), time.perf_counter()  # the clock runs from the command's start
        subprocess.run(command, check=True)
        total = time.perf_counter() - started
        store = open_store(db)
        trials = runs.all_trials(store, runs.get_run(store, "bench").id)
        tolerance, reached = SubgraphSettings.tolerance, None
        for trial in trials:
            within = abs(trial.latency_ms / target - 1) <= tolerance
            print(f"trial {trial.number}: lambda {trial.train['strength']:.4g}, {trial.latency_ms:.3f} ms "
                  f"({trial.latency_ms / target - 1:+.1%}), top-1 {trial.accuracy:.2%}, {trial.params:,} params"
                  f"{f' (within {tolerance:.0%})' if within else ''}")
            if within and reached is None:
                reached = (as_utc(trial.finished_at) - started_at).total_seconds()
        print(f"target {target} ms, cost {args.cost}: {len(trials)} trials in {total / 60:.1f} min")
        if reached is None:
            print(f"no student within {tolerance:.0%} of {target} ms after {total / 60:.1f} min (goal: within 15 min)")
        else:
            print(f"a student within {tolerance:.0%} of {target} ms after {reached / 60:.1f} min from the command's "
                  "start (goal: at most 15 min)")


if __name__ == "__main__":
    main()
