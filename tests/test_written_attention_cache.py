"""Attention written out (nanoGPT's ``flash=False``) has the KV cache of the same decoder with F.scaled_dot_product_attention
(review s8 #11: ``compare`` printed 0 B for it and ``inference`` said it had no attention layer).

Its scores' product ``q @ k^T`` (``"causal": "scores"``) reads the keys and its weights' product ``att @ v``
(``"causal": "weights"``) the values: a decode step keeps both for every position, heads x head size each.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import cli  # noqa: E402
from lm_models import GPT, GPTConfig  # noqa: E402

from archcalc.inference import inference_costs  # noqa: E402
from archcalc.spec import parse_spec  # noqa: E402
from archcalc.torch.fx_import import dumps_spec, spec_from_module  # noqa: E402

# /tmp/r8/gp.py: 1 layer, 4 heads, 64 dims, vocabulary 100, block 64; wo with flash=False, fl with flash=True
L_, H, T = 1, 64, 64


def _imported(flash: bool, tmp: Path) -> Path:
    path = tmp / f"{'fl' if flash else 'wo'}.json"
    model = GPT(GPTConfig(vocab_size=100, block_size=64, n_layer=L_, n_head=4, n_embd=H, flash=flash))
    path.write_text(dumps_spec(spec_from_module(model, [T])))
    return path


def test_written_out_attention_caches_its_keys_and_values(tmp_path: Path) -> None:
    wo, fl = _imported(False, tmp_path), _imported(True, tmp_path)
    written = json.loads(wo.read_text())
    assert [d.get("causal") for d in written["layers"] if d["type"] == "matmul"] == ["scores", "weights"]
    costs = {p: inference_costs(parse_spec(json.loads(p.read_text())), 32) for p in (wo, fl)}
    # keys and values of each position, per layer: 2 x l x h = 2 * 1 * 64 elements (nanoGPT: 4 heads of 16)
    assert costs[wo].kv_per_position == costs[fl].kv_per_position == 2 * L_ * H
    assert costs[wo].attention_layers == costs[fl].attention_layers == L_
    # at 32 cached positions in float16: 128 * 32 * 2 bytes
    assert costs[wo].kv_cache_bytes == 2 * L_ * H * 32 * 2
    # the decode step's attention products grow with the cache alike: q k^T and att v over the 32 cached keys and its own
    assert costs[wo].decode_macs == costs[fl].decode_macs
    r = cli("compare", str(wo), str(fl))
    assert r.code == 0, r.err
    row = next(line for line in r.out.splitlines() if line.startswith("KV cache per position"))
    assert row.split()[-5:] == ["256", "B", "256", "B", "same"], row  # 128 elements x 2 bytes (float16), both
    # the decode step at 32 cached positions, by the torch convention: its weights' products (c_attn 64 x 192, c_proj
    # 64 x 64, the MLP's 64 x 256 and 256 x 64, the head 64 x 100), and q k^T and att v over 32 + 1 keys, 64 each
    assert costs[wo].decode_macs == H * 3 * H + H * H + 2 * H * 4 * H + H * 100 + 2 * H * (32 + 1)
