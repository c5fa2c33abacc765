"""Transposed convolution ("up-convolution", "deconvolution"), for any number of spatial axes.

Shape (torch.nn.ConvTranspose2d docs):
    out = (in - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1
Weights:  weight (C_in, C_out/groups, *k)  (torch stores it input-channels first), bias (C_out,)
MACs:     input elements x (C_out/groups x prod(k)): every input pixel is scattered, weighted, onto
          a k-window of every output channel of its group.  This is what FlopCounterMode counts for
          ``aten.convolution`` with ``transposed=True`` (torch.utils.flop_counter.conv_flop_count
          takes the *input's* spatial size there); taps that land in the cropped border (padding)
          are counted too, as torch computes them.
Receptive field: a transposed conv of stride s is a stride-1 conv, kernel k, padding d(k-1) - p,
          on the input with s - 1 zeros inserted between pixels (torch's docs say the same).  The
          RF of an output is the input pixels it actually reads: a 2x2 stride-2 up-conv (U-Net)
          reads exactly one input pixel per output, so the RF does not grow, and the effective
          stride halves (see archcalc.passes.receptive).
"""


from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..dims import Dim, as_int, known_sign, prod
from .base import DimIn, DimList, Layer, Saved, Shape, Window, dim_field, extent, numel, per_axis, shape_str, spatial_axes


def _ints(xs: tuple[Any, ...]) -> tuple[int, ...]:
    return tuple(int(x) for x in xs)


class _ConvTransposeNd(Layer):
    n_spatial: ClassVar[int] = 2
    out_channels: Annotated[DimIn, *dim_field()] = Field(description="Number of output channels (C_out).")
    kernel_size: Annotated[DimList, *dim_field()] = Field(description="Kernel size: one int, or one per spatial axis.")
    stride: Annotated[DimList, *dim_field()] = 1
    padding: Annotated[DimList, *dim_field(0)] = Field(default=0, description="Rows cropped from each side of the full output (torch's padding).")
    output_padding: Annotated[DimList, *dim_field(0)] = Field(
        default=0, description="Extra rows added at the end of each axis (torch: smaller than stride or dilation)."
    )
    dilation: Annotated[DimList, *dim_field()] = 1
    groups: Annotated[DimIn, *dim_field()] = 1
    bias: bool = True

    def _axes(self) -> tuple[tuple[Dim, ...], ...]:
        n = self.n_spatial
        return (
            per_axis(self.kernel_size, n, "kernel_size", self),
            per_axis(self.stride, n, "stride", self),
            per_axis(self.padding, n, "padding", self),
            per_axis(self.output_padding, n, "output_padding", self),
            per_axis(self.dilation, n, "dilation", self),
        )

    def _check_groups(self, c_in: Dim) -> None:
        gi = as_int(self.groups)
        for what, c in (("in_channels", c_in), ("out_channels", self.out_channels)):
            ci = as_int(c)
            if ci is not None and gi is not None and ci % gi:
                raise self.fail(f"{what} {ci} is not divisible by groups {gi}", "groups")

    def output_shape(self, ins: list[Shape]) -> Shape:
        sizes = spatial_axes(ins[0], self, self.n_spatial)
        self._check_groups(ins[0][0])
        k, s, p, op, d = self._axes()
        out = []
        for axis, (h, ki, si, pi, opi, di) in enumerate(zip(sizes, k, s, p, op, d, strict=True)):
            # torch: "output padding must be smaller than either stride or dilation"
            if known_sign(si - opi) in (0, -1) and known_sign(di - opi) in (0, -1):
                raise self.fail(f"output_padding {opi} must be smaller than the stride {si} or the dilation {di} (torch)", "output_padding")
            o = (h - 1) * si - 2 * pi + extent(ki, di) + opi  # extent = d(k - 1) + 1
            if known_sign(o) in (0, -1):
                raise self.fail(f"output size {o} on spatial axis {axis} is not positive: padding {pi} crops more than the layer produces", "padding")
            out.append(o)
        return (self.out_channels, *out)

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        k = self._axes()[0]
        w: dict[str, Shape] = {"weight": (ins[0][0], self.out_channels // self.groups, *k)}
        if self.bias:
            w["bias"] = (self.out_channels,)
        return w

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        k = self._axes()[0]
        # every input element is multiplied into C_out/groups x prod(k) outputs (torch's count)
        o: dict[str, Dim] = {"mac": numel(ins[0]) * (self.out_channels // self.groups * prod(k))}
        # the plain conv formula applied on the output grid (what torchinfo and thop count)
        o["mac_outgrid"] = numel(out) * (ins[0][0] // self.groups * prod(k))
        if self.bias:
            o["bias"] = numel(out)
        return o

    def windows(self, ins: list[Shape]) -> list[Window]:
        k, s, p, _, d = self._axes()
        # zero-insertion view: a stride-1 conv with padding d(k-1) - p on an s-times finer grid
        return [Window(ki, 1, di * (ki - 1) - pi, di, upsample=si) for ki, si, pi, di in zip(k, s, p, d, strict=True)]

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # aten.convolution (transposed=True): as for a conv, the input for the weight's gradient
        return [
            Saved.of_input("the weight's gradient is the input correlated with the output's gradient"),
            Saved.of_param("weight", "the input's gradient is the output's gradient correlated with the weight"),
        ]

    def autocast(self, device: str) -> str:
        return "lower"  # conv_transpose1d/2d/3d are on autocast's lower-precision list

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        cls: Any = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[self.n_spatial]
        k, s, p, op, d = self._axes()
        return cls(
            int(ins[0][0]),
            int(self.out_channels),
            _ints(k),
            stride=_ints(s),
            padding=_ints(p),
            output_padding=_ints(op),
            groups=int(self.groups),
            bias=self.bias,
            dilation=_ints(d),
        )

    def describe(self, ins: list[Shape]) -> str:
        k, s, _, _, _ = self._axes()
        return f"{shape_str(k)} transposed conv, {self.out_channels} filters, stride {shape_str(s)}"


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution (torch.nn.ConvTranspose1d); input (C, L)."""

    type: Literal["convtranspose1d"]
    n_spatial: ClassVar[int] = 1


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution (torch.nn.ConvTranspose2d); input (C, H, W)."""

    type: Literal["convtranspose2d"]
    n_spatial: ClassVar[int] = 2


class ConvTranspose3d(_ConvTransposeNd):
    """3-D transposed convolution (torch.nn.ConvTranspose3d); input (C, D, H, W)."""

    type: Literal["convtranspose3d"]
    n_spatial: ClassVar[int] = 3


LAYERS: list[type[Layer]] = [ConvTranspose1d, ConvTranspose2d, ConvTranspose3d]
