"""Activation memory: node attribute ``activation_bytes`` = output elements x dtype bytes x batch."""

from __future__ import annotations

from ..dims import Dim, prod
from ..graph import Graph, node_table


def memory(G: Graph, dtype_bytes: int, batch: Dim = 1) -> None:
    """Bytes of each layer's output tensor (the lecture's memory column, before dividing by 1024)."""
    nodes = node_table(G)
    for name in G.graph["order"]:
        node = nodes[name]
        # an in-place layer (ReLU(inplace=True)) writes into its input: it allocates nothing new
        node["activation_bytes"] = 0 if node["layer"].in_place() else prod(node["shape"]) * dtype_bytes * batch
