"""Output shapes, per sample (channels first): node attributes ``shape``, and for the passes after
it ``in_shapes`` (the inputs' shapes, in order) and ``formula_key`` (a number for the layer's
settings + input shapes: equal keys give equal formula results, so repeated blocks, and the many
equal layers of a flat imported spec, are computed once; a number, so that the passes' memos do not
hash the settings and shapes again)."""

from __future__ import annotations

from itertools import islice

from ..dims import Dim, DimError, check_size, known_sign
from ..errors import SpecError
from ..graph import INPUT, Graph, SymbolicRepeat, node_table
from ..layers.base import shape_str
from ..spec import MAX_RANK

# fields that place a layer in the graph but enter none of its formulas (Layer's first fields)
_PLACEMENT = ("name", "inputs", "when", "unless", "training_only")
_SETTINGS_FROM: dict[type, int | None] = {}  # per layer type: where its settings start in __dict__


def _frozen(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return tuple(map(_frozen, value))
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return value


def settings_key(layer: object) -> object:
    """What a layer's formulas depend on: its type and every setting except where it sits (its
    name, its inputs' names).  Equal keys with equal input shapes give equal results.  (About a
    microsecond: pydantic keeps a model's fields in ``__dict__`` in declaration order, Layer's
    own placement fields first.)"""
    kind = type(layer)
    names = layer.__dict__
    skip = _SETTINGS_FROM.get(kind, -1)
    if skip == -1:
        fields = list(names)
        n = len(_PLACEMENT)
        skip = _SETTINGS_FROM[kind] = n if tuple(fields[:n]) == _PLACEMENT and not set(fields[n:]) & set(_PLACEMENT) else None
    if skip is None:
        key: tuple[object, ...] = (kind, *(v for k, v in names.items() if k not in _PLACEMENT))
    else:
        key = (kind, *islice(names.values(), skip, None))
    try:
        hash(key)
    except TypeError:  # a list setting (kernel_size [3, 3]): as a tuple
        key = tuple(map(_frozen, key))
    return key


def shapes(G: Graph) -> None:
    """Set ``shape`` on every node from its inputs' shapes, in topological order."""
    nodes = node_table(G)
    nodes[INPUT]["shape"] = G.graph["input_shape"]
    numbers: dict[tuple[object, ...], int] = {}  # (settings, *input shapes) -> its formula key: a small int, cheap to hash in every later pass
    outs: list[tuple[object, ...]] = []  # output shape by formula key
    settings: dict[int, object] = {}  # repeated blocks share bound layers: each is keyed once
    # the copies of a block share their bound layers and, given the same input, their shape tuples:
    # (id(layer), id(input shape)) finds the key without hashing settings and shapes again (every
    # object named stays alive on the graph during the pass, so no id is reused)
    seen: dict[tuple[int, int], int] = {}
    for name in G.graph["order"]:
        node = nodes[name]
        layer = node["layer"]
        inputs = node["inputs"]
        if len(inputs) == 1:
            shape_in = nodes[inputs[0]]["shape"]
            number = seen.get((id(layer), id(shape_in)))
            if number is not None:
                node["in_shapes"], node["formula_key"], node["shape"] = [shape_in], number, outs[number]
                continue
            ins = [shape_in]
        else:
            ins = [nodes[i]["shape"] for i in inputs]
        ident = settings.get(id(layer))
        if ident is None:
            ident = settings[id(layer)] = settings_key(layer)
        key = (ident, *ins)
        number = numbers.get(key)
        if number is None:
            try:
                outs.append(_checked(tuple(layer.output_shape(ins))))
            except SpecError as e:
                raise e.located(layer=name) from None
            number = numbers[key] = len(outs) - 1
        if len(ins) == 1:
            seen[id(layer), id(ins[0])] = number
        node["in_shapes"], node["formula_key"] = ins, number
        node["shape"] = outs[number]
    for rep in G.graph.get("symbolic_repeats", ()):
        _check_maps_to_itself(rep, nodes[rep.start]["shape"], nodes[rep.output]["shape"])


def _check_maps_to_itself(rep: SymbolicRepeat, shape_in: tuple[Dim, ...], shape_out: tuple[Dim, ...]) -> None:
    """A block repeated a symbolic number of times must give each copy the input it was laid out
    for: its output shape must be its input shape (a transformer layer, a residual stage's later blocks)."""
    same = len(shape_in) == len(shape_out) and all(known_sign(a - b) == 0 for a, b in zip(shape_in, shape_out, strict=True))
    if not same:
        raise SpecError(
            f"repeat {rep.times} is a symbol, so block {rep.block!r} must map its input shape to itself (every copy then costs the same), "
            f"but it maps {shape_str(shape_in)} to {shape_str(shape_out)} (give {rep.times} a number with --set to expand the copies)",
            layer=rep.call,
            field="repeat",
        )


def _checked(shape: tuple[object, ...]) -> tuple[object, ...]:
    """An output shape within archcalc's limits: at most MAX_RANK axes, each below 10^MAX_DIGITS."""
    if len(shape) > MAX_RANK:
        raise SpecError(f"its output would have {len(shape):,} axes; archcalc's limit is {MAX_RANK}", field="inputs")
    try:
        for d in shape:
            check_size(d)
    except DimError as e:
        raise SpecError(f"output size: {e}", field="inputs") from None
    return shape
