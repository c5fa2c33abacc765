"""Layers whose every output reads every position along an axis (review s7, findings 5 and 15): a
softmax over a spatial axis (keypoint heads), a norm whose statistics span the map (LayerNorm over
[H, W], GroupNorm, BatchNorm without running statistics), a linear over a spatial axis (torch's
Linear acts on the last axis; MLP-Mixer's token mixing).  Each was read as pointwise: conv, softmax
over W, conv printed 5x5 where every output reads whole rows.  Each case is checked against torch's
gradients: input pixel (i, j) is in output (o, p)'s field iff the gradient there is not zero."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import cli

from archcalc import analyze, parse_spec


def _field_of(spec: dict[str, Any], position: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """Input rows and columns with a non-zero gradient of the last layer's output at channel 0,
    ``position`` (torch, the model built from the spec)."""
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    torch.manual_seed(0)
    model = build_module(compile_spec(parse_spec(spec)), device="cpu", dtype=torch.float64).eval()
    x = torch.randn(1, *spec["input"], dtype=torch.float64, requires_grad=True)
    model(x)[(0, 0, *position)].backward()
    g = x.grad.abs().sum(dim=(0, 1))
    return torch.nonzero(g.sum(1)).flatten().tolist(), torch.nonzero(g.sum(0)).flatten().tolist()


def _net(*layers: dict[str, Any], size: int = 8) -> dict[str, Any]:
    return {"name": "m", "input": [3, size, size], "layers": [{"name": f"l{i}", **kw} for i, kw in enumerate(layers)]}


CONV = {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}


def test_a_softmax_over_w_makes_the_field_whole_along_w() -> None:
    spec = _net(CONV, {"type": "softmax", "dim": 3}, CONV)
    rep = analyze(parse_spec(spec))
    row = rep.row("l2")
    # H: two 3x3 convs, 3 + 2 = 5; W: the union of the 8 columns' 3-wide fields of l0, 3 + 7 = 10 (padding counted, as for any field)
    assert row.receptive_field == (5, 10) and not row.whole_input
    assert "along axis 1" in (rep.row("l1").note or "")
    rows, cols = _field_of(spec, (4, 4))
    assert rows == [2, 3, 4, 5, 6] and cols == list(range(8))  # every column: whole along W


@pytest.mark.parametrize(
    "norm",
    [
        {"type": "layernorm", "normalized_shape": [8, 8]},
        {"type": "groupnorm", "num_groups": 2},
        {"type": "batchnorm2d", "track_running_stats": False},
    ],
)
def test_a_norm_whose_statistics_span_the_map_sees_the_whole_input(norm: dict[str, Any]) -> None:
    spec = _net(CONV, norm)
    assert analyze(parse_spec(spec)).row("l1").whole_input is True
    assert _field_of(spec, (0, 0)) == (list(range(8)), list(range(8)))


def test_batchnorm_with_running_statistics_is_per_pixel() -> None:
    spec = _net(CONV, {"type": "batchnorm2d"})
    assert analyze(parse_spec(spec)).row("l1").receptive_field == (3, 3)
    assert _field_of(spec, (4, 4)) == ([3, 4, 5], [3, 4, 5])


def test_a_linear_over_the_last_spatial_axis_reads_the_whole_row() -> None:
    spec = _net({**CONV, "padding": 0}, {"type": "linear", "out_features": 5})
    row = analyze(parse_spec(spec)).row("l1")
    assert row.output_shape == (4, 6, 5)
    assert row.receptive_field == (3, 3 + 5)  # H 3; W: the 6 positions' 3-wide fields, 3 + 5 = 8, every column
    assert _field_of(spec, (2, 0)) == ([2, 3, 4], list(range(8)))


def test_mlp_mixer_token_mixing_sees_the_whole_image() -> None:
    """MLP-Mixer (Tolstikhin et al. 2021): 4x4 patches flattened to 64 tokens, a linear over the tokens."""
    spec = {"name": "mixer", "input": [3, 32, 32], "layers": [
        {"name": "stem", "type": "conv2d", "out_channels": 8, "kernel_size": 4, "stride": 4},
        {"name": "flat", "type": "flatten", "start_dim": 2},
        {"name": "mix", "type": "linear", "out_features": 64},
        {"name": "t", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "ch", "type": "linear", "out_features": 8},
    ]}
    rep = analyze(parse_spec(spec))
    assert rep.row("flat").receptive_field == (4, 4)
    assert rep.row("mix").whole_input and rep.row("ch").whole_input
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    model = build_module(compile_spec(parse_spec(spec)), device="cpu", dtype=torch.float64).eval()
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    model(x)[0, 0, 0].backward()
    assert int((x.grad.abs().sum(dim=(0, 1)) > 0).sum()) == 32 * 32


def test_token_features_stay_pointwise() -> None:
    """A LayerNorm or Linear over a token's features (ViT, GPT) mixes no position."""
    spec = {"name": "t", "input": [3, 16, 16], "layers": [
        {"name": "patch", "type": "conv2d", "out_channels": 8, "kernel_size": 4, "stride": 4},
        {"name": "flat", "type": "flatten", "start_dim": 2},
        {"name": "tok", "type": "transpose", "dim0": 1, "dim1": 2},
        {"name": "ln", "type": "layernorm"},
        {"name": "fc", "type": "linear", "out_features": 8},
    ]}
    rep = analyze(parse_spec(spec))
    assert [rep.row(n).receptive_field for n in ("ln", "fc")] == [(4, 4), (4, 4)]
    assert not rep.row("fc").whole_input and not rep.row("fc").rf_approximate


def test_check_judges_the_softmax_field() -> None:
    out = cli("check", "--stack", "3x8x8", "conv 4 3 p1", "softmax dim=3", "conv 4 3 p1", "conv2.rf=5x5")
    assert out.code == 1 and "WRONG" in out.out, out.out
