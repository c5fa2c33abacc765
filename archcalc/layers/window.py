"""Shifted-window self-attention (Swin Transformer, Liu et al. 2021; v2: Liu et al. 2022), as
torchvision's ``ShiftedWindowAttention`` / ``ShiftedWindowAttentionV2`` compute it.

Input and output (H, W, C) per sample, channels last.  The map is zero-padded at the bottom and
right to Hp x Wp, multiples of the window (wh, ww); shifted by (sh, sw) (a roll: no arithmetic;
no shift on an axis the window covers); cut into nW = (Hp/wh)(Wp/ww) windows of N = wh*ww tokens;
attention with ``num_heads`` heads of d = C/num_heads inside each window; merged back.

* weights: ``qkv`` (3C, C) and its bias (3C); ``proj`` (C, C) and its bias (C); v1: the relative
  position bias table ((2wh-1)(2ww-1), heads); v2: the continuous position bias MLP (Linear 2 -> 512
  with bias, ReLU, Linear 512 -> heads) and ``logit_scale`` (heads, 1, 1).
* MACs (`mac`): the two projections over every padded position, Hp*Wp*C*3C + Hp*Wp*C*C; v2 also
  the bias MLP over the (2wh-1)(2ww-1) table entries, T*(2*512 + 512*heads), which torch runs
  once per forward (per batch, not per sample: at batch 1 the two agree).  (`matmul`): q k^T and
  the weighted sum of v, nW*heads*N*N*d each.  (`softmax`): one per score, nW*heads*N*N;
  (`attn_scale`): one per score (v1's 1/sqrt(d), v2's logit scale).

Saved for the backward (``saved``, measured with ``torch.autograd.graph.saved_tensors_hooks``): the
windows (a copy of the padded map), q scaled and k^T (a copy), the probabilities, v (a copy) and the
output projection's input, per window; v2 keeps the whole qkv projection (F.normalize keeps q and k
as views), the norms per token, the normalised q and k, the scores before the softmax, and, once per
batch, the bias MLP's hidden layer, its sigmoid and exp(logit_scale).

Receptive field: each output reads the tokens of its own window, never the whole map (unless one
window covers it): along H, a :class:`~archcalc.layers.base.Partition` of the padded map into
blocks of wh rows starting at row sh (the shifted block's windows, rolled back: torchvision rolls
by -sh, attends within the windows and masks the scores between positions the roll brought
together, adding -100 before the softmax, then rolls back; so output row i reads rows
wh*floor((i - sh)/wh) + sh .. + wh - 1, the blocks at the edges cut short).  The masked scores
weigh exp(-100) of the others, about 4e-44: archcalc counts them as not read.  The receptive
field pass maps the field of every input row through the partition exactly (a periodic field:
outputs of one window share it); with symbolic sizes it falls back to an approximation and says so.
"""


from typing import Annotated, Any, Literal

from pydantic import Field

from ..dims import Dim, known_sign
from .base import DimIn, DimList, Layer, Partition, Saved, Shape, Window, dim_field, shape_str

CPB_HIDDEN = 512
"""Hidden width of Swin v2's continuous position bias MLP (torchvision: nn.Linear(2, 512))."""


def _pair(v: Any) -> tuple[Any, Any]:
    return (v[0], v[1]) if isinstance(v, list | tuple) else (v, v)


class ShiftedWindowAttention(Layer):
    """torchvision's ShiftedWindowAttention (``v2``: ShiftedWindowAttentionV2) on an (H, W, C) map."""

    type: Literal["shiftedwindowattention"]
    num_heads: Annotated[DimIn, *dim_field()] = Field(description="Attention heads; C must be divisible by it.")
    window_size: Annotated[DimList, *dim_field()] = Field(description="Window (wh, ww), e.g. 7.")
    shift_size: Annotated[DimList, *dim_field(0)] = Field(default=0, description="Cyclic shift (sh, sw); 0 for the unshifted blocks.")
    qkv_bias: bool = True
    proj_bias: bool = True
    v2: bool = Field(default=False, description="Swin v2: cosine attention with a learned logit scale and a continuous position bias MLP.")

    def _geometry(self, shape: Shape) -> tuple[Dim, Dim, Dim, Dim, Dim]:
        if len(shape) != 3:
            raise self.fail(f"expects an (H, W, C) map per sample, got {shape_str(shape)}", "inputs")
        h, w, c = shape
        wh, ww = _pair(self.window_size)
        hp, wp = (h + wh - 1) // wh * wh, (w + ww - 1) // ww * ww
        if known_sign(c % self.num_heads) not in (0, None):
            raise self.fail(f"{c} channels do not split into {self.num_heads} heads", "num_heads")
        return hp, wp, wh * ww, (hp // wh) * (wp // ww), c

    def output_shape(self, ins: list[Shape]) -> Shape:
        self._geometry(ins[0])
        return ins[0]

    def axis_windows(self, ins: list[Shape]) -> dict[int, Window | Partition | None] | None:
        hp, wp, _, _, _ = self._geometry(ins[0])
        out: dict[int, Window | Partition | None] = {}
        for axis, (win, shift, padded) in enumerate(zip(_pair(self.window_size), _pair(self.shift_size), (hp, wp), strict=True)):
            covers = known_sign(win - padded)  # torchvision: no shift on an axis one window covers
            if covers is None and known_sign(shift) != 0:
                out[axis] = None  # symbols: cannot tell whether the shift applies
            else:
                out[axis] = Partition(win, 0 if covers is None or covers >= 0 else shift)
        return out

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        c = ins[0][-1]
        wh, ww = _pair(self.window_size)
        w: dict[str, Shape] = {"qkv.weight": (3 * c, c), "proj.weight": (c, c)}
        if self.qkv_bias:
            w["qkv.bias"] = (3 * c,)
        if self.proj_bias:
            w["proj.bias"] = (c,)
        if self.v2:
            w.update({"logit_scale": (self.num_heads, 1, 1), "cpb_mlp.0.weight": (CPB_HIDDEN, 2), "cpb_mlp.0.bias": (CPB_HIDDEN,),
                      "cpb_mlp.2.weight": (self.num_heads, CPB_HIDDEN)})
        else:
            w["relative_position_bias_table"] = ((2 * wh - 1) * (2 * ww - 1), self.num_heads)
        return w

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        hp, wp, n, nw, c = self._geometry(ins[0])
        wh, ww = _pair(self.window_size)
        scores = nw * self.num_heads * n * n
        mac = hp * wp * c * 3 * c + hp * wp * c * c  # qkv and output projections, every padded position
        if self.v2:
            mac = mac + (2 * wh - 1) * (2 * ww - 1) * (2 * CPB_HIDDEN + CPB_HIDDEN * self.num_heads)  # the bias MLP, once
        return {"mac": mac, "matmul": 2 * scores * (c // self.num_heads), "softmax": scores, "attn_scale": scores}

    def note(self, ins: list[Shape]) -> str | None:
        _, _, n, nw, _ = self._geometry(ins[0])
        text = f"{nw} window(s) of {n} tokens, {self.num_heads} heads; each output sees its own window"
        if self.v2:
            text += "; the position-bias MLP runs once per batch, counted here per sample"
        return text

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # torchvision's shifted_window_attention, training, as autograd's hooks see it (torch 2.14):
        # every tensor is per window (nW windows of N tokens, padded map Hp x Wp = nW x N)
        _, _, n, nw, c = self._geometry(ins[0])
        heads, d = self.num_heads, c // self.num_heads
        per_head, scores = (nw, heads, n, d), (nw, heads, n, n)
        kept = [Saved.new("windows", (nw, n, c), "qkv's input: the padded (shifted) map cut into windows, a copy")]
        if self.v2:  # cosine attention: F.normalize keeps q and k (views of the qkv output: all of it) and their norms
            wh, ww = _pair(self.window_size)
            kept = [
                Saved.new("cpb_hidden", ((2 * wh - 1) * (2 * ww - 1), CPB_HIDDEN), "the position-bias MLP's ReLU output", batched=False),
                Saved.new("bias_sigmoid", (heads, n, n), "16 * sigmoid(bias): sigmoid keeps its output", batched=False),
                *kept,
                Saved.new("qkv", (nw, n, 3 * c), "the qkv projection, of which normalize keeps q and k as views"),
                *(Saved.new(f"{x}_{what}", (nw, heads, n), f"{x}'s norm per token{' (clamped)' if what == 'clamped' else ''}: normalize's gradient")
                  for x in "qk" for what in ("norm", "clamped")),
                Saved.new("q_normalized", per_head, "q / |q|: the scores' gradient"),
                Saved.new("k_normalized", per_head, "k / |k| (its transpose a view): the scores' gradient"),
                Saved.new("logit_scale", (heads,), "exp(clamped logit_scale): exp keeps its output", batched=False),
                Saved.new("scores", scores, "the cosine scores, times logit_scale: the scale's gradient"),
            ]  # fmt: skip
        else:
            kept += [
                Saved.new("q_scaled", per_head, "q * d^-1/2: k's gradient"),
                Saved.new("k_transposed", (nw, heads, d, n), "k^T, copied for the batched product: q's gradient"),
            ]
        return [
            *kept,
            Saved.new("probabilities", scores, "softmax's output: its backward and v's gradient"),
            Saved.new("v", per_head, "v, copied for the batched product: the probabilities' gradient"),
            Saved.new("proj_input", (nw, n, c), "the heads' output merged back (a copy): proj's weight gradient"),
        ]

    def autocast(self, device: str) -> str | None:
        return None  # what it keeps under autocast is not worked out

    def build_torch(self, ins: list[Shape]) -> Any:
        from torchvision.models import swin_transformer as sw

        cls = sw.ShiftedWindowAttentionV2 if self.v2 else sw.ShiftedWindowAttention
        return cls(int(ins[0][-1]), [int(x) for x in _pair(self.window_size)], [int(x) for x in _pair(self.shift_size)], int(self.num_heads),
                   qkv_bias=self.qkv_bias, proj_bias=self.proj_bias)


LAYERS: list[type[Layer]] = [ShiftedWindowAttention]
