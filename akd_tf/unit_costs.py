"""What each gate of a gated teacher costs: the weights of its L1 penalty.

``c_i`` is the cost of unit ``i``, what removing it saves, in one of three measures (:data:`GATE_COSTS`):

* ``units``: 1 per gate, the plain L1 of Gu & Tresp (every channel and every branch alike);
* ``macs``: multiply-accumulates: a channel saves its producer's filter, its depthwise filters and the
  consumer's weights reading it, at their output resolutions;
* ``latency``: milliseconds on the target device: each weighted layer's measured latency
  (``layer_latency_ms``, from micro-models of the teacher's own layers) shared out evenly over the
  channels it computes or reads.

A branch's gate costs what removing the branch saves beyond what its channel gates already price: its
channel groups narrowed to the one channel each keeps, i.e. one channel's cost per group inside it (a
branch without a channel group inside costs its layers' whole MACs or latency). Pricing the branch's
whole compute on its gate as well counted it twice, and on the demo (ResNet-20, MACs) every branch
then went at once: from nothing removed at lambda 0.03 to all nine removed at 0.045, with no student
between; priced at the margin, 0.03 and 0.06 gave 0.859 and 0.579 ms (the teacher 0.982).

Costs are normalised to a mean of 1 over all gates, so a gate of average cost is pulled towards 0 by
``strength`` per unit of gate, whatever the measure and however many gates the teacher has: with the
gates' plain gradient steps (:mod:`akd_tf.gate_training`) ``strength`` has one meaning for ResNet-20's
345 gates and MobileNetV2's 8,762.
"""

from __future__ import annotations

import numpy as np

from akd_tf.errors import InvalidInput
from akd_tf.prunable import PrunablePlan
from akd_tf.train_settings import GATE_COSTS


def layer_macs(layer) -> float:
    """Multiply-accumulates of one built Conv2D, DepthwiseConv2D or Dense layer for one example (0 for others)."""
    kind = type(layer).__name__
    if kind == "Conv2D":
        height, width, channels_in, channels_out = layer.kernel.shape
        _, out_h, out_w, _ = layer.output_shape
        return float(height * width * channels_in * channels_out * out_h * out_w)
    if kind == "DepthwiseConv2D":
        height, width, channels, multiplier = layer.depthwise_kernel.shape
        _, out_h, out_w, _ = layer.output_shape
        return float(height * width * channels * multiplier * out_h * out_w)
    if kind == "Dense":
        return float(np.prod(layer.kernel.shape))
    return 0.0


def _per_output_channel(layer, amount: float) -> float:
    return amount / int(layer.output_shape[-1])


def _per_input_channel(layer, amount: float) -> float:
    return amount / int(layer.input_shape[-1])


def unit_costs(teacher, plan: PrunablePlan, kind: str = "units",
               layer_latency_ms: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Gate layer name -> the cost of each of its gates (normalised to a mean of 1 over all gates)."""
    if kind not in GATE_COSTS:
        raise InvalidInput(f"unknown cost {kind!r}; choose one of {', '.join(GATE_COSTS)}")
    if kind == "latency":
        if not layer_latency_ms:
            raise InvalidInput("the latency cost needs each weighted layer's latency on the device")
        missing = [name for name in weighted_layer_names(teacher, plan) if name not in layer_latency_ms]
        if missing:
            raise InvalidInput(f"no latency for layer(s) {', '.join(missing)} of {plan.model_name}")
        amount = layer_latency_ms.__getitem__
    else:
        amount = lambda name: layer_macs(teacher.get_layer(name))  # noqa: E731
    raw: dict[str, np.ndarray] = {}
    for group in plan.groups:
        if kind == "units":
            raw[group.gate] = np.ones(group.width)
            continue
        producer, consumer = teacher.get_layer(group.producer), teacher.get_layer(group.consumer)
        per_channel = (_per_output_channel(producer, amount(group.producer))
                       + _per_input_channel(consumer, amount(group.consumer))
                       + sum(_per_output_channel(teacher.get_layer(name), amount(name))
                             for name in group.chain if _is_weighted(teacher, name)))
        raw[group.gate] = np.full(group.width, per_channel)
    for branch in plan.branches:
        inner = [group.gate for group in plan.groups if group.branch == branch.gate]
        if kind == "units":
            cost = 1.0
        elif inner:  # beyond its channel groups, each narrowed to one channel
            cost = sum(float(raw[gate][0]) for gate in inner)
        else:
            cost = sum(amount(name) for name in branch.layers if _is_weighted(teacher, name))
        raw[branch.gate] = np.array([cost])
    raw = {**{b.gate: raw[b.gate] for b in plan.branches}, **{g.gate: raw[g.gate] for g in plan.groups}}
    total = sum(float(values.sum()) for values in raw.values())
    if not total > 0.0:
        raise InvalidInput(f"the {kind} costs of {plan.model_name}'s units sum to {total}; nothing to weigh")
    count = sum(values.size for values in raw.values())
    return {name: values * (count / total) for name, values in raw.items()}


def _is_weighted(teacher, name: str) -> bool:
    return type(teacher.get_layer(name)).__name__ in ("Conv2D", "DepthwiseConv2D", "Dense")


def weighted_layer_names(teacher, plan: PrunablePlan) -> list[str]:
    """The weighted layers (convolutions, dense) whose cost some gate carries, in the teacher's layer order:
    what the latency cost needs measured."""
    names = {name for b in plan.branches for name in b.layers}
    names |= {name for g in plan.groups for name in (g.producer, g.consumer, *g.chain)}
    return [layer.name for layer in teacher.layers if layer.name in names and _is_weighted(teacher, layer.name)]
