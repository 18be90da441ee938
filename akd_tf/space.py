"""Factorized hierarchical search spaces (MnasNet style), defined as data.

A space is a fixed skeleton (stem, N blocks, head) plus, for every block, an
ordered tuple of :class:`Decision` s. Everything else in akd-tf derives from
this data: the token layout, the canonical string, the one-hot layout, the
controller's step sizes, the Keras layers and the latency-table keys.

An architecture has three exactly-inverse forms:

* **tokens** – a flat tuple of ints, block-major, one index per decision;
* **canonical string** – human readable, with this grammar::

      arch  := block (":" block)*          exactly one block per skeleton block
      block := field ("_" field)*          one field per decision, in order
      field := prefix label                 e.g. "k5", "se0.25", "mbconv6"

  In the default ``mnasnet`` space a block reads
  ``<op>_k<kernel>_se<ratio>_<skip>_w<width multiplier>_n<layers>``, for
  example ``mbconv6_k5_se0.25_id_w1.25_n3``. Only the exact labels listed by
  the space are accepted (``se0.25``, not ``se.25``);
* **one-hot vector** – the concatenation of one one-hot segment per decision.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator, Sequence

import numpy as np

from akd_tf.errors import InvalidInput

# ---------------------------------------------------------------------------
# Choice values
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvOp:
    """A convolution operator a block can use.

    ``kind`` is one of ``conv`` (regular k x k conv), ``dwconv`` (depthwise
    separable: depthwise k x k then pointwise 1x1) or ``mbconv`` (inverted
    bottleneck: 1x1 expansion by ``expand_ratio``, depthwise k x k, 1x1
    projection).
    """

    name: str
    kind: str
    expand_ratio: int = 1

    def __post_init__(self) -> None:
        if self.kind not in CONV_KINDS:
            raise InvalidInput(f"conv op {self.name!r}: kind {self.kind!r} is not one of {CONV_KINDS}")
        if self.kind == "mbconv" and self.expand_ratio < 1:
            raise InvalidInput(f"conv op {self.name!r}: expand_ratio must be >= 1, got {self.expand_ratio}")


CONV_KINDS = ("conv", "dwconv", "mbconv")
SKIP_OPS = ("noskip", "id")


def _label(value: object) -> str:
    """Canonical label of a choice value: ConvOp -> its name, 0.25 -> '0.25', 1.0 -> '1', 3 -> '3'."""
    if isinstance(value, ConvOp):
        return value.name
    if isinstance(value, str):
        return value
    return format(value, "g")


def _definition_of(value: object) -> object:
    """A choice value as plain data for :attr:`SearchSpace.version`: a ConvOp with its kind and expand ratio."""
    return [value.name, value.kind, value.expand_ratio] if isinstance(value, ConvOp) else value


@dataclass(frozen=True)
class Decision:
    """One searched choice of one block: a field name, its values and their labels."""

    field: str
    values: tuple
    prefix: str = ""

    @property
    def labels(self) -> tuple[str, ...]:
        """Canonical string form of each value, prefix included."""
        return tuple(self.prefix + _label(v) for v in self.values)

    @property
    def size(self) -> int:
        return len(self.values)

    def describe_values(self) -> str:
        return ", ".join(self.labels)


# ---------------------------------------------------------------------------
# Space definition
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockSkeleton:
    """The fixed part of a block: base stride, base filters and base layer count."""

    stride: int
    filters: int
    layers: int


@dataclass(frozen=True)
class BlockOptions:
    """The searched options of a block, as in MnasNet's per-block decisions.

    The decision order here is the token order and the string order.
    """

    conv_ops: tuple[ConvOp, ...]
    kernels: tuple[int, ...]
    se_ratios: tuple[float, ...]
    skip_ops: tuple[str, ...]
    width_multipliers: tuple[float, ...]
    layer_deltas: tuple[int, ...]

    def decisions(self, skeleton: BlockSkeleton) -> tuple[Decision, ...]:
        layer_counts = tuple(skeleton.layers + d for d in self.layer_deltas)
        return (
            Decision("conv_op", self.conv_ops),
            Decision("kernel", self.kernels, "k"),
            Decision("se_ratio", self.se_ratios, "se"),
            Decision("skip_op", self.skip_ops),
            Decision("width", self.width_multipliers, "w"),
            Decision("layers", layer_counts, "n"),
        )


@dataclass(frozen=True)
class BlockChoice:
    """The resolved decisions of one block of one architecture."""

    index: int  # 1-based block number
    conv_op: ConvOp
    kernel: int
    se_ratio: float
    skip_op: str
    width: float
    layers: int
    stride: int
    filters: int  # output channels after the width multiplier


def make_divisible(value: float, divisor: int) -> int:
    """Round channels to a multiple of ``divisor`` (MobileNet rule: never below 90% of ``value``)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class SearchSpace:
    """A named factorized hierarchical search space.

    ``block_options`` holds either one :class:`BlockOptions` shared by every
    block or one per block.
    """

    name: str
    stem_filters: int
    head_filters: int
    skeleton: tuple[BlockSkeleton, ...]
    block_options: tuple[BlockOptions, ...]
    channel_divisor: int = 4
    min_resolution: int = 32
    max_resolution: int = 224
    _decisions: tuple[tuple[Decision, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.block_options) not in (1, len(self.skeleton)):
            raise InvalidInput(
                f"space {self.name!r}: block_options must hold 1 or {len(self.skeleton)} entries, "
                f"got {len(self.block_options)}")
        options = self.block_options * len(self.skeleton) if len(self.block_options) == 1 else self.block_options
        decisions = tuple(opt.decisions(sk) for opt, sk in zip(options, self.skeleton))
        for b, block in enumerate(decisions, start=1):
            for d in block:
                if d.field == "layers" and min(d.values) < 0:
                    raise InvalidInput(f"space {self.name!r}: block {b} allows a negative layer count {min(d.values)}")
                if d.field == "layers" and self.skeleton[b - 1].stride != 1 and min(d.values) < 1:
                    raise InvalidInput(f"space {self.name!r}: block {b} has stride {self.skeleton[b - 1].stride} "
                                       f"and so needs at least one layer, but allows 0")
                if len(set(d.labels)) != d.size:
                    raise InvalidInput(f"space {self.name!r}: block {b} {d.field} has duplicate labels {d.labels}")
        object.__setattr__(self, "_decisions", decisions)

    # -- layout -------------------------------------------------------------

    @property
    def num_blocks(self) -> int:
        return len(self.skeleton)

    def block_decisions(self, block: int) -> tuple[Decision, ...]:
        """Decisions of the 1-based ``block``."""
        return self._decisions[block - 1]

    @property
    def decisions(self) -> tuple[Decision, ...]:
        """All decisions in token order (the controller's steps)."""
        return tuple(d for block in self._decisions for d in block)

    @property
    def num_decisions(self) -> int:
        return sum(len(block) for block in self._decisions)

    @property
    def onehot_width(self) -> int:
        return sum(d.size for d in self.decisions)

    @property
    def size(self) -> int:
        """Number of distinct token lists."""
        return math.prod(d.size for d in self.decisions)

    @cached_property
    def version(self) -> str:
        """A digest of the space's definition (8 hex digits): editing the skeleton, a block's decisions or
        their values, the channel divisor or the resolution bounds changes it; the name is not part of it.
        Latency tables record it, so a table measured for an older definition is never read as this one's."""
        definition = {
            "stem_filters": self.stem_filters, "head_filters": self.head_filters,
            "channel_divisor": self.channel_divisor, "resolution": [self.min_resolution, self.max_resolution],
            "skeleton": [[sk.stride, sk.filters, sk.layers] for sk in self.skeleton],
            "decisions": [[[d.field, d.prefix, [_definition_of(v) for v in d.values]] for d in block]
                          for block in self._decisions]}
        return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:8]

    def summary(self) -> dict:
        """The space's size and shape as one JSON-able record (what ``akd-tf arch space --json`` prints)."""
        return {"space": self.name, "version": self.version, "blocks": self.num_blocks,
                "decisions": self.num_decisions,
                "onehot_width": self.onehot_width, "size": self.size, "stem_filters": self.stem_filters,
                "head_filters": self.head_filters, "resolution": [self.min_resolution, self.max_resolution]}

    def skeleton_rows(self) -> list[dict]:
        """One row per block: its fixed skeleton (stride, filters, base layers) and each decision's labels."""
        return [{"block": b, "stride": sk.stride, "filters": sk.filters, "base layers": sk.layers,
                 **{d.field: " ".join(d.labels) for d in self.block_decisions(b)}}
                for b, sk in enumerate(self.skeleton, start=1)]

    def _positions(self) -> Iterator[tuple[int, Decision]]:
        for b, block in enumerate(self._decisions, start=1):
            for d in block:
                yield b, d

    # -- constructors -------------------------------------------------------

    def from_tokens(self, tokens: Sequence[int]) -> "Arch":
        """Validate ``tokens`` and wrap them as an :class:`Arch`."""
        tokens = tuple(tokens)
        if len(tokens) != self.num_decisions:
            per_block = {len(block) for block in self._decisions}
            layout = (f" ({self.num_blocks} blocks x {per_block.pop()} decisions)" if len(per_block) == 1 else "")
            raise InvalidInput(f"space {self.name!r}: expected {self.num_decisions} tokens{layout}, got {len(tokens)}")
        for (b, d), t in zip(self._positions(), tokens):
            if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
                raise InvalidInput(f"block {b} {d.field}: got token {t!r}, expected an int in 0..{d.size - 1}")
            if not 0 <= t < d.size:
                raise InvalidInput(
                    f"block {b} {d.field}: got token {t}, expected 0..{d.size - 1} ({d.describe_values()})")
        return Arch(self, tuple(int(t) for t in tokens))

    def parse(self, text: str) -> "Arch":
        """Parse a canonical architecture string (grammar in the module docstring)."""
        if not isinstance(text, str):
            raise InvalidInput(f"expected an architecture string, got {type(text).__name__}")
        parts = text.strip().split(":")
        if len(parts) != self.num_blocks:
            raise InvalidInput(
                f"space {self.name!r}: expected {self.num_blocks} blocks separated by ':', got {len(parts)} "
                f"in {text.strip()!r}")
        tokens: list[int] = []
        for b, (part, decisions) in enumerate(zip(parts, self._decisions), start=1):
            fields = part.split("_")
            if len(fields) != len(decisions):
                expected = "_".join(f"<{d.field}>" for d in decisions)
                raise InvalidInput(
                    f"block {b}: expected {len(decisions)} fields {expected}, got {len(fields)} in {part!r}")
            for got, d in zip(fields, decisions):
                try:
                    tokens.append(d.labels.index(got))
                except ValueError:
                    raise InvalidInput(
                        f"block {b} {d.field}: got {got!r}, expected one of {d.describe_values()}") from None
        return Arch(self, tuple(tokens))

    def from_onehot(self, vector: Sequence[float]) -> "Arch":
        """Inverse of :meth:`Arch.onehot`: each segment must be exactly one-hot."""
        vec = np.asarray(vector)
        if vec.ndim != 1 or vec.shape[0] != self.onehot_width:
            raise InvalidInput(f"space {self.name!r}: expected a one-hot vector of width {self.onehot_width}, "
                               f"got shape {tuple(vec.shape)}")
        tokens, offset = [], 0
        for b, d in self._positions():
            segment = vec[offset:offset + d.size]
            ones = np.flatnonzero(segment == 1)
            if len(ones) != 1 or np.count_nonzero(segment) != 1:
                raise InvalidInput(f"block {b} {d.field}: segment {segment.tolist()} at offset {offset} "
                                   f"is not one-hot over {d.size} values ({d.describe_values()})")
            tokens.append(int(ones[0]))
            offset += d.size
        return Arch(self, tuple(tokens))

    def decode_text(self, text: str) -> "Arch":
        """An architecture from typed tokens: comma- or space-separated ints, or a one-hot string of 0/1
        digits exactly :attr:`onehot_width` long."""
        text = text.strip()
        if "," not in text and set(text) <= {"0", "1"} and len(text) == self.onehot_width:
            return self.from_onehot([int(c) for c in text])
        try:
            values = [int(t) for t in text.replace(",", " ").split()]
        except ValueError:
            raise InvalidInput(f"expected comma-separated ints, got {text!r}") from None
        return self.from_tokens(values)

    def arch(self, value: "str | Sequence[int] | Arch") -> "Arch":
        """Accept any architecture form users pass around: string, tokens or Arch."""
        if isinstance(value, Arch):
            if value.space != self:
                raise InvalidInput(f"architecture belongs to space {value.space.name!r}, not {self.name!r}")
            return value
        if isinstance(value, str):
            return self.parse(value)
        return self.from_tokens(value)

    # -- sampling -----------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> "Arch":
        """One architecture drawn uniformly from the space."""
        return Arch(self, tuple(int(rng.integers(d.size)) for d in self.decisions))

    def sample_many(self, n: int, seed: int | None = None) -> list["Arch"]:
        """``n`` uniform samples; the same ``seed`` gives the same list."""
        if n < 0:
            raise InvalidInput(f"n must be >= 0, got {n}")
        rng = np.random.default_rng(seed)
        return [self.sample(rng) for _ in range(n)]

    def mutate(self, arch: "Arch", rng: np.random.Generator) -> "Arch":
        """Change exactly one decision that has alternatives to a different value."""
        arch = self.arch(arch)
        mutable = [i for i, d in enumerate(self.decisions) if d.size > 1]
        if not mutable:
            raise InvalidInput(f"space {self.name!r} has no decision with more than one value")
        i = mutable[int(rng.integers(len(mutable)))]
        others = [v for v in range(self.decisions[i].size) if v != arch.tokens[i]]
        tokens = list(arch.tokens)
        tokens[i] = others[int(rng.integers(len(others)))]
        return Arch(self, tuple(tokens))

    def extreme(self, largest: bool) -> "Arch":
        """The architecture with every decision at its most (or least) costly value.

        Costliest: last value of every decision, which by convention lists
        values from cheap to expensive (ops, kernels, SE, widths, layers).
        """
        return Arch(self, tuple(d.size - 1 if largest else 0 for d in self.decisions))

    # -- resolution ----------------------------------------------------------

    def block_choice(self, block: int, block_tokens: Sequence[int]) -> BlockChoice:
        """Resolve the tokens of the 1-based ``block`` (one per decision of that block)."""
        decisions, sk = self._decisions[block - 1], self.skeleton[block - 1]
        values = {d.field: d.values[t] for d, t in zip(decisions, block_tokens, strict=True)}
        return BlockChoice(
            index=block, conv_op=values["conv_op"], kernel=values["kernel"], se_ratio=values["se_ratio"],
            skip_op=values["skip_op"], width=values["width"], layers=values["layers"], stride=sk.stride,
            filters=make_divisible(sk.filters * values["width"], self.channel_divisor))

    def blocks(self, arch: "Arch") -> tuple[BlockChoice, ...]:
        """Resolve an architecture's tokens to per-block choices."""
        out, offset = [], 0
        for b, decisions in enumerate(self._decisions, start=1):
            out.append(self.block_choice(b, arch.tokens[offset:offset + len(decisions)]))
            offset += len(decisions)
        return tuple(out)

    def check_resolution(self, resolution: int) -> None:
        if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or not (
                self.min_resolution <= resolution <= self.max_resolution):
            raise InvalidInput(f"space {self.name!r}: resolution must be an int in "
                               f"{self.min_resolution}..{self.max_resolution}, got {resolution!r}")


@dataclass(frozen=True)
class Arch:
    """An architecture of a space: the space and its tokens (validated on construction by the space)."""

    space: SearchSpace
    tokens: tuple[int, ...]

    def to_string(self) -> str:
        """Canonical string (see the module docstring for the grammar)."""
        labels = iter(d.labels[t] for d, t in zip(self.space.decisions, self.tokens))
        return ":".join("_".join(next(labels) for _ in block) for block in self.space._decisions)

    def onehot(self) -> np.ndarray:
        """One-hot vector of width ``space.onehot_width`` (float32)."""
        vec = np.zeros(self.space.onehot_width, dtype=np.float32)
        offset = 0
        for d, t in zip(self.space.decisions, self.tokens):
            vec[offset + t] = 1.0
            offset += d.size
        return vec

    @property
    def blocks(self) -> tuple[BlockChoice, ...]:
        return self.space.blocks(self)

    def __str__(self) -> str:
        return self.to_string()


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

MNASNET_OPTIONS = BlockOptions(
    conv_ops=(ConvOp("conv", "conv"), ConvOp("dwconv", "dwconv"),
              ConvOp("mbconv3", "mbconv", 3), ConvOp("mbconv6", "mbconv", 6)),
    kernels=(3, 5),
    se_ratios=(0.0, 0.25),
    skip_ops=SKIP_OPS,
    width_multipliers=(0.75, 1.0, 1.25),
    layer_deltas=(-1, 0, 1),
)

# MnasNet-A1's skeleton (MobileNetV2 strides and layer counts). Blocks 1 and 7
# have stride 1, so their "base - 1" choice of zero layers removes the block.
MNASNET = SearchSpace(
    name="mnasnet",
    stem_filters=32,
    head_filters=1280,
    skeleton=(
        BlockSkeleton(stride=1, filters=16, layers=1),
        BlockSkeleton(stride=2, filters=24, layers=2),
        BlockSkeleton(stride=2, filters=40, layers=3),
        BlockSkeleton(stride=2, filters=80, layers=4),
        BlockSkeleton(stride=1, filters=112, layers=2),
        BlockSkeleton(stride=2, filters=160, layers=3),
        BlockSkeleton(stride=1, filters=320, layers=1),
    ),
    block_options=(MNASNET_OPTIONS,),
)

_SPACES: dict[str, SearchSpace] = {}


def register_space(space: SearchSpace) -> SearchSpace:
    """Add a space to the registry; its name must be new."""
    if space.name in _SPACES:
        raise InvalidInput(f"a search space named {space.name!r} is already registered")
    _SPACES[space.name] = space
    return space


def get_space(name: str = "mnasnet") -> SearchSpace:
    """Look a space up by name; unknown names raise ``ValueError`` listing the known ones."""
    try:
        return _SPACES[name]
    except KeyError:
        raise InvalidInput(f"unknown search space {name!r}; known spaces: {', '.join(sorted(_SPACES))}") from None


def space_names() -> list[str]:
    return sorted(_SPACES)


DEFAULT_SPACE = register_space(MNASNET).name
