"""``akd-tf export`` (an architecture, a Keras model or a searched student to .tflite) and ``akd-tf bench``."""

from __future__ import annotations

from pathlib import Path

import click

from akd_tf.cli.common import echo_json, keras_verbosity, open_store, parse_arch, say_unless_json
from akd_tf.cli.options import (SHAPE_OPTIONS, bundle, cache_dir_option, db_option, json_option, quantize_option,
                                space_option)

_SOURCE_OPTIONS = [
    click.option("--arch", "arch_text", default=None, metavar="ARCH",
                 help="Export an untrained student of this architecture (for latency measurement)."),
    click.option("--keras-model", type=click.Path(), default=None,
                 help="Export a trained Keras model (.keras, .h5 or a SavedModel directory)."),
    click.option("--run", "run_name", default=None, metavar="NAME",
                 help="Train a child of search run NAME in full (--best or --trial N), export it, score it on the "
                      "test split and measure it on the run's device."),
    click.option("--best", is_flag=True, help="With --run: the child with the highest reward."),
    click.option("--trial", "trial_number", type=click.IntRange(min=0), default=None, help="With --run: trial N."),
]
_TRAINING_OPTIONS = [
    click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1),
                 help="With --run: training epochs (the best epoch on mini-val is exported; rerun to resume)."),
    click.option("--train-with", type=click.Choice(["kd", "label"]), default=None,
                 help="With --run: distill from the run's teacher or train on labels (default: as the run did)."),
]
_CONVERSION_OPTIONS = [
    quantize_option("none: float32; fp16: float16 weights; int8: full-integer post-training quantization."),
    click.option("--representative-data", type=click.Path(), default=None,
                 help="int8 calibration images (N,H,W,C) in [-1, 1], .npy or the 'x' array of a .npz. "
                      "Default: random images (fine for latency, not for accuracy); --run uses mini-train images."),
    click.option("--min-int8-agreement", type=click.FloatRange(0, 1), default=None,
                 help="int8 parity: least top-1 agreement with Keras. Default 0.9 for --keras-model and --run; "
                      "0 for --arch, whose random weights make top-1 meaningless."),
]
_RUN_ACCESS_OPTIONS = [
    cache_dir_option,
    click.option("--wait-timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
                 help="With --run on a phone: give up waiting for the farm's measurement after this long."),
    db_option,
]


def _check_modes(source: dict, training: dict) -> None:
    """Exactly one of --arch, --keras-model and --run; the child options only with --run."""
    if sum(source[name] is not None for name in ("arch_text", "keras_model", "run_name")) != 1:
        raise click.UsageError("give exactly one of --arch, --keras-model or --run")
    if source["run_name"] is not None:
        if source["best"] == (source["trial_number"] is not None):
            raise click.UsageError("with --run give exactly one of --best or --trial N")
    elif source["best"] or source["trial_number"] is not None or training["train_with"] is not None:
        raise click.UsageError("--best, --trial and --train-with choose a child of a search: use them with --run")


@click.command("export")
@bundle("source", _SOURCE_OPTIONS)
@bundle("training", _TRAINING_OPTIONS)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Path of the .tflite file to write.")
@bundle("conversion", _CONVERSION_OPTIONS)
@bundle("model", [space_option, *SHAPE_OPTIONS])
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for weights and random images.")
@bundle("run_access", _RUN_ACCESS_OPTIONS)
@json_option
def export_cmd(source, training, out, conversion, model, seed, run_access, as_json):
    """Convert an architecture, a Keras model or a searched student to .tflite, with a parity check.

    The file is written only if the parity check passes; a failed check exits 1.
    """
    _check_modes(source, training)
    if source["run_name"] is not None:
        return _export_run(source, training, out, conversion["quantize"], seed, run_access, as_json)
    from akd_tf import export

    rep = (export.load_image_array(conversion["representative_data"]) if conversion["representative_data"]
           else None)
    quantize, min_agreement = conversion["quantize"], conversion["min_int8_agreement"]
    if source["arch_text"] is not None:
        a = parse_arch(model["space_name"], source["arch_text"], "'--arch'")
        shape = (model["resolution"], model["resolution"], model["channels"])
        result = export.export_arch(a, shape, model["classes"], out, quantize, representative_data=rep, seed=seed,
                                    min_int8_agreement=0.0 if min_agreement is None else min_agreement)
    else:
        result = export.export_keras_file(
            source["keras_model"], out, quantize, representative_data=rep, seed=seed,
            min_int8_agreement=export.DEFAULT_MIN_INT8_AGREEMENT if min_agreement is None else min_agreement)
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(f"wrote {result.path} ({result.size_bytes:,} bytes, {quantize}, sha256 {result.sha256[:12]}, "
               f"converted in {result.convert_seconds:.2f} s)")
    click.echo(result.parity.summary())


def _export_run(source: dict, training: dict, out: str, quantize: str, seed: int, run_access: dict,
                as_json: bool) -> None:
    from search.final import export_trial

    record = export_trial(open_store(run_access["db_url"]), source["run_name"], source["trial_number"], out,
                          epochs=training["epochs"], quantize=quantize, train_with=training["train_with"], seed=seed,
                          cache_dir=run_access["cache_dir"], wait_timeout_s=run_access["wait_timeout"],
                          verbose=keras_verbosity(as_json), say=say_unless_json(as_json))
    if as_json:
        echo_json(record.to_dict())
        return
    test = ("no test split" if record.test_top1 is None else
            f"test top-1 {record.test_top1:.2%} ({record.test_examples} images, the .tflite)")
    click.echo(f"student: trial #{record.trial} of {record.run!r}, {record.params:,} params, {record.mmacs:.2f} M MACs")
    click.echo(f"accuracy: mini-val top-1 {record.val_top1:.2%} (best epoch); {test}")
    click.echo(f"latency: {record.latency_ms:.3f} ms on {record.device!r} (measurement #{record.measurement_id})")
    click.echo(f"file: {record.tflite} ({record.size_bytes:,} bytes, {record.quantize}); "
               f"summary: {Path(record.tflite).with_suffix('.json')}")


@click.command()
@click.argument("model", type=click.Path())
@click.option("--runs", default=50, show_default=True, type=click.IntRange(min=1), help="Least number of timed runs.")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(min=0),
              help="Least number of warm-up runs.")
@click.option("--min-secs", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Least total seconds of timed runs.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1), help="Interpreter threads.")
@click.option("--core", default="auto", show_default=True,
              help="CPU core to pin the process to: a number, 'auto' (the last available) or 'none'.")
@json_option
def bench(model, runs, warmup, min_secs, threads, core, as_json):
    """Measure MODEL (.tflite) on this host's CPU, single-threaded on one pinned core by default."""
    from akd_tf.benchmark import RunSettings, describe, run_local_benchmark

    settings = RunSettings(num_threads=threads, num_runs=runs, warmup_runs=warmup, min_secs=min_secs)
    result = run_local_benchmark(model, settings, core=core)
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(describe(result, model))
