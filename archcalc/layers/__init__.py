"""All layer types, one class each, gathered into the spec's discriminated union."""


from . import (
    activation,
    attention,
    conv,
    convtranspose,
    elementwise,
    learned,
    linear,
    merge,
    norm,
    pool,
    rearrange,
    reduce,
    reshape,
    sequence,
    shortcut,
    upsample,
    window,
)
from .base import OP_CATEGORIES, Layer, Shape, Window

LAYER_TYPES: list[type[Layer]] = [
    *conv.LAYERS,
    *pool.LAYERS,
    *linear.LAYERS,
    *norm.LAYERS,
    *activation.LAYERS,
    *merge.LAYERS,
    *shortcut.LAYERS,
    *convtranspose.LAYERS,
    *upsample.LAYERS,
    *rearrange.LAYERS,
    *elementwise.LAYERS,
    *reshape.LAYERS,
    *attention.LAYERS,
    *learned.LAYERS,
    *reduce.LAYERS,
    *window.LAYERS,
    *sequence.LAYERS,
]
TYPE_NAMES: dict[str, type[Layer]] = {cls.model_fields["type"].annotation.__args__[0]: cls for cls in LAYER_TYPES}  # type: ignore[union-attr]

__all__ = ["LAYER_TYPES", "OP_CATEGORIES", "TYPE_NAMES", "Layer", "Shape", "Window"]
