"""Pointwise layers: activations, dropout, softmax, identity.  Shape unchanged, no parameters.

Ops (`act`): one function evaluation per element; dropout is the identity at inference (no ops).
"""


from typing import Any, ClassVar, Literal

from pydantic import Field

from ..dims import Dim
from .base import Layer, Saved, Shape, numel


class _Activation(Layer):
    torch_name: ClassVar[str] = ""

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        return {"act": numel(out)}

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        cls = getattr(nn, self.torch_name)
        return cls(inplace=True) if self.in_place() else cls()  # Tanh/Sigmoid/GELU have no inplace flag


class ReLU(_Activation):
    type: Literal["relu"]
    inplace: bool = False
    torch_name: ClassVar[str] = "ReLU"

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return [Saved.of_output("relu's gradient passes where the output is > 0")]


class ReLU6(_Activation):
    type: Literal["relu6"]
    inplace: bool = False
    torch_name: ClassVar[str] = "ReLU6"

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        if self.inplace:  # hardtanh_ overwrites x, which its backward needs: autograd keeps a copy
            return [Saved.new("original_input", ins[0], "hardtanh's gradient passes where 0 < x < 6; x is overwritten in place, so it is copied")]
        return [Saved.of_input("hardtanh's gradient passes where 0 < x < 6")]


class LeakyReLU(_Activation):
    type: Literal["leakyrelu"]
    negative_slope: float = 0.01
    inplace: bool = False

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        if self.inplace:  # leaky_relu_ keeps its result (its sign is x's sign)
            return [Saved.of_output("the gradient is 1 or negative_slope, by the result's sign")]
        return [Saved.of_input("the gradient is 1 or negative_slope, by x's sign")]

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.LeakyReLU(self.negative_slope, self.inplace)


class Tanh(_Activation):
    type: Literal["tanh"]
    torch_name: ClassVar[str] = "Tanh"

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return [Saved.of_output("tanh' = 1 - tanh^2: the output is enough")]


class Sigmoid(_Activation):
    type: Literal["sigmoid"]
    torch_name: ClassVar[str] = "Sigmoid"

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return [Saved.of_output("sigmoid' = s(1 - s): the output is enough")]


class GELU(_Activation):
    """torch.nn.GELU; ``approximate="tanh"`` is the tanh approximation (GPT-2, timm's gelu_tanh)."""

    type: Literal["gelu"]
    approximate: Literal["none", "tanh"] = "none"
    torch_name: ClassVar[str] = "GELU"

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.GELU(approximate=self.approximate)

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return [Saved.of_input("gelu'(x) needs x")]


class SiLU(_Activation):
    type: Literal["silu"]
    inplace: bool = False
    torch_name: ClassVar[str] = "SiLU"

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        if self.inplace:  # silu_ overwrites x, which its backward needs: autograd keeps a copy
            return [Saved.new("original_input", ins[0], "silu'(x) needs x; x is overwritten in place, so it is copied")]
        return [Saved.of_input("silu'(x) needs x")]


class Hardswish(_Activation):
    type: Literal["hardswish"]
    inplace: bool = False
    torch_name: ClassVar[str] = "Hardswish"

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        if self.inplace:  # hardswish_ overwrites x, which its backward needs: autograd keeps a copy
            return [Saved.new("original_input", ins[0], "hardswish'(x) needs x; x is overwritten in place, so it is copied")]
        return [Saved.of_input("hardswish'(x) needs x")]


class Hardsigmoid(_Activation):
    type: Literal["hardsigmoid"]
    inplace: bool = False
    torch_name: ClassVar[str] = "Hardsigmoid"

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        if self.inplace:  # hardsigmoid_ overwrites x, which its backward needs: autograd keeps a copy
            return [Saved.new("original_input", ins[0], "hardsigmoid'(x) needs x; x is overwritten in place, so it is copied")]
        return [Saved.of_input("hardsigmoid'(x) needs x")]


class Softmax(Layer):
    """torch.nn.Softmax over ``dim`` (batch axis is 0, as in torch)."""

    type: Literal["softmax"]
    dim: int = 1

    def output_shape(self, ins: list[Shape]) -> Shape:
        rank = len(ins[0]) + 1  # with the batch axis
        if not -rank <= self.dim < rank:  # torch: "Dimension out of range"
            raise self.fail(f"dim {self.dim} is out of range for a {rank}-D tensor (batch first): use {-rank}..{rank - 1}", "dim")
        return ins[0]

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        o: dict[str, Dim] = {"softmax": numel(out)}  # exp, sum and divide per element, counted once
        axis = self.dim % (len(out) + 1)
        if axis == 0:  # over the batch axis: thop's per-call count is not a per-sample one
            o["thop_unmodelled"] = 1
        else:  # thop (vision/calc_func.py, calculate_softmax): per softmax over n values, n exp + (n - 1) add + n div
            o["softmax_thop"] = numel(out) // out[axis - 1] * (3 * out[axis - 1] - 1)
        return o

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return [Saved.of_output("softmax's backward is y * (g - sum(g * y)): the output is enough")]

    def mixed_axes(self, ins: list[Shape]) -> tuple[int, ...]:
        axis = self.dim % (len(ins[0]) + 1)
        return () if axis == 0 else (axis - 1,)  # each output divides by the sum over the axis (over the batch: no per-sample axis)

    def autocast(self, device: str) -> str:
        return "float32" if device == "cuda" else "same"  # on CUDA autocast's float32 list, not on CPU's

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.Softmax(self.dim)


class Dropout(Layer):
    """torch.nn.Dropout: the identity at inference, so no ops are counted."""

    type: Literal["dropout"]
    p: float = Field(default=0.5, ge=0, le=1, description="Probability of zeroing an element (training only).")
    inplace: bool = False

    def in_place(self) -> bool:
        return True  # at inference torch returns the input tensor itself

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        if self.p == 0:
            return []  # torch returns the input itself
        if self.p == 1:  # torch multiplies by a 0-d zero tensor
            return [Saved.new("zero", (), "x * 0: the gradient is multiplied by the same zero", batched=False)]
        return [Saved.new("mask", ins[0], "which elements were kept (scaled by 1/(1-p)): the gradient is masked the same way", "dropout_mask")]

    def output_storage(self, ins: list[Shape]) -> str:
        return "view" if self.p == 0 else "inplace" if self.inplace else "new"

    def grad_flow(self, ins: list[Shape]) -> tuple[str, ...]:
        return ("same",) if self.p == 0 else ("new",)  # p=0 returns the input; else the gradient times the mask

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.Dropout(self.p, self.inplace)


class StochasticDepth(Layer):
    """torchvision.ops.StochasticDepth / timm DropPath: drops a residual branch per sample (``mode``
    "row") or for the whole batch ("batch") with probability ``p`` in training; the identity at
    inference, so no ops are counted and no memory is allocated."""

    type: Literal["stochasticdepth"]
    p: float = Field(default=0.0, ge=0, le=1, description="Probability of dropping the branch (training only).")
    mode: Literal["row", "batch"] = "row"

    def in_place(self) -> bool:
        return True  # at inference it returns its input

    def note(self, ins: list[Shape]) -> str | None:
        return f"training-time only (drops the branch with p={self.p}); the identity at inference"

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        if self.p == 0:
            return []  # returns its input
        # torchvision.ops.stochastic_depth: input * noise, noise (one value per sample, row mode) / (1 - p)
        return [Saved.new("noise", (1,) * len(ins[0]) if self.mode == "row" else (), "which samples were kept", batched=self.mode == "row")]

    def output_storage(self, ins: list[Shape]) -> str:
        return "inplace" if self.p == 0 else "new"

    def grad_flow(self, ins: list[Shape]) -> tuple[str, ...]:
        return ("same",) if self.p == 0 else ("new",)  # p=0 returns the input; else the gradient times the noise

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import StochasticDepth as StochasticDepthModule

        return StochasticDepthModule(self.p, self.mode)


class DropPath(StochasticDepth):
    """timm's DropPath: StochasticDepth in mode "row"."""

    type: Literal["droppath"]  # type: ignore[assignment]

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import DropPath as DropPathModule

        return DropPathModule(self.p, self.mode)


class Identity(Layer):
    """torch.nn.Identity (also the explicit shortcut of a residual block)."""

    type: Literal["identity"]

    def in_place(self) -> bool:
        return True  # nn.Identity returns its input tensor: nothing is allocated

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # no autograd op at all

    def grad_flow(self, ins: list[Shape]) -> tuple[str, ...]:
        return ("same",)  # no autograd op: the gradient is the input's

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.Identity()


LAYERS: list[type[Layer]] = [
    ReLU, ReLU6, LeakyReLU, Tanh, Sigmoid, GELU, SiLU, Hardswish, Hardsigmoid, Softmax, Dropout, StochasticDepth, DropPath, Identity,
]
