"""The grouping rule shared by collapsed diagrams, per-stage plots and summary tables (archcalc.grouping)."""

from __future__ import annotations

import pytest
from conftest import SPECS, ZOO

from archcalc import analyze
from archcalc.grouping import MAX_EXPANDED, default_depth, group_rows, max_depth, resolve_depth
from archcalc.report import QUANTITIES


@pytest.fixture(scope="module")
def resnet152():  # type: ignore[no-untyped-def]
    return analyze(SPECS / "resnet152.json")


def test_resnet152_collapses_to_stem_stages_and_head(resnet152) -> None:  # type: ignore[no-untyped-def]
    # He et al. 2015, Table 1, 152-layer column: 3, 8, 36 and 3 bottlenecks in conv2_x..conv5_x
    groups = group_rows(resnet152, default_depth(resnet152))
    assert [g.label for g in groups] == [
        "conv1", "bn1", "relu", "maxpool", "layer1 \u00d73", "layer2 \u00d78", "layer3 \u00d736", "layer4 \u00d73", "avgpool", "flatten", "fc",
    ]  # fmt: skip
    layer1 = groups[4]
    # a bottleneck: 3 conv+bn, 3 relus, the add, and the shortcut: an identity (11) or a conv+bn projection (12)
    assert layer1.block and layer1.type == "block" and len(layer1.rows) == 12 + 2 * 11
    # layer1's first bottleneck (64 in, planes 64, projection to 256) and two more (256 in):
    # 1x1 convs, 3x3 conv, batchnorms 2 params a channel, no conv biases; torchvision's layer1 has 215,808
    first = 64 * 64 + 2 * 64 + 9 * 64 * 64 + 2 * 64 + 64 * 256 + 2 * 256 + 64 * 256 + 2 * 256
    other = 256 * 64 + 2 * 64 + 9 * 64 * 64 + 2 * 64 + 64 * 256 + 2 * 256
    assert layer1.totals["params"] == first + 2 * other == 215_808
    assert layer1.output_shape == (256, 56, 56) and layer1.output.name == "layer1.2.relu3"


def test_depth_two_opens_every_copy(resnet152) -> None:  # type: ignore[no-untyped-def]
    groups = group_rows(resnet152, 2)
    assert len(groups) == 4 + (3 + 8 + 36 + 3) + 3  # stem layers, one group a bottleneck, head layers
    assert [g.name for g in groups[4:7]] == ["layer1.0", "layer1.1", "layer1.2"] and all(g.repeat == 1 for g in groups)
    assert max_depth(resnet152) == 2 and resolve_depth(resnet152, 3) is None  # past the deepest block: every layer
    assert len(group_rows(resnet152, None)) == len(resnet152.rows)


@pytest.mark.parametrize("spec", ZOO, ids=lambda p: p.stem)
@pytest.mark.parametrize("depth", [1, 2, None])
def test_groups_add_up_to_the_totals(spec, depth) -> None:  # type: ignore[no-untyped-def]
    rep = analyze(spec)
    groups = group_rows(rep, depth)
    assert [r.name for g in groups for r in g.rows] == sorted((r.name for r in rep.rows), key=[r.name for r in rep.rows].index)
    for q in QUANTITIES:
        assert sum(g.totals[q] for g in groups if not g.training_only) == rep.totals[q], q


def test_training_only_heads_are_groups_with_their_own_cost() -> None:
    # GoogLeNet's auxiliary classifiers (Szegedy et al. 2014, Sec. 5) on 4a's 512x14x14 output:
    # avg pool 5x5/3 -> 4x4, conv 1x1 128 (+bias), fc 2048 -> 1024, fc 1024 -> 1000
    rep = analyze(SPECS / "googlenet.json")
    aux1 = next(g for g in group_rows(rep, 1) if g.name == "aux1")
    assert aux1.training_only and aux1.block
    assert aux1.totals["params"] == (512 * 128 + 128) + (128 * 4 * 4 * 1024 + 1024) + (1024 * 1000 + 1000)


def test_inception_modules_are_one_group_each() -> None:
    rep = analyze(SPECS / "googlenet.json")
    groups = group_rows(rep, 1)
    modules = [g for g in groups if g.name.startswith("inception_")]
    assert [g.name[len("inception_") :] for g in modules] == ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]  # Table 1
    # inception (3a) on 192 channels, Table 1: #1x1 64, #3x3 reduce 96, #3x3 128, #5x5 reduce 16, #5x5 32, pool proj 32
    weights = 192 * 64 + 192 * 96 + 9 * 96 * 128 + 192 * 16 + 25 * 16 * 32 + 192 * 32
    assert modules[0].totals["params"] == weights + (64 + 96 + 128 + 16 + 32 + 32)  # and one bias a filter
    assert modules[0].output_shape == (64 + 128 + 32 + 32, 28, 28)


def test_small_and_blockless_networks_are_not_collapsed() -> None:
    alexnet = analyze(SPECS / "alexnet.json")
    assert len(alexnet.rows) <= MAX_EXPANDED and default_depth(alexnet) is None
    resnet18 = analyze(SPECS / "resnet18.json")  # 74 layers: over the limit, so its stages collapse
    assert len(resnet18.rows) > MAX_EXPANDED and default_depth(resnet18) == 1


def test_nested_blocks_and_scopes() -> None:
    spec = {
        "name": "nest",
        "input": [4, 8, 8],
        "blocks": {
            "unit": {"params": {}, "layers": [{"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}]},
            "stage": {"params": {}, "layers": [{"name": "u", "type": "block", "block": "unit", "repeat": 2}, {"name": "r", "type": "relu"}]},
        },
        "layers": [{"name": "s", "type": "block", "block": "stage"}, {"name": "fc", "type": "flatten"}],
    }
    rep = analyze(spec)
    assert [(r.name, r.scope) for r in rep.rows] == [
        ("s.u.0.c", ("s", "s.u", "s.u.0")),
        ("s.u.1.c", ("s", "s.u", "s.u.1")),
        ("s.r", ("s",)),
        ("fc", ()),
    ]
    assert rep.repeats == {"s.u": 2}
    assert [g.label for g in group_rows(rep, 1)] == ["s", "fc"]
    assert [g.label for g in group_rows(rep, 2)] == ["s.u \u00d72", "s.r", "fc"]
    assert [g.label for g in group_rows(rep, 3)] == ["s.u.0", "s.u.1", "s.r", "fc"]
    with pytest.raises(ValueError, match="depth must be 1 or more"):
        group_rows(rep, 0)
