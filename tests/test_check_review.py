"""Fixes from a review of ``check`` and ``explain``: budgets read units as equality claims do,
suffixed numbers are numbers in a formula, one copy of a symbolically repeated block, ties, blank names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SPECS, cli

GPT2 = str(SPECS / "gpt2.json")
ALEXNET = str(SPECS / "alexnet.json")
TRANSFORMER = str(SPECS / "transformer_lm.json")
CONV1_BYTES = 64 * 56 * 56 * 4  # AlexNet conv1 (torchvision): 64 channels of 56x56 (224 input), float32


# ----- 1. a budget's bound is exact: KiB/MiB/GiB (and KB) powers of 1024; kB/MB/GB read both ways ----
# (review s6, finding 13: an equality claim takes either reading of kB/MB/GB, so a budget in those
# units is judged only where both readings agree; between them it cannot be judged, exit 2)


def test_a_budget_in_si_units_is_judged_where_both_readings_agree() -> None:
    r = cli("check", ALEXNET, "conv1.memory<=800kB")
    assert CONV1_BYTES == 802_816 and 800 * 1000 < CONV1_BYTES <= 800 * 1024  # over 800,000, within 819,200
    assert r.code == 2 and r.out.startswith("cannot judge conv1.memory<=800kB")
    assert "holds with 1024-based units (the lecture notes' KB = 1024 B: 819,200 B) and fails with powers of 1000 (800,000 B)" in r.out
    r = cli("check", ALEXNET, "conv1.memory<803kB")  # 802,816 < 803,000 < 822,272
    assert r.code == 0 and "budget < 803,000 (1 kB = 1000 B)" in r.out and "within 822,272 with 1024-based units too" in r.out
    r = cli("check", ALEXNET, "conv1.memory<=784KiB")  # 784 * 1024 = 802,816: binary units stay binary
    assert r.code == 0 and f"budget <= {784 * 1024:,}" in r.out


def test_a_budget_in_gb_is_exact() -> None:
    exact = int(cli("check", GPT2, "total.memory=1").out.split("exact ")[1].split(" B")[0].replace(",", ""))
    hundredths = exact // 10**7  # a budget of hundredths of a GB just under GPT-2's activations in powers of 1000
    assert hundredths * 10**7 < exact <= hundredths * 1024**3 // 100  # ... and over them in powers of 1024
    r = cli("check", GPT2, f"total.memory<={hundredths // 100}.{hundredths % 100:02d}GB")
    assert r.code == 2 and f"and fails with powers of 1000 ({hundredths * 10**7:,} B)" in r.out
    r = cli("check", GPT2, f"total.memory<={hundredths * 10**7 // 1024**2}MiB")  # under it in MiB too: wrong, exit 1
    assert r.code == 1 and r.out.startswith("WRONG")


def test_one_run_reads_mb_the_same_way_for_an_equality_and_a_budget() -> None:
    # AlexNet's activations (torchvision, 227): 2,358,432 B = 2.25 MiB (2,358,432 / 1024^2 = 2.249...)
    r = cli("check", ALEXNET, "total.memory=2.25MB", "total.memory<=2.3MB", "total.memory<=2.5MB")
    lines = [line for line in r.out.splitlines() if not line.startswith(" ")]
    assert lines[0].startswith("correct total.memory=2.25MB") and "read as 1 MB = 1024\u00b2 B" in lines[0]
    # 2.3 * 1024^2 = 2,411,724.8 B holds it, 2.3 * 1000^2 = 2,300,000 B does not: no verdict
    assert lines[1].startswith("cannot judge total.memory<=2.3MB") and "2,411,724.8 B" in lines[1] and "2,300,000 B" in lines[1]
    # 2,358,432 <= 2,500,000 <= 2,621,440: within either way
    assert lines[2].startswith("correct total.memory<=2.5MB")
    assert r.code == 2


# ----- 2. a formula claim uses the spec's symbols; 1K is a number ------------------------------------


def test_a_suffixed_number_in_a_formula_claim_is_a_number() -> None:
    r = cli("check", "--stack", "KxHxW", "conv 1 1 bias=false", "total.params=1K")
    # a 1x1 conv from K channels to 1, no bias: K weights; 1K is 1,000, not the symbol K
    assert r.code == 1 and r.out.startswith("WRONG") and "claimed 1,000" in r.out
    assert cli("check", "--stack", "KxHxW", "conv 1 1 bias=false", "total.params=K").code == 0
    r = cli("check", TRANSFORMER, "total.macs=1M")
    assert r.code == 1 and "M=" not in r.out and "claimed 1,000,000" in r.out


def test_a_formula_claim_with_a_symbol_the_spec_lacks_cannot_be_read() -> None:
    r = cli("check", TRANSFORMER, "total.params=Q*h")
    assert r.code == 2 and r.out.startswith("cannot read") and "unknown symbol 'Q'" in r.out


# ----- 3. X.* is one copy of a block repeated a symbolic number of times; X is all of them ---------

# GPT-2's block (Radford et al. 2019) in symbols: ln_1 2h + c_attn 3h*h+3h + c_proj h*h+h + ln_2 2h
# + c_fc h*4h+4h + c_proj 4h*h+h = 12h^2 + 13h per copy


def test_one_copy_of_a_symbolically_repeated_block_is_its_star_scope() -> None:
    r = cli("check", TRANSFORMER, "transformer.h.*.params=12*h^2+13*h", "transformer.h.params=l*(12*h^2+13*h)")
    assert r.code == 0, r.out
    assert cli("check", TRANSFORMER, "transformer.h.*.params=l*(12*h^2+13*h)").code == 1
    one = cli("explain", TRANSFORMER, "transformer.h.*").out
    assert one.startswith("transformer.h.* (block, one copy of l, 21 layers)") and "= 12*h^2 + 13*h\n" in one
    every = cli("explain", TRANSFORMER, "transformer.h").out
    assert every.startswith("transformer.h (block, l copies, 21 layers)") and "= 12*l*h^2 + 13*l*h\n" in every


def test_a_layer_of_one_copy_is_judged_as_the_table_prints_its_row() -> None:
    # review s8 #10: a `.*` layer is one copy (its `(×l)` row), as the block `transformer.h.*` is.
    # GPT-2's c_attn (Radford et al. 2019): a linear h -> 3h, 3h*h weights + 3h biases; its MACs over s
    # tokens s*h*3h; its float32 output s*3h values of 4 B; sdpa's two products q@k^T and att@v, s*s*h each
    claims = ("transformer.h.*.attn.c_attn.params=3*h^2+3*h", "transformer.h.*.attn.c_attn.macs=3*s*h^2",
              "transformer.h.*.attn.c_attn.memory=12*s*h B", "transformer.h.*.attn.sdpa.macs=2*s^2*h",
              # ln_1 (2h: a weight and a bias per feature) and c_attn, one copy
              "transformer.h.*.ln_1..transformer.h.*.attn.c_attn.params=3*h^2+5*h")
    r = cli("check", TRANSFORMER, *claims)
    assert r.code == 0, r.out
    assert r.out.count("one copy of a block repeated l times") == len(claims)
    assert cli("check", TRANSFORMER, "transformer.h.*.attn.c_attn.params=l*(3*h^2+3*h)").code == 1
    # the table's row is the same value, marked (×l)
    table = cli("table", TRANSFORMER).out
    assert any("transformer.h.*.attn.c_attn (\u00d7l)" in line and "3*h^2 + 3*h" in line for line in table.splitlines())


def test_a_layer_of_one_copy_in_a_cnn_block_is_one_copy(tmp_path: Path) -> None:
    # a 3->3 channel 3x3 conv in a block repeated n times: 3*3*3*3 weights + 3 biases = 84 per copy
    spec = {"name": "rep", "input": [3, 8, 8], "blocks": {"b": {"params": {}, "layers": [
        {"name": "conv", "type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1}]}},
        "layers": [{"name": "s", "type": "block", "block": "b", "repeat": "n"}]}
    path = tmp_path / "rep.json"
    path.write_text(json.dumps(spec))
    r = cli("check", str(path), f"s.*.conv.params={3 * 3 * 3 * 3 + 3}", "s.*.params=84", "s.params=84*n")
    assert r.code == 0, r.out


def test_a_numbered_copy_of_a_symbolic_repeat_points_to_the_star_scope() -> None:
    r = cli("explain", TRANSFORMER, "transformer.h.0")
    assert r.code == 2 and "one copy is 'transformer.h.*', all l copies 'transformer.h'" in r.err
    r = cli("check", TRANSFORMER, "transformer.h.0.params=1")
    assert r.code == 2 and "one copy is 'transformer.h.*'" in r.out


# ----- 5. a network without spatial axes has no receptive field to judge; an empty name is an error -


def test_a_receptive_field_claim_on_a_token_sequence_cannot_be_judged() -> None:
    for claim, what in (("total.rf=whole", "receptive field"), ("lm_head.rf=3", "receptive field"), ("total.stride=1", "effective stride")):
        r = cli("check", GPT2, claim)
        assert r.code == 2 and r.out.splitlines()[0] == f"cannot judge {claim}: no {what} (no spatial axes)", r.out
        assert "WRONG" not in r.out


# ----- 5b. an empty layer name is an error ------------------------------------------------------------


def test_explain_an_empty_name_is_an_error() -> None:
    r = cli("explain", ALEXNET, "")
    assert r.code == 2 and r.out == "" and "empty" in r.err


# ----- 7. a budget on a formula was read: one verdict line, not an error repeated ------------------


def test_a_budget_on_a_free_repeat_count_is_one_line_not_judged() -> None:
    r = cli("check", TRANSFORMER, "total.params<=1M")
    assert r.code == 2 and r.err == ""
    assert r.out.splitlines()[0].startswith("cannot judge total.params<=1M: a budget (<=) needs numbers; params here is a formula")
    assert r.out.count("needs numbers") == 1 and r.out.splitlines()[-1] == "0 correct, 0 wrong, 1 not judged"


# ----- 4. explain a tied weight as the table counts it --------------------------------------------


def test_explain_a_tied_head_counts_its_weight_at_the_embedding() -> None:
    # GPT-2's head (Radford et al. 2019) reuses the token embedding, 50257 x 768: counted there, 0 here
    r = cli("explain", GPT2, "lm_head")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    steps = [n for n, line in enumerate(lines) if line.startswith("params")]
    assert lines[steps[0]].startswith("params: weight (50257\u00d7768), tied: counted at transformer.wte")
    assert lines[steps[0] + 1].strip().endswith(f"{50257 * 768:,} (38.6M), not counted here")
    assert lines[steps[-1] + 1].strip() == "= 0 (the tied weight is counted at transformer.wte)"
    assert "note: weight (50257\u00d7768) is transformer.wte's weight (tied): counted once, there" in lines
    table = cli("table", GPT2).out
    assert next(line for line in table.splitlines() if line.startswith("lm_head ")).split()[3] == "0"


# ----- 6. titles: blank or overlong refused at load, escaped in Markdown and HTML --------------------


def _titled(tmp_path: Path, title: str) -> str:
    doc = {"name": "net_1", "title": title, "input": [3, 8, 8], "layers": [{"name": "conv", "type": "conv2d", "out_channels": 2, "kernel_size": 3}]}
    p = tmp_path / "net.json"
    p.write_text(json.dumps(doc))
    return str(p)


def test_a_blank_or_overlong_title_is_refused_in_one_line(tmp_path: Path) -> None:
    for title, says in (("   ", "a blank title"), ("x" * 5000, "a title of 5,000 characters: at most 200")):
        r = cli("table", _titled(tmp_path, title))
        assert r.code == 2 and r.out == "" and len(r.err.splitlines()) == 1
        assert "field 'title'" in r.err and says in r.err
    assert cli("table", _titled(tmp_path, "x" * 200)).code == 0


def test_a_title_is_escaped_in_markdown_and_html_captions(tmp_path: Path) -> None:
    r = cli("table", _titled(tmp_path, "a*b_c`d<e>"), "--format", "markdown")
    assert r.code == 0 and r.out.startswith("*a\\*b\\_c\\`d\\<e\\>: input 3\u00d78\u00d78,")
    page = cli("table", _titled(tmp_path, "bad\x1b[31m\ntitle"), "--format", "html").out
    assert "\x1b" not in page and "<h1>bad\\x1b[31m\\ntitle</h1>" in page and "<title>bad\\x1b[31m\\ntitle: archcalc report</title>" in page


def test_explain_escapes_the_title_in_markdown(tmp_path: Path) -> None:
    spec = _titled(tmp_path, "a_b<c>")
    r = cli("explain", spec, "conv", "--format", "markdown")
    assert r.code == 0 and r.out.startswith("**conv (conv2d) in a\\_b\\<c\\>: input 3\u00d78\u00d78"), r.out


@pytest.mark.parametrize(
    ("claim", "verdict"),
    [
        ("total.rf=2*2+1", "correct"),  # one size written as arithmetic: was split at '*' into the shape 2 x (2+1)
        ("total.rf=(2*2+1)x(2*2+1)", "correct"),  # was 'cannot read: (2 is not a number'
        ("conv2.output=8*(H-4)*(W-4)", "correct"),  # a shape written with '*' between its axes still splits there
        ("total.rf=13*13", "WRONG"),  # 13*13 is the shape 13x13, not 169
    ],
)
def test_arithmetic_in_a_size_is_one_size_and_star_between_axes_is_a_shape(claim: str, verdict: str) -> None:
    r = cli("check", "--stack", "3xHxW", "conv 8 3", "conv 8 3", claim)
    assert r.out.startswith(verdict), r.out  # two 3x3 convs: receptive field 5x5 = (2*2+1)x(2*2+1), output 8x(H-4)x(W-4)


# ----- review s7 #6: one size written in one axis's symbol is compared with that axis -----------------


@pytest.mark.parametrize(
    ("stack", "claim", "mark", "says"),
    [
        # torch's H_out for k3 s2 p1: (H + 2*1 - 3)//2 + 1 = (H-1)//2 + 1 (was WRONG: compared with W at H=305, W=309)
        ("3xHxW", "conv1.output=(H-1)//2+1", "correct", "one size in H: compared axis 1, the one written in H"),
        ("3xHxW", "conv1.output=(H+1)//2", "correct", "compared axis 1"),  # (H-1)//2 + 1 = (H+1)//2
        ("3xHxW", "conv1.output=(W-1)//2+1", "correct", "compared axis 2, the one written in W"),
        ("3xHxW", "conv1.output=H//2", "WRONG", "they differ at H=3 (claimed 1, exact 2)"),  # 3//2 = 1; (3-1)//2 + 1 = 2
        ("3xHxH", "conv1.output=(H-1)//2+1", "correct", "compared axes 1 and 2, the ones written in H"),
        ("CxHxW", "conv1.output=C", "correct", "compared axis 0, the one written in C"),  # conv C 3: C channels out
    ],
)
def test_one_formula_size_is_compared_with_its_own_axis(stack: str, claim: str, mark: str, says: str) -> None:
    conv = "conv C 3 s2 p1" if stack.startswith("C") else "conv 8 3 s2 p1"
    r = cli("check", "--stack", stack, conv, claim)
    assert r.out.startswith(f"{mark:7s} {claim}") and says in r.out, r.out
    assert r.code == (0 if mark == "correct" else 1)


def test_one_number_that_is_another_axis_is_not_judged() -> None:
    # AlexNet conv1 (torchvision, 224 input): 64x56x56. 64 is the channels; one size reads as the last axis
    r = cli("check", ALEXNET, "conv1.output=64")
    assert r.code == 2 and r.out.startswith("cannot judge conv1.output=64: 64 is the size of axis 0 (the channels)"), r.out
    assert "write the whole shape (CxHxW) or the last two axes (HxW)" in r.out
    r = cli("check", ALEXNET, "conv1.output=56", "conv1.output=55")  # the last axis: right; 55 no axis at all: wrong
    assert r.code == 1 and "correct conv1.output=56" in r.out and "no axis of the output is 55" in r.out


def test_one_formula_size_in_no_axis_alone_is_not_judged() -> None:
    r = cli("check", "--stack", "3xHxW", "conv 8 3 p1", "flatten", "conv1.output=H")  # conv1: 8xHxW; H is axis 1: right
    assert r.code == 0 and "compared axis 1" in r.out
    r = cli("check", "--stack", "CxHxW", "conv 8 3 p1", "conv1.output=C")  # 8xHxW: no axis is a formula in C
    assert r.code == 2 and "no axis of the output (8\u00d7H\u00d7W) is a formula in C alone" in r.out, r.out


# ----- review s7 #17: formula claims are decided, not sampled below the constants -----------------------


def test_a_term_that_vanishes_below_a_large_constant_is_caught() -> None:
    convs = ("conv C 3 p1 bias=false",) * 3  # 3 * (C*C*3*3) = 27*C^2 params
    r = cli("check", "--stack", "CxHxW", *convs, "total.params=27*C^2+C//10000000", "total.params=27*C^2+C//1000000000000")
    # C//10**7 is 0 for every C below 10**7: it was "correct, equal at every one of 164 tested values"
    assert r.code == 1 and "0 correct, 2 wrong" in r.out, r.out
    assert f"they differ at C=10000000 (claimed {27 * 10**14 + 1:,}, exact {27 * 10**14:,})" in r.out
    assert f"they differ at C=1000000000000 (claimed {27 * 10**24 + 1:,}" in r.out


def test_floor_formulas_are_proved_equal_class_by_class() -> None:
    # 3x3 stride 2 pad 1: H_out = (H + 2 - 3)//2 + 1 = (H + 1)//2 = ceil(H/2), sympy keeps floor(H/2 - 1/2) + 1
    r = cli("check", "--stack", "3xHxW", "conv 8 3 s2 p1", "conv 8 3 s2 p1", "conv2.output=(H+3)//4")
    # twice: ((H + 1)//2 + 1)//2 = (H + 3)//4; H = 4k + r, degree 1: 4 classes * 2 values = 8 points
    proved = "equal (proved: on every class of H mod 4 both are polynomials of degree <= 1 in each symbol, equal at 8 points"
    assert r.code == 0 and proved in r.out, r.out
    r = cli("check", "--stack", "3xHxW", "conv 8 3 s2 p1", "conv 8 3 s2 p1", "conv2.output=(H+2)//4")  # off at H = 4k + 1
    assert r.code == 1 and "they differ at H=5 (claimed 1, exact 2)" in r.out  # (5 + 2)//4 = 1, (5 + 3)//4 = 2


# ----- review s7 #21: the average stride on an upsampled grid is judged exactly ------------------------


@pytest.mark.parametrize(
    "stack",
    [
        ("1x8x8", "upsample scale_factor=2", "conv 1 3 p1"),  # x2 nearest: two outputs per input pixel, 1/2 apart on average
        ("3x32x32", "convtranspose2d out_channels=3 kernel_size=2 stride=2"),  # stride-2 transposed conv: the same grid
    ],
)
def test_the_stride_after_upsampling_is_the_exact_fraction(stack: tuple[str, ...]) -> None:
    layer = "conv1" if "conv 1 3 p1" in stack else "convtranspose2d1"
    r = cli("check", "--stack", *stack, f"{layer}.stride=1/2", f"{layer}.stride=1/2x1/2")
    assert r.code == 0 and "exact 1/2\u00d71/2 on average (the table shows it rounded up, 1\u00d71)" in r.out, r.out
    r = cli("check", "--stack", *stack, f"{layer}.stride=1")  # the rounded display value is not the stride
    assert r.code == 1 and r.out.startswith(f"WRONG   {layer}.stride=1: exact 1/2\u00d71/2 on average"), r.out
    row = next(x for x in json.loads(cli("quick", *stack, "--format", "json").out)["layers"] if x["name"] == layer)
    assert row["effective_stride"] == [1, 1] and row["effective_stride_exact"] == ["1/2", "1/2"]  # the contract's field kept


def test_an_even_grid_has_no_exact_stride_field() -> None:
    # nearest x2 then a stride-2 conv: 2 outputs per pixel, every other one kept: stride 1 exactly
    layers = json.loads(cli("quick", "1x8x8", "upsample scale_factor=2", "conv 1 2 s2", "--format", "json").out)["layers"]
    assert layers[-1]["effective_stride"] == [1, 1] and "effective_stride_exact" not in layers[-1]


# ----- review s7: claims on formulas with Max, Min or Mod are decided, or say they were only sampled -----

K_BRANCHES = {"name": "k", "input": [3, 32, 32], "layers": [  # a k x k conv beside a 3 x 3 one: the sum's field is max(k, 3)
    {"name": "a", "type": "conv2d", "out_channels": 4, "kernel_size": "k", "padding": "same"},
    {"name": "b", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "inputs": ["input"]},
    {"name": "add", "type": "add", "inputs": ["a", "b"]},
]}  # fmt: skip
DILATED = {"name": "k2", "input": [3, 64, 64], "layers": [  # a k x k conv beside one dilated by k: max(k, k(k-1)+1) = k^2-k+1
    {"name": "a", "type": "conv2d", "out_channels": 4, "kernel_size": "k", "padding": "same"},
    {"name": "b", "type": "conv2d", "out_channels": 4, "kernel_size": "k", "dilation": "k", "padding": "same", "inputs": ["input"]},
    {"name": "add", "type": "add", "inputs": ["a", "b"]},
]}  # fmt: skip


def _spec(tmp_path: Any, spec: dict[str, Any]) -> str:
    path = tmp_path / f"{spec['name']}.json"
    path.write_text(json.dumps(spec))
    return str(path)


def test_a_max_in_one_symbol_is_proved_not_sampled(tmp_path: Any) -> None:
    # the field is k + Max(0, k(k-1) + 1 - k) = k + Max(0, (k-1)^2): (k-1)^2 >= 0, so it is k^2 - k + 1 for every k
    from archcalc.check import same_formula
    from archcalc.dims import symbol

    k = symbol("k")
    ok, how = same_formula(k**2 - k + 1, k + sympy_max(0, k * (k - 1) - k + 1))
    assert ok is True and "proved" in how, how
    r = cli("check", _spec(tmp_path, DILATED), "add.rf=k^2-k+1", "add.rf=k^2-k+2")
    assert r.code == 1 and "correct add.rf=k^2-k+1" in r.out and "they differ at k=1 (claimed 2, exact 1)" in r.out, r.out


def test_a_max_that_turns_below_the_sampled_sizes_is_found_there(tmp_path: Any) -> None:
    # max(k, 3) is k from k = 3 on: the claim k is wrong at k = 1 (1 against 3) and k = 2, decided value by value below 3
    r = cli("check", _spec(tmp_path, K_BRANCHES), "add.rf=k")
    assert r.code == 1 and "they differ at k=1 (claimed 1, exact 3)" in r.out, r.out


def test_a_formula_only_sampled_is_not_proven_and_exits_2(tmp_path: Any) -> None:
    # k + 2//k equals max(k, 3) at every k >= 1 (k=1: 1+2, k=2: 2+1, k >= 3: k), but a size in a
    # denominator is no form check decides: it was "correct" on sampling alone
    r = cli("check", _spec(tmp_path, K_BRANCHES), "add.rf=k+2//k")
    assert r.code == 2, r.out
    assert r.out.startswith("not proven add.rf=k+2//k: exact (k + Max(0, 3 - k))") and "(not proven:" in r.out, r.out
    assert "they agree at" in r.out and "sampled values of k" in r.out
    assert r.out.rstrip().endswith("0 correct, 0 wrong, 1 not proven")


def test_a_floor_with_a_period_too_long_to_decide_is_not_proven() -> None:
    # review s8 #15: (C+7)//(10**8+1) - (C+8)//(10**8+1) is -1 at C + 8 = 10**8 + 1 (C = 99,999,993) and 0 at
    # every size sampled; its period 10**8 + 1 needs (10**8 + 1) * (2 + 1) = 300,000,003 points to decide
    # (degree 2 from 9*C^2): sampled only, so `not proven`, exit 2, never `correct`
    r = cli("check", "--stack", "CxHxW", "conv C 3 p1 bias=false", "conv1.params=9*C^2 + (C+7)//(10**8+1) - (C+8)//(10**8+1)")
    assert r.code == 2 and r.out.startswith("not proven conv1.params="), r.out
    assert f"its floors have the period {10**8 + 1:,} in C: a proof would compare {(10**8 + 1) * 3:,} values" in r.out, r.out
    assert r.out.rstrip().endswith("0 correct, 0 wrong, 1 not proven")


def test_mod_and_min_are_decided() -> None:
    import sympy

    from archcalc.check import same_formula
    from archcalc.dims import symbol

    H, W = symbol("H"), symbol("W")
    ok, how = same_formula(H - 2 * sympy.floor(H / 2), sympy.Mod(H, 2))  # Mod(H, 2) = H - 2*floor(H/2): by classes of H mod 2
    assert ok is True and "proved: on every class of H mod 2" in how, how
    ok, how = same_formula(sympy.Integer(1), sympy.Mod(H, 2))
    assert ok is False and "differ at H=2 (claimed 1, exact 0)" in how, how
    ok, how = same_formula(H - sympy_max(0, H - 8), sympy.Min(H, 8))  # min(H, 8) = H - max(0, H - 8)
    assert ok is True and "proved" in how, how
    ok, how = same_formula(sympy.Integer(8), sympy.Min(H, 8))  # min(H, 8) is H below 8
    assert ok is False and "differ at H=1 (claimed 8, exact 1)" in how, how
    ok, how = same_formula(H + W - sympy.Min(H, W), sympy_max(H, W))  # true, but in two symbols: sampled only
    assert ok is None and "not proven" in how, how


def sympy_max(*args: Any) -> Any:
    import sympy

    return sympy.Max(*args, evaluate=False)
