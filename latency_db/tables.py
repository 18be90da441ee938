"""A device's latency tables: which input shapes, class counts and quantizations its entries are for.

Table entries are keyed by operator (:mod:`latency_db.keys`): the stem's key names the input
(``stem-input:32x32x3-...``) and the head's the classes (``head-...-classes:10``), per quantization.
:func:`resolve_target` fills what a user left out from the device's only table, so a table built at
32x32 with 10 classes is queried, calibrated and measured there without retyping the shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import or_, select

from akd_tf.errors import InvalidInput
from akd_tf.target import DEFAULT_TARGET, ModelTarget
from latency_db.devices import get_device
from latency_db.schema import LutEntry
from latency_db.store import Store

_STEM = re.compile(r"^stem-input:(\d+)x(\d+)x(\d+)-")
_HEAD = re.compile(r"-classes:(\d+)$")


@dataclass(frozen=True)
class TableShapes:
    """The input sides, channels and class counts of a device's entries in one quantization."""

    quantization: str
    inputs: tuple[tuple[int, int], ...]  # (resolution, channels) of each stem entry
    classes: tuple[int, ...]

    def describe(self) -> str:
        inputs = " or ".join(f"{r}x{r}x{c}" for r, c in self.inputs) or "no stem"
        classes = " or ".join(map(str, self.classes)) or "no head"
        return f"{inputs} with {classes} classes ({self.quantization})"


def device_tables(store: Store, device_name: str) -> list[TableShapes]:
    """The shapes the device's table entries are for, one record per quantization, sorted."""
    with store.session() as session:
        device_id = get_device(session, device_name).id
        rows = session.execute(select(LutEntry.key, LutEntry.quantization).where(
            LutEntry.device_id == device_id,
            or_(LutEntry.key.like("stem-%"), LutEntry.key.like("head-%")))).all()
    inputs: dict[str, set[tuple[int, int]]] = {}
    classes: dict[str, set[int]] = {}
    for key, quantization in rows:
        inputs.setdefault(quantization, set())
        classes.setdefault(quantization, set())
        stem, head = _STEM.match(key), _HEAD.search(key)
        if stem and stem.group(1) == stem.group(2):
            inputs[quantization].add((int(stem.group(1)), int(stem.group(3))))
        elif head and key.startswith("head-"):
            classes[quantization].add(int(head.group(1)))
    return [TableShapes(q, tuple(sorted(inputs[q])), tuple(sorted(classes[q]))) for q in sorted(inputs)]


def resolve_target(store: Store, device_name: str, *, resolution: int | None = None, channels: int | None = None,
                   classes: int | None = None, quantization: str | None = None) -> ModelTarget:
    """The target a command works at: what was given, the rest from the device's only table matching it
    (:data:`akd_tf.target.DEFAULT_TARGET`'s values when the device has no table). Several tables that fit is an
    ``InvalidInput`` listing them and the options that choose one."""
    given = {"resolution": resolution, "channels": channels, "classes": classes, "quantization": quantization}
    if all(value is not None for value in given.values()):
        return ModelTarget(**given)
    tables = device_tables(store, device_name)
    fitting = [t for t in tables if (quantization is None or t.quantization == quantization)]
    inputs = {i for t in fitting for i in t.inputs
              if (resolution is None or i[0] == resolution) and (channels is None or i[1] == channels)}
    class_counts = {c for t in fitting for c in t.classes if classes is None or c == classes}
    if not tables or not fitting or not inputs or not class_counts:
        return ModelTarget(**{name: value if value is not None else getattr(DEFAULT_TARGET, name)
                              for name, value in given.items()})
    quantizations = {t.quantization for t in fitting if set(t.inputs) & inputs}
    if len(inputs) > 1 or len(class_counts) > 1 or len(quantizations) > 1:
        listed = "; ".join(t.describe() for t in fitting)
        raise InvalidInput(f"device {device_name!r} has latency tables for {listed}: choose one with "
                           f"--resolution, --channels, --classes and --quantize")
    (table_resolution, table_channels), = inputs
    return ModelTarget(resolution=table_resolution, channels=table_channels, classes=class_counts.pop(),
                       quantization=quantizations.pop())
