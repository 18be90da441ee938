"""The one place that picks the TFLite interpreter.

Preference order: ``ai-edge-litert`` (the maintained successor of
tflite-runtime, works with numpy 2, XNNPACK for fp32 and int8), then
``tflite-runtime`` (last release 2.14), then ``tf.lite`` from TensorFlow.
``AKD_TF_INTERPRETER`` (one of the names in :data:`INTERPRETERS`) forces one.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import akd_tf.tf_env  # noqa: F401  (the tf.lite fallback imports TensorFlow)
from akd_tf.errors import InvalidInput, MissingData

# (name shown to users and in records, distribution for the version, module, attribute)
INTERPRETERS = (
    ("ai-edge-litert", "ai-edge-litert", "ai_edge_litert.interpreter", "Interpreter"),
    ("tflite-runtime", "tflite-runtime", "tflite_runtime.interpreter", "Interpreter"),
    ("tensorflow", "tensorflow", "tensorflow.lite.python.interpreter", "Interpreter"),
)
TFLITE_FILE_IDENTIFIER = b"TFL3"


@dataclass(frozen=True)
class InterpreterInfo:
    name: str
    version: str
    interpreter_class: type

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


def _load(name: str, dist: str, module: str, attr: str) -> InterpreterInfo:
    cls = getattr(importlib.import_module(module), attr)
    return InterpreterInfo(name, importlib.metadata.version(dist), cls)


@lru_cache(maxsize=None)
def load_interpreter(preferred: str | None = None) -> InterpreterInfo:
    """The first interpreter that imports, or ``preferred`` (or ``$AKD_TF_INTERPRETER``) exactly."""
    preferred = preferred or os.environ.get("AKD_TF_INTERPRETER") or None
    known = [entry[0] for entry in INTERPRETERS]
    if preferred is not None:
        if preferred not in known:
            raise InvalidInput(f"unknown TFLite interpreter {preferred!r}; expected one of {', '.join(known)}")
        entry = INTERPRETERS[known.index(preferred)]
        try:
            return _load(*entry)
        except ImportError as exc:  # numpy-2 incompatible tflite-runtime raises ImportError too
            raise InvalidInput(f"TFLite interpreter {preferred!r} cannot be imported: {exc}") from exc
    errors = []
    for entry in INTERPRETERS:
        try:
            return _load(*entry)
        except ImportError as exc:
            errors.append(f"{entry[0]}: {exc}")
    raise InvalidInput("no TFLite interpreter can be imported (" + "; ".join(errors) + ")")


def check_tflite_file(path: str | os.PathLike) -> Path:
    """Raise ``ValueError`` unless ``path`` is a readable TFLite flatbuffer."""
    path = Path(path)
    if not path.is_file():
        raise MissingData(f"{path}: no such model file")
    with path.open("rb") as fh:
        header = fh.read(8)
    if len(header) < 8 or header[4:8] != TFLITE_FILE_IDENTIFIER:
        raise InvalidInput(f"{path}: not a TFLite model (expected the file identifier "
                           f"{TFLITE_FILE_IDENTIFIER.decode()} at byte 4, got {header[4:8]!r})")
    return path


def make_interpreter(model: str | os.PathLike | bytes, num_threads: int = 1):
    """An interpreter with tensors allocated for a model file or flatbuffer bytes."""
    info = load_interpreter()
    if isinstance(model, (bytes, bytearray)):
        kwargs = {"model_content": bytes(model)}
    else:
        kwargs = {"model_path": str(check_tflite_file(model))}
    try:
        interpreter = info.interpreter_class(num_threads=num_threads, **kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        source = kwargs.get("model_path", "model bytes")
        raise InvalidInput(f"{source}: the TFLite interpreter rejected the model: {exc}") from exc
    return interpreter
