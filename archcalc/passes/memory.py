"""Activation memory: node attribute ``activation_bytes`` = output elements x dtype bytes x batch,
or 0 for an output that is its input's storage (an in-place ReLU, a view)."""

from __future__ import annotations

from ..dims import Dim, prod
from ..graph import Graph, node_table
from ..layers.reshape import only_splits


def contiguous_after(how: str, src_contiguous: bool) -> bool:
    """Whether an output that shares its input's storage (``how``: ``Layer.output_storage``, one of
    ``archcalc.layers.base.STORAGES``) is contiguous per sample: a reshape's
    view is (torch views only what it need not copy), a strided view (permute, transpose, a
    slice of a later axis) is not, anything else is as its input."""
    return how == "reshape" or (how != "strided" and src_contiguous)


def memory(G: Graph, dtype_bytes: int, batch: Dim = 1) -> None:
    """Bytes of each layer's output tensor (the lecture's memory column, before dividing by 1024).

    An in-place layer (ReLU(inplace=True)) writes into its input and a view (flatten, permute,
    a slice) reads it: they allocate nothing new, except a flatten or reshape of a tensor that a
    permute or transpose left non-contiguous, which torch copies (``x.transpose(1, 2).flatten(1)``)."""
    nodes = node_table(G)
    contiguous: dict[str, bool] = {}  # per node: its output is contiguous per sample (eval mode)
    memo: dict[int, tuple[bool, str, bool, Dim]] = {}  # per formula key: in place, storage, splits only, bytes
    for name in G.graph["order"]:
        node = nodes[name]
        key = node["formula_key"]  # set by the shapes pass
        got = memo.get(key)
        if got is None:
            layer = node["layer"]
            how = layer.output_storage(node["in_shapes"])
            splits = how == "reshape" and only_splits(node["in_shapes"][0], node["shape"])
            got = memo[key] = (layer.in_place(), how, splits, prod(node["shape"]) * dtype_bytes * batch)
        in_place, how, splits, nbytes = got
        inputs = node["inputs"]
        src = contiguous.get(inputs[0], True) if inputs else True
        # (in eval mode: dropout, in_place() here, returns its input itself though training makes new)
        if not in_place or (how == "reshape" and not src and not splits):
            node["activation_bytes"] = nbytes
            contiguous[name] = True
        else:
            node["activation_bytes"] = 0
            # a reshape that only splits axes views any tensor, and keeps it as (non-)contiguous as it was
            contiguous[name] = src if splits else contiguous_after(how, src)
