"""The chosen student: trained in full, exported to ``.tflite`` with the parity check, measured on the device.

:func:`export_trial` is what ``akd-tf export --run NAME --best|--trial N`` does. The student is
trained on the run's whole mini-train (not the proxy's subset) for ``epochs`` with the full-training
defaults of :class:`akd_tf.train_settings.TrainSettings` (not the proxy's batch size and rate), with KD from the run's
teacher for an AKD run or hard labels for a NAS run (``train_with`` overrides), keeping the best epoch
on mini-val. The exported file is scored on the dataset's test split (when it has one) with the TFLite
interpreter, so the reported accuracy is the shipped model's, int8 included (a source without a test
split is reported as such; any other error in it stops the export before training); then the file
itself is measured on the run's device and stored as a measurement.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from akd_tf import data
from akd_tf.benchmark import latency_us
from akd_tf.errors import InvalidInput, MissingSplit
from akd_tf.space import get_space
from akd_tf.train_settings import TrainSettings
from akd_tf.target import ModelTarget, check_quantization
from latency_db.measure import measure_tflite
from latency_db.store import Store
from search import runs
from search.checks import check_int
from search.config import REWARD_SOURCES, SearchConfig
from search.evaluate import distill_settings, full_training_data, load_teachers

PARITY_IMAGES = 64
REPRESENTATIVE_IMAGES = 256


@dataclass(frozen=True)
class ExportedStudent:
    """What ``akd-tf export --run`` prints and writes next to the ``.tflite`` as JSON."""

    run: str
    trial: int
    arch: str
    trained_with: str  # "kd" | "label"
    epochs: int
    val_top1: float  # best epoch, Keras model, mini-val
    test_top1: float | None  # the exported .tflite on the test split (None: the dataset has none)
    test_examples: int
    tflite: str
    keras: str
    quantize: str
    size_bytes: int
    sha256: str
    parity: str
    latency_ms: float
    measurement_id: int
    device: str
    params: int
    mmacs: float
    train_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def _images(ds: data.ImageDataset, training: data.TrainingData, limit: int | None = None):
    """(normalized images, labels) of ``ds`` as arrays, at most ``limit`` of them."""
    pipeline = data.make_pipeline(ds, resolution=training.resolution, channels=training.channels, batch_size=256)
    images, labels = [], []
    for batch_images, batch_labels in pipeline:
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
        if limit is not None and sum(len(b) for b in images) >= limit:
            break
    return np.concatenate(images)[:limit], np.concatenate(labels)[:limit]


def load_test_split(config: SearchConfig) -> data.ImageDataset | None:
    """The test split of the run's dataset, or None when the source has none (the summary says so instead
    of inventing one); any other problem with it (a missing file, a broken split) raises."""
    options = {k: v for k, v in config.data.items()
               if k in ("data_dir", "image_key", "label_key", "label_offset")}
    try:
        return data.load_dataset(config.data["source"], split="test", **options)
    except MissingSplit:
        return None


def _tflite_top1(path: str, images: np.ndarray, labels: np.ndarray) -> float:
    from akd_tf.export import run_tflite

    logits = np.concatenate([run_tflite(Path(path).read_bytes(), images[i:i + 256])
                             for i in range(0, len(images), 256)])
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def export_trial(store: Store, run_name: str, trial_number: int | None, out: str | os.PathLike, *,
                 epochs: int = 30, quantize: str = "none", train_with: str | None = None, seed: int = 0,
                 cache_dir: str | None = None, wait_timeout_s: float | None = None, verbose: int = 0,
                 say: Callable[[str], None] = lambda _m: None) -> ExportedStudent:
    """Train trial ``trial_number`` of ``run_name`` (None: its best) in full, export, score and measure it.

    Writes ``out`` (the ``.tflite``), ``out`` with suffix ``.keras`` (the trained student) and ``.json``
    (the returned record). Training resumes from ``out.ckpt`` if interrupted.
    """
    from akd_tf import export
    from akd_tf.distill import distill
    from akd_tf.models import build_student
    import tf_keras as keras

    check_int("epochs", epochs, 1)
    check_quantization(quantize, "quantize")
    trial = runs.get_trial(store, run_name, trial_number)
    config = runs.run_config(runs.get_run(store, run_name))
    train_with = train_with or config.reward_source
    if train_with not in REWARD_SOURCES:
        raise InvalidInput(f"train_with must be one of {', '.join(REWARD_SOURCES)}, got {train_with!r}")
    if train_with == "kd" and not config.teachers:
        raise InvalidInput(f"run {run_name!r} has no teacher to distill from; train with labels instead")
    arch = None if config.strategy == "subgraph" else get_space(config.space).parse(trial.arch)
    test = load_test_split(config)  # before hours of training, so that a broken test split stops it now
    training = full_training_data(config)
    teacher = load_teachers(config.teachers) if train_with == "kd" else None
    settings = distill_settings(config.proxy, train_with)
    out = Path(out)
    keras_path = out.with_suffix(".keras")
    say(f"training trial #{trial.number} of {run_name!r} for {epochs} epochs ({train_with}): {trial.arch}")
    say(training.describe())
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    if arch is None:  # a subgraph run: carved again from the teacher, starting from the teacher's weights
        from search.subgraph import carve_trial

        student, arch = carve_trial(config, trial)
    else:
        student = build_student(arch, training.input_shape, training.num_classes)
    started = time.perf_counter()
    result = distill(student, teacher, training, settings=settings,
                     train=TrainSettings(epochs=epochs, seed=seed),
                     cache_dir=cache_dir, checkpoint_dir=out.with_name(out.name + ".ckpt"), best_path=keras_path,
                     verbose=verbose)
    train_seconds = time.perf_counter() - started
    best = export.load_keras_model(keras_path)
    rep_images, _ = _images(training.mini_train, training, REPRESENTATIVE_IMAGES)
    parity_images, _ = _images(training.mini_val, training, PARITY_IMAGES)
    exported = export.export_tflite(best, out, quantize, representative_data=rep_images, parity_images=parity_images,
                                    seed=seed)
    say(f"wrote {exported.path} ({exported.size_bytes:,} bytes, {quantize}); {exported.parity.summary()}")
    test_top1, test_examples = None, 0
    if test is not None:
        images, labels = _images(test, training)
        test_top1, test_examples = _tflite_top1(exported.path, images, labels), len(labels)
    target = ModelTarget(training.resolution, training.num_classes, training.channels, quantize)
    say(f"measuring {exported.path} on {config.device!r}")
    measurement = measure_tflite(store, config.device, arch, target, exported.path, exported.sha256,
                                 wait_timeout_s=wait_timeout_s)
    record = ExportedStudent(
        run=run_name, trial=trial.number, arch=trial.arch, trained_with=train_with, epochs=epochs,
        val_top1=result.best_top1 if result.best_top1 is not None else result.top1, test_top1=test_top1,
        test_examples=test_examples, tflite=exported.path, keras=str(keras_path), quantize=quantize,
        size_bytes=exported.size_bytes, sha256=exported.sha256, parity=exported.parity.summary(),
        latency_ms=latency_us(measurement) / 1000.0, measurement_id=measurement.id, device=config.device,
        params=trial.params, mmacs=trial.mmacs, train_seconds=train_seconds)
    out.with_suffix(".json").write_text(json.dumps(record.to_dict(), indent=2) + "\n")
    return record
