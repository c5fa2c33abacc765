"""Imported function calls are named under the module whose forward made them (review s8 #12).

nanoGPT's Block calls its LayerNorms (``F.layer_norm`` inside nanoGPT's LayerNorm module), attention
(``F.scaled_dot_product_attention``) and residual adds in its own forward.  Named by fx node alone (``layer_norm_1``,
``add_2``) they fell outside ``transformer.h.0``: ``memory --checkpoint transformer.h.0 transformer.h.1`` checkpointed
only the block's leaf modules (600,576 B saved against torch's 133,632) and ``check transformer.h.0.macs=3670016`` (torch's
FlopCounterMode figure for the module) was WRONG.  Named as fx's ``nn_module_stack`` says, the block holds them all.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import cli  # noqa: E402
from lm_models import GPT, GPTConfig  # noqa: E402
from torch.utils.checkpoint import checkpoint  # noqa: E402

from archcalc.torch.fx_import import dumps_spec, spec_from_module  # noqa: E402
from archcalc.torch.saved import measure_saved  # noqa: E402

# /tmp/r8/gp.py fl2: 2 layers, 4 heads, 64 dims, vocabulary 100, 64 tokens
CONFIG = GPTConfig(vocab_size=100, block_size=64, n_layer=2, n_head=4, n_embd=64)
T, H = 64, 64


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scopes") / "gpt.json"
    path.write_text(dumps_spec(spec_from_module(GPT(CONFIG), [T])))
    return path


def test_a_blocks_function_calls_are_named_under_the_block(imported: Path) -> None:
    names = [d["name"] for d in json.loads(imported.read_text())["layers"]]
    assert len(names) == len(set(names))  # unique
    block0 = [n for n in names if n.startswith("transformer.h.0.")]
    # the calls of the block's forward and of the modules it traced into, each under its module's name
    for made in ("transformer.h.0.ln_1.layer_norm", "transformer.h.0.ln_2.layer_norm", "transformer.h.0.add",
                 "transformer.h.0.add_2", "transformer.h.0.attn.scaled_dot_product_attention"):
        assert made in block0
    # everything between the block's first and last layer is the block's: one contiguous run of layers
    first, last = names.index(block0[0]), names.index(block0[-1])
    assert names[first:last + 1] == block0
    # a call at the top (the token and position embeddings' sum) keeps fx's node name
    assert "add" in names


def test_the_blocks_macs_are_torchs_for_the_module(imported: Path) -> None:
    # torch's FlopCounterMode for module transformer.h.0 at 64 tokens (MACs = FLOPs / 2), per product:
    # c_attn 64x64 -> 192: 64*64*192; attention q k^T and weights x v: 2 * 64*64*64 (4 heads of 16: 4*64*64*16 each);
    # c_proj 64*64*64; mlp c_fc 64*64*256 and c_proj 64*256*64
    macs = T * H * 3 * H + 2 * T * T * H + T * H * H + 2 * T * H * 4 * H
    assert macs == 3_670_016
    r = cli("check", str(imported), f"transformer.h.0.macs={macs}", "--convention", "torch")
    assert r.code == 0, r.out + r.err


def test_checkpointing_a_block_keeps_what_torch_keeps(imported: Path) -> None:
    """memory --checkpoint transformer.h.0 transformer.h.1 against torch.utils.checkpoint(use_reentrant=False) of each
    Block, measured by autograd's saved-tensor hooks (archcalc.torch.saved)."""
    torch.manual_seed(0)
    model = GPT(CONFIG)
    for block in model.transformer.h:
        block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)
    batch = 2
    measured = measure_saved(model, torch.randint(0, CONFIG.vocab_size, (batch, T))).total
    r = cli("memory", str(imported), "--batch", str(batch), "--checkpoint", "transformer.h.0", "transformer.h.1", "--format", "json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["totals"]["saved_bytes"] == measured
