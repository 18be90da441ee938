"""Teacher-output cache: a fixed teacher's logits (and embeddings) computed once per data split.

During a search every child distills the same teacher on the same
unaugmented mini-train and mini-val images, so the teacher's outputs are
computed once and stored on disk, keyed by

    sha256(teacher fingerprint, dataset fingerprint, preprocessing)

where the teacher fingerprint hashes the model files' bytes, the dataset
fingerprint changes with the data and the split, and preprocessing names the
resolution, channels and normalization the images reach the teacher with.
Changing any of them is a different key (a miss), never a stale hit.

Files live in ``$AKD_TF_CACHE_DIR`` or ``$XDG_CACHE_HOME/akd-tf/teacher-outputs``
(``~/.cache/...``) as ``<key>.npz``, written to a temporary name and renamed,
so an interrupted computation never leaves a partial entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from akd_tf import data
from akd_tf.export import INPUT_RANGE
from akd_tf.teachers import Teacher

PREPROCESSING_VERSION = 1  # bump when the pipeline's decode/resize/normalize steps change
INFERENCE_BATCH = 256


def default_cache_dir() -> Path:
    explicit = os.environ.get("AKD_TF_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "akd-tf" / "teacher-outputs"


@dataclass(frozen=True)
class TeacherOutputs:
    """Teacher outputs aligned with ``dataset.examples()`` order."""

    logits: np.ndarray  # (N, classes) float32
    embeddings: np.ndarray | None  # (N, width) float32, only when asked for
    key: str
    hit: bool  # read from disk rather than computed
    seconds: float  # time to read or compute

    def packed(self) -> np.ndarray:
        """Logits, then embeddings, in one (N, classes [+ width]) array: one ``extra`` column block per example."""
        if self.embeddings is None:
            return self.logits
        return np.concatenate([self.logits, self.embeddings], axis=1)


def cache_key(teacher: Teacher, dataset: data.ImageDataset, resolution: int, channels: int,
              with_embeddings: bool) -> str:
    described = {
        "teacher": teacher.fingerprint,
        "dataset": dataset.fingerprint,
        "num_examples": dataset.num_examples,
        "preprocessing": {"version": PREPROCESSING_VERSION, "resolution": resolution, "channels": channels,
                          "input_range": list(INPUT_RANGE), "augment": False},
        "embeddings": with_embeddings,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def compute_outputs(teacher: Teacher, dataset: data.ImageDataset, resolution: int, channels: int,
                    with_embeddings: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Run the teacher over ``dataset`` (unaugmented, in order) at the students' input resolution."""
    import tensorflow as tf

    pipeline = data.make_pipeline(dataset, resolution=resolution, channels=channels, batch_size=INFERENCE_BATCH,
                                  cache=False)

    @tf.function(reduce_retracing=True)
    def infer(images):
        logits = teacher.logits(images)
        return (logits, teacher.embedding(images)) if with_embeddings else (logits, tf.zeros([0]))

    logits, embeddings = [], []
    for images, _labels in pipeline:
        batch_logits, batch_embeddings = infer(images)
        logits.append(batch_logits.numpy())
        if with_embeddings:
            embeddings.append(batch_embeddings.numpy())
    logits = np.concatenate(logits).astype(np.float32)
    return logits, (np.concatenate(embeddings).astype(np.float32) if with_embeddings else None)


def teacher_outputs(teacher: Teacher, dataset: data.ImageDataset, *, resolution: int, channels: int,
                    with_embeddings: bool = False, cache_dir: str | os.PathLike | None = None,
                    use_cache: bool = True) -> TeacherOutputs:
    """The teacher's outputs on ``dataset``: from the cache when present, else computed (and stored)."""
    key = cache_key(teacher, dataset, resolution, channels, with_embeddings)
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / f"{key}.npz"
    started = time.perf_counter()
    if use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                logits = stored["logits"]
                embeddings = stored["embeddings"] if with_embeddings else None
        except (OSError, ValueError, KeyError):
            logits = None  # unreadable entry: recompute and replace it below
        if logits is not None and logits.shape == (dataset.num_examples, teacher.num_classes):
            return TeacherOutputs(logits, embeddings, key, True, time.perf_counter() - started)
    logits, embeddings = compute_outputs(teacher, dataset, resolution, channels, with_embeddings)
    if use_cache:
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"logits": logits} | ({"embeddings": embeddings} if with_embeddings else {})
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{key}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return TeacherOutputs(logits, embeddings, key, False, time.perf_counter() - started)
