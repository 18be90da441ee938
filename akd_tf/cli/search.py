"""``akd-tf search``: run or resume a search, and show stored runs (list, status, top, report)."""

from __future__ import annotations

import shlex

import click

from akd_tf.cli.common import echo_json, open_store, say_unless_json
from akd_tf.cli.options import db_option, json_option
from akd_tf.cli.search_options import (heatmap_k_option, latency_range_option, live_display, open_executor,
                                       search_run_options, typed_options)
from search.config import REWARD_SOURCES


@click.group(invoke_without_command=True)
@click.option("--name", default=None, help="Name of the run; an existing name resumes that run "
                                           "(default: a new name from the date and time).")
@click.option("--teacher", "teacher_paths", multiple=True, type=click.Path(),
              help="Teacher .keras/.h5/SavedModel; repeat for an ensemble. Needed for --reward-source kd.")
@click.option("--reward-source", type=click.Choice(list(REWARD_SOURCES)), default="kd", show_default=True,
              help="kd: children are distilled from the teacher (AKD); label: trained on hard labels "
                   "(conventional NAS). Everything else is identical, so the two are comparable.")
@search_run_options
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the controller (its initial weights and sampling) and of each child's training.")
@json_option
@click.pass_context
def search(ctx, name, execution, db_url, as_json, data_options, **options):
    """Search for the student architecture that distills the teacher best under a latency target.

    Each child is proposed by the controller, priced on --device (by the latency table's prediction, or
    with --measure by a whole-model measurement: one source for every child of a run), trained briefly
    against the teacher and scored on mini-val; its reward combines that accuracy with latency. Every
    trial is stored as it finishes: rerun with the same --name to resume an interrupted search (nothing
    is lost or evaluated twice).

    With --strategy subgraph there is no controller: the student is carved out of the --teacher. Each
    trial trains gates on the teacher's residual branches and channels at one penalty strength, removes
    what they switch off, measures the student on --device and fine-tunes it; the strength moves until a
    student is within --target-tolerance of --target-ms.

    Subcommands show stored runs: list, status NAME, top NAME.
    """
    if ctx.invoked_subcommand is not None:
        return
    from search import display, runs
    from search.config import config_for, new_run_name
    from search.loop import run_search

    options.update(data_options)
    store = open_store(db_url)
    name = name or new_run_name()
    stored = runs.find_run(store, name)
    config = config_for(name, options, stored=None if stored is None else runs.run_config(stored),
                        typed=typed_options(ctx, options))
    config.validate()  # before an executor (say, a Ray cluster) is started for nothing
    if config.strategy == "subgraph":
        from search.subgraph import run_subgraph_search

        _refuse_akd_execution(execution)
        summary = run_subgraph_search(store, config, cache_dir=execution["cache_dir"],
                                      wait_timeout_s=execution["wait_timeout"], say=say_unless_json(as_json))
    else:
        try:
            with open_executor(execution) as runner:
                summary = run_search(store, config, executor=runner, cache_dir=execution["cache_dir"],
                                     wait_timeout_s=execution["wait_timeout"], logdir=execution["logdir"],
                                     allow_latency_change=execution["allow_latency_change"],
                                     say=say_unless_json(as_json), on_event=None if as_json else live_display())
        except KeyboardInterrupt:
            click.echo(f"\nsearch {name!r} paused (Ctrl-C): every finished child is stored, and the children it "
                       f"stopped count no attempt; resume with: akd-tf search --name {shlex.quote(name)}"
                       f"{' --db URL' if db_url else ''}", err=True)
            ctx.exit(130)
    if as_json:
        echo_json(summary)
        return
    for line in display.summary_lines(summary):
        click.echo(line)
    if summary["best"] is not None:
        click.echo(f"next: akd-tf export --run {name} --best --out {name}.tflite")


@search.command("list")
@db_option
@json_option
def search_list(db_url, as_json):
    """Stored search runs: status, settings, progress and best reward."""
    from akd_tf.tables import format_table
    from search import runs

    rows = runs.list_runs(open_store(db_url))
    if as_json:
        echo_json(rows)
        return
    table = [{"name": r["name"], "status": r["status"], "controller": r["controller"], "reward": r["reward"],
              "source": r["reward_source"], "device": r["device"],
              "trials": f"{r['trials']['done'] + r['trials']['failed'] + r['trials']['excluded']}/"
                        f"{r['trials_budget']}",
              "best reward": "" if r["best"] is None else f"{r['best']['reward']:.4f}"} for r in rows]
    click.echo(format_table(table, ["name", "status", "controller", "reward", "source", "device", "trials",
                                    "best reward"], right_aligned=["trials", "best reward"]))


@search.command("status")
@click.argument("name")
@db_option
@json_option
def search_status(name, db_url, as_json):
    """Progress and best child of the run NAME."""
    from search import display, runs

    summary = runs.run_status(open_store(db_url), name)
    if as_json:
        echo_json(summary)
        return
    for line in display.summary_lines(summary):
        click.echo(line)


@search.command("top")
@click.argument("name")
@click.option("--k", default=10, show_default=True, type=click.IntRange(min=1), help="How many children to list.")
@click.option("--max-latency-ms", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Only children at or under this latency.")
@db_option
@json_option
def search_top(name, k, max_latency_ms, db_url, as_json):
    """The K finished children of run NAME with the highest reward."""
    from akd_tf.tables import format_table
    from search import runs

    rows = runs.top_trials(open_store(db_url), name, k=k, max_latency_ms=max_latency_ms)
    if as_json:
        echo_json(rows)
        return
    table = [{"trial": r["number"], "reward": f"{r['reward']:.4f}", "top-1": f"{r['accuracy']:.2%}",
              "latency ms": f"{r['latency_ms']:.3f}", "source": r["latency_source"], "M MACs": f"{r['mmacs']:.2f}",
              "params": f"{r['params']:,}", "arch": r["arch"]} for r in rows]
    click.echo(format_table(table, ["trial", "reward", "top-1", "latency ms", "source", "M MACs", "params", "arch"],
                            right_aligned=["trial", "reward", "top-1", "latency ms", "M MACs", "params"]))


@search.command("report")
@click.argument("name")
@click.option("--compare", default=None, metavar="NAME2",
              help="Overlay a second run (same space) and draw the difference heatmap NAME minus NAME2.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the PNG figures and index.html (created if missing).")
@click.option("--top-k", default=10, show_default=True, type=click.IntRange(min=1),
              help="Rows of each run's table of best children (by reward).")
@heatmap_k_option
@latency_range_option
@db_option
def search_report(name, compare, out_dir, top_k, heatmap_k, latency_range, db_url):
    """Figures of run NAME (or NAME against NAME2) and an index.html showing them.

    Writes trajectory.png (reward, accuracy, latency per trial), pareto.png (accuracy against latency
    with the Pareto front and the target), macs_latency.png (MACs against latency with a linear fit),
    pca.png (PCA of the one-hot architectures by generation), heatmap.png (option choices of the most
    accurate children; with --compare their difference) and index.html (summary, figures, top children).
    """
    from search.report import write_report

    report = write_report(open_store(db_url), name, out_dir, compare=compare, top_k=top_k, heatmap_k=heatmap_k,
                          latency_range=latency_range, say=click.echo)
    print_report_outcome(report)


def print_report_outcome(report) -> None:
    """The figures a report could not draw, with why, then where to open it."""
    for file_name, reason in report.skipped.items():
        click.echo(f"not drawn: {file_name}: {reason}")
    click.echo(f"open {report.index}")


# How children of an AKD search are run; a subgraph run trains one student at a time in this process and
# measures every one, so these would change nothing there.
_AKD_EXECUTION = {"workers": "--workers", "cores_per_worker": "--cores-per-worker", "ray_address": "--ray-address",
                  "logdir": "--logdir",
                  "allow_latency_change": "--allow-latency-change"}


def _refuse_akd_execution(execution: dict) -> None:
    """``UsageError`` naming the execution options a subgraph run cannot honour, instead of ignoring them."""
    given = [flag for key, flag in _AKD_EXECUTION.items() if execution.get(key)]
    if execution.get("executor", "local") != "local":
        given.append("--executor")
    if given:
        raise click.UsageError(f"{', '.join(given)}: settings of the akd strategy's children; a subgraph run "
                               "(--strategy subgraph) trains its students one at a time in this process")
