"""Merging branches: elementwise add (residual connections) and concatenation (Inception).

add: all inputs must have the same shape; ops (`add`): elements x (inputs - 1).
concat (torch.cat): shapes agree except along ``dim`` (batch axis is 0, so channels are 1).
"""


from typing import Any, ClassVar, Literal

from ..dims import Dim, dim_text, known_sign
from .base import Layer, Saved, Shape, numel, shape_str


def _same(a: Dim, b: Dim, broadcast: bool = False) -> bool:
    """Equal, or undecided here (symbols): an undecided pair is named by :func:`agreements`, and the
    report states it as an assumption (which ``check`` then uses), or proves it.  A pair proved equal
    for no size is not the same (review s10 #10: torch raises at every size), unless ``broadcast`` (an
    add) and one of the two may be 1 (floor(H/64) beside H + 5 runs for H in 64..127: code review s10 #1b)."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    sign = known_sign(a - b)
    if sign == 0:
        return True
    if sign is not None or _never_equal(a, b) is None:
        return sign is None
    return broadcast and (_never_equal(a, 1) is None or _never_equal(b, 1) is None)


def _never_equal(a: Dim, b: Dim) -> str | None:
    """How it was proved that symbolic sizes ``a`` and ``b`` are equal for no value of their symbols
    (:func:`archcalc.decide.equal_somewhere`); None where they are equal somewhere or that is not known."""
    from ..decide import equal_somewhere

    ok, _, how = equal_somewhere(a, b)
    return how if ok is False else None


def _differ(first: Shape, other: Shape, skip: int = -1) -> str:
    """What follows "shapes differ" / "other axes differ": where a pair of sizes agrees for no size of
    the symbols, that, and how it was proved (an undecided pair would not have failed)."""
    for axis, (a, b) in enumerate(zip(first, other, strict=False)):
        if axis != skip and a != 1 and b != 1 and _undecided(a, b):
            how = _never_equal(a, b)
            if how is not None:
                names = ", ".join(sorted(map(str, getattr(a - b, "free_symbols", ()))))
                return f" for every size ({dim_text(a)} = {dim_text(b)} holds for no {names}: {how})"
    return ""


def _undecided(a: Dim, b: Dim) -> bool:
    return not (isinstance(a, int) and isinstance(b, int)) and known_sign(a - b) is None


def agreements(layer: Layer, ins: list[Shape]) -> list[tuple[str, str, int, Dim, Dim]]:
    """The sizes an add or concat needs equal that archcalc could not compare here: (first input,
    other input, axis, size of the first, size of the other).  torch raises where they differ (k even
    in a kernel of k with padding k//2 beside a 3x3 with padding 1), so the network runs only where
    they agree: the report proves each pair equal or states it as an assumption (review s9 #4)."""
    if not isinstance(layer, (Add, Concat)) or len({len(s) for s in ins}) != 1:
        return []
    names = layer.inputs or [f"input {i}" for i in range(len(ins))]
    skip = (layer.dim % (len(ins[0]) + 1)) - 1 if isinstance(layer, Concat) else -1
    out = []
    for name, shape in zip(names[1:], ins[1:], strict=True):
        for axis, (a, b) in enumerate(zip(ins[0], shape, strict=True)):
            if axis != skip and a != 1 and b != 1 and _undecided(a, b):
                out.append((names[0], name, axis, a, b))
    return out


class Add(Layer):
    """Elementwise sum of two or more equal-shaped inputs (torch: ``a + b``)."""

    type: Literal["add"]
    inplace: bool = False
    """True for torchvision's ``out += identity``: the sum is written into the first input."""
    n_inputs: ClassVar[tuple[int, int | None]] = (2, None)

    def output_shape(self, ins: list[Shape]) -> Shape:
        """The common shape; an axis of 1 broadcasts as in torch (attention scores + a (1, heads, N, N) bias)."""
        names = self.inputs or [f"input {i}" for i in range(len(ins))]
        out = ins[0]
        for name, shape in zip(names[1:], ins[1:], strict=True):
            if len(shape) != len(out) or not all(_same(a, b, broadcast=True) or a == 1 or b == 1 for a, b in zip(shape, out, strict=False)):
                why = _differ(out, shape) if len(shape) == len(out) else ""
                raise self.fail(f"cannot add {names[0]} {shape_str(ins[0])} and {name} {shape_str(shape)}: shapes differ{why}", "inputs")
            out = tuple(b if a == 1 else a for a, b in zip(out, shape, strict=True))
        return out

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        return {"add": numel(out) * (len(ins) - 1)}

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # the gradient of a sum flows to every input unchanged

    def grad_flow(self, ins: list[Shape]) -> tuple[str, ...]:
        # AddBackward0 hands the gradient itself to every input; one broadcast is summed back (new)
        out = self.output_shape(ins)
        return tuple("same" if tuple(shape) == tuple(out) else "new" for shape in ins)

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.modules import Add as AddModule

        return AddModule(self.inplace)


class Concat(Layer):
    """torch.cat along ``dim`` (1 = channels, as in torch with the batch axis)."""

    type: Literal["concat"]
    dim: int = 1
    n_inputs: ClassVar[tuple[int, int | None]] = (2, None)

    def output_shape(self, ins: list[Shape]) -> Shape:
        names = self.inputs or [f"input {i}" for i in range(len(ins))]
        rank = len(ins[0])
        if not -(rank + 1) <= self.dim <= rank:  # torch's range for a (rank + 1)-D tensor, batch axis included
            raise self.fail(f"dim {self.dim} is out of range for a {rank + 1}-D tensor (batch first): use {-(rank + 1)}..{rank}", "dim")
        axis = (self.dim % (rank + 1)) - 1
        if axis < 0:
            raise self.fail("cannot concatenate along the batch axis", "dim")
        total: Dim = 0
        for name, shape in zip(names, ins, strict=True):
            same = len(shape) == rank and all(_same(a, b) for i, (a, b) in enumerate(zip(shape, ins[0], strict=True)) if i != axis)
            if not same:
                raise self.fail(
                    f"cannot concatenate {names[0]} {shape_str(ins[0])} and {name} {shape_str(shape)} along dim {self.dim}: other axes differ"
                    + (_differ(ins[0], shape, axis) if len(shape) == rank else ""),
                    "inputs",
                )
            total = total + shape[axis]
        return (*ins[0][:axis], total, *ins[0][axis + 1 :])

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # the gradient is sliced back into pieces, from the sizes alone

    def grad_flow(self, ins: list[Shape]) -> tuple[str, ...]:
        return ("part",) * len(ins)  # CatBackward0 narrows the gradient: a view per input

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.modules import Concat as ConcatModule

        return ConcatModule(self.dim)


LAYERS: list[type[Layer]] = [Add, Concat]
