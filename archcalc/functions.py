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

_COMPUTES: dict[str, str] = {
    # the layer type a call of each function is (archcalc import records it so: the handlers' ``records``,
    # archcalc.torch.registry.RECORDS; tests/test_check_s9.py keeps the two equal), F.x, torch.x and Tensor.x alike
    "adaptiveavgpool1d": "F.adaptive_avg_pool1d torch.adaptive_avg_pool1d",
    "adaptiveavgpool2d": "F.adaptive_avg_pool2d torch.adaptive_avg_pool2d",
    "adaptiveavgpool3d": "F.adaptive_avg_pool3d torch.adaptive_avg_pool3d",
    "adaptivemaxpool2d": "F.adaptive_max_pool2d torch.adaptive_max_pool2d",
    "avgpool1d": "F.avg_pool1d torch.avg_pool1d",
    "avgpool2d": "F.avg_pool2d torch.avg_pool2d",
    "avgpool3d": "F.avg_pool3d torch.avg_pool3d",
    "batchnorm{n}d": "F.batch_norm",
    "causal_mask": "Tensor.masked_fill torch.masked_fill",
    "conv1d": "F.conv1d torch.conv1d",
    "conv2d": "F.conv2d torch.conv2d",
    "conv3d": "F.conv3d torch.conv3d",
    "dropout": "F.dropout F.dropout_ Tensor.dropout Tensor.dropout_ torch.dropout torch.dropout_",
    "gelu": "F.gelu F.gelu_ Tensor.gelu Tensor.gelu_ torch.gelu torch.gelu_",
    "groupnorm": "F.group_norm",
    "hardsigmoid": "F.hardsigmoid F.hardsigmoid_ Tensor.hardsigmoid Tensor.hardsigmoid_ torch.hardsigmoid torch.hardsigmoid_",
    "hardswish": "F.hardswish F.hardswish_ Tensor.hardswish Tensor.hardswish_ torch.hardswish torch.hardswish_",
    "layernorm": "F.layer_norm",
    "leakyrelu": "F.leaky_relu F.leaky_relu_ Tensor.leaky_relu Tensor.leaky_relu_ torch.leaky_relu torch.leaky_relu_",
    "linear": "F.linear",
    "matmul": "Tensor.__matmul__ Tensor.bmm Tensor.matmul operator.matmul torch.bmm torch.matmul",
    "maxpool1d": "F.max_pool1d torch.max_pool1d",
    "maxpool2d": "F.max_pool2d torch.max_pool2d",
    "maxpool3d": "F.max_pool3d torch.max_pool3d",
    "relu": "F.relu F.relu_ Tensor.relu Tensor.relu_ torch.relu torch.relu_",
    "relu6": "F.relu6 F.relu6_ Tensor.relu6 Tensor.relu6_ torch.relu6 torch.relu6_",
    "scaled_dot_product_attention": "F.scaled_dot_product_attention",
    "sigmoid": "F.sigmoid F.sigmoid_ Tensor.sigmoid Tensor.sigmoid_ torch.sigmoid torch.sigmoid_",
    "silu": "F.silu F.silu_ Tensor.silu Tensor.silu_ torch.silu torch.silu_",
    "softmax": "F.softmax F.softmax_ Tensor.softmax Tensor.softmax_ torch.softmax torch.softmax_",
    "tanh": "F.tanh F.tanh_ Tensor.tanh Tensor.tanh_ torch.tanh torch.tanh_",
    "upsample": "F.interpolate",
}

COMPUTES: dict[str, str] = {f: kind for kind, names in _COMPUTES.items() for f in names.split()}
"""Function -> the layer type a call of it is (``"batchnorm{n}d"``: any rank)."""

# a + b, a * b, ...: import makes a layer of that operation of two tensors, a ``scalar`` layer of a tensor and a
# number, and of ``gamma * x`` with a learned gamma per channel a ``layerscale`` (archcalc.torch.ops.elementwise)
_ARITHMETIC = {"add": ("add", "iadd", "__add__", "__iadd__", "__radd__", "add_"), "mul": ("mul", "imul", "__mul__", "__rmul__", "mul_"),
               "sub": ("sub", "isub", "__rsub__", "sub_"), "div": ("div", "truediv", "itruediv", "__rtruediv__", "div_")}
_ARITHMETIC_KINDS = {op: (op, "scalar", "layerscale") if op == "mul" else (op, "scalar") for op in _ARITHMETIC}


def function_kind_error(function: str, kind: str) -> str | None:
    """Why a layer of type ``kind`` cannot be computed by ``function`` (a conv2d "called as" F.relu, which a
    convention would then count as a relu: review s9 #5), or None.  Functions that make no one type of layer
    (reshape, cat, F.pad, ...) are not checked."""
    owner, attr = split(function)
    computes = COMPUTES.get(function)
    if computes is not None:
        ok = kind in {computes.replace("{n}", n) for n in "123"}
        return None if ok else f"{function} computes a {computes.replace('{n}', 'N')} layer, not a {kind}"
    if owner in ("operator", "Tensor", "torch"):
        for op, spellings in _ARITHMETIC.items():
            if attr in spellings:
                kinds = _ARITHMETIC_KINDS[op]
                return None if kind in kinds else f"{function} computes {' or '.join(repr(k) for k in kinds)} layers, not a {kind}"
    return None


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


__all__ = ["COMPUTES", "FUNCTIONS", "OWNERS", "check_function", "function_kind_error", "split"]
