"""Quick stacks: ask about a layer or a short stack without writing a spec file.

    archcalc quick 3x227x227 "conv 64 11x11 s4 p2" "maxpool 3 s2"

Each layer is a type (or alias) followed by words:
* ``key=value`` for any field (``out_channels=64``, ``padding=same``, ``bias=false``);
* short forms ``k3`` / ``s2`` / ``p1`` / ``d2`` / ``g32`` (kernel, stride, padding, dilation, groups;
  ``s2x1`` per axis), the same as words (``stride 4``, ``pad 1``, ``padding 1``), bare ``same`` /
  ``valid`` for the padding, and ``3x3`` for a kernel;
* bare numbers or symbols: for conv the first is out_channels, then kernel, stride, padding (torch's
  order); for pooling the kernel, stride, padding; for linear out_features; for dropout p, for
  upsample the scale factor, for leakyrelu the slope.  Words like ``filters`` are skipped
  (``conv 96 filters 11x11 stride 4``).
The aliases follow the input's rank: ``conv`` is conv1d on C×L, conv2d on C×H×W, conv3d on
C×D×H×W (likewise ``pool``, ``maxpool``, ``avgpool``, ``gap``, ``bn``).  ``fc`` is the textbook
fully connected layer: on a tensor with spatial axes left it flattens first (a ``flatten`` row is
added), where ``linear`` is torch's nn.Linear, acting on the last axis.
A word starting with ``{`` is taken as a whole JSON layer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import SpecError
from .layers import TYPE_NAMES
from .spec import Architecture, parse_spec

# aliases by the number of spatial axes (1, 2, 3) of the tensor they receive
RANKED = {
    "conv": "conv{}d",
    "pool": "maxpool{}d",
    "maxpool": "maxpool{}d",
    "avgpool": "avgpool{}d",
    "gap": "adaptiveavgpool{}d",
    "bn": "batchnorm{}d",
    "upsample": "upsample",
}
ALIASES = {"fc": "linear", "lrn": "localresponsenorm", "cat": "concat"}
SHORT = {"k": "kernel_size", "s": "stride", "p": "padding", "d": "dilation", "g": "groups"}
WORDS = {"kernel": "kernel_size", "stride": "stride", "pad": "padding", "padding": "padding", "dilation": "dilation", "groups": "groups"}
NOISE = {"filters", "filter", "kernels", "channels", "units", "features", "neurons", "outputs"}
POSITIONAL = {
    "conv": ("out_channels", "kernel_size", "stride", "padding"),
    "pool": ("kernel_size", "stride", "padding"),
    "linear": ("out_features",),
    "adaptive": ("output_size",),
    "localresponsenorm": ("size",),
    "subsample": ("stride",),
    "channelpad": ("out_channels",),
    "dropout": ("p",),
    "upsample": ("scale_factor",),
    "leakyrelu": ("negative_slope",),
    "zeropad": ("padding",),
}
_VALUE = r"[A-Za-z_][A-Za-z0-9_]*|\d+"


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*(e-?\d+)?", text):
        return float(text)
    if "x" in text and all(re.fullmatch(_VALUE, p) for p in text.split("x")):
        return [_value(p) for p in text.split("x")]
    if "," in text:
        return [_value(p) for p in text.strip("[]()").split(",")]
    return text


def _family(kind: str) -> str:
    for fam in ("adaptive", "pool", "conv", "linear", "localresponsenorm", "subsample", "channelpad", "zeropad"):
        if fam in kind:
            return fam
    return kind


def parse_layer(text: str, index: int, counters: dict[str, int], spatial: int = 2) -> dict[str, Any]:
    """One layer of a quick stack; ``spatial``: the number of spatial axes of its input (ranked aliases)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"invalid JSON layer at column {e.colno}: {e.msg}", layer=f"#{index + 1}") from None
        if not isinstance(parsed, dict):
            raise SpecError("a JSON layer must be an object", layer=f"#{index + 1}")
        return parsed
    words = text.replace("\u00d7", "x").split()
    if not words:
        raise SpecError("empty layer", layer=f"#{index + 1}")
    short = words[0].lower()
    if short in RANKED:
        kind = RANKED[short].format(min(max(spatial, 1), 3))
    else:
        kind = ALIASES.get(short, short)
        short = short if short in ALIASES else kind
    counters[short] = counters.get(short, 0) + 1
    layer: dict[str, Any] = {"name": f"{short}{counters[short]}", "type": kind}
    if short == "gap":
        layer["output_size"] = 1  # global average pooling
    positional = list(POSITIONAL.get(_family(kind), ()))
    rest = words[1:]
    while rest:
        w = rest.pop(0)
        low = w.lower()
        if "=" in w:
            k, v = w.split("=", 1)
            fields = TYPE_NAMES[kind].model_fields if kind in TYPE_NAMES else {}
            field = k if k in fields else SHORT.get(k, k)
            layer[field] = _value(v)
        elif re.fullmatch(r"[kspdg]\d+(x\d+)*", w):
            layer[SHORT[w[0]]] = _value(w[1:])
            field = SHORT[w[0]]
        elif low in WORDS and rest:  # stride 4, pad 1
            field = WORDS[low]
            layer[field] = _value(rest.pop(0))
        elif low in ("same", "valid") and kind in TYPE_NAMES and "padding" in TYPE_NAMES[kind].model_fields:
            field = "padding"
            layer[field] = low
        elif low in NOISE:
            continue
        elif re.fullmatch(rf"({_VALUE})x({_VALUE})(x({_VALUE}))?", w) and "kernel_size" not in layer and "kernel_size" in positional:
            field = "kernel_size"
            layer[field] = _value(w)
        elif positional:
            field = positional[0]
            layer[field] = _value(w)
        else:
            raise SpecError(f"cannot read {w!r} (use key=value)", layer=layer["name"])
        if field in positional:  # a field given by name is no longer next in line
            positional = positional[positional.index(field) + 1 :] if field == positional[0] else [f for f in positional if f != field]
    return layer


def parse_shape(text: str) -> list[int | str]:
    parts = [p for p in re.split(r"[x\u00d7,\s]+", text.strip()) if p]
    if not parts:
        raise SpecError("empty input shape", field="input")
    return [int(p) if p.isdigit() else p for p in parts]


def quick_spec(input_text: str, layers: list[str], name: str = "stack") -> Architecture:
    counters: dict[str, int] = {}
    shape = parse_shape(input_text)
    spatial = len(shape) - 1  # spatial axes of the tensor the next layer receives
    out: list[dict[str, Any]] = []
    for i, text in enumerate(layers):
        layer = parse_layer(text, i, counters, spatial)
        if text.split()[0].lower() == "fc" and spatial > 0:  # the textbook FC layer: flatten first
            counters["flatten"] = counters.get("flatten", 0) + 1
            out.append({"name": f"flatten{counters['flatten']}", "type": "flatten"})
            spatial = 0
        out.append(layer)
        if layer.get("type") == "flatten" or (layer.get("type") == "linear" and spatial == 0):
            spatial = 0
    return parse_spec({"name": name, "input": shape, "layers": out}, file="<quick>")
