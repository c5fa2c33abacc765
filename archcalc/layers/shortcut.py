"""Parameter-free shortcut pieces: option A of He et al. 2015 (CIFAR ResNets, Sec. 4.2).

subsample: x[:, :, ::s, ::s]  ->  out = ceil(in / s) per spatial axis (a 1x1 window, stride s).
channelpad: zero-pad the channel axis to ``out_channels``; (out - in) // 2 zeros before, the rest
after (the common `F.pad(x, (0, 0, 0, 0, planes//4, planes//4))` when channels double).
Neither has parameters or arithmetic; both are counted as zero ops by every convention.
"""


from typing import Annotated, Any, Literal

from ..dims import as_int, ceildiv, known_sign
from .base import DimIn, DimList, Layer, Saved, Shape, Window, dim_field, per_axis


class Subsample(Layer):
    """Strided slicing ``x[:, :, ::s, ::s]`` (option-A shortcut)."""

    type: Literal["subsample"]
    stride: Annotated[DimList, *dim_field()] = 2

    def output_shape(self, ins: list[Shape]) -> Shape:
        s = per_axis(self.stride, len(ins[0]) - 1, "stride", self)
        return (ins[0][0], *(ceildiv(h, si) for h, si in zip(ins[0][1:], s, strict=True)))

    def windows(self, ins: list[Shape]) -> list[Window]:
        return [Window(1, si) for si in per_axis(self.stride, len(ins[0]) - 1, "stride", self)]

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # a strided slice: its backward scatters the gradient into zeros

    def output_storage(self, ins: list[Shape]) -> str:
        return "strided"

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.modules import Subsample as SubsampleModule

        return SubsampleModule(tuple(int(s) for s in per_axis(self.stride, len(ins[0]) - 1, "stride", self)))


class ChannelPad(Layer):
    """Zero-pad channels up to ``out_channels`` (option-A shortcut)."""

    type: Literal["channelpad"]
    out_channels: Annotated[DimIn, *dim_field()]

    def _pads(self, c_in: Any) -> tuple[Any, Any]:
        extra = self.out_channels - c_in
        if known_sign(extra) == -1:
            raise self.fail(f"out_channels {self.out_channels} is fewer than the input's {c_in}", "out_channels")
        return extra // 2, extra - extra // 2

    def output_shape(self, ins: list[Shape]) -> Shape:
        self._pads(ins[0][0])
        return (self.out_channels, *ins[0][1:])

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # constant padding: its backward slices the gradient

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.modules import ChannelPad as ChannelPadModule

        before, after = self._pads(ins[0][0])
        return ChannelPadModule(as_int(before) or 0, as_int(after) or 0)


LAYERS: list[type[Layer]] = [Subsample, ChannelPad]
