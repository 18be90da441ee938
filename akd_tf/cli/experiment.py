"""``akd-tf experiment``: the paper's experiments as one command each (rerun with the same options to resume)."""

from __future__ import annotations

import os

import click

from akd_tf.cli.common import echo_json, open_store, say_unless_json
from akd_tf.cli.options import json_option
from akd_tf.cli.search import print_report_outcome
from akd_tf.cli.search_options import (heatmap_k_option, latency_range_option, live_display, open_executor,
                                       search_run_options)


def _epochs_option(what: str):
    return click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1),
                        help=f"Epochs of {what}.")


# Each search's pick: its best-reward child near the target (search.experiments.pick_near_target).
_tolerance_option = click.option("--tolerance", default=0.1, show_default=True,
                                 type=click.FloatRange(min=0, min_open=True),
                                 help="Each search's pick is its best-reward child within target x (1 +- TOLERANCE).")


def _out_option(what: str):
    return click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
                        help=f"Directory for {what}.")


def _print_result(result: dict, as_json: bool, lines, written: str) -> None:
    """An experiment's result as JSON, or its table's lines and what was written."""
    if as_json:
        echo_json(result)
        return
    click.echo("")
    for line in lines(result):
        click.echo(line)
    click.echo(written)


@click.group()
def experiment():
    """The paper's experiments as one command each (they resume when run again with the same options)."""


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
@_epochs_option("each of the four final trainings per seed")
@_tolerance_option
@_out_option("the trained students, relative_gain.json/.md and the AKD-vs-NAS report")
@search_run_options
@json_option
def experiment_relative_gain(prefix, teacher_paths, seeds, epochs, tolerance, out_dir, execution, db_url, as_json,
                             data_options, **options):
    """Does searching with KD find students that distill better? (the paper's Table 5 and Eq. 1)

    Per seed: an AKD search (children distilled from the teacher) and a NAS search (hard labels) with the
    same seed, controller initialization, target, budget, data and proxy training; the best child of
    each within --tolerance of the target; each trained --epochs with KD and with labels, exported and
    scored on the test split. Prints the 2x2 table and the relative gain
    [KD(AKD) - CLS(AKD)] - [KD(NAS) - CLS(NAS)], with its spread over seeds, and writes them to --out
    with a report comparing the two searches of the first seed.
    """
    from search.config import SearchConfig, config_fields
    from search.experiments import RelativeGainPlan, relative_gain_lines, run_relative_gain

    base = SearchConfig(name=prefix, teachers=tuple(os.path.abspath(path) for path in teacher_paths),
                        **config_fields({**options, **data_options}))
    plan = RelativeGainPlan(prefix=prefix, seeds=tuple(seeds), epochs=epochs, tolerance=tolerance)
    plan.validate(base)
    store = open_store(db_url)
    with open_executor(execution) as runner:
        result = run_relative_gain(store, base, plan, out_dir, executor=runner, cache_dir=execution["cache_dir"],
                                   wait_timeout_s=execution["wait_timeout"], logdir=execution["logdir"],
                                   allow_latency_change=execution["allow_latency_change"],
                                   on_event=None if as_json else live_display(), say=say_unless_json(as_json))
    _print_result(result, as_json, relative_gain_lines,
                  f"wrote {out_dir}/relative_gain.json, {out_dir}/relative_gain.md and {out_dir}/report/index.html")


@experiment.command("teachers")
@click.option("--name", "prefix", required=True,
              help="Prefix of the two searches (PREFIX-t1, PREFIX-t2); the same prefix resumes them.")
@click.option("--teacher", "teacher_paths", multiple=True, required=True, type=click.Path(),
              help="Teacher .keras/.h5/SavedModel; give it exactly twice (first, second teacher).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of both searches: their controllers start identical.")
@_out_option("the comparison report (PNG figures and index.html)")
@heatmap_k_option
@latency_range_option
@search_run_options
def experiment_teachers(prefix, teacher_paths, seed, out_dir, heatmap_k, latency_range, execution, db_url,
                        data_options, **options):
    """Do different teachers pick different students? (the paper's Fig. 6)

    Runs one AKD search per teacher with the same seed, controller initialization, target, budget and
    data, then writes their comparison: children overlaid in one PCA, shaded by generation, and the
    difference of the option choices of each search's most accurate children (PREFIX-t1 minus PREFIX-t2).
    """
    from search.config import SearchConfig, config_fields
    from search.experiments import run_teachers, teacher_configs

    if len(teacher_paths) != 2:
        raise click.BadParameter(f"give --teacher exactly twice, got {len(teacher_paths)}",
                                 param_hint="--teacher")
    base = SearchConfig(name=prefix, seed=seed, **config_fields({**options, **data_options}))
    teachers = tuple((os.path.abspath(path),) for path in teacher_paths)
    teacher_configs(base, teachers, prefix)  # before an executor (say, a Ray cluster) is started for nothing
    store = open_store(db_url)
    with open_executor(execution) as runner:
        report = run_teachers(store, base, teachers, prefix, out_dir, executor=runner,
                              cache_dir=execution["cache_dir"], wait_timeout_s=execution["wait_timeout"],
                              logdir=execution["logdir"], allow_latency_change=execution["allow_latency_change"],
                              heatmap_k=heatmap_k, latency_range=latency_range, on_event=live_display(),
                              say=click.echo)
    print_report_outcome(report)


@experiment.command("strategies")
@click.option("--name", "prefix", required=True,
              help="Prefix of the three searches (PREFIX-subgraph, PREFIX-akd, PREFIX-nas); the same prefix resumes "
                   "them.")
@click.option("--teacher", "teacher_path", required=True, type=click.Path(),
              help="Teacher .keras/.h5/SavedModel: carved by the subgraph run, distilled by the AKD search, and the "
                   "teacher every pick is trained with.")
@_epochs_option("each pick's final training with KD")
@_tolerance_option
@_out_option("the trained students and strategies.json/.md")
@search_run_options
@json_option
def experiment_strategies(prefix, teacher_path, epochs, tolerance, out_dir, execution, db_url, as_json,
                          data_options, **options):
    """Carve the student out of the teacher, or search for it? The two strategies side by side.

    For one teacher, data and --target-ms on --device: a subgraph run (--strategy subgraph, its --subgraph-*
    and --gate-* options), an AKD search and a NAS (hard-label) search (the controller options, --trials
    and proxy settings), each search's best-reward child within --tolerance of the target, each trained
    --epochs with KD from the teacher, exported and measured on --device the same way. Prints one table:
    accuracy, measured latency, size, parameters, MACs and the search's compute-hours; writes it to --out.
    """
    from search.config import SearchConfig, config_fields
    from search.experiments import run_strategies, strategies_lines

    options = {key: value for key, value in options.items() if key != "strategy"}
    base = SearchConfig(name=prefix, teachers=(os.path.abspath(teacher_path),),
                        **config_fields({**options, **data_options}))
    if base.target_ms is None:
        raise click.BadParameter("the strategies are compared at a latency target: give it", param_hint="--target-ms")
    store = open_store(db_url)
    with open_executor(execution) as runner:
        result = run_strategies(store, base, prefix, out_dir, epochs=epochs, tolerance=tolerance, executor=runner,
                                cache_dir=execution["cache_dir"], wait_timeout_s=execution["wait_timeout"],
                                on_event=None if as_json else live_display(), say=say_unless_json(as_json))
    _print_result(result, as_json, strategies_lines, f"wrote {out_dir}/strategies.json and {out_dir}/strategies.md")
