"""Output shapes, per sample (channels first): node attributes ``shape``, and for the passes after
it ``in_shapes`` (the inputs' shapes, in order) and ``formula_key`` (layer identity + input shapes:
equal keys give equal formula results, so repeated blocks are computed once)."""

from __future__ import annotations

from ..dims import DimError, check_size
from ..errors import SpecError
from ..graph import INPUT, Graph, node_table
from ..spec import MAX_RANK


def shapes(G: Graph) -> None:
    """Set ``shape`` on every node from its inputs' shapes, in topological order."""
    nodes = node_table(G)
    nodes[INPUT]["shape"] = G.graph["input_shape"]
    memo: dict[tuple[object, ...], tuple[object, ...]] = {}  # repeated blocks share bound layers
    for name in G.graph["order"]:
        node = nodes[name]
        layer = node["layer"]
        inputs = node["inputs"]
        ins = [nodes[inputs[0]]["shape"]] if len(inputs) == 1 else [nodes[i]["shape"] for i in inputs]
        key = (id(layer), *ins)
        node["in_shapes"], node["formula_key"] = ins, key
        out = memo.get(key)
        if out is None:
            try:
                out = memo[key] = _checked(tuple(layer.output_shape(ins)))
            except SpecError as e:
                raise e.located(layer=name) from None
        node["shape"] = out


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
