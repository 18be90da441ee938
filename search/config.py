"""What a search is: the settings that decide what its trials mean, as one validated, JSON-able value.

A :class:`SearchConfig` is stored with its run (``search_runs.config``). A
resumed run must agree with it, except for ``trials`` (a finished run can be
given a larger budget) and the way children are executed (workers, executor),
which is not part of the config at all: it changes speed, not results.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Collection
from dataclasses import dataclass, field

from akd_tf.data_config import DATA_OPTION_NAMES, data_config
from akd_tf.errors import InvalidInput
from akd_tf.space import get_space
from akd_tf.target import check_quantization
from akd_tf.train_settings import DEFAULT_ALPHA, DEFAULT_PROXY_EPOCHS, DEFAULT_TEMPERATURE, OPTIMIZERS, TrainSettings
from search.checks import check_int, check_number
from search.rewards import COST_TARGET_OPTION, get_reward

REWARD_SOURCES = {
    "kd": "accuracy after distillation from the teacher (AKD)",
    "label": "accuracy after training on hard labels (conventional NAS)",
}
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
RESUMABLE_CHANGES = ("trials",)  # settings a resumed run may change
DEFAULT_MAX_ATTEMPTS = 3  # evaluations of a child whose infrastructure fails before it is excluded


@dataclass(frozen=True)
class ProxySettings:
    """How each child is trained before it is scored on mini-val (the paper's proxy task).

    ``train_size`` caps mini-train to a seeded stratified subset (None: all of it): a smaller proxy
    trades ranking fidelity for more children per hour.
    """

    epochs: int = DEFAULT_PROXY_EPOCHS
    train_size: int | None = None
    batch_size: int = TrainSettings.batch_size
    learning_rate: float = TrainSettings.learning_rate
    warmup_epochs: float = TrainSettings.warmup_epochs
    optimizer: str = TrainSettings.optimizer
    alpha: float = DEFAULT_ALPHA
    temperature: float = DEFAULT_TEMPERATURE

    def validate(self) -> None:
        for name in ("epochs", "batch_size"):
            check_int(f"proxy {name}", getattr(self, name), 1)
        if self.train_size is not None:
            check_int("proxy train_size", self.train_size, 1)
        for name in ("learning_rate", "temperature"):
            check_number(f"proxy {name}", getattr(self, name), 0.0, low_open=True)
        check_number("proxy warmup_epochs", self.warmup_epochs, 0.0)
        check_number("proxy alpha", self.alpha, 0.0, 1.0)
        if self.optimizer not in OPTIMIZERS:
            raise InvalidInput(f"proxy optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")

    def train_settings(self, seed: int) -> TrainSettings:
        return TrainSettings(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                             warmup_epochs=min(self.warmup_epochs, self.epochs), optimizer=self.optimizer,
                             seed=seed, validate_every_epoch=False)


@dataclass(frozen=True)
class SearchConfig:
    """One search: space, device and latency target, data and teacher, proxy training, reward, controller, budget.

    ``data`` holds :func:`akd_tf.data.load_training_data` arguments (``source`` plus its keyword options);
    ``teachers`` are model paths (several: an ensemble). ``batch_size`` is the number of children per
    controller step (one PPO update per step). ``measure`` measures children never measured on the device
    (on a phone: farm jobs); without it their latency is the lookup table's prediction. ``max_attempts``
    bounds the evaluations of a child whose infrastructure fails (a killed worker, a dropped phone, a
    conversion crash: :mod:`search.failures`); after that many it is excluded from the controller's update.
    """

    name: str
    device: str = "local"
    space: str = "mnasnet"
    controller: str = "ppo"
    controller_options: dict = field(default_factory=dict)
    reward: str = "mnas-soft"
    reward_source: str = "kd"
    target_ms: float | None = None
    target_mmacs: float | None = None
    trials: int = 100
    batch_size: int = 8
    seed: int = 0
    measure: bool = False
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    quantization: str = "none"
    teachers: tuple[str, ...] = ()
    data: dict = field(default_factory=lambda: {"source": "demo"})
    proxy: ProxySettings = ProxySettings()

    def __post_init__(self) -> None:
        object.__setattr__(self, "teachers", tuple(str(t) for t in self.teachers))
        if isinstance(self.proxy, dict):
            object.__setattr__(self, "proxy", ProxySettings(**self.proxy))

    def validate(self) -> "SearchConfig":
        """``self`` if every setting is usable; otherwise ``ValueError`` naming the bad value and what was expected."""
        from search.controller import controller_names

        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise InvalidInput(f"search name must be 1-128 letters, digits, '.', '_' or '-' (starting with a letter "
                               f"or digit), got {self.name!r}")
        get_space(self.space)
        if self.controller not in controller_names():
            raise InvalidInput(f"unknown controller {self.controller!r}; known: {', '.join(controller_names())}")
        spec = get_reward(self.reward)
        if spec.cost is not None:
            option = COST_TARGET_OPTION[spec.cost]
            target = getattr(self, option)
            if target is None:
                raise InvalidInput(f"reward {self.reward!r} weighs {spec.cost}: give {option} "
                                   f"(--{option.replace('_', '-')})")
            check_number(option, target, 0.0, low_open=True)
        if self.reward_source not in REWARD_SOURCES:
            raise InvalidInput(f"reward source must be one of {', '.join(REWARD_SOURCES)}, got {self.reward_source!r}")
        if self.reward_source == "kd" and not self.teachers:  # a "label" run may name one, for KD exports
            raise InvalidInput("reward source 'kd' distills from a teacher: give one (--teacher PATH), or use "
                               "reward source 'label' for a conventional NAS search")
        check_int("trials", self.trials, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("max_attempts", self.max_attempts, 1)
        check_quantization(self.quantization)
        if not isinstance(self.data, dict) or not isinstance(self.data.get("source"), str):
            raise InvalidInput(f"data must be a dict with a 'source' string, got {self.data!r}")
        self.proxy.validate()
        return self

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["teachers"] = list(self.teachers)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "SearchConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInput(f"unknown search settings: {', '.join(unknown)}")
        return cls(**values)

    def differences(self, other: "SearchConfig") -> list[str]:
        """``"setting: stored -> given"`` for each setting (other than resumable ones) that differs, ``self``
        being the stored one; the settings that are dicts (``data``, ``proxy``, ``controller_options``) name
        only their keys that differ, as ``proxy.epochs: 5 -> 3`` (``(default)`` where one leaves a key out)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [line for key in mine if key not in RESUMABLE_CHANGES
                for line in _differences(key, mine[key], theirs[key])]


_LEFT_OUT = object()  # a key one of two dicts does not have: the setting's default


def _differences(name: str, stored, given) -> list[str]:
    """``"name: stored -> given"`` if the values differ; for two dicts, one line per key that differs."""
    if isinstance(stored, dict) and isinstance(given, dict):
        keys = [*stored, *(key for key in given if key not in stored)]
        return [line for key in keys
                for line in _differences(f"{name}.{key}", stored.get(key, _LEFT_OUT), given.get(key, _LEFT_OUT))]
    if stored == given:
        return []
    shown = ["(default)" if value is _LEFT_OUT else repr(value) for value in (stored, given)]
    return [f"{name}: {shown[0]} -> {shown[1]}"]


def merge_given(stored: SearchConfig, given: dict) -> SearchConfig:
    """``stored`` with the settings in ``given`` (SearchConfig fields; ``data``/``proxy`` merged key by key).

    How a resumed run takes the options a user typed again: anything not given keeps its stored value.
    """
    values = stored.to_dict()
    for key, value in given.items():
        if key in ("data", "proxy"):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return SearchConfig.from_dict(values)


# Option name (as the CLI's parameters spell them) -> SearchConfig field; the data options become ``data``
# (:func:`akd_tf.data_config.data_config`), these become ``proxy``'s fields.
OPTION_FIELDS = {"device_name": "device", "controller": "controller", "reward": "reward",
                 "reward_source": "reward_source", "target_ms": "target_ms", "target_mmacs": "target_mmacs",
                 "trials": "trials", "batch_size": "batch_size", "seed": "seed", "measure": "measure",
                 "max_attempts": "max_attempts",
                 "quantize": "quantization", "teacher_paths": "teachers", "space_name": "space"}
PROXY_OPTION_FIELDS = {"proxy_epochs": "epochs", "proxy_train_size": "train_size",
                       "proxy_batch_size": "batch_size", "proxy_lr": "learning_rate", "alpha": "alpha",
                       "temperature": "temperature"}


def config_fields(options: dict, typed: Collection[str] | None = None) -> dict:
    """SearchConfig fields from option values keyed by option name (:data:`OPTION_FIELDS`,
    :data:`PROXY_OPTION_FIELDS`, the data options). With ``typed`` (the options a user typed when
    resuming) only those, the data options among them as the keys of ``data`` they set."""
    def given(name: str) -> bool:
        return name in options and (typed is None or name in typed)

    fields = {field: options[name] for name, field in OPTION_FIELDS.items() if given(name)}
    if "teachers" in fields:
        fields["teachers"] = [os.path.abspath(path) for path in fields["teachers"]]
    proxy = {field: options[name] for name, field in PROXY_OPTION_FIELDS.items() if given(name)}
    if proxy:
        fields["proxy"] = proxy
    if typed is None or any(name in typed for name in DATA_OPTION_NAMES):
        config = data_config(**{name: options[name] for name in DATA_OPTION_NAMES})
        fields["data"] = config if typed is None else {
            key: value for key, value in config.items()
            if key == "source" and "dataset" in typed or key != "source" and key in typed}
    return fields


def config_for(name: str, options: dict, *, stored: SearchConfig | None = None,
               typed: Collection[str] = ()) -> SearchConfig:
    """The settings of run ``name``: from every option for a new run, or ``stored`` with the options the
    user typed again (``typed``) for a run that exists (:func:`merge_given`)."""
    if stored is None:
        return SearchConfig(name=name, **config_fields(options))
    return merge_given(stored, config_fields(options, typed))


def new_run_name() -> str:
    """A fresh run name from the local date and time, ``search-YYYYmmdd-HHMMSS``."""
    import datetime

    return datetime.datetime.now().strftime("search-%Y%m%d-%H%M%S")
