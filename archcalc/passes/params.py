"""Parameters: node attributes ``weights`` (name -> shape), ``params`` and ``buffers`` counts."""

from __future__ import annotations

from typing import Any

from ..dims import Dim, known_sign, prod
from ..errors import SpecError
from ..graph import Graph, node_table
from ..layers.base import shape_str


def params(G: Graph) -> None:
    """Learnable parameters (weights + bias, BN affine) and, apart, buffers (BN running stats)."""
    nodes = node_table(G)
    memo: dict[int, tuple[dict[str, tuple[Dim, ...]], Dim, Dim]] = {}
    for name in G.graph["order"]:
        node = nodes[name]
        layer = node["layer"]
        ins, key = node["in_shapes"], node["formula_key"]  # set by the shapes pass
        got = memo.get(key)
        if got is None:
            w = layer.weights(ins)
            got = memo[key] = (w, sum((prod(s) for s in w.values()), start=0), sum((prod(s) for s in layer.buffers(ins).values()), start=0))
        node["weights"], node["params"], node["buffers"] = got
    for name in G.graph.get("tied", ()):  # (compile lists the layers that use another's weight)
        _share(name, nodes)


def _share(name: str, nodes: dict[str, dict[str, Any]]) -> None:
    """A layer that uses another layer's weight (GPT-2's head and its token embedding): the
    shapes must agree, and the weight is counted once, by its owner."""
    node = nodes[name]
    own = dict(node["weights"])
    notes = []
    for wname, src in node["tied"].items():
        theirs = nodes[src]["weights"].get("weight")
        mine = own.pop(wname, None)
        if theirs is None or mine is None:
            raise SpecError(f"{src!r} has no weight to share" if theirs is None else f"has no {wname!r} to share", layer=name, field="tie_weight")
        if len(theirs) != len(mine) or any(known_sign(a - b) not in (0, None) for a, b in zip(theirs, mine, strict=True)):
            why = f"its {wname} is {shape_str(mine)} but {src}'s weight is {shape_str(theirs)}: they cannot be one tensor"
            raise SpecError(why, layer=name, field="tie_weight")
        notes.append(f"{wname} ({shape_str(mine)}) is {src}'s weight (tied): counted once, there")
    node["weights"], node["params"] = own, sum((prod(s) for s in own.values()), start=0)
    node["tie_note"] = "; ".join(notes)


def total(G: Graph, attr: str) -> Dim:
    return sum((G.nodes[n][attr] for n in G.graph["order"]), start=0)
