"""Receptive fields across layers that regroup the axes (review s8, findings 18, 16 and 4): a
conv1d after a mean, flatten, squeeze or select that drops a spatial axis (CRNN text recognisers,
PANNs-style audio taggers hand a 2-D map to 1-D layers that way); Vision Permutator's height mixing
(Hou et al. 2022: permute, reshape, a linear over H*S); a linear after reshapes whose layout the
pass cannot follow.  Each field is checked against torch's input gradients: input pixel (i, j) is
in output o's field iff the gradient there is not zero (the model archcalc builds from the spec)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import cli

from archcalc import analyze, parse_spec


def _seen(spec: dict[str, Any], upto: str, position: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """Input rows and columns with a non-zero gradient of layer ``upto``'s output at ``position``."""
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    layers = []
    for layer in spec["layers"]:
        layers.append(layer)
        if layer["name"] == upto:
            break
    torch.manual_seed(0)
    model = build_module(compile_spec(parse_spec({**spec, "layers": layers})), device="cpu", dtype=torch.float64).eval()
    x = torch.randn(1, *spec["input"], dtype=torch.float64, requires_grad=True)
    model(x)[(0, *position)].backward()
    g = x.grad[0].abs().sum(0)
    return torch.nonzero(g.sum(1)).flatten().tolist(), torch.nonzero(g.sum(0)).flatten().tolist()


CONV = {"name": "c0", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}
CONV1D = {"name": "c1", "type": "conv1d", "out_channels": 4, "kernel_size": 3, "padding": 1}


def _crnn(*middle: dict[str, Any], first: dict[str, Any] = CONV) -> dict[str, Any]:
    return {"name": "crnn", "input": [3, 8, 10], "layers": [first, *middle, CONV1D]}


@pytest.mark.parametrize(
    ("middle", "first", "rows"),
    [
        # a mean over H (torch.mean(x, dim=2)): every row of c0's 3x3 fields, -1..8 = 10 with the padding counted
        ({"name": "m", "type": "mean", "dim": 2}, CONV, 10),
        # the CRNN hand-over: flatten (C, H) into the channels, which the conv1d reads all of: every row again
        ({"name": "m", "type": "flatten", "start_dim": 1, "end_dim": 2}, CONV, 10),
        # an 8x3 conv leaves H = 1, a reshape squeezes it: 8 rows
        ({"name": "m", "type": "reshape", "shape": [4, 10]}, {**CONV, "kernel_size": [8, 3], "padding": [0, 1]}, 8),
        # row 4 of the map (select dim 2): c0's rows 3..5
        ({"name": "m", "type": "select", "dim": 2, "index": 4}, CONV, 3),
    ],
)
def test_a_conv1d_after_a_dropped_axis_slides_along_w(middle: dict[str, Any], first: dict[str, Any], rows: int) -> None:
    spec = _crnn(middle, first=first)
    # W: c0's 3 columns, then the conv1d's 3-wide window one column apart: 3 + (3 - 1) * 1 = 5
    assert analyze(parse_spec(spec)).row("c1").receptive_field == (rows, 5)
    seen_rows, cols = _seen(spec, "c1", (0, 5))
    assert cols == [3, 4, 5, 6, 7]  # output 5 reads columns 4..6 of c0, each 3 wide: 3..7
    assert len(seen_rows) == {10: 8, 8: 8, 3: 3}[rows]  # all 8 rows (10 with the two padding rows counted), or rows 3..5


def test_check_and_explain_answer_on_the_conv1d(tmp_path: Path) -> None:
    path = tmp_path / "crnn.json"
    path.write_text(json.dumps(_crnn({"name": "m", "type": "mean", "dim": 2})))
    out = cli("check", str(path), "c1.params=52", "c1.rf=10x5")  # 4 * 4 * 3 + 4 = 52
    assert out.code == 0 and "2 correct" in out.out, out.out + out.err
    out = cli("explain", str(path), "c1")
    assert out.code == 0 and "internal error" not in out.err, out.err


VIP = {"name": "vip", "input": [8, 6, 5], "layers": [
    {"name": "c0", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
    {"name": "p1", "type": "permute", "dims": [0, 2, 3, 1]},  # (H, W, C)
    {"name": "r1", "type": "reshape", "shape": [6, 5, 2, 4]},  # (H, W, N, S)
    {"name": "p2", "type": "permute", "dims": [0, 3, 2, 1, 4]},  # (N, W, H, S)
    {"name": "r2", "type": "reshape", "shape": [2, 5, 24]},  # (N, W, H*S)
    {"name": "lin", "type": "linear", "out_features": 24},  # mixes H*S: every row
    {"name": "r3", "type": "reshape", "shape": [2, 5, 6, 4]},
    {"name": "p3", "type": "permute", "dims": [0, 3, 2, 1, 4]},
    {"name": "r4", "type": "reshape", "shape": [6, 5, 8]},
    {"name": "p4", "type": "permute", "dims": [0, 3, 1, 2]},  # back to (C, H, W)
    {"name": "c1", "type": "conv2d", "out_channels": 8, "kernel_size": 1},
]}


def test_vision_permutator_height_mixing_reads_every_row() -> None:
    rep = analyze(parse_spec(VIP))
    # H: the union of c0's 3-row fields over the 6 rows, -1..6 = 6 + 2 = 8; W: c0's 3 columns
    assert rep.row("lin").receptive_field == (8, 3) and not rep.row("lin").rf_approximate
    assert rep.row("p4").receptive_field == (8, 3)
    rows, cols = _seen(VIP, "p4", (0, 2, 2))
    assert rows == list(range(6)) and cols == [1, 2, 3]


def test_a_linear_after_reshapes_that_lose_the_layout_is_approximate_not_whole() -> None:
    spec = {"name": "rs", "input": [4, 8, 8], "layers": [
        {"name": "c1", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"name": "r1", "type": "reshape", "shape": [4, 64]},
        {"name": "r2", "type": "reshape", "shape": [32, 8]},  # (C*H, W): element (c, h, w) at row 8c + h
        {"name": "lin", "type": "linear", "out_features": 8},
    ]}
    row = analyze(parse_spec(spec)).row("lin")
    rows, cols = _seen(spec, "lin", (3, 0))
    assert rows == [2, 3, 4] and cols == list(range(8))  # torch: 3 rows, every column: not the whole input
    assert not row.whole_input and row.rf_approximate
    # the field shown bounds torch's: 3 rows, 8 columns (10 with padding)
    assert row.receptive_field[0] >= 3 and row.receptive_field[1] == 10


# ----- adaptive pooling whose output size does not divide its input's (review s8, finding 17) -----
# torch's window i of n positions to o is floor(i*n/o) .. ceil((i+1)*n/o) - 1 (aten AdaptiveAveragePooling):
# for 8 -> 5 the windows start at 0, 1, 3, 4, 6, not one stride apart.


def _hulls_1d(spec: dict[str, Any]) -> list[int]:
    """Per output position of the last layer, the width lo..hi of the input positions torch reads."""
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    model = build_module(compile_spec(parse_spec(spec)), device="cpu", dtype=torch.float64).eval()
    for p in model.parameters():
        with torch.no_grad():
            p.copy_(torch.rand_like(p) + 0.5)  # positive weights: no gradient cancels
    x = torch.rand(1, *spec["input"], dtype=torch.float64) + 0.5
    jac = torch.autograd.functional.jacobian(model, x)[0].abs().sum(dim=0)  # (L_out, 1, C_in, L_in)
    jac = jac.sum(dim=(1, 2))
    return [int(nz.max() - nz.min() + 1) for row in jac if (nz := torch.nonzero(row).flatten()).numel()]


def test_a_window_after_an_uneven_adaptive_pool_sees_what_torch_reads() -> None:
    spec = {"name": "a", "input": [1, 1, 8], "layers": [
        {"name": "c0", "type": "conv2d", "out_channels": 1, "kernel_size": 1},
        {"name": "pool", "type": "adaptiveavgpool2d", "output_size": [1, 5]},
        {"name": "c1", "type": "conv2d", "out_channels": 1, "kernel_size": 3, "padding": 1},
    ]}
    rep = analyze(parse_spec(spec))
    # the pool's widest window is 3 (1..3 and 4..6); c1's output 2 reads pool outputs 1..3: pixels 1..6, 6 wide
    assert rep.row("pool").receptive_field == (1, 3) and rep.row("c1").receptive_field == (3, 6)
    assert rep.row("pool").effective_stride == (1, 2)  # 8/5 pixels apart on average, rounded up (and said so)
    assert "8/5" in (rep.row("pool").note or "")
    assert _seen(spec, "c1", (0, 0, 2))[1] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(("n", "o"), [(8, 5), (7, 3), (10, 4), (13, 6), (2, 4), (5, 7)])
def test_uneven_adaptive_pools_against_torch(n: int, o: int) -> None:
    """conv 2, adaptive pool to o, conv 3 (no padding: the field is the widest run torch reads)."""
    spec = {"name": "a", "input": [1, n + 1], "layers": [
        {"name": "c0", "type": "conv1d", "out_channels": 2, "kernel_size": 2},
        {"name": "pool", "type": "adaptiveavgpool1d", "output_size": o},
        {"name": "c1", "type": "conv1d", "out_channels": 2, "kernel_size": 3},
    ]}
    row = analyze(parse_spec(spec)).row("c1")
    assert row.receptive_field == (max(_hulls_1d(spec)),) and not row.rf_approximate
    assert row.effective_stride[0] >= 1


def test_an_enlarging_adaptive_pool_has_no_stride_0() -> None:
    """VGG-16's avgpool on a 1x1 pool5 (a 48x48 image): torchvision replicates it to 7x7."""
    out = cli("check", "--stack", "3x2x2", "conv 4 2", "adaptiveavgpool2d output_size=7", "adaptiveavgpool2d1.stride=0x0")
    assert out.code == 1 and "WRONG" in out.out, out.out
    row = analyze(parse_spec({"name": "v", "input": [3, 2, 2], "layers": [
        {"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 2},
        {"name": "pool", "type": "adaptiveavgpool2d", "output_size": 7},
    ]})).row("pool")
    assert row.receptive_field == (2, 2) and row.effective_stride == (1, 1)  # 1 position per 7 outputs: 1/7, rounded up


# ----- a long upsampled pattern under a long kernel (review s8, finding 14: minutes for 4 layers) -----


def test_a_run_of_units_is_seen_from_its_ends() -> None:
    """Upsampling by 3, a stride-4 conv, upsampling by 5, a 7-wide conv: the uneven pattern's fields,
    found from each run's first and last unit, against torch (no padding: the field is the widest run)."""
    spec = {"name": "u", "input": [1, 10], "layers": [
        {"name": "u1", "type": "upsample", "scale_factor": 3, "mode": "nearest"},
        {"name": "c1", "type": "conv1d", "out_channels": 2, "kernel_size": 2, "stride": 4},
        {"name": "u2", "type": "upsample", "scale_factor": 5, "mode": "nearest"},
        {"name": "c2", "type": "conv1d", "out_channels": 2, "kernel_size": 7},
    ]}
    row = analyze(parse_spec(spec)).row("c2")
    assert row.receptive_field == (max(_hulls_1d(spec)),) and not row.rf_approximate


def test_a_pattern_too_long_to_walk_is_approximate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dilated kernel reads units with gaps, so no shortcut applies: past MAX_WORK spans (outputs of
    the period x kernel) the field is bounded on the average grid and says so, instead of walking them."""
    from archcalc.passes import receptive

    stack = ["1x300", "upsample scale_factor=3", "conv 1 1 s7", "conv 1 50 d2"]
    assert not any("approximate" in line for line in cli("quick", *stack).out.splitlines() if line.startswith("  conv2"))
    monkeypatch.setattr(receptive, "MAX_WORK", 100)  # the period is 3 outputs: 3 x 50 spans > 100
    out = cli("quick", *stack)
    assert out.code == 0 and "approximate" in out.out and "4,000,000" in out.out, out.out


# ----- tokens taken after causal attention (review s8, finding 2) -----


def _causal(take: dict[str, Any]) -> dict[str, Any]:
    """8 tokens of 4 features, causal self-attention, then ``take`` along the tokens, then a linear."""
    return {"name": "cs", "input": [8, 4], "layers": [
        {"name": "qkv", "type": "linear", "out_features": 12},
        {"name": "q", "type": "slice", "inputs": ["qkv"], "dim": 2, "start": 0, "end": 4},
        {"name": "k", "type": "slice", "inputs": ["qkv"], "dim": 2, "start": 4, "end": 8},
        {"name": "v", "type": "slice", "inputs": ["qkv"], "dim": 2, "start": 8, "end": 12},
        {"name": "att", "type": "scaled_dot_product_attention", "inputs": ["q", "k", "v"], "is_causal": True},
        {"name": "take", **take},
        {"name": "fc", "type": "linear", "out_features": 3},
    ]}


def _tokens_read(spec: dict[str, Any]) -> list[int]:
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    torch.manual_seed(0)
    model = build_module(compile_spec(parse_spec(spec)), device="cpu", dtype=torch.float64).eval()
    x = torch.randn(1, 8, 4, dtype=torch.float64, requires_grad=True)
    model(x).sum().backward()
    return torch.nonzero(x.grad[0].abs().sum(1)).flatten().tolist()


@pytest.mark.parametrize(
    ("take", "tokens", "whole"),
    [
        ({"type": "select", "dim": 1, "index": 0}, 1, False),  # token 0 of a causal layer sees token 0 only
        ({"type": "slice", "dim": 1, "start": 0, "end": 3}, 3, False),  # tokens 0..2: the last of them sees 0..2
        ({"type": "select", "dim": 1, "index": -1}, 8, True),  # the last token sees all 8
    ],
)
def test_tokens_taken_after_causal_attention(take: dict[str, Any], tokens: int, whole: bool) -> None:
    spec = _causal(take)
    rep = analyze(parse_spec(spec))
    assert len(_tokens_read(spec)) == tokens
    for name in ("take", "fc"):
        row = rep.row(name)
        assert row.receptive_field == (tokens,) and row.whole_input is whole and not row.rf_approximate
        assert not row.causal_field  # (one output, or a prefix that is not the whole input)


def test_the_derivation_after_a_softmax_over_w_agrees_with_itself() -> None:
    """Review s8, finding 7: the softmax's line said "pointwise: unchanged = 3x10" (its input was 3x3)
    and the conv after it "= 10 + 3 - 1 = 10"."""
    out = cli("explain", "--stack", "3x8x8", "conv 4 3 p1", "softmax dim=3", "conv 4 3 p1")
    assert out.code == 0, out.err
    assert "pointwise: unchanged = 3\u00d710" not in out.out and "10 + 3 \u2212 1 = 10" not in out.out, out.out
    assert "the union of their fields, 3 \u2192 10" in out.out  # W: 3 + (8 - 1) = 10, every column's field
    out = cli("check", "--stack", "3x8x8", "conv 4 3 p1", "softmax dim=3", "conv 4 3 p1", "conv2.rf=5x12")
    assert out.code == 1 and "exact 5\u00d710" in out.out and "10 + 3 \u2212 1" not in out.out, out.out


def test_positions_that_read_only_padding_are_not_whole() -> None:
    """Review s8, finding 5: after a global pool, a zero padding of 2 makes a 5x5 map of which 24
    positions are zeros: they see no pixel (torch: their gradient is 0), so the map is not 'whole'."""
    spec = {"name": "p", "input": [3, 8, 8], "layers": [
        {"name": "c0", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"name": "gap", "type": "adaptiveavgpool2d", "output_size": 1},
        {"name": "pad", "type": "zeropad2d", "padding": 2},
        {"name": "c1", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
    ]}
    rep = analyze(parse_spec(spec))
    assert rep.row("gap").whole_input
    assert not rep.row("pad").whole_input and not rep.row("c1").whole_input
    assert _seen(spec, "c1", (0, 0, 0)) == ([], [])  # a corner: padding only
    assert _seen(spec, "c1", (0, 2, 2)) == (list(range(8)), list(range(8)))  # the centre: every pixel


def test_a_window_whose_every_output_reads_the_whole_small_map_is_whole() -> None:
    """Review s8, finding 1: a 3x3 stride-2 conv on 5x5 leaves 2x2 positions reading pixels 0..2 and
    2..4; a 3x3 pad-1 pool on that 2x2 map reads both positions from every output: all 25 pixels."""
    spec = {"name": "w", "input": [1, 5, 5], "layers": [
        {"name": "c", "type": "conv2d", "out_channels": 2, "kernel_size": 3, "stride": 2},
        {"name": "pool", "type": "avgpool2d", "kernel_size": 3, "stride": 1, "padding": 1},
    ]}
    assert analyze(parse_spec(spec)).row("pool").whole_input
    for o in ((0, 0), (0, 1), (1, 0), (1, 1)):
        assert _seen(spec, "pool", (0, *o)) == (list(range(5)), list(range(5)))
    # ResNet-18 at 64x64: layer4's 3x3 pad-1 convs run on 2x2 maps; each output reads both positions per axis
    out = cli("check", "specs/resnet18.json", "--input", "3,64,64", "layer4.0.conv2.rf=whole image")
    assert out.code == 0 and "correct" in out.out, out.out


def test_written_out_causal_attention_scores_are_not_whole() -> None:
    """Review s8, finding 8: nanoGPT's attention with flash=False (6 tokens of 8, 2 heads), as
    ``archcalc import`` writes it.  Score (i, j) of q k^T reads tokens i and j; after the mask and
    softmax, row i reads tokens 0..i; only att @ v onwards has the causal 'whole' field."""
    spec = {"name": "att", "input": [6, 8], "layers": [
        {"name": "c_attn", "type": "linear", "out_features": 24},
        {"name": "q", "type": "slice", "dim": 2, "end": 8},
        {"name": "k", "type": "slice", "inputs": ["c_attn"], "dim": 2, "start": 8, "end": 16},
        {"name": "v", "type": "slice", "inputs": ["c_attn"], "dim": 2, "start": 16, "end": 24},
        {"name": "qh", "type": "unflatten", "inputs": ["q"], "dim": 2, "unflattened_size": [2, 4]},
        {"name": "qt", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "kh", "type": "unflatten", "inputs": ["k"], "dim": 2, "unflattened_size": [2, 4]},
        {"name": "kt", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "vh", "type": "unflatten", "inputs": ["v"], "dim": 2, "unflattened_size": [2, 4]},
        {"name": "vt", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "kT", "type": "transpose", "inputs": ["kt"], "dim0": -2, "dim1": -1},
        {"name": "scores", "type": "matmul", "inputs": ["qt", "kT"], "causal": "scores"},
        {"name": "masked", "type": "causal_mask"},
        {"name": "soft", "type": "softmax", "dim": -1},
        {"name": "out", "type": "matmul", "inputs": ["soft", "vt"], "causal": "weights"},
    ]}
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    def tokens(upto: str, entry: tuple[int, ...]) -> list[int]:
        layers = spec["layers"][: [x["name"] for x in spec["layers"]].index(upto) + 1]
        torch.manual_seed(0)
        model = build_module(compile_spec(parse_spec({**spec, "layers": layers})), device="cpu", dtype=torch.float64).eval()
        x = torch.randn(1, 6, 8, dtype=torch.float64, requires_grad=True)
        model(x)[(0, *entry)].backward()
        return torch.nonzero(x.grad[0].abs().sum(1)).flatten().tolist()

    assert tokens("scores", (0, 2, 3)) == [2, 3] and tokens("soft", (0, 2, 1)) == [0, 1, 2]
    rep = analyze(parse_spec(spec))
    for name in ("scores", "masked", "soft"):
        row = rep.row(name)
        assert row.receptive_field == (6,) and not row.whole_input  # the hull of the widest pair (0, 5), 6 tokens
    assert rep.row("out").whole_input and rep.row("out").causal_field
