"""Handlers of attention arithmetic: ``q @ k.transpose(-2, -1)`` (``matmul``), ``torch.einsum`` of
the batched-matmul patterns torchvision and timm use, ``F.scaled_dot_product_attention``, and
``torch.nn.MultiheadAttention`` calls (a module that returns ``(output, weights)``), and a causal
mask applied by hand (``att.masked_fill(mask, float('-inf'))``: ``causal_mask``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...dims import as_int
from ...layers.base import shape_str
from ..importer import INPUT, Attr, Importer, Repeated, TensorRef, describe, module_path, same
from ..registry import handles

if TYPE_CHECKING:
    from torch import fx


@handles("torch.matmul", "Tensor.matmul", "operator.matmul", "Tensor.__matmul__", "torch.bmm", "Tensor.bmm", records="matmul")
def matmul(imp: Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "other"])
    x, y = imp.value(a["input"]), imp.value(a["other"])
    if isinstance(y, Attr) and not isinstance(x, Attr):  # x @ self.W: the learned W held once, lined up with x's axes
        first = imp.tensor(node, a["input"])
        names = [first, imp.parameter(node, y, len(imp.shape(first)))]
    elif isinstance(x, Attr) and not isinstance(y, Attr):
        second = imp.tensor(node, a["other"])
        names = [imp.parameter(node, x, len(imp.shape(second))), second]
    else:
        names = [imp.tensor(node, a["input"]), imp.tensor(node, a["other"])]
    weights = _back_to(imp, names[0], "causal_mask", ("softmax", "dropout", "identity"))
    imp.emit(node, "matmul", {"causal": "weights"} if weights is not None else {}, names)


def _layers_by_name(imp: Importer) -> dict[str, dict[str, Any]]:
    return {str(d["name"]): d for d in imp.layers}


def _inputs_of(imp: Importer) -> dict[str, list[str]]:
    """Each emitted layer's inputs (a layer without ``inputs`` reads the one before it; a source none)."""
    from ...layers import TYPE_NAMES

    out, prev = {}, INPUT
    for d in imp.layers:
        implicit = [] if TYPE_NAMES[d["type"]].source else [prev]
        out[str(d["name"])] = list(d.get("inputs", implicit))
        prev = str(d["name"])
    return out


def _back_to(imp: Importer, name: str, kind: str, through: tuple[str, ...], sole: bool = False) -> dict[str, Any] | None:
    """The emitted layer of type ``kind`` that ``name`` is, or comes from through one-input layers of
    the types ``through``; None if there is none.  ``sole``: every layer on the way (``kind``'s too)
    read by that one path only."""
    layers, inputs = _layers_by_name(imp), _inputs_of(imp)
    readers: dict[str, int] = {}
    for ins in inputs.values():
        for i in ins:
            readers[i] = readers.get(i, 0) + 1
    for _ in range(8):
        d = layers.get(name)
        if d is None or (sole and readers.get(name, 0) > 1):
            return None
        if d["type"] == kind:
            return d
        if d["type"] not in through or len(inputs[name]) != 1:
            return None
        name = inputs[name][0]
    return None


@handles("torch.einsum")
def einsum(imp: Importer, node: fx.Node) -> None:
    """``torch.einsum`` of a batched matrix product: same leading (batch) letters in both operands
    and the output, ``...ik,...kj->...ij`` with either operand's last two letters in either order
    (``"bghid,bghjd->bghij"`` is ``q @ k.transpose(-2, -1)``): a ``matmul``, with a ``transpose`` of
    an operand that is given the other way round."""
    eq = node.args[0] if node.args else None
    ops = list(node.args[1:])
    if len(ops) == 1 and isinstance(ops[0], list | tuple):
        ops = list(ops[0])
    if not isinstance(eq, str) or len(ops) != 2 or "->" not in eq:
        raise imp.unsupported(node, "einsum other than an explicit two-operand product")
    lhs, out = eq.replace(" ", "").split("->")
    terms = lhs.split(",")
    if len(terms) != 2 or "." in eq:
        raise imp.unsupported(node, f"einsum {eq!r}")
    x, y = terms
    n = len(out)
    if not (len(x) == len(y) == n >= 3) or x[: n - 2] != out[: n - 2] or y[: n - 2] != out[: n - 2]:
        raise imp.unsupported(node, f"einsum {eq!r} is not a batched matrix product")
    i, j = out[-2], out[-1]
    xs, ys = set(x[-2:]), set(y[-2:])
    ks = (xs & ys) - {i, j}
    if len(ks) != 1 or xs != {i, *ks} or ys != {j, *ks}:
        raise imp.unsupported(node, f"einsum {eq!r} is not a batched matrix product")
    (k,) = ks
    names = [imp.tensor(node, ops[0]), imp.tensor(node, ops[1])]
    if x[-2:] != i + k:
        names[0] = imp.emit(node, "transpose", {"dim0": -2, "dim1": -1}, [names[0]], imp.fresh(f"{imp.scoped(node)}_transpose"))
    if y[-2:] != k + j:
        names[1] = imp.emit(node, "transpose", {"dim0": -2, "dim1": -1}, [names[1]], imp.fresh(f"{imp.scoped(node)}_transpose"))
    imp.emit(node, "matmul", {}, names)


@handles("torch.nn.functional.scaled_dot_product_attention", records="scaled_dot_product_attention")
def sdpa(imp: Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"])
    if imp.value(a.get("attn_mask")) is not None:
        raise imp.unsupported(node, "an attention mask (attn_mask)")
    flags = {k: imp.value(a.get(k, False)) for k in ("is_causal", "enable_gqa")}
    for k, v in flags.items():
        if not isinstance(v, bool):
            raise imp.unsupported(node, f"{k}={describe(v)} (a computed flag; give True or False)")
    fields: dict[str, Any] = {"is_causal": flags["is_causal"], "enable_gqa": flags["enable_gqa"]}
    scale = imp.value(a.get("scale"))
    if isinstance(scale, int | float):
        fields["scale"] = float(scale)
    p = imp.value(a.get("dropout_p", 0.0))
    if isinstance(p, int | float) and p:
        fields["dropout_p"] = float(p)
    if any(isinstance(imp.value(a.get(k)), Repeated) for k in ("key", "value")):
        names = _repeated_to_heads(imp, node, a)
        fields["enable_gqa"] = flags["enable_gqa"] = True
    else:
        names = [imp.tensor(node, a[k]) for k in ("query", "key", "value")]
    q_shape, k_shape = imp.shape(names[0]), imp.shape(names[1])
    if not flags["enable_gqa"] and min(len(q_shape), len(k_shape)) >= 3 and not same(q_shape[-3], k_shape[-3]) and not same(k_shape[-3], 1):
        raise imp.unsupported(node, f"q has {q_shape[-3]} heads and k {k_shape[-3]}: grouped-query attention needs enable_gqa=True")
    imp.emit(node, "scaled_dot_product_attention", fields, names)


def _repeated_to_heads(imp: Importer, node: fx.Node, a: dict[str, Any]) -> list[str]:
    """q, and the k and v before their repeat, of sdpa over k and v of fewer heads repeated to q's (Hugging Face's
    ``repeat_kv``, ``repeat_interleave(k, n, dim=1)``: each head n times in place, as torch's ``enable_gqa`` repeats
    them): grouped-query attention, whose KV cache holds the heads before the repeat.  Anything else is refused: k and
    v repeated alike, along the heads axis (-3), to q's heads exactly."""
    q = imp.tensor(node, a["query"])
    k, v = imp.value(a["key"]), imp.value(a["value"])
    for what, x in (("k", k), ("v", v)):
        if not isinstance(x, Repeated) or x.expanded:
            other = "v" if what == "k" else "k"
            raise imp.unsupported(node, f"{other}'s heads are repeated (repeat_kv, repeat_interleave) and {what} is {describe(x)}: "
                                  "archcalc reads k and v repeated alike to q's heads (grouped-query attention)")
    assert isinstance(k, Repeated) and isinstance(v, Repeated)
    q_shape, k_shape, v_shape = imp.shape(q), imp.shape(k.src), imp.shape(v.src)
    why = None
    if min(len(q_shape), len(k_shape), len(v_shape)) < 3 or not len(q_shape) == len(k_shape) == len(v_shape):
        why = f"q {_shape(q_shape)}, k {_shape(k_shape)} and v {_shape(v_shape)} are not (heads, L, E) alike"
    elif k.axis != len(k_shape) - 3 or v.axis != len(v_shape) - 3:
        why = f"k and v are repeated along axes {k.axis + 1} and {v.axis + 1}, not along the heads (axis {len(k_shape) - 2}, -3)"
    elif not same(k.times, v.times) or not same(k_shape[-3], v_shape[-3]):
        why = f"k's {k_shape[-3]} heads are repeated {k.times} times and v's {v_shape[-3]} {v.times} times"
    elif not same(k_shape[-3] * k.times, q_shape[-3]):
        why = f"k and v's {k_shape[-3]} heads repeated {k.times} times are {k_shape[-3] * k.times}, not q's {q_shape[-3]}"
    if why is not None:
        raise imp.unsupported(node, f"{why}: archcalc reads k and v of fewer heads repeated to q's (grouped-query attention)")
    return [q, k.src, v.src]


def _shape(s: Sequence[Any]) -> str:
    return shape_str(tuple(s))


def multihead_attention(imp: Importer, node: fx.Node, inputs: list[str], name: str, fields: dict[str, Any]) -> None:
    """``mha(q, k, v, need_weights=False)``: one ``multiheadattention`` layer (self-attention: one
    input); its value is the pair ``(output, None)`` that ``[0]`` reads."""
    from ..extra_modules import MultiheadAttention as LayerModule

    module = imp.root.get_submodule(str(node.target))
    own = isinstance(module, LayerModule)  # archcalc's module of the layer: batch-first in and out, returns the output alone
    if not own and not getattr(module, "batch_first", False):
        raise imp.unsupported(node, "batch_first=False (the sequence axis first): archcalc's shapes keep the batch axis first")
    for k, v in node.kwargs.items():
        if k == "need_weights" and imp.value(v) is False:
            continue
        if k in ("attn_mask", "key_padding_mask") and imp.value(v) is None:
            continue
        raise imp.unsupported(node, f"argument {k}={imp.value(v)!r}")
    if len(set(inputs)) == 1:
        inputs = inputs[:1]
    fields["bias"] = getattr(module, "in_proj_bias", None) is not None
    e = getattr(module, "embed_dim", None)
    for f in ("kdim", "vdim"):
        if fields.get(f) == e:
            fields.pop(f)
    out = imp.emit(node, "multiheadattention", fields, inputs, name)
    if not own:
        imp.values[node] = (TensorRef(out), None)


@handles("Tensor.masked_fill", "torch.masked_fill", records="causal_mask")
def masked_fill(imp: Importer, node: fx.Node) -> None:
    """``att.masked_fill(self.bias[:, :, :T, :T] == 0, float('-inf'))`` (nanoGPT's attention without
    flash): a ``causal_mask`` when the mask, a tensor the model holds (its values read here: the
    buffer sliced by the input's size, a constant of the trace), is True exactly above the
    diagonal; any other mask or fill value is refused, naming what it is."""
    a = imp.bind(node, ["input", "mask", "value"])
    scores = imp.tensor(node, a["input"])
    value, mask = imp.value(a.get("value")), imp.value(a.get("mask"))
    if not (isinstance(value, float) and value == float("-inf")):
        raise imp.unsupported(node, f"masked_fill with {describe(value)}: archcalc reads a causal mask filled with float('-inf') "
                                    "(attention written out)")
    if not isinstance(mask, Attr) or mask.parameter:
        raise imp.unsupported(node, f"masked_fill by {describe(mask)}: archcalc reads a causal mask the model holds "
                                    "(a buffer such as nanoGPT's tril(ones) bias, sliced by the input's size)")
    shape = imp.shape(scores)
    why = causal_mask_problem(imp.tensor_of(mask), shape)
    if why:
        where = module_path(node)
        raise imp.unsupported(node, f"masked_fill by {_mask_name(mask.target)}{f' in {where!r}' if where else ''}: {why}")
    product = _back_to(imp, scores, "matmul", ("scalar",), sole=True)  # q @ k^T, scaled: its products at masked places are masked work
    if product is not None and "causal" not in product:
        product["causal"] = "scores"
    size = _mask_buffer(imp, node, mask, shape)
    imp.emit(node, "causal_mask", {} if size is None else {"buffer_size": size}, [scores])


def _mask_buffer(imp: Importer, node: fx.Node, mask: Attr, scores: Sequence[Any]) -> int | None:
    """The ``buffer_size`` of a causal mask the model keeps as a buffer: nanoGPT's
    ``register_buffer("bias", torch.tril(torch.ones(n, n)).view(1, 1, n, n))``, sliced to the scores' L x S in forward, so
    that ``memory`` counts its n x n values as a hand-written spec's ``buffer_size`` does.

    The trace holds the slice compared (``bias[:, :, :T, :T] == 0``) as a constant, which no longer names the buffer:
    the buffer is looked for among those of the module whose forward masks, then of the modules around it (a mask the
    whole model shares): one of leading axes 1 and n x n last ones, n at least L and S, causal over all of it (non-zero
    exactly where key <= query, or exactly where key > query).  A buffer an earlier causal_mask took is not counted
    again (one tensor, read by every layer); none found: the mask is made in forward, nothing is kept.  A causal buffer
    of another dtype than the parameters (a bool tril), or one of several in the same module, is not counted, which the
    spec's description says: a causal_mask's buffer is a tril(ones) in the parameters' dtype, as nanoGPT's."""
    import torch

    held = imp.tensor_of(mask)
    length, keys = (as_int(d) for d in scores[-2:])
    if length is None or keys is None or held is None:
        return None
    if not mask.target.startswith("_tensor_constant"):  # the buffer itself, read whole
        owners = [(mask.target, held)] if id(held) not in imp.mask_buffers else []
    else:
        owners = []
        paths = [str(path) for path, _ in (node.meta.get("nn_module_stack") or {}).values()]
        for path in [*reversed(paths), ""]:
            module = imp.root.get_submodule(path)
            found = [(f"{path}.{n}" if path else n, b) for n, b in module.named_buffers(recurse=False)
                     if id(b) not in imp.mask_buffers and _causal_buffer(b, max(length, keys))]  # (the cheap test first)
            if found:
                owners = found
                break
    if not owners:
        return None
    if len(owners) > 1:
        names = ", ".join(repr(n) for n, _ in owners)
        _note_once(imp, "causal-mask buffers a module holds several of are not counted", f" (a causal_mask counts the one it slices, buffer_size): "
                   f"{module_path(node) or 'the model'} holds {names}")
        return None
    name, buffer = owners[0]
    imp.mask_buffers.add(id(buffer))
    weights = next((p.dtype for p in imp.root.parameters()), torch.get_default_dtype())
    if buffer.dtype != weights:
        what = f"causal-mask buffers in {str(buffer.dtype).removeprefix('torch.')} are not counted"
        _note_once(imp, what, f" (a causal_mask's buffer_size counts a tril(ones) in the parameters' dtype, "
                   f"{str(weights).removeprefix('torch.')}, as nanoGPT's): the first is {name!r}")
        return None
    return int(buffer.shape[-1])


def _note_once(imp: Importer, what: str, detail: str) -> None:
    """A note for the spec's description, once for every layer it is true of (12 layers, one line)."""
    if not any(n.startswith(what) for n in imp.notes):
        imp.notes.append(what + detail)


def _causal_buffer(b: Any, at_least: int) -> bool:
    """A (1, ..., 1, n, n) tensor with values, n >= ``at_least``, non-zero exactly on and below the diagonal (nanoGPT's
    tril(ones)) or exactly above it (the mask itself)."""
    import torch

    if not isinstance(b, torch.Tensor) or b.is_meta or b.dim() < 2 or any(d != 1 for d in b.shape[:-2]):
        return False
    n = int(b.shape[-1])
    if int(b.shape[-2]) != n or n < at_least:
        return False
    nonzero = b.reshape(n, n) != 0
    tril = torch.ones(n, n, dtype=torch.bool, device=b.device).tril()
    return bool(torch.equal(nonzero, tril) or torch.equal(nonzero, ~tril))


def _mask_name(target: str) -> str:
    return "a mask computed from a buffer" if target.startswith("_tensor_constant") else f"the buffer {target!r}"


CAUSAL = "causal"
"""What :func:`mask_setting` says of a causal mask (verify compares it with the spec's)."""


def causal_mask_problem(mask: Any, scores: Sequence[Any]) -> str | None:
    """Why ``mask`` is not the causal mask of (..., L, S) scores, or None when it is: a bool tensor
    whose leading axes are 1 (the same for every sample and head) and whose last two are (L, S),
    True exactly where key j > query i (``tril(ones(L, S)) == 0``: torch's top-left aligned mask,
    sdpa's ``is_causal``).  Its values are read: a mask on the meta device has none and is refused."""
    import torch

    if not isinstance(mask, torch.Tensor):
        return "it is not a tensor"
    if mask.dtype != torch.bool:
        return f"it is a {str(mask.dtype).removeprefix('torch.')} tensor, not a bool mask"
    length, keys = (as_int(d) for d in scores[-2:]) if len(scores) >= 2 else (None, None)
    if length is None or keys is None:
        return f"the scores are {shape_str(tuple(scores))} for this input: give the sizes numbers"
    shape = tuple(int(d) for d in mask.shape)
    if len(shape) < 2 or shape[-2:] != (length, keys) or any(d != 1 for d in shape[:-2]) or len(shape) > len(scores) + 1:
        return f"its shape {shape_str(shape)} is not the scores' ({length}, {keys}) with leading axes of 1 (the same mask for every head)"
    if mask.is_meta:
        return ("it is on the meta device, which holds no values, so it cannot be checked to be causal: build the model (at least "
                "its mask buffer) on the CPU")
    want = torch.ones(length, keys, dtype=torch.bool, device=mask.device).triu(1)
    wrong = (mask.reshape(length, keys) != want).nonzero()
    if len(wrong) == 0:
        return None
    i, j = (int(x) for x in wrong[0])
    return (f"it is not causal: it {'hides' if bool(mask.reshape(length, keys)[i, j]) else 'keeps'} key {j} for query {i} "
            f"({len(wrong)} of {length * keys} places differ from True exactly where key > query, tril(ones) == 0)")


def mask_setting(mask: Any, scores: Sequence[Any]) -> str:
    """``"causal"``, or what else the mask is (verify's setting of a recorded masked_fill)."""
    return causal_mask_problem(mask, scores) or CAUSAL


__all__ = ["causal_mask_problem", "einsum", "mask_setting", "masked_fill", "matmul", "multihead_attention", "sdpa"]


@handles("archcalc.torch.idioms.rotary_embedding")
def rotary_embedding(imp: Importer, node: fx.Node) -> None:
    """An inline rotary embedding, found and replaced by one call before the walk (:mod:`archcalc.torch.idioms`)."""
    x, base = node.args
    imp.emit(node, "rotary", {"base": base}, [imp.tensor(node, x)])
