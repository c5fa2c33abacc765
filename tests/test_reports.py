"""The committed reports/ gallery is current, and its LaTeX compiles with a real LaTeX."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

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
    reports = [(spec.stem, analyze(spec)) for spec in ZOO]
    for name, rep in reports:  # a symbolic spec (transformer_lm) gets tables only
        assert rep.symbolic or (REPORTS / f"{name}.png").stat().st_size > 10_000, "each numeric spec has its plot"
    assert (REPORTS / "index.md").read_text() == index_markdown(reports, plots=[not rep.symbolic for _, rep in reports])


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


def _gallery(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_full_disk_leaves_the_previous_gallery_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Path.write_text once replaced a good report with a truncated one on a full disk and left a 0-byte .tex.
    # The disk fills while the new gallery's 7th file is written: no file, old or index, may change.
    out = tmp_path / "rep"
    assert cli("reports", str(ROOT / "specs" / "lenet5.json"), "-o", str(out), "--no-plots").code == 0
    before = _gallery(out)
    real_write, calls = os.write, []

    def full_disk(fd: int, data: Any) -> int:
        calls.append(fd)
        if len(calls) == 7:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    specs = [str(ROOT / "specs" / n) for n in ("alexnet.json", "lenet5.json")]  # 2 x 4 tables + the index: 9 files
    r = cli("reports", *specs, "-o", str(out), "--no-plots", "--convention", "fvcore")
    monkeypatch.undo()
    assert len(calls) == 7
    assert r.code == 2 and r.err.count("\n") == 1 and "No space left on device" in r.err, r.err
    assert _gallery(out) == before  # no new file, no temp file, the old tables and index byte for byte


def test_reports_write_the_index_last_and_only_after_every_file_is_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("sync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("rename " + Path(b).name), real_replace(a, b))[1])
    assert cli("reports", str(ROOT / "specs" / "lenet5.json"), "-o", str(tmp_path), "--no-plots").code == 0
    monkeypatch.undo()
    files = [f"lenet5.{ext}" for ext in TABLES] + ["index.md"]
    # each file synced, then the renames in order with the index last, then the folder synced (the renames on disk)
    assert events == ["sync"] * len(files) + [f"rename {f}" for f in files] + ["sync"], events


def test_reports_onto_a_file_is_one_line_exit_2(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    r = cli("reports", str(ROOT / "specs" / "lenet5.json"), "-o", str(target), "--no-plots")
    assert r.code == 2 and r.err == f"archcalc: error: field '--output': {target} exists and is not a folder\n", r.err
    assert target.read_text() == "keep me\n"


def test_reports_into_a_read_only_folder_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the folder refuse as the kernel does for everyone else
        import tempfile

        def refuse(*args: Any, dir: str | None = None, **kw: Any) -> Any:
            if dir is not None and Path(dir) == folder:
                raise PermissionError(errno.EACCES, "Permission denied")
            return real_mkstemp(*args, dir=dir, **kw)

        real_mkstemp = tempfile.mkstemp
        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    try:
        r = cli("reports", str(ROOT / "specs" / "lenet5.json"), "-o", str(folder), "--no-plots")
    finally:
        folder.chmod(0o755)
    assert r.code == 2 and r.err == f"archcalc: error: field '--output': cannot write {folder / 'lenet5.md'}: Permission denied\n", r.err
    assert list(folder.iterdir()) == []
