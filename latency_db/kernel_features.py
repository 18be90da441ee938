"""What a kernel model knows of one operator: its configuration as a vector of features, defined here only.

A latency-table entry is one operator's micro-model (:mod:`latency_db.lut`); the kernel model
(:mod:`latency_db.kernel_models`) predicts an entry from these features, so it can price an operator the
table never measured (another input resolution or class count). Every feature is read off the
:class:`akd_tf.operators.Operator` (the core's one description of an operator): its settings, its shapes,
its multiply-adds split by the kernel that runs them (:data:`akd_tf.operators.MAC_KINDS`) and the bytes
it reads and writes.
"""

from __future__ import annotations


import numpy as np

from akd_tf.operators import MAC_KINDS, HeadPlan, LayerPlan, Operator, StemPlan, folded_params
from akd_tf.target import ACTIVATION_BYTES, WEIGHT_BYTES
from latency_db.features import Feature

OPERATOR_KINDS = ("stem", "conv", "dwconv", "mbconv", "head")
# TFLite operators a squeeze-and-excite runs: mean, two 1x1 convolutions, the sigmoid, the multiply.
SE_KERNELS = 5


KERNEL_FEATURES = (
    Feature("kind", "", f"the operator's kind, as its index in {OPERATOR_KINDS}"),
    Feature("kernel", "", "the convolution's kernel size (1: the head's 1x1)"),
    Feature("stride", "", "the convolution's stride"),
    Feature("expand_ratio", "", "the MBConv expansion ratio (1 for every other kind)"),
    Feature("se_ratio", "", "the squeeze-and-excite ratio (0: none)"),
    Feature("residual", "", "1 with an identity residual add, else 0"),
    Feature("input_h", "px", "input height"),
    Feature("input_w", "px", "input width"),
    Feature("in_channels", "", "input channels"),
    Feature("out_channels", "", "output channels (the head: its conv's filters)"),
    Feature("classes", "", "the head's logits (0 for every other kind)"),
    Feature("kernels", "", "TFLite operators the micro-model runs (BatchNorm and ReLU folded in)"),
    *(Feature(f"{kind}_mmacs", "M", f"multiply-adds run by {kind} kernels") for kind in MAC_KINDS),
    Feature("weight_kb", "kB", "weights as the .tflite stores them (BatchNorm folded)"),
    Feature("input_kb", "kB", "bytes of the input tensor"),
    Feature("activation_kb", "kB", "bytes of the tensors the operator writes"),
)
KERNEL_FEATURE_NAMES = tuple(f.name for f in KERNEL_FEATURES)
CATEGORICAL = ("kind",)
# The features that grow with the work an operator does: what a cost per unit multiplies.
WORK_FEATURES = ("kernels", *(f"{kind}_mmacs" for kind in MAC_KINDS), "weight_kb", "input_kb", "activation_kb")


def _kernels(op: Operator) -> int:
    """The TFLite operators ``op``'s micro-model runs."""
    if isinstance(op, StemPlan):
        return 1
    if isinstance(op, HeadPlan):
        return 3  # conv, mean, fully connected
    main = 1 if op.conv_op.kind == "conv" else 2 + op.has_expansion  # [expand,] depthwise, project
    return main + (SE_KERNELS if op.se_channels else 0) + op.residual


def _settings(op: Operator) -> tuple[str, int, int, int, float, int, int, int]:
    """(kind, kernel, stride, expand ratio, SE ratio, residual, output channels, classes)."""
    if isinstance(op, StemPlan):
        return "stem", op.kernel, op.stride, 1, 0.0, 0, op.filters, 0
    if isinstance(op, HeadPlan):
        return "head", 1, 1, 1, 0.0, 0, op.filters, op.num_classes
    if not isinstance(op, LayerPlan):
        raise TypeError(f"not an operator: {op!r}")
    expand = op.conv_op.expand_ratio if op.conv_op.kind == "mbconv" else 1
    return (op.conv_op.kind, op.kernel, op.stride, expand, op.se_ratio, int(op.residual), op.out_channels, 0)


def kernel_features(op: Operator, quantization: str) -> np.ndarray:
    """The :data:`KERNEL_FEATURES` of ``op`` at ``quantization``, in that order."""
    kind, kernel, stride, expand, se_ratio, residual, out_channels, classes = _settings(op)
    h, w, cin = op.input_shape
    macs = op.macs_by_kind
    activation = ACTIVATION_BYTES[quantization]
    return np.array([OPERATOR_KINDS.index(kind), kernel, stride, expand, se_ratio, residual, h, w, cin, out_channels,
                     classes, _kernels(op), *(macs[k] / 1e6 for k in MAC_KINDS),
                     folded_params(op) * WEIGHT_BYTES[quantization] / 1e3, h * w * cin * activation / 1e3,
                     op.activation_elements * activation / 1e3], dtype=float)


def kernel_features_many(ops, quantization: str) -> np.ndarray:
    """One row of :func:`kernel_features` per operator."""
    return np.array([kernel_features(op, quantization) for op in ops], dtype=float).reshape(-1, len(KERNEL_FEATURES))
