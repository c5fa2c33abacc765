"""Inference costs: prefill vs one decode step with a KV cache, the cache's size, the roofline
verdict, MHA vs GQA vs MQA, and ``explain total`` (where each term of a polynomial comes from)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sympy
from conftest import SPECS, cli

from archcalc import analyze, load_spec
from archcalc.errors import SpecError
from archcalc.inference import inference_costs

sym = {n: sympy.Symbol(n, integer=True, positive=True) for n in ("s", "S", "h", "l", "V")}


def test_gpt2_decode_step_and_cache() -> None:
    c = inference_costs(load_spec(SPECS / "gpt2.json"), 1024, dtype="float16")
    layers, h, vocab, s = 12, 768, 50257, 1024
    assert c.kv_per_position == layers * 2 * h  # a key and a value of h per layer: 2*l*n_kv*d with n_kv*d = h
    assert c.kv_cache_bytes == 2 * layers * s * h * 2 == 37_748_736  # 2*l*S*n_kv*d*bytes, float16
    # one token: every weight once (QKV, output, MLP: 12 h**2 per layer; the head h*V), attention over S + 1 keys
    assert c.decode_macs == layers * 12 * h * h + h * vocab + layers * 2 * h * (s + 1)
    assert c.weight_bytes == 124_439_808 * 2
    # the weights read (wpe: one row of its 1024, the position of the new token; wte in full, the tied head reads it all),
    # the cache read, one position written
    assert c.decode_bytes == (124_439_808 - 1024 * h + h) * 2 + layers * 2 * h * (s + 1) * 2
    assert c.prefill_macs == 145_824_153_600
    doc = c.to_json()
    assert doc["decode"]["bound"].startswith("memory-bound")
    assert doc["prefill"]["bound"].startswith("compute-bound")


def test_transformer_lm_in_symbols() -> None:
    c = inference_costs(load_spec(SPECS / "transformer_lm.json"), sym["S"], dtype="float16")
    s, cache, h, layers, vocab = sym["s"], sym["S"], sym["h"], sym["l"], sym["V"]
    assert sympy.expand(c.kv_cache_bytes - 2 * layers * cache * h * 2) == 0
    assert sympy.expand(c.decode_macs - (12 * layers * h**2 + h * vocab + 2 * layers * h * (cache + 1))) == 0
    assert sympy.expand(c.prefill_macs - (12 * layers * s * h**2 + 2 * layers * s**2 * h + s * h * vocab)) == 0
    assert c.attention_layers == layers


def test_llama2_7b_cache_is_half_a_megabyte_per_token() -> None:
    # 32 layers x (32 key heads + 32 value heads) x 128 x 2 bytes = 512 KiB per position; 2 GiB at 4096
    c = inference_costs(load_spec(SPECS / "llama2_7b.json"), dtype="float16")
    assert c.kv_per_position * 2 == 32 * 2 * 32 * 128 * 2 == 512 * 1024
    assert c.kv_cache_bytes == 2 * 1024**3


def variant(tmp_path: Path, kv: int) -> Path:
    spec = json.loads((SPECS / "llama2_7b.json").read_text())
    spec["name"] = {32: "mha", 8: "gqa", 1: "mqa"}[kv]
    spec["layers"][1]["args"]["kv"] = kv
    for layer in spec["blocks"]["llama_layer"]["layers"]:
        if layer["type"] == "scaled_dot_product_attention":
            layer["enable_gqa"] = kv != 32
    path = tmp_path / f"{spec['name']}.json"
    path.write_text(json.dumps(spec))
    return path


def test_compare_mha_gqa_mqa_shrinks_the_cache_by_the_head_ratio(tmp_path: Path) -> None:
    paths = [variant(tmp_path, kv) for kv in (32, 8, 1)]
    r = cli("compare", *map(str, paths), "--dtype", "float16", "--format", "json")
    assert r.code == 0, r.err
    row = json.loads(r.out)["rows"]["KV cache per position"]
    assert row["values"] == [32 * 2 * 32 * 128 * 2, 32 * 2 * 8 * 128 * 2, 32 * 2 * 1 * 128 * 2]
    assert row["vs_first"][0].startswith("1/4") and row["vs_first"][1].startswith("1/32")
    # a network without attention has no such row
    assert "KV cache" not in cli("compare", str(SPECS / "lenet5.json"), str(SPECS / "alexnet.json")).out


def test_inference_cli(tmp_path: Path) -> None:
    r = cli("inference", str(SPECS / "gpt2.json"), "--cache", "1024")
    assert r.code == 0, r.err
    assert "KV cache: 18,432 elements per position" in r.out and "memory-bound" in r.out
    r = cli("inference", str(SPECS / "transformer_lm.json"), "--cache", "S", "--format", "json")
    doc = json.loads(r.out)
    assert doc["kv_cache_bytes"] == "4*l*S*h"
    r = cli("inference", str(SPECS / "resnet18.json"))
    assert r.code == 2 and "resnet18 takes a 3×224×224 input, not token ids" in r.err


def test_explain_total_shows_where_each_megatron_term_comes_from() -> None:
    r = cli("explain", str(SPECS / "transformer_lm.json"), "total", "--convention", "torch")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "transformer_lm: total FLOPs (torch) = 24*l*s*h^2 + 4*l*s^2*h + 2*s*h*V"  # powers as people write them
    text = r.out
    # 24*l*s*h^2: the QKV projection (6), the attention output (2) and the MLP (8 + 8), per layer
    for part, row in (("6*l*s*h^2", "attn.c_attn"), ("2*l*s*h^2", "attn.c_proj"), ("8*l*s*h^2", "mlp.c_fc")):
        assert any(part in line and row in line for line in lines), (part, row, text)
    assert any("4*l*s^2*h" in line and "attn.sdpa" in line for line in lines)  # the two products over s^2 scores
    assert any("2*s*h*V" in line and "lm_head" in line for line in lines)


def test_explain_total_of_a_numeric_spec_lists_the_largest_rows() -> None:
    r = cli("explain", str(SPECS / "gpt2.json"), "total", "--convention", "torch")
    assert r.code == 0, r.err
    assert "291,648,307,200" in r.out.splitlines()[0]
    assert r.out.splitlines()[2].split()[0] == "lm_head"  # 2*1024*768*50257 FLOPs: 27% of the total


@pytest.mark.parametrize("spec", ["gpt2", "transformer_lm"])
def test_totals_json_round_trip(spec: str) -> None:
    doc: dict[str, Any] = analyze(SPECS / f"{spec}.json").to_json()
    for v in doc["totals"].values():
        if isinstance(v, str):
            sympy.sympify(v, locals={n: sympy.Symbol(n) for n in doc["symbols"]})


@pytest.mark.parametrize(
    ("cache", "said"), [("S", "at S positions:"), ("2*S", "at 2*S positions:"), (None, "at S = s positions:"), ("64", "at S = 64 positions:")]
)
def test_inference_never_writes_s_equals_s(cache: str | None, said: str) -> None:
    """--cache S printed 'at S = S positions' (review 1, finding 4): the cache length is named S,
    so a cache given in S is written as it is; any other length is 'S = ...'."""
    r = cli("inference", str(SPECS / "transformer_lm.json"), *(["--cache", cache] if cache else []))
    assert r.code == 0, r.err
    assert said in r.out.splitlines()[3]
    assert "S = S" not in r.out and "S = 2*S" not in r.out


@pytest.mark.parametrize("cache", ["-5", "3-5"])
def test_a_negative_cache_is_refused_not_counted(cache: str) -> None:
    """--cache -5 printed a KV cache of -184,320 B (12 layers x 2 x 768 x -5 x 2 bytes), exit 0."""
    r = cli("inference", str(SPECS / "gpt2.json"), "--cache", cache)
    assert r.code == 2 and r.out == "" and f"--cache is a number of positions, 0 or more, got {cache!r}" in r.err
    zero = cli("inference", str(SPECS / "gpt2.json"), "--cache", "0")  # the first generated token: nothing cached yet
    assert zero.code == 0 and "at S = 0 positions: 0 B" in zero.out


@pytest.mark.parametrize("batch", [1, 64, 512])
def test_a_symbolic_cache_is_judged_at_both_ends_with_the_batch(batch: int) -> None:
    """--cache S: the decode step's verdict at S = 0 is the numeric run's at --cache 0; as S grows the
    cache dominates, one multiply-add per cached element read (fp16: 1 FLOP/byte), memory-bound.
    It said "memory-bound, about 1 FLOP/byte" at any batch: at batch 512, GPT-2's weights serve 512
    multiply-adds each read, 82,366,976 / 174,319 = 472.5 FLOP/byte at S = 0: compute-bound."""
    arch = load_spec(SPECS / "gpt2.json")
    sym = inference_costs(arch, sympy.Symbol("S"), batch=batch)
    zero = inference_costs(arch, 0, batch=batch)
    verdict = sym.verdict(sym.intensity(sym.decode_flops, sym.decode_bytes))
    at_zero = zero.verdict(zero.intensity(zero.decode_flops, zero.decode_bytes))
    assert verdict.startswith(f"at S = 0, {at_zero}; as S grows (toward 1 FLOP/byte), memory-bound")
    assert ("compute-bound" in at_zero) == (batch == 512)


def test_an_encoder_is_refused_not_decoded() -> None:
    """Review s8 #20: BERT attends both ways (no token-by-token decoding): `inference` printed a decode
    step with a note and exit 0; it is refused in one line, exit 2, as an image network is."""
    with pytest.raises(SpecError, match="bert_base is an encoder: its attention attends both ways"):
        inference_costs(load_spec(SPECS / "bert_base.json"), 100)
    r = cli("inference", str(SPECS / "bert_base.json"), "--cache", "512")
    assert r.code == 2 and r.out == "" and "not causal" in r.err and "Traceback" not in r.err


def test_a_cache_past_the_position_table_gets_a_note() -> None:
    """GPT-2's wpe has 1,024 rows, positions 0 to 1,023: a cache of 1,023 is the last that fits, 1,024
    puts the next token past the table."""
    gpt2 = load_spec(SPECS / "gpt2.json")
    assert inference_costs(gpt2, 1023).notes == []
    (note,) = inference_costs(gpt2, 1024).notes
    assert "transformer.wpe learns 1,024 positions (0 to 1,023)" in note and "position 1024" in note


def test_the_position_table_note_reads_the_prompts_sizes() -> None:
    """transformer_lm's wpe has s rows: with --set s=4096 a cache of 5 fits (the note read the decode
    step's graph, where the sequence is 1 position, and said '1 positions'); 5,000 does not."""
    arch = load_spec(SPECS / "transformer_lm.json")
    assert inference_costs(arch, 5, values={"s": 4096}).notes == []
    (note,) = inference_costs(arch, 5000, values={"s": 4096}).notes
    assert "learns 4,096 positions (0 to 4,095)" in note


@pytest.mark.parametrize("spec", ["vit_b_16", "vit_b_32", "resnet18", "swin_t"])
def test_an_image_network_is_refused_not_decoded(spec: str) -> None:
    """Review s7 #14: ViT-B/16 (3×224×224 in, attention inside) printed "prefill of 3 tokens" (its colour
    channels) and a decode step of 24,640,032,768 MACs, more than the 17,563,828,224 of the whole image,
    exit 0.  An image has no token axis to generate along: refused in one line, exit 2, as ResNet is."""
    r = cli("inference", str(SPECS / f"{spec}.json"), "--cache", "10")
    assert r.code == 2 and r.out == "" and len(r.err.strip().splitlines()) == 1, r.err
    assert f"{spec} takes a 3×224×224 input, not token ids" in r.err and "Traceback" not in r.err


def test_a_decode_step_reads_one_row_of_an_untied_embedding() -> None:
    """Review s7 #27: the decode bytes counted every embedding table in full.  LLaMA-2 7B (Touvron et al.
    2023; Hugging Face config: vocab_size 32000, hidden_size 4096, untied lm_head): the step gathers one
    row of embed_tokens, 4096 x 2 bytes in fp16, not its 32000 x 4096 x 2 = 262,144,000 bytes."""
    c = inference_costs(load_spec(SPECS / "llama2_7b.json"), 4096, dtype="float16")
    vocab, h, layers, cache = 32000, 4096, 32, 4096
    assert c.weight_bytes == 6_738_415_616 * 2  # every parameter (the model's size)
    assert c.decode_weight_bytes == (6_738_415_616 - vocab * h + 1 * h) * 2 == 13_214_695_424
    # + the cache read (S = 4096 positions of 32 layers x (k + v) x 4096) + one position written
    assert c.decode_bytes == c.decode_weight_bytes + layers * 2 * h * (cache + 1) * 2 == 15_362_703_360
    # the prefill of 4096 tokens gathers 4096 rows (fewer than the table's 32000)
    assert c.prefill_weight_bytes == (6_738_415_616 - (vocab - 4096) * h) * 2
    # at batch 8, one row per sequence: 8 rows
    assert inference_costs(load_spec(SPECS / "llama2_7b.json"), 4096, batch=8).decode_weight_bytes == (6_738_415_616 - vocab * h + 8 * h) * 2
    r = cli("inference", str(SPECS / "llama2_7b.json"), "--cache", "4096")
    assert "weights read 13,214,695,424 B" in r.out and "model.embed_tokens a step reads only the rows of its tokens" in r.out
    # GPT-2's wte is read in full by the head tied to it; its wpe (1024 x 768) gives the new token's row
    gpt2 = inference_costs(load_spec(SPECS / "gpt2.json"), 100)
    assert gpt2.decode_weight_bytes == (124_439_808 - 1024 * 768 + 768) * 2 and gpt2.gathered == ["transformer.wpe"]
    assert gpt2.prefill_weight_bytes == 124_439_808 * 2  # 1024 prompt tokens: every row of wpe


def test_compare_gives_the_kv_cache_in_inferences_dtype_and_says_it() -> None:
    """Review s7 #12: compare's "KV cache per position" was in float32 (GPT-2: 72 KiB) while inference,
    and the README sentence about compare, use float16 (36 KiB), neither saying which.  GPT-2 (12 layers,
    h = 768): 12 x (k + v) x 768 x 2 bytes; LLaMA-2 7B (32 layers, h = 4096): 32 x 2 x 4096 x 2 = 512 KiB."""
    gpt2, llama = str(SPECS / "gpt2.json"), str(SPECS / "llama2_7b.json")
    r = cli("compare", gpt2, llama, "--format", "json")
    assert r.code == 0, r.err
    row = json.loads(r.out)["rows"]["KV cache per position"]
    assert row["values"] == [12 * 2 * 768 * 2, 32 * 2 * 4096 * 2] and row["dtype"] == "float16"
    assert row["values"][0] * 1024 == inference_costs(load_spec(SPECS / "gpt2.json"), 1024).kv_cache_bytes  # inference's figure
    text = cli("compare", gpt2, llama).out
    assert "KV cache per position (float16)  36.0 KiB" in text and "the KV cache in float16" in text
    f32 = cli("compare", gpt2, llama, "--dtype", "float32")
    assert "KV cache per position (float32)  72.0 KiB" in f32.out


def test_compare_counts_a_tied_head_as_a_weighted_layer(tmp_path: Path) -> None:
    """Review s7 #32: GPT-2's lm_head multiplies by a 50257 x 768 matrix whether or not it owns it;
    "weighted layers" said 48 tied and 49 untied.  12 layers x (c_attn, attn.c_proj, c_fc, mlp.c_proj) + the head."""
    spec = json.loads((SPECS / "gpt2.json").read_text())
    (head,) = [layer for layer in spec["layers"] if layer.get("name") == "lm_head"]
    del head["tie_weight"]
    spec["name"] = "gpt2_untied"
    untied = tmp_path / "gpt2_untied.json"
    untied.write_text(json.dumps(spec))
    r = cli("compare", str(SPECS / "gpt2.json"), str(untied), "--format", "json")
    assert r.code == 0, r.err
    rows = json.loads(r.out)["rows"]
    assert rows["weighted layers"]["values"] == [12 * 4 + 1, 12 * 4 + 1]
    assert rows["params"]["values"][1] - rows["params"]["values"][0] == 50257 * 768  # the untied head owns its weight


def test_compare_of_a_symbolic_lm_gives_the_ratio_as_a_formula_not_at_224() -> None:
    """Review s7 #33: GPT-2 against transformer_lm printed the ratio "at V=h=l=s=224" (a 224-layer model of 224
    words), and LaTeX printed it as escaped code (12*l*h\\textasciicircum{}2).  Only an image's H and W get 224."""
    lm, gpt2 = str(SPECS / "transformer_lm.json"), str(SPECS / "gpt2.json")
    text = cli("compare", lm, gpt2).out
    assert "124439808/(12*l*h^2 + 13*l*h + s*h + h*V + 2*h) (varies with h, l, s, V)" in text and "=224" not in text
    latex = cli("compare", lm, gpt2, "--format", "latex").out
    assert r"$\frac{124439808}{V h + 12 h^{2} l + 13 h l + h s + 2 h}$ (varies with h, l, s, V)" in latex
    assert "textasciicircum" not in latex and "=224" not in latex
    assert r"weighted layers & $4 l + 1$ & 49" in latex  # a symbolic count typeset too, not '4*l + 1'
    # an image's size still gets 224: 3x3 stride 2 against 7x7 stride 1 on 3xHxW, 64 filters:
    # (64*27*111*111) / (64*147*224*224) at H = W = 224, (224 - 3)//2 + 1 = 111 positions a side
    img = cli("compare", "--stack", "3xHxW", "conv 64 7 p3", "--stack", "3xHxW", "conv 64 3 s2").out
    assert f"\u2248 {(27 * 111 * 111) / (147 * 224 * 224):.3g} at H=W=224" in img


def test_a_symbolic_batch_reads_at_most_the_whole_token_table() -> None:
    """N sequences gather N rows of LLaMA-2's embed_tokens (4096 x 2 bytes each), at most its 32000:
    8192*Min(32000, N) bytes; the verdict as N grows takes the table (Min has no series in sympy's limit)."""
    r = cli("inference", str(SPECS / "llama2_7b.json"), "--batch", "N", "--cache", "100")
    assert r.code == 0, r.err
    assert "weights read 8192*Min(32000, N) + 13214687232 B" in r.out and 13_214_687_232 == (6_738_415_616 - 32000 * 4096) * 2
    # decode FLOPs per byte as N grows: 2 x 6,633,553,920 MACs / (2 x (S + 1) x 262,144 x 2 bytes of cache) per sequence
    toward = 2 * 6_633_553_920 / (101 * 262_144 * 2)
    assert f"as N grows (toward {toward:.3g} FLOP/byte)" in r.out


MEMORY_LM = {"name": "mix", "input": [16], "layers": [
    {"name": "emb", "type": "embedding", "num_embeddings": 50, "embedding_dim": 32},
    {"name": "q", "type": "linear", "out_features": 32, "inputs": ["emb"]},
    {"name": "k", "type": "linear", "out_features": 32, "inputs": ["emb"]},
    {"name": "v", "type": "linear", "out_features": 32, "inputs": ["emb"]},
    {"name": "att", "type": "scaled_dot_product_attention", "is_causal": True, "inputs": ["q", "k", "v"]},
    {"name": "mem", "type": "parameter", "shape": [4, 32]},
    {"name": "x", "type": "scaled_dot_product_attention", "is_causal": False, "inputs": ["att", "mem", "mem"]},
    {"name": "head", "type": "linear", "out_features": 50}]}  # fmt: skip


def test_attention_over_a_learned_memory_caches_nothing(tmp_path: Path) -> None:
    """Review s10 #9: x's keys and values are a parameter (4 fixed rows), not the tokens: it keeps nothing per
    position, its output i reads att's output i only (the network is causal), and a decode step multiplies one
    query by the 4 rows.  inference counted x's k and v as a growing cache (128 elements per position), priced its
    products over S + 1 keys (10,112 MACs) and called the network "an encoder"."""
    (tmp_path / "mix.json").write_text(json.dumps(MEMORY_LM))
    c = inference_costs(load_spec(tmp_path / "mix.json"), 16, dtype="float16")
    assert c.kv_per_position == 2 * 32  # att's key and value, 32 each; x's memory is a weight
    assert c.kv_cache_bytes == 2 * 32 * 16 * 2 == 2_048  # 16 positions, float16
    assert c.attention == ["att"] and c.attention_layers == 1
    # one token: q, k, v (3 x 32 x 32) and the head (32 x 50); att over 16 + 1 keys (2 x 32 x 17); x over its 4 rows (2 x 32 x 4)
    assert c.decode_macs == 3 * 32 * 32 + 32 * 50 + 2 * 32 * 17 + 2 * 32 * 4 == 6_016
    # the prompt of 16 tokens: the linears per token, att 16 x 16 x 32 x 2, x 16 x 4 x 32 x 2
    assert c.prefill_macs == 16 * (3 * 32 * 32 + 32 * 50) + 16 * 16 * 32 * 2 + 16 * 4 * 32 * 2 == 95_232
    assert not any("encoder" in n for n in c.notes)
    assert any("x attends to a learned memory (mem)" in n for n in c.notes), c.notes
    # only the memory attention: nothing is cached between tokens, refused in one line saying why
    only = {**MEMORY_LM, "layers": [la for la in MEMORY_LM["layers"] if la["name"] not in ("att",)]}
    only["layers"][5] = {**only["layers"][5], "inputs": ["q", "mem", "mem"]}  # (emb, q, k, v, mem, x, head)
    spec = tmp_path / "only.json"
    spec.write_text(json.dumps(only))
    r = cli("inference", str(spec), "--cache", "16")
    assert r.code == 2 and r.out == "" and len(r.err.strip().splitlines()) == 1, r.err
    assert "mix's attention (x) attends only to a learned memory" in r.err and "not causal" not in r.err
