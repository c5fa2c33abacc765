"""Receptive field per axis, through branches (google-research/receptive_field rules).

Named builders, each documented as aligned or misaligned, as that library's tests do.
"""

from __future__ import annotations

import json

from conftest import SPECS, cli, conv, net

from archcalc import analyze


def test_alexnet_receptive_fields() -> None:
    # r' = r + (k-1)*j, j' = j*s: conv1 11 (j4), pool1 11+2*4=19 (j8), conv2 19+4*8=51,
    # pool2 51+2*8=67 (j16), conv3 67+2*16=99, conv4 131, conv5 163 (the acceptance figure)
    rep = analyze(SPECS / "alexnet.json")
    got = {
        n: (rep.row(n).receptive_field[0], rep.row(n).effective_stride[0]) for n in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5")
    }
    assert got == {"conv1": (11, 4), "pool1": (19, 8), "conv2": (51, 8), "pool2": (67, 16), "conv3": (99, 16), "conv4": (131, 16), "conv5": (163, 16)}


def inception_like() -> list[dict]:
    """Aligned: 1x1, 3x3/p1 and 5x5/p2 branches keep the same centres and stride 1."""
    return [
        conv(4, 1, name="b1"),
        conv(4, 3, name="b3", padding=1, inputs=["input"]),
        conv(4, 5, name="b5", padding=2, inputs=["input"]),
        {"name": "cat", "type": "concat", "inputs": ["b1", "b3", "b5"]},
        conv(4, 3, name="after", padding=1),
    ]


def test_branches_take_the_largest_rf() -> None:
    rep = net(inception_like(), (3, 32, 32))
    assert rep.row("cat").receptive_field == (5, 5)  # the 5x5 branch, not 1+3+5 summed in call order
    assert rep.row("after").receptive_field == (7, 7)
    assert rep.row("cat").note is None


def test_residual_block_rf() -> None:
    # shortcut RF 1, main path 3x3 -> 3x3: RF 5 at the add
    layers = [conv(4, 3, name="a", padding=1), conv(4, 3, name="b", padding=1), {"name": "add", "type": "add", "inputs": ["b", "input"]}]
    rep = net(layers, (4, 16, 16))
    assert rep.row("add").receptive_field == (5, 5)
    assert rep.row("add").note is None


def misaligned() -> list[dict]:
    """Misaligned: a 2x2/stride-2 path against a 1x1/stride-2 path: centres 0.5 vs 0 apart."""
    return [
        conv(4, 2, name="even", stride=2),
        conv(4, 1, name="odd", stride=2, inputs=["input"]),
        {"name": "add", "type": "add", "inputs": ["even", "odd"]},
    ]


def test_misaligned_paths_are_reported() -> None:
    rep = net(misaligned(), (3, 16, 16))
    row = rep.row("add")
    assert row.receptive_field == (2, 2)
    assert row.note is not None and "misaligned" in row.note


def test_offset_paths_see_the_union_of_their_fields() -> None:
    # path a: 3x3 pad 1, output i sees input i-1..i+1; path b: pad 2 before (zeropad), then 3x3: i-2..i.
    # Same stride, offset by one pixel at every output: the add's output i sees i-2..i+1, 4 pixels, not max(3, 3)
    layers = [
        conv(1, 3, name="a", padding=1),
        {"name": "zp", "type": "zeropad2d", "padding": [2, 0, 2, 0], "inputs": ["input"]},
        conv(1, 3, name="b"),
        {"name": "s", "type": "add", "inputs": ["a", "b"]},
    ]
    rep = net(layers, (1, 8, 8))
    assert rep.row("s").receptive_field == (4, 4)
    assert "union" in (rep.row("s").note or "")
    out = cli("explain", "--stack", "1x8x8", *(json.dumps(x) for x in layers)).out
    assert "[\u22121, 1] \u222a [\u22122, 0] = [\u22122, 1]: 1 \u2212 (\u22122) + 1 = 4" in out


def test_stride_mismatch_is_reported() -> None:
    layers = [
        conv(4, 3, name="s2", stride=2, padding=1),
        {"name": "s1", "type": "maxpool2d", "kernel_size": 2, "inputs": ["input"]},
        {"name": "cat", "type": "concat", "inputs": ["s2", "s1"]},
    ]
    rep = net(layers, (3, 16, 16))
    assert "stride" in (rep.row("cat").note or "")


def test_asymmetric_kernel_has_per_axis_rf() -> None:
    rep = net([conv(4, [1, 7], name="a", padding=[0, 3]), conv(4, [7, 1], name="b", padding=[3, 0])], (3, 17, 17))
    assert rep.row("a").receptive_field == (1, 7)
    assert rep.row("b").receptive_field == (7, 7)


def test_dilation_widens_rf() -> None:
    rep = net([conv(4, 3, name="a", dilation=2, padding=2), conv(4, 3, name="b", dilation=4, padding=4)], (3, 32, 32))
    # extent d(k-1)+1: 5, then 9 -> 5 + 8 = 13
    assert rep.row("b").receptive_field == (13, 13)
