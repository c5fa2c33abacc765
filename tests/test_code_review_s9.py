"""The code review of session 9 (/work/notes/closing-s9.md, "Left from that review"): what check
reads as a function no size may be named, and one implementation of each formula function."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli, write_json

# ----- a size never has the name of a function a claim may call ------------------------------------


@pytest.mark.parametrize("name", ["max", "min", "ceil", "Max", "floor"])
def test_a_size_named_like_a_claim_function_is_refused_at_load(tmp_path: Path, name: str) -> None:
    # was accepted for max, min and ceil: a claim c.rf=max(k, 3) then read max as the size, not the function
    spec = {"name": "fn", "input": [3, name, 8], "layers": [{"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 3}]}
    path = write_json(tmp_path, spec, "fn.json")
    r = cli("table", path)
    assert r.code == 2 and r.out == "" and r.err.count("\n") == 1, r.err
    assert r.err.startswith(f"archcalc: error: {path}: field 'input': {name!r} uses the name {name!r}, which archcalc's formulas use "
                            "as a function, or a claim may call (Abs, ceil, ceiling, Eq, floor, Max, max, Min, min, Mod, Piecewise)"), r.err


def test_a_layer_field_named_like_a_claim_function_names_the_layer(tmp_path: Path) -> None:
    spec = {"name": "fn", "input": [3, 8, 8], "layers": [{"name": "c", "type": "conv2d", "out_channels": "min", "kernel_size": 3}]}
    path = write_json(tmp_path, spec, "fn.json")
    r = cli("table", path)
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert r.err.startswith(f"archcalc: error: {path}: layer 'c': field 'out_channels': 'min' uses the name 'min'"), r.err


def test_every_function_a_claim_may_call_is_a_reserved_size_name() -> None:
    from archcalc.dims import CLAIM_FUNCTIONS, RESERVED_NAMES, DimError, check_expr

    assert set(CLAIM_FUNCTIONS) <= RESERVED_NAMES
    for name in RESERVED_NAMES:
        with pytest.raises(DimError, match=f"uses the name {name!r}"):
            check_expr(f"2*{name}")


# ----- one exact value per formula function: a claim's numbers and the evaluator of formulas --------


@pytest.mark.parametrize(("claim", "formula", "value"), [
    ("floor(7/2)", "floor(H/2)", 3),  # 7 // 2 = 3
    ("ceil(7/2)", "ceiling(H/2)", 4),  # -(-7 // 2) = 4
    ("Max(7, 3, 5)", "Max(H, 3, 5)", 7),
    ("min(7, 3)", "Min(H, 3)", 3),
    ("Mod(-7, 3)", "Mod(-H, 3)", 2),  # sympy's Mod takes the divisor's sign: -7 = 3*(-3) + 2
])
def test_a_claims_numbers_and_the_formula_evaluator_agree(claim: str, formula: str, value: int) -> None:
    import sympy

    from archcalc.check import _formula, exact_evaluator

    H = sympy.Symbol("H", positive=True, integer=True)
    assert _formula(claim) == value
    assert exact_evaluator(sympy.sympify(formula, locals={"H": H}))({"H": 7}) == value


# ----- inference names as attention only the products of attention ---------------------------------
EMB = {"name": "emb", "type": "embedding", "num_embeddings": 10, "embedding_dim": 8}
QKV = [{"name": n, "type": "linear", "out_features": 8, "inputs": ["emb"]} for n in "qkv"]
KT = {"name": "kt", "type": "transpose", "dim0": 1, "dim1": 2, "inputs": ["k"]}


def test_inference_on_a_matmul_that_is_no_attention_says_there_is_none(tmp_path: Path) -> None:
    # q k^T then times v, with no softmax between: products of activations, not attention (was "pm's attention (s, o) is not causal")
    spec = {"name": "pm", "input": [8], "layers": [EMB, *QKV, KT, {"name": "s", "type": "matmul", "inputs": ["q", "kt"]},
                                                   {"name": "o", "type": "matmul", "inputs": ["s", "v"]},
                                                   {"name": "head", "type": "linear", "out_features": 10}]}
    r = cli("inference", write_json(tmp_path, spec))
    assert r.code == 2 and r.out == "" and r.err.count("\n") == 1, r.err
    assert "pm has no attention layer: nothing is cached between tokens" in r.err, r.err


def test_inference_names_only_the_products_of_attention_that_is_not_causal(tmp_path: Path) -> None:
    # scores scaled by 1/sqrt(8), softmax, dropout, times v: attention written out (s, o); then a gram matrix o^T o: no attention
    spec = {"name": "nc", "input": [8], "layers": [
        EMB, *QKV, KT, {"name": "s", "type": "matmul", "inputs": ["q", "kt"]},
        {"name": "scale", "type": "scalar", "op": "mul", "value": 0.35355}, {"name": "sm", "type": "softmax", "dim": -1},
        {"name": "drop", "type": "dropout", "p": 0.1}, {"name": "o", "type": "matmul", "inputs": ["drop", "v"]},
        {"name": "ot", "type": "transpose", "dim0": 1, "dim1": 2, "inputs": ["o"]},
        {"name": "gram", "type": "matmul", "inputs": ["ot", "o"]}, {"name": "head", "type": "linear", "out_features": 10}]}
    r = cli("inference", write_json(tmp_path, spec))
    assert r.code == 2 and r.out == "" and r.err.count("\n") == 1, r.err
    assert "nc's attention (s, o) is not causal (no causal mask, no is_causal)" in r.err, r.err  # (was "(s, o, gram)")
