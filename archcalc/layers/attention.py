"""Products of two activations and attention: matmul, scaled_dot_product_attention, causal_mask, multiheadattention.

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
* causal_mask (attention written out, nanoGPT without flash: ``att.masked_fill(self.bias[:, :, :T, :T]
  == 0, float('-inf'))`` before the softmax, the buffer ``tril(ones(block, block))``): the scores
  (..., L, S) of the keys after each query (key j > query i, torch's top-left aligned
  tril(ones(L, S)) kept, as sdpa's ``is_causal``) become -inf, so the softmax gives them weight 0.
  Same shape; no parameters.  Ops (`mask`): masked_fill reads every score and writes it or -inf, one
  select per score (heads*L*S), no arithmetic: torch's FlopCounterMode has no formula for
  aten.masked_fill (0), fvcore ignores it (``_IGNORED_OPS``), ptflops, thop and torchinfo count no
  function call of it; no convention counts it.  The products around it are computed in full, as
  sdpa's with ``is_causal``: import marks the ``matmul`` that makes the masked scores
  (``causal: "scores"``) and the one that reads the weights after the softmax (``causal: "weights"``),
  whose products at masked places are `attn_matmul_masked` (counted by 'torch', 'lecture' and
  'fvcore', left out by 'kaplan': the same counts as sdpa's).
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

What the backward keeps (``saved``: measured with ``torch.autograd.graph.saved_tensors_hooks``,
torch 2.14, on the meta device and CPU; see tests/test_saved_tensors.py):

* matmul: both inputs as torch.matmul hands them to bmm, the batch axis merged with the leading
  axes: an input's own storage where that reshape is a view, else a copy (of the broadcast shape).
* scaled_dot_product_attention, math path (torch's ``_scaled_dot_product_attention_math``: what
  the meta device runs, and CPU with dropout or Ev != E): q and k scaled by 1/sqrt(sqrt(E))
  each (new tensors, k's transposed), the softmax probabilities (heads x L x S), with dropout its
  mask and the dropped probabilities, and v (its own storage where the bmm reshape is a view, a
  copy where not, a repeat with grouped-query heads).  Half and bfloat16 inputs are cast to fp32
  first: q, k, v and the probabilities are then kept in fp32 (4 bytes), twice what Korthikanti
  et al. count.  Fused path (``saved_fused``: torch's CPU flash kernel, dropout 0 and E = Ev): q, k,
  v as given, the output (laid out like q) and an fp32 logsumexp per query (heads x L): no L x S term.
* multiheadattention (torch.nn.functional.multi_head_attention_forward, training): the input
  projection keeps a contiguous copy of each input (the module reads it transposed, (L, N, E); one
  tensor passed as k and v, or as q, k and v, is projected once: one copy, saved.py's _projected_once);
  then scaled_dot_product_attention on the projected heads, as above (v is a view of the packed
  q/k/v projection in self-attention: the whole 3 x L x E of it is kept); the output projection
  keeps its input, a contiguous copy of the attention output (math path) or that output itself
  (flash: laid out (L, N, E) already).  The module's output is a transposed view of an (L, N, E)
  tensor (``new_strided``).  At batch 1 the transposed input is (L, 1, E), which flattens by
  dropping the size-1 axis, a view: torch keeps the input itself, not a copy (the saved-tensors
  pass's ``step_batch``; measured, self-attention of 64 tokens of 64 on the network's input:
  16,384 B less, the copy).
"""


from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..dims import Dim, as_int, expand, is_symbolic, known_sign, prod
from .base import BATCH_SECOND, DEFAULT_RUN, DimIn, Layer, Run, Saved, Shape, dim_field, numel, shape_str
from .elementwise import _broadcast_dim


def _broadcast_batch(layer: Layer, a: Shape, b: Shape, what: str) -> Shape:
    """torch.matmul's broadcast of the leading axes (per sample: equal ranks, so the batch axes line up)."""
    if len(a) != len(b):
        def leading(s: Shape) -> str:
            return shape_str(s) if s else "none"

        raise layer.fail(
            f"{what}: {leading(a)} and {leading(b)}, {len(a)} and {len(b)} axes per sample: the batch axis would not line up "
            "(a learned tensor read by it takes leading 1s, a parameter of shape [1, ..., K, N])",
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


def _attention_core(lead: Shape, big_l: Dim, s: Dim, e: Dim, dropout_p: float) -> list[Saved]:
    """What torch's math attention keeps before v: scaled q and k, the probabilities, their dropout."""
    kept = [
        Saved.new("q_scaled", (*lead, big_l, e), "q * E^-1/4: the scores' gradient times k gives q's", "act_fp32"),
        Saved.new("k_scaled", (*lead, s, e), "k * E^-1/4, transposed: the scores' gradient times q gives k's", "act_fp32"),
        Saved.new("probabilities", (*lead, big_l, s), "softmax's output: its backward, and (undropped) v's gradient", "act_fp32"),
    ]
    if dropout_p == 1:  # torch multiplies by a 0-d zero
        kept.append(Saved.new("zero", (), "x * 0: the gradient is multiplied by the same zero", "act_fp32", batched=False))
    elif dropout_p > 0:
        kept.append(Saved.new("dropout_mask", (*lead, big_l, s), "which probabilities were kept (scaled by 1/(1-p))", "attn_dropout_mask"))
    if dropout_p > 0:
        kept.append(Saved.new("dropped_probabilities", (*lead, big_l, s), "the dropped probabilities: v's gradient", "act_fp32"))
    return kept


def flash_cpu_splits(big_l: Dim, s: Dim) -> tuple[int, int] | None:
    """The (query, key) block sizes of torch's CPU flash attention (FlashAttentionKernel.cpp, forward and
    backward alike): queries in blocks of 256 from 768 of them, 64 from 192, else 32, keys in blocks
    of 512, each at most the length; None for a symbolic length."""
    lq, ls = as_int(big_l), as_int(s)
    if lq is None or ls is None:
        return None
    q_split = 256 if lq >= 768 else 64 if lq >= 192 else 32
    return min(q_split, lq), min(512, ls)


def flash_cpu_buffers(big_l: Dim, s: Dim, d: Dim, heads: Dim, phase: str, run: Run) -> Dim | None:
    """Elements (of the activations' dtype, ``run.width`` bytes) of the buffers torch's CPU flash attention
    allocates through its allocator while it runs, for ``heads`` heads per sample of ``d`` features, ``big_l``
    queries and ``s`` keys, on ``run.threads`` threads (None: one), torch 2.14, FlashAttentionKernel.cpp:

    * forward: ``buf``, per thread qSplit*kvSplit + 2*qSplit + qSplit*d accumulators (fp32; fp64 for
      float64), and for 16-bit q a ``buf_reduced`` of qSplit*kvSplit in their dtype per thread;
    * backward: ``buf``, per thread 2*qSplit*kvSplit accumulators (the probabilities and their gradient),
      for 16-bit q ``buf_reduced`` of as many in their dtype, and in each thread that runs (at most one
      per head of the batch: at::parallel_for over batch*heads) ``dsum``, qSplit accumulators.

    None where a length is symbolic (the block sizes depend on it)."""
    splits = flash_cpu_splits(big_l, s)
    if splits is None:
        return None
    threads = run.threads or 1
    per_thread, per_running = _flash_per_thread(*splits, d, phase, run.width)
    batch = as_int(run.batch)
    h = as_int(heads)
    running = threads if batch is None or h is None else min(threads, batch * h)
    return threads * per_thread + running * per_running


def _flash_per_thread(q: int, kv: int, d: Dim, phase: str, width: int) -> tuple[Dim, int]:
    """Elements (``width`` bytes each) of :func:`flash_cpu_buffers` per CPU thread, and per thread that runs a head."""
    up = max(width, 4) // width  # accumulators (fp32, or fp64) in the activations' elements
    reduced = 1 if width == 2 else 0
    if phase == "forward":
        return (q * kv + 2 * q + q * d) * up + reduced * q * kv, 0
    return 2 * q * kv * (up + reduced), q * up


FLASH_THREADS = (
    "torch's CPU flash attention allocates its buffers once per CPU thread (torch.get_num_threads()): one thread's "
    "are counted; each further thread adds {extra:,} bytes in the backward (the probabilities and their gradient, "
    "2 x {q} x {kv} accumulators, and {q} row sums); --cpu-threads N counts them"
)


def flash_threads_uncounted(big_l: Dim, s: Dim, d: Dim, heads: Dim, device: str, run: Run) -> str | None:
    """What the peak does not count of the CPU flash kernel's buffers (:func:`flash_cpu_buffers`):
    the threads beyond the first where their number is not given, all of them for a symbolic length."""
    if device != "cpu":
        return None
    splits = flash_cpu_splits(big_l, s)
    if splits is None:
        return ("torch's CPU flash attention's buffers, per CPU thread 2 x qSplit x kvSplit accumulators in the backward "
                "(qSplit up to 256 queries, kvSplit up to 512 keys, as the lengths are): the lengths are symbols here")
    if run.threads is not None:
        return None
    q, kv = splits
    per_thread, per_running = _flash_per_thread(q, kv, d, "backward", run.width)  # one more thread's buf (and buf_reduced) and dsum
    return FLASH_THREADS.format(extra=(per_thread + per_running) * run.width, q=q, kv=kv)


def causal_pairs(layer: Layer, big_l: Dim, s: Dim, field: str = "is_causal") -> Dim:
    """(query, key) pairs a causal mask keeps: query i sees min(i + 1, S) keys (torch's tril(ones(L, S)))."""
    if known_sign(s - big_l) in (0, 1):  # L <= S: 1 + 2 + ... + L
        return big_l * (big_l + 1) / 2 if is_symbolic(big_l) else big_l * (big_l + 1) // 2
    if known_sign(s - big_l) == -1:  # the first S queries see 1..S keys, the rest all S
        return (s * (s + 1) / 2 if is_symbolic(s) else s * (s + 1) // 2) + (big_l - s) * s
    raise layer.fail(f"cannot tell whether {big_l} queries are fewer than {s} keys: give the sizes numbers", field)


class Matmul(Layer):
    """``torch.matmul(a, b)`` of two activations (attention's ``q @ k.transpose(-2, -1)``)."""

    type: Literal["matmul"]
    causal: Literal["scores", "weights"] | None = Field(
        default=None,
        description="Attention written out under a causal mask: 'scores' when its (..., L, S) output is masked after (q @ k^T), "
        "'weights' when its first input is the masked (..., L, S) weights (softmax @ v). The products at masked places "
        "(key > query) are attn_matmul_masked: computed and counted by torch, left out by 'kaplan', as sdpa's is_causal.",
    )
    n_inputs: ClassVar[tuple[int, int | None]] = (2, 2)
    input_names: ClassVar[tuple[str, ...] | None] = ("a", "b")

    def output_shape(self, ins: list[Shape]) -> Shape:
        a, b = ins
        if len(a) < 2 or len(b) < 2:
            raise self.fail(f"needs two inputs of at least 2 axes per sample, got {shape_str(a)} and {shape_str(b)}", "inputs")
        _agree(self, a[-1], b[-2], f"cannot multiply {shape_str(a)} by {shape_str(b)}: inner sizes {a[-1]} and {b[-2]} differ")
        return (*_broadcast_batch(self, a[:-2], b[:-2], "cannot broadcast"), a[-2], b[-1])

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        total = numel(out) * ins[0][-1]  # one dot product of length k per output element
        if self.causal is None:
            return {"matmul": total}
        if self.causal == "scores":  # output (..., L, S): the dot products (of length k) of the kept (query, key) pairs
            kept = prod(out[:-2]) * causal_pairs(self, out[-2], out[-1], "causal") * ins[0][-1]
        else:  # first input (..., L, S) of weights, zero where masked: per output column, the kept pairs' products
            kept = prod(out[:-2]) * causal_pairs(self, ins[0][-2], ins[0][-1], "causal") * out[-1]
        return {"matmul": expand(kept), "attn_matmul_masked": expand(total - kept)}

    def note(self, ins: list[Shape]) -> str | None:
        if self.causal is None:
            return None
        what = "its scores are masked after" if self.causal == "scores" else "it weighs by masked attention weights (0 at masked places)"
        return (f"causal ({what}): every product is computed; those at masked places (key > query) are attn_matmul_masked, "
                "which 'torch' and 'lecture' count and 'kaplan' does not")

    def cached_per_position(self, ins: list[Shape]) -> Dim:
        """Attention written out under a causal mask (nanoGPT's ``flash=False``) caches what a decoder keeps of each
        position: the keys, read by the scores' product (``q @ k^T``: b is k^T, (heads_kv, E, S)), and the values, read
        by the weights' (``att @ v``: b is v, (heads_kv, S, Ev)).  Another matmul caches nothing."""
        b = ins[1]
        if self.causal == "scores":
            return prod(b[:-2]) * b[-2]
        if self.causal == "weights":
            return prod(b[:-2]) * b[-1]
        return 0

    def mixes_positions(self, ins: list[Shape]) -> bool:
        return True  # each output row reads a whole column of b: every position b holds

    def sees_prefix(self, ins: list[Shape]) -> bool:
        return self.causal == "weights"  # (masked weights times v: query i reads values 0..i)

    def reads_pair(self, ins: list[Shape]) -> bool:
        return self.causal == "scores"  # (q k^T: score (i, j) reads query i and key j)

    def positions_read(self, ins: list[Shape]) -> Dim | None:
        return 2 * ins[0][-1]  # a row of a and a column of b, k entries each: at most 2k positions
    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        a, b = ins
        lead = out[:-2]
        return [
            Saved.of_matmul_input("b's gradient is a^T times the output's gradient", 0, (*lead, a[-2], a[-1]), len(lead)),
            Saved.of_matmul_input("a's gradient is the output's gradient times b^T", 1, (*lead, b[-2], b[-1]), len(lead)),
        ]

    def workspace_uncounted(self, ins: list[Shape], out: Shape, device: str, run: Run = DEFAULT_RUN) -> str | None:
        return self.matmul16_uncounted(device, run)

    def autocast(self, device: str) -> str | None:
        return "lower"  # on autocast's lower-precision list: it keeps the low-dtype inputs (casts of fp32 ones)

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
    input_names: ClassVar[tuple[str, ...] | None] = ("q", "k", "v")
    reads_sequences: ClassVar[bool] = True

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
            kept = heads * causal_pairs(self, big_l, s)
            o["attn_matmul"] = expand(kept * (q[-1] + v[-1]))
            o["attn_matmul_masked"] = expand((scores - kept) * (q[-1] + v[-1]))
        return o

    def mixes_positions(self, ins: list[Shape]) -> bool:
        return True

    def sees_prefix(self, ins: list[Shape]) -> bool:
        return self.is_causal

    def positions_read(self, ins: list[Shape]) -> Dim | None:
        return ins[1][-2]  # the S keys (and values) each query attends to

    def cached_per_position(self, ins: list[Shape]) -> Dim:
        _, k, v = ins  # (heads_kv, S, E) and (heads_kv, S, Ev): what one position adds to the cache
        return prod(k[:-2]) * k[-1] + prod(v[:-2]) * v[-1]

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        q, k, v = self._grouped(ins)
        lead = out[:-2]
        kept = _attention_core(lead, q[-2], k[-2], q[-1], self.dropout_p)
        if self.enable_gqa and known_sign(ins[2][-3] - q[-3]) != 0:  # k, v repeated to q's heads (repeat_interleave): a new v
            kept.append(Saved.new("v_repeated", (*lead, v[-2], v[-1]), "v, its heads repeated to q's: the probabilities' gradient", "act_fp32"))
        else:
            why = "the probabilities' gradient is the output's gradient times v^T"
            kept.append(Saved.of_matmul_input(why, 2, (*lead, v[-2], v[-1]), len(lead), fp32=True))
        return kept

    def _flash(self, ins: list[Shape]) -> bool:
        """Whether torch's CPU flash kernel runs it (sdp_utils_cpp: no dropout, 3-D or 4-D inputs, one head size)."""
        q, _, v = ins
        return self.dropout_p == 0 and len(q) in (2, 3) and known_sign(v[-1] - q[-1]) == 0

    def saved_fused(self, ins: list[Shape], out: Shape) -> list[Saved] | None:
        if not self._flash(ins):
            return None  # the math path runs
        return [
            Saved.of_input("q: the backward recomputes the scores blockwise", 0),
            Saved.of_input("k: the backward recomputes the scores blockwise", 1),
            Saved.of_input("v: the backward recomputes the probabilities' gradient", 2),
            Saved.of_output("the output: the softmax backward's row sums (output . its gradient)"),
            Saved.new("logsumexp", (*out[:-2], ins[0][-2]), "one fp32 logsumexp per query: the probabilities, recomputed", "float32"),
        ]

    def output_storage_fused(self, ins: list[Shape]) -> str | None:
        return "like_input" if self._flash(ins) else None  # the flash output takes q's strides

    def workspace(
        self, ins: list[Shape], out: Shape, device: str, phase: str, input_grad: bool = True, run: Run = DEFAULT_RUN,
        other_grads: tuple[bool, ...] = (), views: tuple[bool, ...] = (), aliases: tuple[int, ...] = (),
    ) -> list[tuple[Dim, Dim]]:
        """On CPU, where flash attention runs (:meth:`_flash`, ``run.fused``), its buffers
        (:func:`flash_cpu_buffers`; review s9 #3, measured with torch.profiler: the causal
        (4 heads, L, 16) attention of L = 64, 256, 1024 tokens, batch 2, 2 threads, peaks 32,896,
        262,400 and 2,098,176 bytes above the tensors alone); in the backward also the contiguous copy
        of the output's gradient the kernel makes (``grad_out.contiguous()`` of the (B, L, heads, d)
        view) unless that gradient is laid out so already (it comes through a transpose back,
        ``run.grad_order``) or there is one head or one query."""
        if device != "cpu" or not run.fused or not self._flash(ins):
            return [(0, 0)]
        q, k, _ = ins
        heads = prod(out[:-2])
        buffers = flash_cpu_buffers(q[-2], k[-2], q[-1], heads, phase, run)
        if buffers is None:
            return [(0, 0)]  # (said not counted: workspace_uncounted)
        copy: Dim = 0
        if phase == "backward" and len(out) == 3 and known_sign(heads - 1) != 0 and known_sign(out[-2] - 1) != 0:
            copy = 0 if run.grad_order == (1, 0, 2) else numel(out)
        return [(buffers, copy)]

    def workspace_uncounted(self, ins: list[Shape], out: Shape, device: str, run: Run = DEFAULT_RUN) -> str | None:
        said = [self.matmul16_uncounted(device, run)]
        if run.fused and self._flash(ins):
            said.append(flash_threads_uncounted(ins[0][-2], ins[1][-2], ins[0][-1], prod(out[:-2]), device, run))
        return "; ".join(x for x in said if x) or None

    def autocast(self, device: str) -> str | None:
        return "lower"

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


class CausalMask(Layer):
    """``scores.masked_fill(mask, float("-inf"))`` with a causal mask: each query's later keys hidden before the softmax."""

    type: Literal["causal_mask"]
    buffer_size: Annotated[DimIn | None, *dim_field()] = Field(
        default=None,
        description="Positions of the mask the model keeps as a buffer (nanoGPT's block_size: tril(ones(n, n)) in fp32, "
        "sliced to the scores' L x S); none: the mask is made from L and S and nothing is kept between steps.",
    )

    def output_shape(self, ins: list[Shape]) -> Shape:
        if len(ins[0]) < 2:
            raise self.fail(f"masks (..., L, S) scores (queries, then keys), got {shape_str(ins[0])}", "inputs")
        if self.buffer_size is not None:
            for what, d in (("queries", ins[0][-2]), ("keys", ins[0][-1])):
                if known_sign(self.buffer_size - d) == -1:
                    raise self.fail(f"a mask buffer of {self.buffer_size} positions cannot be sliced to {d} {what}", "buffer_size")
        return ins[0]

    def buffers(self, ins: list[Shape]) -> dict[str, Shape]:
        # nanoGPT: self.register_buffer("bias", torch.tril(torch.ones(n, n)).view(1, 1, n, n))
        return {} if self.buffer_size is None else {"bias": (1, 1, self.buffer_size, self.buffer_size)}

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        return {"mask": numel(out)}  # masked_fill: every score read, then written as it is or as -inf

    def note(self, ins: list[Shape]) -> str | None:
        return ("causal mask: the scores of later keys (key j > query i) set to -inf before the softmax; one select per score, "
                "which no convention counts (torch's FlopCounterMode: 0)")

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # masked_fill's backward zeroes the gradient where it filled: it keeps the (L, S) mask, one for every head and sample
        return [Saved.new("mask", ins[0][-2:], "masked_fill's gradient is zero where it filled: the mask", "bool", batched=False)]

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import CausalMask as CausalMaskModule

        return CausalMaskModule(self.buffer_size)


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
    input_names: ClassVar[tuple[str, ...] | None] = ("q", "k", "v")
    reads_sequences: ClassVar[bool] = True
    grad_released_from: ClassVar[int | None] = 1  # (workspace: after the out projection's backward)
    workspace_reads_views: ClassVar[bool] = True  # (workspace: the in projection is one addmm on its input itself)

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
        # ptflops 0.7.5's own formula for the module (multihead_attention_counter_hook): q scaling L*E,
        # projections L*E*E + S*kdim*kdim + S*vdim*vdim, their bias 3 per position, heads' products and
        # softmax, and the output projection L*vdim*(vdim + 1) (a bias always): what it adds to the above
        kd, vd = k[-1], v[-1]
        ptflops = big_l * e + big_l * e * e + s * kd * kd + s * vd * vd + ((big_l + 2 * s) * e if self.bias else 0)
        ptflops = ptflops + self.num_heads * (big_l * s * d + big_l * s + big_l * s * (vd // self.num_heads)) + big_l * vd * (vd + 1)
        o["mha_ptflops"] = expand(ptflops - sum(o[c] for c in ("mac", "linear_bias", "attn_matmul", "softmax") if c in o))
        return o

    def cached_per_position(self, ins: list[Shape]) -> Dim:
        q, _, _ = self._qkv(ins)
        return 2 * q[-1]  # the projected key and value of each position, embed_dim each

    def mixes_positions(self, ins: list[Shape]) -> bool:
        return True

    def positions_read(self, ins: list[Shape]) -> Dim | None:
        return self._qkv(ins)[1][0]  # the S keys each query attends to
    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        q, k, _ = self._qkv(ins)
        big_l, s, e = q[0], k[0], q[-1]
        kept = self._projection_inputs(ins)
        kept += _attention_core((self.num_heads,), big_l, s, e // self.num_heads, self.dropout)
        if len(ins) == 1:  # v is a view of the packed projection: all of it is kept (an fp32 copy of v for 16-bit activations)
            kept.append(Saved.new("qkv", (3, big_l, e), "the packed q, k, v projection, of which v is kept as a view", fp32_copy=(big_l, e)))
        else:
            kept.append(Saved.new("v_proj", (s, e), "the projected values: the probabilities' gradient", fp32_copy=(s, e)))
        kept.append(Saved.new("out_proj_input", (big_l, e), "the out projection's input, a contiguous copy of the heads' output"))
        return kept

    def saved_fused(self, ins: list[Shape], out: Shape) -> list[Saved] | None:
        if self.dropout > 0:
            return None  # the math path runs
        q, k, _ = self._qkv(ins)
        big_l, s, e = q[0], k[0], q[-1]
        kept = self._projection_inputs(ins)
        if len(ins) == 1:
            kept.append(Saved.new("qkv", (3, big_l, e), "the packed q, k, v projection, which flash keeps as q, k, v"))
        else:
            kept += [Saved.new(f"{x}_proj", shape, f"the projected {w}: flash keeps q, k, v") for x, w, shape in
                     (("q", "queries", (big_l, e)), ("k", "keys", (s, e)), ("v", "values", (s, e)))]  # fmt: skip
        weights = [w for w in self.weights(ins) if w.endswith("weight")]  # kept by the projections (parameters; under autocast, their casts)
        return [
            *kept,
            Saved.new("logsumexp", (self.num_heads, big_l), "one fp32 logsumexp per query and head: the probabilities, recomputed", "float32"),
            Saved.new("attention_output", (big_l, e), "the heads' output: flash's backward, and the out projection's input (a view)"),
            *(Saved.of_param(w, "the projection's input gradient is the output's gradient times its weight") for w in weights),
        ]

    @staticmethod
    def _projection_inputs(ins: list[Shape]) -> list[Saved]:
        # the module reads each input transposed, (L, N, E): linear keeps a contiguous copy, unless
        # the input is laid out so already (another multi-head attention's output)
        why = "the input projection's weight gradient (a copy: the module reads its input transposed, (L, N, E))"
        return [Saved.of_matmul_input(why, i, shape, BATCH_SECOND) for i, shape in enumerate(ins)]

    def output_storage(self, ins: list[Shape]) -> str:
        return "new_strided"  # a transposed view of the (L, N, E) result

    def workspace(
        self, ins: list[Shape], out: Shape, device: str, phase: str, input_grad: bool = True, run: Run = DEFAULT_RUN,
        other_grads: tuple[bool, ...] = (), views: tuple[bool, ...] = (), aliases: tuple[int, ...] = (),
    ) -> list[tuple[Dim, Dim]]:
        """On CPU with flash attention (no dropout, ``run.fused``), the moments inside the module
        (F.multi_head_attention_forward, torch 2.14; review s9 #3), in elements per sample of X = L*E,
        against the walk's moment (its saved tensors and output, and in the backward all its weights'
        gradients and its input's, alive at once):

        * forward: the packed projection (L*N, 3E) and its contiguous (3, L, N, E) copy, alive together
          before the first is freed (X more than the walk's, less the logsumexp and the heads' output not
          yet made); flash attention's buffers (:func:`flash_cpu_buffers`), the output not yet made;
        * backward, in the order autograd runs them: the out projection's (its input's gradient, X, and
          its weight's and bias's gradients, the others not yet made); flash attention's backward (that
          gradient, the zero-filled gradients of q, k and v, 3X for self-attention, a contiguous copy of
          the output's gradient, which reaches it laid out (L, N, heads, d), for a batch and L over 1,
          and its buffers; the out projection's gradients already added into .grad); the in
          projection's (its output's gradient, 3X, and its weights' gradients, q, k, v, the
          logsumexp and the heads' output released); with separate q, k, v inputs (cross-attention), its
          three linears' (v's, k's, q's, each input copy counted until the last: a bound) and then the
          concatenations of the in projection's gradient slices (:meth:`_concatenated`, on every path:
          autograd's, not the kernel's), its saved tensors released (``saved_released_from``).

        Measured: self-attention of 64 tokens of 64, 4 heads, batch 2, 2 threads: 594,048 bytes, this
        model 594,176 (the other thread's 128-byte row sums, which torch.profiler does not see)."""
        flash = device == "cpu" and run.fused and self.dropout == 0
        q, k, _ = self._qkv(ins)
        big_l, s, e = q[0], k[0], q[-1]
        heads, d = self.num_heads, e // self.num_heads
        x = big_l * e
        # one tensor passed as q, k and v: torch's self-attention path (one packed projection); as k and v alone: its
        # encoder-decoder path (F._in_projection_packed: linear(k, w_kv) for both, then a contiguous (2, S, N, E) copy)
        own = len(ins) == 1 or aliases[:3] == (0, 0, 0)
        kv = len(ins) == 3 and aliases[1:3] == (1, 1) and "in_proj_weight" in self.weights(ins)
        buffers = flash_cpu_buffers(big_l, s, d, heads, phase, run) if flash else None
        if buffers is None:  # (flash's buffers symbolic: said not counted, workspace_uncounted)
            if phase == "forward" or own:
                return [(0, 0)]
            # kv: SelectBackward0's two zero-filled (2, S, N, E) gradients and q's and k's (nothing released: a bound)
            select = [(-sum((numel(w) for w in self.weights(ins).values()), start=0), x + 5 * s * e)] if kv else []
            return [(0, 0), *select, *[(0, 0)] * (self.SAVED_RELEASED - 1 - len(select)), *self._concatenated(ins)]
        up = max(run.width, 4) // run.width
        lse = heads * big_l * up  # the fp32 logsumexp, in the activations' elements
        if phase == "forward":
            # the packed projection and its contiguous copy alive together (self: 3X for the X of the heads' output and of
            # the output, not yet made; kv: the (S, N, 2E) k and v projection and its copy)
            first = [(0, x - lse)] if own else [(0, 2 * s * e - 2 * x - lse)] if kv else [(0, 0)]
            return [*first, (buffers, -x), (0, 0)]
        weights = self.weights(ins)
        all_w = sum((numel(w) for w in weights.values()), start=0)
        out_w = numel(weights["out_proj.weight"]) + (numel(weights["out_proj.bias"]) if self.bias else 0)
        # the inputs' gradients the walk counts made (input 0's, and in cross-attention k's and v's): the in projection's
        # backward makes them, after flash attention's (measured: 64 queries of 32 attending to 64 keys, batch 2, the
        # walk's moment was 2 x 16,384 B above torch's, k's and v's input gradients)
        grads = [x if input_grad else 0, *(numel(ins[j]) if g else 0 for j, g in enumerate(other_grads, start=1))]
        made = sum(grads, start=0)
        twice = sum(grads[1:3], start=0) if own else grads[2] if kv and len(grads) > 2 else 0  # one tensor's gradient, counted again
        n = as_int(run.batch)
        copy = 0 if n == 1 or known_sign(big_l - 1) == 0 else x
        qkv_grads = x + 2 * s * e
        moments = [(out_w - all_w, x - made), (buffers - all_w, x + qkv_grads + copy - made)]
        if own:
            # the in projection: on a copy of its input, matmul then add (AddBackward0 sums the bias's gradient, added
            # into .grad, before MmBackward0 makes the weight's); on the input itself (at batch 1, or another attention's
            # (L, N, E) output: contiguous) one addmm, whose backward makes both at once (measured, 16 tokens of 256
            # after another multi-head attention, batch 2: 5,426,688 B, where archcalc said 5,423,616)
            bias = numel(weights["in_proj_bias"]) if self.bias and views[:1] == (True,) else 0
            moments.append((numel(weights["in_proj_weight"]) + bias - all_w, -x - lse - twice))
            return moments
        b = e if self.bias else 0
        m_q, m_k = grads[0], (grads[1] if len(grads) > 1 else 0)
        if kv:
            # the encoder-decoder path: the k and v gradients go back through select (SelectBackward0, v's then k's:
            # each a zero-filled (2, S, N, E) tensor, v's gradient freed before k's is made), are added, and kv's linear,
            # then q's, run backward (measured: 8 queries of 32 attending to 512 keys from one linear, batch 1: 467,968 B
            # in the second select, where archcalc said 439,456)
            moments += [
                (-all_w, 3 * s * e - x - lse - made),
                (2 * e * e + 2 * b - all_w, -x - lse - m_q - m_k),
                (3 * e * e + 3 * b - all_w, -x - lse - 2 * s * e - twice),
            ]
            return moments + [(f, p - twice) for f, p in self._concatenated(ins)]
        # cross-attention: three linears (F._in_projection_packed's or _in_projection's), run backward v's, k's, q's: each
        # makes its bias's and weight's slices and its input's gradient, the projections' gradients (flash's, copied by
        # the views' backward) in place of the projections, the heads' output and the logsumexp released; v's and k's
        # projection gradients freed after their linears (their input copies too, still counted here: a bound)
        w_q, w_k, w_v = (e * e, e * k[-1], e * ins[2][-1])
        packed = "in_proj_weight" in weights  # slices of one weight wait for each other; separate weights go to .grad at once
        moments += [
            (w_v + b - all_w, -x - lse - m_q - m_k),
            ((w_v if packed else 0) + w_k + 2 * b - all_w, -x - lse - s * e - m_q),
            ((w_v + w_k if packed else 0) + w_q + 3 * b - all_w, -x - lse - 2 * s * e),
        ]
        return moments + self._concatenated(ins)

    SAVED_RELEASED: ClassVar[int] = 5
    saved_released_from: ClassVar[int | None] = SAVED_RELEASED  # (workspace: the in projection's slices concatenated)

    def _concatenated(self, ins: list[Shape]) -> list[tuple[Dim, Dim]]:
        """Cross-attention's last backward moments, after its three in projections (their saved tensors released):
        ``in_proj_bias.chunk(3)``'s backward concatenates the bias's gradient slices into a new tensor, then, when q, k
        and v share ``in_proj_weight`` (kdim = vdim = embed_dim), ``in_proj_weight.chunk(3)``'s backward the weight's:
        its three slices and their concatenation alive at once, twice the weight (torch.cat in SplitBackward0;
        measured: 16 queries of 256, batch 2, 4,894,720 B in that cat, where archcalc said 4,604,416)."""
        weights = self.weights(ins)
        all_w = sum((numel(w) for w in weights.values()), start=0)
        in_w = numel(weights["in_proj_weight"]) if "in_proj_weight" in weights else 0
        in_b = numel(weights["in_proj_bias"]) if self.bias else 0
        return [(in_w + 2 * in_b - all_w, 0), (2 * in_w - all_w, 0)]

    def workspace_uncounted(self, ins: list[Shape], out: Shape, device: str, run: Run = DEFAULT_RUN) -> str | None:
        said = [self.matmul16_uncounted(device, run)]
        if run.fused and self.dropout == 0:
            q, k, _ = self._qkv(ins)
            said.append(flash_threads_uncounted(q[0], k[0], q[-1] // self.num_heads, self.num_heads, device, run))
        return "; ".join(x for x in said if x) or None

    def autocast(self, device: str) -> str | None:
        return "lower"  # its projections (linear) and flash attention run in the low dtype; the math path stays unknown (fp32 copies)

    def describe(self, ins: list[Shape]) -> str:
        return f"multi-head attention, {self.num_heads} heads of {ins[0][-1]}/{self.num_heads}"

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import MultiheadAttention as MHA

        q, k, v = self._qkv(ins)
        return MHA(int(q[-1]), int(self.num_heads), self.dropout, self.bias, int(k[-1]), int(v[-1]), self.batch_first, len(ins) == 1)


LAYERS: list[type[Layer]] = [Matmul, ScaledDotProductAttention, CausalMask, MultiheadAttention]
