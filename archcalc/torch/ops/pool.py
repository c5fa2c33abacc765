"""Handlers of pooling calls: ``F.max_pool2d`` and friends, ``x.mean([2, 3])`` (global average
pooling) and ``F.interpolate``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...layers import TYPE_NAMES
from ..importer import Importer
from ..registry import Handler, handles, register

if TYPE_CHECKING:
    from torch import fx

POOL_FUNCTIONS: list[tuple[str, str, list[str]]] = [
    row
    for n in (1, 2, 3)
    for row in (
        (f"maxpool{n}d", f"max_pool{n}d", ["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"]),
        (f"avgpool{n}d", f"avg_pool{n}d", ["input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"]),
        (f"adaptiveavgpool{n}d", f"adaptive_avg_pool{n}d", ["input", "output_size"]),
        (f"adaptivemaxpool{n}d", f"adaptive_max_pool{n}d", ["input", "output_size", "return_indices"]),
    )
]


def _pool(kind: str, names: Sequence[str]) -> Handler:
    def handle(imp: Importer, node: fx.Node) -> None:
        a = imp.bind(node, names)
        if imp.value(a.get("return_indices", False)):
            raise imp.unsupported(node, "return_indices=True returns a tuple")
        src = imp.tensor(node, a["input"])
        imp.emit(node, kind, imp.fields_of(node, kind, {k: v for k, v in a.items() if k != "input"}), [src])

    return handle


for _kind, _name, _params in POOL_FUNCTIONS:
    if _kind in TYPE_NAMES:
        for _owner in ("torch.nn.functional", "torch"):
            register(f"{_owner}.{_name}", _pool(_kind, _params), records=_kind, params=_params)


@handles("torch.mean", "Tensor.mean", params=["input", "dim", "keepdim", "dtype"])
def _mean(imp: Importer, node: fx.Node) -> None:
    """``x.mean([2, 3])`` over every spatial axis: global average pooling (then a flatten unless keepdim)."""
    a = imp.bind(node, ["input", "dim", "keepdim", "dtype"])
    src = imp.tensor(node, a["input"])
    rank = len(imp.shape(src)) + 1
    dim = imp.value(a.get("dim"))
    dims = {d % rank for d in (dim if isinstance(dim, list | tuple) else [dim])} if isinstance(dim, int | list | tuple) else set()
    n = rank - 2
    kind = f"adaptiveavgpool{n}d"
    if (n < 1 or dims != set(range(2, rank)) or kind not in TYPE_NAMES) and "mean" in TYPE_NAMES and dims and 0 not in dims:
        fields: dict[str, Any] = {"dim": sorted(dims) if len(dims) > 1 else next(iter(dims))}
        if imp.value(a.get("keepdim", False)):
            fields["keepdim"] = True
        imp.emit(node, "mean", fields, [src])  # token pooling x.mean(1), or a mean over the channels
        return
    if n < 1 or dims != set(range(2, rank)) or kind not in TYPE_NAMES:
        raise imp.unsupported(node, f"mean over dims {dim!r}: only the mean over every spatial axis (global average pooling) is supported")
    pooled = imp.emit(node, kind, {"output_size": 1, "as_mean": True}, [src])  # (the peer tools count a mean as 0)
    if not imp.value(a.get("keepdim", False)):
        imp.emit(node, "flatten", {}, [pooled], imp.fresh(f"{pooled}_flatten"))


INTERPOLATE_PARAMS = ["input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias"]


@handles("torch.nn.functional.interpolate", records="upsample", params=INTERPOLATE_PARAMS)
def _interpolate(imp: Importer, node: fx.Node) -> None:
    names = INTERPOLATE_PARAMS
    a = imp.bind(node, names)
    if imp.value(a.get("antialias", False)):
        raise imp.unsupported(node, "antialias=True")
    given: dict[str, Any] = {k: a[k] for k in ("mode", "align_corners") if k in a and imp.value(a[k]) is not None}
    src = imp.tensor(node, a["input"])
    fields = imp.fields_of(node, "upsample", given)
    fields.update(imp.upsample_size(node, imp.shape(src), a.get("size"), a.get("scale_factor"), a.get("recompute_scale_factor"),
                                    a.get("align_corners")))
    imp.emit(node, "upsample", fields, [src])


@handles("torchvision.ops.stochastic_depth.stochastic_depth")
def _stochastic_depth(imp: Importer, node: fx.Node) -> None:
    """torchvision's ``stochastic_depth(x, p, mode, training)`` (fx-wrapped): a ``stochasticdepth`` layer, the identity at inference."""
    a = imp.bind(node, ["input", "p", "mode", "training"])
    fields: dict[str, Any] = {k: imp.value(a[k]) for k in ("p", "mode") if k in a}
    if "p" in fields:
        fields["p"] = float(fields["p"])
    imp.emit(node, "stochasticdepth", fields, [imp.tensor(node, a["input"])])
