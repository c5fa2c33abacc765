"""The network's receptive field (``check total.rf``, ``compare``): the last map of more than one
position, or a learned window after it that reads that map down to one position (review s7, #7
and #8).  Textbook figures: LeNet-5's C5 units see the whole 32x32 input (LeCun et al. 1998, C5
is a 5x5 conv over S4's 5x5 maps); ConvNeXt-T's last stage sees 1688 pixels (stem 4 + 3*6*4 + 4 +
3*6*8 + 8 + 9*6*16 + 16 + 3*6*32); ResNet-18's layer4 435."""

from __future__ import annotations

from conftest import SPECS, cli

from archcalc import analyze


def test_lenet5_field_is_c5s_the_whole_image() -> None:
    rep = analyze(SPECS / "lenet5.json")
    assert rep.field_row().name == "c5"
    assert rep.field_row().receptive_field == (16 + (5 - 1) * 4,) * 2 == (32, 32)  # S4's 16 + (k - 1) x its stride 4
    out = cli("check", str(SPECS / "lenet5.json"), "total.rf=32")
    assert out.code == 0 and "c5" in out.out, out.out


def test_a_dcgan_discriminators_last_conv_is_its_field() -> None:
    # four 4x4 stride-2 convs on 64: fields 4, 10, 22, 46 (jumps 2, 4, 8, 16); a 4x4 conv on the 4x4 map: 46 + 3*16 = 94
    out = cli("check", "--stack", "3x64x64", "conv 64 4 s2 p1", "conv 128 4 s2 p1", "conv 256 4 s2 p1", "conv 512 4 s2 p1", "conv 1 4", "total.rf=94")
    assert out.code == 0 and "conv5" in out.out, out.out


def test_convnext_field_stops_before_the_pool_even_channels_last() -> None:
    rep = analyze(SPECS / "convnext_tiny.json")
    assert rep.field_row().name == "features.7.2.add"
    assert rep.field_row().receptive_field == (4 + 3 * 6 * 4 + 4 + 3 * 6 * 8 + 8 + 9 * 6 * 16 + 16 + 3 * 6 * 32,) * 2 == (1688, 1688)
    assert cli("check", str(SPECS / "convnext_tiny.json"), "total.rf=1688").code == 0


def test_resnet18_and_efficientnet_keep_their_fields() -> None:
    assert analyze(SPECS / "resnet18.json").field_row().receptive_field == (435, 435)
    rep = analyze(SPECS / "efficientnet_b0.json")  # squeeze-and-excitation pools in the middle: the map goes on
    assert rep.field_row().name == "features.8.2"
