"""Convolution, for any number of spatial axes: every formula of a conv layer lives here.

Shape (torch.nn.Conv2d docs):  out = (in + pad_before + pad_after - dilation*(k-1) - 1) // stride + 1
Weights:                      weight (C_out, C_in/groups, *k), bias (C_out,)
MACs:                         output elements x (C_in/groups x prod(k))   (bias adds counted apart)
padding_mode (torch.nn.Conv2d docs; _ConvNd.forward): 'zeros' pads inside the convolution; 'reflect',
'replicate' and 'circular' first make a padded copy of the input with F.pad
(_reversed_padding_repeated_twice) and convolve that with padding 0: the same shapes, weights and MACs,
but the copy is a tensor of its own, which the backward keeps in place of the input.
"""


from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..dims import Dim, as_int, known_sign, prod
from .base import DimIn, DimList, Layer, Saved, Shape, Window, dim_field, extent, numel, per_axis, shape_str, spatial_axes


def _ints(xs: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(int(x) for x in xs)


def conv_pads(padding: Any, kernel: tuple[Dim, ...], dilation: tuple[Dim, ...], n: int, layer: Layer) -> list[tuple[Dim, Dim]]:
    """(before, after) padding per axis; 'same' splits like torch (the extra pixel goes after)."""
    if padding == "valid":
        return [(0, 0)] * n
    if padding == "same":
        pads = []
        for k, d in zip(kernel, dilation, strict=True):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        return pads
    return [(p, p) for p in per_axis(padding, n, "padding", layer)]


def window_out(size: Dim, before: Dim, after: Dim, kernel: Dim, stride: Dim, dilation: Dim, layer: Layer, axis: int) -> Dim:
    """Output length of a sliding window with floor semantics; errors when the kernel does not fit."""
    span = size + before + after
    ext = extent(kernel, dilation)
    if known_sign(span - ext) == -1:
        raise layer.fail(
            f"kernel extent {ext} (dilation {dilation}\u00b7({kernel}\u22121)+1) is larger than the padded input "
            f"{size}+{before}+{after}={span} on spatial axis {axis}",
            "kernel_size",
        )
    return (span - ext) // stride + 1


class _ConvNd(Layer):
    n_spatial: ClassVar[int] = 2
    out_channels: Annotated[DimIn, *dim_field()] = Field(description="Number of filters (C_out).")
    kernel_size: Annotated[DimList, *dim_field()] = Field(description="Kernel size: one int, or one per spatial axis.")
    stride: Annotated[DimList, *dim_field()] = 1
    padding: Annotated[DimList, *dim_field(0, ("same", "valid"))] = Field(
        default=0, description="Zero padding per side: int, one per axis, or 'same'/'valid' as in torch."
    )
    dilation: Annotated[DimList, *dim_field()] = 1
    groups: Annotated[DimIn, *dim_field()] = 1
    bias: bool = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = Field(
        default="zeros",
        description="As torch: 'zeros' pads inside the convolution; 'reflect', 'replicate' and 'circular' convolve a padded copy "
        "of the input (F.pad), which costs memory (training: the backward keeps it) but no MACs.",
    )

    def _axes(self) -> tuple[tuple[Dim, ...], tuple[Dim, ...], tuple[Dim, ...]]:
        n = self.n_spatial
        return (
            per_axis(self.kernel_size, n, "kernel_size", self),
            per_axis(self.stride, n, "stride", self),
            per_axis(self.dilation, n, "dilation", self),
        )

    def _check_groups(self, c_in: Dim) -> None:
        g = self.groups
        for what, c in (("in_channels", c_in), ("out_channels", self.out_channels)):
            ci, gi = as_int(c), as_int(g)
            if ci is not None and gi is not None and ci % gi:
                raise self.fail(f"{what} {ci} is not divisible by groups {gi}", "groups")

    def output_shape(self, ins: list[Shape]) -> Shape:
        sizes = spatial_axes(ins[0], self, self.n_spatial)
        self._check_groups(ins[0][0])
        k, s, d = self._axes()
        if self.padding == "same" and any(as_int(x) != 1 for x in s):
            raise self.fail("padding='same' is not supported for strided convolutions (torch rejects it)", "padding")
        pads = conv_pads(self.padding, k, d, self.n_spatial, self)
        if self.padding_mode != "zeros":
            self._check_pad_fits(sizes, pads)
        out = [window_out(h, pb, pa, ki, si, di, self, i) for i, (h, (pb, pa), ki, si, di) in enumerate(zip(sizes, pads, k, s, d, strict=True))]
        return (self.out_channels, *out)

    def _check_pad_fits(self, sizes: Shape, pads: list[tuple[Dim, Dim]]) -> None:
        """F.pad's limits (torch's reflection_pad and _pad_circular check them): a reflection
        mirrors the input without its edge, so each side's padding must be shorter than the axis;
        a circular one wraps the axis once, so it may be as long as the axis, not longer; a
        replication repeats the edge, as far as it likes."""
        if self.padding_mode == "replicate":
            return
        for axis, (size, (before, after)) in enumerate(zip(sizes, pads, strict=True)):
            for p in (before, after):
                over = known_sign(p - size)
                if over == 1 or (over == 0 and self.padding_mode == "reflect"):
                    limit = "shorter than" if self.padding_mode == "reflect" else "at most"
                    raise self.fail(
                        f"padding_mode={self.padding_mode!r} pads {p} on a side of spatial axis {axis} of length {size}; "
                        f"torch's F.pad needs the padding {limit} the axis", "padding")

    def padded_input(self, ins: list[Shape]) -> Shape | None:
        """The padded copy F.pad makes of the input (per sample) when ``padding_mode`` is not
        'zeros' (torch's _ConvNd.forward); None for 'zeros', which pads inside the convolution."""
        if self.padding_mode == "zeros":
            return None
        k, _, d = self._axes()
        pads = conv_pads(self.padding, k, d, self.n_spatial, self)
        return (ins[0][0], *(h + pb + pa for h, (pb, pa) in zip(ins[0][1:], pads, strict=True)))

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        k, _, _ = self._axes()
        w: dict[str, Shape] = {"weight": (self.out_channels, ins[0][0] // self.groups, *k)}
        if self.bias:
            w["bias"] = (self.out_channels,)
        return w

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        k, _, _ = self._axes()
        # each output element is a dot product over C_in/groups x prod(k) inputs
        o: dict[str, Dim] = {"mac": numel(out) * (ins[0][0] // self.groups * prod(k))}
        if self.bias:
            o["bias"] = numel(out)  # one add per output element
        return o

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # aten.convolution's backward: grad_weight needs the input, grad_input the weight
        weight = Saved.of_param("weight", "the input's gradient is the output's gradient convolved with the weight")
        padded = self.padded_input(ins)
        if padded is None:
            return [Saved.of_input("the weight's gradient is the input correlated with the output's gradient"), weight]
        # F.pad's copy is what the convolution reads and keeps; reflection_pad and replication_pad's
        # backward also keep their input (derivatives.yaml: reflection_pad2d_backward(grad, self,
        # padding)), where it requires grad, and CPU autocast runs them in fp32 (autocast_mode.cpp's
        # fp32 list); circular padding is narrow and copy_, which keep nothing
        kept = [Saved.new("padded copy of the input", padded, "the weight's gradient is the padded input correlated with the output's gradient"),
                weight]
        if self.padding_mode != "circular":
            kept.append(Saved.of_input(f"{self.padding_mode} padding's backward reads its input (where it requires grad)", if_grad=True,
                                       fp32_on=("cpu",)))
        return kept

    def autocast(self, device: str) -> str:
        return "lower"  # conv1d/2d/3d are on autocast's lower-precision list (CPU and CUDA)

    def workspace(self, ins: list[Shape], out: Shape, device: str, phase: str, input_grad: bool = True) -> tuple[Dim, Dim]:
        """On CPU torch runs conv through oneDNN, which copies tensors into its blocked layouts and
        back (measured with torch.profiler, torch 2.14, fp32; archcalc.torch.peak): the forward
        allocates the larger of a copy of the input and the weight, or of the output; the backward
        copies of the output's gradient, the weight's gradient and, when it computes the input's
        gradient, the input's.  On CUDA cuDNN's workspace depends on the algorithm it picks: not
        counted (0)."""
        padded = self.padded_input(ins)
        # padding_mode other than zeros: the convolution's input gradient is the padded copy's,
        # which the padding's backward then crops into the input's (the walk allocates that one)
        cropped = numel(padded) - numel(ins[0]) if padded is not None and phase == "backward" and input_grad else 0
        if device != "cpu":
            return (0, cropped)
        w = sum((numel(shape) for shape in self.weights(ins).values() if len(shape) > 1), start=0)
        x, y = numel(ins[0] if padded is None else padded), numel(out)
        if phase == "forward":  # max(input + weight, output), bounded by the weight plus the larger of input and output
            bigger = known_sign(x - y)
            return (w, x if bigger in (0, 1) else y if bigger == -1 else x + y)
        return (w, y + (x if input_grad else 0) + cropped)

    def workspace_uncounted(self, ins: list[Shape], out: Shape, device: str) -> str | None:
        """oneDNN's weight gradient of a conv with a kernel wider than 1 whose output map has at most
        4 positions keeps 4 partial copies of it per CPU thread at a batch of 2 or more (measured:
        8 copies on 2 threads, 16 on 4; ResNet-18 on 3x64x64 images, whose layer4 maps are 2x2)."""
        k, _, _ = self._axes()
        positions = known_sign(prod(out[1:]) - 5)
        if device != "cpu" or positions not in (-1, None) or all(as_int(x) == 1 for x in k):
            return None
        return "up to 4 copies of its weight's gradient per CPU thread (oneDNN's reduction on maps of at most 4 positions, batch 2 or more)"

    def windows(self, ins: list[Shape]) -> list[Window]:
        k, s, d = self._axes()
        pads = conv_pads(self.padding, k, d, self.n_spatial, self)
        return [Window(ki, si, pb, di) for ki, si, (pb, _), di in zip(k, s, pads, d, strict=True)]

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        cls: Any = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[self.n_spatial]
        k, s, d = self._axes()
        pad = self.padding if isinstance(self.padding, str) else tuple(int(p) for p in per_axis(self.padding, self.n_spatial, "padding", self))
        return cls(int(ins[0][0]), int(self.out_channels), _ints(k), _ints(s), pad, _ints(d), int(self.groups), self.bias, self.padding_mode)

    def note(self, ins: list[Shape]) -> str | None:
        padded = self.padded_input(ins)
        if padded is None:
            return None
        return (f"padding_mode={self.padding_mode!r}: the forward first makes a padded copy of its input ({shape_str(padded)} per sample, "
                "F.pad), freed after the convolution in inference, so not in this row's memory, which counts the output")

    def describe(self, ins: list[Shape]) -> str:
        k, s, _ = self._axes()
        return f"{shape_str(k)} conv, {self.out_channels} filters, stride {shape_str(s)}"


class Conv1d(_ConvNd):
    """1-D convolution (torch.nn.Conv1d); input (C, L)."""

    type: Literal["conv1d"]
    n_spatial: ClassVar[int] = 1


class Conv2d(_ConvNd):
    """2-D convolution (torch.nn.Conv2d); input (C, H, W)."""

    type: Literal["conv2d"]
    n_spatial: ClassVar[int] = 2


class Conv3d(_ConvNd):
    """3-D convolution (torch.nn.Conv3d); input (C, D, H, W)."""

    type: Literal["conv3d"]
    n_spatial: ClassVar[int] = 3


LAYERS: list[type[Layer]] = [Conv1d, Conv2d, Conv3d]
