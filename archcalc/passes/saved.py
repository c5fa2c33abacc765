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

from dataclasses import dataclass

from ..dims import Dim, prod
from ..graph import INPUT, Graph, node_table
from ..layers.base import Saved

MASK_BYTES = {"cpu": None, "cuda": 1}  # dropout's mask: None = the activations' dtype


@dataclass(frozen=True, slots=True)
class SavedTensor:
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


def saved_tensors(G: Graph, dtype_bytes: int, batch: Dim = 1, device: str = "cpu") -> None:
    """Set ``grad``, ``storage``, ``contiguous``, ``saved`` and ``saved_bytes`` on every node (see
    the module docstring); ``device`` decides dropout's mask dtype (CPU: the activations', CUDA: bool)."""
    nodes = node_table(G)
    inp = nodes[INPUT]
    inp.update(grad=False, storage=INPUT, contiguous=True)
    sizes: dict[str, Dim] = {INPUT: prod(inp["shape"]) * dtype_bytes}  # storage -> bytes per sample
    mask = MASK_BYTES[device] or dtype_bytes
    width = {"act": dtype_bytes, "float32": 4, "int64": 8, "bool": 1, "dropout_mask": mask}
    memo: dict[tuple[object, ...], list[Saved] | None] = {}
    seen: dict[str, str] = {}  # storage -> the layer that counts it
    for name in G.graph["order"]:
        node = nodes[name]
        layer = node["layer"]
        srcs = [nodes[i] for i in node["inputs"]]
        how = layer.output_storage()
        if how == "new" or (how == "reshape" and not srcs[0]["contiguous"]):
            node["storage"], node["contiguous"] = name, True
            sizes[name] = prod(node["shape"]) * dtype_bytes
        else:
            node["storage"] = srcs[0]["storage"]
            node["contiguous"] = how == "reshape" or (how != "strided" and srcs[0]["contiguous"])
        node["grad"] = grad = bool(node["weights"]) or any(s["grad"] for s in srcs)
        key = node["formula_key"]  # set by the shapes pass
        if key in memo:
            wanted = memo[key]
        else:
            wanted = memo[key] = layer.saved(node["in_shapes"], node["shape"])
        if not grad:  # no autograd node: nothing is saved, whatever the type would save
            node["saved"], node["saved_bytes"] = [], 0
            continue
        if wanted is None:
            node["saved"], node["saved_bytes"] = None, None
            continue
        kept: list[SavedTensor] = []
        total: Dim = 0
        for s in wanted:
            if s.tensor == "input":
                storage = srcs[s.input]["storage"]
            elif s.tensor == "output":
                storage = node["storage"]
            else:
                storage = f"{name}:{s.tensor}"
                size = prod(s.shape) * width[s.dtype]
                sizes[storage] = size if s.batched else 0
                if not s.batched:
                    first = storage not in seen
                    at = seen.setdefault(storage, name)
                    kept.append(SavedTensor(s, storage, size, 0, first, at))
                    total = total + (size if first else 0)
                    continue
            first = storage not in seen
            at = seen.setdefault(storage, name)
            item = SavedTensor(s, storage, 0, sizes[storage], first, at)
            kept.append(item)
            if first:
                total = total + item.nbytes(batch)
        node["saved"], node["saved_bytes"] = kept, total
