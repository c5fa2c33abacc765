"""Analysis passes: plain functions of the compiled graph, each writing one kind of result.

Each walks ``G.graph["order"]`` (computed once at compile time) and stores node attributes.
A pass never looks at the layer type: it calls the layer's formula methods.
"""

from .compute import compute
from .memory import memory
from .params import params
from .receptive import AxisRF, receptive_field
from .saved import SavedTensor, saved_tensors
from .shapes import shapes

__all__ = ["AxisRF", "SavedTensor", "compute", "memory", "params", "receptive_field", "saved_tensors", "shapes"]
