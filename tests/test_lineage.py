"""The rest of the lineage: the new layer types' formulas, and the specs from ResNeXt to C3D checked
against the published figures, against an independent plain-torch build of each network, and layer
by layer against torch.

Published figures (cited per spec below):

* torchvision's documented "Params" and "GFLOPS" (https://pytorch.org/vision/stable/models.html,
  rendered from the ``num_params`` and ``_ops`` fields of each weights entry in
  torchvision/models/*.py).  Its GFLOPS are multiply-accumulates x 1e-9 as torch's
  FlopCounterMode counts them (conv/linear MACs only): our ``torch`` convention.
* the papers' tables, where they give totals (their "FLOPs"/"mult-adds" are multiply-adds).

torchvision is not installable here, so each torchvision figure is confirmed against a plain-torch
rebuild of the model (``REFERENCE`` below: written from torchvision's source, independent of the
specs), counted with ``sum(p.numel())`` and FlopCounterMode on the meta device.  Each spec's totals
must equal that model's exactly, and the model's must round to the published figure.

The torch cross-check of every spec runs each layer's own ``build_torch`` module in a minimal graph
runner (below, on the meta device: no memory) and compares, layer by layer, the output shape, the
parameter count and FlopCounterMode's MACs (flops // 2) with the ``torch`` convention's row.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import net
from hypothesis import assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from archcalc import SpecError, analyze, load_spec, parse_spec  # noqa: E402
from archcalc.dims import as_int  # noqa: E402
from archcalc.graph import compile_spec, node_table  # noqa: E402
from archcalc.layers.base import OP_CATEGORIES  # noqa: E402
from archcalc.report import Report, report_from_graph  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"
LINEAGE = [
    "resnext50_32x4d",
    "wide_resnet50_2",
    "se_resnet50",
    "densenet121",
    "mobilenet_v1",
    "mobilenet_v2",
    "shufflenet_v2_x1_0",
    "squeezenet1_0",
    "inception_v3",
    "unet",
    "c3d",
    "conv1d_text",
]


@functools.cache
def report(name: str, convention: str = "torch", include_training_only: bool = False) -> Report:
    return analyze(SPECS / f"{name}.json", convention=convention, include_training_only=include_training_only)


def totals(name: str, convention: str = "torch", include_training_only: bool = False) -> tuple[int, int]:
    t = report(name, convention, include_training_only).totals
    return int(t["params"]), int(t["macs"])


# =================================================================================================
# 1. Formulas of the new layer types, as arithmetic
# =================================================================================================

CONVT = {"type": "convtranspose2d"}


@pytest.mark.parametrize(
    ("shape", "kw", "out", "params", "macs"),
    [
        # U-Net up-conv: (28-1)*2 - 0 + 1*(2-1) + 0 + 1 = 56; weight (C_in, C_out, 2, 2); MACs = input elements x C_out x 4
        ((1024, 28, 28), dict(out_channels=512, kernel_size=2, stride=2), (512, 56, 56), 1024 * 512 * 4 + 512, 1024 * 28 * 28 * 512 * 4),
        # DCGAN-style 4x4/2 padding 1: (8-1)*2 - 2 + 3 + 1 = 16 (doubles)
        ((64, 8, 8), dict(out_channels=32, kernel_size=4, stride=2, padding=1, bias=False), (32, 16, 16), 64 * 32 * 16, 64 * 8 * 8 * 32 * 16),
        # 3x3/2 padding 1 output_padding 1: (7-1)*2 - 2 + 2 + 1 + 1 = 14 (exact doubling)
        ((16, 7, 7), dict(out_channels=8, kernel_size=3, stride=2, padding=1, output_padding=1), (8, 14, 14), 16 * 8 * 9 + 8, 16 * 7 * 7 * 8 * 9),
        # stride 1: the inverse of a valid conv: 5 + 3 - 1 = 7
        ((4, 5, 5), dict(out_channels=2, kernel_size=3), (2, 7, 7), 4 * 2 * 9 + 2, 4 * 5 * 5 * 2 * 9),
        # groups 2: weight (C_in, C_out/2, k, k); MACs input elements x C_out/2 x k*k
        ((8, 4, 4), dict(out_channels=6, kernel_size=3, stride=2, groups=2), (6, 9, 9), 8 * 3 * 9 + 6, 8 * 4 * 4 * 3 * 9),
        # dilation 2: (4-1)*1 + 2*(3-1) + 1 = 8
        ((3, 4, 4), dict(out_channels=3, kernel_size=3, dilation=2, bias=False), (3, 8, 8), 3 * 3 * 9, 3 * 4 * 4 * 3 * 9),
        # asymmetric: H (4-1)*2 + 1 = 7... k=[1,3], s=[2,1]: H (4-1)*2 + 0 + 1 = 7, W (5-1)*1 + 2 + 1 = 7
        ((2, 4, 5), dict(out_channels=1, kernel_size=[1, 3], stride=[2, 1]), (1, 7, 7), 2 * 1 * 3 + 1, 2 * 4 * 5 * 1 * 3),
    ],
)
def test_convtranspose2d(shape: tuple[int, ...], kw: dict[str, Any], out: tuple[int, ...], params: int, macs: int) -> None:
    row = net([{**CONVT, "name": "t", **kw}], shape, convention="torch").row("t")
    assert row.output_shape == out
    assert row.params == params
    assert row.macs == macs
    assert row.ops.get("bias", 0) == (math.prod(out) if kw.get("bias", True) else 0)


def test_convtranspose_1d_and_3d() -> None:
    row = net([{"type": "convtranspose1d", "name": "t", "out_channels": 4, "kernel_size": 4, "stride": 2, "padding": 1}], (8, 10)).row("t")
    assert row.output_shape == (4, 20)  # (10-1)*2 - 2 + 3 + 1
    assert row.params == 8 * 4 * 4 + 4
    layer = {"type": "convtranspose3d", "name": "t", "out_channels": 2, "kernel_size": 2, "stride": 2, "bias": False}
    row = net([layer], (3, 2, 4, 4), convention="torch").row("t")
    assert row.output_shape == (2, 4, 8, 8)
    assert (row.params, row.macs) == (3 * 2 * 8, 3 * 2 * 4 * 4 * 2 * 8)


def test_convtranspose_errors() -> None:
    with pytest.raises(SpecError, match="output_padding 2 must be smaller than the stride 2"):
        net([{**CONVT, "out_channels": 1, "kernel_size": 3, "stride": 2, "output_padding": 2}], (1, 4, 4))
    with pytest.raises(SpecError, match="not positive"):
        net([{**CONVT, "out_channels": 1, "kernel_size": 1, "padding": 1}], (1, 1, 1))
    with pytest.raises(SpecError, match="in_channels 5 is not divisible by groups 2"):
        net([{**CONVT, "out_channels": 4, "kernel_size": 1, "groups": 2}], (5, 4, 4))


def test_convtranspose_symbolic() -> None:
    row = net([{**CONVT, "name": "t", "out_channels": "C", "kernel_size": 2, "stride": 2}], (8, "H", "H"), convention="torch").row("t")
    assert [str(d) for d in row.output_shape] == ["C", "2*H", "2*H"]
    assert str(row.macs) == "32*C*H**2"  # input elements 8*H*H x C_out x 2*2
    assert str(row.params) == "33*C"  # 8*C*4 weights + C biases


def up(**kw: Any) -> dict[str, Any]:
    return {"type": "upsample", "name": "u", **kw}


@pytest.mark.parametrize(
    ("shape", "kw", "out", "interp"),
    [
        # nearest x2: 8*2 = 16; one read (a copy) per output
        ((3, 8, 8), dict(scale_factor=2), (3, 16, 16), 3 * 16 * 16 * 1),
        # bilinear x2: 4 reads per output (2 per axis)
        ((3, 8, 8), dict(scale_factor=2, mode="bilinear"), (3, 16, 16), 3 * 16 * 16 * 4),
        # per-axis factors, and a target size
        ((3, 8, 8), dict(scale_factor=[1, 3]), (3, 8, 24), 3 * 8 * 24),
        ((3, 8, 8), dict(size=[10, 12], mode="bilinear", align_corners=True), (3, 10, 12), 3 * 10 * 12 * 4),
        # 1D linear: 2 reads; 3D trilinear: 8
        ((2, 5), dict(scale_factor=4, mode="linear"), (2, 20), 2 * 20 * 2),
        ((2, 2, 3, 3), dict(scale_factor=2, mode="trilinear"), (2, 4, 6, 6), 2 * 4 * 6 * 6 * 8),
    ],
)
def test_upsample(shape: tuple[int, ...], kw: dict[str, Any], out: tuple[int, ...], interp: int) -> None:
    for convention in ("torch", "lecture"):
        row = net([up(**kw)], shape, convention=convention).row("u")
        assert row.output_shape == out
        assert row.params == 0
        assert row.ops["interp"] == interp
        # the other categories are the peers' own counts (fvcore, thop, ptflops: tests/test_conventions.py), each documented
        assert set(row.ops) - {"interp"} <= set(OP_CATEGORIES) and all(k.startswith("upsample_") for k in set(row.ops) - {"interp"})
        assert row.macs == 0  # neither convention counts interpolation as MACs (FlopCounterMode counts nothing)


def test_upsample_errors() -> None:
    with pytest.raises(SpecError, match="exactly one of size and scale_factor"):
        net([up()], (3, 4, 4))
    with pytest.raises(SpecError, match="exactly one of size and scale_factor"):
        net([up(size=8, scale_factor=2)], (3, 4, 4))
    with pytest.raises(SpecError, match="'bilinear' needs 2 spatial axes"):
        net([up(scale_factor=2, mode="bilinear")], (3, 4))
    with pytest.raises(SpecError, match="align_corners"):
        net([up(scale_factor=2, align_corners=True)], (3, 4, 4))


def test_channelshuffle_and_chunk() -> None:
    rep = net(
        [
            {"name": "s", "type": "channelshuffle", "groups": 4},
            {"name": "a", "type": "chunk", "chunks": 2, "index": 0, "inputs": ["s"]},
            {"name": "b", "type": "chunk", "chunks": 2, "index": 1, "inputs": ["s"]},
            # torch.chunk(5 rows, 3): pieces of ceil(5/3) = 2: 2, 2, 1
            {"name": "w2", "type": "chunk", "chunks": 3, "index": 2, "dim": 2, "inputs": ["s"]},
            {"name": "w-1", "type": "chunk", "chunks": 3, "index": 1, "dim": -1, "inputs": ["s"]},
        ],
        (8, 5, 5),
        convention="lecture",
    )
    assert rep.row("s").output_shape == (8, 5, 5)
    assert rep.row("a").output_shape == rep.row("b").output_shape == (4, 5, 5)
    assert rep.row("w2").output_shape == (8, 1, 5)
    assert rep.row("w-1").output_shape == (8, 5, 2)
    assert all(r.params == 0 and r.macs == 0 and r.ops == {} for r in rep.rows)
    # chunk is a view: no new activation memory; the shuffle copies
    assert rep.row("a").activation_bytes == 0 and rep.row("s").activation_bytes == 8 * 25 * 4
    # a spatial chunk shifts the RF centre but keeps the stride: piece 2 of W starts at row 4
    assert rep.row("w2").receptive_field == (1, 1)


def test_chunk_and_shuffle_errors() -> None:
    with pytest.raises(SpecError, match="channels 6 are not divisible by groups 4"):
        net([{"type": "channelshuffle", "groups": 4}], (6, 2, 2))
    # torch.chunk(4 entries, 3) gives pieces of 2: only 2 pieces
    with pytest.raises(SpecError, match="splits 4 entries into 2 pieces of 2: there is no piece 2"):
        net([{"type": "chunk", "chunks": 3, "index": 2}], (4, 2, 2))
    with pytest.raises(SpecError, match="dim 0"):
        net([{"type": "chunk", "chunks": 2, "index": 0, "dim": 0}], (4, 2, 2))
    # symbolic channels: 2*C splits into two pieces of C
    row = net([{"name": "c", "type": "chunk", "chunks": 2, "index": 1}], ("2*C", 4, 4)).row("c")
    assert str(row.output_shape[0]) == "C"


def test_mul_broadcasts() -> None:
    rep = net(
        [
            {"name": "pool", "type": "adaptiveavgpool2d", "output_size": 1},
            {"name": "gate", "type": "sigmoid"},
            {"name": "scale", "type": "mul", "inputs": ["input", "gate"]},
            {"name": "sq", "type": "mul", "inputs": ["input", "input", "input"]},
        ],
        (16, 7, 5),
        convention="torch",
    )
    assert rep.row("scale").output_shape == (16, 7, 5)
    assert rep.row("scale").ops == {"mul": 16 * 7 * 5}
    assert rep.row("sq").ops == {"mul": 16 * 7 * 5 * 2}
    assert rep.row("scale").macs == 0
    # (C, 1, W) x (1, H, 1) -> (C, H, W)
    rep = net(
        [
            {"name": "a", "type": "adaptiveavgpool2d", "output_size": [1, None]},
            {"name": "b", "type": "conv2d", "out_channels": 1, "kernel_size": 1, "inputs": ["input"]},
            {"name": "m", "type": "mul", "inputs": ["a", "b"]},
        ],
        (4, 6, 3),
    )
    assert rep.row("m").output_shape == (4, 6, 3)


def test_mul_error_names_both_shapes() -> None:
    layers = [
        {"name": "a", "type": "conv2d", "out_channels": 8, "kernel_size": 1},
        {"name": "m", "type": "mul", "inputs": ["input", "a"]},
    ]
    with pytest.raises(SpecError, match=r"cannot multiply input 4\u00d76\u00d76 and a 8\u00d76\u00d76: not broadcastable, axis 0 has 4 vs 8"):
        net(layers, (4, 6, 6))
    layers[1]["inputs"] = ["input", "f"]
    with pytest.raises(SpecError, match="axes"):
        net([*layers[:1], {"name": "f", "type": "flatten", "inputs": ["a"]}, layers[1]], (4, 6, 6))


def test_zeropad_and_crop() -> None:
    rep = net(
        [
            # torch order: [left, right, top, bottom] -> H + 3 + 4, W + 1 + 2
            {"name": "p", "type": "zeropad2d", "padding": [1, 2, 3, 4]},
            {"name": "q", "type": "zeropad2d", "padding": 2, "inputs": ["input"]},
            {"name": "c", "type": "crop", "size": [6, 5], "inputs": ["p"]},
            {"name": "c1", "type": "crop", "size": 4, "inputs": ["input"]},
        ],
        (3, 8, 9),
        convention="lecture",
    )
    assert rep.row("p").output_shape == (3, 15, 12)
    assert rep.row("q").output_shape == (3, 12, 13)
    assert rep.row("c").output_shape == (3, 6, 5)
    assert rep.row("c1").output_shape == (3, 4, 4)
    assert all(r.params == 0 and r.macs == 0 for r in rep.rows)
    assert rep.row("c").activation_bytes == 0  # a slice is a view
    assert net([{"name": "p", "type": "zeropad1d", "padding": [0, 3]}], (2, 5)).row("p").output_shape == (2, 8)
    assert net([{"name": "p", "type": "zeropad3d", "padding": [1, 1, 0, 0, 2, 0]}], (2, 3, 4, 5)).row("p").output_shape == (2, 5, 4, 7)
    with pytest.raises(SpecError, match="needs 4 values"):
        net([{"type": "zeropad2d", "padding": [1, 2]}], (1, 4, 4))
    with pytest.raises(SpecError, match="cannot crop spatial axis 1 of size 4 to 5"):
        net([{"type": "crop", "size": [2, 5]}], (1, 4, 4))


# ----- receptive fields: exact against the dependence torch computes ---------------------------------


def _dependence(spec: dict[str, Any]) -> dict[str, list[tuple[int, int] | None]]:
    """Per node, per output position: the (first, last) input position it depends on, from torch.

    One forward pass of the one-hot basis (batch = input length) with all weights 1 and biases 0:
    output o depends on input i iff row i of the result is nonzero at o (all weights positive, so
    nothing cancels; use average pooling, max pooling's dependence is data-dependent).  Interpolation
    weights that are 0 in exact arithmetic (a sample point on a pixel) do not count as dependence.
    """
    G = compile_spec(parse_spec(spec))
    report_from_graph(G)
    nodes = node_table(G)
    c, length = G.graph["input_shape"]
    x = torch.zeros(length, c, length, dtype=torch.float64)
    for i in range(length):
        x[i, :, i] = 1.0
    values: dict[str, Any] = {"input": x}
    out: dict[str, list[tuple[int, int] | None]] = {}
    for name in G.graph["order"]:
        node = nodes[name]
        mod = node["layer"].build_torch([tuple(nodes[i]["shape"]) for i in node["inputs"]]).double().eval()
        for pname, p in mod.named_parameters():
            nn.init.constant_(p, 0.0 if pname.endswith("bias") else 1.0)
        with torch.no_grad():
            y = values[name] = mod(*[values[i] for i in node["inputs"]])
        mag = y.abs().sum(1)  # (input position, output position)
        # a sample point exactly on a pixel gives its neighbour weight 0, which float rounding of the
        # scale turns into ~1e-16: below 1e-9 of an output's largest weight is no dependence
        dep = mag > 1e-9 * mag.amax(0, keepdim=True)
        spans: list[tuple[int, int] | None] = []
        for o in range(y.shape[-1]):
            hit = dep[:, o].nonzero().flatten()
            spans.append((int(hit.min()), int(hit.max())) if len(hit) else None)
        out[name] = spans
    return out


def _check_rf(spec: dict[str, Any], check_centre: bool = True) -> None:
    """archcalc's RF (the largest interval) and output 0's centre against torch's dependence."""
    rep = analyze(parse_spec(spec))
    length = spec["input"][1]
    for name, spans in _dependence(spec).items():
        row = rep.row(name)
        # only outputs whose dependence does not reach the border: archcalc counts padding as pixels
        inner = [hi - lo + 1 for s in spans if s is not None for lo, hi in [s] if lo > 0 and hi < length - 1]
        if inner:
            assert max(inner) == row.receptive_field[0], name
        if check_centre and spans[0] is not None and spans[0][0] > 0:
            G = compile_spec(parse_spec(spec))
            report_from_graph(G)
            assert G.nodes[name]["rf"][0].centre2 == spans[0][0] + spans[0][1], name


def conv1(k: int, s: int = 1, p: int = 0, **kw: Any) -> dict[str, Any]:
    return {"type": "conv1d", "out_channels": 1, "kernel_size": k, "stride": s, "padding": p, **kw}


def convt1(k: int, s: int, p: int = 0, op: int = 0, **kw: Any) -> dict[str, Any]:
    return {"type": "convtranspose1d", "out_channels": 1, "kernel_size": k, "stride": s, "padding": p, "output_padding": op, **kw}


RF_CHAINS = {
    # the 2x2/2 up-conv reads one pixel per output: RF unchanged, stride halved (4 -> 2)
    "upconv2x2": [conv1(3, 2, 1), conv1(3, 2, 1), convt1(2, 2)],
    "convt3x3_s2": [conv1(3, 2, 1), conv1(3, 2, 1), convt1(3, 2, 1, 1), conv1(3)],
    "convt4x4_s2_then_conv": [conv1(3, 2, 1), conv1(3, 2, 1), convt1(4, 2, 1), conv1(3, 1, 1)],
    "convt_dilated": [conv1(3, 2, 1), conv1(3, 2, 1), convt1(3, 2, 1, 1, dilation=2)],
    "convt_at_input": [convt1(3, 2, 1, 1), conv1(3), conv1(2, 2)],
    # a 3x3 conv after x3 nearest reads 2 input pixels, not 2/3 of one: the irregular grid is tracked
    "nearest_x3_then_conv3": [conv1(3, 3, 1), {"type": "upsample", "scale_factor": 3}, conv1(3), conv1(5, 1, 2)],
    "linear_x2": [conv1(3, 2, 1), conv1(3, 2, 1), {"type": "upsample", "scale_factor": 2, "mode": "linear"}, conv1(4)],
    "linear_align_corners": [conv1(3, 2, 1), conv1(3, 2, 1), {"type": "upsample", "size": 31, "mode": "linear", "align_corners": True}, conv1(3)],
    "nearest_to_size": [conv1(3, 2, 1), conv1(3, 2, 1), {"type": "upsample", "size": 24}, conv1(3)],
    "pad_and_crop": [{"type": "zeropad1d", "padding": [3, 1]}, conv1(5, 2), {"type": "crop", "size": 20}, conv1(3)],
}


@pytest.mark.parametrize("layers", RF_CHAINS.values(), ids=RF_CHAINS.keys())
def test_rf_through_upsampling_is_exact(layers: list[dict[str, Any]]) -> None:
    _check_rf({"name": "t", "input": [1, 64], "layers": layers})


_LAYER = st.one_of(
    st.builds(lambda k, s, p, d: conv1(k, s, min(p, k - 1), dilation=d), st.integers(1, 5), st.integers(1, 3), st.integers(0, 2), st.integers(1, 2)),
    st.builds(lambda k, s, p, op, d: convt1(k, s, min(p, k - 1), min(op, max(s, d) - 1), dilation=d),
              st.integers(1, 4), st.integers(1, 3), st.integers(0, 2), st.integers(0, 2), st.integers(1, 2)),
    st.builds(lambda f, m: {"type": "upsample", "scale_factor": f, "mode": m}, st.integers(2, 3), st.sampled_from(["nearest", "linear"])),
    st.builds(lambda n, m, a: {"type": "upsample", "size": n, "mode": m, **({"align_corners": a} if m == "linear" else {})},
              st.integers(20, 70), st.sampled_from(["nearest", "linear"]), st.booleans()),
    st.builds(lambda k, s: {"type": "avgpool1d", "kernel_size": k, "stride": s}, st.integers(1, 3), st.integers(1, 3)),
    st.builds(lambda a, b: {"type": "zeropad1d", "padding": [a, b]}, st.integers(0, 3), st.integers(0, 3)),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_LAYER, min_size=1, max_size=4), st.integers(24, 48))
def test_rf_exact_on_random_chains(layers: list[dict[str, Any]], length: int) -> None:
    """Upsampling, transposed convs, convs, pools and pads in any order: the RF is torch's dependence."""
    spec = {"name": "t", "input": [1, length], "layers": layers}
    try:
        rep = analyze(parse_spec(spec))
    except SpecError:
        assume(False)
    assume(all(r.output_shape[-1] <= 400 for r in rep.rows))
    G = compile_spec(parse_spec(spec))
    report_from_graph(G)
    for name, spans in _dependence(spec).items():
        rf = G.nodes[name]["rf"][0]
        if G.nodes[name]["rf_bound"] is not None:  # approximate, and the row says so (see the note)
            continue
        inner = [hi - lo + 1 for s in spans if s is not None for lo, hi in [s] if lo > 0 and hi < length - 1]
        # every output's field fits in the reported one; the largest is met once the pattern shows whole
        assert not inner or max(inner) <= rf.size, name
        if len(inner) >= 2 * len(rf.phases or ((0, 0),)) + 2 * max(1, as_int(rf.jump) or 1):
            assert max(inner) == rf.size, name


def unet1d() -> dict[str, Any]:
    """U-Net's skeleton on one axis (valid 3-convs, 2/2 pools as average pools, 2/2 up-convs, crops)."""
    layers: list[dict[str, Any]] = []
    size, skips = 572, []
    for i in range(4):
        layers += [{**conv1(3), "name": f"e{i}a"}, {**conv1(3), "name": f"e{i}b"}, {"type": "avgpool1d", "kernel_size": 2, "name": f"p{i}"}]
        size -= 4
        skips.append((f"e{i}b", size))
        size //= 2
    layers += [{**conv1(3), "name": "ba"}, {**conv1(3), "name": "bb"}]
    size -= 4
    prev = "bb"
    for i in reversed(range(4)):
        size *= 2
        layers += [
            {**convt1(2, 2), "name": f"u{i}", "inputs": [prev]},
            {"type": "crop", "size": size, "name": f"c{i}", "inputs": [skips[i][0]]},
            {"type": "concat", "inputs": [f"c{i}", f"u{i}"], "name": f"cat{i}"},
            {**conv1(3), "name": f"d{i}a"},
            {**conv1(3), "name": f"d{i}b"},
        ]
        size -= 4
        prev = f"d{i}b"
    return {"name": "unet1d", "input": [1, 572], "layers": layers}


def test_unet_rf_exact_on_one_axis() -> None:
    _check_rf(unet1d())
    rep = analyze(parse_spec(unet1d()))
    assert rep.rows[-1].output_shape == (1, 388)
    assert rep.rows[-1].receptive_field == (204,)
    # the crops are placed so that the skip and the up-sampled path agree on average: no note
    assert all(r.note is None for r in rep.rows if r.type == "concat")


def test_fractional_stride_is_said_not_hidden() -> None:
    layers = [{"name": "up", "type": "upsample", "scale_factor": 2}, {"name": "c", "type": "conv2d", "out_channels": 1, "kernel_size": 3}]
    rep = net(layers, (1, 8, 8))
    assert rep.row("up").receptive_field == (1, 1)
    assert rep.row("up").effective_stride == (1, 1)  # 1/2, rounded up
    assert "1/2" in (rep.row("up").note or "") and "1/2" in (rep.row("c").note or "")
    assert rep.row("c").receptive_field == (2, 2)  # 3 upsampled pixels cover 2 input pixels


def test_symbolic_upsampling_is_approximate_and_says_so() -> None:
    layers = [
        {"name": "c0", "type": "conv2d", "out_channels": 2, "kernel_size": 3, "stride": 2},
        {"name": "up", "type": "upsample", "size": ["H", "W"]},  # in/out ratio unknown: no exact grid
        {"name": "c", "type": "conv2d", "out_channels": 2, "kernel_size": 3},
        {"name": "r", "type": "relu"},
    ]
    rep = net(layers, (3, "H", "W"))
    assert rep.row("c0").note is None
    assert "approximate from here on" in (rep.row("up").note or "")
    assert rep.row("c").note == rep.row("r").note == "receptive field approximate from up on (see that row)"
    # with numbers the same spec is exact again
    rep = net(layers, (3, "H", "W"), values={"H": 20, "W": 20})
    assert all(r.note is None or "rounded up" in r.note for r in rep.rows)


def test_se_gate_keeps_the_main_path_grid() -> None:
    """The (C,1,1) gate is seen whole by every output: its RF counts, its grid does not."""
    rep = report("se_resnet50")
    mul, nxt = rep.row("layer1.0.se_module.scale"), rep.row("layer2.0.conv1")
    assert mul.note is None
    assert mul.effective_stride == (4, 4)  # the main path's, not the pooled gate's
    assert mul.receptive_field[0] >= 56 * 4  # the gate sees the whole input
    assert nxt.effective_stride == (8, 8)


# =================================================================================================
# 2. Plain-torch reference models, written from torchvision's source (not from the specs)
# =================================================================================================


def _bn_relu(c: int, eps: float = 1e-5) -> list[nn.Module]:
    return [nn.BatchNorm2d(c, eps=eps), nn.ReLU(inplace=True)]


class _SE(nn.Module):
    def __init__(self, c: int, r: int = 16) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c // r, 1), nn.ReLU(inplace=True), nn.Conv2d(c // r, c, 1), nn.Sigmoid())

    def forward(self, x: Any) -> Any:
        return x * self.fc(x)


class _Bottleneck(nn.Module):
    """torchvision's Bottleneck (v1.5: stride on the 3x3) with groups/width; ``v1``: stride on conv1 (Caffe, SENet)."""

    def __init__(self, cin: int, planes: int, stride: int, groups: int, base_width: int, se: bool, v1: bool) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        s1, s2 = (stride, 1) if v1 else (1, stride)
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, s1, bias=False), *_bn_relu(width),
            nn.Conv2d(width, width, 3, s2, 1, groups=groups, bias=False), *_bn_relu(width),
            nn.Conv2d(width, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4),
        )  # fmt: skip
        self.se = _SE(planes * 4) if se else nn.Identity()
        project = stride != 1 or cin != planes * 4
        self.down = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)) if project else nn.Identity()

    def forward(self, x: Any) -> Any:
        return F.relu(self.se(self.body(x)) + self.down(x))


def ref_resnet(groups: int = 1, base_width: int = 64, se: bool = False, v1: bool = False) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), *_bn_relu(64)]
    layers.append(nn.MaxPool2d(3, 2, ceil_mode=True) if se else nn.MaxPool2d(3, 2, 1))
    cin = 64
    for i, (planes, n) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)]):
        for b in range(n):
            layers.append(_Bottleneck(cin, planes, 2 if (b == 0 and i > 0) else 1, groups, base_width, se, v1))
            cin = planes * 4
    pool = nn.AvgPool2d(7, 1) if se else nn.AdaptiveAvgPool2d(1)
    return nn.Sequential(*layers, pool, nn.Flatten(), nn.Linear(2048, 1000))


class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int = 32, bn_size: int = 4) -> None:
        super().__init__()
        self.f = nn.Sequential(
            *_bn_relu(cin), nn.Conv2d(cin, bn_size * growth, 1, bias=False),
            *_bn_relu(bn_size * growth), nn.Conv2d(bn_size * growth, growth, 3, 1, 1, bias=False),
        )  # fmt: skip

    def forward(self, feats: list[Any]) -> Any:
        return self.f(torch.cat(feats, 1))  # torchvision concatenates every earlier map first


class _DenseBlock(nn.ModuleList):
    def forward(self, x: Any) -> Any:  # type: ignore[override]
        feats = [x]
        for layer in self:
            feats.append(layer(feats))
        return torch.cat(feats, 1)


def ref_densenet121() -> nn.Module:
    mods: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), *_bn_relu(64), nn.MaxPool2d(3, 2, 1)]
    c = 64
    for i, n in enumerate([6, 12, 24, 16]):
        mods.append(_DenseBlock([_DenseLayer(c + j * 32) for j in range(n)]))
        c += n * 32
        if i < 3:
            mods += [*_bn_relu(c), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2, 2)]
            c //= 2
    return nn.Sequential(*mods, *_bn_relu(c), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000))


def _cna(cin: int, cout: int, k: int, s: int = 1, groups: int = 1, act: type[nn.Module] = nn.ReLU6) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), act(inplace=True)]


class _Inverted(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, t: int) -> None:
        super().__init__()
        hidden = round(cin * t)
        self.res = stride == 1 and cin == cout
        self.f = nn.Sequential(
            *(_cna(cin, hidden, 1) if t != 1 else []), *_cna(hidden, hidden, 3, stride, hidden),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip

    def forward(self, x: Any) -> Any:
        return x + self.f(x) if self.res else self.f(x)


def ref_mobilenet_v2() -> nn.Module:
    mods: list[nn.Module] = _cna(3, 32, 3, 2)
    cin = 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            mods.append(_Inverted(cin, c, s if i == 0 else 1, t))
            cin = c
    return nn.Sequential(*mods, *_cna(320, 1280, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, 1000))


def ref_mobilenet_v1() -> nn.Module:
    mods: list[nn.Module] = _cna(3, 32, 3, 2, act=nn.ReLU)
    cin = 32
    for s, c in [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), *[(1, 512)] * 5, (2, 1024), (1, 1024)]:
        mods += [*_cna(cin, cin, 3, s, cin, act=nn.ReLU), *_cna(cin, c, 1, act=nn.ReLU)]
        cin = c
    return nn.Sequential(*mods, nn.AvgPool2d(7, 1), nn.Flatten(), nn.Linear(1024, 1000))


class _ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        bf, self.stride = cout // 2, stride

        def dw(c: int) -> nn.Module:
            return nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False)

        if stride > 1:
            self.branch1 = nn.Sequential(dw(cin), nn.BatchNorm2d(cin), nn.Conv2d(cin, bf, 1, bias=False), *_bn_relu(bf))
        self.branch2 = nn.Sequential(
            nn.Conv2d(cin if stride > 1 else bf, bf, 1, bias=False), *_bn_relu(bf),
            dw(bf), nn.BatchNorm2d(bf), nn.Conv2d(bf, bf, 1, bias=False), *_bn_relu(bf),
        )  # fmt: skip

    def forward(self, x: Any) -> Any:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        b, c, h, w = out.shape
        return out.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


def ref_shufflenet_v2_x1_0() -> nn.Module:
    mods: list[nn.Module] = [nn.Conv2d(3, 24, 3, 2, 1, bias=False), *_bn_relu(24), nn.MaxPool2d(3, 2, 1)]
    cin = 24
    for n, c in [(4, 116), (8, 232), (4, 464)]:
        mods += [_ShuffleUnit(cin, c, 2), *[_ShuffleUnit(c, c, 1) for _ in range(n - 1)]]
        cin = c
    return nn.Sequential(*mods, nn.Conv2d(464, 1024, 1, bias=False), *_bn_relu(1024), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 1000))


class _Fire(nn.Module):
    def __init__(self, cin: int, s: int, e: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, s, 1), nn.ReLU(inplace=True))
        self.e1 = nn.Sequential(nn.Conv2d(s, e, 1), nn.ReLU(inplace=True))
        self.e3 = nn.Sequential(nn.Conv2d(s, e, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x: Any) -> Any:
        x = self.squeeze(x)
        return torch.cat([self.e1(x), self.e3(x)], 1)


def ref_squeezenet1_0() -> nn.Module:
    def pool() -> nn.Module:
        return nn.MaxPool2d(3, 2, ceil_mode=True)

    return nn.Sequential(
        nn.Conv2d(3, 96, 7, 2), nn.ReLU(inplace=True), pool(),
        _Fire(96, 16, 64), _Fire(128, 16, 64), _Fire(128, 32, 128), pool(),
        _Fire(256, 32, 128), _Fire(256, 48, 192), _Fire(384, 48, 192), _Fire(384, 64, 256), pool(),
        _Fire(512, 64, 256), nn.Dropout(0.5), nn.Conv2d(512, 1000, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip


def _bc(cin: int, cout: int, k: Any, s: int = 1, p: Any = 0) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=False), *_bn_relu(cout, eps=0.001))


class _Branches(nn.Module):
    """Inception blocks: branches on the same input, concatenated; a branch is a module or a (stem, [heads]) pair."""

    def __init__(self, *branches: Any) -> None:
        super().__init__()
        self.branches = nn.ModuleList(b if isinstance(b, nn.Module) else _Split(*b) for b in branches)

    def forward(self, x: Any) -> Any:
        return torch.cat([b(x) for b in self.branches], 1)


class _Split(nn.Module):
    def __init__(self, stem: nn.Module, heads: list[nn.Module]) -> None:
        super().__init__()
        self.stem, self.heads = stem, nn.ModuleList(heads)

    def forward(self, x: Any) -> Any:
        x = self.stem(x)
        return torch.cat([h(x) for h in self.heads], 1)


def _avg3(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.AvgPool2d(3, 1, 1), _bc(cin, cout, 1))


def ref_inception_v3() -> tuple[nn.Module, nn.Module]:
    """(main model, auxiliary head): torchvision's Inception3 with aux_logits=True, the head apart (it runs only in training)."""

    def a(cin: int, pf: int) -> nn.Module:
        return _Branches(
            _bc(cin, 64, 1), nn.Sequential(_bc(cin, 48, 1), _bc(48, 64, 5, p=2)),
            nn.Sequential(_bc(cin, 64, 1), _bc(64, 96, 3, p=1), _bc(96, 96, 3, p=1)), _avg3(cin, pf),
        )  # fmt: skip

    def c(c7: int) -> nn.Module:
        return _Branches(
            _bc(768, 192, 1),
            nn.Sequential(_bc(768, c7, 1), _bc(c7, c7, (1, 7), p=(0, 3)), _bc(c7, 192, (7, 1), p=(3, 0))),
            nn.Sequential(_bc(768, c7, 1), _bc(c7, c7, (7, 1), p=(3, 0)), _bc(c7, c7, (1, 7), p=(0, 3)),
                          _bc(c7, c7, (7, 1), p=(3, 0)), _bc(c7, 192, (1, 7), p=(0, 3))),
            _avg3(768, 192),
        )  # fmt: skip

    def e(cin: int) -> nn.Module:
        def pair() -> list[nn.Module]:
            return [_bc(384, 384, (1, 3), p=(0, 1)), _bc(384, 384, (3, 1), p=(1, 0))]

        return _Branches(
            _bc(cin, 320, 1), (_bc(cin, 384, 1), pair()),
            (nn.Sequential(_bc(cin, 448, 1), _bc(448, 384, 3, p=1)), pair()), _avg3(cin, 192),
        )  # fmt: skip

    model = nn.Sequential(
        _bc(3, 32, 3, 2), _bc(32, 32, 3), _bc(32, 64, 3, p=1), nn.MaxPool2d(3, 2), _bc(64, 80, 1), _bc(80, 192, 3), nn.MaxPool2d(3, 2),
        a(192, 32), a(256, 64), a(288, 64),
        _Branches(_bc(288, 384, 3, 2), nn.Sequential(_bc(288, 64, 1), _bc(64, 96, 3, p=1), _bc(96, 96, 3, 2)), nn.MaxPool2d(3, 2)),
        c(128), c(160), c(160), c(192),
        _Branches(nn.Sequential(_bc(768, 192, 1), _bc(192, 320, 3, 2)),
                  nn.Sequential(_bc(768, 192, 1), _bc(192, 192, (1, 7), p=(0, 3)), _bc(192, 192, (7, 1), p=(3, 0)), _bc(192, 192, 3, 2)),
                  nn.MaxPool2d(3, 2)),
        e(1280), e(2048), nn.AdaptiveAvgPool2d(1), nn.Dropout(0.5), nn.Flatten(), nn.Linear(2048, 1000),
    )  # fmt: skip
    aux = nn.Sequential(nn.AvgPool2d(5, 3), _bc(768, 128, 1), _bc(128, 768, 5), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(768, 1000))
    return model, aux


class _UNet(nn.Module):
    """Ronneberger et al. 2015, Fig. 1, as common PyTorch ports write it (valid convs, crop by slicing)."""

    def __init__(self) -> None:
        super().__init__()

        def double(cin: int, c: int) -> nn.Module:
            return nn.Sequential(nn.Conv2d(cin, c, 3), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3), nn.ReLU(inplace=True))

        chans = [64, 128, 256, 512]
        self.down = nn.ModuleList(double(cin, c) for cin, c in zip([1, *chans[:-1]], chans, strict=True))
        self.bottom = double(512, 1024)
        self.up = nn.ModuleList(nn.ConvTranspose2d(2 * c, c, 2, 2) for c in reversed(chans))
        self.dec = nn.ModuleList(double(2 * c, c) for c in reversed(chans))
        self.out = nn.Conv2d(64, 2, 1)

    def forward(self, x: Any) -> Any:
        skips = []
        for d in self.down:
            x = d(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = up(x)
            dy, dx = (skip.shape[2] - x.shape[2]) // 2, (skip.shape[3] - x.shape[3]) // 2
            x = dec(torch.cat([skip[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]], x], 1))
        return self.out(x)


def ref_c3d() -> nn.Module:
    mods: list[nn.Module] = []
    cin = 3
    for i, cs in enumerate([[64], [128], [256, 256], [512, 512], [512, 512]]):
        for c in cs:
            mods += [nn.Conv3d(cin, c, 3, padding=1), nn.ReLU(inplace=True)]
            cin = c
        mods.append(nn.MaxPool3d((1, 2, 2), (1, 2, 2)) if i == 0 else nn.MaxPool3d(2, 2, padding=(0, 1, 1) if i == 4 else 0))
    fc = [nn.Linear(8192, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5)]
    return nn.Sequential(*mods, nn.Flatten(), *fc, nn.Linear(4096, 487))


class _KimCNN(nn.Module):
    def __init__(self, length: int = 64) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(300, 100, k) for k in (3, 4, 5))
        self.fc = nn.Linear(300, 2)

    def forward(self, x: Any) -> Any:  # x: (N, 300, L), the embedded sentence
        feats = [F.relu(c(x)).amax(-1) for c in self.convs]  # max over time
        return self.fc(F.dropout(torch.cat(feats, 1), 0.5, self.training))


def _resnet_ref(**kw: Any) -> Callable[[], tuple[nn.Module, None]]:
    return lambda: (ref_resnet(**kw), None)


REFERENCE: dict[str, Callable[[], tuple[nn.Module, nn.Module | None]]] = {
    "resnext50_32x4d": _resnet_ref(groups=32, base_width=4),
    "wide_resnet50_2": _resnet_ref(base_width=128),
    "se_resnet50": _resnet_ref(se=True, v1=True),
    "densenet121": lambda: (ref_densenet121(), None),
    "mobilenet_v1": lambda: (ref_mobilenet_v1(), None),
    "mobilenet_v2": lambda: (ref_mobilenet_v2(), None),
    "shufflenet_v2_x1_0": lambda: (ref_shufflenet_v2_x1_0(), None),
    "squeezenet1_0": lambda: (ref_squeezenet1_0(), None),
    "inception_v3": ref_inception_v3,
    "unet": lambda: (_UNet(), None),
    "c3d": lambda: (ref_c3d(), None),
    "conv1d_text": lambda: (_KimCNN(), None),
}


@functools.cache
def reference(name: str) -> tuple[int, int, int, tuple[int, ...]]:
    """(params of the main model, params of the training-only head, eval MACs, output shape) measured by torch."""
    with torch.device("meta"):
        model, aux = REFERENCE[name]()
    shape = tuple(load_spec(SPECS / f"{name}.json").input)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        y = model(torch.zeros(1, *shape, device="meta"))
    aux_params = sum(p.numel() for p in aux.parameters()) if aux is not None else 0
    return sum(p.numel() for p in model.parameters()), aux_params, fc.get_total_flops() // 2, tuple(y.shape[1:])


# =================================================================================================
# 3. Totals against the published figures and the reference models
# =================================================================================================

# (spec, torchvision Params, torchvision GFLOPS as in the weights' "_ops" field; the docs page rounds
# it to 2 decimals: 4.23, 11.4, 2.83, 0.3, 0.14, 0.82, 5.71).  The parameters of inception_v3
# include the auxiliary head, which torchvision builds (aux_logits=True) but runs only in training.
TORCHVISION = [
    ("resnext50_32x4d", 25_028_904, 4.23),
    ("wide_resnet50_2", 68_883_240, 11.398),
    ("densenet121", 7_978_856, 2.834),
    ("mobilenet_v2", 3_504_872, 0.301),
    ("shufflenet_v2_x1_0", 2_278_604, 0.145),
    ("squeezenet1_0", 1_248_424, 0.819),
    ("inception_v3", 27_161_264, 5.713),
]

# Every spec's exact totals: (params, torch MACs, lecture MACs), training-only heads left out.
EXACT = {
    "resnext50_32x4d": (25_028_904, 4_230_479_872, None),
    "wide_resnet50_2": (68_883_240, 11_398_021_120, None),
    "se_resnet50": (28_088_024, 3_860_488_192, 3_867_914_240),
    "densenet121": (7_978_856, 2_834_161_664, 2_836_720_640),
    "mobilenet_v1": (4_231_976, 568_740_352, 568_790_528),
    "mobilenet_v2": (3_504_872, 300_774_272, 300_836_992),
    "shufflenet_v2_x1_0": (2_278_604, 144_907_992, 145_635_544),
    "squeezenet1_0": (1_248_424, 818_924_576, 824_071_368),
    "inception_v3": (23_834_568, 5_713_216_096, 5_737_746_528),
    "unet": (31_030_658, 150_428_424_448, 150_465_939_712),
    "c3d": (79_991_015, 38_548_959_232, 38_570_299_392),
    "conv1d_text": (360_902, 21_900_600, 21_918_900),
}


@pytest.mark.parametrize(("name", "params", "gflops"), TORCHVISION, ids=[t[0] for t in TORCHVISION])
def test_torchvision_figures(name: str, params: int, gflops: float) -> None:
    ref_params, ref_aux, ref_macs, _ = reference(name)
    # the plain-torch rebuild reproduces torchvision's documented figures...
    assert ref_params + ref_aux == params
    decimals = len(str(gflops).split(".")[1])
    assert round(ref_macs / 1e9, decimals) == gflops
    # ...and the spec reproduces the rebuild exactly (aux head counted when asked for)
    assert totals(name, include_training_only=True)[0] == params
    assert totals(name)[1] == ref_macs


@pytest.mark.parametrize("name", LINEAGE)
def test_spec_equals_plain_torch_model(name: str) -> None:
    ref_params, _, ref_macs, ref_shape = reference(name)
    assert totals(name) == (ref_params, ref_macs)
    assert report(name).rows[-1].output_shape == ref_shape


@pytest.mark.parametrize("name", LINEAGE)
def test_exact_totals(name: str) -> None:
    params, macs, lecture = EXACT[name]
    assert totals(name) == (params, macs)
    if lecture is not None:
        assert totals(name, "lecture")[1] == lecture


def test_resnext_and_wide_resnet_arithmetic() -> None:
    """Bottleneck width = int(planes * base_width/64) * groups: 2*planes for both (4/64*32 and 128/64*1)."""

    def net_(groups: int) -> tuple[int, int]:
        params, macs = 3 * 64 * 49 + 128, 3 * 64 * 49 * 112 * 112
        cin, hw_in = 64, 56
        for (p, hw), n in zip([(64, 56), (128, 28), (256, 14), (512, 7)], [3, 4, 6, 3], strict=True):
            w = 2 * p
            for _ in range(n):
                conv1, conv2, conv3 = cin * w, w * (w // groups) * 9, w * 4 * p
                down = cin * 4 * p if cin != 4 * p else 0
                params += conv1 + conv2 + conv3 + down + 2 * (w + w + 4 * p) + (2 * 4 * p if down else 0)
                macs += conv1 * hw_in * hw_in + (conv2 + conv3 + down) * hw * hw  # v1.5: conv1 at the input size
                cin, hw_in = 4 * p, hw
        return params + 2048 * 1000 + 1000, macs + 2048 * 1000

    assert totals("resnext50_32x4d") == net_(32)
    assert totals("wide_resnet50_2") == net_(1)
    # Xie et al. 2016, Table 1: ResNeXt-50 (32x4d) 25.0 x 10^6 parameters, 4.2 x 10^9 FLOPs
    assert round(totals("resnext50_32x4d")[0] / 1e6, 1) == 25.0 and round(totals("resnext50_32x4d")[1] / 1e9, 1) == 4.2


def test_se_resnet50_against_the_paper() -> None:
    """Hu et al. 2017, Sec. 4: SE-ResNet-50 adds ~2.5M parameters to ResNet-50's ~25M (~10%); 3.87 vs 3.86 GFLOPs."""
    params, macs = totals("se_resnet50")
    base_params, base_macs = totals("resnet50_v1")  # the paper's ResNet-50: stride on the first 1x1
    stages = [(256, 3, 56), (512, 4, 28), (1024, 6, 14), (2048, 3, 7)]
    se_weights = sum(n * 2 * c * (c // 16) for c, n, _ in stages)  # fc1 C -> C/16, fc2 C/16 -> C
    se_biases = sum(n * (c // 16 + c) for c, n, _ in stages)
    assert se_weights + se_biases == 2_514_944 + 16_048
    assert params == base_params + se_weights + se_biases
    assert round((params - base_params) / 1e6, 1) == 2.5 and round(params / base_params - 1, 2) == 0.10
    # torch MACs: the SE convs on 1x1 maps add their weights once per block
    assert macs == base_macs + se_weights
    assert round(base_macs / 1e9, 2) == 3.86
    # the paper's 3.87 counts the squeeze (global pooling): the lecture convention, which counts pooling
    lecture = totals("se_resnet50", "lecture")[1]
    assert lecture == totals("resnet50_v1", "lecture")[1] + se_weights + sum(n * c * hw * hw for c, n, hw in stages)
    assert round(lecture / 1e9, 2) == 3.87


def test_densenet121_channels() -> None:
    rep = report("densenet121")
    # 64 + 6*32 = 256 -> 128; 128 + 12*32 = 512 -> 256; 256 + 24*32 = 1024 -> 512; 512 + 16*32 = 1024
    assert rep.row("features.denseblock1.5.concat").output_shape == (256, 56, 56)
    assert rep.row("features.transition1.pool").output_shape == (128, 28, 28)
    assert rep.row("features.denseblock3.23.concat").output_shape == (1024, 14, 14)
    assert rep.row("features.denseblock4.15.concat").output_shape == (1024, 7, 7)
    # a dense layer's params: BN of its input (2*c_in) + c_in*128 + BN 2*128 + 128*32*9
    row_params = sum(r.params for r in rep.rows if r.name.startswith("features.denseblock1.2."))
    assert row_params == 2 * 128 + 128 * 128 + 2 * 128 + 128 * 32 * 9


def test_mobilenets_against_the_papers() -> None:
    # Howard et al. 2017, Table 1/2: 569 million mult-adds, 4.2 million parameters (conv + fc: BN not counted)
    params, macs = totals("mobilenet_v1")
    bn = sum(r.params for r in report("mobilenet_v1").rows if r.type == "batchnorm2d")
    assert round(macs / 1e6) == 569 and round((params - bn) / 1e6, 1) == 4.2
    # Sandler et al. 2018, Table 4: MobileNetV2 (1.0) 300M multiply-adds
    assert round(totals("mobilenet_v2")[1] / 1e6) == 301
    # expansion: stage2's first block expands 16 -> 96, stride 2 on the depthwise
    rep = report("mobilenet_v2")
    assert rep.row("stage2.0.expand").output_shape == (96, 112, 112)
    assert rep.row("stage2.0.dw").output_shape == (96, 56, 56)
    assert [r.name for r in rep.rows if r.type == "add"][:2] == ["stage2.1.add", "stage3.1.add"]


def test_shufflenet_v2_against_the_paper() -> None:
    # Ma et al. 2018, Table 5: ShuffleNet v2 1x: 146M FLOPs (multiply-adds), 2.3M parameters
    assert round(totals("shufflenet_v2_x1_0")[0] / 1e6, 1) == 2.3
    assert round(totals("shufflenet_v2_x1_0", "lecture")[1] / 1e6) == 146  # with its max pool and global pool
    rep = report("shufflenet_v2_x1_0")
    assert rep.row("stage2.1.x1").output_shape == rep.row("stage2.1.branch2.7").output_shape == (58, 28, 28)
    assert rep.row("stage4.3.shuffle").output_shape == (464, 7, 7)


def test_squeezenet_against_the_paper() -> None:
    # Iandola et al. 2016, Table 1: 1,248,424 parameters in total (before pruning)
    assert totals("squeezenet1_0")[0] == 1_248_424
    rep = report("squeezenet1_0")
    # conv1 7x7/2 no padding: (224 - 7)//2 + 1 = 109; ceil-mode pools 54, 27, 13
    assert [rep.row(n).output_shape[1] for n in ("features.0", "features.2", "features.6", "features.11")] == [109, 54, 27, 13]


def test_inception_v3_aux_head() -> None:
    params, macs = totals("inception_v3")
    with_aux, macs_aux = totals("inception_v3", include_training_only=True)
    assert params == 23_834_568 and with_aux == 27_161_264  # torchvision's figure includes the aux head
    aux_conv = 768 * 128 + 2 * 128 + 128 * 768 * 25 + 2 * 768
    assert with_aux - params == aux_conv + 768 * 1000 + 1000
    assert macs_aux - macs == 768 * 128 * 25 + 128 * 768 * 25 + 768 * 1000  # 5x5 map after the 5x5/3 pool; 1x1 after conv1
    rep = report("inception_v3")
    assert rep.row("maxpool2").output_shape == (192, 35, 35)
    assert rep.row("Mixed_6a.cat").output_shape == (768, 17, 17)
    assert rep.row("Mixed_7c.cat").output_shape == (2048, 8, 8)


def test_unet_arithmetic() -> None:
    """Ronneberger et al. 2015, Fig. 1: 572 -> 388; each valid 3x3 conv takes 2 pixels off."""
    rep = report("unet")
    assert [rep.row(f"down{i}.relu2").output_shape[1] for i in (1, 2, 3, 4)] == [568, 280, 136, 64]
    assert rep.row("bottom.relu2").output_shape == (1024, 28, 28)
    assert [rep.row(f"crop{i}").output_shape[1] for i in (4, 3, 2, 1)] == [56, 104, 200, 392]
    assert rep.row("outc").output_shape == (2, 388, 388)
    chans = [64, 128, 256, 512, 1024]
    convs = sum(9 * (cin * c + c * c) + 2 * c for cin, c in zip([1, *chans[:-1]], chans, strict=True))  # contracting + bottom
    convs += sum(9 * (2 * c * c + c * c) + 2 * c for c in chans[:-1])  # expansive: 2c -> c, c -> c
    ups = sum(2 * c * c * 4 + c for c in chans[:-1])  # 2c -> c, 2x2
    assert totals("unet")[0] == convs + ups + 64 * 2 + 2
    # the up-conv's MACs: input elements x C_out x 4 (torch's count for a transposed conv)
    assert rep.row("up4").macs == 1024 * 28 * 28 * 512 * 4
    assert rep.rows[-1].receptive_field == (204, 204)


def test_c3d_arithmetic() -> None:
    """Tran et al. 2015, Fig. 3 (the paper gives no totals): 3x3x3 convs, pool5 -> 512x1x4x4 = 8192 features."""
    rep = report("c3d")
    assert rep.row("pool1").output_shape == (64, 16, 56, 56)
    assert rep.row("pool5").output_shape == (512, 1, 4, 4)
    chans = [(3, 64, 16 * 112 * 112), (64, 128, 16 * 56 * 56), (128, 256, 8 * 28 * 28), (256, 256, 8 * 28 * 28),
             (256, 512, 4 * 14 * 14), (512, 512, 4 * 14 * 14), (512, 512, 2 * 7 * 7), (512, 512, 2 * 7 * 7)]  # fmt: skip
    fcs = [(8192, 4096), (4096, 4096), (4096, 487)]
    assert totals("c3d")[0] == sum(27 * a * b + b for a, b, _ in chans) + sum(a * b + b for a, b in fcs)
    assert totals("c3d")[1] == sum(27 * a * b * n for a, b, n in chans) + sum(a * b for a, b in fcs)


def test_kim_text_cnn_arithmetic() -> None:
    """Kim 2014: windows 3, 4, 5 with 100 maps each over 300-d word vectors, max over time, fc to 2 classes."""
    length = 64
    params = sum(300 * 100 * k + 100 for k in (3, 4, 5)) + 300 * 2 + 2
    macs = sum((length - k + 1) * 100 * 300 * k for k in (3, 4, 5)) + 300 * 2
    assert totals("conv1d_text") == (params, macs)
    assert report("conv1d_text").row("cat").output_shape == (300, 1)


# =================================================================================================
# 4. Layer by layer against torch: each layer's build_torch in a minimal graph runner (meta device)
# =================================================================================================


def measure_layers(G: Any, device: str = "meta") -> dict[str, tuple[tuple[int, ...], int, int]]:
    """Run a compiled, analysed graph layer by layer: name -> (output shape, params, MACs = flops // 2)."""
    nodes = node_table(G)
    values = {"input": torch.zeros(1, *G.graph["input_shape"], device=device)}
    out = {}
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        for name in G.graph["order"]:  # training-only heads run too: they are measured like the rest
            node = nodes[name]
            with torch.device(device):
                mod = node["layer"].build_torch([tuple(nodes[i]["shape"]) for i in node["inputs"]]).eval()
            before = fc.get_total_flops()
            y = values[name] = mod(*[values[i] for i in node["inputs"]])
            out[name] = (tuple(y.shape[1:]), sum(p.numel() for p in mod.parameters()), (fc.get_total_flops() - before) // 2)
    return out


def _compare(G: Any) -> None:
    rep = report_from_graph(G, convention="torch")
    measured = measure_layers(G)
    wrong = [
        (r.name, (r.output_shape, r.params, r.macs), measured[r.name])
        for r in rep.rows
        if (tuple(r.output_shape), r.params, r.macs) != measured[r.name]
    ]
    assert not wrong, wrong[:3]


@pytest.mark.parametrize("name", LINEAGE)
def test_every_layer_matches_torch(name: str) -> None:
    _compare(compile_spec(load_spec(SPECS / f"{name}.json")))


NEW_TYPES = {
    "d2": {
        "name": "new2d",
        "input": [8, 9, 7],
        "layers": [
            {"name": "t", "type": "convtranspose2d", "out_channels": 6, "kernel_size": [3, 2], "stride": [2, 3], "padding": [1, 0],
             "output_padding": [1, 2], "groups": 2},
            {"name": "td", "type": "convtranspose2d", "out_channels": 6, "kernel_size": 3, "dilation": 2, "bias": False},
            {"name": "s", "type": "channelshuffle", "groups": 2},
            {"name": "a", "type": "chunk", "chunks": 3, "index": 2, "inputs": ["s"]},
            {"name": "w", "type": "chunk", "chunks": 4, "index": 1, "dim": 3, "inputs": ["s"]},
            {"name": "pad", "type": "zeropad2d", "padding": [1, 0, 2, 3], "inputs": ["s"]},
            {"name": "crop", "type": "crop", "size": [9, 4]},
            {"name": "near", "type": "upsample", "scale_factor": [2, 3]},
            {"name": "bil", "type": "upsample", "size": [11, 13], "mode": "bilinear", "inputs": ["crop"]},
            {"name": "bilac", "type": "upsample", "scale_factor": 2, "mode": "bilinear", "align_corners": True, "inputs": ["crop"]},
            {"name": "gate", "type": "adaptiveavgpool2d", "output_size": 1, "inputs": ["bilac"]},
            {"name": "mul", "type": "mul", "inputs": ["bilac", "gate", "bilac"]},
        ],
    },
    "d1": {
        "name": "new1d",
        "input": [4, 10],
        "layers": [
            {"name": "t", "type": "convtranspose1d", "out_channels": 4, "kernel_size": 4, "stride": 2, "padding": 1},
            {"name": "up", "type": "upsample", "scale_factor": 3, "mode": "linear"},
            {"name": "pad", "type": "zeropad1d", "padding": 2},
            {"name": "c", "type": "crop", "size": 7},
        ],
    },
    "d3": {
        "name": "new3d",
        "input": [2, 3, 4, 5],
        "layers": [
            {"name": "t", "type": "convtranspose3d", "out_channels": 4, "kernel_size": 2, "stride": 2},
            {"name": "up", "type": "upsample", "scale_factor": [1, 2, 2], "mode": "trilinear"},
            {"name": "n", "type": "upsample", "size": [3, 5, 7]},
            {"name": "pad", "type": "zeropad3d", "padding": [1, 1, 0, 2, 1, 0]},
            {"name": "s", "type": "channelshuffle", "groups": 2},
        ],
    },
}


@pytest.mark.parametrize("spec", NEW_TYPES.values(), ids=NEW_TYPES.keys())
def test_new_layer_types_match_torch(spec: dict[str, Any]) -> None:
    _compare(compile_spec(parse_spec(spec)))
    # and on real CPU tensors, where torch checks what the meta kernels might not
    G = compile_spec(parse_spec(spec))
    rep = report_from_graph(G, convention="torch")
    cpu = measure_layers(G, device="cpu")
    assert {r.name: tuple(r.output_shape) for r in rep.rows} == {n: m[0] for n, m in cpu.items()}


def test_torch_modules_behave_like_torch_code() -> None:
    """The extra modules are what torch code writes inline: chunk, center crop by slicing, x * gate."""
    from archcalc.torch.extra_modules import Chunk, Crop, Mul

    x = torch.arange(2 * 6 * 5 * 7, dtype=torch.float32).reshape(2, 6, 5, 7)
    assert torch.equal(Chunk(2, 1)(x), x.chunk(2, dim=1)[1])
    assert torch.equal(Crop((3, 4))(x), x[:, :, 1:4, 1:5])
    gate = torch.rand(2, 6, 1, 1)
    assert torch.equal(Mul()(x, gate), x * gate)
    y = nn.ChannelShuffle(2)(x)
    b, c, h, w = x.shape
    assert torch.equal(y, x.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w))  # torchvision's channel_shuffle
