"""Receptive fields of an (L, D) sequence of float vectors (README: the token layout) run along its
first axis, the tokens (review s6, finding 4); where the input is read as a (C, L) map instead, the
table says so and marks the field approximate."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import cli, net

from archcalc import analyze, parse_spec


def test_convs_over_the_tokens_after_a_transpose() -> None:
    # Conformer/TCN: (10 tokens, 4 features) -> transpose to (4, 10) -> two conv1d k=3 over the tokens:
    # fields 1 + (3 - 1) = 3 and 3 + (3 - 1) = 5 tokens, exact
    rep = net([{"name": "t", "type": "transpose", "dim0": 1, "dim1": 2},
               {"name": "c", "type": "conv1d", "out_channels": 2, "kernel_size": 3},
               {"name": "c2", "type": "conv1d", "out_channels": 2, "kernel_size": 3}], (10, 4))
    assert [rep.row(n).receptive_field for n in ("t", "c", "c2")] == [(1,), (3,), (5,)]
    assert not any(r.rf_approximate for r in rep.rows)
    torch = pytest.importorskip("torch")
    from archcalc import parse_spec
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    spec = {"name": "t", "input": [10, 4], "layers": [{"name": "t", "type": "transpose", "dim0": 1, "dim1": 2},
            {"name": "c", "type": "conv1d", "out_channels": 2, "kernel_size": 3},
            {"name": "c2", "type": "conv1d", "out_channels": 2, "kernel_size": 3}]}
    torch.manual_seed(0)
    model = build_module(compile_spec(parse_spec(spec)), device="cpu", dtype=torch.float64).eval()
    x = torch.randn(1, 10, 4, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(model(x)[0, :, 2].sum(), x)
    assert torch.nonzero(g.abs().sum(dim=(0, 2))).flatten().tolist() == [2, 3, 4, 5, 6]  # 5 tokens


def test_a_mean_over_the_tokens_sees_all_of_them_not_the_features() -> None:
    # two linear layers on (5 tokens, 8 features), then a mean over the 5 tokens: every output sees all
    # 5 tokens (its field is 5, not the 8 features)
    rep = net([{"name": "l", "type": "linear", "out_features": 8},
               {"name": "l2", "type": "linear", "out_features": 8},
               {"name": "m", "type": "mean", "dim": 1}], (5, 8))
    assert rep.row("l2").receptive_field == (1,)
    assert rep.row("m").receptive_field == (5,) and rep.row("m").whole_input
    # attention over 5 tokens of 16 features reads all 5 positions: whole, not approximate
    rep = net([{"name": "emb", "type": "linear", "out_features": 16},
               {"name": "attn", "type": "multiheadattention", "num_heads": 4}], (5, 6))
    assert rep.row("attn").receptive_field == (5,) and rep.row("attn").whole_input and not rep.row("attn").rf_approximate


def test_an_input_read_channels_first_says_so() -> None:
    # a linear on the last axis, then a mean over that axis and a conv1d over the tokens: the mean's
    # window makes the input read as (C, L); the table says so and marks the field approximate
    rep = net([{"name": "lin", "type": "linear", "out_features": 4},
               {"name": "mf", "type": "mean", "dim": 2, "keepdim": True},
               {"name": "t", "type": "transpose", "dim0": 1, "dim1": 2},
               {"name": "c", "type": "conv1d", "out_channels": 2, "kernel_size": 3}], (10, 4))
    assert "read channels first, as a (C, L) map" in (rep.row("lin").note or "")
    assert all(rep.row(n).rf_approximate for n in ("lin", "mf", "t", "c"))
    # a (C, L) map that a conv1d reads first is not in doubt: no note (a text CNN)
    rep = net([{"name": "c", "type": "conv1d", "out_channels": 2, "kernel_size": 3}], (4, 10))
    assert rep.row("c").receptive_field == (3,) and not rep.row("c").rf_approximate and rep.row("c").note is None


def test_causal_attention_says_only_its_last_output_sees_everything() -> None:
    """Causal attention (review s7 #4): output i reads positions 0..i; the table's 'whole' is the
    last output's field, and the note, the JSON and check's verdict say so (torch's gradients: the
    first output depends on token 0 only, the last on all five)."""
    spec = {"name": "att", "input": [5, 8], "layers": [
        {"name": "q", "type": "linear", "out_features": 24},
        {"name": "qs", "type": "slice", "dim": 2, "end": 8},
        {"name": "ks", "type": "slice", "inputs": ["q"], "dim": 2, "start": 8, "end": 16},
        {"name": "vs", "type": "slice", "inputs": ["q"], "dim": 2, "start": 16, "end": 24},
        {"name": "att", "type": "scaled_dot_product_attention", "inputs": ["qs", "ks", "vs"], "is_causal": True},
        {"name": "out", "type": "linear", "out_features": 8},
    ]}
    rep = analyze(parse_spec(spec))
    att, out = rep.row("att"), rep.row("out")
    assert att.whole_input and att.causal_field and out.causal_field
    assert "output i sees positions 0..i" in (att.note or "")
    assert att.to_json("lecture")["causal_field"] is True
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    model = build_module(compile_spec(parse_spec(spec)), device="cpu", dtype=torch.float64).eval()
    seen = []
    for position in (0, 4):
        x = torch.randn(1, 5, 8, dtype=torch.float64, requires_grad=True)
        model(x)[0, position].sum().backward()
        seen.append(torch.nonzero(x.grad.abs().sum(dim=(0, 2))).flatten().tolist())
    assert seen == [[0], [0, 1, 2, 3, 4]]
    with_mask = cli_check(spec, "att.rf=whole")
    assert with_mask.code == 0 and "output i sees positions 0..i only" in with_mask.out, with_mask.out
    spec["layers"][4]["is_causal"] = False
    assert not analyze(parse_spec(spec)).row("att").causal_field


def cli_check(spec: dict[str, Any], claim: str) -> Any:
    import json
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    return cli("check", f.name, claim)
