"""The classic zoo, LeNet-5 to GoogLeNet: exact totals against hand arithmetic and published figures.

Every expected number is the arithmetic a student would write by hand (conv params
``C_out*C_in*k*k + C_out``, conv MACs ``H_out*W_out*C_out*(C_in*k*k)``, memory ``4 * elements``).
Published figures are cited where they appear. A rounded figure ("138M") is checked to round from the
exact value. Where a figure disagrees with the arithmetic, the exact value is asserted and the slip is
recorded in a comment. The arithmetic wins; no spec is bent to match a figure.

MACs conventions (archcalc.conventions): 'torch' counts conv/linear multiply-accumulates only;
'lecture' also counts pooling window reads (output elements x window size).
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import NamedTuple

import pytest

from archcalc import Report, analyze, parse_spec

SPECS = Path(__file__).parent.parent / "specs"
F32 = 4  # bytes per float32 activation


@cache
def report(name: str, convention: str = "lecture", include_training_only: bool = False) -> Report:
    return analyze(SPECS / f"{name}.json", convention=convention, include_training_only=include_training_only)


def totals(name: str, convention: str = "lecture", include_training_only: bool = False) -> dict[str, object]:
    return report(name, convention, include_training_only).totals


def shape(name: str, layer: str) -> tuple[object, ...]:
    return report(name).row(layer).output_shape


# ------------------------------------------------------------------------------------------------ LeNet-5
# LeCun et al. 1998, "Gradient-Based Learning Applied to Document Recognition", Sec. II-B.
LENET_C1 = 6 * 1 * 5 * 5 + 6  # 156, as printed in the paper
LENET_C3 = 16 * 6 * 5 * 5 + 16  # 2,416: FULL connection (the paper's sparse table gives 1,516)
LENET_C5 = 120 * 16 * 5 * 5 + 120  # 48,120, as printed
LENET_F6 = 84 * 120 + 84  # 10,164, as printed
LENET_OUT = 10 * 84 + 10  # 850: a linear layer in place of the paper's RBF output units


def test_lenet5_shapes() -> None:
    assert shape("lenet5", "c1") == (6, 28, 28)  # 32 - 5 + 1
    assert shape("lenet5", "s2") == (6, 14, 14)
    assert shape("lenet5", "c3") == (16, 10, 10)
    assert shape("lenet5", "s4") == (16, 5, 5)
    assert shape("lenet5", "c5") == (120, 1, 1)  # C5 is a 5x5 conv on a 5x5 map
    assert shape("lenet5", "f6") == (84,)
    assert shape("lenet5", "output") == (10,)


def test_lenet5_params() -> None:
    r = report("lenet5")
    assert [r.row(n).params for n in ("c1", "c3", "c5", "f6", "output")] == [LENET_C1, LENET_C3, LENET_C5, LENET_F6, LENET_OUT]
    assert r.totals["params"] == LENET_C1 + LENET_C3 + LENET_C5 + LENET_F6 + LENET_OUT == 61_706
    # The lecture's "around 60K parameters" (shared/seeds/000) is the paper's network, which sums to exactly 60,000:
    # C3's sparse table (Table I): 6 maps see 3 inputs, 9 see 4, 1 sees all 6; S2/S4: 1 coefficient + 1 bias per map.
    c3_sparse = 6 * (3 * 5 * 5 + 1) + 9 * (4 * 5 * 5 + 1) + 1 * (6 * 5 * 5 + 1)
    assert c3_sparse == 1_516
    assert LENET_C1 + 6 * 2 + c3_sparse + 16 * 2 + LENET_C5 + LENET_F6 == 60_000
    assert round(r.totals["params"] / 1000) == 62  # ours is the full-C3 modern variant: 61.7K, not 60K


def test_lenet5_macs_and_memory() -> None:
    conv_fc = 28 * 28 * 6 * (1 * 5 * 5) + 10 * 10 * 16 * (6 * 5 * 5) + 1 * 1 * 120 * (16 * 5 * 5) + 84 * 120 + 10 * 84
    pool_reads = 14 * 14 * 6 * (2 * 2) + 5 * 5 * 16 * (2 * 2)
    assert totals("lenet5", "torch")["macs"] == conv_fc == 416_520
    assert totals("lenet5")["macs"] == conv_fc + pool_reads == 422_824
    # tanh is not in place: each tanh output is a new tensor; flatten is a view of c5's output (torch.flatten)
    assert totals("lenet5")["activation_bytes"] == F32 * (
        6 * 28 * 28 * 2  # c1, tanh1
        + 6 * 14 * 14  # s2
        + 16 * 10 * 10 * 2  # c3, tanh3
        + 16 * 5 * 5  # s4
        + 120 * 2  # c5, tanh5 (flatten: a view, nothing new)
        + 84 * 2  # f6, tanh6
        + 10  # output
    ) == 58_408


# ------------------------------------------------------------------------------------------------ AlexNet 2012
# Krizhevsky et al. 2012, Sec. 3 and Fig. 2: two GPU towers, i.e. groups=2 on conv2, conv4, conv5.
ALEX_PARAMS = (
    96 * 3 * 11 * 11 + 96  # conv1
    + 256 * (96 // 2) * 5 * 5 + 256  # conv2, groups 2: each filter sees the 48 maps on its GPU
    + 384 * 256 * 3 * 3 + 384  # conv3 connects across GPUs
    + 384 * (384 // 2) * 3 * 3 + 384  # conv4, groups 2
    + 256 * (384 // 2) * 3 * 3 + 256  # conv5, groups 2
    + (256 * 6 * 6) * 4096 + 4096  # fc6
    + 4096 * 4096 + 4096  # fc7
    + 4096 * 1000 + 1000  # fc8
)
ALEX_CONV_FC_MACS = (
    55 * 55 * 96 * (3 * 11 * 11)
    + 27 * 27 * 256 * (48 * 5 * 5)
    + 13 * 13 * 384 * (256 * 3 * 3)
    + 13 * 13 * 384 * (192 * 3 * 3)
    + 13 * 13 * 256 * (192 * 3 * 3)
    + 9216 * 4096
    + 4096 * 4096
    + 4096 * 1000
)


def test_alexnet_2012_shapes() -> None:
    assert shape("alexnet_2012", "conv1") == (96, 55, 55)  # (227 - 11) / 4 + 1
    assert shape("alexnet_2012", "pool1") == (96, 27, 27)  # overlapping pool 3/2: (55 - 3) // 2 + 1
    assert shape("alexnet_2012", "conv2") == (256, 27, 27)
    assert shape("alexnet_2012", "pool2") == (256, 13, 13)
    assert shape("alexnet_2012", "conv5") == (256, 13, 13)
    assert shape("alexnet_2012", "pool5") == (256, 6, 6)
    assert shape("alexnet_2012", "fc8") == (1000,)
    # why 227: the paper's stated 224x224 input cannot give its own 55x55 conv1 maps
    at_224 = analyze(SPECS / "alexnet_2012.json", input_shape=[3, 224, 224])
    assert at_224.row("conv1").output_shape == (96, (224 - 11) // 4 + 1, (224 - 11) // 4 + 1) == (96, 54, 54)


def test_alexnet_2012_params() -> None:
    assert totals("alexnet_2012")["params"] == ALEX_PARAMS == 60_965_224
    # Paper abstract: "60 million parameters". Exact is 60.97M: to the nearest million that is 61M;
    # the paper's 60M is the figure truncated, not rounded.
    assert ALEX_PARAMS // 10**6 == 60
    assert round(ALEX_PARAMS / 10**6) == 61


def test_alexnet_2012_neurons() -> None:
    # Paper Sec. 3.5: neurons per layer "253,440-186,624-64,896-64,896-43,264-4096-4096-1000".
    r = report("alexnet_2012")
    numel = [math.prod(r.row(n).output_shape) for n in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")]
    assert numel == [96 * 55 * 55, 256 * 27 * 27, 384 * 13 * 13, 384 * 13 * 13, 256 * 13 * 13, 4096, 4096, 1000]
    assert numel[1:] == [186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]  # all as printed...
    # ...except conv1: 96*55*55 = 290,400, not 253,440 (slip in the paper; 253,440 = 48*55*96).
    assert numel[0] == 290_400
    assert 48 * 55 * 96 == 253_440
    # Abstract: "650,000 neurons", a loose round: exact 659,272 (the paper's own list sums to 622,312).
    assert sum(numel) == 659_272
    assert 253_440 + 186_624 + 64_896 + 64_896 + 43_264 + 4096 + 4096 + 1000 == 622_312


def test_alexnet_2012_macs_and_memory() -> None:
    pool_reads = 27 * 27 * 96 * (3 * 3) + 13 * 13 * 256 * (3 * 3) + 6 * 6 * 256 * (3 * 3)
    assert totals("alexnet_2012", "torch")["macs"] == ALEX_CONV_FC_MACS == 724_406_816
    assert totals("alexnet_2012")["macs"] == ALEX_CONV_FC_MACS + pool_reads == 725_508_992
    # LRN and pooling have no params and (LRN) no MACs under either convention
    assert report("alexnet_2012").row("norm1").params == 0
    assert report("alexnet_2012").row("norm1").macs == 0
    assert totals("alexnet_2012")["activation_bytes"] == F32 * (
        96 * 55 * 55 * 2  # conv1, norm1 (relu1 is in place)
        + 96 * 27 * 27  # pool1
        + 256 * 27 * 27 * 2  # conv2, norm2
        + 256 * 13 * 13  # pool2
        + 384 * 13 * 13 * 2  # conv3, conv4
        + 256 * 13 * 13  # conv5
        + 256 * 6 * 6  # pool5
        # flatten is a view and dropout returns its input at inference: no new tensor
        + 4096 * 2  # fc6, fc7
        + 1000  # fc8
    ) == 5_035_040


# ------------------------------------------------------------------------------------------------ ZFNet
# Zeiler & Fergus 2013, Fig. 3: sizes 110, 55, 26, 13, 13, 13, 6 (paddings chosen to reproduce them).
ZF_PARAMS = (
    96 * 3 * 7 * 7 + 96
    + 256 * 96 * 5 * 5 + 256  # dense (no GPU split), stride 2
    + 384 * 256 * 3 * 3 + 384
    + 384 * 384 * 3 * 3 + 384
    + 256 * 384 * 3 * 3 + 256
    + (256 * 6 * 6) * 4096 + 4096
    + 4096 * 4096 + 4096
    + 4096 * 1000 + 1000
)


def test_zfnet_shapes_match_fig3() -> None:
    assert shape("zfnet", "conv1") == (96, 110, 110)  # (224 + 2*1 - 7) // 2 + 1
    assert shape("zfnet", "pool1") == (96, 55, 55)  # ceil((110 - 3) / 2) + 1
    assert shape("zfnet", "conv2") == (256, 26, 26)  # (55 - 5) // 2 + 1
    assert shape("zfnet", "pool2") == (256, 13, 13)  # ceil((26 - 3) / 2) + 1
    assert shape("zfnet", "conv3") == (384, 13, 13)
    assert shape("zfnet", "conv5") == (256, 13, 13)
    assert shape("zfnet", "pool5") == (256, 6, 6)  # ceil((13 - 3) / 2) + 1
    assert shape("zfnet", "fc8") == (1000,)


def test_zfnet_totals() -> None:
    conv_fc = (
        110 * 110 * 96 * (3 * 7 * 7)
        + 26 * 26 * 256 * (96 * 5 * 5)
        + 13 * 13 * 384 * (256 * 3 * 3)
        + 13 * 13 * 384 * (384 * 3 * 3)
        + 13 * 13 * 256 * (384 * 3 * 3)
        + 9216 * 4096 + 4096 * 4096 + 4096 * 1000
    )
    pool_reads = 55 * 55 * 96 * (3 * 3) + 13 * 13 * 256 * (3 * 3) + 6 * 6 * 256 * (3 * 3)
    assert totals("zfnet")["params"] == ZF_PARAMS == 62_357_608
    assert totals("zfnet", "torch")["macs"] == conv_fc == 1_168_032_896
    assert totals("zfnet")["macs"] == conv_fc + pool_reads == 1_171_118_816
    assert totals("zfnet")["activation_bytes"] == F32 * (
        96 * 110 * 110  # conv1
        + 96 * 55 * 55 * 2  # pool1, norm1
        + 256 * 26 * 26  # conv2
        + 256 * 13 * 13 * 2  # pool2, norm2
        + 384 * 13 * 13 * 2 + 256 * 13 * 13  # conv3-5
        + 256 * 6 * 6  # pool5 (flatten is a view, dropout adds nothing)
        + 4096 * 2 + 1000  # fc6, fc7, fc8
    ) == 8_773_792
    # "ZFNet: a bigger AlexNet" (lecture, shared/seeds/003): more MACs than the original AlexNet, about as many params
    assert totals("zfnet", "torch")["macs"] > totals("alexnet_2012", "torch")["macs"]


# ------------------------------------------------------------------------------------------------ VGG
# Simonyan & Zisserman 2014, Table 1 (configurations) and Table 2 (params, millions);
# torchvision.models docs give the exact counts of vgg11/13/16/19 (IMAGENET1K_V1 num_params).
VGG_FC_PARAMS = (512 * 7 * 7) * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
VGG16_PARAMS = (
    3 * 64 * 3 * 3 + 64 + 64 * 64 * 3 * 3 + 64  # conv1_1, conv1_2
    + 64 * 128 * 3 * 3 + 128 + 128 * 128 * 3 * 3 + 128  # conv2_x
    + 128 * 256 * 3 * 3 + 256 + 2 * (256 * 256 * 3 * 3 + 256)  # conv3_x
    + 256 * 512 * 3 * 3 + 512 + 2 * (512 * 512 * 3 * 3 + 512)  # conv4_x
    + 3 * (512 * 512 * 3 * 3 + 512)  # conv5_x
    + VGG_FC_PARAMS
)
VGG16_CONV_FC_MACS = (
    224 * 224 * 64 * (3 * 3 * 3) + 224 * 224 * 64 * (64 * 3 * 3)
    + 112 * 112 * 128 * (64 * 3 * 3) + 112 * 112 * 128 * (128 * 3 * 3)
    + 56 * 56 * 256 * (128 * 3 * 3) + 2 * 56 * 56 * 256 * (256 * 3 * 3)
    + 28 * 28 * 512 * (256 * 3 * 3) + 2 * 28 * 28 * 512 * (512 * 3 * 3)
    + 3 * 14 * 14 * 512 * (512 * 3 * 3)
    + 25088 * 4096 + 4096 * 4096 + 4096 * 1000
)
# five 2x2 max pools, then torchvision's adaptive 7x7 avg pool (window 1x1 at 224): the same in every configuration
VGG_POOL_READS = (112 * 112 * 64 + 56 * 56 * 128 + 28 * 28 * 256 + 14 * 14 * 512 + 7 * 7 * 512) * (2 * 2) + 7 * 7 * 512 * 1
VGG16_ACTIVATION_BYTES = F32 * (
    64 * 224 * 224 * 2 + 64 * 112 * 112  # conv1_1, conv1_2, pool1 (ReLUs are in place)
    + 128 * 112 * 112 * 2 + 128 * 56 * 56
    + 256 * 56 * 56 * 3 + 256 * 28 * 28
    + 512 * 28 * 28 * 3 + 512 * 14 * 14
    + 512 * 14 * 14 * 3 + 512 * 7 * 7
    + 512 * 7 * 7  # avgpool (flatten: a view of it, nothing new)
    + 4096 + 4096 + 1000  # fc6, fc7, fc8 (dropout returns its input at inference: no new tensor)
)

# (differences from D in params, conv MACs, activation bytes): what each column of Table 1 adds or removes
CONV = {  # one 3x3 conv at each stage: (params, MACs, output bytes)
    1: (64 * 64 * 3 * 3 + 64, 224 * 224 * 64 * (64 * 3 * 3), F32 * 64 * 224 * 224),
    2: (128 * 128 * 3 * 3 + 128, 112 * 112 * 128 * (128 * 3 * 3), F32 * 128 * 112 * 112),
    3: (256 * 256 * 3 * 3 + 256, 56 * 56 * 256 * (256 * 3 * 3), F32 * 256 * 56 * 56),
    4: (512 * 512 * 3 * 3 + 512, 28 * 28 * 512 * (512 * 3 * 3), F32 * 512 * 28 * 28),
    5: (512 * 512 * 3 * 3 + 512, 14 * 14 * 512 * (512 * 3 * 3), F32 * 512 * 14 * 14),
}


def _sum_convs(stages: list[int], sign: int = 1) -> tuple[int, int, int]:
    return tuple(sign * sum(CONV[s][i] for s in stages) for i in range(3))  # type: ignore[return-value]


VGG = {
    # spec: (Table 1 column, Table 2 params in millions, torchvision exact params or None, difference from D)
    "vgg11": ("A", 133, 132_863_336, _sum_convs([1, 2, 3, 4, 5], -1)),  # A has one conv fewer in every stage
    "vgg11_lrn": ("A-LRN", 133, None, (-sum(CONV[s][0] for s in CONV), -sum(CONV[s][1] for s in CONV),
                                       -sum(CONV[s][2] for s in CONV) + F32 * 64 * 224 * 224)),  # + the LRN output
    "vgg13": ("B", 133, 133_047_848, _sum_convs([3, 4, 5], -1)),  # B: two convs in every stage
    "vgg16_c": ("C", 134, None, (  # C: the third conv of stages 3-5 is 1x1, i.e. k*k = 1 instead of 9
        -(256 * 256 * (9 - 1) + 2 * 512 * 512 * (9 - 1)),
        -(56 * 56 * 256 * 256 * (9 - 1) + 28 * 28 * 512 * 512 * (9 - 1) + 14 * 14 * 512 * 512 * (9 - 1)),
        0,
    )),
    "vgg16": ("D", 138, 138_357_544, (0, 0, 0)),
    "vgg19": ("E", 144, 143_667_240, _sum_convs([3, 4, 5])),  # E: a fourth conv in stages 3-5
}


def test_vgg16_exact() -> None:
    assert totals("vgg16")["params"] == VGG16_PARAMS == 138_357_544
    assert totals("vgg16", "torch")["macs"] == VGG16_CONV_FC_MACS == 15_470_264_320
    assert totals("vgg16")["macs"] == VGG16_CONV_FC_MACS + VGG_POOL_READS == 15_476_410_880
    assert totals("vgg16")["activation_bytes"] == VGG16_ACTIVATION_BYTES == 60_448_672
    r = report("vgg16")
    assert r.row("pool5").output_shape == (512, 7, 7)
    assert r.row("avgpool").output_shape == (512, 7, 7)  # adaptive 7x7 pool is the identity at 224
    assert r.row("avgpool").params == 0
    assert r.row("flatten").output_shape == (25088,)
    # Lecture (shared/seeds/003, 'GoogLeNet: Global Average Pooling'): fc6 "params (K) 102760". That is 25088*4096
    # without the bias; with the 4,096 biases fc6 has 102,764,544 (fc7 "16777" and fc8 "4096" also leave out the bias).
    assert r.row("fc6").params == 25088 * 4096 + 4096 == 102_764_544
    assert 25088 * 4096 // 1000 == 102_760


@pytest.mark.parametrize("name", list(VGG))
def test_vgg_configurations(name: str) -> None:
    letter, paper_millions, torchvision_exact, (d_params, d_macs, d_bytes) = VGG[name]
    params = VGG16_PARAMS + d_params
    assert totals(name)["params"] == params, f"configuration {letter}"
    if torchvision_exact is not None:
        assert params == torchvision_exact  # torchvision.models docs
    assert round(params / 10**6) == paper_millions  # paper Table 2 (rounded to millions)
    assert totals(name, "torch")["macs"] == VGG16_CONV_FC_MACS + d_macs
    assert totals(name)["macs"] == VGG16_CONV_FC_MACS + d_macs + VGG_POOL_READS
    assert totals(name)["activation_bytes"] == VGG16_ACTIVATION_BYTES + d_bytes
    r = report(name)
    pools = [r.row(f"pool{i}").output_shape for i in range(1, 6)]
    assert pools == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14), (512, 7, 7)]
    assert r.row("fc8").output_shape == (1000,)


def test_vgg_exact_values() -> None:
    # the exact totals, for the record (same numbers as the differences above)
    assert [totals(n)["params"] for n in VGG] == [132_863_336, 132_863_336, 133_047_848, 133_638_952, 138_357_544, 143_667_240]
    assert [totals(n, "torch")["macs"] for n in VGG] == [
        7_609_090_048, 7_609_090_048, 11_308_466_176, 11_770_888_192, 15_470_264_320, 19_632_062_464]
    assert [totals(n)["macs"] for n in VGG] == [
        7_615_236_608, 7_615_236_608, 11_314_612_736, 11_777_034_752, 15_476_410_880, 19_638_209_024]
    assert report("vgg16_c").row("conv3_3").output_shape == (256, 56, 56)  # 1x1 conv, padding 0
    assert report("vgg11_lrn").row("norm1_1").output_shape == (64, 224, 224)


def test_vgg16_lecture_figures() -> None:
    """Lecture slide 'AlexNet vs VGG-16' (shared/seeds/003): VGG-16 "48.6 MB", "138M", "13.6 GFLOP"."""
    r = report("vgg16")
    assert round(totals("vgg16")["params"] / 10**6) == 138  # agrees
    # The lecture counts multiply-adds as 'flop'. Exact: 15.48G (lecture convention), 15.47G (torch): "13.6" is a slip.
    assert round(totals("vgg16")["macs"] / 10**9, 1) == 15.5
    assert round(totals("vgg16", "torch")["macs"] / 10**9, 1) == 15.5
    # The slide's figures all fit a VGG-16 WITHOUT conv3_3 (stage 3 with two convs, not three):
    conv3_3_params, conv3_3_macs, conv3_3_bytes = CONV[3]
    assert round((totals("vgg16")["macs"] - conv3_3_macs) / 10**9, 1) == 13.6
    assert round((totals("vgg16")["params"] - conv3_3_params) / 10**6) == 138
    # and "48.6 MB" is the conv outputs alone (no pool/fc outputs), again without conv3_3, in MiB:
    conv_bytes = sum(row.activation_bytes for row in r.rows if row.type == "conv2d")
    assert round((conv_bytes - conv3_3_bytes) / 1024**2, 1) == 48.6
    # Exact activation memory of the whole network as specified (every output that is a new tensor): 57.6 MiB.
    assert round(totals("vgg16")["activation_bytes"] / 1024**2, 1) == 57.6


def test_vgg16_stem_lecture_comparison() -> None:
    """Lecture, GoogLeNet stem slide (seeds/003): 'Compare VGG-16 [224 to 28]: Memory 42.9 MB, Params 1.1M, MFLOP 7485'."""
    r = report("vgg16")
    stem = [row for row in r.rows[: [row.name for row in r.rows].index("pool3") + 1]]
    # exact, conv1_1 .. pool3 (the layers that take VGG-16 from 224 to 28):
    params = sum(row.params for row in stem)
    assert params == VGG16_PARAMS - VGG_FC_PARAMS - (256 * 512 * 9 + 512 + 2 * (512 * 512 * 9 + 512)) - 3 * (512 * 512 * 9 + 512)
    assert params == 1_735_488  # 1.7M, not 1.1M
    # The lecture's three figures are exactly conv1_1 .. conv3_2 (it stops before conv3_3 and pool3), convs only:
    upto = [row for row in stem if row.type == "conv2d" and row.name != "conv3_3"]
    assert sum(row.params for row in upto) == 1_145_408  # "1.1M"
    assert sum(row.macs for row in upto) == (
        224 * 224 * 64 * 27 + 224 * 224 * 64 * 576 + 112 * 112 * 128 * 576 + 112 * 112 * 128 * 1152
        + 56 * 56 * 256 * 1152 + 56 * 56 * 256 * 2304
    ) == 7_485_456_384  # "MFLOP 7485"
    assert round(sum(row.activation_bytes for row in upto) / 1024**2, 1) == 42.9  # "42.9 MB"


# ------------------------------------------------------------------------------------------------ GoogLeNet
class Module(NamedTuple):
    """One row of Table 1: the module's H=W and C_in, then its six filter-count columns."""

    hw: int
    c: int  # input channels
    n1: int  # #1x1
    r3: int  # #3x3 reduce
    n3: int  # #3x3
    r5: int  # #5x5 reduce
    n5: int  # #5x5
    pp: int  # pool proj


# Szegedy et al. 2014, Table 1
INCEPTION = {
    "inception_3a": Module(28, 192, 64, 96, 128, 16, 32, 32),
    "inception_3b": Module(28, 256, 128, 128, 192, 32, 96, 64),
    "inception_4a": Module(14, 480, 192, 96, 208, 16, 48, 64),
    "inception_4b": Module(14, 512, 160, 112, 224, 24, 64, 64),
    "inception_4c": Module(14, 512, 128, 128, 256, 24, 64, 64),
    "inception_4d": Module(14, 512, 112, 144, 288, 32, 64, 64),
    "inception_4e": Module(14, 528, 256, 160, 320, 32, 128, 128),
    "inception_5a": Module(7, 832, 256, 160, 320, 32, 128, 128),
    "inception_5b": Module(7, 832, 384, 192, 384, 48, 128, 128),
}


def inception_params(m: Module) -> int:
    """Weights + biases of one module: four branches of convs (true 5x5 in the third)."""
    c, n1, r3, n3, r5, n5, pp = m.c, m.n1, m.r3, m.n3, m.r5, m.n5, m.pp
    return (c * n1 + n1) + (c * r3 + r3) + (r3 * n3 * 3 * 3 + n3) + (c * r5 + r5) + (r5 * n5 * 5 * 5 + n5) + (c * pp + pp)


def inception_macs(m: Module) -> int:
    """Conv MACs of one module: every conv keeps the hw x hw size."""
    c, n1, r3, n3, r5, n5, pp = m.c, m.n1, m.r3, m.n3, m.r5, m.n5, m.pp
    return m.hw * m.hw * (c * n1 + c * r3 + r3 * n3 * 3 * 3 + c * r5 + r5 * n5 * 5 * 5 + c * pp)


def inception_bytes(m: Module) -> int:
    """Outputs of its six convs, the 3x3 max pool (c maps) and the concat (n1 + n3 + n5 + pp maps); ReLUs in place."""
    return F32 * m.hw * m.hw * (m.n1 + m.r3 + m.n3 + m.r5 + m.n5 + m.c + m.pp + (m.n1 + m.n3 + m.n5 + m.pp))


GOOG_STEM_PARAMS = (64 * 3 * 7 * 7 + 64) + (64 * 64 * 1 * 1 + 64) + (192 * 64 * 3 * 3 + 192)
GOOG_STEM_MACS = 112 * 112 * 64 * (3 * 7 * 7) + 56 * 56 * 64 * (64 * 1 * 1) + 56 * 56 * 192 * (64 * 3 * 3)
GOOG_PARAMS = GOOG_STEM_PARAMS + sum(inception_params(m) for m in INCEPTION.values()) + (1024 * 1000 + 1000)
GOOG_MACS = GOOG_STEM_MACS + sum(inception_macs(m) for m in INCEPTION.values()) + 1024 * 1000
GOOG_POOL_READS = (
    56 * 56 * 64 * 9 + 28 * 28 * 192 * 9  # pool1, pool2
    + sum(m.hw * m.hw * m.c * 3 * 3 for m in INCEPTION.values())  # the 3x3/1 pool branch of every module
    + 14 * 14 * 480 * 9 + 7 * 7 * 832 * 9  # pool3, pool4
    + 1 * 1 * 1024 * (7 * 7)  # avgpool 7x7
)


def aux_params(c: int) -> int:
    """Sec. 5: avg pool 5x5/3 (14 -> 4), conv 1x1 128, fc 128*4*4 -> 1024, fc 1024 -> 1000."""
    return (c * 128 + 128) + (128 * 4 * 4 * 1024 + 1024) + (1024 * 1000 + 1000)


def aux_macs(c: int) -> int:
    return 4 * 4 * 128 * c + 2048 * 1024 + 1024 * 1000


def test_googlenet_shapes_match_table1() -> None:
    assert shape("googlenet", "conv1") == (64, 112, 112)
    assert shape("googlenet", "pool1") == (64, 56, 56)  # ceil((112 - 3) / 2) + 1; floor mode would give 55
    assert shape("googlenet", "conv2") == (192, 56, 56)
    assert shape("googlenet", "pool2") == (192, 28, 28)
    outputs = {name: (m.n1 + m.n3 + m.n5 + m.pp, m.hw, m.hw) for name, m in INCEPTION.items()}
    assert [c for c, _, _ in outputs.values()] == [256, 480, 512, 512, 512, 528, 832, 832, 1024]  # Table 1 "output size"
    for name, out in outputs.items():
        assert shape("googlenet", f"{name}.output") == out
    assert shape("googlenet", "pool3") == (480, 14, 14)
    assert shape("googlenet", "pool4") == (832, 7, 7)
    assert shape("googlenet", "avgpool") == (1024, 1, 1)
    assert shape("googlenet", "fc") == (1000,)
    # each module's C_in is the previous output: the table above is self-consistent
    assert [m.c for m in INCEPTION.values()] == [192, 256, 480, 512, 512, 512, 528, 832, 832]


def test_googlenet_totals() -> None:
    assert totals("googlenet")["params"] == GOOG_PARAMS == 6_998_552
    assert totals("googlenet", "torch")["macs"] == GOOG_MACS == 1_582_671_872
    assert totals("googlenet")["macs"] == GOOG_MACS + GOOG_POOL_READS == 1_595_479_296
    # conv1; pool1, norm1, conv2_reduce; conv2, norm2; pool2
    stem_bytes = F32 * (64 * 112 * 112 + 64 * 56 * 56 * 3 + 192 * 56 * 56 * 2 + 192 * 28 * 28)
    head_bytes = F32 * (480 * 14 * 14 + 832 * 7 * 7 + 1024 + 1000)  # pool3, pool4, avgpool, fc (flatten a view, dropout: none)
    assert totals("googlenet")["activation_bytes"] == stem_bytes + sum(inception_bytes(m) for m in INCEPTION.values()) + head_bytes
    assert totals("googlenet")["activation_bytes"] == 26_736_224


def test_googlenet_vs_paper_table1() -> None:
    # Paper Table 1 totals: "6.8M" params, "1.5G" ops (ops = conv/linear multiply-adds, our 'torch' MACs).
    params, macs = totals("googlenet")["params"], totals("googlenet", "torch")["macs"]
    # Slip: exact params are 7.0M, not 6.8M. Biases do not explain it (weights alone: 6,990,272 = 7.0M);
    # counting K = 1024 does (6,990,272 / 1024 = 6,826K), as Table 1's own rows seem to (3a: 163,328 / 1024 = 159.5 ~ "159K").
    biases = sum(row.weights["bias"][0] for row in report("googlenet").counted_rows if "bias" in row.weights)
    assert round(params / 10**6, 1) == 7.0
    assert round((params - biases) / 10**6, 1) == 7.0
    assert round((params - biases) / 1024 / 1000, 1) == 6.8
    # Slip: exact ops are 1.58G. Table 1 as printed gives conv1 "2.7K" params and "34M" ops, while a 7x7/2 conv from
    # 3 to 64 channels at 112x112 has 9,408 weights and 118,013,952 MACs; with the printed 34M the column sums to 1.5G.
    assert round(macs / 10**9, 1) == 1.6
    conv1_macs = 112 * 112 * 64 * (3 * 7 * 7)
    assert report("googlenet", "torch").row("conv1").macs == conv1_macs == 118_013_952
    assert round((macs - conv1_macs + 34 * 10**6) / 10**9, 1) == 1.5


def test_googlenet_stem_vs_lecture() -> None:
    """Lecture 'GoogLeNet: Aggressive Stem' (shared/seeds/003): 224 -> 28, "Memory: 7.5 MB, Params: 124K, MFLOP: 418"."""
    r = report("googlenet")
    names = [row.name for row in r.rows]
    stem = r.rows[: names.index("pool2") + 1]
    assert sum(row.params for row in stem) == GOOG_STEM_PARAMS == 124_416
    assert round(GOOG_STEM_PARAMS / 1000) == 124  # agrees
    stem_macs = GOOG_STEM_MACS + 56 * 56 * 64 * (3 * 3) + 28 * 28 * 192 * (3 * 3)  # + pool1, pool2 window reads
    assert sum(row.macs for row in stem) == stem_macs == 480_836_608
    # Slip: the lecture's own rows (flop (M): 118 + 2 + 13 + 347 + 1) add up to 481; "418" has two digits swapped.
    assert round(stem_macs / 10**6) == 118 + 2 + 13 + 347 + 1 == 481
    # Memory: the lecture's five rows are 3136 + 784 + 784 + 2352 + 588 KB = 7.46 MiB, "7.5 MB" (agrees)...
    lecture_rows = F32 * (64 * 112 * 112 + 64 * 56 * 56 + 64 * 56 * 56 + 192 * 56 * 56 + 192 * 28 * 28)
    assert lecture_rows // 1024 == 3136 + 784 + 784 + 2352 + 588
    assert round(lecture_rows / 1024**2, 1) == 7.5
    # ...but the paper's network (Fig. 3) also has LRN after pool1 and after conv2, which the lecture's table leaves out:
    # no params and no MACs, but their outputs are new tensors.
    assert [row.name for row in stem if row.type == "localresponsenorm"] == ["norm1", "norm2"]
    assert sum(row.activation_bytes for row in stem) == lecture_rows + F32 * (64 * 56 * 56 + 192 * 56 * 56)


def test_googlenet_lecture_pool_padding_is_equivalent() -> None:
    # The lecture writes the stride-2 max pools as 3x3/2 padding 1 (floor mode); the spec uses padding 0 with
    # ceil_mode (torchvision/Caffe). Both give Table 1's 56, 28, 14, 7, with the same window reads: same totals.
    data = json.loads((SPECS / "googlenet.json").read_text(encoding="utf-8"))
    for layer in data["layers"]:
        if layer.get("type") == "maxpool2d":
            layer["padding"], layer["ceil_mode"] = 1, False
    padded = analyze(parse_spec(data))
    assert padded.totals == totals("googlenet")
    assert [row.output_shape for row in padded.rows] == [row.output_shape for row in report("googlenet").rows]


def test_googlenet_aux_heads_are_training_only() -> None:
    r = report("googlenet")
    aux = [row for row in r.rows if row.name.startswith(("aux1.", "aux2."))]
    assert aux and all(row.training_only for row in aux)
    assert not any(row.training_only for row in r.rows if row not in aux)
    assert r.row("aux1.avgpool").output_shape == (512, 4, 4)  # (14 - 5) // 3 + 1
    assert r.row("aux2.avgpool").output_shape == (528, 4, 4)
    assert r.row("aux1.flatten").output_shape == (128 * 4 * 4,)
    assert r.row("aux2.fc2").output_shape == (1000,)
    # the main path goes on from 4a and 4d, not from the aux heads
    assert r.row("inception_4b.1x1").inputs == ["inception_4a.output"]
    assert r.row("inception_4e.pool").inputs == ["inception_4d.output"]
    # excluded by default ...
    assert totals("googlenet")["params"] == GOOG_PARAMS
    # ... included on request
    with_aux = totals("googlenet", include_training_only=True)
    assert with_aux["params"] == GOOG_PARAMS + aux_params(512) + aux_params(528) == 13_378_280
    assert totals("googlenet", "torch", True)["macs"] == GOOG_MACS + aux_macs(512) + aux_macs(528) == 1_591_044_096
    aux_pool_reads = 4 * 4 * 512 * (5 * 5) + 4 * 4 * 528 * (5 * 5)
    assert with_aux["macs"] == GOOG_MACS + GOOG_POOL_READS + aux_macs(512) + aux_macs(528) + aux_pool_reads
    aux_bytes = F32 * (4 * 4 * 512 + 4 * 4 * 528 + 2 * (4 * 4 * 128 + 1024 + 1000))  # avgpools; conv, fc1, fc2 of each (flatten a view)
    assert with_aux["activation_bytes"] == totals("googlenet")["activation_bytes"] + aux_bytes
