"""Which architectures are the same network: each architecture's canonical form, and how many networks a
space holds.

Many token lists build the same network: the decisions of a block with 0 layers build nothing, a skip op
decides nothing where no residual can exist (every layer of the block changes the stride or the
channels), and two width multipliers that round to the same channel count build the same layers. Rather
than list such cases, this module asks the walk (:mod:`akd_tf.walk`), which decides every layer the
plan, the Keras builder and the latency table's keys have: two architectures are **the same network**
when the walk gives them the same operators. Then their plans, Keras models (layer configs and weight
shapes), TFLite files and latency-table keys are the same too, since all of them derive from the walk.

The **canonical form** of an architecture is the architecture, among those that are the same network,
with the least tokens; block by block, that is the least token tuple of the block that gives the same
layers from the same input (a removed block's tokens are all 0 but its layer count, a useless skip op is
``noskip``). Its canonical string (:meth:`akd_tf.space.Arch.to_string`) names the network.

The walk's operators do not depend on the input's height and width in a way that could merge or split
two block choices: two choices fed the same input give layers that differ in a setting (operator,
kernel, stride, SE ratio, channels, residual) at any resolution, or in none. So everything here is
computed once per space at its smallest input (:func:`reference_input`).

Two conv ops of one space that would build the same layers under different names (an ``mbconv`` with
expansion 1 beside ``dwconv``), or two SE ratios that round to the same bottleneck, would count as
different networks here, as they are different keys in the latency table; no registered space has either.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from akd_tf.operators import LayerPlan, Shape
from akd_tf.space import Arch, SearchSpace
from akd_tf.walk import block_stage, walk_stages

REFERENCE_CHANNELS = 3
REFERENCE_CLASSES = 2


def reference_input(space: SearchSpace) -> Shape:
    """The input every canonical form is computed at: the space's smallest images (any input gives the same)."""
    return (space.min_resolution, space.min_resolution, REFERENCE_CHANNELS)


@dataclass(frozen=True)
class BlockNetwork:
    """One distinct stage of a block fed a given input: its least tokens and the shape it hands on."""

    tokens: tuple[int, ...]
    output_shape: Shape


@lru_cache(maxsize=4096)
def block_networks(space: SearchSpace, block: int, input_shape: Shape) -> dict[tuple[LayerPlan, ...], BlockNetwork]:
    """Every distinct stage of the 1-based ``block`` fed ``input_shape`` (its layers), with the least token
    tuple of the block that builds it; in token order of those least tuples."""
    found: dict[tuple[LayerPlan, ...], BlockNetwork] = {}
    for tokens in itertools.product(*(range(d.size) for d in space.block_decisions(block))):
        stage = block_stage(space.block_choice(block, tokens), input_shape)
        found.setdefault(stage.layers, BlockNetwork(tokens, stage.output_shape))
    return found


def _token_slices(space: SearchSpace) -> list[tuple[int, slice]]:
    slices, offset = [], 0
    for b in range(1, space.num_blocks + 1):
        width = len(space.block_decisions(b))
        slices.append((b, slice(offset, offset + width)))
        offset += width
    return slices


def canonical_arch(arch: Arch) -> Arch:
    """The canonical form of ``arch``: the architecture with the least tokens among those that are the same
    network (module docstring). ``canonical_arch(a) == canonical_arch(b)`` exactly when ``a`` and ``b``
    build the same network; the canonical form of a canonical form is itself."""
    space = arch.space

    def canonical_block(option: tuple[int, tuple[int, ...]], shape: Shape) -> BlockNetwork:
        block, tokens = option
        stage = block_stage(space.block_choice(block, tokens), shape)
        return block_networks(space, block, shape)[stage.layers]

    blocks = [((b, arch.tokens[tokens]),) for b, tokens in _token_slices(space)]
    stages = walk_stages(space, reference_input(space), REFERENCE_CLASSES, blocks, canonical_block)
    tokens = tuple(t for stage in stages if isinstance(stage, BlockNetwork) for t in stage.tokens)
    return space.from_tokens(tokens)


def network_key(arch: Arch) -> str:
    """The canonical string of ``arch``'s canonical form: equal for two architectures exactly when they are
    the same network (what a search stores to find a network it evaluated before)."""
    return canonical_arch(arch).to_string()


def count_networks(space: SearchSpace) -> int:
    """The exact number of distinct networks in ``space`` (at most :attr:`SearchSpace.size`).

    Counted block by block, given the input each block can receive: the number of distinct networks
    whose block ``b`` hands on shape ``s`` is the sum, over the shapes ``s'`` reaching block ``b`` and
    the distinct stages of block ``b`` fed ``s'`` that hand on ``s``, of the networks reaching ``s'``.
    Distinct stages of one block from one input are distinct networks whatever follows, so the sum is
    exact, not an estimate.
    """
    stem = next(walk_stages(space, reference_input(space), REFERENCE_CLASSES, [()] * space.num_blocks,
                            block_stage))  # the walk's first stage: the stem, which feeds block 1
    reaching: Counter[Shape] = Counter({stem.output_shape: 1})
    for block in range(1, space.num_blocks + 1):
        handed_on: Counter[Shape] = Counter()
        for shape, networks in reaching.items():
            for network in block_networks(space, block, shape).values():
                handed_on[network.output_shape] += networks
        reaching = handed_on
    return sum(reaching.values())
