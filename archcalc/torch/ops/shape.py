"""Handlers of calls that move data without arithmetic: reshapes, flatten, transpose, slicing,
``torch.cat``, ``chunk``, ``F.pad``, channel shuffle, and the size queries (``x.size(0)``,
``x.shape``) whose values feed them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ...dims import as_int, is_symbolic, prod, simplify
from ...layers import TYPE_NAMES
from ..importer import (
    BATCH,
    Attr,
    Expanded,
    Grouped,
    Importer,
    Moved,
    NewAxis,
    Pieces,
    Positions,
    Repeated,
    Split,
    TensorRef,
    Unbound,
    Unusable,
    contains,
    describe,
    moved_axis,
    new_axis_at,
    same,
    spec_dim,
)
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
    fields = {"start_dim": imp.value(a.get("start_dim", 0)), "end_dim": imp.value(a.get("end_dim", -1))}
    v = imp.value(a["input"])
    if isinstance(v, Repeated) and v.expanded:  # x.unsqueeze(2).expand(b, kv, n, s, d).flatten(1, 2): repeat_kv's reshape
        _merge_copies(imp, node, v, _flattened(imp, node, _expanded_shape(imp, v), fields["start_dim"], fields["end_dim"]))
        return
    imp.emit(node, "flatten", fields, [imp.tensor(node, a["input"])])


def _flattened(imp: Importer, node: fx.Node, shape: tuple[Any, ...], start: Any, end: Any) -> list[Any]:
    """The per-sample shape ``flatten(start, end)`` makes of a tensor of per-sample ``shape``; one that merges the batch
    axis is refused."""
    rank = len(shape) + 1
    if not all(isinstance(d, int) and not isinstance(d, bool) and -rank <= d < rank for d in (start, end)) or start % rank == 0 \
            or start % rank > end % rank:
        raise imp.unsupported(node, f"flatten({start!r}, {end!r}) of {_shape_text([BATCH, *shape])}: archcalc reads a flatten of "
                              "axes after the batch")
    a, b = start % rank - 1, end % rank
    return [*shape[:a], prod(shape[a:b]), *shape[b:]]


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
    if isinstance(grouped, Attr):
        _reshape_attr(imp, node, grouped)
        return
    if isinstance(grouped, Repeated) and grouped.expanded:
        _merge_copies(imp, node, grouped, _reshape_target(imp, node, _expanded_shape(imp, grouped)))
        return
    src = grouped.src if isinstance(grouped, Grouped) else imp.tensor(node, node.args[0])
    shape = imp.shape(src)
    per = _reshape_target(imp, node, shape)
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
        and not same(per[1], 1)  # groups of one channel: no shuffle, and (s, d) viewed as (s, 1, d) is one head (multi-query attention)
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
    # one axis split in several: x.view(b, c, 1, 1) after a Linear (squeeze-and-excitation); the last axis that can be, where
    # axes of 1 make it ambiguous: (s, d) viewed as (s, 1, d) is d split into one head (multi-query attention), not s into (s, 1)
    for a in reversed(range(len(shape))):
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
    if "reshape" in TYPE_NAMES:
        kind = "view" if node.target == "view" and "view" in TYPE_NAMES else "reshape"
        imp.emit(node, kind, {"shape": [spec_dim(x) for x in per]}, [src])
        return
    raise imp.unsupported(
        node, f"reshape of {_shape_text([BATCH, *shape])} to {_shape_text([BATCH, *per])} neither merges adjacent axes nor splits one"
    )


def _reshape_target(imp: Importer, node: fx.Node, shape: tuple[Any, ...]) -> list[Any]:
    """The per-sample shape a ``view``/``reshape`` of a tensor of per-sample ``shape`` asks for (its -1 worked out);
    one that does not keep the batch axis first is refused."""
    raw = list(node.args[1:])
    if len(raw) == 1 and isinstance(raw[0], list | tuple):
        raw = list(raw[0])
    elif len(raw) == 1 and isinstance(imp.value(raw[0]), tuple):
        raw = list(imp.value(raw[0]))
    target = [imp.value(x) for x in raw]
    total = prod(shape)
    if any(not (x is BATCH or is_symbolic(x) or (isinstance(x, int) and not isinstance(x, bool))) for x in target):
        raise imp.unsupported(node, f"reshape to {target!r}")
    if not target:
        raise imp.unsupported(node, "reshape to a scalar")
    batch_kept = (
        target[0] is BATCH
        or (  # x.view(x.size(0), ...), or x.view(-1, <the per-sample sizes>)
            target[0] == -1 and -1 not in target[1:] and all(x is not BATCH for x in target[1:]) and same(prod(target[1:]), total)
        )
    )
    if batch_kept:
        per = target[1:]
    else:
        raise imp.unsupported(node, f"reshape to {_shape_text(target)} does not keep the batch axis {_shape_text([BATCH, *shape])}")
    if any(x is BATCH or (isinstance(x, int) and x != -1 and x <= 0) for x in per) or sum(1 for x in per if x == -1) > 1:
        raise imp.unsupported(node, f"reshape to {_shape_text(target)}")
    if -1 in per:
        known = prod(x for x in per if x != -1)
        rest = simplify(total / known) if is_symbolic(total) or is_symbolic(known) else total // known
        per = [rest if x == -1 else x for x in per]
    return per


def _expanded_shape(imp: Importer, v: Repeated) -> tuple[Any, ...]:
    """The per-sample shape of ``x[:, :, None].expand(b, kv, n, s, d)``: the copies on an axis of their own after ``v.axis``."""
    shape = imp.shape(v.src)
    return (*shape[: v.axis + 1], v.times, *shape[v.axis + 1 :])


def _merge_copies(imp: Importer, node: fx.Node, v: Repeated, per: list[Any]) -> None:
    """``x[:, :, None].expand(b, kv, n, s, d).reshape(b, kv * n, s, d)`` (Hugging Face's ``repeat_kv``; or ``.view``,
    ``.flatten(1, 2)``), the expanded tensor made of per-sample shape ``per``: the copies merged into the axis before
    them, each entry of it repeated n times in place (``repeat_interleave``).  A reshape's result is its shape alone, so
    any other shape is refused."""
    shape = imp.shape(v.src)
    want = (*shape[: v.axis], shape[v.axis] * v.times, *shape[v.axis + 1 :])
    if len(per) != len(want) or not all(same(x, y) for x, y in zip(per, want, strict=True)):
        raise imp.unsupported(node, f"reshape of {v.src!r} {_shape_text([BATCH, *shape])}, expanded to {v.times} copies along a new axis "
                              f"after axis {v.axis + 1}, to {_shape_text([BATCH, *per])}: archcalc reads only the copies merged into "
                              f"that axis, {_shape_text([BATCH, *want])} (repeat_kv)")
    imp.values[node] = Repeated(v.src, v.axis, v.times)


def _reshape_attr(imp: Importer, node: fx.Node, v: Attr) -> None:
    """A view of a tensor the model holds (``self.relative_position_index.view(-1)``): the same tensor, reshaped."""
    raw = [imp.value(x) for x in node.args[1:]]
    if len(raw) == 1 and isinstance(raw[0], list | tuple):
        raw = list(raw[0])
    if not all(isinstance(x, int) for x in raw) or sum(1 for x in raw if x == -1) > 1:
        raise imp.unsupported(node, f"reshape of {v.target!r} to {raw!r}")
    known = 1
    for x in raw:
        known *= x if x != -1 else 1
    shape = tuple(v.numel // known if x == -1 else x for x in raw)
    imp.values[node] = Attr(v.target, shape, v.parameter, v.table)


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
def _expand(imp: Importer, node: fx.Node) -> None:
    """``x.expand(...)``, ``x.expand_as(y)``: a view of ``x`` with its axes of 1 broadcast to larger sizes.  One that
    changes only the batch axis (a class token expanded over the batch, ``expand(b, -1, -1)``) is ``x`` itself, per
    sample; one that makes copies within a sample is an :class:`Expanded` of ``x``, of the expanded shape, which only an
    elementwise op that broadcasts it the same way reads (before, it was read as ``x`` everywhere: a wrong shape, exit 0).
    The expand of a new axis (``x[:, :, None].expand(b, kv, n, s, d)``): n copies, which repeat_kv's reshape merges."""
    v = imp.value(node.args[0])
    if isinstance(v, NewAxis):
        _expand_new_axis(imp, node, v)
        return
    sizes = _expand_sizes(imp, node)
    src = imp.parameter(node, v, len(sizes) - 1) if isinstance(v, Attr) and v.parameter and sizes else imp.tensor(node, node.args[0])
    _expand_to(imp, node, src, sizes)


def _expand_sizes(imp: Importer, node: fx.Node) -> list[Any]:
    """The sizes an ``expand``/``expand_as`` asks for, the batch axis's first (``BATCH`` or -1 where it is kept)."""
    if node.target == "expand_as":
        other = imp.value(node.args[1]) if len(node.args) == 2 and not node.kwargs else None
        if other is None:
            raise imp.unsupported(node, "expand_as of other than one tensor")
        return [BATCH, *(other.shape if isinstance(other, Expanded) else imp.shape(imp.tensor(node, node.args[1])))]
    raw = list(node.args[1:]) or [node.kwargs.get("size")]
    if set(node.kwargs) - {"size"}:
        raise imp.unsupported(node, f"keyword arguments {sorted(node.kwargs)}")
    return list(imp.value(raw[0])) if len(raw) == 1 and isinstance(imp.value(raw[0]), list | tuple) else [imp.value(x) for x in raw]


def _expand_to(imp: Importer, node: fx.Node, src: str, sizes: list[Any]) -> None:
    """``src`` expanded to ``sizes`` (torch's: -1 keeps an axis, an axis of 1 takes any size): ``src`` itself where every
    axis after the batch keeps its size, else an :class:`Expanded` of the expanded per-sample shape."""
    shape = imp.shape(src)
    full = _shape_text([BATCH, *shape])
    if len(sizes) != len(shape) + 1:
        raise imp.unsupported(node, f"expand of {src!r} {full} to {_shape_text(sizes)}: archcalc reads an expand that keeps the axes "
                              "(new axes go before the batch axis)")
    if not (sizes[0] is BATCH or (isinstance(sizes[0], int) and sizes[0] == -1)):
        raise imp.unsupported(node, f"expand of {src!r} {full} to {_shape_text(sizes)}: archcalc reads an expand that keeps the batch "
                              "axis (x.size(0) or -1 there)")
    per: list[Any] = []
    for i, (x, d) in enumerate(zip(sizes[1:], shape, strict=True)):
        if isinstance(x, int) and not isinstance(x, bool) and x == -1:
            per.append(d)
        elif not (is_symbolic(x) or (isinstance(x, int) and not isinstance(x, bool) and x > 0)):
            raise imp.unsupported(node, f"expand of {src!r} {full} to {_shape_text(sizes)}: size {describe(x)} of axis {i + 1}")
        elif same(x, d) or as_int(d) == 1:
            per.append(x)
        else:
            raise imp.fail(node, f"expand of {src!r} {full} to {_shape_text(sizes)}: axis {i + 1} of size {d} is not 1 and cannot expand")
    if all(same(x, d) for x, d in zip(per, shape, strict=True)):
        imp.values[node] = TensorRef(src)  # only the batch axis (a class token over the batch): the same tensor, per sample
    else:
        imp.values[node] = Expanded(src, tuple(shape), tuple(per), node.name)


def _expand_new_axis(imp: Importer, node: fx.Node, v: NewAxis) -> None:
    """``x[:, :, None].expand(b, kv, n, s, d)``: n copies of ``x`` along the new axis, every other axis kept (its size
    or -1); only as the first steps of repeat_kv, so the new axis must follow an axis of ``x`` (the one the copies go into)."""
    shape = imp.shape(v.src)
    full = (BATCH, *shape[: v.axis], 1, *shape[v.axis :])
    sizes = _expand_sizes(imp, node)
    at = v.axis + 1  # the new axis, counting the batch axis
    kept = len(sizes) == len(full) and all(i == at or x == -1 or same(x, want) for i, (x, want) in enumerate(zip(sizes, full, strict=True)))
    times = sizes[at] if kept else None
    copies = is_symbolic(times) or (isinstance(times, int) and not isinstance(times, bool) and times > 1)
    if v.unsqueezed and not copies:
        # x.unsqueeze(d).expand(...) that is no repeat along the new axis: the reshape layer of any other unsqueeze, expanded
        # as any tensor is (an Expanded where it makes copies, read only where broadcasting makes that exact)
        _expand_to(imp, node, imp.emit(node, "reshape", {"shape": [spec_dim(d) for d in full[1:]]}, [v.src]), sizes)
        return
    if not kept or not (copies or times in (1, -1)):
        raise imp.unsupported(node, f"expand of {describe(v)}, {_shape_text(full)}, to {_shape_text(sizes)}: archcalc reads only copies "
                              "along the new axis, every other axis kept (repeat_kv)")
    if times in (1, -1):
        imp.values[node] = v  # one copy: still the new axis of 1
        return
    if v.axis == 0:
        raise imp.unsupported(node, f"expand of {describe(v)} to {_shape_text(sizes)}: copies before the first axis after the batch "
                              "repeat no axis of it in place (repeat_kv puts them after the heads; merged into the axis after them they "
                              "tile it, 0 1 0 1 ...: write that as x.repeat(1, n, 1, 1))")
    imp.values[node] = Repeated(v.src, v.axis - 1, times, expanded=True)


@handles("torch.repeat_interleave", "Tensor.repeat_interleave")
def _repeat_interleave(imp: Importer, node: fx.Node) -> None:
    """``torch.repeat_interleave(k, n, dim=1)``: each entry of an axis repeated n times in place.  No layer: grouped-query
    attention repeats k and v so to q's heads, and sdpa reads that as ``enable_gqa`` (:class:`archcalc.torch.importer.Repeated`)."""
    a = imp.bind(node, ["input", "repeats", "dim", "output_size"])
    src = imp.tensor(node, a["input"])
    shape = imp.shape(src)
    times, dim, size = imp.value(a.get("repeats")), imp.value(a.get("dim")), imp.value(a.get("output_size"))
    if not (is_symbolic(times) or (isinstance(times, int) and not isinstance(times, bool) and times >= 1)):
        raise imp.unsupported(node, f"repeat_interleave by {describe(times)}: archcalc reads one repeat count for every entry")
    rank = len(shape) + 1
    if not isinstance(dim, int) or isinstance(dim, bool) or not -rank <= dim < rank or dim % rank == 0:
        where = "without dim (it flattens the tensor)" if dim is None else f"along axis {dim!r} of {_shape_text([BATCH, *shape])}"
        raise imp.unsupported(node, f"repeat_interleave {where}: archcalc reads a repeat along an axis after the batch")
    axis = dim % rank - 1
    if size is not None and not same(size, shape[axis] * times):
        raise imp.fail(node, f"output_size={size!r} but {shape[axis]} entries repeated {times} times are {shape[axis] * times}")
    imp.values[node] = TensorRef(src) if times == 1 else Repeated(src, axis, times)


@handles("Tensor.repeat", "torch.tile", "Tensor.tile")
def _tile(imp: Importer, node: fx.Node) -> None:
    """``x.repeat(1, n, 1, 1)`` / ``torch.tile``: the whole of ``x`` written n times one after another along an axis
    (heads 0 1 0 1 ..., where ``repeat_interleave`` writes 0 0 1 1 ...): a ``concat`` of n copies of ``x`` along it,
    which is what it computes (``torch.cat([x] * n, dim=1)``), one concat per axis tiled.  Grouped-query attention tiled
    so is not ``enable_gqa`` (query head i reads kv head i % n_kv, not i // n_rep); the KV cache still holds ``x``
    (:func:`archcalc.report.cached_per_position`)."""
    if node.kwargs:
        raise imp.unsupported(node, f"keyword arguments {sorted(node.kwargs)}")
    raw = list(node.args[1:])
    reps = list(imp.value(raw[0])) if len(raw) == 1 and isinstance(imp.value(raw[0]), list | tuple) else [imp.value(x) for x in raw]
    tile = getattr(node.target, "__name__", node.target) == "tile"  # (x.tile: the method's name; torch.tile: the function)
    fn = "tile" if tile else "repeat"
    v = imp.value(node.args[0])
    if isinstance(v, Attr) and v.parameter and reps and reps[0] is BATCH and len(reps) >= len(v.shape):
        # cls_token.repeat(B, 1, 1): a parameter of a leading 1 copied over the batch, as expand(B, -1, -1), the same
        # tensor in every sample (the parameter layer, broadcast over the batch); the other counts tile it as below
        if ((1,) * (len(reps) - len(v.shape)) + tuple(v.shape))[0] != 1:
            raise imp.unsupported(node, f"{fn} by {_shape_text(reps)} of {describe(v)} of shape {v.shape}: archcalc reads a repeat over "
                                  "the batch only of a leading axis of 1 (cls_token.repeat(B, 1, 1))")
        src = imp.parameter(node, v, len(reps) - 1)
        reps = [1, *reps[1:]]
    else:
        src = imp.tensor(node, node.args[0])
    shape = imp.shape(src)
    rank = len(shape) + 1
    if tile and len(reps) < rank:  # torch.tile: fewer counts than axes are the last axes'
        reps = [1] * (rank - len(reps)) + reps
    if len(reps) != rank:
        raise imp.unsupported(node, f"{fn} by {_shape_text(reps)} of a tensor of {rank} axes {_shape_text([BATCH, *shape])}: archcalc "
                              "reads one count per axis (more add axes before the batch)")
    if not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in reps) or reps[0] != 1:
        raise imp.unsupported(node, f"{fn} by {_shape_text(reps)}: archcalc reads whole-number counts of at least 1 and the batch "
                              "axis kept (count 1 first)")
    cur, tiled = src, [(axis, r) for axis, r in enumerate(reps) if r > 1]
    if not tiled:
        imp.values[node] = TensorRef(src)  # a copy of x: no layer
    for i, (axis, r) in enumerate(tiled):
        name = None if i == len(tiled) - 1 else imp.fresh(f"{imp.scoped(node)}_{axis}")
        cur = imp.emit(node, "concat", {"dim": axis}, [cur] * r, name)


@handles("torch.transpose", "Tensor.transpose", "torch.swapaxes", "Tensor.swapaxes", "torch.swapdims", "Tensor.swapdims")
def _transpose(imp: Importer, node: fx.Node) -> None:
    """``transpose(1, 2)`` of channels split into groups (channel shuffle); nothing else."""
    a = imp.bind(node, ["input", "dim0", "dim1"])
    v = imp.value(a["input"])
    dims = {imp.value(a.get("dim0")), imp.value(a.get("dim1"))}
    if isinstance(v, Grouped) and dims == {1, 2}:
        imp.values[node] = Grouped(v.src, v.groups, not v.transposed)
        return
    d0, d1 = imp.value(a.get("dim0")), imp.value(a.get("dim1"))
    if isinstance(v, Repeated) and not v.expanded and isinstance(d0, int) and isinstance(d1, int):
        _transpose_repeated(imp, node, v, d0, d1)
        return
    if isinstance(v, Attr) and isinstance(d0, int) and isinstance(d1, int):
        shape = list(v.shape)
        shape[d0], shape[d1] = shape[d1], shape[d0]
        imp.values[node] = Attr(v.target, tuple(shape), v.parameter, v.table)
        return
    src = imp.tensor(node, a["input"])
    rank = len(imp.shape(src)) + 1
    if not (isinstance(d0, int) and isinstance(d1, int)) or 0 in (d0 % rank, d1 % rank):
        raise imp.unsupported(node, f"transpose({d0!r}, {d1!r}) moves the batch axis")
    if d0 % rank == d1 % rank:
        imp.values[node] = TensorRef(src)
        return
    if "transpose" not in TYPE_NAMES:
        raise imp.unsupported(node, "a transpose other than the swap of channel groups of a channel shuffle")
    imp.emit(node, "transpose", {"dim0": d0, "dim1": d1}, [src])


def _transpose_repeated(imp: Importer, node: fx.Node, v: Repeated, d0: int, d1: int) -> None:
    """A transpose of a repeat (Meta's LLaMA: ``repeat_kv`` of (b, s, kv, d) along its heads, then ``transpose(1, 2)``)
    is the repeat of the transpose, the repeated axis moved with it: the transpose of the tensor before the repeat."""
    rank = len(imp.shape(v.src)) + 1
    if not -rank <= d0 < rank or not -rank <= d1 < rank or 0 in (d0 % rank, d1 % rank):
        raise imp.unsupported(node, f"transpose({d0}, {d1}) of {describe(v)}")
    a, b = d0 % rank, d1 % rank
    src = v.src if a == b else imp.emit(node, "transpose", {"dim0": d0, "dim1": d1}, [v.src])
    imp.values[node] = Repeated(src, moved_axis(v.axis + 1, a, b) - 1, v.times)


@handles("torch.permute", "Tensor.permute")
def _permute(imp: Importer, node: fx.Node) -> None:
    """``x.permute(0, 2, 3, 1)``: a ``permute`` layer (the batch axis stays first).  A permute that
    moves the batch axis (timm's qkv ``permute(2, 0, 3, 1, 4)``) waits for the ``unbind(0)`` /
    ``[i]`` that brings it back: each piece is a ``select`` and a ``permute`` of the source."""
    src_arg = node.args[0] if node.args else node.kwargs.get("input")
    raw = [*node.args[1:]] or [node.kwargs.get("dims")]
    dims = imp.value(raw[0] if len(raw) == 1 and isinstance(imp.value(raw[0]), list | tuple) else raw)
    v = imp.value(src_arg)
    if not isinstance(dims, list | tuple) or not all(isinstance(d, int) for d in dims):
        raise imp.unsupported(node, f"permute to {dims!r}")
    if isinstance(v, Attr):
        imp.values[node] = Attr(v.target, tuple(v.shape[d] for d in dims), v.parameter, v.table)
        return
    src = imp.tensor(node, src_arg)
    rank = len(imp.shape(src)) + 1
    norm = [d % rank for d in dims]
    if sorted(norm) != list(range(rank)):
        raise imp.fail(node, f"permute {list(dims)} of a tensor with {rank} axes")
    if norm[0] != 0:
        imp.values[node] = Moved(src, tuple(norm))
        return
    if norm == list(range(rank)):
        imp.values[node] = TensorRef(src)
        return
    if "permute" not in TYPE_NAMES:
        raise imp.unsupported(node)
    imp.emit(node, "permute", {"dims": norm}, [src])


def _piece_of_moved(imp: Importer, node: fx.Node, moved: Moved, index: int) -> None:
    """``x.permute(p)[i]`` with ``p[0] != 0``: select entry i of axis p[0], then permute the rest."""
    axis = moved.dims[0]
    n = as_int(imp.shape(moved.src)[axis - 1])
    if n is None or not -n <= index < n:
        raise imp.fail(node, f"index {index} of an axis of {n}")
    sel = imp.emit(node, "select", {"dim": axis, "index": index % n}, [moved.src], imp.fresh(f"{imp.scoped(node)}_select"))
    rest = [d - (d > axis) for d in moved.dims[1:]]
    if rest[0] != 0:
        raise imp.unsupported(node, "the batch axis is not first after indexing a permuted tensor")
    if rest != list(range(len(rest))):
        imp.emit(node, "permute", {"dims": rest}, [sel])
    else:
        imp.values[node] = TensorRef(sel)


@handles("torch.unbind", "Tensor.unbind")
def _unbind(imp: Importer, node: fx.Node) -> None:
    """``q, k, v = qkv.unbind(0)`` (of a permuted tensor whose batch axis is not first), or ``x.unbind(d)``."""
    a = imp.bind(node, ["input", "dim"])
    v = imp.value(a["input"])
    dim = imp.value(a.get("dim", 0))
    if isinstance(v, Moved) and dim == 0:
        imp.values[node] = Unbound(v, None, 0)
        return
    src = imp.tensor(node, a["input"])
    rank = len(imp.shape(src)) + 1
    if not isinstance(dim, int) or dim % rank == 0:
        raise imp.unsupported(node, "unbind along the batch axis")
    imp.values[node] = Unbound(None, src, dim % rank)


@handles("torch.split", "Tensor.split")
def _split(imp: Importer, node: fx.Node) -> None:
    """``x.split(size, dim)`` / ``x.split([a, b], dim)``: the pieces, each a ``slice`` once indexed."""
    a = imp.bind(node, ["input", "split_size_or_sections", "dim"])
    if "split_size" in node.kwargs:
        a["split_size_or_sections"] = node.kwargs["split_size"]
    src = imp.tensor(node, a["input"])
    shape = imp.shape(src)
    rank = len(shape) + 1
    dim, size = imp.value(a.get("dim", 0)), imp.value(a.get("split_size_or_sections"))
    if not isinstance(dim, int) or dim % rank == 0:
        raise imp.unsupported(node, "split along the batch axis")
    dim %= rank
    n = as_int(shape[dim - 1])
    if n is None:
        raise imp.unsupported(node, "split of a symbolic axis")
    if isinstance(size, int):
        bounds = [(s, min(s + size, n)) for s in range(0, n, size)]
    elif isinstance(size, list | tuple) and all(isinstance(x, int) for x in size) and sum(size) == n:
        starts = [sum(size[:i]) for i in range(len(size))]
        bounds = [(st, st + x) for st, x in zip(starts, size, strict=True)]
    else:
        raise imp.unsupported(node, f"split sizes {size!r}")
    imp.values[node] = Split(src, dim, tuple(bounds))


@handles("torch.stack")
def _stack(imp: Importer, node: fx.Node) -> None:
    """``torch.stack([a, b], dim)``: each input gets a new axis of 1 (a ``reshape``), then ``concat``."""
    a = imp.bind(node, ["tensors", "dim"])
    names = [imp.tensor(node, t) for t in imp_list(imp, node, a["tensors"])]
    shape = imp.shape(names[0])
    dim = imp.value(a.get("dim", 0))
    rank = len(shape) + 2
    if not isinstance(dim, int) or dim % rank == 0:
        raise imp.unsupported(node, "stack along the batch axis")
    dim %= rank
    new = [*shape[: dim - 1], 1, *shape[dim - 1 :]]
    parts = [imp.emit(node, "reshape", {"shape": [spec_dim(d) for d in new]}, [n], imp.fresh(f"{imp.scoped(node)}_{i}")) for i, n in enumerate(names)]
    imp.emit(node, "concat", {"dim": dim}, parts)


def imp_list(imp: Importer, node: fx.Node, arg: Any) -> list[Any]:
    if not isinstance(arg, list | tuple):
        raise imp.unsupported(node, "expected a list of tensors")
    return list(arg)


@handles("torch.unsqueeze", "Tensor.unsqueeze")
def _unsqueeze(imp: Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "dim"])
    v = imp.value(a["input"])
    dim = imp.value(a.get("dim"))
    if isinstance(v, Attr) and isinstance(dim, int):
        shape = list(v.shape)
        shape.insert(dim % (len(shape) + 1), 1)
        imp.values[node] = Attr(v.target, tuple(shape), v.parameter, v.table)
        return
    src = imp.tensor(node, a["input"])
    per = imp.shape(src)
    rank = len(per) + 2
    if not isinstance(dim, int) or dim % rank == 0:
        raise imp.unsupported(node, "unsqueeze before the batch axis")
    dim %= rank
    if node.users and all(u.op == "call_method" and u.target in ("expand", "expand_as") and u.args[0] is node for u in node.users):
        imp.values[node] = NewAxis(src, dim - 1, unsqueezed=True)  # maybe repeat_kv's first step, x[:, :, None] (_expand_new_axis)
        return
    imp.emit(node, "reshape", {"shape": [spec_dim(d) for d in [*per[: dim - 1], 1, *per[dim - 1 :]]]}, [src])


@handles("torch.squeeze", "Tensor.squeeze")
def _squeeze(imp: Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "dim"])
    src = imp.tensor(node, a["input"])
    shape = imp.shape(src)
    dim = imp.value(a.get("dim"))
    dims = [dim] if isinstance(dim, int) else list(dim) if isinstance(dim, list | tuple) else [i + 1 for i in range(len(shape))]
    drop = {d % (len(shape) + 1) for d in dims} - {0}
    new = [d for i, d in enumerate(shape) if not (i + 1 in drop and as_int(d) == 1)]
    if len(new) == len(shape):
        imp.values[node] = TensorRef(src)
        return
    imp.emit(node, "reshape", {"shape": [spec_dim(d) for d in new]}, [src])


@handles("torch.roll", "Tensor.roll")
def _roll(imp: Importer, node: fx.Node) -> None:
    a = imp.bind(node, ["input", "shifts", "dims"])
    src = imp.tensor(node, a["input"])
    shifts, dims = imp.value(a.get("shifts")), imp.value(a.get("dims"))
    if dims is None or contains([shifts, dims], lambda x: not isinstance(x, int | list | tuple)):
        raise imp.unsupported(node, f"roll by {shifts!r} over {dims!r} (give dims)")
    dl = list(dims) if isinstance(dims, list | tuple) else [dims]
    if any(d % (len(imp.shape(src)) + 1) == 0 for d in dl):
        raise imp.unsupported(node, "roll along the batch axis")
    fields = {"shifts": list(shifts) if isinstance(shifts, list | tuple) else [shifts], "dims": dims if isinstance(dims, int) else list(dims)}
    imp.emit(node, "roll", fields, [src])


@handles("builtins.getattr")
def _getattr(imp: Importer, node: fx.Node) -> None:
    obj, attr = node.args[0], node.args[1]
    v = imp.value(obj)
    if isinstance(v, TensorRef) and attr == "shape":
        imp.values[node] = (BATCH, *imp.shape(v.name))
        return
    if isinstance(v, TensorRef) and attr in ("device", "dtype"):
        imp.values[node] = Unusable(f"the tensor's {attr}")  # refused only where it is used
        return
    if isinstance(v, TensorRef) and attr == "ndim":
        imp.values[node] = len(imp.shape(v.name)) + 1
        return
    if isinstance(v, Attr) and attr == "shape":  # a held tensor's full shape (nanoGPT's F.layer_norm(x, self.weight.shape, ...))
        imp.values[node] = tuple(v.shape)
        return
    if isinstance(v, Attr) and attr == "ndim":
        imp.values[node] = len(v.shape)
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
        index = idx + obj.chunks if isinstance(idx, int) and idx < 0 else idx  # x.chunk(2)[-1]
        imp.emit(node, "chunk", {"chunks": obj.chunks, "index": index, "dim": obj.dim}, [obj.src])
        return
    if isinstance(obj, Moved) and isinstance(idx, int):
        _piece_of_moved(imp, node, obj, idx)
        return
    if isinstance(obj, Unbound) and isinstance(idx, int):
        if obj.moved is not None:
            _piece_of_moved(imp, node, obj.moved, idx)
        else:
            assert obj.src is not None
            n = as_int(imp.shape(obj.src)[obj.dim - 1])
            imp.emit(node, "select", {"dim": obj.dim, "index": idx + n if idx < 0 and n is not None else idx}, [obj.src])
        return
    if isinstance(obj, Split) and isinstance(idx, int):
        start, end = obj.bounds[idx]
        imp.emit(node, "slice", {"dim": obj.dim, "start": start, "end": end}, [obj.src])
        return
    if isinstance(obj, TensorRef) and contains(idx, lambda x: x is None):
        _new_axis(imp, node, obj.name, idx)
        return
    if isinstance(obj, TensorRef):
        _slice(imp, node, obj.name, idx)
        return
    items = list(idx) if isinstance(idx, tuple) else [idx]
    if isinstance(obj, Attr) and obj.parameter and items and isinstance(items[-1], Attr) and not items[-1].parameter \
            and all(i == slice(None) for i in items[:-1]):
        # table[index] / table[:, index] with a constant index (relative position biases): the table read at fixed positions
        k, index = len(items) - 1, items[-1]
        imp.values[node] = Attr(obj.target, (*obj.shape[:k], *index.shape, *obj.shape[k + 1 :]), True, obj.table or obj.shape)
        return
    if isinstance(obj, list | tuple) and not contains(idx, lambda x: isinstance(x, TensorRef)):
        try:
            imp.values[node] = obj[idx]
        except (IndexError, TypeError) as e:
            raise imp.fail(node, f"indexing {describe(obj)}: {e}") from None
        return
    raise imp.unsupported(node, f"indexing {describe(obj)}")


def _new_axis(imp: Importer, node: fx.Node, src: str, idx: Any) -> None:
    """``x[:, :, None, :, :]`` (or ``x[:, :, None]``, ``x[..., None, :, :]``): one new axis among whole axes; its only
    reader archcalc knows is an ``expand`` of it (repeat_kv's first steps, :func:`_expand_new_axis`)."""
    try:
        at = new_axis_at(idx, len(imp.shape(src)) + 1)
    except ValueError as e:
        raise imp.unsupported(node, str(e)) from None
    imp.values[node] = NewAxis(src, at - 1)


def _slice(imp: Importer, node: fx.Node, src: str, idx: Any) -> None:
    """``x[:, :, ::s, ::s]`` -> subsample; ``x[:, :, a:a+h, b:b+w]`` (centered, constant) -> crop."""
    shape = imp.shape(src)
    items = list(idx) if isinstance(idx, tuple) else [idx]
    # x[:, [-1], :]: one listed index keeps its axis (nanoGPT's last position at inference): a slice of one
    items = [slice(i[0], i[0] + 1 if i[0] != -1 else None) if _one_index(i) else i for i in items]
    if items.count(Ellipsis) > 1 or not all(isinstance(i, slice | int) or i is Ellipsis for i in items):
        raise imp.unsupported(node, "indexing other than slicing and integer indices")
    if Ellipsis in items:
        k = items.index(Ellipsis)
        items = [*items[:k], *[slice(None)] * (len(shape) + 1 - (len(items) - 1)), *items[k + 1 :]]
    items += [slice(None)] * (len(shape) + 1 - len(items))
    if len(items) != len(shape) + 1:
        raise imp.unsupported(node, "more indices than axes")
    full = slice(None)
    if items[0] != full:
        raise imp.unsupported(node, "indexing the batch axis")
    if (items[1] != full or any(isinstance(i, int) for i in items)) and "select" in TYPE_NAMES:
        _select_slice(imp, node, src, items)
        return
    if items[1] != full:
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
                if "slice" in TYPE_NAMES:
                    _select_slice(imp, node, src, items)  # not a center crop: plain slices
                    return
                raise imp.unsupported(node, f"slice {start}:{stop} of {hi} is not a center crop")
            sizes.append(size)
        imp.emit(node, "crop", {"size": sizes[0] if len(set(sizes)) == 1 else sizes}, [src])
        return
    raise imp.unsupported(node, "slicing that is neither a strided subsample nor a center crop")


def _one_index(i: Any) -> bool:
    return isinstance(i, list) and len(i) == 1 and isinstance(i[0], int) and not isinstance(i[0], bool)


def _select_slice(imp: Importer, node: fx.Node, src: str, items: list[Any]) -> None:
    """``x[:, 0]`` (a ``select``), ``x[:, :k]`` (a ``slice``), or several: slices first, then the
    selects from the last axis to the first (so that the axis numbers stay right)."""
    shape = imp.shape(src)
    steps: list[tuple[str, dict[str, Any]]] = []
    for axis, it in enumerate(items[1:], start=1):
        if isinstance(it, slice) and it != slice(None):
            if not all(x is None or isinstance(x, int) for x in (it.start, it.stop, it.step)):
                raise imp.unsupported(node, "slicing with computed bounds")
            n = as_int(shape[axis - 1])
            last = isinstance(it.start, int) and it.start < 0 and it.stop is None and it.step in (None, 1)
            if n is None and last:  # x[:, -k:] of a symbolic axis s: its last k entries, from s - k
                steps.append(("slice", {"dim": axis, "start": spec_dim(shape[axis - 1] + it.start)}))
                continue
            if n is None:
                raise imp.unsupported(node, "slicing a symbolic axis")
            start, stop, step = it.indices(n)
            if step <= 0 or stop <= start:
                raise imp.unsupported(node, f"slice {it!r}")
            fields: dict[str, Any] = {"dim": axis, "start": start, "end": stop}
            if step != 1:
                fields["step"] = step
            steps.append(("slice", fields))
    for axis in range(len(items) - 1, 0, -1):
        if isinstance(items[axis], int):
            n = as_int(shape[axis - 1])
            index = items[axis]
            if index < 0 and n is not None:
                index += n  # x[:, -1]: the last entry
            steps.append(("select", {"dim": axis, "index": index}))
    cur = src
    for i, (kind, fields) in enumerate(steps):
        last = i == len(steps) - 1
        cur = imp.emit(node, kind, fields, [cur], None if last else imp.fresh(f"{imp.scoped(node)}_{kind}"))


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


@handles("torchvision.models.swin_transformer._patch_merging_pad")
def _patch_merging_pad(imp: Importer, node: fx.Node) -> None:
    """torchvision Swin's fx-wrapped patch merging of an (H, W, C) map: the four 2 x 2 phases
    ``x[..., i::2, j::2, :]`` (each a pair of ``slice`` layers) concatenated on the channels.  An odd
    H or W (which it pads first) is refused."""
    src = imp.tensor(node, node.args[0])
    shape = imp.shape(src)
    if len(shape) != 3 or any(as_int(d) is None or as_int(d) % 2 for d in shape[:2]):  # type: ignore[operator]
        raise imp.unsupported(node, f"patch merging of an odd-sized map {shape} (it pads first; only even sizes)")
    h, w = as_int(shape[0]), as_int(shape[1])
    parts = []
    for k, (i, j) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
        rows = imp.emit(node, "slice", {"dim": 1, "start": i, "end": h, "step": 2}, [src], imp.fresh(f"{imp.scoped(node)}_x{k}_rows"))
        parts.append(imp.emit(node, "slice", {"dim": 2, "start": j, "end": w, "step": 2}, [rows], imp.fresh(f"{imp.scoped(node)}_x{k}")))
    imp.emit(node, "concat", {"dim": -1}, parts)


_ARANGE_KEYWORDS = frozenset({"dtype", "device", "layout", "pin_memory", "requires_grad"})
"""Keyword arguments of ``torch.arange`` that say where and how the positions are held, not which."""


@handles("torch.arange")
def _arange(imp: Importer, node: fx.Node) -> None:
    """``torch.arange(0, t)`` / ``torch.arange(t)`` with ``t`` a size (``idx.size(1)``): the
    positions of a sequence, a value only an ``nn.Embedding`` reads (learned positions).  The dtype
    and device arguments (``device=idx.device``) change nothing counted."""
    names = ["start", "end", "step"]
    other = sorted(set(node.kwargs) - _ARANGE_KEYWORDS - set(names))
    if other or len(node.args) > 3:
        raise imp.unsupported(node, f"arguments {other or node.args}")
    given = {**dict(zip(names, node.args, strict=False)), **{k: v for k, v in node.kwargs.items() if k in names}}
    vals = {k: imp.value(v) for k, v in given.items()}
    if "end" not in vals:  # arange(n)
        vals = {"end": vals.get("start")}
    start, end, step = vals.get("start", 0), vals.get("end"), vals.get("step", 1)
    dtype = imp.value(node.kwargs.get("dtype"))
    if dtype is not None and "int" not in str(dtype):
        raise imp.unsupported(node, f"arange of dtype {dtype} (positions are integers)")
    size = (isinstance(end, int) and not isinstance(end, bool) and end > 0) or is_symbolic(end)
    if start != 0 or step != 1 or not size:
        raise imp.unsupported(node, f"arange({start!r}, {end!r}, {step!r}): only the positions arange(0, n) of a sequence")
    imp.values[node] = Positions(end)
