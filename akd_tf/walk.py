"""The one walk over a network: which operators it has, in order, at which shapes.

The plan (parameters, MACs), the Keras builder, the latency table's keys and
the latency predictor all derive from this walk; nothing else decides which
layers an architecture has. Its rules, read off the space's data:

* the stem (``space.stem_filters``) takes the input image and feeds block 1;
* block b has ``layers`` layers (0 removes it: it hands its input on); the
  first carries the block's stride and channel change, the others have
  stride 1 and keep the channels;
* a layer has an identity residual only with skip ``id``, stride 1 and equal
  input and output channels;
* the head (``space.head_filters``, then ``num_classes`` logits) takes the
  last block's output.

:func:`walk` gives the operators of one architecture. :func:`walk_stages` is
the same walk over a set of networks at once (every network whose block b
takes one of a given set of options); one architecture is the case of one
option per block, and the latency table's key set the case of every choice of
every block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol, Sequence, TypeVar

from akd_tf.errors import InvalidInput
from akd_tf.operators import HeadPlan, LayerPlan, Operator, Shape, StemPlan
from akd_tf.space import Arch, BlockChoice, SearchSpace


def check_input_shape(space: SearchSpace, input_shape: Sequence[int]) -> Shape:
    """Validate an (H, W, C) input shape against the space's resolution range."""
    if len(input_shape) != 3:
        raise InvalidInput(f"input_shape must be (height, width, channels), got {tuple(input_shape)!r}")
    h, w, c = input_shape
    space.check_resolution(h)
    space.check_resolution(w)
    if isinstance(c, bool) or not isinstance(c, int) or c < 1:
        raise InvalidInput(f"input channels must be a positive int, got {c!r}")
    return (int(h), int(w), int(c))


def check_num_classes(num_classes: int) -> int:
    """``num_classes`` if it is an int >= 2, else ``ValueError`` naming the value."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise InvalidInput(f"num_classes must be an int >= 2, got {num_classes!r}")
    return num_classes


@dataclass(frozen=True)
class BlockStage:
    """The layers of one block fed with ``input_shape`` (none for a removed block)."""

    input_shape: Shape
    layers: tuple[LayerPlan, ...]

    @property
    def output_shape(self) -> Shape:
        """The shape the block hands on: its last layer's output, or its input when it has no layers."""
        return self.layers[-1].output_shape if self.layers else self.input_shape


def block_stage(choice: BlockChoice, input_shape: Shape) -> BlockStage:
    """The layers of one block fed with ``input_shape``: stride and channel change on the first layer only."""
    layers, current = [], input_shape
    for i in range(1, choice.layers + 1):
        stride = choice.stride if i == 1 else 1
        layer = LayerPlan(
            block=choice.index, layer=i, conv_op=choice.conv_op, kernel=choice.kernel, stride=stride,
            se_ratio=choice.se_ratio, input_shape=current, out_channels=choice.filters,
            residual=choice.skip_op == "id" and stride == 1 and current[2] == choice.filters)
        layers.append(layer)
        current = layer.output_shape
    return BlockStage(input_shape, tuple(layers))


class HandsOnShape(Protocol):
    """What a block step returns: anything that knows the shape it hands to the next block."""

    @property
    def output_shape(self) -> Shape: ...


BlockOption = TypeVar("BlockOption")
Stage = TypeVar("Stage", bound=HandsOnShape)


def walk_stages(space: SearchSpace, input_shape: Shape, num_classes: int,
                blocks: Sequence[Iterable[BlockOption]],
                step: Callable[[BlockOption, Shape], Stage]) -> Iterator[StemPlan | Stage | HeadPlan]:
    """The stages of every network whose block b takes one of ``blocks[b - 1]``, in network order.

    Yields the stem; then for block 1 .. N, for each option of the block (in the
    order given), for each distinct shape that reaches the block (ascending),
    ``step(option, shape)``; then one head per distinct shape leaving the last
    block (ascending). ``step`` turns an option and the shape reaching its
    block into a stage that knows its ``output_shape``: :func:`block_stage` for
    a :class:`BlockChoice`, or a caller's memoized step built on it (the
    latency predictor's). ``input_shape`` and ``num_classes`` must have passed
    :func:`check_input_shape` and :func:`check_num_classes`.
    """
    if len(blocks) != space.num_blocks:
        raise InvalidInput(f"space {space.name!r}: expected options for {space.num_blocks} blocks, got {len(blocks)}")
    stem = StemPlan(input_shape, space.stem_filters)
    yield stem
    incoming = [stem.output_shape]
    for options in blocks:
        outgoing = set()
        for option in options:
            for shape in incoming:
                stage = step(option, shape)
                yield stage
                outgoing.add(stage.output_shape)
        incoming = sorted(outgoing)
    for shape in incoming:
        yield HeadPlan(shape, space.head_filters, num_classes)


def walk(arch: Arch, input_shape: Sequence[int], num_classes: int) -> Iterator[Operator]:
    """The operators of ``arch`` in network order: the stem, every layer of block 1 .. N, the head.

    ``ValueError`` (raised here, not on the first item) for an input shape
    outside the space's resolution range or fewer than 2 classes.
    """
    shape = check_input_shape(arch.space, input_shape)
    classes = check_num_classes(num_classes)
    return _operators(walk_stages(arch.space, shape, classes, [(choice,) for choice in arch.blocks], block_stage))


def _operators(stages: Iterable[StemPlan | BlockStage | HeadPlan]) -> Iterator[Operator]:
    for stage in stages:
        if isinstance(stage, BlockStage):
            yield from stage.layers
        else:
            yield stage
