"""Handlers of calls that move data without arithmetic: reshapes, flatten, transpose, slicing,
``torch.cat``, ``chunk``, ``F.pad``, channel shuffle, and the size queries (``x.size(0)``,
``x.shape``) whose values feed them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ...dims import as_int, prod
from ...layers import TYPE_NAMES
from ..importer import BATCH, Grouped, Importer, Pieces, TensorRef, contains, describe, same, spec_dim
from ..registry import handles

if TYPE_CHECKING:
    from torch import fx

@handles("torch.cat", "torch.concat", "torch.concatenate")
def _cat(imp: Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["tensors", "dim"] if "axis" not in node.kwargs else ["tensors", "axis"])
    tensors = a["tensors"]
    if not isinstance(tensors, list | tuple):
        raise imp.unsupported(node, "expected a list of tensors")
    names = [imp.tensor(node, t) for t in tensors]
    dim = imp.value(a.get("dim", a.get("axis", 0)))
    if len(names) == 1:
        imp.values[node] = TensorRef(names[0])  # cat of one tensor: a copy of it
        return
    imp.emit(node, "concat", {"dim": dim}, names)


@handles("torch.flatten", "Tensor.flatten")
def _flatten(imp: Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "start_dim", "end_dim"])
    src = imp.tensor(node, a["input"])
    fields = {"start_dim": imp.value(a.get("start_dim", 0)), "end_dim": imp.value(a.get("end_dim", -1))}
    imp.emit(node, "flatten", fields, [src])


@handles("torch.reshape", "Tensor.view", "Tensor.reshape")
def _reshape(imp: Importer, node: fx.Node) -> None:
    """``view``/``reshape`` that keeps the batch axis and merges adjacent axes: a ``flatten``; one
    that splits an axis: an ``unflatten``.

    Splitting the channels into groups, swapping the two group axes and merging them back is
    torchvision's ``channel_shuffle``: a ``channelshuffle`` layer.
    """
    if node.kwargs:
        raise imp.unsupported(node, f"keyword arguments {sorted(node.kwargs)}")
    grouped = imp.value(node.args[0])
    src = grouped.src if isinstance(grouped, Grouped) else imp.tensor(node, node.args[0])
    raw = list(node.args[1:])
    if len(raw) == 1 and isinstance(raw[0], list | tuple):
        raw = list(raw[0])
    elif len(raw) == 1 and isinstance(imp.value(raw[0]), tuple):
        raw = list(imp.value(raw[0]))
    target = [imp.value(x) for x in raw]
    shape = imp.shape(src)
    total = prod(shape)
    if any(not (x is BATCH or (isinstance(x, int) and not isinstance(x, bool))) for x in target):
        raise imp.unsupported(node, f"reshape to {target!r}")
    if not target:
        raise imp.unsupported(node, "reshape to a scalar")
    batch_kept = (
        target[0] is BATCH
        or (  # x.view(x.size(0), ...), or x.view(-1, <the per-sample sizes>)
            target[0] == -1 and -1 not in target[1:] and all(isinstance(x, int) for x in target[1:]) and same(prod(target[1:]), total)
        )
    )
    if batch_kept:
        per = target[1:]
    else:
        raise imp.unsupported(node, f"reshape to {_shape_text(target)} does not keep the batch axis {_shape_text([BATCH, *shape])}")
    if any(x is BATCH or (x != -1 and x <= 0) for x in per) or sum(1 for x in per if x == -1) > 1:
        raise imp.unsupported(node, f"reshape to {_shape_text(target)}")
    if -1 in per:
        known = prod(x for x in per if x != -1)
        per = [total // known if x == -1 else x for x in per]
    unchanged = len(per) == len(shape) and all(same(x, y) for x, y in zip(per, shape, strict=True))
    if isinstance(grouped, Grouped):
        if not unchanged:
            raise imp.unsupported(node, f"reshape of channels split into {grouped.groups} groups to {_shape_text([BATCH, *per])}")
        if grouped.transposed:
            imp.emit(node, "channelshuffle", {"groups": grouped.groups}, [src])
        else:
            imp.values[node] = TensorRef(src)  # split and merged back: no layer
        return
    if unchanged:
        imp.values[node] = TensorRef(src)  # same shape: no layer
        return
    if (
        "channelshuffle" in TYPE_NAMES
        and len(per) == len(shape) + 1
        and isinstance(per[0], int)
        and per[0] > 1
        and same(per[0] * per[1], shape[0])
        and all(same(x, y) for x, y in zip(per[2:], shape[1:], strict=True))
    ):
        imp.values[node] = Grouped(src, per[0])  # (C, ...) -> (g, C/g, ...): wait for the transpose
        return
    for a in range(len(shape)):
        for b in range(a + 1, len(shape) + 1):
            merged = [*shape[:a], prod(shape[a:b]), *shape[b:]]
            if len(merged) == len(per) and all(same(x, y) for x, y in zip(merged, per, strict=True)):
                fields = {"start_dim": a + 1, "end_dim": -1 if b == len(shape) else b}
                imp.emit(node, "flatten", fields, [src])
                return
    for a in range(len(shape)):  # one axis split in several: x.view(b, c, 1, 1) after a Linear (squeeze-and-excitation)
        for n in range(2, len(per) - len(shape) + 2):
            pieces = per[a : a + n]
            if (
                len(per) == len(shape) + n - 1
                and all(same(x, y) for x, y in zip(per[:a], shape[:a], strict=True))
                and all(same(x, y) for x, y in zip(per[a + n :], shape[a + 1 :], strict=True))
                and same(prod(pieces), shape[a])
            ):
                imp.emit(node, "unflatten", {"dim": a + 1, "unflattened_size": [spec_dim(x) for x in pieces]}, [src])
                return
    raise imp.unsupported(
        node, f"reshape of {_shape_text([BATCH, *shape])} to {_shape_text([BATCH, *per])} neither merges adjacent axes nor splits one"
    )


def _shape_text(dims: Iterable[Any]) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


@handles("Tensor.size")
def _size(imp: Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "dim"])
    full = (BATCH, *imp.shape(imp.tensor(node, a["input"])))
    dim = imp.value(a.get("dim"))
    if dim is not None and not (isinstance(dim, int) and -len(full) <= dim < len(full)):
        raise imp.fail(node, f"size({dim!r}) of a tensor with {len(full)} axes")
    imp.values[node] = full if dim is None else full[dim]


@handles("Tensor.dim")
def _dim(imp: Importer, node: fx.Node) -> None:
    imp.values[node] = len(imp.shape(imp.tensor(node, node.args[0]))) + 1


@handles("Tensor.expand_as", "Tensor.expand")
def _alias(imp: Importer, node: fx.Node) -> None:
    """``x.contiguous()``, ``y.expand_as(x)``: the same tensor, no layer (a layer that cannot broadcast it says so)."""
    v = imp.value(node.args[0])
    imp.values[node] = v if isinstance(v, Grouped) else TensorRef(imp.tensor(node, node.args[0]))


@handles("torch.transpose", "Tensor.transpose")
def _transpose(imp: Importer, node: fx.Node) -> None:
    """``transpose(1, 2)`` of channels split into groups (channel shuffle); nothing else."""
    a = imp.bind(node, ["input", "dim0", "dim1"])
    v = imp.value(a["input"])
    dims = {imp.value(a.get("dim0")), imp.value(a.get("dim1"))}
    if isinstance(v, Grouped) and dims == {1, 2}:
        imp.values[node] = Grouped(v.src, v.groups, not v.transposed)
        return
    raise imp.unsupported(node, "a transpose other than the swap of channel groups of a channel shuffle")


@handles("builtins.getattr")
def _getattr(imp: Importer, node: fx.Node) -> None:
    obj, attr = node.args[0], node.args[1]
    v = imp.value(obj)
    if isinstance(v, TensorRef) and attr == "shape":
        imp.values[node] = (BATCH, *imp.shape(v.name))
        return
    if isinstance(v, TensorRef) and attr == "ndim":
        imp.values[node] = len(imp.shape(v.name)) + 1
        return
    raise imp.unsupported(node, f"attribute {attr!r}")


@handles("torch.chunk", "Tensor.chunk")
def _chunk(imp: Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "chunks", "dim"])
    src = imp.tensor(node, a["input"])
    chunks, dim = imp.value(a["chunks"]), imp.value(a.get("dim", 0))
    if "chunk" not in TYPE_NAMES:
        raise imp.unsupported(node)
    imp.values[node] = Pieces(src, chunks, dim)


@handles("operator.getitem")
def _getitem(imp: Importer, node: fx.Node) -> None:
    obj, idx = imp.value(node.args[0]), imp.value(node.args[1])
    if isinstance(obj, Pieces):
        imp.emit(node, "chunk", {"chunks": obj.chunks, "index": idx, "dim": obj.dim}, [obj.src])
        return
    if isinstance(obj, TensorRef):
        _slice(imp, node, obj.name, idx)
        return
    if isinstance(obj, list | tuple) and not contains(idx, lambda x: isinstance(x, TensorRef)):
        try:
            imp.values[node] = obj[idx]
        except (IndexError, TypeError) as e:
            raise imp.fail(node, f"indexing {describe(obj)}: {e}") from None
        return
    raise imp.unsupported(node, f"indexing {describe(obj)}")


def _slice(imp: Importer, node: fx.Node, src: str, idx: Any) -> None:
    """``x[:, :, ::s, ::s]`` -> subsample; ``x[:, :, a:a+h, b:b+w]`` (centered, constant) -> crop."""
    shape = imp.shape(src)
    items = list(idx) if isinstance(idx, tuple) else [idx]
    if items.count(Ellipsis) > 1 or not all(isinstance(i, slice) or i is Ellipsis for i in items):
        raise imp.unsupported(node, "indexing other than slicing")
    if Ellipsis in items:
        k = items.index(Ellipsis)
        items = [*items[:k], *[slice(None)] * (len(shape) + 1 - (len(items) - 1)), *items[k + 1 :]]
    items += [slice(None)] * (len(shape) + 1 - len(items))
    if len(items) != len(shape) + 1:
        raise imp.unsupported(node, "more indices than axes")
    full = slice(None)
    if items[0] != full or items[1] != full:
        raise imp.unsupported(node, "slicing the batch or channel axis")
    spatial = items[2:]
    if all(s.start is None and s.stop is None for s in spatial):
        steps = [1 if s.step is None else s.step for s in spatial]
        if all(st == 1 for st in steps):
            imp.values[node] = TensorRef(src)  # x[:, :] is x
            return
        if "subsample" in TYPE_NAMES and all(isinstance(st, int) and st > 0 for st in steps):
            imp.emit(node, "subsample", {"stride": steps[0] if len(set(steps)) == 1 else steps}, [src])
            return
    elif "crop" in TYPE_NAMES and all(s.step in (None, 1) for s in spatial):
        sizes = []
        for s, h in zip(spatial, shape[1:], strict=True):
            hi = as_int(h)
            if hi is None or not all(v is None or isinstance(v, int) for v in (s.start, s.stop)):
                raise imp.unsupported(node, "slicing with symbolic or computed bounds")
            start, stop, _ = s.indices(hi)
            size = stop - start
            if size <= 0 or start != (hi - size) // 2:
                raise imp.unsupported(node, f"slice {start}:{stop} of {hi} is not a center crop")
            sizes.append(size)
        imp.emit(node, "crop", {"size": sizes[0] if len(set(sizes)) == 1 else sizes}, [src])
        return
    raise imp.unsupported(node, "slicing that is neither a strided subsample nor a center crop")


@handles("torch.nn.functional.pad")
def _pad(imp: Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "pad", "mode", "value"])
    src = imp.tensor(node, a["input"])
    pad = imp.value(a["pad"])
    mode, value = imp.value(a.get("mode", "constant")), imp.value(a.get("value"))
    if mode != "constant" or value not in (None, 0, 0.0):
        raise imp.unsupported(node, f"padding mode {mode!r} with value {value!r} (only zero padding)")
    if not isinstance(pad, list | tuple) or len(pad) % 2 or not all(isinstance(p, int) for p in pad):
        raise imp.unsupported(node, f"pad {pad!r}")
    shape = imp.shape(src)
    n = len(shape) - 1
    pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]  # last axis first
    if len(pairs) <= n:
        kind = f"zeropad{n}d"
        if kind not in TYPE_NAMES:
            raise imp.unsupported(node, f"no zero-padding layer for {n} spatial axes")
        full = [p for pair in pairs for p in pair] + [0] * (2 * n - 2 * len(pairs))
        imp.emit(node, kind, {"padding": full[0] if len(set(full)) == 1 else full}, [src])
        return
    if len(pairs) == n + 1 and all(p == (0, 0) for p in pairs[:n]) and "channelpad" in TYPE_NAMES:
        before, after = pairs[n]
        if before != (before + after) // 2:
            raise imp.unsupported(node, f"channel padding {before} before and {after} after; channelpad puts (extra)//2 zeros before")
        imp.emit(node, "channelpad", {"out_channels": spec_dim(shape[0] + before + after)}, [src])
        return
    raise imp.unsupported(node, f"padding {pad!r} covers the batch axis or both channels and space")


@handles("torch.nn.functional.channel_shuffle", "torch.channel_shuffle", "torch.native_channel_shuffle")
def _channel_shuffle(imp: Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "groups"])
    imp.emit(node, "channelshuffle", imp.fields_of(node, "channelshuffle", {"groups": a["groups"]}), [imp.tensor(node, a["input"])])
