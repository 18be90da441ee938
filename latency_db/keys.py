"""Every latency-table operator that an architecture of a space can contain.

Derived from the search-space data through the core's one walk
(:func:`akd_tf.walk.walk_stages`, the walk the plan and the Keras builder
use), never from a parallel table: every choice of every block, fed with every
shape that can reach the block, and the operator of each layer collected.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence

from akd_tf.operators import Operator
from akd_tf.space import BlockChoice, SearchSpace
from akd_tf.walk import BlockStage, block_stage, check_input_shape, check_num_classes, walk_stages


def enumerate_operators(space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> list[Operator]:
    """One operator per distinct key, in network order (stem, block 1 .. N, head), for this shape and class count."""
    shape = check_input_shape(space, input_shape)
    classes = check_num_classes(num_classes)
    blocks = [_every_choice(space, b) for b in range(1, space.num_blocks + 1)]
    found: dict[str, Operator] = {}
    for stage in walk_stages(space, shape, classes, blocks, block_stage):
        for op in (stage.layers if isinstance(stage, BlockStage) else (stage,)):
            found.setdefault(op.key, op)
    return list(found.values())


def _every_choice(space: SearchSpace, block: int) -> Iterator[BlockChoice]:
    """Every resolved choice of the 1-based ``block``, in token order."""
    for tokens in itertools.product(*(range(d.size) for d in space.block_decisions(block))):
        yield space.block_choice(block, tokens)
