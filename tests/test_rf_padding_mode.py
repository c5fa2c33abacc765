"""Receptive fields and "whole" under conv ``padding_mode`` (review s9, finding 2).  Circular
padding wraps: position -1 of a padded axis is the last pixel, so border windows read the far side
of the map (torch.nn.Conv2d docs; F.pad(mode='circular')).  Reflect and replicate copy pixels next
to the border, which the window's own positions hold.  Each claim is checked against torch's input
gradients: output o sees input pixel p iff d out[o] / d x[p] is not zero (float64, the module
archcalc builds from the spec)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import cli

from archcalc import analyze, parse_spec


def _pixels(spec: dict[str, Any], upto: str) -> list[set[tuple[int, ...]]]:
    """Per output position of layer ``upto`` (channels summed), the input pixels it sees."""
    torch = pytest.importorskip("torch")
    from archcalc.graph import compile_spec
    from archcalc.torch.build import build_module

    names = [x["name"] for x in spec["layers"]]
    sub = {**spec, "layers": spec["layers"][: names.index(upto) + 1]}
    torch.manual_seed(0)
    model = build_module(compile_spec(parse_spec(sub)), device="cpu", dtype=torch.float64).eval()
    for p in model.parameters():
        with torch.no_grad():
            p.copy_(torch.rand_like(p) + 0.5)  # positive weights: no gradient cancels
    x = torch.rand(1, *spec["input"], dtype=torch.float64) + 0.5
    jac = torch.autograd.functional.jacobian(model, x)[0]  # out (C, *pos) x in (1, C_in, *pixels)
    jac = jac.abs().sum(dim=0) if jac.dim() > 2 + len(spec["input"]) else jac.abs().unsqueeze(0)
    jac = jac.sum(dim=(len(jac.shape) - len(spec["input"]) - 1, len(jac.shape) - len(spec["input"])))  # (*pos, *pixels)
    n_pix = len(spec["input"]) - 1
    pos_shape = jac.shape[: jac.dim() - n_pix]
    flat = jac.reshape(-1, *jac.shape[jac.dim() - n_pix :])
    out = [{tuple(i) for i in torch.nonzero(f).tolist()} for f in flat]
    assert len(out) == max(1, int(torch.tensor(pos_shape).prod()))
    return out


def _spec(shape: list[int], *layers: dict[str, Any]) -> dict[str, Any]:
    return {"name": "pm", "input": shape, "layers": [{"name": f"l{i}", **x} for i, x in enumerate(layers)]}


CONV = {"type": "conv2d", "out_channels": 1, "kernel_size": 3}


def test_circular_padding_sees_the_far_side_and_the_whole_image(tmp_path: Path) -> None:
    """The review's repro: 1x9x9, a 3x3 stride-3 conv padded 1 circularly, then a linear.  Conv output 0
    reads padded positions -1, 0, 1, and -1 wraps to pixel 8: the three outputs per axis read all 9."""
    spec = _spec([1, 9, 9], {**CONV, "stride": 3, "padding": 1, "padding_mode": "circular"}, {"type": "flatten"},
                 {"type": "linear", "out_features": 2})
    seen = _pixels(spec, "l2")
    assert all(len(s) == 81 for s in seen)  # torch: every output of the linear sees all 81 pixels
    conv = _pixels(spec, "l0")
    assert conv[0] == {(r, c) for r in (8, 0, 1) for c in (8, 0, 1)}  # the corner output wraps on both axes
    assert all(len(s) == 9 for s in conv)  # each output sees 3x3 pixels, going round the edge
    rep = analyze(parse_spec(spec))
    assert rep.row("l0").receptive_field == (3, 3) and not rep.row("l0").rf_approximate
    assert rep.row("l1").whole_input and rep.row("l2").whole_input
    path = tmp_path / "circ.json"
    path.write_text(json.dumps(spec))
    out = cli("check", str(path), "l2.rf=whole image")
    assert out.code == 0 and "1 correct" in out.out, out.out


def test_zeros_reflect_replicate_miss_the_last_row_and_column() -> None:
    """The same stack with zeros, reflect or replicate padding: no output reads pixel 8 (outputs read
    0..1, 2..4, 5..7 per axis; reflect's -1 is pixel 1, replicate's pixel 0): 8x8 = 64 of 81, not whole."""
    for mode in ("zeros", "reflect", "replicate"):
        spec = _spec([1, 9, 9], {**CONV, "stride": 3, "padding": 1, "padding_mode": mode}, {"type": "flatten"},
                     {"type": "linear", "out_features": 2})
        assert all(len(s) == 64 for s in _pixels(spec, "l2")), mode
        rep = analyze(parse_spec(spec))
        assert not rep.row("l2").whole_input and rep.row("l0").receptive_field == (3, 3), mode


def test_circular_padding_around_a_small_map_is_whole(tmp_path: Path) -> None:
    """The review's second repro: 3x3 conv, adaptive pool to 2x2, then a 3x3 conv padded 2 circularly:
    each output's window, round the 2x2 map, reads both positions per axis: all 64 pixels."""
    spec = _spec([2, 8, 8], {**CONV, "out_channels": 2, "padding": 1}, {"type": "adaptiveavgpool2d", "output_size": 2},
                 {**CONV, "out_channels": 2, "padding": 2, "padding_mode": "circular"})
    assert all(len(s) == 64 for s in _pixels(spec, "l2"))
    row = analyze(parse_spec(spec)).row("l2")
    assert row.whole_input and not row.rf_approximate
    path = tmp_path / "circ2.json"
    path.write_text(json.dumps(spec))
    out = cli("check", str(path), "l2.rf=whole image")
    assert out.code == 0 and "1 correct" in out.out, out.out


def test_a_stack_of_circular_convs_is_exact_round_the_ring() -> None:
    """1-D, 8 pixels, 3-wide circular convs padded 1: each output sees 3, 5, 7 pixels (round the edge
    at the border), then 9 > 8: all 8, every output (whole)."""
    conv1d = {"type": "conv1d", "out_channels": 1, "kernel_size": 3, "padding": 1, "padding_mode": "circular"}
    spec = _spec([1, 8], conv1d, conv1d, conv1d, conv1d)
    rep = analyze(parse_spec(spec))
    for i, size in enumerate((3, 5, 7)):
        assert {len(s) for s in _pixels(spec, f"l{i}")} == {size}
        row = rep.row(f"l{i}")
        assert row.receptive_field == (size,) and not row.rf_approximate and not row.whole_input
    assert {len(s) for s in _pixels(spec, "l3")} == {8}
    assert rep.row("l3").whole_input and not rep.row("l3").rf_approximate


def test_circular_padding_after_zero_padding_is_approximate() -> None:
    """A zero-padded 3x3 conv, then a circular one (9 pixels): conv 2's output 0 reads conv 1's
    positions 8, 0, 1, whose fields are 7..8 (and zero padding) and 0..2: pixels {7, 8, 0, 1, 2},
    which no interval of padded positions describes: marked approximate, not a wrong exact figure."""
    conv1d = {"type": "conv1d", "out_channels": 1, "kernel_size": 3, "padding": 1}
    spec = _spec([1, 9], conv1d, {**conv1d, "padding_mode": "circular"})
    assert _pixels(spec, "l1")[0] == {(7,), (8,), (0,), (1,), (2,)}
    row = analyze(parse_spec(spec)).row("l1")
    assert row.rf_approximate and "circular" in (row.note or "")


def test_replicate_padding_on_a_pooled_map_reads_no_blank() -> None:
    """After a global pool (1x1), a 1x1 conv padded 1: with zeros its 8 border outputs read only padding
    (not whole); replicate padding copies the one position into them: all 9 outputs see all 36 pixels."""
    for mode, whole in (("zeros", False), ("replicate", True)):
        spec = _spec([1, 6, 6], {**CONV, "padding": 1}, {"type": "adaptiveavgpool2d", "output_size": 1},
                     {**CONV, "kernel_size": 1, "padding": 1, "padding_mode": mode})
        seen = _pixels(spec, "l2")
        assert all(len(s) == 36 for s in seen) is whole and len(seen) == 9
        assert analyze(parse_spec(spec)).row("l2").whole_input is whole, mode


def test_circular_padding_with_symbolic_sizes_is_approximate_and_exact_once_numbered() -> None:
    """With H and W symbols, whether the field wraps round the whole map is not decided: approximate;
    at 16x16 two circular 3x3 convs are exact (3, then 5) and the global pool after them is whole."""
    spec = {"name": "s", "input": [3, "H", "W"], "layers": [
        {"name": "c", **CONV, "out_channels": 4, "padding": 1, "padding_mode": "circular"},
        {"name": "c2", **CONV, "out_channels": 4, "padding": 1, "padding_mode": "circular"},
        {"name": "p", "type": "adaptiveavgpool2d", "output_size": 1},
    ]}
    rep = analyze(parse_spec(spec))
    assert all(r.rf_approximate for r in rep.rows) and "symbols" in (rep.row("c").note or "")
    rep = analyze(parse_spec(spec), values={"H": 16, "W": 16})
    assert rep.row("c").receptive_field == (3, 3) and rep.row("c2").receptive_field == (5, 5)
    assert not any(r.rf_approximate for r in rep.rows) and rep.row("p").whole_input


def test_explain_and_check_derive_the_wrapped_whole_field(tmp_path: Path) -> None:
    """The derivation of the second repro's conv2 (a 6-wide field, 4 apart, on a 2x2 map: the union of
    both positions is 6 + 4 = 10) must not read '6 + (3 - 1)*4 = 10' (which is 14)."""
    spec = _spec([2, 8, 8], {**CONV, "out_channels": 2, "padding": 1}, {"type": "adaptiveavgpool2d", "output_size": 2},
                 {**CONV, "out_channels": 2, "padding": 2, "padding_mode": "circular"})
    path = tmp_path / "circ2.json"
    path.write_text(json.dumps(spec))
    out = cli("explain", str(path), "l2")
    assert out.code == 0 and "the union of their fields, 6 \u2192 10" in out.out and "(3 \u2212 1)\u00b74 = 10" not in out.out, out.out
    assert "circular padding" in out.out
