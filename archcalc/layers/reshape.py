"""Tensor views and rearrangements of any rank: permute, transpose, reshape/view, roll, select, slice.

No parameters and no arithmetic (every convention counts zero; so does torch's FlopCounterMode).
Axes are numbered as in the torch code, with the batch axis as 0: ``x.permute(0, 2, 3, 1)`` is
``{"type": "permute", "dims": [0, 2, 3, 1]}``, ``x.transpose(1, 2)`` is ``dim0: 1, dim1: 2``;
negative axes count from the end.  Shapes are per sample (no batch axis).

* permute (``torch.permute``): a view; the batch axis must stay first.
* transpose (``torch.transpose``): swaps two per-sample axes; a view.
* reshape / view (``x.reshape(n, *shape)``): ``shape`` per sample, one entry may be -1 (inferred
  from the element count).  reshape of a non-contiguous input copies; view never does (both are
  counted as views here: nothing is computed).
* roll (``torch.roll``, Swin's shifted windows): a copy, no arithmetic.
* select (``x[:, i]``, ``torch.select``): one index of an axis, the axis removed (ViT's class
  token ``x[:, 0]``); a view.
* slice (``x[:, start:end:step]``): a range of an axis (channel slicing, Swin's patch merging
  ``x[..., 0::2, 0::2, :]``); a view.

Receptive field: permute and transpose move the spatial axes, and the receptive-field pass
follows them (``Layer.permutation``: Swin's channels-last (H, W, C) maps); a slice of a
spatial axis with a step is a window of 1 at that stride (Swin's patch merging reads every other
row); a roll moves positions cyclically, which the pass cannot follow: from a roll of a spatial
axis on, receptive fields are marked approximate.  reshape, view and select change the rank: the
pass no longer knows which axis is spatial after them.  The layers that mix positions (attention,
mean over tokens) say so themselves (``Layer.mixes_positions``).
"""


from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ..dims import Dim, as_int, ceildiv, is_symbolic, known_sign, prod
from .base import DimIn, DimList, Layer, Partition, Saved, Shape, Window, check_dim_value, dim_field, numel, shape_str


def sample_axis(layer: Layer, dim: int, shape: Shape, field: str) -> int:
    """The per-sample index of torch axis ``dim`` (batch axis 0, negatives from the end)."""
    rank = len(shape) + 1
    if not -rank <= dim < rank or dim % rank == 0:
        raise layer.fail(f"dim {dim} is not a per-sample axis of a {rank}-D tensor (batch first): use 1..{rank - 1} or -{rank - 1}..-1", field)
    return dim % rank - 1


class _View(Layer):
    def in_place(self) -> bool:
        return True  # a view of its input: nothing new is allocated

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # its backward rearranges the gradient back, from the sizes alone

    def output_storage(self, ins: list[Shape]) -> str:
        return "strided"  # a view whose per-sample block is not contiguous (a slice of a later axis)


class _Rearranged(_View):
    """A view with the input's axes in another order (permute, transpose)."""

    def _order(self, shape: Shape) -> list[int]:
        """The per-sample axes of the input in the order the output has them."""
        raise NotImplementedError  # each of permute and transpose says

    def output_storage(self, ins: list[Shape]) -> str:
        """A view; contiguous (torch's ``is_contiguous``) when the axes longer than 1 keep their
        order, as in ConvNeXt's (1, 1, 768) -> (768, 1, 1) before its head's flatten, so that a
        flatten after it views instead of copying.  A symbolic size counts as longer than 1."""
        shape = ins[0]
        kept = [i for i in self._order(shape) if known_sign(shape[i] - 1) != 0]
        return "view" if kept == sorted(kept) else "strided"

    def grad_flow(self, ins: list[Shape]) -> tuple[str, ...]:
        return ("same",)  # the gradient permuted back: a view


class Permute(_Rearranged):
    """``x.permute(*dims)``: dims as in torch, the batch axis 0 first."""

    type: Literal["permute"]
    dims: list[int] = Field(description="torch's dims, batch axis included and first: [0, 2, 3, 1] turns (C, H, W) into (H, W, C).")

    def _order(self, shape: Shape) -> list[int]:
        rank = len(shape) + 1
        if len(self.dims) != rank:
            raise self.fail(f"needs {rank} dims (batch axis included) for a {shape_str(shape)} input, got {len(self.dims)}", "dims")
        norm = [d % rank if -rank <= d < rank else -1 for d in self.dims]
        if sorted(norm) != list(range(rank)):
            raise self.fail(f"{self.dims} is not a permutation of 0..{rank - 1}", "dims")
        if norm[0] != 0:
            raise self.fail("the batch axis (0) must stay first", "dims")
        return [d - 1 for d in norm[1:]]

    def output_shape(self, ins: list[Shape]) -> Shape:
        return tuple(ins[0][i] for i in self._order(ins[0]))

    def permutation(self, ins: list[Shape]) -> tuple[int, ...]:
        return tuple(self._order(ins[0]))

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Permute as PermuteModule

        return PermuteModule(tuple(self.dims))


class Transpose(_Rearranged):
    """``x.transpose(dim0, dim1)``."""

    type: Literal["transpose"]
    dim0: int = Field(description="First axis (batch axis 0, as in torch).")
    dim1: int = Field(description="Second axis.")

    def _order(self, shape: Shape) -> list[int]:
        a, b = sample_axis(self, self.dim0, shape, "dim0"), sample_axis(self, self.dim1, shape, "dim1")
        order = list(range(len(shape)))
        order[a], order[b] = b, a
        return order

    def output_shape(self, ins: list[Shape]) -> Shape:
        return tuple(ins[0][i] for i in self._order(ins[0]))

    def permutation(self, ins: list[Shape]) -> tuple[int, ...]:
        a, b = sample_axis(self, self.dim0, ins[0], "dim0"), sample_axis(self, self.dim1, ins[0], "dim1")
        p = list(range(len(ins[0])))
        p[a], p[b] = b, a
        return tuple(p)

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Transpose as TransposeModule

        return TransposeModule(self.dim0, self.dim1)


def only_splits(src: Shape, dst: Shape) -> bool:
    """True when ``dst`` only splits axes of ``src`` into consecutive pieces (axes of size 1 may
    appear or vanish): torch's ``view`` of such a reshape exists for any strides, so it never
    copies.  A run of pieces whose product is the axis exactly splits it even where a partial
    product cannot be compared with it (``h`` into ``a`` and ``h/a``).  False when it merges axes,
    or when symbolic sizes leave it undecided."""
    pieces = [d for d in dst if known_sign(d - 1) != 0]
    j = 0
    for d in src:
        if known_sign(d - 1) == 0:
            continue
        p: Dim = 1
        while True:
            if j == len(pieces):
                return False
            p = p * pieces[j]
            j += 1
            sign = known_sign(p - d)
            if sign == 0:
                break
            if sign is not None and sign > 0:
                return False
            # undecided (a against h): a longer run of pieces may still make the axis exactly
            # (a * (h/a) = h, the heads' split); a run that never does is not a split
    return j == len(pieces)


def _exact_div(a: Dim, b: Dim) -> Dim | None:
    """a / b when it divides (ints), the exact quotient with symbols; None when ints do not divide."""
    if is_symbolic(a) or is_symbolic(b):
        q = a / b  # sympy: exact rational arithmetic, cancels (768*H*W/256) / 768 to H*W/256
        return int(q) if not is_symbolic(q) and q.is_Integer else q  # type: ignore[union-attr]
    return a // b if a % b == 0 else None


class Reshape(_View):
    """``x.reshape(n, *shape)``: ``shape`` per sample, one entry may be -1."""

    type: Literal["reshape"]
    shape: Annotated[DimList, *dim_field(-1)] = Field(description="Per-sample target shape (no batch axis); one entry may be -1.")

    @field_validator("shape")
    @classmethod
    def _one_inferred(cls, v: Any) -> Any:
        values = v if isinstance(v, list) else [v]
        if sum(1 for x in values if x == -1) > 1:
            raise ValueError("only one entry may be -1")
        for x in values:
            if type(x) is int and x == 0:
                raise ValueError("sizes must be positive (or one -1)")
            if type(x) is int and x < -1:
                check_dim_value(x, 1)
        return v

    def output_shape(self, ins: list[Shape]) -> Shape:
        target = self.shape if isinstance(self.shape, list) else [self.shape]
        total = numel(ins[0])
        known = prod(d for d in target if not (type(d) is int and d == -1))
        if any(type(d) is int and d == -1 for d in target):
            inferred = _exact_div(total, known)
            if inferred is None:
                raise self.fail(f"cannot reshape {shape_str(ins[0])} ({total} elements) to {target}: {known} does not divide it", "shape")
            return tuple(inferred if type(d) is int and d == -1 else d for d in target)
        if known_sign(total - known) not in (0, None):
            raise self.fail(f"cannot reshape {shape_str(ins[0])} ({total} elements) to {shape_str(tuple(target))} ({known})", "shape")
        return tuple(target)

    def output_storage(self, ins: list[Shape]) -> str:
        return "view" if self.kind == "view" else "reshape"

    def grad_flow(self, ins: list[Shape]) -> tuple[str, ...]:
        return ("same",)  # the (contiguous) gradient reshaped back: a view

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Reshape as ReshapeModule

        return ReshapeModule(tuple(int(d) for d in self.output_shape(ins)), self.kind == "view")


class View(Reshape):
    """``x.view(n, *shape)`` (never copies; counted as reshape)."""

    type: Literal["view"]  # type: ignore[assignment]


class Roll(Layer):
    """``torch.roll(x, shifts, dims)`` (Swin's cyclic shift); dims as in torch, batch axis 0."""

    type: Literal["roll"]
    shifts: Annotated[DimList, *dim_field(-(2**62))] = Field(description="Shift per rolled axis (may be negative).")
    dims: int | list[int] = Field(description="Axes to roll, batch axis 0 as in torch.")

    def _pairs(self, shape: Shape) -> list[tuple[Any, int]]:
        shifts = self.shifts if isinstance(self.shifts, list) else [self.shifts]
        dims = self.dims if isinstance(self.dims, list) else [self.dims]
        if len(shifts) != len(dims):
            raise self.fail(f"{len(shifts)} shifts for {len(dims)} dims", "shifts")
        return [(s, sample_axis(self, d, shape, "dims")) for s, d in zip(shifts, dims, strict=True)]

    def output_shape(self, ins: list[Shape]) -> Shape:
        self._pairs(ins[0])
        return ins[0]

    def axis_windows(self, ins: list[Shape]) -> dict[int, Window | Partition | None] | None:
        # a cyclic shift: output o reads position o - shift, wrapping at the ends (no interval rule)
        return {axis: None for shift, axis in self._pairs(ins[0]) if known_sign(shift) != 0}

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # its backward rolls the gradient back

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Roll as RollModule

        shifts = self.shifts if isinstance(self.shifts, list) else [self.shifts]
        dims = self.dims if isinstance(self.dims, list) else [self.dims]
        return RollModule(tuple(int(s) for s in shifts), tuple(dims))


class Select(_View):
    """``x.select(dim, index)`` = ``x[:, index]`` for dim 1: one entry of an axis, the axis removed."""

    type: Literal["select"]
    dim: int = Field(default=1, description="Axis (batch axis 0, as in torch).")
    index: int = Field(default=0, description="Entry to take; negative counts from the end.")

    def output_shape(self, ins: list[Shape]) -> Shape:
        axis = sample_axis(self, self.dim, ins[0], "dim")
        size = as_int(ins[0][axis])
        if size is not None and not -size <= self.index < size:
            raise self.fail(f"index {self.index} is out of range for axis {self.dim} of size {size}", "index")
        return (*ins[0][:axis], *ins[0][axis + 1 :])

    def axis_windows(self, ins: list[Shape]) -> dict[int, Window | Partition | None] | None:
        axis = sample_axis(self, self.dim, ins[0], "dim")
        index = self.index if self.index >= 0 else ins[0][axis] + self.index
        return {axis: Window(1, 1, -index)}  # its one output reads position index (the axis then dropped)

    def output_storage(self, ins: list[Shape]) -> str:
        # an entry of the first per-sample axis is one contiguous block per sample (a token of (L, D))
        return "view" if sample_axis(self, self.dim, ins[0], "dim") == 0 else "strided"

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Select as SelectModule

        return SelectModule(self.dim, self.index)


class Slice(_View):
    """``x[:, start:end:step]`` along ``dim`` (torch.narrow with a step)."""

    type: Literal["slice"]
    dim: int = Field(default=1, description="Axis (batch axis 0, as in torch).")
    start: Annotated[DimIn, *dim_field(0)] = Field(default=0, description="First entry (0-based).")
    end: Annotated[DimIn | None, *dim_field(0)] = Field(default=None, description="One past the last entry; default the axis's end.")
    step: Annotated[DimIn, *dim_field()] = Field(default=1, description="Stride.")

    def _range(self, shape: Shape) -> tuple[int, Dim, Dim]:
        axis = sample_axis(self, self.dim, shape, "dim")
        size = shape[axis]
        end = size if self.end is None else self.end
        if self.end is not None and known_sign(size - end) == -1:
            end = size  # python slicing clamps
        length = ceildiv(end - self.start, self.step)
        if known_sign(length) in (0, -1):
            raise self.fail(f"{self.start}:{end}:{self.step} of axis {self.dim} (size {size}) is empty", "start")
        return axis, end, length

    def output_shape(self, ins: list[Shape]) -> Shape:
        axis, _, length = self._range(ins[0])
        return (*ins[0][:axis], length, *ins[0][axis + 1 :])

    def axis_windows(self, ins: list[Shape]) -> dict[int, Window | Partition | None] | None:
        axis, _, _ = self._range(ins[0])
        return {axis: Window(1, self.step, -self.start)}  # output o reads position start + o*step

    def output_storage(self, ins: list[Shape]) -> str:
        # a range of the first per-sample axis is one contiguous block per sample; a step or a later axis is not
        return "view" if sample_axis(self, self.dim, ins[0], "dim") == 0 and self.step == 1 else "strided"

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Slice as SliceModule

        _, end, _ = self._range(ins[0])
        return SliceModule(self.dim, int(self.start), int(end), int(self.step))


LAYERS: list[type[Layer]] = [Permute, Transpose, Reshape, View, Roll, Select, Slice]
