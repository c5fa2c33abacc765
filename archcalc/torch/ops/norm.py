"""Handlers of layers written as functions over the module's own tensors (normalisation, and the
``F.linear`` / ``F.conv2d`` of subclasses that override ``forward``):
``F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, ...)`` (timm's
``BatchNormAct2d`` runs batch norm this way before its activation)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...dims import as_int
from ...layers import TYPE_NAMES
from ..importer import Attr, Importer
from ..registry import handles, register

if TYPE_CHECKING:
    from torch import fx


def _attr_or_none(imp: Importer, node: fx.Node, arg: Any, what: str) -> Attr | None:
    """An optional tensor argument that must be one the model holds (a parameter or buffer), or None."""
    v = imp.value(arg)
    if v is None or isinstance(v, Attr):
        return v
    raise imp.unsupported(node, f"{what} is not a parameter or buffer of the model (it is computed)")


BATCH_NORM_PARAMS = ["input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"]
LAYER_NORM_PARAMS = ["input", "normalized_shape", "weight", "bias", "eps"]
GROUP_NORM_PARAMS = ["input", "num_groups", "weight", "bias", "eps"]
LINEAR_PARAMS = ["input", "weight", "bias"]
CONV_PARAMS = ["input", "weight", "bias", "stride", "padding", "dilation", "groups"]


@handles("torch.nn.functional.batch_norm", records="batchnorm{n}d", params=BATCH_NORM_PARAMS)
def batch_norm(imp: Importer, node: fx.Node) -> None:
    """``F.batch_norm`` at inference: a ``batchnorm{n}d`` layer (affine when it has a weight)."""
    a = imp.bind(node, BATCH_NORM_PARAMS)
    src = imp.tensor(node, a["input"])
    shape = imp.shape(src)
    mean = _attr_or_none(imp, node, a.get("running_mean"), "running_mean")
    weight = _attr_or_none(imp, node, a.get("weight"), "weight")
    bias = _attr_or_none(imp, node, a.get("bias"), "bias")
    if (weight is None) != (bias is None):
        raise imp.unsupported(node, "a weight without a bias (or a bias without a weight): batchnorm's affine has both")
    n = max(len(shape) - 1, 1)
    kind = f"batchnorm{n}d"
    if kind not in TYPE_NAMES:
        raise imp.unsupported(node, f"batch norm over a {len(shape) + 1}-d input")
    fields: dict[str, Any] = {"affine": weight is not None, "track_running_stats": mean is not None}
    eps = imp.value(a.get("eps", 1e-5))
    if isinstance(eps, float):
        fields["eps"] = eps
    momentum = imp.value(a.get("momentum", 0.1))
    if momentum is None or isinstance(momentum, float):
        fields["momentum"] = momentum
    if weight is not None:
        imp.held_by_another(node, kind, weight, bias)
    imp.hold(imp.emit(node, kind, fields, [src]), weight, bias)


@handles("torch.nn.functional.layer_norm", records="layernorm", params=LAYER_NORM_PARAMS)
def layer_norm(imp: Importer, node: fx.Node) -> None:
    """``F.layer_norm(x, shape, weight, bias, eps)`` (torchvision's LayerNorm2d between two permutes,
    timm's LayerNorm2d): a ``layernorm`` layer over the trailing ``normalized_shape`` axes."""
    a = imp.bind(node, LAYER_NORM_PARAMS)
    src = imp.tensor(node, a["input"])
    weight = _attr_or_none(imp, node, a.get("weight"), "weight")
    bias = _attr_or_none(imp, node, a.get("bias"), "bias")
    if weight is None and bias is not None:
        raise imp.unsupported(node, "a bias without a weight")
    shape = imp.value(a["normalized_shape"])
    if not isinstance(shape, list | tuple) or not all(isinstance(d, int) for d in shape):
        raise imp.unsupported(node, f"normalized_shape {shape!r}")
    fields: dict[str, Any] = {"normalized_shape": list(shape), "elementwise_affine": weight is not None, "bias": bias is not None}
    eps = imp.value(a.get("eps", 1e-5))
    if isinstance(eps, float):
        fields["eps"] = eps
    if weight is not None:
        imp.held_by_another(node, "layernorm", weight, bias)
    imp.hold(imp.emit(node, "layernorm", fields, [src]), weight, bias)


@handles("torch.nn.functional.group_norm", records="groupnorm", params=GROUP_NORM_PARAMS)
def group_norm(imp: Importer, node: fx.Node) -> None:
    """``F.group_norm(x, num_groups, weight, bias, eps)``: a ``groupnorm`` layer."""
    a = imp.bind(node, GROUP_NORM_PARAMS)
    src = imp.tensor(node, a["input"])
    weight = _attr_or_none(imp, node, a.get("weight"), "weight")
    bias = _attr_or_none(imp, node, a.get("bias"), "bias")
    if (weight is None) != (bias is None):
        raise imp.unsupported(node, "a weight without a bias (or a bias without a weight)")
    fields: dict[str, Any] = {"num_groups": imp.value(a["num_groups"]), "affine": weight is not None}
    eps = imp.value(a.get("eps", 1e-5))
    if isinstance(eps, float):
        fields["eps"] = eps
    if weight is not None:
        imp.held_by_another(node, "groupnorm", weight, bias)
    imp.hold(imp.emit(node, "groupnorm", fields, [src]), weight, bias)


@handles("torch.nn.functional.linear", records="linear", params=LINEAR_PARAMS)
def linear(imp: Importer, node: fx.Node) -> None:
    """``F.linear(x, self.weight, self.bias)`` (timm's ``Linear`` subclass calls it in its own forward): a ``linear`` layer."""
    a = imp.bind(node, LINEAR_PARAMS)
    src = imp.tensor(node, a["input"])
    weight = _attr_or_none(imp, node, a.get("weight"), "weight")
    bias = _attr_or_none(imp, node, a.get("bias"), "bias")
    if weight is None or len(weight.shape) != 2 or weight.table is not None:
        raise imp.unsupported(node, "a weight that is not a 2-d parameter")
    want, have = weight.shape[1], as_int(imp.shape(src)[-1])
    if have is not None and have != want:
        raise imp.fail(node, f"the weight takes {want} features but its input {imp.shape(src)} has {have}")
    tied = imp.held_by_another(node, "linear", weight, bias)
    name = imp.emit(node, "linear", {"out_features": weight.shape[0], "bias": bias is not None, **tied}, [src])
    imp.hold(name, None if tied else weight, bias)


def _conv(n: int) -> Any:
    def conv(imp: Importer, node: fx.Node) -> None:
        """``F.conv{n}d(x, self.weight, self.bias, stride, padding, dilation, groups)`` (timm's
        ``Conv2dSame``, ``StdConv2d`` call it in their own forward): a ``conv{n}d`` layer."""
        a = imp.bind(node, CONV_PARAMS)
        src = imp.tensor(node, a["input"])
        weight = _attr_or_none(imp, node, a.get("weight"), "weight")
        bias = _attr_or_none(imp, node, a.get("bias"), "bias")
        if weight is None or len(weight.shape) != n + 2 or weight.table is not None:
            raise imp.unsupported(node, "a weight that is not a parameter of the module")
        groups = imp.value(a.get("groups", 1))
        c_in = as_int(imp.shape(src)[0])
        if not isinstance(groups, int) or (c_in is not None and c_in != weight.shape[1] * groups):
            raise imp.fail(node, f"the weight {weight.shape} with groups={groups!r} does not take the {c_in} input channels")
        given: dict[str, Any] = {k: a[k] for k in ("stride", "padding", "dilation") if k in a}
        fields = imp.fields_of(node, f"conv{n}d", given)
        ks = list(weight.shape[2:])
        fields.update({"out_channels": weight.shape[0], "kernel_size": ks[0] if len(set(ks)) == 1 else ks, "bias": bias is not None})
        if groups != 1:
            fields["groups"] = groups
        fields.update(imp.held_by_another(node, f"conv{n}d", weight, bias))
        imp.hold(imp.emit(node, f"conv{n}d", fields, [src]), weight, bias)

    return conv


for _n in (1, 2, 3):
    register(f"torch.nn.functional.conv{_n}d", _conv(_n), records=f"conv{_n}d", params=CONV_PARAMS)
    register(f"torch.conv{_n}d", _conv(_n), records=f"conv{_n}d", params=CONV_PARAMS)
