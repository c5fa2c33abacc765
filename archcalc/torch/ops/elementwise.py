"""Handlers of elementwise calls: activations (``F.relu``, ``x.sigmoid()``...), ``a + b``, ``a * b``, and
arithmetic on sizes (``x.size(1) // 2``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ...layers import TYPE_NAMES
from ..importer import Batch, Grouped, Importer, Pieces, TensorRef, Unusable, contains, describe, implicit_softmax_dim
from ..registry import Handler, handles, register

if TYPE_CHECKING:
    from torch import fx

import operator

ACTIVATION_FUNCTIONS: list[tuple[str, str, list[str]]] = [
    ("relu", "relu", ["input", "inplace"]),
    ("relu6", "relu6", ["input", "inplace"]),
    ("leakyrelu", "leaky_relu", ["input", "negative_slope", "inplace"]),
    ("tanh", "tanh", ["input"]),
    ("sigmoid", "sigmoid", ["input"]),
    ("gelu", "gelu", ["input", "approximate"]),
    ("silu", "silu", ["input", "inplace"]),
    ("hardswish", "hardswish", ["input", "inplace"]),
    ("hardsigmoid", "hardsigmoid", ["input", "inplace"]),
    ("softmax", "softmax", ["input", "dim", "_stacklevel", "dtype"]),
    ("dropout", "dropout", ["input", "p", "training", "inplace"]),
]


def _activation(kind: str, names: Sequence[str], inplace: bool = False) -> Handler:
    def handle(imp: Importer, node: fx.Node) -> None:
        a = imp.bind(node, names)
        fields = imp.fields_of(node, kind, {k: v for k, v in a.items() if k != "input"})
        if inplace and "inplace" in TYPE_NAMES[kind].model_fields:
            fields["inplace"] = True
        if kind == "softmax":
            dim = imp.value(a.get("dim"))
            fields["dim"] = implicit_softmax_dim(imp.shape(imp.tensor(node, a["input"]))) if dim is None else dim
        imp.emit(node, kind, fields, [imp.tensor(node, a["input"])])

    return handle


def _register_activations() -> None:
    for kind, name, params in ACTIVATION_FUNCTIONS:
        if kind not in TYPE_NAMES:
            continue
        plain = ["input", "dim", "dtype"] if kind == "softmax" else params
        for owner in ("torch.nn.functional", "torch"):
            own = params if owner == "torch.nn.functional" else plain
            if kind == "dropout" and owner == "torch":
                own = ["input", "p", "training"]
            register(f"{owner}.{name}", _activation(kind, own), records=kind)
            register(f"{owner}.{name}_", _activation(kind, own, inplace=True), records=kind)
        register(f"Tensor.{name}", _activation(kind, plain), records=kind)
        register(f"Tensor.{name}_", _activation(kind, plain, inplace=True), records=kind)


_register_activations()


def _merge(kind: str, inplace: bool = False) -> Handler:
    """``a + b`` / ``a * b`` (both tensors); on sizes (``x.size(1) * 2``) the arithmetic itself."""
    fn = operator.mul if kind == "mul" else operator.add

    def handle(imp: Importer, node: fx.Node) -> None:
        operands = [*node.args, *([node.kwargs["other"]] if "other" in node.kwargs else [])]
        if len(operands) != 2 or set(node.kwargs) - {"alpha", "other"}:
            raise imp.unsupported(node, "expected two operands")
        a, b = operands
        va, vb = imp.value(a), imp.value(b)
        if not isinstance(va, TensorRef) and not isinstance(vb, TensorRef):
            if isinstance(va, int | float) and isinstance(vb, int | float):
                imp.values[node] = fn(va, vb)
                return
            raise imp.unsupported(node, f"arithmetic on {describe(va)} and {describe(vb)}")
        if not (isinstance(va, TensorRef) and isinstance(vb, TensorRef)):
            other = vb if isinstance(va, TensorRef) else va
            raise imp.unsupported(node, f"{'adds' if kind == 'add' else 'multiplies by'} {describe(other)}, not a tensor")
        if imp.value(node.kwargs.get("alpha", 1)) != 1:
            raise imp.unsupported(node, "alpha != 1 scales the second operand")
        if kind not in TYPE_NAMES:
            raise imp.unsupported(node)
        fields = {"inplace": True} if inplace and "inplace" in TYPE_NAMES[kind].model_fields else {}
        imp.emit(node, kind, fields, [va.name, vb.name])

    return handle


for _name, _kind, _inplace in (
    ("operator.add", "add", False),
    ("operator.iadd", "add", True),
    ("torch.add", "add", False),
    ("operator.mul", "mul", False),
    ("operator.imul", "mul", True),
    ("torch.mul", "mul", False),
    ("Tensor.add", "add", False),
    ("Tensor.add_", "add", True),
    ("Tensor.__add__", "add", False),
    ("Tensor.__iadd__", "add", True),
    ("Tensor.mul", "mul", False),
    ("Tensor.mul_", "mul", True),
    ("Tensor.__mul__", "mul", False),
):
    register(_name, _merge(_kind, _inplace))


def _meta_arith(fn: Callable[[Any, Any], Any]) -> Handler:
    def handle(imp: Importer, node: fx.Node) -> None:
        vals = [imp.value(a) for a in node.args]
        if len(vals) == 2 and not contains(vals, lambda x: isinstance(x, TensorRef | Batch | Pieces | Grouped | Unusable)):
            try:
                imp.values[node] = fn(*vals)
            except (TypeError, ValueError, ArithmeticError) as e:
                raise imp.fail(node, f"{type(e).__name__}: {e}") from None
            return
        raise imp.unsupported(node, "arithmetic on tensors or the batch size")

    return handle


for _op in ("sub", "floordiv", "truediv", "eq", "ne"):
    register(f"operator.{_op}", _meta_arith(getattr(operator, _op)))


@handles("torch._assert", "torch.fx._symbolic_trace._assert_is_none")
def _guard(imp: Importer, node: fx.Node) -> None:
    """fx's checks that a forward flag kept its default (``torch._assert``): nothing to import."""
    if contains(imp.value(list(node.args)), lambda x: isinstance(x, TensorRef)):
        raise imp.unsupported(node, "an assertion on tensor values")
    imp.values[node] = None
