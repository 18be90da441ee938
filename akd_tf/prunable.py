"""Which parts of a teacher can be removed with every tensor shape still valid: its prunable units.

Two kinds, found from the functional graph (:mod:`akd_tf.graph`), never from layer names:

* a **branch**: one input of a two-input ``Add`` (a residual connection) with the layers only it uses.
  Removing it leaves the other input, the identity or projection path. The branch is the input with
  more weighted layers of its own; an ``Add`` whose inputs tie is not gated. Its gate, one number,
  scales the branch's output and is folded into the branch's last layer, which must be a
  ``BatchNormalization`` (with ``scale``), a ``Conv2D``, ``DepthwiseConv2D`` or ``Dense``.
* a **channel group**: the output channels of a ``Conv2D`` (the producer) that pass, through layers
  acting on each channel alone (batch norm, elementwise activations, padding, pooling, depthwise
  convolutions with one filter per channel), to exactly one ``Conv2D`` or ``Dense`` (the consumer) and
  nowhere else. Removing a channel shortens the producer's filters, every layer between and the
  consumer's input. This covers the layers inside a ResNet's residual branch, the expansion of
  MobileNetV2's inverted bottlenecks and the middle of ResNet50's bottlenecks. One gate per channel
  sits just before the consumer and is folded into the consumer's weights.

Supported layers are listed in :data:`SUPPORTED_LAYERS`; a teacher with any other layer is an error
naming it, so nothing is gated on a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from akd_tf.errors import InvalidInput
from akd_tf.graph import LayerGraph

WEIGHTED = ("Conv2D", "DepthwiseConv2D", "Dense")
CHANNELWISE = ("BatchNormalization", "ReLU", "Activation", "LeakyReLU", "ZeroPadding2D", "Dropout",
               "DepthwiseConv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D")
SUPPORTED_LAYERS = frozenset(("InputLayer", "Conv2D", "Dense", "Add", "Flatten", "Softmax", "Rescaling")
                             + CHANNELWISE)
FOLDABLE = ("BatchNormalization", "Conv2D", "DepthwiseConv2D", "Dense")


@dataclass(frozen=True)
class BranchUnit:
    """A residual branch: ``branch_input`` feeds ``add`` beside ``shortcut_input``; ``layers`` are its own."""

    gate: str
    add: str
    branch_input: str
    shortcut_input: str
    layers: tuple[str, ...]
    fold_into: str


@dataclass(frozen=True)
class ChannelGroup:
    """``width`` output channels of ``producer``, through ``chain``, into ``consumer``; ``branch``: the
    gate of the branch holding it, if any."""

    gate: str
    producer: str
    chain: tuple[str, ...]
    consumer: str
    width: int
    branch: str | None


@dataclass(frozen=True)
class PrunablePlan:
    """Every prunable unit of one teacher, in the order of its layers."""

    model_name: str
    branches: tuple[BranchUnit, ...]
    groups: tuple[ChannelGroup, ...]

    @property
    def gate_widths(self) -> dict[str, int]:
        """Gate layer name: how many gates it holds (1 for a branch, the width for a channel group)."""
        return {**{b.gate: 1 for b in self.branches}, **{g.gate: g.width for g in self.groups}}

    @property
    def num_gates(self) -> int:
        return sum(self.gate_widths.values())

    def describe(self) -> str:
        return (f"{self.model_name}: {len(self.branches)} residual branches and {len(self.groups)} channel groups "
                f"({sum(g.width for g in self.groups)} channels), {self.num_gates} gates")


def _check_supported(graph: LayerGraph) -> None:
    for name in graph.order:
        node = graph.node(name)
        if node.class_name not in SUPPORTED_LAYERS:
            raise InvalidInput(f"layer {name!r} ({node.class_name}) cannot be gated: the subgraph strategy supports "
                               f"{', '.join(sorted(SUPPORTED_LAYERS))}")
        if node.class_name == "Activation" and node.config.get("activation") == "softmax" and name != graph.output_name:
            raise InvalidInput(f"layer {name!r} applies softmax inside the network; only the last layer may")
        if node.class_name == "Conv2D" and node.config.get("groups", 1) != 1:
            raise InvalidInput(f"layer {name!r} is a grouped convolution (groups={node.config['groups']}); "
                               "not supported")


def _acts_per_channel(graph: LayerGraph, name: str) -> bool:
    node = graph.node(name)
    if node.class_name == "DepthwiseConv2D":
        return node.config.get("depth_multiplier", 1) == 1
    if node.class_name == "Activation":
        return node.config.get("activation") != "softmax"
    return node.class_name in CHANNELWISE


def _channel_group(graph: LayerGraph, producer: str) -> tuple[tuple[str, ...], str] | None:
    """(chain, consumer) when ``producer``'s channels reach exactly one consumer through per-channel layers."""
    chain, current = [], producer
    while True:
        readers = graph.consumers(current)
        if len(readers) != 1 or current == graph.output_name:
            return None
        reader = readers[0]
        node = graph.node(reader)
        if node.class_name == "Conv2D" or node.class_name == "Dense":
            if node.class_name == "Dense" and not any(graph.node(c).class_name == "GlobalAveragePooling2D"
                                                      for c in chain):
                return None  # a Dense on a 4-D tensor mixes the last axis only; keep it simple: pooled first
            return tuple(chain), reader
        if not _acts_per_channel(graph, reader):
            return None
        chain.append(reader)
        current = reader


def _weighted_count(graph: LayerGraph, names) -> int:
    return sum(graph.node(name).class_name in WEIGHTED for name in names)


def _fold_target(graph: LayerGraph, name: str) -> str | None:
    node = graph.node(name)
    if node.class_name == "BatchNormalization":
        return name if node.config.get("scale", True) else None
    return name if node.class_name in ("Conv2D", "DepthwiseConv2D", "Dense") else None


def _branch(graph: LayerGraph, add: str) -> BranchUnit | None:
    inputs = graph.node(add).inputs
    if len(inputs) != 2 or inputs[0] == inputs[1]:
        return None
    ancestors = [graph.ancestors(source) for source in inputs]
    own = [ancestors[0] - ancestors[1], ancestors[1] - ancestors[0]]
    weighted = [_weighted_count(graph, layers) for layers in own]
    if weighted[0] == weighted[1]:
        return None  # no way to tell the branch from the shortcut
    side = 0 if weighted[0] > weighted[1] else 1
    layers = own[side]
    if any(reader not in layers and reader != add for name in layers for reader in graph.consumers(name)):
        return None  # the branch's layers are used elsewhere too: removing it would not remove them
    fold_into = _fold_target(graph, inputs[side])
    if fold_into is None:
        return None
    order = [name for name in graph.order if name in layers]
    return BranchUnit(f"{add}_gate", add, inputs[side], inputs[1 - side], tuple(order), fold_into)


def find_prunable(model) -> PrunablePlan:
    """The prunable units of a functional ``model`` (see the module docstring); raises :class:`InvalidInput`
    naming the first unsupported layer, or when nothing in the model can be gated."""
    graph = LayerGraph.of_model(model)
    _check_supported(graph)
    branches = [unit for unit in (_branch(graph, name) for name in graph.order
                                  if graph.node(name).class_name == "Add") if unit is not None]
    groups = []
    for name in graph.order:
        node = graph.node(name)
        if node.class_name != "Conv2D":
            continue
        found = _channel_group(graph, name)
        if found is None:
            continue
        chain, consumer = found
        members = {name, *chain, consumer}
        holder = next((b.gate for b in branches if members <= set(b.layers)), None)
        groups.append(ChannelGroup(f"{consumer}_in_gate", name, chain, consumer, int(node.config["filters"]), holder))
    if not branches and not groups:
        raise InvalidInput(f"model {model.name!r} has no prunable unit: no residual branch and no convolution whose "
                           "channels reach a single next convolution")
    return PrunablePlan(model.name, tuple(branches), tuple(groups))
