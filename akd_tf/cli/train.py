"""``akd-tf train`` (a student by distillation) and ``akd-tf teacher train`` (a teacher on labels)."""

from __future__ import annotations

import click

from akd_tf.cli.common import echo_json, keras_verbosity, parse_arch
from akd_tf.cli.options import bundle, cache_dir_option, data_options, fit_options, json_option, space_option
from akd_tf.space import get_space
from akd_tf.train_settings import DEFAULT_ALPHA, DEFAULT_TEMPERATURE


def _training_data(space_name: str, data_options: dict):
    """Mini-train / mini-val from the data options."""
    from akd_tf.data_config import data_config, load_configured

    return load_configured(data_config(**data_options), get_space(space_name).min_resolution)


def _fit(model, teacher, training, settings, out, as_json, fit_options, *, use_cache=True, cache_dir=None,
         extra=None):
    """Train into ``out`` (:func:`akd_tf.training_run.train_to_file`) and print what came of it."""
    from akd_tf.training_run import train_settings, train_to_file

    fit = dict(fit_options)
    checkpoint_dir, summary_path = fit.pop("checkpoint_dir"), fit.pop("summary_path")
    if not as_json:
        click.echo(training.describe())
        if teacher is not None:
            click.echo(teacher.describe())
    done = train_to_file(model, teacher, training, settings, train_settings(**fit), out,
                         checkpoint_dir=checkpoint_dir, summary_path=summary_path, use_cache=use_cache,
                         cache_dir=cache_dir, extra=extra, verbose=keras_verbosity(as_json))
    if as_json:
        echo_json(done.summary)
        return
    result = done.result
    agreement = "" if result.agreement is None else f", agreement with teacher {result.agreement:.1%}"
    click.echo(f"mini-val top-1 {result.top1:.2%}, top-{min(5, training.num_classes)} {result.top5:.2%}, "
               f"loss {result.loss:.4f}{agreement}")
    if result.best_top1 is not None:
        click.echo(f"best mini-val top-1 {result.best_top1:.2%} at epoch {result.best_epoch}: saved to {done.out}")
    cache = {True: " (cache hit)", False: " (computed, cached)", None: ""}[result.teacher_cache_hit]
    click.echo(f"{result.examples_per_s:.0f} examples/s, {result.seconds:.1f} s; teacher: "
               f"{result.teacher_mode}{cache}; summary: {done.summary_path}")


@click.group()
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
@space_option
@data_options
@fit_options(default_epochs=15)
@json_option
def teacher_train(out, model_name, arch_text, space_name, data_options, fit_options, as_json):
    """Train a teacher on hard labels, keeping the epoch with the best mini-val top-1 (resumable)."""
    arch = parse_arch(space_name, arch_text, "--arch") if arch_text else None
    training = _training_data(space_name, data_options)
    from akd_tf.teachers import build_teacher
    from akd_tf.train_settings import DistillSettings

    model, described = build_teacher(model_name, arch, training.input_shape, training.num_classes,
                                     fit_options["seed"])
    _fit(model, None, training, DistillSettings.hard_label(), out, as_json, fit_options,
         extra={"teacher_model": described, "params": int(model.count_params())})


@click.command("train")
@click.option("--arch", "arch_text", required=True, metavar="ARCH", help="The student architecture.")
@click.option("--teacher", "teacher_paths", multiple=True, type=click.Path(),
              help="Teacher .keras/.h5/SavedModel; repeat for an ensemble (averaged probabilities).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Where to save the student (.keras): the best epoch on mini-val.")
@bundle("kd", [
    click.option("--alpha", default=DEFAULT_ALPHA, show_default=True, type=click.FloatRange(0, 1),
                 help="Weight of the teacher's soft targets (1 - alpha weighs the labels)."),
    click.option("--temperature", default=DEFAULT_TEMPERATURE, show_default=True,
                 type=click.FloatRange(min=0, min_open=True), help="Softmax temperature of the soft targets."),
    click.option("--hard-label", is_flag=True, help="Labels only (alpha 0, no teacher): the conventional baseline."),
    click.option("--feature-kd", is_flag=True,
                 help="Also match the teacher's embedding (MSE through a learned projection)."),
    click.option("--feature-weight", default=1.0, show_default=True, type=click.FloatRange(min=0),
                 help="Weight of the feature term with --feature-kd."),
])
@bundle("teacher_cache", [
    cache_dir_option,
    click.option("--no-teacher-cache", is_flag=True, help="Run the teacher online on every batch."),
])
@space_option
@data_options
@fit_options(default_epochs=30)
@json_option
def train_cmd(arch_text, teacher_paths, out, kd, teacher_cache, space_name, data_options, fit_options, as_json):
    """Train a student of ARCH by distillation from --teacher (or on hard labels) and save the best epoch."""
    arch = parse_arch(space_name, arch_text, "--arch")
    if kd["hard_label"] and kd["feature_kd"]:
        raise click.BadParameter("--hard-label trains without a teacher; drop --feature-kd", param_hint="--hard-label")
    if not kd["hard_label"] and not teacher_paths:
        raise click.BadParameter("give --teacher PATH (repeat for an ensemble), or --hard-label to train on labels "
                                 "only", param_hint="--teacher")
    training = _training_data(space_name, data_options)
    from akd_tf.teachers import load_teacher
    from akd_tf.train_settings import DistillSettings
    from akd_tf.training_run import seeded_student

    settings = (DistillSettings.hard_label() if kd["hard_label"] else
                DistillSettings(alpha=kd["alpha"], temperature=kd["temperature"],
                                feature_weight=kd["feature_weight"] if kd["feature_kd"] else 0.0))
    teacher_model = None if kd["hard_label"] else load_teacher(list(teacher_paths))
    student = seeded_student(arch, training.input_shape, training.num_classes, fit_options["seed"],
                             with_embedding=kd["feature_kd"])
    _fit(student, teacher_model, training, settings, out, as_json, fit_options,
         use_cache=not teacher_cache["no_teacher_cache"], cache_dir=teacher_cache["cache_dir"],
         extra={"arch": arch.to_string(), "teachers": list(teacher_paths)})
