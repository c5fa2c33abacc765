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
from .spec import Architecture, parse_spec, unique_keys

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
ALIASES = {"fc": "linear", "dense": "linear", "lrn": "localresponsenorm", "cat": "concat", "batchnorm": "bn", "leaky": "leakyrelu"}
# names people write in two or three words: "max pool 2", "global avg pool", "leaky relu 0.1"
MULTI_WORD = {
    ("global", "avg", "pool"): "gap",
    ("global", "average", "pool"): "gap",
    ("global", "average", "pooling"): "gap",
    ("max", "pool"): "maxpool",
    ("max", "pooling"): "maxpool",
    ("avg", "pool"): "avgpool",
    ("average", "pool"): "avgpool",
    ("average", "pooling"): "avgpool",
    ("leaky", "relu"): "leakyrelu",
    ("batch", "norm"): "bn",
}
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


def _did_you_mean(word: str, vocabulary: list[str]) -> str:
    import difflib

    low = word.lower()
    near = difflib.get_close_matches(low, vocabulary, n=1, cutoff=0.6)
    if re.fullmatch(r"[KSPDG]\d+(x\d+)*", word):  # P1: the short forms are lower case
        return f"; did you mean {low!r}?"
    m = re.fullmatch(r"(kernel|stride|pad|padding|dilation|groups|[kspdg])[-_:]?(\d+)", low)
    if m and not re.fullmatch(r"[kspdg]\d+", low):  # stride2
        return f"; did you mean '{m.group(1)} {m.group(2)}'?"
    return f"; did you mean {near[0]!r}?" if near else ""


def _glued(word: str) -> str:
    """conv8, fc10, maxpool2: a type that takes values, and its first value run together."""
    m = re.fullmatch(r"([A-Za-z]+?)(\d+)", word)
    if not m or f"{word.lower()}d" in TYPE_NAMES:  # conv2: a slip for conv2d as likely
        return ""
    short = m.group(1).lower()
    kind = RANKED[short].format(2) if short in RANKED else ALIASES.get(short, short)
    if kind not in TYPE_NAMES or not POSITIONAL.get(_family(kind)):
        return ""  # (relu7 is no relu with a value)
    return f"; did you mean '{m.group(1)} {m.group(2)}'?"


def parse_layer(text: str, index: int, counters: dict[str, int], spatial: int = 2, symbols: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One layer of a quick stack; ``spatial``: the number of spatial axes of its input (ranked aliases);
    ``symbols``: the names a bare word may be (the input shape's): any other unknown word is an error,
    never a new symbol (ask for one with key=value: ``k=K``)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text, object_pairs_hook=unique_keys)
        except json.JSONDecodeError as e:
            raise SpecError(f"invalid JSON layer at column {e.colno}: {e.msg}", layer=f"#{index + 1}") from None
        except SpecError as e:  # a key given twice
            raise e.located(layer=f"#{index + 1}") from None
        if not isinstance(parsed, dict):
            raise SpecError("a JSON layer must be an object", layer=f"#{index + 1}")
        kind = parsed.get("type")
        if "name" not in parsed and isinstance(kind, str) and kind:  # numbered from 1 with the word layers: causal_mask1
            stem = kind + ("_" if kind.rstrip("0123456789") != kind else "")
            counters[kind] = counters.get(kind, 0) + 1
            parsed = {"name": f"{stem}{counters[kind]}", **parsed}
        return parsed
    words = text.replace("\u00d7", "x").split()
    if not words:
        raise SpecError("empty layer", layer=f"#{index + 1}")
    lowered = [w.lower() for w in words]
    for n in (3, 2):
        if tuple(lowered[:n]) in MULTI_WORD:
            words = [MULTI_WORD[tuple(lowered[:n])], *words[n:]]
            break
    short = words[0].lower()
    short = ALIASES.get(short, short) if ALIASES.get(short) in RANKED else short
    if short in RANKED:
        kind = RANKED[short].format(min(max(spatial, 1), 3))
    else:
        kind = ALIASES.get(short, short)
        short = short if short in ALIASES else kind
    if kind not in TYPE_NAMES and kind not in ("block",):
        vocabulary = sorted({*TYPE_NAMES, *RANKED, *ALIASES})
        if re.fullmatch(r"[\d.x]+|[A-Za-z]\w*=.*", words[0]):
            raise SpecError(
                f"{words[0]!r} is not a layer type: quote each layer as one argument, e.g. \"conv 64 3 p1\" \"maxpool 2\"", layer=f"#{index + 1}"
            )
        raise SpecError(f"unknown layer type {words[0]!r}{_glued(words[0]) or _did_you_mean(words[0], vocabulary)}", layer=f"#{index + 1}")
    base = short.rstrip("0123456789")
    stem = short + ("_" if base != short else "")  # relu6 -> relu6_1, not relu61
    counters[short] = counters.get(short, 0) + 1
    layer: dict[str, Any] = {"name": f"{stem}{counters[short]}", "type": kind}
    if short == "gap":
        layer["output_size"] = 1  # global average pooling
    positional = list(POSITIONAL.get(_family(kind), ()))
    fields = TYPE_NAMES[kind].model_fields if kind in TYPE_NAMES else {}
    rest = words[1:]
    given: dict[str, tuple[str, Any]] = {}  # field -> (the words that set it, the value): a second, different value is refused

    def put(field: str, v: Any, said: str) -> None:
        if field in given and given[field][1] != v:
            raise SpecError(f"{field} given twice ({given[field][0]} and {said}): say it once", layer=layer["name"])
        given[field] = (said, v)
        layer[field] = v

    def value(w: str, field: str) -> Any:
        """A bare value: a number, a size like 3x3, or a symbol of the input shape; nothing else."""
        v = _value(w)
        texts = [x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str)]
        names = [n for x in texts for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", x)]
        unknown = [n for n in names if n not in symbols and n.lower() not in ("true", "false")]
        if unknown:
            vocabulary = [*WORDS, *NOISE, "same", "valid", *fields]
            hint = _did_you_mean(w, vocabulary)
            if not hint and re.fullmatch(r"[kspdg]", w.lower()) and rest and rest[0].isdigit():
                hint = f"; did you mean '{w.lower()}{rest[0]}'?"
            advice = "" if hint else f" (a symbol must be in the input shape, or asked for as key=value: {field}={w})"
            raise SpecError(f"cannot read {w!r} as {field}{hint}{advice}", layer=layer["name"])
        return v

    while rest:
        w = rest.pop(0)
        low = w.lower()
        if "=" in w:
            k, v = w.split("=", 1)
            field = k if k in fields else SHORT.get(k, WORDS.get(k, k))
            put(field, _value(v), w)
        elif re.fullmatch(r"[kspdg]\d+(x\d+)*", w):
            field = SHORT[w[0]]
            put(field, _value(w[1:]), w)
        elif low in WORDS:  # stride 4, pad 1
            field = WORDS[low]
            if not rest:
                raise SpecError(f"{w!r} needs a value after it ({w} 2)", layer=layer["name"])
            v2 = rest.pop(0)
            put(field, value(v2, field), f"{w} {v2}")
        elif low in ("same", "valid") and "padding" in fields:
            if not kind.startswith("conv"):
                raise SpecError(f"padding {low!r} is for convolutions; torch's {kind} takes a number (p1)", layer=layer["name"])
            field = "padding"
            put(field, low, w)
        elif low in NOISE:
            continue
        elif low == "x":
            raise SpecError("write a size without spaces: 3x3, not '3 x 3'", layer=layer["name"])
        elif re.fullmatch(rf"({_VALUE})x({_VALUE})(x({_VALUE}))?", w, re.I) and "kernel_size" not in layer and "kernel_size" in positional:
            field = "kernel_size"
            put(field, value(w.replace("X", "x"), field), w)
        elif positional:
            field = positional[0]
            put(field, value(w, field), w)
        else:
            raise SpecError(f"cannot read {w!r} (use key=value){_did_you_mean(w, [*WORDS, *fields])}", layer=layer["name"])
        if field in positional:  # a field given by name is no longer next in line
            positional = positional[positional.index(field) + 1 :] if field == positional[0] else [f for f in positional if f != field]
    return layer


def parse_shape(text: str) -> list[int | str]:
    """``3x224x224``, ``3,224,224``, ``C,H,W`` (also as Python writes a shape: ``(3, 224, 224)``, ``[3, 224, 224]``)."""
    text = _unwrapped(text.strip())
    parts = [p for p in re.split(r"[x\u00d7,\s]+", text.strip()) if p]
    if not parts:
        raise SpecError("empty input shape", field="input")
    return [int(p) if p.isdigit() else p for p in parts]


def _unwrapped(text: str) -> str:
    """A shape in one pair of brackets, without them: (3, 224, 224) -> 3, 224, 224; not (H+1)x(W+1)."""
    if len(text) < 2 or (text[0], text[-1]) not in (("(", ")"), ("[", "]")):
        return text
    depth = 0
    for i, c in enumerate(text):
        depth += c in "([" or -(c in ")]")
        if depth == 0 and i < len(text) - 1:
            return text  # the first bracket closes before the end: (H+1)x(W+1)
    return text[1:-1]


def quick_spec(input_text: str, layers: list[str], name: str = "stack") -> Architecture:
    return parse_spec(quick_dict(input_text, layers, name), file="<quick>")


def quick_dict(input_text: str, layers: list[str], name: str = "stack") -> dict[str, Any]:
    """The spec a quick stack stands for, as the JSON ``archcalc table`` reads (``quick --save``)."""
    counters: dict[str, int] = {}
    shape = parse_shape(input_text)
    spatial = len(shape) - 1  # spatial axes of the tensor the next layer receives
    out: list[dict[str, Any]] = []
    symbols = frozenset(n for d in shape if isinstance(d, str) for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", d))
    for i, text in enumerate(layers):
        layer = parse_layer(text, i, counters, spatial, symbols)
        if text.split()[0].lower() in ("fc", "dense") and spatial > 0:  # the textbook FC layer: flatten first
            counters["flatten"] = counters.get("flatten", 0) + 1
            out.append({"name": f"flatten{counters['flatten']}", "type": "flatten"})
            spatial = 0
        out.append(layer)
        if layer.get("type") == "flatten" or (layer.get("type") == "linear" and spatial == 0):
            spatial = 0
    return {"name": name, "input": shape, "layers": out}


def two_axis_note(shape: list[int | str], layers: list[str]) -> str | None:
    """What to say when a 2-D input (32x32) meets a ranked alias: it is read as C×L, not as an image."""
    if len(shape) != 2 or not layers:
        return None
    first = layers[0].split()[0].lower() if layers[0].split() else ""
    if first in RANKED and first != "upsample":
        c, n = shape
        return f"input {c}x{n} is read as C\u00d7L ({c} channels of length {n}): '{first}' is 1-D here; for a one-channel image write 1x{c}x{n}"
    return None
