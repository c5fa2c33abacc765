"""Pointwise layers: activations, dropout, softmax, identity.  Shape unchanged, no parameters.

Ops (`act`): one function evaluation per element; dropout is the identity at inference (no ops).
"""


from typing import Any, ClassVar, Literal

from pydantic import Field

from ..dims import Dim
from .base import Layer, Shape, numel


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


class ReLU6(_Activation):
    type: Literal["relu6"]
    inplace: bool = False
    torch_name: ClassVar[str] = "ReLU6"


class LeakyReLU(_Activation):
    type: Literal["leakyrelu"]
    negative_slope: float = 0.01
    inplace: bool = False

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.LeakyReLU(self.negative_slope, self.inplace)


class Tanh(_Activation):
    type: Literal["tanh"]
    torch_name: ClassVar[str] = "Tanh"


class Sigmoid(_Activation):
    type: Literal["sigmoid"]
    torch_name: ClassVar[str] = "Sigmoid"


class GELU(_Activation):
    type: Literal["gelu"]
    torch_name: ClassVar[str] = "GELU"


class SiLU(_Activation):
    type: Literal["silu"]
    inplace: bool = False
    torch_name: ClassVar[str] = "SiLU"


class Hardswish(_Activation):
    type: Literal["hardswish"]
    inplace: bool = False
    torch_name: ClassVar[str] = "Hardswish"


class Hardsigmoid(_Activation):
    type: Literal["hardsigmoid"]
    inplace: bool = False
    torch_name: ClassVar[str] = "Hardsigmoid"


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
        return {"softmax": numel(out)}  # exp, sum and divide per element, counted once

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

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.Dropout(self.p, self.inplace)


class Identity(Layer):
    """torch.nn.Identity (also the explicit shortcut of a residual block)."""

    type: Literal["identity"]

    def in_place(self) -> bool:
        return True  # nn.Identity returns its input tensor: nothing is allocated

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.Identity()


LAYERS: list[type[Layer]] = [ReLU, ReLU6, LeakyReLU, Tanh, Sigmoid, GELU, SiLU, Hardswish, Hardsigmoid, Softmax, Dropout, Identity]
