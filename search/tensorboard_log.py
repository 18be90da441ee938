"""TensorBoard event files of a search (``akd-tf search --logdir DIR``), viewed with ``tensorboard --logdir DIR``.

One folder per run under ``DIR`` (its name), laid out so TensorBoard groups what belongs together:

* ``RUN/search``: per finished child, at x = children finished so far (reused and failed children
  included): ``child/reward``, ``child/accuracy`` and ``child/latency_ms`` of that child (a failed or excluded
  child has no accuracy or latency to show) and ``search/best_reward``, the best reward of the run so far.
* ``RUN/controller``: per controller step, at x = the step: ``controller/reward_mean``, ``reward_std`` and
  ``reward_max`` of the children the update learnt from, ``controller/children`` (how many), and every
  number the controller's update reports (PPO: ``entropy``, ``approx_kl``, ``clip_fraction``,
  ``value_loss``, ``policy_loss``, ``grad_norm``, ``epochs``; evolution: ``population``).
* ``RUN/children/child-0007/train`` and ``.../validation``: the child's training curves as Keras' own
  TensorBoard callback writes them, ``epoch_loss``, ``epoch_top1``, ... at x = the epoch (0-based); the proxy
  task validates after its last epoch only (with ``--early-stop``, also where its rule may stop a child). A
  child that reused an earlier evaluation of its network trained nothing and has no curves.

The files are written with TensorFlow's own summary writer and the metadata of TensorBoard's scalars
plugin, so writing needs no ``tensorboard`` package; viewing does (``pip install tensorboard``).

The search process writes every file (children trained by worker processes or on Ray send their curves back
with their results), so only the machine running ``akd-tf search`` needs ``DIR``. A resumed run appends new
event files to the same folders; a step interrupted between its update and its commit is written again when
it reruns (TensorBoard then shows both points at that step).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

from akd_tf.errors import InvalidInput


def check_logdir(logdir: str | os.PathLike) -> Path:
    """``logdir`` made (with its parents) and proven writable by writing a file there; ``ValueError`` naming
    it and the reason otherwise. Called before any child trains."""
    path = Path(logdir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".akd-tf-write-check-"):
            pass
    except OSError as exc:
        raise InvalidInput(f"cannot write TensorBoard logs to {str(logdir)!r}: {exc.strerror or exc}") from None
    return path


class SearchBoard:
    """Writes one run's TensorBoard events under ``logdir/run_name`` (see the module docstring)."""

    def __init__(self, logdir: str | os.PathLike, run_name: str):
        import tensorflow as tf

        from tensorflow.core.framework import summary_pb2

        self._tf = tf
        # What tensorboard.summary.v2.scalar attaches: the scalars plugin's tag, version 0 (empty content).
        self._scalar_metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
            data_class=summary_pb2.DATA_CLASS_SCALAR)
        self.root = check_logdir(Path(logdir).expanduser() / run_name)  # the run's own folder, not only DIR
        self._writers: dict[str, object] = {}

    def _writer(self, *parts: str):
        key = "/".join(parts)
        if key not in self._writers:
            self._writers[key] = self._tf.summary.create_file_writer(str(self.root.joinpath(*parts)))
        return self._writers[key]

    def _scalar(self, tag: str, value: float, step: int) -> None:
        self._tf.summary.write(tag, self._tf.constant(value, self._tf.float32), step=step,
                               metadata=self._scalar_metadata)

    def _scalars(self, writer, step: int, values: dict[str, float | None]) -> None:
        with writer.as_default():
            for tag, value in values.items():
                if value is not None and math.isfinite(value):
                    self._scalar(tag, float(value), step)
        writer.flush()

    def trial_finished(self, trial: dict, finished: int, best_reward: float | None) -> None:
        """A child finished (``trial``: :func:`search.runs.trial_dict`), the ``finished``-th of the run."""
        done = trial["status"] == "done"
        self._scalars(self._writer("search"), finished, {
            "child/reward": trial["reward"], "child/accuracy": trial["accuracy"] if done else None,
            "child/latency_ms": trial["latency_ms"] if done else None, "search/best_reward": best_reward})

    def child_curves(self, number: int, history: dict[str, list[float]]) -> None:
        """Child ``number``'s per-epoch Keras history: ``name`` into ``train``, ``val_name`` into ``validation``;
        a validation list shorter than the training one holds the last epochs, and ``None`` in one stands for
        an epoch not validated."""
        epochs = max((len(v) for k, v in history.items() if not k.startswith("val_")), default=0)
        child = f"child-{number:04d}"
        for split, names in (("train", [k for k in history if not k.startswith("val_")]),
                             ("validation", [k for k in history if k.startswith("val_")])):
            if not names:
                continue
            writer = self._writer("children", child, split)
            with writer.as_default():
                for name in names:
                    values = history[name]
                    first = max(epochs - len(values), 0)
                    tag = f"epoch_{name[4:] if split == 'validation' else name}"
                    for epoch, value in enumerate(values, start=first):
                        if value is not None and math.isfinite(value):
                            self._scalar(tag, float(value), epoch)
            writer.flush()

    def controller_step(self, step: int, stats: dict, rewards: list[float]) -> None:
        """The controller's update of ``step`` (``stats``: what it returned) over the learnt ``rewards``."""
        values: dict[str, float | None] = {"controller/children": float(len(rewards))}
        if rewards:
            array = np.asarray(rewards, dtype=float)
            values.update({"controller/reward_mean": array.mean(), "controller/reward_std": array.std(),
                           "controller/reward_max": array.max()})
        skipped = {"n", "mean_reward", "max_reward"}  # said above, from the rewards themselves
        for name, value in stats.items():
            if name not in skipped and isinstance(value, (int, float)) and not isinstance(value, bool):
                values[f"controller/{name}"] = value
        self._scalars(self._writer("controller"), step, values)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
