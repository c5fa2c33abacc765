"""Saved tensors: what autograd keeps for the backward pass of one training-mode forward.

Node attributes: ``grad`` (whether the layer's output requires grad), ``storage`` (the node whose
output tensor this node's output lives in: itself, or an input's for in-place ops and views),
``contiguous``, ``saved`` (one :class:`SavedTensor` per tensor the layer's backward keeps) and
``saved_bytes`` (bytes of the storages this layer is the first to save, for ``batch`` samples;
``None`` when the layer type does not say what it saves).

Counted as ``torch.autograd.graph.saved_tensors_hooks`` sees it (archcalc.torch.saved measures
it): every saved tensor's storage once, however many layers save it (a ReLU's output that the
next conv saves as its input; a block input that both branches save), the whole storage where a
view is saved (a chunk of a tensor keeps the tensor), parameters and buffers excluded (they are
counted as parameter memory).  A layer none of whose inputs requires grad and which has no
parameters builds no autograd node and saves nothing (the network input does not require grad).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..dims import Dim, prod
from ..graph import INPUT, Graph, node_table
from ..layers.base import Saved

MASK_BYTES = {"cpu": None, "cuda": 1}
_new = tuple.__new__
# what a layer without inputs (a parameter read in forward) reads
_NO_INPUT: dict[str, Any] = {"grad": False, "contiguous": True, "storage": None, "elt": 4}  # dropout's mask: None = the activations' dtype


class SavedTensor(NamedTuple):
    """One saved tensor of one layer, resolved to its storage.

    ``storage`` names it: a node name (that node's output tensor, shared by whoever saves it) or
    ``"<layer>:<tensor>"`` for a tensor the layer made for its backward.  ``fixed`` and
    ``per_sample`` are its bytes, independent of and per sample of the batch; ``first`` is True
    for the layer that counts it (the first to save it, in execution order), ``counted_at``.
    """

    saved: Saved
    storage: str
    fixed: Dim
    per_sample: Dim
    first: bool
    counted_at: str

    def nbytes(self, batch: Dim) -> Dim:
        return self.fixed + self.per_sample * batch


def saved_tensors(G: Graph, dtype_bytes: int, batch: Dim = 1, device: str = "cpu", amp: bool = False, fused: bool = True) -> None:
    """Set ``grad``, ``storage``, ``contiguous``, ``saved`` and ``saved_bytes`` on every node (see
    the module docstring); ``device`` decides dropout's mask dtype (CPU: the activations', CUDA: bool).

    ``amp``: a forward under ``torch.autocast(device, dtype)`` with fp32 parameters and input, the
    low-precision dtype ``dtype_bytes`` wide.  Each layer's ``autocast(device)`` says how it runs:
    ``lower`` (conv, linear: inputs and weights cast to the low dtype, and the casts are what it
    saves: a copy of an fp32 input, and of each weight it keeps), ``float32`` (inputs cast up, output
    fp32) or ``same`` (the inputs' dtype, promoted where they differ); node attribute ``elt`` is the
    bytes per element of each output.

    ``fused``: layers with a fused kernel (``Layer.saved_fused``: flash attention) keep what it
    keeps, as torch picks it on CPU and CUDA; False: the unfused math path (what the meta device
    runs, and what Korthikanti et al. count)."""
    nodes = node_table(G)
    inp = nodes[INPUT]
    in_elt = 4 if amp else dtype_bytes
    inp.update(grad=False, storage=INPUT, contiguous=True, elt=in_elt)
    sizes: dict[str, Dim] = {INPUT: prod(inp["shape"]) * in_elt}  # storage -> bytes per sample
    if amp:
        _saved_autocast(G, nodes, sizes, dtype_bytes, batch, device, fused)
        return
    mask = MASK_BYTES[device] or dtype_bytes
    width = {"act": dtype_bytes, "float32": 4, "int64": 8, "bool": 1, "dropout_mask": mask}
    # per formula key: what the layer saves, as (saved, 0 input / 1 output / 2 new, input index,
    # fixed bytes, bytes per sample) with a new tensor's sizes worked out; where its output lives;
    # its output's bytes per sample
    memo: dict[tuple[object, ...], tuple[list[tuple[Saved, int, int, Dim, Dim]] | None, str, Dim]] = {}
    seen: dict[str, str] = {}  # storage -> the layer that counts it
    for name in G.graph["order"]:
        node = nodes[name]
        key = node["formula_key"]  # set by the shapes pass
        got = memo.get(key)
        if got is None:
            layer = node["layer"]
            wanted = _wanted(layer, node["in_shapes"], node["shape"], fused)
            plan = None if wanted is None else [_plan(s, width) for s in wanted]
            got = memo[key] = (plan, layer.output_storage(node["in_shapes"]), prod(node["shape"]) * dtype_bytes)
        plan, how, out_bytes = got
        inputs = node["inputs"]
        src = nodes[inputs[0]] if inputs else _NO_INPUT
        if how == "new" or (how == "reshape" and not src["contiguous"]):
            node["storage"], node["contiguous"] = name, True
            sizes[name] = out_bytes
        elif how == "param" or not inputs:  # a parameter read in forward: parameter memory, never saved activations
            node["storage"], node["contiguous"] = name, True
            sizes[name] = 0
        else:
            node["storage"] = src["storage"]
            node["contiguous"] = how == "reshape" or (how != "strided" and src["contiguous"])
        grad = node["grad"] = src["grad"] or bool(node["weights"]) or (len(inputs) > 1 and any(nodes[i]["grad"] for i in inputs))
        if not grad:  # no autograd node: nothing is saved, whatever the type would save
            node["saved"], node["saved_bytes"] = [], 0
            continue
        if plan is None:
            node["saved"], node["saved_bytes"] = None, None
            continue
        kept: list[SavedTensor] = []
        total: Dim = 0
        for s, kind, index, fixed, new_per in plan:
            if kind == 0:
                storage = nodes[inputs[index]]["storage"] if index else src["storage"]
                per = sizes[storage]
            elif kind == 1:
                storage = node["storage"]
                per = sizes[storage]
            elif kind == 2:
                storage, per = name + ":" + s.tensor, new_per
            else:
                continue  # a parameter: counted as parameter memory
            at = seen.get(storage)
            first = at is None
            if at is None:
                seen[storage] = at = name
            kept.append(_new(SavedTensor, (s, storage, fixed, per, first, at)))  # tuple.__new__: NamedTuple's own __new__ is a Python call
            if first:
                total = total + fixed + per * batch
        node["saved"], node["saved_bytes"] = kept, total



def _plan(s: Saved, width: dict[str, int]) -> tuple[Saved, int, int, Dim, Dim]:
    if s.tensor == "input":
        return s, 0, s.input, 0, 0
    if s.tensor == "output":
        return s, 1, 0, 0, 0
    if s.param is not None:
        return s, 3, 0, 0, 0
    size = prod(s.shape) * width[s.dtype]
    return (s, 2, 0, 0, size) if s.batched else (s, 2, 0, size, 0)


def _wanted(layer: Any, ins: list[Any], out: Any, fused: bool) -> list[Saved] | None:
    if fused:
        kept = layer.saved_fused(ins, out)
        if kept is not None:
            return list(kept)
    got = layer.saved(ins, out)
    return None if got is None else list(got)


def _saved_autocast(
    G: Graph, nodes: dict[str, dict[str, Any]], sizes: dict[str, Dim], low: int, batch: Dim, device: str, fused: bool
) -> None:
    """:func:`saved_tensors` under autocast (see there): the same walk, with a dtype per tensor."""
    seen: dict[str, str] = {}
    for name in G.graph["order"]:
        node = nodes[name]
        layer = node["layer"]
        inputs = node["inputs"]
        if layer.source:  # a learned tensor (parameter): its storage is the parameter's, not an activation
            node.update(storage=name, contiguous=False, grad=True, elt=4, saved=[], saved_bytes=0)
            sizes[name] = 0
            continue
        srcs = [nodes[i] for i in inputs]
        src = srcs[0] if srcs else _NO_INPUT
        mode = layer.autocast(device)
        in_elts = [s["elt"] for s in srcs] or [4]  # a parameter read in forward is fp32
        elt = low if mode == "lower" else 4 if mode == "float32" else max(in_elts)
        node["elt"] = elt
        how = layer.output_storage(node["in_shapes"])
        if how == "param" or not inputs:
            node["storage"], node["contiguous"] = name, True
            sizes[name] = 0
        elif how == "new" or (how == "reshape" and not src["contiguous"]) or elt != in_elts[0]:
            node["storage"], node["contiguous"] = name, True
            sizes[name] = prod(node["shape"]) * elt
        else:
            node["storage"] = src["storage"]
            node["contiguous"] = how == "reshape" or (how != "strided" and src["contiguous"])
        grad = node["grad"] = any(s["grad"] for s in srcs) or bool(node["weights"])
        wanted = _wanted(layer, node["in_shapes"], node["shape"], fused) if grad else []
        if mode is None or wanted is None:
            node["saved"], node["saved_bytes"] = None, None
            continue
        width = {"act": elt, "float32": 4, "int64": 8, "bool": 1, "dropout_mask": MASK_BYTES[device] or elt}
        kept: list[SavedTensor] = []
        total: Dim = 0
        for s in wanted:
            fixed: Dim = 0
            per: Dim = 0
            if s.tensor == "input":
                cast = mode in ("lower", "float32") and in_elts[s.input] != elt
                if cast:  # autocast saved its own copy, in the dtype it runs in
                    storage, per = f"{name}:cast{s.input}", prod(node["in_shapes"][s.input]) * elt
                else:
                    storage = srcs[s.input]["storage"]
                    per = sizes[storage]
            elif s.tensor == "output":
                storage = node["storage"]
                per = sizes[storage]
            elif s.param is not None:
                if mode != "lower":
                    continue  # the parameter itself: counted as parameter memory
                storage, fixed = f"{name}:{s.param}", prod(node["weights"][s.param]) * low  # autocast's cast copy
            else:
                storage = f"{name}:{s.tensor}"
                size = prod(s.shape) * width[s.dtype]
                fixed, per = (0, size) if s.batched else (size, 0)
            at = seen.get(storage)
            first = at is None
            if at is None:
                seen[storage] = at = name
            kept.append(_new(SavedTensor, (s, storage, fixed, per, first, at)))  # tuple.__new__: NamedTuple's own __new__ is a Python call
            if first:
                total = total + fixed + per * batch
        node["saved"], node["saved_bytes"] = kept, total
