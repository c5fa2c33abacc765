"""Normalisation layers.

BatchNorm (torch.nn.BatchNorm2d): learnable weight and bias of C each when affine (2C params);
running_mean, running_var (C each) and num_batches_tracked (a scalar) are buffers, not params.
LocalResponseNorm (torch.nn.LocalResponseNorm, AlexNet 2012): no parameters.
LayerNorm (torch.nn.LayerNorm): over the trailing axes, affine weight and bias of that shape.
GroupNorm (torch.nn.GroupNorm): over channel groups, affine weight and bias of C each.
Ops (`norm`): one normalisation per element.
"""


from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..dims import Dim, as_int, known_sign
from .base import DEFAULT_RUN, DimIn, DimList, Layer, Run, Saved, Shape, dim_field, numel, shape_str, spatial_axes


class _BatchNormNd(Layer):
    n_spatial: ClassVar[int] = 2
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    track_running_stats: bool = True

    def mixed_axes(self, ins: list[Shape]) -> tuple[int, ...]:
        # without running statistics, inference normalises with the batch's own, over every position (with them: per pixel)
        return () if self.track_running_stats else tuple(range(len(ins[0])))

    def output_shape(self, ins: list[Shape]) -> Shape:
        if self.n_spatial == 1 and len(ins[0]) in (1, 2):
            return ins[0]  # BatchNorm1d takes (C,) or (C, L)
        spatial_axes(ins[0], self, self.n_spatial)
        return ins[0]

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        c = ins[0][0]
        return {"weight": (c,), "bias": (c,)} if self.affine else {}

    def buffers(self, ins: list[Shape]) -> dict[str, Shape]:
        c = ins[0][0]
        if not self.track_running_stats:
            return {}
        return {"running_mean": (c,), "running_var": (c,), "num_batches_tracked": ()}

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        o: dict[str, Dim] = {"norm": numel(out)}  # (x - mean) / std, one per element
        if self.affine:
            o["norm_affine"] = numel(out)  # * gamma + beta, one per element
            o["affine_params"] = 2 * ins[0][0]  # gamma and beta, once each
        return o

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # aten.native_batch_norm in training: input, weight, running stats (parameters and buffers,
        # not counted here) and the batch statistics it computed (fp32 but on CPU in pure 16-bit)
        c = ins[0][0]
        return [
            Saved.of_input("the gradient of the normalisation needs x - mean"),
            Saved.new("save_mean", (c,), "the batch mean per channel", "norm_stats", batched=False),
            Saved.new("save_invstd", (c,), "1/sqrt(batch variance + eps) per channel", "norm_stats", batched=False),
        ]

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[self.n_spatial]
        return cls(int(ins[0][0]), self.eps, self.momentum, self.affine, self.track_running_stats)


class BatchNorm1d(_BatchNormNd):
    type: Literal["batchnorm1d"]
    n_spatial: ClassVar[int] = 1


class BatchNorm2d(_BatchNormNd):
    """torch.nn.BatchNorm2d; num_features is taken from the input."""

    type: Literal["batchnorm2d"]


class BatchNorm3d(_BatchNormNd):
    type: Literal["batchnorm3d"]
    n_spatial: ClassVar[int] = 3


class LocalResponseNorm(Layer):
    """torch.nn.LocalResponseNorm (AlexNet 2012: size 5, alpha 1e-4, beta 0.75, k 2)."""

    type: Literal["localresponsenorm"]
    size: Annotated[DimIn, *dim_field()]
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        # torch's F.local_response_norm: x*x, an average pool over size channels of the input
        # zero-padded to C + size - 1 channels, then *alpha and +k, elementwise
        padded = (ins[0][0] + self.size - 1) * numel(ins[0]) // ins[0][0]
        return {"lrn": numel(out), "lrn_functional": 3 * numel(out) + padded}

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # F.local_response_norm is made of autograd ops: x*x saves x; the average pool over channels
        # saves its zero-padded input (C + size - 1 channels); pow saves its input (k + alpha*avg);
        # x / d saves x and d = (k + alpha*avg)**beta
        rest = numel(ins[0]) // ins[0][0]
        return [
            Saved.of_input("x*x, and x / d, need x"),
            Saved.new("padded_square", ((ins[0][0] + self.size - 1) * rest,), "x^2 zero-padded to C + size - 1 channels: the average pool's input"),
            Saved.new("pow_input", ins[0], "k + alpha*avg(x^2): the base of **beta"),
            Saved.new("denominator", ins[0], "(k + alpha*avg(x^2))**beta: x / d needs d"),
        ]

    # the moments of its backward from the second on come after x / d's DivBackward0 has consumed the output's gradient
    grad_released_from: ClassVar[int | None] = 1

    def workspace(
        self, ins: list[Shape], out: Shape, device: str, phase: str, input_grad: bool = True, run: Run = DEFAULT_RUN,
        other_grads: tuple[bool, ...] = (), views: tuple[bool, ...] = (), aliases: tuple[int, ...] = (),
    ) -> list[tuple[Dim, Dim]]:
        """F.local_response_norm is composite (torch/nn/functional.py: ``x * x``, ``pad``, ``avg_pool3d``
        (2d for a (C, L) input), ``* alpha``, ``+ k``, ``** beta``, ``x / d``): its forward's temporaries
        stay within what the walk counts (x * x is freed before the pool runs; alpha * avg, avg and
        k + alpha * avg alive at once are x, the padded square and three of N, the walk's x, the
        padded square, k + ..., d and the output), its backward's are, in elements per sample (N the
        input's, P the padded square's), in the order autograd runs the nodes, against the walk's
        moment (its saved tensors, the output's gradient g and the input's gradient, N, alive at once):

        * ``DivBackward0`` (x / d; derivatives.yaml ``div.Tensor``): d's gradient first,
          ``-grad * ((x / d) / d)``: x / d, its quotient by d, -grad and the product alive at once,
          where the walk has x's gradient: 3N more;
        * ``PowBackward0`` (``pow_backward``: ``grad * (beta * base.pow(beta - 1))``): base.pow(beta - 1),
          beta times it and the product beside its gradient in (N) and x's first gradient (x / d's,
          waiting), d released: 3N more, g gone;
        * ``AvgPool3DBackward0``: its gradient in (N, alpha times the pow's) and the padded square's
          gradient (P), d and k + ... released: P - N more (the rest less).

        And ``avg * alpha``'s MulBackward0 keeps alpha as the 0-d float64 tensor torch wraps a Python
        number in (8 bytes, host memory; saved_tensors_hooks do not see it, so :meth:`saved` leaves it
        out): counted in its own moments, from its forward to its backward, not in those of the layers
        between (8 bytes below there).

        Measured (fp32, conv 64 -> 64 3x3 then relu then LRN size 5 on 27 x 27, batch 2, review s10 #5):
        4,424,488 bytes at DivBackward0, the walk without this 3,304,736."""
        alpha = 8 // run.width if device == "cpu" else 0  # the 0-d double tensor alpha is wrapped in (see below), in elements
        if phase != "backward" or not input_grad:
            return [(alpha, 0)]
        n = numel(ins[0])
        padded = (ins[0][0] + self.size - 1) * n // ins[0][0]
        return [(alpha, 3 * n), (alpha, 3 * n), (alpha, padded - n)]

    def autocast(self, device: str) -> str | None:
        # made of several ops that autocast treats apart (its average pool is on CPU's float32 list,
        # its pow on CUDA's): its dtypes under autocast are not modelled
        return None

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.LocalResponseNorm(int(self.size), self.alpha, self.beta, self.k)


LAYERS: list[type[Layer]] = [BatchNorm1d, BatchNorm2d, BatchNorm3d, LocalResponseNorm]


def normalized_axes(layer: Layer, raw: Any, shape: Shape) -> Shape:
    """The trailing axes a LayerNorm or RMSNorm normalizes over: ``normalized_shape`` (default:
    the last axis), which must be the input's trailing axes, as torch requires."""
    norm = (shape[-1],) if raw is None else tuple(raw) if isinstance(raw, list) else (raw,)
    tail = shape[len(shape) - len(norm) :]
    if len(norm) > len(shape) or any(known_sign(a - b) not in (0, None) for a, b in zip(norm, tail, strict=True)):
        raise layer.fail(f"normalized_shape {shape_str(norm)} is not the trailing axes of the input {shape_str(shape)}", "normalized_shape")
    return norm


class LayerNorm(Layer):
    """torch.nn.LayerNorm over the trailing ``normalized_shape`` axes (default: the last axis).

    Weights (elementwise_affine): ``weight`` and ``bias`` of normalized_shape each (bias only if
    ``bias``).  Ops: `layernorm` one normalisation per element, `layernorm_affine` one
    scale-and-shift per element when affine.
    """

    type: Literal["layernorm"]
    normalized_shape: Annotated[DimList | None, *dim_field()] = Field(
        default=None, description="The trailing axes normalised over (torch's normalized_shape); default the last axis."
    )
    eps: float = 1e-5
    elementwise_affine: bool = True
    bias: bool = True

    def _normalized(self, shape: Shape) -> Shape:
        return normalized_axes(self, self.normalized_shape, shape)

    def mixed_axes(self, ins: list[Shape]) -> tuple[int, ...]:
        n = len(self._normalized(ins[0]))  # the statistics are over the trailing normalized_shape axes
        return tuple(range(len(ins[0]) - n, len(ins[0])))

    def output_shape(self, ins: list[Shape]) -> Shape:
        self._normalized(ins[0])
        return ins[0]

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        if not self.elementwise_affine:
            return {}
        norm = self._normalized(ins[0])
        return {"weight": norm, "bias": norm} if self.bias else {"weight": norm}

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        o: dict[str, Dim] = {"layernorm": numel(out)}  # (x - mean) / std, one per element
        if self.elementwise_affine:
            o["layernorm_affine"] = numel(out)  # * gamma (+ beta), one per element
            o["affine_params"] = sum((numel(s) for s in self.weights(ins).values()), start=0)  # gamma and beta, once each (torchinfo)
        return o

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # aten.native_layer_norm: input, weight and bias (parameters), and the mean and 1/std it
        # computed per normalised group (one per token of (L, D)), fp32 but on CPU in pure 16-bit
        groups = ins[0][: len(ins[0]) - len(self._normalized(ins[0]))] or (1,)
        return [
            Saved.of_input("the gradient of the normalisation needs x - mean"),
            Saved.new("mean", groups, "the mean per normalised group", "norm_stats"),
            Saved.new("rstd", groups, "1/sqrt(variance + eps) per normalised group", "norm_stats"),
        ]

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        norm = tuple(int(d) for d in self._normalized(ins[0]))
        return nn.LayerNorm(norm, self.eps, self.elementwise_affine, self.bias)


class GroupNorm(Layer):
    """torch.nn.GroupNorm: channels (axis 0 of (C, *spatial)) in ``num_groups`` groups.

    Weights (affine): ``weight`` and ``bias`` of C each.  Ops: `groupnorm` one normalisation per
    element, `groupnorm_affine` one scale-and-shift per element when affine.
    """

    type: Literal["groupnorm"]
    num_groups: Annotated[DimIn, *dim_field()] = Field(description="Groups the channels are split into.")
    eps: float = 1e-5
    affine: bool = True

    def mixed_axes(self, ins: list[Shape]) -> tuple[int, ...]:
        return tuple(range(len(ins[0])))  # the statistics of a group are over its channels and every position, at inference too

    def output_shape(self, ins: list[Shape]) -> Shape:
        c, g = as_int(ins[0][0]), as_int(self.num_groups)
        if c is not None and g is not None and c % g:
            raise self.fail(f"channels {c} are not divisible by num_groups {g}", "num_groups")
        return ins[0]

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        c = ins[0][0]
        return {"weight": (c,), "bias": (c,)} if self.affine else {}

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        o: dict[str, Dim] = {"groupnorm": numel(out)}
        if self.affine:
            o["groupnorm_affine"] = numel(out)
        return o

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # aten.native_group_norm: input, weight (a parameter), and the mean and 1/std per group, in
        # the input's dtype (16-bit too, on CPU and the meta device)
        return [
            Saved.of_input("the gradient of the normalisation needs x - mean"),
            Saved.new("mean", (self.num_groups,), "the mean per group"),
            Saved.new("rstd", (self.num_groups,), "1/sqrt(variance + eps) per group"),
        ]

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.GroupNorm(int(self.num_groups), int(ins[0][0]), self.eps, self.affine)


LAYERS += [LayerNorm, GroupNorm]
