"""The ResNet family in specs/: exact params and MACs, written out as arithmetic, checked against
torchvision's documented figures and the papers' tables.

Counting rules used in the arithmetic below (see archcalc/conventions.py):

* a conv has C_out x C_in x k x k weights (no bias anywhere in these nets but the fc), a BN 2C;
* ``torch`` MACs: conv = weights x output H x W, fc = in x out; nothing else;
* ``lecture`` MACs: the same plus pooling (output elements x window): the 3x3 maxpool of the
  ImageNet stem and the global average pool.

torchvision figures: https://pytorch.org/vision/stable/models.html (the per-model "Params" and
"GFLOPS" columns; its GFLOPS are MACs x 1e-9 as counted by a FlopCounterMode-like hook, i.e. our
``torch`` convention).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest

from archcalc import analyze

SPECS = Path(__file__).resolve().parent.parent / "specs"


@functools.cache
def report(name: str, convention: str = "torch"):
    return analyze(SPECS / f"{name}.json", convention=convention)


def totals(name: str) -> tuple[int, int, int]:
    """(params, torch MACs, lecture MACs)."""
    return report(name).totals["params"], report(name).totals["macs"], report(name, "lecture").totals["macs"]


def shape(name: str, layer: str) -> tuple[int, ...]:
    return tuple(report(name).row(layer).output_shape)


# ---------------------------------------------------------------------------------------------
# ImageNet ResNets: arithmetic per block.  A block's conv weights, times its output H x W, are its
# MACs, except where a conv runs at the block's input resolution (v1.5 bottleneck's first 1x1).

STEM_W = 3 * 64 * 7 * 7  # conv1, 7x7/2 -> 64 x 112 x 112
STEM_PARAMS = STEM_W + 2 * 64  # + bn1
STEM_MACS = STEM_W * 112 * 112
MAXPOOL_OPS = 64 * 56 * 56 * 3 * 3  # lecture only
STAGES = [(64, 56), (128, 28), (256, 14), (512, 7)]  # planes, output size of each stage


def basic_w(cin: int, p: int) -> int:
    """BasicBlock conv weights: 3x3 cin->p, 3x3 p->p, and the 1x1 projection when shape changes."""
    return 9 * cin * p + 9 * p * p + (cin * p if cin != p else 0)


def basic_bn(cin: int, p: int) -> int:
    return 2 * (2 * p) + (2 * p if cin != p else 0)  # bn1, bn2 (+ downsample.1)


def basic_net(layers: list[int]) -> tuple[int, int]:
    """(params, torch MACs) of a torchvision BasicBlock ResNet."""
    params, macs, cin = STEM_PARAMS, STEM_MACS, 64
    for n, (p, hw) in zip(layers, STAGES, strict=True):
        for _ in range(n):
            params += basic_w(cin, p) + basic_bn(cin, p)
            macs += basic_w(cin, p) * hw * hw
            cin = p
    return params + 512 * 1000 + 1000, macs + 512 * 1000


def bottleneck_net(layers: list[int], v1: bool) -> tuple[int, int]:
    """(params, torch MACs) of a bottleneck ResNet; v1: stride on conv1 (paper), else on conv2 (torchvision)."""
    params, macs, cin, hw_in = STEM_PARAMS, STEM_MACS, 64, 56
    for n, (p, hw) in zip(layers, STAGES, strict=True):
        for _ in range(n):
            conv1 = cin * p
            rest = 9 * p * p + p * 4 * p + (cin * 4 * p if cin != 4 * p else 0)  # conv2, conv3, downsample.0
            bn = 2 * (p + p + 4 * p) + (2 * 4 * p if cin != 4 * p else 0)
            params += conv1 + rest + bn
            macs += conv1 * (hw if v1 else hw_in) ** 2 + rest * hw * hw
            cin, hw_in = 4 * p, hw
    return params + 2048 * 1000 + 1000, macs + 2048 * 1000


# (spec, layers, torchvision params, torchvision GFLOPS, paper Table 1 GFLOPs = 1e9 multiply-adds)
IMAGENET = [
    ("resnet18", [2, 2, 2, 2], 11_689_512, 1.81, 1.8),
    ("resnet34", [3, 4, 6, 3], 21_797_672, 3.66, 3.6),
    ("resnet50", [3, 4, 6, 3], 25_557_032, 4.09, 3.8),
    ("resnet101", [3, 4, 23, 3], 44_549_160, 7.80, 7.6),
    ("resnet152", [3, 8, 36, 3], 60_192_808, 11.51, 11.3),
]


@pytest.mark.parametrize(("name", "layers", "tv_params", "tv_gflops", "paper"), IMAGENET)
def test_torchvision_resnets(name: str, layers: list[int], tv_params: int, tv_gflops: float, paper: float) -> None:
    params, macs, lecture = totals(name)
    basic = name in ("resnet18", "resnet34")
    exp_params, exp_macs = basic_net(layers) if basic else bottleneck_net(layers, v1=False)
    assert params == exp_params == tv_params
    assert macs == exp_macs
    assert round(macs / 1e9, 2) == tv_gflops  # torchvision docs' GFLOPS column
    c_last = 512 if basic else 2048
    assert lecture == macs + MAXPOOL_OPS + c_last * 7 * 7  # + maxpool and global average pool
    assert shape(name, "maxpool") == (64, 56, 56)
    # the stride is on the BasicBlock's conv1 but on the v1.5 bottleneck's conv2
    assert shape(name, "layer4.0.conv1") == ((512, 7, 7) if basic else (512, 14, 14))
    assert shape(name, f"layer4.{layers[3] - 1}.relu{2 if basic else 3}") == (c_last, 7, 7)
    assert shape(name, "fc") == (1000,)
    if basic:  # v1 = v1.5 for BasicBlocks: the paper's Table 1 figure
        assert abs(macs / 1e9 - paper) / paper < 0.02


def test_exact_imagenet_totals() -> None:
    """The numbers themselves, so a change anywhere shows up as a diff of digits."""
    assert totals("resnet18") == (11_689_512, 1_814_073_344, 1_815_904_768)
    assert totals("resnet34") == (21_797_672, 3_663_761_408, 3_665_592_832)
    assert totals("resnet50") == (25_557_032, 4_089_184_256, 4_091_090_944)
    assert totals("resnet101") == (44_549_160, 7_801_405_440, 7_803_312_128)
    assert totals("resnet152") == (60_192_808, 11_513_626_624, 11_515_533_312)
    assert totals("resnet50_v1") == (25_557_032, 3_857_973_248, 3_859_879_936)
    assert totals("resnet101_v1") == (44_549_160, 7_570_194_432, 7_572_101_120)
    assert totals("resnet152_v1") == (60_192_808, 11_282_415_616, 11_284_322_304)
    assert totals("preact_resnet18") == (11_687_848, 1_814_073_344, 1_815_904_768)
    assert totals("plain20") == totals("resnet20") == (269_722, 40_551_040, 40_555_136)
    assert totals("plain56") == totals("resnet56") == (853_018, 125_485_696, 125_489_792)


@pytest.mark.parametrize(
    ("name", "layers", "paper"),
    [("resnet50_v1", [3, 4, 6, 3], 3.8), ("resnet101_v1", [3, 4, 23, 3], 7.6), ("resnet152_v1", [3, 8, 36, 3], 11.3)],
)
def test_paper_v1_bottleneck(name: str, layers: list[int], paper: float) -> None:
    params, macs, lecture = totals(name)
    v15 = name.removesuffix("_v1")
    assert params == bottleneck_net(layers, v1=True)[0] == totals(v15)[0]  # moving a stride moves no weights
    assert macs == bottleneck_net(layers, v1=True)[1]
    # v1 runs each stage's first 1x1 at the halved resolution: it saves 3/4 of that conv's MACs
    saved = sum(cin * p * (2 * hw) ** 2 * 3 // 4 for cin, p, hw in [(256, 128, 28), (512, 256, 14), (1024, 512, 7)])
    assert saved == 3 * 77_070_336
    assert totals(v15)[1] - macs == saved
    assert lecture == macs + MAXPOOL_OPS + 2048 * 7 * 7
    # Paper Table 1 (3.8 / 7.6 / 11.3 x 1e9 FLOPs, i.e. multiply-adds): within 2% (+1.5%, -0.4%, -0.2%)
    assert abs(macs / 1e9 - paper) / paper < 0.02
    assert shape(name, "layer2.0.conv1") == (128, 28, 28)  # stride on the first 1x1 ...
    assert shape(v15, "layer2.0.conv1") == (128, 56, 56)  # ... where v1.5 keeps it at 56
    assert shape(name, "layer2.0.downsample.0") == (512, 28, 28)
    assert report(name).row("layer3.0.conv2").macs == 256 * 9 * 256 * 14 * 14


def test_resnet152_names_and_size() -> None:
    text = (SPECS / "resnet152.json").read_text()
    assert len(text.splitlines()) < 100
    json.loads(text)
    names = [r.name for r in report("resnet152").rows]
    assert len(names) == len(set(names))
    pattern = re.compile(
        r"(conv1|bn1|relu|maxpool|avgpool|flatten|fc"
        r"|layer[1-4]\.\d+\.(conv[123]|bn[123]|relu[123]|downsample\.[01]|shortcut|add))"
    )
    assert all(pattern.fullmatch(n) for n in names), [n for n in names if not pattern.fullmatch(n)]
    assert "layer3.35.conv3" in names and "layer3.36.conv1" not in names
    # the layers holding parameters are exactly torchvision's modules with parameters
    expected = {"conv1", "bn1", "fc"}
    for i, n in enumerate([3, 8, 36, 3], start=1):
        for j in range(n):
            expected |= {f"layer{i}.{j}.{m}{k}" for m in ("conv", "bn") for k in (1, 2, 3)}
        expected |= {f"layer{i}.0.downsample.0", f"layer{i}.0.downsample.1"}
    assert {r.name for r in report("resnet152").rows if r.params} == expected
    assert report("resnet152").row("layer3.35.conv3").params == 256 * 1024
    assert report("resnet152").row("layer3.35.add").inputs == ["layer3.35.bn3", "layer3.35.shortcut"]


# ---------------------------------------------------------------------------------------------
# CIFAR-10 nets of He et al. 2015 Sec. 4.2: 6n+2 layers, 16/32/64 filters on 32/16/8 maps.


def cifar(n: int) -> tuple[int, int]:
    """(params, torch MACs) for depth 6n+2, identical for plain and option-A residual nets."""
    params = 3 * 16 * 9 + 2 * 16  # conv1 + bn1
    macs = 3 * 16 * 9 * 32 * 32
    cin = 16
    for p, hw in [(16, 32), (32, 16), (64, 8)]:
        for _ in range(n):
            w = 9 * cin * p + 9 * p * p
            params += w + 2 * 2 * p
            macs += w * hw * hw
            cin = p
    return params + 64 * 10 + 10, macs + 64 * 10


@pytest.mark.parametrize(("n", "paper_m"), [(3, 0.27), (9, 0.85)])
def test_cifar_nets(n: int, paper_m: float) -> None:
    depth = 6 * n + 2
    params, macs, lecture = totals(f"resnet{depth}")
    assert (params, macs) == cifar(n)
    assert round(params / 1e6, 2) == paper_m  # Table 6: 0.27M (ResNet-20), 0.85M (ResNet-56)
    assert lecture == macs + 64 * 8 * 8  # + global average pool; the option-A shortcut costs nothing
    # the shortcut is free: plain and residual nets cost the same, layer for layer
    assert totals(f"plain{depth}") == totals(f"resnet{depth}")
    for name in (f"plain{depth}", f"resnet{depth}"):
        assert shape(name, "layer1.0.conv2") == (16, 32, 32)
        assert shape(name, "layer2.0.conv1") == (32, 16, 16)
        assert shape(name, f"layer3.{n - 1}.relu2") == (64, 8, 8)
        assert shape(name, "fc") == (10,)
        assert sum(r.type == "conv2d" for r in report(name).rows) + 1 == depth  # 6n+2 weighted layers
    res = report(f"resnet{depth}")
    assert shape(f"resnet{depth}", "layer2.0.shortcut.0") == (16, 16, 16)  # x[:, :, ::2, ::2]
    assert shape(f"resnet{depth}", "layer2.0.shortcut.1") == (32, 16, 16)  # zero-padded channels
    assert shape(f"resnet{depth}", "layer3.0.shortcut.1") == (64, 8, 8)
    assert res.row("layer3.0.add").inputs == ["layer3.0.bn2", "layer3.0.shortcut.1"]
    assert res.row("layer1.0.add").inputs == ["layer1.0.bn2", "layer1.0.shortcut"]
    assert sum(r.type == "add" for r in res.rows) == 3 * n
    assert not any(r.type == "add" for r in report(f"plain{depth}").rows)
    assert all(r.params == 0 and r.macs == 0 for r in res.rows if r.type in ("subsample", "channelpad", "identity"))


# ---------------------------------------------------------------------------------------------
# Pre-activation ResNet-18 (He et al. 2016)


def test_preact_resnet18() -> None:
    params, macs, lecture = totals("preact_resnet18")
    # same convs as resnet18 (projections 1x1 without BN); BNs: stem, 2 per block on its input and
    # middle, and one after layer4
    p = STEM_PARAMS + 512 * 1000 + 1000 + 2 * 512  # + bn_final
    cin = 64
    for planes, _ in STAGES:
        for _ in range(2):
            p += basic_w(cin, planes) + 2 * cin + 2 * planes
            cin = planes
    assert params == p == 11_689_512 - 2 * (128 + 256 + 512) - (2 * (128 + 256 + 512) - 2 * (64 + 128 + 256)) + 2 * 512
    assert macs == basic_net([2, 2, 2, 2])[1] == totals("resnet18")[1]
    assert lecture == macs + MAXPOOL_OPS + 512 * 7 * 7
    r = report("preact_resnet18")
    assert r.row("layer2.0.shortcut.0").inputs == ["layer2.0.relu1"]  # projection of the pre-activated input
    assert r.row("layer2.0.bn1").params == 2 * 64  # pre-activation BN sees the block input
    assert r.row("layer1.1.add").inputs == ["layer1.1.conv2", "layer1.1.shortcut"]
    assert r.row("layer1.1.shortcut").inputs == ["layer1.0.add"]  # identity from the un-activated input
    assert shape("preact_resnet18", "layer2.0.shortcut.0") == (128, 28, 28)
    assert shape("preact_resnet18", "bn_final") == (512, 7, 7)
    assert shape("preact_resnet18", "fc") == (1000,)
