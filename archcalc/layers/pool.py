"""Pooling, for any number of spatial axes: max, average, adaptive average/max.

Shape (torch.nn.MaxPool2d docs), floor mode: out = (in + 2p - d*(k-1) - 1) // s + 1
ceil mode: out = ceil((in + 2p - d*(k-1) - 1) / s) + 1, minus one if the last window would start
in the right padding, i.e. if (out - 1)*s >= in + p (torch's pooling_output_shape).
Ops (`pool`): output elements x window size (the lecture's count: "64*27*27*3*3").
Adaptive pooling (torch's start = floor(i*in/out), end = ceil((i+1)*in/out)): ops are the exact
sum of the window sizes, separable per axis.
"""


import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..dims import Dim, as_int, ceildiv, known_sign, prod
from .base import GENERAL_FORMULA, DimList, DimListOpt, Layer, Saved, Shape, Window, dim_field, extent, numel, per_axis, spatial_axes
from .conv import window_out


def pool_out(size: Dim, k: Dim, s: Dim, p: Dim, d: Dim, ceil_mode: bool, layer: Layer, axis: int) -> Dim:
    if not ceil_mode:
        return window_out(size, p, p, k, s, d, layer, axis)
    ext = extent(k, d)
    # ceil mode lets the last window overhang the padded input (by up to s - 1): torch's
    # pooling_output_shape is ceil((size + 2p - extent) / s) + 1, rejected only if below 1
    out = ceildiv(size + 2 * p - ext, s) + 1
    if known_sign(out - 1) == -1:
        raise layer.fail(
            f"kernel extent {ext} overhangs the padded input {size}+2\u00b7{p} by more than the stride {s} on spatial axis {axis}",
            "kernel_size",
        )
    # torch: drop the last window if it would start inside the right padding
    drop = known_sign((out - 1) * s - (size + p))
    if drop is None:
        # undecidable with symbols unless the rule provably never fires (extent >= p + s)
        if known_sign(ext - p - s) in (0, 1):
            return out
        if GENERAL_FORMULA.get():  # explain's general form, the rule written out
            return _less_a_window_in_padding(out, (out - 1) * s, size + p)
        raise layer.fail(
            "ceil_mode with a symbolic input size: torch's last-window rule cannot be decided; give the input size a number with --set", "ceil_mode"
        )
    out = out - 1 if drop >= 0 else out
    if known_sign(out - 1) == -1:
        raise layer.fail(f"no window starts inside the input on spatial axis {axis}", "kernel_size")
    return out


def _less_a_window_in_padding(out: Dim, start: Dim, end: Dim) -> Any:
    """``out`` less 1 where the last window's first position ``start`` lies at or past ``end`` (the
    input and its left padding): torch's ceil-mode rule, kept whole for the general formula."""
    import sympy

    class CeilModeSize(sympy.Function):  # type: ignore[misc]  # sympy is untyped
        def _sympystr(self, printer: Any) -> str:
            n, a, b = (printer._print(x) for x in self.args)
            return f"{n} - (1 if {a} >= {b} else 0)"

    return CeilModeSize(out, start, end)


def _ints(xs: tuple[Any, ...]) -> tuple[int, ...]:
    return tuple(int(x) for x in xs)


class _PoolNd(Layer):
    n_spatial: ClassVar[int] = 2
    kernel_size: Annotated[DimList, *dim_field()]
    stride: Annotated[DimList | None, *dim_field()] = None
    padding: Annotated[DimList, *dim_field(0)] = 0
    ceil_mode: bool = False

    def _dilation(self) -> tuple[Dim, ...]:
        return (1,) * self.n_spatial

    def _axes(self) -> tuple[tuple[Dim, ...], tuple[Dim, ...], tuple[Dim, ...], tuple[Dim, ...]]:
        n = self.n_spatial
        k = per_axis(self.kernel_size, n, "kernel_size", self)
        s = k if self.stride is None else per_axis(self.stride, n, "stride", self)  # torch: stride defaults to kernel
        p = per_axis(self.padding, n, "padding", self)
        return k, s, p, self._dilation()

    def output_shape(self, ins: list[Shape]) -> Shape:
        sizes = spatial_axes(ins[0], self, self.n_spatial)
        k, s, p, d = self._axes()
        for ki, pi in zip(k, p, strict=True):
            if known_sign(ki - 2 * pi) == -1:
                raise self.fail(f"padding {pi} is more than half the kernel {ki} (torch rejects it)", "padding")
        out = [pool_out(h, ki, si, pi, di, self.ceil_mode, self, i) for i, (h, ki, si, pi, di) in enumerate(zip(sizes, k, s, p, d, strict=True))]
        return (ins[0][0], *out)

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        k, _, _, _ = self._axes()
        return {"pool": numel(out) * prod(k), "pool_in": numel(ins[0]), "pool_out": numel(out)}  # every output reads a full window

    def note(self, ins: list[Shape]) -> str | None:
        """Where ceil mode's rule drops a window: the '- 1' of the output size, said in words."""
        if not self.ceil_mode:
            return None
        sizes = spatial_axes(ins[0], self, self.n_spatial)
        k, s, p, d = self._axes()
        axes = ("L",) if self.n_spatial == 1 else ("H", "W") if self.n_spatial == 2 else ("D", "H", "W")
        said = []
        for name, n, ki, si, pi, di in zip(axes, sizes, k, s, p, d, strict=True):
            vals = [as_int(v) for v in (n, ki, si, pi, di)]
            if None in vals:
                continue
            n_, k_, s_, p_, d_ = (int(v) for v in vals)  # type: ignore[arg-type]
            out = -((-(n_ + 2 * p_ - (d_ * (k_ - 1) + 1))) // s_) + 1
            if (out - 1) * s_ >= n_ + p_:
                said.append(f"{name}: the last window would start at ({out} \u2212 1)\u00b7{s_} = {(out - 1) * s_} \u2265 {n_} + {p_}")
        if not said:
            return None
        return (
            "ceil_mode: torch drops a last window that would start in the right padding, the \u2212 1 of the output size ("
            + "; ".join(said) + ")"
        )

    def windows(self, ins: list[Shape]) -> list[Window]:
        k, s, p, d = self._axes()
        return [Window(*w) for w in zip(k, s, p, d, strict=True)]

    def _torch_args(self) -> dict[str, Any]:
        k, s, p, _ = self._axes()
        return {"kernel_size": _ints(k), "stride": _ints(s), "padding": _ints(p), "ceil_mode": self.ceil_mode}


class _MaxPoolNd(_PoolNd):
    dilation: Annotated[DimList, *dim_field()] = 1

    def _dilation(self) -> tuple[Dim, ...]:
        return per_axis(self.dilation, self.n_spatial, "dilation", self)

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # aten.max_pool2d_with_indices (1-d: unsqueezed to 2-d): the backward scatters each
        # gradient to its window's argmax, read from the int64 indices
        return [
            Saved.of_input("max_pool's backward takes the input (for its sizes and strides)"),
            Saved.new("indices", out, "where each window's maximum was: its gradient goes there", "int64"),
        ]

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        cls = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[self.n_spatial]
        return cls(dilation=tuple(int(x) for x in self._dilation()), **self._torch_args())


class _AvgPoolNd(_PoolNd):
    count_include_pad: bool = True

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return [Saved.of_input("avg_pool's backward takes the input (its sizes and strides; the values are not read)")]

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        cls = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[self.n_spatial]
        return cls(count_include_pad=self.count_include_pad, **self._torch_args())


class MaxPool1d(_MaxPoolNd):
    type: Literal["maxpool1d"]
    n_spatial: ClassVar[int] = 1


class MaxPool2d(_MaxPoolNd):
    """torch.nn.MaxPool2d."""

    type: Literal["maxpool2d"]


class MaxPool3d(_MaxPoolNd):
    type: Literal["maxpool3d"]
    n_spatial: ClassVar[int] = 3

    def autocast(self, device: str) -> str:
        return "float32" if device == "cpu" else "same"  # on CPU autocast's float32 list, not on CUDA's


class AvgPool1d(_AvgPoolNd):
    type: Literal["avgpool1d"]
    n_spatial: ClassVar[int] = 1


class AvgPool2d(_AvgPoolNd):
    """torch.nn.AvgPool2d."""

    type: Literal["avgpool2d"]


class AvgPool3d(_AvgPoolNd):
    type: Literal["avgpool3d"]
    n_spatial: ClassVar[int] = 3

    def autocast(self, device: str) -> str:
        return "float32" if device == "cpu" else "same"  # on CPU autocast's float32 list, not on CUDA's


MAX_SYMBOLIC_ADAPTIVE = 10**12
"""The largest output_size of an adaptive pool over a symbolic input size (the closed forms below
then sum over the divisors of output_size, found by trial division up to 10^6)."""


def _indicator_mod(size: Dim, out: int, residue: int) -> Dim:
    """[size % out == residue], for 0 <= residue < out, written with floors: exact on symbols."""
    return (size - residue) // out - (size - residue - 1) // out


def _divisors(out: int, layer: Layer) -> list[int]:
    if out > MAX_SYMBOLIC_ADAPTIVE:
        limit = f"{MAX_SYMBOLIC_ADAPTIVE:,}"
        raise layer.fail(f"output_size {out} over a symbolic input size is past {limit}; give the input size a number", "output_size")
    small = [d for d in range(1, math.isqrt(out) + 1) if out % d == 0]
    return sorted({*small, *(out // d for d in small)})


def _same(size: Dim, out: Dim) -> bool:
    """output_size None (or equal to the input): windows of one pixel."""
    return known_sign(size - out) == 0


def adaptive_window_sum(size: Dim, out: Dim, layer: Layer) -> Dim:
    """Sum over the ``out`` output positions of torch's adaptive window lengths along one axis,
    ``ceil((i+1)·n/o) - floor(i·n/o)``, in closed form: n + o - gcd(n, o).

    Why: ceil(x) = floor(x) + 1 unless x is whole, so the sum is the telescoping
    sum of floor((i+1)·n/o) - floor(i·n/o), which is n, plus the count of i in 1..o for which
    i·n/o is not whole, which is o - gcd(n, o).  On a symbolic n, gcd(n, o) = sum over the divisors
    d of o of phi(d)·[d divides n] (each residue class counted once)."""
    if _same(size, out) or out == 1:
        return size
    out = int(out)
    n = as_int(size)
    if n is not None:
        return n + out - math.gcd(n, out)
    gcd: Dim = sum((_totient(d) * _indicator_mod(size, d, 0) for d in _divisors(out, layer)), start=0)
    return size + out - gcd


def _totient(n: int) -> int:
    """Euler's phi by trial division (n <= 10^12 here)."""
    result, m, p = n, n, 2
    while p * p <= m:
        if m % p == 0:
            while m % p == 0:
                m //= p
            result -= result // p
        p += 1
    if m > 1:
        result -= result // m
    return result


def adaptive_max_window(size: Dim, out: Dim, layer: Layer) -> Dim:
    """The longest of torch's adaptive windows along one axis, in closed form.

    With n = q·o + r: every window is q + (ceil((i+1)·r/o) - floor(i·r/o)) long, the bracket being
    0 when r = 0, else 1 or 2; it is 2 for some i exactly when a multiple of gcd(r, o) lies strictly
    between o - r and o, i.e. when r does not divide o.  So: q if r = 0, q + 1 if r divides o,
    q + 2 otherwise.  On a symbolic n the cases are sums of indicators [n % o == d], one for 0 and
    one per proper divisor d of o (linear in the number of divisors: no Max, nothing doubling per
    output position)."""
    if _same(size, out):
        return 1
    out = int(out)
    n = as_int(size)
    if n is not None:
        q, r = divmod(n, out)
        return q if r == 0 else q + 1 if out % r == 0 else q + 2
    if out == 1:
        return size
    extra: Dim = 2 - 2 * _indicator_mod(size, out, 0)
    for d in _divisors(out, layer)[:-1]:  # the proper divisors
        extra = extra - _indicator_mod(size, out, d)
    return size // out + extra


class _AdaptivePoolNd(Layer):
    n_spatial: ClassVar[int] = 2
    output_size: Annotated[DimListOpt, *dim_field()]

    def _targets(self, sizes: Shape) -> tuple[Dim, ...]:
        raw = per_axis(self.output_size, self.n_spatial, "output_size", self)
        return tuple(h if o is None else o for h, o in zip(sizes, raw, strict=True))  # None keeps the size

    def output_shape(self, ins: list[Shape]) -> Shape:
        sizes = spatial_axes(ins[0], self, self.n_spatial)
        targets = self._targets(sizes)
        for o in targets:
            if as_int(o) is None:
                raise self.fail("a symbolic output_size is not supported (window sizes depend on it)", "output_size")
        return (ins[0][0], *targets)

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        sizes = ins[0][1:]
        per = [adaptive_window_sum(h, o, self) for h, o in zip(sizes, out[1:], strict=True)]
        # windows are separable: the sum of their products is the product of their sums
        o = {"pool": ins[0][0] * prod(per), "pool_in": numel(ins[0]), "pool_out": numel(out), **self._peer_ops(ins, out)}
        if getattr(self, "as_mean", False):
            del o["pool_in"]  # ptflops' per-input count is its pool module hook and F.adaptive_avg_pool patch: neither runs
        return o

    def _peer_ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        return {}

    def windows(self, ins: list[Shape]) -> list[Window]:
        # exact when in % out == 0 (kernel = stride = in/out); otherwise the largest window and the
        # stride of the regular part, with torch's windows themselves (the receptive field maps them)
        sizes = ins[0][1:]
        return [
            Window(adaptive_max_window(h, o, self), h // o, 0, 1, adaptive=None if known_sign(h % o) == 0 else (h, o))
            for h, o in zip(sizes, self._targets(sizes), strict=True)
        ]

    def _torch_size(self) -> Any:
        raw = self.output_size
        return tuple(None if x is None else int(x) for x in raw) if isinstance(raw, list) else int(raw)


class _AdaptiveAvgPoolNd(_AdaptivePoolNd):
    as_mean: bool = Field(
        default=False,
        description="The model computes it as x.mean over every spatial axis (archcalc import writes this): the same "
        "numbers, but the peer tools see no pool (fvcore has no aten::mean rule; thop and ptflops see no module, and ptflops "
        "does not patch torch.mean), so the fvcore, thop and ptflops conventions count it as 0.",
    )

    def output_shape(self, ins: list[Shape]) -> Shape:
        out = super().output_shape(ins)
        if self.as_mean and any(as_int(o) != 1 for o in out[1:]):
            raise self.fail("as_mean is a mean over every spatial axis: output_size must be 1", "as_mean")
        return out

    def _mean_or(self, pool: Any) -> Any:
        """The pool module, or for ``as_mean`` one computing the mean the model computes (what the peers count as 0)."""
        from ..torch.extra_modules import as_mean

        return as_mean(pool) if self.as_mean else pool

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        if all(as_int(o) == 1 for o in out[1:]):
            return []  # torch computes a 1x1 output as x.mean(spatial axes): its backward needs only sizes
        return [Saved.of_input("adaptive_avg_pool's backward takes the input (its sizes and strides)")]

    def _peer_ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        if self.as_mean:
            return {}
        o: dict[str, Dim] = {"avgpool_in": numel(ins[0])}
        sizes, targets = ins[0][1:], out[1:]
        # thop (vision/basic_hooks.py, count_adap_avgpool; calc_func.py, calculate_adaptive_avg):
        # int((prod(in / out per axis) + 1) * output elements), in float64
        if all(known_sign(h % t) == 0 for h, t in zip(sizes, targets, strict=True)):
            o["avgpool_thop"] = (prod(h // t for h, t in zip(sizes, targets, strict=True)) + 1) * numel(out)  # exact in floats
            return o
        concrete = [h for h in (as_int(x) for x in sizes) if h is not None]
        if len(concrete) < len(sizes):
            o["thop_unmodelled"] = 1  # fractional windows on a symbolic size: thop's float rounding is unknown
            return o
        # fractional windows (AlexNet's 7 -> 6): thop's float64 arithmetic, step by step (a Python float is an IEEE
        # double; torch.prod over at most 3 values multiplies left to right), truncated as its int() does
        kernel = 1.0
        for h, t in zip(concrete, targets, strict=True):
            kernel = kernel * (float(h) / float(int(t)))
        o["avgpool_thop"] = int((kernel + 1.0) * float(int(numel(out))))
        return o


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """torch.nn.AdaptiveAvgPool2d; output_size 1 is global average pooling."""

    type: Literal["adaptiveavgpool2d"]

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return self._mean_or(nn.AdaptiveAvgPool2d(self._torch_size()))


class AdaptiveMaxPool2d(_AdaptivePoolNd):
    """torch.nn.AdaptiveMaxPool2d."""

    type: Literal["adaptivemaxpool2d"]

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return [
            Saved.of_input("adaptive_max_pool's backward takes the input (for its sizes)"),
            Saved.new("indices", out, "where each window's maximum was: its gradient goes there", "int64"),
        ]

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.AdaptiveMaxPool2d(self._torch_size())


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    type: Literal["adaptiveavgpool1d"]
    n_spatial: ClassVar[int] = 1

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return self._mean_or(nn.AdaptiveAvgPool1d(self._torch_size()))


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    type: Literal["adaptiveavgpool3d"]
    n_spatial: ClassVar[int] = 3

    def autocast(self, device: str) -> str:
        return "float32" if device == "cpu" else "same"  # on CPU autocast's float32 list, not on CUDA's

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return self._mean_or(nn.AdaptiveAvgPool3d(self._torch_size()))


LAYERS: list[type[Layer]] = [
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool2d,
]
