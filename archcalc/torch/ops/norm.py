"""Handlers of normalisation calls written as functions over the module's own tensors:
``F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, ...)`` (timm's
``BatchNormAct2d`` runs batch norm this way before its activation)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...layers import TYPE_NAMES
from ..importer import Attr, Importer
from ..registry import handles

if TYPE_CHECKING:
    from torch import fx


def _attr_or_none(imp: Importer, node: fx.Node, arg: Any, what: str) -> Attr | None:
    """An optional tensor argument that must be one the model holds (a parameter or buffer), or None."""
    v = imp.value(arg)
    if v is None or isinstance(v, Attr):
        return v
    raise imp.unsupported(node, f"{what} is not a parameter or buffer of the model (it is computed)")


@handles("torch.nn.functional.batch_norm", records="batchnorm{n}d")
def batch_norm(imp: Importer, node: fx.Node) -> None:
    """``F.batch_norm`` at inference: a ``batchnorm{n}d`` layer (affine when it has a weight)."""
    a = imp.bind(node, ["input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"])
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
    imp.emit(node, kind, fields, [src])


@handles("torch.nn.functional.layer_norm", records="layernorm")
def layer_norm(imp: Importer, node: fx.Node) -> None:
    """``F.layer_norm(x, shape, weight, bias, eps)`` (torchvision's LayerNorm2d between two permutes,
    timm's LayerNorm2d): a ``layernorm`` layer over the trailing ``normalized_shape`` axes."""
    a = imp.bind(node, ["input", "normalized_shape", "weight", "bias", "eps"])
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
    imp.emit(node, "layernorm", fields, [src])


@handles("torch.nn.functional.group_norm", records="groupnorm")
def group_norm(imp: Importer, node: fx.Node) -> None:
    """``F.group_norm(x, num_groups, weight, bias, eps)``: a ``groupnorm`` layer."""
    a = imp.bind(node, ["input", "num_groups", "weight", "bias", "eps"])
    src = imp.tensor(node, a["input"])
    weight = _attr_or_none(imp, node, a.get("weight"), "weight")
    bias = _attr_or_none(imp, node, a.get("bias"), "bias")
    if (weight is None) != (bias is None):
        raise imp.unsupported(node, "a weight without a bias (or a bias without a weight)")
    fields: dict[str, Any] = {"num_groups": imp.value(a["num_groups"]), "affine": weight is not None}
    eps = imp.value(a.get("eps", 1e-5))
    if isinstance(eps, float):
        fields["eps"] = eps
    imp.emit(node, "groupnorm", fields, [src])
