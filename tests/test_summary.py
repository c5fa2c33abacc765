"""table --depth N: a network by its blocks or stages, each with its totals, in every format (issue 16 item 4)."""

from __future__ import annotations

import json

import pytest
from conftest import SPECS, cli

from archcalc import analyze
from archcalc.render import FORMATS
from archcalc.summary import summarise


def test_resnet50_stage_summary() -> None:
    rep = analyze(str(SPECS / "resnet50.json"))
    s = summarise(rep, 1)
    assert [r.name for r in s.rows] == ["stem", "layer1 \u00d73", "layer2 \u00d74", "layer3 \u00d76", "layer4 \u00d73", "head"]
    rows = {r.name: r for r in s.rows}
    assert rows["stem"].params == 7 * 7 * 3 * 64 + 2 * 64  # conv1 without bias, bn1's weight and bias: 9,536
    assert rows["head"].params == 2048 * 1000 + 1000  # fc
    # layer1: three bottlenecks 64-64-256 on 256 channels (the first projects 64 -> 256), BN 2 per channel
    first = 64 * 64 + 64 * 64 * 9 + 64 * 256 + 64 * 256 + 2 * (64 + 64 + 256 + 256)
    other = 256 * 64 + 64 * 64 * 9 + 64 * 256 + 2 * (64 + 64 + 256)
    assert rows["layer1 \u00d73"].params == first + 2 * other == 215_808
    assert rows["layer4 \u00d73"].output_shape == (2048, 7, 7)
    for q in ("params", "macs", "flops", "activation_bytes"):  # the stages add up to the totals
        assert sum(getattr(r, q) for r in s.rows) == rep.totals[q]


def test_vgg16_stages_end_at_each_pool() -> None:
    s = summarise(analyze(str(SPECS / "vgg16.json")), 1)
    assert [r.name for r in s.rows] == ["stage1", "stage2", "stage3", "stage4", "stage5", "head"]
    assert s.rows[0].params == (64 * 3 * 9 + 64) + (64 * 64 * 9 + 64)  # conv1_1 + conv1_2 = 38,720
    assert s.rows[0].output_shape == (64, 112, 112)  # pool1 halves 224
    assert s.rows[-1].params == 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000  # fc6, fc7, fc8


@pytest.mark.parametrize("fmt", FORMATS)
def test_depth_in_every_format(fmt: str) -> None:
    r = cli("table", str(SPECS / "resnet50.json"), "--depth", "1", "--format", fmt)
    assert r.code == 0, r.err
    for name in ("stem", "layer1", "layer4", "head"):
        assert name in r.out
    assert "layer4.2.conv3" not in r.out  # no layer rows, only blocks
    if fmt == "json":
        doc = json.loads(r.out)
        assert doc["totals"]["params"] == 25_557_032 == sum(x["params"] for x in doc["layers"])


@pytest.mark.parametrize("depth", ["0", "-1", "x"])
def test_depth_zero_is_refused(depth: str) -> None:
    # in diagram's words ('x' was "invalid int value: 'x'", 0 "--depth must be 1 or more")
    r = cli("table", str(SPECS / "resnet50.json"), "--depth", depth)
    assert r.code == 2 and f"argument --depth: a whole number, 1 or more, got {depth!r}" in r.err and len(r.err.splitlines()) == 1
