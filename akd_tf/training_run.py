"""Train a model into a file: where its checkpoints and summary go, the training itself, the JSON summary.

What ``akd-tf train`` and ``akd-tf teacher train`` do between parsing their options and printing:
the best epoch on mini-val is kept at ``out``, per-epoch state in ``OUT.ckpt`` (rerun to resume) and
a JSON summary next to ``out``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from akd_tf.train_settings import DistillSettings, TrainSettings


@dataclass(frozen=True)
class TrainedToFile:
    """A finished :func:`train_to_file`: the training's result, the summary written and where it went."""

    result: object  # akd_tf.distill.TrainResult
    summary: dict
    out: Path
    summary_path: Path


def train_settings(*, epochs: int, batch_size: int, learning_rate: float, warmup_epochs: float, optimizer: str,
                   augment: bool, seed: int) -> TrainSettings:
    """A :class:`TrainSettings` whose warm-up is cut to ``epochs`` when it is longer."""
    return TrainSettings(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                         warmup_epochs=min(warmup_epochs, epochs), optimizer=optimizer, augment=augment, seed=seed)


def train_to_file(model, teacher, training, settings: DistillSettings, train: TrainSettings,
                  out: str | os.PathLike, *, checkpoint_dir: str | os.PathLike | None = None,
                  summary_path: str | os.PathLike | None = None, use_cache: bool = True,
                  cache_dir: str | os.PathLike | None = None, extra: dict | None = None,
                  verbose: int = 0) -> TrainedToFile:
    """Train ``model`` (against ``teacher``, or on labels if it is None), keep its best mini-val epoch at
    ``out`` and write the summary (``extra`` first, then the result) to ``summary_path``.

    Defaults: ``checkpoint_dir`` is ``OUT.ckpt`` beside ``out``, ``summary_path`` is ``out`` with ``.json``.
    """
    from akd_tf.distill import distill

    out = Path(out)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else out.with_name(out.name + ".ckpt")
    summary_path = Path(summary_path) if summary_path else out.with_suffix(".json")
    result = distill(model, teacher, training, settings=settings, train=train, use_cache=use_cache,
                     cache_dir=cache_dir, checkpoint_dir=checkpoint_dir, best_path=out, verbose=verbose)
    summary = {"out": str(out), "dataset": training.mini_train.name, "input_shape": list(training.input_shape),
               "classes": training.num_classes, **(extra or {}), **result.to_dict()}
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return TrainedToFile(result, summary, out, summary_path)


def seeded_student(arch, input_shape, num_classes: int, seed: int, *, with_embedding: bool = False):
    """A freshly initialised student of ``arch`` whose weights depend only on ``seed``."""
    import tf_keras as keras

    from akd_tf.models import build_student

    keras.utils.set_random_seed(seed)
    return build_student(arch, input_shape, num_classes, with_embedding=with_embedding)
