"""The emulated ``benchmark_model``: TFLite's benchmark tool, running the pushed model with the host interpreter.

Output follows the real tool line by line: parameter echo, ``Loaded model``, ``Initialized session in
X ms.``, one ``Running benchmark for at least ...`` line and one ``count= first= curr= min= max= avg= std=``
line per phase (warm-up, then timed), then the summary in the phone's ``bm_format``:

- ``recent`` (TF >= 2.4, ``INFO: `` prefixed): ``Inference timings in us: Init: N, First inference: N,
  Warmup (avg): X, Inference (avg): X`` and ``Memory footprint delta from the start of the tool (MB): ...``
- ``older``: ``Average inference timings in us: Warmup: X, Init: N, Inference: X`` and ``Peak memory ...``
- ``oldest``: ``Average inference timings in us: Warmup: X, Init: N, no stats: X``

Every figure comes from :func:`akd_tf.benchmark.time_model` on the sandbox file: the warm-up phase is the
first inference plus the warm-up runs (so ``first=`` is the first inference, as on the real tool), values
are whole microseconds except the averages, ``std`` is the truncated population standard deviation.
Memory figures are ``ru_maxrss`` deltas of this process, the real tool's method. The phone heats while the
model runs. ``--use_xnnpack`` and ``--enable_op_profiling`` are accepted and echoed but change nothing:
the host interpreter is used as configured. Lines up to ``Loaded model`` are sent before the run; the
rest when the run has finished (the real tool is silent while it runs, too).
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass, replace
from pathlib import Path

from akd_tf.benchmark import RawTimings, RunSettings, time_model
from akd_tf.interpreter import check_tflite_file, make_interpreter
from devicefarm.emulator.faults import InjectedDisconnect
from devicefarm.emulator.sandbox import SandboxError
from devicefarm.emulator.state import PhoneState
from devicefarm.emulator.stdio import Output

PROGRAM_PREFIX = "benchmark_model"
SEED = 0
GARBAGE = (b"\x89\x02\xfe\xff\x00 ~~~ \x1b[0;31m@@##%%&& 0xdeadbeef \x7f\x7f\n"
           b"?? }{ ][ \xc3\x28 stack smashing ... no timings here\n")


@dataclass(frozen=True)
class _Flag:
    kind: type
    default: object
    label: str


FLAGS = {
    "num_runs": _Flag(int, 50, "Min num runs"),
    "min_secs": _Flag(float, 1.0, "Min runs duration (seconds)"),
    "max_secs": _Flag(float, 150.0, "Max runs duration (seconds)"),
    "num_threads": _Flag(int, -1, "Num threads"),
    "warmup_runs": _Flag(int, 1, "Min warmup runs"),
    "warmup_min_secs": _Flag(float, 0.5, "Min warmup runs duration (seconds)"),
    "graph": _Flag(str, "", "Graph"),
    "enable_op_profiling": _Flag(bool, False, "Enable op profiling"),
    "use_xnnpack": _Flag(bool, False, "Use xnnpack"),
}


class _UsageError(ValueError):
    """A command line the tool rejects; the message is its ``ERROR:`` line."""


_TYPE_NAMES = {int: "int32", float: "float", bool: "bool", str: "string"}


def usage() -> str:
    """``Flags::Usage``: one ``--name=default  type  optional  label`` line per flag."""
    lines = ["usage: benchmark_model", "Flags:"]
    for name, flag in FLAGS.items():
        default = str(flag.default).lower() if flag.kind is bool else flag.default
        lines.append(f"\t--{name}={default}\t{_TYPE_NAMES[flag.kind]}\toptional\t{flag.label}")
    return "\n".join(lines) + "\n"


def _value(name: str, text: str):
    kind = FLAGS[name].kind
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        value = kind(text)
    except ValueError:
        raise _UsageError(f"Couldn't interpret value '{text}' for flag {name}.") from None
    if kind is float and not math.isfinite(value):
        raise _UsageError(f"Couldn't interpret value '{text}' for flag {name}.")
    return value


def parse_flags(argv: list[str]) -> dict[str, object]:
    """The flags given on the command line (``--name=value`` only); ``_UsageError`` for anything else."""
    given: dict[str, object] = {}
    for arg in argv:
        name, sep, text = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not sep or name not in FLAGS:
            raise _UsageError(f"Unconsumed cmdline flags: {arg}")
        given[name] = _value(name, text)
    return given


def _format(value: float) -> str:
    """A double as C++ ``std::ostream`` prints it by default (6 significant digits)."""
    return f"{value:.6g}"


def stats_line(samples_us: list[float]) -> str:
    """The statistics of whole-microsecond samples in each form tflite::Stat prints: ``count=0`` for none,
    ``count=N curr=V`` (``(all same)`` appended when N > 1) when every sample is equal, else
    ``count= first= curr= min= max= avg= std=``."""
    values = [int(round(sample)) for sample in samples_us]
    count = len(values)
    if count == 0:
        return "count=0"
    if min(values) == max(values):
        return f"count={count} curr={values[-1]}" + ("(all same)" if count > 1 else "")
    avg = sum(values) / count
    std = int(math.sqrt(max(0.0, sum(v * v for v in values) / count - avg * avg)))
    return (f"count={count} first={values[0]} curr={values[-1]} min={min(values)} max={max(values)} "
            f"avg={_format(avg)} std={std}")


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _mean(samples_us: list[float]) -> float:
    values = [int(round(sample)) for sample in samples_us]
    return sum(values) / len(values)


class _Printer:
    def __init__(self, out: Output, prefix: str):
        self.out, self.prefix = out, prefix

    def __call__(self, line: str = "") -> None:
        self.out.write(f"{self.prefix}{line}\n")


def _settings(given: dict[str, object], cpu_mask: int | None, num_cpus: int) -> RunSettings:
    values = {name: given.get(name, flag.default) for name, flag in FLAGS.items()}
    threads = values["num_threads"]
    if threads == -1:  # the default, "let the runtime decide": every CPU the process may use
        threads = bin(cpu_mask).count("1") if cpu_mask else num_cpus
    try:
        return RunSettings(num_threads=threads, num_runs=values["num_runs"],
                           warmup_runs=max(0, values["warmup_runs"] - 1),  # the first inference is a warm-up run
                           min_secs=values["min_secs"], warmup_min_secs=values["warmup_min_secs"],
                           max_secs=values["max_secs"])
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


def _summary(print_line: _Printer, fmt: str, raw: RawTimings, warmup: list[float], memory: tuple[float, float]) -> None:
    init, first = int(round(raw.init_us)), int(round(raw.first_inference_us))
    warmup_avg, timed_avg = _format(_mean(warmup)), _format(_mean(raw.timed_us))
    note = ("Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to "
            "the actual memory footprint of the model at runtime. Take the information at your "
            + ("discretion." if fmt == "recent" else "one's own risk."))
    init_mb, overall_mb = (_format(value) for value in memory)
    if fmt == "recent":
        print_line(f"Inference timings in us: Init: {init}, First inference: {first}, "
                   f"Warmup (avg): {warmup_avg}, Inference (avg): {timed_avg}")
        print_line(note)
        print_line(f"Memory footprint delta from the start of the tool (MB): init={init_mb} overall={overall_mb}")
    elif fmt == "older":
        print_line(f"Average inference timings in us: Warmup: {warmup_avg}, Init: {init}, Inference: {timed_avg}")
        print_line(note)
        print_line(f"Peak memory footprint (MB): init={init_mb} overall={overall_mb}")
    else:
        print_line(f"Average inference timings in us: Warmup: {warmup_avg}, Init: {init}, no stats: {timed_avg}")


def _print_parameters(print_line: _Printer, fmt: str, given: dict[str, object]) -> None:
    """The parameter echo: recent builds list only the flags given, older ones every parameter."""
    print_line("STARTING!")
    if fmt == "recent":
        print_line("Log parameter values verbosely: [0]")
    for name, flag in FLAGS.items():
        if fmt == "recent" and name not in given:
            continue
        value = given.get(name, flag.default)
        shown = int(value) if flag.kind is bool else _format(value) if flag.kind is float else value
        print_line(f"{flag.label}: [{shown}]")


def _load(graph: str, state: PhoneState, settings: RunSettings, out: Output) -> Path | None:
    """The host file of a loadable model (loaded once here, as the real tool does before timing), or ``None``
    after printing the real tool's errors for a missing or unloadable model."""
    try:
        host = state.sandbox.host_path(graph)
        if not host.is_file():
            raise SandboxError(graph, "No such file or directory")
    except SandboxError:
        out.write(f"ERROR: Could not open '{graph}'.\nERROR: Failed to mmap model {graph}\n")
        return None
    try:
        check_tflite_file(host)
        make_interpreter(host, num_threads=settings.num_threads)
    except ValueError as exc:
        out.write(f"ERROR: {str(exc).replace(str(host), graph)}\nERROR: Failed to mmap model {graph}\n")
        return None
    return host


def _slowed(raw: RawTimings, factor: float) -> RawTimings:
    """Every timing of ``raw`` times ``factor`` (``Faults.slow_benchmark_runs``)."""
    return RawTimings(raw.init_us * factor, raw.first_inference_us * factor, [t * factor for t in raw.warmup_us],
                      [t * factor for t in raw.timed_us], [t * factor for t in raw.repeat_minimums_us])


def run_benchmark_model(argv: list[str], *, state: PhoneState, out: Output, cpu_mask: int | None = None) -> int:
    """Run the emulated tool with ``argv`` (the arguments after the program path); the exit status.

    A run that loads its model counts as the phone's next run (:meth:`PhoneState.next_benchmark_run`);
    its timings are slowed when its number is in ``state.faults.slow_benchmark_runs``. Raises
    :class:`InjectedDisconnect` right after the warm-up statistics line when
    ``state.faults.drop_during_benchmark`` is set or the run's number is in ``drop_benchmark_runs``.
    """
    fmt = state.bm_format
    print_line = _Printer(out, "INFO: " if fmt == "recent" else "")
    if "--help" in argv or "--help=true" in argv:  # the real tool prints usage as an error and fails
        out.write(("ERROR: " if fmt == "recent" else "") + usage())
        return 1
    try:
        given = parse_flags(argv)
        settings = _settings(given, cpu_mask, state.profile.num_cpus)
        if not given.get("graph"):
            raise _UsageError("Please specify the name of your TF Lite input file with --graph")
    except _UsageError as exc:
        out.write(f"ERROR: {exc}\n")
        return 1
    _print_parameters(print_line, fmt, given)
    out.flush()

    graph = str(given["graph"])
    start_mb = _max_rss_mb()
    host = _load(graph, state, settings, out)
    if host is None:
        return 1
    init_mb = _max_rss_mb() - start_mb
    if state.faults.garbage_output:
        out.write(GARBAGE)
        return 0
    print_line(f"Loaded model {graph}")
    if fmt == "recent":
        print_line(f"The input model file size (MB): {_format(host.stat().st_size / 1e6)}")
    if state.faults.fail_benchmark:
        out.write("ERROR: benchmark_model failed: fault injected by the emulator (Faults.fail_benchmark)\n")
        return 1
    out.flush()

    run = state.next_benchmark_run()
    dropping = state.faults.drop_during_benchmark or run in state.faults.drop_benchmark_runs
    if dropping:  # the connection drops after the warm-up: the timed phase never runs beyond its first run
        settings = replace(settings, num_runs=1, min_secs=0.0)
    try:
        with state.thermal.under_load():
            raw = time_model(host, settings, seed=SEED)
    except (ValueError, RuntimeError) as exc:  # the interpreter failed to allocate or invoke
        out.write(f"ERROR: Failed to invoke the interpreter: {exc}\n".replace(str(host), graph))
        return 1
    if run in state.faults.slow_benchmark_runs:
        raw = _slowed(raw, state.faults.slow_benchmark_factor)
    warmup = [raw.first_inference_us, *raw.warmup_us]
    values = {name: given.get(name, flag.default) for name, flag in FLAGS.items()}
    until = "" if fmt == "oldest" else f" but terminate if exceeding {_format(values['max_secs'])} seconds"
    print_line(f"Initialized session in {_format(raw.init_us / 1000.0)}ms.")
    print_line(f"Running benchmark for at least {values['warmup_runs']} iterations and at least "
               f"{_format(values['warmup_min_secs'])} seconds{until}.")
    print_line(stats_line(warmup) + "\n")  # the statistics end in a newline of their own: a blank line follows
    out.flush()
    if dropping:
        raise InjectedDisconnect(f"Faults: dropping the connection after the warm-up phase of run {run}")
    print_line(f"Running benchmark for at least {values['num_runs']} iterations and at least "
               f"{_format(values['min_secs'])} seconds{until}.")
    print_line(stats_line(raw.timed_us) + "\n")
    _summary(print_line, fmt, raw, warmup, (init_mb, _max_rss_mb() - start_mb))
    out.flush()
    return 0
