"""The operators a network is made of: the stem, one searched layer, the head.

Each operator holds its settings and its input shape, and derives from them its
output shape, its latency-table key (everything that decides its cost), its
parameter count and its multiply-adds (MACs). Which operators a network has,
and in which order, is :mod:`akd_tf.walk`'s job; nothing here imports
TensorFlow.

Conventions (MnasNet / EfficientNet): 'same' padding, so a stride-s layer
maps H to ceil(H / s); BatchNorm has 4 parameters per channel (gamma, beta,
moving mean, moving variance, as Keras's ``count_params`` counts them); the
squeeze-and-excite bottleneck has ``max(1, int(input_channels * se_ratio))``
channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from akd_tf.space import ConvOp

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


MAC_KINDS = ("conv", "pointwise", "depthwise", "dense")
"""How an operator's multiply-adds split by the kernel that runs them: a k x k convolution over every input
channel (``conv``: the stem and ``conv`` layers), a 1x1 convolution (``pointwise``: expansions, projections,
the head's conv), a depthwise k x k (``depthwise``), and a fully-connected layer on a pooled vector
(``dense``: squeeze-and-excite and the logits). Each runs at its own cost per MAC, so a cost model prices
them apart."""


def _macs_by_kind(conv: int = 0, pointwise: int = 0, depthwise: int = 0, dense: int = 0) -> dict[str, int]:
    return {"conv": conv, "pointwise": pointwise, "depthwise": depthwise, "dense": dense}


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
    def macs_by_kind(self) -> dict[str, int]:
        """Multiply-adds by :data:`MAC_KINDS`."""
        ho, wo, _ = self.output_shape
        return _macs_by_kind(conv=ho * wo * self.kernel ** 2 * self.input_shape[2] * self.filters)

    @property
    def macs(self) -> int:
        return sum(self.macs_by_kind.values())

    @property
    def bn_channels(self) -> int:
        return self.filters

    @property
    def activation_elements(self) -> int:
        """Elements of the tensors this operator writes (its output)."""
        return math.prod(self.output_shape)


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
    def macs_by_kind(self) -> dict[str, int]:
        """Multiply-adds by :data:`MAC_KINDS`."""
        h, w, cin = self.input_shape
        ho, wo, cout = self.output_shape
        k, mid = self.kernel, self.expanded_channels
        se = _se_macs(mid, self.se_channels)
        if self.conv_op.kind == "conv":
            return _macs_by_kind(conv=ho * wo * k * k * cin * cout, dense=se)
        expand = h * w * cin * mid if self.has_expansion else 0
        return _macs_by_kind(pointwise=expand + ho * wo * mid * cout, depthwise=ho * wo * k * k * mid, dense=se)

    @property
    def macs(self) -> int:
        return sum(self.macs_by_kind.values())

    @property
    def bn_channels(self) -> int:
        if self.conv_op.kind == "conv":
            return self.out_channels
        return (self.expanded_channels if self.has_expansion else 0) + self.expanded_channels + self.out_channels

    @property
    def activation_elements(self) -> int:
        """Elements of the tensors this layer writes: expansion, depthwise and projection outputs."""
        h, w, _ = self.input_shape
        ho, wo, cout = self.output_shape
        if self.conv_op.kind == "conv":
            return ho * wo * cout
        expand = h * w * self.expanded_channels if self.has_expansion else 0
        return expand + ho * wo * self.expanded_channels + ho * wo * cout


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
        return (cin * self.filters + BN_PARAMS_PER_CHANNEL * self.filters
                + self.filters * self.num_classes + self.num_classes)

    @property
    def macs_by_kind(self) -> dict[str, int]:
        """Multiply-adds by :data:`MAC_KINDS`."""
        h, w, cin = self.input_shape
        return _macs_by_kind(pointwise=h * w * cin * self.filters, dense=self.filters * self.num_classes)

    @property
    def macs(self) -> int:
        return sum(self.macs_by_kind.values())

    @property
    def embedding_size(self) -> int:
        return self.filters

    @property
    def bn_channels(self) -> int:
        return self.filters

    @property
    def activation_elements(self) -> int:
        """Elements of the tensors the head writes: the 1x1 conv's output, the pooled vector, the logits."""
        h, w, _ = self.input_shape
        return h * w * self.filters + self.filters + self.num_classes

    @property
    def key(self) -> str:
        return f"head-input:{_shape_label(self.input_shape)}-output:{self.filters}-classes:{self.num_classes}"


Operator = StemPlan | LayerPlan | HeadPlan
"""One unit the latency table prices and :func:`akd_tf.models.build_operator` builds."""


def folded_params(op: Operator) -> int:
    """Parameters as the ``.tflite`` stores them: each BatchNorm folded into its convolution, leaving a bias
    (1 parameter per channel instead of 4)."""
    return op.params - (BN_PARAMS_PER_CHANNEL - 1) * op.bn_channels
