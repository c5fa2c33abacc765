"""Rows whose receptive field is approximate say so, and claim nothing exact (review s9, finding 8):
a note on an uneven grid ("outputs sit 1999999994/7 input pixels apart on average") used to end
"(the receptive field is exact)" and the JSON gave an ``effective_stride_exact`` on rows flagged
``receptive_field_approximate``, where the first layer's bound (stride 2 for 1,000,000,007 -> 999,999,999)
makes both wrong: the true average stride there is (1000000007/999999999) * (999999997/7), about
142,857,143, half the 285,714,285 shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import cli

from archcalc import analyze, parse_spec

EXOTIC2: dict[str, Any] = {"name": "exotic2", "input": [6, 15, 17], "layers": [
    {"name": "ct", "type": "convtranspose2d", "out_channels": 9, "kernel_size": [3, 4], "stride": [2, 3], "padding": [1, 2],
     "output_padding": [1, 2], "groups": 3, "dilation": [2, 1]},
    {"name": "bn", "type": "batchnorm2d"},
    {"name": "up", "type": "upsample", "scale_factor": 2, "mode": "bilinear", "align_corners": True},
    {"name": "c", "type": "conv2d", "out_channels": 6, "kernel_size": 3, "stride": [2, 1], "padding": "valid", "dilation": [1, 3],
     "groups": 3, "padding_mode": "replicate"},
    {"name": "mp", "type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True},
    {"name": "ap", "type": "avgpool2d", "kernel_size": [2, 3], "stride": [1, 2], "padding": [1, 1], "ceil_mode": True,
     "count_include_pad": False},
    {"name": "amp", "type": "adaptivemaxpool2d", "output_size": [3, 5]},
    {"name": "fl", "type": "flatten"},
    {"name": "fc", "type": "linear", "out_features": 7},
]}


def test_bounded_adaptive_pooling_gives_no_exact_stride_and_says_approximate() -> None:
    out = cli("quick", "1x1000000007", "adaptiveavgpool1d output_size=999999999", "conv 1 3", "adaptiveavgpool1d output_size=7",
              "--format", "json")
    assert out.code == 0, out.err
    rows = {r["name"]: r for r in json.loads(out.out)["layers"]}
    last = rows["adaptiveavgpool1d2"]
    assert last["receptive_field_approximate"] is True
    assert "effective_stride_exact" not in last  # (it said "1999999994/7": the bound's, not the network's)
    assert "is exact" not in last["note"] and "approximate from adaptiveavgpool1d1 on" in last["note"], last["note"]


def test_every_approximate_row_says_so_and_none_says_exact(tmp_path: Path) -> None:
    rep = analyze(parse_spec(EXOTIC2))
    approximate = [r for r in rep.rows if r.rf_approximate]
    assert [r.name for r in approximate] == ["ct", "bn", "up", "c", "mp", "ap", "amp", "fl", "fc"]
    for row in approximate:
        assert "is exact" not in (row.note or "") and "approximate" in (row.note or ""), (row.name, row.note)
        assert row.stride_exact is None
    path = tmp_path / "exotic2.json"
    path.write_text(json.dumps(EXOTIC2))
    out = cli("check", str(path), "c.rf=4x3")
    assert "cannot judge" in out.out and "1 not judged" in out.out and "is exact" not in out.out, out.out


def test_an_exact_uneven_grid_still_says_exact() -> None:
    """Control: adaptive pooling of 8 positions to 5 (no bound) keeps its exact field, its 8/5 stride and its words."""
    spec = {"name": "a", "input": [1, 8], "layers": [{"name": "pool", "type": "adaptiveavgpool1d", "output_size": 5}]}
    row = analyze(parse_spec(spec)).row("pool")
    assert not row.rf_approximate and "8/5" in (row.note or "") and "(the receptive field is exact)" in (row.note or "")
    assert row.stride_exact is not None and str(row.stride_exact[0]) == "8/5"
