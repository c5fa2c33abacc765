"""Symbolic depth: a block called ``"repeat": "l"`` is laid out once and counted l times.

DESIGN.md (token sequences, attention and symbolic depth): totals are l x the block's totals plus
the rest, the table shows the block's rows once with the multiplier, a block that changes the shape
is refused, and ``--set l=12`` gives the ordinary expanded analysis, row for row.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sympy
from conftest import cli, conv

from archcalc import SpecError, analyze, parse_spec

n = sympy.Symbol("n", integer=True, positive=True)


def stack(repeat: int | str, block: list[dict[str, Any]] | None = None, after: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A 1x1 stem, a block of 3x3 convs repeated ``repeat`` times, then whatever comes after."""
    return {
        "name": "stack",
        "input": [16, 32, 32],
        "blocks": {"c3": {"layers": block or [conv(16, 3, name="conv", padding=1), {"name": "relu", "type": "relu"}]}},
        "layers": [
            conv(16, 1, name="stem"),
            {"name": "body", "type": "block", "block": "c3", "repeat": repeat},
            *(after or [{"name": "pool", "type": "maxpool2d", "kernel_size": 2, "stride": 2}]),
        ],
    }


def test_receptive_field_of_n_stacked_3x3_convs_is_2n_plus_1() -> None:
    # Simonyan & Zisserman 2015, sec. 2.3: a stack of n 3x3 conv layers (stride 1) has an effective
    # receptive field of 2n + 1 (two of them see 5x5, three 7x7).  Derived, not asserted: the block
    # is laid out once and its field moved on to the last copy.
    rep = analyze(parse_spec(stack("n")))
    assert rep.row("body.*.conv").receptive_field == (2 * n + 1, 2 * n + 1)
    # the 2x2 stride-2 pool after the stack adds (2 - 1) x 1
    assert rep.row("pool").receptive_field == (2 * n + 2, 2 * n + 2)
    for k in range(1, 6):  # and the expanded stacks agree
        numeric = analyze(parse_spec(stack(k)))
        assert numeric.row(f"body.{k - 1}.conv").receptive_field == (2 * k + 1, 2 * k + 1)


def test_totals_are_n_times_the_block_plus_the_rest() -> None:
    rep = analyze(parse_spec(stack("n")))
    # the stem: 16*16 weights + 16 biases; each 3x3 conv 16*16*9 + 16; the rest has no parameters
    assert sympy.expand(rep.totals["params"] - (16 * 16 + 16 + n * (16 * 16 * 9 + 16))) == 0
    # MACs: stem 32*32*16*16, each conv 32*32*16*(16*9), the 2x2 pool 16*16*16*4 window reads
    assert sympy.expand(rep.totals["macs"] - (32 * 32 * 16 * 16 + n * 32 * 32 * 16 * 16 * 9 + 16 * 16 * 16 * 4)) == 0
    # activation memory: every output counted each time it is made (the conv and relu of each copy)
    assert sympy.expand(rep.totals["activation_bytes"] - 4 * (16 * 32 * 32 * (1 + 2 * n) + 16 * 16 * 16)) == 0
    assert rep.row("body.*.conv").repeat == n and rep.row("stem").repeat == 1
    # the table shows the block once, with its multiplier
    names = [r.name for r in rep.rows]
    assert names == ["stem", "body.*.conv", "body.*.relu", "pool"]


@pytest.mark.parametrize("k", [1, 2, 12])
def test_set_gives_the_expanded_analysis_row_for_row(k: int) -> None:
    sym = analyze(parse_spec(stack("n")))
    with_set = analyze(parse_spec(stack("n")), values={"n": k})
    written = analyze(parse_spec(stack(k)))
    assert with_set.to_json() == written.to_json()  # --set n=k is the spec with repeat k written out
    assert len(written.rows) == 2 + 2 * k
    # the symbolic totals, n put in, are the expanded totals
    for q, v in sym.totals.items():
        assert sympy.sympify(v).subs(n, k) == written.totals[q], q
    # each symbolic row is every copy's row; its field is the last copy's
    for layer in ("conv", "relu"):
        s, last = sym.row(f"body.*.{layer}"), written.row(f"body.{k - 1}.{layer}")
        assert (s.params, s.macs, s.activation_bytes, s.output_shape) == (last.params, last.macs, last.activation_bytes, last.output_shape)
        assert tuple(sympy.sympify(d).subs(n, k) for d in s.receptive_field) == last.receptive_field
    assert tuple(sympy.sympify(d).subs(n, k) for d in sym.row("pool").receptive_field) == written.row("pool").receptive_field


def test_residual_block_grows_the_field_by_its_longest_path() -> None:
    # a basic residual block: two 3x3 convs beside the identity; the longer path adds 2 + 2 per copy
    block = [
        conv(16, 3, name="conv1", padding=1),
        conv(16, 3, name="conv2", padding=1),
        {"name": "add", "type": "add", "inputs": ["conv2", "input"]},
    ]
    rep = analyze(parse_spec(stack("n", block)))
    assert rep.row("body.*.add").receptive_field == (4 * n + 1, 4 * n + 1)
    assert rep.row("body.*.conv1").receptive_field == (4 * n - 1, 4 * n - 1)  # the last copy's first conv: 1 + 4(n - 1) + 2
    numeric = analyze(parse_spec(stack(3, block)))
    assert numeric.row("body.2.add").receptive_field == (13, 13)
    assert numeric.row("body.2.conv1").receptive_field == (11, 11)


def test_nested_symbolic_repeats_multiply() -> None:
    spec = stack("n")
    spec["blocks"]["stage"] = {"layers": [{"name": "inner", "type": "block", "block": "c3", "repeat": "m"}]}
    spec["layers"][1] = {"name": "body", "type": "block", "block": "stage", "repeat": "n"}
    rep = analyze(parse_spec(spec))
    m = sympy.Symbol("m", integer=True, positive=True)
    assert rep.row("body.*.inner.*.conv").repeat == m * n
    assert rep.row("body.*.inner.*.conv").receptive_field == (2 * m * n + 1, 2 * m * n + 1)
    expanded = analyze(parse_spec(spec), values={"n": 2, "m": 3})
    assert expanded.totals["params"] == sympy.sympify(rep.totals["params"]).subs({n: 2, m: 3})
    assert expanded.row("body.1.inner.2.conv").receptive_field == (13, 13)


def test_a_block_that_changes_the_shape_is_refused(spec_file: Any) -> None:
    block = [conv(32, 3, name="conv", padding=1, stride=2)]
    path = spec_file(json.dumps(stack("n", block)))
    r = cli("table", str(path))
    assert r.code == 2 and r.out == ""
    assert "layer 'body'" in r.err and "field 'repeat'" in r.err
    assert "must map its input shape to itself" in r.err and "16×32×32 to 32×16×16" in r.err
    assert cli("table", str(path), "--set", "n=2").code == 0  # expanded, the copies may differ


def test_first_and_outside_references_are_refused() -> None:
    spec = stack("n")
    spec["layers"][1]["first"] = {}
    analyze(parse_spec(spec))  # an empty override is no override
    spec["blocks"]["c3"]["params"] = {"w": 16}
    spec["layers"][1]["first"] = {"w": 16}
    with pytest.raises(SpecError, match=r"symbolic repeat .* needs identical copies") as e:
        analyze(parse_spec(spec))
    assert e.value.layer == "body" and e.value.field == "first"
    spec = stack("n", after=[{"name": "out", "type": "add", "inputs": ["body.*.conv", "body"]}])
    with pytest.raises(SpecError, match="only its output can be read from outside") as e:
        analyze(parse_spec(spec))
    assert e.value.layer == "out"


def test_repeat_count_must_be_known_positive() -> None:
    with pytest.raises(SpecError, match="repeat must be a number") as e:
        analyze(parse_spec(stack("n - 1")))  # may be 0
    assert e.value.field == "repeat"


def test_table_json_and_check_show_the_multiplier(spec_file: Any) -> None:
    path = spec_file(json.dumps(stack("n")))
    r = cli("table", str(path), "--format", "json")
    assert r.code == 0
    doc = json.loads(r.out)
    rows = {row["name"]: row for row in doc["layers"]}
    assert rows["body.*.conv"]["repeat"] == "n" and "repeat" not in rows["stem"]
    assert doc["totals"]["params"] == "2320*n + 272"  # 16*16*9 + 16 = 2320 per copy, 16*16 + 16 = 272 for the stem
    text = cli("table", str(path)).out
    assert "body.*.conv (×n)" in text and "the totals count each of them n times" in text
    r = cli("check", str(path), "stem..pool.params=2320*n+272", "body.*.conv.rf=(2*n+1)x(2*n+1)")
    assert r.code == 0, r.out + r.err
    assert "body.*.conv 2.32K × n" in r.out
