"""Tokens taken after multi-head causal attention laid out as GPT-2's and LLaMA's (review s9,
finding 1): the heads are split off by a reshape to (L, a, d) and a transpose to (a, L, d), sdpa
runs causal, and a transpose and a reshape bring (L, h) back.  Output i of causal attention reads
tokens 0..i, so token j of every later layer that maps token j to token j (c_proj, the residual
add, the norms, the MLP) sees tokens 0..j: a select of token 0 sees token 0 only, a slice 0..2 sees
tokens 0..2.  Each field is checked against torch's input gradients (the module archcalc builds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import cli

from archcalc import analyze, parse_spec


def _gpt_block(p: str, x: str, h: int = 8, a: int = 2) -> list[dict[str, Any]]:
    """GPT-2's block (specs/transformer_lm.json's gpt_block): a fused c_attn split by chunk, heads by reshape + transpose."""
    layers: list[dict[str, Any]] = [
        {"name": f"{p}ln_1", "type": "layernorm", "inputs": [x]},
        {"name": f"{p}c_attn", "type": "linear", "out_features": 3 * h},
    ]
    for i, z in enumerate("qkv"):
        layers += [
            {"name": f"{p}{z}", "type": "chunk", "chunks": 3, "index": i, "dim": -1, "inputs": [f"{p}c_attn"]},
            {"name": f"{p}{z}h", "type": "reshape", "shape": [-1, a, h // a]},
            {"name": f"{p}{z}t", "type": "transpose", "dim0": 1, "dim1": 2},
        ]
    return [
        *layers,
        {"name": f"{p}sdpa", "type": "scaled_dot_product_attention", "is_causal": True, "inputs": [f"{p}qt", f"{p}kt", f"{p}vt"]},
        {"name": f"{p}merge_t", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": f"{p}merge", "type": "reshape", "shape": [-1, h]},
        {"name": f"{p}c_proj", "type": "linear", "out_features": h},
        {"name": f"{p}add_1", "type": "add", "inputs": [x, f"{p}c_proj"]},
        {"name": f"{p}ln_2", "type": "layernorm"},
        {"name": f"{p}c_fc", "type": "linear", "out_features": 4 * h},
        {"name": f"{p}gelu", "type": "gelu"},
        {"name": f"{p}mlp_proj", "type": "linear", "out_features": h},
        {"name": f"{p}add_2", "type": "add", "inputs": [f"{p}add_1", f"{p}mlp_proj"]},
    ]


def _llama_block(p: str, x: str, h: int = 8, a: int = 2) -> list[dict[str, Any]]:
    """LLaMA's block (specs/llama2_7b.json's): q, k, v projections, rotary on q and k, a SwiGLU MLP."""
    layers: list[dict[str, Any]] = [{"name": f"{p}norm_1", "type": "rmsnorm", "inputs": [x]}]
    for z in "qkv":
        layers += [
            {"name": f"{p}{z}_proj", "type": "linear", "out_features": h, "bias": False, "inputs": [f"{p}norm_1"]},
            {"name": f"{p}{z}h", "type": "reshape", "shape": [-1, a, h // a]},
            {"name": f"{p}{z}t", "type": "transpose", "dim0": 1, "dim1": 2},
        ]
        if z != "v":
            layers.append({"name": f"{p}{z}_rot", "type": "rotary"})
    return [
        *layers,
        {"name": f"{p}sdpa", "type": "scaled_dot_product_attention", "is_causal": True, "inputs": [f"{p}q_rot", f"{p}k_rot", f"{p}vt"]},
        {"name": f"{p}merge_t", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": f"{p}merge", "type": "reshape", "shape": [-1, h]},
        {"name": f"{p}o_proj", "type": "linear", "out_features": h, "bias": False},
        {"name": f"{p}add_1", "type": "add", "inputs": [x, f"{p}o_proj"]},
        {"name": f"{p}norm_2", "type": "rmsnorm"},
        {"name": f"{p}gate", "type": "linear", "out_features": 16, "bias": False},
        {"name": f"{p}act", "type": "silu"},
        {"name": f"{p}up", "type": "linear", "out_features": 16, "bias": False, "inputs": [f"{p}norm_2"]},
        {"name": f"{p}mul", "type": "mul", "inputs": [f"{p}act", f"{p}up"]},
        {"name": f"{p}down", "type": "linear", "out_features": h, "bias": False},
        {"name": f"{p}add_2", "type": "add", "inputs": [f"{p}add_1", f"{p}down"]},
    ]


def _decoder(block: Any, take: dict[str, Any]) -> dict[str, Any]:
    """8 tokens of 8 features, two blocks, then ``take`` along the tokens and a linear."""
    layers = [*block("h0.", "input"), *block("h1.", "h0.add_2")]
    layers += [{"name": "take", **take, "inputs": ["h1.add_2"]}, {"name": "fc", "type": "linear", "out_features": 3}]
    return {"name": "dec", "input": [8, 8], "layers": layers}


def _tokens_read(spec: dict[str, Any], upto: str | None = None) -> list[int]:
    """Input tokens (axis 0 of an (L, F) input, axis 1 of a (C, L) one) with a nonzero gradient of ``upto``'s output."""
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    names = [x["name"] for x in spec["layers"]]
    layers = spec["layers"][: names.index(upto) + 1] if upto else spec["layers"]
    torch.manual_seed(0)
    model = build_module(compile_spec(parse_spec({**spec, "layers": layers})), device="cpu", dtype=torch.float64).eval()
    x = torch.randn(1, *spec["input"], dtype=torch.float64, requires_grad=True)
    model(x).sum().backward()
    g = x.grad[0].abs()
    return torch.nonzero(g.sum(1) if spec["input"][0] == 8 else g.sum(0)).flatten().tolist()


TAKES = [
    ({"type": "select", "dim": 1, "index": 0}, 1),  # token 0 sees token 0 only
    ({"type": "select", "dim": 1, "index": 4}, 5),  # token 4: tokens 0..4
    ({"type": "slice", "dim": 1, "start": 0, "end": 3}, 3),  # tokens 0..2: the last of them sees 0..2
    ({"type": "slice", "dim": 1, "start": 1, "end": 6, "step": 2}, 6),  # tokens 1, 3, 5: token 5 sees 0..5
    ({"type": "select", "dim": 1, "index": -1}, 8),  # the last token sees all 8
]


@pytest.mark.parametrize("block", [_gpt_block, _llama_block], ids=["gpt2", "llama"])
@pytest.mark.parametrize(("take", "tokens"), TAKES)
def test_tokens_taken_after_multi_head_causal_blocks(block: Any, take: dict[str, Any], tokens: int) -> None:
    spec = _decoder(block, take)
    assert len(_tokens_read(spec)) == tokens
    rep = analyze(parse_spec(spec))
    for name in ("take", "fc"):
        row = rep.row(name)
        assert row.receptive_field == (tokens,) and not row.rf_approximate, (name, row)
        assert row.whole_input is (tokens == 8)
    # inside the blocks the chunks of the fused c_attn are pieces of the features: no note, no approximation
    assert not any(r.rf_approximate for r in rep.rows), [r.name for r in rep.rows if r.rf_approximate]


REVIEW_SPEC: dict[str, Any] = {"name": "ch", "input": [8, 8], "layers": [
    {"name": "q", "type": "linear", "out_features": 8, "inputs": ["input"]},
    {"name": "k", "type": "linear", "out_features": 8, "inputs": ["input"]},
    {"name": "v", "type": "linear", "out_features": 8, "inputs": ["input"]},
    {"name": "qh", "type": "reshape", "shape": [-1, 2, 4], "inputs": ["q"]},
    {"name": "qt", "type": "transpose", "dim0": 1, "dim1": 2},
    {"name": "kh", "type": "reshape", "shape": [-1, 2, 4], "inputs": ["k"]},
    {"name": "kt", "type": "transpose", "dim0": 1, "dim1": 2},
    {"name": "vh", "type": "reshape", "shape": [-1, 2, 4], "inputs": ["v"]},
    {"name": "vt", "type": "transpose", "dim0": 1, "dim1": 2},
    {"name": "att", "type": "scaled_dot_product_attention", "is_causal": True, "inputs": ["qt", "kt", "vt"]},
    {"name": "mt", "type": "transpose", "dim0": 1, "dim1": 2},
    {"name": "m", "type": "reshape", "shape": [-1, 8]},
    {"name": "take", "type": "slice", "dim": 1, "start": 0, "end": 3},
    {"name": "fc", "type": "linear", "out_features": 3},
]}


@pytest.mark.parametrize(
    ("take", "claim", "tokens"),
    [
        ({"type": "slice", "dim": 1, "start": 0, "end": 3}, "fc.rf=3", [0, 1, 2]),  # review: "WRONG fc.rf=3: exact 8"
        ({"type": "select", "dim": 1, "index": 0}, "fc.rf=1", [0]),
    ],
)
def test_check_on_the_reviews_spec(tmp_path: Path, take: dict[str, Any], claim: str, tokens: list[int]) -> None:
    spec = json.loads(json.dumps(REVIEW_SPEC))
    spec["layers"][12] = {"name": "take", **take}
    assert _tokens_read(spec) == tokens
    path = tmp_path / "ch.json"
    path.write_text(json.dumps(spec))
    out = cli("check", str(path), claim)
    assert out.code == 0 and "1 correct" in out.out, out.out + out.err
    out = cli("check", str(path), "fc.rf=whole")
    assert out.code == 1 and "WRONG" in out.out, out.out + out.err


CONV_ATT: dict[str, Any] = {"name": "conv-att", "input": [4, 10], "layers": [
    {"name": "c1", "type": "conv1d", "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"name": "tr", "type": "transpose", "dim0": 1, "dim1": 2},
    {"name": "qkv", "type": "linear", "out_features": 24},
    *[{"name": z, "type": "chunk", "chunks": 3, "dim": 2, "index": i, "inputs": ["qkv"]} for i, z in enumerate("qkv")],
    *[x for z in "qkv" for x in (
        {"name": f"{z}h", "type": "reshape", "shape": [-1, 2, 4], "inputs": [z]},
        {"name": f"{z}t", "type": "transpose", "dim0": 1, "dim1": 2},
    )],
    {"name": "att", "type": "scaled_dot_product_attention", "is_causal": True, "inputs": ["qt", "kt", "vt"]},
    {"name": "mt", "type": "transpose", "dim0": 1, "dim1": 2},
    {"name": "m", "type": "reshape", "shape": [-1, 8]},
    {"name": "proj", "type": "linear", "out_features": 8},
    {"name": "res", "type": "add", "inputs": ["tr", "proj"]},
    {"name": "take", "type": "slice", "dim": 1, "start": 0, "end": 4},
    {"name": "tb", "type": "transpose", "dim0": 1, "dim1": 2},
    {"name": "c2", "type": "conv1d", "out_channels": 4, "kernel_size": 3, "padding": 1},
]}


def test_a_conv_after_tokens_taken_is_marked_approximate_not_exact() -> None:
    """conv1d -> attention -> tokens 0..3 -> conv1d (the review's related case).  Token 3 sees c1's
    outputs 0..3, positions -1..4 with c1's padding: 6 (torch: positions 0..4).  After the take,
    token j sees the prefix up to j: fields of different lengths that no sliding grid describes, so
    c2's field (torch: at most 0..4) is shown as a bound, marked approximate, not as an exact 8."""
    rep = analyze(parse_spec(CONV_ATT))
    assert rep.row("take").receptive_field == (6,) and not rep.row("take").rf_approximate
    assert rep.row("tb").receptive_field == (6,) and not rep.row("tb").rf_approximate
    assert _tokens_read(CONV_ATT, "take") == [0, 1, 2, 3, 4]
    assert _tokens_read(CONV_ATT, "c2") == [0, 1, 2, 3, 4]
    c2 = rep.row("c2")
    assert c2.rf_approximate and not c2.whole_input and c2.receptive_field[0] >= 6
    assert not rep.row("q").rf_approximate  # a chunk of the features is no window over the tokens


def test_a_strided_take_that_reaches_the_last_token_is_approximate() -> None:
    """Tokens 1, 3, 5, 7 (a slice with step 2): the last sees all 8, but token j of it sees 0..2j+1:
    a select of its token 0 (torch: tokens 0..1) is not followed, so it is marked approximate."""
    spec = _decoder(_gpt_block, {"type": "slice", "dim": 1, "start": 1, "step": 2})
    spec["layers"].insert(-1, {"name": "first", "type": "select", "dim": 1, "index": 0})
    assert _tokens_read(spec) == [0, 1]
    rep = analyze(parse_spec(spec))
    assert rep.row("take").rf_approximate and rep.row("first").rf_approximate and rep.row("fc").rf_approximate


def test_explain_says_a_chunk_of_the_features_leaves_the_tokens_in_place(tmp_path: Path) -> None:
    path = tmp_path / "ca.json"
    path.write_text(json.dumps(CONV_ATT))
    out = cli("explain", str(path), "q")
    assert out.code == 0 and "pointwise along it: unchanged = 3" in out.out, out.out + out.err
    assert "cyclic roll" not in out.out
