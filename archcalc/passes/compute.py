"""Compute: node attributes ``ops`` (by category), ``macs`` and ``flops`` under a convention."""

from __future__ import annotations

from ..conventions import Convention
from ..dims import Dim
from ..errors import SpecError
from ..graph import Graph, node_table


def compute(G: Graph, convention: Convention, batch: Dim = 1) -> None:
    """Per-layer operations for ``batch`` samples, weighed into MACs/FLOPs by ``convention``."""
    nodes = node_table(G)
    memo: dict[int, tuple[dict[str, Dim], Dim, Dim]] = {}
    for name in G.graph["order"]:
        node = nodes[name]
        layer = node["layer"]
        ins, key = node["in_shapes"], node["formula_key"]  # set by the shapes pass
        got = memo.get(key)
        if got is None:
            ops = layer.ops(ins, node["shape"])
            if batch != 1:
                ops = {k: v * batch for k, v in ops.items()}
            try:
                macs = convention.macs(ops, layer.kind, layer.function)
            except SpecError as e:
                raise e.located(layer=name) from None
            got = memo[key] = (ops, macs, convention.flops(macs))
        node["ops"], node["macs"], node["flops"] = got
