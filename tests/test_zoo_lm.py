"""Language models in the zoo: published parameter counts, the Megatron and Kaplan polynomials,
and each spec checked against a torch model built from it (meta device: no weights allocated).

Published figures:
* GPT-2 (Radford et al. 2019; sizes from the Hugging Face configs: vocabulary 50257, 1024
  positions): the released checkpoints hold 124,439,808 (small), 354,823,168 (medium) and
  1,557,611,200 (XL) parameters, the output head tied to the token embedding.
* BERT-base (Devlin et al. 2019, "110M"; bert-base-uncased config: vocabulary 30522, 512
  positions, 2 token types): BertModel with its pooler holds 109,482,240.
* LLaMA-2 7B (Touvron et al. 2023, Table 1; Llama-2-7b-hf config: hidden 4096, MLP 11008,
  32 layers, vocabulary 32000, no biases, untied head): 6,738,415,616.
* Megatron-LM (Narayanan et al. 2021, sec. 5.1): forward FLOPs of a GPT with batch B,
  24*B*s*l*h**2*(1 + s/(6h) + V/(12*l*h)) = 24*l*s*h**2 + 4*l*s**2*h + 2*s*h*V at B = 1.
"""

from __future__ import annotations

import json

import pytest
import sympy
from conftest import SPECS, cli

from archcalc import analyze

S = {n: sympy.Symbol(n, integer=True, positive=True) for n in ("s", "h", "l", "a", "V")}


def gpt2_params(h: int, layers: int, vocab: int = 50257, n_ctx: int = 1024) -> int:
    """GPT-2 by hand: token and position embeddings, per layer two LayerNorms (2h each), the QKV
    projection (h x 3h + 3h), the attention output (h x h + h), the MLP (h x 4h + 4h, 4h x h + h);
    the final LayerNorm; the head shares the token embedding."""
    per_layer = 2 * 2 * h + (h * 3 * h + 3 * h) + (h * h + h) + (h * 4 * h + 4 * h) + (4 * h * h + h)
    return vocab * h + n_ctx * h + layers * per_layer + 2 * h


@pytest.mark.parametrize(
    ("spec", "h", "layers", "published"),
    [("gpt2", 768, 12, 124_439_808), ("gpt2_medium", 1024, 24, 354_823_168), ("gpt2_xl", 1600, 48, 1_557_611_200)],
)
def test_gpt2_family_matches_the_released_parameter_counts(spec: str, h: int, layers: int, published: int) -> None:
    assert gpt2_params(h, layers) == published
    rep = analyze(SPECS / f"{spec}.json")
    assert rep.totals["params"] == published
    assert rep.row("lm_head").params == 0  # tied: counted once, at the token embedding
    assert "transformer.wte's weight (tied)" in (rep.row("lm_head").note or "")


def test_gpt2_torch_macs_at_1024_tokens() -> None:
    # per layer: QKV s*h*3h, scores s*s*h, weighted values s*s*h, output s*h*h, MLP 2*s*h*4h; the head s*h*V
    s, h, layers, vocab = 1024, 768, 12, 50257
    per_layer = s * h * 3 * h + 2 * s * s * h + s * h * h + 2 * s * h * 4 * h
    assert layers * per_layer + s * h * vocab == 145_824_153_600
    assert analyze(SPECS / "gpt2.json", convention="torch").totals["macs"] == 145_824_153_600


def test_bert_base_with_pooler() -> None:
    h, layers = 768, 12
    embeddings = 30522 * h + 512 * h + 2 * h + 2 * h  # word, position, token type, LayerNorm
    per_layer = 3 * (h * h + h) + (h * h + h) + 2 * h + (h * 4 * h + 4 * h) + (4 * h * h + h) + 2 * h
    pooler = h * h + h
    assert embeddings + layers * per_layer + pooler == 109_482_240
    assert analyze(SPECS / "bert_base.json").totals["params"] == 109_482_240


def test_llama2_7b() -> None:
    h, ffn, layers, vocab = 4096, 11008, 32, 32000
    per_layer = 4 * h * h + 3 * h * ffn + 2 * h  # q, k, v, o; gate, up, down; two RMSNorm weights
    assert vocab * h + layers * per_layer + h + h * vocab == 6_738_415_616  # embedding, layers, final norm, head
    rep = analyze(SPECS / "llama2_7b.json")
    assert rep.totals["params"] == 6_738_415_616
    assert rep.row("model.layers.0.self_attn.q_rot").params == 0  # rotary: no parameters


def test_transformer_lm_prints_megatrons_polynomial() -> None:
    r = cli("table", str(SPECS / "transformer_lm.json"), "--format", "json", "--convention", "torch")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["totals"]["flops"] == "24*l*s*h**2 + 4*l*s**2*h + 2*s*h*V"
    s, h, layers, a, vocab = S["s"], S["h"], S["l"], S["a"], S["V"]
    megatron = 24 * s * layers * h**2 * (1 + s / (6 * h) + vocab / (12 * layers * h))
    locals_ = {n: S.get(n, sympy.Symbol(n)) for n in doc["symbols"]}
    assert sympy.expand(sympy.sympify(doc["totals"]["flops"], locals=locals_) - megatron) == 0
    # weights 12*l*h**2 + 13*l*h (QKV, output, MLP and their biases, two LayerNorms), positions s*h,
    # token embedding h*V (the head shares it), final LayerNorm 2h
    assert doc["totals"]["params"] == "12*l*h**2 + 13*l*h + s*h + h*V + 2*h"
    assert a.name not in doc["totals"]["flops"]  # a heads of h/a each: the heads cancel out of the count


def test_transformer_lm_at_gpt2_sizes_is_gpt2() -> None:
    sizes = {"s": 1024, "h": 768, "l": 12, "a": 12, "V": 50257}
    lm = analyze(SPECS / "transformer_lm.json", convention="torch", values=sizes)
    gpt2 = analyze(SPECS / "gpt2.json", convention="torch")
    assert lm.totals == gpt2.totals
    assert len(lm.rows) == len(gpt2.rows)


def test_transformer_lm_symbolic_activation_memory_is_its_numeric_one() -> None:
    # review s8 #6: the q/k/v head reshapes (s, h) -> (s, a, h/a) only split the feature axis
    # (a * (h/a) = h), a view in torch (nanoGPT writes .view there): 0 B, as with --set and in gpt2.
    # Per block, float32 outputs of s*h values (4 B each): ln_1 1 + c_attn 3 + sdpa 1 + merge 1 (a copy
    # of the transposed heads) + c_proj 1 + add_1 1 + ln_2 1 + c_fc 4 + gelu 4 + c_proj 1 + add_2 1 = 19;
    # outside the blocks wte, wpe, their sum and ln_f (4 of s*h) and lm_head (s*V)
    s, h, layers, vocab = S["s"], S["h"], S["l"], S["V"]
    per_block = 1 + 3 + 1 + 1 + 1 + 1 + 1 + 4 + 4 + 1 + 1
    rep = analyze(SPECS / "transformer_lm.json")
    assert sympy.expand(rep.totals["activation_bytes"] - (4 * per_block * layers * s * h + 4 * 4 * s * h + 4 * s * vocab)) == 0
    assert all(r.activation_bytes == 0 for r in rep.rows if r.name.endswith(("q_heads", "k_heads", "v_heads")))
    sizes = {"s": 1024, "h": 768, "l": 12, "a": 12, "V": 50257}
    at_sizes = rep.totals["activation_bytes"].subs({S[k]: v for k, v in sizes.items() if k in S})
    assert at_sizes == analyze(SPECS / "transformer_lm.json", values=sizes).totals["activation_bytes"]
    assert at_sizes == analyze(SPECS / "gpt2.json").totals["activation_bytes"] == 935_661_568


def test_kaplan_counts_the_causal_triangle() -> None:
    # Kaplan et al. 2020, Table 1: C_forward ~ 2N + 2*n_layer*n_ctx*d_attn FLOPs per token, N = 12*l*h**2
    # the non-embedding weights; counted exactly, query i reads i + 1 keys: s*(s + 1)/2 pairs per head
    rep = analyze(SPECS / "transformer_lm.json", convention="kaplan")
    s, h, layers, vocab = S["s"], S["h"], S["l"], S["V"]
    want = 12 * layers * s * h**2 + layers * s * (s + 1) * h + s * h * vocab
    assert sympy.expand(sympy.sympify(rep.totals["macs"]) - want) == 0
    per_token = sympy.expand(2 * want / s)
    assert sympy.expand(per_token - (2 * 12 * layers * h**2 + 2 * layers * (s + 1) * h + 2 * h * vocab)) == 0


def test_gpt2_cost_as_a_polynomial_in_s() -> None:
    rep = analyze(SPECS / "gpt2.json", convention="torch", input_shape=["s"])
    s = S["s"]
    # 12 layers x (12*s*768**2 + 2*s**2*768) + s*768*50257
    assert sympy.expand(sympy.sympify(rep.totals["macs"]) - (12 * (12 * s * 768**2 + 2 * s**2 * 768) + s * 768 * 50257)) == 0
    assert rep.totals["params"] == 124_439_808  # learned positions: 1024 rows whatever s


def test_a_number_for_the_input_binds_the_symbol_the_layers_use() -> None:
    """Review s7 #24: `table transformer_lm.json --input 512` left s free in the layers that name it
    (q_heads s×a×512*h/(a*s), wpe s×h params, MACs l*s*h^2 + 5632*l*h^2 + ...): --input 512 on an
    input ["s"] is s = 512 everywhere, as --set s=512 is; a --set that disagrees is refused."""
    r = cli("table", str(SPECS / "transformer_lm.json"), "--input", "512", "--format", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    sizes = {n: S[n] for n in ("h", "l", "a", "V")}
    h, layers, vocab = S["h"], S["l"], S["V"]
    q_heads = next(row for row in doc["layers"] if row["name"].endswith("attn.q_heads"))
    assert q_heads["output_shape"] == [512, "a", "h/a"]
    # the Megatron forward at s = 512 (lecture MACs: half its FLOPs): 12*l*s*h^2 + 2*l*s^2*h + s*h*V
    macs = 12 * layers * 512 * h**2 + 2 * layers * 512**2 * h + 512 * h * vocab
    assert sympy.expand(sympy.sympify(doc["totals"]["macs"], locals=sizes) - macs) == 0
    # 512 learned positions of h: the table's rows follow s
    params = 12 * layers * h**2 + 13 * layers * h + 512 * h + h * vocab + 2 * h
    assert sympy.expand(sympy.sympify(doc["totals"]["params"], locals=sizes) - params) == 0
    assert doc["totals"] == json.loads(cli("table", str(SPECS / "transformer_lm.json"), "--set", "s=512", "--format", "json").out)["totals"]
    clash = cli("table", str(SPECS / "transformer_lm.json"), "--input", "512", "--set", "s=1024")
    assert clash.code == 2 and clash.out == "" and "--input gives 512 where the spec's input has s, but --set s=1024" in clash.err
    # the README's form on a numeric spec is unchanged: GPT-2 --input s is a polynomial in s (test_gpt2_cost_as_a_polynomial_in_s)
    assert "18432*s^2 + 123532032*s" in cli("table", str(SPECS / "gpt2.json"), "--convention", "torch", "--input", "s").out


@pytest.mark.parametrize("spec", ["gpt2", "bert_base", "llama2_7b"])
def test_verifies_against_torch_on_the_meta_device(spec: str) -> None:
    pytest.importorskip("torch")
    from archcalc.torch.verify import verify_spec

    result = verify_spec(SPECS / f"{spec}.json")
    assert result.device == "meta"  # no 27 GB of LLaMA weights: shapes only, and FlopCounterMode still counts
    assert result.ok, result.render_text()
