"""Measuring one ``.tflite`` on one phone the way the paper did: one thread, one big core.

For each measurement: push the model with the sync protocol and verify its size and
SHA-256 on the phone while turning on fixed-performance mode (where asked for and
offered) and reading battery, thermal and the measuring core's cpufreq state (one
shell line); refuse a phone low on battery, wait (bounded) until it has cooled to
``cool_to_c``; run the settings' repeats (:meth:`PhoneRunner.run_benchmark`), each
``taskset MASK benchmark_model --graph=... --num_threads=1 ...`` with its share of the
timed runs and a timeout sized to that run, ``repeat_gap_s`` apart, the phone's health
read in each gap; pool them into one result (:mod:`devicefarm.repeats`), then delete
the model while reading the state again (one shell line). The state before is thus
read right before the first repeat, and a measurement of R repeats costs 2R + 1 shell
round trips and one push (three for one repeat). The mode is turned off again when
the measurement session ends (:meth:`PhoneRunner.session`).

Failures are classified for the farm: :class:`~devicefarm.connection.PhoneUnavailable`
and :class:`PhoneUnhealthy` are the phone's (the job goes to another phone);
:class:`MeasurementFailed` is the model's or the output's (the job fails once,
with the raw output kept).
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from akd_tf.benchmark import BenchmarkResult, RunSettings, repeat_share, wants_another_repeat
from akd_tf.errors import DeviceError, InvalidInput
from devicefarm.benchmark_output import BenchmarkOutputError, parse_benchmark_output
from devicefarm.connection import CommandFailed, CommandResult, PhoneConnection, PhoneUnavailable
from devicefarm.probe import Condition, condition_commands, condition_from, core_mask, read_condition
from devicefarm.repeats import joined_outputs, pool_repeats

DEFAULT_WORKDIR = "/data/local/tmp/akd-tf"
BENCHMARK_RUNTIME = "benchmark_model"  # a phone registered before its binary's digest was recorded


def benchmark_runtime(sha256_hex: str) -> str:
    """The runtime of a phone whose ``benchmark_model`` has this SHA-256: ``benchmark_model@sha256:1a2b3c4d5e6f``
    (12 hex digits). Android's binary prints no version of its own, so its content names it: another build
    is another runtime, and its timings go to another table version (:mod:`latency_db.tables`)."""
    digest = sha256_hex.strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidInput(f"a SHA-256 is 64 hex digits, got {sha256_hex!r}")
    return f"{BENCHMARK_RUNTIME}@sha256:{digest[:12]}"


FIXED_PERFORMANCE_COMMAND = ["cmd", "power", "set-fixed-performance-mode-enabled"]  # + "true" | "false"


class PhoneUnhealthy(DeviceError, RuntimeError):
    """The phone is too hot or too low on battery to give trustworthy numbers."""


class MeasurementFailed(DeviceError, ValueError):
    """The model or benchmark_model's output is at fault, not the phone; ``raw_output`` keeps the evidence."""

    def __init__(self, message: str, raw_output: str = ""):
        super().__init__(message)
        self.raw_output = raw_output


class RuntimeChanged(MeasurementFailed):
    """A measurement was asked of one benchmark binary (its runtime) and the phone now runs another: it fails
    rather than put the new binary's timings where the old one's belong (a table version, a reused result)."""


@dataclass(frozen=True)
class PhoneLimits:
    """When a phone may be measured.

    Before a measurement's first repeat the phone must be at or below ``cool_to_c`` (waited for up to
    ``cool_timeout_s``), at or below ``max_thermal_status`` and at or above ``min_battery_pct``. Between its
    repeats only the last two are checked (a phone past them stops the job as :class:`PhoneUnhealthy`): the
    repeats warm the phone as one longer run would, and waiting for it to cool between them would stretch the
    gap from ``repeat_gap_s`` to minutes.
    """

    cool_to_c: float = 40.0  # wait until every reading is at or below this before the first repeat
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
    """The timeout (seconds) of the shell command of one repeat of ``settings``, one benchmark_model run: it stops
    each phase (warm-up, timed) at ``max_secs``, whatever its share of the runs; add a minute for loading. Each
    repeat is a command of its own with this timeout (the job's lease is renewed meanwhile), so no command
    has to hold every repeat of a job."""
    return 60.0 + 2.0 * settings.max_secs


def benchmark_argv(binary: str, graph: str, core: int, settings: RunSettings) -> list[str]:
    """The command line of one repeat of ``settings``: its share of the timed runs and seconds
    (:func:`akd_tf.benchmark.repeat_share`), the rest as given."""
    runs, secs = repeat_share(settings)
    return ["taskset", core_mask(core), binary, f"--graph={graph}", f"--num_threads={settings.num_threads}",
            f"--num_runs={runs}", f"--warmup_runs={settings.warmup_runs}", f"--min_secs={secs:g}",
            f"--warmup_min_secs={settings.warmup_min_secs:g}", f"--max_secs={settings.max_secs:g}"]


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
    """Runs benchmarks on one registered phone.

    With ``fixed_performance`` each measurement asks for Android's fixed-performance mode (clocks held at a
    level the phone can sustain; ``cmd power set-fixed-performance-mode-enabled``, Android 11+, no root) and
    records in its ``cpu`` state under ``"fixed_performance"``: ``True`` (on), ``False`` (not asked for) or
    ``None`` (the phone refused it: a warning is logged once and the phone is measured without it). The
    mode is turned off when the :meth:`session` ends.
    """

    def __init__(self, conn: PhoneConnection, *, core: int, benchmark_binary: str, name: str,
                 limits: PhoneLimits = PhoneLimits(), workdir: str = DEFAULT_WORKDIR,
                 fixed_performance: bool = True, log: Callable[[str], None] | None = None,
                 runtime: str = BENCHMARK_RUNTIME):
        self.conn, self.core, self.binary, self.name = conn, core, benchmark_binary, name
        self.runtime = runtime  # what the phone's row says measures on it (benchmark_runtime of its binary)
        self.limits, self.workdir, self.log = limits, workdir, log or (lambda message: None)
        self.fixed_performance = fixed_performance
        self._fixed_performance_refused = False  # the phone said no once: it is not asked again
        self._in_session = False
        self._mode_asked_in_session = False  # the mode may be on: turned off when the session ends
        self._models_dir_made = False

    @contextmanager
    def session(self) -> Iterator["PhoneRunner"]:
        """A measurement session: fixed-performance mode, once a measurement turned it on, stays on until the
        session ends, then is turned off again, also after an error or an interrupt. A measurement outside
        any session is a session of its own; sessions inside one are part of it."""
        if self._in_session:
            yield self
            return
        self._in_session = True
        try:
            yield self
        finally:
            self._in_session = False
            if self._mode_asked_in_session and not self._fixed_performance_refused:
                self._turn_fixed_performance_off()
            self._mode_asked_in_session = False

    def _fixed_performance_commands(self) -> list[list[str]]:
        """The command that turns the mode on, sent with each measurement's first shell line (setting it twice
        is harmless; a phone that restarted meanwhile gets it back), or none."""
        if not self.fixed_performance or self._fixed_performance_refused:
            return []
        self._mode_asked_in_session = True
        return [[*FIXED_PERFORMANCE_COMMAND, "true"]]

    def _fixed_performance_answer(self, results: list[CommandResult]) -> bool | None:
        """What the measurement records (see the class), from the result of
        :meth:`_fixed_performance_commands`."""
        if not self.fixed_performance:
            return False
        if not results:
            return None  # refused earlier
        if results[0].exit_code == 0:
            return True
        self._fixed_performance_refused = True
        said = " | ".join(results[0].output.strip().splitlines()) or "no output"
        self.log(f"Warning: {self.name}: the phone refused fixed-performance mode (exit status "
                 f"{results[0].exit_code}: {said[:200]}); measuring without it")
        return None

    def _turn_fixed_performance_off(self) -> None:
        """Android's default; a phone that dropped keeps the mode until it restarts, which is said, not raised
        (this runs while an error may be on its way up)."""
        try:
            result = self.conn.run([*FIXED_PERFORMANCE_COMMAND, "false"], check=False)
        except PhoneUnavailable as error:
            self.log(f"Warning: {self.name}: fixed-performance mode may still be on: {error}")
            return
        if result.exit_code != 0:
            self.log(f"Warning: {self.name}: turning fixed-performance mode off failed (exit status "
                     f"{result.exit_code}: {result.output.strip()[:200]})")

    def wait_until_ready(self, condition: Condition | None = None) -> Condition:
        """The phone's condition once it may be measured; ``PhoneUnhealthy`` if it never gets there.

        ``condition`` is a reading just taken (else the phone is read first).
        """
        deadline = time.monotonic() + self.limits.cool_timeout_s
        while True:
            if condition is None:
                condition = read_condition(self.conn, self.core)
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

    def binary_digest(self) -> str:
        """The SHA-256 (hex) of the phone's ``benchmark_model``; :class:`CommandFailed` when it cannot be read."""
        check = self.conn.run(["sha256sum", self.binary], check=False)
        digest = check.output.split(maxsplit=1)
        if check.exit_code != 0 or not digest:
            raise CommandFailed(check.argv, check.exit_code, check.output)
        return digest[0]

    def push_verified(self, local: Path | bytes, remote: str, *, mode: int = 0o644,
                      then: tuple[list[str], ...] = ()) -> list[CommandResult]:
        """Push ``local`` (a file, or its bytes) and check its SHA-256 on the phone, which also proves the size
        (one re-push on a mismatch).

        ``then`` are commands safe to run twice (reads, settings made twice) sent in the same shell line as
        the check; their results (from the check that passed) are returned.
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
        """Measure the model at ``remote_graph`` in the repeats of ``settings``, pooled into one result
        (:func:`devicefarm.repeats.pool_repeats`) whose settings are ``settings`` on this runner's core and
        runtime. Settings that name another runtime (asked of the binary the phone had before) raise
        :class:`RuntimeChanged` before anything runs.

        Each repeat is one benchmark_model run, its own shell command (:func:`benchmark_argv`, timeout
        :func:`benchmark_timeout_s`), so a connection dropped during a repeat reruns that repeat only
        (:class:`~devicefarm.connection.PhoneConnection` retries). Repeats are taken while
        :func:`akd_tf.benchmark.wants_another_repeat` says so, the host's rule, ``repeat_gap_s`` apart; in
        each gap the phone's condition is read and a phone that now throttles or is low on battery stops the
        job as :class:`PhoneUnhealthy` (see :class:`PhoneLimits`). A repeat that fails or prints no timings
        raises :class:`MeasurementFailed` with the output of every repeat so far.
        """
        if settings.runtime and settings.runtime != self.runtime:
            raise RuntimeChanged(f"{self.name}: this measurement was asked of {settings.runtime}, but the phone now "
                                 f"runs {self.runtime} (its benchmark binary was replaced): ask for it again")
        argv = benchmark_argv(self.binary, remote_graph, self.core, settings)
        timeout_s = benchmark_timeout_s(settings)
        ran = replace(settings, core=self.core, runtime=self.runtime)  # what runs: these settings, this core
        repeats: list[BenchmarkResult] = []
        outputs: list[str] = []
        while wants_another_repeat([r.min_us for r in repeats], settings):
            if repeats:
                self._gap_after(len(repeats), settings.repeat_gap_s)
            run = self.conn.run(argv, timeout_s=timeout_s, check=False)
            outputs.append(run.output)
            label = self.name if len(outputs) == 1 else f"{self.name}: repeat {len(outputs)}"
            if run.exit_code != 0:
                raise MeasurementFailed(f"{label}: benchmark_model exited with status {run.exit_code}: "
                                        f"{' | '.join(run.output.strip().splitlines()[-3:])}", joined_outputs(outputs))
            try:
                repeats.append(parse_benchmark_output(run.output, device=self.name, settings=ran))
            except BenchmarkOutputError as error:
                raise MeasurementFailed(f"{label}: {error}", joined_outputs(outputs)) from error
        return pool_repeats(repeats, settings=ran)

    def _gap_after(self, done: int, gap_s: float) -> None:
        """The gap after repeat ``done``: ``gap_s`` seconds in which the phone's condition is read;
        :class:`PhoneUnhealthy` when it now throttles or is low on battery (warmth alone goes on)."""
        gap_ends = time.monotonic() + gap_s
        problems = health_problems(read_condition(self.conn, self.core), self.limits, for_cooling=True)
        if problems:
            raise PhoneUnhealthy(f"{self.name}: stopped after repeat {done}: {'; '.join(problems)}")
        time.sleep(max(0.0, gap_ends - time.monotonic()))

    def measure(self, tflite: Path | bytes, settings: RunSettings, remote_name: str) -> PhoneMeasurement:
        """Measure ``tflite`` (a local file, or its bytes), stored on the phone as ``remote_name`` in the work
        directory; within the current :meth:`session`, else in one of its own."""
        if "/" in remote_name or remote_name in ("", ".", ".."):
            raise InvalidInput(f"remote model name must be a plain file name, got {remote_name!r}")
        remote = posixpath.join(self.workdir, "models", remote_name)
        with self.session():
            if not self._models_dir_made:
                self.conn.run(["mkdir", "-p", posixpath.dirname(remote)])
                self._models_dir_made = True
            removed = False
            try:
                mode = self._fixed_performance_commands()
                checked = self.push_verified(tflite, remote, then=(*mode, *condition_commands(self.core)))
                fixed_performance = self._fixed_performance_answer(checked[:len(mode)])
                before = self.wait_until_ready(condition_from(checked[len(mode):], self.core))
                result = self.run_benchmark(remote, settings)
                _, *after = self.conn.run_all([["rm", "-f", remote], *condition_commands(self.core)], check=False)
                removed = True
            finally:
                if not removed:
                    try:
                        self.conn.run(["rm", "-f", remote], check=False)
                    except PhoneUnavailable:
                        pass  # the phone dropped; the caller learns from the original error
        mode_state, after_condition = {"fixed_performance": fixed_performance}, condition_from(after, self.core)
        return PhoneMeasurement(result, replace(before, cpu={**before.cpu, **mode_state}),
                                replace(after_condition, cpu={**after_condition.cpu, **mode_state}))


def check_benchmark_binary(runner: PhoneRunner, probe_model: Path) -> PhoneMeasurement:
    """Run the installed benchmark_model once on a small model: proves it executes and prints parseable output."""
    try:
        return runner.measure(probe_model, RunSettings(num_runs=3, warmup_runs=1, min_secs=0.0,
                                                       warmup_min_secs=0.0, max_secs=30.0), "akd-tf-probe.tflite")
    except CommandFailed as error:
        raise MeasurementFailed(f"{runner.name}: {error}", error.output) from error
