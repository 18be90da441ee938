"""Every latency-table operator that an architecture of a space can contain.

Derived from the search-space data through the same planning code the Keras
builder uses (:func:`akd_tf.plan.plan_block`), never from a parallel table:
walk the blocks in order, feed each possible input shape through every
combination of the block's decisions, and collect the operator of each layer.
"""

from __future__ import annotations

import itertools
from typing import Sequence

from akd_tf.plan import HeadPlan, LayerPlan, StemPlan, check_input_shape, plan_block
from akd_tf.space import SearchSpace

Operator = StemPlan | LayerPlan | HeadPlan


def enumerate_operators(space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> list[Operator]:
    """One operator per distinct key, in network order (stem, block 1 .. N, head), for this shape and class count."""
    shape = check_input_shape(space, input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    stem = StemPlan(shape, space.stem_filters)
    found: dict[str, Operator] = {stem.key: stem}
    incoming = {stem.output_shape}
    for b in range(1, space.num_blocks + 1):
        outgoing = set()
        for tokens in itertools.product(*(range(d.size) for d in space.block_decisions(b))):
            choice = space.block_choice(b, tokens)
            for current in sorted(incoming):
                layers = plan_block(choice, current)
                for layer in layers:
                    found.setdefault(layer.key, layer)
                outgoing.add(layers[-1].output_shape if layers else current)
        incoming = outgoing
    for current in sorted(incoming):
        head = HeadPlan(current, space.head_filters, num_classes)
        found.setdefault(head.key, head)
    return list(found.values())
