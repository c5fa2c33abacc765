"""Handlers of elementwise calls: activations (``F.relu``, ``x.sigmoid()``...), ``a + b``, ``a * b``, and
arithmetic on sizes (``x.size(1) // 2``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ...dims import as_int
from ...layers import TYPE_NAMES
from ..importer import Attr, Batch, Expanded, Grouped, Importer, Pieces, TensorRef, Unusable, contains, describe, implicit_softmax_dim, same
from ..registry import Handler, handles, register

if TYPE_CHECKING:
    from torch import fx

import math
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
            # (torch.relu, F.relu_, x.relu() and x.relu_() take no inplace flag: the name says it)
            register(f"{owner}.{name}", _activation(kind, own), records=kind, params=own if owner == "torch.nn.functional" else _no_flag(own))
            register(f"{owner}.{name}_", _activation(kind, own, inplace=True), records=kind, params=_no_flag(own))
        register(f"Tensor.{name}", _activation(kind, plain), records=kind, params=_no_flag(plain))
        register(f"Tensor.{name}_", _activation(kind, plain, inplace=True), records=kind, params=_no_flag(plain))


def _no_flag(params: Sequence[str]) -> list[str]:
    return [p for p in params if p != "inplace"]


_register_activations()


_FUNCS: dict[str, Callable[[Any, Any], Any]] = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}


def _is_tensor(v: Any) -> bool:
    return isinstance(v, TensorRef | Attr)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _arith(kind: str, inplace: bool = False, reflected: bool = False) -> Handler:
    """``a + b``, ``a - b``, ``a * b``, ``a / b``: of two tensors an ``add``/``sub``/``mul``/``div``
    layer; of a tensor and a number a ``scalar`` layer (``x * scale``, ``x + eps``, ``1 - x``); of
    a tensor and a parameter it holds per channel a ``layerscale``; of sizes (``x.size(1) // 2``)
    the arithmetic itself."""
    fn = _FUNCS[kind]

    def handle(imp: Importer, node: fx.Node) -> None:
        operands = [*node.args, *([node.kwargs["other"]] if "other" in node.kwargs else [])]
        if len(operands) != 2 or set(node.kwargs) - {"alpha", "other"}:
            raise imp.unsupported(node, "expected two operands")
        a, b = operands[::-1] if reflected else operands
        va, vb = imp.value(a), imp.value(b)
        if isinstance(va, Expanded) or isinstance(vb, Expanded):  # the expand read as its input where broadcasting makes that exact
            a, b = _broadcast_exactly(imp, node, kind, va, vb), _broadcast_exactly(imp, node, kind, vb, va)
            va, vb = a, b
        if not _is_tensor(va) and not _is_tensor(vb):
            if contains([va, vb], lambda x: isinstance(x, Batch | Pieces | Grouped | Unusable)) or not (_number(va) and _number(vb)):
                raise imp.unsupported(node, f"arithmetic on {describe(va)} and {describe(vb)}")
            try:
                imp.values[node] = fn(va, vb)
            except ArithmeticError as e:
                raise imp.fail(node, f"{type(e).__name__}: {e}") from None
            return
        if imp.value(node.kwargs.get("alpha", 1)) != 1:
            raise imp.unsupported(node, "alpha != 1 scales the second operand")
        if _is_tensor(va) and _is_tensor(vb):
            if kind == "mul" and _layerscale(imp, node, a, b, va, vb):
                return
            if kind not in TYPE_NAMES:
                raise imp.unsupported(node)
            ranks = [len(imp.shape(imp.tensor(node, x))) for x, vx in ((a, va), (b, vb)) if isinstance(vx, TensorRef)]
            names = [imp.parameter(node, vx, ranks[0]) if isinstance(vx, Attr) and ranks and vx.parameter else imp.tensor(node, x)
                     for x, vx in ((a, va), (b, vb))]
            fields = {"inplace": True} if inplace and "inplace" in TYPE_NAMES[kind].model_fields else {}
            imp.emit(node, kind, fields, names)
            return
        tensor_arg, number = (a, vb) if _is_tensor(va) else (b, va)
        if not _number(number) or "scalar" not in TYPE_NAMES:
            raise imp.unsupported(node, f"{kind} of a tensor and {describe(number)}")
        op = kind if _is_tensor(va) else {"add": "add", "mul": "mul", "sub": "rsub", "div": "rdiv"}[kind]
        imp.emit(node, "scalar", {"op": op, "value": float(number)}, [imp.tensor(node, tensor_arg)])

    return handle


def _broadcast_exactly(imp: Importer, node: fx.Node, kind: str, v: Any, other: Any) -> Any:
    """Operand ``v`` of an elementwise op with ``other``: an :class:`Expanded` read as the tensor it expands, where the
    other operand has the expanded size on every axis the expand widens, so that torch's broadcasting makes the same
    output of either (``x * s.expand_as(x)``, s of (C, 1, 1) and x of (C, H, W)); else refused in one line."""
    if not isinstance(v, Expanded):
        return v
    shape = imp.shape(other.name) if isinstance(other, TensorRef) else other.src_shape if isinstance(other, Expanded) else None
    if shape is not None and len(shape) == len(v.shape) and all(
        same(s, f) or same(o, f) for s, f, o in zip(v.src_shape, v.shape, shape, strict=True)
    ):
        return TensorRef(v.src)
    raise imp.unsupported(node, f"{kind} of {describe(v)} and {describe(other)}: archcalc has no layer that makes the expand's copies, and "
                          "reads it as its input only where the other operand has the expanded size on every axis it widens (the same "
                          "output by broadcasting)")


def _layerscale(imp: Importer, node: fx.Node, a: Any, b: Any, va: Any, vb: Any) -> bool:
    """``gamma * x`` with a learned ``gamma`` of one value per entry of one axis of x (ConvNeXt's
    (C, 1, 1), timm's LayerScale (D,)): a ``layerscale`` layer; False if it is not that."""
    if "layerscale" not in TYPE_NAMES or isinstance(va, Attr) == isinstance(vb, Attr):
        return False
    attr, x_arg = (va, b) if isinstance(va, Attr) else (vb, a)
    if not attr.parameter or not isinstance(imp.value(x_arg), TensorRef):
        return False
    src = imp.tensor(node, x_arg)
    shape = imp.shape(src)
    g = list(attr.shape)
    while g and g[0] == 1 and len(g) > len(shape):
        g.pop(0)
    if len(g) > len(shape):
        return False
    g = [1] * (len(shape) - len(g)) + g  # right-aligned, as torch broadcasts
    axes = [i for i, d in enumerate(g) if d != 1]
    if len(axes) != 1 or as_int(shape[axes[0]]) != g[axes[0]] or (axes[0] != len(shape) - 1 and axes[0] != 0):
        return False
    imp.emit(node, "layerscale", {"dim": 1 if axes[0] == 0 and len(shape) > 1 else -1}, [src])
    return True


for _name, _kind, _inplace in (
    ("operator.add", "add", False),
    ("operator.iadd", "add", True),
    ("torch.add", "add", False),
    ("operator.mul", "mul", False),
    ("operator.imul", "mul", True),
    ("torch.mul", "mul", False),
    ("operator.sub", "sub", False),
    ("operator.isub", "sub", True),
    ("torch.sub", "sub", False),
    ("operator.truediv", "div", False),
    ("operator.itruediv", "div", True),
    ("torch.div", "div", False),
    ("Tensor.add", "add", False),
    ("Tensor.add_", "add", True),
    ("Tensor.__add__", "add", False),
    ("Tensor.__iadd__", "add", True),
    ("Tensor.mul", "mul", False),
    ("Tensor.mul_", "mul", True),
    ("Tensor.__mul__", "mul", False),
    ("Tensor.sub", "sub", False),
    ("Tensor.sub_", "sub", True),
    ("Tensor.div", "div", False),
    ("Tensor.div_", "div", True),
):
    register(_name, _arith(_kind, _inplace))
for _name, _kind in (("Tensor.__radd__", "add"), ("Tensor.__rmul__", "mul"), ("Tensor.__rsub__", "sub"), ("Tensor.__rtruediv__", "div")):
    register(_name, _arith(_kind, reflected=True))


def _meta_arith(fn: Callable[[Any, Any], Any]) -> Handler:
    def handle(imp: Importer, node: fx.Node) -> None:
        vals = [imp.value(a) for a in node.args]
        if len(vals) == 2 and not contains(vals, lambda x: isinstance(x, TensorRef | Batch | Pieces | Grouped | Unusable | Attr)):
            try:
                imp.values[node] = fn(*vals)
            except (TypeError, ValueError, ArithmeticError) as e:
                raise imp.fail(node, f"{type(e).__name__}: {e}") from None
            return
        raise imp.unsupported(node, "arithmetic on tensors or the batch size")

    return handle


for _op in ("floordiv", "mod", "eq", "ne", "lt", "le", "gt", "ge", "pow"):
    register(f"operator.{_op}", _meta_arith(getattr(operator, _op)))


def _of_a_number(fn: Callable[[Any], Any]) -> Handler:
    """``math.ceil(H / patch)``, ``math.sqrt(head_dim)``: a function of a size or a constant, computed here."""

    def handle(imp: Importer, node: fx.Node) -> None:
        vals = [imp.value(a) for a in node.args]
        if len(vals) != 1 or node.kwargs or not _number(vals[0]):
            raise imp.unsupported(node, f"{fn.__name__} of {describe(vals[0]) if len(vals) == 1 else 'several values'} (only of sizes and numbers)")
        try:
            imp.values[node] = fn(vals[0])
        except (ValueError, ArithmeticError) as e:
            raise imp.fail(node, f"{type(e).__name__}: {e}") from None

    return handle


register("math.ceil", _of_a_number(math.ceil))  # math.ceil(H / patch) * patch (timm's MobileViT)
register("math.floor", _of_a_number(math.floor))
register("math.sqrt", _of_a_number(math.sqrt))  # att * (1.0 / math.sqrt(k.size(-1))) (nanoGPT's attention without flash)


@handles("torch._assert", "torch.fx._symbolic_trace._assert_is_none")
def _guard(imp: Importer, node: fx.Node) -> None:
    """fx's checks that a forward flag kept its default (``torch._assert``): nothing to import."""
    if contains(imp.value(list(node.args)), lambda x: isinstance(x, TensorRef)):
        raise imp.unsupported(node, "an assertion on tensor values")
    imp.values[node] = None
