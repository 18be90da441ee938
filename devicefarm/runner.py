"""Measuring one ``.tflite`` on one phone the way the paper did: one thread, one big core.

For each run: push the model with the sync protocol and verify its size and
SHA-256 on the phone while reading battery and thermal state (one shell line);
refuse a phone low on battery, wait (bounded) until it has cooled to
``cool_to_c``; run ``taskset MASK benchmark_model --graph=... --num_threads=1 ...``
with a timeout sized to the run, parse the output, then delete the model while
reading the state again (one shell line). The state before is thus read right
before the run, and each run costs three shell round trips and one push.

Failures are classified for the farm: :class:`~devicefarm.connection.PhoneUnavailable`
and :class:`PhoneUnhealthy` are the phone's (the job goes to another phone);
:class:`MeasurementFailed` is the model's or the output's (the job fails once,
with the raw output kept).
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from akd_tf.benchmark import BenchmarkResult, RunSettings
from akd_tf.errors import DeviceError, InvalidInput
from devicefarm.benchmark_output import BenchmarkOutputError, parse_benchmark_output
from devicefarm.connection import CommandFailed, CommandResult, PhoneConnection, PhoneUnavailable
from devicefarm.probe import CONDITION_COMMANDS, Condition, condition_from, core_mask, read_condition

DEFAULT_WORKDIR = "/data/local/tmp/akd-tf"
BENCHMARK_RUNTIME = "benchmark_model"


class PhoneUnhealthy(DeviceError, RuntimeError):
    """The phone is too hot or too low on battery to give trustworthy numbers."""


class MeasurementFailed(DeviceError, ValueError):
    """The model or benchmark_model's output is at fault, not the phone; ``raw_output`` keeps the evidence."""

    def __init__(self, message: str, raw_output: str = ""):
        super().__init__(message)
        self.raw_output = raw_output


@dataclass(frozen=True)
class PhoneLimits:
    """When a phone may be measured."""

    cool_to_c: float = 40.0  # wait until every reading is at or below this before a run
    cool_timeout_s: float = 600.0  # then refuse
    min_battery_pct: float = 20.0
    max_thermal_status: int = 2  # "moderate"; severe (3) and above means throttling
    poll_s: float = 5.0

    def __post_init__(self) -> None:
        if self.cool_timeout_s < 0 or self.poll_s <= 0:
            raise InvalidInput(f"cool_timeout_s must be >= 0 and poll_s > 0, got {self.cool_timeout_s}, {self.poll_s}")
        if not 0 <= self.min_battery_pct <= 100:
            raise InvalidInput(f"min_battery_pct must be in 0..100, got {self.min_battery_pct}")


@dataclass(frozen=True)
class PhoneMeasurement:
    result: BenchmarkResult
    before: Condition
    after: Condition


def benchmark_timeout_s(settings: RunSettings) -> float:
    """benchmark_model stops each phase (warm-up, timed) at ``max_secs``; add a minute for loading."""
    return 60.0 + 2.0 * settings.max_secs


def benchmark_argv(binary: str, graph: str, core: int, settings: RunSettings) -> list[str]:
    return ["taskset", core_mask(core), binary, f"--graph={graph}", f"--num_threads={settings.num_threads}",
            f"--num_runs={settings.num_runs}", f"--warmup_runs={settings.warmup_runs}",
            f"--min_secs={settings.min_secs:g}", f"--warmup_min_secs={settings.warmup_min_secs:g}",
            f"--max_secs={settings.max_secs:g}"]


def health_problems(condition: Condition, limits: PhoneLimits, *, for_cooling: bool = False) -> list[str]:
    """Why the phone should not be measured now (empty when it may)."""
    problems = []
    level = condition.battery.get("level_pct")
    if level is not None and level < limits.min_battery_pct:
        problems.append(f"battery at {level:g}% is below the minimum {limits.min_battery_pct:g}%")
    status = condition.thermal.get("status")
    if status is not None and status > limits.max_thermal_status:
        problems.append(f"thermal status {condition.thermal['status_name']} ({status}) means throttling")
    if not for_cooling and condition.temperature_c > limits.cool_to_c:
        problems.append(f"temperature {condition.temperature_c:.1f} °C is above {limits.cool_to_c:g} °C")
    return problems


class PhoneRunner:
    """Runs benchmarks on one registered phone."""

    def __init__(self, conn: PhoneConnection, *, core: int, benchmark_binary: str, name: str,
                 limits: PhoneLimits = PhoneLimits(), workdir: str = DEFAULT_WORKDIR,
                 fixed_performance: bool = True, log: Callable[[str], None] | None = None):
        self.conn, self.core, self.binary, self.name = conn, core, benchmark_binary, name
        self.limits, self.workdir, self.log = limits, workdir, log or (lambda message: None)
        self._fixed_performance = fixed_performance
        self.fixed_performance_enabled: bool | None = None
        self._models_dir_made = False

    def prepare(self) -> None:
        """Enable Android's fixed-performance mode where the OS offers it (Android 10+; needs no root)."""
        if self._fixed_performance and self.fixed_performance_enabled is None:
            result = self.conn.run(["cmd", "power", "set-fixed-performance-mode-enabled", "true"], check=False)
            self.fixed_performance_enabled = result.exit_code == 0
            if not self.fixed_performance_enabled:
                self.log(f"{self.name}: fixed-performance mode unavailable ({result.output.strip()[:120]})")

    def wait_until_ready(self, condition: Condition | None = None) -> Condition:
        """The phone's condition once it may be measured; ``PhoneUnhealthy`` if it never gets there.

        ``condition`` is a reading just taken (else the phone is read first).
        """
        deadline = time.monotonic() + self.limits.cool_timeout_s
        while True:
            if condition is None:
                condition = read_condition(self.conn)
            blocking = health_problems(condition, self.limits, for_cooling=True)
            if blocking:
                raise PhoneUnhealthy(f"{self.name}: refusing to measure: {'; '.join(blocking)}")
            if condition.temperature_c <= self.limits.cool_to_c:
                return condition
            if time.monotonic() >= deadline:
                raise PhoneUnhealthy(f"{self.name}: refusing to measure: still {condition.temperature_c:.1f} °C "
                                     f"after waiting {self.limits.cool_timeout_s:g} s to cool to "
                                     f"{self.limits.cool_to_c:g} °C")
            self.log(f"{self.name}: {condition.temperature_c:.1f} °C, cooling to {self.limits.cool_to_c:g} °C")
            time.sleep(self.limits.poll_s)
            condition = None

    def push_verified(self, local: Path | bytes, remote: str, *, mode: int = 0o644,
                      then: tuple[list[str], ...] = ()) -> list[CommandResult]:
        """Push ``local`` (a file, or its bytes) and check its SHA-256 on the phone, which also proves the size
        (one re-push on a mismatch).

        ``then`` are commands safe to run twice (reads) sent in the same shell line as the check; their
        results (from the check that passed) are returned.
        """
        data = bytes(local) if isinstance(local, (bytes, bytearray)) else Path(local).read_bytes()
        expected = hashlib.sha256(data).hexdigest()
        for _ in range(2):
            self.conn.push(data, remote, mode=mode)
            check, *results = self.conn.run_all([["sha256sum", remote], *then], check=False)
            if check.exit_code != 0:
                raise CommandFailed(check.argv, check.exit_code, check.output)
            digest = check.output.split(maxsplit=1)
            if digest and digest[0] == expected:
                return results
            size = self.conn.run(["stat", "-c", "%s", remote], check=False).output.strip()
            self.log(f"{self.name}: {posixpath.basename(remote)} arrived corrupt (size {size}, want {len(data)})")
        raise PhoneUnavailable(f"{self.name}: {remote} arrived corrupt twice (size or SHA-256 mismatch)")

    def run_benchmark(self, remote_graph: str, settings: RunSettings) -> BenchmarkResult:
        argv = benchmark_argv(self.binary, remote_graph, self.core, settings)
        run = self.conn.run(argv, timeout_s=benchmark_timeout_s(settings), check=False)
        # what was run: one benchmark_model on the pinned core (the host's repeats do not apply on a phone)
        settings = replace(settings, core=self.core, runtime=BENCHMARK_RUNTIME, repeats=1, repeat_gap_s=0.0,
                           max_extra_repeats=0)
        if run.exit_code != 0:
            raise MeasurementFailed(f"{self.name}: benchmark_model exited with status {run.exit_code}: "
                                    f"{' | '.join(run.output.strip().splitlines()[-3:])}", run.output)
        try:
            return parse_benchmark_output(run.output, device=self.name, settings=settings)
        except BenchmarkOutputError as error:
            raise MeasurementFailed(f"{self.name}: {error}", run.output) from error

    def measure(self, tflite: Path | bytes, settings: RunSettings, remote_name: str) -> PhoneMeasurement:
        """Measure ``tflite`` (a local file, or its bytes), stored on the phone as ``remote_name`` in the work
        directory."""
        if "/" in remote_name or remote_name in ("", ".", ".."):
            raise InvalidInput(f"remote model name must be a plain file name, got {remote_name!r}")
        self.prepare()
        remote = posixpath.join(self.workdir, "models", remote_name)
        if not self._models_dir_made:
            self.conn.run(["mkdir", "-p", posixpath.dirname(remote)])
            self._models_dir_made = True
        removed = False
        try:
            before = self.wait_until_ready(condition_from(*self.push_verified(tflite, remote,
                                                                              then=CONDITION_COMMANDS)))
            result = self.run_benchmark(remote, settings)
            _, *after = self.conn.run_all([["rm", "-f", remote], *CONDITION_COMMANDS], check=False)
            removed = True
        finally:
            if not removed:
                try:
                    self.conn.run(["rm", "-f", remote], check=False)
                except PhoneUnavailable:
                    pass  # the phone dropped; the caller learns from the original error
        return PhoneMeasurement(result, before, condition_from(*after))


def check_benchmark_binary(runner: PhoneRunner, probe_model: Path) -> PhoneMeasurement:
    """Run the installed benchmark_model once on a small model: proves it executes and prints parseable output."""
    try:
        return runner.measure(probe_model, RunSettings(num_runs=3, warmup_runs=1, min_secs=0.0,
                                                       warmup_min_secs=0.0, max_secs=30.0), "akd-tf-probe.tflite")
    except CommandFailed as error:
        raise MeasurementFailed(f"{runner.name}: {error}", error.output) from error
