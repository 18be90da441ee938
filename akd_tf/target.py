"""What a latency is for, besides the architecture: the input, the classes and the quantization.

The one list of quantization modes lives here; the exporter, the latency table, the search's
settings and the CLI's ``--quantize`` choices all derive from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from akd_tf.errors import InvalidInput

# Bytes per parameter as the .tflite stores weights, per mode. none: float32; fp16: float16 weights;
# int8: full-integer post-training quantization.
WEIGHT_BYTES = {"none": 4, "fp16": 2, "int8": 1}
QUANTIZATIONS = tuple(WEIGHT_BYTES)


def check_quantization(quantization: str, name: str = "quantization") -> str:
    """``quantization`` if it is one of :data:`QUANTIZATIONS`, else ``ValueError`` naming the value."""
    if quantization not in QUANTIZATIONS:
        raise InvalidInput(f"{name} must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    return quantization


@dataclass(frozen=True)
class ModelTarget:
    """What a latency is for, besides the architecture: input, classes and quantization."""

    resolution: int
    classes: int
    channels: int = 3
    quantization: str = "none"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.resolution, self.resolution, self.channels)


# What a latency is for when nothing says otherwise: ImageNet-sized RGB inputs, 1000 classes, float32.
DEFAULT_TARGET = ModelTarget(resolution=224, classes=1000, channels=3, quantization="none")


# Bytes per activation element at run time: full-integer models compute in int8; float16 weights are
# dequantized to float32 when the model loads, so those models compute in float32 like unquantized ones.
ACTIVATION_BYTES = {"none": 4, "fp16": 4, "int8": 1}
