"""Output shapes, per sample (channels first): node attribute ``shape``."""

from __future__ import annotations

import networkx as nx

from ..errors import SpecError
from ..graph import INPUT


def shapes(G: nx.DiGraph) -> None:
    """Set ``shape`` on every node from its inputs' shapes, in topological order."""
    nodes = G.nodes
    nodes[INPUT]["shape"] = G.graph["input_shape"]
    for name in G.graph["order"]:
        node = nodes[name]
        ins = [nodes[i]["shape"] for i in node["inputs"]]
        try:
            node["shape"] = tuple(node["layer"].output_shape(ins))
        except SpecError as e:
            raise e.located(layer=name) from None
