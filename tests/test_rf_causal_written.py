"""Tokens taken after causal attention written out (review s10, finding 2): ``q @ k^T`` marked
``causal: "scores"``, a scale, a ``causal_mask``, the softmax over the keys, a dropout, and ``@ v``
marked ``causal: "weights"`` (nanoGPT's ``flash=False``, what ``archcalc import`` makes of it).  Row i
of the masked weights reads query i and keys 0..i, so output i reads tokens 0..i, as sdpa's
``is_causal``: a slice or select of tokens after it sees its prefix (was: the scores' hull, 8, for
every token, so ``check take.rf=3`` said WRONG).  Every field is checked against torch's input
gradients of the module archcalc builds (float64, ``_tokens_read``) and against the sdpa form."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from conftest import cli
from test_rf_causal_heads import TAKES, _decoder, _gpt_block, _tokens_read

from archcalc import analyze, parse_spec

QKV: list[dict[str, Any]] = [
    {"name": "q", "type": "linear", "out_features": 8, "inputs": ["input"]},
    {"name": "k", "type": "linear", "out_features": 8, "inputs": ["input"]},
    {"name": "v", "type": "linear", "out_features": 8, "inputs": ["input"]},
]
WRITTEN: list[dict[str, Any]] = [
    *QKV,
    {"name": "kt", "type": "transpose", "dim0": 1, "dim1": 2, "inputs": ["k"]},
    {"name": "s", "type": "matmul", "causal": "scores", "inputs": ["q", "kt"]},
    {"name": "scale", "type": "scalar", "op": "mul", "value": 1 / math.sqrt(8)},
    {"name": "m", "type": "causal_mask"},
    {"name": "sm", "type": "softmax", "dim": 2},
    {"name": "drop", "type": "dropout", "p": 0.1},
    {"name": "o", "type": "matmul", "causal": "weights", "inputs": ["drop", "v"]},
]
SDPA: list[dict[str, Any]] = [*QKV, {"name": "o", "type": "scaled_dot_product_attention", "is_causal": True, "inputs": ["q", "k", "v"]}]


def _spec(middle: list[dict[str, Any]], take: dict[str, Any], length: int | str = 8) -> dict[str, Any]:
    return {"name": "wo", "input": [length, 8], "layers": [*json.loads(json.dumps(middle)), {"name": "take", **take}]}


def _field(spec: dict[str, Any], name: str = "take") -> tuple[Any, bool, bool]:
    row = analyze(parse_spec(spec)).row(name)
    return row.receptive_field, row.whole_input, row.rf_approximate


ONE_HEAD_TAKES = [
    ({"type": "slice", "dim": 1, "start": 0, "end": 3}, 2 + 1, 3),  # tokens 0..2: the last of them sees 0..2
    ({"type": "select", "dim": 1, "index": 0}, 0 + 1, 1),  # token 0 sees token 0 only
    ({"type": "select", "dim": 1, "index": 4}, 4 + 1, 5),  # tokens 0..4
    ({"type": "select", "dim": 1, "index": -2}, 6 + 1, "s - 1"),  # token 6 = 8 - 2 sees 0..6; token s-2 sees s-1
    ({"type": "slice", "dim": 1, "start": 1, "end": 6, "step": 2}, 5 + 1, 6),  # tokens 1, 3, 5: token 5 sees 0..5
    ({"type": "select", "dim": 1, "index": -1}, 8, "s"),  # the last token sees all 8 (s): the whole input
]


@pytest.mark.parametrize(("take", "tokens", "symbolic"), ONE_HEAD_TAKES)
def test_tokens_taken_after_attention_written_out_see_their_prefix(take: dict[str, Any], tokens: int, symbolic: int | str) -> None:
    spec = _spec(WRITTEN, take)
    assert len(_tokens_read(spec)) == tokens and _tokens_read(spec)[0] == 0  # torch: tokens 0..tokens-1
    assert _field(spec) == ((tokens,), tokens == 8, False)
    assert _field(spec) == _field(_spec(SDPA, take))  # the same as sdpa's is_causal
    # with a symbolic length s (README's convention; review s10 #0 for sdpa): the same as sdpa's, exact
    got = _field(_spec(WRITTEN, take, "s"))
    assert str(got[0][0]) == str(symbolic) and got[1] is (symbolic == "s") and not got[2], got
    assert got == _field(_spec(SDPA, take, "s"))


@pytest.mark.parametrize(("take", "claim"), [
    ({"type": "slice", "dim": 1, "start": 0, "end": 3}, "take.rf=3"),  # review: "WRONG take.rf=3: exact 8"
    ({"type": "select", "dim": 1, "index": 0}, "take.rf=1"),  # review: archcalc 8, torch 1
])
def test_check_on_the_reviews_spec(tmp_path: Path, take: dict[str, Any], claim: str) -> None:
    """The review's wo.json (no scale, no dropout): the note said "positions 0..2" while the field was 8."""
    spec = _spec([x for x in WRITTEN if x["name"] not in ("scale", "drop")], take)
    spec["layers"][-2]["inputs"] = ["sm", "v"]
    assert _tokens_read(spec) == list(range(int(claim.split("=")[1])))
    path = tmp_path / "wo.json"
    path.write_text(json.dumps(spec))
    out = cli("check", str(path), claim)
    tokens = int(claim.split("=")[1])
    assert out.code == 0 and "1 correct" in out.out and f"exact {tokens} " in out.out, out.out + out.err
    assert f"they see the fields of positions 0..{tokens - 1}" in out.out  # the note and the number agree
    out = cli("check", str(path), "take.rf=whole")
    assert out.code == 1 and "WRONG" in out.out, out.out + out.err


def _written_block(p: str, x: str, h: int = 8, a: int = 2) -> list[dict[str, Any]]:
    """GPT-2's block with nanoGPT's attention written out (flash=False): per head, (L, d) @ (d, L) scores."""
    layers = _gpt_block(p, x, h, a)
    at = [x["name"] for x in layers].index(f"{p}sdpa")
    layers[at : at + 1] = [
        {"name": f"{p}kT", "type": "transpose", "dim0": -2, "dim1": -1, "inputs": [f"{p}kt"]},
        {"name": f"{p}scores", "type": "matmul", "causal": "scores", "inputs": [f"{p}qt", f"{p}kT"]},
        {"name": f"{p}scale", "type": "scalar", "op": "mul", "value": 1 / math.sqrt(h // a)},
        {"name": f"{p}mask", "type": "causal_mask"},
        {"name": f"{p}soft", "type": "softmax", "dim": -1},
        {"name": f"{p}drop", "type": "dropout", "p": 0.1},
        {"name": f"{p}sdpa", "type": "matmul", "causal": "weights", "inputs": [f"{p}drop", f"{p}vt"]},
    ]
    return layers


@pytest.mark.parametrize(("take", "tokens"), TAKES)
def test_two_multi_head_blocks_written_out_give_sdpa_s_fields(take: dict[str, Any], tokens: int) -> None:
    """Two GPT-2 blocks (heads split by reshape + transpose): the second block's queries and keys at
    token j see the first's prefix 0..j, so its weights' row i reads tokens 0..i again."""
    spec = _decoder(_written_block, take)
    assert len(_tokens_read(spec)) == tokens
    rep, sdpa = analyze(parse_spec(spec)), analyze(parse_spec(_decoder(_gpt_block, take)))
    for name in ("take", "fc"):
        row = rep.row(name)
        assert row.receptive_field == (tokens,) and not row.rf_approximate and row.whole_input is (tokens == 8), (name, row)
        assert (row.receptive_field, row.whole_input) == (sdpa.row(name).receptive_field, sdpa.row(name).whole_input)
    assert not any(r.rf_approximate for r in rep.rows), [r.name for r in rep.rows if r.rf_approximate]
    # the scores themselves still show the hull of the widest pair (query 7, key 0): 8, not "whole"
    assert rep.row("h0.scores").receptive_field == (8,) and not rep.row("h0.scores").whole_input


def test_nanogpt_without_flash_as_imported_gives_the_same_fields_as_with_flash() -> None:
    """nanoGPT's blocks (tests/lm_models.py) on 16 tokens of 32 features, then ``x[:, :3]`` / ``x[:, 4]``:
    imported with flash=False (matmul, scale, causal_mask, softmax, dropout, matmul) and with sdpa, the
    taken tokens' fields are torch's: 2 + 1 = 3 and 4 + 1 = 5 tokens."""
    torch = pytest.importorskip("torch")
    from lm_models import GPT, GPTConfig

    from archcalc.torch.fx_import import dumps_spec, spec_from_module

    class Blocks(torch.nn.Module):
        def __init__(self, flash: bool, take: Any) -> None:
            super().__init__()
            self.h, self.take = GPT(GPTConfig(vocab_size=100, block_size=32, n_layer=2, n_head=4, n_embd=32, flash=flash)).transformer.h, take

        def forward(self, x: Any) -> Any:
            for block in self.h:
                x = block(x)
            return self.take(x)

    for take, tokens in ((lambda x: x[:, :3], 2 + 1), (lambda x: x[:, 4], 4 + 1)):
        fields = []
        for flash in (True, False):
            torch.manual_seed(0)
            model = Blocks(flash, take).double().eval()
            x = torch.randn(1, 16, 32, dtype=torch.float64, requires_grad=True)
            model(x).sum().backward()
            assert torch.nonzero(x.grad[0].abs().sum(1)).flatten().tolist() == list(range(tokens))
            arch = parse_spec(json.loads(dumps_spec(spec_from_module(model.float(), [16, 32]))))
            assert ("causal_mask" in [layer.kind for layer in arch.layers]) is not flash
            last = analyze(arch).rows[-1]
            fields.append((last.receptive_field, last.whole_input, last.rf_approximate))
        assert fields == [((tokens,), False, False)] * 2, fields


def _reordered(change: str) -> dict[str, Any]:
    layers = json.loads(json.dumps(WRITTEN))
    names = [x["name"] for x in layers]
    if change == "softmax-before-mask":  # row i's softmax reads every key before the mask hides the later ones
        m, sm = names.index("m"), names.index("sm")
        layers[m], layers[sm] = layers[sm], layers[m]
    elif change == "softmax-over-queries":  # weight (i, j) divides by a sum over the queries i' >= j: not a prefix
        layers[names.index("sm")]["dim"] = 1
    elif change == "linear-over-keys":  # after the softmax, a linear over the keys moves weight onto the later ones
        layers.insert(names.index("drop"), {"name": "mix", "type": "linear", "out_features": 8})
    else:  # no causal_mask: nothing hides the later keys (the spec's `causal` fields alone mask nothing in torch)
        del layers[names.index("m")]
    return _spec(layers, {"type": "slice", "dim": 1, "start": 0, "end": 3})


@pytest.mark.parametrize("change", ["softmax-before-mask", "softmax-over-queries", "linear-over-keys", "no-mask"])
def test_weights_not_followed_to_their_queries_and_keys_are_approximate(tmp_path: Path, change: str) -> None:
    """Where the weights' rows are not followed back to query i and keys 0..i, the taken tokens' field
    is shown as the whole input, an upper bound, marked approximate (torch: all 8 tokens here), never an
    exact number; the weights' row says why."""
    spec = _reordered(change)
    assert len(_tokens_read(spec)) == 8
    rep = analyze(parse_spec(spec))
    assert rep.row("take").rf_approximate and rep.row("take").receptive_field == (8,)
    assert "not followed back to the queries and keys" in (rep.row("o").note or "")
    path = tmp_path / "wo.json"
    path.write_text(json.dumps(spec))
    out = cli("check", str(path), "take.rf=3")
    assert out.code == 2 and "cannot judge" in out.out and "attention weights not followed" in out.out, out.out + out.err


def test_a_learned_bias_on_the_scores_keeps_the_prefix() -> None:
    """A learned (L, S) bias added to the scaled scores before the mask (a relative-position bias, as
    T5's or ALiBi's, made from no input pixel) moves no entry: row i still reads query i and keys
    0..i, so tokens 0..2 see 2 + 1 = 3 tokens and token 0 sees 1 (torch)."""
    layers = json.loads(json.dumps(WRITTEN))
    at = [x["name"] for x in layers].index("m")
    layers[at:at] = [{"name": "bias", "type": "parameter", "shape": [8, 8]}, {"name": "biased", "type": "add", "inputs": ["scale", "bias"]}]
    layers[at + 2]["inputs"] = ["biased"]
    for take, tokens in (({"type": "slice", "dim": 1, "start": 0, "end": 3}, 2 + 1), ({"type": "select", "dim": 1, "index": 0}, 0 + 1)):
        spec = _spec(layers, take)
        assert _tokens_read(spec) == list(range(tokens))
        assert _field(spec) == ((tokens,), False, False)
