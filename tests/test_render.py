"""Golden outputs for every table format (regenerate with ARCHCALC_REGEN=1 after a deliberate change)."""

from __future__ import annotations

import csv
import io
import json
import os
import re

import pytest
from conftest import ROOT, SPECS, cli

from archcalc import analyze
from archcalc.render import FORMATS, render

GOLDEN = ROOT / "tests" / "golden"
EXT = {"text": "txt", "markdown": "md", "latex": "tex", "csv": "csv", "json": "json", "html": "html"}
CASES = {
    "alexnet": ["table", str(SPECS / "alexnet.json")],
    "three3x3": ["quick", "CxHxW", "conv C 3 p1 bias=false", "conv C 3 p1 bias=false", "conv C 3 p1 bias=false"],
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, fmt: str) -> None:
    r = cli(*CASES[case], "--format", fmt)
    assert r.code == 0, r.err
    out = r.out
    if fmt == "html":  # the page's diagram is Graphviz's layout (its version's): tests/test_diagram.py checks it
        out, n = re.subn(r'<figure id="diagram">.*?</figure>|<p class="note" id="no-diagram">.*?</p>', "<!-- diagram -->", out, flags=re.S)
        assert n == 1
    path = GOLDEN / f"{case}.{EXT[fmt]}"
    if os.environ.get("ARCHCALC_REGEN"):
        path.write_text(out)
    assert out == path.read_text(), f"{path} differs: rerun with ARCHCALC_REGEN=1 if the change is intended"


def test_csv_and_json_are_exact_integers() -> None:
    rep = analyze(SPECS / "alexnet.json")
    rows = list(csv.DictReader(io.StringIO(render(rep, "csv"))))
    assert rows[-1]["name"] == "total" and int(rows[-1]["params"]) == 61_100_840
    assert int(rows[0]["macs"]) == 72_855_552
    data = json.loads(render(rep, "json"))
    assert all(type(layer["params"]) is int and type(layer["macs"]) is int for layer in data["layers"])


def test_json_contract_keys() -> None:
    data = json.loads(render(analyze(SPECS / "alexnet.json"), "json"))
    assert {"name", "input_shape", "convention", "dtype", "layers", "totals"} <= set(data)
    for layer in data["layers"]:
        assert {
            "name",
            "type",
            "inputs",
            "output_shape",
            "params",
            "macs",
            "flops",
            "activation_bytes",
            "receptive_field",
            "effective_stride",
            "convention",
        } <= set(layer)
    assert set(data["totals"]) == {"params", "macs", "flops", "activation_bytes"}


def test_symbolic_json_reads_back_with_sympy() -> None:
    import sympy

    data = json.loads(cli(*CASES["three3x3"], "--format", "json").out)
    C = sympy.Symbol("C", integer=True, positive=True)
    assert sympy.sympify(data["totals"]["params"], locals={"C": C}) == 27 * C**2


def test_latex_is_booktabs_with_symbols_typeset() -> None:
    tex = cli(*CASES["three3x3"], "--format", "latex").out
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert "$27 C^{2}$" in tex


def test_output_file_is_written_atomically(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "alexnet.tex"
    r = cli("table", str(SPECS / "alexnet.json"), "--format", "latex", "-o", str(out))
    assert r.code == 0 and r.out == ""
    assert out.read_text() == render(analyze(SPECS / "alexnet.json"), "latex")
    assert [p.name for p in tmp_path.iterdir()] == ["alexnet.tex"]


def test_report_shows_itself_in_jupyter() -> None:
    rep = analyze(SPECS / "alexnet.json")
    assert rep._repr_html_().startswith("<table>") and "conv1" in rep._repr_html_()
    assert "| conv1 " in rep._repr_markdown_()


def test_symbolic_dims_are_bracketed_so_the_shape_reads_unambiguously() -> None:
    # floor((H - 1)/2) + 1 must not read as "... + 1×floor(...)" next to the '×' of the shape
    text = cli("quick", "3xHxW", "conv 8 3 s2 p1", "--format", "text").out
    assert "8×(floor(H/2 - 1/2) + 1)×(floor(W/2 - 1/2) + 1)" in text
    tex = cli("quick", "3xHxW", "conv 8 3 s2 p1", "--format", "latex").out
    assert r"8 \times \left(\left\lfloor" in tex


def test_csv_symbolic_shapes_read_back() -> None:
    # AlexNet conv1 on 3xHxW: (H + 2*2 - 11)//4 + 1 rows; each 'x'-separated part must read back on its own
    import sympy

    out = cli("table", str(SPECS / "alexnet.json"), "--input", "3,H,W", "--format", "csv").out
    row = next(csv.DictReader(io.StringIO(out)))
    assert row["output_shape"] == "64x(floor(H/4 - 7/4) + 1)x(floor(W/4 - 7/4) + 1)"
    H = sympy.Symbol("H", integer=True, positive=True)
    parts = [sympy.sympify(p, locals={"H": H}) for p in row["output_shape"].split(")x(")[0].split("x(")]
    assert parts[0] == 64 and all(parts[1].subs(H, h) == (h + 4 - 11) // 4 + 1 for h in range(11, 300))


def test_json_lists_its_symbols_for_reading_back() -> None:
    # I, E and S are sympy names (the imaginary unit, Euler's number, the singleton registry), N a
    # function: plain sympify would misread them; with the report's symbols as locals, every value reads back
    import sympy

    doc = json.loads(cli("quick", "IxExS", "conv I 3 p1", "--batch", "N", "--format", "json").out)
    assert doc["symbols"] == ["E", "I", "N", "S"]
    loc = {s: sympy.Symbol(s) for s in doc["symbols"]}
    i, e, s, n = (loc[k] for k in "IESN")
    params = sympy.sympify(doc["totals"]["params"], locals=loc)
    assert sympy.expand(params - (i * i * 9 + i)) == 0  # I filters of I x 3 x 3, plus I biases
    assert sympy.expand(sympy.sympify(doc["totals"]["macs"], locals=loc) - 9 * i * i * e * s * n) == 0
    assert json.loads(cli("table", str(SPECS / "alexnet.json"), "--format", "json").out)["symbols"] == []


@pytest.mark.parametrize("fmt", ["markdown", "html", "latex"])
def test_every_table_format_carries_the_notes_and_the_training_only_legend(fmt: str) -> None:
    googlenet = cli("table", str(SPECS / "googlenet.json"), "--format", fmt).out
    assert "(train) rows are training-only (auxiliary heads) and are not in the totals." in googlenet
    conv1d = cli("table", str(SPECS / "conv1d_text.json"), "--format", fmt).out
    assert "cat: misaligned paths on axis 0" in conv1d


def test_markdown_escapes_table_breaking_characters() -> None:
    out = cli("quick", "3x8x8", '{"name": "a|b", "type": "relu"}', "--format", "markdown").out
    assert "| a\\|b " in out  # one cell, not two


def test_markdown_rows_escape_html_code_and_links_as_the_caption_does(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # review s7 #18: the row went out as raw HTML and a lone backtick opened a code span
    layers = [
        {"name": "<script>alert(1)</script>", "type": "relu"},
        {"name": "x*y`z", "type": "relu"},
        {"name": "[a](http://x)", "type": "relu"},
    ]
    path = tmp_path / "h.json"
    path.write_text(json.dumps({"name": "h", "title": "T<le>", "input": [4], "layers": layers}))
    out = cli("table", str(path), "--format", "markdown").out
    assert "*T\\<le\\>: input 4," in out  # the caption, as before
    assert "| \\<script\\>alert(1)\\</script\\> " in out and "<script>" not in out
    assert "| x\\*y\\`z " in out and "| \\[a\\](http://x) " in out


def test_csv_inputs_quote_a_name_with_a_space(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # review s7 #19: ["a b", "c"] and ["a", "b", "c"] both printed 'a b c'
    conv = {"type": "conv2d", "out_channels": 2, "kernel_size": 1, "inputs": ["input"]}
    layers = [{**conv, "name": n} for n in ("a b", "c", "a", "b")]
    layers += [{"name": "cat1", "type": "concat", "inputs": ["a b", "c"]}, {"name": "cat2", "type": "concat", "inputs": ["a", "b", "c"]}]
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "s", "input": [2, 4, 4], "layers": layers}))
    rows = {row[0]: row for row in csv.reader(io.StringIO(cli("table", str(path), "--format", "csv").out))}
    import shlex

    assert rows["cat1"][2] == "'a b' c" and shlex.split(rows["cat1"][2]) == ["a b", "c"]
    assert rows["cat2"][2] == "a b c" and shlex.split(rows["cat2"][2]) == ["a", "b", "c"]
    # concat of 2 + 2 channels = 4, of 2 + 2 + 2 = 6: the two wirings differ
    assert rows["cat1"][3] == "4x4x4" and rows["cat2"][3] == "6x4x4"


def _tabulate_text_table(rep: object) -> tuple[str, str]:
    """(archcalc's text table, tabulate's "simple" table) of the same cells."""
    from tabulate import tabulate

    from archcalc.render import HEADERS, TEXT_ALIGN, _cells, _totals_cells, simple_table, units

    body = [_cells(r, units.count, units.size, "\u00d7") for r in rep.rows]  # type: ignore[attr-defined]
    body.append(_totals_cells(rep, units.count, units.size))  # type: ignore[arg-type]
    return simple_table(body, HEADERS, TEXT_ALIGN), tabulate(body, HEADERS, tablefmt="simple", colalign=TEXT_ALIGN)


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.json")), ids=lambda p: p.stem)
def test_text_table_is_tabulates_layout(path: object) -> None:
    """The text table is laid out without tabulate (whose number sniffing took 23 s on 100,000
    layers), byte for byte as tabulate's "simple" table lays it out, on every zoo network."""
    ours, theirs = _tabulate_text_table(analyze(path))  # type: ignore[arg-type]
    assert ours == theirs


@pytest.mark.parametrize("name", ["alexnet", "resnet18", "lenet5"])
def test_text_table_is_tabulates_layout_with_symbols(name: str) -> None:
    ours, theirs = _tabulate_text_table(analyze(SPECS / f"{name}.json", input_shape=["C", "H", "W"]))
    assert ours == theirs


def test_csv_says_which_rows_see_the_whole_input() -> None:
    """The tables' 'whole' (Row.whole_input, JSON's sees_whole_input) is CSV's last column, 1 or 0,
    so a plot made from the CSV can tell fc6 (no window on the image) from pool5 (a 195x195 window).
    It comes last: every column a CSV reader had before keeps its place."""
    rows = list(csv.reader(io.StringIO(cli("table", str(SPECS / "alexnet_2012.json"), "--format", "csv").out)))  # (224: every pixel read)
    head, body = rows[0], {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    before = "name type inputs output_shape params macs flops activation_bytes receptive_field effective_stride training_only convention"
    assert head[:12] == before.split()
    assert head[-1] == "sees_whole_input"
    assert body["pool5"]["sees_whole_input"] == "0" and body["pool5"]["receptive_field"] == "195x195"
    assert [body[n]["sees_whole_input"] for n in ("flatten", "fc6", "relu7", "fc8")] == ["1"] * 4
    assert body["total"]["sees_whole_input"] == ""
    # where a block repeats a symbolic number of times, 'repeat' keeps its place before it
    lm = list(csv.reader(io.StringIO(cli("table", str(SPECS / "transformer_lm.json"), "--format", "csv").out)))
    assert lm[0][-2:] == ["repeat", "sees_whole_input"]
    vit = {r[0]: r for r in csv.reader(io.StringIO(cli("table", str(SPECS / "vit_b_16.json"), "--format", "csv").out))}
    assert vit["conv_proj"][-1] == "0"  # a 16x16 patch
    assert vit["encoder.layers.encoder_layer.0.self_attention"][-1] == "1"  # attention mixes every patch


def test_the_printers_memory_changes_no_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    """Formulas are printed once each, and a sum, product or function once per process (review s7
    #16: a symbolic DenseNet-121 table spent 2.3 s of CPU sorting the same terms again): the text
    is the one a fresh printer gives."""
    from archcalc import dims

    rep = analyze(SPECS / "efficientnet_b0.json", input_shape=("3", "H", "W"))
    remembered = rep.render("text")
    monkeypatch.setattr(dims, "_printed", lambda v: str(type(dims._printer())().doprint(v)))  # a new printer per formula
    assert rep.render("text") == remembered
