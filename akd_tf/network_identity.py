"""Networks that are not architectures of a search space, as the latency database names them.

A student carved out of a teacher (:mod:`akd_tf.extraction`) or one layer of a teacher measured alone
(:mod:`akd_tf.layer_models`) has no architecture string; :class:`NamedNetwork` gives it what a model row
needs instead: a space-like family name, a key unique within it, and its size. Two networks with the same
structure share their key, so a structure measured once is not measured again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from akd_tf.errors import InvalidInput

CARVED_SPACE = "carved"  # students carved out of a teacher
TEACHER_LAYER_SPACE = "teacher-layer"  # one layer of a teacher, measured alone for the latency cost


@dataclass(frozen=True)
class NamedNetwork:
    """``space_name``: the family; ``key``: unique within it (at most 1,024 characters); MACs and parameters."""

    space_name: str
    key: str
    macs: int
    params: int

    def __post_init__(self) -> None:
        if not self.key or len(self.key) > 1024:
            raise InvalidInput(f"a network key must be 1-1024 characters, got {len(self.key)}")

    def to_string(self) -> str:
        return self.key

    @property
    def version(self) -> str:
        """No version: the key names the network itself (a structure digest), whatever defined it."""
        return ""


def structure_digest(structure) -> str:
    """16 hex digits of SHA-256 over ``structure`` as canonical JSON (arrays as lists): a short, stable name."""
    text = json.dumps(structure, sort_keys=True, separators=(",", ":"),
                      default=lambda value: value.tolist() if hasattr(value, "tolist") else str(value))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def keras_macs(model) -> int:
    """Multiply-accumulates of one example through ``model``'s Conv2D, DepthwiseConv2D and Dense layers."""
    from akd_tf.unit_costs import layer_macs

    return int(sum(layer_macs(layer) for layer in model.layers))
