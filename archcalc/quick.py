"""Quick stacks: ask about a layer or a short stack without writing a spec file.

    archcalc quick 3x227x227 "conv 64 11x11 s4 p2" "maxpool 3 s2"

Each layer is a type (or alias) followed by words:
* ``key=value`` for any field (``out_channels=64``, ``padding=same``, ``bias=false``);
* short forms ``k3`` / ``s2`` / ``p1`` / ``d2`` / ``g32`` (kernel, stride, padding, dilation, groups),
  and ``3x3`` for a kernel;
* bare numbers or symbols: for conv the first is out_channels and the second the kernel; for
  pooling the kernel; for linear out_features.
A word starting with ``{`` is taken as a whole JSON layer.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import SpecError
from .layers import TYPE_NAMES
from .spec import Architecture, parse_spec

ALIASES = {
    "conv": "conv2d",
    "pool": "maxpool2d",
    "maxpool": "maxpool2d",
    "avgpool": "avgpool2d",
    "fc": "linear",
    "bn": "batchnorm2d",
    "gap": "adaptiveavgpool2d",
    "lrn": "localresponsenorm",
    "cat": "concat",
}
SHORT = {"k": "kernel_size", "s": "stride", "p": "padding", "d": "dilation", "g": "groups"}
POSITIONAL = {
    "conv": ("out_channels", "kernel_size"),
    "pool": ("kernel_size",),
    "linear": ("out_features",),
    "adaptive": ("output_size",),
    "localresponsenorm": ("size",),
    "subsample": ("stride",),
    "channelpad": ("out_channels",),
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
        return [_value(p) for p in text.split(",")]
    return text


def _family(kind: str) -> str:
    for fam in ("adaptive", "pool", "conv", "linear", "localresponsenorm", "subsample", "channelpad"):
        if fam in kind:
            return fam
    return kind


def parse_layer(text: str, index: int, counters: dict[str, int]) -> dict[str, Any]:
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
    kind = ALIASES.get(words[0].lower(), words[0].lower())
    short = words[0].lower() if words[0].lower() in ALIASES else kind
    counters[short] = counters.get(short, 0) + 1
    layer: dict[str, Any] = {"name": f"{short}{counters[short]}", "type": kind}
    if short == "gap":
        layer["output_size"] = 1  # global average pooling
    positional = list(POSITIONAL.get(_family(kind), ()))
    for w in words[1:]:
        if "=" in w:
            k, v = w.split("=", 1)
            fields = TYPE_NAMES[kind].model_fields if kind in TYPE_NAMES else {}
            layer[k if k in fields else SHORT.get(k, k)] = _value(v)
        elif re.fullmatch(r"[kspdg]\d+", w):
            layer[SHORT[w[0]]] = int(w[1:])
        elif re.fullmatch(rf"({_VALUE})x({_VALUE})", w) and "kernel_size" not in layer and "kernel_size" in positional:
            layer["kernel_size"] = _value(w)
            positional.remove("kernel_size")
        elif positional:
            layer[positional.pop(0)] = _value(w)
        else:
            raise SpecError(f"cannot read {w!r} (use key=value)", layer=layer["name"])
    return layer


def parse_shape(text: str) -> list[int | str]:
    parts = [p for p in re.split(r"[x\u00d7,\s]+", text.strip()) if p]
    if not parts:
        raise SpecError("empty input shape", field="input")
    return [int(p) if p.isdigit() else p for p in parts]


def quick_spec(input_text: str, layers: list[str], name: str = "stack") -> Architecture:
    counters: dict[str, int] = {}
    data = {"name": name, "input": parse_shape(input_text), "layers": [parse_layer(t, i, counters) for i, t in enumerate(layers)]}
    return parse_spec(data, file="<quick>")
