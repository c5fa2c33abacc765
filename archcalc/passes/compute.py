"""Compute: node attributes ``ops`` (by category), ``macs`` and ``flops`` under a convention."""

from __future__ import annotations

import networkx as nx

from ..conventions import Convention
from ..dims import Dim


def compute(G: nx.DiGraph, convention: Convention, batch: Dim = 1) -> None:
    """Per-layer operations for ``batch`` samples, weighed into MACs/FLOPs by ``convention``."""
    nodes = G.nodes
    for name in G.graph["order"]:
        node = nodes[name]
        ins = [nodes[i]["shape"] for i in node["inputs"]]
        ops = node["layer"].ops(ins, node["shape"])
        if batch != 1:
            ops = {k: v * batch for k, v in ops.items()}
        node["ops"] = ops
        node["macs"] = convention.macs(ops)
        node["flops"] = convention.flops(node["macs"])
