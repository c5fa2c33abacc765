"""Products of two activations and attention: matmul, scaled_dot_product_attention, multiheadattention.

Shapes are per sample, torch's layout without the batch axis: ``(L, E)`` for a sequence,
``(heads, L, d)`` inside attention.

* matmul (``torch.matmul(a, b)``): a (..., n, k) x b (..., k, m) -> (..., n, m), the leading
  (batch) axes broadcast as torch does.  MACs (`matmul`): output elements x k (each output is a
  dot product of length k): what torch's FlopCounterMode counts for aten.bmm/mm, halved.
* scaled_dot_product_attention (``F.scaled_dot_product_attention(q, k, v)``): q (..., L, E),
  k (..., S, E), v (..., S, Ev) -> (..., L, Ev).  MACs (`matmul`): L*S*E for q k^T and L*S*Ev for
  the weighted sum of v, per leading index (heads): 2*heads*L*S*d when E = Ev = d, which is
  torch's own sdpa formula (torch/utils/flop_counter.py, sdpa_flop_count) halved (category
  `attn_matmul`, apart from matmul's: fvcore counts aten::matmul but not the sdpa kernel).  The softmax
  is counted apart (`softmax`, one per score: heads*L*S) and so is the 1/sqrt(E) scaling
  (`attn_scale`, one per score).  A causal mask (``is_causal``, torch's top-left aligned
  tril(ones(L, S)): query i sees min(i + 1, S) keys) is a convention's choice: the kernels compute
  every score and mask after, and torch's FlopCounterMode counts the full L*S (so do 'torch' and
  'lecture'); the products over the masked scores are `attn_matmul_masked`, which 'kaplan' leaves out
  (Kaplan et al. 2020 count attention over the causal triangle: on average half of n_ctx).
  ``enable_gqa`` (grouped-query attention, Ainslie et al. 2023; torch's flag): k and v have fewer
  heads than q, each shared by heads_q / heads_kv query heads; the counts follow q's heads, as
  torch's sdpa formula does (torch/utils/flop_counter.py).
* multiheadattention (``torch.nn.MultiheadAttention``): projections of q, k, v (`mac`, E x E,
  E x kdim, E x vdim per token), attention over ``num_heads`` heads of E/num_heads, output
  projection (E x E); biases as `linear_bias`.  Weights by torch's names: ``in_proj_weight``
  (3E, E) when kdim = vdim = E, else ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight``;
  ``in_proj_bias`` (3E); ``out_proj.weight``, ``out_proj.bias``.

Every output of an attention layer reads every position of its key/value input: its receptive
field is the whole input (see ``Layer.mixes_positions``), when those positions are the whole map.
Where the map had more positions than one output reads (``positions_read``: attention written by
hand inside windows, whose positions were cut up by reshapes), the whole input is an upper bound
and the receptive field pass marks it approximate.
"""


from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..dims import Dim, as_int, expand, is_symbolic, known_sign, prod
from .base import DimIn, Layer, Shape, dim_field, numel, shape_str
from .elementwise import _broadcast_dim


def _broadcast_batch(layer: Layer, a: Shape, b: Shape, what: str) -> Shape:
    """torch.matmul's broadcast of the leading axes (per sample: equal ranks, so the batch axes line up)."""
    if len(a) != len(b):
        raise layer.fail(
            f"{what}: {shape_str(a)} and {shape_str(b)} have {len(a)} and {len(b)} axes per sample (the batch axis would not line up)",
            "inputs",
        )
    out = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        d = _broadcast_dim(x, y)
        if d is None:
            raise layer.fail(f"{what}: leading axis {i} has {x} vs {y} (each must match or be 1)", "inputs")
        out.append(d)
    return tuple(out)


def _agree(layer: Layer, a: Dim, b: Dim, message: str) -> None:
    if known_sign(a - b) not in (0, None):
        raise layer.fail(message, "inputs")


class Matmul(Layer):
    """``torch.matmul(a, b)`` of two activations (attention's ``q @ k.transpose(-2, -1)``)."""

    type: Literal["matmul"]
    n_inputs: ClassVar[tuple[int, int | None]] = (2, 2)

    def output_shape(self, ins: list[Shape]) -> Shape:
        a, b = ins
        if len(a) < 2 or len(b) < 2:
            raise self.fail(f"needs two inputs of at least 2 axes per sample, got {shape_str(a)} and {shape_str(b)}", "inputs")
        _agree(self, a[-1], b[-2], f"cannot multiply {shape_str(a)} by {shape_str(b)}: inner sizes {a[-1]} and {b[-2]} differ")
        return (*_broadcast_batch(self, a[:-2], b[:-2], "cannot broadcast"), a[-2], b[-1])

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        return {"matmul": numel(out) * ins[0][-1]}  # one dot product of length k per output element

    def mixes_positions(self, ins: list[Shape]) -> bool:
        return True  # each output row reads a whole column of b: every position b holds

    def positions_read(self, ins: list[Shape]) -> Dim | None:
        return 2 * ins[0][-1]  # a row of a and a column of b, k entries each: at most 2k positions

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Matmul as MatmulModule

        return MatmulModule()


class ScaledDotProductAttention(Layer):
    """``torch.nn.functional.scaled_dot_product_attention(q, k, v)``; inputs q, k, v in that order."""

    type: Literal["scaled_dot_product_attention"]
    is_causal: bool = Field(default=False, description="Causal mask: position i attends to positions <= i (all scores are still computed).")
    scale: float | None = Field(default=None, description="Score scale; default 1/sqrt(E).")
    dropout_p: float = Field(default=0.0, ge=0, le=1, description="Attention dropout (training only).")
    enable_gqa: bool = Field(default=False, description="Grouped-query attention: k, v may have fewer heads (axis -3) than q, a divisor of q's.")
    n_inputs: ClassVar[tuple[int, int | None]] = (3, 3)

    def _grouped(self, ins: list[Shape]) -> list[Shape]:
        """With enable_gqa, k and v as torch sees them: their heads repeated to q's."""
        q, k, v = ins
        if not self.enable_gqa:
            return ins
        if min(len(q), len(k), len(v)) < 3:
            raise self.fail(f"enable_gqa needs (heads, L, E) inputs, got {shape_str(q)}, {shape_str(k)}, {shape_str(v)}", "inputs")
        hq, hk, hv = q[-3], k[-3], v[-3]
        _agree(self, hk, hv, f"k and v have {hk} and {hv} heads")
        ratio = hq / hk if is_symbolic(hq) or is_symbolic(hk) else (hq // hk if hq % hk == 0 else None)
        if ratio is None or known_sign(hq - hk) == -1:
            raise self.fail(f"q's {hq} heads are not a multiple of k and v's {hk}", "inputs")
        return [q, (*k[:-3], hq, *k[-2:]), (*v[:-3], hq, *v[-2:])]

    def _causal_pairs(self, big_l: Dim, s: Dim) -> Dim:
        """(query, key) pairs a causal mask keeps: query i sees min(i + 1, S) keys (torch's tril(ones(L, S)))."""
        if known_sign(s - big_l) in (0, 1):  # L <= S: 1 + 2 + ... + L
            return big_l * (big_l + 1) / 2 if is_symbolic(big_l) else big_l * (big_l + 1) // 2
        if known_sign(s - big_l) == -1:  # the first S queries see 1..S keys, the rest all S
            return (s * (s + 1) / 2 if is_symbolic(s) else s * (s + 1) // 2) + (big_l - s) * s
        raise self.fail(f"cannot tell whether {big_l} queries are fewer than {s} keys: give the sizes numbers", "is_causal")

    def output_shape(self, ins: list[Shape]) -> Shape:
        q, k, v = self._grouped(ins)
        if min(len(q), len(k), len(v)) < 2:
            raise self.fail(f"q, k, v need (..., L, E) shapes, got {shape_str(q)}, {shape_str(k)}, {shape_str(v)}", "inputs")
        _agree(self, q[-1], k[-1], f"q {shape_str(q)} and k {shape_str(k)} have embeddings {q[-1]} and {k[-1]}")
        _agree(self, k[-2], v[-2], f"k {shape_str(k)} and v {shape_str(v)} have {k[-2]} and {v[-2]} positions")
        lead = _broadcast_batch(self, q[:-2], _broadcast_batch(self, k[:-2], v[:-2], "k and v"), "q and k")
        return (*lead, q[-2], v[-1])

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        q, k, v = self._grouped(ins)
        heads, big_l, s = prod(out[:-2]), q[-2], k[-2]
        scores = heads * big_l * s
        # q k^T: L*S dot products of length E; softmax(scores) v: L*Ev dot products of length S
        o: dict[str, Dim] = {"attn_matmul": scores * q[-1] + scores * v[-1], "softmax": scores, "attn_scale": scores}
        if self.is_causal:  # the same work, split: the products over kept scores, those over masked ones
            kept = heads * self._causal_pairs(big_l, s)
            o["attn_matmul"] = expand(kept * (q[-1] + v[-1]))
            o["attn_matmul_masked"] = expand((scores - kept) * (q[-1] + v[-1]))
        return o

    def mixes_positions(self, ins: list[Shape]) -> bool:
        return True

    def positions_read(self, ins: list[Shape]) -> Dim | None:
        return ins[1][-2]  # the S keys (and values) each query attends to

    def cached_per_position(self, ins: list[Shape]) -> Dim:
        _, k, v = ins  # (heads_kv, S, E) and (heads_kv, S, Ev): what one position adds to the cache
        return prod(k[:-2]) * k[-1] + prod(v[:-2]) * v[-1]

    def note(self, ins: list[Shape]) -> str | None:
        if self.is_causal:
            return (
                "causal: every score is computed and the upper triangle masked; 'torch' and 'lecture' count the masked products too "
                "(torch's FlopCounterMode counts the full L\u00d7S), 'kaplan' only the kept triangle"
            )
        return None

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import ScaledDotProductAttention as SDPA

        return SDPA(self.is_causal, self.scale, self.dropout_p, self.enable_gqa)


class MultiheadAttention(Layer):
    """torch.nn.MultiheadAttention (embed_dim from the query's last axis); inputs: one (self-attention) or q, k, v."""

    type: Literal["multiheadattention"]
    num_heads: Annotated[DimIn, *dim_field()] = Field(description="Heads; embed_dim must be divisible by it.")
    bias: bool = True
    kdim: Annotated[DimIn | None, *dim_field()] = Field(default=None, description="Key features (default embed_dim).")
    vdim: Annotated[DimIn | None, *dim_field()] = Field(default=None, description="Value features (default embed_dim).")
    batch_first: bool = Field(default=False, description="torch's layout flag; the spec's shapes are per sample (L, E) either way.")
    dropout: float = Field(default=0.0, ge=0, le=1)
    n_inputs: ClassVar[tuple[int, int | None]] = (1, 3)

    def _qkv(self, ins: list[Shape]) -> tuple[Shape, Shape, Shape]:
        if len(ins) == 2:
            raise self.fail("takes one input (self-attention) or three (query, key, value), got 2", "inputs")
        q, k, v = (ins[0], ins[0], ins[0]) if len(ins) == 1 else ins
        for what, s in (("query", q), ("key", k), ("value", v)):
            if len(s) != 2:
                raise self.fail(f"{what} must be a (L, E) sequence per sample, got {shape_str(s)}", "inputs")
        e = q[-1]
        for name, want, got in (("kdim", self.kdim, k[-1]), ("vdim", self.vdim, v[-1])):
            _agree(self, want if want is not None else e, got, f"{name} is {want if want is not None else e} but the input has {got} features")
        _agree(self, k[0], v[0], f"key {shape_str(k)} and value {shape_str(v)} have {k[0]} and {v[0]} positions")
        h, ei = as_int(self.num_heads), as_int(e)
        if h is not None and ei is not None and ei % h:
            raise self.fail(f"embed_dim {ei} is not divisible by num_heads {h}", "num_heads")
        return q, k, v

    def output_shape(self, ins: list[Shape]) -> Shape:
        q, _, _ = self._qkv(ins)
        return q

    @staticmethod
    def _packed(e: Dim, k: Dim, v: Dim) -> bool:
        # torch packs q, k, v into in_proj_weight when kdim == vdim == embed_dim
        return known_sign(k - e) == 0 and known_sign(v - e) == 0

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        q, k, v = self._qkv(ins)
        e = q[-1]
        w: dict[str, Shape] = (
            {"in_proj_weight": (3 * e, e)}
            if self._packed(e, k[-1], v[-1])
            else {"q_proj_weight": (e, e), "k_proj_weight": (e, k[-1]), "v_proj_weight": (e, v[-1])}
        )
        if self.bias:
            w["in_proj_bias"] = (3 * e,)
        w["out_proj.weight"] = (e, e)
        if self.bias:
            w["out_proj.bias"] = (e,)
        return w

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        q, k, v = self._qkv(ins)
        big_l, s, e = q[0], k[0], q[-1]
        # projections: q (L x E x E), k (S x kdim x E), v (S x vdim x E), out (L x E x E)
        o: dict[str, Dim] = {"mac": big_l * e * e + s * k[-1] * e + s * v[-1] * e + big_l * e * e}
        if self.bias:
            o["linear_bias"] = 2 * big_l * e + 2 * s * e
        scores = self.num_heads * big_l * s
        d = e // self.num_heads
        o.update({"attn_matmul": 2 * scores * d, "softmax": scores, "attn_scale": scores})
        return o

    def cached_per_position(self, ins: list[Shape]) -> Dim:
        q, _, _ = self._qkv(ins)
        return 2 * q[-1]  # the projected key and value of each position, embed_dim each

    def mixes_positions(self, ins: list[Shape]) -> bool:
        return True

    def positions_read(self, ins: list[Shape]) -> Dim | None:
        return self._qkv(ins)[1][0]  # the S keys each query attends to

    def describe(self, ins: list[Shape]) -> str:
        return f"multi-head attention, {self.num_heads} heads of {ins[0][-1]}/{self.num_heads}"

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import MultiheadAttention as MHA

        q, k, v = self._qkv(ins)
        return MHA(int(q[-1]), int(self.num_heads), self.dropout, self.bias, int(k[-1]), int(v[-1]), self.batch_first, len(ins) == 1)


LAYERS: list[type[Layer]] = [Matmul, ScaledDotProductAttention, MultiheadAttention]
