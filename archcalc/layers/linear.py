"""Fully connected layers, flattening and unflattening.

Linear (torch.nn.Linear) acts on the last axis: (..., in_features) -> (..., out_features).
Weights: weight (out, in), bias (out,).  MACs: output elements x in_features.
Flatten (torch.nn.Flatten, start_dim/end_dim counted with the batch axis as 0, as in torch).
"""


from typing import Annotated, Any, Literal

from pydantic import Field

from ..dims import Dim, as_int, known_sign, prod
from .base import DEFAULT_RUN, DimIn, DimList, Layer, Run, Saved, Shape, Window, dim_field, numel


class Linear(Layer):
    """torch.nn.Linear; in_features is taken from the input."""

    type: Literal["linear"]
    out_features: Annotated[DimIn, *dim_field()] = Field(description="Output features.")
    bias: bool = True
    tie_weight: str | None = Field(
        default=None,
        description="Name of a layer whose weight this one uses as its own (GPT-2's output head and its token embedding): counted once, there.",
    )

    def mixed_axes(self, ins: list[Shape]) -> tuple[int, ...]:
        return (len(ins[0]) - 1,)  # every output feature reads every input feature (MLP-Mixer's token mixing, where they are positions)

    def tied_weights(self) -> dict[str, str]:
        return {"weight": self.tie_weight} if self.tie_weight is not None else {}

    def output_shape(self, ins: list[Shape]) -> Shape:
        return (*ins[0][:-1], self.out_features)

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        w: dict[str, Shape] = {"weight": (self.out_features, ins[0][-1])}
        if self.bias:
            w["bias"] = (self.out_features,)
        return w

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        o: dict[str, Dim] = {"mac": numel(out) * ins[0][-1]}  # one dot product of length in_features per output
        if self.bias:
            o["linear_bias"] = numel(out)
        o["linear_params"] = ins[0][-1] * out[-1] + (out[-1] if self.bias else 0)  # weight and bias, once each (torchinfo)
        return o

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # aten.addmm / aten.mm: grad_weight = grad_output^T @ input; an input of more than one axis per
        # sample is flattened to 2-D first: a view where its layout allows, else a copy (after a transpose)
        x = ins[0]
        return [
            Saved.of_matmul_input("the weight's gradient is the output's gradient times the input", 0, x, len(x) - 1),
            Saved.of_param("weight", "the input's gradient is the output's gradient times the weight"),
        ]

    def workspace_uncounted(self, ins: list[Shape], out: Shape, device: str, run: Run = DEFAULT_RUN) -> str | None:
        return self.matmul16_uncounted(device, run)

    def autocast(self, device: str) -> str:
        return "lower"  # linear is on autocast's lower-precision list

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.Linear(int(ins[0][-1]), int(self.out_features), self.bias)

    def note(self, ins: list[Shape]) -> str | None:
        dims = ins[0]
        # (L, D) tokens and channels-last maps (H, W, C) are what torch code hands a Linear; a
        # channels-first map (C, H, W) with a narrow last axis is the student's forgotten flatten
        if len(dims) <= 2 or (as_int(dims[-1]) != 1 and known_sign(dims[0] - dims[-1]) != 1):
            return None
        shape = "\u00d7".join(map(str, dims))
        return (
            f"acts on the last axis of its {shape} input, as torch's nn.Linear does ({ins[0][-1]} in, {self.out_features} out); "
            f"flatten first to connect all {numel(ins[0])}"
        )

    def describe(self, ins: list[Shape]) -> str:
        return f"fully connected {ins[0][-1]} \u2192 {self.out_features}"


class Flatten(Layer):
    """torch.nn.Flatten: merges axes start_dim..end_dim (batch axis is 0, as in torch)."""

    type: Literal["flatten"]
    start_dim: int = 1
    end_dim: int = -1

    def _span(self, shape: Shape) -> tuple[int, int]:
        rank = len(shape) + 1  # with the batch axis
        for field in ("start_dim", "end_dim"):
            d = getattr(self, field)
            if not -rank <= d < rank:  # torch: "Dimension out of range"
                raise self.fail(f"{field} {d} is out of range for a {rank}-D tensor (batch first): use {-rank}..{rank - 1}", field)
        a = self.start_dim % rank
        b = self.end_dim % rank
        if a == 0 or a > b:
            raise self.fail(f"start_dim {self.start_dim}..end_dim {self.end_dim} is not a range of per-sample axes", "start_dim")
        return a - 1, b  # per-sample slice [a-1, b)

    def output_shape(self, ins: list[Shape]) -> Shape:
        a, b = self._span(ins[0])
        return (*ins[0][:a], prod(ins[0][a:b]), *ins[0][b:])

    def windows(self, ins: list[Shape]) -> list[Window] | None:
        # every output of a flattened spatial axis is then seen whole by what follows:
        # model it as a window covering the full axis (the receptive field becomes the input)
        a, b = self._span(ins[0])
        spatial = ins[0][1:]
        if a > 0:
            return None
        return [Window(h, h, 0, 1) if i + 1 < b else Window(1) for i, h in enumerate(spatial)]

    def in_place(self) -> bool:
        return True  # a view of its (contiguous) input, as torch.flatten returns: nothing new is allocated

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # a reshape: its backward reshapes the gradient back, from the sizes alone

    def output_storage(self, ins: list[Shape]) -> str:
        return "reshape"

    def grad_flow(self, ins: list[Shape]) -> tuple[str, ...]:
        return ("same",)  # the gradient reshaped back: a view

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        return nn.Flatten(self.start_dim, self.end_dim)


class Unflatten(Layer):
    """torch.nn.Unflatten: splits axis ``dim`` (batch axis is 0, as in torch) into ``unflattened_size``.

    ``x.view(b, c, 1, 1)`` after a Linear (squeeze-and-excitation with fully connected layers) is
    an Unflatten of the features into C x 1 x 1.  A view: no ops."""

    type: Literal["unflatten"]
    dim: int = Field(description="Axis to split, the batch axis counted as 0 (1 = channels or features).")
    unflattened_size: Annotated[DimList, *dim_field()] = Field(description="Sizes the axis is split into; their product is its size.")

    def output_shape(self, ins: list[Shape]) -> Shape:
        shape = ins[0]
        rank = len(shape) + 1  # with the batch axis
        if not -rank <= self.dim < rank or self.dim % rank == 0:
            raise self.fail(f"dim {self.dim} is not a per-sample axis of a {rank}-D tensor (batch first): use 1..{rank - 1}", "dim")
        axis = self.dim % rank - 1
        sizes = self.unflattened_size if isinstance(self.unflattened_size, list) else [self.unflattened_size]
        if known_sign(prod(sizes) - shape[axis]) not in (0, None):
            sized = "\u00d7".join(map(str, sizes))
            raise self.fail(f"{sized} = {prod(sizes)} elements cannot hold axis {self.dim}'s {shape[axis]}", "unflattened_size")
        return (*shape[:axis], *sizes, *shape[axis + 1 :])

    def in_place(self) -> bool:
        return True  # a view of its input: nothing new is allocated

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # a reshape: its backward reshapes the gradient back, from the sizes alone

    def output_storage(self, ins: list[Shape]) -> str:
        return "reshape"

    def grad_flow(self, ins: list[Shape]) -> tuple[str, ...]:
        return ("same",)  # the gradient reshaped back: a view

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        sizes = self.unflattened_size if isinstance(self.unflattened_size, list) else [self.unflattened_size]
        return nn.Unflatten(self.dim, tuple(int(x) for x in sizes))


LAYERS: list[type[Layer]] = [Linear, Flatten, Unflatten]
