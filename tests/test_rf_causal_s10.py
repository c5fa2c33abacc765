"""Tokens taken after causal attention where the prefix is symbolic or regrouped (review s10, findings 0
and 1).  Output i of causal attention reads tokens 0..i, so a row's field is that of the prefix up to
the highest token any of its outputs reads.  Expected numbers are checked against torch's input
gradients of the module archcalc builds (float64; ``_tokens_read`` of test_rf_causal_heads, the
reviewer's jacobian method): with ``s`` symbolic, at s = 8 (``--set s=8``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import cli
from test_rf_causal_heads import _tokens_read

from archcalc import analyze, parse_spec

BASE: list[dict[str, Any]] = [
    {"name": "q", "type": "linear", "out_features": 8, "inputs": ["input"]},
    {"name": "k", "type": "linear", "out_features": 8, "inputs": ["input"]},
    {"name": "v", "type": "linear", "out_features": 8, "inputs": ["input"]},
    {"name": "att", "type": "scaled_dot_product_attention", "is_causal": True, "inputs": ["q", "k", "v"]},
]


def _spec(tail: list[dict[str, Any]], length: int | str = 8) -> dict[str, Any]:
    return {"name": "c", "input": [length, 8], "layers": [*BASE, *tail]}


def _write(tmp_path: Path, spec: dict[str, Any]) -> str:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(spec))
    return str(path)


# ---- finding 0: a symbolic sequence length s (README: the zoo's transformer_lm is symbolic in s) ----

SLICE_0_3 = [{"name": "take", "type": "slice", "dim": 1, "start": 0, "end": 3}]
SELECT_M2 = [{"name": "take", "type": "select", "dim": 1, "index": -2}]


def test_a_slice_of_tokens_after_causal_attention_with_symbolic_s_reads_its_prefix(tmp_path: Path) -> None:
    """Slice 0:3 of s tokens: its outputs read tokens 0..2, the last of them sees 0..2: 2 + 1 = 3 (torch
    at s = 8: tokens [0, 1, 2]).  archcalc's slice takes its 3 positions to lie within the axis (its shape is
    3x8, as `take.shape=3x8` checks), and so does the field: 3, not whole (was: s, whole; `take.rf=3` WRONG)."""
    assert _tokens_read(_spec(SLICE_0_3)) == [0, 1, 2]
    row = analyze(parse_spec(_spec(SLICE_0_3, "s"))).row("take")
    assert row.receptive_field == (3,) and not row.whole_input and not row.rf_approximate, row
    assert "as its shape takes them" in (row.note or "")
    path = _write(tmp_path, _spec(SLICE_0_3, "s"))
    out = cli("check", path, "take.rf=3")
    assert out.code == 0 and "1 correct" in out.out, out.out + out.err
    out = cli("check", path, "take.rf=whole")
    assert out.code == 1 and "WRONG" in out.out, out.out + out.err


def test_a_select_of_token_s_minus_2_sees_s_minus_1_tokens(tmp_path: Path) -> None:
    """Token s-2 sees tokens 0..s-2: (s - 2) + 1 = s - 1 (torch at s = 8: tokens 0..6, 7 = 8 - 1)."""
    assert _tokens_read(_spec(SELECT_M2)) == list(range(8 - 1))
    row = analyze(parse_spec(_spec(SELECT_M2, "s"))).row("take")
    assert str(row.receptive_field[0]) == "s - 1" and not row.whole_input and not row.rf_approximate, row
    out = cli("check", _write(tmp_path, _spec(SELECT_M2, "s")), "take.rf=s-1")
    assert out.code == 0 and "1 correct" in out.out, out.out + out.err


def test_the_last_token_with_symbolic_s_still_sees_the_whole_input() -> None:
    """select index -1: token s-1 sees tokens 0..s-1, all s (torch at s = 8: all 8)."""
    tail = [{"name": "take", "type": "select", "dim": 1, "index": -1}]
    assert _tokens_read(_spec(tail)) == list(range(8))
    row = analyze(parse_spec(_spec(tail, "s"))).row("take")
    assert str(row.receptive_field[0]) == "s" and row.whole_input and not row.rf_approximate, row


# ---- finding 1: the prefix lost through a regrouping of the tokens, or a conv over them ----

LOST = [
    # (tail, torch's field: tokens 0..field-1 read)
    ([{"name": "rs", "type": "reshape", "shape": [4, 16]}, {"name": "take", "type": "select", "dim": 1, "index": 0}], 2),  # row 0 = tokens 0, 1
    ([{"name": "rs", "type": "view", "shape": [16, 4]}, {"name": "take", "type": "slice", "dim": 1, "start": 0, "end": 2}], 1),  # token 0's halves
    ([{"name": "u", "type": "unflatten", "dim": 1, "unflattened_size": [2, 4]}, {"name": "take", "type": "select", "dim": 2, "index": 0}], 5),  # 0, 4
    ([{"name": "u", "type": "unflatten", "dim": 1, "unflattened_size": [2, 4]}, {"name": "p", "type": "permute", "dims": [0, 2, 1, 3]},
      {"name": "take", "type": "select", "dim": 1, "index": 0}], 5),  # tokens 0 and 4: 4 + 1
    ([{"name": "t", "type": "transpose", "dim0": 1, "dim1": 2}, {"name": "cv", "type": "conv1d", "out_channels": 8, "kernel_size": 3, "padding": 1},
      {"name": "take", "type": "slice", "dim": 2, "start": 0, "end": 1}], 2),  # conv output 0 reads tokens -1..1: 0..1
]


@pytest.mark.parametrize(("tail", "tokens"), LOST, ids=["reshape", "view", "unflatten", "permute", "conv"])
def test_tokens_regrouped_after_causal_attention_are_approximate_not_whole(tmp_path: Path, tail: list[dict[str, Any]], tokens: int) -> None:
    """The review's table: each `take` was "8, whole", not approximate, and `check take.rf=<torch's>` WRONG.
    Which tokens these outputs read is not followed: the row is marked approximate, so check cannot judge."""
    spec = _spec(tail)
    assert _tokens_read(spec) == list(range(tokens))
    row = analyze(parse_spec(spec)).row("take")
    assert row.rf_approximate, row
    path = _write(tmp_path, spec)
    for claim in (f"take.rf={tokens}", "take.rf=whole"):
        out = cli("check", path, claim)
        assert out.code != 1 and "WRONG" not in out.out and "cannot judge" in out.out, out.out + out.err


def test_a_conv_over_tokens_and_a_reshape_that_keep_the_last_token_stay_exact() -> None:
    """The conv's last output reads the last token (padding 1): its field is all 8 tokens, exact; a reshape
    to (4, 16) and its last row (tokens 6, 7) also sees all 8 (torch: 8 and 8)."""
    conv = LOST[4][0][:2]
    assert _tokens_read(_spec(conv)) == list(range(8))
    rep = analyze(parse_spec(_spec(conv)))
    assert rep.row("cv").whole_input and not rep.row("cv").rf_approximate
    last = [{"name": "rs", "type": "reshape", "shape": [4, 16]}, {"name": "take", "type": "select", "dim": 1, "index": -1}]
    assert _tokens_read(_spec(last)) == list(range(8))
    row = analyze(parse_spec(_spec(last))).row("take")
    assert row.receptive_field == (8,) and row.whole_input and not row.rf_approximate, row


def test_a_roll_of_the_tokens_is_approximate_and_says_so_truthfully() -> None:
    """roll 1 then 0:2: output 0 holds token 7, which sees all 8 (torch: 8); the take's note said it read
    "positions up to 1: ... not the whole input".  The roll's row says it rolls, and no row claims a prefix."""
    tail = [{"name": "r", "type": "roll", "shifts": 1, "dims": 1}, {"name": "take", "type": "slice", "dim": 1, "start": 0, "end": 2}]
    assert _tokens_read(_spec(tail)) == list(range(8))
    rep = analyze(parse_spec(_spec(tail)))
    assert rep.row("r").rf_approximate and rep.row("take").rf_approximate
    assert "rolls the positions" in (rep.row("r").note or "")
    assert "positions up to" not in (rep.row("take").note or "") + (rep.row("r").note or "")


def test_explain_does_not_say_every_output_sees_the_whole_input_after_causal_attention(tmp_path: Path) -> None:
    """explain's note said "every output sees the whole input" on the rows after causal attention (only the
    last does: output 0 of the conv sees tokens 0..1, torch) and on the approximate take (an upper bound)."""
    path = _write(tmp_path, _spec(LOST[4][0]))
    out = cli("explain", path, "cv")
    assert out.code == 0 and "its last output sees the whole input (causal" in out.out, out.out + out.err
    assert "every output sees the whole input (causal" not in out.out
    out = cli("explain", _write(tmp_path, _spec(LOST[0][0])), "take")
    assert out.code == 0 and "at most the whole input" in out.out and "an upper bound here" in out.out, out.out + out.err
