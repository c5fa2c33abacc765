"""Findings of a hostile-user review of the CLI (review 1), each checked as the user met it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import SPECS, cli

ALEXNET = str(SPECS / "alexnet.json")
RESNET18 = str(SPECS / "resnet18.json")
LM = str(SPECS / "transformer_lm.json")

# every kind of explain target: a layer, a block call, a stage of table --depth 1, a numeric total
# (and one of its quantities), a symbolic total
EXPLAIN_TARGETS = [
    (ALEXNET, "conv1"),
    (RESNET18, "layer1"),
    (ALEXNET, "stage2"),
    (ALEXNET, "total"),
    (ALEXNET, "total.params"),
    (LM, "total"),
]


@pytest.mark.parametrize(("spec", "target"), EXPLAIN_TARGETS, ids=[f"{Path(s).stem}-{t}" for s, t in EXPLAIN_TARGETS])
def test_every_explain_target_renders_in_the_format_asked(spec: str, target: str) -> None:
    """explain SPEC total --format latex printed the text output (review 1, finding 2)."""
    text = cli("explain", spec, target)
    md = cli("explain", spec, target, "--format", "markdown")
    tex = cli("explain", spec, target, "--format", "latex")
    assert text.code == md.code == tex.code == 0, text.err + md.err + tex.err
    assert md.out.startswith("**") and "|---" in md.out  # a bold heading and a table
    assert tex.out.startswith("\\noindent ") and "\\begin{" in tex.out and "|---" not in tex.out
    assert "\\begin{" not in text.out and "|---" not in text.out


def test_explain_total_in_markdown_and_latex_keeps_the_numbers() -> None:
    """The same rows and shares in every format: conv2's FLOPs, 31.2% of AlexNet's."""
    conv2 = 2 * (192 * 27 * 27) * (64 * 5 * 5)  # 192 filters of 64x5x5 over 27x27 (torchvision's AlexNet), 2 FLOPs a MAC
    total = 1_435_124_224
    share = f"{100 * conv2 / total:.1f}%"
    assert share == "31.2%"
    md = cli("explain", ALEXNET, "total", "--format", "markdown").out
    assert f"| conv2 | {conv2:,} | {share} |" in md.splitlines()
    tex = cli("explain", ALEXNET, "total", "--format", "latex").out
    assert f"conv2 & ${conv2:,}$ & 31.2\\% \\\\".replace(",", "\\,") in tex.splitlines()
    lm = cli("explain", LM, "total", "--format", "markdown", "--convention", "torch").out
    # Megatron's 24*l*s*h^2: the QKV projection's 6*l*s*h^2 is its first part, l copies of 6*s*h^2
    assert "| `24*l*s*h^2` | `6*l*s*h^2` | transformer.h.\\*.attn.c\\_attn | l copies of `6*s*h^2` |" in lm.splitlines()


def test_explain_total_latex_compiles() -> None:
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed")
    doc = "\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n%s\n%s\\end{document}\n"
    parts = [cli("explain", s, "total", "--format", "latex").out for s in (str(SPECS / "resnet50.json"), LM)]
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        Path(d, "t.tex").write_text(doc % tuple(parts))
        r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=d, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, Path(d, "t.log").read_text(errors="replace")[-2000:]


def test_compare_tells_apart_two_specs_of_the_same_name(tmp_path: Path) -> None:
    """Two edits of lenet5 (both named lenet5) printed 'lenet5 vs lenet5' (review 1, finding 3)."""
    text = (SPECS / "lenet5.json").read_text()
    (tmp_path / "a.json").write_text(text)
    (tmp_path / "b.json").write_text(text.replace('"out_features": 120', '"out_features": 100'))
    r = cli("compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert r.code == 0, r.err
    head = r.out.splitlines()[0].split()
    assert head == ["a.json", "b.json", "b.json", "vs", "a.json"]
    # the same file name in two folders: the paths as given; the same file twice: numbered
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a.json").write_text(text)
    head = cli("compare", str(tmp_path / "a.json"), str(tmp_path / "x" / "a.json")).out.splitlines()[0].split()
    assert head[:2] == [str(tmp_path / "a.json"), str(tmp_path / "x" / "a.json")]
    head = cli("compare", str(tmp_path / "a.json"), str(tmp_path / "a.json"), ALEXNET).out.splitlines()[0].split()
    assert head[:5] == [str(tmp_path / "a.json"), "#1", str(tmp_path / "a.json"), "#2", "alexnet"]  # distinct names stay
