"""Architecture diagrams (archcalc diagram): what is drawn, how it is labelled, escaped and written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SPECS, cli

from archcalc import analyze
from archcalc.diagram import draw, layout, to_dot

HAS_DOT = shutil.which("dot") is not None


def need_dot() -> None:
    """Graphviz is installed by .ci/run, which sets ARCHCALC_REQUIRE_GRAPHVIZ: no silent skip there."""
    if not HAS_DOT:
        if os.environ.get("ARCHCALC_REQUIRE_GRAPHVIZ"):
            pytest.fail("Graphviz's dot is required here but not installed")
        pytest.skip("Graphviz not installed (apt-get install graphviz)")
    pytest.importorskip("graphviz")


def labels(dot: str) -> dict[str, str]:
    """node id -> its label's text, tags dropped."""
    out = {}
    for m in re.finditer(r"^\s*(n\d+) \[.*label=<(.*)>\];$", dot, re.M):
        out[m.group(1)] = re.sub(r"(<[^>]+>)+", "|", m.group(2)).strip("|")
    return out


def test_googlenet_shows_nine_inception_modules_with_four_branches_and_their_costs() -> None:
    rep = analyze(SPECS / "googlenet.json")
    lay = layout(rep)
    assert len(rep.rows) == 158 and lay.depth == 1  # over 60 layers: collapsed
    modules = [c for c in lay.clusters if c.startswith("inception_")]
    assert [m.removeprefix("inception_") for m in modules] == ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]  # Table 1
    for m in modules:
        titles = [u.title for u in lay.units if u.cluster == m]
        assert titles == ["1x1", "3x3_reduce \u2192 3x3", "5x5_reduce \u2192 5x5", "pool \u2192 pool_proj", "output"]
    # inception (3a) on 192x28x28 (Table 1): each branch's MACs, output positions x weights per position
    branch = {u.title: u for u in lay.units if u.cluster == "inception_3a"}
    hw = 28 * 28
    assert branch["1x1"].values["macs"] == hw * 192 * 64
    assert branch["3x3_reduce \u2192 3x3"].values["macs"] == hw * 192 * 96 + hw * 96 * 128 * 9
    assert branch["5x5_reduce \u2192 5x5"].values["macs"] == hw * 192 * 16 + hw * 16 * 32 * 25
    assert branch["pool \u2192 pool_proj"].values["macs"] == hw * 192 * 9 + hw * 192 * 32  # max pool 3x3 counted as its window
    dot = to_dot(rep)
    text = labels(dot)
    three = next(k for k, v in text.items() if v.startswith("3x3_reduce \u2192 3x3|"))
    assert "128\u00d728\u00d728" in text[three] and "101M MACs" in text[three]  # 14,450,688 + 86,704,128 = 101,154,816, in three significant digits
    # the concat reads its four branches: four edges into each module's output, each with its tensor's shape
    out3a = next(u.id for u in lay.units if u.cluster == "inception_3a" and u.title == "output")
    into = re.findall(rf"^\s*(n\d+) -> {out3a} \[label=<([^>]*)>\];$", dot, re.M)
    assert sorted(shape for _, shape in into) == sorted(["64\u00d728\u00d728", "128\u00d728\u00d728", "32\u00d728\u00d728", "32\u00d728\u00d728"])


def test_resnet152_default_diagram_is_stem_stages_and_head() -> None:
    rep = analyze(SPECS / "resnet152.json")
    lay = layout(rep)
    assert len(lay.units) == 11  # the bound: at most about 60 nodes
    assert [u.title for u in lay.units][4:8] == ["layer1 \u00d73", "layer2 \u00d78", "layer3 \u00d736", "layer4 \u00d73"]  # Table 1
    layer3 = lay.units[6]
    assert layer3.kind == "block \u00d736, 397 layers"  # 12 + 35 x 11 layers (one projection)
    assert layer3.output.output_shape == (1024, 14, 14)
    # --depth 2 opens the calls: each bottleneck a box with its branches (main path, shortcut, add and relu)
    opened = layout(rep, 2)
    assert len(opened.clusters) == 3 + 8 + 36 + 3
    assert [u.title for u in opened.units if u.cluster == "layer1.1"] == ["conv1 \u2192 conv2 \u2192 conv3", "shortcut", "add \u2192 relu3"]
    assert len(layout(rep, 3).units) == len(rep.rows)  # past the deepest block: every layer


def test_small_network_draws_every_layer_with_shapes_on_the_edges() -> None:
    rep = analyze(SPECS / "alexnet.json")
    lay = layout(rep)
    assert lay.depth is None and [u.title for u in lay.units] == [r.name for r in rep.rows]
    dot = to_dot(rep)
    assert re.search(r"^\s*input -> n0 \[label=<3\u00d7227\u00d7227>\];$", dot, re.M)
    assert re.search(r"^\s*n0 -> n1 \[label=<64\u00d756\u00d756>\];$", dot, re.M)  # conv1's output: (227 + 2*2 - 11)//4 + 1 = 56
    conv1 = labels(dot)["n0"]
    assert conv1 == "conv1|conv2d|64\u00d756\u00d756|72.9M MACs"  # 56*56*64 * 3*11*11 = 72,855,552, in three significant digits


def test_residual_adds_dense_concats_and_unet_skips_are_drawn_as_they_are() -> None:
    unet = analyze(SPECS / "unet.json")
    dot = to_dot(unet)
    lay = layout(unet)
    ids = {r.name: u.id for u in lay.units for r in u.rows}
    cats = [r for r in unet.rows if r.type == "concat"]
    assert len(cats) == 4  # Ronneberger et al. 2015, Fig. 1: four skip connections
    for cat in cats:  # each concat drawn with an edge from the encoder layer it reads
        for src in cat.inputs:
            assert re.search(rf"^\s*{ids[src]} -> {ids[cat.name]} \[", dot, re.M), (src, cat.name)
    r18 = layout(analyze(SPECS / "resnet18.json"), 2)
    add = next(u for u in r18.units if u.cluster == "layer1.0" and u.title == "add \u2192 relu2")
    assert len(add.inputs) == 2  # the residual path and the shortcut meet


def test_training_only_heads_are_dashed() -> None:
    rep = analyze(SPECS / "googlenet.json")
    lay = layout(rep)
    aux = [u for u in lay.units if u.title in ("aux1", "aux2")]
    assert len(aux) == 2 and all(u.training_only for u in aux)
    dot = to_dot(rep)
    for u in aux:
        assert re.search(rf'^\s*{u.id} \[.*style="rounded,filled,dashed"', dot, re.M)
        assert re.search(rf"^\s*n\d+ -> {u.id} \[.*style=dashed\];$", dot, re.M)
    assert "dashed: training-only, not in the totals" in dot
    counted = cli("diagram", str(SPECS / "googlenet.json"), "--format", "dot", "--include-training-only").out
    assert "dashed: training-only;" in counted and "not in the totals" not in counted  # counted when asked for


def test_symbolic_values_are_written_as_formulas() -> None:
    r = cli("diagram", "--stack", "CxHxW", "conv C 3 p1 bias=false", "--format", "dot")
    assert r.code == 0, r.err
    # C filters of C x 3 x 3 at every one of H*W positions: 9*C^2*H*W MACs, left unfilled (no number to colour)
    assert "9*C^2*H*W MACs" in r.out and "C\u00d7H\u00d7W" in r.out
    assert 'fillcolor="white"' in r.out


@pytest.mark.parametrize("color,unit", [("params", "params"), ("memory", "memory"), ("none", "MACs")])
def test_color_choices(color: str, unit: str) -> None:
    r = cli("diagram", str(SPECS / "lenet5.json"), "--format", "dot", "--color", color)
    assert r.code == 0, r.err
    assert unit in labels(r.out)["n0"]
    if color == "none":
        assert 'fillcolor="#' not in r.out


def test_hostile_names_are_text(spec_file) -> None:  # type: ignore[no-untyped-def]
    need_dot()
    name = '</b>"><script>alert(1)</script>\\N\\G&amp;\n]; x -> y'
    import json

    layers = [
        {"name": name, "type": "conv2d", "out_channels": 4, "kernel_size": 3},
        {"name": "tail\\", "type": "relu"},
        {"name": '\\"', "type": "relu"},
    ]
    spec = {"name": 'evil"<net>', "input": [3, 8, 8], "layers": layers}
    path = spec_file(json.dumps(spec))
    r = cli("diagram", str(path), "--format", "dot")
    assert r.code == 0, r.err
    svg = draw(r.out, "svg").decode()
    assert "<script" not in svg and "alert(1)" in svg  # the name is text in the picture, not markup
    assert "&lt;/script&gt;" in svg and "\\N\\G" in svg  # Graphviz's \N and \G escapes not expanded
    assert svg.count('<g id="n0"') == svg.count('<g id="n1"') == svg.count('<g id="n2"') == 1  # no name broke out of its label
    assert 'xlink:title="tail\\"' in svg and 'xlink:title="\\&quot;"' in svg  # tooltips: a trailing backslash, a quote


def test_output_formats_and_determinism(tmp_path: Path) -> None:
    need_dot()
    spec = str(SPECS / "googlenet.json")
    for ext, magic in (("svg", b"<?xml"), ("pdf", b"%PDF"), ("png", b"\x89PNG"), ("dot", b"digraph")):
        out = tmp_path / f"g.{ext}"
        r = cli("diagram", spec, "-o", str(out))
        assert r.code == 0 and r.out == "", r.err
        assert out.read_bytes().startswith(magic)
    first = (tmp_path / "g.svg").read_bytes()
    cli("diagram", spec, "-o", str(tmp_path / "g.svg"))
    assert (tmp_path / "g.svg").read_bytes() == first  # byte for byte: the gallery's staleness check relies on it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.dot", "g.pdf", "g.png", "g.svg"]  # no temp files left


def test_without_graphviz_one_line_and_exit_2_but_dot_still_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("graphviz")
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on it
    r = cli("diagram", str(SPECS / "alexnet.json"), "-o", str(tmp_path / "a.svg"))
    assert r.code == 2 and r.err.count("\n") == 1 and "apt-get install graphviz" in r.err, r.err
    assert not (tmp_path / "a.svg").exists()
    r = cli("diagram", str(SPECS / "alexnet.json"), "-o", str(tmp_path / "a.dot"))
    assert r.code == 0 and (tmp_path / "a.dot").read_text().startswith("digraph archcalc {")
    r = cli("reports", str(SPECS / "lenet5.json"), "-o", str(tmp_path / "rep"), "--no-plots")
    assert r.code == 2 and "--no-diagrams" in r.err and not (tmp_path / "rep").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["-o", "net.jpg"], "a diagram is written as .svg, .pdf, .png or .dot"),
        (["--depth", "0"], "--depth: a whole number, 1 or more"),
        (["--rankdir", "BT"], "invalid choice"),
        (["--color", "flops"], "invalid choice"),
    ],
)
def test_bad_options_are_one_line_errors(args: list[str], message: str) -> None:
    r = cli("diagram", str(SPECS / "alexnet.json"), *args)
    assert r.code == 2 and message in r.err and r.err.count("\n") == 1, r.err


def test_pdf_diagram_goes_into_latex(tmp_path: Path) -> None:
    need_dot()
    if shutil.which("pdflatex") is None:
        if os.environ.get("ARCHCALC_REQUIRE_LATEX"):
            pytest.fail("pdflatex is required here but not installed")
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-recommended)")
    assert cli("diagram", str(SPECS / "resnet152.json"), "-o", str(tmp_path / "resnet152.pdf")).code == 0
    (tmp_path / "slide.tex").write_text(
        "\\documentclass{article}\\usepackage{graphicx}\\begin{document}\\includegraphics[height=0.9\\textheight]{resnet152.pdf}\\end{document}\n"
    )
    p = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "slide.tex"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stdout[-2000:]
    assert (tmp_path / "slide.pdf").stat().st_size > 5000
