"""The options every search shares, whether started by ``akd-tf search`` or by an experiment, and the
live display both print."""

from __future__ import annotations

import contextlib
import math

import click

from akd_tf.cli.options import (apply, bundle, cache_dir_option, data_options, db_option, device_option,
                                quantize_option, space_option)
from akd_tf.train_settings import DEFAULT_ALPHA, DEFAULT_PROXY_EPOCHS, DEFAULT_TEMPERATURE, GATE_COSTS, TrainSettings
from search.config import (DEFAULT_MAX_ATTEMPTS, NONE_GIVEN, STRATEGIES, SubgraphSettings,
                           controller_option_flag, controller_option_parameter)
from search.controller import CONTROLLERS
from search.controller_settings import option_defaults, option_infos
from search.early_stop import DEFAULT_RULE, STOP_RULES
from search.executors import EXECUTORS
from search.rewards import REWARDS


class _OrNone(click.ParamType):
    """A number in range, or the word ``none`` (:data:`search.config.NONE_GIVEN`: the option's None)."""

    def __init__(self, number: click.ParamType):
        self.number, self.name = number, f"{number.name} or none"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() == NONE_GIVEN:
            return NONE_GIVEN
        return self.number.convert(value, param, ctx)


def _controller_option(controller: str, name: str, info, default):
    """The click option of one controller option, from its :class:`search.controller_settings.OptionInfo`.

    It defaults to None (not given): the config fills in the controller's default, which the help shows. An
    option whose None means something (``info.none``) also takes the word ``none``."""
    if info.kind is int:
        kind = click.IntRange(min=int(info.low))
    else:
        kind = click.FloatRange(min=info.low, max=None if math.isinf(info.high) else info.high,
                                min_open=info.low_open)
    shown = "none" if default is None else default
    if info.none is not None:
        kind = _OrNone(kind)
        shown = f"{shown}; none: {info.none}"
    return click.option(controller_option_flag(controller, name), controller_option_parameter(controller, name),
                        type=kind, default=None, help=f"{info.help} (--controller {controller}; default: {shown})")


CONTROLLER_OPTIONS = [_controller_option(controller, name, info, option_defaults(spec.settings)[name])
                      for controller, spec in CONTROLLERS.items()
                      for name, info in option_infos(spec.settings).items()]

SEARCH_RUN_OPTIONS = [
    device_option,
    click.option("--target-ms", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="Latency target T in ms on --device (rewards mnas-soft and mnas-hard)."),
    click.option("--target-mmacs", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="MACs target in millions (reward flops); --strategy subgraph carves towards it when no "
                      "--target-ms is given."),
    click.option("--reward", type=click.Choice(list(REWARDS)), default="mnas-soft", show_default=True,
                 help="mnas-soft: ACC*(LAT/T)^-0.07; mnas-hard: ACC, or ACC*(LAT/T)^-1 over T; flops: "
                      "ACC*(MACs/target)^-0.07; accuracy: ACC alone."),
    click.option("--trials", default=100, show_default=True, type=click.IntRange(min=1),
                 help="Children to evaluate in all (give a larger number to extend a finished run)."),
    click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
                 help="Children per controller step (one PPO update per step)."),
    click.option("--strategy", type=click.Choice(list(STRATEGIES)), default="akd", show_default=True,
                 help="akd: a controller proposes architectures of --space (the paper); subgraph: carve the student "
                      "out of the one --teacher by L1-gated units and KL to it, each trial a penalty strength, "
                      "until a student is within --target-tolerance of --target-ms measured on --device."),
    click.option("--subgraph-cost", type=click.Choice(list(GATE_COSTS)), default=None,
                 help="subgraph: what each gate's penalty weighs: latency (each teacher layer measured alone on "
                      f"--device), macs, or units (1 each: plain L1). Default: {SubgraphSettings.cost}."),
    click.option("--gate-epochs", type=click.IntRange(min=1), default=None,
                 help="subgraph: epochs over mini-train that train the gates (default "
                      f"{SubgraphSettings.gate_epochs})."),
    click.option("--gate-lr", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="subgraph: the gates' learning rate (SGD with momentum, cosine decay; default "
                      f"{SubgraphSettings.gate_learning_rate})."),
    click.option("--gate-threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
                 help=f"subgraph: a gate below this removes its unit (default {SubgraphSettings.threshold})."),
    click.option("--target-tolerance", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
                 help="subgraph: a student within this fraction of --target-ms ends the search (default "
                      f"{SubgraphSettings.tolerance})."),
    click.option("--lambda-start", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="subgraph: the first penalty strength tried; later ones move tenfold until the target is "
                      f"bracketed, then split it (default {SubgraphSettings.first_strength}; range "
                      f"{SubgraphSettings.min_strength:g}-{SubgraphSettings.max_strength:g})."),
    click.option("--controller", type=click.Choice(list(CONTROLLERS)), default="ppo", show_default=True,
                 help="ppo: the paper's RNN actor-critic (options --ppo-*); evolution: regularized (aging) "
                      "evolution (options --evolution-*); random: uniform sampling, the baseline."),
    *CONTROLLER_OPTIONS,
    click.option("--measure", is_flag=True,
                 help="Every child's latency is a whole-model measurement on --device: a stored one taken the "
                      "way a search measures, else a new one (phones: farm jobs, run `akd-tf devices serve`). "
                      "Default: every child is predicted by the device's latency table (one table version and "
                      "calibration for the whole run)."),
    click.option("--mix-latency", is_flag=True,
                 help="Without --measure: a child's latency is a stored whole-model measurement on --device where "
                      "one matches, and the table's prediction elsewhere (two sources in one run)."),
    click.option("--max-attempts", default=DEFAULT_MAX_ATTEMPTS, show_default=True, type=click.IntRange(min=1),
                 help="Evaluations of a child whose infrastructure fails (a killed worker, a Ray node that dies, a "
                      "farm job out of retries, a conversion crash) before it is excluded from the controller's "
                      "learning; a child whose training diverges is not retried (its reward is 0). Stored with "
                      "the run."),
    click.option("--early-stop", type=click.Choice(list(STOP_RULES)), is_flag=False, flag_value=DEFAULT_RULE,
                 default=None, metavar="[RULE]",
                 help="Stop children behind the run's earlier ones (at least 4 of them) at the same epoch; a "
                      "stopped child's reward is that of the accuracy it had then. RULE: "
                      + "; ".join(f"'{rule.name}': {rule.summary}" for rule in STOP_RULES.values())
                      + f" (a bare --early-stop: '{DEFAULT_RULE}'). A child is validated on mini-val where it may "
                        "stop. Off by default (the paper's protocol). Stored with the run."),
    quantize_option("Quantization the latencies are for."),
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
    # How children are run, not what they mean (not stored with the run): one ``execution`` dict.
    bundle("execution", [
        click.option("--workers", default=None, type=click.IntRange(min=1),
                     help="Children trained at once on this machine: worker processes sharing its cores, or with "
                          "--executor ray the CPUs of the local Ray it starts (default 1). Refused with "
                          "--ray-address, where the cluster's CPUs decide. With several, the next step is proposed "
                          "and started while a step's last children train (the controller's proposals then lag "
                          "one update; not with --measure)."),
        click.option("--cores-per-worker", default=None, type=click.IntRange(min=1), metavar="K",
                     help="Pin each local worker process to K cores of its own, with K TensorFlow threads, so "
                          "workers never compete for a core (and the other cores stay free, say for a phone farm "
                          "on this machine). Workers x K must fit the cores this process may run on. Even "
                          "--workers 1 then trains in a worker process. Default: not pinned; the workers share "
                          "the cores (cores / workers threads each), one worker trains in the search process."),
        click.option("--executor", type=click.Choice(list(EXECUTORS)), default="local", show_default=True,
                     help="local: this machine; ray: tasks on a Ray cluster (data and teacher paths must be visible "
                          "to every node)."),
        click.option("--ray-address", default=None, metavar="ADDR",
                     help="Ray cluster to join, e.g. ray://head:10001 (default: start a local Ray)."),
        cache_dir_option,
        click.option("--wait-timeout", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
                     help="With --measure on a phone: give up when no child trains and no measurement has come back "
                          "from the farm for this long (the search then stops, its children's attempts uncounted, "
                          "to be resumed). Default: wait as long as it takes."),
        click.option("--allow-latency-change", is_flag=True,
                     help="Resume a run whose latency source changed since it started (a new latency table "
                          "version or calibration, a new runtime): the rest of its children are priced by the new "
                          "one, and the run records which trials the old one priced. Without it such a resume is "
                          "refused."),
        click.option("--logdir", default=None, type=click.Path(file_okay=False), metavar="DIR",
                     help="Write TensorBoard event files to DIR/RUN (each child's training curves, the "
                          "controller's statistics per step, the best reward so far); view them with "
                          "`tensorboard --logdir DIR`. Checked before any child trains."),
    ]),
    space_option,
    data_options,
    db_option,
]
search_run_options = apply(SEARCH_RUN_OPTIONS)

latency_range_option = click.option(
    "--latency-range", type=click.FloatRange(min=0), nargs=2, default=None, metavar="LOW HIGH",
    help="Heatmap: only children with a latency in [LOW, HIGH] ms (default: any latency).")
heatmap_k_option = click.option(
    "--heatmap-k", default=20, show_default=True, type=click.IntRange(min=1),
    help="Heatmap: average the one-hot vectors of this many most accurate children per run.")


def typed_options(ctx: click.Context, options: dict) -> set[str]:
    """The names in ``options`` that the user typed (not left at their defaults)."""
    return {name for name in options
            if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)}


def live_display():
    """An ``on_event`` for searches: one line per finished child, and the architecture whenever the best changes."""
    from search import display

    def show(event):
        click.echo(display.event_line(event))
        line = display.best_changed_line(event)
        if line is not None:
            click.echo(line)

    return show


@contextlib.contextmanager
def open_executor(execution: dict):
    """The executor that trains the children (in this process, worker processes or a Ray cluster), closed
    when the block ends."""
    from search.executors import make_executor

    if execution["logdir"] is not None:  # before a Ray cluster is started, and before any child trains
        from search.tensorboard_log import check_logdir

        try:
            check_logdir(execution["logdir"])
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--logdir") from None
    runner = make_executor(execution["executor"], execution["workers"], execution["ray_address"],
                           execution["cores_per_worker"])
    try:
        yield runner
    finally:
        runner.close()
