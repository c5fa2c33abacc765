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
ALEXNET_2012 = str(SPECS / "alexnet_2012.json")
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
    assert lines[0] == f"WRONG   total.params<=2.5K: exact {STEM + 4 * UNIT:,} (2.53K) (budget <= 2.5K)  [budget <= 2,500: 1.01 times it]"
    assert [line.split()[0] for line in lines if not line.startswith(" ")][:4] == ["WRONG", "correct", "WRONG", "correct"]
    assert r.code == 1


def test_a_budget_on_a_free_repeat_count_says_which_counts_keep_within_it(tmp_path: Path) -> None:
    spec = _write(tmp_path, REPEATED)
    r = cli("check", spec, "total.params<=2.5K")
    # 224 + 3*576 = 1,952 <= 2,500 < 2,528 = 224 + 4*576
    assert r.code == 2 and "params here is a formula, 576*n + 224, within the budget for n up to 3" in r.out
    r = cli("check", spec, "total.params<100")
    assert "over the budget already at n = 1" in r.out


@pytest.mark.parametrize(
    ("claim", "says"),
    [
        ("total.params>=2.5K", "true for n from 4 on"),  # 224 + 3*576 = 1,952 < 2,500 <= 2,528 = 224 + 4*576
        ("total.params>2528", "true for n from 5 on"),  # n = 4 gives 2,528 exactly: not more than it
        ("total.params>=2528", "true for n from 4 on"),
        ("total.params>=800", "true for every n (already at n = 1)"),  # 224 + 576 = 800
        ("total.params>799", "true for every n (already at n = 1)"),
    ],
)
def test_a_lower_bound_on_a_free_repeat_count_says_from_which_count_it_holds(tmp_path: Path, claim: str, says: str) -> None:
    """>= and > said nothing of n where <= gave its range (review 1, finding 8): the same bisection, the other side."""
    r = cli("check", _write(tmp_path, REPEATED), claim)
    assert r.code == 2 and f"params here is a formula, 576*n + 224, {says}: give the symbols values with --set" in r.out, r.out


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
        ((ALEXNET, "conv1"), "output H", "floor((H_in + 2*P - K)/S) + 1", "= \u230a(227 + 2 + 2 \u2212 11) / 4\u230b + 1 = 56"),
        # seeds/001: 64*56*56*4/1024 = 784 KB: elements, then bytes per element
        ((ALEXNET, "conv1"), "memory (float32, 4 B per element)", "C_out*H_out*W_out*4 B", "= 64\u00b756\u00b756\u00b74 B = 802,816 B = 784 KiB"),
        ((ALEXNET, "fc6"), "params: weight (4096\u00d79216)", "F_out*F_in", "= 4096\u00b79216 = 37,748,736 (37.7M)"),  # torch's (out, in) weight
        ((ALEXNET, "pool2"), "MACs (lecture)", "C_out*H_out*W_out*K^2", "= 192\u00b713\u00b713\u00b7(3\u00b73) = 292,032 (292K)"),
        # a 1x7 kernel: K_h (1) is shown in the formula where the code uses it, though 1 drops out of the arithmetic
        (("--stack", "32x17x17", "conv 64 1x7 padding=0,3 g2"), "params: weight (64\u00d716\u00d71\u00d77)", "C_out*floor(C_in/G)*K_h*K_w",
         "= 64\u00b7\u230a32 / 2\u230b\u00b77 = 7,168 (7.17K)"),
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


# ----- 4. rows whose every output sees the whole input ---------------------------------------------


def _rf_cells(out: str) -> dict[str, tuple[str, str]]:
    """layer -> (RF, stride) cells of a text table."""
    rows = {}
    for line in out.splitlines()[4:]:
        parts = line.split()
        if len(parts) >= 8 and parts[0] != "total":
            rows[parts[0]] = (parts[-2], parts[-1])
    return rows


def test_fully_connected_rows_see_the_whole_input() -> None:
    # the 2012 paper's AlexNet (224, padding 0 after 2: every pixel read); torchvision's at 227 misses two (test_whole_input)
    out = cli("table", ALEXNET_2012).out
    cells = _rf_cells(out)
    # pool5 sees 195x195 (a window); from the flatten on, every output reads all 6x6 positions: 195 + (6 - 1)*32 = 355
    assert cells["pool5"] == ("195\u00d7195", "32\u00d732")
    assert all(cells[n] == ("whole", "whole") for n in ("flatten", "fc6", "relu6", "fc7", "relu7", "fc8"))
    assert "RF and stride 'whole': every output sees the whole input" in out  # the legend says what it means
    md = cli("table", ALEXNET_2012, "--format", "markdown").out
    fc6_md = next(line for line in md.splitlines() if line.startswith("| fc6 "))
    assert [c.strip() for c in fc6_md.strip("|").split("|")][-2:] == ["whole", "whole"]
    latex = cli("table", ALEXNET_2012, "--format", "latex").out
    assert r"fc6 & linear & 4096 & 37.8M & 37.7M & 16.0 KiB & whole & whole \\" in latex
    # JSON keeps the exact numbers and adds a flag
    doc = json.loads(cli("table", ALEXNET_2012, "--format", "json").out)
    fc6 = next(r for r in doc["layers"] if r["name"] == "fc6")
    assert fc6["receptive_field"] == [355, 355] and fc6["effective_stride"] == [192, 192] and fc6["sees_whole_input"] is True
    assert "sees_whole_input" not in next(r for r in doc["layers"] if r["name"] == "pool5")


def test_global_pool_attention_and_mean_see_the_whole_input(tmp_path: Path) -> None:
    resnet = _rf_cells(cli("table", str(SPECS / "resnet50.json")).out)
    assert resnet["layer4.2.relu3"] == ("427\u00d7427", "32\u00d732")
    assert resnet["avgpool"] == ("whole", "whole") and resnet["fc"] == ("whole", "whole")
    vit = _rf_cells(cli("table", str(SPECS / "vit_b_16.json")).out)
    assert vit["conv_proj"] == ("16\u00d716", "16\u00d716") and vit["encoder.layers.encoder_layer.0.ln_1"] == ("16\u00d716", "16\u00d716")
    assert vit["encoder.layers.encoder_layer.0.self_attention"] == ("whole", "whole")
    assert vit["encoder.layers.encoder_layer.0.add_1"] == ("whole", "whole")  # x + attention(x): each token sees everything
    # a mean over the map, and a conv as large as the map: whole; a conv that leaves a 2x2 map: not
    doc = {"name": "m", "input": [3, 8, 8], "layers": [
        {"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"name": "small", "type": "conv2d", "out_channels": 4, "kernel_size": 4, "stride": 4, "inputs": ["c"]},
        {"name": "big", "type": "conv2d", "out_channels": 4, "kernel_size": 8, "inputs": ["c"]},
        {"name": "avg", "type": "mean", "dim": [2, 3], "inputs": ["c"]}]}
    rep = analyze(parse_spec(doc))
    assert [rep.row(n).whole_input for n in ("c", "small", "big", "avg")] == [False, False, True, True]


def test_explain_and_check_say_whole_input() -> None:
    out = cli("explain", ALEXNET_2012, "fc6").out
    rf = out.splitlines().index(next(line for line in out.splitlines() if line.startswith("receptive field ")))
    assert out.splitlines()[rf].endswith("it reads drop6, which sees the whole input")
    assert out.splitlines()[rf + 1].strip() == "= the whole input (355\u00d7355 with the padding counted)"
    r = cli("check", ALEXNET_2012, "fc6.rf=whole image", "pool5.rf=whole image", "fc6.rf=355x355")
    assert [line.split()[0] for line in r.out.splitlines() if not line.startswith(" ")][:3] == ["correct", "WRONG", "correct"]


# ----- 2. explain takes block names, and agrees with check -------------------------------------------

RESNET50 = str(SPECS / "resnet50.json")
# torchvision's bottleneck (He et al. 2015, Table 1, conv2_x), 64 -> 64 -> 256 channels:
FIRST = 64 * 64 + 128 + 64 * 64 * 3 * 3 + 128 + 64 * 256 + 512 + 64 * 256 + 512  # 75,008: with the projection shortcut
OTHER = 256 * 64 + 128 + 64 * 64 * 3 * 3 + 128 + 64 * 256 + 512  # 70,400


def test_explain_a_block_sums_its_copies() -> None:
    r = cli("explain", RESNET50, "layer1")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("layer1 (block, 3 copies, 34 layers) in ResNet-50 v1.5 (He et al. 2015; torchvision): input maxpool 64\u00d756")
    assert _step(r.out, "params") == ("layer1.0 75.0K + layer1.1 70.4K + layer1.2 70.4K", f"= {FIRST + 2 * OTHER:,} (216K)")
    assert "layer1.2.conv3" in r.out and "block layer1 \u00d73: input 64\u00d756\u00d756" in r.out  # its rows, as a table
    one = cli("explain", RESNET50, "layer1.0").out  # a copy: its layers
    assert _step(one, "params")[1] == f"= {FIRST:,} (75.0K)" and "layer1.0.downsample.0 16.4K" in one


@pytest.mark.parametrize(("spec", "name"), [(RESNET50, "layer1"), (RESNET50, "layer4.2"), (str(SPECS / "googlenet.json"), "inception_3a"),
                                            (str(SPECS / "transformer_lm.json"), "transformer.h")])
def test_explain_and_check_agree_on_a_block(spec: str, name: str) -> None:
    out = cli("explain", spec, name).out
    for quantity, label in (("params", "params"), ("macs", "MACs (lecture)"), ("memory", "memory (float32)")):
        result = _step(out, label)[1].removeprefix("= ")
        exact = result.split(" (")[0].split(" B")[0].replace(" B = ", "")
        verdict = cli("check", spec, f"{name}.{quantity}={exact}" + (" B" if quantity == "memory" and "*" in exact else ""))
        assert verdict.code == 0 and verdict.out.startswith("correct"), (quantity, result, verdict.out)


def test_explain_a_block_in_markdown_and_latex() -> None:
    md = cli("explain", RESNET50, "layer1", "--format", "markdown").out
    assert md.startswith("**layer1 (block, 3 copies") and "| params | layer1.0 75.0K + layer1.1 70.4K + layer1.2 70.4K | 215,808 (216K) |" in md
    tex = cli("explain", RESNET50, "layer1", "--format", "latex").out
    assert r"\item params: $215\,808\ (216\,\mathrm{K})$" in tex and r"\item memory (float32): $44\,957\,696\,\mathrm{B} = 42.9\,\mathrm{MiB}$" in tex
    assert r"\begin{tabular}" in tex and r"\begin{table}" not in tex  # a bare tabular, as table --bare


def test_explain_a_misspelt_block_says_did_you_mean() -> None:
    r = cli("explain", RESNET50, "layr1")
    assert r.code == 2 and "no layer or block named 'layr1'; did you mean 'layer1'" in r.err


def test_a_block_explained_in_latex_compiles(tmp_path: Path) -> None:
    import shutil
    import subprocess

    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed")
    tex = cli("explain", RESNET50, "layer1.0", "--format", "latex").out
    doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage[margin=1cm]{geometry}\n\\begin{document}\n" + tex + "\\end{document}\n"
    (tmp_path / "block.tex").write_text(doc)
    command = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "block.tex"]
    r = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, (tmp_path / "block.log").read_text(errors="replace")[-2000:]


def test_the_stages_table_depth_1_prints_are_names_check_and_explain_read() -> None:
    # VGG-16's stage3 (Simonyan & Zisserman 2014, Table 1 column D): three 3x3 convs 128 -> 256 -> 256 -> 256, then pool3
    stage3 = (128 * 9 * 256 + 256) + 2 * (256 * 9 * 256 + 256)  # 1,475,328
    vgg = str(SPECS / "vgg16.json")
    out = cli("explain", vgg, "stage3").out
    assert out.startswith("stage3 (stage, 7 layers) in VGG-16") and _step(out, "params")[1] == f"= {stage3:,} (1.48M)"
    r = cli("check", vgg, f"stage3.params={stage3}", "stage3.output=256x28x28", "head.params=123,642,856")
    assert r.code == 0 and "stage stage3: the sum over its 7 layers" in r.out
    # ResNet-50's stem: the 7x7 conv from 3 to 64 channels without bias, and its batch norm
    assert cli("check", RESNET50, f"stem.params={3 * 64 * 7 * 7 + 2 * 64}").code == 0


def test_check_sums_a_block_by_its_copies_and_writes_bytes_as_bytes() -> None:
    out = cli("check", RESNET50, "layer1.params=216K").out
    assert "        layer1.0 75.0K + layer1.1 70.4K + layer1.2 70.4K" in out  # as explain sums it
    out = cli("check", ALEXNET, "conv1.memory=784KB").out
    assert out.startswith("correct conv1.memory=784KB: exact 802,816 B (784 KiB)")  # 64*56*56*4 bytes


def test_latex_captions_and_notes_use_latex_quotes() -> None:
    out = cli("table", ALEXNET, "--format", "latex").out
    assert r"\caption{AlexNet (Krizhevsky et al. 2012): input 3$\times$227$\times$227, MACs by the `lecture' convention" in out
    assert "'lecture'" not in out
    assert r"RF and stride `whole': every output" in cli("table", ALEXNET_2012, "--format", "latex").out


def test_every_human_output_of_a_symbolic_spec_writes_powers_with_a_caret() -> None:
    lm = str(SPECS / "transformer_lm.json")
    for args in (("table", lm), ("table", lm, "--format", "markdown"), ("explain", lm, "total"), ("explain", lm, "transformer.h"),
                 ("compare", lm, str(SPECS / "gpt2.json")), ("inference", lm), ("diagram", lm, "--format", "dot")):
        out = cli(*args).out
        power = "\\*\\*" if "markdown" in args else "**"  # (Markdown escapes a formula's '*'; its bold totals are **...**)
        assert power not in out and "^2" in out, args
