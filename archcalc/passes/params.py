"""Parameters: node attributes ``weights`` (name -> shape), ``params`` and ``buffers`` counts."""

from __future__ import annotations

import networkx as nx

from ..dims import Dim, prod


def params(G: nx.DiGraph) -> None:
    """Learnable parameters (weights + bias, BN affine) and, apart, buffers (BN running stats)."""
    nodes = G.nodes
    for name in G.graph["order"]:
        node = nodes[name]
        ins = [nodes[i]["shape"] for i in node["inputs"]]
        w = node["layer"].weights(ins)
        node["weights"] = w
        node["params"] = sum((prod(s) for s in w.values()), start=0)
        node["buffers"] = sum((prod(s) for s in node["layer"].buffers(ins).values()), start=0)


def total(G: nx.DiGraph, attr: str) -> Dim:
    return sum((G.nodes[n][attr] for n in G.graph["order"]), start=0)
