"""The closed list of spellings a layer's ``function`` field may take (torch-free: read at spec load).

A spec is data: its ``function`` says how the model computes a layer (``F.relu``, ``x.softmax(1)``) so that a peer
convention counts the call as that tool counts it, and so that the model built from the spec (``verify``) makes the
same call.  Nothing is imported or looked up by the text of a spec: a spelling outside :data:`FUNCTIONS` is refused
when the spec is read (file, layer, field; exit 2), and :mod:`archcalc.torch.build` maps an allowed spelling to the
torch callable through its own table of owners (:data:`OWNERS`), never by importing what the spec names.

The list is every function archcalc import can write (the names of its handlers of calls that make layers, as
``archcalc.torch.importer.spelled`` writes them; ``tests/test_functions.py`` keeps the two equal) and every function a
convention knows (``archcalc.conventions.PTFLOPS_FUNCTIONS``).
"""

from __future__ import annotations

_BY_OWNER: dict[str, str] = {
    # torch.nn.functional
    "F": "adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d "
    "adaptive_max_pool3d avg_pool1d avg_pool2d avg_pool3d batch_norm channel_shuffle conv1d conv2d conv3d dropout "
    "dropout_ elu gelu gelu_ group_norm hardsigmoid hardsigmoid_ hardswish hardswish_ interpolate layer_norm leaky_relu "
    "leaky_relu_ linear max_pool1d max_pool2d max_pool3d pad prelu relu relu6 relu6_ relu_ scaled_dot_product_attention "
    "sigmoid sigmoid_ silu silu_ softmax softmax_ tanh tanh_ upsample",
    # methods of torch.Tensor (x.relu(), a + b as x.__add__(b))
    "Tensor": "__add__ __iadd__ __matmul__ __mul__ __radd__ __rmul__ __rsub__ __rtruediv__ add add_ bmm chunk div div_ "
    "dropout dropout_ expand expand_as flatten gelu gelu_ hardsigmoid hardsigmoid_ hardswish hardswish_ leaky_relu "
    "leaky_relu_ masked_fill matmul mean mul mul_ permute relu relu6 relu6_ relu_ reshape roll sigmoid sigmoid_ silu "
    "silu_ softmax softmax_ split squeeze sub sub_ swapaxes swapdims tanh tanh_ transpose unbind unsqueeze view",
    "torch": "adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool2d add avg_pool1d avg_pool2d "
    "avg_pool3d bmm cat channel_shuffle chunk concat concatenate conv1d conv2d conv3d div dropout dropout_ einsum "
    "flatten gelu gelu_ hardsigmoid hardsigmoid_ hardswish hardswish_ leaky_relu leaky_relu_ masked_fill matmul "
    "max_pool1d max_pool2d max_pool3d mean mul native_channel_shuffle permute relu relu6 relu6_ relu_ reshape roll "
    "sigmoid sigmoid_ silu silu_ softmax softmax_ split squeeze stack sub swapaxes swapdims tanh tanh_ transpose unbind "
    "unsqueeze",
    # a + b, a @ b, x[i] as user code writes them
    "operator": "add floordiv getitem iadd imul isub itruediv matmul mod mul pow sub truediv",
    # archcalc's own idiom functions (a traced pattern replaced by one call)
    "archcalc.torch.idioms": "rotary_embedding",
    # torchvision's functions that import reads as layers
    "torchvision.models.swin_transformer": "_patch_merging_pad",
    "torchvision.ops.stochastic_depth": "stochastic_depth",
}

FUNCTIONS: frozenset[str] = frozenset(f"{owner}.{attr}" for owner, attrs in _BY_OWNER.items() for attr in attrs.split())
"""Every spelling a layer's ``function`` may take."""

OWNERS: frozenset[str] = frozenset(_BY_OWNER)
"""The owners of those functions (``F``, ``Tensor``, ``torch``, ...): the module builder holds one object for each."""


def split(function: str) -> tuple[str, str]:
    """(owner, attribute) of an allowed spelling: ``"F.relu"`` is ``("F", "relu")``."""
    owner, _, attr = function.rpartition(".")
    return owner, attr


def check_function(function: str) -> str:
    """``function`` if it is an allowed spelling, else ValueError saying what is allowed (pydantic reports it)."""
    if function not in FUNCTIONS:
        raise ValueError(
            f"{function!r} is not a function archcalc knows: a spec's function is one of the calls archcalc import "
            "writes (F.relu, torch.relu, Tensor.relu, torch.add, operator.add, ...; see archcalc/functions.py), never "
            "imported by name"
        )
    return function


__all__ = ["FUNCTIONS", "OWNERS", "check_function", "split"]
