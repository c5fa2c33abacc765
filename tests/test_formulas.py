"""Per-layer formulas, as tables of cases whose expected values are the arithmetic a student writes.

Shape rules are torch's (torch.nn.Conv2d / MaxPool2d docs); the counts follow the lecture
convention unless a case says otherwise.
"""

from __future__ import annotations

import pytest
from conftest import conv, net

CONV_CASES = [
    # (input C,H,W, conv kwargs, output shape, params, MACs)
    # AlexNet conv1 (lecture notes, seeds/001 and 003): (227 - 11 + 2*2)/4 + 1 = 56
    ((3, 227, 227), dict(n=64, k=11, stride=4, padding=2), (64, 56, 56), 64 * 3 * 11 * 11 + 64, (64 * 56 * 56) * (3 * 11 * 11)),
    # no padding, stride 1: 32 - 5 + 1 = 28 (LeNet C1)
    ((1, 32, 32), dict(n=6, k=5), (6, 28, 28), 6 * 1 * 5 * 5 + 6, 6 * 28 * 28 * 25),
    # floor: (10 + 0 - 3)//2 + 1 = 4
    ((2, 10, 10), dict(n=4, k=3, stride=2, bias=False), (4, 4, 4), 4 * 2 * 3 * 3, 4 * 4 * 4 * 2 * 9),
    # dilation 2: extent 2*(3-1)+1 = 5 -> 16 - 5 + 1 = 12
    ((3, 16, 16), dict(n=8, k=3, dilation=2), (8, 12, 12), 8 * 3 * 9 + 8, 8 * 12 * 12 * 27),
    # groups 4: weight (8, 16/4, 3, 3)
    ((16, 8, 8), dict(n=8, k=3, padding=1, groups=4), (8, 8, 8), 8 * 4 * 9 + 8, 8 * 8 * 8 * 4 * 9),
    # depthwise: groups = C
    ((32, 8, 8), dict(n=32, k=3, padding=1, groups=32, bias=False), (32, 8, 8), 32 * 1 * 9, 32 * 8 * 8 * 9),
    # asymmetric kernel, stride and padding; non-square input: H (20 + 2*0 - 1)//1 + 1, W (30 + 2*2 - 5)//2 + 1
    ((3, 20, 30), dict(n=5, k=[1, 5], stride=[1, 2], padding=[0, 2]), (5, 20, 15), 5 * 3 * 1 * 5 + 5, 5 * 20 * 15 * 15),
    # 'same' with an even kernel: total pad 3 split 1 before, 2 after -> size kept
    ((3, 9, 9), dict(n=2, k=4, padding="same"), (2, 9, 9), 2 * 3 * 16 + 2, 2 * 9 * 9 * 48),
    # 'valid' = no padding
    ((3, 9, 9), dict(n=2, k=3, padding="valid", bias=False), (2, 7, 7), 2 * 3 * 9, 2 * 7 * 7 * 27),
    # 1x1 conv mixes channels only (lecture: "a per-pixel fully connected layer")
    ((64, 56, 56), dict(n=64, k=1, bias=False), (64, 56, 56), 64 * 64, 64 * 56 * 56 * 64),
]


@pytest.mark.parametrize(("shape", "kw", "out", "params", "macs"), CONV_CASES)
def test_conv(shape, kw, out, params, macs) -> None:
    n, k = kw.pop("n"), kw.pop("k")
    row = net([conv(n, k, name="c", **kw)], shape).row("c")
    assert row.output_shape == out
    assert row.params == params
    assert row.macs == macs
    assert row.flops == 2 * macs


POOL_CASES = [
    # (input, layer, output shape, lecture MACs = output elements x window)
    # AlexNet pool1: floor((56 - 3)/2) + 1 = 27; 64*27*27*3*3 = 0.4M (lecture notes)
    ((64, 56, 56), {"type": "maxpool2d", "kernel_size": 3, "stride": 2}, (64, 27, 27), 64 * 27 * 27 * 9),
    # stride defaults to the kernel: 32/2 = 16
    ((6, 32, 32), {"type": "avgpool2d", "kernel_size": 2}, (6, 16, 16), 6 * 16 * 16 * 4),
    # GoogLeNet stem pool: (112 + 2*1 - 3)//2 + 1 = 56
    ((64, 112, 112), {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1}, (64, 56, 56), 64 * 56 * 56 * 9),
    # ceil_mode: ceil((112 - 3)/2) + 1 = 56 (floor would give 55)
    ((64, 112, 112), {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "ceil_mode": True}, (64, 56, 56), 64 * 56 * 56 * 9),
    # ceil_mode last-window rule: ceil((5 + 2*1 - 2)/2) + 1 = 4, but window 4 would start at
    # (4-1)*2 = 6 >= 5 + 1 (inside the right padding), so torch drops it: 3
    ((1, 5, 5), {"type": "maxpool2d", "kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True}, (1, 3, 3), 1 * 3 * 3 * 4),
    # dilated max pool: extent 2*(2-1)+1 = 3 -> (8 - 3)//1 + 1 = 6
    ((1, 8, 8), {"type": "maxpool2d", "kernel_size": 2, "stride": 1, "dilation": 2}, (1, 6, 6), 1 * 6 * 6 * 4),
    # global average pooling: windows cover the input once -> C*H*W reads
    ((2048, 7, 7), {"type": "adaptiveavgpool2d", "output_size": 1}, (2048, 1, 1), 2048 * 7 * 7),
    # adaptive 7 -> 3: torch windows [0,3) [2,5) [4,7): lengths 3+3+3 = 9 per axis
    ((1, 7, 7), {"type": "adaptiveavgpool2d", "output_size": 3}, (1, 3, 3), 9 * 9),
    # adaptive 224/32 = 7 exactly: identity-sized windows of 32 -> reads every pixel once
    ((1, 224, 224), {"type": "adaptivemaxpool2d", "output_size": [7, 7]}, (1, 7, 7), 224 * 224),
]


@pytest.mark.parametrize(("shape", "layer", "out", "macs"), POOL_CASES)
def test_pool(shape, layer, out, macs) -> None:
    rep = net([{"name": "p", **layer}], shape)
    row = rep.row("p")
    assert row.output_shape == out
    assert row.params == 0
    assert row.macs == macs
    # the torch convention counts no pooling at all (FlopCounterMode has no pooling rule)
    assert net([{"name": "p", **layer}], shape, convention="torch").row("p").macs == 0


def test_linear_and_flatten() -> None:
    # AlexNet fc6 (lecture): 9216*4096 + 4096 params, 9216*4096 MACs
    rep = net([{"name": "f", "type": "flatten"}, {"name": "fc6", "type": "linear", "out_features": 4096}], (256, 6, 6))
    assert rep.row("f").output_shape == (256 * 6 * 6,)
    assert rep.row("fc6").params == 9216 * 4096 + 4096
    assert rep.row("fc6").macs == 9216 * 4096
    # linear acts on the last axis of any input, as torch does
    rep = net([{"name": "fc", "type": "linear", "out_features": 10, "bias": False}], (4, 7, 20))
    assert rep.row("fc").output_shape == (4, 7, 10)
    assert rep.row("fc").macs == 4 * 7 * 10 * 20
    # partial flatten: start_dim 2 keeps channels
    assert net([{"name": "f", "type": "flatten", "start_dim": 2}], (4, 5, 6)).row("f").output_shape == (4, 30)


def test_batchnorm_params_and_buffers() -> None:
    # affine gamma and beta are params (2C); running mean/var (2C) + num_batches_tracked (1) are buffers
    row = net([{"name": "bn", "type": "batchnorm2d"}], (64, 8, 8)).row("bn")
    assert row.params == 2 * 64
    assert row.buffers == 2 * 64 + 1
    assert row.ops == {"norm": 64 * 8 * 8, "norm_affine": 64 * 8 * 8, "affine_params": 2 * 64}
    row = net([{"name": "bn", "type": "batchnorm2d", "affine": False, "track_running_stats": False}], (64, 8, 8)).row("bn")
    assert (row.params, row.buffers) == (0, 0)


def test_pointwise_layers_count_their_ops_but_not_as_macs() -> None:
    rep = net([{"name": "r", "type": "relu"}, {"name": "t", "type": "tanh"}, {"name": "d", "type": "dropout"}], (3, 4, 4))
    assert rep.row("r").ops == {"act": 3 * 4 * 4}
    assert rep.row("r").macs == 0  # stated by the convention, not a silent zero: the op count is on the row
    assert rep.row("d").ops == {}  # dropout is the identity at inference
    assert rep.row("r").activation_bytes == 3 * 4 * 4 * 4


def test_inplace_relu_allocates_nothing() -> None:
    rep = net([{"name": "r", "type": "relu", "inplace": True}], (3, 4, 4))
    assert rep.row("r").activation_bytes == 0
    assert "in place" in (rep.row("r").note or "")


def test_merges() -> None:
    layers = [
        conv(8, 3, name="a", padding=1),
        conv(8, 1, name="b", inputs=["input"]),
        {"name": "b2", "type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1, "inputs": ["input"]},
        {"name": "cat", "type": "concat", "inputs": ["a", "b", "b2"]},
        {"name": "sum", "type": "add", "inputs": ["a", "b"]},
    ]
    rep = net(layers, (3, 16, 16))
    assert rep.row("cat").output_shape == (8 + 8 + 3, 16, 16)
    assert rep.row("sum").output_shape == (8, 16, 16)
    assert rep.row("sum").ops == {"add": 8 * 16 * 16}  # one add per element for two inputs


def test_option_a_shortcut() -> None:
    # He et al. 2015 option A: x[:, :, ::2, ::2] then zero-pad 16 -> 32 channels, 8 zeros each side
    rep = net([{"name": "s", "type": "subsample", "stride": 2}, {"name": "p", "type": "channelpad", "out_channels": 32}], (16, 32, 32))
    assert rep.row("s").output_shape == (16, 16, 16)
    assert rep.row("p").output_shape == (32, 16, 16)
    assert rep.totals["params"] == 0 and rep.totals["macs"] == 0
    # odd sizes: ::2 keeps ceil(33/2) = 17
    assert net([{"name": "s", "type": "subsample"}], (1, 33, 33)).row("s").output_shape == (1, 17, 17)


@pytest.mark.parametrize(("dtype", "nbytes"), [("float32", 4), ("float16", 2), ("bfloat16", 2), ("int8", 1), ("float64", 8)])
def test_dtype_and_batch_scale_memory(dtype: str, nbytes: int) -> None:
    rep = net([conv(64, 11, name="c", stride=4, padding=2)], (3, 227, 227), dtype=dtype, batch=8)
    assert rep.row("c").activation_bytes == 8 * 64 * 56 * 56 * nbytes
    assert rep.row("c").macs == 8 * (64 * 56 * 56) * (3 * 11 * 11)
    assert rep.row("c").params == 64 * 3 * 11 * 11 + 64  # params do not scale with the batch


def test_conv1d_and_conv3d_share_the_formula() -> None:
    r1 = net([{"name": "c", "type": "conv1d", "out_channels": 8, "kernel_size": 3, "stride": 2}], (4, 101))
    assert r1.row("c").output_shape == (8, (101 - 3) // 2 + 1)
    assert r1.row("c").params == 8 * 4 * 3 + 8
    r3 = net([{"name": "c", "type": "conv3d", "out_channels": 64, "kernel_size": 3, "padding": 1}], (3, 16, 112, 112))
    assert r3.row("c").output_shape == (64, 16, 112, 112)
    assert r3.row("c").macs == 64 * 16 * 112 * 112 * (3 * 27)
    assert r3.row("c").receptive_field == (3, 3, 3)
