"""What a search is: the settings that decide what its trials mean, as one validated, JSON-able value.

A :class:`SearchConfig` is stored with its run (``search_runs.config``). A
resumed run must agree with it, except for ``trials`` (a finished run can be
given a larger budget) and the way children are executed (workers, executor),
which is not part of the config at all: it changes speed, not results.

Its ``controller_options`` always hold every option of its controller (the
defaults filled in), so a run keeps the values it started with even if a
default changes later; a stored run that lacks an option added since reads
as the value it was trained with (:func:`search.controller_settings.stored_options`).
On the command line each option is ``--CONTROLLER-OPTION`` (``--ppo-learning-rate``,
``--evolution-population-size``: :func:`controller_option_flag`).
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
from akd_tf.network_identity import CARVED_SPACE
from akd_tf.train_settings import (DEFAULT_ALPHA, DEFAULT_PROXY_EPOCHS, DEFAULT_TEMPERATURE, GATE_COSTS, OPTIMIZERS,
                                   GateSettings, TrainSettings)
from search.checks import check_int, check_number
from search.controller import CONTROLLERS, controller_names, controller_settings
from search.controller_settings import InvalidOption, option_defaults, option_infos, stored_options
from search.early_stop import DEFAULT_RULE, STOP_RULES
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


STRATEGIES = {
    "akd": "a controller proposes architectures of the search space; each is distilled and priced (AKD)",
    "subgraph": "carve the student out of the teacher: L1-gated units, KL to the teacher, a latency target",
}
SUBGRAPH_SPACE = CARVED_SPACE  # what a subgraph run's students are
SUBGRAPH_CONTROLLER = "lambda-search"  # what proposes a subgraph run's trials: penalty strengths


@dataclass(frozen=True)
class SubgraphSettings:
    """How the subgraph strategy carves (:mod:`search.subgraph`): the cost that weighs each gate, how the gates
    train (:class:`akd_tf.train_settings.GateSettings` and its defaults; :meth:`gate_settings`), and when a
    student is close enough to the target: within ``tolerance`` of it (a fraction). ``first_strength`` is the
    first penalty strength (lambda) tried; lambdas stay in [``min_strength``, ``max_strength``]. A carved
    student is fine-tuned with the run's proxy settings at ``finetune_lr_scale`` times the proxy's learning
    rate and no warm-up: it starts from the teacher's weights, not from scratch."""

    cost: str = GATE_COSTS[0]
    gate_epochs: int = GateSettings.epochs
    gate_learning_rate: float = GateSettings.learning_rate
    threshold: float = GateSettings.threshold
    tolerance: float = 0.10
    first_strength: float = 0.01
    min_strength: float = 1e-5
    max_strength: float = 10.0
    finetune_lr_scale: float = 0.1  # a carved student starts from the teacher's weights: fine-tune gently

    def gate_settings(self, *, temperature: float = DEFAULT_TEMPERATURE, batch_size: int = TrainSettings.batch_size,
                      seed: int = 0) -> GateSettings:
        """The gate training these settings ask for (``ValueError`` naming a bad value)."""
        return GateSettings(epochs=self.gate_epochs, learning_rate=self.gate_learning_rate, threshold=self.threshold,
                            temperature=temperature, batch_size=batch_size, seed=seed)

    def validate(self) -> None:
        if self.cost not in GATE_COSTS:
            raise InvalidInput(f"subgraph cost must be one of {', '.join(GATE_COSTS)}, got {self.cost!r}")
        self.gate_settings()
        check_number("target tolerance", self.tolerance, 0.0, 1.0, low_open=True)
        for name in ("first_strength", "min_strength", "max_strength", "finetune_lr_scale"):
            check_number(name, getattr(self, name), 0.0, low_open=True)
        if not self.min_strength <= self.first_strength <= self.max_strength:
            raise InvalidInput(f"first_strength {self.first_strength} must lie in [min_strength {self.min_strength}, "
                               f"max_strength {self.max_strength}]")


@dataclass(frozen=True)
class SearchConfig:
    """One search: space, device and latency target, data and teacher, proxy training, reward, controller, budget.

    ``data`` holds :func:`akd_tf.data.load_training_data` arguments (``source`` plus its keyword options);
    ``teachers`` are model paths (several: an ensemble). ``batch_size`` is the number of children per
    controller step (one PPO update per step). ``controller_options`` are the controller's settings
    (:mod:`search.controller_settings`; every one, defaults filled in). Every child's latency comes from one
    source (:mod:`search.latency`): with ``measure`` a whole-model measurement on the device (on a phone:
    farm jobs), else the lookup table's prediction; ``mix_latency`` (only without ``measure``) takes a stored
    measurement where one matches and the prediction elsewhere. ``max_attempts`` bounds the evaluations of a
    child whose infrastructure fails (a killed worker, a dropped phone, a conversion crash:
    :mod:`search.failures`); after that many it is excluded from the controller's update. ``early_stop``
    names the rule (:data:`search.early_stop.STOP_RULES`; None: off) that stops children behind earlier ones
    at the same epoch (:mod:`search.early_stop`).
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
    mix_latency: bool = False
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    early_stop: str | None = None
    quantization: str = "none"
    teachers: tuple[str, ...] = ()
    data: dict = field(default_factory=lambda: {"source": "demo"})
    proxy: ProxySettings = ProxySettings()
    strategy: str = "akd"
    subgraph: SubgraphSettings = SubgraphSettings()

    def __post_init__(self) -> None:
        object.__setattr__(self, "teachers", tuple(str(t) for t in self.teachers))
        if isinstance(self.proxy, dict):
            object.__setattr__(self, "proxy", ProxySettings(**self.proxy))
        if isinstance(self.subgraph, dict):
            object.__setattr__(self, "subgraph", SubgraphSettings(**self.subgraph))
        if self.controller in CONTROLLERS and isinstance(self.controller_options, dict):
            defaults = option_defaults(CONTROLLERS[self.controller].settings)
            object.__setattr__(self, "controller_options", {**defaults, **self.controller_options})

    def validate(self) -> "SearchConfig":
        """``self`` if every setting is usable; otherwise ``ValueError`` naming the bad value and what was expected."""
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise InvalidInput(f"search name must be 1-128 letters, digits, '.', '_' or '-' (starting with a letter "
                               f"or digit), got {self.name!r}")
        if self.strategy not in STRATEGIES:
            raise InvalidInput(f"unknown strategy {self.strategy!r}; known: {', '.join(STRATEGIES)}")
        if self.strategy == "subgraph":
            self._check_subgraph()
        else:
            get_space(self.space)
            if self.controller not in controller_names():
                raise InvalidInput(f"unknown controller {self.controller!r}; known: {', '.join(controller_names())}")
            self._check_controller_options()
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
        if self.early_stop is not None and self.early_stop not in STOP_RULES:
            raise InvalidInput(f"early_stop must be one of {', '.join(STOP_RULES)} (or none), got "
                               f"{self.early_stop!r}")
        if self.mix_latency and self.measure:
            raise InvalidInput("mix_latency (--mix-latency) mixes stored measurements with predictions; with "
                               "measure (--measure) every child is measured: give one of the two")
        check_quantization(self.quantization)
        if not isinstance(self.data, dict) or not isinstance(self.data.get("source"), str):
            raise InvalidInput(f"data must be a dict with a 'source' string, got {self.data!r}")
        self.proxy.validate()
        return self

    def _check_subgraph(self) -> None:
        """The subgraph strategy carves one teacher towards a latency target, measured on the device."""
        if len(self.teachers) != 1:
            raise InvalidInput(f"the subgraph strategy carves a student out of one teacher model (--teacher PATH, "
                               f"once); got {len(self.teachers)}")
        if self.reward_source != "kd":
            raise InvalidInput("the subgraph strategy distills from its teacher: reward source must be 'kd'")
        if self.target_ms is None and self.target_mmacs is None:
            raise InvalidInput("the subgraph strategy carves towards a target: give target_ms (--target-ms) or "
                               "target_mmacs (--target-mmacs)")
        if self.space != SUBGRAPH_SPACE or self.controller != SUBGRAPH_CONTROLLER or self.controller_options:
            raise InvalidInput(f"a subgraph run has space {SUBGRAPH_SPACE!r} and controller {SUBGRAPH_CONTROLLER!r} "
                               f"(no controller options), got {self.space!r}, {self.controller!r}, "
                               f"{self.controller_options!r}")
        if self.early_stop or self.mix_latency:
            raise InvalidInput("--early-stop and --mix-latency are settings of the akd strategy")
        self.subgraph.validate()

    def _check_controller_options(self) -> None:
        """``ValueError`` for an option the controller lacks or a bad value, naming its command-line flag."""
        if not isinstance(self.controller_options, dict):
            raise InvalidInput(f"controller options must be a dict, got {self.controller_options!r}")
        try:
            controller_settings(self.controller, self.controller_options)
        except InvalidOption as exc:
            flags = ", ".join(controller_option_flag(self.controller, name) for name in exc.options)
            raise InvalidInput(f"{exc} ({flags})") from None

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["teachers"] = list(self.teachers)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "SearchConfig":
        """The config a run stored (:meth:`to_dict`): controller options it lacks because they were added later
        read as what it was trained with (:func:`search.controller_settings.stored_options`)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInput(f"unknown search settings: {', '.join(unknown)}")
        controller = values.get("controller", cls.controller)
        options = values.get("controller_options", {})
        if controller in CONTROLLERS and isinstance(options, dict):
            values = {**values, "controller_options": stored_options(CONTROLLERS[controller].settings, options)}
        if isinstance(values.get("early_stop"), bool):  # stored before there were two rules: the median's
            values = {**values, "early_stop": DEFAULT_RULE if values["early_stop"] else None}
        return cls(**values)

    def differences(self, other: "SearchConfig") -> list[str]:
        """``"setting: stored -> given"`` for each setting (other than resumable ones) that differs, ``self``
        being the stored one; the settings that are dicts (``data``, ``proxy``, ``controller_options``) name
        only their keys that differ, as ``proxy.epochs: 5 -> 3`` (``(default)`` where one leaves a key out).
        Between two controllers only the controller is named: their options cannot be compared."""
        mine, theirs = self.to_dict(), other.to_dict()
        skipped = (*RESUMABLE_CHANGES, *(("controller_options",) if self.controller != other.controller else ()))
        return [line for key in mine if key not in skipped
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
    """``stored`` with the settings in ``given`` (SearchConfig fields; ``data``, ``proxy`` and, for the same
    controller, ``controller_options`` merged key by key).

    How a resumed run takes the options a user typed again: anything not given keeps its stored value.
    """
    values = stored.to_dict()
    if given.get("controller", stored.controller) != stored.controller:
        values["controller_options"] = {}  # another controller's options: none of the stored ones apply
    for key, value in given.items():
        if key in ("data", "proxy", "controller_options", "subgraph"):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return SearchConfig(**values)


# Option name (as the CLI's parameters spell them) -> SearchConfig field; the data options become ``data``
# (:func:`akd_tf.data_config.data_config`), these become ``proxy``'s fields.
OPTION_FIELDS = {"device_name": "device", "controller": "controller", "reward": "reward",
                 "reward_source": "reward_source", "target_ms": "target_ms", "target_mmacs": "target_mmacs",
                 "trials": "trials", "batch_size": "batch_size", "seed": "seed", "measure": "measure",
                 "mix_latency": "mix_latency", "max_attempts": "max_attempts",
                 "early_stop": "early_stop", "quantize": "quantization",
                 "teacher_paths": "teachers", "space_name": "space", "strategy": "strategy"}
SUBGRAPH_OPTION_FIELDS = {"subgraph_cost": "cost", "gate_epochs": "gate_epochs", "gate_lr": "gate_learning_rate",
                          "gate_threshold": "threshold", "target_tolerance": "tolerance",
                          "lambda_start": "first_strength"}
PROXY_OPTION_FIELDS = {"proxy_epochs": "epochs", "proxy_train_size": "train_size",
                       "proxy_batch_size": "batch_size", "proxy_lr": "learning_rate", "alpha": "alpha",
                       "temperature": "temperature"}


def controller_option_parameter(controller: str, option: str) -> str:
    """The command line's parameter name of a controller option: ``ppo_learning_rate``."""
    return f"{controller}_{option}"


def controller_option_flag(controller: str, option: str) -> str:
    """The command line's flag of a controller option: ``--ppo-learning-rate``."""
    return "--" + controller_option_parameter(controller, option).replace("_", "-")


# Parameter name -> (controller, option) of every registered controller's options. On the command line they
# default to None: not given, the controller's default applies.
CONTROLLER_OPTION_PARAMETERS = {controller_option_parameter(name, option): (name, option)
                                for name, spec in CONTROLLERS.items() for option in option_infos(spec.settings)}


# What the command line gives for a controller option typed as ``none`` where None has a meaning (say
# ``--ppo-max-grad-norm none``: no clipping); a parameter's None means "not given".
NONE_GIVEN = "none"


def controller_option_values(options: dict, controller: str) -> dict:
    """``controller``'s options given in ``options`` (keyed by :data:`CONTROLLER_OPTION_PARAMETERS`; None: not
    given; :data:`NONE_GIVEN`: given as None), by option name. ``ValueError`` naming the flag of an option given
    for another controller."""
    values = {}
    for parameter, (owner, option) in CONTROLLER_OPTION_PARAMETERS.items():
        if options.get(parameter) is None:
            continue
        if owner != controller:
            raise InvalidInput(f"{controller_option_flag(owner, option)} is an option of --controller {owner}; "
                               f"this search's controller is {controller}")
        values[option] = None if options[parameter] == NONE_GIVEN else options[parameter]
    return values


def config_fields(options: dict, typed: Collection[str] | None = None, controller: str | None = None) -> dict:
    """SearchConfig fields from option values keyed by option name (:data:`OPTION_FIELDS`,
    :data:`PROXY_OPTION_FIELDS`, :data:`CONTROLLER_OPTION_PARAMETERS`, the data options). With ``typed``
    (the options a user typed when resuming) only those, the data options among them as the keys of
    ``data`` they set. Controller options, given only when typed (their parameters default to None), must
    be ``controller``'s (default: ``options["controller"]``)."""
    def given(name: str) -> bool:
        return name in options and (typed is None or name in typed)

    fields = {field: options[name] for name, field in OPTION_FIELDS.items() if given(name)}
    if "teachers" in fields:
        fields["teachers"] = [os.path.abspath(path) for path in fields["teachers"]]
    proxy = {field: options[name] for name, field in PROXY_OPTION_FIELDS.items() if given(name)}
    if proxy:
        fields["proxy"] = proxy
    subgraph = {field: options[name] for name, field in SUBGRAPH_OPTION_FIELDS.items()
                if given(name) and options[name] is not None}
    if subgraph:
        fields["subgraph"] = subgraph
    if fields.get("strategy") == "subgraph" and typed is None:  # a new subgraph run: what the strategy implies
        fields.update(space=SUBGRAPH_SPACE, controller=SUBGRAPH_CONTROLLER, measure=True)
    controller_options = controller_option_values(options, controller or options.get("controller"))
    if controller_options:
        fields["controller_options"] = controller_options
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
    controller = options["controller"] if "controller" in typed else stored.controller
    return merge_given(stored, config_fields(options, typed, controller))


def new_run_name() -> str:
    """A fresh run name from the local date and time, ``search-YYYYmmdd-HHMMSS``."""
    import datetime

    return datetime.datetime.now().strftime("search-%Y%m%d-%H%M%S")
