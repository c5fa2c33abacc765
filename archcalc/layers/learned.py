"""Learned tensors that enter the graph: ``parameter`` (class token, position embedding) and
``layerscale`` (a learned per-channel scale).

* parameter: an ``nn.Parameter`` of per-sample ``shape`` read in ``forward`` (ViT's class token
  (1, D), concatenated in front of the patch tokens; its position embedding (L + 1, D), added).
  It takes no input, or one whose shape it copies when ``shape`` is not given ("inputs": ["x"]
  sizes the position embedding like the token sequence x: only x's shape is read, never its
  values).  Its params are the shape's size; it computes nothing: the ``concat`` or
  ``add`` that consumes it counts its own cost.  torch holds it as (1, *shape) and expands it
  over the batch (a view: no new memory).  It sees no input pixel (no receptive field).
* layerscale (CaiT, Touvron et al. 2021; torchvision ConvNeXt's ``layer_scale``, timm's
  ``LayerScale``): ``gamma * x`` with one learned value per channel of axis ``dim`` (torch's
  numbering, batch axis 0; default 1, the channels of (C, H, W), use -1 for (L, D) tokens).
  Params: that axis's size.  Ops (`scale`): one multiplication per element.
"""


from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..dims import Dim
from .base import DimList, Layer, Saved, Shape, dim_field, numel
from .reshape import sample_axis


class Parameter(Layer):
    """A learned tensor of per-sample ``shape`` entering the graph (no input)."""

    type: Literal["parameter"]
    shape: Annotated[DimList | None, *dim_field()] = Field(
        default=None, description="Per-sample shape (torch holds (1, *shape)); default: the shape of its input."
    )
    n_inputs: ClassVar[tuple[int, int | None]] = (0, 1)
    source: ClassVar[bool] = True

    def _shape(self, ins: list[Shape]) -> Shape:
        if self.shape is None:
            if not ins:
                raise self.fail("needs a shape, or an input to take the shape of", "shape")
            return ins[0]
        return tuple(self.shape) if isinstance(self.shape, list) else (self.shape,)

    def output_shape(self, ins: list[Shape]) -> Shape:
        return self._shape(ins)

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        return {"weight": (1, *self._shape(ins))}

    def in_place(self) -> bool:
        return True  # the parameter itself, expanded over the batch: nothing new is allocated

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # an expand: its backward sums the gradient over the batch, from the sizes alone

    def output_storage(self, ins: list[Shape]) -> str:
        return "param"  # the parameter's own storage (expanded): parameter memory, never its input's

    def note(self, ins: list[Shape]) -> str | None:
        said = "a learned tensor read in forward: params counted here, its use by the layer that consumes it"
        if self.shape is None:  # ViT's position table, sized like the token sequence: --input 3,448,448 grows it (197 -> 785 rows)
            return (
                f"{said}; sized like its input, so its params follow the input size: at another size "
                "it is another table (a model built for one size refuses another, as torchvision's ViT does, or is "
                "fine-tuned with its table interpolated)"
            )
        return said

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Parameter as ParameterModule

        return ParameterModule(tuple(int(d) for d in self._shape(ins)))


class LayerScale(Layer):
    """``gamma * x``: one learned scale per entry of axis ``dim``."""

    type: Literal["layerscale"]
    dim: int = Field(default=1, description="Axis scaled (batch axis 0, as in torch): 1 for (C, H, W), -1 for (L, D).")
    init_values: float = Field(default=1e-6, description="Initial scale (torchvision ConvNeXt, timm: 1e-6).")

    def output_shape(self, ins: list[Shape]) -> Shape:
        sample_axis(self, self.dim, ins[0], "dim")
        return ins[0]

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        axis = sample_axis(self, self.dim, ins[0], "dim")
        # torch's broadcastable shape: (C, 1, 1) for channels first, (D,) for the last axis
        return {"gamma": (ins[0][axis], *(1 for _ in ins[0][axis + 1 :]))}

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        return {"scale": numel(out)}  # one multiplication per element

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # gamma * x: mul keeps x for gamma's gradient and gamma for x's
        return [Saved.of_input("gamma's gradient is the output's gradient times x"), Saved.of_param("gamma", "x's gradient is scaled by gamma")]

    def autocast(self, device: str) -> str:
        return "promote"  # gamma * x is on no autocast list: a 16-bit x times the fp32 gamma is fp32

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import LayerScale as LayerScaleModule

        axis = sample_axis(self, self.dim, ins[0], "dim")
        return LayerScaleModule((int(ins[0][axis]), *(1 for _ in ins[0][axis + 1 :])), self.init_values)




class PositionBias(Parameter):
    """A learned table read at constant positions: Swin's and MaxViT's relative position bias
    (Liu et al. 2021, eq. 4), a ((2M-1)^2, heads) table gathered by a fixed index into one bias per
    (head, query, key) pair of an M x M window, added to the attention scores.

    Params: the table's size (not the output's: the output repeats table entries).  It takes no
    input and computes nothing (the gather is a read); the ``add`` that consumes it counts its own
    cost.  The output ``shape`` is per sample, as the consumer sees it (torch holds it without a
    batch axis and broadcasts it)."""

    type: Literal["positionbias"]  # type: ignore[assignment]
    table: Annotated[DimList, *dim_field()] = Field(description="Shape of the learned table, e.g. [169, 3] for a 7 x 7 window and 3 heads.")

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        return {"table": tuple(self.table) if isinstance(self.table, list) else (self.table,)}

    def note(self, ins: list[Shape]) -> str | None:
        return "a learned table read at fixed positions: params are the table's, its use is counted by the layer that consumes it"

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        return []  # the gather's backward keeps its index, which is the module's own buffer: nothing new

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import PositionBias as PositionBiasModule

        table = self.weights(ins)["table"]
        return PositionBiasModule(tuple(int(d) for d in table), tuple(int(d) for d in self._shape(ins)))


LAYERS: list[type[Layer]] = [Parameter, LayerScale, PositionBias]
