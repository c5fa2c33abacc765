"""Output shapes, per sample (channels first): node attribute ``shape``."""

from __future__ import annotations

import networkx as nx

from ..errors import SpecError
from ..graph import INPUT, node_table


def shapes(G: nx.DiGraph[str]) -> None:
    """Set ``shape`` on every node from its inputs' shapes, in topological order."""
    nodes = node_table(G)
    nodes[INPUT]["shape"] = G.graph["input_shape"]
    memo: dict[tuple[object, ...], tuple[object, ...]] = {}  # repeated blocks share bound layers
    for name in G.graph["order"]:
        node = nodes[name]
        layer = node["layer"]
        ins = [nodes[i]["shape"] for i in node["inputs"]]
        key = (id(layer), *ins)
        out = memo.get(key)
        if out is None:
            try:
                out = memo[key] = tuple(layer.output_shape(ins))
            except SpecError as e:
                raise e.located(layer=name) from None
        node["shape"] = out
