"""What a distillation run is asked to do, as plain values (no TensorFlow import, so the CLI reads defaults here).

:class:`DistillSettings` says what the student learns from, :class:`TrainSettings`
how long and how fast; :mod:`akd_tf.distill` carries them out. :class:`GateSettings` says
how the subgraph strategy trains a gated teacher's gates (:mod:`akd_tf.gate_training`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from akd_tf.errors import InvalidInput

DEFAULT_ALPHA = 0.9
DEFAULT_TEMPERATURE = 1.0
DEFAULT_PROXY_EPOCHS = 5
OPTIMIZERS = ("adam", "sgd", "rmsprop")
GATE_COSTS = ("latency", "macs", "units")  # what a gate's L1 penalty weighs (akd_tf.unit_costs)
DEFAULT_GATE_THRESHOLD = 0.05  # a gate below it removes its unit (akd_tf.extraction)


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
    """How long and how fast: the first ``warmup_epochs`` ramp the learning rate up linearly, then cosine decay.

    Validation on mini-val: after every epoch (``validate_every_epoch``), or else after the last and after each
    epoch (1-based) of ``validate_after``."""

    epochs: int = DEFAULT_PROXY_EPOCHS
    batch_size: int = 128
    learning_rate: float = 0.005  # Adam; measured best of 0.002/0.005 Adam, 0.1 SGD, 0.01 RMSProp on the demo
    warmup_epochs: float = 1.0
    optimizer: str = "adam"
    augment: bool = False
    seed: int = 0
    validate_every_epoch: bool = True
    steps_per_execution: int = 1
    validate_after: tuple[int, ...] = ()

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
        object.__setattr__(self, "validate_after", tuple(self.validate_after))
        if any(isinstance(e, bool) or not isinstance(e, int) or not 1 <= e <= self.epochs
               for e in self.validate_after):
            raise InvalidInput(f"validate_after must be epochs in [1, epochs={self.epochs}], "
                               f"got {self.validate_after!r}")

    @property
    def validated_epochs(self) -> list[int]:
        """The epochs (1-based) validated after, in order (Keras' ``validation_freq``)."""
        if self.validate_every_epoch:
            return list(range(1, self.epochs + 1))
        return sorted({*self.validate_after, self.epochs})


@dataclass(frozen=True)
class GateSettings:
    """How the gates of the subgraph strategy are trained (:mod:`akd_tf.gate_training`): SGD with Nesterov
    momentum 0.9 for ``epochs`` over mini-train, the learning rate decaying from ``learning_rate`` to 0
    (cosine); gates whose magnitude ends below ``threshold`` remove their unit.

    Plain gradient steps, not Adam: at the start the gated copy is the teacher, so the KL term's gradient
    is float rounding, and Adam's per-gate normalisation turns rounding into full-size steps (measured:
    with Adam and no penalty the gates left 1). With SGD a gate moves in proportion to what the KL term
    and its cost say."""

    epochs: int = 2
    learning_rate: float = 0.1
    batch_size: int = 128
    temperature: float = DEFAULT_TEMPERATURE
    threshold: float = DEFAULT_GATE_THRESHOLD
    seed: int = 0
    ramp: float = 0.5  # share of the steps over which the strength rises linearly from 0

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise InvalidInput(f"gate epochs must be an int >= 1, got {self.epochs!r}")
        if not self.learning_rate > 0.0 or not math.isfinite(self.learning_rate):
            raise InvalidInput(f"gate learning rate must be > 0, got {self.learning_rate!r}")
        if not 0.0 < self.threshold < 1.0:
            raise InvalidInput(f"gate threshold must be in (0, 1): gates start at 1, got {self.threshold!r}")
        if not 0.0 <= self.ramp <= 1.0:
            raise InvalidInput(f"the penalty's ramp must be a share of the steps in [0, 1], got {self.ramp!r}")

    def train_settings(self) -> TrainSettings:
        return TrainSettings(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                             warmup_epochs=0.0, optimizer="sgd", seed=self.seed, validate_every_epoch=False)
