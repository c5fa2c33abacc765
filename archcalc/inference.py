"""Inference costs of a language model: the prompt's prefill, one decode step with a KV cache, the cache.

    archcalc inference specs/gpt2.json --cache 1024
    archcalc inference specs/transformer_lm.json --cache S      # formulas in S

* **KV cache**: every attention layer keeps the keys and values of each position it has seen
  (``Layer.cached_per_position``: heads_kv x d for k, the same for v).  At length S, for l layers
  of n_kv heads of d: 2*l*S*n_kv*d elements, times the dtype's bytes.  Grouped-query attention
  (n_kv < heads) and multi-query attention (n_kv = 1) shrink it by heads / n_kv.  Attention written out caches the
  k of its ``"causal": "scores"`` matmul (q k^T) and the v of its ``"causal": "weights"`` one (att v).
* **Prefill**: the spec as written, the prompt of L tokens in one forward (its MACs under the
  convention); it reads every weight once (of an embedding, the rows its ids gather: at most
  batch x L, at most the table) and writes the cache of L positions.
* **Decode step**: one new token, attending to the S cached positions and itself.  Its MACs are
  the spec's at one token (every weighted layer: about the number of weights), with each
  attention layer's products over S + 1 keys instead of 1.  It reads every weight (params x dtype
  bytes) but of an embedding only the rows it gathers (``Layer.weights_read``: one row per
  sequence of the token table, the new position's row of a learned position table; a table a
  tied head reads is read in full), and the cache of S positions, and writes one position:
  bytes per generated token.
* Only decoders: the input must be token ids (one axis, read by an embedding); an image network
  (ViT's 3 x 224 x 224) has no token axis to generate along and is refused, and so is an encoder
  (BERT: every attention attends both ways), which does not generate token by token.
* **Roofline**: arithmetic intensity = FLOPs / bytes.  A decode step does about one multiply-add
  per weight it reads for each sample of the batch (2 x batch / bytes-per-element FLOP per byte):
  at batch 1 far below the ridge point (peak FLOP/s / bandwidth) of any current accelerator, so
  its time is the time to read the weights and the cache: it is memory-bound.  A large batch can
  make it compute-bound at a short cache; a long cache (one multiply-add per cached element read)
  makes it memory-bound again.  Prefill multiplies every weight by L tokens: L times the
  intensity, compute-bound for long prompts.  A formula in one symbol is judged at both ends.

Every value is exact (int or sympy expression); batch N multiplies the MACs and the cache, not
the weights (read once per step for the whole batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .conventions import dtype_bytes, get_convention
from .dims import Dim, dim_text, expand, human_text, is_symbolic, known_sign, simplify, to_json
from .errors import SpecError
from .graph import INPUT, compile_graph, node_table
from .report import Report, cached_per_position, memory_attention, report_from_graph
from .spec import Architecture

# ridge points (peak dense FLOP/s / memory bandwidth) of two current accelerators, from their
# datasheets: A100 SXM 80GB (312 TFLOP/s bf16, 2.039 TB/s); H100 SXM (989 TFLOP/s bf16, 3.35 TB/s)
RIDGES = {"A100": Fraction(312_000, 2_039), "H100": Fraction(989_000, 3_350)}


@dataclass(frozen=True)
class InferenceCosts:
    name: str
    convention: str
    dtype: str
    batch: Dim
    prompt: Dim
    """Tokens the prefill processes (the spec's input length)."""
    cache: Dim
    """S: positions in the KV cache when the decode step runs."""
    params: Dim
    kv_per_position: Dim
    """Elements every attention layer together keeps per position (keys and values), per sample."""
    prefill_macs: Dim
    decode_macs: Dim
    weight_bytes: Dim
    """Every weight (params x dtype bytes): the model's size."""
    kv_cache_bytes: Dim
    """The cache at S positions, for the batch."""
    decode_bytes: Dim
    """Bytes one decode step moves: the weights it reads, the cache read, one position written."""
    prefill_bytes: Dim
    decode_weight_bytes: Dim = 0
    """The weights one decode step reads: every weight but the rows an embedding does not gather
    (one row per generated token of the token table, one of a learned position table)."""
    prefill_weight_bytes: Dim = 0
    """The weights the prefill reads: the token table's rows of the prompt's ids (at most the table)."""
    gathered: list[str] = field(default_factory=list)
    """The embeddings read by rows (a table another layer reads in full, a tied head, is read in full)."""
    attention: list[str] = field(default_factory=list)
    """The rows that keep keys and values."""
    attention_layers: Dim = 0
    """How many attention layers run (a row of a block repeated l times counts l)."""
    notes: list[str] = field(default_factory=list)
    """What the figures assume that the network may not do (an encoder has no decoding; a cache
    past the learned position table)."""

    @property
    def decode_flops(self) -> Dim:
        return 2 * self.decode_macs

    @property
    def prefill_flops(self) -> Dim:
        return 2 * self.prefill_macs

    def intensity(self, flops: Dim, nbytes: Dim) -> Any:
        """FLOPs per byte: a Fraction, or a sympy expression."""
        if is_symbolic(flops) or is_symbolic(nbytes):
            import sympy

            return sympy.cancel(sympy.sympify(flops) / sympy.sympify(nbytes))
        return Fraction(int(flops), int(nbytes))

    def verdict(self, intensity: Any, phase: str = "decode") -> str:
        """Memory- or compute-bound, against the ridge points of current accelerators (RIDGES).

        A formula in one symbol (the cache length S, the prompt length) is judged at its smallest
        value and as it grows, where the two ends may differ (a large batch: compute-bound at a
        short cache, memory-bound at a long one); a formula in several symbols is judged only
        where the weights dominate, at 2 x batch FLOPs per weight read, when that is a number."""
        if isinstance(intensity, Fraction):
            return _bound(intensity)
        import sympy

        free = sorted(intensity.free_symbols, key=str)
        if len(free) == 1:
            x = free[0]
            low = 0 if phase == "decode" and x in getattr(self.cache, "free_symbols", ()) else 1
            start = sympy.nsimplify(intensity.subs(x, low))
            # an embedding's rows read, Min(ids, table) (ids growing with x), is the table as x grows: sympy's limit cannot take Min
            grown = intensity.replace(lambda e: isinstance(e, sympy.Min), lambda e: _fixed_part(e, x))
            end = sympy.limit(grown, x, sympy.oo)
            first = f"at {x} = {low}, {_bound(Fraction(int(start.p), int(start.q)))}" if start.is_Rational else f"at {x} = {low}: not a number"
            if end.is_Rational:
                last = f"as {x} grows (toward {float(end):.3g} FLOP/byte), {_bound(Fraction(int(end.p), int(end.q)), short=True)}"
            else:
                last = f"as {x} grows, without bound: compute-bound"
            return f"{first}; {last}"
        if phase == "decode":
            per_weight = sympy.Rational(2, dtype_bytes(self.dtype)) * sympy.sympify(self.batch)
            each = "one multiply-add per weight read for each of the batch's samples"
            where = f"where the weights dominate, {each} is {human_text(per_weight)} FLOP/byte"
            if per_weight.is_Rational:
                return f"{where}: {_bound(Fraction(int(per_weight.p), int(per_weight.q)), short=True)}"
            return f"{where}: compare it with the ridge points of current accelerators ({_RIDGES_TEXT} FLOP/byte)"
        return (
            f"about {dim_text(self.prompt)} times the decode step's intensity (each weight read once serves every prompt token): "
            "compute-bound for long prompts"
        )

    def to_json(self) -> dict[str, Any]:
        dec_i, pre_i = self.intensity(self.decode_flops, self.decode_bytes), self.intensity(self.prefill_flops, self.prefill_bytes)
        return {
            "name": self.name,
            "convention": self.convention,
            "dtype": self.dtype,
            "batch": to_json(self.batch),
            "prompt": to_json(self.prompt),
            "cache": to_json(self.cache),
            "params": to_json(self.params),
            "kv_per_position": to_json(self.kv_per_position),
            "kv_cache_bytes": to_json(self.kv_cache_bytes),
            "attention_rows": self.attention,
            "attention_layers": to_json(self.attention_layers),
            "notes": self.notes,
            "prefill": {"macs": to_json(self.prefill_macs), "flops": to_json(self.prefill_flops),
                        "weight_bytes_read": to_json(self.prefill_weight_bytes), "bytes": to_json(self.prefill_bytes),
                        "intensity": _intensity_json(pre_i), "bound": self.verdict(pre_i, "prefill")},
            "decode": {"macs": to_json(self.decode_macs), "flops": to_json(self.decode_flops), "weight_bytes": to_json(self.weight_bytes),
                       "weight_bytes_read": to_json(self.decode_weight_bytes), "bytes": to_json(self.decode_bytes),
                       "intensity": _intensity_json(dec_i), "bound": self.verdict(dec_i)},
        }  # fmt: skip


def _fixed_part(m: Any, x: Any) -> Any:
    """Min(a, b) as ``x`` grows, where one argument grows with ``x`` (the ids of a batch) and the
    other does not (the table's rows): the other; else the Min itself."""
    fixed = [a for a in m.args if x not in a.free_symbols]
    return fixed[0] if len(fixed) == 1 and len(m.args) == 2 else m


_ATTENTION_TYPES = frozenset({"scaled_dot_product_attention", "multiheadattention"})
"""Layer types that are attention; attention written out is matmuls around a softmax (:func:`_written_attention`)."""


def _written_attention(nodes: dict[str, dict[str, Any]]) -> set[str]:
    """The matmuls of attention written out: the weights times v (a matmul whose first input is a softmax's output,
    through dropout) and the scores that softmax normalizes (a matmul, q k^T, through a scale or a mask); import reads
    the same pattern under a causal mask (``Matmul.causal``).  Any other matmul (no softmax between) is no attention."""

    def source(name: str, kind: str, through: tuple[str, ...]) -> str | None:
        """The layer of type ``kind`` that ``name`` is, or comes from through one-input layers of the types ``through``."""
        for _ in range(8):  # (a few layers between, at most)
            layer = nodes[name].get("layer")
            if layer is None:  # (the network's input)
                return None
            if layer.kind == kind:
                return name
            if layer.kind not in through or len(nodes[name]["inputs"]) != 1:
                return None
            name = nodes[name]["inputs"][0]
        return None

    found = set()
    for name, node in nodes.items():
        if node.get("layer") is not None and node["layer"].kind == "matmul":
            softmax = source(node["inputs"][0], "softmax", ("dropout", "identity"))
            if softmax is not None:
                scores = source(nodes[softmax]["inputs"][0], "matmul", ("scalar", "causal_mask"))
                found |= {name} if scores is None else {name, scores}
    return found
_RIDGES_TEXT = ", ".join(f"{n} {float(r):.0f}" for n, r in RIDGES.items())


def _bound(intensity: Fraction, short: bool = False) -> str:
    """The verdict on a number of FLOPs per byte: below every ridge point, above every one, or between."""
    at = f"{float(intensity):.3g} FLOP/byte"
    below = [n for n, r in RIDGES.items() if intensity < r]
    ridges = f"the ridge point of current accelerators ({_RIDGES_TEXT} FLOP/byte)"
    if len(below) == len(RIDGES):
        return "memory-bound" if short else f"memory-bound: {at} is below {ridges}"
    if not below:
        return "compute-bound" if short else f"compute-bound: {at} is above {ridges}"
    between = f"between the ridge points of current accelerators ({_RIDGES_TEXT} FLOP/byte)"
    return between if short else f"{at}: {between}"


def _intensity_json(v: Any) -> Any:
    if isinstance(v, Fraction):
        return f"{v.numerator}/{v.denominator}" if v.denominator != 1 else v.numerator
    return dim_text(v)


def _per_token_input(arch: Architecture, values: dict[str, int]) -> tuple[list[int | str], dict[str, int]]:
    """The spec's input with its sequence axis set to one token (a symbol in it is set to 1 too)."""
    first = arch.input[0]
    if isinstance(first, str):
        if not first.isidentifier():
            raise SpecError(f"the sequence length {first!r} must be a number or one symbol for a decode step", field="input")
        return [1, *arch.input[1:]], {**values, first: 1}
    return [1, *arch.input[1:]], values


def _reads_token_ids(G: Any) -> bool:
    """True when the network's input is token ids: one axis, read by a layer that takes indices
    (an embedding).  An image's (C, H, W) is not: its first axis is no sequence to decode along."""
    if len(G.graph["input_shape"]) != 1:
        return False
    nodes = node_table(G)
    return any(INPUT in d["inputs"] and d["layer"] is not None and d["layer"].takes_indices for d in nodes.values())


def _weights_read(rep: Report, G: Any, batch: Dim) -> tuple[Dim, list[str]]:
    """The weight elements one forward of ``G`` reads, of the prompt's weights ``rep``: every
    parameter but the rows an embedding does not gather; a table another layer uses (a tied
    head) is read in full.  Returns the elements and the names of the layers read only in part.
    (``G`` is the prompt's graph, or the decode step's, where the sequence is one position.)"""
    nodes = node_table(G)
    shared = {src for n in G.graph.get("tied", ()) for src in nodes[n]["tied"].values()}
    total: Dim = rep.totals["params"]
    partial = []
    for row in rep.counted_rows:
        node = nodes[row.name]
        if row.params == 0 or row.name in shared:
            continue
        read = node["layer"].weights_read(node["in_shapes"], batch)
        if read is None or read == row.params:
            continue
        partial.append(row.name)
        total = total - (row.params - read) * row.repeat
    return expand(total), partial


def inference_costs(
    arch: Architecture,
    cache: Dim | None = None,
    *,
    convention: str = "torch",
    dtype: str = "float16",
    batch: Dim = 1,
    values: dict[str, int] | None = None,
) -> InferenceCosts:
    """Prefill, decode-step and KV-cache costs of a decoder (see the module docstring)."""
    values = dict(values or {})
    conv = get_convention(convention)
    nbytes = dtype_bytes(dtype)
    whole = compile_graph(arch, values=values)  # the prompt's graph (the decode step's below has one position)
    if not _reads_token_ids(whole):
        given = "×".join(map(dim_text, whole.graph["input_shape"]))
        raise SpecError(
            f"{arch.name} takes a {given} input, not token ids: inference is for decoders (token ids into an embedding, "
            "attention inside), and a step of one token along the input's first axis means nothing here",
            field="input",
        )
    full = report_from_graph(whole, convention=convention, dtype=dtype, batch=batch)
    shape, one_values = _per_token_input(arch, values)
    G = compile_graph(arch, values=one_values, input_shape=shape)
    step = report_from_graph(G, convention=convention, dtype=dtype, batch=batch)
    nodes = node_table(G)
    prompt = full.input_shape[0]
    s = prompt if cache is None else cache
    kv: Dim = 0
    decode: Dim = 0
    attention = []
    token_memo: dict[str, bool] = {}  # (which nodes read the tokens: one walk of the graph for every attention)
    for row in step.counted_rows:
        node = nodes[row.name]
        per = cached_per_position(nodes, row.name, token_memo)
        if per == 0:
            decode = decode + row.macs * row.repeat
            continue
        attention.append(row.name)
        kv = kv + per * row.repeat
        # one query: its products over the S cached keys and its own, S + 1 where the spec had 1 (attention written out:
        # its two causal matmuls, q k^T and the weights times v)
        scaled = {k: v * (s + 1) if k.startswith("attn_matmul") or k == "matmul" else v for k, v in row.ops.items()}
        decode = decode + conv.macs(scaled, row.type, node["layer"].function) * row.repeat
    written = _written_attention(nodes)
    seen = [r.name for r in step.counted_rows if r.type in _ATTENTION_TYPES or r.name in written]
    memory = [n for n in seen if memory_attention(nodes, n, token_memo)]  # keys and values that are weights: nothing per position
    if not attention:
        why = "nothing is cached between tokens (inference is for decoders: token ids in, attention inside)"
        if memory and len(memory) == len(seen):
            them = ", ".join(memory[:3]) + (" ..." if len(memory) > 3 else "")
            raise SpecError(
                f"{arch.name}'s attention ({them}) attends only to a learned memory (its keys and values are weights, "
                f"not the tokens), so {why}"
            )
        if seen:  # attention that is not causal (written out without a mask, sdpa without is_causal): review s9 #12
            them = ", ".join(seen[:3]) + (" ..." if len(seen) > 3 else "")
            raise SpecError(f"{arch.name}'s attention ({them}) is not causal (no causal mask, no is_causal), so {why}")
        raise SpecError(f"{arch.name} has no attention layer: {why}")
    notes = []
    bidirectional = [n for n in attention if nodes[n]["layer"].__dict__.get("is_causal") is False]
    if bidirectional and len(bidirectional) == len(attention):  # BERT: an encoder, no decode step to price
        raise SpecError(
            f"{arch.name} is an encoder: its attention attends both ways ({bidirectional[0]} is not causal), so it does not "
            "generate token by token and has no decode step or KV cache to price (a decoder's attention says is_causal: true)",
            field="is_causal", layer=bidirectional[0],
        )
    if bidirectional:
        notes.append(
            f"{bidirectional[0]} attends both ways (not causal): an encoder does not generate token by token, so its "
            "decode step is that of a decoder of the same sizes, not something this network does"
        )
    for name in memory:
        keys = nodes[name]["in_shapes"][1]
        notes.append(
            f"{name} attends to a learned memory ({nodes[name]['inputs'][1]}): its keys and values are weights, the same "
            f"at every position, so it keeps nothing per position and a decode step's query reads its {dim_text(keys[-2])} rows"
        )
    for name in whole.graph["order"]:  # (the sizes as the spec and --set give them: the step's graph sets the sequence to 1)
        layer = whole.nodes[name]["layer"]
        rows = layer.__dict__.get("num_embeddings") if layer.__dict__.get("indices") == "positions" else None
        if isinstance(rows, int) and known_sign(s + 1 - rows) == 1:
            where = f"after a cache of {dim_text(s)} the next token is at position {dim_text(s)}, past its table"
            notes.append(f"{name} learns {rows:,} positions (0 to {rows - 1:,}): {where}")
    params = full.totals["params"]
    weight_bytes = params * nbytes
    prefill_read, _ = _weights_read(full, whole, batch)
    decode_read, gathered = _weights_read(full, G, batch)
    kv_bytes = expand(kv * s * nbytes * batch)
    return InferenceCosts(
        name=arch.name,
        convention=conv.name,
        dtype=dtype,
        batch=batch,
        prompt=prompt,
        cache=s,
        params=params,
        kv_per_position=expand(kv),
        prefill_macs=full.totals["macs"],
        decode_macs=expand(decode),
        weight_bytes=simplify(weight_bytes),
        kv_cache_bytes=kv_bytes,
        decode_bytes=expand(decode_read * nbytes + kv * (s + 1) * nbytes * batch),
        prefill_bytes=expand(prefill_read * nbytes + kv * prompt * nbytes * batch),
        decode_weight_bytes=expand(decode_read * nbytes),
        prefill_weight_bytes=expand(prefill_read * nbytes),
        gathered=gathered,
        attention=attention,
        # (attention written out is two causal matmuls, one attention layer: counted at its scores' product)
        attention_layers=simplify(sum((step.row(n).repeat for n in attention if nodes[n]["layer"].__dict__.get("causal") != "weights"), start=0)),
        notes=notes,
    )


def render_inference(c: InferenceCosts, fmt: str = "text") -> str:
    if fmt == "json":
        import json

        return json.dumps(c.to_json(), indent=2) + "\n"
    from .render import units

    def count(v: Dim) -> str:
        return units.exact(v)

    def size(v: Dim) -> str:
        return f"{units.exact(v)} B" + ("" if is_symbolic(simplify(v)) else f" ({units.size(v)})")

    dec_i, pre_i = c.intensity(c.decode_flops, c.decode_bytes), c.intensity(c.prefill_flops, c.prefill_bytes)
    per = "" if c.batch == 1 else f" (batch {dim_text(c.batch)})"
    cache = dim_text(c.cache)
    # --cache S (or 2*S): "at S positions", not "at S = S positions"
    at = cache if "S" in {str(x) for x in getattr(c.cache, "free_symbols", ())} else f"S = {cache}"
    prefill_bound, decode_bound = c.verdict(pre_i, "prefill"), c.verdict(dec_i, "decode")
    layers = "attention layer" if c.attention_layers == 1 else "attention layers"
    lines = [
        f"{c.name}: inference in {c.dtype}, MACs by the '{c.convention}' convention{per}",
        "",
        f"KV cache: {count(c.kv_per_position)} elements per position per sample ({dim_text(c.attention_layers)} {layers}, keys and values)",
        f"  at {at} positions: {size(c.kv_cache_bytes)}",
        f"prefill of {dim_text(c.prompt)} tokens: MACs {count(c.prefill_macs)}, FLOPs {count(c.prefill_flops)}",
        f"  bytes (the weights it reads + the cache written): {size(c.prefill_bytes)}",
        f"  intensity {_intensity_text(pre_i)} FLOP/byte: {prefill_bound}",
        f"decode step, {at} cached positions (one generated token): MACs {count(c.decode_macs)}, FLOPs {count(c.decode_flops)}",
        f"  bytes (weights read {size(c.decode_weight_bytes)} + the cache read + one position written): {size(c.decode_bytes)}",
        *([f"  (the weights are {size(c.weight_bytes)}; of {', '.join(c.gathered)} a step reads only the rows of its tokens)"] if c.gathered else []),
        f"  intensity {_intensity_text(dec_i)} FLOP/byte: {decode_bound}",
        *(f"note: {n}" for n in c.notes),
    ]
    return "\n".join(lines) + "\n"


def _intensity_text(v: Any) -> str:
    return f"{float(v):.3g}" if isinstance(v, Fraction) else human_text(v)  # (powers as ^, as the tables write them)


__all__ = ["InferenceCosts", "inference_costs", "render_inference"]
