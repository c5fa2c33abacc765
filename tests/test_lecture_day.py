"""The lecture day of issue 16, its last pieces: display names in captions, block explanations,
worked numbers in the formula's order, "whole input" rows, no Python powers in human text, type
typos with a did-you-mean, and budgets over a symbolic repeat count."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SPECS, cli

from archcalc import analyze, parse_spec

ALEXNET = str(SPECS / "alexnet.json")
TITLED = {
    "name": "tiny",
    "title": "TinyNet (a lecture example)",
    "input": [3, 32, 32],
    "layers": [
        {"name": "conv1", "type": "conv2d", "out_channels": 8, "kernel_size": 3},
        {"name": "relu1", "type": "relu"},
        {"name": "flatten", "type": "flatten"},
        {"name": "fc", "type": "linear", "out_features": 10},
    ],
}


def _write(tmp_path: Path, doc: dict[str, Any], name: str = "net.json") -> str:
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return str(p)


# ----- 1. the network's display name ----------------------------------------------------------------


def test_captions_and_headers_use_the_title(tmp_path: Path) -> None:
    spec = _write(tmp_path, TITLED)
    title = "TinyNet (a lecture example)"
    assert cli("table", spec).out.startswith(f"{title}: input 3\u00d732\u00d732")
    assert cli("table", spec, "--format", "markdown").out.startswith(f"*{title}: input")
    assert rf"\caption{{{title}: input" in cli("table", spec, "--format", "latex").out
    page = cli("table", spec, "--format", "html").out
    assert f"<h1>{title}</h1>" in page and f"<title>{title}: archcalc report</title>" in page
    assert f"<caption>{title}: input" in analyze(parse_spec(TITLED))._repr_html_()
    assert cli("explain", spec, "conv1").out.startswith(f"conv1 (conv2d) in {title}: input 3\u00d732\u00d732")
    assert cli("explain", spec, "total.params").out.startswith(f"{title}: total params")
    doc = json.loads(cli("table", spec, "--format", "json").out)
    assert doc["name"] == "tiny" and doc["title"] == title  # the name stays; the title is added


def test_without_a_title_captions_use_the_name(tmp_path: Path) -> None:
    spec = _write(tmp_path, {k: v for k, v in TITLED.items() if k != "title"})
    assert cli("table", spec).out.startswith("tiny: input")
    assert cli("explain", spec, "conv1").out.startswith("conv1 (conv2d): input")
    assert "title" not in json.loads(cli("table", spec, "--format", "json").out)


def test_a_title_must_be_text(tmp_path: Path) -> None:
    r = cli("table", _write(tmp_path, {**TITLED, "title": 12}))
    assert r.code == 2 and "field 'title'" in r.err and "valid string" in r.err


@pytest.mark.parametrize(
    ("stem", "title"),
    [
        ("alexnet", "AlexNet (Krizhevsky et al. 2012)"),
        ("lenet5", "LeNet-5 (LeCun et al. 1998)"),
        ("vgg16", "VGG-16 (Simonyan & Zisserman 2014)"),
        ("resnet50", "ResNet-50 v1.5 (He et al. 2015; torchvision)"),
        ("resnet50_v1", "ResNet-50 v1 (He et al. 2015)"),
        ("googlenet", "GoogLeNet (Szegedy et al. 2014)"),
    ],
)
def test_the_classic_zoo_has_display_names(stem: str, title: str) -> None:
    assert analyze(SPECS / f"{stem}.json").display_name == title


# ----- 6. a type typo in a spec file --------------------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "says"),
    [
        ("conv2", "unknown layer type 'conv2'; did you mean 'conv2d' (or "),  # the closest types, best first
        ("relu6x", "unknown layer type 'relu6x'; did you mean 'relu6' (or "),
        ("ReLU", "unknown layer type 'ReLU'; did you mean 'relu'?"),  # a case slip has one answer
        ("max_pool2d", "unknown layer type 'max_pool2d'; did you mean 'maxpool2d'?"),
        ("fc", "unknown layer type 'fc'; did you mean 'linear'?"),  # the textbook word
        ("wibble", "unknown layer type 'wibble' (`archcalc schema` lists the"),  # nothing close
    ],
)
def test_a_type_typo_gets_one_line_with_a_did_you_mean(tmp_path: Path, typo: str, says: str) -> None:
    doc = {"name": "n", "input": [3, 8, 8], "layers": [{"name": "c1", "type": "conv2d", "out_channels": 4, "kernel_size": 3},
                                                     {"name": "act", "type": typo}]}
    r = cli("table", _write(tmp_path, doc, "typo.json"))
    assert r.code == 2 and r.out == ""
    assert r.err.count("\n") == 1 and r.err.startswith(f"archcalc: error: {tmp_path / 'typo.json'}: layer 'act': field 'type': {says}")
    assert "zeropad3d" not in r.err and "valid types" not in r.err  # not the list of all ~70 types


def test_a_type_typo_inside_a_block_names_the_layer(tmp_path: Path) -> None:
    doc = {"name": "n", "input": [3, 8, 8], "blocks": {"b": {"layers": [{"name": "r", "type": "relu6x"}]}},
           "layers": [{"name": "x", "type": "block", "block": "b"}]}
    r = cli("table", _write(tmp_path, doc))
    assert r.code == 2 and "layer 'r': field 'type': unknown layer type 'relu6x'; did you mean 'relu6'" in r.err


# ----- 7. budgets over a symbolic repeat count --------------------------------------------------------

REPEATED = {
    "name": "deep",
    "input": [3, 16, 16],
    "blocks": {"unit": {"layers": [{"name": "conv", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "bias": False},
                                   {"name": "relu", "type": "relu"}]}},
    "layers": [
        {"name": "stem", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"name": "body", "type": "block", "block": "unit", "repeat": "n"},
    ],
}
STEM = 3 * 8 * 3 * 3 + 8  # 224: weights and bias of the 3x3 conv from 3 to 8 channels
UNIT = 8 * 8 * 3 * 3  # 576: one copy of the block, a 3x3 conv from 8 to 8 channels without bias


def test_a_budget_counts_every_copy_of_a_repeated_block(tmp_path: Path) -> None:
    spec = _write(tmp_path, REPEATED)
    # n = 4: 224 + 4*576 = 2,528, over 2.5K and within 2,600
    r = cli("check", spec, "total.params<=2.5K", "total.params<=2600", "body.params<2304", "body.params<=2304", "--set", "n=4")
    lines = r.out.splitlines()
    assert f"exact {STEM + 4 * UNIT:,}" in lines[0] and lines[0].startswith("WRONG   total.params<=2.5K")
    assert [line.split()[0] for line in lines if not line.startswith(" ")][:4] == ["WRONG", "correct", "WRONG", "correct"]
    assert r.code == 1


def test_a_budget_on_a_free_repeat_count_says_which_counts_keep_within_it(tmp_path: Path) -> None:
    spec = _write(tmp_path, REPEATED)
    r = cli("check", spec, "total.params<=2.5K")
    # 224 + 3*576 = 1,952 <= 2,500 < 2,528 = 224 + 4*576
    assert r.code == 2 and "params here is a formula, 576*n + 224, within the budget for n up to 3" in r.out
    r = cli("check", spec, "total.params<100")
    assert "over the budget already at n = 1" in r.out


def test_a_wrong_figure_for_a_formula_is_judged_not_a_crash(tmp_path: Path) -> None:
    r = cli("check", _write(tmp_path, REPEATED), "total.params=4000", "total.params=224+576*n")
    assert r.code == 1 and "internal error" not in r.err
    assert r.out.startswith("WRONG   total.params=4000: exact 576*n + 224") and "correct total.params=224+576*n" in r.out


# ----- 3. worked numbers in the formula's order ------------------------------------------------------


def _step(out: str, quantity: str) -> tuple[str, str]:
    """(formula, worked line) of one quantity of a text explanation."""
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(quantity + "  "))
    return lines[i][len(quantity) :].strip(), lines[i + 1].strip()


@pytest.mark.parametrize(
    ("args", "quantity", "formula", "worked"),
    [
        # seeds/001: (64·56·56)·(3·11·11) = 72,855,552: C_out, H_out, W_out, then C_in·K·K, as the code multiplies
        ((ALEXNET, "conv1"), "MACs (lecture)", "C_out*H_out*W_out*C_in*K^2", "= 64\u00b756\u00b756\u00b7(3\u00b7(11\u00b711)) = 72,855,552 (72.9M)"),
        ((ALEXNET, "conv1"), "params: weight (64\u00d73\u00d711\u00d711)", "C_out*C_in*K^2", "= 64\u00b73\u00b711\u00b711 = 23,232 (23.2K)"),
        ((ALEXNET, "conv1"), "output H", "floor((H_in + 2*P - K)/S) + 1", "= (227 + 2 + 2 \u2212 11) // 4 + 1 = 56"),
        # seeds/001: 64*56*56*4/1024 = 784 KB: elements, then bytes per element
        ((ALEXNET, "conv1"), "memory (float32, 4 B per element)", "C_out*H_out*W_out*4 B", "= 64\u00b756\u00b756\u00b74 B = 802,816 B = 784 KiB"),
        ((ALEXNET, "fc6"), "params: weight (4096\u00d79216)", "F_out*F_in", "= 4096\u00b79216 = 37,748,736 (37.7M)"),  # torch's (out, in) weight
        ((ALEXNET, "pool2"), "MACs (lecture)", "C_out*H_out*W_out*K^2", "= 192\u00b713\u00b713\u00b7(3\u00b73) = 292,032 (292K)"),
        # a 1x7 kernel: K_h (1) is shown in the formula where the code uses it, though 1 drops out of the arithmetic
        (("--stack", "32x17x17", "conv 64 1x7 padding=0,3 g2"), "params: weight (64\u00d716\u00d71\u00d77)", "C_out*floor(C_in/G)*K_h*K_w",
         "= 64\u00b7(32 // 2)\u00b77 = 7,168 (7.17K)"),
    ],
)
def test_worked_numbers_follow_the_formula(args: tuple[str, ...], quantity: str, formula: str, worked: str) -> None:
    out = cli("explain", *args).out
    assert _step(out, quantity) == (formula, worked)


def test_latex_formulas_keep_the_same_order() -> None:
    out = cli("explain", ALEXNET, "conv1", "--format", "latex").out
    assert r"C_{out} H_{out} W_{out} C_{in} K^{2} = 64 \cdot 56 \cdot 56 \cdot (3 \cdot (11 \cdot 11))" in out
    assert r"C_{out} H_{out} W_{out} {\cdot} 4\,\mathrm{B} = 64 \cdot 56 \cdot 56 \cdot 4\,\mathrm{B}" in out


# ----- 5. no Python powers in human text ------------------------------------------------------------

STACK = ("CxHxW", "conv C 3 p1 bias=false", "conv C 3 p1 bias=false", "conv C 3 p1 bias=false")


def test_symbolic_tables_write_powers_as_people_do() -> None:
    text = cli("quick", *STACK).out
    assert "**" not in text and "total params 27*C^2, MACs 27*C^2*H*W, FLOPs 54*C^2*H*W" in text
    md = cli("quick", *STACK, "--format", "markdown").out
    assert "**C" not in md.replace("\\*", "") and r"27\*C^2" in md
    latex = cli("quick", *STACK, "--format", "latex").out
    assert "$27 C^{2}$" in latex and "**" not in latex and "textasciicircum" not in latex  # math, not escaped text
    # the machine formats keep sympy's syntax, which sympy.sympify reads back
    assert "27*C**2" in cli("quick", *STACK, "--format", "csv").out
    assert json.loads(cli("quick", *STACK, "--format", "json").out)["totals"]["params"] == "27*C**2"


def test_check_writes_powers_as_people_do(tmp_path: Path) -> None:
    out = cli("check", "--stack", *STACK, "total.params=27C^2", "conv1.params=8*C^2", "total.macs<=1M").out
    assert "**" not in out
    assert "correct total.params=27C^2: exact 27*C^2" in out and "WRONG   conv1.params=8*C^2: exact 9*C^2" in out
    assert "here is a formula, 27*C^2*H*W" in out
