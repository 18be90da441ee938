"""The ``akd-tf`` command line: thin click commands over the library.

TensorFlow is imported only by the commands that need it, so ``akd-tf arch``
answers instantly.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import click

import akd_tf
from akd_tf.space import DEFAULT_SPACE, get_space, space_names
from akd_tf.train_settings import DEFAULT_ALPHA, DEFAULT_PROXY_EPOCHS, DEFAULT_TEMPERATURE, OPTIMIZERS, TrainSettings
from akd_tf.target import QUANTIZATIONS, ModelTarget
from search.config import REWARD_SOURCES
from search.controller import CONTROLLERS
from search.executors import EXECUTORS
from search.rewards import REWARDS


def _fail_on_value_error(fn):
    """Turn library ``ValueError`` s (bad input) and ``TimeoutError`` s (a bounded wait that ran out, e.g. for
    the farm) into one-line click errors (exit status 1)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, TimeoutError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def _check_space(_ctx, _param, name):
    try:
        get_space(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return name


def _space_option(fn):
    return click.option("--space", "space_name", default=DEFAULT_SPACE, show_default=True, callback=_check_space,
                        help="Named search space (see `akd-tf info` for the registered ones).")(fn)


def _shape_options(fn):
    fn = click.option("--classes", default=1000, show_default=True, type=click.IntRange(min=2),
                      help="Number of output classes.")(fn)
    fn = click.option("--channels", default=3, show_default=True, type=click.IntRange(min=1),
                      help="Input image channels.")(fn)
    fn = click.option("--resolution", default=224, show_default=True, type=int,
                      help="Input height and width in pixels (the space bounds it, 32..224 for mnasnet).")(fn)
    return fn


def _timing_options(fn):
    """--runs and --min-secs, as benchmark_model names them, for commands that measure whole models."""
    fn = click.option("--min-secs", default=1.0, show_default=True, type=click.FloatRange(min=0),
                      help="Least total seconds of timed runs per model.")(fn)
    return click.option("--runs", default=50, show_default=True, type=click.IntRange(min=1),
                        help="Least number of timed runs per model.")(fn)


def _json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")(fn)


def _db_option(fn):
    return click.option("--db", "db_url", default=None, metavar="URL",
                        help="Database URL (default: $AKD_TF_DB, else a SQLite file in the user data directory).")(fn)


def _cache_dir_option(fn):
    return click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
                        help="Teacher-output cache (default: $AKD_TF_CACHE_DIR or "
                             "~/.cache/akd-tf/teacher-outputs).")(fn)


def _parse_arch(space_name: str, text: str, param_hint: str = "ARCH"):
    try:
        return get_space(space_name).parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(akd_tf.__version__, prog_name="akd-tf")
def main():
    """akd-tf: search, distill and export fast student networks for phones.

    Architectures are written as canonical strings; `akd-tf arch sample`
    prints some, `akd-tf arch show` explains one.
    """


@main.command()
@click.option("--db", "db_url", default=None, metavar="URL", help="Database URL to report instead of the default.")
@_json_option
@_fail_on_value_error
def info(db_url, as_json):
    """Print the interpreter, TensorFlow, Keras and numpy versions in use and where the database is."""
    from akd_tf.interpreter import load_interpreter

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    from latency_db.config import mask_url, resolve_url

    interpreter = load_interpreter()
    record = {
        "database": mask_url(resolve_url(db_url)),
        "akd_tf": akd_tf.__version__,
        "python": platform.python_version(),
        "interpreter": interpreter.name,
        "interpreter_version": interpreter.version,
        "tensorflow": version("tensorflow"),
        "keras": version("tf-keras"),
        "numpy": version("numpy"),
        "spaces": space_names(),
    }
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(f"akd-tf       {record['akd_tf']} (python {record['python']})")
    click.echo(f"interpreter  {record['interpreter']} {record['interpreter_version']}")
    click.echo(f"tensorflow   {record['tensorflow']}")
    click.echo(f"keras        tf-keras {record['keras']}")
    click.echo(f"numpy        {record['numpy']}")
    click.echo(f"spaces       {', '.join(record['spaces'])}")
    click.echo(f"database     {record['database']}")


# ---------------------------------------------------------------------------
# akd-tf arch
# ---------------------------------------------------------------------------


@main.group()
def arch():
    """Sample, inspect and convert architectures of a search space."""


@arch.command("space")
@_space_option
@_json_option
def arch_space(space_name, as_json):
    """Describe a search space: skeleton, decisions per block, size and encoding widths."""
    from akd_tf.tables import format_table

    space = get_space(space_name)
    rows = [{"block": b, "stride": sk.stride, "filters": sk.filters, "base layers": sk.layers,
             **{d.field: " ".join(d.labels) for d in space.block_decisions(b)}}
            for b, sk in enumerate(space.skeleton, start=1)]
    summary = {"space": space.name, "blocks": space.num_blocks, "decisions": space.num_decisions,
               "onehot_width": space.onehot_width, "size": space.size, "stem_filters": space.stem_filters,
               "head_filters": space.head_filters,
               "resolution": [space.min_resolution, space.max_resolution]}
    if as_json:
        click.echo(json.dumps({**summary, "skeleton": rows}, indent=2))
        return
    columns = list(rows[0])
    click.echo(format_table(rows, columns, right_aligned=["block", "stride", "filters", "base layers"]))
    click.echo(f"{space.name}: {space.num_decisions} decisions, one-hot width {space.onehot_width}, "
               f"{space.size:.3e} architectures, inputs {space.min_resolution}..{space.max_resolution} px")


@arch.command("sample")
@click.option("--n", default=1, show_default=True, type=click.IntRange(min=1), help="How many architectures.")
@click.option("--seed", default=None, type=int, help="Random seed; the same seed prints the same list.")
@_space_option
def arch_sample(n, seed, space_name):
    """Print N uniformly sampled architectures, one canonical string per line."""
    for a in get_space(space_name).sample_many(n, seed):
        click.echo(a.to_string())


@arch.command("show")
@click.argument("arch_text", metavar="ARCH")
@_space_option
@_shape_options
@_json_option
@_fail_on_value_error
def arch_show(arch_text, space_name, resolution, channels, classes, as_json):
    """Show ARCH block by block with output shapes, parameters and multiply-adds."""
    from akd_tf.plan import block_rows, plan_network
    from akd_tf.tables import format_table

    a = _parse_arch(space_name, arch_text)
    plan = plan_network(a, (resolution, resolution, channels), classes)
    rows = block_rows(plan)
    if as_json:
        click.echo(json.dumps({"arch": a.to_string(), "space": space_name, "input_shape": list(plan.input_shape),
                               "classes": classes, "params": plan.params, "macs": plan.macs, "blocks": rows},
                              indent=2))
        return
    click.echo(f"arch   {a.to_string()}")
    click.echo(f"input  {resolution}x{resolution}x{channels}, {classes} classes")
    click.echo(format_table(rows, ["block", "op", "kernel", "se", "skip", "filters", "layers", "output",
                                   "params", "macs"], right_aligned=["kernel", "filters", "layers", "params", "macs"]))
    click.echo(f"total  {plan.params:,} params, {plan.macs / 1e6:.2f} M MACs")


@arch.command("encode")
@click.argument("arch_text", metavar="ARCH")
@click.option("--onehot", is_flag=True, help="Print the one-hot vector (0/1 digits) instead of tokens.")
@_space_option
def arch_encode(arch_text, onehot, space_name):
    """Print the tokens (comma-separated ints) of ARCH, or its one-hot vector."""
    a = _parse_arch(space_name, arch_text)
    if onehot:
        click.echo("".join(str(int(v)) for v in a.onehot()))
    else:
        click.echo(",".join(map(str, a.tokens)))


@arch.command("decode")
@click.argument("tokens")
@_space_option
def arch_decode(tokens, space_name):
    """Print the canonical string of TOKENS (comma-separated ints, or a one-hot string of 0/1)."""
    space = get_space(space_name)
    text = tokens.strip()
    try:
        if "," not in text and set(text) <= {"0", "1"} and len(text) == space.onehot_width:
            a = space.from_onehot([int(c) for c in text])
        else:
            try:
                values = [int(t) for t in text.replace(",", " ").split()]
            except ValueError:
                raise ValueError(f"expected comma-separated ints, got {text!r}") from None
            a = space.from_tokens(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="TOKENS") from exc
    click.echo(a.to_string())


# ---------------------------------------------------------------------------
# akd-tf export / bench
# ---------------------------------------------------------------------------


@main.command("export")
@click.option("--arch", "arch_text", default=None, metavar="ARCH",
              help="Export an untrained student of this architecture (for latency measurement).")
@click.option("--keras-model", type=click.Path(), default=None,
              help="Export a trained Keras model (.keras, .h5 or a SavedModel directory).")
@click.option("--run", "run_name", default=None, metavar="NAME",
              help="Train a child of search run NAME in full (--best or --trial N), export it, score it on the "
                   "test split and measure it on the run's device.")
@click.option("--best", is_flag=True, help="With --run: the child with the highest reward.")
@click.option("--trial", "trial_number", type=click.IntRange(min=0), default=None, help="With --run: trial N.")
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1),
              help="With --run: training epochs (the best epoch on mini-val is exported; rerun to resume).")
@click.option("--train-with", type=click.Choice(["kd", "label"]), default=None,
              help="With --run: distill from the run's teacher or train on labels (default: as the run did).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Path of the .tflite file to write.")
@click.option("--quantize", type=click.Choice(QUANTIZATIONS), default="none", show_default=True,
              help="none: float32; fp16: float16 weights; int8: full-integer post-training quantization.")
@click.option("--representative-data", type=click.Path(), default=None,
              help="int8 calibration images (N,H,W,C) in [-1, 1], .npy or the 'x' array of a .npz. "
                   "Default: random images (fine for latency, not for accuracy); --run uses mini-train images.")
@click.option("--min-int8-agreement", type=click.FloatRange(0, 1), default=None,
              help="int8 parity: least top-1 agreement with Keras. Default 0.9 for --keras-model and --run; "
                   "0 for --arch, whose random weights make top-1 meaningless.")
@_space_option
@_shape_options
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for weights and random images.")
@_cache_dir_option
@click.option("--wait-timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="With --run on a phone: give up waiting for the farm's measurement after this long.")
@_db_option
@_json_option
@_fail_on_value_error
def export_cmd(arch_text, keras_model, run_name, best, trial_number, epochs, train_with, out, quantize,
               representative_data, min_int8_agreement, space_name, resolution, channels, classes, seed, cache_dir,
               wait_timeout, db_url, as_json):
    """Convert an architecture, a Keras model or a searched student to .tflite, with a parity check.

    The file is written only if the parity check passes; a failed check exits 1.
    """
    if sum(x is not None for x in (arch_text, keras_model, run_name)) != 1:
        raise click.UsageError("give exactly one of --arch, --keras-model or --run")
    if run_name is not None:
        if best == (trial_number is not None):
            raise click.UsageError("with --run give exactly one of --best or --trial N")
        return _export_run(run_name, trial_number, out, epochs, train_with, quantize, seed, cache_dir, wait_timeout,
                           db_url, as_json)
    if best or trial_number is not None or train_with is not None:
        raise click.UsageError("--best, --trial and --train-with choose a child of a search: use them with --run")
    from akd_tf import export

    rep = export.load_image_array(representative_data) if representative_data else None
    if arch_text is not None:
        a = _parse_arch(space_name, arch_text, "'--arch'")
        model = export.build_for_export(a, (resolution, resolution, channels), classes, seed=seed)
        min_agreement = 0.0 if min_int8_agreement is None else min_int8_agreement
    else:
        model = export.load_keras_model(keras_model)
        min_agreement = export.DEFAULT_MIN_INT8_AGREEMENT if min_int8_agreement is None else min_int8_agreement
    result = export.export_tflite(model, out, quantize, representative_data=rep,
                                  min_int8_agreement=min_agreement, seed=seed)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(f"wrote {result.path} ({result.size_bytes:,} bytes, {quantize}, sha256 {result.sha256[:12]}, "
               f"converted in {result.convert_seconds:.2f} s)")
    click.echo(result.parity.summary())


def _export_run(run_name, trial_number, out, epochs, train_with, quantize, seed, cache_dir, wait_timeout, db_url,
                as_json):
    from search.final import export_trial

    say = (lambda _message: None) if as_json else click.echo
    verbose = 0 if as_json else (1 if sys.stdout.isatty() else 2)
    record = export_trial(_open_store(db_url), run_name, trial_number, out, epochs=epochs, quantize=quantize,
                          train_with=train_with, seed=seed, cache_dir=cache_dir, wait_timeout_s=wait_timeout,
                          verbose=verbose, say=say)
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2))
        return
    test = ("no test split" if record.test_top1 is None else
            f"test top-1 {record.test_top1:.2%} ({record.test_examples} images, the .tflite)")
    click.echo(f"student: trial #{record.trial} of {record.run!r}, {record.params:,} params, {record.mmacs:.2f} M MACs")
    click.echo(f"accuracy: mini-val top-1 {record.val_top1:.2%} (best epoch); {test}")
    click.echo(f"latency: {record.latency_ms:.3f} ms on {record.device!r} (measurement #{record.measurement_id})")
    click.echo(f"file: {record.tflite} ({record.size_bytes:,} bytes, {record.quantize}); "
               f"summary: {Path(record.tflite).with_suffix('.json')}")


@main.command()
@click.argument("model", type=click.Path())
@click.option("--runs", default=50, show_default=True, type=click.IntRange(min=1), help="Least number of timed runs.")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(min=0), help="Least number of warm-up runs.")
@click.option("--min-secs", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Least total seconds of timed runs.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1), help="Interpreter threads.")
@click.option("--core", default="auto", show_default=True,
              help="CPU core to pin the process to: a number, 'auto' (the last available) or 'none'.")
@_json_option
@_fail_on_value_error
def bench(model, runs, warmup, min_secs, threads, core, as_json):
    """Measure MODEL (.tflite) on this host's CPU, single-threaded on one pinned core by default."""
    from akd_tf.benchmark import RunSettings, describe, run_local_benchmark

    settings = RunSettings(num_threads=threads, num_runs=runs, warmup_runs=warmup, min_secs=min_secs)
    result = run_local_benchmark(model, settings, core=core)
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else describe(result, model))


# ---------------------------------------------------------------------------
# akd-tf db / latency
# ---------------------------------------------------------------------------


def _device_option(fn):
    return click.option("--device", "device_name", default="local", show_default=True,
                        help="Device name ('local' is this host; phones are added by `akd-tf devices register`).")(fn)


def _target_options(fn):
    fn = click.option("--quantize", type=click.Choice(QUANTIZATIONS), default="none", show_default=True,
                      help="Quantization the latencies are for.")(fn)
    return _shape_options(fn)


def _wait_options(fn):
    fn = click.option("--wait-timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
                      help="On a phone: give up waiting for the farm after this long (default: wait until done).")(fn)
    return click.option("--no-wait", is_flag=True,
                        help="On a phone: queue the measurement jobs and return; `akd-tf devices serve` "
                             "workers measure and store them.")(fn)


class _FarmProgress:
    """A progress bar for farm waits, opened on the first ``(done, failed, total)`` report."""

    def __init__(self, label):
        self.label, self.bar, self.shown = label, None, 0

    def __call__(self, done, failed, total):
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, show_eta=True, show_pos=True)
            self.bar.__enter__()
        self.bar.update(done + failed - self.shown)
        self.shown = done + failed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _open_store(db_url):
    from latency_db.store import open_store

    return open_store(db_url)


def _target(resolution, channels, classes, quantize):
    return ModelTarget(resolution=resolution, classes=classes, channels=channels, quantization=quantize)


@main.group()
def db():
    """Manage the latency database."""


@db.command("upgrade")
@_db_option
@_fail_on_value_error
def db_upgrade(db_url):
    """Create the database or migrate it to the newest schema."""
    store = _open_store(db_url)
    click.echo(f"{store.masked_url}: schema at revision {store.revision()}")


@main.group()
def latency():
    """Build the latency lookup table, calibrate it, measure and query latencies."""


@latency.command("build-lut")
@_device_option
@_space_option
@_target_options
@click.option("--dry-run", is_flag=True, help="List the keys (and which are missing) without measuring.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Measure at most this many missing keys.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Processes converting micro-models while this one measures (default: cores - 1; 0: none).")
@_wait_options
@_db_option
@_fail_on_value_error
def latency_build_lut(device_name, space_name, resolution, channels, classes, quantize, dry_run, limit, workers,
                      no_wait, wait_timeout, db_url):
    """Measure every operator of the space on DEVICE and store it (resumable: stored keys are skipped)."""
    from latency_db.lut import build_lut, missing_operators

    store, space = _open_store(db_url), get_space(space_name)
    target = _target(resolution, channels, classes, quantize)
    operators, missing = missing_operators(store, device_name, space, target)
    click.echo(f"{len(operators)} keys for {space_name} at {resolution}x{resolution}x{channels}, {classes} classes, "
               f"{quantize}; {len(operators) - len(missing)} stored on {device_name}, {len(missing)} missing")
    if dry_run:
        stored = {op.key for op in operators} - {op.key for op in missing}
        for op in operators:
            click.echo(f"{'stored ' if op.key in stored else 'missing'}  {op.key}")
        return
    todo = len(missing) if limit is None else min(limit, len(missing))
    if workers is None:
        workers = max(0, len(os.sched_getaffinity(0)) - 1)
    with _FarmProgress("measured on the farm") as farm_bar:
        with click.progressbar(length=todo, label="measuring or queuing", show_eta=True, show_pos=True,
                               item_show_func=lambda op: op.key if op else None) as bar:
            summary = build_lut(store, device_name, space, target, limit=limit, workers=workers,
                                progress=lambda op: bar.update(1, op), wait=not no_wait,
                                wait_timeout_s=wait_timeout, wait_progress=farm_bar)
    if summary.queued and no_wait:
        click.echo(f"queued {summary.queued} jobs for {device_name}; `akd-tf devices serve` measures them")
        return
    click.echo(f"measured {summary.measured} keys in {summary.seconds:.1f} s; "
               f"{summary.already_stored + summary.measured} of {summary.total} now stored")


@latency.command("measure")
@click.option("--arch", "arch_text", required=True, metavar="ARCH", help="Architecture to measure end to end.")
@_device_option
@_space_option
@_target_options
@_timing_options
@_wait_options
@_db_option
@_json_option
@_fail_on_value_error
def latency_measure(arch_text, device_name, space_name, resolution, channels, classes, quantize, runs, min_secs,
                    no_wait, wait_timeout, db_url, as_json):
    """Export ARCH, measure the whole model on DEVICE and store the measurement."""
    import uuid

    from akd_tf.benchmark import RunSettings
    from latency_db.measure import measure_arch, submit_arch

    a = _parse_arch(space_name, arch_text, "'--arch'")
    store = _open_store(db_url)
    target, settings = _target(resolution, channels, classes, quantize), RunSettings(num_runs=runs, min_secs=min_secs)
    if no_wait:
        job = submit_arch(store, device_name, a, target, settings=settings, run_key=uuid.uuid4().hex)
        record = {"job": job.job_id, "run_key": job.run_key, "device": device_name, "arch": a.to_string()}
        click.echo(json.dumps(record, indent=2) if as_json else
                   f"queued job #{job.job_id} (run key {job.run_key}) on {device_name}")
        return
    row = measure_arch(store, device_name, a, target, settings=settings, wait_timeout_s=wait_timeout)
    record = {"measurement": row.id, "device": device_name, "arch": a.to_string(), "median_ms": row.median_us / 1000,
              "mean_ms": row.mean_us / 1000, "std_ms": row.std_us / 1000, "count": row.count}
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        click.echo(f"measurement #{row.id} on {device_name}: median {row.median_us / 1000:.3f} ms "
                   f"(mean {row.mean_us / 1000:.3f}, std {row.std_us / 1000:.3f}, {row.count} runs)")


@latency.command("calibrate")
@_device_option
@click.option("--n", "n_archs", default=40, show_default=True, type=click.IntRange(min=6),
              help="Random archs measured end to end; half fit the correction, half test it.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random archs.")
@_space_option
@_target_options
@_timing_options
@click.option("--wait-timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="On a phone: give up waiting for the farm after this long (default: wait until done).")
@_db_option
@_fail_on_value_error
def latency_calibrate(device_name, n_archs, seed, space_name, resolution, channels, classes, quantize, runs,
                      min_secs, wait_timeout, db_url):
    """Fit DEVICE's correction of the lookup-table sum (scale, per-MB-of-weights, offset) and report its accuracy."""
    from akd_tf.benchmark import RunSettings
    from latency_db.calibrate import calibrate

    store, space = _open_store(db_url), get_space(space_name)
    with click.progressbar(length=n_archs, label="measuring archs", show_eta=True, show_pos=True) as bar:
        report = calibrate(store, device_name, space, _target(resolution, channels, classes, quantize), n_archs,
                           seed=seed, settings=RunSettings(num_runs=runs, min_secs=min_secs),
                           progress=lambda _arch: bar.update(1), wait_timeout_s=wait_timeout)
    click.echo(f"calibration #{report.calibration_id}: latency_ms = {report.scale:.4f} x LUT sum + "
               f"{report.ms_per_weight_mb:.4f} x weight MB + {report.offset_ms:.4f} (fit on {report.n_fit} archs)")
    click.echo(f"uncalibrated {report.uncalibrated.summary()}")
    click.echo(f"calibrated   {report.calibrated.summary()}")


@latency.command("query")
@click.option("--arch", "arch_text", default=None, metavar="ARCH", help="One architecture.")
@click.option("--file", "arch_file", type=click.File("r"), default=None,
              help="A file of architectures, one canonical string per line ('-' for stdin).")
@_device_option
@_space_option
@_target_options
@_db_option
@_json_option
@_fail_on_value_error
def latency_query(arch_text, arch_file, device_name, space_name, resolution, channels, classes, quantize, db_url,
                  as_json):
    """Latency in ms of each architecture: measured if stored, else predicted from the lookup table."""
    from latency_db.query import query_latency

    if (arch_text is None) == (arch_file is None):
        raise click.UsageError("give exactly one of --arch or --file")
    texts = [arch_text] if arch_text else [line.strip() for line in arch_file if line.strip()]
    archs = []
    for number, text in enumerate(texts, start=1):
        try:
            archs.append(get_space(space_name).parse(text))
        except ValueError as exc:
            where = "--arch" if arch_text else f"line {number}"
            raise click.BadParameter(str(exc), param_hint=where) from exc
    estimates = query_latency(_open_store(db_url), device_name, get_space(space_name), archs,
                              _target(resolution, channels, classes, quantize))
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in estimates], indent=2))
        return
    for e in estimates:
        click.echo(f"{e.latency_ms:9.3f} ms  {e.source:<9}  {e.arch}  [{e.detail}]")


@latency.command("list")
@_db_option
@_json_option
@_fail_on_value_error
def latency_list(db_url, as_json):
    """Devices with their lookup-table sizes, measurements and calibrations."""
    from latency_db.inventory import inventory
    from akd_tf.tables import format_table

    rows = inventory(_open_store(db_url))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(format_table(rows, ["device", "kind", "status", "lut_entries", "measurements", "calibrations",
                                   "runtime"], right_aligned=["lut_entries", "measurements", "calibrations"]))


@latency.command("export")
@_device_option
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="File to write ('-' for stdout).")
@_db_option
@_fail_on_value_error
def latency_export(device_name, fmt, out, db_url):
    """Write DEVICE's lookup table to a CSV or JSON file others can import."""
    from latency_db.exchange import export_table

    text = export_table(_open_store(db_url), device_name, fmt)
    if out == "-":
        click.echo(text, nl=False)
    else:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"wrote {out}")


@latency.command("import")
@click.argument("path", type=click.Path())
@click.option("--device", "device_name", default=None,
              help="Device to import into (default: the one named in a JSON file; required for CSV).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default=None,
              help="File format (default: from the file suffix).")
@_db_option
@_fail_on_value_error
def latency_import(path, device_name, fmt, db_url):
    """Import a lookup table exported by `akd-tf latency export` (one transaction; re-import adds nothing)."""
    from latency_db.exchange import import_table

    added, skipped = import_table(_open_store(db_url), path, device_name, fmt)
    click.echo(f"imported {added} entries, {skipped} already present")



# ---------------------------------------------------------------------------
# akd-tf devices
# ---------------------------------------------------------------------------


def _fail_on_phone_error(fn):
    """Phone errors (unreachable, key not accepted, too hot, failed run) become one-line click errors."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from devicefarm.connection import PhoneUnavailable
        from devicefarm.runner import MeasurementFailed, PhoneUnhealthy

        try:
            return fn(*args, **kwargs)
        except (PhoneUnavailable, PhoneUnhealthy, MeasurementFailed) as exc:
            raise click.ClickException(str(exc)) from exc

    return _fail_on_value_error(wrapper)


def _adb_key_option(fn):
    return click.option("--adb-key", type=click.Path(dir_okay=False), default=None,
                        help="Private ADB key (default: $AKD_TF_ADB_KEY, else ~/.android/adbkey, generated if "
                             "missing; the phone must accept its .pub).")(fn)


def _limits_options(fn):
    fn = click.option("--cool-to", type=float, default=40.0, show_default=True, metavar="CELSIUS",
                      help="Wait before each run until every temperature reading is at or below this.")(fn)
    fn = click.option("--cool-timeout", type=click.FloatRange(min=0), default=600.0, show_default=True,
                      metavar="SECONDS", help="Refuse to measure a phone still hotter after this long.")(fn)
    return click.option("--min-battery", type=click.FloatRange(0, 100), default=20.0, show_default=True,
                        metavar="PERCENT", help="Refuse to measure a phone with less battery.")(fn)


def _limits(cool_to, cool_timeout, min_battery):
    from devicefarm.runner import PhoneLimits

    return PhoneLimits(cool_to_c=cool_to, cool_timeout_s=cool_timeout, min_battery_pct=min_battery)


def _core_choice(_ctx, _param, value):
    if value == "auto" or value.isdigit():
        return value if value == "auto" else int(value)
    raise click.BadParameter(f"{value!r} is neither a core number nor 'auto'")


@main.group()
def devices():
    """Phones that measure latency: register, list, check, remove, serve jobs, emulate one."""


@devices.command("register")
@click.argument("address", metavar="SERIAL|HOST:PORT")
@click.option("--name", default=None, help="Name in the database (default: model and serial, e.g. pixel-4-9A1B).")
@click.option("--benchmark-binary", type=click.Path(dir_okay=False), default=None,
              help="Android benchmark_model executable to install (not in any registry: TensorFlow's nightly "
                   "prebuilt or a bazel build; see README). Optional when the phone already has it.")
@click.option("--core", default="auto", show_default=True, callback=_core_choice,
              help="CPU core to pin benchmarks to; 'auto' picks the one with the highest max frequency.")
@click.option("--workdir", default="/data/local/tmp/akd-tf", show_default=True,
              help="Directory on the phone for the binary and models.")
@click.option("--auth-timeout", type=click.FloatRange(min=1), default=60.0, show_default=True, metavar="SECONDS",
              help="How long to wait for the phone's owner to accept this computer's key.")
@_adb_key_option
@_limits_options
@_db_option
@_fail_on_phone_error
def devices_register(address, name, benchmark_binary, core, workdir, auth_timeout, adb_key, cool_to, cool_timeout,
                     min_battery, db_url):
    """Connect to a phone over ADB, probe it, install benchmark_model, prove it runs, and store the phone."""
    from devicefarm.phones import register_phone

    registration = register_phone(
        _open_store(db_url), address, name=name, benchmark_binary=benchmark_binary, core=core, key_path=adb_key,
        workdir=workdir, auth_timeout_s=auth_timeout, limits=_limits(cool_to, cool_timeout, min_battery),
        on_auth_prompt=lambda text: click.echo(f"waiting up to {auth_timeout:g} s: {text}", err=True),
        log=lambda text: click.echo(text, err=True))
    d = registration.device
    click.echo(f"registered {d.name}: {d.model} ({d.soc}, {d.os_version}) at {d.address}, core {d.core}, "
               f"probe model {registration.probe_latency_us:.0f} us")


@devices.command("list")
@_db_option
@_json_option
@_fail_on_value_error
def devices_list(db_url, as_json):
    """Every device with its status, last contact and lease holder."""
    from akd_tf.tables import format_table
    from latency_db.devices import device_rows

    rows = device_rows(_open_store(db_url))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(format_table(rows, ["name", "kind", "model", "core", "status", "last_seen", "lease_holder",
                                   "address"], right_aligned=["core"]))


@devices.command("check")
@click.argument("name", required=False)
@_adb_key_option
@_limits_options
@_db_option
@_json_option
@_fail_on_phone_error
def devices_check(name, adb_key, cool_to, cool_timeout, min_battery, db_url, as_json):
    """Reachability, battery, temperature, thermal status and governor of NAME (default: every phone).

    Exits with status 1 if any checked phone is unreachable or unfit to measure.
    """
    from devicefarm.phones import check_phone
    from latency_db.devices import phone_names

    store = _open_store(db_url)
    names = [name] if name else phone_names(store)
    if not names:
        raise click.ClickException("no phones registered; add one with `akd-tf devices register HOST:PORT`")
    limits = _limits(cool_to, cool_timeout, min_battery)
    reports = [check_phone(store, n, key_path=adb_key, limits=limits) for n in names]
    if as_json:
        click.echo(json.dumps([{"name": h.name, "healthy": h.healthy, "reachable": h.reachable,
                                "battery": h.condition.battery if h.condition else None,
                                "thermal": h.condition.thermal if h.condition else None,
                                "governor": h.governor, "problems": h.problems} for h in reports], indent=2))
    else:
        for h in reports:
            if h.condition is None:
                click.echo(f"{h.name}: UNREACHABLE: {h.problems[0]}")
                continue
            battery, thermal = h.condition.battery, h.condition.thermal
            click.echo(f"{h.name}: {'ok' if h.healthy else 'UNHEALTHY'}: battery {battery.get('level_pct')}% "
                       f"{battery.get('temperature_c')} °C, thermal {thermal.get('status_name', 'n/a')}, "
                       f"hottest {h.condition.temperature_c:.1f} °C, governor {h.governor}"
                       + "".join(f"\n  - {p}" for p in h.problems))
    if not all(h.healthy for h in reports):
        sys.exit(1)


@devices.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="Also delete its stored measurements and table entries, or a lease.")
@_db_option
@_fail_on_value_error
def devices_remove(name, force, db_url):
    """Remove phone NAME from the database (the host device 'local' stays)."""
    from devicefarm.phones import remove_device

    counts = remove_device(_open_store(db_url), name, force=force)
    click.echo(f"removed {name} ({counts['measurements']} measurements, {counts['lut_entries']} table entries)")


@devices.command("serve")
@click.option("--device", "device_names", multiple=True,
              help="Phone to serve (repeatable; default: every registered phone).")
@click.option("--lease-seconds", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Lease length; renewed while a job runs, reclaimed by other workers if this one dies.")
@click.option("--poll", type=click.FloatRange(min=0.05), default=1.0, show_default=True, metavar="SECONDS",
              help="How often an idle phone asks for work.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=None, help="Stop after this many jobs.")
@click.option("--idle-exit", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="Stop once every phone has been idle this long (default: serve until Ctrl-C).")
@_adb_key_option
@_limits_options
@_db_option
@_fail_on_phone_error
def devices_serve(device_names, lease_seconds, poll, max_jobs, idle_exit, adb_key, cool_to, cool_timeout,
                  min_battery, db_url):
    """Run a farm worker: lease measurement jobs for this host's phones, measure, store, repeat."""
    from devicefarm.worker import FarmWorker, WorkerOptions
    from latency_db.devices import phone_names

    store = _open_store(db_url)
    names = list(device_names) or phone_names(store)
    if not names:
        raise click.ClickException("no phones registered; add one with `akd-tf devices register HOST:PORT`")
    options = WorkerOptions(lease_seconds=lease_seconds, poll_s=poll, max_jobs=max_jobs, idle_exit_s=idle_exit,
                            limits=_limits(cool_to, cool_timeout, min_battery))
    worker = FarmWorker(store, names, key_path=adb_key, options=options, log=lambda t: click.echo(t, err=True))
    click.echo(f"worker {worker.worker_id} serving {', '.join(names)} from {store.masked_url}", err=True)
    stats = worker.run()
    click.echo(f"handled {stats.handled} jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.outcomes.items())))



@devices.command("jobs")
@click.option("--state", type=click.Choice(["queued", "leased", "done", "failed"]), default=None,
              help="Only jobs in this state.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Most recent jobs shown.")
@_db_option
@_json_option
@_fail_on_value_error
def devices_jobs(state, limit, db_url, as_json):
    """The farm's job queue: counts per state, then the most recent jobs."""
    from akd_tf.tables import format_table
    from latency_db import jobs

    store = _open_store(db_url)
    with store.session() as session:
        summary = jobs.job_summary(session)
        rows = [{"id": j.id, "kind": j.kind, "state": j.state, "pool": j.pool, "attempts": j.attempts,
                 "lease_holder": j.lease_holder, "error": (j.error or "")[:80]}
                for j in jobs.list_jobs(session, state=state, limit=limit)]
    if as_json:
        click.echo(json.dumps({"summary": summary, "jobs": rows}, indent=2))
        return
    click.echo(", ".join(f"{k} {v}" for k, v in summary.items()))
    if rows:
        click.echo(format_table(rows, ["id", "kind", "state", "pool", "attempts", "lease_holder", "error"],
                                right_aligned=["id", "attempts"]))



@devices.command("emulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it loopback).")
@click.option("--port", default=5555, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0: any free port, printed at start).")
@click.option("--model", "profile", default="pixel4", show_default=True,
              type=click.Choice(["pixel3", "pixel4", "pixel6"]), help="Phone profile: CPU topology, SoC, thermals.")
@click.option("--bm-format", type=click.Choice(["recent", "older", "oldest"]), default="recent", show_default=True,
              help="Which release's output format the emulated benchmark_model prints.")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Directory for the phone's file system and accepted keys (default: a temporary one).")
@click.option("--reject-keys", is_flag=True, help="Leave new host keys unaccepted (as if nobody taps 'Allow').")
@click.option("--temperature", type=float, default=None, metavar="CELSIUS",
              help="Pin every temperature reading (e.g. to try how a hot phone is refused).")
@click.option("--battery", type=click.IntRange(0, 100), default=None, metavar="PERCENT",
              help="Pin the battery level.")
@_fail_on_value_error
def devices_emulate(host, port, profile, bm_format, state_dir, reject_keys, temperature, battery):
    """Run an emulated phone: an ADB daemon speaking the real wire protocol whose benchmark_model really runs
    the pushed .tflite on this host. Stop it with Ctrl-C."""
    import time

    from devicefarm.emulator import EmulatedPhone, Faults

    faults = Faults(temperature_c=temperature, battery_level=battery)
    phone = EmulatedPhone(profile, host=host, port=port, state_dir=state_dir, accept_new_keys=not reject_keys,
                          faults=faults, bm_format=bm_format).start()
    click.echo(f"emulated {phone.profile.model} (serial {phone.serial}) listening on {phone.address}")
    click.echo(f"register it with: akd-tf devices register {phone.address} --benchmark-binary \"$(type -P true)\"")
    click.echo("(the emulated phone runs its own benchmark_model for whatever file is installed)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        phone.stop()


# ---------------------------------------------------------------------------
# akd-tf train / teacher: distillation and teachers
# ---------------------------------------------------------------------------


def _bundle(fn, key: str, names, options):
    """Add click ``options`` to ``fn``; their values (parameters ``names``) reach it as one dict argument ``key``."""
    @functools.wraps(fn)
    def bundled(*args, **kwargs):
        return fn(*args, **{key: {name: kwargs.pop(name) for name in names}}, **kwargs)

    for option in reversed(options):
        bundled = option(bundled)
    return bundled


_DATA_OPTION_NAMES = ("dataset", "data_dir", "image_key", "label_key", "label_offset", "val_size", "val_fraction",
                     "split_seed", "resolution", "channels")


def _data_options(fn):
    """Where the images come from, how mini-val is carved out, and the input size networks see."""
    options = [
        click.option("--dataset", default="demo", show_default=True, metavar="SOURCE",
                     help="'demo' (bundled animal-mnist, 10 classes of 28x28 silhouettes), an image folder "
                          "(DIR/<class>/...), a .npz with x and y, TFRecord files/glob/dir, or tfds:NAME."),
        click.option("--data-dir", default=None, type=click.Path(file_okay=False),
                     help="Where tfds:NAME datasets are prepared (nothing is downloaded)."),
        click.option("--image-key", default="image/encoded", show_default=True, help="TFRecord image feature."),
        click.option("--label-key", default="image/class/label", show_default=True, help="TFRecord label feature."),
        click.option("--label-offset", default=0, show_default=True, type=int,
                     help="Added to stored labels of npz/TFRecord data (-1 for ImageNet's 1-based labels)."),
        click.option("--val-size", default=None, type=click.IntRange(min=1),
                     help="Examples held out of the training split as mini-val."),
        click.option("--val-fraction", default=None, type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     help="Share of the training split held out as mini-val (default 0.2)."),
        click.option("--split-seed", default=0, show_default=True, type=int, help="Seed of the mini-val split."),
        click.option("--resolution", default=None, type=click.IntRange(min=1),
                     help="Input side in pixels (default: the images' own size, at least 32; 224 when sizes vary)."),
        click.option("--channels", default=None, type=click.IntRange(min=1),
                     help="Input channels (default: the images' own; 1 <-> 3 is converted)."),
    ]
    return _bundle(fn, "data_options", _DATA_OPTION_NAMES, options)


def _fit_options(default_epochs):
    def decorate(fn):
        options = [
            click.option("--epochs", default=default_epochs, show_default=True, type=click.IntRange(min=1),
                         help="Training epochs."),
            click.option("--batch-size", default=TrainSettings.batch_size, show_default=True,
                         type=click.IntRange(min=1), help="Examples per training step."),
            click.option("--lr", "learning_rate", default=TrainSettings.learning_rate, show_default=True,
                         type=click.FloatRange(min=0, min_open=True), help="Peak learning rate."),
            click.option("--warmup-epochs", default=TrainSettings.warmup_epochs, show_default=True,
                         type=click.FloatRange(min=0), help="Epochs of linear learning-rate warm-up before the cosine "
                                                            "decay."),
            click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=TrainSettings.optimizer,
                         show_default=True, help="Adam was best on the demo; SGD uses Nesterov momentum 0.9."),
            click.option("--augment", is_flag=True,
                         help="Random flips and shifts (a teacher then runs online on every batch)."),
            click.option("--seed", default=0, show_default=True, type=int,
                         help="Seed of weights, shuffling and augmentation."),
            click.option("--checkpoint-dir", default=None, type=click.Path(file_okay=False),
                         help="Per-epoch state for resuming (default: OUT.ckpt next to --out; rerun the same "
                              "command to resume; removed when training finishes)."),
            click.option("--summary", "summary_path", default=None, type=click.Path(dir_okay=False),
                         help="Write the JSON summary here (default: OUT with .json instead of its suffix)."),
        ]
        names = ("epochs", "batch_size", "learning_rate", "warmup_epochs", "optimizer", "augment", "seed",
                 "checkpoint_dir", "summary_path")
        return _bundle(fn, "fit_options", names, options)
    return decorate


def _absolute_if_path(value: str) -> str:
    """``value`` as an absolute path when it names an existing file or directory (so a run stored with it
    works from any directory and on every Ray node); other sources (``demo``, ``tfds:NAME``) unchanged."""
    kind, sep, location = value.partition(":") if ":" in value else ("", "", value)
    if value == "demo" or kind == "tfds" or not os.path.exists(location):
        return value  # demo, tfds:NAME and globs are kept as typed
    return f"{kind}{sep}{os.path.abspath(location)}"


def _data_config(dataset, data_dir, image_key, label_key, label_offset, val_size, val_fraction, split_seed,
                 resolution, channels) -> dict:
    """The ``_data_options`` values as :func:`akd_tf.data.load_training_data` arguments (``source`` + options)."""
    options = {"source": _absolute_if_path(dataset)}
    for name, value in (("data_dir", data_dir and os.path.abspath(data_dir)), ("val_size", val_size), ("val_fraction", val_fraction),
                        ("resolution", resolution), ("channels", channels)):
        if value is not None:
            options[name] = value
    if split_seed:
        options["split_seed"] = split_seed
    if (image_key, label_key) != ("image/encoded", "image/class/label"):
        options.update(image_key=image_key, label_key=label_key)
    if label_offset:
        options["label_offset"] = label_offset
    return options


def _training_data(space_name, **data_options):
    """Mini-train / mini-val from the ``_data_options`` values."""
    from akd_tf import data

    options = _data_config(**data_options)
    return data.load_training_data(options.pop("source"), min_resolution=get_space(space_name).min_resolution,
                                   **options)


def _fit(model, teacher, training, settings, out, as_json, *, epochs, batch_size, learning_rate, warmup_epochs,
         optimizer, augment, seed, checkpoint_dir, summary_path, use_cache=True, cache_dir=None, extra=None):
    """Train, keep the best-on-mini-val model at ``out``, write and print the summary."""
    from akd_tf.distill import distill

    train = TrainSettings(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                          warmup_epochs=min(warmup_epochs, epochs), optimizer=optimizer, augment=augment, seed=seed)
    out = Path(out)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else out.with_name(out.name + ".ckpt")
    summary_path = Path(summary_path) if summary_path else out.with_suffix(".json")
    if not as_json:
        click.echo(training.describe())
        if teacher is not None:
            click.echo(teacher.describe())
    verbose = 0 if as_json else (1 if sys.stdout.isatty() else 2)
    result = distill(model, teacher, training, settings=settings, train=train, use_cache=use_cache,
                     cache_dir=cache_dir, checkpoint_dir=checkpoint_dir, best_path=out, verbose=verbose)
    summary = {"out": str(out), "dataset": training.mini_train.name, "input_shape": list(training.input_shape),
               "classes": training.num_classes, **(extra or {}), **result.to_dict()}
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    agreement = "" if result.agreement is None else f", agreement with teacher {result.agreement:.1%}"
    click.echo(f"mini-val top-1 {result.top1:.2%}, top-{min(5, training.num_classes)} {result.top5:.2%}, "
               f"loss {result.loss:.4f}{agreement}")
    if result.best_top1 is not None:
        click.echo(f"best mini-val top-1 {result.best_top1:.2%} at epoch {result.best_epoch}: saved to {out}")
    cache = {True: " (cache hit)", False: " (computed, cached)", None: ""}[result.teacher_cache_hit]
    click.echo(f"{result.examples_per_s:.0f} examples/s, {result.seconds:.1f} s; teacher: "
               f"{result.teacher_mode}{cache}; summary: {summary_path}")


@main.group()
def teacher():
    """Teachers for distillation: train one where you have none."""


@teacher.command("train")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Where to save the teacher (.keras or .h5): the best epoch on mini-val.")
@click.option("--model", "model_name", default="resnet20", show_default=True,
              type=click.Choice(["resnet20", "resnet56", "resnet50", "mobilenetv2", "efficientnetb0",
                                 "densenet121"]),
              help="Teacher network (random initial weights; nothing is downloaded).")
@click.option("--arch", "arch_text", default=None, metavar="ARCH",
              help="Train an architecture of the search space as the teacher instead of --model.")
@_space_option
@_data_options
@_fit_options(default_epochs=15)
@_json_option
@_fail_on_value_error
def teacher_train(out, model_name, arch_text, space_name, data_options, fit_options, as_json):
    """Train a teacher on hard labels, keeping the epoch with the best mini-val top-1 (resumable)."""
    arch = _parse_arch(space_name, arch_text, "--arch") if arch_text else None
    training = _training_data(space_name, **data_options)
    from akd_tf.train_settings import DistillSettings
    from akd_tf.models import build_student
    from akd_tf.teachers import build_teacher_model

    if arch is not None:
        import tf_keras as keras

        keras.utils.set_random_seed(fit_options["seed"])
        model, described = build_student(arch, training.input_shape, training.num_classes), arch.to_string()
    else:
        model = build_teacher_model(model_name, training.input_shape, training.num_classes, fit_options["seed"])
        described = model_name
    _fit(model, None, training, DistillSettings.hard_label(), out, as_json, **fit_options,
         extra={"teacher_model": described, "params": int(model.count_params())})


@main.command("train")
@click.option("--arch", "arch_text", required=True, metavar="ARCH", help="The student architecture.")
@click.option("--teacher", "teacher_paths", multiple=True, type=click.Path(),
              help="Teacher .keras/.h5/SavedModel; repeat for an ensemble (averaged probabilities).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Where to save the student (.keras): the best epoch on mini-val.")
@click.option("--alpha", default=DEFAULT_ALPHA, show_default=True, type=click.FloatRange(0, 1),
              help="Weight of the teacher's soft targets (1 - alpha weighs the labels).")
@click.option("--temperature", default=DEFAULT_TEMPERATURE, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Softmax temperature of the soft targets.")
@click.option("--hard-label", is_flag=True, help="Labels only (alpha 0, no teacher): the conventional baseline.")
@click.option("--feature-kd", is_flag=True,
              help="Also match the teacher's embedding (MSE through a learned projection).")
@click.option("--feature-weight", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Weight of the feature term with --feature-kd.")
@_cache_dir_option
@click.option("--no-teacher-cache", is_flag=True, help="Run the teacher online on every batch.")
@_space_option
@_data_options
@_fit_options(default_epochs=30)
@_json_option
@_fail_on_value_error
def train_cmd(arch_text, teacher_paths, out, alpha, temperature, hard_label, feature_kd, feature_weight, cache_dir,
              no_teacher_cache, space_name, data_options, fit_options, as_json):
    """Train a student of ARCH by distillation from --teacher (or on hard labels) and save the best epoch."""
    arch = _parse_arch(space_name, arch_text, "--arch")
    if hard_label and feature_kd:
        raise click.BadParameter("--hard-label trains without a teacher; drop --feature-kd", param_hint="--hard-label")
    if not hard_label and not teacher_paths:
        raise click.BadParameter("give --teacher PATH (repeat for an ensemble), or --hard-label to train on labels "
                                 "only", param_hint="--teacher")
    training = _training_data(space_name, **data_options)
    import tf_keras as keras

    from akd_tf.train_settings import DistillSettings
    from akd_tf.models import build_student
    from akd_tf.teachers import load_teacher

    settings = (DistillSettings.hard_label() if hard_label else
                DistillSettings(alpha=alpha, temperature=temperature,
                                feature_weight=feature_weight if feature_kd else 0.0))
    teacher = None if hard_label else load_teacher(list(teacher_paths))
    keras.utils.set_random_seed(fit_options["seed"])
    student = build_student(arch, training.input_shape, training.num_classes, with_embedding=feature_kd)
    _fit(student, teacher, training, settings, out, as_json, **fit_options, use_cache=not no_teacher_cache,
         cache_dir=cache_dir, extra={"arch": arch.to_string(), "teachers": list(teacher_paths)})


# ---------------------------------------------------------------------------
# akd-tf search
# ---------------------------------------------------------------------------

def _live_display():
    """An ``on_event`` for searches: one line per finished child, and the architecture whenever the best changes."""
    from search import display

    shown_best = [None]

    def show(event):
        click.echo(display.event_line(event))
        line = display.best_changed_line(event, shown_best[0])
        if line is not None:
            click.echo(line)
            shown_best[0] = event.best["number"]

    return show


# CLI option -> SearchConfig field (proxy.* and data are nested); what a resumed run compares.
_SEARCH_FIELDS = {"device_name": "device", "controller": "controller", "reward": "reward",
                  "reward_source": "reward_source", "target_ms": "target_ms", "target_mmacs": "target_mmacs",
                  "trials": "trials", "batch_size": "batch_size", "seed": "seed", "measure": "measure",
                  "quantize": "quantization", "teacher_paths": "teachers", "space_name": "space"}
_PROXY_FIELDS = {"proxy_epochs": "epochs", "proxy_train_size": "train_size", "proxy_batch_size": "batch_size",
                 "proxy_lr": "learning_rate", "alpha": "alpha", "temperature": "temperature"}


def _search_settings(ctx, params: dict, explicit_only: bool) -> dict:
    """SearchConfig fields from the command's options (only those typed on the command line if ``explicit_only``)."""
    def given(name):
        return not explicit_only or ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT

    fields = {field: params[name] for name, field in _SEARCH_FIELDS.items() if name in params and given(name)}
    if "teachers" in fields:
        fields["teachers"] = [os.path.abspath(path) for path in fields["teachers"]]
    proxy = {field: params[name] for name, field in _PROXY_FIELDS.items() if given(name)}
    if proxy:
        fields["proxy"] = proxy
    if not explicit_only or any(given(name) for name in _DATA_OPTION_NAMES):
        data_config = _data_config(**{name: params[name] for name in _DATA_OPTION_NAMES})
        fields["data"] = data_config if not explicit_only else {
            key: value for key, value in data_config.items()
            if key == "source" and given("dataset") or key != "source" and given(key)}
    return fields


# The options every search shares, whether started by `akd-tf search` or by an experiment.
_SEARCH_RUN_OPTIONS = [
    _device_option,
    click.option("--target-ms", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Latency target T in ms on --device (rewards mnas-soft and mnas-hard)."),
    click.option("--target-mmacs", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="MACs target in millions (reward flops)."),
    click.option("--reward", type=click.Choice(list(REWARDS)), default="mnas-soft", show_default=True,
                 help="mnas-soft: ACC*(LAT/T)^-0.07; mnas-hard: ACC, or ACC*(LAT/T)^-1 over T; flops: "
                      "ACC*(MACs/target)^-0.07; accuracy: ACC alone."),
    click.option("--trials", default=100, show_default=True, type=click.IntRange(min=1),
                 help="Children to evaluate in all (give a larger number to extend a finished run)."),
    click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
                 help="Children per controller step (one PPO update per step)."),
    click.option("--controller", type=click.Choice(list(CONTROLLERS)), default="ppo", show_default=True,
                 help="ppo: the paper's RNN actor-critic; evolution: regularized (aging) evolution; random: "
                      "uniform sampling, the baseline."),
    click.option("--measure", is_flag=True,
                 help="Measure every child never measured on --device (phones: farm jobs, run "
                      "`akd-tf devices serve`); default: the latency table's prediction."),
    click.option("--quantize", type=click.Choice(QUANTIZATIONS), default="none", show_default=True,
                 help="Quantization the latencies are for."),
    click.option("--proxy-epochs", default=DEFAULT_PROXY_EPOCHS, show_default=True, type=click.IntRange(min=1),
                 help="Training epochs per child (the first is a learning-rate warm-up)."),
    click.option("--proxy-train-size", default=None, type=click.IntRange(min=1),
                 help="Train each child on this many mini-train examples (seeded, stratified; default: all)."),
    click.option("--proxy-batch-size", default=TrainSettings.batch_size, show_default=True,
                 type=click.IntRange(min=1), help="Examples per training step of a child."),
    click.option("--proxy-lr", default=TrainSettings.learning_rate, show_default=True,
                 type=click.FloatRange(min=0, min_open=True), help="Peak learning rate of a child (Adam)."),
    click.option("--alpha", default=DEFAULT_ALPHA, show_default=True, type=click.FloatRange(0, 1),
                 help="Weight of the teacher's soft targets in a child's loss (kd)."),
    click.option("--temperature", default=DEFAULT_TEMPERATURE, show_default=True,
                 type=click.FloatRange(min=0, min_open=True), help="Softmax temperature of the soft targets (kd)."),
    click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
                 help="Children trained at once (local: worker processes sharing this machine's cores)."),
    click.option("--executor", type=click.Choice(list(EXECUTORS)), default="local", show_default=True,
                 help="local: this machine; ray: tasks on a Ray cluster (data and teacher paths must be visible "
                      "to every node)."),
    click.option("--ray-address", default=None, metavar="ADDR",
                 help="Ray cluster to join, e.g. ray://head:10001 (default: start a local Ray)."),
    _cache_dir_option,
    click.option("--wait-timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
                 help="With --measure on a phone: give up waiting for the farm after this long per step."),
    _space_option,
    _data_options,
    _db_option,
]


def _search_run_options(fn):
    for option in reversed(_SEARCH_RUN_OPTIONS):
        fn = option(fn)
    return fn


@main.group(invoke_without_command=True)
@click.option("--name", default=None, help="Name of the run; an existing name resumes that run "
                                           "(default: a new name from the date and time).")
@click.option("--teacher", "teacher_paths", multiple=True, type=click.Path(),
              help="Teacher .keras/.h5/SavedModel; repeat for an ensemble. Needed for --reward-source kd.")
@click.option("--reward-source", type=click.Choice(list(REWARD_SOURCES)), default="kd", show_default=True,
              help="kd: children are distilled from the teacher (AKD); label: trained on hard labels "
                   "(conventional NAS). Everything else is identical, so the two are comparable.")
@_search_run_options
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the controller (its initial weights and sampling) and of each child's training.")
@_json_option
@click.pass_context
@_fail_on_value_error
def search(ctx, name, workers, executor, ray_address, cache_dir, wait_timeout, db_url, as_json, data_options,
           **params):
    """Search for the student architecture that distills the teacher best under a latency target.

    Each child is proposed by the controller, priced on --device (a stored measurement, a new one with
    --measure, else the latency table), trained briefly against the teacher and scored on mini-val;
    its reward combines that accuracy with latency. Every trial is stored as it finishes: rerun with
    the same --name to resume an interrupted search (nothing is lost or evaluated twice).

    Subcommands show stored runs: list, status NAME, top NAME.
    """
    if ctx.invoked_subcommand is not None:
        return
    import datetime

    from search import display, runs
    from search.config import SearchConfig, merge_given
    from search.executors import make_executor
    from search.loop import run_search

    params.update(data_options)
    store = _open_store(db_url)
    name = name or datetime.datetime.now().strftime("search-%Y%m%d-%H%M%S")
    existing = runs.find_run(store, name)
    if existing is not None:
        config = merge_given(runs.run_config(existing), _search_settings(ctx, params, explicit_only=True))
    else:
        config = SearchConfig(name=name, **_search_settings(ctx, params, explicit_only=False))
    config.validate()  # before an executor (say, a Ray cluster) is started for nothing
    say = (lambda _message: None) if as_json else click.echo
    runner = make_executor(executor, workers, ray_address)
    try:
        summary = run_search(store, config, executor=runner, cache_dir=cache_dir, wait_timeout_s=wait_timeout,
                             say=say, on_event=None if as_json else _live_display())
    finally:
        runner.close()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for line in display.summary_lines(summary):
        click.echo(line)
    if summary["best"] is not None:
        click.echo(f"next: akd-tf export --run {name} --best --out {name}.tflite")


@search.command("list")
@_db_option
@_json_option
@_fail_on_value_error
def search_list(db_url, as_json):
    """Stored search runs: status, settings, progress and best reward."""
    from search import runs

    rows = runs.list_runs(_open_store(db_url))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from akd_tf.tables import format_table

    table = [{"name": r["name"], "status": r["status"], "controller": r["controller"], "reward": r["reward"],
              "source": r["reward_source"], "device": r["device"],
              "trials": f"{r['trials']['done'] + r['trials']['failed']}/{r['trials_budget']}",
              "best reward": "" if r["best"] is None else f"{r['best']['reward']:.4f}"} for r in rows]
    click.echo(format_table(table, ["name", "status", "controller", "reward", "source", "device", "trials",
                                    "best reward"], right_aligned=["trials", "best reward"]))


@search.command("status")
@click.argument("name")
@_db_option
@_json_option
@_fail_on_value_error
def search_status(name, db_url, as_json):
    """Progress and best child of the run NAME."""
    from search import display, runs

    summary = runs.run_status(_open_store(db_url), name)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for line in display.summary_lines(summary):
        click.echo(line)


@search.command("top")
@click.argument("name")
@click.option("--k", default=10, show_default=True, type=click.IntRange(min=1), help="How many children to list.")
@click.option("--max-latency-ms", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Only children at or under this latency.")
@_db_option
@_json_option
@_fail_on_value_error
def search_top(name, k, max_latency_ms, db_url, as_json):
    """The K finished children of run NAME with the highest reward."""
    from search import runs

    rows = runs.top_trials(_open_store(db_url), name, k=k, max_latency_ms=max_latency_ms)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from akd_tf.tables import format_table

    table = [{"trial": r["number"], "reward": f"{r['reward']:.4f}", "top-1": f"{r['accuracy']:.2%}",
              "latency ms": f"{r['latency_ms']:.3f}", "source": r["latency_source"], "M MACs": f"{r['mmacs']:.2f}",
              "params": f"{r['params']:,}", "arch": r["arch"]} for r in rows]
    click.echo(format_table(table, ["trial", "reward", "top-1", "latency ms", "source", "M MACs", "params", "arch"],
                            right_aligned=["trial", "reward", "top-1", "latency ms", "M MACs", "params"]))


def _latency_range_option(fn):
    return click.option("--latency-range", type=click.FloatRange(min=0), nargs=2, default=None,
                        metavar="LOW HIGH",
                        help="Heatmap: only children with a latency in [LOW, HIGH] ms (default: any latency).")(fn)


def _heatmap_k_option(fn):
    return click.option("--heatmap-k", default=20, show_default=True, type=click.IntRange(min=1),
                        help="Heatmap: average the one-hot vectors of this many most accurate children per run.")(fn)


@search.command("report")
@click.argument("name")
@click.option("--compare", default=None, metavar="NAME2",
              help="Overlay a second run (same space) and draw the difference heatmap NAME minus NAME2.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the PNG figures and index.html (created if missing).")
@click.option("--top-k", default=10, show_default=True, type=click.IntRange(min=1),
              help="Rows of each run's table of best children (by reward).")
@_heatmap_k_option
@_latency_range_option
@_db_option
@_fail_on_value_error
def search_report(name, compare, out_dir, top_k, heatmap_k, latency_range, db_url):
    """Figures of run NAME (or NAME against NAME2) and an index.html showing them.

    Writes trajectory.png (reward, accuracy, latency per trial), pareto.png (accuracy against latency
    with the Pareto front and the target), macs_latency.png (MACs against latency with a linear fit),
    pca.png (PCA of the one-hot architectures by generation), heatmap.png (option choices of the most
    accurate children; with --compare their difference) and index.html (summary, figures, top children).
    """
    from search.report import write_report

    report = write_report(_open_store(db_url), name, out_dir, compare=compare, top_k=top_k, heatmap_k=heatmap_k,
                          latency_range=latency_range, say=click.echo)
    for file_name, reason in report.skipped.items():
        click.echo(f"not drawn: {file_name}: {reason}")
    click.echo(f"open {report.index}")


# ---------------------------------------------------------------------------
# akd-tf experiment
# ---------------------------------------------------------------------------


@main.group()
def experiment():
    """The paper's experiments as one command each (they resume when run again with the same options)."""


def _run_experiment(db_url, workers, executor, ray_address, body):
    """Open the store and an executor, run ``body(store, runner, show)``, close the executor."""
    from search.executors import make_executor

    store = _open_store(db_url)
    runner = make_executor(executor, workers, ray_address)
    try:
        return body(store, runner, _live_display())
    finally:
        runner.close()


@experiment.command("relative-gain")
@click.option("--name", "prefix", required=True,
              help="Prefix of the two searches per seed (PREFIX-sSEED-akd, PREFIX-sSEED-nas); the same prefix "
                   "resumes them.")
@click.option("--teacher", "teacher_paths", multiple=True, required=True, type=click.Path(),
              help="Teacher .keras/.h5/SavedModel (repeat for an ensemble): AKD distills from it and both picks "
                   "are trained with KD from it.")
@click.option("--seed", "seeds", multiple=True, type=click.IntRange(min=0), default=(0,), show_default=True,
              help="Seed of both searches (their controllers start identical) and of the final trainings; "
                   "repeat for several seeds and a spread.")
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1),
              help="Epochs of each of the four final trainings per seed.")
@click.option("--tolerance", default=0.1, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Each search's pick is its best-reward child within target x (1 +- TOLERANCE).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the trained students, relative_gain.json/.md and the AKD-vs-NAS report.")
@_search_run_options
@_json_option
@click.pass_context
@_fail_on_value_error
def experiment_relative_gain(ctx, prefix, teacher_paths, seeds, epochs, tolerance, out_dir, workers, executor,
                             ray_address, cache_dir, wait_timeout, db_url, as_json, data_options, **params):
    """Does searching with KD find students that distill better? (the paper's Table 5 and Eq. 1)

    Per seed: an AKD search (children distilled from the teacher) and a NAS search (hard labels) with the
    same seed, controller initialization, target, budget, data and proxy training; the best child of
    each within --tolerance of the target; each trained --epochs with KD and with labels, exported and
    scored on the test split. Prints the 2x2 table and the relative gain
    [KD(AKD) - CLS(AKD)] - [KD(NAS) - CLS(NAS)], with its spread over seeds, and writes them to --out
    with a report comparing the two searches of the first seed.
    """
    from search.config import SearchConfig
    from search.experiments import ARM_SOURCES, RelativeGainPlan, arm_config, relative_gain_lines, run_relative_gain
    from search.report import write_report

    params.update(data_options)
    base = SearchConfig(name=prefix, teachers=tuple(os.path.abspath(path) for path in teacher_paths),
                        **_search_settings(ctx, params, explicit_only=False))
    plan = RelativeGainPlan(prefix=prefix, seeds=tuple(seeds), epochs=epochs, tolerance=tolerance)
    plan.validate(base)
    say = (lambda _message: None) if as_json else click.echo

    def body(store, runner, show):
        result = run_relative_gain(store, base, plan, out_dir, executor=runner, cache_dir=cache_dir,
                                   wait_timeout_s=wait_timeout, on_event=None if as_json else show, say=say)
        first = [arm_config(base, prefix, seeds[0], arm).name for arm in ARM_SOURCES]
        write_report(store, first[0], f"{out_dir}/report", compare=first[1], say=say)
        return result

    result = _run_experiment(db_url, workers, executor, ray_address, body)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo("")
    for line in relative_gain_lines(result):
        click.echo(line)
    click.echo(f"wrote {out_dir}/relative_gain.json, {out_dir}/relative_gain.md and {out_dir}/report/index.html")


@experiment.command("teachers")
@click.option("--name", "prefix", required=True,
              help="Prefix of the two searches (PREFIX-t1, PREFIX-t2); the same prefix resumes them.")
@click.option("--teacher", "teacher_paths", multiple=True, required=True, type=click.Path(),
              help="Teacher .keras/.h5/SavedModel; give it exactly twice (first, second teacher).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of both searches: their controllers start identical.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the comparison report (PNG figures and index.html).")
@_heatmap_k_option
@_latency_range_option
@_search_run_options
@click.pass_context
@_fail_on_value_error
def experiment_teachers(ctx, prefix, teacher_paths, seed, out_dir, heatmap_k, latency_range, workers, executor,
                        ray_address, cache_dir, wait_timeout, db_url, data_options, **params):
    """Do different teachers pick different students? (the paper's Fig. 6)

    Runs one AKD search per teacher with the same seed, controller initialization, target, budget and
    data, then writes their comparison: children overlaid in one PCA, shaded by generation, and the
    difference of the option choices of each search's most accurate children (PREFIX-t1 minus PREFIX-t2).
    """
    from search.config import SearchConfig
    from search.experiments import run_teachers, teacher_configs

    if len(teacher_paths) != 2:
        raise click.BadParameter(f"give --teacher exactly twice, got {len(teacher_paths)}",
                                 param_hint="--teacher")
    params.update(data_options)
    base = SearchConfig(name=prefix, seed=seed, **_search_settings(ctx, params, explicit_only=False))
    teachers = tuple((os.path.abspath(path),) for path in teacher_paths)
    teacher_configs(base, teachers, prefix)  # before an executor (say, a Ray cluster) is started for nothing

    def body(store, runner, show):
        return run_teachers(store, base, teachers, prefix, out_dir,
                            executor=runner, cache_dir=cache_dir, wait_timeout_s=wait_timeout, heatmap_k=heatmap_k,
                            latency_range=latency_range, on_event=show, say=click.echo)

    report = _run_experiment(db_url, workers, executor, ray_address, body)
    for file_name, reason in report.skipped.items():
        click.echo(f"not drawn: {file_name}: {reason}")
    click.echo(f"open {report.index}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
