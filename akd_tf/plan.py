"""Layer-by-layer plan of an architecture at a given input shape and class count.

The plan is the single derivation of "what layers does this architecture
have, at which shapes": the Keras builder builds it, the cost model counts
its parameters and multiply-adds (MACs), and the latency table keys its
layers. Nothing here imports TensorFlow.

Conventions (MnasNet / EfficientNet): 'same' padding, so a stride-s layer
maps H to ceil(H / s); BatchNorm has 4 parameters per channel (gamma, beta,
moving mean, moving variance, as Keras's ``count_params`` counts them); the
squeeze-and-excite bottleneck has ``max(1, int(input_channels * se_ratio))``
channels; an identity residual is added only where the layer has stride 1 and
equal input and output channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from akd_tf.space import Arch, BlockChoice, ConvOp, SearchSpace

Shape = tuple[int, int, int]  # (height, width, channels)


def _shape_label(shape: Shape) -> str:
    return "x".join(map(str, shape))

BN_PARAMS_PER_CHANNEL = 4
STEM_KERNEL = 3
STEM_STRIDE = 2


def _out_hw(h: int, w: int, stride: int) -> tuple[int, int]:
    return math.ceil(h / stride), math.ceil(w / stride)


def _se_reduced(in_channels: int, se_ratio: float) -> int:
    return max(1, int(in_channels * se_ratio)) if se_ratio > 0 else 0


def _se_params(channels: int, reduced: int) -> int:
    return channels * reduced + reduced + reduced * channels + channels if reduced else 0


def _se_macs(channels: int, reduced: int) -> int:
    return 2 * channels * reduced


@dataclass(frozen=True)
class StemPlan:
    """k x k stride-2 conv + BN + ReLU on the input image."""

    input_shape: Shape
    filters: int
    kernel: int = STEM_KERNEL
    stride: int = STEM_STRIDE
    name: str = "stem"

    @property
    def output_shape(self) -> Shape:
        return (*_out_hw(*self.input_shape[:2], self.stride), self.filters)

    @property
    def key(self) -> str:
        """Latency-table key: everything that decides this operator's cost."""
        return (f"stem-input:{_shape_label(self.input_shape)}-output:{self.filters}"
                f"-kernel:{self.kernel}-stride:{self.stride}")

    @property
    def params(self) -> int:
        return self.kernel ** 2 * self.input_shape[2] * self.filters + BN_PARAMS_PER_CHANNEL * self.filters

    @property
    def macs(self) -> int:
        ho, wo, _ = self.output_shape
        return ho * wo * self.kernel ** 2 * self.input_shape[2] * self.filters


@dataclass(frozen=True)
class LayerPlan:
    """One searched layer: ``block`` and ``layer`` are 1-based."""

    block: int
    layer: int
    conv_op: ConvOp
    kernel: int
    stride: int
    se_ratio: float
    input_shape: Shape
    out_channels: int
    residual: bool

    @property
    def name(self) -> str:
        return f"block{self.block}_layer{self.layer}"

    @property
    def in_channels(self) -> int:
        return self.input_shape[2]

    @property
    def expanded_channels(self) -> int:
        """Channels the depthwise / SE part runs at (the expansion for MBConv)."""
        if self.conv_op.kind == "mbconv":
            return self.in_channels * self.conv_op.expand_ratio
        if self.conv_op.kind == "dwconv":
            return self.in_channels
        return self.out_channels

    @property
    def has_expansion(self) -> bool:
        return self.conv_op.kind == "mbconv" and self.conv_op.expand_ratio != 1

    @property
    def se_channels(self) -> int:
        return _se_reduced(self.in_channels, self.se_ratio)

    @property
    def output_shape(self) -> Shape:
        return (*_out_hw(*self.input_shape[:2], self.stride), self.out_channels)

    @property
    def key(self) -> str:
        """Latency-table key, e.g. ``mbconv6-input:24x24x24-output:40-kernel:5-stride:2-se:0.25-noskip``."""
        return (f"{self.conv_op.name}-input:{_shape_label(self.input_shape)}-output:{self.out_channels}"
                f"-kernel:{self.kernel}-stride:{self.stride}-se:{self.se_ratio:g}"
                f"-{'idskip' if self.residual else 'noskip'}")

    @property
    def params(self) -> int:
        cin, cout, k, mid = self.in_channels, self.out_channels, self.kernel, self.expanded_channels
        bn = BN_PARAMS_PER_CHANNEL
        se = _se_params(mid, self.se_channels)
        if self.conv_op.kind == "conv":
            return k * k * cin * cout + bn * cout + se
        expand = cin * mid + bn * mid if self.has_expansion else 0
        return expand + k * k * mid + bn * mid + se + mid * cout + bn * cout

    @property
    def macs(self) -> int:
        h, w, cin = self.input_shape
        ho, wo, cout = self.output_shape
        k, mid = self.kernel, self.expanded_channels
        se = _se_macs(mid, self.se_channels)
        if self.conv_op.kind == "conv":
            return ho * wo * k * k * cin * cout + se
        expand = h * w * cin * mid if self.has_expansion else 0
        return expand + ho * wo * k * k * mid + se + ho * wo * mid * cout


@dataclass(frozen=True)
class HeadPlan:
    """1x1 conv + BN + ReLU, global average pool, dropout, dense logits."""

    input_shape: Shape
    filters: int
    num_classes: int
    name: str = "head"

    @property
    def params(self) -> int:
        cin = self.input_shape[2]
        return cin * self.filters + BN_PARAMS_PER_CHANNEL * self.filters + self.filters * self.num_classes + self.num_classes

    @property
    def macs(self) -> int:
        h, w, cin = self.input_shape
        return h * w * cin * self.filters + self.filters * self.num_classes

    @property
    def embedding_size(self) -> int:
        return self.filters

    @property
    def key(self) -> str:
        return f"head-input:{_shape_label(self.input_shape)}-output:{self.filters}-classes:{self.num_classes}"


@dataclass(frozen=True)
class NetworkPlan:
    """Every layer of ``arch`` at ``input_shape`` with ``num_classes`` outputs."""

    arch: Arch
    input_shape: Shape
    num_classes: int
    stem: StemPlan
    layers: tuple[LayerPlan, ...]
    head: HeadPlan

    @property
    def params(self) -> int:
        return self.stem.params + sum(layer.params for layer in self.layers) + self.head.params

    @property
    def macs(self) -> int:
        return self.stem.macs + sum(layer.macs for layer in self.layers) + self.head.macs

    @property
    def operators(self) -> tuple["StemPlan | LayerPlan | HeadPlan", ...]:
        """Stem, every layer, head: the units the latency table prices."""
        return (self.stem, *self.layers, self.head)

    def block_layers(self, block: int) -> tuple[LayerPlan, ...]:
        return tuple(layer for layer in self.layers if layer.block == block)

    def block_params(self, block: int) -> int:
        return sum(layer.params for layer in self.block_layers(block))

    def block_macs(self, block: int) -> int:
        return sum(layer.macs for layer in self.block_layers(block))


def check_input_shape(space: SearchSpace, input_shape: Sequence[int]) -> Shape:
    """Validate an (H, W, C) input shape against the space's resolution range."""
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {tuple(input_shape)!r}")
    h, w, c = input_shape
    space.check_resolution(h)
    space.check_resolution(w)
    if isinstance(c, bool) or not isinstance(c, int) or c < 1:
        raise ValueError(f"input channels must be a positive int, got {c!r}")
    return (int(h), int(w), int(c))


def plan_network(arch: Arch, input_shape: Sequence[int], num_classes: int) -> NetworkPlan:
    """Derive the full layer plan of ``arch`` (see the module docstring for conventions)."""
    space = arch.space
    shape = check_input_shape(space, input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    stem = StemPlan(shape, space.stem_filters)
    current = stem.output_shape
    layers: list[LayerPlan] = []
    for block in arch.blocks:
        block_layers = plan_block(block, current)
        layers.extend(block_layers)
        current = block_layers[-1].output_shape if block_layers else current
    head = HeadPlan(current, space.head_filters, num_classes)
    return NetworkPlan(arch, shape, num_classes, stem, tuple(layers), head)


def plan_block(block: BlockChoice, input_shape: Shape) -> tuple[LayerPlan, ...]:
    """The layers of one block fed with ``input_shape``: stride and channel change on the first layer only."""
    layers, current = [], input_shape
    for i in range(1, block.layers + 1):
        stride = block.stride if i == 1 else 1
        layer = LayerPlan(
            block=block.index, layer=i, conv_op=block.conv_op, kernel=block.kernel, stride=stride,
            se_ratio=block.se_ratio, input_shape=current, out_channels=block.filters,
            residual=block.skip_op == "id" and stride == 1 and current[2] == block.filters)
        layers.append(layer)
        current = layer.output_shape
    return tuple(layers)


def block_rows(plan: NetworkPlan) -> list[dict]:
    """One row per stem / block / head: its decisions, output shape, params and MACs (for tables and JSON)."""
    rows = [{"block": "stem", "op": f"conv{plan.stem.kernel}x{plan.stem.kernel}", "kernel": plan.stem.kernel,
             "se": "", "skip": "", "filters": plan.stem.filters, "layers": 1,
             "output": "x".join(map(str, plan.stem.output_shape)), "params": plan.stem.params, "macs": plan.stem.macs}]
    for block in plan.arch.blocks:
        layers = plan.block_layers(block.index)
        out = layers[-1].output_shape if layers else None
        rows.append({"block": str(block.index), "op": block.conv_op.name, "kernel": block.kernel,
                     "se": format(block.se_ratio, "g"), "skip": block.skip_op, "filters": block.filters,
                     "layers": block.layers, "output": "x".join(map(str, out)) if out else "(removed)",
                     "params": plan.block_params(block.index), "macs": plan.block_macs(block.index)})
    rows.append({"block": "head", "op": "conv1x1+pool+fc", "kernel": 1, "se": "", "skip": "",
                 "filters": plan.head.filters, "layers": 1, "output": str(plan.num_classes),
                 "params": plan.head.params, "macs": plan.head.macs})
    return rows
