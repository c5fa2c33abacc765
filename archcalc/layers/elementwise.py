"""Elementwise arithmetic: the product, difference and quotient of branches with broadcasting
(squeeze-and-excitation's ``x * gate``, ``a - b``, ``a / b``), and arithmetic with a constant
(``x * scale``, ``x + eps``: ``scalar``).

Shapes (per sample, channels first) must have the same number of axes (the batch axis lines up
only then) and, axis by axis, be equal or 1 (torch's broadcasting): (C, H, W) x (C, 1, 1) ->
(C, H, W).  Ops: output elements x (inputs - 1), as `mul` (mul, div) or `add` (sub).  A
``scalar`` layer does one operation per element (`mul` for mul, div and pow; `add` for add and
sub).  No convention counts them as MACs (torch's FlopCounterMode counts nothing for
``aten.mul``, ``aten.sub``, ``aten.div``).
"""


from typing import Any, ClassVar, Literal

from pydantic import Field

from ..dims import Dim, as_int, known_sign
from .base import Layer, Saved, Shape, numel, shape_str


def _broadcast_dim(a: Dim, b: Dim) -> Dim | None:
    """The broadcast size of one axis, or None if the two sizes cannot broadcast."""
    if as_int(a) == 1:
        return b
    if as_int(b) == 1:
        return a
    if known_sign(a - b) in (0, None):  # equal, or symbols torch would have to agree on
        return a
    return None


class _Broadcast(Layer):
    """Elementwise op of two or more inputs, broadcasting as torch does."""

    n_inputs: ClassVar[tuple[int, int | None]] = (2, None)
    verb: ClassVar[str] = "multiply"
    category: ClassVar[str] = "mul"

    def output_shape(self, ins: list[Shape]) -> Shape:
        names = self.inputs or [f"input {i}" for i in range(len(ins))]
        out = ins[0]
        for name, shape in zip(names[1:], ins[1:], strict=True):
            why = None
            if len(shape) != len(out):
                why = f"{len(out)} and {len(shape)} axes (per sample, the batch axis would not line up)"
            else:
                dims = [_broadcast_dim(a, b) for a, b in zip(out, shape, strict=True)]
                bad = [i for i, d in enumerate(dims) if d is None]
                if bad:
                    why = f"axis {bad[0]} has {out[bad[0]]} vs {shape[bad[0]]} (each must match or be 1)"
                else:
                    out = tuple(d for d in dims if d is not None)
            if why:
                what = f"{names[0]} {shape_str(ins[0])} and {name} {shape_str(shape)}"
                raise self.fail(f"cannot {self.verb} {what}: not broadcastable, {why}", "inputs")
        return out

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        return {self.category: numel(out) * (len(ins) - 1)}

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # a * b saves both (each one's gradient is the other times the output's), as does a / b
        # (a's gradient is g / b, b's is -g * a / b^2); with more inputs, ((a * b) * c)... also
        # saves each partial result it combines further
        why = "the other operand's gradient needs this one"
        kept = [Saved.of_input(why, i) for i in range(len(ins))]
        partial = ins[0]
        for k in range(1, len(ins) - 1):
            partial = tuple(_broadcast_dim(x, y) or x for x, y in zip(partial, ins[k], strict=True))
            kept.append(Saved.new(f"product_{k}", partial, "a partial product, multiplied by the next input"))
        return kept

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch import extra_modules

        return getattr(extra_modules, type(self).__name__)()


class Mul(_Broadcast):
    """Elementwise product of two or more inputs, broadcasting (torch: ``x * gate``)."""

    type: Literal["mul"]


class Sub(_Broadcast):
    """``a - b - ...``, broadcasting (torch: ``x - mean``)."""

    type: Literal["sub"]
    verb: ClassVar[str] = "subtract"
    category: ClassVar[str] = "add"

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # the gradient flows to each input unchanged (or negated)


class Div(_Broadcast):
    """``a / b / ...``, broadcasting (torch: ``x / norm``)."""

    type: Literal["div"]
    verb: ClassVar[str] = "divide"


class Scalar(Layer):
    """Arithmetic with a constant, one operation per element: ``x * 0.5``, ``x + 1e-6``, ``1 - x``
    (``rsub``), ``2 / x`` (``rdiv``), ``x ** 2`` (``pow``)."""

    type: Literal["scalar"]
    op: Literal["add", "sub", "mul", "div", "rsub", "rdiv", "pow"] = Field(
        description="The operation, x op value (rsub: value - x, rdiv: value / x)."
    )
    value: float = Field(description="The constant.")

    def output_shape(self, ins: list[Shape]) -> Shape:
        return ins[0]

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        return {"add" if self.op in ("add", "sub", "rsub") else "mul": numel(out)}

    def in_place(self) -> bool:
        return False

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        if self.op in ("add", "sub", "rsub", "mul", "div"):
            return []  # the gradient is the output's, shifted or scaled by the constant
        if self.op == "pow":
            return [Saved.of_input("x ** c has the gradient c * x ** (c - 1)")]
        # rdiv: torch computes c / x as reciprocal(x) * c, and reciprocal keeps its output
        return [Saved.new("reciprocal", ins[0], "c / x is c * (1/x): the gradient -c/x^2 is worked out from 1/x")]

    def grad_flow(self, ins: list[Shape]) -> tuple[str, ...]:
        return ("same",) if self.op in ("add", "sub") else ("new",)  # x + c: the gradient itself; else scaled (new)

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Scalar as ScalarModule

        return ScalarModule(self.op, self.value)


LAYERS: list[type[Layer]] = [Mul, Sub, Div, Scalar]
