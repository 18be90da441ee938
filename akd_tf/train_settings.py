"""What a distillation run is asked to do, as plain values (no TensorFlow import, so the CLI reads defaults here).

:class:`DistillSettings` says what the student learns from, :class:`TrainSettings`
how long and how fast; :mod:`akd_tf.distill` carries them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from akd_tf.errors import InvalidInput

DEFAULT_ALPHA = 0.9
DEFAULT_TEMPERATURE = 1.0
DEFAULT_PROXY_EPOCHS = 5
OPTIMIZERS = ("adam", "sgd", "rmsprop")


@dataclass(frozen=True)
class DistillSettings:
    """What the student learns from: ``alpha`` weighs the teacher's soft targets, ``temperature`` softens them.

    ``feature_weight`` > 0 adds feature distillation (MSE between embeddings).
    """

    alpha: float = DEFAULT_ALPHA
    temperature: float = DEFAULT_TEMPERATURE
    feature_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise InvalidInput(f"alpha must be in [0, 1], got {self.alpha!r}")
        if not self.temperature > 0.0 or not math.isfinite(self.temperature):
            raise InvalidInput(f"temperature must be a positive number, got {self.temperature!r}")
        if not self.feature_weight >= 0.0 or not math.isfinite(self.feature_weight):
            raise InvalidInput(f"feature_weight must be >= 0, got {self.feature_weight!r}")

    @property
    def needs_teacher(self) -> bool:
        return self.alpha > 0.0 or self.feature_weight > 0.0

    @classmethod
    def hard_label(cls) -> "DistillSettings":
        return cls(alpha=0.0)


@dataclass(frozen=True)
class TrainSettings:
    """How long and how fast: the first ``warmup_epochs`` ramp the learning rate up linearly, then cosine decay."""

    epochs: int = DEFAULT_PROXY_EPOCHS
    batch_size: int = 128
    learning_rate: float = 0.005  # Adam; measured best of 0.002/0.005 Adam, 0.1 SGD, 0.01 RMSProp on the demo
    warmup_epochs: float = 1.0
    optimizer: str = "adam"
    augment: bool = False
    seed: int = 0
    validate_every_epoch: bool = True
    steps_per_execution: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise InvalidInput(f"epochs must be >= 1, got {self.epochs!r}")
        if self.batch_size < 1:
            raise InvalidInput(f"batch_size must be >= 1, got {self.batch_size!r}")
        if not self.learning_rate > 0.0:
            raise InvalidInput(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0.0 <= self.warmup_epochs <= self.epochs:
            raise InvalidInput(f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs!r}")
        if self.optimizer not in OPTIMIZERS:
            raise InvalidInput(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.steps_per_execution < 1:
            raise InvalidInput(f"steps_per_execution must be >= 1, got {self.steps_per_execution!r}")
