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
from .base import DEFAULT_RUN, Layer, Run, Saved, Shape, numel, shape_str


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
    # the moments of its backward from the second on are those of the earlier divisions' nodes, after the
    # last one's has consumed the output's gradient (see workspace)
    grad_released_from: ClassVar[int | None] = 1

    def workspace(
        self, ins: list[Shape], out: Shape, device: str, phase: str, input_grad: bool = True, run: Run = DEFAULT_RUN,
        other_grads: tuple[bool, ...] = (), views: tuple[bool, ...] = (), aliases: tuple[int, ...] = (),
    ) -> list[tuple[Dim, Dim]]:
        """The temporaries of ``DivBackward0`` (derivatives.yaml, ``div.Tensor``), one node per division
        of ``((x0 / x1) / x2) ...``, the last first: each computes the divisor's gradient first,
        ``div_tensor_other_backward``: ``-grad * ((self / other) / other)``, whose ``self / other``, its
        quotient by ``other``, ``-grad`` and the product, P elements each (the division's output), are
        alive at once beside its gradient in (measured with torch.profiler, review s10 #4), then the
        dividend's, ``grad / other``; a gradient of a broadcast input is summed to its shape after.  Per
        node j (dividing by x_j, P_j its output's elements, N_i input i's), against the walk's moment
        (the output's gradient g and every input's gradient alive at once): 4 P_j beside the divisors'
        gradients already made, less the gradients of x_0..x_j the walk counts; for the earlier
        nodes, also their gradient in (the partial quotient's, P_j), g then gone.  A divisor that needs
        no gradient (``other_grads``): only the dividend's, P_j, and its sum where it is broadcast.
        A divisor a later node released (when nothing else holds it) is counted to the layer's end (more).
        Measured (fp32, two linears of 64 x 256 divided, batch 2): 2,232,320 bytes, the walk without
        this 1,971,200."""
        if phase != "backward":
            return [(0, 0)]
        partial = [ins[0]]
        for shape in ins[1:]:
            partial.append(tuple(_broadcast_dim(x, y) or x for x, y in zip(partial[-1], shape, strict=True)))
        grads = other_grads or (True,) * (len(ins) - 1)  # (not known: every divisor needs one)
        sizes = [numel(shape) if need else 0 for shape, need in zip(ins, (input_grad, *grads), strict=True)]

        def made(j: int) -> Dim:  # node j's temporaries: the divisor's gradient's four, or only the dividend's (and its sum)
            if grads[j - 1]:
                return 4 * numel(partial[j])
            dividend = numel(partial[j - 1])
            return numel(partial[j]) + (dividend if known_sign(numel(partial[j]) - dividend) != 0 else 0)

        last = len(ins) - 1
        moments: list[tuple[Dim, Dim]] = [(0, made(last) - sum(sizes, start=0))]
        for j in range(last - 1, 0, -1):  # the later nodes have released the partial quotients they kept (x0 / x1 ... / x_j on)
            kept = sum((numel(partial[i]) for i in range(j, last)), start=0)
            moments.append((0, numel(partial[j]) + made(j) - sum(sizes[: j + 1], start=0) - kept))
        return moments


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

    grad_released_from: ClassVar[int | None] = 1  # rdiv's second node (see workspace) runs after its first has consumed the gradient

    def workspace(
        self, ins: list[Shape], out: Shape, device: str, phase: str, input_grad: bool = True, run: Run = DEFAULT_RUN,
        other_grads: tuple[bool, ...] = (), views: tuple[bool, ...] = (), aliases: tuple[int, ...] = (),
    ) -> list[tuple[Dim, Dim]]:
        """The temporaries of its backward formula (derivatives.yaml, FunctionsManual.cpp; measured with
        torch.profiler, review s10 #4), N elements each, beside the input's gradient the walk counts:
        ``pow`` (``pow_backward``: ``grad * (c * x.pow(c - 1))``; x.pow(c - 1) and c times it are alive
        when the product is made, 2N; none for c = 0, whose gradient is ``zeros_like``); ``rdiv``
        (``reciprocal(x) * c``: MulBackward0 makes grad * c, N, the walk's moment; then
        ReciprocalBackward0, ``-grad * (result * result)``: grad * c, result * result and -grad alive
        with the product, 3N beside the walk's with the output's gradient gone)."""
        if phase != "backward" or not input_grad:
            return [(0, 0)]
        n = numel(ins[0])
        if self.op == "pow":
            return [(0, 0)] if self.value == 0 else [(0, 2 * n)]
        if self.op == "rdiv":
            return [(0, 0), (0, 3 * n)]
        return [(0, 0)]

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Scalar as ScalarModule

        return ScalarModule(self.op, self.value)


LAYERS: list[type[Layer]] = [Mul, Sub, Div, Scalar]
