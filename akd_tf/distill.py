"""Knowledge distillation: the loss, a Keras trainer, proxy training for search and full training.

The loss for a batch of N examples with labels y, student logits z_s and
teacher logits z_t is the mean over the batch of

    (1 - alpha) * CE(y, softmax(z_s))
      + alpha * T^2 * CE(softmax(z_t / T), softmax(z_s / T))
      [+ beta * MSE(P e_s, e_t)]

where CE(p, q) = -sum_k p_k log q_k, alpha = 0.9 and T = 1 by default (the
paper's settings), and the optional last term is feature distillation: the
student's embedding e_s, mapped by a learned linear projection P when its
width differs from the teacher's embedding e_t. alpha = 0 (without beta) is
plain hard-label training, the conventional-NAS baseline: no teacher runs.

Teacher outputs come from the on-disk cache (:mod:`akd_tf.teacher_cache`)
whenever the training images are not augmented; with augmentation the
teacher runs online on every augmented batch (and the result says so).
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import akd_tf.tf_env  # noqa: F401  (configures TensorFlow before it is imported)
import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow.python.eager import context as tf_eager_context
from tf_keras.src import backend as keras_backend

from akd_tf import data
from akd_tf.conv_gradients import fast_conv_gradients
from akd_tf.errors import AkdTfError, InvalidInput
from akd_tf.models import build_student
from akd_tf.space import Arch
from akd_tf.teacher_cache import TeacherOutputs, teacher_outputs
from akd_tf.teachers import Teacher
from akd_tf.train_settings import DEFAULT_ALPHA, DEFAULT_TEMPERATURE, DistillSettings, TrainSettings


class TrainingDiverged(AkdTfError, ValueError):
    """The loss became NaN or infinite; the run's weights are meaningless."""


def kd_loss(labels, student_logits, teacher_logits=None, *, alpha: float = DEFAULT_ALPHA,
            temperature: float = DEFAULT_TEMPERATURE) -> tf.Tensor:
    """The batch mean of (1 - alpha) CE(y, p_s) + alpha T^2 CE(softmax(z_t/T), softmax(z_s/T))."""
    student_logits = tf.cast(student_logits, tf.float32)
    hard = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), student_logits)
    if alpha == 0.0:
        return tf.reduce_mean(hard)
    if teacher_logits is None:
        raise InvalidInput(f"alpha={alpha} needs teacher logits")
    soft_targets = tf.nn.softmax(tf.cast(teacher_logits, tf.float32) / temperature)
    soft = -tf.reduce_sum(soft_targets * tf.nn.log_softmax(student_logits / temperature), axis=-1)
    return tf.reduce_mean((1.0 - alpha) * hard + alpha * temperature ** 2 * soft)


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak, self.warmup_steps, self.total_steps = float(peak), int(warmup_steps), int(total_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(max(self.warmup_steps, 1), tf.float32)
        decay_steps = tf.cast(max(self.total_steps - self.warmup_steps, 1), tf.float32)
        progress = tf.clip_by_value((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        cosine = 0.5 * self.peak * (1.0 + tf.cos(math.pi * progress))
        ramp = self.peak * (step + 1.0) / warmup
        return tf.where(step < self.warmup_steps, ramp, cosine)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


# The optimizers run as TensorFlow's fused kernels (one ResourceApplyAdam, ResourceApplyKerasMomentum or
# ResourceApplyRMSProp op per variable: Keras' ``optimizers.legacy`` classes). Keras 2's newer optimizer classes
# compute the same update from about ten ops per variable, each built in Python when the train step is traced,
# which made building the optimizer's part of the graph most of a proxy child's fixed cost (measured with
# cProfile on a random child: 7.1 s of a 9.5 s train-step trace). The update rules are the same:
#   Adam:    m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
#            w <- w - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)          (b1 0.9, b2 0.999, eps 1e-7)
#   SGD:     a <- 0.9 a - lr g,  w <- w + 0.9 a - lr g                               (Nesterov momentum)
#   RMSprop: s <- 0.9 s + 0.1 g^2,  a <- 0.9 a + lr g / sqrt(s + eps),  w <- w - a  (eps 1e-3)
_OPTIMIZERS = {
    "adam": lambda schedule: keras.optimizers.legacy.Adam(schedule),
    "sgd": lambda schedule: keras.optimizers.legacy.SGD(schedule, momentum=0.9, nesterov=True),
    "rmsprop": lambda schedule: keras.optimizers.legacy.RMSprop(schedule, rho=0.9, momentum=0.9, epsilon=1e-3),
}


def make_optimizer(settings: TrainSettings, steps_per_epoch: int) -> keras.optimizers.legacy.Optimizer:
    """The run's optimizer (fused kernels, see :data:`_OPTIMIZERS`) on a warm-up + cosine learning rate."""
    schedule = WarmupCosine(settings.learning_rate, round(settings.warmup_epochs * steps_per_epoch),
                            settings.epochs * steps_per_epoch)
    return _OPTIMIZERS[settings.optimizer](schedule)


class Distiller(keras.Model):
    """Trains ``student`` on batches ``(images, labels[, teacher_outputs])`` with :func:`kd_loss`.

    Teacher outputs arrive with the batch (cached: logits, then embeddings, one
    row per example) or are computed by ``online_teacher``. Metrics: ``loss``,
    ``top1``, ``top5`` (top-min(5, classes)) and, with a teacher, ``agreement``
    (share of examples where student and teacher pick the same class).
    """

    def __init__(self, student: keras.Model, num_classes: int, settings: DistillSettings, *,
                 online_teacher: Teacher | None = None, teacher_embedding_width: int | None = None):
        super().__init__(name="distiller")
        self.student = student
        self.num_classes = num_classes
        self.settings = settings
        self._online_teacher = online_teacher
        self.projection = None
        if settings.feature_weight > 0.0:
            if len(student.outputs) != 2:
                raise InvalidInput("feature distillation needs a student built with an embedding output")
            if teacher_embedding_width is None:
                raise InvalidInput("feature distillation needs the teacher's embedding width")
            student_width = int(student.outputs[1].shape[-1])
            if student_width != teacher_embedding_width:
                self.projection = keras.layers.Dense(teacher_embedding_width, use_bias=False,
                                                     name="feature_projection")
                self.projection.build((None, student_width))  # its weights exist before the optimizer is built
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.top1 = keras.metrics.SparseCategoricalAccuracy(name="top1")
        self.top5 = keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, num_classes), name="top5")
        self.agreement = keras.metrics.Mean(name="agreement")

    @property
    def has_teacher(self) -> bool:
        return self.settings.needs_teacher

    @property
    def metrics(self):
        tracked = [self.loss_tracker, self.top1, self.top5]
        return tracked + [self.agreement] if self.has_teacher else tracked

    def call(self, images, training=False):
        outputs = self.student(images, training=training)
        return outputs[0] if isinstance(outputs, (list, tuple)) else outputs

    def _teacher(self, images, extra):
        if not self.has_teacher:
            return None, None
        if extra is not None:
            return extra[:, :self.num_classes], extra[:, self.num_classes:]
        logits = self._online_teacher.logits(images)
        embedding = self._online_teacher.embedding(images) if self.settings.feature_weight > 0.0 else None
        return logits, embedding

    def _objective(self, images, labels, extra, training):
        outputs = self.student(images, training=training)
        if isinstance(outputs, (list, tuple)):
            logits, embedding = outputs
        else:
            logits, embedding = outputs, None
        teacher_logits, teacher_embedding = self._teacher(images, extra)
        loss = kd_loss(labels, logits, teacher_logits, alpha=self.settings.alpha,
                       temperature=self.settings.temperature)
        if self.settings.feature_weight > 0.0:
            if self.projection is not None:
                embedding = self.projection(embedding)
            loss += self.settings.feature_weight * tf.reduce_mean(tf.square(embedding - teacher_embedding))
        return loss, logits, teacher_logits

    def _update_metrics(self, loss, labels, logits, teacher_logits):
        self.loss_tracker.update_state(loss)
        self.top1.update_state(labels, logits)
        self.top5.update_state(labels, logits)
        if teacher_logits is not None:
            agree = tf.equal(tf.argmax(logits, axis=-1), tf.argmax(teacher_logits, axis=-1))
            self.agreement.update_state(tf.cast(agree, tf.float32))
        return {m.name: m.result() for m in self.metrics}

    @staticmethod
    def _unpack(batch):
        """``(images, labels)`` or ``((images, teacher_outputs), labels)``, see :func:`_as_model_inputs`."""
        inputs, labels = batch
        images, extra = inputs if isinstance(inputs, (tuple, list)) else (inputs, None)
        return images, labels, extra

    def train_step(self, batch):
        images, labels, extra = self._unpack(batch)
        with tf.GradientTape() as tape:
            loss, logits, teacher_logits = self._objective(images, labels, extra, training=True)
            total = loss + tf.add_n(self.student.losses) if self.student.losses else loss
        variables = self.trainable_variables
        # One replica: nothing to sum across replicas. The summing (a distribution all-reduce) is a
        # tf.custom_gradient in graph mode, which registers in TensorFlow's global gradient registry and so
        # kept every child's train graph alive in a search worker.
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables),
                                       experimental_aggregate_gradients=False)
        return self._update_metrics(loss, labels, logits, teacher_logits)

    def test_step(self, batch):
        images, labels, extra = self._unpack(batch)
        loss, logits, teacher_logits = self._objective(images, labels, extra, training=False)
        return self._update_metrics(loss, labels, logits, teacher_logits)


class _StopOnDivergence(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(f"loss became {loss} at step {batch} (try a lower learning rate)")


class _KeepBestStudent(keras.callbacks.Callback):
    """Saves the student whenever validation top-1 improves; its best value survives a resume."""

    def __init__(self, path: Path, state_path: Path | None):
        super().__init__()
        self.path, self.state_path = path, state_path
        state = json.loads(state_path.read_text()) if state_path is not None and state_path.is_file() else {}
        self.best, self.best_epoch = state.get("best_top1", -1.0), state.get("epoch")

    def on_epoch_end(self, epoch, logs=None):
        top1 = (logs or {}).get("val_top1")
        if top1 is None or top1 <= self.best:
            return
        self.best, self.best_epoch = float(top1), epoch + 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix}")
        self.model.student.save(tmp)
        os.replace(tmp, self.path)
        if self.state_path is not None:  # survives an interruption, for the resumed run to compare against
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            self.state_path.write_text(json.dumps({"best_top1": self.best, "epoch": self.best_epoch}))

    def on_train_end(self, logs=None):
        if self.state_path is not None:
            self.state_path.unlink(missing_ok=True)


@dataclass
class TrainResult:
    """What a training run did and reached; validation figures are on mini-val after the last epoch."""

    top1: float
    top5: float
    loss: float
    agreement: float | None
    epochs: int
    train_examples: int
    val_examples: int
    seconds: float
    train_seconds: float
    examples_per_s: float
    teacher_mode: str
    teacher_cache_hit: bool | None
    teacher_seconds: float
    history: dict = field(default_factory=dict)
    best_top1: float | None = None
    best_epoch: int | None = None
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _as_model_inputs(pipeline: tf.data.Dataset) -> tf.data.Dataset:
    """Batches ``(images, labels, extra)`` become ``((images, extra), labels)``.

    Keras reads a third tuple element as sample weights; teacher outputs are inputs.
    """
    if len(pipeline.element_spec) == 3:
        return pipeline.map(lambda images, labels, extra: ((images, extra), labels))
    return pipeline


def _teacher_mode(teacher: Teacher | None, settings: DistillSettings, train: TrainSettings, use_cache: bool) -> str:
    if not settings.needs_teacher:
        return "none"
    if teacher is None:
        raise InvalidInput(f"alpha={settings.alpha}, feature_weight={settings.feature_weight} need a teacher "
                           "(alpha=0 trains on hard labels only)")
    return "online" if (train.augment or not use_cache) else "cached"


@dataclass
class PreparedTraining:
    """A distillation ready to fit (:func:`prepare_distill`): the trainer built and compiled, its optimizer's
    slots made, its data pipelines made (and, if asked, its train and test functions traced).

    ``phases``: seconds each step of the preparation took, in order (``build`` of the student by
    :func:`prepare_proxy`, ``teacher outputs``, ``pipelines``, ``trainer``: built, compiled, slots made,
    ``trace``, ``warm-up`` by :func:`warm_up`), for profiles (``benchmarks/child_profile.py``)."""

    model: "Distiller"
    student: keras.Model
    training: data.TrainingData
    settings: DistillSettings
    train: TrainSettings
    mode: str
    cached: dict
    train_pipeline: tf.data.Dataset
    val_pipeline: tf.data.Dataset
    steps_per_epoch: int
    val_steps: int
    started: float
    phases: dict = field(default_factory=dict)


def distill(student: keras.Model, teacher: Teacher | None, training: data.TrainingData, *,
            settings: DistillSettings = DistillSettings(), train: TrainSettings = TrainSettings(),
            use_cache: bool = True, cache_dir: str | os.PathLike | None = None,
            checkpoint_dir: str | os.PathLike | None = None, best_path: str | os.PathLike | None = None,
            verbose: int = 0, callbacks: Sequence[keras.callbacks.Callback] = ()) -> TrainResult:
    """Train ``student`` on ``training.mini_train`` against ``teacher``; evaluate on ``training.mini_val``.

    ``checkpoint_dir`` makes the run resumable (state saved every epoch, an
    interrupted run continues from its last finished epoch); ``best_path``
    keeps the student with the best mini-val top-1 as a ``.keras`` file.
    Raises :class:`TrainingDiverged` on a NaN/inf loss.
    """
    prepared = prepare_distill(student, teacher, training, settings=settings, train=train, use_cache=use_cache,
                               cache_dir=cache_dir)
    return fit_prepared(prepared, checkpoint_dir=checkpoint_dir, best_path=best_path, verbose=verbose,
                        callbacks=callbacks)


def prepare_distill(student: keras.Model, teacher: Teacher | None, training: data.TrainingData, *,
                    settings: DistillSettings = DistillSettings(), train: TrainSettings = TrainSettings(),
                    use_cache: bool = True, cache_dir: str | os.PathLike | None = None,
                    trace: bool = False) -> PreparedTraining:
    """All of :func:`distill` before its first step (arguments as there): checks, teacher outputs, pipelines,
    the compiled trainer; with ``trace`` its train and test functions are traced too and become the model's
    ``train_function`` and ``test_function`` as concrete functions, so that :func:`fit_prepared` starts
    computing at once (what lets a search prepare its next child while one trains) and calls them without a
    trace-cache lookup per step."""
    started = time.perf_counter()
    lap = _Laps()
    mini_train, mini_val = training.mini_train, training.mini_val
    resolution, channels = training.resolution, training.channels
    if mini_train.num_classes != mini_val.num_classes:
        raise InvalidInput(f"mini-train has {mini_train.num_classes} classes but mini-val {mini_val.num_classes}")
    num_classes = mini_train.num_classes
    if int(student.outputs[0].shape[-1]) != num_classes:
        raise InvalidInput(f"the student has {student.outputs[0].shape[-1]} outputs but {mini_train.name} "
                           f"has {num_classes} classes")
    mode = _teacher_mode(teacher, settings, train, use_cache)
    with_embeddings = settings.feature_weight > 0.0
    if teacher is not None and mode != "none":
        teacher.check_compatible(num_classes, channels, mini_train.name)
    cached: dict[str, TeacherOutputs] = {}
    if mode != "none" and use_cache:
        for split_name, split in (("val", mini_val),) + ((("train", mini_train),) if mode == "cached" else ()):
            cached[split_name] = teacher_outputs(teacher, split, resolution=resolution, channels=channels,
                                                 with_embeddings=with_embeddings, cache_dir=cache_dir)
    lap("teacher outputs")
    train_pipeline = data.make_pipeline(
        mini_train, resolution=resolution, channels=channels, batch_size=train.batch_size, shuffle=True,
        augment=train.augment, seed=train.seed, extra=cached["train"].packed() if "train" in cached else None)
    val_batch_size = max(train.batch_size, 256)
    val_pipeline = data.make_pipeline(
        mini_val, resolution=resolution, channels=channels, batch_size=val_batch_size,
        extra=cached["val"].packed() if "val" in cached else None)
    # One iterator for the whole fit (the pipeline repeated, epochs cut by steps_per_epoch; each epoch still sees
    # every example once, reshuffled): Keras otherwise makes a new iterator every epoch and runs one step into the
    # end of the data, which cost 2-8 s between the epochs of a proxy child (benchmarks/child_profile.py).
    train_pipeline, val_pipeline = _as_model_inputs(train_pipeline).repeat(), _as_model_inputs(val_pipeline)
    steps_per_epoch = math.ceil(mini_train.num_examples / train.batch_size)
    val_steps = math.ceil(mini_val.num_examples / val_batch_size)  # given: steps_per_execution > 1 needs it
    lap("pipelines")

    seed_for_build(train.seed)
    model = Distiller(student, num_classes, settings,
                      online_teacher=teacher if mode == "online" else None,
                      teacher_embedding_width=teacher.embedding_width if (teacher and with_embeddings) else None)
    model.compile(optimizer=make_optimizer(train, steps_per_epoch), steps_per_execution=train.steps_per_execution)

    model(tf.zeros((1, *training.input_shape)))  # build, so a backup can be restored into it
    # Slots made now, not on the first step: a train step that creates variables is traced twice, and
    # tracing (not computing) dominates a short proxy run (measured ~6 s of 8 s per trace for a random arch).
    model.optimizer._create_all_weights(model.trainable_variables)  # the legacy optimizer's build()
    lap("trainer")
    if trace:
        # The functions fit and its validation will call, traced for the iterators they will make (the same
        # element specs), and handed to fit as the traced functions themselves: a call through the tf.function
        # first looks its arguments up in the function's trace cache, hashing every captured variable and slot,
        # which cost 3-5 ms per call for a proxy child (docs/performance.md, 2026-12-02, third session).
        with fast_conv_gradients(student):  # both, as fit traces both inside it below
            model.train_function = model.make_train_function().get_concrete_function(iter(train_pipeline))
            model.test_function = model.make_test_function().get_concrete_function(iter(val_pipeline))
        lap("trace")
    return PreparedTraining(model, student, training, settings, train, mode, cached, train_pipeline, val_pipeline,
                            steps_per_epoch, val_steps, started, lap.phases)


class _Laps:
    """``lap(name)`` records the seconds since the previous lap (or since it was made) as phase ``name``."""

    def __init__(self):
        self.phases: dict[str, float] = {}
        self._mark = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = now - self._mark
        self._mark = now


def warm_up(prepared: PreparedTraining) -> PreparedTraining:
    """Run ``prepared``'s train and test functions once each on a batch of one all-zero example shaped like
    their data, then put back every variable the two calls changed (weights, batch-norm statistics, optimizer
    slots and step, metrics, the dropout generator's state); returns ``prepared``, which :func:`fit_prepared`
    then trains to exactly the result it reaches without this.

    What it buys: TensorFlow instantiates a function (Grappler's rewrite of its graph, its kernels made) on
    its first call, about 1 s for a proxy child's train step on this project's host. Done here, in the thread
    that prepares the next child, that cost leaves the thread that trains. ``prepared`` must have been traced
    (``prepare_distill(trace=True)``), so that the calls trace nothing new.
    """
    model = prepared.model
    train_function, test_function = model.train_function, model.test_function
    if not all(isinstance(f, tf.types.experimental.ConcreteFunction) for f in (train_function, test_function)):
        raise InvalidInput("warm_up needs a prepared training whose functions were traced (trace=True)")
    train_batches = iter(_zero_batches(prepared.train_pipeline))
    test_batches = iter(_zero_batches(prepared.val_pipeline))
    touched = {id(v): v for v in (*train_function.variables, *test_function.variables,
                                  *model.variables, *model.optimizer.variables())}
    started = time.perf_counter()
    saved = [(variable, tf.identity(variable)) for variable in touched.values()]
    train_function(train_batches)
    test_function(test_batches)
    for variable, value in saved:
        variable.assign(value)
    prepared.phases["warm-up"] = time.perf_counter() - started
    return prepared


def _zero_batches(pipeline: tf.data.Dataset) -> tf.data.Dataset:
    """Endless batches of one all-zero example with ``pipeline``'s element spec, so a function traced for
    ``pipeline``'s iterators runs on them as traced. Not ``pipeline`` itself: each new iterator of a shuffled
    dataset advances its shuffle seed, which would change the order the fit then sees (as would an iterator
    made only to look a function up)."""
    spec = pipeline.element_spec
    if not all(s.shape[1:].is_fully_defined() for s in tf.nest.flatten(spec)):
        raise InvalidInput(f"cannot warm up on batches of {spec}: every dimension but the batch must be known")
    row = tf.nest.map_structure(lambda s: tf.zeros(s.shape[1:], s.dtype), spec)
    return tf.data.Dataset.from_tensors(row).repeat().batch(1)


def fit_prepared(prepared: PreparedTraining, *, checkpoint_dir: str | os.PathLike | None = None,
                 best_path: str | os.PathLike | None = None, verbose: int = 0,
                 callbacks: Sequence[keras.callbacks.Callback] = ()) -> TrainResult:
    """Fit and score what :func:`prepare_distill` prepared (the rest of :func:`distill`, arguments as there)."""
    model, student, train, training = prepared.model, prepared.student, prepared.train, prepared.training
    mini_train, mini_val = training.mini_train, training.mini_val
    # Order matters: the best student and the backup are saved before any caller's callback runs.
    all_callbacks = [_StopOnDivergence()]
    keep_best = None
    if best_path is not None:
        keep_best = _KeepBestStudent(Path(best_path), Path(checkpoint_dir) / "best.json" if checkpoint_dir else None)
        all_callbacks.append(keep_best)
    if checkpoint_dir is not None:
        all_callbacks.append(keras.callbacks.BackupAndRestore(str(Path(checkpoint_dir) / "backup")))
    all_callbacks.extend(callbacks)
    fit_started = time.perf_counter()
    with fast_conv_gradients(student):  # traced inside: the same model, cheaper convolution ops
        history = model.fit(prepared.train_pipeline, epochs=train.epochs, steps_per_epoch=prepared.steps_per_epoch,
                            verbose=verbose, callbacks=all_callbacks, validation_data=prepared.val_pipeline,
                            validation_steps=prepared.val_steps,
                            validation_freq=train.validated_epochs)
    train_seconds = time.perf_counter() - fit_started
    if checkpoint_dir is not None:  # finished: the backup and best-so-far state are gone; so are empty folders
        for folder in (Path(checkpoint_dir) / "backup", Path(checkpoint_dir)):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    final = {name[4:]: values[-1] for name, values in history.history.items() if name.startswith("val_")}
    if not final:  # resumed after the last epoch had finished: evaluate once more
        final = model.evaluate(prepared.val_pipeline, steps=prepared.val_steps, verbose=0, return_dict=True)
    epochs_run = len(history.history.get("loss", []))
    cached = prepared.cached
    return TrainResult(
        top1=float(final["top1"]), top5=float(final["top5"]), loss=float(final["loss"]),
        agreement=float(final["agreement"]) if "agreement" in final else None,
        epochs=train.epochs, train_examples=mini_train.num_examples, val_examples=mini_val.num_examples,
        seconds=time.perf_counter() - prepared.started, train_seconds=train_seconds,
        examples_per_s=epochs_run * mini_train.num_examples / train_seconds if epochs_run else 0.0,
        teacher_mode=prepared.mode, teacher_cache_hit=all(o.hit for o in cached.values()) if cached else None,
        teacher_seconds=sum(outputs.seconds for outputs in cached.values()),
        history={name: [float(v) for v in values] for name, values in history.history.items()},
        best_top1=keep_best.best if keep_best and keep_best.best >= 0 else None,
        best_epoch=keep_best.best_epoch if keep_best else None,
        settings={"distill": asdict(prepared.settings), "train": asdict(train)},
    )


_PREPARING = threading.Lock()  # one preparation at a time: each sets the process's random seeds for its build


def seed_for_build(seed: int) -> None:
    """``keras.utils.set_random_seed(seed)`` (Python, NumPy, TensorFlow and Keras' seeds) for a build, except that
    off the main thread TensorFlow's global seed is set without clearing its kernel caches: ``tf.random.set_seed``
    clears them, which restarts the random kernels (dropout's) of a child training at that moment in the main
    thread and changes its result."""
    if threading.current_thread() is threading.main_thread():
        keras.utils.set_random_seed(seed)
        return
    random.seed(seed)
    np.random.seed(seed)
    tf_context = tf_eager_context.context()
    tf_context._seed, tf_context._rng = seed, random.Random(seed)  # what set_seed does, less the cache clearing
    keras_backend._SEED_GENERATOR.generator = random.Random(seed)


def proxy_train(arch: Arch, teacher: Teacher | None, training: data.TrainingData, *,
                settings: DistillSettings = DistillSettings(),
                train: TrainSettings = TrainSettings(validate_every_epoch=False),
                cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                callbacks: Sequence[keras.callbacks.Callback] = ()) -> TrainResult:
    """The search's child evaluation: a fresh student of ``arch`` trained briefly, then scored on mini-val
    (``callbacks``: the caller's Keras callbacks, say one that stops it early).

    Defaults are the paper's proxy task: 5 epochs, the first a linear
    learning-rate warm-up, KD with alpha 0.9 and T 1, no weight sharing.
    """
    prepared = prepare_proxy(arch, teacher, training, settings=settings, train=train, cache_dir=cache_dir,
                             use_cache=use_cache)
    return fit_prepared(prepared, callbacks=callbacks)


def prepare_proxy(arch: Arch, teacher: Teacher | None, training: data.TrainingData, *,
                  settings: DistillSettings = DistillSettings(),
                  train: TrainSettings = TrainSettings(validate_every_epoch=False),
                  cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                  trace: bool = False) -> PreparedTraining:
    """:func:`proxy_train` up to its first step (``trace``: :func:`prepare_distill`'s); :func:`fit_prepared` does
    the rest, with the same result.

    It may run in a thread of its own while another child trains: a student's weights come from the seed
    alone (:func:`seed_for_build`; preparations never overlap), and Keras builds models in a graph of each
    thread's own. Only the main thread clears Keras' session (which also clears TensorFlow's kernel caches,
    unsafe while another thread computes); another thread only restarts Keras' layer names, so a student's
    layers are named alike wherever it is built.
    """
    with _PREPARING:
        started = time.perf_counter()
        if threading.current_thread() is threading.main_thread():
            keras.backend.clear_session()
        else:
            keras.backend.reset_uids()
        seed_for_build(train.seed)
        student = build_student(arch, training.input_shape, training.num_classes,
                                with_embedding=settings.feature_weight > 0.0)
        built = time.perf_counter() - started
        prepared = prepare_distill(student, teacher, training, settings=settings, train=train, cache_dir=cache_dir,
                                   use_cache=use_cache, trace=trace)
        prepared.phases = {"build": built, **prepared.phases}
        return prepared
