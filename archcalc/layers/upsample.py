"""Upsampling by interpolation (torch.nn.Upsample), on 1, 2 or 3 spatial axes (from the input).

Shape: ``size`` as given, or ``in * scale_factor`` per axis (integer factors: torch's
floor(in * scale) is exact).  Modes: ``nearest`` (any rank), ``linear`` (C, L), ``bilinear``
(C, H, W), ``trilinear`` (C, D, H, W), as torch requires.
Ops (`interp`): output elements x input pixels each output weighs: 1 for nearest (a copy), 2 per
axis for the linear modes (4 bilinear, 8 trilinear).  No convention counts them as MACs: torch's
FlopCounterMode counts nothing for upsampling, and the lecture's rule counts only weighted sums
and pooling.
Receptive field: an output reads one input pixel (nearest) or the two neighbours of its sample
point per axis (linear modes), so the RF grows by at most one input pixel per axis and the
effective stride divides by the scale.  Sample points (torch): nearest reads floor(o * in/out);
linear modes sample at (o + 1/2) * in/out - 1/2, or o * (in-1)/(out-1) with align_corners.
"""


from math import gcd
from typing import Annotated, Any, Literal

from ..dims import Dim, as_int
from .base import DimList, Layer, Saved, Shape, Window, dim_field, numel, per_axis

_RANK = {"linear": 1, "bilinear": 2, "trilinear": 3}


class Upsample(Layer):
    """torch.nn.Upsample: give exactly one of ``size`` and ``scale_factor`` (integers)."""

    type: Literal["upsample"]
    size: Annotated[DimList | None, *dim_field()] = None
    scale_factor: Annotated[DimList | None, *dim_field()] = None
    mode: Literal["nearest", "linear", "bilinear", "trilinear"] = "nearest"
    align_corners: bool | None = None

    def _n(self, shape: Shape) -> int:
        n = len(shape) - 1
        if not 1 <= n <= 3:
            raise self.fail(f"expects a (C, L), (C, H, W) or (C, D, H, W) input, got {len(shape)} axes", "inputs")
        want = _RANK.get(self.mode)
        if want is not None and want != n:
            raise self.fail(f"mode {self.mode!r} needs {want} spatial axes (torch), the input has {n}", "mode")
        if self.align_corners is not None and self.mode == "nearest":
            raise self.fail("align_corners can only be set with the linear modes (torch rejects it for nearest)", "align_corners")
        if (self.size is None) == (self.scale_factor is None):
            raise self.fail("give exactly one of size and scale_factor", "size" if self.size is not None else "scale_factor")
        return n

    def _sizes(self, shape: Shape) -> list[tuple[Dim, Dim, Dim | None]]:
        """(input size, output size, integer scale or None) per spatial axis."""
        n = self._n(shape)
        if self.size is not None:
            return [(h, o, None) for h, o in zip(shape[1:], per_axis(self.size, n, "size", self), strict=True)]
        return [(h, h * s, s) for h, s in zip(shape[1:], per_axis(self.scale_factor, n, "scale_factor", self), strict=True)]

    def output_shape(self, ins: list[Shape]) -> Shape:
        return (ins[0][0], *(o for _, o, _ in self._sizes(ins[0])))

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        n = len(out) - 1
        taps = 1 if self.mode == "nearest" else 2**n
        # the peers count per output element, by the aten op torch runs (upsample_nearest2d, upsample_bilinear2d...)
        # or once per call (upsample_out): see archcalc.conventions
        return {"interp": numel(out) * taps, f"upsample_{self.mode}{n}d": numel(out), "upsample_out": numel(out)}

    def windows(self, ins: list[Shape]) -> list[Window]:
        return [self._window(h, o, s) for h, o, s in self._sizes(ins[0])]

    def _window(self, size: Dim, out: Dim, scale: Dim | None) -> Window:
        """The window on a finer grid (Window.upsample) that holds exactly the pixels an output reads."""
        if scale is not None:
            a, b = 1, scale  # out/in = scale/1, whatever the size
        else:
            hi, oi = as_int(size), as_int(out)
            g = gcd(hi, oi) if hi is not None and oi is not None else 1
            a, b = size // g, out // g  # in : out in lowest terms
        if self.mode == "nearest":
            # output o reads floor(o*a/b): the one pixel among fine positions o*a-(b-1) .. o*a (pixels every b)
            return Window(b, a, b - 1, 1, upsample=b)
        if self.align_corners:
            hi, oi = as_int(size), as_int(out)
            if hi == 1 or oi == 1:
                return Window(1)  # one sample point: every output reads pixel 0
            g = gcd(hi - 1, oi - 1) if hi is not None and oi is not None else 1
            a, b = (size - 1) // g, (out - 1) // g
            # sample point o*a on a grid with pixels every b: the pixels strictly within b of it
            return Window(2 * b - 1, a, b - 1, 1, upsample=b)
        # sample point (2o+1)*a - b on a grid with pixels every 2b: the pixels strictly within 2b of it
        return Window(4 * b - 1, 2 * a, 3 * b - a - 1, 1, upsample=2 * b)

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # nearest and (bi/tri)linear interpolation: the backward needs only the sizes

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        n = self._n(ins[0])
        if self.size is not None:
            size = tuple(int(x) for x in per_axis(self.size, n, "size", self))
            return nn.Upsample(size=size, mode=self.mode, align_corners=self.align_corners)
        scale = tuple(float(x) for x in per_axis(self.scale_factor, n, "scale_factor", self))
        return nn.Upsample(scale_factor=scale, mode=self.mode, align_corners=self.align_corners)


LAYERS: list[type[Layer]] = [Upsample]
