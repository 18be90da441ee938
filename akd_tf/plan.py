"""Layer-by-layer plan of an architecture at a given input shape and class count.

The plan collects the operators :func:`akd_tf.walk.walk` gives for an
architecture (stem, every searched layer, head) and totals their parameters
and multiply-adds (MACs), per block and for the network; the Keras builder
builds it. The conventions of the counts are in :mod:`akd_tf.operators`, the
rules of the walk in :mod:`akd_tf.walk`. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from akd_tf.operators import HeadPlan, LayerPlan, Operator, Shape, StemPlan
from akd_tf.space import Arch
from akd_tf.walk import walk


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
    def operators(self) -> tuple[Operator, ...]:
        """Stem, every layer, head: the operators the latency table prices, in network order."""
        return (self.stem, *self.layers, self.head)

    def block_layers(self, block: int) -> tuple[LayerPlan, ...]:
        return tuple(layer for layer in self.layers if layer.block == block)

    def block_params(self, block: int) -> int:
        return sum(layer.params for layer in self.block_layers(block))

    def block_macs(self, block: int) -> int:
        return sum(layer.macs for layer in self.block_layers(block))


def plan_network(arch: Arch, input_shape: Sequence[int], num_classes: int) -> NetworkPlan:
    """The operators of ``arch`` (:func:`akd_tf.walk.walk`) at ``input_shape`` with ``num_classes`` outputs.

    ``ValueError`` for an input shape outside the space's resolution range or
    fewer than 2 classes.
    """
    stem, *layers, head = walk(arch, input_shape, num_classes)
    return NetworkPlan(arch, stem.input_shape, num_classes, stem, tuple(layers), head)


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
