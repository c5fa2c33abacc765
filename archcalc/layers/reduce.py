"""Reductions: ``mean`` over chosen axes (token pooling ``x.mean(dim=1)``, global pooling ``x.mean((2, 3))``).

Axes as in torch, batch axis 0.  Ops (`mean`): one addition per input element (the sums) and a
division per output element, counted together as the input's elements (as a global average pool
is counted: output elements x window).

Receptive field: a mean over the spatial axes of a (C, *spatial) tensor is a window as wide as
each reduced axis (global pooling); a mean over axis 0 of a (L, D) token sequence (token pooling)
mixes every position: every output sees the whole input.
"""


from typing import Any, Literal

from pydantic import Field

from ..dims import Dim
from .base import Layer, Saved, Shape, Window, numel
from .reshape import sample_axis


class Mean(Layer):
    """``x.mean(dim, keepdim)``."""

    type: Literal["mean"]
    dim: int | list[int] = Field(description="Axes averaged over (batch axis 0, as in torch).")
    keepdim: bool = False

    def _axes(self, shape: Shape) -> list[int]:
        dims = self.dim if isinstance(self.dim, list) else [self.dim]
        axes = sorted({sample_axis(self, d, shape, "dim") for d in dims})
        if len(axes) != len(dims):
            raise self.fail(f"{dims} names an axis twice", "dim")
        return axes

    def output_shape(self, ins: list[Shape]) -> Shape:
        axes = self._axes(ins[0])
        if self.keepdim:
            return tuple(1 if i in axes else d for i, d in enumerate(ins[0]))
        return tuple(d for i, d in enumerate(ins[0]) if i not in axes)

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        return {"mean": numel(ins[0])}  # every input element summed once; the divisions ride along

    def windows(self, ins: list[Shape]) -> list[Window] | None:
        axes = self._axes(ins[0])
        if 0 in axes:
            return None  # channels (or tokens) averaged: not a window over spatial axes
        return [Window(h, h) if i + 1 in axes else Window(1) for i, h in enumerate(ins[0][1:])]

    def mixes_positions(self, ins: list[Shape]) -> bool:
        # token pooling: the first axis of a (L, D) sequence
        return len(ins[0]) == 2 and self._axes(ins[0]) == [0]

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # its backward spreads the gradient evenly, from the sizes alone

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Mean as MeanModule

        return MeanModule(tuple(self.dim) if isinstance(self.dim, list) else self.dim, self.keepdim)


LAYERS: list[type[Layer]] = [Mean]
