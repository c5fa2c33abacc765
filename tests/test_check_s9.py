"""Fixes from review s9 (/work/notes/review-s9.md, findings 4, 5, 7, 9, 10, 12): what archcalc
accepts it can judge, and what it prints it can read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli, write_json

# ----- 4. an add or concat whose input sizes agree only for some values of a symbol ------------------
# a: kernel k, padding k//2: H + 2*(k//2) - k + 1, which is H for odd k and H + 1 for even k;
# b: 3x3, padding 1: H.  torch.cat raises for even k, so the network runs for odd k only.
BRANCHES = {"name": "br", "input": [4, "H", "W"], "layers": [
    {"name": "a", "type": "conv2d", "out_channels": 4, "kernel_size": "k", "padding": "k//2", "inputs": ["input"]},
    {"name": "b", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "inputs": ["input"]},
    {"name": "add", "type": "concat", "inputs": ["a", "b"], "dim": 1}]}


_write = write_json


def test_a_concat_of_sizes_equal_for_odd_k_only_states_the_assumption(tmp_path: Path) -> None:
    path = _write(tmp_path, BRANCHES)
    table = json.loads(cli("table", path, "--format", "json").out)
    note = table["layers"][2]["note"]
    assert "assumes a and b agree (H - k + 2*floor(k/2) + 1 = H and W - k + 2*floor(k/2) + 1 = W; not so at k=2)" in note
    assert "check judges claims where it holds" in note


def test_check_judges_a_merged_shape_where_the_network_runs(tmp_path: Path) -> None:
    path = _write(tmp_path, BRANCHES)
    r = cli("check", path, "add.output=(8,H,W)")  # channels 4 + 4 = 8; H, W kept for every odd k (was WRONG "at H=1, k=2")
    assert r.code == 0 and r.out.startswith("correct add.output=(8,H,W)"), r.out
    r = cli("check", path, "add.output=(8,H+1,W)")  # H + 1 is a's size for even k only, where torch.cat raises
    assert r.code == 1 and "they differ at H=1, k=3" in r.out, r.out
    r = cli("check", path, "a.output=(4,H,W)")  # a alone is H only where the network runs, too
    assert r.code == 0, r.out


def test_a_merge_proved_equal_for_every_size_assumes_nothing(tmp_path: Path) -> None:
    # ceil(H/2) (a 1x1 stride-2 shortcut's kernel... written as a 3x3 stride 2 pad 1: floor((H-1)/2) + 1) = ceil(H/2) for every H
    spec = {"name": "eq", "input": [2, "H"], "layers": [
        {"name": "a", "type": "conv1d", "out_channels": 2, "kernel_size": 3, "stride": 2, "padding": 1, "inputs": ["input"]},
        {"name": "b", "type": "conv1d", "out_channels": 2, "kernel_size": 1, "stride": 2, "inputs": ["input"]},
        {"name": "s", "type": "add", "inputs": ["a", "b"]}]}
    row = json.loads(cli("table", _write(tmp_path, spec), "--format", "json").out)["layers"][2]
    assert "assumes" not in (row.get("note") or "")


# ----- 5. a layer's function is checked against its type when the spec is read -------------------


def test_a_function_that_computes_another_layer_type_is_refused_at_load(tmp_path: Path) -> None:
    layers = [{"name": "c1", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "function": "F.relu"}]
    path = _write(tmp_path, {"name": "fn", "input": [3, 16, 16], "layers": layers}, "fn.json")
    for convention in ("ptflops", "thop", "lecture"):  # was 0 MACs for a 8*3*9*16*16 = 55,296-MAC conv under ptflops/thop, exit 0
        r = cli("table", path, "--convention", convention)
        assert r.code == 2 and r.out == "", r.out
        assert r.err.strip() == f"archcalc: error: {path}: layer 'c1': field 'function': F.relu computes a relu layer, not a conv2d", r.err


def test_functions_are_matched_to_types_exactly() -> None:
    from archcalc.functions import function_kind_error

    assert function_kind_error("F.relu", "relu") is None and function_kind_error("Tensor.relu_", "relu") is None
    assert function_kind_error("F.relu", "relu6") == "F.relu computes a relu layer, not a relu6"  # (verify's prefix rule let it pass)
    assert function_kind_error("F.max_pool2d", "relu") == "F.max_pool2d computes a maxpool2d layer, not a relu"
    assert function_kind_error("F.relu", "sigmoid") is not None
    assert function_kind_error("F.batch_norm", "batchnorm2d") is None and function_kind_error("F.batch_norm", "layernorm") is not None
    assert function_kind_error("torch.mul", "layerscale") is None and function_kind_error("operator.add", "scalar") is None
    assert function_kind_error("torch.add", "conv2d") == "torch.add computes 'add' or 'scalar' layers, not a conv2d"
    assert function_kind_error("torch.reshape", "reshape") is None  # (shape functions: not checked)


def test_the_function_table_is_the_importers() -> None:
    pytest.importorskip("torch")
    from archcalc.functions import COMPUTES, FUNCTIONS, split
    from archcalc.torch import ops  # noqa: F401  (registers the handlers)
    from archcalc.torch.registry import RECORDS

    def qualified(f: str) -> str:
        owner, attr = split(f)
        return f"torch.nn.functional.{attr}" if owner == "F" else f

    assert {f: RECORDS[qualified(f)] for f in FUNCTIONS if qualified(f) in RECORDS} == COMPUTES


def test_verify_names_the_file_when_the_spec_cannot_be_built(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    layers = [{"name": "f", "type": "flatten", "function": "torch.flatten", "start_dim": 2}]
    path = _write(tmp_path, {"name": "fn4", "input": [3, 4, 4], "layers": layers}, "fn4.json")
    r = cli("verify", path)
    assert r.code == 2 and r.err.startswith(f"archcalc: error: {path}: layer 'f': field 'function': cannot build a call of torch.flatten"), r.err


# ----- 9. check reads every form archcalc prints: Max/Min/floor/ceiling/Mod -----------------------


def test_a_receptive_field_copied_from_the_output_reads_back(tmp_path: Path) -> None:
    path = _write(tmp_path, BRANCHES)
    # where a k x k path meets a 3x3 one the field is max(k, 3), written k + Max(0, 3 - k) (was "unknown symbol 'Ma'")
    r = cli("check", path, "add.rf=Max(k,3)", "add.rf=k + Max(0, 3 - k)", "add.rf=(k + Max(0, 3 - k))\u00d7(k + Max(0, 3 - k))",
            "add.rf=max(k, 3) x max(k, 3)", "add.rf=Max(k,3)xMax(k,3)")
    assert r.code == 0 and r.out.count("\ncorrect ") + r.out.startswith("correct ") == 5, r.out
    r = cli("check", path, "add.rf=Min(k,3)")  # min(1, 3) = 1, but the field at k=1 is 3
    assert r.code == 1 and "they differ at k=1 (claimed 1, exact 3)" in r.out, r.out
    r = cli("check", path, "a.output=(4, H + 2*floor(k/2) - k + 1, W - k + 2*floor(k/2) + 1)", "b.macs=Mod(k, 2)*0 + 144*H*W")
    assert r.code == 0, r.out  # b: 4 * 4 * 3 * 3 = 144 MACs per pixel


def test_a_function_a_claim_cannot_call_is_named() -> None:
    from archcalc.check import Unreadable, _formula

    with pytest.raises(Unreadable, match=r"uses exp\(\.\.\.\); the functions a claim may use are those archcalc writes"):
        _formula("exp(H)")


# ----- 10. symbol names: none that archcalc writes as a function; an x in a name is no separator ------


def test_a_size_named_like_a_function_archcalc_writes_is_refused(tmp_path: Path) -> None:
    spec = {"name": "fl", "input": [3, "floor", 8], "layers": [{"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2}]}
    path = _write(tmp_path, spec, "fl.json")
    r = cli("table", path, "--format", "json")  # was accepted, and its "324*floor(floor/2 - 3/2) + 324" did not read back
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    assert f"archcalc: error: {path}: field 'input': 'floor' uses the name 'floor', which archcalc's formulas use as a function" in r.err


def test_the_readme_recipe_reads_every_formula_back(tmp_path: Path) -> None:
    import sympy

    # sizes named like sympy's own objects (N a function, E a number, S a singleton registry) and like no function
    spec = {"name": "sy", "input": [3, "N", "E"], "layers": [
        {"name": "c", "type": "conv2d", "out_channels": "S", "kernel_size": 3, "stride": 2},
        {"name": "p", "type": "adaptiveavgpool2d", "output_size": 1}]}
    report = json.loads(cli("table", _write(tmp_path, spec), "--format", "json").out)
    local = {s: sympy.Symbol(s) for s in report["symbols"]}
    n, s = sympy.Symbol("N"), sympy.Symbol("S")
    assert sympy.sympify(report["layers"][0]["params"], locals=local) == 27 * s + s  # 3*3*3 weights and a bias per channel
    for row in report["layers"]:
        for v in (row["macs"], *row["output_shape"]):
            sympy.sympify(str(v), locals=local)  # (each reads back)
    assert sympy.sympify(report["layers"][0]["output_shape"][1], locals=local) == sympy.floor(n / 2 - sympy.Rational(3, 2)) + 1


def test_an_x_inside_a_symbols_name_does_not_split_a_shape(tmp_path: Path) -> None:
    spec = {"name": "sx", "input": [3, "nx", "x"], "layers": [{"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 1}]}
    path = _write(tmp_path, spec)
    # a 1x1 conv keeps nx x x; was "unknown symbol 'n'"
    r = cli("check", path, "c.output=(4,nx,x)", "c.output=4*nx*x", "c.output=(4, nx, x)", "c.macs=12*nx*x")
    assert r.code == 0 and "4 correct" in r.out, r.out
    r = cli("check", path, "c.output=(4,x,nx)")
    assert r.code == 1 and r.out.startswith("WRONG"), r.out


# ----- 12. cosmetic and low ---------------------------------------------------------------------------
SMALL = {"name": "small", "input": [3, 8, 8], "layers": [
    {"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}, {"name": "r", "type": "relu"},
    {"name": "f", "type": "flatten"}, {"name": "fc", "type": "linear", "out_features": 2}]}


def test_a_piecewise_peak_in_the_batch_is_written_as_the_totals_write_it(tmp_path: Path) -> None:
    import re

    out = cli("memory", _write(tmp_path, SMALL), "--batch", "N").out
    peak = next(line for line in out.splitlines() if line.startswith("peak of a training step"))
    # batch 1 runs another conv kernel, so the peak is one number at N = 1 and a line a + b*N from 2 (was "5904*N + 7184")
    assert re.search(r"at N = 1: [\d,]+ bytes \([^)]*\); from N = 2: \d{1,3}(,\d{3})* \+ \d{1,3}(,\d{3})*\*N bytes", peak), peak


EXOTIC = {"name": "exotic2", "input": [6, 15, 17], "layers": [
    {"name": "ct", "type": "convtranspose2d", "out_channels": 9, "kernel_size": [3, 4], "stride": [2, 3], "padding": [1, 2],
     "output_padding": [1, 2], "groups": 3, "dilation": [2, 1]},
    {"name": "bn", "type": "batchnorm2d"}, {"name": "up", "type": "upsample", "scale_factor": 2, "mode": "bilinear", "align_corners": True},
    {"name": "c", "type": "conv2d", "out_channels": 6, "kernel_size": 3, "stride": [2, 1], "padding": "valid", "dilation": [1, 3], "groups": 3,
     "padding_mode": "replicate"},
    {"name": "mp", "type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True},
    {"name": "ap", "type": "avgpool2d", "kernel_size": [2, 3], "stride": [1, 2], "padding": [1, 1], "ceil_mode": True, "count_include_pad": False}]}


def test_explain_says_where_its_widest_output_lies_and_writes_no_double_minus(tmp_path: Path) -> None:
    path = _write(tmp_path, EXOTIC)
    mp = cli("explain", path, "mp").out  # 15 outputs along H: an "output 33" is one of the repeating pattern, and says so
    assert "output 33 of the repeating pattern the fields follow (this map has 15 outputs along H) reads input positions 65..69" in mp
    ap = cli("explain", path, "ap").out  # ceil_mode, stride 1 along H: ceil((15 + 2 - 2) / 1) + 1 = 16
    assert "= 15 + 2 \u2212 2 + 1 = 16" in ap and "\u2212(\u2212" not in ap, ap


def test_latex_escapes_the_characters_ot1_sets_as_other_glyphs(tmp_path: Path) -> None:
    spec = {"name": 'n<i>"q|', "title": 'A <b> "q" | t', "input": [3, 8, 8],
            "layers": [{"name": 'c<1>"|', "type": "conv2d", "out_channels": 4, "kernel_size": 3}]}
    tex = cli("table", _write(tmp_path, spec), "--format", "latex").out
    assert r"c\textless{}1\textgreater{}\texttt{\char34}\textbar{}" in tex  # OT1 set < > " | as ¡ ¿ ” —
    assert r"A \textless{}b\textgreater{} \texttt{\char34}q\texttt{\char34} \textbar{} t" in tex
    body = tex.replace(r"\textless{}", "").replace(r"\textgreater{}", "").replace(r"\textbar{}", "").replace(r"\texttt{\char34}", "")
    assert not set('<>|"') & set(body)


def test_inference_on_attention_that_is_not_causal_says_so(tmp_path: Path) -> None:
    spec = {"name": "nc", "input": [8], "layers": [
        {"name": "emb", "type": "embedding", "num_embeddings": 10, "embedding_dim": 8},
        *({"name": n, "type": "linear", "out_features": 8, "inputs": ["emb"]} for n in "qkv"),
        {"name": "kt", "type": "transpose", "dim0": 1, "dim1": 2, "inputs": ["k"]},
        {"name": "s", "type": "matmul", "inputs": ["q", "kt"]}, {"name": "sm", "type": "softmax", "dim": -1},
        {"name": "o", "type": "matmul", "inputs": ["sm", "v"]}, {"name": "head", "type": "linear", "out_features": 10}]}
    r = cli("inference", _write(tmp_path, spec))
    assert r.code == 2 and "nc's attention (s, o) is not causal (no causal mask, no is_causal)" in r.err, r.err
    assert "has no attention layer" not in r.err


def test_cross_attention_on_a_parameter_gives_its_reason(tmp_path: Path) -> None:
    spec = {"name": "xa", "input": [10, 8], "layers": [{"name": "mem", "type": "parameter", "shape": [4, 8]},
            {"name": "att", "type": "multiheadattention", "num_heads": 2, "inputs": ["input", "mem", "mem"]}]}
    row = json.loads(cli("table", _write(tmp_path, spec), "--format", "json").out)["layers"][1]
    assert row["receptive_field_approximate"] is True  # (10: an upper bound; torch reads token i only for output i)
    assert "its keys and values are learned tensors made from no input pixel" in row["note"] and "windows" not in row["note"]


def test_the_small_conv_assumption_names_3d_convs(tmp_path: Path) -> None:
    # measured 2026-12-02 (AVX-512 EPYC, torch 2.14.1, 2 threads, archcalc.torch.peak): 68,976 B against 58,016 counted
    spec = {"name": "c3", "input": [2, 6, 7, 8], "layers": [
        {"name": "c", "type": "conv3d", "out_channels": 4, "kernel_size": [3, 2, 3], "stride": [1, 2, 1], "padding": 1}]}
    out = cli("memory", _write(tmp_path, spec), "--batch", "2").out
    assert "3-D convs too: by 15.9% for a conv3d of 2 to 4 channels on 6x7x8" in out


def test_shapes_split_where_people_write_separators() -> None:
    from archcalc.check import _shape_parts

    assert _shape_parts("13x13", {"x"}) == ["13", "13"]  # numbers: x is a separator even where a size is named x
    assert _shape_parts("CxHxW", {"C", "H", "W"}) == ["C", "H", "W"]
    assert _shape_parts("4xnx", {"nx"}) == ["4", "nx"]  # the x of nx is no separator, the one before it is
    assert _shape_parts("(k + Max(0, 3 - k))x(k + Max(0, 3 - k))", {"k"}) == ["(k + Max(0, 3 - k))", "(k + Max(0, 3 - k))"]
    assert _shape_parts("(4, H + 1, W)", {"H", "W"}) == ["4", " H + 1", " W"]


def test_explain_on_an_approximate_row_claims_nothing_exact(tmp_path: Path) -> None:
    # review s9 #12 (residual): a grouped, dilated convtranspose whose even outputs read no input makes every later field
    # approximate; explain's interval rule said "exact:" there, and did not say from where the field is approximate
    spec = {"name": "exotic2", "input": [6, 15, 17], "layers": [
        {"name": "ct", "type": "convtranspose2d", "out_channels": 9, "kernel_size": [3, 4], "stride": [2, 3], "padding": [1, 2],
         "output_padding": [1, 2], "groups": 3, "dilation": [2, 1]},
        {"name": "up", "type": "upsample", "scale_factor": 2, "mode": "bilinear", "align_corners": True},
        {"name": "c", "type": "conv2d", "out_channels": 6, "kernel_size": 3, "stride": [2, 1], "dilation": [1, 3], "groups": 3}]}
    path = _write(tmp_path, spec)
    out = cli("explain", path, "c").out
    assert "exact" not in out and "approximate from ct on" in out
    # an exact row keeps its word: an upsampling then a 3x3 conv
    exact = _write(tmp_path, {"name": "u", "input": [3, 16, 16], "layers": [
        {"name": "up", "type": "upsample", "scale_factor": 2}, {"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 3}]}, "u.json")
    assert "exact: hi - lo + 1" in cli("explain", exact, "c").out
