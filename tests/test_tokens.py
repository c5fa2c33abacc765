"""Token sequences and attention (issue 11): the new layer types' formulas, by hand.

Shapes are per sample, torch's layout without the batch axis.  Expected values are the arithmetic
a reader writes from torch's docs (torch.nn.LayerNorm, torch.nn.MultiheadAttention,
torch.nn.functional.scaled_dot_product_attention) and torch's own FLOP formulas
(torch/utils/flop_counter.py: bmm = 2*b*n*m*k FLOPs, sdpa = 2*b*h*L*S*(E + Ev) FLOPs).
"""

from __future__ import annotations

import pytest
from conftest import cli, net

from archcalc import parse_spec
from archcalc.errors import SpecError


def one(layer: dict, shape: tuple, **kw):  # type: ignore[no-untyped-def]
    return net([{"name": "x", **layer}], shape, **kw).row("x")


CASES = [
    # (input, layer, output shape, params, torch-convention MACs)
    # LayerNorm(768) on ViT-B's 197 tokens: weight + bias of 768; no MACs (FlopCounterMode counts none)
    ((197, 768), {"type": "layernorm"}, (197, 768), 768 + 768, 0),
    ((197, 768), {"type": "layernorm", "normalized_shape": 768, "bias": False}, (197, 768), 768, 0),
    ((4, 6, 8), {"type": "layernorm", "normalized_shape": [6, 8]}, (4, 6, 8), 2 * 6 * 8, 0),
    ((4, 6, 8), {"type": "layernorm", "elementwise_affine": False}, (4, 6, 8), 0, 0),
    ((32, 7, 7), {"type": "groupnorm", "num_groups": 8}, (32, 7, 7), 32 + 32, 0),
    ((3, 4, 5), {"type": "permute", "dims": [0, 2, 3, 1]}, (4, 5, 3), 0, 0),
    ((768, 196), {"type": "transpose", "dim0": 1, "dim1": 2}, (196, 768), 0, 0),
    ((768, 196), {"type": "transpose", "dim0": -1, "dim1": -2}, (196, 768), 0, 0),
    ((768, 14, 14), {"type": "reshape", "shape": [768, -1]}, (768, 14 * 14), 0, 0),
    ((197, 2304), {"type": "view", "shape": [197, 3, 12, 64]}, (197, 3, 12, 64), 0, 0),
    ((56, 56, 96), {"type": "roll", "shifts": [-3, -3], "dims": [1, 2]}, (56, 56, 96), 0, 0),
    ((197, 768), {"type": "select", "dim": 1, "index": 0}, (768,), 0, 0),
    ((56, 56, 96), {"type": "slice", "dim": 1, "start": 1, "step": 2}, (28, 56, 96), 0, 0),
    ((64, 10), {"type": "slice", "dim": 1, "end": 16}, (16, 10), 0, 0),
    ((197, 768), {"type": "mean", "dim": 1}, (768,), 0, 0),
    ((768, 7, 7), {"type": "mean", "dim": [-2, -1], "keepdim": True}, (768, 1, 1), 0, 0),
    ((96, 56, 56), {"type": "layerscale"}, (96, 56, 56), 96, 0),
    ((197, 768), {"type": "layerscale", "dim": -1}, (197, 768), 768, 0),
    ((197, 768), {"type": "stochasticdepth", "p": 0.1}, (197, 768), 0, 0),
    ((197, 768), {"type": "droppath", "p": 0.1}, (197, 768), 0, 0),
    ((197, 3072), {"type": "gelu", "approximate": "tanh"}, (197, 3072), 0, 0),
    # matmul (12, 197, 64) @ (12, 64, 197): 12*197*197 outputs, each a dot product of 64
    ((12, 197, 64), {"type": "matmul", "inputs": ["input", "t"]}, (12, 197, 197), 0, 12 * 197 * 197 * 64),
    # ViT-B/16's self-attention: 197 tokens of 768, 12 heads of 64.
    # projections 4 x 197*768*768 (q, k, v, out), attention 2*heads*L*S*d = 2*12*197*197*64
    ((197, 768), {"type": "multiheadattention", "num_heads": 12}, (197, 768), 3 * 768 * 768 + 3 * 768 + 768 * 768 + 768,
     4 * 197 * 768 * 768 + 2 * 12 * 197 * 197 * 64),
]


@pytest.mark.parametrize(("shape", "layer", "out", "params", "macs"), CASES, ids=lambda v: v.get("type") if isinstance(v, dict) else None)
def test_token_layer_formulas(shape, layer, out, params, macs) -> None:  # type: ignore[no-untyped-def]
    layers = [{"name": "x", **layer}]
    if layer["type"] == "matmul":
        layers = [{"name": "t", "type": "transpose", "dim0": -2, "dim1": -1, "inputs": ["input"]}, {"name": "x", **layer}]
    row = net(layers, shape, convention="torch").row("x")
    assert row.output_shape == out
    assert row.params == params
    assert row.macs == macs


def test_sdpa_counts_two_products_and_the_softmax_apart() -> None:
    # q (12, 197, 64), k (12, 50, 64), v (12, 50, 32): q k^T is 12*197*50 dot products of 64, the
    # weighted sum 12*197*32 dot products of 50
    rep = net(
        [
            {"name": "q", "type": "reshape", "shape": [12, 197, 64], "inputs": ["input"]},
            {"name": "k", "type": "parameter", "shape": [12, 50, 64]},
            {"name": "v", "type": "parameter", "shape": [12, 50, 32]},
            {"name": "a", "type": "scaled_dot_product_attention", "inputs": ["q", "k", "v"]},
        ],
        (197, 768),
        convention="torch",
    )
    row = rep.row("a")
    assert row.output_shape == (12, 197, 32)
    assert row.macs == 12 * 197 * 50 * 64 + 12 * 197 * 50 * 32
    assert row.ops["softmax"] == 12 * 197 * 50  # one per score, not a MAC under any convention
    assert rep.row("k").params == 12 * 50 * 64


def test_causal_attention_is_counted_in_full_and_says_so() -> None:
    layers = [{"name": "a", "type": "scaled_dot_product_attention", "is_causal": True, "inputs": ["input", "input", "input"]}]
    row = net(layers, (4, 16, 8), convention="torch").row("a")
    assert row.macs == 2 * 4 * 16 * 16 * 8
    assert "causal" in (row.note or "")


def test_multiheadattention_with_kdim_vdim_has_separate_projections() -> None:
    # torch: q_proj_weight (E, E), k_proj_weight (E, kdim), v_proj_weight (E, vdim), in_proj_bias (3E)
    rep = net(
        [
            {"name": "k", "type": "parameter", "shape": [10, 16]},
            {"name": "v", "type": "parameter", "shape": [10, 8]},
            {"name": "a", "type": "multiheadattention", "num_heads": 4, "kdim": 16, "vdim": 8, "inputs": ["input", "k", "v"]},
        ],
        (5, 32),
        convention="torch",
    )
    row = rep.row("a")
    assert row.weights == {"q_proj_weight": (32, 32), "k_proj_weight": (32, 16), "v_proj_weight": (32, 8), "in_proj_bias": (96,),
                           "out_proj.weight": (32, 32), "out_proj.bias": (32,)}
    # q 5*32*32, k 10*16*32, v 10*8*32, out 5*32*32; attention 2 * 4 heads * 5 * 10 * (32/4)
    assert row.macs == 5 * 32 * 32 + 10 * 16 * 32 + 10 * 8 * 32 + 5 * 32 * 32 + 2 * 4 * 5 * 10 * 8


def test_parameter_enters_the_graph_and_the_concat_add_count() -> None:
    rep = net(
        [
            {"name": "cls", "type": "parameter", "shape": [1, 8]},
            {"name": "cat", "type": "concat", "inputs": ["cls", "input"], "dim": 1},
            {"name": "pos", "type": "parameter", "shape": [5, 8]},
            {"name": "x", "type": "add", "inputs": ["cat", "pos"]},
        ],
        (4, 8),
    )
    assert [r.params for r in rep.rows] == [8, 0, 5 * 8, 0]
    assert rep.row("cat").output_shape == (5, 8)
    assert rep.row("x").ops["add"] == 5 * 8
    assert rep.row("cls").receptive_field == ()  # a learned tensor sees no input
    assert rep.row("cls").inputs == []


def test_layer_argument_errors_name_the_field() -> None:
    bad = [
        ((3, 4), {"type": "permute", "dims": [1, 0, 2]}, "dims", "batch axis"),
        ((3, 4), {"type": "permute", "dims": [0, 1]}, "dims", "needs 3 dims"),
        ((3, 4), {"type": "transpose", "dim0": 0, "dim1": 1}, "dim0", "not a per-sample axis"),
        ((3, 4), {"type": "reshape", "shape": [5, -1]}, "shape", "does not divide"),
        ((3, 4), {"type": "layernorm", "normalized_shape": 3}, "normalized_shape", "trailing"),
        ((30, 4), {"type": "groupnorm", "num_groups": 4}, "num_groups", "not divisible"),
        ((3, 10), {"type": "multiheadattention", "num_heads": 4}, "num_heads", "not divisible"),
        ((3, 4), {"type": "select", "dim": 1, "index": 3}, "index", "out of range"),
    ]
    for shape, layer, field, words in bad:
        with pytest.raises(SpecError, match=words) as e:
            one(layer, shape)
        assert e.value.field == field, layer
    with pytest.raises(SpecError, match="inner sizes"):
        net([{"name": "m", "type": "matmul", "inputs": ["input", "input"]}], (3, 4))
    with pytest.raises(ValueError, match="only one entry may be -1"):
        parse_spec({"name": "t", "input": [4], "layers": [{"type": "reshape", "shape": [-1, -1]}]})


# ----- receptive field: attention sees the whole input ----------------------------------------------
def vit_like(patch: int = 4) -> list[dict]:
    return [
        {"name": "patch", "type": "conv2d", "out_channels": 16, "kernel_size": patch, "stride": patch},
        {"name": "flat", "type": "flatten", "start_dim": 2},
        {"name": "tok", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "ln", "type": "layernorm"},
        {"name": "attn", "type": "multiheadattention", "num_heads": 2},
        {"name": "res", "type": "add", "inputs": ["tok", "attn"]},
        {"name": "fc", "type": "linear", "out_features": 16},
    ]


def test_attention_gives_every_output_the_whole_input() -> None:
    rep = net(vit_like(), (3, 32, 24))
    assert rep.row("ln").receptive_field == (4, 4)  # one patch
    # every token sees every pixel a patch covers: 32/4 = 8 patches of 4 tall, 24/4 = 6 of 4 wide
    assert rep.row("attn").receptive_field == (32, 24)
    assert rep.row("res").receptive_field == (32, 24)  # the residual path's patch lies inside it
    assert rep.row("fc").receptive_field == (32, 24)
    assert "whole input" in (rep.row("attn").note or "")


def test_whole_input_is_what_the_patches_cover() -> None:
    # 30 rows in 4-pixel patches: 7 patches cover rows 0..27, the last 2 rows are never read
    rep = net(vit_like(), (3, 30, 24))
    assert rep.row("attn").receptive_field == (7 * 4, 24)


def test_symbolic_whole_input() -> None:
    rep = net(vit_like(), (3, "H", "W"))
    import sympy

    H, W = sympy.symbols("H W", positive=True, integer=True)
    rf = rep.row("attn").receptive_field
    for got, size in zip(rf, (H, W), strict=True):
        for v in (32, 30, 33):
            assert sympy.sympify(got).subs({H: v, W: v}) == 4 * (v // 4), (got, size, v)


def test_explain_says_attention_sees_the_whole_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    p = tmp_path / "v.json"
    p.write_text(json.dumps({"name": "v", "input": [3, 32, 24], "layers": vit_like()}))
    r = cli("explain", str(p), "attn")
    assert r.code == 0, r.err
    assert "mixes every position: the whole input" in r.out
    assert "32\u00d724" in r.out
    r = cli("explain", str(p), "tok")
    assert r.code == 0, r.err


def test_mean_over_tokens_mixes_positions_and_over_space_is_a_window() -> None:
    tokens = net([*vit_like(), {"name": "pool", "type": "mean", "dim": 1, "inputs": ["tok"]}], (3, 32, 24))
    assert tokens.row("pool").receptive_field == (32, 24)
    spatial = net([{"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
                   {"name": "m", "type": "mean", "dim": [2, 3]}], (3, 8, 6))
    # like a global average pool: 3 + (8 - 1) * 1 = 10 rows (padding counted), 3 + 5 = 8 columns
    assert spatial.row("m").receptive_field == (3 + 7, 3 + 5)
    assert spatial.row("m").output_shape == (4,)


def test_token_specs_analyse_symbolically_and_agree_with_numbers() -> None:
    sym = net(vit_like(), (3, "H", "W"), convention="torch")
    num = net(vit_like(), (3, 32, 24), convention="torch")
    import sympy

    subs = {sympy.Symbol("H", positive=True, integer=True): 32, sympy.Symbol("W", positive=True, integer=True): 24}
    for a, b in zip(sym.rows, num.rows, strict=True):
        assert sympy.sympify(a.macs).subs(subs) == b.macs, a.name
        assert tuple(sympy.sympify(d).subs(subs) for d in a.output_shape) == b.output_shape, a.name


def test_parameter_takes_its_shape_from_an_input_and_sees_nothing() -> None:
    # torchvision's ViT: pos_embedding (1, L + 1, D) is added to the tokens; sized like them
    rep = net([{"name": "pos", "type": "parameter", "inputs": ["input"]}, {"name": "x", "type": "add", "inputs": ["input", "pos"]}], (197, 768))
    assert rep.row("pos").params == 197 * 768
    assert rep.row("pos").receptive_field == ()
    with pytest.raises(SpecError, match="takes 0 to 1 input"):
        net([{"name": "p", "type": "parameter", "inputs": ["input", "input"]}], (4, 8))
    with pytest.raises(SpecError, match="needs a shape") as e:
        net([{"name": "p", "type": "parameter"}, {"name": "x", "type": "add", "inputs": ["input", "p"]}], (4, 8))
    assert e.value.field == "shape"
