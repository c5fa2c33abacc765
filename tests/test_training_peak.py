"""The modelled peak of a training step against the peak torch's CPU allocator reaches.

archcalc.torch.peak replays torch.profiler's allocator events (every allocation and free of the
CPU allocator, kernel temporaries included) over one forward and ``output.backward(gradient)``
with the parameters' gradients already allocated, as archcalc's peak assumes.  archcalc's peak
(archcalc.step's walk) must not be below it for these networks, and above it by at most 1% (small convs
of few channels are the stated exception, measured below: the last test): what it models is each
tensor autograd and the layers allocate and free, exactly; what it bounds is oneDNN's copies into
blocked layouts inside conv kernels (the larger of the input and weight, or the output, in the
forward; copies of the output's and input's gradients and of the weight's gradient in the
backward), which vary with the shape: LeNet-5's 5x5 convs with 6 and 16 channels make fewer.
Measured on an AVX2 CPU: LeNet-5 at batch 4 1,029,712 B against archcalc's 1,037,552
(+0.76%, --cpu-conv16 slow); on an AVX-512 one (oneDNN's blocks pad LeNet's 6 and 120 channels to 16 and 128) 1,042,512
against 1,050,480 (+0.76%); DenseNet-121
(concatenations: each input's gradient a view of the concat's) at 3x64x64, batch 2, 89,916,200
against 89,916,200; the symbolic transformer_lm with s=16, h=64, V=100, l=2, a=4 (a tied output
head: its weight's gradient waits for the embedding's), batch 2, 1,282,688 against 1,282,688 (1,282,944
before session 10, which counted the token ids twice: see the last test);
with a 5,000-word vocabulary and ``--loss cross_entropy``, whose backward (the log-softmax, its
gradient and the logits') is then the largest moment, 6,661,128 against 6,661,132.  Under
``--amp`` (``torch.autocast("cpu", bfloat16)``) a layer run in bf16 makes its weights' gradients
in bf16 and ToCopyBackward casts them to fp32 right after: DenseNet-121 95,270,296 against
95,274,296, transformer_lm 1,318,912 against 1,319,168.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import SPECS, checkpointed

pytestmark = pytest.mark.torch


@pytest.mark.parametrize(
    ("spec", "batch", "values", "shape", "loss"),
    [
        ("lenet5.json", 4, None, None, "none"),
        ("densenet121.json", 2, None, [3, 64, 64], "none"),
        ("transformer_lm.json", 2, {"s": 16, "h": 64, "V": 100, "l": 2, "a": 4}, None, "none"),
        ("transformer_lm.json", 2, {"s": 32, "h": 32, "V": 5000, "l": 1, "a": 2}, None, "cross_entropy"),
        ("densenet121.json", 2, None, [3, 64, 64], "amp"),
        ("transformer_lm.json", 2, {"s": 16, "h": 64, "V": 100, "l": 2, "a": 4}, None, "amp"),
        # review s8 #9: nanoGPT's sizes (1 layer, 4 heads, 64 dims, 64 tokens, vocabulary 100), whose peak is
        # the MLP's c_proj backward, where the engine casts the residual add's fp32 gradient to the bf16 of
        # c_proj's output: 2 * 64 * 64 * 2 = 16,384 B that were missing (measured 1.4% below before)
        ("transformer_lm.json", 2, {"s": 64, "h": 64, "V": 100, "l": 1, "a": 4}, None, "amp"),
    ],
)
def test_modelled_peak_is_the_measured_one_within_one_percent_above(
    spec: str, batch: int, values: dict[str, int] | None, shape: list[int] | None, loss: str
) -> None:
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_graph
    from archcalc.spec import load_spec
    from archcalc.torch.build import build_module
    from archcalc.torch.peak import measure_peak
    from archcalc.training import training_memory_from_graph

    torch.manual_seed(0)
    G = compile_graph(load_spec(SPECS / spec), values=values, input_shape=shape)
    model = build_module(G)
    dims = tuple(G.graph["input_shape"])
    x = torch.randint(0, 100, (batch, *dims)) if model.input_dtype == torch.long else torch.randn(batch, *dims)
    amp = loss == "amp"
    measured = measure_peak(model, x, "none" if amp else loss, torch.bfloat16 if amp else None).peak
    conv16 = _conv16_here()  # how this CPU runs 16-bit kernels (AVX-512: in oneDNN, whose blocked layouts pad channels to 16)
    report = training_memory_from_graph(G, batch=batch, loss="none" if amp else loss, amp=amp, cpu_conv16=conv16)
    modelled = report.totals["peak_bytes"]
    assert isinstance(modelled, int)
    if amp and conv16 == "onednn" and spec == "transformer_lm.json":
        # an AVX-512 BF16 CPU (AMD EPYC, 2026-12-02): oneDNN's bf16 matmuls allocate packing scratchpads that archcalc
        # does not model (30,464 to 91,904 B each, inside aten::mm of the backward): measured 1,336,960 against
        # 1,319,168 (+1.3%) and, at nanoGPT's sizes, 1,175,296 against 1,108,096 (+6.1%).  The figure is a floor, and says so.
        assert modelled <= measured <= modelled * 107 // 100, (measured, modelled)
        assert any("packing scratchpads" in why for why in report.not_counted.values())
        return
    assert measured <= modelled <= measured * 101 // 100, (measured, modelled)


@pytest.mark.parametrize("blocks", [["layer1"], ["layer1", "layer2", "layer3"]])
def test_checkpointed_peak_is_the_measured_one_within_one_percent_above(blocks: list[str]) -> None:
    # ResNet-18 at batch 2 with blocks under torch.utils.checkpoint (use_reentrant=False), the other
    # layers run as the spec's module runs them (each output freed after its last reader): the walk
    # adds a block's saved tensors back when its backward starts (measured at batch 4: 179,132,064
    # against 179,934,880 with layer1, 166,797,472 against 166,944,928 with layer1-3, each block with its 5,056-byte
    # generator state; 202,410,720 without)
    torch = pytest.importorskip("torch")

    from archcalc.graph import compile_graph
    from archcalc.spec import load_spec
    from archcalc.torch.build import build_module
    from archcalc.torch.peak import measure_peak
    from archcalc.training import training_memory_from_graph

    G = compile_graph(load_spec(SPECS / "resnet18.json"))
    model = build_module(G)
    torch.manual_seed(0)
    measured = measure_peak(checkpointed(G, model, blocks, reentrant=False, free=True), torch.randn(2, *G.graph["input_shape"])).peak
    modelled = training_memory_from_graph(compile_graph(load_spec(SPECS / "resnet18.json")), batch=2, checkpoint=blocks).totals["peak_bytes"]
    assert isinstance(modelled, int)
    assert measured <= modelled <= measured * 101 // 100, (measured, modelled)


def test_few_channel_convs_measure_above_the_modelled_peak_and_the_output_says_so() -> None:
    # review s7 #29: oneDNN's convolution_backward keeps scratch copies per CPU thread that the rule
    # does not model; two 3x3 convs of 4 channels on 8x8 maps and a 1x1 conv, batch 2, measure
    # 25,488 B on 1 thread and 52,400 on 2 against archcalc's 20,080 (README, "Measured")
    torch = pytest.importorskip("torch")
    from torch import nn

    from archcalc.torch.peak import measure_peak
    from archcalc.training import training_memory

    spec = {
        "name": "few",
        "input": [4, 8, 8],
        "layers": [
            {"name": "c0", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"name": "c1", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"name": "fc", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
        ],
    }
    m = training_memory(spec, batch=2)
    # parameters, gradients: 2 * (2 * (4*4*9 + 4) + 4*4 + 4) * 4 bytes; then the walk's moments
    assert m.totals["param_bytes"] == (2 * (4 * 4 * 9 + 4) + 4 * 4 + 4) * 4
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1))
        measured = measure_peak(model, torch.randn(2, 4, 8, 8))
    finally:
        torch.set_num_threads(threads)
    assert measured.peak > m.totals["peak_bytes"], (measured.peak, m.totals["peak_bytes"])
    stated = " ".join(m.assumptions)
    assert "below the peak" in stated and "grows with the CPU threads" in stated and "4 channels on 8x8 maps" in stated


def _conv16_here() -> str:
    """How this machine's torch runs bf16 convs: oneDNN where it supports bf16 (AVX-512, AMX), else its slow kernel."""
    import torch

    return "onednn" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "slow"


def _three_convs(c_in: int) -> dict[str, object]:
    conv = {"type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1}
    return {"name": "three", "input": [c_in, 64, 64], "layers": [{**conv, "name": f"c{i}"} for i in range(3)]}


def test_bf16_convs_on_a_cpu_without_onednn_bf16_count_torchs_im2col_columns() -> None:
    # a colleague's report: three 64-channel 3x3 convs on 3x64x64, batch 2, --amp: torch measured
    # 15,657,472 B (in aten::_slow_conv2d_backward), archcalc said 8,391,168, 7,266,304 below for 3,
    # 16 and 64 input channels.  Torch's slow kernel (ConvolutionMM2d.cpp) unfolds the input into
    # columns of 64*3*3 x 64*64 bf16 per sample in the backward, where oneDNN's copies are the
    # output's gradient, the input's (2 x 64*64*64 each per sample) and the weight's gradient
    from archcalc.training import training_memory

    for c_in in (3, 16, 64):
        slow = training_memory(_three_convs(c_in), batch=2, amp=True, cpu_conv16="slow").totals["peak_bytes"]
        onednn = training_memory(_three_convs(c_in), batch=2, amp=True, cpu_conv16="onednn").totals["peak_bytes"]
        either = training_memory(_three_convs(c_in), batch=2, amp=True)
        assert isinstance(slow, int) and isinstance(onednn, int)
        assert slow - onednn == 2 * (64 * 3 * 3 * 64 * 64) * 2 - (2 * (64 * 64 * 64 + 64 * 64 * 64) + 64 * 64 * 3 * 3) * 2 == 7_266_304
        assert either.totals["peak_bytes"] == max(slow, onednn)  # the CPU's kind not given: the larger, and it says so
        assert any("--cpu-conv16" in a and "c1" in a for a in either.assumptions)


@pytest.mark.parametrize(
    ("layers", "shape", "batch", "mode"),
    [
        ([{"type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1}] * 3, (3, 64, 64), 2, "amp"),
        ([{"type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1}] * 3, (64, 64, 64), 1, "amp"),
        ([{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}] * 2, (8, 16, 16), 3, "bfloat16"),
        ([{"type": "conv2d", "out_channels": 16, "kernel_size": 5, "stride": 2, "padding": 2}] * 2, (8, 32, 32), 2, "amp"),
        ([{"type": "conv2d", "out_channels": 32, "kernel_size": 1}] * 2, (16, 16, 16), 2, "bfloat16"),  # bias: an fp32 copy
        ([{"type": "conv2d", "out_channels": 32, "kernel_size": 1}] * 2, (16, 16, 16), 1, "bfloat16"),  # batch 1: none
        ([{"type": "conv2d", "out_channels": 32, "kernel_size": 3, "stride": 2, "padding": 1, "bias": False}] * 2, (4, 32, 32), 3, "amp"),
        ([{"type": "conv1d", "out_channels": 16, "kernel_size": 3, "padding": 1}] * 2, (8, 64), 2, "amp"),
        # float32 at batch 1 on maps of at most 20,480 elements: torch's slow kernel on every CPU (use_mkldnn)
        ([{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}] * 2, (8, 16, 16), 1, "float32"),
        ([{"type": "conv2d", "out_channels": 32, "kernel_size": 3, "stride": 2, "padding": 1, "bias": False}] * 2, (4, 32, 32), 1, "float32"),
    ],
)
def test_torchs_slow_conv_kernel_is_modelled_to_the_byte(layers: list[dict[str, object]], shape: tuple[int, ...], batch: int, mode: str) -> None:
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_graph
    from archcalc.spec import parse_spec
    from archcalc.torch.build import build_module
    from archcalc.torch.peak import measure_peak
    from archcalc.training import training_memory

    if mode != "float32" and _conv16_here() != "slow":
        pytest.skip("this CPU runs bf16 convs in oneDNN (AVX-512/AMX): torch's slow kernel is not what runs here")
    spec = {"name": "slow", "input": list(shape), "layers": layers}
    kw = {"amp": True} if mode == "amp" else {"dtype": mode}
    modelled = training_memory(spec, batch=batch, cpu_conv16="slow", **kw).totals["peak_bytes"]
    torch.manual_seed(0)
    model = build_module(compile_graph(parse_spec(spec)))
    x = torch.randn(batch, *shape)
    if mode == "bfloat16":
        model, x = model.to(torch.bfloat16), x.to(torch.bfloat16)
    measured = measure_peak(model, x, autocast=torch.bfloat16 if mode == "amp" else None)
    assert modelled == measured.peak, (modelled, measured.peak, measured.op)


def test_a_symbolic_batch_is_piecewise_where_batch_one_runs_another_conv_kernel() -> None:
    # float32 3x3 convs on 8x16x16 maps (2,048 elements, under use_mkldnn's 20,480): torch's slow
    # kernel at batch 1, oneDNN from batch 2; the formula in N gives each
    import sympy

    from archcalc.options import parse_batch
    from archcalc.training import training_memory

    spec = {"name": "p", "input": [8, 16, 16], "layers": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}] * 2}
    m = training_memory(spec, batch=parse_batch("N", {}))
    peak = sympy.sympify(m.totals["peak_bytes"])
    assert isinstance(peak, sympy.Piecewise)
    for n in (1, 2, 5):
        assert peak.subs({s: n for s in peak.free_symbols}) == training_memory(spec, batch=n).totals["peak_bytes"]
    assert any("at batch 1" in a for a in m.assumptions)


def test_a_causal_mask_buffer_is_counted_and_the_peak_is_the_measured_one(tmp_path: Any) -> None:
    """Review s8 #9: nanoGPT (flash=False) keeps tril(ones(block_size, block_size)) as an fp32 buffer; with
    the causal_mask's buffer_size the spec counts it (4 * 16 * 16 = 1,024 B for a block of 16 read at 8
    tokens) and the modelled peak is the one torch measures on the model built from the spec (27,200 B at
    batch 2, both)."""
    import json

    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_graph
    from archcalc.spec import load_spec
    from archcalc.torch.build import build_module
    from archcalc.torch.peak import measure_peak
    from archcalc.training import training_memory_from_graph

    def spec(buffer: int | None) -> Any:
        mask: dict[str, Any] = {"name": "mask", "type": "causal_mask"} | ({"buffer_size": buffer} if buffer else {})
        d = {"name": "att", "input": [8, 16], "layers": [
            {"name": "q", "type": "linear", "out_features": 32}, {"name": "qh", "type": "reshape", "shape": [4, 8, 8]},
            {"name": "k", "type": "linear", "out_features": 32, "inputs": ["input"]}, {"name": "kh", "type": "reshape", "shape": [4, 8, 8]},
            {"name": "kt", "type": "transpose", "dim0": -2, "dim1": -1}, {"name": "scores", "type": "matmul", "inputs": ["qh", "kt"]},
            mask, {"name": "p", "type": "softmax", "dim": -1}, {"name": "ctx", "type": "matmul", "inputs": ["p", "kh"]}]}  # fmt: skip
        path = tmp_path / f"att{buffer}.json"
        path.write_text(json.dumps(d))
        return compile_graph(load_spec(path))

    with_buffer, without = spec(16), spec(None)
    modelled = training_memory_from_graph(with_buffer, batch=2).totals["peak_bytes"]
    assert modelled - training_memory_from_graph(without, batch=2).totals["peak_bytes"] == 4 * 16 * 16
    torch.manual_seed(0)
    model = build_module(with_buffer)
    assert [tuple(b.shape) for b in model.buffers()] == [(1, 1, 16, 16)]
    measured = measure_peak(model, torch.randn(2, 8, 16)).peak
    assert isinstance(modelled, int) and measured <= modelled <= measured * 101 // 100, (measured, modelled)


# ----- review s9 #3: CPU flash attention's per-thread buffers; multi-head attention's inner moments ------------------


def _sdpa_heads(length: int) -> dict[str, object]:
    """The review's spec: q, k, v linears of 64, 4 heads of 16, causal flash attention, the last layer."""
    layers: list[dict[str, object]] = [{"name": x, "type": "linear", "out_features": 64, "inputs": ["input"]} for x in "qkv"]
    for x in "qkv":
        layers += [
            {"name": f"{x}h", "type": "reshape", "shape": [-1, 4, 16], "inputs": [x]},
            {"name": f"{x}t", "type": "transpose", "dim0": 1, "dim1": 2},
        ]
    layers.append({"name": "att", "type": "scaled_dot_product_attention", "is_causal": True, "inputs": ["qt", "kt", "vt"]})
    return {"name": "sd", "input": [length, 64], "layers": layers}


def _measured_on(threads: int, spec: dict[str, Any], batch: int, ids: bool = False) -> int:
    """torch's peak for ``spec`` on ``threads`` threads; ``ids``: its input is token ids (int64, below 100)."""
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_graph
    from archcalc.spec import parse_spec
    from archcalc.torch.build import build_module
    from archcalc.torch.peak import measure_peak

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = build_module(compile_graph(parse_spec(spec)))
        x = torch.randint(0, 100, (batch, *spec["input"])) if ids else torch.randn(batch, *spec["input"])
        return measure_peak(model, x).peak
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("length", "q_split", "kv_split", "before", "measured_2"),
    [(64, 32, 64, 396_800, 429_696), (256, 64, 256, 1_287_680, 1_550_080)],  # the review's figures (torch 2.14.1, 2 threads)
)
def test_cpu_flash_attention_backward_counts_its_buffers_per_thread(length: int, q_split: int, kv_split: int, before: int, measured_2: int) -> None:
    # FlashAttentionKernel.cpp, cpu_flash_attention_backward: buf, 2 * qSplit * kvSplit fp32 per thread (the
    # probabilities and their gradient), and dsum, qSplit fp32, in each thread that runs (8 heads in the batch: both).
    # torch.profiler sees the calling thread's allocations only: the measured peak holds one dsum.
    from archcalc.training import training_memory

    spec = _sdpa_heads(length)
    buf, dsum = 2 * q_split * kv_split * 4, q_split * 4
    for threads in (1, 2):
        m = training_memory(spec, batch=2, cpu_threads=threads)
        assert m.totals["peak_bytes"] == before + threads * (buf + dsum)
        assert "att" not in m.not_counted  # the threads are given: nothing left out
        assert m.totals["peak_bytes"] == _measured_on(threads, spec, 2) + (threads - 1) * dsum
    assert _measured_on(2, spec, 2) == measured_2
    # the threads not given: one thread's buffers counted, the rest said, and the peak reads "at least"
    m = training_memory(spec, batch=2)
    assert m.totals["peak_bytes"] == before + buf + dsum
    assert f"each further thread adds {buf + dsum:,} bytes" in m.not_counted["att"]
    assert "at least" in m.render("text")


def test_fit_does_not_say_a_batch_fits_on_a_floor() -> None:
    # review s9 #3: 1,024 tokens, 64 MiB, 2 threads: archcalc said "largest batch: 28"; batch 28 measures 68,717,056 B
    # (> 67,108,864).  Now, with the threads given, 27: 2,199,040 + 27 * 2,375,680 = 66,342,400 B, measured 66,341,376
    # (the other thread's 1,024-byte dsum unseen); without them the batch found is an upper bound, and said so
    from tests.conftest import cli

    spec = _sdpa_heads(1024)
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sd.json"
        path.write_text(json.dumps(spec))
        exact = cli("fit", str(path), "--memory", "64MiB", "--cpu-threads", "2")
        floor = cli("fit", str(path), "--memory", "64MiB")
        bad = cli("fit", str(path), "--memory", "64MiB", "--cpu-threads", "0")
    assert exact.code == 0 and "largest batch: 27 (peak 66,342,400 bytes" in exact.out
    assert "2,199,040 + 2,375,680*N" in exact.out and 2_199_040 + 27 * 2_375_680 == 66_342_400
    assert floor.code == 0 and "largest batch: at most 27" in floor.out and "may not fit" in floor.out
    assert bad.code == 2 and "--cpu-threads" in bad.err
    assert _measured_on(2, spec, 27) == 66_341_376 <= 64 * 2**20


@pytest.mark.parametrize(
    ("layers", "batch", "measured", "modelled"),
    [
        # self-attention, 64 tokens of 64, 4 heads, the last layer (the caller holds its output's gradient): the peak is
        # flash's backward: params and grads 2 * 16,640 * 4, the input 32,768, saved (the projection's input copy, the
        # packed q, k, v, the heads' output, the logsumexp) 5 * 32,768 + 2,048, the output and its gradient 2 * 32,768,
        # the out projection's input gradient 32,768, the zeroed q, k, v gradients 3 * 32,768, grad_out's copy 32,768,
        # buf 2 * 16,384 and 2 dsum of 128 (X = 2 * 64 * 64 * 4 = 32,768): 594,176; measured 594,048; archcalc said 463,872
        ([{"name": "a", "type": "multiheadattention", "num_heads": 4}], 2, 594_048, 2 * 16_640 * 4 + 32_768 + 5 * 32_768 + 2_048
         + 2 * 32_768 + 32_768 + 3 * 32_768 + 32_768 + 2 * 16_384 + 2 * 128),
        # between two linears: the attention's output gradient is freed after the out projection's backward
        ([{"name": "f", "type": "linear", "out_features": 64}, {"name": "a", "type": "multiheadattention", "num_heads": 4},
          {"name": "g", "type": "linear", "out_features": 8}], 2, 574_144, 574_144 + 128),
        # 16 tokens of 256: the in projection's backward is the largest moment (its weight's gradient, 768 x 256)
        ([{"name": "a", "type": "multiheadattention", "num_heads": 4}], 2, 3_121_152, 3_121_152),
    ],
)
def test_multihead_attention_moments_inside_the_module(layers: list[dict[str, object]], batch: int, measured: int, modelled: int) -> None:
    from archcalc.training import training_memory

    spec = {"name": "m", "input": [16, 256] if measured == 3_121_152 else [64, 64], "layers": layers}
    assert training_memory(spec, batch=batch, cpu_threads=2).totals["peak_bytes"] == modelled
    assert _measured_on(2, spec, batch) == measured


def test_bf16_conv_scratchpad_on_an_avx512_cpu_is_flagged() -> None:
    # review s9 #3(b): 3x3 convs of 8 channels (plain, reflect, replicate, circular) on 3x16x16, batch 2, --amp,
    # --cpu-conv16 onednn: 160,128 B counted, 208,800 measured on 2 threads (167,328 on 1): oneDNN's 16-bit backward
    # allocates a scratchpad of 5,152 + 41,472 bytes per thread (c3's weight gradient), sized by its blocking, not a copy
    # of a known shape: said not counted, and the peak reads "at least"
    from archcalc.training import training_memory

    conv = {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}
    spec = {"name": "pm2", "input": [3, 16, 16], "layers": [{**conv, "name": "c0"}] + [
        {**conv, "name": f"c{i}", "padding_mode": mode} for i, mode in enumerate(("reflect", "replicate", "circular"), start=1)]}
    m = training_memory(spec, batch=2, amp=True, cpu_conv16="onednn")
    assert m.totals["peak_bytes"] == 160_128
    assert all("oneDNN's scratchpad for the 16-bit backward" in m.not_counted[c] for c in ("c0", "c1", "c2", "c3"))
    assert "at least" in m.render("text")
    assert not training_memory(spec, batch=2, amp=True, cpu_conv16="slow").not_counted


def test_checkpointing_keeps_the_cpu_generators_state() -> None:
    # review s9 #11: transformer_lm (s 64, h 64, 4 heads, V 100, 3 layers), batch 2, transformer.h.1 checkpointed
    # (use_reentrant=False, 2 threads): measured 2,738,368 B, archcalc said 2,734,336.  torch.utils.checkpoint keeps
    # torch.get_rng_state() (5,056 bytes) from the block's forward to its backward: 2,734,336 + 5,056 = 2,739,392; less
    # the token ids counted twice until session 10 (2 * 64 int64, the embedding's indices: the caller's batch itself)
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_graph
    from archcalc.spec import load_spec
    from archcalc.torch.build import build_module
    from archcalc.torch.peak import measure_peak
    from archcalc.training import training_memory_from_graph

    values = {"s": 64, "h": 64, "a": 4, "V": 100, "l": 3}
    assert torch.get_rng_state().numel() == 5056
    G = compile_graph(load_spec(SPECS / "transformer_lm.json"), values=values)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        torch.manual_seed(0)
        model = checkpointed(G, build_module(G), ["transformer.h.1"], reentrant=False, free=True)
        measured = measure_peak(model, torch.randint(0, 100, (2, 64))).peak
    finally:
        torch.set_num_threads(before)
    m = training_memory_from_graph(compile_graph(load_spec(SPECS / "transformer_lm.json"), values=values), batch=2,
                                   checkpoint=["transformer.h.1"])  # fmt: skip
    assert m.totals["peak_bytes"] == 2_734_336 + 5_056 - 2 * 64 * 8
    assert measured == 2_738_368
    assert measured <= m.totals["peak_bytes"] <= measured * 1001 // 1000
    assert any("get_rng_state" in a for a in m.assumptions)


# ----- session 10: cross-attention multi-head attention (query from one input, key and value from others) -----------


def _cross(length: int, e: int = 32, kv: str = "kqv", batch_first: bool = False) -> dict[str, object]:
    """Queries from the input (no gradient), keys and values from linears of it (``kv``: one linear read as both)."""
    layers: list[dict[str, object]] = [{"name": "k", "type": "linear", "out_features": e, "inputs": ["input"]}]
    if kv == "kqv":
        layers.append({"name": "v", "type": "linear", "out_features": e, "inputs": ["input"]})
    attn = {"name": "a", "type": "multiheadattention", "num_heads": 4, "batch_first": batch_first}
    layers.append({**attn, "inputs": ["input", "k", "v" if kv == "kqv" else "k"]})
    return {"name": "cross", "input": [length, e], "layers": layers}


def test_cross_attention_flash_backward_does_not_count_the_key_and_value_input_gradients() -> None:
    # 64 queries of 32 attending to 64 keys, 4 heads, batch 2, 1 thread: the peak is flash attention's backward, before
    # the in projection's backward makes k's and v's input gradients; archcalc counted them made there: 347,776 B,
    # 2 * X above torch's 315,008 (X = 2 * 64 * 32 * 4 = 16,384 B, one (64, 32) fp32 tensor at batch 2)
    from archcalc.training import training_memory

    spec = _cross(64)
    x = 2 * 64 * 32 * 4
    params = 3 * 32 * 32 + 3 * 32 + 32 * 32 + 32 + 2 * (32 * 32 + 32)  # in_proj, out_proj, the k and v linears
    expected = (
        2 * params * 4  # parameters and their gradients
        + x  # the input batch
        + 3 * x + 3 * x + x + 4 * 64 * 4 * 2  # saved: the in projections' input copies, q, k, v, the heads' output, the logsumexp
        + 2 * x  # the output and its gradient (the caller's)
        + x  # the out projection's input gradient
        + 3 * x + x  # flash's zero-filled q, k, v gradients and its copy of the output's gradient
        + 2 * 32 * 64 * 4 + 32 * 4  # its buffers: 2 x qSplit (32) x kvSplit (64) fp32, and qSplit row sums (one thread)
    )
    assert expected == 315_008
    assert training_memory(spec, batch=2, cpu_threads=1).totals["peak_bytes"] == expected
    assert _measured_on(1, spec, 2) == expected


@pytest.mark.parametrize(("kv", "batch_first", "measured"), [("kqv", False, 4_894_720), ("k", False, 4_335_616), ("k", True, 4_335_616)])
def test_cross_attention_counts_the_concatenated_in_projection_weight_gradient(kv: str, batch_first: bool, measured: int) -> None:
    # 16 queries of 256 attending to 16 keys, 4 heads, batch 2, 1 thread.  With q, k, v separate tensors,
    # F._in_projection_packed reads in_proj_weight.chunk(3): each linear's weight gradient is a slice, and
    # SplitBackward0 concatenates the three into a new tensor, all four alive (twice the weight).  archcalc's
    # largest moment for the layer was its walk's (every gradient made, nothing released): 4,604,416 B, 290,304 below
    # torch (4,078,080 for one linear read as k and v, 257,536 below: torch's encoder-decoder path, in_proj_weight split
    # into q's rows and k's and v's, SplitWithSizesBackward0's cat).  Alive in the cat (X = 2 * 16 * 256 * 4 = 32,768 B):
    from archcalc.training import training_memory

    spec = _cross(16, 256, kv, batch_first)
    x = 2 * 16 * 256 * 4
    linears = 2 if kv == "kqv" else 1
    params = 3 * 256 * 256 + 3 * 256 + 256 * 256 + 256 + linears * (256 * 256 + 256)  # in_proj, out_proj, the k (and v) linears
    expected = (
        2 * params * 4  # parameters and their gradients
        + x  # the input batch
        + 2 * x  # the output and its gradient (the caller's)
        + linears * x  # k's and v's input gradients (one: one tensor projected once), waiting for the linears that made them
        + 2 * 3 * 256 * 256 * 4  # in_proj_weight's gradient: three slices and their concatenation
    )  # (the layer's saved tensors, its projections' gradients and its bias's already released)
    assert expected == measured
    assert training_memory(spec, batch=2, cpu_threads=1).totals["peak_bytes"] == expected
    assert _measured_on(1, spec, 2) == expected


def test_an_in_projection_on_its_input_itself_is_one_addmm_whose_backward_makes_the_bias_gradient_with_the_weights() -> None:
    # 16 tokens of 256, 4 heads, a second multi-head attention reading the first's output, batch 2, 1 thread: that
    # output is laid out (L, N, E), so the second's in projection reads it without a copy and torch's linear runs one
    # addmm (at::linear on a contiguous 3-D input), whose backward makes the weight's gradient and then sums the bias's
    # (a copy runs matmul then add: the bias's gradient goes to .grad first).  The peak is there; archcalc said
    # 5,423,616 B, in_proj_bias's gradient (3 * 256 fp32) below torch
    from archcalc.training import training_memory

    spec = {"name": "two", "input": [16, 256], "layers": [
        {"name": "a", "type": "multiheadattention", "num_heads": 4}, {"name": "b", "type": "multiheadattention", "num_heads": 4}]}  # fmt: skip
    expected = 5_423_616 + 3 * 256 * 4
    assert training_memory(spec, batch=2, cpu_threads=1).totals["peak_bytes"] == expected
    assert _measured_on(1, spec, 2) == expected == 5_426_688


def test_multihead_attention_at_batch_one_keeps_its_input_not_a_copy() -> None:
    # F.multi_head_attention_forward reads its (1, L, E) input transposed, (L, 1, E): flattening it for the in
    # projection drops the size-1 axis, a view, so torch keeps the input itself (here the caller's batch) where at
    # batch 2 it keeps a contiguous copy.  archcalc counted the copy at batch 1 too: 347,264 B, 16,384 above torch.
    # Self-attention of 64 tokens of 64, 4 heads, 1 thread; the peak is flash's backward (X = 64 * 64 * 4 = 16,384 B):
    import sympy

    from archcalc.options import parse_batch
    from archcalc.training import training_memory

    spec = {"name": "self", "input": [64, 64], "layers": [{"name": "a", "type": "multiheadattention", "num_heads": 4}]}
    x = 64 * 64 * 4
    expected = (
        2 * (3 * 64 * 64 + 3 * 64 + 64 * 64 + 64) * 4  # parameters and their gradients
        + x  # the input batch, which the in projection keeps (no copy)
        + 3 * x + x + 4 * 64 * 4  # saved: the packed q, k, v projection, the heads' output, the logsumexp
        + 2 * x  # the output and its gradient (the caller's)
        + x  # the out projection's input gradient
        + 3 * x  # flash's zero-filled q, k, v gradients (its output's gradient is not copied at batch 1)
        + 2 * 32 * 64 * 4 + 32 * 4  # its buffers: 2 x qSplit (32) x kvSplit (64) fp32, and qSplit row sums (one thread)
    )
    assert expected == 330_880
    assert training_memory(spec, batch=1, cpu_threads=1).totals["peak_bytes"] == expected
    assert _measured_on(1, spec, 1) == expected
    # a symbolic batch: the lines hold from batch 2 (the copy), batch 1 apart
    m = training_memory(spec, batch=parse_batch("N", {}), cpu_threads=1)
    peak = sympy.sympify(m.totals["peak_bytes"])
    for n in (1, 2, 3):
        assert peak.subs({s: n for s in peak.free_symbols}) == training_memory(spec, batch=n, cpu_threads=1).totals["peak_bytes"]
    assert any("at batch 1" in a and "multi-head attention" in a for a in m.assumptions)


def test_the_token_embedding_keeps_the_callers_token_ids_not_a_copy() -> None:
    # session 10 (closing s9: transformer_lm's peak 1,024-1,280 B above torch inside c_proj's backward): F.embedding saves
    # its input, the int64 token ids, as its indices: the caller's batch itself, alive throughout the step already.
    # archcalc counted them again, as a new tensor: 2 * 64 * 8 = 1,024 B above torch at 64 tokens, batch 2 (and
    # 256 B at the 16 tokens of the first test).  The saved bytes do not change: the ids are counted once, as the input.
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_graph
    from archcalc.spec import load_spec
    from archcalc.torch.build import build_module
    from archcalc.torch.peak import measure_peak
    from archcalc.training import training_memory_from_graph

    values = {"s": 64, "h": 64, "V": 100, "l": 1, "a": 4}
    G = compile_graph(load_spec(SPECS / "transformer_lm.json"), values=values)
    m = training_memory_from_graph(G, batch=2, cpu_threads=1)
    assert m.totals["peak_bytes"] == 1_373_440 - 2 * 64 * 8  # archcalc's figure before, less the ids' second count
    assert m.totals["saved_bytes"] == 596_480
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        measured = measure_peak(build_module(G), torch.randint(0, 100, (2, 64)))
    finally:
        torch.set_num_threads(before)
    assert measured.peak == m.totals["peak_bytes"] == 1_372_416


_TOKENS = {"name": "e", "type": "embedding", "num_embeddings": 100, "embedding_dim": 32}
_POSITIONS = {"name": "p", "type": "embedding", "num_embeddings": 256, "embedding_dim": 32, "indices": "positions", "inputs": ["input"]}


def test_learned_positions_sum_their_gradient_over_the_batch_before_the_embeddings_backward() -> None:
    # review s10 #11: token + learned-position embeddings summed, nothing after, batch 2, 2 threads: archcalc said
    # 261,120 B (no "at least"), torch peaks at 293,888 in p's embedding_dense_backward.  The module looks p's rows up
    # once, (256, 32), and expands them over the batch; ExpandBackward0 (at::sum_to) sums the (2, 256, 32) gradient into
    # a new (256, 32) tensor before EmbeddingBackward0 runs, and the walk did not count it.  embedding_dense_backward_cpu
    # (aten/src/ATen/native/Embedding.cpp) itself allocates through torch's allocator only grad_weight (at::zeros) and
    # grad_.contiguous() (no copy: the sum is dense); its threads split the table's rows, with no buffers of their own,
    # so 1 and 2 threads measure the same.
    from archcalc.options import parse_batch
    from archcalc.training import training_memory

    spec = {"name": "s", "input": [256], "layers": [_TOKENS, _POSITIONS, {"name": "a", "type": "add", "inputs": ["e", "p"]}]}
    f = 4  # float32
    held = 2 * (100 * 32 + 256 * 32) * f + 2 * 256 * 8  # the weights and their gradients (45,568 B each), the int64 token ids
    expected = (
        held
        + 2 * (2 * 256 * 32 * f)  # the output a and its gradient (the caller's ones_like), (2, 256, 32) each
        + 256 * 8  # p's saved indices, arange(256), int64
        + 256 * 32 * f  # ExpandBackward0's sum of the gradient over the batch: p's (256, 32) rows
        + 256 * 32 * f  # embedding_dense_backward_cpu's grad_weight = at::zeros(256, 32), p's weight's gradient
    )
    assert expected == 293_888 == 261_120 + 256 * 32 * f  # archcalc's figure before, less the sum
    for threads in (1, 2):
        assert training_memory(spec, batch=2, cpu_threads=threads).totals["peak_bytes"] == expected
        assert _measured_on(threads, spec, 2, ids=True) == expected
    # batch 1: sum_to hands the gradient on as it is (nothing summed); the peak is a's forward: e's, p's and a's outputs
    one = held - 256 * 8 + 3 * (256 * 32 * f) + 256 * 8  # one sample's ids (held has two), the outputs, p's indices
    assert one == 193_536 == training_memory(spec, batch=1, cpu_threads=2).totals["peak_bytes"] == _measured_on(2, spec, 1, ids=True)
    # a symbolic batch counts the sum; batch 1 apart
    import sympy

    peak = sympy.sympify(training_memory(spec, batch=parse_batch("N", {}), cpu_threads=2).totals["peak_bytes"])
    for n in (1, 2, 3):
        assert peak.subs({s: n for s in peak.free_symbols}) == training_memory(spec, batch=n, cpu_threads=2).totals["peak_bytes"]


@pytest.mark.parametrize(
    ("layers", "batch", "before", "measured"),
    [
        # learned positions alone: the output's gradient, the caller's ones_like of the expanded (2, 64, 32) output, is
        # the batch's size (archcalc counted it as the table's rows, (64, 32)), and summed (16,384 B each: 42,496 + 2 x 8,192)
        ([{**_POSITIONS, "num_embeddings": 64}], 2, 42_496, 58_880),
        # BERT's token types (row 0 everywhere): the same, its table of 2 rows
        ([{"name": "z", "type": "embedding", "num_embeddings": 2, "embedding_dim": 32, "indices": "zeros", "inputs": ["input"]}], 2, 18_688, 35_072),
        # a linear on learned positions: its reshape of the expanded (2, 64, 32) input to (128, 32) is a copy, which it
        # keeps (archcalc kept the (64, 32) table instead), and its input's gradient is (2, 64, 32); modelled 64 B above
        # (the bias's gradient, which AddBackward0 has added into .grad before MmBackward0 runs, counted with the weight's)
        ([{**_POSITIONS, "num_embeddings": 64}, {"name": "l", "type": "linear", "out_features": 16}], 2, 57_024, 73_344),
        # tokens and positions summed, then transposed and a linear: add hands the transposed gradient to the token
        # embedding, whose backward copies it (grad_.contiguous(), 2 x 64 x 32 fp32)
        ([_TOKENS, {**_POSITIONS, "num_embeddings": 64}, {"name": "a", "type": "add", "inputs": ["e", "p"]},
          {"name": "t", "type": "transpose", "dim0": 1, "dim1": 2}, {"name": "l", "type": "linear", "out_features": 8}], 2, 88_640, 96_832),
        ([_TOKENS, {"name": "t", "type": "transpose", "dim0": 1, "dim1": 2}, {"name": "l", "type": "linear", "out_features": 8}], 2, 69_728, 80_448),
        # at batch 1 the linear reads the transposed (32, 64) view as it lies and MmBackward0 makes its gradient so: no copy
        ([_TOKENS, {"name": "t", "type": "transpose", "dim0": 1, "dim1": 2}, {"name": "l", "type": "linear", "out_features": 8}], 1, 53_312, 53_312),
    ],
)
def test_embedding_backward_counts_the_batch_sum_and_the_gradients_contiguous_copy(
    layers: list[dict[str, Any]], batch: int, before: int, measured: int
) -> None:
    # 64 positions, batch 2, 1 thread (2 threads measure the same): measured with torch.profiler (torch 2.14.1);
    # `before`: archcalc's figure until session 10 (below the measurement, no flag, but at batch 1)
    from archcalc.training import training_memory

    spec = {"name": "s", "input": [64], "layers": layers}
    assert _measured_on(1, spec, batch, ids=True) == measured
    modelled = training_memory(spec, batch=batch, cpu_threads=1).totals["peak_bytes"]
    assert isinstance(modelled, int)
    assert measured <= modelled <= measured + 64, (modelled, before)


@pytest.mark.parametrize(("batch", "before"), [(1, 637_088), (2, 1_172_768)])
def test_cross_attention_with_one_tensor_as_key_and_value_runs_torchs_encoder_decoder_path(batch: int, before: int) -> None:
    # mha(x, mem, mem): F._in_projection_packed projects mem once (one linear, one input copy, a contiguous (2, S, N, E)
    # copy of its projection), and the k and v gradients go back through select: SelectBackward0 makes a zero-filled
    # (2, S, N, E) tensor for each, v's then k's, the second the peak.  8 queries of 32 attending to 512 keys (a linear
    # over the positions, transposed back), 4 heads, 1 thread; archcalc said 637,088 and 1,172,768 B (the walk's
    # moment, two input copies).  Both layouts: archcalc's module transposes each distinct tensor once (batch_first=False),
    # as a model holding (L, N, E) tensors passes the same one twice.
    from archcalc.training import training_memory

    layers = [{"name": "t", "type": "transpose", "dim0": 1, "dim1": 2}, {"name": "p", "type": "linear", "out_features": 512},
              {"name": "kv", "type": "transpose", "dim0": 1, "dim1": 2}]  # fmt: skip
    x, kv = batch * 8 * 32 * 4, batch * 512 * 32 * 4  # the queries' (8, 32) and the keys' (512, 32), fp32
    params = 512 * 8 + 512 + 3 * 32 * 32 + 3 * 32 + 32 * 32 + 32  # the linear over positions, in_proj, out_proj
    expected = (
        2 * params * 4  # parameters and their gradients
        + x  # the input batch
        + (x if batch > 1 else 0)  # saved by p: a copy of its transposed input (at batch 1 a view: (1, A, F) flattens)
        + (x + kv if batch > 1 else 0)  # saved by the in projections: copies of q and of the key/value tensor (one)
        + 2 * x  # the output and its gradient (the caller's)
        + x + kv  # the q and k gradients of flash (v's freed by its select)
        + 2 * 2 * kv  # select's two zero-filled (2, S, N, E) gradients
    )  # (p's output itself freed after the forward where copied; at batch 1 kept by the in projection, and counted: +kv)
    expected += kv if batch == 1 else 0
    assert expected == {1: 467_968, 2: 869_376}[batch] and expected < before
    for batch_first in (False, True):
        spec = {"name": "kv", "input": [8, 32], "layers": [*layers, {"name": "a", "type": "multiheadattention", "num_heads": 4,
                "batch_first": batch_first, "inputs": ["input", "kv", "kv"]}]}  # fmt: skip
        assert training_memory(spec, batch=batch, cpu_threads=1).totals["peak_bytes"] == expected
        assert _measured_on(1, spec, batch) == expected


# ----- review s10 #4: the temporaries of composite backwards (rmsnorm, a division of two tensors, pow, c / x) --------

_X = 2 * 64 * 256 * 4  # one (2, 64, 256) fp32 tensor: the input, a linear's output, each gradient and temporary below
_LIN = (256 * 256 + 256) * 4  # linear 256 -> 256: its weight and bias (as many bytes again for their .grad)


@pytest.mark.parametrize(
    ("tail", "modelled"),
    [
        # torch 2.14's rms_norm on CPU is composite (aten::_fused_rms_norm: pow, mean, add_, rsqrt, mul, mul): its peak is
        # PowBackward0 (pow_backward: grad * (2 * x.pow(1))): parameters and .grad of the linear and of the norm's weight
        # (2 * (_LIN + 256 * 4)), the input, then x (the linear's output, kept), the output and its gradient (the caller's),
        # x's first gradient (x * rstd's MulBackward0, waiting), MeanBackward1's gradient, x.pow(1), 2 * x.pow(1) and the
        # product: 8 _X.  Measured 1,708,032 B; archcalc said 1,316,352
        ([{"name": "x", "type": "rmsnorm", "normalized_shape": 256}], 2 * (_LIN + 256 * 4) + _X + 8 * _X),
        # without a weight: the same moment, the weight's 2 * 1,024 B less (measured 1,705,984; said 1,313,792)
        ([{"name": "x", "type": "rmsnorm", "normalized_shape": 256, "elementwise_affine": False}], 2 * _LIN + _X + 8 * _X),
        # l / y of two linears: DivBackward0 makes the divisor's gradient first, -grad * ((l / y) / y): l / y, its quotient
        # by y, -grad and the product alive beside l and y (kept), the output and its gradient: 8 _X beside the two
        # linears' parameters and .grad and the input (measured 2,232,320; said 1,971,200)
        ([{"name": "y", "type": "linear", "out_features": 256, "inputs": ["input"]}, {"name": "x", "type": "div", "inputs": ["l", "y"]}],
         2 * 2 * _LIN + _X + 8 * _X),
        # x ** 2: pow_backward's x.pow(1), 2 * x.pow(1) and the product beside x (kept), the output and its gradient: 6 _X
        # (measured 1,443,840; said 1,313,792)
        ([{"name": "x", "type": "scalar", "op": "pow", "value": 2.0}], 2 * _LIN + _X + 6 * _X),
        # 2 / x = reciprocal(x) * 2: ReciprocalBackward0's -grad * (result * result) after MulBackward0's grad * 2: 1/x (kept),
        # the output and its gradient, grad * 2, result * result, -grad and the product: 7 _X (measured 1,574,912; said 1,313,792)
        ([{"name": "x", "type": "scalar", "op": "rdiv", "value": 2.0}], 2 * _LIN + _X + 7 * _X),
    ],
)
def test_composite_backward_temporaries_are_counted(tail: list[dict[str, object]], modelled: int) -> None:
    from archcalc.training import training_memory

    spec = {"name": "c", "input": [64, 256], "layers": [{"name": "l", "type": "linear", "out_features": 256}, *tail]}
    m = training_memory(spec, batch=2, cpu_threads=2)
    assert m.totals["peak_bytes"] == modelled
    assert "at least" not in m.render("text")
    assert _measured_on(2, spec, 2) == modelled


def test_a_16bit_rmsnorm_backward_is_said_not_counted() -> None:
    # in bf16 torch computes rms_norm in fp32 inside (its composite's temporaries in fp32, then cast): not modelled,
    # so the peak is a floor and says so (linear 256 then rmsnorm on 64 x 256, batch 2: measured 1,247,232, counted 789,504)
    from archcalc.training import training_memory

    spec = {"name": "c", "input": [64, 256], "layers": [{"name": "l", "type": "linear", "out_features": 256},
                                                      {"name": "x", "type": "rmsnorm", "normalized_shape": 256}]}
    m = training_memory(spec, batch=2, cpu_threads=2, dtype="bfloat16", cpu_conv16="slow")
    assert "rmsnorm's composite backward" in m.not_counted["x"]
    assert "at least" in m.render("text")


def test_local_response_norm_backward_temporaries_are_counted() -> None:
    # review s10 #5: F.local_response_norm is composite (x*x, pad, avg_pool3d, *alpha, +k, **beta, x / d); its peak is
    # DivBackward0's (x / d: d's gradient first, -grad * ((x / d) / d), four tensors of the input's size alive at once)
    # and PowBackward0's (pow_backward: three beside its gradient and x's first).  conv 64 -> 64 3x3 (padding 1), relu,
    # LRN size 5 on 27 x 27, batch 2, 2 threads: measured 4,424,488 B at DivBackward0; archcalc said 3,304,736
    from archcalc.training import training_memory

    x = 2 * 64 * 27 * 27 * 4  # one (2, 64, 27, 27) fp32 tensor
    padded = 2 * (64 + 5 - 1) * 27 * 27 * 4  # x*x zero-padded to C + size - 1 channels (the pool's input, kept)
    conv = (64 * 64 * 9 + 64) * 4
    spec = {"name": "s", "input": [64, 27, 27], "layers": [
        {"name": "c", "type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1}, {"name": "r", "type": "relu"},
        {"name": "x", "type": "localresponsenorm", "size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}]}  # fmt: skip
    m = training_memory(spec, batch=2, cpu_threads=2)
    # the conv's weights and .grad, the input; kept: relu's output x (the LRN's input, which relu, x*x and x / d keep),
    # the padded square, k + alpha*avg and d; the output and its gradient (the caller's); DivBackward0's x / d,
    # (x / d) / d, -grad and the product; and alpha, the 8-byte float64 wrapped number avg * alpha's MulBackward0 keeps
    assert m.totals["peak_bytes"] == 2 * conv + x + (x + padded + 2 * x) + 2 * x + 4 * x + 8 == 4_424_488
    # (on 2 threads the conv's backward is said to keep a scratch not counted, review s10 #6; on 1 nothing is left out)
    assert "at least" not in training_memory(spec, batch=2, cpu_threads=1).render("text")
    assert _measured_on(2, spec, 2) == 4_424_488


def test_onednn_conv_backward_copies_the_input_and_its_thread_scratch_is_flagged(tmp_path: Any) -> None:
    # review s10 #6: one 16 -> 16 3x3 conv (padding 1) on the model's input, then relu, 16x24x24, batch 4: measured
    # 942,528 B on 2 threads, 912,576 on 1 (AMD EPYC, AVX-512, torch 2.14.1), where archcalc said 774,336 with no flag.
    # The weight's gradient reads a blocked copy of the input even where the input's gradient is not computed (it was
    # counted only where it is); on more than one thread oneDNN also reduces the weight's gradient through a scratch
    # buffer sized by its split of the work (29,952 B here on 2 threads), not modelled: flagged, and "at least"
    import json

    from archcalc.training import training_memory
    from tests.conftest import cli

    spec = {"name": "c", "input": [16, 24, 24], "layers": [
        {"name": "c0", "type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1}, {"name": "r", "type": "relu"}]}  # fmt: skip
    x = 4 * 16 * 24 * 24 * 4  # one (4, 16, 24, 24) fp32 tensor
    w, b = 16 * 16 * 9 * 4, 16 * 4
    one = training_memory(spec, batch=4, cpu_threads=1)
    # weights and .grad, the input; relu's output (kept, the caller's) and its gradient (the caller's), the conv output's
    # gradient; oneDNN's copies of that gradient, of the input and of the weight's gradient; the weight's and bias's
    # gradients
    assert one.totals["peak_bytes"] == 2 * (w + b) + x + 2 * x + x + (2 * x + w) + (w + b) == 921_792
    assert "at least" not in one.render("text")
    two = training_memory(spec, batch=4, cpu_threads=2)
    assert two.totals["peak_bytes"] == 921_792
    assert "reduction of its weight's gradient over the CPU threads" in two.not_counted["c0"]
    assert "at least" in two.render("text") and "at least" in training_memory(spec, batch=4).render("text")
    path = tmp_path / "c.json"
    path.write_text(json.dumps(spec))
    fit = cli("fit", str(path), "--memory", "4MB", "--cpu-threads", "2")
    assert fit.code == 0 and "largest batch: at most" in fit.out
    if _conv16_here() == "onednn":  # the AVX-512 host measured: above it on 1 thread by the blocked weight gradient's
        # copy (freed before the plain one is made), below on 2 by the scratch
        assert _measured_on(1, spec, 4) == 921_792 - w == 912_576
        assert _measured_on(2, spec, 4) == 942_528
        assert two.totals["peak_bytes"] < 942_528  # the scratch, flagged
