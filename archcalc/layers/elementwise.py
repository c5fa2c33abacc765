"""Elementwise product of branches with broadcasting (squeeze-and-excitation's ``x * gate``).

Shapes (per sample, channels first) must have the same number of axes (the batch axis lines up
only then) and, axis by axis, be equal or 1 (torch's broadcasting): (C, H, W) x (C, 1, 1) ->
(C, H, W).  Ops (`mul`): output elements x (inputs - 1).  No convention counts them as MACs
(torch's FlopCounterMode counts nothing for ``aten.mul``).
"""


from typing import Any, ClassVar, Literal

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


class Mul(Layer):
    """Elementwise product of two or more inputs, broadcasting (torch: ``x * gate``)."""

    type: Literal["mul"]
    n_inputs: ClassVar[tuple[int, int | None]] = (2, None)

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
                raise self.fail(f"cannot multiply {names[0]} {shape_str(ins[0])} and {name} {shape_str(shape)}: not broadcastable, {why}", "inputs")
        return out

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        return {"mul": numel(out) * (len(ins) - 1)}

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # a * b saves both (each one's gradient is the other times the output's); with more inputs,
        # ((a * b) * c)... also saves each partial product it multiplies further
        why = "the other factor's gradient is the output's gradient times this one"
        kept = [Saved.of_input(why, i) for i in range(len(ins))]
        partial = ins[0]
        for k in range(1, len(ins) - 1):
            partial = tuple(_broadcast_dim(x, y) or x for x, y in zip(partial, ins[k], strict=True))
            kept.append(Saved.new(f"product_{k}", partial, "a partial product, multiplied by the next input"))
        return kept

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Mul as MulModule

        return MulModule()


LAYERS: list[type[Layer]] = [Mul]
