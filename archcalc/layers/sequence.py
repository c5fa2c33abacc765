"""Layers of language models: token embedding, RMS normalisation, rotary position embedding.

Shapes are per sample, torch's layout without the batch axis (DESIGN.md): ``[L]`` token ids
before an embedding, ``(L, D)`` for a sequence, ``(heads, L, d)`` inside attention.

* embedding (``torch.nn.Embedding(num_embeddings, embedding_dim)``): ids of any shape ->
  (*ids, embedding_dim).  Weight (num_embeddings, embedding_dim).  A lookup: one row read per
  token, no arithmetic (`lookup`, counted by no convention; torch's FlopCounterMode counts 0).
  With ``indices: "positions"`` it looks up the positions 0..L-1 of its input's first axis instead
  of the input's values (GPT-2's learned position embedding ``wpe(arange(L))``, Radford et al.
  2019); with ``"zeros"``, row 0 everywhere (BERT's token type embedding for a single segment).
* rmsnorm (``torch.nn.RMSNorm``, Zhang & Sennrich 2019; LLaMA): x / sqrt(mean(x^2) + eps) * weight
  over the trailing axes.  Weight of normalized_shape (no bias).  Ops: `rmsnorm` one normalisation
  per element, `rmsnorm_affine` one scaling per element.
* rotary (rotary position embedding, RoPE: Su et al. 2021, "RoFormer", eq. 34; LLaMA): rotates
  each pair of features of q or k by an angle set by the position: x*cos + rotate_half(x)*sin on
  a (..., L, d) input, d even.  No parameters (the angles are computed from the positions and
  ``base``).  Ops (`rotary`): one rotation per element (2 multiplications and an addition), which
  no convention counts as MACs (torch counts 0 for elementwise ops).
"""


from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ..dims import Dim, as_int, dim_text, known_sign
from .base import DEFAULT_RUN, DimIn, DimList, Layer, Run, Saved, Shape, dim_field, numel, shape_str
from .norm import normalized_axes


class Embedding(Layer):
    """torch.nn.Embedding: a table of ``num_embeddings`` vectors of ``embedding_dim``, indexed by token ids."""

    type: Literal["embedding"]
    num_embeddings: Annotated[DimIn, *dim_field()] = Field(description="Rows of the table: the vocabulary size (or the positions).")
    embedding_dim: Annotated[DimIn, *dim_field()] = Field(description="Size of each vector (the hidden size).")
    padding_idx: int | None = Field(default=None, description="torch's padding_idx (its row gets no gradient; counts unchanged).")
    indices: Literal["input", "positions", "zeros"] = Field(
        default="input",
        description="What is looked up: the input's values (token ids); 'positions' 0..L-1 of the input's first axis "
        "(GPT-2's wpe(arange(L)), BERT's position embeddings); 'zeros', row 0 for every position (BERT's token types "
        "when none are given). Output (L, embedding_dim) for the last two.",
    )
    takes_indices: ClassVar[bool] = True

    def output_shape(self, ins: list[Shape]) -> Shape:
        if self.indices != "input":
            length = ins[0][0]
            if self.indices == "positions" and known_sign(self.num_embeddings - length) == -1:
                raise self.fail(f"{length} positions but a table of {self.num_embeddings}", "num_embeddings")
            return (length, self.embedding_dim)
        return (*ins[0], self.embedding_dim)

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        return {"weight": (self.num_embeddings, self.embedding_dim)}

    def same_for_every_sample(self) -> bool:
        return self.indices != "input"  # the rows of the positions (or of token type 0): the same for every sample

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        return {"lookup": numel(out)}  # one table entry read per output element: no arithmetic

    def weights_read(self, ins: list[Shape], batch: Dim) -> Dim:
        """The rows it gathers: one per token id of the batch (at most the table: a row read
        once serves every id that names it); positions 0..L-1, shared by the batch; row 0."""
        if self.indices == "input":
            ids, table = batch * numel(ins[0]), self.num_embeddings
            sign = known_sign(ids - table)
            if sign is None:
                from sympy import Min

                rows: Dim = Min(ids, table)
            else:
                rows = ids if sign <= 0 else table
        else:
            rows = ins[0][0] if self.indices == "positions" else 1
        return rows * self.embedding_dim

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        why = "the ids say which rows of the table the gradient goes to"
        if self.indices == "input":  # the token ids (int64) themselves: F.embedding keeps its input (the caller's batch), no copy
            return [Saved.of_input(why)._replace(dtype="int64")]
        return [Saved.new("indices", (ins[0][0],), why, dtype="int64", batched=False)]  # arange(L) or zeros(L), one for the batch

    grad_released_from: ClassVar[int | None] = 1  # (workspace: "positions"/"zeros", after ExpandBackward0 has summed the gradient)

    def workspace(
        self, ins: list[Shape], out: Shape, device: str, phase: str, input_grad: bool = True, run: Run = DEFAULT_RUN,
        other_grads: tuple[bool, ...] = (), views: tuple[bool, ...] = (), aliases: tuple[int, ...] = (),
    ) -> list[tuple[Dim, Dim]]:
        """The backward's gradient of the rows, where it is not the output's gradient itself (review s10 #11:
        token + learned-position embeddings summed, batch 2, measured 293,888 B where archcalc said 261,120).
        embedding_dense_backward_cpu (aten/src/ATen/native/Embedding.cpp) allocates through torch's allocator only
        ``grad_weight = at::zeros(num_weights, D)`` (the weight's gradient, which the walk counts) and
        ``grad_.contiguous()``, a copy where the gradient reaching it is not laid out densely (it comes through
        a transpose back, ``run.grad_order``); its threads split the table's rows, with no buffers of their own,
        and ``scale_grad_by_freq``'s counts (not a field here) are a C++ array.  With ``indices`` "positions" or
        "zeros" the module looks up one (L, D) table for the batch and expands it over the batch:
        ExpandBackward0 (``at::sum_to``) first sums the (N, L, D) gradient into a new, dense (L, D) tensor when
        N > 1 (a symbolic batch: counted; batch 1 is worked out apart), then the embedding's backward makes the
        weight's gradient, the batch's gradient released if nothing else holds it (``grad_released_from``)."""
        if phase != "backward":
            return [(0, 0)]
        rows = numel(out)  # elements of the gradient of one sample's (or the shared) lookup
        copied = run.grad_order is not None and not self._dense(run.grad_order, out)
        if self.indices == "input":
            return [(0, rows if copied else 0)]  # grad_.contiguous() of the (N, *ids, D) gradient
        n = as_int(run.batch)
        if n is not None and n <= 1:
            return [(rows if copied else 0, 0)]  # sum_to returns the gradient itself: a copy only if it is not dense
        table = numel(self.weights(ins)["weight"])
        # in ExpandBackward0: the sum, before the weight's gradient (counted in every moment) is made; then both
        return [(rows - table, 0), (rows, 0)]

    @staticmethod
    def _dense(order: tuple[int, ...], shape: Shape) -> bool:
        """Whether a tensor of per-sample ``shape`` whose axes lie in memory in ``order`` (outermost first) is
        contiguous as torch judges it: its axes of more than one element in their logical order."""
        big = [a for a in order if known_sign(shape[a] - 1) != 0]
        return big == sorted(big)

    def note(self, ins: list[Shape]) -> str | None:
        if self.indices == "positions":
            rows = f"0..{dim_text(ins[0][0] - 1)}"
            return f"learned positions: looks up rows {rows} of {self.num_embeddings} (its parameters do not depend on the length)"
        if self.indices == "zeros":
            return f"looks up row 0 for every position (token type 0 of {self.num_embeddings})"
        return None

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Embedding as EmbeddingModule

        return EmbeddingModule(int(self.num_embeddings), int(self.embedding_dim), self.padding_idx, self.indices)


class RMSNorm(Layer):
    """torch.nn.RMSNorm over the trailing ``normalized_shape`` axes (default: the last axis)."""

    type: Literal["rmsnorm"]
    normalized_shape: Annotated[DimList | None, *dim_field()] = Field(
        default=None, description="The trailing axes normalised over (torch's normalized_shape); default the last axis."
    )
    eps: float | None = Field(default=None, description="torch's eps (default: the dtype's machine epsilon; LLaMA uses 1e-5 or 1e-6).")
    elementwise_affine: bool = True

    def _normalized(self, shape: Shape) -> Shape:
        return normalized_axes(self, self.normalized_shape, shape)

    def mixed_axes(self, ins: list[Shape]) -> tuple[int, ...]:
        n = len(self._normalized(ins[0]))  # the statistics are over the trailing normalized_shape axes
        return tuple(range(len(ins[0]) - n, len(ins[0])))

    def output_shape(self, ins: list[Shape]) -> Shape:
        self._normalized(ins[0])
        return ins[0]

    def weights(self, ins: list[Shape]) -> dict[str, Shape]:
        return {"weight": self._normalized(ins[0])} if self.elementwise_affine else {}

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        o: dict[str, Dim] = {"rmsnorm": numel(out)}  # x / rms(x), one per element
        if self.elementwise_affine:
            o["rmsnorm_affine"] = numel(out)  # * weight, one per element
        return o

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        # torch's composite rms_norm: x * rsqrt(mean(x**2) + eps) (* weight), computed in fp32 (a
        # 16-bit input is cast up: the fp32 copy is what is kept)
        n = len(self._normalized(ins[0]))
        kept = [
            Saved("input", "d/dx of x * rsqrt(mean(x^2)) needs x", fp32_copy=ins[0]),
            Saved.new("rstd", (*ins[0][: len(ins[0]) - n], *(1,) * n), "1/rms per row", "act_fp32"),
        ]
        if self.elementwise_affine:
            kept.append(Saved.new("normalized", ins[0], "the weight's gradient needs x / rms", "act_fp32"))
        return kept

    # the moments of its backward from the second on come after its first autograd node (the weight's
    # MulBackward0, or without a weight x * rstd's) has consumed the output's gradient (see workspace)
    grad_released_from: ClassVar[int | None] = 1

    def workspace(
        self, ins: list[Shape], out: Shape, device: str, phase: str, input_grad: bool = True, run: Run = DEFAULT_RUN,
        other_grads: tuple[bool, ...] = (), views: tuple[bool, ...] = (), aliases: tuple[int, ...] = (),
    ) -> list[tuple[Dim, Dim]]:
        """On CPU torch 2.14's ``rms_norm`` is composite (``aten::_fused_rms_norm`` runs ``x.pow(2)``,
        ``mean``, ``add_(eps)``, ``rsqrt``, ``x * rstd`` and ``* weight`` as autograd ops; measured with
        torch.profiler, review s10 #4), and the temporaries of its forward and of its autograd nodes'
        backward formulas (derivatives.yaml, FunctionsManual.cpp) are what this counts, for fp32, in
        elements per sample, N the input's and R its rows (N / the normalised size), against the walk's
        moment (the input x, rstd and x * rstd saved, the output's gradient g, the input's gradient and
        the weight's, W elements, alive at once):

        * forward: ``x.pow(2)`` (N) and its mean (R) are alive when rsqrt makes rstd (R): x + N + 2R,
          where the walk has x, rstd, the output and x * rstd (x + R + 2N with a weight, x + R + N
          without: R more);
        * backward, in the order autograd runs the nodes: the weight's ``MulBackward0`` (g * w, the
          input's path, and g * (x * rstd), N, summed into the weight's shape: N more than the walk);
          ``x * rstd``'s (its gradient g' (N) in, g' * rstd, the input's, and g' * x (N), summed to
          rstd's shape (R): N + R more, x * rstd, g and the weight's gradient, added into .grad, gone);
          ``RsqrtBackward0`` (``-0.5 * grad * result.pow(3)``: three R-sized temporaries and its
          gradient, R); ``MeanBackward1`` (its gradient expanded and divided, N, less than the next);
          ``PowBackward0`` (``pow_backward``: ``grad * (2 * x.pow(1))``: x.pow(1), 2 * it and the
          product, N each, and its gradient in, N: 4N beside x and the input's first gradient, where the
          walk has x, R, x * rstd, the input's gradient, g and W).

        Measured (fp32, linear 256 then rmsnorm on 64 x 256, batch 2): 1,708,032 bytes at
        ``PowBackward0``, the walk without this 1,316,352: 3N - R - W (x 4 bytes) below.  The moments
        are only modelled for fp32 on CPU (16-bit inputs are cast up inside: workspace_uncounted)."""
        if device != "cpu" or run.width != 4:
            return [(0, 0)]
        norm = self._normalized(ins[0])
        n, w, r = numel(ins[0]), numel(norm), numel(ins[0][: len(ins[0]) - len(norm)])
        if phase == "forward":
            return [(0, 0)] if self.elementwise_affine else [(0, r)]
        if not input_grad:  # only the weight's MulBackward0 runs (g * (x * rstd), summed)
            return [(0, n)] if self.elementwise_affine else [(0, 0)]
        if self.elementwise_affine:
            # g and x * rstd are the walk's from the second moment on; the weight's gradient (W) is not alive then
            return [(0, n), (-w, n + r), (-w, 4 * r - n), (-w, 3 * n - r)]
        return [(0, n + r), (0, 4 * r), (0, 4 * n - r)]

    def workspace_uncounted(self, ins: list[Shape], out: Shape, device: str, run: Run = DEFAULT_RUN) -> str | None:
        if device == "cpu" and run.width != 4:
            return ("the temporaries of rmsnorm's composite backward in 16 bits on CPU (torch computes it in fp32, "
                    "up to 4 input-sized fp32 tensors beside the input's gradient)")
        return None

    def build_torch(self, ins: list[Shape]) -> Any:
        from torch import nn

        norm = tuple(int(d) for d in self._normalized(ins[0]))
        return nn.RMSNorm(norm, self.eps, self.elementwise_affine)


class Rotary(Layer):
    """Rotary position embedding of a (..., L, d) input (q or k, per head): no parameters."""

    type: Literal["rotary"]
    base: int = Field(default=10000, ge=2, description="theta's base: angle of feature pair i at position p is p / base^(2i/d) (RoFormer: 10000).")

    def output_shape(self, ins: list[Shape]) -> Shape:
        shape = ins[0]
        if len(shape) < 2:
            raise self.fail(f"expects a (..., L, d) input (positions, then features), got {shape_str(shape)}", "inputs")
        d = as_int(shape[-1])
        if d is not None and d % 2:
            raise self.fail(f"rotates pairs of features: d must be even, got {d}", "inputs")
        return shape

    def ops(self, ins: list[Shape], out: Shape) -> dict[str, Dim]:
        return {"rotary": numel(out)}  # x*cos + rotate_half(x)*sin: one rotation per element

    def saved(self, ins: list[Shape], out: Shape) -> list[Saved]:
        pos = ins[0][-2:]  # (L, d): one table of angles for every head and sample
        return [
            Saved.new("cos", pos, "x*cos: its gradient is cos", batched=False),
            Saved.new("sin", pos, "rotate_half(x)*sin: its gradient is sin", batched=False),
        ]

    def output_storage(self, ins: list[Shape]) -> str:
        # x*cos + rotate_half(x)*sin: TensorIterator lays the result out as x (review s9 #6: LLaMA's q and k, transposed
        # to (heads, L, d), stay physically (L, heads, d), strides (L*h, d, h, 1) measured), so flash attention's output,
        # laid out as q, is transposed back and merged by views
        return "like_input"

    def build_torch(self, ins: list[Shape]) -> Any:
        from ..torch.extra_modules import Rotary as RotaryModule

        return RotaryModule(self.base)


LAYERS: list[type[Layer]] = [Embedding, RMSNorm, Rotary]
