"""Layers that move data without arithmetic: channel shuffle, chunk, zero padding, center crop.

None has parameters or ops (every convention counts them as zero; torch's FlopCounterMode too).

* channelshuffle (torch.nn.ChannelShuffle, ShuffleNet): (C, ...) -> (C, ...), C divisible by
  groups; a permutation of the channels (torchvision: view, transpose, contiguous: a copy).
* chunk: one piece of ``torch.chunk(x, chunks, dim)``, picked by ``index`` (a node has one
  output, so ShuffleNet v2's ``x1, x2 = x.chunk(2, dim=1)`` is two chunk nodes).  torch's rule:
  every piece has ceil(n / chunks) entries, the last one what is left, so there may be fewer
  than ``chunks`` pieces (torch.chunk(5 entries, 4) gives 2, 2, 1).  A view: no new memory.
* zeropad1d/2d/3d (torch.nn.ZeroPad1d/2d/3d): ``padding`` is one int for every side, or torch's
  list, last axis first: [left, right], [left, right, top, bottom],
  [left, right, top, bottom, front, back].
* crop: center crop of the spatial axes to ``size``, as torch code does it, by slicing
  ``x[..., top:top + h, left:left + w]`` with ``top = (H - h) // 2`` (U-Net's crop of the skip
  connection; an odd difference leaves the extra pixel at the end).  A view: no new memory.
"""


from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..dims import Dim, as_int, ceildiv, known_sign
from .base import DimIn, DimList, Layer, Partition, Saved, Shape, Window, dim_field, per_axis, shape_str, spatial_axes


class ChannelShuffle(Layer):
    """torch.nn.ChannelShuffle(groups): reorder channels (g, C/g) -> (C/g, g)."""

    type: Literal["channelshuffle"]
    groups: Annotated[DimIn, *dim_field()] = Field(description="Number of channel groups.")

    def output_shape(self, ins: list[Shape]) -> Shape:
        if len(ins[0]) < 2:
            raise self.fail(f"expects a (C, ...) input with spatial axes, got shape {shape_str(ins[0])}", "inputs")
        c, g = as_int(ins[0][0]), as_int(self.groups)
        if c is not None and g is not None and c % g:
            raise self.fail(f"channels {c} are not divisible by groups {g}", "groups")
        return ins[0]

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # a permutation: its backward permutes the gradient back

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.ChannelShuffle(int(self.groups))


class Chunk(Layer):
    """``torch.chunk(x, chunks, dim)[index]``: one piece of an even split (dim 1 = channels)."""

    type: Literal["chunk"]
    chunks: Annotated[DimIn, *dim_field()] = Field(description="How many pieces torch.chunk is asked for.")
    index: Annotated[DimIn, *dim_field(0)] = Field(description="Which piece (0-based).")
    dim: int = Field(default=1, description="Axis to split, counting the batch axis as 0 as in torch (1 = channels).")

    def _axis(self, shape: Shape) -> int:
        axis = (self.dim % (len(shape) + 1)) - 1
        if axis < 0 or not -len(shape) - 1 <= self.dim <= len(shape):
            raise self.fail(f"dim {self.dim} is not a per-sample axis of a {len(shape)}-axis input", "dim")
        return axis

    def _piece(self, size: Dim) -> tuple[Dim, Dim]:
        """(start, length) of the chosen piece along the split axis."""
        piece = ceildiv(size, self.chunks)
        start = self.index * piece
        left = size - start
        if known_sign(left) in (0, -1):
            pieces = ceildiv(size, piece)
            raise self.fail(f"torch.chunk splits {size} entries into {pieces} pieces of {piece}: there is no piece {self.index}", "index")
        fits = known_sign(left - piece)
        if fits is None:
            raise self.fail(f"cannot tell whether piece {self.index} of {size} entries is a full one; give the sizes numbers", "index")
        return start, piece if fits >= 0 else left

    def output_shape(self, ins: list[Shape]) -> Shape:
        axis = self._axis(ins[0])
        _, length = self._piece(ins[0][axis])
        return (*ins[0][:axis], length, *ins[0][axis + 1 :])

    def windows(self, ins: list[Shape]) -> list[Window] | None:
        axis = self._axis(ins[0])
        if axis == 0:
            return None  # a channel split: pointwise in space
        start, _ = self._piece(ins[0][axis])
        return [Window(1, 1, -start if i + 1 == axis else 0) for i in range(len(ins[0]) - 1)]

    def axis_windows(self, ins: list[Shape]) -> dict[int, Window | Partition | None] | None:
        # a range of entries along its axis, every other axis untouched (as a slice): on tokens laid out
        # (L, D), a piece of the features is no window over the tokens (a fused qkv linear's chunks)
        axis = self._axis(ins[0])
        start, _ = self._piece(ins[0][axis])
        return {axis: Window(1, 1, -start)}

    def in_place(self) -> bool:
        return True  # a view of its input: nothing new is allocated

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # a slice: its backward places the gradient into zeros, from the sizes alone

    def output_storage(self, ins: list[Shape]) -> str:
        # a range of the first per-sample axis is one contiguous block per sample (flatten can view
        # it); a range of a later axis is not (flatten copies it)
        return "view" if self._axis(ins[0]) == 0 else "strided"

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Chunk as ChunkModule

        return ChunkModule(int(self.chunks), int(self.index), self.dim)


class _ZeroPadNd(Layer):
    n_spatial: ClassVar[int] = 2
    padding: Annotated[DimList, *dim_field(0)] = Field(
        description="One int for every side, or torch's list, last axis first: [left, right, top, bottom, front, back]."
    )

    def _pads(self) -> list[tuple[Dim, Dim]]:
        """(before, after) per spatial axis, first axis first."""
        n = self.n_spatial
        raw = self.padding
        if not isinstance(raw, list):
            return [(raw, raw)] * n
        if len(raw) != 2 * n:
            raise self.fail(f"needs {2 * n} values (before and after, last axis first, as torch), got {len(raw)}", "padding")
        pairs = [(raw[2 * i], raw[2 * i + 1]) for i in range(n)]  # last axis first
        return pairs[::-1]

    def output_shape(self, ins: list[Shape]) -> Shape:
        sizes = spatial_axes(ins[0], self, self.n_spatial)
        return (ins[0][0], *(h + b + a for h, (b, a) in zip(sizes, self._pads(), strict=True)))

    def windows(self, ins: list[Shape]) -> list[Window]:
        return [Window(1, 1, b) for b, _ in self._pads()]

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # constant padding: its backward slices the gradient

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        cls: Any = {1: nn.ZeroPad1d, 2: nn.ZeroPad2d, 3: nn.ZeroPad3d}[self.n_spatial]
        flat = [int(x) for b, a in self._pads()[::-1] for x in (b, a)]
        return cls(tuple(flat))


class ZeroPad1d(_ZeroPadNd):
    """torch.nn.ZeroPad1d; padding [left, right]."""

    type: Literal["zeropad1d"]
    n_spatial: ClassVar[int] = 1


class ZeroPad2d(_ZeroPadNd):
    """torch.nn.ZeroPad2d; padding [left, right, top, bottom]."""

    type: Literal["zeropad2d"]
    n_spatial: ClassVar[int] = 2


class ZeroPad3d(_ZeroPadNd):
    """torch.nn.ZeroPad3d; padding [left, right, top, bottom, front, back]."""

    type: Literal["zeropad3d"]
    n_spatial: ClassVar[int] = 3


class Crop(Layer):
    """Center crop of every spatial axis to ``size`` (slicing; torch has no module for it)."""

    type: Literal["crop"]
    size: Annotated[DimList, *dim_field()] = Field(description="Target size: one int for every spatial axis, or one per axis.")

    def _offsets(self, shape: Shape) -> list[tuple[Dim, Dim]]:
        """(offset, size) per spatial axis."""
        n = len(shape) - 1
        if n < 1:
            raise self.fail(f"expects a (C, ...) input with spatial axes, got shape {shape_str(shape)}", "inputs")
        out = []
        for axis, (h, s) in enumerate(zip(shape[1:], per_axis(self.size, n, "size", self), strict=True)):
            if known_sign(h - s) == -1:
                raise self.fail(f"cannot crop spatial axis {axis} of size {h} to {s}: larger than the input", "size")
            out.append(((h - s) // 2, s))
        return out

    def output_shape(self, ins: list[Shape]) -> Shape:
        return (ins[0][0], *(s for _, s in self._offsets(ins[0])))

    def windows(self, ins: list[Shape]) -> list[Window]:
        # output 0 is input pixel `offset`: a 1-wide window whose padding is -offset
        return [Window(1, 1, -off) for off, _ in self._offsets(ins[0])]

    def in_place(self) -> bool:
        return True  # a slice is a view of its input: nothing new is allocated

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # a slice: its backward places the gradient into zeros, from the sizes alone

    def output_storage(self, ins: list[Shape]) -> str:
        return "strided"

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Crop as CropModule

        return CropModule(tuple(int(s) for _, s in self._offsets(ins[0])))


LAYERS: list[type[Layer]] = [ChannelShuffle, Chunk, ZeroPad1d, ZeroPad2d, ZeroPad3d, Crop]
