"""explain, check and compare: what teachers and students open archcalc for."""

from __future__ import annotations

import json

import pytest
from conftest import SPECS, cli

ALEXNET = str(SPECS / "alexnet.json")


def test_explain_conv1_like_the_lecture() -> None:
    # seeds/001: W' = (227 - 11 + 2*2)/4 + 1 = 56; 64*56*56*4/1024 = 784 KB; (64*56*56)*(3*11*11) = 72,855,552
    out = cli("explain", ALEXNET, "conv1").out
    assert "\u230a(227 + 2 + 2 \u2212 11) / 4\u230b + 1 = 56" in out  # the floor as the notes write it, not Python's //
    assert "64\u00b73\u00b711\u00b711 + 64 = 23,296" in out
    assert "64\u00b756\u00b756\u00b7(3\u00b7(11\u00b711)) = 72,855,552" in out
    assert "64\u00b756\u00b756\u00b74 B = 802,816 B = 784 KiB" in out
    assert "floor((H_in + 2*P - K)/S) + 1" in out  # the general formula, from the same code run on symbols


def test_explain_pool_linear_merge_and_rf() -> None:
    pool = cli("explain", ALEXNET, "pool2").out
    assert "\u230a(27 \u2212 3) / 2\u230b + 1 = 13" in pool
    assert "51 + (3 \u2212 1)\u00b78 = 67" in pool  # r = r_in + (k - 1) * j_in
    assert "8\u00b72 = 16" in pool  # effective stride j = j_in * s
    fc = cli("explain", ALEXNET, "fc6").out
    assert "4096\u00b79216 + 4096 = 37,752,832" in fc
    add = cli("explain", str(SPECS / "resnet50.json"), "layer1.0.add").out
    assert "max(19, 11) = 19" in add  # RF where the paths meet: the larger one
    assert "256\u00b756\u00b756 = 802,816" in add  # one add per element


@pytest.mark.parametrize("fmt", ["markdown", "latex"])
def test_explain_formats(fmt: str) -> None:
    out = cli("explain", ALEXNET, "conv1", "--format", fmt).out
    assert (r"23\,296" if fmt == "latex" else "23,296") in out  # 64*3*11*11 + 64; LaTeX groups digits with thin spaces
    if fmt == "latex":
        assert r"\begin{align*}" in out and r"\cdot" in out
    else:
        assert "| quantity | formula | worked | result |" in out


def test_explain_quick_stack_and_symbols() -> None:
    out = cli("explain", "--stack", "3x227x227", "conv 64 11x11 s4 p2", "maxpool 3 s2").out
    assert "conv1 (conv2d)" in out and "maxpool1 (maxpool2d)" in out
    sym = cli("explain", "--stack", "CxHxW", "conv C 7 p3 bias=false").out
    assert "49*C^2" in sym


def test_explain_rf_at_and_after_upsampling() -> None:
    # x3 nearest upsampling, then a 3x3 pad-1 conv: output 0 reads upsampled positions -1..1, which
    # are copies of pixels -1 (padding, counted as the three rules count it) and 0: 0 - (-1) + 1 = 2
    # input pixels, not the regular-grid rule's 1 + (3 - 1)*(1/3); stride 1/3, shown rounded up to 1
    out = cli("explain", "--stack", "1x8x8", "upsample scale_factor=3", "conv 1 3 p1").out
    conv = out[out.index("conv1 (conv2d)") :]
    assert "output 0 reads input positions \u22121..1, which see pixels \u22121..0: 0 \u2212 (\u22121) + 1 = 2" in conv
    assert "1/3 (rounded up: outputs sit unevenly) = 1" in conv
    assert "r_in + (extent - 1)*j_in" not in conv  # the regular-grid rule is not claimed where it does not hold
    # U-Net: the bottleneck's field is 140 pixels at stride 16 (3 + 2 + (2+2)*2 + (2+2)*4 + (2+2)*8 + (2+2)*16 - ... see
    # test_lineage); up4 (2x2, stride 2) gives each output exactly one bottleneck position: RF 140, stride 16/2 = 8
    up4 = cli("explain", str(SPECS / "unet.json"), "up4").out
    assert "output 0 reads input position 0, which sees pixels 0..139: 139 \u2212 0 + 1 = 140" in up4
    assert "j_in*S/U" in up4 and "= 16/2 = 8" in up4
    # its first 3x3 conv reads 3 neighbouring up4 outputs = 2 bottleneck positions: 140 + 16 = 156
    dbl = cli("explain", str(SPECS / "unet.json"), "updouble4.conv1").out
    assert "which see pixels 0..155: 155 \u2212 0 + 1 = 156" in dbl


def test_explain_rf_lines_agree_with_the_table_everywhere() -> None:
    # every worked receptive-field line of every U-Net and C3D layer evaluates to the value in the row
    import re

    from archcalc.dims import parse_dim
    from archcalc.explain import explain_layer
    from archcalc.graph import compile_graph
    from archcalc.report import report_from_graph
    from archcalc.spec import load_spec

    checked = {"exact": 0, "rules": 0}
    for spec in ("unet", "c3d", "googlenet"):
        G = compile_graph(load_spec(SPECS / f"{spec}.json"))
        rep = report_from_graph(G)
        for row in rep.rows:
            for step in explain_layer(G, row.name).steps:
                if not step.quantity.startswith("receptive field") or "paths meet" in step.quantity or not step.worked:
                    continue
                m = re.search(r"pixels (\S+)\.\.(\S+):", step.worked)
                if m:  # the exact interval rule: hi - lo + 1
                    lo, hi = (int(x.replace("\u2212", "-")) for x in m.groups())
                    assert hi - lo + 1 == int(step.result), (spec, row.name, step)
                    checked["exact"] += 1
                elif step.worked != "pointwise: unchanged":  # the three rules, with the numbers in: "51 + (3 - 1)*8"
                    assert parse_dim(step.worked.replace("\u2212", "-").replace("\u00b7", "*")) == int(step.result), (spec, row.name, step)
                    checked["rules"] += 1
    # U-Net's expanding path: 4 stages of (up-conv + 2 convs) x 2 axes, then the 1x1 output conv x 2 axes
    assert checked["exact"] == 4 * (1 + 2) * 2 + 2
    assert checked["rules"] > 150


def test_explain_writes_every_axis_alike_and_brackets_floor_division() -> None:
    out = cli("explain", ALEXNET, "conv1").out
    assert "floor((H_in + 2*P - K)/S) + 1" in out and "floor((W_in + 2*P - K)/S) + 1" in out  # not (-K + 2*P + W_in)
    # grouped conv: in_channels / groups, then times the kernel: ⌊32 / 2⌋·7 = 112 (Python's "32 // 2*7" would need brackets)
    grouped = cli("explain", "--stack", "32x17x17", "conv 64 1x7 padding=0,3 g2").out
    assert "64\u00b7\u230a32 / 2\u230b\u00b77 = 7,168" in grouped  # 64 filters of 16 x 1 x 7
    assert all(line == line.rstrip() for line in out.splitlines())


def test_linear_on_a_3d_input_says_so() -> None:
    # torch's nn.Linear acts on the last axis: after global pooling to 32x1x1 without a flatten, `linear 10` has
    # 1 input feature: 1*10 + 10 = 20 params, not 32*10 + 10 = 330; the table and check say why
    out = cli("quick", "3x227x227", "conv 32 3", "gap", "linear 10").out
    assert "linear1: acts on the last axis of its 32\u00d71\u00d71 input" in out and "flatten first to connect all 32" in out
    assert out.split("linear1")[1].split()[:4] == ["linear", "32\u00d71\u00d710", "20", "320"]  # 1*10 + 10 params, 32*10*1 MACs
    r = cli("check", "--stack", "3x227x227", "conv 32 3", "gap", "linear 10", "linear1.params=330")
    assert r.code == 1 and "note: acts on the last axis" in r.out


def test_quick_fc_is_the_textbook_fully_connected_layer() -> None:
    # `fc` flattens first: after gap to 32x1x1, fc 10 has 32*10 + 10 = 330 params
    out = cli("quick", "3x227x227", "conv 32 3", "gap", "fc 10").out
    assert out.split("flatten1")[1].split()[:2] == ["flatten", "32"]
    assert out.split("fc1")[1].split()[:3] == ["linear", "10", "330"]
    # LeNet-5 typed as taught: 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706 params (LeCun et al. 1998, full C3)
    lenet = cli("quick", "1x32x32", "conv 6 5", "tanh", "avgpool 2", "conv 16 5", "tanh", "avgpool 2", "conv 120 5", "tanh", "fc 84", "tanh", "fc 10")
    assert "total params 61,706," in lenet.out


def test_quick_grammar_as_students_write_it() -> None:
    # AlexNet conv1 as the paper words it: (227 - 11)//4 + 1 = 55; 96*3*11*11 + 96 = 34,944 params
    out = cli("quick", "3x227x227", "conv 96 filters 11x11 stride 4", "maxpool 3 2").out
    assert out.split("conv1")[1].split()[:3] == ["conv2d", "96\u00d755\u00d755", "34.9K"]
    assert out.split("maxpool1")[1].split()[1] == "96\u00d727\u00d727"  # (55 - 3)//2 + 1 = 27
    # torch's positional order (out, kernel, stride, padding), bare 'same', per-axis strides
    out = cli("quick", "3x32x32", "conv 64 3 1 1", "conv 64 3 same", "conv 8 3 s2x1 p1").out
    assert [out.split(f"conv{i}")[1].split()[1] for i in (1, 2, 3)] == ["64\u00d732\u00d732", "64\u00d732\u00d732", "8\u00d716\u00d732"]
    # aliases follow the input's rank: conv on C x L is conv1d, on C x D x H x W conv3d
    assert "conv1d" in cli("quick", "1x100", "conv 8 5").out
    conv3d = cli("quick", "3x16x112x112", "conv 64 3 p1").out  # 64*3*27 + 64 = 5,248 params
    assert conv3d.split("conv1")[1].split()[:3] == ["conv3d", "64\u00d716\u00d7112\u00d7112", "5.25K"]


def test_quick_hints_at_channels_last_inputs() -> None:
    r = cli("quick", "224x224x3", "conv 64 3 p1")
    assert r.code == 0 and "read channels first" in r.err and "write 3x224x224" in r.err
    r = cli("quick", "28x28x1", "conv 6 5")
    assert r.code == 2 and len(r.err.splitlines()) == 1 and "write 1x28x28" in r.err


def test_explain_latex_sets_symbolic_results_as_math() -> None:
    # seeds/000's VGG stage: a 3x3 conv C -> C on 2H x 2W costs 9C^2 params and 9C^2 * 4HW = 36C^2HW MACs
    out = cli("explain", "--stack", "Cx(2*H)x(2*W)", "conv C 3 p1 bias=false", "--format", "latex").out
    assert "= 9 C^{2} \\\\" in out and "= 36 C^{2} H W \\\\" in out
    assert "2\\,\\mathrm{MACs}" in out and "**" not in out and "*C" not in out  # no Python syntax in the formulas


def test_explain_unknown_layer() -> None:
    r = cli("explain", ALEXNET, "conv9")
    assert r.code == 2 and "no layer or block named 'conv9'" in r.err and "did you mean" in r.err


CLAIMS = [
    # (claim, correct?) -- values as people write them, judged at the precision written
    ("pool2.output=14x14", False),  # the exam slip: (27 - 3)//2 + 1 = 13
    ("pool2.output=13x13", True),
    ("pool2.output=192x13x13", True),
    ("conv1.macs=73M", True),  # 72,855,552 rounds to 73M
    ("conv1.macs=78M", False),  # seeds/001 writes "~ 78M"
    ("conv1.macs=72.86M", True),
    ("conv1.macs=72.85M", False),  # written to 0.01M: [72.845M, 72.855M) misses 72,855,552
    ("pool1.memory=182.25KB", True),
    ("pool1.memory=182KB", True),  # 186,624 B is 182.25 KB: rounds to 182
    ("pool1.memory=183KB", False),
    ("fc7.params=16,781,312", True),
    ("fc7.params=16,777,216", False),  # the weights alone
    ("total.params=61M", True),
    ("total.params=61,100,840", True),
    ("conv1..pool2.memory=1.6MB", True),  # 784 + 182.25 + 546.75 + 126.75 KB = 1639.75 KB
    ("conv5.rf=163x163", True),
    ("pool5.stride=32", True),
    # conv1's output is 64*56*56*4 = 802,816 B = 784 KiB = 802.816 kB (SI)
    ("conv1.memory=784KB", True),
    ("conv1.memory=784KiB", True),
    ("conv1.memory=784kB", True),  # kB read both ways: 784 * 1024 matches
    ("conv1.memory=803kB", True),  # ... and 803 * 1000 (SI) matches at the written precision
    ("conv1.memory=785KB", False),  # KB is only 1024 B: 785 KiB misses
    ("conv1.macs=7.3e7", True),  # scientific notation: 72,855,552 rounds to 7.3e7
    ("conv1.macs=7.28e7", False),  # 72,855,552 rounds to 7.29e7
    ("conv1.macs=72.86M MACs", True),  # the quantity's name after the multiplier
    ("total.flops=1.44GFLOPs", True),  # 2 * 717,562,112 lecture MACs = 1,435,124,224
]


@pytest.mark.parametrize(("claim", "correct"), CLAIMS)
def test_check_claims(claim: str, correct: bool) -> None:
    r = cli("check", ALEXNET, claim)
    assert r.code == (0 if correct else 1), r.out + r.err
    assert ("correct" if correct else "WRONG") in r.out


def test_check_says_why() -> None:
    out = cli("check", ALEXNET, "pool2.output=14x14").out
    assert "exact 192\u00d713\u00d713" in out and "\u230a(27 \u2212 3) / 2\u230b + 1 = 13" in out


def test_check_symbolic_and_stack() -> None:
    r = cli("check", "--stack", "CxHxW", "conv C 3 p1 bias=false", "conv C 3 p1 bias=false", "conv C 3 p1 bias=false",
            "total.params=27*C**2", "total.macs=27*C^2*H*W", "conv3.rf=7x7")
    assert r.code == 0, r.out + r.err
    assert cli("check", "--stack", "CxHxW", "conv C 7 p3 bias=false", "total.params=27*C**2").code == 1


@pytest.mark.parametrize(
    "claim",
    [
        "conv1.volume=3",
        "conv1.params",
        "nope.params=3",
        "conv1.params=lots",
        "pool5..conv1.memory=1KB",
        "conv1.params=23,3K",  # a decimal comma: not a thousands separator (groups of three), so unreadable
        "conv1.memory=0.77Mb",  # megabits
    ],
)
def test_check_bad_claims_exit_2(claim: str) -> None:
    r = cli("check", ALEXNET, claim)
    assert r.code == 2 and r.err.startswith("archcalc: error:") and len(r.err.splitlines()) == 1


def test_check_bits_and_training_only_ranges_say_why() -> None:
    assert "reads as bits" in cli("check", ALEXNET, "conv1.memory=6272Kb").err
    googlenet = str(SPECS / "googlenet.json")
    r = cli("check", googlenet, "aux1.avgpool..aux1.fc2.params=3,188,840")
    assert r.code == 2 and "only training-only layers" in r.err and "--include-training-only" in r.err
    # with the head counted: 512*128 + 128 (1x1 conv on inception_4a) + 2048*1024 + 1024 + 1024*1000 + 1000 = 3,188,840
    assert cli("check", googlenet, "aux1.avgpool..aux1.fc2.params=3,188,840", "--include-training-only").code == 0


def test_check_options_between_spec_and_claims() -> None:
    # float16: 64*56*56*2 = 401,408 B = 392 KB
    r = cli("check", ALEXNET, "--dtype", "float16", "conv1.memory=392KB")
    assert r.code == 0 and "correct" in r.out


def test_check_formulas_sympy_cannot_simplify() -> None:
    # a stride-2 pad-1 3x3 conv: H_out = floor((H + 2 - 3)/2) + 1 = ceil(H/2) = (H + 1)//2, a form sympy
    # leaves apart from floor(H/2 - 1/2) + 1; MACs = 8*3*9 = 216 per output position
    stack = ("check", "--stack", "3xHxW", "conv 8 3 s2 p1 bias=false")
    r = cli(*stack, "conv1.macs=216*((H+1)//2)*((W+1)//2)", "conv1.output=8x(H+1)//2x(W+1)//2")
    assert r.code == 0, r.out + r.err
    # proved, not sampled (review s7 #17): with H = 2k + r, W = 2j + s, both sides are polynomials of degree 1
    # in k and in j on each of the 2*2 classes, so 2 values each, (2*2)*(2*2) = 16 points, fix them
    assert "equal (proved: on every class of H mod 2, W mod 2 both are polynomials of degree <= 1 in each symbol, equal at 16 points" in r.out
    wrong = cli(*stack, "conv1.macs=216*(H//2)*((W+1)//2)", "conv1.output=8xH//2xW//2")
    assert wrong.code == 1 and "0 correct, 2 wrong" in wrong.out
    # the counterexample: at H = 3, (3 + 1)//2 = 2 rows, not 3//2 = 1 (W = 2: (2 + 1)//2 = 1 column)
    assert "they differ at H=3, W=2 (claimed 216, exact 432)" in wrong.out  # 216*1*1, 216*2*1
    assert "they differ at H=3 (claimed 1, exact 2)" in wrong.out
    # a formula claim with its unit, and a value with spaces, under --stack
    r = cli("check", "--stack", "CxHxW", "conv C 3 p1 bias=false", "conv1.memory=4*C*H*W B", "conv1.macs=9*C**2*H * W")
    assert r.code == 0, r.out + r.err


def test_explain_with_symbols_in_input_or_batch() -> None:
    # these crashed: a traced integer (kernel 11) meeting a symbol (H) in the same formula
    conv1 = cli("explain", ALEXNET, "conv1", "--input", "3,H,W")
    assert conv1.code == 0, conv1.err
    assert "floor(H/4 - 7/4) + 1" in conv1.out  # (H + 2*2 - 11)//4 + 1
    pool2 = cli("explain", ALEXNET, "pool2", "--batch", "N")
    assert pool2.code == 0 and "292032*N" in pool2.out  # 192*13*13*9 per image
    ceil = cli("explain", "--stack", "3xHxW", "maxpool 3 s2 ceil_mode=true")
    assert ceil.code == 0 and "output H" in ceil.out  # no general formula here, but the size is shown
    assert cli("explain", str(SPECS / "googlenet.json"), "pool3", "--input", "3,H,W").code == 0


def test_compare_three_3x3_vs_one_7x7() -> None:
    # seeds/000: 27C^2 vs 49C^2, "27/49 ~ 0.55, about 45% fewer", same RF 7, 3 ReLUs vs 1
    r = cli("compare", "--stack", "CxHxW", "conv C 7 p3 bias=false", "relu",
            "--stack", "CxHxW", "conv C 3 p1 bias=false", "relu", "conv C 3 p1 bias=false", "relu", "conv C 3 p1 bias=false", "relu",
            "--format", "json")
    rows = json.loads(r.out)["rows"]
    assert rows["params"]["values"] == ["49*C**2", "27*C**2"]
    assert rows["params"]["vs_first"] == ["27/49 \u2248 0.551 (45% fewer)"]
    assert rows["receptive field"]["values"] == [[7, 7], [7, 7]]
    assert rows["nonlinearities"]["values"] == [1, 3]


def test_compare_plain_vs_residual_is_free() -> None:
    # He et al. 2015: the identity shortcut adds no parameters and no MACs
    out = cli("compare", str(SPECS / "plain56.json"), str(SPECS / "resnet56.json")).out
    params = next(line for line in out.splitlines() if line.startswith("params"))
    macs = next(line for line in out.splitlines() if line.startswith("MACs"))
    assert params.split()[1] == params.split()[2] == "853,018" and params.endswith("same")
    assert macs.endswith("same")


def test_compare_needs_two() -> None:
    assert cli("compare", ALEXNET).code == 2


def test_explain_ceil_mode_reads_as_a_ceiling() -> None:
    # torch: ceil((9 - 2) / 2) + 1 = 5 windows (the last one overhangs)
    out = cli("explain", "--stack", "3x9x9", "maxpool 2 s2 ceil_mode=true").out
    assert "\u2308(9 \u2212 2) / 2\u2309 + 1 = 5" in out
