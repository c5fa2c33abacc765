"""The committed reports/ gallery is current, and its LaTeX compiles with a real LaTeX."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, ZOO, cli

from archcalc import analyze
from archcalc.reports import TABLES, generate, index_markdown

REPORTS = ROOT / "reports"


def test_committed_reports_are_current(tmp_path: Path) -> None:
    """Regenerate the text reports and compare byte for byte (PNGs are made by the same command)."""
    generate(ZOO, tmp_path, plots=False)
    for spec in ZOO:
        for ext in TABLES:
            fresh = (tmp_path / f"{spec.stem}.{ext}").read_text()
            committed = REPORTS / f"{spec.stem}.{ext}"
            assert committed.exists(), f"{committed} missing: run `archcalc reports specs/*.json -o reports/`"
            assert committed.read_text() == fresh, f"{committed} is stale: run `archcalc reports specs/*.json -o reports/`"
        assert (REPORTS / f"{spec.stem}.png").stat().st_size > 10_000, "each spec has its plot"
    reports = [(spec.stem, analyze(spec)) for spec in ZOO]
    assert (REPORTS / "index.md").read_text() == index_markdown(reports, plots=True)


def test_plots_are_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    r = cli("reports", str(ROOT / "specs" / "lenet5.json"), "-o", str(tmp_path))
    assert r.code == 0, r.err
    png = (tmp_path / "lenet5.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


LATEX_DOC = r"""\documentclass{article}
\usepackage[margin=1cm,landscape]{geometry}
\usepackage{booktabs}
\usepackage{amsmath}
\begin{document}
%s
\end{document}
"""


@pytest.mark.parametrize("source", ["table", "explain"])
def test_latex_compiles(tmp_path: Path, source: str) -> None:
    if shutil.which("pdflatex") is None:
        if os.environ.get("ARCHCALC_REQUIRE_LATEX"):  # set by .ci/run, which installs TeX: no silent skip there
            pytest.fail("pdflatex is required here but not installed")
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-recommended)")
    if source == "table":
        body = "".join(  # with notes and the training-only legend under the tables
            [(REPORTS / f"{n}.tex").read_text() for n in ("alexnet", "googlenet", "conv1d_text")]
        ) + cli("quick", "CxHxW", "conv C 3 p1", "conv C 3 p1", "--format", "latex").out
    else:
        body = "".join(  # the lecture's conv1, an up-convolution's exact RF lines, paths meeting, a ceil-mode pool
            cli("explain", *args, "--format", "latex").out
            for args in (
                (str(ROOT / "specs" / "alexnet.json"), "conv1"),
                (str(ROOT / "specs" / "unet.json"), "up4"),
                (str(ROOT / "specs" / "unet.json"), "updouble4.conv1"),
                (str(ROOT / "specs" / "resnet50.json"), "layer1.0.add"),
                ("--stack", "3x9x9", "maxpool 2 s2 ceil_mode=true"),
                ("--stack", "Cx(2*H)x(2*W)", "conv C 3 p1 bias=false"),  # the lecture's VGG stage algebra, symbols set as math
            )
        )
    (tmp_path / "doc.tex").write_text(LATEX_DOC % body)
    p = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_latex_explanations_are_plain_ascii() -> None:
    # pdflatex stops at a raw Unicode sign (the ceil-mode line's U+2308 once did): every explained
    # layer of these specs, which between them use all 27 layer types of the zoo, is ASCII in LaTeX
    from archcalc.explain import explain_layer, render_explanation
    from archcalc.graph import compile_graph
    from archcalc.report import report_from_graph
    from archcalc.spec import load_spec

    seen = set()
    for name in ("se_resnet50", "conv1d_text", "c3d", "resnet20", "shufflenet_v2_x1_0", "unet", "alexnet_2012", "lenet5", "mobilenet_v2"):
        G = compile_graph(load_spec(ROOT / "specs" / f"{name}.json"))
        for row in report_from_graph(G).rows:
            text = render_explanation(explain_layer(G, row.name), "latex")
            assert text.isascii(), (name, row.name, sorted({c for c in text if not c.isascii()}))
            seen.add(row.type)
    assert len(seen) == 27, sorted(seen)


def test_reports_refuse_a_bad_spec_before_writing_anything(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "k", "input": [3, 8, 8], "layers": [{"name": "c1", "type": "conv2d", "out_channels": 4, "kernel_size": 11}]}')
    out = tmp_path / "rep"
    r = cli("reports", str(ROOT / "specs" / "alexnet.json"), str(bad), "-o", str(out), "--no-plots")
    assert r.code == 2 and r.err.startswith(f"archcalc: error: {bad}: layer 'c1': field 'kernel_size'"), r.err
    assert not out.exists()  # the good spec's tables are not half a gallery


def test_reports_of_a_symbolic_spec_are_tables_only(tmp_path: Path) -> None:
    sym = tmp_path / "sym.json"
    layer = '{"name": "c", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}'
    sym.write_text(f'{{"name": "sym", "input": [3, "H", "W"], "layers": [{layer}]}}')
    r = cli("reports", str(sym), "-o", str(tmp_path / "rep"))
    assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == ["index.md", "sym.csv", "sym.json", "sym.md", "sym.tex"]  # no plot
    assert "216\\*" in (tmp_path / "rep" / "index.md").read_text()  # 8*3*9 MACs per output position, markdown-escaped


def test_reports_refuse_two_specs_writing_the_same_files(tmp_path: Path) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "net.json").write_text((ROOT / "specs" / "lenet5.json").read_text())
    r = cli("reports", str(tmp_path / "a" / "net.json"), str(tmp_path / "b" / "net.json"), "-o", str(tmp_path / "rep"), "--no-plots")
    assert r.code == 2 and "would both write net.*" in r.err and not (tmp_path / "rep").exists()
