"""A hostile student's review of ``explain`` and ``verify``: token tensors named as tokens and
features (not channels and H, W), attention's general formulas, every name the CLI shows
explainable, and ``verify --output-key`` for models that return a dict."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import SPECS, cli

RESNET50 = str(SPECS / "resnet50.json")


def _step(out: str, quantity: str) -> tuple[str, str]:
    """(formula, worked line) of one quantity of a text explanation."""
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(quantity + "  "))
    return lines[i][len(quantity) :].strip(), lines[i + 1].strip()


# ----- 3. names the CLI shows are explainable --------------------------------------------------------


def test_a_name_that_prefixes_layers_is_explained_as_their_sum() -> None:
    # `memory --checkpoint` lists layer1.0.downsample among its blocks: the 1x1 projection conv
    # (64 -> 256, no bias) and its batchnorm, written downsample.0 and downsample.1 in the block
    r = cli("explain", RESNET50, "layer1.0.downsample")
    assert r.code == 0, r.err
    assert r.out.startswith("layer1.0.downsample (block, 2 layers)")
    conv_params, bn_params = 64 * 256, 2 * 256
    assert _step(r.out, "params") == ("layer1.0.downsample.0 16.4K + layer1.0.downsample.1 512", f"= {conv_params + bn_params:,} (16.9K)")
    macs = 256 * 56 * 56 * 64  # output elements x C_in (a 1x1 window)
    assert _step(r.out, "MACs (lecture)")[1] == f"= {macs:,} (51.4M)"
    # check judges the same sum
    assert cli("check", RESNET50, f"layer1.0.downsample.params={conv_params + bn_params}").code == 0


# ----- 4. verify --output-key ------------------------------------------------------------------------

DICT_MODEL = '''
from torch import nn


class DictNet(nn.Module):
    """A segmentation-style model: {"aux": ..., "out": ...}, as torchvision's FCN returns."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.aux = nn.Conv2d(4, 2, 1)
        self.head = nn.Conv2d(4, 5, 1)

    def forward(self, x):
        y = self.conv(x)
        return {"aux": self.aux(y), "out": self.head(y)}
'''
DICT_SPEC = {
    "name": "dictnet",
    "input": [3, 8, 8],
    "layers": [
        {"name": "conv", "type": "conv2d", "out_channels": 4, "kernel_size": 3},
        {"name": "aux", "type": "conv2d", "out_channels": 2, "kernel_size": 1},
        {"name": "head", "type": "conv2d", "inputs": ["conv"], "out_channels": 5, "kernel_size": 1},
    ],
}


def _dict_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    pytest.importorskip("torch")
    (tmp_path / "archcalc_dictnet.py").write_text(DICT_MODEL)
    spec = tmp_path / "dictnet.json"
    spec.write_text(json.dumps(DICT_SPEC))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "archcalc_dictnet", raising=False)
    return str(spec)


def test_verify_output_key_picks_the_dicts_tensor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _dict_model(tmp_path, monkeypatch)
    # the spec's output is head, 5 x 6 x 6 (8 - 3 + 1 = 6); params 4*3*3*3 + 4 + 2*4 + 2 + 5*4 + 5 = 147
    r = cli("verify", spec, "--module", "archcalc_dictnet:DictNet", "--output-key", "out")
    assert r.code == 0, r.out + r.err
    assert "OK: 3 layers match torch" in r.out
    total = next(line for line in r.out.splitlines() if "(total)" in line)
    assert "5×6×6" in total and f"{4 * 27 + 4 + 2 * 4 + 2 + 5 * 4 + 5}" in total
    # the other key is the aux head's 2 x 6 x 6: a wrong output, exit 1
    r = cli("verify", spec, "--module", "archcalc_dictnet:DictNet", "--output-key", "aux")
    assert r.code == 1 and "output shape is 5×6×6 in the spec, 2×6×6 in torch" in r.out


def test_verify_dict_output_without_a_key_is_refused_as_import_refuses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _dict_model(tmp_path, monkeypatch)
    r = cli("verify", spec, "--module", "archcalc_dictnet:DictNet")
    assert r.code == 2 and r.out == ""
    assert "dictnet.json: field '--output-key': the model returns a dict of 2 tensors ('aux', 'out'); pick the spec's output" in r.err
    r = cli("verify", spec, "--module", "archcalc_dictnet:DictNet", "--output-key", "logits")
    assert r.code == 2 and "it has no key 'logits'" in r.err
    r = cli("verify", spec, "--output-key", "out")  # the module built from the spec returns one tensor
    assert r.code == 2 and "field '--output-key'" in r.err


def test_assert_matches_takes_the_output_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _dict_model(tmp_path, monkeypatch)
    from archcalc.assertions import assert_matches

    model = importlib.import_module("archcalc_dictnet").DictNet()
    assert assert_matches(spec, model, output_key="out").ok
    with pytest.raises(AssertionError, match=r"output shape is 5×6×6 in the spec, 2×6×6 in torch"):
        assert_matches(spec, model, output_key="aux")


# ----- 1. token tensors are named as tokens and features ---------------------------------------------

GPT2 = str(SPECS / "gpt2.json")
VIT = str(SPECS / "vit_b_16.json")
BERT = str(SPECS / "bert_base.json")


def _image_words(out: str) -> list[str]:
    """Image vocabulary left in an explanation: channel/H/W labels or C_, H_, W_ symbols."""
    words = re.findall(r"\b(?:output (?:channels|H|W|L)\b|[CHW]_(?:in|out|\d|[qkv])\b)", out)
    return words


def test_an_embedding_is_explained_with_tokens_and_features() -> None:
    # GPT-2's token embedding: 1024 token ids -> 1024 x 768 (Radford et al. 2019: n_ctx 1024, d_model 768)
    out = cli("explain", GPT2, "transformer.wte").out
    assert _image_words(out) == []
    assert _step(out, "output features") == ("embedding_dim", "= 768")
    # (the features are its embedding_dim, as in its params num_embeddings*embedding_dim)
    assert _step(out, "ops: lookup (not MACs under 'lecture')") == ("L_out*embedding_dim", f"= 1024·768 = {1024 * 768:,} (786K)")
    assert _step(out, "memory (float32, 4 B per element)") == ("L_out*embedding_dim*4 B", f"= 1024·768·4 B = {1024 * 768 * 4:,} B = 3.00 MiB")
    assert _step(out, "saved: input (int64)")[0] == "L_in*8 B"  # one int64 id per token: the token ids themselves


def test_a_linear_layer_on_a_sequence_maps_features_per_token() -> None:
    out = cli("explain", GPT2, "transformer.h.0.attn.c_attn").out  # 768 -> 3*768 features, for each of 1024 tokens
    assert _image_words(out) == []
    assert _step(out, "output features") == ("F_out", "= 2304")
    assert _step(out, "params: weight (2304×768)") == ("F_out*F_in", f"= 2304·768 = {2304 * 768:,} (1.77M)")
    assert _step(out, "MACs (lecture)") == ("L_out*F_out*F_in", f"= 1024·2304·768 = {1024 * 2304 * 768:,} (1.81G)")
    head = cli("explain", GPT2, "lm_head").out  # the tied head: 768 -> 50257 (the vocabulary) per token
    assert _image_words(head) == [] and "output features  " in head


def test_heads_and_features_per_head_after_a_reshape() -> None:
    out = cli("explain", GPT2, "transformer.h.0.attn.q_heads").out  # (1024, 768) -> (1024, 12, 64)
    assert _image_words(out) == []
    assert _step(out, "output heads") == ("shape_1", "= 12")
    assert _step(out, "output features per head") == ("shape_2", "= 64")
    out = cli("explain", str(SPECS / "transformer_lm.json"), "transformer.h.*.attn.q_heads").out  # (s, h) -> (s, a, h/a)
    assert _step(out, "output heads") == ("a", "= a") and _step(out, "output features per head")[1] == "= h/a"


def test_vit_patches_become_tokens_and_the_image_layers_keep_their_names() -> None:
    conv = cli("explain", VIT, "conv_proj").out  # a 16x16 stride-16 conv on the 224x224 image: still an image
    assert _step(conv, "output H") == ("floor((H_in - K)/S) + 1", "= ⌊(224 − 16) / 16⌋ + 1 = 14")
    flat = cli("explain", VIT, "reshape").out  # flatten(2): 768 x 14 x 14 -> 768 x 196, the 196 patches are the tokens
    assert _step(flat, "output tokens") == ("H_in*W_in", f"= 14·14 = {14 * 14}")
    cat = cli("explain", VIT, "cat").out  # the class token before the 196 patch tokens: 197 (Dosovitskiy et al. 2021)
    assert _image_words(cat) == []
    assert _step(cat, "output tokens") == ("L_1 + L_2", "= 1 + 196 = 197")
    assert _step(cat, "memory (float32, 4 B per element)")[0] == "L_out*F_out*4 B"
    mha = cli("explain", VIT, "encoder.layers.encoder_layer.0.self_attention").out
    assert _image_words(mha) == []
    assert _step(mha, "params: in_proj_weight (2304×768)") == ("3*F_in^2", f"= 3·768·768 = {3 * 768 * 768:,} (1.77M)")


def test_a_1d_conv_map_keeps_channels_and_length() -> None:
    # Kim 2014's sentence CNN reads (300 embedding channels, 64 positions) as conv1d does: a map, not a sequence of tokens
    out = cli("explain", str(SPECS / "conv1d_text.json"), "conv3").out
    assert _step(out, "output channels") == ("C_out", "= 100")
    assert _step(out, "output L") == ("floor((L_in - K)/S) + 1", "= 64 − 3 + 1 = 62")


# ----- 2. attention's general formulas ---------------------------------------------------------------


def test_sdpa_shows_q_kT_and_the_weighted_sum_as_formulas() -> None:
    # BERT-base: 12 heads of 64, 512 tokens (Devlin et al. 2019); not causal
    out = cli("explain", BERT, "encoder.layer.0.attention.self.sdpa").out
    qk = wv = 12 * 512 * 512 * 64  # q k^T: L_q x L_k dot products of length F_q per head; the weighted sum: L_q x F_v of length L_k
    assert _step(out, "ops: attn_matmul") == ("A_out*L_q*L_k*F_q + A_out*L_q*L_k*F_v", f"= 12·512·512·64 + 12·512·512·64 = {qk + wv:,} (403M)")
    assert _step(out, "ops: softmax (not MACs under 'lecture')") == ("A_out*L_q*L_k", f"= 12·512·512 = {12 * 512 * 512:,} (3.15M)")
    assert _step(out, "MACs (lecture)")[0] == "A_out*L_q*L_k*F_q + A_out*L_q*L_k*F_v"
    assert "note: attn_matmul: attention's two products, q k^T and the weighted sum of v" in out
    assert _image_words(out) == []


def test_causal_sdpa_shows_the_kept_triangle_as_a_formula() -> None:
    # GPT-2: causal, query i sees i + 1 keys: 1 + 2 + ... + 1024 = 1024*1025/2 pairs per head
    out = cli("explain", GPT2, "transformer.h.0.attn.sdpa").out
    kept = 12 * (1024 * 1025 // 2) * (64 + 64)
    assert _step(out, "ops: attn_matmul") == ("A_out*L_q*(F_q + F_v)*(L_q + 1)/2", f"= 12·⌊1024·(1024 + 1) / 2⌋·(64 + 64) = {kept:,} (806M)")
    masked = (12 * 1024 * 1024 - 12 * (1024 * 1025 // 2)) * (64 + 64)
    assert _step(out, "ops: attn_matmul_masked")[0] == "A_out*L_q*(F_q + F_v)*(L_q - 1)/2"
    assert _step(out, "MACs (lecture)") [0] == "A_out*L_q^2*F_q + A_out*L_q^2*F_v"
    assert _step(out, "MACs (lecture)")[1].endswith(f"= {kept + masked:,} (1.61G)")
    # what flash attention keeps, each with its formula (q, k, v, the output and one logsumexp per query)
    assert _step(out, "saved: input 0")[0] == "A_q*L_q*F_q*4 B"
    assert _step(out, "saved: logsumexp (float32)")[0] == "A_out*L_q*4 B"


def test_symbolic_attention_has_formulas_too() -> None:
    out = cli("explain", str(SPECS / "transformer_lm.json"), "transformer.h.*.attn.sdpa").out  # a heads of h/a, s tokens
    assert _step(out, "MACs (lecture)") == ("A_out*F_q*L_q^2 + A_out*F_v*L_q^2", "= 2*s^2*h")


# ----- what a student found confusing in the zoo -------------------------------------------------------


def _line(out: str, quantity: str) -> tuple[str, str]:
    """(formula or '', worked line) of a quantity, with or without a formula."""
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines) if line == quantity or line.startswith(quantity + "  "))
    return lines[i][len(quantity) :].strip(), lines[i + 1].strip()


def test_a_saved_input_that_is_part_of_a_bigger_tensor_has_no_formula_of_the_part() -> None:
    # ViT's head reads the class token, a 768-slice of encoder.ln's 197 x 768 output: autograd keeps that whole output,
    # 197*768*4 bytes, not the 768*4 the head's input shape would give (it printed "F_in*4 B = 605,184 B")
    out = cli("explain", VIT, "heads.head").out
    assert _line(out, "saved: input") == ("", f"= {197 * 768 * 4:,} B = 591 KiB")
    assert "note: saved: input: its input is a part of encoder.ln's output, which the backward keeps whole" in out


def test_a_learned_tensor_reads_no_input_and_allocates_no_activation() -> None:
    out = cli("explain", VIT, "class_token").out
    assert out.startswith("class_token (parameter): no input \u2192 output 1\u00d7768\n")
    assert _line(out, "memory") == ("", "= 0 B: a learned tensor: counted in params, no activation")


def test_a_reshape_after_a_permute_is_not_called_a_plain_view() -> None:
    # MaxViT's window partition: a permute, then a reshape, which torch can only do by copying
    out = cli("explain", str(SPECS / "maxvit_t.json"), "blocks.0.layers.0.layers.window_attention.partition_op.merge").out
    assert _line(out, "memory")[1] == "= 0 B: a reshape of its input, counted as a view (torch copies it where the input is not contiguous)"
    # 64 windows of 7 x 7 = 49 tokens, 64 channels (the 56 x 56 map of MaxViT-T's first stage, Tu et al. 2022)
    assert _step(out, "output windows") == ("shape_0", "= 64") and _step(out, "output tokens") == ("shape_1", "= 49")


def test_a_matmul_input_copied_for_bmm_has_its_formula() -> None:
    out = cli("explain", str(SPECS / "maxvit_t.json"), "blocks.0.layers.0.layers.window_attention.attn_layer.1.scores").out
    # scores = q k^T per window and head: 64 windows x 2 heads x 49 queries x 49 keys, dot products of 32
    assert _step(out, "MACs (lecture)") == ("N_out*A_out*L_out*S_out*F_a", f"= 64·2·49·49·32 = {64 * 2 * 49 * 49 * 32:,} (9.83M)")
    assert _step(out, "saved: copy of input 0") == ("N_out*A_out*L_a*F_a*4 B", f"= {64 * 2 * 49 * 32 * 4:,} B = 784 KiB")


def test_verify_names_every_symbol_left_not_one_per_run() -> None:
    # transformer_lm is written in s, h, a, V and l: a student who gave only l was told "the spec's
    # numbers are symbolic", then, after each --set, that they still were
    pytest.importorskip("torch")
    r = cli("verify", str(SPECS / "transformer_lm.json"), "--set", "l=2")
    assert r.code == 2 and r.out == "" and r.err.count("\n") == 1
    assert "field '--set': the spec's numbers are symbolic (in a, h, s, V); verify needs numbers: --set a=N --set h=N --set s=N --set V=N" in r.err
    r = cli("verify", str(SPECS / "transformer_lm.json"))  # the repeat count l among them
    assert "symbolic (in a, h, l, s, V);" in r.err


def test_a_crop_size_is_called_size_and_lrn_keeps_its_n() -> None:
    # U-Net's skip connection crops the 64 x 64 map of down4 to the 56 x 56 of up4 (Ronneberger et al. 2015, Fig. 1);
    # the crop's size was written "n", the symbol of LRN's neighbourhood
    out = cli("explain", str(SPECS / "unet.json"), "crop4").out
    assert _step(out, "output H") == ("size", "= 56")
    lrn = cli("explain", str(SPECS / "alexnet_2012.json"), "norm1").out  # n = 5 neighbouring channels (Krizhevsky et al. 2012, Sec. 3.3)
    assert _step(lrn, "ops: lrn_functional (not MACs under 'lecture')")[0] == "3*C_out*H_out*W_out + (C_in + n - 1)*H_in*W_in"


def test_verify_of_a_net_without_attention_does_not_read_as_if_it_had_some() -> None:
    # LeNet-5's verify said "measured on meta, scaled_dot_product_attention on its math kernel ...": which attention?
    pytest.importorskip("torch")
    r = cli("verify", str(SPECS / "lenet5.json"))
    assert r.code == 0
    assert r.out.splitlines()[2].startswith("measured on meta; attention, where the model has any: scaled_dot_product_attention on its math")


def test_a_part_of_one_copy_of_a_symbolic_repeat_is_one_copys() -> None:
    # transformer.h.* is one of the l copies (the table's ×l rows); its attention, transformer.h.*.attn, was summed as
    # all l copies (4*l*h^2 + 4*l*h) while transformer.h.* itself was one: c_attn 3h^2 + 3h and c_proj h^2 + h, once
    lm = str(SPECS / "transformer_lm.json")
    out = cli("explain", lm, "transformer.h.*.attn").out
    assert out.startswith("transformer.h.*.attn (block, one copy of l, 14 layers)")
    assert _step(out, "params")[1] == "= 4*h^2 + 4*h"
    assert cli("check", lm, "transformer.h.*.attn.params=4*h^2+4*h").code == 0
    assert _step(cli("explain", lm, "transformer.h").out, "params")[1] == "= 12*l*h^2 + 13*l*h"  # all l copies: 12h^2 + 13h each


def test_a_starred_name_after_the_repeat_count_is_given_points_at_the_numbered_copy() -> None:
    lm = str(SPECS / "transformer_lm.json")
    sets = ["--set", "s=1024", "--set", "h=768", "--set", "a=12", "--set", "l=12", "--set", "V=50257"]  # GPT-2 small's sizes
    r = cli("explain", lm, "transformer.h.*.attn.sdpa", *sets)
    assert r.code == 2
    assert "the copies are numbered: 'transformer.h.0.attn.sdpa' is the first copy's" in r.err  # (it suggested .9, .8, .7)
    assert "transformer.h.0 (block" in cli("explain", lm, "transformer.h.0", *sets).out


def test_a_depth_past_the_deepest_block_lists_every_layer_not_stages() -> None:
    # MaxViT-T's `table --depth 9` (its blocks nest 3 deep) showed "stage2 ... 256×1×1": stages cut at the
    # squeeze-and-excitation pools, names that explain then refused; past the deepest block is every layer
    maxvit = str(SPECS / "maxvit_t.json")
    out = cli("table", maxvit, "--depth", "9").out
    assert "stage2" not in out
    assert out.count("\n") == cli("table", maxvit, "--depth", "99").out.count("\n") > 1000  # 1,059 layers, a row each
    assert "stage2" in cli("table", str(SPECS / "vgg16.json"), "--depth", "1").out  # a network without blocks: its stages


def test_explain_says_what_the_table_notes_about_the_layer() -> None:
    # the table notes BERT's learned positions read rows 0..511 of 512 and GPT-2's causal mask; explain said neither
    out = cli("explain", BERT, "embeddings.position_embeddings").out
    assert "note: learned positions: looks up rows 0..511 of 512" in out
    assert "note: causal: every score is computed and the upper triangle masked" in cli("explain", GPT2, "transformer.h.0.attn.sdpa").out


def test_a_prefix_with_blocks_under_it_sums_by_its_parts() -> None:
    # ViT-B/16's encoder: positions 197 x 768, 12 encoder layers, a final layernorm; the sum listed 136 layers
    out = cli("explain", VIT, "encoder").out
    layer = 2 * 768 + (4 * 768 * 768 + 4 * 768) + 2 * 768 + (768 * 3072 + 3072) + (3072 * 768 + 768)  # ln_1, attention, ln_2, mlp
    total = 197 * 768 + 12 * layer + 2 * 768
    assert _step(out, "params") == ("encoder.pos_embedding 151K + encoder.layers.encoder_layer 85.1M + encoder.ln 1.54K", f"= {total:,} (85.2M)")


def test_a_training_only_head_says_so() -> None:
    # GoogLeNet's auxiliary classifiers run only in training (Szegedy et al. 2014, Sec. 5): fc1 is 2048 -> 1024
    goog = str(SPECS / "googlenet.json")
    out = cli("explain", goog, "aux1.fc1").out
    assert _step(out, "params") == ("F_out*F_in + F_out", f"= 1024·2048 + 1024 = {1024 * 2048 + 1024:,} (2.10M)")
    assert "note: training only (an auxiliary head): an eval forward does not run it; the totals leave it out" in out
    assert cli("explain", goog, "aux1").out.startswith("aux1 (block, training only, 8 layers)")


def test_a_channels_last_linear_names_its_output_features_one_way() -> None:
    # ConvNeXt-T's first pointwise linear, 96 -> 384 on a channels-last 56 x 56 map (Liu et al. 2022): its output axis
    # was "F_out" in one line and "C_out" in the next (params F_out*C_in, MACs H_out*W_out*C_out*C_in)
    out = cli("explain", str(SPECS / "convnext_tiny.json"), "features.1.0.block.3").out
    assert _step(out, "output channels") == ("F_out", "= 384")
    assert _step(out, "params: weight (384×96)")[0] == "F_out*C_in"
    assert _step(out, "MACs (lecture)") == ("H_out*W_out*F_out*C_in", f"= 56·56·384·96 = {56 * 56 * 384 * 96:,} (116M)")
    assert "C_out" not in out


def _numbers_of(G: Any, name: str) -> dict[str, int]:
    """Each symbol explain's general formulas use for layer ``name``, with its number: the inputs'
    and output's axes, and the layer's fields."""
    from archcalc import explain as E
    from archcalc.axis_roles import axis_roles

    node, roles = G.nodes[name], axis_roles(G)
    ins = [G.nodes[i]["shape"] for i in node["inputs"]]
    layer, out = node["layer"], node["shape"]
    lay_s = E._symbolic(layer)
    out_s = E._out_symbols(out, roles.get(name))
    ins_s, _ = E._runnable_symbols(lay_s, ins, [roles.get(i) for i in node["inputs"]], out_s)
    out_s = E._field_named(lay_s, ins_s, out_s)
    pairs = [*(p for s, n in zip(ins_s, ins, strict=True) for p in zip(s, n, strict=True)), *zip(out_s, out, strict=True)]
    for f in layer._dim_fields:
        sym, value = lay_s.__dict__[f], layer.__dict__[f]
        pairs += list(zip(sym, value, strict=True)) if isinstance(sym, list) else [(sym, value)]
    return {str(s): v for s, v in pairs if getattr(s, "is_Symbol", False)}


@pytest.mark.parametrize("spec", ["gpt2", "bert_base", "llama2_7b", "vit_b_16", "maxvit_t", "swin_t", "convnext_tiny", "resnet50", "unet"])
def test_every_general_formula_gives_the_result_with_the_numbers_put_in(spec: str) -> None:
    """A formula above a result must give that result: GPT-2's q_heads said "output tokens = shape_0", the -1
    of its reshape (the rest), above 1024; ViT's head said "saved: input F_in*4 B" above 197*768*4 B."""
    import sympy

    from archcalc import load_spec
    from archcalc.explain import explain_layer
    from archcalc.graph import compile_spec
    from archcalc.report import report_from_graph

    G = compile_spec(load_spec(str(SPECS / f"{spec}.json")))
    rep = report_from_graph(G)
    seen: dict[str, int] = {}
    checked = 0
    for row in rep.rows:
        seen[row.type] = seen.get(row.type, 0) + 1
        if seen[row.type] > 2:  # two of each layer type
            continue
        numbers = _numbers_of(G, row.name)
        for step in explain_layer(G, row.name).steps:
            result = re.match(r"= ?([\d,]+)(?: B)?(?: |$|,)", "= " + step.result)
            if not step.general or step.quantity.startswith(("receptive", "effective", "FLOPs")) or result is None:
                continue
            formula = step.general.removesuffix(" B")
            names = {n: sympy.Symbol(n) for n in re.findall(r"[A-Za-z_]\w*", formula) if n not in ("floor", "ceiling", "Max")}
            value = sympy.sympify(formula, locals=names).subs({names[n]: v for n, v in numbers.items() if n in names})
            assert value == int(result.group(1).replace(",", "")), (row.name, step.quantity, step.general, step.result)
            checked += 1
    assert checked > 20


def test_names_as_the_table_shows_them_are_explained() -> None:
    # `table --depth 1` shows GPT-2's blocks as "transformer.h ×12", `--depth 2` MobileNet v1's unblocked layers as a run
    # "conv5.dw..conv5.pw_relu"; explain refused both (check already read ranges)
    h = cli("explain", GPT2, "transformer.h ×12").out
    assert h.startswith("transformer.h (block, 12 copies, 252 layers)")  # 21 layers a copy
    mobilenet = str(SPECS / "mobilenet_v1.json")
    assert "conv5.dw..conv5.pw_relu" in cli("table", mobilenet, "--depth", "2").out
    run = cli("explain", mobilenet, "conv5.dw..conv5.pw_relu").out
    # a depthwise 3x3 on 128 channels (128*9 weights), its BN (2*128), a pointwise 128 -> 256 (128*256), its BN (2*256)
    assert _step(run, "params")[1] == f"= {128 * 9 + 2 * 128 + 128 * 256 + 2 * 256:,} (34.7K)"
    r = cli("explain", mobilenet, "conv5.pw_relu..conv5.dw")
    assert r.code == 2 and "mobilenet_v1.json: field 'LAYER': range 'conv5.pw_relu..conv5.dw' runs backwards" in r.err
    row = cli("explain", str(SPECS / "transformer_lm.json"), "transformer.h.*.attn.c_attn (×l)").out
    assert row.startswith("transformer.h.*.attn.c_attn (linear)")


def test_a_2d_input_is_a_map_when_a_conv_slides_over_it_even_after_a_batchnorm() -> None:
    # (8 channels, 100 positions) into batchnorm1d then conv1d: a 1-D conv net's map, not 8 tokens of 100 features
    out = cli("explain", "--stack", "8x100", "batchnorm1d", "conv1d 16 3").out
    assert _step(out, "params: weight (8)")[0] == "C_in"
    assert _step(out, "output L") == ("floor((L_in - K)/S) + 1", "= 100 − 3 + 1 = 98")
    seq = cli("explain", "--stack", "196x768", "linear 3072").out  # ViT-B's 196 patches of 768: a sequence
    assert _step(seq, "MACs (lecture)") == ("L_out*F_out*F_in", f"= 196·3072·768 = {196 * 3072 * 768:,} (462M)")


def test_keys_and_values_from_a_learned_table_are_tokens_and_features(tmp_path: Path) -> None:
    """Review s7 #25: k and v made from `parameter` tables ([7, 8] and [7, 6], reshaped to 2 heads) were
    named as an image's axes, A_out*L_q*H_k*F_q + A_out*L_q*H_k*W_v; attention reads (heads, L, F) whatever
    made them: 2 heads x 5 queries x 7 keys x (4 + 3) features = 490."""
    spec = {"name": "x", "input": [5, 8], "layers": [
        {"name": "kv", "type": "parameter", "shape": [7, 8]},
        {"name": "vv", "type": "parameter", "shape": [7, 6]},
        {"name": "q", "type": "reshape", "shape": [5, 2, 4], "inputs": ["input"]},
        {"name": "qt", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "k", "type": "reshape", "shape": [7, 2, 4], "inputs": ["kv"]},
        {"name": "kt", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "v", "type": "reshape", "shape": [7, 2, 3], "inputs": ["vv"]},
        {"name": "vt", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "att", "type": "scaled_dot_product_attention", "inputs": ["qt", "kt", "vt"]},
    ]}  # fmt: skip
    path = tmp_path / "xattn.json"
    path.write_text(json.dumps(spec))
    r = cli("explain", str(path), "att")
    assert r.code == 0, r.err
    assert _step(r.out, "ops: attn_matmul") == ("A_out*L_q*L_k*F_q + A_out*L_q*L_k*F_v", f"= 2·5·7·4 + 2·5·7·3 = {2 * 5 * 7 * (4 + 3)}")
    assert _step(r.out, "saved: k_scaled")[0] == "A_out*L_k*F_q*4 B"
    assert not re.search(r"\b[HW]_[kv]\b", r.out), r.out
