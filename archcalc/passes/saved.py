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

from ..dims import Dim, as_int, prod
from ..graph import INPUT, Graph, node_table
from ..layers.base import BATCH_SECOND, Saved

MASK_BYTES = {"cpu": None, "cuda": 1, "meta": None}  # dropout's mask: None = the activations' dtype
# "meta": what the meta device's kernels make (the zoo proof): CPU's dropout, CUDA's norm statistics
_new = tuple.__new__
# what a layer without inputs (a parameter read in forward) reads
_NO_INPUT: dict[str, Any] = {"grad": False, "contiguous": True, "perm": None, "storage": None, "elt": 4}


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


def saved_tensors(
    G: Graph, dtype_bytes: int, batch: Dim = 1, device: str = "cpu", amp: bool = False, fused: bool = True, step_batch: Dim | None = None
) -> None:
    """Set ``grad``, ``storage``, ``contiguous``, ``saved`` and ``saved_bytes`` on every node (see
    the module docstring); ``device`` decides dropout's mask dtype (CPU: the activations', CUDA: bool).

    ``amp``: a forward under ``torch.autocast(device, dtype)`` with fp32 parameters and input, the
    low-precision dtype ``dtype_bytes`` wide.  Each layer's ``autocast(device)`` says how it runs:
    ``lower`` (conv, linear: inputs and weights cast to the low dtype, and the casts are what it
    saves: a copy of an fp32 input, and of each weight it keeps), ``float32`` (inputs cast up, output
    fp32) or ``same`` (the inputs' dtype, promoted where they differ); node attribute ``elt`` is the
    bytes per element of each output.

    ``fused``: layers with a fused kernel (``Layer.saved_fused``: flash attention) keep what it
    keeps, as torch picks it on CPU; False: the unfused math path (what the meta device runs, and
    what Korthikanti et al. count).

    Layout: ``contiguous`` says a node's per-sample block is contiguous; ``perm`` (where known) is
    the physical order of the per-sample axes of a dense block that a transpose or permute left
    out of order, so that a later transpose back, and the reshape after it, are views (flash
    attention's output takes its query's layout).

    ``step_batch``: the batch the step runs at, where torch's layout depends on it (None: not known, over 1): at
    batch 1 an input read transposed (``BATCH_SECOND``, multi-head attention's in projection) is (L, 1, E), whose
    flattening drops the size-1 axis, a view: torch keeps the input itself, not a copy."""
    nodes = node_table(G)
    one = as_int(step_batch) == 1 if step_batch is not None else False
    if not amp and G.graph.pop("autocast_widths", False):  # a graph an --amp walk ran on before: its per-tensor widths are stale here
        for node in nodes.values():
            node.pop("elt", None)
    inp = nodes[INPUT]
    in_elt = 4 if amp else dtype_bytes
    inp.update(grad=False, storage=INPUT, contiguous=True, perm=None, elt=in_elt)
    # storage -> bytes per sample; token ids (the input of an embedding, which keeps it as its indices) are int64
    ids = any(nodes[n]["layer"].takes_indices for n in G.graph["order"] if INPUT in nodes[n]["inputs"])
    sizes: dict[str, Dim] = {INPUT: prod(inp["shape"]) * (8 if ids else in_elt)}
    if amp:
        G.graph["autocast_widths"] = True
        _saved_autocast(G, nodes, sizes, dtype_bytes, batch, device, fused, one)
        return
    width = saved_widths(dtype_bytes, device)
    # per formula key: what the layer saves (see _plan); where its output lives; the permutation
    # a reordering view applies; its output's bytes per sample
    memo: dict[int, tuple[list[_Planned] | None, str, _Reorder | None, Dim]] = {}
    seen: dict[str, str] = {}  # storage -> the layer that counts it
    for name in G.graph["order"]:
        node = nodes[name]
        key = node["formula_key"]  # set by the shapes pass
        got = memo.get(key)
        if got is None:
            layer = node["layer"]
            ins = node["in_shapes"]
            wanted = _wanted(layer, ins, node["shape"], fused)
            plan = None if wanted is None else [_plan(s, width, ins) for s in wanted]
            how = (fused and wanted is not None and layer.output_storage_fused(ins)) or layer.output_storage(ins)
            got = memo[key] = (plan, how, _reordering(layer, ins) if how == "strided" else None, prod(node["shape"]) * dtype_bytes)
        plan, how, perm, out_bytes = got
        inputs = node["inputs"]
        src = nodes[inputs[0]] if inputs else _NO_INPUT
        if how == "new" and inputs:  # the common cases inline: a new tensor, an in-place op
            node["storage"], node["contiguous"], node["perm"] = name, True, None
            sizes[name] = out_bytes
        elif how == "inplace" and inputs:
            node["storage"], node["contiguous"], node["perm"] = src["storage"], src["contiguous"], src["perm"]
        else:
            _place(node, name, how, perm, src, bool(inputs), sizes, out_bytes)
        grad = node["grad"] = src["grad"] or bool(node["weights"]) or (len(inputs) > 1 and any(nodes[i]["grad"] for i in inputs))
        if not grad:  # no autograd node: nothing is saved, whatever the type would save
            node["saved"], node["saved_bytes"] = [], 0
            continue
        if plan is None:
            node["saved"], node["saved_bytes"] = None, None
            continue
        found: list[tuple[Saved, str, Dim, Dim]] = []
        for s, kind, index, fixed, new_per in plan:
            if kind == 0:
                storage = nodes[inputs[index]]["storage"] if index else src["storage"]
                found.append((s, storage, 0, sizes[storage]))
            elif kind == 5:  # kept by an op on this input alone, which autograd records only where it requires grad
                i_node = nodes[inputs[index]]
                if i_node["grad"]:
                    found.append((s, i_node["storage"], 0, sizes[i_node["storage"]]))
            elif kind == 1:
                storage = node["storage"]
                found.append((s, storage, 0, sizes[storage]))
            elif kind == 2:
                found.append((s, name + ":" + s.tensor, fixed, new_per))
            elif kind == 4:  # torch.matmul's reshape for bmm: a view of the input where its layout allows, else a copy
                i_node = nodes[inputs[index]]
                storage = i_node["storage"]
                merge = s.merge or 0
                dense = merge > 0 and i_node["contiguous"] and sizes[storage] == fixed and not _expanded(i_node)
                if dense or _viewable(i_node, merge, sizes[storage], fixed, one):
                    found.append((s, storage, 0, sizes[storage]))
                else:
                    copy = _copy_of(s, width)
                    found.append((copy, f"{name}:copy of input {_projected_once(node, merge, index)}", 0, new_per))
            # kind 3, a parameter: counted as parameter memory
        node["saved"], node["saved_bytes"] = keep_once(name, found, seen, batch) if found else ([], 0)


_Planned = tuple[Saved, int, int, Dim, Dim]


def saved_widths(dtype_bytes: int, device: str) -> dict[str, int]:
    """Bytes per element of each ``SAVED_DTYPES`` key, for activations ``dtype_bytes`` wide on ``device``."""
    up = max(dtype_bytes, 4)  # attention's math path computes in fp32
    return {
        "act": dtype_bytes, "float32": 4, "int64": 8, "bool": 1, "dropout_mask": MASK_BYTES[device] or dtype_bytes,
        "act_fp32": up, "attn_dropout_mask": MASK_BYTES[device] or up, "norm_stats": dtype_bytes if device == "cpu" else 4,
    }  # fmt: skip


def keep_once(name: str, found: list[tuple[Saved, str, Dim, Dim]], seen: dict[str, str], batch: Dim) -> tuple[list[SavedTensor], Dim]:
    """Layer ``name``'s saved tensors, each ``(saved, storage, fixed, per_sample)``, as
    :class:`SavedTensor` s, and the bytes of those whose storage no earlier layer keeps (``seen``:
    storage -> the layer that counts it, updated): a storage counts once, at its first keeper."""
    kept: list[SavedTensor] = []
    total: Dim = 0
    for s, storage, fixed, per in found:
        at = seen.get(storage)
        if at is None:
            seen[storage] = name
            total = total + fixed + per * batch
            kept.append(_new(SavedTensor, (s, storage, fixed, per, True, name)))  # tuple.__new__: NamedTuple's own __new__ is a Python call
        else:
            kept.append(_new(SavedTensor, (s, storage, fixed, per, False, at)))
    return kept, total


_Reorder = tuple[tuple[int, ...], tuple[int, ...]]


def _reordering(layer: Any, ins: list[Any]) -> _Reorder | None:
    """A reordering view's (output axis of each input axis, the identity order), or None."""
    perm = layer.permutation(ins)
    if perm is None:
        return None
    where = [0] * len(perm)
    for i, a in enumerate(perm):
        where[a] = i
    return tuple(where), tuple(range(len(perm)))


def _place(
    node: dict[str, Any], name: str, how: str, perm: _Reorder | None, src: dict[str, Any], has_input: bool, sizes: dict[str, Dim], nbytes: Dim
) -> None:
    """Set the node's ``storage``, ``contiguous`` and ``perm`` from its layer's ``output_storage`` (``how``)."""
    if how == "param" or not has_input:  # a parameter read in forward: parameter memory, never saved activations
        node["storage"], node["contiguous"], node["perm"] = name, True, None
        sizes[name] = 0
    elif how == "new" or (how == "reshape" and not src["contiguous"]):
        node["storage"], node["contiguous"], node["perm"] = name, True, None
        sizes[name] = nbytes
    elif how == "new_strided":  # multi-head attention's output: (L, N, E) in memory
        node["storage"], node["contiguous"], node["perm"] = name, False, "batch_second"
        sizes[name] = nbytes
    elif how == "like_input":  # a new tensor in input 0's layout
        node["storage"], node["contiguous"], node["perm"] = name, src["contiguous"], src["perm"]
        sizes[name] = nbytes
    else:
        node["storage"] = src["storage"]
        if perm is not None:  # a reordering view: follow the physical order of a dense block
            where, ident = perm
            order = ident if src["contiguous"] else src["perm"]
            phys = tuple([where[a] for a in order]) if isinstance(order, tuple) and len(order) == len(where) else None
            node["contiguous"] = phys == ident
            node["perm"] = None if node["contiguous"] else phys
        else:
            node["contiguous"] = how == "reshape" or (how != "strided" and src["contiguous"])
            same = how == "inplace" or (how == "view" and node["shape"] == src["shape"])  # dropout(p=0): the tensor itself
            node["perm"] = src["perm"] if same else None


def _viewable(node: dict[str, Any], merge: int, storage_bytes: Dim, own_bytes: Dim, one: bool = False) -> bool:
    """Whether the batch axis and the first ``merge`` per-sample axes of a node's output merge into
    one axis without a copy (``BATCH_SECOND``: its first per-sample axis and then the batch axis):
    they are outermost, in that order, in a storage that holds just this tensor; ``one``: at batch 1,
    where ``BATCH_SECOND``'s (L, 1, ...) and a merge of one axis, (1, A, ...), merge by dropping the
    size-1 axis, always a view."""
    perm = node["perm"]
    if merge == BATCH_SECOND:
        return one or bool(perm == "batch_second")
    if merge == 0 or (one and merge == 1):
        return True
    if storage_bytes != own_bytes or _expanded(node):  # a view into a larger tensor, or one for the batch: the batch stride is not the sample's
        return False
    return bool(node["contiguous"]) or (isinstance(perm, tuple) and perm[:merge] == tuple(range(merge)))


def _expanded(node: dict[str, Any]) -> bool:
    """Whether a node's output is one tensor for the batch, expanded over it (batch stride 0: learned positions,
    ``wpe(arange(L))``): torch.matmul's or linear's merge of the batch axis into its rows copies it (review s10 #11:
    a linear on learned positions alone, batch 2, measured 32,768 B above what the walk counted as the table)."""
    layer = node.get("layer")
    return layer is not None and layer.same_for_every_sample()


def _projected_once(node: dict[str, Any], merge: int, index: int) -> int:
    """The input whose copy input ``index``'s is: multi-head attention (``BATCH_SECOND``) with packed weights projects a
    tensor passed as both k and v once (F._in_projection_packed's encoder-decoder path: one linear, one copy), and one
    passed as q, k and v once (its self-attention path); else its own."""
    inputs = node["inputs"]
    if merge != BATCH_SECOND or len(inputs) != 3 or inputs[1] != inputs[2] or "in_proj_weight" not in node["weights"]:
        return index
    return 0 if inputs[0] == inputs[1] else 1 if index == 2 else index


def _copy_of(s: Saved, width: dict[str, int]) -> Saved:
    """What a saved input is when torch copies it (matmul's reshape of a strided input, or the
    fp32 cast of a 16-bit one): a new tensor of ``s.shape``."""
    up = s.fp32_copy is not None and width["act"] < 4
    return Saved.new(f"copy of input {s.input}", s.fp32_copy if up and s.fp32_copy is not None else s.shape, s.why, "float32" if up else "act")


def _plan(s: Saved, width: dict[str, int], ins: list[Any]) -> _Planned:
    """One saved tensor as ``(saved, kind, input index, fixed bytes, bytes per sample)``: kind 0 an
    input's storage, 1 the output's, 2 a new tensor (its sizes worked out), 3 a parameter, 4 an
    input as torch.matmul hands it to bmm (fixed: the input's own bytes per sample, which its
    storage must have for the reshape to be a view; per sample: a copy's bytes), 5 an input's
    storage where that input requires grad (``Saved.if_grad``)."""
    if s.tensor == "input":
        if s.if_grad:
            return s, 5, s.input, 0, 0
        if s.merge is None and (s.fp32_copy is None or width["act"] >= 4):
            return s, 0, s.input, 0, 0
        copy = _copy_of(s, width)
        size = prod(copy.shape) * width[copy.dtype]
        if copy.dtype != "act" or tuple(ins[s.input]) != s.shape:  # cast up, or broadcast: always a copy
            return copy, 2, 0, 0, size
        return (s, 4, s.input, size, size) if s.merge else (s, 0, s.input, 0, 0)  # merging no axis: always a view
    if s.tensor == "output":
        return s, 1, 0, 0, 0
    if s.param is not None:
        return s, 3, 0, 0, 0
    if s.fp32_copy is not None and width["act"] < 4:  # computed in fp32: what is kept is an fp32 copy
        s = Saved.new(s.tensor + " (fp32 copy)", s.fp32_copy, s.why, "float32", s.batched)
    elif s.dtype in _RESOLVED:  # the dtype it has for these activations
        s = _new(Saved, (*s[:4], _resolve_dtype(s.dtype, width), *s[5:]))  # s._replace(dtype=...), without its Python-level cost
    size = prod(s.shape) * width[s.dtype]
    return (s, 2, 0, 0, size) if s.batched else (s, 2, 0, size, 0)


_RESOLVED = frozenset({"act_fp32", "attn_dropout_mask", "norm_stats"})


def _resolve_dtype(key: str, width: dict[str, int]) -> str:
    """``act_fp32``, ``attn_dropout_mask`` and ``norm_stats`` as the plain key they are here."""
    if key == "attn_dropout_mask" and width[key] == 1:
        return "bool"  # CUDA's native dropout
    if width[key] == width["act"]:
        return "dropout_mask" if key == "attn_dropout_mask" else "act"
    return "float32"


def _wanted(layer: Any, ins: list[Any], out: Any, fused: bool) -> list[Saved] | None:
    if fused:
        kept = layer.saved_fused(ins, out)
        if kept is not None:
            return list(kept)
    got = layer.saved(ins, out)
    return None if got is None else list(got)


def _saved_autocast(
    G: Graph, nodes: dict[str, dict[str, Any]], sizes: dict[str, Dim], low: int, batch: Dim, device: str, fused: bool, one: bool
) -> None:
    """:func:`saved_tensors` under autocast (see there): the same walk, with a dtype per tensor."""
    seen: dict[str, str] = {}
    for name in G.graph["order"]:
        node = nodes[name]
        layer = node["layer"]
        inputs = node["inputs"]
        if layer.source:  # a learned tensor (parameter): its storage is the parameter's, not an activation
            node.update(storage=name, contiguous=False, perm=None, grad=True, elt=4, saved=[], saved_bytes=0)
            sizes[name] = 0
            continue
        srcs = [nodes[i] for i in inputs]
        src = srcs[0] if srcs else _NO_INPUT
        mode = layer.autocast(device)
        in_elts = [s["elt"] for s in srcs] or [4]  # a parameter read in forward is fp32
        elt = low if mode == "lower" else 4 if mode in ("float32", "promote") else max(in_elts)  # promote: with an fp32 parameter
        node["elt"] = elt
        ins = node["in_shapes"]
        how = (fused and layer.saved_fused(ins, node["shape"]) is not None and layer.output_storage_fused(ins)) or layer.output_storage(ins)
        if inputs and how != "param" and elt != in_elts[0]:
            how = "new"  # cast: a new tensor
        _place(node, name, how, _reordering(layer, ins) if how == "strided" else None, src, bool(inputs), sizes, prod(node["shape"]) * elt)
        grad = node["grad"] = any(s["grad"] for s in srcs) or bool(node["weights"])
        wanted = _wanted(layer, ins, node["shape"], fused) if grad else []
        if mode is None or wanted is None or any(s.fp32_copy is not None or s.dtype not in _AUTOCAST_DTYPES for s in wanted):
            node["saved"], node["saved_bytes"] = None, None  # (attention's fp32 math path under autocast is not worked out)
            continue
        width = {"act": elt, "float32": 4, "int64": 8, "bool": 1, "dropout_mask": MASK_BYTES[device] or elt, "norm_stats": 4}  # fp32 weights
        found: list[tuple[Saved, str, Dim, Dim]] = []
        for s in wanted:
            if s.tensor == "input" and s.if_grad:  # kept by an op on this input alone (F.pad), where it requires grad
                if not srcs[s.input]["grad"]:
                    continue
                if device in s.fp32_on and in_elts[s.input] != 4:  # the op is on autocast's fp32 list: it keeps its fp32 cast
                    copy = Saved.new(f"fp32 copy of input {s.input}", ins[s.input], s.why, "float32")
                    found.append((copy, f"{name}:fp32 cast{s.input}", 0, prod(ins[s.input]) * 4))
                else:
                    found.append((s, srcs[s.input]["storage"], 0, sizes[srcs[s.input]["storage"]]))
            elif s.tensor == "input":
                cast = mode in ("lower", "float32") and in_elts[s.input] != elt
                i_node = srcs[s.input]
                storage = i_node["storage"]
                if cast:  # autocast saved its own copy, in the dtype it runs in
                    found.append((s, f"{name}:cast{_projected_once(node, s.merge or 0, s.input)}", 0, prod(ins[s.input]) * elt))
                elif s.merge is None or (tuple(ins[s.input]) == s.shape and _viewable(i_node, s.merge, sizes[storage], prod(s.shape) * elt, one)):
                    found.append((s, storage, 0, sizes[storage]))
                else:  # matmul's or linear's reshape copies it
                    copy = _copy_of(s, width)
                    found.append((copy, f"{name}:copy of input {_projected_once(node, s.merge or 0, s.input)}", 0, prod(s.shape) * elt))
            elif s.tensor == "output":
                found.append((s, node["storage"], 0, sizes[node["storage"]]))
            elif s.param is not None:
                if mode == "lower":  # autocast's cast copy (else the parameter itself: parameter memory)
                    shape = node["weights"].get(s.param) or layer.weights(ins)[s.param]  # (a tied weight is its owner's: cast here)
                    found.append((s, f"{name}:{s.param}", prod(shape) * low, 0))
            else:
                size = prod(s.shape) * width[s.dtype]
                found.append((s, f"{name}:{s.tensor}", *((0, size) if s.batched else (size, 0))))
        node["saved"], node["saved_bytes"] = keep_once(name, found, seen, batch)


_AUTOCAST_DTYPES = frozenset({"act", "float32", "int64", "bool", "dropout_mask", "norm_stats"})
