"""``archcalc import`` fills ``causal_mask.buffer_size`` from the causal-mask buffer a model registers, so that the imported
spec's ``memory`` counts it as a hand-written spec with ``buffer_size`` does.

nanoGPT (model.py, ``flash=False``): ``self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size))
.view(1, 1, block_size, block_size))``, read as ``att.masked_fill(self.bias[:, :, :T, :T] == 0, float('-inf'))``: a
(1, 1, n, n) float32 buffer in every attention layer, n = block_size, 4 * n^2 bytes each (4 * 32 * 32 = 4,096 B for the
block of 32 of tests/lm_models.py's tiny nanoGPT).  Before this, import wrote a bare ``causal_mask`` and ``memory`` left
the buffers out, saying so in its assumptions ("give its buffer_size").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from conftest import cli  # noqa: E402
from lm_models import GPT, GPTConfig, nanogpt_written_out  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from archcalc import analyze  # noqa: E402
from archcalc.graph import compile_spec  # noqa: E402
from archcalc.spec import parse_spec  # noqa: E402
from archcalc.torch.build import build_module  # noqa: E402
from archcalc.torch.fx_import import spec_from_module  # noqa: E402
from archcalc.training import training_memory  # noqa: E402

BLOCK, LAYERS, T = 32, 2, 16  # nanogpt_written_out(): block_size 32, 2 layers; read at 16 tokens
FP32 = 4
NOT_COUNTED = "a causal mask the model keeps as a buffer"  # memory's assumption when a causal_mask has no buffer_size


def _masks(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for d in spec["layers"] if d["type"] == "causal_mask"]


def _without_buffer_size(spec: dict[str, Any]) -> dict[str, Any]:
    return {**spec, "layers": [{k: v for k, v in d.items() if k != "buffer_size"} for d in spec["layers"]]}


def test_nanogpt_mask_buffers_fill_buffer_size() -> None:
    model = nanogpt_written_out()
    spec = spec_from_module(model, [T])
    assert [d["buffer_size"] for d in _masks(spec)] == [BLOCK] * LAYERS
    rows = [r for r in analyze(parse_spec(spec)).rows if r.type == "causal_mask"]
    assert [r.buffers for r in rows] == [1 * 1 * BLOCK * BLOCK] * LAYERS
    # the spec's buffers are the model's: its only ones are the two (1, 1, 32, 32) masks
    assert sum(r.buffers for r in analyze(parse_spec(spec)).rows) == sum(b.numel() for b in model.buffers()) == LAYERS * BLOCK * BLOCK


def test_memory_counts_the_imported_buffers_as_a_hand_written_buffer_size(tmp_path: Path) -> None:
    """The peak of one training step grows by the buffers, l x n^2 fp32 values (2 * 32 * 32 * 4 = 8,192 B), and memory
    no longer says it left them out; the spec is the one a person writes ({"type": "causal_mask", "buffer_size": 32})."""
    spec = spec_from_module(nanogpt_written_out(), [T])
    assert [{k: v for k, v in d.items() if k != "name"} for d in _masks(spec)] == [{"type": "causal_mask", "buffer_size": BLOCK}] * LAYERS
    with_buffer, bare = training_memory(spec, batch=2), training_memory(_without_buffer_size(spec), batch=2)
    assert with_buffer.totals["peak_bytes"] - bare.totals["peak_bytes"] == LAYERS * BLOCK * BLOCK * FP32 == 8192  # type: ignore[operator]
    assert not any(NOT_COUNTED in a for a in with_buffer.assumptions)
    assert any(NOT_COUNTED in a for a in bare.assumptions)
    path = tmp_path / "nanogpt.json"
    assert cli("import", "lm_models:nanogpt_written_out", "--input", str(T), "-o", str(path)).code == 0
    r = cli("memory", str(path), "--batch", "2", "--format", "json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["totals"]["peak_bytes"] == with_buffer.totals["peak_bytes"]


def test_a_spec_built_and_imported_keeps_its_buffer_size() -> None:
    """Round trip: archcalc's CausalMask module of a causal_mask with buffer_size 16 holds the (1, 1, 16, 16) buffer and
    imports back with it."""
    spec = {"name": "att", "input": [8, 16], "layers": [
        {"name": "q", "type": "linear", "out_features": 32}, {"name": "qh", "type": "reshape", "shape": [4, 8, 8]},
        {"name": "k", "type": "linear", "out_features": 32, "inputs": ["input"]}, {"name": "kh", "type": "reshape", "shape": [4, 8, 8]},
        {"name": "kt", "type": "transpose", "dim0": -2, "dim1": -1}, {"name": "scores", "type": "matmul", "inputs": ["qh", "kt"]},
        {"name": "mask", "type": "causal_mask", "buffer_size": 16}, {"name": "p", "type": "softmax", "dim": -1},
        {"name": "ctx", "type": "matmul", "inputs": ["p", "kh"]}]}  # fmt: skip
    model = build_module(compile_spec(parse_spec(spec)))
    assert [tuple(b.shape) for b in model.buffers()] == [(1, 1, 16, 16)]
    assert _masks(spec_from_module(model, [8, 16])) == [{"name": "mask", "type": "causal_mask", "buffer_size": 16}]


def test_a_buffer_shared_by_every_layer_is_counted_once() -> None:
    """One tril tensor registered in both layers: the model holds 32 * 32 values, and so does the spec."""
    model = nanogpt_written_out()
    shared = model.transformer.h[0].attn.bias
    for block in model.transformer.h:
        block.attn.bias = shared
    spec = spec_from_module(model, [T])
    assert [d.get("buffer_size") for d in _masks(spec)] == [BLOCK, None]
    assert sum(r.buffers for r in analyze(parse_spec(spec)).rows) == sum(b.numel() for b in model.buffers()) == BLOCK * BLOCK


class BoolMask(nn.Module):
    """A causal mask kept as a bool tril buffer (1 byte a value), which a causal_mask's buffer_size (the parameters'
    dtype, nanoGPT's fp32) cannot say: not filled, and the spec's description says why."""

    def __init__(self) -> None:
        super().__init__()
        self.c_attn = nn.Linear(32, 96)
        self.register_buffer("mask", torch.ones(BLOCK, BLOCK, dtype=torch.bool).tril().view(1, 1, BLOCK, BLOCK))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, C = x.shape
        q, k, v = self.c_attn(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(B, L, 4, -1).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)).masked_fill(~self.mask[:, :, :L, :L], float("-inf"))
        return (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(B, L, C)


class TwoBoolMasks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = BoolMask(), BoolMask()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def test_a_bool_mask_buffer_is_not_counted_as_fp32() -> None:
    spec = spec_from_module(BoolMask(), [T, 32])
    assert _masks(spec) == [{"name": "masked_fill", "type": "causal_mask"}]
    assert spec["description"].endswith("; causal-mask buffers in bool are not counted (a causal_mask's buffer_size counts a tril(ones) "
                                        "in the parameters' dtype, float32, as nanoGPT's): the first is 'mask'")
    two = spec_from_module(TwoBoolMasks(), [T, 32])  # said once, of the first
    assert [d.get("buffer_size") for d in _masks(two)] == [None, None]
    assert two["description"].count("causal-mask buffers") == 1 and two["description"].endswith("the first is 'a.mask'")


def test_gpt2_written_out_counts_its_twelve_mask_buffers() -> None:
    """GPT-2 small without flash (weights on the meta device, the 12 masks real): 12 x 1024 x 1024 fp32 values,
    48 MiB (12 * 1024 * 1024 * 4 = 50,331,648 B)."""
    with torch.device("meta"):
        model = GPT(GPTConfig(flash=False))
    for block in model.transformer.h:
        block.attn.bias = torch.tril(torch.ones(1024, 1024)).view(1, 1, 1024, 1024)
    spec = spec_from_module(model, [1024])
    assert [d["buffer_size"] for d in _masks(spec)] == [1024] * 12
    assert sum(r.buffers for r in analyze(parse_spec(spec)).rows) * FP32 == 12 * 1024 * 1024 * 4 == 50_331_648


def test_two_causal_buffers_in_one_module_are_not_guessed_between() -> None:
    """Which of two tril buffers the module slices, the trace cannot tell (it holds the slice as a constant): neither is
    counted, and the description says so."""
    model = nanogpt_written_out()
    for block in model.transformer.h:
        block.attn.register_buffer("spare", torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64))
    spec = spec_from_module(model, [T])
    assert [d.get("buffer_size") for d in _masks(spec)] == [None, None]
    assert spec["description"].endswith("causal-mask buffers a module holds several of are not counted (a causal_mask counts the one it "
                                        "slices, buffer_size): transformer.h.0.attn holds 'transformer.h.0.attn.bias', "
                                        "'transformer.h.0.attn.spare'")
