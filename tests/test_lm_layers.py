"""Layers of language models: embedding, tied weights, rmsnorm, rotary, causal and grouped-query
attention, SwiGLU; each against a torch model built from the spec."""

from __future__ import annotations

from typing import Any

import pytest
import sympy
from conftest import net

from archcalc import SpecError, analyze, parse_spec

V, D, L = 100, 32, 16


def lm(layers: list[dict[str, Any]], length: int | str = L) -> dict[str, Any]:
    return {"name": "t", "input": [length], "layers": [{"name": "wte", "type": "embedding", "num_embeddings": V, "embedding_dim": D}, *layers]}


def verify(spec: dict[str, Any]) -> None:
    pytest.importorskip("torch")
    from archcalc.torch.verify import verify_spec

    result = verify_spec(spec)
    assert result.ok, result.render_text()


def test_embedding_shapes_params_and_no_macs() -> None:
    rep = analyze(parse_spec(lm([])))
    row = rep.row("wte")
    assert row.output_shape == (L, D)
    assert row.params == V * D
    assert row.macs == 0 and row.ops == {"lookup": L * D}  # a lookup, not arithmetic
    assert row.activation_bytes == L * D * 4


def test_positions_and_zeros_do_not_depend_on_the_ids() -> None:
    spec = lm(
        [
            {"name": "wpe", "type": "embedding", "num_embeddings": 64, "embedding_dim": D, "indices": "positions", "inputs": ["input"]},
            {"name": "tt", "type": "embedding", "num_embeddings": 2, "embedding_dim": D, "indices": "zeros", "inputs": ["input"]},
            {"name": "sum", "type": "add", "inputs": ["wte", "wpe", "tt"]},
        ]
    )
    rep = analyze(parse_spec(spec))
    assert rep.row("wpe").params == 64 * D and rep.row("wpe").output_shape == (L, D)
    assert rep.row("tt").params == 2 * D
    verify(spec)
    with pytest.raises(SpecError, match="65 positions but a table of 64") as e:
        analyze(parse_spec(spec), input_shape=[65])
    assert e.value.layer == "wpe"


def test_tied_head_counted_once_and_shared_in_torch() -> None:
    spec = lm([{"name": "ln", "type": "layernorm"}, {"name": "head", "type": "linear", "out_features": V, "bias": False, "tie_weight": "wte"}])
    rep = analyze(parse_spec(spec))
    assert rep.row("head").params == 0 and rep.totals["params"] == V * D + 2 * D  # table once, LayerNorm weight and bias
    assert rep.row("head").macs == L * D * V  # the head still computes
    assert "wte's weight (tied): counted once, there" in (rep.row("head").note or "")
    verify(spec)
    pytest.importorskip("torch")
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    model = build_module(compile_spec(parse_spec(spec)), device="meta")
    assert model.layer("head").weight is model.layer("wte").weight


@pytest.mark.parametrize(
    ("tie", "message"),
    [("nope", "unknown reference 'nope'"), ("head", "must be another layer"), ("ln", "its weight is 100×32 but ln's weight is 32")],
)
def test_bad_ties_are_refused(tie: str, message: str) -> None:
    spec = lm([{"name": "ln", "type": "layernorm"}, {"name": "head", "type": "linear", "out_features": V, "tie_weight": tie}])
    with pytest.raises(SpecError, match=message) as e:
        analyze(parse_spec(spec))
    assert e.value.layer == "head" and e.value.field == "tie_weight"


def test_rmsnorm_and_rotary() -> None:
    spec = lm(
        [
            {"name": "norm", "type": "rmsnorm", "eps": 1e-5},
            {"name": "heads", "type": "reshape", "shape": [L, 4, 8]},
            {"name": "t", "type": "transpose", "dim0": 1, "dim1": 2},
            {"name": "rope", "type": "rotary"},
        ]
    )
    rep = analyze(parse_spec(spec))
    assert rep.row("norm").params == D  # a scale per feature, no bias (Zhang & Sennrich 2019)
    assert rep.row("norm").ops == {"rmsnorm": L * D, "rmsnorm_affine": L * D}
    assert rep.row("rope").params == 0 and rep.row("rope").ops == {"rotary": 4 * L * 8}
    assert rep.row("rope").macs == 0
    verify(spec)
    odd = lm([{"name": "heads", "type": "reshape", "shape": [L, 32, 1]}, {"name": "rope", "type": "rotary"}])
    with pytest.raises(SpecError, match="d must be even"):
        analyze(parse_spec(odd))


def attention(heads: int, kv_heads: int, causal: bool, length: int | str = L) -> dict[str, Any]:
    """q from a linear of heads*d, k and v of kv_heads*d, d = 8, then sdpa (GQA when kv_heads < heads)."""
    d = 8
    layers: list[dict[str, Any]] = []
    for t, n in (("q", heads), ("k", kv_heads), ("v", kv_heads)):
        layers += [
            {"name": f"{t}_proj", "type": "linear", "out_features": n * d, "bias": False, "inputs": ["wte"]},
            {"name": f"{t}_heads", "type": "reshape", "shape": [-1, n, d]},
            {"name": f"{t}_t", "type": "transpose", "dim0": 1, "dim1": 2},
        ]
    gqa = kv_heads != heads
    layers.append({"name": "sdpa", "type": "scaled_dot_product_attention", "is_causal": causal, "enable_gqa": gqa, "inputs": ["q_t", "k_t", "v_t"]})
    return lm(layers, length)


def test_causal_attention_is_a_convention() -> None:
    spec = attention(4, 4, causal=True)
    full = 4 * L * L * 8 * 2  # heads x L x L scores, each a dot product of d = 8, twice (q k^T, then the values)
    kept = 4 * (L * (L + 1) // 2) * 8 * 2  # query i reads i + 1 keys
    assert analyze(parse_spec(spec), convention="torch").row("sdpa").macs == full  # FlopCounterMode counts the full L x L
    assert analyze(parse_spec(spec), convention="kaplan").row("sdpa").macs == kept
    assert analyze(parse_spec(attention(4, 4, causal=False)), convention="kaplan").row("sdpa").macs == full
    verify(spec)
    sym = analyze(parse_spec(attention(4, 4, causal=True, length="s")), convention="kaplan")
    s = sympy.Symbol("s", integer=True, positive=True)
    assert sympy.expand(sym.row("sdpa").macs - 4 * s * (s + 1) // 2 * 8 * 2) == 0


def written_out(queries: int | str, keys: int | str, length: int | str = L) -> dict[str, Any]:
    """Causal attention written out (nanoGPT without flash) on 4 heads of d = 8: the first ``queries``
    positions against the first ``keys`` (k used as v too): q @ k^T, scaled, causal_mask, softmax, @ v."""
    return {"name": "w", "input": [4, length, 8], "layers": [
        {"name": "q", "type": "slice", "dim": 2, "end": queries},  # torch's dim (the batch axis counts): (4, Lq, 8)
        {"name": "k", "type": "slice", "dim": 2, "end": keys, "inputs": ["input"]},
        {"name": "kt", "type": "transpose", "dim0": -2, "dim1": -1},
        {"name": "scores", "type": "matmul", "causal": "scores", "inputs": ["q", "kt"]},
        {"name": "scaled", "type": "scalar", "op": "mul", "value": 0.125},
        {"name": "mask", "type": "causal_mask"},
        {"name": "p", "type": "softmax", "dim": -1},
        {"name": "ctx", "type": "matmul", "causal": "weights", "inputs": ["p", "k"]},
    ]}  # fmt: skip


@pytest.mark.parametrize(("queries", "keys", "pairs"), [(L, L, L * (L + 1) // 2), (3, L, 1 + 2 + 3), (L, 3, 1 + 2 + 3 + (L - 3) * 3)])
def test_causal_matmuls_written_out_are_a_convention_too(queries: int, keys: int, pairs: int) -> None:
    """The matmuls around a causal mask count as sdpa's is_causal does: torch all queries x keys scores,
    kaplan the kept (query, key) pairs only (query i reads min(i + 1, S) keys: top-left aligned)."""
    spec = written_out(queries, keys)
    for convention, n in (("torch", queries * keys), ("kaplan", pairs)):
        rep = analyze(parse_spec(spec), convention=convention)
        assert (rep.row("scores").macs, rep.row("ctx").macs) == (4 * n * 8, 4 * n * 8)  # heads x pairs x d, each product
    assert analyze(parse_spec(spec)).row("mask").ops == {"mask": 4 * queries * keys}  # one select per score
    assert "'kaplan' does not" in (analyze(parse_spec(spec)).row("scores").note or "")
    verify(spec)


def test_causal_matmuls_with_a_symbolic_length() -> None:
    s = sympy.Symbol("s", integer=True, positive=True)
    rep = analyze(parse_spec(written_out("s", "s", "s")), convention="kaplan")
    assert sympy.expand(rep.row("scores").macs - 4 * s * (s + 1) / 2 * 8) == 0
    assert sympy.expand(rep.totals["macs"] - 2 * 4 * s * (s + 1) / 2 * 8) == 0


@pytest.mark.parametrize(("heads", "kv_heads"), [(4, 4), (4, 2), (4, 1)])
def test_grouped_query_attention(heads: int, kv_heads: int) -> None:
    spec = attention(heads, kv_heads, causal=False)
    rep = analyze(parse_spec(spec), convention="torch")
    assert rep.row("k_proj").params == D * kv_heads * 8  # fewer key/value heads: smaller projections
    assert rep.row("sdpa").output_shape == (heads, L, 8)
    assert rep.row("sdpa").macs == 2 * heads * L * L * 8  # every query head still scores every key
    verify(spec)


def test_gqa_heads_must_divide() -> None:
    with pytest.raises(SpecError, match="not a multiple"):
        analyze(parse_spec(attention(4, 3, causal=False)))


def test_swiglu_mlp() -> None:
    # LLaMA's MLP (Shazeer 2020, "GLU variants improve Transformer"): down(silu(gate(x)) * up(x))
    spec = lm(
        [
            {"name": "gate", "type": "linear", "out_features": 64, "bias": False},
            {"name": "act", "type": "silu"},
            {"name": "up", "type": "linear", "out_features": 64, "bias": False, "inputs": ["wte"]},
            {"name": "mul", "type": "mul", "inputs": ["act", "up"]},
            {"name": "down", "type": "linear", "out_features": D, "bias": False},
        ]
    )
    rep = analyze(parse_spec(spec), convention="torch")
    assert rep.totals["params"] == V * D + 3 * D * 64
    assert rep.totals["macs"] == 3 * L * D * 64
    verify(spec)


def test_embedding_needs_a_positive_table() -> None:
    with pytest.raises(SpecError):
        net([{"type": "embedding", "num_embeddings": 0, "embedding_dim": 4}], input=[3])


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_saved_tensors_equal_autograd(device: str) -> None:
    # what autograd keeps for the backward: the ids (int64, 8 bytes each), arange(L) once for the
    # batch, RMSNorm's input, 1/rms per row and x/rms, rotary's cos and sin tables (L x D, once)
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_graph
    from archcalc.passes import params, saved_tensors, shapes
    from archcalc.torch.build import build_module
    from archcalc.torch.saved import measure_saved

    spec = lm(
        [
            {"name": "wpe", "type": "embedding", "num_embeddings": 64, "embedding_dim": D, "indices": "positions", "inputs": ["input"]},
            {"name": "sum", "type": "add", "inputs": ["wte", "wpe"]},
            {"name": "norm", "type": "rmsnorm"},
            {"name": "rope", "type": "rotary"},
        ]
    )
    G = compile_graph(parse_spec(spec))
    shapes(G)
    params(G)
    saved_tensors(G, 4, 2)
    analytic = sum(G.nodes[n]["saved_bytes"] for n in G.graph["order"])
    ids, positions = 2 * L * 8, L * 8
    rmsnorm = (2 * L * D + 2 * L + 2 * L * D) * 4  # x, 1/rms, x/rms
    rotary = 2 * (L * D * 4)  # cos, sin
    assert analytic == ids + positions + rmsnorm + rotary
    model = build_module(G, device=device)
    assert measure_saved(model, torch.zeros(2, L, dtype=torch.long, device=device)).total == analytic
