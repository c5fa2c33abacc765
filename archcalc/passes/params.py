"""Parameters: node attributes ``weights`` (name -> shape), ``params`` and ``buffers`` counts."""

from __future__ import annotations

from ..dims import Dim, prod
from ..graph import Graph, node_table


def params(G: Graph) -> None:
    """Learnable parameters (weights + bias, BN affine) and, apart, buffers (BN running stats)."""
    nodes = node_table(G)
    memo: dict[tuple[object, ...], tuple[dict[str, tuple[Dim, ...]], Dim, Dim]] = {}
    for name in G.graph["order"]:
        node = nodes[name]
        layer = node["layer"]
        ins, key = node["in_shapes"], node["formula_key"]  # set by the shapes pass
        got = memo.get(key)
        if got is None:
            w = layer.weights(ins)
            got = memo[key] = (w, sum((prod(s) for s in w.values()), start=0), sum((prod(s) for s in layer.buffers(ins).values()), start=0))
        node["weights"], node["params"], node["buffers"] = got


def total(G: Graph, attr: str) -> Dim:
    return sum((G.nodes[n][attr] for n in G.graph["order"]), start=0)
