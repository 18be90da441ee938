"""Keras -> TFLite conversion with a mandatory Keras-vs-TFLite parity check.

Conversion goes through ``TFLiteConverter.from_concrete_functions`` with no
trackable object: about 10x faster than ``from_keras_model`` for the same
ops (BatchNorm folded) and outputs. The resulting flatbuffer has a batch-1
input and no SignatureDef, so it is driven with ``set_tensor``/``invoke``.

Quantization modes:

* ``none`` – float32; parity: max |keras - tflite| <= 1e-4 on the logits;
* ``fp16`` – float16 weights; parity: max abs diff <= 1e-2;
* ``int8`` – full-integer post-training quantization (int8 input and output,
  calibrated on a representative dataset); parity: top-1 agreement with
  Keras >= ``min_int8_agreement`` (default 0.9) and a Pearson correlation
  of the (per-class centred) logits >= 0.5; max abs diff reported.

The absolute tolerances hold for logits of unit scale: the bound is
``tol * max(1, max |keras logit|)``, since logits' scale is arbitrary.
A failed parity check raises :class:`ParityError` and writes no file.

Untrained architectures (exported to measure latency) get weights prepared by
:func:`prepare_untrained`, which keeps the check meaningful: see there.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

import akd_tf.tf_env  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from akd_tf.errors import AkdTfError, InvalidInput, MissingData
from akd_tf.interpreter import make_interpreter
from akd_tf.models import BN_EPSILON, build_student
from akd_tf.target import check_quantization

PARITY_TOLERANCE = {"none": 1e-4, "fp16": 1e-2}
# Untrained students exported to measure latency: the check guards the converted graph, not the last
# digits. Measured on 12 random mnasnet archs at 32x32, float32 rounding reached 1.9e-4 of the logit
# scale (one arch whose logits reach 508) and 3e-6 to 2.4e-5 for the rest; a wrong graph is off by the
# logit scale itself. 1e-3 passes the first with a 5x margin and still fails the second.
UNTRAINED_PARITY_TOLERANCE = {"none": 1e-3, "fp16": 1e-2}
DEFAULT_MIN_INT8_AGREEMENT = 0.9
MIN_INT8_LOGIT_CORRELATION = 0.5
DEFAULT_PARITY_SAMPLES = 16
DEFAULT_REPRESENTATIVE_SAMPLES = 32
BATCHNORM_CALIBRATION_SAMPLES = 8  # enough for unit-scale activations; weights are arbitrary anyway
INPUT_RANGE = (-1.0, 1.0)  # images are normalized to [-1, 1] before they reach a student


class ParityError(AkdTfError, ValueError):
    """The converted model disagrees with the Keras model beyond tolerance."""


@dataclass(frozen=True)
class ParityReport:
    quantize: str
    samples: int
    max_abs_diff: float
    logit_scale: float  # max(1, max |keras logit|): absolute tolerances scale with it
    top1_agreement: float
    logit_correlation: float
    tolerance: float | None
    min_top1_agreement: float | None

    @property
    def passed(self) -> bool:
        if self.quantize == "int8":
            return (self.top1_agreement >= self.min_top1_agreement
                    and self.logit_correlation >= MIN_INT8_LOGIT_CORRELATION)
        return self.max_abs_diff <= self.tolerance * self.logit_scale

    def summary(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        if self.quantize == "int8":
            return (f"parity {verdict}: int8 top-1 agreement {self.top1_agreement:.1%} over {self.samples} inputs "
                    f"(required >= {self.min_top1_agreement:.0%}), logit correlation {self.logit_correlation:.3f} "
                    f"(required >= {MIN_INT8_LOGIT_CORRELATION}), max abs diff {self.max_abs_diff:.3g}")
        return (f"parity {verdict}: {self.quantize} max abs diff {self.max_abs_diff:.3g} over {self.samples} inputs "
                f"(tolerance {self.tolerance:g} x logit scale {self.logit_scale:.3g}), "
                f"top-1 agreement {self.top1_agreement:.1%}")


@dataclass(frozen=True)
class ExportResult:
    path: str
    quantize: str
    size_bytes: int
    sha256: str
    convert_seconds: float
    parity: ParityReport

    def to_dict(self) -> dict:
        d = asdict(self)
        d["parity"]["passed"] = self.parity.passed
        return d


def random_images(input_shape, n: int, seed: int = 0) -> np.ndarray:
    """``n`` uniform images in :data:`INPUT_RANGE`, shape (n, H, W, C), float32."""
    rng = np.random.default_rng(seed)
    return rng.uniform(*INPUT_RANGE, size=(n, *input_shape)).astype(np.float32)


def calibrate_batchnorm(model: keras.Model, images: np.ndarray) -> None:
    """Set every BatchNorm's moving statistics to the statistics of ``images``.

    An untrained network in inference mode collapses its logits towards 0
    (unit moving variance against shrinking activations), which would make
    any parity check vacuous. One training-mode pass with momentum 0 makes
    inference on ``images`` match training mode; the weights are untouched.
    """
    bn_layers = [layer for layer in model.submodules if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in bn_layers]
    try:
        for layer in bn_layers:
            layer.momentum = 0.0
        model(images, training=True)
    finally:
        for layer, momentum in zip(bn_layers, momenta):
            layer.momentum = momentum


@contextlib.contextmanager
def _quiet_converter():
    """Hide the converter's deprecation chatter about the no-trackable path (it is the fast path on purpose)."""
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        absl_logger.setLevel(level)


def _logits_function(model: keras.Model):
    """Concrete batch-1 inference function returning only the logits output."""
    input_shape = tuple(model.inputs[0].shape[1:])

    def forward(images):
        out = model(images, training=False)
        return out[0] if isinstance(out, (list, tuple)) else out

    return tf.function(forward).get_concrete_function(tf.TensorSpec((1, *input_shape), tf.float32))


def convert(model: keras.Model, quantize: str = "none", representative_data: np.ndarray | None = None) -> bytes:
    """Convert ``model`` (its logits output) to a TFLite flatbuffer."""
    check_quantization(quantize, "quantize")
    with _quiet_converter():
        converter = tf.lite.TFLiteConverter.from_concrete_functions([_logits_function(model)])
    converter.exclude_conversion_metadata = True
    if quantize == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if representative_data is None or len(representative_data) == 0:
            raise InvalidInput("int8 quantization needs representative data (at least one image)")
        data = np.asarray(representative_data, dtype=np.float32)

        def representative_dataset():
            for i in range(len(data)):
                yield [data[i:i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with _quiet_converter():
        return converter.convert()


def run_tflite(flatbuffer: bytes, images: np.ndarray) -> np.ndarray:
    """Run a batch-1 model on each image; int8 models are quantized/dequantized at the boundary."""
    interpreter = make_interpreter(flatbuffer, num_threads=1)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    results = []
    for image in images:
        x = image[None].astype(np.float32)
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        results.append(y[0].astype(np.float32))
    return np.stack(results)


def check_parity(model: keras.Model, flatbuffer: bytes, images: np.ndarray, quantize: str,
                 min_int8_agreement: float = DEFAULT_MIN_INT8_AGREEMENT,
                 tolerances: Mapping[str, float] = PARITY_TOLERANCE) -> ParityReport:
    """Compare Keras (inference mode) and TFLite logits on ``images``; ``tolerances`` per quantization, relative
    to the logit scale."""
    expected = model(images, training=False)
    expected = (expected[0] if isinstance(expected, (list, tuple)) else expected).numpy()
    got = run_tflite(flatbuffer, images)
    centred_expected, centred_got = expected - expected.mean(0), got - got.mean(0)
    denominator = float(np.linalg.norm(centred_expected) * np.linalg.norm(centred_got))
    correlation = float(np.sum(centred_expected * centred_got) / denominator) if denominator > 0 else 0.0
    return ParityReport(
        quantize=quantize, samples=len(images),
        max_abs_diff=float(np.max(np.abs(expected - got))),
        logit_scale=max(1.0, float(np.max(np.abs(expected)))),
        top1_agreement=float(np.mean(expected.argmax(-1) == got.argmax(-1))),
        logit_correlation=correlation,
        tolerance=tolerances.get(quantize),
        min_top1_agreement=min_int8_agreement if quantize == "int8" else None)


def export_tflite(model: keras.Model, out_path: str | os.PathLike, quantize: str = "none", *,
                  representative_data: np.ndarray | None = None, parity_images: np.ndarray | None = None,
                  min_int8_agreement: float = DEFAULT_MIN_INT8_AGREEMENT, seed: int = 0,
                  parity_tolerances: Mapping[str, float] = PARITY_TOLERANCE) -> ExportResult:
    """Convert, check parity, and only then write ``out_path`` (atomically).

    Without ``representative_data`` an int8 export calibrates on random
    images; without ``parity_images`` parity is checked on random images.
    """
    check_quantization(quantize, "quantize")
    input_shape = tuple(model.inputs[0].shape[1:])
    if representative_data is None and quantize == "int8":
        representative_data = random_images(input_shape, DEFAULT_REPRESENTATIVE_SAMPLES, seed)
    if parity_images is None:
        parity_images = random_images(input_shape, DEFAULT_PARITY_SAMPLES, seed + 1)
    for name, data in (("representative data", representative_data), ("parity images", parity_images)):
        if data is not None and tuple(np.shape(data)[1:]) != input_shape:
            raise InvalidInput(f"{name} have shape {tuple(np.shape(data))}, "
                               f"expected (N, {', '.join(map(str, input_shape))})")
    start = time.perf_counter()
    flatbuffer = convert(model, quantize, representative_data)
    seconds = time.perf_counter() - start
    parity = check_parity(model, flatbuffer, np.asarray(parity_images, np.float32), quantize, min_int8_agreement,
                          parity_tolerances)
    if not parity.passed:
        raise ParityError(f"{out_path}: not written, {parity.summary()}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_bytes(flatbuffer)
    os.replace(tmp, out_path)
    return ExportResult(str(out_path), quantize, len(flatbuffer), hashlib.sha256(flatbuffer).hexdigest(),
                        seconds, parity)


def _fp16_exact(values) -> np.ndarray:
    return np.asarray(values, np.float32).astype(np.float16).astype(np.float32)


def prepare_untrained(model: keras.Model, images: np.ndarray) -> None:
    """Give an untrained student weights that make a parity check meaningful.

    Random weights in inference mode collapse the logits towards 0 (any
    tolerance passes), and a randomly weighted deep net amplifies fp16
    weight rounding by orders of magnitude (no tolerance passes). So:
    calibrate every BatchNorm on ``images`` (:func:`calibrate_batchnorm`),
    absorb its normalization into the preceding convolution's kernel and its
    shift into ``beta``, leave the BatchNorm an exact identity, and round
    every weight to a float16 value. Folding is then exact (up to the
    converter's own arithmetic: on some hosts it computes the identity
    multiplier a float32 ulp or two below 1), fp16 conversion loses nothing,
    and the logits vary across inputs at unit scale: whatever differs between
    Keras and TFLite is the converter's or runtime's doing.
    """
    calibrate_batchnorm(model, images)
    unit_variance = np.float32(1.0) - np.float32(BN_EPSILON)  # rsqrt(var + eps) == 1
    bn_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for bn in bn_layers:
        conv = bn.inbound_nodes[0].inbound_layers
        if not isinstance(conv, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            raise InvalidInput(f"{bn.name}: expected a convolution before it, found {type(conv).__name__}")
        scale = bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + BN_EPSILON)
        shift = bn.beta.numpy() - bn.moving_mean.numpy() * scale
        kernel = conv.weights[0]
        per_channel = scale[None, None, :, None] if isinstance(conv, keras.layers.DepthwiseConv2D) else scale
        kernel.assign(_fp16_exact(kernel.numpy() * per_channel))
        bn.gamma.assign(np.ones_like(scale))
        bn.beta.assign(_fp16_exact(shift))
        bn.moving_mean.assign(np.zeros_like(scale))
        bn.moving_variance.assign(np.full_like(scale, unit_variance))
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            for weight in layer.weights:
                weight.assign(_fp16_exact(weight.numpy()))


def untrained_for_export(build: Callable[[], keras.Model], input_shape, seed: int = 0) -> keras.Model:
    """A fresh model from ``build()`` (seeded, in a cleared Keras session) with weights from
    :func:`prepare_untrained`."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build()
    prepare_untrained(model, random_images(input_shape, BATCHNORM_CALIBRATION_SAMPLES, seed + 2))
    return model


def build_for_export(arch, input_shape, num_classes: int, seed: int = 0) -> keras.Model:
    """An untrained student of ``arch`` ready for export (see :func:`untrained_for_export`)."""
    return untrained_for_export(lambda: build_student(arch, input_shape, num_classes), input_shape, seed)


def export_arch(arch, input_shape, num_classes: int, out_path: str | os.PathLike, quantize: str = "none", *,
                representative_data: np.ndarray | None = None, min_int8_agreement: float = 0.0,
                seed: int = 0) -> ExportResult:
    """Export an untrained student of ``arch`` (what latency is measured on). Its weights are random, so
    int8 top-1 agreement is not required unless ``min_int8_agreement`` asks for it, and parity is checked
    to :data:`UNTRAINED_PARITY_TOLERANCE`."""
    model = build_for_export(arch, input_shape, num_classes, seed=seed)
    return export_tflite(model, out_path, quantize, representative_data=representative_data,
                         min_int8_agreement=min_int8_agreement, seed=seed,
                         parity_tolerances=UNTRAINED_PARITY_TOLERANCE)


def export_keras_file(path: str | os.PathLike, out_path: str | os.PathLike, quantize: str = "none", *,
                      representative_data: np.ndarray | None = None,
                      min_int8_agreement: float = DEFAULT_MIN_INT8_AGREEMENT, seed: int = 0) -> ExportResult:
    """Export the trained Keras model saved at ``path`` (see :func:`load_keras_model`), with the parity check."""
    return export_tflite(load_keras_model(path), out_path, quantize, representative_data=representative_data,
                         min_int8_agreement=min_int8_agreement, seed=seed)


def load_image_array(path: str | os.PathLike) -> np.ndarray:
    """Images (N, H, W, C) as float32 from a ``.npy`` file or the ``x`` array of a ``.npz`` file."""
    path = Path(path)
    if not path.is_file():
        raise MissingData(f"{path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"{path}: not a .npy or .npz file ({exc})") from exc
    if isinstance(data, np.lib.npyio.NpzFile):
        if "x" not in data.files:
            raise InvalidInput(f"{path}: expected an array named 'x', found {', '.join(data.files) or 'none'}")
        data = data["x"]
    if data.ndim != 4:
        raise InvalidInput(f"{path}: expected images of shape (N, H, W, C), got {data.shape}")
    return data.astype(np.float32)


def load_keras_model(path: str | os.PathLike) -> keras.Model:
    """Load a ``.keras``, ``.h5`` or SavedModel-directory Keras model for export (not compiled)."""
    path = Path(path)
    if not path.exists():
        raise MissingData(f"{path}: no such Keras model")
    try:
        return keras.models.load_model(path, compile=False)
    except (ValueError, OSError, IOError) as exc:
        raise InvalidInput(f"{path}: cannot be loaded as a Keras model ({exc})") from exc
    except TypeError as exc:  # e.g. Keras 3's `batch_shape`, which tf-keras (Keras 2) does not know
        raise InvalidInput(f"{path}: cannot be loaded by tf-keras (Keras 2), which akd-tf uses; a model saved by "
                           f"Keras 3 must be re-saved with tf_keras ({exc})") from exc
