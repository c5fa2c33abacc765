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
from .base import DEFAULT_RUN, DimIn, DimList, Layer, Run, Saved, Shape, Window, dim_field, extent, numel, per_axis, shape_str, spatial_axes


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

    def cpu_kernels(self, ins: list[Shape], run: Run) -> tuple[str, ...]:
        """The kernels torch may run it with on a CPU (torch 2.14, aten/src/ATen/native/Convolution.cpp:
        ``ConvParams::use_mkldnn``, then ``_select_conv_backend``): ``"onednn"``; ``"slow"``, torch's
        own im2col kernel ``_slow_conv2d_forward``/``_backward`` (ConvolutionMM2d.cpp; a conv1d is
        viewed as a conv2d of height 1); ``"other"``, a slow kernel not modelled here (dilated:
        slow_conv_dilated; grouped: one call per group on copies; 3-D: slow_conv3d; padding torch
        applies apart: 'same' with an even kernel).  More than one where the choice turns on what is
        not known here: the CPU's 16-bit support (``run.conv16``), the batch when symbolic, the
        thread count.

        use_mkldnn: a bf16/fp16 input -> oneDNN iff the CPU runs that dtype in oneDNN; float32 ->
        oneDNN iff (strided or dilated or batch >= 16 or the kernel is not 1x1 or threads > 1) and
        (groups > 1 or both kernel sides > 3 or batch > 1 or batch*C*H*W > 20480); any other dtype
        (float64) -> never."""
        if run.width == 2:
            picked = (run.conv16,) if run.conv16 else ("onednn", "slow")
            return tuple(dict.fromkeys("onednn" if c == "onednn" else self._slow_kind(ins) for c in picked))
        if run.width != 4:
            return (self._slow_kind(ins),)
        k, s, d = self._axes()
        kh, kw = (1, k[0]) if self.n_spatial == 1 else k[-2:]
        sizes = (ins[0][0], 1, ins[0][1]) if self.n_spatial == 1 else ins[0][:3]  # torch reads input sizes 1..3 (after the batch)
        strided_or_dilated = any(as_int(x) != 1 for x in (*s, *d))
        one_by_one = as_int(kh) == 1 and as_int(kw) == 1
        batches = [run.batch] if as_int(run.batch) is not None else [2, 16]  # a symbolic batch: from 2 (batch 1 is worked out apart)
        out: list[str] = []
        for nb in batches:
            n = int(nb)
            first = [True] if strided_or_dilated or n >= 16 or not one_by_one else [True, False]  # threads > 1, or one thread
            big = known_sign(n * prod(sizes) - 20481)
            wide = as_int(kh) is not None and as_int(kw) is not None and int(kh) > 3 and int(kw) > 3
            second = [True] if as_int(self.groups) != 1 or wide or n > 1 or big == 1 else [False] if big == -1 else [True, False]
            for a in first:
                for b in second:
                    out.append("onednn" if a and b else self._slow_kind(ins))
        return tuple(dict.fromkeys(out))

    def _slow_kind(self, ins: list[Shape]) -> str:
        """"slow" where torch's _slow_conv2d runs it as archcalc models it, else "other"."""
        k, _, d = self._axes()
        pads = conv_pads(self.padding, k, d, self.n_spatial, self)
        plain = self.n_spatial in (1, 2) and as_int(self.groups) == 1 and all(as_int(x) == 1 for x in d)
        symmetric = self.padding_mode != "zeros" or all(known_sign(b - a) == 0 for b, a in pads)  # (F.pad's copy is convolved unpadded)
        return "slow" if plain and symmetric else "other"

    def workspace(
        self, ins: list[Shape], out: Shape, device: str, phase: str, input_grad: bool = True, run: Run = DEFAULT_RUN,
        other_grads: tuple[bool, ...] = (), views: tuple[bool, ...] = (), aliases: tuple[int, ...] = (),
    ) -> list[tuple[Dim, Dim]]:
        """On CPU, by the kernel torch picks (:meth:`cpu_kernels`; measured with torch.profiler,
        torch 2.14; archcalc.torch.peak), one pair per candidate kernel and moment:

        * oneDNN copies tensors into its blocked layouts and back: the forward allocates the larger
          of a copy of the input and the weight, or of the output; the backward copies of the
          output's gradient, the weight's gradient and the input (which the weight's gradient reads
          in the blocked layout whether or not the input's gradient is computed: measured on
          AVX-512, a 16-channel 3x3 conv on the model's input, review s10 #6); on more than one
          thread also a reduction scratch, not counted (:meth:`workspace_uncounted`);
        * torch's slow kernel (ConvolutionMM2d.cpp) unfolds the input into a ``columns`` buffer of
          C_in*k_h*k_w x H_out*W_out elements per sample, for the whole batch (none for a 1x1
          kernel of stride 1 without padding: a view of the input), in the forward and again in
          the backward after the input's gradient and the weight's are made; before that, under a
          16-bit dtype, the bias's gradient sums an fp32 copy of the output's gradient (4 bytes
          per element, and C_out fp32 sums), the weight's gradient not yet made: where the reduced
          axes come first in TensorIterator's order (ReduceOps.cpp, ``should_use_acc_buffer``),
          i.e. with a batch over 1 and an output map of more than one position.

        On CUDA cuDNN's workspace depends on the algorithm it picks: not counted (0)."""
        padded = self.padded_input(ins)
        # padding_mode other than zeros: the convolution's input gradient is the padded copy's,
        # which the padding's backward then crops into the input's (the walk allocates that one)
        cropped = numel(padded) - numel(ins[0]) if padded is not None and phase == "backward" and input_grad else 0
        if device != "cpu":
            return [(0, cropped)]
        kernels = self.cpu_kernels(ins, run)
        alts: list[tuple[Dim, Dim]] = []
        if "onednn" in kernels or "other" in kernels:  # "other": not modelled, counted as oneDNN's (and said so)
            w = sum((numel(shape) for shape in self.weights(ins).values() if len(shape) > 1), start=0)
            x, y = numel(ins[0] if padded is None else padded), numel(out)
            if run.conv16 != "slow" and as_int(self.groups) == 1:
                # a CPU whose oneDNN runs 16-bit kernels has AVX-512 (not known: counted as one, the larger): its blocked
                # layouts (nChw16c, Ohwi16o) pad the channels to 16 (measured, torch 2.14: LeNet-5's c1 output 4x6x28x28
                # is copied as 4x16x28x28, c5's 120x16x5x5 weight as 128x16x5x5); AVX2's blocks of 8 fit in what the
                # unpadded counts bound
                x, y, w = (_pad16(x, ins[0][0]), _pad16(y, out[0]), _pad16(w, self.out_channels))
            if phase == "forward":  # max(input + weight, output), bounded by the weight plus the larger of input and output
                bigger = known_sign(x - y)
                alts.append((w, x if bigger in (0, 1) else y if bigger == -1 else x + y))
            else:  # the weight's gradient reads a blocked copy of the input whether or not the input's is computed (review s10 #6)
                alts.append((w, y + x + cropped))
        if "slow" in kernels:
            k, s, d = self._axes()
            pads = conv_pads(self.padding, k, d, self.n_spatial, self)
            unpadded = padded is not None or all(as_int(b) == 0 for b, _ in pads)  # F.pad's copy is convolved unpadded
            view = all(as_int(x) == 1 for x in (*k, *s)) and unpadded
            positions = numel(out[1:])
            columns = 0 if view else ins[0][0] * prod(k) * positions  # per sample
            alts.append((0, columns + cropped))
            if phase == "backward" and self._bias_copy(out, run):
                c_out = self.out_channels
                weight = numel(self.weights(ins)["weight"])
                # in 2-byte elements: the fp32 sums (4*C_out bytes) and copy (4 bytes per element), less the weight's gradient
                alts.append((2 * c_out - weight, 2 * c_out * positions + cropped))
        return alts

    def _bias_copy(self, out: Shape, run: Run) -> bool:
        """Whether the backward of torch's slow kernel sums the bias's gradient from an fp32 copy of
        the output's gradient (see :meth:`workspace`)."""
        if not self.bias or run.width != 2 or known_sign(numel(out[1:]) - 1) == 0:
            return False
        n = as_int(run.batch)
        return n is None or n > 1  # a symbolic batch: from 2 (batch 1 is worked out apart)

    def workspace_uncounted(self, ins: list[Shape], out: Shape, device: str, run: Run = DEFAULT_RUN) -> str | None:
        """oneDNN's weight gradient of a conv with a kernel wider than 1 whose output map has at most
        4 positions keeps 4 partial copies of it per CPU thread at a batch of 2 or more (measured:
        8 copies on 2 threads, 16 on 4; ResNet-18 on 3x64x64 images, whose layer4 maps are 2x2).
        Torch's slow kernel computes the input's gradient one sample at a time into a columns buffer
        per CPU thread (at most the batch) that it allocates outside torch's allocator
        (``std::make_unique``, unseen by torch.profiler); it is freed before the backward's own
        columns buffer, which is larger, except for a 1x1 kernel of stride 1 without padding."""
        if device != "cpu":
            return None
        kernels = self.cpu_kernels(ins, run)
        said = self._uncounted(ins, out, kernels)
        scratch = self._threads_uncounted(ins, out, kernels, run)
        if scratch:
            said = scratch if said is None else f"{said}; {scratch}"
        if run.width == 2 and run.conv16 != "slow" and "onednn" in kernels:
            # review s9 #3: an 8-channel 3x3 circular-padded conv on 16x16 maps, batch 2, bf16 under autocast (AMD EPYC,
            # AVX-512 BF16): in its backward oneDNN allocates 5,152 + 41,472 bytes per thread through torch's allocator
            # (46,624 on 1 thread, 88,096 on 2; 41,472 = 8 channels padded to 16 x 18 x 18 x 4 bytes x 2), the transposed
            # copies its 16-bit kernels make of the input and of the output's gradient
            bf16 = ("oneDNN's scratchpad for the 16-bit backward (transposed copies of the input and of the output's gradient, "
                    "per CPU thread, sized by its blocking: 46,624 bytes on 1 thread and 88,096 on 2 for an 8-channel 3x3 conv on "
                    "16x16 maps at batch 2) on a CPU that runs 16-bit convs in oneDNN (--cpu-conv16 slow says it does not)")
            return bf16 if said is None else f"{said}; {bf16}"
        return said

    def _threads_uncounted(self, ins: list[Shape], out: Shape, kernels: tuple[str, ...], run: Run) -> str | None:
        """oneDNN's backward on more than one CPU thread reduces the weight's gradient through a scratch
        buffer whose size follows how it splits the work among the threads (its blocking, not a
        tensor of a known shape); with under 8 channels in and out its backward makes other copies
        too, and on AVX2 channels not a multiple of 8 (in and out) are padded to its blocks (review s10 #6,
        measured on an AMD EPYC with AVX-512, torch 2.14.1, float32: a 16 -> 16 3x3 conv on 24x24 at
        batch 4, 29,952 bytes on 2 threads and 48,640 on 4, none on 1; 64 -> 64 on 56x56 at batch 2,
        156,032 on 2; none for 128 -> 128 on 14x14; 4 -> 4 on 8x8 maps at batch 2 measured 12.5%
        above the walk's figure on 1 thread)."""
        if "onednn" not in kernels:
            return None
        parts = []
        if run.threads != 1:
            parts.append("a scratch buffer for the reduction of its weight's gradient over the CPU threads, sized by how it splits the "
                         "work (29,952 bytes on 2 threads and 48,640 on 4 for a 16-channel 3x3 conv on 24x24 maps at batch 4, 156,032 "
                         "on 2 for a 64-channel one on 56x56 at batch 2; none on 1 thread: --cpu-threads 1 says torch runs on one)")
        channels = (ins[0][0], self.out_channels)
        if all(known_sign(c - 8) == -1 for c in channels):
            parts.append("with under 8 channels in and out, other copies (4 channels on 8x8 maps, batch 2: measured 12.5% above this figure "
                         "on 1 thread on AVX-512, 27% on AVX2)")
        elif run.conv16 == "slow" and all((as_int(c) or 1) % 8 for c in channels):  # (a symbolic count: 1, not a multiple)
            parts.append("on an AVX2 CPU (--cpu-conv16 slow), channels in and out padded to its blocks of 8 (12 channels on 16x16 maps, "
                         "batch 2: measured 6.7% above this figure on 1 thread)")
        return ("oneDNN's backward: " + "; ".join(parts)) if parts else None

    def _uncounted(self, ins: list[Shape], out: Shape, kernels: tuple[str, ...]) -> str | None:
        if "other" in kernels:
            return ("torch's slow kernel for a dilated, grouped or 3-D conv, or one padded apart (slow_conv_dilated, one call per "
                    "group, slow_conv3d), which archcalc does not model (counted as oneDNN's copies)")
        k, s, d = self._axes()
        pads = conv_pads(self.padding, k, d, self.n_spatial, self)
        unpadded = self.padding_mode != "zeros" or all(as_int(b) == 0 for b, _ in pads)
        # (where oneDNN may run it too, its copies counted are larger: the batch's input and output gradients)
        if kernels == ("slow",) and all(as_int(x) == 1 for x in (*k, *s)) and unpadded:
            return ("a columns buffer of its input's size per CPU thread (at most the batch), allocated outside torch's allocator "
                    "when torch's slow kernel computes its input's gradient (a 1x1 conv)")
        positions = known_sign(prod(out[1:]) - 5)
        if "onednn" not in kernels or positions not in (-1, None) or all(as_int(x) == 1 for x in k):
            return None
        return "up to 4 copies of its weight's gradient per CPU thread (oneDNN's reduction on maps of at most 4 positions, batch 2 or more)"

    def workspace_depends(self, ins: list[Shape], out: Shape, device: str, run: Run = DEFAULT_RUN) -> str | None:
        if device != "cpu":
            return None
        kernels = self.cpu_kernels(ins, run)
        if len(kernels) < 2:
            return None
        if run.width == 2 and run.conv16 is None:
            return "oneDNN or torch's slow kernel, as the CPU runs 16-bit convs or not (--cpu-conv16 onednn|slow says which)"
        return "oneDNN or torch's slow kernel, as torch runs on several CPU threads or one (float32 1x1 conv, batch under 16)"

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


def _pad16(elements: Dim, channels: Dim) -> Dim:
    """``elements`` of a tensor with ``channels`` on its blocked axis, that axis padded to a multiple of 16
    (oneDNN's AVX-512 block); unchanged where the channels are not a known number."""
    c = as_int(channels)
    if c is None or c % 16 == 0:
        return elements
    padded = (c + 15) // 16 * 16
    return elements // c * padded if type(elements) is int else elements * padded / c  # (a symbolic map: c divides it exactly)
