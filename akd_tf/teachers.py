"""Teachers: loading one model or an ensemble, and the outputs a distillation needs.

A teacher is fixed during a search, so what a student learns from it is a
pure function of (teacher files, data, preprocessing). :class:`Teacher`
wraps one Keras model or several (an **ensemble**: the members' softmax
probabilities are averaged, as in the paper's ensemble experiment) and gives:

* ``logits(images)``: logits whose softmax is the (averaged) probability, for
  images in :data:`akd_tf.export.INPUT_RANGE` at any resolution (they are
  resized to the teacher's own input size);
* ``embedding(images)``: the input of the last ``Dense`` layer (the pooled
  features), for feature distillation (single models only);
* ``fingerprint``: SHA-256 over the model files' bytes, the key of the
  teacher-output cache (:mod:`akd_tf.teacher_cache`).

A model whose last layer applies softmax (as ``keras.applications`` models
with ``classifier_activation="softmax"`` do) is read as probabilities; its
logits are ``log(p)``. An ensemble's logits are ``log(mean_i p_i)``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import akd_tf.tf_env  # noqa: F401  (configures TensorFlow before it is imported)
import tensorflow as tf
import tf_keras as keras

from akd_tf.errors import InvalidInput
from akd_tf.export import load_keras_model

PROBABILITY_FLOOR = 1e-12  # log(0) guard when a teacher outputs exact zeros


def file_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of a model file, or of every file (relative name + bytes) under a SavedModel directory."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _outputs_probabilities(model: keras.Model) -> bool:
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    if isinstance(last, keras.layers.Softmax):
        return True
    return activation is not None and getattr(activation, "__name__", "") == "softmax"


def _embedding_model(model: keras.Model) -> keras.Model | None:
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        return None
    return keras.Model(model.inputs, dense[-1].input)


@dataclass(frozen=True)
class TeacherMember:
    path: str
    model: keras.Model
    outputs_probabilities: bool


class Teacher:
    """One teacher model or an ensemble, read-only (never trained by the distiller)."""

    def __init__(self, members: Sequence[TeacherMember], fingerprint: str):
        if not members:
            raise InvalidInput("a teacher needs at least one model")
        self.members = tuple(members)
        self.fingerprint = fingerprint
        shapes = {tuple(m.model.input_shape[1:]) for m in self.members}
        classes = {int(m.model.output_shape[-1]) for m in self.members}
        if len(classes) != 1:
            raise InvalidInput("ensemble members disagree on the number of classes: "
                               + ", ".join(f"{m.path}: {m.model.output_shape[-1]}" for m in self.members))
        channels = {shape[-1] for shape in shapes}
        if len(channels) != 1:
            raise InvalidInput("ensemble members disagree on input channels: "
                               + ", ".join(f"{m.path}: {m.model.input_shape[-1]}" for m in self.members))
        self.num_classes = classes.pop()
        self.channels = channels.pop()
        self._embedding = _embedding_model(self.members[0].model) if len(self.members) == 1 else None

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(m.path for m in self.members)

    @property
    def is_ensemble(self) -> bool:
        return len(self.members) > 1

    def describe(self) -> str:
        kind = f"ensemble of {len(self.members)}" if self.is_ensemble else "model"
        return f"teacher {kind} ({', '.join(self.paths)}), {self.num_classes} classes"

    def input_resolution(self, member: TeacherMember) -> tuple[int, int] | None:
        height, width = member.model.input_shape[1:3]
        return None if height is None or width is None else (int(height), int(width))

    def check_compatible(self, num_classes: int, channels: int, dataset_name: str) -> None:
        """Raise ``ValueError`` when this teacher cannot teach on data with these classes and channels."""
        if self.num_classes != num_classes:
            raise InvalidInput(f"{self.describe()} but dataset {dataset_name} has {num_classes} classes; "
                               "train or pick a teacher for this dataset")
        if self.channels is not None and self.channels != channels:
            raise InvalidInput(f"teacher input shape {self.members[0].model.input_shape[1:]} expects "
                               f"{self.channels} channels but the students get {channels}-channel images "
                               f"(--channels {self.channels} feeds it)")

    def _resized(self, member: TeacherMember, images: tf.Tensor) -> tf.Tensor:
        size = self.input_resolution(member)
        if size is None or tuple(images.shape[1:3]) == size:
            return images
        return tf.image.resize(images, size, method="bilinear")

    def _log_probabilities(self, member: TeacherMember, images: tf.Tensor) -> tf.Tensor:
        out = tf.cast(member.model(self._resized(member, images), training=False), tf.float32)
        if member.outputs_probabilities:
            return tf.math.log(tf.maximum(out, PROBABILITY_FLOOR))
        return tf.nn.log_softmax(out)

    def logits(self, images: tf.Tensor) -> tf.Tensor:
        """Teacher logits (N, classes) for normalized images (N, H, W, C)."""
        if len(self.members) == 1 and not self.members[0].outputs_probabilities:
            member = self.members[0]
            return tf.cast(member.model(self._resized(member, images), training=False), tf.float32)
        log_probs = tf.stack([self._log_probabilities(m, images) for m in self.members])
        return tf.math.reduce_logsumexp(log_probs, axis=0) - tf.math.log(float(len(self.members)))

    @property
    def embedding_width(self) -> int | None:
        return None if self._embedding is None else int(self._embedding.output_shape[-1])

    def embedding(self, images: tf.Tensor) -> tf.Tensor:
        """Pooled features (input of the last Dense layer) for feature distillation."""
        if self._embedding is None:
            raise InvalidInput(f"{self.describe()} has no single Dense classifier whose input could serve as the "
                               "embedding; feature distillation needs one teacher model with a Dense head")
        member = self.members[0]
        return tf.cast(self._embedding(self._resized(member, images), training=False), tf.float32)


def load_teacher(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> Teacher:
    """Load a teacher from one ``.keras``/``.h5``/SavedModel path, or an ensemble from several."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise InvalidInput("no teacher given: pass a .keras, .h5 or SavedModel path (several for an ensemble)")
    members, digests = [], []
    for path in paths:
        model = load_keras_model(path)
        if len(model.outputs) != 1 or len(model.output_shape) != 2:
            raise InvalidInput(f"{path}: a teacher must map images to one (N, classes) output, "
                               f"got output shape {model.output_shape}")
        if len(model.input_shape) != 4:
            raise InvalidInput(f"{path}: a teacher must take images (N, H, W, C), got input shape {model.input_shape}")
        members.append(TeacherMember(str(path), model, _outputs_probabilities(model)))
        digests.append(file_fingerprint(path))
    fingerprint = hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()  # member order is irrelevant
    return Teacher(members, fingerprint)


# --- teachers trained here ------------------------------------------------------------------------

KERAS_APPLICATIONS = {
    # name: keras.applications constructor (inputs of at least 32x32)
    "resnet50": "ResNet50",
    "mobilenetv2": "MobileNetV2",
    "efficientnetb0": "EfficientNetB0",
    "densenet121": "DenseNet121",
}
CIFAR_RESNETS = {"resnet20": 3, "resnet56": 9}  # name: residual blocks per stage (depth 6n + 2)
TEACHER_MODELS = tuple(CIFAR_RESNETS) + tuple(KERAS_APPLICATIONS)
MIN_TEACHER_SIDE = 32


def cifar_resnet(blocks_per_stage: int, input_shape, num_classes: int) -> keras.Model:
    """He et al.'s CIFAR ResNet (depth 6n + 2; 16/32/64 filters), the usual small-image KD teacher."""
    inputs = keras.Input(tuple(input_shape), name="image")

    def conv_bn(x, filters, stride, name, relu=True):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                                kernel_initializer="he_normal", name=f"{name}_conv")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x

    x = conv_bn(inputs, 16, 1, "stem")
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            name = f"stage{stage + 1}_block{block + 1}"
            shortcut = x
            y = conv_bn(x, filters, stride, f"{name}_a")
            y = conv_bn(y, filters, 1, f"{name}_b", relu=False)
            if stride != 1 or shortcut.shape[-1] != filters:
                shortcut = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                                               name=f"{name}_shortcut")(shortcut)
            x = keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([y, shortcut]))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"resnet{6 * blocks_per_stage + 2}")


def build_teacher_model(model_name: str, input_shape, num_classes: int, seed: int = 0) -> keras.Model:
    """An untrained teacher classifier (logits out; random weights: nothing is downloaded).

    ``resnet20``/``resnet56`` are CIFAR-style ResNets; the others are
    ``keras.applications`` models built without pretrained weights.
    """
    if model_name not in TEACHER_MODELS:
        raise InvalidInput(f"unknown teacher model {model_name!r}; choose one of {', '.join(TEACHER_MODELS)} "
                           "or give an architecture from the search space")
    if min(input_shape[:2]) < MIN_TEACHER_SIDE:
        raise InvalidInput(f"{model_name} needs inputs of at least {MIN_TEACHER_SIDE}x{MIN_TEACHER_SIDE}, "
                           f"got {tuple(input_shape)}")
    keras.utils.set_random_seed(seed)
    if model_name in CIFAR_RESNETS:
        return cifar_resnet(CIFAR_RESNETS[model_name], input_shape, num_classes)
    return getattr(keras.applications, KERAS_APPLICATIONS[model_name])(
        weights=None, input_shape=tuple(input_shape), classes=num_classes, classifier_activation=None)


def build_teacher(model_name: str, arch, input_shape, num_classes: int, seed: int = 0) -> tuple[keras.Model, str]:
    """An untrained teacher and what it is: an architecture of the search space when ``arch`` is given
    (seeded like a student), else the network ``model_name`` (see :func:`build_teacher_model`)."""
    if arch is None:
        return build_teacher_model(model_name, input_shape, num_classes, seed), model_name
    from akd_tf.models import build_student

    keras.utils.set_random_seed(seed)
    return build_student(arch, input_shape, num_classes), arch.to_string()
