"""The measuring stick on attention (issue 11, item 4), re-measured with torch 2.14.1 on CPU.

torch.utils.flop_counter.FlopCounterMode counts an op only if it has a formula for the kernel that
runs.  On CPU that is not always the case for attention:

* ``F.scaled_dot_product_attention`` picks the CPU flash kernel, which has no formula: 0 FLOPs;
  ``sdpa_kernel(SDPBackend.MATH)`` runs it as two bmm's, which count;
* ``nn.TransformerEncoderLayer`` and ``nn.MultiheadAttention`` in eval under ``no_grad`` take the
  fused fast path (torch._transformer_encoder_layer_fwd / _native_multi_head_attention): 0 FLOPs
  in all (issue 11 measured "part" for MHA with torch 2.13; with 2.14.1 it is nothing);
* with gradients on, the fast path is off but attention still runs the flash kernel: the linear
  layers count (addmm), the attention does not;
* on the ``meta`` device everything counts.

The expected numbers are the formulas: for L = 64 tokens, d = 128, 4 heads, feed-forward 512,
the linear layers are in_proj 64*128*384, out_proj 64*128*128 and the two feed-forward layers
2 * 64*128*512 MACs, the attention 2 * heads * L * L * (d / heads) MACs; FLOPs = 2 x MACs.
archcalc measures on a path that counts everything (archcalc.torch.measure.counting_path).
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from archcalc import analyze, parse_spec  # noqa: E402
from archcalc.torch.measure import counting_path, measure_module  # noqa: E402

L, D, HEADS, FF = 64, 128, 4, 512
LINEAR_FLOPS = 2 * (L * D * 3 * D + L * D * D + 2 * L * D * FF)  # addmm
ATTENTION_FLOPS = 2 * (2 * HEADS * L * L * (D // HEADS))  # bmm


def flops(fn: Any) -> tuple[int, dict[str, int]]:
    with FlopCounterMode(display=False) as m:
        fn()
    return m.get_total_flops(), {str(k): int(v) for k, v in m.get_flop_counts()["Global"].items()}


def encoder(device: str = "cpu") -> nn.Module:
    return nn.TransformerEncoderLayer(D, HEADS, FF, batch_first=True, device=device).eval()


def test_the_formulas() -> None:
    assert LINEAR_FLOPS == 25_165_824
    assert ATTENTION_FLOPS == 2_097_152
    assert LINEAR_FLOPS + ATTENTION_FLOPS == 27_262_976  # issue 11's figure


def test_sdpa_on_cpu_counts_zero_unless_the_math_kernel_runs() -> None:
    q = torch.randn(1, HEADS, L, D // HEADS)
    assert flops(lambda: F.scaled_dot_product_attention(q, q, q)) == (0, {})
    with sdpa_kernel(SDPBackend.MATH):
        assert flops(lambda: F.scaled_dot_product_attention(q, q, q)) == (ATTENTION_FLOPS, {"aten.bmm": ATTENTION_FLOPS})
    qm = q.to("meta")
    assert flops(lambda: F.scaled_dot_product_attention(qm, qm, qm))[0] == ATTENTION_FLOPS


def test_encoder_layer_fast_path_counts_zero_and_grad_mode_misses_attention() -> None:
    layer, x = encoder(), torch.randn(1, L, D)
    with torch.no_grad():
        assert flops(lambda: layer(x)) == (0, {})  # fused fast path
        mha = layer.self_attn
        assert flops(lambda: mha(x, x, x, need_weights=False)) == (0, {})
    # gradients on: no fast path, but attention runs the CPU flash kernel (no formula)
    assert flops(lambda: layer(x)) == (LINEAR_FLOPS, {"aten.addmm": LINEAR_FLOPS})


def test_meta_device_and_the_counting_path_count_everything() -> None:
    layer, x = encoder("meta"), torch.randn(1, L, D, device="meta")
    with torch.no_grad():
        assert flops(lambda: layer(x)) == (LINEAR_FLOPS + ATTENTION_FLOPS, {"aten.addmm": LINEAR_FLOPS, "aten.bmm": ATTENTION_FLOPS})
    cpu, xc = encoder(), torch.randn(1, L, D)
    with torch.no_grad(), counting_path():
        assert flops(lambda: cpu(xc))[0] == LINEAR_FLOPS + ATTENTION_FLOPS
    assert torch.backends.mha.get_fastpath_enabled()  # restored afterwards


def test_measure_module_counts_attention_on_cpu() -> None:
    m = measure_module(encoder(), (L, D))
    assert m.device == "cpu"
    assert m.total_flops == LINEAR_FLOPS + ATTENTION_FLOPS


def test_archcalc_predicts_the_encoder_layer() -> None:
    # the same layer as a spec: MHA, residual, LayerNorm, feed-forward, residual, LayerNorm (post-norm)
    spec = parse_spec({"name": "encoder", "input": [L, D], "layers": [
        {"name": "attn", "type": "multiheadattention", "num_heads": HEADS, "batch_first": True},
        {"name": "add1", "type": "add", "inputs": ["input", "attn"]},
        {"name": "norm1", "type": "layernorm"},
        {"name": "linear1", "type": "linear", "out_features": FF},
        {"name": "relu", "type": "relu"},
        {"name": "linear2", "type": "linear", "out_features": D},
        {"name": "add2", "type": "add", "inputs": ["norm1", "linear2"]},
        {"name": "norm2", "type": "layernorm"},
    ]})
    rep = analyze(spec, convention="torch")
    assert rep.totals["flops"] == LINEAR_FLOPS + ATTENTION_FLOPS
    assert rep.totals["params"] == sum(p.numel() for p in encoder("meta").parameters())
